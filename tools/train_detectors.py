#!/usr/bin/python3
"""train_detectors.py - trains the bundled demo detectors of weights/demo/:
the seed's detection pair, a RetinaNet teacher with a ResNet-152-FPN body
and three ResNet-50-FPN RetinaNet students (vanilla, FGD, DPK), on the
detection shapes set (`kdcam shapes --detection`).

Needs PyTorch (Debian's python3-torch: run it with /usr/bin/python3), numpy
and PIL, plus a built `kdcam` (the dataset generator, and `kdcam detect` /
`kdcam eval` for the held-out scores at the end). Neither `make demo` nor
`make test` runs it: its outputs are committed. Every choice below is
repeated in weights/demo/README.md.

What it does, deterministically (fixed seeds, fixed data order):
  1. generates the data (`kdcam shapes --detection --size 256`):
       train    --seed 101, --train images
       held-out --seed 103, --test images (never seen in training; scored
                by `kdcam detect` + `kdcam eval` after export)
  2. teacher (--model teacher): torchvision RetinaNet layout
     (backbone.body.*, backbone.fpn.* with LastLevelP6P7 on P5,
     head.classification_head.conv.i.0, ...), ResNet-152 topology
     (3-8-36-3) at base width --width, FPN and head width --fpn,
     torchvision's anchors with base size --anchor (16: sizes 16..256 by
     level instead of the default 32..512, for the 7-26 px small objects;
     recorded in the files' metadata, kdcam.detect anchor=16).
  3. students, ResNet-50 topology (3-4-6-3) at the same widths (so FGD's
     and DPK's init_student, which copies the teacher's neck and head, is
     possible, as in their configs):
       vanilla  (--model vanilla) mmdetection layout (backbone.*,
                neck.lateral_convs/fpn_convs with the extra convs on C5 and
                no ReLU before P7, bbox_head.cls_convs.i.conv, retina_cls,
                retina_reg) and mmdetection's anchors (octave base scale
                --anchor / 8 = 2 instead of the default 4):
                the detector that exercises libkdcam's mmdetection path
       fgd      (--model fgd) torchvision layout, init_student from the
                teacher; FGD's FeatureLoss on every FPN level (yzd-v/FGD
                mmdet/distillation/losses/fgd.py; weights of its RetinaNet
                config fgd_retina_r101_fpn_2x_distill_retina_r50_fpn_2x:
                temp 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6)
       dpk      (--model dpk) torchvision layout, init_student from the
                teacher; DPK for detection (zongdaoming/dpk detection/,
                DPK_Distiller with index [1,2,3,4]): on P7, P6, P5 and P4 a
                masked autoencoder takes the student's features at the
                visible positions and the teacher's at the masked ones and
                its prediction goes into FGD's FeatureLoss in place of the
                student's features; P3 gets FGD's loss on the raw student.
                The mask ratio per level is DPK's dynamic one, 1 - CKA of
                student and teacher (clipped as dpk.py does).
  4. writes F16 safetensors with exactly the keys libkdcam loads and
     appends to weights/demo/train_detectors_log.txt.

Loss (all four): RetinaNet's sigmoid focal loss (alpha 0.25, gamma 2) over
the anchors that are not ignored, plus the L1 loss of the box deltas of the
positive anchors, both divided by the number of positive anchors in the
batch; anchors matched as torchvision's Matcher (IoU >= 0.5 positive, < 0.4
negative, in between ignored, each box's best anchors positive too).

usage: /usr/bin/python3 tools/train_detectors.py [--model all|teacher|vanilla|fgd|dpk]
                                                 [--kdcam build/kdcam] [--out weights/demo]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402
import kdtrain  # noqa: E402
from train_pairs import DPKStage, hsic_unbiased, gram0  # noqa: E402

SIZE = 256
CLASSES = ["circle", "square", "triangle", "star", "cross", "ring", "heart", "hexagon",
           "crescent", "frame"]
K = len(CLASSES)
A = 9
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
FILES = {"teacher": "det-teacher-r152fpn.safetensors",
         "vanilla": "det-r50fpn-vanilla.safetensors",
         "fgd": "det-r50fpn-fgd.safetensors",
         "dpk": "det-r50fpn-dpk.safetensors"}

# ---------------------------------------------------------------------------
# Models


class Body(nn.Module):
    """kdtrain.ResNetNarrow without avgpool / fc; returns C3, C4, C5."""

    def __init__(self, width, blocks):
        super().__init__()
        r = kdtrain.ResNetNarrow(width, blocks)
        for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, n, getattr(r, n))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


def _seq(conv):
    return nn.Sequential(conv)


class FPNTV(nn.Module):
    """torchvision FeaturePyramidNetwork (inner_blocks.i.0, layer_blocks.i.0)
    with LastLevelP6P7(F, F): P6 = conv(P5), P7 = conv(relu(P6))."""

    def __init__(self, cins, f):
        super().__init__()
        self.inner_blocks = nn.ModuleList([_seq(nn.Conv2d(c, f, 1)) for c in cins])
        self.layer_blocks = nn.ModuleList([_seq(nn.Conv2d(f, f, 3, 1, 1)) for _ in cins])
        self.extra_blocks = nn.Module()
        self.extra_blocks.p6 = nn.Conv2d(f, f, 3, 2, 1)
        self.extra_blocks.p7 = nn.Conv2d(f, f, 3, 2, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, cs):
        last = self.inner_blocks[-1](cs[-1])
        outs = [self.layer_blocks[-1](last)]
        for i in range(len(cs) - 2, -1, -1):
            lat = self.inner_blocks[i](cs[i])
            last = lat + F.interpolate(last, size=lat.shape[-2:], mode="nearest")
            outs.insert(0, self.layer_blocks[i](last))
        p6 = self.extra_blocks.p6(outs[-1])
        outs += [p6, self.extra_blocks.p7(F.relu(p6))]
        return outs


class ConvM(nn.Module):
    """mmcv ConvModule without norm: .conv (bias), then ReLU if act."""

    def __init__(self, cin, cout, k, stride=1, act=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2)
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.act else x


class FPNMM(nn.Module):
    """mmdetection FPN, start_level 1 (C3..C5), add_extra_convs 'on_input'
    (P6 = conv(C5)), relu_before_extra_convs False (P7 = conv(P6))."""

    def __init__(self, cins, f):
        super().__init__()
        self.lateral_convs = nn.ModuleList([ConvM(c, f, 1) for c in cins])
        self.fpn_convs = nn.ModuleList([ConvM(f, f, 3) for _ in cins] +
                                       [ConvM(cins[-1], f, 3, 2), ConvM(f, f, 3, 2)])
        for m in self.modules():  # mmdet FPN: xavier_init(distribution='uniform')
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, cs):
        lat = [c(x) for c, x in zip(self.lateral_convs, cs)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:],
                                                    mode="nearest")
        outs = [self.fpn_convs[i](lat[i]) for i in range(len(lat))]
        p6 = self.fpn_convs[3](cs[-1])
        outs += [p6, self.fpn_convs[4](p6)]
        return outs


def _head_init(convs, cls, reg):
    for m in list(convs) + [cls, reg]:
        c = m.conv if isinstance(m, ConvM) else (m[0] if isinstance(m, nn.Sequential) else m)
        nn.init.normal_(c.weight, std=0.01)
        nn.init.zeros_(c.bias)
    nn.init.constant_(cls.bias if isinstance(cls, nn.Conv2d) else cls.conv.bias,
                      -math.log((1 - 0.01) / 0.01))


class TVBranch(nn.Module):
    def __init__(self, f, nout, last):
        super().__init__()
        self.conv = nn.Sequential(*[_seq(nn.Conv2d(f, f, 3, 1, 1)) for _ in range(4)])
        setattr(self, last, nn.Conv2d(f, nout, 3, 1, 1))
        self.last = last

    def forward(self, x):
        for c in self.conv:
            x = F.relu(c(x))
        return getattr(self, self.last)(x)


class Detector(nn.Module):
    """RetinaNet in torchvision's (layout 'tv') or mmdetection's ('mm')
    module names. forward -> (features P3..P7, [cls per level], [reg per level])."""

    def __init__(self, layout, width, blocks, f):
        super().__init__()
        self.layout = layout
        cins = [width * 8, width * 16, width * 32]
        body = Body(width, blocks)
        if layout == "tv":
            self.backbone = nn.Module()
            self.backbone.body = body
            self.backbone.fpn = FPNTV(cins, f)
            self.head = nn.Module()
            self.head.classification_head = TVBranch(f, A * K, "cls_logits")
            self.head.regression_head = TVBranch(f, A * 4, "bbox_reg")
            for br in (self.head.classification_head, self.head.regression_head):
                for c in br.conv:
                    nn.init.normal_(c[0].weight, std=0.01)
                    nn.init.zeros_(c[0].bias)
            cl = self.head.classification_head.cls_logits
            nn.init.normal_(cl.weight, std=0.01)
            nn.init.constant_(cl.bias, -math.log((1 - 0.01) / 0.01))
            br = self.head.regression_head.bbox_reg
            nn.init.normal_(br.weight, std=0.01)
            nn.init.zeros_(br.bias)
        else:
            self.backbone = body
            self.neck = FPNMM(cins, f)
            self.bbox_head = nn.Module()
            h = self.bbox_head
            h.cls_convs = nn.ModuleList([ConvM(f, f, 3, act=True) for _ in range(4)])
            h.reg_convs = nn.ModuleList([ConvM(f, f, 3, act=True) for _ in range(4)])
            h.retina_cls = nn.Conv2d(f, A * K, 3, 1, 1)
            h.retina_reg = nn.Conv2d(f, A * 4, 3, 1, 1)
            _head_init(list(h.cls_convs) + list(h.reg_convs), h.retina_cls, h.retina_reg)

    def features(self, x):
        if self.layout == "tv":
            return self.backbone.fpn(self.backbone.body(x))
        return self.neck(self.backbone(x))

    def heads(self, feats):
        cls, reg = [], []
        for p in feats:
            if self.layout == "tv":
                cls.append(self.head.classification_head(p))
                reg.append(self.head.regression_head(p))
            else:
                h = self.bbox_head
                c, r = p, p
                for m in h.cls_convs:
                    c = m(c)
                for m in h.reg_convs:
                    r = m(r)
                cls.append(h.retina_cls(c))
                reg.append(h.retina_reg(r))
        return cls, reg

    def forward(self, x):
        feats = self.features(x)
        cls, reg = self.heads(feats)
        return feats, cls, reg


# ---------------------------------------------------------------------------
# Anchors, matching, loss


def base_anchors(layout, li, size=32):
    """The A anchors of level index li around the cell origin, ratio-major,
    as torchvision's AnchorGenerator (sizes (x, int(x 2^(1/3)), int(x
    2^(2/3))), x = size * 2^li, rounded) or mmdetection's (octave base scale
    size / 8, base size the stride); size 32 is both frameworks' default,
    libkdcam's kdc_detect_options.anchor_size."""
    out = []
    for ratio in (0.5, 1.0, 2.0):
        hr = math.sqrt(ratio)
        wr = 1.0 / hr
        for s in range(3):
            if layout == "tv":
                sc = float(int((size << li) * 2.0 ** (s / 3)))
                ws, hs = wr * sc, hr * sc
                out.append([round(-ws / 2), round(-hs / 2), round(ws / 2), round(hs / 2)])
            else:
                sc = size / 8.0 * 2.0 ** (s / 3)
                w = float(8 << li)
                ws, hs = w * wr * sc, w * hr * sc
                out.append([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs])
    return torch.tensor(out, dtype=torch.float32)


def all_anchors(layout, shapes, size=32):
    """Anchors of every level, in the heads' flattening order (y, x, a)."""
    res = []
    for li, (h, w) in enumerate(shapes):
        stride = 8 << li
        ys = torch.arange(h, dtype=torch.float32) * stride
        xs = torch.arange(w, dtype=torch.float32) * stride
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        sh = torch.stack([xx, yy, xx, yy], -1).reshape(-1, 1, 4)
        res.append((sh + base_anchors(layout, li, size)[None]).reshape(-1, 4))
    return torch.cat(res)


def flatten(outs, n):
    """[B x (A n) x H x W per level] -> B x (sum H W A) x n."""
    return torch.cat([o.view(o.shape[0], A, n, o.shape[2], o.shape[3]).permute(0, 3, 4, 1, 2)
                      .reshape(o.shape[0], -1, n) for o in outs], 1)


def box_iou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None] - inter)


def match(gt, anchors):
    """torchvision's Matcher(0.5, 0.4, allow_low_quality_matches=True):
    per anchor the index of its box, -1 negative, -2 ignored."""
    if len(gt) == 0:
        return torch.full((len(anchors),), -1, dtype=torch.long)
    iou = box_iou(gt, anchors)
    val, idx = iou.max(0)
    m = idx.clone()
    m[val < 0.5] = -2
    m[val < 0.4] = -1
    best = iou.max(1).values
    gi, ai = torch.nonzero(iou == best[:, None], as_tuple=True)
    m[ai] = idx[ai]
    return m


def encode(gt, an):
    aw, ah = an[:, 2] - an[:, 0], an[:, 3] - an[:, 1]
    ax, ay = an[:, 0] + 0.5 * aw, an[:, 1] + 0.5 * ah
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    return torch.stack([(gx - ax) / aw, (gy - ay) / ah, torch.log(gw / aw), torch.log(gh / ah)], 1)


def det_loss(cls, reg, targets, anchors):
    """Focal loss + L1 box loss, both / (positive anchors in the batch)."""
    lc = flatten(cls, K)
    lr = flatten(reg, 4)
    ctot = lc.new_zeros(())
    rtot = lc.new_zeros(())
    npos = 0
    for b, (boxes, labels) in enumerate(targets):
        m = match(boxes, anchors)
        valid = m != -2
        pos = m >= 0
        t = torch.zeros_like(lc[b])
        t[pos, labels[m[pos]]] = 1.0
        x = lc[b][valid]
        tt = t[valid]
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, tt, reduction="none")
        pt = p * tt + (1 - p) * (1 - tt)
        fl = ce * (1 - pt) ** 2 * (0.25 * tt + 0.75 * (1 - tt))
        ctot = ctot + fl.sum()
        if pos.any():
            rtot = rtot + F.l1_loss(lr[b][pos], encode(boxes[m[pos]], anchors[pos]),
                                    reduction="sum")
        npos += int(pos.sum())
    n = max(1, npos)
    return ctot / n, rtot / n


# ---------------------------------------------------------------------------
# FGD and DPK


class FGDLoss(nn.Module):
    """FGD's FeatureLoss (yzd-v/FGD fgd.py) for one FPN level, student and
    teacher of the same width. One deliberate difference: the foreground
    mask is indexed [y, x]; fgd.py indexes it [x-range, y-range] (the two
    agree only on boxes symmetric about the diagonal)."""

    def __init__(self, c, temp=0.5, alpha=1e-3, beta=5e-4, gamma=5e-4, lam=5e-6):
        super().__init__()
        self.temp, self.alpha, self.beta, self.gamma, self.lam = temp, alpha, beta, gamma, lam
        self.conv_mask_s = nn.Conv2d(c, 1, 1)
        self.conv_mask_t = nn.Conv2d(c, 1, 1)

        def add():
            s = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.LayerNorm([c // 2, 1, 1]),
                              nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 1))
            nn.init.zeros_(s[-1].weight)
            nn.init.zeros_(s[-1].bias)
            return s
        self.channel_add_conv_s = add()
        self.channel_add_conv_t = add()
        for m in (self.conv_mask_s, self.conv_mask_t):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)

    @staticmethod
    def attention(x, temp):
        n, c, h, w = x.shape
        v = x.abs()
        s = h * w * F.softmax((v.mean(1) / temp).view(n, -1), 1).view(n, h, w)
        ch = c * F.softmax(v.mean((2, 3)) / temp, 1)
        return s, ch

    def pool(self, x, conv):
        n, c, h, w = x.shape
        m = F.softmax(conv(x).view(n, 1, h * w), 2)
        return torch.matmul(x.view(n, 1, c, h * w), m.unsqueeze(-1)).view(n, c, 1, 1)

    def forward(self, s, t, gt_boxes, img):
        n, c, h, w = s.shape
        st, ct = self.attention(t, self.temp)
        ss, cs = self.attention(s, self.temp)
        fg = torch.zeros_like(st)
        bg = torch.ones_like(st)
        for i in range(n):
            bx = gt_boxes[i]
            if len(bx):
                x0 = torch.floor(bx[:, 0] / img * w).int()
                x1 = torch.ceil(bx[:, 2] / img * w).int()
                y0 = torch.floor(bx[:, 1] / img * h).int()
                y1 = torch.ceil(bx[:, 3] / img * h).int()
                area = 1.0 / (y1 + 1 - y0).float() / (x1 + 1 - x0).float()
                for j in range(len(bx)):
                    sl = fg[i, y0[j]:y1[j] + 1, x0[j]:x1[j] + 1]
                    fg[i, y0[j]:y1[j] + 1, x0[j]:x1[j] + 1] = torch.clamp(sl, min=float(area[j]))
            bg[i] = (fg[i] <= 0).float()
            if bg[i].sum() > 0:
                bg[i] = bg[i] / bg[i].sum()
        sq_st = torch.sqrt(st).unsqueeze(1)
        sq_ct = torch.sqrt(ct)[:, :, None, None]
        ft = t * sq_st * sq_ct
        fs = s * sq_st * sq_ct
        fgm = torch.sqrt(fg).unsqueeze(1)
        bgm = torch.sqrt(bg).unsqueeze(1)
        fg_loss = F.mse_loss(fs * fgm, ft * fgm, reduction="sum") / n
        bg_loss = F.mse_loss(fs * bgm, ft * bgm, reduction="sum") / n
        mask_loss = (cs - ct).abs().sum() / n + (ss - st).abs().sum() / n
        out_s = s + self.channel_add_conv_s(self.pool(s, self.conv_mask_s))
        out_t = t + self.channel_add_conv_t(self.pool(t, self.conv_mask_t))
        rela = F.mse_loss(out_s, out_t, reduction="sum") / n
        return (self.alpha * fg_loss + self.beta * bg_loss + self.gamma * mask_loss +
                self.lam * rela)


def dpk_level_ratio(fs, ft):
    """dpk.py's dynamic ratio: 1 - |HSIC(K,L)| / sqrt(HSIC(K,K) HSIC(L,L))
    (each + 1e-5) on the batch Gram matrices; NaN/inf -> 0.5, >= 1 -> 0.85,
    <= 0 -> 0.15."""
    k, l = gram0(ft), gram0(fs)
    a = abs(hsic_unbiased(k, l)) + 1e-5
    b = abs(hsic_unbiased(k, k)) + 1e-5
    c = abs(hsic_unbiased(l, l)) + 1e-5
    r = 1.0 - a / math.sqrt(b * c)
    if not math.isfinite(r):
        return 0.5
    return 0.85 if r >= 1.0 else 0.15 if r <= 0 else r


class DPKPred(DPKStage):
    """DPKStage returning its prediction of the teacher's features
    (B x C x h x w) instead of the reconstruction loss."""

    def forward(self, fs, ft, mask):
        b, c, h, w = ft.shape
        return self.predict(fs, ft, mask).transpose(1, 2).reshape(b, c, h, w)


# ---------------------------------------------------------------------------
# Data


def generate(kdcam, d, seed, n):
    inst = os.path.join(d, "instances.json")
    if os.path.exists(inst):
        with open(inst) as f:
            j = json.load(f)
        if len(j["images"]) == n and j["images"][0]["width"] == SIZE and \
                os.path.exists(os.path.join(d, ".seed%d" % seed)):
            return j
    subprocess.run([kdcam, "shapes", "--detection", "-n", str(n), "--seed", str(seed),
                    "--size", str(SIZE), "-o", d], check=True, stdout=subprocess.DEVNULL)
    open(os.path.join(d, ".seed%d" % seed), "w").close()
    with open(inst) as f:
        return json.load(f)


def load_set(d, inst):
    ims = inst["images"]
    x = np.empty((len(ims), SIZE, SIZE, 3), dtype=np.uint8)
    for i, e in enumerate(ims):
        x[i] = np.asarray(Image.open(os.path.join(d, e["file_name"])).convert("RGB"))
    per = [[] for _ in ims]
    idx = {e["id"]: i for i, e in enumerate(ims)}
    for a in inst["annotations"]:
        bx, by, bw, bh = a["bbox"]
        per[idx[a["image_id"]]].append((bx, by, bx + bw, by + bh, a["category_id"] - 1))
    targets = []
    for p in per:
        t = torch.tensor(p, dtype=torch.float32).reshape(-1, 5)
        targets.append((t[:, :4].contiguous(), t[:, 4].long()))
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), targets


def batch(x, targets, idx, flip):
    xb = kdtrain.norm(x[idx])
    tb = []
    for j, i in enumerate(idx.tolist()):
        b, l = targets[i]
        if flip[j]:
            xb[j] = xb[j].flip(-1)
            b = torch.stack([SIZE - b[:, 2], b[:, 1], SIZE - b[:, 0], b[:, 3]], 1)
        tb.append((b, l))
    return xb, tb


# ---------------------------------------------------------------------------
# Training


def make(kind, args):
    if kind == "teacher":
        return Detector("tv", args.width, (3, 8, 36, 3), args.fpn)
    return Detector("mm" if kind == "vanilla" else "tv", args.width, (3, 4, 6, 3), args.fpn)


def train(kind, model, x, targets, args, log, teacher=None):
    extra = nn.ModuleList()
    if kind in ("fgd", "dpk"):
        extra.append(nn.ModuleList([FGDLoss(args.fpn) for _ in range(5)]))
    if kind == "dpk":
        ntoks = [(SIZE // (8 << li)) ** 2 for li in range(5)]
        # levels P4..P7 (DPK's index [1, 2, 3, 4]); patch size 1
        extra.append(nn.ModuleList([DPKPred(args.fpn, args.fpn, ntoks[li], args.dpk_dim,
                                            args.dpk_dim, 1, 1, 4) for li in range(1, 5)]))
    params = list(model.parameters()) + list(extra.parameters())
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps = args.steps if kind == "teacher" else args.student_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps,
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(1000 + sum(map(ord, kind)))
    mgen = torch.Generator().manual_seed(2000 + sum(map(ord, kind)))
    shapes = [(SIZE // (8 << li), SIZE // (8 << li)) for li in range(5)]
    anchors = all_anchors(model.layout, shapes, args.anchor)
    model.train()
    extra.train()
    t0 = time.time()
    perm = torch.randperm(len(x), generator=gen)
    pos = 0
    acc = np.zeros(4)
    cnt = 0
    ratios = np.zeros(4)
    for step in range(steps):
        if pos + args.batch > len(x):
            perm = torch.randperm(len(x), generator=gen)
            pos = 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        flip = torch.rand(len(idx), generator=gen) < 0.5
        xb, tb = batch(x, targets, idx, flip)
        feats, cls, reg = model(xb)
        lc, lr = det_loss(cls, reg, tb, anchors)
        loss = lc + lr
        dl = lc.new_zeros(())
        if teacher is not None:
            with torch.no_grad():
                tf = teacher.features(xb)
            gtb = [b for b, _ in tb]
            for li in range(5):
                s = feats[li]
                if kind == "dpk" and li >= 1:
                    ntok = s.shape[2] * s.shape[3]
                    r = dpk_level_ratio(s, tf[li])
                    ratios[li - 1] += r
                    nm = min(max(int(ntok * r), 1), ntok - 1)
                    order = torch.rand(len(idx), ntok, generator=mgen).argsort(1)
                    mask = torch.zeros(len(idx), ntok, dtype=torch.bool)
                    mask.scatter_(1, order[:, :nm], True)
                    s = extra[1][li - 1](s, tf[li], mask)
                dl = dl + extra[0][li](s, tf[li], gtb, SIZE)
            loss = loss + dl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 35.0)
        opt.step()
        sched.step()
        acc += [lc.item(), lr.item(), float(dl), loss.item()]
        cnt += 1
        if (step + 1) % args.log_every == 0 or step + 1 == steps:
            a = acc / cnt
            txt = ""
            if kind == "dpk":
                txt = "  mask ratio P4..P7 %s" % " ".join("%.2f" % v for v in ratios / cnt)
                ratios[:] = 0
            log("%s step %d/%d  focal %.4f  box %.4f  distill %.4f  total %.4f%s  (%.0f s)" % (
                kind, step + 1, steps, a[0], a[1], a[2], a[3], txt, time.time() - t0))
            acc[:] = 0
            cnt = 0
    model.eval()
    return time.time() - t0


def export(model, path, kind, meta, anchor):
    tensors = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            # torchvision layout: kept (int64), so that libkdcam reads the
            # body as BatchNorm2d (eps 1e-5, as trained), not as the
            # FrozenBatchNorm2d of torchvision's COCO weights (eps 0)
            if model.layout == "tv":
                tensors[k] = v.detach().cpu().numpy().astype(np.int64)
            continue
        h = v.detach().cpu().numpy().astype(np.float32).astype(np.float16)
        if not np.all(np.isfinite(h)):
            raise SystemExit("train_detectors: %s: %s does not fit in float16" % (path, k))
        tensors[k] = h
    md = {"format": "pt", "kdcam.classes": ",".join(CLASSES),
          "kdcam.detect": "short=%d max=%d anchor=%d" % (SIZE, SIZE, anchor)}
    md.update(meta)
    tmp = path + ".tmp"
    kdcgen.write_safetensors(tmp, tensors, md)
    os.replace(tmp, path)
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()
            if not k.endswith("num_batches_tracked")}


def read_safetensors(path):
    """{name: float32 tensor} of the floating-point tensors of a weights file
    (num_batches_tracked, int64, left out)."""
    arrs, _ = kdcgen.read_safetensors(path)
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrs.items()
            if v.dtype.kind == "f"}


def heldout_scores(args, path, d, log, name):
    """`kdcam detect` on the held-out set, then `kdcam eval`; returns its text."""
    out = os.path.join(args.work, "det-" + name)
    subprocess.run([args.kdcam, "detect", "-w", path, "--det-size", "%d,%d" % (SIZE, SIZE),
                    "--threads", str(args.threads), "--coco", os.path.join(d, "instances.json"),
                    "-o", out] + [os.path.join(d, "%06d.png" % i) for i in range(args.test)],
                   check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run([args.kdcam, "eval", os.path.join(d, "instances.json"),
                        os.path.join(out, "results.json")], check=True,
                       capture_output=True, text=True)
    for line in r.stdout.splitlines()[1:]:
        log("%s held-out: %s" % (name, line.strip()))
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="all", choices=("all", "teacher", "vanilla", "fgd", "dpk"))
    ap.add_argument("--kdcam", default="build/kdcam")
    ap.add_argument("--out", default="weights/demo")
    ap.add_argument("--work", default="/tmp/kdcam-det-data")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--anchor", type=int, default=16,
                    help="P3 anchor base size (both frameworks' default is 32; the shapes' "
                         "small objects are 7-26 px)")
    ap.add_argument("--fpn", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10000, help="teacher steps")
    ap.add_argument("--student-steps", type=int, default=1200)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--dpk-dim", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kdtrain.keep_freed_memory()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    # one log for all runs, appended to, so that each model can be retrained alone
    log = kdtrain.Log(os.path.join(args.out, "train_detectors_log.txt"), "a")
    log("train_detectors.py --model %s  %s" % (args.model, " ".join(
        "%s=%s" % kv for kv in sorted(vars(args).items()))))
    log("torch %s, %d threads" % (torch.__version__, torch.get_num_threads()))
    t_start = time.time()
    dtr = os.path.join(args.work, "train")
    dte = os.path.join(args.work, "heldout")
    inst = generate(args.kdcam, dtr, 101, args.train)
    generate(args.kdcam, dte, 103, args.test)
    x, targets = load_set(dtr, inst)
    log("data: %d training images (%d objects), %d held-out" % (
        len(x), sum(len(t[1]) for t in targets), args.test))
    kinds = ["teacher", "vanilla", "fgd", "dpk"] if args.model == "all" else [args.model]
    teacher = None
    tpath = os.path.join(args.out, FILES["teacher"])
    for kind in kinds:
        torch.manual_seed(sum(map(ord, kind)))
        model = make(kind, args)
        if kind in ("fgd", "dpk"):
            if teacher is None:
                teacher = make("teacher", args)
                sd = read_safetensors(tpath)
                teacher.load_state_dict(sd, strict=False)
                teacher.eval()
            # init_student: the teacher's neck and head
            own = model.state_dict()
            for k, v in teacher.state_dict().items():
                if not k.startswith("backbone.body.") and k in own:
                    own[k] = v.clone()
            model.load_state_dict(own)
            for p in teacher.parameters():
                p.requires_grad_(False)
        secs = train(kind, model, x, targets, args, log, teacher if kind in ("fgd", "dpk") else None)
        arch = "RetinaNet, ResNet-%s-FPN body at base width %d, FPN/head width %d, %s layout" % (
            "152" if kind == "teacher" else "50", args.width, args.fpn,
            "mmdetection" if model.layout == "mm" else "torchvision")
        path = os.path.join(args.out, FILES[kind])
        sd = export(model, path, kind, {"model": "%s: %s" % (kind, arch),
                                        "train_seconds": "%.0f" % secs}, args.anchor)
        log("%s: trained in %.0f s, wrote %s (%d bytes)" % (kind, secs, path, os.path.getsize(path)))
        heldout_scores(args, path, dte, log, kind)
        if kind == "teacher":
            teacher = model
            teacher.load_state_dict(sd, strict=False)
            teacher.eval()
    log("all done in %.0f s" % (time.time() - t_start))


if __name__ == "__main__":
    main()
