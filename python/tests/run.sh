#!/usr/bin/env bash
# Runs the Python package's tests from the source tree (python/src) with
# pytest. The interpreter: $EXPERTCAST_PYTHON, else the repository's .venv
# (made by .ci/deps.sh). Exit 77 (skip) when it or pytest is missing, except
# under CI (CI set), where that is a failure. pytest's "no tests collected"
# (exit 5) is a failure, never a pass.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="${EXPERTCAST_PYTHON:-$repo/.venv/bin/python}"
if ! [ -x "$py" ] || ! "$py" -c "import pytest" 2>/dev/null; then
  msg="python tests: no interpreter with pytest at $py (bash .ci/deps.sh makes .venv)"
  if [ -n "${CI:-}" ]; then echo "FAIL: $msg" >&2; exit 1; fi
  echo "SKIP: $msg" >&2
  exit 77
fi
export PYTHONPATH="$repo/python/src${PYTHONPATH:+:$PYTHONPATH}"
cd "$repo"
"$py" -m pytest -q -rs -p no:cacheprovider python/tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "FAIL: pytest collected no tests in python/tests" >&2
  exit 1
fi
exit "$rc"
