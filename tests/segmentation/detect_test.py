#!/usr/bin/python3
"""`medinfer detect` end to end with the shipped demo detector.

usage: detect_test.py MEDINFER CARD WORKDIR [--seeds 6000,6001,...]

Accuracy: phantom studies from seeds never used in training (training uses
2000..), 8 lesions each (radius 3-10 mm, diameters 6-20 mm).  The findings are
read back from the written DICOM SR with pydicom (the ELLIPSOID's centre is the
mean of its six axis end points), matched to the phantom's lesions (a finding
whose centre lies inside a lesion's sphere grown by 2 mm), and the test
requires recall >= 0.9 over all lesions, at most 1 false positive per volume
on average and at most 2 per volume, and a mean centre error <= 2 mm.  Every SR
passes dciodvfy without "Error" lines; findings.json agrees with the SR.
Then: rerun skips, --force rewrites, a card whose anchors do not fit the
network fails naming the output, a series smaller than the card's minimum is
reported as not applicable, and no temporary folder is left behind."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom


def run(cmd, ok=(0,)):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode not in ok:
        print(p.stdout)
        raise SystemExit("FAIL: %s exited %d" % (" ".join(cmd), p.returncode))
    return p


def concept(it):
    s = it.ConceptNameCodeSequence[0]
    return "%s:%s" % (s.CodingSchemeDesignator, s.CodeValue)


def sr_findings(path):
    """[(tracking id, centre (3,), score)] from the SR's measurement groups."""
    sr = pydicom.dcmread(path)
    out = []

    def walk(items):
        for it in items:
            if "ConceptNameCodeSequence" in it and concept(it) == "DCM:125007":
                tid, ctr, score = None, None, None
                for c in it.ContentSequence:
                    k = concept(c)
                    if k == "DCM:112039":
                        tid = c.TextValue
                    elif k == "DCM:111012":
                        score = float(c.MeasuredValueSequence[0].NumericValue) / 100
                    elif k == "DCM:121231" and c.GraphicType == "ELLIPSOID":
                        ctr = np.array([float(v) for v in c.GraphicData]).reshape(6, 3).mean(0)
                out.append((tid, ctr, score))
            elif "ContentSequence" in it:
                walk(it.ContentSequence)

    walk(sr.ContentSequence)
    return out


def main():
    medinfer, card, work = sys.argv[1:4]
    seeds = [6000, 6001, 6002, 6003, 6004]
    if "--seeds" in sys.argv:
        seeds = [int(s) for s in sys.argv[sys.argv.index("--seeds") + 1].split(",")]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    total = found = 0
    fps, errors = [], []
    print("seed  lesions  found  FP  mean centre error (mm)")
    for seed in seeds:
        d = os.path.join(work, "p%d" % seed)
        run([medinfer, "phantom", "--out", d, "--seed", str(seed), "--lesions", "8"])
        truth = json.load(open(os.path.join(d, "truth", "labels.json")))
        out = os.path.join(work, "o%d" % seed)
        run([medinfer, "detect", "--model", card, "--input", os.path.join(d, "dicom"), "--output", out])
        uid = truth["series_instance_uid"]
        folder = os.path.join(out, uid + ".findings")
        sr = os.path.join(folder, "findings.sr.dcm")
        v = run(["dciodvfy", sr], ok=(0, 1, 255))
        bad = [l for l in v.stdout.splitlines() if l.startswith("Error")]
        if bad:
            raise SystemExit("FAIL: dciodvfy %s:\n%s" % (sr, "\n".join(bad)))
        got = sr_findings(sr)
        js = json.load(open(os.path.join(folder, "findings.json")))
        if len(js["findings"]) != len(got):
            raise SystemExit("FAIL: findings.json has %d findings, the SR %d" % (len(js["findings"]), len(got)))
        for f, (tid, ctr, score) in zip(js["findings"], got):
            if f["name"] != tid or abs(f["score"] - score) > 1e-5 or np.abs(np.array(f["center_mm"]) - ctr).max() > 1e-3:
                raise SystemExit("FAIL: findings.json and the SR disagree on %s" % tid)
        used = set()
        errs = []
        for les in truth["lesions"]:
            c, r = np.array(les["center_mm"]), les["radius_mm"]
            best = None
            for i, (_, ctr, _) in enumerate(got):
                dist = float(np.linalg.norm(ctr - c))
                if i not in used and dist <= r + 2 and (best is None or dist < best[1]):
                    best = (i, dist)
            total += 1
            if best:
                used.add(best[0])
                found += 1
                errs.append(best[1])
        fp = len(got) - len(used)
        fps.append(fp)
        errors += errs
        print("%d  %7d  %5d  %2d  %.2f" % (seed, len(truth["lesions"]), len(used), fp,
                                          float(np.mean(errs)) if errs else float("nan")))
    recall = found / total
    print("recall %.3f (%d/%d), false positives per volume %.2f (max %d), centre error mean %.2f mm, max %.2f mm" %
          (recall, found, total, float(np.mean(fps)), max(fps), float(np.mean(errors)), float(np.max(errors))))
    if recall < 0.9 or np.mean(fps) > 1 or max(fps) > 2 or np.mean(errors) > 2:
        raise SystemExit("FAIL: below the bar (recall >= 0.9, <= 1 FP per volume, centre error <= 2 mm)")

    # Rerun: skipped; --force: rewritten; no temporary folders left.
    seed = seeds[0]
    src, out = os.path.join(work, "p%d" % seed, "dicom"), os.path.join(work, "o%d" % seed)
    p = run([medinfer, "detect", "--model", card, "--input", src, "--output", out])
    if "1 already there" not in p.stdout:
        raise SystemExit("FAIL: rerun did not skip the existing folder:\n" + p.stdout)
    run([medinfer, "detect", "--model", card, "--input", src, "--output", out, "--force"])
    left = [n for n in os.listdir(out) if ".tmp-" in n]
    if left:
        raise SystemExit("FAIL: temporary files left: %s" % left)

    # A card whose anchors do not fit the network's output channels.
    bad_card = os.path.join(work, "bad-anchors.card.json")
    c = json.load(open(card))
    c["model"] = os.path.join(os.path.dirname(os.path.abspath(card)), c["model"])
    c["output"]["head"]["outputs"][0]["anchors"].append([3, 3, 3])
    json.dump(c, open(bad_card, "w"))
    p = run([medinfer, "detect", "--model", bad_card, "--input", src, "--output", os.path.join(work, "bad")], ok=(1,))
    if "'det' has 8 channels" not in p.stdout or "2 anchors" not in p.stdout:
        raise SystemExit("FAIL: wrong anchors not named:\n" + p.stdout)

    # A series smaller than the card's minimum size: reported, not run.
    small = os.path.join(work, "small")
    run([medinfer, "phantom", "--out", small, "--size", "24x24x8", "--lesions", "1"])
    p = run([medinfer, "detect", "--model", card, "--input", os.path.join(small, "dicom"), "--output",
             os.path.join(work, "small-out")], ok=(1,))
    rep = json.load(open(os.path.join(work, "small-out", "report.json")))
    s = rep["series"][0]
    if s["status"] != "skipped" or "smaller than" not in s.get("reason", ""):
        raise SystemExit("FAIL: small series: %s" % s)
    # A segmentation card given to detect names the right command.
    print("OK")


if __name__ == "__main__":
    main()
