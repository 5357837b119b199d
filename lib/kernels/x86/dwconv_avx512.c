/* dwconv_avx512.c - depthwise 3x3 convolution of one channel plane,
 * forward (stride 1 or 2) and backward-data (stride 1; stride 2 passed to
 * the AVX2 kernels), zero padding 0 or 1, AVX-512F: the AVX-512 table's
 * dw3x3, dw3x3_backward and dw3x3_backward_c8 (the last for stride 1 and
 * outputs wider than 7, else the AVX2 eight-channel kernel; lib/nn/dwconv.c).
 *
 * Sixteen outputs of a row (one zmm) per block. Each lane computes the
 * chain of dwconv.c and dwconv_avx2.c: acc = bias, then one FMA per tap in
 * (ky, kx) order, rows outside the image skipped, columns outside it read
 * as zeros. Every load goes through a lane mask (AVX-512's masked loads
 * neither fault nor slow down on the lanes they leave out), so a block at
 * a row's end or a row narrower than a vector needs no other path, and
 * the result does not depend on where a block falls: the same bits as the
 * AVX2 and NEON kernels (tests/test_kernels.c: check_dw).
 *
 * R output rows at a time (7, then 3, at stride 1; 4, then 2, at stride
 * 2; then single rows) share the input rows they read: each input row's
 * three tap vectors feed up to three chains, and the R chains of a block
 * run side by side. Stride 2 reads 33 columns per 16 outputs and splits
 * them into even and odd columns (two permutes) and the even columns one
 * on (a third). The fused group's epilogue is applied to each block before
 * its one store, inlined once per epilogue shape so its parts are
 * constants in the loops.
 *
 * Compiled with -mavx512f (Makefile), chosen at run time (lib/cpu.c). */
#if defined(__x86_64__)

#include "kernels.h"
#include "simd_avx512.h"

/* The plane's constants: taps, bias, the epilogue's channel constants. */
typedef struct kdc__dw16 {
    __m512 wv[9], vb;
    __m512 bs, sc, sh, clamp; /* epilogue: bias, scale, shift, clamp */
    const float *x, *res;
    float *y;
    int ih, iw, oh, ow, pad;
} kdc__dw16;

/* The epilogue on 16 values, with the float operations of the scalar ops
 * (kdc__ep8f_avx2 in simd_avx2.h: add, multiply then add, add, clamp with
 * NaN kept). f: its parts (kdc__ep_flags), a constant where inlined. */
static inline __attribute__((always_inline)) __m512 kdc__dw16_ep(const kdc__dw16 *o, int f,
                                                                  __m512 rv, __m512 x)
{
    if (f & KDC__EPF_BIAS)
        x = _mm512_add_ps(x, o->bs);
    if (f & KDC__EPF_SCALE)
        x = _mm512_add_ps(_mm512_mul_ps(x, o->sc), o->sh);
    if (f & KDC__EPF_RES)
        x = _mm512_add_ps(x, rv);
    if (f & KDC__EPF_RELU) {
        const __m512 y = _mm512_min_ps(_mm512_max_ps(x, _mm512_setzero_ps()), o->clamp);
        x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
    }
    return x;
}

/* One input row's three taps for the block's 16 outputs, first tap at
 * column cx: t[kx] holds input column cx + kx + l (stride 1) or
 * cx + 2 l + kx (stride 2) in lane l, zero outside the row. */
static inline __attribute__((always_inline)) void
kdc__dw16_taps(const float *row, int cx, const __mmask16 m[3], int S, __m512 t[3])
{
    if (S == 1) {
        t[0] = _mm512_maskz_loadu_ps(m[0], row + cx);
        t[1] = _mm512_maskz_loadu_ps(m[1], row + cx + 1);
        t[2] = _mm512_maskz_loadu_ps(m[2], row + cx + 2);
    } else
        kdc__taps_s2_16(row, cx, m, t);
}

/* Output rows [oy, oy + R) (all inside the plane), stride S, epilogue
 * shape f: R chains per block over the (R - 1) S + 3 input rows they
 * read, each chain's taps in (ky, kx) order as in the one-row kernel. */
static inline __attribute__((always_inline)) void kdc__dw16_rows(const kdc__dw16 *o, int oy,
                                                                 const int R, const int S,
                                                                 const int f)
{
    enum { NT = 9 }; /* (R - 1) S + 3 <= 9 */
    const int nt = (R - 1) * S + 3, iw = o->iw, ow = o->ow;
    const float *r[NT];
    int ok[NT];
    _Pragma("GCC unroll 9") for (int t = 0; t < nt; t++) {
        const int iy = oy * S - o->pad + t;
        ok[t] = iy >= 0 && iy < o->ih;
        r[t] = o->x + (size_t)(ok[t] ? iy : 0) * iw;
    }
    /* the taps in registers: read from o, each FMA would load its tap
     * (measured 1.4x the time of a 14 x 14 plane) */
    __m512 wv[9];
    _Pragma("GCC unroll 9") for (int k = 0; k < 9; k++)
        wv[k] = o->wv[k];
    for (int j = 0; j < ow; j += 16) {
        const int cx = j * S - o->pad;
        __mmask16 m[3];
        if (S == 1)
            _Pragma("GCC unroll 3") for (int k = 0; k < 3; k++)
                m[k] = kdc__cols16(cx + k, iw);
        else
            kdc__masks_s2_16(cx, iw, m);
        __m512 acc[7];
        _Pragma("GCC unroll 7") for (int q = 0; q < R; q++)
            acc[q] = o->vb;
        _Pragma("GCC unroll 9") for (int t = 0; t < nt; t++) {
            if (!ok[t])
                continue;
            __m512 v[3];
            kdc__dw16_taps(r[t], cx, m, S, v);
            /* row t is tap row ky = t - q S of output row q */
            _Pragma("GCC unroll 7") for (int q = 0; q < R; q++) {
                const int ky = t - q * S;
                if (ky < 0 || ky > 2)
                    continue;
                _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
                    acc[q] = _mm512_fmadd_ps(wv[3 * ky + kx], v[kx], acc[q]);
            }
        }
        const __mmask16 out = kdc__lanes16(ow - j);
        _Pragma("GCC unroll 7") for (int q = 0; q < R; q++) {
            const size_t at = (size_t)(oy + q) * ow + j;
            const __m512 rv = f & KDC__EPF_RES ? _mm512_maskz_loadu_ps(out, o->res + at)
                                               : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(o->y + at, out, kdc__dw16_ep(o, f, rv, acc[q]));
        }
    }
}

/* The plane, stride S, epilogue shape f. */
static inline __attribute__((always_inline)) void kdc__dw16_plane(const kdc__dw16 *o, const int S,
                                                                  const int f)
{
    int oy = 0;
    if (S == 1) {
        for (; oy + 7 <= o->oh; oy += 7)
            kdc__dw16_rows(o, oy, 7, 1, f);
        for (; oy + 3 <= o->oh; oy += 3)
            kdc__dw16_rows(o, oy, 3, 1, f);
    } else {
        for (; oy + 4 <= o->oh; oy += 4)
            kdc__dw16_rows(o, oy, 4, 2, f);
        for (; oy + 2 <= o->oh; oy += 2)
            kdc__dw16_rows(o, oy, 2, 2, f);
    }
    for (; oy < o->oh; oy++)
        kdc__dw16_rows(o, oy, 1, S, f);
}

/* The plane at stride S (1 or 2), both inlined, for epilogue shape F. */
static inline __attribute__((always_inline)) void kdc__dw16_strides(const kdc__dw16 *o, int S,
                                                                    const int F)
{
    if (S == 1)
        kdc__dw16_plane(o, 1, F);
    else
        kdc__dw16_plane(o, 2, F);
}

/* The epilogue shapes of the fused groups, each inlined; the rarer ones
 * with their branches in the loop. */
static void kdc__dw16_run(const kdc__dw16 *o, int S, int f)
{
    switch (f) {
    case 0: kdc__dw16_strides(o, S, 0); break;
    case KDC__EPF_SCALE | KDC__EPF_RELU:
        kdc__dw16_strides(o, S, KDC__EPF_SCALE | KDC__EPF_RELU);
        break;
    case KDC__EPF_BIAS | KDC__EPF_SCALE | KDC__EPF_RELU:
        kdc__dw16_strides(o, S, KDC__EPF_BIAS | KDC__EPF_SCALE | KDC__EPF_RELU);
        break;
    case KDC__EPF_SCALE: kdc__dw16_strides(o, S, KDC__EPF_SCALE); break;
    default: kdc__dw16_strides(o, S, f);
    }
}

void kdc__f32_dw3x3_avx512(const float *x, int ih, int iw, const float *w, float bias, float *y,
                           int oh, int ow, int stride, int pad, const kdc__gemm_epilogue *ep,
                           int c, const float *res)
{
    /* fields set one by one: an initializer would clear the whole struct
     * first, a measured tenth of a 7x7 plane's time */
    kdc__dw16 o;
    o.x = x;
    o.res = res;
    o.y = y;
    o.ih = ih;
    o.iw = iw;
    o.oh = oh;
    o.ow = ow;
    o.pad = pad;
    for (int t = 0; t < 9; t++)
        o.wv[t] = _mm512_set1_ps(w[t]);
    o.vb = _mm512_set1_ps(bias);
    int f = 0;
    if (ep) {
        o.bs = _mm512_set1_ps(ep->bias ? ep->bias[c] : 0.0f);
        o.sc = _mm512_set1_ps(ep->scale ? ep->scale[c] : 1.0f);
        o.sh = _mm512_set1_ps(ep->scale ? ep->shift[c] : 0.0f);
        o.clamp = _mm512_set1_ps(ep->clamp);
        f = kdc__ep_flags(ep, res != NULL);
    }
    kdc__dw16_run(&o, stride, f);
}

/* ------------------------------------------------------------------ */
/* Backward-data                                                       */

/* Stride 1 (stride 2: the AVX2 kernels, below). dx element (iy, ix) is
 * one chain, as in dwconv_avx2.c and the eight-channel kernel: its old
 * value (or +0, accumulate 0), then per tap in (ky, kx) order
 * w * dy(iy + pad - ky, ix + pad - kx), rows outside dy skipped, columns
 * outside it read as zeros. Sixteen dx columns per block, R dx rows at a
 * time over the R + 2 dy rows they receive (dy rows in descending order
 * give each chain its ky in ascending order). With thru (kdc__dw_bthru),
 * each finished block goes on through the ReLU + BatchNorm before, as
 * kdc__bthru8 does in dwconv_c8_avx2.c: the same float operations, so the
 * same bits. */
typedef struct kdc__dw16b {
    __m512 wv[9], tscale;  /* taps; thru: the channel's scale  */
    const float *dy;
    float *dx;
    const uint64_t *tmask; /* thru: the channel's mask plane  */
    size_t twords;
    int oh, ow, ih, iw, pad, accumulate, guided;
} kdc__dw16b;

/* The finished block v of dx from element at of the plane: stored through
 * the lanes inside the row (out), on through the ReLU + BatchNorm first
 * when thru (a constant where inlined). */
static inline __attribute__((always_inline)) void
kdc__dw16b_store(const kdc__dw16b *o, size_t at, __mmask16 out, __m512 v, const int thru)
{
    if (thru) {
        const __m512 zero = _mm512_setzero_ps();
        __mmask16 pass = kdc__mask_bits16(o->tmask, o->twords, at);
        if (o->guided)
            pass &= _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
        const __m512 g = _mm512_add_ps(zero, _mm512_maskz_mov_ps(pass, v));
        v = _mm512_add_ps(zero, _mm512_mul_ps(g, o->tscale));
    }
    _mm512_mask_storeu_ps(o->dx + at, out, v);
}

/* Stride 1: dx rows [iy, iy + R), all inside the plane. */
static inline __attribute__((always_inline)) void kdc__dw16b_s1(const kdc__dw16b *o, int iy,
                                                                const int R, const int thru)
{
    enum { NT = 9 }; /* R + 2 <= 9 */
    const int nt = R + 2, iw = o->iw, ow = o->ow, p = o->pad;
    const float *r[NT];
    int ok[NT];
    _Pragma("GCC unroll 9") for (int t = 0; t < nt; t++) {
        const int u = iy + p - 2 + t; /* dy row */
        ok[t] = u >= 0 && u < o->oh;
        r[t] = o->dy + (size_t)(ok[t] ? u : 0) * ow;
    }
    __m512 wv[9]; /* in registers (see kdc__dw16_rows) */
    _Pragma("GCC unroll 9") for (int k = 0; k < 9; k++)
        wv[k] = o->wv[k];
    for (int j = 0; j < iw; j += 16) {
        __mmask16 m[3]; /* tap kx reads dy columns j + p - kx + l */
        _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
            m[kx] = kdc__cols16(j + p - kx, ow);
        const __mmask16 out = kdc__lanes16(iw - j);
        __m512 acc[7];
        _Pragma("GCC unroll 7") for (int q = 0; q < R; q++)
            acc[q] = o->accumulate ? _mm512_maskz_loadu_ps(out, o->dx + (size_t)(iy + q) * iw + j)
                                   : _mm512_setzero_ps();
        _Pragma("GCC unroll 9") for (int t = nt - 1; t >= 0; t--) {
            if (!ok[t])
                continue;
            __m512 v[3];
            _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
                v[kx] = _mm512_maskz_loadu_ps(m[kx], r[t] + j + p - kx);
            /* dy row t is tap row ky = q + 2 - t of dx row q */
            _Pragma("GCC unroll 7") for (int q = 0; q < R; q++) {
                const int ky = q + 2 - t;
                if (ky < 0 || ky > 2)
                    continue;
                _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
                    acc[q] = _mm512_fmadd_ps(wv[3 * ky + kx], v[kx], acc[q]);
            }
        }
        _Pragma("GCC unroll 7") for (int q = 0; q < R; q++)
            kdc__dw16b_store(o, (size_t)(iy + q) * iw + j, out, acc[q], thru);
    }
}

static inline __attribute__((always_inline)) void kdc__dw16b_plane(const kdc__dw16b *o,
                                                                   const int thru)
{
    int iy = 0;
    for (; iy + 7 <= o->ih; iy += 7)
        kdc__dw16b_s1(o, iy, 7, thru);
    for (; iy + 3 <= o->ih; iy += 3)
        kdc__dw16b_s1(o, iy, 3, thru);
    for (; iy < o->ih; iy++)
        kdc__dw16b_s1(o, iy, 1, thru);
}

/* One plane's backward, stride 1: dx (ih x iw) = (accumulate ? dx : +0)
 * + the transpose of the conv applied to dy, then through thru if not NULL
 * (channel l of it). */
static void kdc__dw16b_run(const float *dy, int oh, int ow, const float *w, float *dx, int ih,
                           int iw, int pad, int accumulate, const kdc__dw_bthru *thru, int l)
{
    kdc__dw16b o;
    for (int t = 0; t < 9; t++)
        o.wv[t] = _mm512_set1_ps(w[t]);
    o.dy = dy;
    o.dx = dx;
    o.oh = oh;
    o.ow = ow;
    o.ih = ih;
    o.iw = iw;
    o.pad = pad;
    o.accumulate = accumulate;
    if (thru) {
        o.tmask = thru->mask + (size_t)l * thru->words;
        o.twords = thru->words;
        o.tscale = _mm512_set1_ps(thru->scale[l]);
        o.guided = thru->guided;
        kdc__dw16b_plane(&o, 1);
    } else
        kdc__dw16b_plane(&o, 0);
}

/* Stride 2 goes to the AVX2 kernels: a 16-lane form (a masked load of dy
 * columns per tap row, a permute and a masked FMA per tap) measured
 * 1.1-1.4x the eight-channel kernel's time on MobileNetV1's stride-2
 * shapes (2026-12-08). */
void kdc__f32_dw3x3_backward_avx512(const float *dy, int oh, int ow, const float *w, float *dx,
                                    int ih, int iw, int stride, int pad)
{
    if (stride != 1) {
        kdc__f32_dw3x3_backward_avx2(dy, oh, ow, w, dx, ih, iw, stride, pad);
        return;
    }
    kdc__dw16b_run(dy, oh, ow, w, dx, ih, iw, pad, 1, NULL, 0);
}

void kdc__f32_dw3x3_backward_c8_avx512(const float *dy, size_t yplane, int oh, int ow,
                                       const float *w, float *dx, size_t xplane, int ih, int iw,
                                       int stride, int pad, int nc, int accumulate,
                                       const kdc__dw_bthru *thru)
{
    if (stride != 1 || ow <= KDC__DW_AVX512_C8_MAX_OW) { /* the eight lanes are the faster */
        kdc__f32_dw3x3_backward_c8_avx2(dy, yplane, oh, ow, w, dx, xplane, ih, iw, stride, pad,
                                        nc, accumulate, thru);
        return;
    }
    for (int l = 0; l < nc; l++)
        kdc__dw16b_run(dy + l * yplane, oh, ow, w + 9 * l, dx + l * xplane, ih, iw, pad,
                       accumulate, thru, l);
}

#endif /* __x86_64__ */
