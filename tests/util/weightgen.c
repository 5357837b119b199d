/* weightgen.c - the seeded weight and input generator of the tests (see
 * weightgen.h and tools/kdcgen.py, which this file mirrors bit for bit).
 *
 * Exactness: a value is (float)(c32 + a32 * t) where a32, c32 are already
 * float32 values and t = (2u + 1 - 2^24) / 2^24 for a 24-bit integer u. The
 * product a32 * t has at most 49 significant bits, so it is exact in double;
 * a contracted fma(a32, t, c32) therefore rounds exactly like the separate
 * multiply and add. Nothing here depends on FMA contraction or on the
 * evaluation order of sums. */
#include "weightgen.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define RES_BN_C 0.25 /* last BN of a bottleneck branch (bn3): see kdcgen.py */
#define RES_BN_A 0.1

uint64_t kdc_test_fnv1a64(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001B3ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void kdc_test_fill(float *dst, size_t n, const char *name, uint64_t seed, double c, double a)
{
    const uint64_t key = kdc_test_fnv1a64(name) ^ seed;
    const double c32 = (double)(float)c;
    const double a32 = (double)(float)a;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = mix64(key + (uint64_t)(i + 1) * GOLDEN);
        double u = (double)(z >> 40);
        double t = (2.0 * u + (1.0 - 16777216.0)) / 16777216.0; /* exact */
        double p = a32 * t;                                      /* exact */
        dst[i] = (float)(c32 + p);
    }
}

size_t kdc_test_sample_index(size_t n, size_t k, size_t j)
{
    uint64_t step = (uint64_t)(n / k);
    return (size_t)((uint64_t)j * step + ((uint64_t)j * 2654435761ULL) % step);
}

uint16_t kdc_test_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xffu) /* inf / nan (quiet) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        uint32_t full = man | 0x800000u;
        int shift = 14 - e;
        uint32_t h = full >> shift;
        uint32_t rem = full & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is the correct result (up to inf) */
    return (uint16_t)(sign | h);
}

double kdc_test_rel_l2(const float *got, const float *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    if (den == 0.0)
        return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

void kdc_test_sums(const float *x, size_t n, double *sum, double *sumsq)
{
    double s = 0.0, q = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        q += (double)x[i] * (double)x[i];
    }
    *sum = s;
    *sumsq = q;
}

/* ------------------------------------------------------------------ */
/* Tensor lists of the schemes                                         */

typedef struct spec {
    char name[96];
    int ndim;
    int64_t shape[4];
} spec;

typedef struct spec_list {
    spec *v;
    int n, cap;
    int oom;
} spec_list;

static void add(spec_list *l, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                int64_t d3)
{
    if (l->oom)
        return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        spec *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    spec *s = &l->v[l->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = ndim;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->shape[2] = d2;
    s->shape[3] = d3;
}

static void add_bn(spec_list *l, const char *p, int64_t c)
{
    static const char *const leaf[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[96];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", p, leaf[i]);
        add(l, name, 1, c, 0, 0, 0);
    }
    snprintf(name, sizeof name, "%s.num_batches_tracked", p);
    add(l, name, 0, 0, 0, 0, 0);
}

/* (in, out, stride) of model.1 .. model.13 and the timm (stage, block). */
static const int MBV1[13][3] = {{32, 64, 1},    {64, 128, 2},   {128, 128, 1}, {128, 256, 2},
                                {256, 256, 1},  {256, 512, 2},  {512, 512, 1}, {512, 512, 1},
                                {512, 512, 1},  {512, 512, 1},  {512, 512, 1}, {512, 1024, 2},
                                {1024, 1024, 1}};
static const int MBV1_TIMM[13][2] = {{0, 0}, {1, 0}, {1, 1}, {2, 0}, {2, 1}, {3, 0}, {3, 1},
                                     {3, 2}, {3, 3}, {3, 4}, {3, 5}, {4, 0}, {4, 1}};

/* Detection-backbone schemes (kdcgen.FPN_SCHEMES): the resnet50 body without
 * fc under a detector prefix, the FPN (FPN_CH channels) and a few head
 * tensors, or a full RetinaNet head (RETINA_CONVS ReLU convs per branch,
 * RETINA_A anchors, RETINA_K classes). */
#define FPN_CH 64
#define RETINA_A 9
#define RETINA_K 3
#define RETINA_CONVS 4
static const struct {
    const char *scheme;
    int mm;            /* 0: torchvision keys, 1: mmdetection keys          */
    int nbt;           /* body keeps num_batches_tracked                    */
    int first_stage;   /* 1: C2..C5, 2: C3..C5                              */
    int extra;         /* 0 none (max-pool level), 1 p6p7 from P5, 2 p6p7
                          from C5, 3 mmdet two extra convs on C5            */
    int old;           /* inner_blocks.i.weight (no ".0")                   */
    int heads;         /* 0 none, 1 torchvision, 2 mmdetection (partial
                          heads, ignored); RetinaNet heads: 3 torchvision
                          (conv.i.0), 4 torchvision old (conv.2i), 5
                          mmdetection RetinaHead                           */
} FPN_SCHEMES[] = {
    {"resnet50_fpn_tv", 0, 0, 1, 0, 0, 1},
    {"resnet50_fpn_tv_old", 0, 1, 1, 0, 1, 0},
    {"resnet50_fpn_tv_p6p7", 0, 0, 2, 1, 0, 0},
    {"resnet50_fpn_tv_p6p7_v2", 0, 0, 2, 2, 0, 0},
    {"resnet50_fpn_mm_retina", 1, 1, 2, 3, 0, 2},
    {"resnet50_retina_tv", 0, 0, 2, 1, 0, 3},
    {"resnet50_retina_tv_old", 0, 0, 2, 1, 0, 4},
    {"resnet50_retina_mm", 1, 1, 2, 3, 0, 5},
};

/* The RetinaNet head tensors (kdcgen._retina_head_specs), state_dict order. */
static void add_retina_head(spec_list *l, int heads)
{
    char name[128];
    const int64_t F = FPN_CH;
    if (heads == 3 || heads == 4) {
        static const char *const branch[2] = {"classification_head", "regression_head"};
        static const char *const oname[2] = {"cls_logits", "bbox_reg"};
        const int64_t oc[2] = {RETINA_A * RETINA_K, RETINA_A * 4};
        for (int b = 0; b < 2; b++) {
            for (int i = 0; i < RETINA_CONVS; i++) {
                char p[96];
                if (heads == 3)
                    snprintf(p, sizeof p, "head.%s.conv.%d.0", branch[b], i);
                else
                    snprintf(p, sizeof p, "head.%s.conv.%d", branch[b], 2 * i);
                snprintf(name, sizeof name, "%s.weight", p);
                add(l, name, 4, F, F, 3, 3);
                snprintf(name, sizeof name, "%s.bias", p);
                add(l, name, 1, F, 0, 0, 0);
            }
            snprintf(name, sizeof name, "head.%s.%s.weight", branch[b], oname[b]);
            add(l, name, 4, oc[b], F, 3, 3);
            snprintf(name, sizeof name, "head.%s.%s.bias", branch[b], oname[b]);
            add(l, name, 1, oc[b], 0, 0, 0);
        }
    } else {
        static const char *const branch[2] = {"cls_convs", "reg_convs"};
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < RETINA_CONVS; i++) {
                snprintf(name, sizeof name, "bbox_head.%s.%d.conv.weight", branch[b], i);
                add(l, name, 4, F, F, 3, 3);
                snprintf(name, sizeof name, "bbox_head.%s.%d.conv.bias", branch[b], i);
                add(l, name, 1, F, 0, 0, 0);
            }
        add(l, "bbox_head.retina_cls.weight", 4, RETINA_A * RETINA_K, F, 3, 3);
        add(l, "bbox_head.retina_cls.bias", 1, RETINA_A * RETINA_K, 0, 0, 0);
        add(l, "bbox_head.retina_reg.weight", 4, RETINA_A * 4, F, 3, 3);
        add(l, "bbox_head.retina_reg.bias", 1, RETINA_A * 4, 0, 0, 0);
    }
}

static int build_specs(const char *scheme, int classes, spec_list *l);

static int build_fpn_specs(int k, spec_list *l)
{
    spec_list body = {0};
    char name[128]; /* prefix + a body name; every name fits spec.name */
    const int64_t F = FPN_CH;
    if (build_specs("resnet50", 1000, &body) != 0) {
        free(body.v);
        return -1;
    }
    const char *bp = FPN_SCHEMES[k].mm ? "backbone." : "backbone.body.";
    for (int i = 0; i < body.n; i++) {
        const spec *s = &body.v[i];
        size_t len = strlen(s->name);
        if (strncmp(s->name, "fc.", 3) == 0)
            continue;
        if (!FPN_SCHEMES[k].nbt && len >= 19 && strcmp(s->name + len - 19, "num_batches_tracked") == 0)
            continue;
        snprintf(name, sizeof name, "%s%s", bp, s->name);
        add(l, name, s->ndim, s->shape[0], s->shape[1], s->shape[2], s->shape[3]);
    }
    free(body.v);
    const int L = 5 - FPN_SCHEMES[k].first_stage;
    if (!FPN_SCHEMES[k].mm) {
        const char *sp = FPN_SCHEMES[k].old ? "" : ".0";
        for (int i = 0; i < L; i++) {
            int64_t ci = (int64_t)256 << (FPN_SCHEMES[k].first_stage - 1 + i);
            snprintf(name, sizeof name, "backbone.fpn.inner_blocks.%d%s.weight", i, sp);
            add(l, name, 4, F, ci, 1, 1);
            snprintf(name, sizeof name, "backbone.fpn.inner_blocks.%d%s.bias", i, sp);
            add(l, name, 1, F, 0, 0, 0);
        }
        for (int i = 0; i < L; i++) {
            snprintf(name, sizeof name, "backbone.fpn.layer_blocks.%d%s.weight", i, sp);
            add(l, name, 4, F, F, 3, 3);
            snprintf(name, sizeof name, "backbone.fpn.layer_blocks.%d%s.bias", i, sp);
            add(l, name, 1, F, 0, 0, 0);
        }
        if (FPN_SCHEMES[k].extra == 1 || FPN_SCHEMES[k].extra == 2) {
            add(l, "backbone.fpn.extra_blocks.p6.weight", 4, F,
                FPN_SCHEMES[k].extra == 1 ? F : 2048, 3, 3);
            add(l, "backbone.fpn.extra_blocks.p6.bias", 1, F, 0, 0, 0);
            add(l, "backbone.fpn.extra_blocks.p7.weight", 4, F, F, 3, 3);
            add(l, "backbone.fpn.extra_blocks.p7.bias", 1, F, 0, 0, 0);
        }
    } else {
        for (int i = 0; i < L; i++) {
            int64_t ci = (int64_t)256 << (FPN_SCHEMES[k].first_stage - 1 + i);
            snprintf(name, sizeof name, "neck.lateral_convs.%d.conv.weight", i);
            add(l, name, 4, F, ci, 1, 1);
            snprintf(name, sizeof name, "neck.lateral_convs.%d.conv.bias", i);
            add(l, name, 1, F, 0, 0, 0);
        }
        for (int i = 0; i < L + 2; i++) {
            snprintf(name, sizeof name, "neck.fpn_convs.%d.conv.weight", i);
            add(l, name, 4, F, i == L ? 2048 : F, 3, 3);
            snprintf(name, sizeof name, "neck.fpn_convs.%d.conv.bias", i);
            add(l, name, 1, F, 0, 0, 0);
        }
    }
    if (FPN_SCHEMES[k].heads == 1) {
        add(l, "rpn.head.conv.0.0.weight", 4, F, F, 3, 3);
        add(l, "rpn.head.conv.0.0.bias", 1, F, 0, 0, 0);
        add(l, "rpn.head.cls_logits.weight", 4, 3, F, 1, 1);
        add(l, "rpn.head.cls_logits.bias", 1, 3, 0, 0, 0);
        add(l, "roi_heads.box_head.fc6.weight", 2, 32, F * 49, 0, 0);
        add(l, "roi_heads.box_head.fc6.bias", 1, 32, 0, 0, 0);
    } else if (FPN_SCHEMES[k].heads == 2) {
        add(l, "bbox_head.cls_convs.0.conv.weight", 4, F, F, 3, 3);
        add(l, "bbox_head.cls_convs.0.conv.bias", 1, F, 0, 0, 0);
        add(l, "bbox_head.retina_cls.weight", 4, 9, F, 3, 3);
        add(l, "bbox_head.retina_cls.bias", 1, 9, 0, 0, 0);
    } else if (FPN_SCHEMES[k].heads >= 3) {
        add_retina_head(l, FPN_SCHEMES[k].heads);
    }
    return l->oom ? -1 : 0;
}

static int build_specs(const char *scheme, int classes, spec_list *l)
{
    for (size_t k = 0; k < sizeof FPN_SCHEMES / sizeof FPN_SCHEMES[0]; k++)
        if (strcmp(scheme, FPN_SCHEMES[k].scheme) == 0)
            return build_fpn_specs((int)k, l);

    char p[64], name[96];
    const int *blocks = NULL;
    static const int r50[4] = {3, 4, 6, 3}, r101[4] = {3, 4, 23, 3}, r152[4] = {3, 8, 36, 3};
    if (strcmp(scheme, "resnet50") == 0)
        blocks = r50;
    else if (strcmp(scheme, "resnet101") == 0)
        blocks = r101;
    else if (strcmp(scheme, "resnet152") == 0)
        blocks = r152;
    if (blocks) {
        add(l, "conv1.weight", 4, 64, 3, 7, 7);
        add_bn(l, "bn1", 64);
        int64_t inplanes = 64;
        for (int L = 1; L <= 4; L++) {
            int64_t planes = (int64_t)64 << (L - 1);
            for (int b = 0; b < blocks[L - 1]; b++) {
                snprintf(p, sizeof p, "layer%d.%d", L, b);
                snprintf(name, sizeof name, "%s.conv1.weight", p);
                add(l, name, 4, planes, inplanes, 1, 1);
                snprintf(name, sizeof name, "%s.bn1", p);
                add_bn(l, name, planes);
                snprintf(name, sizeof name, "%s.conv2.weight", p);
                add(l, name, 4, planes, planes, 3, 3);
                snprintf(name, sizeof name, "%s.bn2", p);
                add_bn(l, name, planes);
                snprintf(name, sizeof name, "%s.conv3.weight", p);
                add(l, name, 4, planes * 4, planes, 1, 1);
                snprintf(name, sizeof name, "%s.bn3", p);
                add_bn(l, name, planes * 4);
                if (b == 0) {
                    snprintf(name, sizeof name, "%s.downsample.0.weight", p);
                    add(l, name, 4, planes * 4, inplanes, 1, 1);
                    snprintf(name, sizeof name, "%s.downsample.1", p);
                    add_bn(l, name, planes * 4);
                }
                inplanes = planes * 4;
            }
        }
        add(l, "fc.weight", 2, classes, 2048, 0, 0);
        add(l, "fc.bias", 1, classes, 0, 0, 0);
    } else if (strcmp(scheme, "mobilenetv1") == 0) {
        add(l, "model.0.0.weight", 4, 32, 3, 3, 3);
        add_bn(l, "model.0.1", 32);
        for (int k = 1; k <= 13; k++) {
            int ci = MBV1[k - 1][0], co = MBV1[k - 1][1];
            snprintf(name, sizeof name, "model.%d.0.weight", k);
            add(l, name, 4, ci, 1, 3, 3);
            snprintf(name, sizeof name, "model.%d.1", k);
            add_bn(l, name, ci);
            snprintf(name, sizeof name, "model.%d.3.weight", k);
            add(l, name, 4, co, ci, 1, 1);
            snprintf(name, sizeof name, "model.%d.4", k);
            add_bn(l, name, co);
        }
        add(l, "fc.weight", 2, classes, 1024, 0, 0);
        add(l, "fc.bias", 1, classes, 0, 0, 0);
    } else if (strcmp(scheme, "mobilenetv1_timm") == 0) {
        add(l, "conv_stem.weight", 4, 32, 3, 3, 3);
        add_bn(l, "bn1", 32);
        for (int k = 1; k <= 13; k++) {
            int ci = MBV1[k - 1][0], co = MBV1[k - 1][1];
            snprintf(p, sizeof p, "blocks.%d.%d", MBV1_TIMM[k - 1][0], MBV1_TIMM[k - 1][1]);
            snprintf(name, sizeof name, "%s.conv_dw.weight", p);
            add(l, name, 4, ci, 1, 3, 3);
            snprintf(name, sizeof name, "%s.bn1", p);
            add_bn(l, name, ci);
            snprintf(name, sizeof name, "%s.conv_pw.weight", p);
            add(l, name, 4, co, ci, 1, 1);
            snprintf(name, sizeof name, "%s.bn2", p);
            add_bn(l, name, co);
        }
        add(l, "classifier.weight", 2, classes, 1024, 0, 0);
        add(l, "classifier.bias", 1, classes, 0, 0, 0);
    } else {
        return -1;
    }
    return l->oom ? -1 : 0;
}

static size_t numel_of(const spec *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->shape[i];
    return n;
}

/* kind 0: float (c, a); kind 1: I64 zero scalar; -1: unknown. Mirrors
 * kdcgen.tensor_dist. */
static int tensor_dist(const spec *s, double *c, double *a)
{
    const char *dot = strrchr(s->name, '.');
    const char *leaf = dot ? dot + 1 : s->name;
    char module[96] = "";
    if (dot) {
        size_t len = (size_t)(dot - s->name);
        memcpy(module, s->name, len);
        module[len] = '\0';
    }
    const char *mdot = strrchr(module, '.');
    const char *mleaf = mdot ? mdot + 1 : module;
    *c = 0.0;
    *a = 0.0;
    if (strcmp(leaf, "num_batches_tracked") == 0)
        return 1;
    if (strcmp(leaf, "bias") == 0) {
        /* detector biases (FPN, heads): kdcgen.DET_BIAS_PREFIXES */
        static const char *const det[] = {"backbone.fpn.", "neck.", "rpn.", "roi_heads.",
                                          "bbox_head.", "head."};
        for (size_t i = 0; i < sizeof det / sizeof det[0]; i++)
            if (strncmp(s->name, det[i], strlen(det[i])) == 0) {
                *a = 0.05;
                return 0;
            }
    }
    if (strcmp(leaf, "weight") == 0 && s->ndim == 4) {
        double fan_in = (double)(s->shape[1] * s->shape[2] * s->shape[3]);
        *a = sqrt(6.0 / fan_in);
        return 0;
    }
    if (strcmp(leaf, "weight") == 0 && s->ndim == 2) {
        *a = sqrt(6.0 / (double)s->shape[1]);
        return 0;
    }
    if (strcmp(leaf, "bias") == 0 && (strcmp(mleaf, "fc") == 0 || strcmp(mleaf, "classifier") == 0)) {
        *a = 0.05;
        return 0;
    }
    if (strcmp(leaf, "weight") == 0 && s->ndim == 1) {
        if (strcmp(mleaf, "bn3") == 0) {
            *c = RES_BN_C;
            *a = RES_BN_A;
        } else {
            *c = 1.0;
            *a = 0.5;
        }
        return 0;
    }
    if (strcmp(leaf, "bias") == 0 && s->ndim == 1) {
        *a = 0.2;
        return 0;
    }
    if (strcmp(leaf, "running_mean") == 0) {
        *a = 0.2;
        return 0;
    }
    if (strcmp(leaf, "running_var") == 0) {
        *c = 1.0;
        *a = 0.5;
        return 0;
    }
    return -1;
}

int kdc_test_gen_tensor(const char *scheme, int num_classes, const char *name, uint64_t seed,
                        float **out, size_t *numel)
{
    spec_list l = {0};
    int rc = -1;
    *out = NULL;
    *numel = 0;
    if (build_specs(scheme, num_classes, &l) != 0)
        goto out;
    for (int i = 0; i < l.n; i++) {
        if (strcmp(l.v[i].name, name) != 0)
            continue;
        double c, a;
        int kind = tensor_dist(&l.v[i], &c, &a);
        size_t n = numel_of(&l.v[i]);
        float *v = calloc(n ? n : 1, sizeof *v);
        if (kind < 0 || !v) {
            free(v);
            goto out;
        }
        if (kind == 0)
            kdc_test_fill(v, n, name, seed, c, a);
        *out = v;
        *numel = n;
        rc = 0;
        break;
    }
out:
    free(l.v);
    return rc;
}

/* ------------------------------------------------------------------ */
/* safetensors writer                                                  */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

#if defined(__GNUC__)
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

int kdc_test_write_weights(const char *path, const char *scheme, uint64_t seed, int num_classes,
                           const char *prefix, int dtype_f16)
{
    spec_list l = {0};
    sbuf h = {0};
    FILE *f = NULL;
    float *buf = NULL;
    uint16_t *hbuf = NULL;
    size_t maxn = 1;
    int rc = -1;
    if (!prefix)
        prefix = "";
    if (num_classes <= 0 || build_specs(scheme, num_classes, &l) != 0)
        goto out;

    /* header */
    size_t off = 0;
    sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < l.n; i++) {
        const spec *s = &l.v[i];
        double c, a;
        int kind = tensor_dist(s, &c, &a);
        if (kind < 0)
            goto out;
        size_t n = numel_of(s);
        if (n > maxn)
            maxn = n;
        size_t bytes = kind == 1 ? 8 : n * (dtype_f16 ? 2 : 4);
        sb_printf(&h, ",\"%s%s\":{\"dtype\":\"%s\",\"shape\":[", prefix, s->name,
                  kind == 1 ? "I64" : (dtype_f16 ? "F16" : "F32"));
        for (int d = 0; d < s->ndim; d++)
            sb_printf(&h, "%s%lld", d ? "," : "", (long long)s->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    sb_printf(&h, "}");
    while (!h.oom && h.n % 8 != 0)
        sb_printf(&h, " ");
    if (h.oom)
        goto out;

    buf = malloc(maxn * sizeof *buf);
    hbuf = malloc(maxn * sizeof *hbuf);
    if (!buf || !hbuf)
        goto out;
    f = fopen(path, "wb");
    if (!f)
        goto out;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(h.p, 1, h.n, f) != h.n)
        goto out;
    for (int i = 0; i < l.n; i++) {
        const spec *s = &l.v[i];
        double c, a;
        int kind = tensor_dist(s, &c, &a);
        size_t n = numel_of(s);
        if (kind == 1) {
            static const unsigned char zero[8] = {0};
            if (fwrite(zero, 1, 8, f) != 8)
                goto out;
            continue;
        }
        kdc_test_fill(buf, n, s->name, seed, c, a);
        if (dtype_f16) {
            for (size_t j = 0; j < n; j++) {
                uint16_t v = kdc_test_f32_to_f16(buf[j]);
                unsigned char *b = (unsigned char *)&hbuf[j];
                b[0] = (unsigned char)(v & 0xff);
                b[1] = (unsigned char)(v >> 8);
            }
            if (fwrite(hbuf, 2, n, f) != n)
                goto out;
        } else {
            for (size_t j = 0; j < n; j++) {
                uint32_t v;
                memcpy(&v, &buf[j], 4);
                unsigned char *b = (unsigned char *)&buf[j];
                b[0] = (unsigned char)(v & 0xff);
                b[1] = (unsigned char)((v >> 8) & 0xff);
                b[2] = (unsigned char)((v >> 16) & 0xff);
                b[3] = (unsigned char)(v >> 24);
            }
            if (fwrite(buf, 4, n, f) != n)
                goto out;
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    rc = 0;
out:
    if (f) {
        fclose(f);
        remove(path);
    }
    free(hbuf);
    free(buf);
    free(h.p);
    free(l.v);
    return rc;
}
