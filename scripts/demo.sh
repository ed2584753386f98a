#!/usr/bin/env bash
# Installs what is missing, builds medinfer, and runs the main job on the
# demo study: a synthetic torso CT from the phantom generator, segmented with
# the bundled demo-organs model into a DICOM SEG, then scored per organ
# (Dice) against the phantom's truth through the SEG read back with pydicom;
# then the bundled demo-lesions detector on the same study with lesions:
# DICOM SR, Slicer markups and a review page.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
out=demo-output
rm -rf "$out"
./build/cli/medinfer phantom --out "$out/study" --seed 4242 --size 256x256x120 --lesions 6
./build/cli/medinfer list "$out/study/dicom"
./build/cli/medinfer segment --model demo-organs --input "$out/study/dicom" --output "$out/seg" --threads "$(nproc)"
/usr/bin/python3 models/scripts/seg_dice.py "$out/study" "$(ls "$out"/seg/*.seg.dcm | head -1)" \
  models/demo-organs/demo-organs.card.json
echo "SEG and report: $out/seg/"
./build/cli/medinfer detect --model demo-lesions --input "$out/study/dicom" --output "$out/detect" --threads "$(nproc)"
echo "Findings (findings.json, .csv, .mrk.json, .sr.dcm, review/index.html): $(ls -d "$out"/detect/*.findings)"
