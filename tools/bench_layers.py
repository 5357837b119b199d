#!/usr/bin/env python3
"""bench_layers.py - layer by layer, is one kdcam build faster than another?

Runs `kdcam bench --layers` of each build in turn, ROUNDS times (A B A B
...), so that a busy machine weighs on all alike, and prints for each layer
the minimum over the rounds of each build's per-layer minima, then per
build the sum of those minima and the minimum and median of its whole-pass
minima. A layer present in only some builds' output (fused differently) is
left out of the table and the sums.

usage: tools/bench_layers.py WEIGHTS KDCAM_A KDCAM_B [...] [--rounds R]
       [--runs N] [--threads T] [-- EXTRA kdcam bench ARGUMENTS]

e.g. tools/bench_layers.py /tmp/resnet50.safetensors /tmp/old/kdcam
build/kdcam --rounds 5 -- --kernels avx2

Standard library only; the weights come from build/kdc-genweights.
"""
import argparse
import re
import statistics
import subprocess
import sys


def run_once(kdcam, weights, runs, threads, extra):
    out = subprocess.run([kdcam, "bench", "-w", weights, "--runs", str(runs), "--layers", "-t",
                          str(threads)] + extra, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    m = re.search(r"min ([0-9.]+) ms", lines[0])
    if not m:
        sys.exit("bench_layers: unexpected kdcam bench output: " + lines[0])
    layers = {}
    for line in lines[2:]:
        f = line.split()
        if len(f) >= 5 and f[0].isdigit():
            layers[f[1]] = float(f[3])
    return float(m.group(1)), layers


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser(description="interleaved per-layer minima of kdcam builds")
    ap.add_argument("weights")
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    best = {b: {} for b in a.builds}
    totals = {b: [] for b in a.builds}
    for _ in range(a.rounds):
        for b in a.builds:
            total, layers = run_once(b, a.weights, a.runs, a.threads, extra)
            totals[b].append(total)
            for name, ms in layers.items():
                best[b][name] = min(best[b].get(name, float("inf")), ms)
    first = a.builds[0]
    names = [n for n in best[first] if all(n in best[b] for b in a.builds)]
    print("%-24s %s" % ("layer", " ".join("%10s" % ("build %d" % i) for i in range(len(a.builds)))))
    for n in names:
        print("%-24s %s" % (n, " ".join("%10.3f" % best[b][n] for b in a.builds)))
    for i, b in enumerate(a.builds):
        print("build %d %s: layers' minima summed %.3f ms; whole pass min %.2f, median of "
              "minima %.2f ms" % (i, b, sum(best[b][n] for n in names), min(totals[b]),
                                  statistics.median(totals[b])))


if __name__ == "__main__":
    main()
