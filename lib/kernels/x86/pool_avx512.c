/* pool_avx512.c - the interior rows of 3x3 max pooling, stride 1 or 2,
 * AVX-512F.
 *
 * pool_avx2.c with sixteen lanes: each lane scans its window as pool.c does
 * (rows top to bottom, columns left to right, m = v when v > m or v is NaN,
 * starting from -inf), as two compares and a masked move, or one MAXPS a
 * tap in a block without a NaN: the scalar kernel's bits, NaN payloads and
 * signed zeros included (tests/test_kernels.c). Loads of the last block are
 * masked to the columns its windows read.
 *
 * Compiled with -mavx512f -mavx2 -mfma (Makefile) and chosen at run time
 * (lib/cpu.c) only on a CPU that has all three. */
#if defined(__x86_64__)

#include <math.h>

#include "kernels.h"
#include "simd_avx512.h"

/* m = v where v > m or v is NaN */
static inline __m512 kdc__max_step16(__m512 m, __m512 v)
{
    const __mmask16 take =
        _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(m, take, v);
}

/* The 9 taps of 16 windows from j on (n - j of them valid), row by row. */
static inline __attribute__((always_inline)) void
kdc__taps16(const float *p, int iw, int stride, int j, int n, __m512 t[9])
{
    const __mmask16 out = kdc__lanes16(n - j);
    /* the floats of one row that this block's windows read */
    const int avail = stride * (n - j - 1) + 3;
    for (int ky = 0; ky < 3; ky++) {
        const float *r = p + (size_t)ky * iw + (size_t)j * stride;
        if (stride == 1) {
            t[3 * ky] = _mm512_maskz_loadu_ps(out, r);
            t[3 * ky + 1] = _mm512_maskz_loadu_ps(out, r + 1);
            t[3 * ky + 2] = _mm512_maskz_loadu_ps(out, r + 2);
        } else {
            const __m512 a = _mm512_maskz_loadu_ps(kdc__lanes16(avail), r);
            const __m512 b = avail > 16 ? _mm512_maskz_loadu_ps(kdc__lanes16(avail - 16), r + 16)
                                        : _mm512_setzero_ps();
            kdc__unzip16(a, b, &t[3 * ky], &t[3 * ky + 1]);
            t[3 * ky + 2] = kdc__even_next16(t[3 * ky], avail > 32 ? r[32] : 0.0f);
        }
    }
}

/* Without a NaN among the taps, the scan's m = v where v > m is MAXPS(v,
 * m) (v > m ? v : m: ties, +-0 included, keep m), so each step is one
 * instruction; a block with a NaN in any lane scans again with the NaN
 * test. */
void kdc__f32_maxpool3_row_avx512(const float *p, int iw, int stride, float *y, int n)
{
    for (int j = 0; j < n; j += 16) {
        __m512 t[9];
        kdc__taps16(p, iw, stride, j, n, t);
        __m512 m = _mm512_set1_ps(-INFINITY);
        __mmask16 nan = _mm512_cmp_ps_mask(t[8], t[8], _CMP_UNORD_Q);
        for (int q = 0; q < 8; q += 2)
            nan |= _mm512_cmp_ps_mask(t[q], t[q + 1], _CMP_UNORD_Q);
        if (nan) {
            for (int q = 0; q < 9; q++)
                m = kdc__max_step16(m, t[q]);
        } else {
            for (int q = 0; q < 9; q++)
                m = _mm512_max_ps(t[q], m);
        }
        _mm512_mask_storeu_ps(y + j, kdc__lanes16(n - j), m);
    }
}

#endif /* __x86_64__ */
