/* arch.c - the architectures libkdcam knows, as data: the key schemes and
 * their anchors, and the architecture table (name, key scheme, builder,
 * ResNet stage table, FPN, default preprocessing) that kdc_model_load and
 * the builders look up instead of comparing names. Adding an architecture:
 * a row here, and its builder if no existing one fits (docs/architecture.md). */
#include <stdio.h>
#include <string.h>

#include "builder.h"

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

const char *kdc__scheme_name(kdc__scheme s)
{
    switch (s) {
    case KDC__SCHEME_RESNET: return "a ResNet (torchvision/timm keys)";
    case KDC__SCHEME_MBV1_KD: return "a MobileNetV1 (model.N.M keys)";
    case KDC__SCHEME_MBV1_TIMM: return "a MobileNetV1 (timm mobilenetv1_100 keys)";
    }
    return "?";
}

const kdc__arch kdc__archs[] = {
    {"resnet50", KDC__SCHEME_RESNET, kdc__build_resnet, {3, 4, 6, 3}, 0, kdc_preprocess_imagenet},
    {"resnet101", KDC__SCHEME_RESNET, kdc__build_resnet, {3, 4, 23, 3}, 0,
     kdc_preprocess_imagenet},
    {"resnet152", KDC__SCHEME_RESNET, kdc__build_resnet, {3, 8, 36, 3}, 0,
     kdc_preprocess_imagenet},
    {"mobilenetv1", KDC__SCHEME_MBV1_KD, kdc__build_mbv1, {0}, 0, kdc_preprocess_imagenet},
    {"mobilenetv1", KDC__SCHEME_MBV1_TIMM, kdc__build_mbv1, {0}, 0, kdc__preprocess_timm},
    {"resnet50-fpn", KDC__SCHEME_RESNET, kdc__build_resnet, {3, 4, 6, 3}, 1,
     kdc_preprocess_imagenet},
    {"resnet101-fpn", KDC__SCHEME_RESNET, kdc__build_resnet, {3, 4, 23, 3}, 1,
     kdc_preprocess_imagenet},
    {"resnet152-fpn", KDC__SCHEME_RESNET, kdc__build_resnet, {3, 8, 36, 3}, 1,
     kdc_preprocess_imagenet},
};
const int kdc__n_archs = sizeof kdc__archs / sizeof kdc__archs[0];

const kdc__arch *kdc__arch_find(const char *name, int s)
{
    for (int i = 0; i < kdc__n_archs; i++)
        if (!strcmp(kdc__archs[i].name, name) && (s < 0 || kdc__archs[i].scheme == (kdc__scheme)s))
            return &kdc__archs[i];
    return NULL;
}

const kdc__arch *kdc__arch_body(kdc__scheme s)
{
    for (int i = 0; i < kdc__n_archs; i++)
        if (kdc__archs[i].scheme == s)
            return &kdc__archs[i];
    return NULL;
}

const char *kdc_model_arch_name(int i)
{
    int k = 0;
    for (int r = 0; r < kdc__n_archs; r++) {
        if (kdc__arch_find(kdc__archs[r].name, -1) != &kdc__archs[r])
            continue; /* a name seen in an earlier row */
        if (k++ == i)
            return kdc__archs[r].name;
    }
    return NULL;
}

void kdc__arch_names(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; kdc_model_arch_name(i) && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                                 kdc_model_arch_name(i));
}

kdc_status kdc__find_scheme(kdc__builder *b, const char *want_prefix, kdc__scheme *scheme,
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
