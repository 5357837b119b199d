/* shapes_geom.c - the geometry of the shapes dataset: deterministic sine
 * and cosine (no libm), the outlines of the classes and of the hard
 * style's decoys in local coordinates, and an object's supersampled
 * coverage of the pixel grid with its tight box (shapes_internal.h). */
#include <string.h>

#include "shapes_internal.h"

/* ------------------------------------------------------------------ */
/* Deterministic sine / cosine (no libm)                               */

/* sin(x) for x in [-pi, pi] by a Taylor series with enough terms for
 * double accuracy far beyond what 8-bit pixels need. */
static double kdc__sin_red(double x)
{
    double x2 = x * x, term = x, sum = x;
    for (int k = 1; k <= 11; k++) {
        term = -term * x2 / (double)((2 * k) * (2 * k + 1));
        sum += term;
    }
    return sum;
}

static double kdc__wrap(double x)
{
    const double tp = 2.0 * KDC__PI;
    long k = (long)(x / tp);
    x -= (double)k * tp;
    if (x > KDC__PI)
        x -= tp;
    if (x < -KDC__PI)
        x += tp;
    return x;
}

double kdc__shapes_sin(double x)
{
    return kdc__sin_red(kdc__wrap(x));
}

double kdc__shapes_cos(double x)
{
    return kdc__sin_red(kdc__wrap(x + 0.5 * KDC__PI));
}

/* ------------------------------------------------------------------ */
/* Shapes in local coordinates                                         */
/* Every shape fits in the unit disk; (u, v) has v pointing down.     */

void kdc__shapes_make_polys(kdc__polys *P)
{
    kdc__poly *star = &P->star, *hex = &P->hex, *tri = &P->tri;
    star->n = 10;
    for (int i = 0; i < 10; i++) {
        double a = -0.5 * KDC__PI + (double)i * KDC__PI / 5.0;
        double rad = (i & 1) ? 0.45 : 1.0;
        star->x[i] = (float)(rad * kdc__shapes_cos(a));
        star->y[i] = (float)(rad * kdc__shapes_sin(a));
    }
    hex->n = 6;
    for (int i = 0; i < 6; i++) {
        double a = (double)i * KDC__PI / 3.0;
        hex->x[i] = (float)kdc__shapes_cos(a);
        hex->y[i] = (float)kdc__shapes_sin(a);
    }
    tri->n = 3;
    for (int i = 0; i < 3; i++) {
        double a = -0.5 * KDC__PI + (double)i * 2.0 * KDC__PI / 3.0;
        tri->x[i] = (float)kdc__shapes_cos(a);
        tri->y[i] = (float)kdc__shapes_sin(a) + 0.25f; /* centre the bounding box */
    }
}

/* even-odd point in polygon */
static int kdc__in_poly(const kdc__poly *p, float u, float v)
{
    int in = 0;
    for (int i = 0, j = p->n - 1; i < p->n; j = i++) {
        if ((p->y[i] > v) != (p->y[j] > v)) {
            float xc = p->x[j] + (v - p->y[j]) * (p->x[i] - p->x[j]) / (p->y[i] - p->y[j]);
            if (u < xc)
                in = !in;
        }
    }
    return in;
}

/* The classes, in the order of their names in shapes.c. */
static int kdc__inside(const kdc__polys *P, int cls, float u, float v)
{
    const float r2 = u * u + v * v;
    switch (cls) {
    case 0: /* circle */
        return r2 <= 0.85f * 0.85f;
    case 1: /* square */
        return kdc__absf(u) <= 0.68f && kdc__absf(v) <= 0.68f;
    case 2: /* triangle */
        return kdc__in_poly(&P->tri, u, v);
    case 3: /* star */
        return kdc__in_poly(&P->star, u, v);
    case 4: /* cross (plus sign) */
        return (kdc__absf(u) <= 0.3f && kdc__absf(v) <= 0.92f) ||
               (kdc__absf(v) <= 0.3f && kdc__absf(u) <= 0.92f);
    case 5: /* ring */
        return r2 <= 0.92f * 0.92f && r2 >= 0.52f * 0.52f;
    case 6: { /* heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 */
        float x = u * 1.3f, y = -v * 1.3f + 0.12f;
        float t = x * x + y * y - 1.0f;
        return t * t * t - x * x * y * y * y <= 0.0f;
    }
    case 7: /* hexagon */
        return kdc__in_poly(&P->hex, u, v);
    case 8: { /* crescent: disk minus an offset disk */
        float du = u - 0.42f;
        return r2 <= 0.9f * 0.9f && du * du + v * v > 0.72f * 0.72f;
    }
    default: { /* frame (hollow square) */
        float au = kdc__absf(u), av = kdc__absf(v);
        return au <= 0.7f && av <= 0.7f && (au > 0.36f || av > 0.36f);
    }
    }
}

/* The decoys of the hard style, in the order of their names in shapes.c.
 * They cannot be taken for a class at any rotation or scale: each has an
 * aspect ratio of at least 1.8 (no class has one above 1.3) or, for the
 * half disk, a straight edge across a round one (the crescent's cut is
 * concave); the arrow, L and T have 1, 2 and 3 ends (the cross has 4). */
static int kdc__decoy_inside(int kind, float u, float v)
{
    switch (kind) {
    case 0: { /* ellipse, axes 0.95 x 0.45 (aspect 2.1) */
        float a = u / 0.95f, b = v / 0.45f;
        return a * a + b * b <= 1.0f;
    }
    case 1: /* arrow along +u: shaft and a triangular head */
        if (u >= -0.9f && u <= 0.15f && kdc__absf(v) <= 0.17f)
            return 1;
        return u >= 0.15f && u <= 0.9f && kdc__absf(v) <= 0.5f * (0.9f - u) / 0.75f;
    case 2: /* L: a bar 1.44 long and one 1.2 long, 0.42 thick */
        return (u >= -0.6f && u <= -0.18f && v >= -0.72f && v <= 0.72f) ||
               (v >= 0.3f && v <= 0.72f && u >= -0.6f && u <= 0.6f);
    case 3: /* T */
        return (v >= -0.68f && v <= -0.3f && kdc__absf(u) <= 0.7f) ||
               (kdc__absf(u) <= 0.2f && v >= -0.3f && v <= 0.8f);
    case 4: { /* half disk, radius 0.88, flat side down, box centred */
        float y = v - 0.44f;
        return y <= 0.0f && u * u + y * y <= 0.88f * 0.88f;
    }
    default: { /* oval ring: outer 0.95 x 0.52 (aspect 1.83), inner 0.6 x 0.2 */
        float a = u / 0.95f, b = v / 0.52f, ai = u / 0.6f, bi = v / 0.2f;
        return a * a + b * b <= 1.0f && ai * ai + bi * bi > 1.0f;
    }
    }
}

/* ------------------------------------------------------------------ */
/* Coverage on the pixel grid                                          */

void kdc__shapes_cover(const kdc__polys *P, const kdc__obj *o, int n, unsigned char *cov,
                       int *wx0, int *wy0, int *wx1, int *wy1)
{
    const double ang = (double)o->angle * KDC__PI / 180.0;
    const float ca = (float)kdc__shapes_cos(ang), sa = (float)kdc__shapes_sin(ang);
    int x0 = (int)(o->cx - o->rad) - 1, x1 = (int)(o->cx + o->rad) + 1;
    int y0 = (int)(o->cy - o->rad) - 1, y1 = (int)(o->cy + o->rad) + 1;
    if (x0 < 0)
        x0 = 0;
    if (y0 < 0)
        y0 = 0;
    if (x1 > n - 1)
        x1 = n - 1;
    if (y1 > n - 1)
        y1 = n - 1;
    memset(cov, 0, (size_t)n * (size_t)n);
    const float inv = 1.0f / o->rad;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int hits = 0;
            for (int sy = 0; sy < KDC__SS; sy++)
                for (int sx = 0; sx < KDC__SS; sx++) {
                    float px = (float)x + ((float)sx + 0.5f) / KDC__SS - o->cx;
                    float py = (float)y + ((float)sy + 0.5f) / KDC__SS - o->cy;
                    /* rotate into the shape's frame */
                    float u = (px * ca + py * sa) * inv, v = (-px * sa + py * ca) * inv;
                    hits += o->decoy ? kdc__decoy_inside(o->kind, u, v)
                                     : kdc__inside(P, o->kind, u, v);
                }
            cov[(size_t)y * n + x] = (unsigned char)hits;
        }
    *wx0 = x0;
    *wy0 = y0;
    *wx1 = x1;
    *wy1 = y1;
}

int kdc__shapes_tight_box(const unsigned char *cov, int n, int x0, int y0, int x1, int y1,
                          int box[4], unsigned char *mask)
{
    int bx0 = n, by0 = n, bx1 = -1, by1 = -1;
    const int half = KDC__SS * KDC__SS / 2;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int in = cov[(size_t)y * n + x] >= half;
            if (mask)
                mask[(size_t)y * n + x] = (unsigned char)in;
            if (in) {
                bx0 = x < bx0 ? x : bx0;
                bx1 = x > bx1 ? x : bx1;
                by0 = y < by0 ? y : by0;
                by1 = y > by1 ? y : by1;
            }
        }
    if (bx1 < 0) {
        box[0] = box[1] = box[2] = box[3] = 0;
        return 0;
    }
    box[0] = bx0;
    box[1] = by0;
    box[2] = bx1 + 1;
    box[3] = by1 + 1;
    return 1;
}
