/* stb_impl.c - stb_image and stb_image_write (public domain, Sean Barrett,
 * http://nothings.org/stb), compiled privately into libkdcam: everything is
 * static, so no stb symbol leaks and there is no runtime dependency. The
 * rest of the library uses the kdc__stbi_* wrappers from stb_impl.h. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "stb_impl.h"

/* Refuse absurd sizes inside the decoders too, not only after the probe. */
#define STBI_MAX_DIMENSIONS KDC__IMAGE_MAX_SIDE
/* Decoding allocates through these: kdc_image takes ownership of decoded
 * pixels and frees them with free(). While kdc__stbi_load runs, a block
 * larger than its max_alloc is refused, so that a file whose compressed
 * data expands past what its declared size needs (a PNG zlib bomb: 1 MB of
 * IDAT inflates to 1 GB whatever IHDR says; stb_image grows its buffer by
 * doubling) fails instead of taking the memory. The cap lives in
 * thread-local storage for the duration of one call, as stb_image's own
 * failure reason does. */
static _Thread_local size_t kdc__stbi_cap;   /* 0: no cap */
static _Thread_local int kdc__stbi_capped;   /* a block was refused */

/* Zeroed: on some corrupt JPEG scans stb_image 2.27 leaves parts of its
 * component buffers unwritten and still returns an image, which then held
 * whatever the heap held (different pixels and logits on every run, found by
 * tests/test_image_repeat.c with a fuzz regression input). Large blocks
 * come from fresh zero pages anyway. Grown blocks (realloc: the PNG IDAT
 * and zlib output) are written before they are read. */
static void *kdc__stbi_malloc(size_t n)
{
    if (kdc__stbi_cap && n > kdc__stbi_cap) {
        kdc__stbi_capped = 1;
        return NULL;
    }
    return calloc(1, n ? n : 1);
}

static void *kdc__stbi_realloc(void *p, size_t n)
{
    if (kdc__stbi_cap && n > kdc__stbi_cap) {
        kdc__stbi_capped = 1;
        return NULL;
    }
    return realloc(p, n);
}

#define STBI_MALLOC(sz) kdc__stbi_malloc(sz)
#define STBI_REALLOC(p, newsz) kdc__stbi_realloc(p, newsz)
#define STBI_FREE(p) free(p)
#define STBIW_MALLOC(sz) malloc(sz)
#define STBIW_REALLOC(p, newsz) realloc(p, newsz)
#define STBIW_FREE(p) free(p)
#define STBI_NO_STDIO /* we read files ourselves, for errno-based messages */
/* Only the formats libkdcam documents (docs/security.md): the others are
 * attack surface nobody asked for (Debian 12's stb_image 2.27 has a heap
 * over-read in its 16-bit PGM reader, CVE-2021-42716). */
#ifndef KDC_HAVE_LIBJPEG /* JPEG goes to libjpeg-turbo unless `make JPEG=stb` */
#define STBI_ONLY_JPEG
#endif
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#endif
#include <stb_image.h>
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
/* GCC reports never-defined static declarations (the stb functions we do
 * not use) at the end of the translation unit, after the pop above. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

unsigned char *kdc__stbi_load(const unsigned char *buf, size_t len, int *w, int *h,
                              int req_comp, size_t max_alloc, int *capped)
{
    unsigned char *pix;
    int comp;
    *capped = 0;
    if (len > (size_t)INT_MAX) {
        stbi__g_failure_reason = "file too large";
        return NULL;
    }
    kdc__stbi_cap = max_alloc;
    kdc__stbi_capped = 0;
    pix = stbi_load_from_memory(buf, (int)len, w, h, &comp, req_comp);
    *capped = kdc__stbi_capped;
    kdc__stbi_cap = 0;
    kdc__stbi_capped = 0;
    return pix;
}

void kdc__stbi_free(void *pixels)
{
    stbi_image_free(pixels);
}

const char *kdc__stbi_failure_reason(void)
{
    const char *r = stbi_failure_reason();
    return r ? r : "";
}

typedef struct {
    FILE *fp;
    int ok;
} kdc__png_sink;

static void kdc__png_write(void *context, void *data, int size)
{
    kdc__png_sink *sink = context;
    if (sink->ok && size > 0 && fwrite(data, 1, (size_t)size, sink->fp) != (size_t)size)
        sink->ok = 0;
}

int kdc__stbi_write_png(FILE *fp, int w, int h, int comp, const unsigned char *pixels,
                        int stride)
{
    kdc__png_sink sink = {fp, 1};
    if (!stbi_write_png_to_func(kdc__png_write, &sink, w, h, comp, pixels, stride))
        return 0;
    return sink.ok;
}
