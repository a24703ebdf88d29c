#!/usr/bin/env bash
# bench/gpu/run.sh [OUT]: the loader's GPU checks and benchmark in one call on a lent GPU
# machine (nvcc, CMake and a GPU; no cJSON, no Criterion, no network), within 8 minutes.
#
#   1. unpacks the Debian packages carried in .deb/ (bench/gpu/fetch_debs.sh) into a
#      private prefix with dpkg -x, and checks that a Criterion test links and runs;
#   2. configures and builds with CUDA (Release, sm_${EC_CUDA_ARCH:-90});
#   3. runs test_backend and test_loader (the CUDA cases, the 1M-operation integrity
#      stress on CUDA included; test_backend's ffn_q4_matches_the_host_kernel checks the
#      4-bit kernel against the host kernel), test_hostffn, the CUDA cases of test_pregate
#      (the pre-gate kernel writing pinned host memory) and test_hints, and the README's
#      decode-loop example;
#   4. runs gpu_replay: 88 MB fp16 experts, 32 layers, 4 of 8 experts per layer, every
#      policy (hybrid included: its host runs the FFN on the host, timed in the run, so
#      the host takes a miss only where that beats a copy), then a short replay that
#      checksums every acquired slot on the device, then real 4-bit Mixtral-sized experts
#      (q4_0, 4096 x 14336, 99 MB; 8 layers) with every acquired slot checksummed and the
#      q4 kernel timed;
#   5. bench_host_ffn: the host kernel's weight GB/s against the host's read bandwidth;
#   6. time allowing, compute-sanitizer (memcheck, racecheck) over short loader tests.
#
# Everything goes under OUT ($1, else $OUT, else out/gpu): the JSON results, summary.txt,
# run.log and logs.tar.gz with every other log (at most 8 files, as the device tool returns).
# Exit status: 0 when every required step passed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-${OUT:-$ROOT/out/gpu}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
exec > >(tee -a "$OUT/run.log") 2>&1

T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
step() { echo; echo "== [$(elapsed) s] $*"; }
FAILED=()
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
# run NAME TIMEOUT CMD...: runs CMD with a time limit, its output in OUT/NAME.log
run() {
  local name=$1 limit=$2
  shift 2
  step "$name: $*"
  local t=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  note "$name: exit $rc after $(( $(date +%s) - t )) s"
  [ $rc -eq 0 ] || FAILED+=("$name")
  return $rc
}

BUILD=${EC_BUILD_DIR:-$ROOT/build-gpu}
DEPS=$BUILD/deps
LIBDIR=$DEPS/usr/lib/x86_64-linux-gnu

step "dependencies from $ROOT/.deb"
mkdir -p "$DEPS"
n_deb=0
for d in "$ROOT"/.deb/*.deb; do
  [ -e "$d" ] || continue
  dpkg -x "$d" "$DEPS" && n_deb=$((n_deb + 1))
done
note "unpacked $n_deb packages into $DEPS"
export LD_LIBRARY_PATH="$LIBDIR:$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CPATH="$DEPS/usr/include${CPATH:+:$CPATH}"

TESTS=ON
cat > "$BUILD/probe.c" <<'EOF'
#include <criterion/criterion.h>
Test(probe, links_and_runs) { cr_assert(1); }
EOF
if ! cc "$BUILD/probe.c" -I"$DEPS/usr/include" -L"$LIBDIR" -lcriterion \
     -Wl,-rpath-link,"$LIBDIR" -o "$BUILD/probe" > "$OUT/probe.log" 2>&1 \
   || ! "$BUILD/probe" >> "$OUT/probe.log" 2>&1; then
  TESTS=OFF
  note "Criterion unusable here (see probe.log): the tests are not built"
  FAILED+=("criterion")
fi

step "configure and build (CUDA arch ${EC_CUDA_ARCH:-90})"
command -v nvidia-smi > /dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
nvcc --version > "$OUT/nvcc.txt" 2>&1
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DEC_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${EC_CUDA_ARCH:-90}" -DEC_BUILD_TESTS=$TESTS -DEC_BUILD_BENCH=ON \
  -DCMAKE_PREFIX_PATH="$DEPS/usr" -DCMAKE_INCLUDE_PATH="$DEPS/usr/include" \
  -DCMAKE_LIBRARY_PATH="$LIBDIR" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$LIBDIR -Wl,-rpath,$LIBDIR" \
  > "$OUT/configure.log" 2>&1 || { tail -n 30 "$OUT/configure.log"; note "configure failed"; exit 1; }
TARGETS=(expertcast gpu_replay example_decode_loop bench_host_ffn)
[ "$TESTS" = ON ] && TARGETS+=(test_backend test_loader test_replay test_hostffn test_pregate test_hints)
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" > "$OUT/build.log" 2>&1 \
  || { tail -n 40 "$OUT/build.log"; note "build failed"; exit 1; }
note "built ${TARGETS[*]} in $(elapsed) s"

if [ "$TESTS" = ON ]; then
  run test_backend 120 "$BUILD/tests/test_backend" --verbose --jobs 4
  run test_loader 300 "$BUILD/tests/test_loader" --verbose --jobs 4
  run test_replay 60 "$BUILD/tests/test_replay" --verbose
  run test_hostffn 60 "$BUILD/tests/test_hostffn" --verbose
  run test_pregate 60 "$BUILD/tests/test_pregate" --verbose --filter 'pregate_cuda/*'
  run test_hints 120 "$BUILD/tests/test_hints" --verbose --filter 'hints_cuda/*'
  grep -h -E "^\[(SKIP|FAIL)|stress on|Synthesis" "$OUT"/test_*.log | tee -a "$SUMMARY"
fi
run example 60 "$BUILD/bench/example_decode_loop"

run gpu_replay 300 "$BUILD/bench/gpu_replay" --trace data/sample_trace.jsonl --json "$OUT/replay.json"
run gpu_replay_verify 120 "$BUILD/bench/gpu_replay" --layers 8 --tokens 12 --warmup 2 \
  --policies lru,predict,oracle --verify --json "$OUT/replay_verify.json"
run gpu_replay_q4 150 "$BUILD/bench/gpu_replay" --dtype q4 --d-model 4096 --d-ff 14336 \
  --layers 8 --tokens 16 --warmup 2 --policies lru,gated,oracle --verify \
  --json "$OUT/replay_q4.json"
run bench_host_ffn 90 sh -c "\"$BUILD/bench/bench_host_ffn\" --reps 5 --read-mb 1024 \
  --pool-mb 512 > \"$OUT/host_ffn.json\""

CS=$(command -v compute-sanitizer)
NVCC_DIR=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")
for c in "$NVCC_DIR/compute-sanitizer" "$NVCC_DIR/../compute-sanitizer/compute-sanitizer"; do
  [ -z "$CS" ] && [ -x "$c" ] && CS=$c
done
if [ "$TESTS" = ON ] && [ -n "$CS" ]; then
  if [ "$(elapsed)" -lt 330 ]; then
    run memcheck 60 "$CS" --tool memcheck --target-processes all \
      "$BUILD/tests/test_loader" --filter 'loader_cuda/a_*' --jobs 1
  fi
  if [ "$(elapsed)" -lt 390 ]; then
    run racecheck 60 env EC_STRESS_OPS=20000 "$CS" --tool racecheck \
      --target-processes all "$BUILD/tests/test_loader" --filter 'loader_cuda/integrity*' \
      --jobs 1
  fi
else
  note "compute-sanitizer: not run (no tests or no compute-sanitizer)"
fi

step "done in $(elapsed) s"
# The device tool returns at most 8 files: keep the JSON, the summary and run.log, and
# pack every other log into one archive.
(cd "$OUT" && logs=$(ls -1 *.log *.txt 2>/dev/null | grep -v -x -e run.log -e summary.txt) &&
  [ -n "$logs" ] && tar czf logs.tar.gz $logs && rm -f $logs)
if [ ${#FAILED[@]} -gt 0 ]; then
  note "FAILED: ${FAILED[*]}"
  exit 1
fi
note "all steps passed"
