/* smoothscore.c - SS-CAM and IS-CAM (issue 19): Score-CAM with smoothed
 * channel weights, as torch-cam (frgfm/torch-cam, torchcam/methods/
 * activation.py SSCAM, ISCAM) computes the weights:
 *
 *   U_k  = each selected channel A_k min-max normalised over its h x w
 *          (torch-cam ScoreCAM._normalize), upsampled to the input size with
 *          bilinear interpolation, half-pixel centres (F.interpolate,
 *          align_corners=False; kdc_resize_bilinear);
 *   SS-CAM (Wang et al. 2020, arXiv 2006.14255): for s = 1..S,
 *          M = (U_k + noise) * x, noise ~ N(0, std^2) per input pixel
 *          (shared by the 3 colour channels);
 *   IS-CAM (Naidu et al. 2020, arXiv 2010.03023): for s = 1..S,
 *          M = c_s U_k * x with c_s = sum_{t=1..s} t / S (torch-cam's running
 *          _coeff += (s + 1) / S);
 *   w    = softmax over the selected channels of mean_s(score(M) - score(x))
 *          (the clean score is the same for every channel, so it cancels in
 *          the softmax and is not run);
 *   cam  = relu(sum_k w_k A_k).
 *
 * Differs from torch-cam:
 *  - torch-cam normalises its hooked activations in place before the
 *    combination, so its map is sum_k w_k U'_k with the normalised (not
 *    upsampled) channels; libkdcam combines the activations A_k, as both
 *    papers write it (and as Score-CAM here does);
 *  - a constant channel gets an all-zero mask (torch-cam divides by 0);
 *  - topk (kdc_cam_options.scorecam_topk, as for Score-CAM): only the k
 *    channels of largest mean activation are scored, the others weigh 0;
 *  - the noise is libkdcam's own seeded generator (kdc__gauss: splitmix64
 *    and Box-Muller), one stream per image seeded with seed ^ ((b + 1) *
 *    0xD1B54A32D192ED03), drawn channel by channel (in rank order), sample
 *    by sample, pixel by pixel (row-major), so a reference can replay it.
 * Masked images run `batch` at a time, so memory is batch images whatever
 * the number of channels and samples. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"
#include "runner.h"

/* U_k of channel a (h x w) at H x W into up (tmp: h x w scratch). */
static kdc_status kdc__unit_mask(const float *a, int h, int w, int H, int W, float *tmp,
                                 float *up)
{
    const size_t hw = (size_t)h * w;
    float mn = a[0], mx = a[0];
    for (size_t i = 1; i < hw; i++) {
        mn = a[i] < mn ? a[i] : mn;
        mx = a[i] > mx ? a[i] : mx;
    }
    const float range = mx - mn;
    for (size_t i = 0; i < hw; i++)
        tmp[i] = range > 0.0f ? (a[i] - mn) / range : 0.0f;
    return kdc_resize_bilinear(tmp, 1, h, w, H, W, up);
}

kdc_status kdc__smoothscore_layer(kdc_run *run, const kdc_cam_options *opt, const float *input,
                                  int n, int H, int W, const float *A, int c, int h, int w,
                                  const int *classes, int K, float *raw)
{
    const int iscam = opt->method == KDC_CAM_ISCAM;
    const char *name = iscam ? "iscam" : "sscam";
    if (opt->samples < 0 || !(opt->noise_std >= 0.0f) || !isfinite(opt->noise_std))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: %s", name, opt->samples < 0
                         ? "samples is negative" : "noise_std is negative or not finite");
    const int S = opt->samples > 0 ? opt->samples : iscam ? 10 : 35;
    const double std = opt->noise_std > 0.0f ? opt->noise_std : 2.0;
    const int nsel = opt->scorecam_topk > 0 && opt->scorecam_topk < c ? opt->scorecam_topk : c;
    int batch = opt->scorecam_batch > 0 ? opt->scorecam_batch : 32;
    const long total = (long)nsel * S;
    if (batch > total)
        batch = (int)total;
    const size_t HWi = (size_t)H * W, hw = (size_t)h * w, C = (size_t)c;
    const int last = kdc_model_num_layers(kdc__run_model(run)) - 1;
    kdc__ranked *rank = malloc(C * sizeof *rank);
    double *score = malloc(C * sizeof *score), *acc = malloc(hw * sizeof *acc);
    float *tmp = malloc(hw * sizeof *tmp), *up = malloc(HWi * sizeof *up);
    float *masked = malloc((size_t)batch * 3 * HWi * sizeof *masked);
    float *logits = malloc((size_t)batch * K * sizeof *logits);
    kdc_status st = KDC_OK;
    if (!rank || !score || !acc || !tmp || !up || !masked || !logits) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory (batch of %d masked %dx%d images)",
                       name, batch, W, H);
        goto out;
    }
    for (int b = 0; b < n && !st; b++) {
        const float *a = A + (size_t)b * C * hw, *img = input + (size_t)b * 3 * HWi;
        kdc__gauss g = {opt->seed ^ ((uint64_t)(b + 1) * 0xD1B54A32D192ED03ull), 0, 0.0};
        for (size_t k = 0; k < C; k++) {
            double s = 0.0;
            for (size_t i = 0; i < hw; i++)
                s += a[k * hw + i];
            rank[k].v = (float)(s / (double)hw);
            rank[k].i = k;
        }
        if (nsel < c)
            qsort(rank, C, sizeof *rank, kdc__ranked_desc);
        for (int j = 0; j < nsel; j++)
            score[j] = 0.0;
        /* masked images in (channel, sample) order, `batch` per pass */
        int cur = -1; /* the channel whose U_k is in up */
        for (long q0 = 0; q0 < total && !st; q0 += batch) {
            const int nb = total - q0 < batch ? (int)(total - q0) : batch;
            for (int t = 0; t < nb && !st; t++) {
                const int j = (int)((q0 + t) / S), s = (int)((q0 + t) % S);
                if (j != cur) {
                    st = kdc__unit_mask(a + rank[j].i * hw, h, w, H, W, tmp, up);
                    cur = j;
                }
                float *dst = masked + (size_t)t * 3 * HWi;
                if (iscam) {
                    double coeff = 0.0;
                    for (int u = 0; u <= s; u++)
                        coeff += (double)(u + 1) / S;
                    for (size_t ch = 0; ch < 3; ch++)
                        for (size_t i = 0; i < HWi; i++)
                            dst[ch * HWi + i] = (float)coeff * (up[i] * img[ch * HWi + i]);
                } else {
                    for (size_t i = 0; i < HWi; i++) {
                        const float m = up[i] + (float)(std * kdc__gauss_next(&g));
                        for (size_t ch = 0; ch < 3; ch++)
                            dst[ch * HWi + i] = m * img[ch * HWi + i];
                    }
                }
            }
            if (st || (st = kdc_run_forward(run, masked, nb, H, W, NULL, 0)) ||
                (st = kdc_run_read_layer(run, last, logits, (size_t)nb * K)))
                break;
            for (int t = 0; t < nb; t++)
                score[(q0 + t) / S] += kdc__class_score(logits + (size_t)t * K, K, classes[b],
                                                        opt->target.kind);
        }
        if (st)
            break;
        double mx = score[0] / S, sum = 0.0;
        for (int j = 0; j < nsel; j++) {
            score[j] /= S;
            mx = score[j] > mx ? score[j] : mx;
        }
        for (int j = 0; j < nsel; j++)
            sum += (score[j] = exp(score[j] - mx));
        for (size_t i = 0; i < hw; i++)
            acc[i] = 0.0;
        for (int j = 0; j < nsel; j++) {
            const double wk = score[j] / sum;
            const float *ak = a + rank[j].i * hw;
            for (size_t i = 0; i < hw; i++)
                acc[i] += wk * ak[i];
        }
        for (size_t i = 0; i < hw; i++)
            raw[(size_t)b * hw + i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f;
    }
out:
    free(rank);
    free(score);
    free(acc);
    free(tmp);
    free(up);
    free(masked);
    free(logits);
    return st;
}
