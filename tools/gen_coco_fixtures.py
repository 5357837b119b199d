#!/usr/bin/env python3
"""gen_coco_fixtures.py - fixtures of tests/test_coco.c (kdc_coco_eval_bbox).

Run from the repository root with Debian's Python (numpy only):

    /usr/bin/python3 tools/gen_coco_fixtures.py

Writes tests/fixtures/coco/<case>/ for every case:
  gt.json        COCO instances: images, annotations (id, image_id,
                 category_id, bbox [x,y,w,h], area, iscrowd), categories
  dets.json      COCO results list: image_id, category_id, bbox, score
  expected.txt   the 12 COCOeval stats from tools/coco_eval_ref.py, one per
                 line, repr() (full double precision), summarize() order:
                 AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl

Cases:
  tiny     1 image, 1 category, 2 gts, 3 dets; checked by hand below
  mixed    12 images (non-sorted, non-contiguous ids; 2 without gt),
           categories 1 3 7 12 (12 has no gt), small/medium/large gts, "area"
           differing from w*h for many, gts of area exactly 32**2 and 96**2,
           overlapping objects, jittered / duplicate / false-positive /
           wrong-class dets, scores on a 0.01 grid (exact ties, in and across
           images), image 8 with 130 dets of category 1 (maxDets truncation
           at a score tie), non-integer coordinates, a zero-width det, and a
           gt and a det of category 99 (not in "categories": dropped)
  perfect  mixed's gts, every gt repeated as a det with score 1
  nodets   mixed's gts, empty results list (defined as no detections)
  crowd    iscrowd=1 regions with several dets inside, plus normal gts
  zeroid   a gt whose "id" is 0 (its match counts as a false positive, as in
           pycocotools) and a gt without "iscrowd" (counts as 0)
  nogt     images and categories, no annotations, some dets: all -1

Everything is deterministic (numpy Generator, fixed seeds).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coco_eval_ref as ref  # noqa: E402

OUT = os.path.join("tests", "fixtures", "coco")
IMG_W, IMG_H = 640, 480


def r2(v):
    return round(float(v), 2)


# ---------------------------------------------------------------- writing

def dump_list(items, f):
    """One JSON object per line (small diffs, readable)."""
    f.write("[\n")
    for n, it in enumerate(items):
        f.write("  " + json.dumps(it, separators=(",", ":")))
        f.write(",\n" if n + 1 < len(items) else "\n")
    f.write("]")


def write_case(name, gt, dets):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "gt.json"), "w") as f:
        f.write("{\n\"images\": ")
        dump_list(gt["images"], f)
        f.write(",\n\"annotations\": ")
        dump_list(gt["annotations"], f)
        f.write(",\n\"categories\": ")
        dump_list(gt["categories"], f)
        f.write("\n}\n")
    with open(os.path.join(d, "dets.json"), "w") as f:
        dump_list(dets, f)
        f.write("\n")
    # evaluate what was written (the floats as JSON gives them back)
    with open(os.path.join(d, "gt.json")) as f:
        gt2 = json.load(f)
    with open(os.path.join(d, "dets.json")) as f:
        dets2 = json.load(f)
    stats = ref.evaluate(gt2, dets2)
    with open(os.path.join(d, "expected.txt"), "w") as f:
        for v in stats:
            f.write(repr(float(v)) + "\n")
    return stats


def images(ids):
    return [{"id": i, "file_name": "%012d.jpg" % i, "width": IMG_W, "height": IMG_H}
            for i in ids]


# ---------------------------------------------------------------- tiny
#
# 1 image, category 1, gts A = [10,10,120,100] (area 12000, large) and
# B = [200,200,50,50] (area 2500, medium); dets by score:
#   d1 0.9 [10,10,120,92]  IoU(A) = 11040/12000 = 0.92     (w*h 11040, large)
#   d2 0.8 [400,400,30,30] no overlap, false positive       (w*h 900, small)
#   d3 0.7 [210,200,50,50] IoU(B) = 2000/(2500+2500-2000) = 2/3 (medium)
#
# AP@0.5 (stats[1]): d3 matches B, so in score order
#   tp = 1 1 2, fp = 0 1 1, recall = 1/2 1/2 1, precision = 1 1/2 2/3
#   (np.spacing(1) in the denominator: 1/(1+eps) = 1-2**-52, 2/3 exactly
#   as 2/(3+eps) rounds to 2/3's double), envelope from the right: 1 2/3 2/3.
#   recThrs 0.00..0.50 (51 values; 0.50 is exactly 0.5): searchsorted left
#   finds index 0 -> precision 1 (1-2**-52);
#   recThrs 0.51..1.00 (50 values): index 2 -> 2/3.
#   AP50 = (51 * 1 + 50 * 2/3) / 101 = 253/303 = 0.834983...
# AP@0.75 (stats[2]): d3 no longer matches: tp = 1 1 1, recall 1/2 stays;
#   thresholds up to 0.50 get 1, the rest lie past the last detection -> 0:
#   AP75 = 51/101 = 0.504950...
# AP (stats[0]): thresholds .50 .55 .60 .65 (<= 2/3) give 253/303, .70 to .90
#   (iouThrs[8] is 0.8999999999999999 <= 0.92) give 51/101, .95 gives 0:
#   AP = (4 * 253/303 + 5 * 51/101) / 10 = 1777/3030 = 0.586468...
# AR100 (stats[8]) = (4 * 1 + 5 * 1/2 + 0) / 10 = 0.65, AR10 the same,
#   AR1 (only d1) = 9 * 1/2 / 10 = 0.45.
# small: no gt -> -1 (AP and AR). medium: only B counts (A ignored; d1
#   matches ignored A -> ignored; d2 unmatched with w*h 900 outside ->
#   ignored), d3 is a hit for 4 thresholds, else a false positive: APm = ARm
#   = 0.4. large: only A; d1 hits at 9 thresholds (d3 matches ignored B or
#   is unmatched outside the range: ignored): APl = ARl = 0.9.
TINY_EXPECTED = [1777 / 3030, 253 / 303, 51 / 101, -1, 0.4, 0.9,
                 0.45, 0.65, 0.65, -1, 0.4, 0.9]


def case_tiny():
    gt = {"images": images([1]),
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 120, 100],
               "area": 12000, "iscrowd": 0},
              {"id": 2, "image_id": 1, "category_id": 1, "bbox": [200, 200, 50, 50],
               "area": 2500, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "thing"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [400, 400, 30, 30], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [10, 10, 120, 92], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [210, 200, 50, 50], "score": 0.7}]
    return gt, dets


# ---------------------------------------------------------------- mixed

MIXED_IMAGES = [17, 3, 42, 8, 25, 11, 30, 5, 60, 2, 19, 33]   # file order
MIXED_EMPTY = {60, 19}                                          # no gt
MIXED_BIG = 8                                                   # > 100 dets
MIXED_CATS = [(1, "person"), (3, "car"), (7, "dog"), (12, "kite")]


def rand_box(rng, cls):
    lo, hi = {"s": (4, 31), "m": (33, 95), "l": (98, 260)}[cls]
    w = rng.uniform(lo, hi)
    h = rng.uniform(lo, hi)
    if cls != "l":      # keep the product inside its class
        h = min(max(h, lo * lo / w + 0.5), hi * hi / w - 0.5)
        h = max(h, 1.0)
    x = rng.uniform(0, IMG_W - w)
    y = rng.uniform(0, IMG_H - h)
    return [r2(x), r2(y), r2(w), r2(h)]


def jitter(rng, b, s=0.08):
    x, y, w, h = b
    x = x + rng.normal(0, s * w)
    y = y + rng.normal(0, s * h)
    w = w * np.exp(rng.normal(0, s * 1.2))
    h = h * np.exp(rng.normal(0, s * 1.2))
    return [r2(x), r2(y), r2(max(w, 1)), r2(max(h, 1))]


def score(rng, lo, hi):
    return r2(rng.uniform(lo, hi))


def mixed_gt(rng):
    anns = []

    def add(im, cat, box, area=None, **kw):
        a = {"id": len(anns) + 1, "image_id": im, "category_id": cat, "bbox": box,
             "area": area if area is not None else box[2] * box[3], "iscrowd": 0}
        a.update(kw)
        anns.append(a)
        return a

    for im in MIXED_IMAGES:
        if im in MIXED_EMPTY:
            continue
        n = 10 if im == MIXED_BIG else int(rng.integers(3, 8))
        for _ in range(n):
            cat = 1 if im == MIXED_BIG else int(rng.choice([1, 3, 7]))
            cls = rng.choice(["s", "m", "l"], p=[0.4, 0.35, 0.25])
            box = rand_box(rng, cls)
            if rng.random() < 0.6:      # polygon area, smaller than the box
                area = round(box[2] * box[3] * rng.uniform(0.55, 0.95), 3)
            else:
                area = box[2] * box[3]
            add(im, cat, box, area)
            if rng.random() < 0.3:      # an overlapping neighbour
                x, y, w, h = box
                nb = [r2(x + w * rng.uniform(0.2, 0.4)), r2(y + h * rng.uniform(-0.3, 0.3)),
                      r2(w * rng.uniform(0.8, 1.2)), r2(h * rng.uniform(0.8, 1.2))]
                add(im, cat if rng.random() < 0.7 else int(rng.choice([1, 3, 7])), nb,
                    round(nb[2] * nb[3] * 0.8, 3))
    # exact area-range boundaries (both bounds are inclusive)
    add(3, 1, [100.5, 50.25, 32, 32], 1024)       # small and medium
    add(3, 1, [300, 200, 96, 96], 9216)           # medium and large
    add(25, 3, [20.5, 300.5, 40, 30], 1024.0)     # w*h 1200, "area" 1024
    # category 99 is not in "categories": dropped
    add(17, 99, [5, 5, 50, 50], 2500)
    return anns


def mixed_dets(rng, anns):
    dets = []

    def add(im, cat, box, s):
        dets.append({"image_id": im, "category_id": cat, "bbox": box, "score": s})

    for a in anns:
        if a["category_id"] == 99:
            continue
        im, cat, box = a["image_id"], a["category_id"], a["bbox"]
        if rng.random() < 0.85:
            add(im, cat, jitter(rng, box, 0.06 if rng.random() < 0.6 else 0.15),
                score(rng, 0.3, 1.0))
        if rng.random() < 0.25:         # duplicate, usually lower
            add(im, cat, jitter(rng, box, 0.1), score(rng, 0.2, 0.8))
        if rng.random() < 0.1:          # wrong class
            add(im, int(rng.choice([1, 3, 7, 12])), jitter(rng, box, 0.05),
                score(rng, 0.1, 0.6))
    for im in MIXED_IMAGES:             # false positives (also on empty images)
        for _ in range(int(rng.poisson(2))):
            cls = rng.choice(["s", "m", "l"])
            add(im, int(rng.choice([1, 3, 7, 12])), rand_box(rng, cls), score(rng, 0.05, 0.7))
    # image 8: 120 more category-1 dets near the gts or anywhere
    big = [a for a in anns if a["image_id"] == MIXED_BIG]
    for n in range(120):
        if n % 3 == 0:
            box = jitter(rng, big[n % len(big)]["bbox"], 0.3)
        else:
            box = rand_box(rng, rng.choice(["s", "m", "l"]))
        add(MIXED_BIG, 1, box, score(rng, 0.01, 0.99))
    # exact score ties: a hit and a miss with the same score, in one image and
    # across images
    g3 = [a for a in anns if a["image_id"] == 3 and a["category_id"] == 1][0]
    add(3, 1, jitter(rng, g3["bbox"], 0.02), 0.77)
    add(3, 1, [600.5, 10.5, 20, 20], 0.77)
    add(5, 1, [1.5, 400.5, 25, 25], 0.77)
    # a det of exactly 32x32 (both small and medium), a zero-width det,
    # a det of a category not in "categories" (dropped)
    add(30, 7, [500, 300, 32, 32], 0.66)
    add(11, 3, [50, 60, 0, 20], 0.5)
    add(17, 99, [5, 5, 50, 50], 0.95)
    # a score tie across image 8's maxDets=100 cut: an exact copy of one of its
    # gts, last in the file, with the score of the 100th det; the stable sort
    # keeps the earlier det and drops this hit
    sc = sorted((d["score"] for d in dets
                 if d["image_id"] == MIXED_BIG and d["category_id"] == 1), reverse=True)
    add(MIXED_BIG, 1, list(big[-1]["bbox"]), sc[99])
    return dets


def case_mixed():
    rng = np.random.default_rng(20240611)
    anns = mixed_gt(rng)
    dets = mixed_dets(rng, anns)
    gt = {"images": images(MIXED_IMAGES), "annotations": anns,
          "categories": [{"id": i, "name": n} for i, n in MIXED_CATS]}
    return gt, dets


# ---------------------------------------------------------------- crowd

def case_crowd():
    rng = np.random.default_rng(777)
    anns, dets = [], []

    def gt(im, cat, box, area, crowd):
        anns.append({"id": len(anns) + 1, "image_id": im, "category_id": cat,
                     "bbox": box, "area": area, "iscrowd": crowd})

    def det(im, cat, box, s):
        dets.append({"image_id": im, "category_id": cat, "bbox": box, "score": s})

    for im in (1, 2, 3, 4):
        # a crowd region (large on 1-3, medium on 4) ...
        if im < 4:
            cb = [r2(rng.uniform(20, 200)), r2(rng.uniform(20, 150)),
                  r2(rng.uniform(180, 300)), r2(rng.uniform(120, 250))]
        else:
            cb = [100.0, 100.0, 80.0, 60.0]
        gt(im, 1, cb, round(cb[2] * cb[3] * 0.6, 2), 1)
        # ... with normal people partly inside it
        people = []
        for _ in range(int(rng.integers(2, 5))):
            w, h = rng.uniform(15, 60), rng.uniform(30, 90)
            x = cb[0] + rng.uniform(-0.2, 0.9) * cb[2]
            y = cb[1] + rng.uniform(-0.2, 0.8) * cb[3]
            b = [r2(x), r2(y), r2(w), r2(h)]
            people.append(b)
            gt(im, 1, b, round(b[2] * b[3] * 0.7, 2), 0)
        # people and a bicycle outside
        b = [r2(rng.uniform(400, 500)), r2(rng.uniform(300, 350)), 60.25, 110.5]
        gt(im, 1, b, round(60.25 * 110.5 * 0.75, 2), 0)
        gt(im, 2, [r2(b[0] - 30), r2(b[1] + 40), 90.0, 70.0], 4000.0, 0)
        # dets: hits on the people (one a near duplicate), several small dets
        # wholly inside the crowd region (IoU with it = 1 -> ignored), dets
        # straddling a person and the crowd
        for b in people:
            det(im, 1, jitter(rng, b, 0.05), score(rng, 0.4, 1.0))
        det(im, 1, jitter(rng, people[0], 0.04), score(rng, 0.3, 0.9))
        for _ in range(4):
            w, h = rng.uniform(8, 30), rng.uniform(10, 40)
            det(im, 1, [r2(cb[0] + rng.uniform(0, cb[2] - w)),
                        r2(cb[1] + rng.uniform(0, cb[3] - h)), r2(w), r2(h)],
                score(rng, 0.2, 0.95))
        det(im, 1, [r2(cb[0] - 10), r2(cb[1] - 10), r2(cb[2] * 0.5), r2(cb[3] * 0.5)],
            score(rng, 0.2, 0.9))
        det(im, 1, jitter(rng, b, 0.05), score(rng, 0.5, 1.0))
        det(im, 2, [r2(b[0] - 28), r2(b[1] + 43), 88.0, 71.0], score(rng, 0.5, 1.0))
        det(im, 2, [r2(cb[0] + 5), r2(cb[1] + 5), 30.0, 30.0], score(rng, 0.1, 0.5))
    # a whole-image crowd of bicycles on image 5, with a bicycle inside it
    gt(5, 2, [0, 0, 640, 480], 200000.0, 1)
    gt(5, 2, [300, 200, 120, 90], 10000.0, 0)
    det(5, 2, [302, 198, 120, 94], 0.9)
    det(5, 2, [305, 205, 120, 90], 0.85)   # duplicate: falls to the crowd
    det(5, 2, [10, 10, 50, 50], 0.8)
    gt_d = {"images": images([1, 2, 3, 4, 5]), "annotations": anns,
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}]}
    return gt_d, dets


# ---------------------------------------------------------------- zeroid

def case_zeroid():
    anns = [
        {"id": 0, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 80],
         "area": 8000, "iscrowd": 0},
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [200, 50, 60, 60],
         "area": 3600, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [30.5, 40.5, 20, 20],
         "area": 400},                                   # no "iscrowd"
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [100, 100, 150, 120],
         "area": 15000, "iscrowd": 0},
        {"id": 4, "image_id": 1, "category_id": 2, "bbox": [300, 300, 40, 40],
         "area": 1500, "iscrowd": 0},
    ]
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [11, 10, 100, 80], "score": 0.95},  # on id 0
        {"image_id": 1, "category_id": 1, "bbox": [202, 52, 60, 58], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [12, 12, 98, 78], "score": 0.6},    # dup of id 0
        {"image_id": 2, "category_id": 1, "bbox": [31, 41, 19, 20], "score": 0.8},
        {"image_id": 2, "category_id": 2, "bbox": [100, 105, 150, 115], "score": 0.7},
        {"image_id": 1, "category_id": 2, "bbox": [500, 10, 40, 40], "score": 0.75},
        {"image_id": 1, "category_id": 2, "bbox": [301, 299, 40, 41], "score": 0.5},
    ]
    gt = {"images": images([1, 2]), "annotations": anns,
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    return gt, dets


# ---------------------------------------------------------------- nogt

def case_nogt():
    rng = np.random.default_rng(99)
    dets = []
    for im in (4, 9, 1):
        for _ in range(3):
            dets.append({"image_id": im, "category_id": int(rng.choice([2, 5])),
                         "bbox": rand_box(rng, rng.choice(["s", "m", "l"])),
                         "score": score(rng, 0.1, 0.9)})
    gt = {"images": images([9, 4, 1]), "annotations": [],
          "categories": [{"id": 5, "name": "x"}, {"id": 2, "name": "y"}]}
    return gt, dets


# ---------------------------------------------------------------- main

def close(a, b, tol=1e-12):
    return abs(a - b) <= tol


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {}

    # hand check first: the reference itself
    assert ref.REC_THRS[50] == 0.5 and ref.IOU_THRS[8] == 0.8999999999999999
    gt, dets = case_tiny()
    s = write_case("tiny", gt, dets)
    assert all(close(a, b) for a, b in zip(s, TINY_EXPECTED)), (list(s), TINY_EXPECTED)
    results["tiny"] = s

    gt_m, dets_m = case_mixed()
    assert max(sum(1 for d in dets_m if d["image_id"] == MIXED_BIG and d["category_id"] == 1),
               0) > 100
    results["mixed"] = write_case("mixed", gt_m, dets_m)

    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "bbox": a["bbox"], "score": 1.0} for a in gt_m["annotations"]]
    s = write_case("perfect", gt_m, perfect)
    # every area range holds gts: AP (maxDets 100) and AR100 are 1 (up to the
    # np.spacing(1) in precision where a category has a single gt in a range)
    assert all(close(v, 1.0) for v in list(s[0:6]) + list(s[8:12])), list(s)
    assert 0 < s[6] <= s[7] <= 1.0 + 1e-12
    results["perfect"] = s

    s = write_case("nodets", gt_m, [])
    assert all(v == 0.0 for v in s), list(s)   # gts exist in every area range
    results["nodets"] = s

    for name, fn in (("crowd", case_crowd), ("zeroid", case_zeroid), ("nogt", case_nogt)):
        gt, dets = fn()
        results[name] = write_case(name, gt, dets)
    assert all(v == -1 for v in results["nogt"]), list(results["nogt"])

    total = 0
    for name, s in results.items():
        d = os.path.join(OUT, name)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        total += size
        print("%-8s %6d B  %s" % (name, size, " ".join("%.4f" % v for v in s)))
    print("total    %6d B" % total)
    assert total < 300 * 1024


if __name__ == "__main__":
    main()
