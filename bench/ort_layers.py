#!/usr/bin/env python3
"""ort_layers.py - ONNX Runtime's time per node of a forward pass, beside
`kdcam bench --layers`, to see layer by layer where the two differ.

    /usr/bin/python3 bench/ort_layers.py --arch resnet50 [--threads 1] [--runs 30]
                                         [--batch 1]

The model is torchvision's ResNet (or tools/gen_fixtures.py's MobileNetV1)
with random weights, exported with torch.onnx.export (opset 13, as
bench/peers.py) to a temporary directory and run by bench/ort_bench.js
(onnxruntime-node, its session options, with ONNX Runtime's profiler on;
one warm-up pass, not counted). Prints one line per node of the
optimised graph (ONNX Runtime fuses a conv with its BatchNorm, ReLU and
residual add, and names the node after its last output): name, operator,
minimum and median microseconds over the passes; then the sum of minima.
Needs PyTorch (/usr/bin/python3) and onnxruntime-node (see
bench/ort_bench.js); never used by make test.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(arch):
    import torch.nn as nn
    if arch.startswith("resnet"):
        import torchvision
        return getattr(torchvision.models, arch)(weights=None, num_classes=1000)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import gen_fixtures
    return gen_fixtures.KDMobileNetV1(1000, nn.ReLU)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet50",
                    choices=["resnet50", "resnet101", "resnet152", "mobilenetv1"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--size", default="224x224")
    ap.add_argument("--batch", type=int, default=1, help="images per pass (kdcam bench --batch)")
    ap.add_argument("--node", default=os.environ.get("NODE", "node"))
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split("x"))
    import numpy as np
    import torch
    import warnings
    model = build(a.arch).eval()
    x = torch.from_numpy(np.random.default_rng(7001).uniform(-2, 2, (a.batch, 3, h, w))
                         .astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, a.arch + ".onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, x, onnx_path, opset_version=13, input_names=["input"],
                              output_names=["logits"], do_constant_folding=True)
        in_path = os.path.join(tmp, "input.f32")
        x.numpy().astype("<f4").tofile(in_path)
        out = subprocess.run([a.node, os.path.join(HERE, "ort_bench.js"), onnx_path, in_path,
                              str(a.batch), "3", str(h), str(w), str(a.threads), str(a.runs),
                              "1",
                              os.path.join(tmp, "prof")],
                             capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr)
            return out.returncode
        with open(json.loads(out.stdout)["profile"]) as f:
            events = json.load(f)
    times, ops = collections.OrderedDict(), {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            name = e["name"][:-len("_kernel_time")]
            times.setdefault(name, []).append(e["dur"])
            ops[name] = e.get("args", {}).get("op_name", "")
    print("%s, ONNX Runtime, %d thread%s, %s, batch %d, %d passes (min, median microseconds "
          "per node)" % (a.arch, a.threads, "" if a.threads == 1 else "s", a.size, a.batch,
                         a.runs))
    total = 0
    for name, v in times.items():
        v = sorted(v[-a.runs:])  # the timed passes, not the warm-up
        total += v[0]
        print("%-62s %-18s %9d %9d" % (name[:62], ops[name], v[0], v[len(v) // 2]))
    print("%-62s %-18s %9d" % ("sum of the nodes' minima", "", total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
