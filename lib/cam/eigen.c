/* eigen.c - the principal component of a layer's channels, for Eigen-CAM,
 * EigenGrad-CAM and the PCA feature map: a symmetric eigensolver in double
 * (Householder tridiagonalisation, bisection on Sturm counts, inverse
 * iteration), its sign fixed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

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
int kdc__sym_top_eigvec(double *S, int m, double *v, double *lambda)
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
kdc_status kdc__pca_project(const float *A, const float *G, int c, int hw, float *out)
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
