/* kd_dist.c - per-image distances between a teacher's and a student's
 * feature maps, as two distillation losses define them:
 *  - ICKD (Liu et al. 2021, inter-channel correlation): G = F F^T over
 *    channels (c x c, F is c x hw), each row L2-normalised, distance
 *    sum((G_s - G_t)^2) / c. ICKD matches widths with a learned 1x1
 *    convolution; without one, the wider map's channels are averaged in c
 *    contiguous groups (adaptive average pooling along channels).
 *  - Attention transfer (Zagoruyko and Komodakis 2017): Q = sum_c F_c^2,
 *    flattened and L2-normalised, distance |Q_t - Q_s|_2; where the spatial
 *    sizes differ the larger map is first average-pooled to the smaller
 *    (adaptive average pooling per axis, as RepDistiller's AT loss does).
 * All sums in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Adaptive average pooling of n values into m bins: bin g averages
 * [floor(g n / m), ceil((g + 1) n / m)), as torch's adaptive pooling. */
static void kdc__bin(size_t n, size_t m, size_t g, size_t *a, size_t *b)
{
    *a = g * n / m;
    *b = ((g + 1) * n + m - 1) / m;
}

/* F (c x hw) with its channels pooled to m groups, into out (m x hw, double). */
static void kdc__pool_channels(const float *f, int c, size_t hw, int m, double *out)
{
    for (int g = 0; g < m; g++) {
        size_t a, b;
        kdc__bin((size_t)c, (size_t)m, (size_t)g, &a, &b);
        double *o = out + (size_t)g * hw;
        for (size_t i = 0; i < hw; i++)
            o[i] = 0;
        for (size_t k = a; k < b; k++)
            for (size_t i = 0; i < hw; i++)
                o[i] += f[k * hw + i];
        for (size_t i = 0; i < hw; i++)
            o[i] /= (double)(b - a);
    }
}

/* The row-normalised c x c Gram matrix of F (c x hw) into G. */
static void kdc__ickd_gram(const double *f, int c, size_t hw, double *G)
{
    /* the lower triangle four columns at a time: each dot product still sums
     * in k order (the bits of one at a time), but four independent sums
     * hide the adds' latency (a quarter of make demo's analyze was here) */
    for (int i = 0; i < c; i++) {
        const double *a = f + (size_t)i * hw;
        int j = 0;
        for (; j + 3 <= i; j += 4) {
            const double *b0 = f + (size_t)j * hw, *b1 = b0 + hw, *b2 = b1 + hw, *b3 = b2 + hw;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t k = 0; k < hw; k++) {
                s0 += a[k] * b0[k];
                s1 += a[k] * b1[k];
                s2 += a[k] * b2[k];
                s3 += a[k] * b3[k];
            }
            const double s[4] = {s0, s1, s2, s3};
            for (int t = 0; t < 4; t++)
                G[(size_t)i * c + j + t] = G[(size_t)(j + t) * c + i] = s[t];
        }
        for (; j <= i; j++) {
            const double *b = f + (size_t)j * hw;
            double s = 0;
            for (size_t k = 0; k < hw; k++)
                s += a[k] * b[k];
            G[(size_t)i * c + j] = G[(size_t)j * c + i] = s;
        }
    }
    for (int i = 0; i < c; i++) {
        double nn = 0;
        for (int j = 0; j < c; j++)
            nn += G[(size_t)i * c + j] * G[(size_t)i * c + j];
        nn = fmax(sqrt(nn), 1e-12); /* F.normalize's eps */
        for (int j = 0; j < c; j++)
            G[(size_t)i * c + j] /= nn;
    }
}

kdc_status kdc_ickd_distance(const float *ft, int ct, size_t hwt, const float *fs, int cs,
                             size_t hws, double *dist)
{
    if (!ft || !fs || !dist || ct < 1 || cs < 1 || ct > 65536 || cs > 65536 || !hwt || !hws ||
        hwt > (size_t)1 << 30 || hws > (size_t)1 << 30)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "ICKD distance: bad arguments (teacher "
                         "%d x %zu, student %d x %zu)", ct, hwt, cs, hws);
    const int c = ct < cs ? ct : cs;
    double *pt = malloc((size_t)c * hwt * sizeof *pt), *ps = malloc((size_t)c * hws * sizeof *ps);
    double *Gt = malloc((size_t)c * c * sizeof *Gt), *Gs = malloc((size_t)c * c * sizeof *Gs);
    kdc_status st = KDC_OK;
    if (!pt || !ps || !Gt || !Gs) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "ICKD distance: out of memory (%d channels)", c);
        goto cleanup;
    }
    kdc__pool_channels(ft, ct, hwt, c, pt);
    kdc__pool_channels(fs, cs, hws, c, ps);
    kdc__ickd_gram(pt, c, hwt, Gt);
    kdc__ickd_gram(ps, c, hws, Gs);
    double s = 0;
    for (size_t i = 0; i < (size_t)c * c; i++)
        s += (Gs[i] - Gt[i]) * (Gs[i] - Gt[i]);
    *dist = s / c;
cleanup:
    free(pt);
    free(ps);
    free(Gt);
    free(Gs);
    return st;
}

/* The attention map of F (c x h x w) average-pooled to oh x ow, squared and
 * summed over channels, L2-normalised, into q (oh x ow). */
static void kdc__attention(const float *f, int c, int h, int w, int oh, int ow, double *q)
{
    const size_t hw = (size_t)h * w, n = (size_t)oh * ow;
    for (size_t i = 0; i < n; i++)
        q[i] = 0;
    for (int k = 0; k < c; k++)
        for (int y = 0; y < oh; y++) {
            size_t y0, y1;
            kdc__bin((size_t)h, (size_t)oh, (size_t)y, &y0, &y1);
            for (int x = 0; x < ow; x++) {
                size_t x0, x1;
                kdc__bin((size_t)w, (size_t)ow, (size_t)x, &x0, &x1);
                double s = 0;
                for (size_t yy = y0; yy < y1; yy++)
                    for (size_t xx = x0; xx < x1; xx++)
                        s += f[k * hw + yy * w + xx];
                s /= (double)((y1 - y0) * (x1 - x0));
                q[(size_t)y * ow + x] += s * s;
            }
        }
    double nn = 0;
    for (size_t i = 0; i < n; i++)
        nn += q[i] * q[i];
    nn = fmax(sqrt(nn), 1e-12);
    for (size_t i = 0; i < n; i++)
        q[i] /= nn;
}

kdc_status kdc_at_distance(const float *ft, int ct, int ht, int wt, const float *fs, int cs,
                           int hs, int ws, double *dist)
{
    if (!ft || !fs || !dist || ct < 1 || cs < 1 || ht < 1 || wt < 1 || hs < 1 || ws < 1 ||
        (size_t)ht * wt > (size_t)1 << 28 || (size_t)hs * ws > (size_t)1 << 28)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "attention-transfer distance: bad arguments "
                         "(teacher %dx%dx%d, student %dx%dx%d)", ct, ht, wt, cs, hs, ws);
    const int oh = ht < hs ? ht : hs, ow = wt < ws ? wt : ws;
    const size_t n = (size_t)oh * ow;
    double *qt = malloc(n * sizeof *qt), *qs = malloc(n * sizeof *qs);
    if (!qt || !qs) {
        free(qt);
        free(qs);
        return kdc__fail(KDC_ERR_NO_MEMORY, "attention-transfer distance: out of memory");
    }
    kdc__attention(ft, ct, ht, wt, oh, ow, qt);
    kdc__attention(fs, cs, hs, ws, oh, ow, qs);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (qt[i] - qs[i]) * (qt[i] - qs[i]);
    *dist = sqrt(s);
    free(qt);
    free(qs);
    return KDC_OK;
}
