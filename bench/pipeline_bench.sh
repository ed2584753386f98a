#!/bin/sh
# The whole `medinfer segment` job on a 512x512x300 phantom CT with 2 threads:
# seconds per stage (from report.json) and peak memory (/usr/bin/time -v).
#
# usage: bench/pipeline_bench.sh [CARD_OR_NAME] [BUILD_DIR]
#   CARD_OR_NAME  default: models/demo-organs/demo-organs.card.json if present,
#                 else the tests' random U-Net (build/tests/segmentation/models)
#   BUILD_DIR     default: build-seg
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build-seg}
medinfer=$build/cli/medinfer
card=${1:-}
if [ -z "$card" ]; then
  if [ -f "$root/models/demo-organs/demo-organs.card.json" ]; then
    card=$root/models/demo-organs/demo-organs.card.json
  else
    models=$build/tests/segmentation/models
    [ -f "$models/tiny-unet.card.json" ] || /usr/bin/python3 "$root/tests/segmentation/make_models.py" "$models" >/dev/null 2>&1
    card=$models/tiny-unet.card.json
  fi
fi
work=${MEDINFER_BENCH_DIR:-/tmp/medinfer-pipeline-bench}
threads=${MEDINFER_BENCH_THREADS:-2}
if [ ! -f "$work/study/truth/labels.nrrd" ]; then
  rm -rf "$work"
  "$medinfer" phantom --out "$work/study" --size 512x512x300 --seed 4242 >/dev/null
fi
rm -rf "$work/out"
/usr/bin/time -v "$medinfer" segment --model "$card" --input "$work/study/dicom" --output "$work/out" \
  --threads "$threads" 2>"$work/time.log" || { cat "$work/time.log"; exit 1; }
/usr/bin/python3 - "$work/out/report.json" "$work/time.log" "$card" "$threads" <<'PY'
import json, re, sys
rep = json.load(open(sys.argv[1]))
s = rep["series"][0]
if s["status"] != "ok":
    sys.exit("series failed: %s" % s.get("reason"))
log = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))
wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", log).group(1)
print("model %s, %s threads, series %s, model grid %s" % (sys.argv[3], sys.argv[4], s["size"], s["model_grid"]))
print("| stage | seconds |\n|---|---|")
for k in ("read", "preprocess", "inference", "postprocess", "write", "total"):
    print("| %s | %.2f |" % (k, s["seconds"][k]))
print("| wall (process) | %s |" % wall)
print("| peak RSS | %.2f GB |" % (rss / 1024.0 / 1024.0))
PY
