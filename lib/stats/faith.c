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
