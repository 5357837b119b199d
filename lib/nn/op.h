/* op.h - the op table (internal): one definition per op, kann-style.
 *
 * An op is one kdc__op_def: its shape inference, its forward and backward
 * tasks over a (image, channel range) piece of a node, and two rules for
 * the executor (lib/run/): whether it may write over a dying input, and
 * which backward state a recording forward keeps. The executor and the
 * shape inference look ops up in kdc__op_table[] (ops.c) and never switch
 * on the op. The tasks call the op family's scalar reference kernels, or
 * the model's SIMD kernel tables (lib/kernels/kernels.h) where the op has them.
 *
 * Adding an op: its definition in the file of its family (forward,
 * backward, shape, reference kernels side by side), one KDC__OP row in
 * ops.def. See docs/architecture.md, "How to add an op". */
#ifndef KDC_OP_H
#define KDC_OP_H

#include <stdint.h>

#include "graph.h"

/* Backward state a recording forward keeps for a node. */
typedef enum kdc__record {
    KDC__RECORD_NONE,
    KDC__RECORD_MASK,   /* one bit per output element (ReLU: gradient passes) */
    KDC__RECORD_ARGMAX  /* int32 index of the winning input per output        */
} kdc__record;

/* What a task of one node sees. Pointers are to the whole batch; shapes
 * are (C, H, W) of one image. */
typedef struct kdc__op_args {
    const struct kdc_model *m;        /* the model's kernel tables (dw, act)      */
    const kdc__node *nd;
    const float *x, *x2;              /* inputs in[0], in[1] (NULL when unused)   */
    const int *in_chw, *in2_chw, *out_chw;
    /* forward */
    float *y;
    /* backward state: written by a recording forward when not NULL, read by
     * backward (the node's whole batch) */
    uint64_t *mask;
    int32_t *argmax;
    /* backward */
    const float *dy;                  /* gradient of the output                   */
    float *dx, *dx2;                  /* gradients of the inputs, accumulated (+=);
                                       * NULL when not needed                     */
    int guided;                       /* guided backpropagation (ReLU backward)   */
    int dx_fresh, dx2_fresh;          /* dx (dx2) holds nothing yet and was not
                                       * zeroed: set only for the fused ReLU +
                                       * BatchNorm backwards (lib/run/backward.c)
                                       * and a depthwise conv's eight-channel
                                       * one, which then write it, not add */
    const float *dx_scale, *dx2_scale; /* those fused backwards: the BatchNorm
                                       * scale each input's gradient goes
                                       * through (NULL: none, plain ReLU's) */
    const uint64_t *dx_mask;          /* a depthwise conv's eight-channel
                                       * backward carried on through the ReLU
                                       * and BatchNorm before it: the ReLU's
                                       * mask (the batch's), dx_scale the
                                       * BatchNorm's, dx (fresh) the gradient
                                       * of the BatchNorm's input
                                       * (kdc__dw_bthru); else NULL */
    /* tangent (lib/run/tangent.c): x, x2 are the inputs' tangents (either
     * NULL where that input's tangent is zero), y the output's tangent,
     * zeroed before the task runs; mask / argmax the recorded state */
} kdc__op_args;

typedef struct kdc__op_def {
    const char *name;
    /* Elementwise: the output may take the buffer of its first input when
     * this node is that input's last reader. */
    int in_place;
    kdc__record record;
    /* Output height and width y[1], y[2] (y[0], the channels, is set) from
     * the inputs' shapes x and x2 (NULL when unused); h, w: the network
     * input, for messages. KDC_ERR_SHAPE with a message. */
    kdc_status (*shape)(const kdc__node *nd, const int *x, const int *x2, int h, int w, int *y);
    /* Output channels [c0, c1) of image b. */
    void (*forward)(const kdc__op_args *a, int b, int c0, int c1);
    /* Input channels [c0, c1) of image b: dx (and dx2) += d out / d in . dy. */
    void (*backward)(const kdc__op_args *a, int b, int c0, int c1);
    /* Output channels [c0, c1) of image b of the tangent (forward-mode,
     * Jacobian-vector) pass: y = d out / d in . x (+ d out / d in2 . x2),
     * the op's linear part at the recorded forward (no bias or shift; a
     * ReLU passes where its mask is set, a max-pool takes its winner). */
    void (*tangent)(const kdc__op_args *a, int b, int c0, int c1);
} kdc__op_def;

#define KDC__OP(id, def) extern const kdc__op_def def;
#include "ops.def"
#undef KDC__OP

/* The definitions, indexed by kdc__op. */
extern const kdc__op_def *const kdc__op_table[KDC__OP_COUNT];

/* Shape functions several ops share: the output has the input's size. */
kdc_status kdc__shape_same(const kdc__node *nd, const int *x, const int *x2, int h, int w, int *y);
/* 1 x 1 output. */
kdc_status kdc__shape_one(const kdc__node *nd, const int *x, const int *x2, int h, int w, int *y);

/* conv.c: convs the depthwise 3x3 kernel table runs, and convs / LINEARs
 * that run through the packed GEMM, for this model's kernels. */
int kdc__conv_is_dw(const struct kdc_model *m, const kdc__node *nd);
int kdc__conv_is_gemm(const struct kdc_model *m, const kdc__node *nd);
/* Whether depthwise conv nd's backward (input width iw) runs the
 * eight-channel kernel, which then writes a new input gradient whole
 * (op args dx_fresh) instead of adding into a zeroed one. */
int kdc__conv_dw_backward_c8(const struct kdc_model *m, const kdc__node *nd, int iw);

#endif /* KDC_OP_H */
