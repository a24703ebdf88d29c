#!/usr/bin/env bash
# One ctest entry over the Criterion cases of a test binary that match a filter
# (tests/CMakeLists.txt registers up to three per binary: the cases that need
# nothing, the *_real suites that need ../shared, the *_cuda suites that need a
# CUDA device). Prints the binary's report, then the line
#   cases: P passed, F failed, S skipped
# that tests/count_cases.sh adds up, and exits 77 - a skip for ctest - when no
# case passed and some skipped (the prerequisite is absent); otherwise the
# binary's status (non-zero also when it printed no result at all).
# usage: run_cases.sh BINARY FILTER [criterion options]
set -u
bin=$1
filter=$2
shift 2
log=$(mktemp /tmp/expertcast-cases.XXXXXX)
trap 'rm -f "$log"' EXIT
"$bin" --filter="$filter" --verbose "$@" >"$log" 2>&1
rc=$?
cat "$log"
syn=$(grep -a "Synthesis:" "$log" | tail -n 1)
field() { sed -n "s/.*$1: \([0-9]*\).*/\1/p" <<<"$syn"; }
if [ -z "$syn" ]; then
  passed=0 failed=1
  [ "$rc" -ne 0 ] || rc=1
else
  passed=$(field Passing)
  failed=$(($(field Failing) + $(field Crashing)))
fi
# (cases the filter leaves out are reported as "[SKIP] ...: Test is disabled")
skipped=$(grep -a '\[SKIP\]' "$log" | grep -vc ': Test is disabled$')
echo "cases: $passed passed, $failed failed, $skipped skipped"
if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ] && [ "$skipped" -gt 0 ]; then
  exit 77
fi
exit "$rc"
