/* cmd_analyze.c - kdcam analyze: teacher/student statistics over a whole
 * dataset, streamed batch by batch into DIR/rows.jsonl (analyze.h), then
 * summarised (analyze_summary.c). Every model sees the same minibatch:
 * the images are loaded once per batch and normalised per model. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "commands.h"

#ifndef KDCAM_COMMIT
#define KDCAM_COMMIT "unknown"
#endif

#define AN_MAX_LAYERS 16
#define AN_ROAD_SEED 14 /* the base of ROAD's noise seeds (an_road_seed) */

static const char *analyze_usage =
    "usage: kdcam analyze --model NAME=[ARCH:]WEIGHTS --model ... [--batch B] [--limit N]\n"
    "                     [--shard I/N] [--resume] [--teacher-layers L,...]\n"
    "                     [--student-layers L,...] [--method M] [--faith S] [--road]\n"
    "                     [--no-kd] [-t N] -o DIR INPUT\n"
    "Teacher/student statistics over a dataset. The first --model is the teacher.\n"
    "INPUT is a `kdcam shapes` folder (labels and boxes), an ImageFolder tree (one\n"
    "subfolder per class, sorted names give the labels) or a list file (\"PATH\n"
    "[CLASS]\" per line, paths relative to the list's folder). Per image and model:\n"
    "top-1 class, its probability, KL(teacher || model) at T = 1 and 4, and the\n"
    "model's Grad-CAM (each model's top-1 class, last stage) against the teacher's:\n"
    "Pearson r, IoU of the top-20%, and with boxes the pointing game and the energy\n"
    "in the box. Per minibatch: the unbiased HSICs of linear and RBF CKA between\n"
    "every teacher layer and every layer of each student. Results stream to\n"
    "DIR/rows.jsonl (one line per image, one per batch); at the end\n"
    "DIR/summary.json, DIR/cka_*.npy and DIR/cka_*.png are written from it.\n"
    "\n"
    "      --model SPEC    NAME=[ARCH:]WEIGHTS as for `kdcam compare`; repeatable\n"
    "      --batch B       images per minibatch, 4..1024 (default 16). CKA needs at\n"
    "                      least 4: a last batch of 1-3 images is left out of CKA\n"
    "                      (the summary says how many images CKA covers)\n"
    "      --limit N       the first N images of INPUT only\n"
    "      --shard I/N     only the minibatches B with B %% N == I (0 <= I < N);\n"
    "                      `kdcam merge` combines the N shard folders\n"
    "      --resume        continue DIR/rows.jsonl after its last complete batch\n"
    "      --teacher-layers, --student-layers L,...  CKA layers (default: each\n"
    "                      stage output and the logits)\n"
    "      --method M      CAM method (default gradcam)\n"
    "      --target T      the class every map explains: own (each model's top-1, the\n"
    "                      default), teacher (the first model's top-1), label (the\n"
    "                      image's class), or a class index or name (-c C is the same)\n"
    "      --faith S       also the faithfulness of each model's maps: deletion and\n"
    "                      insertion AUC in S steps, Average Drop, Increase in\n"
    "                      Confidence (docs/analyze.md; 2S+4 extra image passes per\n"
    "                      image and model, batched by --batch; default 0: off).\n"
    "                      Deletion goes to the mean colour, insertion starts from\n"
    "                      RISE's blurred copy\n"
    "      --road          also ROAD: most and least relevant first at the 10th..90th\n"
    "                      percentiles with noisy linear imputation (19 passes and\n"
    "                      18 sparse solves per image and model)\n"
    "      --no-kd         skip the ICKD Gram and attention-transfer distances\n"
    "                      between paired teacher and student stages\n"
    "      --progress-every S  seconds between progress lines when stderr is not a\n"
    "                      terminal (default 10)\n"
    "  -t, --threads N     worker threads per model (default 1)\n"
    "  -o, --out DIR       output folder (required)\n"
    "      --eps E, --act relu|relu6, --allow-unused, --prefix P, --kernels K\n"
    "                      apply to every model\n";

typedef struct an_model {
    cli_model_spec spec;
    kdc_model *m;
    kdc_run *run;
    kdc_preprocess pp;
    int cam_layer, K, nl;
    const char *cam_name;
    int layers[AN_MAX_LAYERS + 1]; /* CKA layers, then the logits layer */
    char *lnames[AN_MAX_LAYERS];
    double *gram[AN_MAX_LAYERS][AN_KERNELS]; /* n x n each, this batch */
    float *logits, *map;                      /* n x K, n x h x w       */
    double *faith;                            /* n x 4: deletion AUC, insertion
                                                 AUC, score Y, score on x * map */
    double *road;                             /* n x 2: MoRF, LeRF            */
    int kd_pair[AN_MAX_LAYERS];               /* students: the layer paired with
                                                 teacher layer i, or -1       */
    float *stage[AN_MAX_LAYERS];              /* teacher: n x C x H x W of its
                                                 paired layers, this batch    */
    int stage_nchw[AN_MAX_LAYERS][4];
    double *kd;                               /* students: n x nl x 2 (ICKD, AT) */
    int *top1;
    char sha[65];
} an_model;

typedef struct an_opts {
    int batch, shard, nshards, resume, progress_every, faith, road, no_kd;
    const char *tlayers, *slayers;
} an_opts;

/* Options of this command alone, taken out before cli_parse. */
static int take_own_options(int argc, char **argv, char **rest, int *nrest, an_opts *a)
{
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        long x;
        if (i > 0 && !strcmp(f, "--resume")) {
            a->resume = 1;
            continue;
        }
        if (i > 0 && (!strcmp(f, "--road") || !strcmp(f, "--no-kd"))) {
            *(f[2] == 'r' ? &a->road : &a->no_kd) = 1;
            continue;
        }
        int is_val = i > 0 && (!strcmp(f, "--batch") || !strcmp(f, "--shard") ||
                               !strcmp(f, "--teacher-layers") || !strcmp(f, "--student-layers") ||
                               !strcmp(f, "--progress-every") || !strcmp(f, "--faith"));
        if (!is_val) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        if (!v)
            return cli_error("option %s needs a value (see --help)", f);
        i++;
        if (!strcmp(f, "--batch")) {
            x = strtol(v, &end, 10);
            if (end == v || *end || x < 4 || x > 1024)
                return cli_error("--batch: '%s' is not a number in 4..1024 (CKA's unbiased "
                                 "HSIC needs minibatches of at least 4)", v);
            a->batch = (int)x;
        } else if (!strcmp(f, "--faith")) {
            x = strtol(v, &end, 10);
            if (end == v || *end || x < 0 || x > 1024)
                return cli_error("--faith: '%s' is not a number of steps in 0..1024", v);
            a->faith = (int)x;
        } else if (!strcmp(f, "--progress-every")) {
            x = strtol(v, &end, 10);
            if (end == v || *end || x < 1 || x > 86400)
                return cli_error("--progress-every: '%s' is not a number of seconds", v);
            a->progress_every = (int)x;
        } else if (!strcmp(f, "--shard")) {
            long I = strtol(v, &end, 10), N = -1;
            if (end != v && *end == '/') {
                char *e2;
                N = strtol(end + 1, &e2, 10);
                if (e2 == end + 1 || *e2)
                    N = -1;
            }
            if (N < 1 || N > 100000 || I < 0 || I >= N)
                return cli_error("--shard: '%s' is not I/N with 0 <= I < N", v);
            a->shard = (int)I;
            a->nshards = (int)N;
        } else if (!strcmp(f, "--teacher-layers")) {
            a->tlayers = v;
        } else {
            a->slayers = v;
        }
    }
    rest[*nrest] = NULL;
    return 0;
}

/* The default CKA layers: the last block of each resolution among the
 * stages (layer1..layer4, or MobileNetV1's model.1..model.13), then the
 * logits. */
static int default_layers(an_model *am, int h, int w)
{
    int cand[32], nc = 0, chw[3], next[3];
    char name[32];
    for (int k = 1; k <= 13 && nc < 32; k++) {
        int l;
        snprintf(name, sizeof name, "layer%d", k);
        if (k <= 4 && !kdc_model_find_layer(am->m, name, &l))
            cand[nc++] = l;
        snprintf(name, sizeof name, "model.%d", k);
        if (!kdc_model_find_layer(am->m, name, &l))
            cand[nc++] = l;
    }
    kdc_status st;
    for (int i = 0; i < nc && am->nl < AN_MAX_LAYERS - 1; i++) {
        if ((st = kdc_model_layer_shape(am->m, cand[i], h, w, chw)))
            return cli_lib_error(st, am->spec.name);
        if (i + 1 < nc) {
            if ((st = kdc_model_layer_shape(am->m, cand[i + 1], h, w, next)))
                return cli_lib_error(st, am->spec.name);
            if (next[1] == chw[1] && next[2] == chw[2])
                continue;
        }
        am->layers[am->nl++] = cand[i];
    }
    am->layers[am->nl++] = kdc_model_num_layers(am->m) - 1;
    return 0;
}

static int chosen_layers(an_model *am, const char *list, int h, int w)
{
    if (!list)
        return default_layers(am, h, w);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (am->nl == AN_MAX_LAYERS)
            return cli_error("at most %d CKA layers per model", AN_MAX_LAYERS);
        kdc_status st = kdc_model_find_layer(am->m, t, &am->layers[am->nl]);
        if (st)
            return cli_lib_error(st, am->spec.name);
        am->nl++;
    }
    return am->nl ? 0 : cli_error("an empty layer list");
}

static int layer_names(an_model *am)
{
    for (int l = 0; l < am->nl; l++) {
        const char *nm = kdc_model_layer_name(am->m, am->layers[l]);
        /* the stage alias reads better than the block's own name */
        for (int k = 0;; k++) {
            const char *al = kdc_model_layer_alias(am->m, am->layers[l], k);
            if (!al)
                break;
            if (strlen(al) > 5 && !strchr(al + 6, '.') &&
                (!strncmp(al, "layer", 5) || !strncmp(al, "model.", 6)))
                nm = al;
        }
        if (!(am->lnames[l] = strdup(nm)))
            return cli_error("out of memory");
    }
    return 0;
}

/* The meta line: everything that must be equal for rows to be combined. The
 * command line is kept without the options that do not change results
 * (--resume, --shard, -o, --threads, --progress-every). */
static void write_meta(FILE *f, int argc, char **argv, const char *src, const cli_dataset *ds,
                       long images, const an_opts *a, const an_model *ams, int nm,
                       kdc_cam_method method, long seed, int h, int w, const char *tdesc)
{
    static const char *kinds[] = {"shapes", "imagefolder", "list"};
    fprintf(f, "{\"type\":\"meta\",\"tool\":\"kdcam analyze\",\"version\":\"%s\",\"commit\":\"%s\","
            "\"command\":[", kdc_version(), KDCAM_COMMIT);
    int first = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--resume"))
            continue;
        if (i > 0 && (!strcmp(s, "--shard") || !strcmp(s, "-o") || !strcmp(s, "--out") ||
                      !strcmp(s, "-t") || !strcmp(s, "--threads") ||
                      !strcmp(s, "--progress-every"))) {
            i++;
            continue;
        }
        fputs(first ? "" : ",", f);
        an_json_string(f, s);
        first = 0;
    }
    fputs("],\"input\":", f);
    an_json_string(f, src);
    fprintf(f, ",\"input_kind\":\"%s\",\"images\":%ld,\"image_size\":[%d,%d],\"batch\":%d,"
            "\"method\":\"%s\",\"cam_target\":\"%s\","
            "\"temperatures\":[1,4],\"kernels\":[\"linear\",\"rbf\"],"
            "\"rbf_bandwidth\":\"median squared distance\",\"faith_steps\":%d,"
            "\"insertion_substrate\":\"RISE blur 11 5\",\"road\":%s,\"kd_distances\":%s,"
            "\"seeds\":{\"road\":%d,\"dataset\":",
            kinds[ds->kind], images, h, w, a->batch, kdc_cam_method_name(method),
            strcmp(tdesc, "own") ? tdesc : "top-1 class of each model", a->faith,
            a->road ? "true" : "false", a->no_kd ? "false" : "true", AN_ROAD_SEED);
    if (seed >= 0)
        fprintf(f, "%ld", seed);
    else
        fputs("null", f);
    fputs("},\"labels\":", f);
    fputs(ds->has_labels ? "true" : "false", f);
    fputs(",\"boxes\":", f);
    fputs(ds->has_boxes ? "true" : "false", f);
    fputs(",\"models\":[", f);
    for (int i = 0; i < nm; i++) {
        const an_model *am = &ams[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        an_json_string(f, am->spec.name);
        fprintf(f, ",\"arch\":\"%s\",\"weights\":", kdc_model_arch(am->m));
        an_json_string(f, am->spec.weights);
        fprintf(f, ",\"sha256\":\"%s\",\"classes\":%d,\"cam_layer\":", am->sha, am->K);
        an_json_string(f, am->cam_name);
        fputs(",\"layers\":[", f);
        for (int l = 0; l < am->nl; l++) {
            fputs(l ? "," : "", f);
            an_json_string(f, am->lnames[l]);
        }
        if (i > 0 && !a->no_kd) { /* the teacher layer each is compared with */
            fputs("],\"kd_pairs\":[", f);
            for (int l = 0; l < ams[0].nl; l++)
                fprintf(f, "%s%d", l ? "," : "", am->kd_pair[l]);
        }
        fputs("]}", f);
    }
    fprintf(f, "],\"shard\":[%d,%d]}\n", a->shard, a->nshards);
}

/* The shapes dataset's seed from labels.json (-1 if none). */
static long shapes_seed(const cli_dataset *ds)
{
    char path[4200];
    size_t len;
    snprintf(path, sizeof path, "%s/labels.json", ds->dir);
    char *text = cli_read_file(path, &len), err[64];
    cj_value v;
    long seed = -1;
    if (text && !cj_parse(text, len, &v, err, sizeof err)) {
        const cj_value *s = cj_get(&v, "seed");
        if (s && s->type == CJ_NUM && s->num >= 0 && s->num < 9.0e15)
            seed = (long)s->num;
        cj_free(&v);
    }
    free(text);
    return seed;
}

static void print_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void free_batch(an_model *ams, int nm)
{
    for (int i = 0; i < nm; i++) {
        an_model *am = &ams[i];
        for (int l = 0; l < am->nl; l++)
            for (int k = 0; k < AN_KERNELS; k++) {
                free(am->gram[l][k]);
                am->gram[l][k] = NULL;
            }
        free(am->logits);
        free(am->map);
        free(am->top1);
        free(am->faith);
        am->faith = NULL;
        free(am->road);
        free(am->kd);
        am->road = am->kd = NULL;
        for (int l = 0; l < AN_MAX_LAYERS; l++) {
            free(am->stage[l]);
            am->stage[l] = NULL;
        }
        am->logits = am->map = NULL;
        am->top1 = NULL;
    }
}

/* The softmax probability of class c for `count` inputs (chunk x 3 x h x w),
 * one pass of at most `chunk` images at a time. */
static kdc_status class_probs(an_model *am, const float *x, int count, int h, int w, int c,
                              float *logits, double *p)
{
    return an_class_probs(am->run, am->layers[am->nl], am->K, x, count, h, w, c, logits, p);
}

/* Faithfulness of each image's map (the model's top-1 class), with RISE's
 * substrates: deletion in `steps` steps to the normalised zero image (the
 * per-channel mean colour), insertion from the blurred image, their AUC, and the class score on x and on x *
 * map (Average Drop, Increase in Confidence). Perturbed inputs are made
 * `chunk` at a time: memory is chunk images, whatever the steps. */
static int faithfulness(an_model *am, const float *x, int n, int h, int w, int steps, int chunk)
{
    const size_t plane = (size_t)h * w, one = 3 * plane;
    float *buf = malloc((size_t)chunk * one * sizeof *buf), *zero = calloc(one, sizeof *zero);
    float *blur = malloc(one * sizeof *blur);
    float *logits = malloc((size_t)chunk * am->K * sizeof *logits);
    double *curve = malloc((size_t)(steps + 1) * sizeof *curve);
    kdc_status st = KDC_OK;
    int rc = 0;
    if (!(am->faith = malloc((size_t)n * 4 * sizeof *am->faith)) || !buf || !zero || !logits ||
        !curve || !blur) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < n && !st; b++) {
        const float *xb = x + (size_t)b * one, *mp = am->map + (size_t)b * plane;
        const int c = am->top1[b];
        st = kdc_faith_blur(xb, h, w, 11, 5.0, blur); /* RISE's insertion substrate */
        for (int ins = 0; ins < 2 && !st; ins++) {
            for (int k0 = 0; k0 <= steps && !st; k0 += chunk) {
                const int cnt = steps + 1 - k0 < chunk ? steps + 1 - k0 : chunk;
                if (!(st = kdc_faith_perturb(xb, ins ? blur : zero, mp, h, w, steps, ins, k0,
                                             cnt, buf)))
                    st = class_probs(am, buf, cnt, h, w, c, logits, curve + k0);
            }
            am->faith[b * 4 + ins] = kdc_faith_auc(curve, steps + 1);
        }
        for (size_t i = 0; i < one && !st; i++) /* x and x * map, one pass */
            buf[i] = xb[i], buf[one + i] = xb[i] * mp[i % plane];
        if (!st) /* chunk = --batch >= 4 */
            st = class_probs(am, buf, 2, h, w, c, logits, am->faith + b * 4 + 2);
    }
    if (st)
        rc = cli_lib_error(st, am->spec.name);
out:
    free(buf);
    free(zero);
    free(blur);
    free(logits);
    free(curve);
    return rc;
}

/* One model on one minibatch: Gram matrices of its CKA layers, logits, map. */
/* Whether layer l of am takes part in the ICKD / AT distances (the
 * teacher: some student pairs a layer with it, marked in its kd_pair). */
static int kd_needed(const an_model *am, const an_model *teacher, int l)
{
    if (!teacher)
        return am->kd_pair[l] > 0;
    for (int i = 0; i < teacher->nl; i++)
        if (am->kd_pair[i] == l)
            return 1;
    return 0;
}

static int run_model(an_model *am, kdc_image **pics, int n, int h, int w, kdc_cam_method method,
                     int want_gram, int faith_steps, int chunk, const an_model *teacher,
                     const an_opts *a, long i0, const cli_target *tgt, int mi,
                     const int *teacher_top1, const cli_item *items)
{
    const size_t plane = (size_t)h * w;
    float *x = malloc((size_t)n * 3 * plane * sizeof *x), *act = NULL;
    kdc_cam_result *res = NULL;
    kdc_status st = KDC_OK;
    int rc = 0;
    am->logits = malloc((size_t)n * am->K * sizeof *am->logits);
    am->map = malloc((size_t)n * plane * sizeof *am->map);
    am->top1 = malloc((size_t)n * sizeof *am->top1);
    if (!x || !am->logits || !am->map || !am->top1) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < n; b++)
        if ((st = kdc_preprocess_image(pics[b], &am->pp, x + (size_t)b * 3 * plane, NULL)))
            goto out;
    if ((st = kdc_run_forward(am->run, x, n, h, w, am->layers, am->nl + 1)))
        goto out;
    const int tnl = teacher ? teacher->nl : 0;
    if (teacher && !a->no_kd) {
        if (!(am->kd = malloc((size_t)n * tnl * 2 * sizeof *am->kd))) {
            rc = cli_error("out of memory");
            goto out;
        }
        for (size_t q = 0; q < (size_t)n * tnl * 2; q++)
            am->kd[q] = NAN;
    }
    for (int l = 0; l < am->nl; l++) {
        const int need_kd = !a->no_kd && kd_needed(am, teacher, l);
        if (!want_gram && !need_kd)
            continue;
        int nchw[4];
        if ((st = kdc_run_layer_shape(am->run, am->layers[l], nchw)))
            goto out;
        const size_t d = (size_t)nchw[1] * nchw[2] * nchw[3];
        free(act);
        if (!(act = malloc((size_t)n * d * sizeof *act))) {
            rc = cli_error("out of memory");
            goto out;
        }
        if ((st = kdc_run_read_layer(am->run, am->layers[l], act, (size_t)n * d)))
            goto out;
        for (int k = 0; k < AN_KERNELS && want_gram; k++)
            if (!(am->gram[l][k] = malloc((size_t)n * n * sizeof(double)))) {
                rc = cli_error("out of memory");
                goto out;
            }
        if (want_gram && ((st = kdc_cka_gram(act, n, d, KDC_CKA_LINEAR, am->gram[l][0])) ||
                          (st = kdc_cka_gram(act, n, d, KDC_CKA_RBF, am->gram[l][1]))))
            goto out;
        if (need_kd && !teacher) { /* kept for the students of this batch */
            am->stage[l] = act;
            memcpy(am->stage_nchw[l], nchw, sizeof nchw);
            act = NULL;
        }
        for (int i = 0; i < tnl && need_kd && !rc; i++)
            if (am->kd_pair[i] == l)
                rc = an_kd_batch(teacher->stage[i], teacher->stage_nchw[i], act, nchw, n,
                                 am->kd + (size_t)i * 2, tnl * 2);
        if (rc)
            goto out;
    }
    if ((st = kdc_run_read_layer(am->run, am->layers[am->nl], am->logits, (size_t)n * am->K)))
        goto out;
    kdc_cam_options co = {.method = method, .layers = &am->cam_layer, .nlayers = 1};
    int *tc = malloc((size_t)n * 2 * sizeof *tc), use = 0; /* --target: cli/target.c */
    if (!tc) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < n; b++)
        tc[n + b] = items ? items[b].cls : -1;
    rc = cli_target_classes(tgt, am->m, am->spec.name, mi, teacher_top1, items ? tc + n : NULL, n, tc,
                            &use);
    co.target = (kdc_target){.kind = KDC_TARGET_LOGIT, .classes = use ? tc : NULL};
    if (!rc)
        st = kdc_cam_compute(am->run, x, n, h, w, &co, &res);
    free(tc);
    if (rc || st)
        goto out;
    memcpy(am->map, res->map, (size_t)n * plane * sizeof *am->map);
    memcpy(am->top1, res->classes, (size_t)n * sizeof *am->top1);
    if (faith_steps > 0)
        rc = faithfulness(am, x, n, h, w, faith_steps, chunk);
    if (!rc && a->road) {
        if (!(am->road = malloc((size_t)n * 2 * sizeof *am->road)))
            rc = cli_error("out of memory");
        else
            rc = an_road(am->run, am->layers[am->nl], am->K, x, am->map, am->top1, n, h, w,
                         chunk, i0, AN_ROAD_SEED, am->road);
    }
out:
    if (st)
        rc = cli_lib_error(st, am->spec.name);
    kdc_cam_result_destroy(res);
    free(act);
    free(x);
    return rc;
}

/* The image rows and the batch row of minibatch bi (images i0 .. i0+n-1). */
static int write_batch(FILE *f, const cli_dataset *ds, long bi, long i0, int n, int h, int w,
                       an_model *ams, int nm)
{
    const size_t plane = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        const cli_item *it = &ds->items[i0 + b];
        fprintf(f, "{\"type\":\"image\",\"i\":%ld,\"file\":", i0 + b);
        an_json_string(f, it->file);
        if (ds->has_labels)
            fprintf(f, ",\"label\":%d,\"m\":[", it->cls);
        else
            fputs(",\"label\":null,\"m\":[", f);
        const an_model *t = &ams[0];
        const float *tmap = t->map + b * plane;
        for (int i = 0; i < nm; i++) {
            const an_model *am = &ams[i];
            const float *z = am->logits + (size_t)b * am->K, *mp = am->map + b * plane;
            const int c = kdc_argmax(z, am->K);
            fprintf(f, "%s{\"top1\":%d,\"p\":", i ? "," : "", c);
            print_num(f, an_softmax_prob(z, am->K, c));
            double kl1 = NAN, kl4 = NAN, r = NAN, iou = NAN;
            if (i > 0) {
                if (am->K == t->K) {
                    const float *tz = t->logits + (size_t)b * t->K;
                    if (kdc_prediction_kl(tz, z, am->K, 1.0, &kl1) ||
                        kdc_prediction_kl(tz, z, am->K, 4.0, &kl4))
                        return cli_lib_error(KDC_ERR_INVALID_ARGUMENT, "KL");
                }
                r = kdc_map_pearson(mp, tmap, plane);
                iou = kdc_map_iou_top(mp, tmap, plane, 0.2);
            }
            fputs(",\"kl1\":", f);
            print_num(f, kl1);
            fputs(",\"kl4\":", f);
            print_num(f, kl4);
            fputs(",\"pearson\":", f);
            print_num(f, r);
            fputs(",\"iou20\":", f);
            print_num(f, iou);
            if (it->has_box) {
                fprintf(f, ",\"pointing\":%d,\"energy\":", kdc_map_pointing(mp, w, h, it->box));
                print_num(f, kdc_map_energy_in_box(mp, w, h, it->box));
            } else {
                fputs(",\"pointing\":null,\"energy\":null", f);
            }
            if (am->road) {
                fputs(",\"road_morf\":", f);
                print_num(f, am->road[b * 2]);
                fputs(",\"road_lerf\":", f);
                print_num(f, am->road[b * 2 + 1]);
            }
            for (int q = 0; q < 2 && am->kd; q++) { /* per teacher layer */
                fputs(q ? "],\"at\":[" : ",\"ickd\":[", f);
                for (int l = 0; l < t->nl; l++) {
                    fputs(l ? "," : "", f);
                    print_num(f, am->kd[((size_t)b * t->nl + l) * 2 + q]);
                }
                fputs(q ? "]" : "", f);
            }
            if (am->faith) {
                static const char *fk[4] = {"deletion", "insertion", "y", "y_map"};
                for (int q = 0; q < 4; q++) {
                    fprintf(f, ",\"%s\":", fk[q]);
                    print_num(f, am->faith[b * 4 + q]);
                }
            }
            fputc('}', f);
        }
        fputs("]}\n", f);
    }
    fprintf(f, "{\"type\":\"batch\",\"b\":%ld,\"n\":%d,\"hsic\":", bi, n);
    if (n < 4) {
        fputs("null}\n", f);
        return 0;
    }
    fputc('[', f);
    int first = 1;
    for (int s = 1; s < nm; s++)
        for (int k = 0; k < AN_KERNELS; k++)
            for (int ti = 0; ti < ams[0].nl; ti++)
                for (int sj = 0; sj < ams[s].nl; sj++) {
                    double hs[3];
                    const double *KT = ams[0].gram[ti][k], *LS = ams[s].gram[sj][k];
                    kdc_status st;
                    if ((st = kdc_hsic_unbiased(KT, KT, n, &hs[0])) ||
                        (st = kdc_hsic_unbiased(KT, LS, n, &hs[1])) ||
                        (st = kdc_hsic_unbiased(LS, LS, n, &hs[2])))
                        return cli_lib_error(st, "CKA");
                    fputs(first ? "[" : ",[", f);
                    for (int q = 0; q < 3; q++) {
                        fputs(q ? "," : "", f);
                        print_num(f, hs[q]);
                    }
                    fputc(']', f);
                    first = 0;
                }
    fputs("]}\n", f);
    return 0;
}

/* DIR/disagree_I.png: image I and each model's map over it, side by side,
 * each column headed by the model's name and (students) the Pearson r of
 * its map with the teacher's. */
static int disagreement_grid(const cli_dataset *ds, long idx, an_model *ams, int nm,
                             kdc_cam_method method, const char *dir, const cli_target *tgt)
{
    static const unsigned char WHITE[3] = {255, 255, 255}, INK[3] = {20, 20, 20};
    char path[4200];
    kdc_image *pic = NULL, *crop = NULL, *fig = NULL, *ov = NULL;
    kdc_cam_result *res[CLI_MAX_MODELS] = {0};
    float *x = NULL;
    kdc_status st;
    int rc = 0, h = 0, w = 0, tw, th;
    cli_dataset_path(ds, (int)idx, path, sizeof path);
    if ((st = kdc_image_load(path, &pic)) ||
        (st = kdc_preprocess_size(&ams[0].pp, pic->width, pic->height, &h, &w)))
        goto out;
    const size_t plane = (size_t)h * w;
    if (!(x = malloc(3 * plane * sizeof *x))) {
        rc = cli_error("out of memory");
        goto out;
    }
    int tc = -1, teacher = -1, label = ds->has_labels ? ds->items[idx].cls : -1, use = 0;
    for (int i = 0; i < nm && !st && !rc; i++) {
        kdc_cam_options co = {.method = method, .layers = &ams[i].cam_layer, .nlayers = 1};
        if (!(st = kdc_preprocess_image(pic, &ams[i].pp, x, i ? NULL : &crop)) &&
            !(rc = cli_target_classes(tgt, ams[i].m, ams[i].spec.name, i, &teacher,
                                      label >= 0 ? &label : NULL, 1, &tc, &use))) {
            co.target = (kdc_target){.kind = KDC_TARGET_LOGIT, .classes = use ? &tc : NULL};
            st = kdc_cam_compute(ams[i].run, x, 1, h, w, &co, &res[i]);
            if (!st && i == 0)
                teacher = res[0]->classes[0];
        }
    }
    if (st || rc)
        goto out;
    const int pad = 8;
    kdc_text_size("Hg", 1, &tw, &th);
    const int head = 2 * (th + 4) + pad, W = pad + (nm + 1) * (w + pad), H = head + h + pad;
    if ((st = kdc_image_create(W, H, &fig)))
        goto out;
    kdc_image_fill(fig, 0, 0, W, H, WHITE);
    kdc_image_draw_text(fig, pad, pad, "input", 1, INK);
    kdc_image_paste(fig, crop, pad, head);
    for (int i = 0; i < nm && !st; i++) {
        char txt[160];
        const int x0 = pad + (i + 1) * (w + pad);
        snprintf(txt, sizeof txt, "%.40s", ams[i].spec.name);
        kdc_image_draw_text(fig, x0, pad, txt, 1, INK);
        if (i)
            snprintf(txt, sizeof txt, "r = %.3f", kdc_map_pearson(res[i]->map, res[0]->map, plane));
        else
            snprintf(txt, sizeof txt, "(teacher)");
        kdc_image_draw_text(fig, x0, pad + th + 4, txt, 1, INK);
        if (!(st = kdc_overlay(crop, res[i]->map, &ov)))
            kdc_image_paste(fig, ov, x0, head);
        kdc_image_destroy(ov);
        ov = NULL;
    }
    snprintf(path, sizeof path, "%s/disagree_%ld.png", dir, idx);
    if (!st)
        st = kdc_image_save_png(fig, path);
out:
    if (st)
        rc = cli_lib_error(st, path);
    for (int i = 0; i < nm; i++)
        kdc_cam_result_destroy(res[i]);
    kdc_image_destroy(fig);
    kdc_image_destroy(crop);
    kdc_image_destroy(pic);
    free(x);
    return rc;
}

int cmd_analyze(int argc, char **argv)
{
    cli_opts o;
    an_opts a = {.batch = 16, .nshards = 1, .progress_every = 10};
    an_model ams[CLI_MAX_MODELS];
    cli_dataset ds;
    kdc_image **pics = NULL;
    FILE *f = NULL;
    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    int nrest = 0, rc, nm = 0;
    kdc_cam_method method = KDC_CAM_GRADCAM;
    an_worst worst[AN_WORST];
    int nworst = 0;

    memset(ams, 0, sizeof ams);
    memset(&ds, 0, sizeof ds);
    if (!rest)
        return cli_error("out of memory");
    if ((rc = take_own_options(argc, argv, rest, &nrest, &a))) {
        free(rest);
        return 2;
    }
    rc = cli_parse(nrest, rest, (CLI_MODEL_FLAGS & ~OPT_WEIGHTS & ~OPT_ARCH) | OPT_MODELS |
                   OPT_IMAGES | OPT_CAM | OPT_OUT | OPT_LIMIT | OPT_CLASS | OPT_TARGET,
                   analyze_usage, &o);
    free(rest);
    if (rc)
        return rc < 0 ? 2 : 0;
    cli_target tgt;
    char tdesc[160];
    if (cli_target_from_opts(&o, &tgt))
        return 2;
    cli_target_describe(&tgt, tdesc, sizeof tdesc);
    if (o.n_models < 2)
        return cli_error("analyze needs a teacher and at least one student (--model twice)"), 2;
    if (o.n_images != 1)
        return cli_error("expected one INPUT (a folder or a list file), got %d", o.n_images), 2;
    if (!o.out_dir)
        return cli_error("no output folder: -o DIR"), 2;
    if (o.guided || o.npy || o.on_original || o.feature || o.labels)
        return cli_error("--guided, --npy, --on-original, --feature and --labels do not apply "
                         "to `kdcam analyze`"), 2;
    if (o.method && kdc_cam_method_parse(o.method, &method))
        return cli_lib_error(KDC_ERR_INVALID_ARGUMENT, "--method"), 2;
    nm = o.n_models;
    for (int i = 0; i < nm; i++)
        if (cli_parse_model_spec(o.models[i], &ams[i].spec))
            return 2;
    const char *src = o.images[0];
    if ((rc = cli_dataset_open(src, &ds)))
        return rc;
    long images = ds.n;
    if (o.limit > 0 && o.limit < images)
        images = o.limit;

    /* the image size: the first image as it is (a shapes folder: the boxes
     * are in its pixels) or the teacher's resize and crop */
    kdc_image *first = NULL;
    char path[4200];
    int h = 0, w = 0;
    kdc_status st;
    cli_dataset_path(&ds, 0, path, sizeof path);
    if ((st = kdc_image_load(path, &first))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    for (int i = 0; i < nm && !rc; i++) {
        an_model *am = &ams[i];
        cli_opts mo = o;
        mo.arch = am->spec.arch[0] ? am->spec.arch : NULL;
        mo.weights = am->spec.weights;
        if ((rc = cli_load_model(&mo, &am->m)) || (rc = cli_sha256_file(am->spec.weights, am->sha)))
            break;
        if (!(am->K = kdc_model_num_classes(am->m))) {
            rc = cli_error("%s: a detection backbone has no classes to analyze", am->spec.name);
            break;
        }
        if ((rc = cli_default_cam_layer(am->m, &am->cam_layer, &am->cam_name)))
            break;
        kdc_model_preprocess(am->m, &am->pp);
        if (ds.kind == CLI_DS_SHAPES) {
            am->pp.resize_short = am->pp.crop_h = am->pp.crop_w = 0;
        } else if (i > 0) { /* the teacher's geometry, the model's normalisation */
            am->pp.resize_short = ams[0].pp.resize_short;
            am->pp.crop_h = ams[0].pp.crop_h;
            am->pp.crop_w = ams[0].pp.crop_w;
        }
        if (i == 0 && (st = kdc_preprocess_size(&am->pp, first->width, first->height, &h, &w))) {
            rc = cli_lib_error(st, path);
            break;
        }
        if ((rc = chosen_layers(am, i ? a.slayers : a.tlayers, h, w)) || (rc = layer_names(am)))
            break;
        am->layers[am->nl] = kdc_model_num_layers(am->m) - 1;
        kdc_run_options ro = {.threads = o.threads};
        if ((st = kdc_run_create(am->m, &ro, &am->run)))
            rc = cli_lib_error(st, am->spec.name);
    }
    kdc_image_destroy(first);
    for (int i = 1; i < nm && !rc && !a.no_kd; i++) {
        rc = an_kd_pairs(ams[0].m, ams[0].layers, ams[0].nl, ams[i].m, ams[i].layers,
                         ams[i].nl, h, w, ams[i].kd_pair);
        for (int l = 0; l < ams[0].nl && !rc; l++) /* the teacher keeps paired layers */
            ams[0].kd_pair[l] |= ams[i].kd_pair[l] >= 0;
    }
    if (rc || (rc = cli_prepare_out_dir(o.out_dir)))
        goto out;

    /* the rows file: new, or resumed after its last complete batch */
    char rows[4200], meta_path[4200];
    snprintf(rows, sizeof rows, "%s/%s", o.out_dir, AN_ROWS);
    snprintf(meta_path, sizeof meta_path, "%s/%s.meta.tmp", o.out_dir, AN_ROWS);
    FILE *mf = fopen(meta_path, "w+");
    if (!mf) {
        rc = cli_error("%s: cannot create: %s", meta_path, strerror(errno));
        goto out;
    }
    write_meta(mf, argc, argv, src, &ds, images, &a, ams, nm, method,
               ds.kind == CLI_DS_SHAPES ? shapes_seed(&ds) : -1, h, w, tdesc);
    long mlen = ftell(mf);
    char *meta = malloc((size_t)mlen + 1);
    rewind(mf);
    if (!meta || fread(meta, 1, (size_t)mlen, mf) != (size_t)mlen) {
        fclose(mf);
        remove(meta_path);
        free(meta);
        rc = cli_error("%s: cannot read back", meta_path);
        goto out;
    }
    fclose(mf);
    remove(meta_path);
    meta[mlen] = '\0';
    long next_batch = a.shard;
    struct stat sb;
    if (a.resume && !stat(rows, &sb)) {
        an_rows r;
        if ((rc = an_rows_read(rows, &r, 0))) {
            free(meta);
            goto out;
        }
        if (strcmp(r.meta, strtok(meta, "\n"))) {
            rc = cli_error("%s: was written by another analysis (models, weights, layers, "
                           "inputs, batch or shard differ): cannot --resume it", rows);
        } else {
            if (r.nbatches)
                next_batch = r.last_batch + a.nshards;
            if (truncate(rows, r.complete_bytes))
                rc = cli_error("%s: cannot truncate: %s", rows, strerror(errno));
            else if (!(f = fopen(rows, "a")))
                rc = cli_error("%s: cannot append: %s", rows, strerror(errno));
            else
                fprintf(stderr, "kdcam analyze: resuming %s at image %ld\n", rows,
                        next_batch * a.batch);
        }
        an_rows_free(&r);
    } else if (!a.resume && !stat(rows, &sb)) {
        rc = cli_error("%s exists: use --resume to continue it, or another -o", rows);
    } else if (!(f = fopen(rows, "w")) || fputs(meta, f) == EOF || fflush(f)) {
        rc = cli_error("%s: cannot write: %s", rows, strerror(errno));
    }
    free(meta);
    if (rc)
        goto out;

    const long nbatches = (images + a.batch - 1) / a.batch;
    long todo = 0, done = 0;
    for (long b = a.shard; b < nbatches; b += a.nshards)
        todo += b * a.batch + a.batch <= images ? a.batch : images - b * a.batch;
    for (long b = a.shard; b < next_batch && b < nbatches; b += a.nshards)
        done += b * a.batch + a.batch <= images ? a.batch : images - b * a.batch;
    cli_progress prog;
    cli_progress_start(&prog, "kdcam analyze", todo - done, a.progress_every);
    const long done0 = done;
    if (!(pics = calloc((size_t)a.batch, sizeof *pics))) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (long b = next_batch; b < nbatches && !rc; b += a.nshards) {
        const long i0 = b * a.batch;
        const int n = (int)(i0 + a.batch <= images ? a.batch : images - i0);
        for (int k = 0; k < n && !rc; k++) {
            cli_dataset_path(&ds, (int)(i0 + k), path, sizeof path);
            if ((st = kdc_image_load(path, &pics[k])))
                rc = cli_lib_error(st, NULL);
            else if (ds.kind == CLI_DS_SHAPES && (pics[k]->width != w || pics[k]->height != h))
                rc = cli_error("%s: %dx%d, but the first image is %dx%d (all images of a "
                               "folder must have one size)", path, pics[k]->width,
                               pics[k]->height, w, h);
        }
        for (int i = 0; i < nm && !rc; i++)
            rc = run_model(&ams[i], pics, n, h, w, method, n >= 4, a.faith, a.batch,
                           i ? &ams[0] : NULL, &a, i0, &tgt, i, ams[0].top1,
                           ds.has_labels ? ds.items + i0 : NULL);
        if (!rc)
            rc = write_batch(f, &ds, b, i0, n, h, w, ams, nm);
        if (!rc && fflush(f))
            rc = cli_error("%s: cannot write: %s", rows, strerror(errno));
        free_batch(ams, nm);
        for (int k = 0; k < n; k++) {
            kdc_image_destroy(pics[k]);
            pics[k] = NULL;
        }
        done += n;
        if (!rc)
            cli_progress_update(&prog, done - done0, 0);
    }
    if (!rc)
        cli_progress_update(&prog, done - done0, 1);
    if (f && fclose(f) && !rc)
        rc = cli_error("%s: cannot write: %s", rows, strerror(errno));
    f = NULL;
    if (!rc)
        rc = an_summarize(o.out_dir, 0, 1, worst, &nworst);
    for (int k = 0; k < nworst && !rc; k++)
        rc = disagreement_grid(&ds, worst[k].i, ams, nm, method, o.out_dir, &tgt);
out:
    if (f)
        fclose(f);
    free(pics);
    for (int i = 0; i < nm; i++) {
        for (int l = 0; l < ams[i].nl; l++)
            free(ams[i].lnames[l]);
        kdc_run_destroy(ams[i].run);
        kdc_model_destroy(ams[i].m);
    }
    free_batch(ams, nm);
    cli_dataset_free(&ds);
    return rc;
}
