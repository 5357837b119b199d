#!/usr/bin/env python3
"""gen_issue17_fixtures.py - references for tests/test_api17.c (issue 17's calls).

Run from the repository root with Debian's PyTorch (torch 1.13 + numpy):

    /usr/bin/python3 tools/gen_issue17_fixtures.py

Independent of lib/: PyTorch float64 and NumPy. Files written
(tests/fixtures/issue17/):

api.safetensors
  guided/map      F32 1024 samples of Guided Grad-CAM (n x 3 x 64 x 80): the
                  guided-backprop input gradient (ReLU backward passes only
                  positive gradients where the input was > 0) times the
                  Grad-CAM map of model.11 (scale_cam_image of ReLU(sum_k
                  mean(g_k) A_k), cv2-style resize), top-1 logit; the KD
                  MobileNetV1 of gen_cam_fixtures.py (seed 1001, 10 classes),
                  its input (seed 7101, n=2, 64x80)
  guided/classes  I64 (n)
  logits          F32 (5, 37) random logits, with ties in row 3 and a row of
                  equal values (row 4)
  softmax/t1      F32 (5, 37) torch.softmax(logits / 1.0) in float64
  softmax/t2_5    F32 (5, 37) the same at temperature 2.5
  topk/k7         I64 (5, 7) indices of the 7 largest per row, largest first,
                  equal values in index order (NumPy stable argsort of -x)
labels/labels.json  a labels.json as `kdcam shapes` writes it, with extra
                  fields (index, name, mask, and unknown ones) that a reader
                  must skip
labels/expect.safetensors  what Python's json module reads from it: files
                  (I64 bytes, NUL-separated), classes, boxes, class names
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402
import gen_fixtures  # noqa: E402
import gen_cam_fixtures as gc  # noqa: E402

OUT = os.path.join("tests", "fixtures", "issue17")


def guided_gradcam():
    model, _ = gen_fixtures.build("mobilenetv1", gc.MODEL_SEED, gc.MODEL_CLASSES)
    model = model.double()
    N, H, W = gc.N, gc.H, gc.W
    x = kdcgen.fill("input", N * 3 * H * W, gc.IN_SEED, 0.0, 2.0).reshape(N, 3, H, W)
    x = x.astype(np.float32)
    raws, cls = gc.grad_cam_case(model, x, "gradcam", ["model.11"])
    cam = gc.aggregate(raws, (H, W))  # (n, H, W)
    guided, _ = gen_fixtures.build("mobilenetv1", gc.MODEL_SEED, gc.MODEL_CLASSES)
    guided = guided.double()
    for i in range(14):
        seq = guided.model[i]
        for j, sub in enumerate(seq):
            if isinstance(sub, nn.ReLU):
                seq[j] = gc.GuidedReLUModule()
    gb = gc.input_grad(guided, x, cls)  # (n, 3, H, W)
    return gc.sample(gb * cam[:, None, :, :]), cls


def main():
    torch.set_num_threads(1)
    os.makedirs(os.path.join(OUT, "labels"), exist_ok=True)
    t = {}
    t["guided/map"], cls = guided_gradcam()
    t["guided/classes"] = np.asarray(cls, dtype=np.int64)
    rs = np.random.RandomState(1717)
    z = (rs.randn(5, 37) * 3).astype(np.float32)
    z[3, 5] = z[3, 9] = z[3, 20] = z[3].max() + 1  # ties at the top
    z[4, :] = 0.25
    t["logits"] = z
    for name, temp in (("t1", 1.0), ("t2_5", 2.5)):
        t["softmax/" + name] = torch.softmax(torch.from_numpy(z).double() / temp,
                                             dim=1).numpy().astype(np.float32)
    t["topk/k7"] = np.argsort(-z.astype(np.float64), axis=1, kind="stable")[:, :7].astype(np.int64)
    kdcgen.write_safetensors(os.path.join(OUT, "api.safetensors"), t,
                             {"reference": "torch %s float64, numpy %s" % (torch.__version__,
                                                                           np.__version__)})

    classes = ["circle", "square", "triangle"]
    images = [
        {"file": "000000.png", "index": 0, "class": 2, "name": "triangle",
         "box": [3, 4, 60, 61], "mask": "000000_mask.png", "future": {"a": [1, 2]}},
        {"file": "000001.png", "index": 1, "class": 0, "name": "circle",
         "box": [10, 0, 64, 33], "difficulty": 0.5},
        {"file": "b\u00e9b\u00e9.png", "index": 2, "class": 1, "name": "square",
         "box": [0, 1, 2, 3]},
    ]
    doc = {"seed": 5, "size": 64, "classes": classes, "images": images, "version": 2}
    path = os.path.join(OUT, "labels", "labels.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    with open(path, encoding="utf-8") as f:
        back = json.load(f)
    files = b"\0".join(im["file"].encode("utf-8") for im in back["images"]) + b"\0"
    names = b"\0".join(c.encode("utf-8") for c in back["classes"]) + b"\0"
    kdcgen.write_safetensors(os.path.join(OUT, "labels", "expect.safetensors"), {
        "files": np.frombuffer(files, dtype=np.uint8).astype(np.int64),
        "class_names": np.frombuffer(names, dtype=np.uint8).astype(np.int64),
        "classes": np.asarray([im["class"] for im in back["images"]], dtype=np.int64),
        "boxes": np.asarray([im["box"] for im in back["images"]], dtype=np.int64),
    })
    print("wrote", OUT, "classes", cls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
