/* dwconv_c8_avx2.c - depthwise 3x3 convolution of up to eight channels at
 * once, forward and backward-data, AVX2 + FMA: the table entries dw3x3_c8
 * and dw3x3_backward_c8 (lib/kernels/kernels.h) for small planes, where a
 * row is one or two vectors and dwconv_avx2.c's plane kernels leave most
 * lanes idle. The channels go one per lane: a band of rows of the planes is
 * turned channel-last into a stack buffer (8x8 transposes), each output is
 * one vector chain there, and the results are turned back. Each chain is
 * the plane kernel's, so the two agree to the bit (tests/test_kernels.c:
 * check_dw_c8, check_dw_bc8).
 *
 * Compiled with -mavx2 -mfma (Makefile), chosen at run time (lib/cpu.c). */
#if defined(__x86_64__)

#include <string.h>

#include "kernels.h"
#include "simd_avx2.h"

/* ------------------------------------------------------------------ */
/* Forward, eight channels side by side (small planes)                 */

/* The planes are turned channel-last into a buffer of (ih, iw + 3, 8)
 * floats, input column ix at buffer column ix + 1 and zero columns at 0,
 * iw + 1 and iw + 2 (every column a window reaches outside the input), so
 * each output of the 8 channels is one vector chain: acc = bias, then per
 * tap in (ky, kx) order acc = fma(w, x, acc), rows outside skipped and
 * columns outside zeros, as in kdc__f32_dw3x3_avx2. Eight outputs in a row
 * of the flattened plane are turned back to the channels' planes. */
/* Rows [iy0, iy1) of the nc planes (h x w), channel-last, into xt: buffer
 * row iy - iy0, wb columns of 8 floats, plane column ix at buffer column
 * ix + lead and zeros in the columns before (lead) and after (wb - w -
 * lead, at most 2) it. The forward's input: lead 1, wb = iw + 3 (see
 * above); the backward's dy: lead 2, wb = ow + 4. */
static void kdc__dw_c8_rows(const float *x, size_t xplane, int h, int w, int iy0, int iy1,
                            int nc, float *xt, int lead, int wb)
{
    const size_t hw = (size_t)h * w;
    const __m256 zero = _mm256_setzero_ps();
    for (int iy = iy0; iy < iy1; iy++) {
        float *row = xt + (size_t)(iy - iy0) * wb * 8;
        for (int ix = 0; ix < w; ix += 8) {
            /* plain loads may run past the row into the plane's next
             * rows, not past the plane */
            const int masked = (size_t)iy * w + ix + 8 > hw;
            const __m256i cols = kdc__lanes8(w - ix);
            const float *src = x + (size_t)iy * w + ix;
            __m256 v[8];
            _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
                v[l] = l >= nc  ? zero
                       : masked ? _mm256_maskload_ps(src + l * xplane, cols)
                                : _mm256_loadu_ps(src + l * xplane);
            kdc__transpose8x8(v);
            /* stored whole: lanes past the row land on the next buffer
             * row (written after it) or the slack */
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
                _mm256_store_ps(row + (size_t)(ix + lead + j) * 8, v[j]);
        }
        for (int j = 0; j < lead; j++)
            _mm256_store_ps(row + (size_t)j * 8, zero);
        for (int j = w + lead; j < wb; j++)
            _mm256_store_ps(row + (size_t)j * 8, zero);
    }
}

/* Tap t of filter l (9 floats apart from w) in lane l of wv[t], lanes
 * from nc on zero: a masked gather (the lanes past nc are not read). */
static inline void kdc__dw_c8_filters(const float *w, int nc, __m256 wv[9])
{
    const __m256i nine = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
    const __m256 lanes = _mm256_castsi256_ps(kdc__lanes8(nc));
    for (int t = 0; t < 9; t++)
        wv[t] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), w + t, nine, lanes, 4);
}

/* The outputs of the 8 channels from xt, the band's input rows from iy0
 * on (see above), in blocks of 8 outputs: f is the epilogue's parts
 * (kdc__ep_flags), a constant where these are inlined, so that its
 * branches leave the loops. */
typedef struct kdc__dw_c8_out {
    __m256 wv[9], vb, clamp; /* taps, biases, the epilogue's clamp */
    kdc__ep_row8 k;          /* the epilogue's channel constants    */
    float *y;
    size_t yplane, ohw;
    int ih, ow, stride, pad, wb, nc;
} kdc__dw_c8_out;

/* v[j]: output p + j of the 8 channels' flattened planes, through the
 * epilogue, turned back to the planes and stored. Lanes past the plane
 * go through a mask; the others are stored whole, also those past the
 * block's row or run (the caller writes those outputs later). */
static inline __attribute__((always_inline)) void
kdc__dw_c8_store(const kdc__dw_c8_out *o, __m256 v[8], size_t p, int f)
{
    const __m256 zero = _mm256_setzero_ps();
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
        v[j] = kdc__ep8f_avx2(f, &o->k, zero, o->clamp, v[j]);
    kdc__transpose8x8(v);
    float *d = o->y + p;
    /* unrolled, so that v stays in registers */
    if (p + 8 <= o->ohw) {
        _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
            if (l < o->nc)
                _mm256_storeu_ps(d + l * o->yplane, v[l]);
    } else {
        const __m256i pix = kdc__lanes8((int)(o->ohw - p));
        _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
            if (l < o->nc)
                _mm256_maskstore_ps(d + l * o->yplane, pix, v[l]);
    }
}

/* Rows [oy0, oy1), any rows, in blocks of 8 outputs of a row. */
static inline __attribute__((always_inline)) void
kdc__dw_c8_rowwise(const kdc__dw_c8_out *o, const float *xt, int iy0, int oy0, int oy1, int f)
{
    const int stride = o->stride, ow = o->ow, wb = o->wb;
    for (int oy = oy0; oy < oy1; oy++) {
        /* the rows inside the input: taps ky0 .. ky1 - 1 */
        const int iyt = oy * stride - o->pad;
        const int ky0 = iyt < 0 ? -iyt : 0, ky1 = o->ih - iyt < 3 ? o->ih - iyt : 3;
        const int nrows = ky1 - ky0;
        const float *rows[3];
        for (int q = 0; q < nrows; q++)
            rows[q] = xt + ((size_t)(iyt + ky0 + q - iy0) * wb + 1 - o->pad) * 8;
        const __m256 *wr = o->wv + 3 * ky0;
        for (int ox = 0; ox < ow; ox += 8) {
            __m256 v[8];
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
                v[j] = o->vb;
            for (int q = 0; q < nrows; q++)
                for (int kx = 0; kx < 3; kx++) {
                    const float *r = rows[q] + (size_t)(ox * stride + kx) * 8;
                    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
                        v[j] = _mm256_fmadd_ps(wr[3 * q + kx],
                                               _mm256_load_ps(r + j * stride * 8), v[j]);
                }
            kdc__dw_c8_store(o, v, (size_t)oy * ow + ox, f);
        }
    }
}

/* Rows [oy0, oy1), each with all three input rows inside the input, as
 * one run of outputs in blocks of 8 that run on across rows (no block
 * half idle at the end of a 14- or 28-wide row). Each output's chain is
 * the row-wise one: the bias, then the 9 taps in (ky, kx) order. */
static inline __attribute__((always_inline)) void
kdc__dw_c8_runwise(const kdc__dw_c8_out *o, const float *xt, int iy0, int oy0, int oy1, int f)
{
    const int stride = o->stride, ow = o->ow, wb = o->wb;
    const int n = (oy1 - oy0) * ow;
    int by = oy0, bx = 0; /* the block's first output */
    for (int p = 0; p < n; p += 8) {
        /* output j's window's top left in xt; past the run, the run's
         * last output's (computed, then overwritten or masked) */
        const float *r[8];
        int yy = by, xx = bx;
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            r[j] = xt + ((size_t)(yy * stride - o->pad - iy0) * wb + xx * stride + 1 - o->pad) * 8;
            if (p + j + 1 < n && ++xx == ow) {
                xx = 0;
                yy++;
            }
        }
        for (bx += 8; bx >= ow; bx -= ow)
            by++;
        __m256 v[8];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            v[j] = o->vb;
        for (int q = 0; q < 3; q++)
            _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
                const size_t t = ((size_t)q * wb + kx) * 8;
                _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
                    v[j] = _mm256_fmadd_ps(o->wv[3 * q + kx], _mm256_load_ps(r[j] + t), v[j]);
            }
        kdc__dw_c8_store(o, v, (size_t)oy0 * ow + p, f);
    }
}

/* Rows [oy0, oy1): those with a window row outside the input row-wise,
 * the others (when their width leaves blocks part idle) as one run. */
static inline __attribute__((always_inline)) void
kdc__dw_c8_band(const kdc__dw_c8_out *o, const float *xt, int iy0, int oy0, int oy1, int f)
{
    /* inner rows: oy * stride - pad >= 0 and oy * stride - pad + 3 <= ih */
    int ia = (o->pad + o->stride - 1) / o->stride, ib = (o->ih - 3 + o->pad) / o->stride + 1;
    ia = ia > oy0 ? ia : oy0;
    ib = ib < oy1 ? ib : oy1;
    if (o->ow % 8 == 0 || ib - ia < 2) {
        kdc__dw_c8_rowwise(o, xt, iy0, oy0, oy1, f);
        return;
    }
    /* in order: a block stored whole writes on into the next outputs */
    kdc__dw_c8_rowwise(o, xt, iy0, oy0, ia, f);
    kdc__dw_c8_runwise(o, xt, iy0, ia, ib, f);
    kdc__dw_c8_rowwise(o, xt, iy0, ib, oy1, f);
}

void kdc__f32_dw3x3_c8_avx2(const float *x, size_t xplane, int ih, int iw, const float *w,
                            const float *bias, float *y, size_t yplane, int oh, int ow,
                            int stride, int pad, const kdc__gemm_epilogue *ep, int c, int nc)
{
    /* output rows per band: their input rows, (band - 1) * stride + 3, fit
     * the buffer */
    const int wb = iw + 3;
    const int band = ((KDC__DW_C8_PLANE / wb) - 3) / stride + 1;
    if (KDC__DW_C8_PLANE / wb < 3) { /* not even one row: plane by plane */
        for (int l = 0; l < nc; l++)
            kdc__f32_dw3x3_avx2(x + l * xplane, ih, iw, w + 9 * l, bias ? bias[c + l] : 0.0f,
                                y + l * yplane, oh, ow, stride, pad, ep, c + l, NULL);
        return;
    }
    /* the output blocks' lanes past a row read on, into the slack after
     * the band's last row (a stride-2 block reaches 15 columns on) */
    enum { SLACK = 16 };
    float xt[(KDC__DW_C8_PLANE + SLACK) * 8] __attribute__((aligned(32)));
    const __m256i lanes = kdc__lanes8(nc);
    const __m256 zero = _mm256_setzero_ps();
    kdc__dw_c8_out o = {.y = y, .yplane = yplane, .ohw = (size_t)oh * ow, .ih = ih, .ow = ow,
                        .stride = stride, .pad = pad, .wb = wb, .nc = nc};
    kdc__dw_c8_filters(w, nc, o.wv);
    o.vb = bias ? _mm256_maskload_ps(bias + c, lanes) : zero;
    o.k = (kdc__ep_row8){zero, zero, zero};
    o.clamp = zero;
    if (ep) {
        o.k.bs = ep->bias ? _mm256_maskload_ps(ep->bias + c, lanes) : zero;
        o.k.sc = ep->scale ? _mm256_maskload_ps(ep->scale + c, lanes) : _mm256_set1_ps(1.0f);
        o.k.sh = ep->scale ? _mm256_maskload_ps(ep->shift + c, lanes) : zero;
        o.clamp = _mm256_set1_ps(ep->clamp);
    }
    const int f = ep ? kdc__ep_flags(ep, 0) : 0;
    for (int oy0 = 0; oy0 < oh; oy0 += band) {
        const int oy1 = oy0 + band < oh ? oy0 + band : oh;
        int iy0 = oy0 * stride - pad, iy1 = (oy1 - 1) * stride - pad + 3;
        iy0 = iy0 < 0 ? 0 : iy0;
        iy1 = iy1 > ih ? ih : iy1;
        kdc__dw_c8_rows(x, xplane, ih, iw, iy0, iy1, nc, xt, 1, wb);
        for (int j = 0; j < SLACK; j++)
            _mm256_store_ps(xt + ((size_t)(iy1 - iy0) * wb + j) * 8, zero);
        /* the epilogue's shapes of the fused groups (no residual here) */
        switch (f) {
        case 0: kdc__dw_c8_band(&o, xt, iy0, oy0, oy1, 0); break;
        case KDC__EPF_SCALE | KDC__EPF_RELU:
            kdc__dw_c8_band(&o, xt, iy0, oy0, oy1, KDC__EPF_SCALE | KDC__EPF_RELU);
            break;
        case KDC__EPF_BIAS | KDC__EPF_SCALE | KDC__EPF_RELU:
            kdc__dw_c8_band(&o, xt, iy0, oy0, oy1,
                            KDC__EPF_BIAS | KDC__EPF_SCALE | KDC__EPF_RELU);
            break;
        case KDC__EPF_SCALE: kdc__dw_c8_band(&o, xt, iy0, oy0, oy1, KDC__EPF_SCALE); break;
        default: /* the rarer shapes, their branches in the loop */
            kdc__dw_c8_band(&o, xt, iy0, oy0, oy1, f);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Backward-data, eight channels side by side (small planes)           */

/* With thru (kdc__dw_bthru), each finished block of dx goes on through the
 * ReLU + BatchNorm before the conv in its registers, as 8 values of one
 * channel: its 8 mask bits (from any bit of the plane's words) expanded to
 * lanes, then act_avx2.c's fused backward operations, so the same bits as
 * that pass over the written planes, which it saves (its reads and writes
 * of the whole gradient: 1.5-2.6% of a 2-thread MobileNetV1 guided pass). */

/* Buffer columns after the last row: the transposed rows' whole-vector
 * stores run up to 4 columns past a row, the last block's lanes past dx's
 * row read up to 6 (stride 1) */
enum { KDC__DW_BC8_SLACK = 16 };

/* dx columns [j, j + 8) of one row of the 8 channels: acc[p] holds column
 * j + p of each channel. Rows of dy (channel-last, kdc__dw_c8_rows with
 * lead 2) are rows[ky] for the taps ky with ok[ky]. Each column's chain is
 * the plane kernel's: for ky, then kx, ascending, the taps whose dy column
 * u = (j + p + pad - kx) / S is whole (S = 2: u even), that column read
 * from the buffer (zeros outside dy). S and PAD are constants here. */
static inline __attribute__((always_inline)) void
kdc__dw_bc8_taps(const float *const rows[3], const int ok[3], int j, const __m256 *wv,
                 __m256 acc[8], const int S, const int PAD)
{
    for (int ky = 0; ky < 3; ky++) {
        if (!ok[ky])
            continue;
        _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
            _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++) {
                /* j is a multiple of 8, so the parity is p's */
                if (S == 2 && ((p + PAD - kx) & 1))
                    continue;
                const int u = j + p + PAD - kx; /* >= -2 */
                const int col = (S == 2 ? (u + 2) / 2 - 1 : u) + 2;
                acc[p] = _mm256_fmadd_ps(wv[3 * ky + kx],
                                         _mm256_load_ps(rows[ky] + (size_t)col * 8), acc[p]);
            }
    }
}

/* kdc__dw_bthru's step on 8 dx values v of a channel from element i of
 * its plane: mask its mask plane's words (nw of them), sv its scale
 * broadcast (lanes past the plane: bits 0) */
static inline __attribute__((always_inline)) __m256
kdc__bthru8(const uint64_t *mask, size_t nw, size_t i, __m256 sv, int guided, __m256 v)
{
    const size_t w = i / 64, o = i % 64;
    uint64_t bits = mask[w] >> o;
    if (o > 56 && w + 1 < nw)
        bits |= mask[w + 1] << (64 - o);
    const __m256 zero = _mm256_setzero_ps();
    const __m256 pass = kdc__pass8((int)(bits & 0xff), v, guided);
    const __m256 g = _mm256_add_ps(zero, _mm256_and_ps(pass, v));
    return _mm256_add_ps(zero, _mm256_mul_ps(g, sv));
}

static inline __attribute__((always_inline)) void
kdc__dw_bc8(const float *dy, size_t yplane, int oh, int ow, const __m256 *wv, float *dx,
            size_t xplane, int ih, int iw, int nc, float *dyt, int band, int accumulate,
            const kdc__dw_bthru *thru, const int S, const int PAD)
{
    const int wb = ow + 4;
    const size_t ihw = (size_t)ih * iw;
    /* thru's constants, local: the stores to dx cannot change them */
    const uint64_t *tm[8] = {NULL};
    __m256 tsv[8];
    const size_t tw = thru ? thru->words : 0;
    const int tg = thru ? thru->guided : 0;
    for (int l = 0; l < 8; l++) {
        tsv[l] = _mm256_setzero_ps();
        if (thru && l < nc) {
            tm[l] = thru->mask + (size_t)l * tw;
            tsv[l] = _mm256_set1_ps(thru->scale[l]);
        }
    }
    for (int iy0 = 0; iy0 < ih; iy0 += band) {
        const int iy1 = iy0 + band < ih ? iy0 + band : ih;
        /* the dy rows of this band: (iy + PAD - ky) / S for its rows */
        int oy0 = iy0 + PAD - 2 < 0 ? 0 : (iy0 + PAD - 2 + S - 1) / S;
        int oy1 = (iy1 - 1 + PAD) / S + 1;
        oy1 = oy1 > oh ? oh : oy1;
        if (oy0 < oy1)
            kdc__dw_c8_rows(dy, yplane, oh, ow, oy0, oy1, nc, dyt, 2, wb);
        /* the slack after the band's last row: what lanes past a row's
         * end read (never stored) */
        for (int j = 0; j < KDC__DW_BC8_SLACK; j++)
            _mm256_store_ps(dyt + ((size_t)(oy1 > oy0 ? oy1 - oy0 : 0) * wb + j) * 8,
                            _mm256_setzero_ps());
        for (int iy = iy0; iy < iy1; iy++) {
            const float *rows[3] = {dyt, dyt, dyt};
            int ok[3];
            for (int ky = 0; ky < 3; ky++) {
                const int t = iy + PAD - ky;
                ok[ky] = t >= 0 && t % S == 0 && t / S < oh;
                if (ok[ky])
                    rows[ky] = dyt + (size_t)(t / S - oy0) * wb * 8;
            }
            for (int j = 0; j < iw; j += 8) {
                /* plain loads and stores, also for a row's last block, whose
                 * lanes past the row put back the next row's values as they
                 * were read (that row is this call's, done later); masked
                 * ones only at the plane's end, past which lie other
                 * channels' planes */
                const int tail = iw - j < 8, end = (size_t)iy * iw + j + 8 > ihw;
                const __m256i cols = kdc__lanes8(iw - j);
                float *d = dx + (size_t)iy * iw + j;
                __m256 acc[8];
                _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
                    acc[l] = l >= nc || !accumulate ? _mm256_setzero_ps()
                             : end                  ? _mm256_maskload_ps(d + l * xplane, cols)
                                                    : _mm256_loadu_ps(d + l * xplane);
                if (accumulate) /* zeros need no turning */
                    kdc__transpose8x8(acc);
                kdc__dw_bc8_taps(rows, ok, j, wv, acc, S, PAD);
                kdc__transpose8x8(acc);
                if (thru) /* on through the ReLU + BatchNorm before */
                    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
                        if (l < nc)
                            acc[l] = kdc__bthru8(tm[l], tw, (size_t)iy * iw + j, tsv[l], tg,
                                                 acc[l]);
                if (end) {
                    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
                        if (l < nc)
                            _mm256_maskstore_ps(d + l * xplane, cols, acc[l]);
                } else if (tail) {
                    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
                        if (l < nc)
                            _mm256_storeu_ps(d + l * xplane,
                                             _mm256_blendv_ps(_mm256_loadu_ps(d + l * xplane),
                                                              acc[l], _mm256_castsi256_ps(cols)));
                } else {
                    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++)
                        if (l < nc)
                            _mm256_storeu_ps(d + l * xplane, acc[l]);
                }
            }
        }
    }
}

/* kdc__dw_bthru's step on a whole plane x (hw floats) of channel l, in
 * place, 8 values at a time by kdc__bthru8 (the tail through masks) */
static void kdc__bthru_plane(const kdc__dw_bthru *t, int l, float *x, size_t hw)
{
    const uint64_t *m = t->mask + (size_t)l * t->words;
    const __m256 sv = _mm256_set1_ps(t->scale[l]);
    for (size_t i = 0; i < hw; i += 8) {
        const __m256i in = kdc__lanes8(hw - i < 8 ? (int)(hw - i) : 8);
        const __m256 v = _mm256_maskload_ps(x + i, in);
        _mm256_maskstore_ps(x + i, in, kdc__bthru8(m, t->words, i, sv, t->guided, v));
    }
}

void kdc__f32_dw3x3_backward_c8_avx2(const float *dy, size_t yplane, int oh, int ow,
                                     const float *w, float *dx, size_t xplane, int ih, int iw,
                                     int stride, int pad, int nc, int accumulate,
                                     const kdc__dw_bthru *thru)
{
    /* dx rows per band: their dy rows, (band + 1) / stride + 1 at most,
     * fit the buffer */
    const int wb = ow + 4, fit = KDC__DW_C8_PLANE / wb;
    if (fit < 3) { /* not even a band of one row: plane by plane */
        for (int l = 0; l < nc; l++) {
            if (!accumulate)
                memset(dx + l * xplane, 0, (size_t)ih * iw * sizeof *dx);
            kdc__f32_dw3x3_backward_avx2(dy + l * yplane, oh, ow, w + 9 * l, dx + l * xplane, ih,
                                         iw, stride, pad);
            if (thru)
                kdc__bthru_plane(thru, l, dx + l * xplane, (size_t)ih * iw);
        }
        return;
    }
    const int band = stride == 1 ? fit - 2 : 2 * (fit - 1) - 1;
    float dyt[(KDC__DW_C8_PLANE + KDC__DW_BC8_SLACK) * 8] __attribute__((aligned(32)));
    __m256 wv[9];
    kdc__dw_c8_filters(w, nc, wv);
    if (stride == 1 && pad == 1)
        kdc__dw_bc8(dy, yplane, oh, ow, wv, dx, xplane, ih, iw, nc, dyt, band, accumulate, thru,
                    1, 1);
    else if (stride == 1)
        kdc__dw_bc8(dy, yplane, oh, ow, wv, dx, xplane, ih, iw, nc, dyt, band, accumulate, thru,
                    1, 0);
    else if (pad == 1)
        kdc__dw_bc8(dy, yplane, oh, ow, wv, dx, xplane, ih, iw, nc, dyt, band, accumulate, thru,
                    2, 1);
    else
        kdc__dw_bc8(dy, yplane, oh, ow, wv, dx, xplane, ih, iw, nc, dyt, band, accumulate, thru,
                    2, 0);
}

#endif /* __x86_64__ */
