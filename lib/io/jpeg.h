/* jpeg.h - JPEG decoding through libjpeg-turbo with Pillow's settings
 * (lib/io/jpeg.c). Only built when the library links libjpeg
 * (KDC_HAVE_LIBJPEG; `make JPEG=stb` leaves JPEG to stb_image). Never
 * installed. */
#ifndef KDC_IO_JPEG_H
#define KDC_IO_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* 1 if buf starts like a JPEG file (SOI followed by a marker), else 0. */
int kdc__jpeg_signature(const unsigned char *buf, size_t len);

/* Decodes the in-memory JPEG file buf[0..len) into a new 8-bit RGB image,
 * as Pillow's Image.open(path).convert("RGB") does: accurate integer IDCT,
 * fancy upsampling, no scaling; grayscale replicated; CMYK and YCCK read as
 * Adobe-inverted CMYK and converted with Pillow's formula. Width * height is
 * checked against max_pixels (and each side against KDC__IMAGE_MAX_SIDE)
 * from the header, before any pixel memory is allocated. path is used in
 * error messages only. On success *out owns the image (kdc_image_destroy);
 * on failure *out is untouched and the status is KDC_ERR_FORMAT (libjpeg's
 * error or a corrupt-data warning, as one line) or KDC_ERR_NO_MEMORY. */
kdc_status kdc__jpeg_decode(const unsigned char *buf, size_t len, const char *path,
                            uint64_t max_pixels, kdc_image **out);

#endif /* KDC_IO_JPEG_H */
