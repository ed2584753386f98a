#!/usr/bin/env python3
"""medinfer's CUDA backend against PyTorch (cuDNN) on the same GPU, one run.

For a machine with an NVIDIA GPU, PyTorch built with CUDA, and a medinfer
build with the CUDA backend (bench/gpu_bench.sh builds one).  Prints, per
network, the median latency of each engine, the ratio medinfer/PyTorch and
the GPU's utilisation while medinfer ran (nvidia-smi, sampled every 50 ms):

  resnet50 at batch 1 and 32 (224x224), the nnU-Net-shaped 3D U-Net on a
  128^3 patch (features 32-64-128-256-320), and a whole 512x512x300 phantom
  CT through `medinfer segment --device cuda` with the demo-organs model,
  against PyTorch running the same architecture over the same model grid
  with the same patches, overlap, batch and Gaussian blending.

Both engines in FP32: PyTorch with TF32 off (torch.backends.*.allow_tf32),
medinfer in its default mode (TF32 only with --fast).  Weights are random
(speed does not depend on their values).

usage: gpu_bench.py --build DIR [--out DIR] [--runs N] [--only NAME]... [--python-only-check]
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "scripts"))
import onnx_export  # noqa: E402


class GpuSampler:
    """Mean GPU utilisation (%) from nvidia-smi while the block runs."""

    def __init__(self, index=0):
        self.index, self.samples, self.proc = index, [], None

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "-i", str(self.index), "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "50"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        except OSError:
            self.proc = None
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.thread.join(timeout=2)

    def mean(self):
        # Drop the first samples (process start, model load) when there are enough.
        s = self.samples[len(self.samples) // 4:] if len(self.samples) >= 8 else self.samples
        return statistics.mean(s) if s else float("nan")


def export(net, shape, path, torch):
    if os.path.exists(path):
        return
    net.eval()
    x = torch.randn(*shape)
    onnx_export.export(net, x, path, opset_version=13, input_names=["x"], output_names=["y"])


def torch_latency(net, shape, runs, torch):
    net = net.cuda().eval()
    x = torch.randn(*shape, device="cuda")
    times = []
    with torch.no_grad():
        for _ in range(3):
            net(x)
        torch.cuda.synchronize()
        for _ in range(runs):
            t0 = time.perf_counter()
            net(x)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def medinfer_latency(build, model, shape, runs):
    bench = os.path.join(build, "engine", "tools", "medinfer-bench")
    cmd = [bench, model, "--shape", "x".join(map(str, shape)), "--device", "cuda", "--runs", str(runs)]
    with GpuSampler() as s:
        p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("%s failed:\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return float(re.search(r"median: ([0-9.]+) ms", p.stdout).group(1)), s.mean()


def gaussian(patch, sigma_scale, torch):
    axes = []
    for n in patch:
        c, s = (n - 1) / 2.0, n * sigma_scale
        axes.append(torch.tensor([math.exp(-0.5 * ((i - c) / s) ** 2) for i in range(n)]))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (g / g.max()).clamp_min(1e-3)


def starts(size, patch, step):
    if size <= patch:
        return [0]
    n = int(math.ceil((size - patch) / step)) + 1
    return [round(i * (size - patch) / (n - 1)) for i in range(n)]


def torch_sliding_window(grid, card, torch):
    """The card's sliding window over a random volume of the model grid (z, y, x)."""
    from train_demo_organs import DemoUNet
    inf = card["inference"]
    patch = inf["patch_size"][::-1]
    step = [max(1, int(p * (1 - inf["overlap"]))) for p in patch]
    net = DemoUNet().cuda().eval()
    vol = torch.randn(1, 1, *grid, device="cuda")
    w = gaussian(patch, inf["gaussian_sigma_scale"], torch).cuda()
    tiles = [(z, y, x) for z in starts(grid[0], patch[0], step[0]) for y in starts(grid[1], patch[1], step[1])
             for x in starts(grid[2], patch[2], step[2])]
    batch = inf.get("batch", 1)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        acc, norm = None, torch.zeros(grid, device="cuda")
        for i in range(0, len(tiles), batch):
            part = tiles[i:i + batch]
            xb = torch.cat([vol[..., z:z + patch[0], y:y + patch[1], x:x + patch[2]] for z, y, x in part])
            yb = torch.softmax(net(xb), dim=1)
            if acc is None:
                acc = torch.zeros((yb.shape[1],) + tuple(grid), device="cuda")
            for (z, y, x), p in zip(part, yb):
                acc[:, z:z + patch[0], y:y + patch[1], x:x + patch[2]] += p * w
                norm[z:z + patch[0], y:y + patch[1], x:x + patch[2]] += w
        (acc / norm).argmax(0)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3, len(tiles)


def whole_ct(build, out, torch):
    medinfer = os.path.join(build, "cli", "medinfer")
    card_path = os.path.join(ROOT, "models", "demo-organs", "demo-organs.card.json")
    card = json.load(open(card_path))
    study = os.path.join(out, "ct512")
    if not os.path.exists(os.path.join(study, "dicom")):
        subprocess.run([medinfer, "phantom", "--out", study, "--size", "512x512x300", "--seed", "4242"], check=True,
                       stdout=subprocess.DEVNULL)
    seg = os.path.join(out, "ct512-seg")
    subprocess.run(["rm", "-rf", seg], check=True)
    with GpuSampler() as s:
        p = subprocess.run([medinfer, "segment", "--model", card_path, "--input", os.path.join(study, "dicom"),
                            "--output", seg, "--device", "cuda"], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("medinfer segment failed:\n" + p.stderr)
    rep = json.load(open(os.path.join(seg, "report.json")))
    ser = rep["series"][0]
    grid = [int(v) for v in ser["model_grid"].split("x")][::-1]  # report: x*y*z
    t_torch, ntiles = torch_sliding_window(grid, card, torch)
    return ser["seconds"], t_torch, ntiles, grid, s.mean(), rep["device"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-gpu"))
    ap.add_argument("--out", default=os.path.join(HERE, "out", "gpu"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", action="append", help="resnet50_b1, resnet50_b32, unet3d_128, ct512")
    a = ap.parse_args()
    import torch
    import torchvision
    from networks import randomize_bn, unet3d_nnunet

    if not torch.cuda.is_available():
        sys.exit("gpu_bench: PyTorch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    os.makedirs(a.out, exist_ok=True)
    print("GPU %s, PyTorch %s (cuDNN %s), %d runs each" % (torch.cuda.get_device_name(0), torch.__version__,
                                                            torch.backends.cudnn.version(), a.runs))
    nets = {
        "resnet50_b1": (lambda: torchvision.models.resnet50(weights=None), (1, 3, 224, 224)),
        "resnet50_b32": (lambda: torchvision.models.resnet50(weights=None), (32, 3, 224, 224)),
        "unet3d_128": (lambda: unet3d_nnunet(1, 2, features=(32, 64, 128, 256, 320)), (1, 1, 128, 128, 128)),
    }
    rows = []
    for name, (make, shape) in nets.items():
        if a.only and name not in a.only:
            continue
        torch.manual_seed(0)
        net = make()
        randomize_bn(net, seed=0, calib=torch.randn(1, *shape[1:]))
        path = os.path.join(a.out, name + ".onnx")
        export(net, shape, path, torch)
        t_mi, util = medinfer_latency(a.build, path, shape, a.runs)
        t_pt = torch_latency(net, shape, a.runs, torch)
        rows.append((name, t_mi, t_pt, util))
    print("\n| network | medinfer ms | PyTorch ms | ratio | GPU util (medinfer) |\n|---|---:|---:|---:|---:|")
    for name, t_mi, t_pt, util in rows:
        print("| %s | %.2f | %.2f | %.2f | %.0f%% |" % (name, t_mi, t_pt, t_mi / t_pt, util))
    if not a.only or "ct512" in a.only:
        sec, t_pt, ntiles, grid, util, device = whole_ct(a.build, a.out, torch)
        print("\nwhole CT 512x512x300 (demo-organs, device %s): model grid %s, %d patches" %
              (device, "x".join(map(str, grid[::-1])), ntiles))
        print("| stage | medinfer s |\n|---|---:|")
        for k in ("read", "preprocess", "inference", "postprocess", "write", "total"):
            print("| %s | %.2f |" % (k, sec[k]))
        print("PyTorch sliding window (same patches, batch, blending): %.2f s; inference ratio medinfer/PyTorch %.2f;"
              " GPU util during medinfer segment %.0f%%" % (t_pt / 1e3, sec["inference"] / (t_pt / 1e3), util))


if __name__ == "__main__":
    main()
