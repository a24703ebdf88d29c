#!/usr/bin/env bash
# How much of the lru -> oracle gap better eviction alone could close: gated
# as it is (held out), then gated whose victims know which experts each
# layer uses within the next N tokens of the trace, every demand admitted
# (simulate --what-if-evict; all = Belady's victims). Which prefetches to
# start is gated's own decision in every column. A what-if, not a policy:
# what a perfect predictor of the next N tokens' routing would give this
# eviction.
# usage: bench/evict_whatif.sh [BUILD_DIR] [DATA_DIR] [HARDWARE...]  (markdown on stdout)
# SHAPES (environment): any of "layer global" (default both); the Qwen3
# global pools take minutes per run.
set -euo pipefail
SHAPES=${SHAPES:-layer global}
. "$(dirname "$0")/cells.sh"
W=1,2,4,all
row() { # label model hw shape-option trace
    "$B/expertcast" simulate "$5" --model "$2" --hardware "$3" $4 --policy lru,gated,oracle \
        --horizon 2 --what-if-evict $W 2>/dev/null | awk -v label="$1" -v hw="$3" '
        $1 == "lru" || $1 == "gated" || $1 == "oracle" {
            o = $3 == "global" || $3 == "sized"
            k = $1; if ($(NF - 2) == "what-if" && $(NF - 1) == "evict") k = "w" $NF
            t[k] = $(4 + o); x[k] = $(7 + o)
        }
        function g(k) {
            return sprintf("%.2f / %.2f", (x["lru"] - x[k]) / (x["lru"] - x["oracle"]),
                           (t["lru"] - t[k]) / (t["lru"] - t["oracle"]))
        }
        END { printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, hw, g("gated"), g("w1"), g("w2"), g("w4"), g("wall") }'
}
echo "| trace, cache | hardware | gated | knows 1 token | 2 tokens | 4 tokens | all (Belady victims) |"
echo "|---|---|---|---|---|---|---|"
cells
