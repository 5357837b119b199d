/* pool_avx2.c - the interior rows of 3x3 max pooling, stride 1 or 2, AVX2.
 *
 * Eight outputs per step. Each lane scans its window as pool.c does (rows
 * top to bottom, columns left to right, m = v when v > m or v is NaN,
 * starting from -inf), as a compare and a blend, or one MAXPS a tap in a
 * block without a NaN: the scalar kernel's bits, NaN payloads and signed
 * zeros included (tests/test_kernels.c). Stride 2 loads 16 inputs per row
 * and splits them into even and odd columns. Loads of the last block are
 * masked to the columns its windows read.
 *
 * Compiled with -mavx2 -mfma (Makefile), chosen at run time (lib/cpu.c). */
#if defined(__x86_64__)

#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "simd_avx2.h"

/* m = v where v > m or v is NaN */
static inline __m256 kdc__max_step8(__m256 m, __m256 v)
{
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ),
                                     _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_ps(m, v, take);
}

/* The 9 taps of 8 windows from j on (n - j of them valid), row by row. */
static inline __attribute__((always_inline)) void
kdc__taps8(const float *p, int iw, int stride, int j, int n, __m256 t[9])
{
    const __m256i out = kdc__lanes8(n - j);
    /* the floats of one row that this block's windows read */
    const int avail = stride * (n - j - 1) + 3;
    for (int ky = 0; ky < 3; ky++) {
        const float *r = p + (size_t)ky * iw + (size_t)j * stride;
        if (stride == 1) {
            t[3 * ky] = _mm256_maskload_ps(r, out);
            t[3 * ky + 1] = _mm256_maskload_ps(r + 1, out);
            t[3 * ky + 2] = _mm256_maskload_ps(r + 2, out);
        } else {
            const __m256 a = _mm256_maskload_ps(r, kdc__lanes8(avail));
            const __m256 b = avail > 8 ? _mm256_maskload_ps(r + 8, kdc__lanes8(avail - 8))
                                       : _mm256_setzero_ps();
            kdc__unzip8(a, b, &t[3 * ky], &t[3 * ky + 1]);
            t[3 * ky + 2] = kdc__even_next8(t[3 * ky], avail > 16 ? r[16] : 0.0f);
        }
    }
}

/* Without a NaN among the taps, the scan's m = v where v > m is MAXPS(v,
 * m) (v > m ? v : m: ties, +-0 included, keep m), so each step is one
 * instruction; a block with a NaN in any lane scans again with the NaN
 * test. */
void kdc__f32_maxpool3_row_avx2(const float *p, int iw, int stride, float *y, int n)
{
    for (int j = 0; j < n; j += 8) {
        __m256 t[9];
        kdc__taps8(p, iw, stride, j, n, t);
        __m256 m = _mm256_set1_ps(-INFINITY);
        __m256 nan = _mm256_cmp_ps(t[8], t[8], _CMP_UNORD_Q);
        for (int q = 0; q < 8; q += 2)
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(t[q], t[q + 1], _CMP_UNORD_Q));
        if (_mm256_movemask_ps(nan)) {
            for (int q = 0; q < 9; q++)
                m = kdc__max_step8(m, t[q]);
        } else {
            for (int q = 0; q < 9; q++)
                m = _mm256_max_ps(t[q], m);
        }
        _mm256_maskstore_ps(y + j, kdc__lanes8(n - j), m);
    }
}

/* The same recording the winners: each lane takes its window's first tap,
 * then v where v > m or v is NaN, and its plane index with it (the index
 * of tap (ky, kx) of window j is at0 + j * stride + ky * iw + kx). */
static inline void kdc__max_idx_step8(__m256 *m, __m256i *at, __m256 v, __m256i vi)
{
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *m, _CMP_GT_OQ),
                                     _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    *m = _mm256_blendv_ps(*m, v, take);
    *at = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(*at), _mm256_castsi256_ps(vi), take));
}

void kdc__f32_maxpool3_row_idx_avx2(const float *p, int iw, int stride, float *y, int32_t *idx,
                                    int32_t at0, int n)
{
    const __m256i lane = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                            _mm256_set1_epi32(stride));
    for (int j = 0; j < n; j += 8) {
        const __m256i out = kdc__lanes8(n - j);
        const int avail = stride * (n - j - 1) + 3;
        const __m256i base = _mm256_add_epi32(_mm256_set1_epi32(at0 + j * stride), lane);
        __m256 m = _mm256_setzero_ps();
        __m256i at = base;
        for (int ky = 0; ky < 3; ky++) {
            const float *r = p + (size_t)ky * iw + (size_t)j * stride;
            __m256 t[3];
            if (stride == 1) {
                t[0] = _mm256_maskload_ps(r, out);
                t[1] = _mm256_maskload_ps(r + 1, out);
                t[2] = _mm256_maskload_ps(r + 2, out);
            } else {
                const __m256 a = _mm256_maskload_ps(r, kdc__lanes8(avail));
                const __m256 b =
                    avail > 8 ? _mm256_maskload_ps(r + 8, kdc__lanes8(avail - 8))
                              : _mm256_setzero_ps();
                kdc__unzip8(a, b, &t[0], &t[1]);
                t[2] = kdc__even_next8(t[0], avail > 16 ? r[16] : 0.0f);
            }
            for (int kx = 0; kx < 3; kx++) {
                if (ky == 0 && kx == 0) {
                    m = t[0]; /* the first tap, whatever it is */
                    continue;
                }
                kdc__max_idx_step8(&m, &at, t[kx],
                                   _mm256_add_epi32(base, _mm256_set1_epi32(ky * iw + kx)));
            }
        }
        _mm256_maskstore_ps(y + j, out, m);
        _mm256_maskstore_epi32(idx + j, out, at);
    }
}

#endif /* __x86_64__ */
