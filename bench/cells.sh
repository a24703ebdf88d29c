# The cells of the acceptance tables, sourced by gaps.sh and evict_whatif.sh:
# arguments [BUILD_DIR] [DATA_DIR] [HARDWARE...] into B, D and HWS, the two
# real traces M (Mixtral HumanEval) and Q (Qwen3 decode), and cells, which
# calls the script's row() for every hardware x trace x cache size x shape
# in $SHAPES (any of "layer global sized"):
#   row LABEL MODEL HARDWARE SHAPE-OPTION TRACE
B=${1:-build}
D=${2:-../shared/data}
shift $(($# < 2 ? $# : 2))
HWS=${*:-rtx4090-pcie4 h100-pcie5}
M=$D/mixtral-8x7b-instruct/humaneval_2_routing.jsonl
Q=$D/qwen3-30b-a3b/decode_4prompts_routing.jsonl
want() { case " $SHAPES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
shape_cells() { # hw label model trace layers sizes...
    local hw=$1 label=$2 model=$3 trace=$4 L=$5 c
    shift 5
    if want layer; then for c in "$@"; do row "$label, $c per layer" $model $hw "--cache-experts $c" $trace; done; fi
    if want global; then for c in "$@"; do row "$label, global $((c * L))" $model $hw "--cache-global $((c * L))" $trace; done; fi
    if want sized; then for c in "$@"; do row "$label, sized $((c * L))" $model $hw "--cache-sized $((c * L))" $trace; done; fi
}
cells() {
    local hw
    for hw in $HWS; do
        shape_cells $hw "Mixtral int4" mixtral-8x7b-int4 $M 32 3 4 6
        shape_cells $hw "Qwen3 q4_k_m" qwen3-30b-a3b-q4_k_m $Q 48 16 32
    done
}
