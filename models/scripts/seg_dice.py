"""Per-organ Dice of a medinfer SEG against a phantom study's truth, read back
with pydicom (each frame placed by its ImagePositionPatient, so the SEG must
land on the source voxels).

usage: seg_dice.py STUDY_DIR SEG_FILE CARD   (STUDY_DIR as `medinfer phantom --out` writes it)
Prints one line per organ of the card that the phantom also labels."""
import json
import os
import sys

import numpy as np
import pydicom


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


def dice_table(study, seg_path, card):
    """{organ name: Dice} for the card labels the phantom also has."""
    truth_info = json.load(open(os.path.join(study, "truth", "labels.json")))
    truth = read_nrrd(os.path.join(study, "truth", "labels.nrrd"))
    phantom_value = {l["name"]: l["value"] for l in truth_info["labels"]}
    card_labels = card["output"]["labels"]
    # SEG segment s is card label s-1 (written in card order).
    seg_to_value = {i + 1: l["value"] for i, l in enumerate(card_labels)}
    pred = seg_labels(seg_path, truth_info["geometry"], seg_to_value)
    scores = {}
    for l in card_labels:
        if l["name"] not in phantom_value:
            continue
        t, p = truth == phantom_value[l["name"]], pred == l["value"]
        denom = t.sum() + p.sum()
        scores[l["name"]] = 2.0 * (t & p).sum() / denom if denom else 1.0
    return scores


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    scores = dice_table(sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])))
    for name, d in scores.items():
        print("%-14s Dice %.3f" % (name, d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
