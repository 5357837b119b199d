/* labels.c - the labels.json of a `kdcam shapes` folder: class names and,
 * per image, its file, class and box. Read with the library's strict JSON
 * reader; fields it does not know are skipped, so a file that gains fields
 * still reads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "st_json.h"

void kdc_shapes_labels_free(kdc_shapes_labels *l)
{
    if (!l)
        return;
    for (int i = 0; l->files && i < l->n; i++)
        free(l->files[i]);
    for (int i = 0; l->class_names && i < l->nclasses; i++)
        free(l->class_names[i]);
    free(l->files);
    free(l->classes);
    free(l->boxes);
    free(l->class_names);
    free(l);
}

static int kdc__labels_int(const struct st_json *v, uint64_t max, int *out)
{
    uint64_t x;
    /* parsed against a wide bound, then compared (the reader's own bound
     * check is meant for large limits) */
    if (!v || kdc__st_json_uint(v, (uint64_t)1 << 40, &x) != ST_INT_OK || x > max)
        return -1;
    *out = (int)x;
    return 0;
}

kdc_status kdc_shapes_labels_read(const char *dir, kdc_shapes_labels **out)
{
    if (!out || !dir)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_shapes_labels_read: %s is NULL",
                         !out ? "out" : "dir");
    *out = NULL;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/labels.json", dir) >= sizeof path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    size_t len = 0;
    char *text = kdc__st_json_read_file(path, &len);
    if (!text)
        return kdc__fail(errno == ENOMEM ? KDC_ERR_NO_MEMORY : KDC_ERR_IO, "%s: cannot read: %s",
                         path, strerror(errno));
    struct st_json root;
    memset(&root, 0, sizeof root);
    /* the tree's numbers point into text: it lives until the tree is freed */
    kdc_status st = kdc__st_json_parse(path, (const unsigned char *)text, len, &root);
    if (st) {
        kdc__st_json_free(&root);
        free(text);
        return st;
    }
    kdc_shapes_labels *l = calloc(1, sizeof *l);
    const struct st_json *cl = kdc__st_json_get(&root, "classes");
    const struct st_json *im = kdc__st_json_get(&root, "images");
    if (!l) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        goto out;
    }
    if (!cl || cl->type != ST_JSON_ARRAY || cl->u.list.n < 1 || cl->u.list.n > 1000000) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: no \"classes\" array of names", path);
        goto out;
    }
    if (!im || im->type != ST_JSON_ARRAY || im->u.list.n < 1 || im->u.list.n > 100000000) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: no \"images\" array, or it is empty", path);
        goto out;
    }
    const size_t nc = cl->u.list.n, ni = im->u.list.n;
    l->class_names = calloc(nc, sizeof *l->class_names);
    l->files = calloc(ni, sizeof *l->files);
    l->classes = calloc(ni, sizeof *l->classes);
    l->boxes = calloc(ni, sizeof *l->boxes);
    if (!l->class_names || !l->files || !l->classes || !l->boxes) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for %zu images", path, ni);
        goto out;
    }
    for (size_t c = 0; c < nc; c++) {
        const struct st_json *v = &cl->u.list.items[c];
        if (v->type != ST_JSON_STRING) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: classes[%zu] is not a string", path, c);
            goto out;
        }
        if (!(l->class_names[c] = strdup(v->u.str))) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
            goto out;
        }
        l->nclasses = (int)c + 1;
    }
    for (size_t i = 0; i < ni; i++) {
        const struct st_json *e = &im->u.list.items[i];
        const struct st_json *f = kdc__st_json_get(e, "file"), *c = kdc__st_json_get(e, "class");
        const struct st_json *b = kdc__st_json_get(e, "box");
        if (!f || f->type != ST_JSON_STRING || !f->u.str[0] || strchr(f->u.str, '/')) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: images[%zu]: \"file\" is missing or not a plain "
                           "file name", path, i);
            goto out;
        }
        if (kdc__labels_int(c, nc - 1, &l->classes[i])) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: images[%zu] (%s): \"class\" is missing or not "
                           "in 0..%zu", path, i, f->u.str, nc - 1);
            goto out;
        }
        int *bx = l->boxes[i], bad = !b || b->type != ST_JSON_ARRAY || b->u.list.n != 4;
        for (int k = 0; k < 4 && !bad; k++)
            bad = kdc__labels_int(&b->u.list.items[k], 1u << 20, &bx[k]);
        if (bad || bx[2] <= bx[0] || bx[3] <= bx[1]) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: images[%zu] (%s): \"box\" is not [x0, y0, x1, "
                           "y1] with x0 < x1, y0 < y1", path, i, f->u.str);
            goto out;
        }
        if (!(l->files[i] = strdup(f->u.str))) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
            goto out;
        }
        l->n = (int)i + 1;
    }
out:
    kdc__st_json_free(&root);
    free(text);
    if (st) {
        kdc_shapes_labels_free(l);
        return st;
    }
    *out = l;
    return KDC_OK;
}
