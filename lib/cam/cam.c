/* cam.c - class activation maps, input attributions and feature maps.
 *
 * Numerically as pytorch-grad-cam (jacobgil/pytorch-grad-cam) defines them;
 * the few places where libkdcam deliberately differs are marked
 * "Differs from pytorch-grad-cam" below:
 *  - Eigen-CAM / EigenGrad-CAM / the PCA feature map fix the sign of the
 *    principal component (pytorch-grad-cam leaves the SVD's arbitrary sign);
 *  - Score-CAM uses an all-zero mask for a constant channel (NaN there);
 *  - Ablation-CAM sets the ablated channel to 0 (pytorch-grad-cam writes a
 *    large negative value), and a zero target score gives zero weights.
 *
 * Per-map arithmetic that pytorch-grad-cam does in float32 NumPy
 * (normalisation, resizing, colour) is done in float here in the same
 * order; reductions (channel sums, means) are accumulated in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h" /* kdc__run_forward_from */

/* ------------------------------------------------------------------ */
/* Method names                                                        */

static const char *const kdc__cam_names[KDC_CAM_COUNT] = {
    "gradcam", "hirescam", "gradcam++", "xgradcam", "layercam",
    "eigencam", "eigengradcam", "scorecam", "ablationcam",
};

const char *kdc_cam_method_name(kdc_cam_method method)
{
    if ((int)method < 0 || (int)method >= KDC_CAM_COUNT)
        return NULL;
    return kdc__cam_names[method];
}

static int kdc__ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z')
            ca += 'a' - 'A';
        if (ca != cb)
            return 0;
    }
    return *a == *b;
}

kdc_status kdc_cam_method_parse(const char *name, kdc_cam_method *method)
{
    if (!name || !method)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_method_parse: %s is NULL",
                         name ? "method" : "name");
    for (int i = 0; i < KDC_CAM_COUNT; i++) {
        if (kdc__ieq(name, kdc__cam_names[i])) {
            *method = (kdc_cam_method)i;
            return KDC_OK;
        }
    }
    return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown CAM method \"%.64s\" (known: gradcam, "
                     "hirescam, gradcam++, xgradcam, layercam, eigencam, eigengradcam, "
                     "scorecam, ablationcam)", name);
}

/* ------------------------------------------------------------------ */
/* Principal component (Eigen-CAM, PCA feature map)                    */

/* Pivoted LU of the tridiagonal matrix (dl sub, d diagonal, du super;
 * du2 receives the second superdiagonal) and solve of one right-hand side b
 * in place, as LAPACK's dgttrf + dgtts2. Zero pivots are replaced by tiny,
 * which is what inverse iteration at an exact eigenvalue needs. */
static void kdc__tridiag_solve(double *dl, double *d, double *du, double *du2, int *piv,
                               double *b, int m, double tiny)
{
    for (int i = 0; i < m; i++)
        du2[i] = 0.0;
    for (int i = 0; i + 1 < m; i++) {
        if (fabs(d[i]) >= fabs(dl[i])) {
            piv[i] = i;
            if (d[i] != 0.0) {
                const double f = dl[i] / d[i];
                dl[i] = f;
                d[i + 1] -= f * du[i];
            }
        } else {
            piv[i] = i + 1;
            const double f = d[i] / dl[i];
            d[i] = dl[i];
            dl[i] = f;
            const double t = du[i];
            du[i] = d[i + 1];
            d[i + 1] = t - f * d[i + 1];
            if (i + 2 < m) {
                du2[i] = du[i + 1];
                du[i + 1] = -f * du[i + 1];
            }
        }
    }
    for (int i = 0; i < m; i++)
        if (d[i] == 0.0)
            d[i] = tiny;
    for (int i = 0; i + 1 < m; i++) {
        const int ip = piv[i];
        const double t = b[2 * i + 1 - ip] - dl[i] * b[ip];
        b[i] = b[ip];
        b[i + 1] = t;
    }
    b[m - 1] /= d[m - 1];
    if (m > 1)
        b[m - 2] = (b[m - 2] - du[m - 2] * b[m - 1]) / d[m - 2];
    for (int i = m - 3; i >= 0; i--)
        b[i] = (b[i] - du[i] * b[i + 1] - du2[i] * b[i + 2]) / d[i];
}

/* Number of eigenvalues of the tridiagonal matrix (d, e) below x (Sturm
 * sequence). */
static int kdc__sturm_count(const double *d, const double *e, int m, double x, double tiny)
{
    int count = 0;
    double q = d[0] - x;
    for (int i = 0;; i++) {
        if (q == 0.0)
            q = -tiny;
        count += q < 0.0;
        if (i + 1 >= m)
            break;
        q = d[i + 1] - x - e[i] * e[i] / q;
    }
    return count;
}

/* The eigenvector v (unit length) of the largest eigenvalue (returned in
 * *lambda) of the symmetric m x m matrix S (row-major, destroyed).
 * Deterministic dense method, O(4/3 m^3):
 *  1. Householder tridiagonalisation S = Q T Q^T (reflector k is kept in
 *     row k of S, right of the diagonal);
 *  2. the largest eigenvalue of T by Sturm-sequence bisection to full
 *     double precision;
 *  3. its eigenvector of T by 3 steps of inverse iteration (pivoted
 *     tridiagonal LU) from a fixed start vector;
 *  4. back-transformation v = Q y.
 * Returns 0, or -1 if memory runs out. */
static int kdc__sym_top_eigvec(double *S, int m, double *v, double *lambda)
{
    const size_t M = (size_t)m;
    double *work = malloc(7 * M * sizeof *work);
    int *piv = malloc(M * sizeof *piv);
    if (!work || !piv) {
        free(work);
        free(piv);
        return -1;
    }
    double *d = work, *e = work + M, *p = work + 2 * M, *dl = work + 3 * M, *dd = work + 4 * M;
    double *du = work + 5 * M, *du2 = work + 6 * M;
    /* 1. tridiagonalise */
    for (size_t k = 0; k + 2 < M; k++) {
        double norm = 0.0;
        for (size_t i = k + 1; i < M; i++)
            norm += S[i * M + k] * S[i * M + k];
        norm = sqrt(norm);
        double *vk = S + k * M; /* row k, columns k+1.. hold the reflector */
        if (norm == 0.0) {
            e[k] = 0.0;
            for (size_t i = k + 1; i < M; i++)
                vk[i] = 0.0;
            continue;
        }
        const double x0 = S[(k + 1) * M + k];
        const double alpha = x0 > 0.0 ? -norm : norm;
        double vn = 0.0;
        for (size_t i = k + 1; i < M; i++) {
            vk[i] = i == k + 1 ? x0 - alpha : S[i * M + k];
            vn += vk[i] * vk[i];
        }
        vn = sqrt(vn);
        for (size_t i = k + 1; i < M; i++)
            vk[i] /= vn;
        e[k] = alpha;
        /* trailing block A <- H A H = A - v w^T - w v^T, w = 2 A v - 2 (v.Av) v */
        double K = 0.0;
        for (size_t i = k + 1; i < M; i++) {
            double s = 0.0;
            for (size_t j = k + 1; j < M; j++)
                s += S[i * M + j] * vk[j];
            p[i] = s;
            K += vk[i] * s;
        }
        for (size_t i = k + 1; i < M; i++)
            p[i] = 2.0 * p[i] - 2.0 * K * vk[i];
        for (size_t i = k + 1; i < M; i++)
            for (size_t j = k + 1; j < M; j++)
                S[i * M + j] -= vk[i] * p[j] + p[i] * vk[j];
    }
    for (size_t i = 0; i < M; i++)
        d[i] = S[i * M + i];
    if (M >= 2)
        e[M - 2] = S[(M - 1) * M + (M - 2)];
    /* 2. largest eigenvalue: bisection on the Gershgorin interval */
    double lo = 0.0, hi = 0.0, tnorm = 0.0;
    for (size_t i = 0; i < M; i++) {
        const double r = (i > 0 ? fabs(e[i - 1]) : 0.0) + (i + 1 < M ? fabs(e[i]) : 0.0);
        if (i == 0 || d[i] - r < lo)
            lo = d[i] - r;
        if (i == 0 || d[i] + r > hi)
            hi = d[i] + r;
        tnorm = fabs(d[i]) + r > tnorm ? fabs(d[i]) + r : tnorm;
    }
    const double tiny = tnorm > 0.0 ? tnorm * 1e-300 + 1e-300 : 1e-300;
    for (int it = 0; it < 2100 && hi - lo > 1e-16 * (fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi));
         it++) {
        const double mid = lo + 0.5 * (hi - lo);
        if (mid <= lo || mid >= hi)
            break;
        if (kdc__sturm_count(d, e, m, mid, tiny) == m)
            hi = mid; /* every eigenvalue below mid */
        else
            lo = mid;
    }
    const double lam = lo + 0.5 * (hi - lo);
    /* 3. inverse iteration on T - lam I */
    for (size_t i = 0; i < M; i++)
        v[i] = 1.0 + 0.5 * sin(1.0 + (double)i); /* fixed, generic start */
    const double pivtiny = tnorm > 0.0 ? tnorm * 1e-15 : 1.0;
    for (int it = 0; it < 3; it++) {
        for (size_t i = 0; i < M; i++) {
            dd[i] = d[i] - lam;
            if (i + 1 < M)
                dl[i] = du[i] = e[i];
        }
        kdc__tridiag_solve(dl, dd, du, du2, piv, v, m, pivtiny);
        double n2 = 0.0;
        for (size_t i = 0; i < M; i++)
            n2 += v[i] * v[i];
        n2 = sqrt(n2);
        if (!(n2 > 0.0) || !isfinite(n2)) { /* cannot happen with finite input */
            for (size_t i = 0; i < M; i++)
                v[i] = i == 0;
            break;
        }
        for (size_t i = 0; i < M; i++)
            v[i] /= n2;
    }
    /* 4. v = H_0 H_1 ... H_{m-3} y */
    for (size_t kk = M >= 3 ? M - 2 : 0; kk-- > 0;) {
        const double *vk = S + kk * M;
        double dot = 0.0;
        for (size_t i = kk + 1; i < M; i++)
            dot += vk[i] * v[i];
        for (size_t i = kk + 1; i < M; i++)
            v[i] -= 2.0 * dot * vk[i];
    }
    *lambda = lam;
    free(work);
    free(piv);
    return 0;
}

/* Projection of one image on its first principal component, as
 * pytorch-grad-cam's get_2d_projection: X = the c x hw map (A, or G * A
 * when G is given), M = X^T (hw x c) with its columns centred, proj = M v1
 * with v1 the first right singular vector of M. Computed in double from the
 * smaller of the two Gram matrices: M^T M (c x c; proj = M v1) or M M^T
 * (hw x hw; its top eigenvector u1 with eigenvalue s1^2 gives M v1 = s1 u1),
 * whose top eigenvector kdc__sym_top_eigvec finds.
 *
 * Differs from pytorch-grad-cam: the SVD's sign is arbitrary, and users see
 * flipped maps. The sign is fixed so that proj correlates non-negatively
 * with the channel mean of X (mean_k X_k, the plain average map): if
 * sum_i proj_i (mean_k X_ki - its spatial mean) < 0, proj is negated; a
 * zero correlation keeps the sign. out gets hw floats (no ReLU). */
static kdc_status kdc__pca_project(const float *A, const float *G, int c, int hw, float *out)
{
    const size_t C = (size_t)c, P = (size_t)hw;
    const size_t m = C <= P ? C : P;
    size_t nM, nS;
    if (!kdc__mul_size(C, P, &nM) || !kdc__mul_size(m, m, &nS) || nS > SIZE_MAX / 16 ||
        nM > SIZE_MAX / 8)
        return kdc__fail(KDC_ERR_NO_MEMORY, "principal component: a %dx%d map is too large", c,
                         hw);
    double *M = malloc(nM * sizeof *M);  /* (hw, c) */
    double *S = malloc(nS * sizeof *S);  /* (m, m)  */
    double *v = malloc(m * sizeof *v);   /* (m) top eigenvector */
    double *ref = malloc(P * sizeof *ref); /* (hw) channel mean of X */
    double lam = 0.0;
    kdc_status st = KDC_OK;
    if (!M || !S || !v || !ref) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "principal component: out of memory (%dx%d map)", c,
                       hw);
        goto out_free;
    }
    for (size_t i = 0; i < P; i++)
        ref[i] = 0.0;
    for (size_t k = 0; k < C; k++) {
        double mean = 0.0;
        for (size_t i = 0; i < P; i++) {
            double x = A[k * P + i];
            if (G)
                x *= G[k * P + i];
            M[i * C + k] = x;
            ref[i] += x;
            mean += x;
        }
        mean /= (double)P;
        for (size_t i = 0; i < P; i++)
            M[i * C + k] -= mean;
    }
    if (C <= P) {
        for (size_t i = 0; i < C * C; i++)
            S[i] = 0.0;
        for (size_t i = 0; i < P; i++) {
            const double *row = M + i * C;
            for (size_t a = 0; a < C; a++)
                for (size_t b = a; b < C; b++)
                    S[a * C + b] += row[a] * row[b];
        }
        for (size_t a = 0; a < C; a++)
            for (size_t b = 0; b < a; b++)
                S[a * C + b] = S[b * C + a];
        if (kdc__sym_top_eigvec(S, (int)C, v, &lam))
            goto out_nomem;
        for (size_t i = 0; i < P; i++) {
            double s = 0.0;
            for (size_t k = 0; k < C; k++)
                s += M[i * C + k] * v[k];
            out[i] = (float)s;
        }
    } else {
        for (size_t a = 0; a < P; a++)
            for (size_t b = a; b < P; b++) {
                double s = 0.0;
                for (size_t k = 0; k < C; k++)
                    s += M[a * C + k] * M[b * C + k];
                S[a * P + b] = S[b * P + a] = s;
            }
        if (kdc__sym_top_eigvec(S, (int)P, v, &lam))
            goto out_nomem;
        const double sigma = lam > 0.0 ? sqrt(lam) : 0.0;
        for (size_t i = 0; i < P; i++)
            out[i] = (float)(sigma * v[i]);
    }
    /* sign: correlation with the (centred) channel-mean map */
    double rmean = 0.0, corr = 0.0;
    for (size_t i = 0; i < P; i++)
        rmean += ref[i];
    rmean /= (double)P;
    for (size_t i = 0; i < P; i++)
        corr += (double)out[i] * (ref[i] - rmean);
    if (corr < 0.0)
        for (size_t i = 0; i < P; i++)
            out[i] = -out[i];
    goto out_free;
out_nomem:
    st = kdc__fail(KDC_ERR_NO_MEMORY, "principal component: out of memory (%dx%d map)", c, hw);
out_free:
    free(M);
    free(S);
    free(v);
    free(ref);
    return st;
}

/* ------------------------------------------------------------------ */
/* Maps from activations and gradients                                 */

static int kdc__needs_grad(kdc_cam_method m)
{
    return m == KDC_CAM_GRADCAM || m == KDC_CAM_HIRESCAM || m == KDC_CAM_GRADCAMPP ||
           m == KDC_CAM_XGRADCAM || m == KDC_CAM_LAYERCAM || m == KDC_CAM_EIGENGRADCAM;
}

/* One image: weights w (c) of the channel-weighted methods, in double. */
static void kdc__cam_weights(kdc_cam_method method, const float *A, const float *G, size_t c,
                             size_t hw, double *wt)
{
    for (size_t k = 0; k < c; k++) {
        const float *a = A + k * hw, *g = G + k * hw;
        double w = 0.0;
        if (method == KDC_CAM_GRADCAM) {
            /* w_k = mean_hw(g_k) */
            for (size_t i = 0; i < hw; i++)
                w += g[i];
            w /= (double)hw;
        } else if (method == KDC_CAM_XGRADCAM) {
            /* w_k = sum_hw(g_k A_k) / (sum_hw(A_k) + 1e-7) */
            double sa = 0.0, sga = 0.0;
            for (size_t i = 0; i < hw; i++) {
                sa += a[i];
                sga += (double)g[i] * a[i];
            }
            w = sga / (sa + 1e-7);
        } else { /* GRADCAMPP */
            /* alpha = g^2 / (2 g^2 + sum_hw(A_k) g^3 + 1e-6), 0 where g == 0;
             * w_k = sum_hw(relu(g) alpha) */
            double sa = 0.0;
            for (size_t i = 0; i < hw; i++)
                sa += a[i];
            for (size_t i = 0; i < hw; i++) {
                const double gi = g[i];
                if (gi <= 0.0) /* relu(g) = 0; alpha = 0 where g == 0 */
                    continue;
                const double g2 = gi * gi, g3 = g2 * gi;
                w += gi * (g2 / (2.0 * g2 + sa * g3 + 1e-6));
            }
        }
        wt[k] = w;
    }
}

kdc_status kdc_cam_from_maps(kdc_cam_method method, const float *A, const float *G, int n, int c,
                             int h, int w, float *raw)
{
    if ((int)method < 0 || (int)method >= KDC_CAM_COUNT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "CAM method %d is out of range 0..%d",
                         (int)method, KDC_CAM_COUNT - 1);
    if (method == KDC_CAM_SCORECAM || method == KDC_CAM_ABLATIONCAM)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s needs a model: use kdc_cam_compute",
                         kdc__cam_names[method]);
    if (!A || !raw)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_from_maps: %s is NULL",
                         A ? "raw" : "activation A");
    if (!G && method != KDC_CAM_EIGENCAM)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_from_maps: %s needs the gradient G "
                         "(it is NULL)", kdc__cam_names[method]);
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_cam_from_maps: bad shape %dx%dx%dx%d", n, c, h, w);
    const size_t C = (size_t)c, HW = (size_t)h * (size_t)w;
    size_t chw, total;
    if (!kdc__mul_size(C, HW, &chw) || !kdc__mul_size(chw, (size_t)n, &total))
        return kdc__fail(KDC_ERR_SHAPE, "kdc_cam_from_maps: shape %dx%dx%dx%d is too large", n, c,
                         h, w);

    kdc_status st = KDC_OK;
    double *wt = NULL, *acc = NULL;
    if (method == KDC_CAM_EIGENCAM || method == KDC_CAM_EIGENGRADCAM) {
        for (int b = 0; b < n; b++) {
            const size_t o = (size_t)b * chw;
            if ((st = kdc__pca_project(A + o, method == KDC_CAM_EIGENGRADCAM ? G + o : NULL, c,
                                       (int)HW, raw + (size_t)b * HW)))
                return st;
        }
        for (size_t i = 0; i < (size_t)n * HW; i++)
            raw[i] = raw[i] > 0.0f ? raw[i] : 0.0f;
        return KDC_OK;
    }
    wt = malloc(C * sizeof *wt);
    acc = malloc(HW * sizeof *acc);
    if (!wt || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cam_from_maps: out of memory");
        goto out_free;
    }
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * chw, *g = G + (size_t)b * chw;
        for (size_t i = 0; i < HW; i++)
            acc[i] = 0.0;
        if (method == KDC_CAM_HIRESCAM || method == KDC_CAM_LAYERCAM) {
            /* HiResCAM: sum_k g_k A_k; Layer-CAM: sum_k relu(g_k) A_k */
            for (size_t k = 0; k < C; k++)
                for (size_t i = 0; i < HW; i++) {
                    double gi = g[k * HW + i];
                    if (method == KDC_CAM_LAYERCAM && gi < 0.0)
                        gi = 0.0;
                    acc[i] += gi * a[k * HW + i];
                }
        } else {
            kdc__cam_weights(method, a, g, C, HW, wt);
            for (size_t k = 0; k < C; k++)
                for (size_t i = 0; i < HW; i++)
                    acc[i] += wt[k] * a[k * HW + i];
        }
        float *r = raw + (size_t)b * HW;
        for (size_t i = 0; i < HW; i++)
            r[i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f; /* compute_cam_per_layer's ReLU */
    }
out_free:
    free(wt);
    free(acc);
    return st;
}

/* ------------------------------------------------------------------ */
/* Resizing and normalisation                                          */

/* Source index pair and weight of one output coordinate, OpenCV
 * INTER_LINEAR: f = (d + 0.5) * (in / out) - 0.5 (in double, then float),
 * i0 = floor(f); below 0: i0 = 0, weight 0; at or past in - 1: i0 = in - 1,
 * weight 0 (neighbours clamped to the border). */
static void kdc__linear_coeffs(int in, int out, int *i0, int *i1, float *frac)
{
    const double scale = (double)in / (double)out;
    for (int d = 0; d < out; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0) {
            s = 0;
            f = 0.0f;
        }
        if (s >= in - 1) {
            s = in - 1;
            f = 0.0f;
        }
        i0[d] = s;
        i1[d] = s + 1 < in ? s + 1 : in - 1;
        frac[d] = f;
    }
}

kdc_status kdc_resize_bilinear(const float *src, int n, int h, int w, int out_h, int out_w,
                               float *dst)
{
    if (!src || !dst)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_resize_bilinear: %s is NULL",
                         src ? "dst" : "src");
    if (n < 1 || h < 1 || w < 1 || out_h < 1 || out_w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_resize_bilinear: bad sizes %dx%dx%d -> %dx%d", n, h,
                         w, out_h, out_w);
    int *xi = malloc(2 * (size_t)out_w * sizeof *xi);
    int *yi = malloc(2 * (size_t)out_h * sizeof *yi);
    float *xf = malloc((size_t)out_w * sizeof *xf);
    float *yf = malloc((size_t)out_h * sizeof *yf);
    kdc_status st = KDC_OK;
    if (!xi || !yi || !xf || !yf) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_resize_bilinear: out of memory");
        goto out_free;
    }
    kdc__linear_coeffs(w, out_w, xi, xi + out_w, xf);
    kdc__linear_coeffs(h, out_h, yi, yi + out_h, yf);
    const size_t ihw = (size_t)h * w, ohw = (size_t)out_h * out_w;
    for (int b = 0; b < n; b++) {
        const float *s = src + (size_t)b * ihw;
        float *d = dst + (size_t)b * ohw;
        for (int y = 0; y < out_h; y++) {
            const float *r0 = s + (size_t)yi[y] * w, *r1 = s + (size_t)yi[out_h + y] * w;
            const float fy = yf[y];
            for (int x = 0; x < out_w; x++) {
                const int x0 = xi[x], x1 = xi[out_w + x];
                const float fx = xf[x];
                /* horizontal pass, then vertical, as OpenCV's float path */
                const float h0 = r0[x0] * (1.0f - fx) + r0[x1] * fx;
                const float h1 = r1[x0] * (1.0f - fx) + r1[x1] * fx;
                d[(size_t)y * out_w + x] = (1.0f - fy) * h0 + fy * h1;
            }
        }
    }
out_free:
    free(xi);
    free(yi);
    free(xf);
    free(yf);
    return st;
}

/* scale_cam_image on one plane without resizing: x -= min(x); x /= (1e-7 +
 * max(x)), in float as NumPy float32 does (the divisor is the float32 of
 * the double 1e-7 + max). */
static void kdc__minmax_plane(const float *src, float *dst, size_t count)
{
    float mn = src[0];
    for (size_t i = 1; i < count; i++)
        mn = src[i] < mn ? src[i] : mn;
    float mx = -INFINITY;
    for (size_t i = 0; i < count; i++) {
        dst[i] = src[i] - mn;
        mx = dst[i] > mx ? dst[i] : mx;
    }
    const float den = (float)(1e-7 + (double)mx);
    for (size_t i = 0; i < count; i++)
        dst[i] = dst[i] / den;
}

kdc_status kdc_cam_normalize_resize(const float *raw, int n, int h, int w, int out_h, int out_w,
                                    float *out)
{
    if (!raw || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_normalize_resize: %s is NULL",
                         raw ? "out" : "raw");
    if (n < 1 || h < 1 || w < 1 || out_h < 1 || out_w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_cam_normalize_resize: bad sizes %dx%dx%d -> %dx%d",
                         n, h, w, out_h, out_w);
    const size_t hw = (size_t)h * w;
    float *tmp = malloc(hw * sizeof *tmp);
    if (!tmp)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cam_normalize_resize: out of memory");
    kdc_status st = KDC_OK;
    for (int b = 0; b < n && !st; b++) {
        kdc__minmax_plane(raw + (size_t)b * hw, tmp, hw);
        st = kdc_resize_bilinear(tmp, 1, h, w, out_h, out_w,
                                 out + (size_t)b * out_h * (size_t)out_w);
    }
    free(tmp);
    return st;
}

/* ------------------------------------------------------------------ */
/* Feature maps                                                        */

kdc_status kdc_feature_map(const float *A, int n, int c, int h, int w, kdc_reduce reduce,
                           float *out)
{
    if (!A || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_feature_map: %s is NULL",
                         A ? "out" : "A");
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_feature_map: bad shape %dx%dx%dx%d", n, c, h, w);
    if ((int)reduce < KDC_REDUCE_MEAN || (int)reduce > KDC_REDUCE_PCA)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_feature_map: reduction %d is out of "
                         "range 0..%d", (int)reduce, (int)KDC_REDUCE_PCA);
    const size_t C = (size_t)c, HW = (size_t)h * w;
    size_t chw, total;
    if (!kdc__mul_size(C, HW, &chw) || !kdc__mul_size(chw, (size_t)n, &total))
        return kdc__fail(KDC_ERR_SHAPE, "kdc_feature_map: shape %dx%dx%dx%d is too large", n, c,
                         h, w);
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * chw;
        float *o = out + (size_t)b * HW;
        if (reduce == KDC_REDUCE_PCA) {
            kdc_status st = kdc__pca_project(a, NULL, c, (int)HW, o);
            if (st)
                return st;
            continue;
        }
        for (size_t i = 0; i < HW; i++) {
            double acc = reduce == KDC_REDUCE_MAX ? a[i] : 0.0;
            for (size_t k = 0; k < C; k++) {
                const double x = a[k * HW + i];
                if (reduce == KDC_REDUCE_MEAN)
                    acc += x;
                else if (reduce == KDC_REDUCE_L2)
                    acc += x * x;
                else if (x > acc)
                    acc = x;
            }
            if (reduce == KDC_REDUCE_MEAN)
                acc /= (double)C;
            else if (reduce == KDC_REDUCE_L2)
                acc = sqrt(acc);
            o[i] = (float)acc;
        }
    }
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Running the model                                                   */

/* Index of the model's last layer (the logits). */
static int kdc__last_layer(const kdc_run *run)
{
    return kdc_model_num_layers(kdc__run_model(run)) - 1;
}

/* The target score of one image from its logits z (K): the logit of class
 * cls, or its softmax probability (pytorch-grad-cam's ClassifierOutputTarget
 * / ClassifierOutputSoftmaxTarget). */
static double kdc__class_score(const float *z, int K, int cls, kdc_target_kind kind)
{
    if (kind != KDC_TARGET_PROB)
        return z[cls];
    double mx = z[0], sum = 0.0;
    for (int j = 1; j < K; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < K; j++)
        sum += exp((double)z[j] - mx);
    return exp((double)z[cls] - mx) / sum;
}

void kdc_cam_result_destroy(kdc_cam_result *result)
{
    if (!result)
        return;
    free(result->map);
    for (int l = 0; l < KDC_CAM_MAX_LAYERS; l++)
        free(result->raw[l]);
    free(result->classes);
    free(result);
}

/* torch.nn.UpsamplingBilinear2d (bilinear, align_corners=True) of one
 * h x w plane to H x W, in float as PyTorch's CPU kernel: src = d * (in -
 * 1) / (out - 1), i0 = floor(src), i1 = min(i0 + 1, in - 1). Unlike the
 * OpenCV resize of the post-processing, the corners map onto the corners. */
/* Internal (not static) so tests/test_cam.c can check it against PyTorch;
 * its prototype lives there. */
void kdc__upsample_align_corners(const float *src, int h, int w, float *dst, int H, int W);
void kdc__upsample_align_corners(const float *src, int h, int w, float *dst, int H, int W)
{
    const float sy = H > 1 ? (float)(h - 1) / (float)(H - 1) : 0.0f;
    const float sx = W > 1 ? (float)(w - 1) / (float)(W - 1) : 0.0f;
    for (int y = 0; y < H; y++) {
        const float fy = sy * (float)y;
        const int y0 = (int)fy, y1 = y0 + (y0 < h - 1);
        const float ly1 = fy - (float)y0, ly0 = 1.0f - ly1;
        const float *r0 = src + (size_t)y0 * w, *r1 = src + (size_t)y1 * w;
        for (int x = 0; x < W; x++) {
            const float fx = sx * (float)x;
            const int x0 = (int)fx, x1 = x0 + (x0 < w - 1);
            const float lx1 = fx - (float)x0, lx0 = 1.0f - lx1;
            dst[(size_t)y * W + x] = ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) +
                                     ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
        }
    }
}

typedef struct kdc__chan_rank {
    double mean;
    int idx;
} kdc__chan_rank;

/* Largest mean first; ties by channel index, so the order is total. */
static int kdc__rank_cmp(const void *pa, const void *pb)
{
    const kdc__chan_rank *a = pa, *b = pb;
    if (a->mean != b->mean)
        return a->mean > b->mean ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Score-CAM of one layer (pytorch-grad-cam ScoreCAM): each (selected)
 * channel upsampled to the input size (align_corners=True), min-max
 * normalised over the image, multiplied into all 3 input channels; the
 * masked images run forward `batch` at a time; weights = softmax over the
 * selected channels of the target scores; cam = relu(sum_k w_k A_k).
 * topk in 1..c-1: only the topk channels of largest spatial-mean activation
 * are scored, the others weigh 0.
 * Differs from pytorch-grad-cam: a constant channel (max == min) divides
 * 0 by 0 there and makes the whole map NaN; here its mask is all zeros
 * (the input is blanked out) and it is scored like any other. */
static kdc_status kdc__scorecam_layer(kdc_run *run, const float *input, int n, int H, int W,
                                      const float *A, int c, int h, int w, const int *classes,
                                      kdc_target_kind kind, int topk, int batch, int last, int K,
                                      float *raw)
{
    const size_t HWi = (size_t)H * W, hw = (size_t)h * w, C = (size_t)c;
    const int nsel = topk > 0 && topk < c ? topk : c;
    if (batch > nsel)
        batch = nsel;
    kdc__chan_rank *rank = malloc(C * sizeof *rank);
    double *score = malloc(C * sizeof *score);
    double *acc = malloc(hw * sizeof *acc);
    float *up = malloc(HWi * sizeof *up);
    float *masked = malloc((size_t)batch * 3 * HWi * sizeof *masked);
    float *logits = malloc((size_t)batch * K * sizeof *logits);
    kdc_status st = KDC_OK;
    if (!rank || !score || !acc || !up || !masked || !logits) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "scorecam: out of memory (batch of %d masked %dx%d "
                       "images)", batch, H, W);
        goto out_free;
    }
    for (int b = 0; b < n; b++) {
        const float *a = A + (size_t)b * C * hw;
        const float *img = input + (size_t)b * 3 * HWi;
        for (size_t k = 0; k < C; k++) {
            double s = 0.0;
            for (size_t i = 0; i < hw; i++)
                s += a[k * hw + i];
            rank[k].mean = s / (double)hw;
            rank[k].idx = (int)k;
        }
        if (nsel < c)
            qsort(rank, C, sizeof *rank, kdc__rank_cmp);
        for (int j0 = 0; j0 < nsel; j0 += batch) {
            const int nb = nsel - j0 < batch ? nsel - j0 : batch;
            for (int j = 0; j < nb; j++) {
                const size_t k = (size_t)rank[j0 + j].idx;
                kdc__upsample_align_corners(a + k * hw, h, w, up, H, W);
                float mn = up[0], mx = up[0];
                for (size_t i = 1; i < HWi; i++) {
                    mn = up[i] < mn ? up[i] : mn;
                    mx = up[i] > mx ? up[i] : mx;
                }
                const float range = mx - mn;
                for (size_t i = 0; i < HWi; i++)
                    up[i] = range > 0.0f ? (up[i] - mn) / range : 0.0f;
                float *dst = masked + (size_t)j * 3 * HWi;
                for (size_t ch = 0; ch < 3; ch++)
                    for (size_t i = 0; i < HWi; i++)
                        dst[ch * HWi + i] = img[ch * HWi + i] * up[i];
            }
            if ((st = kdc_run_forward(run, masked, nb, H, W, NULL, 0)))
                goto out_free;
            if ((st = kdc_run_read_layer(run, last, logits, (size_t)nb * K)))
                goto out_free;
            for (int j = 0; j < nb; j++)
                score[j0 + j] = kdc__class_score(logits + (size_t)j * K, K, classes[b], kind);
        }
        /* softmax over the selected channels */
        double mx = score[0], sum = 0.0;
        for (int j = 1; j < nsel; j++)
            mx = score[j] > mx ? score[j] : mx;
        for (int j = 0; j < nsel; j++) {
            score[j] = exp(score[j] - mx);
            sum += score[j];
        }
        for (size_t i = 0; i < hw; i++)
            acc[i] = 0.0;
        for (int j = 0; j < nsel; j++) {
            const double wk = score[j] / sum;
            const float *ak = a + (size_t)rank[j].idx * hw;
            for (size_t i = 0; i < hw; i++)
                acc[i] += wk * ak[i];
        }
        for (size_t i = 0; i < hw; i++)
            raw[(size_t)b * hw + i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f;
    }
out_free:
    free(rank);
    free(score);
    free(acc);
    free(up);
    free(masked);
    free(logits);
    return st;
}

/* Ablation-CAM of one layer: y = the clean target score, y_k = the score
 * with channel k of the layer's output set to 0 (the network re-run from
 * that layer up, all n images per pass); w_k = (y - y_k) / y;
 * cam = relu(sum_k w_k A_k).
 * Differs from pytorch-grad-cam: its AblationLayer writes a large negative
 * value (-1e7 by default) into the ablated channel instead of 0; the
 * reference facts of libkdcam define ablation as zeroing, which keeps the
 * ablated activation a value the layer can produce. A clean score of
 * exactly 0 gives zero weights (NaN/inf there). */
static kdc_status kdc__ablation_layer(kdc_run *run, int layer, const float *A, int n, int c,
                                      size_t hw, const int *classes, kdc_target_kind kind,
                                      const double *y, int K, float *raw)
{
    const size_t C = (size_t)c, numel = (size_t)n * C * hw;
    float *work = malloc(numel * sizeof *work);
    float *logits = malloc((size_t)n * K * sizeof *logits);
    double *wt = malloc((size_t)n * C * sizeof *wt);
    double *acc = malloc(hw * sizeof *acc);
    kdc_status st = KDC_OK;
    if (!work || !logits || !wt || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "ablationcam: out of memory");
        goto out_free;
    }
    memcpy(work, A, numel * sizeof *work);
    for (size_t k = 0; k < C; k++) {
        for (int b = 0; b < n; b++)
            memset(work + ((size_t)b * C + k) * hw, 0, hw * sizeof *work);
        if ((st = kdc__run_forward_from(run, layer, work, logits)))
            goto out_free;
        for (int b = 0; b < n; b++) {
            const double yk = kdc__class_score(logits + (size_t)b * K, K, classes[b], kind);
            wt[(size_t)b * C + k] = y[b] != 0.0 ? (y[b] - yk) / y[b] : 0.0;
            memcpy(work + ((size_t)b * C + k) * hw, A + ((size_t)b * C + k) * hw,
                   hw * sizeof *work);
        }
    }
    for (int b = 0; b < n; b++) {
        for (size_t i = 0; i < hw; i++)
            acc[i] = 0.0;
        for (size_t k = 0; k < C; k++) {
            const double wk = wt[(size_t)b * C + k];
            const float *ak = A + ((size_t)b * C + k) * hw;
            for (size_t i = 0; i < hw; i++)
                acc[i] += wk * ak[i];
        }
        for (size_t i = 0; i < hw; i++)
            raw[(size_t)b * hw + i] = acc[i] > 0.0 ? (float)acc[i] : 0.0f;
    }
out_free:
    free(work);
    free(logits);
    free(wt);
    free(acc);
    return st;
}

/* Makes kdc__run_forward_from possible at every layer up to top: it needs
 * the last forward pass to have kept each layer below the restart point
 * that a layer above it reads (a residual join inside a block). The clean
 * pass keeps only the target layers, which is enough for block and stage
 * outputs; when it is not, the clean pass is re-run keeping layers
 * 0..top (same input, same values). */
static kdc_status kdc__prepare_forward_from(kdc_run *run, const float *input, int n, int H, int W,
                                            const int *layers, int nlayers, float *scratch_act,
                                            size_t scratch_count, float *logits)
{
    int top = layers[0];
    for (int l = 1; l < nlayers; l++)
        top = layers[l] > top ? layers[l] : top;
    int need_all = 0;
    char saved[1024]; /* the trial's KDC_ERR_STATE message is not an error of the call */
    snprintf(saved, sizeof saved, "%s", kdc_last_error());
    for (int l = 0; l < nlayers && !need_all; l++) {
        /* a trial pass with the layer's own activation changes nothing */
        kdc_status st = kdc_run_read_layer(run, layers[l], scratch_act, scratch_count);
        if (st)
            return st;
        st = kdc__run_forward_from(run, layers[l], scratch_act, logits);
        if (st == KDC_ERR_STATE)
            need_all = 1;
        else if (st)
            return st;
    }
    if (!need_all)
        return KDC_OK;
    int *keep = malloc(((size_t)top + 1) * sizeof *keep);
    if (!keep)
        return kdc__fail(KDC_ERR_NO_MEMORY, "ablationcam: out of memory");
    for (int i = 0; i <= top; i++)
        keep[i] = i;
    kdc_status st = kdc_run_forward(run, input, n, H, W, keep, top + 1);
    free(keep);
    if (!st)
        kdc__fail(KDC_OK, "%s", saved);
    return st;
}

/* pytorch-grad-cam's post-processing of the per-layer raw maps (already
 * ReLU'd, n x raw_h[l] x raw_w[l] each): per layer scale_cam_image with
 * resize to out_h x out_w (kdc_cam_normalize_resize); then max(0), the
 * mean over the layers (float sum in layer order, divided by the count, as
 * NumPy's float32 mean), and scale_cam_image again without resize. So even
 * one layer is normalised twice, the second time at full size. tmp holds
 * n x out_h x out_w floats of scratch. Internal (not static) so that
 * tests/test_cam.c can check the chain on its own; prototype there. */
kdc_status kdc__cam_aggregate(const float *const *raw, const int *raw_h, const int *raw_w,
                              int nlayers, int n, int out_h, int out_w, float *tmp, float *map);
kdc_status kdc__cam_aggregate(const float *const *raw, const int *raw_h, const int *raw_w,
                              int nlayers, int n, int out_h, int out_w, float *tmp, float *map)
{
    const size_t HW = (size_t)out_h * out_w, total = (size_t)n * HW;
    kdc_status st;
    for (size_t i = 0; i < total; i++)
        map[i] = 0.0f;
    for (int l = 0; l < nlayers; l++) {
        if ((st = kdc_cam_normalize_resize(raw[l], n, raw_h[l], raw_w[l], out_h, out_w, tmp)))
            return st;
        for (size_t i = 0; i < total; i++)
            map[i] += tmp[i] > 0.0f ? tmp[i] : 0.0f;
    }
    for (size_t i = 0; i < total; i++)
        map[i] /= (float)nlayers;
    for (int b = 0; b < n; b++)
        kdc__minmax_plane(map + (size_t)b * HW, map + (size_t)b * HW, HW);
    return KDC_OK;
}

kdc_status kdc_cam_compute(kdc_run *run, const float *input, int n, int in_h, int in_w,
                           const kdc_cam_options *opt, kdc_cam_result **out)
{
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_compute: out is NULL");
    *out = NULL;
    if (!run || !input || !opt)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_compute: %s is NULL",
                         !run ? "run" : !input ? "input" : "opt");
    const kdc_cam_method method = opt->method;
    if ((int)method < 0 || (int)method >= KDC_CAM_COUNT)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "CAM method %d is out of range 0..%d",
                         (int)method, KDC_CAM_COUNT - 1);
    const char *mname = kdc__cam_names[method];
    const int L = opt->nlayers;
    if (L < 1 || L > KDC_CAM_MAX_LAYERS)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: %d target layers, expected 1..%d", mname,
                         L, KDC_CAM_MAX_LAYERS);
    if (!opt->layers)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: the layer list is NULL", mname);
    if (n < 1 || in_h < 1 || in_w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "%s: bad input shape %dx3x%dx%d", mname, n, in_h, in_w);
    const int model_based = method == KDC_CAM_SCORECAM || method == KDC_CAM_ABLATIONCAM;
    if (model_based && opt->target.kind != KDC_TARGET_LOGIT &&
        opt->target.kind != KDC_TARGET_PROB)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s needs a class target (logit or "
                         "probability), not a seed target", mname);
    if (opt->scorecam_topk < 0 || opt->scorecam_batch < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: scorecam_%s %d is negative", mname,
                         opt->scorecam_topk < 0 ? "topk" : "batch",
                         opt->scorecam_topk < 0 ? opt->scorecam_topk : opt->scorecam_batch);

    const int grads = kdc__needs_grad(method);
    const size_t HW = (size_t)in_h * in_w;
    float *act[KDC_CAM_MAX_LAYERS] = {0}, *grad[KDC_CAM_MAX_LAYERS] = {0};
    int shape[KDC_CAM_MAX_LAYERS][4];
    float *tmp = NULL, *logits = NULL, *scratch = NULL;
    double *y = NULL;
    kdc_status st;
    kdc_cam_result *res = calloc(1, sizeof *res);
    if (!res)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
    res->n = n;
    res->in_h = in_h;
    res->in_w = in_w;
    res->nlayers = L;
    res->classes = malloc((size_t)n * sizeof *res->classes);
    res->map = malloc((size_t)n * HW * sizeof *res->map);
    tmp = malloc((size_t)n * HW * sizeof *tmp);
    if (!res->classes || !res->map || !tmp) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for %d maps of %dx%d", mname, n,
                       in_h, in_w);
        goto fail;
    }

    /* clean pass: activations (and gradients) of the target layers */
    int lowest = opt->layers[0];
    for (int l = 1; l < L; l++)
        lowest = opt->layers[l] < lowest ? opt->layers[l] : lowest;
    if ((st = kdc_run_forward_grad(run, input, n, in_h, in_w, opt->layers, L, lowest)))
        goto fail;
    size_t max_act = 0;
    for (int l = 0; l < L; l++) {
        int *s = shape[l];
        if ((st = kdc_run_layer_shape(run, opt->layers[l], s)))
            goto fail;
        if ((size_t)s[2] * (size_t)s[3] <= 1) {
            st = kdc__fail(KDC_ERR_SHAPE, "%s: target layer %s has output %dx%dx%d (C x H x W), "
                           "no spatial extent: choose a convolutional layer", mname,
                           kdc_model_layer_name(kdc__run_model(run), opt->layers[l]), s[1], s[2],
                           s[3]);
            goto fail;
        }
        const size_t numel = (size_t)n * s[1] * s[2] * s[3];
        max_act = numel > max_act ? numel : max_act;
        res->raw_h[l] = s[2];
        res->raw_w[l] = s[3];
        res->raw[l] = malloc((size_t)n * s[2] * s[3] * sizeof(float));
        act[l] = malloc(numel * sizeof(float));
        if (grads)
            grad[l] = malloc(numel * sizeof(float));
        if (!res->raw[l] || !act[l] || (grads && !grad[l])) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for layer %d (%zu values)",
                           mname, opt->layers[l], numel);
            goto fail;
        }
        if ((st = kdc_run_read_layer(run, opt->layers[l], act[l], numel)))
            goto fail;
    }
    const int last = kdc__last_layer(run);
    int lshape[4];
    if ((st = kdc_run_layer_shape(run, last, lshape)))
        goto fail;
    const int K = lshape[1];
    if (method == KDC_CAM_ABLATIONCAM) {
        logits = malloc((size_t)n * K * sizeof *logits);
        y = malloc((size_t)n * sizeof *y);
        if (!logits || !y) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
            goto fail;
        }
        if ((st = kdc_run_read_layer(run, last, logits, (size_t)n * K)))
            goto fail;
    }
    /* the backward pass also fixes the target classes (top-1 if NULL) */
    if ((st = kdc_run_backward(run, &opt->target, grads ? opt->layers : NULL, grads ? L : 0, 0)))
        goto fail;
    if ((st = kdc_run_target_classes(run, res->classes, n)))
        goto fail;
    for (int l = 0; l < L && grads; l++)
        if ((st = kdc_run_read_grad(run, opt->layers[l], grad[l],
                                    (size_t)n * shape[l][1] * shape[l][2] * shape[l][3])))
            goto fail;

    if (method == KDC_CAM_ABLATIONCAM) {
        for (int b = 0; b < n; b++)
            y[b] = kdc__class_score(logits + (size_t)b * K, K, res->classes[b], opt->target.kind);
        scratch = malloc(max_act * sizeof *scratch);
        if (!scratch) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", mname);
            goto fail;
        }
        if ((st = kdc__prepare_forward_from(run, input, n, in_h, in_w, opt->layers, L, scratch,
                                            max_act, logits)))
            goto fail;
    }
    /* Ablation passes leave the outputs above their layer modified, so the
     * layers are processed from the highest index down: a later (lower)
     * layer re-runs everything above itself from its own activation. */
    int order[KDC_CAM_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        order[l] = l;
    for (int i = 1; i < L; i++)
        for (int j = i; j > 0 && opt->layers[order[j]] > opt->layers[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int oi = 0; oi < L; oi++) {
        const int l = order[oi];
        const int *s = shape[l];
        if (method == KDC_CAM_SCORECAM)
            st = kdc__scorecam_layer(run, input, n, in_h, in_w, act[l], s[1], s[2], s[3],
                                     res->classes, opt->target.kind, opt->scorecam_topk,
                                     opt->scorecam_batch ? opt->scorecam_batch : 32, last, K,
                                     res->raw[l]);
        else if (method == KDC_CAM_ABLATIONCAM)
            st = kdc__ablation_layer(run, opt->layers[l], act[l], n, s[1], (size_t)s[2] * s[3],
                                     res->classes, opt->target.kind, y, K, res->raw[l]);
        else
            st = kdc_cam_from_maps(method, act[l], grad[l], n, s[1], s[2], s[3], res->raw[l]);
        if (st) {
            kdc__fail_context(st, "%s at layer %d", mname, opt->layers[l]);
            goto fail;
        }
    }

    if ((st = kdc__cam_aggregate((const float *const *)res->raw, res->raw_h, res->raw_w, L, n,
                                 in_h, in_w, tmp, res->map)))
        goto fail;

    for (int l = 0; l < L; l++) {
        free(act[l]);
        free(grad[l]);
    }
    free(tmp);
    free(logits);
    free(scratch);
    free(y);
    *out = res;
    return KDC_OK;
fail:
    for (int l = 0; l < L; l++) {
        free(act[l]);
        free(grad[l]);
    }
    free(tmp);
    free(logits);
    free(scratch);
    free(y);
    kdc_cam_result_destroy(res);
    return st;
}

/* ------------------------------------------------------------------ */
/* Input attributions                                                  */

/* splitmix64 (Steele, Lea, Flood 2014): the noise source of SmoothGrad. */
static uint64_t kdc__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct kdc__gauss {
    uint64_t state;
    int has_spare;
    double spare;
} kdc__gauss;

/* Standard normal deviates by Box-Muller, in pairs: u1 = (r1 >> 11 + 1) /
 * 2^53 in (0, 1], u2 = (r2 >> 11) / 2^53 in [0, 1); rad = sqrt(-2 ln u1);
 * first rad cos(2 pi u2), then rad sin(2 pi u2). */
static double kdc__gauss_next(kdc__gauss *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    const double u1 = (double)((kdc__splitmix64(&g->state) >> 11) + 1) * 0x1.0p-53;
    const double u2 = (double)(kdc__splitmix64(&g->state) >> 11) * 0x1.0p-53;
    const double rad = sqrt(-2.0 * log(u1));
    const double two_pi = 6.283185307179586476925286766559;
    g->spare = rad * sin(two_pi * u2);
    g->has_spare = 1;
    return rad * cos(two_pi * u2);
}

/* One plain input gradient of x for target tg, into g. */
static kdc_status kdc__input_grad(kdc_run *run, const float *x, int n, int h, int w,
                                  const kdc_target *tg, int guided, float *g, size_t numel)
{
    const int input_layer = 0;
    kdc_status st = kdc_run_forward_grad(run, x, n, h, w, NULL, 0, 0);
    if (!st)
        st = kdc_run_backward(run, tg, &input_layer, 1, guided);
    if (!st)
        st = kdc_run_read_grad(run, 0, g, numel);
    return st;
}

/* SALIENCY / GUIDED: one backward to the input (guided: every ReLU passes
 * only positive gradients where its input was active).
 * SMOOTHGRAD: the mean input gradient over `samples` (default 25) noisy
 * copies x + N(0, sigma^2), sigma = noise * (max(x) - min(x)) of each image
 * (noise default 0.15); the noise is Box-Muller on splitmix64 seeded with
 * opt->seed, drawn in NCHW order, sample after sample.
 * INTEGRATED: integrated gradients from the zero baseline with the right
 * Riemann sum (captum's "riemann_right"): x * mean_{k=1..m} grad(k/m * x),
 * m = samples (default 32).
 * For both, a class target without classes is fixed to each clean image's
 * top-1 class first, so every sample differentiates the same class. */
kdc_status kdc_attribution_compute(kdc_run *run, const float *input, int n, int h, int w,
                                   const kdc_attribution_options *opt, float *out)
{
    if (!run || !input || !opt || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_attribution_compute: %s is NULL",
                         !run ? "run" : !input ? "input" : !opt ? "opt" : "out");
    if ((int)opt->kind < KDC_ATTR_SALIENCY || (int)opt->kind > KDC_ATTR_INTEGRATED)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "attribution kind %d is out of range 0..%d",
                         (int)opt->kind, (int)KDC_ATTR_INTEGRATED);
    if (opt->samples < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "attribution: samples %d is negative",
                         opt->samples);
    if (!(opt->noise >= 0.0f) || !isfinite(opt->noise))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "smoothgrad: noise %g is not a finite "
                         "value >= 0", (double)opt->noise);
    if (n < 1 || h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "attribution: bad input shape %dx3x%dx%d", n, h, w);
    const size_t img = 3 * (size_t)h * w, numel = (size_t)n * img;

    if (opt->kind == KDC_ATTR_SALIENCY || opt->kind == KDC_ATTR_GUIDED)
        return kdc__input_grad(run, input, n, h, w, &opt->target,
                               opt->kind == KDC_ATTR_GUIDED, out, numel);

    kdc_target tg = opt->target;
    int *cls = NULL;
    float *x = malloc(numel * sizeof *x), *g = malloc(numel * sizeof *g);
    double *acc = calloc(numel, sizeof *acc);
    kdc_status st = KDC_OK;
    if (!x || !g || !acc) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "attribution: out of memory");
        goto out_free;
    }
    if ((tg.kind == KDC_TARGET_LOGIT || tg.kind == KDC_TARGET_PROB) && !tg.classes) {
        cls = malloc((size_t)n * sizeof *cls);
        if (!cls) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "attribution: out of memory");
            goto out_free;
        }
        if ((st = kdc_run_forward_grad(run, input, n, h, w, NULL, 0, 0)) ||
            (st = kdc_run_backward(run, &tg, NULL, 0, 0)) ||
            (st = kdc_run_target_classes(run, cls, n)))
            goto out_free;
        tg.classes = cls;
    }
    if (opt->kind == KDC_ATTR_SMOOTHGRAD) {
        const int S = opt->samples ? opt->samples : 25;
        const double noise = opt->noise > 0.0f ? opt->noise : 0.15;
        kdc__gauss rng = {.state = opt->seed};
        for (int s = 0; s < S; s++) {
            for (int b = 0; b < n; b++) {
                const float *xb = input + (size_t)b * img;
                float mn = xb[0], mx = xb[0];
                for (size_t i = 1; i < img; i++) {
                    mn = xb[i] < mn ? xb[i] : mn;
                    mx = xb[i] > mx ? xb[i] : mx;
                }
                const double sigma = noise * ((double)mx - (double)mn);
                for (size_t i = 0; i < img; i++)
                    x[(size_t)b * img + i] = xb[i] + (float)(sigma * kdc__gauss_next(&rng));
            }
            if ((st = kdc__input_grad(run, x, n, h, w, &tg, 0, g, numel)))
                goto out_free;
            for (size_t i = 0; i < numel; i++)
                acc[i] += g[i];
        }
        for (size_t i = 0; i < numel; i++)
            out[i] = (float)(acc[i] / S);
    } else {
        const int S = opt->samples ? opt->samples : 32;
        for (int k = 1; k <= S; k++) {
            const float alpha = (float)((double)k / S);
            for (size_t i = 0; i < numel; i++)
                x[i] = alpha * input[i];
            if ((st = kdc__input_grad(run, x, n, h, w, &tg, 0, g, numel)))
                goto out_free;
            for (size_t i = 0; i < numel; i++)
                acc[i] += g[i];
        }
        for (size_t i = 0; i < numel; i++)
            out[i] = (float)((double)input[i] * acc[i] / S);
    }
out_free:
    free(x);
    free(g);
    free(acc);
    free(cls);
    return st;
}
