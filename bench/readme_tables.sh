#!/usr/bin/env bash
# Regenerates the simulator tables of README.md from the CLI (markdown on
# stdout), so that every figure there comes from one command:
#   bash bench/readme_tables.sh [build/expertcast]
# Needs ../shared/data (the real traces). Each table row is one
# `expertcast simulate ... --csv` run; the row's command is printed under the table.
set -euo pipefail
cd "$(dirname "$0")/.."
EC=${1:-build/expertcast}
DATA=../shared/data
MIXTRAL=$DATA/mixtral-8x7b-instruct/humaneval_2_routing.jsonl
QWEN=$DATA/qwen3-30b-a3b/decode_4prompts_routing.jsonl
[ -f "$MIXTRAL" ] && [ -f "$QWEN" ] || { echo "readme_tables.sh: $DATA is absent" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One run -> one markdown row: the given leading cells, TPOT per policy (in the
# CSV's order), then per prefetching or focus policy its prefetches/token and
# gap closed against the oracle and against the analytic bound (at lru's
# cache size).
row() { # lead-cells csv
  awk -F, -v lead="$1" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { p = $col["policy"]; order[++n] = p; tpot[p] = $col["tpot_ms"]
      pf[p] = $col["prefetches_per_token"]; go[p] = $col["gap_closed"]
      gb[p] = $col["gap_closed_bound"]
      if (p == "lru") { cache = $col["cache_experts"]; bound = $col["lower_bound_ms_per_token"] } }
    END {
      best = ""; for (i = 1; i <= n; i++) { p = order[i]
        if (p != "oracle" && p != "resident" && p != "on-demand" && (best == "" || tpot[p] < tpot[best])) best = p }
      line = "| " lead " | " cache
      for (i = 1; i <= n; i++) { p = order[i]; c = sprintf("%.2f", tpot[p])
        if (p == best && p != "lru") c = "**" c "**"; line = line " | " c }
      line = line sprintf(" | %.2f", bound)
      pfs = ""; for (i = 1; i <= n; i++) { p = order[i]
        if (p == "predict" || p == "gated" || p == "hybrid" || p == "oracle")
          pfs = pfs (pfs == "" ? "" : ", ") p " " sprintf("%.2f", pf[p]) }
      gaps = ""; for (i = 1; i <= n; i++) { p = order[i]
        if (p == "gated" || p == "hybrid")
          gaps = gaps (gaps == "" ? "" : ", ") p " " sprintf("%.2f / %.2f", go[p], gb[p]) }
      print line " | " pfs " | " gaps " |" }' "$2"
}

header() { # first-columns
  local pols=$1
  printf '| %s | cache |' "$2"
  for p in $pols; do printf ' %s |' "$p"; done
  printf ' bound | prefetches/token | gap closed (oracle / bound) |\n|'
  for _ in $(seq 1 $(( $(echo "$2" | tr -cd '|' | wc -c) + 1 + $(echo $pols | wc -w) + 4 ))); do printf -- '---|'; done
  printf '\n'
}

POLS=$($EC simulate --help | grep -q hybrid && echo "on-demand lru lfu predict gated hybrid oracle resident" || echo "on-demand lru lfu predict gated oracle resident")
POLLIST=$(echo $POLS | tr ' ' ,)

echo "Mixtral-8x7B HumanEval, horizon 2, cache = what fits the device (per layer), TPOT ms:"
echo
header "$POLS" "dtype | hardware"
for dt in fp16 int8 int4; do
  for hw in rtx4090-pcie4 a100-pcie4 h100-pcie5 gh200-c2c; do
    $EC simulate "$MIXTRAL" --model mixtral-8x7b-$dt --hardware $hw --horizon 2 \
      --policy "$POLLIST" --csv "$tmp/r.csv" >/dev/null
    row "$dt | $hw" "$tmp/r.csv"
  done
done
echo
echo "(each row: \`$EC simulate $MIXTRAL --model mixtral-8x7b-DTYPE --hardware HW --horizon 2 --policy $POLLIST\`)"
echo
for c in 3 4 6; do
  echo "Mixtral-8x7B int4, $c per layer, horizon 2:"
  echo
  header "$POLS" "hardware"
  for hw in rtx4090-pcie4 a100-pcie4 h100-pcie5 gh200-c2c; do
    $EC simulate "$MIXTRAL" --model mixtral-8x7b-int4 --hardware $hw --horizon 2 \
      --cache-experts $c --policy "$POLLIST" --csv "$tmp/r.csv" >/dev/null
    row "$hw" "$tmp/r.csv"
  done
  echo
done
echo "Qwen3-30B-A3B decode, q4_k_m, horizon 2, TPOT ms:"
echo
header "$POLS" "hardware"
for hw in rtx4090-pcie4 a100-pcie4 h100-pcie5 gh200-c2c; do
  for c in 16 32 64; do
    $EC simulate "$QWEN" --model qwen3-30b-a3b-q4_k_m --hardware $hw --horizon 2 \
      --cache-experts $c --policy "$POLLIST" --csv "$tmp/r.csv" >/dev/null
    row "$hw" "$tmp/r.csv"
  done
done
echo
echo "(each row: \`$EC simulate $QWEN --model qwen3-30b-a3b-q4_k_m --hardware HW --cache-experts N --horizon 2 --policy $POLLIST\`)"
