#!/usr/bin/python3
"""Train, export and evaluate medinfer's demo organ model (models/demo-organs).

The training data are synthetic torso CTs from `medinfer phantom`.  Each study
is prepared exactly as the segmentation pipeline prepares a series for the
model (models/CARD.md): the image is resampled with trilinear interpolation
onto an LPS-aligned grid at the card's spacing that covers the series (the
same box, size and centre as segmentation's mi_grid_for; outside the scan the
series' minimum), then windowed with the card's ct_window.  The training
targets are the label fractions of each model voxel (the phantom rasterised 3x
finer on sub-voxels that tile the model voxels; same seed, same anatomy), so that the network's softmax,
interpolated back onto the source grid as the pipeline does, places boundaries
inside model voxels.

The network (DemoUNet below) is a small 3D U-Net: a 2x2x2 stride-2 conv
embedding, nnU-Net-style stages (two 3x3x3 conv + InstanceNorm + LeakyReLU,
strided-conv down, transposed-conv up, skip concatenation) at 6/12/24/48 mm,
and a 2x2x2 stride-2 transposed conv back to the model spacing.  It is trained
with soft-target cross-entropy + soft Dice on random patches (60 % centred on a
randomly chosen organ), exported to ONNX (opset 13, input "image" NCDHW with
dynamic batch and spatial sizes, output "logits": the card's activation is
softmax) and described by demo-organs.card.json.

--evaluate runs the card's inference on phantoms from unseen seeds: resample
to the model grid, sliding window (overlap, Gaussian importance map as in
segmentation/src/sliding_window.c), softmax probabilities interpolated
trilinearly back onto the source voxels, argmax, and Dice per organ against the
phantom's labels.nrrd on the source grid.

Usage (run with /usr/bin/python3: Debian's python3-torch):
    make -C build medinfer      # the phantom generator
    /usr/bin/python3 models/scripts/train_demo_organs.py --medinfer build/cli/medinfer
    /usr/bin/python3 models/scripts/train_demo_organs.py --medinfer build/cli/medinfer --evaluate
    /usr/bin/python3 models/scripts/train_demo_organs.py --medinfer build/cli/medinfer \
        --engine-check build/engine/tools/medinfer-onnx-test
One iteration (2 x 64^3 patches) costs 0.5-8 s on 2 shared CPU cores; the
committed weights (400 iterations) are undertrained -- see
models/demo-organs/README.md.  --device cuda trains the same recipe on a GPU.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_export  # noqa: E402
import torch.nn as nn  # noqa: E402

MODEL_DIR = os.path.normpath(os.path.join(HERE, "..", "demo-organs"))
NAME = "demo-organs"
VERSION = "1.0.0"

# ---------------------------------------------------------------------------
# Recipe (the card is written from these)
# ---------------------------------------------------------------------------
SPACING = (3.0, 3.0, 3.0)          # mm, x y z
PATCH = (64, 64, 64)               # voxels, x y z (192 mm)
FEATURES = (16, 32, 64, 128)      # per U-Net stage, the first at 2x the model spacing
SUPERSAMPLE = 3                    # soft targets: label fractions over 3x3x3 sub-voxels
WINDOW = {"type": "ct_window", "center": 40, "width": 500}
OVERLAP = 0.5
SIGMA_SCALE = 0.125
TRAIN_SEED0 = 1000
EVAL_SEEDS = (5000, 5001, 5002, 5003, 5004)

# Output labels: the phantom's values (medinfer/phantom.h) so that a SEG's
# segment numbers and the phantom truth agree.  SNOMED CT codes as DICOM
# CID 7166/7167 (anatomical structure, laterality in the code itself); colours
# from the Slicer/GenericAnatomyColors table that the phantom also uses.
ANAT = {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"}
LABELS = [
    (1, "Body", "38266002", "Entire body", [177, 122, 101]),
    (2, "Right lung", "3341006", "Right lung", [128, 174, 128]),
    (3, "Left lung", "44029006", "Left lung", [105, 160, 105]),
    (4, "Heart", "80891009", "Heart", [206, 110, 84]),
    (5, "Liver", "10200004", "Liver", [221, 130, 101]),
    (6, "Spleen", "78961009", "Spleen", [157, 108, 162]),
    (7, "Right kidney", "9846003", "Right kidney", [185, 102, 83]),
    (8, "Left kidney", "18639004", "Left kidney", [165, 92, 73]),
    (9, "Spine", "421060004", "Spinal column", [241, 214, 145]),
    (10, "Aorta", "15825003", "Aorta", [224, 97, 76]),
]
NCLASS = len(LABELS) + 1


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------
# NRRD (the phantom's truth files: raw or gzip, little/big endian)
# ---------------------------------------------------------------------------
_NRRD_TYPES = {"int16": "i2", "short": "i2", "uint8": "u1", "uchar": "u1", "unsigned char": "u1",
               "int8": "i1", "uint16": "u2", "ushort": "u2", "int32": "i4", "int": "i4", "float": "f4",
               "double": "f8"}


def read_nrrd(path):
    """-> (array [z][y][x], geometry dict with size/origin/spacing/direction
    (row-major, columns = axis unit vectors, as medinfer/geometry.h))."""
    with open(path, "rb") as f:
        raw = f.read()
    end = raw.find(b"\n\n")
    if not raw.startswith(b"NRRD") or end < 0:
        raise ValueError("%s: not a NRRD file" % path)
    hdr = {}
    for line in raw[:end].decode("ascii").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        hdr[k.strip().lower()] = v.strip()
    data = raw[end + 2:]
    if hdr.get("dimension") != "3":
        raise ValueError("%s: dimension %s, expected 3" % (path, hdr.get("dimension")))
    sizes = [int(s) for s in hdr["sizes"].split()]
    dt = _NRRD_TYPES[hdr["type"].strip()]
    endian = "<" if hdr.get("endian", "little") == "little" else ">"
    enc = hdr.get("encoding", "raw")
    if enc in ("gzip", "gz"):
        import gzip
        data = gzip.decompress(data)
    elif enc != "raw":
        raise ValueError("%s: encoding %s not supported" % (path, enc))
    n = sizes[0] * sizes[1] * sizes[2]
    arr = np.frombuffer(data, dtype=np.dtype(endian + dt), count=n).astype(np.dtype(dt).newbyteorder("="))
    arr = arr.reshape(sizes[2], sizes[1], sizes[0])
    vecs = [[float(x) for x in v.split(",")] for v in re.findall(r"\(([^)]*)\)", hdr["space directions"])]
    origin = [float(x) for x in re.findall(r"\(([^)]*)\)", hdr["space origin"])[0].split(",")]
    if hdr.get("space", "left-posterior-superior") not in ("left-posterior-superior", "LPS"):
        raise ValueError("%s: space %s, expected LPS" % (path, hdr.get("space")))
    spacing = [math.sqrt(sum(c * c for c in v)) for v in vecs]
    direction = [0.0] * 9
    for c in range(3):
        for r in range(3):
            direction[3 * r + c] = vecs[c][r] / spacing[c]
    return arr, {"size": sizes, "origin": origin, "spacing": spacing, "direction": direction}


# ---------------------------------------------------------------------------
# Grids and resampling (segmentation/src/resample.cpp, to_source.cpp)
# ---------------------------------------------------------------------------
def _dir(g):
    return np.array(g["direction"], dtype=np.float64).reshape(3, 3)


def index_to_point(g, ijk):
    return np.array(g["origin"]) + _dir(g) @ (np.array(g["spacing"]) * np.asarray(ijk, dtype=np.float64))


def grid_for(g, spacing):
    """LPS-aligned grid around the voxel edges of g, centred on it (mi_grid_for)."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for c in range(8):
        ijk = [(g["size"][a] - 0.5) if (c >> a) & 1 else -0.5 for a in range(3)]
        p = index_to_point(g, ijk)
        lo, hi = np.minimum(lo, p), np.maximum(hi, p)
    size = [max(1, int(math.ceil((hi[a] - lo[a]) / spacing[a] - 1e-6))) for a in range(3)]
    centre = (lo + hi) / 2
    origin = [centre[a] - spacing[a] * (size[a] - 1) / 2.0 for a in range(3)]
    return {"size": size, "origin": origin, "spacing": list(spacing), "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1]}


def resample(vol, gs, gd, mode, outside):
    """vol: [C][z][y][x] or [z][y][x] on grid gs -> same on grid gd (ITK
    semantics: trilinear or nearest at each destination voxel centre; points
    beyond half a voxel outside the source get `outside`)."""
    squeeze = vol.ndim == 3
    t = torch.as_tensor(vol[None] if squeeze else vol, dtype=torch.float32)[None]
    # destination index -> source continuous index: idx_s = M (o_d - o_s) + M D_d S_d idx_d
    M = np.linalg.inv(_dir(gs) @ np.diag(gs["spacing"]))
    A = M @ _dir(gd) @ np.diag(gd["spacing"])
    b = M @ (np.array(gd["origin"]) - np.array(gs["origin"]))
    nx, ny, nz = gd["size"]
    out = torch.empty((t.shape[1], nz, ny, nx), dtype=torch.float32)
    ii = torch.arange(nx, dtype=torch.float64)
    jj = torch.arange(ny, dtype=torch.float64)
    size_s = torch.tensor(gs["size"], dtype=torch.float64)
    At, bt = torch.tensor(A), torch.tensor(b)
    for z0 in range(0, nz, 16):  # slabs keep the grid small
        kk = torch.arange(z0, min(nz, z0 + 16), dtype=torch.float64)
        K, J, I = torch.meshgrid(kk, jj, ii, indexing="ij")
        idx = torch.stack([I, J, K], -1) @ At.T + bt  # [k][j][i][3] source (i, j, k)
        inside = ((idx >= -0.5) & (idx <= size_s - 0.5)).all(-1)
        grid = (idx.clamp(min=torch.zeros(3, dtype=torch.float64), max=size_s - 1) / (size_s - 1).clamp(min=1)) * 2 - 1
        s = F.grid_sample(t, grid[None].float(), mode="bilinear" if mode == "linear" else "nearest",
                          padding_mode="border", align_corners=True)[0]
        out[:, z0:z0 + len(kk)] = torch.where(inside[None], s, torch.tensor(float(outside)))
    out = out.numpy()
    return out[0] if squeeze else out


def ct_window(x, center=WINDOW["center"], width=WINDOW["width"]):
    lo = center - width / 2.0
    return ((np.clip(x, lo, lo + width) - lo) / width).astype(np.float32)


# ---------------------------------------------------------------------------
# Phantoms
# ---------------------------------------------------------------------------
def phantom(medinfer, out, seed, *extra):
    cmd = [medinfer, "phantom", "--out", out, "--seed", str(seed)] + [str(e) for e in extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    img, g = read_nrrd(os.path.join(out, "truth", "image.nrrd"))
    lab, gl = read_nrrd(os.path.join(out, "truth", "labels.nrrd"))
    return img, lab, g


def train_variant(seed):
    """Acquisition variety for a training seed (deterministic)."""
    r = np.random.default_rng(seed)
    args = []
    args += ["--noise", str(int(r.choice([0, 6, 12, 12, 12, 18, 25])))]
    if r.random() < 0.25:
        args.append("--contrast")
    u = r.random()
    if u < 0.55:   # default axial grid 256x256x120 (1.56 x 1.56 x 3 mm)
        pass
    elif u < 0.7:  # finer slices
        args += ["--size", "320x320x240", "--spacing", "1.25,1.25,1.5"]
    elif u < 0.8:  # thick slices
        args += ["--size", "200x200x72", "--spacing", "2,2,5"]
    elif u < 0.87:
        args += ["--orientation", "coronal"]
    elif u < 0.94:
        args += ["--orientation", "oblique"]
    else:
        args += ["--tilt", "%d" % int(r.choice([-20, -12, 12, 20]))]
    return args


def model_case(medinfer, work, seed, variant):
    """One training case on the model grid: x (uint8 [z][y][x]: the windowed
    image * 255) and q (uint8 [C][z][y][x]: how many of the 27 sub-voxels of
    each model voxel carry each label, i.e. the label fractions * 27)."""
    d = os.path.join(work, "s%d" % seed)
    img, _, g = phantom(medinfer, d, seed, *variant)
    gm = grid_for(g, SPACING)
    x = ct_window(resample(img.astype(np.float32), g, gm, "linear", float(img.min())))
    shutil.rmtree(d, ignore_errors=True)
    # Truth: the same anatomy (same seed) rasterised on a grid SUPERSAMPLE
    # times finer whose sub-voxel blocks tile the model voxels (the phantom's
    # grid is centred on the anatomy, as is gm).
    f = SUPERSAMPLE
    dl = os.path.join(work, "l%d" % seed)
    _, lab, gl = phantom(medinfer, dl, seed, "--size", "x".join(str(f * n) for n in gm["size"]),
                         "--spacing", ",".join("%.10g" % (s / f) for s in SPACING), "--noise", "0")
    shutil.rmtree(dl, ignore_errors=True)
    want = [o - s * (f - 1) / (2.0 * f) for o, s in zip(gm["origin"], SPACING)]
    assert np.allclose(gl["origin"], want, atol=1e-3), (gl["origin"], want)
    nx, ny, nz = gm["size"]
    blocks = lab.reshape(nz, f, ny, f, nx, f)
    q = np.stack([(blocks == c).sum((1, 3, 5), dtype=np.uint8) for c in range(NCLASS)])
    return np.round(x * 255).astype(np.uint8), q


def load_cases(cache, n, keys):
    """The first n cases of each list `keys` from an npz cache, or None when
    the cache is missing or holds fewer."""
    if not cache or not os.path.exists(cache):
        return None
    z = np.load(cache, allow_pickle=True)
    if len(z[keys[0]]) < n:
        return None
    log("dataset: %d cases from %s" % (n, cache))
    return tuple(list(z[k][:n]) for k in keys)


def save_cases(cache, **lists):
    """Lists of differently shaped arrays into an npz cache (object arrays)."""
    if not cache:
        return
    arrays = {}
    for k, v in lists.items():
        arrays[k] = np.empty(len(v), dtype=object)
        arrays[k][:] = v
    np.savez_compressed(cache, **arrays)


def build_dataset(medinfer, n, cache):
    cached = load_cases(cache, n, ("xs", "ys"))
    if cached:
        return cached
    xs, ys = [], []
    work = tempfile.mkdtemp(prefix="demo-organs-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    t0 = time.time()
    try:
        for i in range(n):
            seed = TRAIN_SEED0 + i
            v = train_variant(seed)
            x, y = model_case(medinfer, work, seed, v)
            hard = y.argmax(0)
            log("    hard-label voxels per class: %s" % np.bincount(hard.ravel(), minlength=NCLASS).tolist())
            xs.append(x)
            ys.append(y)
            log("  case %d/%d seed %d %s -> %s (%.0f s)" % (i + 1, n, seed, " ".join(v) or "default",
                                                          "x".join(map(str, x.shape[::-1])), time.time() - t0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save_cases(cache, xs=xs, ys=ys)
    return xs, ys


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
class _CB(nn.Sequential):
    """3x3x3 conv + InstanceNorm(affine) + LeakyReLU(0.01), as nnU-Net."""

    def __init__(self, cin, cout, stride=1):
        super().__init__(nn.Conv3d(cin, cout, 3, stride, 1), nn.InstanceNorm3d(cout, eps=1e-5, affine=True),
                         nn.LeakyReLU(0.01, inplace=True))


class DemoUNet(nn.Module):
    """A 3D U-Net whose stages start at twice the model spacing: a 2x2x2
    stride-2 conv embeds the input (learned space-to-depth), nnU-Net-style
    stages (two conv blocks, strided-conv down, transposed-conv up, skip
    concatenation) run at 6, 12, 24, 48 mm, and a 2x2x2 stride-2 transposed
    conv gives the logits back at the model spacing.  Trained on label
    fractions (soft targets), it places boundaries inside model voxels at an
    eighth of the cost of a full-resolution first stage.  Patch sides must be
    divisible by 2 ** len(features)."""

    def __init__(self, n_classes=NCLASS, features=FEATURES):
        super().__init__()
        f0 = features[0]
        self.embed = nn.Sequential(nn.Conv3d(1, f0, 2, 2), nn.InstanceNorm3d(f0, eps=1e-5, affine=True),
                                   nn.LeakyReLU(0.01, inplace=True))
        self.encoder = nn.ModuleList()
        c = f0
        for i, f in enumerate(features):
            self.encoder.append(nn.Sequential(_CB(c, f, 1 if i == 0 else 2), _CB(f, f)))
            c = f
        self.transp = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for lo, hi in zip(reversed(features[:-1]), reversed(features[1:])):
            self.transp.append(nn.ConvTranspose3d(hi, lo, 2, 2))
            self.decoder.append(nn.Sequential(_CB(2 * lo, lo), _CB(lo, lo)))
        self.out = nn.ConvTranspose3d(f0, n_classes, 2, 2)

    def forward(self, x):
        x = self.embed(x)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for tp, dec in zip(self.transp, self.decoder):
            x = dec(torch.cat([tp(x), skips.pop()], dim=1))
        return self.out(x)


def make_net(features=FEATURES):
    return DemoUNet(NCLASS, tuple(features))


def organ_index(q):
    """Per organ, flat indices of (every 8th) voxel mostly inside it."""
    hard = q[:, ::2, ::2, ::2].argmax(0)
    return hard.shape, [np.flatnonzero(hard == c) for c in range(NCLASS)]


def sample_patch(x, q, index, rng, organ_fraction):
    pz, py, px = PATCH[2], PATCH[1], PATCH[0]
    Z, Y, X = x.shape
    shape, idx = index
    c = int(rng.integers(2, NCLASS))  # an organ (body is everywhere anyway)
    if rng.random() < organ_fraction and len(idx[c]):
        ctr = [2 * v for v in np.unravel_index(idx[c][rng.integers(len(idx[c]))], shape)]
    else:
        ctr = [rng.integers(Z), rng.integers(Y), rng.integers(X)]
    ctr = [v + int(rng.integers(-p // 4, p // 4 + 1)) for v, p in zip(ctr, (pz, py, px))]
    lo = [min(max(v - p // 2, 0), max(n - p, 0)) for v, p, n in zip(ctr, (pz, py, px), (Z, Y, X))]
    xp = np.zeros((pz, py, px), np.float32)
    qp = np.zeros((NCLASS, pz, py, px), np.float32)
    qp[0] = 1
    sx = x[lo[0]:lo[0] + pz, lo[1]:lo[1] + py, lo[2]:lo[2] + px]
    sq = q[:, lo[0]:lo[0] + pz, lo[1]:lo[1] + py, lo[2]:lo[2] + px]
    xp[:sx.shape[0], :sx.shape[1], :sx.shape[2]] = sx * (1 / 255.0)
    qp[:, :sx.shape[0], :sx.shape[1], :sx.shape[2]] = sq * (1 / SUPERSAMPLE ** 3)
    return xp, qp


def dice_ce_loss(logits, q):
    """Soft-target cross-entropy + soft Dice (batch Dice, organs present)."""
    logp = logits.log_softmax(1)
    ce = -(q * logp).sum(1).mean()
    p = logp.exp()
    dims = (0, 2, 3, 4)
    inter = (p * q).sum(dims)
    den = p.sum(dims) + q.sum(dims)
    present = q.sum(dims)[1:] > 1
    dice = (2 * inter[1:] + 1e-5) / (den[1:] + 1e-5)
    return ce + (1 - dice[present]).mean() if present.any() else ce


def train(args):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dev = torch.device(args.device)
    xs, ys = build_dataset(args.medinfer, args.cases, args.cache)
    index = [organ_index(q) for q in ys]
    net = make_net().to(dev)
    if args.init:  # fine-tune: continue from earlier weights with a new schedule
        net.load_state_dict(load_net(args.init).state_dict())
        log("starting from %s" % args.init)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iterations, pct_start=0.05)
    nparam = sum(p.numel() for p in net.parameters())
    log("training: %d cases, %d iterations of %d x %s patches, %d parameters, %s, %d threads" %
        (len(xs), args.iterations, args.batch, PATCH, nparam, dev, torch.get_num_threads()))
    ckpt = args.weights + ".ckpt"
    start, spent, run = 0, 0.0, 0.0
    if args.resume and os.path.exists(ckpt):
        # a long run survives being stopped: model, optimizer, schedule and sampler state
        ck = torch.load(ckpt, map_location=dev, weights_only=False)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        rng.bit_generator.state = ck["rng"]
        start, spent, run = ck["it"], ck["seconds"], ck["loss"]
        log("resumed from %s at iteration %d" % (ckpt, start))
    t0 = time.time() - spent
    net.train()
    for it in range(start, args.iterations):
        bx, by = [], []
        for _ in range(args.batch):
            i = int(rng.integers(len(xs)))
            xp, yp = sample_patch(xs[i], ys[i], index[i], rng, 0.6)
            # mild intensity augmentation (window scale/offset)
            xp = np.clip(xp * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02), 0, 1)
            bx.append(xp)
            by.append(yp)
        x = torch.from_numpy(np.stack(bx)[:, None]).to(dev)
        y = torch.from_numpy(np.stack(by)).to(dev)
        loss = dice_ce_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run = loss.item() if it == 0 else 0.98 * run + 0.02 * loss.item()
        if (it + 1) % 25 == 0 or it == 0:
            el = time.time() - t0
            log("  it %d/%d loss %.4f lr %.2e %.0f s (%.2f s/it)" %
                (it + 1, args.iterations, run, sched.get_last_lr()[0], el, el / (it + 1)))
        if args.checkpoint_every and (it + 1) % args.checkpoint_every == 0 and it + 1 < args.iterations:
            tmp = ckpt + ".tmp"
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": rng.bit_generator.state, "it": it + 1, "seconds": time.time() - t0,
                        "loss": run}, tmp)
            os.replace(tmp, ckpt)
    train_s = time.time() - t0
    log("training took %.1f min" % (train_s / 60))
    net.eval().cpu()
    os.makedirs(MODEL_DIR, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "features": FEATURES, "iterations": args.iterations,
                "train_seconds": train_s}, args.weights)
    export(net)
    write_card()


# ---------------------------------------------------------------------------
# Export and card
# ---------------------------------------------------------------------------
def export(net):
    path = os.path.join(MODEL_DIR, NAME + ".onnx")
    x = torch.zeros(1, 1, PATCH[2], PATCH[1], PATCH[0])
    onnx_export.export(net, x, path, opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "N", 2: "D", 3: "H", 4: "W"},
                                    "logits": {0: "N", 2: "D", 3: "H", 4: "W"}},
                      do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    log("wrote %s (%.1f MB)" % (path, os.path.getsize(path) / 1e6))


def card():
    return {
        "name": NAME,
        "version": VERSION,
        "task": "segmentation",
        "description": "Torso organs on CT (demonstration model trained on medinfer phantoms only; not for clinical use)",
        "model": NAME + ".onnx",
        "applies_to": {"modality": ["CT"], "body_part": [], "min_size": [64, 64, 32]},
        "input": {"channels": 1, "spacing": list(SPACING), "orientation": "LPS", "preprocessing": [dict(WINDOW)]},
        "inference": {"mode": "3d", "patch_size": list(PATCH), "overlap": OVERLAP, "batch": 2,
                      "gaussian_sigma_scale": SIGMA_SCALE, "mirroring": False},
        "output": {
            "activation": "softmax",
            "threshold": 0.5,
            "labels": [{"value": v, "name": n, "color": col, "category": dict(ANAT),
                        "type": {"scheme": "SCT", "value": code, "meaning": meaning}}
                       for v, n, code, meaning, col in LABELS],
            # The spine is a stack of vertebrae (discs between them are body):
            # not one component.  Body encloses the organs: no hole filling.
            "postprocessing": {"largest_component": [2, 3, 4, 5, 6, 7, 8, 10], "fill_holes": False},
        },
    }


def write_card():
    path = os.path.join(MODEL_DIR, NAME + ".card.json")
    with open(path, "w") as f:
        json.dump(card(), f, indent=2)
        f.write("\n")
    log("wrote %s" % path)


# ---------------------------------------------------------------------------
# Inference as the pipeline does it
# ---------------------------------------------------------------------------
def steps_for(dim, patch, overlap):
    if dim <= patch:
        return [0]
    target = max(patch * (1 - overlap), 1)
    n = int(math.ceil((dim - patch) / target)) + 1
    actual = (dim - patch) / (n - 1)
    return [int(round(actual * i)) for i in range(n)]


def gaussian_map(p, scale):
    ax = []
    for n in p:  # z y x
        c, s = n // 2, scale * n
        i = np.arange(n, dtype=np.float64)
        ax.append(np.exp(-(i - c) ** 2 / (2 * s * s)))
    g = (ax[0][:, None, None] * ax[1][None, :, None] * ax[2][None, None, :]).astype(np.float32)
    g[g <= 0] = g[g > 0].min()
    return g


@torch.no_grad()
def sliding_window(net, vol, bg, batch=2):
    """vol [z][y][x] preprocessed -> softmax probabilities [C][z][y][x]."""
    p = (PATCH[2], PATCH[1], PATCH[0])
    dims = vol.shape
    pd = [max(d, q) for d, q in zip(dims, p)]
    lo = [(a - d) // 2 for a, d in zip(pd, dims)]
    v = np.full(pd, bg, np.float32)
    v[lo[0]:lo[0] + dims[0], lo[1]:lo[1] + dims[1], lo[2]:lo[2] + dims[2]] = vol
    g = torch.from_numpy(gaussian_map(p, SIGMA_SCALE))
    acc = torch.zeros((NCLASS,) + tuple(pd))
    wsum = torch.zeros(tuple(pd))
    pos = [(z, y, x) for z in steps_for(pd[0], p[0], OVERLAP) for y in steps_for(pd[1], p[1], OVERLAP)
           for x in steps_for(pd[2], p[2], OVERLAP)]
    vt = torch.from_numpy(v)
    for b in range(0, len(pos), batch):
        chunk = pos[b:b + batch]
        x = torch.stack([vt[z:z + p[0], y:y + p[1], x:x + p[2]] for z, y, x in chunk])[:, None]
        prob = net(x).softmax(1)
        for (z, y, x_), pr in zip(chunk, prob):
            acc[:, z:z + p[0], y:y + p[1], x_:x_ + p[2]] += pr * g
            wsum[z:z + p[0], y:y + p[1], x_:x_ + p[2]] += g
    out = (acc / wsum)[:, lo[0]:lo[0] + dims[0], lo[1]:lo[1] + dims[1], lo[2]:lo[2] + dims[2]]
    return out.numpy()


def segment(net, img, g):
    gm = grid_for(g, SPACING)
    vmin = float(img.min())
    x = ct_window(resample(img.astype(np.float32), g, gm, "linear", vmin))
    bg = float(ct_window(np.array([vmin], np.float32))[0])
    probs = sliding_window(net, x, bg)
    # back onto the source voxels: trilinear on probabilities, then argmax
    ps = resample(probs, gm, g, "linear", 0.0)
    lab = ps.argmax(0).astype(np.uint8)
    lab[ps.max(0) <= 0] = 0
    return lab


def dice(a, b):
    s = a.sum() + b.sum()
    return 2.0 * np.logical_and(a, b).sum() / s if s else float("nan")


def load_net(weights):
    """The network from a training checkpoint (.pt) or from the exported ONNX
    file itself (its initializers carry the parameter names)."""
    if weights.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper
        m = onnx.load(weights)
        sd = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
        feats = tuple(int(sd["encoder.%d.0.0.weight" % i].shape[0]) for i in range(len(sd))
                      if "encoder.%d.0.0.weight" % i in sd)
        net = make_net(feats)
        net.load_state_dict(sd)
        return net.eval()
    ck = torch.load(weights, map_location="cpu")
    net = make_net(ck["features"])
    net.load_state_dict(ck["state_dict"])
    return net.eval()


def evaluate(args):
    net = load_net(args.weights)
    variants = {"axial": []}
    for v in args.variants.split(",") if args.variants else []:
        variants[v] = {"coronal": ["--orientation", "coronal"], "oblique": ["--orientation", "oblique"],
                       "tilt": ["--tilt", "15"], "sagittal": ["--orientation", "sagittal"],
                       "contrast": ["--contrast"], "fine": ["--size", "512x512x300", "--spacing", "0.78125,0.78125,1.2"]}[v]
    work = tempfile.mkdtemp(prefix="demo-organs-eval-")
    allres = {}
    try:
        for vname, vargs in variants.items():
            res = []
            for seed in args.eval_seeds:
                t0 = time.time()
                img, lab, g = phantom(args.medinfer, os.path.join(work, "e"), seed, *vargs)
                pred = segment(net, img, g)
                d = [dice(pred == v, lab == v) for v, *_ in LABELS]
                res.append(d)
                log("%-8s seed %d: %s  (%.0f s)" % (vname, seed, " ".join("%.3f" % x for x in d), time.time() - t0))
            res = np.array(res)
            allres[vname] = res
            log("%s mean / min Dice per organ over seeds %s:" % (vname, ",".join(map(str, args.eval_seeds))))
            for (v, n, *_), m, lo in zip(LABELS, res.mean(0), res.min(0)):
                log("  %2d %-13s mean %.4f  min %.4f" % (v, n, m, lo))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.eval_json:
        with open(args.eval_json, "w") as f:
            json.dump({k: {"seeds": list(args.eval_seeds),
                           "dice": {n: [round(float(x), 4) for x in r[:, i]] for i, (v, n, *_) in enumerate(LABELS)}}
                       for k, r in allres.items()}, f, indent=1)


# ---------------------------------------------------------------------------
# Engine check: the .onnx through medinfer's engine vs PyTorch
# ---------------------------------------------------------------------------
def engine_check(args):
    import onnx
    from onnx import numpy_helper
    net = load_net(args.weights)
    case = tempfile.mkdtemp(prefix="demo-organs-onnx-")
    try:
        shutil.copy(os.path.join(MODEL_DIR, NAME + ".onnx"), os.path.join(case, "model.onnx"))
        td = os.path.join(case, "test_data_set_0")
        os.makedirs(td)
        # a real patch: windowed phantom around the organs, batch 2
        work = os.path.join(case, "ph")
        img, _, g = phantom(args.medinfer, work, EVAL_SEEDS[0])
        gm = grid_for(g, SPACING)
        x = ct_window(resample(img.astype(np.float32), g, gm, "linear", float(img.min())))
        p = (PATCH[2], PATCH[1], PATCH[0])
        c = [s // 2 for s in x.shape]
        a = x[c[0] - p[0] // 2:c[0] + p[0] // 2, c[1] - p[1] // 2:c[1] + p[1] // 2, c[2] - p[2] // 2:c[2] + p[2] // 2]
        b = x[c[0] - 16:c[0] - 16 + p[0], c[1] - 40:c[1] - 40 + p[1], c[2] - 8:c[2] - 8 + p[2]]
        inp = np.ascontiguousarray(np.stack([a, b])[:, None])
        with torch.no_grad():
            out = net(torch.from_numpy(inp)).numpy()
        with open(os.path.join(td, "input_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(inp, "image").SerializeToString())
        with open(os.path.join(td, "output_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(out, "logits").SerializeToString())
        shutil.rmtree(work)
        log("PyTorch logits: batch 2 x %s, range [%.2f, %.2f]" % (PATCH, out.min(), out.max()))
        rc = 0
        for rtol, atol in (("1e-3", "1e-4"), ("1e-4", "1e-5"), ("1e-5", "1e-6")):
            cmd = [args.engine_check, "--threads", str(args.threads), "--rtol", rtol, "--atol", atol, case]
            log("$ " + " ".join(cmd))
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            log(r.stdout.rstrip())
            if rtol == "1e-3":
                rc = r.returncode  # the required tolerance; tighter ones are informative
        log("engine check at rtol 1e-3 / atol 1e-4: %s" % ("PASS" if rc == 0 else "FAIL"))
        return rc
    finally:
        shutil.rmtree(case, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medinfer", default="build/cli/medinfer", help="the medinfer command (phantom generator)")
    ap.add_argument("--cases", type=int, default=24, help="training phantoms (seeds 1000..)")
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="", help="npz file to keep the prepared training cases in")
    ap.add_argument("--weights", default="", help="training: where to save the PyTorch checkpoint (default: beside "
                    "the model); --evaluate/--engine-check: a checkpoint or the .onnx (default: the committed .onnx)")
    ap.add_argument("--checkpoint-every", type=int, default=100, help="save a resumable checkpoint every N iterations")
    ap.add_argument("--init", default="", help="start from these weights (.pt or .onnx) instead of random ones")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --weights")
    ap.add_argument("--evaluate", action="store_true", help="Dice on unseen seeds instead of training")
    ap.add_argument("--eval-seeds", default=",".join(map(str, EVAL_SEEDS)))
    ap.add_argument("--variants", default="", help="also evaluate: coronal,oblique,tilt,sagittal,contrast,fine")
    ap.add_argument("--eval-json", default="")
    ap.add_argument("--engine-check", default="", metavar="MEDINFER_ONNX_TEST",
                    help="compare the engine's output with PyTorch's on a phantom patch")
    ap.add_argument("--card-only", action="store_true", help="only (re)write the card")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.eval_seeds = [int(s) for s in args.eval_seeds.split(",")]
    if not args.weights:  # training writes a checkpoint beside the model; evaluation reads the ONNX
        args.weights = os.path.join(MODEL_DIR, NAME + (".pt" if not (args.evaluate or args.engine_check) else ".onnx"))
    if args.card_only:
        write_card()
    elif args.engine_check:
        sys.exit(1 if engine_check(args) else 0)
    elif args.evaluate:
        evaluate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
