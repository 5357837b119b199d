/* cam_perturb.c - `kdcam cam --method occlusion|featureablation` (issue
 * 19): the perturbation attributions of kdc_perturb_compute, drawn and
 * saved like a CAM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_perturb_kind(const char *name)
{
    if (!strcmp(name, "occlusion"))
        return KDC_PERTURB_OCCLUSION;
    if (!strcmp(name, "featureablation"))
        return KDC_PERTURB_ABLATION;
    return -1;
}

/* DIR/STEM.METHOD<suffix> into path; non-zero (printed) if too long. */
static int out_path(char *path, size_t size, const char *dir, const char *stem,
                    const char *method, const char *suffix)
{
    if ((size_t)snprintf(path, size, "%s/%s.%s%s", dir, stem, method, suffix) >= size)
        return cli_error("%s: output path too long", dir);
    return 0;
}

int cli_cam_perturb(const cli_opts *o, kdc_run *run, const kdc_model *m, int kind,
                    const float *input, int n, int h, int w, const int *classes,
                    char *const *stems, char *const *srcs, kdc_image **crops,
                    const char *method)
{
    const size_t plane = (size_t)h * w;
    float *attr = malloc((size_t)n * plane * sizeof *attr);
    float *norm = malloc(plane * sizeof *norm);
    int *cls = malloc((size_t)n * sizeof *cls);
    char path[4096];
    int rc = 0;
    kdc_status st;
    if (!attr || !norm || !cls) {
        rc = cli_error("out of memory");
        goto out;
    }
    kdc_perturb_options po = {.kind = (kdc_perturb_kind)kind, .window = o->window,
                              .stride = o->stride, .chunk = o->chunk,
                              .target = {.kind = o->score_prob ? KDC_TARGET_PROB
                                                                   : KDC_TARGET_LOGIT,
                                                 .classes = classes}};
    if ((st = kdc_perturb_compute(run, input, n, h, w, &po, attr, cls))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    for (int b = 0; b < n && !rc; b++) {
        const float *a = attr + (size_t)b * plane;
        float lo = a[0], hi = a[0];
        for (size_t i = 1; i < plane; i++) {
            lo = a[i] < lo ? a[i] : lo;
            hi = a[i] > hi ? a[i] : hi;
        }
        for (size_t i = 0; i < plane; i++)
            norm[i] = (a[i] - lo) / (hi - lo + 1e-7f);
        const char *cname = kdc_model_class_name(m, cls[b]);
        printf("%s: class %d%s%s%s, %s\n", srcs[b], cls[b],
               cname ? " (" : "", cname ? cname : "", cname ? ")" : "", method);
        kdc_image *ov = NULL;
        const int64_t dims[3] = {1, h, w};
        if ((rc = out_path(path, sizeof path, o->out_dir, stems[b], method, ".png")))
            break;
        if ((st = kdc_overlay(crops[b], norm, &ov)) || (st = kdc_image_save_png(ov, path)))
            rc = cli_lib_error(st, NULL);
        else
            printf("  %s\n", path);
        kdc_image_destroy(ov);
        if (rc || !o->npy)
            continue;
        if (!(rc = out_path(path, sizeof path, o->out_dir, stems[b], method, ".raw.npy")) &&
            (st = kdc_npy_save(path, a, 3, dims)))
            rc = cli_lib_error(st, NULL);
        if (!rc && !(rc = out_path(path, sizeof path, o->out_dir, stems[b], method, ".npy")) &&
            (st = kdc_npy_save(path, norm, 3, dims)))
            rc = cli_lib_error(st, NULL);
    }
out:
    free(attr);
    free(norm);
    free(cls);
    return rc;
}
