/* common.c - what the commands of the kdcam tool share: option parsing,
 * error printing, loading a model and its input batch, the output
 * directory. Each command prints one line "kdcam: ..." on stderr and exits
 * non-zero on any error (2 for a usage error). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("kdcam: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

void cli_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int cli_lib_error(kdc_status st, const char *what)
{
    (void)st;
    if (what)
        return cli_error("%s: %s", what, kdc_last_error());
    return cli_error("%s", kdc_last_error());
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_parse(int argc, char **argv, unsigned acc, const char *usage, cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->eps = -1.0f;
    o->threads = 1;
    o->topk = 5;
    o->cls = -1;
    o->channel = -1;
    o->score_thresh = -1.0f;
    o->detection = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDS(flag)                                                                \
    do {                                                                           \
        if (!(acc & (flag)))                                                       \
            goto unknown;                                                          \
        if (!v) {                                                                  \
            cli_error("option %s needs a value (see --help)", a);                  \
            return -1;                                                             \
        }                                                                          \
        i++;                                                                       \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--arch")) {
            NEEDS(OPT_ARCH);
            o->arch = v;
        } else if (!strcmp(a, "-w") || !strcmp(a, "--weights")) {
            NEEDS(OPT_WEIGHTS);
            o->weights = v;
        } else if (!strcmp(a, "--prefix")) {
            NEEDS(OPT_MODEL_EXTRA);
            o->prefix = v;
        } else if (!strcmp(a, "--key")) {
            NEEDS(OPT_MODEL_EXTRA);
            o->key = v;
        } else if (!strcmp(a, "--allow-unused")) {
            if (!(acc & OPT_MODEL_EXTRA))
                goto unknown;
            o->allow_unused = 1;
        } else if (!strcmp(a, "--eps")) {
            NEEDS(OPT_MODEL_EXTRA);
            char *end;
            o->eps = strtof(v, &end);
            if (end == v || *end || !(o->eps >= 0.0f && o->eps < 1.0f)) {
                cli_error("--eps: '%s' is not a number in [0, 1)", v);
                return -1;
            }
        } else if (!strcmp(a, "--act")) {
            NEEDS(OPT_MODEL_EXTRA);
            if (!strcmp(v, "relu"))
                o->act = KDC_ACT_RELU;
            else if (!strcmp(v, "relu6"))
                o->act = KDC_ACT_RELU6;
            else {
                cli_error("--act: '%s' is neither relu nor relu6", v);
                return -1;
            }
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            NEEDS(OPT_THREADS);
            if (parse_int(v, 1, 256, &o->threads)) {
                cli_error("--threads: '%s' is not a number in 1..256", v);
                return -1;
            }
        } else if (!strcmp(a, "--size")) {
            NEEDS(OPT_SIZE);
            int h, w, used = 0;
            if (sscanf(v, "%dx%d%n", &h, &w, &used) != 2 || v[used] || h < 1 || w < 1 ||
                h > 16384 || w > 16384) {
                cli_error("--size: '%s' is not HxW (e.g. 224x224)", v);
                return -1;
            }
            o->size_h = h;
            o->size_w = w;
        } else if (!strcmp(a, "--topk") || !strcmp(a, "-k")) {
            NEEDS(OPT_TOPK);
            if (parse_int(v, 1, 100000, &o->topk)) {
                cli_error("--topk: '%s' is not a positive number", v);
                return -1;
            }
        } else if (!strcmp(a, "--runs")) {
            NEEDS(OPT_BENCH);
            if (parse_int(v, 1, 100000, &o->runs)) {
                cli_error("--runs: '%s' is not a number in 1..100000", v);
                return -1;
            }
        } else if (!strcmp(a, "--batch")) {
            NEEDS(OPT_BENCH);
            if (parse_int(v, 1, 4096, &o->batch)) {
                cli_error("--batch: '%s' is not a number in 1..4096", v);
                return -1;
            }
        } else if (!strcmp(a, "--layers")) {
            if (!(acc & OPT_BENCH))
                goto unknown;
            o->layer_times = 1;
        } else if (!strcmp(a, "--task")) {
            NEEDS(OPT_BENCH);
            if (strcmp(v, "forward") && strcmp(v, "gradcam") && strcmp(v, "guided")) {
                cli_error("--task: '%s' is not forward, gradcam or guided", v);
                return -1;
            }
            o->task = v;
        } else if (!strcmp(a, "--limit")) {
            NEEDS(OPT_LIMIT);
            if (parse_int(v, 1, 100000000, &o->limit)) {
                cli_error("--limit: '%s' is not a positive number", v);
                return -1;
            }
        } else if (!strcmp(a, "--kernels")) {
            NEEDS(OPT_MODEL_EXTRA);
            if (strcmp(v, "auto") && strcmp(v, "scalar") && strcmp(v, "avx2") &&
                strcmp(v, "avx512") && strcmp(v, "neon")) {
                cli_error("--kernels: '%s' is not auto, scalar, avx2, avx512 or neon", v);
                return -1;
            }
            o->kernels = v;
        } else if (!strcmp(a, "--json")) {
            if (!(acc & OPT_JSON))
                goto unknown;
            o->json = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            if (!(acc & OPT_VERBOSE))
                goto unknown;
            o->verbose = 1;
        } else if (!strcmp(a, "--layer") || !strcmp(a, "-l")) {
            NEEDS(OPT_LAYER);
            if (o->n_layers == CLI_MAX_LAYERS) {
                cli_error("too many --layer options (at most %d)", CLI_MAX_LAYERS);
                return -1;
            }
            o->layers[o->n_layers++] = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            NEEDS(OPT_OUT);
            o->out_dir = v;
        } else if (!strcmp(a, "--method")) {
            NEEDS(OPT_CAM);
            o->method = v;
        } else if (!strcmp(a, "--feature")) {
            NEEDS(OPT_CAM);
            o->feature = v;
        } else if (!strcmp(a, "--scorecam-topk")) {
            NEEDS(OPT_CAM);
            if (parse_int(v, 0, 1 << 20, &o->topk_channels)) {
                cli_error("--scorecam-topk: '%s' is not a number >= 0", v);
                return -1;
            }
        } else if (!strcmp(a, "--baseline")) { /* issue 19, part B */
            NEEDS(OPT_CAM);
            o->baseline = v;
        } else if (!strcmp(a, "--lrp-rule")) {
            NEEDS(OPT_CAM);
            if (strcmp(v, "epsilon") && strcmp(v, "gamma")) {
                cli_error("--lrp-rule: '%s' is neither epsilon nor gamma", v);
                return -1;
            }
            o->lrp_rule = strcmp(v, "gamma") ? KDC_LRP_EPSILON : KDC_LRP_GAMMA;
        } else if (!strcmp(a, "--lrp-epsilon") || !strcmp(a, "--lrp-gamma") ||
                   !strcmp(a, "--kpca-gamma") || !strcmp(a, "--finer-alpha")) {
            NEEDS(OPT_CAM);
            char *end;
            float f = strtof(v, &end);
            if (end == v || *end || !(f > 0.0f) || !isfinite(f)) {
                cli_error("%s: '%s' is not a finite number > 0", a, v);
                return -1;
            }
            *(a[2] == 'k' ? &o->kpca_gamma : a[2] == 'f' ? &o->finer_alpha
              : a[6] == 'e' ? &o->lrp_epsilon : &o->lrp_gamma) = f;
        } else if (!strcmp(a, "--score")) { /* issue 19 */
            NEEDS(OPT_CAM);
            if (strcmp(v, "logit") && strcmp(v, "prob")) {
                cli_error("--score: '%s' is neither logit nor prob", v);
                return -1;
            }
            o->score_prob = !strcmp(v, "prob");
        } else if (!strcmp(a, "--kpca-kernel")) { /* issue 19, part C */
            NEEDS(OPT_CAM);
            static const char *const kn[] = {"sigmoid", "rbf", "poly", "linear", "cosine"};
            o->kpca_kernel = -1;
            for (int k = 0; k < 5; k++)
                if (!strcmp(v, kn[k]))
                    o->kpca_kernel = k;
            if (o->kpca_kernel < 0) {
                cli_error("--kpca-kernel: '%s' is not sigmoid, rbf, poly, linear or cosine", v);
                return -1;
            }
        } else if (!strcmp(a, "--guided")) {
            if (!(acc & OPT_CAM))
                goto unknown;
            o->guided = 1;
        } else if (!strcmp(a, "--npy")) {
            if (!(acc & OPT_CAM))
                goto unknown;
            o->npy = 1;
        } else if (!strcmp(a, "--on-original")) {
            if (!(acc & OPT_CAM))
                goto unknown;
            o->on_original = 1;
        } else if (!strcmp(a, "--grad")) {
            if (!(acc & OPT_GRAD))
                goto unknown;
            o->grad = 1;
        } else if (!strcmp(a, "--class") || !strcmp(a, "-c")) {
            NEEDS(OPT_CLASS);
            if (parse_int(v, 0, 1 << 30, &o->cls)) {
                cli_error("--class: '%s' is not a class index (0, 1, ...)", v);
                return -1;
            }
        } else if (!strcmp(a, "--target")) {
            NEEDS(OPT_TARGET);
            cli_target t;
            if (cli_target_parse(v, &t))
                return -1;
            o->target = v;
        } else if (!strcmp(a, "--per-layer")) {
            if (!(acc & OPT_CAM_EXTRA))
                goto unknown;
            o->per_layer = 1;
        } else if (!strcmp(a, "--window") || !strcmp(a, "--stride") || !strcmp(a, "--chunk") ||
                   !strcmp(a, "--samples") || !strcmp(a, "--components")) {
            NEEDS(OPT_CAM_EXTRA);
            int *dst = a[2] == 'w' ? &o->window : a[3] == 't' ? &o->stride
                     : a[3] == 'h' ? &o->chunk : a[2] == 'c' ? &o->components : &o->samples;
            if (parse_int(v, 1, 1 << 20, dst)) {
                cli_error("%s: '%s' is not a number >= 1", a, v);
                return -1;
            }
        } else if (!strcmp(a, "--level")) {
            NEEDS(OPT_DET);
            o->level = v;
        } else if (!strcmp(a, "--box")) {
            NEEDS(OPT_DET);
            int used = 0;
            if (sscanf(v, "%f,%f,%f,%f%n", &o->box[0], &o->box[1], &o->box[2], &o->box[3],
                       &used) != 4 || v[used] || !(o->box[0] < o->box[2]) ||
                !(o->box[1] < o->box[3])) {
                cli_error("--box: '%s' is not x0,y0,x1,y1 with x0 < x1 and y0 < y1", v);
                return -1;
            }
            o->has_box = 1;
        } else if (!strcmp(a, "--channel")) {
            NEEDS(OPT_DET);
            if (parse_int(v, 0, 1 << 20, &o->channel)) {
                cli_error("--channel: '%s' is not a channel index", v);
                return -1;
            }
        } else if (!strcmp(a, "--energy")) {
            NEEDS(OPT_DET);
            if (!strcmp(v, "sumsq"))
                o->energy = KDC_ENERGY_SUMSQ;
            else if (!strcmp(v, "mean"))
                o->energy = KDC_ENERGY_MEAN;
            else {
                cli_error("--energy: '%s' is neither sumsq nor mean", v);
                return -1;
            }
        } else if (!strcmp(a, "--score-thresh")) {
            NEEDS(OPT_DET);
            char *end;
            o->score_thresh = strtof(v, &end);
            if (end == v || *end || !(o->score_thresh >= 0.0f && o->score_thresh < 1.0f)) {
                cli_error("--score-thresh: '%s' is not a number in [0, 1)", v);
                return -1;
            }
        } else if (!strcmp(a, "--anchor-size")) {
            NEEDS(OPT_DET);
            if (parse_int(v, 4, 1024, &o->anchor_size)) {
                cli_error("--anchor-size: '%s' is not a number in 4..1024", v);
                return -1;
            }
        } else if (!strcmp(a, "--max-dets")) {
            NEEDS(OPT_DET);
            if (parse_int(v, 1, 100000, &o->max_dets)) {
                cli_error("--max-dets: '%s' is not a number in 1..100000", v);
                return -1;
            }
        } else if (!strcmp(a, "--det-style")) {
            NEEDS(OPT_DET);
            if (!strcmp(v, "auto"))
                o->det_style = KDC_DETECT_AUTO;
            else if (!strcmp(v, "tv") || !strcmp(v, "torchvision"))
                o->det_style = KDC_DETECT_TORCHVISION;
            else if (!strcmp(v, "mm") || !strcmp(v, "mmdet"))
                o->det_style = KDC_DETECT_MMDET;
            else {
                cli_error("--det-style: '%s' is not auto, tv or mm", v);
                return -1;
            }
        } else if (!strcmp(a, "--coco")) {
            NEEDS(OPT_DET);
            o->coco = v;
        } else if (!strcmp(a, "--detection")) {
            NEEDS(OPT_DET);
            if (parse_int(v, 0, 100000, &o->detection)) {
                cli_error("--detection: '%s' is not a detection index (0 = the best)", v);
                return -1;
            }
        } else if (!strcmp(a, "--detection-box")) {
            if (!(acc & OPT_DET))
                goto unknown;
            o->detection_box = 1;
        } else if (!strcmp(a, "--det-size")) {
            NEEDS(OPT_DET);
            int used = 0, n2 = sscanf(v, "%d,%d%n", &o->det_short, &o->det_max, &used);
            if (n2 == 1) {
                used = 0;
                sscanf(v, "%d%n", &o->det_short, &used);
                o->det_max = 0;
            }
            if (n2 < 1 || v[used] || o->det_short < 32 || o->det_short > 8192 ||
                (n2 == 2 && o->det_max < o->det_short)) {
                cli_error("--det-size: '%s' is not SHORT[,MAX] with 32 <= SHORT <= MAX", v);
                return -1;
            }
        } else if (!strcmp(a, "--fpn-extra")) {
            NEEDS(OPT_MODEL_EXTRA);
            static const char *names[] = {"auto", "none", "pool", "on-input", "on-output",
                                          "on-lateral"};
            o->fpn_extra = -1;
            for (int k = 0; k < 6; k++)
                if (!strcmp(v, names[k]))
                    o->fpn_extra = k;
            if (o->fpn_extra < 0) {
                cli_error("--fpn-extra: '%s' is not auto, none, pool, on-input, on-output or "
                          "on-lateral", v);
                return -1;
            }
        } else if (!strcmp(a, "--no-head")) {
            if (!(acc & OPT_MODEL_EXTRA))
                goto unknown;
            o->no_head = 1;
        } else if (!strcmp(a, "--fpn-relu-extra")) {
            if (!(acc & OPT_MODEL_EXTRA))
                goto unknown;
            o->fpn_relu_extra = 1;
        } else if (!strcmp(a, "--labels")) {
            NEEDS(OPT_MODELS);
            o->labels = v;
        } else if (!strcmp(a, "--model")) {
            NEEDS(OPT_MODELS);
            if (o->n_models == CLI_MAX_MODELS) {
                cli_error("too many --model options (at most %d)", CLI_MAX_MODELS);
                return -1;
            }
            o->models[o->n_models++] = v;
        } else if (!strcmp(a, "--input-npy")) {
            NEEDS(OPT_INPUT_NPY);
            o->input_npy = v;
        } else if (!strcmp(a, "--max-pixels")) {
            NEEDS(OPT_IMAGES);
            char *end;
            errno = 0;
            o->max_pixels = strtoll(v, &end, 10);
            if (end == v || *end || errno || o->max_pixels < 1) {
                cli_error("--max-pixels: '%s' is not a positive number of pixels", v);
                return -1;
            }
        } else if (a[0] == '-' && a[1]) {
            goto unknown;
        } else {
            if (!(acc & OPT_IMAGES)) {
                cli_error("unexpected argument '%s' (see --help)", a);
                return -1;
            }
            if (o->n_images == CLI_MAX_IMAGES) {
                cli_error("too many images (at most %d per call)", CLI_MAX_IMAGES);
                return -1;
            }
            o->images[o->n_images++] = a;
        }
        continue;
unknown:
        cli_error("unknown option '%s' (see --help)", a);
        return -1;
#undef NEEDS
    }
    if ((acc & OPT_WEIGHTS) && !o->weights) {
        cli_error("missing -w WEIGHTS (a .pth or .safetensors file; see --help)");
        return -1;
    }
    if (acc & OPT_IMAGES) {
        if (o->input_npy && o->n_images) {
            cli_error("give images or --input-npy, not both");
            return -1;
        }
        if (!o->input_npy && !o->n_images) {
            if (acc & OPT_INPUT_NPY)
                cli_error("no input: give image files or --input-npy X.npy (see --help)");
            else
                cli_error("no input given (see --help)");
            return -1;
        }
    }
    return 0;
}

int cli_load_model(const cli_opts *o, kdc_model **model)
{
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    mo.arch = o->arch;
    mo.prefix = o->prefix;
    mo.key = o->key;
    mo.allow_unused = o->allow_unused;
    mo.bn_eps = o->eps;
    mo.activation = o->act;
    mo.fpn_extra = (kdc_fpn_extra)o->fpn_extra;
    mo.fpn_relu_extra = o->fpn_relu_extra;
    mo.no_head = o->no_head;
    if (o->kernels && !strcmp(o->kernels, "scalar"))
        mo.kernels = KDC_KERNELS_SCALAR;
    else if (o->kernels && !strcmp(o->kernels, "avx2"))
        mo.kernels = KDC_KERNELS_AVX2;
    else if (o->kernels && !strcmp(o->kernels, "avx512"))
        mo.kernels = KDC_KERNELS_AVX512;
    else if (o->kernels && !strcmp(o->kernels, "neon"))
        mo.kernels = KDC_KERNELS_NEON;
    else
        mo.kernels = KDC_KERNELS_AUTO;
    kdc_status st = kdc_model_load(o->weights, &mo, model);
    if (st)
        return cli_lib_error(st, NULL);
    if (o->verbose) {
        int k = kdc_model_num_ignored(*model);
        fprintf(stderr, "kdcam: %s: %s, %d tensors ignored%s\n", o->weights,
                kdc_model_arch(*model), k, k ? ":" : "");
        for (int i = 0; i < k; i++)
            fprintf(stderr, "  %s\n", kdc_model_ignored(*model, i));
    }
    return 0;
}

kdc_status cli_image_load(const cli_opts *o, const char *path, kdc_image **img)
{
    kdc_image_options opt;
    kdc_image_options_init(&opt);
    if (o->max_pixels > 0)
        opt.max_pixels = o->max_pixels;
    return kdc_image_load_ex(path, &opt, img);
}

/* Rebuilds an 8-bit picture from a normalised CHW tensor: x * std + mean. */
static kdc_status crop_from_tensor(const float *x, int h, int w, const kdc_preprocess *pp,
                                   kdc_image **out)
{
    kdc_status st = kdc_image_create(w, h, out);
    if (st)
        return st;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < h * w; i++) {
            float v = (x[(size_t)c * h * w + i] * pp->std[c] + pp->mean[c]) * 255.0f + 0.5f;
            /* NaN goes to 0 here (casting it is undefined); the forward
             * pass refuses non-finite inputs with a message. */
            (*out)->rgb[(size_t)i * 3 + c] = (unsigned char)(v >= 0 ? (v > 255 ? 255 : v) : 0);
        }
    return KDC_OK;
}

void cli_free_crops(kdc_image **crops, int n)
{
    if (!crops)
        return;
    for (int i = 0; i < n; i++)
        kdc_image_destroy(crops[i]);
    free(crops);
}

int cli_load_input(const cli_opts *o, const kdc_model *model, float **input, int *n, int *h,
                   int *w)
{
    return cli_load_batch(o, model, NULL, input, n, h, w, NULL);
}

int cli_load_batch(const cli_opts *o, const kdc_model *model, const kdc_preprocess *pp_in,
                   float **input, int *n, int *h, int *w, kdc_image ***crops_out)
{
    kdc_status st;
    kdc_image **crops = NULL;
    *input = NULL;
    if (crops_out)
        *crops_out = NULL;
    if (o->input_npy) {
        float *data;
        int ndim;
        int64_t dims[8];
        if ((st = kdc_npy_load(o->input_npy, &data, &ndim, dims)))
            return cli_lib_error(st, NULL);
        if (ndim != 4 || dims[1] != 3 || dims[0] < 1 || dims[2] < 1 || dims[3] < 1 ||
            dims[2] > 16384 || dims[3] > 16384 || dims[0] > 65536) {
            char shape[160] = "";
            for (int d = 0, k = 0; d < ndim && k < (int)sizeof shape - 24; d++)
                k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "",
                              (long long)dims[d]);
            kdc_free(data);
            return cli_error("%s: expected a float32 array N x 3 x H x W (N in 1..65536, H and "
                             "W in 1..16384), got shape (%s)", o->input_npy, shape);
        }
        /* kdc_free and free are the same allocator by contract (kdcam.h) */
        *input = data;
        *n = (int)dims[0];
        *h = (int)dims[2];
        *w = (int)dims[3];
        if (crops_out) {
            kdc_preprocess pp;
            if (pp_in)
                pp = *pp_in;
            else
                kdc_model_preprocess(model, &pp);
            crops = calloc((size_t)*n, sizeof *crops);
            if (!crops)
                return cli_error("out of memory");
            for (int i = 0; i < *n; i++) {
                if ((st = crop_from_tensor(data + (size_t)i * 3 * *h * *w, *h, *w, &pp,
                                           &crops[i]))) {
                    cli_free_crops(crops, *n);
                    free(data);
                    *input = NULL;
                    return cli_lib_error(st, NULL);
                }
            }
            *crops_out = crops;
        }
        return 0;
    }
    kdc_preprocess pp;
    if (pp_in)
        pp = *pp_in;
    else
        kdc_model_preprocess(model, &pp);
    if (crops_out) {
        crops = calloc((size_t)o->n_images, sizeof *crops);
        if (!crops)
            return cli_error("out of memory");
    }
    float *batch = NULL;
    int bh = 0, bw = 0;
    for (int i = 0; i < o->n_images; i++) {
        kdc_image *img;
        int ih, iw;
        if ((st = cli_image_load(o, o->images[i], &img))) {
            free(batch);
            cli_free_crops(crops, o->n_images);
            return cli_lib_error(st, NULL);
        }
        if ((st = kdc_preprocess_size(&pp, img->width, img->height, &ih, &iw))) {
            kdc_image_destroy(img);
            free(batch);
            cli_free_crops(crops, o->n_images);
            return cli_lib_error(st, o->images[i]);
        }
        if (i == 0) {
            bh = ih;
            bw = iw;
            batch = malloc((size_t)o->n_images * 3 * (size_t)ih * (size_t)iw * sizeof *batch);
            if (!batch) {
                kdc_image_destroy(img);
                cli_free_crops(crops, o->n_images);
                return cli_error("out of memory for %d images of %dx%d", o->n_images, ih, iw);
            }
        } else if (ih != bh || iw != bw) {
            kdc_image_destroy(img);
            free(batch);
            cli_free_crops(crops, o->n_images);
            return cli_error("%s: preprocesses to %dx%d but %s to %dx%d; images of one call "
                             "must agree", o->images[i], ih, iw, o->images[0], bh, bw);
        }
        st = kdc_preprocess_image(img, &pp, batch + (size_t)i * 3 * ih * iw,
                                  crops ? &crops[i] : NULL);
        kdc_image_destroy(img);
        if (st) {
            free(batch);
            cli_free_crops(crops, o->n_images);
            return cli_lib_error(st, o->images[i]);
        }
    }
    if (crops_out)
        *crops_out = crops;
    *input = batch;
    *n = o->n_images;
    *h = bh;
    *w = bw;
    return 0;
}

int cli_prepare_out_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT || mkdir(dir, 0777) != 0)
            return cli_error("%s: cannot create output directory: %s", dir, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        return cli_error("%s: exists and is not a directory", dir);
    }
    if (access(dir, W_OK | X_OK) != 0)
        return cli_error("%s: output directory is not writable: %s", dir, strerror(errno));
    return 0;
}

int cli_default_cam_layer(const kdc_model *m, int *layer, const char **name)
{
    static const char *names[] = {"layer4", "model.13"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (kdc_model_find_layer(m, names[i], layer) == KDC_OK) {
            if (name)
                *name = names[i];
            return 0;
        }
    return cli_error("%s: no default CAM layer; give --layer", kdc_model_arch(m));
}
