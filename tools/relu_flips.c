/* relu_flips.c - how many ReLU decisions a plain forward (which takes
 * Winograd's convs, lib/run/conv_wino.c) makes differently from a
 * recording forward (direct convs) of the same model and input, and the
 * largest relative L2 difference of a ReLU layer (docs/fidelity.md).
 *
 *   make && cc -O2 -Iinclude tools/relu_flips.c build/libkdcam.a -lm -lpthread -ljpeg \
 *       -o build/relu_flips
 *   build/kdc-genweights resnet152 r152.safetensors
 *   build/relu_flips r152.safetensors 161 229
 *
 * Input: batch 2 of H x W, values uniform in (-2, 2) from rand() seeded
 * with 7. Prints each ReLU layer with a differing decision, then the total. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdcam.h"

static float *read_relu(kdc_run *r, int layer, size_t *count)
{
    int s[4];
    if (kdc_run_layer_shape(r, layer, s))
        return NULL;
    *count = (size_t)s[0] * s[1] * s[2] * s[3];
    float *v = malloc(*count * sizeof *v);
    if (v && kdc_run_read_layer(r, layer, v, *count)) {
        free(v);
        return NULL;
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: relu_flips WEIGHTS H W\n");
        return 2;
    }
    const int n = 2, h = atoi(argv[2]), w = atoi(argv[3]);
    kdc_model *m = NULL;
    kdc_run *plain = NULL, *rec = NULL;
    if (h < 1 || w < 1 || kdc_model_load(argv[1], NULL, &m) ||
        kdc_run_create(m, NULL, &plain) || kdc_run_create(m, NULL, &rec)) {
        fprintf(stderr, "relu_flips: %s\n", kdc_last_error());
        return 1;
    }
    const size_t nx = (size_t)n * 3 * h * w;
    float *x = malloc(nx * sizeof *x);
    int *keep = malloc((size_t)kdc_model_num_layers(m) * sizeof *keep), nk = 0;
    if (!x || !keep)
        return 1;
    srand(7);
    for (size_t i = 0; i < nx; i++)
        x[i] = 4.0f * (float)rand() / (float)RAND_MAX - 2.0f;
    for (int l = 1; l < kdc_model_num_layers(m); l++)
        if (strstr(kdc_model_layer_name(m, l), "relu"))
            keep[nk++] = l;
    if (kdc_run_forward(plain, x, n, h, w, keep, nk) ||
        kdc_run_forward_grad(rec, x, n, h, w, keep, nk, 0)) {
        fprintf(stderr, "relu_flips: %s\n", kdc_last_error());
        return 1;
    }
    long total = 0, flips = 0;
    double worst = 0.0;
    for (int k = 0; k < nk; k++) {
        size_t c = 0, c2 = 0;
        float *a = read_relu(plain, keep[k], &c), *b = read_relu(rec, keep[k], &c2);
        if (!a || !b || c != c2)
            return 1;
        long f = 0;
        double e2 = 0.0, r2 = 0.0;
        for (size_t i = 0; i < c; i++) {
            f += (a[i] > 0.0f) != (b[i] > 0.0f);
            e2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            r2 += (double)b[i] * b[i];
        }
        const double rel = r2 > 0.0 ? sqrt(e2 / r2) : 0.0;
        worst = rel > worst ? rel : worst;
        total += (long)c;
        flips += f;
        if (f)
            printf("%-22s %9zu values, %ld decisions differ, rel L2 %.2e\n",
                   kdc_model_layer_name(m, keep[k]), c, f, rel);
        free(a);
        free(b);
    }
    printf("%s %dx%d batch %d: %ld of %ld ReLU decisions differ; worst ReLU layer rel L2 "
           "%.2e\n", argv[1], h, w, n, flips, total, worst);
    free(x);
    free(keep);
    kdc_run_destroy(plain);
    kdc_run_destroy(rec);
    kdc_model_destroy(m);
    return 0;
}
