#!/usr/bin/python3
"""A YOLO-style 2D detector (random weights, two head outputs at strides 8 and
16, anchors, two classes, YOLOv3 box coding, box-first vectors) run by
`medinfer detect` slice by slice gives the findings that PyTorch plus a
reference decoding written from models/CARD.md give: same count and classes,
centres and sizes within 1e-2 mm, scores within rtol 1e-3.  A negative control
(a card whose anchors are swapped) must disagree.

usage: yolo_parity.py MEDINFER WORKDIR"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "scripts"))
import onnx_export  # noqa: E402

SPACING = (2.0, 2.0, 4.0)
ANCHORS = {"p3": [[6, 8], [14, 10]], "p4": [[24, 20]]}
STRIDES = {"p3": 8, "p4": 16}
NC = 2
SCORE, IOU, MAXDET = 0.6, 0.45, 60
MERGE = (0.3, 1, 1)  # iou, max_gap, min_slices


class Yolo2D(nn.Module):
    def __init__(self):
        super().__init__()
        c = lambda i, o, s: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.LeakyReLU(0.1))  # noqa: E731
        self.b8 = nn.Sequential(c(1, 8, 2), c(8, 16, 2), c(16, 16, 2))
        self.b16 = c(16, 32, 2)
        self.h8 = nn.Conv2d(16, 2 * (5 + NC), 1)
        self.h16 = nn.Conv2d(32, 1 * (5 + NC), 1)

    def calibrate(self, x):
        """Scale each head channel so its logits have mean 0 and SD 1 on x:
        random weights otherwise give near-constant scores, and which boxes
        pass the threshold would depend on rounding."""
        with torch.no_grad():
            f8 = self.b8(x)
            for h, f in ((self.h8, f8), (self.h16, self.b16(f8))):
                o = h(f)
                mean, sd = o.mean((0, 2, 3)), o.std((0, 2, 3)).clamp(min=1e-6)
                h.weight.mul_((1 / sd)[:, None, None, None])
                h.bias.copy_((h.bias - mean) / sd)

    def forward(self, x):
        f8 = self.b8(x)
        return self.h8(f8), self.h16(self.b16(f8))


def read_nrrd(path):
    raw = open(path, "rb").read()
    end = raw.find(b"\n\n")
    hdr = dict(l.split(":", 1) for l in raw[:end].decode().splitlines()[1:] if ":" in l and not l.startswith("#"))
    hdr = {k.strip(): v.strip() for k, v in hdr.items()}
    sizes = [int(s) for s in hdr["sizes"].split()]
    assert hdr["type"] in ("short", "int16") and hdr.get("encoding", "raw") == "raw"
    a = np.frombuffer(raw[end + 2:], dtype="<i2", count=int(np.prod(sizes))).reshape(sizes[::-1])
    dirs = np.array([[float(x) for x in v.split(",")] for v in re.findall(r"\(([^)]*)\)", hdr["space directions"])])
    origin = np.array([float(x) for x in re.findall(r"\(([^)]*)\)", hdr["space origin"])[0].split(",")])
    return a.astype(np.float32), dirs, origin  # dirs[a] = step of axis a in LPS mm


def sig(v):
    return 1 / (1 + np.exp(-v))


def iou(a, b, dims):
    inter = va = vb = 1.0
    for d in range(dims):
        inter *= max(0.0, min(a[1][d], b[1][d]) - max(a[0][d], b[0][d]))
        va *= max(0.0, a[1][d] - a[0][d])
        vb *= max(0.0, b[1][d] - b[0][d])
    u = va + vb - inter
    return inter / u if u > 0 else 0.0


def nms(boxes, dims, thr, keep_max=0):
    boxes = sorted(boxes, key=lambda b: -b[2])
    kept = []
    for b in boxes:
        if keep_max and len(kept) >= keep_max:
            break
        if all(k[3] != b[3] or iou(k, b, dims) <= thr for k in kept):
            kept.append(b)
    return kept


def window(vol):
    return np.clip((vol - (40 - 200)) / 400, 0, 1).astype(np.float32)  # ct_window 40/400


def reference(net, vol, anchors):
    """Boxes (lo, hi, score, cls, count) in voxel indices, per the card spec."""
    x = window(vol)
    per_slice = []
    with torch.no_grad():
        outs = net(torch.from_numpy(x[:, None]))
    for name, out in zip(("p3", "p4"), outs):
        o = out.numpy().astype(np.float64)
        s = STRIDES[name]
        for z in range(o.shape[0]):
            for a, (aw, ah) in enumerate(anchors[name]):
                v = o[z, a * (5 + NC):(a + 1) * (5 + NC)]
                gy, gx = v.shape[1:]
                for j in range(gy):
                    for i in range(gx):
                        pc = sig(v[4, j, i])
                        cls = sig(v[5:, j, i])
                        k = int(np.argmax(cls))
                        score = pc * cls[k]
                        if score < SCORE:
                            continue
                        cx = (sig(v[0, j, i]) + i) * s - 0.5
                        cy = (sig(v[1, j, i]) + j) * s - 0.5
                        w, h = aw * np.exp(v[2, j, i]), ah * np.exp(v[3, j, i])
                        per_slice.append(([cx - w / 2, cy - h / 2, z], [cx + w / 2, cy + h / 2, z], score, k, 1))
    return postprocess(per_slice, IOU, MERGE, MAXDET)


def postprocess(per_slice, iou_thr, merge, max_det):
    """Per-slice class-wise NMS, slice merging (segmentation.h:
    mi_merge_slices), 3D NMS: boxes (lo, hi, score, cls, count)."""
    boxes = []
    for z in sorted({b[0][2] for b in per_slice}):
        boxes += nms([b for b in per_slice if b[0][2] == z], 2, iou_thr)
    # slice merging (segmentation.h: mi_merge_slices)
    miou, gap, min_slices = merge
    chains = []
    for b in sorted(boxes, key=lambda b: (b[0][2], -b[2])):
        z = b[0][2]
        best, best_iou = None, miou
        for c in chains:
            if c["cls"] != b[3] or c["newest"] >= z or c["newest"] < z - 1 - gap:
                continue
            v = iou(c["last"], b, 2)
            if v >= best_iou and (best is None or v > best_iou):
                best, best_iou = c, v
        if best is None:
            chains.append({"cls": b[3], "last": b, "lo": list(b[0][:2]), "hi": list(b[1][:2]), "score": b[2],
                           "count": 1, "first": z, "newest": z})
            continue
        for d in range(2):
            best["lo"][d] = min(best["lo"][d], b[0][d])
            best["hi"][d] = max(best["hi"][d], b[1][d])
        best["score"] = max(best["score"], b[2])
        best["count"] += 1
        best["last"] = b
        best["newest"] = z
    merged = [(c["lo"] + [c["first"] - 0.5], c["hi"] + [c["newest"] + 0.5], c["score"], c["cls"], c["count"])
              for c in chains if c["count"] >= min_slices]
    return nms(merged, 3, iou_thr, max_det)


def card(path, model, anchors):
    outs = [{"name": n, "stride": [STRIDES[n]] * 2, "anchors": anchors[n]} for n in ("p3", "p4")]
    c = {"name": "yolo-parity", "version": "1.0.0", "task": "detection", "model": model,
         "applies_to": {"modality": ["CT"], "min_size": [16, 16, 1]},
         "input": {"channels": 1, "spacing": list(SPACING), "orientation": "native",
                   "preprocessing": [{"type": "ct_window", "center": 40, "width": 400}]},
         "inference": {"mode": "2d", "batch": 4},
         "output": {"head": {"type": "yolo", "box_coding": "yolov3", "order": "bpc", "logits": True, "outputs": outs},
                    "labels": [{"value": v, "name": n, "color": [255, 0, 0],
                                "category": {"scheme": "SCT", "value": "49755003",
                                             "meaning": "Morphologically Altered Structure"},
                                "type": {"scheme": "SCT", "value": t, "meaning": n}}
                               for v, n, t in ((1, "Nodule", "27925004"), (2, "Mass", "4147007"))],
                    "score_threshold": SCORE, "iou_threshold": IOU, "max_detections": MAXDET,
                    "merge": {"iou": MERGE[0], "max_gap": MERGE[1], "min_slices": MERGE[2]}}}
    json.dump(c, open(path, "w"), indent=1)


def phantom_series(medinfer, work, size, seed, lesions=3):
    """A phantom CT at SPACING with lesions in work/phantom: (its folder,
    the HU volume [z][y][x], axis steps in LPS mm, origin)."""
    ph = os.path.join(work, "phantom")
    subprocess.run([medinfer, "phantom", "--out", ph, "--size", size, "--spacing", "%g,%g,%g" % SPACING,
                    "--lesions", str(lesions), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    return (ph,) + read_nrrd(os.path.join(ph, "truth", "image.nrrd"))


def run_detect(medinfer, card_path, dicom_dir, out):
    """`medinfer detect` on one series; its findings.json findings."""
    p = subprocess.run([medinfer, "detect", "--model", card_path, "--input", dicom_dir, "--output", out],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode:
        print(p.stdout)
        raise SystemExit("FAIL: medinfer detect exited %d" % p.returncode)
    (folder,) = [d for d in os.listdir(out) if d.endswith(".findings")]
    return json.load(open(os.path.join(out, folder, "findings.json")))["findings"]


def compare(found, ref, dirs, origin):
    """Mismatch description, or None.  Findings come sorted by score; two
    whose scores agree to rounding (from different slices, say) may come in
    either order, so each reference finding is matched to the finding at its
    rank or, failing that, to any unmatched one that agrees in every field."""
    if len(found) != len(ref):
        return "%d findings, reference %d" % (len(found), len(ref))

    def mismatch(f, r):
        lo, hi = np.array(r[0]), np.array(r[1])
        ctr = origin + ((lo + hi) / 2) @ dirs
        size = (hi - lo) * np.array(SPACING)
        if f["label_value"] != r[3] + 1:
            return "%s: class %d, reference %d" % (f["name"], f["label_value"], r[3] + 1)
        if abs(f["score"] - r[2]) > 1e-3 * r[2]:
            return "%s: score %g, reference %g" % (f["name"], f["score"], r[2])
        if np.abs(np.array(f["center_mm"]) - ctr).max() > 1e-2 or np.abs(np.array(f["size_mm"]) - size).max() > 1e-2:
            return "%s: centre %s size %s, reference %s %s" % (f["name"], f["center_mm"], f["size_mm"], ctr, size)
        if f["contributing_slices"] != r[4]:
            return "%s: %d slices merged, reference %d" % (f["name"], f["contributing_slices"], r[4])
        return None

    used = [False] * len(found)
    for i, r in enumerate(ref):
        err = None if used[i] else mismatch(found[i], r)
        j = i if err is None and not used[i] else next(
            (j for j in range(len(found)) if not used[j] and mismatch(found[j], r) is None), None)
        if j is None:
            return err or "reference finding %d matches no finding" % i
        used[j] = True
    return None


def main():
    medinfer, work = sys.argv[1:3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    torch.manual_seed(0)
    net = Yolo2D().eval()
    model = os.path.join(work, "yolo.onnx")
    ph, vol, dirs, origin = phantom_series(medinfer, work, "96x96x10", 11)
    net.calibrate(torch.from_numpy(window(vol)[:, None]))
    onnx_export.export(net, torch.zeros(1, 1, 64, 64), model, opset_version=13, input_names=["image"],
                      output_names=["p3", "p4"], dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}})
    ref = reference(net, vol, ANCHORS)
    print("reference: %d findings, scores %.3f..%.3f" % (len(ref), min(r[2] for r in ref), max(r[2] for r in ref)))
    gaps = np.diff(sorted(r[2] for r in ref))
    if len(ref) < 5 or (len(gaps) and gaps.min() < 1e-5):
        raise SystemExit("FAIL: too few or near-tied reference findings for a meaningful comparison")

    def detect(anchors, tag):
        cp = os.path.join(work, tag + ".card.json")
        card(cp, "yolo.onnx", anchors)
        return run_detect(medinfer, cp, os.path.join(ph, "dicom"), os.path.join(work, tag))

    err = compare(detect(ANCHORS, "run"), ref, dirs, origin)
    if err:
        raise SystemExit("FAIL: " + err)
    swapped = {"p3": ANCHORS["p3"][::-1], "p4": ANCHORS["p4"]}
    if compare(detect(swapped, "control"), ref, dirs, origin) is None:
        raise SystemExit("FAIL: the negative control (swapped anchors) matched the reference")
    print("OK %d findings match" % len(ref))


if __name__ == "__main__":
    main()
