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
    if (!r->chw || !r->slot || !r->keep || !r->want || !r->last_use || !r->need || !r->buf ||
        !r->cap) {
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
    if (r->buf)
        for (int i = 0; i < r->m->n_nodes; i++)
            free(r->buf[i]);
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
    return op == KDC__OP_AFFINE || op == KDC__OP_RELU || op == KDC__OP_ADD_RELU;
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
    r->n_slots = 0;
    for (int i = 0; i < nn; i++) {
        const kdc__node *nd = &m->nodes[i];
        const size_t numel = kdc__numel(r, i);
        int s = -1;
        if (kdc__elementwise(nd->op) && r->last_use[nd->in[0]] == i) {
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
    const float *x, *x2;
    float *y;
    const int *in_chw, *out_chw;
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
        break;
    case KDC__OP_ADD_RELU:
        kdc__add_relu_ref(k->x + b * out_img, k->x2 + b * out_img, k->y + b * out_img, c0 * ohw,
                          c1 * ohw, nd->p.act.clamp);
        break;
    case KDC__OP_MAXPOOL:
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
    case KDC__OP_INPUT:
        break;
    }
}

static void kdc__run_node(kdc_run *r, int i)
{
    const kdc__node *nd = &r->m->nodes[i];
    kdc__task k = {
        .r = r,
        .nd = nd,
        .x = nd->in[0] >= 0 ? r->buf[r->slot[nd->in[0]]] : NULL,
        .x2 = nd->in[1] >= 0 ? r->buf[r->slot[nd->in[1]]] : NULL,
        .y = r->buf[r->slot[i]],
        .in_chw = nd->in[0] >= 0 ? r->chw + 3 * nd->in[0] : NULL,
        .out_chw = r->chw + 3 * i,
    };
    k.chunks = (k.out_chw[0] + KDC__CH_CHUNK - 1) / KDC__CH_CHUNK;
    kdc__pool_run(r->pool, r->n * k.chunks, kdc__node_task, &k);
}

kdc_status kdc_run_forward(kdc_run *r, const float *input, int n, int h, int w, const int *keep,
                           int nkeep)
{
    kdc_status st;
    if (!r || !input)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_forward: NULL argument");
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
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
    memcpy(r->buf[r->slot[0]], input, numel * sizeof *input);
    for (int i = 1; i < nn; i++)
        kdc__run_node(r, i);
    r->done = 1;
    return KDC_OK;
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
