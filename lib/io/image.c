/* image.c - 8-bit RGB images: loading (libjpeg-turbo for JPEG, lib/io/jpeg.c;
 * stb_image for the rest), PIL-compatible
 * antialiased bilinear resizing, PNG writing, and torchvision-style
 * preprocessing (resize shorter side, centre crop, normalise). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "atomic.h"
#include "image_probe.h"
#include "jpeg.h"
#include "stb_impl.h"

/* ------------------------------------------------------------------ */
/* Creation                                                            */

static kdc_status kdc__image_new(int width, int height, int zero, kdc_image **out)
{
    kdc_image *im;
    size_t n;
    if (width < 1 || height < 1 || width > KDC__IMAGE_MAX_SIDE || height > KDC__IMAGE_MAX_SIDE)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "image size %dx%d is not in 1..%d", width,
                         height, KDC__IMAGE_MAX_SIDE);
    n = (size_t)width * (size_t)height * 3; /* <= 3 * 2^30: no overflow */
    if (!(im = malloc(sizeof *im)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for a %dx%d image", width, height);
    im->width = width;
    im->height = height;
    im->rgb = zero ? calloc(n, 1) : malloc(n);
    if (!im->rgb) {
        free(im);
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for a %dx%d image", width, height);
    }
    *out = im;
    return KDC_OK;
}

kdc_status kdc_image_create(int width, int height, kdc_image **out)
{
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_create: out is NULL");
    *out = NULL;
    return kdc__image_new(width, height, 1, out);
}

void kdc_image_destroy(kdc_image *image)
{
    if (!image)
        return;
    free(image->rgb);
    free(image);
}

static kdc_status kdc__image_check(const kdc_image *im, const char *who)
{
    if (!im)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: image is NULL", who);
    if (!im->rgb || im->width < 1 || im->height < 1 || im->width > KDC__IMAGE_MAX_SIDE ||
        im->height > KDC__IMAGE_MAX_SIDE)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: invalid image (%dx%d%s)", who,
                         im->width, im->height, im->rgb ? "" : ", no pixels");
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

/* Reads a whole file (regular or not) into memory. */
static kdc_status kdc__read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *b = NULL, *nb;
    size_t n = 0, cap = 0, got;
    kdc_status st = KDC_OK;
    int err;

    if (!fp) {
        err = errno;
        return kdc__fail(KDC_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            if (ncap < cap || !(nb = realloc(b, ncap))) {
                st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory reading the file", path);
                goto done;
            }
            b = nb;
            cap = ncap;
        }
        got = fread(b + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) {
                err = errno ? errno : EIO;
                st = kdc__fail(KDC_ERR_IO, "%s: cannot read: %s", path, strerror(err));
                goto done;
            }
            break;
        }
    }
    *buf = b;
    *len = n;
    b = NULL;
done:
    free(b);
    fclose(fp);
    return st;
}

static uint32_t kdc__le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* stb_image also decodes a truncated uncompressed BMP without an error.
 * Returns 0 if an uncompressed (BI_RGB / BITFIELDS) BMP holds fewer bytes
 * than its pixel rows need (the last row's padding may be missing), else 1
 * (compressed and unknown layouts are left to stb). */
static int kdc__bmp_complete(const unsigned char *b, size_t n)
{
    uint64_t off, w, h, bpp, stride, need;
    uint32_t hsize, comp = 0;
    if (n < 30)
        return 0;
    off = kdc__le32(b + 10);
    hsize = kdc__le32(b + 14);
    if (hsize == 12) { /* OS/2 BITMAPCOREHEADER */
        w = (uint64_t)(b[18] | b[19] << 8);
        h = (uint64_t)(b[20] | b[21] << 8);
        bpp = (uint64_t)(b[24] | b[25] << 8);
    } else {
        int32_t sw, sh;
        uint32_t u;
        if (n < 34)
            return 0;
        u = kdc__le32(b + 18);
        memcpy(&sw, &u, 4);
        u = kdc__le32(b + 22);
        memcpy(&sh, &u, 4);
        w = sw < 0 ? 0 : (uint64_t)sw;
        h = sh < 0 ? (uint64_t)(-(int64_t)sh) : (uint64_t)sh;
        bpp = (uint64_t)(b[28] | b[29] << 8);
        comp = kdc__le32(b + 30);
    }
    if (comp != 0 && comp != 3 && comp != 6)
        return 1;
    if (w == 0 || h == 0 || w > KDC__IMAGE_MAX_SIDE || h > KDC__IMAGE_MAX_SIDE || bpp > 64)
        return 1; /* stb reports these itself */
    stride = (w * bpp + 31) / 32 * 4;
    need = off + stride * (h - 1) + (w * bpp + 7) / 8;
    return (uint64_t)n >= need;
}

void kdc_image_options_init(kdc_image_options *opt)
{
    if (opt)
        opt->max_pixels = KDC__IMAGE_MAX_PIXELS_DEFAULT;
}

kdc_status kdc_image_load(const char *path, kdc_image **out)
{
    return kdc_image_load_ex(path, NULL, out);
}

kdc_status kdc_image_load_ex(const char *path, const kdc_image_options *opt, kdc_image **out)
{
    unsigned char *buf = NULL, *pix = NULL;
    size_t len = 0, max_alloc;
    int w = 0, h = 0, capped = 0;
    int64_t max_pixels = opt && opt->max_pixels ? opt->max_pixels : KDC__IMAGE_MAX_PIXELS_DEFAULT;
    kdc__image_format format;
    kdc_image *im = NULL;
    kdc_status st;

    if (out)
        *out = NULL;
    if (!path || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_load: %s is NULL",
                         !path ? "path" : "out");
    if (max_pixels < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_load: max_pixels %lld is negative",
                         (long long)max_pixels);
    if ((st = kdc__read_file(path, &buf, &len)) != KDC_OK)
        return st;
    if (len == 0) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: empty file", path);
        goto done;
    }
    /* Format, size and limits from the header, before any decoder runs. */
    if ((st = kdc__image_probe(path, buf, len, max_pixels, &format, &w, &h)) != KDC_OK)
        goto done;
#ifdef KDC_HAVE_LIBJPEG
    if (format == KDC__IMAGE_JPEG) { /* libjpeg-turbo, as Pillow decodes it */
        st = kdc__jpeg_decode(buf, len, path, (uint64_t)max_pixels, out);
        goto done;
    }
#endif
    if (format == KDC__IMAGE_BMP && !kdc__bmp_complete(buf, len)) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: truncated BMP (pixel data "
                       "ends early)", path);
        goto done;
    }
    /* No decoder buffer needs more than 8 bytes per pixel of the declared
     * size (16-bit RGBA PNG rows; JPEG planes padded to 16 x 16 blocks and
     * its progressive coefficients take less), plus 1 MiB for tables. */
    max_alloc = (size_t)8 * ((size_t)w + 16) * ((size_t)h + 16) + ((size_t)1 << 20);
    pix = kdc__stbi_load(buf, len, &w, &h, 3, max_alloc, &capped);
    if (!pix && capped) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: its compressed data expands "
                       "beyond what a %dx%d %s needs (a decompression bomb?)", path, w, h,
                       kdc__image_format_name(format));
        goto done;
    }
    if (!pix) {
        /* stb's reasons are terse ("bad huffman code"): say what and where. */
        char why[64];
        /* Some reasons quote bytes of the file (a PNG chunk type): only
         * printable ASCII goes into the message. */
        snprintf(why, sizeof why, "%s", kdc__stbi_failure_reason());
        for (char *c = why; *c; c++)
            if (*c < 0x20 || *c > 0x7E)
                *c = '?';
        if (!strcmp(why, "outofmem"))
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory decoding a %dx%d %s image",
                           path, w, h, kdc__image_format_name(format));
        else
            st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: corrupt or unsupported "
                           "%dx%d %s (decoder: %s)", path, w, h,
                           kdc__image_format_name(format), why[0] ? why : "no reason given");
        goto done;
    }
    if (!(im = malloc(sizeof *im))) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        goto done;
    }
    im->width = w;
    im->height = h;
    im->rgb = pix; /* from malloc(), see stb_impl.c */
    pix = NULL;
    *out = im;
done:
    kdc__stbi_free(pix);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------ */
/* Resizing: Pillow's ImagingResample with the BILINEAR filter         */

/* Pillow's fixed point for 8-bit images: coefficients scaled by 2^22. */
#define KDC__PREC_BITS (32 - 8 - 2)

typedef struct {
    int ksize;    /* coefficients per output pixel */
    int *bounds;  /* per output pixel: first input index, count */
    int32_t *kk;  /* out_size * ksize fixed-point coefficients */
} kdc__coeffs;

static double kdc__triangle(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the whole input
 * range (box 0..in_size). Downscaling widens the filter by the scale
 * (antialiasing); weights are normalised to sum 1, then rounded. */
static kdc_status kdc__precompute(int in_size, int out_size, kdc__coeffs *c)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double *w = NULL;
    size_t nk;
    int ksize = (int)ceil(support) * 2 + 1;

    c->bounds = NULL;
    c->kk = NULL;
    c->ksize = ksize;
    if (!kdc__mul_size((size_t)out_size, (size_t)ksize, &nk) ||
        !kdc__mul_size(nk, sizeof *c->kk, &nk))
        return kdc__fail(KDC_ERR_NO_MEMORY, "resize: coefficient table too large");
    c->kk = malloc(nk);
    c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
    w = malloc((size_t)ksize * sizeof *w);
    if (!c->kk || !c->bounds || !w) {
        free(w);
        free(c->kk);
        free(c->bounds);
        c->kk = NULL;
        c->bounds = NULL;
        return kdc__fail(KDC_ERR_NO_MEMORY, "resize: out of memory");
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        int32_t *k = &c->kk[(size_t)xx * ksize];
        if (xmin < 0)
            xmin = 0;
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = kdc__triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << KDC__PREC_BITS))
                         : (int32_t)(0.5 + v * (1 << KDC__PREC_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return KDC_OK;
}

static void kdc__coeffs_free(kdc__coeffs *c)
{
    free(c->bounds);
    free(c->kk);
}

static inline unsigned char kdc__clip8(int32_t v)
{
    if (v < 0)
        return 0;
    v >>= KDC__PREC_BITS;
    return v > 255 ? 255 : (unsigned char)v;
}

/* Horizontal pass over rows [row0, row0 + out->height) of in. */
static void kdc__resample_h(kdc_image *out, const kdc_image *in, int row0, const kdc__coeffs *c)
{
    for (int yy = 0; yy < out->height; yy++) {
        const unsigned char *src = in->rgb + (size_t)(yy + row0) * in->width * 3;
        unsigned char *dst = out->rgb + (size_t)yy * out->width * 3;
        for (int xx = 0; xx < out->width; xx++) {
            int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
            const int32_t *k = &c->kk[(size_t)xx * c->ksize];
            int32_t s0 = 1 << (KDC__PREC_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                const unsigned char *p = src + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[3 * xx + 0] = kdc__clip8(s0);
            dst[3 * xx + 1] = kdc__clip8(s1);
            dst[3 * xx + 2] = kdc__clip8(s2);
        }
    }
}

static void kdc__resample_v(kdc_image *out, const kdc_image *in, const kdc__coeffs *c)
{
    size_t stride = (size_t)in->width * 3;
    for (int yy = 0; yy < out->height; yy++) {
        int ymin = c->bounds[2 * yy], ymax = c->bounds[2 * yy + 1];
        const int32_t *k = &c->kk[(size_t)yy * c->ksize];
        unsigned char *dst = out->rgb + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t s = 1 << (KDC__PREC_BITS - 1);
            const unsigned char *p = in->rgb + (size_t)ymin * stride + i;
            for (int y = 0; y < ymax; y++)
                s += p[(size_t)y * stride] * k[y];
            dst[i] = kdc__clip8(s);
        }
    }
}

kdc_status kdc_image_resize(const kdc_image *src, int width, int height, kdc_image **out)
{
    kdc__coeffs ch = {0, NULL, NULL}, cv = {0, NULL, NULL};
    kdc_image *tmp = NULL, *res = NULL;
    kdc_status st;
    int need_h, need_v;

    if (out)
        *out = NULL;
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_resize: out is NULL");
    if ((st = kdc__image_check(src, "kdc_image_resize")) != KDC_OK)
        return st;
    if (width < 1 || height < 1 || width > KDC__IMAGE_MAX_SIDE || height > KDC__IMAGE_MAX_SIDE)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "kdc_image_resize: target size %dx%d is not in 1..%d", width, height,
                         KDC__IMAGE_MAX_SIDE);
    need_h = width != src->width;
    need_v = height != src->height;
    if (!need_h && !need_v) {
        if ((st = kdc__image_new(width, height, 0, &res)) != KDC_OK)
            return st;
        memcpy(res->rgb, src->rgb, (size_t)width * height * 3);
        *out = res;
        return KDC_OK;
    }
    if ((st = kdc__precompute(src->width, width, &ch)) != KDC_OK ||
        (st = kdc__precompute(src->height, height, &cv)) != KDC_OK)
        goto done;

    if (need_h) {
        /* Only the rows the vertical pass reads, as Pillow does. */
        int first = cv.bounds[0];
        int last = cv.bounds[2 * height - 2] + cv.bounds[2 * height - 1];
        if (!need_v) {
            first = 0;
            last = src->height;
        }
        if ((st = kdc__image_new(width, last - first, 0, &tmp)) != KDC_OK)
            goto done;
        kdc__resample_h(tmp, src, first, &ch);
        if (!need_v) {
            *out = tmp;
            tmp = NULL;
            goto done;
        }
        for (int i = 0; i < height; i++)
            cv.bounds[2 * i] -= first;
    }
    if ((st = kdc__image_new(width, height, 0, &res)) != KDC_OK)
        goto done;
    kdc__resample_v(res, need_h ? tmp : src, &cv);
    *out = res;
done:
    kdc_image_destroy(tmp);
    kdc__coeffs_free(&ch);
    kdc__coeffs_free(&cv);
    return st;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

kdc_status kdc_image_save_png(const kdc_image *image, const char *path)
{
    kdc__atomic_file af;
    kdc_status st;
    int err;

    if (!path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_save_png: path is NULL");
    if ((st = kdc__image_check(image, path)) != KDC_OK)
        return st;
    if ((st = kdc__atomic_open(path, &af)) != KDC_OK)
        return st;
    errno = 0;
    if (!kdc__stbi_write_png(af.fp, image->width, image->height, 3, image->rgb,
                             image->width * 3)) {
        err = errno ? errno : EIO;
        kdc__atomic_abort(&af);
        return kdc__fail(KDC_ERR_IO, "%s: cannot write PNG: %s", path, strerror(err));
    }
    return kdc__atomic_commit(path, &af);
}

/* ------------------------------------------------------------------ */
/* Preprocessing                                                       */

void kdc_preprocess_imagenet(kdc_preprocess *pp)
{
    if (!pp)
        return;
    pp->resize_short = 256;
    pp->crop_h = 224;
    pp->crop_w = 224;
    pp->mean[0] = 0.485f;
    pp->mean[1] = 0.456f;
    pp->mean[2] = 0.406f;
    pp->std[0] = 0.229f;
    pp->std[1] = 0.224f;
    pp->std[2] = 0.225f;
}

static kdc_status kdc__pp_check(const kdc_preprocess *pp)
{
    if (!pp)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "preprocess: options are NULL");
    if (pp->resize_short < 0 || pp->crop_h < 0 || pp->crop_w < 0)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "preprocess: negative size (resize_short %d, crop %dx%d)",
                         pp->resize_short, pp->crop_h, pp->crop_w);
    for (int c = 0; c < 3; c++) {
        if (!isfinite(pp->mean[c]))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "preprocess: mean[%d] is not finite", c);
        if (!(pp->std[c] > 0.0f) || !isfinite(pp->std[c]))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                             "preprocess: std[%d] = %g must be positive and finite", c,
                             (double)pp->std[c]);
    }
    return KDC_OK;
}

/* Size after torchvision's Resize(resize_short): the shorter side becomes
 * resize_short, the longer int(resize_short * long / short). */
static kdc_status kdc__pp_resized(const kdc_preprocess *pp, int img_w, int img_h, int *rw,
                                  int *rh)
{
    if (img_w < 1 || img_h < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "preprocess: image size %dx%d", img_w,
                         img_h);
    *rw = img_w;
    *rh = img_h;
    if (pp->resize_short > 0) {
        int s = img_w <= img_h ? img_w : img_h, l = img_w <= img_h ? img_h : img_w;
        /* Exact product, one correctly rounded division: as Python. */
        double nl = (double)((int64_t)pp->resize_short * l) / s;
        if (nl > KDC__IMAGE_MAX_SIDE || pp->resize_short > KDC__IMAGE_MAX_SIDE)
            return kdc__fail(KDC_ERR_SHAPE,
                             "preprocess: resizing %dx%d to shorter side %d exceeds %d pixels",
                             img_w, img_h, pp->resize_short, KDC__IMAGE_MAX_SIDE);
        if (img_w <= img_h) {
            *rw = pp->resize_short;
            *rh = (int)nl;
        } else {
            *rw = (int)nl;
            *rh = pp->resize_short;
        }
    }
    if (pp->crop_h > *rh || pp->crop_w > *rw)
        return kdc__fail(KDC_ERR_SHAPE,
                         "preprocess: crop %dx%d (h x w) is larger than the %simage %dx%d "
                         "(h x w)",
                         pp->crop_h, pp->crop_w, pp->resize_short > 0 ? "resized " : "",
                         *rh, *rw);
    return KDC_OK;
}

kdc_status kdc_preprocess_size(const kdc_preprocess *pp, int img_w, int img_h, int *out_h,
                               int *out_w)
{
    int rw, rh;
    kdc_status st;
    if (!out_h || !out_w)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_preprocess_size: output is NULL");
    if ((st = kdc__pp_check(pp)) != KDC_OK ||
        (st = kdc__pp_resized(pp, img_w, img_h, &rw, &rh)) != KDC_OK)
        return st;
    *out_h = pp->crop_h > 0 ? pp->crop_h : rh;
    *out_w = pp->crop_w > 0 ? pp->crop_w : rw;
    return KDC_OK;
}

/* torchvision's centre-crop offset int(round(d / 2.0)); Python rounds
 * half to even, so an odd d gives whichever of d/2 -+ 0.5 is even. */
static int kdc__crop_offset(int d)
{
    int k = d / 2;
    if (d % 2 == 0)
        return k;
    return k % 2 == 0 ? k : k + 1;
}

kdc_status kdc_preprocess_image(const kdc_image *image, const kdc_preprocess *pp, float *dst,
                                kdc_image **crop_image)
{
    kdc_image *resized = NULL, *crop = NULL;
    const kdc_image *cur;
    int rw, rh, ow, oh, top, left;
    kdc_status st;

    if (crop_image)
        *crop_image = NULL;
    if ((st = kdc__image_check(image, "kdc_preprocess_image")) != KDC_OK ||
        (st = kdc__pp_check(pp)) != KDC_OK)
        return st;
    if (!dst)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_preprocess_image: dst is NULL");
    if ((st = kdc__pp_resized(pp, image->width, image->height, &rw, &rh)) != KDC_OK)
        return st;
    oh = pp->crop_h > 0 ? pp->crop_h : rh;
    ow = pp->crop_w > 0 ? pp->crop_w : rw;

    cur = image;
    if (rw != image->width || rh != image->height) {
        if ((st = kdc_image_resize(image, rw, rh, &resized)) != KDC_OK)
            goto done;
        cur = resized;
    }
    top = kdc__crop_offset(rh - oh);
    left = kdc__crop_offset(rw - ow);

    /* ToTensor (v / 255 in float32) then Normalize ((x - mean) / std), in
     * the same float32 operations as torchvision. */
    {
        size_t plane = (size_t)oh * ow;
        for (int y = 0; y < oh; y++) {
            const unsigned char *row = cur->rgb + ((size_t)(y + top) * rw + left) * 3;
            for (int x = 0; x < ow; x++)
                for (int c = 0; c < 3; c++) {
                    float v = (float)row[3 * x + c] / 255.0f;
                    dst[c * plane + (size_t)y * ow + x] = (v - pp->mean[c]) / pp->std[c];
                }
        }
    }
    if (crop_image) {
        if ((st = kdc__image_new(ow, oh, 0, &crop)) != KDC_OK)
            goto done;
        for (int y = 0; y < oh; y++)
            memcpy(crop->rgb + (size_t)y * ow * 3,
                   cur->rgb + ((size_t)(y + top) * rw + left) * 3, (size_t)ow * 3);
        *crop_image = crop;
    }
done:
    kdc_image_destroy(resized);
    return st;
}
