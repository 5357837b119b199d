/* gemm_avx2.c - fp32 GEMM micro-kernel, 6 x 16 tile, AVX2 + FMA.
 *
 * Twelve ymm accumulators (6 rows x 2 vectors of 8 columns); per depth step
 * two loads of B, six broadcasts of A and twelve FMAs. Compiled with -mavx2
 * -mfma (Makefile) and chosen at run time (lib/cpu.c), so nothing here runs
 * on a CPU without them. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "gemm_narrow_ymm.h"
#include "simd_avx2.h"

/* The tile's left half (n <= 8): half the work for the narrow last
 * column panel (a 7x7 layer has 49 = 3 x 16 + 1 columns), with the same
 * FMA chain per element as the full tile. */
static void kdc__gemm_6x8_avx2(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                               int n, int accumulate)
{
    __m256 c0, c1, c2, c3, c4, c5;
    float tmp[6 * 8];
    if (accumulate) {
        memset(tmp, 0, sizeof tmp);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                tmp[i * 8 + j] = c[(size_t)i * ldc + j];
        c0 = _mm256_loadu_ps(tmp);
        c1 = _mm256_loadu_ps(tmp + 8);
        c2 = _mm256_loadu_ps(tmp + 16);
        c3 = _mm256_loadu_ps(tmp + 24);
        c4 = _mm256_loadu_ps(tmp + 32);
        c5 = _mm256_loadu_ps(tmp + 40);
    } else {
        c0 = c1 = c2 = c3 = c4 = c5 = _mm256_setzero_ps();
    }
    for (int p = 0; p < k; p++, a += 6, b += 16) {
        const __m256 b0 = _mm256_loadu_ps(b);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c5);
    }
    _mm256_storeu_ps(tmp, c0);
    _mm256_storeu_ps(tmp + 8, c1);
    _mm256_storeu_ps(tmp + 16, c2);
    _mm256_storeu_ps(tmp + 24, c3);
    _mm256_storeu_ps(tmp + 32, c4);
    _mm256_storeu_ps(tmp + 40, c5);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = tmp[i * 8 + j];
}

/* The epilogue on the 16 values (x0, x1) of output row r, stored to d. */
static inline __attribute__((always_inline)) void
kdc__ep_row_avx2(const kdc__gemm_epilogue *ep, int r, const float *rs, __m256 x0, __m256 x1,
                 float *d)
{
    const kdc__ep_row8 k = kdc__ep_row8_init(ep, r);
    const __m256 r0 = rs ? _mm256_loadu_ps(rs) : _mm256_setzero_ps();
    const __m256 r1 = rs ? _mm256_loadu_ps(rs + 8) : _mm256_setzero_ps();
    _mm256_storeu_ps(d, kdc__ep8_avx2(ep, &k, rs != NULL, r0, x0));
    _mm256_storeu_ps(d + 8, kdc__ep8_avx2(ep, &k, rs != NULL, r1, x1));
}

/* The 6 x 16 tile: accumulators from src (row stride lds) or zero, the k
 * depth steps, then the tile to dst (row stride ldd), through the epilogue
 * of rows [row, row + 6) when ep is not NULL (res: its residual tile, row
 * stride ldres, or NULL). B is the packed panel b, or with brow (not NULL)
 * in place: row p at brow[p] + col (kdc__gemm_rows_ukernel). Inlined into
 * the kernels below, where ep and brow are constants. */
static inline __attribute__((always_inline)) void
kdc__tile_6x16_avx2(int k, const float *a, const float *b, const float *const *brow, size_t col,
                    const float *src, size_t lds, float *dst, size_t ldd,
                    const kdc__gemm_epilogue *ep, int row, const float *res, size_t ldres)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (src) {
        c00 = _mm256_loadu_ps(src + 0 * lds);
        c01 = _mm256_loadu_ps(src + 0 * lds + 8);
        c10 = _mm256_loadu_ps(src + 1 * lds);
        c11 = _mm256_loadu_ps(src + 1 * lds + 8);
        c20 = _mm256_loadu_ps(src + 2 * lds);
        c21 = _mm256_loadu_ps(src + 2 * lds + 8);
        c30 = _mm256_loadu_ps(src + 3 * lds);
        c31 = _mm256_loadu_ps(src + 3 * lds + 8);
        c40 = _mm256_loadu_ps(src + 4 * lds);
        c41 = _mm256_loadu_ps(src + 4 * lds + 8);
        c50 = _mm256_loadu_ps(src + 5 * lds);
        c51 = _mm256_loadu_ps(src + 5 * lds + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
        c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }

#define KDC__STEP(A, B)                                                                        \
    do {                                                                                       \
        const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps((B) + 8);                   \
        __m256 av = _mm256_broadcast_ss((A) + 0);                                              \
        c00 = _mm256_fmadd_ps(av, b0, c00);                                                    \
        c01 = _mm256_fmadd_ps(av, b1, c01);                                                    \
        av = _mm256_broadcast_ss((A) + 1);                                                     \
        c10 = _mm256_fmadd_ps(av, b0, c10);                                                    \
        c11 = _mm256_fmadd_ps(av, b1, c11);                                                    \
        av = _mm256_broadcast_ss((A) + 2);                                                     \
        c20 = _mm256_fmadd_ps(av, b0, c20);                                                    \
        c21 = _mm256_fmadd_ps(av, b1, c21);                                                    \
        av = _mm256_broadcast_ss((A) + 3);                                                     \
        c30 = _mm256_fmadd_ps(av, b0, c30);                                                    \
        c31 = _mm256_fmadd_ps(av, b1, c31);                                                    \
        av = _mm256_broadcast_ss((A) + 4);                                                     \
        c40 = _mm256_fmadd_ps(av, b0, c40);                                                    \
        c41 = _mm256_fmadd_ps(av, b1, c41);                                                    \
        av = _mm256_broadcast_ss((A) + 5);                                                     \
        c50 = _mm256_fmadd_ps(av, b0, c50);                                                    \
        c51 = _mm256_fmadd_ps(av, b1, c51);                                                    \
    } while (0)

    int p = 0;
    if (brow) { /* B in place: row p at brow[p] + col, each row's line 16 steps ahead */
        for (; p + 4 <= k; p += 4, a += 24) {
            _mm_prefetch((const char *)(brow[p + 16] + col), _MM_HINT_T0);
            KDC__STEP(a, brow[p] + col);
            _mm_prefetch((const char *)(brow[p + 17] + col), _MM_HINT_T0);
            KDC__STEP(a + 6, brow[p + 1] + col);
            _mm_prefetch((const char *)(brow[p + 18] + col), _MM_HINT_T0);
            KDC__STEP(a + 12, brow[p + 2] + col);
            _mm_prefetch((const char *)(brow[p + 19] + col), _MM_HINT_T0);
            KDC__STEP(a + 18, brow[p + 3] + col);
        }
        for (; p < k; p++, a += 6)
            KDC__STEP(a, brow[p] + col);
    } else { /* packed: a cache line a step, every other one fetched */
        for (; p + 4 <= k; p += 4, a += 24, b += 64) {
            _mm_prefetch((const char *)(b + 256), _MM_HINT_T0);
            KDC__STEP(a, b);
            KDC__STEP(a + 6, b + 16);
            _mm_prefetch((const char *)(b + 288), _MM_HINT_T0);
            KDC__STEP(a + 12, b + 32);
            KDC__STEP(a + 18, b + 48);
        }
        for (; p < k; p++, a += 6, b += 16)
            KDC__STEP(a, b);
    }
#undef KDC__STEP

    if (ep) {
        kdc__ep_row_avx2(ep, row + 0, res ? res + 0 * ldres : NULL, c00, c01, dst + 0 * ldd);
        kdc__ep_row_avx2(ep, row + 1, res ? res + 1 * ldres : NULL, c10, c11, dst + 1 * ldd);
        kdc__ep_row_avx2(ep, row + 2, res ? res + 2 * ldres : NULL, c20, c21, dst + 2 * ldd);
        kdc__ep_row_avx2(ep, row + 3, res ? res + 3 * ldres : NULL, c30, c31, dst + 3 * ldd);
        kdc__ep_row_avx2(ep, row + 4, res ? res + 4 * ldres : NULL, c40, c41, dst + 4 * ldd);
        kdc__ep_row_avx2(ep, row + 5, res ? res + 5 * ldres : NULL, c50, c51, dst + 5 * ldd);
        return;
    }
    _mm256_storeu_ps(dst + 0 * ldd, c00);
    _mm256_storeu_ps(dst + 0 * ldd + 8, c01);
    _mm256_storeu_ps(dst + 1 * ldd, c10);
    _mm256_storeu_ps(dst + 1 * ldd + 8, c11);
    _mm256_storeu_ps(dst + 2 * ldd, c20);
    _mm256_storeu_ps(dst + 2 * ldd + 8, c21);
    _mm256_storeu_ps(dst + 3 * ldd, c30);
    _mm256_storeu_ps(dst + 3 * ldd + 8, c31);
    _mm256_storeu_ps(dst + 4 * ldd, c40);
    _mm256_storeu_ps(dst + 4 * ldd + 8, c41);
    _mm256_storeu_ps(dst + 5 * ldd, c50);
    _mm256_storeu_ps(dst + 5 * ldd + 8, c51);
}

/* An m x n (n > 8) corner of the tile: whole tiles straight to c, others
 * through a tile on the stack. */
static inline __attribute__((always_inline)) void
kdc__tile_6x16_part_avx2(int k, const float *a, const float *b, const float *const *brow,
                         size_t col, float *c, size_t ldc, int m, int n, int accumulate)
{
    if (m == 6 && n == 16) {
        kdc__tile_6x16_avx2(k, a, b, brow, col, accumulate ? c : NULL, ldc, c, ldc, NULL, 0,
                            NULL, 0);
        return;
    }
    float tmp[6 * 16];
    if (accumulate) {
        memset(tmp, 0, sizeof tmp);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                tmp[i * 16 + j] = c[(size_t)i * ldc + j];
    }
    kdc__tile_6x16_avx2(k, a, b, brow, col, accumulate ? tmp : NULL, 16, tmp, 16, NULL, 0, NULL,
                        0);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = tmp[i * 16 + j];
}

void kdc__f32_gemm_6x16_avx2(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                             int n, int accumulate)
{
    if (n <= 8) {
        kdc__gemm_6x8_avx2(k, a, b, c, ldc, m, n, accumulate);
        return;
    }
    kdc__tile_6x16_part_avx2(k, a, b, NULL, 0, c, ldc, m, n, accumulate);
}

void kdc__f32_gemm_ep_6x16_avx2(int k, const float *a, const float *b, float *c, size_t ldc,
                                int accumulate, const kdc__gemm_epilogue *ep, int row,
                                const float *res, size_t ldres)
{
    kdc__tile_6x16_avx2(k, a, b, NULL, 0, accumulate ? c : NULL, ldc, c, ldc, ep, row, res, ldres);
}

void kdc__f32_gemm_6x16_rows_avx2(int k, const float *a, const float *const *brow, size_t col,
                                  float *c, size_t ldc, int m, int accumulate)
{
    kdc__tile_6x16_part_avx2(k, a, NULL, brow, col, c, ldc, m, 16, accumulate);
}

void kdc__f32_gemm_ep_6x16_rows_avx2(int k, const float *a, const float *const *brow, size_t col,
                                     float *c, size_t ldc, int accumulate,
                                     const kdc__gemm_epilogue *ep, int row, const float *res,
                                     size_t ldres)
{
    kdc__tile_6x16_avx2(k, a, NULL, brow, col, accumulate ? c : NULL, ldc, c, ldc, ep, row, res,
                        ldres);
}

/* The narrow last panel (kdc__gemm_narrow_ukernel): gemm_narrow_ymm.h
 * with row panels of 6, B panels of 16 columns. */
void kdc__f32_gemm_narrow_avx2(int k, const float *a, size_t astride, const float *b, float *c,
                               size_t ldc, int m, int n, int accumulate)
{
    kdc__gemm_narrow_ymm(k, a, astride, b, c, ldc, m, n, accumulate, 6, 16);
}

/* The epilogue in 8-lane steps (kdc__ep8_avx2), the scalar one for the
 * last n % 8 columns of a row. */
void kdc__gemm_epilogue_avx2(const kdc__gemm_epilogue *ep, float *v, size_t ldv, int row, int m,
                             const float *res, size_t ldres, int n)
{
    for (int i = 0; i < m; i++, v += ldv) {
        const int r = row + i;
        const float *rs = res ? res + (size_t)i * ldres : NULL;
        const kdc__ep_row8 k = kdc__ep_row8_init(ep, r);
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            const __m256 rv = rs ? _mm256_loadu_ps(rs + j) : _mm256_setzero_ps();
            _mm256_storeu_ps(v + j, kdc__ep8_avx2(ep, &k, rs != NULL, rv,
                                                  _mm256_loadu_ps(v + j)));
        }
        if (j < n) {
            kdc__gemm_epilogue_scalar(ep, v + j, ldv, r, 1, rs ? rs + j : NULL, ldres, n - j);
        }
    }
}

float kdc__f32_fma_peak_avx2(long iters)
{
    __m256 v[12];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        v[i] = _mm256_set1_ps((float)i);
    for (long t = 0; t < iters; t++) {
        v[0] = _mm256_fmadd_ps(v[0], a, b);
        v[1] = _mm256_fmadd_ps(v[1], a, b);
        v[2] = _mm256_fmadd_ps(v[2], a, b);
        v[3] = _mm256_fmadd_ps(v[3], a, b);
        v[4] = _mm256_fmadd_ps(v[4], a, b);
        v[5] = _mm256_fmadd_ps(v[5], a, b);
        v[6] = _mm256_fmadd_ps(v[6], a, b);
        v[7] = _mm256_fmadd_ps(v[7], a, b);
        v[8] = _mm256_fmadd_ps(v[8], a, b);
        v[9] = _mm256_fmadd_ps(v[9], a, b);
        v[10] = _mm256_fmadd_ps(v[10], a, b);
        v[11] = _mm256_fmadd_ps(v[11], a, b);
    }
    __m256 s = v[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, v[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

#endif /* __x86_64__ */
