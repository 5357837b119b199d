/* test_kernels.c - the micro-kernels of lib/kernels/kernels.h against the scalar
 * references, for every ISA this CPU and build run (the others are skipped
 * and named as such): natively that is scalar and AVX2 on x86-64; under
 * qemu-user (tools/test_neon.sh) scalar and NEON on aarch64.
 *
 * Each kernel is checked three ways, on odd shapes (sizes 1..19 that are
 * not multiples of the vector width, stride 1 and 2, pad 0 and 1; GEMM
 * m < mr, n < nr, k = 1 and large k):
 *   1. against the reference (kdc__conv2d_ref / kdc__conv2d_backward_data_ref
 *      with groups = channels, or a product in double) within an error bound
 *      derived below;
 *   2. to the bit against the operation order the kernel documents: the
 *      SIMD kernels against a chain of fmaf() in that order, the scalar ones
 *      against the reference itself (depthwise) or a chain of separate float
 *      multiplies and adds (GEMM). This is what makes AVX2 and NEON results
 *      equal to each other, which no single machine can compare directly;
 *   3. for writes outside the output: guard zones around it must keep their
 *      sentinel (and inputs are allocated at their exact size, so the SAN=1
 *      build catches reads past them).
 *
 * cmocka natively; the aarch64 cross build has no cmocka (Debian's arm64
 * package cannot be installed here: multiarch is refused), so it compiles
 * with -DKDC_TEST_CMOCKA_SHIM and the small look-alike tests/util/cmocka_shim.h. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(KDC_TEST_CMOCKA_SHIM)
#include "cmocka_shim.h"
#else
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#endif

#include "graph.h"
#include "kernels.h"
#include "kit.h"

/* GCC in ISO C mode (-std=c11) never contracts a * b + c into an FMA
 * (-ffp-contract=off), so the plain float expressions of the scalar kernels
 * and of this file round once per operation, and the scalar kernels can be
 * held to the bit. Other compilers may contract: there they are held to the
 * error bound only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__STRICT_ANSI__)
#define EXACT_SCALAR 1
#else
#define EXACT_SCALAR 0
#endif

#define U 5.9604644775390625e-08 /* 2^-24, the unit roundoff of float */
#define GUARD 16                 /* floats of sentinel on each side of an output */

static const kdc__isa all_isas[] = {KDC__ISA_SCALAR, KDC__ISA_AVX2, KDC__ISA_AVX512,
                                     KDC__ISA_NEON};
enum { N_ISAS = sizeof all_isas / sizeof all_isas[0] };

static float sentinel(void)
{
    const uint32_t bits = 0x7fc0beefu; /* a quiet NaN no kernel produces */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static int is_sentinel(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits == 0x7fc0beefu;
}

/* Equal as values (a zero's sign may differ: fma(w, 0, -0) is +0). */
static int same(float a, float b)
{
    return a == b || (isnan(a) && isnan(b));
}

/* An output of n floats between two guard zones. */
static float *guarded(size_t n)
{
    float *p = tk_xmalloc((n + 2 * GUARD) * sizeof(float));
    for (size_t i = 0; i < n + 2 * GUARD; i++)
        p[i] = sentinel();
    return p + GUARD;
}
static void check_guards(const float *out, size_t n, const char *what)
{
    for (int i = 1; i <= GUARD; i++)
        if (!is_sentinel(out[-i]) || !is_sentinel(out[n - 1 + i]))
            fail_msg("%s: wrote outside its output", what);
}

/* ------------------------------------------------------------------ */
/* Error bounds                                                        */

/* Depthwise: an output is bias (or the old dx) plus at most 9 products.
 * With S = |bias| + sum |w x| (in exact arithmetic), the reference (a
 * rounded product and a rounded sum per term) is within gamma_10 S
 * of the exact value, the FMA chain (one rounding per term) within
 * gamma_9 S, gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability of
 * Numerical Algorithms, 3.1). So |kernel - reference| <= 19.01 u S < 20 u S.
 * GEMM: the FMA chain over k terms from C is within gamma_k S of the exact
 * value, S = |C| + sum |a b|, and the double product is exact to far below
 * that: (k + 2) u S. The small absolute term covers underflow. */
static double dw_tol(double s)
{
    return 20.0 * U * s + 1e-30;
}
static double gemm_tol(int k, double s)
{
    return (k + 2.0) * U * s + 1e-30;
}

/* ------------------------------------------------------------------ */
/* Depthwise 3x3                                                       */

typedef struct dw_shape {
    int ih, iw, stride, pad;
} dw_shape;

/* The FMA chain of one forward output (dwconv.c) and its S. */
static float fma_fwd(const float *x, int ih, int iw, const float *w, float bias, int oy, int ox,
                     int s, int p, double *mag)
{
    float acc = bias;
    double m = fabs((double)bias);
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            const int iy = oy * s + ky - p, ix = ox * s + kx - p;
            if (iy < 0 || iy >= ih || ix < 0 || ix >= iw)
                continue;
            const float v = x[(size_t)iy * iw + ix];
            acc = fmaf(w[ky * 3 + kx], v, acc);
            m += fabs((double)w[ky * 3 + kx] * v);
        }
    *mag = m;
    return acc;
}

/* The FMA chain of one backward-data output: dx(iy, ix) receives dy(oy, ox)
 * through tap (ky, kx) when oy * s + ky - p = iy and ox * s + kx - p = ix. */
static float fma_bwd(const float *dy, int oh, int ow, const float *w, float dx0, int iy, int ix,
                     int s, int p, double *mag)
{
    float acc = dx0;
    double m = fabs((double)dx0);
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            const int ty = iy + p - ky, tx = ix + p - kx;
            if (ty < 0 || tx < 0 || ty % s || tx % s || ty / s >= oh || tx / s >= ow)
                continue;
            const float g = dy[(size_t)(ty / s) * ow + tx / s];
            acc = fmaf(w[ky * 3 + kx], g, acc);
            m += fabs((double)w[ky * 3 + kx] * g);
        }
    *mag = m;
    return acc;
}

enum { DW_C = 2 }; /* channels per case: two planes, two filters */

static void check_dw(const kdc__dw_kernels *k, dw_shape sh)
{
    const int ih = sh.ih, iw = sh.iw, s = sh.stride, p = sh.pad;
    const int oh = kdc__out_size(ih, 3, s, p), ow = kdc__out_size(iw, 3, s, p);
    if (oh <= 0 || ow <= 0)
        return;
    const size_t ihw = (size_t)ih * iw, ohw = (size_t)oh * ow;
    const int simd = k->isa != KDC__ISA_SCALAR;
    float w[DW_C * 9], bias[DW_C];
    float *x = tk_xmalloc(DW_C * ihw * sizeof(float));
    float *yref = tk_xmalloc(DW_C * ohw * sizeof(float));
    float *dy = tk_xmalloc(DW_C * ohw * sizeof(float));
    float *dx0 = tk_xmalloc(DW_C * ihw * sizeof(float));
    float *dxref = tk_xmalloc(DW_C * ihw * sizeof(float));
    tk_fill(w, DW_C * 9, -1, 1);
    tk_fill(bias, DW_C, -1, 1);
    tk_fill(x, DW_C * ihw, -1, 1);
    tk_fill(dy, DW_C * ohw, -1, 1);
    tk_fill(dx0, DW_C * ihw, -1, 1);
    memcpy(dxref, dx0, DW_C * ihw * sizeof *dx0);
    float ep_bias[DW_C], ep_scale[DW_C], ep_shift[DW_C];
    tk_fill(ep_bias, DW_C, -1, 1);
    tk_fill(ep_scale, DW_C, -2, 2);
    tk_fill(ep_shift, DW_C, -1, 1);

    const kdc__conv_param cp = {.cin = DW_C, .cout = DW_C, .kh = 3, .kw = 3, .stride = s,
                                .pad = p, .groups = DW_C, .weight = w, .bias = bias};
    kdc__conv2d_ref(&cp, x, ih, iw, yref, oh, ow, 0, 0, DW_C);
    kdc__conv2d_backward_data_ref(&cp, dy, oh, ow, dxref, ih, iw, 0, 0, DW_C);

    for (int c = 0; c < DW_C; c++) {
        /* exact-size copies of the inputs: reads past them are ASan errors */
        float *xc = tk_xmalloc(ihw * sizeof(float)), *dyc = tk_xmalloc(ohw * sizeof(float));
        float *y = guarded(ohw), *dx = guarded(ihw);
        memcpy(xc, x + c * ihw, ihw * sizeof *xc);
        memcpy(dyc, dy + c * ohw, ohw * sizeof *dyc);
        memcpy(dx, dx0 + c * ihw, ihw * sizeof *dx);

        k->dw3x3(xc, ih, iw, w + 9 * c, bias[c], y, oh, ow, s, p, NULL, c, NULL);
        k->dw3x3_backward(dyc, oh, ow, w + 9 * c, dx, ih, iw, s, p);
        check_guards(y, ohw, "dw3x3");
        check_guards(dx, ihw, "dw3x3_backward");

        /* with the epilogue of a fused group (channel 0: bias, affine,
         * residual, ReLU6; channel 1: affine, ReLU): the plane above
         * through the scalar epilogue, to the bit */
        float *fused = guarded(ohw), *u = tk_xmalloc(ohw * sizeof *u);
        float *res = tk_xmalloc(ohw * sizeof *res);
        tk_fill(res, ohw, -1, 1);
        const kdc__gemm_epilogue ep = {.bias = c == 0 ? ep_bias : NULL, .scale = ep_scale,
                                       .shift = ep_shift, .res = c == 0 ? res : NULL,
                                       .relu = 1, .clamp = c == 0 ? 6.0f : INFINITY};
        k->dw3x3(xc, ih, iw, w + 9 * c, bias[c], fused, oh, ow, s, p, &ep, c, ep.res);
        check_guards(fused, ohw, "dw3x3 with epilogue");
        memcpy(u, y, ohw * sizeof *u);
        kdc__gemm_epilogue_scalar(&ep, u, ohw, c, 1, ep.res, ohw, (int)ohw);
        for (size_t i = 0; i < ohw; i++)
            if (!same(fused[i], u[i]))
                fail_msg("%s forward %dx%d s%d p%d, channel %d with its epilogue: y[%zu] = "
                         "%.9g, not %.9g", k->name, ih, iw, s, p, c, i, fused[i], u[i]);
        free(fused - GUARD);
        free(u);
        free(res);

        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const size_t i = (size_t)oy * ow + ox;
                double mag;
                const float model = fma_fwd(xc, ih, iw, w + 9 * c, bias[c], oy, ox, s, p, &mag);
                const float ref = yref[c * ohw + i];
                if (fabs((double)y[i] - ref) > dw_tol(mag))
                    fail_msg("%s forward %dx%d s%d p%d: y[%d][%d] = %.9g, reference %.9g",
                             k->name, ih, iw, s, p, oy, ox, y[i], ref);
                if ((simd && !same(y[i], model)) || (!simd && EXACT_SCALAR && !same(y[i], ref)))
                    fail_msg("%s forward %dx%d s%d p%d: y[%d][%d] = %.9g, not the %s %.9g",
                             k->name, ih, iw, s, p, oy, ox, y[i],
                             simd ? "FMA chain" : "reference", simd ? model : ref);
            }
        for (int iy = 0; iy < ih; iy++)
            for (int ix = 0; ix < iw; ix++) {
                const size_t i = (size_t)iy * iw + ix;
                double mag;
                const float model =
                    fma_bwd(dyc, oh, ow, w + 9 * c, dx0[c * ihw + i], iy, ix, s, p, &mag);
                const float ref = dxref[c * ihw + i];
                if (fabs((double)dx[i] - ref) > dw_tol(mag))
                    fail_msg("%s backward %dx%d s%d p%d: dx[%d][%d] = %.9g, reference %.9g",
                             k->name, ih, iw, s, p, iy, ix, dx[i], ref);
                if ((simd && !same(dx[i], model)) || (!simd && EXACT_SCALAR && !same(dx[i], ref)))
                    fail_msg("%s backward %dx%d s%d p%d: dx[%d][%d] = %.9g, not the %s %.9g",
                             k->name, ih, iw, s, p, iy, ix, dx[i],
                             simd ? "FMA chain" : "reference", simd ? model : ref);
            }
        free(xc);
        free(dyc);
        free(y - GUARD);
        free(dx - GUARD);
    }
    free(x);
    free(yref);
    free(dy);
    free(dx0);
    free(dxref);
}

/* C planes of `plane` floats in got, guards intact, must be to the bit
 * inside[i] in planes [c0, c0 + nc) and outside[i] (+0 where outside is
 * NULL) in the others; what (the check's name) heads the failure. */
static void check_planes(const char *what, const float *got, const float *inside,
                         const float *outside, size_t C, size_t plane, int c0, int nc)
{
    check_guards(got, C * plane, what);
    for (size_t i = 0; i < C * plane; i++) {
        const size_t c = i / plane;
        const float want = c >= (size_t)c0 && c < (size_t)(c0 + nc) ? inside[i]
                           : outside                                ? outside[i]
                                                                    : 0.0f;
        if (memcmp(&got[i], &want, sizeof want))
            fail_msg("%s: channel %zu [%zu] = %.9g, not %.9g", what, c, i % plane, got[i],
                     want);
    }
}

/* The eight-channel forward (table entry dw3x3_c8) against the plane
 * kernel of the same table, to the bit (zero signs included): nc = 1..8
 * channels of a 12-channel layer, from channel 3 and ending at the last,
 * with and without a conv bias and an epilogue (bias, affine, ReLU6; and
 * other shapes of it),
 * nothing written outside the nc output planes; planes larger than its
 * buffer in bands of rows (112 x 112, rows of 256 and 257: bands of one). */
static void check_dw_c8(const kdc__dw_kernels *k, dw_shape sh)
{
    const int ih = sh.ih, iw = sh.iw, s = sh.stride, p = sh.pad, C = 12;
    const int oh = kdc__out_size(ih, 3, s, p), ow = kdc__out_size(iw, 3, s, p);
    if (oh <= 0 || ow <= 0 || 3 * ((size_t)iw + 3) > KDC__DW_C8_PLANE)
        return; /* not even a band of one output row: the kernel falls back */
    const size_t ihw = (size_t)ih * iw, ohw = (size_t)oh * ow;
    float *x = tk_xmalloc(C * ihw * sizeof *x), w[12 * 9], bias[12], eb[12], es[12], eh[12];
    tk_fill(x, C * ihw, -1, 1);
    tk_fill(w, 12 * 9, -1, 1);
    tk_fill(bias, 12, -1, 1);
    tk_fill(eb, 12, -1, 1);
    tk_fill(es, 12, -2, 2);
    tk_fill(eh, 12, -1, 1);
    x[ihw * 3] = -0.0f; /* a zero sign to keep */
    float *ref = tk_xmalloc(C * ohw * sizeof *ref), *y = guarded(C * ohw);
    /* the kernel's loops are specialised on the epilogue's parts: none,
     * each of its shapes that has a case, and one that has not */
    const kdc__gemm_epilogue eps[] = {
        {.bias = eb, .scale = es, .shift = eh, .relu = 1, .clamp = 6.0f},
        {.scale = es, .shift = eh, .relu = 1, .clamp = INFINITY},
        {.scale = es, .shift = eh},
        {.bias = eb, .relu = 1, .clamp = 6.0f},
    };
    for (int variant = 0; variant < 10; variant++) {
        const float *b = variant & 1 ? bias : NULL;
        const kdc__gemm_epilogue *e = variant >= 2 ? &eps[variant / 2 - 1] : NULL;
        for (int c = 0; c < C; c++)
            k->dw3x3(x + c * ihw, ih, iw, w + 9 * c, b ? b[c] : 0.0f, ref + c * ohw, oh, ow, s,
                     p, e, c, NULL);
        for (int t = 0; t < 16; t++) {
            /* channels from 3, then the layer's last ones (reads and writes
             * next to the ends of x and y) */
            const int nc = t % 8 + 1, c0 = t < 8 ? 3 : C - nc;
            for (size_t i = 0; i < C * ohw; i++)
                y[i] = 0.0f;
            k->dw3x3_c8(x + c0 * ihw, ihw, ih, iw, w + 9 * c0, b, y + c0 * ohw, ohw, oh, ow, s,
                        p, e, c0, nc);
            char what[128];
            snprintf(what, sizeof what, "%s c8 %dx%d s%d p%d, %d channels, variant %d", k->name,
                     ih, iw, s, p, nc, variant);
            check_planes(what, y, ref, NULL, C, ohw, c0, nc);
        }
    }
    free(x);
    free(ref);
    free(y - GUARD);
}

/* The eight-channel backward-data (table entry dw3x3_backward_c8) against
 * the plane kernel of the same table, to the bit: nc = 1..8 channels of a
 * 12-channel layer, from channel 3 and ending at the last, onto a dx that
 * already holds values (zeros of both signs among them), nothing written
 * outside the nc planes; and with accumulate 0 onto planes of NaN, against
 * the plane kernel onto zeros (so every element is written, none read);
 * and on through a ReLU + BatchNorm (kdc__dw_bthru, plain and guided, a
 * random mask), against the plane kernel onto zeros followed by the scalar
 * fused backward kdc__relu_scale_backward_ref writing a new gradient. */
static void check_dw_bc8(const kdc__dw_kernels *k, dw_shape sh)
{
    const int ih = sh.ih, iw = sh.iw, s = sh.stride, p = sh.pad, C = 12;
    const int oh = kdc__out_size(ih, 3, s, p), ow = kdc__out_size(iw, 3, s, p);
    if (oh <= 0 || ow <= 0)
        return;
    const size_t ihw = (size_t)ih * iw, ohw = (size_t)oh * ow;
    float *dy = tk_xmalloc(C * ohw * sizeof *dy), w[12 * 9];
    float *dx0 = tk_xmalloc(C * ihw * sizeof *dx0), *ref = tk_xmalloc(C * ihw * sizeof *ref);
    float *ref0 = tk_xmalloc(C * ihw * sizeof *ref0);
    float *dx = guarded(C * ihw);
    tk_fill(dy, C * ohw, -1, 1);
    tk_fill(w, 12 * 9, -1, 1);
    tk_fill(dx0, C * ihw, -1, 1);
    for (size_t i = 0; i < C * ihw; i += 7) /* zeros whose sign a tap may change */
        dx0[i] = i % 14 ? -0.0f : 0.0f;
    dy[0] = -0.0f;
    memcpy(ref, dx0, C * ihw * sizeof *ref);
    memset(ref0, 0, C * ihw * sizeof *ref0);
    for (int c = 0; c < C; c++) {
        k->dw3x3_backward(dy + c * ohw, oh, ow, w + 9 * c, ref + c * ihw, ih, iw, s, p);
        k->dw3x3_backward(dy + c * ohw, oh, ow, w + 9 * c, ref0 + c * ihw, ih, iw, s, p);
    }
    /* the ReLU's mask (bits past each plane zero), the BatchNorm's scale
     * (a negative one among them), and the references through them */
    const size_t words = (ihw + 63) / 64;
    uint64_t *mask = tk_xmalloc(C * words * sizeof *mask);
    float scale[12], *reft[2];
    tk_fill(scale, 12, -2, 2);
    for (size_t i = 0; i < C * words; i++) {
        const size_t left = ihw - i % words * 64;
        mask[i] = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        if (left < 64)
            mask[i] &= ((uint64_t)1 << left) - 1;
    }
    for (int g = 0; g < 2; g++) {
        reft[g] = tk_xmalloc(C * ihw * sizeof *reft[g]);
        kdc__relu_scale_backward_ref(ref0, mask, reft[g], ihw, g, scale, 0, C, 0);
    }
    for (int t = 0; t < 64; t++) {
        const int nc = t % 8 + 1, c0 = t % 16 < 8 ? 3 : C - nc, acc = t < 16;
        const int thru = t >= 32, guided = t >= 48;
        const kdc__dw_bthru bt = {.mask = mask + c0 * words, .words = words,
                                  .scale = scale + c0, .guided = guided};
        memcpy(dx, dx0, C * ihw * sizeof *dx);
        for (size_t i = c0 * ihw; !acc && i < (c0 + nc) * ihw; i++)
            dx[i] = NAN;
        k->dw3x3_backward_c8(dy + c0 * ohw, ohw, oh, ow, w + 9 * c0, dx + c0 * ihw, ihw, ih, iw,
                             s, p, nc, acc, thru ? &bt : NULL);
        char what[160];
        snprintf(what, sizeof what,
                 "%s backward c8 %dx%d s%d p%d, %d channels, accumulate %d, through %d (guided %d)",
                 k->name, ih, iw, s, p, nc, acc, thru, guided);
        check_planes(what, dx, thru ? reft[guided] : acc ? ref : ref0, dx0, C, ihw, c0, nc);
    }
    free(dy);
    free(dx0);
    free(ref);
    free(ref0);
    free(mask);
    free(reft[0]);
    free(reft[1]);
    free(dx - GUARD);
}

/* Every ISA's table: present exactly when the ISA runs here. */
static void test_tables(void **state)
{
    (void)state;
    char names[128] = "", skipped[128] = "";
    for (int i = 0; i < N_ISAS; i++) {
        const kdc__isa isa = all_isas[i];
        const kdc__dw_kernels *dk = kdc__dw_kernels_get(isa);
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(isa);
        if (!kdc__isa_supported(isa)) {
            assert_null(dk);
            assert_null(gk);
            strcat(skipped, " ");
            strcat(skipped, kdc__isa_name(isa));
            continue;
        }
        assert_non_null(dk);
        assert_non_null(gk);
        assert_int_equal(dk->isa, isa);
        assert_int_equal(gk->isa, isa);
        assert_true(dk->dw3x3 != NULL && dk->dw3x3_backward != NULL && gk->gemm != NULL);
        assert_true(gk->mr >= 1 && gk->mr <= 32 && gk->nr >= 1 && gk->nr <= 64);
        strcat(names, " ");
        strcat(names, kdc__isa_name(isa));
    }
    assert_true(kdc__isa_supported(kdc__isa_best()));
    print_message("kernels: ISAs tested:%s (best: %s); skipped, not on this CPU or build:%s\n",
                  names, kdc__isa_name(kdc__isa_best()), skipped[0] ? skipped : " none");
}

/* All heights and widths 1..19 (tails of every length for 4- and 8-wide
 * vectors, planes narrower than a vector), then widths 20..66 at heights
 * 1..5 (several full vectors before every tail, at both strides: stride-2
 * vectors run along output columns, and backward along pairs of input
 * columns), both strides and paddings. */
static void test_dw3x3_small(void **state)
{
    (void)state;
    for (int i = 0; i < N_ISAS; i++) {
        const kdc__dw_kernels *k = kdc__dw_kernels_get(all_isas[i]);
        if (!k)
            continue;
        for (int s = 1; s <= 2; s++)
            for (int p = 0; p <= 1; p++)
                for (int ih = 1; ih <= 19; ih++)
                    for (int iw = 1; iw <= (ih <= 5 ? 66 : 19); iw++) {
                        check_dw(k, (dw_shape){ih, iw, s, p});
                        if (k->dw3x3_c8)
                            check_dw_c8(k, (dw_shape){ih, iw, s, p});
                        if (k->dw3x3_backward_c8)
                            check_dw_bc8(k, (dw_shape){ih, iw, s, p});
                    }
    }
}

/* Wider planes: MobileNetV1's sizes at 224 x 224 and 160 x 160, widths
 * with several vectors before the tail, and rows wider than one strip of
 * KDC__DW_STRIP (256) outputs, cut at and next to strip boundaries. */
static void test_dw3x3_large(void **state)
{
    (void)state;
    static const dw_shape shapes[] = {
        {112, 112, 1, 1}, {112, 112, 2, 1}, {56, 56, 1, 1}, {56, 56, 2, 1}, {28, 28, 2, 1},
        {14, 14, 1, 1},   {14, 14, 2, 1},   {7, 7, 1, 1},   {80, 80, 2, 1}, {5, 5, 1, 1},
        {23, 61, 1, 0},   {21, 67, 2, 0},   {9, 64, 1, 1},  {9, 65, 2, 1},  {40, 33, 2, 0},
        {3, 256, 1, 1},   {3, 257, 1, 1},   {2, 513, 1, 1}, {5, 530, 1, 0}, {3, 600, 1, 1},
        {4, 601, 2, 1},   {3, 517, 2, 0},   {3, 514, 2, 1}, {6, 1030, 2, 1},
        {28, 28, 1, 1},   {29, 30, 1, 0},   {28, 33, 2, 1}, /* one band of the c8 kernel */
        {31, 30, 1, 1},   {60, 57, 2, 1},   {7, 338, 2, 1}, {4, 339, 1, 1}, /* bands, none */
    };
    for (int i = 0; i < N_ISAS; i++) {
        const kdc__dw_kernels *k = kdc__dw_kernels_get(all_isas[i]);
        if (!k)
            continue;
        for (size_t j = 0; j < sizeof shapes / sizeof shapes[0]; j++) {
            check_dw(k, shapes[j]);
            if (k->dw3x3_c8)
                check_dw_c8(k, shapes[j]);
            if (k->dw3x3_backward_c8)
                check_dw_bc8(k, shapes[j]);
        }
    }
}

/* ------------------------------------------------------------------ */
/* GEMM micro-kernels                                                  */

/* C (m x n corner of an mr x nr tile, row stride ldc) = (acc ? C : 0) +
 * A B, A packed as k columns of mr floats, B as k rows of nr floats. */
static void check_gemm(const char *name, kdc__gemm_ukernel gemm, int fused, int mr, int nr, int k,
                       int m, int n, int accumulate)
{
    const size_t ldc = (size_t)nr + 3;
    const size_t csize = (size_t)mr * ldc;
    float *a = tk_xmalloc((size_t)k * mr * sizeof(float));
    float *b = tk_xmalloc((size_t)k * nr * sizeof(float));
    float *c = guarded(csize), *c0 = tk_xmalloc(csize * sizeof(float));
    tk_fill(a, (size_t)k * mr, -1, 1);
    tk_fill(b, (size_t)k * nr, -1, 1);
    for (int p = 0; p < k; p++) { /* the zero padding of packed panels */
        for (int i = m; i < mr; i++)
            a[(size_t)p * mr + i] = 0.0f;
        for (int j = n; j < nr; j++)
            b[(size_t)p * nr + j] = 0.0f;
    }
    for (int i = 0; i < mr; i++)
        for (size_t j = 0; j < ldc; j++)
            c[i * ldc + j] = i < m && (int)j < n ? (float)(2.0 * tk_urand() - 1.0) : sentinel();
    memcpy(c0, c, csize * sizeof *c);

    gemm(k, a, b, c, ldc, m, n, accumulate);

    check_guards(c, csize, name);
    for (int i = 0; i < mr; i++)
        for (size_t j = 0; j < ldc; j++) {
            const float got = c[i * ldc + j];
            if (i >= m || (int)j >= n) {
                if (!is_sentinel(got))
                    fail_msg("%s k=%d m=%d n=%d: wrote C[%d][%zu] outside the corner", name, k,
                             m, n, i, j);
                continue;
            }
            const float init = accumulate ? c0[i * ldc + j] : 0.0f;
            double exact = init, mag = fabs((double)init);
            float model = init;
            for (int p = 0; p < k; p++) {
                const float av = a[(size_t)p * mr + i], bv = b[(size_t)p * nr + j];
                exact += (double)av * bv;
                mag += fabs((double)av * bv);
                if (fused) {
                    model = fmaf(av, bv, model);
                } else {
                    const float prod = av * bv;
                    model = model + prod;
                }
            }
            if (fabs(got - exact) > gemm_tol(k, mag))
                fail_msg("%s k=%d m=%d n=%d acc=%d: C[%d][%zu] = %.9g, exact %.9g", name, k, m,
                         n, accumulate, i, j, got, exact);
            if ((fused || EXACT_SCALAR) && !same(got, model))
                fail_msg("%s k=%d m=%d n=%d acc=%d: C[%d][%zu] = %.9g, not the %s chain %.9g",
                         name, k, m, n, accumulate, i, j, got, fused ? "FMA" : "mul-add",
                         model);
        }
    free(a);
    free(b);
    free(c - GUARD);
    free(c0);
}

static void check_gemm_all(const char *name, kdc__gemm_ukernel gemm, int fused, int mr, int nr)
{
    /* k = 1, small odd k, a multiple and a non-multiple of the unrolling,
     * and a large k, for every corner m x n of the tile */
    static const int ks[] = {1, 2, 3, 5, 8, 17, 256, 1031};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++)
        for (int m = 1; m <= mr; m++)
            for (int n = 1; n <= nr; n++)
                for (int acc = 0; acc <= 1; acc++)
                    check_gemm(name, gemm, fused, mr, nr, ks[t], m, n, acc);
}

static void test_gemm_tables(void **state)
{
    (void)state;
    for (int i = 0; i < N_ISAS; i++) {
        const kdc__gemm_kernels *gk = kdc__gemm_kernels_get(all_isas[i]);
        if (gk)
            check_gemm_all(gk->name, gk->gemm, gk->isa != KDC__ISA_SCALAR, gk->mr, gk->nr);
    }
}

/* The NEON micro-kernel by name, whatever the table holds. */
static void test_gemm_8x8_neon(void **state)
{
    (void)state;
#if defined(__aarch64__)
    check_gemm_all("kdc__f32_gemm_8x8_neon", kdc__f32_gemm_8x8_neon, 1, 8, 8);
#else
    print_message("kernels: kdc__f32_gemm_8x8_neon: not an aarch64 build, skipped\n");
#endif
}

/* ------------------------------------------------------------------ */
/* ReLU mask kernels                                                   */

/* Values that test every branch of the comparisons: zeros of both signs,
 * the clamp itself, infinities, NaN, denormals, and random ones. */
static void fill_act(float *x, size_t n)
{
    static const float special[] = {0.0f, -0.0f, 6.0f, INFINITY, -INFINITY, NAN, 1e-42f,
                                    -1e-42f, 5.9999995f, 6.0000005f};
    for (size_t i = 0; i < n; i++) {
        const double u = tk_urand();
        x[i] = u < 0.25 ? special[(size_t)(tk_urand() * 10) % 10]
                        : (float)(16.0 * tk_urand() - 8.0);
    }
}

/* One plane size: channels [1, 3) of 3, mask and backward, against the
 * scalar reference to the bit; channel 0 and the guards untouched. */
static void check_act(const kdc__act_kernels *ak, size_t hw, float clamp, int guided)
{
    enum { C = 3, WG = 2 };
    const size_t words = (hw + 63) / 64, nw = C * words + 2 * WG;
    float *y = tk_xmalloc(C * hw * sizeof(float)), *dy = tk_xmalloc(C * hw * sizeof(float));
    float *dx0 = tk_xmalloc(C * hw * sizeof(float));
    float *dxr = tk_xmalloc(C * hw * sizeof(float));
    float *dx = guarded(C * hw);
    uint64_t *mr = malloc(nw * sizeof *mr), *mk = malloc(nw * sizeof *mk);
    assert_non_null(mr);
    assert_non_null(mk);
    fill_act(y, C * hw);
    fill_act(dy, C * hw);
    fill_act(dx0, C * hw);
    for (size_t i = 0; i < nw; i++)
        mr[i] = mk[i] = 0xa5a5a5a5a5a5a5a5ull;
    kdc__relu_mask(y, mr + WG, hw, clamp, 1, C);
    ak->relu_mask(y, mk + WG, hw, clamp, 1, C);
    if (memcmp(mr, mk, nw * sizeof *mr))
        fail_msg("%s: mask hw=%zu clamp=%g differs from the reference", ak->name, hw, clamp);
    memcpy(dxr, dx0, C * hw * sizeof *dxr);
    memcpy(dx, dx0, C * hw * sizeof *dx);
    kdc__relu_backward_ref(dy, mr + WG, dxr, hw, guided, 1, C);
    ak->relu_backward(dy, mr + WG, dx, hw, guided, 1, C);
    check_guards(dx, C * hw, ak->name);
    if (memcmp(dx, dxr, C * hw * sizeof *dx))
        fail_msg("%s: backward hw=%zu clamp=%g guided=%d differs from the reference", ak->name,
                 hw, clamp, guided);
    /* BatchNorm's backward scale-and-add, on distinct planes and in place */
    const float scale[C] = {0.75f, -1.3f, 3.1e-3f};
    memcpy(dxr, dx0, C * hw * sizeof *dxr);
    memcpy(dx, dx0, C * hw * sizeof *dx);
    kdc__affine_backward_ref(dy, dxr, hw, scale, 1, C);
    ak->scale_add(dy, dx, hw, scale, 1, C);
    check_guards(dx, C * hw, ak->name);
    if (memcmp(dx, dxr, C * hw * sizeof *dx))
        fail_msg("%s: scale_add hw=%zu differs from the reference", ak->name, hw);
    kdc__affine_backward_ref(dxr, dxr, hw, scale, 1, C);
    ak->scale_add(dx, dx, hw, scale, 1, C);
    if (memcmp(dx, dxr, C * hw * sizeof *dx))
        fail_msg("%s: scale_add in place hw=%zu differs from the reference", ak->name, hw);
    /* the fused ReLU + BatchNorm backward against the two unfused ops (the
     * ReLU's backward into a zeroed gradient, then scale-and-add from it) */
    float *g = tk_xmalloc(C * hw * sizeof *g);
    memset(g, 0, C * hw * sizeof *g);
    memcpy(dxr, dx0, C * hw * sizeof *dxr);
    memcpy(dx, dx0, C * hw * sizeof *dx);
    kdc__relu_backward_ref(dy, mr + WG, g, hw, guided, 1, C);
    kdc__affine_backward_ref(g, dxr, hw, scale, 1, C);
    ak->relu_scale_backward(dy, mr + WG, dx, hw, guided, scale, 1, C, 1);
    check_guards(dx, C * hw, ak->name);
    if (memcmp(dx, dxr, C * hw * sizeof *dx))
        fail_msg("%s: relu_scale_backward hw=%zu clamp=%g guided=%d differs from the two "
                 "unfused ops", ak->name, hw, clamp, guided);
    /* writing (accumulate 0) onto NaN: the two unfused ops into zeros,
     * channel 0 left as it was */
    memset(dxr, 0, C * hw * sizeof *dxr);
    kdc__affine_backward_ref(g, dxr, hw, scale, 1, C);
    for (size_t i = 0; i < C * hw; i++)
        dx[i] = NAN;
    ak->relu_scale_backward(dy, mr + WG, dx, hw, guided, scale, 1, C, 0);
    check_guards(dx, C * hw, ak->name);
    for (size_t i = 0; i < hw; i++)
        if (!isnan(dx[i]))
            fail_msg("%s: relu_scale_backward wrote channel 0", ak->name);
    if (memcmp(dx + hw, dxr + hw, (C - 1) * hw * sizeof *dx))
        fail_msg("%s: relu_scale_backward hw=%zu clamp=%g guided=%d, writing, differs from "
                 "the two unfused ops into zeros", ak->name, hw, clamp, guided);
    free(g);
    free(y);
    free(dy);
    free(dx0);
    free(dxr);
    free(dx - GUARD);
    free(mr);
    free(mk);
}

static void test_act_tables(void **state)
{
    (void)state;
    static const size_t sizes[] = {100, 127, 128, 129, 196, 784, 3136, 12544};
    for (int i = 0; i < N_ISAS; i++) {
        const kdc__act_kernels *ak = kdc__act_kernels_get(all_isas[i]);
        if (!kdc__isa_supported(all_isas[i])) {
            assert_null(ak);
            continue;
        }
        assert_non_null(ak);
        for (int guided = 0; guided <= 1; guided++)
            for (int cl = 0; cl <= 1; cl++) {
                const float clamp = cl ? 6.0f : INFINITY;
                for (size_t hw = 1; hw <= 70; hw++)
                    check_act(ak, hw, clamp, guided);
                for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++)
                    check_act(ak, sizes[t], clamp, guided);
            }
        print_message("kernels: %s: masks, backward, scale_add and the fused ReLU + BN backward "
                      "equal to the reference\n",
                      ak->name);
    }
}

/* ------------------------------------------------------------------ */
/* Max pooling                                                         */

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* One plane of max pooling through pk against kdc__maxpool_idx_ref, the
 * window-by-window reference with no fast interior, to the bit: values
 * with ties, signed zeros, infinities and NaNs of distinct payloads (the
 * last NaN a window scans wins, as in the reference), NaNs dense or rare. */
static void check_pool(const kdc__pool_kernels *pk, int ih, int iw, int s, int p, unsigned seed)
{
    const int oh = kdc__out_size(ih, 3, s, p), ow = kdc__out_size(iw, 3, s, p);
    if (oh <= 0 || ow <= 0)
        return;
    const size_t ihw = (size_t)ih * iw, ohw = (size_t)oh * ow;
    float *x = tk_xmalloc(ihw * sizeof(float)); /* exact size: over-reads are ASan errors */
    float *yref = tk_xmalloc(ohw * sizeof(float));
    int32_t *idx = tk_xmalloc(ohw * sizeof(int32_t));
    float *y = guarded(ohw);
    uint32_t r = seed * 2654435761u + 1u;
    for (size_t i = 0; i < ihw; i++) {
        r = r * 1664525u + 1013904223u;
        const unsigned kind = r >> 28, v = (r >> 8) & 0xfffff;
        /* odd seeds: a NaN in 1 of 16 values (in most windows); even seeds:
         * in 1 of 4096 (most vector blocks of windows have none, some have
         * one) */
        if (kind == 0 && (seed % 2 || (r & 0xff) == 0)) {
            const uint32_t nan = 0x7fc00000u | v; /* a quiet NaN, payload v */
            memcpy(&x[i], &nan, sizeof nan);
        } else if (kind == 1)
            x[i] = (r & 1) ? -0.0f : 0.0f;
        else if (kind == 2)
            x[i] = (r & 1) ? -INFINITY : INFINITY;
        else if (seed % 3 == 0 && kind < 15)
            x[i] = -INFINITY; /* every third plane: windows all -inf */
        else
            x[i] = (float)((int)(v % 7) - 3); /* small integers: many ties */
    }
    kdc__maxpool_idx_ref(x, ih, iw, yref, idx, oh, ow, 3, s, p, 0, 1);
    kdc__maxpool(pk, x, ih, iw, y, oh, ow, 3, s, p, 0, 1);
    check_guards(y, ohw, "maxpool");
    for (size_t i = 0; i < ohw; i++)
        if (bits(y[i]) != bits(yref[i]))
            fail_msg("%s %dx%d s%d p%d: output %zu bits %08x, reference %08x", pk->name, ih, iw,
                     s, p, i, bits(y[i]), bits(yref[i]));
    /* recording the winners: the reference's values and winners */
    int32_t *id = tk_xmalloc((ohw + 2) * sizeof *id);
    id[0] = id[ohw + 1] = INT32_MIN; /* guards */
    for (size_t i = 0; i < ohw; i++) {
        y[i] = 42.0f; /* not a value of x */
        id[i + 1] = -7;
    }
    kdc__maxpool_idx(pk, x, ih, iw, y, id + 1, oh, ow, 3, s, p, 0, 1);
    check_guards(y, ohw, "maxpool recording");
    assert_true(id[0] == INT32_MIN && id[ohw + 1] == INT32_MIN);
    for (size_t i = 0; i < ohw; i++)
        if (bits(y[i]) != bits(yref[i]) || id[i + 1] != idx[i])
            fail_msg("%s %dx%d s%d p%d recording: output %zu bits %08x winner %d, reference "
                     "%08x winner %d", pk->name, ih, iw, s, p, i, bits(y[i]), id[i + 1],
                     bits(yref[i]), idx[i]);
    free(id);
    free(x);
    free(yref);
    free(idx);
    free(y - GUARD);
}

/* Every ISA's max-pooling table: heights 1..8 and widths 1..70 (tails of
 * every length after zero to four vectors, at both strides), both
 * paddings, and ResNet's stem pooling (112 x 112 and 400 x 608). */
static void test_pool_tables(void **state)
{
    (void)state;
    for (int i = 0; i < N_ISAS; i++) {
        const kdc__pool_kernels *pk = kdc__pool_kernels_get(all_isas[i]);
        if (!kdc__isa_supported(all_isas[i])) {
            assert_null(pk);
            continue;
        }
        assert_non_null(pk);
        /* NEON borrows the scalar table (docs/kernels.md) */
        assert_true(pk->isa == all_isas[i] ||
                    (all_isas[i] == KDC__ISA_NEON && pk->isa == KDC__ISA_SCALAR));
        unsigned seed = 1;
        for (int s = 1; s <= 2; s++)
            for (int p = 0; p <= 1; p++) {
                for (int ih = 1; ih <= 8; ih++)
                    for (int iw = 1; iw <= 70; iw++)
                        check_pool(pk, ih, iw, s, p, seed++);
                check_pool(pk, 112, 112, s, p, seed++);
            }
        check_pool(pk, 400, 608, 2, 1, seed++);
        print_message("kernels: %s: max pooling equal to the reference to the bit\n", pk->name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),      cmocka_unit_test(test_dw3x3_small),
        cmocka_unit_test(test_dw3x3_large), cmocka_unit_test(test_gemm_tables),
        cmocka_unit_test(test_gemm_8x8_neon), cmocka_unit_test(test_act_tables),
        cmocka_unit_test(test_pool_tables),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
