/* builder.c - the primitives every architecture's builder uses: tensor
 * lookup under the wrapper prefix, nodes and aliases, and parameters
 * checked (shape, finite values) and copied out of the file; BatchNorm is
 * folded to a per-channel scale and shift (in double) here. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"

int kdc__entry_cmp(const void *a, const void *b)
{
    return strcmp(((const kdc__entry *)a)->key, ((const kdc__entry *)b)->key);
}

kdc__entry *kdc__lookup(kdc__builder *b, const char *key)
{
    char full[512];
    if ((size_t)snprintf(full, sizeof full, "%s%s", b->prefix, key) >= sizeof full)
        return NULL;
    kdc__entry probe = {.key = full};
    return bsearch(&probe, b->entries, (size_t)b->n_entries, sizeof probe, kdc__entry_cmp);
}

const char *kdc__key(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

static void kdc__format_shape(char *buf, size_t size, int ndim, const int64_t *dims)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                 (long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

int kdc__has(kdc__builder *b, const char *key)
{
    return kdc__lookup(b, key) != NULL;
}

static kdc_status kdc__grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return KDC_OK;
    int ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory");
    *arr = p;
    *cap = ncap;
    return KDC_OK;
}

static float *kdc__alloc_params(kdc__builder *b, size_t count)
{
    struct kdc_model *m = b->m;
    if (kdc__grow((void **)&m->blocks, &b->cap_blocks, m->n_blocks + 1, sizeof *m->blocks))
        return NULL;
    float *p = malloc((count ? count : 1) * sizeof *p);
    if (!p) {
        kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for %zu parameters", count);
        return NULL;
    }
    m->blocks[m->n_blocks++] = p;
    m->n_params += count;
    return p;
}

/* Appends a node; returns its index or -1 (error set). */
int kdc__add_node(kdc__builder *b, kdc__op op, const char *name, int in0, int in1,
                         int channels)
{
    struct kdc_model *m = b->m;
    if (kdc__grow((void **)&m->nodes, &b->cap_nodes, m->n_nodes + 1, sizeof *m->nodes))
        return -1;
    kdc__node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = strdup(name);
    if (!n->name) {
        kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory");
        return -1;
    }
    n->op = op;
    n->in[0] = in0;
    n->in[1] = in1;
    n->channels = channels;
    return m->n_nodes++;
}

kdc_status kdc__add_alias(kdc__builder *b, const char *name, int node)
{
    struct kdc_model *m = b->m;
    if (kdc__grow((void **)&m->aliases, &b->cap_aliases, m->n_aliases + 1, sizeof *m->aliases))
        return KDC_ERR_NO_MEMORY;
    char *copy = strdup(name);
    if (!copy)
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory");
    m->aliases[m->n_aliases].name = copy;
    m->aliases[m->n_aliases].node = node;
    m->n_aliases++;
    return KDC_OK;
}

/* Finds key, checks its rank and every dimension of expect that is >= 0
 * (a -1 accepts any size), and converts it to float32 into new storage.
 * The actual shape goes to got (may be NULL). */
/* share: a tensor read before by another share = 1 call gives the same
 * storage (a RetinaNet head's convs on every FPN level; never modified
 * after loading). share = 0: a copy of its own (BatchNorm folds in place). */
static kdc_status kdc__param_ex(kdc__builder *b, const char *key, int ndim, const int64_t *expect,
                                int64_t *got, float **out, int share)
{
    kdc__entry *e = kdc__lookup(b, key);
    char want[96], have[96];
    *out = NULL;
    if (!e)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: missing tensor %s%s (%s)", b->path, b->prefix, key,
                         b->m->arch);
    const kdc__st_tensor *t = e->t;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = expect[i] < 0 || expect[i] == t->shape[i];
    if (!ok) {
        int64_t shown[KDC__ST_MAX_DIMS];
        for (int i = 0; i < ndim; i++)
            shown[i] = expect[i] >= 0 ? expect[i] : (i < t->ndim ? t->shape[i] : -1);
        kdc__format_shape(have, sizeof have, t->ndim, t->shape);
        kdc__format_shape(want, sizeof want, ndim, shown);
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: tensor %s%s has shape %s, expected %s", b->path,
                         b->prefix, key, have, want);
    }
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] <= 0 || t->shape[i] > (1 << 20))
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: tensor %s%s has an empty or huge dimension",
                             b->path, b->prefix, key);
    }
    if (got)
        memcpy(got, t->shape, (size_t)ndim * sizeof *got);
    if (share && e->data) {
        *out = e->data;
        return KDC_OK;
    }
    float *p = kdc__alloc_params(b, t->numel);
    if (!p)
        return KDC_ERR_NO_MEMORY;
    kdc_status st = kdc__st_to_f32(t, p);
    if (st)
        return kdc__fail_context(st, "%s", b->path);
    for (size_t i = 0; i < t->numel; i++) {
        if (!isfinite(p[i]))
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: tensor %s%s holds a non-finite value at %zu",
                             b->path, b->prefix, key, i);
    }
    e->used = 1;
    if (share)
        e->data = p;
    *out = p;
    return KDC_OK;
}

static kdc_status kdc__param(kdc__builder *b, const char *key, int ndim, const int64_t *expect,
                             int64_t *got, float **out)
{
    return kdc__param_ex(b, key, ndim, expect, got, out, 0);
}

/* conv weight (cout, cin/groups, k, k); cout < 0 reads it from the file.
 * Returns the node; *cout_out gets the output channels. */
kdc_status kdc__conv(kdc__builder *b, const char *name, const char *wkey,
                            const char *bkey, int in, int cin, int cout, int k, int stride,
                            int pad, int groups, int *node)
{
    int64_t expect[4] = {cout, groups == 1 ? cin : 1, k, k}, got[4];
    float *w, *bias = NULL;
    kdc_status st = kdc__param_ex(b, wkey, 4, expect, got, &w, 1);
    if (st)
        return st;
    if (groups != 1 && got[0] != cin)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: tensor %s%s has %lld output channels, expected %d "
                         "(depthwise)", b->path, b->prefix, wkey, (long long)got[0], cin);
    if (bkey) {
        int64_t be[1] = {got[0]};
        st = kdc__param_ex(b, bkey, 1, be, NULL, &bias, 1);
        if (st)
            return st;
    }
    int id = kdc__add_node(b, KDC__OP_CONV, name, in, -1, (int)got[0]);
    if (id < 0)
        return KDC_ERR_NO_MEMORY;
    kdc__conv_param *cp = &b->m->nodes[id].p.conv;
    cp->cin = cin;
    cp->cout = (int)got[0];
    cp->kh = cp->kw = k;
    cp->stride = stride;
    cp->pad = pad;
    cp->groups = groups;
    cp->weight = w;
    cp->bias = bias;
    *node = id;
    return KDC_OK;
}

/* BatchNorm under prefix kp ("layer1.0.bn1"): weight, bias, running_mean,
 * running_var, folded to an AFFINE node. num_batches_tracked is optional. */
kdc_status kdc__bn(kdc__builder *b, const char *name, const char *kp, int in, int c,
                          int *node)
{
    static const char *parts[4] = {"weight", "bias", "running_mean", "running_var"};
    float *v[4] = {0};
    char key[256];
    int64_t expect[1] = {c};
    kdc_status st;
    for (int i = 0; i < 4; i++) {
        st = kdc__param(b, kdc__key(key, sizeof key, "%s.%s", kp, parts[i]), 1, expect, NULL,
                        &v[i]);
        if (st)
            return st;
    }
    kdc__entry *nbt = kdc__lookup(b, kdc__key(key, sizeof key, "%s.num_batches_tracked", kp));
    if (nbt)
        nbt->used = 1;
    for (int i = 0; i < c; i++) {
        if (v[3][i] + b->eps <= 0.0f)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: tensor %s%s.running_var[%d] + eps is not "
                             "positive", b->path, b->prefix, kp, i);
    }
    /* fold into the storage of weight and bias (ours, not the file's) */
    kdc__bn_fold(v[0], v[1], v[2], v[3], b->eps, c, v[0], v[1]);
    int id = kdc__add_node(b, KDC__OP_AFFINE, name, in, -1, c);
    if (id < 0)
        return KDC_ERR_NO_MEMORY;
    b->m->nodes[id].p.affine.scale = v[0];
    b->m->nodes[id].p.affine.shift = v[1];
    *node = id;
    return KDC_OK;
}

kdc_status kdc__relu(kdc__builder *b, const char *name, int in, int *node)
{
    int id = kdc__add_node(b, KDC__OP_RELU, name, in, -1, b->m->nodes[in].channels);
    if (id < 0)
        return KDC_ERR_NO_MEMORY;
    b->m->nodes[id].p.act.clamp = b->clamp;
    *node = id;
    return KDC_OK;
}

kdc_status kdc__linear(kdc__builder *b, const char *name, const char *wkey,
                              const char *bkey, int in, int *node)
{
    int cin = b->m->nodes[in].channels;
    int64_t expect[2] = {-1, cin}, got[2];
    float *w, *bias;
    kdc_status st = kdc__param(b, wkey, 2, expect, got, &w);
    if (st)
        return st;
    int64_t be[1] = {got[0]};
    st = kdc__param(b, bkey, 1, be, NULL, &bias);
    if (st)
        return st;
    int id = kdc__add_node(b, KDC__OP_LINEAR, name, in, -1, (int)got[0]);
    if (id < 0)
        return KDC_ERR_NO_MEMORY;
    kdc__conv_param *lp = &b->m->nodes[id].p.conv;
    lp->cin = cin;
    lp->cout = (int)got[0];
    lp->kh = lp->kw = lp->stride = lp->groups = 1;
    lp->weight = w;
    lp->bias = bias;
    *node = id;
    return KDC_OK;
}
