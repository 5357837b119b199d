#!/bin/sh
# compare_builds.sh - is this tree's kdcam bitwise the same as another
# commit's? For every model fixture in tests/fixtures (models/, grad/, fpn/,
# cam/: every architecture, both FPN layouts), the seeded weights of the
# fixture (kdc-genweights SCHEME SEED CLASSES) and a seeded input of the
# fixture's N x 3 x H x W are run by both builds through `kdcam dump` of
# every layer, with --grad (classifiers: every layer's gradient of each
# image's top-1 logit; detectors: the default --level energy and every
# layer up to it), and the .npy files are compared with cmp. Each model
# runs under several kernel / thread settings (KDC_CMP_RUNS, default
# "auto:1 auto:3 scalar:2"); KDC_CMP_FIXTURES narrows the fixture files
# (shell patterns, default all of them).
#
# usage: tools/compare_builds.sh [REV]      (default REV: 69b959f)
#   The other build is a git worktree of REV in /tmp/kdcam_cmp_REV (made if
#   missing, built with make -j2); this tree is built with make -j2 too.
#   Needs python3 (standard library only) to read fixture metadata and
#   write the input arrays. Exit 0: every file equal; 1: a difference.
set -eu
cd "$(dirname "$0")/.."
REV=${1:-69b959f}
RUNS=${KDC_CMP_RUNS:-"auto:1 auto:3 scalar:2"}
PY=${PYTHON:-python3}
OLD=/tmp/kdcam_cmp_$(echo "$REV" | tr -c 'A-Za-z0-9_.\n-' _)
if [ ! -d "$OLD" ]; then
    git worktree add --detach "$OLD" "$REV" >/dev/null
fi
make -s -C "$OLD" -j2 build/kdcam build/kdc-genweights >/dev/null
make -s -j2 build/kdcam build/kdc-genweights >/dev/null
A="$OLD/build/kdcam"
B="$PWD/build/kdcam"
GENW="$PWD/build/kdc-genweights"
T=$(mktemp -d /tmp/kdcam_cmp_run_XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM

fail=0
files=0
models=0
FIXTURES=${KDC_CMP_FIXTURES:-"tests/fixtures/models/*.safetensors \
    tests/fixtures/grad/*.safetensors tests/fixtures/fpn/*.safetensors \
    tests/fixtures/cam/model.safetensors"}
# shellcheck disable=SC2086 # FIXTURES is a list of patterns
for fx in $FIXTURES; do
    # scheme seed classes n h w (or nothing: not a model fixture)
    meta=$("$PY" - "$fx" "$T/input.npy" <<'EOF'
import json, random, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
m = json.loads(raw[8:8 + n]).get("__metadata__", {})
if "scheme" not in m or "n" not in m:
    sys.exit(0)
N, H, W = int(m["n"]), int(m["h"]), int(m["w"])
classes = int(m.get("num_classes", "1"))
rng = random.Random(int(m["seed"]) * 7919 + N * H * W)
count = N * 3 * H * W
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 3, %d, %d), }" % (N, H, W)
hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
with open(sys.argv[2], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    f.write(struct.pack("<%df" % count, *(rng.uniform(-2.0, 2.0) for _ in range(count))))
print(m["scheme"], m["seed"], classes, N, H, W)
EOF
)
    [ -n "$meta" ] || continue
    set -- $meta
    scheme=$1 seed=$2 classes=$3
    "$GENW" "$scheme" "$T/w.safetensors" "$seed" "$classes"
    # every layer, by name; detectors: the layers up to the default level
    "$B" layers -w "$T/w.safetensors" > "$T/all.idx"
    awk 'NR > 1 { print $2 }' "$T/all.idx" > "$T/all"
    level=$(awk 'NR > 1 && ($2 == "fpn.p3" || / fpn\.p3[,)]/) { print $1; exit }' "$T/all.idx")
    if [ -n "$level" ]; then
        awk -v L="$level" 'NR > 1 && $1 <= L { print $2 }' "$T/all.idx" > "$T/grad"
    else
        cp "$T/all" "$T/grad"
    fi
    models=$((models + 1))
    for run in $RUNS; do
        kern=${run%:*} thr=${run#*:}
        for side in a b; do
            if [ $side = a ]; then bin=$A; else bin=$B; fi
            rm -rf "$T/$side" && mkdir -p "$T/$side"
            # activations of every layer, then gradients (all, or up to the level)
            # shellcheck disable=SC2046 # one --layer per line of the lists
            "$bin" dump -w "$T/w.safetensors" --kernels "$kern" -t "$thr" -o "$T/$side/act" \
                --input-npy "$T/input.npy" $(sed 's/^/-l /' "$T/all") >/dev/null
            # shellcheck disable=SC2046
            "$bin" dump -w "$T/w.safetensors" --kernels "$kern" -t "$thr" -o "$T/$side/grad" \
                --grad --input-npy "$T/input.npy" $(sed 's/^/-l /' "$T/grad") >/dev/null
        done
        n=0
        for f in "$T"/a/*/*.npy; do
            g="$T/b/${f#"$T"/a/}"
            n=$((n + 1))
            if ! cmp -s "$f" "$g"; then
                echo "DIFFERENT: $fx ($scheme, kernels $kern, threads $thr): ${f#"$T"/a/}"
                fail=1
            fi
        done
        nb=$(find "$T/b" -name '*.npy' | wc -l)
        if [ "$nb" -ne "$n" ]; then
            echo "DIFFERENT: $fx ($scheme, kernels $kern, threads $thr): $n files vs $nb"
            fail=1
        fi
        files=$((files + n))
        echo "$fx: $scheme seed $seed, $4x3x$5x$6, kernels $kern, threads $thr: $n files compared"
    done
done
echo "compare_builds: $models models, $files .npy files, $REV vs this tree: \
$([ $fail = 0 ] && echo "all bitwise identical" || echo "DIFFERENCES")"
exit $fail
