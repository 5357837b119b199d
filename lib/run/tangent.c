/* tangent.c - the tangent (forward-mode, Jacobian-vector) pass: J v, J the
 * Jacobian of the logits in one layer's output, at the last recording
 * forward pass.
 *
 * Every op of the engine is piecewise linear, so at a forward pass the
 * network above a layer is the linear map its recorded state fixes (ReLU
 * masks, max-pool winners) plus a constant (biases, BatchNorm shifts): the
 * tangent pass runs each op's tangent task (op table) over the nodes above
 * the layer, in order, from v at the layer. A node none of whose inputs
 * depends on the layer has a zero tangent and is skipped. Dense convs and
 * LINEAR go through the GEMM without their bias. Shapley-CAM's
 * Hessian-vector product of a probability target needs J A (lib/cam/). */
#include <string.h>

#include "op.h"
#include "run.h"
#include "runner.h"

/* Node j's tangent, or NULL where it is zero (below the layer, or not
 * depending on it). */
static const float *kdc__tan(const kdc_run *r, int layer, int j)
{
    if (j < layer || r->grad_of[j] < 0)
        return NULL;
    return r->gbuf[r->grad_of[j]];
}

/* The tangent of node i from its inputs' (at least one not NULL). */
static kdc_status kdc__tangent_node(kdc_run *r, int layer, int i)
{
    const kdc_model *m = r->m;
    const kdc__node *nd = &m->nodes[i];
    const int g = kdc__grad_acquire(r, kdc__numel(r, i));
    if (g < 0)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for the tangent pass");
    r->grad_of[i] = g;
    /* after acquire: it may have moved free buffers, never used ones */
    const float *x = kdc__tan(r, layer, nd->in[0]);
    const float *x2 = nd->in[1] >= 0 ? kdc__tan(r, layer, nd->in[1]) : NULL;
    float *y = r->gbuf[g];
    const int *ic = r->chw + 3 * nd->in[0], *oc = r->chw + 3 * i;
    if (kdc__conv_is_gemm(m, nd)) {
        kdc__conv_param cp = nd->p.conv;
        cp.bias = NULL;
        kdc_status st; /* a backward may have given the padding buffers back */
        if ((st = kdc__work_reserve(&r->ws, kdc__pool_threads(r->pool))) ||
            (st = kdc__conv_reserve(&r->ws, &cp, ic[1], ic[2], oc[1], oc[2])))
            return st;
        kdc__conv2d_fast(r->pool, &r->ws, m->gemm, &cp, x, r->n, ic[1], ic[2], y, oc[1], oc[2],
                         NULL);
        return KDC_OK;
    }
    kdc__task k = {
        .op = kdc__op_table[nd->op],
        .tangent = 1,
        .a = {
            .m = m,
            .nd = nd,
            .mask = r->mask[i],
            .argmax = r->argmax[i],
            .x = x,
            .x2 = x2,
            .y = y,
            .in_chw = ic,
            .in2_chw = nd->in[1] >= 0 ? r->chw + 3 * nd->in[1] : NULL,
            .out_chw = oc,
        },
    };
    kdc__task_run(r, &k);
    return KDC_OK;
}

kdc_status kdc__run_tangent(kdc_run *r, int layer, const float *v, float *out)
{
    if (!r || !v || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "tangent pass: NULL argument");
    const kdc_model *m = r->m;
    const int nn = m->n_nodes, last = nn - 1;
    if (layer < 0 || layer >= nn)
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d", m->arch,
                         layer, nn - 1);
    if (!r->done || r->record_from < 0 || layer < r->record_from)
        return kdc__fail(KDC_ERR_STATE, "tangent pass from %s needs kdc_run_forward_grad down "
                         "to it first", m->nodes[layer].name);
    r->grad_done = 0;
    kdc__grad_release_all(r);
    kdc_status st = KDC_OK;
    const size_t nv = kdc__numel(r, layer);
    int g = kdc__grad_acquire(r, nv);
    if (g < 0) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for the tangent pass");
        goto release;
    }
    r->grad_of[layer] = g;
    memcpy(r->gbuf[g], v, nv * sizeof *v);
    for (int i = layer + 1; i < nn; i++) {
        const kdc__node *nd = &m->nodes[i];
        if (!kdc__tan(r, layer, nd->in[0]) && (nd->in[1] < 0 || !kdc__tan(r, layer, nd->in[1])))
            continue;
        if ((st = kdc__tangent_node(r, layer, i)))
            goto release;
        /* inputs read for the last time give their buffer back */
        for (int j = 0; j < 2; j++) {
            const int in = nd->in[j];
            if (in >= layer && r->grad_of[in] >= 0 && r->last_use[in] == i) {
                r->gused[r->grad_of[in]] = 0;
                r->grad_of[in] = -1;
            }
        }
    }
    const size_t nout = kdc__numel(r, last);
    const float *t = kdc__tan(r, layer, last);
    if (t)
        memcpy(out, t, nout * sizeof *out);
    else
        memset(out, 0, nout * sizeof *out);
release:
    kdc__grad_release_all(r);
    return st;
}
