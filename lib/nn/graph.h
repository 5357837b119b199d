/* graph.h - the network as data: a list of nodes in execution order, and
 * the op kernels that run them (internal).
 *
 * A model is a DAG stored as an array of nodes in topological order. Node 0
 * is the input. Each node is one addressable layer, named by its PyTorch
 * module path; extra names (stage aliases such as "layer4" for "layer4.2")
 * live in an alias table. Parameters are float32, owned by the model, and
 * never change after load. */
#ifndef KDC_GRAPH_H
#define KDC_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "internal.h"
#include "kernels.h"

/* The ops, from the op table (ops.def; definitions in op.h). */
typedef enum kdc__op {
#define KDC__OP(id, def) KDC__OP_##id,
#include "ops.def"
#undef KDC__OP
    KDC__OP_COUNT
} kdc__op;

typedef struct kdc__conv_param {
    int cin, cout;      /* channels of input / output                    */
    int kh, kw;
    int stride, pad;
    int groups;         /* 1: dense; cin: depthwise                       */
    const float *weight;/* (cout, cin / groups, kh, kw); NULL once packed  */
    const float *bias;  /* (cout) or NULL                                 */
    /* Fast kernels (dense convs and LINEAR, groups == 1): the weight as the
     * GEMM's A, (cout x cin*kh*kw) in mr-row panels (lib/kernels/kernels.h), packed
     * once at load; NULL on the scalar reference path. */
    const float *packed;
    /* The node whose weights (and packings) this one shares (a RetinaNet
     * head's conv on each FPN level reads one tensor), or 0: its own. */
    int share;
} kdc__conv_param;

typedef struct kdc__node {
    kdc__op op;
    char *name;          /* PyTorch module path (owned)                  */
    int in[2];           /* input node indices, -1 when unused           */
    int channels;        /* output channels                              */
    union {
        kdc__conv_param conv;                         /* CONV, LINEAR (kh = kw = 1) */
        struct { const float *scale, *shift; } affine; /* AFFINE         */
        struct { float clamp; } act;                   /* RELU, ADD_RELU  */
        struct { int k, stride, pad; } pool;           /* MAXPOOL         */
    } p;
} kdc__node;

/* A detector's RetinaNet head (lib/models/retina.c): per FPN level, the
 * level's node and the two branch outputs. */
#define KDC_HEAD_MAX_CONVS 16
typedef struct kdc__head {
    int kind;                 /* kdc_head_kind: 0 none                     */
    int nlevels;
    int level[KDC_HEAD_MAX_LEVELS];   /* FPN level L (stride 2^L)          */
    int feature[KDC_HEAD_MAX_LEVELS]; /* its node                          */
    int cls[KDC_HEAD_MAX_LEVELS], reg[KDC_HEAD_MAX_LEVELS]; /* outputs     */
    int anchors, classes;     /* A per cell, K                             */
    int nconv_cls, nconv_reg; /* stacked convs of each branch              */
} kdc__head;

typedef struct kdc__alias {
    char *name;  /* owned */
    int node;
} kdc__alias;

/* Weight layouts a SIMD model derives from a dense conv's packing when a
 * run first needs them (models/pack.c). */
typedef enum kdc__derived {
    KDC__DERIVED_T,      /* the transposed packing (cin*kh*kw x cout): backward-data */
    KDC__DERIVED_WINO,   /* Winograd U (lib/run/conv_wino.h): forward               */
    KDC__DERIVED_WINO_T, /* Winograd U' of the turned kernel: backward-data        */
    KDC__DERIVED_COUNT
} kdc__derived;

struct kdc_model {
    char arch[48];
    int num_classes;
    int min_input;          /* smallest H and W accepted                    */
    kdc__node *nodes;       /* (n_nodes), topological order, nodes[0] input */
    int n_nodes;
    kdc__alias *aliases;    /* (n_aliases)                                  */
    int n_aliases;
    float **blocks;         /* parameter allocations, freed with the model  */
    int n_blocks;
    size_t n_params;        /* floats held in blocks                        */
    kdc_preprocess preprocess;
    int detector;           /* 0; 1 torchvision FPN; 2 mmdetection FPN        */
    int det_short, det_max; /* metadata kdcam.detect, or 0: 800, 1333         */
    int det_anchor;         /* metadata kdcam.detect anchor=N, or 0: 32       */
    kdc__head head;         /* a RetinaNet head on the FPN, or kind 0         */
    float bn_eps;           /* the BatchNorm eps used                         */
    char **ignored;         /* tensors of the file not used (detection heads) */
    char *class_text;       /* metadata kdcam.classes, split in place        */
    char **class_names;     /* (num_classes) into class_text, or NULL        */
    int n_ignored;
    /* kernels (chosen at load, lib/kernels.h) */
    kdc__isa isa;
    const kdc__gemm_kernels *gemm; /* NULL: the scalar reference path          */
    const kdc__dw_kernels *dw;     /* depthwise 3x3 kernels, or NULL (scalar)  */
    const kdc__act_kernels *act;   /* ReLU mask kernels (any ISA, never NULL)  */
    const kdc__pool_kernels *pool; /* max-pooling kernels (never NULL)         */
    float **packed;         /* (n_nodes) owned A packings, or NULL           */
    /* layouts derived from the packings (kdc__derived), made on first use
     * by kdc__conv_derived under pack_lock: (n_nodes) each, or NULL */
    float **derived[KDC__DERIVED_COUNT];
    pthread_mutex_t pack_lock;
    int pack_lock_init;
};

/* Output spatial size of a conv / pool window: floor((in + 2p - k) / s) + 1,
 * or 0 when the window does not fit. */
static inline int kdc__out_size(int in, int k, int stride, int pad)
{
    int span = in + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

/* Output shape of every node for an input of h x w (N excluded).
 * chw must hold 3 * n_nodes ints. KDC_ERR_SHAPE names the first layer whose
 * output would be empty. */
kdc_status kdc__infer_shapes(const struct kdc_model *m, int h, int w, int *chw);

/* models/pack.c: the layout `kind` of CONV / LINEAR node `node` (or of the
 * node whose weights it shares), made on first use and kept in the model
 * (thread-safe); KDC_ERR_NO_MEMORY. */
kdc_status kdc__conv_derived(const struct kdc_model *m, int node, kdc__derived kind,
                             const float **out);
/* The same layout written into dst (kdc__conv_derived_size floats), not
 * kept: for runs whose images are too large to keep every layer's copy
 * besides their activations (KDC__WT_KEEP_PIXELS, lib/run/run.h). */
size_t kdc__conv_derived_size(const struct kdc_model *m, int node, kdc__derived kind);
void kdc__conv_derive(const struct kdc_model *m, int node, kdc__derived kind, float *dst);

/* ---- op kernels: scalar references (one file per op family) ---- */

/* conv.c: first and one-past-last output index o with
 * 0 <= o*stride + tap - pad < in (the taps of a conv that read the image). */
void kdc__valid_range(int in, int out, int stride, int pad, int tap, int *lo, int *hi);

/* conv.c: out (n, cout, oh, ow) from in (n, cin, ih, iw), output channels
 * [oc0, oc1) of image b only, so callers can split work. */
void kdc__conv2d_ref(const kdc__conv_param *cp, const float *in, int ih, int iw,
                     float *out, int oh, int ow, int b, int oc0, int oc1);

/* norm.c */
void kdc__affine_ref(const float *in, float *out, int c, size_t hw, const float *scale,
                     const float *shift, int c0, int c1);
/* Eval-mode BatchNorm folded to scale/shift, computed in double:
 * scale = gamma / sqrt(var + eps), shift = beta - mean * scale. */
void kdc__bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
                  float eps, int c, float *scale, float *shift);

/* act.c: over n elements [i0, i1) */
void kdc__relu_ref(const float *in, float *out, size_t i0, size_t i1, float clamp);
void kdc__add_relu_ref(const float *a, const float *b, float *out, size_t i0, size_t i1,
                       float clamp);

/* pool.c: one image's channels [c0, c1) */
void kdc__maxpool_ref(const float *in, int ih, int iw, float *out, int oh, int ow, int k,
                      int stride, int pad, int c0, int c1);
/* The same through pk's row kernel for the windows wholly inside (k = 3,
 * stride 1 or 2; the rest as kdc__maxpool_ref; pk NULL: the scalar rows):
 * the same bits. */
void kdc__maxpool(const kdc__pool_kernels *pk, const float *in, int ih, int iw, float *out, int oh,
                  int ow, int k, int stride, int pad, int c0, int c1);
void kdc__gap_ref(const float *in, size_t hw, float *out, int c0, int c1);

/* linear.c: one image, outputs [o0, o1) */
void kdc__linear_ref(const kdc__conv_param *lp, const float *in, float *out, int o0, int o1);

/* upsample.c */
int kdc__nearest_src(int dst, int in, int out);
void kdc__add_up_ref(const float *a, const float *b, float *y, int h, int w, int bh, int bw,
                     int c0, int c1);
void kdc__add_up_backward_ref(const float *dy, float *da, float *db, int h, int w, int bh, int bw,
                              int c0, int c1);

/* Backward kernels accumulate (+=) into the input gradient dx, so a node
 * consumed twice (a residual join) receives the sum of both paths. */
void kdc__conv2d_backward_data_ref(const kdc__conv_param *cp, const float *dy, int oh, int ow,
                                   float *dx, int ih, int iw, int b, int ic0, int ic1);
void kdc__affine_backward_ref(const float *dy, float *dx, size_t hw, const float *scale, int c0,
                              int c1);
void kdc__relu_mask(const float *y, uint64_t *mask, size_t hw, float clamp, int c0, int c1);
void kdc__relu_backward_ref(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                            int guided, int c0, int c1);
void kdc__relu_scale_backward_ref(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                  int guided, const float *scale, int c0, int c1, int accumulate);
void kdc__maxpool_idx_ref(const float *in, int ih, int iw, float *out, int32_t *idx, int oh,
                          int ow, int k, int stride, int pad, int c0, int c1);
/* The same through pk's recording row kernel for the windows wholly inside
 * (as kdc__maxpool): the same bits and winners. */
void kdc__maxpool_idx(const kdc__pool_kernels *pk, const float *in, int ih, int iw, float *out,
                      int32_t *idx, int oh, int ow, int k, int stride, int pad, int c0, int c1);
void kdc__maxpool_backward_ref(const float *dy, const int32_t *idx, size_t ohw, float *dx,
                               size_t ihw, int c0, int c1);
void kdc__gap_backward_ref(const float *dy, float *dx, size_t hw, int c0, int c1);
void kdc__linear_backward_ref(const kdc__conv_param *lp, const float *dy, float *dx, int i0,
                              int i1);

/* models/model.c */
void kdc__model_free_contents(struct kdc_model *m);

#endif /* KDC_GRAPH_H */
