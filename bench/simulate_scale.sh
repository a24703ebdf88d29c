#!/usr/bin/env bash
# How simulate's cost grows with the number of sequences: the default run
# (every policy, the predictor `temporal` and gated's reuse models fitted
# held out) on synthetic traces of N sequences x 64 tokens (32 layers, 8
# experts, top-2), as CPU seconds and peak RSS from /usr/bin/time.
# usage: bench/simulate_scale.sh [BUILD_DIR] [N...]   (JSON on stdout; default N: 32 128)
# Linear cost shows as about 4x the CPU time for 4x the sequences (a fixed
# part makes it a little less); quadratic as about 16x.
set -euo pipefail
B=${1:-build}
shift $(($# < 1 ? $# : 1))
NS=${*:-32 128}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "{\"bench\": \"simulate_scale\", \"binary\": \"$B/expertcast\","
echo " \"command\": \"/usr/bin/time -f '%U %M' expertcast simulate sN.jsonl --model mixtral-8x7b-int4 --hardware rtx4090-pcie4 --cache-experts 4\","
echo " \"runs\": ["
sep=""
for n in $NS; do
    "$B/expertcast" synth -o "$tmp/s$n.jsonl" --layers 32 --experts 8 -k 2 --sequences "$n" \
        --tokens 64 >/dev/null 2>&1
    /usr/bin/time -f '%U %M' -o "$tmp/time" "$B/expertcast" simulate "$tmp/s$n.jsonl" \
        --model mixtral-8x7b-int4 --hardware rtx4090-pcie4 --cache-experts 4 >/dev/null 2>&1
    read -r user rss <"$tmp/time"
    printf '%s  {"sequences": %d, "user_s": %s, "peak_rss_kb": %s}' "$sep" "$n" "$user" "$rss"
    sep=$',\n'
done
echo
echo " ]}"
