/* fuzz_safetensors.c - the safetensors reader and the model loader on
 * arbitrary bytes: open, convert every tensor, build a model. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "kdcam.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    kdc__st_file *f = NULL;
    kdc_model *m = NULL;
    if (!path)
        return 0;
    if (kdc__st_open(path, &f) == KDC_OK) {
        for (int i = 0; i < kdc__st_count(f); i++) {
            const kdc__st_tensor *t = kdc__st_at(f, i);
            size_t n = t->numel;
            float *buf = malloc((n ? n : 1) * sizeof *buf);
            if (buf)
                kdc__st_to_f32(t, buf);
            free(buf);
        }
        kdc__st_metadata(f, "kdcam.preprocess");
        kdc__st_close(f);
    } else {
        return 0; /* the model loader would refuse it the same way */
    }
    if (kdc_model_load(path, NULL, &m) == KDC_OK) {
        kdc_preprocess pp;
        int h, w;
        kdc_model_preprocess(m, &pp);
        kdc_preprocess_size(&pp, 640, 480, &h, &w);
        kdc_model_destroy(m);
    }
    return 0;
}
