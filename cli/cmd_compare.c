/* cmd_compare.c - kdcam compare: several models (a teacher first, then its
 * students) on the same images. One figure per image: a row per model,
 * columns input / feature map / CAM / Guided Grad-CAM, each row labelled
 * with the model's name and top-1 class; with --json, per image and model
 * the prediction and the agreement of the model's map with the first
 * model's (Pearson correlation, IoU of the top-20% regions). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "figure.h"
#include "compare_det.h"
#include "inputs.h"

static const char *compare_usage =
    "usage: kdcam compare --model NAME=[ARCH:]WEIGHTS[@LAYER] [--model ...]... [--method M]\n"
    "                     [--layer L]... [--feature mean|max|l2|pca|fgd] [--class C]\n"
    "                     [--labels FILE] [-o DIR] [--json] [--npy] [--grid]\n"
    "                     (INPUT... | --input-npy X.npy)\n"
    "Runs every model on the same images and writes DIR/<stem>.compare.png: one row\n"
    "per model (the first is the teacher), columns input / feature map / CAM /\n"
    "Guided Grad-CAM, at each model's last stage (layer4, model.13) or the layer\n"
    "given. Each row names the model, its layer, its class with p=, and for the\n"
    "students the Pearson r and IoU of the top 20% of their map with the teacher's.\n"
    "Ground-truth boxes are drawn where the folder's labels.json (`kdcam shapes`)\n"
    "gives them. All models see the first model's resize and crop, each with its\n"
    "own normalisation, so their maps are pixel-aligned and comparable. INPUT is\n"
    "as for `kdcam cam` (files, folders, -r, @LIST, quoted globs).\n"
    "\n"
    "      --model SPEC    NAME=[ARCH:]WEIGHTS[@LAYER], e.g. \"Teacher (ResNet101)=resnet101:t.safetensors@layer3\"\n"
    "                      or \"Student=s.safetensors\" (architecture from the keys); repeatable\n"
    "  -l, --layer L       the CAM layer: once for every model, or once per model in\n"
    "                      --model order (an @LAYER in the spec wins)\n"
    "      --method M      CAM method (default gradcam; see `kdcam cam --help`)\n"
    "      --feature R     channel reduction of the feature-map column (default mean;\n"
    "                      fgd: FGD's spatial attention H*W*softmax(mean_c|F| / 0.5))\n"
    "  -c, --class C       target class for every model (default: each model's top-1)\n"
    "      --target T      the class every map explains: own (each model's top-1, the\n"
    "                      default), teacher (the first model's top-1), label (the\n"
    "                      image's class: labels.json of a `kdcam shapes` folder beside\n"
    "                      it, or its folder's name), or a class index or name (= -c)\n"
    "      --labels FILE   class names, one per line (default: ImageNet names for\n"
    "                      1000-class heads, else the class index)\n"
    "      --scorecam-topk K  as for `kdcam cam`\n"
    "  -o, --out DIR       output directory (default: current directory)\n"
    "      --json          per image and model, one JSON object: image, index, model,\n"
    "                      arch, layer, method, class, name, prob, target,\n"
    "                      pearson_vs_teacher, iou20_vs_teacher, figure\n"
    "      --npy           also write each model's map, DIR/<stem>.<model>.<method>.npy\n"
    "                      (1 x H x W, min-max normalised; <model>: the name with\n"
    "                      characters other than A-Z a-z 0-9 . - _ as _)\n"
    "      --grid          one figure of all images side by side (at most 16):\n"
    "                      DIR/grid.<method>.png, a row per model\n"
    "      --teacher-last  draw the teacher's row (the first --model) below the\n"
    "                      students', as the DPK figure page does; the teacher is\n"
    "                      still the first model for --target teacher and r/IoU20\n"
    "      --norm N        per-model (default: each map min-max normalised) or shared:\n"
    "                      the raw maps of one image divided by their common maximum,\n"
    "                      the colour bar ticked in raw map units\n"
    "      --heatmap-only  CAM panels show the map alone, not blended with the photo\n"
    "      --colormap C    jet (default), viridis, inferno or turbo, as for `kdcam cam`\n"
    "      --scale K       pixels per figure pixel, 1..8 (default 1)\n"
    "      --svg           also write the figure as SVG (text as text, panels embedded)\n"
    "  -r, --recursive, --batch B, --skip-existing, --progress-every S, --min-size N\n"
    "                      as for `kdcam cam` (--skip-existing: figures that exist)\n"
    "      --input-npy X   a preprocessed float32 N x 3 x H x W array instead of images\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n"
    "      --eps E, --act relu|relu6, --allow-unused, --prefix P, --key K, --kernels K\n"
    "                      apply to every model\n"
    "  -t, --threads N     worker threads (default 1)\n"
    "\n"
    "Detection backbones (ResNet-FPN): columns input / feature map / heatmap of the\n"
    "energy of --level (default p3), with --box, --channel, --energy, --det-size as\n"
    "for `kdcam cam`.\n"
    "Detectors with a RetinaNet head, --detection K: each row explains one detection,\n"
    "drawn on the input: the first model's detection K (as `kdcam detect` lists\n"
    "them), and for every other model its detection of largest box IoU with that\n"
    "one; columns input / feature map / CAM / Guided Grad-CAM of that detection's\n"
    "class logit, at its FPN level unless a layer is given (--score-thresh,\n"
    "--max-dets, --det-style, --anchor-size as for `kdcam detect`). Images of a\n"
    "batch must have their detections on one level per model (else --batch 1).\n"
    "The input panel also shows the model's other detections of score >=\n"
    "--show-dets (thin).\n"
    "      --show-dets S   other detections drawn on the input (default 0.5)\n"
    "      --detection-box  the target also adds the anchor's four box-regression\n"
    "                      outputs (logit + dx + dy + dw + dh)\n"
    "      --diff          one more column: the teacher's map minus each student's\n"
    "                      (as the CAM panels show them), blue where the student\n"
    "                      looks more, red where it looks less (figures, not --grid)\n"
    "      --summary       after the images, a table of each student's agreement\n"
    "                      with the teacher: the teacher's detections (score >=\n"
    "                      --show-dets) it finds again one to one (same class, box\n"
    "                      IoU >= 0.5), how often its explained detection is the\n"
    "                      teacher's (same class, IoU >= 0.5), the mean box IoU,\n"
    "                      map Pearson r and IoU20 (with --json: one object per\n"
    "                      model with \"summary\": true)\n";

typedef struct cmp_model {
    char name[128];
    kdc_model *m;
    int layer;
    const char *layer_name; /* as asked: layer3, model.11, layer4 */
    /* per batch of n images */
    float *fmap;     /* n x H x W, normalised            */
    float *cam;      /* n x H x W, normalised            */
    float *up;       /* n x H x W: raw map upsampled (--norm shared) */
    float *guided;   /* n x 3 x H x W: guided grad x cam */
    int *classes;    /* n                                */
    float *probs;    /* n: softmax probability of class  */
    /* --detection K (detectors with a head): the detection each image's
     * maps explain, its box in input pixels, and its IoU with the
     * teacher's (1 for the teacher) */
    int layer_fixed;       /* the layer was asked for (--layer, @LAYER)   */
    kdc_detection *det;    /* n, or NULL                                   */
    float (*dbox)[4];      /* n                                            */
    double *det_iou;       /* n                                            */
    kdc_detection **all;   /* n: every detection of each image, best first */
    int *counts;           /* n                                            */
    double *dscale;        /* n: original pixels to input pixels           */
    int nall;              /* entries of all                               */
} cmp_model;

static void free_batch(cmp_model *cm)
{
    free(cm->fmap);
    free(cm->cam);
    free(cm->up);
    free(cm->guided);
    free(cm->classes);
    free(cm->probs);
    free(cm->det);
    free(cm->dbox);
    free(cm->det_iou);
    for (int b = 0; cm->all && b < cm->nall; b++)
        kdc_free(cm->all[b]);
    free(cm->all);
    free(cm->counts);
    free(cm->dscale);
    cm->all = NULL;
    cm->counts = NULL;
    cm->dscale = NULL;
    cm->nall = 0;
    cm->fmap = cm->cam = cm->up = cm->guided = cm->probs = NULL;
    cm->classes = NULL;
    cm->det = NULL;
    cm->dbox = NULL;
    cm->det_iou = NULL;
}

static void class_label(const cmp_model *cm, int c, char **labels, int nlabels, char *out,
                        size_t size)
{
    if (labels && c >= 0 && c < nlabels)
        snprintf(out, size, "%s", labels[c]);
    else if (kdc_model_class_name(cm->m, c))
        snprintf(out, size, "%s", kdc_model_class_name(cm->m, c));
    else
        snprintf(out, size, "class %d", c);
}

/* The images of one batch: from --input-npy (all at once) or files. */
typedef struct cmp_batch {
    cli_input *const *items; /* NULL: --input-npy */
    int k;
} cmp_batch;


/* --detection K: the teacher's detection K of each image, or a student's
 * detection of best IoU with it (the first, best scored, of equal IoU);
 * the CAM layer becomes the detection's level unless one was asked for. */
static int pick_detections(const cli_opts *o, cmp_model *cm, kdc_run *run, const float *input,
                           int n, int h, int w, const double *scales, const int *sizes,
                           const kdc_detection *tdet)
{
    kdc_detection **all = cm->all = calloc((size_t)n, sizeof *all);
    int *counts = cm->counts = calloc((size_t)n, sizeof *counts), rc;
    cm->nall = n;
    cm->det = malloc((size_t)n * sizeof *cm->det);
    cm->dbox = malloc((size_t)n * sizeof *cm->dbox);
    cm->det_iou = malloc((size_t)n * sizeof *cm->det_iou);
    cm->dscale = malloc((size_t)n * sizeof *cm->dscale);
    if (!all || !counts || !cm->det || !cm->dbox || !cm->det_iou || !cm->dscale)
        return cli_error("out of memory");
    rc = cli_detect_all(o, cm->m, run, input, n, h, w, scales, sizes, all, counts);
    for (int b = 0; b < n && !rc; b++) {
        int k = o->detection;
        double best = 1.0;
        if (tdet) {
            k = -1;
            best = -1.0;
            for (int j = 0; j < counts[b]; j++) {
                const double v = cmp_det_box_iou(all[b][j].box, tdet[b].box);
                if (v > best) {
                    best = v;
                    k = j;
                }
            }
        }
        if (k < 0 || k >= counts[b]) {
            rc = cli_error("%s: image %d has %d detection%s%s", cm->name, b, counts[b],
                           counts[b] == 1 ? "" : "s", tdet ? "" : ": no detection K = --detection");
            break;
        }
        cm->det[b] = all[b][k];
        cm->det_iou[b] = best;
        /* original pixels to input pixels */
        const double s = cm->dscale[b] = scales ? scales[b] : 1.0;
        for (int c = 0; c < 4; c++)
            cm->dbox[b][c] = (float)(cm->det[b].box[c] * s);
    }
    if (rc || cm->layer_fixed)
        return rc;
    kdc_head_info hi;
    kdc_model_head(cm->m, &hi);
    cm->layer = hi.feature_layer[cm->det[0].level_index];
    cm->layer_name = kdc_model_layer_name(cm->m, cm->layer);
    for (int k = 0;; k++) { /* the level alias (fpn.p4) */
        const char *al = kdc_model_layer_alias(cm->m, cm->layer, k);
        if (!al)
            break;
        if (!strncmp(al, "fpn.p", 5))
            cm->layer_name = al;
    }
    return 0;
}

static int run_model(const cli_opts *o, const cli_input_opts *io, cmp_model *cm,
                     const kdc_preprocess *geom, kdc_cam_method method, const cmp_batch *bt,
                     const cli_target *tgt, int mi, const int *teacher,
                     const kdc_detection *tdet, int *n, int *h, int *w, kdc_image ***crops,
                     int *sizes)
{
    kdc_run *run = NULL;
    kdc_cam_result *res = NULL;
    float *input = NULL, *act = NULL, *raw = NULL;
    int *cls = NULL, rc;
    kdc_status st;
    kdc_preprocess pp;

    const int det = cli_is_detector(cm->m);
    double *scales = NULL;
    float *seed = NULL;
    kdc_target dtg = {.kind = KDC_TARGET_SEED}; /* --detection K */
    /* the first model's geometry, this model's normalisation */
    kdc_model_preprocess(cm->m, &pp);
    pp.resize_short = geom->resize_short;
    pp.crop_h = geom->crop_h;
    pp.crop_w = geom->crop_w;
    /* every model's image sizes (for its detections); the caller's for model 0 */
    int *msizes = sizes;
    if (bt->items && !msizes && !(msizes = calloc((size_t)bt->k * 2, sizeof *msizes)))
        return cli_error("out of memory");
    if (bt->items) {
        *n = bt->k;
        rc = cli_inputs_load(o, io, cm->m, &pp, bt->items, bt->k, &input, h, w, crops,
                             det ? &scales : NULL, msizes);
    } else {
        rc = det ? cli_load_det_batch(o, cm->m, &input, n, h, w, crops, &scales, NULL)
                 : cli_load_batch(o, cm->m, &pp, &input, n, h, w, crops);
    }
    if (rc) {
        if (msizes != sizes)
            free(msizes);
        return rc;
    }
    const size_t plane = (size_t)*h * *w;
    const int K = kdc_model_num_classes(cm->m), last = kdc_model_num_layers(cm->m) - 1;
    int fchw[3];
    kdc_run_options ro = {.threads = o->threads};
    if ((st = kdc_run_create(cm->m, &ro, &run))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    if (det && o->detection >= 0 &&
        (rc = pick_detections(o, cm, run, input, *n, *h, *w, scales,
                              bt->items ? msizes : NULL, mi ? tdet : NULL)))
        goto out;
    if ((st = kdc_model_layer_shape(cm->m, cm->layer, *h, *w, fchw)) ||
        (st = kdc_run_forward(run, input, *n, *h, *w, &cm->layer, 1))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    const size_t fsize = (size_t)fchw[0] * fchw[1] * fchw[2];
    act = malloc((size_t)*n * fsize * sizeof *act);
    raw = malloc((size_t)*n * fchw[1] * fchw[2] * sizeof *raw);
    cm->fmap = malloc((size_t)*n * plane * sizeof *cm->fmap);
    cm->cam = malloc((size_t)*n * plane * sizeof *cm->cam);
    cm->up = malloc((size_t)*n * plane * sizeof *cm->up);
    cm->guided = malloc((size_t)*n * 3 * plane * sizeof *cm->guided);
    cm->classes = malloc((size_t)*n * sizeof *cm->classes);
    cm->probs = calloc((size_t)*n, sizeof *cm->probs);
    cls = malloc((size_t)*n * sizeof *cls);
    if (!act || !raw || !cm->fmap || !cm->cam || !cm->up || !cm->guided || !cm->classes ||
        !cm->probs || !cls) {
        rc = cli_error("out of memory");
        goto out;
    }
    kdc_reduce red = KDC_REDUCE_MEAN;
    if (o->feature) {
        static const char *rn[] = {"mean", "max", "l2", "pca", "fgd"};
        for (int i = 0; i < 5; i++)
            if (!strcmp(o->feature, rn[i]))
                red = (kdc_reduce)i;
    }
    if ((st = kdc_run_read_layer(run, cm->layer, act, (size_t)*n * fsize)) ||
        (st = kdc_feature_map(act, *n, fchw[0], fchw[1], fchw[2], red, raw)) ||
        (st = kdc_cam_normalize_resize(raw, *n, fchw[1], fchw[2], *h, *w, cm->fmap))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    int use = 0; /* --target / --class: cli/target.c */
    if (!det) {
        int *lab = NULL;
        char **paths = NULL;
        if (tgt->kind == CLI_TARGET_LABEL && bt->items) {
            if (!(paths = malloc((size_t)*n * sizeof *paths))) {
                rc = cli_error("out of memory");
                goto out;
            }
            for (int b = 0; b < *n; b++)
                paths[b] = bt->items[b]->path;
        }
        if (tgt->kind == CLI_TARGET_LABEL)
            rc = cli_target_image_labels(o, cm->m, paths, *n, &lab);
        free(paths);
        if (!rc)
            rc = cli_target_classes(tgt, cm->m, cm->name, mi, teacher, lab, *n, cls, &use);
        free(lab);
        if (rc)
            goto out;
    }
    kdc_target tg = {.kind = KDC_TARGET_LOGIT, .classes = use ? cls : NULL};
    if (cm->det) {
        /* the logit of the anchor behind each image's chosen detection */
        if ((rc = cli_detection_target(o, cm->m, *h, *w, cm->det, *n, &dtg)))
            goto out;
        tg = dtg;
    } else if (det) {
        if ((rc = cli_level_seed(o, cm->m, run, input, *n, *h, *w, scales, cm->layer, &seed)))
            goto out;
        tg = (kdc_target){.kind = KDC_TARGET_SEED, .layer = cm->layer, .seed = seed};
    }
    kdc_cam_options co = {.method = method, .layers = &cm->layer, .nlayers = 1, .target = tg,
                          .scorecam_topk = o->topk_channels, .keep = &last, .nkeep = 1};
    if (det && !cm->det) {
        /* no classes: the figure shows the level, no Guided Grad-CAM column */
        free(cm->guided);
        cm->guided = NULL;
        if ((st = kdc_cam_compute(run, input, *n, *h, *w, &co, &res))) {
            rc = cli_lib_error(st, cm->name);
            goto out;
        }
    } else if ((st = kdc_guided_gradcam(run, input, *n, *h, *w, &co, cm->guided, &res))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    memcpy(cm->cam, res->map, (size_t)*n * plane * sizeof *cm->cam);
    memcpy(cm->classes, res->classes, (size_t)*n * sizeof *cm->classes);
    /* the raw map at input size, unnormalised: for a scale shared by the models */
    if ((st = kdc_resize_bilinear(res->raw[0], *n, res->raw_h[0], res->raw_w[0], *h, *w,
                                  cm->up))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    if (!det) {
        /* the logits of the clean pass: kdc_guided_gradcam's guided pass ran the
         * same input, so the last layer holds the same logits */
        rc = cli_class_probs(run, last, *n, K, cm->classes, cm->probs);
    }
out:
    if (msizes != sizes)
        free(msizes);
    free(seed);
    cli_target_free(&dtg);
    free(scales);
    free(cls);
    free(raw);
    free(act);
    free(input);
    kdc_cam_result_destroy(res);
    kdc_run_destroy(run);
    return rc;
}

static const unsigned char INK[3] = {20, 20, 20}, GREY[3] = {90, 90, 90},
                           BOX[3] = {0, 230, 64}, DETBOX[3] = {255, 40, 40},
                           OTHERBOX[3] = {255, 200, 0};

static const char *pretty_method(kdc_cam_method method)
{
    static const char *pretty[KDC_CAM_COUNT] = {
        "Grad-CAM", "HiResCAM", "Grad-CAM++", "XGrad-CAM", "Layer-CAM",
        "Eigen-CAM", "EigenGrad-CAM", "Score-CAM", "Ablation-CAM", "FullGrad"};
    return (int)method >= 0 && method < KDC_CAM_COUNT ? pretty[method] : "CAM";
}

/* The box of image b (original pixels) in the crop's pixels
 * (cli_crop_geometry). 0 if there is no box or it falls outside. */
static int crop_box(const cli_input *it, const int *size, const kdc_preprocess *pp, int h, int w,
                    int out[4])
{
    if (!it || !it->has_box || size[0] < 1 || size[1] < 1)
        return 0;
    const int ow = size[0], oh = size[1];
    int rw, rh, top, left;
    cli_crop_geometry(pp, ow, oh, h, w, &rw, &rh, &top, &left);
    const double sx = (double)rw / ow, sy = (double)rh / oh;
    double x0 = it->box[0] * sx - left, y0 = it->box[1] * sy - top;
    double x1 = it->box[2] * sx - left, y1 = it->box[3] * sy - top;
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > w ? w : x1;
    y1 = y1 > h ? h : y1;
    if (x1 - x0 < 2 || y1 - y0 < 2)
        return 0;
    out[0] = (int)lrint(x0);
    out[1] = (int)lrint(y0);
    out[2] = (int)lrint(x1);
    out[3] = (int)lrint(y1);
    return 1;
}

/* The map panel of model i, image b: the normalised map (per model), or the
 * raw map over the shared maximum, over the crop or alone. */
static int map_panel(const cli_input_opts *io, const cmp_model *cm, int b, size_t plane,
                     double shared_max, const kdc_image *crop, kdc_image **out)
{
    const float *map = cm->cam + b * plane;
    float *tmp = NULL;
    if (io->shared_norm) {
        tmp = malloc(plane * sizeof *tmp);
        if (!tmp)
            return cli_error("out of memory");
        for (size_t i = 0; i < plane; i++) {
            double v = shared_max > 0 ? cm->up[b * plane + i] / shared_max : 0;
            tmp[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
        }
        map = tmp;
    }
    kdc_status st = kdc_overlay_colormap(crop, map, io->heatmap_only ? 1.0f : 0.5f, io->cmap, out);
    free(tmp);
    return st ? cli_lib_error(st, NULL) : 0;
}

/* --diff: the teacher's map minus student i's, as the CAM panels show them
 * (each min-max normalised, or both over the shared maximum), in -1..1. */
static int diff_panel(const cli_input_opts *io, const cmp_model *cms, int i, int b, size_t plane,
                      double shared_max, int w, int h, kdc_image **out)
{
    float *d = malloc(plane * sizeof *d);
    *out = NULL;
    if (!d)
        return cli_error("out of memory");
    for (size_t p = 0; p < plane; p++) {
        double t = cms[0].cam[b * plane + p], s = cms[i].cam[b * plane + p];
        if (io->shared_norm) {
            t = shared_max > 0 ? cms[0].up[b * plane + p] / shared_max : 0;
            s = shared_max > 0 ? cms[i].up[b * plane + p] / shared_max : 0;
        }
        d[p] = (float)(t - s);
    }
    *out = cli_diverging_image(d, w, h);
    free(d);
    return *out ? 0 : 1;
}

/* The largest raw value of image b over the models (--norm shared). */
static double shared_max_of(const cmp_model *cms, int nm, int b, size_t plane)
{
    double mx = 0;
    for (int i = 0; i < nm; i++)
        for (size_t p = 0; p < plane; p++)
            mx = cms[i].up[b * plane + p] > mx ? cms[i].up[b * plane + p] : mx;
    return mx;
}

/* The lines that label model i's row (image b). */
static void row_text(const cmp_model *cms, int i, int b, size_t plane, int det, char **labels,
                     int nlabels, char text[4][256])
{
    char cname[160];
    class_label(&cms[i], cms[i].classes[b], labels, nlabels, cname, sizeof cname);
    snprintf(text[0], 256, "%.120s", cms[i].name);
    snprintf(text[1], 256, "%s at %.100s", kdc_model_arch(cms[i].m), cms[i].layer_name);
    if (cms[i].det) {
        const kdc_detection *d = &cms[i].det[b];
        char dn[160];
        class_label(&cms[i], d->label, labels, nlabels, dn, sizeof dn);
        if (i == 0)
            snprintf(text[2], 256, "%.140s %.2f (p%d)", dn, (double)d->score, d->level);
        else
            snprintf(text[2], 256, "%.120s %.2f (p%d) IoU %.2f", dn, (double)d->score, d->level,
                     cms[i].det_iou[b]);
    } else if (det)
        snprintf(text[2], 256, "energy of %.200s", cms[i].layer_name);
    else
        snprintf(text[2], 256, "%.160s p=%.2f", cname, (double)cms[i].probs[b]);
    if (i == 0)
        snprintf(text[3], 256, "teacher");
    else
        snprintf(text[3], 256, "r=%.2f IoU20=%.2f",
                 kdc_map_pearson(cms[i].cam + b * plane, cms[0].cam + b * plane, plane),
                 kdc_map_iou_top(cms[i].cam + b * plane, cms[0].cam + b * plane, plane, 0.2));
}

/* The colour bar under a figure: 0..1 per model, raw units when shared. */
static int figure_bar(cli_fig *f, const cli_input_opts *io, int x, int y, int w, double mx)
{
    if (io->shared_norm)
        return cli_fig_colorbar(f, x, y, w, 10, 0.0, mx, 5, "%.3g",
                                "map, raw units, one scale for all models");
    return cli_fig_colorbar(f, x, y, w, 10, 0.0, 1.0, 5, "%.2g",
                            "map, min-max normalised per model");
}

static int save_figure(const cli_fig *f, const cli_input_opts *io, const char *png)
{
    int rc = cli_fig_save_png(f, io->scale, png);
    if (!rc && io->svg) {
        char svg[4300];
        snprintf(svg, sizeof svg, "%.*s.svg", (int)(strlen(png) - 4), png);
        rc = cli_fig_save_svg(f, svg);
    }
    return rc;
}

/* The model drawn in row r: --model order, or with --teacher-last the
 * students first and the teacher (model 0) in the last row. */
static int row_model(const cli_input_opts *io, int r, int nm)
{
    return io->teacher_last ? (r + 1) % nm : r;
}

/* The figure for image b: a row per model. */
static int draw_figure(const cli_input_opts *io, cmp_model *cms, int nm, int b, int h, int w,
                       const kdc_image *crop, const int *box, kdc_cam_method method,
                       char **labels, int nlabels, const char *path)
{
    const int pad = 8, det = cli_is_detector(cms[0].m);
    const int cols = (det && !cms[0].det ? 3 : 4) + (io->diff && nm > 1);
    const char *heads[5] = {"input", "feature map", pretty_method(method), "Guided Grad-CAM",
                            "teacher - student"};
    if (cols == 4 && io->diff)
        heads[3] = heads[4];
    if (det && !cms[0].det)
        heads[2] = "heatmap (level energy)";
    const size_t plane = (size_t)h * w;
    char text[4][256];
    int lw = 0, tw, th;
    for (int i = 0; i < nm; i++) {
        row_text(cms, i, b, plane, det, labels, nlabels, text);
        for (int k = 0; k < 4; k++) {
            cli_fig_text_size(text[k], 2, &tw, &th);
            lw = tw > lw ? tw : lw;
        }
    }
    lw = lw > 360 ? 360 : lw;
    cli_fig_text_size("Hg", 2, &tw, &th);
    const int head_h = th + 2 * pad, bar_h = 10 + 2 * (th + 6) + 2 * pad;
    /* a row: the panels, or the four lines of its label where they are taller */
    const int rh = h > 4 * (th + 6) ? h : 4 * (th + 6);
    const int W = pad + lw + pad + cols * (w + pad), H = head_h + nm * (rh + pad) + bar_h;
    const int x0 = pad + lw + pad;
    const double mx = io->shared_norm ? shared_max_of(cms, nm, b, plane) : 1.0;
    cli_fig *f = cli_fig_create(W, H);
    if (!f)
        return 1;
    cli_fig_set_colormap(f, io->cmap);
    int rc = 0;
    for (int c = 0; c < cols && !rc; c++) {
        cli_fig_text_size(heads[c], 2, &tw, &th);
        rc = cli_fig_text(f, x0 + c * (w + pad) + w / 2, pad, tw > w + pad ? 1 : 2, 1, INK, "%s",
                          heads[c]);
    }
    for (int r = 0; r < nm && !rc; r++) {
        const int i = row_model(io, r, nm), y = head_h + r * (rh + pad);
        row_text(cms, i, b, plane, det, labels, nlabels, text);
        rc = cli_fig_text(f, pad, y, 2, 0, INK, "%s", text[0]);
        for (int k = 1; k < 4 && !rc; k++)
            rc = cli_fig_text(f, pad, y + k * (th + 6), 2, 0, k == 3 && i ? INK : GREY, "%s",
                              text[k]);
        if (!rc)
            rc = cli_fig_image(f, x0, y, crop);
        for (int c = 1; c < cols && !rc; c++) {
            kdc_image *pic = NULL;
            kdc_status st = KDC_OK;
            if (c == cols - 1 && io->diff && nm > 1) {
                if (i > 0)
                    rc = diff_panel(io, cms, i, b, plane, mx, w, h, &pic);
                else
                    rc = cli_fig_text(f, x0 + c * (w + pad) + w / 2, y + h / 2, 2, 1, GREY,
                                      "(the teacher)");
                if (!rc && pic)
                    rc = cli_fig_image(f, x0 + c * (w + pad), y, pic);
                kdc_image_destroy(pic);
                continue;
            }
            if (c == 3)
                st = kdc_gradient_image(cms[i].guided + (size_t)b * 3 * plane, h, w, &pic);
            else if (c == 1)
                st = kdc_overlay_colormap(crop, cms[i].fmap + b * plane,
                                          io->heatmap_only ? 1.0f : 0.5f, io->cmap, &pic);
            else
                rc = map_panel(io, &cms[i], b, plane, mx, crop, &pic);
            if (st)
                rc = cli_lib_error(st, NULL);
            if (!rc)
                rc = cli_fig_image(f, x0 + c * (w + pad), y, pic);
            kdc_image_destroy(pic);
        }
        for (int c = 0; box && c < 3 && !rc; c++)
            rc = cli_fig_rect(f, x0 + c * (w + pad) + box[0], y + box[1], box[2] - box[0],
                              box[3] - box[1], 2, BOX);
        for (int j = 0; cms[i].det && j < cms[i].counts[b] && !rc; j++) {
            /* the model's other detections (--show-dets), thin */
            const kdc_detection *d = &cms[i].all[b][j];
            const double s = cms[i].dscale[b];
            const kdc_detection *e = &cms[i].det[b];
            if (d->score < io->show_dets || (d->level_index == e->level_index &&
                                             d->anchor == e->anchor && d->y == e->y &&
                                             d->x == e->x && d->label == e->label))
                continue;
            const int bx = (int)(d->box[0] * s), by = (int)(d->box[1] * s);
            const int bw = (int)(d->box[2] * s + 0.5) - bx, bh = (int)(d->box[3] * s + 0.5) - by;
            rc = cli_fig_rect(f, x0 + bx, y + by, bw > 1 ? bw : 1, bh > 1 ? bh : 1, 1, OTHERBOX);
        }
        if (cms[i].det && !rc) {
            /* the detection this row explains, on the input */
            const float *db = cms[i].dbox[b];
            const int bx = (int)db[0], by = (int)db[1];
            const int bw = (int)(db[2] + 0.5f) - bx, bh = (int)(db[3] + 0.5f) - by;
            rc = cli_fig_rect(f, x0 + bx, y + by, bw > 1 ? bw : 1, bh > 1 ? bh : 1, 2, DETBOX);
        }
    }
    if (!rc)
        rc = figure_bar(f, io, x0 + w + pad, H - bar_h + pad, 2 * w + pad, mx);
    if (!rc && io->diff && nm > 1)
        rc = cli_fig_colorbar_diverging(f, x0 + (cols - 1) * (w + pad), H - bar_h + pad, w, 10,
                                        -1.0, 1.0, 3, "%.0f", "teacher minus student");
    if (!rc)
        rc = save_figure(f, io, path);
    cli_fig_destroy(f);
    return rc;
}

/* A caption centred at (x, y): font size 2 where it fits the width w. */
static int caption(cli_fig *f, int x, int y, int w, const unsigned char rgb[3], const char *text)
{
    int tw, th;
    cli_fig_text_size(text, 2, &tw, &th);
    return cli_fig_text(f, x, y, tw <= w ? 2 : 1, 1, rgb, "%s", text);
}

/* --grid: the images side by side, a row of inputs and a row per model. */
static int draw_grid(const cli_input_opts *io, cmp_model *cms, int nm, int n, int h, int w,
                     kdc_image **crops, int (*boxes)[4], const int *has_box, char **names,
                     kdc_cam_method method, char **labels, int nlabels, const char *path)
{
    const int pad = 8, det = cli_is_detector(cms[0].m);
    const size_t plane = (size_t)h * w;
    int tw, th2, lw = 0;
    cli_fig_text_size("Hg", 2, &tw, &th2);
    char text[4][256];
    for (int i = 0; i < nm; i++) {
        row_text(cms, i, 0, plane, det, labels, nlabels, text);
        for (int k = 0; k < 2; k++) {
            cli_fig_text_size(text[k], 2, &tw, &th2);
            lw = tw > lw ? tw : lw;
        }
    }
    lw = lw > 360 ? 360 : lw;
    const int cap_h = 2 * (th2 + 4) + 4, head_h = th2 + 2 * pad;
    const int in_h = h + th2 + 2 * pad, row_h = h + cap_h + pad;
    const int bar_h = 10 + 2 * (th2 + 6) + 2 * pad, x0 = pad + lw + pad;
    const int W = x0 + n * (w + pad), H = head_h + in_h + nm * row_h + bar_h;
    double mx = 0;
    for (int b = 0; b < n && io->shared_norm; b++) {
        double m = shared_max_of(cms, nm, b, plane);
        mx = m > mx ? m : mx;
    }
    cli_fig *f = cli_fig_create(W, H);
    if (!f)
        return 1;
    cli_fig_set_colormap(f, io->cmap);
    int rc = cli_fig_text(f, pad, pad, 2, 0, INK, "%s", pretty_method(method));
    if (!rc)
        rc = cli_fig_text(f, pad, head_h, 2, 0, INK, "input");
    for (int b = 0; b < n && !rc; b++) {
        const int x = x0 + b * (w + pad);
        rc = caption(f, x + w / 2, pad, w, INK, names[b]);
        if (!rc)
            rc = cli_fig_image(f, x, head_h, crops[b]);
    }
    for (int r = 0; r < nm && !rc; r++) {
        const int i = row_model(io, r, nm), y = head_h + in_h + r * row_h;
        row_text(cms, i, 0, plane, det, labels, nlabels, text);
        rc = cli_fig_text(f, pad, y, 2, 0, INK, "%s", text[0]);
        if (!rc)
            rc = cli_fig_text(f, pad, y + th2 + 6, 2, 0, GREY, "%s", text[1]);
        for (int b = 0; b < n && !rc; b++) {
            const int x = x0 + b * (w + pad);
            kdc_image *pic = NULL;
            rc = map_panel(io, &cms[i], b, plane, io->shared_norm ? mx : 1.0, crops[b], &pic);
            if (!rc)
                rc = cli_fig_image(f, x, y, pic);
            kdc_image_destroy(pic);
            row_text(cms, i, b, plane, det, labels, nlabels, text);
            if (!rc)
                rc = caption(f, x + w / 2, y + h + 4, w + pad, GREY, text[2]);
            if (!rc && i > 0)
                rc = caption(f, x + w / 2, y + h + 4 + th2 + 4, w + pad, INK, text[3]);
        }
    }
    /* the boxes over every panel of their column */
    for (int b = 0; b < n && !rc; b++)
        for (int r = 0; r <= nm && has_box[b] && !rc; r++) {
            const int y = r == 0 ? head_h : head_h + in_h + (r - 1) * row_h;
            rc = cli_fig_rect(f, x0 + b * (w + pad) + boxes[b][0], y + boxes[b][1],
                              boxes[b][2] - boxes[b][0], boxes[b][3] - boxes[b][1], 2, BOX);
        }
    if (!rc)
        rc = figure_bar(f, io, x0, H - bar_h + pad, n < 2 ? w : 2 * w + pad, mx);
    if (!rc)
        rc = save_figure(f, io, path);
    cli_fig_destroy(f);
    return rc;
}

/* A model name as a file name part: A-Z a-z 0-9 . - _ kept, the rest '_'. */
static void slug(const char *name, char *out, size_t size)
{
    size_t k = 0;
    for (; *name && k + 1 < size; name++)
        out[k++] = (isalnum((unsigned char)*name) || strchr(".-_", *name)) ? *name : '_';
    out[k] = '\0';
}

/* The lines printed (or JSON) and the .npy maps of image b. */
static int report_image(const cli_opts *o, cmp_model *cms, int nm, int b, int h, int w,
                        const char *src, int index, const char *name, kdc_cam_method method,
                        char **labels, int nlabels, const char *figure, const char *tdesc)
{
    const size_t plane = (size_t)h * w;
    if (!o->json && figure)
        printf("%s\n", figure);
    for (int i = 0; i < nm; i++) {
        char cname[160];
        class_label(&cms[i], cms[i].classes[b], labels, nlabels, cname, sizeof cname);
        double r = kdc_map_pearson(cms[i].cam + b * plane, cms[0].cam + b * plane, plane);
        double iou = kdc_map_iou_top(cms[i].cam + b * plane, cms[0].cam + b * plane, plane, 0.2);
        if (o->npy) {
            char sl[128], path[4400];
            slug(cms[i].name, sl, sizeof sl);
            snprintf(path, sizeof path, "%s/%s.%s.%s.npy", o->out_dir, name, sl,
                     kdc_cam_method_name(method));
            int64_t d3[3] = {1, h, w};
            kdc_status st = kdc_npy_save(path, cms[i].cam + b * plane, 3, d3);
            if (st)
                return cli_lib_error(st, NULL);
        }
        if (o->json) {
            printf("{\"image\":");
            cli_json_string(src);
            printf(",\"index\":%d,\"model\":", index);
            cli_json_string(cms[i].name);
            printf(",\"arch\":\"%s\",\"layer\":\"%s\",\"method\":\"%s\",",
                   kdc_model_arch(cms[i].m), cms[i].layer_name, kdc_cam_method_name(method));
            if (cms[i].det) {
                const kdc_detection *d = &cms[i].det[b];
                char dn[160];
                class_label(&cms[i], d->label, labels, nlabels, dn, sizeof dn);
                printf("\"class\":%d,\"name\":", d->label);
                cli_json_string(dn);
                printf(",\"prob\":%.6g,\"target\":\"detection\",\"box\":[%.6g,%.6g,%.6g,%.6g],"
                       "\"level\":%d,\"anchor\":%d,\"y\":%d,\"x\":%d,\"box_iou_vs_teacher\":%.6f",
                       (double)d->score, (double)d->box[0], (double)d->box[1],
                       (double)d->box[2], (double)d->box[3], d->level, d->anchor, d->y, d->x,
                       cms[i].det_iou[b]);
            } else if (cli_is_detector(cms[i].m)) {
                /* a backbone has no classes: the target is the level's energy */
                printf("\"class\":null,\"name\":null,\"prob\":null,\"target\":\"%s energy "
                       "of %s\"", o->energy ? "mean" : "sumsq", cms[i].layer_name);
            } else {
                printf("\"class\":%d,\"name\":", cms[i].classes[b]);
                cli_json_string(cname);
                printf(",\"prob\":%.6g,\"target\":", cms[i].probs[b]);
                cli_json_string(tdesc);
            }
            printf(",\"pearson_vs_teacher\":%.6f,\"iou20_vs_teacher\":%.6f,\"figure\":", r,
                   iou);
            if (figure)
                cli_json_string(figure);
            else
                printf("null");
            printf("}\n");
        } else if (cms[i].det) {
            const kdc_detection *d = &cms[i].det[b];
            char dn[160];
            class_label(&cms[i], d->label, labels, nlabels, dn, sizeof dn);
            printf("  %-28s %-12s %-16s %.3f box %.1f,%.1f,%.1f,%.1f p%d  box IoU %.3f  "
                   "pearson %.3f  iou20 %.3f  at %s\n",
                   cms[i].name, kdc_model_arch(cms[i].m), dn, (double)d->score,
                   (double)d->box[0], (double)d->box[1], (double)d->box[2], (double)d->box[3],
                   d->level, cms[i].det_iou[b], r, iou, cms[i].layer_name);
        } else {
            printf("  %-28s %-12s %-24s p=%.3f  pearson %.3f  iou20 %.3f  target %s\n",
                   cms[i].name, kdc_model_arch(cms[i].m), cname, cms[i].probs[b], r, iou, tdesc);
        }
    }
    return 0;
}

/* "NAME=...weights@LAYER": the layer split off (into *layer, NULL if none)
 * when what follows the last '@' has no '/'. */
static void split_layer(const char *spec, char *buf, size_t size, const char **layer)
{
    snprintf(buf, size, "%s", spec);
    char *at = strrchr(buf, '@');
    *layer = NULL;
    if (at && at[1] && !strchr(at, '/') && strchr(buf, '=') && strchr(buf, '=') < at) {
        *at = '\0';
        *layer = at + 1;
    }
}

int cmd_compare(int argc, char **argv)
{
    cli_target tgt;
    char tdesc[160];
    cli_opts o;
    cli_input_opts io;
    cli_inputs in = {0};
    cmp_model cms[CLI_MAX_MODELS];
    kdc_image **crops = NULL, **other = NULL;
    char **labels = NULL, **names = NULL;
    int nlabels = 0, n = 0, h = 0, w = 0, rc, nrest = 0, ntodo = 0;
    int *sizes = NULL, (*boxes)[4] = NULL, *has_box = NULL;
    cli_input **todo = NULL;
    kdc_cam_method method = KDC_CAM_GRADCAM;
    char specbuf[CLI_MAX_MODELS][4200];
    cmp_det_stats stats[CLI_MAX_MODELS];

    memset(cms, 0, sizeof cms);
    memset(stats, 0, sizeof stats);
    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    if (!rest)
        return cli_error("out of memory");
    if (cli_take_input_opts(argc, argv, CLI_IN_FIGURE | CLI_IN_COMPARE, rest, &nrest, &io)) {
        free(rest);
        return 2;
    }
    rc = cli_parse(nrest, rest, (CLI_MODEL_FLAGS & ~OPT_WEIGHTS & ~OPT_ARCH) | OPT_MODELS |
                   OPT_OUT | OPT_IMAGES | OPT_INPUT_NPY | OPT_CAM | OPT_CLASS | OPT_JSON |
                   OPT_DET | OPT_LAYER | OPT_TARGET, compare_usage, &o);
    if (rc) {
        free(rest);
        return rc < 0 ? 2 : 0;
    }
    rc = 2;
    if (o.n_models < 1) {
        cli_error("no --model given (see --help)");
        goto out;
    }
    if (o.guided || o.on_original) {
        cli_error("--guided and --on-original apply to `kdcam cam`");
        goto out;
    }
    if (cli_target_from_opts(&o, &tgt))
        goto out;
    cli_target_describe(&tgt, tdesc, sizeof tdesc);
    if (o.method && kdc_cam_method_parse(o.method, &method)) {
        cli_lib_error(KDC_ERR_INVALID_ARGUMENT, "--method");
        goto out;
    }
    if (o.feature && strcmp(o.feature, "mean") && strcmp(o.feature, "max") &&
        strcmp(o.feature, "l2") && strcmp(o.feature, "pca") && strcmp(o.feature, "fgd")) {
        cli_error("--feature: '%s' is not mean, max, l2, pca or fgd", o.feature);
        goto out;
    }
    if (o.n_layers > 1 && o.n_layers != o.n_models) {
        cli_error("%d --layer for %d models: give one for all, or one per model", o.n_layers,
                  o.n_models);
        goto out;
    }
    if (o.input_npy && (io.recursive || io.skip_existing || io.grid)) {
        cli_error("-r, --skip-existing and --grid apply to image inputs, not --input-npy");
        goto out;
    }
    if (!o.out_dir)
        o.out_dir = ".";
    cli_model_spec specs[CLI_MAX_MODELS];
    const char *asked[CLI_MAX_MODELS];
    for (int i = 0; i < o.n_models; i++) {
        split_layer(o.models[i], specbuf[i], sizeof specbuf[i], &asked[i]);
        if (!asked[i] && o.n_layers)
            asked[i] = o.layers[o.n_layers == 1 ? 0 : i];
        if (cli_parse_model_spec(specbuf[i], &specs[i]))
            goto out;
        memcpy(cms[i].name, specs[i].name, sizeof cms[i].name);
    }
    rc = 1;
    if (!o.input_npy &&
        cli_inputs_collect((const char *const *)o.images, o.n_images, io.recursive, &in))
        goto out;
    if (io.grid && in.n > 16) {
        rc = cli_error("--grid takes at most 16 images, got %d", in.n);
        goto out;
    }
    if (o.labels && !(labels = cli_read_labels(o.labels, &nlabels)))
        goto out;
    rc = 0;
    if (o.detection_box && o.detection < 0) {
        rc = cli_error("--detection-box adds to the target of --detection K: give --detection");
        goto out;
    }
    if (io.summary && o.detection < 0) {
        rc = cli_error("--summary needs --detection K (detectors with a RetinaNet head)");
        goto out;
    }
    for (int i = 0; i < o.n_models && !rc; i++) {
        cli_opts mo = o;
        mo.arch = specs[i].arch[0] ? specs[i].arch : NULL;
        mo.weights = specs[i].weights;
        if ((rc = cli_load_model(&mo, &cms[i].m)))
            break;
        if (cli_is_detector(cms[i].m) != cli_is_detector(cms[0].m)) {
            rc = cli_error("%s and %s: classifiers and detection backbones cannot share a figure",
                           cms[0].name, cms[i].name);
            break;
        }
        if (o.detection >= 0) {
            kdc_head_info hinfo;
            kdc_model_head(cms[i].m, &hinfo);
            if (hinfo.kind == KDC_HEAD_NONE) {
                rc = cli_error("%s: --detection needs detectors with a head (a RetinaNet); %s "
                               "has none", cms[i].name, kdc_model_arch(cms[i].m));
                break;
            }
        }
        cms[i].layer_fixed = asked[i] != NULL;
        if (asked[i]) {
            kdc_status st = kdc_model_find_layer(cms[i].m, asked[i], &cms[i].layer);
            if (st)
                rc = cli_lib_error(st, cms[i].name);
            cms[i].layer_name = asked[i];
        } else if (cli_is_detector(cms[i].m)) {
            rc = cli_find_level(&o, cms[i].m, &cms[i].layer);
            cms[i].layer_name = kdc_model_layer_name(cms[i].m, cms[i].layer);
            for (int k = 0; !rc; k++) { /* prefer the level alias (fpn.p3) */
                const char *al = kdc_model_layer_alias(cms[i].m, cms[i].layer, k);
                if (!al)
                    break;
                if (!strncmp(al, "fpn.p", 5))
                    cms[i].layer_name = al;
            }
        } else {
            rc = cli_default_cam_layer(cms[i].m, &cms[i].layer, &cms[i].layer_name);
        }
    }
    if (!rc)
        rc = cli_prepare_out_dir(o.out_dir);
    if (rc)
        goto out;
    kdc_preprocess geom;
    kdc_model_preprocess(cms[0].m, &geom);
    const char *mname = kdc_cam_method_name(method);
    /* the batches: --input-npy at once; images --batch at a time (--grid: all) */
    const int per = io.grid ? (in.n > 0 ? in.n : 1) : io.batch;
    todo = malloc(((size_t)in.n + 1) * sizeof *todo);
    names = malloc((size_t)per * sizeof *names);
    sizes = calloc((size_t)per * 2, sizeof *sizes);
    boxes = calloc((size_t)per, sizeof *boxes);
    has_box = calloc((size_t)per, sizeof *has_box);
    if (!todo || !names || !sizes || !boxes || !has_box) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int i = 0; i < in.n; i++) {
        char fig[4400];
        struct stat sb;
        snprintf(fig, sizeof fig, "%s/%s.compare.png", o.out_dir, in.v[i].name);
        if (!io.skip_existing || io.grid || stat(fig, &sb))
            todo[ntodo++] = &in.v[i];
    }
    if (io.skip_existing)
        fprintf(stderr, "kdcam compare: %d of %d images already done, %d to do\n", in.n - ntodo,
                in.n, ntodo);
    cli_progress prog;
    cli_progress_start(&prog, "kdcam compare", o.input_npy ? 0 : ntodo, io.progress_every);
    const int nbatch = o.input_npy ? 1 : (ntodo + per - 1) / per;
    for (int bi = 0; bi < nbatch && !rc; bi++) {
        const int i0 = bi * per;
        cmp_batch bt = {o.input_npy ? NULL : todo + i0, ntodo - i0 < per ? ntodo - i0 : per};
        for (int i = 0; i < o.n_models && !rc; i++) {
            int ni = 0, hi = 0, wi = 0;
            rc = run_model(&o, &io, &cms[i], &geom, method, &bt, &tgt, i,
                           o.n_models > 1 && i > 0 ? cms[0].classes : NULL, cms[0].det, &ni,
                           &hi, &wi,
                           i == 0 ? &crops : &other, i == 0 ? sizes : NULL);
            if (i > 0) {
                cli_free_crops(other, ni);
                other = NULL;
            } else {
                n = ni;
                h = hi;
                w = wi;
            }
        }
        for (int b = 0; b < n && !rc; b++) {
            char path[4400], base[256];
            const char *src = o.input_npy ? o.input_npy : bt.items[b]->path;
            if (o.input_npy) {
                const char *sl = strrchr(o.input_npy, '/');
                snprintf(base, sizeof base, "%s", sl ? sl + 1 : o.input_npy);
                char *dot = strrchr(base, '.');
                if (dot && dot != base)
                    *dot = '\0';
                snprintf(base + strlen(base), sizeof base - strlen(base), "_%d", b);
                names[b] = base;
            } else {
                names[b] = bt.items[b]->name;
                has_box[b] = crop_box(bt.items[b], sizes + 2 * b, &geom, h, w, boxes[b]);
            }
            if ((rc = cli_inputs_mkdirs(o.out_dir, names[b])))
                break;
            snprintf(path, sizeof path, "%s/%s.compare.png", o.out_dir, names[b]);
            if (!io.grid &&
                (rc = draw_figure(&io, cms, o.n_models, b, h, w, crops[b],
                                  has_box[b] ? boxes[b] : NULL, method, labels, nlabels, path)))
                break;
            rc = report_image(&o, cms, o.n_models, b, h, w, src, o.input_npy ? b : i0 + b,
                              names[b], method, labels, nlabels, io.grid ? NULL : path, tdesc);
            for (int i = 0; io.summary && i < o.n_models && !rc; i++) {
                const size_t plane = (size_t)h * w;
                rc = cmp_det_add(&stats[i], cms[0].all[b], cms[0].counts[b], cms[i].all[b],
                                 cms[i].counts[b], io.show_dets, &cms[0].det[b], &cms[i].det[b],
                                 cms[i].det_iou[b],
                                 kdc_map_pearson(cms[i].cam + b * plane, cms[0].cam + b * plane,
                                                 plane),
                                 kdc_map_iou_top(cms[i].cam + b * plane, cms[0].cam + b * plane,
                                                 plane, 0.2));
            }
        }
        if (!rc && io.grid) {
            char path[4400];
            snprintf(path, sizeof path, "%s/grid.%s.png", o.out_dir, mname);
            rc = draw_grid(&io, cms, o.n_models, n, h, w, crops, boxes, has_box, names, method,
                           labels, nlabels, path);
            if (!rc && !o.json)
                printf("%s\n", path);
        }
        cli_free_crops(crops, n);
        crops = NULL;
        for (int i = 0; i < o.n_models; i++)
            free_batch(&cms[i]);
        if (!rc && !o.input_npy)
            cli_progress_update(&prog, i0 + n, 0);
    }
    if (!rc && !o.input_npy && ntodo > 0)
        cli_progress_update(&prog, ntodo, 1);
    if (!rc && io.summary) {
        char mnames[CLI_MAX_MODELS][128];
        for (int i = 0; i < o.n_models; i++)
            snprintf(mnames[i], sizeof mnames[i], "%.127s", cms[i].name);
        cmp_det_print(mnames, stats, o.n_models, io.show_dets, o.json);
    }
out:
    cli_free_crops(crops, n);
    for (int i = 0; i < o.n_models; i++) {
        kdc_model_destroy(cms[i].m);
        free_batch(&cms[i]);
    }
    cli_free_labels(labels, nlabels);
    cli_inputs_free(&in);
    free(todo);
    free(names);
    free(sizes);
    free(boxes);
    free(has_box);
    free(rest);
    return rc;
}
