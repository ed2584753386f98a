#!/usr/bin/python3
"""torchvision's Faster R-CNN (MobileNetV3-Large-FPN, random weights made
comparable as models/scripts/make_parity_cases.py does, ONNX opset 11) as a
"boxes" detector card run by `medinfer detect` slice by slice: the findings
equal PyTorch's per-slice detections after the same per-slice NMS, slice
merging and 3D NMS (yolo_parity.postprocess): same count and labels, centres
and sizes within 1e-2 mm, scores within rtol 1e-3.

Slices are 256 pixels, the network's min_size (no internal resize), and a
slice whose scores are near-tied fails the test rather than compare rounding.

usage: frcnn_detect_test.py MEDINFER WORKDIR"""
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "scripts"))
import make_parity_cases as mpc  # noqa: E402
import onnx_export  # noqa: E402
import yolo_parity as yp  # noqa: E402

NAME = "fasterrcnn_mobilenet_v3_large_fpn"
IOU, MERGE, MAXDET = 0.5, (0.3, 1, 1), 100


def main():
    medinfer, work = sys.argv[1:3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ph, vol, dirs, origin = yp.phantom_series(medinfer, work, "256x256x4", 12, lesions=2)
    x = torch.from_numpy(yp.window(vol))  # [z][y][x] in [0, 1]
    seed = mpc._seed(NAME)
    model = mpc._detection_model(NAME, x[1][None].expand(3, -1, -1).contiguous(), seed)
    with torch.no_grad():  # calibrated on one slice, the class logits saturate on others: soften them
        cls = model.roi_heads.box_predictor.cls_score
        cls.weight.mul_(0.25)
        cls.bias.mul_(0.25)
    path = os.path.join(work, "frcnn.onnx")
    with torch.no_grad():
        onnx_export.export(model, ([x[0][None].expand(3, -1, -1).contiguous()],), path, opset_version=11,
                          input_names=["image"], output_names=["boxes", "labels", "scores"], do_constant_folding=True)
        per_slice = []
        for z in range(x.shape[0]):
            y = model([x[z][None].expand(3, -1, -1).contiguous()])[0]
            sc = np.sort(y["scores"].numpy())
            if len(sc) > 1 and np.min(np.diff(sc) / sc[1:]) < 2e-5:
                raise SystemExit("FAIL: slice %d: near-tied scores, the comparison would rest on rounding" % z)
            for b, l, s in zip(y["boxes"].numpy().astype(np.float64), y["labels"].numpy(), y["scores"].numpy()):
                per_slice.append(([b[0] - 0.5, b[1] - 0.5, z], [b[2] - 0.5, b[3] - 0.5, z], float(s), int(l) - 1, 1))
    ref = yp.postprocess(per_slice, IOU, MERGE, MAXDET)
    print("reference: %d boxes on %d slices -> %d findings" % (len(per_slice), x.shape[0], len(ref)))
    if len(ref) < 5:
        raise SystemExit("FAIL: too few findings for a meaningful comparison")
    labels = [{"value": v, "name": "Class %d" % v, "color": [255, 0, 0],
               "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
               "type": {"scheme": "SCT", "value": "52988006", "meaning": "Lesion"}} for v in (1, 2, 3, 4)]
    card = {"name": "frcnn-test", "version": "1.0.0", "task": "detection", "model": "frcnn.onnx",
            "applies_to": {"modality": ["CT"], "min_size": [16, 16, 1]},
            "input": {"channels": 1, "spacing": list(yp.SPACING), "orientation": "native",
                      "preprocessing": [{"type": "ct_window", "center": 40, "width": 400}]},
            "inference": {"mode": "2d"},
            "output": {"head": {"type": "boxes", "outputs": {"boxes": "boxes", "scores": "scores", "labels": "labels"},
                                "label_offset": 1, "input_channels": 3},
                       "labels": labels, "score_threshold": 0.0, "iou_threshold": IOU, "max_detections": MAXDET,
                       "merge": {"iou": MERGE[0], "max_gap": MERGE[1], "min_slices": MERGE[2]}}}
    cp = os.path.join(work, "frcnn.card.json")
    json.dump(card, open(cp, "w"), indent=1)
    found = yp.run_detect(medinfer, cp, os.path.join(ph, "dicom"), os.path.join(work, "out"))
    err = yp.compare(found, ref, dirs, origin)
    if err:
        raise SystemExit("FAIL: " + err)
    print("OK %d findings match" % len(ref))


if __name__ == "__main__":
    main()
