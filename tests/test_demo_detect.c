/* test_demo_detect.c - the bundled demo detectors (tools/train_detectors.py:
 * a ResNet-152-FPN RetinaNet teacher and three ResNet-50-FPN students, real
 * trained weights) end to end against PyTorch, through the path a user
 * takes (`kdcam detect -w FILE`): weights file loaded with the default
 * options, its metadata (classes, detection size, anchor size) -> model and
 * head -> the model's own detection preprocessing -> forward -> kdc_detect
 * with the framework's defaults.
 *
 * The reference is tests/fixtures/demo_detect/ (tools/gen_demo_det_fixtures.py,
 * regenerated from the same weights files whenever they are retrained):
 * train_detectors.Detector on the same F16 weights in float32, then
 * torchvision 0.14's own RetinaNet post-processing (teacher, FGD and DPK
 * students: torchvision layout) or tools/mmdet_retina_ref.py, mmdetection
 * 2.x's RetinaHead test mode (vanilla student: mmdetection layout), with
 * the anchors the file's metadata names.
 *
 * Compared, per detector on the held-out images of the fixture's cases.txt
 * (seed 103, never trained on; three per detector): every detection that
 * the library or the reference scores >= CUT (0.1; below it the lists are
 * long tails of weak boxes, and the post-processing itself is
 * test_detect.c's job, on head outputs built to reach every branch): same
 * label, level, anchor and cell at the same place in the list, box within
 * 1e-3 px, score within 1e-5 relative. Real scores can nearly tie, and a
 * tie's order is rounding: where consecutive reference scores are within
 * TIE (1e-5) relative, the run may come in any order (each member matched
 * once, with the same tolerances). This caught the first export of the
 * torchvision-layout files: without num_batches_tracked libkdcam took their
 * bodies for FrozenBatchNorm2d (eps 0, torchvision's COCO weights), not the
 * BatchNorm2d (eps 1e-5) they were trained with: scores 1.9e-4 off. The
 * generator only picks images whose compared detections survive much
 * larger perturbations of the head outputs than the two implementations
 * differ by, so a failure here is a real difference. Also the head
 * activations themselves (P5 class logits, teacher and mmdetection student,
 * relative L2 <= 1e-4), that a 256 x 256 image goes through
 * kdc_preprocess_detection unresized and normalised as each framework
 * normalises (within 1e-6), and that the teacher detects: COCO AP50
 * (kdc_coco_eval_bbox) on AP_IMAGES held-out images at least
 * TEACHER_MIN_AP50.
 *
 * The weights directory is $KDC_DEMO_WEIGHTS, by default weights/demo. Run
 * from the repository root (make test). */
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

#define FIX "tests/fixtures/demo_detect/"
#define SEED 103     /* train_detectors.py's held-out set */
#define SIZE 256     /* its image size; the files' kdcam.detect "short=256 max=256" */
#define NCLASSES 10
#define CUT 0.1      /* detections compared: scored at least this by either side */
#define TIE 1e-5     /* relative gap of reference scores that may come in either order */
#define BOX_TOL 1e-3 /* px */
#define SCORE_TOL 1e-5 /* relative */
#define ACT_TOL 1e-4 /* relative L2 of the P5 class logits */
#define AP_IMAGES 50
/* issue 13's bound for the teacher on the 500 held-out images; measured
 * 0.977 on these 50 (AP 0.836; 0.969 on all 500): a regression anywhere on
 * the path (weights, metadata, preprocessing, kernels, anchors,
 * post-processing) shows up far below it */
#define TEACHER_MIN_AP50 0.8

static const struct {
    const char *stem;
    kdc_head_kind kind;
    int activations; /* the fixture holds its P5 class logits (first image) */
} detectors[] = {
    {"det-teacher-r152fpn", KDC_HEAD_RETINANET_TV, 1},
    {"det-r50fpn-vanilla", KDC_HEAD_RETINANET_MM, 1},
    {"det-r50fpn-fgd", KDC_HEAD_RETINANET_TV, 0},
    {"det-r50fpn-dpk", KDC_HEAD_RETINANET_TV, 0},
};
#define NDETECTORS ((int)(sizeof detectors / sizeof detectors[0]))

static kdc_model *load(int f)
{
    const char *dir = getenv("KDC_DEMO_WEIGHTS");
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir && *dir ? dir : "weights/demo",
             detectors[f].stem);
    kdc_model *m;
    if (kdc_model_load(path, NULL, &m) != KDC_OK)
        fail_msg("%s: %s", path, kdc_last_error());
    return m;
}

/* The four files load as the detectors they are: head, classes, and the
 * detection size of their metadata. */
static void demo_detectors_load(void **state)
{
    (void)state;
    for (int f = 0; f < NDETECTORS; f++) {
        kdc_model *m = load(f);
        kdc_head_info hi;
        assert_int_equal(kdc_model_head(m, &hi), KDC_OK);
        assert_int_equal(hi.kind, detectors[f].kind);
        assert_int_equal(hi.num_classes, NCLASSES);
        assert_int_equal(hi.num_anchors, 9);
        assert_int_equal(hi.num_levels, 5);
        for (int l = 0; l < hi.num_levels; l++)
            assert_int_equal(hi.level[l], 3 + l);
        assert_string_equal(kdc_model_class_name(m, 0), "circle");
        for (int c = 0; c < NCLASSES; c++) {
            const char *name = kdc_model_class_name(m, c);
            if (!name || strcmp(name, kdc_shapes_class_name(c)))
                fail_msg("%s: class %d is '%s', the dataset's is '%s'", detectors[f].stem, c,
                         name ? name : "(none)", kdc_shapes_class_name(c));
        }
        kdc_det_preprocess pp;
        kdc_model_det_preprocess(m, &pp);
        assert_int_equal(pp.short_side, SIZE);
        assert_int_equal(pp.max_side, SIZE);
        kdc_model_destroy(m);
    }
    /* the settings the reference ran with (max_dets 0: 300 / 100 by style) */
    kdc_detect_options o;
    kdc_detect_options_init(&o, KDC_DETECT_AUTO);
    assert_true(o.score_thresh == 0.05f && o.topk == 1000 && o.nms_thresh == 0.5f &&
                o.max_dets == 0);
}

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Held-out image `index` through the model's preprocessing (checked: not
 * resized, normalised as the head's framework does), a forward pass keeping
 * the head's outputs, and kdc_detect with the framework's defaults.
 * *objects gets the image's ground truth; *hash (may be NULL) its FNV-1a. */
static kdc_detection *detect_image(const kdc_model *m, kdc_run *run, const kdc_head_info *hi,
                                   int index, kdc_shapes_objects *objects, uint64_t *hash,
                                   int *n)
{
    static const double tv_mean[3] = {0.485, 0.456, 0.406}, tv_std[3] = {0.229, 0.224, 0.225};
    static const double mm_mean[3] = {123.675, 116.28, 103.53};
    static const double mm_std[3] = {58.395, 57.12, 57.375};
    const int mm = hi->kind == KDC_HEAD_RETINANET_MM;
    kdc_image *im;
    assert_int_equal(kdc_shapes_render_detection(SEED, (uint64_t)index, SIZE, &im, objects, NULL),
                     KDC_OK);
    if (hash)
        *hash = fnv1a64(im->rgb, (size_t)SIZE * SIZE * 3);
    kdc_det_preprocess pp;
    kdc_model_det_preprocess(m, &pp);
    float *x;
    int h, w, ch, cw;
    double scale;
    assert_int_equal(kdc_preprocess_detection(im, &pp, &x, &h, &w, &ch, &cw, &scale), KDC_OK);
    assert_true(h == SIZE && w == SIZE && ch == SIZE && cw == SIZE && scale == 1.0);
    double worst = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < SIZE * SIZE; i++) {
            const double p = im->rgb[3 * i + c];
            const double v =
                mm ? (p - mm_mean[c]) / mm_std[c] : (p / 255 - tv_mean[c]) / tv_std[c];
            worst = fmax(worst, fabs(x[(size_t)c * SIZE * SIZE + i] - v));
        }
    if (!(worst <= 1e-6))
        fail_msg("image %d: the preprocessed input differs from the normalised image by %g",
                 index, worst);
    int keep[2 * KDC_HEAD_MAX_LEVELS];
    for (int l = 0; l < hi->num_levels; l++) {
        keep[2 * l] = hi->cls_layer[l];
        keep[2 * l + 1] = hi->reg_layer[l];
    }
    assert_int_equal(kdc_run_forward(run, x, 1, h, w, keep, 2 * hi->num_levels), KDC_OK);
    kdc_detect_options o;
    kdc_detect_options_init(&o, KDC_DETECT_AUTO);
    kdc_detection *d = NULL;
    if (kdc_detect(run, m, 0, &o, ch, cw, SIZE, SIZE, &d, n))
        fail_msg("image %d: %s", index, kdc_last_error());
    kdc_free(x);
    kdc_image_destroy(im);
    return d;
}

static int same_detection(const kdc_detection *d, const dr_detection *w)
{
    return d->label == w->label && d->level == w->level && d->anchor == w->anchor &&
           d->y == w->y && d->x == w->x;
}

/* The comparison of the header; worst errors into *box_err, *score_err.
 * Returns the number of detections compared. */
static int compare(const char *what, const kdc_detection *d, int n, const dr_detection *w,
                   int nw, double *box_err, double *score_err)
{
    int nref = 0, nlib = 0;
    while (nref < nw && w[nref].score >= CUT)
        nref++;
    while (nlib < n && d[nlib].score >= CUT)
        nlib++;
    const int m = nref > nlib ? nref : nlib;
    if (m > n || m > nw)
        fail_msg("%s: %d detections scored >= %g, the reference has %d (lists of %d and %d)",
                 what, nlib, CUT, nref, n, nw);
    char *used = calloc((size_t)nw, 1);
    assert_non_null(used);
    for (int g0 = 0, g1; g0 < m; g0 = g1) {
        g1 = g0 + 1;
        while (g1 < nw && w[g1 - 1].score - w[g1].score <= TIE * w[g1 - 1].score)
            g1++;
        for (int i = g0; i < g1 && i < m; i++) {
            int j = g0;
            while (j < g1 && (used[j] || !same_detection(&d[i], &w[j])))
                j++;
            if (j == g1)
                fail_msg("%s: detection %d (label %d level %d anchor %d cell %d,%d score %.7f) "
                         "is not the reference's (label %d level %d anchor %d cell %d,%d score "
                         "%.7f%s)", what, i, d[i].label, d[i].level, d[i].anchor, d[i].y,
                         d[i].x, (double)d[i].score, w[i].label, w[i].level, w[i].anchor,
                         w[i].y, w[i].x, w[i].score, g1 - g0 > 1 ? ", or a near-tie of it" : "");
            used[j] = 1;
            double eb = 0;
            for (int k = 0; k < 4; k++)
                eb = fmax(eb, fabs(d[i].box[k] - w[j].box[k]));
            const double es = fabs(d[i].score - w[j].score) / w[j].score;
            if (!(eb <= BOX_TOL) || !(es <= SCORE_TOL))
                fail_msg("%s: detection %d: box %.4f %.4f %.4f %.4f score %.7f, the reference's "
                         "%.4f %.4f %.4f %.4f score %.7f", what, i, (double)d[i].box[0],
                         (double)d[i].box[1], (double)d[i].box[2], (double)d[i].box[3],
                         (double)d[i].score, w[j].box[0], w[j].box[1], w[j].box[2],
                         w[j].box[3], w[j].score);
            *box_err = fmax(*box_err, eb);
            *score_err = fmax(*score_err, es);
        }
    }
    free(used);
    return m;
}

/* The P5 class logits of the last forward against the fixture's. */
static void compare_activations(const char *what, const kdc_run *run, const kdc_head_info *hi,
                                const char *path)
{
    float *ref;
    int ndim;
    int64_t dims[8];
    if (kdc_npy_load(path, &ref, &ndim, dims))
        fail_msg("%s: %s", path, kdc_last_error());
    int l = 0;
    while (l < hi->num_levels && hi->level[l] != 5)
        l++;
    assert_true(l < hi->num_levels);
    int s[4];
    assert_int_equal(kdc_run_layer_shape(run, hi->cls_layer[l], s), KDC_OK);
    assert_int_equal(ndim, 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(dims[k], s[k]);
    const size_t count = (size_t)s[0] * s[1] * s[2] * s[3];
    float *got = malloc(count * sizeof *got);
    assert_non_null(got);
    assert_int_equal(kdc_run_read_layer(run, hi->cls_layer[l], got, count), KDC_OK);
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    const double rel = sqrt(num / den);
    printf("  %s: P5 class logits, relative L2 error %.2g\n", what, rel);
    assert_true(rel <= ACT_TOL);
    free(got);
    kdc_free(ref);
}

/* Detector f on its fixture images against PyTorch. */
static void matches_pytorch(int f)
{
    kdc_model *m = load(f);
    kdc_head_info hi;
    assert_int_equal(kdc_model_head(m, &hi), KDC_OK);
    kdc_run_options ro = {.threads = 2};
    kdc_run *run;
    assert_int_equal(kdc_run_create(m, &ro, &run), KDC_OK);
    FILE *cases = fopen(FIX "cases.txt", "r");
    if (!cases)
        fail_msg(FIX "cases.txt: cannot open");
    char stem[64], hex[32];
    int index, images = 0;
    while (fscanf(cases, "%63s %d %31s", stem, &index, hex) == 3) {
        if (strcmp(stem, detectors[f].stem))
            continue;
        kdc_shapes_objects ob;
        uint64_t hash;
        int n;
        kdc_detection *d = detect_image(m, run, &hi, index, &ob, &hash, &n);
        if (hash != strtoull(hex, NULL, 16))
            fail_msg("image %d: rendered pixels hash to %016llx, the fixture's to %s", index,
                     (unsigned long long)hash, hex);
        char what[128], path[256];
        snprintf(what, sizeof what, "%s image %d", stem, index);
        if (detectors[f].activations && images == 0) {
            snprintf(path, sizeof path, FIX "%s_%d_cls_p5.npy", stem, index);
            compare_activations(what, run, &hi, path);
        }
        snprintf(path, sizeof path, FIX "%s_%d.txt", stem, index);
        dr_detection *w;
        const int nw = dr_read(path, &w);
        double box_err = 0, score_err = 0;
        const int cmp = compare(what, d, n, w, nw, &box_err, &score_err);
        printf("  %s: %d detections, %d scored >= %g compared: worst box error %.2g px, "
               "score error %.2g\n", what, n, cmp, CUT, box_err, score_err);
        assert_true(cmp > 0);
        free(w);
        kdc_free(d);
        images++;
    }
    fclose(cases);
    assert_true(images >= 2);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
}

static void teacher_matches_pytorch(void **state)
{
    (void)state;
    matches_pytorch(0);
}

static void vanilla_student_matches_pytorch(void **state)
{
    (void)state;
    matches_pytorch(1);
}

static void fgd_student_matches_pytorch(void **state)
{
    (void)state;
    matches_pytorch(2);
}

static void dpk_student_matches_pytorch(void **state)
{
    (void)state;
    matches_pytorch(3);
}

/* The teacher's COCO AP50 on held-out images 0..AP_IMAGES-1, the ground
 * truth as `kdcam shapes --detection` writes instances.json (image id =
 * index, category id = class + 1, the visible pixels' box and area). */
static void teacher_detects_objects(void **state)
{
    (void)state;
    kdc_model *m = load(0);
    kdc_head_info hi;
    assert_int_equal(kdc_model_head(m, &hi), KDC_OK);
    kdc_run_options ro = {.threads = 2};
    kdc_run *run;
    assert_int_equal(kdc_run_create(m, &ro, &run), KDC_OK);
    static char empty[] = "";
    kdc_coco_image images[AP_IMAGES];
    kdc_coco_category cats[NCLASSES];
    kdc_coco_box gt[AP_IMAGES * KDC_SHAPES_MAX_OBJECTS];
    kdc_coco coco = {.nimages = AP_IMAGES, .ncategories = NCLASSES, .images = images,
                     .categories = cats, .annotations = gt};
    for (int c = 0; c < NCLASSES; c++)
        cats[c] = (kdc_coco_category){.id = c + 1, .name = empty};
    kdc_coco_box *dets = NULL;
    size_t ndets = 0;
    for (int i = 0; i < AP_IMAGES; i++) {
        kdc_shapes_objects ob;
        int n;
        kdc_detection *d = detect_image(m, run, &hi, i, &ob, NULL, &n);
        images[i] = (kdc_coco_image){.id = i, .file_name = empty, .width = SIZE, .height = SIZE};
        for (int j = 0; j < ob.n; j++) {
            const int *b = ob.box[j];
            gt[coco.nannotations++] = (kdc_coco_box){
                .id = (int64_t)i * KDC_SHAPES_MAX_OBJECTS + j + 1, .image_id = i,
                .category_id = ob.cls[j] + 1, .bbox = {b[0], b[1], b[2] - b[0], b[3] - b[1]},
                .area = ob.area[j], .score = 1};
        }
        dets = realloc(dets, (ndets + (size_t)n + 1) * sizeof *dets);
        assert_non_null(dets);
        for (int k = 0; k < n; k++, ndets++) {
            const double bw = d[k].box[2] - d[k].box[0], bh = d[k].box[3] - d[k].box[1];
            dets[ndets] = (kdc_coco_box){.id = (int64_t)ndets + 1, .image_id = i,
                                         .category_id = d[k].label + 1,
                                         .bbox = {d[k].box[0], d[k].box[1], bw, bh},
                                         .area = bw * bh, .score = d[k].score};
        }
        kdc_free(d);
    }
    double stats[KDC_COCO_NSTATS];
    assert_int_equal(kdc_coco_eval_bbox(&coco, dets, ndets, stats), KDC_OK);
    printf("  %s: %zu objects in %d images, %zu detections: AP %.3f, AP50 %.3f (need %.2f)\n",
           detectors[0].stem, coco.nannotations, AP_IMAGES, ndets, stats[0], stats[1],
           TEACHER_MIN_AP50);
    assert_true(stats[1] >= TEACHER_MIN_AP50);
    free(dets);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(demo_detectors_load),
        cmocka_unit_test(teacher_matches_pytorch),
        cmocka_unit_test(vanilla_student_matches_pytorch),
        cmocka_unit_test(fgd_student_matches_pytorch),
        cmocka_unit_test(dpk_student_matches_pytorch),
        cmocka_unit_test(teacher_detects_objects),
    };
    return cmocka_run_group_tests_name("demo_detect", tests, NULL, NULL);
}
