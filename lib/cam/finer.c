/* finer.c - Finer-CAM's target (Zhang et al. 2025, "Finer-CAM: Spotting the
 * Difference Reveals Finer Details for Visual Explanation", arXiv
 * 2501.11309), as pytorch-grad-cam's finer_cam.py and
 * utils/model_targets.py FinerWeightedTarget define it:
 *
 *   t    = the target class (the given one, else the top-1, whose logit is
 *          the maximum);
 *   J    = the `ncomp` classes whose logits are closest to z_t, by
 *          |z_j - z_t| ascending (finer_cam.py's argsort, positions
 *          comparison_categories = [1, 2, 3] after t itself at 0; ties by
 *          lower class index, NumPy's argsort gives no order there);
 *   p    = softmax(z), with the gradient flowing through it as in torch;
 *   T(z) = sum_{j in J} p_j (z_t - alpha z_j) / (sum_{j in J} p_j + 1e-9).
 *
 * The map is Grad-CAM of T (finer_cam.py's default base_method). This file
 * gives dT/dz at the logits, the seed of a KDC_TARGET_SEED backward:
 *   N = sum_J p_j (z_t - alpha z_j), D = sum_J p_j + 1e-9,
 *   dp_j/dz_i = p_j (delta_ij - p_i),
 *   dN/dz_i = sum_J p_j (delta_ij - p_i)(z_t - alpha z_j)
 *             + [i == t] (D - 1e-9) - alpha [i in J] p_i,
 *   dD/dz_i = [i in J] p_i - p_i (D - 1e-9),
 *   dT/dz_i = (dN/dz_i D - N dD/dz_i) / D^2, all in double. */
#include <math.h>
#include <stdlib.h>

#include "cam_internal.h"

kdc_status kdc__finer_seed(const float *logits, int n, int K, const int *classes, double alpha,
                           int ncomp, float *seed, int *target)
{
    if (ncomp < 1 || ncomp >= K)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "finercam: %d comparison classes, expected "
                         "1..%d (the model has %d classes)", ncomp, K - 1, K);
    double *p = malloc((size_t)K * sizeof *p);
    int *comp = malloc((size_t)ncomp * sizeof *comp);
    char *used = malloc((size_t)K);
    if (!p || !comp || !used) {
        free(p);
        free(comp);
        free(used);
        return kdc__fail(KDC_ERR_NO_MEMORY, "finercam: out of memory");
    }
    for (int b = 0; b < n; b++) {
        const float *z = logits + (size_t)b * K;
        float *sd = seed + (size_t)b * K;
        int t = 0;
        if (classes)
            t = classes[b];
        else
            for (int i = 1; i < K; i++)
                t = z[i] > z[t] ? i : t;
        /* the ncomp classes closest to z_t (selection; ties: lower index) */
        for (int i = 0; i < K; i++)
            used[i] = i == t;
        for (int j = 0; j < ncomp; j++) {
            int best = -1;
            double bd = 0.0;
            for (int i = 0; i < K; i++) {
                if (used[i])
                    continue;
                const double d = fabs((double)z[i] - z[t]);
                if (best < 0 || d < bd) {
                    best = i;
                    bd = d;
                }
            }
            comp[j] = best;
            used[best] = 1;
        }
        double mx = z[0], sum = 0.0;
        for (int i = 1; i < K; i++)
            mx = z[i] > mx ? z[i] : mx;
        for (int i = 0; i < K; i++)
            sum += (p[i] = exp((double)z[i] - mx));
        for (int i = 0; i < K; i++)
            p[i] /= sum;
        double S = 0.0, N = 0.0;
        for (int j = 0; j < ncomp; j++) {
            S += p[comp[j]];
            N += p[comp[j]] * ((double)z[t] - alpha * z[comp[j]]);
        }
        const double D = S + 1e-9;
        for (int i = 0; i < K; i++) {
            /* sum_J p_j (delta_ij - p_i) f_j, f_j = z_t - alpha z_j */
            double dN = -p[i] * N, dD = -p[i] * S;
            for (int j = 0; j < ncomp; j++)
                if (comp[j] == i) {
                    dN += p[i] * ((double)z[t] - alpha * z[i]) - alpha * p[i];
                    dD += p[i];
                }
            if (i == t)
                dN += S;
            sd[i] = (float)((dN * D - N * dD) / (D * D));
        }
        target[b] = t;
    }
    free(p);
    free(comp);
    free(used);
    return KDC_OK;
}
