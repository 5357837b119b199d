/* metadata.c - a weights file's kdcam.* metadata applied to a model
 * (docs/api.md, "Model metadata"): the preprocessing and the class names
 * stored with it, parsed by io/metadata.c, and the memory the preprocessing
 * would ask for, checked before anything of that size is allocated. */
#include <stdlib.h>

#include "builder.h"
#include "metadata.h"

/* The activations one image needs at the size the metadata asks for,
 * checked before anything of that size is allocated (docs/security.md). */
static kdc_status kdc__meta_check_memory(const char *path, const struct kdc_model *m)
{
    const kdc_preprocess *pp = &m->preprocess;
    int h = pp->crop_h > 0 ? pp->crop_h : pp->resize_short;
    int w = pp->crop_w > 0 ? pp->crop_w : pp->resize_short;
    double bytes = 0;
    kdc_status st;
    int *chw;
    if (h <= 0 || w <= 0 || m->n_nodes <= 0)
        return KDC_OK;
    if (!(chw = malloc((size_t)m->n_nodes * 3 * sizeof *chw)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    if ((st = kdc__infer_shapes(m, h, w, chw)) != KDC_OK) {
        free(chw);
        return kdc__fail_context(st, "%s: metadata kdcam.preprocess", path);
    }
    for (int i = 0; i < m->n_nodes; i++)
        bytes += (double)chw[3 * i] * chw[3 * i + 1] * chw[3 * i + 2] * sizeof(float);
    free(chw);
    if (bytes > (double)KDC__META_MAX_ACTIVATION_BYTES)
        return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.preprocess asks for %dx%d inputs, "
                         "whose activations need %.0f MiB per image (limit %u MiB)", path, h, w,
                         bytes / (1 << 20), (unsigned)(KDC__META_MAX_ACTIVATION_BYTES >> 20));
    return KDC_OK;
}

/* The classes the model scores: its classifier's, or its detection
 * head's (num_classes is 0 for detectors). */
static int kdc__model_classes(const struct kdc_model *m)
{
    return m->num_classes > 0 ? m->num_classes : m->head.kind ? m->head.classes : 0;
}

kdc_status kdc__apply_metadata(const char *path, const kdc__st_file *f, struct kdc_model *m)
{
    kdc_status st;
    const char *v = kdc__st_metadata(f, "kdcam.preprocess");
    if (v && ((st = kdc__meta_preprocess(path, v, &m->preprocess)) ||
              (st = kdc__meta_check_memory(path, m))))
        return st;
    v = kdc__st_metadata(f, "kdcam.classes");
    if (v && (st = kdc__meta_classes(path, v, kdc__model_classes(m), &m->class_text,
                                     &m->class_names)))
        return st;
    v = kdc__st_metadata(f, "kdcam.detect");
    if (v && !m->detector)
        return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.detect on a model that is not a "
                         "detector", path);
    if (v && (st = kdc__meta_detect(path, v, &m->det_short, &m->det_max, &m->det_anchor)))
        return st;
    return KDC_OK;
}

const char *kdc_model_class_name(const kdc_model *m, int c)
{
    if (!m || c < 0 || c >= kdc__model_classes(m))
        return NULL;
    if (m->class_names)
        return m->class_names[c];
    return m->num_classes == 1000 ? kdc_imagenet_class_name(c) : NULL;
}
