/* genweights.c - writes a model with seeded random weights (the generator
 * of the test suite, tests/util/weightgen.c), for demos and benchmarks when
 * no trained weights are at hand. The values are random: predictions and
 * heatmaps of such a model mean nothing, but shapes, speed and the whole
 * pipeline are those of the real architecture.
 *
 * usage: kdc-genweights SCHEME OUT.safetensors [SEED] [CLASSES]
 *   SCHEME: resnet50 resnet101 resnet152 mobilenetv1 mobilenetv1_timm */
#include <stdio.h>
#include <stdlib.h>

#include "weightgen.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: kdc-genweights SCHEME OUT.safetensors [SEED] [CLASSES]\n");
        return 2;
    }
    unsigned long long seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    int classes = argc > 4 ? atoi(argv[4]) : 1000;
    if (classes < 1) {
        fprintf(stderr, "kdc-genweights: CLASSES must be positive\n");
        return 2;
    }
    if (kdc_test_write_weights(argv[2], argv[1], seed, classes, "", 0)) {
        fprintf(stderr, "kdc-genweights: cannot write %s as %s\n", argv[2], argv[1]);
        return 1;
    }
    return 0;
}
