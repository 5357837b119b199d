#!/usr/bin/env python3
"""mmdet_retina_ref.py - the independent reference of libkdcam's
mmdetection-style RetinaNet post-processing (kdc_detect_decode with
KDC_DETECT_MMDET): a NumPy reimplementation of mmdetection 2.x's RetinaHead
test mode (simple_test -> get_bboxes, rescale=True) with the test_cfg of
configs/_base_/models/retinanet_r50_fpn.py. mmdetection and mmcv are not
installed here; this was written from their source, not copied:

  read (open-mmlab repositories as stored by the search index; an exact
  v2.25.0 tag was not retrievable, so the files below are the versions that
  could be read, and where they differ from v2.25 the difference is named):
  - mmdet/core/anchor/anchor_generator.py (open-mmlab/mmdetection @00cf8de3,
    2.1x): AnchorGenerator.__init__, gen_single_level_base_anchors,
    single_level_grid_priors (v2.25 adds only a dtype argument: the shifts
    are arange(feat) cast to float32, then * stride; the same numbers)
  - mmdet/core/bbox/coder/delta_xywh_bbox_coder.py (@01fba5b5): delta2bbox.
    v2.25 reshapes to (N, 4) and works on (dx, dy) / (dw, dh) pairs, but the
    float32 operations and their order are the same:
    px = (x1 + x2) * 0.5, pw = x2 - x1, gx = px + pw * dx,
    gw = pw * exp(clamp(dw, -max_ratio, max_ratio)), x1 = gx - gw * 0.5,
    x2 = gx + gw * 0.5, then clamp x to [0, img_w], y to [0, img_h]
  - 2.x (>= 2.18) BaseDenseHead._get_bboxes_single / _bbox_post_process and
    mmdet/core/utils/misc.py filter_scores_and_topk (several identical
    third-party copies of the 2.x files; RetinaHead/AnchorHead have no
    get_bboxes of their own since PR #5317, so RetinaNet uses these)
  - mmdet/core/post_processing/bbox_nms.py multiclass_nms (@00e97308; the
    <= 2.17 path, NOT used here, see below)
  - open-mmlab/mmcv mmcv/ops/nms.py (@000887f0: nms, batched_nms) and
    mmcv/ops/csrc/pytorch/cpu/nms.cpp (@62dd2a8e: nms_cpu)

  choices (v2.25 behaviour where versions differ):
  - candidates: per level, sigmoid of the (H*W*A, K) scores; every
    (anchor, class) pair with score > score_thr (strict) is a candidate
    (row-major order: anchor, then class), sorted by score descending and
    the first nms_pre kept (filter_scores_and_topk, v2.18+). The <= 2.17
    path (nms_pre anchors by their max class score, then multiclass_nms with
    a zero background column appended last and score > score_thr) gives
    other detections and is not modelled.
  - anchors: base size = stride (8, 16, 32, 64, 128), scales
    float32(4 * 2^(i/3)), ratios float32 (0.5, 1, 2), h_ratio =
    sqrt(ratio), w_ratio = 1 / h_ratio, ws = (stride * w_ratio) * scale
    (ratio-major: a = 3 * ratio_index + scale_index), centre offset 0 (the
    base anchor is centred on the cell's top-left corner x * stride), no
    rounding; anchor a of cell (y, x) = base[a] + (x * s, y * s, x * s,
    y * s), all float32. Anchor index in a level: (y * W + x) * A + a;
    class channel a * K + k, regression channel a * 4 + j.
  - decoding: target_means 0, target_stds 1 (deltas * 1 + 0: unchanged),
    max_ratio = |log(16 / 1000)| clamps dw, dh on both sides (torchvision
    clamps only above), clip to img_shape (image_h, image_w: the resized
    image, not the padded input), no -1.
  - rescale before NMS: boxes / float32([w_scale, h_scale, w_scale,
    h_scale]), w_scale = image_w / orig_w, h_scale = image_h / orig_h (as
    mmdet's Resize stores scale_factor: float32 of the double quotient);
    float32 division; no clip to the original image afterwards.
  - NMS: mmcv batched_nms, not class-agnostic: max_coordinate = max of all
    rescaled boxes, boxes + label * (max_coordinate + 1) (float32), then one
    nms_cpu below split_thr = 10000 boxes (always here: at most 5 * nms_pre),
    per class + argsort above. nms_cpu: order = scores sorted descending,
    offset 0: area = (x2 - x1) * (y2 - y1), w = max(0, min(x2) - max(x1)),
    inter = w * h, ovr = inter / (area_i + area_j - inter), all float32;
    suppressed if ovr > iou_threshold (strict, float compare).
  - output: the kept boxes in NMS order (score descending), the first
    max_per_img. This is the head's get_bboxes order; the detector's
    bbox2result then groups the same detections by class.
  - score = float32 1 / (1 + exp(-z)) (torch.sigmoid may differ in the last
    bit); every array op is float32 like mmdet on CPU.

    /usr/bin/python3 tools/mmdet_retina_ref.py tests/fixtures/detect/mm_160x128
    /usr/bin/python3 tools/mmdet_retina_ref.py --check DIR   # against DIR/expected.txt

prints the detections in expected.txt's format (x0 y0 x1 y1 score label level
anchor y x).
"""
import os
import sys

import numpy as np

F32 = np.float32

DEFAULT_CFG = dict(
    num_anchors=9,
    octave_base_scale=4,
    scales_per_octave=3,
    ratios=(0.5, 1.0, 2.0),
    score_thr=0.05,
    nms_pre=1000,
    iou_threshold=0.5,
    max_per_img=100,
    wh_ratio_clip=16 / 1000,
    split_thr=10000,
)


def base_anchors(stride, cfg=DEFAULT_CFG):
    """The A base anchors of a level (float32, (A, 4)), ratio-major."""
    spo = cfg["scales_per_octave"]
    scales = (np.array([2 ** (i / spo) for i in range(spo)]) * cfg["octave_base_scale"]).astype(F32)
    ratios = np.array(cfg["ratios"], dtype=F32)
    h_ratios = np.sqrt(ratios)
    w_ratios = F32(1) / h_ratios
    w = F32(stride)
    ws = ((w * w_ratios)[:, None] * scales[None, :]).reshape(-1)
    hs = ((w * h_ratios)[:, None] * scales[None, :]).reshape(-1)
    half = F32(0.5)
    c = F32(0.0)  # center_offset 0 * base size
    return np.stack([c - half * ws, c - half * hs, c + half * ws, c + half * hs], axis=-1).astype(F32)


def grid_anchors(stride, h, w, cfg=DEFAULT_CFG):
    """All anchors of an h x w level: ((h * w * A), 4), index (y * w + x) * A + a."""
    base = base_anchors(stride, cfg)
    sx = (np.arange(w) * stride).astype(F32)
    sy = (np.arange(h) * stride).astype(F32)
    xx = np.tile(sx, h)
    yy = np.repeat(sy, w)
    shifts = np.stack([xx, yy, xx, yy], axis=-1)
    return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4).astype(F32)


def delta2bbox(rois, deltas, max_shape, wh_ratio_clip=16 / 1000):
    """mmdet 2.x delta2bbox with means 0, stds 1 (float32)."""
    rois = rois.astype(F32)
    d = deltas.astype(F32) * F32(1) + F32(0)
    px = (rois[:, 0] + rois[:, 2]) * F32(0.5)
    py = (rois[:, 1] + rois[:, 3]) * F32(0.5)
    pw = rois[:, 2] - rois[:, 0]
    ph = rois[:, 3] - rois[:, 1]
    dx_w = pw * d[:, 0]
    dy_h = ph * d[:, 1]
    max_ratio = F32(np.abs(np.log(wh_ratio_clip)))
    dw = np.clip(d[:, 2], -max_ratio, max_ratio)
    dh = np.clip(d[:, 3], -max_ratio, max_ratio)
    gx = px + dx_w
    gy = py + dy_h
    gw = pw * np.exp(dw)
    gh = ph * np.exp(dh)
    half = F32(0.5)
    b = np.stack([gx - gw * half, gy - gh * half, gx + gw * half, gy + gh * half], axis=-1)
    if max_shape is not None:
        b[:, 0::2] = np.clip(b[:, 0::2], F32(0), F32(max_shape[1]))
        b[:, 1::2] = np.clip(b[:, 1::2], F32(0), F32(max_shape[0]))
    return b.astype(F32)


def sigmoid(z):
    z = np.asarray(z, dtype=F32)
    return (F32(1) / (F32(1) + np.exp(-z))).astype(F32)


def nms_cpu(boxes, scores, iou_threshold):
    """mmcv nms_cpu with offset 0: kept indices, best first."""
    boxes = boxes.astype(F32)
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    n = len(order)
    select = np.ones(n, dtype=bool)
    thr = F32(iou_threshold)
    for _i in range(n):
        if not select[_i]:
            continue
        i = order[_i]
        rest = np.nonzero(select[_i + 1:])[0] + _i + 1
        if len(rest) == 0:
            continue
        j = order[rest]
        xx1 = np.maximum(x1[i], x1[j])
        yy1 = np.maximum(y1[i], y1[j])
        xx2 = np.minimum(x2[i], x2[j])
        yy2 = np.minimum(y2[i], y2[j])
        w = np.maximum(F32(0), xx2 - xx1)
        h = np.maximum(F32(0), yy2 - yy1)
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            ovr = inter / (areas[i] + areas[j] - inter)
        select[rest[ovr > thr]] = False
    return order[select]


def batched_nms(boxes, scores, labels, iou_threshold, split_thr=10000):
    """mmcv batched_nms (not class-agnostic): kept indices, best first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    max_coordinate = boxes.max()
    offsets = labels.astype(F32) * (max_coordinate + F32(1))
    boxes_for_nms = (boxes + offsets[:, None]).astype(F32)
    if len(boxes) < split_thr:
        return nms_cpu(boxes_for_nms, scores, iou_threshold)
    mask = np.zeros(len(boxes), dtype=bool)
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        mask[idx[nms_cpu(boxes_for_nms[idx], scores[idx], iou_threshold)]] = True
    keep = np.nonzero(mask)[0]
    return keep[np.argsort(-scores[keep], kind="stable")]


def detect(cls_list, reg_list, levels, input_hw, image_hw, orig_hw, cfg=None, debug=None):
    """Detections of one image from RetinaHead outputs.

    cls_list[i]: (1, A*K, H, W) or (A*K, H, W) logits of FPN level levels[i];
    reg_list[i]: (1, A*4, H, W) deltas. input_hw: the padded network input
    (only checked against the level sizes), image_hw: the resized image
    (img_shape, boxes are clipped to it), orig_hw: the original image
    (ori_shape; boxes are divided by image / orig per axis).
    Returns a list of (box[4] float32, score float32, label, level, anchor,
    y, x) in the head's output order. If debug is a dict it receives the NMS
    input: 'boxes' (rescaled, float32), 'scores', 'labels', 'meta' (rows of
    level, anchor, y, x), 'per_level' (candidates above the threshold per
    level, before nms_pre), 'keep' (NMS survivors before max_per_img).
    """
    c = dict(DEFAULT_CFG)
    if cfg:
        c.update(cfg)
    A = c["num_anchors"]
    all_boxes, all_scores, all_labels, all_meta, per_level = [], [], [], [], []
    for cls, reg, L in zip(cls_list, reg_list, levels):
        cls = np.asarray(cls, dtype=F32)
        reg = np.asarray(reg, dtype=F32)
        if cls.ndim == 4:
            cls, reg = cls[0], reg[0]
        AK, H, W = cls.shape
        K = AK // A
        assert AK == A * K and reg.shape == (A * 4, H, W)
        stride = 2 ** L
        if input_hw is not None and L <= 5:
            assert (H, W) == (-(-input_hw[0] // stride), -(-input_hw[1] // stride)), (L, H, W)
        scores = sigmoid(cls.transpose(1, 2, 0).reshape(-1, K))  # (H*W*A, K)
        deltas = reg.transpose(1, 2, 0).reshape(-1, 4)
        priors = grid_anchors(stride, H, W, c)
        valid = scores > F32(c["score_thr"])
        vs = scores[valid]
        vidx = np.argwhere(valid)  # row-major: anchor, class
        per_level.append(len(vs))
        num_topk = min(c["nms_pre"], len(vs))
        order = np.argsort(-vs, kind="stable")[:num_topk]
        vs = vs[order]
        anchor_idx, labels = vidx[order, 0], vidx[order, 1]
        boxes = delta2bbox(priors[anchor_idx], deltas[anchor_idx], image_hw, c["wh_ratio_clip"])
        cell, a = anchor_idx // A, anchor_idx % A
        all_boxes.append(boxes)
        all_scores.append(vs)
        all_labels.append(labels)
        all_meta.append(np.stack([np.full_like(a, L), a, cell // W, cell % W], axis=1))
    boxes = np.concatenate(all_boxes).astype(F32)
    scores = np.concatenate(all_scores).astype(F32)
    labels = np.concatenate(all_labels)
    meta = np.concatenate(all_meta)
    sf = np.array([image_hw[1] / orig_hw[1], image_hw[0] / orig_hw[0]] * 2, dtype=F32)
    boxes = (boxes / sf).astype(F32)
    keep = batched_nms(boxes, scores, labels, c["iou_threshold"], c["split_thr"])
    if debug is not None:
        debug.update(boxes=boxes, scores=scores, labels=labels, meta=meta,
                     per_level=per_level, keep=keep)
    keep = keep[: c["max_per_img"]]
    return [(boxes[i], scores[i], int(labels[i]), int(meta[i, 0]), int(meta[i, 1]),
             int(meta[i, 2]), int(meta[i, 3])) for i in keep]


def format_detection(d):
    box, score, label, level, anchor, y, x = d
    return "%.9g %.9g %.9g %.9g %.9g %d %d %d %d %d" % (
        float(box[0]), float(box[1]), float(box[2]), float(box[3]), float(score),
        label, level, anchor, y, x)


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            parts = line.split(None, 1)
            if len(parts) == 2:
                meta[parts[0]] = parts[1].strip()
    return meta


def run_fixture(d):
    m = read_meta(os.path.join(d, "meta.txt"))
    levels = [int(v) for v in m["levels"].split()]
    cls = [np.load(os.path.join(d, "cls_p%d.npy" % L)) for L in levels]
    reg = [np.load(os.path.join(d, "reg_p%d.npy" % L)) for L in levels]
    cfg = dict(num_anchors=int(m["num_anchors"]), score_thr=float(m["score_thresh"]),
               nms_pre=int(m["topk"]), iou_threshold=float(m["nms_thresh"]),
               max_per_img=int(m["max_dets"]))
    hw = lambda k: (int(m[k + "_h"]), int(m[k + "_w"]))
    return detect(cls, reg, levels, hw("input"), hw("image"), hw("orig"), cfg)


def main(argv):
    check = "--check" in argv
    dirs = [a for a in argv if a != "--check"]
    if not dirs:
        print(__doc__)
        return 2
    status = 0
    for d in dirs:
        lines = [format_detection(t) for t in run_fixture(d)]
        if not check:
            print("\n".join(lines))
            continue
        with open(os.path.join(d, "expected.txt")) as f:
            want = [l.strip() for l in f if l.strip()]
        ok = lines == want
        print("%s: %d detections, expected.txt has %d: %s" % (d, len(lines), len(want),
                                                            "same" if ok else "DIFFERENT"))
        status |= not ok
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
