#!/usr/bin/env bash
# Valgrind memcheck over the command-line tool: every command (synth, info,
# extract, rules create / evaluate, demo, fit, eval, simulate, replay on the
# cpu backend) on small synthetic traces, the help texts, usage errors, and
# every malformed input of tests/bad. Each run must exit with its expected code and memcheck must
# report zero errors (leaks included: definite, indirect and possible).
#
# usage: tests/valgrind.sh [PATH/TO/expertcast]     (default build/expertcast)
# Use a build without sanitizers (the default Debug or RelWithDebInfo build).
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build/expertcast}
if [ ! -x "$CLI" ]; then
  echo "valgrind.sh: $CLI is not an executable; build first" >&2
  exit 2
fi
if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
  exit 2
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

runs=0
failures=0
# run EXPECTED_EXIT ARGS...: one CLI run under memcheck.
run() {
  local want=$1
  shift
  runs=$((runs + 1))
  local log="$TMP/memcheck.$runs.log"
  set +e
  valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
    --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
    --track-origins=yes --log-file="$log" "$CLI" "$@" >"$TMP/stdout" 2>"$TMP/stderr"
  local rc=$?
  set -e
  # --error-exitcode=1 collides with the CLI's own "bad data" exit 1, so the
  # error count is read from memcheck's summary as well.
  local errors
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
  if [ "$rc" != "$want" ] || [ "${errors:-missing}" != 0 ]; then
    failures=$((failures + 1))
    echo "FAIL: expertcast $* (exit $rc, expected $want; memcheck errors ${errors:-missing})"
    sed 's/^/  | /' "$TMP/stderr" | head -5
    grep -v '^==[0-9]*== *$' "$log" | sed 's/^/  | /' | head -60
  else
    echo "ok   exit $rc, 0 errors: expertcast $*"
  fi
}

small="$TMP/small.jsonl"
run 0 --help
run 0 --version
run 2
run 2 nonsense
run 0 synth --help
run 0 info --help
run 0 synth -o "$small" --layers 4 --experts 8 --sequences 2 --tokens 8 --seed 3
run 0 synth -o - --no-gates --layers 3 --experts 6 -k 3 --sequences 1 --tokens 4 --dataset vg
run 0 info "$small"
run 0 info --layers 4 --experts 8 --max-line 4096 "$small" "$small"
run 1 info --experts 4 "$small"
run 1 info "$TMP"
run 1 info "$TMP/absent.jsonl"
run 1 synth -o "$TMP/missing/out.jsonl" --tokens 2
run 2 synth --experts 8 --top-k 9 -o "$TMP/refused.jsonl"
run 2 info --experts 0 "$small"
# the seed's commands: extract, rules create / evaluate, the demo
mkdir -p "$TMP/journeys" "$TMP/demo"
run 0 extract "$small" -p 0 -t 0 4 -o "$TMP/journeys"
run 0 extract "$small" -p 1 -t 2 6 -o "$TMP/journeys"
run 0 rules create "$TMP"/journeys/p0_token_*.jsonl -o "$TMP/rules.json"
run 0 rules evaluate --rules "$TMP/rules.json" --test "$TMP"/journeys/p1_token_*.jsonl \
  -o "$TMP/results.json"
run 0 rules create "$small" --experts 8 -o -
# the demo on a small Mixtral-shaped trace (the bundled sample takes ~40 s under memcheck)
run 0 synth -o "$TMP/mixtral-small.jsonl" --layers 32 --experts 8 -k 2 --sequences 2 --tokens 6
run 0 demo --trace "$TMP/mixtral-small.jsonl" --output-dir "$TMP/demo" --backend cpu --tokens 6 \
  --hardware h100-pcie5
run 0 extract --help
run 0 rules --help
run 0 demo --help
run 1 extract tests/bad/truncated_line.jsonl -p 0 -t 0 1 -o "$TMP/journeys"
run 1 rules create tests/bad/expert_fraction.jsonl -o "$TMP/bad_rules.json"
run 2 extract "$small" -p 0 -t 1 0
for f in tests/bad/rules/*.json; do
  run 1 rules evaluate --rules "$f" --test "$small"
done
# fit every predictor, eval them all, and load fitted models back
for name in prior seed-l3 hybrid ngram temporal logistic mix; do
  run 0 fit "$small" -p "$name" -o "$TMP/model-$name.json"
done
run 0 eval "$small" -p all --resamples 20 --json "$TMP/eval.json"
run 0 eval --train "$TMP/journeys/p0_token_0.jsonl" --test "$small" -p prior,ngram --horizon 1,2 \
  --resamples 20
run 0 fit --help
run 0 eval --help
run 2 fit "$small" -p nosuch -o "$TMP/nosuch.json"
run 1 fit "$small" -p ngram -o "$TMP/missing/model.json"
run 1 fit tests/bad/expert_fraction.jsonl -p prior -o "$TMP/bad-model.json"
# outputs: an input refused, special files, '-', links, a full stdout
run 2 fit "$small" -p prior -o "$small"
run 1 fit "$small" -p prior -o /dev/full
run 0 fit "$small" -p prior -o -
ln -s "$TMP/model-prior.json" "$TMP/link.json"
run 0 fit "$small" -p prior -o "$TMP/link.json"
run 1 fit tests/bad/messages/no_complete_token.jsonl -p prior -o "$TMP/none.json"

# simulate (profiles by name and by path, JSON out) and the loader's replay on the cpu
# backend, on a trace of flame-moe-290m's shape (8 layers, 64 experts, top-6)
flame="$TMP/flame.jsonl"
run 0 synth -o "$flame" --layers 8 --experts 64 -k 6 --sequences 3 --tokens 6
run 0 simulate "$flame" --model flame-moe-290m --hardware h100-pcie5 --json "$TMP/sim.json"
run 0 simulate "$flame" --model tests/fuzz/corpus/fuzz_profile/flame-moe-290m.json \
  --hardware rtx4090-pcie4 --policy lru,gated,oracle --cache-experts 8,16 --horizon 1,2 --sweep \
  --csv "$TMP/sweep.csv"
run 0 fit "$flame" -p ngram -o "$TMP/flame-ngram.json"
run 0 simulate "$flame" --model flame-moe-290m --hardware h100-pcie5 --policy predict,gated \
  --predictor "$TMP/flame-ngram.json"
run 1 simulate "$flame" --model flame-moe-290m --hardware h100-pcie5 --policy predict \
  --predictor tests/bad/predictor/prior_negative.json
run 0 simulate "$flame" --model flame-moe-290m --hardware h100-pcie5 --policy lru,gated,oracle \
  --cache-sized 128 --horizon 2
run 0 reuse "$flame" --json "$TMP/reuse.json"
run 0 reuse "$flame" -p none
run 0 reuse --help
run 2 reuse
run 1 reuse "$small" -p prior --json "$TMP/missing/reuse.json"
run 0 simulate --help
# the runtime's guesses: a what-if copy, scored by eval, replayed and swept by simulate
run 0 guesses "$flame" --recall 0.8 --ahead 2 --seed 5 -o "$TMP/flame-guesses.jsonl"
run 0 guesses --help
run 2 guesses "$flame" -o "$TMP/no-recall.jsonl"
run 0 eval "$TMP/flame-guesses.jsonl" -p hint,prior --horizon 1,2 --resamples 20
run 0 simulate "$TMP/flame-guesses.jsonl" --model flame-moe-290m --hardware h100-pcie5 \
  --policy predict,gated --predictor hint --horizon 2
run 0 simulate "$flame" --model flame-moe-290m --hardware gh200-c2c --policy gated \
  --horizon 2 --what-if-recall 0.5,1 --json "$TMP/whatif.json"
run 2 simulate "$flame" --model flame-moe-290m --hardware gh200-c2c --what-if-recall 1.5
run 0 simulate "$flame" --model flame-moe-290m --hardware rtx4090-pcie4 --policy gated,hybrid \
  --horizon 2 --what-if-evict 1,all --csv "$TMP/evict.csv"
run 2 simulate "$flame" --model flame-moe-290m --hardware rtx4090-pcie4 --what-if-evict 0
run 0 replay "$flame" --backend cpu --policy lru,predict,gated --cache-experts 8 --expert-bytes 4K \
  --attn-us 0 --ffn-us 0 --tokens 8 --warmup 2
run 0 replay --help
for f in tests/bad/profiles/model_*.json; do
  run 1 simulate "$flame" --model "$f" --hardware h100-pcie5
done
for f in tests/bad/profiles/hw_*.json; do
  run 1 simulate "$flame" --model flame-moe-290m --hardware "$f"
done
run 2 simulate "$flame" --model mixtral-8x7b-int2 --hardware h100-pcie5
for f in tests/bad/*.jsonl; do
  run 1 info --layers 32 --experts 8 "$f"
done
for f in tests/bad/accepted/*.jsonl; do
  run 0 info "$f"
done

# a real trace when ../shared is there (never copied into the tree)
real=../shared/data/mixtral-8x7b-instruct/humaneval_2_routing.jsonl
if [ -f "$real" ]; then
  run 0 info "$real"
  run 0 simulate "$real" --model mixtral-8x7b --hardware h100-pcie5 --policy lru,gated,oracle
else
  echo "skip: $real absent (fresh clone): real-trace runs skipped"
fi

echo "valgrind memcheck: $runs runs, $failures failed"
[ "$failures" -eq 0 ]
