/* dff.c - Deep Feature Factorization (Collins, Achanta, Süsstrunk, "Deep
 * Feature Factorization For Concept Discovery", ECCV 2018, arXiv
 * 1806.10206), as pytorch-grad-cam's feature_factorization/
 * deep_feature_factorization.py dff() computes it with scikit-learn's
 * NMF(n_components=k, init='random', random_state=0) and its defaults
 * (solver 'cd', Frobenius loss, tol 1e-4, max_iter 200, no
 * regularisation, no shuffling):
 *
 *   V  = the activations as channels x (n h w) (all images of the batch
 *        together: the concepts are shared by the batch), NaN -> 0, each
 *        row shifted by its minimum (offset_c) so that V >= 0;
 *   init ('random', scikit-learn _initialize_nmf): avg = sqrt(mean(V) / k),
 *        H = avg |N(0,1)| (k x n h w), then W = avg |N(0,1)| (c x k), the
 *        normals from NumPy's RandomState(0) (MT19937 seeded by
 *        init_genrand(0), the polar Box-Muller of legacy_gauss), replayed
 *        here bit for bit;
 *   solver (scikit-learn _fit_coordinate_descent / _update_cdnmf_fast):
 *        per iteration, W then H by one cyclic sweep of coordinate descent
 *        (components in order, rows in order: grad = (W HH^T)_it - (V H^T)_it,
 *        W_it = max(W_it - grad / (HH^T)_tt, 0)), summing the projected
 *        gradients |pg| (pg = min(grad, 0) where W_it = 0) into the
 *        violation; stop when violation / first violation <= tol;
 *   concepts = W + offset (c x k); explanations = H as k x n x h x w,
 *        returned n x k x h x w.
 *
 * Arithmetic is in double throughout (scikit-learn keeps the activations'
 * float32). The iterations stop at the same count as a float64 NumPy
 * replay (tools/gen_methods_c_fixtures.py) unless the violation ratio
 * lands within rounding of tol. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

/* NumPy's legacy RandomState: MT19937 and legacy_gauss. */
typedef struct kdc__mt {
    uint32_t key[624];
    int pos;
    int has_gauss;
    double gauss;
} kdc__mt;

static void kdc__mt_seed(kdc__mt *m, uint32_t seed)
{
    for (int i = 0; i < 624; i++) {
        m->key[i] = seed;
        seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)i + 1u;
    }
    m->pos = 624;
    m->has_gauss = 0;
    m->gauss = 0.0;
}

static uint32_t kdc__mt_next(kdc__mt *m)
{
    if (m->pos == 624) {
        for (int i = 0; i < 624; i++) {
            const uint32_t y = (m->key[i] & 0x80000000u) | (m->key[(i + 1) % 624] & 0x7fffffffu);
            m->key[i] = m->key[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->pos = 0;
    }
    uint32_t y = m->key[m->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static double kdc__mt_double(kdc__mt *m)
{
    const uint32_t a = kdc__mt_next(m) >> 5, b = kdc__mt_next(m) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

static double kdc__mt_gauss(kdc__mt *m)
{
    if (m->has_gauss) {
        m->has_gauss = 0;
        return m->gauss;
    }
    double x1, x2, r2;
    do {
        x1 = 2.0 * kdc__mt_double(m) - 1.0;
        x2 = 2.0 * kdc__mt_double(m) - 1.0;
        r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    const double f = sqrt(-2.0 * log(r2) / r2);
    m->gauss = f * x1;
    m->has_gauss = 1;
    return f * x2;
}

/* One sweep of _update_cdnmf_fast: X (rows x cols), W (rows x k) updated,
 * Ht (cols x k) fixed; G (k x k) and XHt (rows x k) scratch. Returns the
 * violation. */
static double kdc__cd_sweep(const double *X, int transposed, size_t rows, size_t cols, double *W,
                            const double *Ht, size_t k, double *G, double *XHt)
{
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++) {
            double s = 0.0;
            for (size_t j = 0; j < cols; j++)
                s += Ht[j * k + a] * Ht[j * k + b];
            G[a * k + b] = s;
        }
    for (size_t i = 0; i < rows; i++)
        for (size_t t = 0; t < k; t++) {
            double s = 0.0;
            for (size_t j = 0; j < cols; j++)
                s += (transposed ? X[j * rows + i] : X[i * cols + j]) * Ht[j * k + t];
            XHt[i * k + t] = s;
        }
    double viol = 0.0;
    for (size_t t = 0; t < k; t++) {
        const double hess = G[t * k + t];
        for (size_t i = 0; i < rows; i++) {
            double grad = -XHt[i * k + t];
            for (size_t r = 0; r < k; r++)
                grad += G[t * k + r] * W[i * k + r];
            const double pg = W[i * k + t] == 0.0 ? (grad < 0.0 ? grad : 0.0) : grad;
            viol += fabs(pg);
            if (hess != 0.0) {
                const double v = W[i * k + t] - grad / hess;
                W[i * k + t] = v > 0.0 ? v : 0.0;
            }
        }
    }
    return viol;
}

kdc_status kdc_dff(const float *A, int n, int c, int h, int w, const kdc_dff_options *opt,
                   float *concepts, float *maps, int *iterations)
{
    if (!A || !opt || !concepts || !maps)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_dff: a NULL pointer");
    const int k = opt->components ? opt->components : 5;
    const int max_iter = opt->max_iter ? opt->max_iter : 200;
    const double tol = opt->tol != 0.0 ? opt->tol : 1e-4;
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_dff: bad shape %dx%dx%dx%d", n, c, h, w);
    if (k < 1 || max_iter < 1 || !(tol > 0.0))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_dff: components %d, max_iter %d and tol "
                         "%g must be positive", k, max_iter, tol);
    const size_t C = (size_t)c, K = (size_t)k, hw = (size_t)h * w;
    size_t F, nV;
    if (!kdc__mul_size(hw, (size_t)n, &F) || !kdc__mul_size(F, C, &nV) || nV > SIZE_MAX / 8 ||
        F > SIZE_MAX / 8 / K)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_dff: %dx%dx%dx%d is too large", n, c, h, w);
    double *V = malloc(nV * sizeof *V);      /* (c, n h w) */
    double *off = malloc(C * sizeof *off);   /* (c) row minimum */
    double *W = malloc(C * K * sizeof *W);   /* (c, k) */
    double *Ht = malloc(F * K * sizeof *Ht); /* (n h w, k) */
    double *G = malloc(K * K * sizeof *G);
    double *XHt = malloc((C > F ? C : F) * K * sizeof *XHt);
    kdc_status st = KDC_OK;
    if (!V || !off || !W || !Ht || !G || !XHt) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_dff: out of memory (%dx%dx%dx%d, %d components)",
                       n, c, h, w, k);
        goto out;
    }
    double mean = 0.0;
    for (size_t ch = 0; ch < C; ch++) {
        double mn = INFINITY;
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < hw; i++) {
                const float v = A[((size_t)b * C + ch) * hw + i];
                const double x = isnan(v) ? 0.0 : v;
                V[ch * F + (size_t)b * hw + i] = x;
                mn = x < mn ? x : mn;
            }
        off[ch] = mn;
        for (size_t j = 0; j < F; j++)
            mean += (V[ch * F + j] -= mn);
    }
    mean /= (double)nV;
    const double avg = sqrt(mean / (double)k);
    kdc__mt mt;
    kdc__mt_seed(&mt, 0);
    for (size_t t = 0; t < K; t++) /* H (k, F) row-major, stored transposed */
        for (size_t j = 0; j < F; j++)
            Ht[j * K + t] = fabs(avg * kdc__mt_gauss(&mt));
    for (size_t i = 0; i < C * K; i++)
        W[i] = fabs(avg * kdc__mt_gauss(&mt));
    double v0 = 0.0;
    int it = 1;
    for (; it <= max_iter; it++) {
        double viol = kdc__cd_sweep(V, 0, C, F, W, Ht, K, G, XHt);
        viol += kdc__cd_sweep(V, 1, F, C, Ht, W, K, G, XHt);
        if (it == 1)
            v0 = viol;
        if (v0 == 0.0 || viol / v0 <= tol)
            break;
    }
    if (iterations)
        *iterations = it > max_iter ? max_iter : it;
    for (size_t ch = 0; ch < C; ch++)
        for (size_t t = 0; t < K; t++)
            concepts[ch * K + t] = (float)(W[ch * K + t] + off[ch]);
    for (int b = 0; b < n; b++)
        for (size_t t = 0; t < K; t++)
            for (size_t i = 0; i < hw; i++)
                maps[((size_t)b * K + t) * hw + i] = (float)Ht[((size_t)b * hw + i) * K + t];
out:
    free(V);
    free(off);
    free(W);
    free(Ht);
    free(G);
    free(XHt);
    return st;
}
