/* detect_target.c - the CAM target of a detection (issue 13): the
 * pre-sigmoid class logit of the anchor behind it, optionally plus that
 * anchor's four box-regression outputs, as a KDC_TARGET_SEED backward
 * differentiates it (one-hot seeds on the head's outputs at its level). */
#include <stdlib.h>

#include "graph.h"
#include "run.h"

/* One seed on `layer` (the class logits: ch = K, or the box deltas: ch =
 * 4, A * ch channels): 1 at each detection's anchor channel(s) and cell. */
static kdc_status kdc__det_seed(const kdc_model *m, int layer, int ch, int box, int h, int w,
                                const kdc_detection *dets, int n, float **out)
{
    const int A = m->head.anchors, K = m->head.classes;
    int s[3];
    kdc_status st = kdc_model_layer_shape(m, layer, h, w, s);
    if (st)
        return st;
    for (int b = 0; b < n; b++) {
        const kdc_detection *d = &dets[b];
        if (d->anchor < 0 || d->anchor >= A || d->label < 0 || d->label >= K || d->y < 0 ||
            d->y >= s[1] || d->x < 0 || d->x >= s[2] || s[0] != A * ch)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detection_target: detection %d "
                             "(anchor %d, class %d, cell %d,%d) is not on %s (%d x %d x %d) for "
                             "a %d x %d input", b, d->anchor, d->label, d->y, d->x,
                             m->nodes[layer].name, s[0], s[1], s[2], h, w);
    }
    const size_t hw = (size_t)s[1] * s[2], per = (size_t)s[0] * hw;
    float *seed = calloc((size_t)n * per, sizeof *seed);
    if (!seed)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_detection_target: out of memory");
    for (int b = 0; b < n; b++) {
        const kdc_detection *d = &dets[b];
        /* class logits: channel anchor * K + label; box deltas: anchor * 4 + 0..3 */
        const int c0 = box ? d->anchor * 4 : d->anchor * K + d->label;
        for (int c = c0; c < c0 + (box ? 4 : 1); c++)
            seed[(size_t)b * per + (size_t)c * hw + (size_t)d->y * s[2] + d->x] = 1.0f;
    }
    *out = seed;
    return KDC_OK;
}

kdc_status kdc_detection_target(const kdc_model *m, int h, int w, const kdc_detection *dets,
                                int n, int with_box, kdc_target *tg)
{
    if (!m || !dets || !tg || n < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detection_target: NULL argument or no "
                         "detections");
    *tg = (kdc_target){.kind = KDC_TARGET_SEED};
    const kdc__head *hd = &m->head;
    if (!hd->kind)
        return kdc__fail(KDC_ERR_STATE, "kdc_detection_target: %s has no detection head",
                         m->arch);
    const int li = dets[0].level_index;
    for (int b = 0; b < n; b++) {
        const kdc_detection *d = &dets[b];
        if (d->level_index < 0 || d->level_index >= hd->nlevels)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detection_target: detection %d has "
                             "level index %d, the head has %d levels", b, d->level_index,
                             hd->nlevels);
        if (d->level_index != li)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detection_target: the detections "
                             "lie on different levels (p%d, p%d): one image at a time",
                             dets[0].level, d->level);
    }
    float *cls = NULL, *reg = NULL;
    kdc_status st = kdc__det_seed(m, hd->cls[li], hd->classes, 0, h, w, dets, n, &cls);
    if (!st && with_box)
        st = kdc__det_seed(m, hd->reg[li], 4, 1, h, w, dets, n, &reg);
    if (st) {
        free(cls);
        return st;
    }
    tg->layer = hd->cls[li];
    tg->seed = cls;
    if (reg) {
        tg->layer2 = hd->reg[li];
        tg->seed2 = reg;
    }
    return KDC_OK;
}
