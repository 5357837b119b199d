/* shapley.c - the Hessian term of Shapley-CAM (arXiv 2501.06261) for a
 * softmax-probability target, as pytorch-grad-cam's shapley_cam.py takes
 * it: hvp = H A, H the Hessian of the target p_c = softmax(z)_c in the
 * layer's output A (torch's double backward of the target's gradient, with
 * A as grad_outputs), and w_k = mean_hw(g_k - 0.5 hvp_k).
 *
 * Above the layer the network is piecewise linear: at the forward pass,
 * z = J A + const, with J fixed by the ReLU masks and max-pool winners,
 * whose second derivative is zero (torch's double backward of relu and
 * max pooling gives zero too). So H = J^T H_z J with
 *   H_z = d^2 p_c / dz dz^T = p_c [(e_c - p)(e_c - p)^T - (diag p - p p^T)],
 * and hvp = J^T (H_z (J A)): the tangent pass (lib/run/tangent.c) gives
 * u = J A at the logits, H_z u is formed here in double,
 *   H_z u = p_c [(e_c - p) (u_c - p.u) - p o u + p (p.u)],
 * and a seed backward from the logits applies J^T. For a logit target H is
 * zero and Shapley-CAM is Grad-CAM (compute.c). */
#include <math.h>
#include <stdlib.h>

#include "cam_internal.h"
#include "runner.h"

kdc_status kdc__shapley_hvp(kdc_run *run, int layer, const float *A, int n, const int *classes,
                            float *hvp, size_t count)
{
    const int last = kdc_model_num_layers(kdc__run_model(run)) - 1;
    int ls[4];
    kdc_status st = kdc_run_layer_shape(run, last, ls);
    if (st)
        return st;
    const int K = ls[1];
    float *z = malloc((size_t)n * K * sizeof *z), *u = malloc((size_t)n * K * sizeof *u);
    double *p = malloc((size_t)K * sizeof *p);
    if (!z || !u || !p) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "shapleycam: out of memory");
        goto out_free;
    }
    if ((st = kdc_run_read_layer(run, last, z, (size_t)n * K)) ||
        (st = kdc__run_tangent(run, layer, A, u)))
        goto out_free;
    for (int b = 0; b < n; b++) {
        const float *zb = z + (size_t)b * K;
        float *ub = u + (size_t)b * K; /* becomes the seed H_z u */
        const int c = classes[b];
        double mx = zb[0], sum = 0.0, pu = 0.0;
        for (int j = 1; j < K; j++)
            mx = zb[j] > mx ? zb[j] : mx;
        for (int j = 0; j < K; j++)
            sum += p[j] = exp((double)zb[j] - mx);
        for (int j = 0; j < K; j++) {
            p[j] /= sum;
            pu += p[j] * ub[j];
        }
        const double pc = p[c], du = (double)ub[c] - pu;
        for (int j = 0; j < K; j++)
            ub[j] = (float)(pc * (((j == c) - p[j]) * du - p[j] * ub[j] + p[j] * pu));
    }
    const kdc_target seed = {.kind = KDC_TARGET_SEED, .layer = last, .seed = u};
    if (!(st = kdc_run_backward(run, &seed, &layer, 1, 0)))
        st = kdc_run_read_grad(run, layer, hvp, count);
out_free:
    free(z);
    free(u);
    free(p);
    return st;
}
