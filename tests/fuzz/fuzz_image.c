/* fuzz_image.c - image loading (JPEG, PNG, BMP) on arbitrary bytes, with a
 * pixel limit of 2^22 so that large-but-legal sizes do not slow the
 * campaign down; the limit itself is tested in tests/test_hostile.c. */
#include <stdint.h>

#include "fuzz_file.h"
#include "kdcam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    kdc_image_options opt;
    kdc_image *im = NULL;
    if (!path)
        return 0;
    kdc_image_options_init(&opt);
    opt.max_pixels = 1 << 22;
    if (kdc_image_load_ex(path, &opt, &im) == KDC_OK) {
        /* Every pixel is read, so MSan/ASan see uninitialised or short rows. */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)im->width * im->height * 3; i++)
            sum += im->rgb[i];
        (void)sum;
        kdc_image_destroy(im);
    }
    return 0;
}
