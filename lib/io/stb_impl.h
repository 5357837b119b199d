/* stb_impl.h - internal wrappers around the statically compiled stb_image
 * and stb_image_write (lib/io/stb_impl.c). Never installed. */
#ifndef KDC_STB_IMPL_H
#define KDC_STB_IMPL_H

#include <stddef.h>
#include <stdio.h>

#include "internal.h"

/* Largest accepted image side, in pixels (also stb's own limit). */
#define KDC__IMAGE_MAX_SIDE 32768

/* Decodes an in-memory image file to 8-bit, req_comp channels per pixel.
 * Returns a buffer from malloc() (free with free() or kdc__stbi_free) or
 * NULL. No block the decoder allocates may exceed max_alloc bytes (0: no
 * cap); *capped says whether one was refused (the failure reason is then
 * "outofmem"). */
unsigned char *kdc__stbi_load(const unsigned char *buf, size_t len, int *w, int *h,
                              int req_comp, size_t max_alloc, int *capped);
void kdc__stbi_free(void *pixels);

/* stb_image's reason for the last failure on this thread ("" if none). */
const char *kdc__stbi_failure_reason(void);

/* Encodes 8-bit pixels (comp channels, rows of stride bytes) as PNG into
 * fp. Returns 1 on success, 0 if encoding or writing failed. */
int kdc__stbi_write_png(FILE *fp, int w, int h, int comp, const unsigned char *pixels,
                        int stride);

#endif /* KDC_STB_IMPL_H */
