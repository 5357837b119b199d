/* inputs.c - the images of `kdcam cam` and `kdcam compare`: files, folders
 * (-r: with subfolders), @list files and glob patterns, expanded into one
 * list of (path, output name); the options of streaming runs (batches,
 * --skip-existing, progress) and of figures are taken out of argv here. */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "inputs.h"

static int take_int(const char *f, const char *v, long lo, long hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi)
        return cli_error("%s: '%s' is not a number in %ld..%ld", f, v, lo, hi);
    *out = (int)x;
    return 0;
}

int cli_take_input_opts(int argc, char **argv, unsigned flags, char **rest, int *nrest,
                        cli_input_opts *io)
{
    memset(io, 0, sizeof *io);
    io->batch = 8;
    io->progress_every = 10;
    io->scale = 1;
    io->show_dets = 0.5f;
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *flag = NULL;
        if (i == 0) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        if (!strcmp(f, "-r") || !strcmp(f, "--recursive"))
            flag = &io->recursive;
        else if (!strcmp(f, "--skip-existing"))
            flag = &io->skip_existing;
        else if (!strcmp(f, "--svg"))
            flag = &io->svg;
        else if (!strcmp(f, "--heatmap-only"))
            flag = &io->heatmap_only;
        else if (!strcmp(f, "--annotate") && !(flags & CLI_IN_COMPARE))
            flag = &io->annotate;
        else if (!strcmp(f, "--grid") && (flags & CLI_IN_COMPARE))
            flag = &io->grid;
        else if (!strcmp(f, "--teacher-last") && (flags & CLI_IN_COMPARE))
            flag = &io->teacher_last;
        else if (!strcmp(f, "--summary") && (flags & CLI_IN_COMPARE))
            flag = &io->summary;
        else if (!strcmp(f, "--diff") && (flags & CLI_IN_COMPARE))
            flag = &io->diff;
        if (flag) {
            *flag = 1;
            continue;
        }
        const int valued = !strcmp(f, "--batch") || !strcmp(f, "--progress-every") ||
                           !strcmp(f, "--min-size") || !strcmp(f, "--scale") ||
                           !strcmp(f, "--colormap") ||
                           ((!strcmp(f, "--norm") || !strcmp(f, "--show-dets")) &&
                            (flags & CLI_IN_COMPARE));
        if (!valued) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        if (!v)
            return cli_error("option %s needs a value (see --help)", f);
        i++;
        if (!strcmp(f, "--batch") && take_int(f, v, 1, 256, &io->batch))
            return 1;
        if (!strcmp(f, "--progress-every") && take_int(f, v, 1, 86400, &io->progress_every))
            return 1;
        if (!strcmp(f, "--min-size") && take_int(f, v, 1, 16384, &io->min_size))
            return 1;
        if (!strcmp(f, "--scale") && take_int(f, v, 1, 8, &io->scale))
            return 1;
        if (!strcmp(f, "--colormap") && kdc_colormap_parse(v, &io->cmap))
            return cli_lib_error(KDC_ERR_INVALID_ARGUMENT, "--colormap");
        if (!strcmp(f, "--show-dets")) {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || !(d >= 0.0 && d <= 1.0))
                return cli_error("--show-dets: '%s' is not a score in [0, 1]", v);
            io->show_dets = (float)d;
        }
        if (!strcmp(f, "--norm")) {
            if (!strcmp(v, "shared"))
                io->shared_norm = 1;
            else if (strcmp(v, "per-model"))
                return cli_error("--norm: '%s' is neither shared nor per-model", v);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Expansion                                                           */

static int push(cli_inputs *in, const char *path, const char *name)
{
    if (in->n == in->cap) {
        int cap = in->cap ? 2 * in->cap : 64;
        cli_input *nv = realloc(in->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return cli_error("out of memory");
        in->v = nv;
        in->cap = cap;
    }
    cli_input *e = &in->v[in->n];
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    e->name = strdup(name);
    if (!e->path || !e->name) {
        free(e->path);
        free(e->name);
        return cli_error("out of memory");
    }
    in->n++;
    return 0;
}

/* name without its extension */
static void drop_ext(char *name)
{
    char *slash = strrchr(name, '/'), *dot = strrchr(name, '.');
    if (dot && dot > (slash ? slash + 1 : name))
        *dot = '\0';
}

/* The images of folder dir (named rel/ inside the argument's folder), then
 * with -r those of its subfolders, in sorted order. A labels.json of
 * `kdcam shapes` gives the boxes. */
static int walk(const char *dir, const char *rel, int recursive, cli_inputs *in, int depth)
{
    char **files = NULL, **dirs = NULL;
    int nf = 0, nd = 0, rc;
    if (depth > 64)
        return cli_error("%s: folders nested deeper than 64", dir);
    if ((rc = cli_list_dir(dir, 0, &files, &nf)))
        return rc;
    kdc_shapes_labels *lab = NULL;
    char lj[4200];
    struct stat sb;
    snprintf(lj, sizeof lj, "%s/labels.json", dir);
    if (!stat(lj, &sb)) {
        kdc_status st = kdc_shapes_labels_read(dir, &lab);
        if (st) {
            cli_free_labels(files, nf);
            return cli_lib_error(st, NULL);
        }
    }
    for (int i = 0; i < nf && !rc; i++) {
        char path[4200], name[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(name, sizeof name, "%s%s%s", rel, rel[0] ? "/" : "", files[i]);
        drop_ext(name);
        if ((rc = push(in, path, name)))
            break;
        for (int k = 0; lab && k < lab->n; k++)
            if (!strcmp(lab->files[k], files[i])) {
                in->v[in->n - 1].has_box = 1;
                memcpy(in->v[in->n - 1].box, lab->boxes[k], sizeof lab->boxes[k]);
                break;
            }
    }
    kdc_shapes_labels_free(lab);
    cli_free_labels(files, nf);
    if (rc || !recursive)
        return rc;
    if ((rc = cli_list_dir(dir, 1, &dirs, &nd)))
        return rc;
    for (int i = 0; i < nd && !rc; i++) {
        char sub[4200], subrel[4200];
        snprintf(sub, sizeof sub, "%s/%s", dir, dirs[i]);
        snprintf(subrel, sizeof subrel, "%s%s%s", rel, rel[0] ? "/" : "", dirs[i]);
        rc = walk(sub, subrel, recursive, in, depth + 1);
    }
    cli_free_labels(dirs, nd);
    return rc;
}

/* A file given by path: named by its stem (see resolve_collisions). */
static int add_file(const char *path, cli_inputs *in)
{
    const char *base = strrchr(path, '/');
    char name[4200];
    snprintf(name, sizeof name, "%s", base ? base + 1 : path);
    drop_ext(name);
    return push(in, path, name);
}

static int add_arg(const char *a, int recursive, cli_inputs *in)
{
    struct stat sb;
    if (a[0] == '@') {
        cli_dataset ds;
        if (cli_dataset_open(a + 1, &ds))
            return 1;
        int rc = 0;
        for (int i = 0; i < ds.n && !rc; i++) {
            char path[4200];
            cli_dataset_path(&ds, i, path, sizeof path);
            rc = add_file(path, in);
        }
        cli_dataset_free(&ds);
        return rc;
    }
    if (!stat(a, &sb)) {
        if (S_ISDIR(sb.st_mode)) {
            const int n0 = in->n;
            int rc = walk(a, "", recursive, in, 0);
            if (!rc && in->n == n0)
                rc = cli_error("%s: no image in this folder%s", a,
                               recursive ? " or below" : " (-r also reads its subfolders)");
            return rc;
        }
        return add_file(a, in);
    }
    if (strpbrk(a, "*?[")) {
        glob_t g;
        int r = glob(a, 0, NULL, &g);
        if (r == GLOB_NOMATCH)
            return cli_error("%s: no file matches", a);
        if (r)
            return cli_error("%s: cannot expand the pattern", a);
        int rc = 0;
        for (size_t i = 0; i < g.gl_pathc && !rc; i++)
            if (!stat(g.gl_pathv[i], &sb) && S_ISREG(sb.st_mode))
                rc = add_file(g.gl_pathv[i], in);
        globfree(&g);
        return rc;
    }
    return cli_error("%s: %s", a, strerror(errno));
}

static int cmp_name(const void *x, const void *y)
{
    const cli_input *a = *(cli_input *const *)x, *b = *(cli_input *const *)y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a < b ? -1 : a > b);
}

/* A path (after the folders a collision group shares) as an output name:
 * "/" and "./" dropped at the start, ".." spelt "up", no extension. */
static void mirrored_name(const char *path, char *out, size_t size)
{
    char tmp[4200];
    size_t o = 0;
    const char *s = path;
    while (*s == '/' || (s[0] == '.' && s[1] == '/'))
        s += *s == '/' ? 1 : 2;
    while (*s && o + 3 < sizeof tmp) {
        if (s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2]) &&
            (s == path || s[-1] == '/')) {
            tmp[o++] = 'u';
            tmp[o++] = 'p';
            s += 2;
            continue;
        }
        tmp[o++] = *s++;
    }
    tmp[o] = '\0';
    drop_ext(tmp);
    snprintf(out, size, "%s", tmp);
}

/* Names that collide: first the folders that tell them apart are added
 * (p/a/x.jpg and p/b/x.jpg: a/x, b/x), then, if two still collide (x.jpg
 * and x.png), the extension (x_png). */
static int resolve_collisions(cli_inputs *in)
{
    cli_input **order = malloc((size_t)in->n * sizeof *order);
    if (!order)
        return cli_error("out of memory");
    int rc = 0;
    for (int pass = 0; pass < 3 && !rc; pass++) {
        for (int i = 0; i < in->n; i++)
            order[i] = &in->v[i];
        qsort(order, (size_t)in->n, sizeof *order, cmp_name);
        int changed = 0;
        for (int i = 0; i + 1 < in->n && !rc; i++) {
            int j = i;
            while (j + 1 < in->n && !strcmp(order[j + 1]->name, order[i]->name))
                j++;
            if (j == i)
                continue;
            if (pass == 2) {
                rc = cli_error("%s and %s would write the same files (name '%s')",
                               order[i]->path, order[i + 1]->path, order[i]->name);
                break;
            }
            /* the folders the group's paths share are left out */
            size_t common = strlen(order[i]->path);
            for (int k = i + 1; k <= j; k++) {
                size_t c = 0;
                while (c < common && order[k]->path[c] == order[i]->path[c])
                    c++;
                common = c;
            }
            while (common > 0 && order[i]->path[common - 1] != '/')
                common--;
            for (int k = i; k <= j; k++) {
                char nm[4200];
                if (pass == 0) {
                    mirrored_name(order[k]->path + common, nm, sizeof nm);
                } else {
                    const char *slash = strrchr(order[k]->path, '/');
                    const char *dot = strrchr(order[k]->path, '.');
                    snprintf(nm, sizeof nm, "%s_%s", order[k]->name,
                             dot && dot > (slash ? slash : order[k]->path) ? dot + 1 : "");
                }
                char *dup = strdup(nm);
                if (!dup) {
                    rc = cli_error("out of memory");
                    break;
                }
                free(order[k]->name);
                order[k]->name = dup;
            }
            changed = 1;
            i = j;
        }
        if (!changed)
            break;
    }
    free(order);
    return rc;
}

static int cmp_path(const void *x, const void *y)
{
    const cli_input *a = *(cli_input *const *)x, *b = *(cli_input *const *)y;
    int c = strcmp(a->path, b->path);
    return c ? c : (a < b ? -1 : a > b);
}

/* The same path given twice (a file and a glob that matches it) is
 * processed once, where it first came. */
static int drop_repeats(cli_inputs *in)
{
    cli_input **order = malloc((size_t)in->n * sizeof *order);
    if (!order)
        return cli_error("out of memory");
    for (int i = 0; i < in->n; i++)
        order[i] = &in->v[i];
    qsort(order, (size_t)in->n, sizeof *order, cmp_path);
    for (int i = 1; i < in->n; i++)
        if (!strcmp(order[i]->path, order[i - 1]->path)) {
            free(order[i]->name);
            order[i]->name = NULL; /* marks a repeat */
        }
    free(order);
    int k = 0;
    for (int i = 0; i < in->n; i++) {
        if (in->v[i].name)
            in->v[k++] = in->v[i];
        else
            free(in->v[i].path);
    }
    in->n = k;
    return 0;
}

/* Files given one by one (not by walking their folder) get their boxes
 * from their folder's labels.json too; each folder is read once in a row. */
static int boxes_of_files(cli_inputs *in)
{
    char last[4200] = "";
    kdc_shapes_labels *lab = NULL;
    int rc = 0;
    for (int i = 0; i < in->n && !rc; i++) {
        cli_input *e = &in->v[i];
        if (e->has_box)
            continue;
        const char *slash = strrchr(e->path, '/');
        char dir[4200], lj[4300];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - e->path) : 1,
                 slash ? e->path : ".");
        if (strcmp(dir, last)) {
            struct stat sb;
            kdc_shapes_labels_free(lab);
            lab = NULL;
            snprintf(last, sizeof last, "%s", dir);
            snprintf(lj, sizeof lj, "%s/labels.json", dir);
            kdc_status st = stat(lj, &sb) ? KDC_OK : kdc_shapes_labels_read(dir, &lab);
            if (st) {
                rc = cli_lib_error(st, NULL);
                break;
            }
        }
        const char *base = slash ? slash + 1 : e->path;
        for (int k = 0; lab && k < lab->n; k++)
            if (!strcmp(lab->files[k], base)) {
                e->has_box = 1;
                memcpy(e->box, lab->boxes[k], sizeof e->box);
                break;
            }
    }
    kdc_shapes_labels_free(lab);
    return rc;
}

int cli_inputs_collect(const char *const *args, int nargs, int recursive, cli_inputs *in)
{
    memset(in, 0, sizeof *in);
    int rc = 0;
    for (int i = 0; i < nargs && !rc; i++)
        rc = add_arg(args[i], recursive, in);
    if (!rc && in->n > 1)
        rc = drop_repeats(in);
    if (!rc)
        rc = boxes_of_files(in);
    if (!rc && in->n > 1)
        rc = resolve_collisions(in);
    if (rc)
        cli_inputs_free(in);
    return rc;
}

void cli_inputs_free(cli_inputs *in)
{
    for (int i = 0; in->v && i < in->n; i++) {
        free(in->v[i].path);
        free(in->v[i].name);
    }
    free(in->v);
    memset(in, 0, sizeof *in);
}

int cli_inputs_mkdirs(const char *out_dir, const char *name)
{
    char p[4200];
    if ((size_t)snprintf(p, sizeof p, "%s/%s", out_dir, name) >= sizeof p)
        return cli_error("%s/%s: path too long", out_dir, name);
    for (char *s = p + strlen(out_dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(p, 0777) && errno != EEXIST)
            return cli_error("%s: cannot create folder: %s", p, strerror(errno));
        *s = '/';
    }
    return 0;
}

int cli_inputs_check_size(const cli_input_opts *io, const char *path, const kdc_image *img,
                          int crop_h, int crop_w)
{
    const int side = img->width < img->height ? img->width : img->height;
    if (io->min_size && side < io->min_size)
        return cli_error("%s: %dx%d is smaller than --min-size %d", path, img->width,
                         img->height, io->min_size);
    if (2 * img->width < crop_w || 2 * img->height < crop_h)
        fprintf(stderr, "kdcam: warning: %s is %dx%d, much smaller than the %dx%d crop: it is "
                "upscaled %.1fx (--min-size N refuses such images)\n", path, img->width,
                img->height, crop_w, crop_h,
                (double)(crop_w > crop_h ? crop_w : crop_h) / (side > 0 ? side : 1));
    return 0;
}

int cli_inputs_load(const cli_opts *o, const cli_input_opts *io, const kdc_model *m,
                    const kdc_preprocess *pp_in, cli_input *const *items, int k, float **input,
                    int *h, int *w, kdc_image ***crops, double **scales, int *sizes_out)
{
    *input = NULL;
    *crops = NULL;
    if (cli_is_detector(m)) {
        /* the detector's own resizing: through the command's loader */
        cli_opts *bo = malloc(sizeof *bo);
        if (!bo)
            return cli_error("out of memory");
        *bo = *o;
        bo->input_npy = NULL;
        bo->n_images = k;
        for (int i = 0; i < k; i++)
            bo->images[i] = items[i]->path;
        int n = 0, rc = cli_load_det_batch(bo, m, input, &n, h, w, crops, scales, sizes_out);
        free(bo);
        return rc;
    }
    kdc_preprocess pp;
    if (pp_in)
        pp = *pp_in;
    else
        kdc_model_preprocess(m, &pp);
    const char **paths = malloc((size_t)k * sizeof *paths);
    int *sizes = malloc((size_t)k * 2 * sizeof *sizes);
    kdc_image **cr = calloc((size_t)k, sizeof *cr);
    if (!paths || !sizes || !cr) {
        free(paths);
        free(sizes);
        free(cr);
        return cli_error("out of memory");
    }
    for (int i = 0; i < k; i++)
        paths[i] = items[i]->path;
    kdc_image_options iopt;
    kdc_image_options_init(&iopt);
    if (o->max_pixels > 0)
        iopt.max_pixels = o->max_pixels;
    kdc_status st = kdc_image_load_batch(paths, k, &pp, &iopt, input, h, w, cr, sizes);
    int rc = st ? cli_lib_error(st, NULL) : 0;
    for (int i = 0; i < k && !rc; i++) {
        const kdc_image probe = {.width = sizes[2 * i], .height = sizes[2 * i + 1]};
        rc = cli_inputs_check_size(io, paths[i], &probe, *h, *w);
    }
    if (sizes_out && !rc)
        memcpy(sizes_out, sizes, (size_t)k * 2 * sizeof *sizes);
    free(paths);
    free(sizes);
    if (rc) {
        free(*input);
        *input = NULL;
        cli_free_crops(cr, k);
        return rc;
    }
    *crops = cr;
    return 0;
}

int cli_class_probs(const kdc_run *run, int last, int n, int K, const int *classes, float *probs)
{
    float *z = malloc((size_t)n * K * sizeof *z), *p = malloc((size_t)K * sizeof *p);
    kdc_status st = KDC_ERR_NO_MEMORY;
    if (z && p && !(st = kdc_run_read_layer(run, last, z, (size_t)n * K)))
        for (int b = 0; b < n && !st; b++)
            if (!(st = kdc_softmax(z + (size_t)b * K, K, 1.0, p)))
                probs[b] = classes[b] >= 0 && classes[b] < K ? p[classes[b]] : 0.0f;
    free(z);
    free(p);
    return st ? cli_lib_error(st, "class probabilities") : 0;
}

void cli_crop_geometry(const kdc_preprocess *pp, int ow, int oh, int h, int w, int *rw, int *rh,
                       int *top, int *left)
{
    *rw = ow;
    *rh = oh;
    if (pp->resize_short > 0) {
        if (ow <= oh) {
            *rw = pp->resize_short;
            *rh = (int)((long long)pp->resize_short * oh / ow);
        } else {
            *rh = pp->resize_short;
            *rw = (int)((long long)pp->resize_short * ow / oh);
        }
    }
    *top = (int)lrint((*rh - h) / 2.0);
    *left = (int)lrint((*rw - w) / 2.0);
}
