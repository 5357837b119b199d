#!/usr/bin/env python3
"""coco_eval_ref.py - NumPy reference of pycocotools' COCO box evaluation.

Run with Debian's Python (numpy only; pycocotools is not needed):

    /usr/bin/python3 tools/coco_eval_ref.py GT.json DETS.json

prints the 12 summary numbers in pycocotools' summarize() text format; from
Python, evaluate(gt_dict, dets_list) returns them as 12 float64.

This is a from-scratch reimplementation of COCOeval with iouType='bbox' and
the default Params, written from the algorithm of
  https://github.com/cocodataset/cocoapi  PythonAPI/pycocotools/cocoeval.py
  (with COCO.loadRes / getAnnIds / getImgIds / getCatIds of
  PythonAPI/pycocotools/coco.py and bbIou of common/maskApi.c).
It is the independent reference of libkdcam's kdc_coco_eval_bbox
(tests/test_coco.c, fixtures from tools/gen_coco_fixtures.py).

What it reproduces, step by step (G = ground truth, D = detection):
- images: ids of gt["images"], sorted, unique; categories: ids of
  gt["categories"], sorted, unique. G of other images or categories are
  dropped (getAnnIds), D of other categories are dropped, D on an image that
  is not in gt["images"] is an error (loadRes' assert).
- loadRes for boxes: D area = w*h, D ids 1..n in file order, iscrowd = 0.
  An empty results list (pycocotools crashes on it) is defined as "no
  detections anywhere", evaluated by the same algorithm.
- G "ignore" = iscrowd (absent iscrowd = 0; a G's own "ignore" field is
  overwritten, as in _prepare). G of one (image, category) keep file order.
  As in createIndex + loadAnns, G are looked up by id, so with duplicate G
  ids the last annotation of that id stands in for all of them.
- IoU (computeIoU + bbIou): D sorted by descending score with a stable sort,
  kept up to 100; the G/D areas for IoU are w*h of the boxes; the
  intersection w = min(x+w) - max(x), h likewise, 0 when w <= 0 or h <= 0;
  union = da + ga - i, or da for a crowd G.
- evaluateImg, per (category, area range, image): G outside the area range
  (by its "area" field, bounds inclusive) or crowd are ignored; G stably
  sorted with ignored last; greedy matching per IoU threshold t from
  iou = min(t, 1-1e-10): skip G already matched unless crowd, stop at the
  first ignored G once a non-ignored G is matched, skip G with IoU < best,
  else take it (so equal IoU: the later G wins). D matched to an ignored G is
  ignored; an unmatched D whose w*h is outside the area range is ignored.
  Matches store the G's id, so a G whose id is 0 reads as "unmatched" later
  (its D counts as a false positive; pycocotools' quirk).
- accumulate: per (category, area, maxDet), D of all images (each truncated
  to maxDet) are stably sorted by descending score; (image, category) pairs
  with neither G nor D are skipped, categories without a non-ignored G get
  -1; precision = tp / (tp + fp + np.spacing(1)), made non-increasing from
  the right, sampled at the recall thresholds with searchsorted(side='left')
  and 0 beyond the last detection.
- summarize: the 12 means over entries > -1 (-1 when there are none).

Exact threshold values (np.linspace, as pycocotools): iouThrs[8] is
0.8999999999999999, not 0.9; recThrs[i] is i*0.01 (float product), which
differs from i/100 for i in 35 41 47 57 69 70 82 83 94 95 (e.g. recThrs[35]
is 0.35000000000000003).
"""

import json
import sys

import numpy as np

IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
REC_THRS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = [1, 10, 100]
AREA_RNG = [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]]
AREA_LBL = ['all', 'small', 'medium', 'large']

# (ap, iouThr, areaLbl, maxDets) of summarize()'s 12 lines, in order
SUMMARY = [
    (1, None, 'all', 100), (1, .5, 'all', 100), (1, .75, 'all', 100),
    (1, None, 'small', 100), (1, None, 'medium', 100), (1, None, 'large', 100),
    (0, None, 'all', 1), (0, None, 'all', 10), (0, None, 'all', 100),
    (0, None, 'small', 100), (0, None, 'medium', 100), (0, None, 'large', 100),
]


def _box_iou(dboxes, gboxes, crowd):
    """IoU matrix [D, G] of [x, y, w, h] boxes, as maskApi.c's bbIou."""
    d = np.asarray(dboxes, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gboxes, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(d), len(g)))
    for j in range(len(g)):
        gx, gy, gw, gh = g[j]
        ga = gw * gh
        for i in range(len(d)):
            dx, dy, dw, dh = d[i]
            da = dw * dh
            w = min(dw + dx, gw + gx) - max(dx, gx)
            if w <= 0:
                continue
            h = min(dh + dy, gh + gy) - max(dy, gy)
            if h <= 0:
                continue
            inter = w * h
            union = da if crowd[j] else da + ga - inter
            out[i, j] = inter / union
    return out


def _prepare(gt, dets):
    """Group G and D by (image, category), as COCO/loadRes/_prepare do."""
    img_ids = [int(x) for x in np.unique([im['id'] for im in gt.get('images', [])])]
    cat_ids = [int(x) for x in np.unique([c['id'] for c in gt.get('categories', [])])]
    img_set, cat_set = set(img_ids), set(cat_ids)

    # loadRes
    if not isinstance(dets, list):
        raise ValueError('results in not an array of objects')
    bad = {d['image_id'] for d in dets} - img_set
    if bad:
        raise ValueError('Results do not correspond to current coco set '
                         '(unknown image ids %s)' % sorted(bad)[:5])
    res = []
    for n, d in enumerate(dets):
        bb = [float(v) for v in d['bbox']]
        res.append({'id': n + 1, 'image_id': d['image_id'],
                    'category_id': d['category_id'], 'bbox': bb,
                    'area': bb[2] * bb[3], 'iscrowd': 0,
                    'score': float(d['score'])})

    # getAnnIds(imgIds, catIds) + loadAnns for the gt
    anns = gt.get('annotations', [])
    by_id = {}
    img_to_anns = {}
    for a in anns:
        by_id[a['id']] = a
        img_to_anns.setdefault(a['image_id'], []).append(a)
    gts = {}
    for im in img_ids:
        for a in img_to_anns.get(im, []):
            if a['category_id'] not in cat_set:
                continue
            a = by_id[a['id']]
            crowd = int(a.get('iscrowd', 0))
            g = {'id': a['id'], 'bbox': [float(v) for v in a['bbox']],
                 'area': float(a['area']), 'iscrowd': crowd,
                 'ignore': 1 if crowd else 0}
            gts.setdefault((a['image_id'], a['category_id']), []).append(g)
    dts = {}
    for d in res:
        if d['category_id'] in cat_set:
            dts.setdefault((d['image_id'], d['category_id']), []).append(d)
    return img_ids, cat_ids, gts, dts


def _evaluate_img(gt, dt, ious, a_rng, max_det):
    """Per (image, category, area range) matching; None if no G and no D."""
    if len(gt) == 0 and len(dt) == 0:
        return None
    g_ig = [1 if (g['ignore'] or g['area'] < a_rng[0] or g['area'] > a_rng[1]) else 0
            for g in gt]
    gtind = np.argsort(g_ig, kind='mergesort')
    gt = [gt[i] for i in gtind]
    g_ig = np.array([g_ig[i] for i in gtind])
    dtind = np.argsort([-d['score'] for d in dt], kind='mergesort')
    dt = [dt[i] for i in dtind[0:max_det]]
    crowd = [g['iscrowd'] for g in gt]
    if len(ious) > 0:
        ious = ious[:, gtind]
    T, G, D = len(IOU_THRS), len(gt), len(dt)
    gtm = np.zeros((T, G))
    dtm = np.zeros((T, D))
    dt_ig = np.zeros((T, D))
    if len(ious) > 0:
        for ti, t in enumerate(IOU_THRS):
            for di, d in enumerate(dt):
                best = min([t, 1 - 1e-10])
                m = -1
                for gi in range(G):
                    if gtm[ti, gi] > 0 and not crowd[gi]:
                        continue
                    if m > -1 and g_ig[m] == 0 and g_ig[gi] == 1:
                        break
                    if ious[di, gi] < best:
                        continue
                    best = ious[di, gi]
                    m = gi
                if m == -1:
                    continue
                dt_ig[ti, di] = g_ig[m]
                dtm[ti, di] = gt[m]['id']
                gtm[ti, m] = d['id']
    out_rng = np.array([d['area'] < a_rng[0] or d['area'] > a_rng[1]
                        for d in dt]).reshape((1, D))
    dt_ig = np.logical_or(dt_ig, np.logical_and(dtm == 0, np.repeat(out_rng, T, 0)))
    return {'dtMatches': dtm, 'dtScores': [d['score'] for d in dt],
            'gtIgnore': g_ig, 'dtIgnore': dt_ig}


def _accumulate(eval_imgs, K, A, I):
    T, R, M = len(IOU_THRS), len(REC_THRS), len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k in range(K):
        for a in range(A):
            for m, max_det in enumerate(MAX_DETS):
                E = [eval_imgs[k * A * I + a * I + i] for i in range(I)]
                E = [e for e in E if e is not None]
                if len(E) == 0:
                    continue
                scores = np.concatenate([np.asarray(e['dtScores'][0:max_det], dtype=np.float64)
                                         for e in E])
                inds = np.argsort(-scores, kind='mergesort')
                dtm = np.concatenate([e['dtMatches'][:, 0:max_det] for e in E], axis=1)[:, inds]
                dt_ig = np.concatenate([e['dtIgnore'][:, 0:max_det] for e in E], axis=1)[:, inds]
                g_ig = np.concatenate([e['gtIgnore'] for e in E])
                npig = np.count_nonzero(g_ig == 0)
                if npig == 0:
                    continue
                tps = np.logical_and(dtm, np.logical_not(dt_ig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
                tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    nd = len(tp)
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    # non-increasing envelope, right to left
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
                    q = np.zeros((R,))
                    ri = np.searchsorted(rc, REC_THRS, side='left')
                    ok = ri < nd      # beyond the last detection: 0
                    q[ok] = pr[ri[ok]]
                    # pycocotools stops at the first out-of-range index; the
                    # indices are non-decreasing, so "ok" is a prefix as well
                    precision[t, :, k, a, m] = q
    return precision, recall


def _summarize(precision, recall):
    stats = np.zeros((12,))
    for n, (ap, thr, lbl, md) in enumerate(SUMMARY):
        aind = [i for i, l in enumerate(AREA_LBL) if l == lbl]
        mind = [i for i, v in enumerate(MAX_DETS) if v == md]
        if ap == 1:
            s = precision
            if thr is not None:
                s = s[np.where(thr == IOU_THRS)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = recall
            if thr is not None:
                s = s[np.where(thr == IOU_THRS)[0]]
            s = s[:, :, aind, mind]
        stats[n] = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    return stats


def evaluate_full(gt, dets):
    """Returns (stats[12], precision[T,R,K,A,M], recall[T,K,A,M])."""
    img_ids, cat_ids, gts, dts = _prepare(gt, dets)
    max_det = MAX_DETS[-1]
    ious = {}
    for im in img_ids:
        for c in cat_ids:
            g = gts.get((im, c), [])
            d = dts.get((im, c), [])
            if len(g) == 0 and len(d) == 0:
                ious[im, c] = []
                continue
            order = np.argsort([-x['score'] for x in d], kind='mergesort')
            d = [d[i] for i in order][0:max_det]
            if len(g) == 0 or len(d) == 0:
                ious[im, c] = []       # maskUtils.iou returns [] then
            else:
                ious[im, c] = _box_iou([x['bbox'] for x in d], [x['bbox'] for x in g],
                                       [x['iscrowd'] for x in g])
    eval_imgs = [_evaluate_img(gts.get((im, c), []), dts.get((im, c), []),
                               ious[im, c], a_rng, max_det)
                 for c in cat_ids for a_rng in AREA_RNG for im in img_ids]
    precision, recall = _accumulate(eval_imgs, len(cat_ids), len(AREA_RNG), len(img_ids))
    return _summarize(precision, recall), precision, recall


def evaluate(gt, dets):
    """The 12 COCOeval.stats (float64) of box detections `dets` (a COCO
    results list) against the COCO instances dict `gt`."""
    return evaluate_full(gt, dets)[0]


def format_stats(stats):
    lines = []
    for v, (ap, thr, lbl, md) in zip(stats, SUMMARY):
        title = 'Average Precision' if ap == 1 else 'Average Recall'
        kind = '(AP)' if ap == 1 else '(AR)'
        iou = ('{:0.2f}:{:0.2f}'.format(IOU_THRS[0], IOU_THRS[-1])
               if thr is None else '{:0.2f}'.format(thr))
        lines.append(' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
                     .format(title, kind, iou, lbl, md, v))
    return '\n'.join(lines)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write('usage: %s GT.json DETS.json\n' % argv[0])
        return 2
    with open(argv[1]) as f:
        gt = json.load(f)
    with open(argv[2]) as f:
        dets = json.load(f)
    print(format_stats(evaluate(gt, dets)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
