/* coco_eval.c - COCO box mAP exactly as pycocotools' COCOeval computes it
 * with its default Params (cocodataset/cocoapi, PythonAPI/pycocotools/
 * cocoeval.py: evaluate, evaluateImg, accumulate, summarize; bbox IoU as
 * common/maskApi.c's bbIou). The steps keep pycocotools' order, its stable
 * sorts and its quirks (listed in docs/fidelity.md), so the numbers are the
 * same to rounding; tools/coco_eval_ref.py is the independent reference
 * that tests/test_coco.c compares with.
 *
 * Data flow: ground truth and detections are bucketed by (category, image)
 * in file order; per bucket the detections are sorted by score and cut to
 * 100, their IoUs with the bucket's ground truth computed once; per area
 * range each bucket is matched greedily at the 10 IoU thresholds
 * (evaluateImg); per (category, area, maxDets) the matched detections of
 * all images are merged by score into a precision/recall curve
 * (accumulate), whose 101-point precision and final recall are summed into
 * the means that summarize() prints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { T_ = 10, R_ = 101, A_ = 4, M_ = 3 };
static const int kdc__coco_maxdets[M_] = {1, 10, 100};
/* areaRng: all, small, medium, large (inclusive bounds, as there) */
static const double kdc__coco_area[A_][2] = {
    {0.0, 1e10}, {0.0, 1024.0}, {1024.0, 9216.0}, {9216.0, 1e10}};

/* np.linspace(start, stop, num): i * ((stop - start) / (num - 1)) + start,
 * the last point exactly stop (numpy's arithmetic, so 0.75 is a member of
 * the IoU thresholds, as summarize's lookup needs). */
static void kdc__coco_linspace(double start, double stop, int num, double *out)
{
    double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; i++)
        out[i] = (double)i * step + start;
    out[num - 1] = stop;
}

/* A bucket's evaluateImg result for one area range: at most 100
 * detections in score order. */
struct kdc__coco_img {
    int valid;            /* evaluateImg returned something (not None)   */
    int nd;               /* detections kept                             */
    int npig;             /* ground truth not ignored                    */
    const double *scores; /* nd, the bucket's sorted scores              */
    unsigned char *dtm;   /* T_ x nd: matched to a gt whose id is not 0  */
    unsigned char *dtig;  /* T_ x nd: ignored                            */
};

struct kdc__coco_work {
    const kdc_coco *gt;
    const kdc_coco_box *dets;
    size_t ni, nk;
    int64_t *img_ids, *cat_ids;   /* sorted                              */
    size_t *gstart, *gidx;        /* buckets (k * ni + i) of gt, file order */
    size_t *dstart, *didx;        /* and of detections                    */
    double iou_thr[T_], rec_thr[R_];
};

static int kdc__coco_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static long kdc__coco_find(const int64_t *ids, size_t n, int64_t id)
{
    const int64_t *p = bsearch(&id, ids, n, sizeof *ids, kdc__coco_cmp_i64);
    return p ? (long)(p - ids) : -1;
}

/* Stable sort by descending score: np.argsort(-score, kind='mergesort'). */
struct kdc__coco_ranked {
    double score;
    size_t pos;
};
static int kdc__coco_cmp_rank(const void *a, const void *b)
{
    const struct kdc__coco_ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Buckets boxes by (category, image): start[b]..start[b+1] in idx, in the
 * order of the array. Boxes of unknown categories (or images) are left
 * out, as getAnnIds leaves them. */
static kdc_status kdc__coco_bucket(const struct kdc__coco_work *w, const kdc_coco_box *box,
                                   size_t n, size_t **start, size_t **idx)
{
    size_t nb = w->nk * w->ni;
    *start = calloc(nb + 1, sizeof **start);
    *idx = malloc((n ? n : 1) * sizeof **idx);
    size_t *bucket = malloc((n ? n : 1) * sizeof *bucket), *fill = NULL;
    if (!*start || !*idx || !bucket)
        goto nomem;
    for (size_t j = 0; j < n; j++) {
        long k = kdc__coco_find(w->cat_ids, w->nk, box[j].category_id);
        long i = kdc__coco_find(w->img_ids, w->ni, box[j].image_id);
        bucket[j] = k < 0 || i < 0 ? nb : (size_t)k * w->ni + (size_t)i;
        if (bucket[j] < nb)
            (*start)[bucket[j] + 1]++;
    }
    for (size_t b = 0; b < nb; b++)
        (*start)[b + 1] += (*start)[b];
    if (!(fill = malloc((nb ? nb : 1) * sizeof *fill)))
        goto nomem;
    memcpy(fill, *start, nb * sizeof *fill);
    for (size_t j = 0; j < n; j++)
        if (bucket[j] < nb)
            (*idx)[fill[bucket[j]]++] = j;
    free(fill);
    free(bucket);
    return KDC_OK;
nomem:
    free(bucket);
    return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_coco_eval_bbox: out of memory");
}

/* maskApi.c's bbIou of a detection and a ground-truth box: intersection
 * over union, or over the detection's area for a crowd region. */
static double kdc__coco_iou(const double *d, const double *g, int crowd)
{
    double w = fmin(d[0] + d[2], g[0] + g[2]) - fmax(d[0], g[0]);
    if (w <= 0)
        return 0;
    double h = fmin(d[1] + d[3], g[1] + g[3]) - fmax(d[1], g[1]);
    if (h <= 0)
        return 0;
    double i = w * h, da = d[2] * d[3];
    double u = crowd ? da : da + g[2] * g[3] - i;
    return i / u;
}

/* One bucket's state shared by its four area ranges. */
struct kdc__coco_bucket {
    size_t ng, nd;
    const size_t *g;               /* gt indices, file order            */
    struct kdc__coco_ranked *dt;   /* detections by score, at most 100  */
    double *scores;                /* their scores                      */
    double *ious;                  /* nd x ng                            */
};

/* evaluateImg(imgId, catId, aRng, maxDet=100). gsort and gm are scratch
 * of ng entries. */
static void kdc__coco_match(const struct kdc__coco_work *w, const struct kdc__coco_bucket *b,
                            int a, size_t *gsort, unsigned char *gig, unsigned char *gm,
                            struct kdc__coco_img *e)
{
    const kdc_coco_box *ann = w->gt->annotations;
    const double lo = kdc__coco_area[a][0], hi = kdc__coco_area[a][1];
    size_t ng = b->ng, nd = b->nd, n0 = 0;
    e->valid = ng > 0 || nd > 0;
    e->nd = (int)nd;
    e->scores = b->scores;
    e->npig = 0;
    if (!e->valid)
        return;
    /* ground truth with its ignore flag; the ignored ones last (stable) */
    for (int pass = 0; pass < 2; pass++)
        for (size_t j = 0; j < ng; j++) {
            const kdc_coco_box *g = &ann[b->g[j]];
            int ig = g->iscrowd || g->area < lo || g->area > hi;
            if (ig == pass) {
                gig[n0] = (unsigned char)ig;
                gsort[n0++] = j;
            }
        }
    for (size_t j = 0; j < ng; j++)
        e->npig += !gig[j];
    memset(e->dtm, 0, T_ * nd);
    memset(e->dtig, 0, T_ * nd);
    for (int t = 0; t < T_ && ng > 0; t++) {
        memset(gm, 0, ng);
        for (size_t d = 0; d < nd; d++) {
            double iou = fmin(w->iou_thr[t], 1 - 1e-10);
            long m = -1;
            for (size_t j = 0; j < ng; j++) {
                const kdc_coco_box *g = &ann[b->g[gsort[j]]];
                if (gm[j] && !g->iscrowd)
                    continue;
                if (m > -1 && !gig[m] && gig[j])
                    break;
                double v = b->ious[d * ng + gsort[j]];
                if (v < iou)
                    continue;
                iou = v;
                m = (long)j;
            }
            if (m == -1)
                continue;
            e->dtig[t * nd + d] = gig[m];
            /* dtm holds the gt's id: an id of 0 reads as unmatched later */
            e->dtm[t * nd + d] = ann[b->g[gsort[m]]].id != 0;
            gm[m] = 1;
        }
    }
    for (size_t d = 0; d < nd; d++) {
        const double *bb = w->dets[b->dt[d].pos].bbox;
        double area = bb[2] * bb[3]; /* loadRes's area of a box result */
        if (area < lo || area > hi)
            for (int t = 0; t < T_; t++)
                if (!e->dtm[t * nd + d])
                    e->dtig[t * nd + d] = 1;
    }
}

/* Running sums of summarize()'s means: precision per (t, a, m) over
 * recall points and categories, recall per (t, a, m) over categories. */
struct kdc__coco_sums {
    double p[T_][A_][M_], r[T_][A_][M_];
    size_t pn[T_][A_][M_], rn[T_][A_][M_];
};

/* accumulate() for one (category, area, maxDets) over the images' e[]. */
static kdc_status kdc__coco_accumulate(const struct kdc__coco_work *w,
                                       const struct kdc__coco_img *e, int a, int m,
                                       struct kdc__coco_sums *s)
{
    const int maxdet = kdc__coco_maxdets[m];
    size_t nd = 0, npig = 0, any = 0;
    for (size_t i = 0; i < w->ni; i++)
        if (e[i].valid) {
            any = 1;
            nd += (size_t)(e[i].nd < maxdet ? e[i].nd : maxdet);
            npig += (size_t)e[i].npig;
        }
    if (!any || npig == 0)
        return KDC_OK;
    struct kdc__coco_ranked *r = malloc((nd ? nd : 1) * sizeof *r);
    size_t *src = malloc((nd ? nd : 1) * 2 * sizeof *src);
    double *rc = malloc((nd ? nd : 1) * 2 * sizeof *rc), *pr = rc + (nd ? nd : 1);
    if (!r || !src || !rc) {
        free(r);
        free(src);
        free(rc);
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_coco_eval_bbox: out of memory");
    }
    size_t q = 0;
    for (size_t i = 0; i < w->ni; i++) {
        if (!e[i].valid)
            continue;
        int take = e[i].nd < maxdet ? e[i].nd : maxdet;
        for (int d = 0; d < take; d++, q++) {
            r[q].score = e[i].scores[d];
            r[q].pos = q;
            src[2 * q] = i;
            src[2 * q + 1] = (size_t)d;
        }
    }
    qsort(r, nd, sizeof *r, kdc__coco_cmp_rank);
    for (int t = 0; t < T_; t++) {
        double tp = 0, fp = 0;
        for (size_t j = 0; j < nd; j++) {
            const struct kdc__coco_img *ei = &e[src[2 * r[j].pos]];
            size_t d = src[2 * r[j].pos + 1], at = (size_t)t * (size_t)ei->nd + d;
            int ig = ei->dtig[at], mt = ei->dtm[at];
            tp += mt && !ig;
            fp += !mt && !ig;
            rc[j] = tp / (double)npig;
            pr[j] = tp / (fp + tp + 2.220446049250313e-16); /* np.spacing(1) */
        }
        s->r[t][a][m] += nd ? rc[nd - 1] : 0.0;
        s->rn[t][a][m]++;
        for (size_t j = nd; j-- > 1;)
            if (pr[j] > pr[j - 1])
                pr[j - 1] = pr[j];
        size_t pi = 0;
        for (int k = 0; k < R_; k++) {
            while (pi < nd && rc[pi] < w->rec_thr[k]) /* searchsorted, side='left' */
                pi++;
            s->p[t][a][m] += pi < nd ? pr[pi] : 0.0;
        }
        s->pn[t][a][m] += R_;
    }
    free(r);
    free(src);
    free(rc);
    return KDC_OK;
}

/* One category: its buckets' IoUs, evaluateImg per area, accumulate. */
static kdc_status kdc__coco_category(const struct kdc__coco_work *w, size_t k,
                                     struct kdc__coco_sums *s)
{
    const size_t ni = w->ni;
    size_t maxg = 0, total_d = 0;
    for (size_t i = 0; i < ni; i++) {
        size_t b = k * ni + i, ng = w->gstart[b + 1] - w->gstart[b];
        size_t nd = w->dstart[b + 1] - w->dstart[b];
        maxg = ng > maxg ? ng : maxg;
        total_d += nd < 100 ? nd : 100;
    }
    struct kdc__coco_bucket *bk = calloc(ni ? ni : 1, sizeof *bk);
    struct kdc__coco_img *e = calloc((ni ? ni : 1) * A_, sizeof *e);
    size_t *gsort = malloc((maxg ? maxg : 1) * sizeof *gsort);
    unsigned char *gig = malloc(maxg ? maxg : 1), *gm = malloc(maxg ? maxg : 1);
    unsigned char *flags = malloc((total_d ? total_d : 1) * 2 * T_ * A_);
    kdc_status st = KDC_OK;
    if (!bk || !e || !gsort || !gig || !gm || !flags) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_coco_eval_bbox: out of memory");
        goto out;
    }
    size_t fpos = 0;
    for (size_t i = 0; i < ni && !st; i++) {
        size_t b = k * ni + i, nall = w->dstart[b + 1] - w->dstart[b];
        struct kdc__coco_bucket *c = &bk[i];
        c->ng = w->gstart[b + 1] - w->gstart[b];
        c->g = w->gidx + w->gstart[b];
        c->nd = nall < 100 ? nall : 100;
        c->dt = malloc((nall ? nall : 1) * sizeof *c->dt);
        c->scores = malloc((c->nd ? c->nd : 1) * sizeof *c->scores);
        c->ious = malloc((c->nd * c->ng > 0 ? c->nd * c->ng : 1) * sizeof *c->ious);
        if (!c->dt || !c->scores || !c->ious) {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_coco_eval_bbox: out of memory");
            break;
        }
        for (size_t j = 0; j < nall; j++) {
            c->dt[j].pos = w->didx[w->dstart[b] + j];
            c->dt[j].score = w->dets[c->dt[j].pos].score;
        }
        /* computeIoU: detections by score (stable: file order on ties),
         * the first maxDets[-1] */
        qsort(c->dt, nall, sizeof *c->dt, kdc__coco_cmp_rank);
        for (size_t d = 0; d < c->nd; d++) {
            c->scores[d] = c->dt[d].score;
            for (size_t j = 0; j < c->ng; j++) {
                const kdc_coco_box *g = &w->gt->annotations[c->g[j]];
                c->ious[d * c->ng + j] =
                    kdc__coco_iou(w->dets[c->dt[d].pos].bbox, g->bbox, g->iscrowd);
            }
        }
        for (int a = 0; a < A_; a++) {
            struct kdc__coco_img *ea = &e[(size_t)a * ni + i];
            ea->dtm = flags + fpos;
            ea->dtig = flags + fpos + T_ * c->nd;
            fpos += 2 * T_ * c->nd;
            kdc__coco_match(w, c, a, gsort, gig, gm, ea);
        }
    }
    for (int a = 0; a < A_ && !st; a++)
        for (int m = 0; m < M_ && !st; m++)
            st = kdc__coco_accumulate(w, &e[(size_t)a * ni], a, m, s);
out:
    for (size_t i = 0; bk && i < ni; i++) {
        free(bk[i].dt);
        free(bk[i].scores);
        free(bk[i].ious);
    }
    free(bk);
    free(e);
    free(gsort);
    free(gig);
    free(gm);
    free(flags);
    return st;
}

/* summarize()'s mean of the entries > -1 (precision if ap, else recall)
 * at thresholds ts[0..nt), area a, maxDets m; -1 if there are none. */
static double kdc__coco_mean(const struct kdc__coco_sums *s, int ap, const int *ts, int nt, int a,
                             int m)
{
    double sum = 0;
    size_t n = 0;
    for (int j = 0; j < nt; j++) {
        sum += ap ? s->p[ts[j]][a][m] : s->r[ts[j]][a][m];
        n += ap ? s->pn[ts[j]][a][m] : s->rn[ts[j]][a][m];
    }
    return n ? sum / (double)n : -1.0;
}

static void kdc__coco_summarize(const struct kdc__coco_work *w, const struct kdc__coco_sums *s,
                                double *stats)
{
    int all[T_], t50 = 0, t75 = 0, n50 = 0, n75 = 0;
    for (int t = 0; t < T_; t++) {
        all[t] = t;
        /* np.where(iouThr == p.iouThrs) */
        if (w->iou_thr[t] == 0.5)
            t50 = t, n50 = 1;
        if (w->iou_thr[t] == 0.75)
            t75 = t, n75 = 1;
    }
    /* (ap, iou subset, area, maxDets) in summarize()'s order */
    static const struct { int ap, iou, a, m; } rows[KDC_COCO_NSTATS] = {
        {1, 0, 0, 2}, {1, 50, 0, 2}, {1, 75, 0, 2}, {1, 0, 1, 2}, {1, 0, 2, 2}, {1, 0, 3, 2},
        {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 2}, {0, 0, 1, 2}, {0, 0, 2, 2}, {0, 0, 3, 2}};
    for (int i = 0; i < KDC_COCO_NSTATS; i++) {
        const int *ts = rows[i].iou == 50 ? &t50 : rows[i].iou == 75 ? &t75 : all;
        int nt = rows[i].iou == 50 ? n50 : rows[i].iou == 75 ? n75 : T_;
        stats[i] = kdc__coco_mean(s, rows[i].ap, ts, nt, rows[i].a, rows[i].m);
    }
}

static void kdc__coco_work_free(struct kdc__coco_work *w)
{
    free(w->img_ids);
    free(w->cat_ids);
    free(w->gstart);
    free(w->gidx);
    free(w->dstart);
    free(w->didx);
}

kdc_status kdc_coco_eval_bbox(const kdc_coco *gt, const kdc_coco_box *dets, size_t n,
                              double stats[KDC_COCO_NSTATS])
{
    if (!gt || !stats || (!dets && n > 0))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_coco_eval_bbox: an argument is NULL");
    for (size_t j = 0; j < n; j++) {
        const double *bb = dets[j].bbox;
        if (!isfinite(bb[0]) || !isfinite(bb[1]) || !isfinite(bb[2]) || !isfinite(bb[3]) ||
            !isfinite(dets[j].score))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_coco_eval_bbox: detection %zu has a "
                             "non-finite box or score", j);
    }
    struct kdc__coco_work w = {.gt = gt, .dets = dets, .ni = gt->nimages, .nk = gt->ncategories};
    struct kdc__coco_sums *s = calloc(1, sizeof *s);
    kdc_status st = KDC_OK;
    w.img_ids = malloc((w.ni ? w.ni : 1) * sizeof *w.img_ids);
    w.cat_ids = malloc((w.nk ? w.nk : 1) * sizeof *w.cat_ids);
    if (!s || !w.img_ids || !w.cat_ids) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_coco_eval_bbox: out of memory");
        goto out;
    }
    if (w.nk > 0 && w.ni > SIZE_MAX / 8 / w.nk) {
        st = kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_coco_eval_bbox: too many images x "
                       "categories");
        goto out;
    }
    for (size_t i = 0; i < w.ni; i++)
        w.img_ids[i] = gt->images[i].id;
    for (size_t k = 0; k < w.nk; k++)
        w.cat_ids[k] = gt->categories[k].id;
    qsort(w.img_ids, w.ni, sizeof *w.img_ids, kdc__coco_cmp_i64);
    qsort(w.cat_ids, w.nk, sizeof *w.cat_ids, kdc__coco_cmp_i64);
    for (size_t j = 0; j < n; j++)
        if (kdc__coco_find(w.img_ids, w.ni, dets[j].image_id) < 0) {
            st = kdc__fail(KDC_ERR_INVALID_ARGUMENT, "detection %zu is on image id %lld, which "
                           "the ground truth does not have", j, (long long)dets[j].image_id);
            goto out;
        }
    kdc__coco_linspace(0.5, 0.95, T_, w.iou_thr);
    kdc__coco_linspace(0.0, 1.0, R_, w.rec_thr);
    st = kdc__coco_bucket(&w, gt->annotations, gt->nannotations, &w.gstart, &w.gidx);
    if (!st)
        st = kdc__coco_bucket(&w, dets, n, &w.dstart, &w.didx);
    for (size_t k = 0; k < w.nk && !st; k++)
        st = kdc__coco_category(&w, k, s);
    if (!st)
        kdc__coco_summarize(&w, s, stats);
out:
    kdc__coco_work_free(&w);
    free(s);
    return st;
}

const char *kdc_coco_stat_name(int i)
{
    static const char *const names[KDC_COCO_NSTATS] = {
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]"};
    return i >= 0 && i < KDC_COCO_NSTATS ? names[i] : NULL;
}
