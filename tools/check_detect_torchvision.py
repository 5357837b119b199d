#!/usr/bin/env python3
"""check_detect_torchvision.py - `kdcam detect` against torchvision's own
RetinaNet end to end: preprocessing (GeneralizedRCNNTransform, 800/1333),
ResNet50-FPN body, RetinaNetHead, anchors, post-processing, rescale.

    /usr/bin/python3 tools/check_detect_torchvision.py [IMAGE] [KDCAM]

Builds torchvision.models.detection.retinanet_resnet50_fpn(num_classes=4)
with seeded random weights (torch.manual_seed(1)), its class-logit conv
scaled by 4 with bias -2 so that some hundreds of scores pass 0.05 without
saturating at 1 (saturated scores tie, and tied detections come out in an
order neither side defines); saves the state dict as a .pth, runs
`kdcam detect --json -t 2` on the image (default examples/images/coffee.png)
and compares every detection in order: label, box, score. Prints the worst
differences; exits 1 if a label or the count differs, a box by more than
1e-2 px or a score by more than 1e-4 relative (the float preprocessing and
network differ from PyTorch's by float32 rounding; tests/test_detect.c
checks the post-processing alone to 1e-3 px / 1e-5). Needs PyTorch: not
part of make test."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image


def main():
    image = sys.argv[1] if len(sys.argv) > 1 else "examples/images/coffee.png"
    kdcam = sys.argv[2] if len(sys.argv) > 2 else "build/kdcam"
    torch.manual_seed(1)
    m = torchvision.models.detection.retinanet_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=4).eval()
    with torch.no_grad():
        m.head.classification_head.cls_logits.bias.fill_(-2.0)
        m.head.classification_head.cls_logits.weight.mul_(4)
    with tempfile.TemporaryDirectory() as tmp:
        wpath = os.path.join(tmp, "retinanet.pth")
        torch.save(m.state_dict(), wpath)
        out = subprocess.run([kdcam, "detect", "--json", "-t", "2", "-w", wpath, image],
                             check=True, capture_output=True, text=True).stdout
    dets = json.loads(out)["detections"]
    x = torchvision.transforms.functional.to_tensor(Image.open(image).convert("RGB"))
    with torch.no_grad():
        ref = m([x])[0]
    pb, ps, pl = ref["boxes"].numpy(), ref["scores"].numpy(), ref["labels"].numpy()
    kb = np.array([d["box"] for d in dets]).reshape(-1, 4)
    ks = np.array([d["score"] for d in dets])
    kl = np.array([d["label"] for d in dets])
    print("detections: kdcam %d, torchvision %d (%d distinct scores)"
          % (len(dets), len(pb), len(np.unique(ps))))
    if len(dets) != len(pb) or len(pb) == 0:
        sys.exit(1)
    box = float(np.abs(kb - pb).max())
    score = float((np.abs(ks - ps) / ps).max())
    labels = int((kl != pl).sum())
    print("labels differing: %d; worst box difference %.3g px; worst score %.3g relative"
          % (labels, box, score))
    sys.exit(0 if labels == 0 and box <= 1e-2 and score <= 1e-4 else 1)


if __name__ == "__main__":
    main()
