/* test_detect.c - detections from RetinaNet head outputs (kdc_detect_decode)
 * against tests/fixtures/detect/ (tools/gen_detect_fixtures.py): the
 * torchvision cases are torchvision 0.14's own RetinaNet post-processing
 * (anchor generator, box coder, postprocess_detections, transform
 * postprocess), the mmdetection cases tools/mmdet_retina_ref.py, a NumPy
 * reimplementation of mmdetection 2.x's RetinaHead test mode. Same boxes
 * within 1e-3 px, scores within 1e-5 relative, labels, levels, anchors and
 * cells, same order. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detref.h"
#include "kdcam.h"

#define FIX "tests/fixtures/detect/"

struct meta {
    char style[16];
    int K, A, nlevels, levels[KDC_HEAD_MAX_LEVELS];
    int input_h, input_w, image_h, image_w, orig_h, orig_w, topk, max_dets;
    float score_thresh, nms_thresh;
};

static void read_meta(const char *c, struct meta *m)
{
    char path[256], key[64], line[256];
    snprintf(path, sizeof path, FIX "%s/meta.txt", c);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: cannot open", path);
    memset(m, 0, sizeof *m);
    while (fgets(line, sizeof line, f)) {
        int off = 0;
        if (sscanf(line, "%63s %n", key, &off) != 1)
            continue;
        const char *v = line + off;
        if (!strcmp(key, "style"))
            sscanf(v, "%15s", m->style);
        else if (!strcmp(key, "num_classes"))
            m->K = atoi(v);
        else if (!strcmp(key, "num_anchors"))
            m->A = atoi(v);
        else if (!strcmp(key, "levels")) {
            int n = 0, k;
            while (m->nlevels < KDC_HEAD_MAX_LEVELS && sscanf(v, "%d%n", &k, &n) == 1) {
                m->levels[m->nlevels++] = k;
                v += n;
            }
        } else if (!strcmp(key, "input_h"))
            m->input_h = atoi(v);
        else if (!strcmp(key, "input_w"))
            m->input_w = atoi(v);
        else if (!strcmp(key, "image_h"))
            m->image_h = atoi(v);
        else if (!strcmp(key, "image_w"))
            m->image_w = atoi(v);
        else if (!strcmp(key, "orig_h"))
            m->orig_h = atoi(v);
        else if (!strcmp(key, "orig_w"))
            m->orig_w = atoi(v);
        else if (!strcmp(key, "score_thresh"))
            m->score_thresh = strtof(v, NULL);
        else if (!strcmp(key, "nms_thresh"))
            m->nms_thresh = strtof(v, NULL);
        else if (!strcmp(key, "topk"))
            m->topk = atoi(v);
        else if (!strcmp(key, "max_dets"))
            m->max_dets = atoi(v);
    }
    fclose(f);
    assert_true(m->K > 0 && m->A > 0 && m->nlevels > 0 && m->input_h > 0 && m->orig_w > 0);
}

/* Loads the case's head outputs into ho (arrays freed by the caller). */
static void load_outputs(const char *c, const struct meta *m, kdc_head_outputs *ho,
                         float **bufs)
{
    memset(ho, 0, sizeof *ho);
    ho->num_classes = m->K;
    ho->num_anchors = m->A;
    ho->num_levels = m->nlevels;
    for (int l = 0; l < m->nlevels; l++) {
        for (int j = 0; j < 2; j++) {
            char path[256];
            int ndim;
            int64_t dims[8];
            snprintf(path, sizeof path, FIX "%s/%s_p%d.npy", c, j ? "reg" : "cls", m->levels[l]);
            if (kdc_npy_load(path, &bufs[2 * l + j], &ndim, dims))
                fail_msg("%s: %s", path, kdc_last_error());
            assert_int_equal(ndim, 4);
            assert_int_equal(dims[1], j ? m->A * 4 : m->A * m->K);
            ho->h[l] = (int)dims[2];
            ho->w[l] = (int)dims[3];
            if (j)
                ho->reg[l] = bufs[2 * l + j];
            else
                ho->cls[l] = bufs[2 * l + j];
        }
        ho->level[l] = m->levels[l];
    }
}

static void check_case(const char *c)
{
    struct meta m;
    read_meta(c, &m);
    kdc_head_outputs ho;
    float *bufs[2 * KDC_HEAD_MAX_LEVELS] = {0};
    load_outputs(c, &m, &ho, bufs);
    kdc_detect_options o;
    kdc_detect_options_init(&o, !strcmp(m.style, "mm") ? KDC_DETECT_MMDET
                                                       : KDC_DETECT_TORCHVISION);
    o.score_thresh = m.score_thresh;
    o.nms_thresh = m.nms_thresh;
    o.topk = m.topk;
    o.max_dets = m.max_dets;
    kdc_detection *d = NULL;
    int n = 0;
    if (kdc_detect_decode(&ho, &o, m.input_h, m.input_w, m.image_h, m.image_w, m.orig_h,
                          m.orig_w, &d, &n))
        fail_msg("%s: %s", c, kdc_last_error());
    dr_detection *w;
    char path[256];
    snprintf(path, sizeof path, FIX "%s/expected.txt", c);
    const int nw = dr_read(path, &w);
    double worst_box = 0, worst_score = 0;
    if (n != nw)
        fail_msg("%s: %d detections, the reference has %d", c, n, nw);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            const double e = fabs(d[i].box[k] - w[i].box[k]);
            worst_box = e > worst_box ? e : worst_box;
        }
        const double es = fabs(d[i].score - w[i].score) / w[i].score;
        worst_score = es > worst_score ? es : worst_score;
        if (d[i].label != w[i].label || d[i].level != w[i].level ||
            d[i].anchor != w[i].anchor || d[i].y != w[i].y || d[i].x != w[i].x ||
            !(worst_box <= 1e-3) || !(worst_score <= 1e-5))
            fail_msg("%s: detection %d: label %d level %d anchor %d cell %d,%d box %.4f %.4f "
                     "%.4f %.4f score %.7f; reference label %d level %d anchor %d cell %d,%d "
                     "box %.4f %.4f %.4f %.4f score %.7f",
                     c, i, d[i].label, d[i].level, d[i].anchor, d[i].y, d[i].x,
                     (double)d[i].box[0], (double)d[i].box[1], (double)d[i].box[2],
                     (double)d[i].box[3], (double)d[i].score, w[i].label, w[i].level,
                     w[i].anchor, w[i].y, w[i].x, w[i].box[0], w[i].box[1], w[i].box[2],
                     w[i].box[3], w[i].score);
        /* the logit is the class channel of that anchor at that cell */
        const int li = d[i].level_index;
        const float z = ho.cls[li][((size_t)(d[i].anchor * m.K + d[i].label) * ho.h[li] +
                                    (size_t)d[i].y) * ho.w[li] + (size_t)d[i].x];
        assert_true(z == d[i].logit);
    }
    printf("# %s: %d detections, worst box error %.2g px, worst score error %.2g\n", c, n,
           worst_box, worst_score);
    free(w);
    kdc_free(d);
    for (int i = 0; i < 2 * KDC_HEAD_MAX_LEVELS; i++)
        kdc_free(bufs[i]);
}

static void test_torchvision(void **state)
{
    (void)state;
    check_case("tv_160x128");
    check_case("tv_topk_320x256");
}

static void test_mmdet(void **state)
{
    (void)state;
    check_case("mm_160x128");
    check_case("mm_many_320x256");
}

static void test_errors(void **state)
{
    (void)state;
    struct meta m;
    read_meta("tv_160x128", &m);
    kdc_head_outputs ho;
    float *bufs[2 * KDC_HEAD_MAX_LEVELS] = {0};
    load_outputs("tv_160x128", &m, &ho, bufs);
    kdc_detect_options o;
    kdc_detect_options_init(&o, KDC_DETECT_AUTO);
    kdc_detection *d = (kdc_detection *)&d;
    int n = 5;
    /* AUTO needs a model */
    assert_int_equal(kdc_detect_decode(&ho, &o, m.input_h, m.input_w, m.image_h, m.image_w,
                                       m.orig_h, m.orig_w, &d, &n),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_null(d);
    assert_int_equal(n, 0);
    o.style = KDC_DETECT_TORCHVISION;
    /* an image larger than the input, a bad threshold, a missing level */
    assert_int_equal(kdc_detect_decode(&ho, &o, m.input_h, m.input_w, m.input_h + 1, m.image_w,
                                       m.orig_h, m.orig_w, &d, &n),
                     KDC_ERR_INVALID_ARGUMENT);
    o.nms_thresh = 2.0f;
    assert_int_equal(kdc_detect_decode(&ho, &o, m.input_h, m.input_w, m.image_h, m.image_w,
                                       m.orig_h, m.orig_w, &d, &n),
                     KDC_ERR_INVALID_ARGUMENT);
    o.nms_thresh = 0.5f;
    ho.cls[1] = NULL;
    assert_int_equal(kdc_detect_decode(&ho, &o, m.input_h, m.input_w, m.image_h, m.image_w,
                                       m.orig_h, m.orig_w, &d, &n),
                     KDC_ERR_INVALID_ARGUMENT);
    for (int i = 0; i < 2 * KDC_HEAD_MAX_LEVELS; i++)
        kdc_free(bufs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torchvision),
        cmocka_unit_test(test_mmdet),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
