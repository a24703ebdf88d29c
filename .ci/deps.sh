#!/usr/bin/env bash
# Installs what expertcast needs to build and test on Debian/Ubuntu, when missing.
# Usage: bash .ci/deps.sh [--with-fuzz]
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

want=(cmake gcc make pkg-config libcjson-dev libcriterion-dev gnuplot-nox valgrind python3 python3-venv)
if [ "${1:-}" = "--with-fuzz" ]; then want+=(clang libclang-rt-dev); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # dpkg's unpacking chatter goes to a log; on failure its tail is shown
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
           "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "deps.sh: installing ${missing[*]} failed (apt-get output above)" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "installed: ${missing[*]}"
fi

# The Python package's tests (python/tests) run in .venv at the repository
# root: PyPI's torch, transformers, safetensors and pytest at the versions of
# python/requirements-test.txt (several GB: PyPI's torch wheel brings its CUDA
# libraries; Debian's python3-torch 1.13 is too old for transformers 5).
# Reinstalled only when that file changes. EXPERTCAST_NO_PYTHON=1 skips this
# (the python ctest entry then skips, saying so; under CI it fails).
if [ -z "${EXPERTCAST_NO_PYTHON:-}" ]; then
  repo="$(cd "$(dirname "$0")/.." && pwd)"
  venv="$repo/.venv"
  reqs="$repo/python/requirements-test.txt"
  stamp="$venv/.expertcast-requirements"
  if ! [ -x "$venv/bin/python" ] || ! cmp -s "$reqs" "$stamp"; then
    echo "python: installing $(grep -v '^#' "$reqs" | tr '\n' ' ')into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$stamp"
  fi
fi
