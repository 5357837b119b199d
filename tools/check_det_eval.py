#!/usr/bin/python3
"""check_det_eval.py - `kdcam eval` against the NumPy reference of
pycocotools' box evaluation (tools/coco_eval_ref.py) on detection results.

    /usr/bin/python3 tools/check_det_eval.py [--kdcam build/kdcam] INSTANCES.json RESULTS.json...

For each results file (a COCO results list, e.g. the results.json that
`kdcam detect --coco INSTANCES.json -o DIR` writes), runs `kdcam eval --json
INSTANCES.json RESULTS.json` and coco_eval_ref.evaluate on the same files,
and prints AP@[.5:.95], AP50 and the largest difference over the 12 summary
numbers. Exit status 1 if any difference exceeds --tol (default 1e-6, the
bound of issue 13). Needs numpy only.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coco_eval_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kdcam", default="build/kdcam")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("instances")
    ap.add_argument("results", nargs="+")
    args = ap.parse_args()
    with open(args.instances) as f:
        gt = json.load(f)
    worst_all = 0.0
    for res in args.results:
        out = subprocess.run([args.kdcam, "eval", "--json", args.instances, res], check=True,
                             capture_output=True, text=True).stdout
        ours = json.loads(out)["stats"]
        with open(res) as f:
            dets = json.load(f)
        ref = coco_eval_ref.evaluate(gt, dets)
        worst = max(abs(float(a) - float(b)) for a, b in zip(ours, ref))
        worst_all = max(worst_all, worst)
        print("%s: %d detections  AP %.6f (reference %.6f)  AP50 %.6f (reference %.6f)  "
              "largest difference of the 12 numbers %.3g" % (
                  res, len(dets), ours[0], ref[0], ours[1], ref[1], worst))
    return 1 if worst_all > args.tol else 0


if __name__ == "__main__":
    sys.exit(main())
