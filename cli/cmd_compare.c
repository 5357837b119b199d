/* cmd_compare.c - kdcam compare: several models (a teacher first, then its
 * students) on the same images. One figure per image: a row per model,
 * columns input / feature map / CAM / Guided Grad-CAM, each row labelled
 * with the model's name and top-1 class; with --json, per image and model
 * the prediction and the agreement of the model's map with the first
 * model's (Pearson correlation, IoU of the top-20% regions). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char *compare_usage =
    "usage: kdcam compare --model NAME=[ARCH:]WEIGHTS [--model ...]... [--method M]\n"
    "                     [--feature mean|max|l2|pca] [--class C] [--labels FILE]\n"
    "                     [-o DIR] [--json] (IMAGE... | --input-npy X.npy)\n"
    "Runs every model on the same images and writes DIR/<stem>.compare.png: one row\n"
    "per model (the first is the teacher), columns input / feature map / CAM /\n"
    "Guided Grad-CAM, at each model's last stage (layer4, model.13).\n"
    "All models see the first model's resize and crop, each with its own\n"
    "normalisation, so their maps are pixel-aligned and comparable.\n"
    "\n"
    "      --model SPEC    NAME=[ARCH:]WEIGHTS, e.g. \"Teacher (ResNet101)=resnet101:t.safetensors\"\n"
    "                      or \"Student=s.safetensors\" (architecture from the keys); repeatable\n"
    "      --method M      CAM method (default gradcam; see `kdcam cam --help`)\n"
    "      --feature R     channel reduction of the feature-map column (default mean)\n"
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
    "      --input-npy X   a preprocessed float32 N x 3 x H x W array instead of images\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n"
    "      --eps E, --act relu|relu6, --allow-unused, --prefix P, --key K, --kernels K\n"
    "                      apply to every model\n"
    "  -t, --threads N     worker threads (default 1)\n"
    "\n"
    "Detection backbones (ResNet-FPN): columns input / feature map / heatmap of the\n"
    "energy of --level (default p3), with --box, --channel, --energy, --det-size as\n"
    "for `kdcam cam`.\n";

typedef struct cmp_model {
    char name[128];
    kdc_model *m;
    int layer;
    const char *layer_name; /* as looked up: layer4, model.13 */
    float *fmap;     /* n x H x W, normalised            */
    float *cam;      /* n x H x W, normalised            */
    float *guided;   /* n x 3 x H x W: guided grad x cam */
    int *classes;    /* n                                */
    float *probs;    /* n: softmax probability of class  */
} cmp_model;

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

/* Everything one model contributes: maps for all images. */
static int run_model(const cli_opts *o, cmp_model *cm, const kdc_preprocess *geom,
                     kdc_cam_method method, const cli_target *tgt, int mi, const int *teacher,
                     int *n, int *h, int *w, kdc_image ***crops)
{
    kdc_run *run = NULL;
    kdc_cam_result *res = NULL;
    float *input = NULL, *act = NULL, *logits = NULL, *raw = NULL;
    int *cls = NULL, rc;
    kdc_status st;
    kdc_preprocess pp;

    const int det = cli_is_detector(cm->m);
    double *scales = NULL;
    float *seed = NULL;
    /* the first model's geometry, this model's normalisation */
    kdc_model_preprocess(cm->m, &pp);
    pp.resize_short = geom->resize_short;
    pp.crop_h = geom->crop_h;
    pp.crop_w = geom->crop_w;
    if ((rc = det ? cli_load_det_batch(o, cm->m, &input, n, h, w, crops, &scales)
                  : cli_load_batch(o, cm->m, &pp, &input, n, h, w, crops)))
        return rc;
    const size_t plane = (size_t)*h * *w;
    const int K = kdc_model_num_classes(cm->m), last = kdc_model_num_layers(cm->m) - 1;
    int fchw[3];
    kdc_run_options ro = {.threads = o->threads};
    if ((st = kdc_run_create(cm->m, &ro, &run)) ||
        (st = kdc_model_layer_shape(cm->m, cm->layer, *h, *w, fchw)) ||
        (st = kdc_run_forward(run, input, *n, *h, *w, &cm->layer, 1))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    const size_t fsize = (size_t)fchw[0] * fchw[1] * fchw[2];
    act = malloc((size_t)*n * fsize * sizeof *act);
    raw = malloc((size_t)*n * fchw[1] * fchw[2] * sizeof *raw);
    logits = malloc((size_t)*n * (K ? K : 1) * sizeof *logits);
    cm->fmap = malloc((size_t)*n * plane * sizeof *cm->fmap);
    cm->cam = malloc((size_t)*n * plane * sizeof *cm->cam);
    cm->guided = malloc((size_t)*n * 3 * plane * sizeof *cm->guided);
    cm->classes = malloc((size_t)*n * sizeof *cm->classes);
    cm->probs = malloc((size_t)*n * sizeof *cm->probs);
    cls = malloc((size_t)*n * sizeof *cls);
    if (!act || !raw || !logits || !cm->fmap || !cm->cam || !cm->guided || !cm->classes ||
        !cm->probs || !cls) {
        rc = cli_error("out of memory");
        goto out;
    }
    kdc_reduce red = KDC_REDUCE_MEAN;
    if (o->feature) {
        static const char *rn[] = {"mean", "max", "l2", "pca"};
        int found = 0;
        for (int i = 0; i < 4; i++)
            if (!strcmp(o->feature, rn[i])) {
                red = (kdc_reduce)i;
                found = 1;
            }
        if (!found) {
            rc = cli_error("--feature: '%s' is not mean, max, l2 or pca", o->feature);
            goto out;
        }
    }
    if ((st = kdc_run_read_layer(run, cm->layer, act, (size_t)*n * fsize)) ||
        (!det && (st = kdc_run_read_layer(run, last, logits, (size_t)*n * K))) ||
        (st = kdc_feature_map(act, *n, fchw[0], fchw[1], fchw[2], red, raw)) ||
        (st = kdc_cam_normalize_resize(raw, *n, fchw[1], fchw[2], *h, *w, cm->fmap))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    int use = 0; /* --target / --class: cli/target.c */
    if (!det) {
        int *lab = NULL;
        if (tgt->kind == CLI_TARGET_LABEL && (rc = cli_target_image_labels(o, cm->m, *n, &lab)))
            goto out;
        rc = cli_target_classes(tgt, cm->m, cm->name, mi, teacher, lab, *n, cls, &use);
        free(lab);
        if (rc)
            goto out;
    }
    kdc_target tg = {.kind = KDC_TARGET_LOGIT, .classes = use ? cls : NULL};
    if (det) {
        if ((rc = cli_level_seed(o, cm->m, run, input, *n, *h, *w, scales, cm->layer, &seed)))
            goto out;
        tg = (kdc_target){.kind = KDC_TARGET_SEED, .layer = cm->layer, .seed = seed};
    }
    kdc_cam_options co = {.method = method, .layers = &cm->layer, .nlayers = 1, .target = tg,
                          .scorecam_topk = o->topk_channels};
    if ((st = kdc_cam_compute(run, input, *n, *h, *w, &co, &res))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    memcpy(cm->cam, res->map, (size_t)*n * plane * sizeof *cm->cam);
    memcpy(cm->classes, res->classes, (size_t)*n * sizeof *cm->classes);
    if (det) {
        /* no classes: the figure shows the level, no Guided Grad-CAM column */
        for (int b = 0; b < *n; b++)
            cm->probs[b] = 0.0f;
        free(cm->guided);
        cm->guided = NULL;
        rc = 0;
        goto out;
    }
    for (int b = 0; b < *n; b++) {
        const float *z = logits + (size_t)b * K;
        double mx = z[0], sum = 0;
        for (int c = 1; c < K; c++)
            mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < K; c++)
            sum += exp(z[c] - mx);
        cm->probs[b] = (float)(exp(z[cm->classes[b]] - mx) / sum);
    }
    /* guided backpropagation towards the same classes, times the CAM */
    kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED,
                                  .target = {.kind = KDC_TARGET_LOGIT, .classes = cm->classes}};
    if ((st = kdc_attribution_compute(run, input, *n, *h, *w, &ao, cm->guided))) {
        rc = cli_lib_error(st, cm->name);
        goto out;
    }
    for (int b = 0; b < *n; b++)
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < plane; i++)
                cm->guided[((size_t)b * 3 + c) * plane + i] *= cm->cam[b * plane + i];
    rc = 0;
out:
    free(seed);
    free(scales);
    free(cls);
    free(logits);
    free(raw);
    free(act);
    free(input);
    kdc_cam_result_destroy(res);
    kdc_run_destroy(run);
    return rc;
}

static const unsigned char WHITE[3] = {255, 255, 255}, INK[3] = {20, 20, 20},
                           GREY[3] = {110, 110, 110};

/* The figure for image b. */
static int draw_figure(const cli_opts *o, cmp_model *cms, int nm, int b, int h, int w,
                       const kdc_image *crop, kdc_cam_method method, char **labels, int nlabels,
                       const char *path)
{
    const int S = 2, pad = 8, det = cli_is_detector(cms[0].m), cols = det ? 3 : 4;
    static const char *pretty[KDC_CAM_COUNT] = {
        "Grad-CAM", "HiResCAM", "Grad-CAM++", "XGrad-CAM", "Layer-CAM",
        "Eigen-CAM", "EigenGrad-CAM", "Score-CAM", "Ablation-CAM"};
    const char *heads[4] = {"input", "feature map",
                            pretty[method] ? pretty[method] : kdc_cam_method_name(method),
                            "Guided Grad-CAM"};
    if (det)
        heads[2] = "heatmap (level energy)";
    char text[3][256];
    int lw = 0, tw, th;
    for (int i = 0; i < nm; i++) {
        char cname[160];
        class_label(&cms[i], cms[i].classes[b], labels, nlabels, cname, sizeof cname);
        snprintf(text[0], sizeof text[0], "%.200s", cms[i].name);
        snprintf(text[1], sizeof text[1], "%s", kdc_model_arch(cms[i].m));
        if (det)
            snprintf(text[2], sizeof text[2], "energy of %.200s", cms[i].layer_name);
        else
            snprintf(text[2], sizeof text[2], "%.200s %.2f", cname, cms[i].probs[b]);
        for (int k = 0; k < 3; k++) {
            kdc_text_size(text[k], S, &tw, &th);
            lw = tw > lw ? tw : lw;
        }
    }
    if (lw > 480)
        lw = 480;
    kdc_text_size("Hg", S, &tw, &th);
    const int head_h = th + 2 * pad, bar_h = 14 + th + 2 * pad;
    const int W = pad + lw + pad + cols * (w + pad), H = head_h + nm * (h + pad) + bar_h;
    kdc_image *fig = NULL, *pic = NULL;
    kdc_status st = kdc_image_create(W, H, &fig);
    if (st)
        return cli_lib_error(st, NULL);
    kdc_image_fill(fig, 0, 0, W, H, WHITE);
    int x0 = pad + lw + pad;
    for (int c = 0; c < cols; c++) {
        /* a heading wider than its column (small images) at half size */
        int hs = S;
        kdc_text_size(heads[c], hs, &tw, &th);
        if (tw > w + pad && hs > 1)
            kdc_text_size(heads[c], --hs, &tw, &th);
        kdc_image_draw_text(fig, x0 + c * (w + pad) + (w - tw) / 2, pad, heads[c], hs, INK);
    }
    kdc_text_size("Hg", S, &tw, &th);
    const size_t plane = (size_t)h * w;
    int rc = 0;
    for (int i = 0; i < nm && !rc; i++) {
        const int y = head_h + i * (h + pad);
        char cname[160];
        class_label(&cms[i], cms[i].classes[b], labels, nlabels, cname, sizeof cname);
        snprintf(text[0], sizeof text[0], "%.200s", cms[i].name);
        snprintf(text[1], sizeof text[1], "%s", kdc_model_arch(cms[i].m));
        if (det)
            snprintf(text[2], sizeof text[2], "energy of %.200s", cms[i].layer_name);
        else
            snprintf(text[2], sizeof text[2], "%.200s %.2f", cname, cms[i].probs[b]);
        for (int k = 0; k < 3; k++)
            kdc_image_draw_text(fig, pad, y + k * (th + 6), text[k], S, k == 0 ? INK : GREY);
        kdc_image_paste(fig, crop, x0, y);
        for (int c = 1; c < cols && !rc; c++) {
            if (c == 3)
                st = kdc_gradient_image(cms[i].guided + (size_t)b * 3 * plane, h, w, &pic);
            else
                st = kdc_overlay(crop, (c == 1 ? cms[i].fmap : cms[i].cam) + b * plane, &pic);
            if (st) {
                rc = cli_lib_error(st, NULL);
                break;
            }
            kdc_image_paste(fig, pic, x0 + c * (w + pad), y);
            kdc_image_destroy(pic);
            pic = NULL;
        }
    }
    if (!rc) {
        /* colour bar of the normalised maps */
        const int by = H - bar_h + pad, bw = 2 * w;
        float *ramp = malloc((size_t)bw * 12 * sizeof *ramp);
        kdc_image *bar = NULL;
        if (ramp && kdc_image_create(bw, 12, &bar) == KDC_OK) {
            for (int yy = 0; yy < 12; yy++)
                for (int xx = 0; xx < bw; xx++)
                    ramp[yy * bw + xx] = (float)xx / (float)(bw - 1);
            kdc_colormap_jet(ramp, bw, 12, bar->rgb);
            kdc_image_paste(fig, bar, x0 + w + pad, by);
            kdc_image_draw_text(fig, x0 + w + pad, by + 16, "0", S, GREY);
            kdc_text_size("1", S, &tw, &th);
            kdc_image_draw_text(fig, x0 + w + pad + bw - tw, by + 16, "1", S, GREY);
            /* the caption between the two ends, at half size if it does not fit */
            const char *cap = "map (normalised per model)";
            int cs = S, one;
            kdc_text_size("1", S, &one, &th);
            kdc_text_size(cap, cs, &tw, &th);
            if (tw > bw - 4 * one && cs > 1)
                kdc_text_size(cap, --cs, &tw, &th);
            if (tw <= bw - 4 * one)
                kdc_image_draw_text(fig, x0 + w + pad + (bw - tw) / 2, by + 16, cap, cs, GREY);
        }
        kdc_image_destroy(bar);
        free(ramp);
        if ((st = kdc_image_save_png(fig, path)))
            rc = cli_lib_error(st, NULL);
    }
    kdc_image_destroy(fig);
    (void)o;
    return rc;
}

int cmd_compare(int argc, char **argv)
{
    cli_opts o;
    cmp_model cms[CLI_MAX_MODELS];
    kdc_image **crops = NULL, **other = NULL;
    char **labels = NULL;
    int nlabels = 0, n = 0, h = 0, w = 0, rc;
    kdc_cam_method method = KDC_CAM_GRADCAM;

    memset(cms, 0, sizeof cms);
    rc = cli_parse(argc, argv, (CLI_MODEL_FLAGS & ~OPT_WEIGHTS & ~OPT_ARCH) | OPT_MODELS | OPT_OUT |
                   OPT_IMAGES | OPT_INPUT_NPY | OPT_CAM | OPT_CLASS | OPT_JSON | OPT_DET |
                   OPT_TARGET, compare_usage, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    cli_target tgt;
    char tdesc[160];
    if (cli_target_from_opts(&o, &tgt))
        return 2;
    cli_target_describe(&tgt, tdesc, sizeof tdesc);
    if (o.n_models < 1)
        return cli_error("no --model given (see --help)"), 2;
    if (o.guided || o.npy || o.on_original)
        return cli_error("--guided, --npy and --on-original apply to `kdcam cam`"), 2;
    if (o.method && kdc_cam_method_parse(o.method, &method))
        return cli_lib_error(KDC_ERR_INVALID_ARGUMENT, "--method"), 2;
    if (o.feature && strcmp(o.feature, "mean") && strcmp(o.feature, "max") &&
        strcmp(o.feature, "l2") && strcmp(o.feature, "pca"))
        return cli_error("--feature: '%s' is not mean, max, l2 or pca", o.feature), 2;
    if (!o.out_dir)
        o.out_dir = ".";
    cli_model_spec specs[CLI_MAX_MODELS];
    for (int i = 0; i < o.n_models; i++) {
        if (cli_parse_model_spec(o.models[i], &specs[i]))
            return 2;
        memcpy(cms[i].name, specs[i].name, sizeof cms[i].name);
    }
    if (o.labels && !(labels = cli_read_labels(o.labels, &nlabels)))
        return 1;
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
        if (cli_is_detector(cms[i].m)) {
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
    kdc_preprocess geom;
    if (!rc)
        kdc_model_preprocess(cms[0].m, &geom);
    for (int i = 0; i < o.n_models && !rc; i++) {
        int ni = 0, hi = 0, wi = 0;
        rc = run_model(&o, &cms[i], &geom, method, &tgt, i, o.n_models > 1 ? cms[0].classes : NULL,
                       &ni, &hi, &wi, i == 0 ? &crops : &other);
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
        char stem[256], path[4096];
        const char *src = o.input_npy ? o.input_npy : o.images[b];
        const char *base = strrchr(src, '/');
        snprintf(stem, sizeof stem, "%s", base ? base + 1 : src);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem)
            *dot = '\0';
        if (o.input_npy)
            snprintf(path, sizeof path, "%s/%s_%d.compare.png", o.out_dir, stem, b);
        else
            snprintf(path, sizeof path, "%s/%s.compare.png", o.out_dir, stem);
        if ((rc = draw_figure(&o, cms, o.n_models, b, h, w, crops[b], method, labels, nlabels,
                              path)))
            break;
        if (!o.json)
            printf("%s\n", path);
        const size_t plane = (size_t)h * w;
        for (int i = 0; i < o.n_models; i++) {
            char cname[160];
            class_label(&cms[i], cms[i].classes[b], labels, nlabels, cname, sizeof cname);
            double r = kdc_map_pearson(cms[i].cam + b * plane, cms[0].cam + b * plane, plane);
            double iou = kdc_map_iou_top(cms[i].cam + b * plane, cms[0].cam + b * plane, plane, 0.2);
            if (o.json) {
                printf("{\"image\":");
                cli_json_string(src);
                printf(",\"index\":%d,\"model\":", b);
                cli_json_string(cms[i].name);
                printf(",\"arch\":\"%s\",\"layer\":\"%s\",\"method\":\"%s\",",
                       kdc_model_arch(cms[i].m), cms[i].layer_name, kdc_cam_method_name(method));
                if (cli_is_detector(cms[i].m)) {
                    /* a backbone has no classes: the target is the level's energy */
                    printf("\"class\":null,\"name\":null,\"prob\":null,\"target\":\"%s energy "
                           "of %s\"", o.energy ? "mean" : "sumsq", cms[i].layer_name);
                } else {
                    printf("\"class\":%d,\"name\":", cms[i].classes[b]);
                    cli_json_string(cname);
                    printf(",\"prob\":%.6g,\"target\":", cms[i].probs[b]);
                    cli_json_string(tdesc);
                }
                printf(",\"pearson_vs_teacher\":%.6f,\"iou20_vs_teacher\":%.6f,\"figure\":", r,
                       iou);
                cli_json_string(path);
                printf("}\n");
            } else {
                printf("  %-28s %-12s %-24s p=%.3f  pearson %.3f  iou20 %.3f  target %s\n",
                       cms[i].name, kdc_model_arch(cms[i].m), cname, cms[i].probs[b], r, iou,
                       tdesc);
            }
        }
    }
    cli_free_crops(crops, n);
    for (int i = 0; i < o.n_models; i++) {
        kdc_model_destroy(cms[i].m);
        free(cms[i].fmap);
        free(cms[i].cam);
        free(cms[i].guided);
        free(cms[i].classes);
        free(cms[i].probs);
    }
    cli_free_labels(labels, nlabels);
    return rc;
}
