#!/usr/bin/env python3
"""gen_fixtures.py - writes the PyTorch reference fixtures of the model tests.

Run from the repository root with Debian's PyTorch (torch 1.13, torchvision 0.14):

    /usr/bin/python3 tools/gen_fixtures.py

What it writes: tests/fixtures/models/<model>_<case>.safetensors for the models
resnet50, resnet101, resnet152 (torchvision.models.resnetXX(weights=None)),
mobilenetv1 (the knowledge-distillation MobileNetV1, defined below; 10 classes so
that the class count must be read from the weight shapes) and mobilenetv1_timm
(the same network with ReLU6, weights generated under timm mobilenetv1_100 names
and loaded into the KD-layout module by the name mapping; 1000 classes), and the
cases n1_224 (N=1, 224x224) and n2_161x229 (N=2, 161x229: non-square and not a
multiple of 32).

Why: `make test` must not need PyTorch. The weights and the input are not
stored: they come from the seeded generator in tools/kdcgen.py, which the C tests
reproduce bit for bit (tests/util/weightgen.c); each fixture stores a few
generated weight tensors so the C test can check that first. What is stored is
the reference output of every recorded layer:

  NAME/shape   I64 [4]  NCHW shape of the layer output (fc: [N, C, 1, 1])
  NAME/val     F32      the whole tensor (flattened) if it has <= 4096 elements,
                        else K = 512 samples at the indices of
                        kdcgen.sample_indices (j*step + (j*2654435761) % step,
                        step = n // K)
  NAME/sum     F64      sum of the whole tensor
  NAME/sumsq   F64      sum of squares of the whole tensor
  logits       F32 [N, classes];  top1  I64 [N]
  weights:NAME/val      a few generated weight tensors (same sampling rule),
                        compared bit for bit by the C test
  f16w/logits  (mobilenetv1 n1_224 only) reference logits when the weights are
               rounded to float16 (the C test loads an F16 weights file)

The reference is computed in float64 (model.double(), input widened exactly), so
it does not depend on PyTorch's float32 summation order. The same network is
also run in float32 and the relative L2 error of float32 vs float64 (logits, and
the worst layer) is written to the metadata as the noise floor of a float32
implementation.

Layers recorded (libkdcam names; value = output of the PyTorch module, taken
with forward hooks and cloned, and every ReLU set to inplace=False):
  ResNet: conv1 (raw conv), bn1, relu, maxpool; every block layerL.B (after add
  and ReLU); every stage layerL (same tensor as its last block); in blocks
  layer1.0, layer2.0 and layer4.2 also .conv1 .bn1 .relu1 .conv2 .bn2 .relu2
  .conv3 .bn3 and, where present, .downsample.0 .downsample.1 (torchvision's
  Bottleneck calls its one `relu` module three times: call 1 -> relu1, call 2
  -> relu2, call 3 is the block output); avgpool [N,2048,1,1]; fc.
  MobileNetV1: model.0.0, model.0.1, model.0.2, model.0; model.K for K=1..13;
  model.K.0 .. model.K.5 for K in {1, 2, 13}; model.14 [N,1024,1,1]; fc.

KD MobileNetV1's model.14 is nn.AvgPool2d(7), which only works when the last map
is 7x7. libkdcam implements model.14 as global average pooling (identical at
224x224), so this reference uses nn.AdaptiveAvgPool2d(1) for model.14 at every
input size.

Deterministic: same generator, same seeds; torch runs single-threaded.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "models")
SAMPLE_K = 512
FULL_MAX = 4096
INPUT_C, INPUT_A = 0.0, 2.0
MIN_MARGIN = 1e-3

MODELS = [
    # name, scheme, weights seed, classes
    ("resnet50", "resnet50", 50, 1000),
    ("resnet101", "resnet101", 101, 1000),
    ("resnet152", "resnet152", 152, 1000),
    ("mobilenetv1", "mobilenetv1", 1001, 10),
    ("mobilenetv1_timm", "mobilenetv1_timm", 1002, 1000),
]
CASES = [("n1_224", 1, 224, 224, 7001), ("n2_161x229", 2, 161, 229, 7002)]


class KDMobileNetV1(nn.Module):
    """The ImageNet MobileNet of the distillation code bases (overhaul /
    ReviewKD / mdistiller), with model.14 as adaptive average pooling."""

    def __init__(self, num_classes=1000, act=nn.ReLU):
        super().__init__()

        def conv_bn(inp, oup, stride):
            return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
                                 nn.BatchNorm2d(oup), act(inplace=False))

        def conv_dw(inp, oup, stride):
            return nn.Sequential(nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                                 nn.BatchNorm2d(inp), act(inplace=False),
                                 nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
                                 nn.BatchNorm2d(oup), act(inplace=False))

        layers = [conv_bn(3, 32, 2)]
        layers += [conv_dw(i, o, s) for (i, o, s) in kdcgen.MBV1_BLOCKS]
        layers.append(nn.AdaptiveAvgPool2d(1))  # KD code: nn.AvgPool2d(7)
        self.model = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.model(x)
        x = x.view(-1, 1024)
        return self.fc(x)


def build(scheme, seed, classes):
    """(model, {kd-or-torchvision name: generated numpy array}) in eval mode."""
    if scheme.startswith("resnet"):
        model = getattr(torchvision.models, scheme)(weights=None, num_classes=classes)
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
    elif scheme == "mobilenetv1":
        model = KDMobileNetV1(classes, nn.ReLU)
    elif scheme == "mobilenetv1_timm":
        model = KDMobileNetV1(classes, nn.ReLU6)
    else:
        raise ValueError(scheme)
    specs = kdcgen.tensor_specs(scheme, classes)
    gen = {name: kdcgen.gen_tensor(name, shape, seed) for name, shape in specs}
    if scheme == "mobilenetv1_timm":
        sd = {kdcgen.timm_to_kd_name(k): v for k, v in gen.items()}
    else:
        sd = dict(gen)
    ref = model.state_dict()
    assert list(ref.keys()) == list(sd.keys()) or sorted(ref) == sorted(sd), \
        "tensor names differ from the PyTorch model"
    for k, v in ref.items():
        assert tuple(v.shape) == tuple(sd[k].shape), (k, v.shape, sd[k].shape)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)
    model.eval()
    return model, gen


def attach_hooks(model, scheme, store):
    """Registers forward hooks that clone each recorded output into store
    (an ordered dict name -> tensor). Returns the hook handles."""
    handles = []

    def rec(name):
        def hook(_m, _inp, out):
            store[name] = out.detach().clone()
        return hook

    def reg(mod, name):
        handles.append(mod.register_forward_hook(rec(name)))

    if scheme.startswith("resnet"):
        for n in ("conv1", "bn1", "relu", "maxpool"):
            reg(getattr(model, n), n)
        nstage = 4
        intra = {"layer1.0", "layer2.0", "layer4.%d" % (len(model.layer4) - 1)}
        for L in range(1, nstage + 1):
            stage = getattr(model, "layer%d" % L)
            for b, blk in enumerate(stage):
                p = "layer%d.%d" % (L, b)
                if p in intra:
                    for n in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3"):
                        reg(getattr(blk, n), p + "." + n)
                    if blk.downsample is not None:
                        reg(blk.downsample[0], p + ".downsample.0")
                        reg(blk.downsample[1], p + ".downsample.1")
                    calls = {"n": 0}

                    def relu_hook(_m, _inp, out, p=p, calls=calls):
                        calls["n"] += 1
                        if calls["n"] <= 2:
                            store["%s.relu%d" % (p, calls["n"])] = out.detach().clone()
                    handles.append(blk.relu.register_forward_hook(relu_hook))
                    handles.append(blk.register_forward_pre_hook(
                        lambda _m, _i, calls=calls: calls.__setitem__("n", 0)))
                reg(blk, p)
            reg(stage, "layer%d" % L)
        reg(model.avgpool, "avgpool")
        reg(model.fc, "fc")
    else:
        for k in range(15):
            seq = model.model[k]
            if k == 0 or k in (1, 2, 13):
                for j, sub in enumerate(seq):
                    reg(sub, "model.%d.%d" % (k, j))
            reg(seq, "model.%d" % k)
        reg(model.fc, "fc")
    return handles


def run(model, scheme, x):
    store = {}
    handles = attach_hooks(model, scheme, store)
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    return logits, store


def as4(t):
    t = t.detach().cpu()
    if t.dim() == 2:
        t = t[:, :, None, None]
    assert t.dim() == 4, t.shape
    return t


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def sample_of(arr):
    flat = np.asarray(arr).ravel()
    if flat.size <= FULL_MAX:
        return flat
    return flat[kdcgen.sample_indices(flat.size, SAMPLE_K)]


def top1_margin(logits):
    """Smallest over images of (best - runner-up) / max |logit|."""
    worst = float("inf")
    for row in logits:
        s = np.sort(row)[::-1]
        worst = min(worst, float((s[0] - s[1]) / max(np.abs(row).max(), 1e-30)))
    return worst


def make_input(n, h, w, seed):
    return kdcgen.fill("input", n * 3 * h * w, seed, INPUT_C, INPUT_A).reshape(n, 3, h, w)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    only = set(sys.argv[1:])
    summary = []
    for name, scheme, seed, classes in MODELS:
        if only and name not in only:
            continue
        model64, gen = build(scheme, seed, classes)
        model64 = model64.double()
        model32, _ = build(scheme, seed, classes)
        weight_keys = [k for k, _s in kdcgen.tensor_specs(scheme, classes)]
        check_keys = [weight_keys[0], [k for k in weight_keys if k.endswith("running_var")][1],
                      weight_keys[-2], weight_keys[-1]]
        for case, n, h, w, in_seed in CASES:
            while True:
                x = make_input(n, h, w, in_seed)
                logits64, rec64 = run(model64, scheme, torch.from_numpy(x).double())
                margin = top1_margin(logits64.numpy())
                if margin > MIN_MARGIN:
                    break
                print("  %s %s: top-1 margin %.2e too small with input seed %d, next seed"
                      % (name, case, margin, in_seed))
                in_seed += 1
            logits32, rec32 = run(model32, scheme, torch.from_numpy(x))
            assert list(rec64.keys()) == list(rec32.keys())
            tensors = {}
            rms = []
            worst_name, worst_err = "", 0.0
            for lname, t64 in rec64.items():
                a64 = as4(t64).numpy()
                a32 = as4(rec32[lname]).numpy()
                err = rel_l2(a32, a64)
                if err > worst_err:
                    worst_name, worst_err = lname, err
                assert np.all(np.isfinite(a64)), lname
                r = float(np.sqrt(np.mean(a64 * a64)))
                rms.append((r, lname))
                tensors[lname + "/shape"] = np.array(a64.shape, dtype=np.int64)
                tensors[lname + "/val"] = sample_of(a64).astype(np.float32)
                tensors[lname + "/sum"] = np.array(a64.sum(), dtype=np.float64)
                tensors[lname + "/sumsq"] = np.array((a64 * a64).sum(), dtype=np.float64)
            l64 = logits64.numpy()
            tensors["logits"] = l64.astype(np.float32)
            tensors["top1"] = np.argmax(l64, axis=1).astype(np.int64)
            for k in check_keys:
                tensors["weights:%s/val" % k] = sample_of(gen[k])
            meta = {
                "arch": "mobilenetv1" if scheme.startswith("mobilenetv1") else scheme,
                "scheme": scheme, "seed": str(seed), "input_name": "input",
                "input_seed": str(in_seed), "input_c": repr(INPUT_C), "input_a": repr(INPUT_A),
                "n": str(n), "h": str(h), "w": str(w), "num_classes": str(classes),
                "sample_k": str(SAMPLE_K), "full_max": str(FULL_MAX),
                "activation": "relu6" if scheme == "mobilenetv1_timm" else "relu",
                "reference": "torch %s float64" % torch.__version__,
                "f32_vs_f64_logits_rel_l2": "%.3e" % rel_l2(logits32.numpy(), l64),
                "f32_vs_f64_worst_layer": worst_name,
                "f32_vs_f64_worst_layer_rel_l2": "%.3e" % worst_err,
                "top1_margin_rel": "%.3e" % margin,
                "layers": ",".join(rec64.keys()),
            }
            extra = ""
            if scheme == "mobilenetv1" and case == "n1_224":
                # the same network with float16-rounded weights (F16 weights file)
                m16, _ = build(scheme, seed, classes)
                sd16 = {k: (v.float().half().double() if v.is_floating_point() else v)
                        for k, v in m16.state_dict().items()}
                m16 = m16.double()
                m16.load_state_dict(sd16)
                with torch.no_grad():
                    l16 = m16(torch.from_numpy(x).double()).numpy()
                tensors["f16w/logits"] = l16.astype(np.float32)
                meta["f16w_vs_f32w_logits_rel_l2"] = "%.3e" % rel_l2(l16, l64)
                extra = " f16w-vs-f32w logits %s" % meta["f16w_vs_f32w_logits_rel_l2"]
            if scheme == "mobilenetv1_timm":
                # how much ReLU6 clamps (so the test tells ReLU from ReLU6)
                bn_out = [as4(t).numpy() for k, t in rec64.items() if k.endswith(".1") or k.endswith(".4")]
                frac = np.mean([np.mean(b > 6.0) for b in bn_out])
                meta["relu6_clamped_fraction"] = "%.3e" % frac
                relu_model = KDMobileNetV1(classes, nn.ReLU).double()
                relu_model.load_state_dict(model64.state_dict())
                relu_model.eval()
                with torch.no_grad():
                    lrelu = relu_model(torch.from_numpy(x).double()).numpy()
                meta["relu_instead_of_relu6_logits_rel_l2"] = "%.3e" % rel_l2(lrelu, l64)
                extra = (" relu6 clamps %.2e of recorded BN outputs; ReLU instead of ReLU6 changes"
                         " logits by %s" % (frac, meta["relu_instead_of_relu6_logits_rel_l2"]))
            path = os.path.join(OUT_DIR, "%s_%s.safetensors" % (name, case))
            kdcgen.write_safetensors(path, tensors, meta)
            rms.sort()
            line = ("%-17s %-11s layers %3d  rms min %.3g (%s) max %.3g (%s)  logits rms %.3g  "
                    "margin %.2e  f32-vs-f64 logits %s worst %s (%s)%s  %d bytes"
                    % (name, case, len(rec64), rms[0][0], rms[0][1], rms[-1][0], rms[-1][1],
                       float(np.sqrt(np.mean(l64 * l64))), margin,
                       meta["f32_vs_f64_logits_rel_l2"], meta["f32_vs_f64_worst_layer_rel_l2"],
                       worst_name, extra, os.path.getsize(path)))
            print(line, flush=True)
            summary.append(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
