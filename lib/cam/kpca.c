/* kpca.c - KPCA-CAM (Karmani et al. 2024, "KPCA-CAM: Visual Explainability
 * of Deep Computer Vision Models using Kernel PCA", arXiv 2410.00267), as
 * pytorch-grad-cam's kpca_cam.py computes it through
 * utils/svd_on_activations.py get_2d_projection_kernel:
 *
 *   X  = A^T (hw x c), each column's mean over the pixels subtracted;
 *   K  = kernel(X, X) (hw x hw), scikit-learn's pairwise kernels with its
 *        KernelPCA defaults: gamma = 1 / c, coef0 = 1, degree 3;
 *   Kc = K centred as scikit-learn's KernelCenterer: K - column means - row
 *        means + the grand mean;
 *   proj = v sqrt(lambda), (lambda, v) the largest eigenpair of Kc
 *        (KernelPCA(n_components=1).fit_transform), 0 if lambda <= 0
 *        (_check_psd_eigenvalues);
 *   sign: as scikit-learn's svd_flip(u): the entry of v of largest absolute
 *        value (the first one on ties) is made positive.
 *
 * The map is ReLU(proj), as every BaseCAM map. The eigenpair is exact
 * (eigen.c's solver, in double) for every hw; scikit-learn switches from
 * its dense solver (exact) to a randomised one (approximate, seeded from
 * NumPy's global state) when hw > 200, where libkdcam stays exact. */
#include <math.h>
#include <stdlib.h>

#include "cam_internal.h"

kdc_status kdc__kpca_project(const float *A, int c, int hw, kdc_kpca_kernel kernel, double gamma,
                             float *out)
{
    if ((int)kernel < 0 || (int)kernel >= KDC_KPCA_COUNT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kpcacam: kernel %d is out of range 0..%d",
                         (int)kernel, KDC_KPCA_COUNT - 1);
    const size_t C = (size_t)c, P = (size_t)hw;
    size_t nX, nK;
    if (!kdc__mul_size(C, P, &nX) || !kdc__mul_size(P, P, &nK) || nK > SIZE_MAX / 16 ||
        nX > SIZE_MAX / 8)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kpcacam: a %dx%d map is too large", c, hw);
    if (!(gamma > 0.0))
        gamma = 1.0 / (double)c;
    double *X = malloc(nX * sizeof *X);  /* (hw, c) centred */
    double *K = malloc(nK * sizeof *K);  /* (hw, hw) kernel, then centred */
    double *v = malloc(P * sizeof *v);   /* (hw) top eigenvector */
    double *rm = malloc(P * sizeof *rm); /* (hw) row means of K; norms for cosine */
    kdc_status st = KDC_OK;
    if (!X || !K || !v || !rm) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kpcacam: out of memory (%dx%d map)", c, hw);
        goto out_free;
    }
    for (size_t k = 0; k < C; k++) {
        double mean = 0.0;
        for (size_t i = 0; i < P; i++)
            mean += A[k * P + i];
        mean /= (double)P;
        for (size_t i = 0; i < P; i++)
            X[i * C + k] = A[k * P + i] - mean;
    }
    if (kernel == KDC_KPCA_COSINE) /* row norms (a zero row stays zero) */
        for (size_t i = 0; i < P; i++) {
            double s = 0.0;
            for (size_t k = 0; k < C; k++)
                s += X[i * C + k] * X[i * C + k];
            rm[i] = s > 0.0 ? sqrt(s) : 1.0;
        }
    for (size_t a = 0; a < P; a++)
        for (size_t b = a; b < P; b++) {
            const double *xa = X + a * C, *xb = X + b * C;
            double dot = 0.0, kv;
            if (kernel == KDC_KPCA_RBF) {
                for (size_t k = 0; k < C; k++) {
                    const double d = xa[k] - xb[k];
                    dot += d * d;
                }
                kv = exp(-gamma * dot);
            } else {
                for (size_t k = 0; k < C; k++)
                    dot += xa[k] * xb[k];
                if (kernel == KDC_KPCA_SIGMOID)
                    kv = tanh(gamma * dot + 1.0);
                else if (kernel == KDC_KPCA_POLY) {
                    const double t = gamma * dot + 1.0;
                    kv = t * t * t;
                } else if (kernel == KDC_KPCA_COSINE)
                    kv = dot / (rm[a] * rm[b]);
                else
                    kv = dot;
            }
            K[a * P + b] = K[b * P + a] = kv;
        }
    /* KernelCenterer: K is symmetric, so its column means are its row means */
    double all = 0.0;
    for (size_t a = 0; a < P; a++) {
        double s = 0.0;
        for (size_t b = 0; b < P; b++)
            s += K[a * P + b];
        rm[a] = s / (double)P;
        all += rm[a];
    }
    all /= (double)P;
    for (size_t a = 0; a < P; a++)
        for (size_t b = 0; b < P; b++)
            K[a * P + b] += all - rm[a] - rm[b];
    double lam = 0.0;
    if (kdc__sym_top_eigvec(K, hw, v, &lam)) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kpcacam: out of memory (%dx%d map)", c, hw);
        goto out_free;
    }
    size_t imax = 0;
    for (size_t i = 1; i < P; i++)
        if (fabs(v[i]) > fabs(v[imax]))
            imax = i;
    const double scale = (lam > 0.0 ? sqrt(lam) : 0.0) * (v[imax] < 0.0 ? -1.0 : 1.0);
    for (size_t i = 0; i < P; i++)
        out[i] = (float)(scale * v[i]);
out_free:
    free(X);
    free(K);
    free(v);
    free(rm);
    return st;
}
