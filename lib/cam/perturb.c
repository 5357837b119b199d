/* perturb.c - perturbation attributions (kdc_perturb_compute, issue 19):
 * Occlusion and Feature Ablation with a grid mask, as Captum defines them
 * (captum/attr/_core/occlusion.py, feature_ablation.py; Zeiler & Fergus
 * 2014, "Visualizing and Understanding Convolutional Networks").
 *
 * Occlusion: a window x window patch over all 3 channels, its corner at
 * (i * stride, j * stride) for i in 0..ceil((h - window) / stride) (the
 * last patch of a row may be cut off by the border, as Captum pads the
 * window with a negative pad), is set to the baseline; each pixel's
 * attribution is the sum over the patches that cover it of y - y_patch,
 * divided by their number (Captum's use_weights). Feature Ablation with
 * the feature mask "cell (y / window, x / window)" gives every pixel
 * y - y_cell: the same arithmetic with stride = window (one cover per
 * pixel). The perturbed images run `chunk` at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "runner.h"

/* Positions along one side: Captum's shift count. */
static int kdc__shifts(int size, int window, int stride)
{
    return (size - window + stride - 1) / stride + 1;
}

/* Accumulates the patches p0 .. p0+cnt-1 of image x (3 x h x w): builds
 * them into buf, runs them, adds y - y_patch to sum and 1 to cover. */
static kdc_status kdc__perturb_chunk(kdc_run *run, const float *x, int h, int w, int window,
                                     int stride, int sx, float baseline, int p0, int cnt,
                                     int cls, kdc_target_kind kind, double y, int K, float *buf,
                                     float *logits, double *sum, int *cover)
{
    const size_t plane = (size_t)h * w, one = 3 * plane;
    for (int j = 0; j < cnt; j++) {
        const int p = p0 + j, y0 = (p / sx) * stride, x0 = (p % sx) * stride;
        const int y1 = y0 + window < h ? y0 + window : h, x1 = x0 + window < w ? x0 + window : w;
        float *b = buf + (size_t)j * one;
        memcpy(b, x, one * sizeof *b);
        for (int c = 0; c < 3; c++)
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++)
                    b[c * plane + (size_t)yy * w + xx] = baseline;
    }
    const int last = kdc_model_num_layers(kdc__run_model(run)) - 1;
    kdc_status st = kdc_run_forward(run, buf, cnt, h, w, NULL, 0);
    if (!st)
        st = kdc_run_read_layer(run, last, logits, (size_t)cnt * K);
    if (st)
        return st;
    for (int j = 0; j < cnt; j++) {
        const int p = p0 + j, y0 = (p / sx) * stride, x0 = (p % sx) * stride;
        const int y1 = y0 + window < h ? y0 + window : h, x1 = x0 + window < w ? x0 + window : w;
        const double d = y - kdc__class_score(logits + (size_t)j * K, K, cls, kind);
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++) {
                sum[(size_t)yy * w + xx] += d;
                cover[(size_t)yy * w + xx]++;
            }
    }
    return KDC_OK;
}

kdc_status kdc_perturb_compute(kdc_run *run, const float *input, int n, int h, int w,
                               const kdc_perturb_options *opt, float *out, int *classes)
{
    if (!run || !input || !opt || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_perturb_compute: %s is NULL",
                         !run ? "run" : !input ? "input" : !opt ? "opt" : "out");
    if (opt->kind != KDC_PERTURB_OCCLUSION && opt->kind != KDC_PERTURB_ABLATION)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "perturbation kind %d is out of range 0..1",
                         (int)opt->kind);
    const char *name = opt->kind == KDC_PERTURB_OCCLUSION ? "occlusion" : "featureablation";
    if (n < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "%s: bad input shape %dx3x%dx%d", name, n, h, w);
    if (opt->target.kind != KDC_TARGET_LOGIT && opt->target.kind != KDC_TARGET_PROB)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s needs a class target (logit or "
                         "probability), not a seed target", name);
    const int window = opt->window ? opt->window : 16;
    if (window < 1 || window > h || window > w)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: window %d does not fit the %dx%d input",
                         name, window, w, h);
    int stride = opt->stride ? opt->stride : (window + 1) / 2;
    if (opt->kind == KDC_PERTURB_ABLATION)
        stride = window;
    if (stride < 1 || stride > window)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: stride %d is outside 1..%d (the window)",
                         name, stride, window);
    if (opt->chunk < 0 || !isfinite(opt->baseline))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: %s", name,
                         opt->chunk < 0 ? "chunk is negative" : "baseline is not finite");
    const int chunk = opt->chunk ? opt->chunk : 32;
    const int sy = kdc__shifts(h, window, stride), sx = kdc__shifts(w, window, stride);
    const int npos = sy * sx;
    const int last = kdc_model_num_layers(kdc__run_model(run)) - 1;
    const size_t plane = (size_t)h * w, one = 3 * plane;

    kdc_status st;
    if ((st = kdc_run_forward(run, input, n, h, w, NULL, 0)))
        return st;
    int nchw[4];
    if ((st = kdc_run_layer_shape(run, last, nchw)))
        return st;
    const int K = nchw[1];
    const int cb = chunk < npos ? chunk : npos;
    float *z = malloc((size_t)(n > cb ? n : cb) * K * sizeof *z);
    float *buf = malloc((size_t)cb * one * sizeof *buf);
    double *sum = malloc(plane * sizeof *sum);
    int *cover = malloc(plane * sizeof *cover), *cls = malloc((size_t)n * sizeof *cls);
    double *y = malloc((size_t)n * sizeof *y);
    if (!z || !buf || !sum || !cover || !cls || !y) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory (chunk of %d images of %dx%d)", name,
                       cb, w, h);
        goto out;
    }
    if ((st = kdc_run_read_layer(run, last, z, (size_t)n * K)))
        goto out;
    for (int b = 0; b < n; b++) {
        cls[b] = opt->target.classes ? opt->target.classes[b] : kdc_argmax(z + (size_t)b * K, K);
        if (cls[b] < 0 || cls[b] >= K) {
            st = kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: image %d: class %d is out of range "
                           "0..%d", name, b, cls[b], K - 1);
            goto out;
        }
        y[b] = kdc__class_score(z + (size_t)b * K, K, cls[b], opt->target.kind);
    }
    for (int b = 0; b < n; b++) {
        memset(sum, 0, plane * sizeof *sum);
        memset(cover, 0, plane * sizeof *cover);
        for (int p0 = 0; p0 < npos; p0 += cb) {
            const int cnt = npos - p0 < cb ? npos - p0 : cb;
            if ((st = kdc__perturb_chunk(run, input + (size_t)b * one, h, w, window, stride, sx,
                                         opt->baseline, p0, cnt, cls[b], opt->target.kind, y[b],
                                         K, buf, z, sum, cover)))
                goto out;
        }
        for (size_t i = 0; i < plane; i++) /* every pixel is covered: stride <= window */
            out[(size_t)b * plane + i] = (float)(sum[i] / cover[i]);
    }
    if (classes)
        memcpy(classes, cls, (size_t)n * sizeof *classes);
out:
    free(z);
    free(buf);
    free(sum);
    free(cover);
    free(cls);
    free(y);
    return st;
}
