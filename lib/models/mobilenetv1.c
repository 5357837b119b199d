/* mobilenetv1.c - MobileNetV1: a table of 13 depthwise-separable blocks
 * (stride per block, and the timm stage/block of each), read under one of
 * two key schemes (the knowledge-distillation `model.N.M` layout, or timm's
 * `mobilenetv1_100`). Channels come from the weights. */
#include <stdio.h>
#include <string.h>

#include "builder.h"

/* MobileNetV1 block table (reference-facts): stride of blocks 1..13, and the
 * timm (stage, block) of each. Channels come from the weights. */
static const struct {
    int stride, stage, block;
} kdc__mbv1_blocks[14] = {
    {2, -1, -1}, /* model.0: the 3x3 stem conv */
    {1, 0, 0}, {2, 1, 0}, {1, 1, 1}, {2, 2, 0}, {1, 2, 1}, {2, 3, 0}, {1, 3, 1},
    {1, 3, 2}, {1, 3, 3}, {1, 3, 4}, {1, 3, 5}, {2, 4, 0}, {1, 4, 1},
};

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

kdc_status kdc__build_mbv1(kdc__builder *b, const char *want_arch, kdc__scheme s, int classifier,
                           int stages[4])
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
    return KDC_OK;
}

/* timm mobilenetv1_100: mean = std = 0.5, crop_pct 0.95 (bicubic in timm;
 * libkdcam resizes bilinearly, see docs/api.md). */
void kdc__preprocess_timm(kdc_preprocess *pp)
{
    kdc_preprocess_imagenet(pp);
    pp->resize_short = 235;
    for (int i = 0; i < 3; i++) {
        pp->mean[i] = 0.5f;
        pp->std[i] = 0.5f;
    }
}
