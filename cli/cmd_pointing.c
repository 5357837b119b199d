/* cmd_pointing.c - kdcam pointing: scores models' heatmaps against the known
 * object boxes of a `kdcam shapes` folder. Per model: top-1 accuracy, the
 * pointing game (the map's maximum inside the box), the share of the map's
 * energy inside the box, and the agreement of each model's maps with the
 * first model's (the teacher's): mean Pearson correlation and mean IoU of
 * the top-20% regions, as `kdcam compare` reports them per image, and the
 * share of images whose top-1 class is the teacher's. Beside the models,
 * two baselines that ignore the images: the pointing game of a map that
 * always peaks at the image centre, and of the best such fixed pixel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char *pointing_usage =
    "usage: kdcam pointing --model NAME=[ARCH:]WEIGHTS [--model ...]... [--method M]\n"
    "                      [--layer L] [--limit N] [--batch B] [-t N] [--json] DIR\n"
    "Scores each model's heatmaps against the object boxes of DIR, a folder written\n"
    "by `kdcam shapes` (DIR/labels.json and its images). The first model is the\n"
    "teacher. Per model: accuracy (top-1 class = labelled class), pointing (share of\n"
    "images whose map maximum, the first in row-major order, lies inside the box),\n"
    "energy_in_box (mean share of the map's mass inside the box), and against the\n"
    "teacher's maps of the same images: pearson_vs_teacher (mean Pearson r) and\n"
    "iou20_vs_teacher (mean IoU of the top-20% regions), agree_top1 (share of images\n"
    "whose top-1 class is the teacher's top-1). Two baselines score a map that\n"
    "ignores the image: centre (always peaks at pixel (w/2, h/2)) and best fixed\n"
    "point (the one pixel that lies in the most boxes of these images: the best any\n"
    "fixed point can score here), both by the pointing game's rule for the box\n"
    "(x0 <= x < x1, y0 <= y < y1). The CAM targets each model's own top-1 class\n"
    "unless --target says otherwise. Images are fed at their own size (no resize,\n"
    "no crop), each model with its own normalisation, so the boxes apply to the\n"
    "maps as they are.\n"
    "\n"
    "      --model SPEC    NAME=[ARCH:]WEIGHTS as for `kdcam compare`; repeatable\n"
    "      --method M      CAM method (default gradcam; see `kdcam cam --help`)\n"
    "  -l, --layer L       CAM layer for every model (default: each model's last\n"
    "                      stage, layer4 or model.13)\n"
    "      --target T      the class every map explains: own (default), teacher (the\n"
    "                      first model's top-1), label (labels.json's class), or a\n"
    "                      class index or name (-c C is the same); accuracy is top-1\n"
    "      --limit N       score the first N images of DIR only (default all)\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n"
    "      --batch B       images per pass (default 16)\n"
    "  -t, --threads N     worker threads (default 1)\n"
    "      --json          one JSON object per model: name, arch, layer, method,\n"
    "                      target, images, accuracy, pointing, energy_in_box,\n"
    "                      pearson_vs_teacher, iou20_vs_teacher, agree_top1 (the\n"
    "                      last three null for the teacher); then one per baseline:\n"
    "                      baseline (centre, best_fixed_point), x, y, images,\n"
    "                      pointing\n"
    "      --eps E, --act relu|relu6, --allow-unused, --prefix P, --key K, --kernels K\n"
    "                      apply to every model\n";

typedef cli_item pt_image; /* dataset.c reads labels.json */

typedef struct pt_model {
    cli_model_spec spec;
    kdc_model *m;
    kdc_run *run;
    int layer;
    const char *layer_name;
    kdc_preprocess pp;
    int made_h, made_w; /* the crop of the model's own preprocessing */
    float *map;    /* batch x h x w of the current batch */
    double correct, hits, energy, pearson, iou, agree; /* agree: top-1 = teacher's */
} pt_model;

/* The model's classes must be the dataset's, in the same order. */
static int check_classes(const pt_model *pm, char **classes, int nc)
{
    int K = kdc_model_num_classes(pm->m);
    if (K == 0)
        return cli_error("%s: a detection backbone has no classes to score", pm->spec.name);
    if (K != nc)
        return cli_error("%s: the model has %d classes, the dataset %d", pm->spec.name, K, nc);
    for (int c = 0; c < K; c++) {
        const char *name = kdc_model_class_name(pm->m, c);
        if (name && strcmp(name, classes[c]))
            return cli_error("%s: class %d is \"%s\" in the model, \"%s\" in the dataset",
                             pm->spec.name, c, name, classes[c]);
    }
    return 0;
}

/* Loads and normalises images [i0, i0 + n) for one model into x
 * (n x 3 x h x w); every image must be h x w. */
static int load_batch(const cli_opts *o, const char *dir, const pt_image *ims, int i0, int n,
                      const pt_model *pm, kdc_image **pics, float *x, int h, int w)
{
    for (int b = 0; b < n; b++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, ims[i0 + b].file);
        kdc_status st;
        if (!pics[b] && (st = cli_image_load(o, path, &pics[b])))
            return cli_lib_error(st, NULL);
        if (pics[b]->width != w || pics[b]->height != h)
            return cli_error("%s: %dx%d, but the first image is %dx%d (all images of a folder "
                             "must have one size)", path, pics[b]->width, pics[b]->height, w, h);
        if ((st = kdc_preprocess_image(pics[b], &pm->pp, x + (size_t)b * 3 * h * w, NULL)))
            return cli_lib_error(st, path);
    }
    return 0;
}

static void print_json_num(double v, int valid)
{
    if (valid)
        printf("%.6f", v);
    else
        printf("null");
}

int cmd_pointing(int argc, char **argv)
{
    cli_opts o;
    pt_model pms[CLI_MAX_MODELS];
    pt_image *ims = NULL;
    char **classes = NULL;
    int n_images = 0, n_listed = 0, n_classes = 0, batch = 16, rc;
    kdc_cam_method method = KDC_CAM_GRADCAM;
    kdc_image **pics = NULL;
    float *x = NULL;
    int *tcls = NULL; /* --target: (4 x batch) classes, top-1, labels, teacher's top-1 */

    /* --batch is this command's own option */
    char **args = malloc((size_t)(argc + 1) * sizeof *args);
    int nargs = 0;
    if (!args)
        return cli_error("out of memory");
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--batch")) {
            char *end;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end || v < 1 || v > 1024) {
                free(args);
                return cli_error("--batch: expected a number in 1..1024"), 2;
            }
            batch = (int)v;
            i++;
            continue;
        }
        args[nargs++] = argv[i];
    }
    args[nargs] = NULL;
    memset(pms, 0, sizeof pms);
    rc = cli_parse(nargs, args, (CLI_MODEL_FLAGS & ~OPT_WEIGHTS & ~OPT_ARCH) | OPT_MODELS |
                   OPT_IMAGES | OPT_CAM | OPT_LAYER | OPT_JSON | OPT_LIMIT | OPT_CLASS |
                   OPT_TARGET, pointing_usage, &o);
    free(args);
    if (rc)
        return rc < 0 ? 2 : 0;
    cli_target tgt;
    char tdesc[160];
    if (cli_target_from_opts(&o, &tgt))
        return 2;
    cli_target_describe(&tgt, tdesc, sizeof tdesc);
    if (o.n_models < 1)
        return cli_error("no --model given (see --help)"), 2;
    if (o.n_images != 1)
        return cli_error("expected one folder written by `kdcam shapes`, got %d arguments",
                         o.n_images), 2;
    if (o.guided || o.npy || o.on_original || o.feature || o.labels)
        return cli_error("--guided, --npy, --on-original, --feature and --labels do not apply "
                         "to `kdcam pointing`"), 2;
    if (o.n_layers > 1)
        return cli_error("pointing takes one --layer"), 2;
    if (o.method && kdc_cam_method_parse(o.method, &method))
        return cli_lib_error(KDC_ERR_INVALID_ARGUMENT, "--method"), 2;
    for (int i = 0; i < o.n_models; i++)
        if (cli_parse_model_spec(o.models[i], &pms[i].spec))
            return 2;
    const char *dir = o.images[0];
    if ((rc = cli_read_shapes_labels(dir, &ims, &n_listed, &classes, &n_classes)))
        return rc;
    n_images = n_listed;
    if (o.limit > 0 && o.limit < n_images)
        n_images = o.limit;

    kdc_status st;
    for (int i = 0; i < o.n_models && !rc; i++) {
        pt_model *pm = &pms[i];
        cli_opts mo = o;
        mo.arch = pm->spec.arch[0] ? pm->spec.arch : NULL;
        mo.weights = pm->spec.weights;
        int none[1], use; /* --target checked before any image is read */
        if ((rc = cli_load_model(&mo, &pm->m)) || (rc = check_classes(pm, classes, n_classes)) ||
            (rc = cli_target_classes(&tgt, pm->m, pm->spec.name, i,
                                     o.n_models > 1 ? none : NULL, none, 0, none, &use)))
            break;
        if (o.n_layers) {
            if ((st = kdc_model_find_layer(pm->m, o.layers[0], &pm->layer))) {
                rc = cli_lib_error(st, pm->spec.name);
                break;
            }
            pm->layer_name = o.layers[0];
        } else if ((rc = cli_default_cam_layer(pm->m, &pm->layer, &pm->layer_name))) {
            break;
        }
        kdc_model_preprocess(pm->m, &pm->pp);
        pm->made_h = pm->pp.crop_h;
        pm->made_w = pm->pp.crop_w;
        pm->pp.resize_short = 0; /* the boxes are in the images' own pixels */
        pm->pp.crop_h = pm->pp.crop_w = 0;
        kdc_run_options ro = {.threads = o.threads};
        if ((st = kdc_run_create(pm->m, &ro, &pm->run)))
            rc = cli_lib_error(st, pm->spec.name);
    }
    /* the image size, from the first image */
    int h = 0, w = 0;
    pics = calloc((size_t)batch, sizeof *pics);
    if (!rc && !pics)
        rc = cli_error("out of memory");
    if (!rc) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, ims[0].file);
        if ((st = cli_image_load(&o, path, &pics[0])))
            rc = cli_lib_error(st, NULL);
        else {
            w = pics[0]->width;
            h = pics[0]->height;
            /* scored as they are, but a model trained at another size points
             * differently (the grid of its last stage moves): say so */
            for (int i = 0; i < o.n_models; i++)
                if (pms[i].made_h != h || pms[i].made_w != w)
                    fprintf(stderr, "kdcam: note: %s expects %dx%d images (its preprocessing), "
                            "%s holds %dx%d; scored at %dx%d\n", pms[i].spec.name,
                            pms[i].made_w, pms[i].made_h, dir, w, h, w, h);
        }
    }
    const size_t plane = (size_t)h * w;
    if (!rc) {
        int ok = (x = malloc((size_t)batch * 3 * plane * sizeof *x)) != NULL;
        ok &= (tcls = malloc((size_t)batch * 4 * sizeof *tcls)) != NULL;
        for (int i = 0; i < o.n_models; i++)
            ok &= (pms[i].map = malloc((size_t)batch * plane * sizeof(float))) != NULL;
        if (!ok)
            rc = cli_error("out of memory");
    }
    for (int i0 = 0; i0 < n_images && !rc; i0 += batch) {
        const int n = n_images - i0 < batch ? n_images - i0 : batch;
        for (int i = 0; i < o.n_models && !rc; i++) {
            pt_model *pm = &pms[i];
            kdc_cam_result *res = NULL;
            if ((rc = load_batch(&o, dir, ims, i0, n, pm, pics, x, h, w)))
                break;
            int *cls = tcls, *top1 = tcls + batch, *labs = tcls + 2 * batch;
            int *teacher = tcls + 3 * batch, use = 0;
            if (tgt.kind != CLI_TARGET_OWN) { /* cli/target.c; accuracy stays top-1 */
                for (int b = 0; b < n; b++)
                    labs[b] = ims[i0 + b].cls;
                if ((rc = cli_top1(pm->run, pm->m, x, n, h, w, top1)) ||
                    (rc = cli_target_classes(&tgt, pm->m, pm->spec.name, i,
                                             o.n_models > 1 ? teacher : NULL, labs, n, cls,
                                             &use)))
                    break;
            }
            kdc_cam_options co = {.method = method, .layers = &pm->layer, .nlayers = 1,
                                  .target = {.kind = KDC_TARGET_LOGIT,
                                             .classes = use ? cls : NULL}};
            if ((st = kdc_cam_compute(pm->run, x, n, h, w, &co, &res))) {
                rc = cli_lib_error(st, pm->spec.name);
                break;
            }
            if (tgt.kind == CLI_TARGET_OWN || !use)
                memcpy(top1, res->classes, (size_t)n * sizeof *top1);
            if (i == 0)
                memcpy(teacher, top1, (size_t)n * sizeof *teacher);
            memcpy(pm->map, res->map, (size_t)n * plane * sizeof(float));
            for (int b = 0; b < n; b++) {
                const pt_image *im = &ims[i0 + b];
                const float *mp = pm->map + b * plane;
                pm->correct += top1[b] == im->cls;
                pm->agree += top1[b] == teacher[b];
                pm->hits += kdc_map_pointing(mp, w, h, im->box);
                pm->energy += kdc_map_energy_in_box(mp, w, h, im->box);
                pm->pearson += kdc_map_pearson(mp, pms[0].map + b * plane, plane);
                pm->iou += kdc_map_iou_top(mp, pms[0].map + b * plane, plane, 0.2);
            }
            kdc_cam_result_destroy(res);
        }
        for (int b = 0; b < n; b++) {
            kdc_image_destroy(pics[b]);
            pics[b] = NULL;
        }
        if (!rc && !o.json && n_images >= 4 * batch && (i0 / batch) % 8 == 7)
            fprintf(stderr, "kdcam: pointing: %d of %d images\n", i0 + n, n_images);
    }
    /* the baselines: fixed points, scored on the same boxes by the same rule */
    int cx = w / 2, cy = h / 2, bx = 0, by = 0;
    double centre = 0.0, best = 0.0;
    if (!rc) {
        int(*boxes)[4] = malloc((size_t)n_images * sizeof *boxes);
        if (!boxes)
            rc = cli_error("out of memory");
        for (int i = 0; i < n_images && !rc; i++)
            memcpy(boxes[i], ims[i].box, sizeof boxes[i]);
        if (!rc) {
            centre = kdc_boxes_point_share((const int(*)[4])boxes, n_images, cx, cy);
            if ((st = kdc_boxes_best_point((const int(*)[4])boxes, n_images, w, h, &bx, &by,
                                           &best)))
                rc = cli_lib_error(st, NULL);
        }
        free(boxes);
    }
    if (!rc) {
        if (!o.json) {
            printf("%d images of %s, %s at each model's %s, target %s\n", n_images, dir,
                   kdc_cam_method_name(method), o.n_layers ? o.layers[0] : "last stage", tdesc);
            printf("%-28s %-12s %-9s %8s %8s %13s %10s %9s %10s\n", "model", "arch", "layer",
                   "accuracy", "pointing", "energy_in_box", "pearson_vs", "iou20_vs",
                   "agree_top1");
        }
        for (int i = 0; i < o.n_models; i++) {
            const pt_model *pm = &pms[i];
            const double N = n_images;
            if (o.json) {
                printf("{\"name\":");
                cli_json_string(pm->spec.name);
                printf(",\"arch\":\"%s\",\"layer\":", kdc_model_arch(pm->m));
                cli_json_string(pm->layer_name);
                printf(",\"target\":");
                cli_json_string(tdesc);
                printf(",\"method\":\"%s\",\"images\":%d,\"accuracy\":%.6f,\"pointing\":%.6f,"
                       "\"energy_in_box\":%.6f,\"pearson_vs_teacher\":",
                       kdc_cam_method_name(method), n_images, pm->correct / N, pm->hits / N,
                       pm->energy / N);
                print_json_num(pm->pearson / N, i > 0);
                printf(",\"iou20_vs_teacher\":");
                print_json_num(pm->iou / N, i > 0);
                printf(",\"agree_top1\":");
                print_json_num(pm->agree / N, i > 0);
                printf("}\n");
            } else if (i == 0) {
                printf("%-28.28s %-12s %-9s %8.3f %8.3f %13.3f %10s %9s %10s\n", pm->spec.name,
                       kdc_model_arch(pm->m), pm->layer_name, pm->correct / N, pm->hits / N,
                       pm->energy / N, "(teacher)", "", "");
            } else {
                printf("%-28.28s %-12s %-9s %8.3f %8.3f %13.3f %10.3f %9.3f %10.3f\n",
                       pm->spec.name, kdc_model_arch(pm->m), pm->layer_name, pm->correct / N,
                       pm->hits / N, pm->energy / N, pm->pearson / N, pm->iou / N,
                       pm->agree / N);
            }
        }
        if (o.json) {
            printf("{\"baseline\":\"centre\",\"x\":%d,\"y\":%d,\"images\":%d,"
                   "\"pointing\":%.6f}\n", cx, cy, n_images, centre);
            printf("{\"baseline\":\"best_fixed_point\",\"x\":%d,\"y\":%d,\"images\":%d,"
                   "\"pointing\":%.6f}\n", bx, by, n_images, best);
        } else {
            char name[64];
            snprintf(name, sizeof name, "centre (%d, %d)", cx, cy);
            printf("%-28.28s %-12s %-9s %8s %8.3f\n", name, "(baseline)", "", "", centre);
            snprintf(name, sizeof name, "best fixed point (%d, %d)", bx, by);
            printf("%-28.28s %-12s %-9s %8s %8.3f\n", name, "(baseline)", "", "", best);
        }
    }
    if (pics)
        for (int b = 0; b < batch; b++)
            kdc_image_destroy(pics[b]);
    free(pics);
    free(x);
    free(tcls);
    for (int i = 0; i < o.n_models; i++) {
        kdc_run_destroy(pms[i].run);
        kdc_model_destroy(pms[i].m);
        free(pms[i].map);
    }
    for (int i = 0; i < n_listed; i++)
        free(ims[i].file);
    free(ims);
    cli_free_labels(classes, n_classes);
    return rc;
}
