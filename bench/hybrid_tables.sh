#!/usr/bin/env bash
# bench/hybrid_tables.sh [BUILD]: the README's hybrid tables. Replays the Mixtral-8x7B (fp16,
# int4) and Qwen3-30B-A3B (q4_k_m) traces of ../shared/data through lru, gated, hybrid and
# the copy-only oracle on every shipped hardware profile (horizon 2, the held-out temporal
# predictor), writes one JSON per model x hardware under bench/results/hybrid/, and prints
# the tables (markdown) on stdout. Needs ../shared (exits 77, skipped, without it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
CLI=$BUILD/expertcast
OUT=$ROOT/bench/results/hybrid
MIX=$ROOT/../shared/data/mixtral-8x7b-instruct/humaneval_2_routing.jsonl
QWEN=$ROOT/../shared/data/qwen3-30b-a3b/decode_4prompts_routing.jsonl
[ -f "$MIX" ] && [ -f "$QWEN" ] || { echo "../shared/data is absent: skipped" >&2; exit 77; }
mkdir -p "$OUT"
HWS="rtx4090-pcie4 a100-pcie4 h100-pcie5 gh200-c2c"
run() { # TRACE MODEL CACHES
  for hw in $HWS; do
    "$CLI" simulate "$1" --model "$2" --hardware "$hw" --policy lru,gated,hybrid,oracle \
      --sweep --cache-experts "$3" --horizon 2 --json "$OUT/$2-$hw.json" > /dev/null 2>&1
  done
}
run "$MIX" mixtral-8x7b-fp16 2,4,6,8
run "$MIX" mixtral-8x7b-int4 2,4,6,8
run "$QWEN" qwen3-30b-a3b-q4_k_m 16,32,64
python3 - "$OUT" <<'PY'
import json, sys, glob, os
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.json'))):
    j = json.load(open(f))
    for r in j['results']:
        key = (j['model'], j['dtype'], j['hardware'], r['cache_experts'])
        rows.setdefault(key, {'n': j['decode_steps'], 'host': j['host']})[r['policy']] = r
order = ['rtx4090-pcie4', 'a100-pcie4', 'h100-pcie5', 'gh200-c2c']
for model, dtype in [('mixtral-8x7b', 'fp16'), ('mixtral-8x7b', 'int4'), ('qwen3-30b-a3b', 'q4_k_m')]:
    keys = sorted((k for k in rows if k[0] == model and k[1] == dtype),
                  key=lambda k: (order.index(k[2]), k[3]))
    if not keys:
        continue
    print(f"\n{model} {dtype} (n = {rows[keys[0]]['n']} decode steps), horizon 2, TPOT in ms:\n")
    print("| hardware | cache/layer | lru | gated | hybrid | oracle | bound | hybrid vs oracle | host runs/token | copies/token (hybrid, gated) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        R = rows[k]
        h, g, o = R['hybrid'], R['gated'], R['oracle']
        mark = '**' if h['tpot_ms'] < o['tpot_ms'] else ''
        print(f"| {k[2]} | {k[3]} | {R['lru']['tpot_ms']:.2f} | {g['tpot_ms']:.2f} | {mark}{h['tpot_ms']:.2f}{mark} | "
              f"{o['tpot_ms']:.2f} | {h['lower_bound_ms_per_token']:.2f} | {h['tpot_ms']/o['tpot_ms']:.3f} | "
              f"{h['host_runs_per_token']:.2f} | {h['transfers_per_token']:.2f}, {g['transfers_per_token']:.2f} |")
PY
