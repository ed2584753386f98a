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

import numpy as np
import pydicom

VARIANTS = [("axial", 9001, []), ("coronal", 9002, ["--orientation", "coronal"]),
            ("oblique", 9003, ["--orientation", "oblique"]), ("reversed", 9004, ["--reverse"]),
            ("tilted", 9005, ["--tilt", "12"])]


def read_nrrd(path):
    with open(path, "rb") as f:
        data = f.read()
    head, _, raw = data.partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines()[1:] if ": " in line)
    sx, sy, sz = map(int, fields["sizes"].split())
    assert fields["encoding"] == "raw" and fields["type"] == "uint8"
    return np.frombuffer(raw, dtype=np.uint8).reshape(sz, sy, sx)


def seg_labels(seg_path, geometry, label_of_segment):
    """Label volume [k][j][i] on the truth grid from the SEG frames, each frame
    placed by its ImagePositionPatient (must be a source slice position)."""
    size = geometry["size"]
    origin = np.array(geometry["origin"], float)
    m = np.array(geometry["direction"], float).reshape(3, 3) * np.array(geometry["spacing"], float)
    out = np.zeros((size[2], size[1], size[0]), np.uint8)
    seg = pydicom.dcmread(seg_path)
    px = seg.pixel_array.reshape(int(seg.NumberOfFrames), size[1], size[0])
    for f, pf in enumerate(seg.PerFrameFunctionalGroupsSequence):
        s = int(pf.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.array([float(v) for v in pf.PlanePositionSequence[0].ImagePositionPatient])
        idx = np.linalg.solve(m, ipp - origin)
        k = int(round(idx[2]))
        if abs(idx[0]) > 1e-3 or abs(idx[1]) > 1e-3 or abs(idx[2] - k) > 1e-3 or not 0 <= k < size[2]:
            raise SystemExit("%s: frame %d at %s is not on a source slice" % (seg_path, f + 1, ipp))
        lab = label_of_segment.get(s)
        if lab:
            out[k][px[f] > 0] = lab
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("medinfer")
    ap.add_argument("card")
    ap.add_argument("work")
    ap.add_argument("--size", default="160x160x96")
    ap.add_argument("--min-dice", type=float, default=0.90)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    card = json.load(open(a.card))
    worst, rows = 1.0, []
    for name, seed, extra in VARIANTS:
        study = os.path.join(a.work, name)
        subprocess.run([a.medinfer, "phantom", "--out", study, "--seed", str(seed), "--size", a.size] + extra,
                       check=True, stdout=subprocess.DEVNULL)
        out = os.path.join(a.work, name + "-seg")
        subprocess.run([a.medinfer, "segment", "--model", a.card, "--input", os.path.join(study, "dicom"), "--output",
                        out, "--threads", "2"], check=True, stderr=subprocess.DEVNULL)
        truth_info = json.load(open(os.path.join(study, "truth", "labels.json")))
        truth = read_nrrd(os.path.join(study, "truth", "labels.nrrd"))
        phantom_value = {l["name"]: l["value"] for l in truth_info["labels"]}
        # SEG segment s is card label s-1 (written in card order).
        card_labels = card["output"]["labels"]
        seg_to_value = {i + 1: l["value"] for i, l in enumerate(card_labels)}
        pred = seg_labels(glob.glob(os.path.join(out, "*.seg.dcm"))[0], truth_info["geometry"], seg_to_value)
        scores = {}
        for l in card_labels:
            if l["name"] not in phantom_value:
                continue
            t, p = truth == phantom_value[l["name"]], pred == l["value"]
            denom = t.sum() + p.sum()
            scores[l["name"]] = 2.0 * (t & p).sum() / denom if denom else 1.0
            worst = min(worst, scores[l["name"]])
        rows.append((name, scores))
    names = [l["name"] for l in card["output"]["labels"] if any(l["name"] in s for _, s in rows)]
    print("%-10s" % "variant" + "".join("%13s" % n[:12] for n in names))
    for name, scores in rows:
        print("%-10s" % name + "".join("%13.3f" % scores.get(n, float("nan")) for n in names))
    print("worst Dice %.3f (bound %.2f)" % (worst, a.min_dice))
    return 0 if worst >= a.min_dice else 1


if __name__ == "__main__":
    sys.exit(main())
