#!/usr/bin/python3
"""Generate whole-network parity cases: PyTorch output as the expected data.

    /usr/bin/python3 models/scripts/make_parity_cases.py --out DIR [--only a,b] [--force]

For each network: seed torch, build it with random weights, randomize the
BatchNorm/InstanceNorm parameters (networks.randomize_bn), export it with
torch.onnx.export, run PyTorch on a fixed random input, and write the case in
the ONNX backend-test layout read by medinfer-onnx-test:

    DIR/<name>/model.onnx
    DIR/<name>/test_data_set_0/input_0.pb   (serialized onnx.TensorProto)
    DIR/<name>/test_data_set_0/output_0.pb

(INPUT_VARIANTS: a case's network on other inputs, test_data_set_0, _1, ...)

Choices that make the check meaningful:
  * BatchNormalization nodes are kept in the graph (TrainingMode.PRESERVE on an
    eval-mode model) so medinfer's own Conv+BN folding is what gets tested; the
    "_b2" case instead uses the exporter's default (BN already folded).
  * The expected output is computed in float64 (except the 3D U-Net, see
    CASES) from the very float32 weights and input, so the tolerance budget
    measures medinfer's error alone instead of the sum of two float32
    implementations' rounding.
  * Batch is a dynamic axis; resnet18_b2 runs a batch-1 export at batch 2.

A case is skipped when its stamp (hash of these scripts + versions + spec)
matches, so re-running ctest does not re-export; --force regenerates.
"""
import argparse
import hashlib
import json
import os
import sys
import time
import zlib

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
    import torch
    import torchvision
except ImportError as e:  # must fail loudly: a silent skip would hide missing coverage
    sys.stderr.write(
        "make_parity_cases.py: %s (interpreter %s).\n"
        "The whole-network parity tests need PyTorch, torchvision, onnx and numpy for this "
        "interpreter; on Debian 12: sudo apt-get install python3-torch python3-torchvision "
        "python3-onnx python3-numpy (the README's install step does this).\n" % (e, sys.executable))
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import networks  # noqa: E402
import onnx_export  # noqa: E402

PRESERVE = torch.onnx.TrainingMode.PRESERVE
EVAL = torch.onnx.TrainingMode.EVAL


def _tv(name, **kw):
    return lambda: getattr(torchvision.models, name)(weights=None, **kw)


# name -> (builder, input shape of the test data, export shape, opset, exporter mode,
#          reference dtype). Sizes are chosen for CI on 2 cores; every one keeps the
#          real topology and widths.
F64, F32 = torch.float64, torch.float32
CASES = {
    "resnet18": (_tv("resnet18"), (1, 3, 224, 224), None, 13, PRESERVE, F64),
    "resnet50": (_tv("resnet50"), (1, 3, 224, 224), None, 17, PRESERVE, F64),
    # VGG's AdaptiveAvgPool2d(7) exports only when the feature map is a multiple of 7: 224.
    "vgg16_bn": (_tv("vgg16_bn"), (1, 3, 224, 224), None, 13, PRESERVE, F64),
    "densenet121": (_tv("densenet121"), (1, 3, 224, 224), None, 17, PRESERVE, F64),
    # Spatial sides differ on purpose (here and below): a cube or square input cannot
    # reveal an H/W (or D/H/W) mix-up in conv, pooling, ConvTranspose or Resize.
    "unet2d": (lambda: networks.unet2d(1, 3, (32, 64, 128, 256, 512)), (1, 1, 96, 128), None, 17, PRESERVE, F64),
    # nnU-Net 3d_fullres widths; 5 stages bring the 48x64x80 patch (about 64^3 voxels)
    # down to a 3x4x5 bottleneck.
    # float32 reference: PyTorch's float64 conv3d is ~15x slower (70 s CPU); the float32
    # reference differs from a float64 one by ~2e-6 here, far inside atol 1e-4.
    "unet3d_nnunet": (lambda: networks.unet3d_nnunet(1, 3, (32, 64, 128, 256, 320)), (1, 1, 48, 64, 80), None, 17,
                      PRESERVE, F32),
    # Output stride 8: the 18x24 map is divisible by every pyramid bin (1,2,3,6), which
    # torch.onnx needs for AdaptiveAvgPool2d (128 would give 16x16, not divisible by 3 or 6).
    "pspnet_resnet18": (lambda: networks.pspnet("resnet18", 5), (1, 3, 144, 192), None, 17, PRESERVE, F64),
    "lstm2": (lambda: networks.lstm2(16, 32, 2), (1, 10, 16), None, 13, EVAL, F64),
    # Batching: exported at batch 1 with a symbolic batch axis, run at batch 2 or 3;
    # resnet18_b2 also uses the exporter's own BN folding (the others keep BN nodes).
    "resnet18_b2": (_tv("resnet18"), (2, 3, 224, 224), (1, 3, 224, 224), 17, EVAL, F64),
    # Resize sizes come from Shape->Slice->Concat of the (symbolic-batch) feature map.
    "pspnet_resnet18_b2": (lambda: networks.pspnet("resnet18", 5), (2, 3, 144, 192), (1, 3, 144, 192), 17,
                           PRESERVE, F64),
    # LSTM initial states are Expand-ed from the runtime batch; gates laid out per batch row.
    "lstm2_b3": (lambda: networks.lstm2(16, 32, 2), (3, 10, 16), (1, 10, 16), 13, EVAL, F64),
}


def image_like_inputs(shape, seed):
    """Four inputs of natural images' kind at the ImageNet-normalized scale (per
    channel about zero mean, unit spread), where the parity cases' own input is
    white noise: a 1/f field (natural images' amplitude spectrum; the channels
    mostly shared, as RGB's are), a smooth random field (about 9 px correlation),
    a synthetic scene (a disc, an edge, a grating, a ramp) and low-contrast noise
    about an offset."""
    g = torch.Generator().manual_seed(seed + 1)
    _, c, h, w = shape
    f = (torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2).sqrt().clamp_min(1.0 / max(h, w))

    def unit(t):
        return (t - t.mean()) / t.std()

    def pink():
        return unit(torch.fft.irfft2(torch.fft.rfft2(torch.randn(h, w, generator=g, dtype=F64)) / f, s=(h, w)))

    common = pink()
    one_over_f = torch.stack([0.8 * common + 0.6 * pink() for _ in range(c)])
    k = 9
    smooth = torch.nn.functional.avg_pool2d(torch.randn(c, h + k - 1, w + k - 1, generator=g, dtype=F64), k, 1)
    smooth = torch.stack([unit(p) for p in smooth])
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, dtype=F64), torch.linspace(-1, 1, w, dtype=F64), indexing="ij")
    disc = ((yy + 0.2) ** 2 + (xx - 0.1) ** 2 < 0.35).to(F64)
    parts = [disc + 0.4 * yy, (xx > 0.3).to(F64) - 0.5 * disc, torch.sin(9 * xx) * torch.cos(5 * yy) + 0.3 * xx]
    scene = torch.stack([unit(parts[i % 3] + 0.05 * torch.randn(h, w, generator=g, dtype=F64)) for i in range(c)])
    offset = 0.3 + 0.5 * torch.randn(c, h, w, generator=g, dtype=F64)
    return [t[None].float() for t in (one_over_f, smooth, scene, offset)]


# A case of another case's network (the same seed, weights and BatchNorm
# calibration) on other inputs, one test_data_set each: name -> (base case,
# input maker).  ResNet-50's white-noise input is one this random network
# amplifies (a 0.2 % perturbation of it moves the output to cosine 0.9989);
# images are what the network is for, and bf16 mode is held to the issue's
# 0.999 on them (tests/parity/CMakeLists.txt).
INPUT_VARIANTS = {
    "resnet50_images": ("resnet50", image_like_inputs),
}


# Detectors: torchvision Faster R-CNN exported at opset 11 (NonZero, TopK,
# NonMaxSuppression inside If, RoiAlign, ScatterElements), one 3xHxW image in,
# boxes/labels/scores out; compared by tests/parity/detect_parity.c.
# name -> (torchvision builder, image side). Small images and proposal counts keep
# a case to seconds on 2 cores; the topology is the real one.
DETECTION_CASES = {
    "fasterrcnn_resnet50_fpn": (torchvision.models.detection.fasterrcnn_resnet50_fpn, 256),
    "fasterrcnn_mobilenet_v3_large_fpn": (torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn, 256),
}
DETECTION_KW = dict(weights=None, weights_backbone=None, num_classes=5, rpn_pre_nms_top_n_test=300,
                    rpn_post_nms_top_n_test=150, box_detections_per_img=50)


def _seed(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _stamp(name):
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for f in ("networks.py", "make_parity_cases.py"):
        with open(os.path.join(here, f), "rb") as fh:
            h.update(fh.read())
    h.update(json.dumps([name, torch.__version__, torchvision.__version__, onnx.__version__]).encode())
    return h.hexdigest()


def _write_tensor(path, arr, name):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(np.ascontiguousarray(arr), name=name).SerializeToString())


def make_case(name, out_dir, force=False):
    base, make_inputs = INPUT_VARIANTS.get(name, (name, None))
    build, shape, export_shape, opset, mode, ref_dtype = CASES[base]
    case = os.path.join(out_dir, name)
    stamp_path = os.path.join(case, "stamp")
    stamp = _stamp(name)
    if not force and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print("%-16s up to date" % name, flush=True)
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    os.makedirs(case, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    seed = _seed(base)
    torch.manual_seed(seed)
    model = build().eval()
    x = torch.randn(*shape)
    # Calibrate BN statistics on the test input plus another sample so activations stay O(1).
    calib = torch.cat([x[:1], torch.randn(1, *shape[1:])]) if len(shape) >= 3 else None
    networks.randomize_bn(model, seed, calib=calib)

    dummy = x[: export_shape[0]] if export_shape else x
    dyn = {"input": {0: "batch"}, "output": {0: "batch"}}
    onnx_path = os.path.join(case, "model.onnx")
    with torch.no_grad():
        onnx_export.export(model, dummy, onnx_path, opset_version=opset, input_names=["input"],
                          output_names=["output"], dynamic_axes=dyn, do_constant_folding=True,
                          training=mode)
    proto = onnx.load(onnx_path)  # loaded once: VGG's file is 550 MB
    onnx.checker.check_model(proto)
    t_export = time.process_time() - c0

    # Reference (float64 unless noted) from the same float32 parameters and input.
    inputs = make_inputs(shape, seed) if make_inputs else [x]
    for i, xi in enumerate(inputs):
        with torch.no_grad():
            y = model.to(ref_dtype)(xi.to(ref_dtype))
        y = y.float().numpy()
        if not np.isfinite(y).all():
            raise RuntimeError("%s: non-finite reference output" % name)
        data = os.path.join(case, "test_data_set_%d" % i)
        os.makedirs(data, exist_ok=True)
        _write_tensor(os.path.join(data, "input_0.pb"), xi.numpy(), "input")
        _write_tensor(os.path.join(data, "output_0.pb"), y, "output")
    with open(stamp_path, "w") as f:
        f.write(stamp)
    nodes = proto.graph.node
    ops = sorted({n.op_type for n in nodes})
    print("%-16s in %-18s out %-18s |y|max %-9.3g cpu: export %5.1fs total %5.1fs wall %5.1fs  %d nodes: %s" % (
        name, "x".join(map(str, shape)), "x".join(map(str, y.shape)), float(np.abs(y).max()), t_export,
        time.process_time() - c0, time.time() - t0, len(nodes), " ".join(ops)), flush=True)


def _detection_model(name, x, seed):
    """Random-weight detector whose scores are far enough apart to compare.

    Fresh random weights give a useless comparison: the MobileNet box head sees
    nearly the same features for every proposal, and every detection then has the
    same score to 6 digits (ResNet's saturate at 1.0), so the order of detections,
    and which ones make the top 50, rests on float rounding. So: BN statistics are
    calibrated on the image (networks.randomize_bn: activations stay O(1) and vary
    between proposals), and the class logits are set to random directions scaled to
    a standard deviation of 2 across this image's proposals. The generator then
    checks that neighbouring scores differ by much more than the score tolerance."""
    build, side = DETECTION_CASES[name]
    torch.manual_seed(seed)
    model = build(min_size=side, max_size=side, **DETECTION_KW).eval()
    with torch.no_grad():
        networks.randomize_bn(model, seed, calib=[x])
        feats = []
        hook = model.roi_heads.box_head.register_forward_hook(lambda mod, i, o: feats.append(o))
        model([x])
        hook.remove()
        f = feats[0].double()
        cls = model.roi_heads.box_predictor.cls_score
        w = torch.randn(cls.weight.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.double)
        w = w / ((f - f.mean(0)) @ w.t()).std(0, keepdim=True).t().clamp_min(1e-12) * 2.0
        cls.weight.copy_(w.float())
        cls.bias.copy_((-(f.mean(0) @ w.t())).float())
    return model


def make_detection_case(name, out_dir, force=False):
    case = os.path.join(out_dir, name)
    data = os.path.join(case, "test_data_set_0")
    stamp_path = os.path.join(case, "stamp")
    stamp = _stamp(name)
    if not force and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print("%-16s up to date" % name, flush=True)
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    os.makedirs(data, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    seed = _seed(name)
    torch.manual_seed(seed)
    side = DETECTION_CASES[name][1]
    # A smooth random image (16x16 noise, upsampled): regions differ, so do proposals.
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16), size=(side, side), mode="bilinear",
                                        align_corners=False)[0].contiguous()
    model = _detection_model(name, x, seed)
    onnx_path = os.path.join(case, "model.onnx")
    with torch.no_grad():
        onnx_export.export(model, ([x],), onnx_path, opset_version=11, input_names=["image"],
                          output_names=["boxes", "labels", "scores"], do_constant_folding=True)
        y = model([x])[0]
    onnx.checker.check_model(onnx.load(onnx_path))
    boxes, labels, scores = y["boxes"].numpy(), y["labels"].numpy(), y["scores"].numpy()
    if len(scores) < 10:
        raise RuntimeError("%s: only %d detections; the comparison would say little" % (name, len(scores)))
    gap = float(np.min(np.abs(np.diff(scores)) / scores[1:]))
    if gap < 2e-5:  # 50x below the score rtol 1e-3 would still be ambiguous
        raise RuntimeError("%s: neighbouring scores differ by only %.2g (relative)" % (name, gap))
    _write_tensor(os.path.join(data, "input_0.pb"), x.numpy(), "image")
    _write_tensor(os.path.join(data, "output_0.pb"), boxes, "boxes")
    _write_tensor(os.path.join(data, "output_1.pb"), labels, "labels")
    _write_tensor(os.path.join(data, "output_2.pb"), scores, "scores")
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print("%-16s %d detections, scores %.3f..%.3f, smallest relative score gap %.2g, cpu %.1fs wall %.1fs" % (
        name, len(scores), float(scores.min()), float(scores.max()), gap, time.process_time() - c0,
        time.time() - t0), flush=True)


def make_detection_control(out_dir, control_dir):
    """CONTROL_DIR/<mobilenet case>_perturbed: one reference box coordinate moved by
    2e-2 px (twice the box tolerance); detect-parity must report FAIL."""
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    src, dst = os.path.join(out_dir, name), os.path.join(control_dir, name + "_perturbed")
    os.makedirs(os.path.join(dst, "test_data_set_0"), exist_ok=True)
    for f in ["model.onnx"] + ["test_data_set_0/%s.pb" % k for k in ("input_0", "output_1", "output_2")]:
        with open(os.path.join(src, f), "rb") as a, open(os.path.join(dst, f), "wb") as b:
            b.write(a.read())
    t = onnx.TensorProto()
    with open(os.path.join(src, "test_data_set_0", "output_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    y = numpy_helper.to_array(t).copy()
    y[len(y) // 2, 1] += 2e-2
    _write_tensor(os.path.join(dst, "test_data_set_0", "output_0.pb"), y, "boxes")


def make_control(out_dir, control_dir):
    """CONTROL_DIR/lstm2_perturbed: the lstm2 case with one expected element moved
    by twice the tolerance (atol 1e-4 + rtol 1e-3 * |y|); the runner must report FAIL
    (and lstm2_cosine, below, under --min-cosine).
    Kept outside --out so that running the runner over all of --out stays green."""
    src = os.path.join(out_dir, "lstm2")

    def copy_of_lstm2(name):  # the model and input; the expected output is the control's own
        dst = os.path.join(control_dir, name)
        os.makedirs(os.path.join(dst, "test_data_set_0"), exist_ok=True)
        for f in ("model.onnx", "test_data_set_0/input_0.pb"):
            with open(os.path.join(src, f), "rb") as a, open(os.path.join(dst, f), "wb") as b:
                b.write(a.read())
        return dst

    dst = copy_of_lstm2("lstm2_perturbed")
    t = onnx.TensorProto()
    with open(os.path.join(src, "test_data_set_0", "output_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    y = numpy_helper.to_array(t).copy()
    i = (0,) * (y.ndim - 1) + (1,)
    y[i] += 2 * (1e-4 + 1e-3 * abs(y[i]))
    _write_tensor(os.path.join(dst, "test_data_set_0", "output_0.pb"), y, "output")

    # CONTROL_DIR/lstm2_cosine: the expected output turned to cosine 0.998 from the
    # real one (noise orthogonal to it added), which --min-cosine 0.999 must reject.
    dst = copy_of_lstm2("lstm2_cosine")
    y = numpy_helper.to_array(t).astype(np.float64)
    e = np.random.default_rng(1).standard_normal(y.shape)
    e -= (e * y).sum() / (y * y).sum() * y  # orthogonal to y
    cos = 0.998  # |e| = |y| tan(acos(cos))
    e *= np.linalg.norm(y) * np.sqrt(1 - cos * cos) / cos / np.linalg.norm(e)
    _write_tensor(os.path.join(dst, "test_data_set_0", "output_0.pb"), (y + e).astype(np.float32), "output")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True, help="output folder (one sub-folder per case)")
    ap.add_argument("--only", help="comma-separated case names (default: all): " +
                    ",".join(list(CASES) + list(INPUT_VARIANTS) + list(DETECTION_CASES)))
    ap.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    ap.add_argument("--control", metavar="CONTROL_DIR",
                    help="also write the negative control CONTROL_DIR/lstm2_perturbed")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    known = list(CASES) + list(INPUT_VARIANTS) + list(DETECTION_CASES)
    names = a.only.split(",") if a.only else known
    bad = [n for n in names if n not in known]
    if bad:
        ap.error("unknown case(s) %s; known: %s" % (",".join(bad), ",".join(known)))
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    import warnings
    warnings.filterwarnings("ignore")  # exporter chatter (constant folding in PRESERVE mode, etc.)
    if a.control and "lstm2" not in names:
        names.append("lstm2")
    if a.control and "fasterrcnn_mobilenet_v3_large_fpn" not in names:
        names.append("fasterrcnn_mobilenet_v3_large_fpn")
    for n in names:
        if n in DETECTION_CASES:
            make_detection_case(n, a.out, a.force)
        else:
            make_case(n, a.out, a.force)
    if a.control:
        make_control(a.out, a.control)
        make_detection_control(a.out, a.control)
    print("generated %d case(s) in %.1fs wall, %.1fs CPU (this process)" % (
        len(names), time.time() - t0, time.process_time() - c0))


if __name__ == "__main__":
    main()
