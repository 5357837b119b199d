/* analyze_kd.c - the ICKD Gram and attention-transfer distances of kdcam
 * analyze: which student stage each teacher stage is compared with, and
 * the per-image distances (kdc_ickd_distance, kdc_at_distance) of one
 * minibatch. Stages are the CKA layers with a spatial extent (not the
 * logits); teacher stage t is paired with the student stage of the same
 * height x width, else the one nearest in log area (the later on ties). */
#include <math.h>
#include <stdlib.h>

#include "analyze.h"

int an_kd_pairs(kdc_model *t, const int *tl, int tnl, kdc_model *s, const int *sl, int snl,
                int h, int w, int *pair)
{
    int ts[3], ss[3];
    kdc_status st;
    for (int i = 0; i < tnl; i++) {
        pair[i] = -1;
        if ((st = kdc_model_layer_shape(t, tl[i], h, w, ts)))
            return cli_lib_error(st, "teacher layer");
        if ((long)ts[1] * ts[2] < 2)
            continue;
        double best = INFINITY;
        for (int j = 0; j < snl; j++) {
            if ((st = kdc_model_layer_shape(s, sl[j], h, w, ss)))
                return cli_lib_error(st, "student layer");
            if ((long)ss[1] * ss[2] < 2)
                continue;
            const double d = ss[1] == ts[1] && ss[2] == ts[2]
                                 ? -1.0
                                 : fabs(log((double)ss[1] * ss[2] / ((double)ts[1] * ts[2])));
            if (d <= best) {
                best = d;
                pair[i] = j;
            }
        }
    }
    return 0;
}

int an_kd_batch(const float *tact, const int tnchw[4], const float *sact, const int snchw[4],
                int n, double *out, int stride)
{
    const size_t dt = (size_t)tnchw[1] * tnchw[2] * tnchw[3],
                 ds = (size_t)snchw[1] * snchw[2] * snchw[3];
    kdc_status st = KDC_OK;
    for (int b = 0; b < n && !st; b++) {
        const float *ft = tact + (size_t)b * dt, *fs = sact + (size_t)b * ds;
        if (!(st = kdc_ickd_distance(ft, tnchw[1], (size_t)tnchw[2] * tnchw[3], fs, snchw[1],
                                     (size_t)snchw[2] * snchw[3], &out[(size_t)b * stride])))
            st = kdc_at_distance(ft, tnchw[1], tnchw[2], tnchw[3], fs, snchw[1], snchw[2],
                                 snchw[3], &out[(size_t)b * stride + 1]);
    }
    return st ? cli_lib_error(st, "ICKD / attention transfer") : 0;
}
