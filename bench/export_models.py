#!/usr/bin/python3
"""Export the benchmark networks to bench/out/NAME.onnx (+ NAME.json).

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14, onnx).
Weights are random (speed does not depend on their values); models are put in
eval mode so BatchNorm/Dropout export as inference ops.

NAME.json records the input shape and the model's multiply-add work
(2 FLOPs per MAC of Conv/ConvTranspose/Linear, counted with forward hooks on
the very forward pass that is exported) so run.sh can turn latencies into GFLOP/s.
Elementwise ops, pooling and normalisation are not counted: they are a few
percent of the work and the usual convention leaves them out.

usage: export_models.py [--out DIR] [--opset N] [--force] [NAME ...]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# The nnU-Net-shaped network is defined once, in the models package, so the
# benchmark measures the same architecture the project ships and tests.
sys.path.insert(0, os.path.join(ROOT, "models", "scripts"))
from networks import pspnet, randomize_bn, unet3d_nnunet  # noqa: E402
import onnx_export  # noqa: E402


def unet3d():
    return unet3d_nnunet(1, 2, features=(32, 64, 128, 256, 320))


class _OutOnly(nn.Module):
    """torchvision's segmentation models return a dict: export its 'out'."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def fcn_resnet50():
    return _OutOnly(torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None,
                                                                 aux_loss=False))


# name -> (constructor, input shape)
NETWORKS = {
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), (1, 3, 224, 224)),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None), (1, 3, 224, 224)),
    "vgg16_bn": (lambda: torchvision.models.vgg16_bn(weights=None), (1, 3, 224, 224)),
    "unet3d": (unet3d, (1, 1, 96, 96, 96)),
    # The engine-speed issue's segmentation networks (run.sh --only NAME).
    "fcn_resnet50": (fcn_resnet50, (1, 3, 192, 192)),
    "pspnet_resnet18": (lambda: pspnet("resnet18", 21), (1, 3, 192, 192)),
}


def prod(xs):
    p = 1
    for x in xs:
        p *= int(x)
    return p


def count_flops(model, x):
    """Run model(x) once and return (output, FLOPs of conv/convtranspose/linear)."""
    total = [0]

    def conv_hook(m, inp, out):
        # each output element is a dot product of length (C_in/groups)*prod(kernel)
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * prod(m.kernel_size)

    def convt_hook(m, inp, out):
        # each input element scatters into (C_out/groups)*prod(kernel) outputs
        total[0] += 2 * inp[0].numel() * (m.out_channels // m.groups) * prod(m.kernel_size)

    def linear_hook(m, inp, out):
        total[0] += 2 * (out.numel() // m.out_features) * m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            hooks.append(m.register_forward_hook(convt_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    return y, total[0]


def export(name, out_dir, opset):
    ctor, shape = NETWORKS[name]
    torch.manual_seed(0)
    x = torch.randn(*shape)
    # Realistic BN statistics keep activations O(1) through the deep nets: fresh
    # layers let them blow up or vanish, and denormals or huge values could
    # slow one engine down for reasons that have nothing to do with real use.
    model = randomize_bn(ctor(), seed=0, calib=x).eval()
    _, flops = count_flops(model, x)
    path = os.path.join(out_dir, name + ".onnx")
    tmp = path + ".tmp"
    # Static shapes: both engines get the same fully known graph.
    with torch.no_grad():
        onnx_export.export(model, x, tmp, opset_version=opset, input_names=["input"],
                          output_names=["output"], do_constant_folding=True)
    os.replace(tmp, path)  # never leave a half-written model for run.sh to pick up
    params = sum(p.numel() for p in model.parameters())
    meta = {"name": name, "shape": list(shape), "flops": flops, "params": params, "opset": opset}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(meta, f)
    print("%-12s %-18s %8.2f GFLOP  %6.1f M params  -> %s" %
          (name, "x".join(map(str, shape)), flops / 1e9, params / 1e6, path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="networks (default: all): " + ", ".join(NETWORKS))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--force", action="store_true", help="re-export even if the files exist")
    a = ap.parse_args()
    for n in a.names:
        if n not in NETWORKS:
            ap.error("unknown network '%s' (known: %s)" % (n, ", ".join(NETWORKS)))
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for n in a.names or list(NETWORKS):
        done = all(os.path.exists(os.path.join(a.out, n + ext)) for ext in (".onnx", ".json"))
        if done and not a.force:
            print("%-12s exists (use --force to re-export)" % n)
            continue
        export(n, a.out, a.opset)


if __name__ == "__main__":
    main()
