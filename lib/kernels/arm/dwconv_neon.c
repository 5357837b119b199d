/* dwconv_neon.c - depthwise 3x3 convolution of one channel plane, forward
 * and backward-data, stride 1 or 2, zero padding 0 or 1, aarch64 NEON.
 *
 * The same blocking and the same operations per output as dwconv_avx2.c
 * (read that file's comment): 8 outputs per step, here as two q registers;
 * one FMA (vfmaq_f32) per tap in (ky, kx) order; every load from a
 * zero-padded row copy (kdc__dw_rows, lib/kernels.h). So the NEON and AVX2
 * kernels agree to the bit. Stride 2 splits even and odd columns with
 * vld2q_f32 and joins them with vst2q_f32. NEON has no masked loads: the
 * last block of a row goes through a stack copy. NEON is part of the
 * aarch64 base architecture: no extra compiler flags. */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "kernels.h"

typedef struct kdc__f8 {
    float32x4_t lo, hi;
} kdc__f8;

static inline kdc__f8 kdc__ld8(const float *p)
{
    kdc__f8 v = {vld1q_f32(p), vld1q_f32(p + 4)};
    return v;
}

static inline void kdc__st8(float *p, kdc__f8 v)
{
    vst1q_f32(p, v.lo);
    vst1q_f32(p + 4, v.hi);
}

/* acc + w * x, one rounding per lane */
static inline kdc__f8 kdc__fma8(kdc__f8 acc, float32x4_t w, kdc__f8 x)
{
    kdc__f8 r = {vfmaq_f32(acc.lo, w, x.lo), vfmaq_f32(acc.hi, w, x.hi)};
    return r;
}

/* One row's three taps for 8 outputs whose first tap (kx = 0) is at p. */
static inline kdc__f8 kdc__dw_row_s1(const float *p, const float32x4_t *w, kdc__f8 acc)
{
    acc = kdc__fma8(acc, w[0], kdc__ld8(p));
    acc = kdc__fma8(acc, w[1], kdc__ld8(p + 1));
    return kdc__fma8(acc, w[2], kdc__ld8(p + 2));
}

/* Stride 2: reads p[0..16]. */
static inline kdc__f8 kdc__dw_row_s2(const float *p, const float32x4_t *w, kdc__f8 acc)
{
    const float32x4x2_t a = vld2q_f32(p), b = vld2q_f32(p + 8);
    const kdc__f8 ev = {a.val[0], b.val[0]}, od = {a.val[1], b.val[1]};
    /* p[2], p[4], ..., p[16]: the even columns moved down one lane */
    const kdc__f8 ev2 = {vextq_f32(a.val[0], b.val[0], 1),
                         vextq_f32(b.val[0], vdupq_n_f32(p[16]), 1)};
    acc = kdc__fma8(acc, w[0], ev);
    acc = kdc__fma8(acc, w[1], od);
    return kdc__fma8(acc, w[2], ev2);
}

static inline kdc__f8 kdc__dw_fwd8(const float *const r[3], const int ok[3], int c0, int stride,
                                   const float32x4_t w[9], kdc__f8 acc)
{
    if (stride == 1) {
        if (ok[0])
            acc = kdc__dw_row_s1(r[0] + c0, w, acc);
        if (ok[1])
            acc = kdc__dw_row_s1(r[1] + c0, w + 3, acc);
        if (ok[2])
            acc = kdc__dw_row_s1(r[2] + c0, w + 6, acc);
    } else {
        if (ok[0])
            acc = kdc__dw_row_s2(r[0] + c0, w, acc);
        if (ok[1])
            acc = kdc__dw_row_s2(r[1] + c0, w + 3, acc);
        if (ok[2])
            acc = kdc__dw_row_s2(r[2] + c0, w + 6, acc);
    }
    return acc;
}

void kdc__f32_dw3x3_neon(const float *x, int ih, int iw, const float *w, float bias, float *y,
                         int oh, int ow, int stride, int pad, const kdc__gemm_epilogue *ep,
                         int c, const float *res)
{
    float32x4_t wv[9];
    for (int t = 0; t < 9; t++)
        wv[t] = vdupq_n_f32(w[t]);
    const kdc__f8 vb = {vdupq_n_f32(bias), vdupq_n_f32(bias)};
    kdc__dw_rows rw;

    for (int ox0 = 0; ox0 < ow; ox0 += KDC__DW_STRIP) {
        const int n = ow - ox0 < KDC__DW_STRIP ? ow - ox0 : KDC__DW_STRIP;
        const int n8 = (n + 7) & ~7;
        kdc__dw_rows_init(&rw, iw, ox0 * stride - pad, n8 * stride + 2);
        int oy = 0;
        /* stride 1: two output rows at a time (see dwconv_avx2.c) */
        for (; stride == 1 && oy + 2 <= oh; oy += 2) {
            const float *r[4] = {NULL, NULL, NULL, NULL};
            int ok[4];
            for (int k = 0; k < 4; k++) {
                const int iy = oy + k - pad;
                ok[k] = iy >= 0 && iy < ih;
                if (ok[k])
                    r[k] = kdc__dw_row(&rw, x, iw, iy);
            }
            float *y0 = y + (size_t)oy * ow + ox0, *y1 = y0 + ow;
            for (int j = 0; j < n; j += 8) {
                kdc__f8 a0 = vb, a1 = vb;
                if (ok[0])
                    a0 = kdc__dw_row_s1(r[0] + j, wv, a0);
                if (ok[1]) {
                    a0 = kdc__dw_row_s1(r[1] + j, wv + 3, a0);
                    a1 = kdc__dw_row_s1(r[1] + j, wv, a1);
                }
                if (ok[2]) {
                    a0 = kdc__dw_row_s1(r[2] + j, wv + 6, a0);
                    a1 = kdc__dw_row_s1(r[2] + j, wv + 3, a1);
                }
                if (ok[3])
                    a1 = kdc__dw_row_s1(r[3] + j, wv + 6, a1);
                if (j + 8 <= n) {
                    kdc__st8(y0 + j, a0);
                    kdc__st8(y1 + j, a1);
                } else {
                    float out[16];
                    kdc__st8(out, a0);
                    kdc__st8(out + 8, a1);
                    memcpy(y0 + j, out, (size_t)(n - j) * sizeof *out);
                    memcpy(y1 + j, out + 8, (size_t)(n - j) * sizeof *out);
                }
            }
        }
        for (; oy < oh; oy++) {
            const float *r[3] = {NULL, NULL, NULL};
            int ok[3];
            for (int ky = 0; ky < 3; ky++) {
                const int iy = oy * stride + ky - pad;
                ok[ky] = iy >= 0 && iy < ih;
                if (ok[ky])
                    r[ky] = kdc__dw_row(&rw, x, iw, iy);
            }
            float *yr = y + (size_t)oy * ow + ox0;
            for (int j = 0; j < n; j += 8) {
                const kdc__f8 v = kdc__dw_fwd8(r, ok, j * stride, stride, wv, vb);
                if (j + 8 <= n) {
                    kdc__st8(yr + j, v);
                } else {
                    float out[8];
                    kdc__st8(out, v);
                    memcpy(yr + j, out, (size_t)(n - j) * sizeof *out);
                }
            }
        }
    }
    if (ep)
        kdc__gemm_epilogue_scalar(ep, y, (size_t)oh * ow, c, 1, res, (size_t)oh * ow, oh * ow);
}

/* ------------------------------------------------------------------ */
/* Backward-data (the gather form of dwconv_avx2.c)                    */

static inline kdc__f8 kdc__dw_brow_s1(const float *q, const float32x4_t *w, kdc__f8 acc)
{
    acc = kdc__fma8(acc, w[0], kdc__ld8(q + 2));
    acc = kdc__fma8(acc, w[1], kdc__ld8(q + 1));
    return kdc__fma8(acc, w[2], kdc__ld8(q));
}

static inline kdc__f8 kdc__dw_bwd8_s1(const float *const r[3], const int ok[3], int c0,
                                      const float32x4_t w[9], kdc__f8 acc)
{
    if (ok[0])
        acc = kdc__dw_brow_s1(r[0] + c0, w, acc);
    if (ok[1])
        acc = kdc__dw_brow_s1(r[1] + c0, w + 3, acc);
    if (ok[2])
        acc = kdc__dw_brow_s1(r[2] + c0, w + 6, acc);
    return acc;
}

/* Stride 2, 8 pairs of dx columns split into even and odd columns; q is
 * dy[v - 1 + pad] of one row (see dwconv_avx2.c). */
static inline void kdc__dw_brow_s2(const float *q, int pad, const float32x4_t *w, kdc__f8 *two,
                                   kdc__f8 *one)
{
    const kdc__f8 a = kdc__ld8(q + 1), b = kdc__ld8(q);
    *two = kdc__fma8(*two, w[0], a);
    *one = kdc__fma8(*one, w[1], pad ? b : a);
    *two = kdc__fma8(*two, w[2], b);
}

static inline void kdc__dw_bwd8_s2(const float *const r[3], const int ok[3], int c0, int pad,
                                   const float32x4_t w[9], kdc__f8 *ev, kdc__f8 *od)
{
    kdc__f8 two = pad ? *od : *ev, one = pad ? *ev : *od;
    if (ok[0])
        kdc__dw_brow_s2(r[0] + c0, pad, w, &two, &one);
    if (ok[1])
        kdc__dw_brow_s2(r[1] + c0, pad, w + 3, &two, &one);
    if (ok[2])
        kdc__dw_brow_s2(r[2] + c0, pad, w + 6, &two, &one);
    *ev = pad ? one : two;
    *od = pad ? two : one;
}

/* 16 floats <-> their even and odd columns */
static inline void kdc__unzip16(const float *p, kdc__f8 *ev, kdc__f8 *od)
{
    const float32x4x2_t a = vld2q_f32(p), b = vld2q_f32(p + 8);
    ev->lo = a.val[0];
    ev->hi = b.val[0];
    od->lo = a.val[1];
    od->hi = b.val[1];
}

static inline void kdc__zip16(float *p, kdc__f8 ev, kdc__f8 od)
{
    const float32x4x2_t a = {{ev.lo, od.lo}}, b = {{ev.hi, od.hi}};
    vst2q_f32(p, a);
    vst2q_f32(p + 8, b);
}

static void kdc__dw_bwd_s1(const float *dy, int oh, int ow, const float32x4_t w[9], float *dx,
                           int ih, int iw, int pad)
{
    kdc__dw_rows rw;
    for (int j0 = 0; j0 < iw; j0 += KDC__DW_STRIP) {
        const int n = iw - j0 < KDC__DW_STRIP ? iw - j0 : KDC__DW_STRIP;
        const int n8 = (n + 7) & ~7;
        kdc__dw_rows_init(&rw, ow, j0 + pad - 2, n8 + 2);
        int iy = 0;
        /* two dx rows at a time from four dy rows (see dwconv_avx2.c) */
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
                const int m = n - j < 8 ? n - j : 8;
                float acc[16];
                float *p0 = x0 + j, *p1 = x1 + j;
                if (m < 8) { /* the row's end, through a stack copy */
                    memset(acc, 0, sizeof acc);
                    memcpy(acc, p0, (size_t)m * sizeof *acc);
                    memcpy(acc + 8, p1, (size_t)m * sizeof *acc);
                    p0 = acc;
                    p1 = acc + 8;
                }
                kdc__f8 a0 = kdc__ld8(p0), a1 = kdc__ld8(p1);
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
                kdc__st8(p0, a0);
                kdc__st8(p1, a1);
                if (m < 8) {
                    memcpy(x0 + j, acc, (size_t)m * sizeof *acc);
                    memcpy(x1 + j, acc + 8, (size_t)m * sizeof *acc);
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
                    kdc__st8(xr + j, kdc__dw_bwd8_s1(r, ok, j, w, kdc__ld8(xr + j)));
                } else {
                    float acc[8] = {0};
                    memcpy(acc, xr + j, (size_t)(n - j) * sizeof *acc);
                    kdc__st8(acc, kdc__dw_bwd8_s1(r, ok, j, w, kdc__ld8(acc)));
                    memcpy(xr + j, acc, (size_t)(n - j) * sizeof *acc);
                }
            }
        }
    }
}

static void kdc__dw_bwd_s2(const float *dy, int oh, int ow, const float32x4_t w[9], float *dx,
                           int ih, int iw, int pad)
{
    const int np = (iw + 1) / 2;
    kdc__dw_rows rw;
    for (int v0 = 0; v0 < np; v0 += KDC__DW_STRIP) {
        const int n = np - v0 < KDC__DW_STRIP ? np - v0 : KDC__DW_STRIP;
        const int n8 = (n + 7) & ~7;
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
            const int cols = iw - 2 * v0;
            for (int j = 0; j < n; j += 8) {
                float *p = xr + 2 * j;
                const int left = cols - 2 * j;
                kdc__f8 e, o;
                if (left >= 16) {
                    kdc__unzip16(p, &e, &o);
                    kdc__dw_bwd8_s2(r, ok, j, pad, w, &e, &o);
                    kdc__zip16(p, e, o);
                } else {
                    float acc[16] = {0};
                    memcpy(acc, p, (size_t)left * sizeof *acc);
                    kdc__unzip16(acc, &e, &o);
                    kdc__dw_bwd8_s2(r, ok, j, pad, w, &e, &o);
                    kdc__zip16(acc, e, o);
                    memcpy(p, acc, (size_t)left * sizeof *acc);
                }
            }
        }
    }
}

void kdc__f32_dw3x3_backward_neon(const float *dy, int oh, int ow, const float *w, float *dx,
                                  int ih, int iw, int stride, int pad)
{
    float32x4_t wv[9];
    for (int t = 0; t < 9; t++)
        wv[t] = vdupq_n_f32(w[t]);
    if (stride == 1)
        kdc__dw_bwd_s1(dy, oh, ow, wv, dx, ih, iw, pad);
    else
        kdc__dw_bwd_s2(dy, oh, ow, wv, dx, ih, iw, pad);
}

#endif /* __aarch64__ */
