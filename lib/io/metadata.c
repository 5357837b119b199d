/* metadata.c - parsing the kdcam.* metadata strings of a weights file.
 * They come from the file, so every number is bounded before it is used. */
#include <stdlib.h>
#include <string.h>

#include "io/metadata.h"

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

kdc_status kdc__meta_preprocess(const char *path, const char *v, kdc_preprocess *pp)
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
            if (end != s + 7 && (r < 0 || r > KDC__META_MAX_SIDE))
                return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.preprocess: resize=%ld is "
                                 "not in 0..%d", path, r, KDC__META_MAX_SIDE);
            ok = end != s + 7;
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
            if (w != -1 && (h < 0 || h > KDC__META_MAX_SIDE || w < 0 || w > KDC__META_MAX_SIDE))
                return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.preprocess: crop=%ldx%ld "
                                 "is not within 0..%d on each side", path, h, w,
                                 KDC__META_MAX_SIDE);
            ok = w != -1;
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

kdc_status kdc__meta_detect(const char *path, const char *v, int *short_side, int *max_side,
                            int *anchor)
{
    long sv = 0, mv = 0, av = 0;
    const char *s = v;
    char *end;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        long *dst = !strncmp(s, "short=", 6)    ? &sv
                    : !strncmp(s, "max=", 4)    ? &mv
                    : !strncmp(s, "anchor=", 7) ? &av
                                                : NULL;
        if (!dst)
            break;
        s += dst == &sv ? 6 : dst == &mv ? 4 : 7;
        long r = strtol(s, &end, 10);
        if (end == s || r < (dst == &av ? 4 : 32) || r > (dst == &av ? 1024 : KDC__META_MAX_DET) ||
            (*end && *end != ' '))
            break;
        *dst = r;
        s = end;
    }
    if (*s || !sv || !mv || sv > mv)
        return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.detect \"%s\": expected \"short=S "
                         "max=M [anchor=A]\" with 32 <= S <= M <= %d, 4 <= A <= 1024", path, v,
                         KDC__META_MAX_DET);
    *short_side = (int)sv;
    *max_side = (int)mv;
    *anchor = (int)av;
    return KDC_OK;
}

kdc_status kdc__meta_classes(const char *path, const char *v, int num_classes, char **text,
                             char ***names)
{
    int n = 1;
    char *t = NULL, **nm = NULL;
    *text = NULL;
    *names = NULL;
    for (const char *s = v; *s; s++)
        n += *s == ',';
    if (num_classes <= 0 || n != num_classes)
        return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.classes names %d classes, the "
                         "model has %d", path, n, num_classes);
    t = strdup(v);
    nm = calloc((size_t)n, sizeof *nm);
    if (!t || !nm) {
        free(t);
        free(nm);
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for class names", path);
    }
    char *s = t;
    for (int i = 0; i < n; i++) {
        nm[i] = s;
        char *c = strchr(s, ',');
        if (c) {
            *c = '\0';
            s = c + 1;
        }
        if (!nm[i][0]) {
            free(t);
            free(nm);
            return kdc__fail(KDC_ERR_FORMAT, "%s: metadata kdcam.classes: class %d has an "
                             "empty name", path, i);
        }
    }
    *text = t;
    *names = nm;
    return KDC_OK;
}
