#!/bin/sh
# make demo: the bundled demo models (weights/demo/: a ResNet-50-topology
# teacher and three MobileNetV1 students: vanilla, logit KD, ICKD) on
# held-out images of the procedural shapes dataset, whose object boxes are
# known. Writes side-by-side figures (kdcam compare) and scores every
# model's Grad-CAM against the boxes (kdcam pointing); ends with the dataset
# statistics (kdcam analyze): each student's last-stage CKA against the teacher.
set -e
B=${1:-build}
K=$B/kdcam
W=weights/demo
D=$B/demo
N=${DEMO_IMAGES:-300}
THREADS=${DEMO_THREADS:-2}

for f in teacher student student_kd student_ickd; do
    [ -f "$W/$f.safetensors" ] || { echo "demo: $W/$f.safetensors is missing" >&2; exit 1; }
done
rm -rf "$D/heldout" "$D/figures" "$D/analyze"
mkdir -p "$D"

# --seed 3 is the held-out seed of tools/train_demo.py: none of these images
# was seen in training
echo "== kdcam shapes -n $N --seed 3 --style classic -o $D/heldout"
"$K" shapes -n "$N" --seed 3 --style classic -o "$D/heldout" >/dev/null

set -- --model "Teacher (ResNet-50)=$W/teacher.safetensors" \
       --model "Student (MobileNetV1)=$W/student.safetensors" \
       --model "KD student=$W/student_kd.safetensors" \
       --model "ICKD student=$W/student_ickd.safetensors"

echo "== kdcam compare (teacher and students; feature map, Grad-CAM, Guided Grad-CAM)"
"$K" compare "$@" --threads "$THREADS" -o "$D/figures" \
    "$D/heldout/000000.png" "$D/heldout/000001.png" "$D/heldout/000002.png" \
    "$D/heldout/000003.png"

echo "== kdcam pointing (Grad-CAM at each model's last stage vs the object boxes)"
"$K" pointing "$@" --threads "$THREADS" "$D/heldout" | tee "$D/pointing.txt"

echo "== kdcam analyze (CKA, prediction and map agreement over the same images)"
"$K" analyze "$@" --threads "$THREADS" --batch 16 -o "$D/analyze" "$D/heldout" \
    > "$D/analyze.txt"

echo
echo "figures: $D/figures/*.compare.png (one per image: a row per model)"
echo "dataset statistics: $D/analyze/summary.json, CKA heatmaps $D/analyze/cka_*.png"
echo "table:   $D/pointing.txt; the images and their boxes: $D/heldout/labels.json"
echo
echo "CKA of each student's last stage (model.13) against the teacher's (layer4), $N images:"
grep "last-stage CKA" "$D/analyze.txt"
