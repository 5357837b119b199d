/* fixture.h - reading the PyTorch fixtures written by tools/gen_fixtures.py.
 *
 * A fixture is a safetensors file: per recorded layer NAME, "NAME/shape"
 * (I64 [4], NCHW; linear layers N,K,1,1), "NAME/val" (the whole tensor when
 * small, else K samples at kdc_test_sample_index(numel, K, j)), and
 * "NAME/sum", "NAME/sumsq" of the whole tensor; plus "logits", "top1" and
 * string metadata. The reference is PyTorch in float64. */
#ifndef KDC_TEST_FIXTURE_H
#define KDC_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

typedef struct fx_layer {
    char name[160];
    int64_t shape[4];
    size_t numel;      /* of the whole tensor                */
    float *val;        /* nval reference values              */
    size_t nval;
    double sum, sumsq; /* of the whole reference tensor      */
} fx_layer;

typedef struct fx_file {
    kdc__st_file *st;
    fx_layer *layers;
    int n_layers;
} fx_file;

/* 0 on success; on failure -1 and a message in kdc_last_error(). */
int fx_open(const char *path, fx_file *fx);
void fx_close(fx_file *fx);
/* Metadata string or NULL. */
const char *fx_meta(const fx_file *fx, const char *key);

/* Relative L2 error of got (the whole tensor, numel values) against the
 * reference on the stored values (all, or the samples); *norm_err gets the
 * relative error of the L2 norm of the whole tensor. */
double fx_compare(const fx_layer *ref, const float *got, double *norm_err);

#endif
