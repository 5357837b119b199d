/* pool_avx512.c - the interior rows of 3x3 max pooling, stride 1 or 2,
 * AVX-512F.
 *
 * pool_avx2.c with sixteen lanes: each lane scans its window as pool.c does
 * (rows top to bottom, columns left to right, m = v when v > m or v is NaN,
 * starting from -inf), as two compares and a masked move: the scalar
 * kernel's bits, NaN payloads and signed zeros included
 * (tests/test_kernels.c). Loads of the last block are masked to the columns
 * its windows read.
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

void kdc__f32_maxpool3_row_avx512(const float *p, int iw, int stride, float *y, int n)
{
    for (int j = 0; j < n; j += 16) {
        const __mmask16 out = kdc__lanes16(n - j);
        /* the floats of one row that this block's windows read */
        const int avail = stride * (n - j - 1) + 3;
        __m512 m = _mm512_set1_ps(-INFINITY);
        for (int ky = 0; ky < 3; ky++) {
            const float *r = p + (size_t)ky * iw + (size_t)j * stride;
            __m512 t0, t1, t2;
            if (stride == 1) {
                t0 = _mm512_maskz_loadu_ps(out, r);
                t1 = _mm512_maskz_loadu_ps(out, r + 1);
                t2 = _mm512_maskz_loadu_ps(out, r + 2);
            } else {
                const __m512 a = _mm512_maskz_loadu_ps(kdc__lanes16(avail), r);
                const __m512 b = avail > 16
                                     ? _mm512_maskz_loadu_ps(kdc__lanes16(avail - 16), r + 16)
                                     : _mm512_setzero_ps();
                kdc__unzip16(a, b, &t0, &t1);
                t2 = kdc__even_next16(t0, avail > 32 ? r[32] : 0.0f);
            }
            m = kdc__max_step16(m, t0);
            m = kdc__max_step16(m, t1);
            m = kdc__max_step16(m, t2);
        }
        _mm512_mask_storeu_ps(y + j, out, m);
    }
}

#endif /* __x86_64__ */
