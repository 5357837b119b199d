/* builder.h - what the files of lib/models/ share (internal): the key
 * schemes, the architecture table, the builder state and its primitives.
 *
 * kdc_model_load (load.c) opens the file, finds the key scheme from the
 * anchors (arch.c), and lets the architecture's builder (resnet.c,
 * mobilenetv1.c, and fpn.c for detection backbones) add nodes through the
 * primitives of builder.c; then it audits the unused tensors, reads the
 * metadata (metadata.c) and packs the weights for the kernels (pack.c). */
#ifndef KDC_BUILDER_H
#define KDC_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "safetensors.h"

typedef enum kdc__scheme {
    KDC__SCHEME_RESNET,   /* torchvision / timm ResNet                      */
    KDC__SCHEME_MBV1_KD,  /* model.N.M.* (overhaul / ReviewKD / mdistiller) */
    KDC__SCHEME_MBV1_TIMM /* timm mobilenetv1_100                           */
} kdc__scheme;

typedef struct kdc__entry {
    const char *key;               /* full tensor name                    */
    const kdc__st_tensor *t;
    int used;
    float *data;                   /* its values once read by a conv, to share */
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

/* ---- the architecture table (arch.c) ---- */

/* Builds the body of an architecture: nodes from the input on. want_arch
 * is the architecture the caller asked for (without "-fpn"), or NULL for
 * whatever the weights hold; classifier: add the classification head;
 * stages[4]: the outputs of the four stages, for an FPN (ResNet only). */
typedef kdc_status (*kdc__build_fn)(kdc__builder *b, const char *want_arch, kdc__scheme s,
                                    int classifier, int stages[4]);

/* One row per architecture and key scheme. Models are data: a ResNet is
 * its stage table (widths come from the weight shapes), one builder serves
 * ResNet50/101/152, and a detection backbone is the same row with fpn. */
typedef struct kdc__arch {
    const char *name;           /* kdc_model_options.arch, kdc_model_arch   */
    kdc__scheme scheme;         /* the key scheme of its weights            */
    kdc__build_fn build;        /* the body                                 */
    int blocks[4];              /* ResNet: bottleneck blocks per stage      */
    int fpn;                    /* a detection backbone: body + FPN (fpn.c) */
    void (*preprocess)(kdc_preprocess *pp); /* default preprocessing       */
} kdc__arch;

extern const kdc__arch kdc__archs[];
extern const int kdc__n_archs;

/* The row named `name` for scheme s (any scheme when s < 0), or NULL. */
const kdc__arch *kdc__arch_find(const char *name, int s);
/* The first row of scheme s: the builder and preprocessing of its body. */
const kdc__arch *kdc__arch_body(kdc__scheme s);
/* The architecture names, "a, b, c", into buf. */
void kdc__arch_names(char *buf, size_t size);
/* "a ResNet (torchvision/timm keys)", ... */
const char *kdc__scheme_name(kdc__scheme s);
/* Finds the scheme and the wrapper prefix from the anchors. */
kdc_status kdc__find_scheme(kdc__builder *b, const char *want_prefix, kdc__scheme *scheme,
                            char *prefix, size_t prefix_size);

/* ---- builder primitives (builder.c) ---- */

int kdc__entry_cmp(const void *a, const void *b);
/* The tensor named prefix + key (entries are indexed by full name). */
kdc__entry *kdc__lookup(kdc__builder *b, const char *key);
/* printf into a fixed buffer; keys are short, a truncated key cannot match. */
const char *kdc__key(char *buf, size_t size, const char *fmt, ...) KDC_PRINTF(3, 4);
int kdc__has(kdc__builder *b, const char *key);
/* Appends a node; its index, or -1 (KDC_ERR_NO_MEMORY set). */
int kdc__add_node(kdc__builder *b, kdc__op op, const char *name, int in0, int in1, int channels);
kdc_status kdc__add_alias(kdc__builder *b, const char *name, int node);
/* A CONV node from the tensor wkey (and bias bkey, may be NULL); cout < 0:
 * from the weight. */
kdc_status kdc__conv(kdc__builder *b, const char *name, const char *wkey, const char *bkey,
                     int in, int cin, int cout, int k, int stride, int pad, int groups,
                     int *node);
/* An AFFINE node: the BatchNorm under key prefix kp, folded. */
kdc_status kdc__bn(kdc__builder *b, const char *name, const char *kp, int in, int c, int *node);
kdc_status kdc__relu(kdc__builder *b, const char *name, int in, int *node);
kdc_status kdc__linear(kdc__builder *b, const char *name, const char *wkey, const char *bkey,
                       int in, int *node);

/* ---- builders ---- */

/* resnet.c: the ResNet body (stem and four stages, stage outputs in
 * stages[]) and, when classifier is set, avgpool + fc. */
kdc_status kdc__build_resnet(kdc__builder *b, const char *want_arch, kdc__scheme s,
                             int classifier, int stages[4]);
/* mobilenetv1.c: the 13 depthwise-separable blocks and the classifier. */
kdc_status kdc__build_mbv1(kdc__builder *b, const char *want_arch, kdc__scheme s, int classifier,
                           int stages[4]);
/* mobilenetv1.c: timm's mobilenetv1_100 preprocessing. */
void kdc__preprocess_timm(kdc_preprocess *pp);
/* fpn.c: the FPN layout beside a ResNet found under prefix: 0 none, 1
 * torchvision (prefix ends "body."), 2 mmdetection (prefix ends
 * "backbone."); root: the prefix the FPN's keys are under. */
int kdc__fpn_detect(kdc__builder *b, const char *prefix, char *root, size_t root_size);
/* fpn.c: the FPN of layout fpn on the body's stages. */
kdc_status kdc__build_fpn(kdc__builder *b, int fpn, const int stages[4], kdc_fpn_extra extra,
                          int relu_extra);

/* retina.c: which complete RetinaNet head sits beside an FPN of layout fpn
 * (keys under b->prefix): 0 none, 1 torchvision, 2 mmdetection. */
int kdc__head_detect(kdc__builder *b, int fpn);
/* retina.c: the head's nodes on every FPN level; fills m->head. */
kdc_status kdc__build_retina(kdc__builder *b, int head);

/* ---- the rest of loading ---- */

/* model.c: lists a tensor of the file the model does not use (a head). */
kdc_status kdc__note_ignored(struct kdc_model *m, const char *name);
/* metadata.c: the file's kdcam.* metadata (preprocessing, class names). */
kdc_status kdc__apply_metadata(const char *path, const kdc__st_file *f, struct kdc_model *m);
/* pack.c: the ISA kdc_model_options.kernels asks for. */
kdc_status kdc__choose_isa(kdc_kernels want, kdc__isa *isa);
/* pack.c: chooses the kernel tables and packs the weights. */
kdc_status kdc__setup_kernels(struct kdc_model *m, kdc__isa isa);

#endif /* KDC_BUILDER_H */
