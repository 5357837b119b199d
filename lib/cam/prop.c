/* prop.c - the propagation engine of DeepLift and LRP (prop_internal.h):
 * shapes, a forward pass on the reference kernels that keeps every output,
 * plain weights for layers the model keeps only packed, target classes. */
#include <stdlib.h>
#include <string.h>

#include "prop_internal.h"
#include "runner.h"

kdc_status kdc__prop_init(kdc__prop *p, const struct kdc_model *m, int B, int h, int w)
{
    memset(p, 0, sizeof *p);
    p->m = m;
    p->B = B;
    p->h = h;
    p->w = w;
    const int nn = m->n_nodes;
    p->chw = malloc(3 * (size_t)nn * sizeof *p->chw);
    p->act = calloc((size_t)nn, sizeof *p->act);
    p->consumers = calloc((size_t)nn, sizeof *p->consumers);
    if (!p->chw || !p->act || !p->consumers)
        return kdc__fail(KDC_ERR_NO_MEMORY, "propagation: out of memory");
    kdc_status st = kdc__infer_shapes(m, h, w, p->chw);
    if (st)
        return st;
    for (int i = 0; i < nn; i++) {
        for (int j = 0; j < 2; j++)
            if (m->nodes[i].in[j] >= 0)
                p->consumers[m->nodes[i].in[j]]++;
        p->act[i] = malloc((size_t)B * kdc__prop_numel(p, i) * sizeof(float));
        if (!p->act[i])
            return kdc__fail(KDC_ERR_NO_MEMORY, "propagation: out of memory for the output of "
                             "%s (%zu values)", m->nodes[i].name, kdc__prop_numel(p, i));
    }
    return KDC_OK;
}

void kdc__prop_free(kdc__prop *p)
{
    if (p->act)
        for (int i = 0; i < p->m->n_nodes; i++)
            free(p->act[i]);
    free(p->act);
    free(p->chw);
    free(p->consumers);
    free(p->wbuf);
    memset(p, 0, sizeof *p);
}

size_t kdc__prop_numel(const kdc__prop *p, int i)
{
    const int *s = p->chw + 3 * i;
    return (size_t)s[0] * s[1] * s[2];
}

kdc_status kdc__prop_node(kdc__prop *p, int i, kdc__node *out)
{
    const kdc__node *nd = &p->m->nodes[i];
    *out = *nd;
    if ((nd->op != KDC__OP_CONV && nd->op != KDC__OP_LINEAR) || nd->p.conv.weight)
        return KDC_OK;
    /* only the GEMM's A panels are left: element (o, k) lies at
     * panel o / mr, column k, row o % mr (lib/kernels/kernels.h) */
    const kdc__conv_param *cp = &nd->p.conv;
    const int K = cp->cin / cp->groups * cp->kh * cp->kw, mr = p->m->gemm->mr;
    const size_t need = (size_t)cp->cout * K;
    if (p->wcap < need) {
        free(p->wbuf);
        p->wbuf = malloc(need * sizeof *p->wbuf);
        p->wcap = p->wbuf ? need : 0;
        if (!p->wbuf)
            return kdc__fail(KDC_ERR_NO_MEMORY, "propagation: out of memory for the weight of %s",
                             nd->name);
    }
    for (int o = 0; o < cp->cout; o++) {
        const float *src = cp->packed + (size_t)(o / mr) * K * mr + o % mr;
        for (int k = 0; k < K; k++)
            p->wbuf[(size_t)o * K + k] = src[(size_t)k * mr];
    }
    out->p.conv.weight = p->wbuf;
    return KDC_OK;
}

void kdc__prop_args(const kdc__prop *p, int i, const kdc__node *nd, kdc__op_args *a)
{
    memset(a, 0, sizeof *a);
    a->m = p->m;
    a->nd = nd;
    a->x = nd->in[0] >= 0 ? p->act[nd->in[0]] : NULL;
    a->x2 = nd->in[1] >= 0 ? p->act[nd->in[1]] : NULL;
    a->in_chw = nd->in[0] >= 0 ? p->chw + 3 * nd->in[0] : NULL;
    a->in2_chw = nd->in[1] >= 0 ? p->chw + 3 * nd->in[1] : NULL;
    a->out_chw = p->chw + 3 * i;
    a->y = p->act[i];
}

kdc_status kdc__prop_forward(kdc__prop *p, const float *x)
{
    const struct kdc_model *m = p->m;
    memcpy(p->act[0], x, (size_t)p->B * kdc__prop_numel(p, 0) * sizeof *x);
    for (int i = 1; i < m->n_nodes; i++) {
        kdc__node nd;
        kdc_status st = kdc__prop_node(p, i, &nd);
        if (st)
            return st;
        kdc__op_args a;
        kdc__prop_args(p, i, &nd, &a);
        for (int b = 0; b < p->B; b++)
            kdc__op_table[nd.op]->forward(&a, b, 0, p->chw[3 * i]);
    }
    return KDC_OK;
}

kdc_status kdc__prop_class(const kdc__prop *p, const int *classes, int b, int *cls)
{
    const int last = p->m->n_nodes - 1, K = p->chw[3 * last];
    const float *z = p->act[last];
    if (classes) {
        if (classes[b] < 0 || classes[b] >= K)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "target class %d of image %d is out of "
                             "range 0..%d", classes[b], b, K - 1);
        *cls = classes[b];
        return KDC_OK;
    }
    int c = 0;
    for (int j = 1; j < K; j++)
        if (z[j] > z[c])
            c = j;
    *cls = c;
    return KDC_OK;
}

kdc_status kdc__prop_apply(const kdc__prop *p, const kdc__prop_rule *rules, void *ctx, int i,
                           const char *method)
{
    const kdc__node *nd = &p->m->nodes[i];
    if (!rules[nd->op])
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: no rule for %s (op %s)", method, nd->name,
                         kdc__op_table[nd->op]->name);
    return rules[nd->op](ctx, i);
}

kdc_status kdc__prop_check_target(const kdc_target *tg, const char *method)
{
    if (tg->kind != KDC_TARGET_LOGIT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s explains a class logit: the target must be "
                         "KDC_TARGET_LOGIT", method);
    return KDC_OK;
}
