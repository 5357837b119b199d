/* coco.c - COCO's two JSON files, read with the library's strict JSON
 * reader: an instances file (images, categories, box annotations; the
 * ground truth of `kdcam eval`) and a results file (a list of detections).
 * Fields this code does not use are skipped, as pycocotools keeps but
 * never reads them for boxes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "st_json.h"

/* The tree of a COCO file may take this much memory per byte of file (a
 * number node is about 40 bytes for a few bytes of text), at least the
 * JSON reader's default and at most 4 GiB (docs/security.md). */
#define KDC_COCO_TREE_PER_BYTE 48u
#define KDC_COCO_TREE_MAX ((size_t)4 << 30)

/* Reads and parses path: 0 and *root, *text (freed by the caller: the
 * tree's numbers point into text) or an error. */
static kdc_status kdc__coco_parse(const char *path, struct st_json *root, char **text)
{
    size_t len = 0;
    memset(root, 0, sizeof *root);
    *text = kdc__st_json_read_file(path, &len);
    if (!*text)
        return kdc__fail(errno == ENOMEM ? KDC_ERR_NO_MEMORY : KDC_ERR_IO, "%s: cannot read: %s",
                         path, strerror(errno));
    size_t limit = len > KDC_COCO_TREE_MAX / KDC_COCO_TREE_PER_BYTE
                       ? KDC_COCO_TREE_MAX
                       : len * KDC_COCO_TREE_PER_BYTE;
    kdc_status st = kdc__st_json_parse_limit(path, (const unsigned char *)*text, len,
                                             limit > ((size_t)64 << 20) ? limit : 0, root);
    if (st) {
        kdc__st_json_free(root);
        free(*text);
        *text = NULL;
    }
    return st;
}

static int kdc__coco_string(const struct st_json *v, char **out)
{
    *out = strdup(v && v->type == ST_JSON_STRING ? v->u.str : "");
    return *out ? 0 : -1;
}

/* A box [x, y, w, h] of four finite numbers. */
static int kdc__coco_bbox(const struct st_json *v, double bb[4])
{
    if (!v || v->type != ST_JSON_ARRAY || v->u.list.n != 4)
        return -1;
    for (int k = 0; k < 4; k++)
        if (kdc__st_json_double(&v->u.list.items[k], &bb[k]))
            return -1;
    return 0;
}

static int kdc__coco_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of the first repeated id in ids[0..n) (sorted in tmp), or -1. */
static int kdc__coco_repeated(int64_t *tmp, size_t n, int64_t *which)
{
    qsort(tmp, n, sizeof *tmp, kdc__coco_cmp_i64);
    for (size_t i = 1; i < n; i++)
        if (tmp[i] == tmp[i - 1]) {
            *which = tmp[i];
            return 1;
        }
    return 0;
}

void kdc_coco_free(kdc_coco *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->images && i < c->nimages; i++)
        free(c->images[i].file_name);
    for (size_t i = 0; c->categories && i < c->ncategories; i++)
        free(c->categories[i].name);
    free(c->images);
    free(c->categories);
    free(c->annotations);
    free(c);
}

/* A list member of root that must be an array ("annotations" may be
 * missing: NULL and 0). */
static kdc_status kdc__coco_list(const char *path, const struct st_json *root, const char *key,
                                 int optional, const struct st_json **out)
{
    const struct st_json *v = kdc__st_json_get(root, key);
    *out = NULL;
    if (!v && optional)
        return KDC_OK;
    if (!v || v->type != ST_JSON_ARRAY)
        return kdc__fail(KDC_ERR_FORMAT, "%s: no \"%s\" list (not a COCO instances file?)", path,
                         key);
    *out = v;
    return KDC_OK;
}

static kdc_status kdc__coco_images(const char *path, const struct st_json *im, kdc_coco *c)
{
    c->images = calloc(im->u.list.n ? im->u.list.n : 1, sizeof *c->images);
    if (!c->images)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < im->u.list.n; i++) {
        const struct st_json *e = &im->u.list.items[i];
        kdc_coco_image *o = &c->images[i];
        uint64_t w = 0, h = 0;
        const struct st_json *wv = kdc__st_json_get(e, "width"), *hv = kdc__st_json_get(e, "height");
        if (e->type != ST_JSON_OBJECT || kdc__st_json_int64(kdc__st_json_get(e, "id"), &o->id))
            return kdc__fail(KDC_ERR_FORMAT, "%s: images[%zu]: \"id\" is missing or not an "
                             "integer", path, i);
        if ((wv && kdc__st_json_uint(wv, 1u << 30, &w) != ST_INT_OK) ||
            (hv && kdc__st_json_uint(hv, 1u << 30, &h) != ST_INT_OK))
            return kdc__fail(KDC_ERR_FORMAT, "%s: images[%zu]: \"width\" or \"height\" is not a "
                             "size", path, i);
        o->width = (int)w;
        o->height = (int)h;
        if (kdc__coco_string(kdc__st_json_get(e, "file_name"), &o->file_name))
            return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        c->nimages = i + 1;
    }
    return KDC_OK;
}

static kdc_status kdc__coco_categories(const char *path, const struct st_json *cv, kdc_coco *c)
{
    c->categories = calloc(cv->u.list.n ? cv->u.list.n : 1, sizeof *c->categories);
    if (!c->categories)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < cv->u.list.n; i++) {
        const struct st_json *e = &cv->u.list.items[i];
        kdc_coco_category *o = &c->categories[i];
        if (e->type != ST_JSON_OBJECT || kdc__st_json_int64(kdc__st_json_get(e, "id"), &o->id))
            return kdc__fail(KDC_ERR_FORMAT, "%s: categories[%zu]: \"id\" is missing or not an "
                             "integer", path, i);
        if (kdc__coco_string(kdc__st_json_get(e, "name"), &o->name))
            return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        c->ncategories = i + 1;
    }
    return KDC_OK;
}

/* iscrowd: 0, 1 or a JSON boolean (Python's truthiness of either). */
static int kdc__coco_crowd(const struct st_json *v, int *out)
{
    uint64_t x;
    if (!v) {
        *out = 0;
        return 0;
    }
    if (v->type == ST_JSON_BOOL) {
        *out = v->u.boolean != 0;
        return 0;
    }
    if (kdc__st_json_uint(v, 1, &x) != ST_INT_OK)
        return -1;
    *out = (int)x;
    return 0;
}

static kdc_status kdc__coco_annotations(const char *path, const struct st_json *an, kdc_coco *c)
{
    size_t n = an ? an->u.list.n : 0;
    c->annotations = calloc(n ? n : 1, sizeof *c->annotations);
    if (!c->annotations)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        const struct st_json *e = &an->u.list.items[i];
        kdc_coco_box *o = &c->annotations[i];
        const struct st_json *area = kdc__st_json_get(e, "area");
        if (e->type != ST_JSON_OBJECT)
            return kdc__fail(KDC_ERR_FORMAT, "%s: annotations[%zu] is not an object", path, i);
        if (kdc__st_json_int64(kdc__st_json_get(e, "id"), &o->id) ||
            kdc__st_json_int64(kdc__st_json_get(e, "image_id"), &o->image_id) ||
            kdc__st_json_int64(kdc__st_json_get(e, "category_id"), &o->category_id))
            return kdc__fail(KDC_ERR_FORMAT, "%s: annotations[%zu]: \"id\", \"image_id\" or "
                             "\"category_id\" is missing or not an integer", path, i);
        if (kdc__coco_bbox(kdc__st_json_get(e, "bbox"), o->bbox))
            return kdc__fail(KDC_ERR_FORMAT, "%s: annotations[%zu]: \"bbox\" is missing or not "
                             "4 numbers [x, y, w, h]", path, i);
        if (area ? kdc__st_json_double(area, &o->area) : (o->area = o->bbox[2] * o->bbox[3], 0))
            return kdc__fail(KDC_ERR_FORMAT, "%s: annotations[%zu]: \"area\" is not a number",
                             path, i);
        if (kdc__coco_crowd(kdc__st_json_get(e, "iscrowd"), &o->iscrowd))
            return kdc__fail(KDC_ERR_FORMAT, "%s: annotations[%zu]: \"iscrowd\" is not 0 or 1",
                             path, i);
        o->score = 1;
        c->nannotations = i + 1;
    }
    return KDC_OK;
}

/* Image, category and annotation ids must be unique: pycocotools keys them
 * in dicts, so it would silently use the last of a repeated one (for a
 * repeated annotation id, the last annotation in place of every one). */
static kdc_status kdc__coco_unique(const char *path, const kdc_coco *c)
{
    size_t n = c->nimages > c->ncategories ? c->nimages : c->ncategories;
    n = n > c->nannotations ? n : c->nannotations;
    int64_t *tmp = malloc((n ? n : 1) * sizeof *tmp), which = 0;
    if (!tmp)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < c->nimages; i++)
        tmp[i] = c->images[i].id;
    int bad = kdc__coco_repeated(tmp, c->nimages, &which);
    const char *what = "image";
    if (!bad) {
        for (size_t i = 0; i < c->ncategories; i++)
            tmp[i] = c->categories[i].id;
        bad = kdc__coco_repeated(tmp, c->ncategories, &which);
        what = "category";
    }
    if (!bad) {
        for (size_t i = 0; i < c->nannotations; i++)
            tmp[i] = c->annotations[i].id;
        bad = kdc__coco_repeated(tmp, c->nannotations, &which);
        what = "annotation";
    }
    free(tmp);
    if (bad)
        return kdc__fail(KDC_ERR_FORMAT, "%s: %s id %lld appears twice", path, what,
                         (long long)which);
    return KDC_OK;
}

kdc_status kdc_coco_read(const char *path, kdc_coco **out)
{
    if (!out || !path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_coco_read: %s is NULL",
                         !out ? "out" : "path");
    *out = NULL;
    struct st_json root;
    char *text;
    kdc_status st = kdc__coco_parse(path, &root, &text);
    if (st)
        return st;
    const struct st_json *im, *cv, *an;
    kdc_coco *c = calloc(1, sizeof *c);
    if (!c)
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    else if (root.type != ST_JSON_OBJECT)
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a JSON object (not a COCO instances file?)",
                       path);
    if (!st)
        st = kdc__coco_list(path, &root, "images", 0, &im);
    if (!st)
        st = kdc__coco_list(path, &root, "categories", 0, &cv);
    if (!st)
        st = kdc__coco_list(path, &root, "annotations", 1, &an);
    if (!st)
        st = kdc__coco_images(path, im, c);
    if (!st)
        st = kdc__coco_categories(path, cv, c);
    if (!st)
        st = kdc__coco_annotations(path, an, c);
    if (!st)
        st = kdc__coco_unique(path, c);
    kdc__st_json_free(&root);
    free(text);
    if (st) {
        kdc_coco_free(c);
        return st;
    }
    *out = c;
    return KDC_OK;
}

kdc_status kdc_coco_read_results(const char *path, kdc_coco_box **dets, size_t *n)
{
    if (!dets || !n || !path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_coco_read_results: an argument is NULL");
    *dets = NULL;
    *n = 0;
    struct st_json root;
    char *text;
    kdc_status st = kdc__coco_parse(path, &root, &text);
    if (st)
        return st;
    kdc_coco_box *d = NULL;
    if (root.type != ST_JSON_ARRAY) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: not a JSON list of detections (COCO results format)",
                       path);
        goto out;
    }
    size_t nd = root.u.list.n;
    if (!(d = calloc(nd ? nd : 1, sizeof *d))) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for %zu detections", path, nd);
        goto out;
    }
    for (size_t i = 0; i < nd; i++) {
        const struct st_json *e = &root.u.list.items[i];
        kdc_coco_box *o = &d[i];
        if (e->type != ST_JSON_OBJECT ||
            kdc__st_json_int64(kdc__st_json_get(e, "image_id"), &o->image_id) ||
            kdc__st_json_int64(kdc__st_json_get(e, "category_id"), &o->category_id)) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: [%zu]: \"image_id\" or \"category_id\" is "
                           "missing or not an integer", path, i);
            goto out;
        }
        if (kdc__coco_bbox(kdc__st_json_get(e, "bbox"), o->bbox)) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: [%zu]: \"bbox\" is missing or not 4 numbers "
                           "[x, y, w, h]", path, i);
            goto out;
        }
        if (kdc__st_json_double(kdc__st_json_get(e, "score"), &o->score)) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: [%zu]: \"score\" is missing or not a number",
                           path, i);
            goto out;
        }
        o->id = (int64_t)i + 1;
        o->area = o->bbox[2] * o->bbox[3];
    }
    *dets = d;
    *n = nd;
    d = NULL;
out:
    free(d);
    kdc__st_json_free(&root);
    free(text);
    return st;
}
