/* shapes_hard.c - the hard style of the shapes dataset (KDC_SHAPES_HARD,
 * the default): the class object 20-45% of the side across anywhere in
 * the frame, on the classic style's kind of background and distractors,
 * plus 1-3 decoys: objects of the same size range, fills and colours in
 * shapes that no class has at any rotation or scale (long ellipse, arrow,
 * L, T, half disk, long oval ring; their outlines are in shapes_geom.c),
 * placed by a bounded, deterministic rejection sampling so that they
 * never overlap the class object's box. */
#include <string.h>

#include "shapes_internal.h"

#define KDC__DECOY_TRIES 32

/* whether the squares around two objects' disks, one pixel wider on each
 * side, overlap: if they do not, neither do their boxes */
static int kdc__squares_overlap(const kdc__obj *a, const kdc__obj *b)
{
    float ra = a->rad + 1.0f, rb = b->rad + 1.0f;
    return a->cx - ra < b->cx + rb && b->cx - rb < a->cx + ra && a->cy - ra < b->cy + rb &&
           b->cy - rb < a->cy + ra;
}

/* Decoys placed by rejection (a bounded number of tries each) outside the
 * class object's square and each other's; a decoy that finds no room is
 * dropped. Returns how many were placed into dec. */
static int kdc__place_decoys(const kdc__obj *obj, int n, kdc__rng *rq,
                             kdc__obj dec[KDC_SHAPES_MAX_DECOYS])
{
    int ndec = 0;
    const int want = kdc__ui(rq, 1, KDC_SHAPES_MAX_DECOYS);
    for (int d = 0; d < want; d++) {
        kdc__obj o;
        o.decoy = 1;
        o.kind = kdc__ui(rq, 0, KDC__NDECOY - 1);
        o.rad = 0.5f * kdc__ur(rq, 0.20f, 0.45f) * (float)n;
        o.angle = kdc__ui(rq, 0, 359);
        for (int t = 0; t < KDC__DECOY_TRIES; t++) {
            o.cx = kdc__ur(rq, o.rad + 1.0f, (float)n - o.rad - 1.0f);
            o.cy = kdc__ur(rq, o.rad + 1.0f, (float)n - o.rad - 1.0f);
            int ok = !kdc__squares_overlap(&o, obj);
            for (int e = 0; e < ndec && ok; e++)
                ok = !kdc__squares_overlap(&o, &dec[e]);
            if (ok) {
                dec[ndec++] = o;
                break;
            }
        }
    }
    return ndec;
}

static kdc_status kdc__draw_hard(kdc__scene *s, kdc_image **out, kdc_shape_info *info,
                                unsigned char *mask)
{
    const int n = s->c.n;
    kdc__obj *obj = &s->obj;
    obj->cx = kdc__ur(&s->r, obj->rad + 1.0f, (float)n - obj->rad - 1.0f);
    obj->cy = kdc__ur(&s->r, obj->rad + 1.0f, (float)n - obj->rad - 1.0f);
    obj->angle = kdc__ui(&s->r, 0, 359);

    kdc__rng rb = {kdc__next(&s->r)}, rd = {kdc__next(&s->r)}, ro = {kdc__next(&s->r)};
    kdc__rng rq = {kdc__next(&s->r)}, rg = {kdc__next(&s->r)};

    kdc__obj dec[KDC_SHAPES_MAX_DECOYS];
    const int ndec = kdc__place_decoys(obj, n, &rq, dec);

    kdc__shapes_clutter(&s->c, &rb, &rd);

    int dbox[KDC_SHAPES_MAX_DECOYS][4], box[4], wx0, wy0, wx1, wy1;
    for (int d = 0; d < ndec; d++) {
        kdc__rng rp = {kdc__next(&rq)};
        kdc__shapes_cover(&s->P, &dec[d], n, s->c.cov, &wx0, &wy0, &wx1, &wy1);
        kdc__shapes_paint(&s->c, &dec[d], wx0, wy0, wx1, wy1, &rp);
        kdc__shapes_tight_box(s->c.cov, n, wx0, wy0, wx1, wy1, dbox[d], NULL);
    }
    kdc__shapes_cover(&s->P, obj, n, s->c.cov, &wx0, &wy0, &wx1, &wy1);
    kdc__shapes_paint(&s->c, obj, wx0, wy0, wx1, wy1, &ro);
    if (mask)
        memset(mask, 0, (size_t)n * (size_t)n);
    kdc__shapes_tight_box(s->c.cov, n, wx0, wy0, wx1, wy1, box, mask);

    kdc_image *img;
    kdc_status st = kdc__shapes_finish(&s->c, &rg, &img);
    if (st)
        return st;
    kdc__shapes_scene_info(s, box, KDC_SHAPES_HARD, info);
    if (info) {
        info->ndecoys = ndec;
        for (int d = 0; d < ndec; d++) {
            info->decoy_kind[d] = dec[d].kind;
            memcpy(info->decoy_box[d], dbox[d], sizeof dbox[d]);
        }
    }
    *out = img;
    return KDC_OK;
}

const kdc__shapes_style_def kdc__shapes_hard = {
    .salt = 0x4841524453484150ULL,
    .diam_lo = 0.20f,
    .diam_hi = 0.45f,
    .draw = kdc__draw_hard,
};
