#!/usr/bin/env bash
# Installs what is missing, builds medinfer, and runs the main job on the
# bundled demo study (a synthetic torso CT made by the phantom generator).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
out=demo-output
rm -rf "$out"
./build/cli/medinfer phantom --out "$out/study" --seed 7 --size 192x192x80
./build/cli/medinfer list "$out/study"
