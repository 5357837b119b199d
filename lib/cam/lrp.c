/* lrp.c - Layer-wise Relevance Propagation (Bach et al., PLoS ONE 2015;
 * Montavon et al., "Layer-Wise Relevance Propagation: An Overview", 2019),
 * the epsilon and gamma rules as Captum defines them (captum/attr/_core/
 * lrp.py, _utils/lrp_rules.py: EpsilonRule, GammaRule). The relevance of the
 * output is the target logit of the class, R = z_c at c and 0 elsewhere;
 * each op hands its output relevance R down to its inputs:
 *   convolution (BatchNorm folded into it: w = scale * W, b = scale * bias +
 *     shift, as zennit's and the overview's canonical CNN rules do) and a
 *     lone BatchNorm: R_x = x * W'^T (R / (z' + eps * sign(z'))), sign(0) = 1;
 *     epsilon rule: W' = w, z' = the layer's output; gamma rule: W' = w +
 *     gamma * max(w, 0), b' = b + gamma * max(b, 0), z' = W' x + b';
 *   fully connected layer: the epsilon rule in both modes (the dense layer
 *     of zennit's EpsilonGammaBox composite);
 *   residual sum (ADD): proportional to the contributions,
 *     R_a = a * R / (z + eps * sign(z)), R_b = b * R / (...), z = a + b;
 *   ReLU / ReLU6: relevance passes unchanged (Captum's pass-through layers);
 *   max pooling: the epsilon rule on the window's winner (Captum's
 *     EpsilonRule on MaxPool2d: the gradient goes to the argmax);
 *   global average pooling: the epsilon rule, R_x = x / hw * R / (z + ...).
 * The relevance of a layer is its output's; a convolution with BatchNorm
 * folded into it has the relevance of the BatchNorm output. One image at a
 * time on the reference kernels (prop_internal.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "prop_internal.h"
#include "runner.h"

typedef struct kdc__lrp {
    kdc__prop *p;
    float **R;          /* (n_nodes) relevance of image 0, or NULL */
    int gamma_rule;     /* KDC_LRP_GAMMA */
    float eps, gamma;
} kdc__lrp;

static float *kdc__lrp_buf(kdc__lrp *c, int i)
{
    if (!c->R[i])
        c->R[i] = calloc(kdc__prop_numel(c->p, i), sizeof(float));
    return c->R[i];
}

/* R / (z + eps * sign(z)), sign(0) = 1 */
static inline float kdc__stab(float r, float z, float eps)
{
    return r / (z + (z >= 0.0f ? eps : -eps));
}

/* A convolution whose output relevance R sits at node `top` (itself, or
 * the AFFINE folded into it). */
static kdc_status kdc__lrp_conv_at(kdc__lrp *c, int conv, int top)
{
    const struct kdc_model *m = c->p->m;
    kdc__node nd;
    kdc_status st = kdc__prop_node(c->p, conv, &nd);
    if (st)
        return st;
    kdc__conv_param cp = nd.p.conv;
    const float *scale = top != conv ? m->nodes[top].p.affine.scale : NULL;
    const float *shift = top != conv ? m->nodes[top].p.affine.shift : NULL;
    const int *ic = c->p->chw + 3 * nd.in[0], *oc = c->p->chw + 3 * top;
    const size_t K = (size_t)cp.cin / cp.groups * cp.kh * cp.kw;
    const size_t ohw = (size_t)oc[1] * oc[2], isz = kdc__prop_numel(c->p, nd.in[0]);
    const float *x = c->p->act[nd.in[0]], *R = c->R[top];
    float *w = malloc((size_t)cp.cout * K * sizeof *w), *bias = malloc(cp.cout * sizeof *bias);
    float *z = c->gamma_rule ? malloc(cp.cout * ohw * sizeof *z) : NULL;
    float *s = malloc(cp.cout * ohw * sizeof *s), *g = calloc(isz, sizeof *g);
    float *Rx = kdc__lrp_buf(c, nd.in[0]);
    if (!w || !bias || (c->gamma_rule && !z) || !s || !g || !Rx) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd.name);
        goto out;
    }
    for (int o = 0; o < cp.cout; o++) {
        const float sc = scale ? scale[o] : 1.0f;
        float bo = sc * (cp.bias ? cp.bias[o] : 0.0f) + (shift ? shift[o] : 0.0f);
        for (size_t k = 0; k < K; k++) {
            float v = sc * cp.weight[(size_t)o * K + k];
            w[(size_t)o * K + k] = c->gamma_rule ? v + c->gamma * fmaxf(v, 0.0f) : v;
        }
        bias[o] = c->gamma_rule ? bo + c->gamma * fmaxf(bo, 0.0f) : bo;
    }
    cp.weight = w;
    cp.bias = bias;
    if (c->gamma_rule)
        kdc__conv2d_ref(&cp, x, ic[1], ic[2], z, oc[1], oc[2], 0, 0, cp.cout);
    const float *zz = c->gamma_rule ? z : c->p->act[top];
    for (size_t j = 0; j < cp.cout * ohw; j++)
        s[j] = kdc__stab(R[j], zz[j], c->eps);
    kdc__conv2d_backward_data_ref(&cp, s, oc[1], oc[2], g, ic[1], ic[2], 0, 0, cp.cin);
    for (size_t j = 0; j < isz; j++)
        Rx[j] += x[j] * g[j];
out:
    free(w);
    free(bias);
    free(z);
    free(s);
    free(g);
    return st;
}

static kdc_status kdc__lrp_conv(void *ctx, int i)
{
    kdc__lrp *c = ctx;
    return kdc__lrp_conv_at(c, i, i);
}

/* The CONV an AFFINE node folds into (its only reader), or -1. */
static int kdc__lrp_folded(const kdc__prop *p, int i)
{
    const kdc__node *nd = &p->m->nodes[i];
    const int in = nd->in[0];
    if (nd->op == KDC__OP_AFFINE && in > 0 && p->m->nodes[in].op == KDC__OP_CONV &&
        p->consumers[in] == 1)
        return in;
    return -1;
}

static kdc_status kdc__lrp_affine(void *ctx, int i)
{
    kdc__lrp *c = ctx;
    const int conv = kdc__lrp_folded(c->p, i);
    if (conv >= 0)
        return kdc__lrp_conv_at(c, conv, i);
    const kdc__node *nd = &c->p->m->nodes[i];
    const int *oc = c->p->chw + 3 * i;
    const size_t hw = (size_t)oc[1] * oc[2];
    const float *x = c->p->act[nd->in[0]], *y = c->p->act[i], *R = c->R[i];
    float *Rx = kdc__lrp_buf(c, nd->in[0]);
    if (!Rx)
        return kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd->name);
    for (int ch = 0; ch < oc[0]; ch++) {
        float s = nd->p.affine.scale[ch], b = nd->p.affine.shift[ch];
        if (c->gamma_rule) {
            s += c->gamma * fmaxf(s, 0.0f);
            b += c->gamma * fmaxf(b, 0.0f);
        }
        for (size_t j = ch * hw; j < (ch + 1) * hw; j++) {
            const float z = c->gamma_rule ? x[j] * s + b : y[j];
            Rx[j] += x[j] * s * kdc__stab(R[j], z, c->eps);
        }
    }
    return KDC_OK;
}

static kdc_status kdc__lrp_linear(void *ctx, int i)
{
    kdc__lrp *c = ctx;
    kdc__node nd;
    kdc_status st = kdc__prop_node(c->p, i, &nd);
    if (st)
        return st;
    const int K = nd.p.conv.cout, I = nd.p.conv.cin;
    const float *x = c->p->act[nd.in[0]], *y = c->p->act[i], *R = c->R[i];
    float *s = malloc(K * sizeof *s), *g = calloc(I, sizeof *g), *Rx = kdc__lrp_buf(c, nd.in[0]);
    if (!s || !g || !Rx) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd.name);
    } else {
        for (int k = 0; k < K; k++)
            s[k] = kdc__stab(R[k], y[k], c->eps);
        kdc__linear_backward_ref(&nd.p.conv, s, g, 0, I);
        for (int j = 0; j < I; j++)
            Rx[j] += x[j] * g[j];
    }
    free(s);
    free(g);
    return st;
}

static kdc_status kdc__lrp_relu(void *ctx, int i)
{
    kdc__lrp *c = ctx;
    const kdc__node *nd = &c->p->m->nodes[i];
    const size_t cnt = kdc__prop_numel(c->p, i);
    const float *R = c->R[i];
    if (nd->op == KDC__OP_RELU) {
        float *Rx = kdc__lrp_buf(c, nd->in[0]);
        if (!Rx)
            return kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd->name);
        for (size_t j = 0; j < cnt; j++)
            Rx[j] += R[j];
        return KDC_OK;
    }
    /* ADD_RELU: the sum shares its relevance by contribution */
    const float *a = c->p->act[nd->in[0]], *b = c->p->act[nd->in[1]];
    float *Ra = kdc__lrp_buf(c, nd->in[0]), *Rb = kdc__lrp_buf(c, nd->in[1]);
    if (!Ra || !Rb)
        return kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd->name);
    for (size_t j = 0; j < cnt; j++) {
        const float s = kdc__stab(R[j], a[j] + b[j], c->eps);
        Ra[j] += a[j] * s;
        Rb[j] += b[j] * s;
    }
    return KDC_OK;
}

static kdc_status kdc__lrp_maxpool(void *ctx, int i)
{
    kdc__lrp *c = ctx;
    const kdc__node *nd = &c->p->m->nodes[i];
    const int *ic = c->p->chw + 3 * nd->in[0], *oc = c->p->chw + 3 * i;
    const int C = oc[0];
    const size_t ihw = (size_t)ic[1] * ic[2], ohw = (size_t)oc[1] * oc[2];
    const float *x = c->p->act[nd->in[0]], *y = c->p->act[i], *R = c->R[i];
    float *tmp = malloc(C * ohw * sizeof *tmp), *g = calloc(C * ihw, sizeof *g);
    int32_t *idx = malloc(C * ohw * sizeof *idx);
    float *Rx = kdc__lrp_buf(c, nd->in[0]);
    kdc_status st = KDC_OK;
    if (!tmp || !g || !idx || !Rx) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd->name);
        goto out;
    }
    kdc__maxpool_idx_ref(x, ic[1], ic[2], tmp, idx, oc[1], oc[2], nd->p.pool.k,
                         nd->p.pool.stride, nd->p.pool.pad, 0, C);
    for (size_t j = 0; j < C * ohw; j++)
        tmp[j] = kdc__stab(R[j], y[j], c->eps);
    kdc__maxpool_backward_ref(tmp, idx, ohw, g, ihw, 0, C);
    for (size_t j = 0; j < C * ihw; j++)
        Rx[j] += x[j] * g[j];
out:
    free(tmp);
    free(g);
    free(idx);
    return st;
}

static kdc_status kdc__lrp_gap(void *ctx, int i)
{
    kdc__lrp *c = ctx;
    const kdc__node *nd = &c->p->m->nodes[i];
    const int *ic = c->p->chw + 3 * nd->in[0];
    const size_t hw = (size_t)ic[1] * ic[2];
    const float *x = c->p->act[nd->in[0]], *y = c->p->act[i], *R = c->R[i];
    float *Rx = kdc__lrp_buf(c, nd->in[0]);
    if (!Rx)
        return kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory at %s", nd->name);
    for (int ch = 0; ch < ic[0]; ch++) {
        const float s = kdc__stab(R[ch], y[ch], c->eps) / (float)hw;
        for (size_t j = ch * hw; j < (ch + 1) * hw; j++)
            Rx[j] += x[j] * s;
    }
    return KDC_OK;
}

/* The rule of each op; NULL: not supported. */
static const kdc__prop_rule kdc__lrp_rules[KDC__OP_COUNT] = {
    [KDC__OP_CONV] = kdc__lrp_conv,
    [KDC__OP_AFFINE] = kdc__lrp_affine,
    [KDC__OP_RELU] = kdc__lrp_relu,
    [KDC__OP_ADD_RELU] = kdc__lrp_relu,
    [KDC__OP_MAXPOOL] = kdc__lrp_maxpool,
    [KDC__OP_GAP] = kdc__lrp_gap,
    [KDC__OP_LINEAR] = kdc__lrp_linear,
};

/* One image (p->act from its forward): the relevance at `layer` into out. */
static kdc_status kdc__lrp_one(kdc__lrp *c, int cls, int layer, float *out)
{
    const struct kdc_model *m = c->p->m;
    const int nn = m->n_nodes;
    kdc_status st = KDC_OK;
    if (!kdc__lrp_buf(c, nn - 1))
        return kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory");
    c->R[nn - 1][cls] = c->p->act[nn - 1][cls];
    for (int i = nn - 1; i >= layer; i--) {
        /* a CONV folded with its AFFINE shares the AFFINE's relevance */
        const int src = i < nn - 1 && kdc__lrp_folded(c->p, i + 1) == i ? i + 1 : i;
        if (i == layer) {
            const size_t cnt = kdc__prop_numel(c->p, i);
            if (c->R[src])
                memcpy(out, c->R[src], cnt * sizeof *out);
            else
                memset(out, 0, cnt * sizeof *out);
            break;
        }
        if (!c->R[i] || src != i)
            continue;
        if ((st = kdc__prop_apply(c->p, kdc__lrp_rules, c, i, "lrp")))
            return st;
        /* keep the AFFINE of a folded pair until its CONV is passed */
        if (kdc__lrp_folded(c->p, i) < 0 || layer != i - 1) {
            free(c->R[i]);
            c->R[i] = NULL;
        }
    }
    return st;
}

kdc_status kdc_lrp_relevance(kdc_run *run, const float *input, int n, int h, int w,
                             const kdc_attribution_options *opt, int layer, float *out,
                             size_t count)
{
    if (!run || !input || !opt || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_lrp_relevance: %s is NULL",
                         !run ? "run" : !input ? "input" : !opt ? "opt" : "out");
    const struct kdc_model *m = kdc__run_model(run);
    kdc_status st = kdc__prop_check_target(&opt->target, "lrp");
    if (st)
        return st;
    if (n < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "lrp: bad input shape %dx3x%dx%d", n, h, w);
    if (layer < 0 || layer >= m->n_nodes)
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d", m->arch,
                         layer, m->n_nodes - 1);
    if (opt->lrp_rule != KDC_LRP_EPSILON && opt->lrp_rule != KDC_LRP_GAMMA)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "lrp: rule %d is not KDC_LRP_EPSILON (0) or "
                         "KDC_LRP_GAMMA (1)", opt->lrp_rule);
    if (!(opt->lrp_epsilon >= 0.0f) || !isfinite(opt->lrp_epsilon) ||
        !(opt->lrp_gamma >= 0.0f) || !isfinite(opt->lrp_gamma))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "lrp: epsilon %g and gamma %g must be finite "
                         "values >= 0", (double)opt->lrp_epsilon, (double)opt->lrp_gamma);
    kdc__prop p;
    kdc__lrp c = {.p = &p, .gamma_rule = opt->lrp_rule == KDC_LRP_GAMMA,
                  .eps = opt->lrp_epsilon > 0.0f ? opt->lrp_epsilon : 1e-9f,
                  .gamma = opt->lrp_gamma > 0.0f ? opt->lrp_gamma : 0.25f};
    if ((st = kdc__prop_init(&p, m, 1, h, w)))
        goto out;
    const size_t img = kdc__prop_numel(&p, 0), per = kdc__prop_numel(&p, layer);
    if (count < (size_t)n * per) {
        st = kdc__fail(KDC_ERR_INVALID_ARGUMENT, "lrp: relevance at %s has %zu values, the "
                       "buffer %zu", m->nodes[layer].name, (size_t)n * per, count);
        goto out;
    }
    c.R = calloc((size_t)m->n_nodes, sizeof *c.R);
    if (!c.R) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "lrp: out of memory");
        goto out;
    }
    for (int b = 0; b < n && !st; b++) {
        int cls;
        if ((st = kdc__prop_forward(&p, input + (size_t)b * img)) ||
            (st = kdc__prop_class(&p, opt->target.classes, b, &cls)))
            break;
        st = kdc__lrp_one(&c, cls, layer, out + (size_t)b * per);
        for (int i = 0; i < m->n_nodes; i++) {
            free(c.R[i]);
            c.R[i] = NULL;
        }
    }
out:
    free(c.R);
    kdc__prop_free(&p);
    return st;
}
