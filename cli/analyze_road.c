/* analyze_road.c - kdcam analyze --road: ROAD (Rong et al. 2022) of each
 * model's map as pytorch-grad-cam's ROADMostRelevantFirstAverage and
 * ROADLeastRelevantFirstAverage compute it: for the percentiles 10, 20,
 * .., 90 the pixels are removed (most relevant first: those at or above
 * the percentile; least relevant first: the same on 1 - map) and imputed
 * (kdc_road_perturb, noise std 0.01 on the normalised input), and the
 * score is the change of the class's softmax probability, averaged over
 * the percentiles. The passes run `chunk` inputs at a time. */
#include <math.h>
#include <stdlib.h>

#include "analyze.h"

double an_softmax_prob(const float *z, int K, int c)
{
    double mx = z[0], s = 0;
    for (int i = 1; i < K; i++)
        mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < K; i++)
        s += exp(z[i] - mx);
    return exp(z[c] - mx) / s;
}

kdc_status an_class_probs(kdc_run *run, int logits_layer, int K, const float *x, int count,
                          int h, int w, int c, float *logits, double *p)
{
    kdc_status st = kdc_run_forward(run, x, count, h, w, &logits_layer, 1);
    if (!st)
        st = kdc_run_read_layer(run, logits_layer, logits, (size_t)count * K);
    for (int i = 0; i < count && !st; i++)
        p[i] = an_softmax_prob(logits + (size_t)i * K, K, c);
    return st;
}

uint64_t an_road_seed(uint64_t base, long image, int most_relevant_first, int pct_index)
{
    return base + ((uint64_t)image << 8) + (uint64_t)(most_relevant_first ? 16 : 0) +
           (uint64_t)pct_index;
}

int an_road(kdc_run *run, int logits_layer, int K, const float *x, const float *maps,
            const int *cls, int n, int h, int w, int chunk, long i0, uint64_t seed,
            double *out)
{
    const size_t plane = (size_t)h * w, one = 3 * plane;
    float *buf = malloc((size_t)chunk * one * sizeof *buf);
    float *logits = malloc((size_t)chunk * K * sizeof *logits);
    double p[AN_ROAD_STEPS], p0;
    kdc_status st = KDC_OK;
    if (!buf || !logits) {
        free(buf);
        free(logits);
        return cli_error("out of memory");
    }
    for (int b = 0; b < n && !st; b++) {
        const float *xb = x + (size_t)b * one, *mp = maps + (size_t)b * plane;
        st = an_class_probs(run, logits_layer, K, xb, 1, h, w, cls[b], logits, &p0);
        for (int morf = 1; morf >= 0 && !st; morf--) {
            int fail = 0;
            for (int k0 = 0; k0 < AN_ROAD_STEPS && !st && !fail; k0 += chunk) {
                const int cnt = AN_ROAD_STEPS - k0 < chunk ? AN_ROAD_STEPS - k0 : chunk;
                for (int k = 0; k < cnt && !st; k++) {
                    const int q = k0 + k;
                    st = kdc_road_perturb(xb, mp, h, w, 10.0 * (q + 1), morf, AN_ROAD_NOISE,
                                          an_road_seed(seed, i0 + b, morf, q),
                                          buf + (size_t)k * one);
                    if (st == KDC_ERR_INVALID_ARGUMENT) { /* a constant map: no ROAD */
                        st = KDC_OK;
                        fail = 1;
                        break;
                    }
                }
                if (!st && !fail)
                    st = an_class_probs(run, logits_layer, K, buf, cnt, h, w, cls[b], logits,
                                        p + k0);
            }
            double s = 0;
            for (int q = 0; q < AN_ROAD_STEPS; q++)
                s += p[q] - p0;
            out[(size_t)b * 2 + (morf ? 0 : 1)] = fail ? NAN : s / AN_ROAD_STEPS;
        }
    }
    free(buf);
    free(logits);
    return st ? cli_lib_error(st, "ROAD") : 0;
}
