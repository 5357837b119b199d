/* run.c - running a model: memory plan and forward executor.
 *
 * A kdc_run owns everything that changes during a forward pass: the thread
 * pool and the activation buffers. Buffers are planned by liveness: walking
 * the nodes in order, a node's output takes a free buffer and gives back
 * the buffers of inputs it was the last user of; elementwise nodes (BN,
 * ReLU, residual join) write in place over a dying input. Layers the caller
 * asked to keep are never given back. The plan is redone only when the input
 * shape or the kept set changes; buffers only grow, so a run that has seen
 * its largest input allocates nothing more. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

struct kdc_run {
    const kdc_model *m;
    kdc__pool *pool;
    /* plan, valid for (n, h, w, keep) */
    int n, h, w;
    int planned;
    int *chw;              /* (n_nodes, 3) output shapes                      */
    int *slot;             /* (n_nodes) buffer of each node's output          */
    unsigned char *keep;   /* (n_nodes) caller wants the output after forward */
    unsigned char *want;   /* (n_nodes) scratch: keep set of the current call */
    int *last_use;         /* (n_nodes) index of the last consumer            */
    int n_slots;
    size_t *need;          /* (n_nodes) floats each slot needs                */
    float **buf;           /* (n_nodes) slot buffers                          */
    size_t *cap;           /* (n_nodes) floats allocated per slot             */
    int done;              /* a forward pass completed with this plan         */
    /* backward state recorded by kdc_run_forward_grad for nodes > record_from */
    int record_from;       /* -1: the last forward recorded nothing           */
    uint64_t **mask;       /* (n_nodes) ReLU masks, one bit per element       */
    size_t *mask_cap;      /* (n_nodes) words allocated                        */
    int32_t **argmax;      /* (n_nodes) max-pool winners                      */
    size_t *argmax_cap;
    /* gradients: a pool of buffers, and which one holds each node's gradient */
    float **gbuf;          /* (n_nodes) */
    size_t *gcap;          /* (n_nodes) */
    unsigned char *gused;  /* (n_nodes) */
    int n_gbuf;
    int *grad_of;          /* (n_nodes) buffer index, -1 none                 */
    unsigned char *gkeep;  /* (n_nodes) gradients the caller asked for        */
    int grad_done;
    int *classes;          /* (n) classes of the last backward's target       */
    int classes_cap;
    /* kdc__run_forward_from: this node's output is read from override */
    int override_node;
    const float *override_data;
    /* fast kernels: GEMM workspaces, and the fused groups of the plan: a
     * dense conv head runs its AFFINE (and RELU / ADD_RELU) in its epilogue */
    kdc__work ws;
    int *fuse_tail;        /* (n_nodes) last node of the group a head runs, 0 */
    unsigned char *fused;  /* (n_nodes) run by the head of its group          */
};

kdc_status kdc_run_create(const kdc_model *m, const kdc_run_options *opt, kdc_run **out)
{
    kdc_run *r;
    kdc_status st;
    int threads = opt && opt->threads > 0 ? opt->threads : 1;
    size_t nn;

    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_create: out is NULL");
    *out = NULL;
    if (!m)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_create: model is NULL");
    if (opt && opt->threads < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "threads: %d is negative", opt->threads);
    r = calloc(1, sizeof *r);
    if (!r)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory");
    r->m = m;
    nn = (size_t)m->n_nodes;
    r->chw = calloc(nn * 3, sizeof *r->chw);
    r->slot = calloc(nn, sizeof *r->slot);
    r->keep = calloc(nn, 1);
    r->want = calloc(nn, 1);
    r->last_use = calloc(nn, sizeof *r->last_use);
    r->need = calloc(nn, sizeof *r->need);
    r->buf = calloc(nn, sizeof *r->buf);
    r->cap = calloc(nn, sizeof *r->cap);
    r->mask = calloc(nn, sizeof *r->mask);
    r->mask_cap = calloc(nn, sizeof *r->mask_cap);
    r->argmax = calloc(nn, sizeof *r->argmax);
    r->argmax_cap = calloc(nn, sizeof *r->argmax_cap);
    r->gbuf = calloc(nn, sizeof *r->gbuf);
    r->gcap = calloc(nn, sizeof *r->gcap);
    r->gused = calloc(nn, 1);
    r->grad_of = calloc(nn, sizeof *r->grad_of);
    r->gkeep = calloc(nn, 1);
    r->fuse_tail = calloc(nn, sizeof *r->fuse_tail);
    r->fused = calloc(nn, 1);
    r->record_from = -1;
    r->override_node = -1;
    if (!r->chw || !r->slot || !r->keep || !r->want || !r->last_use || !r->need || !r->buf ||
        !r->cap || !r->mask || !r->mask_cap || !r->argmax || !r->argmax_cap || !r->gbuf ||
        !r->gcap || !r->gused || !r->grad_of || !r->gkeep || !r->fuse_tail || !r->fused) {
        kdc_run_destroy(r);
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory");
    }
    if ((st = kdc__pool_create(threads, &r->pool))) {
        kdc_run_destroy(r);
        return st;
    }
    *out = r;
    return KDC_OK;
}

void kdc_run_destroy(kdc_run *r)
{
    if (!r)
        return;
    kdc__pool_destroy(r->pool);
    kdc__work_free(&r->ws);
    for (int i = 0; i < r->m->n_nodes; i++) {
        if (r->buf)
            free(r->buf[i]);
        if (r->mask)
            free(r->mask[i]);
        if (r->argmax)
            free(r->argmax[i]);
        if (r->gbuf)
            free(r->gbuf[i]);
    }
    free(r->classes);
    free(r->fused);
    free(r->fuse_tail);
    free(r->gkeep);
    free(r->grad_of);
    free(r->gused);
    free(r->gcap);
    free(r->gbuf);
    free(r->argmax_cap);
    free(r->argmax);
    free(r->mask_cap);
    free(r->mask);
    free(r->buf);
    free(r->cap);
    free(r->need);
    free(r->last_use);
    free(r->want);
    free(r->keep);
    free(r->slot);
    free(r->chw);
    free(r);
}

static int kdc__elementwise(kdc__op op)
{
    return op == KDC__OP_AFFINE || op == KDC__OP_RELU || op == KDC__OP_ADD_RELU ||
           op == KDC__OP_ADD_UP;
}

/* Ops that run through the packed GEMM when the model has fast kernels. */
static int kdc__gemm_op(const kdc_model *m, const kdc__node *nd)
{
    return m->gemm && ((nd->op == KDC__OP_CONV && nd->p.conv.groups == 1) ||
                       nd->op == KDC__OP_LINEAR);
}

static int kdc__dw_op(const kdc_model *m, const kdc__node *nd);

/* Epilogue fusion: a dense conv (or a depthwise 3x3 one, per channel plane
 * after the depthwise kernel) whose only reader is an AFFINE (eval BN)
 * runs that affine in its epilogue, and the RELU or ADD_RELU after it too
 * when the affine's only reader is that node (and an ADD_RELU's other input,
 * the residual, is computed before the conv). Nodes whose outputs the
 * caller keeps are never inside a group, so every kept layer holds exactly
 * what the unfused ops give (the epilogue does the same float operations). */
static void kdc__plan_fusion(kdc_run *r)
{
    const kdc_model *m = r->m;
    for (int i = 0; i < m->n_nodes; i++) {
        r->fuse_tail[i] = 0;
        r->fused[i] = 0;
    }
    if (!m->gemm)
        return;
    for (int i = 1; i + 1 < m->n_nodes; i++) {
        const kdc__node *nd = &m->nodes[i], *af = &m->nodes[i + 1];
        if (!(kdc__gemm_op(m, nd) && nd->op == KDC__OP_CONV) && !kdc__dw_op(m, nd))
            continue;
        if (af->op != KDC__OP_AFFINE || af->in[0] != i || r->last_use[i] != i + 1)
            continue;
        int tail = i + 1;
        if (i + 2 < m->n_nodes && r->last_use[i + 1] == i + 2) {
            const kdc__node *t = &m->nodes[i + 2];
            if (t->op == KDC__OP_RELU && t->in[0] == i + 1) {
                tail = i + 2;
            } else if (t->op == KDC__OP_ADD_RELU && t->in[0] != t->in[1]) {
                int other = t->in[0] == i + 1 ? t->in[1] : t->in[1] == i + 1 ? t->in[0] : -1;
                if (other >= 0 && other < i)
                    tail = i + 2;
            }
        }
        r->fuse_tail[i] = tail;
        for (int j = i + 1; j <= tail; j++)
            r->fused[j] = 1;
        i = tail;
    }
}

/* Depthwise 3x3 convs the depthwise kernel table runs (lib/dwconv.c). */
static int kdc__dw_op(const kdc_model *m, const kdc__node *nd)
{
    const kdc__conv_param *cp = &nd->p.conv;
    return m->dw && nd->op == KDC__OP_CONV && cp->groups > 1 && cp->groups == cp->cin &&
           cp->cin == cp->cout && cp->kh == 3 && cp->kw == 3 && (cp->stride == 1 ||
           cp->stride == 2) && (cp->pad == 0 || cp->pad == 1);
}

static size_t kdc__numel(const kdc_run *r, int node)
{
    const int *s = r->chw + 3 * node;
    return (size_t)r->n * (size_t)s[0] * (size_t)s[1] * (size_t)s[2];
}

/* Liveness plan: which buffer each node writes, and how big buffers are. */
static kdc_status kdc__plan(kdc_run *r)
{
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
    int *free_list = malloc((size_t)nn * sizeof *free_list);
    int n_free = 0;

    if (!free_list)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory");
    for (int i = 0; i < nn; i++)
        r->last_use[i] = (r->keep[i] || i == nn - 1) ? nn : i;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < 2; k++) {
            int in = m->nodes[i].in[k];
            if (in >= 0 && r->last_use[in] < i)
                r->last_use[in] = i;
        }
    kdc__plan_fusion(r);
    r->n_slots = 0;
    for (int i = 0; i < nn; i++) {
        const kdc__node *nd = &m->nodes[i];
        const size_t numel = kdc__numel(r, i);
        int s = -1;
        if (r->fused[i]) {
            /* in place over the group's own chain (never over an ADD_RELU's
             * residual, which the epilogue reads while writing) */
            s = r->slot[i - 1];
        } else if (kdc__elementwise(nd->op) && r->last_use[nd->in[0]] == i) {
            s = r->slot[nd->in[0]]; /* in place over the dying input */
        } else if (n_free > 0) {
            /* best fit: the smallest free buffer that is big enough, else the largest */
            int best = 0;
            for (int f = 1; f < n_free; f++) {
                size_t a = r->need[free_list[f]], cur = r->need[free_list[best]];
                int a_fits = a >= numel, cur_fits = cur >= numel;
                if ((a_fits && (!cur_fits || a < cur)) || (!a_fits && !cur_fits && a > cur))
                    best = f;
            }
            s = free_list[best];
            free_list[best] = free_list[--n_free];
        } else {
            s = r->n_slots++;
            r->need[s] = 0;
        }
        r->slot[i] = s;
        if (r->need[s] < numel)
            r->need[s] = numel;
        /* give back the inputs whose last use is this node */
        for (int k = 0; k < 2; k++) {
            int in = nd->in[k];
            if (in < 0 || r->last_use[in] != i || r->slot[in] == s)
                continue;
            if (k == 1 && nd->in[0] == in)
                continue;
            free_list[n_free++] = r->slot[in];
        }
    }
    free(free_list);
    for (int s = 0; s < r->n_slots; s++) {
        if (r->cap[s] >= r->need[s])
            continue;
        free(r->buf[s]);
        r->buf[s] = malloc(r->need[s] * sizeof(float));
        r->cap[s] = r->buf[s] ? r->need[s] : 0;
        if (!r->buf[s])
            return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for a %zu-float activation",
                             r->need[s]);
    }
    r->planned = 1;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Executing one node: tasks split batch x channel ranges              */

#define KDC__CH_CHUNK 8

typedef struct kdc__task {
    const kdc_run *r;
    const kdc__node *nd;
    uint64_t *mask;        /* record a ReLU mask here, or NULL             */
    int32_t *argmax;       /* record max-pool winners here, or NULL        */
    const float *x, *x2;
    float *y;
    const int *in_chw, *in2_chw, *out_chw;
    int chunks; /* channel chunks per image */
} kdc__task;

static void kdc__node_task(void *ctx, int t)
{
    const kdc__task *k = ctx;
    const kdc__node *nd = k->nd;
    const int b = t / k->chunks;
    const int c0 = (t % k->chunks) * KDC__CH_CHUNK;
    int c1 = c0 + KDC__CH_CHUNK;
    const int C = k->out_chw[0];
    if (c1 > C)
        c1 = C;
    const size_t ohw = (size_t)k->out_chw[1] * k->out_chw[2];
    const size_t ihw = (size_t)k->in_chw[1] * k->in_chw[2];
    const size_t out_img = (size_t)C * ohw;

    switch (nd->op) {
    case KDC__OP_CONV:
        if (kdc__dw_op(k->r->m, nd)) {
            const kdc__conv_param *cp = &nd->p.conv;
            for (int c = c0; c < c1; c++)
                k->r->m->dw->dw3x3(k->x + ((size_t)b * C + c) * ihw, k->in_chw[1], k->in_chw[2],
                                   cp->weight + 9 * (size_t)c, cp->bias ? cp->bias[c] : 0.0f,
                                   k->y + ((size_t)b * C + c) * ohw, k->out_chw[1],
                                   k->out_chw[2], cp->stride, cp->pad);
            break;
        }
        kdc__conv2d_ref(&nd->p.conv, k->x, k->in_chw[1], k->in_chw[2], k->y, k->out_chw[1],
                        k->out_chw[2], b, c0, c1);
        break;
    case KDC__OP_AFFINE:
        kdc__affine_ref(k->x + b * out_img, k->y + b * out_img, C, ohw, nd->p.affine.scale,
                        nd->p.affine.shift, c0, c1);
        break;
    case KDC__OP_RELU:
        kdc__relu_ref(k->x + b * out_img, k->y + b * out_img, c0 * ohw, c1 * ohw,
                      nd->p.act.clamp);
        if (k->mask)
            k->r->m->act->relu_mask(k->y + b * out_img,
                                    k->mask + (size_t)b * C * ((ohw + 63) / 64), ohw,
                                    nd->p.act.clamp, c0, c1);
        break;
    case KDC__OP_ADD_RELU:
        kdc__add_relu_ref(k->x + b * out_img, k->x2 + b * out_img, k->y + b * out_img, c0 * ohw,
                          c1 * ohw, nd->p.act.clamp);
        if (k->mask)
            k->r->m->act->relu_mask(k->y + b * out_img,
                                    k->mask + (size_t)b * C * ((ohw + 63) / 64), ohw,
                                    nd->p.act.clamp, c0, c1);
        break;
    case KDC__OP_MAXPOOL:
        if (k->argmax)
            kdc__maxpool_idx_ref(k->x + b * (size_t)C * ihw, k->in_chw[1], k->in_chw[2],
                                 k->y + b * out_img, k->argmax + b * out_img, k->out_chw[1],
                                 k->out_chw[2], nd->p.pool.k, nd->p.pool.stride, nd->p.pool.pad,
                                 c0, c1);
        else
            kdc__maxpool_ref(k->x + b * (size_t)C * ihw, k->in_chw[1], k->in_chw[2],
                             k->y + b * out_img, k->out_chw[1], k->out_chw[2], nd->p.pool.k,
                             nd->p.pool.stride, nd->p.pool.pad, c0, c1);
        break;
    case KDC__OP_GAP:
        kdc__gap_ref(k->x + b * (size_t)C * ihw, ihw, k->y + (size_t)b * C, c0, c1);
        break;
    case KDC__OP_LINEAR:
        kdc__linear_ref(&nd->p.conv, k->x + (size_t)b * nd->p.conv.cin, k->y + (size_t)b * C,
                        c0, c1);
        break;
    case KDC__OP_ADD_UP: {
        const size_t bhw = (size_t)k->in2_chw[1] * k->in2_chw[2];
        kdc__add_up_ref(k->x + b * out_img, k->x2 + b * (size_t)C * bhw, k->y + b * out_img,
                        k->out_chw[1], k->out_chw[2], k->in2_chw[1], k->in2_chw[2], c0, c1);
        break;
    }
    case KDC__OP_INPUT:
        break;
    }
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
    int C, chunks;
    size_t hw;
    float clamp;
} kdc__mask_task;

static void kdc__mask_run(void *ctx, int t)
{
    const kdc__mask_task *k = ctx;
    const int b = t / k->chunks, c0 = t % k->chunks * KDC__CH_CHUNK;
    const int c1 = c0 + KDC__CH_CHUNK < k->C ? c0 + KDC__CH_CHUNK : k->C;
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
 * depthwise kernel then the epilogue while the plane is in cache. */
typedef struct kdc__dw_task {
    const kdc_run *r;
    const kdc__node *nd;
    const float *x;
    float *y;
    const kdc__gemm_epilogue *ep; /* res of the whole batch, laid out like y */
    int C, ih, iw, oh, ow, chunks;
} kdc__dw_task;

static void kdc__dw_fused_run(void *ctx, int t)
{
    const kdc__dw_task *k = ctx;
    const kdc__conv_param *cp = &k->nd->p.conv;
    const kdc_model *m = k->r->m;
    const int b = t / k->chunks, c0 = t % k->chunks * KDC__CH_CHUNK;
    const int c1 = c0 + KDC__CH_CHUNK < k->C ? c0 + KDC__CH_CHUNK : k->C;
    const size_t ihw = (size_t)k->ih * k->iw, ohw = (size_t)k->oh * k->ow;
    for (int c = c0; c < c1; c++) {
        const size_t plane = (size_t)b * k->C + c;
        float *y = k->y + plane * ohw;
        m->dw->dw3x3(k->x + plane * ihw, k->ih, k->iw, cp->weight + 9 * (size_t)c,
                     cp->bias ? cp->bias[c] : 0.0f, y, k->oh, k->ow, cp->stride, cp->pad);
        m->gemm->epilogue(k->ep, y, ohw, c, 1, k->ep->res ? k->ep->res + plane * ohw : NULL, ohw,
                          (int)ohw);
    }
}

static void kdc__run_dw_group(kdc_run *r, int i)
{
    const kdc__node *nd = &r->m->nodes[i];
    const int tail = r->fuse_tail[i];
    kdc__gemm_epilogue ep;
    kdc__group_epilogue(r, i, tail, &ep);
    const int *ic = r->chw + 3 * nd->in[0], *oc = r->chw + 3 * i;
    kdc__dw_task k = {.r = r, .nd = nd, .x = kdc__data(r, nd->in[0]),
                      .y = r->buf[r->slot[tail]], .ep = &ep, .C = oc[0], .ih = ic[1],
                      .iw = ic[2], .oh = oc[1], .ow = oc[2]};
    k.chunks = (k.C + KDC__CH_CHUNK - 1) / KDC__CH_CHUNK;
    kdc__pool_run(r->pool, r->n * k.chunks, kdc__dw_fused_run, &k);
}

/* A dense conv or LINEAR on the GEMM, with the rest of its fused group. */
static void kdc__run_gemm_node(kdc_run *r, int i)
{
    const kdc_model *m = r->m;
    const kdc__node *nd = &m->nodes[i];
    const int tail = r->fuse_tail[i] ? r->fuse_tail[i] : i;
    kdc__gemm_epilogue ep;
    kdc__group_epilogue(r, i, tail, &ep);
    const int *ic = r->chw + 3 * nd->in[0], *oc = r->chw + 3 * i;
    kdc__conv2d_fast(r->pool, &r->ws, m->gemm, &nd->p.conv, kdc__data(r, nd->in[0]), r->n, ic[1],
                     ic[2], r->buf[r->slot[tail]], oc[1], oc[2], tail > i ? &ep : NULL);
}

static void kdc__run_node(kdc_run *r, int i, int record)
{
    const kdc__node *nd = &r->m->nodes[i];
    if (r->fused[i]) {
        /* computed by the head of its group; a recording pass still needs
         * the ReLU mask of the group's output */
        if (record && (nd->op == KDC__OP_RELU || nd->op == KDC__OP_ADD_RELU)) {
            const int *s = r->chw + 3 * i;
            kdc__mask_task k = {.act = r->m->act, .y = r->buf[r->slot[i]], .mask = r->mask[i],
                                .C = s[0], .hw = (size_t)s[1] * s[2],
                                .clamp = nd->p.act.clamp};
            k.chunks = (k.C + KDC__CH_CHUNK - 1) / KDC__CH_CHUNK;
            kdc__pool_run(r->pool, r->n * k.chunks, kdc__mask_run, &k);
        }
        return;
    }
    if (kdc__gemm_op(r->m, nd)) {
        kdc__run_gemm_node(r, i);
        return;
    }
    if (r->fuse_tail[i]) {
        kdc__run_dw_group(r, i);
        return;
    }
    kdc__task k = {
        .r = r,
        .nd = nd,
        .mask = record && (nd->op == KDC__OP_RELU || nd->op == KDC__OP_ADD_RELU) ? r->mask[i] : NULL,
        .argmax = record && nd->op == KDC__OP_MAXPOOL ? r->argmax[i] : NULL,
        .x = kdc__data(r, nd->in[0]),
        .x2 = kdc__data(r, nd->in[1]),
        .y = r->buf[r->slot[i]],
        .in_chw = nd->in[0] >= 0 ? r->chw + 3 * nd->in[0] : NULL,
        .in2_chw = nd->in[1] >= 0 ? r->chw + 3 * nd->in[1] : NULL,
        .out_chw = r->chw + 3 * i,
    };
    k.chunks = (k.out_chw[0] + KDC__CH_CHUNK - 1) / KDC__CH_CHUNK;
    kdc__pool_run(r->pool, r->n * k.chunks, kdc__node_task, &k);
}

/* Makes room for the backward state of nodes > from (ReLU masks, max-pool
 * winners) for the current plan. */
static kdc_status kdc__alloc_record(kdc_run *r, int from)
{
    const kdc_model *m = r->m;
    for (int i = from + 1; i < m->n_nodes; i++) {
        const kdc__node *nd = &m->nodes[i];
        const int *s = r->chw + 3 * i;
        if (nd->op == KDC__OP_RELU || nd->op == KDC__OP_ADD_RELU) {
            size_t words = (size_t)r->n * s[0] * (((size_t)s[1] * s[2] + 63) / 64);
            if (r->mask_cap[i] < words) {
                free(r->mask[i]);
                r->mask[i] = malloc(words * sizeof **r->mask);
                r->mask_cap[i] = r->mask[i] ? words : 0;
                if (!r->mask[i])
                    return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for backward state");
            }
        } else if (nd->op == KDC__OP_MAXPOOL) {
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
    for (size_t i = 0; i < numel; i++) {
        if (!isfinite(input[i])) {
            size_t hw = (size_t)h * w;
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "input: value at n=%zu c=%zu y=%zu x=%zu "
                             "is %s", i / (3 * hw), i / hw % 3, i % hw / (size_t)w,
                             i % (size_t)w, isnan(input[i]) ? "NaN" : "infinite");
        }
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
            if (kdc__gemm_op(m, nd) &&
                (st = kdc__conv_reserve(&r->ws, &nd->p.conv, ic[1], ic[2], oc[1], oc[2])))
                return st;
        }
    }
    memcpy(r->buf[r->slot[0]], input, numel * sizeof *input);
    for (int i = 1; i < nn; i++)
        kdc__run_node(r, i, record_from >= 0 && i > record_from);
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

static kdc_status kdc__check_kept(const kdc_run *r, int layer)
{
    if (!r)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "run is NULL");
    if (layer < 0 || layer >= r->m->n_nodes)
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d",
                         r->m->arch, layer, r->m->n_nodes - 1);
    if (!r->done)
        return kdc__fail(KDC_ERR_STATE, "no forward pass has completed on this run");
    if (!r->keep[layer] && layer != r->m->n_nodes - 1)
        return kdc__fail(KDC_ERR_STATE, "layer %s was not kept by the last forward pass",
                         r->m->nodes[layer].name);
    return KDC_OK;
}

kdc_status kdc_run_layer_shape(const kdc_run *r, int layer, int nchw[4])
{
    kdc_status st = kdc__check_kept(r, layer);
    if (st)
        return st;
    if (!nchw)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_layer_shape: nchw is NULL");
    nchw[0] = r->n;
    memcpy(nchw + 1, r->chw + 3 * layer, 3 * sizeof *nchw);
    return KDC_OK;
}

kdc_status kdc_run_read_layer(const kdc_run *r, int layer, float *dst, size_t count)
{
    kdc_status st = kdc__check_kept(r, layer);
    if (st)
        return st;
    if (!dst)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_read_layer: dst is NULL");
    size_t numel = kdc__numel(r, layer);
    if (count < numel)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "layer %s has %zu values, the buffer %zu",
                         r->m->nodes[layer].name, numel, count);
    memcpy(dst, r->buf[r->slot[layer]], numel * sizeof *dst);
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Backward                                                            */

/* A zeroed gradient buffer of numel floats from the run's pool (best fit
 * among the free ones; grown or added when none fits). */
static int kdc__grad_acquire(kdc_run *r, size_t numel)
{
    int best = -1, largest = -1;
    for (int b = 0; b < r->n_gbuf; b++) {
        if (r->gused[b])
            continue;
        if (r->gcap[b] >= numel && (best < 0 || r->gcap[b] < r->gcap[best]))
            best = b;
        if (largest < 0 || r->gcap[b] > r->gcap[largest])
            largest = b;
    }
    if (best < 0) {
        best = largest >= 0 ? largest : r->n_gbuf;
        if (best >= r->m->n_nodes)
            return -1; /* cannot happen: at most one live gradient per node */
        float *p = realloc(r->gbuf[best], numel * sizeof *p);
        if (!p)
            return -1;
        r->gbuf[best] = p;
        r->gcap[best] = numel;
        if (best == r->n_gbuf)
            r->n_gbuf++;
    }
    r->gused[best] = 1;
    memset(r->gbuf[best], 0, numel * sizeof(float));
    return best;
}

static void kdc__grad_release_all(kdc_run *r)
{
    for (int i = 0; i < r->m->n_nodes; i++)
        r->grad_of[i] = -1;
    memset(r->gused, 0, (size_t)r->m->n_nodes);
}

typedef struct kdc__btask {
    const kdc_run *r;
    const kdc__node *nd;
    int node;
    const float *dy;         /* gradient of the node's output              */
    float *dx, *dx2;         /* gradients of its inputs (NULL: not needed)  */
    const int *in_chw, *out_chw;
    int chunks;              /* input-channel chunks per image              */
    int guided;
} kdc__btask;

static void kdc__backward_task(void *ctx, int t)
{
    const kdc__btask *k = ctx;
    const kdc__node *nd = k->nd;
    const kdc_run *r = k->r;
    const int b = t / k->chunks;
    const int Cin = k->in_chw[0], Cout = k->out_chw[0];
    const int c0 = (t % k->chunks) * KDC__CH_CHUNK;
    const int c1 = c0 + KDC__CH_CHUNK < Cin ? c0 + KDC__CH_CHUNK : Cin;
    const size_t ihw = (size_t)k->in_chw[1] * k->in_chw[2];
    const size_t ohw = (size_t)k->out_chw[1] * k->out_chw[2];
    const float *dy = k->dy + (size_t)b * Cout * ohw;
    float *dx = k->dx ? k->dx + (size_t)b * Cin * ihw : NULL;

    switch (nd->op) {
    case KDC__OP_CONV:
        if (kdc__dw_op(r->m, nd)) {
            const kdc__conv_param *cp = &nd->p.conv;
            for (int c = c0; c < c1; c++)
                r->m->dw->dw3x3_backward(dy + (size_t)c * ohw, k->out_chw[1], k->out_chw[2],
                                         cp->weight + 9 * (size_t)c, dx + (size_t)c * ihw,
                                         k->in_chw[1], k->in_chw[2], cp->stride, cp->pad);
            break;
        }
        kdc__conv2d_backward_data_ref(&nd->p.conv, k->dy, k->out_chw[1], k->out_chw[2], k->dx,
                                      k->in_chw[1], k->in_chw[2], b, c0, c1);
        break;
    case KDC__OP_AFFINE:
        kdc__affine_backward_ref(dy, dx, ohw, nd->p.affine.scale, c0, c1);
        break;
    case KDC__OP_RELU:
    case KDC__OP_ADD_RELU: {
        const uint64_t *mask = r->mask[k->node] + (size_t)b * Cout * ((ohw + 63) / 64);
        if (dx)
            r->m->act->relu_backward(dy, mask, dx, ohw, k->guided, c0, c1);
        if (k->dx2)
            r->m->act->relu_backward(dy, mask, k->dx2 + (size_t)b * Cin * ihw, ohw, k->guided, c0,
                                   c1);
        break;
    }
    case KDC__OP_MAXPOOL:
        kdc__maxpool_backward_ref(dy, r->argmax[k->node] + (size_t)b * Cout * ohw, ohw, dx, ihw,
                                  c0, c1);
        break;
    case KDC__OP_GAP:
        kdc__gap_backward_ref(dy, dx, ihw, c0, c1);
        break;
    case KDC__OP_LINEAR:
        kdc__linear_backward_ref(&nd->p.conv, dy, dx, c0, c1);
        break;
    case KDC__OP_ADD_UP: {
        const int *s2 = r->chw + 3 * nd->in[1];
        const size_t bhw = (size_t)s2[1] * s2[2];
        kdc__add_up_backward_ref(dy, dx, k->dx2 ? k->dx2 + (size_t)b * Cin * bhw : NULL,
                                 k->out_chw[1], k->out_chw[2], s2[1], s2[2], c0, c1);
        break;
    }
    case KDC__OP_INPUT:
        break;
    }
}

/* Seed of the target at the last layer (logits z): d z_c / d z = onehot(c);
 * d softmax(z)_c / d z_j = p_c (delta_cj - p_j). */
static kdc_status kdc__class_seed(kdc_run *r, const kdc_target *tg, float *seed)
{
    const kdc_model *m = r->m;
    const int last = m->n_nodes - 1, K = r->chw[3 * last];
    const float *z = r->buf[r->slot[last]];
    for (int b = 0; b < r->n; b++) {
        const float *zb = z + (size_t)b * K;
        int c = 0;
        if (tg->classes) {
            c = tg->classes[b];
            if (c < 0 || c >= K)
                return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "target class %d of image %d is out "
                                 "of range 0..%d", c, b, K - 1);
        } else {
            for (int j = 1; j < K; j++)
                if (zb[j] > zb[c])
                    c = j;
        }
        r->classes[b] = c;
        float *s = seed + (size_t)b * K;
        if (tg->kind == KDC_TARGET_LOGIT) {
            s[c] = 1.0f;
            continue;
        }
        double mx = zb[0], sum = 0.0;
        for (int j = 1; j < K; j++)
            mx = zb[j] > mx ? zb[j] : mx;
        for (int j = 0; j < K; j++)
            sum += exp((double)zb[j] - mx);
        const double pc = exp((double)zb[c] - mx) / sum;
        for (int j = 0; j < K; j++) {
            double pj = exp((double)zb[j] - mx) / sum;
            s[j] = (float)(pc * ((j == c) - pj));
        }
    }
    return KDC_OK;
}

kdc_status kdc_run_backward(kdc_run *r, const kdc_target *tg, const int *layers, int ngrad,
                            int guided)
{
    if (!r || !tg || (ngrad > 0 && !layers) || ngrad < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_backward: NULL or bad argument");
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
    if (!r->done || r->record_from < 0)
        return kdc__fail(KDC_ERR_STATE, "backward needs a completed kdc_run_forward_grad first");
    r->grad_done = 0;
    int target = nn - 1;
    if (tg->kind == KDC_TARGET_SEED) {
        if (tg->layer < 0 || tg->layer >= nn)
            return kdc__fail(KDC_ERR_NOT_FOUND, "%s: target layer index %d is out of range 0..%d",
                             m->arch, tg->layer, nn - 1);
        if (!tg->seed)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "seed target at %s: seed is NULL",
                             m->nodes[tg->layer].name);
        target = tg->layer;
    } else if (tg->kind != KDC_TARGET_LOGIT && tg->kind != KDC_TARGET_PROB) {
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown target kind %d", (int)tg->kind);
    }
    int lowest = target;
    memset(r->gkeep, 0, (size_t)nn);
    for (int i = 0; i < ngrad; i++) {
        const int l = layers[i];
        if (l < 0 || l >= nn)
            return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d",
                             m->arch, l, nn - 1);
        if (l < r->record_from)
            return kdc__fail(KDC_ERR_STATE, "gradient at %s needs kdc_run_forward_grad down to "
                             "it (it went down to %s)", m->nodes[l].name,
                             m->nodes[r->record_from].name);
        if (l > target)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "gradient at %s: the target at %s does "
                             "not depend on it", m->nodes[l].name, m->nodes[target].name);
        r->gkeep[l] = 1;
        if (l < lowest)
            lowest = l;
    }
    if (r->classes_cap < r->n) {
        int *c = realloc(r->classes, (size_t)r->n * sizeof *c);
        if (!c)
            return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory");
        r->classes = c;
        r->classes_cap = r->n;
    }
    for (int b = 0; b < r->n; b++)
        r->classes[b] = -1;

    kdc__grad_release_all(r);
    int g = kdc__grad_acquire(r, kdc__numel(r, target));
    if (g < 0)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for gradients");
    r->grad_of[target] = g;
    kdc_status st;
    if (tg->kind == KDC_TARGET_SEED) {
        const size_t cnt = kdc__numel(r, target);
        for (size_t i = 0; i < cnt; i++)
            if (!isfinite(tg->seed[i]))
                return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "seed at %s: value %zu is not finite",
                                 m->nodes[target].name, i);
        memcpy(r->gbuf[g], tg->seed, cnt * sizeof(float));
    } else if ((st = kdc__class_seed(r, tg, r->gbuf[g]))) {
        return st;
    }

    for (int i = target; i > lowest; i--) {
        if (r->grad_of[i] < 0)
            continue;
        const kdc__node *nd = &m->nodes[i];
        kdc__btask k = {.r = r, .nd = nd, .node = i, .guided = guided,
                        .dy = r->gbuf[r->grad_of[i]],
                        .in_chw = r->chw + 3 * nd->in[0], .out_chw = r->chw + 3 * i};
        float *dx[2] = {NULL, NULL};
        for (int j = 0; j < 2; j++) {
            int in = nd->in[j];
            if (in < lowest)
                continue;
            if (r->grad_of[in] < 0) {
                int gb = kdc__grad_acquire(r, kdc__numel(r, in));
                if (gb < 0)
                    return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for gradients");
                r->grad_of[in] = gb;
            }
            dx[j] = r->gbuf[r->grad_of[in]];
        }
        /* dy may move if acquire reallocated: reload it */
        k.dy = r->gbuf[r->grad_of[i]];
        k.dx = dx[0];
        k.dx2 = dx[1];
        if (k.dx && kdc__gemm_op(m, nd)) {
            const float *wt;
            if ((st = kdc__conv_packed_t(m, i, &wt)) ||
                (st = kdc__work_reserve(&r->ws, kdc__pool_threads(r->pool))) ||
                (st = kdc__conv2d_backward_data_fast(r->pool, &r->ws, m->gemm, &nd->p.conv, wt,
                                                     k.dy, r->n, k.out_chw[1], k.out_chw[2],
                                                     k.dx, k.in_chw[1], k.in_chw[2])))
                return st;
        } else if (k.dx || k.dx2) {
            k.chunks = (k.in_chw[0] + KDC__CH_CHUNK - 1) / KDC__CH_CHUNK;
            kdc__pool_run(r->pool, r->n * k.chunks, kdc__backward_task, &k);
        }
        if (!r->gkeep[i]) {
            r->gused[r->grad_of[i]] = 0;
            r->grad_of[i] = -1;
        }
    }
    /* requested layers the target does not reach have a zero gradient */
    for (int i = 0; i < ngrad; i++) {
        const int l = layers[i];
        if (r->grad_of[l] < 0) {
            int gb = kdc__grad_acquire(r, kdc__numel(r, l));
            if (gb < 0)
                return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for gradients");
            r->grad_of[l] = gb;
        }
    }
    r->grad_done = 1;
    return KDC_OK;
}

kdc_status kdc_run_read_grad(const kdc_run *r, int layer, float *dst, size_t count)
{
    if (!r || !dst)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_read_grad: NULL argument");
    if (layer < 0 || layer >= r->m->n_nodes)
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d",
                         r->m->arch, layer, r->m->n_nodes - 1);
    if (!r->grad_done || !r->gkeep[layer] || r->grad_of[layer] < 0)
        return kdc__fail(KDC_ERR_STATE, "no gradient at %s: the last backward did not ask for it",
                         r->m->nodes[layer].name);
    size_t numel = kdc__numel(r, layer);
    if (count < numel)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "gradient at %s has %zu values, the buffer %zu",
                         r->m->nodes[layer].name, numel, count);
    memcpy(dst, r->gbuf[r->grad_of[layer]], numel * sizeof *dst);
    return KDC_OK;
}

kdc_status kdc_run_target_classes(const kdc_run *r, int *classes, int n)
{
    if (!r || !classes)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_target_classes: NULL argument");
    if (!r->grad_done)
        return kdc__fail(KDC_ERR_STATE, "no backward pass has completed on this run");
    if (n < r->n)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "the batch has %d images, the buffer %d", r->n,
                         n);
    memcpy(classes, r->classes, (size_t)r->n * sizeof *classes);
    return KDC_OK;
}

const struct kdc_model *kdc__run_model(const kdc_run *r)
{
    return r->m;
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
