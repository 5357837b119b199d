/* smoothgradpp.c - Smooth Grad-CAM++ (Omeiza et al. 2019, "Smooth
 * Grad-CAM++: An Enhanced Inference Level Visualization Technique for Deep
 * Convolutional Neural Network Models", arXiv 1908.01224), as torch-cam
 * (frgfm/torch-cam, torchcam/methods/gradient.py SmoothGradCAMpp) computes
 * its weights:
 *
 *   g_s  = d y / d A at the noisy input x + e_s, e_s ~ N(0, std^2) per
 *          input value (all three channels), s = 1..S (torch-cam:
 *          num_samples = 4, std = 0.3, on the preprocessed input);
 *   D2   = mean_s g_s^2, D3 = mean_s g_s^3;
 *   alpha = D2 / (2 D2 + sum_hw(D3 * A) + 1e-8), A the clean activation;
 *   w_k  = sum_hw(alpha * ReLU(g_S)), g_S the LAST sample's gradient (what
 *          torch-cam's hook holds after the loop);
 *   cam  = ReLU(sum_k w_k A_k).
 *
 * The class of each image is fixed by the clean pass (the given class or
 * the top-1), as torch-cam's class_idx; the score is its logit (or
 * probability with KDC_TARGET_PROB).
 *
 * Differs from torch-cam, on purpose:
 *  - the combination uses the clean activation A; torch-cam's forward hook
 *    is still on during the noisy passes, so its map combines the last
 *    noisy sample's activation (the paper, and SS-CAM here, use A);
 *  - the noise is libkdcam's seeded generator (kdc__gauss: splitmix64 and
 *    Box-Muller), one stream per image seeded with seed ^ ((b + 1) *
 *    0xD1B54A32D192ED03), drawn sample by sample, each sample in C x H x W
 *    order, so a reference can replay it (torch.distributions cannot be).
 * All n images go through each noisy pass together. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "runner.h"

kdc_status kdc__smoothgradpp(kdc_run *run, const kdc_cam_options *opt, const float *input, int n,
                             int H, int W, const int *classes, float *const *act,
                             const int (*shape)[4], float *const *raw)
{
    if (opt->samples < 0 || !(opt->noise_std >= 0.0f) || !isfinite(opt->noise_std))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "smoothgradcam++: %s", opt->samples < 0
                         ? "samples is negative" : "noise_std is negative or not finite");
    const int S = opt->samples > 0 ? opt->samples : 4, L = opt->nlayers;
    const double std = opt->noise_std > 0.0f ? opt->noise_std : 0.3;
    const size_t img = (size_t)3 * H * W, total = (size_t)n * img;
    int lowest = opt->layers[0];
    for (int l = 1; l < L; l++)
        lowest = opt->layers[l] < lowest ? opt->layers[l] : lowest;
    double *d2[KDC_CAM_MAX_LAYERS] = {0}, *d3[KDC_CAM_MAX_LAYERS] = {0};
    float *g[KDC_CAM_MAX_LAYERS] = {0};
    kdc__gauss *rng = malloc((size_t)n * sizeof *rng);
    float *noisy = malloc(total * sizeof *noisy);
    double *acc = NULL;
    size_t maxhw = 0;
    kdc_status st = KDC_OK;
    if (!rng || !noisy)
        goto nomem;
    for (int l = 0; l < L; l++) {
        const size_t cnt = (size_t)n * shape[l][1] * shape[l][2] * shape[l][3];
        const size_t hw = (size_t)shape[l][2] * shape[l][3];
        maxhw = hw > maxhw ? hw : maxhw;
        d2[l] = calloc(cnt, sizeof *d2[l]);
        d3[l] = calloc(cnt, sizeof *d3[l]);
        g[l] = malloc(cnt * sizeof *g[l]);
        if (!d2[l] || !d3[l] || !g[l])
            goto nomem;
    }
    if (!(acc = malloc(maxhw * sizeof *acc)))
        goto nomem;
    for (int b = 0; b < n; b++)
        rng[b] = (kdc__gauss){opt->seed ^ ((uint64_t)(b + 1) * 0xD1B54A32D192ED03ull), 0, 0.0};
    const kdc_target tg = {.kind = opt->target.kind, .classes = classes};
    for (int s = 0; s < S; s++) {
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < img; i++)
                noisy[(size_t)b * img + i] = input[(size_t)b * img + i] +
                                             (float)(std * kdc__gauss_next(&rng[b]));
        if ((st = kdc_run_forward_grad(run, noisy, n, H, W, opt->layers, L, lowest)) ||
            (st = kdc_run_backward(run, &tg, opt->layers, L, 0)))
            goto out;
        for (int l = 0; l < L; l++) {
            const size_t cnt = (size_t)n * shape[l][1] * shape[l][2] * shape[l][3];
            if ((st = kdc_run_read_grad(run, opt->layers[l], g[l], cnt)))
                goto out;
            for (size_t i = 0; i < cnt; i++) {
                const double v = g[l][i], v2 = v * v;
                d2[l][i] += v2;
                d3[l][i] += v2 * v;
            }
        }
    }
    for (int l = 0; l < L; l++) {
        const size_t C = (size_t)shape[l][1], hw = (size_t)shape[l][2] * shape[l][3];
        for (int b = 0; b < n; b++) {
            const size_t o = (size_t)b * C * hw;
            const float *a = act[l] + o, *gl = g[l] + o;
            const double *q2 = d2[l] + o, *q3 = d3[l] + o;
            for (size_t i = 0; i < hw; i++)
                acc[i] = 0.0;
            for (size_t k = 0; k < C; k++) {
                double sa = 0.0, wk = 0.0;
                for (size_t i = 0; i < hw; i++)
                    sa += q3[k * hw + i] / S * a[k * hw + i];
                for (size_t i = 0; i < hw; i++) {
                    const double m2 = q2[k * hw + i] / S, gi = gl[k * hw + i];
                    if (gi > 0.0)
                        wk += m2 / (2.0 * m2 + sa + 1e-8) * gi;
                }
                for (size_t i = 0; i < hw; i++)
                    acc[i] += wk * a[k * hw + i];
            }
            float *r = raw[l] + (size_t)b * hw;
            for (size_t i = 0; i < hw; i++)
                r[i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f;
        }
    }
    goto out;
nomem:
    st = kdc__fail(KDC_ERR_NO_MEMORY, "smoothgradcam++: out of memory");
out:
    for (int l = 0; l < L; l++) {
        free(d2[l]);
        free(d3[l]);
        free(g[l]);
    }
    free(rng);
    free(noisy);
    free(acc);
    return st;
}
