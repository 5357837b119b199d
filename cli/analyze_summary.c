/* analyze_summary.c - DIR/summary.json, the CKA matrices (.npy, .png) and
 * the printed table, computed from DIR/rows.jsonl alone: image rows in
 * image order, batch rows in batch order, so the same rows give the same
 * summary whichever runs (one, resumed, merged shards) wrote them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>

#include "analyze.h"

static const char *v_names[V_COUNT] = {"accuracy", "top1_agreement", "kl_T1", "kl_T4",
                                       "pearson_vs_teacher", "iou20_vs_teacher", "pointing",
                                       "energy_in_box", "deletion_auc", "insertion_auc",
                                       "score", "score_on_image_times_map", "road_morf",
                                       "road_lerf", "road_combined"};

typedef struct an_stat {
    double *v;
    size_t n;
} an_stat;

static double num_or_nan(const cj_value *o, const char *key)
{
    const cj_value *v = cj_get(o, key);
    return v && v->type == CJ_NUM ? v->num : NAN;
}

static void print_mean_ci(FILE *f, const an_stat *s)
{
    double m, half;
    if (kdc_mean_ci95(s->v, s->n, &m, &half))
        fputs("null", f);
    else
        fprintf(f, "{\"mean\":%.17g,\"ci95\":%.17g,\"n\":%zu}", m, half, s->n);
}

static int write_matrix_npy(const char *path, const double *v, int64_t d0, int64_t d1,
                            int64_t d2)
{
    const size_t n = (size_t)(d0 * d1 * d2);
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f)
        return cli_error("out of memory");
    for (size_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    const int64_t dims3[3] = {d0, d1, d2};
    kdc_status st = d0 == 1 ? kdc_npy_save(path, f, 2, dims3 + 1) : kdc_npy_save(path, f, 3, dims3);
    free(f);
    return st ? cli_lib_error(st, path) : 0;
}

/* Keeps the AN_WORST lowest (pearson, i) pairs, sorted. */
static void note_worst(an_report *rep, long i, double r, const char *file)
{
    if (isnan(r))
        return;
    int at = rep->nworst;
    while (at > 0 && (rep->worst[at - 1].pearson > r))
        at--;
    if (at >= AN_WORST)
        return;
    const int last = rep->nworst < AN_WORST ? rep->nworst : AN_WORST - 1;
    memmove(&rep->worst[at + 1], &rep->worst[at], (size_t)(last - at) * sizeof rep->worst[0]);
    rep->worst[at].i = i;
    rep->worst[at].pearson = r;
    snprintf(rep->worst[at].file, sizeof rep->worst[at].file, "%s", file);
    if (rep->nworst < AN_WORST)
        rep->nworst++;
}

/* The layer name at index k of a model's meta "layers" (NULL if none). */
static const char *layer_at(const cj_value *model, int k)
{
    const cj_value *ly = cj_get(model, "layers");
    return ly && ly->type == CJ_ARR && k >= 0 && k < ly->n && ly->items[k].type == CJ_STR
               ? ly->items[k].str
               : NULL;
}

/* The student layer paired with teacher layer l (meta "kd_pairs"), or -1. */
static int kd_pair(const cj_value *student, int l)
{
    const cj_value *kp = cj_get(student, "kd_pairs");
    return kp && kp->type == CJ_ARR && l < kp->n && kp->items[l].type == CJ_NUM
               ? (int)kp->items[l].num
               : -1;
}

/* A student's ICKD and attention-transfer distances in summary.json: one
 * entry per paired teacher layer. */
static void kd_json(FILE *f, const cj_value *teacher, const cj_value *student,
                    an_stat kd[AN_KD_MAX][2], int kd_n)
{
    fputs(",\"kd_distances\":[", f);
    int first = 1;
    for (int l = 0; l < kd_n; l++) {
        const char *sl = layer_at(student, kd_pair(student, l)), *tl = layer_at(teacher, l);
        if (!sl || !tl)
            continue;
        fputs(first ? "{\"teacher_layer\":" : ",{\"teacher_layer\":", f);
        first = 0;
        an_json_string(f, tl);
        fputs(",\"student_layer\":", f);
        an_json_string(f, sl);
        fputs(",\"ickd\":", f);
        print_mean_ci(f, &kd[l][0]);
        fputs(",\"attention_transfer\":", f);
        print_mean_ci(f, &kd[l][1]);
        fputc('}', f);
    }
    fputc(']', f);
}

static void kd_report(an_report *rep, const cj_value *models, int nm,
                      an_stat kd[CLI_MAX_MODELS][AN_KD_MAX][2], int kd_n)
{
    for (int l = 0; l < kd_n; l++) {
        rep->kd_tl[l] = layer_at(&models->items[0], l);
        for (int i = 1; i < nm; i++) {
            rep->kd_sl[i][l] = layer_at(&models->items[i], kd_pair(&models->items[i], l));
            for (int q = 0; q < 2; q++)
                rep->kd_has[i][l][q] = !kdc_mean_ci95(kd[i][l][q].v, kd[i][l][q].n,
                                                      &rep->kd_mean[i][l][q], &rep->kd_ci[i][l][q]);
        }
    }
}

int an_summarize(const char *dir, int quiet, int grids, an_worst *worst, int *nworst)
{
    an_report *rep = calloc(1, sizeof *rep);
    if (!rep)
        return cli_error("out of memory");
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, AN_ROWS);
    an_rows r;
    int rc = an_rows_read(path, &r, 0);
    if (rc) {
        free(rep);
        return rc;
    }
    const cj_value *models = cj_get(&r.metav, "models");
    const int nm = models && models->type == CJ_ARR ? models->n : 0;
    if (nm < 2 || nm > CLI_MAX_MODELS) {
        an_rows_free(&r);
        free(rep);
        return cli_error("%s: the meta line lists no teacher and students", path);
    }
    int nl[CLI_MAX_MODELS];
    const char *name[CLI_MAX_MODELS];
    for (int i = 0; i < nm; i++) {
        const cj_value *ly = cj_get(&models->items[i], "layers"),
                       *nmv = cj_get(&models->items[i], "name");
        nl[i] = ly && ly->type == CJ_ARR ? ly->n : 0;
        name[i] = nmv && nmv->type == CJ_STR ? nmv->str : "?";
    }
    an_stat st[CLI_MAX_MODELS][V_COUNT], kd[CLI_MAX_MODELS][AN_KD_MAX][2];
    memset(st, 0, sizeof st);
    memset(kd, 0, sizeof kd);
    const cj_value *kdon = cj_get(&r.metav, "kd_distances");
    const int kd_n = kdon && kdon->type == CJ_BOOL && kdon->num != 0 && nl[0] <= AN_KD_MAX ? nl[0] : 0;
    int npairs = 0;
    for (int s = 1; s < nm; s++)
        npairs += AN_KERNELS * nl[0] * nl[s];
    kdc_cka **acc = calloc((size_t)(npairs ? npairs : 1), sizeof *acc);
    long nbatch_rows = r.nbatches, n_images = 0, cka_batches = 0;
    double *per_batch = malloc((size_t)(nbatch_rows ? nbatch_rows : 1) *
                               (size_t)(npairs ? npairs : 1) * sizeof *per_batch);
    for (int i = 0; i < nm && acc; i++)
        for (int k = 0; k < V_COUNT; k++)
            if (!(st[i][k].v = malloc((size_t)(r.images + 1) * sizeof(double))))
                rc = 1;
    for (int i = 1; i < nm && acc; i++)
        for (int l = 0; l < kd_n; l++)
            for (int q = 0; q < 2; q++)
                if (!(kd[i][l][q].v = malloc((size_t)(r.images + 1) * sizeof(double))))
                    rc = 1;
    for (int p = 0; p < npairs && acc && !rc; p++)
        if (kdc_cka_create(&acc[p]))
            rc = 1;
    if (rc || !acc || !per_batch) {
        rc = cli_error("out of memory");
        goto out;
    }
    /* the rows again, streamed: they come in batch order (an_rows_read
     * checked), up to the last complete batch */
    char err[160], *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    long pos = 0;
    FILE *in = fopen(path, "rb");
    if (!in) {
        rc = cli_error("%s: cannot read", path);
        goto out;
    }
    while (!rc && (got = getline(&line, &lcap, in)) > 0) {
        const long at = pos;
        pos += got;
        if (at == 0)
            continue; /* the meta line */
        if (pos > r.complete_bytes)
            break;
        cj_value v;
        if (cj_parse(line, (size_t)got - 1, &v, err, sizeof err)) {
            rc = cli_error("%s: a row no longer parses: %s", path, err);
            break;
        }
        const cj_value *ty = cj_get(&v, "type");
        an_line l = {.type = ty && ty->type == CJ_STR && !strcmp(ty->str, "image") ? AN_IMAGE
                                                                                  : AN_BATCH};
        l.index = (long)num_or_nan(&v, l.type == AN_IMAGE ? "i" : "b");
        const an_line *L = &l;
        if (L->type == AN_IMAGE && n_images > r.images) {
            rc = cli_error("%s: more image rows than the meta line's %ld images", path, r.images);
        } else if (L->type == AN_IMAGE) {
            const cj_value *m = cj_get(&v, "m");
            const double label = num_or_nan(&v, "label");
            if (!m || m->type != CJ_ARR || m->n != nm) {
                rc = cli_error("%s: image %ld: expected %d model entries", path, L->index, nm);
            } else {
                n_images++;
                const double t1 = num_or_nan(&m->items[0], "top1");
                double rmin = NAN;
                for (int i = 1; i < nm; i++) {
                    const double ri = num_or_nan(&m->items[i], "pearson");
                    if (!isnan(ri) && !(ri >= rmin))
                        rmin = ri;
                }
                const cj_value *fv = cj_get(&v, "file");
                note_worst(rep, L->index, rmin, fv && fv->type == CJ_STR ? fv->str : "");
                for (int i = 0; i < nm; i++) {
                    const cj_value *e = &m->items[i];
                    const double top1 = num_or_nan(e, "top1");
                    double val[V_COUNT] = {
                        isnan(label) ? NAN : (double)(top1 == label), i ? (double)(top1 == t1) : NAN,
                        num_or_nan(e, "kl1"), num_or_nan(e, "kl4"), num_or_nan(e, "pearson"),
                        num_or_nan(e, "iou20"), num_or_nan(e, "pointing"), num_or_nan(e, "energy"),
                        num_or_nan(e, "deletion"), num_or_nan(e, "insertion"), num_or_nan(e, "y"),
                        num_or_nan(e, "y_map"), num_or_nan(e, "road_morf"),
                        num_or_nan(e, "road_lerf"),
                        (num_or_nan(e, "road_lerf") - num_or_nan(e, "road_morf")) / 2};
                    for (int k = 0; k < V_COUNT; k++)
                        if (!isnan(val[k]))
                            st[i][k].v[st[i][k].n++] = val[k];
                    for (int q = 0; q < 2 && kd_n && i; q++) {
                        const cj_value *ar = cj_get(e, q ? "at" : "ickd");
                        for (int t = 0; ar && ar->type == CJ_ARR && t < ar->n && t < kd_n; t++)
                            if (ar->items[t].type == CJ_NUM)
                                kd[i][t][q].v[kd[i][t][q].n++] = ar->items[t].num;
                    }
                }
            }
        } else {
            const cj_value *hs = cj_get(&v, "hsic");
            const int n = (int)num_or_nan(&v, "n");
            if (hs && hs->type == CJ_ARR) {
                if (hs->n != npairs || cka_batches >= nbatch_rows) {
                    rc = cli_error("%s: batch %ld: %d CKA pairs, expected %d", path, L->index,
                                   hs->n, npairs);
                } else {
                    for (int p = 0; p < npairs && !rc; p++) {
                        const cj_value *t = &hs->items[p];
                        double h3[3];
                        for (int q = 0; q < 3; q++)
                            h3[q] = t->type == CJ_ARR && t->n == 3 && t->items[q].type == CJ_NUM
                                        ? t->items[q].num : NAN;
                        kdc_status s2 = kdc_cka_add_hsic(acc[p], h3, n);
                        if (s2 || isnan(h3[0] + h3[1] + h3[2]))
                            rc = cli_error("%s: batch %ld: a bad HSIC entry", path, L->index);
                        const double den = h3[0] * h3[2];
                        per_batch[cka_batches * npairs + p] = den > 0 ? h3[1] / sqrt(den) : NAN;
                    }
                    cka_batches++;
                }
            }
        }
        cj_free(&v);
    }
    free(line);
    fclose(in);
    if (rc)
        goto out;

    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(tmp, sizeof tmp, "%s/summary.json.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = cli_error("%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    fprintf(f, "{\"provenance\":%s,\n\"images\":%ld,\"batches\":%ld,\"cka_batches\":%ld,\n"
            "\"models\":[", r.meta, n_images, nbatch_rows, cka_batches);
    for (int i = 0; i < nm; i++) {
        fputs(i ? ",\n{\"name\":" : "\n{\"name\":", f);
        an_json_string(f, name[i]);
        for (int k = 0; k < V_COUNT; k++) {
            fprintf(f, ",\"%s\":", v_names[k]);
            print_mean_ci(f, &st[i][k]);
        }
        double ad, ic;
        if (st[i][V_Y].n && st[i][V_Y].n == st[i][V_YMAP].n &&
            !kdc_faith_average_drop(st[i][V_Y].v, st[i][V_YMAP].v, st[i][V_Y].n, &ad, &ic))
            fprintf(f, ",\"average_drop\":%.17g,\"increase_in_confidence\":%.17g", ad, ic);
        else
            fputs(",\"average_drop\":null,\"increase_in_confidence\":null", f);
        if (i && kd_n)
            kd_json(f, &models->items[0], &models->items[i], kd[i], kd_n);
        fputc('}', f);
    }
    fputs("],\n\"cka\":[", f);
    int p = 0, first = 1;
    static const char *kn[AN_KERNELS] = {"linear", "rbf"};
    for (int s = 1; s < nm && !rc; s++)
        for (int k = 0; k < AN_KERNELS && !rc; k++) {
            const int rows = nl[0], cols = nl[s], np = rows * cols;
            double *mat = malloc((size_t)np * sizeof *mat);
            double *pb = malloc((size_t)(cka_batches ? cka_batches : 1) * np * sizeof *pb);
            if (!mat || !pb) {
                free(mat);
                free(pb);
                rc = cli_error("out of memory");
                break;
            }
            for (int q = 0; q < np; q++) {
                double c = NAN;
                if (cka_batches && kdc_cka_result(acc[p + q], &c, NULL, NULL, NULL))
                    c = NAN;
                mat[q] = c;
                for (long b = 0; b < cka_batches; b++)
                    pb[b * np + q] = per_batch[b * npairs + p + q];
            }
            char base[64], file[4300];
            snprintf(base, sizeof base, "cka_s%d_%s", s, kn[k]);
            fputs(first ? "\n{\"student\":" : ",\n{\"student\":", f);
            first = 0;
            an_json_string(f, name[s]);
            fprintf(f, ",\"kernel\":\"%s\",\"rows_teacher_layers\":", kn[k]);
            fprintf(f, "%d,\"cols_student_layers\":%d,\"npy\":\"%s.npy\",\"per_batch_npy\":"
                    "\"%s_batches.npy\",\"png\":\"%s.png\",\"matrix\":[", rows, cols, base, base,
                    base);
            for (int a = 0; a < rows; a++) {
                fputs(a ? ",[" : "[", f);
                for (int b = 0; b < cols; b++) {
                    if (b)
                        fputc(',', f);
                    if (isfinite(mat[a * cols + b]))
                        fprintf(f, "%.17g", mat[a * cols + b]);
                    else
                        fputs("null", f);
                }
                fputc(']', f);
            }
            fputs("]}", f);
            snprintf(file, sizeof file, "%s/%s.npy", dir, base);
            if (!rc)
                rc = write_matrix_npy(file, mat, 1, rows, cols);
            snprintf(file, sizeof file, "%s/%s_batches.npy", dir, base);
            if (!rc && cka_batches)
                rc = write_matrix_npy(file, pb, cka_batches, rows, cols);
            if (!rc) {
                char title[300], **rn = NULL, **cn = NULL;
                const cj_value *tl = cj_get(&models->items[0], "layers"),
                               *sl = cj_get(&models->items[s], "layers");
                rn = calloc((size_t)rows, sizeof *rn);
                cn = calloc((size_t)cols, sizeof *cn);
                if (!rn || !cn) {
                    rc = cli_error("out of memory");
                } else {
                    for (int a = 0; a < rows; a++)
                        rn[a] = tl->items[a].type == CJ_STR ? tl->items[a].str : "?";
                    for (int b = 0; b < cols; b++)
                        cn[b] = sl->items[b].type == CJ_STR ? sl->items[b].str : "?";
                    snprintf(title, sizeof title, "%s CKA: %.100s (rows) vs %.100s (columns)",
                             kn[k], name[0], name[s]);
                    snprintf(file, sizeof file, "%s/%s.png", dir, base);
                    rc = an_heatmap_png(file, mat, rows, cols, rn, cn, title);
                }
                free(rn);
                free(cn);
            }
            rep->last_cka[s][k] =
                mat[(rows - 2 >= 0 ? rows - 2 : 0) * cols + (cols - 2 >= 0 ? cols - 2 : 0)];
            if (!rc && !quiet && k == 0)
                printf("%-28.28s last-stage CKA vs %s: linear %.4f", name[s], name[0],
                       mat[(rows - 2 >= 0 ? rows - 2 : 0) * cols + (cols - 2 >= 0 ? cols - 2 : 0)]);
            if (!rc && !quiet && k == 1)
                printf("  rbf %.4f\n",
                       mat[(rows - 2 >= 0 ? rows - 2 : 0) * cols + (cols - 2 >= 0 ? cols - 2 : 0)]);
            free(mat);
            free(pb);
            p += np;
        }
    fputs("]}\n", f);
    if (fclose(f) && !rc)
        rc = cli_error("%s: cannot write", tmp);
    if (!rc && rename(tmp, path))
        rc = cli_error("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc)
        remove(tmp);
    int64_t ex = 0;
    double c0;
    if (npairs)
        (void)kdc_cka_result(acc[0], &c0, NULL, NULL, &ex); /* counts set even on error */
    if (!rc) {
        rep->meta = r.meta;
        rep->nm = nm;
        rep->images = n_images;
        rep->cka_examples = (long)ex;
        rep->grids = grids;
        rep->kd_n = kd_n;
        kd_report(rep, models, nm, kd, kd_n);
        for (int i = 0; i < nm; i++) {
            rep->name[i] = name[i];
            for (int k = 0; k < V_COUNT; k++)
                rep->has[i][k] = !kdc_mean_ci95(st[i][k].v, st[i][k].n, &rep->mean[i][k],
                                                &rep->ci[i][k]);
        }
        rc = an_report_html(dir, rep);
        if (worst && nworst) {
            memcpy(worst, rep->worst, sizeof rep->worst);
            *nworst = rep->nworst;
        }
    }
    if (!rc && !quiet) {
        printf("%ld images (%lld in CKA minibatches); summary: %s\n", n_images, (long long)ex,
               path);
        printf("%-28s %8s %8s %8s %8s %8s %8s\n", "model", "accuracy", "agree", "KL(T=1)",
               "pearson", "iou20", "pointing");
        for (int i = 0; i < nm; i++) {
            printf("%-28.28s", name[i]);
            const int cols[6] = {V_CORRECT, V_AGREE, V_KL1, V_PEARSON, V_IOU, V_POINTING};
            for (int c = 0; c < 6; c++) {
                double m, half;
                if (kdc_mean_ci95(st[i][cols[c]].v, st[i][cols[c]].n, &m, &half))
                    printf(" %8s", "-");
                else
                    printf(" %8.4f", m);
            }
            printf("\n");
        }
    }
out:
    for (int i = 0; i < nm; i++)
        for (int k = 0; k < V_COUNT; k++)
            free(st[i][k].v);
    for (int i = 0; i < nm; i++)
        for (int l = 0; l < AN_KD_MAX; l++)
            for (int q = 0; q < 2; q++)
                free(kd[i][l][q].v);
    for (int q = 0; q < npairs && acc; q++)
        kdc_cka_destroy(acc[q]);
    free(acc);
    free(per_batch);
    an_rows_free(&r);
    free(rep);
    return rc;
}
