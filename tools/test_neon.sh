#!/bin/sh
# test_neon.sh - tests the aarch64 NEON kernels on this (x86-64) machine:
# cross-builds the static library and tests/test_kernels with Debian's
# aarch64 cross compiler and runs the test under qemu-user; then runs a
# seeded MobileNetV1 (forward and input gradient) through the aarch64 kdcam
# and compares it with the native one. `make test-neon` runs it, and so
# does `make test` after the native tests.
#
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user. When
# one is missing it prints why, skips and exits 0, unless KDC_REQUIRE_NEON=1
# (CI) makes that an error. qemu proves the kernels compute the right
# numbers with NEON instructions, not how fast they are on real hardware.
#
# The test has no cmocka here (no arm64 cmocka can be installed on this
# Debian: multiarch packages are refused), so it is compiled against the
# look-alike tests/util/cmocka_shim.h (-DKDC_TEST_CMOCKA_SHIM).
#
# Environment: CROSS_CC (aarch64-linux-gnu-gcc), CROSS_CFLAGS (-O2 -g),
# QEMU (qemu-aarch64), QEMU_LD_PREFIX (/usr/aarch64-linux-gnu),
# CROSS_BUILD (build/aarch64), MAKE (make), and the native KDCAM
# (build/kdcam) and GENW (build/kdc-genweights) for the model comparison.
set -eu
cd "$(dirname "$0")/.."

CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
CROSS_CFLAGS=${CROSS_CFLAGS:--O2 -g}
QEMU=${QEMU:-qemu-aarch64}
SYSROOT=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
OUT=${CROSS_BUILD:-build/aarch64}
MAKE=${MAKE:-make}

skip() {
    if [ "${KDC_REQUIRE_NEON:-0}" = 1 ]; then
        echo "test-neon: FAILED: $1 (KDC_REQUIRE_NEON=1)" >&2
        exit 1
    fi
    echo "test-neon: skipped: $1"
    exit 0
}

command -v "$CROSS_CC" >/dev/null 2>&1 ||
    skip "no $CROSS_CC (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
command -v "$QEMU" >/dev/null 2>&1 || skip "no $QEMU (apt-get install qemu-user)"
[ -f "$SYSROOT/include/stdio.h" ] ||
    skip "no aarch64 C library headers in $SYSROOT (apt-get install libc6-dev-arm64-cross)"

AR="ar" # GNU ar handles any ELF; the cross one when there is one
command -v "${CROSS_CC%gcc}ar" >/dev/null 2>&1 && AR=${CROSS_CC%gcc}ar

echo "== test-neon: $CROSS_CC -> $OUT, run under $QEMU"
# The library through the ordinary Makefile. Every variable that changes the
# build is set here: the caller's (a `make test SAN=1 CC=clang` passes SAN
# and CC down through MAKEFLAGS) must not reach the cross build, which has
# no sanitizers (ASan does not run under qemu-user).
# JPEG=stb: Debian has no arm64 libjpeg for the cross compiler (multiarch
# packages are refused), and the comparison below reads a PNG.
$MAKE --no-print-directory CC="$CROSS_CC" AR="$AR" CFLAGS="$CROSS_CFLAGS" LDFLAGS= SAN= \
    JPEG=stb BUILD="$OUT" "$OUT/libkdcam.a" "$OUT/kdcam"

mkdir -p "$OUT/tests"
# every folder of lib/ is on the include path, as in the Makefile
LIB_INCLUDES=$(find lib -type d | sort | sed 's/^/-I/' | tr '\n' ' ')
# Linked statically: it needs no aarch64 loader (qemu's -L would find one in
# the sysroot, but a static test cannot pick up a wrong one).
# shellcheck disable=SC2086 # CROSS_CFLAGS is a list of flags
"$CROSS_CC" -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow -Wno-unused-parameter \
    -Iinclude $LIB_INCLUDES -Itests/util -DKDC_TEST_CMOCKA_SHIM $CROSS_CFLAGS -static \
    -o "$OUT/tests/test_kernels" tests/test_kernels.c "$OUT/libkdcam.a" -lm -lpthread

# 1. The kernels against the scalar references.
if ! "$QEMU" -L "$SYSROOT" "$OUT/tests/test_kernels"; then
    echo "test-neon: FAILED: tests/test_kernels" >&2
    exit 1
fi

# 2. End to end: a seeded MobileNetV1 (depthwise, 1x1 and the 3x3 stem
# convolution through the GEMM, the fully connected layer; forward and the
# gradient down to the input) by the aarch64 kdcam on NEON under qemu and by
# the native kdcam on AVX2. Every SIMD kernel of both computes each output
# as one FMA chain in the same order and the rest is the same scalar C, so
# the files must be equal to the bit: a difference means the NEON path (a
# kernel, or how lib/run/ uses it) computes something else. If a kernel
# is ever added that legitimately rounds differently on the two ISAs, this
# comparison has to become a tolerance.
KDCAM=${KDCAM:-build/kdcam}
GENW=${GENW:-build/kdc-genweights}
if [ ! -x "$KDCAM" ] || [ ! -x "$GENW" ]; then
    echo "test-neon: model comparison skipped: no native $KDCAM or $GENW (make all)"
else
    T=$(mktemp -d)
    trap 'rm -rf "$T"' EXIT
    "$GENW" mobilenetv1 "$T/w.safetensors" 1001 10
    if ! why=$("$KDCAM" layers --kernels avx2 -w "$T/w.safetensors" 2>&1 >/dev/null); then
        echo "test-neon: model comparison skipped: $why"
    else
        set -- --grad --layer input --layer model.1 --layer model.5 --layer model.13 --layer fc \
            --threads 2 examples/images/chelsea.png
        "$KDCAM" dump --kernels avx2 -w "$T/w.safetensors" -o "$T/avx2" "$@"
        "$QEMU" -L "$SYSROOT" "$OUT/kdcam" dump --kernels neon -w "$T/w.safetensors" \
            -o "$T/neon" "$@"
        n=0
        for f in "$T/avx2"/*.npy; do
            if ! cmp -s "$f" "$T/neon/${f##*/}"; then
                echo "test-neon: FAILED: MobileNetV1 ${f##*/}: NEON (qemu) differs from AVX2" >&2
                exit 1
            fi
            n=$((n + 1))
        done
        [ "$n" -gt 0 ] || { echo "test-neon: FAILED: no model outputs" >&2; exit 1; }
        echo "test-neon: MobileNetV1 forward and gradients, NEON (qemu) = AVX2 to the bit ($n arrays)"
    fi
fi
echo "test-neon: passed"
