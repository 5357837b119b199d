/* methods.c - the CAM methods on given activations and gradients
 * (kdc_cam_from_maps), their names, and feature maps.
 *
 * Numerically as pytorch-grad-cam (jacobgil/pytorch-grad-cam) defines them;
 * the few places where libkdcam deliberately differs are marked
 * "Differs from pytorch-grad-cam" below:
 *  - Eigen-CAM / EigenGrad-CAM / the PCA feature map fix the sign of the
 *    principal component (pytorch-grad-cam leaves the SVD's arbitrary sign);
 *  - Score-CAM uses an all-zero mask for a constant channel (NaN there);
 *  - Ablation-CAM sets the ablated channel to 0 (pytorch-grad-cam writes a
 *    large negative value), and a zero target score gives zero weights.
 *
 * Per-map arithmetic that pytorch-grad-cam does in float32 NumPy
 * (normalisation, resizing, colour) is done in float here in the same
 * order; reductions (channel sums, means) are accumulated in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

static const char *const kdc__cam_names[KDC_CAM_COUNT] = {
    "gradcam", "hirescam", "gradcam++", "xgradcam", "layercam",
    "eigencam", "eigengradcam", "scorecam", "ablationcam",
    "fullgrad",
    "sscam", "iscam", /* issue 19 (part A) */
    "kpcacam", "finercam", "smoothgradcam++", "shapleycam", /* issue 19 (part C) */
};

const char *kdc_cam_method_name(kdc_cam_method method)
{
    if ((int)method < 0 || (int)method >= KDC_CAM_COUNT)
        return NULL;
    return kdc__cam_names[method];
}

static int kdc__ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z')
            ca += 'a' - 'A';
        if (ca != cb)
            return 0;
    }
    return *a == *b;
}

kdc_status kdc_cam_method_parse(const char *name, kdc_cam_method *method)
{
    if (!name || !method)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_method_parse: %s is NULL",
                         name ? "method" : "name");
    for (int i = 0; i < KDC_CAM_COUNT; i++) {
        if (kdc__ieq(name, kdc__cam_names[i])) {
            *method = (kdc_cam_method)i;
            return KDC_OK;
        }
    }
    return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown CAM method \"%.64s\" (known: gradcam, "
                     "hirescam, gradcam++, xgradcam, layercam, eigencam, eigengradcam, "
                     "scorecam, ablationcam, fullgrad, sscam, iscam, kpcacam, finercam, "
                     "smoothgradcam++, shapleycam)", name);
}

int kdc__needs_grad(kdc_cam_method m)
{
    return m == KDC_CAM_GRADCAM || m == KDC_CAM_HIRESCAM || m == KDC_CAM_GRADCAMPP ||
           m == KDC_CAM_XGRADCAM || m == KDC_CAM_LAYERCAM || m == KDC_CAM_EIGENGRADCAM ||
           m == KDC_CAM_FINERCAM || m == KDC_CAM_SHAPLEYCAM;
}

/* One image: weights w (c) of the channel-weighted methods, in double. */
static void kdc__cam_weights(kdc_cam_method method, const float *A, const float *G, size_t c,
                             size_t hw, double *wt)
{
    for (size_t k = 0; k < c; k++) {
        const float *a = A + k * hw, *g = G + k * hw;
        double w = 0.0;
        if (method == KDC_CAM_GRADCAM) {
            /* w_k = mean_hw(g_k) */
            for (size_t i = 0; i < hw; i++)
                w += g[i];
            w /= (double)hw;
        } else if (method == KDC_CAM_XGRADCAM) {
            /* w_k = sum_hw(g_k A_k) / (sum_hw(A_k) + 1e-7) */
            double sa = 0.0, sga = 0.0;
            for (size_t i = 0; i < hw; i++) {
                sa += a[i];
                sga += (double)g[i] * a[i];
            }
            w = sga / (sa + 1e-7);
        } else { /* GRADCAMPP */
            /* alpha = g^2 / (2 g^2 + sum_hw(A_k) g^3 + 1e-6), 0 where g == 0;
             * w_k = sum_hw(relu(g) alpha) */
            double sa = 0.0;
            for (size_t i = 0; i < hw; i++)
                sa += a[i];
            for (size_t i = 0; i < hw; i++) {
                const double gi = g[i];
                if (gi <= 0.0) /* relu(g) = 0; alpha = 0 where g == 0 */
                    continue;
                const double g2 = gi * gi, g3 = g2 * gi;
                w += gi * (g2 / (2.0 * g2 + sa * g3 + 1e-6));
            }
        }
        wt[k] = w;
    }
}

kdc_status kdc_cam_from_maps(kdc_cam_method method, const float *A, const float *G, int n, int c,
                             int h, int w, float *raw)
{
    if ((int)method < 0 || (int)method >= KDC_CAM_COUNT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "CAM method %d is out of range 0..%d",
                         (int)method, KDC_CAM_COUNT - 1);
    if (method == KDC_CAM_SCORECAM || method == KDC_CAM_ABLATIONCAM || method == KDC_CAM_FULLGRAD ||
        method == KDC_CAM_SSCAM || method == KDC_CAM_ISCAM || method == KDC_CAM_FINERCAM ||
        method == KDC_CAM_SMOOTHGRADCAMPP || method == KDC_CAM_SHAPLEYCAM)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s needs a model: use kdc_cam_compute",
                         kdc__cam_names[method]);
    if (!A || !raw)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_from_maps: %s is NULL",
                         A ? "raw" : "activation A");
    if (!G && method != KDC_CAM_EIGENCAM && method != KDC_CAM_KPCACAM)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_from_maps: %s needs the gradient G "
                         "(it is NULL)", kdc__cam_names[method]);
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_cam_from_maps: bad shape %dx%dx%dx%d", n, c, h, w);
    const size_t C = (size_t)c, HW = (size_t)h * (size_t)w;
    size_t chw, total;
    if (!kdc__mul_size(C, HW, &chw) || !kdc__mul_size(chw, (size_t)n, &total))
        return kdc__fail(KDC_ERR_SHAPE, "kdc_cam_from_maps: shape %dx%dx%dx%d is too large", n, c,
                         h, w);

    kdc_status st = KDC_OK;
    double *wt = NULL, *acc = NULL;
    if (method == KDC_CAM_EIGENCAM || method == KDC_CAM_EIGENGRADCAM ||
        method == KDC_CAM_KPCACAM) {
        for (int b = 0; b < n; b++) {
            const size_t o = (size_t)b * chw;
            if (method == KDC_CAM_KPCACAM)
                st = kdc__kpca_project(A + o, c, (int)HW, KDC_KPCA_SIGMOID, 0.0,
                                       raw + (size_t)b * HW);
            else
                st = kdc__pca_project(A + o, method == KDC_CAM_EIGENGRADCAM ? G + o : NULL, c,
                                      (int)HW, raw + (size_t)b * HW);
            if (st)
                return st;
        }
        for (size_t i = 0; i < (size_t)n * HW; i++)
            raw[i] = raw[i] > 0.0f ? raw[i] : 0.0f;
        return KDC_OK;
    }
    wt = malloc(C * sizeof *wt);
    acc = malloc(HW * sizeof *acc);
    if (!wt || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cam_from_maps: out of memory");
        goto out_free;
    }
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * chw, *g = G + (size_t)b * chw;
        for (size_t i = 0; i < HW; i++)
            acc[i] = 0.0;
        if (method == KDC_CAM_HIRESCAM || method == KDC_CAM_LAYERCAM) {
            /* HiResCAM: sum_k g_k A_k; Layer-CAM: sum_k relu(g_k) A_k */
            for (size_t k = 0; k < C; k++)
                for (size_t i = 0; i < HW; i++) {
                    double gi = g[k * HW + i];
                    if (method == KDC_CAM_LAYERCAM && gi < 0.0)
                        gi = 0.0;
                    acc[i] += gi * a[k * HW + i];
                }
        } else {
            kdc__cam_weights(method, a, g, C, HW, wt);
            for (size_t k = 0; k < C; k++)
                for (size_t i = 0; i < HW; i++)
                    acc[i] += wt[k] * a[k * HW + i];
        }
        float *r = raw + (size_t)b * HW;
        for (size_t i = 0; i < HW; i++)
            r[i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f; /* compute_cam_per_layer's ReLU */
    }
out_free:
    free(wt);
    free(acc);
    return st;
}

kdc_status kdc_feature_map(const float *A, int n, int c, int h, int w, kdc_reduce reduce,
                           float *out)
{
    if (!A || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_feature_map: %s is NULL",
                         A ? "out" : "A");
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_feature_map: bad shape %dx%dx%dx%d", n, c, h, w);
    if ((int)reduce < KDC_REDUCE_MEAN || (int)reduce > KDC_REDUCE_FGD)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_feature_map: reduction %d is out of "
                         "range 0..%d", (int)reduce, (int)KDC_REDUCE_FGD);
    if (reduce == KDC_REDUCE_FGD)
        return kdc_fgd_attention(A, n, c, h, w, 0.5f, out, NULL);
    const size_t C = (size_t)c, HW = (size_t)h * w;
    size_t chw, total;
    if (!kdc__mul_size(C, HW, &chw) || !kdc__mul_size(chw, (size_t)n, &total))
        return kdc__fail(KDC_ERR_SHAPE, "kdc_feature_map: shape %dx%dx%dx%d is too large", n, c,
                         h, w);
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * chw;
        float *o = out + (size_t)b * HW;
        if (reduce == KDC_REDUCE_PCA) {
            kdc_status st = kdc__pca_project(a, NULL, c, (int)HW, o);
            if (st)
                return st;
            continue;
        }
        for (size_t i = 0; i < HW; i++) {
            double acc = reduce == KDC_REDUCE_MAX ? a[i] : 0.0;
            for (size_t k = 0; k < C; k++) {
                const double x = a[k * HW + i];
                if (reduce == KDC_REDUCE_MEAN)
                    acc += x;
                else if (reduce == KDC_REDUCE_L2)
                    acc += x * x;
                else if (x > acc)
                    acc = x;
            }
            if (reduce == KDC_REDUCE_MEAN)
                acc /= (double)C;
            else if (reduce == KDC_REDUCE_L2)
                acc = sqrt(acc);
            o[i] = (float)acc;
        }
    }
    return KDC_OK;
}
