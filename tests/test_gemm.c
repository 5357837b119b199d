/* test_gemm.c - the packed GEMM (lib/kernels/gemm.c and the ISA files
 * beside it) and the fast dense convolutions built on it
 * (lib/run/conv_gemm.c), for every instruction set this CPU and build run
 * (the others are skipped, and say so).
 *
 * Tolerances. A float32 dot product of length k, summed in any order with
 * one rounding per multiply and per add, is within gamma_2k * sum |a_i b_i|
 * of the exact value, gamma_n = n u / (1 - n u), u = 2^-24 (Higham,
 * "Accuracy and Stability of Numerical Algorithms", 3.1); with fused
 * multiply-adds it is within gamma_k. So each element is checked against
 * a double-precision reference with the bound tol(k) * sum |a_i b_i|,
 * tol(k) = gamma_(2k+2) (two more roundings for a bias or an accumulated
 * start value), computed per element; against the float32 scalar reference
 * kernels (another float32 summation order) the two errors add, so the
 * bound is doubled. These are worst-case bounds: a kernel summing the
 * wrong terms, a wrong tap or a missing padding zero is off by the size of
 * a term, orders of magnitude beyond them.
 * Bitwise checks: the same kernel with 1 and 2 threads, and the fused
 * epilogue against the unfused ops. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(KDC_TEST_CMOCKA_SHIM) /* the aarch64 cross build (tools/test_neon.sh) */
#include "cmocka_shim.h"
#ifndef assert_memory_equal
#define assert_memory_equal(a, b, n) assert_true(memcmp((a), (b), (n)) == 0)
#endif
#ifndef assert_string_equal
#define assert_string_equal(a, b) assert_true(strcmp((a), (b)) == 0)
#endif
#else
#include <cmocka.h>
#endif

#include "conv_gemm.h"
#include "conv_wino.h"
#include "graph.h"
#include "kdcam.h"
#include "kernels.h"
#include "kit.h"
#include "weightgen.h"

/* The GEMM's depth block: shapes below cross it (k = KC + 4: two blocks) */
enum { KC = KDC__GEMM_KC };

/* Layer l of two runs of the same model and input, read into fresh buffers
 * (*a, *b; the caller frees them); returns the element count. */
static size_t read_layer_pair(kdc_run *ra, kdc_run *rb, int l, float **a, float **b)
{
    int s[4];
    assert_int_equal(kdc_run_layer_shape(ra, l, s), KDC_OK);
    const size_t cnt = (size_t)s[0] * s[1] * s[2] * s[3];
    *a = tk_xmalloc(cnt * sizeof **a);
    *b = tk_xmalloc(cnt * sizeof **b);
    assert_int_equal(kdc_run_read_layer(ra, l, *a, cnt), KDC_OK);
    assert_int_equal(kdc_run_read_layer(rb, l, *b, cnt), KDC_OK);
    return cnt;
}

static double gamma_n(double n)
{
    const double u = ldexp(1.0, -24);
    return n * u / (1.0 - n * u);
}

static const kdc__isa all_isas[] = {KDC__ISA_SCALAR, KDC__ISA_AVX2, KDC__ISA_AVX512,
                                     KDC__ISA_NEON};

/* ------------------------------------------------------------------ */
/* ISA queries                                                         */

static void test_isa(void **state)
{
    (void)state;
    assert_true(kdc__isa_supported(KDC__ISA_SCALAR));
    assert_true(kdc__isa_supported(kdc__isa_best()));
    assert_string_equal(kdc__isa_name(KDC__ISA_SCALAR), "scalar");
    assert_string_equal(kdc__isa_name(KDC__ISA_AVX2), "avx2");
    assert_string_equal(kdc__isa_name(KDC__ISA_NEON), "neon");
    assert_string_equal(kdc__isa_name(KDC__ISA_AVX512), "avx512");
    if (kdc__isa_supported(KDC__ISA_AVX512)) /* the best where it is there */
        assert_int_equal(kdc__isa_best(), KDC__ISA_AVX512);
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!kdc__isa_supported(all_isas[i])) {
            assert_null(gk);
            printf("  %s: not supported here, skipped\n", kdc__isa_name(all_isas[i]));
            continue;
        }
        assert_non_null(gk);
        assert_int_equal(gk->isa, all_isas[i]);
        assert_true(gk->mr >= 1 && gk->nr >= 1 && KDC__GEMM_MC % gk->mr == 0 &&
                    KDC__GEMM_NC % gk->nr == 0);
        printf("  %s: %s (%d x %d)\n", kdc__isa_name(all_isas[i]), gk->name, gk->mr, gk->nr);
    }
}

/* ------------------------------------------------------------------ */
/* GEMM driver and micro-kernels against a double product               */

/* C (m x n, ldc) = (acc ? C0 : 0) + A B through the driver; checks each
 * element against the double product within the bound of the header. */
static void check_gemm(const kdc__gemm_kernels *gk, int m, int n, int k, int acc, int m0)
{
    float *a = tk_rand_buf((size_t)m * k, -1, 1), *b = tk_rand_buf((size_t)k * n, -1, 1);
    const size_t ldc = (size_t)n + 3; /* a row stride wider than the row */
    float *c0 = tk_rand_buf((size_t)m * ldc, -1, 1), *c = tk_xmalloc((size_t)m * ldc * sizeof *c);
    memcpy(c, c0, (size_t)m * ldc * sizeof *c);
    float *pa = tk_xmalloc(kdc__gemm_packed_size(m, k, gk->mr) * sizeof *pa);
    float *work = tk_xmalloc(KDC__GEMM_WORK * sizeof *work);
    kdc__gemm_pack_a(a, k, 1, m, k, gk->mr, pa);
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++)
            assert_true(kdc__gemm_packed_at(pa, k, gk->mr, i, p) == a[(size_t)i * k + p]);
    kdc__gemm_b bs = {.x = b, .ld = (size_t)n};
    /* rows [m0, m) then [0, m0): two calls, as two tasks would */
    kdc__gemm(gk, pa, k, m0, m, &bs, 0, n, c, ldc, acc, NULL, work);
    if (m0 > 0)
        kdc__gemm(gk, pa, k, 0, m0, &bs, 0, n, c, ldc, acc, NULL, work);
    const double tol = gamma_n(2.0 * k + 2);
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = acc ? c0[(size_t)i * ldc + j] : 0.0, sa = fabs(s);
            for (int p = 0; p < k; p++) {
                double t = (double)a[(size_t)i * k + p] * b[(size_t)p * n + j];
                s += t;
                sa += fabs(t);
            }
            double err = fabs(c[(size_t)i * ldc + j] - s);
            if (!(err <= tol * sa + 1e-30)) {
                fail_msg("%s m=%d n=%d k=%d acc=%d: C[%d][%d] = %.9g, expected %.9g (err %.3g > "
                         "bound %.3g)", gk->name, m, n, k, acc, i, j, c[(size_t)i * ldc + j], s,
                         err, tol * sa);
            }
        }
        for (size_t j = (size_t)n; j < ldc; j++) /* padding of the rows untouched */
            assert_true(c[(size_t)i * ldc + j] == c0[(size_t)i * ldc + j]);
    }
    free(a);
    free(b);
    free(c0);
    free(c);
    free(pa);
    free(work);
}

static void test_gemm_driver(void **state)
{
    (void)state;
    /* m, n, k: tiny, not multiples of any tile, k = 1, and sizes crossing the
     * MC = 144, NC = 1024 and KC block boundaries (two and three depth
     * blocks) */
    static const int sizes[][3] = {
        {1, 1, 1},    {1, 17, 1},    {5, 7, 1},    {6, 16, 1},    {8, 8, 2},     {7, 17, 3},
        {13, 33, 5},  {3, 100, KC + 1}, {64, 49, 64}, {25, 31, KC + 44}, {145, 20, 19},
        {150, 1030, 9}, {9, 1041, 2 * KC + 8}, {200, 70, KC + 88},
        /* last panels of 1 to 4 columns (the narrow kernel) over many row
         * panels, a partial last one, two depth blocks */
        {1000, 1, KC + 44}, {100, 50, 70}, {61, 35, KC + 44}, {150, 196, KC + 4},
    };
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            const int m = sizes[s][0];
            /* split point: a panel boundary inside the rows */
            const int m0 = m > gk->mr ? (m / 2) / gk->mr * gk->mr : 0;
            check_gemm(gk, m, sizes[s][1], sizes[s][2], 0, m0);
            check_gemm(gk, m, sizes[s][1], sizes[s][2], 1, 0);
        }
    }
}

/* The epilogue's backward form (kdc__gemm_epilogue.bmask: a backward-data
 * GEMM carried on through a ReLU and its BatchNorm) against the unfused
 * pair, to the bit: the plain GEMM into C, then kdc__relu_scale_backward_ref
 * writing a new gradient from it. Every table, guided or not, shapes whose
 * columns end in whole tiles, a half tile, the narrow kernel and partial
 * row panels, two depth blocks, a column split at an odd column (the mask
 * read from any bit), C rows holding NaN before (never read), and GEMM
 * results of +-0 and values near the guided test (B rows of zeros). */
static void test_gemm_backward_epilogue(void **state)
{
    (void)state;
    static const int sizes[][3] = {
        {8, 32, 5},   {16, 64, 64}, {64, 196, KC + 44}, {13, 49, 17}, {40, 100, KC + 4},
        {7, 3, 9},    {24, 50, 1},  {9, 1041, 20},
    };
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
            for (int guided = 0; guided <= 1; guided++) {
                const int m = sizes[z][0], n = sizes[z][1], k = sizes[z][2];
                const size_t words = ((size_t)n + 63) / 64;
                float *a = tk_rand_buf((size_t)m * k, -1, 1), *b = tk_rand_buf((size_t)k * n, -1, 1);
                for (int j = 0; j < n; j += 5) /* columns of zeros: C = +-0 there */
                    for (int p = 0; p < k; p++)
                        b[(size_t)p * n + j] = p % 2 ? -0.0f : 0.0f;
                float *scale = tk_rand_buf((size_t)m, -2, 2);
                uint64_t *mask = tk_xmalloc((size_t)m * words * sizeof *mask);
                for (size_t w = 0; w < (size_t)m * words; w++)
                    mask[w] = 0x9e3779b97f4a7c15ull * (w + 1) ^ (w << 7);
                for (int r = 0; r < m; r++) /* bits past n are zero in a real mask */
                    if (n % 64)
                        mask[(size_t)r * words + words - 1] &= (1ull << (n % 64)) - 1;
                float *pa = tk_xmalloc(kdc__gemm_packed_size(m, k, gk->mr) * sizeof *pa);
                float *work = tk_xmalloc(KDC__GEMM_WORK * sizeof *work);
                kdc__gemm_pack_a(a, k, 1, m, k, gk->mr, pa);
                float *plain = tk_xmalloc((size_t)m * n * sizeof *plain);
                float *want = tk_xmalloc((size_t)m * n * sizeof *want);
                float *got = tk_xmalloc((size_t)m * n * sizeof *got);
                kdc__gemm_b bs = {.x = b, .ld = (size_t)n};
                kdc__gemm(gk, pa, k, 0, m, &bs, 0, n, plain, (size_t)n, 0, NULL, work);
                for (int r = 0; r < m; r++) /* one channel of hw = n per row */
                    kdc__relu_scale_backward_ref(plain + (size_t)r * n, mask + (size_t)r * words,
                                                 want + (size_t)r * n, (size_t)n, guided,
                                                 scale + r, 0, 1, 0);
                for (size_t q = 0; q < (size_t)m * n; q++)
                    got[q] = NAN;
                const kdc__gemm_epilogue ep = {.scale = scale, .bmask = mask, .bwords = words,
                                               .guided = guided};
                /* columns [0, n1) and [n1, n) as two tasks, n1 odd where it can be */
                const int n1 = n > 2 ? n / 2 | 1 : n;
                kdc__gemm(gk, pa, k, 0, m, &bs, 0, n1, got, (size_t)n, 0, &ep, work);
                if (n1 < n)
                    kdc__gemm(gk, pa, k, 0, m, &bs, n1, n, got, (size_t)n, 0, &ep, work);
                for (size_t q = 0; q < (size_t)m * n; q++)
                    if (memcmp(&got[q], &want[q], sizeof got[q]))
                        fail_msg("%s m=%d n=%d k=%d guided=%d: C[%zu][%zu] = %.9g, not the "
                                 "unfused %.9g", gk->name, m, n, k, guided, q / n, q % n,
                                 got[q], want[q]);
                free(a);
                free(b);
                free(scale);
                free(mask);
                free(pa);
                free(work);
                free(plain);
                free(want);
                free(got);
            }
    }
}

/* The fused epilogue's clamp on the values that test its every branch
 * (zeros of both signs, the clamp and its neighbours, infinities, NaN,
 * denormals), each table's against the scalar one, to the bit: the
 * epilogue pass (gk->epilogue) on such a block, and the GEMM's fused tiles
 * on C = A B = such values (depth 1, A = 1) with shifts of -0 and +0 and
 * scales of both signs, so that -0 reaches the clamp too. */
static void test_epilogue_special(void **state)
{
    (void)state;
    static const float special[] = {0.0f,       -0.0f,      6.0f,  INFINITY, -INFINITY, NAN,
                                    1e-42f,     -1e-42f,    5.9999995f, 6.0000005f, -3.5f, 2.5f};
    const size_t ns = sizeof special / sizeof *special;
    enum { M = 11, N = 53 };
    float v[M * N], shift[M], scale[M], bias[M], res[M * N];
    for (size_t i = 0; i < (size_t)M * N; i++) {
        v[i] = special[(i * 7 + i / N) % ns];
        res[i] = i % 3 ? -0.0f : special[i % ns];
    }
    for (int r = 0; r < M; r++) {
        shift[r] = r % 2 ? -0.0f : 0.0f;
        scale[r] = r % 3 ? 1.0f : -1.0f;
        bias[r] = r % 4 ? -0.0f : 0.5f;
    }
    float *a = tk_xmalloc(M * sizeof *a);
    for (int r = 0; r < M; r++)
        a[r] = 1.0f;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        float *pa = tk_xmalloc(kdc__gemm_packed_size(M, 1, gk->mr) * sizeof *pa);
        float *work = tk_xmalloc(KDC__GEMM_WORK * sizeof *work);
        kdc__gemm_pack_a(a, 1, 1, M, 1, gk->mr, pa);
        for (int shape = 0; shape < 8; shape++) {
            const kdc__gemm_epilogue ep = {.bias = shape & 1 ? bias : NULL,
                                           .scale = shape & 2 ? scale : NULL,
                                           .shift = shape & 2 ? shift : NULL,
                                           .res = shape & 4 ? res : NULL, .relu = 1,
                                           .clamp = shape % 3 ? 6.0f : INFINITY};
            float want[M * N], got[M * N], fused[M * N];
            memcpy(want, v, sizeof v);
            memcpy(got, v, sizeof v);
            kdc__gemm_epilogue_scalar(&ep, want, N, 0, M, ep.res, N, N);
            gk->epilogue(&ep, got, N, 0, M, ep.res, N, N);
            for (int q = 0; q < M * N; q++)
                if (memcmp(&got[q], &want[q], sizeof got[q]))
                    fail_msg("%s epilogue shape %d: v[%d] = %.9g -> %.9g, not %.9g", gk->name,
                             shape, q, v[q], got[q], want[q]);
            /* C = 1 * v + 0 (+0 where v is -0), then the fused tiles */
            const kdc__gemm_b bs = {.x = v, .ld = N};
            kdc__gemm(gk, pa, 1, 0, M, &bs, 0, N, fused, N, 0, &ep, work);
            kdc__gemm(gk, pa, 1, 0, M, &bs, 0, N, want, N, 0, NULL, work);
            kdc__gemm_epilogue_scalar(&ep, want, N, 0, M, ep.res, N, N);
            for (int q = 0; q < M * N; q++)
                if (memcmp(&fused[q], &want[q], sizeof fused[q]))
                    fail_msg("%s fused epilogue shape %d: C[%d] = %.9g, not %.9g", gk->name,
                             shape, q, fused[q], want[q]);
        }
        free(pa);
        free(work);
    }
    free(a);
}

/* kdc__gemm_pack_b_block on an implicit im2col against its definition,
 * to the bit (packing copies): panel column j of row p = (c, ky, kx) is
 * x[c][oy * s - pad + ky][ox * s - pad + kx] for output q = n0 + j, or +0
 * in the padding and past the last column. Kernels of 1 to 9 taps (packed
 * through a table of offsets) and larger (by runs of output rows), both
 * strides, pads 0 to 3, depth blocks from any tap, partial panels, the
 * tables' panel widths. */
static void test_pack_im2col(void **state)
{
    (void)state;
    static const int cases[][5] = {/* k, stride, pad, ih, iw */
                                   {3, 1, 1, 7, 7},  {3, 2, 1, 14, 13}, {1, 2, 0, 14, 14},
                                   {1, 1, 2, 5, 4},  {7, 2, 3, 23, 19}, {5, 1, 2, 9, 11},
                                   {3, 1, 0, 6, 5},  {3, 2, 3, 4, 6},   {7, 1, 3, 3, 2}};
    static const int nrs[] = {8, 16, 32};
    const int cin = 5;
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const int k = cases[t][0], s = cases[t][1], pad = cases[t][2], ih = cases[t][3],
                  iw = cases[t][4];
        const int oh = kdc__out_size(ih, k, s, pad), ow = kdc__out_size(iw, k, s, pad);
        const int K = cin * k * k, N = oh * ow;
        float *x = tk_rand_buf((size_t)cin * ih * iw, -1, 1);
        x[0] = -0.0f; /* a zero sign to keep */
        const kdc__gemm_b b = {.x = x, .ld = (size_t)N, .im2col = 1, .ih = ih, .iw = iw,
                               .kh = k, .kw = k, .stride = s, .pad = pad, .oh = oh, .ow = ow};
        for (size_t r = 0; r < sizeof nrs / sizeof *nrs; r++) {
            const int nr = nrs[r];
            const int p0s[] = {0, K / 3, K - 1};
            for (int pi = 0; pi < 3; pi++) {
                const int p0 = p0s[pi], kc = K - p0 < 40 ? K - p0 : 40;
                for (int n0 = 0; n0 < N; n0 += 3 * nr - 5) {
                    const int nc = N - n0 < 3 * nr ? N - n0 : 3 * nr;
                    const int panels = (nc + nr - 1) / nr;
                    float *d = tk_xmalloc((size_t)panels * kc * nr * sizeof *d);
                    kdc__gemm_pack_b_block(&b, p0, kc, n0, nc, nr, d);
                    for (int g = 0; g < panels; g++)
                        for (int p = 0; p < kc; p++)
                            for (int j = 0; j < nr; j++) {
                                const int row = p0 + p, c = row / (k * k);
                                const int ky = row % (k * k) / k, kx = row % k;
                                const int q = n0 + g * nr + j;
                                float want = 0.0f;
                                if (g * nr + j < nc) {
                                    const int iy = q / ow * s - pad + ky, ix = q % ow * s - pad + kx;
                                    if (iy >= 0 && iy < ih && ix >= 0 && ix < iw)
                                        want = x[((size_t)c * ih + iy) * iw + ix];
                                }
                                const float got = d[((size_t)g * kc + p) * nr + j];
                                if (memcmp(&got, &want, sizeof got))
                                    fail_msg("im2col k%d s%d p%d %dx%d nr %d p0 %d n0 %d: panel "
                                             "%d row %d col %d = %.9g, not %.9g", k, s, pad, ih,
                                             iw, nr, p0, n0, g, p, j, got, want);
                            }
                    free(d);
                }
            }
        }
        free(x);
    }
}

/* C (m x n) = A B through gk, which reads B in place, and through the
 * same table without its in-place forms, which packs it: the same bits,
 * for variant 0..5 = (no epilogue, a forward one: bias, BatchNorm,
 * residual, ReLU6; the backward form, guided) x (written, accumulated),
 * the columns in two calls as two tasks would split them (at a panel
 * boundary for variants 0-2, at an odd column for 3-5). */
static void check_inplace(const kdc__gemm_kernels *gk, const kdc__gemm_b *bs, int m, int n, int k,
                          int variant, const char *what)
{
    kdc__gemm_kernels packed = *gk;
    packed.gemm_rows = NULL;
    packed.gemm_ep_rows = NULL;
    const int acc = variant & 1, kind = variant / 2;
    const size_t words = ((size_t)n + 63) / 64;
    float *a = tk_rand_buf((size_t)m * k, -1, 1);
    float *bias = tk_rand_buf((size_t)m, -1, 1), *scale = tk_rand_buf((size_t)m, -2, 2);
    float *shift = tk_rand_buf((size_t)m, -1, 1), *res = tk_rand_buf((size_t)m * n, -1, 1);
    uint64_t *mask = tk_xmalloc((size_t)m * words * sizeof *mask);
    for (size_t w = 0; w < (size_t)m * words; w++)
        mask[w] = 0x9e3779b97f4a7c15ull * (w + 1) ^ (w << 7);
    kdc__gemm_epilogue ep = {0};
    if (kind == 1)
        ep = (kdc__gemm_epilogue){.bias = bias, .scale = scale, .shift = shift, .res = res,
                                  .relu = 1, .clamp = 6.0f};
    else if (kind == 2)
        ep = (kdc__gemm_epilogue){.scale = scale, .bmask = mask, .bwords = words, .guided = 1};
    const kdc__gemm_epilogue *e = kind ? &ep : NULL;
    float *pa = tk_xmalloc(kdc__gemm_packed_size(m, k, gk->mr) * sizeof *pa);
    float *work = tk_xmalloc(KDC__GEMM_WORK * sizeof *work);
    kdc__gemm_pack_a(a, k, 1, m, k, gk->mr, pa);
    float *want = tk_rand_buf((size_t)m * n, -1, 1);
    float *got = tk_xmalloc((size_t)m * n * sizeof *got);
    memcpy(got, want, (size_t)m * n * sizeof *got);
    const int n1 = variant < 3 ? n / 2 / gk->nr * gk->nr : n / 2 | 1;
    kdc__gemm(&packed, pa, k, 0, m, bs, 0, n1, want, (size_t)n, acc, e, work);
    kdc__gemm(&packed, pa, k, 0, m, bs, n1, n, want, (size_t)n, acc, e, work);
    kdc__gemm(gk, pa, k, 0, m, bs, 0, n1, got, (size_t)n, acc, e, work);
    kdc__gemm(gk, pa, k, 0, m, bs, n1, n, got, (size_t)n, acc, e, work);
    for (size_t q = 0; q < (size_t)m * n; q++)
        if (memcmp(&got[q], &want[q], sizeof got[q]))
            fail_msg("%s %s m=%d n=%d k=%d variant %d: C[%zu][%zu] = %.9g, packed %.9g", gk->name,
                     what, m, n, k, variant, q / n, q % n, got[q], want[q]);
    free(a);
    free(bias);
    free(scale);
    free(shift);
    free(res);
    free(mask);
    free(pa);
    free(work);
    free(want);
    free(got);
}

/* Dense B read in place (table entries gemm_rows, gemm_ep_rows: full
 * panels of a row-major B whose rows are whole cache lines, when the call
 * has at most KDC__GEMM_INPLACE_M rows and at least the table's depth
 * inplace_k, 32 with AVX-512 and 64 with AVX2):
 * check_inplace on shapes with a partial last panel (packed alone) and
 * narrow columns, rows in partial panels, two depth blocks. */
static void test_gemm_inplace(void **state)
{
    (void)state;
    /* m, n, k; then two outside the in-place rule (too many rows, too
     * shallow): packed either way, as the rule says; the last in place
     * with AVX-512 only (depth 40) */
    static const int sizes[][3] = {
        {64, 64, 64},   {128, 112, 256}, {13, 96, KC + 44}, {8, 48, 64}, {100, 1040, 70},
        {72, 208, KC + 4}, {129, 64, 96}, {64, 48, 31},       {64, 48, 40},
    };
    const size_t n_inplace = 6, n_sizes = sizeof sizes / sizeof *sizes;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk || !gk->gemm_rows)
            continue;
        for (size_t z = 0; z < n_sizes; z++) {
            const int m = sizes[z][0], n = sizes[z][1], k = sizes[z][2];
            float *b = tk_rand_buf((size_t)k * n, -1, 1);
            const kdc__gemm_b bs = {.x = b, .ld = (size_t)n};
            const int want = z < n_inplace || (z == n_sizes - 1 && gk->isa == KDC__ISA_AVX512);
            assert_int_equal(kdc__gemm_b_inplace(gk, &bs, m, k), want);
            for (int variant = 0; variant < 6; variant++)
                check_inplace(gk, &bs, m, n, k, variant, "dense B in place");
            free(b);
        }
    }
}

/* A shifted B (the phase planes of a padded, strided conv: row (c, ky, kx)
 * a run of phase plane (ky % s, kx % s) of channel c from row ky / s and
 * column kx / s) read in place: check_inplace with 3x3 kernels at strides 1
 * and 2 and a 7x7 at stride 2, depths in one and two blocks, partial row
 * and column panels. */
static void test_gemm_inplace_shifted(void **state)
{
    (void)state;
    /* m, channels, kernel, stride, phase-plane side, columns */
    static const int cases[][6] = {
        {61, 8, 3, 1, 24, 500}, {128, 16, 3, 2, 20, 330}, {45, 3, 7, 2, 30, 800},
        {72, 64, 3, 2, 12, 100},
    };
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk || !gk->gemm_rows)
            continue;
        for (size_t z = 0; z < sizeof cases / sizeof *cases; z++) {
            const int m = cases[z][0], ch = cases[z][1], kw = cases[z][2], st = cases[z][3];
            const int side = cases[z][4], n = cases[z][5], k = ch * kw * kw;
            const size_t pplane = (size_t)side * side, plane = (size_t)st * st * pplane;
            /* the last column's deepest tap stays inside the planes */
            assert_true((size_t)n + (size_t)(kw - 1) / st * (side + 1) <= pplane);
            float *x = tk_rand_buf((size_t)ch * plane, -1, 1);
            const kdc__gemm_b bs = {.x = x, .ld = (size_t)side, .im2col = 2, .kh = kw, .kw = kw,
                                    .stride = st, .plane = plane, .pplane = pplane};
            assert_true(kdc__gemm_b_inplace(gk, &bs, m, k));
            for (int variant = 0; variant < 6; variant++)
                check_inplace(gk, &bs, m, n, k, variant, "shifted B in place");
            free(x);
        }
    }
}

/* The narrow last panel (kernel table entry `narrow`) against the full
 * micro-kernel tile: C (m x n) computed alone and as the first n columns of
 * C' (m x n'), where n' fills the last panel, so the full tile computes
 * those columns; the same bits, with and without an epilogue (BatchNorm
 * affine, residual, ReLU6), accumulated or not, one or two depth blocks. */
static void test_gemm_narrow(void **state)
{
    (void)state;
    static const int sizes[][3] = {
        {1000, 1, 40}, {97, 2, KC + 44}, {13, 3, 7}, {150, 4, KC + 4}, {64, 49, 64},
        {512, 49, KC + 88}, {77, 196, 33}, {6, 17, 1},
    };
    int tried = 0;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk || !gk->narrow)
            continue;
        tried++;
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            const int m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
            const int nf = (n + gk->nr - 1) / gk->nr * gk->nr;
            /* the columns the narrow kernel takes: past the last whole
             * panel, or past its left half (the table's half) */
            const int wn = gk->half && n % gk->nr > gk->half ? n % gk->nr - gk->half : n % gk->nr;
            assert_true(wn >= 1 && wn <= KDC__GEMM_NARROW);
            float *a = tk_rand_buf((size_t)m * k, -1, 1), *bf = tk_rand_buf((size_t)k * nf, -1, 1);
            float *b = tk_xmalloc((size_t)k * n * sizeof *b);
            for (int p = 0; p < k; p++)
                memcpy(b + (size_t)p * n, bf + (size_t)p * nf, (size_t)n * sizeof *b);
            float *c0 = tk_rand_buf((size_t)m * nf, -1, 1), *res = tk_rand_buf((size_t)m * nf, -1, 1);
            float *sc = tk_rand_buf((size_t)m, 0.5, 1.5), *sh = tk_rand_buf((size_t)m, -0.5, 0.5);
            float *c = tk_xmalloc((size_t)m * n * sizeof *c), *cf = tk_xmalloc((size_t)m * nf * sizeof *cf);
            float *rn = tk_xmalloc((size_t)m * n * sizeof *rn);
            for (int r = 0; r < m; r++)
                memcpy(rn + (size_t)r * n, res + (size_t)r * nf, (size_t)n * sizeof *rn);
            float *pa = tk_xmalloc(kdc__gemm_packed_size(m, k, gk->mr) * sizeof *pa);
            float *work = tk_xmalloc(KDC__GEMM_WORK * sizeof *work);
            kdc__gemm_pack_a(a, k, 1, m, k, gk->mr, pa);
            const kdc__gemm_b bs = {.x = b, .ld = (size_t)n}, bsf = {.x = bf, .ld = (size_t)nf};
            for (int variant = 0; variant < 3; variant++) {
                const int acc = variant == 1;
                kdc__gemm_epilogue e = {.scale = sc, .shift = sh, .res = rn, .relu = 1,
                                        .clamp = 6.0f}, ef = e;
                ef.res = res;
                for (int r = 0; r < m; r++) {
                    memcpy(c + (size_t)r * n, c0 + (size_t)r * nf, (size_t)n * sizeof *c);
                    memcpy(cf + (size_t)r * nf, c0 + (size_t)r * nf, (size_t)nf * sizeof *cf);
                }
                kdc__gemm(gk, pa, k, 0, m, &bs, 0, n, c, (size_t)n, acc, variant == 2 ? &e : NULL,
                          work);
                kdc__gemm(gk, pa, k, 0, m, &bsf, 0, nf, cf, (size_t)nf, acc,
                          variant == 2 ? &ef : NULL, work);
                for (int r = 0; r < m; r++)
                    if (memcmp(c + (size_t)r * n, cf + (size_t)r * nf, (size_t)n * sizeof *c))
                        fail_msg("%s m=%d n=%d k=%d variant %d: row %d of the narrow panel "
                                 "differs from the full tile's", gk->name, m, n, k, variant, r);
            }
            free(a);
            free(bf);
            free(b);
            free(c0);
            free(res);
            free(sc);
            free(sh);
            free(c);
            free(cf);
            free(rn);
            free(pa);
            free(work);
        }
    }
    if (!tried)
        printf("  no kernel table of this CPU has a narrow kernel: skipped\n");
}

/* The micro-kernel alone on every corner m x n <= mr x nr: only the corner
 * is written, and the values follow the contract. */
static void test_ukernels(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        const int mr = gk->mr, nr = gk->nr;
        for (int k = 1; k <= 9; k += 4)
            for (int m = 1; m <= mr; m++)
                for (int n = 1; n <= nr; n++)
                    for (int acc = 0; acc < 2; acc++) {
                        float *a = tk_rand_buf((size_t)mr * k, -1, 1);
                        float *b = tk_rand_buf((size_t)nr * k, -1, 1);
                        const size_t ldc = (size_t)nr + 5;
                        float *c0 = tk_rand_buf((size_t)(mr + 1) * ldc, -1, 1);
                        float *c = tk_xmalloc((size_t)(mr + 1) * ldc * sizeof *c);
                        memcpy(c, c0, (size_t)(mr + 1) * ldc * sizeof *c);
                        gk->gemm(k, a, b, c, ldc, m, n, acc);
                        for (int r = 0; r <= mr; r++)
                            for (size_t j = 0; j < ldc; j++) {
                                const size_t at = (size_t)r * ldc + j;
                                if (r >= m || (int)j >= n) {
                                    assert_true(c[at] == c0[at]);
                                    continue;
                                }
                                double s = acc ? c0[at] : 0.0, sa = fabs(s);
                                for (int p = 0; p < k; p++) {
                                    double t = (double)a[p * mr + r] * b[p * nr + (int)j];
                                    s += t;
                                    sa += fabs(t);
                                }
                                assert_true(fabs(c[at] - s) <= gamma_n(2.0 * k + 2) * sa);
                            }
                        free(a);
                        free(b);
                        free(c0);
                        free(c);
                    }
    }
}

/* ------------------------------------------------------------------ */
/* Convolutions                                                        */

typedef struct conv_case {
    int cin, cout, k, stride, pad, ih, iw, bias;
} conv_case;

/* odd sizes, strides 1 and 2, pads 0..3, kernels 1, 3, 7 */
static const conv_case conv_cases[] = {
    {3, 5, 7, 2, 3, 23, 19, 0},  /* the stem's shape, small            */
    {3, 11, 3, 2, 1, 37, 71, 1}, /* a MobileNet stem (conv_stem), bias */
    {7, 13, 3, 1, 1, 9, 11, 0},  /* 3x3 stride 1                       */
    {17, 10, 3, 2, 1, 15, 13, 1}, /* 3x3 stride 2, bias                */
    {19, 21, 1, 2, 0, 11, 9, 0}, /* 1x1 stride 2 (downsample)          */
    {33, 70, 1, 1, 0, 13, 17, 1}, /* 1x1 stride 1: directly on NCHW     */
    {5, 7, 3, 1, 0, 6, 5, 0},    /* no padding                         */
    {4, 9, 3, 1, 2, 5, 7, 1},    /* pad 2                              */
    {6, 8, 3, 2, 3, 4, 6, 0},    /* pad 3 > k / 2, tiny image          */
    {2, 3, 7, 1, 3, 3, 2, 1},    /* kernel larger than the image       */
    {40, 150, 3, 1, 1, 7, 7, 0}, /* layer4-like: 7x7, rows > MC        */
    {3, 20, 1, 1, 2, 5, 4, 0},   /* 1x1 with padding goes through im2col */
    {300, 17, 1, 1, 0, 1, 1, 1}, /* a fully connected layer            */
    {KC + 4, 14, 1, 1, 0, 5, 8, 1}, /* 1x1, two depth blocks: the fused
                                  * epilogue after an accumulation    */
    /* backward-data columns over KDC__COLS_MAX floats: formed in 2 and 3
     * bands of input rows (sched.h) */
    {64, 8, 3, 1, 1, 96, 90, 0},
    {48, 6, 5, 2, 2, 200, 150, 1},
};

typedef struct conv_fixture {
    kdc__conv_param cp;
    float *w, *bias, *packed, *packed_t;
    int oh, ow;
} conv_fixture;

static void conv_setup(const kdc__gemm_kernels *gk, const conv_case *cc, conv_fixture *f)
{
    memset(f, 0, sizeof *f);
    const int kk = cc->k * cc->k, K = cc->cin * kk;
    f->w = tk_rand_buf((size_t)cc->cout * K, -1, 1);
    f->bias = cc->bias ? tk_rand_buf((size_t)cc->cout, -1, 1) : NULL;
    f->packed = tk_xmalloc(kdc__gemm_packed_size(cc->cout, K, gk->mr) * sizeof(float));
    f->packed_t = tk_xmalloc(kdc__gemm_packed_size(K, cc->cout, gk->mr) * sizeof(float));
    kdc__gemm_pack_a(f->w, K, 1, cc->cout, K, gk->mr, f->packed);
    kdc__gemm_pack_a(f->w, 1, K, K, cc->cout, gk->mr, f->packed_t);
    f->cp = (kdc__conv_param){.cin = cc->cin, .cout = cc->cout, .kh = cc->k, .kw = cc->k,
                              .stride = cc->stride, .pad = cc->pad, .groups = 1, .weight = f->w,
                              .bias = f->bias, .packed = f->packed};
    f->oh = kdc__out_size(cc->ih, cc->k, cc->stride, cc->pad);
    f->ow = kdc__out_size(cc->iw, cc->k, cc->stride, cc->pad);
}

static void conv_teardown(conv_fixture *f)
{
    free(f->w);
    free(f->bias);
    free(f->packed);
    free(f->packed_t);
}

/* Sum of |w * x| over the terms of each output (double), for the bounds. */
static void conv_abs_terms(const kdc__conv_param *cp, const float *x, int n, int ih, int iw,
                           double *s, int oh, int ow)
{
    for (int b = 0; b < n; b++)
        for (int oc = 0; oc < cp->cout; oc++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double a = cp->bias ? fabs(cp->bias[oc]) : 0.0;
                    for (int ic = 0; ic < cp->cin; ic++)
                        for (int ky = 0; ky < cp->kh; ky++)
                            for (int kx = 0; kx < cp->kw; kx++) {
                                int iy = oy * cp->stride + ky - cp->pad;
                                int ix = ox * cp->stride + kx - cp->pad;
                                if (iy < 0 || iy >= ih || ix < 0 || ix >= iw)
                                    continue;
                                a += fabs((double)cp->weight[((size_t)oc * cp->cin + ic) *
                                                                 cp->kh * cp->kw +
                                                             ky * cp->kw + kx] *
                                          x[(((size_t)b * cp->cin + ic) * ih + iy) * iw + ix]);
                            }
                    s[(((size_t)b * cp->cout + oc) * oh + oy) * ow + ox] = a;
                }
}

static void pools(kdc__pool **p1, kdc__pool **p2, kdc__work *w1, kdc__work *w2)
{
    assert_int_equal(kdc__pool_create(1, p1), KDC_OK);
    assert_int_equal(kdc__pool_create(2, p2), KDC_OK);
    memset(w1, 0, sizeof *w1);
    memset(w2, 0, sizeof *w2);
    assert_int_equal(kdc__work_reserve(w1, 1), KDC_OK);
    assert_int_equal(kdc__work_reserve(w2, 2), KDC_OK);
}

/* The epilogue of test mode `mode` (0: BN affine, 1: + ReLU, 2: + residual
 * and ReLU6) applied by the unfused reference ops to the conv outputs y of
 * n images of cout planes of ohw, into u: what a fused conv must give to
 * the bit. */
static void unfused_epilogue(const float *y, int n, int cout, size_t ohw, const float *scale,
                             const float *shift, const float *res, int mode, float *u)
{
    const size_t img = (size_t)cout * ohw;
    for (int b = 0; b < n; b++) {
        kdc__affine_ref(y + b * img, u + b * img, cout, ohw, scale, shift, 0, cout);
        if (mode == 1)
            kdc__relu_ref(u + b * img, u + b * img, 0, img, INFINITY);
        if (mode == 2)
            kdc__add_relu_ref(u + b * img, res + b * img, u + b * img, 0, img, 6.0f);
    }
}

static void test_conv_forward(void **state)
{
    (void)state;
    kdc__pool *p1, *p2;
    kdc__work w1, w2;
    pools(&p1, &p2, &w1, &w2);
    const int n = 2;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        double worst = 0.0;
        for (size_t t = 0; t < sizeof conv_cases / sizeof *conv_cases; t++) {
            const conv_case *cc = &conv_cases[t];
            conv_fixture f;
            conv_setup(gk, cc, &f);
            const size_t nin = (size_t)n * cc->cin * cc->ih * cc->iw;
            const size_t nout = (size_t)n * cc->cout * f.oh * f.ow;
            float *x = tk_rand_buf(nin, -1, 1);
            float *ref = tk_xmalloc(nout * sizeof *ref), *y1 = tk_xmalloc(nout * sizeof *y1);
            float *y2 = tk_xmalloc(nout * sizeof *y2);
            double *abs_terms = tk_xmalloc(nout * sizeof *abs_terms);
            for (int b = 0; b < n; b++)
                kdc__conv2d_ref(&f.cp, x, cc->ih, cc->iw, ref, f.oh, f.ow, b, 0, cc->cout);
            /* w0 has no conv buffers: stride-1 convs take the im2col path;
             * w1 and w2 have them: the padded "wide" path */
            kdc__work w0 = {0};
            assert_int_equal(kdc__work_reserve(&w0, 1), KDC_OK);
            assert_int_equal(kdc__conv_reserve(&w1, &f.cp, cc->ih, cc->iw, f.oh, f.ow), KDC_OK);
            assert_int_equal(kdc__conv_reserve(&w2, &f.cp, cc->ih, cc->iw, f.oh, f.ow), KDC_OK);
            float *y0 = tk_xmalloc(nout * sizeof *y0);
            kdc__conv2d_fast(p1, &w0, gk, &f.cp, x, n, cc->ih, cc->iw, y0, f.oh, f.ow, NULL);
            kdc__conv2d_fast(p1, &w1, gk, &f.cp, x, n, cc->ih, cc->iw, y1, f.oh, f.ow, NULL);
            kdc__conv2d_fast(p2, &w2, gk, &f.cp, x, n, cc->ih, cc->iw, y2, f.oh, f.ow, NULL);
            kdc__work_free(&w0);
            conv_abs_terms(&f.cp, x, n, cc->ih, cc->iw, abs_terms, f.oh, f.ow);
            const int K = cc->cin * cc->k * cc->k;
            const double tol = 2.0 * gamma_n(2.0 * K + 2);
            for (size_t e = 0; e < nout; e++) {
                for (int v = 0; v < 2; v++) {
                    const float got = v ? y1[e] : y0[e];
                    const double err = fabs((double)got - ref[e]);
                    if (!(err <= tol * abs_terms[e]))
                        fail_msg("%s case %zu (%s path): y[%zu] = %.9g, reference %.9g (err "
                                 "%.3g > %.3g)", gk->name, t, v ? "wide" : "im2col", e, got,
                                 ref[e], err, tol * abs_terms[e]);
                    if (abs_terms[e] > 0 && err / abs_terms[e] > worst)
                        worst = err / abs_terms[e];
                }
            }
            free(y0);
            assert_memory_equal(y1, y2, nout * sizeof *y1); /* 1 vs 2 threads */

            /* the fused epilogue against the unfused ops, to the bit */
            float *scale = tk_rand_buf((size_t)cc->cout, -2, 2), *shift = tk_rand_buf((size_t)cc->cout, -1, 1);
            float *res = tk_rand_buf(nout, -1, 1), *fused = tk_xmalloc(nout * sizeof *fused);
            const size_t ohw = (size_t)f.oh * f.ow;
            for (int mode = 0; mode < 3; mode++) {
                kdc__gemm_epilogue ep = {.scale = scale, .shift = shift, .relu = mode > 0,
                                         .clamp = mode == 2 ? 6.0f : INFINITY,
                                         .res = mode == 2 ? res : NULL};
                kdc__conv2d_fast(mode == 1 ? p2 : p1, mode == 1 ? &w2 : &w1, gk, &f.cp, x, n,
                                 cc->ih, cc->iw, fused, f.oh, f.ow, &ep);
                float *u = tk_xmalloc(nout * sizeof *u);
                unfused_epilogue(y1, n, cc->cout, ohw, scale, shift, res, mode, u);
                assert_memory_equal(fused, u, nout * sizeof *u);
                free(u);
            }
            free(scale);
            free(shift);
            free(res);
            free(fused);
            free(x);
            free(ref);
            free(y1);
            free(y2);
            free(abs_terms);
            conv_teardown(&f);
        }
        printf("  %s forward: worst |fast - ref| / sum|w x| = %.3g (bound for K = 9: %.3g)\n",
               gk->name, worst, 2.0 * gamma_n(20));
    }
    kdc__work_free(&w1);
    kdc__work_free(&w2);
    kdc__pool_destroy(p1);
    kdc__pool_destroy(p2);
}

/* A LINEAR over a batch runs as one GEMM with the images as columns
 * (kdc__conv2d_fast): each image's outputs to the bit as when run alone,
 * with and without a bias and an epilogue, on 1 and 2 threads, batches of
 * 2 to 33 (columns in a partial panel, the narrow kernel, full panels of
 * both tables, B read in place). */
static void test_linear_batch(void **state)
{
    (void)state;
    kdc__pool *p1, *p2;
    kdc__work w1, w2;
    pools(&p1, &p2, &w1, &w2);
    static const conv_case cases[] = {{300, 17, 1, 1, 0, 1, 1, 1}, {KC + 4, 40, 1, 1, 0, 1, 1, 0}};
    static const int batches[] = {2, 5, 9, 32, 33};
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
            const conv_case *cc = &cases[t];
            conv_fixture f;
            conv_setup(gk, cc, &f);
            float *scale = tk_rand_buf((size_t)cc->cout, -2, 2);
            float *shift = tk_rand_buf((size_t)cc->cout, -1, 1);
            for (size_t z = 0; z < sizeof batches / sizeof *batches; z++) {
                const int n = batches[z];
                float *x = tk_rand_buf((size_t)n * cc->cin, -1, 1);
                float *got = tk_xmalloc((size_t)n * cc->cout * sizeof *got);
                float *want = tk_xmalloc((size_t)cc->cout * sizeof *want);
                for (int mode = 0; mode < 2; mode++)
                    for (int threads = 1; threads <= 2; threads++) {
                        const kdc__gemm_epilogue ep = {.scale = scale, .shift = shift, .relu = 1,
                                                       .clamp = INFINITY};
                        kdc__pool *p = threads == 1 ? p1 : p2;
                        kdc__work *w = threads == 1 ? &w1 : &w2;
                        kdc__conv2d_fast(p, w, gk, &f.cp, x, n, 1, 1, got, 1, 1,
                                         mode ? &ep : NULL);
                        for (int b = 0; b < n; b++) {
                            kdc__conv2d_fast(p1, &w1, gk, &f.cp, x + (size_t)b * cc->cin, 1, 1,
                                             1, want, 1, 1, mode ? &ep : NULL);
                            if (memcmp(got + (size_t)b * cc->cout, want,
                                       (size_t)cc->cout * sizeof *want))
                                fail_msg("%s linear %dx%d, batch %d, image %d, mode %d, %d "
                                         "thread(s): not the bits of the image alone",
                                         gk->name, cc->cin, cc->cout, n, b, mode, threads);
                        }
                    }
                free(x);
                free(got);
                free(want);
            }
            free(scale);
            free(shift);
            conv_teardown(&f);
        }
    }
    kdc__work_free(&w1);
    kdc__work_free(&w2);
    kdc__pool_destroy(p1);
    kdc__pool_destroy(p2);
}

/* The direct stem conv (the table's conv_stem: 3x3, stride 2, pad 1, up
 * to KDC__CONV_STEM_CIN input channels) against the same table without it
 * (the GEMM path), to the bit: 1 to 4 input channels, partial panels of
 * output channels, rows of one to several 32-output blocks with partial
 * last ones, odd and even sizes, no epilogue, bias + affine + ReLU, affine
 * + residual + ReLU6, on 1 and 2 threads, and the ReLU masks of a
 * recording pass. */
static void test_conv_stem(void **state)
{
    (void)state;
    kdc__pool *p1, *p2;
    kdc__work w1, w2;
    pools(&p1, &p2, &w1, &w2);
    static const conv_case cases[] = {
        {3, 32, 3, 2, 1, 224, 224, 0}, {3, 13, 3, 2, 1, 37, 71, 1}, {1, 8, 3, 2, 1, 2, 2, 0},
        {2, 9, 3, 2, 1, 64, 65, 1},    {4, 17, 3, 2, 1, 31, 30, 0}, {3, 5, 3, 2, 1, 1, 97, 1},
    };
    const int n = 2;
    int ran = 0;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk || !gk->conv_stem)
            continue;
        kdc__gemm_kernels plain = *gk;
        plain.conv_stem = NULL;
        for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
            const conv_case *cc = &cases[t];
            conv_fixture f;
            conv_setup(gk, cc, &f);
            assert_true(kdc__conv_is_stem(gk, &f.cp));
            assert_false(kdc__conv_is_stem(&plain, &f.cp));
            const size_t ohw = (size_t)f.oh * f.ow, nout = (size_t)n * cc->cout * ohw;
            const size_t words = (ohw + 63) / 64, nmask = (size_t)n * cc->cout * words;
            float *x = tk_rand_buf((size_t)n * cc->cin * cc->ih * cc->iw, -1, 1);
            float *scale = tk_rand_buf((size_t)cc->cout, -2, 2);
            float *shift = tk_rand_buf((size_t)cc->cout, -1, 1), *res = tk_rand_buf(nout, -1, 1);
            float *want = tk_xmalloc(nout * sizeof *want), *got = tk_xmalloc(nout * sizeof *got);
            uint64_t *mwant = tk_xmalloc(nmask * sizeof *mwant);
            uint64_t *mgot = tk_xmalloc(nmask * sizeof *mgot);
            assert_int_equal(kdc__conv_reserve(&w1, &f.cp, cc->ih, cc->iw, f.oh, f.ow), KDC_OK);
            for (int mode = 0; mode < 3; mode++)
                for (int threads = 1; threads <= 2; threads++) {
                    kdc__gemm_epilogue ep = {.scale = scale, .shift = shift, .relu = mode > 0,
                                             .clamp = mode == 2 ? 6.0f : INFINITY,
                                             .res = mode == 2 ? res : NULL};
                    const kdc__act_kernels *ak = kdc__act_kernels_get(gk->isa);
                    kdc__mask_rec rw = {.fn = ak->relu_mask, .mask = mwant};
                    kdc__mask_rec rg = {.fn = ak->relu_mask, .mask = mgot};
                    memset(mwant, 0xa5, nmask * sizeof *mwant);
                    memset(mgot, 0x5a, nmask * sizeof *mgot);
                    kdc__gemm_epilogue ew = ep, eg = ep;
                    if (mode) {
                        ew.rec = &rw;
                        eg.rec = &rg;
                    }
                    kdc__conv2d_fast(p1, &w1, &plain, &f.cp, x, n, cc->ih, cc->iw, want, f.oh,
                                     f.ow, mode ? &ew : NULL);
                    kdc__conv2d_fast(threads == 1 ? p1 : p2, threads == 1 ? &w1 : &w2, gk,
                                     &f.cp, x, n, cc->ih, cc->iw, got, f.oh, f.ow,
                                     mode ? &eg : NULL);
                    for (size_t e = 0; e < nout; e++)
                        if (memcmp(&got[e], &want[e], sizeof got[e]))
                            fail_msg("%s stem case %zu mode %d, %d thread(s): y[%zu] = %.9g, "
                                     "the GEMM path's %.9g",
                                     gk->name, t, mode, threads, e, got[e], want[e]);
                    if (mode) {
                        assert_true(rw.done && rg.done);
                        assert_memory_equal(mgot, mwant, nmask * sizeof *mgot);
                    }
                    ran++;
                }
            free(x);
            free(scale);
            free(shift);
            free(res);
            free(want);
            free(got);
            free(mwant);
            free(mgot);
            conv_teardown(&f);
        }
    }
    printf("  conv_stem: %d comparisons with the GEMM path\n", ran);
    kdc__work_free(&w1);
    kdc__work_free(&w2);
    kdc__pool_destroy(p1);
    kdc__pool_destroy(p2);
    if (!ran)
        skip(); /* no table with conv_stem on this CPU or build */
}

/* ------------------------------------------------------------------ */
/* Winograd F(2x2, 3x3) (lib/run/conv_wino.c)                          */

/* Each Winograd output is A^T [sum_c U_c (.) V_c] A with U = G g G^T and
 * V = B^T d B computed in float. Bound (Higham's componentwise analysis,
 * as for the direct conv above): every value is a sum and product of
 * float terms with at most 3 roundings for U, 3 for V, cin for the sum
 * over channels (plus 1 per product), 4 for the output transform and 1
 * for the bias, so |err| <= gamma_(cin + 12) * the same expression with
 * every matrix and value replaced by its absolute value:
 *     S = |bias| + |A^T| [sum_c (|G| |g| |G|^T) (.) (|B^T| |d| |B|)] |A|.
 * Doubled for safety margin against the float summation order of the
 * double reference (which is exact to 1e-16 here). A wrong tap, tile or
 * padding zero is off by a whole term, far beyond it. */
typedef struct wino_case {
    int cin, cout, ih, iw, bias;
} wino_case;

static const wino_case wino_cases[] = {
    {7, 13, 11, 13, 0},  /* odd sizes: the last tile row and column half outside */
    {1, 3, 16, 16, 1},   /* one input channel, bias                               */
    {40, 150, 12, 12, 0},/* rows > MC, 36 tiles                                   */
    {17, 9, 9, 31, 1},   /* one wide row of tiles                                 */
    {64, 64, 20, 18, 0}, /* a ResNet-like block                                   */
    {8, 150, 60, 60, 1}, /* 900 tiles: 57 column panels, 25 row panels, bias      */
};

static const double wino_bt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double wino_g[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
static const double wino_at[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

/* S of every output of one image (see above), double. */
static void wino_abs_bound(const conv_fixture *f, const float *x, int ih, int iw, double *s)
{
    const kdc__conv_param *cp = &f->cp;
    const int th = (f->oh + 1) / 2, tw = (f->ow + 1) / 2;
    double *su = tk_xmalloc((size_t)cp->cout * cp->cin * 16 * sizeof *su);
    for (int o = 0; o < cp->cout; o++)
        for (int c = 0; c < cp->cin; c++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    double a = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            a += fabs(wino_g[i][ky]) * fabs(wino_g[j][kx]) *
                                 fabs(cp->weight[((size_t)o * cp->cin + c) * 9 + ky * 3 + kx]);
                    su[(((size_t)o * cp->cin + c) * 4 + i) * 4 + j] = a;
                }
    double *sv = tk_xmalloc((size_t)cp->cin * 16 * sizeof *sv);
    for (int ty = 0; ty < th; ty++)
        for (int tx = 0; tx < tw; tx++) {
            for (int c = 0; c < cp->cin; c++)
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        double a = 0;
                        for (int r = 0; r < 4; r++)
                            for (int q = 0; q < 4; q++) {
                                const int y = 2 * ty - 1 + r, xx = 2 * tx - 1 + q;
                                if (y < 0 || y >= ih || xx < 0 || xx >= iw)
                                    continue;
                                a += fabs(wino_bt[i][r]) * fabs(wino_bt[j][q]) *
                                     fabs(x[((size_t)c * ih + y) * iw + xx]);
                            }
                        sv[(c * 4 + i) * 4 + j] = a;
                    }
            for (int o = 0; o < cp->cout; o++) {
                double m[4][4] = {{0}};
                for (int c = 0; c < cp->cin; c++)
                    for (int e = 0; e < 16; e++)
                        m[e / 4][e % 4] += su[((size_t)o * cp->cin + c) * 16 + e] * sv[c * 16 + e];
                for (int yi = 0; yi < 2; yi++)
                    for (int xi = 0; xi < 2; xi++) {
                        const int oy = 2 * ty + yi, ox = 2 * tx + xi;
                        if (oy >= f->oh || ox >= f->ow)
                            continue;
                        double a = cp->bias ? fabs(cp->bias[o]) : 0.0;
                        for (int i = 0; i < 4; i++)
                            for (int j = 0; j < 4; j++)
                                a += fabs(wino_at[yi][i]) * fabs(wino_at[xi][j]) * m[i][j];
                        s[((size_t)o * f->oh + oy) * f->ow + ox] = a;
                    }
            }
        }
    free(su);
    free(sv);
}

/* The direct convolution in double (the reference). */
static void conv_double(const kdc__conv_param *cp, const float *x, int ih, int iw, double *y,
                        int oh, int ow)
{
    for (int o = 0; o < cp->cout; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double a = cp->bias ? cp->bias[o] : 0.0;
                for (int c = 0; c < cp->cin; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            const int iy = oy + ky - 1, ix = ox + kx - 1;
                            if (iy < 0 || iy >= ih || ix < 0 || ix >= iw)
                                continue;
                            a += (double)cp->weight[((size_t)o * cp->cin + c) * 9 + ky * 3 + kx] *
                                 x[((size_t)c * ih + iy) * iw + ix];
                        }
                y[((size_t)o * oh + oy) * ow + ox] = a;
            }
}

static void test_conv_winograd(void **state)
{
    (void)state;
    /* which convs take it: dense 3x3 stride 1 pad 1 with enough tiles */
    kdc__conv_param q = {.cin = 8, .cout = 8, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                         .groups = 1, .packed = (const float *)&q};
    assert_true(kdc__wino_eligible(&q, 14, 14));  /* 49 tiles   */
    assert_false(kdc__wino_eligible(&q, 7, 7));   /* 16 tiles   */
    q.stride = 2;
    assert_false(kdc__wino_eligible(&q, 28, 28));
    q.stride = 1;
    q.pad = 0;
    assert_false(kdc__wino_eligible(&q, 28, 28));
    q.pad = 1;
    q.kh = q.kw = 1;
    assert_false(kdc__wino_eligible(&q, 28, 28));
    q.kh = q.kw = 3;
    q.groups = 8;
    assert_false(kdc__wino_eligible(&q, 28, 28));
    q.groups = 1;
    q.packed = NULL; /* the scalar reference path */
    assert_false(kdc__wino_eligible(&q, 28, 28));

    kdc__pool *p1, *p2;
    kdc__work w1, w2;
    pools(&p1, &p2, &w1, &w2);
    const int n = 2;
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        double worst = 0.0, worst_rel_l2 = 0.0, worst_bwd = 0.0;
        for (size_t t = 0; t < sizeof wino_cases / sizeof *wino_cases; t++) {
            const wino_case *wc = &wino_cases[t];
            const conv_case cc = {wc->cin, wc->cout, 3, 1, 1, wc->ih, wc->iw, wc->bias};
            conv_fixture f;
            conv_setup(gk, &cc, &f);
            assert_true(kdc__wino_eligible(&f.cp, f.oh, f.ow));
            float *u = tk_xmalloc(kdc__wino_weights_size(&f.cp, gk->mr, 0) * sizeof *u);
            kdc__wino_weights(&f.cp, gk->mr, 0, u);
            const size_t img_in = (size_t)cc.cin * cc.ih * cc.iw;
            const size_t img = (size_t)cc.cout * f.oh * f.ow, nout = n * img;
            float *x = tk_rand_buf(n * img_in, -1, 1);
            float *y1 = tk_xmalloc(nout * sizeof *y1), *y2 = tk_xmalloc(nout * sizeof *y2);
            assert_int_equal(kdc__wino_reserve(&w1, &f.cp, f.oh, f.ow), KDC_OK);
            assert_int_equal(kdc__wino_reserve(&w2, &f.cp, f.oh, f.ow), KDC_OK);
            kdc__conv2d_wino(p1, &w1, gk, &f.cp, u, x, n, cc.ih, cc.iw, y1, f.oh, f.ow, NULL);
            kdc__conv2d_wino(p2, &w2, gk, &f.cp, u, x, n, cc.ih, cc.iw, y2, f.oh, f.ow, NULL);
            assert_memory_equal(y1, y2, nout * sizeof *y1); /* 1 vs 2 threads */
            double *ref = tk_xmalloc(img * sizeof *ref), *s = tk_xmalloc(img * sizeof *s);
            const double tol = 2.0 * gamma_n(cc.cin + 12.0);
            for (int b = 0; b < n; b++) {
                conv_double(&f.cp, x + b * img_in, cc.ih, cc.iw, ref, f.oh, f.ow);
                wino_abs_bound(&f, x + b * img_in, cc.ih, cc.iw, s);
                double e2 = 0, r2 = 0;
                for (size_t e = 0; e < img; e++) {
                    const double got = y1[b * img + e], err = fabs(got - ref[e]);
                    if (!(err <= tol * s[e]))
                        fail_msg("%s winograd case %zu: y[%d][%zu] = %.9g, reference %.9g (err "
                                 "%.3g > %.3g)", gk->name, t, b, e, got, ref[e], err,
                                 tol * s[e]);
                    if (s[e] > 0 && err / s[e] > worst)
                        worst = err / s[e];
                    e2 += err * err;
                    r2 += ref[e] * ref[e];
                }
                if (sqrt(e2 / r2) > worst_rel_l2)
                    worst_rel_l2 = sqrt(e2 / r2);
            }
            /* backward-data, accumulated: dx = dx0 + conv^T(dy), against the
             * double direct conv of dy with the kernel turned by 180 degrees
             * and its channels transposed (the same bound, one more rounding
             * for the accumulation) */
            {
                float *wt = tk_xmalloc((size_t)cc.cin * cc.cout * 9 * sizeof *wt);
                for (int o = 0; o < cc.cout; o++)
                    for (int c = 0; c < cc.cin; c++)
                        for (int e = 0; e < 9; e++)
                            wt[((size_t)c * cc.cout + o) * 9 + 8 - e] =
                                f.w[((size_t)o * cc.cin + c) * 9 + e];
                conv_fixture fb = {.cp = {.cin = cc.cout, .cout = cc.cin, .kh = 3, .kw = 3,
                                          .stride = 1, .pad = 1, .groups = 1, .weight = wt},
                                   .oh = cc.ih, .ow = cc.iw};
                float *ut = tk_xmalloc(kdc__wino_weights_size(&f.cp, gk->mr, 1) * sizeof *ut);
                kdc__wino_weights(&f.cp, gk->mr, 1, ut);
                const size_t nin = n * img_in;
                float *dy = tk_rand_buf(nout, -1, 1), *dx0 = tk_rand_buf(nin, -1, 1);
                float *dx1 = tk_xmalloc(nin * sizeof *dx1), *dx2 = tk_xmalloc(nin * sizeof *dx2);
                memcpy(dx1, dx0, nin * sizeof *dx1);
                memcpy(dx2, dx0, nin * sizeof *dx2);
                kdc__conv2d_backward_data_wino(p1, &w1, gk, &f.cp, ut, dy, n, f.oh, f.ow, dx1);
                kdc__conv2d_backward_data_wino(p2, &w2, gk, &f.cp, ut, dy, n, f.oh, f.ow, dx2);
                assert_memory_equal(dx1, dx2, nin * sizeof *dx1); /* 1 vs 2 threads */
                double *rb = tk_xmalloc(img_in * sizeof *rb), *sb = tk_xmalloc(img_in * sizeof *sb);
                const double tolb = 2.0 * gamma_n(cc.cout + 13.0);
                for (int b = 0; b < n; b++) {
                    conv_double(&fb.cp, dy + b * img, cc.ih, cc.iw, rb, cc.ih, cc.iw);
                    wino_abs_bound(&fb, dy + b * img, cc.ih, cc.iw, sb);
                    for (size_t e = 0; e < img_in; e++) {
                        const double want = rb[e] + dx0[b * img_in + e];
                        const double bound = tolb * (sb[e] + fabs(dx0[b * img_in + e]));
                        const double err = fabs(dx1[b * img_in + e] - want);
                        if (!(err <= bound))
                            fail_msg("%s winograd backward case %zu: dx[%d][%zu] = %.9g, "
                                     "reference %.9g (err %.3g > %.3g)", gk->name, t, b, e,
                                     dx1[b * img_in + e], want, err, bound);
                        if (sb[e] > 0 && err / sb[e] > worst_bwd)
                            worst_bwd = err / sb[e];
                    }
                }
                free(rb);
                free(sb);
                free(dy);
                free(dx0);
                free(dx1);
                free(dx2);
                free(ut);
                free(wt);
            }
            /* the fused epilogue against the unfused ops, to the bit */
            float *scale = tk_rand_buf((size_t)cc.cout, -2, 2);
            float *shift = tk_rand_buf((size_t)cc.cout, -1, 1);
            float *res = tk_rand_buf(nout, -1, 1), *fused = tk_xmalloc(nout * sizeof *fused);
            const size_t ohw = (size_t)f.oh * f.ow;
            for (int mode = 0; mode < 3; mode++) {
                kdc__gemm_epilogue ep = {.scale = scale, .shift = shift, .relu = mode > 0,
                                         .clamp = mode == 2 ? 6.0f : INFINITY,
                                         .res = mode == 2 ? res : NULL};
                kdc__conv2d_wino(mode == 1 ? p2 : p1, mode == 1 ? &w2 : &w1, gk, &f.cp, u, x, n,
                                 cc.ih, cc.iw, fused, f.oh, f.ow, &ep);
                float *v = tk_xmalloc(nout * sizeof *v);
                unfused_epilogue(y1, n, cc.cout, ohw, scale, shift, res, mode, v);
                assert_memory_equal(fused, v, nout * sizeof *v);
                free(v);
            }
            free(scale);
            free(shift);
            free(res);
            free(fused);
            free(ref);
            free(s);
            free(x);
            free(y1);
            free(y2);
            free(u);
            conv_teardown(&f);
        }
        printf("  %s winograd: worst |y - ref| / S = %.3g (bound for cin = 7: %.3g), worst rel "
               "L2 %.3g; backward-data worst |dx - ref| / S = %.3g\n", gk->name, worst,
               2.0 * gamma_n(19), worst_rel_l2, worst_bwd);
    }
    kdc__work_free(&w1);
    kdc__work_free(&w2);
    kdc__pool_destroy(p1);
    kdc__pool_destroy(p2);
}

static void test_conv_backward(void **state)
{
    (void)state;
    kdc__pool *p1, *p2;
    kdc__work w1, w2;
    pools(&p1, &p2, &w1, &w2);
    const int n = 2;
    int overwrites = 0; /* cases that took the overwriting path */
    for (size_t i = 0; i < sizeof all_isas / sizeof *all_isas; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (!gk)
            continue;
        double worst = 0.0;
        for (size_t t = 0; t < sizeof conv_cases / sizeof *conv_cases; t++) {
            const conv_case *cc = &conv_cases[t];
            conv_fixture f;
            conv_setup(gk, cc, &f);
            const size_t nin = (size_t)n * cc->cin * cc->ih * cc->iw;
            const size_t nout = (size_t)n * cc->cout * f.oh * f.ow;
            float *dy = tk_rand_buf(nout, -1, 1), *dx0 = tk_rand_buf(nin, -1, 1);
            float *ref = tk_xmalloc(nin * sizeof *ref), *g1 = tk_xmalloc(nin * sizeof *g1);
            float *g2 = tk_xmalloc(nin * sizeof *g2);
            memcpy(ref, dx0, nin * sizeof *ref);
            memcpy(g1, dx0, nin * sizeof *g1);
            memcpy(g2, dx0, nin * sizeof *g2);
            for (int b = 0; b < n; b++)
                kdc__conv2d_backward_data_ref(&f.cp, dy, f.oh, f.ow, ref, cc->ih, cc->iw, b, 0,
                                              cc->cin);
            assert_int_equal(kdc__conv2d_backward_data_fast(p1, &w1, gk, &f.cp, f.packed_t, dy, n,
                                                            f.oh, f.ow, g1, cc->ih, cc->iw, 1),
                             KDC_OK);
            assert_int_equal(kdc__conv2d_backward_data_fast(p2, &w2, gk, &f.cp, f.packed_t, dy, n,
                                                            f.oh, f.ow, g2, cc->ih, cc->iw, 1),
                             KDC_OK);
            assert_memory_equal(g1, g2, nin * sizeof *g1); /* 1 vs 2 threads */
            /* overwriting (accumulate 0, 1x1 stride 1 only): the bits of
             * accumulating into zeros, whatever dx held (NaN here) */
            for (size_t e = 0; e < nin; e++) {
                g1[e] = 0.0f;
                g2[e] = NAN;
            }
            const kdc_status ow_st = kdc__conv2d_backward_data_fast(
                p2, &w2, gk, &f.cp, f.packed_t, dy, n, f.oh, f.ow, g2, cc->ih, cc->iw, 0);
            if (kdc__conv_backward_overwrites(&f.cp)) {
                assert_int_equal(ow_st, KDC_OK);
                assert_int_equal(kdc__conv2d_backward_data_fast(p1, &w1, gk, &f.cp, f.packed_t,
                                                                dy, n, f.oh, f.ow, g1, cc->ih,
                                                                cc->iw, 1),
                                 KDC_OK);
                assert_memory_equal(g1, g2, nin * sizeof *g1);
                overwrites++;
            } else {
                assert_int_equal(ow_st, KDC_ERR_INVALID_ARGUMENT);
            }
            /* the checks below start from dx0 again */
            memcpy(g1, dx0, nin * sizeof *g1);
            assert_int_equal(kdc__conv2d_backward_data_fast(p1, &w1, gk, &f.cp, f.packed_t, dy, n,
                                                            f.oh, f.ow, g1, cc->ih, cc->iw, 1),
                             KDC_OK);
            /* bound: terms w * dy of each input element, plus the start value */
            const int K = cc->cout * cc->k * cc->k;
            const double tol = 2.0 * gamma_n(2.0 * K + 2);
            const size_t ihw = (size_t)cc->ih * cc->iw;
            for (int b = 0; b < n; b++)
                for (int c = 0; c < cc->cin; c++)
                    for (int iy = 0; iy < cc->ih; iy++)
                        for (int ix = 0; ix < cc->iw; ix++) {
                            const size_t e = ((size_t)b * cc->cin + c) * ihw +
                                             (size_t)iy * cc->iw + ix;
                            double sa = fabs(dx0[e]);
                            for (int oc = 0; oc < cc->cout; oc++)
                                for (int ky = 0; ky < cc->k; ky++)
                                    for (int kx = 0; kx < cc->k; kx++) {
                                        int oy = iy + cc->pad - ky, ox = ix + cc->pad - kx;
                                        if (oy < 0 || ox < 0 || oy % cc->stride ||
                                            ox % cc->stride)
                                            continue;
                                        oy /= cc->stride;
                                        ox /= cc->stride;
                                        if (oy >= f.oh || ox >= f.ow)
                                            continue;
                                        sa += fabs((double)f.w[((size_t)oc * cc->cin + c) * cc->k *
                                                                   cc->k + ky * cc->k + kx] *
                                                   dy[(((size_t)b * cc->cout + oc) * f.oh + oy) *
                                                          f.ow + ox]);
                                    }
                            const double err = fabs((double)g1[e] - ref[e]);
                            if (!(err <= tol * sa))
                                fail_msg("%s case %zu: dx[%zu] = %.9g, reference %.9g (err %.3g "
                                         "> %.3g)", gk->name, t, e, g1[e], ref[e], err, tol * sa);
                            if (sa > 0 && err / sa > worst)
                                worst = err / sa;
                        }
            free(dy);
            free(dx0);
            free(ref);
            free(g1);
            free(g2);
            conv_teardown(&f);
        }
        printf("  %s backward-data: worst |fast - ref| / sum|w dy| = %.3g\n", gk->name, worst);
    }
    assert_true(overwrites > 0); /* conv_cases has 1x1 stride-1 convs */
    kdc__work_free(&w1);
    kdc__work_free(&w2);
    kdc__pool_destroy(p1);
    kdc__pool_destroy(p2);
}

/* ------------------------------------------------------------------ */
/* Model option and whole-model agreement                              */

static void test_model_kernels(void **state)
{
    (void)state;
    char dir[] = "/tmp/kdc-test-gemm-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/r.safetensors", dir);
    assert_int_equal(kdc_test_write_weights(path, "resnet50", 3, 10, "", 0), 0);
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    assert_int_equal(mo.kernels, KDC_KERNELS_AUTO);
    kdc_model *ms, *mf, *bad;
    mo.kernels = KDC_KERNELS_SCALAR;
    assert_int_equal(kdc_model_load(path, &mo, &ms), KDC_OK);
    assert_string_equal(kdc_model_kernels(ms), "scalar");
    mo.kernels = KDC_KERNELS_AUTO;
    assert_int_equal(kdc_model_load(path, &mo, &mf), KDC_OK);
    assert_string_equal(kdc_model_kernels(mf), kdc__isa_name(kdc__isa_best()));
    mo.kernels = (kdc_kernels)42;
    assert_int_equal(kdc_model_load(path, &mo, &bad), KDC_ERR_INVALID_ARGUMENT);
    assert_null(bad);
    static const struct {
        kdc_kernels k;
        kdc__isa isa;
    } asks[] = {{KDC_KERNELS_AVX2, KDC__ISA_AVX2},
                {KDC_KERNELS_AVX512, KDC__ISA_AVX512},
                {KDC_KERNELS_NEON, KDC__ISA_NEON}};
    for (size_t q = 0; q < sizeof asks / sizeof asks[0]; q++) {
        mo.kernels = asks[q].k;
        const kdc__isa isa = asks[q].isa;
        kdc_status st = kdc_model_load(path, &mo, &bad);
        if (kdc__isa_supported(isa)) {
            assert_int_equal(st, KDC_OK);
            kdc_model_destroy(bad);
        } else {
            assert_int_equal(st, KDC_ERR_UNSUPPORTED);
            assert_non_null(strstr(kdc_last_error(), kdc__isa_name(isa)));
            assert_null(bad);
        }
    }
    remove(path);
    rmdir(dir);

    /* scalar and fast agree on every layer (kept: no fusion) and on the
     * logits of a fused pass; the fused pass with 2 threads is bitwise the
     * 1-thread one, and Grad-CAM gradients agree as well */
    const int h = 64, w = 80, nl = kdc_model_num_layers(mf);
    float *x = tk_xmalloc(2 * 3 * h * w * sizeof *x);
    kdc_test_fill(x, 2 * 3 * h * w, "input", 11, 0.0, 2.0);
    int *all = tk_xmalloc((size_t)nl * sizeof *all);
    for (int i = 0; i < nl; i++)
        all[i] = i;
    kdc_run *rs, *rf, *rf2;
    kdc_run_options one = {.threads = 1}, two = {.threads = 2};
    assert_int_equal(kdc_run_create(ms, &one, &rs), KDC_OK);
    assert_int_equal(kdc_run_create(mf, &one, &rf), KDC_OK);
    assert_int_equal(kdc_run_create(mf, &two, &rf2), KDC_OK);
    assert_int_equal(kdc_run_forward(rs, x, 2, h, w, all, nl), KDC_OK);
    assert_int_equal(kdc_run_forward(rf, x, 2, h, w, all, nl), KDC_OK);
    double worst = 0.0;
    for (int l = 1; l < nl; l++) {
        float *a, *b;
        const size_t cnt = read_layer_pair(rs, rf, l, &a, &b);
        double d = 0, nrm = 0;
        for (size_t e = 0; e < cnt; e++) {
            d += ((double)a[e] - b[e]) * ((double)a[e] - b[e]);
            nrm += (double)a[e] * a[e];
        }
        const double rel = nrm > 0 ? sqrt(d / nrm) : sqrt(d);
        worst = rel > worst ? rel : worst;
        /* the fidelity tests' bound against PyTorch (1e-4); here two float32
         * implementations of the same network */
        if (!(rel <= 1e-4))
            fail_msg("layer %s: scalar vs fast rel L2 %.3g", kdc_model_layer_name(mf, l), rel);
        free(a);
        free(b);
    }
    float lf[20], lf2[20], ls[20], lu[20];
    assert_int_equal(kdc_run_read_layer(rs, nl - 1, ls, 20), KDC_OK);
    assert_int_equal(kdc_run_read_layer(rf, nl - 1, lu, 20), KDC_OK); /* all kept: unfused */
    assert_int_equal(kdc_run_forward(rf, x, 2, h, w, NULL, 0), KDC_OK); /* fused */
    assert_int_equal(kdc_run_read_layer(rf, nl - 1, lf, 20), KDC_OK);
    /* fusion does the unfused ops' float operations: the same bits */
    assert_memory_equal(lf, lu, sizeof lf);
    assert_int_equal(kdc_run_forward(rf2, x, 2, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_read_layer(rf2, nl - 1, lf2, 20), KDC_OK);
    assert_memory_equal(lf, lf2, sizeof lf);
    for (int e = 0; e < 20; e++)
        assert_true(fabs(lf[e] - ls[e]) <= 1e-4 * (1 + fabs(ls[e])));
    printf("  resnet50 %dx%d, batch 2: scalar vs %s, worst layer rel L2 %.3g\n", h, w,
           kdc_model_kernels(mf), worst);

    /* gradients at the input and at layer2 after a fused recording pass */
    int layers[2] = {0, 0};
    assert_int_equal(kdc_model_find_layer(mf, "layer2", &layers[1]), KDC_OK);
    kdc_target tg = {.kind = KDC_TARGET_LOGIT};
    int cls[2] = {3, 7};
    tg.classes = cls;
    float *gs = tk_xmalloc(2 * 3 * h * w * sizeof *gs), *gf = tk_xmalloc(2 * 3 * h * w * sizeof *gf);
    float *gf2 = tk_xmalloc(2 * 3 * h * w * sizeof *gf2);
    kdc_run *runs[3] = {rs, rf, rf2};
    float *outs[3] = {gs, gf, gf2};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(kdc_run_forward_grad(runs[k], x, 2, h, w, NULL, 0, 0), KDC_OK);
        assert_int_equal(kdc_run_backward(runs[k], &tg, layers, 2, k == 2), KDC_OK);
        assert_int_equal(kdc_run_read_grad(runs[k], 0, outs[k], 2 * 3 * h * w), KDC_OK);
    }
    double d = 0, nrm = 0;
    for (int e = 0; e < 2 * 3 * h * w; e++) {
        d += ((double)gs[e] - gf[e]) * ((double)gs[e] - gf[e]);
        nrm += (double)gs[e] * gs[e];
    }
    printf("  input gradient: scalar vs %s rel L2 %.3g\n", kdc_model_kernels(mf), sqrt(d / nrm));
    assert_true(sqrt(d / nrm) <= 1e-4);
    /* guided (k == 2) differs from plain; redo plain on 2 threads for the bits */
    assert_int_equal(kdc_run_forward_grad(rf2, x, 2, h, w, NULL, 0, 0), KDC_OK);
    assert_int_equal(kdc_run_backward(rf2, &tg, layers, 2, 0), KDC_OK);
    assert_int_equal(kdc_run_read_grad(rf2, 0, gf2, 2 * 3 * h * w), KDC_OK);
    assert_memory_equal(gf, gf2, 2 * 3 * h * w * sizeof *gf);
    free(gs);
    free(gf);
    free(gf2);
    free(all);
    free(x);
    kdc_run_destroy(rs);
    kdc_run_destroy(rf);
    kdc_run_destroy(rf2);
    kdc_model_destroy(ms);
    kdc_model_destroy(mf);
}

/* MobileNetV1: depthwise convs fuse their BN and ReLU as well; fused and
 * unfused passes give the same bits, and agree with the scalar path. */
static void test_mbv1_fusion(void **state)
{
    (void)state;
    char dir[] = "/tmp/kdc-test-gemm-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    assert_int_equal(kdc_test_write_weights(path, "mobilenetv1", 5, 10, "", 0), 0);
    kdc_model *mf, *ms;
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    assert_int_equal(kdc_model_load(path, &mo, &mf), KDC_OK);
    mo.kernels = KDC_KERNELS_SCALAR;
    assert_int_equal(kdc_model_load(path, &mo, &ms), KDC_OK);
    remove(path);
    rmdir(dir);
    const int h = 65, w = 47, nl = kdc_model_num_layers(mf);
    float *x = tk_xmalloc(3 * h * w * sizeof *x);
    kdc_test_fill(x, 3 * h * w, "input", 12, 0.0, 2.0);
    int *all = tk_xmalloc((size_t)nl * sizeof *all);
    for (int i = 0; i < nl; i++)
        all[i] = i;
    kdc_run *r, *r2, *rs;
    kdc_run_options two = {.threads = 2};
    assert_int_equal(kdc_run_create(mf, NULL, &r), KDC_OK);
    assert_int_equal(kdc_run_create(mf, &two, &r2), KDC_OK);
    assert_int_equal(kdc_run_create(ms, NULL, &rs), KDC_OK);
    float a[10], b[10], c[10], d[10];
    assert_int_equal(kdc_run_forward(r, x, 1, h, w, all, nl), KDC_OK);
    assert_int_equal(kdc_run_read_layer(r, nl - 1, a, 10), KDC_OK);
    assert_int_equal(kdc_run_forward(r, x, 1, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_read_layer(r, nl - 1, b, 10), KDC_OK);
    assert_int_equal(kdc_run_forward(r2, x, 1, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_read_layer(r2, nl - 1, c, 10), KDC_OK);
    assert_int_equal(kdc_run_forward(rs, x, 1, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_read_layer(rs, nl - 1, d, 10), KDC_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(b, c, sizeof b);
    for (int i = 0; i < 10; i++)
        assert_true(fabs(b[i] - d[i]) <= 1e-4 * (1 + fabs(d[i])));
    free(x);
    free(all);
    kdc_run_destroy(r);
    kdc_run_destroy(r2);
    kdc_run_destroy(rs);
    kdc_model_destroy(mf);
    kdc_model_destroy(ms);
}

/* The AVX-512 table against the AVX2 one on a whole network: every GEMM
 * element is the same FMA chain and the other kernels are shared, so every
 * layer, the fused logits and the input gradients (plain and guided) must
 * be the same bits, on 1 and on 2 threads. */
static void test_avx512_equals_avx2(void **state)
{
    (void)state;
    if (!kdc__isa_supported(KDC__ISA_AVX512) || !kdc__isa_supported(KDC__ISA_AVX2)) {
        printf("  avx512 or avx2 not on this CPU or build: skipped\n");
        return;
    }
    char dir[] = "/tmp/kdc-test-gemm-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/r.safetensors", dir);
    assert_int_equal(kdc_test_write_weights(path, "resnet50", 4, 10, "", 0), 0);
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    kdc_model *m2, *m5;
    mo.kernels = KDC_KERNELS_AVX2;
    assert_int_equal(kdc_model_load(path, &mo, &m2), KDC_OK);
    mo.kernels = KDC_KERNELS_AVX512;
    assert_int_equal(kdc_model_load(path, &mo, &m5), KDC_OK);
    assert_string_equal(kdc_model_kernels(m5), "avx512");
    remove(path);
    rmdir(dir);
    const int h = 53, w = 70, nl = kdc_model_num_layers(m2);
    const size_t nx = (size_t)2 * 3 * h * w;
    float *x = tk_xmalloc(nx * sizeof *x);
    kdc_test_fill(x, nx, "input", 13, 0.0, 2.0);
    int *all = tk_xmalloc((size_t)nl * sizeof *all);
    for (int i = 0; i < nl; i++)
        all[i] = i;
    int layers[2] = {0, 0};
    assert_int_equal(kdc_model_find_layer(m2, "layer3", &layers[1]), KDC_OK);
    int cls[2] = {2, 9};
    kdc_target tg = {.kind = KDC_TARGET_LOGIT, .classes = cls};
    for (int threads = 1; threads <= 2; threads++) {
        kdc_run_options ro = {.threads = threads};
        kdc_run *r2, *r5;
        assert_int_equal(kdc_run_create(m2, &ro, &r2), KDC_OK);
        assert_int_equal(kdc_run_create(m5, &ro, &r5), KDC_OK);
        assert_int_equal(kdc_run_forward(r2, x, 2, h, w, all, nl), KDC_OK);
        assert_int_equal(kdc_run_forward(r5, x, 2, h, w, all, nl), KDC_OK);
        for (int l = 1; l < nl; l++) {
            float *a, *b;
            const size_t cnt = read_layer_pair(r2, r5, l, &a, &b);
            if (memcmp(a, b, cnt * sizeof *a))
                fail_msg("layer %s: avx512 differs from avx2", kdc_model_layer_name(m2, l));
            free(a);
            free(b);
        }
        float l2[20], l5[20];
        assert_int_equal(kdc_run_forward(r2, x, 2, h, w, NULL, 0), KDC_OK); /* fused */
        assert_int_equal(kdc_run_forward(r5, x, 2, h, w, NULL, 0), KDC_OK);
        assert_int_equal(kdc_run_read_layer(r2, nl - 1, l2, 20), KDC_OK);
        assert_int_equal(kdc_run_read_layer(r5, nl - 1, l5, 20), KDC_OK);
        assert_memory_equal(l2, l5, sizeof l2);
        float *g2 = tk_xmalloc(nx * sizeof *g2), *g5 = tk_xmalloc(nx * sizeof *g5);
        for (int guided = 0; guided <= 1; guided++) {
            assert_int_equal(kdc_run_forward_grad(r2, x, 2, h, w, NULL, 0, 0), KDC_OK);
            assert_int_equal(kdc_run_backward(r2, &tg, layers, 2, guided), KDC_OK);
            assert_int_equal(kdc_run_read_grad(r2, 0, g2, nx), KDC_OK);
            assert_int_equal(kdc_run_forward_grad(r5, x, 2, h, w, NULL, 0, 0), KDC_OK);
            assert_int_equal(kdc_run_backward(r5, &tg, layers, 2, guided), KDC_OK);
            assert_int_equal(kdc_run_read_grad(r5, 0, g5, nx), KDC_OK);
            assert_memory_equal(g2, g5, nx * sizeof *g2);
        }
        free(g2);
        free(g5);
        kdc_run_destroy(r2);
        kdc_run_destroy(r5);
    }
    printf("  resnet50 %dx%d, batch 2: avx512 = avx2 to the bit (layers, logits, gradients)\n",
           h, w);
    free(x);
    free(all);
    kdc_model_destroy(m2);
    kdc_model_destroy(m5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa),
        cmocka_unit_test(test_ukernels),
        cmocka_unit_test(test_gemm_driver),
        cmocka_unit_test(test_gemm_narrow),
        cmocka_unit_test(test_gemm_backward_epilogue),
        cmocka_unit_test(test_epilogue_special),
        cmocka_unit_test(test_gemm_inplace),
        cmocka_unit_test(test_gemm_inplace_shifted),
        cmocka_unit_test(test_pack_im2col),
        cmocka_unit_test(test_conv_forward),
        cmocka_unit_test(test_conv_stem),
        cmocka_unit_test(test_linear_batch),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_backward),
        cmocka_unit_test(test_model_kernels),
        cmocka_unit_test(test_mbv1_fusion),
        cmocka_unit_test(test_avx512_equals_avx2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
