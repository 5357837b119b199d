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

/* y = M x over the removed pixels: M_ii = sum of the weights of i's
 * neighbours inside the image, M_ij = -w_ij for a removed neighbour j (the
 * source's system matrix negated: symmetric positive definite when some
 * pixel is kept). Entries of kept pixels are left 0. */
static void kdc__road_apply(const unsigned char *rm, const double *diag, int h, int w,
                            const double *x, double *y)
{
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            const size_t i = (size_t)r * w + c;
            if (!rm[i]) {
                y[i] = 0;
                continue;
            }
            double s = diag[i] * x[i];
            for (int k = 0; k < 8; k++) {
                const int rr = r + kdc__nb[k][0], cc = c + kdc__nb[k][1];
                if (rr >= 0 && rr < h && cc >= 0 && cc < w && rm[(size_t)rr * w + cc])
                    s -= kdc__nw[k] * x[(size_t)rr * w + cc];
            }
            y[i] = s;
        }
}

kdc_status kdc_road_impute(const float *image, const unsigned char *remove, int h, int w,
                           const float *noise, double noise_std, float *out)
{
    if (!image || !remove || !out || h < 1 || w < 1 || (size_t)h * w > (size_t)1 << 28 ||
        (noise && !(noise_std >= 0)))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD imputation: bad arguments (%dx%d)",
                         h, w);
    const size_t n = (size_t)h * w;
    size_t nrm = 0;
    for (size_t i = 0; i < n; i++)
        nrm += remove[i] != 0;
    if (nrm == n)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ROAD imputation: every pixel is removed, "
                         "so nothing is left to impute from (a constant map?)");
    memcpy(out, image, 3 * n * sizeof *out);
    if (!nrm)
        return KDC_OK;
    unsigned char *rm = malloc(n);
    double *buf = malloc(6 * n * sizeof *buf);
    if (!rm || !buf) {
        free(rm);
        free(buf);
        return kdc__fail(KDC_ERR_NO_MEMORY, "ROAD imputation: out of memory (%dx%d)", h, w);
    }
    /* (n) each: diagonal, solution, residual, direction, M p, right-hand side */
    double *diag = buf, *x = buf + n, *res = buf + 2 * n, *p = buf + 3 * n, *q = buf + 4 * n,
           *rhs = buf + 5 * n;
    for (size_t i = 0; i < n; i++)
        rm[i] = remove[i] != 0;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            double s = 0;
            for (int k = 0; k < 8; k++) {
                const int rr = r + kdc__nb[k][0], cc = c + kdc__nb[k][1];
                s += rr >= 0 && rr < h && cc >= 0 && cc < w ? kdc__nw[k] : 0.0;
            }
            diag[(size_t)r * w + c] = s;
        }
    kdc_status st = KDC_OK;
    for (int ch = 0; ch < 3 && !st; ch++) {
        const float *img = image + (size_t)ch * n;
        double bb = 0, rr_old = 0, zr = 0;
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++) {
                const size_t i = (size_t)r * w + c;
                double s = 0;
                if (rm[i])
                    for (int k = 0; k < 8; k++) {
                        const int r2 = r + kdc__nb[k][0], c2 = c + kdc__nb[k][1];
                        if (r2 >= 0 && r2 < h && c2 >= 0 && c2 < w && !rm[(size_t)r2 * w + c2])
                            s += kdc__nw[k] * img[(size_t)r2 * w + c2];
                    }
                rhs[i] = s;
                bb += s * s;
            }
        /* Jacobi-preconditioned conjugate gradients from x = 0 */
        zr = 0;
        for (size_t i = 0; i < n; i++) {
            x[i] = 0;
            res[i] = rhs[i];
            p[i] = rm[i] ? res[i] / diag[i] : 0;
            zr += res[i] * p[i];
        }
        const double tol2 = bb * 1e-26; /* |r| <= 1e-13 |b| */
        rr_old = bb;
        const long maxit = 10 * (long)nrm + 100;
        long it = 0;
        for (; it < maxit && rr_old > tol2; it++) {
            kdc__road_apply(rm, diag, h, w, p, q);
            double pq = 0;
            for (size_t i = 0; i < n; i++)
                pq += p[i] * q[i];
            if (!(pq > 0))
                break;
            const double alpha = zr / pq;
            double zr_new = 0, rr = 0;
            for (size_t i = 0; i < n; i++) {
                x[i] += alpha * p[i];
                res[i] -= alpha * q[i];
                rr += res[i] * res[i];
                zr_new += rm[i] ? res[i] * res[i] / diag[i] : 0;
            }
            const double beta = zr_new / zr;
            for (size_t i = 0; i < n; i++)
                p[i] = rm[i] ? res[i] / diag[i] + beta * p[i] : 0;
            zr = zr_new;
            rr_old = rr;
        }
        if (rr_old > tol2 && bb > 0)
            st = kdc__fail(KDC_ERR_UNSUPPORTED, "ROAD imputation: conjugate gradients did not "
                           "converge in %ld iterations (%dx%d, %zu removed)", it, h, w, nrm);
        float *o = out + (size_t)ch * n;
        for (size_t i = 0; i < n && !st; i++)
            if (rm[i])
                o[i] = (float)(x[i] + (noise ? noise_std * noise[(size_t)ch * n + i] : 0.0));
    }
    free(rm);
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
