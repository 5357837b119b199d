/* fuzz_npy.c - the .npy reader (--input-npy) on arbitrary bytes. */
#include <stdint.h>

#include "fuzz_file.h"
#include "kdcam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    float *x = NULL;
    int ndim = 0;
    int64_t dims[8];
    if (path && kdc_npy_load(path, &x, &ndim, dims) == KDC_OK)
        kdc_free(x);
    return 0;
}
