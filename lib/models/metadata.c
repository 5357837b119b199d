/* metadata.c - a weights file's kdcam.* metadata (docs/api.md, "Model
 * metadata"): the preprocessing and the class names stored with a model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"

/* Parses n comma-separated floats of v into out; returns 0 on success. */
static int kdc__parse_floats(const char *v, float *out, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        double d = strtod(v, &end);
        if (end == v || !(d > -1e30 && d < 1e30))
            return -1;
        out[i] = (float)d;
        v = end;
        if (i + 1 < n) {
            if (*v != ',')
                return -1;
            v++;
        }
    }
    return *v == '\0' || *v == ' ' ? 0 : -1;
}

/* "kdcam.preprocess": "resize=R crop=HxW mean=a,b,c std=a,b,c", every
 * field optional, unnamed fields keep the architecture's default. */
static kdc_status kdc__meta_preprocess(const char *path, const char *v, kdc_preprocess *pp)
{
    kdc_preprocess p = *pp;
    const char *s = v;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        int ok = 0;
        char *end;
        if (!strncmp(s, "resize=", 7)) {
            long r = strtol(s + 7, &end, 10);
            ok = end != s + 7 && r >= 0 && r <= 16384;
            p.resize_short = (int)r;
            s = end;
        } else if (!strncmp(s, "crop=", 5)) {
            long h = strtol(s + 5, &end, 10), w = -1;
            if (end != s + 5 && *end == 'x') {
                const char *ws = end + 1;
                w = strtol(ws, &end, 10);
                if (end == ws)
                    w = -1;
            }
            ok = h >= 0 && h <= 16384 && w >= 0 && w <= 16384;
            p.crop_h = (int)h;
            p.crop_w = (int)w;
            s = end;
        } else if (!strncmp(s, "mean=", 5) || !strncmp(s, "std=", 4)) {
            int is_mean = s[0] == 'm';
            float *dst = is_mean ? p.mean : p.std;
            s += is_mean ? 5 : 4;
            ok = kdc__parse_floats(s, dst, 3) == 0;
            if (!is_mean)
                ok = ok && dst[0] > 0 && dst[1] > 0 && dst[2] > 0;
            while (*s && *s != ' ')
                s++;
        }
        if (!ok || (*s && *s != ' '))
            return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.preprocess \"%s\": expected "
                             "\"resize=R crop=HxW mean=a,b,c std=a,b,c\"", path, v);
    }
    *pp = p;
    return KDC_OK;
}

/* "kdcam.classes": the class names, comma-separated, one per output. */
static kdc_status kdc__meta_classes(const char *path, const char *v, struct kdc_model *m)
{
    int n = 1;
    for (const char *s = v; *s; s++)
        n += *s == ',';
    if (m->num_classes <= 0 || n != m->num_classes)
        return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.classes names %d classes, the "
                         "model has %d", path, n, m->num_classes);
    m->class_text = strdup(v);
    m->class_names = calloc((size_t)n, sizeof *m->class_names);
    if (!m->class_text || !m->class_names)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for class names", path);
    char *s = m->class_text;
    for (int i = 0; i < n; i++) {
        m->class_names[i] = s;
        char *c = strchr(s, ',');
        if (c) {
            *c = '\0';
            s = c + 1;
        }
        if (!m->class_names[i][0])
            return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.classes: class %d has an empty "
                             "name", path, i);
    }
    return KDC_OK;
}

kdc_status kdc__apply_metadata(const char *path, const kdc__st_file *f, struct kdc_model *m)
{
    kdc_status st;
    const char *v = kdc__st_metadata(f, "kdcam.preprocess");
    if (v && (st = kdc__meta_preprocess(path, v, &m->preprocess)))
        return st;
    v = kdc__st_metadata(f, "kdcam.classes");
    if (v && (st = kdc__meta_classes(path, v, m)))
        return st;
    return KDC_OK;
}

const char *kdc_model_class_name(const kdc_model *m, int c)
{
    if (!m || c < 0 || c >= m->num_classes)
        return NULL;
    if (m->class_names)
        return m->class_names[c];
    return m->num_classes == 1000 ? kdc_imagenet_class_name(c) : NULL;
}
