/* fpn.c - feature pyramids on a ResNet body (detection backbones): the
 * torchvision layout (backbone.body + backbone.fpn) and the mmdetection
 * one (backbone + neck), each with its extra levels. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "builder.h"

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

int kdc__fpn_detect(kdc__builder *b, const char *prefix, char *root, size_t root_size)
{
    size_t pl = strlen(prefix);
    int fpn = 0;
    root[0] = '\0';
    if (pl >= 5 && !strcmp(prefix + pl - 5, "body.")) {
        snprintf(root, root_size, "%.*s", (int)(pl - 5), prefix);
        b->prefix = root;
        if (kdc__has(b, "fpn.inner_blocks.0.0.weight") || kdc__has(b, "fpn.inner_blocks.0.weight"))
            fpn = 1;
    } else if (pl >= 9 && !strcmp(prefix + pl - 9, "backbone.")) {
        snprintf(root, root_size, "%.*s", (int)(pl - 9), prefix);
        b->prefix = root;
        if (kdc__has(b, "neck.lateral_convs.0.conv.weight"))
            fpn = 2;
    }
    b->prefix = prefix;
    return fpn;
}

kdc_status kdc__build_fpn(kdc__builder *b, int fpn, const int stages[4], kdc_fpn_extra extra,
                          int relu_extra)
{
    return fpn == 1 ? kdc__build_fpn_tv(b, stages, extra)
                    : kdc__build_fpn_mm(b, stages, extra, relu_extra);
}
