/* fullgrad.c - FullGrad (Srinivas and Fleuret, "Full-Gradient
 * Representation for Neural Network Visualization", NeurIPS 2019), as
 * pytorch-grad-cam's FullGrad computes it (fullgrad_cam.py): the bias
 * layers are every BatchNorm (its bias after folding, beta - mean * gamma /
 * sqrt(var + eps): the AFFINE node's shift) and every convolution with a
 * bias, in network order; per image
 *   raw = sum_c S(|x * dx|_c) + sum_layers sum_c S(|b_c * g_c|),
 * g the gradient of the target at the layer's output, dx at the input, and
 * S = scale_accross_batch_and_channels: each channel plane min-max
 * normalised (x - min, / (max + 1e-7)) and resized to the input (OpenCV
 * bilinear); the map is scale_cam_image(raw) (aggregate_multi_layers).
 * The official code (idiap/fullgrad-saliency) normalises over all channels
 * of a layer at once and resizes with align_corners=True: not done here.
 * One backward per image, every bias layer's gradient kept for it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "graph.h"
#include "runner.h"

/* The bias of node i when it is a bias layer, else NULL. */
static const float *kdc__fullgrad_bias(const kdc__node *nd)
{
    if (nd->op == KDC__OP_AFFINE)
        return nd->p.affine.shift;
    if (nd->op == KDC__OP_CONV)
        return nd->p.conv.bias;
    return NULL;
}

/* acc (H x W, double) += S(|scale_c * v_c|) summed over the c planes of
 * v (c x h x w); scale NULL: 1. */
static kdc_status kdc__fullgrad_add(const float *v, const float *scale, const float *x, int c,
                                    int h, int w, int H, int W, float *plane, float *up,
                                    double *acc)
{
    const size_t hw = (size_t)h * w, HW = (size_t)H * W;
    for (int k = 0; k < c; k++) {
        for (size_t j = 0; j < hw; j++) {
            float t = v[(size_t)k * hw + j];
            t *= scale ? scale[k] : x[(size_t)k * hw + j];
            plane[j] = fabsf(t);
        }
        kdc_status st = kdc_cam_normalize_resize(plane, 1, h, w, H, W, up);
        if (st)
            return st;
        for (size_t j = 0; j < HW; j++)
            acc[j] += up[j];
    }
    return KDC_OK;
}

kdc_status kdc__fullgrad(kdc_run *run, const float *input, int n, int h, int w,
                         const kdc_target *target, float *raw, int *classes)
{
    const struct kdc_model *m = kdc__run_model(run);
    const int nn = m->n_nodes;
    const size_t HW = (size_t)h * w, img = 3 * HW;
    int *layers = malloc((size_t)nn * sizeof *layers), *chw = malloc(3 * (size_t)nn * sizeof *chw);
    int nl = 0;
    size_t most = img, seed_img = 0, seed2_img = 0;
    float *g = NULL, *plane = NULL, *up = malloc(HW * sizeof *up);
    double *acc = malloc(HW * sizeof *acc);
    kdc_status st = KDC_OK;
    if (!layers || !chw || !up || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "fullgrad: out of memory");
        goto out;
    }
    if ((st = kdc__infer_shapes(m, h, w, chw)))
        goto out;
    layers[nl++] = 0;
    for (int i = 1; i < nn; i++)
        if (kdc__fullgrad_bias(&m->nodes[i])) {
            layers[nl++] = i;
            const size_t cnt = (size_t)chw[3 * i] * chw[3 * i + 1] * chw[3 * i + 2];
            most = cnt > most ? cnt : most;
        }
    if (target->kind == KDC_TARGET_SEED && target->layer >= 0 && target->layer < nn)
        seed_img = (size_t)chw[3 * target->layer] * chw[3 * target->layer + 1] *
                   chw[3 * target->layer + 2];
    if (target->kind == KDC_TARGET_SEED && target->seed2 && target->layer2 >= 0 &&
        target->layer2 < nn)
        seed2_img = (size_t)chw[3 * target->layer2] * chw[3 * target->layer2 + 1] *
                    chw[3 * target->layer2 + 2];
    g = malloc(most * sizeof *g);
    plane = malloc(most * sizeof *plane);
    if (!g || !plane) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "fullgrad: out of memory");
        goto out;
    }
    for (int b = 0; b < n; b++) {
        const float *x = input + (size_t)b * img;
        kdc_target t = *target;
        if (t.classes)
            t.classes += b;
        if (t.kind == KDC_TARGET_SEED && t.seed)
            t.seed += (size_t)b * seed_img;
        if (t.kind == KDC_TARGET_SEED && t.seed2)
            t.seed2 += (size_t)b * seed2_img;
        if ((st = kdc_run_forward_grad(run, x, 1, h, w, NULL, 0, 0)) ||
            (st = kdc_run_backward(run, &t, layers, nl, 0)) ||
            (st = kdc_run_target_classes(run, classes + b, 1)))
            goto out;
        if (t.kind == KDC_TARGET_SEED)
            classes[b] = -1;
        memset(acc, 0, HW * sizeof *acc);
        for (int l = 0; l < nl; l++) {
            const int i = layers[l], *s = chw + 3 * i;
            const size_t cnt = (size_t)s[0] * s[1] * s[2];
            if ((st = kdc_run_read_grad(run, i, g, cnt)) ||
                (st = kdc__fullgrad_add(g, i ? kdc__fullgrad_bias(&m->nodes[i]) : NULL, x, s[0],
                                        s[1], s[2], h, w, plane, up, acc)))
                goto out;
        }
        for (size_t j = 0; j < HW; j++)
            raw[(size_t)b * HW + j] = (float)acc[j];
    }
out:
    free(layers);
    free(chw);
    free(g);
    free(plane);
    free(up);
    free(acc);
    return st;
}

kdc_status kdc__fullgrad_compute(kdc_run *run, const float *input, int n, int h, int w,
                                 const kdc_target *target, kdc_cam_result **out)
{
    const size_t HW = (size_t)h * w;
    kdc_status st;
    kdc_cam_result *res = calloc(1, sizeof *res);
    if (!res)
        return kdc__fail(KDC_ERR_NO_MEMORY, "fullgrad: out of memory");
    res->n = n;
    res->in_h = res->raw_h[0] = h;
    res->in_w = res->raw_w[0] = w;
    res->nlayers = 1;
    res->classes = malloc((size_t)n * sizeof *res->classes);
    res->map = malloc((size_t)n * HW * sizeof *res->map);
    res->raw[0] = malloc((size_t)n * HW * sizeof *res->raw[0]);
    if (!res->classes || !res->map || !res->raw[0]) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "fullgrad: out of memory for %d maps of %dx%d", n, h,
                       w);
        goto fail;
    }
    if ((st = kdc__fullgrad(run, input, n, h, w, target, res->raw[0], res->classes)) ||
        (st = kdc_cam_normalize_resize(res->raw[0], n, h, w, h, w, res->map)))
        goto fail;
    *out = res;
    return KDC_OK;
fail:
    kdc_cam_result_destroy(res);
    return st;
}
