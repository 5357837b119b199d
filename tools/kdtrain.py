"""kdtrain.py - the pieces tools/train_pairs.py trains the demo models with.

Models with torchvision / KD-literature key names at reduced widths (the
keys libkdcam loads), the `kdcam shapes` data loader, ImageNet
normalisation, evaluation, the ICKD and logit-KD losses, the F16
safetensors export and a PyTorch Grad-CAM pointing game (the independent
reference for `kdcam pointing`). Needs PyTorch (Debian's python3-torch:
run with /usr/bin/python3), numpy and PIL. Neither `make demo` nor `make
test` uses it.
"""

import json
import os
import subprocess
import sys

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
STYLE = "hard"  # kdcam shapes --style
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
        """with_feat: also the outputs of layer3 and layer4 (the stages DPK
        distils; ICKD uses layer4)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f3 = self.layer3(self.layer2(self.layer1(x)))
        f4 = self.layer4(f3)
        out = self.fc(torch.flatten(self.avgpool(f4), 1))
        return (out, [f3, f4]) if with_feat else out

    def stage_channels(self):
        return [self.out_channels // 2, self.out_channels]


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
        """with_feat: also the outputs of model.11 (stride 16, as layer3)
        and model.13 (stride 32, as layer4)."""
        f11 = self.model[:12](x)
        f13 = self.model[12:14](f11)
        out = self.fc(torch.flatten(self.model[14](f13), 1))
        return (out, [f11, f13]) if with_feat else out

    def stage_channels(self):
        return [self.model[11][3].out_channels, self.out_channels]


# ---------------------------------------------------------------------------
# Data


def generate(kdcam, d, seed, n, masks=False, style=None):
    """Runs `kdcam shapes` in `style` (default STYLE) unless d already
    holds that exact set."""
    style = style or STYLE
    lab = os.path.join(d, "labels.json")
    if os.path.exists(lab):
        with open(lab) as f:
            j = json.load(f)
        if j["seed"] == seed and len(j["images"]) == n and j["size"] == SIZE and \
                j.get("style") == style and (not masks or "mask" in j["images"][0]):
            return j
    cmd = [kdcam, "shapes", "-n", str(n), "--seed", str(seed), "-o", d, "--size", str(SIZE),
           "--style", style]
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
    """Prints each message and writes it to path (mode "w", or "a" to
    append)."""

    def __init__(self, path, mode="w"):
        self.f = open(path, mode)

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
    """Teacher logits (float32) and its layer3 and layer4 features (float16)
    for the whole set: no augmentation, so they are fixed, and every student
    reuses them instead of running the teacher at every step. Batches of
    32, as in training: batches of 250 ran 14 times slower here."""
    teacher.eval()
    logits, f3s, f4s = [], [], []
    for i in range(0, len(x), bs):
        lo, (f3, f4) = teacher(norm(x[i:i + bs]), with_feat=True)
        logits.append(lo)
        f3s.append(f3.half())
        f4s.append(f4.half())
    return torch.cat(logits), torch.cat(f3s), torch.cat(f4s)


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
            raise SystemExit("kdtrain: %s: %s does not fit in float16" % (path, k))
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


def pointing_game(teacher, x, boxes, masks, n, layer="layer4"):
    """Grad-CAM at `layer` for the top-1 class, min-max normalised and
    bilinearly upsampled (half-pixel, as OpenCV) to the image size. Hit if the
    argmax pixel (first in row-major order) lies in the box. Also reports
    the hit rate with the mask and with the centre of the last-stage cell of the
    raw maximum."""
    teacher.eval()
    feats = {}
    h = teacher.get_submodule(layer).register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
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
