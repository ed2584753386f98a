"""A CPU mode (--bf16, or --fast: Winograd 3x3 convolutions) against the exact
FP32 mode on the demo model's phantom studies: each organ's Dice between the
SEG written in that mode and the one written without it (both read back with
pydicom) must be at least --min-dice.

usage: mode_dice_test.py MEDINFER CARD WORK_DIR --mode bf16|fast [--size CxRxS] [--min-dice D]
Exit 77 (skipped) where the CPU lacks the mode ('medinfer devices': bf16 needs
AVX512-BF16, fast AVX2 or AVX-512)."""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "scripts"))
from seg_dice import seg_labels  # noqa: E402

VARIANTS = [("axial", 9011, []), ("oblique", 9012, ["--orientation", "oblique"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("medinfer")
    ap.add_argument("card")
    ap.add_argument("work")
    ap.add_argument("--size", default="160x160x96")
    ap.add_argument("--min-dice", type=float, default=0.99)
    ap.add_argument("--mode", choices=("bf16", "fast"), required=True)
    a = ap.parse_args()
    devs = subprocess.run([a.medinfer, "devices"], check=True, capture_output=True, text=True).stdout
    cpu = next((l for l in devs.splitlines() if l.startswith("cpu")), "")
    if a.mode + " (" not in cpu:
        print("SKIPPED: no %s mode on this CPU:\n%s" % (a.mode, devs))
        return 77
    shutil.rmtree(a.work, ignore_errors=True)
    card = json.load(open(a.card))
    labels = card["output"]["labels"]
    seg_to_value = {i + 1: l["value"] for i, l in enumerate(labels)}
    worst = 1.0
    for name, seed, extra in VARIANTS:
        study = os.path.join(a.work, name)
        subprocess.run([a.medinfer, "phantom", "--out", study, "--seed", str(seed), "--size", a.size] + extra,
                       check=True, stdout=subprocess.DEVNULL)
        geometry = json.load(open(os.path.join(study, "truth", "labels.json")))["geometry"]
        vols = {}
        for mode, flags in (("fp32", []), (a.mode, ["--" + a.mode])):
            out = os.path.join(a.work, "%s-%s" % (name, mode))
            p = subprocess.run([a.medinfer, "segment", "--model", a.card, "--input", os.path.join(study, "dicom"),
                                "--output", out, "--threads", "2"] + flags, check=True, capture_output=True, text=True)
            dev = json.load(open(os.path.join(out, "report.json")))["device"]
            if mode == a.mode and a.mode not in dev:
                print("FAIL: --%s did not take effect (device %r)" % (a.mode, dev))
                return 1
            vols[mode] = seg_labels(glob.glob(os.path.join(out, "*.seg.dcm"))[0], geometry, seg_to_value)
        row = []
        for l in labels:
            f, b = vols["fp32"] == l["value"], vols[a.mode] == l["value"]
            denom = f.sum() + b.sum()
            if not denom:
                continue
            d = 2.0 * (f & b).sum() / denom
            worst = min(worst, d)
            row.append("%s %.4f" % (l["name"], d))
        changed = int((vols["fp32"] != vols[a.mode]).sum())
        print("%-8s %d voxels differ; Dice %s vs fp32: %s" % (name, changed, a.mode, ", ".join(row)))
    print("worst Dice %.4f (bound %.2f)" % (worst, a.min_dice))
    return 0 if worst >= a.min_dice else 1


if __name__ == "__main__":
    sys.exit(main())
