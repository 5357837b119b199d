/* metrics.c - numbers that compare maps: agreement between two models'
 * maps (Pearson, top-k IoU) and agreement with a known object box (pointing
 * game, energy in the box). All sums in double. */
#include <math.h>
#include <stdlib.h>

#include "cam_internal.h"

double kdc_map_pearson(const float *a, const float *b, size_t n)
{
    if (!a || !b || n == 0)
        return 0.0;
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
}

int kdc__ranked_desc(const void *x, const void *y)
{
    const kdc__ranked *p = x, *q = y;
    if (p->v != q->v)
        return p->v > q->v ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* Marks the k largest values of m in sel (1 byte per value). */
static int kdc__top_k(const float *m, size_t n, size_t k, unsigned char *sel)
{
    kdc__ranked *r = malloc(n * sizeof *r);
    if (!r)
        return -1;
    for (size_t i = 0; i < n; i++) {
        r[i].v = m[i] == m[i] ? m[i] : -INFINITY; /* NaN ranks last */
        r[i].i = i;
        sel[i] = 0;
    }
    qsort(r, n, sizeof *r, kdc__ranked_desc);
    for (size_t j = 0; j < k; j++)
        sel[r[j].i] = 1;
    free(r);
    return 0;
}

double kdc_map_iou_top(const float *a, const float *b, size_t n, double fraction)
{
    if (!a || !b || n == 0 || !(fraction > 0.0 && fraction <= 1.0))
        return 0.0;
    size_t k = (size_t)ceil(fraction * (double)n);
    unsigned char *sa = malloc(n), *sb = malloc(n);
    double iou = NAN;
    if (sa && sb && !kdc__top_k(a, n, k, sa) && !kdc__top_k(b, n, k, sb)) {
        size_t inter = 0, uni = 0;
        for (size_t i = 0; i < n; i++) {
            inter += sa[i] & sb[i];
            uni += sa[i] | sb[i];
        }
        iou = uni ? (double)inter / (double)uni : 0.0;
    }
    free(sa);
    free(sb);
    return iou;
}

int kdc_map_pointing(const float *map, int w, int h, const int box[4])
{
    if (!map || !box || w <= 0 || h <= 0)
        return 0;
    size_t best = 0, n = (size_t)w * h;
    for (size_t i = 1; i < n; i++)
        if (map[i] > map[best])
            best = i;
    int x = (int)(best % (size_t)w), y = (int)(best / (size_t)w);
    return x >= box[0] && x < box[2] && y >= box[1] && y < box[3];
}

double kdc_map_energy_in_box(const float *map, int w, int h, const int box[4])
{
    if (!map || !box || w <= 0 || h <= 0)
        return 0.0;
    double all = 0.0, in = 0.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = map[(size_t)y * w + x];
            double e = v > 0 ? v : 0.0;
            all += e;
            if (x >= box[0] && x < box[2] && y >= box[1] && y < box[3])
                in += e;
        }
    return all > 0 ? in / all : 0.0;
}
