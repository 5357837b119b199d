/* fgd.c - the attention views of Focal and Global Distillation (Yang et
 * al., CVPR 2022; yzd-v/FGD mmdet/distillation/losses/fgd.py,
 * get_attention): of a feature map F (C x H x W), the spatial attention
 * S = H * W * softmax_hw(mean_c |F| / T) and the channel attention
 * A = C * softmax_c(mean_hw |F| / T), each averaging 1. FGD weights its
 * feature loss with the teacher's S and A (T = 0.5 in its configs), so
 * these maps show where and on which channels a teacher pushes its student. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/* out[i] = k * softmax(v / temp)[i], in double, max subtracted */
static void kdc__scaled_softmax(const double *v, size_t k, double temp, float *out)
{
    double mx = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < k; i++)
        mx = v[i] / temp > mx ? v[i] / temp : mx;
    for (size_t i = 0; i < k; i++)
        sum += exp(v[i] / temp - mx);
    for (size_t i = 0; i < k; i++)
        out[i] = (float)((double)k * exp(v[i] / temp - mx) / sum);
}

kdc_status kdc_fgd_attention(const float *A, int n, int c, int h, int w, float temp,
                             float *spatial, float *channel)
{
    if (!A || (!spatial && !channel))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_fgd_attention: %s is NULL",
                         A ? "spatial and channel" : "A");
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_fgd_attention: bad shape %dx%dx%dx%d", n, c, h, w);
    if (!(temp > 0.0f) || !isfinite(temp))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_fgd_attention: temperature %g is not "
                         "positive", (double)temp);
    const size_t C = (size_t)c, HW = (size_t)h * w;
    size_t chw, total;
    if (!kdc__mul_size(C, HW, &chw) || !kdc__mul_size(chw, (size_t)n, &total))
        return kdc__fail(KDC_ERR_SHAPE, "kdc_fgd_attention: shape %dx%dx%dx%d is too large", n,
                         c, h, w);
    double *v = malloc((HW > C ? HW : C) * sizeof *v);
    if (!v)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_fgd_attention: out of memory");
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * chw;
        if (spatial) {
            for (size_t i = 0; i < HW; i++) {
                double s = 0.0;
                for (size_t k = 0; k < C; k++)
                    s += fabs((double)a[k * HW + i]);
                v[i] = s / (double)C;
            }
            kdc__scaled_softmax(v, HW, temp, spatial + (size_t)b * HW);
        }
        if (channel) {
            for (size_t k = 0; k < C; k++) {
                double s = 0.0;
                for (size_t i = 0; i < HW; i++)
                    s += fabs((double)a[k * HW + i]);
                v[k] = s / (double)HW;
            }
            kdc__scaled_softmax(v, C, temp, channel + (size_t)b * C);
        }
    }
    free(v);
    return KDC_OK;
}
