/* road.c - ROAD, RemOve And Debias (Rong et al. 2022, "A consistent and
 * efficient evaluation strategy for attribution methods"), as
 * pytorch-grad-cam's metrics/road.py computes it: the pixels at or above a
 * percentile of the map (most relevant first) or of 1 - map (least relevant
 * first) are removed and filled by noisy linear imputation: each removed
 * pixel equals the weighted mean of its 8 neighbours inside the image
 * (weight 1/6 for the 4 direct ones, 1/12 for the diagonals), a sparse
 * linear system per channel, solved here by conjugate gradients; then
 * Gaussian noise (std 0.01 in the source) is added to the removed pixels.
 * The noise comes from a seeded generator (splitmix64 and Box-Muller) so a
 * run is reproducible and a reference can be given the same values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

kdc_status kdc_road_mask(const float *map, int h, int w, double percentile,
                         int most_relevant_first, unsigned char *remove)
{
    if (!map || !remove || h < 1 || w < 1 || (size_t)h * w > (size_t)1 << 28 ||
        !(percentile >= 0 && percentile <= 100))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD mask: bad arguments (%dx%d map, "
                         "percentile %g)", h, w, percentile);
    const size_t n = (size_t)h * w;
    kdc__ranked *r = malloc(n * sizeof *r);
    if (!r)
        return kdc__fail(KDC_ERR_NO_MEMORY, "ROAD mask: out of memory");
    /* least relevant first ranks 1 - map, in float32 as the source does */
    for (size_t i = 0; i < n; i++) {
        r[i].v = most_relevant_first ? map[i] : 1.0f - map[i];
        r[i].i = i;
    }
    qsort(r, n, sizeof *r, kdc__ranked_desc);
    /* the source removes v >= np.percentile(v, p): without ties at the
     * threshold that is the n - ceil(p (n - 1) / 100) largest; with ties,
     * those by position (the source would take every tie, e.g. a whole
     * zero plateau, and can leave nothing to impute from) */
    const size_t k = n - (size_t)ceil(percentile / 100.0 * (double)(n - 1));
    memset(remove, 0, n);
    for (size_t j = 0; j < k; j++)
        remove[r[j].i] = 1;
    free(r);
    return KDC_OK;
}

static uint64_t kdc__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

kdc_status kdc_road_noise(uint64_t seed, size_t n, float *out)
{
    if (!out && n)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD noise: NULL output");
    uint64_t st = seed;
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        /* u1 in (0, 1], u2 in [0, 1): 53-bit uniforms */
        const double u1 = (double)((kdc__splitmix64(&st) >> 11) + 1) * 0x1p-53;
        const double u2 = (double)(kdc__splitmix64(&st) >> 11) * 0x1p-53;
        const double r = sqrt(-2.0 * log(u1));
        out[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n)
            out[i + 1] = (float)(r * sin(two_pi * u2));
    }
    return KDC_OK;
}

/* The 8 neighbours and their weights (the source's neighbors_weights). */
static const int kdc__nb[8][2] = {{1, 1}, {0, 1}, {-1, 1}, {1, -1}, {0, -1}, {-1, -1}, {1, 0},
                                  {-1, 0}};
static const double kdc__nw[8] = {1.0 / 12, 1.0 / 6, 1.0 / 12, 1.0 / 12, 1.0 / 6, 1.0 / 12,
                                  1.0 / 6, 1.0 / 6};

/* The system over the m removed pixels (the source's matrix negated, so
 * symmetric positive definite when some pixel is kept): M_uu = the sum of
 * the weights of u's neighbours inside the image, M_uv = -w for a removed
 * neighbour v. Stored by rows: up to 8 neighbours each. */
typedef struct kdc__road_sys {
    size_t m;
    size_t *pix;   /* (m) the pixel of each unknown          */
    int32_t *nb;   /* (m, 8) removed neighbours' unknowns, -1 */
    double *nw;    /* (m, 8) their weights                   */
    double *diag;  /* (m)                                    */
} kdc__road_sys;

static void kdc__road_apply(const kdc__road_sys *S, const double *x, double *y)
{
    for (size_t u = 0; u < S->m; u++) {
        double s = S->diag[u] * x[u];
        for (int k = 0; k < 8 && S->nb[u * 8 + k] >= 0; k++)
            s -= S->nw[u * 8 + k] * x[S->nb[u * 8 + k]];
        y[u] = s;
    }
}

/* Jacobi-preconditioned conjugate gradients from x = 0 to |r| <= 1e-13 |b|. */
static kdc_status kdc__road_cg(const kdc__road_sys *S, const double *b, double *x, double *work,
                               int h, int w)
{
    const size_t m = S->m;
    double *r = work, *p = work + m, *q = work + 2 * m;
    double bb = 0, zr = 0;
    for (size_t u = 0; u < m; u++) {
        x[u] = 0;
        r[u] = b[u];
        p[u] = r[u] / S->diag[u];
        zr += r[u] * p[u];
        bb += b[u] * b[u];
    }
    const double tol2 = bb * 1e-26;
    double rr = bb;
    const long maxit = 10 * (long)m + 100;
    long it = 0;
    for (; it < maxit && rr > tol2; it++) {
        kdc__road_apply(S, p, q);
        double pq = 0;
        for (size_t u = 0; u < m; u++)
            pq += p[u] * q[u];
        if (!(pq > 0))
            break;
        const double alpha = zr / pq;
        double zr_new = 0;
        rr = 0;
        for (size_t u = 0; u < m; u++) {
            x[u] += alpha * p[u];
            r[u] -= alpha * q[u];
            rr += r[u] * r[u];
            zr_new += r[u] * r[u] / S->diag[u];
        }
        const double beta = zr_new / zr;
        for (size_t u = 0; u < m; u++)
            p[u] = r[u] / S->diag[u] + beta * p[u];
        zr = zr_new;
    }
    if (rr > tol2)
        return kdc__fail(KDC_ERR_UNSUPPORTED, "ROAD imputation: conjugate gradients did not "
                         "converge in %ld iterations (%dx%d, %zu removed)", it, h, w, m);
    return KDC_OK;
}

kdc_status kdc_road_impute(const float *image, const unsigned char *remove, int h, int w,
                           const float *noise, double noise_std, float *out)
{
    if (!image || !remove || !out || h < 1 || w < 1 || (size_t)h * w > (size_t)1 << 28 ||
        (noise && !(noise_std >= 0)))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD imputation: bad arguments (%dx%d)",
                         h, w);
    const size_t n = (size_t)h * w;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += remove[i] != 0;
    if (m == n)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD imputation: every pixel is removed, "
                         "so nothing is left to impute from (a constant map?)");
    memcpy(out, image, 3 * n * sizeof *out);
    if (!m)
        return KDC_OK;
    kdc__road_sys S = {.m = m};
    int32_t *vid = malloc(n * sizeof *vid);
    S.pix = malloc(m * sizeof *S.pix);
    S.nb = malloc(m * 8 * sizeof *S.nb);
    S.nw = malloc(m * 8 * sizeof *S.nw);
    S.diag = malloc(m * sizeof *S.diag);
    double *buf = malloc(5 * m * sizeof *buf); /* rhs, x, CG work (3 m) */
    kdc_status st = KDC_OK;
    if (!vid || !S.pix || !S.nb || !S.nw || !S.diag || !buf) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "ROAD imputation: out of memory (%dx%d)", h, w);
        goto cleanup;
    }
    for (size_t i = 0, u = 0; i < n; i++) {
        vid[i] = remove[i] ? (int32_t)u : -1;
        if (remove[i])
            S.pix[u++] = i;
    }
    for (size_t u = 0; u < m; u++) {
        const int r = (int)(S.pix[u] / (size_t)w), c = (int)(S.pix[u] % (size_t)w);
        int k2 = 0;
        S.diag[u] = 0;
        for (int k = 0; k < 8; k++) {
            const int rr = r + kdc__nb[k][0], cc = c + kdc__nb[k][1];
            if (rr < 0 || rr >= h || cc < 0 || cc >= w)
                continue;
            S.diag[u] += kdc__nw[k];
            const int32_t v = vid[(size_t)rr * w + cc];
            if (v >= 0) {
                S.nb[u * 8 + k2] = v;
                S.nw[u * 8 + k2++] = kdc__nw[k];
            }
        }
        for (; k2 < 8; k2++)
            S.nb[u * 8 + k2] = -1;
    }
    double *rhs = buf, *x = buf + m;
    for (int ch = 0; ch < 3 && !st; ch++) {
        const float *img = image + (size_t)ch * n;
        for (size_t u = 0; u < m; u++) { /* the kept neighbours' weighted values */
            const int r = (int)(S.pix[u] / (size_t)w), c = (int)(S.pix[u] % (size_t)w);
            double sum = 0;
            for (int k = 0; k < 8; k++) {
                const int rr = r + kdc__nb[k][0], cc = c + kdc__nb[k][1];
                if (rr >= 0 && rr < h && cc >= 0 && cc < w && vid[(size_t)rr * w + cc] < 0)
                    sum += kdc__nw[k] * img[(size_t)rr * w + cc];
            }
            rhs[u] = sum;
        }
        if ((st = kdc__road_cg(&S, rhs, x, buf + 2 * m, h, w)))
            break;
        float *o = out + (size_t)ch * n;
        for (size_t u = 0; u < m; u++)
            o[S.pix[u]] = (float)(x[u] + (noise ? noise_std * noise[(size_t)ch * n + S.pix[u]]
                                                : 0.0));
    }
cleanup:
    free(vid);
    free(S.pix);
    free(S.nb);
    free(S.nw);
    free(S.diag);
    free(buf);
    return st;
}

kdc_status kdc_road_perturb(const float *image, const float *map, int h, int w,
                            double percentile, int most_relevant_first, double noise_std,
                            uint64_t seed, float *out)
{
    if (!image || !map || !out || h < 1 || w < 1 || (size_t)h * w > (size_t)1 << 28)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD: bad arguments (%dx%d)", h, w);
    const size_t n = (size_t)h * w;
    unsigned char *rm = malloc(n);
    float *noise = noise_std > 0 ? malloc(3 * n * sizeof *noise) : NULL;
    kdc_status st;
    if (!rm || (noise_std > 0 && !noise))
        st = kdc__fail(KDC_ERR_NO_MEMORY, "ROAD: out of memory (%dx%d)", h, w);
    else if (!(st = kdc_road_mask(map, h, w, percentile, most_relevant_first, rm)) &&
             (!noise || !(st = kdc_road_noise(seed, 3 * n, noise))))
        st = kdc_road_impute(image, rm, h, w, noise, noise_std, out);
    free(rm);
    free(noise);
    return st;
}
