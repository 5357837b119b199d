/* cmd_cam.c - kdcam cam: class activation maps and input attributions of one
 * model, written as overlays (PNG) and, with --npy, as float32 .npy maps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "figure.h"
#include "inputs.h"

static const char *cam_usage =
    "usage: kdcam cam [-m ARCH] -w WEIGHTS [--layer NAME]... [--method M] [--class C]\n"
    "                 [--guided] [-o DIR] [--npy] (INPUT... | --input-npy X.npy)\n"
    "Computes a class activation map (or an input attribution) per image and writes\n"
    "DIR/<stem>.<method>.png: the map over the preprocessed image (JET, or --colormap,\n"
    "blended as pytorch-grad-cam's show_cam_on_image). With --npy also\n"
    "DIR/<stem>.<method>.raw.npy (the raw map at feature resolution, unnormalised,\n"
    "N x h x w; with several layers one file per layer, <stem>.<method>.raw.<layer>.npy)\n"
    "and DIR/<stem>.<method>.npy (normalised, upsampled, averaged over layers,\n"
    "N x H x W). Attribution methods write the gradient picture and, with --npy,\n"
    "<stem>.<method>.raw.npy (N x 3 x H x W) and <stem>.<method>.npy (N x H x W:\n"
    "max over channels of |attribution|, min-max normalised).\n"
    "\n"
    "INPUT: an image file; a folder (its images; -r: and those of its subfolders,\n"
    "written to the same subfolders of DIR); @LIST, a file of paths, one a line\n"
    "(relative to its folder); or a quoted glob pattern ('photos/*.jpg'). Images\n"
    "whose stems collide (a/x.jpg, b/x.jpg) are named by the folders that tell\n"
    "them apart (DIR/a/x..., DIR/b/x...). Images are processed --batch at a time,\n"
    "so memory does not grow with their number; progress goes to stderr.\n"
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
    "  kpcacam         first kernel principal component of the activations\n"
    "                  (--kpca-kernel, default sigmoid; pytorch-grad-cam KPCA_CAM)\n"
    "  finercam        Grad-CAM of the class logit minus --finer-alpha x the 3 closest\n"
    "                  classes' logits, softmax-weighted (pytorch-grad-cam FinerCAM)\n"
    "  smoothgradcam++ Grad-CAM++ weights from the gradients of noisy inputs\n"
    "                  (--samples, default 4; std 0.3; torch-cam SmoothGradCAMpp)\n"
    "  shapleycam      weights mean(gradient - 0.5 Hessian x activation)\n"
    "                  (pytorch-grad-cam ShapleyCAM; Grad-CAM on ReLU nets but\n"
    "                  for --score prob)\n"
    "  dff             deep feature factorization: NMF of the batch's activations at\n"
    "                  the first --layer into --components concepts, one map each\n"
    "  guided-gradcam  guided backpropagation x the Grad-CAM map\n"
    "  saliency        gradient of the class score with respect to the input\n"
    "  smoothgrad      mean input gradient over noisy copies\n"
    "  integrated-gradients  path integral of input gradients from a black image\n"
    "  occlusion       score drop when a --window patch is greyed out, every --stride\n"
    "  featureablation score drop when each cell of a --window grid is zeroed\n"
    "  fullgrad          |x * dx| plus |bias * gradient| of every BatchNorm/conv bias,\n"
    "                    each channel normalised and resized, summed (pytorch-grad-cam)\n"
    "  input-x-gradient  x * d target / d x (Captum InputXGradient)\n"
    "  deeplift          (x - x0) * multipliers, rescale rule at ReLUs and max pools,\n"
    "                    against the baseline x0 (Captum DeepLift)\n"
    "  lrp               layer-wise relevance at the input: epsilon or gamma rule,\n"
    "                    BatchNorm folded into its conv (Captum LRP rules)\n"
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
    "      --score S       what is explained: logit (the class's raw score, the\n"
    "                      default) or prob (its softmax probability, pytorch-grad-cam's\n"
    "                      ClassifierOutputSoftmaxTarget; shapleycam then has a\n"
    "                      non-zero Hessian term)\n"
    "      --guided        also write <stem>.guided.png (guided backpropagation) and\n"
    "                      <stem>.guided-gradcam.png (guided gradient x the map)\n"
    "      --scorecam-topk K  Score-CAM: only the K channels with the largest mean\n"
    "                      activation (default: all channels; slow); also SS-/IS-CAM\n"
    "      --chunk N       masked or perturbed images per forward pass (default 32)\n"
    "      --samples N     SS-CAM / IS-CAM samples per channel, Smooth Grad-CAM++\n"
    "                      noisy inputs\n"
    "      --components K  dff: concepts (default 5); writes <stem>.dff.png (each\n"
    "                      concept's map) and with --npy <stem>.dff.raw.npy (K x h x w),\n"
    "                      <stem>.dff.npy (K x H x W), <stem>.dff.concepts.npy (C x K)\n"
    "      --kpca-kernel K kpcacam: sigmoid (default), rbf, poly, linear or cosine\n"
    "      --kpca-gamma G  kpcacam: kernel gamma (default 1 / channels)\n"
    "      --finer-alpha A finercam: weight of the similar classes (default 1)\n"
    "      --window P, --stride S  occlusion patch side and step (default 16, 8);\n"
    "                      feature ablation cell side (default 16)\n"
    "      --on-original   draw overlays on the original photo instead of the crop\n"
    "      --baseline B    deeplift: zero (default, Captum's), black (the normalised\n"
    "                      black image) or FILE.npy (N or 1 x 3 x H x W, preprocessed)\n"
    "      --lrp-rule R    lrp: epsilon (default) or gamma (on the convolutions)\n"
    "      --lrp-epsilon E, --lrp-gamma G  lrp: stabiliser (1e-9), gamma (0.25)\n"
    "                      lrp with --layer and --npy also writes the relevance of each\n"
    "                      layer, <stem>.lrp.raw.<layer>.npy (N x C x h x w)\n"
    "  -o, --out DIR       output directory (default: current directory)\n"
    "      --npy           also write the maps as .npy\n"
    "      --per-layer     also each --layer's own map, not averaged with the\n"
    "                      others: <stem>.<method>.layer.<name>.npy and, side by\n"
    "                      side, <stem>.<method>.layers.png\n"
    "      --input-npy X   a preprocessed float32 N x 3 x H x W array instead of images\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n"
    "  -r, --recursive     folders with their subfolders\n"
    "      --batch B       images per pass, 1..256 (default 8)\n"
    "      --skip-existing leave out images whose outputs exist (rerun after a stop)\n"
    "      --progress-every S  seconds between progress lines when stderr is not a\n"
    "                      terminal (default 10)\n"
    "      --min-size N    refuse images whose shorter side is below N pixels (without\n"
    "                      it, images under half the crop get a warning)\n"
    "      --annotate      add the model, method, layer, class with p= and a colour bar\n"
    "                      under each CAM picture\n"
    "      --heatmap-only  the map alone, not blended with the photo\n"
    "      --colormap C    jet (default, as pytorch-grad-cam), viridis, inferno or turbo\n"
    "                      (OpenCV's tables, as show_cam_on_image(colormap=...))\n"
    "      --scale K       pixels per figure pixel, 1..8 (high-DPI figures; default 1)\n"
    "      --svg           also write <stem>.<method>.svg (text as text, picture\n"
    "                      embedded as PNG)\n"
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
    "      --detection K   detectors with a RetinaNet head: the target is the class\n"
    "                      logit (before the sigmoid) of the anchor behind each image's\n"
    "                      detection K (0 = the best, as `kdcam detect` lists them);\n"
    "                      default layer: the FPN level it came from. Images of a\n"
    "                      batch must have it on one level (else --batch 1)\n"
    "      --detection-box  with --detection: the target also adds the anchor's four\n"
    "                      box-regression outputs (logit + dx + dy + dw + dh)\n"
    "      --score-thresh S, --max-dets N, --det-style X, --anchor-size N  the\n"
    "                      detections, as for `kdcam detect`\n"
    "      --fpn-extra X   auto | none | pool | on-input | on-output | on-lateral\n"
    "      --fpn-relu-extra  ReLU between extra convs (mmdetection relu_before_extra_convs)\n"
    "      --no-head       leave a RetinaNet head unbuilt (backbone only)\n";

enum { M_CAM, M_GUIDED_GRADCAM, M_ATTRIBUTION, M_PERTURB, M_DFF };

/* What every batch of one `kdcam cam` run shares. */
typedef struct cam_ctx {
    const cli_opts *o;
    const cli_input_opts *io;
    kdc_model *m;
    kdc_run *run;
    const kdc_preprocess *pp;
    const int *layers;
    int nlayers, kind, det, level;
    kdc_cam_method cam;
    kdc_attribution at;
    const char *method;
    const cli_target *tgt; /* --target / --class: cli/target.c */
} cam_ctx;


/* Parses the method names; kind tells how the method is computed. */
static int parse_method(const char *name, int *kind, kdc_cam_method *cam, kdc_attribution *attr)
{
    if (!strcmp(name, "guided-gradcam")) {
        *kind = M_GUIDED_GRADCAM;
        *cam = KDC_CAM_GRADCAM;
        return 0;
    }
    if (!strcmp(name, "dff")) { /* issue 19, part C: cam_dff.c */
        *kind = M_DFF;
        return 0;
    }
    if (cli_perturb_kind(name) >= 0) { /* issue 19: cam_perturb.c */
        *kind = M_PERTURB;
        return 0;
    }
    static const struct { const char *name; kdc_attribution a; } attrs[] = {
        {"saliency", KDC_ATTR_SALIENCY},
        {"smoothgrad", KDC_ATTR_SMOOTHGRAD},
        {"integrated-gradients", KDC_ATTR_INTEGRATED},
        {"input-x-gradient", KDC_ATTR_INPUT_X_GRADIENT},
        {"deeplift", KDC_ATTR_DEEPLIFT},
        {"lrp", KDC_ATTR_LRP},
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
    return cli_error("unknown method '%s' (gradcam, hirescam, gradcam++, xgradcam, layercam, "
                     "eigencam, eigengradcam, scorecam, ablationcam, sscam, iscam, fullgrad, "
                     "kpcacam, finercam, smoothgradcam++, shapleycam, dff, "
                     "guided-gradcam, saliency, smoothgrad, integrated-gradients, "
                     "input-x-gradient, deeplift, lrp, occlusion, featureablation)", name);
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
    int rh, rw, top, left;
    cli_crop_geometry(pp, ow, oh, h, w, &rw, &rh, &top, &left);
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

/* The overlay as a figure: at --scale, as SVG with --svg, and with
 * --annotate a caption (layer, class, p=) and a colour bar under it. */
static int cam_figure(const cam_ctx *cx, const kdc_image *ov, const kdc_cam_result *res, int b,
                      float prob, const char *name)
{
    static const unsigned char INK[3] = {20, 20, 20}, GREY[3] = {90, 90, 90};
    const cli_input_opts *io = cx->io;
    const int pad = 6, pw = ov->width;
    int tw, th;
    cli_fig_text_size("Hg", 1, &tw, &th);
    const int cap_h = io->annotate ? 2 * (th + 4) + 12 + th + 6 + th + 8 : 0;
    cli_fig *f = cli_fig_create(pw + 2 * pad, ov->height + 2 * pad + cap_h);
    if (f)
        cli_fig_set_colormap(f, cx->io->cmap);
    if (!f)
        return 1;
    int rc = cli_fig_image(f, pad, pad, ov);
    if (!rc && io->annotate) {
        char layers[512] = "";
        for (int l = 0; l < cx->nlayers; l++) {
            const char *nm = kdc_model_layer_name(cx->m, cx->layers[l]);
            const char *al = kdc_model_layer_alias(cx->m, cx->layers[l], 0);
            snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%s",
                     l ? " + " : "", al && !strchr(al, '.') ? al : nm);
        }
        int y = pad + ov->height + 6;
        rc = cli_fig_text(f, pad, y, 1, 0, INK, "%s  %s at %s", kdc_model_arch(cx->m),
                          cx->method, layers);
        y += th + 4;
        const int c = res->classes[b];
        const char *cname = c >= 0 ? kdc_model_class_name(cx->m, c) : NULL;
        if (!rc && cx->det)
            rc = cli_fig_text(f, pad, y, 1, 0, GREY, "target: energy of the level");
        else if (!rc)
            rc = cli_fig_text(f, pad, y, 1, 0, GREY, "class %d%s%s  p=%.3f", c,
                              cname ? " " : "", cname ? cname : "", (double)prob);
        y += th + 8;
        if (!rc)
            rc = cli_fig_colorbar(f, pad, y, pw, 10, 0.0, 1.0, 5, "%.2g",
                                  "map, min-max normalised per image");
    }
    char path[4300];
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s.%s.png", cx->o->out_dir, name, cx->method);
        rc = cli_fig_save_png(f, io->scale, path);
        if (!rc)
            printf("  %s\n", path);
    }
    if (!rc && io->svg) {
        snprintf(path, sizeof path, "%s/%s.%s.svg", cx->o->out_dir, name, cx->method);
        rc = cli_fig_save_svg(f, path);
        if (!rc)
            printf("  %s\n", path);
    }
    cli_fig_destroy(f);
    return rc;
}

/* Overlay of image b's map on its crop, or on the original photo (src);
 * --heatmap-only: the map alone; --annotate: with a label and colour bar. */
static int write_overlay(const cam_ctx *cx, const char *src, const char *name,
                         const kdc_cam_result *res, int b, const kdc_image *crop, float prob)
{
    const cli_opts *o = cx->o;
    const size_t plane = (size_t)res->in_h * res->in_w;
    const float *map = res->map + b * plane;
    const float alpha = cx->io->heatmap_only ? 1.0f : 0.5f;
    kdc_image *ov = NULL, *orig = NULL;
    kdc_status st;
    int rc;
    if (o->on_original && !o->input_npy) {
        if ((st = cli_image_load(o, src, &orig)))
            return cli_lib_error(st, NULL);
        float *big = malloc((size_t)orig->width * orig->height * sizeof *big);
        if (!big) {
            kdc_image_destroy(orig);
            return cli_error("out of memory");
        }
        map_to_original(map, res->in_h, res->in_w, cx->pp, orig->width, orig->height, big);
        st = kdc_overlay_colormap(orig, big, alpha, cx->io->cmap, &ov);
        free(big);
        kdc_image_destroy(orig);
    } else {
        st = kdc_overlay_colormap(crop, map, alpha, cx->io->cmap, &ov);
    }
    if (st)
        return cli_lib_error(st, NULL);
    if (cx->io->annotate || cx->io->scale > 1 || cx->io->svg)
        rc = cam_figure(cx, ov, res, b, prob, name);
    else
        rc = save_png(o->out_dir, name, cx->method, ov);
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

/* DeepLift's baseline (issue 19, part B): NULL for zero, the normalised
 * black image, or a preprocessed N x 3 x H x W (or 1 x 3 x H x W) .npy. */
static int load_baseline(const cli_opts *o, const kdc_preprocess *pp, int n, int h, int w,
                         float **out)
{
    const size_t img = 3 * (size_t)h * w;
    *out = NULL;
    if (!o->baseline || !strcmp(o->baseline, "zero"))
        return 0;
    float *b = malloc((size_t)n * img * sizeof *b);
    if (!b)
        return cli_error("out of memory");
    if (!strcmp(o->baseline, "black")) {
        for (size_t i = 0; i < (size_t)n * img; i++) {
            const int c = (int)(i / ((size_t)h * w) % 3);
            b[i] = (0.0f - pp->mean[c]) / pp->std[c];
        }
        *out = b;
        return 0;
    }
    float *data = NULL;
    int nd;
    int64_t d[8];
    kdc_status st = kdc_npy_load(o->baseline, &data, &nd, d);
    if (st) {
        free(b);
        return cli_lib_error(st, NULL);
    }
    if (nd != 4 || (d[0] != n && d[0] != 1) || d[1] != 3 || d[2] != h || d[3] != w) {
        free(b);
        kdc_free(data);
        return cli_error("--baseline %s: expected %d (or 1) x 3 x %d x %d float values", o->baseline,
                         n, h, w);
    }
    for (int k = 0; k < n; k++)
        memcpy(b + (size_t)k * img, data + (d[0] == 1 ? 0 : (size_t)k * img), img * sizeof *b);
    kdc_free(data);
    *out = b;
    return 0;
}

/* lrp --layer L --npy: the relevance of each layer, <stem>.lrp.raw.<layer>.npy. */
static int save_lrp_layers(const cli_opts *o, kdc_model *m, kdc_run *run, const float *input,
                           int n, int h, int w, const kdc_attribution_options *ao,
                           const int *layers, char **names)
{
    for (int l = 0; l < o->n_layers; l++) {
        int s[4];
        kdc_status st = kdc_run_forward(run, input, n, h, w, &layers[l], 1);
        if (!st)
            st = kdc_run_layer_shape(run, layers[l], s);
        if (st)
            return cli_lib_error(st, NULL);
        const size_t per_img = (size_t)s[1] * s[2] * s[3];
        float *r = malloc((size_t)n * per_img * sizeof *r);
        if (!r)
            return cli_error("out of memory");
        if ((st = kdc_lrp_relevance(run, input, n, h, w, ao, layers[l], r, (size_t)n * per_img))) {
            free(r);
            return cli_lib_error(st, NULL);
        }
        char suffix[300];
        snprintf(suffix, sizeof suffix, ".raw.%s", kdc_model_layer_name(m, layers[l]));
        const int per = o->input_npy ? n : 1;
        int rc = 0;
        for (int b0 = 0; b0 < n && !rc; b0 += per) {
            char stem[256];
            if (o->input_npy)
                stem_of(o->input_npy, stem, sizeof stem);
            else
                snprintf(stem, sizeof stem, "%s", names[b0]);
            int64_t d4[4] = {per, s[1], s[2], s[3]};
            rc = save_npy(o->out_dir, stem, "lrp", suffix, r + b0 * per_img, 4, d4);
        }
        free(r);
        if (rc)
            return rc;
    }
    return 0;
}

/* One batch: n images (input n x 3 x h x w), their output names and the
 * paths to show (and to reload for --on-original). */
static int cam_batch(const cam_ctx *cx, const float *input, int n, int h, int w,
                     kdc_image **crops, const double *scales, const int *sizes, char **names,
                     char **srcs)
{
    const cli_opts *o = cx->o;
    kdc_model *m = cx->m;
    const int kind = cx->kind, det = cx->det, level = cx->level;
    const char *method = cx->method;
    kdc_cam_result *res = NULL;
    const int *layers = cx->layers;
    int nlayers = cx->nlayers, dfeat = -1;
    kdc_target dtg = {.kind = KDC_TARGET_SEED}; /* --detection: freed at the end */
    kdc_detection *dets = NULL;
    float *attr = NULL, *map1 = NULL, *seed = NULL, *probs = NULL, *baseline = NULL;
    int *cls = NULL, rc = 0;
    char tdesc[160];
    kdc_status st;
    if (!det && cx->tgt->kind != CLI_TARGET_OWN) {
        int *lab = NULL, use = 0;
        if (!(cls = malloc((size_t)n * sizeof *cls)))
            return cli_error("out of memory");
        if (cx->tgt->kind == CLI_TARGET_LABEL &&
            (rc = cli_target_image_labels(o, m, srcs, n, &lab)))
            goto out;
        rc = cli_target_classes(cx->tgt, m, kdc_model_arch(m), 0, NULL, lab, n, cls, &use);
        free(lab);
        if (rc)
            goto out;
    }
    for (int b = 0; b < n && !rc && !o->input_npy; b++)
        rc = cli_inputs_mkdirs(o->out_dir, names[b]);
    if (rc)
        goto out;
    const size_t plane = (size_t)h * w;
    kdc_target tg = {.kind = o->score_prob ? KDC_TARGET_PROB : KDC_TARGET_LOGIT, .classes = cls};
    if (det && o->detection >= 0) {
        /* --detection K: the logit of the anchor behind each image's
         * detection K; by default the map is at the FPN level it came from */
        if (!(dets = malloc((size_t)n * sizeof *dets))) {
            rc = cli_error("out of memory");
            goto out;
        }
        if ((rc = cli_detection_seed(o, m, cx->run, input, n, h, w, scales, sizes, dets, &dtg)))
            goto out;
        tg = dtg;
        if (!o->n_layers) {
            kdc_head_info hi;
            kdc_model_head(m, &hi);
            dfeat = hi.feature_layer[dets[0].level_index];
            layers = &dfeat;
            nlayers = 1;
        }
    } else if (det) {
        /* detectors: the energy of the level (in the box, on the channel) */
        if ((rc = cli_level_seed(o, m, cx->run, input, n, h, w, scales, level, &seed)))
            goto out;
        tg = (kdc_target){.kind = KDC_TARGET_SEED, .layer = level, .seed = seed};
    }
    if (kind == M_DFF) {
        char bstem[256];
        if (o->input_npy)
            stem_of(o->input_npy, bstem, sizeof bstem);
        rc = cli_cam_dff(o, cx->run, m, layers[0], input, n, h, w, names, srcs, crops,
                         o->input_npy ? bstem : NULL);
        goto out;
    }
    if (kind == M_PERTURB) {
        rc = det ? cli_error("%s needs a class: detection backbones have none", method)
                 : cli_cam_perturb(o, cx->run, m, cli_perturb_kind(method), input, n, h, w, cls,
                                   names, srcs, crops, method);
        goto out;
    }
    probs = calloc((size_t)n, sizeof *probs);
    if (!probs) {
        rc = cli_error("out of memory");
        goto out;
    }
    if (kind != M_ATTRIBUTION) {
        /* the logits stay readable (keep) for each image's p= */
        const int last = kdc_model_num_layers(m) - 1, K = kdc_model_num_classes(m);
        kdc_cam_options co = {.method = cx->cam, .layers = layers, .nlayers = nlayers,
                              .target = tg, .scorecam_topk = o->topk_channels, .keep = &last,
                              .scorecam_batch = o->chunk, .samples = o->samples,
                              .nkeep = 1, .finer_alpha = o->finer_alpha,
                              .kpca_kernel = (kdc_kpca_kernel)o->kpca_kernel,
                              .kpca_gamma = o->kpca_gamma};
        if ((st = kdc_cam_compute(cx->run, input, n, h, w, &co, &res))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
        if (!det && (rc = cli_class_probs(cx->run, last, n, K, res->classes, probs)))
            goto out;
    }
    if (kind != M_CAM || o->guided) {
        kdc_attribution_options ao = {.kind = kind == M_ATTRIBUTION ? cx->at : KDC_ATTR_GUIDED,
                                      .target = tg, .lrp_rule = o->lrp_rule,
                                      .lrp_epsilon = o->lrp_epsilon, .lrp_gamma = o->lrp_gamma};
        if ((rc = load_baseline(o, cx->pp, n, h, w, &baseline)))
            goto out;
        ao.baseline = baseline;
        attr = malloc((size_t)n * 3 * plane * sizeof *attr);
        if (!attr) {
            rc = cli_error("out of memory");
            goto out;
        }
        if ((st = kdc_attribution_compute(cx->run, input, n, h, w, &ao, attr))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
        if (kind == M_ATTRIBUTION && cx->at == KDC_ATTR_LRP && o->n_layers && o->npy &&
            (rc = save_lrp_layers(o, m, cx->run, input, n, h, w, &ao, layers, names)))
            goto out;
    }
    map1 = malloc(3 * plane * sizeof *map1);
    if (!map1) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < n; b++) {
        const char *src = srcs[b];
        int c = res ? res->classes[b] : (cls ? cls[b] : -1);
        const char *cname = kdc_model_class_name(m, c);
        if (dets) {
            char nb[32];
            const kdc_detection *d = &dets[b];
            const char *dn = kdc_model_class_name(m, d->label);
            if (!dn)
                snprintf(nb, sizeof nb, "class %d", d->label);
            printf("%s: detection %d: %s %.4f box %.1f,%.1f,%.1f,%.1f (p%d anchor %d cell "
                   "%d,%d)%s, %s at %s\n",
                   src, o->detection, dn ? dn : nb, (double)d->score, (double)d->box[0],
                   (double)d->box[1], (double)d->box[2], (double)d->box[3], d->level, d->anchor,
                   d->y, d->x, o->detection_box ? ", logit + box deltas" : "", method,
                   kdc_model_layer_alias(m, layers[0], 0)
                                           ? kdc_model_layer_alias(m, layers[0], 0)
                                           : kdc_model_layer_name(m, layers[0]));
        } else if (det)
            printf("%s: %s energy of %s, %s\n", src, o->energy ? "mean" : "sum-of-squares",
                   kdc_model_layer_alias(m, level, 0) ? kdc_model_layer_alias(m, level, 0)
                                                      : kdc_model_layer_name(m, level),
                   method);
        else if (res)
            printf("%s: class %d%s%s%s, %s, target %s\n", src, c, cname ? " (" : "",
                   cname ? cname : "", cname ? ")" : "", method,
                   cli_target_describe(cx->tgt, tdesc, sizeof tdesc));
        else
            printf("%s: %s\n", src, method);
        kdc_image *pic = NULL;
        if (kind == M_CAM) {
            if ((rc = write_overlay(cx, src, names[b], res, b, crops[b], probs[b])))
                goto out;
        } else if (kind == M_GUIDED_GRADCAM) {
            for (int ch = 0; ch < 3; ch++)
                for (size_t i = 0; i < plane; i++)
                    map1[ch * plane + i] = attr[(b * 3 + ch) * plane + i] * res->map[b * plane + i];
            if ((st = kdc_gradient_image(map1, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o->out_dir, names[b], method, pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
        } else {
            if ((st = kdc_gradient_image(attr + b * 3 * plane, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o->out_dir, names[b], method, pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
        }
        if (o->guided && kind == M_CAM) {
            const float *g = attr + b * 3 * plane;
            if ((st = kdc_gradient_image(g, h, w, &pic))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            rc = save_png(o->out_dir, names[b], "guided", pic);
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
            rc = save_png(o->out_dir, names[b], "guided-gradcam", pic);
            kdc_image_destroy(pic);
            if (rc)
                goto out;
        }
    }
    if (o->per_layer && kind == M_CAM &&
        (rc = cli_write_per_layer(o->out_dir, m, res, layers, names, method, crops)))
        goto out;
    if (o->npy) {
        /* one file per image (N = 1), or one for the whole --input-npy batch */
        int per = o->input_npy ? n : 1;
        for (int b0 = 0; b0 < n; b0 += per) {
            char stem[256];
            if (o->input_npy)
                stem_of(o->input_npy, stem, sizeof stem);
            else
                snprintf(stem, sizeof stem, "%s", names[b0]);
            int64_t d3[3] = {per, h, w};
            if (kind == M_CAM) {
                for (int l = 0; l < res->nlayers; l++) {
                    const size_t rp = (size_t)res->raw_h[l] * res->raw_w[l];
                    int64_t dr[3] = {per, res->raw_h[l], res->raw_w[l]};
                    char suffix[300];
                    if (res->nlayers == 1)
                        snprintf(suffix, sizeof suffix, ".raw");
                    else
                        snprintf(suffix, sizeof suffix, ".raw.%s",
                                 kdc_model_layer_name(m, layers[l]));
                    if ((rc = save_npy(o->out_dir, stem, method, suffix, res->raw[l] + b0 * rp,
                                       3, dr)))
                        goto out;
                }
                if ((rc = save_npy(o->out_dir, stem, method, "", res->map + b0 * plane, 3, d3)))
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
                rc = save_npy(o->out_dir, stem, method, ".raw", raw, 4, d4);
                if (!rc)
                    rc = save_npy(o->out_dir, stem, method, "", sal, 3, d3);
                free(raw);
                free(sal);
                if (rc)
                    goto out;
            }
        }
    }
out:
    free(probs);
    free(seed);
    cli_target_free(&dtg);
    free(dets);
    free(baseline);
    free(map1);
    free(attr);
    free(cls);
    kdc_cam_result_destroy(res);
    return rc;
}

/* The file that shows an image is done: its picture (written last but for
 * the .npy maps, through a temporary file, so it exists only complete), and
 * with --npy its normalised map. */
static int is_done(const cam_ctx *cx, const char *name)
{
    char path[4300];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s.%s.png", cx->o->out_dir, name, cx->method);
    if (stat(path, &sb))
        return 0;
    if (cx->o->npy) {
        snprintf(path, sizeof path, "%s/%s.%s.npy", cx->o->out_dir, name, cx->method);
        if (stat(path, &sb))
            return 0;
    }
    return 1;
}

int cmd_cam(int argc, char **argv)
{
    cli_opts o;
    cli_input_opts io;
    cli_inputs in = {0};
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    kdc_image **crops = NULL;
    float *input = NULL;
    int layers[KDC_CAM_MAX_LAYERS];
    int n = 0, h, w, rc, kind = M_CAM, nlayers, nrest = 0;
    kdc_cam_method cam = KDC_CAM_GRADCAM;
    kdc_attribution at = KDC_ATTR_SALIENCY;
    kdc_status st;
    double *scales = NULL;
    int *bsizes = NULL;
    char **names = NULL, **srcs = NULL;
    cli_input **todo = NULL;

    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    if (!rest)
        return cli_error("out of memory");
    if (cli_take_input_opts(argc, argv, CLI_IN_FIGURE, rest, &nrest, &io)) {
        free(rest);
        return 2;
    }
    rc = cli_parse(nrest, rest, CLI_MODEL_FLAGS | OPT_LAYER | OPT_OUT | OPT_IMAGES |
                   OPT_INPUT_NPY | OPT_CAM | OPT_CLASS | OPT_DET | OPT_TARGET | OPT_CAM_EXTRA,
                   cam_usage, &o);
    if (rc) {
        free(rest);
        return rc < 0 ? 2 : 0;
    }
    cli_target tgt;
    const char *method = o.method ? o.method : "gradcam";
    if (cli_target_from_opts(&o, &tgt) ||
        (tgt.kind == CLI_TARGET_TEACHER &&
         cli_error("--target teacher applies to commands with several --model "
                   "(compare, pointing, analyze)")) ||
        parse_method(method, &kind, &cam, &at) ||
        (o.per_layer && kind != M_CAM &&
         cli_error("--per-layer applies to the CAM methods (not %s)", method)) ||
        (o.feature && cli_error("--feature applies to `kdcam compare`")) ||
        (o.components && kind != M_DFF && cli_error("--components applies to --method dff")) ||
        ((o.kpca_kernel || o.kpca_gamma > 0) && !(kind == M_CAM && cam == KDC_CAM_KPCACAM) &&
         cli_error("--kpca-kernel and --kpca-gamma apply to --method kpcacam")) ||
        (o.finer_alpha > 0 && !(kind == M_CAM && cam == KDC_CAM_FINERCAM) &&
         cli_error("--finer-alpha applies to --method finercam")) ||
        (o.score_prob && ((kind == M_CAM && cam == KDC_CAM_FINERCAM) || kind == M_DFF ||
                          (kind == M_ATTRIBUTION &&
                           (at == KDC_ATTR_LRP || at == KDC_ATTR_DEEPLIFT))) &&
         cli_error("--score prob does not apply to %s (%s)", method,
                   kind == M_DFF ? "it has no target"
                   : kind == M_CAM ? "it builds its own target from the logits"
                                   : "its rules explain a class logit")) ||
        (kind == M_DFF && (o.guided || o.n_layers > 1 || o.on_original) &&
         cli_error("dff takes one --layer, without --guided or --on-original")) ||
        (o.baseline && !(kind == M_ATTRIBUTION && at == KDC_ATTR_DEEPLIFT) &&
         cli_error("--baseline applies to --method deeplift")) ||
        ((o.lrp_rule || o.lrp_epsilon > 0 || o.lrp_gamma > 0) &&
         !(kind == M_ATTRIBUTION && at == KDC_ATTR_LRP) &&
         cli_error("--lrp-rule, --lrp-epsilon and --lrp-gamma apply to --method lrp")) ||
        (o.n_layers > KDC_CAM_MAX_LAYERS &&
         cli_error("at most %d --layer for a CAM", KDC_CAM_MAX_LAYERS)) ||
        ((io.annotate || io.heatmap_only) && kind != M_CAM &&
         cli_error("--annotate and --heatmap-only apply to CAM methods")) ||
        (o.input_npy && (io.recursive || io.skip_existing) &&
         cli_error("-r and --skip-existing apply to image inputs, not --input-npy"))) {
        free(rest);
        return 2;
    }
    if (kind == M_CAM)
        method = kdc_cam_method_name(cam); /* canonical spelling in file names */
    if (!o.out_dir)
        o.out_dir = ".";
    if (!o.input_npy &&
        (rc = cli_inputs_collect((const char *const *)o.images, o.n_images, io.recursive, &in)))
        goto out;
    if ((rc = cli_load_model(&o, &m)))
        goto out;
    const int det = cli_is_detector(m);
    int level = -1;
    if (!det && (o.level || o.has_box || o.channel >= 0 || o.det_short)) {
        rc = cli_error("--level, --box, --channel and --det-size apply to detection backbones "
                       "(-m resnet50-fpn ...)");
        goto out;
    }
    if (o.detection_box && o.detection < 0) {
        rc = cli_error("--detection-box adds to the target of --detection K: give --detection");
        goto out;
    }
    if (o.detection >= 0) {
        kdc_head_info hi;
        kdc_model_head(m, &hi);
        if (hi.kind == KDC_HEAD_NONE) {
            rc = cli_error("--detection needs a detector with a head (a RetinaNet); %s has none",
                           kdc_model_arch(m));
            goto out;
        }
        if (o.level || o.has_box || o.channel >= 0 || o.energy) {
            rc = cli_error("--detection is the target: --level, --box, --channel and --energy "
                           "do not apply");
            goto out;
        }
    }
    if (det && (o.cls >= 0 || tgt.kind != CLI_TARGET_OWN || o.score_prob)) {
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
    kdc_run_options ro = {.threads = o.threads};
    if ((st = kdc_run_create(m, &ro, &run))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    cam_ctx cx = {.o = &o, .io = &io, .m = m, .run = run, .pp = &pp, .layers = layers,
                  .nlayers = nlayers, .kind = kind, .det = det, .level = level, .cam = cam,
                  .at = at, .method = method, .tgt = &tgt};
    if (o.input_npy) {
        /* one preprocessed array: one batch, named <array stem>_<index> */
        if ((rc = det ? cli_load_det_batch(&o, m, &input, &n, &h, &w, &crops, &scales, NULL)
                      : cli_load_batch(&o, m, NULL, &input, &n, &h, &w, &crops)))
            goto out;
        names = calloc((size_t)n, sizeof *names);
        srcs = calloc((size_t)n, sizeof *srcs);
        if (!names || !srcs) {
            rc = cli_error("out of memory");
            goto out;
        }
        char base[200];
        stem_of(o.input_npy, base, sizeof base);
        for (int b = 0; b < n && !rc; b++) {
            names[b] = malloc(256);
            srcs[b] = malloc(4200);
            if (!names[b] || !srcs[b]) {
                rc = cli_error("out of memory");
                break;
            }
            snprintf(names[b], 256, "%s_%d", base, b);
            snprintf(srcs[b], 4200, "%s[%d]", o.input_npy, b);
        }
        if (!rc)
            rc = cam_batch(&cx, input, n, h, w, crops, scales, NULL, names, srcs);
        for (int b = 0; b < n; b++) {
            free(names[b]);
            free(srcs[b]);
        }
        goto out;
    }
    /* images: in batches of --batch, skipping finished ones with --skip-existing */
    todo = malloc((size_t)in.n * sizeof *todo);
    names = malloc((size_t)io.batch * sizeof *names);
    srcs = malloc((size_t)io.batch * sizeof *srcs);
    bsizes = malloc((size_t)io.batch * 2 * sizeof *bsizes);
    if (!todo || !names || !srcs || !bsizes) {
        rc = cli_error("out of memory");
        goto out;
    }
    int ntodo = 0;
    for (int i = 0; i < in.n; i++)
        if (!io.skip_existing || !is_done(&cx, in.v[i].name))
            todo[ntodo++] = &in.v[i];
    if (io.skip_existing)
        fprintf(stderr, "kdcam cam: %d of %d images already done, %d to do\n", in.n - ntodo,
                in.n, ntodo);
    cli_progress prog;
    cli_progress_start(&prog, "kdcam cam", ntodo, io.progress_every);
    for (int i0 = 0; i0 < ntodo && !rc; i0 += io.batch) {
        const int k = ntodo - i0 < io.batch ? ntodo - i0 : io.batch;
        if ((rc = cli_inputs_load(&o, &io, m, NULL, todo + i0, k, &input, &h, &w, &crops,
                                  det ? &scales : NULL, bsizes)))
            break;
        for (int b = 0; b < k; b++) {
            names[b] = todo[i0 + b]->name;
            srcs[b] = todo[i0 + b]->path;
        }
        rc = cam_batch(&cx, input, k, h, w, crops, scales, bsizes, names, srcs);
        cli_free_crops(crops, k);
        crops = NULL;
        free(input);
        input = NULL;
        free(scales);
        scales = NULL;
        if (!rc)
            cli_progress_update(&prog, i0 + k, 0);
    }
    if (!rc && ntodo > 0)
        cli_progress_update(&prog, ntodo, 1);
    n = 0;
out:
    free(todo);
    free(names);
    free(srcs);
    free(scales);
    free(bsizes);
    cli_free_crops(crops, n);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    cli_inputs_free(&in);
    free(rest);
    return rc;
}
