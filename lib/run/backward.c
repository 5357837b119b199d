/* backward.c - gradients of a target with respect to layer outputs.
 *
 * kdc_run_backward seeds the gradient at the target and walks the nodes
 * from it down to the lowest requested layer; each op's backward task (op
 * table) adds into its inputs' gradients, so a residual join's input gets
 * the sum of both paths. Dense convs and LINEAR use the GEMM's
 * backward-data (conv_gemm.c). Gradient buffers come from a per-run pool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "run.h"
#include "conv_wino.h"
#include "sched.h"

/* Zeroing n floats at p, in one contiguous part per thread (as many
 * threads as the size pays for): a gradient buffer is zeroed between two
 * parallel ops, where one thread alone would leave the others waiting
 * (6% of a 2-thread MobileNetV1 guided pass). */
typedef struct kdc__zero_job {
    float *p;
    size_t n, part;
} kdc__zero_job;

static void kdc__zero_task(void *ctx, int t)
{
    const kdc__zero_job *z = ctx;
    const size_t a = (size_t)t * z->part, b = a + z->part < z->n ? a + z->part : z->n;
    if (a < b)
        memset(z->p + a, 0, (b - a) * sizeof(float));
}

static void kdc__zero(kdc_run *r, float *p, size_t n)
{
    const int th = kdc__sched_cap((double)n, KDC__SCHED_MIN_FLOATS, kdc__pool_threads(r->pool));
    if (th <= 1) {
        memset(p, 0, n * sizeof(float));
        return;
    }
    /* parts of whole 64-byte lines */
    kdc__zero_job z = {p, n, ((n + (size_t)th - 1) / (size_t)th + 15) & ~(size_t)15};
    kdc__pool_run_capped(r->pool, th, th, kdc__zero_task, &z);
}

/* A gradient buffer of numel floats from the run's pool (best fit among
 * the free ones; grown or added when none fits), zeroed when zero. */
static int kdc__grad_acquire_ex(kdc_run *r, size_t numel, int zero)
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
        /* its contents go (zeroed below): freed first, for the peak */
        free(r->gbuf[best]);
        r->gbuf[best] = NULL;
        r->gcap[best] = 0;
        float *p = kdc__falloc(numel);
        if (!p)
            return -1;
        r->gbuf[best] = p;
        r->gcap[best] = numel;
        if (best == r->n_gbuf)
            r->n_gbuf++;
    }
    r->gused[best] = 1;
    if (zero)
        kdc__zero(r, r->gbuf[best], numel);
    return best;
}

int kdc__grad_acquire(kdc_run *r, size_t numel)
{
    return kdc__grad_acquire_ex(r, numel, 1);
}

/* Node j's gradient buffer, made if it has none yet: zeroed, or with zero
 * 0 left as it is for a caller that writes all of it. */
static kdc_status kdc__grad_need_ex(kdc_run *r, int j, int zero)
{
    if (r->grad_of[j] >= 0)
        return KDC_OK;
    const int g = kdc__grad_acquire_ex(r, kdc__numel(r, j), zero);
    if (g < 0)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for gradients");
    r->grad_of[j] = g;
    return KDC_OK;
}

static kdc_status kdc__grad_need(kdc_run *r, int j)
{
    return kdc__grad_need_ex(r, j, 1);
}

void kdc__grad_release_all(kdc_run *r)
{
    for (int i = 0; i < r->m->n_nodes; i++)
        r->grad_of[i] = -1;
    memset(r->gused, 0, (size_t)r->m->n_nodes);
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

/* Adds a seed to the gradient of a layer's output (a new, zeroed one if it
 * has none yet): the start of a KDC_TARGET_SEED backward, once per seed. */
static kdc_status kdc__seed_add(kdc_run *r, int layer, const float *seed)
{
    const size_t cnt = kdc__numel(r, layer);
    for (size_t i = 0; i < cnt; i++)
        if (!isfinite(seed[i]))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "seed at %s: value %zu is not finite",
                             r->m->nodes[layer].name, i);
    if (r->grad_of[layer] < 0) {
        int g = kdc__grad_acquire(r, cnt);
        if (g < 0)
            return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for gradients");
        r->grad_of[layer] = g;
    }
    float *d = r->gbuf[r->grad_of[layer]];
    for (size_t i = 0; i < cnt; i++)
        d[i] += seed[i];
    return KDC_OK;
}

/* dx += conv^T(dy) of dense conv i: by Winograd where it applies (the
 * same conv with the kernel turned, conv_wino.h), else the direct GEMM
 * and col2im. The gradient of its input (node in) is made here when it
 * has none yet: not zeroed first where the GEMM can overwrite it. */
static kdc_status kdc__conv_backward(kdc_run *r, int i, int in)
{
    const kdc_model *m = r->m;
    const kdc__conv_param *cp = &m->nodes[i].p.conv;
    const int *out_chw = r->chw + 3 * i, *in_chw = r->chw + 3 * in;
    const int wino = kdc__wino_eligible(cp, out_chw[1], out_chw[2]);
    const float *wt;
    kdc_status st;
    if ((st = kdc__run_weights(r, i, wino ? KDC__DERIVED_WINO_T : KDC__DERIVED_T, &wt)) ||
        (st = kdc__work_reserve(&r->ws, kdc__pool_threads(r->pool))) ||
        (wino && (st = kdc__wino_reserve(&r->ws, cp, out_chw[1], out_chw[2]))))
        return st;
    const int accumulate = r->grad_of[in] >= 0 || wino || !kdc__conv_backward_overwrites(cp);
    if ((st = kdc__grad_need_ex(r, in, accumulate)))
        return st;
    const float *dy = r->gbuf[r->grad_of[i]];
    float *dx = r->gbuf[r->grad_of[in]];
    if (!wino)
        return kdc__conv2d_backward_data_fast(r->pool, &r->ws, m->gemm, cp, wt, dy, r->n,
                                              out_chw[1], out_chw[2], dx, in_chw[1], in_chw[2],
                                              accumulate);
    kdc__conv2d_backward_data_wino(r->pool, &r->ws, m->gemm, cp, wt, dy, r->n, out_chw[1],
                                   out_chw[2], dx);
    return KDC_OK;
}

/* Whether AFFINE node a, an input of node i (a ReLU or add+ReLU with a
 * recorded mask), can have its backward done by node i's: a lies above
 * the lowest layer, is read by node i alone (the plan's last reader; a
 * kept node's is past the end), its output gradient is not asked for and
 * nothing has been added to it, and its input's gradient is wanted. */
static int kdc__affine_rides(const kdc_run *r, int i, int a, int lowest)
{
    const kdc_model *m = r->m;
    return a > lowest && m->nodes[a].op == KDC__OP_AFFINE && r->last_use[a] == i &&
           !r->gkeep[a] && r->grad_of[a] < 0 && m->nodes[a].in[0] >= lowest;
}

/* Whether node i's backward takes a BatchNorm before it along: a ReLU
 * the AFFINE right before it, an add+ReLU (a residual join) either of
 * its two inputs that is an AFFINE (kdc__affine_rides). Then both
 * backward passes run as one (kdc__relu_scale_backward_fn: the same float
 * operations, so the same bits) and the AFFINE's gradient is never made. */
static int kdc__relu_affine_fusable(const kdc_run *r, int i, int lowest)
{
    const kdc__node *nd = &r->m->nodes[i];
    if (!r->mask[i])
        return 0;
    if (nd->op == KDC__OP_RELU)
        return nd->in[0] == i - 1 && kdc__affine_rides(r, i, i - 1, lowest);
    return nd->op == KDC__OP_ADD_RELU && nd->in[0] != nd->in[1] &&
           (kdc__affine_rides(r, i, nd->in[0], lowest) ||
            kdc__affine_rides(r, i, nd->in[1], lowest));
}

/* The fused backward of a task whose node is the ReLU or add+ReLU: into
 * each input's gradient through its BatchNorm's scale (written when that
 * gradient is new), or with no scale the plain ReLU backward (op table
 * signature; the inputs have the output's shape). */
static void kdc__relu_affine_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t hw = (size_t)a->out_chw[1] * a->out_chw[2], img = (size_t)b * C * hw;
    const float *dy = a->dy + img;
    const uint64_t *mask = a->mask + (size_t)b * C * ((hw + 63) / 64);
    float *const dx[2] = {a->dx, a->dx2};
    const float *const scale[2] = {a->dx_scale, a->dx2_scale};
    const int fresh[2] = {a->dx_fresh, a->dx2_fresh};
    for (int j = 0; j < 2; j++) {
        if (!dx[j])
            continue;
        if (scale[j])
            a->m->act->relu_scale_backward(dy, mask, dx[j] + img, hw, a->guided, scale[j], c0,
                                           c1, !fresh[j]);
        else
            a->m->act->relu_backward(dy, mask, dx[j] + img, hw, a->guided, c0, c1);
    }
}

static const kdc__op_def kdc__op_relu_affine_backward = {
    .name = "relu+affine backward",
    .backward = kdc__relu_affine_backward,
};

/* Node i, a ReLU or add+ReLU, and the AFFINEs before it that ride along
 * (kdc__relu_affine_fusable): one pass into the gradients of the
 * AFFINEs' inputs (and of an input that is no AFFINE), which it writes
 * without zeroing first when such a gradient is new (its tasks cover
 * every channel of every image). */
static kdc_status kdc__relu_affine_node(kdc_run *r, int i, int lowest, int guided)
{
    const kdc_model *m = r->m;
    const kdc__node *nd = &m->nodes[i];
    const int nin = nd->op == KDC__OP_ADD_RELU ? 2 : 1;
    int to[2] = {-1, -1}, fresh[2] = {0, 0};
    const float *scale[2] = {NULL, NULL};
    for (int j = 0; j < nin; j++) {
        int in = nd->in[j];
        const int rides = kdc__affine_rides(r, i, in, lowest);
        if (rides) {
            scale[j] = m->nodes[in].p.affine.scale;
            in = m->nodes[in].in[0];
        } else if (in < lowest) {
            continue;
        }
        fresh[j] = rides && r->grad_of[in] < 0;
        kdc_status st = kdc__grad_need_ex(r, in, !fresh[j]);
        if (st)
            return st;
        to[j] = in;
    }
    /* after every acquire (which may move buffers) */
    kdc__task k = {.op = &kdc__op_relu_affine_backward, .backward = 1,
                   .a = {.m = m, .nd = nd, .guided = guided,
                         .mask = r->mask[i], .in_chw = r->chw + 3 * nd->in[0],
                         .out_chw = r->chw + 3 * i, .dy = r->gbuf[r->grad_of[i]],
                         .dx = to[0] >= 0 ? r->gbuf[r->grad_of[to[0]]] : NULL,
                         .dx2 = to[1] >= 0 ? r->gbuf[r->grad_of[to[1]]] : NULL,
                         .dx_fresh = fresh[0], .dx2_fresh = fresh[1],
                         .dx_scale = scale[0], .dx2_scale = scale[1]}};
    kdc__task_run(r, &k);
    return KDC_OK;
}

/* Whether conv i's backward can carry on through the ReLU + BatchNorm pair
 * before it (node in, the ReLU, kdc__relu_affine_fusable), given a kernel
 * that can: the ReLU read by conv i alone, its gradient neither asked for
 * nor begun, and the BatchNorm input's gradient not begun either (it is
 * written whole). Then the conv's backward writes that gradient through
 * the pair, with the pair's float operations (the same bits), and neither
 * the ReLU's gradient nor the pair's own pass is made. */
static int kdc__through_fusable(const kdc_run *r, int i, int in, int lowest)
{
    const kdc_model *m = r->m;
    /* a plain ReLU only: a residual join's add+ReLU passes its gradient to
     * its other input as well */
    if (in <= lowest || m->nodes[in].op != KDC__OP_RELU || r->grad_of[in] >= 0 ||
        r->gkeep[in] || r->last_use[in] != i || !kdc__relu_affine_fusable(r, in, lowest))
        return 0;
    for (int j = in + 1; j < i; j++)
        if (m->nodes[j].in[0] == in || m->nodes[j].in[1] == in)
            return 0;
    return r->grad_of[m->nodes[in - 1].in[0]] < 0;
}

/* The dense convs that can (kdc__through_fusable): a 1x1 stride-1 conv,
 * on a GEMM table whose micro-kernel has the epilogue's backward form. */
static int kdc__conv_through_fusable(const kdc_run *r, int i, int in, int lowest)
{
    const kdc_model *m = r->m;
    return m->gemm->ep_bmask && m->nodes[i].op == KDC__OP_CONV &&
           kdc__conv_backward_overwrites(&m->nodes[i].p.conv) &&
           kdc__through_fusable(r, i, in, lowest);
}

/* Conv i's backward through the pair before it (kdc__conv_through_fusable):
 * the gradient of the BatchNorm's input, new. */
static kdc_status kdc__conv_through(kdc_run *r, int i, int in, int guided)
{
    const kdc_model *m = r->m;
    const kdc__node *af = &m->nodes[in - 1];
    const int c = af->in[0];
    const size_t hw = (size_t)r->chw[3 * in + 1] * r->chw[3 * in + 2];
    const float *wt;
    kdc_status st;
    if ((st = kdc__run_weights(r, i, KDC__DERIVED_T, &wt)) ||
        (st = kdc__work_reserve(&r->ws, kdc__pool_threads(r->pool))) ||
        (st = kdc__grad_need_ex(r, c, 0)))
        return st;
    const kdc__gemm_epilogue ep = {.scale = af->p.affine.scale, .bmask = r->mask[in],
                                   .bwords = (hw + 63) / 64, .guided = guided};
    kdc__conv2d_backward_data_through(r->pool, &r->ws, m->gemm, &m->nodes[i].p.conv, wt,
                                      r->gbuf[r->grad_of[i]], r->n, (int)hw, &ep,
                                      r->gbuf[r->grad_of[c]]);
    return KDC_OK;
}

/* The backward-data of LINEAR node i on the GEMM whose output gradient is
 * a logit target's seed (kdc__class_seed: per image a 1 at its class c,
 * zeros elsewhere), into its input's new gradient: row c of the weight,
 * read from the packed A. The GEMM would give exactly that: its chain from
 * +0 takes w * 0 terms (+0 or -0, leaving +0 or a nonzero sum alone) and
 * one w * 1, so each value is w, or +0 where w is a zero of either sign;
 * but it streams the whole weight for it (MobileNetV1's 4 MB: 0.19 ms, 0.8%
 * of a 1-thread guided pass; most of a Grad-CAM backward to layer4). */
static kdc_status kdc__linear_onehot_backward(kdc_run *r, int i)
{
    const kdc__conv_param *cp = &r->m->nodes[i].p.conv;
    const int in = r->m->nodes[i].in[0], k = cp->cin, mr = r->m->gemm->mr;
    kdc_status st = kdc__grad_need_ex(r, in, 0);
    if (st)
        return st;
    float *dx = r->gbuf[r->grad_of[in]];
    for (int b = 0; b < r->n; b++)
        for (int j = 0; j < k; j++) {
            const float w = kdc__gemm_packed_at(cp->packed, k, mr, r->classes[b], j);
            dx[(size_t)b * k + j] = w != 0.0f ? w : 0.0f;
        }
    return KDC_OK;
}

/* Node i's backward: its op's task (dense convs and LINEAR through the
 * GEMM) adds into the gradients of its inputs at or above lowest; onehot:
 * node i's output gradient is a logit target's seed, untouched. */
static kdc_status kdc__node_backward(kdc_run *r, int i, int lowest, int guided, int onehot)
{
    const kdc_model *m = r->m;
    const kdc__node *nd = &m->nodes[i];
    kdc__task k = {.op = kdc__op_table[nd->op], .backward = 1,
                   .a = {.m = m, .nd = nd, .guided = guided,
                         .mask = r->mask[i], .argmax = r->argmax[i],
                         .in_chw = r->chw + 3 * nd->in[0],
                         .in2_chw = nd->in[1] >= 0 ? r->chw + 3 * nd->in[1] : NULL,
                         .out_chw = r->chw + 3 * i}};
    if (kdc__conv_is_gemm(m, nd)) {
        if (nd->in[0] < lowest)
            return KDC_OK;
        if (onehot && nd->op == KDC__OP_LINEAR && r->grad_of[nd->in[0]] < 0 &&
            kdc__numel(r, nd->in[0]) == (size_t)r->n * nd->p.conv.cin)
            return kdc__linear_onehot_backward(r, i);
        return kdc__conv_through_fusable(r, i, nd->in[0], lowest)
                   ? kdc__conv_through(r, i, nd->in[0], guided)
                   : kdc__conv_backward(r, i, nd->in[0]);
    }
    float *dx[2] = {NULL, NULL};
    kdc_status st;
    /* the eight-channel depthwise backward writes a new input gradient
     * whole: not zeroed first */
    const int c8 = kdc__conv_dw_backward_c8(m, nd, k.a.in_chw[2]);
    if (c8 && kdc__through_fusable(r, i, nd->in[0], lowest)) {
        /* and carries on through the ReLU + BatchNorm before it
         * (kdc__dw_bthru): into the BatchNorm input's new gradient */
        const int in = nd->in[0], c = m->nodes[in - 1].in[0];
        if ((st = kdc__grad_need_ex(r, c, 0)))
            return st;
        k.a.dx = r->gbuf[r->grad_of[c]];
        k.a.dx_fresh = 1;
        k.a.dx_mask = r->mask[in];
        k.a.dx_scale = m->nodes[in - 1].p.affine.scale;
        k.a.dy = r->gbuf[r->grad_of[i]];
        k.quantum = 8;
        kdc__task_run(r, &k);
        return KDC_OK;
    }
    const int fresh = c8 && nd->in[0] >= lowest && r->grad_of[nd->in[0]] < 0;
    for (int j = 0; j < 2; j++) {
        const int in = nd->in[j];
        if (in < lowest)
            continue;
        if ((st = kdc__grad_need_ex(r, in, !(j == 0 && fresh))))
            return st;
        dx[j] = r->gbuf[r->grad_of[in]];
    }
    k.a.dx_fresh = fresh;
    if (c8)
        k.quantum = 8; /* whole groups of the kernel's eight lanes */
    /* dy may move if acquire reallocated: reload it */
    k.a.dy = r->gbuf[r->grad_of[i]];
    k.a.dx = dx[0];
    k.a.dx2 = dx[1];
    if (k.a.dx || k.a.dx2)
        kdc__task_run(r, &k);
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
        if (tg->seed2) {
            if (tg->layer2 < 0 || tg->layer2 >= nn)
                return kdc__fail(KDC_ERR_NOT_FOUND, "%s: second target layer index %d is out "
                                 "of range 0..%d", m->arch, tg->layer2, nn - 1);
            if (tg->layer2 > target)
                target = tg->layer2;
        }
    } else if (tg->kind != KDC_TARGET_LOGIT && tg->kind != KDC_TARGET_PROB) {
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown target kind %d", (int)tg->kind);
    }
    /* the forward's padding buffers are not needed below: give them back
     * before the gradients and columns are made */
    kdc__work_release_forward(&r->ws);
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
    kdc_status st;
    if (tg->kind == KDC_TARGET_SEED) {
        if ((st = kdc__seed_add(r, tg->layer, tg->seed)) ||
            (tg->seed2 && (st = kdc__seed_add(r, tg->layer2, tg->seed2))))
            return st;
    } else {
        int g = kdc__grad_acquire(r, kdc__numel(r, target));
        if (g < 0)
            return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for gradients");
        r->grad_of[target] = g;
        if ((st = kdc__class_seed(r, tg, r->gbuf[g])))
            return st;
    }

    for (int i = target; i > lowest; i--) {
        if (r->grad_of[i] < 0)
            continue;
        st = kdc__relu_affine_fusable(r, i, lowest)
                 ? kdc__relu_affine_node(r, i, lowest, guided)
                 : kdc__node_backward(r, i, lowest, guided,
                                      tg->kind == KDC_TARGET_LOGIT && i == target);
        if (st)
            return st;
        if (!r->gkeep[i]) {
            r->gused[r->grad_of[i]] = 0;
            r->grad_of[i] = -1;
        }
    }
    /* requested layers the target does not reach have a zero gradient */
    for (int i = 0; i < ngrad; i++)
        if ((st = kdc__grad_need(r, layers[i])))
            return st;
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
    return kdc__copy_out(r, layer, "gradient at", r->gbuf[r->grad_of[layer]], dst, count);
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
