#!/usr/bin/python3
"""train_demo.py - trains the bundled demo models of weights/demo/.

Needs PyTorch (Debian's python3-torch: run it with /usr/bin/python3), numpy
and PIL, plus a built `kdcam` (for `kdcam shapes`, the dataset generator).
Neither `make demo` nor `make test` runs it: its outputs are committed.

What it does, deterministically (fixed seeds, fixed data order):
  1. generates the procedural shapes dataset with `kdcam shapes`:
       train    --seed 1, --train images (default 10000)
       val      --seed 2, 1000 images (accuracy logged after every epoch)
       held-out --seed 3, --test images (default 2000; final accuracies,
                Grad-CAM pointing game of the teacher on the first 500)
  2. trains (AdamW, one-cycle learning rate up to 3e-3, batch 32; teacher
     5 epochs, students 6), on 192x192 images (--size) scaled to [0,1] and
     normalised with the ImageNet mean/std (no resize, no augmentation):
       teacher       ResNet-50 topology (3-4-6-3 bottlenecks, torchvision
                     v1.5 layout and key names) at base width 16: stem 16,
                     planes 16/32/64/128, 512 output channels
       student       KD MobileNetV1 (model.0..13, model.14 = avg pool, fc) at
                     width 0.25 (8 ... 256 channels), cross-entropy
       student_kd    same, Hinton KD: (1-a) CE + a T^2 KL(t/T || s/T),
                     T = 4, a = 0.9
       student_ickd  same, KD + ICKD: beta * MSE between the C x C channel
                     Gram matrices (divided by H*W) of the teacher's layer4
                     output and of the student's model.13 output passed
                     through a 1x1 conv + BN embedding to 512 channels
                     (training only, not exported); as in the ICKD code,
                     each channel's H*W vector is L2-normalised first (the
                     Gram matrix holds cosine similarities); beta = 10
  3. writes F16 safetensors with exactly the keys libkdcam loads, the log
     train_log.txt (accuracy per epoch, timings) and prints a summary.

usage: /usr/bin/python3 tools/train_demo.py [--kdcam build/kdcam] [--out weights/demo]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402  (write_safetensors)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 192  # --size: a 6 x 6 last stage (128 gave 4 x 4: weights/demo/README.md)
CLASSES = 10

# ---------------------------------------------------------------------------
# Models


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: the stride on conv2), same names."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


class ResNetNarrow(nn.Module):
    """torchvision ResNet (keys conv1, bn1, layerL.B.*, fc) at a reduced width."""

    def __init__(self, width=16, blocks=(3, 4, 6, 3), num_classes=CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inpl = width
        for i, nb in enumerate(blocks):
            planes = width << i
            stride = 1 if i == 0 else 2
            ds = None
            if stride != 1 or inpl != planes * 4:
                ds = nn.Sequential(nn.Conv2d(inpl, planes * 4, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * 4))
            layers = [Bottleneck(inpl, planes, stride, ds)]
            inpl = planes * 4
            layers += [Bottleneck(inpl, planes) for _ in range(1, nb)]
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inpl, num_classes)
        self.out_channels = inpl
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)  # torchvision's zero_init_residual

    def forward(self, x, with_feat=False):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        out = self.fc(torch.flatten(self.avgpool(f), 1))
        return (out, f) if with_feat else out


# (in, out, stride) of model.1 .. model.13 at width 1.0
MBV1 = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
        (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1),
        (512, 1024, 2), (1024, 1024, 1)]


def _conv_bn(inp, oup, stride):
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup),
                         nn.ReLU(inplace=True))


def _conv_dw(inp, oup, stride):
    return nn.Sequential(nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                         nn.BatchNorm2d(inp), nn.ReLU(inplace=True),
                         nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
                         nn.ReLU(inplace=True))


class MobileNetV1KD(nn.Module):
    """The KD-literature MobileNetV1 (keys model.N.M.*, fc.*) at a width multiplier."""

    def __init__(self, mult=0.25, num_classes=CLASSES):
        super().__init__()

        def c(v):
            return max(8, int(v * mult))

        layers = [_conv_bn(3, c(32), 2)] + [_conv_dw(c(i), c(o), s) for i, o, s in MBV1]
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.model = nn.Sequential(*layers)
        self.fc = nn.Linear(c(1024), num_classes)
        self.out_channels = c(1024)

    def forward(self, x, with_feat=False):
        f = self.model[:14](x)
        out = self.fc(torch.flatten(self.model[14](f), 1))
        return (out, f) if with_feat else out


# ---------------------------------------------------------------------------
# Data


def generate(kdcam, d, seed, n, masks=False):
    """Runs `kdcam shapes` unless d already holds that exact set."""
    lab = os.path.join(d, "labels.json")
    if os.path.exists(lab):
        with open(lab) as f:
            j = json.load(f)
        # files without "style" are the classic style; the command below
        # writes kdcam shapes' default, the hard style (issue 12)
        if j["seed"] == seed and len(j["images"]) == n and j["size"] == SIZE and \
                j.get("style", "classic") == "hard" and \
                (not masks or "mask" in j["images"][0]):
            return j
    cmd = [kdcam, "shapes", "-n", str(n), "--seed", str(seed), "-o", d, "--size", str(SIZE)]
    if masks:
        cmd.append("--masks")
    subprocess.run(cmd, check=True)
    with open(lab) as f:
        return json.load(f)


def load_set(d, labels, masks=False):
    ims = labels["images"]
    x = np.empty((len(ims), SIZE, SIZE, 3), dtype=np.uint8)
    m = np.empty((len(ims), SIZE, SIZE), dtype=np.uint8) if masks else None
    for i, e in enumerate(ims):
        x[i] = np.asarray(Image.open(os.path.join(d, e["file"])).convert("RGB"))
        if masks:
            m[i] = np.asarray(Image.open(os.path.join(d, e["mask"])).convert("L")) > 127
    y = np.array([e["class"] for e in ims], dtype=np.int64)
    boxes = np.array([e["box"] for e in ims], dtype=np.int64)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y), boxes, m


_MEAN_T = torch.tensor(MEAN).view(1, 3, 1, 1)
_STD_T = torch.tensor(STD).view(1, 3, 1, 1)


def norm(xb):
    """uint8 N x 3 x H x W -> float, [0,1] then ImageNet mean/std."""
    return (xb.float() / 255.0 - _MEAN_T) / _STD_T


# ---------------------------------------------------------------------------
# Training


class Log:
    def __init__(self, path):
        self.f = open(path, "w")

    def __call__(self, msg):
        print(msg, flush=True)
        self.f.write(msg + "\n")
        self.f.flush()


@torch.no_grad()
def evaluate(model, x, y, bs=250):
    model.eval()
    correct = 0
    for i in range(0, len(x), bs):
        correct += (model(norm(x[i:i + bs])).argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(x)


@torch.no_grad()
def teacher_outputs(teacher, x, bs=32):
    """Teacher logits (float32) and layer4 features (float16) for the whole set.
    Batches of 32, as in training: batches of 250 ran 14 times slower here
    (100 s against 7 s for 4000 images at 136 px, 2 threads), with bitwise
    the same outputs (checked for 1000 images), so the shipped weights do
    not depend on it."""
    teacher.eval()
    logits, feats = [], []
    for i in range(0, len(x), bs):
        lo, f = teacher(norm(x[i:i + bs]), with_feat=True)
        logits.append(lo)
        feats.append(f.half())
    return torch.cat(logits), torch.cat(feats)


def gram_mse(fs, ft):
    """ICKD's inter-channel correlation loss: the mean squared difference of
    the C x C channel Gram matrices of fs and ft (N x C x H x W), each
    channel's H*W vector L2-normalised first (the Gram matrices hold cosine
    similarities). Computed without forming the C x C matrices: with A and
    B the C x HW matrices of one image, ||A A^T - B B^T||^2 = ||A^T A||^2 -
    2 ||A^T B||^2 + ||B^T B||^2, three HW x HW products (16 x 16 at layer4)
    instead of two 512 x 512 ones; in float64, so the cancellation costs
    nothing. Same loss and gradient as the direct form to 1e-6, about ten
    times faster here."""
    n, c, h, w = fs.shape
    a = F.normalize(fs.reshape(n, c, h * w), dim=2).double()
    b = F.normalize(ft.reshape(n, c, h * w), dim=2).double()
    at = a.transpose(1, 2)
    tot = (at @ a).square().sum() - 2 * (at @ b).square().sum() + \
        (b.transpose(1, 2) @ b).square().sum()
    return (tot / (n * c * c)).float()


def kd_loss(s_logits, t_logits, y, T, alpha):
    ce = F.cross_entropy(s_logits, y)
    kl = F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1),
                  reduction="batchmean")
    return (1 - alpha) * ce + alpha * T * T * kl


def train(name, model, data, args, log, kind="ce", tcache=None, extra=None):
    """kind: ce | kd | ickd. tcache: (teacher logits, teacher features) of the train set."""
    xtr, ytr, xval, yval = data
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    epochs = args.teacher_epochs if kind == "teacher" else args.student_epochs
    steps_per_epoch = len(xtr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch,
                                                pct_start=0.2)
    gen = torch.Generator().manual_seed(1000 + sum(map(ord, name)))
    beta = args.beta
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        if extra is not None:
            extra.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot, correct, seen, aux = 0.0, 0, 0, 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb, yb = norm(xtr[idx]), ytr[idx]
            if kind == "ickd":
                out, f = model(xb, with_feat=True)
            else:
                out = model(xb)
            if kind in ("ce", "teacher"):
                loss = F.cross_entropy(out, yb)
            else:
                loss = kd_loss(out, tcache[0][idx], yb, args.T, args.alpha)
                if kind == "ickd":
                    ic = gram_mse(extra(f), tcache[1][idx].float())
                    loss = loss + beta * ic
                    aux += (beta * ic).item() * len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(idx)
        va = evaluate(model, xval, yval)
        log("%s epoch %d/%d  loss %.4f%s  train acc %.4f  val acc %.4f  (%.0f s)" % (
            name, ep + 1, epochs, tot / seen,
            ("  (ickd term %.4f)" % (aux / seen)) if kind == "ickd" else "",
            correct / seen, va, time.time() - t0))
    model.eval()
    return time.time() - t0


# ---------------------------------------------------------------------------
# Export


def export(model, path, arch, meta):
    """F16 safetensors with exactly the tensors libkdcam loads (no
    num_batches_tracked). Returns the state dict as it was stored, for
    loading back into the model (so evaluation sees the shipped values)."""
    tensors = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        a = v.detach().cpu().numpy().astype(np.float32)
        h = a.astype(np.float16)
        if not np.all(np.isfinite(h)):
            raise SystemExit("train_demo: %s: %s does not fit in float16" % (path, k))
        tensors[k] = h
    md = {"format": "pt", "arch": arch, "classes": json.dumps(
        ["circle", "square", "triangle", "star", "cross", "ring", "heart", "hexagon",
         "crescent", "frame"]),
        "preprocess": "%dx%d RGB, /255, mean %s std %s, no resize" % (SIZE, SIZE, list(MEAN), list(STD)),
        # read by libkdcam (docs/api.md, "Model metadata")
        "kdcam.classes": ",".join(["circle", "square", "triangle", "star", "cross", "ring",
                                   "heart", "hexagon", "crescent", "frame"]),
        "kdcam.preprocess": "resize=%d crop=%dx%d mean=%s std=%s" % (
            SIZE, SIZE, SIZE, ",".join("%g" % v for v in MEAN), ",".join("%g" % v for v in STD))}
    md.update(meta)
    tmp = path + ".tmp"
    kdcgen.write_safetensors(tmp, tensors, md)
    os.replace(tmp, path)
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}


def load_rounded(model, sd):
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing


# ---------------------------------------------------------------------------
# Grad-CAM pointing game (PyTorch reference for the later libkdcam check)


def pointing_game(teacher, x, boxes, masks, n):
    """Grad-CAM at layer4 for the top-1 class, min-max normalised and
    bilinearly upsampled (half-pixel, as OpenCV) to the image size. Hit if the
    argmax pixel (first in row-major order) lies in the box. Also reports
    the hit rate with the mask and with the centre of the last-stage cell of the
    raw maximum."""
    teacher.eval()
    feats = {}
    h = teacher.layer4.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    hit_box = hit_mask = hit_cell = 0
    bs = 50
    for i in range(0, n, bs):
        xb = norm(x[i:i + bs]).requires_grad_(True)  # so layer4 output needs a gradient
        out = teacher(xb)
        a = feats["a"]
        cls = out.argmax(1)
        score = out.gather(1, cls[:, None]).sum()
        g, = torch.autograd.grad(score, a)
        w = g.mean((2, 3), keepdim=True)
        cam = F.relu((w * a).sum(1))  # N x h x w
        raw = cam.detach()
        lo = raw.flatten(1).min(1)[0][:, None, None]
        c = raw - lo
        c = c / (c.flatten(1).max(1)[0][:, None, None] + 1e-7)
        up = F.interpolate(c[:, None], size=(SIZE, SIZE), mode="bilinear",
                           align_corners=False)[:, 0]
        for j in range(len(xb)):
            k = int(up[j].flatten().argmax())
            py, px = divmod(k, SIZE)
            b = boxes[i + j]
            hit_box += b[0] <= px < b[2] and b[1] <= py < b[3]
            if masks is not None:
                hit_mask += bool(masks[i + j][py, px])
            hh, ww = raw.shape[1:]
            kk = int(raw[j].flatten().argmax())
            cy, cx = divmod(kk, ww)
            qx, qy = int((cx + 0.5) * SIZE / ww), int((cy + 0.5) * SIZE / hh)
            hit_cell += b[0] <= qx < b[2] and b[1] <= qy < b[3]
    h.remove()
    return hit_box / n, hit_mask / n, hit_cell / n


# ---------------------------------------------------------------------------


def keep_freed_memory():
    """glibc hands large blocks (PyTorch's activations) back to the kernel
    on free and maps them again on the next step: at 192 px a third of the
    training time went to page faults (90000 a second). Serving every block
    from the heap and never trimming it (M_MMAP_MAX = 0, M_TRIM_THRESHOLD =
    1 GiB) made a student step 1.9x and a teacher step 1.4x faster here, with
    the same arithmetic. No-op where libc is not glibc."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)        # M_MMAP_MAX
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def main():
    global SIZE
    keep_freed_memory()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kdcam", default="build/kdcam", help="kdcam binary (default build/kdcam)")
    ap.add_argument("--out", default="weights/demo", help="output directory")
    ap.add_argument("--work", default="/tmp/kdcam-demo-data", help="dataset directory")
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--pointing", type=int, default=500)
    ap.add_argument("--size", type=int, default=SIZE, help="image side in pixels (default %d)" % SIZE)
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--student-epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--T", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--teacher-width", type=int, default=16)
    ap.add_argument("--student-width", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true",
                    help="reuse models already trained in --work (checkpoints)")
    args = ap.parse_args()
    SIZE = args.size

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    np.random.seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    log = Log(os.path.join(args.out, "train_log.txt"))
    log("# tools/train_demo.py %s" % " ".join(sys.argv[1:]))
    log("# torch %s, %d threads, load average at start %s" % (
        torch.__version__, args.threads, " ".join("%.2f" % v for v in os.getloadavg())))

    t = time.time()
    sets = {}
    for name, seed, n, masks in (("train", 1, args.train, False), ("val", 2, args.val, False),
                                 ("test", 3, args.test, True)):
        d = os.path.join(args.work, name)
        lab = generate(args.kdcam, d, seed, n, masks)
        sets[name] = load_set(d, lab, masks)
    log("data: train %d (seed 1), val %d (seed 2), held-out %d (seed 3), %dx%d: %.0f s" % (
        args.train, args.val, args.test, SIZE, SIZE, time.time() - t))
    xtr, ytr, _, _ = sets["train"]
    xval, yval, _, _ = sets["val"]
    xte, yte, bte, mte = sets["test"]
    data = (xtr, ytr, xval, yval)

    results = {}
    times = {}

    def ckpt(name):
        return os.path.join(args.work, name + ".pt")

    # teacher
    torch.manual_seed(1)
    teacher = ResNetNarrow(args.teacher_width)
    if args.resume and os.path.exists(ckpt("teacher")):
        teacher.load_state_dict(torch.load(ckpt("teacher")))
        log("teacher: reused %s" % ckpt("teacher"))
        times["teacher"] = 0.0
    else:
        times["teacher"] = train("teacher", teacher, data, args, log, kind="teacher")
        torch.save(teacher.state_dict(), ckpt("teacher"))
    teacher.eval()
    sd = export(teacher, os.path.join(args.out, "teacher.safetensors"), "resnet50",
                {"model": "teacher: ResNet-50 topology, width %d" % args.teacher_width})
    load_rounded(teacher, sd)
    for p in teacher.parameters():
        p.requires_grad_(False)

    t = time.time()
    tcache = teacher_outputs(teacher, xtr)
    times["teacher outputs"] = time.time() - t
    log("teacher outputs on the train set: %.0f s" % times["teacher outputs"])

    students = (("student", "ce"), ("student_kd", "kd"), ("student_ickd", "ickd"))
    smodels = {}
    for name, kind in students:
        torch.manual_seed(2)  # the same initial student for all three
        s = MobileNetV1KD(args.student_width)
        extra = None
        if kind == "ickd":
            extra = nn.Sequential(nn.Conv2d(s.out_channels, teacher.out_channels, 1, bias=False),
                                  nn.BatchNorm2d(teacher.out_channels))
        if args.resume and os.path.exists(ckpt(name)):
            s.load_state_dict(torch.load(ckpt(name)))
            log("%s: reused %s" % (name, ckpt(name)))
            times[name] = 0.0
        else:
            times[name] = train(name, s, data, args, log, kind=kind, tcache=tcache, extra=extra)
            torch.save(s.state_dict(), ckpt(name))
        smodels[name] = s

    for name, s in smodels.items():
        desc = {"student": "vanilla (cross-entropy)", "student_kd": "logit KD (Hinton)",
                "student_ickd": "ICKD + logit KD"}[name]
        sd = export(s, os.path.join(args.out, name + ".safetensors"), "mobilenetv1",
                    {"model": "student: KD MobileNetV1, width %g, %s" % (args.student_width,
                                                                         desc)})
        load_rounded(s, sd)

    total = time.time() - t_start
    log("")
    log("held-out accuracy (%d images, seed 3; the shipped F16 weights):" % args.test)
    for name, m in [("teacher", teacher)] + list(smodels.items()):
        results[name] = evaluate(m, xte, yte)
        nparam = sum(p.numel() for p in m.parameters())
        log("  %-13s %.4f  (%d parameters, trained in %.0f s)" % (
            name, results[name], nparam, times.get(name, 0.0)))
    pg = pointing_game(teacher, xte, bte, mte, min(args.pointing, args.test))
    log("teacher Grad-CAM (layer4, top-1 class) pointing game on the first %d held-out images: "
        "argmax pixel in box %.4f, in mask %.4f; centre of the maximal last-stage cell in box %.4f" % (
            min(args.pointing, args.test), pg[0], pg[1], pg[2]))
    npg = min(args.pointing, args.test)
    ctr = SIZE // 2
    log("baseline for the same images: the image's centre pixel in box %.4f" % np.mean(
        [b[0] <= ctr < b[2] and b[1] <= ctr < b[3] for b in bte[:npg]]))
    log("wall clock, data generation to export: %.0f s (%.1f min); load average at end %s" % (
        total, total / 60, " ".join("%.2f" % v for v in os.getloadavg())))
    for name in sorted(os.listdir(args.out)):
        if name.endswith(".safetensors"):
            log("  %s %d bytes" % (name, os.path.getsize(os.path.join(args.out, name))))


if __name__ == "__main__":
    main()
