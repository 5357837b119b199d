/* dwconv.c - depthwise 3x3 convolution of one channel plane: the scalar
 * kernels (the fallback on CPUs without SIMD) and the kernel tables.
 *
 * MobileNetV1's depthwise layers are 3x3, zero padding 1, stride 1 or 2,
 * one filter per channel (groups = channels). A kernel call handles one
 * plane, so the caller splits work by channel.
 *
 * The scalar kernels add the terms in the order of the reference
 * convolution (lib/nn/conv.c): bias first, then tap by tap in (ky, kx) order,
 * one rounded multiply and one rounded add per term, skipping taps in the
 * padding. They give the reference's result to the bit (when the compiler
 * contracts neither, as GCC does not in ISO C mode).
 *
 * The SIMD kernels (dwconv_avx2.c, dwconv_neon.c) keep that order but fuse
 * each multiply-add (one FMA, one rounding per term): every output is
 *     acc = bias; for each tap t in (ky, kx) order: acc = fma(w[t], x[t], acc)
 * (for backward-data, acc starts at the old dx), whether it is computed in a
 * vector lane or at a border. A padded tap may be applied as fma(w, 0, acc),
 * which changes nothing but the sign of a zero (the weights are finite:
 * checked at load). So the AVX2 and the NEON kernels agree to the bit with
 * each other and with fmaf() in that order. They differ from the reference
 * only by the roundings the fusing saves: |simd - ref| < 20 * 2^-24 * S,
 * S = |bias| + sum |w x| (the bound is derived in tests/test_kernels.c,
 * which checks it, and docs/kernels.md). */
#include <limits.h>

#include "graph.h"
#include "kernels.h"

/* First and one-past-last output index o with 0 <= o*stride + tap - pad < in. */
static void kdc__dw_range(int in, int out, int stride, int pad, int tap, int *lo, int *hi)
{
    int a = pad - tap;
    int first = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = in - 1 + pad - tap;
    int last = b < 0 ? -1 : b / stride;
    if (last > out - 1)
        last = out - 1;
    *lo = first;
    *hi = last + 1 > first ? last + 1 : first;
}

void kdc__f32_dw3x3_scalar(const float *x, int ih, int iw, const float *w, float bias, float *y,
                           int oh, int ow, int stride, int pad, const kdc__gemm_epilogue *ep,
                           int c, const float *res)
{
    const size_t ohw = (size_t)oh * ow;
    for (size_t i = 0; i < ohw; i++)
        y[i] = bias;
    for (int ky = 0; ky < 3; ky++) {
        int y0, y1;
        kdc__dw_range(ih, oh, stride, pad, ky, &y0, &y1);
        for (int kx = 0; kx < 3; kx++) {
            const float wv = w[ky * 3 + kx];
            int x0, x1;
            kdc__dw_range(iw, ow, stride, pad, kx, &x0, &x1);
            for (int oy = y0; oy < y1; oy++) {
                const float *xr = x + (size_t)(oy * stride + ky - pad) * iw + kx - pad;
                float *yr = y + (size_t)oy * ow;
                for (int ox = x0; ox < x1; ox++)
                    yr[ox] += wv * xr[ox * stride];
            }
        }
    }
    if (ep)
        kdc__gemm_epilogue_scalar(ep, y, (size_t)oh * ow, c, 1, res, (size_t)oh * ow, oh * ow);
}

void kdc__f32_dw3x3_backward_scalar(const float *dy, int oh, int ow, const float *w, float *dx,
                                    int ih, int iw, int stride, int pad)
{
    for (int ky = 0; ky < 3; ky++) {
        int y0, y1;
        kdc__dw_range(ih, oh, stride, pad, ky, &y0, &y1);
        for (int kx = 0; kx < 3; kx++) {
            const float wv = w[ky * 3 + kx];
            int x0, x1;
            kdc__dw_range(iw, ow, stride, pad, kx, &x0, &x1);
            for (int oy = y0; oy < y1; oy++) {
                float *xr = dx + (size_t)(oy * stride + ky - pad) * iw + kx - pad;
                const float *gr = dy + (size_t)oy * ow;
                for (int ox = x0; ox < x1; ox++)
                    xr[ox * stride] += wv * gr[ox];
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */

static const kdc__dw_kernels kdc__dw_scalar = {
    KDC__ISA_SCALAR, "f32-dw3x3-scalar", kdc__f32_dw3x3_scalar, kdc__f32_dw3x3_backward_scalar,
    NULL, NULL, 0};
#if defined(__x86_64__)
static const kdc__dw_kernels kdc__dw_avx2 = {
    KDC__ISA_AVX2, "f32-dw3x3-avx2", kdc__f32_dw3x3_avx2, kdc__f32_dw3x3_backward_avx2,
    kdc__f32_dw3x3_c8_avx2, kdc__f32_dw3x3_backward_c8_avx2, INT_MAX};
/* The AVX-512 forward plane kernel (dwconv_avx512.c) against the AVX2
 * eight-channel one, MobileNetV1's shapes (build/bench/bench_kernels, 1
 * thread, Zen 4, 2026-12-08, two runs, min ms, plane vs eight-channel):
 * 112 x 112 stride 1 0.085 vs 0.156, stride 2 0.101 vs 0.138; 56 x 56
 * 0.095 vs 0.152 and 0.053 vs 0.070; 28 x 28 0.054 vs 0.085 and 0.030-0.036
 * vs 0.037; 14 x 14 0.034 vs 0.048 and 0.035-0.046 vs 0.024 (outputs
 * 7 wide); 7 x 7 0.038 vs 0.035. So outputs up to 7 wide go to the
 * eight-channel kernel. The backward: AVX-512 at stride 1 for outputs
 * wider than 7, the AVX2 kernels otherwise (dwconv_avx512.c). (A first
 * 16-lane port of dwconv_avx2.c, 2026-12-05, was 1.0-1.4x slower than the
 * AVX2 plane kernel: it read its taps from memory at every FMA.) */
static const kdc__dw_kernels kdc__dw_avx512 = {
    KDC__ISA_AVX512, "f32-dw3x3-avx512", kdc__f32_dw3x3_avx512, kdc__f32_dw3x3_backward_avx512,
    kdc__f32_dw3x3_c8_avx2, kdc__f32_dw3x3_backward_c8_avx512, KDC__DW_AVX512_C8_MAX_OW};
#endif
#if defined(__aarch64__)
static const kdc__dw_kernels kdc__dw_neon = {
    KDC__ISA_NEON, "f32-dw3x3-neon", kdc__f32_dw3x3_neon, kdc__f32_dw3x3_backward_neon, NULL,
    NULL, 0};
#endif

const kdc__dw_kernels *kdc__dw_kernels_get(kdc__isa isa)
{
    if (!kdc__isa_supported(isa))
        return NULL;
    switch (isa) {
    case KDC__ISA_SCALAR:
        return &kdc__dw_scalar;
    case KDC__ISA_AVX2:
#if defined(__x86_64__)
        return &kdc__dw_avx2;
#else
        return NULL;
#endif
    case KDC__ISA_AVX512:
#if defined(__x86_64__)
        return &kdc__dw_avx512;
#else
        return NULL;
#endif
    case KDC__ISA_NEON:
#if defined(__aarch64__)
        return &kdc__dw_neon;
#else
        return NULL;
#endif
    }
    return NULL;
}
