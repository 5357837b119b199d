/* jpeg.c - JPEG decoding through libjpeg-turbo, with the settings Pillow
 * uses, so that a photo gives the pixels (and so the network inputs) of
 * the user's PIL + torchvision pipeline bit for bit (docs/api.md, "Images").
 *
 * Pillow (src/libImaging/JpegDecode.c, JpegImagePlugin.py, Convert.c)
 * leaves libjpeg's decoder defaults alone unless draft() is called: the
 * accurate integer IDCT (JDCT_ISLOW), fancy (smooth) chroma upsampling,
 * block smoothing for progressive files, no scaling. It asks for the colour
 * space by component count: 1 -> L, 3 -> RGB, 4 -> CMYK (libjpeg converts
 * YCCK to CMYK), and reads CMYK as Adobe-inverted ("CMYK;I") whatever the
 * file says. convert("RGB") then replicates L and turns CMYK into RGB with
 * r = clip(nk - nk * c / 255) (nk = 255 - k, Pillow's rounded division).
 *
 * libjpeg's default error handler ends the process: ours formats the message
 * and longjmps back here. Warnings that mean the pixel data is corrupt or
 * missing (premature end of file, bad Huffman code, ...) are errors too, so
 * a truncated file is refused instead of decoded half grey; the harmless
 * ones (extraneous bytes before a marker, an unknown JFIF revision, ...)
 * are ignored, as Pillow ignores them. Built only with KDC_HAVE_LIBJPEG. */
#ifdef KDC_HAVE_LIBJPEG

#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: its message list depends on jconfig.h */

#include "internal.h"
#include "io/jpeg.h"
#include "stb_impl.h" /* KDC__IMAGE_MAX_SIDE */

/* More scans than any encoder writes (libjpeg's progressive scripts use
 * at most a few dozen); a hostile progressive file can otherwise make the
 * decoder redo the whole image once per scan for a long time. The same
 * limit as libjpeg-turbo's TurboJPEG API applies with its scan limit on. */
#define KDC__JPEG_MAX_SCANS 500

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg sees only this */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} kdc__jpeg_err;

int kdc__jpeg_signature(const unsigned char *buf, size_t len)
{
    /* libjpeg (and stb_image) require SOI at offset 0; whatever follows is
     * the decoder's to judge, so every would-be JPEG takes this path. */
    return len >= 2 && buf[0] == 0xFF && buf[1] == 0xD8;
}

static void kdc__jpeg_error_exit(j_common_ptr cinfo)
{
    kdc__jpeg_err *e = (kdc__jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings after which the decoded pixels are not the file's. */
static int kdc__jpeg_warning_is_fatal(int code)
{
    switch (code) {
#if JPEG_LIB_VERSION >= 70 || defined(D_ARITH_CODING_SUPPORTED)
    case JWRN_ARITH_BAD_CODE:
#endif
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_JPEG_EOF:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        return 1;
    default:
        return 0;
    }
}

/* msg_level -1 is a warning, 0.. are trace messages: never printed. */
static void kdc__jpeg_emit_message(j_common_ptr cinfo, int msg_level)
{
    if (msg_level < 0 && kdc__jpeg_warning_is_fatal(cinfo->err->msg_code))
        kdc__jpeg_error_exit(cinfo);
}

static void kdc__jpeg_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* the library never prints */
}

static void kdc__jpeg_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    kdc__jpeg_err *e = (kdc__jpeg_err *)cinfo->err;
    if (d->input_scan_number > KDC__JPEG_MAX_SCANS) {
        snprintf(e->msg, sizeof e->msg, "more than %d scans", KDC__JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

/* Pillow's MULDIV255: a * b / 255, rounded, in integers. */
static inline int kdc__muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static inline unsigned char kdc__clip8(int v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One decoded row (1 or 4 components) to RGB, as Pillow's convert("RGB"). */
static void kdc__jpeg_row_to_rgb(const unsigned char *in, int comps, unsigned w,
                                 unsigned char *rgb)
{
    if (comps == 1) {
        for (unsigned x = 0; x < w; x++)
            rgb[3 * x] = rgb[3 * x + 1] = rgb[3 * x + 2] = in[x];
        return;
    }
    for (unsigned x = 0; x < w; x++, in += 4) {
        /* "CMYK;I": Pillow stores 255 - v of what libjpeg gives */
        int c = 255 - in[0], m = 255 - in[1], y = 255 - in[2], nk = in[3];
        rgb[3 * x] = kdc__clip8(nk - kdc__muldiv255(c, nk));
        rgb[3 * x + 1] = kdc__clip8(nk - kdc__muldiv255(m, nk));
        rgb[3 * x + 2] = kdc__clip8(nk - kdc__muldiv255(y, nk));
    }
}

kdc_status kdc__jpeg_decode(const unsigned char *buf, size_t len, const char *path,
                            uint64_t max_pixels, kdc_image **out)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    kdc__jpeg_err err;
    /* set after setjmp and used after a longjmp: volatile */
    unsigned char *volatile rgb = NULL;
    unsigned char *volatile row = NULL;
    kdc_image *volatile im = NULL;
    volatile kdc_status st = KDC_OK;
    unsigned w, h;
    int comps;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = kdc__jpeg_error_exit;
    err.pub.emit_message = kdc__jpeg_emit_message;
    err.pub.output_message = kdc__jpeg_output_message;
    err.msg[0] = '\0';
    if (setjmp(err.jump)) {
        if (err.pub.msg_code == JERR_OUT_OF_MEMORY)
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory decoding the JPEG: %s",
                           path, err.msg);
        else
            st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: %s", path, err.msg);
        goto cleanup;
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = kdc__jpeg_progress;
    cinfo.progress = &progress;
    /* jpeg_mem_src takes an unsigned long: no larger file on 32-bit longs */
    if ((unsigned long)len != len) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: file too large", path);
        goto cleanup;
    }
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE); /* errors (no image, ...) longjmp */

    w = cinfo.image_width;
    h = cinfo.image_height;
    if (w < 1 || h < 1 || w > KDC__IMAGE_MAX_SIDE || h > KDC__IMAGE_MAX_SIDE) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: image size %ux%u is not in 1..%d", path, w, h,
                       KDC__IMAGE_MAX_SIDE);
        goto cleanup;
    }
    if ((uint64_t)w * h > max_pixels) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: image size %ux%u (%llu pixels) is above the "
                       "limit of %llu pixels", path, w, h, (unsigned long long)w * h,
                       (unsigned long long)max_pixels);
        goto cleanup;
    }
    comps = cinfo.num_components;
    if (comps == 1)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3)
        cinfo.out_color_space = JCS_RGB;
    else if (comps == 4)
        cinfo.out_color_space = JCS_CMYK; /* from CMYK or YCCK */
    else {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: JPEG with %d components "
                       "(1, 3 or 4 are read)", path, comps);
        goto cleanup;
    }
    /* libjpeg's defaults, which Pillow keeps; set so that they are visible */
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    cinfo.do_block_smoothing = TRUE;
    cinfo.scale_num = cinfo.scale_denom = 1;

    /* <= 2^30 pixels * 3: no overflow in size_t (64-bit) or checked below */
    size_t n;
    if (!kdc__mul_size((size_t)w * h, 3, &n) || !(rgb = malloc(n)) ||
        (comps != 3 && !(row = malloc((size_t)w * (size_t)comps))) ||
        !(im = malloc(sizeof *im))) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for a %ux%u image", path, w, h);
        goto cleanup;
    }
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != w || cinfo.output_height != h ||
        cinfo.output_components != comps) { /* an internal invariant, not input */
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: libjpeg output %ux%ux%d, "
                       "expected %ux%ux%d", path, cinfo.output_width, cinfo.output_height,
                       cinfo.output_components, w, h, comps);
        goto cleanup;
    }
    while (cinfo.output_scanline < h) {
        unsigned y = cinfo.output_scanline;
        JSAMPROW dst = comps == 3 ? rgb + (size_t)y * w * 3 : row;
        if (jpeg_read_scanlines(&cinfo, &dst, 1) != 1) { /* suspension: never with memory */
            st = kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: JPEG data ends early",
                           path);
            goto cleanup;
        }
        if (comps != 3)
            kdc__jpeg_row_to_rgb(row, comps, w, rgb + (size_t)y * w * 3);
    }
    jpeg_finish_decompress(&cinfo); /* reads to EOI: a truncated file fails here */

    im->width = (int)w;
    im->height = (int)h;
    im->rgb = rgb;
    rgb = NULL;
    *out = im;
    im = NULL;
cleanup:
    jpeg_destroy_decompress(&cinfo); /* safe on a zeroed or created struct */
    free(row);
    free(rgb);
    free(im);
    return st;
}

#else
typedef int kdc__jpeg_not_built; /* JPEG=stb: ISO C wants a declaration */
#endif /* KDC_HAVE_LIBJPEG */
