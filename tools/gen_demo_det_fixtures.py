#!/usr/bin/python3
"""gen_demo_det_fixtures.py - tests/fixtures/demo_detect/: what PyTorch
computes with the bundled demo detectors (tools/train_detectors.py's four
RetinaNets, their real trained weights) on held-out images of the detection
shapes set, for tests/test_demo_detect.c.

    /usr/bin/python3 tools/gen_demo_det_fixtures.py [WEIGHTS_DIR] [OUT_DIR]

WEIGHTS_DIR defaults to weights/demo, OUT_DIR to tests/fixtures/demo_detect;
run it from the repository root after `make` (it renders the images with
build/kdcam, or $KDCAM). Needs torch 1.13 / torchvision 0.14 and NumPy;
deterministic: the output is the same on every run with those versions and
weights. Neither `make test` nor `make demo` runs it: its outputs are
committed, and regenerated whenever the demo detectors are retrained.

What it computes, per detector file (train_detectors.FILES):
  - the images: `kdcam shapes --detection --seed 103 --size 256` (the
    held-out seed of train_detectors.py; the test renders the same pixels
    with kdc_shapes_render_detection and checks them against the FNV-1a
    hash in cases.txt), normalised as kdc_preprocess_detection does for
    the file's layout, in float32 with the same operations
    ((pixel * scale - mean) / std; torchvision layout: scale 1/255, ImageNet
    mean and std; mmdetection layout: scale 1, mean 123.675, 116.28, 103.53,
    std 58.395, 57.12, 57.375); 256 x 256 is not resized (the files' own
    kdcam.detect "short=256 max=256") nor padded (a multiple of 32).
  - the head outputs: train_detectors.Detector of the file's layout and
    topology (widths read from the tensors), its weights loaded from the
    same F16 file as float32 (every tensor used, none missing), eval mode
    (BatchNorm2d with eps 1e-5, as trained), float32.
  - the detections, with each framework's default test settings and the
    file's anchors (kdcam.detect's anchor=N, else 32, as kdc_detect reads
    it: torchvision's AnchorGenerator sizes (x, int(x 2^(1/3)),
    int(x 2^(2/3))), x = N 2^(L-3); mmdetection's octave_base_scale N / 8):
    torchvision layout: tools/gen_detect_fixtures.py's tv_run, torchvision
    0.14's own RetinaNet postprocess_detections and transform.postprocess
    (score 0.05, topk_candidates 1000, NMS 0.5, 300 detections) with the
    level, anchor and cell of each detection; mmdetection layout:
    tools/mmdet_retina_ref.py's detect (mmdetection 2.x RetinaHead test
    mode: score 0.05, nms_pre 1000, NMS 0.5, 100 detections).

Files:
  cases.txt                    "STEM INDEX FNV1A64": detector file stem,
                               held-out image index and the FNV-1a hash
                               (hex) of its RGB bytes, per image tested
  STEM_INDEX.txt               the detections of that image in the
                               reference's order with score >= LIST_MIN,
                               one per line, "x0 y0 x1 y1 score label level
                               anchor y x" (as tests/fixtures/detect/)
  STEM_INDEX_cls_p5.npy        float32 (1, A*K, 8, 8) P5 class logits
                               (teacher and the mmdetection student, their
                               first image: the head activations themselves)

The test compares the detections with score >= 0.1 (CUT); LIST_MIN (0.09)
lists a margin below it, so that a detection one side puts just above the
cut and the other just below is still compared. Images: per detector, the
first NDET held-out images with a detection scored >= CUT on which the
reference is stable. Stable: perturbing every logit and box delta by up to
PERTURB (uniform, independent; some ten times the largest logit difference
between libkdcam and PyTorch on these models, whose scores agree within
1e-6 relative) in each of TRIALS draws leaves the identities and order of
the compared detections as the test accepts them (near-ties within 1e-5
relative in either order). An image that fails, a suppression decided by a last-bit
IoU or score difference, would test rounding rather than the library; the
generator says which it skipped and why.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection.anchor_utils import AnchorGenerator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_detect_fixtures as gd  # noqa: E402
import kdcgen  # noqa: E402
import mmdet_retina_ref as mmref  # noqa: E402
import train_detectors as td  # noqa: E402

F32 = np.float32
SEED = 103          # train_detectors.py's held-out set
NDET = 3            # images per detector
NCAND = 20          # held-out images 0..NCAND-1 are the candidates
CUT = 0.1           # the test compares detections scored at least this
LIST_MIN = 0.09     # listed down to this
TIE = 1e-5          # relative score gap under which either order is accepted
PERTURB = 1e-5      # stability check: |noise| on logits and deltas
TRIALS = 4
LEVELS = gd.LEVELS
SIZE = td.SIZE
ACT_FILES = ("teacher", "vanilla")  # P5 logits stored for these

TV_NORM = (F32(1.0 / 255.0), np.array(td.MEAN, F32), np.array(td.STD, F32))
MM_NORM = (F32(1.0), np.array((123.675, 116.28, 103.53), F32),
           np.array((58.395, 57.12, 57.375), F32))


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def normalise(rgb, layout):
    """H x W x 3 uint8 -> 1 x 3 x H x W float32, as kdc_preprocess_detection."""
    scale, mean, std = TV_NORM if layout == "tv" else MM_NORM
    x = (rgb.astype(F32) * scale - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))


def load_detector(path, kind):
    """The file's Detector in float32 (kdcgen's reader: the file may also
    hold BatchNorm's int64 num_batches_tracked, which the model ignores) and
    its P3 anchor size: kdcam.detect's anchor=N, else 32 (both frameworks'
    default), as kdc_detect takes it."""
    arrays, meta = kdcgen.read_safetensors(path)
    sd = {k: torch.from_numpy(v.astype(np.int64 if v.dtype == np.int64 else F32))
          for k, v in arrays.items()}
    layout = "mm" if kind == "vanilla" else "tv"
    conv1 = sd["backbone.conv1.weight" if layout == "mm" else "backbone.body.conv1.weight"]
    lat = sd["neck.lateral_convs.0.conv.weight" if layout == "mm"
             else "backbone.fpn.inner_blocks.0.0.weight"]
    model = td.make(kind, argparse.Namespace(width=conv1.shape[0], fpn=lat.shape[0]))
    assert model.layout == layout
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    assert not missing and not unexpected, (path, missing, unexpected)
    anchor = 32
    for kv in meta.get("kdcam.detect", "").split():
        if kv.startswith("anchor="):
            anchor = int(kv[len("anchor="):])
    return model.eval(), anchor


def reference(layout, anchor, tv, cls, reg):
    """Detections (box, score, label, level, anchor, y, x) of one image; tv:
    gen_detect_fixtures.tv_model's RetinaNet, its anchors set here."""
    hw = (SIZE, SIZE)
    if layout == "tv":
        x = [anchor << li for li in range(len(LEVELS))]
        tv.anchor_generator = AnchorGenerator(
            tuple((s, int(s * 2.0 ** (1.0 / 3)), int(s * 2.0 ** (2.0 / 3))) for s in x),
            ((0.5, 1.0, 2.0),) * len(LEVELS))
        return gd.tv_run(tv, cls, reg, td.K, hw, hw, hw, gd.level_sizes(hw))
    return mmref.detect(cls, reg, LEVELS, hw, hw, hw,
                        dict(max_per_img=100, octave_base_scale=anchor / 8))


def ident(d):
    return (d[2], d[3], d[4], d[5], d[6])


def agrees(ref, got):
    """What the test accepts, on identities and order only (ref: the listed
    reference, got: a full list): every detection either list scores >= CUT
    is at the same place in the other, except that runs of reference scores
    within TIE relative of the next may come in any order."""
    n = max(sum(1 for d in ref if d[1] >= CUT), sum(1 for d in got if d[1] >= CUT))
    if n > min(len(ref), len(got)):
        return False
    g0 = 0
    while g0 < n:
        g1 = g0 + 1
        while g1 < len(ref) and ref[g1 - 1][1] - ref[g1][1] <= TIE * ref[g1 - 1][1]:
            g1 += 1
        want = [ident(d) for d in ref[g0:g1]]
        if any(ident(d) not in want for d in got[g0:min(g1, n)]):
            return False
        g0 = g1
    return True


def stable(layout, anchor, tv, cls, reg, ref, rng):
    for _ in range(TRIALS):
        pc = [c + rng.uniform(-PERTURB, PERTURB, c.shape).astype(F32) for c in cls]
        pr = [r + rng.uniform(-PERTURB, PERTURB, r.shape).astype(F32) for r in reg]
        if not agrees(ref, reference(layout, anchor, tv, pc, pr)):
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="?", default="weights/demo")
    ap.add_argument("out", nargs="?", default="tests/fixtures/demo_detect")
    args = ap.parse_args()
    torch.set_num_threads(2)
    kdcam = os.environ.get("KDCAM", "build/kdcam")
    os.makedirs(args.out, exist_ok=True)
    stems = [f[:-len(".safetensors")] for f in td.FILES.values()]
    for n in os.listdir(args.out):  # a previous run's choice of images
        if n == "cases.txt" or any(n.startswith(s + "_") for s in stems):
            os.remove(os.path.join(args.out, n))
    tv = gd.tv_model(td.K)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([kdcam, "shapes", "--detection", "-n", str(NCAND), "--seed", str(SEED),
                        "--size", str(SIZE), "-o", tmp], check=True, stdout=subprocess.DEVNULL)
        images = [np.asarray(Image.open(os.path.join(tmp, "%06d.png" % i)).convert("RGB"))
                  for i in range(NCAND)]
    cases = []
    for kind, fname in td.FILES.items():
        stem = fname[:-len(".safetensors")]
        model, anchor = load_detector(os.path.join(args.weights, fname), kind)
        rng = np.random.RandomState(sum(map(ord, kind)))
        chosen = []
        for i in range(NCAND):
            with torch.no_grad():
                _, cls, reg = model(normalise(images[i], model.layout))
            cls = [c.numpy() for c in cls]
            reg = [r.numpy() for r in reg]
            dets = reference(model.layout, anchor, tv, cls, reg)
            if not dets or dets[0][1] < CUT:
                print("%s: image %d skipped: no detection scored >= %g" % (stem, i, CUT))
                continue
            listed = [d for d in dets if d[1] >= LIST_MIN]
            if not stable(model.layout, anchor, tv, cls, reg, listed, rng):
                print("%s: image %d skipped: its detections change under perturbations of %g"
                      % (stem, i, PERTURB))
                continue
            with open(os.path.join(args.out, "%s_%d.txt" % (stem, i)), "w") as f:
                for d in listed:
                    f.write(mmref.format_detection(d) + "\n")
            if kind in ACT_FILES and not chosen:
                np.save(os.path.join(args.out, "%s_%d_cls_p5.npy" % (stem, i)),
                        cls[LEVELS.index(5)])
            print("%s: image %d: %d detections, %d scored >= %g (best %.4f)" % (
                stem, i, len(dets), sum(1 for d in dets if d[1] >= CUT), CUT, dets[0][1]))
            chosen.append(i)
            cases.append("%s %d %016x" % (stem, i, fnv1a64(images[i].tobytes())))
            if len(chosen) == NDET:
                break
        else:
            raise SystemExit("%s: only %d stable images of %d" % (stem, len(chosen), NCAND))
    with open(os.path.join(args.out, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    size = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print("%s: %d bytes" % (args.out, size))


if __name__ == "__main__":
    main()
