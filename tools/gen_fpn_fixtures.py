#!/usr/bin/env python3
"""gen_fpn_fixtures.py - PyTorch reference fixtures of the FPN detection-backbone tests.

Run from the repository root with Debian's PyTorch (torch 1.13, torchvision 0.14):

    /usr/bin/python3 tools/gen_fpn_fixtures.py [case ...]

Writes tests/fixtures/fpn/<case>.safetensors (read by tests/test_fpn.c) and
tests/fixtures/fpn/preprocess_coffee.safetensors.

Networks (weights from the seeded generator, tools/kdcgen.py FPN_SCHEMES,
reproduced bit for bit by tests/util/weightgen.c; FPN width kdcgen.FPN_CH = 64
instead of torchvision's 256 to keep the C test short - libkdcam reads the
widths from the shapes):

  torchvision: BackboneWithFPN(resnet50(norm_layer=...), return_layers,
    in_channels_list, out_channels=64, extra_blocks) - exactly what
    resnet_fpn_backbone(backbone_name="resnet50", weights=None,
    trainable_layers=5, returned_layers=..., extra_blocks=...,
    norm_layer=FrozenBatchNorm2d) builds, except that resnet_fpn_backbone fixes
    out_channels at 256. FrozenBatchNorm2d with eps set to 0.0 (as torchvision
    does for its COCO weights), so libkdcam must pick eps 0 by default.
    Checkpoint keys = "backbone." + state_dict keys (+ head tensors).
      resnet50_fpn_tv          returned_layers [1,2,3,4], LastLevelMaxPool
      resnet50_fpn_tv_old      the same, keys spelt inner_blocks.i.weight (no
                               ".0"), and a BatchNorm2d body (eps 1e-5,
                               num_batches_tracked in the file)
      resnet50_fpn_tv_p6p7     returned_layers [2,3,4], LastLevelP6P7(64, 64)
                               (P6 from P5: RetinaNet v1)
      resnet50_fpn_tv_p6p7_v2  returned_layers [2,3,4], LastLevelP6P7(2048, 64)
                               (P6 from C5: RetinaNet v2)
  mmdetection (not installed here; re-implemented below, MMRetinaNeck):
      resnet50_fpn_mm_retina   ResNet50 (style pytorch, BatchNorm eps 1e-5,
                               eval) + FPN(in_channels [256..2048],
                               out_channels 64, start_level 1,
                               add_extra_convs="on_input", num_outs 5,
                               relu_before_extra_convs False)

RetinaNet heads (kdcgen.RETINA_A = 9 anchors, RETINA_K = 3 classes, 4 convs per
branch, width 64), run on every level P3..P7 with shared weights:
  resnet50_retina_tv       the resnet50_fpn_tv_p6p7 backbone + torchvision's
                           RetinaNetHead(in_channels=64, num_anchors=9,
                           num_classes=3) (0.14: conv.i = Conv2dNormActivation,
                           keys conv.i.0.*), FPN levels '0','1','2','p6','p7'
  resnet50_retina_tv_old   the same head with the older keys conv.(2i).* (conv
                           = Sequential(Conv2d, ReLU, ...)), mapped here to
                           conv.i.0.* (and checked against torchvision's own
                           _v1_to_v2_weights conversion)
  resnet50_retina_mm       the resnet50_fpn_mm_retina body and neck +
                           mmdetection's RetinaHead (re-implemented below,
                           MMRetinaHead: cls_convs.i = ConvModule conv + ReLU,
                           retina_cls; reg_convs.i, retina_reg)
  RetinaWrap runs the head's submodules level by level and records every conv
  and ReLU output; its results are checked (exactly) against the head's own
  forward (torchvision: (N, sum H*W*A, K) with channel a * K + k of
  cls_logits@pL; mmdetection: per-level NCHW).

Input: the content, kdcgen.fill("input", n*3*ch*cw, input_seed, 0, 2) shaped
(n, 3, ch, cw), is placed top-left in a zero tensor (n, 3, h, w) (zero padding
in normalised space, as a detector pads): content 49x67 in 64x96. One case
(N = 2) has no padding and the odd size 49x67, so the nearest upsampling of
the top-down path has non-integer ratios (C5 2x3 -> C4 4x5 -> C3 7x9 -> C2
13x17) and the box rule fractional strides. Sizes are small because every
ReLU mask must be decided well above float32 rounding (MIN_RELU_MARGIN): the
chance that some element of the ~1e6 ReLU inputs lies that close to zero
grows with the input area.

Reference: float64 (model.double(), input widened exactly); gradients by
autograd (retain_grad on the recorded outputs, input a leaf). The same is run
in float32 and the worst relative L2 error of float32 vs float64 goes to the
metadata (noise floor of a float32 implementation).

Stored (container and sampling as tools/gen_fixtures.py: NAME/shape I64 [4],
NAME/val F32 = whole tensor if <= 4096 elements, else 512 samples at
kdcgen.sample_indices; NAME/sum, NAME/sumsq F64 of the whole tensor):
  layer1 .. layer4              body stage outputs
  fpn.pN                        every level (libkdcam alias; N = stage + 1)
  tv: fpn.inner_blocks.i, fpn.inner_blocks.i.merged (i < top: lateral +
      nearest-upsampled merged level above, torchvision's last_inner)
  mm: neck.lateral_convs.i, neck.lateral_convs.i.merged
  grad/<target>/<layer>         d E / d (output of layer), layer in input,
                                layer1..layer4 (RetinaNet cases: also
                                fpn.p3..fpn.p7 and every head output at the
                                target's level, both branches; a tensor E
                                does not depend on has a zero gradient)
  RetinaNet cases, every level L in p3..p7 (libkdcam names, "@pL"):
    tv:     head.classification_head.conv.i.0@pL (conv), .conv.i@pL (the
            Conv2dNormActivation output, after ReLU), .cls_logits@pL;
            head.regression_head.conv.i.0@pL, .conv.i@pL, .bbox_reg@pL
    tv_old: head.classification_head.conv.(2i)@pL (conv), .conv.(2i+1)@pL
            (ReLU), .cls_logits@pL; the same under head.regression_head
    mm:     bbox_head.cls_convs.i.conv@pL (conv), bbox_head.cls_convs.i@pL
            (after ReLU), bbox_head.retina_cls@pL; reg_convs.i.conv,
            reg_convs.i, retina_reg
    head outputs (names with "@p") are sampled with HEAD_SAMPLE_K = 64
    samples (whole if <= 64 elements), to keep the files near 200 KB
  energy/<target>               E (F64 scalar)
  weights:NAME/val              a few generated tensors (bit-checked in C)
Targets (metadata target.<t>.*: layer, kind sumsq|mean|onehot, box "x0,y0,x1,y1"
in input pixels or "" and channel (-1 = all) for sumsq / mean, cell "c,y,x"
for onehot), summed over the batch:
  sumsq  E = sum of squares of the level
  mean   E = mean of the level over the cells whose centre ((x + 0.5) * in_w /
         w, (y + 0.5) * in_h / h) lies in [x0, x1) x [y0, y1) (and over one
         channel, or all): kdc_energy_seed's rule (lib/models/detect.c), re-implemented
         in box_mask() below.
  onehot E = the layer's output at channel c, row y, column x (RetinaNet
         cases: cls_p4 = the classification output at P4, cell 5,1,2;
         reg_p6 = the regression output at P6, cell 7,0,1); metadata
         target.<t>.value_over_rms = |E| / rms(layer): the weights seeds are
         picked so that it is >= 0.5 (no cancellation in the one value)
The ReLU margin covers every nn.ReLU call (the head's at every level) and,
for the RetinaNet cases, torchvision LastLevelP6P7's functional F.relu(P6).

preprocess_coffee: torchvision GeneralizedRCNNTransform(min_size=800,
max_size=1333, ImageNet mean/std) on examples/images/coffee.png (600x400 ->
1200x800, padded to 1216x800), padded tensor as "det_input" with 8192 samples, and whole the
last two content rows / columns with the padding after them (det_input_rows,
det_input_cols);
metadata: content size, scale, and the float32-vs-float64 max abs error of
torchvision's own computation.

Deterministic: fixed seeds, torch single-threaded.
"""

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "fpn")
SAMPLE_K = 512
FULL_MAX = 4096
# RetinaNet head outputs (18 per level, 5 levels): fewer samples, to keep the
# files small; the whole tensor is still checked through sum / sumsq
HEAD_SAMPLE_K = 64
HEAD_FULL_MAX = 64
INPUT_C, INPUT_A = 0.0, 2.0
GRAD_LAYERS = ["input", "layer1", "layer2", "layer3", "layer4"]

BOX = (10.5, 5.0, 45.0, 40.0)  # inside the 49x67 content (x0, y0, x1, y1)
# ReLU margin: input seeds are bumped until every ReLU input x of the float64
# forward pass has |x| >= MIN_RELU_MARGIN * rms(x of that ReLU call), so that
# no ReLU mask is decided by float32 rounding (float32 pre-activations differ
# from float64 by up to ~5e-7 * rms here). One flipped mask changes the gradients
# below it by ~1e-3 (relative L2), which a 1e-4 tolerance cannot absorb.
# Far from the content, the padding region's values do not depend on the input
# seed: a weights seed whose padding gives a ReLU input near zero cannot pass
# (5104 could not: layer2.0 at 5e-7 * rms), hence tv_p6p7_v2's seed 5114.
MIN_RELU_MARGIN = 1.5e-6
MAX_SEED_TRIES = 80

# name, scheme, weights seed, n, h, w, content h, content w, input seed, targets
# target: (name, layer, kind, box or None, channel)
T_SUMSQ = ("sumsq_p3", "fpn.p3", "sumsq", None, -1)
T_BOX = ("boxmean_p4", "fpn.p4", "mean", BOX, -1)
T_BOXC = ("boxmean_p4_c7", "fpn.p4", "mean", BOX, 7)
# RetinaNet heads: onehot targets (channel, row, column) of a head output
T_CLS_TV = ("cls_p4", "head.classification_head.cls_logits@p4", "onehot", None, (5, 1, 2))
T_REG_TV = ("reg_p6", "head.regression_head.bbox_reg@p6", "onehot", None, (7, 0, 1))
T_CLS_MM = ("cls_p4", "bbox_head.retina_cls@p4", "onehot", None, (5, 1, 2))
T_REG_MM = ("reg_p6", "bbox_head.retina_reg@p6", "onehot", None, (7, 0, 1))
CASES = [
    ("tv_n1_64x96", "resnet50_fpn_tv", 5101, 1, 64, 96, 49, 67, 8101, [T_SUMSQ, T_BOX]),
    ("tv_n2_49x67", "resnet50_fpn_tv", 5101, 2, 49, 67, 49, 67, 8201, [T_SUMSQ, T_BOX]),
    ("tv_old_n1_64x96", "resnet50_fpn_tv_old", 5102, 1, 64, 96, 49, 67, 8301, [T_SUMSQ]),
    ("tv_p6p7_n1_64x96", "resnet50_fpn_tv_p6p7", 5103, 1, 64, 96, 49, 67, 8401, [T_SUMSQ]),
    ("tv_p6p7_v2_n1_64x96", "resnet50_fpn_tv_p6p7_v2", 5114, 1, 64, 96, 49, 67, 8501,
     [T_SUMSQ]),
    ("mm_retina_n1_64x96", "resnet50_fpn_mm_retina", 5105, 1, 64, 96, 49, 67, 8601,
     [T_SUMSQ, T_BOXC]),
    # RetinaNet weights seeds: among 5106..5150, ones whose padding passes the
    # ReLU margin and whose onehot target values are not small: |E| >= 0.5 *
    # rms of the target layer for both targets (E is one logit; a value near
    # zero is cancellation, and its float32 relative error grew to 3e-5 with
    # 5107 for tv_old)
    ("retina_tv_n1_64x96", "resnet50_retina_tv", 5142, 1, 64, 96, 49, 67, 8701,
     [T_CLS_TV, T_REG_TV]),
    ("retina_tv_old_n1_64x96", "resnet50_retina_tv_old", 5124, 1, 64, 96, 49, 67, 8801,
     [T_CLS_TV, T_REG_TV]),
    ("retina_mm_n1_64x96", "resnet50_retina_mm", 5150, 1, 64, 96, 49, 67, 8901,
     [T_CLS_MM, T_REG_MM]),
]

RETINA_LEVELS = (3, 4, 5, 6, 7)
# head style of the RetinaNet schemes (kdcgen.FPN_SCHEMES heads field)
RETINA_STYLE = {"retina_tv": "tv", "retina_tv_old": "tv_old", "retina_mm": "mm"}


def retina_style(scheme):
    return RETINA_STYLE.get(kdcgen.FPN_SCHEMES[scheme][6])


# ---------------------------------------------------------------------------
# Models

class MMConv(nn.Module):
    """mmcv ConvModule without norm / activation: keys <name>.conv.*"""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2)

    def forward(self, x):
        return self.conv(x)


class MMRetinaNeck(nn.Module):
    """mmdet.models.necks.FPN (v2.x forward) with start_level=1,
    add_extra_convs='on_input', num_outs=5, relu_before_extra_convs=False,
    upsample_cfg=dict(mode='nearest')."""

    def __init__(self, in_channels, out_channels, num_outs=5):
        super().__init__()
        self.lateral_convs = nn.ModuleList(MMConv(c, out_channels, 1) for c in in_channels)
        convs = [MMConv(out_channels, out_channels, 3) for _ in in_channels]
        for i in range(num_outs - len(in_channels)):
            cin = in_channels[-1] if i == 0 else out_channels  # on_input: C5 first
            convs.append(MMConv(cin, out_channels, 3, stride=2))
        self.fpn_convs = nn.ModuleList(convs)
        self.num_outs = num_outs
        self.rec = {}

    def forward(self, inputs):
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        for i, t in enumerate(laterals):
            self.rec["neck.lateral_convs.%d" % i] = t
        used = len(laterals)
        for i in range(used - 1, 0, -1):
            prev_shape = laterals[i - 1].shape[2:]
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=prev_shape,
                                                              mode="nearest")
            self.rec["neck.lateral_convs.%d.merged" % (i - 1)] = laterals[i - 1]
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        outs.append(self.fpn_convs[used](inputs[-1]))  # on_input: extra source C5
        for i in range(used + 1, self.num_outs):
            outs.append(self.fpn_convs[i](outs[-1]))  # no ReLU in between
        return outs


class MMRetinaBackbone(nn.Module):
    """backbone (ResNet50, out_indices (0,1,2,3)) + neck, as mmdet's RetinaNet."""

    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.resnet50(weights=None)
        self.backbone.fc = nn.Identity()
        self.backbone.avgpool = nn.Identity()
        self.neck = MMRetinaNeck([512, 1024, 2048], kdcgen.FPN_CH)

    def forward(self, x):
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        c2 = b.layer1(x)
        c3 = b.layer2(c2)
        c4 = b.layer3(c3)
        c5 = b.layer4(c4)
        outs = self.neck([c3, c4, c5])
        return {"fpn.p%d" % (3 + i): o for i, o in enumerate(outs)}


class TVWrap(nn.Module):
    """BackboneWithFPN with libkdcam level names and the merged levels."""

    def __init__(self, bwf, first_stage):
        super().__init__()
        self.bwf = bwf
        self.first = first_stage
        self.rec = {}

    def forward(self, x):
        out = self.bwf(x)
        res = {}
        for k, v in out.items():
            if k.isdigit():
                res["fpn.p%d" % (int(k) + self.first + 1)] = v
            elif k == "pool":
                res["fpn.p%d" % (len(out) + self.first)] = v
            else:
                res["fpn.%s" % k] = v  # p6, p7
        return res


class MMConvReLU(nn.Module):
    """mmcv ConvModule(c, c, 3, padding=1) with ReLU, no norm: keys
    <name>.conv.*; the ReLU is <name>.activate."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.activate = nn.ReLU()

    def forward(self, x):
        return self.activate(self.conv(x))


class MMRetinaHead(nn.Module):
    """mmdet.models.dense_heads.RetinaHead (2.x, norm_cfg None, stacked_convs
    4): per level, cls = x, cls = relu(cls_convs.i.conv(cls)), cls_score =
    retina_cls(cls); the same with reg_convs / retina_reg; the weights are
    shared by the levels. Outputs (N, A*K, H, W) and (N, A*4, H, W) per level
    (channel a * K + k and a * 4 + j)."""

    def __init__(self, c, num_anchors, num_classes, stacked_convs=4):
        super().__init__()
        self.cls_convs = nn.ModuleList(MMConvReLU(c) for _ in range(stacked_convs))
        self.reg_convs = nn.ModuleList(MMConvReLU(c) for _ in range(stacked_convs))
        self.retina_cls = nn.Conv2d(c, num_anchors * num_classes, 3, padding=1)
        self.retina_reg = nn.Conv2d(c, num_anchors * 4, 3, padding=1)

    def forward(self, feats):
        cls_scores, bbox_preds = [], []
        for x in feats:
            c, r = x, x
            for m in self.cls_convs:
                c = m(c)
            for m in self.reg_convs:
                r = m(r)
            cls_scores.append(self.retina_cls(c))
            bbox_preds.append(self.retina_reg(r))
        return cls_scores, bbox_preds


def head_layer_names(style, L):
    """libkdcam's names of every recorded head output on level L, in order:
    per branch, each conv (pre-ReLU) and its ReLU / block output, then the
    branch's output conv."""
    out = []
    if style in ("tv", "tv_old"):
        for br, oname in (("classification_head", "cls_logits"), ("regression_head", "bbox_reg")):
            p = "head.%s" % br
            for i in range(kdcgen.RETINA_CONVS):
                if style == "tv":
                    out += ["%s.conv.%d.0@p%d" % (p, i, L), "%s.conv.%d@p%d" % (p, i, L)]
                else:
                    out += ["%s.conv.%d@p%d" % (p, 2 * i, L), "%s.conv.%d@p%d" % (p, 2 * i + 1, L)]
            out.append("%s.%s@p%d" % (p, oname, L))
    else:
        for br, oname in (("cls_convs", "retina_cls"), ("reg_convs", "retina_reg")):
            for i in range(kdcgen.RETINA_CONVS):
                out += ["bbox_head.%s.%d.conv@p%d" % (br, i, L), "bbox_head.%s.%d@p%d" % (br, i, L)]
            out.append("bbox_head.%s@p%d" % (oname, L))
    return out


class RetinaWrap(nn.Module):
    """An FPN backbone (TVWrap / MMRetinaBackbone) and a RetinaNet head run on
    every level p3..p7 by its own submodules, step by step so that every conv
    and ReLU output is a named tensor (libkdcam's names, head_layer_names).
    check_layout() compares with the head's own forward."""

    def __init__(self, inner, head, style):
        super().__init__()
        self.inner = inner
        self.head = head
        self.style = style

    def _branches(self):
        h = self.head
        if self.style == "mm":
            return [(list(h.cls_convs), h.retina_cls), (list(h.reg_convs), h.retina_reg)]
        return [(list(h.classification_head.conv), h.classification_head.cls_logits),
                (list(h.regression_head.conv), h.regression_head.bbox_reg)]

    def forward(self, x):
        levels = self.inner(x)
        out = dict(levels)
        for L in RETINA_LEVELS:
            names = iter(head_layer_names(self.style, L))
            for convs, final in self._branches():
                t = levels["fpn.p%d" % L]
                for blk in convs:
                    if self.style == "mm":
                        conv, act = blk.conv, blk.activate
                    else:
                        assert len(blk) == 2  # Conv2dNormActivation(norm_layer=None)
                        conv, act = blk[0], blk[1]
                    c = conv(t)
                    t = act(c)
                    out[next(names)] = c
                    out[next(names)] = t
                out[next(names)] = final(t)
        return out

    @torch.no_grad()
    def check_layout(self, x):
        """The head's own forward (torchvision RetinaNetHead: (N, sum HWA, K)
        and (N, sum HWA, 4) over the levels; mmdetection: per level NCHW)
        equals the recorded per-level outputs; returns the max abs error."""
        rec = self(x)
        feats = [rec["fpn.p%d" % L] for L in RETINA_LEVELS]
        names = [head_layer_names(self.style, L) for L in RETINA_LEVELS]
        cls = [rec[n[2 * kdcgen.RETINA_CONVS]] for n in names]
        reg = [rec[n[-1]] for n in names]
        if self.style == "mm":
            c2, r2 = self.head(feats)
            errs = [float((a - b).abs().max()) for a, b in zip(cls + reg, c2 + r2)]
            return max(errs)
        o = self.head(feats)
        A, K = kdcgen.RETINA_A, kdcgen.RETINA_K

        def flat(ts, k):  # torchvision: (N, A*k, H, W) -> (N, H*W*A, k)
            return torch.cat([t.view(t.shape[0], A, k, t.shape[2], t.shape[3])
                              .permute(0, 3, 4, 1, 2).reshape(t.shape[0], -1, k) for t in ts], 1)
        return max(float((flat(cls, K) - o["cls_logits"]).abs().max()),
                   float((flat(reg, 4) - o["bbox_regression"]).abs().max()))


def load_checked(module, sd):
    """load_state_dict (strict) after checking names and shapes."""
    ref = module.state_dict()
    assert sorted(ref.keys()) == sorted(sd.keys()), sorted(set(ref) ^ set(sd))[:10]
    for k, v in ref.items():
        assert tuple(v.shape) == tuple(sd[k].shape), (k, v.shape, sd[k].shape)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)


def build_head(scheme, gen):
    """The RetinaNet head of a scheme with the generated tensors."""
    style = retina_style(scheme)
    F_, A, K = kdcgen.FPN_CH, kdcgen.RETINA_A, kdcgen.RETINA_K
    if style == "mm":
        head = MMRetinaHead(F_, A, K, kdcgen.RETINA_CONVS)
        load_checked(head, {k[len("bbox_head."):]: v for k, v in gen.items()
                            if k.startswith("bbox_head.")})
        return head
    head = RetinaNetHead(in_channels=F_, num_anchors=A, num_classes=K)
    hsd = {k[len("head."):]: v for k, v in gen.items() if k.startswith("head.")}
    if style == "tv_old":
        # conv = Sequential(Conv2d, ReLU, ...): conv.(2i).* -> Conv2dNormActivation conv.i.0.*
        old = hsd
        hsd = {}
        for k, v in old.items():
            p = k.split(".")
            if p[1] == "conv":
                i = int(p[2])
                assert i % 2 == 0
                k = ".".join(p[:2] + [str(i // 2), "0"] + p[3:])
            hsd[k] = v
        # torchvision's own conversion (_v1_to_v2_weights, applied by
        # RetinaNet{Classification,Regression}Head._load_from_state_dict to
        # state dicts without version metadata) gives the same parameters
        h2 = RetinaNetHead(in_channels=F_, num_anchors=A, num_classes=K)
        h2.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in old.items()}, strict=True)
    load_checked(head, hsd)
    if style == "tv_old":
        for (k1, v1), (k2, v2) in zip(head.state_dict().items(), h2.state_dict().items()):
            assert k1 == k2 and torch.equal(v1, v2), k1
    return head


def build(scheme, seed):
    """(model in eval mode, generated tensors {name: array}, body module,
    recording dict provider)."""
    layout, bprefix, nbt, stages, extra, old, heads = kdcgen.FPN_SCHEMES[scheme]
    gen = {n: kdcgen.gen_tensor(n, s, seed) for n, s in kdcgen.tensor_specs(scheme, 1)}
    F_ = kdcgen.FPN_CH
    if layout == "tv":
        norm = nn.BatchNorm2d if nbt else FrozenBatchNorm2d
        r = torchvision.models.resnet50(weights=None, norm_layer=norm)
        if extra == "pool":
            eb = LastLevelMaxPool()
        elif extra == "p6p7":
            eb = LastLevelP6P7(F_, F_)
        else:
            eb = LastLevelP6P7(2048, F_)
        ret = {"layer%d" % s: str(i) for i, s in enumerate(stages)}
        bwf = BackboneWithFPN(r, ret, [256 << (s - 1) for s in stages], F_, extra_blocks=eb)
        model = TVWrap(bwf, stages[0])
        sd = {}
        for k, v in gen.items():
            if not k.startswith("backbone."):
                continue  # detection heads: not part of the backbone
            k = k[len("backbone."):]
            if old and k.startswith("fpn.") and ("inner_blocks" in k or "layer_blocks" in k):
                p = k.split(".")  # fpn.inner_blocks.i.weight -> fpn.inner_blocks.i.0.weight
                k = ".".join(p[:3] + ["0"] + p[3:])
            sd[k] = v
        target = bwf
        body = bwf.body
    else:
        model = MMRetinaBackbone()
        sd = {k: v for k, v in gen.items() if k.startswith(("backbone.", "neck."))}
        target = model
        body = model.backbone
    ref = target.state_dict()
    assert sorted(ref.keys()) == sorted(sd.keys()), (
        sorted(set(ref) ^ set(sd))[:10])
    for k, v in ref.items():
        assert tuple(v.shape) == tuple(sd[k].shape), (k, v.shape, sd[k].shape)
    target.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)
    style = retina_style(scheme)
    if style is not None:
        model = RetinaWrap(model, build_head(scheme, gen), style)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.eps = 0.0  # torchvision's COCO detectors
        if isinstance(m, nn.ReLU):
            m.inplace = False
    model.eval()
    return model, gen, body


# ---------------------------------------------------------------------------
# Energy targets

def box_mask(h, w, in_h, in_w, box):
    """kdc_energy_seed's cell rule (lib/models/detect.c): cell (y, x) is in when its
    centre ((x + 0.5) * in_w / w, (y + 0.5) * in_h / h) lies in [x0, x1) x
    [y0, y1); a box holding no centre takes the cell under its centre."""
    if box is None:
        return np.ones((h, w), dtype=bool)
    b = [float(np.float32(v)) for v in box]
    sx, sy = in_w / w, in_h / h
    cx = (np.arange(w) + 0.5) * sx
    cy = (np.arange(h) + 0.5) * sy
    m = ((cx[None, :] >= b[0]) & (cx[None, :] < b[2]) &
         (cy[:, None] >= b[1]) & (cy[:, None] < b[3]))
    if not m.any():
        x = int(float(np.float32(np.float32(b[0] + b[2]) / 2)) / sx)
        y = int(float(np.float32(np.float32(b[1] + b[3]) / 2)) / sy)
        m[min(max(y, 0), h - 1), min(max(x, 0), w - 1)] = True
    return m


def energy(act, in_h, in_w, kind, box, channel):
    n, c, h, w = act.shape
    if kind == "onehot":  # channel = (c, y, x): the output there, summed over the batch
        cc, cy, cx = channel
        return act[:, cc, cy, cx].sum()
    m = torch.from_numpy(box_mask(h, w, in_h, in_w, box)).to(act.dtype)
    chm = torch.zeros(c, dtype=act.dtype)
    if channel < 0:
        chm[:] = 1
    else:
        chm[channel] = 1
    mask = chm[None, :, None, None] * m[None, None]
    if kind == "sumsq":
        return (mask * act * act).sum()
    count = float(m.sum().item()) * (c if channel < 0 else 1)
    return (mask * act).sum() / count


# ---------------------------------------------------------------------------
# Running

def run_case(model, body, scheme, x_np, in_h, in_w, tgt, dtype, grad_layers=GRAD_LAYERS):
    """Forward (recording), target, backward. Returns ({name: act}, {layer: grad}, E);
    a recorded tensor that E does not depend on gets a zero gradient."""
    rec = {}
    retina = isinstance(model, RetinaWrap)
    inner = model.inner if retina else model
    handles = []
    for L in range(1, 5):
        def hook(_m, _i, out, nm="layer%d" % L):
            out.retain_grad()
            rec[nm] = out
        handles.append(getattr(body, "layer%d" % L).register_forward_hook(hook))
    layout = kdcgen.FPN_SCHEMES[scheme][0]
    if layout == "tv":
        fpn = inner.bwf.fpn
        for i, blk in enumerate(fpn.inner_blocks):
            def h2(_m, _i, out, nm="fpn.inner_blocks.%d" % i):
                rec[nm] = out
            handles.append(blk.register_forward_hook(h2))
    x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
    levels = model(x)
    for h in handles:
        h.remove()
    if retina:
        for v in levels.values():
            v.retain_grad()  # the levels and every head output
    if layout == "tv":
        # torchvision's last_inner: inner(C_i) + nearest-upsample(last_inner above)
        L = len(inner.bwf.fpn.inner_blocks)
        last = rec["fpn.inner_blocks.%d" % (L - 1)]
        for i in range(L - 2, -1, -1):
            lat = rec["fpn.inner_blocks.%d" % i]
            last = lat + F.interpolate(last, size=lat.shape[-2:], mode="nearest")
            rec["fpn.inner_blocks.%d.merged" % i] = last
    else:
        rec.update(inner.neck.rec)
    rec.update(levels)
    _name, layer, kind, box, channel = tgt
    E = energy(rec[layer], in_h, in_w, kind, box, channel)
    E.backward()
    acts = {k: v.detach().numpy().copy() for k, v in rec.items()}
    grads = {}
    for k in grad_layers:
        if k == "input":
            continue
        g = rec[k].grad
        grads[k] = (torch.zeros_like(rec[k]) if g is None else g).detach().numpy().copy()
    grads["input"] = x.grad.detach().numpy().copy()
    return acts, grads, float(E.item())


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def sample_of(arr, k=SAMPLE_K, full_max=FULL_MAX):
    flat = np.asarray(arr).ravel()
    if flat.size <= full_max:
        return flat
    return flat[kdcgen.sample_indices(flat.size, k)]


def put(tensors, key, a64, k=SAMPLE_K, full_max=FULL_MAX):
    assert a64.ndim == 4 and np.all(np.isfinite(a64)), key
    tensors[key + "/shape"] = np.array(a64.shape, dtype=np.int64)
    tensors[key + "/val"] = sample_of(a64, k, full_max).astype(np.float32)
    tensors[key + "/sum"] = np.array(a64.sum(), dtype=np.float64)
    tensors[key + "/sumsq"] = np.array((a64 * a64).sum(), dtype=np.float64)


def make_input(n, h, w, ch, cw, seed):
    content = kdcgen.fill("input", n * 3 * ch * cw, seed, INPUT_C, INPUT_A).reshape(n, 3, ch, cw)
    x = np.zeros((n, 3, h, w), dtype=np.float32)
    x[:, :, :ch, :cw] = content
    return x


def relu_margin(model, x_np, functional=()):
    """min over every ReLU call of min |x| / rms(x) (float64 forward), the
    number of ReLU input elements, and the call where the minimum is.
    functional: (name, module) pairs whose output goes into a functional
    F.relu (not an nn.ReLU module), checked as well."""
    worst = [float("inf"), "", 0]
    hs = []
    for mn, m in functional:
        hs.append(m.register_forward_hook(lambda m_, i, o, mn=mn: hook(m_, (o,), None, mn)))

    def hook(_m, inp, _out, mn):
        a = inp[0].detach()
        rms = float(a.pow(2).mean().sqrt())
        r = float(a.abs().min()) / max(rms, 1e-300)
        worst[2] += a.numel()
        if r < worst[0]:
            worst[0], worst[1] = r, mn
    for mn, m in model.named_modules():
        if isinstance(m, nn.ReLU):
            hs.append(m.register_forward_hook(lambda m_, i, o, mn=mn: hook(m_, i, o, mn)))
    with torch.no_grad():
        model(torch.from_numpy(x_np).double())
    for h in hs:
        h.remove()
    return worst[0], worst[1], worst[2]


def target_grad_layers(style, tgt):
    """Layers whose gradient is stored for a target: GRAD_LAYERS, and for a
    RetinaNet head also every level and every head output at the target's
    level (both branches; the other branch's are zero)."""
    if style is None:
        return GRAD_LAYERS
    L = int(tgt[1].rsplit("@p", 1)[1])
    return (GRAD_LAYERS + ["fpn.p%d" % k for k in RETINA_LEVELS] +
            head_layer_names(style, L))


def put_layer(tensors, key, a64):
    """put() with the head outputs (names with "@p") sampled more sparsely."""
    if "@p" in key:
        put(tensors, key, a64, HEAD_SAMPLE_K, HEAD_FULL_MAX)
    else:
        put(tensors, key, a64)


def level_order(name):
    return (0, name) if name.startswith("layer") else (1, name)


def do_case(case):
    name, scheme, seed, n, h, w, ch, cw, in_seed, targets = case
    t0 = time.time()
    m64, gen, body64 = build(scheme, seed)
    m64 = m64.double()
    m32, _, body32 = build(scheme, seed)
    style = retina_style(scheme)
    functional = ()
    if style in ("tv", "tv_old"):
        # LastLevelP6P7: p7 = self.p7(F.relu(p6))
        functional = (("fpn.extra_blocks.p6 (F.relu)", m64.inner.bwf.fpn.extra_blocks.p6),)
    for _ in range(MAX_SEED_TRIES):
        x = make_input(n, h, w, ch, cw, in_seed)
        margin, mwhere, nrelu = relu_margin(m64, x, functional)
        if margin >= MIN_RELU_MARGIN:
            break
        print("  %s: input seed %d: ReLU margin %.2e at %s, next seed" % (name, in_seed, margin,
                                                                          mwhere), flush=True)
        in_seed += 1
    else:
        raise SystemExit("%s: no input seed with a ReLU margin >= %g" % (name, MIN_RELU_MARGIN))
    layout = kdcgen.FPN_SCHEMES[scheme][0]
    tensors = {}
    meta = {}
    worst_act, worst_grad = (0.0, ""), (0.0, "")
    acts_first = None
    layout_err = None
    if style is not None:
        layout_err = m64.check_layout(torch.from_numpy(x).double())
        assert layout_err == 0.0, layout_err
    for ti, tgt in enumerate(targets):
        glayers = target_grad_layers(style, tgt)
        a64, g64, e64 = run_case(m64, body64, scheme, x, h, w, tgt, torch.float64, glayers)
        a32, g32, e32 = run_case(m32, body32, scheme, x, h, w, tgt, torch.float32, glayers)
        if ti == 0:
            acts_first = a64
            for k in sorted(a64, key=level_order):
                put_layer(tensors, k, a64[k])
                e = rel_l2(a32[k], a64[k])
                if e > worst_act[0]:
                    worst_act = (e, k)
        tn = tgt[0]
        for k in glayers:
            put_layer(tensors, "grad/%s/%s" % (tn, k), g64[k])
            e = rel_l2(g32[k], g64[k])
            if e > worst_grad[0]:
                worst_grad = (e, "%s/%s" % (tn, k))
        tensors["energy/%s" % tn] = np.array(e64, dtype=np.float64)
        meta["target.%s.layer" % tn] = tgt[1]
        meta["target.%s.kind" % tn] = tgt[2]
        if tgt[2] == "onehot":
            meta["target.%s.cell" % tn] = ",".join(str(v) for v in tgt[4])
            meta["target.%s.grad_layers" % tn] = ",".join(glayers)
        else:
            meta["target.%s.box" % tn] = (",".join(repr(float(v)) for v in tgt[3])
                                          if tgt[3] else "")
            meta["target.%s.channel" % tn] = str(tgt[4])
        meta["target.%s.f32_vs_f64_energy_rel" % tn] = "%.3e" % (abs(e32 - e64) / abs(e64))
        if tgt[2] == "onehot":
            t64 = a64[tgt[1]]
            meta["target.%s.value_over_rms" % tn] = "%.3f" % (
                abs(e64) / float(np.sqrt(np.mean(t64 * t64))))
    names = [k for k, _s in kdcgen.tensor_specs(scheme, 1)]
    check = [names[0], [k for k in names if "fpn" in k or "neck" in k][0],
             [k for k in names if ("fpn" in k or "neck" in k) and k.endswith("bias")][-1],
             names[-1]]
    if style is not None:  # and a few head tensors
        hk = [k for k in names if not k.startswith(("backbone.", "neck."))]
        check[-1:-1] = [hk[0], [k for k in hk if k.endswith(("cls_logits.weight",
                                                                "retina_cls.weight"))][0]]
    for k in check:
        tensors["weights:%s/val" % k] = sample_of(gen[k])
    # detection-head tensors libkdcam must ignore (a RetinaNet head is built)
    heads = [] if style is not None else [k for k in names
                                          if not k.startswith(("backbone.", "neck."))]
    nbt = kdcgen.FPN_SCHEMES[scheme][2]
    levels = sorted(k for k in acts_first if k.startswith("fpn.p"))
    meta.update({
        "scheme": scheme, "arch": "resnet50-fpn", "layout": layout, "seed": str(seed),
        "input_name": "input", "input_seed": str(in_seed), "input_c": repr(INPUT_C),
        "input_a": repr(INPUT_A), "n": str(n), "h": str(h), "w": str(w),
        "content_h": str(ch), "content_w": str(cw),
        "input_rule": "content = fill(input_name, n*3*content_h*content_w, input_seed, "
                      "input_c, input_a) as (n,3,content_h,content_w), placed top-left in "
                      "zeros (n,3,h,w)",
        "bn_eps": "1e-05" if (layout == "mm" or nbt) else "0.0",
        "fpn_ch": str(kdcgen.FPN_CH), "levels": ",".join(levels),
        "layers": ",".join(sorted(acts_first, key=level_order)),
        "targets": ",".join(t[0] for t in targets), "grad_layers": ",".join(GRAD_LAYERS),
        "ignored": ",".join(heads), "sample_k": str(SAMPLE_K), "full_max": str(FULL_MAX),
        "reference": "torch %s torchvision %s float64" % (torch.__version__,
                                                           torchvision.__version__),
        "relu_margin_rel": "%.3e" % margin, "relu_margin_at": mwhere,
        "relu_elements": str(nrelu),
        "f32_vs_f64_worst_act_rel_l2": "%.3e" % worst_act[0],
        "f32_vs_f64_worst_act": worst_act[1],
        "f32_vs_f64_worst_grad_rel_l2": "%.3e" % worst_grad[0],
        "f32_vs_f64_worst_grad": worst_grad[1],
    })
    if style is not None:
        meta.update({
            "head": {"tv": "torchvision RetinaNetHead (conv.i.0)",
                     "tv_old": "torchvision RetinaNetHead, old spelling (conv.2i)",
                     "mm": "mmdetection RetinaHead"}[style],
            "head_style": style, "num_anchors": str(kdcgen.RETINA_A),
            "num_classes": str(kdcgen.RETINA_K), "head_convs": str(kdcgen.RETINA_CONVS),
            "head_levels": ",".join("p%d" % L for L in RETINA_LEVELS),
            "head_layout_check_max_abs": repr(layout_err),
            "head_sample_k": str(HEAD_SAMPLE_K), "head_full_max": str(HEAD_FULL_MAX),
        })
    path = os.path.join(OUT_DIR, name + ".safetensors")
    kdcgen.write_safetensors(path, tensors, meta)
    shapes = " ".join("%s=%dx%d" % (k[4:], acts_first[k].shape[2], acts_first[k].shape[3])
                      for k in levels)
    print("%-24s seed %d margin %.2e  %s  f32-vs-f64 act %.2e (%s) grad %.2e (%s)  %d bytes  %.1fs"
          % (name, in_seed, margin, shapes, worst_act[0], worst_act[1], worst_grad[0], worst_grad[1],
             os.path.getsize(path), time.time() - t0), flush=True)


# ---------------------------------------------------------------------------
# Detector preprocessing

def do_preprocess():
    from PIL import Image
    from torchvision.models.detection.transform import GeneralizedRCNNTransform
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    img = np.asarray(Image.open(os.path.join("examples", "images", "coffee.png")).convert("RGB"))
    t = GeneralizedRCNNTransform(min_size=800, max_size=1333, image_mean=mean, image_std=std)
    t.eval()
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)  # ToTensor
    il, _ = t([x])
    out = il.tensors.numpy()
    (rh, rw), = il.image_sizes
    # the same in float64: torchvision's own float32 rounding
    t64 = GeneralizedRCNNTransform(min_size=800, max_size=1333, image_mean=mean, image_std=std)
    t64.eval()
    il64, _ = t64([torch.from_numpy(img.copy()).permute(2, 0, 1).double().div(255)])
    out64 = il64.tensors.numpy()
    tensors = {}
    put(tensors, "det_input", out.astype(np.float64), k=8192, full_max=0)
    # the content's edges and the padding beside them, whole
    put(tensors, "det_input_rows", out[:, :, max(rh - 2, 0):rh + 2, :].astype(np.float64),
        full_max=1 << 20)
    put(tensors, "det_input_cols", out[:, :, :, max(rw - 2, 0):rw + 2].astype(np.float64),
        full_max=1 << 20)
    meta = {
        "image": "examples/images/coffee.png", "img_w": str(img.shape[1]),
        "img_h": str(img.shape[0]), "min_size": "800", "max_size": "1333",
        "mean": ",".join(map(repr, mean)), "std": ",".join(map(repr, std)),
        "content_h": str(rh), "content_w": str(rw), "h": str(out.shape[2]),
        "w": str(out.shape[3]), "scale": repr(min(800 / min(img.shape[:2]),
                                                   1333 / max(img.shape[:2]))),
        "edges": "det_input_rows: rows content_h-2 .. content_h+1 (those that exist), "
                 "det_input_cols: columns content_w-2 .. content_w+1, whole",
        "tv_f32_vs_f64_max_abs": "%.3e" % float(np.abs(out - out64).max()),
        "reference": "torchvision %s GeneralizedRCNNTransform float32" % torchvision.__version__,
    }
    path = os.path.join(OUT_DIR, "preprocess_coffee.safetensors")
    kdcgen.write_safetensors(path, tensors, meta)
    print("preprocess_coffee: %s content %dx%d  torchvision f32-vs-f64 max abs %s  %d bytes"
          % (out.shape, rh, rw, meta["tv_f32_vs_f64_max_abs"], os.path.getsize(path)))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    only = set(sys.argv[1:])
    for case in CASES:
        if not only or case[0] in only:
            do_case(case)
    if not only or "preprocess" in only:
        do_preprocess()
    return 0


if __name__ == "__main__":
    sys.exit(main())
