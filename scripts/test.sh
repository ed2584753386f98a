#!/usr/bin/env bash
# Installs what is missing, builds medinfer and runs the whole test suite:
# the release build under ctest, then the engine under AddressSanitizer and
# UndefinedBehaviorSanitizer (conformance cases and mutated model files).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEDINFER_SANITIZE=ON \
      -DMEDINFER_WITH_DICOM=OFF -DMEDINFER_WITH_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -L engine)
