/* detect.c - the CLI's handling of detection backbones (ResNet-FPN): the
 * detector input and level-energy targets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_is_detector(const kdc_model *m)
{
    return kdc_model_num_classes(m) == 0;
}

int cli_find_level(const cli_opts *o, const kdc_model *m, int *level)
{
    char name[160];
    const char *want = o->level ? o->level : "p3";
    /* "p3" is short for "fpn.p3"; any layer name works too */
    if (want[0] == 'p' && want[1] >= '0' && want[1] <= '9')
        snprintf(name, sizeof name, "fpn.%s", want);
    else
        snprintf(name, sizeof name, "%s", want);
    kdc_status st = kdc_model_find_layer(m, name, level);
    return st ? cli_lib_error(st, "--level") : 0;
}

int cli_load_det_batch(const cli_opts *o, const kdc_model *m, float **input, int *n, int *h,
                       int *w, kdc_image ***crops_out, double **scales_out, int *sizes_out)
{
    kdc_det_preprocess pp;
    kdc_status st;
    int rc = 0;
    if (o->input_npy) {
        /* already the detector's input: no rescaling of boxes */
        if ((rc = cli_load_batch(o, m, NULL, input, n, h, w, NULL)))
            return rc;
        for (int i = 0; sizes_out && i < *n; i++) {
            sizes_out[2 * i] = *w;
            sizes_out[2 * i + 1] = *h;
        }
        if (scales_out) {
            *scales_out = malloc((size_t)*n * sizeof **scales_out);
            if (!*scales_out)
                return cli_error("out of memory");
            for (int i = 0; i < *n; i++)
                (*scales_out)[i] = 1.0;
        }
        if (crops_out) {
            /* pictures of the input, denormalised with the detector's constants */
            kdc_image **crops = calloc((size_t)*n, sizeof *crops);
            if (!crops)
                return cli_error("out of memory");
            kdc_model_det_preprocess(m, &pp);
            for (int i = 0; i < *n && !rc; i++) {
                if ((st = kdc_image_create(*w, *h, &crops[i]))) {
                    rc = cli_lib_error(st, NULL);
                    break;
                }
                const float *x = *input + (size_t)i * 3 * *h * *w;
                for (int c = 0; c < 3; c++)
                    for (int k = 0; k < *h * *w; k++) {
                        float v = (x[(size_t)c * *h * *w + k] * pp.std[c] + pp.mean[c]) /
                                  pp.scale + 0.5f;
                        crops[i]->rgb[(size_t)k * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : (unsigned char)v;
                    }
            }
            *crops_out = crops;
        }
        return rc;
    }
    kdc_model_det_preprocess(m, &pp);
    if (o->det_short) {
        pp.short_side = o->det_short;
        pp.max_side = o->det_max ? o->det_max : (o->det_short * 1333 + 799) / 800;
    }
    const int N = o->n_images;
    float **one = calloc((size_t)N, sizeof *one);
    int *hs = calloc((size_t)N, sizeof *hs), *ws = calloc((size_t)N, sizeof *ws);
    double *scales = calloc((size_t)N, sizeof *scales);
    kdc_image **crops = crops_out ? calloc((size_t)N, sizeof *crops) : NULL;
    float *batch = NULL;
    int H = 0, W = 0;
    if (!one || !hs || !ws || !scales || (crops_out && !crops)) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int i = 0; i < N; i++) {
        kdc_image *img;
        if ((st = cli_image_load(o, o->images[i], &img))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
        st = kdc_preprocess_detection(img, &pp, &one[i], &hs[i], &ws[i], NULL, NULL, &scales[i]);
        if (sizes_out) {
            sizes_out[2 * i] = img->width;
            sizes_out[2 * i + 1] = img->height;
        }
        if (!st && crops) {
            int ch, cw;
            double s;
            kdc_det_preprocess raw = pp;
            /* the resized picture: preprocess with identity normalisation */
            for (int c = 0; c < 3; c++) {
                raw.mean[c] = 0.0f;
                raw.std[c] = 1.0f;
            }
            raw.scale = 1.0f;
            float *pix = NULL;
            int ph, pw;
            st = kdc_preprocess_detection(img, &raw, &pix, &ph, &pw, &ch, &cw, &s);
            if (!st && !(st = kdc_image_create(pw, ph, &crops[i])))
                for (int c = 0; c < 3; c++)
                    for (int k = 0; k < ph * pw; k++) {
                        float v = pix[(size_t)c * ph * pw + k] + 0.5f;
                        crops[i]->rgb[(size_t)k * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : (unsigned char)v;
                    }
            kdc_free(pix);
        }
        kdc_image_destroy(img);
        if (st) {
            rc = cli_lib_error(st, o->images[i]);
            goto out;
        }
        H = hs[i] > H ? hs[i] : H;
        W = ws[i] > W ? ws[i] : W;
    }
    /* one batch: every image padded to the largest (as torchvision batches) */
    batch = calloc((size_t)N * 3 * H * W, sizeof *batch);
    if (!batch) {
        rc = cli_error("out of memory for %d images of %dx%d", N, W, H);
        goto out;
    }
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < hs[i]; y++)
                memcpy(batch + (((size_t)i * 3 + c) * H + y) * W,
                       one[i] + ((size_t)c * hs[i] + y) * ws[i], (size_t)ws[i] * sizeof *batch);
    if (crops)
        for (int i = 0; i < N; i++) {
            if (hs[i] == H && ws[i] == W)
                continue;
            kdc_image *big;
            if ((st = kdc_image_create(W, H, &big))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            kdc_image_paste(big, crops[i], 0, 0);
            kdc_image_destroy(crops[i]);
            crops[i] = big;
        }
    *input = batch;
    batch = NULL;
    *n = N;
    *h = H;
    *w = W;
    if (crops_out) {
        *crops_out = crops;
        crops = NULL;
    }
    if (scales_out) {
        *scales_out = scales;
        scales = NULL;
    }
out:
    for (int i = 0; one && i < N; i++)
        kdc_free(one[i]);
    free(one);
    free(hs);
    free(ws);
    free(scales);
    free(batch);
    cli_free_crops(crops, N);
    return rc;
}

int cli_level_seed(const cli_opts *o, const kdc_model *m, kdc_run *run, const float *input, int n,
                   int h, int w, const double *scales, int level, float **seed)
{
    kdc_status st;
    int s[4];
    *seed = NULL;
    if ((st = kdc_run_forward(run, input, n, h, w, &level, 1)) ||
        (st = kdc_run_layer_shape(run, level, s)))
        return cli_lib_error(st, NULL);
    const size_t per = (size_t)s[1] * s[2] * s[3];
    float *act = malloc((size_t)n * per * sizeof *act), *sd = malloc((size_t)n * per * sizeof *sd);
    if (!act || !sd) {
        free(act);
        free(sd);
        return cli_error("out of memory");
    }
    if ((st = kdc_run_read_layer(run, level, act, (size_t)n * per))) {
        free(act);
        free(sd);
        return cli_lib_error(st, NULL);
    }
    /* per image: the box scales with that image's resize */
    for (int b = 0; b < n; b++) {
        float box[4];
        for (int k = 0; k < 4; k++)
            box[k] = (float)(o->box[k] * (scales ? scales[b] : 1.0));
        st = kdc_energy_seed(act + b * per, 1, s[1], s[2], s[3], h, w, (kdc_energy)o->energy,
                             o->has_box ? box : NULL, o->channel, sd + b * per);
        if (st) {
            free(act);
            free(sd);
            return cli_lib_error(st, kdc_model_layer_name(m, level));
        }
    }
    free(act);
    *seed = sd;
    return 0;
}

int cli_detect_all(const cli_opts *o, const kdc_model *m, kdc_run *run, const float *input,
                   int n, int h, int w, const double *scales, const int *sizes,
                   kdc_detection **dets, int *counts)
{
    kdc_head_info hi;
    kdc_status st;
    kdc_model_head(m, &hi);
    int keep[2 * KDC_HEAD_MAX_LEVELS];
    for (int l = 0; l < hi.num_levels; l++) {
        keep[2 * l] = hi.cls_layer[l];
        keep[2 * l + 1] = hi.reg_layer[l];
    }
    for (int b = 0; b < n; b++)
        dets[b] = NULL;
    if ((st = kdc_run_forward(run, input, n, h, w, keep, 2 * hi.num_levels)))
        return cli_lib_error(st, NULL);
    kdc_detect_options dopt;
    kdc_detect_options_init(&dopt, (kdc_detect_style)o->det_style);
    if (o->score_thresh >= 0.0f)
        dopt.score_thresh = o->score_thresh;
    dopt.max_dets = o->max_dets;
    dopt.anchor_size = o->anchor_size;
    kdc_det_preprocess pp;
    kdc_model_det_preprocess(m, &pp);
    for (int b = 0; b < n; b++) {
        /* the resized image inside the padded input, as the loader made it */
        int ow = w, oh = h, cw = w, ch = h;
        if (sizes && scales) {
            const double rnd = pp.round_size ? 0.5 : 0.0;
            ow = sizes[2 * b];
            oh = sizes[2 * b + 1];
            cw = (int)floor(ow * scales[b] + rnd);
            ch = (int)floor(oh * scales[b] + rnd);
            cw = cw < 1 ? 1 : cw > w ? w : cw;
            ch = ch < 1 ? 1 : ch > h ? h : ch;
        }
        if ((st = kdc_detect(run, m, b, &dopt, ch, cw, oh, ow, &dets[b], &counts[b]))) {
            for (int k = 0; k < b; k++) {
                kdc_free(dets[k]);
                dets[k] = NULL;
            }
            return cli_lib_error(st, NULL);
        }
    }
    return 0;
}

int cli_detection_target(const cli_opts *o, const kdc_model *m, int h, int w,
                         const kdc_detection *dets, int n, kdc_target *tg)
{
    *tg = (kdc_target){.kind = KDC_TARGET_SEED};
    for (int b = 1; b < n; b++)
        if (dets[b].level_index != dets[0].level_index)
            return cli_error("the batch's chosen detections lie on different levels (p%d, p%d): "
                             "run these images with --batch 1", dets[0].level, dets[b].level);
    kdc_status st = kdc_detection_target(m, h, w, dets, n, o->detection_box, tg);
    return st ? cli_lib_error(st, NULL) : 0;
}

void cli_target_free(kdc_target *tg)
{
    kdc_free((void *)tg->seed);
    kdc_free((void *)tg->seed2);
    tg->seed = tg->seed2 = NULL;
}

int cli_detection_seed(const cli_opts *o, const kdc_model *m, kdc_run *run, const float *input,
                       int n, int h, int w, const double *scales, const int *sizes,
                       kdc_detection *dets, kdc_target *tg)
{
    kdc_detection **all = calloc((size_t)n, sizeof *all);
    int *counts = calloc((size_t)n, sizeof *counts), rc;
    *tg = (kdc_target){.kind = KDC_TARGET_SEED};
    if (!all || !counts) {
        free(all);
        free(counts);
        return cli_error("out of memory");
    }
    rc = cli_detect_all(o, m, run, input, n, h, w, scales, sizes, all, counts);
    for (int b = 0; b < n && !rc; b++) {
        if (o->detection >= counts[b])
            rc = cli_error("image %d of the batch has %d detection%s: no detection %d "
                           "(kdcam detect lists them)", b, counts[b], counts[b] == 1 ? "" : "s",
                           o->detection);
        else
            dets[b] = all[b][o->detection];
    }
    for (int b = 0; b < n; b++)
        kdc_free(all[b]);
    free(all);
    free(counts);
    if (!rc)
        rc = cli_detection_target(o, m, h, w, dets, n, tg);
    return rc;
}
