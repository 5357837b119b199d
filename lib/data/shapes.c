/* shapes.c - the procedural shapes dataset (kdcam shapes).
 *
 * Two styles (kdc_shapes_style). The classic style, below first and kept
 * pixel for pixel as it was: each image holds one object of one of
 * KDC__NCLASS shape classes on a cluttered background (gradient, value noise, stripes, soft blobs, grain)
 * with 1-3 distractors that belong to no class: thin lines, zigzags, long
 * thin bars and clusters of small dots. Class objects are solid (or
 * hollow, with thick walls), 48-68% of the image side across (the disk it fits in), so no
 * distractor can be taken for one by construction: every distractor is
 * either at most 4 pixels thick or made of dots at most 5 pixels across,
 * or a bar with an aspect ratio of at least 4.
 * The hard style (the default, at the end of the file) draws the class
 * object 20-45% of the side across anywhere in the frame, on the same kind
 * of background and distractors, plus 1-3 decoys: objects of the same size
 * range, fills and colours in shapes that no class has at any rotation or
 * scale (long ellipse, arrow, L, T, half disk, long oval ring), placed by
 * a bounded, deterministic rejection sampling so that they never overlap
 * the class object's box.
 *
 * Determinism: image `index` of `seed` depends only on (seed, index, size).
 * The random numbers come from splitmix64; the geometry uses float/double
 * arithmetic with our own sine/cosine series (no libm), so the same inputs
 * give the same pixels on any IEEE-754 machine as long as a*b+c is not
 * contracted into fused multiply-adds (see the pragma below; checked by the
 * pinned checksum in tests/test_shapes.c).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* No fused multiply-adds: they would change pixels between machines.
 * Clang honours the pragma; GCC ignores it but contracts nothing in ISO C
 * mode (-std=c11). Building with -ffp-contract=fast changes the images. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define KDC__NCLASS 10
#define KDC__SS 4 /* supersampling per axis for the object's coverage */

static const char *const kdc__shape_names[KDC__NCLASS] = {
    "circle", "square", "triangle", "star", "cross",
    "ring",   "heart",  "hexagon",  "crescent", "frame",
};

int kdc_shapes_num_classes(void)
{
    return KDC__NCLASS;
}

const char *kdc_shapes_class_name(int cls)
{
    if (cls < 0 || cls >= KDC__NCLASS)
        return NULL;
    return kdc__shape_names[cls];
}

/* ------------------------------------------------------------------ */
/* Random numbers                                                      */

typedef struct kdc__rng {
    uint64_t s;
} kdc__rng;

static uint64_t kdc__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t kdc__next(kdc__rng *r)
{
    r->s += 0x9E3779B97F4A7C15ULL;
    return kdc__mix64(r->s);
}

/* uniform in [0, 1) with 24 bits */
static float kdc__uf(kdc__rng *r)
{
    return (float)(kdc__next(r) >> 40) * (1.0f / 16777216.0f);
}

static float kdc__ur(kdc__rng *r, float lo, float hi)
{
    return lo + (hi - lo) * kdc__uf(r);
}

/* uniform integer in [lo, hi] */
static int kdc__ui(kdc__rng *r, int lo, int hi)
{
    return lo + (int)((kdc__next(r) >> 33) % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------------ */
/* Deterministic sine / cosine (no libm)                               */

#define KDC__PI 3.14159265358979323846

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

static double kdc__sin(double x)
{
    return kdc__sin_red(kdc__wrap(x));
}

static double kdc__cos(double x)
{
    return kdc__sin_red(kdc__wrap(x + 0.5 * KDC__PI));
}

/* ------------------------------------------------------------------ */
/* Shapes in local coordinates                                         */
/* Every shape fits in the unit disk; (u, v) has v pointing down.     */

typedef struct kdc__poly {
    int n;
    float x[12], y[12];
} kdc__poly;

typedef struct kdc__polys {
    kdc__poly star, hex, tri;
} kdc__polys;

static void kdc__make_polys(kdc__poly *star, kdc__poly *hex, kdc__poly *tri)
{
    star->n = 10;
    for (int i = 0; i < 10; i++) {
        double a = -0.5 * KDC__PI + (double)i * KDC__PI / 5.0;
        double rad = (i & 1) ? 0.45 : 1.0;
        star->x[i] = (float)(rad * kdc__cos(a));
        star->y[i] = (float)(rad * kdc__sin(a));
    }
    hex->n = 6;
    for (int i = 0; i < 6; i++) {
        double a = (double)i * KDC__PI / 3.0;
        hex->x[i] = (float)kdc__cos(a);
        hex->y[i] = (float)kdc__sin(a);
    }
    tri->n = 3;
    for (int i = 0; i < 3; i++) {
        double a = -0.5 * KDC__PI + (double)i * 2.0 * KDC__PI / 3.0;
        tri->x[i] = (float)kdc__cos(a);
        tri->y[i] = (float)kdc__sin(a) + 0.25f; /* centre the bounding box */
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

static float kdc__absf(float x)
{
    return x < 0 ? -x : x;
}

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

/* ------------------------------------------------------------------ */
/* Painting helpers                                                    */

typedef struct kdc__canvas {
    int n;      /* side */
    float *px;  /* n*n*3 floats in 0..255 */
} kdc__canvas;

static void kdc__blend(kdc__canvas *c, int x, int y, const float col[3], float a)
{
    if (x < 0 || y < 0 || x >= c->n || y >= c->n || a <= 0.0f)
        return;
    if (a > 1.0f)
        a = 1.0f;
    float *p = c->px + ((size_t)y * (size_t)c->n + (size_t)x) * 3;
    for (int k = 0; k < 3; k++)
        p[k] += a * (col[k] - p[k]);
}

static void kdc__rand_colour(kdc__rng *r, float col[3])
{
    for (int k = 0; k < 3; k++)
        col[k] = kdc__ur(r, 0.0f, 255.0f);
}

/* value noise: a g x g grid of random values in [-1, 1], bilinear */
static float kdc__noise_at(const float *grid, int g, float fx, float fy)
{
    float gx = fx * (float)(g - 1), gy = fy * (float)(g - 1);
    int x0 = (int)gx, y0 = (int)gy;
    if (x0 >= g - 1)
        x0 = g - 2;
    if (y0 >= g - 1)
        y0 = g - 2;
    float tx = gx - (float)x0, ty = gy - (float)y0;
    float a = grid[y0 * g + x0], b = grid[y0 * g + x0 + 1];
    float c = grid[(y0 + 1) * g + x0], d = grid[(y0 + 1) * g + x0 + 1];
    return (a + (b - a) * tx) * (1.0f - ty) + (c + (d - c) * tx) * ty;
}

/* triangle wave of period 1, in [0, 1] */
static float kdc__tri_wave(float t)
{
    t -= (float)(long)t;
    if (t < 0)
        t += 1.0f;
    return t < 0.5f ? 2.0f * t : 2.0f - 2.0f * t;
}

static void kdc__background(kdc__canvas *c, kdc__rng *r)
{
    const int n = c->n;
    float c0[3], c1[3];
    kdc__rand_colour(r, c0);
    kdc__rand_colour(r, c1);
    double ga = kdc__ur(r, 0.0f, 6.2831853f);
    float gdx = (float)kdc__cos(ga), gdy = (float)kdc__sin(ga);
    /* gradient */
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            float fx = (float)x / (float)n - 0.5f, fy = (float)y / (float)n - 0.5f;
            float t = 0.5f + (fx * gdx + fy * gdy);
            if (t < 0)
                t = 0;
            if (t > 1)
                t = 1;
            float *p = c->px + ((size_t)y * n + x) * 3;
            for (int k = 0; k < 3; k++)
                p[k] = c0[k] + (c1[k] - c0[k]) * t;
        }
    /* value noise, 1-2 octaves, coloured */
    int octaves = kdc__ui(r, 1, 2);
    for (int o = 0; o < octaves; o++) {
        float grid[17 * 17];
        int g = kdc__ui(r, 4, 16);
        float amp = kdc__ur(r, 8.0f, 30.0f);
        float tint[3];
        for (int k = 0; k < 3; k++)
            tint[k] = kdc__ur(r, 0.4f, 1.0f);
        for (int i = 0; i < g * g; i++)
            grid[i] = kdc__ur(r, -1.0f, 1.0f);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                float v = amp * kdc__noise_at(grid, g, (float)x / (float)(n - 1),
                                              (float)y / (float)(n - 1));
                float *p = c->px + ((size_t)y * n + x) * 3;
                for (int k = 0; k < 3; k++)
                    p[k] += v * tint[k];
            }
    }
    /* stripes (0-2 sets), translucent */
    int nstripes = kdc__ui(r, 0, 2);
    for (int s = 0; s < nstripes; s++) {
        float col[3];
        kdc__rand_colour(r, col);
        double a = kdc__ur(r, 0.0f, 3.1415926f);
        float dx = (float)kdc__cos(a), dy = (float)kdc__sin(a);
        float period = kdc__ur(r, 4.0f, 24.0f);
        float alpha = kdc__ur(r, 0.1f, 0.3f);
        float duty = kdc__ur(r, 0.3f, 0.7f);
        float phase = kdc__uf(r);
        int hard = kdc__ui(r, 0, 1);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                float t = ((float)x * dx + (float)y * dy) / period + phase;
                float w = kdc__tri_wave(t);
                float a2 = hard ? (w < duty ? alpha : 0.0f) : alpha * w;
                kdc__blend(c, x, y, col, a2);
            }
    }
    /* soft blobs */
    int nblobs = kdc__ui(r, 0, 5);
    for (int b = 0; b < nblobs; b++) {
        float col[3];
        kdc__rand_colour(r, col);
        float cx = kdc__ur(r, 0.0f, (float)n), cy = kdc__ur(r, 0.0f, (float)n);
        float rad = kdc__ur(r, 0.05f, 0.3f) * (float)n;
        float alpha = kdc__ur(r, 0.15f, 0.4f);
        int x0 = (int)(cx - rad), x1 = (int)(cx + rad) + 1;
        int y0 = (int)(cy - rad), y1 = (int)(cy + rad) + 1;
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++) {
                float ddx = ((float)x - cx) / rad, ddy = ((float)y - cy) / rad;
                float d2 = ddx * ddx + ddy * ddy;
                if (d2 < 1.0f)
                    kdc__blend(c, x, y, col, alpha * (1.0f - d2) * (1.0f - d2));
            }
    }
}

/* a thick line segment (width w pixels), drawn with 2x2 supersampling */
static void kdc__segment(kdc__canvas *c, float ax, float ay, float bx, float by, float w,
                         const float col[3], float alpha)
{
    float minx = (ax < bx ? ax : bx) - w, maxx = (ax > bx ? ax : bx) + w;
    float miny = (ay < by ? ay : by) - w, maxy = (ay > by ? ay : by) + w;
    float dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    float hw2 = 0.25f * w * w;
    if (len2 < 1e-6f)
        len2 = 1e-6f;
    for (int y = (int)miny; y <= (int)maxy + 1; y++)
        for (int x = (int)minx; x <= (int)maxx + 1; x++) {
            int hits = 0;
            for (int s = 0; s < 4; s++) {
                float px = (float)x + 0.25f + 0.5f * (float)(s & 1);
                float py = (float)y + 0.25f + 0.5f * (float)(s >> 1);
                float t = ((px - ax) * dx + (py - ay) * dy) / len2;
                if (t < 0)
                    t = 0;
                if (t > 1)
                    t = 1;
                float ex = ax + t * dx - px, ey = ay + t * dy - py;
                hits += ex * ex + ey * ey <= hw2;
            }
            if (hits)
                kdc__blend(c, x, y, col, alpha * (float)hits * 0.25f);
        }
}

static void kdc__distractor(kdc__canvas *c, kdc__rng *r)
{
    const float n = (float)c->n;
    float col[3];
    kdc__rand_colour(r, col);
    int kind = kdc__ui(r, 0, 3);
    float alpha = kdc__ur(r, 0.7f, 1.0f);
    if (kind == 0) { /* a thin straight line across much of the image */
        float ax = kdc__ur(r, 0, n), ay = kdc__ur(r, 0, n);
        float bx = kdc__ur(r, 0, n), by = kdc__ur(r, 0, n);
        kdc__segment(c, ax, ay, bx, by, kdc__ur(r, 1.0f, 3.0f), col, alpha);
    } else if (kind == 1) { /* zigzag polyline */
        float x = kdc__ur(r, 0, n), y = kdc__ur(r, 0, n), w = kdc__ur(r, 1.0f, 3.0f);
        int segs = kdc__ui(r, 3, 7);
        for (int s = 0; s < segs; s++) {
            float nx = x + kdc__ur(r, -0.25f, 0.25f) * n, ny = y + kdc__ur(r, -0.25f, 0.25f) * n;
            kdc__segment(c, x, y, nx, ny, w, col, alpha);
            x = nx;
            y = ny;
        }
    } else if (kind == 2) { /* a long thin bar: width 3-4 px, length >= 4x... many times that */
        float w = kdc__ur(r, 3.0f, 4.0f), len = kdc__ur(r, 0.25f, 0.6f) * n;
        double a = kdc__ur(r, 0.0f, 6.2831853f);
        float cx = kdc__ur(r, 0, n), cy = kdc__ur(r, 0, n);
        float dx = (float)kdc__cos(a) * 0.5f * len, dy = (float)kdc__sin(a) * 0.5f * len;
        kdc__segment(c, cx - dx, cy - dy, cx + dx, cy + dy, w, col, alpha);
    } else { /* a cluster of small dots */
        float cx = kdc__ur(r, 0, n), cy = kdc__ur(r, 0, n), spread = kdc__ur(r, 0.08f, 0.25f) * n;
        int dots = kdc__ui(r, 6, 20);
        for (int d = 0; d < dots; d++) {
            float x = cx + kdc__ur(r, -spread, spread), y = cy + kdc__ur(r, -spread, spread);
            float w = kdc__ur(r, 2.0f, 5.0f);
            kdc__segment(c, x, y, x + 0.01f, y, w, col, alpha);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The object                                                          */

static float kdc__colour_dist(const float a[3], const float b[3])
{
    return kdc__absf(a[0] - b[0]) + kdc__absf(a[1] - b[1]) + kdc__absf(a[2] - b[2]);
}

/* The classic style: exactly the generator as it was before the hard style
 * (its pixels are pinned by tests/test_shapes.c and the demo models were
 * trained on them): do not change anything here that touches pixels. */
static kdc_status kdc__render_classic(uint64_t seed, uint64_t index, int size, kdc_image **out,
                                      kdc_shape_info *info, unsigned char *mask)
{
    if (out)
        *out = NULL;
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_shapes_render: out is NULL");
    if (size < KDC_SHAPES_MIN_SIZE || size > KDC_SHAPES_MAX_SIZE)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "kdc_shapes_render: size %d is outside %d..%d", size,
                         KDC_SHAPES_MIN_SIZE, KDC_SHAPES_MAX_SIZE);
    kdc__polys P; /* a few dozen sines: cheaper than shared state */
    kdc__make_polys(&P.star, &P.hex, &P.tri);

    const int n = size;
    const size_t npx = (size_t)n * (size_t)n;
    kdc__canvas c;
    c.n = n;
    c.px = malloc(npx * 3 * sizeof *c.px);
    unsigned char *cov = calloc(npx, 1); /* object coverage 0..16 */
    if (!c.px || !cov) {
        free(c.px);
        free(cov);
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_shapes_render: out of memory for a %dx%d image",
                         n, n);
    }

    kdc__rng r;
    r.s = kdc__mix64(seed ^ 0x5348415045530000ULL) ^ kdc__mix64(index * 0xD1B54A32D192ED03ULL + 1);
    /* scene parameters first, so each draw is independent of the others */
    const int cls = kdc__ui(&r, 0, KDC__NCLASS - 1);
    const float diam = kdc__ur(&r, 0.48f, 0.68f) * (float)n;
    const float rad = 0.5f * diam;
    const float margin = rad + 1.0f;
    const float cx = kdc__ur(&r, margin, (float)n - margin);
    const float cy = kdc__ur(&r, margin, (float)n - margin);
    const int angle = kdc__ui(&r, 0, 359);
    const double ang = (double)angle * KDC__PI / 180.0;
    const float ca = (float)kdc__cos(ang), sa = (float)kdc__sin(ang);

    kdc__rng rb = {kdc__next(&r)}, rd = {kdc__next(&r)}, ro = {kdc__next(&r)};
    kdc__background(&c, &rb);
    const int ndis = kdc__ui(&rd, 1, 3);
    for (int d = 0; d < ndis; d++)
        kdc__distractor(&c, &rd);

    /* coverage of the object, KDC__SS x KDC__SS samples per pixel */
    int x0 = (int)(cx - rad) - 1, x1 = (int)(cx + rad) + 1;
    int y0 = (int)(cy - rad) - 1, y1 = (int)(cy + rad) + 1;
    if (x0 < 0)
        x0 = 0;
    if (y0 < 0)
        y0 = 0;
    if (x1 > n - 1)
        x1 = n - 1;
    if (y1 > n - 1)
        y1 = n - 1;
    const float inv = 1.0f / rad;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int hits = 0;
            for (int sy = 0; sy < KDC__SS; sy++)
                for (int sx = 0; sx < KDC__SS; sx++) {
                    float px = (float)x + ((float)sx + 0.5f) / KDC__SS - cx;
                    float py = (float)y + ((float)sy + 0.5f) / KDC__SS - cy;
                    /* rotate into the shape's frame */
                    float u = (px * ca + py * sa) * inv, v = (-px * sa + py * ca) * inv;
                    hits += kdc__inside(&P, cls, u, v);
                }
            cov[(size_t)y * n + x] = (unsigned char)hits;
        }

    /* object colour: far enough from the background under it */
    float bg[3] = {0, 0, 0}, col[3] = {0, 0, 0}, col2[3];
    size_t cnt = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            if (cov[(size_t)y * n + x]) {
                const float *p = c.px + ((size_t)y * n + x) * 3;
                bg[0] += p[0];
                bg[1] += p[1];
                bg[2] += p[2];
                cnt++;
            }
    if (cnt)
        for (int k = 0; k < 3; k++)
            bg[k] /= (float)cnt;
    float best = -1.0f, cand[3];
    for (int tries = 0; tries < 16; tries++) {
        kdc__rand_colour(&ro, cand);
        float d = kdc__colour_dist(cand, bg);
        if (d > best) {
            best = d;
            memcpy(col, cand, sizeof col);
        }
        if (d >= 250.0f)
            break;
    }
    /* fill: solid, shaded, striped or noisy */
    const int fill = kdc__ui(&ro, 0, 3);
    for (int k = 0; k < 3; k++)
        col2[k] = col[k] + kdc__ur(&ro, -40.0f, 40.0f);
    const float sper = kdc__ur(&ro, 3.0f, 8.0f);
    double sang = kdc__ur(&ro, 0.0f, 3.1415926f);
    const float sdx = (float)kdc__cos(sang), sdy = (float)kdc__sin(sang);
    const float namp = kdc__ur(&ro, 5.0f, 20.0f);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int hits = cov[(size_t)y * n + x];
            if (!hits)
                continue;
            float pc[3];
            float t;
            switch (fill) {
            case 0:
                t = 0.0f;
                break;
            case 1: /* linear shading across the object */
                t = 0.5f + 0.5f * (((float)x - cx) * sdx + ((float)y - cy) * sdy) * inv;
                break;
            case 2: /* stripes */
                t = kdc__tri_wave((((float)x - cx) * sdx + ((float)y - cy) * sdy) / sper) < 0.5f
                        ? 0.0f
                        : 1.0f;
                break;
            default:
                t = 0.0f;
                break;
            }
            for (int k = 0; k < 3; k++)
                pc[k] = col[k] + (col2[k] - col[k]) * t;
            if (fill == 3) {
                float e = kdc__ur(&ro, -namp, namp);
                for (int k = 0; k < 3; k++)
                    pc[k] += e;
            }
            kdc__blend(&c, x, y, pc, (float)hits / (float)(KDC__SS * KDC__SS));
        }

    /* grain over everything, then quantise */
    kdc_image *img;
    kdc_status st = kdc_image_create(n, n, &img);
    if (st) {
        free(c.px);
        free(cov);
        return st;
    }
    kdc__rng rg = {kdc__next(&r)};
    const float grain = kdc__ur(&rg, 0.0f, 8.0f);
    for (size_t i = 0; i < npx; i++) {
        float e = grain * (kdc__uf(&rg) - 0.5f) * 2.0f;
        for (int k = 0; k < 3; k++) {
            float v = c.px[i * 3 + k] + e + 0.5f;
            img->rgb[i * 3 + k] = (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
        }
    }

    /* mask and tight box: pixels at least half covered */
    int bx0 = n, by0 = n, bx1 = -1, by1 = -1;
    const int half = KDC__SS * KDC__SS / 2;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int in = cov[(size_t)y * n + x] >= half;
            if (mask)
                mask[(size_t)y * n + x] = (unsigned char)in;
            if (in) {
                if (x < bx0)
                    bx0 = x;
                if (x > bx1)
                    bx1 = x;
                if (y < by0)
                    by0 = y;
                if (y > by1)
                    by1 = y;
            }
        }
    if (info) {
        memset(info, 0, sizeof *info);
        info->cls = cls;
        info->box[0] = bx0;
        info->box[1] = by0;
        info->box[2] = bx1 + 1;
        info->box[3] = by1 + 1;
        info->cx = cx;
        info->cy = cy;
        info->diameter = diam;
        info->angle = angle;
        info->style = KDC_SHAPES_CLASSIC;
    }
    free(c.px);
    free(cov);
    *out = img;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* The hard style (the default)                                        */
/* The class object is 20-45% of the side across, anywhere in the      */
/* frame; 1-3 decoys of the same size range, fills and colours, that   */
/* belong to no class, lie outside its box.                            */

#define KDC__NDECOY 6

/* Decoys cannot be taken for a class at any rotation or scale: each has
 * an aspect ratio of at least 1.8 (no class has one above 1.3) or, for the
 * half disk, a straight edge across a round one (the crescent's cut is
 * concave); the arrow, L and T have 1, 2 and 3 ends (the cross has 4). */
static const char *const kdc__decoy_names[KDC__NDECOY] = {
    "ellipse", "arrow", "L", "T", "halfdisk", "ovalring",
};

const char *kdc_shapes_decoy_name(int kind)
{
    if (kind < 0 || kind >= KDC__NDECOY)
        return NULL;
    return kdc__decoy_names[kind];
}

const char *kdc_shapes_style_name(int style)
{
    switch (style) {
    case KDC_SHAPES_HARD:
        return "hard";
    case KDC_SHAPES_CLASSIC:
        return "classic";
    default:
        return NULL;
    }
}

/* Decoys in local coordinates, each inside the unit disk, v down. */
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

/* One object (class or decoy) of the hard style. */
typedef struct kdc__obj {
    int decoy, kind;
    float cx, cy, rad;
    int angle;
} kdc__obj;

/* Coverage (0..KDC__SS^2) of o into cov, which is zero outside the returned
 * window [*x0, *x1] x [*y0, *y1]. */
static void kdc__cover(const kdc__polys *P, const kdc__obj *o, int n, unsigned char *cov,
                       int *wx0, int *wy0, int *wx1, int *wy1)
{
    const double ang = (double)o->angle * KDC__PI / 180.0;
    const float ca = (float)kdc__cos(ang), sa = (float)kdc__sin(ang);
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

/* Paints the covered pixels as the classic style paints its object: a
 * colour far from the background under it; solid, shaded, striped or
 * noisy fill. */
static void kdc__paint(kdc__canvas *c, const unsigned char *cov, const kdc__obj *o, int x0,
                       int y0, int x1, int y1, kdc__rng *ro)
{
    const int n = c->n;
    const float inv = 1.0f / o->rad;
    float bg[3] = {0, 0, 0}, col[3] = {0, 0, 0}, col2[3], cand[3];
    size_t cnt = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            if (cov[(size_t)y * n + x]) {
                const float *p = c->px + ((size_t)y * n + x) * 3;
                for (int k = 0; k < 3; k++)
                    bg[k] += p[k];
                cnt++;
            }
    if (cnt)
        for (int k = 0; k < 3; k++)
            bg[k] /= (float)cnt;
    float best = -1.0f;
    for (int tries = 0; tries < 16; tries++) {
        kdc__rand_colour(ro, cand);
        float d = kdc__colour_dist(cand, bg);
        if (d > best) {
            best = d;
            memcpy(col, cand, sizeof col);
        }
        if (d >= 250.0f)
            break;
    }
    const int fill = kdc__ui(ro, 0, 3);
    for (int k = 0; k < 3; k++)
        col2[k] = col[k] + kdc__ur(ro, -40.0f, 40.0f);
    const float sper = kdc__ur(ro, 3.0f, 8.0f);
    double sang = kdc__ur(ro, 0.0f, 3.1415926f);
    const float sdx = (float)kdc__cos(sang), sdy = (float)kdc__sin(sang);
    const float namp = kdc__ur(ro, 5.0f, 20.0f);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int hits = cov[(size_t)y * n + x];
            if (!hits)
                continue;
            float pc[3], t = 0.0f;
            float along = ((float)x - o->cx) * sdx + ((float)y - o->cy) * sdy;
            if (fill == 1) /* linear shading across the object */
                t = 0.5f + 0.5f * along * inv;
            else if (fill == 2) /* stripes */
                t = kdc__tri_wave(along / sper) < 0.5f ? 0.0f : 1.0f;
            for (int k = 0; k < 3; k++)
                pc[k] = col[k] + (col2[k] - col[k]) * t;
            if (fill == 3) {
                float e = kdc__ur(ro, -namp, namp);
                for (int k = 0; k < 3; k++)
                    pc[k] += e;
            }
            kdc__blend(c, x, y, pc, (float)hits / (float)(KDC__SS * KDC__SS));
        }
}

/* Tight box (x1, y1 exclusive) of the pixels at least half covered, in
 * the window; {0,0,0,0} when there are none. mask (may be NULL) gets 0/1. */
static void kdc__tight_box(const unsigned char *cov, int n, int x0, int y0, int x1, int y1,
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
        return;
    }
    box[0] = bx0;
    box[1] = by0;
    box[2] = bx1 + 1;
    box[3] = by1 + 1;
}

/* whether the squares around two objects' disks, one pixel wider on each
 * side, overlap: if they do not, neither do their boxes */
static int kdc__squares_overlap(const kdc__obj *a, const kdc__obj *b)
{
    float ra = a->rad + 1.0f, rb = b->rad + 1.0f;
    return a->cx - ra < b->cx + rb && b->cx - rb < a->cx + ra && a->cy - ra < b->cy + rb &&
           b->cy - rb < a->cy + ra;
}

#define KDC__DECOY_TRIES 32

static kdc_status kdc__render_hard(uint64_t seed, uint64_t index, int size, kdc_image **out,
                                   kdc_shape_info *info, unsigned char *mask)
{
    kdc__polys P;
    kdc__make_polys(&P.star, &P.hex, &P.tri);

    const int n = size;
    const size_t npx = (size_t)n * (size_t)n;
    kdc__canvas c;
    c.n = n;
    c.px = malloc(npx * 3 * sizeof *c.px);
    unsigned char *cov = malloc(npx); /* coverage of one object, 0..16 */
    kdc_image *img = NULL;
    kdc_status st = KDC_OK;
    if (!c.px || !cov) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_shapes_render: out of memory for a %dx%d image",
                       n, n);
        goto free_bufs;
    }

    kdc__rng r;
    r.s = kdc__mix64(seed ^ 0x4841524453484150ULL) ^ kdc__mix64(index * 0xD1B54A32D192ED03ULL + 1);
    kdc__obj obj;
    obj.decoy = 0;
    obj.kind = kdc__ui(&r, 0, KDC__NCLASS - 1);
    const float diam = kdc__ur(&r, 0.20f, 0.45f) * (float)n;
    obj.rad = 0.5f * diam;
    obj.cx = kdc__ur(&r, obj.rad + 1.0f, (float)n - obj.rad - 1.0f);
    obj.cy = kdc__ur(&r, obj.rad + 1.0f, (float)n - obj.rad - 1.0f);
    obj.angle = kdc__ui(&r, 0, 359);

    kdc__rng rb = {kdc__next(&r)}, rd = {kdc__next(&r)}, ro = {kdc__next(&r)};
    kdc__rng rq = {kdc__next(&r)}, rg = {kdc__next(&r)};

    /* decoys: placed by rejection (a bounded number of tries each) outside
     * the object's square and each other's */
    kdc__obj dec[KDC_SHAPES_MAX_DECOYS];
    int ndec = 0;
    const int want = kdc__ui(&rq, 1, KDC_SHAPES_MAX_DECOYS);
    for (int d = 0; d < want; d++) {
        kdc__obj o;
        o.decoy = 1;
        o.kind = kdc__ui(&rq, 0, KDC__NDECOY - 1);
        o.rad = 0.5f * kdc__ur(&rq, 0.20f, 0.45f) * (float)n;
        o.angle = kdc__ui(&rq, 0, 359);
        for (int t = 0; t < KDC__DECOY_TRIES; t++) {
            o.cx = kdc__ur(&rq, o.rad + 1.0f, (float)n - o.rad - 1.0f);
            o.cy = kdc__ur(&rq, o.rad + 1.0f, (float)n - o.rad - 1.0f);
            int ok = !kdc__squares_overlap(&o, &obj);
            for (int e = 0; e < ndec && ok; e++)
                ok = !kdc__squares_overlap(&o, &dec[e]);
            if (ok) {
                dec[ndec++] = o;
                break;
            }
        }
    }

    kdc__background(&c, &rb);
    const int ndis = kdc__ui(&rd, 1, 3);
    for (int d = 0; d < ndis; d++)
        kdc__distractor(&c, &rd);

    int dbox[KDC_SHAPES_MAX_DECOYS][4], box[4], wx0, wy0, wx1, wy1;
    for (int d = 0; d < ndec; d++) {
        kdc__rng rp = {kdc__next(&rq)};
        kdc__cover(&P, &dec[d], n, cov, &wx0, &wy0, &wx1, &wy1);
        kdc__paint(&c, cov, &dec[d], wx0, wy0, wx1, wy1, &rp);
        kdc__tight_box(cov, n, wx0, wy0, wx1, wy1, dbox[d], NULL);
    }
    kdc__cover(&P, &obj, n, cov, &wx0, &wy0, &wx1, &wy1);
    kdc__paint(&c, cov, &obj, wx0, wy0, wx1, wy1, &ro);
    if (mask)
        memset(mask, 0, npx);
    kdc__tight_box(cov, n, wx0, wy0, wx1, wy1, box, mask);

    /* grain over everything, then quantise */
    if ((st = kdc_image_create(n, n, &img)))
        goto free_bufs;
    const float grain = kdc__ur(&rg, 0.0f, 8.0f);
    for (size_t i = 0; i < npx; i++) {
        float e = grain * (kdc__uf(&rg) - 0.5f) * 2.0f;
        for (int k = 0; k < 3; k++) {
            float v = c.px[i * 3 + k] + e + 0.5f;
            img->rgb[i * 3 + k] = (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
        }
    }
    if (info) {
        memset(info, 0, sizeof *info);
        info->cls = obj.kind;
        memcpy(info->box, box, sizeof box);
        info->cx = obj.cx;
        info->cy = obj.cy;
        info->diameter = diam;
        info->angle = obj.angle;
        info->style = KDC_SHAPES_HARD;
        info->ndecoys = ndec;
        for (int d = 0; d < ndec; d++) {
            info->decoy_kind[d] = dec[d].kind;
            memcpy(info->decoy_box[d], dbox[d], sizeof dbox[d]);
        }
    }
    *out = img;
free_bufs:
    free(c.px);
    free(cov);
    return st;
}

kdc_status kdc_shapes_render_ex(uint64_t seed, uint64_t index, int size, kdc_shapes_style style,
                                kdc_image **out, kdc_shape_info *info, unsigned char *mask)
{
    if (out)
        *out = NULL;
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_shapes_render: out is NULL");
    if (size < KDC_SHAPES_MIN_SIZE || size > KDC_SHAPES_MAX_SIZE)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "kdc_shapes_render: size %d is outside %d..%d", size,
                         KDC_SHAPES_MIN_SIZE, KDC_SHAPES_MAX_SIZE);
    switch (style) {
    case KDC_SHAPES_HARD:
        return kdc__render_hard(seed, index, size, out, info, mask);
    case KDC_SHAPES_CLASSIC:
        return kdc__render_classic(seed, index, size, out, info, mask);
    default:
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_shapes_render: unknown style %d",
                         (int)style);
    }
}

kdc_status kdc_shapes_render(uint64_t seed, uint64_t index, int size, kdc_image **out,
                             kdc_shape_info *info, unsigned char *mask)
{
    return kdc_shapes_render_ex(seed, index, size, KDC_SHAPES_HARD, out, info, mask);
}
