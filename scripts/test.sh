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
# One sanitizer tree (no CUDA), building only what the engine and Slicer
# module tests run: the engine_tests target and test_plugin.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEDINFER_SANITIZE=ON \
      -DMEDINFER_WITH_DICOM=ON -DMEDINFER_WITH_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs" --target engine_tests test_plugin
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -L 'engine|plugin')
