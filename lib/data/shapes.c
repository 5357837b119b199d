/* shapes.c - the procedural shapes dataset (kdcam shapes): its public
 * entry points. The names of the classes, of the hard style's decoys and
 * of the styles, and kdc_shapes_render(_ex), which checks its arguments,
 * picks the style's definition, shapes_classic.c (KDC_SHAPES_CLASSIC, the
 * original large object) or shapes_hard.c (KDC_SHAPES_HARD, the default:
 * a small object with decoys), starts the image's scene and has the
 * style draw it. What they share, and why the same inputs
 * give the same pixels on any machine, is in shapes_internal.h. */
#include "shapes_internal.h"

/* in the order of the class outlines of shapes_geom.c */
static const char *const kdc__shape_names[KDC__NCLASS] = {
    "circle", "square", "triangle", "star", "cross",
    "ring",   "heart",  "hexagon",  "crescent", "frame",
};

/* in the order of the decoy outlines of shapes_geom.c */
static const char *const kdc__decoy_names[KDC__NDECOY] = {
    "ellipse", "arrow", "L", "T", "halfdisk", "ovalring",
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
    const kdc__shapes_style_def *def;
    switch (style) {
    case KDC_SHAPES_HARD:
        def = &kdc__shapes_hard;
        break;
    case KDC_SHAPES_CLASSIC:
        def = &kdc__shapes_classic;
        break;
    default:
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_shapes_render: unknown style %d",
                         (int)style);
    }
    kdc__scene s;
    kdc_status st = kdc__shapes_scene_init(&s, def, size, seed, index);
    if (st)
        return st;
    st = def->draw(&s, out, info, mask);
    kdc__shapes_scene_free(&s);
    return st;
}

kdc_status kdc_shapes_render(uint64_t seed, uint64_t index, int size, kdc_image **out,
                             kdc_shape_info *info, unsigned char *mask)
{
    return kdc_shapes_render_ex(seed, index, size, KDC_SHAPES_HARD, out, info, mask);
}
