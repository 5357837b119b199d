/* agree.c - how a student's predictions agree with its teacher's: the KL
 * divergence of their softmax distributions at a temperature (Stanton et
 * al. 2021, "Does knowledge distillation really work?"), the top-1 class,
 * and the mean with a 95% confidence interval that summaries report. */
#include <math.h>

#include "internal.h"

int kdc_argmax(const float *v, int k)
{
    if (!v || k < 1)
        return -1;
    int best = 0;
    for (int i = 1; i < k; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* log-sum-exp of z / T, and the maximum it subtracts */
static double kdc__logsumexp(const float *z, int k, double T)
{
    double mx = z[0] / T, s = 0;
    for (int i = 1; i < k; i++)
        mx = z[i] / T > mx ? z[i] / T : mx;
    for (int i = 0; i < k; i++)
        s += exp(z[i] / T - mx);
    return mx + log(s);
}

kdc_status kdc_prediction_kl(const float *p_logits, const float *q_logits, int k,
                             double temperature, double *kl)
{
    if (!p_logits || !q_logits || !kl || k < 1 || !(temperature > 0))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "prediction KL: NULL logits, k = %d or "
                         "temperature %g (needs k >= 1, T > 0)", k, temperature);
    const double T = temperature, lp = kdc__logsumexp(p_logits, k, T),
                 lq = kdc__logsumexp(q_logits, k, T);
    double s = 0;
    for (int i = 0; i < k; i++) {
        const double logp = p_logits[i] / T - lp, logq = q_logits[i] / T - lq;
        s += exp(logp) * (logp - logq);
    }
    *kl = s > 0 ? s : 0.0; /* rounding can leave -1e-17 for equal distributions */
    return KDC_OK;
}

kdc_status kdc_mean_ci95(const double *v, size_t n, double *mean, double *half)
{
    if (!v || !mean || !half || n == 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "mean and 95%% interval: no values");
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    const double m = s / (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    *half = n > 1 ? 1.959963984540054 * sqrt(ss / (double)(n - 1)) / sqrt((double)n) : 0.0;
    return KDC_OK;
}
