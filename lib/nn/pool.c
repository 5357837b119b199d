/* pool.c - max pooling and global average pooling: forward and backward
 * references, and the max-pooling kernel table (SIMD row kernels in
 * x86/pool_avx2.c and x86/pool_avx512.c). */
#include <math.h>
#include <string.h>

#include "graph.h"
#include "kernels.h"
#include "op.h"

/* The max over the k x k window with top-left input corner (iy0, ix0),
 * scanned row by row; taps in the padding are skipped (PyTorch pads max
 * pooling with -inf, so padding never wins). The first tap inside is
 * taken, then any greater one or a NaN (as in PyTorch): the first maximum
 * wins, or the last NaN. *at: the winner's plane index (-1: none). */
static inline float kdc__max_window(const float *x, int ih, int iw, int k, int iy0, int ix0,
                                    int32_t *at)
{
    float m = -INFINITY;
    int32_t a = -1;
    for (int ky = 0; ky < k; ky++) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= ih)
            continue;
        for (int kx = 0; kx < k; kx++) {
            const int ix = ix0 + kx;
            if (ix < 0 || ix >= iw)
                continue;
            const float v = x[(size_t)iy * iw + ix];
            if (a < 0 || v > m || v != v) {
                m = v;
                a = iy * iw + ix;
            }
        }
    }
    *at = a;
    return m;
}

/* The same for a 3 x 3 window wholly inside the input, p its top-left tap
 * at plane index at0: the same scan order and comparisons without the
 * bounds tests, so the same result. */
static inline float kdc__max_3x3(const float *p, int iw, int32_t at0, int32_t *at)
{
    float m = p[0];
    int32_t a = at0;
    for (int ky = 0; ky < 3; ky++)
        for (int kx = ky == 0; kx < 3; kx++) {
            const float v = p[(size_t)ky * iw + kx];
            if (v > m || v != v) {
                m = v;
                a = at0 + ky * iw + kx;
            }
        }
    *at = a;
    return m;
}

/* First output whose window starts at or after the padding, and one past
 * the last whose window ends inside n inputs. */
static void kdc__inner_range(int n, int k, int stride, int pad, int out, int *lo, int *hi)
{
    *lo = (pad + stride - 1) / stride;
    *hi = n - k + pad >= 0 ? (n - k + pad) / stride + 1 : 0;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

void kdc__f32_maxpool3_row_scalar(const float *p, int iw, int stride, float *y, int n)
{
    int32_t at;
    for (int j = 0; j < n; j++)
        y[j] = kdc__max_3x3(p + (size_t)j * stride, iw, 0, &at);
}

void kdc__f32_maxpool3_row_idx_scalar(const float *p, int iw, int stride, float *y, int32_t *idx,
                                      int32_t at0, int n)
{
    for (int j = 0; j < n; j++)
        y[j] = kdc__max_3x3(p + (size_t)j * stride, iw, at0 + j * stride, &idx[j]);
}

/* An output row whose windows reach above or below the input, through
 * row3: its three input rows copied to rows, those outside as -inf (a
 * -inf tap never changes a scan that starts from -inf: -inf > m is false
 * and -inf is not NaN, so the values are the window-by-window ones; not
 * the winners, which is why recording passes take the windows). */
static void kdc__maxpool_edge_row(kdc__maxpool3_row_fn row3, const float *x, int ih, int iw,
                                  int iy0, int stride, int ix0, float *yr, int n, float *rows)
{
    for (int ky = 0; ky < 3; ky++) {
        const int iy = iy0 + ky;
        float *r = rows + (size_t)ky * iw;
        if (iy >= 0 && iy < ih)
            memcpy(r, x + (size_t)iy * iw, (size_t)iw * sizeof *r);
        else
            for (int i = 0; i < iw; i++)
                r[i] = -INFINITY;
    }
    row3(rows + ix0, iw, stride, yr, n);
}

/* Rows of at most this many floats take kdc__maxpool_edge_row (on the
 * stack: three of them). */
enum { KDC__POOL_EDGE_W = 2048 };

/* Windows that reach into the padding by kdc__max_window, the interior of
 * each row by row3 (k = 3 only), or, recording the winners into idx (not
 * NULL), by row3_idx. With edge_rows (and no idx), the inner columns of
 * the rows above and below the interior also by row3, through
 * kdc__maxpool_edge_row. */
static void kdc__maxpool_rows(kdc__maxpool3_row_fn row3, kdc__maxpool3_row_idx_fn row3_idx,
                              const float *in, int ih, int iw, float *out, int32_t *idx, int oh,
                              int ow, int k, int stride, int pad, int c0, int c1, int edge_rows)
{
    float rows[3 * KDC__POOL_EDGE_W];
    int ylo, yhi, xlo, xhi;
    kdc__inner_range(ih, k, stride, pad, oh, &ylo, &yhi);
    kdc__inner_range(iw, k, stride, pad, ow, &xlo, &xhi);
    if (k != 3) /* only the 3 x 3 window has an unrolled interior */
        ylo = yhi = xlo = xhi = 0;
    int32_t at;
    for (int c = c0; c < c1; c++) {
        const float *x = in + (size_t)c * ih * iw;
        float *y = out + (size_t)c * oh * ow;
        int32_t *id = idx ? idx + (size_t)c * oh * ow : NULL;
        for (int oy = 0; oy < oh; oy++) {
            const int iy0 = oy * stride - pad;
            float *yr = y + (size_t)oy * ow;
            int32_t *ir = id ? id + (size_t)oy * ow : &at;
            const int step = id ? 1 : 0; /* without idx, *ir is a scratch */
            const int inner = oy >= ylo && oy < yhi;
            const int edge = !inner && edge_rows && !id && k == 3 && iw <= KDC__POOL_EDGE_W &&
                             xhi > xlo;
            const int a = inner || edge ? xlo : ow, b = inner || edge ? xhi : ow;
            for (int ox = 0; ox < a; ox++)
                yr[ox] = kdc__max_window(x, ih, iw, k, iy0, ox * stride - pad, &ir[ox * step]);
            if (edge)
                kdc__maxpool_edge_row(row3, x, ih, iw, iy0, stride, a * stride - pad, yr + a,
                                      b - a, rows);
            else if (b > a) {
                const int ix0 = a * stride - pad;
                const float *p = x + (size_t)iy0 * iw + ix0;
                if (id)
                    row3_idx(p, iw, stride, yr + a, ir + a, iy0 * iw + ix0, b - a);
                else
                    row3(p, iw, stride, yr + a, b - a);
            }
            for (int ox = b > a ? b : a; ox < ow; ox++)
                yr[ox] = kdc__max_window(x, ih, iw, k, iy0, ox * stride - pad, &ir[ox * step]);
        }
    }
}

void kdc__maxpool_ref(const float *in, int ih, int iw, float *out, int oh, int ow, int k,
                      int stride, int pad, int c0, int c1)
{
    kdc__maxpool_rows(kdc__f32_maxpool3_row_scalar, kdc__f32_maxpool3_row_idx_scalar, in, ih, iw,
                      out, NULL, oh, ow, k, stride, pad, c0, c1, 0);
}

/* pk, or the scalar table where pk's row kernels do not apply: other
 * strides than 1 and 2, or no table (a model not packed for kernels) */
static const kdc__pool_kernels *kdc__pool_rows_for(const kdc__pool_kernels *pk, int stride);

void kdc__maxpool(const kdc__pool_kernels *pk, const float *in, int ih, int iw, float *out, int oh,
                  int ow, int k, int stride, int pad, int c0, int c1)
{
    pk = kdc__pool_rows_for(pk, stride);
    kdc__maxpool_rows(pk->maxpool3_row, pk->maxpool3_row_idx, in, ih, iw, out, NULL, oh, ow, k,
                      stride, pad, c0, c1, 1);
}

void kdc__maxpool_idx(const kdc__pool_kernels *pk, const float *in, int ih, int iw, float *out,
                      int32_t *idx, int oh, int ow, int k, int stride, int pad, int c0, int c1)
{
    pk = kdc__pool_rows_for(pk, stride);
    kdc__maxpool_rows(pk->maxpool3_row, pk->maxpool3_row_idx, in, ih, iw, out, idx, oh, ow, k,
                      stride, pad, c0, c1, 0);
}

void kdc__gap_ref(const float *in, size_t hw, float *out, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *x = in + (size_t)c * hw;
        float s = 0.0f;
        for (size_t i = 0; i < hw; i++)
            s += x[i];
        out[c] = s / (float)hw;
    }
}

/* Max pooling that also records, per output, the index (y * iw + x) of the
 * input element that won, for the backward pass. Same scan order and tie
 * rule (first maximum; NaN wins) as the forward above and as PyTorch. */
void kdc__maxpool_idx_ref(const float *in, int ih, int iw, float *out, int32_t *idx, int oh,
                          int ow, int k, int stride, int pad, int c0, int c1)
{
    kdc__maxpool_rows(kdc__f32_maxpool3_row_scalar, kdc__f32_maxpool3_row_idx_scalar, in, ih, iw,
                      out, idx, oh, ow, k, stride, pad, c0, c1, 0);
}

/* dx[idx] += dy, per channel plane (overlapping windows accumulate). */
void kdc__maxpool_backward_ref(const float *dy, const int32_t *idx, size_t ohw, float *dx,
                               size_t ihw, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *g = dy + (size_t)c * ohw;
        const int32_t *id = idx + (size_t)c * ohw;
        float *o = dx + (size_t)c * ihw;
        for (size_t i = 0; i < ohw; i++)
            if (id[i] >= 0)
                o[id[i]] += g[i];
    }
}

/* dx += dy / hw over each plane. */
void kdc__gap_backward_ref(const float *dy, float *dx, size_t hw, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float g = dy[c] / (float)hw;
        float *o = dx + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++)
            o[i] += g;
    }
}

/* ------------------------------------------------------------------ */
/* The MAXPOOL and GAP ops (op.h)                                      */

static kdc_status kdc__maxpool_shape(const kdc__node *nd, const int *x, const int *x2, int h,
                                     int w, int *y)
{
    y[1] = kdc__out_size(x[1], nd->p.pool.k, nd->p.pool.stride, nd->p.pool.pad);
    y[2] = kdc__out_size(x[2], nd->p.pool.k, nd->p.pool.stride, nd->p.pool.pad);
    return KDC_OK;
}

/* With the winners recorded when a->argmax is set. */
static void kdc__maxpool_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const kdc__node *nd = a->nd;
    const int C = a->out_chw[0];
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t out_img = (size_t)C * a->out_chw[1] * a->out_chw[2];
    if (a->argmax)
        kdc__maxpool_idx(a->m->pool, a->x + b * (size_t)C * ihw, a->in_chw[1], a->in_chw[2],
                         a->y + b * out_img, a->argmax + b * out_img, a->out_chw[1],
                         a->out_chw[2], nd->p.pool.k, nd->p.pool.stride, nd->p.pool.pad, c0, c1);
    else
        kdc__maxpool(a->m->pool, a->x + b * (size_t)C * ihw, a->in_chw[1], a->in_chw[2],
                     a->y + b * out_img, a->out_chw[1], a->out_chw[2], nd->p.pool.k,
                     nd->p.pool.stride, nd->p.pool.pad, c0, c1);
}

static void kdc__maxpool_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int Cout = a->out_chw[0];
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
    kdc__maxpool_backward_ref(a->dy + (size_t)b * Cout * ohw, a->argmax + (size_t)b * Cout * ohw,
                              ohw, a->dx + (size_t)b * a->in_chw[0] * ihw, ihw, c0, c1);
}

static void kdc__gap_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    kdc__gap_ref(a->x + b * (size_t)C * ihw, ihw, a->y + (size_t)b * C, c0, c1);
}

static void kdc__gap_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
    kdc__gap_backward_ref(a->dy + (size_t)b * a->out_chw[0] * ohw,
                          a->dx + (size_t)b * a->in_chw[0] * ihw, ihw, c0, c1);
}

/* Tangents: a max-pool takes its recorded winner's tangent (none in the
 * padding: 0), the average pool averages. */
static void kdc__maxpool_tangent(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
    for (int c = c0; c < c1; c++) {
        const float *t = a->x + ((size_t)b * C + c) * ihw;
        const int32_t *id = a->argmax + ((size_t)b * C + c) * ohw;
        float *y = a->y + ((size_t)b * C + c) * ohw;
        for (size_t i = 0; i < ohw; i++)
            y[i] = id[i] >= 0 ? t[id[i]] : 0.0f;
    }
}

const kdc__op_def kdc__op_maxpool = {
    .name = "maxpool",
    .record = KDC__RECORD_ARGMAX,
    .shape = kdc__maxpool_shape,
    .forward = kdc__maxpool_forward,
    .backward = kdc__maxpool_backward,
    .tangent = kdc__maxpool_tangent,
};

const kdc__op_def kdc__op_gap = {
    .name = "gap",
    .shape = kdc__shape_one,
    .forward = kdc__gap_forward,
    .backward = kdc__gap_backward,
    .tangent = kdc__gap_forward,
};

/* ------------------------------------------------------------------ */
/* Table (lib/kernels/kernels.h)                                       */

static const kdc__pool_kernels kdc__pool_scalar = {KDC__ISA_SCALAR, "f32-maxpool3-scalar",
                                                   kdc__f32_maxpool3_row_scalar,
                                                   kdc__f32_maxpool3_row_idx_scalar};
#if defined(__x86_64__)
static const kdc__pool_kernels kdc__pool_avx2 = {KDC__ISA_AVX2, "f32-maxpool3-avx2",
                                                 kdc__f32_maxpool3_row_avx2,
                                                 kdc__f32_maxpool3_row_idx_avx2};
/* the recording rows: AVX2's (ResNet's one max-pool; not worth a port) */
static const kdc__pool_kernels kdc__pool_avx512 = {KDC__ISA_AVX512, "f32-maxpool3-avx512",
                                                   kdc__f32_maxpool3_row_avx512,
                                                   kdc__f32_maxpool3_row_idx_avx2};
#endif

static const kdc__pool_kernels *kdc__pool_rows_for(const kdc__pool_kernels *pk, int stride)
{
    return pk && (stride == 1 || stride == 2) ? pk : &kdc__pool_scalar;
}

const kdc__pool_kernels *kdc__pool_kernels_get(kdc__isa isa)
{
    if (!kdc__isa_supported(isa))
        return NULL;
    switch (isa) {
    case KDC__ISA_SCALAR:
    case KDC__ISA_NEON: /* no NEON version: the scalar kernel */
        return &kdc__pool_scalar;
    case KDC__ISA_AVX2:
#if defined(__x86_64__)
        return &kdc__pool_avx2;
#else
        return NULL;
#endif
    case KDC__ISA_AVX512:
#if defined(__x86_64__)
        return &kdc__pool_avx512;
#else
        return NULL;
#endif
    }
    return NULL;
}
