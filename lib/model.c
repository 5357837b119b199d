/* model.c - from a safetensors file to a graph of nodes.
 *
 * Models are data, not code paths: a ResNet is four stages of bottleneck
 * blocks whose counts and widths are read from the tensor names and shapes,
 * so ResNet50/101/152 (and other widths or class counts) share one builder.
 * MobileNetV1 is a table of 13 depthwise-separable blocks, read under one of
 * two key schemes (the knowledge-distillation `model.N.M` layout, or timm's
 * `mobilenetv1_100`).
 *
 * Every parameter is converted to float32 and copied out of the mapping, and
 * the file is closed before kdc_model_load returns. BatchNorm is folded to a
 * per-channel scale and shift (in double) at load time. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "io/metadata.h"
#include "safetensors.h"
#include "io/weights.h"

/* ------------------------------------------------------------------ */
/* Key schemes                                                         */

typedef enum kdc__scheme {
    KDC__SCHEME_RESNET,   /* torchvision / timm ResNet                      */
    KDC__SCHEME_MBV1_KD,  /* model.N.M.* (overhaul / ReviewKD / mdistiller) */
    KDC__SCHEME_MBV1_TIMM /* timm mobilenetv1_100                           */
} kdc__scheme;

/* A tensor whose name ends with the anchor identifies the scheme; what
 * precedes the anchor is the wrapper prefix ("module.", "student.", ...). */
static const struct {
    const char *anchor;
    kdc__scheme scheme;
} kdc__anchors[] = {
    {"layer1.0.conv1.weight", KDC__SCHEME_RESNET},
    {"model.1.0.weight", KDC__SCHEME_MBV1_KD},
    {"blocks.0.0.conv_dw.weight", KDC__SCHEME_MBV1_TIMM},
};

static const char *kdc__scheme_name(kdc__scheme s)
{
    switch (s) {
    case KDC__SCHEME_RESNET: return "a ResNet (torchvision/timm keys)";
    case KDC__SCHEME_MBV1_KD: return "a MobileNetV1 (model.N.M keys)";
    case KDC__SCHEME_MBV1_TIMM: return "a MobileNetV1 (timm mobilenetv1_100 keys)";
    }
    return "?";
}

/* MobileNetV1 block table (reference-facts): stride of blocks 1..13, and the
 * timm (stage, block) of each. Channels come from the weights. */
static const struct {
    int stride, stage, block;
} kdc__mbv1_blocks[14] = {
    {2, -1, -1}, /* model.0: the 3x3 stem conv */
    {1, 0, 0}, {2, 1, 0}, {1, 1, 1}, {2, 2, 0}, {1, 2, 1}, {2, 3, 0}, {1, 3, 1},
    {1, 3, 2}, {1, 3, 3}, {1, 3, 4}, {1, 3, 5}, {2, 4, 0}, {1, 4, 1},
};

/* ------------------------------------------------------------------ */
/* Builder state                                                       */

typedef struct kdc__entry {
    const char *key;               /* full tensor name                    */
    const kdc__st_tensor *t;
    int used;
} kdc__entry;

typedef struct kdc__builder {
    struct kdc_model *m;
    const char *path;
    kdc__st_file *st;
    kdc__entry *entries;           /* sorted by key                       */
    int n_entries;
    const char *prefix;            /* put in front of every key looked up */
    float eps;
    float clamp;                   /* INFINITY (ReLU) or 6 (ReLU6)        */
    int cap_nodes, cap_aliases, cap_blocks;
} kdc__builder;

static int kdc__entry_cmp(const void *a, const void *b)
{
    return strcmp(((const kdc__entry *)a)->key, ((const kdc__entry *)b)->key);
}

/* The tensor named prefix + key (entries are indexed by full name). */
static kdc__entry *kdc__lookup(kdc__builder *b, const char *key)
{
    char full[512];
    if ((size_t)snprintf(full, sizeof full, "%s%s", b->prefix, key) >= sizeof full)
        return NULL;
    kdc__entry probe = {.key = full};
    return bsearch(&probe, b->entries, (size_t)b->n_entries, sizeof probe, kdc__entry_cmp);
}

/* printf into a fixed buffer; keys are short, a truncated key cannot match. */
static const char *kdc__key(char *buf, size_t size, const char *fmt, ...) KDC_PRINTF(3, 4);
static const char *kdc__key(char *buf, size_t size, const char *fmt, ...)
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

static int kdc__has(kdc__builder *b, const char *key)
{
    return kdc__lookup(b, key) != NULL;
}

/* ------------------------------------------------------------------ */
/* Growing the model                                                   */

static kdc_status kdc__apply_metadata(const char *path, const kdc__st_file *f,
                                      struct kdc_model *m);

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
static int kdc__add_node(kdc__builder *b, kdc__op op, const char *name, int in0, int in1,
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

static kdc_status kdc__add_alias(kdc__builder *b, const char *name, int node)
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

/* ------------------------------------------------------------------ */
/* Reading parameters                                                  */

/* Finds key, checks its rank and every dimension of expect that is >= 0
 * (a -1 accepts any size), and converts it to float32 into new storage.
 * The actual shape goes to got (may be NULL). */
static kdc_status kdc__param(kdc__builder *b, const char *key, int ndim, const int64_t *expect,
                             int64_t *got, float **out)
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
    if (got)
        memcpy(got, t->shape, (size_t)ndim * sizeof *got);
    *out = p;
    return KDC_OK;
}

/* conv weight (cout, cin/groups, k, k); cout < 0 reads it from the file.
 * Returns the node; *cout_out gets the output channels. */
static kdc_status kdc__conv(kdc__builder *b, const char *name, const char *wkey,
                            const char *bkey, int in, int cin, int cout, int k, int stride,
                            int pad, int groups, int *node)
{
    int64_t expect[4] = {cout, groups == 1 ? cin : 1, k, k}, got[4];
    float *w, *bias = NULL;
    kdc_status st = kdc__param(b, wkey, 4, expect, got, &w);
    if (st)
        return st;
    if (groups != 1 && got[0] != cin)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: tensor %s%s has %lld output channels, expected %d "
                         "(depthwise)", b->path, b->prefix, wkey, (long long)got[0], cin);
    if (bkey) {
        int64_t be[1] = {got[0]};
        st = kdc__param(b, bkey, 1, be, NULL, &bias);
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
static kdc_status kdc__bn(kdc__builder *b, const char *name, const char *kp, int in, int c,
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

static kdc_status kdc__relu(kdc__builder *b, const char *name, int in, int *node)
{
    int id = kdc__add_node(b, KDC__OP_RELU, name, in, -1, b->m->nodes[in].channels);
    if (id < 0)
        return KDC_ERR_NO_MEMORY;
    b->m->nodes[id].p.act.clamp = b->clamp;
    *node = id;
    return KDC_OK;
}

static kdc_status kdc__linear(kdc__builder *b, const char *name, const char *wkey,
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

/* ------------------------------------------------------------------ */
/* ResNet                                                              */

static const struct {
    const char *name;
    int blocks[4];
} kdc__resnets[] = {
    {"resnet50", {3, 4, 6, 3}},
    {"resnet101", {3, 4, 23, 3}},
    {"resnet152", {3, 8, 36, 3}},
};

/* The ResNet body (stem and four stages, stage outputs in stages[]) and,
 * when classifier is set, avgpool + fc. */
static kdc_status kdc__build_resnet(kdc__builder *b, const char *want_arch, int classifier,
                                    int stages[4])
{
    struct kdc_model *m = b->m;
    char key[256], key2[256], name[128];
    int counts[4];
    kdc_status st;

    for (int l = 0; l < 4; l++) {
        counts[l] = 0;
        while (kdc__has(b, kdc__key(key, sizeof key, "layer%d.%d.conv1.weight", l + 1,
                                    counts[l])))
            counts[l]++;
        if (counts[l] == 0)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: missing tensor %slayer%d.0.conv1.weight "
                             "(a ResNet has four stages)", b->path, b->prefix, l + 1);
    }
    if (!kdc__has(b, "layer1.0.conv3.weight"))
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: ResNet with basic blocks (resnet18/34: no "
                         "%slayer1.0.conv3.weight) is not supported; bottleneck ResNets are",
                         b->path, b->prefix);

    const char *found = NULL;
    for (size_t i = 0; i < sizeof kdc__resnets / sizeof *kdc__resnets; i++) {
        if (!memcmp(counts, kdc__resnets[i].blocks, sizeof counts))
            found = kdc__resnets[i].name;
    }
    if (want_arch) {
        const int *want = NULL;
        for (size_t i = 0; i < sizeof kdc__resnets / sizeof *kdc__resnets; i++)
            if (!strcmp(want_arch, kdc__resnets[i].name))
                want = kdc__resnets[i].blocks;
        if (!want)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds %s, not %s", b->path,
                             kdc__scheme_name(KDC__SCHEME_RESNET), want_arch);
        if (memcmp(want, counts, sizeof counts))
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds %s (blocks %d-%d-%d-%d), not %s "
                             "(blocks %d-%d-%d-%d)", b->path, found ? found : "a ResNet",
                             counts[0], counts[1], counts[2], counts[3], want_arch, want[0],
                             want[1], want[2], want[3]);
    }
    if (found)
        snprintf(m->arch, sizeof m->arch, "%s", found);
    else
        snprintf(m->arch, sizeof m->arch, "resnet-%d-%d-%d-%d", counts[0], counts[1],
                 counts[2], counts[3]);

    int x = 0, node;
    if ((st = kdc__conv(b, "conv1", "conv1.weight", NULL, x, 3, -1, 7, 2, 3, 1, &x)))
        return st;
    int c = m->nodes[x].channels;
    if ((st = kdc__bn(b, "bn1", "bn1", x, c, &x)) || (st = kdc__relu(b, "relu", x, &x)))
        return st;
    x = kdc__add_node(b, KDC__OP_MAXPOOL, "maxpool", x, -1, c);
    if (x < 0)
        return KDC_ERR_NO_MEMORY;
    m->nodes[x].p.pool.k = 3;
    m->nodes[x].p.pool.stride = 2;
    m->nodes[x].p.pool.pad = 1;

    for (int l = 1; l <= 4; l++) {
        for (int blk = 0; blk < counts[l - 1]; blk++) {
            const int stride = (l > 1 && blk == 0) ? 2 : 1;
            const int in = x;
            const int cin = m->nodes[in].channels;
            char bp[64];
            int y, width;
            snprintf(bp, sizeof bp, "layer%d.%d", l, blk);
            /* conv1 1x1 -> bn1 -> relu1 */
            if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.conv1", bp),
                                kdc__key(key, sizeof key, "%s.conv1.weight", bp), NULL, in, cin,
                                -1, 1, 1, 0, 1, &y)))
                return st;
            width = m->nodes[y].channels;
            if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.bn1", bp),
                              kdc__key(key, sizeof key, "%s.bn1", bp), y, width, &y)) ||
                (st = kdc__relu(b, kdc__key(name, sizeof name, "%s.relu1", bp), y, &y)))
                return st;
            /* conv2 3x3, carries the stride (v1.5) -> bn2 -> relu2 */
            if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.conv2", bp),
                                kdc__key(key, sizeof key, "%s.conv2.weight", bp), NULL, y, width,
                                -1, 3, stride, 1, 1, &y)))
                return st;
            width = m->nodes[y].channels;
            if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.bn2", bp),
                              kdc__key(key, sizeof key, "%s.bn2", bp), y, width, &y)) ||
                (st = kdc__relu(b, kdc__key(name, sizeof name, "%s.relu2", bp), y, &y)))
                return st;
            /* conv3 1x1 -> bn3 */
            if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.conv3", bp),
                                kdc__key(key, sizeof key, "%s.conv3.weight", bp), NULL, y, width,
                                -1, 1, 1, 0, 1, &y)))
                return st;
            const int cout = m->nodes[y].channels;
            if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.bn3", bp),
                              kdc__key(key, sizeof key, "%s.bn3", bp), y, cout, &y)))
                return st;
            /* identity or downsample (1x1 conv with the block's stride + BN) */
            int skip = in;
            if (kdc__has(b, kdc__key(key, sizeof key, "%s.downsample.0.weight", bp))) {
                if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.downsample.0", bp), key,
                                    NULL, in, cin, cout, 1, stride, 0, 1, &skip)) ||
                    (st = kdc__bn(b, kdc__key(name, sizeof name, "%s.downsample.1", bp),
                                  kdc__key(key2, sizeof key2, "%s.downsample.1", bp), skip, cout,
                                  &skip)) ||
                    (st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.downsample", bp),
                                         skip)))
                    return st;
            } else if (stride != 1 || cin != cout) {
                return kdc__fail(KDC_ERR_WEIGHTS, "%s: missing tensor %s%s.downsample.0.weight "
                                 "(block %s maps %d channels to %d with stride %d)", b->path,
                                 b->prefix, bp, bp, cin, cout, stride);
            }
            node = kdc__add_node(b, KDC__OP_ADD_RELU, bp, y, skip, cout);
            if (node < 0)
                return KDC_ERR_NO_MEMORY;
            m->nodes[node].p.act.clamp = b->clamp;
            if ((st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.relu", bp), node)))
                return st;
            x = node;
        }
        if ((st = kdc__add_alias(b, kdc__key(name, sizeof name, "layer%d", l), x)))
            return st;
        stages[l - 1] = x;
    }
    m->min_input = 32;
    kdc_preprocess_imagenet(&m->preprocess);
    if (!classifier)
        return KDC_OK;
    x = kdc__add_node(b, KDC__OP_GAP, "avgpool", x, -1, m->nodes[x].channels);
    if (x < 0)
        return KDC_ERR_NO_MEMORY;
    if ((st = kdc__linear(b, "fc", "fc.weight", "fc.bias", x, &x)))
        return st;
    m->num_classes = m->nodes[x].channels;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Feature pyramid (detection backbones)                               */

/* A 1x1 or 3x3 conv with bias under torchvision's or mmdetection's names. */
static kdc_status kdc__fpn_conv(kdc__builder *b, const char *name, const char *wkey,
                                const char *bkey, int in, int cout, int k, int stride, int *node)
{
    return kdc__conv(b, name, wkey, bkey, in, b->m->nodes[in].channels, cout, k, stride,
                     k / 2, 1, node);
}

/* The stage (0..3) whose output has `channels` channels, or -1. */
static int kdc__stage_with(const struct kdc_model *m, const int stages[4], int from, int channels)
{
    for (int s = from; s < 4; s++)
        if (m->nodes[stages[s]].channels == channels)
            return s;
    return -1;
}

static int kdc__in_channels(kdc__builder *b, const char *key)
{
    kdc__entry *e = kdc__lookup(b, key);
    return e && e->t->ndim == 4 ? (int)e->t->shape[1] : -1;
}

static kdc_status kdc__level_alias(kdc__builder *b, int level, int node)
{
    char name[32];
    snprintf(name, sizeof name, "fpn.p%d", level);
    return kdc__add_alias(b, name, node);
}

/* torchvision: backbone.fpn.inner_blocks.i[.0] (1x1 lateral), layer_blocks.i[.0]
 * (3x3 output), extra_blocks.p6/p7 (LastLevelP6P7) or a max-pool "pool" level. */
static kdc_status kdc__build_fpn_tv(kdc__builder *b, const int stages[4], kdc_fpn_extra extra)
{
    struct kdc_model *m = b->m;
    char k1[256], k2[256], name[96];
    kdc_status st;
    const char *sp = kdc__has(b, "fpn.inner_blocks.0.0.weight") ? ".0" : "";
    int L = 0;
    while (kdc__has(b, kdc__key(k1, sizeof k1, "fpn.inner_blocks.%d%s.weight", L, sp)))
        L++;
    const int cin0 = kdc__in_channels(b, kdc__key(k1, sizeof k1, "fpn.inner_blocks.0%s.weight", sp));
    const int s0 = kdc__stage_with(m, stages, 0, cin0);
    if (s0 < 0 || s0 + L != 4)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: %d FPN inner blocks starting at %d input channels "
                         "do not match the body's stages (%d, %d, %d, %d channels)", b->path, L,
                         cin0, m->nodes[stages[0]].channels, m->nodes[stages[1]].channels,
                         m->nodes[stages[2]].channels, m->nodes[stages[3]].channels);
    int last = -1, outs[4] = {-1, -1, -1, -1};
    for (int i = L - 1; i >= 0; i--) {
        int lat;
        if ((st = kdc__fpn_conv(b, kdc__key(name, sizeof name, "fpn.inner_blocks.%d", i),
                                kdc__key(k1, sizeof k1, "fpn.inner_blocks.%d%s.weight", i, sp),
                                kdc__key(k2, sizeof k2, "fpn.inner_blocks.%d%s.bias", i, sp),
                                stages[s0 + i], -1, 1, 1, &lat)))
            return st;
        if (last >= 0) {
            if (m->nodes[lat].channels != m->nodes[last].channels)
                return kdc__fail(KDC_ERR_WEIGHTS, "%s: FPN inner blocks differ in width (%d, %d)",
                                 b->path, m->nodes[lat].channels, m->nodes[last].channels);
            lat = kdc__add_node(b, KDC__OP_ADD_UP,
                                kdc__key(name, sizeof name, "fpn.inner_blocks.%d.merged", i), lat,
                                last, m->nodes[lat].channels);
            if (lat < 0)
                return KDC_ERR_NO_MEMORY;
        }
        last = lat;
        if ((st = kdc__fpn_conv(b, kdc__key(name, sizeof name, "fpn.layer_blocks.%d", i),
                                kdc__key(k1, sizeof k1, "fpn.layer_blocks.%d%s.weight", i, sp),
                                kdc__key(k2, sizeof k2, "fpn.layer_blocks.%d%s.bias", i, sp), last,
                                m->nodes[last].channels, 3, 1, &outs[i])) ||
            (st = kdc__level_alias(b, s0 + i + 2, outs[i])))
            return st;
    }
    const int top = outs[L - 1], level = s0 + L + 2, cout = m->nodes[top].channels;
    if (kdc__has(b, "fpn.extra_blocks.p6.weight") && extra != KDC_FPN_EXTRA_NONE) {
        /* LastLevelP6P7: P6 from P5 when its input width equals the FPN's, else from C5 */
        int cin6 = kdc__in_channels(b, "fpn.extra_blocks.p6.weight"), p6, r, p7;
        int from = extra == KDC_FPN_EXTRA_ON_INPUT ? stages[3]
                   : extra == KDC_FPN_EXTRA_ON_OUTPUT ? top
                   : cin6 == cout ? top : stages[3];
        if ((st = kdc__fpn_conv(b, "fpn.extra_blocks.p6", "fpn.extra_blocks.p6.weight",
                                "fpn.extra_blocks.p6.bias", from, cout, 3, 2, &p6)) ||
            (st = kdc__level_alias(b, level, p6)))
            return st;
        float keep = b->clamp;
        b->clamp = INFINITY; /* torchvision: p7 = conv(F.relu(p6)) */
        st = kdc__relu(b, "fpn.extra_blocks.relu", p6, &r);
        b->clamp = keep;
        if (st || (st = kdc__fpn_conv(b, "fpn.extra_blocks.p7", "fpn.extra_blocks.p7.weight",
                                      "fpn.extra_blocks.p7.bias", r, cout, 3, 2, &p7)) ||
            (st = kdc__level_alias(b, level + 1, p7)))
            return st;
    } else if (extra == KDC_FPN_EXTRA_AUTO || extra == KDC_FPN_EXTRA_POOL) {
        /* LastLevelMaxPool: max_pool2d(P5, kernel 1, stride 2), torchvision's "pool" */
        int p = kdc__add_node(b, KDC__OP_MAXPOOL, "fpn.pool", top, -1, cout);
        if (p < 0)
            return KDC_ERR_NO_MEMORY;
        m->nodes[p].p.pool.k = 1;
        m->nodes[p].p.pool.stride = 2;
        m->nodes[p].p.pool.pad = 0;
        if ((st = kdc__level_alias(b, level, p)))
            return st;
    }
    m->num_classes = 0;
    return KDC_OK;
}

/* mmdetection: neck.lateral_convs.i.conv, neck.fpn_convs.i.conv; start level
 * from the first lateral's input width; extra fpn_convs on the input (C5),
 * the output (P5) or the lateral, else a max-pool level. */
static kdc_status kdc__build_fpn_mm(kdc__builder *b, const int stages[4], kdc_fpn_extra extra,
                                    int relu_extra)
{
    struct kdc_model *m = b->m;
    char k1[256], k2[256], name[96];
    kdc_status st;
    int L = 0, F = 0;
    while (kdc__has(b, kdc__key(k1, sizeof k1, "neck.lateral_convs.%d.conv.weight", L)))
        L++;
    while (kdc__has(b, kdc__key(k1, sizeof k1, "neck.fpn_convs.%d.conv.weight", F)))
        F++;
    const int cin0 = kdc__in_channels(b, "neck.lateral_convs.0.conv.weight");
    const int s0 = kdc__stage_with(m, stages, 0, cin0);
    if (s0 < 0 || s0 + L != 4 || F < L)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: neck with %d lateral convs from %d channels and %d "
                         "fpn convs does not match the body's stages (%d, %d, %d, %d channels)",
                         b->path, L, cin0, F, m->nodes[stages[0]].channels,
                         m->nodes[stages[1]].channels, m->nodes[stages[2]].channels,
                         m->nodes[stages[3]].channels);
    int lat[4], outs[8];
    for (int i = 0; i < L; i++)
        if ((st = kdc__fpn_conv(b, kdc__key(name, sizeof name, "neck.lateral_convs.%d", i),
                                kdc__key(k1, sizeof k1, "neck.lateral_convs.%d.conv.weight", i),
                                kdc__key(k2, sizeof k2, "neck.lateral_convs.%d.conv.bias", i),
                                stages[s0 + i], -1, 1, 1, &lat[i])))
            return st;
    /* top-down: laterals[i - 1] += upsample(laterals[i]) */
    int merged[4];
    merged[L - 1] = lat[L - 1];
    for (int i = L - 2; i >= 0; i--) {
        if (m->nodes[lat[i]].channels != m->nodes[merged[i + 1]].channels)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: lateral convs differ in width", b->path);
        merged[i] = kdc__add_node(b, KDC__OP_ADD_UP,
                                  kdc__key(name, sizeof name, "neck.lateral_convs.%d.merged", i),
                                  lat[i], merged[i + 1], m->nodes[lat[i]].channels);
        if (merged[i] < 0)
            return KDC_ERR_NO_MEMORY;
    }
    for (int i = 0; i < L; i++)
        if ((st = kdc__fpn_conv(b, kdc__key(name, sizeof name, "neck.fpn_convs.%d", i),
                                kdc__key(k1, sizeof k1, "neck.fpn_convs.%d.conv.weight", i),
                                kdc__key(k2, sizeof k2, "neck.fpn_convs.%d.conv.bias", i),
                                merged[i], m->nodes[merged[i]].channels, 3, 1, &outs[i])) ||
            (st = kdc__level_alias(b, s0 + i + 2, outs[i])))
            return st;
    const int cout = m->nodes[outs[L - 1]].channels;
    if (F > L && extra != KDC_FPN_EXTRA_NONE && extra != KDC_FPN_EXTRA_POOL) {
        int cin = kdc__in_channels(b, kdc__key(k1, sizeof k1, "neck.fpn_convs.%d.conv.weight", L));
        int from = extra == KDC_FPN_EXTRA_ON_INPUT ? stages[3]
                   : extra == KDC_FPN_EXTRA_ON_OUTPUT ? outs[L - 1]
                   : extra == KDC_FPN_EXTRA_ON_LATERAL ? lat[L - 1]
                   : cin == m->nodes[stages[3]].channels && cin != cout ? stages[3] : outs[L - 1];
        for (int k = L; k < F; k++) {
            if (k > L && relu_extra) {
                float keep = b->clamp;
                b->clamp = INFINITY;
                st = kdc__relu(b, kdc__key(name, sizeof name, "neck.fpn_convs.%d.relu", k), from,
                               &from);
                b->clamp = keep;
                if (st)
                    return st;
            }
            if ((st = kdc__fpn_conv(b, kdc__key(name, sizeof name, "neck.fpn_convs.%d", k),
                                    kdc__key(k1, sizeof k1, "neck.fpn_convs.%d.conv.weight", k),
                                    kdc__key(k2, sizeof k2, "neck.fpn_convs.%d.conv.bias", k), from,
                                    cout, 3, 2, &outs[k])) ||
                (st = kdc__level_alias(b, s0 + k + 2, outs[k])))
                return st;
            from = outs[k];
        }
    } else if (extra == KDC_FPN_EXTRA_AUTO || extra == KDC_FPN_EXTRA_POOL) {
        /* num_outs > inputs without extra convs: max_pool2d(P_top, 1, stride=2) */
        int p = kdc__add_node(b, KDC__OP_MAXPOOL, "neck.pool", outs[L - 1], -1, cout);
        if (p < 0)
            return KDC_ERR_NO_MEMORY;
        m->nodes[p].p.pool.k = 1;
        m->nodes[p].p.pool.stride = 2;
        m->nodes[p].p.pool.pad = 0;
        if ((st = kdc__level_alias(b, s0 + L + 2, p)))
            return st;
    }
    m->num_classes = 0;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* MobileNetV1                                                         */

/* Key of part `part` of block k under the scheme: part 0 = depthwise (or
 * stem) conv weight, 1 = its BN prefix, 3 = pointwise conv weight, 4 = its BN
 * prefix (the KD layout's Sequential indices). */
static const char *kdc__mbv1_key(char *buf, size_t size, kdc__scheme s, int k, int part)
{
    if (s == KDC__SCHEME_MBV1_KD)
        return part == 0 || part == 3 ? kdc__key(buf, size, "model.%d.%d.weight", k, part)
                                      : kdc__key(buf, size, "model.%d.%d", k, part);
    if (k == 0)
        return part == 0 ? kdc__key(buf, size, "conv_stem.weight") : kdc__key(buf, size, "bn1");
    const int S = kdc__mbv1_blocks[k].stage, B = kdc__mbv1_blocks[k].block;
    switch (part) {
    case 0: return kdc__key(buf, size, "blocks.%d.%d.conv_dw.weight", S, B);
    case 1: return kdc__key(buf, size, "blocks.%d.%d.bn1", S, B);
    case 3: return kdc__key(buf, size, "blocks.%d.%d.conv_pw.weight", S, B);
    default: return kdc__key(buf, size, "blocks.%d.%d.bn2", S, B);
    }
}

static kdc_status kdc__build_mbv1(kdc__builder *b, kdc__scheme s)
{
    struct kdc_model *m = b->m;
    char key[256], key2[256], name[128];
    kdc_status st;
    int x = 0, c;
    const int timm = s == KDC__SCHEME_MBV1_TIMM;

    snprintf(m->arch, sizeof m->arch, "mobilenetv1");
    /* model.0: conv3x3/2 + BN + act */
    if ((st = kdc__conv(b, "model.0.0", kdc__mbv1_key(key, sizeof key, s, 0, 0), NULL, x, 3, -1,
                        3, 2, 1, 1, &x)))
        return st;
    c = m->nodes[x].channels;
    if ((st = kdc__bn(b, "model.0.1", kdc__mbv1_key(key, sizeof key, s, 0, 1), x, c, &x)) ||
        (st = kdc__relu(b, "model.0", x, &x)) ||
        (st = kdc__add_alias(b, "model.0.2", x)))
        return st;
    if (timm && ((st = kdc__add_alias(b, "conv_stem", x - 2)) ||
                 (st = kdc__add_alias(b, "bn1", x))))
        return st;

    for (int k = 1; k <= 13; k++) {
        const int stride = kdc__mbv1_blocks[k].stride;
        char bp[32], tp[32];
        snprintf(bp, sizeof bp, "model.%d", k);
        snprintf(tp, sizeof tp, "blocks.%d.%d", kdc__mbv1_blocks[k].stage,
                 kdc__mbv1_blocks[k].block);
        /* depthwise 3x3 (stride) + BN + act */
        if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.0", bp),
                            kdc__mbv1_key(key, sizeof key, s, k, 0), NULL, x, c, c, 3, stride, 1,
                            c, &x)) ||
            (st = kdc__bn(b, kdc__key(name, sizeof name, "%s.1", bp),
                          kdc__mbv1_key(key, sizeof key, s, k, 1), x, c, &x)) ||
            (st = kdc__relu(b, kdc__key(name, sizeof name, "%s.2", bp), x, &x)))
            return st;
        if (timm && ((st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.conv_dw", tp), x - 2)) ||
                     (st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.bn1", tp), x))))
            return st;
        /* pointwise 1x1 + BN + act */
        if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.3", bp),
                            kdc__mbv1_key(key, sizeof key, s, k, 3), NULL, x, c, -1, 1, 1, 0, 1,
                            &x)))
            return st;
        c = m->nodes[x].channels;
        if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.4", bp),
                          kdc__mbv1_key(key2, sizeof key2, s, k, 4), x, c, &x)) ||
            (st = kdc__relu(b, bp, x, &x)) ||
            (st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.5", bp), x)))
            return st;
        if (timm && ((st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.conv_pw", tp), x - 2)) ||
                     (st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.bn2", tp), x)) ||
                     (st = kdc__add_alias(b, tp, x))))
            return st;
    }
    if (kdc__has(b, "model.14.weight") || kdc__has(b, "blocks.5.0.conv_dw.weight") ||
        kdc__has(b, "model.14.0.weight"))
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds more than 13 MobileNetV1 blocks", b->path);
    x = kdc__add_node(b, KDC__OP_GAP, "model.14", x, -1, c);
    if (x < 0)
        return KDC_ERR_NO_MEMORY;
    if (timm && (st = kdc__add_alias(b, "global_pool", x)))
        return st;
    if ((st = kdc__linear(b, "fc", timm ? "classifier.weight" : "fc.weight",
                          timm ? "classifier.bias" : "fc.bias", x, &x)))
        return st;
    if (timm && (st = kdc__add_alias(b, "classifier", x)))
        return st;
    m->num_classes = m->nodes[x].channels;
    m->min_input = 32;
    kdc_preprocess_imagenet(&m->preprocess);
    if (timm) {
        /* timm mobilenetv1_100: mean = std = 0.5, crop_pct 0.95 (bicubic in
         * timm; libkdcam resizes bilinearly, see docs/api.md). */
        m->preprocess.resize_short = 235;
        for (int i = 0; i < 3; i++) {
            m->preprocess.mean[i] = 0.5f;
            m->preprocess.std[i] = 0.5f;
        }
    }
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Load                                                                */

void kdc_model_options_init(kdc_model_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->bn_eps = -1.0f;
}

/* ------------------------------------------------------------------ */
/* Kernels: ISA choice and weight packing                              */

static kdc_status kdc__choose_isa(kdc_kernels want, kdc__isa *isa)
{
    switch (want) {
    case KDC_KERNELS_AUTO: *isa = kdc__isa_best(); return KDC_OK;
    case KDC_KERNELS_SCALAR: *isa = KDC__ISA_SCALAR; break;
    case KDC_KERNELS_AVX2: *isa = KDC__ISA_AVX2; break;
    case KDC_KERNELS_NEON: *isa = KDC__ISA_NEON; break;
    case KDC_KERNELS_AVX512: *isa = KDC__ISA_AVX512; break;
    default:
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kernels: %d is not a kdc_kernels value",
                         (int)want);
    }
    if (!kdc__isa_supported(*isa) || !kdc__gemm_kernels_get(*isa))
        return kdc__fail(KDC_ERR_UNSUPPORTED, "kernels %s: not available on this CPU and build "
                         "(%s needs %s); the best available is %s (kernels auto)",
                         kdc__isa_name(*isa), kdc__isa_name(*isa),
                         *isa == KDC__ISA_AVX2     ? "an x86-64 CPU with AVX2 and FMA"
                         : *isa == KDC__ISA_AVX512 ? "an x86-64 CPU with AVX-512F, AVX2 and FMA"
                                                   : "an aarch64 CPU",
                         kdc__isa_name(kdc__isa_best()));
    return KDC_OK;
}

static int kdc__gemm_node(const kdc__node *nd)
{
    return (nd->op == KDC__OP_CONV && nd->p.conv.groups == 1) || nd->op == KDC__OP_LINEAR;
}

/* Packs the weight of every dense conv and fully connected layer as the
 * GEMM's A, once (lib/kernels.h). The scalar ISA packs nothing: it runs the
 * reference kernels. */
static kdc_status kdc__setup_kernels(struct kdc_model *m, kdc__isa isa)
{
    m->isa = isa;
    m->act = kdc__act_kernels_get(isa);
    if (isa == KDC__ISA_SCALAR)
        return KDC_OK;
    m->gemm = kdc__gemm_kernels_get(isa);
    m->dw = kdc__dw_kernels_get(isa);
    m->packed = calloc((size_t)m->n_nodes, sizeof *m->packed);
    m->packed_t = calloc((size_t)m->n_nodes, sizeof *m->packed_t);
    if (!m->packed || !m->packed_t)
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for packed weights");
    if (pthread_mutex_init(&m->pack_lock, NULL))
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: cannot create a mutex");
    m->pack_lock_init = 1;
    const int mr = m->gemm->mr;
    for (int i = 0; i < m->n_nodes; i++) {
        kdc__node *nd = &m->nodes[i];
        if (!kdc__gemm_node(nd))
            continue;
        kdc__conv_param *cp = &nd->p.conv;
        const int k = cp->cin * cp->kh * cp->kw;
        const size_t bytes = kdc__gemm_packed_size(cp->cout, k, mr) * sizeof(float);
        float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p)
            return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for packed weights");
        kdc__gemm_pack_a(cp->weight, k, 1, cp->cout, k, mr, p);
        m->packed[i] = p;
        cp->packed = p;
        /* the packing is now the only copy the fast path reads (the
         * transposed one is made from it): give the plain one back */
        for (int j = 0; j < m->n_blocks; j++)
            if (m->blocks[j] == cp->weight) {
                free(m->blocks[j]);
                m->blocks[j] = NULL;
                m->n_params -= (size_t)cp->cout * k;
                cp->weight = NULL;
                break;
            }
    }
    return KDC_OK;
}

kdc_status kdc__conv_packed_t(const struct kdc_model *m, int node, const float **out)
{
    kdc_status st = KDC_OK;
    pthread_mutex_t *lock = (pthread_mutex_t *)&m->pack_lock;
    pthread_mutex_lock(lock);
    if (!m->packed_t[node]) {
        const kdc__conv_param *cp = &m->nodes[node].p.conv;
        const int k = cp->cin * cp->kh * cp->kw;
        const size_t bytes = kdc__gemm_packed_size(k, cp->cout, m->gemm->mr) * sizeof(float);
        float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (p) {
            /* element (i, o) of W^T is element (o, i) of the packed W */
            const int mr = m->gemm->mr;
            float *d = p;
            for (int i0 = 0; i0 < k; i0 += mr)
                for (int o = 0; o < cp->cout; o++, d += mr) {
                    const float *src = cp->packed + (size_t)(o / mr) * k * mr + o % mr;
                    for (int i = 0; i < mr; i++)
                        d[i] = i0 + i < k ? src[(size_t)(i0 + i) * mr] : 0.0f;
                }
            m->packed_t[node] = p;
        } else {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for the transposed weights",
                           m->nodes[node].name);
        }
    }
    *out = m->packed_t[node];
    pthread_mutex_unlock(lock);
    return st;
}

const char *kdc_model_kernels(const kdc_model *m)
{
    return m ? kdc__isa_name(m->isa) : NULL;
}

void kdc__model_free_contents(struct kdc_model *m)
{
    for (int i = 0; m->packed && i < m->n_nodes; i++)
        free(m->packed[i]);
    for (int i = 0; m->packed_t && i < m->n_nodes; i++)
        free(m->packed_t[i]);
    free(m->packed);
    free(m->packed_t);
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

static kdc_status kdc__note_ignored(struct kdc_model *m, const char *name)
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

static int kdc__starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Finds the scheme and the wrapper prefix from the anchors. */
static kdc_status kdc__find_scheme(kdc__builder *b, const char *want_prefix, kdc__scheme *scheme,
                                   char *prefix, size_t prefix_size)
{
    int found = 0;
    char first[256] = "", other[256] = "";
    for (int i = 0; i < kdc__st_count(b->st); i++) {
        const char *n = kdc__st_at(b->st, i)->name;
        size_t nl = strlen(n);
        for (size_t a = 0; a < sizeof kdc__anchors / sizeof *kdc__anchors; a++) {
            size_t al = strlen(kdc__anchors[a].anchor);
            if (nl < al || strcmp(n + nl - al, kdc__anchors[a].anchor))
                continue;
            size_t pl = nl - al;
            /* the prefix must end at a component boundary */
            if (pl > 0 && n[pl - 1] != '.')
                continue;
            if (want_prefix && (strlen(want_prefix) != pl || strncmp(n, want_prefix, pl)))
                continue;
            if (pl >= prefix_size)
                continue;
            if (!found) {
                memcpy(first, n, pl);
                first[pl] = '\0';
                *scheme = kdc__anchors[a].scheme;
                found = 1;
            } else if (strlen(first) != pl || strncmp(first, n, pl)) {
                memcpy(other, n, pl);
                other[pl] = '\0';
                found = 2;
            }
        }
    }
    if (found == 0) {
        if (want_prefix)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: no known model under prefix '%s'", b->path,
                             want_prefix);
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds no known model (no tensor named "
                         "layer1.0.conv1.weight, model.1.0.weight or blocks.0.0.conv_dw.weight "
                         "under any prefix)", b->path);
    }
    if (found == 2)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds several models (prefixes '%s' and '%s'); "
                         "choose one with the prefix option (--prefix)", b->path, first, other);
    snprintf(prefix, prefix_size, "%s", first);
    return KDC_OK;
}

static const char *kdc__arch_scheme_mismatch(const char *arch, kdc__scheme s)
{
    int resnet = kdc__starts_with(arch, "resnet");
    if (resnet && s != KDC__SCHEME_RESNET)
        return "a MobileNetV1";
    if (!resnet && s == KDC__SCHEME_RESNET)
        return "a ResNet";
    return NULL;
}

kdc_status kdc_model_load(const char *path, const kdc_model_options *opt_in, kdc_model **out)
{
    kdc_model_options opt;
    kdc__builder b;
    kdc__scheme scheme = KDC__SCHEME_RESNET;
    char prefix[256];
    kdc_status st;
    const char *arch;

    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_load: path is NULL");
    if (opt_in)
        opt = *opt_in;
    else
        kdc_model_options_init(&opt);
    arch = opt.arch && strcmp(opt.arch, "auto") && opt.arch[0] ? opt.arch : NULL;
    if (arch && strcmp(arch, "resnet50") && strcmp(arch, "resnet101") &&
        strcmp(arch, "resnet152") && strcmp(arch, "mobilenetv1") &&
        strcmp(arch, "resnet50-fpn") && strcmp(arch, "resnet101-fpn") &&
        strcmp(arch, "resnet152-fpn"))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown architecture '%s' (known: resnet50, "
                         "resnet101, resnet152, mobilenetv1, resnet50-fpn, resnet101-fpn, "
                         "resnet152-fpn)", arch);
    if (!(opt.bn_eps < 0.0f) && !(opt.bn_eps >= 0.0f && opt.bn_eps < 1.0f))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "BatchNorm eps %g is out of range [0, 1)",
                         (double)opt.bn_eps);
    kdc__isa isa = KDC__ISA_SCALAR;
    if ((st = kdc__choose_isa(opt.kernels, &isa)))
        return st;

    memset(&b, 0, sizeof b);
    b.path = path;
    b.eps = opt.bn_eps < 0.0f ? 1e-5f : opt.bn_eps;
    b.m = calloc(1, sizeof *b.m);
    if (!b.m)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    if ((st = kdc__weights_open(path, opt.key, &b.st)))
        goto free_model;
    if ((st = kdc__find_scheme(&b, opt.prefix, &scheme, prefix, sizeof prefix)))
        goto close_file;
    b.prefix = prefix;
    if (arch) {
        const char *is = kdc__arch_scheme_mismatch(arch, scheme);
        if (is) {
            st = kdc__fail(KDC_ERR_WEIGHTS, "%s: holds %s, not %s", path,
                           kdc__scheme_name(scheme), arch);
            goto close_file;
        }
    }
    snprintf(b.m->arch, sizeof b.m->arch, "%s", arch ? arch : "model");

    /* index every tensor by its full name */
    b.entries = calloc((size_t)kdc__st_count(b.st) + 1, sizeof *b.entries);
    if (!b.entries) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        goto close_file;
    }
    for (int i = 0; i < kdc__st_count(b.st); i++) {
        const kdc__st_tensor *t = kdc__st_at(b.st, i);
        b.entries[b.n_entries].key = t->name;
        b.entries[b.n_entries].t = t;
        b.n_entries++;
    }
    qsort(b.entries, (size_t)b.n_entries, sizeof *b.entries, kdc__entry_cmp);

    switch (opt.activation) {
    case KDC_ACT_RELU: b.clamp = INFINITY; break;
    case KDC_ACT_RELU6: b.clamp = 6.0f; break;
    default: b.clamp = scheme == KDC__SCHEME_MBV1_TIMM ? 6.0f : INFINITY; break;
    }

    if (kdc__add_node(&b, KDC__OP_INPUT, "input", -1, -1, 3) < 0) {
        st = KDC_ERR_NO_MEMORY;
        goto free_entries;
    }
    /* a detector: the ResNet body under backbone.body. (torchvision) or
     * backbone. (mmdetection), with its FPN beside it */
    char root[256] = "";
    int fpn = 0;
    if (scheme == KDC__SCHEME_RESNET) {
        size_t pl = strlen(prefix);
        if (pl >= 5 && !strcmp(prefix + pl - 5, "body.")) {
            snprintf(root, sizeof root, "%.*s", (int)(pl - 5), prefix);
            b.prefix = root;
            if (kdc__has(&b, "fpn.inner_blocks.0.0.weight") || kdc__has(&b, "fpn.inner_blocks.0.weight"))
                fpn = 1;
        } else if (pl >= 9 && !strcmp(prefix + pl - 9, "backbone.")) {
            snprintf(root, sizeof root, "%.*s", (int)(pl - 9), prefix);
            b.prefix = root;
            if (kdc__has(&b, "neck.lateral_convs.0.conv.weight"))
                fpn = 2;
        }
        b.prefix = prefix;
    }
    const int want_fpn = arch && strstr(arch, "-fpn") != NULL;
    if (want_fpn && !fpn) {
        st = kdc__fail(KDC_ERR_WEIGHTS, "%s: holds no FPN (no backbone.fpn.inner_blocks.* or "
                       "neck.lateral_convs.* tensors), not %s", path, arch);
        goto free_entries;
    }
    if (arch && fpn && !want_fpn) {
        st = kdc__fail(KDC_ERR_WEIGHTS, "%s: holds a detection backbone (a ResNet body with "
                       "an FPN: %s tensors), not the classifier %s; load it as %s-fpn or "
                       "with arch auto", path,
                       fpn == 1 ? "backbone.fpn.*" : "neck.*", arch, arch);
        goto free_entries;
    }
    /* torchvision detectors load their COCO weights into FrozenBatchNorm2d
     * with eps 0; a body saved from plain BatchNorm2d (it has
     * num_batches_tracked) keeps eps 1e-5 */
    if (fpn == 1 && opt.bn_eps < 0.0f && !kdc__has(&b, "bn1.num_batches_tracked"))
        b.eps = 0.0f;
    int stages[4];
    char base[32] = "";
    if (arch)
        snprintf(base, sizeof base, "%.*s", (int)strcspn(arch, "-"), arch);
    if (scheme == KDC__SCHEME_RESNET)
        st = kdc__build_resnet(&b, arch ? base : NULL, !fpn, stages);
    else
        st = kdc__build_mbv1(&b, scheme);
    if (st)
        goto free_entries;
    if (fpn) {
        b.prefix = root;
        st = fpn == 1 ? kdc__build_fpn_tv(&b, stages, opt.fpn_extra)
                      : kdc__build_fpn_mm(&b, stages, opt.fpn_extra, opt.fpn_relu_extra > 0);
        b.prefix = prefix;
        if (st)
            goto free_entries;
        strncat(b.m->arch, "-fpn", sizeof b.m->arch - strlen(b.m->arch) - 1);
        b.m->detector = fpn;
        b.m->bn_eps = b.eps;
    }

    /* the detector's own prefix, beside which its heads sit: root without
     * torchvision's "backbone." (mmdetection's root is already that) */
    size_t wl = strlen(root);
    if (fpn == 1 && wl >= 9 && !strcmp(root + wl - 9, "backbone."))
        wl -= 9;
    /* every tensor of the file must have been used (I64 counters excepted),
     * but for a detector's heads, which are listed as ignored */
    b.prefix = "";
    for (int i = 0; i < kdc__st_count(b.st); i++) {
        const kdc__st_tensor *t = kdc__st_at(b.st, i);
        kdc__entry *e = kdc__lookup(&b, t->name);
        if (e && e->used)
            continue;
        size_t nl = strlen(t->name);
        if (nl >= 19 && !strcmp(t->name + nl - 19, "num_batches_tracked"))
            continue;
        if (fpn && !strncmp(t->name, root, wl) && !kdc__starts_with(t->name + wl, "backbone.") &&
            !kdc__starts_with(t->name + wl, "neck.")) {
            /* a detection head (rpn, roi_heads, bbox_head, ...): not ours */
            if ((st = kdc__note_ignored(b.m, t->name)))
                goto free_entries;
            continue;
        }
        if (opt.allow_unused)
            continue;
        st = kdc__fail(KDC_ERR_WEIGHTS, "%s: unexpected tensor %s (not part of %s); allow "
                       "unused tensors (--allow-unused) to ignore it", path, t->name,
                       b.m->arch);
        goto free_entries;
    }
    if ((st = kdc__apply_metadata(path, b.st, b.m)))
        goto free_entries;
    if ((st = kdc__setup_kernels(b.m, isa)))
        goto free_entries;
    free(b.entries);
    kdc__st_close(b.st);
    *out = b.m;
    return KDC_OK;

free_entries:
    free(b.entries);
close_file:
    kdc__st_close(b.st);
free_model:
    kdc_model_destroy(b.m);
    return st;
}

/* ------------------------------------------------------------------ */
/* Model metadata (docs/api.md, "Model metadata")                      */

/* The activations one image needs at the size the metadata asks for,
 * checked before anything of that size is allocated (docs/security.md). */
static kdc_status kdc__meta_check_memory(const char *path, const struct kdc_model *m)
{
    const kdc_preprocess *pp = &m->preprocess;
    int h = pp->crop_h > 0 ? pp->crop_h : pp->resize_short;
    int w = pp->crop_w > 0 ? pp->crop_w : pp->resize_short;
    double bytes = 0;
    kdc_status st;
    int *chw;
    if (h <= 0 || w <= 0 || m->n_nodes <= 0)
        return KDC_OK;
    if (!(chw = malloc((size_t)m->n_nodes * 3 * sizeof *chw)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    if ((st = kdc__infer_shapes(m, h, w, chw)) != KDC_OK) {
        free(chw);
        return kdc__fail_context(st, "%s: metadata kdcam.preprocess", path);
    }
    for (int i = 0; i < m->n_nodes; i++)
        bytes += (double)chw[3 * i] * chw[3 * i + 1] * chw[3 * i + 2] * sizeof(float);
    free(chw);
    if (bytes > (double)KDC__META_MAX_ACTIVATION_BYTES)
        return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.preprocess asks for %dx%d inputs, "
                         "whose activations need %.0f MiB per image (limit %u MiB)", path, h, w,
                         bytes / (1 << 20), (unsigned)(KDC__META_MAX_ACTIVATION_BYTES >> 20));
    return KDC_OK;
}

static kdc_status kdc__apply_metadata(const char *path, const kdc__st_file *f, struct kdc_model *m)
{
    kdc_status st;
    const char *v = kdc__st_metadata(f, "kdcam.preprocess");
    if (v && ((st = kdc__meta_preprocess(path, v, &m->preprocess)) ||
              (st = kdc__meta_check_memory(path, m))))
        return st;
    v = kdc__st_metadata(f, "kdcam.classes");
    if (v && (st = kdc__meta_classes(path, v, m->num_classes, &m->class_text, &m->class_names)))
        return st;
    return KDC_OK;
}

const char *kdc_model_class_name(const kdc_model *m, int c)
{
    if (!m || c < 0 || c >= m->num_classes)
        return NULL;
    if (m->class_names)
        return m->class_names[c];
    return m->num_classes == 1000 ? kdc_imagenet_class_name(c) : NULL;
}

/* ------------------------------------------------------------------ */
/* Queries                                                             */

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

kdc_status kdc__infer_shapes(const struct kdc_model *m, int h, int w, int *chw)
{
    if (h < m->min_input || w < m->min_input)
        return kdc__fail(KDC_ERR_SHAPE, "input %dx%d is too small for %s (at least %dx%d)", h, w,
                         m->arch, m->min_input, m->min_input);
    for (int i = 0; i < m->n_nodes; i++) {
        const kdc__node *n = &m->nodes[i];
        const int *x = n->in[0] >= 0 ? chw + 3 * n->in[0] : NULL;
        int *y = chw + 3 * i;
        y[0] = n->channels;
        switch (n->op) {
        case KDC__OP_INPUT:
            y[1] = h;
            y[2] = w;
            break;
        case KDC__OP_CONV:
            y[1] = kdc__out_size(x[1], n->p.conv.kh, n->p.conv.stride, n->p.conv.pad);
            y[2] = kdc__out_size(x[2], n->p.conv.kw, n->p.conv.stride, n->p.conv.pad);
            break;
        case KDC__OP_MAXPOOL:
            y[1] = kdc__out_size(x[1], n->p.pool.k, n->p.pool.stride, n->p.pool.pad);
            y[2] = kdc__out_size(x[2], n->p.pool.k, n->p.pool.stride, n->p.pool.pad);
            break;
        case KDC__OP_GAP:
        case KDC__OP_LINEAR:
            y[1] = y[2] = 1;
            break;
        case KDC__OP_ADD_UP:
            if (chw[3 * n->in[1]] != x[0])
                return kdc__fail(KDC_ERR_SHAPE, "%s: channels differ", n->name);
            y[1] = x[1];
            y[2] = x[2];
            break;
        case KDC__OP_ADD_RELU: {
            const int *x2 = chw + 3 * n->in[1];
            if (x2[1] != x[1] || x2[2] != x[2])
                return kdc__fail(KDC_ERR_SHAPE, "input %dx%d: the residual branches of %s "
                                 "differ in size (%dx%d and %dx%d)", h, w, n->name, x[1], x[2],
                                 x2[1], x2[2]);
        } /* fall through */
        default:
            y[1] = x[1];
            y[2] = x[2];
            break;
        }
        if (y[1] <= 0 || y[2] <= 0)
            return kdc__fail(KDC_ERR_SHAPE, "input %dx%d is too small for %s: layer %s would be "
                             "empty", h, w, m->arch, n->name);
    }
    return KDC_OK;
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
