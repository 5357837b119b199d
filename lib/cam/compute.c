/* compute.c - kdc_cam_compute: CAMs of a model's layers for a batch, from
 * forward and backward passes of a run (lib/run/), the extra passes of
 * Score-CAM (masked inputs) and Ablation-CAM (forward from a layer), and
 * pytorch-grad-cam's post-processing (kdc__cam_aggregate). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "runner.h"

/* Index of the model's last layer (the logits). */
static int kdc__last_layer(const kdc_run *run)
{
    return kdc_model_num_layers(kdc__run_model(run)) - 1;
}

/* The target score of one image from its logits z (K): the logit of class
 * cls, or its softmax probability (pytorch-grad-cam's ClassifierOutputTarget
 * / ClassifierOutputSoftmaxTarget). */
double kdc__class_score(const float *z, int K, int cls, kdc_target_kind kind)
{
    if (kind != KDC_TARGET_PROB)
        return z[cls];
    double mx = z[0], sum = 0.0;
    for (int j = 1; j < K; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < K; j++)
        sum += exp((double)z[j] - mx);
    return exp((double)z[cls] - mx) / sum;
}

void kdc_cam_result_destroy(kdc_cam_result *result)
{
    if (!result)
        return;
    free(result->map);
    for (int l = 0; l < KDC_CAM_MAX_LAYERS; l++)
        free(result->raw[l]);
    free(result->classes);
    free(result);
}

typedef struct kdc__chan_rank {
    double mean;
    int idx;
} kdc__chan_rank;

/* Largest mean first; ties by channel index, so the order is total. */
static int kdc__rank_cmp(const void *pa, const void *pb)
{
    const kdc__chan_rank *a = pa, *b = pb;
    if (a->mean != b->mean)
        return a->mean > b->mean ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Score-CAM of one layer (pytorch-grad-cam ScoreCAM): each (selected)
 * channel upsampled to the input size (align_corners=True), min-max
 * normalised over the image, multiplied into all 3 input channels; the
 * masked images run forward `batch` at a time; weights = softmax over the
 * selected channels of the target scores; cam = relu(sum_k w_k A_k).
 * topk in 1..c-1: only the topk channels of largest spatial-mean activation
 * are scored, the others weigh 0.
 * Differs from pytorch-grad-cam: a constant channel (max == min) divides
 * 0 by 0 there and makes the whole map NaN; here its mask is all zeros
 * (the input is blanked out) and it is scored like any other. */
static kdc_status kdc__scorecam_layer(kdc_run *run, const float *input, int n, int H, int W,
                                      const float *A, int c, int h, int w, const int *classes,
                                      kdc_target_kind kind, int topk, int batch, int last, int K,
                                      float *raw)
{
    const size_t HWi = (size_t)H * W, hw = (size_t)h * w, C = (size_t)c;
    const int nsel = topk > 0 && topk < c ? topk : c;
    if (batch > nsel)
        batch = nsel;
    kdc__chan_rank *rank = malloc(C * sizeof *rank);
    double *score = malloc(C * sizeof *score);
    double *acc = malloc(hw * sizeof *acc);
    float *up = malloc(HWi * sizeof *up);
    float *masked = malloc((size_t)batch * 3 * HWi * sizeof *masked);
    float *logits = malloc((size_t)batch * K * sizeof *logits);
    kdc_status st = KDC_OK;
    if (!rank || !score || !acc || !up || !masked || !logits) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "scorecam: out of memory (batch of %d masked %dx%d "
                       "images)", batch, H, W);
        goto out_free;
    }
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * C * hw;
        const float *img = input + (size_t)b * 3 * HWi;
        for (size_t k = 0; k < C; k++) {
            double s = 0.0;
            for (size_t i = 0; i < hw; i++)
                s += a[k * hw + i];
            rank[k].mean = s / (double)hw;
            rank[k].idx = (int)k;
        }
        if (nsel < c)
            qsort(rank, C, sizeof *rank, kdc__rank_cmp);
        for (int j0 = 0; j0 < nsel; j0 += batch) {
            const int nb = nsel - j0 < batch ? nsel - j0 : batch;
            for (int j = 0; j < nb; j++) {
                const size_t k = (size_t)rank[j0 + j].idx;
                kdc__upsample_align_corners(a + k * hw, h, w, up, H, W);
                float mn = up[0], mx = up[0];
                for (size_t i = 1; i < HWi; i++) {
                    mn = up[i] < mn ? up[i] : mn;
                    mx = up[i] > mx ? up[i] : mx;
                }
                const float range = mx - mn;
                for (size_t i = 0; i < HWi; i++)
                    up[i] = range > 0.0f ? (up[i] - mn) / range : 0.0f;
                float *dst = masked + (size_t)j * 3 * HWi;
                for (size_t ch = 0; ch < 3; ch++)
                    for (size_t i = 0; i < HWi; i++)
                        dst[ch * HWi + i] = img[ch * HWi + i] * up[i];
            }
            if ((st = kdc_run_forward(run, masked, nb, H, W, NULL, 0)))
                goto out_free;
            if ((st = kdc_run_read_layer(run, last, logits, (size_t)nb * K)))
                goto out_free;
            for (int j = 0; j < nb; j++)
                score[j0 + j] = kdc__class_score(logits + (size_t)j * K, K, classes[b], kind);
        }
        /* softmax over the selected channels */
        double mx = score[0], sum = 0.0;
        for (int j = 1; j < nsel; j++)
            mx = score[j] > mx ? score[j] : mx;
        for (int j = 0; j < nsel; j++) {
            score[j] = exp(score[j] - mx);
            sum += score[j];
        }
        for (size_t i = 0; i < hw; i++)
            acc[i] = 0.0;
        for (int j = 0; j < nsel; j++) {
            const double wk = score[j] / sum;
            const float *ak = a + (size_t)rank[j].idx * hw;
            for (size_t i = 0; i < hw; i++)
                acc[i] += wk * ak[i];
        }
        for (size_t i = 0; i < hw; i++)
            raw[(size_t)b * hw + i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f;
    }
out_free:
    free(rank);
    free(score);
    free(acc);
    free(up);
    free(masked);
    free(logits);
    return st;
}

/* Ablation-CAM of one layer: y = the clean target score, y_k = the score
 * with channel k of the layer's output set to 0 (the network re-run from
 * that layer up, all n images per pass); w_k = (y - y_k) / y;
 * cam = relu(sum_k w_k A_k).
 * Differs from pytorch-grad-cam: its AblationLayer writes a large negative
 * value (-1e7 by default) into the ablated channel instead of 0; the
 * reference facts of libkdcam define ablation as zeroing, which keeps the
 * ablated activation a value the layer can produce. A clean score of
 * exactly 0 gives zero weights (NaN/inf there). */
static kdc_status kdc__ablation_layer(kdc_run *run, int layer, const float *A, int n, int c,
                                      size_t hw, const int *classes, kdc_target_kind kind,
                                      const double *y, int K, float *raw)
{
    const size_t C = (size_t)c, numel = (size_t)n * C * hw;
    float *work = malloc(numel * sizeof *work);
    float *logits = malloc((size_t)n * K * sizeof *logits);
    double *wt = malloc((size_t)n * C * sizeof *wt);
    double *acc = malloc(hw * sizeof *acc);
    kdc_status st = KDC_OK;
    if (!work || !logits || !wt || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "ablationcam: out of memory");
        goto out_free;
    }
    memcpy(work, A, numel * sizeof *work);
    for (size_t k = 0; k < C; k++) {
        for (int b = 0; b < n; b++)
            memset(work + ((size_t)b * C + k) * hw, 0, hw * sizeof *work);
        if ((st = kdc__run_forward_from(run, layer, work, logits)))
            goto out_free;
        for (int b = 0; b < n; b++) {
            const double yk = kdc__class_score(logits + (size_t)b * K, K, classes[b], kind);
            wt[(size_t)b * C + k] = y[b] != 0.0 ? (y[b] - yk) / y[b] : 0.0;
            memcpy(work + ((size_t)b * C + k) * hw, A + ((size_t)b * C + k) * hw,
                   hw * sizeof *work);
        }
    }
    for (int b = 0; b < n; b++) {
        for (size_t i = 0; i < hw; i++)
            acc[i] = 0.0;
        for (size_t k = 0; k < C; k++) {
            const double wk = wt[(size_t)b * C + k];
            const float *ak = A + ((size_t)b * C + k) * hw;
            for (size_t i = 0; i < hw; i++)
                acc[i] += wk * ak[i];
        }
        for (size_t i = 0; i < hw; i++)
            raw[(size_t)b * hw + i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f;
    }
out_free:
    free(work);
    free(logits);
    free(wt);
    free(acc);
    return st;
}

/* Makes kdc__run_forward_from possible at every layer up to top: it needs
 * the last forward pass to have kept each layer below the restart point
 * that a layer above it reads (a residual join inside a block). The clean
 * pass keeps only the target layers, which is enough for block and stage
 * outputs; when it is not, the clean pass is re-run keeping layers
 * 0..top (same input, same values). */
static kdc_status kdc__prepare_forward_from(kdc_run *run, const float *input, int n, int H, int W,
                                            const int *layers, int nlayers, float *scratch_act,
                                            size_t scratch_count, float *logits)
{
    int top = layers[0];
    for (int l = 1; l < nlayers; l++)
        top = layers[l] > top ? layers[l] : top;
    int need_all = 0;
    char saved[1024]; /* the trial's KDC_ERR_STATE message is not an error of the call */
    snprintf(saved, sizeof saved, "%s", kdc_last_error());
    for (int l = 0; l < nlayers && !need_all; l++) {
        /* a trial pass with the layer's own activation changes nothing */
        kdc_status st = kdc_run_read_layer(run, layers[l], scratch_act, scratch_count);
        if (st)
            return st;
        st = kdc__run_forward_from(run, layers[l], scratch_act, logits);
        if (st == KDC_ERR_STATE)
            need_all = 1;
        else if (st)
            return st;
    }
    if (!need_all)
        return KDC_OK;
    int *keep = malloc(((size_t)top + 1) * sizeof *keep);
    if (!keep)
        return kdc__fail(KDC_ERR_NO_MEMORY, "ablationcam: out of memory");
    for (int i = 0; i <= top; i++)
        keep[i] = i;
    kdc_status st = kdc_run_forward(run, input, n, H, W, keep, top + 1);
    free(keep);
    if (!st)
        kdc__fail(KDC_OK, "%s", saved);
    return st;
}

kdc_status kdc__cam_aggregate(const float *const *raw, const int *raw_h, const int *raw_w,
                              int nlayers, int n, int out_h, int out_w, float *tmp, float *map)
{
    const size_t HW = (size_t)out_h * out_w, total = (size_t)n * HW;
    kdc_status st;
    for (size_t i = 0; i < total; i++)
        map[i] = 0.0f;
    for (int l = 0; l < nlayers; l++) {
        if ((st = kdc_cam_normalize_resize(raw[l], n, raw_h[l], raw_w[l], out_h, out_w, tmp)))
            return st;
        for (size_t i = 0; i < total; i++)
            map[i] += tmp[i] > 0.0f ? tmp[i] : 0.0f;
    }
    for (size_t i = 0; i < total; i++)
        map[i] /= (float)nlayers;
    for (int b = 0; b < n; b++)
        kdc__minmax_plane(map + (size_t)b * HW, map + (size_t)b * HW, HW);
    return KDC_OK;
}

kdc_status kdc_cam_compute(kdc_run *run, const float *input, int n, int in_h, int in_w,
                           const kdc_cam_options *opt, kdc_cam_result **out)
{
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_compute: out is NULL");
    *out = NULL;
    if (!run || !input || !opt)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_compute: %s is NULL",
                         !run ? "run" : !input ? "input" : "opt");
    const kdc_cam_method method = opt->method;
    if ((int)method < 0 || (int)method >= KDC_CAM_COUNT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "CAM method %d is out of range 0..%d",
                         (int)method, KDC_CAM_COUNT - 1);
    const char *mname = kdc_cam_method_name(method);
    if (method == KDC_CAM_FULLGRAD) { /* issue 19: every bias layer, not opt->layers */
        if (n < 1 || in_h < 1 || in_w < 1)
            return kdc__fail(KDC_ERR_SHAPE, "%s: bad input shape %dx3x%dx%d", mname, n, in_h,
                             in_w);
        return kdc__fullgrad_compute(run, input, n, in_h, in_w, &opt->target, out);
    }
    const int L = opt->nlayers;
    if (L < 1 || L > KDC_CAM_MAX_LAYERS)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: %d target layers, expected 1..%d", mname,
                         L, KDC_CAM_MAX_LAYERS);
    if (!opt->layers)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: the layer list is NULL", mname);
    if (n < 1 || in_h < 1 || in_w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "%s: bad input shape %dx3x%dx%d", mname, n, in_h, in_w);
    const int model_based = method == KDC_CAM_SCORECAM || method == KDC_CAM_ABLATIONCAM ||
                            method == KDC_CAM_SSCAM || method == KDC_CAM_ISCAM ||
                            method == KDC_CAM_SMOOTHGRADCAMPP;
    if (model_based && opt->target.kind != KDC_TARGET_LOGIT &&
        opt->target.kind != KDC_TARGET_PROB)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s needs a class target (logit or "
                         "probability), not a seed target", mname);
    if (method == KDC_CAM_FINERCAM && opt->target.kind != KDC_TARGET_LOGIT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "finercam builds its own target from the "
                         "logits: give a logit target (a class or NULL for the top-1)");
    if (method == KDC_CAM_FINERCAM && (opt->finer_compare < 0 || !isfinite(opt->finer_alpha)))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "finercam: finer_compare %d is negative or "
                         "finer_alpha is not finite", opt->finer_compare);
    if (opt->scorecam_topk < 0 || opt->scorecam_batch < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: scorecam_%s %d is negative", mname,
                         opt->scorecam_topk < 0 ? "topk" : "batch",
                         opt->scorecam_topk < 0 ? opt->scorecam_topk : opt->scorecam_batch);

    const int grads = kdc__needs_grad(method);
    const size_t HW = (size_t)in_h * in_w;
    float *act[KDC_CAM_MAX_LAYERS] = {0}, *grad[KDC_CAM_MAX_LAYERS] = {0};
    int shape[KDC_CAM_MAX_LAYERS][4];
    float *tmp = NULL, *logits = NULL, *scratch = NULL;
    double *y = NULL;
    int *keepall = NULL;
    kdc_status st;
    kdc_cam_result *res = calloc(1, sizeof *res);
    if (!res)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
    res->n = n;
    res->in_h = in_h;
    res->in_w = in_w;
    res->nlayers = L;
    res->classes = malloc((size_t)n * sizeof *res->classes);
    res->map = malloc((size_t)n * HW * sizeof *res->map);
    tmp = malloc((size_t)n * HW * sizeof *tmp);
    if (!res->classes || !res->map || !tmp) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for %d maps of %dx%d", mname, n,
                       in_h, in_w);
        goto fail;
    }

    /* clean pass: activations (and gradients) of the target layers */
    int lowest = opt->layers[0];
    for (int l = 1; l < L; l++)
        lowest = opt->layers[l] < lowest ? opt->layers[l] : lowest;
    if (opt->nkeep < 0 || (opt->nkeep > 0 && !opt->keep)) {
        st = kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: keep lists %d layers%s", mname, opt->nkeep,
                       opt->nkeep > 0 ? " but is NULL" : "");
        goto fail;
    }
    /* the clean pass also keeps the caller's extra layers (opt->keep) */
    keepall = malloc(((size_t)L + (size_t)opt->nkeep) * sizeof *keepall);
    if (!keepall) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
        goto fail;
    }
    for (int l = 0; l < L; l++)
        keepall[l] = opt->layers[l];
    for (int k = 0; k < opt->nkeep; k++)
        keepall[L + k] = opt->keep[k];
    if ((st = kdc_run_forward_grad(run, input, n, in_h, in_w, keepall, L + opt->nkeep, lowest)))
        goto fail;
    size_t max_act = 0;
    for (int l = 0; l < L; l++) {
        int *s = shape[l];
        if ((st = kdc_run_layer_shape(run, opt->layers[l], s)))
            goto fail;
        if ((size_t)s[2] * (size_t)s[3] <= 1) {
            st = kdc__fail(KDC_ERR_SHAPE, "%s: target layer %s has output %dx%dx%d (C x H x W), "
                           "no spatial extent: choose a convolutional layer", mname,
                           kdc_model_layer_name(kdc__run_model(run), opt->layers[l]), s[1], s[2],
                           s[3]);
            goto fail;
        }
        const size_t numel = (size_t)n * s[1] * s[2] * s[3];
        max_act = numel > max_act ? numel : max_act;
        res->raw_h[l] = s[2];
        res->raw_w[l] = s[3];
        res->raw[l] = malloc((size_t)n * s[2] * s[3] * sizeof(float));
        act[l] = malloc(numel * sizeof(float));
        if (grads)
            grad[l] = malloc(numel * sizeof(float));
        if (!res->raw[l] || !act[l] || (grads && !grad[l])) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for layer %d (%zu values)",
                           mname, opt->layers[l], numel);
            goto fail;
        }
        if ((st = kdc_run_read_layer(run, opt->layers[l], act[l], numel)))
            goto fail;
    }
    const int last = kdc__last_layer(run);
    int lshape[4];
    if ((st = kdc_run_layer_shape(run, last, lshape)))
        goto fail;
    const int K = lshape[1];
    kdc_target tgt = opt->target;
    if (method == KDC_CAM_ABLATIONCAM || method == KDC_CAM_FINERCAM) {
        logits = malloc((size_t)n * K * sizeof *logits);
        y = malloc((size_t)n * sizeof *y);
        if (!logits || !y) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
            goto fail;
        }
        if ((st = kdc_run_read_layer(run, last, logits, (size_t)n * K)))
            goto fail;
    }
    if (method == KDC_CAM_FINERCAM) { /* finer.c: the seed dT/dz at the logits */
        scratch = malloc((size_t)n * K * sizeof *scratch);
        if (!scratch) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
            goto fail;
        }
        if ((st = kdc__finer_seed(logits, n, K, opt->target.classes,
                                  opt->finer_alpha != 0.0f ? opt->finer_alpha : 1.0,
                                  opt->finer_compare ? opt->finer_compare : 3, scratch,
                                  res->classes)))
            goto fail;
        tgt = (kdc_target){.kind = KDC_TARGET_SEED, .layer = last, .seed = scratch};
    }
    /* the backward pass also fixes the target classes (top-1 if NULL) */
    if ((st = kdc_run_backward(run, &tgt, grads ? opt->layers : NULL, grads ? L : 0, 0)))
        goto fail;
    if (method != KDC_CAM_FINERCAM && (st = kdc_run_target_classes(run, res->classes, n)))
        goto fail;
    if (method == KDC_CAM_FINERCAM) {
        free(scratch);
        scratch = NULL;
    }
    for (int l = 0; l < L && grads; l++)
        if ((st = kdc_run_read_grad(run, opt->layers[l], grad[l],
                                    (size_t)n * shape[l][1] * shape[l][2] * shape[l][3])))
            goto fail;

    /* Shapley-CAM's Hessian term: every op of the engine is piecewise linear,
     * so the Hessian of a logit (or a seed target) is 0 wherever it exists,
     * as torch's double backward also gives, and the map is Grad-CAM's; a
     * softmax target's is J^T H_z J (shapley.c): g - 0.5 H A, per layer */
    if (method == KDC_CAM_SHAPLEYCAM && opt->target.kind == KDC_TARGET_PROB) {
        scratch = malloc(max_act * sizeof *scratch);
        if (!scratch) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
            goto fail;
        }
        for (int l = 0; l < L; l++) {
            const size_t numel = (size_t)n * shape[l][1] * shape[l][2] * shape[l][3];
            if ((st = kdc__shapley_hvp(run, opt->layers[l], act[l], n, res->classes, scratch,
                                       numel))) {
                kdc__fail_context(st, "%s at layer %s", mname,
                                  kdc_model_layer_name(kdc__run_model(run), opt->layers[l]));
                goto fail;
            }
            for (size_t i = 0; i < numel; i++)
                grad[l][i] = (float)((double)grad[l][i] - 0.5 * (double)scratch[i]);
        }
        free(scratch);
        scratch = NULL;
    }
    if (method == KDC_CAM_ABLATIONCAM) {
        for (int b = 0; b < n; b++)
            y[b] = kdc__class_score(logits + (size_t)b * K, K, res->classes[b], opt->target.kind);
        scratch = malloc(max_act * sizeof *scratch);
        if (!scratch) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
            goto fail;
        }
        if ((st = kdc__prepare_forward_from(run, input, n, in_h, in_w, opt->layers, L, scratch,
                                            max_act, logits)))
            goto fail;
    }
    /* Ablation passes leave the outputs above their layer modified, so the
     * layers are processed from the highest index down: a later (lower)
     * layer re-runs everything above itself from its own activation. */
    int order[KDC_CAM_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        order[l] = l;
    for (int i = 1; i < L; i++)
        for (int j = i; j > 0 && opt->layers[order[j]] > opt->layers[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    if (method == KDC_CAM_SMOOTHGRADCAMPP && /* smoothgradpp.c: all layers at once */
        (st = kdc__smoothgradpp(run, opt, input, n, in_h, in_w, res->classes, act,
                                (const int(*)[4])shape, res->raw)))
        goto fail;
    for (int oi = 0; oi < L && method != KDC_CAM_SMOOTHGRADCAMPP; oi++) {
        const int l = order[oi];
        const int *s = shape[l];
        if (method == KDC_CAM_SCORECAM)
            st = kdc__scorecam_layer(run, input, n, in_h, in_w, act[l], s[1], s[2], s[3],
                                     res->classes, opt->target.kind, opt->scorecam_topk,
                                     opt->scorecam_batch ? opt->scorecam_batch : 32, last, K,
                                     res->raw[l]);
        else if (method == KDC_CAM_SSCAM || method == KDC_CAM_ISCAM) /* smoothscore.c */
            st = kdc__smoothscore_layer(run, opt, input, n, in_h, in_w, act[l], s[1], s[2], s[3],
                                        res->classes, K, res->raw[l]);
        else if (method == KDC_CAM_ABLATIONCAM)
            st = kdc__ablation_layer(run, opt->layers[l], act[l], n, s[1], (size_t)s[2] * s[3],
                                     res->classes, opt->target.kind, y, K, res->raw[l]);
        else if (method == KDC_CAM_KPCACAM) /* kpca.c, with the kernel options */
            for (int b = 0; b < n && !st; b++) {
                const size_t hw = (size_t)s[2] * s[3];
                float *r = res->raw[l] + (size_t)b * hw;
                st = kdc__kpca_project(act[l] + (size_t)b * s[1] * hw, s[1], (int)hw,
                                       opt->kpca_kernel, opt->kpca_gamma, r);
                for (size_t i = 0; i < hw; i++)
                    r[i] = r[i] > 0.0f ? r[i] : 0.0f;
            }
        else if (method == KDC_CAM_FINERCAM || method == KDC_CAM_SHAPLEYCAM)
            /* Grad-CAM of the Finer target; Shapley-CAM's weights
             * mean_hw(g - 0.5 H A), the Hessian term already in grad
             * (above) */
            st = kdc_cam_from_maps(KDC_CAM_GRADCAM, act[l], grad[l], n, s[1], s[2], s[3],
                                   res->raw[l]);
        else
            st = kdc_cam_from_maps(method, act[l], grad[l], n, s[1], s[2], s[3], res->raw[l]);
        if (st) {
            kdc__fail_context(st, "%s at layer %s", mname,
                              kdc_model_layer_name(kdc__run_model(run), opt->layers[l]));
            goto fail;
        }
    }
    /* Score-CAM's and Ablation-CAM's passes overwrote the kept outputs: a
     * clean pass again for the caller's extra layers */
    if (model_based && opt->nkeep > 0 &&
        (st = kdc_run_forward(run, input, n, in_h, in_w, keepall, L + opt->nkeep)))
        goto fail;

    if ((st = kdc__cam_aggregate((const float *const *)res->raw, res->raw_h, res->raw_w, L, n,
                                 in_h, in_w, tmp, res->map)))
        goto fail;

    for (int l = 0; l < L; l++) {
        free(act[l]);
        free(grad[l]);
    }
    free(tmp);
    free(logits);
    free(scratch);
    free(y);
    free(keepall);
    *out = res;
    return KDC_OK;
fail:
    for (int l = 0; l < L; l++) {
        free(act[l]);
        free(grad[l]);
    }
    free(tmp);
    free(logits);
    free(scratch);
    free(y);
    free(keepall);
    kdc_cam_result_destroy(res);
    return st;
}

kdc_status kdc_cam_aggregate(const float *const *raw, const int *raw_h, const int *raw_w,
                             int nlayers, int n, int out_h, int out_w, float *out)
{
    if (!raw || !raw_h || !raw_w || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_aggregate: a NULL pointer");
    if (nlayers < 1 || n < 1 || out_h < 1 || out_w < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_aggregate: %d layers, %d maps of "
                         "%dx%d", nlayers, n, out_h, out_w);
    for (int l = 0; l < nlayers; l++)
        if (!raw[l] || raw_h[l] < 1 || raw_w[l] < 1)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_aggregate: layer %d: %s", l,
                             raw[l] ? "empty map" : "NULL map");
    float *tmp = malloc((size_t)n * out_h * out_w * sizeof *tmp);
    if (!tmp)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cam_aggregate: out of memory");
    kdc_status st = kdc__cam_aggregate(raw, raw_h, raw_w, nlayers, n, out_h, out_w, tmp, out);
    free(tmp);
    return st;
}
