/* dwconv_avx2.c - depthwise 3x3 convolution of one channel plane, forward
 * and backward-data, stride 1 or 2, zero padding 0 or 1, AVX2 + FMA.
 *
 * Eight outputs (eight lanes of one ymm) per step along a row. Each lane
 * computes the chain of dwconv.c: acc = bias (backward: the old dx), then
 * one FMA per tap in (ky, kx) order; rows outside the image are skipped,
 * columns outside it are zeros: the forward reads the blocks that touch a
 * row's ends through masked loads (the zeros of the masked-off lanes) and
 * the others with plain loads, straight from the plane; the backward reads
 * padded row copies (kdc__dw_rows, lib/kernels/kernels.h: each row read is
 * copied once per strip of up to 256 outputs). So a result does not depend
 * on where its block falls, and this file agrees to the bit with
 * dwconv_neon.c. The last block of a row is computed in full and stored
 * through a mask. Stride 1 works on two rows of outputs (backward: of dx)
 * at a time, which read four rows between them, and two chains overlap.
 * The forward applies the fused group's epilogue (kdc__ep8_avx2) to each
 * block before its one store.
 *
 * Stride 2: the forward reads 16 inputs per 8 outputs and splits them into
 * even and odd columns. The backward is written as a gather over dx, so
 * that each dx element is one chain too: dx column c receives dy column
 * (c + pad - kx) / 2 through tap kx when c + pad - kx is even. For a pair of
 * dx columns (2v, 2v + 1) that is, with pad 0: 2v from dy[v] (kx 0) and
 * dy[v - 1] (kx 2), 2v + 1 from dy[v] (kx 1); with pad 1: 2v from dy[v]
 * (kx 1), 2v + 1 from dy[v + 1] (kx 0) and dy[v] (kx 2). Rows likewise. So
 * 8 pairs come from two plain loads of dy per row, and the 16 dx values are
 * split into even and odd columns on the way in and joined on the way out.
 *
 * The eight-channel kernels for small planes are in dwconv_c8_avx2.c.
 *
 * Compiled with -mavx2 -mfma (Makefile), chosen at run time (lib/cpu.c). */
#if defined(__x86_64__)

#include "kernels.h"
#include "simd_avx2.h"

/* ------------------------------------------------------------------ */
/* Forward                                                             */

/* Input columns [c, c + 8) of a row of width iw, zero outside [0, iw):
 * a plain load for a block inside the row (edge 0, a constant at every
 * call), else a masked one (c >= -1 here; masked-off lanes are not read). */
static inline __attribute__((always_inline)) __m256 kdc__dw_load8(const float *row, int c, int iw,
                                                                   int edge)
{
    if (!edge)
        return _mm256_loadu_ps(row + c);
    const __m256i col =
        _mm256_add_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(col, _mm256_set1_epi32(-1)),
                                        _mm256_cmpgt_epi32(_mm256_set1_epi32(iw), col));
    return _mm256_maskload_ps(row + c, in);
}

/* One row's three taps for 8 stride-1 outputs whose first tap (kx = 0)
 * is input column c. */
static inline __attribute__((always_inline)) __m256
kdc__dw_row_s1(const float *row, int c, int iw, const __m256 *w, __m256 acc, int edge)
{
    acc = _mm256_fmadd_ps(w[0], kdc__dw_load8(row, c, iw, edge), acc);
    acc = _mm256_fmadd_ps(w[1], kdc__dw_load8(row, c + 1, iw, edge), acc);
    return _mm256_fmadd_ps(w[2], kdc__dw_load8(row, c + 2, iw, edge), acc);
}

/* Stride 2: reads columns c .. c + 16. */
static inline __attribute__((always_inline)) __m256
kdc__dw_row_s2(const float *row, int c, int iw, const __m256 *w, __m256 acc, int edge)
{
    __m256 ev, od;
    kdc__unzip8(kdc__dw_load8(row, c, iw, edge), kdc__dw_load8(row, c + 8, iw, edge), &ev, &od);
    const float next = !edge || (c + 16 >= 0 && c + 16 < iw) ? row[c + 16] : 0.0f;
    const __m256 ev2 = kdc__even_next8(ev, next); /* columns c + 2, c + 4, ..., c + 16 */
    acc = _mm256_fmadd_ps(w[0], ev, acc);
    acc = _mm256_fmadd_ps(w[1], od, acc);
    return _mm256_fmadd_ps(w[2], ev2, acc);
}

/* Stride 1, outputs [j, j + 8) of two rows from their four input rows r
 * (those with ok), first tap at input column cx: each output's chain as
 * in the one-row case. */
static inline __attribute__((always_inline)) void
kdc__dw_pair8(const float *const r[4], const int ok[4], int cx, int iw, const __m256 *wv,
              __m256 *a0, __m256 *a1, int edge)
{
    if (ok[0])
        *a0 = kdc__dw_row_s1(r[0], cx, iw, wv, *a0, edge);
    if (ok[1]) {
        *a0 = kdc__dw_row_s1(r[1], cx, iw, wv + 3, *a0, edge);
        *a1 = kdc__dw_row_s1(r[1], cx, iw, wv, *a1, edge);
    }
    if (ok[2]) {
        *a0 = kdc__dw_row_s1(r[2], cx, iw, wv + 6, *a0, edge);
        *a1 = kdc__dw_row_s1(r[2], cx, iw, wv + 3, *a1, edge);
    }
    if (ok[3])
        *a1 = kdc__dw_row_s1(r[3], cx, iw, wv + 6, *a1, edge);
}

/* One row, outputs [j, j + 8), first tap at input column cx. */
static inline __attribute__((always_inline)) __m256
kdc__dw_one8(const float *const r[3], const int ok[3], int cx, int iw, int stride,
             const __m256 *wv, __m256 a, int edge)
{
    for (int ky = 0; ky < 3; ky++)
        if (ok[ky])
            a = stride == 1 ? kdc__dw_row_s1(r[ky], cx, iw, wv + 3 * ky, a, edge)
                            : kdc__dw_row_s2(r[ky], cx, iw, wv + 3 * ky, a, edge);
    return a;
}

/* Outputs [j, j + 8) of a row (the first n = ow - j of them, all when
 * n >= 8) through the epilogue, if any, to yr + j; rr: the residual row. */
typedef struct kdc__dw_out {
    const kdc__gemm_epilogue *ep;
    kdc__ep_row8 k; /* the plane's channel's constants */
} kdc__dw_out;

static inline void kdc__dw_store8(const kdc__dw_out *o, float *yr, const float *rr, int j, int n,
                                  __m256 v)
{
    if (n >= 8) {
        if (o->ep)
            v = kdc__ep8_avx2(o->ep, &o->k, rr != NULL,
                              rr ? _mm256_loadu_ps(rr + j) : _mm256_setzero_ps(), v);
        _mm256_storeu_ps(yr + j, v);
        return;
    }
    const __m256i m = kdc__lanes8(n);
    if (o->ep)
        v = kdc__ep8_avx2(o->ep, &o->k, rr != NULL,
                          rr ? _mm256_maskload_ps(rr + j, m) : _mm256_setzero_ps(), v);
    _mm256_maskstore_ps(yr + j, m, v);
}

void kdc__f32_dw3x3_avx2(const float *x, int ih, int iw, const float *w, float bias, float *y,
                         int oh, int ow, int stride, int pad, const kdc__gemm_epilogue *ep,
                         int c, const float *res)
{
    __m256 wv[9];
    for (int t = 0; t < 9; t++)
        wv[t] = _mm256_set1_ps(w[t]);
    const __m256 vb = _mm256_set1_ps(bias);
    kdc__dw_out o = {.ep = ep};
    if (ep)
        o.k = kdc__ep_row8_init(ep, c);
    int oy = 0;
    /* stride 1: two output rows at a time, from four input rows; each
     * output's chain unchanged */
    for (; stride == 1 && oy + 2 <= oh; oy += 2) {
        const float *r[4];
        int ok[4];
        for (int k = 0; k < 4; k++) {
            const int iy = oy + k - pad;
            ok[k] = iy >= 0 && iy < ih;
            r[k] = ok[k] ? x + (size_t)iy * iw : x;
        }
        float *y0 = y + (size_t)oy * ow, *y1 = y0 + ow;
        const float *r0 = res ? res + (size_t)oy * ow : NULL, *r1 = res ? r0 + ow : NULL;
        for (int j = 0; j < ow; j += 8) {
            const int cx = j - pad;
            __m256 a0 = vb, a1 = vb;
            if (cx >= 0 && cx + 10 <= iw)
                kdc__dw_pair8(r, ok, cx, iw, wv, &a0, &a1, 0);
            else
                kdc__dw_pair8(r, ok, cx, iw, wv, &a0, &a1, 1);
            kdc__dw_store8(&o, y0, r0, j, ow - j, a0);
            kdc__dw_store8(&o, y1, r1, j, ow - j, a1);
        }
    }
    for (; oy < oh; oy++) {
        const float *r[3];
        int ok[3];
        for (int ky = 0; ky < 3; ky++) {
            const int iy = oy * stride + ky - pad;
            ok[ky] = iy >= 0 && iy < ih;
            r[ky] = ok[ky] ? x + (size_t)iy * iw : x;
        }
        float *yr = y + (size_t)oy * ow;
        const float *rr = res ? res + (size_t)oy * ow : NULL;
        /* the block reads input columns cx .. cx + 7 * stride + 2 */
        const int span = 7 * stride + 3;
        for (int j = 0; j < ow; j += 8) {
            const int cx = j * stride - pad;
            const __m256 a = cx >= 0 && cx + span <= iw
                                 ? kdc__dw_one8(r, ok, cx, iw, stride, wv, vb, 0)
                                 : kdc__dw_one8(r, ok, cx, iw, stride, wv, vb, 1);
            kdc__dw_store8(&o, yr, rr, j, ow - j, a);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Backward-data                                                       */

/* Stride 1: dx[j] gets w[ky][kx] * dy[j + pad - kx] of each row, in (ky,
 * kx) order; q is dy column j + pad - 2, so tap kx reads q + 2 - kx. */
static inline __m256 kdc__dw_brow_s1(const float *q, const __m256 *w, __m256 acc)
{
    acc = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(q + 2), acc);
    acc = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(q + 1), acc);
    return _mm256_fmadd_ps(w[2], _mm256_loadu_ps(q), acc);
}

static inline __m256 kdc__dw_bwd8_s1(const float *const r[3], const int ok[3], int c0,
                                     const __m256 w[9], __m256 acc)
{
    if (ok[0])
        acc = kdc__dw_brow_s1(r[0] + c0, w, acc);
    if (ok[1])
        acc = kdc__dw_brow_s1(r[1] + c0, w + 3, acc);
    if (ok[2])
        acc = kdc__dw_brow_s1(r[2] + c0, w + 6, acc);
    return acc;
}

/* Stride 2, 8 pairs v of dx columns (2v, 2v + 1), split into their even
 * and odd columns; q is dy[v - 1 + pad] of one row. The column with two
 * taps (even for pad 0, odd for pad 1) gets kx = 0 from q[1], then kx = 2
 * from q[0]; the other gets kx = 1 from q[1 - pad]. */
static inline void kdc__dw_brow_s2(const float *q, int pad, const __m256 *w, __m256 *two,
                                   __m256 *one)
{
    const __m256 a = _mm256_loadu_ps(q + 1), b = _mm256_loadu_ps(q);
    *two = _mm256_fmadd_ps(w[0], a, *two);
    *one = _mm256_fmadd_ps(w[1], pad ? b : a, *one);
    *two = _mm256_fmadd_ps(w[2], b, *two);
}

static inline void kdc__dw_bwd8_s2(const float *const r[3], const int ok[3], int c0, int pad,
                                   const __m256 w[9], __m256 *ev, __m256 *od)
{
    __m256 two = pad ? *od : *ev, one = pad ? *ev : *od;
    if (ok[0])
        kdc__dw_brow_s2(r[0] + c0, pad, w, &two, &one);
    if (ok[1])
        kdc__dw_brow_s2(r[1] + c0, pad, w + 3, &two, &one);
    if (ok[2])
        kdc__dw_brow_s2(r[2] + c0, pad, w + 6, &two, &one);
    *ev = pad ? one : two;
    *od = pad ? two : one;
}

static void kdc__dw_bwd_s1(const float *dy, int oh, int ow, const __m256 w[9], float *dx, int ih,
                           int iw, int pad)
{
    kdc__dw_rows rw;
    for (int j0 = 0; j0 < iw; j0 += KDC__DW_STRIP) {
        const int n = iw - j0 < KDC__DW_STRIP ? iw - j0 : KDC__DW_STRIP;
        const int n8 = (n + 7) & ~7;
        /* dx column j reads dy columns j + pad - 2 .. j + pad */
        kdc__dw_rows_init(&rw, ow, j0 + pad - 2, n8 + 2);
        int iy = 0;
        /* two dx rows at a time from four dy rows R[k] = dy row iy + pad -
         * 2 + k: row iy takes ky = 0, 1, 2 from R[2], R[1], R[0], row
         * iy + 1 from R[3], R[2], R[1] */
        for (; iy + 2 <= ih; iy += 2) {
            const float *r[4] = {NULL, NULL, NULL, NULL};
            int ok[4];
            for (int k = 0; k < 4; k++) {
                const int oy = iy + pad - 2 + k;
                ok[k] = oy >= 0 && oy < oh;
                if (ok[k])
                    r[k] = kdc__dw_row(&rw, dy, ow, oy);
            }
            float *x0 = dx + (size_t)iy * iw + j0, *x1 = x0 + iw;
            for (int j = 0; j < n; j += 8) {
                const int full = j + 8 <= n;
                const __m256i m = kdc__lanes8(n - j);
                __m256 a0 = full ? _mm256_loadu_ps(x0 + j) : _mm256_maskload_ps(x0 + j, m);
                __m256 a1 = full ? _mm256_loadu_ps(x1 + j) : _mm256_maskload_ps(x1 + j, m);
                if (ok[2]) /* ky = 0 */
                    a0 = kdc__dw_brow_s1(r[2] + j, w, a0);
                if (ok[3])
                    a1 = kdc__dw_brow_s1(r[3] + j, w, a1);
                if (ok[1]) /* ky = 1 */
                    a0 = kdc__dw_brow_s1(r[1] + j, w + 3, a0);
                if (ok[2])
                    a1 = kdc__dw_brow_s1(r[2] + j, w + 3, a1);
                if (ok[0]) /* ky = 2 */
                    a0 = kdc__dw_brow_s1(r[0] + j, w + 6, a0);
                if (ok[1])
                    a1 = kdc__dw_brow_s1(r[1] + j, w + 6, a1);
                if (full) {
                    _mm256_storeu_ps(x0 + j, a0);
                    _mm256_storeu_ps(x1 + j, a1);
                } else {
                    _mm256_maskstore_ps(x0 + j, m, a0);
                    _mm256_maskstore_ps(x1 + j, m, a1);
                }
            }
        }
        for (; iy < ih; iy++) {
            const float *r[3] = {NULL, NULL, NULL};
            int ok[3];
            for (int ky = 0; ky < 3; ky++) {
                const int oy = iy + pad - ky;
                ok[ky] = oy >= 0 && oy < oh;
                if (ok[ky])
                    r[ky] = kdc__dw_row(&rw, dy, ow, oy);
            }
            float *xr = dx + (size_t)iy * iw + j0;
            for (int j = 0; j < n; j += 8) {
                if (j + 8 <= n) {
                    _mm256_storeu_ps(xr + j,
                                     kdc__dw_bwd8_s1(r, ok, j, w, _mm256_loadu_ps(xr + j)));
                } else {
                    const __m256i m = kdc__lanes8(n - j);
                    const __m256 v = _mm256_maskload_ps(xr + j, m);
                    _mm256_maskstore_ps(xr + j, m, kdc__dw_bwd8_s1(r, ok, j, w, v));
                }
            }
        }
    }
}

static void kdc__dw_bwd_s2(const float *dy, int oh, int ow, const __m256 w[9], float *dx, int ih,
                           int iw, int pad)
{
    const int np = (iw + 1) / 2; /* pairs of dx columns, the last maybe half */
    kdc__dw_rows rw;
    for (int v0 = 0; v0 < np; v0 += KDC__DW_STRIP) {
        const int n = np - v0 < KDC__DW_STRIP ? np - v0 : KDC__DW_STRIP;
        const int n8 = (n + 7) & ~7;
        /* pair v reads dy columns v - 1 + pad and v + pad */
        kdc__dw_rows_init(&rw, ow, v0 - 1 + pad, n8 + 2);
        for (int iy = 0; iy < ih; iy++) {
            const float *r[3] = {NULL, NULL, NULL};
            int ok[3];
            const int t = iy + pad;
            for (int ky = 0; ky < 3; ky++) {
                ok[ky] = t - ky >= 0 && (t - ky) % 2 == 0 && (t - ky) / 2 < oh;
                if (ok[ky])
                    r[ky] = kdc__dw_row(&rw, dy, ow, (t - ky) / 2);
            }
            float *xr = dx + (size_t)iy * iw + 2 * (size_t)v0;
            const int cols = iw - 2 * v0; /* dx columns from xr to the row's end */
            for (int j = 0; j < n; j += 8) {
                float *p = xr + 2 * j;
                const int left = cols - 2 * j;
                __m256 a, b, e, o;
                if (left >= 16) {
                    kdc__unzip8(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), &e, &o);
                    kdc__dw_bwd8_s2(r, ok, j, pad, w, &e, &o);
                    kdc__zip8(e, o, &a, &b);
                    _mm256_storeu_ps(p, a);
                    _mm256_storeu_ps(p + 8, b);
                } else {
                    /* the row's last 1..15 columns (p + 8 is formed only
                     * when inside the row) */
                    const __m256i ma = kdc__lanes8(left), mb = kdc__lanes8(left - 8);
                    kdc__unzip8(_mm256_maskload_ps(p, ma),
                               left > 8 ? _mm256_maskload_ps(p + 8, mb) : _mm256_setzero_ps(),
                               &e, &o);
                    kdc__dw_bwd8_s2(r, ok, j, pad, w, &e, &o);
                    kdc__zip8(e, o, &a, &b);
                    _mm256_maskstore_ps(p, ma, a);
                    if (left > 8)
                        _mm256_maskstore_ps(p + 8, mb, b);
                }
            }
        }
    }
}

void kdc__f32_dw3x3_backward_avx2(const float *dy, int oh, int ow, const float *w, float *dx,
                                  int ih, int iw, int stride, int pad)
{
    __m256 wv[9];
    for (int t = 0; t < 9; t++)
        wv[t] = _mm256_set1_ps(w[t]);
    if (stride == 1)
        kdc__dw_bwd_s1(dy, oh, ow, wv, dx, ih, iw, pad);
    else
        kdc__dw_bwd_s2(dy, oh, ow, wv, dx, ih, iw, pad);
}

#endif /* __x86_64__ */
