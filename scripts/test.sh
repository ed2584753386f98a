#!/usr/bin/env bash
# Installs what is missing, builds medinfer and runs the whole test suite:
# the release build under ctest (packages and install test included), then
# under AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer the
# engine (conformance cases and mutated model files) and the Slicer module
# (library calls in one process, bad input, abort).
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
# The Slicer module needs DICOM: its own sanitizer tree, building only what
# the plugin tests use (about 7 CPU-minutes to build, 80-100 s to run, 70-86
# of them the demo model three times in ComputeModesAgreeWithFp32).
cmake -S . -B build-asan-plugin -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEDINFER_SANITIZE=ON \
      -DMEDINFER_WITH_CUDA=OFF >/dev/null
cmake --build build-asan-plugin -j "$jobs" --target test_plugin
(cd build-asan-plugin && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -L plugin)
