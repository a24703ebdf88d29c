#!/usr/bin/env bash
# Bounded fuzzing of every parser.
#
# usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  run time per target (default 60)
#   TARGET   fuzz_trace_line, fuzz_pyrepr, fuzz_predictor_json, fuzz_policy,
#            fuzz_rules_json, fuzz_profile (default: all)
# environment:
#   EC_FUZZ_BUILD  build folder (default build-fuzz); CC defaults to clang
#   EC_FUZZ_JSON   when set, a JSON summary (executions per target) is written there
#   EC_FUZZ_RUNS   inputs per target instead of SECONDS (with EC_FUZZ_SEED: repeatable on one machine)
#   EC_FUZZ_SEED   libFuzzer's random seed
#   EC_FUZZ_WORK   folder for the growing corpus and artifacts (default $EC_FUZZ_BUILD/work)
#
# Builds the libFuzzer targets (library instrumented, ASan + UBSan), then runs
# each on its seed corpus (tests/fuzz/corpus/TARGET) and past regressions
# (tests/fuzz/regress/TARGET) with the dictionary tests/fuzz/json.dict. New
# corpus entries go under the work folder, never into the tree. A crash, leak,
# timeout or property violation fails the run and its input is copied into
# tests/fuzz/regress/TARGET/, where tests/test_fuzz_regress.c replays it in
# the normal suite from then on.
set -euo pipefail

# Everything runs inside main, which bash reads whole before running it: the
# script can be edited while a long run is going.
main() {
  cd "$(dirname "$0")/../.."
  SECONDS_PER_TARGET=${1:-60}
  shift || true
  TARGETS=("$@")
  if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(fuzz_trace_line fuzz_pyrepr fuzz_predictor_json fuzz_policy fuzz_rules_json
      fuzz_profile)
  fi
  # the code being fuzzed: the commit when the build starts (+ "-dirty" for local changes)
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git diff --quiet HEAD -- src include 2>/dev/null || commit="$commit-dirty"
  BUILD=${EC_FUZZ_BUILD:-build-fuzz}
  WORK=${EC_FUZZ_WORK:-$BUILD/work}

  CC=${CC:-clang} cmake -S . -B "$BUILD" -DEC_FUZZ=ON -DEC_BUILD_TESTS=OFF -DEC_BUILD_BENCH=OFF \
    -DEC_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j2 --target "${TARGETS[@]}" fuzz_gen_seeds >/dev/null
  # a valid saved model of every registered predictor, current with the registry
  mkdir -p "$WORK/corpus/fuzz_predictor_json"
  ASAN_OPTIONS=detect_leaks=1 "$BUILD/tests/fuzz/fuzz_gen_seeds" "$WORK/corpus/fuzz_predictor_json"

  failed=0
  summary=()
  for t in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$t"
    artifacts="$WORK/artifacts/$t"
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts" "tests/fuzz/regress/$t"
    log="$WORK/$t.log"
    echo "== $t: ${SECONDS_PER_TARGET}s"
    start=$(date +%s)
    set +e
    # -max_len 8192: lines and files large enough for every structure, small
    # enough for fast runs (the 1 MiB line limit is tested in the suite);
    # predictor files get 64 KiB, the size of a small fitted logistic or mix.
    max_len=8192
    [ "$t" = fuzz_predictor_json ] && max_len=65536
    # EC_FUZZ_RUNS (with EC_FUZZ_SEED): a fixed number of inputs from a fixed seed,
    # whatever the machine's speed (the corpus is still read in the file system's
    # order, so another machine may try other inputs). CI uses that.
    budget="-max_total_time=$SECONDS_PER_TARGET"
    [ -n "${EC_FUZZ_RUNS:-}" ] && budget="-runs=$EC_FUZZ_RUNS"
    [ -n "${EC_FUZZ_SEED:-}" ] && budget="$budget -seed=$EC_FUZZ_SEED"
    ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$BUILD/tests/fuzz/$t" $budget -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -dict=tests/fuzz/json.dict -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t" \
        >"$log" 2>&1
    rc=$?
    set -e
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(find "$artifacts" -type f | wc -l)
    echo "   executions ${execs:-0} in ${secs:-?} s, exit $rc, new failing inputs $found"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
      failed=1
      grep -E "property violated|ERROR:|SUMMARY:" "$log" | head -5 || true
      for f in "$artifacts"/*; do
        [ -f "$f" ] || continue
        cp "$f" "tests/fuzz/regress/$t/"
        echo "   copied $(basename "$f") to tests/fuzz/regress/$t/ (commit it with the fix)"
      done
      echo "   full log: $log"
    fi
    summary+=("{\"target\": \"$t\", \"seconds\": ${secs:-0}, \"executions\": ${execs:-0}, \"exit\": $rc, \"failing_inputs\": $found}")
  done

  if [ -n "${EC_FUZZ_JSON:-}" ]; then
    {
      echo "{\"command\": \"tests/fuzz/run.sh $SECONDS_PER_TARGET ${TARGETS[*]}\","
      echo " \"clang\": \"$(${CC:-clang} --version | head -1)\","
      echo " \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
      echo " \"commit\": \"$commit\","
      echo " \"targets\": ["
      for i in "${!summary[@]}"; do
        sep=","; [ "$i" -eq $((${#summary[@]} - 1)) ] && sep=""
        echo "  ${summary[$i]}$sep"
      done
      echo " ]}"
    } >"$EC_FUZZ_JSON"
    echo "summary written to $EC_FUZZ_JSON"
  fi
  if [ "$failed" -ne 0 ]; then
    echo "fuzzing found failures"
    exit 1
  fi
  echo "fuzzing: no failure"
}

main "$@"
