#!/bin/sh
# make demo: the bundled demo models (weights/demo/, trained by
# tools/train_pairs.py) on held-out images of the procedural shapes dataset,
# whose object boxes are known. Two pairs, as on the DPK paper's figure page:
# a ResNet-101 teacher with MobileNetV1 students and with ResNet-50 students,
# each student trained three ways (vanilla, ICKD, DPK).
# Per pair: one figure per image in the seed's layout (rows Student, ICKD,
# DPK, Teacher; columns input, feature map, Grad-CAM, Guided Grad-CAM;
# kdcam compare), and a table scoring every model's Grad-CAM against the
# boxes beside the centre and best-fixed-point baselines (kdcam pointing).
# Ends with the dataset statistics of all seven models (kdcam analyze):
# each student's last-stage CKA against the teacher.
set -e
B=${1:-build}
K=$B/kdcam
W=${DEMO_WEIGHTS:-weights/demo}
D=$B/demo
N=${DEMO_IMAGES:-300}
THREADS=${DEMO_THREADS:-2}
T=$W/teacher-resnet101.safetensors

for f in teacher-resnet101 mobilenetv1-vanilla mobilenetv1-ickd mobilenetv1-dpk \
         resnet50-vanilla resnet50-ickd resnet50-dpk; do
    [ -f "$W/$f.safetensors" ] || { echo "demo: $W/$f.safetensors is missing" >&2; exit 1; }
done
rm -rf "$D"
mkdir -p "$D/figures"

# --seed 3 is the held-out seed of tools/train_pairs.py: none of these images
# was seen in training. The default (hard) style: small objects anywhere,
# with decoys that belong to no class.
echo "== kdcam shapes -n $N --seed 3 -o $D/heldout"
"$K" shapes -n "$N" --seed 3 -o "$D/heldout" >/dev/null

for pair in mobilenetv1:MobileNetV1 resnet50:ResNet-50; do
    p=${pair%%:*}
    name=${pair#*:}
    echo
    echo "== pair ResNet-101 -> $name"
    echo "== kdcam compare --teacher-last (rows Student, ICKD, DPK, Teacher)"
    "$K" compare --teacher-last \
        --model "Teacher (ResNet-101)=$T" \
        --model "Student ($name)=$W/$p-vanilla.safetensors" \
        --model "ICKD student=$W/$p-ickd.safetensors" \
        --model "DPK student=$W/$p-dpk.safetensors" \
        --threads "$THREADS" -o "$D/figures/$p" \
        "$D/heldout/000000.png" "$D/heldout/000001.png" "$D/heldout/000002.png" \
        "$D/heldout/000003.png" > "$D/compare-$p.txt"
    echo "== kdcam pointing (Grad-CAM at each model's last stage vs the object boxes)"
    "$K" pointing \
        --model "Teacher (ResNet-101)=$T" \
        --model "Student ($name)=$W/$p-vanilla.safetensors" \
        --model "ICKD student=$W/$p-ickd.safetensors" \
        --model "DPK student=$W/$p-dpk.safetensors" \
        --threads "$THREADS" "$D/heldout" | tee "$D/pointing-$p.txt"
done

echo
echo "== kdcam analyze (CKA, prediction and map agreement; all seven models, $N images)"
"$K" analyze \
    --model "Teacher (ResNet-101)=$T" \
    --model "MobileNetV1=$W/mobilenetv1-vanilla.safetensors" \
    --model "MobileNetV1 ICKD=$W/mobilenetv1-ickd.safetensors" \
    --model "MobileNetV1 DPK=$W/mobilenetv1-dpk.safetensors" \
    --model "ResNet-50=$W/resnet50-vanilla.safetensors" \
    --model "ResNet-50 ICKD=$W/resnet50-ickd.safetensors" \
    --model "ResNet-50 DPK=$W/resnet50-dpk.safetensors" \
    --threads "$THREADS" --batch 16 -o "$D/analyze" "$D/heldout" > "$D/analyze.txt"

echo
echo "figures: $D/figures/mobilenetv1/*.compare.png and $D/figures/resnet50/*.compare.png"
echo "         (one per image and pair: rows Student, ICKD, DPK, Teacher)"
echo "tables:  $D/pointing-mobilenetv1.txt, $D/pointing-resnet50.txt"
echo "dataset statistics: $D/analyze/summary.json, CKA heatmaps $D/analyze/cka_*.png"
echo "the images and their boxes: $D/heldout/labels.json"
echo
echo "CKA of each student's last stage against the teacher's (layer4), $N images:"
grep "last-stage CKA" "$D/analyze.txt"
