/* pool_avx2.c - the interior rows of 3x3 max pooling, stride 1 or 2, AVX2.
 *
 * Eight outputs per step. Each lane scans its window as pool.c does (rows
 * top to bottom, columns left to right, m = v when v > m or v is NaN,
 * starting from -inf), as a compare and a blend: the scalar kernel's bits,
 * NaN payloads and signed zeros included (tests/test_kernels.c). Stride 2
 * loads 16 inputs per row and splits them into even and odd columns. Loads
 * of the last block are masked to the columns its windows read.
 *
 * Compiled with -mavx2 -mfma (Makefile), chosen at run time (lib/cpu.c). */
#if defined(__x86_64__)

#include <math.h>

#include "kernels.h"
#include "simd_avx2.h"

/* m = v where v > m or v is NaN */
static inline __m256 kdc__max_step8(__m256 m, __m256 v)
{
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ),
                                     _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_ps(m, v, take);
}

void kdc__f32_maxpool3_row_avx2(const float *p, int iw, int stride, float *y, int n)
{
    for (int j = 0; j < n; j += 8) {
        const __m256i out = kdc__lanes8(n - j);
        /* the floats of one row that this block's windows read */
        const int avail = stride * (n - j - 1) + 3;
        __m256 m = _mm256_set1_ps(-INFINITY);
        for (int ky = 0; ky < 3; ky++) {
            const float *r = p + (size_t)ky * iw + (size_t)j * stride;
            __m256 t0, t1, t2;
            if (stride == 1) {
                t0 = _mm256_maskload_ps(r, out);
                t1 = _mm256_maskload_ps(r + 1, out);
                t2 = _mm256_maskload_ps(r + 2, out);
            } else {
                const __m256 a = _mm256_maskload_ps(r, kdc__lanes8(avail));
                const __m256 b =
                    avail > 8 ? _mm256_maskload_ps(r + 8, kdc__lanes8(avail - 8))
                              : _mm256_setzero_ps();
                kdc__unzip8(a, b, &t0, &t1);
                t2 = kdc__even_next8(t0, avail > 16 ? r[16] : 0.0f);
            }
            m = kdc__max_step8(m, t0);
            m = kdc__max_step8(m, t1);
            m = kdc__max_step8(m, t2);
        }
        _mm256_maskstore_ps(y + j, out, m);
    }
}

#endif /* __x86_64__ */
