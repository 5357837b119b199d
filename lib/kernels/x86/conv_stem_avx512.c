/* conv_stem_avx512.c - a dense 3x3 stride-2 conv with padding 1 and a few
 * input channels (a MobileNet's stem: 3 -> 32 at 224 x 224), computed
 * directly, AVX-512F: the AVX-512 GEMM table's conv_stem
 * (lib/kernels/kernels.h).
 *
 * Through the GEMM this layer is a depth-27 product whose B (the input's
 * phase planes, taps shifted) is built in memory and whose output rows are
 * copied out of wide rows afterwards: three passes over memory for few
 * multiply-adds. Here, for 32 outputs of a row at a time, the K = 9 cin
 * tap vectors are made in registers from the input rows (two masked loads
 * of 16 columns and a third of one, split into even and odd columns) into
 * a small buffer, and each panel of 8 output channels runs the GEMM
 * tile's chain on them: acc = +0, then for k = (ci, ky, kx) ascending
 * acc = fma(a[k], tap k, acc), with the packed weights (A's panels) as a,
 * then the fused epilogue (kdc__ep16_avx512) and a store to the output
 * planes. The taps outside the input are zeros, as the padded planes'.
 * So every output has the GEMM path's bits (tests/test_gemm.c:
 * test_conv_stem).
 *
 * Compiled with -mavx512f -mavx2 -mfma (Makefile), chosen at run time
 * (lib/cpu.c). */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"
#include "simd_avx512.h"

static inline __attribute__((always_inline)) void
kdc__stem_rows(const float *x, const int cin, int ih, int iw, const float *apack, int cout,
               float *y, int oh, int ow, int oy0, int oy1, const kdc__gemm_epilogue *ep)
{
    enum { MR = KDC__CONV_STEM_MR };
    const int K = 9 * cin;
    const size_t ohw = (size_t)oh * ow, ihw = (size_t)ih * iw;
    /* the taps of 32 outputs: k, then the two halves */
    __m512 tap[9 * KDC__CONV_STEM_CIN][2];
    for (int oy = oy0; oy < oy1; oy++) {
        for (int j = 0; j < ow; j += 32) {
            const int n = ow - j < 32 ? ow - j : 32;
            __mmask16 m[2][3]; /* the two halves' columns, shared by the rows */
            for (int h = 0; h < 2; h++)
                kdc__masks_s2_16(2 * (j + 16 * h) - 1, iw, m[h]);
            for (int ci = 0; ci < cin; ci++)
                for (int ky = 0; ky < 3; ky++) {
                    const int iy = 2 * oy - 1 + ky;
                    const float *row =
                        iy >= 0 && iy < ih ? x + ci * ihw + (size_t)iy * iw : NULL;
                    for (int h = 0; h < 2; h++) {
                        /* input columns 2 (j + l) - 1 + kx; zeros outside */
                        __m512 t[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
                                       _mm512_setzero_ps()};
                        if (row)
                            kdc__taps_s2_16(row, 2 * (j + 16 * h) - 1, m[h], t);
                        for (int kx = 0; kx < 3; kx++)
                            tap[9 * ci + 3 * ky + kx][h] = t[kx];
                    }
                }
            const __mmask16 m0 = kdc__lanes16(n), m1 = kdc__lanes16(n - 16);
            for (int c0 = 0; c0 < cout; c0 += MR) {
                const float *a = apack + (size_t)c0 * K; /* the panel of rows c0.. */
                __m512 acc[MR][2];
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
                for (int k = 0; k < K; k++, a += MR) {
                    const __m512 b0 = tap[k][0], b1 = tap[k][1];
                    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
                        const __m512 av = _mm512_set1_ps(a[r]);
                        acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
                    }
                }
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
                    const int co = c0 + r;
                    if (co >= cout)
                        break;
                    const size_t at = (size_t)co * ohw + (size_t)oy * ow + j;
                    __m512 v0 = acc[r][0], v1 = acc[r][1];
                    if (ep) {
                        const float *rs = ep->res ? ep->res + at : NULL;
                        const __m512 r0 = rs ? _mm512_maskz_loadu_ps(m0, rs) : v0;
                        const __m512 r1 = rs ? _mm512_maskz_loadu_ps(m1, rs + 16) : v1;
                        v0 = kdc__ep16_avx512(ep, co, rs != NULL, r0, v0);
                        v1 = kdc__ep16_avx512(ep, co, rs != NULL, r1, v1);
                    }
                    _mm512_mask_storeu_ps(y + at, m0, v0);
                    _mm512_mask_storeu_ps(y + at + 16, m1, v1);
                }
            }
        }
    }
}

void kdc__f32_conv_stem_avx512(const float *x, int cin, int ih, int iw, const float *apack,
                               int cout, float *y, int oh, int ow, int oy0, int oy1,
                               const kdc__gemm_epilogue *ep)
{
    kdc__stem_rows(x, cin, ih, iw, apack, cout, y, oh, ow, oy0, oy1, ep);
}

#endif /* __x86_64__ */
