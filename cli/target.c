/* target.c - which class a command's maps explain (--target own | teacher |
 * label | CLASS): parsing, the per-image classes of each model, and the
 * ground-truth label of an image file. The commands (cam, compare,
 * pointing, analyze) only ask for the classes of one model at a time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_target_parse(const char *s, cli_target *t)
{
    memset(t, 0, sizeof *t);
    t->cls = -1;
    if (!s || !*s)
        return cli_error("--target: empty (own, teacher, label, or a class index or name)");
    if (!strcmp(s, "own")) {
        t->kind = CLI_TARGET_OWN;
        return 0;
    }
    if (!strcmp(s, "teacher")) {
        t->kind = CLI_TARGET_TEACHER;
        return 0;
    }
    if (!strcmp(s, "label")) {
        t->kind = CLI_TARGET_LABEL;
        return 0;
    }
    t->kind = CLI_TARGET_CLASS;
    if (s[0] >= '0' && s[0] <= '9') {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (*end || errno || v > (1L << 30))
            return cli_error("--target: '%s' is not own, teacher, label or a class index", s);
        t->cls = (int)v;
        return 0;
    }
    if (strlen(s) >= sizeof t->name)
        return cli_error("--target: class name '%.40s...' is too long", s);
    snprintf(t->name, sizeof t->name, "%s", s);
    return 0;
}

int cli_target_from_opts(const cli_opts *o, cli_target *t)
{
    if (o->target && o->cls >= 0)
        return cli_error("give --class or --target, not both");
    if (o->target)
        return cli_target_parse(o->target, t);
    memset(t, 0, sizeof *t);
    t->kind = o->cls >= 0 ? CLI_TARGET_CLASS : CLI_TARGET_OWN;
    t->cls = o->cls;
    return 0;
}

/* The class index of t (CLI_TARGET_CLASS) for model m, range-checked. */
static int class_of(const cli_target *t, const kdc_model *m, const char *who, int *c)
{
    const int K = kdc_model_num_classes(m);
    if (K == 0)
        return cli_error("%s: a detection backbone has no classes to target", who);
    if (t->name[0]) {
        for (int k = 0; k < K; k++) {
            const char *nm = kdc_model_class_name(m, k);
            if (nm && !strcmp(nm, t->name)) {
                *c = k;
                return 0;
            }
        }
        return cli_error("%s: --target '%s' is not one of the model's class names", who,
                         t->name);
    }
    if (t->cls >= K)
        return cli_error("%s: class %d is out of range: the model has %d classes (0..%d)", who,
                         t->cls, K, K - 1);
    *c = t->cls;
    return 0;
}

int cli_target_classes(const cli_target *t, const kdc_model *m, const char *who, int mi,
                       const int *teacher, const int *labels, int n, int *classes, int *use)
{
    *use = 0;
    const int K = kdc_model_num_classes(m);
    if (t->kind == CLI_TARGET_OWN || (t->kind == CLI_TARGET_TEACHER && mi == 0))
        return 0;
    if (t->kind == CLI_TARGET_CLASS) {
        int c = 0;
        if (class_of(t, m, who, &c))
            return 1;
        for (int b = 0; b < n; b++)
            classes[b] = c;
        *use = 1;
        return 0;
    }
    const int *src = t->kind == CLI_TARGET_TEACHER ? teacher : labels;
    const char *what = t->kind == CLI_TARGET_TEACHER ? "the teacher's class" : "the label";
    if (!src)
        return cli_error(t->kind == CLI_TARGET_TEACHER
                             ? "--target teacher needs a teacher: the first of several --model"
                             : "--target label needs labelled images (a `kdcam shapes` folder "
                               "or an ImageFolder class subfolder)");
    if (K == 0)
        return cli_error("%s: a detection backbone has no classes to target", who);
    for (int b = 0; b < n; b++) {
        if (src[b] < 0 || src[b] >= K)
            return cli_error("%s: image %d: %s (%d) is not a class of the model (0..%d)", who, b,
                             what, src[b], K - 1);
        classes[b] = src[b];
    }
    *use = 1;
    return 0;
}

const char *cli_target_describe(const cli_target *t, char *buf, size_t size)
{
    switch (t->kind) {
    case CLI_TARGET_TEACHER:
        snprintf(buf, size, "teacher");
        break;
    case CLI_TARGET_LABEL:
        snprintf(buf, size, "label");
        break;
    case CLI_TARGET_CLASS:
        if (t->name[0])
            snprintf(buf, size, "class %s", t->name);
        else
            snprintf(buf, size, "class %d", t->cls);
        break;
    default:
        snprintf(buf, size, "own");
    }
    return buf;
}

/* The label of one image file: its entry in the labels.json of its folder
 * (a `kdcam shapes` folder), else its folder's name as one of the model's
 * class names (an ImageFolder subfolder). */
static int image_label(const char *path, const kdc_model *m, int *cls)
{
    char dir[4096], json[4200];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(json, sizeof json, "%s/labels.json", dir);
    FILE *f = fopen(json, "rb");
    if (f) {
        fclose(f);
        cli_item *items = NULL;
        char **classes = NULL;
        int ni = 0, nc = 0, found = -1;
        if (cli_read_shapes_labels(dir, &items, &ni, &classes, &nc))
            return 1;
        for (int i = 0; i < ni && found < 0; i++)
            if (!strcmp(items[i].file, base))
                found = items[i].cls;
        cli_free_items(items, ni);
        cli_free_labels(classes, nc);
        if (found < 0)
            return cli_error("--target label: %s is not listed in %s", path, json);
        *cls = found;
        return 0;
    }
    const char *d = strrchr(dir, '/');
    const char *folder = d ? d + 1 : dir;
    const int K = kdc_model_num_classes(m);
    for (int k = 0; k < K; k++) {
        const char *nm = kdc_model_class_name(m, k);
        if (nm && !strcmp(nm, folder)) {
            *cls = k;
            return 0;
        }
    }
    return cli_error("--target label: %s has no label (no labels.json beside it, and its folder "
                     "'%s' is not a class name of the model)", path, folder);
}

int cli_target_image_labels(const cli_opts *o, const kdc_model *m, char *const *paths, int n,
                            int **labels)
{
    *labels = NULL;
    if (o->input_npy)
        return cli_error("--target label: an --input-npy array has no labels");
    int *lab = malloc((size_t)(n > 0 ? n : 1) * sizeof *lab);
    if (!lab)
        return cli_error("out of memory");
    for (int b = 0; b < n; b++)
        if (image_label(paths ? paths[b] : o->images[b], m, &lab[b])) {
            free(lab);
            return 1;
        }
    *labels = lab;
    return 0;
}

int cli_top1(kdc_run *run, const kdc_model *m, const float *x, int n, int h, int w, int *top1)
{
    const int K = kdc_model_num_classes(m), last = kdc_model_num_layers(m) - 1;
    float *z = malloc((size_t)n * (K > 0 ? K : 1) * sizeof *z);
    if (!z)
        return cli_error("out of memory");
    kdc_status st;
    if ((st = kdc_run_forward(run, x, n, h, w, &last, 1)) ||
        (st = kdc_run_read_layer(run, last, z, (size_t)n * K))) {
        free(z);
        return cli_lib_error(st, "top-1 class");
    }
    for (int b = 0; b < n; b++)
        top1[b] = kdc_argmax(z + (size_t)b * K, K);
    free(z);
    return 0;
}
