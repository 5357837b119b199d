/* attribution.c - input attributions (kdc_attribution_compute): guided
 * backpropagation, SmoothGrad over noisy copies (a seeded Gaussian RNG of
 * its own, no global state) and integrated gradients from the zero
 * baseline, all backward passes down to the input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "runner.h"

/* splitmix64 (Steele, Lea, Flood 2014): the noise source of SmoothGrad. */
static uint64_t kdc__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal deviates by Box-Muller, in pairs: u1 = (r1 >> 11 + 1) /
 * 2^53 in (0, 1], u2 = (r2 >> 11) / 2^53 in [0, 1); rad = sqrt(-2 ln u1);
 * first rad cos(2 pi u2), then rad sin(2 pi u2). */
double kdc__gauss_next(kdc__gauss *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    const double u1 = (double)((kdc__splitmix64(&g->state) >> 11) + 1) * 0x1.0p-53;
    const double u2 = (double)(kdc__splitmix64(&g->state) >> 11) * 0x1.0p-53;
    const double rad = sqrt(-2.0 * log(u1));
    const double two_pi = 6.283185307179586476925286766559;
    g->spare = rad * sin(two_pi * u2);
    g->has_spare = 1;
    return rad * cos(two_pi * u2);
}

/* One plain input gradient of x for target tg, into g. */
static kdc_status kdc__input_grad(kdc_run *run, const float *x, int n, int h, int w,
                                  const kdc_target *tg, int guided, float *g, size_t numel)
{
    const int input_layer = 0;
    kdc_status st = kdc_run_forward_grad(run, x, n, h, w, NULL, 0, 0);
    if (!st)
        st = kdc_run_backward(run, tg, &input_layer, 1, guided);
    if (!st)
        st = kdc_run_read_grad(run, 0, g, numel);
    return st;
}

/* SALIENCY / GUIDED: one backward to the input (guided: every ReLU passes
 * only positive gradients where its input was active).
 * SMOOTHGRAD: the mean input gradient over `samples` (default 25) noisy
 * copies x + N(0, sigma^2), sigma = noise * (max(x) - min(x)) of each image
 * (noise default 0.15); the noise is Box-Muller on splitmix64 seeded with
 * opt->seed, drawn in NCHW order, sample after sample.
 * INTEGRATED: integrated gradients from the zero baseline with the right
 * Riemann sum (captum's "riemann_right"): x * mean_{k=1..m} grad(k/m * x),
 * m = samples (default 32).
 * For both, a class target without classes is fixed to each clean image's
 * top-1 class first, so every sample differentiates the same class. */
kdc_status kdc_attribution_compute(kdc_run *run, const float *input, int n, int h, int w,
                                   const kdc_attribution_options *opt, float *out)
{
    if (!run || !input || !opt || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_attribution_compute: %s is NULL",
                         !run ? "run" : !input ? "input" : !opt ? "opt" : "out");
    if ((int)opt->kind < KDC_ATTR_SALIENCY || (int)opt->kind > KDC_ATTR_LRP)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "attribution kind %d is out of range 0..%d",
                         (int)opt->kind, (int)KDC_ATTR_LRP);
    if (opt->samples < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "attribution: samples %d is negative",
                         opt->samples);
    if (!(opt->noise >= 0.0f) || !isfinite(opt->noise))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "smoothgrad: noise %g is not a finite "
                         "value >= 0", (double)opt->noise);
    if (n < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "attribution: bad input shape %dx3x%dx%d", n, h, w);
    const size_t img = 3 * (size_t)h * w, numel = (size_t)n * img;

    if (opt->kind == KDC_ATTR_SALIENCY || opt->kind == KDC_ATTR_GUIDED)
        return kdc__input_grad(run, input, n, h, w, &opt->target,
                               opt->kind == KDC_ATTR_GUIDED, out, numel);
    /* issue 19, part B: propagation attributions (deeplift.c, lrp.c) */
    if (opt->kind == KDC_ATTR_INPUT_X_GRADIENT) {
        kdc_status st = kdc__input_grad(run, input, n, h, w, &opt->target, 0, out, numel);
        for (size_t i = 0; i < numel && !st; i++)
            out[i] *= input[i];
        return st;
    }
    if (opt->kind == KDC_ATTR_DEEPLIFT)
        return kdc__deeplift(run, input, n, h, w, opt, out);
    if (opt->kind == KDC_ATTR_LRP)
        return kdc_lrp_relevance(run, input, n, h, w, opt, 0, out, numel);

    kdc_target tg = opt->target;
    int *cls = NULL;
    float *x = malloc(numel * sizeof *x), *g = malloc(numel * sizeof *g);
    double *acc = calloc(numel, sizeof *acc);
    kdc_status st = KDC_OK;
    if (!x || !g || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "attribution: out of memory");
        goto out_free;
    }
    if ((tg.kind == KDC_TARGET_LOGIT || tg.kind == KDC_TARGET_PROB) && !tg.classes) {
        cls = malloc((size_t)n * sizeof *cls);
        if (!cls) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "attribution: out of memory");
            goto out_free;
        }
        if ((st = kdc_run_forward_grad(run, input, n, h, w, NULL, 0, 0)) ||
            (st = kdc_run_backward(run, &tg, NULL, 0, 0)) ||
            (st = kdc_run_target_classes(run, cls, n)))
            goto out_free;
        tg.classes = cls;
    }
    if (opt->kind == KDC_ATTR_SMOOTHGRAD) {
        const int S = opt->samples ? opt->samples : 25;
        const double noise = opt->noise > 0.0f ? opt->noise : 0.15;
        kdc__gauss rng = {.state = opt->seed};
        for (int s = 0; s < S; s++) {
            for (int b = 0; b < n; b++) {
                const float *xb = input + (size_t)b * img;
                float mn = xb[0], mx = xb[0];
                for (size_t i = 1; i < img; i++) {
                    mn = xb[i] < mn ? xb[i] : mn;
                    mx = xb[i] > mx ? xb[i] : mx;
                }
                const double sigma = noise * ((double)mx - (double)mn);
                for (size_t i = 0; i < img; i++)
                    x[(size_t)b * img + i] = xb[i] + (float)(sigma * kdc__gauss_next(&rng));
            }
            if ((st = kdc__input_grad(run, x, n, h, w, &tg, 0, g, numel)))
                goto out_free;
            for (size_t i = 0; i < numel; i++)
                acc[i] += g[i];
        }
        for (size_t i = 0; i < numel; i++)
            out[i] = (float)(acc[i] / S);
    } else {
        const int S = opt->samples ? opt->samples : 32;
        for (int k = 1; k <= S; k++) {
            const float alpha = (float)((double)k / S);
            for (size_t i = 0; i < numel; i++)
                x[i] = alpha * input[i];
            if ((st = kdc__input_grad(run, x, n, h, w, &tg, 0, g, numel)))
                goto out_free;
            for (size_t i = 0; i < numel; i++)
                acc[i] += g[i];
        }
        for (size_t i = 0; i < numel; i++)
            out[i] = (float)((double)input[i] * acc[i] / S);
    }
out_free:
    free(x);
    free(g);
    free(acc);
    free(cls);
    return st;
}
