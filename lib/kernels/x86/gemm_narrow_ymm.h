/* gemm_narrow_ymm.h - the narrow last-panel GEMM kernel
 * (kdc__gemm_narrow_ukernel) in ymm registers, shared by gemm_avx2.c (row
 * panels of 6, B panels of 16 columns) and gemm_avx512.c (8 and 32).
 * Include only from files compiled with AVX2 + FMA.
 *
 * P row panels of MR side by side, N columns, one 8-lane accumulator per
 * (panel, column) with the panel's MR rows in its first lanes. P * N
 * chains of FMAs hide the FMA latency that a lone tile's chains cannot;
 * each chain is the micro-kernel's (acc = fma(a, b, acc) in increasing
 * depth), so the same bits. With MR = 6, lanes 6 and 7 load the next depth
 * step's first two rows and are never stored; the last step loads through
 * a mask, as it may end the packed matrix. B rows are NR floats apart (b
 * may point into a panel: the columns after its left half, the table's
 * `half`). MR, NR, P and N are constants at every call. */
#ifndef KDC_GEMM_NARROW_YMM_H
#define KDC_GEMM_NARROW_YMM_H

#include <immintrin.h>

static inline __attribute__((always_inline)) void
kdc__narrow_ymm(int k, const float *a, size_t astride, const float *b, float *c, size_t ldc,
                int m, int accumulate, const int MR, const int NR, const int P, const int N)
{
    __m256 acc[8];
    float tmp[8] = {0};
    _Pragma("GCC unroll 8")
    for (int q = 0; q < P; q++)
        _Pragma("GCC unroll 8")
        for (int j = 0; j < N; j++) {
            if (accumulate) {
                for (int i = 0; i < MR; i++)
                    tmp[i] = q * MR + i < m ? c[(size_t)(q * MR + i) * ldc + j] : 0.0f;
                acc[q * N + j] = _mm256_loadu_ps(tmp);
            } else {
                acc[q * N + j] = _mm256_setzero_ps();
            }
        }
    /* the steps whose 8-float loads of A stay inside the packed matrix */
    const int whole = MR == 8 ? k : k - 1;
    int p = 0;
    for (; p < whole; p++, a += MR, b += NR) {
        __m256 bj[4];
        _Pragma("GCC unroll 8")
        for (int j = 0; j < N; j++)
            bj[j] = _mm256_broadcast_ss(b + j);
        _Pragma("GCC unroll 8")
        for (int q = 0; q < P; q++) {
            const __m256 av = _mm256_loadu_ps(a + q * astride);
            _Pragma("GCC unroll 8")
            for (int j = 0; j < N; j++)
                acc[q * N + j] = _mm256_fmadd_ps(av, bj[j], acc[q * N + j]);
        }
    }
    if (p < k) { /* MR < 8: the last step, its MR floats of A only */
        const __m256i rows = _mm256_cmpgt_epi32(_mm256_set1_epi32(MR),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _Pragma("GCC unroll 8")
        for (int q = 0; q < P; q++) {
            const __m256 av = _mm256_maskload_ps(a + q * astride, rows);
            _Pragma("GCC unroll 8")
            for (int j = 0; j < N; j++)
                acc[q * N + j] =
                    _mm256_fmadd_ps(av, _mm256_broadcast_ss(b + j), acc[q * N + j]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int q = 0; q < P; q++)
        _Pragma("GCC unroll 8")
        for (int j = 0; j < N; j++) {
            _mm256_storeu_ps(tmp, acc[q * N + j]);
            for (int i = 0; i < MR && q * MR + i < m; i++)
                c[(size_t)(q * MR + i) * ldc + j] = tmp[i];
        }
}

/* n columns of P panels: the group's P (eight chains) or one panel
 * (single). */
static inline __attribute__((always_inline)) void
kdc__narrow_panels_ymm(int k, const float *a, size_t astride, const float *b, float *c,
                       size_t ldc, int m, int accumulate, int n, int single, const int MR,
                       const int NR)
{
#define KDC__NARROW_CASE(G, N)                                                                 \
    single ? kdc__narrow_ymm(k, a, astride, b, c, ldc, m, accumulate, MR, NR, 1, N)           \
           : kdc__narrow_ymm(k, a, astride, b, c, ldc, m, accumulate, MR, NR, G, N)
    switch (n) {
    case 1:
        KDC__NARROW_CASE(8, 1);
        break;
    case 2:
        KDC__NARROW_CASE(4, 2);
        break;
    case 3:
        KDC__NARROW_CASE(2, 3);
        break;
    default:
        KDC__NARROW_CASE(2, 4);
        break;
    }
#undef KDC__NARROW_CASE
}

/* The kernel: groups of P panels (kdc__narrow_panels_ymm's G), the last few
 * panels one at a time. */
static inline __attribute__((always_inline)) void
kdc__gemm_narrow_ymm(int k, const float *a, size_t astride, const float *b, float *c,
                     size_t ldc, int m, int n, int accumulate, const int MR, const int NR)
{
    const int group = n == 1 ? 8 : n == 2 ? 4 : 2;
    for (int r = 0; r < m;) {
        const int p = m - r > MR * (group - 1) ? group : 1;
        kdc__narrow_panels_ymm(k, a, astride, b, c, ldc, m - r, accumulate, n, p == 1, MR, NR);
        r += MR * p;
        a += astride * p;
        c += (size_t)MR * p * ldc;
    }
}

#endif
