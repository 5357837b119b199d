/* cmd_detect.c - kdcam detect: a RetinaNet detector's detections on images
 * (kdc_detect), one image at a time: text, JSON lines, COCO results and
 * pictures with the boxes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "figure.h"

static const char *detect_usage =
    "usage: kdcam detect -w WEIGHTS [options] IMAGE...\n"
    "Runs a RetinaNet detector (a ResNet-FPN body with torchvision's RetinaNetHead or\n"
    "mmdetection's RetinaHead, found from the keys) and prints each image's\n"
    "detections, best first: box x0,y0,x1,y1 in the image's pixels, score, class,\n"
    "and the FPN level, anchor and cell that produced it (the CAM target of\n"
    "`kdcam cam --detection K`). Post-processing as the framework's test mode\n"
    "(docs/fpn.md): score > 0.05, 1000 best per level, class-wise NMS at IoU 0.5,\n"
    "300 (torchvision) or 100 (mmdetection) per image.\n"
    "\n"
    "  -w, --weights FILE  the detector's checkpoint (.pth, .pt) or .safetensors\n"
    "      --key K, --prefix P, --allow-unused, --eps E, --kernels K  as for\n"
    "                      `kdcam layers`\n"
    "  -t, --threads N     worker threads (default 1)\n"
    "      --det-size S[,M]  shorter side S, longer at most M (default 800,1333)\n"
    "      --score-thresh S  keep scores above S (default 0.05)\n"
    "      --max-dets N    at most N detections per image (default 300 / 100)\n"
    "      --anchor-size N the P3 anchors' base size in pixels (default: the\n"
    "                      weights' metadata kdcam.detect anchor=N, else 32, both\n"
    "                      frameworks' default; torchvision: sizes N * 2^(L-3) per\n"
    "                      level, mmdetection: octave_base_scale N / 8)\n"
    "      --det-style X   auto (the head's framework) | tv | mm: post-processing\n"
    "      --json          one JSON line per image instead of text\n"
    "  -o, --out DIR       also write DIR/NAME.png (the image with its boxes and\n"
    "                      labels) and DIR/results.json (COCO results format,\n"
    "                      category_id = class + 1; image_id = the image's 0-based\n"
    "                      position, or with --coco its id there)\n"
    "      --coco FILE     a COCO instances file (e.g. from kdcam shapes --detection)\n"
    "                      holding the images: results.json uses its image ids, found\n"
    "                      by file name\n"
    "  -v, --verbose       list the tensors of the file that were ignored\n"
    "  -h, --help          this help\n";

/* One colour per class, readable on photos. */
static void class_colour(int k, unsigned char rgb[3])
{
    static const unsigned char tab[8][3] = {{230, 25, 75},  {60, 180, 75},  {255, 225, 25},
                                            {0, 130, 200},  {245, 130, 48}, {145, 30, 180},
                                            {70, 240, 240}, {240, 50, 230}};
    memcpy(rgb, tab[k % 8], 3);
}

static const char *class_name(const kdc_model *m, int k, char *buf, size_t size)
{
    const char *n = kdc_model_class_name(m, k);
    if (n)
        return n;
    snprintf(buf, size, "class %d", k);
    return buf;
}

/* DIR/NAME.png: the image, each detection's box and "name score". */
static int draw(const char *dir, const char *src, const kdc_image *img, const kdc_model *m,
                const kdc_detection *d, int n)
{
    cli_fig *f = cli_fig_create(img->width, img->height);
    if (!f)
        return 1;
    int rc = cli_fig_image(f, 0, 0, img);
    const int line = img->width >= 400 ? 2 : 1;
    static const unsigned char white[3] = {255, 255, 255};
    for (int i = n - 1; i >= 0 && !rc; i--) { /* the best on top */
        unsigned char c[3];
        char buf[32];
        class_colour(d[i].label, c);
        const int x0 = (int)d[i].box[0], y0 = (int)d[i].box[1];
        const int w = (int)(d[i].box[2] + 0.5f) - x0, h = (int)(d[i].box[3] + 0.5f) - y0;
        rc = cli_fig_rect(f, x0, y0, w > 1 ? w : 1, h > 1 ? h : 1, line, c);
        /* the label in white on the class colour, above the box (inside it
         * at the top edge) */
        char label[64];
        int tw, th;
        snprintf(label, sizeof label, "%s %.2f", class_name(m, d[i].label, buf, sizeof buf),
                 (double)d[i].score);
        cli_fig_text_size(label, 1, &tw, &th);
        const int ty = y0 - th - 2 >= 0 ? y0 - th - 2 : y0;
        if (!rc)
            rc = cli_fig_rect(f, x0, ty, tw + 4, th + 2, (th + 3) / 2, c);
        if (!rc)
            rc = cli_fig_text(f, x0 + 2, ty + 1, 1, 0, white, "%s", label);
    }
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    char path[4200];
    snprintf(path, sizeof path, "%s/%.*s.png", dir, (int)strcspn(base, "."), base);
    if (!rc)
        rc = cli_fig_save_png(f, 1, path);
    cli_fig_destroy(f);
    return rc;
}

static void print_text(const char *src, const kdc_model *m, const kdc_detection *d, int n)
{
    char buf[32];
    printf("%s: %d detection%s\n", src, n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++)
        printf("  %3d  %-12s %.4f  %8.2f %8.2f %8.2f %8.2f  p%d anchor %d cell %d,%d\n", i,
               class_name(m, d[i].label, buf, sizeof buf), (double)d[i].score,
               (double)d[i].box[0], (double)d[i].box[1], (double)d[i].box[2],
               (double)d[i].box[3], d[i].level, d[i].anchor, d[i].y, d[i].x);
}

static void print_json(const char *src, const kdc_model *m, const kdc_detection *d, int n)
{
    char buf[32];
    fputs("{\"input\":", stdout);
    cli_json_string(src);
    fputs(",\"detections\":[", stdout);
    for (int i = 0; i < n; i++) {
        printf("%s{\"box\":[%.9g,%.9g,%.9g,%.9g],\"score\":%.9g,\"logit\":%.9g,\"label\":%d,"
               "\"name\":",
               i ? "," : "", (double)d[i].box[0], (double)d[i].box[1], (double)d[i].box[2],
               (double)d[i].box[3], (double)d[i].score, (double)d[i].logit, d[i].label);
        cli_json_string(class_name(m, d[i].label, buf, sizeof buf));
        printf(",\"level\":%d,\"anchor\":%d,\"y\":%d,\"x\":%d}", d[i].level, d[i].anchor,
               d[i].y, d[i].x);
    }
    fputs("]}\n", stdout);
}

/* The id in coco of the image whose file_name is path's base name. */
static int coco_image_id(const kdc_coco *coco, const char *file, const char *path,
                         long long *id)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t j = 0; j < coco->nimages; j++)
        if (!strcmp(coco->images[j].file_name, base)) {
            *id = (long long)coco->images[j].id;
            return 0;
        }
    return cli_error("%s: no image with file_name \"%s\" in %s", path, base, file);
}

int cmd_detect(int argc, char **argv)
{
    cli_opts o;
    int rc = cli_parse(argc, argv,
                       CLI_MODEL_FLAGS | OPT_JSON | OPT_IMAGES | OPT_OUT | OPT_DET, detect_usage,
                       &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!o.weights)
        return cli_error("missing -w WEIGHTS (see --help)"), 2;
    if (o.n_images < 1)
        return cli_error("no images given (see --help)"), 2;
    if (o.level || o.has_box || o.channel >= 0 || o.detection >= 0)
        return cli_error("--level, --box, --channel and --detection are for kdcam cam"), 2;
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    kdc_coco *coco = NULL;
    FILE *res = NULL;
    char rpath[4200] = "", rtmp[4300] = "";
    if ((rc = cli_load_model(&o, &m)))
        return rc;
    kdc_head_info hi;
    kdc_model_head(m, &hi);
    if (hi.kind == KDC_HEAD_NONE) {
        rc = cli_error("%s: %s has no detection head (kdcam detect needs a RetinaNet: "
                       "head.classification_head.* or bbox_head.retina_cls.* tensors)",
                       o.weights, kdc_model_arch(m));
        goto out;
    }
    int keep[2 * KDC_HEAD_MAX_LEVELS];
    for (int l = 0; l < hi.num_levels; l++) {
        keep[2 * l] = hi.cls_layer[l];
        keep[2 * l + 1] = hi.reg_layer[l];
    }
    kdc_detect_options dopt;
    kdc_detect_options_init(&dopt, (kdc_detect_style)o.det_style);
    if (o.score_thresh >= 0.0f)
        dopt.score_thresh = o.score_thresh;
    dopt.max_dets = o.max_dets;
    dopt.anchor_size = o.anchor_size;
    kdc_det_preprocess pp;
    kdc_model_det_preprocess(m, &pp);
    if (o.det_short) {
        pp.short_side = o.det_short;
        pp.max_side = o.det_max ? o.det_max : (o.det_short * 1333 + 799) / 800;
    }
    kdc_run_options ro = {.threads = o.threads};
    kdc_status st = kdc_run_create(m, &ro, &run);
    if (st) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    if (o.out_dir) {
        if ((rc = cli_prepare_out_dir(o.out_dir)))
            goto out;
        snprintf(rpath, sizeof rpath, "%s/results.json", o.out_dir);
        snprintf(rtmp, sizeof rtmp, "%s/.results.json.tmp", o.out_dir);
        if (!(res = fopen(rtmp, "w"))) {
            rc = cli_error("%s: cannot create: %s", rtmp, strerror(errno));
            goto out;
        }
        fputc('[', res);
    }
    if (o.coco && !o.out_dir) {
        rc = cli_error("--coco gives the image ids of -o DIR/results.json: add -o DIR");
        goto out;
    }
    if (o.coco && (st = kdc_coco_read(o.coco, &coco))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    int first = 1;
    for (int i = 0; i < o.n_images && !rc; i++) {
        kdc_image *img = NULL;
        float *x = NULL;
        kdc_detection *d = NULL;
        int n = 0, h, w, ch, cw;
        double scale;
        long long image_id = i;
        if (coco && (rc = coco_image_id(coco, o.coco, o.images[i], &image_id)))
            break;
        if ((st = cli_image_load(&o, o.images[i], &img)) ||
            (st = kdc_preprocess_detection(img, &pp, &x, &h, &w, &ch, &cw, &scale)) ||
            (st = kdc_run_forward(run, x, 1, h, w, keep, 2 * hi.num_levels)) ||
            (st = kdc_detect(run, m, 0, &dopt, ch, cw, img->height, img->width, &d, &n))) {
            rc = cli_lib_error(st, o.images[i]);
        } else {
            if (o.json)
                print_json(o.images[i], m, d, n);
            else
                print_text(o.images[i], m, d, n);
            if (o.out_dir)
                rc = draw(o.out_dir, o.images[i], img, m, d, n);
            for (int k = 0; res && k < n; k++, first = 0)
                fprintf(res, "%s\n{\"image_id\": %lld, \"category_id\": %d, \"bbox\": [%.9g, "
                             "%.9g, %.9g, %.9g], \"score\": %.9g}",
                        first ? "" : ",", image_id, d[k].label + 1, (double)d[k].box[0],
                        (double)d[k].box[1], (double)(d[k].box[2] - d[k].box[0]),
                        (double)(d[k].box[3] - d[k].box[1]), (double)d[k].score);
        }
        kdc_free(d);
        kdc_free(x);
        kdc_image_destroy(img);
    }
    if (res) {
        fputs("\n]\n", res);
        const int werr = ferror(res);
        if (fclose(res) || werr) {
            if (!rc)
                rc = cli_error("%s: write failed", rtmp);
        } else if (!rc && rename(rtmp, rpath)) {
            rc = cli_error("%s: cannot write: %s", rpath, strerror(errno));
        }
        res = NULL;
        if (rc)
            remove(rtmp);
    }
out:
    if (res) {
        fclose(res);
        remove(rtmp);
    }
    kdc_coco_free(coco);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return rc;
}
