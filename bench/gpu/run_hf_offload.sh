#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds libexpertcast with CUDA into
# build-gpu, runs the Python tests against it, then bench/gpu/hf_offload.py
# (identical tokens on the cuda backend for every policy, tokens/s against the
# unmodified model and copy-on-use offloading). Needs .venv (bash .ci/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-gpu -DEC_CUDA=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu -j"$(nproc)" --target expertcast_shared expertcast
export EXPERTCAST_LIBRARY="$PWD/build-gpu/libexpertcast.so" EXPERTCAST_CLI="$PWD/build-gpu/expertcast"
export PYTHONPATH="$PWD/python/src"
.venv/bin/python -c 'import expertcast as ec; b = ec.Backend("cuda"); print(b)'
bash python/tests/run.sh
.venv/bin/python bench/gpu/hf_offload.py "$@"
