/* deeplift.c - DeepLift with the rescale rule (Shrikumar, Greenside,
 * Kundaje, ICML 2017), with Captum's semantics (captum/attr/_core/
 * deep_lift.py): the network runs on the input and on a reference input
 * (the baseline); multipliers m = "d" target / "d" output travel down like
 * gradients, linear ops (convolutions, BatchNorm, average pools, fully
 * connected layers, the residual sum) pass them as gradients do, and each
 * nonlinearity replaces its derivative by a ratio of differences:
 *   ReLU / ReLU6 (and the ReLU after a residual sum, applied to the sum):
 *     m_x = m_y * (y - y0) / (x - x0), or m_y * dy/dx where |x - x0| < 1e-10;
 *   max pooling (Captum's maxpool rule): U = max_unpool(m_y * (max(y, y0) -
 *     y0)) at the input's argmax, m_x = U / (x - x0), or the plain max-pool
 *     gradient where |x - x0| < 1e-10. Captum's max_unpool2d assigns, so
 *     where overlapping windows share a winner only the last window in
 *     raster order counts (PyTorch's CPU kernel); this does the same.
 * The attribution is (x - x0) * m at the input. One image (with its
 * reference) at a time on the reference kernels (prop_internal.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "prop_internal.h"
#include "runner.h"

#define KDC__DL_EPS 1e-10f

typedef struct kdc__dl {
    kdc__prop *p;
    float **g;            /* (n_nodes) multipliers of image 0, or NULL */
} kdc__dl;

/* The multiplier buffer of node i, zeroed on first use. */
static float *kdc__dl_buf(kdc__dl *d, int i)
{
    if (!d->g[i])
        d->g[i] = calloc(kdc__prop_numel(d->p, i), sizeof(float));
    return d->g[i];
}

static inline float kdc__rescale(float my, float x, float x0, float y, float y0, float grad)
{
    const float dx = x - x0;
    return fabsf(dx) < KDC__DL_EPS ? my * grad : my * (y - y0) / dx;
}

/* Linear ops: the op table's backward (a plain gradient). */
static kdc_status kdc__dl_linear(void *ctx, int i)
{
    kdc__dl *d = ctx;
    kdc__node nd;
    kdc_status st = kdc__prop_node(d->p, i, &nd);
    if (st)
        return st;
    kdc__op_args a;
    kdc__prop_args(d->p, i, &nd, &a);
    a.dy = d->g[i];
    if (!(a.dx = kdc__dl_buf(d, nd.in[0])) || (nd.in[1] >= 0 && !(a.dx2 = kdc__dl_buf(d, nd.in[1]))))
        return kdc__fail(KDC_ERR_NO_MEMORY, "deeplift: out of memory");
    kdc__op_table[nd.op]->backward(&a, 0, 0, a.in_chw[0]);
    return KDC_OK;
}

/* RELU and ADD_RELU: rescale on the (summed) input. */
static kdc_status kdc__dl_relu(void *ctx, int i)
{
    kdc__dl *d = ctx;
    const kdc__node *nd = &d->p->m->nodes[i];
    const size_t cnt = kdc__prop_numel(d->p, i);
    const float *y = d->p->act[i], *y0 = y + cnt, *my = d->g[i];
    const float *a = d->p->act[nd->in[0]], *a0 = a + cnt;
    const float *b = nd->in[1] >= 0 ? d->p->act[nd->in[1]] : NULL, *b0 = b ? b + cnt : NULL;
    const float clamp = nd->p.act.clamp;
    float *ga = kdc__dl_buf(d, nd->in[0]), *gb = b ? kdc__dl_buf(d, nd->in[1]) : NULL;
    if (!ga || (b && !gb))
        return kdc__fail(KDC_ERR_NO_MEMORY, "deeplift: out of memory");
    for (size_t j = 0; j < cnt; j++) {
        const float x = b ? a[j] + b[j] : a[j], x0 = b ? a0[j] + b0[j] : a0[j];
        const float grad = x > 0.0f && x < clamp ? 1.0f : 0.0f;
        const float m = kdc__rescale(my[j], x, x0, y[j], y0[j], grad);
        ga[j] += m;
        if (gb)
            gb[j] += m;
    }
    return KDC_OK;
}

static kdc_status kdc__dl_maxpool(void *ctx, int i)
{
    kdc__dl *d = ctx;
    const kdc__node *nd = &d->p->m->nodes[i];
    const int *ic = d->p->chw + 3 * nd->in[0], *oc = d->p->chw + 3 * i;
    const int C = oc[0];
    const size_t ihw = (size_t)ic[1] * ic[2], ohw = (size_t)oc[1] * oc[2];
    const float *x = d->p->act[nd->in[0]], *x0 = x + C * ihw;
    const float *y = d->p->act[i], *y0 = y + C * ohw, *my = d->g[i];
    float *gx = kdc__dl_buf(d, nd->in[0]);
    float *tmp = malloc(C * ohw * sizeof *tmp), *grad = calloc(C * ihw, sizeof *grad);
    float *un = calloc(C * ihw, sizeof *un);
    int32_t *idx = malloc(C * ohw * sizeof *idx);
    kdc_status st = KDC_OK;
    if (!gx || !tmp || !grad || !un || !idx) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "deeplift: out of memory at %s", nd->name);
        goto out;
    }
    kdc__maxpool_idx_ref(x, ic[1], ic[2], tmp, idx, oc[1], oc[2], nd->p.pool.k,
                         nd->p.pool.stride, nd->p.pool.pad, 0, C);
    kdc__maxpool_backward_ref(my, idx, ohw, grad, ihw, 0, C);
    for (int c = 0; c < C; c++)
        for (size_t o = 0; o < ohw; o++) {
            const size_t k = (size_t)c * ohw + o;
            if (idx[k] >= 0) /* assignment: max_unpool2d */
                un[(size_t)c * ihw + idx[k]] = my[k] * (fmaxf(y[k], y0[k]) - y0[k]);
        }
    for (size_t j = 0; j < C * ihw; j++) {
        const float dx = x[j] - x0[j];
        gx[j] += fabsf(dx) < KDC__DL_EPS ? grad[j] : un[j] / dx;
    }
out:
    free(tmp);
    free(grad);
    free(un);
    free(idx);
    return st;
}

/* The rule of each op; NULL: not supported. */
static const kdc__prop_rule kdc__dl_rules[KDC__OP_COUNT] = {
    [KDC__OP_CONV] = kdc__dl_linear,
    [KDC__OP_AFFINE] = kdc__dl_linear,
    [KDC__OP_RELU] = kdc__dl_relu,
    [KDC__OP_ADD_RELU] = kdc__dl_relu,
    [KDC__OP_MAXPOOL] = kdc__dl_maxpool,
    [KDC__OP_GAP] = kdc__dl_linear,
    [KDC__OP_LINEAR] = kdc__dl_linear,
};

/* One image: out (3 x h x w) from the pair xx (input, reference). */
static kdc_status kdc__deeplift_one(kdc__prop *p, const float *xx, const int *classes, int b,
                                    float *out)
{
    const struct kdc_model *m = p->m;
    const int nn = m->n_nodes;
    kdc__dl d = {.p = p, .g = calloc((size_t)nn, sizeof(float *))};
    if (!d.g)
        return kdc__fail(KDC_ERR_NO_MEMORY, "deeplift: out of memory");
    int cls;
    kdc_status st = kdc__prop_forward(p, xx);
    if (!st)
        st = kdc__prop_class(p, classes, b, &cls);
    if (st)
        goto out;
    if (!kdc__dl_buf(&d, nn - 1)) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "deeplift: out of memory");
        goto out;
    }
    d.g[nn - 1][cls] = 1.0f;
    for (int i = nn - 1; i > 0; i--) {
        if (!d.g[i])
            continue;
        if ((st = kdc__prop_apply(p, kdc__dl_rules, &d, i, "deeplift")))
            goto out;
        free(d.g[i]);
        d.g[i] = NULL;
    }
    const size_t img = kdc__prop_numel(p, 0);
    for (size_t j = 0; j < img; j++)
        out[j] = d.g[0] ? (xx[j] - xx[img + j]) * d.g[0][j] : 0.0f;
out:
    for (int i = 0; i < nn; i++)
        free(d.g[i]);
    free(d.g);
    return st;
}

kdc_status kdc__deeplift(kdc_run *run, const float *input, int n, int h, int w,
                         const kdc_attribution_options *opt, float *out)
{
    kdc_status st = kdc__prop_check_target(&opt->target, "deeplift");
    if (st)
        return st;
    const struct kdc_model *m = kdc__run_model(run);
    const size_t img = 3 * (size_t)h * w;
    for (int b = 0; b < n && opt->baseline; b++)
        for (size_t j = 0; j < img; j++)
            if (!isfinite(opt->baseline[(size_t)b * img + j]))
                return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "deeplift: baseline value %zu of "
                                 "image %d is not finite", j, b);
    kdc__prop p;
    float *xx = malloc(2 * img * sizeof *xx);
    if (!xx)
        return kdc__fail(KDC_ERR_NO_MEMORY, "deeplift: out of memory");
    if ((st = kdc__prop_init(&p, m, 2, h, w)))
        goto out;
    for (int b = 0; b < n; b++) {
        memcpy(xx, input + (size_t)b * img, img * sizeof *xx);
        if (opt->baseline)
            memcpy(xx + img, opt->baseline + (size_t)b * img, img * sizeof *xx);
        else
            memset(xx + img, 0, img * sizeof *xx);
        if ((st = kdc__deeplift_one(&p, xx, opt->target.classes, b, out + (size_t)b * img)))
            goto out;
    }
out:
    kdc__prop_free(&p);
    free(xx);
    return st;
}
