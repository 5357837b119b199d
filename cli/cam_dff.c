/* cam_dff.c - `kdcam cam --method dff` (issue 19, part C): Deep Feature
 * Factorization of a batch's activations at one layer (kdc_dff), each
 * image's concept maps written as a strip of overlays and as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* DIR/STEM.dff<suffix>.npy; prints the path. */
static int save(const char *dir, const char *stem, const char *suffix, const float *data,
                int ndim, const int64_t *dims)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.dff%s.npy", dir, stem, suffix) >= sizeof path)
        return cli_error("%s: output path too long", dir);
    kdc_status st = kdc_npy_save(path, data, ndim, dims);
    if (st)
        return cli_lib_error(st, NULL);
    printf("  %s\n", path);
    return 0;
}

int cli_cam_dff(const cli_opts *o, kdc_run *run, const kdc_model *m, int layer,
                const float *input, int n, int h, int w, char *const *stems, char *const *srcs,
                kdc_image **crops, const char *batch_stem)
{
    int s[4], iters = 0, rc = 0;
    kdc_status st;
    if ((st = kdc_run_forward(run, input, n, h, w, &layer, 1)) ||
        (st = kdc_run_layer_shape(run, layer, s)))
        return cli_lib_error(st, NULL);
    const int k = o->components ? o->components : 5, c = s[1];
    const size_t fhw = (size_t)s[2] * s[3], plane = (size_t)h * w;
    float *A = malloc((size_t)n * c * fhw * sizeof *A);
    float *con = malloc((size_t)c * k * sizeof *con);
    float *raw = malloc((size_t)n * k * fhw * sizeof *raw);
    float *maps = malloc((size_t)n * k * plane * sizeof *maps);
    const float **one = malloc((size_t)k * sizeof *one);
    char **names = malloc((size_t)k * sizeof *names);
    char *namebuf = malloc((size_t)k * 24);
    if (!A || !con || !raw || !maps || !one || !names || !namebuf) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int t = 0; t < k; t++) {
        names[t] = namebuf + (size_t)t * 24;
        snprintf(names[t], 24, "concept %d", t);
    }
    kdc_dff_options dopt = {.components = k};
    if ((st = kdc_run_read_layer(run, layer, A, (size_t)n * c * fhw)) ||
        (st = kdc_dff(A, n, c, s[2], s[3], &dopt, con, raw, &iters))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    for (int b = 0; b < n && !rc; b++) {
        printf("%s: dff, %d concepts at %s (%d iterations, batch of %d)\n", srcs[b], k,
               kdc_model_layer_name(m, layer), iters, n);
        const float *rb = raw + (size_t)b * k * fhw;
        float *mb = maps + (size_t)b * k * plane;
        if ((st = kdc_cam_normalize_resize(rb, k, s[2], s[3], h, w, mb))) {
            rc = cli_lib_error(st, NULL);
            break;
        }
        for (int t = 0; t < k; t++)
            one[t] = mb + (size_t)t * plane;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s.dff.png", o->out_dir, stems[b]) >=
            sizeof path)
            rc = cli_error("%s: output path too long", o->out_dir);
        else
            rc = cli_write_strip(path, crops[b], one, (const char *const *)names, k, h, w);
    }
    /* one set of files per image (1 x ...), or one for a whole --input-npy batch */
    const int per = batch_stem ? n : 1;
    for (int b0 = 0; b0 < n && !rc && o->npy; b0 += per) {
        const char *stem = batch_stem ? batch_stem : stems[b0];
        const int64_t rd[4] = {per, k, s[2], s[3]}, md[4] = {per, k, h, w}, cd[2] = {c, k};
        rc = save(o->out_dir, stem, ".raw", raw + (size_t)b0 * k * fhw, 4, rd);
        if (!rc)
            rc = save(o->out_dir, stem, "", maps + (size_t)b0 * k * plane, 4, md);
        if (!rc)
            rc = save(o->out_dir, stem, ".concepts", con, 2, cd);
    }
out:
    free(A);
    free(con);
    free(raw);
    free(maps);
    free(one);
    free(names);
    free(namebuf);
    return rc;
}
