/* shapes_detect.c - the detection images of the shapes dataset
 * (kdc_shapes_render_detection, `kdcam shapes --detection`): 2-6 class
 * objects of varied size (6-50% of the side across), a third of them small, that may overlap, on the
 * hard style's background, distractors and 0-2 decoys, labelled by what is
 * visible of each (box and pixel area after later objects cover it).
 *
 * Placement: the objects are drawn (class, diameter) and then placed by a
 * bounded, deterministic rejection sampling: a new object's square (around
 * its disk) may overlap an earlier one's with IoU at most 0.3, so objects
 * touch and partly cover each other but none disappears. They are painted
 * largest first, so small ones lie on top. Decoys go where no object's
 * square is. */
#include <stdlib.h>
#include <string.h>

#include "shapes_internal.h"

#define KDC__DET_TRIES 32
#define KDC__DET_MAX_IOU 0.3f

/* The scene's stream is seeded from seed ^ salt; the first object's class
 * and diameter come from kdc__shapes_scene_init with this range. */
static const kdc__shapes_style_def kdc__shapes_detection = {
    .salt = 0x4445544543545348ULL,
    .diam_lo = 0.12f,
    .diam_hi = 0.50f,
    .draw = NULL,
};

/* the square around an object's disk */
static void kdc__det_square(const kdc__obj *o, float sq[4])
{
    sq[0] = o->cx - o->rad;
    sq[1] = o->cy - o->rad;
    sq[2] = o->cx + o->rad;
    sq[3] = o->cy + o->rad;
}

static float kdc__det_iou(const kdc__obj *a, const kdc__obj *b)
{
    float p[4], q[4];
    kdc__det_square(a, p);
    kdc__det_square(b, q);
    float w = (p[2] < q[2] ? p[2] : q[2]) - (p[0] > q[0] ? p[0] : q[0]);
    float h = (p[3] < q[3] ? p[3] : q[3]) - (p[1] > q[1] ? p[1] : q[1]);
    if (w <= 0 || h <= 0)
        return 0;
    float i = w * h, ua = (p[2] - p[0]) * (p[3] - p[1]), ub = (q[2] - q[0]) * (q[3] - q[1]);
    return i / (ua + ub - i);
}

/* whether the squares, one pixel wider on each side, overlap at all */
static int kdc__det_touch(const kdc__obj *a, const kdc__obj *b)
{
    float ra = a->rad + 1.0f, rb = b->rad + 1.0f;
    return a->cx - ra < b->cx + rb && b->cx - rb < a->cx + ra && a->cy - ra < b->cy + rb &&
           b->cy - rb < a->cy + ra;
}

/* Places o (its rad set) anywhere in the frame: 1 if a spot was found
 * whose square overlaps each of the nprev objects' at IoU <= the bound
 * (decoy: not at all). */
static int kdc__det_place(kdc__obj *o, const kdc__obj *prev, int nprev, int n, kdc__rng *r)
{
    for (int t = 0; t < KDC__DET_TRIES; t++) {
        o->cx = kdc__ur(r, o->rad + 1.0f, (float)n - o->rad - 1.0f);
        o->cy = kdc__ur(r, o->rad + 1.0f, (float)n - o->rad - 1.0f);
        int ok = 1;
        for (int e = 0; e < nprev && ok; e++)
            ok = o->decoy ? !kdc__det_touch(o, &prev[e])
                          : kdc__det_iou(o, &prev[e]) <= KDC__DET_MAX_IOU;
        if (ok)
            return 1;
    }
    return 0;
}

/* The diameter of a further object: small (6-12% of the side, at least 10
 * pixels) one time in three, else 12-50%. */
static float kdc__det_diameter(kdc__rng *r, int n)
{
    const int small = kdc__ui(r, 0, 2) == 0;
    float d = (small ? kdc__ur(r, 0.06f, 0.12f) : kdc__ur(r, 0.12f, 0.50f)) * (float)n;
    return d < 10.0f ? 10.0f : d;
}

/* Largest first (stable), so that small objects are painted on top. */
static void kdc__det_sort(kdc__obj *o, int k)
{
    for (int i = 1; i < k; i++) {
        kdc__obj x = o[i];
        int j = i;
        for (; j > 0 && o[j - 1].rad < x.rad; j--)
            o[j] = o[j - 1];
        o[j] = x;
    }
}

static kdc_status kdc__draw_detection(kdc__scene *s, kdc_image **out, kdc_shapes_objects *info,
                                      unsigned char *owner)
{
    const int n = s->c.n;
    kdc__rng rb = {kdc__next(&s->r)}, rd = {kdc__next(&s->r)}, rq = {kdc__next(&s->r)};
    kdc__rng rg = {kdc__next(&s->r)}, rp = {kdc__next(&s->r)};

    kdc__obj obj[KDC_SHAPES_MAX_OBJECTS], dec[2];
    const int want = kdc__ui(&rq, 2, KDC_SHAPES_MAX_OBJECTS);
    int k = 0;
    obj[0] = s->obj;
    obj[0].angle = kdc__ui(&rq, 0, 359);
    if (kdc__det_place(&obj[0], obj, 0, n, &rq))
        k = 1;
    for (int i = 1; i < want; i++) {
        kdc__obj o = {.decoy = 0};
        o.kind = kdc__ui(&rq, 0, KDC__NCLASS - 1);
        o.rad = 0.5f * kdc__det_diameter(&rq, n);
        o.angle = kdc__ui(&rq, 0, 359);
        if (kdc__det_place(&o, obj, k, n, &rq))
            obj[k++] = o;
    }
    const int wantdec = kdc__ui(&rq, 0, 2);
    int ndec = 0;
    for (int d = 0; d < wantdec; d++) {
        kdc__obj o = {.decoy = 1};
        o.kind = kdc__ui(&rq, 0, KDC__NDECOY - 1);
        o.rad = 0.5f * kdc__ur(&rq, 0.12f, 0.30f) * (float)n;
        o.angle = kdc__ui(&rq, 0, 359);
        kdc__obj all[KDC_SHAPES_MAX_OBJECTS + 2];
        memcpy(all, obj, (size_t)k * sizeof *obj);
        memcpy(all + k, dec, (size_t)ndec * sizeof *dec);
        if (kdc__det_place(&o, all, k + ndec, n, &rq))
            dec[ndec++] = o;
    }
    kdc__det_sort(obj, k);

    kdc__shapes_clutter(&s->c, &rb, &rd);
    int wx0, wy0, wx1, wy1;
    for (int d = 0; d < ndec; d++) {
        kdc__rng ro = {kdc__next(&rp)};
        kdc__shapes_cover(&s->P, &dec[d], n, s->c.cov, &wx0, &wy0, &wx1, &wy1);
        kdc__shapes_paint(&s->c, &dec[d], wx0, wy0, wx1, wy1, &ro);
    }
    /* owner: 0, or 1 + the object that covers at least half of the pixel
     * last (the one on top) */
    memset(owner, 0, (size_t)n * (size_t)n);
    const int half = KDC__SS * KDC__SS / 2;
    for (int i = 0; i < k; i++) {
        kdc__rng ro = {kdc__next(&rp)};
        kdc__shapes_cover(&s->P, &obj[i], n, s->c.cov, &wx0, &wy0, &wx1, &wy1);
        kdc__shapes_paint(&s->c, &obj[i], wx0, wy0, wx1, wy1, &ro);
        for (int y = wy0; y <= wy1; y++)
            for (int x = wx0; x <= wx1; x++)
                if (s->c.cov[(size_t)y * n + x] >= half)
                    owner[(size_t)y * n + x] = (unsigned char)(i + 1);
    }
    kdc_status st = kdc__shapes_finish(&s->c, &rg, out);
    if (st)
        return st;
    if (!info)
        return KDC_OK;
    memset(info, 0, sizeof *info);
    info->n = k;
    info->ndecoys = ndec;
    for (int i = 0; i < k; i++) {
        info->cls[i] = obj[i].kind;
        info->cx[i] = obj[i].cx;
        info->cy[i] = obj[i].cy;
        info->diameter[i] = 2.0f * obj[i].rad;
        info->box[i][0] = info->box[i][1] = n;
    }
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int o = owner[(size_t)y * n + x] - 1;
            if (o < 0)
                continue;
            int *b = info->box[o];
            info->area[o]++;
            b[0] = x < b[0] ? x : b[0];
            b[1] = y < b[1] ? y : b[1];
            b[2] = x + 1 > b[2] ? x + 1 : b[2];
            b[3] = y + 1 > b[3] ? y + 1 : b[3];
        }
    /* an object that later ones cover wholly is no object: dropped, and
     * the owner map renumbered */
    int keep[KDC_SHAPES_MAX_OBJECTS + 1] = {0}, m = 0;
    for (int i = 0; i < k; i++) {
        if (!info->area[i])
            continue;
        keep[i + 1] = m + 1;
        info->cls[m] = info->cls[i];
        info->cx[m] = info->cx[i];
        info->cy[m] = info->cy[i];
        info->diameter[m] = info->diameter[i];
        info->area[m] = info->area[i];
        memcpy(info->box[m], info->box[i], sizeof info->box[i]);
        m++;
    }
    if (m < k) {
        for (size_t p = 0; p < (size_t)n * (size_t)n; p++)
            owner[p] = (unsigned char)keep[owner[p]];
        for (int i = m; i < k; i++) {
            info->cls[i] = info->area[i] = 0;
            memset(info->box[i], 0, sizeof info->box[i]);
        }
    }
    info->n = m;
    return KDC_OK;
}

kdc_status kdc_shapes_render_detection(uint64_t seed, uint64_t index, int size, kdc_image **out,
                                       kdc_shapes_objects *objects, unsigned char *mask)
{
    if (out)
        *out = NULL;
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_shapes_render_detection: out is NULL");
    if (size < KDC_SHAPES_MIN_SIZE || size > KDC_SHAPES_MAX_SIZE)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "kdc_shapes_render_detection: size %d is outside %d..%d", size,
                         KDC_SHAPES_MIN_SIZE, KDC_SHAPES_MAX_SIZE);
    kdc__scene s;
    kdc_status st = kdc__shapes_scene_init(&s, &kdc__shapes_detection, size, seed, index);
    if (st)
        return st;
    unsigned char *owner = mask ? mask : malloc((size_t)size * (size_t)size);
    if (!owner)
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_shapes_render_detection: out of memory");
    else
        st = kdc__draw_detection(&s, out, objects, owner);
    if (owner != mask)
        free(owner);
    kdc__shapes_scene_free(&s);
    return st;
}
