#!/bin/sh
# bench_threads.sh - thread scaling of `kdcam bench` forward (and guided)
# at 1, 2, 4, 8 and 16 threads for ResNet-50/101/152 and MobileNetV1
# (seeded weights, 224x224, batch 1): the many-core check of issue 15, meant
# for a machine with 16 or more cores (docs/performance.md, "Threads").
# Each (model, threads) cell is one `kdcam bench --runs RUNS` process; with
# a second binary (OLD_KDCAM) the two are interleaved cell by cell. Prints
# a table of medians (ms), the speed-up over 1 thread and, per model,
# whether 16 threads are slower than 8.
#
# usage: tools/bench_threads.sh [OLD_KDCAM]
#   RUNS (default 10), THREADS ("1 2 4 8 16"), MODELS ("resnet50 resnet101
#   resnet152 mobilenetv1"), TASKS ("forward"), JOBS (make -j, default 16)
#   from the environment. Builds build/kdcam and build/kdc-genweights first.
#   Needs python3 (standard library) for the table.
set -eu
cd "$(dirname "$0")/.."
OLD=${1:-}
RUNS=${RUNS:-10}
THREADS=${THREADS:-"1 2 4 8 16"}
MODELS=${MODELS:-"resnet50 resnet101 resnet152 mobilenetv1"}
TASKS=${TASKS:-forward}
PY=${PYTHON:-python3}
make -s -j"${JOBS:-16}" build/kdcam build/kdc-genweights >/dev/null
T=$(mktemp -d /tmp/kdcam_threads_XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs"
echo "new: build/kdcam${OLD:+; old: $OLD}; $RUNS runs per cell, 224x224, batch 1"
for model in $MODELS; do
    build/kdc-genweights "$model" "$T/$model.safetensors" 1 >/dev/null
    for task in $TASKS; do
        for t in $THREADS; do
            for side in new old; do
                if [ $side = new ]; then bin=build/kdcam; else bin=$OLD; fi
                [ -n "$bin" ] || continue
                printf '%s %s %s %s ' "$side" "$model" "$task" "$t" >> "$T/rows"
                "$bin" bench -w "$T/$model.safetensors" --task "$task" --runs "$RUNS" -t "$t" \
                    --json >> "$T/rows"
            done
        done
    done
    rm -f "$T/$model.safetensors"
done
"$PY" - "$T/rows" <<'PYEOF'
import json, sys
cells = {}
for line in open(sys.argv[1]):
    side, model, task, t, js = line.split(" ", 4)
    cells[(side, model, task, int(t))] = json.loads(js)
for side in ("new", "old"):
    keys = sorted({(m, k) for (s, m, k, _) in cells if s == side})
    if not keys:
        continue
    print("\n%s build: median ms (min) and speed-up over 1 thread" % side)
    for model, task in keys:
        ts = sorted(t for (s, m, k, t) in cells if (s, m, k) == (side, model, task))
        base = cells[(side, model, task, ts[0])]["median_ms"]
        row = ["%-11s %-7s" % (model, task)]
        for t in ts:
            c = cells[(side, model, task, t)]
            row.append("%2dt %8.2f (%8.2f) %5.2fx" % (t, c["median_ms"], c["min_ms"],
                                                      base / c["median_ms"]))
        print(" | ".join(row))
        if 8 in ts and 16 in ts:
            a, b = cells[(side, model, task, 8)]["median_ms"], cells[(side, model, task, 16)]["median_ms"]
            print("    16 threads vs 8: %.2f x the time (%s)" % (b / a, "slower" if b > a else "not slower"))
PYEOF
