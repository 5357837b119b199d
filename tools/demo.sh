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
# Then the dataset statistics of all seven models (kdcam analyze): each
# student's last-stage CKA against the teacher.
# Ends with the detection pair (tools/train_detectors.py): a RetinaNet with a
# ResNet-152-FPN body and ResNet-50-FPN students (vanilla, FGD, DPK) on
# held-out detection shapes: a figure per image (rows Student, FGD, DPK,
# Teacher; columns input with the model's detections, FPN feature map,
# Grad-CAM and Guided Grad-CAM of the teacher's top detection and each
# student's best-IoU match) and a table of COCO mAP / AP50 (kdcam detect +
# kdcam eval) and agreement with the teacher (kdcam compare --summary).
set -e
B=${1:-build}
K=$B/kdcam
W=${DEMO_WEIGHTS:-weights/demo}
D=$B/demo
N=${DEMO_IMAGES:-300}
DN=${DEMO_DET_IMAGES:-100}
DC=${DEMO_DET_FIGURES:-16}
THREADS=${DEMO_THREADS:-2}
T=$W/teacher-resnet101.safetensors

for f in teacher-resnet101 mobilenetv1-vanilla mobilenetv1-ickd mobilenetv1-dpk \
         resnet50-vanilla resnet50-ickd resnet50-dpk det-teacher-r152fpn det-r50fpn-vanilla \
         det-r50fpn-fgd det-r50fpn-dpk; do
    [ -f "$W/$f.safetensors" ] || { echo "demo: $W/$f.safetensors is missing" >&2; exit 1; }
done
rm -rf "$D"
mkdir -p "$D/figures"

# The detection pair runs beside the classification pairs, on one thread
# (their kdcam commands leave part of the second core idle), so that make
# demo stays within its two minutes; its output is printed after theirs.
detection_pair() {
    echo
    echo "== pair ResNet-152-FPN -> ResNet-50-FPN (RetinaNet detectors, $DN images)"
    # --seed 103 is the held-out seed of tools/train_detectors.py.
    "$K" shapes --detection -n "$DN" --seed 103 --size 256 -o "$D/det-heldout" >/dev/null
    DT="Teacher (ResNet-152-FPN)=$W/det-teacher-r152fpn.safetensors"
    DS1="Student (ResNet-50-FPN)=$W/det-r50fpn-vanilla.safetensors"
    DS2="FGD student=$W/det-r50fpn-fgd.safetensors"
    DS3="DPK student=$W/det-r50fpn-dpk.safetensors"
    echo "== kdcam detect + kdcam eval (COCO box mAP against the shapes' instances.json)"
    mkdir -p "$D/det"
    for m in teacher-r152fpn r50fpn-vanilla r50fpn-fgd r50fpn-dpk; do
        "$K" detect -w "$W/det-$m.safetensors" \
            --coco "$D/det-heldout/instances.json" -o "$D/det/$m" "$D/det-heldout"/*.png >/dev/null
        "$K" eval --json "$D/det-heldout/instances.json" "$D/det/$m/results.json" \
            > "$D/det/$m/eval.json"
    done
    echo "== kdcam compare --detection 0 --summary, first $DC images (rows Student, FGD, DPK, Teacher)"
    # (an @LIST names files relative to the list's folder)
    (cd "$D" && ls det-heldout/*.png | head -n "$DC") > "$D/det-figures.txt"
    "$K" compare --detection 0 --summary --json --teacher-last --batch 1 \
        --model "$DT" --model "$DS1" --model "$DS2" --model "$DS3" \
        -o "$D/figures/detection" "@$D/det-figures.txt" \
        > "$D/compare-detection.json"
    # The table: mAP and AP50 from kdcam eval, agreement from compare --summary.
    stat() { sed -n 's/.*"stats":\[\([^,]*\),\([^,]*\),.*/\1 \2/p' "$1"; }
    field() { grep "\"summary\":true" "$D/compare-detection.json" | sed -n "$1p" |
              sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p"; }
    {
        echo "detection pair: COCO box AP on $DN held-out images (kdcam eval); agreement with"
        echo "the teacher on the first $DC (kdcam compare --summary): the teacher's detections"
        echo "of score >= 0.5 found again among the student's of score >= 0.5 (same class,"
        echo "box IoU >= 0.5, one to one), and the Pearson r of the Grad-CAM of the"
        echo "teacher's top detection with that of each student's best-IoU match"
        printf "  %-26s %7s %7s %18s %7s\n" model mAP AP50 "matched teacher's" "map r"
        i=1
        for m in "Teacher (ResNet-152-FPN):teacher-r152fpn" "Student (ResNet-50-FPN):r50fpn-vanilla" \
                 "FGD student:r50fpn-fgd" "DPK student:r50fpn-dpk"; do
            set -- $(stat "$D/det/${m#*:}/eval.json")
            if [ $i -eq 1 ]; then
                printf "  %-26s %7.3f %7.3f %18s %7s\n" "${m%%:*}" "$1" "$2" "-" "-"
            else
                printf "  %-26s %7.3f %7.3f %17.1f%% %7.3f\n" "${m%%:*}" "$1" "$2" \
                    "$(echo "$(field $i matched_fraction)" | awk '{print $1 * 100}')" \
                    "$(field $i pearson)"
            fi
            i=$((i + 1))
        done
    } > "$D/detection-table.txt"
}

(set -e; detection_pair) > "$D/detection.log" 2>&1 &
det_pid=$!

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


if ! wait "$det_pid"; then
    cat "$D/detection.log" >&2
    echo "demo: the detection pair failed" >&2
    exit 1
fi
cat "$D/detection.log"
echo
echo "figures: $D/figures/mobilenetv1/*.compare.png and $D/figures/resnet50/*.compare.png"
echo "         (one per image and pair: rows Student, ICKD, DPK, Teacher)"
echo "         $D/figures/detection/*.compare.png (rows Student, FGD, DPK, Teacher)"
echo "tables:  $D/pointing-mobilenetv1.txt, $D/pointing-resnet50.txt, $D/detection-table.txt"
echo "dataset statistics: $D/analyze/summary.json, CKA heatmaps $D/analyze/cka_*.png"
echo "the images and their boxes: $D/heldout/labels.json, $D/det-heldout/instances.json"
echo
echo "CKA of each student's last stage against the teacher's (layer4), $N images:"
grep "last-stage CKA" "$D/analyze.txt"
echo
cat "$D/detection-table.txt"
