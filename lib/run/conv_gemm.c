/* conv_gemm.c - dense convolutions and fully connected layers lowered to
 * the packed GEMM (lib/kernels/gemm.c), forward and backward-data, with the
 * run's workspaces. How the work is split into jobs is sched.h's decision.
 *
 * Forward, per image: Y (cout x oh*ow) = W (cout x cin*kh*kw) * X', with
 * X' the input itself for a 1x1 stride-1 unpadded conv (NCHW is already
 * cin x h*w), else its im2col, read on the fly while B is packed.
 * Backward-data: dX += W^T dY for 1x1 stride 1; else the columns
 * W^T dY (cin*kh*kw x oh*ow) are formed, then added back into dX by
 * col2im, split over input channels. */
#include <stdlib.h>
#include <string.h>

#include "conv_gemm.h"
#include "graph.h"
#include "sched.h"

kdc_status kdc__work_reserve(kdc__work *ws, int nslots)
{
    if (ws->nslots >= nslots)
        return KDC_OK;
    free(ws->mem);
    free(ws->busy);
    ws->mem = NULL;
    ws->busy = NULL;
    ws->nslots = 0;
    ws->mem = kdc__falloc((size_t)nslots * KDC__GEMM_WORK);
    ws->busy = calloc((size_t)nslots, sizeof *ws->busy);
    if (!ws->mem || !ws->busy) {
        free(ws->mem);
        free(ws->busy);
        ws->mem = NULL;
        ws->busy = NULL;
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for %d GEMM workspaces", nslots);
    }
    for (int i = 0; i < nslots; i++)
        atomic_init(&ws->busy[i], 0);
    ws->nslots = nslots;
    return KDC_OK;
}

void kdc__work_free(kdc__work *ws)
{
    free(ws->mem);
    free(ws->busy);
    free(ws->cols);
    free(ws->xpad);
    free(ws->wide);
    free(ws->wt);
    free(ws->bpack);
    free(ws->wino_v);
    free(ws->wino_m);
    memset(ws, 0, sizeof *ws);
}

/* Every conv but the plain 1x1 stride-1 one (which is a GEMM on the
 * input as it is) runs on a zero-padded copy of the input split into
 * stride x stride phase planes, Q[a][b][c][i][j] = xpad[c][s*i + a][s*j + b]
 * (Hq x Wq each), and computes "wide" output rows of Wq columns (the last
 * Wq - ow of each row are thrown away). Tap (ky, kx) of output (oy, ox)
 * is then Q[ky % s][kx % s][c][oy + ky / s][ox + kx / s]: every row of the
 * im2col is one contiguous run of a phase plane, and B packs with plain
 * copies. Only the phases some tap reads are filled. */
typedef struct kdc__wide_geom {
    int s, hp, wp, hq, wq;
    size_t pplane, plane, nw; /* phase plane, channel (s*s phases), wide row run */
} kdc__wide_geom;

static int kdc__is_wide(const kdc__conv_param *cp)
{
    return cp->stride > 1 || cp->kh > 1 || cp->kw > 1 || cp->pad > 0;
}

static void kdc__wide_geometry(const kdc__conv_param *cp, int ih, int iw, int oh, int ow,
                               kdc__wide_geom *g)
{
    g->s = cp->stride;
    g->hp = ih + 2 * cp->pad;
    g->wp = iw + 2 * cp->pad;
    g->hq = (g->hp + g->s - 1) / g->s;
    g->wq = (g->wp + g->s - 1) / g->s;
    g->pplane = (size_t)g->hq * g->wq;
    g->plane = (size_t)g->s * g->s * g->pplane;
    g->nw = (size_t)(oh - 1) * g->wq + (size_t)ow;
}

static void kdc__wide_sizes(const kdc__conv_param *cp, int ih, int iw, int oh, int ow,
                            size_t *xpad, size_t *wide)
{
    kdc__wide_geom g;
    kdc__wide_geometry(cp, ih, iw, oh, ow, &g);
    *xpad = (size_t)cp->cin * g.plane;
    *wide = (size_t)cp->cout * g.nw;
}

kdc_status kdc__work_wt(kdc__work *ws, size_t n)
{
    if (ws->wt_cap >= n)
        return KDC_OK;
    free(ws->wt);
    ws->wt = kdc__falloc(n);
    ws->wt_cap = ws->wt ? n : 0;
    if (!ws->wt)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for %zu transposed weights", n);
    return KDC_OK;
}

void kdc__work_release_forward(kdc__work *ws)
{
    if (ws->xpad_cap + ws->wide_cap <= (size_t)KDC__COLS_MAX)
        return;
    free(ws->xpad);
    free(ws->wide);
    ws->xpad = ws->wide = NULL;
    ws->xpad_cap = ws->wide_cap = 0;
}

/* *p holds at least need floats, or 0 (no error reported; the old buffer
 * kept): for a buffer with a fallback. */
static int kdc__room(float **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 1;
    float *q = kdc__falloc(need);
    if (!q)
        return 0;
    free(*p);
    *p = q;
    *cap = need;
    return 1;
}

kdc_status kdc__grow(float **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return KDC_OK;
    free(*p); /* first: the old and the new one never both held */
    *p = NULL;
    *cap = 0;
    if (!kdc__room(p, cap, need))
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for a %zu-float conv buffer",
                         need);
    return KDC_OK;
}

kdc_status kdc__conv_reserve(kdc__work *ws, const kdc__conv_param *cp, int ih, int iw, int oh,
                             int ow)
{
    if (!kdc__is_wide(cp) || oh < 1 || ow < 1)
        return KDC_OK;
    size_t xpad, wide;
    kdc__wide_sizes(cp, ih, iw, oh, ow, &xpad, &wide);
    kdc_status st = kdc__grow(&ws->xpad, &ws->xpad_cap, xpad);
    if (!st)
        st = kdc__grow(&ws->wide, &ws->wide_cap, wide);
    return st;
}

/* A free slot: at most nslots tasks run at once, so one is always free. */
static int kdc__slot_claim(kdc__work *ws)
{
    for (;;)
        for (int s = 0; s < ws->nslots; s++)
            if (!atomic_load_explicit(&ws->busy[s], memory_order_relaxed) &&
                !atomic_exchange_explicit(&ws->busy[s], 1, memory_order_acquire))
                return s;
}

static void kdc__slot_release(kdc__work *ws, int s)
{
    atomic_store_explicit(&ws->busy[s], 0, memory_order_release);
}

/* One GEMM over a batch, split into tasks of (image, row part, column
 * part). Row parts are whole mr panels, column parts whole nr panels. */
typedef struct kdc__gemm_job {
    const kdc__gemm_kernels *gk;
    kdc__work *ws;
    const float *a;
    size_t a_img;                /* floats from one image's A to the next (0) */
    int k, m, n;                 /* per image: C is m x n, depth k           */
    kdc__gemm_b b;               /* b.x of image 0                           */
    size_t b_img;                /* floats from one image's B source to next  */
    float *c;                    /* image 0's C                              */
    size_t c_img, ldc;
    int accumulate;
    const kdc__gemm_epilogue *ep;/* ep->res is image 0's                     */
    int mparts, nparts, mtiles, ntiles, threads;
    int cunit;                   /* column tiles per unit of the column split */
} kdc__gemm_job;

static void kdc__gemm_task(void *ctx, int t)
{
    const kdc__gemm_job *j = ctx;
    const int per = j->mparts * j->nparts;
    const int img = t / per, mi = t % per / j->nparts, ni = t % j->nparts;
    const int mr = j->gk->mr, nr = j->gk->nr;
    int m0 = kdc__sched_part(j->mtiles, j->mparts, mi) * mr;
    int m1 = kdc__sched_part(j->mtiles, j->mparts, mi + 1) * mr;
    const int cu = j->cunit, units = (j->ntiles + cu - 1) / cu;
    int n0 = kdc__sched_part(units, j->nparts, ni) * cu * nr;
    int n1 = kdc__sched_part(units, j->nparts, ni + 1) * cu * nr;
    if (m1 > j->m)
        m1 = j->m;
    if (n1 > j->n)
        n1 = j->n;
    if (m0 >= m1 || n0 >= n1)
        return;
    kdc__gemm_b b = j->b;
    b.x += img * j->b_img;
    if (b.packed)
        b.packed += img * (size_t)j->k * b.npad;
    kdc__gemm_epilogue ep, *epp = NULL;
    if (j->ep) {
        ep = *j->ep;
        if (ep.res)
            ep.res += img * j->c_img;
        if (ep.bmask) /* one mask row per row of C */
            ep.bmask += img * (size_t)j->m * ep.bwords;
        epp = &ep;
    }
    const int s = kdc__slot_claim(j->ws);
    kdc__gemm(j->gk, j->a + img * j->a_img, j->k, m0, m1, &b, n0, n1, j->c + img * j->c_img, j->ldc,
              j->accumulate, epp, j->ws->mem + (size_t)s * KDC__GEMM_WORK);
    kdc__slot_release(j->ws, s);
    /* the ReLU masks of this part of C (the output planes, ldc = n): whole
     * rows at once, else row by row from column n0, a multiple of 64 (the
     * split's unit), so that no two parts write one mask word */
    if (epp && epp->rec) {
        const size_t words = ((size_t)j->n + 63) / 64;
        const float *y = j->c + img * j->c_img;
        uint64_t *mk = epp->rec->mask + img * (size_t)j->m * words;
        if (j->nparts == 1)
            epp->rec->fn(y, mk, (size_t)j->n, epp->clamp, m0, m1);
        else
            for (int r = m0; r < m1; r++)
                epp->rec->fn(y + (size_t)r * j->ldc + n0, mk + (size_t)r * words + n0 / 64,
                             (size_t)(n1 - n0), epp->clamp, 0, 1);
    }
}

/* The tiles of C (m x n) and their parts for the threads (sched.h). A
 * GEMM narrower than one column panel (a fully connected layer: n = 1)
 * streams all of A for those few columns, as slowly as a whole panel's
 * multiply-adds take: it is weighed as nr columns, so that its rows are
 * split over the threads (MobileNetV1's and ResNet-50's on 1 thread at
 * 2: 4 and 8 MB of weights, 0.2 and 0.44 ms). */
static void kdc__gemm_split(kdc__gemm_job *j, int nimg, int threads)
{
    const int mr = j->gk->mr, nr = j->gk->nr;
    j->mtiles = (j->m + mr - 1) / mr;
    j->ntiles = (j->n + nr - 1) / nr;
    const double cols = j->n > nr ? j->n : nr;
    j->threads = kdc__sched_gemm(j->mtiles, j->ntiles, nimg, (double)nimg * j->m * cols * j->k,
                                 threads, &j->mparts, &j->nparts);
}

/* B packed once for all row parts: a task per (image, depth block, group
 * of KDC__BPACK_PANELS column panels). */
enum { KDC__BPACK_PANELS = 4 };

typedef struct kdc__bpack_job {
    const kdc__gemm_job *j;
    float *dst;
    int nblk, ngrp;
} kdc__bpack_job;

static void kdc__bpack_task(void *ctx, int t)
{
    const kdc__bpack_job *p = ctx;
    const kdc__gemm_job *j = p->j;
    const int nr = j->gk->nr;
    const int img = t / (p->nblk * p->ngrp), blk = t / p->ngrp % p->nblk, grp = t % p->ngrp;
    const int pc = blk * KDC__GEMM_KC, kc = j->k - pc < KDC__GEMM_KC ? j->k - pc : KDC__GEMM_KC;
    const int n0 = grp * KDC__BPACK_PANELS * nr;
    const int nc = j->n - n0 < KDC__BPACK_PANELS * nr ? j->n - n0 : KDC__BPACK_PANELS * nr;
    const size_t npad = (size_t)j->ntiles * nr;
    kdc__gemm_b b = j->b;
    b.x += img * j->b_img;
    kdc__gemm_pack_b_block(&b, pc, kc, n0, nc, nr,
                           p->dst + (img * (size_t)j->k + pc) * npad + (size_t)(n0 / nr) * kc * nr);
}

/* When the split cuts the rows into parts, every part would pack the same
 * B (for ResNet-50's layer3 and layer4 at batch 1 that is 8 packings of
 * each B at 1 and 2 threads): pack it once into ws->bpack, in parallel,
 * if it fits in KDC__COLS_MAX floats (else each part packs, as before).
 * Packing copies, so the results are the same bits either way. */
static void kdc__gemm_prepack(kdc__pool *pool, kdc__gemm_job *j, int nimg)
{
    if (j->mparts < 2 || kdc__gemm_b_inplace(j->gk, &j->b, j->m, j->k))
        return; /* one part, or B read in place by every part */
    const size_t npad = (size_t)j->ntiles * j->gk->nr;
    const size_t need = (size_t)nimg * j->k * npad;
    if (need > (size_t)KDC__COLS_MAX)
        return;
    if (j->ws->bpack_cap < need) {
        free(j->ws->bpack);
        j->ws->bpack = kdc__falloc(need);
        j->ws->bpack_cap = j->ws->bpack ? need : 0;
        if (!j->ws->bpack)
            return; /* no room: each part packs its own */
    }
    kdc__bpack_job p = {.j = j, .dst = j->ws->bpack,
                        .nblk = (j->k + KDC__GEMM_KC - 1) / KDC__GEMM_KC,
                        .ngrp = (j->ntiles + KDC__BPACK_PANELS - 1) / KDC__BPACK_PANELS};
    const int tasks = nimg * p.nblk * p.ngrp;
    kdc__pool_run_capped(pool, tasks, j->threads < tasks ? j->threads : tasks, kdc__bpack_task,
                         &p);
    j->b.packed = j->ws->bpack;
    j->b.npad = npad;
}

static void kdc__gemm_job_run(kdc__pool *pool, kdc__gemm_job *j, int nimg)
{
    kdc__gemm_split(j, nimg, kdc__pool_threads(pool));
    /* column parts of whole 64-column units where they make ReLU masks
     * (every table's nr divides 64) */
    j->cunit = j->ep && j->ep->rec && j->nparts > 1 ? 64 / j->gk->nr : 1;
    kdc__gemm_prepack(pool, j, nimg);
    kdc__pool_run_capped(pool, nimg * j->mparts * j->nparts, j->threads, kdc__gemm_task, j);
    j->b.packed = NULL; /* callers reuse j with another B */
}

void kdc__gemm_batch(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk, const float *a,
                     size_t a_img, int k, int m, int n, const float *b, size_t b_img, float *c,
                     size_t c_img, int nimg)
{
    kdc__gemm_job j = {.gk = gk, .ws = ws, .a = a, .a_img = a_img, .k = k, .m = m, .n = n,
                       .b = {.x = b, .ld = (size_t)n}, .b_img = b_img, .c = c, .c_img = c_img,
                       .ldc = (size_t)n};
    kdc__gemm_job_run(pool, &j, nimg);
}

static int kdc__is_pointwise(const kdc__conv_param *cp)
{
    return cp->kh == 1 && cp->kw == 1 && cp->stride == 1 && cp->pad == 0;
}

/* The padded copy of one image (channel chunks) and the copy of the wide
 * output rows into y, with the epilogue when the GEMM could not apply it
 * (a residual), in row chunks. */
typedef struct kdc__wide_job {
    const kdc__conv_param *cp;
    const float *x;              /* one image                                */
    float *xpad, *wide, *y;
    int ih, iw, oh, ow;
    const kdc__wide_geom *g;
    const kdc__gemm_kernels *gk;
    const kdc__gemm_epilogue *ep;/* res of this image                        */
    const kdc__mask_rec *rec;    /* or NULL; else this image's ReLU mask,   */
    float clamp;                 /* made by the copy                         */
    kdc__sched_ch pad, unwide;   /* splits of the two copies                 */
} kdc__wide_job;

static void kdc__pad_task(void *ctx, int t)
{
    const kdc__wide_job *j = ctx;
    const kdc__wide_geom *g = j->g;
    const int p = j->cp->pad, s = g->s;
    const int pa = s < j->cp->kh ? s : j->cp->kh, pb = s < j->cp->kw ? s : j->cp->kw;
    int b0, c0, c1;
    kdc__sched_ch_range(&j->pad, t, j->cp->cin, &b0, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        const float *src = j->x + (size_t)c * j->ih * j->iw;
        for (int a = 0; a < pa; a++)
            for (int b = 0; b < pb; b++) {
                float *d = j->xpad + (size_t)c * g->plane + (size_t)(a * s + b) * g->pplane;
                for (int i = 0; i < g->hq; i++, d += g->wq) {
                    const int y = s * i + a - p; /* input row */
                    if (y < 0 || y >= j->ih) {
                        memset(d, 0, (size_t)g->wq * sizeof *d);
                        continue;
                    }
                    const float *row = src + (size_t)y * j->iw;
                    if (s == 1) {
                        memset(d, 0, (size_t)p * sizeof *d);
                        memcpy(d + p, row, (size_t)j->iw * sizeof *d);
                        memset(d + p + j->iw, 0, (size_t)(g->wq - p - j->iw) * sizeof *d);
                        continue;
                    }
                    /* column q reads input column s q + b - p: zeros
                     * outside [0, iw), a strided copy between */
                    const int off = b - p;
                    int lo = off < 0 ? (-off + s - 1) / s : 0;
                    int hi = j->iw - 1 - off >= 0 ? (j->iw - 1 - off) / s + 1 : 0;
                    hi = hi < g->wq ? hi : g->wq;
                    lo = lo < hi ? lo : hi;
                    memset(d, 0, (size_t)lo * sizeof *d);
                    if (s == 2) /* the stems' stride: a loop the compiler vectorizes */
                        for (int q = lo; q < hi; q++)
                            d[q] = row[2 * q + off];
                    else
                        for (int q = lo; q < hi; q++)
                            d[q] = row[s * q + off];
                    memset(d + hi, 0, (size_t)(g->wq - hi) * sizeof *d);
                }
            }
    }
}

static void kdc__unwide_task(void *ctx, int t)
{
    const kdc__wide_job *j = ctx;
    const int cout = j->cp->cout;
    const size_t ohw = (size_t)j->oh * j->ow, nw = j->g->nw;
    int b0, c0, c1;
    kdc__sched_ch_range(&j->unwide, t, cout, &b0, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        float *d = j->y + (size_t)c * ohw;
        for (int r = 0; r < j->oh; r++)
            memcpy(d + (size_t)r * j->ow, j->wide + (size_t)c * nw + (size_t)r * j->g->wq,
                   (size_t)j->ow * sizeof *d);
        if (j->ep)
            j->gk->epilogue(j->ep, d, ohw, c, 1, j->ep->res ? j->ep->res + (size_t)c * ohw : NULL,
                            ohw, (int)ohw);
    }
    if (j->rec)
        j->rec->fn(j->y, j->rec->mask, ohw, j->clamp, c0, c1);
}

/* Whether a conv on the wide-row path (above) pays: not on a map of at
 * most KDC__WIDE_MIN_PANELS column panels (ResNet's 7 x 7 layer4), where
 * the Wq - ow wasted columns of each row cost whole panels (61 columns, 4
 * panels, for 49 outputs, which are 3 panels and the one column that the
 * narrow kernel takes) and the im2col packing is cheap. */
enum { KDC__WIDE_MIN_PANELS = 4 };
static int kdc__wide_pays(const kdc__gemm_kernels *gk, const kdc__conv_param *cp, int oh, int ow)
{
    return kdc__is_wide(cp) && oh > 0 && ow > 0 &&
           (size_t)oh * ow > (size_t)KDC__WIDE_MIN_PANELS * gk->nr;
}

void kdc__conv2d_fast(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                      const kdc__conv_param *cp, const float *x, int n, int ih, int iw, float *y,
                      int oh, int ow, const kdc__gemm_epilogue *ep)
{
    const size_t ohw = (size_t)oh * ow;
    kdc__gemm_epilogue e = {0};
    if (ep)
        e = *ep;
    e.bias = cp->bias;
    /* the ReLU mask, if asked for: made by whichever tasks write y */
    kdc__mask_rec *rec = e.rec;
    e.rec = NULL;
    const size_t mwords = (ohw + 63) / 64;
    if (kdc__conv_is_stem(gk, cp)) {
        kdc__conv_stem(pool, gk, cp, x, n, ih, iw, y, oh, ow, ep || cp->bias ? &e : NULL, rec);
        return;
    }
    size_t xpad_need, wide_need;
    if (kdc__wide_pays(gk, cp, oh, ow) &&
        (kdc__wide_sizes(cp, ih, iw, oh, ow, &xpad_need, &wide_need),
         ws->xpad_cap >= xpad_need && ws->wide_cap >= wide_need)) {
        kdc__wide_geom g;
        kdc__wide_geometry(cp, ih, iw, oh, ow, &g);
        const int has_ep = ep || cp->bias;
        /* The epilogue runs in the GEMM, on the wide rows, unless it has a
         * residual (laid out like y, not like the wide rows): then the copy
         * into y applies it. Wide rows as wide as the output's (a 1x1
         * stride-2 conv on an even width) are the output itself: the GEMM
         * writes y, residual and all, and there is nothing to copy. */
        const int direct = g.wq == ow;
        const int in_gemm = has_ep && (direct || !e.res);
        for (int b = 0; b < n; b++) {
            kdc__gemm_epilogue eb = e;
            if (eb.res)
                eb.res += (size_t)b * cp->cout * ohw;
            kdc__mask_rec rb;
            if (rec) {
                rb = *rec;
                rb.mask += (size_t)b * cp->cout * mwords;
            }
            kdc__wide_job wj = {.cp = cp, .x = x + (size_t)b * cp->cin * ih * iw,
                                .xpad = ws->xpad, .wide = ws->wide,
                                .y = y + (size_t)b * cp->cout * ohw, .ih = ih, .iw = iw,
                                .oh = oh, .ow = ow, .g = &g, .gk = gk,
                                .ep = has_ep && !in_gemm ? &eb : NULL,
                                .rec = rec && !direct ? &rb : NULL, .clamp = e.clamp};
            if (rec && direct) /* the GEMM writes y: its tasks make the mask */
                eb.rec = &rb;
            const int threads = kdc__pool_threads(pool);
            kdc__sched_channels(1, cp->cin, (double)g.plane, KDC__SCHED_WIDE_CHUNK, threads,
                                &wj.pad);
            kdc__sched_channels(1, cp->cout, 2.0 * ohw, KDC__SCHED_WIDE_CHUNK, threads,
                                &wj.unwide);
            kdc__pool_run_capped(pool, wj.pad.jobs, wj.pad.threads, kdc__pad_task, &wj);
            kdc__gemm_job j = {
                .gk = gk, .ws = ws, .a = cp->packed, .k = cp->cin * cp->kh * cp->kw,
                .m = cp->cout, .n = (int)g.nw,
                .b = {.x = ws->xpad, .ld = (size_t)g.wq, .im2col = 2, .kh = cp->kh,
                      .kw = cp->kw, .stride = g.s, .plane = g.plane, .pplane = g.pplane},
                .c = direct ? wj.y : ws->wide, .ldc = g.nw, .ep = in_gemm ? &eb : NULL,
            };
            kdc__gemm_job_run(pool, &j, 1);
            if (!direct)
                kdc__pool_run_capped(pool, wj.unwide.jobs, wj.unwide.threads,
                                     kdc__unwide_task, &wj);
        }
        if (rec)
            rec->done = 1;
        return;
    }
    /* A LINEAR (or a 1x1 conv of 1x1 maps) over a batch: one GEMM with the
     * images as its columns (their inputs gathered, the outputs scattered
     * back), so that the weights stream from memory once, not once per
     * image (ResNet-50's fc: 8 MB). Each output is the same chain, so the
     * same bits. */
    const size_t lin_need = (size_t)n * (cp->cin + cp->cout);
    if (ohw == 1 && n > 1 && kdc__is_pointwise(cp) && !e.res && !rec &&
        kdc__room(&ws->cols, &ws->cols_cap, lin_need)) {
        float *bt = ws->cols, *ct = bt + (size_t)n * cp->cin;
        for (int k = 0; k < cp->cin; k++)
            for (int b = 0; b < n; b++)
                bt[(size_t)k * n + b] = x[(size_t)b * cp->cin + k];
        kdc__gemm_job jb = {.gk = gk, .ws = ws, .a = cp->packed, .k = cp->cin, .m = cp->cout,
                            .n = n, .b = {.x = bt, .ld = (size_t)n}, .c = ct,
                            .ldc = (size_t)n, .ep = (ep || cp->bias) ? &e : NULL};
        kdc__gemm_job_run(pool, &jb, 1);
        for (int b = 0; b < n; b++)
            for (int o = 0; o < cp->cout; o++)
                y[(size_t)b * cp->cout + o] = ct[(size_t)o * n + b];
        return;
    }
    kdc__gemm_job j = {
        .gk = gk, .ws = ws, .a = cp->packed, .k = cp->cin * cp->kh * cp->kw, .m = cp->cout,
        .n = (int)ohw,
        .b = {.x = x, .ld = ohw, .im2col = !kdc__is_pointwise(cp), .ih = ih, .iw = iw,
              .kh = cp->kh, .kw = cp->kw, .stride = cp->stride, .pad = cp->pad, .oh = oh,
              .ow = ow},
        .b_img = (size_t)cp->cin * ih * iw,
        .c = y, .c_img = (size_t)cp->cout * ohw, .ldc = ohw,
        .ep = (ep || cp->bias) ? &e : NULL,
    };
    e.rec = rec;
    kdc__gemm_job_run(pool, &j, n);
    if (rec)
        rec->done = j.ep != NULL;
}

/* col2im of one image: dx += the columns, a task per (chunk of input
 * channels, band of input rows); every dx element receives its terms in
 * (ky, kx) order whatever the split. Bands let the 3-channel stem spread
 * over threads. The columns may hold only output rows [oa, ob) (a memory
 * band, below); then only input rows [ya, yb), whose every term lies in
 * those output rows, are written. */
typedef struct kdc__col2im_job {
    const kdc__conv_param *cp;
    const float *cols;
    float *dx;
    int ih, iw, oh, ow;
    int oa, ob, ya, yb;
    int bands;
} kdc__col2im_job;

static void kdc__col2im_task(void *ctx, int t)
{
    const kdc__col2im_job *j = ctx;
    const kdc__conv_param *cp = j->cp;
    const size_t ihw = (size_t)j->ih * j->iw, ohw = (size_t)(j->ob - j->oa) * j->ow;
    const int band = t % j->bands;
    const int ya = j->ya + kdc__sched_part(j->yb - j->ya, j->bands, band);
    const int yb = j->ya + kdc__sched_part(j->yb - j->ya, j->bands, band + 1);
    int c0, c1;
    kdc__sched_chunk_range(t / j->bands, KDC__SCHED_COL2IM_CHUNK, cp->cin, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        float *xo = j->dx + (size_t)c * ihw;
        for (int ky = 0; ky < cp->kh; ky++) {
            int y0, y1;
            kdc__valid_range(j->ih, j->oh, cp->stride, cp->pad, ky, &y0, &y1);
            y0 = y0 > j->oa ? y0 : j->oa;
            y1 = y1 < j->ob ? y1 : j->ob;
            for (int kx = 0; kx < cp->kw; kx++) {
                const float *col = j->cols + ((size_t)(c * cp->kh + ky) * cp->kw + kx) * ohw;
                int x0, x1;
                kdc__valid_range(j->iw, j->ow, cp->stride, cp->pad, kx, &x0, &x1);
                for (int yo = y0; yo < y1; yo++) {
                    const int iy = yo * cp->stride + ky - cp->pad;
                    if (iy < ya || iy >= yb)
                        continue;
                    float *xr = xo + (size_t)iy * j->iw + kx - cp->pad;
                    const float *cr = col + (size_t)(yo - j->oa) * j->ow;
                    for (int xi = x0; xi < x1; xi++)
                        xr[xi * cp->stride] += cr[xi];
                }
            }
        }
    }
}

/* Output rows [*oa, *ob) that input rows [ya, yb) receive terms from. */
static void kdc__band_rows(const kdc__conv_param *cp, int oh, int ya, int yb, int *oa, int *ob)
{
    const int lo = ya + cp->pad - (cp->kh - 1), hi = yb - 1 + cp->pad;
    *oa = lo <= 0 ? 0 : (lo + cp->stride - 1) / cp->stride;
    *ob = hi < 0 ? 0 : hi / cp->stride + 1;
    if (*ob > oh)
        *ob = oh;
    if (*oa > *ob)
        *oa = *ob;
}

int kdc__conv_backward_overwrites(const kdc__conv_param *cp)
{
    return kdc__is_pointwise(cp);
}

/* The backward-data of a 1x1 stride-1 conv over n images of hw pixels: dx
 * (+)= W^T dy, one GEMM per image, with the epilogue ep (NULL: none). */
static void kdc__pointwise_backward(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                                    const kdc__conv_param *cp, const float *wt, const float *dy,
                                    int n, size_t hw, float *dx, int accumulate,
                                    const kdc__gemm_epilogue *ep)
{
    kdc__gemm_job j = {
        .gk = gk, .ws = ws, .a = wt, .k = cp->cout, .m = cp->cin, .n = (int)hw,
        .b = {.x = dy, .ld = hw},
        .b_img = (size_t)cp->cout * hw,
        .c = dx, .c_img = (size_t)cp->cin * hw, .ldc = hw,
        .accumulate = accumulate, .ep = ep,
    };
    kdc__gemm_job_run(pool, &j, n);
}

void kdc__conv2d_backward_data_through(kdc__pool *pool, kdc__work *ws,
                                       const kdc__gemm_kernels *gk, const kdc__conv_param *cp,
                                       const float *wt, const float *dy, int n, int hw,
                                       const kdc__gemm_epilogue *ep, float *dx)
{
    kdc__pointwise_backward(pool, ws, gk, cp, wt, dy, n, (size_t)hw, dx, 0, ep);
}

kdc_status kdc__conv2d_backward_data_fast(kdc__pool *pool, kdc__work *ws,
                                          const kdc__gemm_kernels *gk, const kdc__conv_param *cp,
                                          const float *wt, const float *dy, int n, int oh, int ow,
                                          float *dx, int ih, int iw, int accumulate)
{
    if (!accumulate && !kdc__conv_backward_overwrites(cp))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "conv backward: only a 1x1 stride-1 conv "
                         "overwrites its input gradient");
    const size_t ohw = (size_t)oh * ow, ihw = (size_t)ih * iw;
    if (kdc__is_pointwise(cp)) { /* ihw = ohw */
        kdc__pointwise_backward(pool, ws, gk, cp, wt, dy, n, ihw, dx, accumulate, NULL);
        return KDC_OK;
    }
    const int kk = cp->kh * cp->kw;
    kdc__gemm_job j = {
        .gk = gk, .ws = ws, .a = wt, .k = cp->cout, .m = cp->cin * kk, .n = (int)ohw,
        .b = {.x = dy, .ld = ohw},
        .b_img = (size_t)cp->cout * ohw,
        .ldc = ohw,
    };
    /* The columns of a large layer (a detector's 256-channel 3x3 convs at
     * 200 x 304: 560 MB) are formed in bands of input rows, each from the
     * output rows it needs (a few rows computed twice at the seams), so the
     * buffer stays near KDC__COLS_MAX floats. The band count depends on
     * the shapes only, and every dx element still gets its terms in the
     * same order: the same bits as one band. */
    const int bands = kdc__sched_mem_bands((double)j.m * ohw, ih);
    size_t need = 0;
    for (int band = 0; band < bands; band++) {
        int oa, ob;
        kdc__band_rows(cp, oh, kdc__sched_part(ih, bands, band),
                       kdc__sched_part(ih, bands, band + 1), &oa, &ob);
        const size_t cols = (size_t)j.m * (size_t)(ob - oa) * ow;
        need = cols > need ? cols : need;
    }
    kdc_status st = kdc__grow(&ws->cols, &ws->cols_cap, need);
    if (st)
        return st;
    for (int b = 0; b < n; b++)
        for (int band = 0; band < bands; band++) {
            const int ya = kdc__sched_part(ih, bands, band);
            const int yb = kdc__sched_part(ih, bands, band + 1);
            int oa, ob;
            kdc__band_rows(cp, oh, ya, yb, &oa, &ob);
            if (oa >= ob)
                continue;
            j.b.x = dy + b * j.b_img + (size_t)oa * ow;
            j.n = (ob - oa) * ow;
            j.ldc = (size_t)j.n;
            j.c = ws->cols;
            kdc__gemm_job_run(pool, &j, 1);
            const int chunks = kdc__sched_chunks(cp->cin, KDC__SCHED_COL2IM_CHUNK);
            const int threads = kdc__sched_cap((double)j.m * j.n, KDC__SCHED_MIN_FLOATS,
                                               kdc__pool_threads(pool));
            kdc__col2im_job cj = {.cp = cp, .cols = ws->cols,
                                  .dx = dx + b * (size_t)cp->cin * ihw, .ih = ih, .iw = iw,
                                  .oh = oh, .ow = ow, .oa = oa, .ob = ob, .ya = ya, .yb = yb,
                                  .bands = kdc__sched_bands(chunks, threads, yb - ya)};
            kdc__pool_run_capped(pool, chunks * cj.bands, threads, kdc__col2im_task, &cj);
        }
    return KDC_OK;
}
