/* test_detect_cli.c - `kdcam detect` and `kdcam cam --detection K` end to
 * end on generated RetinaNet weights (kdcgen scheme resnet50_retina_tv):
 * what the commands print and write equals what the library computes on
 * the same image (kdc_preprocess_detection, kdc_detect; a one-hot seed at
 * the detection's class logit for Grad-CAM), results.json reads back as
 * COCO results, and bad input gets one line and a non-zero exit. The
 * numbers themselves are checked against PyTorch in test_fpn.c (head
 * activations and gradients) and test_detect.c (post-processing).
 *
 * Run from the repository root (make test). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdcam.h"
#include "util/cliexec.h"
#include "util/testkit.h"
#include "util/weightgen.h"

#define IMAGE "examples/images/coffee.png"
#define DET_SIZE 128 /* shorter side: 128 x 192 input */

static char weights[512], out[512];

static int setup(void **state)
{
    (void)state;
    if (cliexec_setup())
        return -1;
    snprintf(weights, sizeof weights, "%s/retina.safetensors", cliexec_dir());
    snprintf(out, sizeof out, "%s/out", cliexec_dir());
    return kdc_test_write_weights(weights, "resnet50_retina_tv", 5142, 1, "", 0);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", out, weights);
    int rc = system(cmd);
    cliexec_teardown();
    return rc;
}

/* The library's detections of IMAGE by the weights at path, as `kdcam
 * detect --det-size 128` makes them; *input (free()) and the run stay for
 * the caller. */
static kdc_detection *library_detections(const char *path, kdc_model **m, kdc_run **run,
                                         float **input, int *h, int *w, int *n)
{
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    assert_int_equal(kdc_model_load(path, &mo, m), KDC_OK);
    kdc_image *img;
    assert_int_equal(kdc_image_load(IMAGE, &img), KDC_OK);
    kdc_det_preprocess pp;
    kdc_model_det_preprocess(*m, &pp);
    pp.short_side = DET_SIZE;
    pp.max_side = (DET_SIZE * 1333 + 799) / 800;
    int ch, cw;
    double scale;
    assert_int_equal(kdc_preprocess_detection(img, &pp, input, h, w, &ch, &cw, &scale), KDC_OK);
    kdc_head_info hi;
    assert_int_equal(kdc_model_head(*m, &hi), KDC_OK);
    assert_int_equal(hi.kind, KDC_HEAD_RETINANET_TV);
    int keep[2 * KDC_HEAD_MAX_LEVELS];
    for (int l = 0; l < hi.num_levels; l++) {
        keep[2 * l] = hi.cls_layer[l];
        keep[2 * l + 1] = hi.reg_layer[l];
    }
    assert_int_equal(kdc_run_create(*m, NULL, run), KDC_OK);
    assert_int_equal(kdc_run_forward(*run, *input, 1, *h, *w, keep, 2 * hi.num_levels), KDC_OK);
    kdc_detect_options o;
    kdc_detect_options_init(&o, KDC_DETECT_AUTO);
    kdc_detection *d = NULL;
    assert_int_equal(kdc_detect(*run, *m, 0, &o, ch, cw, img->height, img->width, &d, n),
                     KDC_OK);
    kdc_image_destroy(img);
    return d;
}

/* The same, keeping only the detections (kdc_free them). */
static kdc_detection *detections_only(const char *path, int *n)
{
    kdc_model *m;
    kdc_run *run;
    float *input;
    int h, w;
    kdc_detection *d = library_detections(path, &m, &run, &input, &h, &w, n);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return d;
}

static double num_after(const char **p, const char *key)
{
    const char *q = strstr(*p, key);
    assert_non_null(q);
    q += strlen(key);
    char *end;
    double v = strtod(q, &end);
    assert_true(end != q);
    *p = end;
    return v;
}

static void test_detect(void **state)
{
    (void)state;
    kdc_model *m;
    kdc_run *run;
    float *input;
    int h, w, n;
    kdc_detection *d = library_detections(weights, &m, &run, &input, &h, &w, &n);
    assert_true(n > 10);
    assert_int_equal(cliexec_run("detect --json --det-size %d -w %s -o %s " IMAGE, DET_SIZE,
                                 weights, out),
                     0);
    const char *p = cliexec_out;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            double v = num_after(&p, k ? "," : "\"box\":[");
            assert_true(fabs(v - d[i].box[k]) <= 1e-6 * (1 + fabs(d[i].box[k])));
        }
        assert_true(fabs(num_after(&p, "\"score\":") - d[i].score) <= 1e-7);
        assert_true(fabs(num_after(&p, "\"logit\":") - d[i].logit) <= 1e-6 * (1 + fabs(d[i].logit)));
        assert_int_equal((int)num_after(&p, "\"label\":"), d[i].label);
        assert_int_equal((int)num_after(&p, "\"level\":"), d[i].level);
        assert_int_equal((int)num_after(&p, "\"anchor\":"), d[i].anchor);
        assert_int_equal((int)num_after(&p, "\"y\":"), d[i].y);
        assert_int_equal((int)num_after(&p, "\"x\":"), d[i].x);
    }
    assert_null(strstr(p, "\"box\""));
    /* results.json: COCO results, one per detection, category = label + 1 */
    char path[700];
    snprintf(path, sizeof path, "%s/results.json", out);
    kdc_coco_box *r = NULL;
    size_t nr = 0;
    assert_int_equal(kdc_coco_read_results(path, &r, &nr), KDC_OK);
    assert_int_equal(nr, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i].image_id, 0);
        assert_int_equal(r[i].category_id, d[i].label + 1);
        assert_true(fabs(r[i].bbox[2] - (d[i].box[2] - d[i].box[0])) <= 1e-3);
    }
    kdc_free(r);
    snprintf(path, sizeof path, "%s/coffee.png", out);
    kdc_image *pic;
    assert_int_equal(kdc_image_load(path, &pic), KDC_OK);
    assert_int_equal(pic->width, 600);
    kdc_image_destroy(pic);

    /* cam --detection 0: Grad-CAM of the one-hot seed at the detection's
     * class logit, at the FPN level it came from */
    assert_int_equal(cliexec_run("cam --detection 0 --npy --det-size %d -w %s -o %s " IMAGE,
                                 DET_SIZE, weights, out),
                     0);
    char want[64];
    snprintf(want, sizeof want, "detection 0: class %d", d[0].label);
    assert_non_null(strstr(cliexec_out, want));
    kdc_head_info hi;
    kdc_model_head(m, &hi);
    const int li = d[0].level_index, cls = hi.cls_layer[li], feat = hi.feature_layer[li];
    int s[4];
    assert_int_equal(kdc_run_layer_shape(run, cls, s), KDC_OK);
    float *seed = calloc((size_t)s[1] * s[2] * s[3], sizeof *seed);
    assert_non_null(seed);
    seed[((size_t)(d[0].anchor * hi.num_classes + d[0].label) * s[2] + d[0].y) * s[3] + d[0].x] =
        1.0f;
    kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &feat, .nlayers = 1,
                          .target = {.kind = KDC_TARGET_SEED, .layer = cls, .seed = seed}};
    kdc_cam_result *res = NULL;
    assert_int_equal(kdc_cam_compute(run, input, 1, h, w, &co, &res), KDC_OK);
    snprintf(path, sizeof path, "%s/coffee.gradcam.npy", out);
    float *map;
    int nd;
    int64_t dims[8];
    assert_int_equal(kdc_npy_load(path, &map, &nd, dims), KDC_OK);
    assert_int_equal(dims[1], h);
    assert_int_equal(dims[2], w);
    double worst = 0, energy = 0;
    for (size_t i = 0; i < (size_t)h * w; i++) {
        worst = fmax(worst, fabs(map[i] - res->map[i]));
        energy += res->map[i];
    }
    assert_true(energy > 0); /* the target depends on the level: a non-empty map */
    assert_true(worst <= 1e-6);
    kdc_free(map);
    kdc_cam_result_destroy(res);

    /* --detection-box: the same logit plus the anchor's four box deltas
     * (regression output channels anchor * 4 .. + 3 at the same cell) */
    assert_int_equal(cliexec_run("cam --detection 0 --detection-box --npy --det-size %d -w %s "
                                 "-o %s " IMAGE, DET_SIZE, weights, out),
                     0);
    assert_non_null(strstr(cliexec_out, "logit + box deltas"));
    const int reg = hi.reg_layer[li];
    int rs[4] = {1, 0, 0, 0};
    assert_int_equal(kdc_model_layer_shape(m, reg, h, w, rs + 1), KDC_OK);
    assert_int_equal(rs[1], 4 * hi.num_anchors);
    float *seed2 = calloc((size_t)rs[1] * rs[2] * rs[3], sizeof *seed2);
    assert_non_null(seed2);
    for (int k = 0; k < 4; k++)
        seed2[((size_t)(d[0].anchor * 4 + k) * rs[2] + d[0].y) * rs[3] + d[0].x] = 1.0f;
    co.target.layer2 = reg;
    co.target.seed2 = seed2;
    assert_int_equal(kdc_cam_compute(run, input, 1, h, w, &co, &res), KDC_OK);
    assert_int_equal(kdc_npy_load(path, &map, &nd, dims), KDC_OK);
    worst = 0;
    for (size_t i = 0; i < (size_t)h * w; i++)
        worst = fmax(worst, fabs(map[i] - res->map[i]));
    assert_true(worst <= 1e-6);
    kdc_free(map);
    kdc_cam_result_destroy(res);
    free(seed2);
    free(seed);
    kdc_free(d);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
}

/* --coco: results.json carries the instances file's image ids (found by
 * file name), and kdcam eval scores it */
static void test_coco(void **state)
{
    (void)state;
    char det[600], path[700];
    snprintf(det, sizeof det, "%s/det", out);
    assert_int_equal(cliexec_run("shapes --detection -n 2 --start 5 --seed 1 --size 128 -o %s",
                                 det),
                     0);
    assert_int_equal(cliexec_run("detect --det-size 128 -w %s --coco %s/instances.json -o %s "
                                 "%s/000006.png %s/000005.png",
                                 weights, det, out, det, det),
                     0);
    snprintf(path, sizeof path, "%s/results.json", out);
    kdc_coco_box *r = NULL;
    size_t nr = 0;
    assert_int_equal(kdc_coco_read_results(path, &r, &nr), KDC_OK);
    assert_true(nr > 0);
    /* the first image given is 000006.png: its detections come first */
    assert_int_equal(r[0].image_id, 6);
    assert_int_equal(r[nr - 1].image_id, 5);
    kdc_free(r);
    assert_int_equal(cliexec_run("eval --json %s/instances.json %s", det, path), 0);
    assert_non_null(strstr(cliexec_out, "\"stats\":["));
    cliexec_expect_error(cliexec_run("detect -w %s --coco %s/instances.json -o %s " IMAGE,
                                     weights, det, out),
                         "no image with file_name \"coffee.png\"");
    cliexec_expect_error(cliexec_run("detect -w %s --coco %s/instances.json " IMAGE, weights,
                                     det),
                         "add -o DIR");
}

/* IoU of two boxes, written out again for the test. */
static double iou2(const float *a, const float *b)
{
    const double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    if (iw <= 0 || ih <= 0)
        return 0;
    return iw * ih / ((double)(a[2] - a[0]) * (a[3] - a[1]) +
                      (double)(b[2] - b[0]) * (b[3] - b[1]) - iw * ih);
}

/* compare --detection 0: the teacher's row explains its detection 0, a
 * student's row its detection of largest IoU with that box (recomputed
 * here from the library's detections); the same weights as a student match
 * with IoU 1 and the same map */
static void test_compare(void **state)
{
    (void)state;
    char w2[400];
    snprintf(w2, sizeof w2, "%s/retina2.safetensors", cliexec_dir());
    assert_int_equal(kdc_test_write_weights(w2, "resnet50_retina_tv", 5143, 1, "", 0), 0);
    assert_int_equal(cliexec_run("compare --json --detection 0 --det-size %d --model T=%s "
                                 "--model Same=%s --model Other=%s -o %s " IMAGE,
                                 DET_SIZE, weights, weights, w2, out),
                     0);
    kdc_model *m;
    kdc_run *run;
    float *input;
    int h, w, n;
    kdc_detection *td = library_detections(weights, &m, &run, &input, &h, &w, &n);
    const char *teacher = strstr(cliexec_out, "\"model\":\"T\"");
    const char *same = strstr(cliexec_out, "\"model\":\"Same\"");
    const char *other = strstr(cliexec_out, "\"model\":\"Other\"");
    assert_true(teacher && same && other);
    const char *p = teacher;
    for (int k = 0; k < 4; k++)
        assert_true(fabs(num_after(&p, k ? "," : "\"box\":[") - td[0].box[k]) < 1e-3);
    /* generated weights saturate: boxes may be degenerate (IoU 0 even with
     * themselves); the same detection is chosen either way */
    const float *tb = td[0].box;
    const double self = (tb[2] - tb[0]) * (tb[3] - tb[1]) > 0 ? 1.0 : 0.0;
    p = same;
    for (int k = 0; k < 4; k++)
        assert_true(fabs(num_after(&p, k ? "," : "\"box\":[") - tb[k]) < 1e-3);
    assert_int_equal((int)num_after(&p, "\"level\":"), td[0].level);
    assert_int_equal((int)num_after(&p, "\"anchor\":"), td[0].anchor);
    assert_true(fabs(num_after(&p, "\"box_iou_vs_teacher\":") - self) < 1e-9);
    assert_true(fabs(num_after(&p, "\"pearson_vs_teacher\":") - 1.0) < 1e-6);
    /* Other: the best IoU with the teacher's detection 0 among its detections */
    kdc_detection *od = detections_only(w2, &n);
    int best = -1;
    double biou = -1;
    for (int j = 0; j < n; j++) {
        const double v = iou2(od[j].box, td[0].box);
        if (v > biou) {
            biou = v;
            best = j;
        }
    }
    assert_true(best >= 0);
    p = other;
    for (int k = 0; k < 4; k++)
        assert_true(fabs(num_after(&p, k ? "," : "\"box\":[") - od[best].box[k]) < 1e-3);
    assert_true(fabs(num_after(&p, "\"box_iou_vs_teacher\":") - biou) < 1e-5);
    kdc_free(od);
    kdc_free(td);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    remove(w2);
}

/* The teacher's detections (score >= thr) found again in s, one to one:
 * same label, IoU >= 0.5, the largest IoU first come. */
static int matched(const kdc_detection *t, int nt, const kdc_detection *s, int ns, float thr)
{
    int used[4096] = {0}, m = 0;
    assert_true(ns <= 4096);
    for (int i = 0; i < nt; i++) {
        if (t[i].score < thr)
            continue;
        int best = -1;
        double bv = 0;
        for (int j = 0; j < ns; j++) {
            const double v = iou2(t[i].box, s[j].box);
            if (!used[j] && s[j].score >= thr && s[j].label == t[i].label && v >= 0.5 &&
                v >= bv) {
                bv = v;
                best = j;
            }
        }
        if (best >= 0) {
            used[best] = 1;
            m++;
        }
    }
    return m;
}

static int count_at(const kdc_detection *d, int n, float thr)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += d[i].score >= thr;
    return c;
}

/* compare --summary (one image): each student's counts equal a matching
 * recomputed here from the library's detections; --diff draws one more
 * column (the figure gets wider) */
static void test_compare_summary(void **state)
{
    (void)state;
    char w2[400], fig[700];
    const float thr = 0.3f;
    snprintf(w2, sizeof w2, "%s/retina3.safetensors", cliexec_dir());
    snprintf(fig, sizeof fig, "%s/coffee.compare.png", out);
    assert_int_equal(kdc_test_write_weights(w2, "resnet50_retina_tv", 5143, 1, "", 0), 0);
    assert_int_equal(cliexec_run("compare --json --summary --show-dets 0.3 --detection 0 "
                                 "--det-size %d --model T=%s --model Same=%s --model Other=%s "
                                 "-o %s " IMAGE, DET_SIZE, weights, weights, w2, out), 0);
    kdc_image *plain, *wide;
    assert_int_equal(kdc_image_load(fig, &plain), KDC_OK);
    int nt, no;
    kdc_detection *td = detections_only(weights, &nt);
    kdc_detection *od = detections_only(w2, &no);
    const char *same = strstr(cliexec_out, "{\"summary\":true,\"model\":\"Same\"");
    const char *other = strstr(cliexec_out, "{\"summary\":true,\"model\":\"Other\"");
    assert_true(same && other);
    const char *p = same;
    assert_int_equal((int)num_after(&p, "\"images\":"), 1);
    assert_int_equal((int)num_after(&p, "\"detections\":"), count_at(td, nt, thr));
    assert_int_equal((int)num_after(&p, "\"teacher_detections\":"), count_at(td, nt, thr));
    assert_int_equal((int)num_after(&p, "\"matched\":"), matched(td, nt, td, nt, thr));
    assert_true(fabs(num_after(&p, "\"pearson\":") - 1.0) < 1e-6);
    p = other;
    assert_int_equal((int)num_after(&p, "\"detections\":"), count_at(od, no, thr));
    assert_int_equal((int)num_after(&p, "\"teacher_detections\":"), count_at(td, nt, thr));
    assert_int_equal((int)num_after(&p, "\"matched\":"), matched(td, nt, od, no, thr));
    print_message("  summary: teacher %d detections >= %.1f, matched by itself %d, by the other "
                  "weights %d of their %d\n", count_at(td, nt, thr), (double)thr,
                  matched(td, nt, td, nt, thr), matched(td, nt, od, no, thr),
                  count_at(od, no, thr));
    assert_int_equal(cliexec_run("compare --diff --detection 0 --det-size %d --model T=%s "
                                 "--model Other=%s -o %s " IMAGE, DET_SIZE, weights, w2, out), 0);
    assert_int_equal(kdc_image_load(fig, &wide), KDC_OK);
    assert_true(wide->width > plain->width);
    kdc_image_destroy(plain);
    kdc_image_destroy(wide);
    cliexec_expect_error(cliexec_run("compare --summary --det-size %d --model T=%s --model O=%s "
                                     "-o %s " IMAGE, DET_SIZE, weights, w2, out),
                         "--summary needs --detection K");
    kdc_free(od);
    kdc_free(td);
    remove(w2);
}

static void test_errors(void **state)
{
    (void)state;
    cliexec_expect_error(cliexec_run("cam --detection 100000 --det-size %d -w %s -o %s " IMAGE,
                                     DET_SIZE, weights, out),
                         "no detection 100000");
    cliexec_expect_error(cliexec_run("cam --detection 0 --level p4 -w %s -o %s " IMAGE, weights,
                                     out),
                         "--detection is the target");
    cliexec_expect_error(cliexec_run("cam --detection-box -w %s -o %s " IMAGE, weights, out),
                         "give --detection");
    cliexec_expect_error(cliexec_run("detect --det-style xx -w %s " IMAGE, weights),
                         "--det-style");
    cliexec_expect_error(cliexec_run("detect --score-thresh 1.5 -w %s " IMAGE, weights),
                         "--score-thresh");
    cliexec_expect_error(cliexec_run("detect -w %s", weights), "no input");
    cliexec_expect_error(cliexec_run("detect --no-head -w %s " IMAGE, weights),
                         "no detection head");
    cliexec_expect_error(cliexec_run("cam --no-head --detection 0 -w %s -o %s " IMAGE, weights,
                                     out),
                         "needs a detector with a head");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_coco),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_compare_summary),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
