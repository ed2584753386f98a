"""Test networks and cards for the segmentation tests (torch -> ONNX).

usage: make_models.py OUTDIR
  identity3d.onnx   1x1x1 Conv3d, weight 1, bias 0: output == input
  identity2d.onnx   1x1 Conv2d, the same for slice-wise inference
  pointwise3.onnx   1x1x1 Conv3d, 1 -> 3 channels: x, 0.25 - x, 0.5 x (softmax tests)
  unet.onnx         a small randomly initialised 3D U-Net, 4 output channels
  tiny-unet.card.json  card for unet.onnx (CT, softmax, 3 labels)
Deterministic (fixed seed).  Not trained: the tests check plumbing,
geometry and files, not accuracy."""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "scripts"))
import onnx_export  # noqa: E402


class UNet(nn.Module):
    def __init__(self, ch=4, out=4):
        super().__init__()
        block = lambda i, o: nn.Sequential(nn.Conv3d(i, o, 3, padding=1), nn.ReLU())
        self.e1, self.e2 = block(1, ch), block(ch, 2 * ch)
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ConvTranspose3d(2 * ch, ch, 2, stride=2)
        self.d1 = block(2 * ch, ch)
        self.head = nn.Conv3d(ch, out, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(self.pool(a))
        return self.head(self.d1(torch.cat([a, self.up(b)], 1)))


def export(model, shape, path, spatial):
    model.eval()
    axes = {0: "n"}
    for i in range(spatial):
        axes[2 + i] = "s%d" % i
    onnx_export.export(model, torch.zeros(shape), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": axes, "y": axes}, opset_version=13)


def identity(conv):
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    return conv


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    export(identity(nn.Conv3d(1, 1, 1)), (1, 1, 8, 8, 8), os.path.join(out, "identity3d.onnx"), 3)
    export(identity(nn.Conv2d(1, 1, 1)), (1, 1, 8, 8), os.path.join(out, "identity2d.onnx"), 2)
    net = UNet()
    with torch.no_grad():  # amplify the head so the random labels are blobs, not all background
        net.head.weight.mul_(40.0)
        net.head.bias.zero_()
    export(net, (1, 1, 16, 16, 16), os.path.join(out, "unet.onnx"), 3)
    pw = nn.Conv3d(1, 3, 1)  # after the U-Net: its random weights stay those of the seed
    with torch.no_grad():
        pw.weight.copy_(torch.tensor([1.0, -1.0, 0.5]).view(3, 1, 1, 1, 1))
        pw.bias.copy_(torch.tensor([0.0, 0.25, 0.0]))
    export(pw, (1, 1, 8, 8, 8), os.path.join(out, "pointwise3.onnx"), 3)
    sct = lambda v, m: {"scheme": "SCT", "value": v, "meaning": m}
    anat = sct("123037004", "Anatomical Structure")
    card = {
        "name": "tiny-unet", "version": "0.0.1", "task": "segmentation",
        "description": "untrained 3D U-Net for tests", "model": "unet.onnx",
        "applies_to": {"modality": ["CT"], "body_part": [], "min_size": [16, 16, 8]},
        "input": {"channels": 1, "spacing": [8.0, 8.0, 8.0], "orientation": "LPS",
                  "preprocessing": [{"type": "ct_window", "center": 40, "width": 500}]},
        "inference": {"mode": "3d", "patch_size": [16, 16, 16], "overlap": 0.5, "batch": 2,
                      "gaussian_sigma_scale": 0.125, "mirroring": False},
        "output": {"activation": "softmax", "threshold": 0.5, "labels": [
            {"value": 1, "name": "Liver", "color": [221, 130, 101], "category": anat, "type": sct("10200004", "Liver")},
            {"value": 2, "name": "Spleen", "color": [157, 108, 162], "category": anat, "type": sct("78961009", "Spleen")},
            {"value": 3, "name": "Heart", "color": [206, 110, 84], "category": anat, "type": sct("80891009", "Heart")}],
            "postprocessing": {"largest_component": True, "fill_holes": True}},
    }
    with open(os.path.join(out, "tiny-unet.card.json"), "w") as f:
        json.dump(card, f, indent=2)


if __name__ == "__main__":
    main()
