/* forward.c - the forward executor: every node in order, each split into
 * jobs (sched.h) that run its op's task from the op table (op.h); dense
 * convs and LINEAR go through the GEMM (conv_gemm.c) with the rest of
 * their fused group in the epilogue, depthwise 3x3 convs through the
 * depthwise kernels with theirs. A recording pass (kdc_run_forward_grad)
 * also keeps what backward needs: the op table says which state. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "run.h"
#include "sched.h"
#include "conv_wino.h"

/* ------------------------------------------------------------------ */
/* Executing one node: the op table's task over (image, channel chunk) */

static void kdc__task_job(void *ctx, int t)
{
    const kdc__task *k = ctx;
    int b, c0, c1;
    if (k->backward) {
        kdc__sched_ch_range(&k->split, t, k->a.in_chw[0], &b, &c0, &c1);
        k->op->backward(&k->a, b, c0, c1);
    } else if (k->tangent) {
        kdc__sched_ch_range(&k->split, t, k->a.out_chw[0], &b, &c0, &c1);
        k->op->tangent(&k->a, b, c0, c1);
    } else {
        kdc__sched_ch_range(&k->split, t, k->a.out_chw[0], &b, &c0, &c1);
        k->op->forward(&k->a, b, c0, c1);
    }
}

void kdc__task_run(kdc_run *r, kdc__task *k)
{
    /* the larger side's planes weigh the work (a max-pool reads 4x what it
     * writes) */
    const int *s = k->backward ? k->a.in_chw : k->a.out_chw;
    const int *o = k->backward ? k->a.out_chw : k->a.in_chw;
    double plane = (double)s[1] * s[2];
    if (o && (double)o[0] * o[1] * o[2] > plane * s[0])
        plane = (double)o[0] * o[1] * o[2] / s[0];
    kdc__sched_channels_q(r->n, s[0], plane, KDC__SCHED_CH_CHUNK, k->quantum,
                          kdc__pool_threads(r->pool), &k->split);
    kdc__pool_run_capped(r->pool, k->split.jobs, k->split.threads, kdc__task_job, k);
}

/* Where node j's output is: its buffer, or the replacement of
 * kdc__run_forward_from. */
static const float *kdc__data(const kdc_run *r, int j)
{
    if (j < 0)
        return NULL;
    if (j == r->override_node)
        return r->override_data;
    return r->buf[r->slot[j]];
}

/* ReLU masks of a fused group's tail, from its output. */
typedef struct kdc__mask_task {
    const kdc__act_kernels *act;
    const float *y;
    uint64_t *mask;
    int C;
    size_t hw;
    float clamp;
    kdc__sched_ch split;
} kdc__mask_task;

static void kdc__mask_run(void *ctx, int t)
{
    const kdc__mask_task *k = ctx;
    int b, c0, c1;
    kdc__sched_ch_range(&k->split, t, k->C, &b, &c0, &c1);
    k->act->relu_mask(k->y + (size_t)b * k->C * k->hw,
                      k->mask + (size_t)b * k->C * ((k->hw + 63) / 64), k->hw, k->clamp, c0, c1);
}

/* The epilogue that runs the rest of the fused group headed by conv i. */
static void kdc__group_epilogue(const kdc_run *r, int i, int tail, kdc__gemm_epilogue *ep)
{
    const kdc_model *m = r->m;
    memset(ep, 0, sizeof *ep);
    if (tail == i)
        return;
    const kdc__node *af = &m->nodes[i + 1];
    ep->scale = af->p.affine.scale;
    ep->shift = af->p.affine.shift;
    if (tail == i + 2) {
        const kdc__node *t = &m->nodes[i + 2];
        ep->relu = 1;
        ep->clamp = t->p.act.clamp;
        if (t->op == KDC__OP_ADD_RELU)
            ep->res = kdc__data(r, t->in[0] == i + 1 ? t->in[1] : t->in[0]);
    }
}

/* A depthwise 3x3 conv with its fused group: per channel plane, the
 * depthwise kernel with the epilogue (the AVX2 kernel applies it before
 * each store, the others on the finished plane while it is in cache). */
typedef struct kdc__dw_task {
    const kdc_run *r;
    const kdc__node *nd;
    const float *x;
    float *y;
    const kdc__gemm_epilogue *ep; /* res of the whole batch, laid out like y */
    int C, ih, iw, oh, ow;
    kdc__sched_ch split;
} kdc__dw_task;

/* Whether the group runs eight channels at a time (the same bits as plane
 * by plane, faster where kdc__dw_c8_forward; no residual). */
static int kdc__dw_group_c8(const kdc_model *m, const kdc__gemm_epilogue *ep, int iw, int ow)
{
    return !ep->res && kdc__dw_c8_forward(m->dw, iw, ow);
}

static void kdc__dw_fused_run(void *ctx, int t)
{
    const kdc__dw_task *k = ctx;
    const kdc__conv_param *cp = &k->nd->p.conv;
    const kdc_model *m = k->r->m;
    int b, c0, c1;
    kdc__sched_ch_range(&k->split, t, k->C, &b, &c0, &c1);
    const size_t ihw = (size_t)k->ih * k->iw, ohw = (size_t)k->oh * k->ow;
    if (kdc__dw_group_c8(m, k->ep, k->iw, k->ow)) {
        for (int c = c0; c < c1; c += 8) {
            const size_t plane = (size_t)b * k->C + c;
            m->dw->dw3x3_c8(k->x + plane * ihw, ihw, k->ih, k->iw, cp->weight + 9 * (size_t)c,
                            cp->bias, k->y + plane * ohw, ohw, k->oh, k->ow, cp->stride, cp->pad,
                            k->ep, c, c1 - c < 8 ? c1 - c : 8);
        }
    } else {
        for (int c = c0; c < c1; c++) {
            const size_t plane = (size_t)b * k->C + c;
            float *y = k->y + plane * ohw;
            m->dw->dw3x3(k->x + plane * ihw, k->ih, k->iw, cp->weight + 9 * (size_t)c,
                         cp->bias ? cp->bias[c] : 0.0f, y, k->oh, k->ow, cp->stride, cp->pad,
                         k->ep, c, k->ep->res ? k->ep->res + plane * ohw : NULL);
        }
    }
    const kdc__mask_rec *rec = k->ep->rec;
    if (rec) /* these planes' ReLU masks, while they are in cache */
        rec->fn(k->y + (size_t)b * k->C * ohw, rec->mask + (size_t)b * k->C * ((ohw + 63) / 64),
                ohw, k->ep->clamp, c0, c1);
}

/* In a recording pass, the ReLU mask of the tail of the group headed by
 * i, to be made by the tasks that write the group's output: *rec filled
 * and returned, or NULL (no mask to record, or not this pass's). */
static kdc__mask_rec *kdc__group_rec(const kdc_run *r, int i, int tail, int record,
                                     kdc__mask_rec *rec)
{
    if (!record || tail <= i || kdc__op_table[r->m->nodes[tail].op]->record != KDC__RECORD_MASK)
        return NULL;
    *rec = (kdc__mask_rec){.fn = r->m->act->relu_mask, .mask = r->mask[tail]};
    return rec;
}

static void kdc__run_dw_group(kdc_run *r, int i, int record)
{
    const kdc__node *nd = &r->m->nodes[i];
    const int tail = r->fuse_tail[i];
    kdc__gemm_epilogue ep;
    kdc__group_epilogue(r, i, tail, &ep);
    kdc__mask_rec rec;
    ep.rec = kdc__group_rec(r, i, tail, record, &rec);
    const int *ic = r->chw + 3 * nd->in[0], *oc = r->chw + 3 * i;
    kdc__dw_task k = {.r = r, .nd = nd, .x = kdc__data(r, nd->in[0]),
                      .y = r->buf[r->slot[tail]], .ep = &ep, .C = oc[0], .ih = ic[1],
                      .iw = ic[2], .oh = oc[1], .ow = oc[2]};
    /* 9 multiply-adds an output: weigh them like 4 floats of a copy; whole
     * groups of eight channels for the eight-channel kernel */
    kdc__sched_channels_q(r->n, k.C, 4.0 * k.oh * k.ow + (double)k.ih * k.iw,
                          KDC__SCHED_CH_CHUNK, kdc__dw_group_c8(r->m, &ep, k.iw, k.ow) ? 8 : 1,
                          kdc__pool_threads(r->pool), &k.split);
    kdc__pool_run_capped(r->pool, k.split.jobs, k.split.threads, kdc__dw_fused_run, &k);
    if (ep.rec)
        r->mask_made = tail;
}

/* A dense conv or LINEAR on the GEMM, with the rest of its fused group:
 * by Winograd where it applies (conv_wino.h), else the direct GEMM. */
static void kdc__run_gemm_node(kdc_run *r, int i, int record)
{
    const kdc_model *m = r->m;
    const kdc__node *nd = &m->nodes[i];
    const int tail = r->fuse_tail[i] ? r->fuse_tail[i] : i;
    kdc__gemm_epilogue ep;
    kdc__group_epilogue(r, i, tail, &ep);
    const int *ic = r->chw + 3 * nd->in[0], *oc = r->chw + 3 * i;
    const float *u;
    /* without memory for the transformed weights, the direct conv */
    if (r->wino && kdc__wino_eligible(&nd->p.conv, oc[1], oc[2]) &&
        !kdc__run_weights(r, i, KDC__DERIVED_WINO, &u)) {
        kdc__conv2d_wino(r->pool, &r->ws, m->gemm, &nd->p.conv, u, kdc__data(r, nd->in[0]), r->n,
                         ic[1], ic[2], r->buf[r->slot[tail]], oc[1], oc[2],
                         tail > i ? &ep : NULL);
        return;
    }
    /* the ReLU mask by the conv's tasks where they can (kdc__mask_rec) */
    kdc__mask_rec rec;
    ep.rec = kdc__group_rec(r, i, tail, record, &rec);
    kdc__conv2d_fast(r->pool, &r->ws, m->gemm, &nd->p.conv, kdc__data(r, nd->in[0]), r->n, ic[1],
                     ic[2], r->buf[r->slot[tail]], oc[1], oc[2], tail > i ? &ep : NULL);
    if (ep.rec && rec.done)
        r->mask_made = tail;
}

static void kdc__run_node(kdc_run *r, int i, int record)
{
    const kdc__node *nd = &r->m->nodes[i];
    if (r->fused[i]) {
        /* computed by the head of its group; a recording pass still needs
         * the ReLU mask of the group's output */
        if (!record || kdc__op_table[nd->op]->record != KDC__RECORD_MASK)
            return;
        if (r->mask_made == i) { /* made by the head's tasks */
            r->mask_made = -1;
            return;
        }
        const int *s = r->chw + 3 * i;
        kdc__mask_task k = {.act = r->m->act, .y = r->buf[r->slot[i]], .mask = r->mask[i],
                            .C = s[0], .hw = (size_t)s[1] * s[2], .clamp = nd->p.act.clamp};
        kdc__sched_channels(r->n, k.C, (double)k.hw, KDC__SCHED_CH_CHUNK,
                            kdc__pool_threads(r->pool), &k.split);
        kdc__pool_run_capped(r->pool, k.split.jobs, k.split.threads, kdc__mask_run, &k);
        return;
    }
    if (kdc__conv_is_gemm(r->m, nd)) {
        kdc__run_gemm_node(r, i, record);
        return;
    }
    if (r->fuse_tail[i]) {
        kdc__run_dw_group(r, i, record);
        return;
    }
    const kdc__op_def *op = kdc__op_table[nd->op];
    kdc__task k = {
        .op = op,
        .a = {
            .m = r->m,
            .nd = nd,
            .mask = record && op->record == KDC__RECORD_MASK ? r->mask[i] : NULL,
            .argmax = record && op->record == KDC__RECORD_ARGMAX ? r->argmax[i] : NULL,
            .x = kdc__data(r, nd->in[0]),
            .x2 = kdc__data(r, nd->in[1]),
            .y = r->buf[r->slot[i]],
            .in_chw = nd->in[0] >= 0 ? r->chw + 3 * nd->in[0] : NULL,
            .in2_chw = nd->in[1] >= 0 ? r->chw + 3 * nd->in[1] : NULL,
            .out_chw = r->chw + 3 * i,
        },
    };
    kdc__task_run(r, &k);
}

/* Makes room for the backward state of nodes > from (ReLU masks, max-pool
 * winners) for the current plan. */
static kdc_status kdc__alloc_record(kdc_run *r, int from)
{
    const kdc_model *m = r->m;
    for (int i = from + 1; i < m->n_nodes; i++) {
        const kdc__node *nd = &m->nodes[i];
        const int *s = r->chw + 3 * i;
        const kdc__record rec = kdc__op_table[nd->op]->record;
        if (rec == KDC__RECORD_MASK) {
            size_t words = (size_t)r->n * s[0] * (((size_t)s[1] * s[2] + 63) / 64);
            if (r->mask_cap[i] < words) {
                free(r->mask[i]);
                r->mask[i] = malloc(words * sizeof **r->mask);
                r->mask_cap[i] = r->mask[i] ? words : 0;
                if (!r->mask[i])
                    return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for backward state");
            }
        } else if (rec == KDC__RECORD_ARGMAX) {
            size_t cnt = kdc__numel(r, i);
            if (r->argmax_cap[i] < cnt) {
                free(r->argmax[i]);
                r->argmax[i] = malloc(cnt * sizeof **r->argmax);
                r->argmax_cap[i] = r->argmax[i] ? cnt : 0;
                if (!r->argmax[i])
                    return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for backward state");
            }
        }
    }
    return KDC_OK;
}

/* The monotonic clock in milliseconds (layer timing). */
static double kdc__now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* Node i, its time added to layer_ms when timing. */
static void kdc__run_timed(kdc_run *r, int i, int record)
{
    if (!r->layer_ms) {
        kdc__run_node(r, i, record);
        return;
    }
    const double t0 = kdc__now_ms();
    kdc__run_node(r, i, record);
    r->layer_ms[i] += kdc__now_ms() - t0;
}

/* A plain pass over several images runs its nodes before the first
 * global pool or fully connected layer (the head; all of a detector's)
 * image by image, each as a batch of one in the first image's place of
 * every buffer, so that one image's activations stay in cache from layer
 * to layer (layer by layer, a batch of 8 at 224 x 224 streams 25 MB per
 * MobileNetV1 layer through memory); the head's outputs that the rest
 * reads are set aside per image and put back in batch layout, and the
 * rest (the pool and classifier, whose weights a batch shares) runs on
 * the batch. The same values: each image's are computed as at batch 1,
 * which gives the bits of any batch. Only where no layer is kept (the
 * buffers then hold one image's values); returns the head's end, or 0
 * for layer by layer. */
static int kdc__image_major_end(const kdc_run *r)
{
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
    if (r->n < 2 || r->override_node >= 0)
        return 0;
    int end = nn;
    for (int i = 1; i < nn; i++)
        if (m->nodes[i].op == KDC__OP_GAP || m->nodes[i].op == KDC__OP_LINEAR) {
            end = i;
            break;
        }
    for (int i = 0; i < nn - 1; i++)
        if (r->keep[i])
            return 0;
    /* only where an image's activations outweigh the weights they meet:
     * image by image, every image streams all of those weights again,
     * which layer by layer a batch shares (the convs' outputs of one image
     * at 224 x 224 against their weights: ResNet-50 11.1 M against 23.5 M,
     * 1.02x the time image by image at batch 8 on 1 thread; MobileNetV1
     * 5.0 M against 3.2 M, 0.91x) */
    double acts = 0.0, weights = 0.0; /* of the convs */
    for (int i = 1; i < end; i++) {
        const kdc__node *nd = &m->nodes[i];
        if (nd->op != KDC__OP_CONV)
            continue;
        acts += (double)kdc__numel(r, i) / r->n;
        weights += (double)nd->p.conv.cout * (nd->p.conv.cin / nd->p.conv.groups) *
                   nd->p.conv.kh * nd->p.conv.kw;
    }
    return end > 1 && acts > weights ? end : 0;
}

/* Nodes [1, end) image by image (kdc__image_major_end); afterwards the
 * outputs the rest reads (and the last node's, when end is the last) hold
 * the whole batch. KDC_ERR_NO_MEMORY. */
static kdc_status kdc__run_images(kdc_run *r, const float *input, int end)
{
    const kdc_model *m = r->m;
    const int nn = m->n_nodes, n = r->n;
    /* the outputs set aside: read from end on, or the last (r->want is
     * scratch once the pass is planned) */
    unsigned char *aside = r->want;
    memset(aside, 0, (size_t)nn);
    for (int t = end; t < nn; t++)
        for (int q = 0; q < 2; q++)
            if (m->nodes[t].in[q] >= 0 && m->nodes[t].in[q] < end)
                aside[m->nodes[t].in[q]] = 1;
    if (end == nn)
        aside[nn - 1] = 1;
    size_t per = 0; /* one image's floats of them */
    for (int j = 0; j < end; j++)
        if (aside[j])
            per += kdc__numel(r, j) / (size_t)n;
    if ((size_t)n * per > r->side_cap) {
        float *p = realloc(r->side, (size_t)n * per * sizeof *p);
        if (!p)
            return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for a batch's outputs");
        r->side = p;
        r->side_cap = (size_t)n * per;
    }
    const size_t img = kdc__numel(r, 0) / (size_t)n;
    r->n = 1;
    for (int b = 0; b < n; b++) {
        memcpy(r->buf[r->slot[0]], input + (size_t)b * img, img * sizeof *input);
        for (int i = 1; i < end; i++)
            kdc__run_timed(r, i, 0);
        size_t off = 0;
        for (int j = 0; j < end; j++)
            if (aside[j]) {
                const size_t c = kdc__numel(r, j);
                memcpy(r->side + (size_t)n * off + (size_t)b * c, kdc__data(r, j),
                       c * sizeof *r->side);
                off += c;
            }
    }
    r->n = n;
    size_t off = 0;
    for (int j = 0; j < end; j++)
        if (aside[j]) {
            const size_t c = kdc__numel(r, j);
            memcpy(r->buf[r->slot[j]], r->side + off, c * sizeof *r->side);
            off += c;
        }
    return KDC_OK;
}

/* The index of the first value of x[0, n) that is NaN or infinite (all
 * exponent bits set), or n. The test runs without branches, in blocks
 * that the compiler vectorizes (a branch per value cost a MobileNetV1
 * forward 0.8% of its time); only a block with such a value is searched. */
static size_t kdc__first_nonfinite(const float *x, size_t n)
{
    enum { BLOCK = 4096 };
    for (size_t b = 0; b < n; b += BLOCK) {
        const size_t e = n - b < BLOCK ? n : b + BLOCK;
        uint32_t bad = 0;
        size_t i = b;
        for (; i + 16 <= e; i += 16) { /* a whole vector's worth, no tail */
            uint32_t v[16];
            memcpy(v, x + i, sizeof v);
            for (int l = 0; l < 16; l++)
                bad |= (v[l] & 0x7f800000u) == 0x7f800000u;
        }
        for (; i < e; i++)
            bad |= !isfinite(x[i]);
        if (bad)
            for (i = b; i < e; i++)
                if (!isfinite(x[i]))
                    return i;
    }
    return n;
}

static kdc_status kdc__forward(kdc_run *r, const float *input, int n, int h, int w,
                               const int *keep, int nkeep, int record_from)
{
    kdc_status st;
    if (!r || !input)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_forward: NULL argument");
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
    /* whatever happens below, the results of an earlier pass are gone */
    r->done = 0;
    r->timed = 0;
    r->grad_done = 0;
    r->record_from = -1;
    if (n < 1 || n > 65536)
        return kdc__fail(KDC_ERR_SHAPE, "input: batch size %d is out of range 1..65536", n);
    if (h > 16384 || w > 16384)
        return kdc__fail(KDC_ERR_SHAPE, "input %dx%d is larger than 16384x16384", h, w);
    if (nkeep < 0 || (nkeep > 0 && !keep))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_forward: bad keep list");
    memset(r->want, 0, (size_t)nn);
    for (int i = 0; i < nkeep; i++) {
        if (keep[i] < 0 || keep[i] >= nn)
            return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d",
                             m->arch, keep[i], nn - 1);
        r->want[keep[i]] = 1;
    }
    const size_t numel = (size_t)n * 3 * (size_t)h * (size_t)w;
    const size_t bad = kdc__first_nonfinite(input, numel);
    if (bad < numel) {
        size_t hw = (size_t)h * w;
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "input: value at n=%zu c=%zu y=%zu x=%zu "
                         "is %s", bad / (3 * hw), bad / hw % 3, bad % hw / (size_t)w,
                         bad % (size_t)w, isnan(input[bad]) ? "NaN" : "infinite");
    }
    r->done = 0;
    r->grad_done = 0;
    r->record_from = -1;
    if (!r->planned || r->n != n || r->h != h || r->w != w || memcmp(r->want, r->keep, (size_t)nn)) {
        r->planned = 0;
        if ((st = kdc__infer_shapes(m, h, w, r->chw)))
            return st;
        r->n = n;
        r->h = h;
        r->w = w;
        memcpy(r->keep, r->want, (size_t)nn);
        if ((st = kdc__plan(r)))
            return st;
    }
    if (record_from >= 0 && (st = kdc__alloc_record(r, record_from)))
        return st;
    if (m->gemm) {
        if ((st = kdc__work_reserve(&r->ws, kdc__pool_threads(r->pool))))
            return st;
        for (int i = 1; i < nn; i++) {
            const kdc__node *nd = &m->nodes[i];
            const int *ic = r->chw + 3 * (nd->in[0] >= 0 ? nd->in[0] : 0), *oc = r->chw + 3 * i;
            if (kdc__conv_is_gemm(m, nd) &&
                ((st = kdc__conv_reserve(&r->ws, &nd->p.conv, ic[1], ic[2], oc[1], oc[2])) ||
                 (record_from < 0 &&
                  (st = kdc__wino_reserve(&r->ws, &nd->p.conv, oc[1], oc[2])))))
                return st;
        }
    }
    r->wino = record_from < 0 && m->gemm;
    if (r->layer_ms)
        memset(r->layer_ms, 0, (size_t)nn * sizeof *r->layer_ms);
    const int head = record_from < 0 ? kdc__image_major_end(r) : 0;
    if (head && (st = kdc__run_images(r, input, head)))
        return st;
    if (!head)
        memcpy(r->buf[r->slot[0]], input, numel * sizeof *input);
    r->mask_made = -1;
    for (int i = head ? head : 1; i < nn; i++)
        kdc__run_timed(r, i, record_from >= 0 && i > record_from);
    r->timed = r->layer_ms != NULL;
    r->wino = 0;
    r->done = 1;
    r->record_from = record_from;
    return KDC_OK;
}

kdc_status kdc_run_forward(kdc_run *r, const float *input, int n, int h, int w, const int *keep,
                           int nkeep)
{
    return kdc__forward(r, input, n, h, w, keep, nkeep, -1);
}

kdc_status kdc_run_forward_grad(kdc_run *r, const float *input, int n, int h, int w,
                                const int *keep, int nkeep, int down_to)
{
    if (r && (down_to < 0 || down_to >= r->m->n_nodes))
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d",
                         r->m->arch, down_to, r->m->n_nodes - 1);
    return kdc__forward(r, input, n, h, w, keep, nkeep, down_to);
}

kdc_status kdc__run_forward_from(kdc_run *r, int layer, const float *act, float *logits)
{
    if (!r || !act || !logits)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "forward from a layer: NULL argument");
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
    if (!r->done)
        return kdc__fail(KDC_ERR_STATE, "forward from a layer needs a completed forward pass");
    if (layer < 0 || layer >= nn)
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d", m->arch,
                         layer, nn - 1);
    if (!r->keep[layer] && layer != nn - 1)
        return kdc__fail(KDC_ERR_STATE, "forward from %s: the last forward pass did not keep it",
                         m->nodes[layer].name);
    for (int i = layer + 1; i < nn; i++)
        for (int j = 0; j < 2; j++) {
            int in = m->nodes[i].in[j];
            if (in >= 0 && in < layer && !r->keep[in])
                return kdc__fail(KDC_ERR_STATE, "forward from %s: %s reads %s, which lies below "
                                 "it and was not kept", m->nodes[layer].name, m->nodes[i].name,
                                 m->nodes[in].name);
        }
    r->override_node = layer;
    r->override_data = act;
    for (int i = layer + 1; i < nn; i++)
        kdc__run_node(r, i, 0);
    r->override_node = -1;
    r->override_data = NULL;
    memcpy(logits, r->buf[r->slot[nn - 1]], kdc__numel(r, nn - 1) * sizeof *logits);
    /* the layers above now hold this pass's values, which the recorded
     * backward state does not describe */
    r->record_from = -1;
    r->grad_done = 0;
    return KDC_OK;
}
