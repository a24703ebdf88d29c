#!/usr/bin/env bash
# Installs what expertcast needs to build and test on Debian/Ubuntu, when missing.
# Usage: bash .ci/deps.sh [--with-fuzz]
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

want=(cmake gcc make pkg-config libcjson-dev libcriterion-dev gnuplot-nox valgrind)
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
