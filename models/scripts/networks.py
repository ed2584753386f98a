"""PyTorch reference networks for medinfer's parity tests and benchmarks.

The parity cases (make_parity_cases.py) and the benchmarks (bench/) import these
definitions, so keep the public signatures stable:

    unet2d(in_ch, n_classes, features)
    unet3d_nnunet(in_ch, n_classes, features=(32, 64, 128, 256, 320))
    pspnet(backbone='resnet18', n_classes=...)
    lstm2(input_size, hidden, layers=2)
    randomize_bn(model, seed, calib=None)

Needs torch and torchvision (Debian: python3-torch, python3-torchvision; run
with /usr/bin/python3).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

__all__ = ["unet2d", "unet3d_nnunet", "pspnet", "lstm2", "randomize_bn",
           "UNet2D", "UNet3DnnUNet", "PSPNet", "LSTM2"]


# --------------------------------------------------------------------------
# Classic 2D U-Net (Ronneberger 2015, with BatchNorm)
# --------------------------------------------------------------------------
def _double_conv2d(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet2D(nn.Module):
    """features[:-1] are the encoder levels, features[-1] the bottleneck width.
    Input H and W must be divisible by 2**(len(features)-1)."""

    def __init__(self, in_ch, n_classes, features=(64, 128, 256, 512, 1024)):
        super().__init__()
        features = tuple(features)
        assert len(features) >= 2
        self.down = nn.ModuleList()
        c = in_ch
        for f in features[:-1]:
            self.down.append(_double_conv2d(c, f))
            c = f
        self.pool = nn.MaxPool2d(2, 2)
        self.bottleneck = _double_conv2d(features[-2], features[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lo, hi in zip(reversed(features[:-1]), reversed(features[1:])):
            self.up.append(nn.ConvTranspose2d(hi, lo, 2, stride=2))
            self.dec.append(_double_conv2d(2 * lo, lo))
        self.head = nn.Conv2d(features[0], n_classes, 1)

    def forward(self, x):
        skips = []
        for blk in self.down:
            x = blk(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


def unet2d(in_ch, n_classes, features=(64, 128, 256, 512, 1024)):
    return UNet2D(in_ch, n_classes, features)


# --------------------------------------------------------------------------
# 3D U-Net shaped like nnU-Net's 3d_fullres PlainConvUNet
# --------------------------------------------------------------------------
class _ConvINLReLU3d(nn.Sequential):
    def __init__(self, cin, cout, stride):
        super().__init__(
            nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=True),
            nn.InstanceNorm3d(cout, eps=1e-5, affine=True),
            nn.LeakyReLU(0.01, inplace=True))


class UNet3DnnUNet(nn.Module):
    """nnU-Net 3d_fullres topology (PlainConvUNet, deep supervision off):
    one stage per entry of `features`; each stage is two 3x3x3 conv + IN(affine)
    + LeakyReLU(0.01), the first conv of every stage but the first has stride 2
    (no pooling); the decoder upsamples with ConvTranspose3d(k=2, s=2), concats
    the skip, runs two conv blocks, and a 1x1x1 conv gives the logits.
    Patch sides must be divisible by 2**(len(features)-1)."""

    def __init__(self, in_ch, n_classes, features=(32, 64, 128, 256, 320)):
        super().__init__()
        features = tuple(features)
        self.encoder = nn.ModuleList()
        c = in_ch
        for i, f in enumerate(features):
            stride = 1 if i == 0 else 2
            self.encoder.append(nn.Sequential(_ConvINLReLU3d(c, f, stride), _ConvINLReLU3d(f, f, 1)))
            c = f
        self.transp = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for lo, hi in zip(reversed(features[:-1]), reversed(features[1:])):
            self.transp.append(nn.ConvTranspose3d(hi, lo, 2, stride=2, bias=True))
            self.decoder.append(nn.Sequential(_ConvINLReLU3d(2 * lo, lo, 1), _ConvINLReLU3d(lo, lo, 1)))
        self.seg = nn.Conv3d(features[0], n_classes, 1, bias=True)

    def forward(self, x):
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for tp, dec in zip(self.transp, self.decoder):
            x = dec(torch.cat([tp(x), skips.pop()], dim=1))
        return self.seg(x)


def unet3d_nnunet(in_ch, n_classes, features=(32, 64, 128, 256, 320)):
    return UNet3DnnUNet(in_ch, n_classes, features)


# --------------------------------------------------------------------------
# PSPNet: ResNet backbone (output stride 8, dilated) + pyramid pooling module
# --------------------------------------------------------------------------
def _dilate_basic_layer(layer, dilation):
    """torchvision refuses dilation in BasicBlock; do what PSPNet does by hand:
    stride 2 -> 1 and dilate the 3x3 convs so the receptive field is kept."""
    for i, blk in enumerate(layer):
        if i == 0:
            blk.conv1.stride = (1, 1)
            if blk.downsample is not None:
                blk.downsample[0].stride = (1, 1)
            d1 = max(dilation // 2, 1)
        else:
            d1 = dilation
        blk.conv1.dilation, blk.conv1.padding = (d1, d1), (d1, d1)
        blk.conv2.dilation, blk.conv2.padding = (dilation, dilation), (dilation, dilation)


class PSPNet(nn.Module):
    """Feature map is input/8, so AdaptiveAvgPool2d bins (1,2,3,6) export to ONNX
    only when input/8 is divisible by 6 (e.g. 144, 192): torch.onnx cannot export
    adaptive pooling with uneven windows."""

    def __init__(self, backbone="resnet18", n_classes=21, bins=(1, 2, 3, 6), ppm_ch=None):
        super().__init__()
        if backbone in ("resnet18", "resnet34"):
            r = getattr(torchvision.models, backbone)(weights=None)
            _dilate_basic_layer(r.layer3, 2)
            _dilate_basic_layer(r.layer4, 4)
            cin = 512
        elif backbone in ("resnet50", "resnet101"):
            r = getattr(torchvision.models, backbone)(weights=None, replace_stride_with_dilation=[False, True, True])
            cin = 2048
        else:
            raise ValueError("unsupported backbone %r" % backbone)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layers = nn.Sequential(r.layer1, r.layer2, r.layer3, r.layer4)
        ppm_ch = ppm_ch or cin // len(bins)
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(cin, ppm_ch, 1, bias=False),
                          nn.BatchNorm2d(ppm_ch), nn.ReLU(inplace=True)) for b in bins)
        self.bottleneck = nn.Sequential(
            nn.Conv2d(cin + ppm_ch * len(bins), 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Dropout2d(0.1))
        self.cls = nn.Conv2d(256, n_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        f = self.layers(self.stem(x))
        fs = f.shape[-2:]
        pyr = [f] + [F.interpolate(p(f), size=fs, mode="bilinear", align_corners=False) for p in self.ppm]
        y = self.cls(self.bottleneck(torch.cat(pyr, dim=1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def pspnet(backbone="resnet18", n_classes=21):
    return PSPNet(backbone, n_classes)


# --------------------------------------------------------------------------
# 2-layer LSTM with a Linear head on every time step
# --------------------------------------------------------------------------
class LSTM2(nn.Module):
    def __init__(self, input_size, hidden, layers=2, n_out=4):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):  # x: (batch, seq, features)
        y, _ = self.lstm(x)
        return self.head(y)  # (batch, seq, n_out)


def lstm2(input_size, hidden, layers=2, n_out=4):
    return LSTM2(input_size, hidden, layers, n_out)


# --------------------------------------------------------------------------
# Randomized normalization layers
# --------------------------------------------------------------------------
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_IN = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


@torch.no_grad()
def randomize_bn(model, seed, calib=None):
    """Give every BatchNorm random running_mean/var, weight and bias, and every
    affine InstanceNorm a random weight and bias, so that BN folding and the
    affine terms are really exercised (fresh layers are identity: mean 0, var 1,
    weight 1, bias 0).

    With `calib` (an input batch) the running statistics are drawn around the
    statistics each BN actually sees on that input in eval mode (measured in
    execution order by a pre-hook, so upstream perturbations are accounted for):
    mean + 0.2*std*N(0,1), var * U(0.7, 1.4). This keeps activations O(1)
    through deep nets (ResNet-50, DenseNet-121) so atol/rtol comparisons stay
    meaningful instead of comparing exploded or vanished values. Without it,
    statistics are drawn independently around (0, 1).
    Returns the model, in eval mode."""
    g = torch.Generator().manual_seed(seed)

    def u(n, lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    model.eval()
    for m in model.modules():
        if isinstance(m, _BN):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(u(n, 0.5, 1.5))
            m.weight.copy_(u(n, 0.5, 1.5))
            m.bias.copy_(0.1 * torch.randn(n, generator=g))
        elif isinstance(m, _IN) and m.affine:
            n = m.num_features
            m.weight.copy_(u(n, 0.5, 1.5))
            m.bias.copy_(0.1 * torch.randn(n, generator=g))
    if calib is None:
        return model

    def measure(m, inp):
        x = inp[0].transpose(0, 1).reshape(m.num_features, -1).double()
        var = x.var(dim=1, unbiased=False).clamp_min(1e-3)
        n = m.num_features
        m.running_mean.copy_(x.mean(dim=1) + 0.2 * var.sqrt() * torch.randn(n, generator=g, dtype=torch.double))
        m.running_var.copy_(var * u(n, 0.7, 1.4).double())

    hooks = [m.register_forward_pre_hook(measure) for m in model.modules() if isinstance(m, _BN)]
    try:
        model(calib)
    finally:
        for h in hooks:
            h.remove()
    return model
