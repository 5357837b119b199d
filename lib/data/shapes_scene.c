/* shapes_scene.c - one image of the shapes dataset as both styles start
 * and label it: the canvas's buffers, the polygons, the image's random
 * stream, the class object's first draws and its kdc_shape_info
 * (shapes_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "shapes_internal.h"

kdc_status kdc__shapes_scene_init(kdc__scene *s, const kdc__shapes_style_def *def, int n,
                                  uint64_t seed, uint64_t index)
{
    const size_t npx = (size_t)n * (size_t)n;
    s->c.n = n;
    s->c.px = malloc(npx * 3 * sizeof *s->c.px);
    s->c.cov = malloc(npx);
    if (!s->c.px || !s->c.cov) {
        kdc__shapes_scene_free(s);
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_shapes_render: out of memory for a %dx%d image",
                         n, n);
    }
    kdc__shapes_make_polys(&s->P);
    s->r.s = kdc__mix64(seed ^ def->salt) ^ kdc__mix64(index * 0xD1B54A32D192ED03ULL + 1);
    s->obj.decoy = 0;
    s->obj.kind = kdc__ui(&s->r, 0, KDC__NCLASS - 1);
    s->diam = kdc__ur(&s->r, def->diam_lo, def->diam_hi) * (float)n;
    s->obj.rad = 0.5f * s->diam;
    return KDC_OK;
}

void kdc__shapes_scene_free(kdc__scene *s)
{
    free(s->c.px);
    free(s->c.cov);
    s->c.px = NULL;
    s->c.cov = NULL;
}

void kdc__shapes_scene_info(const kdc__scene *s, const int box[4], kdc_shapes_style style,
                            kdc_shape_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->cls = s->obj.kind;
    memcpy(info->box, box, sizeof info->box);
    info->cx = s->obj.cx;
    info->cy = s->obj.cy;
    info->diameter = s->diam;
    info->angle = s->obj.angle;
    info->style = style;
}
