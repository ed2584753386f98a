#!/usr/bin/python3
"""Train, export and card medinfer's demo lesion detector (models/demo-lesions).

Training data: synthetic torso CTs from `medinfer phantom --lesions N`
(spherical lesions of radius 3-10 mm in liver, lungs and kidney; their
centres and radii are in truth/labels.json).  Each study is prepared as the
detector prepares a series (models/CARD.md): resampled trilinearly onto an
LPS grid at the card's spacing covering the series (train_demo_organs.py's
grid_for/resample, which mirror segmentation/src), then windowed.

The network (DemoDetector below) is a small 3D CNN with one YOLO-style head at
stride 4: per cell one anchor with the vector (P_c, B_x, B_y, B_z, B_w, B_h,
B_d, C_1), logits, "yolov5" box coding (centre (2 sigmoid(t) - 0.5 + cell) *
stride, size anchor * (2 sigmoid(t))^2; pixel units, voxel v spanning
[v, v + 1)).  Each lesion is assigned to the cell holding its centre;
objectness is trained with binary cross-entropy (cells next to a lesion are
left out of the negatives), box and class fields only at assigned cells.
Exported to ONNX (opset 13, input "image" NCDHW with dynamic sizes, output
"det") and described by demo-lesions.card.json.

Usage (run with /usr/bin/python3: Debian's python3-torch):
    make -C build medinfer
    /usr/bin/python3 models/scripts/train_demo_lesions.py --medinfer build/cli/medinfer
    /usr/bin/python3 models/scripts/eval_demo_lesions.py ...   # recall / FP / centre error via `medinfer detect`
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_export  # noqa: E402
from train_demo_organs import ct_window, grid_for, load_cases, log, phantom, resample, save_cases  # noqa: E402

MODEL_DIR = os.path.normpath(os.path.join(HERE, "..", "demo-lesions"))
NAME = "demo-lesions"
VERSION = "1.0.0"

SPACING = (2.0, 2.0, 2.0)   # mm
PATCH = (64, 64, 64)        # voxels x y z (128 mm)
STRIDE = 4
ANCHOR = 6.0                # voxels (12 mm): sizes from 0 to 4 x anchor
FEATURES = (16, 32, 64)
WINDOW = {"type": "ct_window", "center": 40, "width": 400}
TRAIN_SEED0 = 2000
LESION = {"value": 1, "name": "Lesion", "color": [255, 255, 0],
          "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
          "type": {"scheme": "SCT", "value": "52988006", "meaning": "Lesion"}}


def train_variant(seed):
    """Acquisition variety for a training seed (deterministic)."""
    r = np.random.default_rng(seed)
    args = ["--lesions", str(int(r.integers(6, 13))), "--noise", str(int(r.choice([6, 12, 12, 18])))]
    u = r.random()
    if u < 0.6:
        pass
    elif u < 0.75:
        args += ["--size", "320x320x200", "--spacing", "1.25,1.25,1.5"]
    elif u < 0.85:
        args += ["--orientation", "coronal"]
    else:
        args += ["--orientation", "oblique"]
    if r.random() < 0.25:
        args.append("--contrast")
    return args


def case(medinfer, work, seed):
    """(x uint8 [z][y][x] windowed * 255 on the model grid, lesions [n][4]:
    centre as model-grid voxel index x y z, radius in mm)."""
    d = os.path.join(work, "s%d" % seed)
    v = train_variant(seed)
    img, _, g = phantom(medinfer, d, seed, *v)
    truth = json.load(open(os.path.join(d, "truth", "labels.json")))
    shutil.rmtree(d, ignore_errors=True)
    gm = grid_for(g, SPACING)
    x = ct_window(resample(img.astype(np.float32), g, gm, "linear", float(img.min())),
                  WINDOW["center"], WINDOW["width"])
    les = [[(l["center_mm"][a] - gm["origin"][a]) / SPACING[a] for a in range(3)] + [l["radius_mm"]]
           for l in truth["lesions"]]
    return np.round(x * 255).astype(np.uint8), np.array(les, np.float32).reshape(-1, 4), " ".join(v)


def build_dataset(medinfer, n, cache):
    cached = load_cases(cache, n, ("xs", "ls"))
    if cached:
        return cached
    xs, ls = [], []
    work = tempfile.mkdtemp(prefix="demo-lesions-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    t0 = time.time()
    try:
        for i in range(n):
            x, l, v = case(medinfer, work, TRAIN_SEED0 + i)
            xs.append(x)
            ls.append(l)
            log("  case %d/%d seed %d %s: %d lesions, %s (%.0f s)" % (i + 1, n, TRAIN_SEED0 + i, v, len(l),
                                                                     "x".join(map(str, x.shape[::-1])),
                                                                     time.time() - t0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save_cases(cache, xs=xs, ls=ls)
    return xs, ls


class _CB(nn.Sequential):
    def __init__(self, cin, cout, stride=1):
        super().__init__(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout),
                         nn.LeakyReLU(0.1, inplace=True))


class DemoDetector(nn.Module):
    """A 2x2x2 stride-2 conv embeds the input (learned space-to-depth, a
    quarter of the cost of full-resolution stages on 2 CPU cores), then conv
    stages at 4 and 8 mm, and the 1x1x1 head at stride 4."""

    def __init__(self, features=FEATURES):
        super().__init__()
        f0, f1, f2 = features
        self.body = nn.Sequential(nn.Conv3d(1, f0, 2, 2, bias=False), nn.BatchNorm3d(f0), nn.LeakyReLU(0.1, inplace=True),
                                  _CB(f0, f0), _CB(f0, f1, 2), _CB(f1, f1), _CB(f1, f2), _CB(f2, f2))
        self.head = nn.Conv3d(f2, 8, 1)
        with torch.no_grad():  # start with few positives (rare objects)
            self.head.bias.zero_()
            self.head.bias[0] = -4.0

    def forward(self, x):
        return self.head(self.body(x))


def targets(lesions, origin, shape):
    """Per-cell targets for one patch: obj [z][y][x] (1 positive, 0
    negative, -1 ignored), box [6][z][y][x] sigmoid targets, mask."""
    gz, gy, gx = shape
    obj = np.zeros((gz, gy, gx), np.float32)
    box = np.zeros((6, gz, gy, gx), np.float32)
    for cx, cy, cz, r in lesions:
        px = [cx - origin[0] + 0.5, cy - origin[1] + 0.5, cz - origin[2] + 0.5]  # pixel units in the patch
        cell = [int(np.floor(p / STRIDE)) for p in px]
        if not all(0 <= c < n for c, n in zip(cell, (gx, gy, gz))):
            continue
        x0, y0, z0 = cell
        sl = (slice(max(z0 - 1, 0), z0 + 2), slice(max(y0 - 1, 0), y0 + 2), slice(max(x0 - 1, 0), x0 + 2))
        obj[sl] = np.where(obj[sl] == 1, 1, -1)  # neighbours: ignored
        obj[z0, y0, x0] = 1
        for a in range(3):
            t = px[a] / STRIDE - cell[a]
            box[a, z0, y0, x0] = (t + 0.5) / 2
            size = 2 * r / SPACING[a]
            box[3 + a, z0, y0, x0] = np.sqrt(size / ANCHOR) / 2
    return obj, box


def sample(x, les, rng, lesion_fraction=0.8):
    Z, Y, X = x.shape
    p = (PATCH[2], PATCH[1], PATCH[0])
    if len(les) and rng.random() < lesion_fraction:
        l = les[rng.integers(len(les))]
        ctr = [l[2], l[1], l[0]]
        lo = [int(round(c)) - int(rng.integers(8, q - 8)) for c, q in zip(ctr, p)]
    else:
        lo = [int(rng.integers(0, max(n - q, 0) + 1)) for n, q in zip((Z, Y, X), p)]
    lo = [min(max(v, 0), max(n - q, 0)) for v, n, q in zip(lo, (Z, Y, X), p)]
    xp = np.zeros(p, np.float32)
    s = x[lo[0]:lo[0] + p[0], lo[1]:lo[1] + p[1], lo[2]:lo[2] + p[2]]
    xp[:s.shape[0], :s.shape[1], :s.shape[2]] = s * (1 / 255.0)
    obj, box = targets(les, (lo[2], lo[1], lo[0]), (p[0] // STRIDE, p[1] // STRIDE, p[2] // STRIDE))
    return xp, obj, box


def loss_fn(out, obj, box):
    po = out[:, 0]
    valid = obj >= 0
    pos = obj == 1
    l_obj = F.binary_cross_entropy_with_logits(po[valid], obj[valid], reduction="sum") / max(1, int(pos.sum()))
    if pos.any():
        m = pos[:, None].expand_as(box)
        l_box = F.mse_loss(torch.sigmoid(out[:, 1:7])[m], box[m], reduction="sum") / int(pos.sum())
        l_cls = F.binary_cross_entropy_with_logits(out[:, 7][pos], torch.ones_like(out[:, 7][pos]))
    else:
        l_box = l_cls = out.sum() * 0
    return l_obj + 20 * l_box + l_cls


def train(args):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    xs, ls = build_dataset(args.medinfer, args.cases, args.cache)
    net = DemoDetector()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iterations, pct_start=0.05)
    log("training: %d cases, %d lesions, %d iterations of %d x %s, %d parameters" %
        (len(xs), sum(len(l) for l in ls), args.iterations, args.batch, PATCH,
         sum(p.numel() for p in net.parameters())))
    t0, run = time.time(), 0.0
    net.train()
    for it in range(args.iterations):
        bx, bo, bb = [], [], []
        for _ in range(args.batch):
            i = int(rng.integers(len(xs)))
            xp, o, b = sample(xs[i], ls[i], rng)
            xp = np.clip(xp * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02), 0, 1)
            bx.append(xp), bo.append(o), bb.append(b)
        x = torch.from_numpy(np.stack(bx)[:, None])
        loss = loss_fn(net(x), torch.from_numpy(np.stack(bo)), torch.from_numpy(np.stack(bb)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run = loss.item() if it == 0 else 0.98 * run + 0.02 * loss.item()
        if (it + 1) % 25 == 0 or it == 0:
            el = time.time() - t0
            log("  it %d/%d loss %.4f lr %.2e %.0f s (%.2f s/it)" % (it + 1, args.iterations, run,
                                                                   sched.get_last_lr()[0], el, el / (it + 1)))
    log("training took %.1f min" % ((time.time() - t0) / 60))
    net.eval()
    torch.save({"state_dict": net.state_dict(), "iterations": args.iterations}, args.weights)
    export(net)
    write_card(args.score_threshold)


def export(net):
    os.makedirs(MODEL_DIR, exist_ok=True)
    path = os.path.join(MODEL_DIR, NAME + ".onnx")
    x = torch.zeros(1, 1, PATCH[2], PATCH[1], PATCH[0])
    onnx_export.export(net, x, path, opset_version=13, input_names=["image"], output_names=["det"],
                      dynamic_axes={"image": {0: "N", 2: "D", 3: "H", 4: "W"},
                                    "det": {0: "N", 2: "gD", 3: "gH", 4: "gW"}},
                      do_constant_folding=True)
    import onnx
    onnx.checker.check_model(onnx.load(path))
    log("wrote %s (%.2f MB)" % (path, os.path.getsize(path) / 1e6))


def write_card(score_threshold):
    card = {
        "name": NAME,
        "version": VERSION,
        "task": "detection",
        "description": "Spherical lesions in liver, lungs and kidney on CT (demonstration detector trained on "
                       "medinfer phantoms only; not for clinical use)",
        "model": NAME + ".onnx",
        "applies_to": {"modality": ["CT"], "body_part": [], "min_size": [32, 32, 16]},
        "input": {"channels": 1, "spacing": list(SPACING), "orientation": "LPS", "preprocessing": [dict(WINDOW)]},
        "inference": {"mode": "3d", "patch_size": list(PATCH), "overlap": 0.25, "batch": 2},
        "output": {
            "head": {"type": "yolo", "box_coding": "yolov5", "order": "pbc", "logits": True,
                     "outputs": [{"name": "det", "stride": [STRIDE] * 3, "anchors": [[ANCHOR] * 3]}]},
            "labels": [LESION],
            "score_threshold": score_threshold,
            "iou_threshold": 0.1,
            "max_detections": 100,
        },
    }
    path = os.path.join(MODEL_DIR, NAME + ".card.json")
    with open(path, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    log("wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medinfer", default="build/cli/medinfer")
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="")
    ap.add_argument("--weights", default="")
    ap.add_argument("--score-threshold", type=float, default=0.4)
    ap.add_argument("--card-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.card_only:
        write_card(args.score_threshold)
        return
    if not args.weights:
        args.weights = os.path.join(MODEL_DIR, NAME + ".pt")
    train(args)


if __name__ == "__main__":
    main()
