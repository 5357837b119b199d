/* png_mem.c - a PNG encoded into memory (for data URIs in SVG figures). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "stb_impl.h"

kdc_status kdc_image_encode_png(const kdc_image *image, unsigned char **data, size_t *size)
{
    if (!data || !size)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_encode_png: data or size is NULL");
    *data = NULL;
    *size = 0;
    if (!image || !image->rgb || image->width < 1 || image->height < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_encode_png: no image");
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_image_encode_png: %s", strerror(errno));
    int ok = kdc__stbi_write_png(fp, image->width, image->height, 3, image->rgb,
                                 image->width * 3);
    if (fclose(fp) || !ok || !buf) {
        free(buf);
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_image_encode_png: cannot encode %dx%d",
                         image->width, image->height);
    }
    *data = (unsigned char *)buf;
    *size = len;
    return KDC_OK;
}
