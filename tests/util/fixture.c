/* fixture.c - see fixture.h. */
#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weightgen.h"

int fx_open(const char *path, fx_file *fx)
{
    memset(fx, 0, sizeof *fx);
    if (kdc__st_open(path, &fx->st))
        return -1;
    int cap = kdc__st_count(fx->st);
    fx->layers = calloc((size_t)cap + 1, sizeof *fx->layers);
    if (!fx->layers)
        goto fail;
    for (int i = 0; i < kdc__st_count(fx->st); i++) {
        const kdc__st_tensor *t = kdc__st_at(fx->st, i);
        size_t len = strlen(t->name);
        if (len < 5 || strcmp(t->name + len - 4, "/val") || !strncmp(t->name, "weights:", 8))
            continue;
        fx_layer *L = &fx->layers[fx->n_layers];
        if (len - 4 >= sizeof L->name)
            continue;
        memcpy(L->name, t->name, len - 4);
        L->name[len - 4] = '\0';
        char key[200];
        const kdc__st_tensor *sh, *s1, *s2;
        snprintf(key, sizeof key, "%s/shape", L->name);
        sh = kdc__st_find(fx->st, key);
        snprintf(key, sizeof key, "%s/sum", L->name);
        s1 = kdc__st_find(fx->st, key);
        snprintf(key, sizeof key, "%s/sumsq", L->name);
        s2 = kdc__st_find(fx->st, key);
        if (!sh || sh->numel != 4 || !s1 || !s2)
            goto fail;
        float v[1];
        if (kdc__st_to_i64(sh, L->shape) || kdc__st_to_f32(s1, v))
            goto fail;
        /* F64 sums: read exactly */
        if (s1->dtype == KDC__ST_F64 && s2->dtype == KDC__ST_F64) {
            memcpy(&L->sum, s1->data, 8);
            memcpy(&L->sumsq, s2->data, 8);
        } else {
            L->sum = v[0];
            if (kdc__st_to_f32(s2, v))
                goto fail;
            L->sumsq = v[0];
        }
        L->numel = (size_t)(L->shape[0] * L->shape[1] * L->shape[2] * L->shape[3]);
        L->nval = t->numel;
        L->val = malloc(t->numel * sizeof *L->val);
        if (!L->val || kdc__st_to_f32(t, L->val))
            goto fail;
        fx->n_layers++;
    }
    return 0;
fail:
    fx_close(fx);
    return -1;
}

void fx_close(fx_file *fx)
{
    for (int i = 0; fx->layers && i < fx->n_layers; i++)
        free(fx->layers[i].val);
    free(fx->layers);
    kdc__st_close(fx->st);
    memset(fx, 0, sizeof *fx);
}

const char *fx_meta(const fx_file *fx, const char *key)
{
    return kdc__st_metadata(fx->st, key);
}

double fx_compare(const fx_layer *ref, const float *got, double *norm_err)
{
    double num = 0.0, den = 0.0, sumsq = 0.0;
    for (size_t j = 0; j < ref->nval; j++) {
        size_t i = ref->nval == ref->numel ? j : kdc_test_sample_index(ref->numel, ref->nval, j);
        double d = (double)got[i] - ref->val[j];
        num += d * d;
        den += (double)ref->val[j] * ref->val[j];
    }
    for (size_t i = 0; i < ref->numel; i++)
        sumsq += (double)got[i] * got[i];
    if (norm_err)
        *norm_err = ref->sumsq > 0 ? fabs(sqrt(sumsq) - sqrt(ref->sumsq)) / sqrt(ref->sumsq)
                                   : sqrt(sumsq);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
