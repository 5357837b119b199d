/* fuzz_pth.c - libFuzzer target: the PyTorch checkpoint reader (lib/io).
 *
 * Feeds the bytes to kdc__pth_read as a checkpoint in memory (zip or
 * legacy), finding the state dict by the usual keys, or at key "model" when
 * the last byte is odd (one parse per input), then converts every tensor it
 * returns, so that the bounds of
 * storages, offsets and strides are exercised as the model builder uses
 * them. Seeds: tests/fuzz/corpus/pth (small torch.save files), dictionary
 * tests/fuzz/pth.dict. */
#include <stdint.h>
#include <stdlib.h>

#include "io/pth.h"

static void fuzz_one(const uint8_t *data, size_t size, const char *key)
{
    kdc__pth p;

    if (kdc__pth_read(data, size, key, 0, &p) == KDC_OK) {
        for (int i = 0; i < p.count; i++) {
            const kdc__st_tensor *t = &p.tensors[i];
            float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
            if (f)
                (void)kdc__st_to_f32(t, f);
            free(f);
        }
    }
    kdc__pth_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one(data, size, size && (data[size - 1] & 1) ? "model" : NULL);
    return 0;
}
