/* gemm.c - the packed fp32 GEMM driver, the scalar micro-kernel and the
 * GEMM kernel tables.
 *
 * BLIS-style blocking (lib/kernels/kernels.h): A, the weights, is packed once at
 * model load into mr-row panels over its whole depth; B, the activations, is
 * packed here per call into nr-column panels, KC rows deep and at most
 * KDC__GEMM_BBLOCK floats in all (256 KB: it stays in L2 while one mr x kc
 * panel of A, in L1, sweeps it, writing a band of C's rows front to back;
 * the MC-row block of A around it stays in L2). A convolution
 * with a kernel larger than 1x1 or a stride is never lowered to an im2col
 * buffer: its im2col is read straight out of the input while packing B.
 *
 * Results do not depend on the blocking: every output element is the chain
 * (accumulate ? C : 0) + a0*b0 + a1*b1 + ... in increasing depth, whatever
 * the tile it sits in, a depth block boundary only stores the partial sum
 * and loads it back. So tasks may split the output anywhere and the thread
 * count never changes a bit. */
#include <string.h>

#include "kernels.h"

/* ------------------------------------------------------------------ */
/* Scalar micro-kernel: 4 x 8 tile                                     */

void kdc__f32_gemm_4x8_scalar(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                              int n, int accumulate)
{
    float acc[4][8];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            acc[i][j] = accumulate && i < m && j < n ? c[(size_t)i * ldc + j] : 0.0f;
    for (int p = 0; p < k; p++, a += 4, b += 8)
        for (int i = 0; i < 4; i++) {
            const float av = a[i];
            for (int j = 0; j < 8; j++)
                acc[i][j] += av * b[j];
        }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = acc[i][j];
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */

static const kdc__gemm_kernels kdc__gemm_scalar = {
    KDC__ISA_SCALAR, "f32-gemm-4x8-scalar", 4, 8, kdc__f32_gemm_4x8_scalar,
    kdc__gemm_epilogue_scalar, NULL, NULL, 0, 0, NULL, NULL, 0, NULL};
#if defined(__x86_64__)
static const kdc__gemm_kernels kdc__gemm_avx2 = {
    KDC__ISA_AVX2, "f32-gemm-6x16-avx2", 6, 16, kdc__f32_gemm_6x16_avx2,
    kdc__gemm_epilogue_avx2, kdc__f32_gemm_ep_6x16_avx2, kdc__f32_gemm_narrow_avx2, 0, 0,
    kdc__f32_gemm_6x16_rows_avx2, kdc__f32_gemm_ep_6x16_rows_avx2, 64, NULL};
static const kdc__gemm_kernels kdc__gemm_avx512 = {
    KDC__ISA_AVX512, "f32-gemm-8x32-avx512", 8, 32, kdc__f32_gemm_8x32_avx512,
    kdc__gemm_epilogue_avx512, kdc__f32_gemm_ep_8x32_avx512,
    kdc__f32_gemm_narrow_avx512, 16, 1, kdc__f32_gemm_8x32_rows_avx512,
    kdc__f32_gemm_ep_8x32_rows_avx512, 32, kdc__f32_conv_stem_avx512};
#endif
#if defined(__aarch64__)
static const kdc__gemm_kernels kdc__gemm_neon = {
    KDC__ISA_NEON, "f32-gemm-8x8-neon", 8, 8, kdc__f32_gemm_8x8_neon,
    kdc__gemm_epilogue_scalar, NULL, NULL, 0, 0, NULL, NULL, 0, NULL};
#endif

const kdc__gemm_kernels *kdc__gemm_kernels_get(kdc__isa isa)
{
    if (!kdc__isa_supported(isa))
        return NULL;
    switch (isa) {
    case KDC__ISA_SCALAR:
        return &kdc__gemm_scalar;
    case KDC__ISA_AVX2:
#if defined(__x86_64__)
        return &kdc__gemm_avx2;
#else
        return NULL;
#endif
    case KDC__ISA_AVX512:
#if defined(__x86_64__)
        return &kdc__gemm_avx512;
#else
        return NULL;
#endif
    case KDC__ISA_NEON:
#if defined(__aarch64__)
        return &kdc__gemm_neon;
#else
        return NULL;
#endif
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Packing                                                             */

size_t kdc__gemm_packed_size(int m, int k, int mr)
{
    return (size_t)((m + mr - 1) / mr) * (size_t)mr * (size_t)k;
}

void kdc__gemm_pack_a(const float *a, ptrdiff_t rs, ptrdiff_t cs, int m, int k, int mr,
                      float *dst)
{
    for (int i0 = 0; i0 < m; i0 += mr) {
        const int h = m - i0 < mr ? m - i0 : mr;
        for (int p = 0; p < k; p++, dst += mr) {
            int i = 0;
            for (; i < h; i++)
                dst[i] = a[(i0 + i) * rs + p * cs];
            for (; i < mr; i++)
                dst[i] = 0.0f;
        }
    }
}

/* One nr-wide row of an im2col panel: the columns of segment s lie in one
 * output row; d gets the input values or zeros (padding). */
typedef struct kdc__seg {
    int j, len; /* columns [j, j + len) of the panel           */
    int iy, ix; /* input position of tap (0, 0) for column j    */
} kdc__seg;

/* Input row of the tap for columns of a segment: [lo, hi) of len columns
 * land inside 0 <= ix + t * stride < iw. */
static void kdc__seg_range(int ix, int len, int stride, int iw, int *lo, int *hi)
{
    int l = ix >= 0 ? 0 : (-ix + stride - 1) / stride;
    int h = ix > iw - 1 ? 0 : (iw - 1 - ix) / stride + 1;
    if (h > len)
        h = len;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* Small kernels (kh * kw <= KDC__IM2COL_TAPS) pack through a table made
 * once per call: for each tap (ky, kx), the plane offset that each of the
 * panel's columns reads, or -1 for padding. A row of the panel is then one
 * loop of selects, where the segments take a memcpy and a memset per output
 * row (ResNet-50's 7 x 7 layer4: five runs of at most 7 floats per row). */
enum { KDC__IM2COL_TAPS = 9 };

static void kdc__pack_b_im2col_taps(const kdc__gemm_b *b, int p0, int kc, int q0, int w,
                                    int nr, float *d)
{
    int32_t at[KDC__IM2COL_TAPS][64];
    const int kk = b->kh * b->kw, s = b->stride;
    for (int r = 0; r < kk; r++) {
        const int ky = r / b->kw, kx = r % b->kw;
        for (int j = 0; j < w; j++) {
            const int q = q0 + j, oy = q / b->ow, ox = q % b->ow;
            const int iy = oy * s - b->pad + ky, ix = ox * s - b->pad + kx;
            at[r][j] = iy >= 0 && iy < b->ih && ix >= 0 && ix < b->iw ? iy * b->iw + ix : -1;
        }
    }
    const size_t ihw = (size_t)b->ih * b->iw;
    int c = p0 / kk, r = p0 % kk;
    for (int p = 0; p < kc; p++, d += nr) {
        const float *plane = b->x + (size_t)c * ihw;
        const int32_t *t = at[r];
        for (int j = 0; j < w; j++)
            d[j] = t[j] >= 0 ? plane[t[j]] : 0.0f;
        for (int j = w; j < nr; j++)
            d[j] = 0.0f;
        if (++r == kk) {
            r = 0;
            c++;
        }
    }
}

static void kdc__pack_b_im2col(const kdc__gemm_b *b, int p0, int kc, int q0, int w, int nr,
                               float *d)
{
    if (b->kh * b->kw <= KDC__IM2COL_TAPS && nr <= 64) {
        kdc__pack_b_im2col_taps(b, p0, kc, q0, w, nr, d);
        return;
    }
    kdc__seg seg[64];
    int ns = 0;
    const int s = b->stride;
    for (int j = 0; j < w;) {
        const int q = q0 + j, oy = q / b->ow, ox = q % b->ow;
        int len = b->ow - ox;
        if (len > w - j)
            len = w - j;
        seg[ns].j = j;
        seg[ns].len = len;
        seg[ns].iy = oy * s - b->pad;
        seg[ns].ix = ox * s - b->pad;
        ns++;
        j += len;
    }
    const int kk = b->kh * b->kw;
    const size_t ihw = (size_t)b->ih * b->iw;
    int c = p0 / kk, r = p0 % kk, ky = r / b->kw, kx = r % b->kw;
    for (int p = 0; p < kc; p++, d += nr) {
        const float *plane = b->x + (size_t)c * ihw;
        for (int g = 0; g < ns; g++) {
            float *o = d + seg[g].j;
            const int len = seg[g].len, iy = seg[g].iy + ky;
            if (iy < 0 || iy >= b->ih) {
                memset(o, 0, (size_t)len * sizeof *o);
                continue;
            }
            int lo, hi;
            const int ix = seg[g].ix + kx;
            kdc__seg_range(ix, len, s, b->iw, &lo, &hi);
            const float *src = plane + (size_t)iy * b->iw + ix;
            int t = 0;
            for (; t < lo; t++)
                o[t] = 0.0f;
            if (s == 1) {
                memcpy(o + lo, src + lo, (size_t)(hi - lo) * sizeof *o);
                t = hi;
            } else {
                for (; t < hi; t++)
                    o[t] = src[t * s];
            }
            for (; t < len; t++)
                o[t] = 0.0f;
        }
        for (int j = w; j < nr; j++)
            d[j] = 0.0f;
        if (++kx == b->kw) {
            kx = 0;
            if (++ky == b->kh) {
                ky = 0;
                c++;
            }
        }
    }
}

/* nr floats from s to d, as fixed-size copies for the tables' widths */
static inline void kdc__copy_nr(float *d, const float *s, int nr)
{
    switch (nr) {
    case 8:
        memcpy(d, s, 8 * sizeof *d);
        return;
    case 16:
        memcpy(d, s, 16 * sizeof *d);
        return;
    case 32:
        memcpy(d, s, 32 * sizeof *d);
        return;
    default:
        memcpy(d, s, (size_t)nr * sizeof *d);
    }
}

/* Where rows [p0, p0 + kc) of a DENSE or SHIFTED B start: row p at
 * b->x + off[p]. */
static void kdc__gemm_b_offsets(const kdc__gemm_b *b, int p0, int kc, size_t *off)
{
    if (b->im2col == 2) {
        const int kk = b->kh * b->kw;
        int c = p0 / kk, r = p0 % kk, ky = r / b->kw, kx = r % b->kw;
        const int st = b->stride;
        for (int p = 0; p < kc; p++) {
            off[p] = (size_t)c * b->plane + (size_t)(ky % st * st + kx % st) * b->pplane +
                     (size_t)(ky / st) * b->ld + (size_t)(kx / st);
            if (++kx == b->kw) {
                kx = 0;
                if (++ky == b->kh) {
                    ky = 0;
                    c++;
                }
            }
        }
    } else {
        for (int p = 0; p < kc; p++)
            off[p] = (size_t)(p0 + p) * b->ld;
    }
}

void kdc__gemm_pack_b_block(const kdc__gemm_b *b, int p0, int kc, int n0, int nc, int nr,
                            float *dst)
{
    if (b->im2col == 1) {
        for (int j0 = 0; j0 < nc; j0 += nr)
            kdc__pack_b_im2col(b, p0, kc, n0 + j0, nc - j0 < nr ? nc - j0 : nr, nr,
                               dst + (size_t)(j0 / nr) * kc * nr);
        return;
    }
    /* DENSE and SHIFTED: row p starts at x + off[p] */
    size_t off[KDC__GEMM_KC];
    kdc__gemm_b_offsets(b, p0, kc, off);
    /* Row by row: each source row is read front to back across all full
     * panels (a stream the hardware prefetcher follows), the panels are
     * written kc * nr floats apart in the workspace (in cache). */
    const int full = nc / nr;
    const size_t pstride = (size_t)kc * nr;
    for (int p = 0; p < kc; p++) {
        const float *src = b->x + n0 + off[p];
        float *d = dst + (size_t)p * nr;
        for (int q = 0; q < full; q++, src += nr, d += pstride)
            kdc__copy_nr(d, src, nr);
    }
    const int w = nc - full * nr; /* the last, partial panel */
    if (w > 0) {
        float *d = dst + (size_t)full * pstride;
        const float *src = b->x + n0 + (size_t)full * nr;
        for (int p = 0; p < kc; p++, d += nr) {
            memcpy(d, src + off[p], (size_t)w * sizeof *d);
            memset(d + w, 0, (size_t)(nr - w) * sizeof *d);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Epilogue and driver                                                 */

static inline float kdc__clampf(float v, float clamp)
{
    if (v != v)
        return v;
    v = v > 0.0f ? v : 0.0f;
    return v < clamp ? v : clamp;
}

void kdc__gemm_epilogue_scalar(const kdc__gemm_epilogue *ep, float *v, size_t ldv, int row, int m,
                               const float *res, size_t ldres, int n)
{
    if (ep->bmask) { /* the backward form: kdc__relu_scale_backward_ref's operations */
        for (int i = 0; i < m; i++, v += ldv) {
            const uint64_t *mk = ep->bmask + (size_t)(row + i) * ep->bwords;
            const float s = ep->scale[row + i];
            for (int j = 0; j < n; j++) {
                const int col = ep->bcol + j;
                float g = 0.0f;
                if (((mk[col / 64] >> (col % 64)) & 1) && (!ep->guided || v[j] > 0.0f))
                    g = 0.0f + v[j];
                v[j] = 0.0f + g * s;
            }
        }
        return;
    }
    for (int i = 0; i < m; i++, v += ldv) {
        const int r = row + i;
        if (ep->bias) {
            const float bs = ep->bias[r];
            for (int j = 0; j < n; j++)
                v[j] = v[j] + bs;
        }
        if (ep->scale) {
            const float s = ep->scale[r], t = ep->shift[r];
            for (int j = 0; j < n; j++)
                v[j] = v[j] * s + t;
        }
        if (res) {
            const float *rs = res + (size_t)i * ldres;
            for (int j = 0; j < n; j++)
                v[j] = v[j] + rs[j];
        }
        if (ep->relu)
            for (int j = 0; j < n; j++)
                v[j] = kdc__clampf(v[j], ep->clamp);
    }
}

int kdc__gemm_b_inplace(const kdc__gemm_kernels *gk, const kdc__gemm_b *b, int rows, int k)
{
    return gk->gemm_rows && rows <= KDC__GEMM_INPLACE_M && k >= gk->inplace_k &&
           ((!b->im2col && b->ld % 16 == 0) || b->im2col == 2);
}

void kdc__gemm(const kdc__gemm_kernels *gk, const float *apack, int k, int m0, int m1,
               const kdc__gemm_b *b, int n0, int n1, float *c, size_t ldc, int accumulate,
               const kdc__gemm_epilogue *ep, float *work)
{
    const int mr = gk->mr, nr = gk->nr;
    /* the backward form of the epilogue: the table's where it has it, else
     * the scalar one */
    const kdc__gemm_epilogue_fn epf =
        ep && ep->bmask && !gk->ep_bmask ? kdc__gemm_epilogue_scalar : gk->epilogue;
    kdc__gemm_epilogue eb; /* a block's copy of ep, with its mask column */
    /* columns per block: the packed block of the deepest kc within
     * KDC__GEMM_BBLOCK floats, whole panels, at least one */
    const int kc_max = k < KDC__GEMM_KC ? k : KDC__GEMM_KC;
    int ncb = KDC__GEMM_BBLOCK / (kc_max > 0 ? kc_max : 1) / nr * nr;
    ncb = ncb < nr ? nr : ncb > KDC__GEMM_NC ? KDC__GEMM_NC : ncb;
    for (int jc = n0; jc < n1; jc += ncb) {
        const int nc = n1 - jc < ncb ? n1 - jc : ncb;
        for (int pc = 0; pc < k; pc += KDC__GEMM_KC) {
            const int kc = k - pc < KDC__GEMM_KC ? k - pc : KDC__GEMM_KC;
            const int last = pc + kc == k;
            const float *bpanels = work; /* the panels of this depth block */
            /* full panels of B read in place, from the rows' starts
             * (the last one again for the kernel's prefetches past the
             * end): only the last, partial panel is packed (into work, as
             * panel 0) */
            const int inplace = !b->packed && kdc__gemm_b_inplace(gk, b, m1 - m0, k);
            const int jfull = inplace ? nc / nr * nr : 0;
            const float *brow[KDC__GEMM_KC + 19];
            if (b->packed)
                bpanels = b->packed + (size_t)pc * b->npad + (size_t)(jc / nr) * kc * nr;
            else if (!inplace)
                kdc__gemm_pack_b_block(b, pc, kc, jc, nc, nr, work);
            else {
                if (jfull < nc)
                    kdc__gemm_pack_b_block(b, pc, kc, jc + jfull, nc - jfull, nr, work);
                size_t off[KDC__GEMM_KC];
                kdc__gemm_b_offsets(b, pc, kc, off);
                for (int p = 0; p < kc + 19; p++)
                    brow[p] = b->x + off[p < kc ? p : kc - 1];
            }
            /* the last few columns (past the left half of the last panel
             * where the table says so): for all rows at once */
            int wn = nc % nr;
            if (gk->half && wn > gk->half)
                wn -= gk->half;
            const int jn = gk->narrow && wn > 0 && wn <= KDC__GEMM_NARROW ? nc - wn : nc;
            for (int ic = m0; ic < m1; ic += KDC__GEMM_MC) {
                const int mc = m1 - ic < KDC__GEMM_MC ? m1 - ic : KDC__GEMM_MC;
                /* each row panel of A (in L1) sweeps the block of B (in
                 * L2): the tiles of C follow its rows, in order (a stream
                 * the prefetcher follows when C is not in cache) */
                for (int ir = 0; ir < mc; ir += mr) {
                    const int mw = mc - ir < mr ? mc - ir : mr;
                    const int row = ic + ir;
                    const float *ap = apack + ((size_t)(row / mr) * k + pc) * mr;
                    for (int jr = 0; jr < jn; jr += nr) {
                        const int nw = jn - jr < nr ? jn - jr : nr;
                        const float *bp = bpanels + (size_t)((jr - jfull) / nr) * kc * nr;
                        float *cp = c + (size_t)row * ldc + jc + jr;
                        const int acc = accumulate || pc > 0;
                        const float *res =
                            last && ep && ep->res ? ep->res + (size_t)row * ldc + jc + jr : NULL;
                        const kdc__gemm_epilogue *te = ep;
                        if (last && ep && ep->bmask) { /* this block's mask column */
                            eb = *ep;
                            eb.bcol = jc + jr;
                            te = &eb;
                        }
                        if (jr < jfull) {
                            if (last && ep && mw == mr && (!ep->bmask || gk->ep_bmask)) {
                                gk->gemm_ep_rows(kc, ap, brow, (size_t)(jc + jr), cp, ldc, acc,
                                                 te, row, res, ldc);
                                continue;
                            }
                            gk->gemm_rows(kc, ap, brow, (size_t)(jc + jr), cp, ldc, mw, acc);
                            if (last && ep)
                                epf(te, cp, ldc, row, mw, res, ldc, nw);
                            continue;
                        }
                        if (last && ep && gk->gemm_ep && mw == mr && nw == nr &&
                            (!ep->bmask || gk->ep_bmask)) {
                            gk->gemm_ep(kc, ap, bp, cp, ldc, acc, te, row, res, ldc);
                            continue;
                        }
                        gk->gemm(kc, ap, bp, cp, ldc, mw, nw, acc);
                        if (last && ep)
                            epf(te, cp, ldc, row, mw, res, ldc, nw);
                    }
                }
                if (jn < nc) {
                    const float *ap = apack + ((size_t)(ic / mr) * k + pc) * mr;
                    float *cp = c + (size_t)ic * ldc + jc + jn;
                    gk->narrow(kc, ap, (size_t)k * mr,
                               bpanels + (size_t)((jn - jfull) / nr) * kc * nr + jn % nr, cp,
                               ldc, mc, wn, accumulate || pc > 0);
                    if (last && ep) {
                        const kdc__gemm_epilogue *te = ep;
                        if (ep->bmask) {
                            eb = *ep;
                            eb.bcol = jc + jn;
                            te = &eb;
                        }
                        epf(te, cp, ldc, ic, mc,
                            ep->res ? ep->res + (size_t)ic * ldc + jc + jn : NULL, ldc, wn);
                    }
                }
            }
        }
    }
}
