#!/usr/bin/env bash
# The last line of the test command: adds up the cases of the last ctest run
# in BUILD_DIR (its Testing/Temporary/LastTest.log) and prints
#   N passed, N failed, N skipped
# alone on a line. Entries run through tests/run_cases.sh count their Criterion
# cases; any other entry (soak, install check) counts as one case by its ctest
# result. Exits non-zero when a case failed, when CTEST_RC (ctest's own exit
# status, optional) is non-zero, or when there is no log.
# usage: (ctest --test-dir BUILD_DIR ...; bash tests/count_cases.sh BUILD_DIR $?)
set -u
build=${1:?usage: count_cases.sh BUILD_DIR [CTEST_RC]}
ctest_rc=${2:-0}
log=$build/Testing/Temporary/LastTest.log
if [ ! -f "$log" ]; then
  echo "count_cases: no $log (did ctest run?)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
awk '
  /^[0-9]+\/[0-9]+ Test: / { in_test = 1; have_cases = 0; next }
  /^cases: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/ {
    p += $2; f += $4; s += $6; have_cases = 1; next
  }
  /^Test Passed\./ { if (in_test && !have_cases) p++; in_test = 0 }
  /^Test Failed\./ { if (in_test && !have_cases) f++; in_test = 0 }
  /^Test Skipped/  { if (in_test && !have_cases) s++; in_test = 0 }
  /^Test (Not Run|Timeout|Time-out)/ { if (in_test) f++; in_test = 0 }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s; exit (f > 0) }
' "$log"
rc=$?
[ "$rc" -eq 0 ] && [ "$ctest_rc" -eq 0 ]
