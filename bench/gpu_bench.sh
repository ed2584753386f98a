#!/bin/sh
# medinfer's CUDA backend vs PyTorch on this machine's GPU (bench/gpu_bench.py).
# Builds build-gpu/ (Release, CUDA backend on; MEDINFER_GPU_BUILD=dir picks
# another) and runs the comparison with $PYTHON (default python3: it needs
# PyTorch with CUDA and torchvision).
#
# usage: bench/gpu_bench.sh [--runs N] [--only resnet50_b1|resnet50_b32|unet3d_128|ct512]...
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MEDINFER_GPU_BUILD:-$root/build-gpu}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMEDINFER_WITH_CUDA=ON >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target medinfer medinfer-bench medinfer_cuda >/dev/null
exec "${PYTHON:-python3}" "$root/bench/gpu_bench.py" --build "$build" "$@"
