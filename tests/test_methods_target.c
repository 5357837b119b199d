/* test_methods_target.c - `--target own|teacher|label|CLASS` (issue 19)
 * end to end on generated fixture models (tests/util/weightgen.c):
 *   - compare: with --target teacher every student's map explains the
 *     teacher's top-1 class; the output (class, prob, agreement, figure
 *     bytes) equals a run with -c set to that class, and differs from the
 *     student's own-target run (the fixture pair disagrees on the image,
 *     which the test checks first, so it can fail);
 *   - pointing: the table and JSON say which target was used; accuracy stays
 *     the models' top-1; the teacher's scores do not change under
 *     --target teacher while the student's agreement equals a per-class run;
 *   - cam: --target label reads labels.json beside the image; teacher is
 *     refused for a single model; bad targets give one-line errors;
 *   - cam --per-layer: one .npy per layer (the last equals a single-layer
 *     run's map once normalised again) and the side-by-side figure.
 *
 * The binary is $KDCAM (set by `make test`), else build/kdcam. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cliexec.h"
#include "kdcam.h"
#include "weightgen.h"

#define run cliexec_run
#define expect_error cliexec_expect_error
#define field cliexec_json_num

static char tmp[64], wt[256], ws[256];

static int setup(void **state)
{
    (void)state;
    if (cliexec_setup())
        return -1;
    snprintf(tmp, sizeof tmp, "%s", cliexec_dir());
    snprintf(wt, sizeof wt, "%s/t-r50.safetensors", tmp);
    snprintf(ws, sizeof ws, "%s/s-mb.safetensors", tmp);
    if (kdc_test_write_weights(wt, "resnet50", 50, 10, "", 0) ||
        kdc_test_write_weights(ws, "mobilenetv1", 1001, 10, "", 0))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Line `idx` (0-based) of text into out. */
static void line_of(const char *text, int idx, char *out, size_t size)
{
    const char *p = text;
    for (int i = 0; i < idx; i++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    assert_true(len < size);
    memcpy(out, p, len);
    out[len] = '\0';
}

static void test_compare_teacher(void **state)
{
    (void)state;
    char t_own[1024], s_own[1024], s_tea[1024], s_cls[1024], d1[128], d2[128], png1[200],
        png2[200];
    const char *img = "examples/images/chelsea.png";
    snprintf(d1, sizeof d1, "%s/cmp-teacher", tmp);
    snprintf(d2, sizeof d2, "%s/cmp-class", tmp);
    assert_int_equal(run("compare --model T=resnet50:%s --model S=mobilenetv1:%s -o %s --json %s",
                         wt, ws, tmp, img), 0);
    line_of(cliexec_out, 0, t_own, sizeof t_own);
    line_of(cliexec_out, 1, s_own, sizeof s_own);
    assert_non_null(strstr(s_own, "\"target\":\"own\""));
    const int tc = (int)field(t_own, "class"), sc = (int)field(s_own, "class");
    if (tc == sc)
        fail_msg("fixture: teacher and student agree on %s (class %d); the test needs a pair "
                 "that disagrees", img, tc);

    assert_int_equal(run("compare --model T=resnet50:%s --model S=mobilenetv1:%s -o %s --json "
                         "--target teacher %s", wt, ws, d1, img), 0);
    line_of(cliexec_out, 1, s_tea, sizeof s_tea);
    assert_non_null(strstr(s_tea, "\"target\":\"teacher\""));
    assert_int_equal((int)field(s_tea, "class"), tc);
    assert_int_equal(run("compare --model T=resnet50:%s --model S=mobilenetv1:%s -o %s --json "
                         "-c %d %s", wt, ws, d2, tc, img), 0);
    line_of(cliexec_out, 1, s_cls, sizeof s_cls);
    assert_int_equal((int)field(s_cls, "class"), tc);
    /* the student's map explains the teacher's class: same numbers as -c */
    assert_float_equal(field(s_tea, "prob"), field(s_cls, "prob"), 0);
    assert_float_equal(field(s_tea, "pearson_vs_teacher"), field(s_cls, "pearson_vs_teacher"), 0);
    assert_float_equal(field(s_tea, "iou20_vs_teacher"), field(s_cls, "iou20_vs_teacher"), 0);
    /* ... and not the student's own answer */
    assert_true(field(s_tea, "pearson_vs_teacher") != field(s_own, "pearson_vs_teacher"));
    snprintf(png1, sizeof png1, "%s/chelsea.compare.png", d1);
    snprintf(png2, sizeof png2, "%s/chelsea.compare.png", d2);
    size_t n1, n2;
    char *b1 = cliexec_slurp(png1, &n1), *b2 = cliexec_slurp(png2, &n2);
    assert_true(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    printf("  teacher class %d, student own %d; --target teacher == -c %d (r %.3f vs own %.3f)\n",
           tc, sc, tc, field(s_tea, "pearson_vs_teacher"), field(s_own, "pearson_vs_teacher"));

    /* the generated models have no class names, so a name is refused; an
     * index out of range, both -c and --target, an unlabelled image too */
    expect_error(run("compare --model T=resnet50:%s --model S=mobilenetv1:%s -o %s --target "
                     "tabby %s", wt, ws, tmp, img), "not one of the model's class names");
    expect_error(run("compare --model T=resnet50:%s -o %s --target 10 %s", wt, tmp, img),
                 "out of range");
    expect_error(run("compare --model T=resnet50:%s -o %s --target 3 -c 3 %s", wt, tmp, img),
                 "not both");
    expect_error(run("compare --model T=resnet50:%s -o %s --target label %s", wt, tmp, img),
                 "has no label");
    expect_error(run("compare --model T=resnet50:%s -o %s --target 1x %s", wt, tmp, img),
                 "not own, teacher, label or a class index");
}

static void test_pointing_and_cam(void **state)
{
    (void)state;
    char dir[128], own_t[1024], own_s[1024], tea_t[1024], tea_s[1024];
    snprintf(dir, sizeof dir, "%s/shapes", tmp);
    assert_int_equal(run("shapes -n 4 --seed 5 --size 64 -o %s", dir), 0);
    assert_int_equal(run("pointing --model T=%s --model S=mobilenetv1:%s --json %s", wt, ws,
                         dir), 0);
    line_of(cliexec_out, 0, own_t, sizeof own_t);
    line_of(cliexec_out, 1, own_s, sizeof own_s);
    assert_non_null(strstr(own_t, "\"target\":\"own\""));
    assert_int_equal(run("pointing --model T=%s --model S=mobilenetv1:%s --json --target "
                         "teacher %s", wt, ws, dir), 0);
    line_of(cliexec_out, 0, tea_t, sizeof tea_t);
    line_of(cliexec_out, 1, tea_s, sizeof tea_s);
    assert_non_null(strstr(tea_s, "\"target\":\"teacher\""));
    /* the teacher explains its own class either way; accuracy is top-1 */
    assert_string_equal(strstr(own_t, "\"method\""), strstr(tea_t, "\"method\""));
    assert_float_equal(field(own_s, "accuracy"), field(tea_s, "accuracy"), 0);
    assert_int_equal(run("pointing --model T=%s --model S=mobilenetv1:%s --target teacher %s",
                         wt, ws, dir), 0);
    assert_non_null(strstr(cliexec_out, "target teacher"));
    expect_error(run("pointing --model T=%s --target 12 %s", wt, dir), "out of range");

    /* analyze: the meta line names the target; teacher rows unchanged */
    char an1[160], an2[160], p1[200], p2[200];
    snprintf(an1, sizeof an1, "%s/an-own", tmp);
    snprintf(an2, sizeof an2, "%s/an-teacher", tmp);
    assert_int_equal(run("analyze --model T=%s --model S=mobilenetv1:%s --batch 4 -o %s %s", wt,
                         ws, an1, dir), 0);
    assert_int_equal(run("analyze --model T=%s --model S=mobilenetv1:%s --batch 4 --target "
                         "teacher -o %s %s", wt, ws, an2, dir), 0);
    snprintf(p1, sizeof p1, "%s/rows.jsonl", an1);
    snprintf(p2, sizeof p2, "%s/rows.jsonl", an2);
    size_t l1, l2;
    char *r1 = cliexec_slurp(p1, &l1), *r2 = cliexec_slurp(p2, &l2);
    assert_non_null(strstr(r1, "\"cam_target\":\"top-1 class of each model\""));
    assert_non_null(strstr(r2, "\"cam_target\":\"teacher\""));
    /* the image rows differ: the student's map explains another class on
     * the images where the pair disagrees (all four here) */
    const char *i1 = strstr(r1, "{\"type\":\"image\""), *i2 = strstr(r2, "{\"type\":\"image\"");
    assert_non_null(i1);
    assert_non_null(i2);
    assert_true(strcmp(i1, i2) != 0);
    free(r1);
    free(r2);

    /* cam --target label: labels.json beside the image */
    char img[200];
    snprintf(img, sizeof img, "%s/000000.png", dir);
    assert_int_equal(run("cam -w %s -o %s --target label %s", ws, tmp, img), 0);
    assert_non_null(strstr(cliexec_out, "target label"));
    int lc = atoi(strstr(cliexec_out, "class ") + 6);
    char lab[256], *txt;
    size_t len;
    snprintf(lab, sizeof lab, "%s/labels.json", dir);
    txt = cliexec_slurp(lab, &len);
    const char *e = strstr(txt, "\"000000.png\"");
    assert_non_null(e);
    const char *c = strstr(e, "\"class\":");
    assert_non_null(c);
    assert_int_equal(lc, atoi(c + 8));
    free(txt);
    expect_error(run("cam -w %s -o %s --target teacher %s", ws, tmp, img), "several --model");
}

/* cam --per-layer: one .npy per layer and the strip; the last layer's own
 * map, min-max normalised once more, equals the map of a single-layer run
 * at that layer (pytorch-grad-cam's aggregate of one layer), and the two
 * layers' maps differ. */
static void test_per_layer_cli(void **state)
{
    (void)state;
    char d1[128], d2[128], p[300];
    snprintf(d1, sizeof d1, "%s/pl-two", tmp);
    snprintf(d2, sizeof d2, "%s/pl-one", tmp);
    const char *img = "examples/images/chelsea.png";
    assert_int_equal(run("cam -w %s -l model.11 -l model.13 --per-layer -o %s %s", ws, d1, img),
                     0);
    assert_int_equal(run("cam -w %s -l model.13 --npy -o %s %s", ws, d2, img), 0);
    float *a = NULL, *b = NULL, *c = NULL;
    int nd;
    int64_t da[8], db[8], dc[8];
    snprintf(p, sizeof p, "%s/chelsea.gradcam.layer.model.13.npy", d1);
    assert_int_equal(kdc_npy_load(p, &a, &nd, da), KDC_OK);
    assert_int_equal(nd, 3);
    snprintf(p, sizeof p, "%s/chelsea.gradcam.layer.model.11.npy", d1);
    assert_int_equal(kdc_npy_load(p, &c, &nd, dc), KDC_OK);
    snprintf(p, sizeof p, "%s/chelsea.gradcam.npy", d2);
    assert_int_equal(kdc_npy_load(p, &b, &nd, db), KDC_OK);
    assert_true(da[0] == 1 && da[1] == db[1] && da[2] == db[2] && dc[1] == da[1]);
    const size_t cnt = (size_t)da[1] * da[2];
    double mx = 0, diff = 0;
    float lo = a[0], hi = a[0];
    for (size_t i = 1; i < cnt; i++) {
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    for (size_t i = 0; i < cnt; i++) {
        /* the one-layer aggregate: the layer's map normalised once more */
        mx = fmax(mx, fabs((double)((a[i] - lo) / (hi - lo + 1e-7f)) - b[i]));
        diff = fmax(diff, fabs((double)a[i] - c[i]));
    }
    printf("  per-layer model.13 vs single-layer run: max abs %.2e; model.11 vs model.13 %.2f\n",
           mx, diff);
    assert_true(mx <= 1e-5);
    assert_true(diff > 0.1);
    kdc_free(a);
    kdc_free(b);
    kdc_free(c);
    snprintf(p, sizeof p, "%s/chelsea.gradcam.layers.png", d1);
    kdc_image *fig = NULL;
    assert_int_equal(kdc_image_load(p, &fig), KDC_OK);
    assert_true(fig->width > 3 * (int)da[2]); /* input + two layers side by side */
    kdc_image_destroy(fig);
    expect_error(run("cam -w %s --method saliency --per-layer -o %s %s", ws, d1, img),
                 "--per-layer applies to the CAM methods");
    expect_error(run("compare --model T=%s --per-layer -o %s %s", ws, d1, img),
                 "unknown option '--per-layer'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_teacher),
        cmocka_unit_test(test_pointing_and_cam),
        cmocka_unit_test(test_per_layer_cli),
    };
    return cmocka_run_group_tests_name("methods_target", tests, setup, teardown);
}
