/* test_ops.c - every op's scalar reference: the forward against a naive
 * re-statement of its definition, and the backward against central finite
 * differences of L = sum(dy * f(x)); every op's tangent task (the tangent
 * pass, lib/run/tangent.c) against its backward by the adjoint identity
 * <J t, dy> = <t, J^T dy>, with either input's tangent left out.
 *
 * The finite differences are taken in double on a double re-computation of
 * the forward (the naive_* functions below), so the check does not inherit
 * float32 cancellation; the analytic gradient comes from the library. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph.h"
#include "kit.h"
#include "op.h"


/* ---- naive double-precision definitions ---- */

static void naive_conv(const kdc__conv_param *cp, const double *x, int n, int ih, int iw,
                       double *y, int oh, int ow)
{
    const int cin_g = cp->cin / cp->groups, cout_g = cp->cout / cp->groups;
    for (int b = 0; b < n; b++)
        for (int oc = 0; oc < cp->cout; oc++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = cp->bias ? cp->bias[oc] : 0.0;
                    int g = oc / cout_g;
                    for (int icg = 0; icg < cin_g; icg++)
                        for (int ky = 0; ky < cp->kh; ky++)
                            for (int kx = 0; kx < cp->kw; kx++) {
                                int iy = oy * cp->stride + ky - cp->pad;
                                int ix = ox * cp->stride + kx - cp->pad;
                                if (iy < 0 || iy >= ih || ix < 0 || ix >= iw)
                                    continue;
                                int ic = g * cin_g + icg;
                                s += (double)cp->weight[((size_t)oc * cin_g + icg) * cp->kh *
                                                            cp->kw + ky * cp->kw + kx] *
                                     x[(((size_t)b * cp->cin + ic) * ih + iy) * iw + ix];
                            }
                    y[(((size_t)b * cp->cout + oc) * oh + oy) * ow + ox] = s;
                }
}

static double dot_d(const double *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- conv: forward vs naive, backward vs finite differences ---- */

typedef struct conv_case {
    int n, cin, cout, ih, iw, k, stride, pad, groups, bias;
} conv_case;

static void check_conv(const conv_case *cc)
{
    kdc__conv_param cp = {.cin = cc->cin, .cout = cc->cout, .kh = cc->k, .kw = cc->k,
                          .stride = cc->stride, .pad = cc->pad, .groups = cc->groups};
    const int oh = kdc__out_size(cc->ih, cc->k, cc->stride, cc->pad);
    const int ow = kdc__out_size(cc->iw, cc->k, cc->stride, cc->pad);
    const size_t nw = (size_t)cc->cout * (cc->cin / cc->groups) * cc->k * cc->k;
    const size_t nx = (size_t)cc->n * cc->cin * cc->ih * cc->iw;
    const size_t ny = (size_t)cc->n * cc->cout * oh * ow;
    float *w = malloc(nw * sizeof *w), *bias = malloc((size_t)cc->cout * sizeof *bias);
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    float *dy = malloc(ny * sizeof *dy), *dx = calloc(nx, sizeof *dx);
    double *xd = malloc(nx * sizeof *xd), *yd = malloc(ny * sizeof *yd);
    assert_non_null(w); assert_non_null(bias); assert_non_null(x); assert_non_null(y);
    assert_non_null(dy); assert_non_null(dx); assert_non_null(xd); assert_non_null(yd);
    tk_fill(w, nw, -1, 1);
    tk_fill(bias, (size_t)cc->cout, -1, 1);
    tk_fill(x, nx, -1, 1);
    tk_fill(dy, ny, -1, 1);
    cp.weight = w;
    cp.bias = cc->bias ? bias : NULL;

    /* forward, split over two channel ranges to exercise oc0/oc1 */
    for (int b = 0; b < cc->n; b++) {
        kdc__conv2d_ref(&cp, x, cc->ih, cc->iw, y, oh, ow, b, 0, cc->cout / 2);
        kdc__conv2d_ref(&cp, x, cc->ih, cc->iw, y, oh, ow, b, cc->cout / 2, cc->cout);
    }
    for (size_t i = 0; i < nx; i++)
        xd[i] = x[i];
    naive_conv(&cp, xd, cc->n, cc->ih, cc->iw, yd, oh, ow);
    for (size_t i = 0; i < ny; i++)
        assert_true(fabs(y[i] - yd[i]) <= 1e-5 * (1.0 + fabs(yd[i])));

    /* backward-data vs central differences of L(x) = sum(dy * conv(x)) */
    for (int b = 0; b < cc->n; b++)
        kdc__conv2d_backward_data_ref(&cp, dy, oh, ow, dx, cc->ih, cc->iw, b, 0, cc->cin);
    const double h = 1e-3;
    for (size_t t = 0; t < 40; t++) {
        size_t i = (size_t)(tk_urand() * nx);
        double keep = xd[i];
        xd[i] = keep + h;
        naive_conv(&cp, xd, cc->n, cc->ih, cc->iw, yd, oh, ow);
        double lp = dot_d(yd, dy, ny);
        xd[i] = keep - h;
        naive_conv(&cp, xd, cc->n, cc->ih, cc->iw, yd, oh, ow);
        double lm = dot_d(yd, dy, ny);
        xd[i] = keep;
        double num = (lp - lm) / (2 * h);
        assert_true(fabs(num - dx[i]) <= 1e-4 * (1.0 + fabs(num)));
    }
    free(w); free(bias); free(x); free(y); free(dy); free(dx); free(xd); free(yd);
}

static void test_conv_cases(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {2, 5, 6, 9, 7, 3, 1, 1, 1, 0},   /* 3x3 same, odd sizes          */
        {1, 4, 3, 11, 8, 3, 2, 1, 1, 1},  /* 3x3 stride 2, bias           */
        {1, 3, 4, 13, 10, 7, 2, 3, 1, 0}, /* the 7x7/2 stem                */
        {2, 6, 5, 5, 6, 1, 1, 0, 1, 1},   /* 1x1                           */
        {1, 6, 4, 9, 9, 1, 2, 0, 1, 0},   /* 1x1 stride 2 (downsample)     */
        {2, 6, 6, 8, 7, 3, 1, 1, 6, 0},   /* depthwise 3x3                 */
        {1, 5, 5, 9, 6, 3, 2, 1, 5, 0},   /* depthwise 3x3 stride 2        */
        {1, 4, 6, 7, 5, 3, 1, 1, 2, 1},   /* grouped                       */
        {1, 2, 3, 2, 3, 3, 1, 1, 1, 0},   /* tiny input, mostly padding    */
    };
    tk_seed(1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_conv(&cases[i]);
}

/* ---- affine, relu, add+relu ---- */

static void test_affine(void **state)
{
    (void)state;
    enum { C = 5, HW = 13 };
    float x[C * HW], y[C * HW], dy[C * HW], dx[C * HW] = {0}, scale[C], shift[C];
    tk_seed(2);
    tk_fill(x, C * HW, -2, 2);
    tk_fill(dy, C * HW, -1, 1);
    tk_fill(scale, C, -2, 2);
    tk_fill(shift, C, -1, 1);
    kdc__affine_ref(x, y, C, HW, scale, shift, 0, C);
    kdc__affine_backward_ref(dy, dx, HW, scale, 0, C);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < HW; i++) {
            assert_float_equal(y[c * HW + i], x[c * HW + i] * scale[c] + shift[c], 1e-6);
            /* L is linear in x: dL/dx = dy * scale exactly */
            assert_float_equal(dx[c * HW + i], dy[c * HW + i] * scale[c], 1e-6);
        }
}

static void test_bn_fold(void **state)
{
    (void)state;
    float g[3] = {1.5f, -0.5f, 2.0f}, b[3] = {0.1f, 0.2f, -0.3f}, mu[3] = {0.5f, -1.0f, 0.0f};
    float var[3] = {4.0f, 0.25f, 1.0f}, s[3], t[3];
    kdc__bn_fold(g, b, mu, var, 0.0f, 3, s, t);
    for (int i = 0; i < 3; i++) {
        float x = 0.7f;
        double want = (x - mu[i]) / sqrt(var[i]) * g[i] + b[i];
        assert_true(fabs(x * s[i] + t[i] - want) < 1e-6);
    }
}

static void check_relu(float clamp, int guided)
{
    enum { C = 3, HW = 70 }; /* 70 > 64: masks span two words */
    const size_t words = (HW + 63) / 64;
    float x[C * HW], y[C * HW], dy[C * HW], dx[C * HW] = {0};
    uint64_t mask[C * 2];
    assert_int_equal(words, 2);
    tk_fill(x, C * HW, -8, 8);
    tk_fill(dy, C * HW, -1, 1);
    for (int i = 0; i < C * HW; i++) /* keep away from the kinks at 0 and 6 */
        if (fabsf(x[i]) < 0.01f || fabsf(x[i] - 6.0f) < 0.01f)
            x[i] += 0.05f;
    kdc__relu_ref(x, y, 0, C * HW, clamp);
    kdc__relu_mask(y, mask, HW, clamp, 0, C);
    kdc__relu_backward_ref(dy, mask, dx, HW, guided, 0, C);
    const double h = 1e-3;
    for (int i = 0; i < C * HW; i++) {
        double want_y = x[i] > 0 ? (x[i] < clamp ? x[i] : clamp) : 0.0;
        assert_float_equal(y[i], want_y, 0.0);
        /* central difference of sum(dy * relu(x)) at element i */
        double xp = x[i] + h, xm = x[i] - h;
        double fp = xp > 0 ? (xp < clamp ? xp : clamp) : 0.0;
        double fm = xm > 0 ? (xm < clamp ? xm : clamp) : 0.0;
        double num = dy[i] * (fp - fm) / (2 * h);
        if (guided && !(dy[i] > 0))
            num = 0.0;
        assert_true(fabs(num - dx[i]) < 1e-4);
    }
}

static void test_relu(void **state)
{
    (void)state;
    tk_seed(3);
    check_relu(INFINITY, 0);
    check_relu(6.0f, 0);
    check_relu(INFINITY, 1);
    check_relu(6.0f, 1);
}

static void test_add_relu(void **state)
{
    (void)state;
    enum { N = 50 };
    float a[N], b[N], y[N], dy[N], da[N] = {0}, db[N] = {0};
    uint64_t mask[1];
    tk_seed(4);
    tk_fill(a, N, -3, 3);
    tk_fill(b, N, -3, 3);
    tk_fill(dy, N, -1, 1);
    for (int i = 0; i < N; i++)
        if (fabsf(a[i] + b[i]) < 0.01f)
            a[i] += 0.05f;
    kdc__add_relu_ref(a, b, y, 0, N, INFINITY);
    kdc__relu_mask(y, mask, N, INFINITY, 0, 1);
    kdc__relu_backward_ref(dy, mask, da, N, 0, 0, 1);
    kdc__relu_backward_ref(dy, mask, db, N, 0, 0, 1);
    for (int i = 0; i < N; i++) {
        float s = a[i] + b[i];
        assert_float_equal(y[i], s > 0 ? s : 0.0f, 0.0);
        float g = s > 0 ? dy[i] : 0.0f;
        assert_float_equal(da[i], g, 0.0);
        assert_float_equal(db[i], g, 0.0);
    }
}

/* ---- pooling and linear ---- */

/* The forward max-pool (with its unrolled 3 x 3 interior) against the
 * recording one (one plain loop for every output) on every small size,
 * stride, padding and window, with ties, infinities and NaNs: the same
 * values, NaN where NaN. */
static void test_maxpool_interior(void **state)
{
    (void)state;
    static const float special[] = {0.0f, -0.0f, 1.0f, -INFINITY, INFINITY, NAN};
    /* outputs are at most (13 + 2 - 1) x (13 + 2 - 1) per plane (k 2, pad 1) */
    float x[2 * 13 * 13], y[2 * 14 * 14], y2[2 * 14 * 14];
    int32_t idx[2 * 14 * 14];
    tk_seed(9);
    int checked = 0;
    for (int k = 1; k <= 3; k++)
        for (int s = 1; s <= 2; s++)
            for (int p = 0; p <= k / 2; p++)
                for (int ih = 1; ih <= 13; ih++)
                    for (int iw = 1; iw <= 13; iw += 3) {
                        const int oh = kdc__out_size(ih, k, s, p), ow = kdc__out_size(iw, k, s, p);
                        if (oh <= 0 || ow <= 0)
                            continue;
                        for (int i = 0; i < 2 * ih * iw; i++)
                            x[i] = tk_urand() < 0.2 ? special[(int)(tk_urand() * 6) % 6]
                                                 : (float)(int)(tk_urand() * 7.0);
                        kdc__maxpool_ref(x, ih, iw, y, oh, ow, k, s, p, 0, 2);
                        kdc__maxpool_idx_ref(x, ih, iw, y2, idx, oh, ow, k, s, p, 0, 2);
                        for (int i = 0; i < 2 * oh * ow; i++)
                            if (!(y[i] == y2[i] || (isnan(y[i]) && isnan(y2[i]))))
                                fail_msg("maxpool k%d s%d p%d %dx%d: output %d = %g, not %g", k,
                                         s, p, ih, iw, i, y[i], y2[i]);
                        checked++;
                    }
    assert_true(checked > 300);
}

static void test_maxpool(void **state)
{
    (void)state;
    enum { C = 2, IH = 9, IW = 8, K = 3, S = 2, P = 1 };
    const int oh = kdc__out_size(IH, K, S, P), ow = kdc__out_size(IW, K, S, P);
    float x[C * IH * IW], y[C * 5 * 5], y2[C * 5 * 5], dy[C * 5 * 5], dx[C * IH * IW] = {0};
    int32_t idx[C * 5 * 5];
    assert_int_equal(oh, 5);
    assert_int_equal(ow, 4);
    tk_seed(5);
    /* distinct values (a shuffled ramp) so the max is unique and a finite
     * difference step cannot change the winner */
    for (int i = 0; i < C * IH * IW; i++)
        x[i] = (float)i * 0.1f;
    for (int i = C * IH * IW - 1; i > 0; i--) {
        int j = (int)(tk_urand() * (i + 1));
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    tk_fill(dy, (size_t)C * oh * ow, -1, 1);
    kdc__maxpool_ref(x, IH, IW, y, oh, ow, K, S, P, 0, C);
    kdc__maxpool_idx_ref(x, IH, IW, y2, idx, oh, ow, K, S, P, 0, C);
    kdc__maxpool_backward_ref(dy, idx, (size_t)oh * ow, dx, (size_t)IH * IW, 0, C);
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        int iy = oy * S + ky - P, ix = ox * S + kx - P;
                        if (iy >= 0 && iy < IH && ix >= 0 && ix < IW && x[(c * IH + iy) * IW + ix] > m)
                            m = x[(c * IH + iy) * IW + ix];
                    }
                assert_float_equal(y[(c * oh + oy) * ow + ox], m, 0.0);
                assert_float_equal(y2[(c * oh + oy) * ow + ox], m, 0.0);
            }
    /* finite differences: d/dx_i sum(dy * maxpool(x)) */
    const float h = 0.01f;
    for (int i = 0; i < C * IH * IW; i++) {
        float keep = x[i];
        double lp = 0, lm = 0;
        x[i] = keep + h;
        kdc__maxpool_ref(x, IH, IW, y, oh, ow, K, S, P, 0, C);
        for (int j = 0; j < C * oh * ow; j++)
            lp += (double)dy[j] * y[j];
        x[i] = keep - h;
        kdc__maxpool_ref(x, IH, IW, y, oh, ow, K, S, P, 0, C);
        for (int j = 0; j < C * oh * ow; j++)
            lm += (double)dy[j] * y[j];
        x[i] = keep;
        assert_true(fabs((lp - lm) / (2 * h) - dx[i]) < 1e-3);
    }
}

static void test_gap(void **state)
{
    (void)state;
    enum { C = 3, HW = 10 };
    float x[C * HW], y[C], dy[C], dx[C * HW] = {0};
    tk_seed(6);
    tk_fill(x, C * HW, -1, 1);
    tk_fill(dy, C, -1, 1);
    kdc__gap_ref(x, HW, y, 0, C);
    kdc__gap_backward_ref(dy, dx, HW, 0, C);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int i = 0; i < HW; i++)
            s += x[c * HW + i];
        assert_true(fabs(y[c] - s / HW) < 1e-6);
        for (int i = 0; i < HW; i++)
            assert_true(fabs(dx[c * HW + i] - dy[c] / HW) < 1e-7);
    }
}

static void test_linear(void **state)
{
    (void)state;
    enum { CIN = 7, COUT = 4 };
    float w[COUT * CIN], bias[COUT], x[CIN], y[COUT], dy[COUT], dx[CIN] = {0};
    tk_seed(7);
    tk_fill(w, COUT * CIN, -1, 1);
    tk_fill(bias, COUT, -1, 1);
    tk_fill(x, CIN, -1, 1);
    tk_fill(dy, COUT, -1, 1);
    kdc__conv_param lp = {.cin = CIN, .cout = COUT, .kh = 1, .kw = 1, .stride = 1, .groups = 1,
                          .weight = w, .bias = bias};
    kdc__linear_ref(&lp, x, y, 0, COUT);
    kdc__linear_backward_ref(&lp, dy, dx, 0, CIN);
    for (int o = 0; o < COUT; o++) {
        double s = bias[o];
        for (int i = 0; i < CIN; i++)
            s += (double)w[o * CIN + i] * x[i];
        assert_true(fabs(y[o] - s) < 1e-5);
    }
    /* L = sum_o dy_o (W x + b)_o is linear: dL/dx_i = sum_o dy_o W_oi */
    for (int i = 0; i < CIN; i++) {
        double s = 0;
        for (int o = 0; o < COUT; o++)
            s += (double)dy[o] * w[o * CIN + i];
        assert_true(fabs(dx[i] - s) < 1e-5);
    }
}

/* ---- ADD_UP: the FPN's top-down join y = a + nearest_upsample(b) ---- */

/* PyTorch's F.interpolate(mode="nearest", size=(h, w)): source index
 * floor(dst * (in / out)), the scale in float, at most in - 1. */
static int naive_nearest(int dst, int in, int out)
{
    const float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s > in - 1 ? in - 1 : s;
}

static double add_up_loss(const float *a, const float *b, const float *dy, int C, int h, int w,
                          int bh, int bw)
{
    double l = 0.0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = (double)a[(c * h + y) * w + x] +
                           b[(c * bh + naive_nearest(y, bh, h)) * bw + naive_nearest(x, bw, w)];
                l += dy[(c * h + y) * w + x] * v;
            }
    return l;
}

static void check_add_up(int C, int h, int w, int bh, int bw)
{
    const size_t na = (size_t)C * h * w, nb = (size_t)C * bh * bw;
    float *a = tk_rand_buf(na, -2, 2), *b = tk_rand_buf(nb, -2, 2), *dy = tk_rand_buf(na, -1, 1);
    float *y = tk_xmalloc(na * sizeof *y);
    float *da = calloc(na, sizeof *da), *db = calloc(nb, sizeof *db);
    assert_non_null(da);
    assert_non_null(db);
    /* forward and backward over two channel ranges, to exercise c0 / c1 */
    kdc__add_up_ref(a, b, y, h, w, bh, bw, 0, C / 2);
    kdc__add_up_ref(a, b, y, h, w, bh, bw, C / 2, C);
    for (int c = 0; c < C; c++)
        for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++) {
                float want = a[(c * h + yy) * w + xx] +
                             b[(c * bh + naive_nearest(yy, bh, h)) * bw + naive_nearest(xx, bw, w)];
                assert_float_equal(y[(c * h + yy) * w + xx], want, 0.0);
            }
    kdc__add_up_backward_ref(dy, da, db, h, w, bh, bw, 0, C / 2);
    kdc__add_up_backward_ref(dy, da, db, h, w, bh, bw, C / 2, C);
    /* central differences of L = sum(dy * y) with respect to a and b */
    const float d = 0.01f;
    float *in[2] = {a, b}, *grad[2] = {da, db};
    const size_t count[2] = {na, nb};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < count[k]; i++) {
            const float keep = in[k][i], up = keep + d, down = keep - d;
            in[k][i] = up;
            const double lp = add_up_loss(a, b, dy, C, h, w, bh, bw);
            in[k][i] = down;
            const double lm = add_up_loss(a, b, dy, C, h, w, bh, bw);
            in[k][i] = keep;
            assert_true(fabs((lp - lm) / ((double)up - down) - grad[k][i]) < 1e-3);
        }
    /* da only, db only: each is optional */
    memset(da, 0, na * sizeof *da);
    kdc__add_up_backward_ref(dy, da, NULL, h, w, bh, bw, 0, C);
    for (size_t i = 0; i < na; i++)
        assert_float_equal(da[i], dy[i], 0.0);
    free(a); free(b); free(dy); free(y); free(da); free(db);
}

static void test_add_up(void **state)
{
    (void)state;
    tk_seed(10);
    check_add_up(3, 8, 10, 4, 5);  /* exactly 2x, as in the FPN at even sizes */
    check_add_up(2, 7, 9, 4, 5);   /* odd sizes: ceil-halved levels (49x67 inputs) */
    check_add_up(4, 13, 17, 7, 9);
    check_add_up(1, 5, 6, 5, 6);   /* same size */
    check_add_up(2, 6, 4, 1, 1);   /* a 1x1 level broadcast */
}

/* ---- tangents ---- */

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double dot_abs(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] * b[i]);
    return s;
}

/* The op of nd through the op table (model m's kernels) on 2 images:
 * forward at a random x (x2) recording its state, then the tangent of
 * random t (t2), in two channel ranges, against the backward of a random dy:
 * <tangent, dy> = <t, dx> + <t2, dx2>, to float rounding; and for two-input
 * ops each input's tangent alone (the other NULL). */
static void check_tangent(const struct kdc_model *m, const kdc__node *nd, const int *ic,
                          const int *ic2, const int *oc)
{
    const kdc__op_def *op = kdc__op_table[nd->op];
    assert_non_null(op->tangent);
    enum { N = 2 };
    const size_t nin = (size_t)N * ic[0] * ic[1] * ic[2];
    const size_t nin2 = ic2 ? (size_t)N * ic2[0] * ic2[1] * ic2[2] : 1;
    const size_t ohw = (size_t)oc[1] * oc[2], nout = (size_t)N * oc[0] * ohw;
    float *x = tk_rand_buf(nin, -2, 2), *x2 = tk_rand_buf(nin2, -2, 2);
    float *t = tk_rand_buf(nin, -1, 1), *t2 = tk_rand_buf(nin2, -1, 1);
    float *dy = tk_rand_buf(nout, -1, 1);
    float *y = calloc(nout, sizeof *y), *yt = calloc(nout, sizeof *yt);
    float *dx = calloc(nin, sizeof *dx), *dx2 = calloc(nin2, sizeof *dx2);
    uint64_t *mask = calloc((size_t)N * oc[0] * ((ohw + 63) / 64), sizeof *mask);
    int32_t *argmax = calloc(nout, sizeof *argmax);
    assert_true(y && yt && dx && dx2 && mask && argmax);
    kdc__op_args a = {.m = m, .nd = nd, .x = x, .x2 = ic2 ? x2 : NULL, .in_chw = ic,
                      .in2_chw = ic2, .out_chw = oc, .y = y,
                      .mask = op->record == KDC__RECORD_MASK ? mask : NULL,
                      .argmax = op->record == KDC__RECORD_ARGMAX ? argmax : NULL};
    for (int b = 0; b < N; b++)
        op->forward(&a, b, 0, oc[0]);
    a.dy = dy;
    a.dx = dx;
    a.dx2 = ic2 ? dx2 : NULL;
    for (int b = 0; b < N; b++)
        op->backward(&a, b, 0, ic[0]);
    const double g1 = dot(t, dx, nin), g2 = ic2 ? dot(t2, dx2, nin2) : 0.0;
    /* both tangents, then each alone */
    for (int k = 0; k < (ic2 ? 3 : 1); k++) {
        kdc__op_args at = a;
        at.x = k == 2 ? NULL : t;
        at.x2 = ic2 && k != 1 ? t2 : NULL;
        at.y = yt;
        memset(yt, 0, nout * sizeof *yt);
        for (int b = 0; b < N; b++) {
            op->tangent(&at, b, 0, oc[0] / 2);
            op->tangent(&at, b, oc[0] / 2, oc[0]);
        }
        const double lhs = dot(yt, dy, nout);
        const double rhs = (k == 2 ? 0.0 : g1) + (k == 1 ? 0.0 : g2);
        const double scale = dot_abs(yt, dy, nout) + 1e-30;
        if (fabs(lhs - rhs) > 1e-5 * scale)
            fail_msg("%s tangent (case %d): <J t, dy> = %.9g, <t, J^T dy> = %.9g", op->name, k,
                     lhs, rhs);
    }
    free(x); free(x2); free(t); free(t2); free(dy); free(y); free(yt); free(dx); free(dx2);
    free(mask); free(argmax);
}

static void test_tangent(void **state)
{
    (void)state;
    tk_seed(12);
    struct kdc_model m;
    memset(&m, 0, sizeof m);
    m.act = kdc__act_kernels_get(KDC__ISA_SCALAR);
    enum { C = 4 };
    float *w = tk_rand_buf(C * C * 9, -0.5, 0.5), *bias = tk_rand_buf(C, -1, 1);
    float *scale = tk_rand_buf(C, 0.5, 2), *shift = tk_rand_buf(C, -1, 1);
    float *lw = tk_rand_buf(5 * C, -1, 1), *lb = tk_rand_buf(5, -1, 1);
    kdc__node nd = {.op = KDC__OP_CONV, .name = "t", .in = {0, -1}, .channels = C};
    int ic[3] = {C, 7, 9}, oc[3] = {C, 4, 5};
    /* dense 3x3 stride 2, with bias */
    nd.p.conv = (kdc__conv_param){.cin = C, .cout = C, .kh = 3, .kw = 3, .stride = 2, .pad = 1,
                                  .groups = 1, .weight = w, .bias = bias};
    check_tangent(&m, &nd, ic, NULL, oc);
    /* depthwise 3x3, on the reference and on the depthwise kernel table */
    nd.p.conv.groups = C;
    nd.p.conv.stride = 1;
    int oc1[3] = {C, 7, 9};
    check_tangent(&m, &nd, ic, NULL, oc1);
    m.dw = kdc__dw_kernels_get(KDC__ISA_SCALAR);
    assert_non_null(m.dw);
    assert_true(kdc__conv_is_dw(&m, &nd));
    check_tangent(&m, &nd, ic, NULL, oc1);
    nd.op = KDC__OP_AFFINE;
    nd.p.affine.scale = scale;
    nd.p.affine.shift = shift;
    check_tangent(&m, &nd, ic, NULL, ic);
    nd.op = KDC__OP_RELU;
    nd.p.act.clamp = INFINITY;
    check_tangent(&m, &nd, ic, NULL, ic);
    nd.p.act.clamp = 1.0f; /* a ReLU6 whose clamp the inputs reach */
    check_tangent(&m, &nd, ic, NULL, ic);
    nd.op = KDC__OP_ADD_RELU;
    nd.in[1] = 0;
    check_tangent(&m, &nd, ic, ic, ic);
    nd.op = KDC__OP_ADD_UP;
    int ib[3] = {C, 4, 5};
    check_tangent(&m, &nd, ic, ib, ic);
    nd.in[1] = -1;
    nd.op = KDC__OP_MAXPOOL;
    nd.p.pool.k = 3;
    nd.p.pool.stride = 2;
    nd.p.pool.pad = 1;
    check_tangent(&m, &nd, ic, NULL, oc);
    nd.op = KDC__OP_GAP;
    int og[3] = {C, 1, 1};
    check_tangent(&m, &nd, ic, NULL, og);
    nd.op = KDC__OP_LINEAR;
    nd.channels = 5;
    nd.p.conv = (kdc__conv_param){.cin = C, .cout = 5, .kh = 1, .kw = 1, .stride = 1,
                                  .groups = 1, .weight = lw, .bias = lb};
    int ol[3] = {5, 1, 1};
    check_tangent(&m, &nd, og, NULL, ol);
    free(w); free(bias); free(scale); free(shift); free(lw); free(lb);
}

static void test_out_size(void **state)
{
    (void)state;
    assert_int_equal(kdc__out_size(224, 7, 2, 3), 112);
    assert_int_equal(kdc__out_size(112, 3, 2, 1), 56);
    assert_int_equal(kdc__out_size(161, 7, 2, 3), 81);
    assert_int_equal(kdc__out_size(2, 7, 1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_cases), cmocka_unit_test(test_affine),
        cmocka_unit_test(test_bn_fold),    cmocka_unit_test(test_relu),
        cmocka_unit_test(test_add_relu),   cmocka_unit_test(test_maxpool), cmocka_unit_test(test_maxpool_interior),
        cmocka_unit_test(test_gap),        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_add_up),     cmocka_unit_test(test_out_size),
        cmocka_unit_test(test_tangent),
    };
    tk_seed(0);
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
