#!/usr/bin/env python3
"""gen_detect_fixtures.py - tests/fixtures/detect/: RetinaNet head outputs
and the detections torchvision 0.14 and mmdetection 2.x compute from them,
for tests/test_detect.c (kdc_detect_decode).

    /usr/bin/python3 tools/gen_detect_fixtures.py [OUTDIR]

Needs torch 1.13 / torchvision 0.14 and NumPy; deterministic (seeded), the
output is the same on every run with those versions.

Each case directory holds meta.txt (style, num_classes, num_anchors,
levels, input_h/w: the padded network input, image_h/w: the resized image
inside it (boxes are clipped to it), orig_h/w: the original image (boxes are
rescaled to it), score_thresh, topk, nms_thresh, max_dets, source),
cls_p<L>.npy (float32 (1, A*K, H, W) logits of FPN level L, class channel
a * K + k), reg_p<L>.npy (float32 (1, A*4, H, W), channel a * 4 + j) and
expected.txt: one line per detection in the framework's output order,
"x0 y0 x1 y1 score label level anchor y x" (box in original-image pixels,
%.9g of the float32 values). Level sizes: P3..P5 = input / 8, 16, 32, P6 =
ceil(P5 / 2), P7 = ceil(P6 / 2).

Cases:
  tv_160x128       torchvision, K = 3, orig 100x125 -> image 127x159 (what
                   GeneralizedRCNNTransform with min_size 128, max_size 160
                   makes: the float32 scale 1.28 floors to 127x159) padded
                   to 128x160; < 1000 NMS candidates: batched_nms's
                   coordinate-offset path; no limit cuts.
  tv_topk_320x256  torchvision, K = 2, orig 380x490 -> image 248x319
                   (min_size 250, max_size 320) padded to 256x320; > 1000
                   candidates at P3 (topk_candidates cuts, and the output
                   would differ without the cut), > 1000 NMS candidates in
                   all (batched_nms's per-class path), > 300 survivors
                   (detections_per_img cuts).
  mm_160x128       mmdetection (tools/mmdet_retina_ref.py), K = 4, orig
                   300x401 -> image 120x160 padded to 128x160; < 100
                   detections.
  mm_many_320x256  mmdetection, K = 2, orig 499x639 -> image 250x320 padded
                   to 256x320; > 1000 candidates at P3 (nms_pre cuts, and
                   the output would differ without the cut), > 100
                   survivors (max_per_img cuts).
(K is 2 in the two big cases to keep them under 400 KB: the regression
arrays alone are 246 KB there.)

torchvision cases: the real pieces of retinanet_resnet50_fpn(weights=None,
weights_backbone=None, num_classes=K) run: its anchor_generator on an
ImageList of the padded input, the head's (N, A*K, H, W) -> (N, HWA, K)
permutation, postprocess_detections (score_thresh 0.05, topk_candidates
1000, nms_thresh 0.5, detections_per_img 300) and transform.postprocess.
The level, anchor and cell of each detection come from a replica of
postprocess_detections' index steps (same torch calls) whose boxes, scores
and labels are asserted equal to torchvision's output. mmdetection cases:
tools/mmdet_retina_ref.py, cross-checked here against the same steps in
torch (torch.sigmoid/sort, torchvision.ops.nms on mmcv's offset boxes).

The logits: background uniform in [-9, -3.3] (sigmoid < 0.036); every
candidate gets a distinct score from a 1e-4 grid in [0.0505, 0.95] (no ties,
gaps >= 1e-4, so the top-k cuts, the final order and max_dets do not depend
on sigmoid's last bit), within its tier's range (TIERS), placed on (1)
clusters of anchors of any level regressed onto the same object (same
class: NMS suppresses; some anchors also score a second class: kept, NMS is
class-wise), objects partly outside the image (clipping), (2) in the big
cases, dense clusters of P3 anchors scored above (3) P3 singletons, so that
the per-level top-k drops the singletons while lower-scored detections of
other levels still reach the output (the generator asserts that the output
changes without the cut), (4) scattered anchors with random deltas, a few
with |dw| or |dh| in [4.4, 7] beyond log(1000/16) = 4.135 (torchvision
clamps only from above, mmdetection both ways) and P6 / P7 candidates scored
high enough to reach the output. Every same-class IoU among the NMS candidates
is kept >= 2e-3 away from 0.5 and every candidate box has a positive width
and height after clipping (deltas re-drawn until so), so float32 rounding
differences (exp, the coordinate offsets, NMS before or after the rescale)
cannot change a suppression.
"""
import math
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision.models.detection import retinanet_resnet50_fpn
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmdet_retina_ref as mmref  # noqa: E402

F32 = np.float32
A = 9
LEVELS = [3, 4, 5, 6, 7]
IOU_MARGIN = 2e-3

CASES = [
    dict(name="tv_160x128", style="tv", K=3, seed=1301, input=(128, 160), orig=(100, 125),
         min_size=128, max_size=160, objects=14, second_class=0.5,
         scatter={3: 110, 4: 45, 5: 18, 6: 8, 7: 5}, extreme=8),
    dict(name="tv_topk_320x256", style="tv", K=2, seed=1302, input=(256, 320), orig=(380, 490),
         min_size=250, max_size=320, objects=40, second_class=0.5,
         p3_clusters=130, p3_cluster_size=(6, 10), tiers={"scatter": (0.0505, 0.5)},
         scatter={3: 500, 4: 330, 5: 90, 6: 22, 7: 8}, extreme=30),
    dict(name="mm_160x128", style="mm", K=4, seed=1303, input=(128, 160), image=(120, 160),
         orig=(300, 401), objects=12, second_class=0.5,
         scatter={3: 28, 4: 13, 5: 8, 6: 5, 7: 4}, extreme=6),
    dict(name="mm_many_320x256", style="mm", K=2, seed=1304, input=(256, 320), image=(250, 320),
         orig=(499, 639), objects=40, second_class=0.5,
         p3_clusters=30, p3_cluster_size=(30, 40), p3_second=0.0,
         tiers={"scatter": (0.0505, 0.5), "object": (0.1, 0.6), "top": (0.5, 0.6)},
         scatter={3: 500, 4: 330, 5: 90, 6: 22, 7: 8}, extreme=30),
]


def level_sizes(input_hw):
    h, w = input_hw
    s = {3: (h // 8, w // 8), 4: (h // 16, w // 16), 5: (h // 32, w // 32)}
    s[6] = (-(-s[5][0] // 2), -(-s[5][1] // 2))
    s[7] = (-(-s[6][0] // 2), -(-s[6][1] // 2))
    return s


# ---------------------------------------------------------------- torchvision

def tv_model(K):
    torch.manual_seed(0)
    m = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=K).eval()
    assert m.score_thresh == 0.05 and m.nms_thresh == 0.5
    assert m.detections_per_img == 300 and m.topk_candidates == 1000
    return m


def tv_image_size(model, orig_hw, min_size, max_size):
    """(image_hw, padded input_hw) as GeneralizedRCNNTransform makes them."""
    t = model.transform
    t.min_size, t.max_size = (min_size,), max_size
    with torch.no_grad():
        il, _ = t([torch.zeros(3, *orig_hw)])
    return tuple(il.image_sizes[0]), tuple(il.tensors.shape[-2:])


def tv_anchors(model, input_hw, image_hw, sizes):
    feats = [torch.zeros(1, 1, *sizes[L]) for L in LEVELS]
    il = ImageList(torch.zeros(1, 3, *input_hw), [image_hw])
    anchors = model.anchor_generator(il, feats)[0]
    n = [sizes[L][0] * sizes[L][1] * A for L in LEVELS]
    return [a.numpy() for a in anchors.split(n)]


def tv_head_outputs(cls, reg, K):
    """The head's permutation: (N, A*K, H, W) -> (N, HWA, K), concatenated."""
    out_c, out_r = [], []
    for c, r in zip(cls, reg):
        c = torch.from_numpy(c)
        r = torch.from_numpy(r)
        N, _, H, W = c.shape
        out_c.append(c.view(N, -1, K, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, K))
        out_r.append(r.view(N, -1, 4, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, 4))
    return {"cls_logits": torch.cat(out_c, 1), "bbox_regression": torch.cat(out_r, 1)}


def tv_run(model, cls, reg, K, input_hw, image_hw, orig_hw, sizes, debug=None):
    """torchvision's detections and the replica's (with level/anchor/cell)."""
    head = tv_head_outputs(cls, reg, K)
    feats = [torch.zeros(1, 1, *sizes[L]) for L in LEVELS]
    il = ImageList(torch.zeros(1, 3, *input_hw), [image_hw])
    with torch.no_grad():
        anchors = model.anchor_generator(il, feats)
        # as RetinaNet.forward splits them
        num_per_level = [f.size(2) * f.size(3) * A for f in feats]
        split_head = {k: list(v.split(num_per_level, dim=1)) for k, v in head.items()}
        split_anchors = [list(a.split(num_per_level)) for a in anchors]
        dets = model.postprocess_detections(split_head, split_anchors, il.image_sizes)
        dets = model.transform.postprocess(dets, il.image_sizes, [orig_hw])[0]

        # replica of postprocess_detections with bookkeeping
        boxes_l, scores_l, labels_l, meta_l, per_level = [], [], [], [], []
        for li, L in enumerate(LEVELS):
            logits = split_head["cls_logits"][li][0]
            regs = split_head["bbox_regression"][li][0]
            anc = split_anchors[0][li]
            scores = torch.sigmoid(logits).flatten()
            keep = scores > model.score_thresh
            scores = scores[keep]
            topk_idxs = torch.where(keep)[0]
            per_level.append(int(topk_idxs.numel()))
            num_topk = min(model.topk_candidates, topk_idxs.size(0))
            scores, idxs = scores.topk(num_topk)
            topk_idxs = topk_idxs[idxs]
            anchor_idxs = torch.div(topk_idxs, K, rounding_mode="floor")
            labels = topk_idxs % K
            boxes = model.box_coder.decode_single(regs[anchor_idxs], anc[anchor_idxs])
            boxes = box_ops.clip_boxes_to_image(boxes, image_hw)
            W = sizes[L][1]
            cell = torch.div(anchor_idxs, A, rounding_mode="floor")
            meta = torch.stack([torch.full_like(cell, L), anchor_idxs % A,
                                torch.div(cell, W, rounding_mode="floor"), cell % W], 1)
            boxes_l.append(boxes)
            scores_l.append(scores)
            labels_l.append(labels)
            meta_l.append(meta)
        boxes = torch.cat(boxes_l)
        scores = torch.cat(scores_l)
        labels = torch.cat(labels_l)
        meta = torch.cat(meta_l)
        keep_all = box_ops.batched_nms(boxes, scores, labels, model.nms_thresh)
        keep = keep_all[: model.detections_per_img]
        rb = torchvision.models.detection.transform.resize_boxes(boxes[keep], image_hw, orig_hw)
    assert torch.equal(rb, dets["boxes"]), "replica boxes differ from torchvision's"
    assert torch.equal(scores[keep], dets["scores"])
    assert torch.equal(labels[keep], dets["labels"])
    if debug is not None:
        debug.update(boxes=boxes.numpy(), scores=scores.numpy(), labels=labels.numpy(),
                     meta=meta.numpy(), per_level=per_level, keep=keep_all.numpy(),
                     nms_path="per-class (vanilla)" if boxes.numel() > 4000 else
                     "coordinate offsets")
    out = []
    for j, i in enumerate(keep.tolist()):
        m = meta[i].tolist()
        out.append((dets["boxes"][j].numpy(), dets["scores"][j].numpy(),
                    int(dets["labels"][j]), m[0], m[1], m[2], m[3]))
    return out


# ---------------------------------------------------------------- mmdetection

def mm_anchors(sizes):
    return [mmref.grid_anchors(2 ** L, *sizes[L]) for L in LEVELS]


def mm_torch_crosscheck(cls, reg, K, image_hw, orig_hw, sizes, got):
    """The mmdet 2.25 steps again with torch ops: must give the same result."""
    bl, sl, ll, ml = [], [], [], []
    for li, L in enumerate(LEVELS):
        H, W = sizes[L]
        c = torch.from_numpy(cls[li][0]).permute(1, 2, 0).reshape(-1, K).sigmoid()
        r = torch.from_numpy(reg[li][0]).permute(1, 2, 0).reshape(-1, 4)
        pri = torch.from_numpy(mmref.grid_anchors(2 ** L, H, W))
        valid = c > 0.05
        s = c[valid]
        vidx = torch.nonzero(valid)
        n = min(1000, vidx.size(0))
        s, idx = s.sort(descending=True)
        s = s[:n]
        ti = vidx[idx[:n]]
        ai, lab = ti.unbind(1)
        p, d = pri[ai], r[ai]
        pxy = (p[:, :2] + p[:, 2:]) * 0.5
        pwh = p[:, 2:] - p[:, :2]
        mr = float(np.abs(np.log(16 / 1000)))
        gxy = pxy + pwh * d[:, :2]
        gwh = pwh * d[:, 2:].clamp(min=-mr, max=mr).exp()
        b = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], -1)
        b[:, 0::2].clamp_(min=0, max=image_hw[1])
        b[:, 1::2].clamp_(min=0, max=image_hw[0])
        bl.append(b)
        sl.append(s)
        ll.append(lab)
        ml.append(torch.stack([torch.full_like(ai, L), ai % A, ai // A // W, ai // A % W], 1))
    b, s, lab, m = torch.cat(bl), torch.cat(sl), torch.cat(ll), torch.cat(ml)
    sf = torch.from_numpy(np.array([image_hw[1] / orig_hw[1], image_hw[0] / orig_hw[0]] * 2,
                                   dtype=F32))
    b = b / sf
    off = lab.to(b) * (b.max() + torch.tensor(1).to(b))
    keep = torchvision.ops.nms(b + off[:, None], s, 0.5)[:100]
    assert len(keep) == len(got), (len(keep), len(got))
    for k, g in zip(keep.tolist(), got):
        assert int(lab[k]) == g[2] and m[k].tolist() == list(g[3:]), (k, g)
        assert np.allclose(b[k].numpy(), g[0], rtol=0, atol=2e-4), (b[k], g[0])
        assert abs(float(s[k]) - float(g[1])) <= 2e-7 * float(g[1]), (s[k], g[1])


# ---------------------------------------------------------------- generation

def logit(p):
    return F32(math.log(p / (1.0 - p)))


def encode(anchor, box):
    aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
    ax, ay = anchor[0] + 0.5 * aw, anchor[1] + 0.5 * ah
    bw, bh = box[2] - box[0], box[3] - box[1]
    bx, by = box[0] + 0.5 * bw, box[1] + 0.5 * bh
    return np.array([(bx - ax) / aw, (by - ay) / ah, math.log(bw / aw), math.log(bh / ah)])


@np.errstate(invalid="ignore", divide="ignore")
def iou_one(box, boxes):
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (a + b - inter)


# score ranges of the candidate tiers: every candidate gets a distinct value
# of a 1e-4 grid inside its tier's range
TIERS = {
    "scatter": (0.0505, 0.95),
    "object": (0.1, 0.95),
    "top": (0.6, 0.95),      # extreme deltas, P6 / P7: reach the output
    "p3hi": (0.55, 0.95),    # P3 clusters: the top-k keeps them
    "p3lo": (0.0505, 0.55),  # P3 singletons below every p3hi: the top-k drops them
}


class Case:
    def __init__(self, spec, anchors, sizes, image_hw):
        self.spec = spec
        self.K = spec["K"]
        self.rng = np.random.RandomState(spec["seed"])
        self.anchors = anchors  # per level (H*W*A, 4)
        self.sizes = sizes
        self.image_hw = image_hw
        rng, K = self.rng, self.K
        self.cls = [rng.uniform(-9.0, -3.3, (1, A * K, *sizes[L])).astype(F32) for L in LEVELS]
        self.reg = [rng.normal(0.0, 0.1, (1, A * 4, *sizes[L])).astype(F32) for L in LEVELS]
        self.tiers = dict(TIERS, **spec.get("tiers", {}))
        self.slots = {}  # (li, anchor index, k) -> tier
        self.kind = {}  # (li, anchor index) -> 'object' | 'scatter' | 'extreme'

    def set_delta(self, li, ai, d):
        H, W = self.sizes[LEVELS[li]]
        cell, a = divmod(ai, A)
        y, x = divmod(cell, W)
        self.reg[li][0, a * 4:a * 4 + 4, y, x] = np.asarray(d, dtype=F32)

    def cluster(self, gt, pool_levels, n_members, classes, tier, second=None):
        """Anchors of pool_levels best overlapping gt, regressed onto it."""
        rng = self.rng
        cand = []
        for li in pool_levels:
            ious = iou_one(gt, self.anchors[li].astype(np.float64))
            for ai in np.argsort(-ious)[:60]:
                cand.append((ious[ai], li, int(ai)))
        cand.sort(key=lambda t: -t[0])
        members = []
        for _, li, ai in cand:
            if (li, ai) not in self.kind:
                members.append((li, ai))
                if len(members) == n_members:
                    break
        for li, ai in members:
            noise = np.concatenate([rng.normal(0, 0.04, 2), rng.normal(0, 0.06, 2)])
            self.set_delta(li, ai, encode(self.anchors[li][ai], gt) + noise)
            self.kind[(li, ai)] = "object"
            self.slots[(li, ai, classes[0])] = tier
            if second is not None and rng.uniform() < second:
                self.slots[(li, ai, classes[1])] = tier

    def random_box(self, lo, hi, border=False):
        rng, (ih, iw) = self.rng, self.image_hw
        side = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        asp = math.exp(rng.uniform(-0.8, 0.8))
        w, h = side * math.sqrt(asp), side / math.sqrt(asp)
        if border:  # straddling an image border: clipped
            cx = rng.choice([rng.uniform(-0.3 * w, 0.1 * w), rng.uniform(iw - 0.1 * w, iw + 0.3 * w)])
            cy = rng.uniform(0, ih)
        else:
            cx, cy = rng.uniform(0.1 * iw, 0.9 * iw), rng.uniform(0.1 * ih, 0.9 * ih)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    def two_classes(self):
        c = self.rng.randint(self.K)
        return c, (c + 1 + self.rng.randint(self.K - 1)) % self.K if self.K > 1 else c

    def add_objects(self):
        """Objects of any size, their best anchors on every level."""
        for j in range(self.spec["objects"]):
            gt = self.random_box(14, min(self.image_hw) * 1.1, border=j % 4 == 0)
            self.cluster(gt, range(len(LEVELS)), self.rng.randint(3, 9), self.two_classes(),
                         "object", self.spec["second_class"])

    def add_p3_clusters(self):
        """P3-sized objects on P3 anchors only, scored above the P3 singletons."""
        n, (lo, hi) = self.spec.get("p3_clusters", 0), self.spec.get("p3_cluster_size", (6, 10))
        for j in range(n):
            gt = self.random_box(22, 60, border=j % 10 == 0)
            self.cluster(gt, [0], self.rng.randint(lo, hi + 1), self.two_classes(), "p3hi",
                         self.spec.get("p3_second", 0.15))

    def scatter_delta(self, li=None, ai=None):
        rng = self.rng
        d = np.concatenate([rng.uniform(-0.4, 0.4, 2), rng.uniform(-0.8, 0.8, 2)])
        if li is not None:
            # anchors larger than the image shrink, so that P6 / P7 boxes
            # are not all the clipped whole image (and suppressed)
            an = self.anchors[li][ai]
            side = math.sqrt((an[2] - an[0]) * (an[3] - an[1]))
            d[2:] += min(0.0, math.log(0.6 * min(self.image_hw) / side))
        return d

    def add_scatter(self):
        """Single anchors with random deltas (a few extreme), random classes."""
        rng, K = self.rng, self.K
        n_ext = self.spec["extreme"]
        p_ext = min(0.3, 1.5 * n_ext / sum(self.spec["scatter"].values()))
        p3_tier = "p3lo" if self.spec.get("p3_clusters") else "scatter"
        for li, L in enumerate(LEVELS):
            want = self.spec["scatter"][L]
            n_anc = len(self.anchors[li])
            got = 0
            while got < want:
                ai, k = int(rng.randint(n_anc)), int(rng.randint(K))
                kind = self.kind.get((li, ai))
                if kind == "object" or (li, ai, k) in self.slots:
                    continue
                if kind is None:
                    d = self.scatter_delta(li, ai)
                    kind = "scatter"
                    if n_ext > 0 and rng.uniform() < p_ext:
                        j = 2 + rng.randint(2)
                        d[j] = rng.choice([-1, 1]) * rng.uniform(4.4, 7.0)
                        if rng.uniform() < 0.3:
                            d[5 - j] = rng.uniform(4.4, 6.0)
                        kind = "extreme"
                        n_ext -= 1
                    self.set_delta(li, ai, d)
                    self.kind[(li, ai)] = kind
                tier = "top" if kind == "extreme" or L >= 6 else p3_tier if L == 3 else "scatter"
                self.slots[(li, ai, k)] = tier
                got += 1

    def assign_scores(self):
        rng = self.rng
        grid = np.round(np.arange(0.0505, 0.95, 1e-4), 6)
        free = np.ones(len(grid), dtype=bool)
        keys = sorted(self.slots)
        rng.shuffle(keys)
        # the narrowest tiers first, so that every tier finds free values
        keys.sort(key=lambda k: self.tiers[self.slots[k]][1] - self.tiers[self.slots[k]][0])
        self.score_of = {}
        for key in keys:
            lo, hi = self.tiers[self.slots[key]]
            ok = np.nonzero(free & (grid >= lo) & (grid < hi))[0]
            assert len(ok), "tier %s is full" % self.slots[key]
            g = ok[rng.randint(len(ok))]
            free[g] = False
            self.score_of[key] = float(grid[g])
        self.write_logits()

    def write_logits(self):
        K = self.K
        for (li, ai, k), p in self.score_of.items():
            H, W = self.sizes[LEVELS[li]]
            cell, a = divmod(ai, A)
            y, x = divmod(cell, W)
            self.cls[li][0, a * K + k, y, x] = logit(p)

    def redraw(self, li, ai):
        if self.kind[(li, ai)] == "object":
            H, W = self.sizes[LEVELS[li]]
            cell, a = divmod(ai, A)
            y, x = divmod(cell, W)
            d = self.reg[li][0, a * 4:a * 4 + 4, y, x].astype(np.float64)
            d = d + np.concatenate([self.rng.normal(0, 0.03, 2), self.rng.normal(0, 0.05, 2)])
        else:
            d = self.scatter_delta(li, ai)
            self.kind[(li, ai)] = "scatter"
        self.set_delta(li, ai, d)


def offending(debug):
    """Anchors (li via level, anchor index) of NMS candidates that sit too
    close to the IoU threshold with a same-class candidate or have no area."""
    b = debug["boxes"].astype(np.float64)
    lab, meta = debug["labels"], debug["meta"]
    bad = set()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    for i in np.nonzero((w <= 1e-3) | (h <= 1e-3))[0]:
        bad.add(i)
    for c in np.unique(lab):
        idx = np.nonzero(lab == c)[0]
        bb = b[idx]
        for t, i in enumerate(idx):
            ious = iou_one(bb[t], bb[t + 1:])
            close = np.abs(ious - 0.5) < IOU_MARGIN
            for u in np.nonzero(close)[0]:
                j = idx[t + 1 + u]
                bad.add(j if debug["scores"][j] < debug["scores"][i] else i)
    out = set()
    for i in bad:
        L, a, y, x = (int(v) for v in meta[i])
        li = LEVELS.index(L)
        out.add((li, L, a, y, x))
    return out


def build(spec, outdir):
    K = spec["K"]
    if spec["style"] == "tv":
        model = tv_model(K)
        image_hw, input_hw = tv_image_size(model, spec["orig"], spec["min_size"], spec["max_size"])
        assert input_hw == spec["input"], (input_hw, spec["input"])
        sizes = level_sizes(input_hw)
        anchors = tv_anchors(model, input_hw, image_hw, sizes)
    else:
        image_hw, input_hw = spec["image"], spec["input"]
        sizes = level_sizes(input_hw)
        anchors = mm_anchors(sizes)
    orig_hw = spec["orig"]
    case = Case(spec, anchors, sizes, image_hw)
    case.add_objects()
    case.add_p3_clusters()
    case.add_scatter()
    case.assign_scores()

    def run(debug):
        if spec["style"] == "tv":
            return tv_run(model, case.cls, case.reg, K, input_hw, image_hw, orig_hw, sizes, debug)
        return mmref.detect(case.cls, case.reg, LEVELS, input_hw, image_hw, orig_hw,
                            dict(max_per_img=100), debug)

    for it in range(60):
        debug = {}
        dets = run(debug)
        bad = offending(debug)
        if not bad:
            break
        for li, L, a, y, x in bad:
            W = sizes[L][1]
            case.redraw(li, (y * W + x) * A + a)
    else:
        raise SystemExit("%s: could not clear the IoU margins" % spec["name"])
    if spec["style"] == "mm":
        mm_torch_crosscheck(case.cls, case.reg, K, image_hw, orig_hw, sizes, dets)
    # does the per-level top-k change the output?
    if spec["style"] == "tv":
        model.topk_candidates = 10 ** 9
        alt = run(None)
        model.topk_candidates = 1000
    else:
        alt = mmref.detect(case.cls, case.reg, LEVELS, input_hw, image_hw, orig_hw,
                           dict(max_per_img=100, nms_pre=10 ** 9))
    topk_matters = [t[2:] for t in alt] != [t[2:] for t in dets]
    if topk_matters != bool(spec.get("p3_clusters")):
        sc = debug["scores"]
        p3 = np.sort(sc[debug["meta"][:, 0] == 3])[::-1]
        print(spec["name"], ": the top-k check failed: P3 kept", len(p3), "cut score", p3[-1] if len(p3) else None,
              "lowest output", dets[-1][1], "survivors", len(debug["keep"]),
              "survivors above cut", int(np.sum(sc[debug["keep"]] > (p3[-1] if len(p3) else 0))))
        raise SystemExit(1)

    # the logits at the threshold and the distinct scores
    allz = np.concatenate([c.ravel() for c in case.cls])
    s = 1 / (1 + np.exp(-allz.astype(np.float64)))
    assert not np.any((s > 0.045) & (s < 0.0504))
    cand = np.sort(s[s > 0.05])
    assert np.all(np.diff(cand) > 5e-5)

    d = os.path.join(outdir, spec["name"])
    os.makedirs(d, exist_ok=True)
    for li, L in enumerate(LEVELS):
        np.save(os.path.join(d, "cls_p%d.npy" % L), case.cls[li])
        np.save(os.path.join(d, "reg_p%d.npy" % L), case.reg[li])
    tv = spec["style"] == "tv"
    meta = [
        ("style", spec["style"]),
        ("num_classes", K),
        ("num_anchors", A),
        ("levels", " ".join(str(L) for L in LEVELS)),
        ("input_h", input_hw[0]), ("input_w", input_hw[1]),
        ("image_h", image_hw[0]), ("image_w", image_hw[1]),
        ("orig_h", orig_hw[0]), ("orig_w", orig_hw[1]),
        ("score_thresh", 0.05),
        ("topk", 1000),
        ("nms_thresh", 0.5),
        ("max_dets", 300 if tv else 100),
        ("source", "torchvision-0.14" if tv else "mmdet_retina_ref.py"),
    ]
    with open(os.path.join(d, "meta.txt"), "w") as f:
        for k, v in meta:
            f.write("%s %s\n" % (k, v))
    with open(os.path.join(d, "expected.txt"), "w") as f:
        for t in dets:
            f.write(mmref.format_detection(t) + "\n")

    # summary
    n_cand = len(debug["scores"])
    per_level = debug["per_level"]
    keep = debug["keep"]
    max_dets = 300 if tv else 100
    ext = sum(1 for k in case.kind.values() if k == "extreme")
    levels_out = sorted({t[3] for t in dets})
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print("%s: image %dx%d in input %dx%d, orig %dx%d, K %d" % (
        spec["name"], image_hw[0], image_hw[1], input_hw[0], input_hw[1], orig_hw[0],
        orig_hw[1], K))
    print("  above threshold per level %s, after top-k %d (NMS path: %s)" % (
        per_level, n_cand, debug.get("nms_path", "mmcv offsets, one nms")))
    print("  NMS keeps %d -> %d detections (max_dets %d %s), levels %s; without the "
          "top-k cut the output %s" % (
              len(keep), len(dets), max_dets, "cuts" if len(keep) > max_dets else "does not cut",
              levels_out, "differs" if topk_matters else "is the same"))
    clamp = F32(math.log(1000.0 / 16))
    n_hi = n_lo = 0
    for t in dets:
        li = LEVELS.index(t[3])
        dwh = case.reg[li][0, t[4] * 4 + 2:t[4] * 4 + 4, t[5], t[6]]
        n_hi += bool(np.any(dwh > clamp))
        n_lo += bool(np.any(dwh < -clamp))
    # detections overlapping a better one of another class by IoU > 0.5:
    # kept because NMS is class-wise
    db = np.array([t[0] for t in dets], dtype=np.float64).reshape(-1, 4)
    dl = np.array([t[2] for t in dets])
    multi = sum(1 for i in range(1, len(dets))
                if np.any((iou_one(db[i], db[:i]) > 0.5) & (dl[:i] != dl[i])))
    print("  detections: %d clipped, %d with dw/dh > clamp, %d with dw/dh < -clamp, "
          "%d overlap a better one of another class (IoU > 0.5)" % (
              sum(1 for t in dets if _clipped(t, orig_hw)), n_hi, n_lo, multi))
    print("  extreme-delta anchors %d; %d iterations; %d bytes" % (ext, it + 1, size))


def _clipped(t, orig_hw):
    b = t[0]
    return b[0] <= 0 or b[1] <= 0 or b[2] >= orig_hw[1] - 1e-3 or b[3] >= orig_hw[0] - 1e-3


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "detect")
    torch.set_num_threads(1)
    for spec in CASES:
        build(spec, outdir)


if __name__ == "__main__":
    main()
