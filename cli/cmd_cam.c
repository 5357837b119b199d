/* cmd_cam.c - kdcam cam: class activation maps and input attributions of one
 * model, written as overlays (PNG) and, with --npy, as float32 .npy maps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char *cam_usage =
    "usage: kdcam cam [-m ARCH] -w WEIGHTS [--layer NAME]... [--method M] [--class C]\n"
    "                 [--guided] [-o DIR] [--npy] (IMAGE... | --input-npy X.npy)\n"
    "Computes a class activation map (or an input attribution) per image and writes\n"
    "DIR/<stem>.<method>.png: the map over the preprocessed image (JET colormap,\n"
    "blended as pytorch-grad-cam's show_cam_on_image). With --npy also\n"
    "DIR/<stem>.<method>.raw.npy (the raw map at feature resolution, unnormalised,\n"
    "N x h x w; with several layers one file per layer, <stem>.<method>.raw.<layer>.npy)\n"
    "and DIR/<stem>.<method>.npy (normalised, upsampled, averaged over layers,\n"
    "N x H x W). Attribution methods write the gradient picture and, with --npy,\n"
    "<stem>.<method>.raw.npy (N x 3 x H x W) and <stem>.<method>.npy (N x H x W:\n"
    "max over channels of |attribution|, min-max normalised).\n"
    "\n"
    "Methods (docs/cam.md has the sources and costs):\n"
    "  gradcam         channel weights = mean gradient (the default)\n"
    "  hirescam        sum over channels of gradient x activation\n"
    "  gradcam++       weights from second- and third-order gradient terms\n"
    "  xgradcam        weights = sum(gradient x activation) / sum(activation)\n"
    "  layercam        sum over channels of relu(gradient) x activation\n"
    "  eigencam        first principal component of the activations\n"
    "  eigengradcam    first principal component of gradient x activation\n"
    "  scorecam        softmax of the class score of each channel-masked input\n"
    "  ablationcam     drop of the class score when a channel is zeroed\n"
    "  sscam           Score-CAM averaged over noisy masks (--samples, default 35)\n"
    "  iscam           Score-CAM averaged over scaled masks (--samples, default 10)\n"
    "  guided-gradcam  guided backpropagation x the Grad-CAM map\n"
    "  saliency        gradient of the class score with respect to the input\n"
    "  smoothgrad      mean input gradient over noisy copies\n"
    "  integrated-gradients  path integral of input gradients from a black image\n"
    "  occlusion       score drop when a --window patch is greyed out, every --stride\n"
    "  featureablation score drop when each cell of a --window grid is zeroed\n"
    "\n"
    "  -m, --arch ARCH     resnet50 | resnet101 | resnet152 | mobilenetv1 (default: detect)\n"
    "  -w, --weights FILE  .safetensors weights (required)\n"
    "  -l, --layer NAME    target layer (repeatable; default the last stage: layer4 or\n"
    "                      model.13); several layers are averaged as pytorch-grad-cam does\n"
    "      --method M      see above\n"
    "  -c, --class C       target class (default: each image's top-1 class)\n"
    "      --target T      own (each image's top-1, the default), label (the\n"
    "                      image's class: labels.json of a `kdcam shapes` folder\n"
    "                      beside it, or its folder's name as a class name), or a\n"
    "                      class index or name\n"
    "      --guided        also write <stem>.guided.png (guided backpropagation) and\n"
    "                      <stem>.guided-gradcam.png (guided gradient x the map)\n"
    "      --scorecam-topk K  Score-CAM: only the K channels with the largest mean\n"
    "                      activation (default: all channels; slow); also SS-/IS-CAM\n"
    "      --chunk N       masked or perturbed images per forward pass (default 32)\n"
    "      --samples N     SS-CAM / IS-CAM samples per channel\n"
    "      --window P, --stride S  occlusion patch side and step (default 16, 8);\n"
    "                      feature ablation cell side (default 16)\n"
    "      --on-original   draw overlays on the original photo instead of the crop\n"
    "  -o, --out DIR       output directory (default: current directory)\n"
    "      --npy           also write the maps as .npy\n"
    "      --per-layer     also each --layer's own map, not averaged with the\n"
    "                      others: <stem>.<method>.layer.<name>.npy and, side by\n"
    "                      side, <stem>.<method>.layers.png\n"
    "      --input-npy X   a preprocessed float32 N x 3 x H x W array instead of images\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n"
    "      --prefix P, --key K, --allow-unused, --eps E, --act relu|relu6  as for `kdcam layers`\n"
    "  -t, --threads N     worker threads (default 1)\n"
    "  -v, --verbose       list the tensors of the file that were ignored\n"
    "\n"
    "Detection backbones (-m resnet50-fpn ..., or detected from the keys) have no\n"
    "classes: the target is the energy of a level. Images get the detector input\n"
    "(resized, normalised, padded to a multiple of 32).\n"
    "      --level L       target level: p2..p7 (fpn.pN) or any layer (default p3);\n"
    "                      also the default CAM layer\n"
    "      --energy E      sumsq (default) or mean\n"
    "      --box x0,y0,x1,y1  only inside this box (original-image pixels)\n"
    "      --channel K     only channel K of the level\n"
    "      --det-size S[,M]  shorter side S, longer at most M (default 800,1333)\n"
    "      --fpn-extra X   auto | none | pool | on-input | on-output | on-lateral\n"
    "      --fpn-relu-extra  ReLU between extra convs (mmdetection relu_before_extra_convs)\n";

enum { M_CAM, M_GUIDED_GRADCAM, M_ATTRIBUTION, M_PERTURB };

/* Parses the 13 method names; kind tells how the method is computed. */
static int parse_method(const char *name, int *kind, kdc_cam_method *cam, kdc_attribution *attr)
{
    if (!strcmp(name, "guided-gradcam")) {
        *kind = M_GUIDED_GRADCAM;
        *cam = KDC_CAM_GRADCAM;
        return 0;
    }
    static const struct { const char *name; kdc_attribution a; } attrs[] = {
        {"saliency", KDC_ATTR_SALIENCY},
        {"smoothgrad", KDC_ATTR_SMOOTHGRAD},
        {"integrated-gradients", KDC_ATTR_INTEGRATED},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++)
        if (!strcmp(name, attrs[i].name)) {
            *kind = M_ATTRIBUTION;
            *attr = attrs[i].a;
            return 0;
        }
    if (kdc_cam_method_parse(name, cam) == KDC_OK) {
        *kind = M_CAM;
        return 0;
    }
    if (cli_perturb_kind(name) >= 0) { /* issue 19: cam_perturb.c */
        *kind = M_PERTURB;
        return 0;
    }
    return cli_error("unknown method '%s' (gradcam, hirescam, gradcam++, xgradcam, layercam, "
                     "eigencam, eigengradcam, scorecam, ablationcam, sscam, iscam, "
                     "guided-gradcam, saliency, smoothgrad, integrated-gradients, occlusion, "
                     "featureablation)", name);
}

/* The file name without directories and extension. */
static void stem_of(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = '\0';
}

static int save_npy(const char *dir, const char *stem, const char *method, const char *suffix,
                    const float *data, int ndim, const int64_t *dims)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.%s%s.npy", dir, stem, method, suffix) >=
        sizeof path)
        return cli_error("%s: output path too long", dir);
    kdc_status st = kdc_npy_save(path, data, ndim, dims);
    return st ? cli_lib_error(st, NULL) : 0;
}

static int save_png(const char *dir, const char *stem, const char *what, const kdc_image *img)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.%s.png", dir, stem, what) >= sizeof path)
        return cli_error("%s: output path too long", dir);
    kdc_status st = kdc_image_save_png(img, path);
    if (st)
        return cli_lib_error(st, NULL);
    printf("  %s\n", path);
    return 0;
}

/* The map of the crop (h x w) laid back onto the original photo: each
 * original pixel is mapped into the resized image, then into the crop, and
 * sampled bilinearly; pixels outside the crop get 0. */
static kdc_status map_to_original(const float *map, int h, int w, const kdc_preprocess *pp,
                                  int ow, int oh, float *out)
{
    int rh = oh, rw = ow;
    if (pp->resize_short > 0) {
        if (ow <= oh) {
            rw = pp->resize_short;
            rh = (int)((long long)pp->resize_short * oh / ow);
        } else {
            rh = pp->resize_short;
            rw = (int)((long long)pp->resize_short * ow / oh);
        }
    }
    const int top = (int)lrint((rh - h) / 2.0), left = (int)lrint((rw - w) / 2.0);
    const double sx = (double)rw / ow, sy = (double)rh / oh;
    for (int y = 0; y < oh; y++) {
        double cy = (y + 0.5) * sy - 0.5 - top;
        for (int x = 0; x < ow; x++) {
            double cx = (x + 0.5) * sx - 0.5 - left;
            float v = 0.0f;
            if (cy >= -0.5 && cy <= h - 0.5 && cx >= -0.5 && cx <= w - 0.5) {
                double fy = cy < 0 ? 0 : cy > h - 1 ? h - 1 : cy;
                double fx = cx < 0 ? 0 : cx > w - 1 ? w - 1 : cx;
                int y0 = (int)fy, x0 = (int)fx;
                int y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
                double ay = fy - y0, ax = fx - x0;
                v = (float)((1 - ay) * ((1 - ax) * map[y0 * w + x0] + ax * map[y0 * w + x1]) +
                            ay * ((1 - ax) * map[y1 * w + x0] + ax * map[y1 * w + x1]));
            }
            out[(size_t)y * ow + x] = v;
        }
    }
    return KDC_OK;
}

/* Overlay of an image-sized map on the crop, or on the original photo. */
static int write_overlay(const cli_opts *o, const kdc_preprocess *pp, int b, const char *stem,
                         const char *what, const float *map, int h, int w, const kdc_image *crop)
{
    kdc_image *ov = NULL, *orig = NULL;
    kdc_status st;
    int rc;
    if (o->on_original && !o->input_npy) {
        if ((st = cli_image_load(o, o->images[b], &orig)))
            return cli_lib_error(st, NULL);
        float *big = malloc((size_t)orig->width * orig->height * sizeof *big);
        if (!big) {
            kdc_image_destroy(orig);
            return cli_error("out of memory");
        }
        map_to_original(map, h, w, pp, orig->width, orig->height, big);
        st = kdc_overlay(orig, big, &ov);
        free(big);
        kdc_image_destroy(orig);
    } else {
        st = kdc_overlay(crop, map, &ov);
    }
    if (st)
        return cli_lib_error(st, NULL);
    rc = save_png(o->out_dir, stem, what, ov);
    kdc_image_destroy(ov);
    return rc;
}

/* Saliency map of an attribution: max over channels of |a|, min-max normalised. */
static void saliency_map(const float *a, int h, int w, float *out)
{
    const size_t hw = (size_t)h * w;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < hw; i++) {
        float m = fabsf(a[i]);
        for (int c = 1; c < 3; c++)
            m = fmaxf(m, fabsf(a[c * hw + i]));
        out[i] = m;
        lo = fminf(lo, m);
        hi = fmaxf(hi, m);
    }
    for (size_t i = 0; i < hw; i++)
        out[i] = (out[i] - lo) / (hi - lo + 1e-7f);
}

int cmd_cam(int argc, char **argv)
{
    cli_opts o;
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    kdc_cam_result *res = NULL;
    kdc_image **crops = NULL;
    float *input = NULL, *attr = NULL, *map1 = NULL;
    int *cls = NULL;
    int layers[KDC_CAM_MAX_LAYERS];
    int n = 0, h, w, rc, kind = M_CAM, nlayers;
    kdc_cam_method cam = KDC_CAM_GRADCAM;
    kdc_attribution at = KDC_ATTR_SALIENCY;
    kdc_status st;
    char (*stems)[256] = NULL;
    float *seed = NULL;
    double *scales = NULL;

    rc = cli_parse(argc, argv, CLI_MODEL_FLAGS | OPT_LAYER | OPT_OUT | OPT_IMAGES | OPT_INPUT_NPY |
                   OPT_CAM | OPT_CLASS | OPT_DET | OPT_TARGET | OPT_CAM_EXTRA, cam_usage, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    cli_target tgt;
    if (cli_target_from_opts(&o, &tgt))
        return 2;
    if (tgt.kind == CLI_TARGET_TEACHER)
        return cli_error("--target teacher applies to commands with several --model "
                         "(compare, pointing, analyze)"), 2;
    const char *method = o.method ? o.method : "gradcam";
    if (parse_method(method, &kind, &cam, &at))
        return 2;
    if (kind == M_CAM)
        method = kdc_cam_method_name(cam); /* canonical spelling in file names */
    else if (o.per_layer)
        return cli_error("--per-layer applies to the CAM methods (not %s)", method), 2;
    if (o.feature)
        return cli_error("--feature applies to `kdcam compare`"), 2;
    if (o.n_layers > KDC_CAM_MAX_LAYERS)
        return cli_error("at most %d --layer for a CAM", KDC_CAM_MAX_LAYERS), 2;
    if (!o.out_dir)
        o.out_dir = ".";
    if ((rc = cli_load_model(&o, &m)))
        return rc;
    const int det = cli_is_detector(m);
    int level = -1;
    if (!det && (o.level || o.has_box || o.channel >= 0 || o.det_short)) {
        rc = cli_error("--level, --box, --channel and --det-size apply to detection backbones "
                       "(-m resnet50-fpn ...)");
        goto out;
    }
    if (det && (o.cls >= 0 || tgt.kind != CLI_TARGET_OWN)) {
        rc = cli_error("%s has no classes: its target is the energy of --level (see --help)",
                       kdc_model_arch(m));
        goto out;
    }
    if (det && o.on_original) {
        rc = cli_error("--on-original applies to classifiers");
        goto out;
    }
    if (det && (rc = cli_find_level(&o, m, &level)))
        goto out;
    nlayers = o.n_layers ? o.n_layers : 1;
    for (int i = 0; i < o.n_layers; i++)
        if ((st = kdc_model_find_layer(m, o.layers[i], &layers[i]))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
    if (!o.n_layers && det)
        layers[0] = level;
    else if (!o.n_layers && (rc = cli_default_cam_layer(m, &layers[0], NULL)))
        goto out;
    if (o.cls >= kdc_model_num_classes(m)) {
        rc = cli_error("--class %d is out of range: %s has %d classes (0..%d)", o.cls,
                       kdc_model_arch(m), kdc_model_num_classes(m), kdc_model_num_classes(m) - 1);
        goto out;
    }
    if ((rc = cli_prepare_out_dir(o.out_dir)))
        goto out;
    kdc_preprocess pp;
    kdc_model_preprocess(m, &pp);
    if ((rc = det ? cli_load_det_batch(&o, m, &input, &n, &h, &w, &crops, &scales)
                  : cli_load_batch(&o, m, NULL, &input, &n, &h, &w, &crops)))
        goto out;
    /* output names: the image's stem, or for --input-npy the array's stem
     * with the image index */
    stems = calloc((size_t)n, sizeof *stems);
    if (!stems) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < n; b++) {
        char base[200];
        stem_of(o.input_npy ? o.input_npy : o.images[b], base, sizeof base);
        if (o.input_npy)
            snprintf(stems[b], sizeof stems[b], "%s_%d", base, b);
        else
            snprintf(stems[b], sizeof stems[b], "%s", base);
        for (int j = 0; j < b; j++)
            if (!strcmp(stems[j], stems[b])) {
                rc = cli_error("%s and %s would write the same files (stem '%s')", o.images[j],
                               o.images[b], stems[b]);
                goto out;
            }
    }
    if (!det && tgt.kind != CLI_TARGET_OWN) { /* --target / --class: cli/target.c */
        int *lab = NULL, use = 0;
        if (!(cls = malloc((size_t)n * sizeof *cls))) {
            rc = cli_error("out of memory");
            goto out;
        }
        if (tgt.kind == CLI_TARGET_LABEL && (rc = cli_target_image_labels(&o, m, n, &lab)))
            goto out;
        rc = cli_target_classes(&tgt, m, kdc_model_arch(m), 0, NULL, lab, n, cls, &use);
        free(lab);
        if (rc)
            goto out;
    }
    kdc_run_options ro = {.threads = o.threads};
    if ((st = kdc_run_create(m, &ro, &run))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    const size_t plane = (size_t)h * w;
    kdc_target tg = {.kind = KDC_TARGET_LOGIT, .classes = cls};
    if (det) {
        /* detectors: the energy of the level (in the box, on the channel) */
        if ((rc = cli_level_seed(&o, m, run, input, n, h, w, scales, level, &seed)))
            goto out;
        tg = (kdc_target){.kind = KDC_TARGET_SEED, .layer = level, .seed = seed};
    }
    if (kind == M_PERTURB) {
        rc = det ? cli_error("%s needs a class: detection backbones have none", method)
                 : cli_cam_perturb(&o, run, m, cli_perturb_kind(method), input, n, h, w, cls,
                                   stems, crops, method);
        goto out;
    }
    if (kind != M_ATTRIBUTION) {
        kdc_cam_options co = {.method = cam, .layers = layers, .nlayers = nlayers, .target = tg,
                              .scorecam_topk = o.topk_channels, .scorecam_batch = o.chunk,
                              .samples = o.samples};
        if ((st = kdc_cam_compute(run, input, n, h, w, &co, &res))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
    }
    if (kind != M_CAM || o.guided) {
        kdc_attribution_options ao = {.kind = kind == M_ATTRIBUTION ? at : KDC_ATTR_GUIDED,
                                      .target = tg};
        attr = malloc((size_t)n * 3 * plane * sizeof *attr);
        if (!attr) {
            rc = cli_error("out of memory");
            goto out;
        }
        if ((st = kdc_attribution_compute(run, input, n, h, w, &ao, attr))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
    }
    map1 = malloc(3 * plane * sizeof *map1);
    if (!map1) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < n; b++) {
        char srcbuf[4200];
        if (o.input_npy)
            snprintf(srcbuf, sizeof srcbuf, "%s[%d]", o.input_npy, b);
        const char *src = o.input_npy ? srcbuf : o.images[b];
        int c = res ? res->classes[b] : (cls ? cls[b] : -1);
        const char *cname = kdc_model_class_name(m, c);
        char tdesc[160];
        if (det)
            printf("%s: %s energy of %s, %s\n", src, o.energy ? "mean" : "sum-of-squares",
                   kdc_model_layer_alias(m, level, 0) ? kdc_model_layer_alias(m, level, 0)
                                                      : kdc_model_layer_name(m, level),
                   method);
        else if (res)
            printf("%s: class %d%s%s%s, %s, target %s\n", src, c, cname ? " (" : "",
                   cname ? cname : "", cname ? ")" : "", method,
                   cli_target_describe(&tgt, tdesc, sizeof tdesc));
        else
            printf("%s: %s\n", src, method);
        kdc_image *pic = NULL;
        if (kind == M_CAM) {
            if ((rc = write_overlay(&o, &pp, b, stems[b], method, res->map + b * plane, h, w,
                                    crops[b])))
                goto out;
        } else if (kind == M_GUIDED_GRADCAM) {
            for (int ch = 0; ch < 3; ch++)
                for (size_t i = 0; i < plane; i++)
                    map1[ch * plane + i] = attr[(b * 3 + ch) * plane + i] * res->map[b * plane + i];
            if ((st = kdc_gradient_image(map1, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o.out_dir, stems[b], method, pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
        } else {
            if ((st = kdc_gradient_image(attr + b * 3 * plane, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o.out_dir, stems[b], method, pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
        }
        if (o.guided && kind == M_CAM) {
            const float *g = attr + b * 3 * plane;
            if ((st = kdc_gradient_image(g, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o.out_dir, stems[b], "guided", pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
            for (int ch = 0; ch < 3; ch++)
                for (size_t i = 0; i < plane; i++)
                    map1[ch * plane + i] = g[ch * plane + i] * res->map[b * plane + i];
            if ((st = kdc_gradient_image(map1, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o.out_dir, stems[b], "guided-gradcam", pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
        }
    }
    if (o.per_layer && (rc = cli_write_per_layer(o.out_dir, m, res, layers, stems, method, crops)))
        goto out;
    if (o.npy) {
        /* one file per image (N = 1), or one for the whole --input-npy batch */
        int per = o.input_npy ? n : 1;
        for (int b0 = 0; b0 < n; b0 += per) {
            char stem[256];
            if (o.input_npy)
                stem_of(o.input_npy, stem, sizeof stem);
            else
                snprintf(stem, sizeof stem, "%s", stems[b0]);
            int64_t d3[3] = {per, h, w};
            if (kind == M_CAM) {
                for (int l = 0; l < res->nlayers; l++) {
                    const size_t rp = (size_t)res->raw_h[l] * res->raw_w[l];
                    int64_t dr[3] = {per, res->raw_h[l], res->raw_w[l]};
                    char suffix[300];
                    if (res->nlayers == 1)
                        snprintf(suffix, sizeof suffix, ".raw");
                    else
                        snprintf(suffix, sizeof suffix, ".raw.%s", kdc_model_layer_name(m, layers[l]));
                    if ((rc = save_npy(o.out_dir, stem, method, suffix, res->raw[l] + b0 * rp, 3, dr)))
                        goto out;
                }
                if ((rc = save_npy(o.out_dir, stem, method, "", res->map + b0 * plane, 3, d3)))
                    goto out;
            } else {
                /* raw: the attribution (or guided gradient x map), N x 3 x H x W */
                float *raw = malloc((size_t)per * 3 * plane * sizeof *raw);
                float *sal = malloc((size_t)per * plane * sizeof *sal);
                if (!raw || !sal) {
                    free(raw);
                    free(sal);
                    rc = cli_error("out of memory");
                    goto out;
                }
                for (int b = 0; b < per; b++) {
                    for (int ch = 0; ch < 3; ch++)
                        for (size_t i = 0; i < plane; i++) {
                            float v = attr[((b0 + b) * 3 + ch) * plane + i];
                            if (kind == M_GUIDED_GRADCAM)
                                v *= res->map[(b0 + b) * plane + i];
                            raw[(b * 3 + ch) * plane + i] = v;
                        }
                    saliency_map(raw + b * 3 * plane, h, w, sal + b * plane);
                }
                int64_t d4[4] = {per, 3, h, w};
                rc = save_npy(o.out_dir, stem, method, ".raw", raw, 4, d4);
                if (!rc)
                    rc = save_npy(o.out_dir, stem, method, "", sal, 3, d3);
                free(raw);
                free(sal);
                if (rc)
                    goto out;
            }
        }
    }
out:
    free(seed);
    free(scales);
    free(stems);
    free(map1);
    free(attr);
    free(cls);
    kdc_cam_result_destroy(res);
    cli_free_crops(crops, n);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return rc;
}
