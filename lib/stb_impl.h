/* stb_impl.h - internal wrappers around the statically compiled stb_image
 * and stb_image_write (lib/stb_impl.c), plus the small atomic-write file
 * helpers that image.c and npy.c share (defined in lib/npy.c).
 * Never installed. */
#ifndef KDC_STB_IMPL_H
#define KDC_STB_IMPL_H

#include <stddef.h>
#include <stdio.h>

#include "internal.h"

/* Largest accepted image side, in pixels (also stb's own limit). */
#define KDC__IMAGE_MAX_SIDE 32768

/* Header-only probe of an in-memory image file. Returns 1 and the size and
 * channel count on success; 0 (see kdc__stbi_failure_reason) otherwise. */
int kdc__stbi_info(const unsigned char *buf, size_t len, int *w, int *h, int *comp);

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

/* Atomic file writing (defined in lib/npy.c).
 * kdc__atomic_open creates "PATH.tmpXXXXXX" (mode 0666 & ~umask) next to
 * path and opens it for writing. kdc__atomic_commit flushes, syncs and
 * closes it and renames it over path; kdc__atomic_abort closes and removes
 * it. Both free the temporary name. Errors name path (KDC_ERR_IO,
 * KDC_ERR_NO_MEMORY). */
typedef struct kdc__atomic_file {
    FILE *fp;
    char *tmp_path;
} kdc__atomic_file;

kdc_status kdc__atomic_open(const char *path, kdc__atomic_file *af);
kdc_status kdc__atomic_commit(const char *path, kdc__atomic_file *af);
void kdc__atomic_abort(kdc__atomic_file *af);

#endif /* KDC_STB_IMPL_H */
