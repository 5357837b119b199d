/* cmd_shapes.c - kdcam shapes: writes images of the procedural shapes
 * dataset (kdc_shapes_render) and their labels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char *shapes_usage =
    "usage: kdcam shapes -n N --seed S -o DIR [--size PX] [--start I] [--masks]\n"
    "                    [--style hard|classic | --detection]\n"
    "Writes N images of the procedural shapes dataset as DIR/IIIIII.png (I = image\n"
    "index) and DIR/labels.json with each image's class and bounding box. Each\n"
    "image holds one object of one of 10 shape classes on a cluttered background\n"
    "with distractors that belong to no class. Image I of seed S (and style) is\n"
    "always the same, so any subset can be regenerated with --start.\n"
    "\n"
    "  -n N           number of images (1..10000000)\n"
    "      --seed S   dataset seed (0..2^64-1)\n"
    "  -o, --out DIR  output directory (created if missing)\n"
    "      --size PX  image side in pixels (64..1024, default 192: the size the\n"
    "                 bundled demo models were trained at)\n"
    "      --start I  index of the first image (default 0)\n"
    "      --masks    also write DIR/IIIIII_mask.png (white where the object is)\n"
    "      --style ST hard (default): the object 20-45% of the side across,\n"
    "                 anywhere, with 1-3 decoys (shapes of no class: long ellipse,\n"
    "                 arrow, L, T, half disk, oval ring) outside its box;\n"
    "                 classic: the object 48-68% of the side, no decoys, the\n"
    "                 images older versions wrote (the bundled demo models were\n"
    "                 warmed up on these)\n"
    "      --detection  detection images instead: 2-6 objects each, one in three\n"
    "                 small, that may overlap (the larger below), 0-2 decoys, and\n"
    "                 DIR/instances.json in COCO's format (images; annotations with\n"
    "                 bbox [x, y, w, h] and area of the visible pixels, category_id\n"
    "                 1..10, iscrowd 0; categories), for kdcam eval and users' own\n"
    "                 COCO tools; image id = index, file IIIIII.png (no --masks)\n"
    "  -h, --help     this help\n"
    "\n"
    "labels.json: {\"seed\": S, \"size\": PX, \"style\": ST, \"classes\": [names],\n"
    "\"images\": [{\"file\", \"index\", \"class\", \"name\", \"box\": [x0, y0, x1, y1]\n"
    "(x1, y1 exclusive), \"style\", \"decoys\": [{\"kind\", \"box\"}] (empty for\n"
    "classic), \"mask\" (with --masks)}]}\n";

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Writes img as DIR/IIIIII.png (its name in file[40]) and destroys it. */
static int save_indexed_png(kdc_image *img, const char *dir, uint64_t idx, char *path,
                            size_t size, char file[40])
{
    snprintf(file, 40, "%06llu.png", (unsigned long long)idx);
    snprintf(path, size, "%s/%s", dir, file);
    kdc_status st = kdc_image_save_png(img, path);
    kdc_image_destroy(img);
    return st ? cli_lib_error(st, NULL) : 0;
}

/* Closes f and renames tmp to path; on any failure removes tmp. */
static int finish_file(FILE *f, const char *tmp, const char *path)
{
    const int werr = ferror(f);
    if (fclose(f) != 0 || werr) {
        remove(tmp);
        return cli_error("%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return cli_error("%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

/* --detection: the images, and DIR/instances.json streamed: the image
 * entries go to it as they are drawn, the annotations to a second
 * temporary file appended at the end, so memory does not grow with N. */
static int write_detection(const char *dir, uint64_t n, uint64_t seed, uint64_t start, int size)
{
    const size_t dl = strlen(dir);
    char *path = malloc(dl + 64), *tmp = malloc(dl + 64), *atmp = malloc(dl + 64);
    FILE *js = NULL, *an = NULL;
    int rc = 0;
    if (!path || !tmp || !atmp) {
        rc = cli_error("out of memory");
        goto done;
    }
    snprintf(tmp, dl + 64, "%s/.instances.json.tmp", dir);
    snprintf(atmp, dl + 64, "%s/.annotations.tmp", dir);
    if (!(js = fopen(tmp, "w")) || !(an = fopen(atmp, "w+"))) {
        rc = cli_error("%s: cannot create: %s", js ? atmp : tmp, strerror(errno));
        goto done;
    }
    fprintf(js, "{\"info\": {\"description\": \"kdcam shapes --detection\", \"seed\": %llu, "
                "\"size\": %d, \"version\": \"%s\"},\n\"categories\": [",
            (unsigned long long)seed, size, kdc_version());
    for (int c = 0; c < kdc_shapes_num_classes(); c++)
        fprintf(js, "%s{\"id\": %d, \"name\": \"%s\", \"supercategory\": \"shape\"}",
                c ? ", " : "", c + 1, kdc_shapes_class_name(c));
    fputs("],\n\"images\": [\n", js);
    int first_ann = 1;
    for (uint64_t k = 0; k < n; k++) {
        const uint64_t idx = start + k;
        kdc_image *img;
        kdc_shapes_objects ob;
        char file[40];
        kdc_status st = kdc_shapes_render_detection(seed, idx, size, &img, &ob, NULL);
        if (st) {
            rc = cli_lib_error(st, NULL);
            goto done;
        }
        if ((rc = save_indexed_png(img, dir, idx, path, dl + 64, file)))
            goto done;
        fprintf(js, "%s{\"id\": %llu, \"file_name\": \"%s\", \"width\": %d, \"height\": %d}",
                k ? ",\n" : "", (unsigned long long)idx, file, size, size);
        for (int j = 0; j < ob.n; j++, first_ann = 0) {
            const int *b = ob.box[j];
            fprintf(an, "%s{\"id\": %llu, \"image_id\": %llu, \"category_id\": %d, "
                        "\"bbox\": [%d, %d, %d, %d], \"area\": %d, \"iscrowd\": 0}",
                    first_ann ? "" : ",\n",
                    (unsigned long long)(idx * KDC_SHAPES_MAX_OBJECTS + (uint64_t)j + 1),
                    (unsigned long long)idx, ob.cls[j] + 1, b[0], b[1], b[2] - b[0],
                    b[3] - b[1], ob.area[j]);
        }
    }
    fputs("\n],\n\"annotations\": [\n", js);
    if (fflush(an) != 0 || ferror(an) || fseek(an, 0, SEEK_SET) != 0) {
        rc = cli_error("%s: write failed", atmp);
        goto done;
    }
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, an)) > 0)
        fwrite(buf, 1, got, js);
    if (ferror(an)) {
        rc = cli_error("%s: read failed", atmp);
        goto done;
    }
    fputs("\n]}\n", js);
    snprintf(path, dl + 64, "%s/instances.json", dir);
    rc = finish_file(js, tmp, path);
    js = NULL;
done:
    if (js) {
        fclose(js);
        remove(tmp);
    }
    if (an) {
        fclose(an);
        remove(atmp);
    }
    free(path);
    free(tmp);
    free(atmp);
    return rc;
}

int cmd_shapes(int argc, char **argv)
{
    uint64_t n = 0, seed = 0, start = 0, size = 192;
    int have_n = 0, have_seed = 0, masks = 0, detection = 0, have_style = 0;
    kdc_shapes_style style = KDC_SHAPES_HARD;
    const char *dir = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(a, "-n") || !strcmp(a, "--seed") || !strcmp(a, "-o") ||
                    !strcmp(a, "--out") || !strcmp(a, "--size") || !strcmp(a, "--start") ||
                    !strcmp(a, "--style");
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(shapes_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--masks")) {
            masks = 1;
            continue;
        }
        if (!strcmp(a, "--detection")) {
            detection = 1;
            continue;
        }
        if (!takes) {
            if (a[0] == '-')
                cli_error("unknown option '%s' (see --help)", a);
            else
                cli_error("unexpected argument '%s' (see --help)", a);
            return 2;
        }
        if (!v) {
            cli_error("option %s needs a value (see --help)", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "-n")) {
            if (parse_u64(v, 1, 10000000, &n)) {
                cli_error("-n: '%s' is not a number in 1..10000000", v);
                return 2;
            }
            have_n = 1;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, 0, UINT64_MAX, &seed)) {
                cli_error("--seed: '%s' is not a number in 0..18446744073709551615", v);
                return 2;
            }
            have_seed = 1;
        } else if (!strcmp(a, "--size")) {
            if (parse_u64(v, KDC_SHAPES_MIN_SIZE, KDC_SHAPES_MAX_SIZE, &size)) {
                cli_error("--size: '%s' is not a number in %d..%d", v, KDC_SHAPES_MIN_SIZE,
                          KDC_SHAPES_MAX_SIZE);
                return 2;
            }
        } else if (!strcmp(a, "--start")) {
            if (parse_u64(v, 0, 999999999999ULL, &start)) {
                cli_error("--start: '%s' is not a number in 0..999999999999", v);
                return 2;
            }
        } else if (!strcmp(a, "--style")) {
            have_style = 1;
            if (!strcmp(v, "hard"))
                style = KDC_SHAPES_HARD;
            else if (!strcmp(v, "classic"))
                style = KDC_SHAPES_CLASSIC;
            else {
                cli_error("--style: '%s' is not hard or classic", v);
                return 2;
            }
        } else {
            dir = v;
        }
    }
    if (!have_n)
        return cli_error("missing -n N (the number of images; see --help)"), 2;
    if (!have_seed)
        return cli_error("missing --seed S (see --help)"), 2;
    if (!dir)
        return cli_error("missing -o DIR (the output directory; see --help)"), 2;
    if (detection && (masks || have_style))
        return cli_error("--detection takes no %s (see --help)", masks ? "--masks" : "--style"),
               2;
    if (cli_prepare_out_dir(dir))
        return 1;
    if (detection)
        return write_detection(dir, n, seed, start, (int)size);

    const size_t dl = strlen(dir);
    char *path = malloc(dl + 64), *tmp = malloc(dl + 64);
    unsigned char *mask = masks ? malloc((size_t)size * (size_t)size) : NULL;
    kdc_image *mimg = NULL;
    FILE *js = NULL;
    int rc = 0;
    if (!path || !tmp || (masks && !mask)) {
        rc = cli_error("out of memory");
        goto done;
    }
    if (masks && kdc_image_create((int)size, (int)size, &mimg)) {
        rc = cli_lib_error(KDC_ERR_NO_MEMORY, NULL);
        goto done;
    }
    snprintf(path, dl + 64, "%s/labels.json", dir);
    snprintf(tmp, dl + 64, "%s/.labels.json.tmp", dir);
    if (!(js = fopen(tmp, "w"))) {
        rc = cli_error("%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    fprintf(js, "{\"seed\": %llu, \"size\": %d, \"style\": \"%s\", \"classes\": [",
            (unsigned long long)seed, (int)size, kdc_shapes_style_name(style));
    for (int c = 0; c < kdc_shapes_num_classes(); c++)
        fprintf(js, "%s\"%s\"", c ? ", " : "", kdc_shapes_class_name(c));
    fputs("],\n\"images\": [\n", js);

    for (uint64_t k = 0; k < n; k++) {
        const uint64_t idx = start + k;
        kdc_image *img;
        kdc_shape_info info;
        char file[40];
        kdc_status st = kdc_shapes_render_ex(seed, idx, (int)size, style, &img, &info, mask);
        if (st) {
            rc = cli_lib_error(st, NULL);
            goto done;
        }
        if ((rc = save_indexed_png(img, dir, idx, path, dl + 64, file)))
            goto done;
        fprintf(js, "%s{\"file\": \"%s\", \"index\": %llu, \"class\": %d, \"name\": \"%s\", "
                    "\"box\": [%d, %d, %d, %d]",
                k ? ",\n" : "", file, (unsigned long long)idx, info.cls,
                kdc_shapes_class_name(info.cls), info.box[0], info.box[1], info.box[2],
                info.box[3]);
        fprintf(js, ", \"style\": \"%s\", \"decoys\": [", kdc_shapes_style_name(style));
        for (int d = 0; d < info.ndecoys; d++)
            fprintf(js, "%s{\"kind\": \"%s\", \"box\": [%d, %d, %d, %d]}", d ? ", " : "",
                    kdc_shapes_decoy_name(info.decoy_kind[d]), info.decoy_box[d][0],
                    info.decoy_box[d][1], info.decoy_box[d][2], info.decoy_box[d][3]);
        fputc(']', js);
        if (masks) {
            char mfile[48];
            for (size_t p = 0; p < (size_t)size * (size_t)size; p++)
                memset(mimg->rgb + p * 3, mask[p] ? 255 : 0, 3);
            snprintf(mfile, sizeof mfile, "%06llu_mask.png", (unsigned long long)idx);
            snprintf(path, dl + 64, "%s/%s", dir, mfile);
            if ((st = kdc_image_save_png(mimg, path))) {
                rc = cli_lib_error(st, NULL);
                goto done;
            }
            fprintf(js, ", \"mask\": \"%s\"", mfile);
        }
        fputc('}', js);
    }
    fputs("\n]}\n", js);
    {
        int werr = ferror(js);
        int cerr = fclose(js);
        js = NULL;
        if (werr || cerr) {
            rc = cli_error("%s: write failed: %s", tmp, strerror(errno));
            remove(tmp);
            goto done;
        }
    }
    snprintf(path, dl + 64, "%s/labels.json", dir);
    if (rename(tmp, path) != 0) {
        rc = cli_error("%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
    }
done:
    if (js) {
        fclose(js);
        remove(tmp);
    }
    kdc_image_destroy(mimg);
    free(mask);
    free(path);
    free(tmp);
    return rc;
}
