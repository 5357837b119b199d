/* run.c - a run's life cycle and what it hands out: create, destroy, the
 * shapes and values of kept layers, the weight layouts its passes need. The plan is in plan.c, the forward
 * executor in forward.c, backward in backward.c (run.h). */
#include <stdlib.h>
#include <string.h>

#include "run.h"

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
    r->mask_made = -1;
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
    free(r->layer_ms);
    free(r->side);
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
        return kdc__fail(KDC_ERR_STATE, "layer %s%s%s%s was not kept by the last forward pass",
                         r->m->nodes[layer].name, kdc_model_layer_alias(r->m, layer, 0) ? " (" : "",
                         kdc_model_layer_alias(r->m, layer, 0) ? kdc_model_layer_alias(r->m, layer, 0) : "",
                         kdc_model_layer_alias(r->m, layer, 0) ? ")" : "");
    return KDC_OK;
}

kdc_status kdc__copy_out(const kdc_run *r, int layer, const char *what, const float *src,
                         float *dst, size_t count)
{
    size_t numel = kdc__numel(r, layer);
    if (count < numel)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s %s has %zu values, the buffer %zu", what,
                         r->m->nodes[layer].name, numel, count);
    memcpy(dst, src, numel * sizeof *dst);
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
    return kdc__copy_out(r, layer, "layer", r->buf[r->slot[layer]], dst, count);
}

const struct kdc_model *kdc__run_model(const kdc_run *r)
{
    return r->m;
}

kdc_status kdc__run_weights(kdc_run *r, int i, kdc__derived kind, const float **out)
{
    const kdc_model *m = r->m;
    const int own = m->nodes[i].p.conv.share ? m->nodes[i].p.conv.share : i;
    if (m->derived[kind][own] || (double)r->h * r->w <= KDC__WT_KEEP_PIXELS)
        return kdc__conv_derived(m, own, kind, out);
    kdc_status st = kdc__work_wt(&r->ws, kdc__conv_derived_size(m, own, kind));
    if (st)
        return st;
    kdc__conv_derive(m, own, kind, r->ws.wt);
    *out = r->ws.wt;
    return KDC_OK;
}

kdc_status kdc_run_time_layers(kdc_run *r, int on)
{
    if (!r)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_time_layers: NULL run");
    r->timed = 0;
    if (!on) {
        free(r->layer_ms);
        r->layer_ms = NULL;
        return KDC_OK;
    }
    if (!r->layer_ms && !(r->layer_ms = calloc((size_t)r->m->n_nodes, sizeof *r->layer_ms)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for layer times");
    return KDC_OK;
}

kdc_status kdc_run_layer_times(const kdc_run *r, double *ms, int count)
{
    if (!r || !ms)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_run_layer_times: NULL argument");
    if (count < r->m->n_nodes)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "kdc_run_layer_times: room for %d times, the model has %d layers", count,
                         r->m->n_nodes);
    if (!r->layer_ms || !r->timed)
        return kdc__fail(KDC_ERR_STATE, "kdc_run_layer_times: %s",
                         r->layer_ms ? "no forward pass since timing was turned on"
                                     : "layer timing is off (kdc_run_time_layers)");
    memcpy(ms, r->layer_ms, (size_t)r->m->n_nodes * sizeof *ms);
    return KDC_OK;
}
