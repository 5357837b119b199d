/* gemm_avx512.c - fp32 GEMM micro-kernel, 8 x 32 tile, AVX-512F.
 *
 * Sixteen zmm accumulators (8 rows x 2 vectors of 16 columns); per depth
 * step two loads of B, eight broadcasts of A (folded into the FMAs as
 * embedded broadcasts) and sixteen FMAs: enough independent chains to hide
 * the FMA latency on two 512-bit pipes, with 16 registers to spare. Eight
 * rows divide every channel count of these networks, so no row of a tile
 * is wasted. Partial tiles use AVX-512 masks instead of a copy through a
 * buffer.
 *
 * Every output element is the same chain as in the AVX2 and NEON kernels:
 * (accumulate ? C : 0), then one FMA per depth step in increasing depth.
 * So this kernel gives the AVX2 kernel's bits exactly (tests/test_gemm.c).
 *
 * Compiled with -mavx512f -mavx2 -mfma (Makefile) and chosen at run time
 * (lib/cpu.c) only on a CPU that has all three. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"
#include "gemm_narrow_ymm.h"
#include "simd_avx512.h"

/* How far ahead (floats) the full tile prefetches its A panel: 2 KB, 64
 * depth steps. A layer's packed weights are read once per pass, from
 * memory (ResNet-50's 100 MB do not stay in cache), and a 7 x 7 layer has
 * too few columns to hide that stream: ResNet-50's layer4 convs took
 * 0.78-0.87x their time with 512 floats (0.90x with 256, the same with
 * 1024; kdcam bench --layers, 2026-12-07, Zen 5). */
enum { KDC__APF = 512 };
#define KDC__ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* The tile's left half (n <= 16): half the work for the narrow last column
 * panel (a 7x7 layer has 49 = 32 + 17 columns, a 14x14 one 196 = 6 x 32 +
 * 4), with the same FMA chain per element as the full tile. B rows are
 * still 32 floats apart. */
static void kdc__gemm_8x16_avx512(int k, const float *a, const float *b, float *c, size_t ldc,
                                  int m, int n, int accumulate)
{
    const __mmask16 mk = kdc__lanes16(n);
#define KDC__DECL(i)                                                                           \
    __m512 c##i = accumulate && (i) < m ? _mm512_maskz_loadu_ps(mk, c + (size_t)(i) * ldc)     \
                                        : _mm512_setzero_ps();
    KDC__ROWS(KDC__DECL)
#undef KDC__DECL
    for (int p = 0; p < k; p++, a += 8, b += 32) {
        const __m512 b0 = _mm512_loadu_ps(b);
#define KDC__FMA(i) c##i = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, c##i);
        KDC__ROWS(KDC__FMA)
#undef KDC__FMA
    }
#define KDC__STORE(i)                                                                          \
    if ((i) < m)                                                                               \
        _mm512_mask_storeu_ps(c + (size_t)(i) * ldc, mk, c##i);
    KDC__ROWS(KDC__STORE)
#undef KDC__STORE
}

/* The epilogue's backward form (kdc__gemm_epilogue.bmask) on 16 values x
 * of row r whose 16 mask bits are k: kdc__f32_relu_scale_backward_avx512's
 * operations writing a new gradient (0 + v * scale, v = 0 + x where the
 * gradient passes, +0 elsewhere), so the same bits. */
static inline __attribute__((always_inline)) __m512
kdc__bep16_avx512(const kdc__gemm_epilogue *ep, int r, __mmask16 k, __m512 x)
{
    const __m512 zero = _mm512_setzero_ps();
    if (ep->guided)
        k = _mm512_mask_cmp_ps_mask(k, x, zero, _CMP_GT_OQ);
    const __m512 v = _mm512_maskz_add_ps(k, zero, x);
    return _mm512_add_ps(zero, _mm512_mul_ps(v, _mm512_set1_ps(ep->scale[r])));
}

/* The 8 x 32 tile, its m x n corner (n > 16) stored through masks; with ep
 * (not NULL), through the epilogue of rows [row, row + m) first (res: the
 * residual tile, row stride ldres, or NULL). B is the packed panel b, or
 * with brow (not NULL) in place: row p at brow[p] + col
 * (kdc__gemm_rows_ukernel). Inlined into the kernels below, where ep and
 * brow are constants (NULL in the plain ones) and m, n are constant 8, 32
 * in the fused ones. */
static inline __attribute__((always_inline)) void
kdc__tile_8x32_avx512(int k, const float *a, const float *b, const float *const *brow, size_t col,
                      float *c, size_t ldc, int m, int n, int accumulate,
                      const kdc__gemm_epilogue *ep, int row, const float *res, size_t ldres)
{
    const __mmask16 m0 = kdc__lanes16(n), m1 = kdc__lanes16(n - 16);
#define KDC__DECL(i)                                                                           \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();                      \
    if (accumulate && (i) < m) {                                                               \
        c##i##0 = _mm512_maskz_loadu_ps(m0, c + (size_t)(i) * ldc);                            \
        c##i##1 = _mm512_maskz_loadu_ps(m1, c + (size_t)(i) * ldc + 16);                       \
    }
    KDC__ROWS(KDC__DECL)
#undef KDC__DECL

#define KDC__FMA(i)                                                                            \
    {                                                                                          \
        const __m512 av = _mm512_set1_ps(A[i]);                                                \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                                            \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                                            \
    }
#define KDC__STEP(A_, B_)                                                                      \
    do {                                                                                       \
        const float *A = (A_);                                                                 \
        const __m512 b0 = _mm512_loadu_ps(B_), b1 = _mm512_loadu_ps((B_) + 16);               \
        KDC__ROWS(KDC__FMA)                                                                    \
    } while (0)

    int p = 0;
    if (brow) { /* B in place: row p at brow[p] + col */
        for (; p + 4 <= k; p += 4, a += 32) {
            _mm_prefetch((const char *)(brow[p + 16] + col), _MM_HINT_T0);
            _mm_prefetch((const char *)(brow[p + 16] + col + 16), _MM_HINT_T0);
            KDC__STEP(a, brow[p] + col);
            _mm_prefetch((const char *)(brow[p + 17] + col), _MM_HINT_T0);
            _mm_prefetch((const char *)(brow[p + 17] + col + 16), _MM_HINT_T0);
            KDC__STEP(a + 8, brow[p + 1] + col);
            _mm_prefetch((const char *)(brow[p + 18] + col), _MM_HINT_T0);
            _mm_prefetch((const char *)(brow[p + 18] + col + 16), _MM_HINT_T0);
            KDC__STEP(a + 16, brow[p + 2] + col);
            _mm_prefetch((const char *)(a + KDC__APF), _MM_HINT_T0);
            _mm_prefetch((const char *)(a + KDC__APF + 16), _MM_HINT_T0);
            _mm_prefetch((const char *)(brow[p + 19] + col), _MM_HINT_T0);
            _mm_prefetch((const char *)(brow[p + 19] + col + 16), _MM_HINT_T0);
            KDC__STEP(a + 24, brow[p + 3] + col);
        }
        for (; p < k; p++, a += 8)
            KDC__STEP(a, brow[p] + col);
    }
    if (!brow) { /* packed: B panel rows 16 steps ahead, two cache lines a step */
        for (; p + 4 <= k; p += 4, a += 32, b += 128) {
            _mm_prefetch((const char *)(b + 512), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 528), _MM_HINT_T0);
            KDC__STEP(a, b);
            _mm_prefetch((const char *)(b + 544), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 560), _MM_HINT_T0);
            KDC__STEP(a + 8, b + 32);
            _mm_prefetch((const char *)(b + 576), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 592), _MM_HINT_T0);
            KDC__STEP(a + 16, b + 64);
            _mm_prefetch((const char *)(a + KDC__APF), _MM_HINT_T0);
            _mm_prefetch((const char *)(a + KDC__APF + 16), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 608), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 624), _MM_HINT_T0);
            KDC__STEP(a + 24, b + 96);
        }
        for (; p < k; p++, a += 8, b += 32)
            KDC__STEP(a, b);
    }
#undef KDC__STEP
#undef KDC__FMA

#define KDC__EP(i)                                                                             \
    if ((i) < m) {                                                                             \
        const float *rs = res ? res + (size_t)(i) * ldres : NULL;                              \
        const __m512 r0 = rs ? _mm512_maskz_loadu_ps(m0, rs) : _mm512_setzero_ps();            \
        const __m512 r1 = rs ? _mm512_maskz_loadu_ps(m1, rs + 16) : _mm512_setzero_ps();       \
        c##i##0 = kdc__ep16_avx512(ep, row + (i), rs != NULL, r0, c##i##0);                    \
        c##i##1 = kdc__ep16_avx512(ep, row + (i), rs != NULL, r1, c##i##1);                    \
    }
    /* the backward form: 32 mask bits of each row from column ep->bcol */
#define KDC__BEP(i)                                                                            \
    if ((i) < m) {                                                                             \
        const uint64_t *mk = ep->bmask + (size_t)(row + (i)) * ep->bwords;                    \
        c##i##0 = kdc__bep16_avx512(ep, row + (i),                                             \
                                    kdc__mask_bits16(mk, ep->bwords, (size_t)ep->bcol),        \
                                    c##i##0);                                                  \
        c##i##1 = kdc__bep16_avx512(ep, row + (i),                                             \
                                    kdc__mask_bits16(mk, ep->bwords, (size_t)ep->bcol + 16),   \
                                    c##i##1);                                                  \
    }
    if (ep && ep->bmask) {
        KDC__ROWS(KDC__BEP)
    } else if (ep) {
        KDC__ROWS(KDC__EP)
    }
#undef KDC__BEP
#undef KDC__EP
#define KDC__STORE(i)                                                                          \
    if ((i) < m) {                                                                             \
        _mm512_mask_storeu_ps(c + (size_t)(i) * ldc, m0, c##i##0);                             \
        _mm512_mask_storeu_ps(c + (size_t)(i) * ldc + 16, m1, c##i##1);                        \
    }
    KDC__ROWS(KDC__STORE)
#undef KDC__STORE
}

void kdc__f32_gemm_8x32_avx512(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                               int n, int accumulate)
{
    if (n <= 16)
        kdc__gemm_8x16_avx512(k, a, b, c, ldc, m, n, accumulate);
    else
        kdc__tile_8x32_avx512(k, a, b, NULL, 0, c, ldc, m, n, accumulate, NULL, 0, NULL, 0);
}

void kdc__f32_gemm_ep_8x32_avx512(int k, const float *a, const float *b, float *c, size_t ldc,
                                  int accumulate, const kdc__gemm_epilogue *ep, int row,
                                  const float *res, size_t ldres)
{
    kdc__tile_8x32_avx512(k, a, b, NULL, 0, c, ldc, 8, 32, accumulate, ep, row, res, ldres);
}

void kdc__f32_gemm_8x32_rows_avx512(int k, const float *a, const float *const *brow, size_t col,
                                    float *c, size_t ldc, int m, int accumulate)
{
    kdc__tile_8x32_avx512(k, a, NULL, brow, col, c, ldc, m, 32, accumulate, NULL, 0, NULL, 0);
}

void kdc__f32_gemm_ep_8x32_rows_avx512(int k, const float *a, const float *const *brow,
                                       size_t col, float *c, size_t ldc, int accumulate,
                                       const kdc__gemm_epilogue *ep, int row, const float *res,
                                       size_t ldres)
{
    kdc__tile_8x32_avx512(k, a, NULL, brow, col, c, ldc, 8, 32, accumulate, ep, row, res, ldres);
}

#undef KDC__ROWS

/* The narrow last columns (kdc__gemm_narrow_ukernel): gemm_narrow_ymm.h
 * with row panels of 8 (a panel's rows fill a ymm), B panels of 32
 * columns. */
void kdc__f32_gemm_narrow_avx512(int k, const float *a, size_t astride, const float *b, float *c,
                                 size_t ldc, int m, int n, int accumulate)
{
    kdc__gemm_narrow_ymm(k, a, astride, b, c, ldc, m, n, accumulate, 8, 32);
}

/* The epilogue in 16-lane steps (kdc__ep16_avx512), tails through a mask. */
void kdc__gemm_epilogue_avx512(const kdc__gemm_epilogue *ep, float *v, size_t ldv, int row, int m,
                               const float *res, size_t ldres, int n)
{
    if (ep->bmask) { /* the backward form, from any column */
        for (int i = 0; i < m; i++, v += ldv) {
            const uint64_t *mk = ep->bmask + (size_t)(row + i) * ep->bwords;
            for (int j = 0; j < n; j += 16) {
                const __mmask16 k = kdc__lanes16(n - j);
                const __mmask16 pass = kdc__mask_bits16(mk, ep->bwords, (size_t)ep->bcol + j) & k;
                _mm512_mask_storeu_ps(v + j, k, kdc__bep16_avx512(ep, row + i, pass,
                                                                  _mm512_maskz_loadu_ps(k, v + j)));
            }
        }
        return;
    }
    for (int i = 0; i < m; i++, v += ldv) {
        const float *rs = res ? res + (size_t)i * ldres : NULL;
        for (int j = 0; j < n; j += 16) {
            const __mmask16 k = kdc__lanes16(n - j);
            const __m512 rv = rs ? _mm512_maskz_loadu_ps(k, rs + j) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(v + j, k, kdc__ep16_avx512(ep, row + i, rs != NULL, rv,
                                                             _mm512_maskz_loadu_ps(k, v + j)));
        }
    }
}

float kdc__f32_fma_peak_avx512(long iters)
{
    __m512 v[16];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++)
        v[i] = _mm512_set1_ps((float)i);
    for (long t = 0; t < iters; t++) {
        v[0] = _mm512_fmadd_ps(v[0], a, b);
        v[1] = _mm512_fmadd_ps(v[1], a, b);
        v[2] = _mm512_fmadd_ps(v[2], a, b);
        v[3] = _mm512_fmadd_ps(v[3], a, b);
        v[4] = _mm512_fmadd_ps(v[4], a, b);
        v[5] = _mm512_fmadd_ps(v[5], a, b);
        v[6] = _mm512_fmadd_ps(v[6], a, b);
        v[7] = _mm512_fmadd_ps(v[7], a, b);
        v[8] = _mm512_fmadd_ps(v[8], a, b);
        v[9] = _mm512_fmadd_ps(v[9], a, b);
        v[10] = _mm512_fmadd_ps(v[10], a, b);
        v[11] = _mm512_fmadd_ps(v[11], a, b);
        v[12] = _mm512_fmadd_ps(v[12], a, b);
        v[13] = _mm512_fmadd_ps(v[13], a, b);
        v[14] = _mm512_fmadd_ps(v[14], a, b);
        v[15] = _mm512_fmadd_ps(v[15], a, b);
    }
    __m512 s = v[0];
    for (int i = 1; i < 16; i++)
        s = _mm512_add_ps(s, v[i]);
    return _mm512_reduce_add_ps(s);
}

#endif /* __x86_64__ */
