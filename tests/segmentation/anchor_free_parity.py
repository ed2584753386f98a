#!/usr/bin/python3
"""An anchor-free 2D detector exported the way YOLOv8 exports are (boxes
decoded inside the graph: one output [N, 4 + classes, K] of box centre and
size in pixels and sigmoid class scores over the cells of strides 8 and 16),
random weights, run by `medinfer detect` as an "anchor_free" card: the
findings equal PyTorch's after the reference per-slice NMS, slice merging and
3D NMS (yolo_parity.postprocess): same count and classes, centres and sizes
within 1e-2 mm, scores within rtol 1e-3.  A control card reading the class
scores as logits must disagree.

usage: anchor_free_parity.py MEDINFER WORKDIR"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_parity as yp  # noqa: E402
from yolo_parity import onnx_export  # noqa: E402

NC = 2
SCORE, IOU, MAXDET = 0.85, 0.45, 80
MERGE = (0.3, 1, 1)


class AnchorFree2D(nn.Module):
    """Distances to the four box edges (softplus x stride) and class logits
    per cell, decoded to centre/size against the cell centres, as YOLOv8's
    Detect head does after its DFL step."""

    def __init__(self):
        super().__init__()
        c = lambda i, o, s: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.SiLU())  # noqa: E731
        self.b8 = nn.Sequential(c(1, 8, 2), c(8, 16, 2), c(16, 16, 2))
        self.b16 = c(16, 32, 2)
        self.heads = nn.ModuleList([nn.Conv2d(16, 4 + NC, 1), nn.Conv2d(32, 4 + NC, 1)])

    def level(self, f, head, stride):
        o = head(f)
        n, _, h, w = o.shape
        ys, xs = torch.meshgrid(torch.arange(h, dtype=o.dtype), torch.arange(w, dtype=o.dtype), indexing="ij")
        ax, ay = (xs + 0.5) * stride, (ys + 0.5) * stride
        l, t, r, b = [F.softplus(o[:, i]) * stride for i in range(4)]
        x1, y1, x2, y2 = ax - l, ay - t, ax + r, ay + b
        box = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
        return torch.cat([box, torch.sigmoid(o[:, 4:])], 1).flatten(2)

    def forward(self, x):
        f8 = self.b8(x)
        return torch.cat([self.level(f8, self.heads[0], 8), self.level(self.b16(f8), self.heads[1], 16)], 2)

    def calibrate(self, x):
        """Class logits with mean 0 and SD 1 on x (random weights otherwise
        give near-constant scores)."""
        with torch.no_grad():
            f8 = self.b8(x)
            for h, f in ((self.heads[0], f8), (self.heads[1], self.b16(f8))):
                o = h(f)[:, 4:]
                mean, sd = o.mean((0, 2, 3)), o.std((0, 2, 3)).clamp(min=1e-6)
                h.weight[4:].mul_((1 / sd)[:, None, None, None])
                h.bias[4:].copy_((h.bias[4:] - mean) / sd)


def card(path, logits):
    labels = [{"value": v, "name": n, "color": [255, 0, 0],
               "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
               "type": {"scheme": "SCT", "value": t, "meaning": n}}
              for v, n, t in ((1, "Nodule", "27925004"), (2, "Mass", "4147007"))]
    c = {"name": "anchor-free-parity", "version": "1.0.0", "task": "detection", "model": "af.onnx",
         "applies_to": {"modality": ["CT"], "min_size": [16, 16, 1]},
         "input": {"channels": 1, "spacing": list(yp.SPACING), "orientation": "native",
                   "preprocessing": [{"type": "ct_window", "center": 40, "width": 400}]},
         "inference": {"mode": "2d", "batch": 4},
         "output": {"head": {"type": "anchor_free", "output": "output0", "logits": logits},
                    "labels": labels, "score_threshold": SCORE, "iou_threshold": IOU, "max_detections": MAXDET,
                    "merge": {"iou": MERGE[0], "max_gap": MERGE[1], "min_slices": MERGE[2]}}}
    json.dump(c, open(path, "w"), indent=1)


def main():
    medinfer, work = sys.argv[1:3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ph, vol, dirs, origin = yp.phantom_series(medinfer, work, "96x96x10", 13)
    x = torch.from_numpy(yp.window(vol)[:, None])
    torch.manual_seed(0)
    net = AnchorFree2D().eval()
    net.calibrate(x)
    onnx_export.export(net, torch.zeros(1, 1, 96, 96), os.path.join(work, "af.onnx"), opset_version=13,
                      input_names=["image"], output_names=["output0"], dynamic_axes={"image": {0: "N"}})
    with torch.no_grad():
        out = net(x).numpy().astype(np.float64)
    per_slice = []
    for z in range(out.shape[0]):
        o = out[z]
        for k in range(o.shape[1]):
            cls = int(np.argmax(o[4:, k]))
            s = float(o[4 + cls, k])
            if s < SCORE:
                continue
            cx, cy, w, h = o[:4, k]
            per_slice.append(([cx - 0.5 - w / 2, cy - 0.5 - h / 2, z], [cx - 0.5 + w / 2, cy - 0.5 + h / 2, z], s, cls, 1))
    ref = yp.postprocess(per_slice, IOU, MERGE, MAXDET)
    print("reference: %d candidates over the threshold -> %d findings" % (len(per_slice), len(ref)))
    if len(ref) < 5:
        raise SystemExit("FAIL: too few reference findings for a meaningful comparison")
    # Per-slice NMS follows score order: near-tied candidates of one slice
    # would make the comparison rest on rounding (yp.compare copes with
    # near-tied findings of different slices).
    for z in range(out.shape[0]):
        sc = np.sort([c[2] for c in per_slice if c[0][2] == z])
        if len(sc) > 1 and np.min(np.diff(sc) / sc[1:]) < 2e-5:
            raise SystemExit("FAIL: slice %d: near-tied candidate scores" % z)

    def detect(logits, tag):
        cp = os.path.join(work, tag + ".card.json")
        card(cp, logits)
        return yp.run_detect(medinfer, cp, os.path.join(ph, "dicom"), os.path.join(work, tag))

    err = yp.compare(detect(False, "run"), ref, dirs, origin)
    if err:
        raise SystemExit("FAIL: " + err)
    if yp.compare(detect(True, "control"), ref, dirs, origin) is None:
        raise SystemExit("FAIL: the negative control (scores read as logits) matched the reference")
    print("OK %d findings match" % len(ref))


if __name__ == "__main__":
    main()
