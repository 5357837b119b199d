#!/bin/sh
# make demo: the forward pipeline on the bundled photos.
# Until trained demo models are bundled (weights/demo/), the model is a
# ResNet-50 with seeded random weights: its classes are meaningless, but
# every step (weights file -> model -> preprocessing -> layers -> .npy) is
# the real one.
set -e
B=${1:-build}
D=$B/demo
mkdir -p "$D"
W=$D/resnet50-seeded.safetensors
[ -f "$W" ] || "$B/kdc-genweights" resnet50 "$W" 50
echo "== model: $W (ResNet-50 topology, seeded random weights: predictions are arbitrary)"
echo "== kdcam layers (first and last lines of $("$B/kdcam" layers -w "$W" | wc -l))"
"$B/kdcam" layers -w "$W" | sed -n '1,6p'
echo "   ..."
"$B/kdcam" layers -w "$W" | tail -n 4
echo "== kdcam classify --topk 3 (2 threads)"
"$B/kdcam" classify -w "$W" --topk 3 --threads 2 examples/images/chelsea.png examples/images/coffee.png
echo "== kdcam dump --layer layer4 --layer fc"
"$B/kdcam" dump -w "$W" --threads 2 --layer layer4 --layer fc -o "$D/dump" examples/images/chelsea.png
ls -l "$D/dump"
echo "== examples/forward (the README's C example)"
"$B/examples/forward" "$W" examples/images/coffee.png layer3
echo "demo outputs are in $D"
