/* detect.c - what detection backbones need around the network: the
 * detector input (resize keeping the aspect ratio, normalise, pad) and
 * energy targets on a level, optionally inside a box or on one channel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

void kdc_model_det_preprocess(const kdc_model *m, kdc_det_preprocess *pp)
{
    static const float tv_mean[3] = {0.485f, 0.456f, 0.406f}, tv_std[3] = {0.229f, 0.224f, 0.225f};
    static const float mm_mean[3] = {123.675f, 116.28f, 103.53f};
    static const float mm_std[3] = {58.395f, 57.12f, 57.375f};
    if (!pp)
        return;
    const int mm = m && m->detector == 2;
    pp->short_side = m && m->det_short ? m->det_short : 800;
    pp->max_side = m && m->det_max ? m->det_max : 1333;
    pp->pad = 32;
    pp->scale = mm ? 1.0f : 1.0f / 255.0f;
    pp->round_size = mm;
    memcpy(pp->mean, mm ? mm_mean : tv_mean, sizeof pp->mean);
    memcpy(pp->std, mm ? mm_std : tv_std, sizeof pp->std);
}

kdc_status kdc_preprocess_detection(const kdc_image *img, const kdc_det_preprocess *pp,
                                    float **out, int *h, int *w, int *content_h, int *content_w,
                                    double *scale)
{
    if (!img || !pp || !out || !h || !w || !img->rgb)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_preprocess_detection: NULL argument");
    *out = NULL;
    if (pp->short_side < 1 || pp->max_side < pp->short_side || pp->pad < 1 || pp->pad > 1024)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "detection resize %d,%d (pad %d) is not valid: "
                         "need 1 <= short <= max, 1 <= pad <= 1024", pp->short_side, pp->max_side,
                         pp->pad);
    for (int c = 0; c < 3; c++)
        if (!(pp->std[c] > 0.0f))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "detection std[%d] must be positive", c);
    const int iw = img->width, ih = img->height;
    const double sm = iw < ih ? iw : ih, lg = iw < ih ? ih : iw;
    double s = pp->short_side / sm;
    if (lg * s > pp->max_side)
        s = pp->max_side / lg;
    const double rnd = pp->round_size ? 0.5 : 0.0;
    const int rh = (int)floor(ih * s + rnd), rw = (int)floor(iw * s + rnd);
    if (rh < 1 || rw < 1 || rh > 16384 || rw > 16384)
        return kdc__fail(KDC_ERR_SHAPE, "detection resize of %dx%d gives %dx%d", iw, ih, rw, rh);
    const int ph = (rh + pp->pad - 1) / pp->pad * pp->pad, pw = (rw + pp->pad - 1) / pp->pad * pp->pad;
    const size_t iplane = (size_t)ih * iw, rplane = (size_t)rh * rw;
    float *src = malloc(3 * iplane * sizeof *src), *rs = malloc(3 * rplane * sizeof *rs);
    float *dst = calloc(3 * (size_t)ph * pw, sizeof *dst);
    kdc_status st = KDC_OK;
    if (!src || !rs || !dst) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "detection input %dx%d: out of memory", pw, ph);
        goto done;
    }
    /* normalise, then resize: both linear, so the order matches either
     * library up to rounding (mmdetection resizes 8-bit pixels first) */
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < iplane; i++)
            src[c * iplane + i] = ((float)img->rgb[i * 3 + c] * pp->scale - pp->mean[c]) / pp->std[c];
    if ((st = kdc_resize_bilinear(src, 3, ih, iw, rh, rw, rs)))
        goto done;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < rh; y++)
            memcpy(dst + ((size_t)c * ph + y) * pw, rs + ((size_t)c * rh + y) * rw,
                   (size_t)rw * sizeof *dst);
    *out = dst;
    dst = NULL;
    *h = ph;
    *w = pw;
    if (content_h)
        *content_h = rh;
    if (content_w)
        *content_w = rw;
    if (scale)
        *scale = s;
done:
    free(dst);
    free(rs);
    free(src);
    return st;
}

kdc_status kdc_energy_seed(const float *act, int n, int c, int h, int w, int in_h, int in_w,
                           kdc_energy kind, const float *box, int channel, float *seed)
{
    if (!act || !seed || n < 1 || c < 1 || h < 1 || w < 1 || in_h < 1 || in_w < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "energy target: bad arguments");
    if (channel < -1 || channel >= c)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "energy target: channel %d is out of range "
                         "0..%d", channel, c - 1);
    if (kind != KDC_ENERGY_SUMSQ && kind != KDC_ENERGY_MEAN)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "energy target: unknown kind %d", (int)kind);
    unsigned char *in = malloc((size_t)h * w);
    if (!in)
        return kdc__fail(KDC_ERR_NO_MEMORY, "energy target: out of memory");
    size_t cells = 0;
    if (box) {
        if (!(box[0] < box[2] && box[1] < box[3]) || box[2] <= 0 || box[3] <= 0 ||
            box[0] >= in_w || box[1] >= in_h) {
            free(in);
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "box %g,%g,%g,%g is empty or outside the "
                             "%dx%d input", box[0], box[1], box[2], box[3], in_w, in_h);
        }
        const double sx = (double)in_w / w, sy = (double)in_h / h;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double cx = (x + 0.5) * sx, cy = (y + 0.5) * sy;
                in[(size_t)y * w + x] = cx >= box[0] && cx < box[2] && cy >= box[1] && cy < box[3];
                cells += in[(size_t)y * w + x];
            }
        if (!cells) { /* a box smaller than a cell: the cell under its centre */
            int x = (int)((box[0] + box[2]) / 2 / sx), y = (int)((box[1] + box[3]) / 2 / sy);
            x = x < 0 ? 0 : x >= w ? w - 1 : x;
            y = y < 0 ? 0 : y >= h ? h - 1 : y;
            in[(size_t)y * w + x] = 1;
            cells = 1;
        }
    } else {
        memset(in, 1, (size_t)h * w);
        cells = (size_t)h * w;
    }
    const size_t plane = (size_t)h * w;
    const double count = (double)cells * (channel < 0 ? c : 1);
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            const float *a = act + ((size_t)b * c + ch) * plane;
            float *s = seed + ((size_t)b * c + ch) * plane;
            const int on = channel < 0 || ch == channel;
            for (size_t i = 0; i < plane; i++) {
                if (!on || !in[i])
                    s[i] = 0.0f;
                else if (kind == KDC_ENERGY_SUMSQ)
                    s[i] = 2.0f * a[i]; /* d sum(a^2) / da */
                else
                    s[i] = (float)(1.0 / count);
            }
        }
    free(in);
    return KDC_OK;
}
