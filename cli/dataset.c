/* dataset.c - the image sets that commands walk: a `kdcam shapes` folder
 * (labels.json: classes and boxes), an ImageFolder tree (one subfolder per
 * class, as torchvision's ImageFolder reads it) and a list file (a path and
 * an optional class per line). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (err || !buf) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0'; /* n < cap: the loop ends on a short read */
    *len = n;
    return buf;
}

static int json_int(const cj_value *v, long lo, long hi, long *out)
{
    if (!v || v->type != CJ_NUM || v->num != floor(v->num) || v->num < lo || v->num > hi)
        return -1;
    *out = (long)v->num;
    return 0;
}

/* Reads DIR/labels.json: the class names and every image's file, class and
 * box. Checks what the scoring relies on and names what is wrong. */
int cli_read_shapes_labels(const char *dir, cli_item **images, int *n_images, char ***classes,
                           int *n_classes)
{
    char path[4096], err[160];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/labels.json", dir);
    char *text = cli_read_file(path, &len);
    if (!text)
        return cli_error("%s: cannot read (is %s a folder written by `kdcam shapes`?)", path, dir);
    cj_value root;
    int rc = 0;
    if (cj_parse(text, len, &root, err, sizeof err)) {
        free(text);
        return cli_error("%s: not valid JSON: %s", path, err);
    }
    free(text);
    const cj_value *cl = cj_get(&root, "classes"), *im = cj_get(&root, "images");
    cli_item *ims = NULL;
    char **names = NULL;
    int nc = 0, ni = 0;
    if (!cl || cl->type != CJ_ARR || cl->n < 1) {
        rc = cli_error("%s: no \"classes\" array of names", path);
        goto out;
    }
    if (!im || im->type != CJ_ARR || im->n < 1) {
        rc = cli_error("%s: no \"images\" array, or it is empty", path);
        goto out;
    }
    names = calloc((size_t)cl->n, sizeof *names);
    ims = calloc((size_t)im->n, sizeof *ims);
    if (!names || !ims) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (; nc < cl->n; nc++) {
        if (cl->items[nc].type != CJ_STR) {
            rc = cli_error("%s: classes[%d] is not a string", path, nc);
            goto out;
        }
        if (!(names[nc] = strdup(cl->items[nc].str))) {
            rc = cli_error("out of memory");
            goto out;
        }
    }
    for (; ni < im->n; ni++) {
        const cj_value *e = &im->items[ni];
        const cj_value *f = cj_get(e, "file"), *c = cj_get(e, "class"), *b = cj_get(e, "box");
        long v[4], k;
        if (!f || f->type != CJ_STR || !f->str[0] || strchr(f->str, '/')) {
            rc = cli_error("%s: images[%d]: \"file\" is missing or not a plain file name", path,
                           ni);
            goto out;
        }
        if (json_int(c, 0, cl->n - 1, &k)) {
            rc = cli_error("%s: images[%d] (%s): \"class\" is missing or not in 0..%d", path, ni,
                           f->str, cl->n - 1);
            goto out;
        }
        if (!b || b->type != CJ_ARR || b->n != 4 || json_int(&b->items[0], 0, 1 << 20, &v[0]) ||
            json_int(&b->items[1], 0, 1 << 20, &v[1]) ||
            json_int(&b->items[2], 0, 1 << 20, &v[2]) ||
            json_int(&b->items[3], 0, 1 << 20, &v[3]) || v[2] <= v[0] || v[3] <= v[1]) {
            rc = cli_error("%s: images[%d] (%s): \"box\" is not [x0, y0, x1, y1] with x0 < x1, "
                           "y0 < y1", path, ni, f->str);
            goto out;
        }
        if (!(ims[ni].file = strdup(f->str))) {
            rc = cli_error("out of memory");
            goto out;
        }
        ims[ni].cls = (int)k;
        ims[ni].has_box = 1;
        for (int i = 0; i < 4; i++)
            ims[ni].box[i] = (int)v[i];
    }
out:
    cj_free(&root);
    if (rc) {
        for (int i = 0; i < ni && ims; i++)
            free(ims[i].file);
        free(ims);
        cli_free_labels(names, nc);
        return rc;
    }
    *images = ims;
    *n_images = ni;
    *classes = names;
    *n_classes = nc;
    return 0;
}


void cli_free_items(cli_item *items, int n)
{
    for (int i = 0; i < n && items; i++)
        free(items[i].file);
    free(items);
}

void cli_dataset_free(cli_dataset *ds)
{
    if (!ds)
        return;
    cli_free_items(ds->items, ds->n);
    if (ds->classes) /* a list file has class numbers, no names */
        cli_free_labels(ds->classes, ds->nclasses);
    memset(ds, 0, sizeof *ds);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* torchvision's IMG_EXTENSIONS (lower-cased comparison, as it does) */
static int is_image_name(const char *name)
{
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif",
                                ".tiff", ".webp"};
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.')
        return 0;
    char low[8];
    size_t n = strlen(dot);
    if (n >= sizeof low)
        return 0;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)dot[i]);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcmp(low, ext[i]))
            return 1;
    return 0;
}

/* The sorted names in dir that are folders (want_dirs) or image files. */
int cli_list_dir(const char *dir, int want_dirs, char ***out, int *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return cli_error("%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb))
            continue;
        if (want_dirs ? !S_ISDIR(sb.st_mode) : !(S_ISREG(sb.st_mode) && is_image_name(e->d_name)))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) {
                rc = cli_error("out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = cli_error("out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        cli_free_labels(names, n);
        return rc;
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    *count = n;
    return 0;
}

/* A zeroed item at the end of ds->items (not counted yet: the caller
 * increments ds->n once it is filled); NULL, error printed, when out of
 * memory. */
static cli_item *new_item(cli_dataset *ds, int *cap)
{
    if (ds->n == *cap) {
        const int nc = *cap ? 2 * *cap : 256;
        cli_item *ni = realloc(ds->items, (size_t)nc * sizeof *ni);
        if (!ni) {
            cli_error("out of memory");
            return NULL;
        }
        ds->items = ni;
        *cap = nc;
    }
    cli_item *it = &ds->items[ds->n];
    memset(it, 0, sizeof *it);
    return it;
}

/* ImageFolder: classes are the sorted subfolders, images sorted by name in each */
static int read_image_folder(const char *dir, cli_dataset *ds)
{
    char **cls = NULL;
    int nc = 0, rc;
    if ((rc = cli_list_dir(dir, 1, &cls, &nc)))
        return rc;
    if (nc == 0) {
        free(cls);
        return cli_error("%s: no labels.json and no class subfolders: not a `kdcam shapes` "
                         "folder nor an ImageFolder tree", dir);
    }
    ds->classes = cls;
    ds->nclasses = nc;
    int cap = 0;
    for (int c = 0; c < nc && !rc; c++) {
        char sub[4096], **files = NULL;
        int nf = 0;
        snprintf(sub, sizeof sub, "%s/%s", dir, cls[c]);
        if ((rc = cli_list_dir(sub, 0, &files, &nf)))
            break;
        for (int i = 0; i < nf && !rc; i++) {
            cli_item *it = new_item(ds, &cap);
            if (!it) {
                rc = 1;
                break;
            }
            size_t len = strlen(cls[c]) + strlen(files[i]) + 2;
            if (!(it->file = malloc(len))) {
                rc = cli_error("out of memory");
                break;
            }
            snprintf(it->file, len, "%s/%s", cls[c], files[i]);
            it->cls = c;
            ds->n++;
        }
        cli_free_labels(files, nf);
    }
    if (!rc && ds->n == 0)
        rc = cli_error("%s: the class subfolders hold no images", dir);
    return rc;
}

/* A list file: "PATH [CLASS]" per line; '#' starts a comment line; a relative
 * PATH is relative to the list file's folder. Either every line has a class
 * or none has. */
static int read_list_file(const char *path, cli_dataset *ds)
{
    size_t len = 0;
    char *text = cli_read_file(path, &len);
    if (!text)
        return cli_error("%s: cannot read", path);
    const char *slash = strrchr(path, '/');
    ds->base_len = slash ? (int)(slash - path) : 0;
    int rc = 0, cap = 0, labelled = -1, line = 0;
    char *save = NULL;
    for (char *ln = len ? strtok_r(text, "\n", &save) : NULL; ln && !rc;
         ln = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t l = strlen(ln);
        while (l && isspace((unsigned char)ln[l - 1]))
            ln[--l] = '\0';
        while (isspace((unsigned char)*ln))
            ln++;
        if (!*ln || *ln == '#')
            continue;
        char *sp = ln + strcspn(ln, " \t");
        long cls = -1;
        if (*sp) {
            *sp++ = '\0';
            char *end;
            errno = 0;
            cls = strtol(sp, &end, 10);
            while (isspace((unsigned char)*end))
                end++;
            if (end == sp || *end || errno || cls < 0 || cls > 1000000) {
                rc = cli_error("%s:%d: expected \"PATH [CLASS]\" with CLASS a number >= 0", path,
                               line);
                break;
            }
        }
        if (labelled >= 0 && labelled != (cls >= 0)) {
            rc = cli_error("%s:%d: some lines have a class and some do not", path, line);
            break;
        }
        labelled = cls >= 0;
        cli_item *it = new_item(ds, &cap);
        if (!it) {
            rc = 1;
            break;
        }
        size_t need = (size_t)ds->base_len + strlen(ln) + 2;
        if (!(it->file = malloc(need))) {
            rc = cli_error("out of memory");
            break;
        }
        if (ln[0] == '/' || !slash)
            snprintf(it->file, need, "%s", ln);
        else
            snprintf(it->file, need, "%.*s/%s", ds->base_len, path, ln);
        it->cls = (int)cls;
        ds->n++;
        if (cls + 1 > ds->nclasses)
            ds->nclasses = (int)cls + 1;
    }
    free(text);
    if (!rc && ds->n == 0)
        rc = cli_error("%s: lists no image", path);
    ds->has_labels = labelled == 1;
    ds->base_len = 0;
    return rc;
}

int cli_dataset_open(const char *src, cli_dataset *ds)
{
    struct stat sb;
    memset(ds, 0, sizeof *ds);
    if (stat(src, &sb))
        return cli_error("%s: %s", src, strerror(errno));
    int rc;
    if (!S_ISDIR(sb.st_mode)) {
        ds->kind = CLI_DS_LIST;
        rc = read_list_file(src, ds);
    } else {
        char lj[4096];
        snprintf(lj, sizeof lj, "%s/labels.json", src);
        snprintf(ds->dir, sizeof ds->dir, "%s", src);
        if (!stat(lj, &sb)) {
            ds->kind = CLI_DS_SHAPES;
            rc = cli_read_shapes_labels(src, &ds->items, &ds->n, &ds->classes, &ds->nclasses);
            ds->has_labels = ds->has_boxes = 1;
        } else {
            ds->kind = CLI_DS_FOLDER;
            rc = read_image_folder(src, ds);
            ds->has_labels = 1;
        }
    }
    if (rc)
        cli_dataset_free(ds);
    return rc;
}

void cli_dataset_path(const cli_dataset *ds, int i, char *out, size_t size)
{
    if (ds->kind == CLI_DS_LIST)
        snprintf(out, size, "%s", ds->items[i].file);
    else
        snprintf(out, size, "%s/%s", ds->dir, ds->items[i].file);
}
