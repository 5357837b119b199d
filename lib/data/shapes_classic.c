/* shapes_classic.c - the classic style of the shapes dataset
 * (KDC_SHAPES_CLASSIC): one object of one of KDC__NCLASS shape classes, 48-68%
 * of the image side across (the disk it fits in), on a cluttered
 * background with 1-3 distractors that belong to no class. Class objects
 * are solid (or hollow, with thick walls), so no distractor can be taken
 * for one by construction (shapes_paint.c).
 *
 * Exactly the generator as it was before the hard style: its pixels are
 * pinned by tests/test_shapes.c and the demo models were trained on them;
 * do not change anything here, or in what it calls, that touches pixels. */
#include <string.h>

#include "shapes_internal.h"

static kdc_status kdc__draw_classic(kdc__scene *s, kdc_image **out, kdc_shape_info *info,
                                   unsigned char *mask)
{
    const int n = s->c.n;
    /* scene parameters first, so each draw is independent of the others */
    const float margin = s->obj.rad + 1.0f;
    s->obj.cx = kdc__ur(&s->r, margin, (float)n - margin);
    s->obj.cy = kdc__ur(&s->r, margin, (float)n - margin);
    s->obj.angle = kdc__ui(&s->r, 0, 359);

    kdc__rng rb = {kdc__next(&s->r)}, rd = {kdc__next(&s->r)}, ro = {kdc__next(&s->r)};
    kdc__rng rg = {kdc__next(&s->r)};
    kdc__shapes_clutter(&s->c, &rb, &rd);

    int x0, y0, x1, y1, box[4];
    kdc__shapes_cover(&s->P, &s->obj, n, s->c.cov, &x0, &y0, &x1, &y1);
    kdc__shapes_paint(&s->c, &s->obj, x0, y0, x1, y1, &ro);

    kdc_image *img;
    kdc_status st = kdc__shapes_finish(&s->c, &rg, &img);
    if (st)
        return st;

    /* mask and tight box: pixels at least half covered */
    if (mask)
        memset(mask, 0, (size_t)n * (size_t)n);
    if (!kdc__shapes_tight_box(s->c.cov, n, x0, y0, x1, y1, box, mask))
        box[0] = box[1] = n; /* none: {n, n, 0, 0}, as this style always said */
    kdc__shapes_scene_info(s, box, KDC_SHAPES_CLASSIC, info);
    *out = img;
    return KDC_OK;
}

const kdc__shapes_style_def kdc__shapes_classic = {
    .salt = 0x5348415045530000ULL,
    .diam_lo = 0.48f,
    .diam_hi = 0.68f,
    .draw = kdc__draw_classic,
};
