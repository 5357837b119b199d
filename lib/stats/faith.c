/* faith.c - faithfulness of a map: the perturbed inputs of the deletion and
 * insertion games (Petsiuk et al. 2018, RISE), their area under the curve
 * as RISE's auc() computes it, and Average Drop / Increase in Confidence
 * (Chattopadhay et al. 2018, Grad-CAM++; torch-cam's metrics). The model
 * passes in between are the caller's (kdcam analyze batches them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

kdc_status kdc_faith_perturb(const float *image, const float *substrate, const float *map, int h,
                             int w, int steps, int insertion, int k0, int count, float *out)
{
    if (!image || !substrate || !map || !out || h < 1 || w < 1 || steps < 1 || k0 < 0 ||
        count < 1 || k0 + count > steps + 1 || (size_t)h * w > (size_t)1 << 28)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "deletion/insertion inputs: bad arguments "
                         "(%dx%d, steps %d, steps %d..%d)", h, w, steps, k0, k0 + count - 1);
    const size_t hw = (size_t)h * w;
    kdc__ranked *r = malloc(hw * sizeof *r);
    if (!r)
        return kdc__fail(KDC_ERR_NO_MEMORY, "deletion/insertion inputs: out of memory");
    for (size_t i = 0; i < hw; i++) {
        r[i].v = map[i];
        r[i].i = i;
    }
    qsort(r, hw, sizeof *r, kdc__ranked_desc);
    const float *from = insertion ? substrate : image, *to = insertion ? image : substrate;
    for (int c = 0; c < count; c++) {
        const int k = k0 + c;
        const size_t moved = (size_t)((unsigned long long)k * hw / (unsigned long long)steps);
        float *o = out + (size_t)c * 3 * hw; /* (3, h, w) */
        memcpy(o, from, 3 * hw * sizeof *o);
        for (size_t j = 0; j < moved; j++)
            for (int ch = 0; ch < 3; ch++)
                o[ch * hw + r[j].i] = to[ch * hw + r[j].i];
    }
    free(r);
    return KDC_OK;
}

double kdc_faith_auc(const double *scores, int n)
{
    if (!scores || n < 2)
        return NAN;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += scores[i];
    return (s - scores[0] / 2 - scores[n - 1] / 2) / (n - 1);
}

kdc_status kdc_faith_average_drop(const double *Y, const double *O, size_t n, double *avg_drop,
                                  double *increase)
{
    if (!Y || !O || !avg_drop || !increase || n == 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "Average Drop: no scores");
    double drop = 0, inc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(Y[i] > 0))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "Average Drop: score %zu is %g, not "
                             "positive", i, Y[i]);
        drop += (Y[i] > O[i] ? Y[i] - O[i] : 0.0) / Y[i];
        inc += O[i] > Y[i];
    }
    *avg_drop = 100.0 * drop / (double)n;
    *increase = 100.0 * inc / (double)n;
    return KDC_OK;
}

/* RISE's blur (evaluation.py's gkern and the substrate of its insertion
 * game): the kernel is scipy's gaussian_filter(sigma) applied to a klen x
 * klen delta, i.e. a Gaussian truncated at 4 sigma and folded back into
 * the klen window by 'reflect' boundaries; it is separable, so one 1-D
 * profile serves both axes. */
static void kdc__rise_kernel(int klen, double sigma, double *k1)
{
    const int rad = (int)(4.0 * sigma + 0.5), c = klen / 2;
    double norm = 0;
    for (int x = -rad; x <= rad; x++)
        norm += exp(-0.5 * x * x / (sigma * sigma));
    for (int i = 0; i < klen; i++)
        k1[i] = 0;
    /* out[i] = sum_x g(x) delta[reflect(i + x)] */
    for (int i = 0; i < klen; i++)
        for (int x = -rad; x <= rad; x++) {
            int m = i + x, period = 2 * klen;
            m %= period;
            if (m < 0)
                m += period;
            if (m >= klen)
                m = period - 1 - m;
            if (m == c)
                k1[i] += exp(-0.5 * x * x / (sigma * sigma)) / norm;
        }
}

kdc_status kdc_faith_blur(const float *image, int h, int w, int klen, double sigma, float *out)
{
    if (!image || !out || h < 1 || w < 1 || klen < 1 || klen > 255 || !(klen % 2) ||
        !(sigma > 0 && sigma <= 64) || (size_t)h * w > (size_t)1 << 28 || image == out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "blur substrate: bad arguments (%dx%d, "
                         "kernel %d, sigma %g; the kernel size must be odd, out not image)",
                         h, w, klen, sigma);
    double k1[255];
    float k2[255 * 255]; /* the source casts its kernel to float32 */
    kdc__rise_kernel(klen, sigma, k1);
    for (int i = 0; i < klen; i++)
        for (int j = 0; j < klen; j++)
            k2[i * klen + j] = (float)(k1[i] * k1[j]);
    const int c = klen / 2;
    const size_t hw = (size_t)h * w;
    for (int ch = 0; ch < 3; ch++) /* conv2d with zero padding klen / 2 */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double s = 0;
                for (int i = 0; i < klen; i++) {
                    const int yy = y + i - c;
                    if (yy < 0 || yy >= h)
                        continue;
                    const float *row = image + ch * hw + (size_t)yy * w;
                    for (int j = 0; j < klen; j++) {
                        const int xx = x + j - c;
                        if (xx >= 0 && xx < w)
                            s += (double)k2[i * klen + j] * row[xx];
                    }
                }
                out[ch * hw + (size_t)y * w + x] = (float)s;
            }
    return KDC_OK;
}
