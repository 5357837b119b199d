/* image_probe.h - what an image file is, checked before any decoder sees
 * it (docs/security.md). Never installed. */
#ifndef KDC_IO_IMAGE_PROBE_H
#define KDC_IO_IMAGE_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef enum kdc__image_format {
    KDC__IMAGE_JPEG,
    KDC__IMAGE_PNG,
    KDC__IMAGE_BMP
} kdc__image_format;

/* "JPEG", "PNG", "BMP". */
const char *kdc__image_format_name(kdc__image_format format);

/* Identifies the file in b[0..n) by its signature (JPEG, PNG, BMP; other
 * formats are named and refused), reads its size from its header and checks
 * it: each side 1..KDC__IMAGE_MAX_SIDE, at most max_pixels pixels. A JPEG's
 * marker segments are validated up to its end-of-image marker (segment
 * lengths, Huffman and quantisation tables, frame and scan headers), so
 * that no decoder is handed a table it might trust. Errors name path:
 * KDC_ERR_FORMAT (malformed), KDC_ERR_UNSUPPORTED (another format, or more
 * pixels than max_pixels). */
kdc_status kdc__image_probe(const char *path, const unsigned char *b, size_t n,
                            int64_t max_pixels, kdc__image_format *format, int *w, int *h);

#endif /* KDC_IO_IMAGE_PROBE_H */
