#!/bin/sh
# Runs kdcam commands under valgrind (a seeded MobileNetV1, the bundled photos)
# and fails on any leak or memory error. Used by CI.
set -e
B=${1:-build}
# build what this script runs: it must not depend on what ran before it
make -s BUILD="$B" "$B/kdcam" "$B/kdc-genweights" >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/kdc-genweights" mobilenetv1 "$T/w.safetensors" 1001 10
VG="valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=99"
$VG "$B/kdcam" classify -w "$T/w.safetensors" --threads 2 --json examples/images/chelsea.png examples/images/coffee.png >/dev/null
$VG "$B/kdcam" dump -w "$T/w.safetensors" --layer model.13 --layer fc -o "$T/out" examples/images/chelsea.png
$VG "$B/kdcam" layers -w "$T/w.safetensors" >/dev/null
# JPEG through libjpeg-turbo: progressive, grayscale, CMYK, YCCK, arithmetic
J=tests/fixtures/jpeg
$VG "$B/kdcam" classify -w "$T/w.safetensors" --threads 2 $J/pil_q85_prog_99x66.jpg \
    $J/pil_q80_gray_47x53.jpg $J/pil_q90_cmyk_61x45.jpg $J/tj_q85_ycck_57x43.jpg \
    $J/cjpeg_q70_arith_63x49.jpg >/dev/null
# failing runs must not leak either
set +e
$VG "$B/kdcam" dump -w "$T/w.safetensors" --layer nope -o "$T/out" examples/images/chelsea.png 2>/dev/null
[ $? -eq 1 ] || { echo "valgrind: error run did not exit 1 cleanly"; exit 1; }
$VG "$B/kdcam" classify -w "$T/w.safetensors" tests/fixtures/truncated.png 2>/dev/null
[ $? -eq 1 ] || { echo "valgrind: error run did not exit 1 cleanly"; exit 1; }
for f in tests/fixtures/truncated.jpg $J/hostile_600_scans.jpg; do
    # libjpeg's errors leave its decoder by longjmp: nothing may leak
    $VG "$B/kdcam" classify -w "$T/w.safetensors" "$f" 2>/dev/null
    [ $? -eq 1 ] || { echo "valgrind: error run ($f) did not exit 1 cleanly"; exit 1; }
done
# PyTorch checkpoints: loading, listing, converting; hostile files fail cleanly
set -e
for f in torchdistill legacy views zip64; do
    $VG "$B/kdcam" classify -w tests/fixtures/pth/$f.pth --json examples/images/chelsea.png >/dev/null
done
$VG "$B/kdcam" inspect tests/fixtures/pth/mmcv.pth >/dev/null
$VG "$B/kdcam" convert --dtype f16 tests/fixtures/pth/bf16.pth "$T/c.safetensors"
set +e
for f in tests/fixtures/pth/hostile/*.pth; do
    $VG "$B/kdcam" classify -w "$f" examples/images/chelsea.png 2>/dev/null
    [ $? -eq 1 ] || { echo "valgrind: $f did not exit 1 cleanly"; exit 1; }
done
[ ! -e kdcam_pwned ] || { echo "valgrind: a hostile checkpoint ran code"; exit 1; }
echo "valgrind: no leaks or errors in kdcam runs"
