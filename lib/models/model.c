/* model.c - a loaded model: its queries (architecture, classes, layers,
 * aliases, shapes), its ignored tensors, and destroying it. Loading is in
 * load.c; the builders, one per architecture family, beside it. */
#include <stdlib.h>
#include <string.h>

#include "builder.h"

void kdc__model_free_contents(struct kdc_model *m)
{
    for (int i = 0; m->packed && i < m->n_nodes; i++)
        free(m->packed[i]);
    for (int k = 0; k < KDC__DERIVED_COUNT; k++) {
        for (int i = 0; m->derived[k] && i < m->n_nodes; i++)
            free(m->derived[k][i]);
        free(m->derived[k]);
    }
    free(m->packed);
    if (m->pack_lock_init)
        pthread_mutex_destroy(&m->pack_lock);
    for (int i = 0; i < m->n_nodes; i++)
        free(m->nodes[i].name);
    free(m->nodes);
    for (int i = 0; i < m->n_aliases; i++)
        free(m->aliases[i].name);
    free(m->aliases);
    for (int i = 0; i < m->n_blocks; i++)
        free(m->blocks[i]);
    free(m->blocks);
    for (int i = 0; i < m->n_ignored; i++)
        free(m->ignored[i]);
    free(m->ignored);
    free(m->class_names);
    free(m->class_text);
}

kdc_status kdc__note_ignored(struct kdc_model *m, const char *name)
{
    char **p = realloc(m->ignored, (size_t)(m->n_ignored + 1) * sizeof *p);
    if (!p)
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory");
    m->ignored = p;
    if (!(p[m->n_ignored] = strdup(name)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory");
    m->n_ignored++;
    return KDC_OK;
}

int kdc_model_num_ignored(const kdc_model *m)
{
    return m ? m->n_ignored : 0;
}

const char *kdc_model_ignored(const kdc_model *m, int i)
{
    return m && i >= 0 && i < m->n_ignored ? m->ignored[i] : NULL;
}

void kdc_model_destroy(kdc_model *m)
{
    if (!m)
        return;
    kdc__model_free_contents(m);
    free(m);
}

const char *kdc_model_arch(const kdc_model *m)
{
    return m ? m->arch : NULL;
}

int kdc_model_num_classes(const kdc_model *m)
{
    return m ? m->num_classes : 0;
}

int kdc_model_num_layers(const kdc_model *m)
{
    return m ? m->n_nodes : 0;
}

const char *kdc_model_layer_name(const kdc_model *m, int layer)
{
    if (!m || layer < 0 || layer >= m->n_nodes)
        return NULL;
    return m->nodes[layer].name;
}

int kdc_model_min_input(const kdc_model *m)
{
    return m ? m->min_input : 0;
}

kdc_status kdc_model_find_layer(const kdc_model *m, const char *name, int *layer)
{
    if (!m || !name || !layer)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_find_layer: NULL argument");
    for (int i = 0; i < m->n_nodes; i++) {
        if (!strcmp(m->nodes[i].name, name)) {
            *layer = i;
            return KDC_OK;
        }
    }
    for (int i = 0; i < m->n_aliases; i++) {
        if (!strcmp(m->aliases[i].name, name)) {
            *layer = m->aliases[i].node;
            return KDC_OK;
        }
    }
    return kdc__fail(KDC_ERR_NOT_FOUND, "%s has no layer '%s' (kdcam layers lists them)",
                     m->arch, name);
}

const char *kdc_model_layer_alias(const kdc_model *m, int layer, int k)
{
    if (!m || k < 0)
        return NULL;
    for (int i = 0; i < m->n_aliases; i++)
        if (m->aliases[i].node == layer && k-- == 0)
            return m->aliases[i].name;
    return NULL;
}

void kdc_model_preprocess(const kdc_model *m, kdc_preprocess *pp)
{
    if (!pp)
        return;
    if (m)
        *pp = m->preprocess;
    else
        kdc_preprocess_imagenet(pp);
}

kdc_status kdc_model_layer_shape(const kdc_model *m, int layer, int in_h, int in_w, int out[3])
{
    if (!m || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_layer_shape: NULL argument");
    if (layer < 0 || layer >= m->n_nodes)
        return kdc__fail(KDC_ERR_NOT_FOUND, "%s: layer index %d is out of range 0..%d", m->arch,
                         layer, m->n_nodes - 1);
    int *chw = malloc((size_t)m->n_nodes * 3 * sizeof *chw);
    if (!chw)
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory");
    kdc_status st = kdc__infer_shapes(m, in_h, in_w, chw);
    if (!st)
        memcpy(out, chw + 3 * layer, 3 * sizeof *out);
    free(chw);
    return st;
}

kdc_status kdc_model_head(const kdc_model *m, kdc_head_info *info)
{
    if (!m || !info)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_head: NULL argument");
    memset(info, 0, sizeof *info);
    const kdc__head *h = &m->head;
    if (!h->kind)
        return KDC_OK;
    info->kind = (kdc_head_kind)h->kind;
    info->num_classes = h->classes;
    info->num_anchors = h->anchors;
    info->num_levels = h->nlevels;
    for (int l = 0; l < h->nlevels; l++) {
        info->level[l] = h->level[l];
        info->feature_layer[l] = h->feature[l];
        info->cls_layer[l] = h->cls[l];
        info->reg_layer[l] = h->reg[l];
    }
    return KDC_OK;
}
