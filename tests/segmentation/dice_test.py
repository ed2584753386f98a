"""Accuracy of a model on phantom studies from seeds never used in training,
measured on the written SEG read back with pydicom (so the SEG must land on
the source voxels), against the phantom's truth.

usage: dice_test.py MEDINFER CARD WORK_DIR [--size CxRxS] [--min-dice 0.9]
Variants: axial, coronal, oblique, reversed slice order, gantry tilt.  Card
labels are matched to phantom labels by name.  Prints a Dice table; exit 1
if any organ of any variant is below the bound."""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "scripts"))
from seg_dice import dice_table  # noqa: E402

VARIANTS = [("axial", 9001, []), ("coronal", 9002, ["--orientation", "coronal"]),
            ("oblique", 9003, ["--orientation", "oblique"]), ("reversed", 9004, ["--reverse"]),
            ("tilted", 9005, ["--tilt", "12"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("medinfer")
    ap.add_argument("card")
    ap.add_argument("work")
    ap.add_argument("--size", default="160x160x96")
    ap.add_argument("--min-dice", type=float, default=0.90)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N; exit 77 (skipped) when not usable")
    a = ap.parse_args()
    if a.device != "cpu":
        want = a.device if ":" in a.device else a.device + ":0"
        devs = subprocess.run([a.medinfer, "devices"], check=True, capture_output=True, text=True).stdout
        if want not in devs.split():
            print("SKIPPED: %s is not usable here:\n%s" % (want, devs))
            return 77
    shutil.rmtree(a.work, ignore_errors=True)
    card = json.load(open(a.card))
    worst, rows = 1.0, []
    for name, seed, extra in VARIANTS:
        study = os.path.join(a.work, name)
        subprocess.run([a.medinfer, "phantom", "--out", study, "--seed", str(seed), "--size", a.size] + extra,
                       check=True, stdout=subprocess.DEVNULL)
        out = os.path.join(a.work, name + "-seg")
        subprocess.run([a.medinfer, "segment", "--model", a.card, "--input", os.path.join(study, "dicom"), "--output",
                        out, "--threads", "2", "--device", a.device], check=True, stderr=subprocess.DEVNULL)
        scores = dice_table(study, glob.glob(os.path.join(out, "*.seg.dcm"))[0], card)
        worst = min([worst] + list(scores.values()))
        rows.append((name, scores))
    names = [l["name"] for l in card["output"]["labels"] if any(l["name"] in s for _, s in rows)]
    print("%-10s" % "variant" + "".join("%13s" % n[:12] for n in names))
    for name, scores in rows:
        print("%-10s" % name + "".join("%13.3f" % scores.get(n, float("nan")) for n in names))
    print("worst Dice %.3f (bound %.2f)" % (worst, a.min_dice))
    return 0 if worst >= a.min_dice else 1


if __name__ == "__main__":
    sys.exit(main())
