/* run.h - a run's state, shared by the files of lib/run/ (internal).
 *
 * A kdc_run owns everything that changes while a model runs: the thread
 * pool, the activation buffers and their plan (plan.c), the backward state
 * a recording forward keeps (forward.c), the gradient buffers (backward.c)
 * and the GEMM workspaces (conv_gemm.c). */
#ifndef KDC_RUN_H
#define KDC_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "conv_gemm.h"
#include "graph.h"
#include "op.h"
#include "sched.h"
#include "threadpool.h"

/* Weights derived from a layer's packing for a run (the transposed ones of
 * backward-data, the Winograd ones of forward) are kept in the model (made
 * once, shared by runs) for images up to KDC__WT_KEEP_PIXELS (h x w, at any
 * batch size: the copies cost the same memory at batch 8 as at batch 1,
 * while making them costs every call, 3.5 ms for one of ResNet-50's 256 x
 * 256 Winograd layers): a classifier's passes then never transform. Larger
 * images (a detector at 800 x 1216) have activations that dwarf the cost
 * of transforming one layer at a time into the run's buffer, and keeping
 * every layer's copy would add the weights' size again to the peak (230 MB
 * for ResNet-152's transposed weights). The values, and so the results,
 * are the same. */
enum { KDC__WT_KEEP_PIXELS = 4 * 224 * 224 };

struct kdc_run {
    const kdc_model *m;
    kdc__pool *pool;
    /* plan, valid for (n, h, w, keep) */
    int n, h, w;
    int planned;
    int *chw;              /* (n_nodes, 3) output shapes                      */
    int *slot;             /* (n_nodes) buffer of each node's output          */
    unsigned char *keep;   /* (n_nodes) caller wants the output after forward */
    unsigned char *want;   /* (n_nodes) scratch: keep set of the current call */
    int *last_use;         /* (n_nodes) index of the last consumer            */
    int n_slots;
    size_t *need;          /* (n_nodes) floats each slot needs                */
    float **buf;           /* (n_nodes) slot buffers                          */
    size_t *cap;           /* (n_nodes) floats allocated per slot             */
    int done;              /* a forward pass completed with this plan         */
    double *layer_ms;      /* (n_nodes) kdc_run_time_layers: last pass, or NULL */
    int timed;             /* layer_ms holds a completed pass                 */
    /* backward state recorded by kdc_run_forward_grad for nodes > record_from */
    int record_from;       /* -1: the last forward recorded nothing           */
    /* the pass in progress may use Winograd (conv_wino.h): it records
     * nothing. A recording pass keeps the direct convolution, whose ReLU
     * decisions the gradient fixtures check (docs/fidelity.md) */
    int wino;
    uint64_t **mask;       /* (n_nodes) ReLU masks, one bit per element       */
    size_t *mask_cap;      /* (n_nodes) words allocated                        */
    int32_t **argmax;      /* (n_nodes) max-pool winners                      */
    size_t *argmax_cap;
    /* gradients: a pool of buffers, and which one holds each node's gradient */
    float **gbuf;          /* (n_nodes) */
    size_t *gcap;          /* (n_nodes) */
    unsigned char *gused;  /* (n_nodes) */
    int n_gbuf;
    int *grad_of;          /* (n_nodes) buffer index, -1 none                 */
    unsigned char *gkeep;  /* (n_nodes) gradients the caller asked for        */
    int grad_done;
    int *classes;          /* (n) classes of the last backward's target       */
    int classes_cap;
    /* kdc__run_forward_from: this node's output is read from override */
    int override_node;
    const float *override_data;
    /* the fused group tail whose ReLU mask its head's tasks made in the
     * recording pass in progress (kdc__mask_rec), or -1 */
    int mask_made;
    /* fast kernels: GEMM workspaces, and the fused groups of the plan: a
     * dense conv head runs its AFFINE (and RELU / ADD_RELU) in its epilogue */
    kdc__work ws;
    int *fuse_tail;        /* (n_nodes) last node of the group a head runs, 0 */
    unsigned char *fused;  /* (n_nodes) run by the head of its group          */
    /* a batch run image by image (forward.c): each image's outputs that
     * the batch's tail reads, until all images are done */
    float *side;
    size_t side_cap;
};

/* plan.c: elements of node's output for the planned batch. */
size_t kdc__numel(const kdc_run *r, int node);
/* plan.c: the liveness plan of buffers and fused groups for r->n, r->chw
 * and r->keep; allocates the buffers. KDC_ERR_NO_MEMORY. */
kdc_status kdc__plan(kdc_run *r);

/* A node's op-table task spread over the run's pool (forward.c): forward
 * and tangent in jobs of (image, chunk of output channels), backward in
 * jobs of (image, chunk of input channels), as sched.h splits them. */
typedef struct kdc__task {
    kdc__op_args a;
    const kdc__op_def *op;
    int backward;
    int tangent;           /* the op's tangent task (tangent.c)               */
    int quantum;           /* channels a job takes whole groups of (0, 1: any) */
    kdc__sched_ch split;   /* set by kdc__task_run */
} kdc__task;
void kdc__task_run(kdc_run *r, kdc__task *k);

/* run.c: the layout `kind` of conv i's weights for this run: kept in the
 * model for images up to KDC__WT_KEEP_PIXELS (or once kept), else made into
 * the run's buffer ws.wt, which holds one layer's at a time (the forward's
 * Winograd weights and backward-data's transposed ones are never needed at
 * once). KDC_ERR_NO_MEMORY. */
kdc_status kdc__run_weights(kdc_run *r, int i, kdc__derived kind, const float **out);

/* backward.c: the run's pool of gradient buffers, which the tangent pass
 * (tangent.c) also draws from: a zeroed buffer of numel floats (its index,
 * -1 when out of memory), and every buffer given back (grad_of all -1). */
int kdc__grad_acquire(kdc_run *r, size_t numel);
void kdc__grad_release_all(kdc_run *r);

/* run.c: copies layer's numel floats from src to dst (count floats),
 * KDC_ERR_INVALID_ARGUMENT "<what> <layer> has N values, the buffer M"
 * when they do not fit. */
kdc_status kdc__copy_out(const kdc_run *r, int layer, const char *what, const float *src,
                         float *dst, size_t count);

#endif /* KDC_RUN_H */
