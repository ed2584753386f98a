"""torch.onnx.export pinned to the TorchScript exporter, on every PyTorch.

PyTorch 2.9 and later default to the torch.export-based exporter (dynamo=True),
which writes different graphs (and fails on some of the detection models);
PyTorch before 2.0 has no such argument.  Every export in this repository goes
through here, so that Debian's torch and a newer one write the same models.
"""
import inspect

import torch


def export(*args, **kwargs):
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs.setdefault("dynamo", False)
    return torch.onnx.export(*args, **kwargs)
