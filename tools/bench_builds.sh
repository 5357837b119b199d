#!/bin/sh
# bench_builds.sh - is this tree's kdcam slower than another build's? Times
# `kdcam bench` forward and guided for ResNet-50 and MobileNetV1 (seeded
# weights, 224x224, batch 1), the two binaries interleaved A B A B ... so
# that a busy machine weighs on both alike: ROUNDS rounds, each one
# invocation of A then one of B, each invocation a warm-up and one timed
# run. Prints min and median of each and the ratios new / old (below 1:
# the new binary is faster).
#
# usage: tools/bench_builds.sh OLD_KDCAM [NEW_KDCAM]
#   NEW_KDCAM defaults to build/kdcam (built by make). ROUNDS (default 10),
#   RUNS (default 1), THREADS (default 1), MODELS ("resnet50 mobilenetv1")
#   and TASKS ("forward guided") come from the environment. Needs python3
#   (standard library) for the statistics.
set -eu
cd "$(dirname "$0")/.."
A=${1:?usage: tools/bench_builds.sh OLD_KDCAM [NEW_KDCAM]}
B=${2:-build/kdcam}
ROUNDS=${ROUNDS:-10}
RUNS=${RUNS:-1}
THREADS=${THREADS:-1}
PY=${PYTHON:-python3}
make -s -j2 build/kdcam build/kdc-genweights >/dev/null
T=$(mktemp -d /tmp/kdcam_bench_XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
build/kdc-genweights resnet50 "$T/resnet50.safetensors" 1
build/kdc-genweights mobilenetv1 "$T/mobilenetv1.safetensors" 1

echo "old: $A"
echo "new: $B"
echo "rounds $ROUNDS (A B interleaved), $RUNS timed runs each, threads $THREADS, 224x224, batch 1; ms"
for model in ${MODELS:-resnet50 mobilenetv1}; do
    for task in ${TASKS:-forward guided}; do
        : > "$T/a" && : > "$T/b"
        i=0
        while [ $i -lt "$ROUNDS" ]; do
            for side in a b; do
                if [ $side = a ]; then bin=$A; else bin=$B; fi
                "$bin" bench -w "$T/$model.safetensors" --task "$task" --runs "$RUNS" -t "$THREADS" \
                    --json >> "$T/$side"
            done
            i=$((i + 1))
        done
        "$PY" - "$model" "$task" "$T/a" "$T/b" <<'EOF'
import json, statistics, sys
model, task, fa, fb = sys.argv[1:]
def times(f):
    return [json.loads(l)["median_ms"] for l in open(f) if l.strip()]
a, b = times(fa), times(fb)
ma, mb = min(a), min(b)
da, db = statistics.median(a), statistics.median(b)
print("%-11s %-7s old min %8.2f median %8.2f | new min %8.2f median %8.2f | "
      "new/old min %.3f median %.3f" % (model, task, ma, da, mb, db, mb / ma, db / da))
EOF
    done
done
