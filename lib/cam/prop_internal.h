/* prop_internal.h - the propagation engine that DeepLift and LRP share
 * (issue 19, part B; internal, never installed).
 *
 * A separate pass over the model graph, one image (or an image and its
 * reference) at a time, on the scalar reference kernels of lib/nn/: a
 * forward pass that keeps every node's output, then a walk from the last
 * node down in which each op applies its method's rule (deeplift.c,
 * lrp.c). Memory: every output of the held images (about 140 MB per image
 * for ResNet-50 at 224 x 224), whatever the batch. */
#ifndef KDC_PROP_INTERNAL_H
#define KDC_PROP_INTERNAL_H

#include <stddef.h>

#include "graph.h"
#include "op.h"

typedef struct kdc__prop {
    const struct kdc_model *m;
    int B, h, w;        /* images held (1, or 2: input and reference)     */
    int *chw;           /* (n_nodes, 3) output shapes                     */
    float **act;        /* (n_nodes) outputs of the B images, NCHW        */
    int *consumers;     /* (n_nodes) how many nodes read each output      */
    float *wbuf;        /* a plain weight unpacked from the GEMM panels   */
    size_t wcap;
} kdc__prop;

/* Shapes and buffers for B images of h x w. KDC_ERR_SHAPE, KDC_ERR_NO_MEMORY. */
kdc_status kdc__prop_init(kdc__prop *p, const struct kdc_model *m, int B, int h, int w);
void kdc__prop_free(kdc__prop *p);
/* Forward of x (B x 3 x h x w), every output kept in p->act. */
kdc_status kdc__prop_forward(kdc__prop *p, const float *x);
/* Elements of node i's output for one image. */
size_t kdc__prop_numel(const kdc__prop *p, int i);
/* Node i with a plain weight (CONV / LINEAR whose weight the model keeps
 * only packed for the GEMM gets it unpacked into p->wbuf, valid until the
 * next call). */
kdc_status kdc__prop_node(kdc__prop *p, int i, kdc__node *out);
/* The target class of image 0 (classes NULL: its top-1 logit), checked. */
kdc_status kdc__prop_class(const kdc__prop *p, const int *classes, int b, int *cls);
/* The task arguments of node i for image rows of p->act. */
void kdc__prop_args(const kdc__prop *p, int i, const kdc__node *nd, kdc__op_args *a);
/* A method's rule for one node: hands node i's output relevance (or
 * multiplier) down to its inputs. ctx is the method's state. */
typedef kdc_status (*kdc__prop_rule)(void *ctx, int i);
/* Applies rules[op of node i]; KDC_ERR_UNSUPPORTED naming the node and the
 * method when the op has no rule. */
kdc_status kdc__prop_apply(const kdc__prop *p, const kdc__prop_rule *rules, void *ctx, int i,
                           const char *method);
/* Checks a target for the propagation methods: a class logit. */
kdc_status kdc__prop_check_target(const kdc_target *tg, const char *method);

#endif /* KDC_PROP_INTERNAL_H */
