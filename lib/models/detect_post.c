/* detect_post.c - detections from a RetinaNet head's outputs (issue 13), as
 * torchvision 0.14's RetinaNet.postprocess_detections + transform
 * postprocess and mmdetection 2.x's RetinaHead test mode compute them:
 * anchors, sigmoid scores, threshold, per-level top-k, box decoding and
 * clipping, class-wise NMS, the best max_dets, rescaling to the original
 * image. Everything in float32, in the frameworks' order of operations
 * (docs/fpn.md, "Detections", lists where the two differ). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "run.h"

/* torchvision: BoxCoder.bbox_xform_clip = log(1000 / 16), compared in
 * float32; mmdetection: delta2bbox's max_ratio = |log(16 / 1000)| */
#define KDC__DET_CLIP 4.135166556742356
#define KDC__MAX_ANCHORS 24

void kdc_detect_options_init(kdc_detect_options *opt, kdc_detect_style style)
{
    if (!opt)
        return;
    opt->style = style;
    opt->score_thresh = 0.05f;
    opt->topk = 1000;
    opt->nms_thresh = 0.5f;
    opt->max_dets = 0;
    opt->anchor_size = 0;
}

/* One candidate detection. */
struct kdc__cand {
    float box[4], score, logit;
    int label, li, anchor, y, x;
    size_t order; /* position in the concatenation: ties keep it */
};

/* The A base anchors of level index li (x0, y0, x1, y1 around the cell
 * origin), ratio-major (0.5, 1, 2), then scale. */
static void kdc__base_anchors(int mm, int li, int A, int size, float (*base)[4])
{
    static const float ratios[3] = {0.5f, 1.0f, 2.0f};
    const int ns = A / 3;
    for (int r = 0; r < 3; r++) {
        const float hr = sqrtf(ratios[r]), wr = 1.0f / hr;
        for (int s = 0; s < ns; s++) {
            float *b = base[r * ns + s];
            if (!mm) {
                /* sizes (x, int(x * 2^(1/3)), int(x * 2^(2/3))), x = size * 2^li
                 * (torchvision's default: 32, 64, ..., 512) */
                const double x = (double)(size << li);
                const float sc = (float)(long)(x * pow(2.0, (double)s / ns));
                const float ws = wr * sc, hs = hr * sc;
                b[0] = rintf(-ws / 2.0f);
                b[1] = rintf(-hs / 2.0f);
                b[2] = rintf(ws / 2.0f);
                b[3] = rintf(hs / 2.0f);
            } else {
                /* octave_base_scale size / 8 (mmdetection's default: 4), base
                 * size = stride 8 * 2^li, centre 0 */
                const float sc = (float)(size / 8.0 * pow(2.0, (double)s / ns));
                const float w = (float)(8 << li);
                const float ws = w * wr * sc, hs = w * hr * sc;
                b[0] = 0.0f - 0.5f * ws;
                b[1] = 0.0f - 0.5f * hs;
                b[2] = 0.0f + 0.5f * ws;
                b[3] = 0.0f + 0.5f * hs;
            }
        }
    }
}

/* Decodes deltas d (dx, dy, dw, dh) against anchor a into box, clipped to
 * the resized image. */
static void kdc__decode(int mm, const float *a, const float *d, int img_h, int img_w,
                        float *box)
{
    const float clip = (float)KDC__DET_CLIP;
    if (!mm) {
        const float w = a[2] - a[0], h = a[3] - a[1];
        const float cx = a[0] + 0.5f * w, cy = a[1] + 0.5f * h;
        const float dw = d[2] > clip ? clip : d[2], dh = d[3] > clip ? clip : d[3];
        const float pcx = d[0] * w + cx, pcy = d[1] * h + cy;
        const float pw = expf(dw) * w, ph = expf(dh) * h;
        const float hw = 0.5f * pw, hh = 0.5f * ph;
        box[0] = pcx - hw;
        box[1] = pcy - hh;
        box[2] = pcx + hw;
        box[3] = pcy + hh;
    } else {
        const float px = (a[0] + a[2]) * 0.5f, py = (a[1] + a[3]) * 0.5f;
        const float pw = a[2] - a[0], ph = a[3] - a[1];
        float dw = d[2], dh = d[3];
        dw = dw < -clip ? -clip : dw > clip ? clip : dw;
        dh = dh < -clip ? -clip : dh > clip ? clip : dh;
        const float gx = px + pw * d[0], gy = py + ph * d[1];
        const float gw = pw * expf(dw), gh = ph * expf(dh);
        box[0] = gx - gw * 0.5f;
        box[1] = gy - gh * 0.5f;
        box[2] = gx + gw * 0.5f;
        box[3] = gy + gh * 0.5f;
    }
    for (int k = 0; k < 4; k++) {
        const float hi = (float)(k % 2 ? img_h : img_w);
        box[k] = box[k] < 0.0f ? 0.0f : box[k] > hi ? hi : box[k];
    }
}

static int kdc__cmp_cand(const void *pa, const void *pb)
{
    const struct kdc__cand *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

/* Level li's candidates above the threshold, the topk best, decoded, into
 * out (at most topk); their count. */
static size_t kdc__level(const kdc_head_outputs *ho, int li, int mm, const kdc_detect_options *o,
                         int in_h, int in_w, int img_h, int img_w, struct kdc__cand *tmp,
                         struct kdc__cand *out, size_t order0)
{
    const int A = ho->num_anchors, K = ho->num_classes, H = ho->h[li], W = ho->w[li];
    const size_t hw = (size_t)H * W;
    float base[KDC__MAX_ANCHORS][4];
    kdc__base_anchors(mm, li, A, o->anchor_size ? o->anchor_size : 32, base);
    /* torchvision: stride = input size // level size; mmdetection: 8 * 2^li */
    const int sh = mm ? 8 << li : in_h / H, sw = mm ? 8 << li : in_w / W;
    size_t n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int a = 0; a < A; a++)
                for (int k = 0; k < K; k++) {
                    const float z = ho->cls[li][(size_t)(a * K + k) * hw + (size_t)y * W + x];
                    const float s = 1.0f / (1.0f + expf(-z));
                    if (!(s > o->score_thresh))
                        continue;
                    struct kdc__cand *c = &tmp[n];
                    c->score = s;
                    c->logit = z;
                    c->label = k;
                    c->li = li;
                    c->anchor = a;
                    c->y = y;
                    c->x = x;
                    c->order = n++;
                }
    qsort(tmp, n, sizeof *tmp, kdc__cmp_cand);
    if (n > (size_t)o->topk)
        n = (size_t)o->topk;
    for (size_t j = 0; j < n; j++) {
        struct kdc__cand *c = &out[j];
        *c = tmp[j];
        const float *b = base[c->anchor];
        const float sx = (float)(c->x * sw), sy = (float)(c->y * sh);
        const float an[4] = {b[0] + sx, b[1] + sy, b[2] + sx, b[3] + sy};
        float d[4];
        for (int k = 0; k < 4; k++)
            d[k] = ho->reg[li][(size_t)(c->anchor * 4 + k) * hw + (size_t)c->y * W + c->x];
        kdc__decode(mm, an, d, img_h, img_w, c->box);
        c->order = order0 + j;
    }
    return n;
}

/* Greedy NMS over the candidates idx[0..n), best first (boxes bx, 4 per
 * candidate): keep[] gets the kept positions, best first. Suppresses
 * IoU > thr (float32 IoU, no +1), as torchvision's and mmcv's CPU kernels. */
static size_t kdc__nms(const float *bx, const size_t *idx, size_t n, float thr,
                       unsigned char *dead, size_t *keep)
{
    size_t nk = 0;
    memset(dead, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (dead[i])
            continue;
        keep[nk++] = idx[i];
        const float *p = &bx[4 * idx[i]];
        const float pa = (p[2] - p[0]) * (p[3] - p[1]);
        for (size_t j = i + 1; j < n; j++) {
            if (dead[j])
                continue;
            const float *q = &bx[4 * idx[j]];
            const float qa = (q[2] - q[0]) * (q[3] - q[1]);
            const float xx1 = p[0] > q[0] ? p[0] : q[0], yy1 = p[1] > q[1] ? p[1] : q[1];
            const float xx2 = p[2] < q[2] ? p[2] : q[2], yy2 = p[3] < q[3] ? p[3] : q[3];
            const float w = xx2 - xx1 > 0.0f ? xx2 - xx1 : 0.0f;
            const float h = yy2 - yy1 > 0.0f ? yy2 - yy1 : 0.0f;
            const float inter = w * h, ovr = inter / (pa + qa - inter);
            if ((double)ovr > (double)thr)
                dead[j] = 1;
        }
    }
    return nk;
}

/* a position with what sorting it needs (qsort takes no context) */
struct kdc__sort_ctx {
    size_t pos;
    float score;
    size_t order;
};
static int kdc__cmp_ctx(const void *pa, const void *pb)
{
    const struct kdc__sort_ctx *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

/* Sorts positions idx[0..n) of c by score (best first, ties by order). */
static kdc_status kdc__sort_idx(const struct kdc__cand *c, size_t *idx, size_t n)
{
    struct kdc__sort_ctx *t = malloc((n ? n : 1) * sizeof *t);
    if (!t)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_detect: out of memory");
    for (size_t i = 0; i < n; i++)
        t[i] = (struct kdc__sort_ctx){idx[i], c[idx[i]].score, c[idx[i]].order};
    qsort(t, n, sizeof *t, kdc__cmp_ctx);
    for (size_t i = 0; i < n; i++)
        idx[i] = t[i].pos;
    free(t);
    return KDC_OK;
}

/* Class-wise NMS of c[0..n): keep[] the kept positions, best first.
 * Below `split` candidates both frameworks shift each class's boxes by
 * label * (max coordinate + 1) and run one NMS (the offsets' float32
 * rounding included); from `split` on they run one NMS per class and sort
 * the union by score. */
static kdc_status kdc__batched_nms(const struct kdc__cand *c, size_t n, float thr, size_t split,
                                   size_t *keep, size_t *nkeep)
{
    float *bx = malloc((n ? n : 1) * 4 * sizeof *bx);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    unsigned char *dead = malloc(n ? n : 1);
    kdc_status st = KDC_OK;
    *nkeep = 0;
    if (!bx || !idx || !dead) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_detect: out of memory");
        goto out;
    }
    if (n < split) {
        float mx = -INFINITY;
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < 4; k++)
                mx = c[i].box[k] > mx ? c[i].box[k] : mx;
        const float step = mx + 1.0f;
        for (size_t i = 0; i < n; i++) {
            const float off = (float)c[i].label * step;
            for (int k = 0; k < 4; k++)
                bx[4 * i + k] = c[i].box[k] + off;
            idx[i] = i;
        }
        if (!(st = kdc__sort_idx(c, idx, n)))
            *nkeep = kdc__nms(bx, idx, n, thr, dead, keep);
    } else {
        int maxl = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(&bx[4 * i], c[i].box, sizeof c[i].box);
            maxl = c[i].label > maxl ? c[i].label : maxl;
        }
        for (int l = 0; l <= maxl && !st; l++) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (c[i].label == l)
                    idx[m++] = i;
            if (!(st = kdc__sort_idx(c, idx, m)))
                *nkeep += kdc__nms(bx, idx, m, thr, dead, keep + *nkeep);
        }
        if (!st)
            st = kdc__sort_idx(c, keep, *nkeep);
    }
out:
    free(bx);
    free(idx);
    free(dead);
    return st;
}

kdc_status kdc_detect_decode(const kdc_head_outputs *ho, const kdc_detect_options *opt,
                             int input_h, int input_w, int image_h, int image_w, int orig_h,
                             int orig_w, kdc_detection **dets, int *n)
{
    if (dets)
        *dets = NULL;
    if (n)
        *n = 0;
    if (!ho || !opt || !dets || !n)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect_decode: NULL argument");
    if (opt->style != KDC_DETECT_TORCHVISION && opt->style != KDC_DETECT_MMDET)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect_decode: style must be "
                         "torchvision or mmdetection");
    const int A = ho->num_anchors, K = ho->num_classes, L = ho->num_levels;
    if (A < 3 || A % 3 || A > KDC__MAX_ANCHORS || K < 1 || L < 1 ||
        L > KDC_HEAD_MAX_LEVELS)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect_decode: %d anchors (3 ratios x "
                         "scales), %d classes, %d levels", A, K, L);
    if (!(opt->score_thresh >= 0.0f && opt->score_thresh < 1.0f) || opt->topk < 1 ||
        !(opt->nms_thresh >= 0.0f && opt->nms_thresh <= 1.0f) || opt->max_dets < 0 ||
        (opt->anchor_size && (opt->anchor_size < 4 || opt->anchor_size > 1024)))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect_decode: score threshold %g, topk "
                         "%d, NMS threshold %g, max_dets %d or anchor size %d out of range",
                         (double)opt->score_thresh, opt->topk, (double)opt->nms_thresh,
                         opt->max_dets, opt->anchor_size);
    if (input_h < 1 || input_w < 1 || image_h < 1 || image_w < 1 || image_h > input_h ||
        image_w > input_w || orig_h < 1 || orig_w < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect_decode: sizes input %dx%d, "
                         "image %dx%d, original %dx%d", input_w, input_h, image_w, image_h,
                         orig_w, orig_h);
    size_t most = 0, total = 0;
    for (int l = 0; l < L; l++) {
        if (!ho->cls[l] || !ho->reg[l] || ho->h[l] < 1 || ho->w[l] < 1 ||
            ho->h[l] > input_h || ho->w[l] > input_w)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect_decode: level %d has no "
                             "outputs or a bad size", l);
        size_t c = (size_t)ho->h[l] * ho->w[l] * A * K;
        most = c > most ? c : most;
        total += c < (size_t)opt->topk ? c : (size_t)opt->topk;
    }
    const int mm = opt->style == KDC_DETECT_MMDET;
    const int max_dets = opt->max_dets ? opt->max_dets : mm ? 100 : 300;
    struct kdc__cand *tmp = malloc(most * sizeof *tmp), *cand = malloc((total ? total : 1) * sizeof *cand);
    size_t *keep = malloc((total ? total : 1) * sizeof *keep), nc = 0, nk = 0;
    kdc_status st = KDC_OK;
    if (!tmp || !cand || !keep) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_detect: out of memory");
        goto out;
    }
    for (int l = 0; l < L; l++)
        nc += kdc__level(ho, l, mm, opt, input_h, input_w, image_h, image_w, tmp, cand + nc, nc);
    /* rescale to the original image: mmdetection before NMS (divided by
     * its float32 scale_factor), torchvision after (times orig / resized) */
    const float rw = (float)orig_w / (float)image_w, rh = (float)orig_h / (float)image_h;
    const float fw = (float)((double)image_w / orig_w), fh = (float)((double)image_h / orig_h);
    if (mm)
        for (size_t i = 0; i < nc; i++)
            for (int k = 0; k < 4; k++)
                cand[i].box[k] /= k % 2 ? fh : fw;
    /* torchvision 0.14 batched_nms on CPU: per class above 4000 numbers
     * (1000 boxes); mmcv: per class from split_thr 10000 boxes */
    st = kdc__batched_nms(cand, nc, opt->nms_thresh, mm ? 10000 : 1001, keep, &nk);
    if (st)
        goto out;
    if (nk > (size_t)max_dets)
        nk = (size_t)max_dets;
    kdc_detection *d = malloc((nk ? nk : 1) * sizeof *d);
    if (!d) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_detect: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nk; i++) {
        const struct kdc__cand *c = &cand[keep[i]];
        kdc_detection *o = &d[i];
        for (int k = 0; k < 4; k++)
            o->box[k] = mm ? c->box[k] : c->box[k] * (k % 2 ? rh : rw);
        o->score = c->score;
        o->logit = c->logit;
        o->label = c->label;
        o->level_index = c->li;
        o->level = ho->level[c->li];
        o->anchor = c->anchor;
        o->y = c->y;
        o->x = c->x;
    }
    *dets = d;
    *n = (int)nk;
out:
    free(tmp);
    free(cand);
    free(keep);
    return st;
}

kdc_status kdc_detect(const kdc_run *run, const kdc_model *m, int image,
                      const kdc_detect_options *opt, int image_h, int image_w, int orig_h,
                      int orig_w, kdc_detection **dets, int *n)
{
    if (dets)
        *dets = NULL;
    if (n)
        *n = 0;
    if (!run || !m || !opt || !dets || !n)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect: NULL argument");
    const kdc__head *h = &m->head;
    if (!h->kind)
        return kdc__fail(KDC_ERR_STATE, "kdc_detect: %s has no detection head", m->arch);
    kdc_detect_options o = *opt;
    if (!o.anchor_size)
        o.anchor_size = m->det_anchor;
    if (o.style == KDC_DETECT_AUTO)
        o.style = h->kind == KDC_HEAD_RETINANET_MM ? KDC_DETECT_MMDET : KDC_DETECT_TORCHVISION;
    /* the input's size (layer 0 need not be kept) */
    const int in[4] = {run->n, run->chw[0], run->chw[1], run->chw[2]};
    kdc_status st = KDC_OK;
    if (in[0] < 1)
        return kdc__fail(KDC_ERR_STATE, "kdc_detect: no forward pass yet");
    if (image < 0 || image >= in[0])
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_detect: image %d of a batch of %d", image,
                         in[0]);
    kdc_head_outputs ho = {.num_classes = h->classes, .num_anchors = h->anchors,
                           .num_levels = h->nlevels};
    float *buf[2 * KDC_HEAD_MAX_LEVELS] = {0};
    for (int l = 0; l < h->nlevels && !st; l++) {
        const int layers[2] = {h->cls[l], h->reg[l]};
        for (int j = 0; j < 2 && !st; j++) {
            int s[4];
            if ((st = kdc_run_layer_shape(run, layers[j], s)))
                break;
            const size_t per = (size_t)s[1] * s[2] * s[3];
            float **b = &buf[2 * l + j];
            if (!(*b = malloc(per * s[0] * sizeof **b))) {
                st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_detect: out of memory");
                break;
            }
            if ((st = kdc_run_read_layer(run, layers[j], *b, per * s[0]))) {
                st = kdc__fail(KDC_ERR_STATE, "kdc_detect: the head's outputs (%s) were not "
                               "kept by the forward pass", m->nodes[layers[j]].name);
                break;
            }
            ho.h[l] = s[2];
            ho.w[l] = s[3];
            ho.level[l] = h->level[l];
            if (j == 0)
                ho.cls[l] = *b + per * image;
            else
                ho.reg[l] = *b + per * image;
        }
    }
    if (!st)
        st = kdc_detect_decode(&ho, &o, in[2], in[3], image_h, image_w, orig_h, orig_w, dets, n);
    for (int i = 0; i < 2 * KDC_HEAD_MAX_LEVELS; i++)
        free(buf[i]);
    return st;
}
