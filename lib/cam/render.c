/* render.c - pictures: the JET colormap, CAM overlays, gradient images,
 * text, pasting and filling.
 *
 * The colour arithmetic follows pytorch-grad-cam (show_cam_on_image,
 * deprocess_image) and OpenCV (applyColorMap COLORMAP_JET) step by step in
 * float, as their NumPy float32 / OpenCV code does, so that the 8-bit
 * results agree exactly (truncations included). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-braces"
#endif
#include <stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* ------------------------------------------------------------------ */
/* JET                                                                 */

/* One anchor of GNU Octave's jet(256), which OpenCV's Jet class lists as its
 * base map: with x = i / 255,
 *   r = clip(min(4x - 1.5, 4.5 - 4x), 0, 1)
 *   g = clip(min(4x - 0.5, 3.5 - 4x), 0, 1)
 *   b = clip(min(4x + 0.5, 2.5 - 4x), 0, 1)
 * computed exactly as (4i - k) / 255 and stored as float (OpenCV's table
 * is float literals of these values). ch: 0 r, 1 g, 2 b. */
static float kdc__jet_anchor(int ch, int i)
{
    static const double up[3] = {382.5, 127.5, -127.5};  /* 4x - k  -> (4i - 255k)/255 */
    static const double down[3] = {1147.5, 892.5, 637.5}; /* k - 4x  -> (255k - 4i)/255 */
    double a = (4.0 * i - up[ch]) / 255.0, b = (down[ch] - 4.0 * i) / 255.0;
    double v = a < b ? a : b;
    v = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
    return (float)v;
}

/* OpenCV's COLORMAP_JET lookup table, built the way OpenCV builds it
 * (imgproc/src/colormap.cpp): X = linspace(0, 1, 256) in float
 * (x0 + i * step, step = 1.0f / 255), the anchors interpolated at the same
 * points by its interp1 (binary search, then y_lo + (x - x_lo) * (y_hi -
 * y_lo) / (x_hi - x_lo), all float), then convertTo(CV_8U, 255): the
 * float product v * 255.0f rounded to nearest, ties to even, saturated.
 * lut[v] is RGB (OpenCV's table is BGR). */
static void kdc__jet_lut(unsigned char lut[256][3])
{
    float X[256];
    const float step = 1.0f / 255.0f;
    for (int i = 0; i < 256; i++)
        X[i] = 0.0f + (float)i * step;
    for (int ch = 0; ch < 3; ch++) {
        float Y[256];
        for (int i = 0; i < 256; i++)
            Y[i] = kdc__jet_anchor(ch, i);
        for (int i = 0; i < 256; i++) {
            const float xi = X[i];
            int low = 0, high = 255;
            if (xi < X[low])
                high = 1;
            if (xi > X[high])
                low = high - 1;
            while (high - low > 1) {
                const int c = low + ((high - low) >> 1);
                if (xi > X[c])
                    low = c;
                else
                    high = c;
            }
            const float num = (xi - X[low]) * (Y[high] - Y[low]);
            const float yi = Y[low] + num / (X[high] - X[low]);
            float v = rintf(yi * 255.0f);
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            lut[i][ch] = (unsigned char)v;
        }
    }
}

/* uint8(255 * x) after clamping x to [0, 1] (NaN counts as 0), the index
 * pytorch-grad-cam passes to applyColorMap. */
static int kdc__jet_index(float x)
{
    if (!(x > 0.0f))
        return 0;
    if (x > 1.0f)
        x = 1.0f;
    return (int)(255.0f * x);
}

static const char *const kdc__cmap_names[KDC_COLORMAP_COUNT] = {"jet", "viridis", "inferno",
                                                                 "turbo"};

const char *kdc_colormap_name(kdc_colormap cmap)
{
    return (int)cmap >= 0 && cmap < KDC_COLORMAP_COUNT ? kdc__cmap_names[cmap] : NULL;
}

kdc_status kdc_colormap_parse(const char *name, kdc_colormap *cmap)
{
    if (!cmap)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_colormap_parse: cmap is NULL");
    for (int i = 0; name && i < KDC_COLORMAP_COUNT; i++)
        if (!strcmp(name, kdc__cmap_names[i])) {
            *cmap = (kdc_colormap)i;
            return KDC_OK;
        }
    return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown colormap '%s' (jet, viridis, inferno, "
                     "turbo)", name ? name : "(null)");
}

void kdc__colormap_lut(kdc_colormap cmap, unsigned char lut[256][3])
{
    switch (cmap) {
    case KDC_COLORMAP_VIRIDIS: memcpy(lut, kdc__cmap_viridis, 256 * 3); break;
    case KDC_COLORMAP_INFERNO: memcpy(lut, kdc__cmap_inferno, 256 * 3); break;
    case KDC_COLORMAP_TURBO: memcpy(lut, kdc__cmap_turbo, 256 * 3); break;
    default: kdc__jet_lut(lut); break;
    }
}

void kdc_colormap_apply(kdc_colormap cmap, const float *map, int w, int h, unsigned char *rgb)
{
    if (!map || !rgb || w < 1 || h < 1)
        return;
    unsigned char lut[256][3];
    kdc__colormap_lut(cmap, lut);
    const size_t count = (size_t)w * (size_t)h;
    for (size_t i = 0; i < count; i++)
        memcpy(rgb + 3 * i, lut[kdc__jet_index(map[i])], 3);
}

void kdc_colormap_jet(const float *map, int w, int h, unsigned char *rgb)
{
    kdc_colormap_apply(KDC_COLORMAP_JET, map, w, h, rgb);
}

/* ------------------------------------------------------------------ */
/* Overlay and gradient pictures                                       */

static kdc_status kdc__check_image(const kdc_image *im, const char *who)
{
    if (!im)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: image is NULL", who);
    if (!im->rgb || im->width < 1 || im->height < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: invalid image (%dx%d%s)", who,
                         im->width, im->height, im->rgb ? "" : ", no pixels");
    return KDC_OK;
}

/* show_cam_on_image(img / 255, map, use_rgb=True, image_weight=0.5):
 * heat = jet / 255; cam = 0.5 * heat + 0.5 * img; cam /= max(cam);
 * uint8(255 * cam), all in float like NumPy float32. */
kdc_status kdc_overlay(const kdc_image *image, const float *map, kdc_image **out)
{
    return kdc_overlay_ex(image, map, 0.5f, out);
}

/* show_cam_on_image with image_weight = 1 - alpha; at alpha 0.5 the
 * arithmetic of kdc_overlay above, float for float. */
kdc_status kdc_overlay_ex(const kdc_image *image, const float *map, float alpha,
                          kdc_image **out)
{
    return kdc_overlay_colormap(image, map, alpha, KDC_COLORMAP_JET, out);
}

kdc_status kdc_overlay_colormap(const kdc_image *image, const float *map, float alpha,
                                kdc_colormap cmap, kdc_image **out)
{
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_overlay: out is NULL");
    *out = NULL;
    kdc_status st = kdc__check_image(image, "kdc_overlay");
    if (st)
        return st;
    if (!map)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_overlay: map is NULL");
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_overlay: alpha %g is not in [0, 1]",
                         (double)alpha);
    kdc_image *o = NULL;
    if ((st = kdc_image_create(image->width, image->height, &o)))
        return st;
    unsigned char lut[256][3];
    kdc__colormap_lut(cmap, lut);
    const float wi = 1.0f - alpha;
    const size_t count = (size_t)image->width * (size_t)image->height;
    /* pass 1: the maximum; pass 2 recomputes the same float values */
    float mx = 0.0f;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *heat = lut[kdc__jet_index(map[i])];
        for (int c = 0; c < 3; c++) {
            const float v = alpha * ((float)heat[c] / 255.0f) +
                            wi * ((float)image->rgb[3 * i + c] / 255.0f);
            mx = v > mx ? v : mx;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const unsigned char *heat = lut[kdc__jet_index(map[i])];
        for (int c = 0; c < 3; c++) {
            const float v = alpha * ((float)heat[c] / 255.0f) +
                            wi * ((float)image->rgb[3 * i + c] / 255.0f);
            const float q = mx > 0.0f ? 255.0f * (v / mx) : 0.0f;
            o->rgb[3 * i + c] = q >= 255.0f ? 255 : (unsigned char)q;
        }
    }
    *out = o;
    return KDC_OK;
}

/* deprocess_image on the gradient as an h x w x 3 picture: x -= mean;
 * x /= (std + 1e-5); x *= 0.1; x += 0.5; clip [0, 1]; uint8(255 x).
 * Mean and (population) std over all values, accumulated in double and
 * rounded to float; the per-pixel steps in float as NumPy float32. */
kdc_status kdc_gradient_image(const float *grad, int h, int w, kdc_image **out)
{
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_gradient_image: out is NULL");
    *out = NULL;
    if (!grad)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_gradient_image: grad is NULL");
    if (h < 1 || w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_gradient_image: bad size %dx%d", h, w);
    kdc_image *o = NULL;
    kdc_status st = kdc_image_create(w, h, &o);
    if (st)
        return st;
    const size_t hw = (size_t)h * (size_t)w, count = 3 * hw;
    double sum = 0.0;
    for (size_t i = 0; i < count; i++)
        sum += grad[i];
    const double mean = sum / (double)count;
    double ss = 0.0;
    for (size_t i = 0; i < count; i++)
        ss += ((double)grad[i] - mean) * ((double)grad[i] - mean);
    const float meanf = (float)mean, stdf = (float)sqrt(ss / (double)count);
    const float den = (float)((double)stdf + 1e-5);
    for (size_t c = 0; c < 3; c++)
        for (size_t i = 0; i < hw; i++) {
            float x = grad[c * hw + i] - meanf;
            x = x / den;
            x = x * 0.1f;
            x = x + 0.5f;
            if (!(x > 0.0f))
                x = 0.0f;
            if (x > 1.0f)
                x = 1.0f;
            o->rgb[3 * i + c] = (unsigned char)(x * 255.0f);
        }
    *out = o;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Text (stb_easy_font quads, scaled by an integer factor)             */

#define KDC__FONT_LINE 12 /* stb_easy_font's line advance, in font units */

typedef struct kdc__text_box {
    int w, h; /* font units */
} kdc__text_box;

/* Walks the glyphs of text: calls quad(ctx, x0, y0, x1, y1) for every quad
 * in font units (when quad is not NULL) and returns the extent: the larger
 * of stb_easy_font's advance box (advances, 12 units per line) and the
 * quads' own extent, so every drawn pixel lies inside it. Characters
 * outside printable ASCII are drawn as '?'. One glyph at a time into a
 * fixed buffer, so long strings need no allocation. */
static kdc__text_box kdc__text_walk(const char *text,
                                    void (*quad)(void *ctx, int x0, int y0, int x1, int y1),
                                    void *ctx)
{
    kdc__text_box box = {0, 0};
    if (!text || !*text)
        return box;
    float vb[64 * 16]; /* 64 quads x 4 vertices x (x, y, z, colour) */
    int pen_x = 0, pen_y = 0, lines = 1;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            pen_x = 0;
            pen_y += KDC__FONT_LINE;
            lines++;
            continue;
        }
        unsigned char ch = (unsigned char)*p;
        if (ch < 32 || ch > 126)
            ch = '?';
        char one[2] = {(char)ch, 0};
        const int nq = stb_easy_font_print((float)pen_x, (float)pen_y, one, NULL, vb, sizeof vb);
        for (int q = 0; q < nq; q++) {
            const float *v = vb + (size_t)q * 16; /* vertex 0 and vertex 2 (opposite) */
            const int x0 = (int)v[0], y0 = (int)v[1], x1 = (int)v[8], y1 = (int)v[9];
            if (x1 > box.w)
                box.w = x1;
            if (y1 > box.h)
                box.h = y1;
            if (quad)
                quad(ctx, x0, y0, x1, y1);
        }
        pen_x += stb_easy_font_charinfo[ch - 32].advance & 15;
        if (pen_x > box.w)
            box.w = pen_x;
    }
    if (lines * KDC__FONT_LINE > box.h)
        box.h = lines * KDC__FONT_LINE;
    return box;
}

void kdc_text_size(const char *text, int scale, int *w, int *h)
{
    kdc__text_box box = kdc__text_walk(text, NULL, NULL);
    if (scale < 1)
        box.w = box.h = 0;
    if (w)
        *w = box.w * (scale > 0 ? scale : 0);
    if (h)
        *h = box.h * (scale > 0 ? scale : 0);
}

typedef struct kdc__text_ctx {
    kdc_image *image;
    int x, y, scale;
    const unsigned char *rgb;
} kdc__text_ctx;

static void kdc__text_quad(void *ctx, int x0, int y0, int x1, int y1)
{
    const kdc__text_ctx *t = ctx;
    const int64_t s = t->scale;
    const int64_t px = (int64_t)t->x + s * x0, py = (int64_t)t->y + s * y0;
    const int64_t pw = s * (x1 - x0), ph = s * (y1 - y0);
    if (px > INT32_MAX || py > INT32_MAX || px + pw < INT32_MIN || py + ph < INT32_MIN)
        return;
    /* clamp into int range before the clipped fill */
    int64_t cx0 = px < INT32_MIN ? INT32_MIN : px, cy0 = py < INT32_MIN ? INT32_MIN : py;
    int64_t cx1 = px + pw > INT32_MAX ? INT32_MAX : px + pw;
    int64_t cy1 = py + ph > INT32_MAX ? INT32_MAX : py + ph;
    kdc_image_fill(t->image, (int)cx0, (int)cy0, (int)(cx1 - cx0), (int)(cy1 - cy0), t->rgb);
}

void kdc_image_draw_text(kdc_image *image, int x, int y, const char *text, int scale,
                         const unsigned char rgb[3])
{
    if (!image || !image->rgb || !text || !rgb || scale < 1)
        return;
    kdc__text_ctx ctx = {image, x, y, scale, rgb};
    kdc__text_walk(text, kdc__text_quad, &ctx);
}

/* ------------------------------------------------------------------ */
/* Paste and fill                                                      */

/* Clips [x, x + len) to [0, limit): returns the visible start and length
 * (length <= 0: nothing visible). 64-bit so no sum overflows. */
static void kdc__clip(int64_t x, int64_t len, int64_t limit, int64_t *start, int64_t *n)
{
    int64_t a = x < 0 ? 0 : x, b = x + len > limit ? limit : x + len;
    *start = a;
    *n = b - a;
}

void kdc_image_paste(kdc_image *dst, const kdc_image *src, int x, int y)
{
    if (!dst || !src || !dst->rgb || !src->rgb || dst->width < 1 || dst->height < 1 ||
        src->width < 1 || src->height < 1)
        return;
    int64_t x0, nx, y0, ny;
    kdc__clip(x, src->width, dst->width, &x0, &nx);
    kdc__clip(y, src->height, dst->height, &y0, &ny);
    if (nx <= 0 || ny <= 0)
        return;
    for (int64_t r = 0; r < ny; r++) {
        const int64_t sy = y0 + r - y, sx = x0 - x;
        memmove(dst->rgb + 3 * ((size_t)(y0 + r) * (size_t)dst->width + (size_t)x0),
                src->rgb + 3 * ((size_t)sy * (size_t)src->width + (size_t)sx), 3 * (size_t)nx);
    }
}

void kdc_image_fill(kdc_image *image, int x, int y, int w, int h, const unsigned char rgb[3])
{
    if (!image || !image->rgb || !rgb || w < 1 || h < 1 || image->width < 1 ||
        image->height < 1)
        return;
    int64_t x0, nx, y0, ny;
    kdc__clip(x, w, image->width, &x0, &nx);
    kdc__clip(y, h, image->height, &y0, &ny);
    if (nx <= 0 || ny <= 0)
        return;
    for (int64_t r = y0; r < y0 + ny; r++) {
        unsigned char *p = image->rgb + 3 * ((size_t)r * (size_t)image->width + (size_t)x0);
        for (int64_t i = 0; i < nx; i++, p += 3) {
            p[0] = rgb[0];
            p[1] = rgb[1];
            p[2] = rgb[2];
        }
    }
}
