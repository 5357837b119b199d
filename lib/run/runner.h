/* runner.h - what the layers above the executor (lib/cam/) use of a run
 * beyond the public API (internal; defined in run.c and forward.c). */
#ifndef KDC_RUNNER_H
#define KDC_RUNNER_H

#include "internal.h"

/* run.c: the model a run was created for. */
const struct kdc_model *kdc__run_model(const kdc_run *run);

/* forward.c: runs the network from `layer` up, with that layer's output
 * replaced by act (shaped like it for the batch of the last forward pass),
 * and copies the last layer's output (n x classes) to logits. Needs a
 * completed forward pass that kept `layer` and every layer below it that a
 * layer above it reads (KDC_ERR_STATE otherwise). Outputs of layers above
 * `layer` then hold this pass's values, so the backward state of the last
 * forward pass is dropped: a backward needs a new kdc_run_forward_grad. */
kdc_status kdc__run_forward_from(kdc_run *run, int layer, const float *act, float *logits);

/* tangent.c: the tangent (forward-mode, Jacobian-vector) pass from `layer`
 * to the logits: out (n x classes) = J v, J the Jacobian of the logits in
 * layer's output at the last recording forward pass (its ReLU masks and
 * max-pool winners; biases and BatchNorm shifts drop out), v shaped like
 * layer's output for that batch. Needs a kdc_run_forward_grad down to
 * `layer` or below (KDC_ERR_STATE otherwise). Uses the run's gradient
 * buffers: the gradients of the last backward are gone afterwards (the
 * recorded forward state stays, so kdc_run_backward can follow). */
kdc_status kdc__run_tangent(kdc_run *run, int layer, const float *v, float *out);

#endif /* KDC_RUNNER_H */
