/* conv_wino.c - stride-1 3x3 convolutions by Winograd F(2x2, 3x3): the
 * weight, input and output transforms; the 16 products are one batched
 * GEMM (conv_gemm.c). conv_wino.h has the method.
 *
 * The matrices (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016, interpolation points 0, 1, -1, infinity):
 *     B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
 *           [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
 *           [0 -1  1  0]        [1/2 -1/2  1/2]
 *           [0  1  0 -1]        [ 0    0    1 ]
 * Tile (ty, tx) covers outputs (2ty .. 2ty+1, 2tx .. 2tx+1) and reads the
 * input patch of rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2 (zero
 * outside: the padding of 1, and past the end for odd sizes). Layouts:
 * V[xi][c][t] and M[xi][o][t], t = ty * tw + tx, xi = 4 * row + column. */
#include <string.h>

#include "conv_wino.h"
#include "sched.h"

static int kdc__wino_tiles(int n)
{
    return (n + 1) / 2;
}

int kdc__wino_eligible(const kdc__conv_param *cp, int oh, int ow)
{
    if (cp->groups != 1 || cp->kh != 3 || cp->kw != 3 || cp->stride != 1 || cp->pad != 1 ||
        !cp->packed || ow > KDC__WINO_MAX_OW || oh < 1 || ow < 1)
        return 0;
    const double t = (double)kdc__wino_tiles(oh) * kdc__wino_tiles(ow);
    const int wide = cp->cin > cp->cout ? cp->cin : cp->cout;
    return t >= KDC__WINO_MIN_TILES && 16.0 * wide * t <= (double)KDC__COLS_MAX;
}

size_t kdc__wino_weights_size(const kdc__conv_param *cp, int mr, int backward)
{
    return 16 * (backward ? kdc__gemm_packed_size(cp->cin, cp->cout, mr)
                          : kdc__gemm_packed_size(cp->cout, cp->cin, mr));
}

/* U = G g G^T of the weights of output o and input c (from the packing). */
static void kdc__wino_u(const kdc__conv_param *cp, int mr, int o, int c, float u[4][4])
{
    float g[3][3], gg[4][3];
    for (int t = 0; t < 9; t++)
        g[t / 3][t % 3] = kdc__gemm_packed_at(cp->packed, cp->cin * 9, mr, o, c * 9 + t);
    for (int x = 0; x < 3; x++) { /* G g: rows */
        gg[0][x] = g[0][x];
        gg[1][x] = 0.5f * (g[0][x] + g[1][x] + g[2][x]);
        gg[2][x] = 0.5f * (g[0][x] - g[1][x] + g[2][x]);
        gg[3][x] = g[2][x];
    }
    for (int i = 0; i < 4; i++) { /* (G g) G^T: columns */
        const float a = gg[i][0], b = gg[i][1], e = gg[i][2];
        u[i][0] = a;
        u[i][1] = 0.5f * (a + b + e);
        u[i][2] = 0.5f * (a - b + e);
        u[i][3] = e;
    }
}

/* The backward-data of a stride-1 3x3 conv with padding 1 is the same conv
 * of dy with the kernel turned by 180 degrees and its channels transposed:
 * g'[c][o] = J g[o][c] J (J reverses 3 entries). G J = P G, P swapping rows
 * 0 and 3 of 4 (the interpolation points 0 and infinity trade places, 1
 * and -1 keep theirs), so U' = G g' G^T = P U P^T: entry (i, j) of U' is
 * entry (p(i), p(j)) of U, p = (3, 1, 2, 0). */
void kdc__wino_weights(const kdc__conv_param *cp, int mr, int backward, float *dst)
{
    static const int keep[4] = {0, 1, 2, 3}, turn[4] = {3, 1, 2, 0};
    const int *p = backward ? turn : keep;
    const int rows = backward ? cp->cin : cp->cout, cols = backward ? cp->cout : cp->cin;
    const size_t per = kdc__gemm_packed_size(rows, cols, mr);
    memset(dst, 0, 16 * per * sizeof *dst); /* rows past the last panel's */
    for (int o = 0; o < cp->cout; o++)
        for (int c = 0; c < cp->cin; c++) {
            float u[4][4];
            kdc__wino_u(cp, mr, o, c, u);
            const int r = backward ? c : o, q = backward ? o : c;
            float *d = dst + ((size_t)(r / mr) * cols + q) * mr + r % mr;
            for (int e = 0; e < 16; e++)
                d[(size_t)e * per] = u[p[e / 4]][p[e % 4]];
        }
}

kdc_status kdc__wino_reserve(kdc__work *ws, const kdc__conv_param *cp, int oh, int ow)
{
    if (!kdc__wino_eligible(cp, oh, ow))
        return KDC_OK;
    /* backward-data swaps the roles of cin and cout */
    const size_t t = (size_t)kdc__wino_tiles(oh) * kdc__wino_tiles(ow);
    const size_t wide = (size_t)(cp->cin > cp->cout ? cp->cin : cp->cout);
    kdc_status st = kdc__grow(&ws->wino_v, &ws->wino_v_cap, 16 * wide * t);
    if (!st)
        st = kdc__grow(&ws->wino_m, &ws->wino_m_cap, 16 * wide * t);
    return st;
}

typedef struct kdc__wino_job {
    int cin, cout;                /* of this conv (backward: swapped)        */
    const kdc__gemm_kernels *gk;
    const float *x;               /* one image                               */
    float *v, *m, *y;             /* transformed input, products, output      */
    int ih, iw, oh, ow, th, tw;
    int accumulate;               /* y += the result (no epilogue)            */
    const kdc__gemm_epilogue *ep; /* res of this image, or NULL               */
    kdc__sched_ch in, out;        /* splits of the two transforms             */
} kdc__wino_job;

/* Input transform of channels [c0, c1). Per tile row: the four input rows,
 * zero-padded to 2 tw + 2 columns, are combined row-wise (B^T d) over the
 * whole width, then column-wise per tile (... B). */
static void kdc__wino_in_task(void *ctx, int t)
{
    const kdc__wino_job *j = ctx;
    const int tw = j->tw, w2 = 2 * tw + 2, cin = j->cin;
    const size_t nt = (size_t)j->th * tw, xs = (size_t)cin * nt;
    float rows[4][2 * KDC__WINO_MAX_OW + 4], u[4][2 * KDC__WINO_MAX_OW + 4];
    int b0, c0, c1;
    kdc__sched_ch_range(&j->in, t, cin, &b0, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        const float *plane = j->x + (size_t)c * j->ih * j->iw;
        float *vc = j->v + (size_t)c * nt;
        for (int ty = 0; ty < j->th; ty++) {
            for (int r = 0; r < 4; r++) {
                const int y = 2 * ty - 1 + r;
                memset(rows[r], 0, (size_t)w2 * sizeof(float));
                if (y >= 0 && y < j->ih)
                    memcpy(rows[r] + 1, plane + (size_t)y * j->iw,
                           (size_t)(j->iw < w2 - 1 ? j->iw : w2 - 1) * sizeof(float));
            }
            for (int x = 0; x < w2; x++) {
                u[0][x] = rows[0][x] - rows[2][x];
                u[1][x] = rows[1][x] + rows[2][x];
                u[2][x] = rows[2][x] - rows[1][x];
                u[3][x] = rows[1][x] - rows[3][x];
            }
            float *vt = vc + (size_t)ty * tw;
            for (int i = 0; i < 4; i++) {
                float *v0 = vt + (size_t)(4 * i) * xs, *v1 = v0 + xs, *v2 = v1 + xs,
                      *v3 = v2 + xs;
                const float *ui = u[i];
                for (int tx = 0; tx < tw; tx++) {
                    const float a = ui[2 * tx], b = ui[2 * tx + 1], e = ui[2 * tx + 2],
                                f = ui[2 * tx + 3];
                    v0[tx] = a - e;
                    v1[tx] = b + e;
                    v2[tx] = e - b;
                    v3[tx] = b - f;
                }
            }
        }
    }
}

/* Output transform of channels [c0, c1): Y = A^T M A per tile, written
 * where inside the output, then the epilogue on the channel's plane. */
static void kdc__wino_out_task(void *ctx, int t)
{
    const kdc__wino_job *j = ctx;
    const int tw = j->tw, cout = j->cout;
    const size_t nt = (size_t)j->th * tw, ms = (size_t)cout * nt, ohw = (size_t)j->oh * j->ow;
    float s0[4][KDC__WINO_MAX_OW / 2 + 1], s1[4][KDC__WINO_MAX_OW / 2 + 1];
    float y0[KDC__WINO_MAX_OW + 2], y1[KDC__WINO_MAX_OW + 2];
    int b0, c0, c1;
    kdc__sched_ch_range(&j->out, t, cout, &b0, &c0, &c1);
    for (int o = c0; o < c1; o++) {
        const float *mo = j->m + (size_t)o * nt;
        float *yo = j->y + (size_t)o * ohw;
        for (int ty = 0; ty < j->th; ty++) {
            const float *mt = mo + (size_t)ty * tw;
            for (int col = 0; col < 4; col++) { /* A^T m: rows */
                const float *m0 = mt + (size_t)col * ms, *m1 = m0 + 4 * ms, *m2 = m1 + 4 * ms,
                            *m3 = m2 + 4 * ms;
                for (int tx = 0; tx < tw; tx++) {
                    s0[col][tx] = m0[tx] + m1[tx] + m2[tx];
                    s1[col][tx] = m1[tx] - m2[tx] - m3[tx];
                }
            }
            for (int tx = 0; tx < tw; tx++) { /* ... A: columns */
                y0[2 * tx] = s0[0][tx] + s0[1][tx] + s0[2][tx];
                y0[2 * tx + 1] = s0[1][tx] - s0[2][tx] - s0[3][tx];
                y1[2 * tx] = s1[0][tx] + s1[1][tx] + s1[2][tx];
                y1[2 * tx + 1] = s1[1][tx] - s1[2][tx] - s1[3][tx];
            }
            float *r0 = yo + (size_t)(2 * ty) * j->ow, *r1 = r0 + j->ow;
            const int two = 2 * ty + 1 < j->oh;
            if (j->accumulate) {
                for (int x = 0; x < j->ow; x++)
                    r0[x] += y0[x];
                for (int x = 0; two && x < j->ow; x++)
                    r1[x] += y1[x];
                continue;
            }
            memcpy(r0, y0, (size_t)j->ow * sizeof(float));
            if (two)
                memcpy(r1, y1, (size_t)j->ow * sizeof(float));
        }
        if (j->ep)
            j->gk->epilogue(j->ep, yo, ohw, o, 1, j->ep->res ? j->ep->res + (size_t)o * ohw : NULL,
                            ohw, (int)ohw);
    }
}

/* One conv of n images: cin channels of h x w in x, cout channels out
 * (same size) into y, stored with the epilogue ep or added (accumulate). */
static void kdc__wino_run(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk, int cin,
                          int cout, const float *u, const float *x, int n, int h, int w, float *y,
                          const kdc__gemm_epilogue *ep, int accumulate)
{
    const size_t hw = (size_t)h * w;
    const int th = kdc__wino_tiles(h), tw = kdc__wino_tiles(w), threads = kdc__pool_threads(pool);
    const size_t nt = (size_t)th * tw;
    for (int b = 0; b < n; b++) {
        kdc__gemm_epilogue eb;
        if (ep) {
            eb = *ep;
            if (eb.res)
                eb.res += (size_t)b * cout * hw;
        }
        kdc__wino_job j = {.cin = cin, .cout = cout, .gk = gk, .x = x + (size_t)b * cin * hw,
                           .v = ws->wino_v, .m = ws->wino_m, .y = y + (size_t)b * cout * hw,
                           .ih = h, .iw = w, .oh = h, .ow = w, .th = th, .tw = tw,
                           .accumulate = accumulate, .ep = ep ? &eb : NULL};
        /* each input value is read into four tiles' rows; each output
         * channel reads 16 products per tile */
        kdc__sched_channels(1, cin, 16.0 * nt, KDC__SCHED_WIDE_CHUNK, threads, &j.in);
        kdc__sched_channels(1, cout, 20.0 * nt, KDC__SCHED_WIDE_CHUNK, threads, &j.out);
        kdc__pool_run_capped(pool, j.in.jobs, j.in.threads, kdc__wino_in_task, &j);
        kdc__gemm_batch(pool, ws, gk, u, kdc__gemm_packed_size(cout, cin, gk->mr), cin, cout,
                        (int)nt, ws->wino_v, (size_t)cin * nt, ws->wino_m, (size_t)cout * nt, 16);
        kdc__pool_run_capped(pool, j.out.jobs, j.out.threads, kdc__wino_out_task, &j);
    }
}

void kdc__conv2d_wino(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                      const kdc__conv_param *cp, const float *u, const float *x, int n, int ih,
                      int iw, float *y, int oh, int ow, const kdc__gemm_epilogue *ep)
{
    (void)oh;
    (void)ow; /* = ih, iw: stride 1, padding 1 */
    kdc__gemm_epilogue e = {0};
    if (ep)
        e = *ep;
    e.bias = cp->bias;
    kdc__wino_run(pool, ws, gk, cp->cin, cp->cout, u, x, n, ih, iw, y,
                  ep || cp->bias ? &e : NULL, 0);
}

void kdc__conv2d_backward_data_wino(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                                    const kdc__conv_param *cp, const float *ut, const float *dy,
                                    int n, int h, int w, float *dx)
{
    kdc__wino_run(pool, ws, gk, cp->cout, cp->cin, ut, dy, n, h, w, dx, NULL, 1);
}
