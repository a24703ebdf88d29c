#!/usr/bin/env bash
# Share of the lru -> oracle gap that gated closes, in transfers per token
# and in TPOT, per trace, machine and cache shape (held out: each sequence
# predicted by a predictor and a reuse model fitted on the others).
# usage: bench/gaps.sh [BUILD_DIR] [DATA_DIR] [HARDWARE...]  (markdown table on stdout)
# The Qwen3 global and sized pools (768 / 1536 slots) take minutes per run.
# SHAPES (environment) picks the cache shapes: any of "layer global sized"
# (default all three).
set -euo pipefail
SHAPES=${SHAPES:-layer global sized}
. "$(dirname "$0")/cells.sh"
row() { # label model hw shape-option trace
    "$B/expertcast" simulate "$5" --model "$2" --hardware "$3" $4 --policy lru,gated,oracle \
        --horizon 2 2>/dev/null | awk -v label="$1" -v hw="$3" '
        $1 == "lru" || $1 == "gated" || $1 == "oracle" { o = $3 == "global" || $3 == "sized"; t[$1] = $(4 + o); x[$1] = $(7 + o) }
        END {
            gx = (x["lru"] - x["gated"]) / (x["lru"] - x["oracle"])
            gt = (t["lru"] - t["gated"]) / (t["lru"] - t["oracle"])
            printf "| %s | %s | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %.3f | %.3f |\n",
                label, hw, x["lru"], x["gated"], x["oracle"], t["lru"], t["gated"], t["oracle"], gx, gt
        }'
}
echo "| trace, cache | hardware | xfer/token lru / gated / oracle | TPOT ms lru / gated / oracle | gap closed, xfer | gap closed, TPOT |"
echo "|---|---|---|---|---|---|"
cells
