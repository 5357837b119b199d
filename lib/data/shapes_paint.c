/* shapes_paint.c - the float canvas of the shapes dataset: its
 * background, the distractors, painting an object from its coverage, and
 * the grain and quantisation that turn it into an image
 * (shapes_internal.h). Both styles paint through these, so they share
 * their pixels' rules. */
#include <string.h>

#include "shapes_internal.h"

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

/* ------------------------------------------------------------------ */
/* Background and distractors                                          */

static void kdc__background(kdc__canvas *c, kdc__rng *r)
{
    const int n = c->n;
    float c0[3], c1[3];
    kdc__rand_colour(r, c0);
    kdc__rand_colour(r, c1);
    double ga = kdc__ur(r, 0.0f, 6.2831853f);
    float gdx = (float)kdc__shapes_cos(ga), gdy = (float)kdc__shapes_sin(ga);
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
        float dx = (float)kdc__shapes_cos(a), dy = (float)kdc__shapes_sin(a);
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

/* Every distractor is at most 4 pixels thick, made of dots at most 5
 * pixels across, or a bar with an aspect ratio of at least 4, so that none
 * can be taken for a class object by construction. */
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
        float dx = (float)kdc__shapes_cos(a) * 0.5f * len;
        float dy = (float)kdc__shapes_sin(a) * 0.5f * len;
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

void kdc__shapes_clutter(kdc__canvas *c, kdc__rng *rb, kdc__rng *rd)
{
    kdc__background(c, rb);
    const int ndis = kdc__ui(rd, 1, 3);
    for (int d = 0; d < ndis; d++)
        kdc__distractor(c, rd);
}

/* ------------------------------------------------------------------ */
/* An object, from its coverage                                        */

static float kdc__colour_dist(const float a[3], const float b[3])
{
    return kdc__absf(a[0] - b[0]) + kdc__absf(a[1] - b[1]) + kdc__absf(a[2] - b[2]);
}

void kdc__shapes_paint(kdc__canvas *c, const kdc__obj *o, int x0, int y0, int x1, int y1,
                       kdc__rng *ro)
{
    const int n = c->n;
    const unsigned char *cov = c->cov;
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
    const float sdx = (float)kdc__shapes_cos(sang), sdy = (float)kdc__shapes_sin(sang);
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

/* ------------------------------------------------------------------ */
/* Grain over everything, then quantise                                */

kdc_status kdc__shapes_finish(const kdc__canvas *c, kdc__rng *rg, kdc_image **out)
{
    const size_t npx = (size_t)c->n * (size_t)c->n;
    kdc_image *img;
    kdc_status st = kdc_image_create(c->n, c->n, &img);
    if (st)
        return st;
    const float grain = kdc__ur(rg, 0.0f, 8.0f);
    for (size_t i = 0; i < npx; i++) {
        float e = grain * (kdc__uf(rg) - 0.5f) * 2.0f;
        for (int k = 0; k < 3; k++) {
            float v = c->px[i * 3 + k] + e + 0.5f;
            img->rgb[i * 3 + k] = (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
        }
    }
    *out = img;
    return KDC_OK;
}
