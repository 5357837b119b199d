/* shapes_internal.h - what the files of the procedural shapes dataset
 * share; never installed. One job per file:
 *
 *   shapes.c          the public entry points: class, decoy and style
 *                     names, kdc_shapes_render(_ex) (checks, picks the
 *                     style, starts its scene)
 *   shapes_classic.c  the classic style: its definition and drawing
 *   shapes_hard.c     the hard style: its definition, decoy placement
 *                     and drawing
 *   shapes_detect.c   the detection images: several objects placed with
 *                     bounded overlap, labelled by their visible pixels
 *   shapes_geom.c     shape geometry: deterministic sine and cosine, the
 *                     class and decoy outlines, an object's supersampled
 *                     coverage of the pixel grid and its tight box
 *   shapes_paint.c    the float canvas: background, distractors, painting
 *                     a covered object, grain and quantisation
 *   shapes_scene.c    one image's scene, as both styles start it: buffers,
 *                     polygons, random stream, the class object, its labels
 *
 * Determinism: image `index` of `seed` depends only on (seed, index, size,
 * style). The random numbers come from splitmix64 (below); the geometry
 * uses float/double arithmetic with our own sine/cosine series (no libm),
 * so the same inputs give the same pixels on any IEEE-754 machine as long
 * as a*b+c is not contracted into fused multiply-adds (the pragma below;
 * checked by the pinned checksums in tests/test_shapes.c). */
#ifndef KDC_SHAPES_INTERNAL_H
#define KDC_SHAPES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* No fused multiply-adds: they would change pixels between machines.
 * Clang honours the pragma (from here to the end of every file that
 * includes this header); GCC ignores it but contracts nothing in ISO C
 * mode (-std=c11). Building with -ffp-contract=fast changes the images. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define KDC__NCLASS 10 /* shape classes (names in shapes.c)              */
#define KDC__NDECOY 6  /* decoy kinds of the hard style (names in shapes.c) */
#define KDC__SS 4      /* supersampling per axis for an object's coverage */
#define KDC__PI 3.14159265358979323846

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64                                          */

typedef struct kdc__rng {
    uint64_t s;
} kdc__rng;

static inline uint64_t kdc__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t kdc__next(kdc__rng *r)
{
    r->s += 0x9E3779B97F4A7C15ULL;
    return kdc__mix64(r->s);
}

/* uniform in [0, 1) with 24 bits */
static inline float kdc__uf(kdc__rng *r)
{
    return (float)(kdc__next(r) >> 40) * (1.0f / 16777216.0f);
}

static inline float kdc__ur(kdc__rng *r, float lo, float hi)
{
    return lo + (hi - lo) * kdc__uf(r);
}

/* uniform integer in [lo, hi] */
static inline int kdc__ui(kdc__rng *r, int lo, int hi)
{
    return lo + (int)((kdc__next(r) >> 33) % (uint64_t)(hi - lo + 1));
}

static inline float kdc__absf(float x)
{
    return x < 0 ? -x : x;
}

/* ------------------------------------------------------------------ */
/* Geometry (shapes_geom.c)                                            */

double kdc__shapes_sin(double x);
double kdc__shapes_cos(double x);

typedef struct kdc__poly {
    int n;
    float x[12], y[12];
} kdc__poly;

/* the polygon classes' outlines; a few dozen sines per image are cheaper
 * than shared state */
typedef struct kdc__polys {
    kdc__poly star, hex, tri;
} kdc__polys;

void kdc__shapes_make_polys(kdc__polys *P);

/* One object: a class (decoy 0, kind 0..KDC__NCLASS-1) or a decoy
 * (decoy 1, kind 0..KDC__NDECOY-1) in the disk of radius rad around
 * (cx, cy), turned by angle degrees. */
typedef struct kdc__obj {
    int decoy, kind;
    float cx, cy, rad;
    int angle;
} kdc__obj;

/* Coverage (0..KDC__SS^2 samples) of o into cov (n x n), which is zero
 * outside the returned window [*x0, *x1] x [*y0, *y1]. */
void kdc__shapes_cover(const kdc__polys *P, const kdc__obj *o, int n, unsigned char *cov,
                       int *x0, int *y0, int *x1, int *y1);

/* Tight box (x1, y1 exclusive) of the pixels at least half covered in the
 * window; returns 0, box {0, 0, 0, 0}, when there are none. mask (n x n,
 * may be NULL) gets 0/1 inside the window. */
int kdc__shapes_tight_box(const unsigned char *cov, int n, int x0, int y0, int x1, int y1,
                          int box[4], unsigned char *mask);

/* ------------------------------------------------------------------ */
/* The canvas (shapes_paint.c)                                         */

typedef struct kdc__canvas {
    int n;              /* side */
    float *px;          /* n*n*3 floats in 0..255 */
    unsigned char *cov; /* n*n: the coverage of the object being drawn */
} kdc__canvas;

/* The clutter both styles draw first: a background (gradient, value
 * noise, stripes, soft blobs) from rb, then 1-3 distractors that belong to
 * no class (thin lines, zigzags, long thin bars, clusters of small dots)
 * from rd. */
void kdc__shapes_clutter(kdc__canvas *c, kdc__rng *rb, kdc__rng *rd);

/* Paints the pixels c->cov covers in the window (from kdc__shapes_cover
 * of o): a colour far from the background under them; solid, shaded,
 * striped or noisy fill. */
void kdc__shapes_paint(kdc__canvas *c, const kdc__obj *o, int x0, int y0, int x1, int y1,
                       kdc__rng *ro);

/* Grain over the whole canvas from rg, quantised into a new image *out
 * (kdc_image_destroy it). */
kdc_status kdc__shapes_finish(const kdc__canvas *c, kdc__rng *rg, kdc_image **out);

/* ------------------------------------------------------------------ */
/* One image's scene (shapes_scene.c) and the styles                   */

/* What every style starts from: the canvas, the polygons, the image's
 * random stream and its class object. */
typedef struct kdc__scene {
    kdc__polys P;
    kdc__canvas c;
    kdc__rng r;   /* the image's stream; the styles split it further */
    kdc__obj obj; /* the class object: its cx, cy, angle are the style's */
    float diam;   /* its diameter, 2 * obj.rad */
} kdc__scene;

/* A style, as the op table describes an op: one definition in the style's
 * own file, which kdc_shapes_render_ex picks by kdc_shapes_style. */
typedef struct kdc__shapes_style_def {
    uint64_t salt;          /* the image's stream is seeded from seed ^ salt */
    float diam_lo, diam_hi; /* the class object's diameter, fraction of the side */
    /* Draws the image of scene s (from kdc__shapes_scene_init) into *out
     * and fills info and mask, each if not NULL. */
    kdc_status (*draw)(kdc__scene *s, kdc_image **out, kdc_shape_info *info,
                       unsigned char *mask);
} kdc__shapes_style_def;

extern const kdc__shapes_style_def kdc__shapes_classic; /* shapes_classic.c */
extern const kdc__shapes_style_def kdc__shapes_hard;    /* shapes_hard.c */

/* Allocates an n x n canvas (contents undefined; on failure
 * KDC_ERR_NO_MEMORY and nothing to free), makes the polygons, seeds r from
 * seed ^ def->salt and index, and draws from r the class object's class
 * and its diameter. */
kdc_status kdc__shapes_scene_init(kdc__scene *s, const kdc__shapes_style_def *def, int n,
                                  uint64_t seed, uint64_t index);
void kdc__shapes_scene_free(kdc__scene *s);

/* Fills info (if not NULL) with the class object, its box and the style;
 * no decoys. */
void kdc__shapes_scene_info(const kdc__scene *s, const int box[4], kdc_shapes_style style,
                            kdc_shape_info *info);

#endif /* KDC_SHAPES_INTERNAL_H */
