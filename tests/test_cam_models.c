/* test_cam_models.c - class activation maps of whole models against
 * pytorch-grad-cam's formulas evaluated in float64 PyTorch.
 *
 * Each fixture in tests/fixtures/grad/ (written by tools/gen_grad_fixtures.py;
 * weights and input regenerated here with tests/util/weightgen.c) holds, for
 * the top-1 logit target of each image, every method's raw map at the last
 * and second-last stage (ResNet layer4 / layer3, MobileNetV1 model.13 /
 * model.11) and the final normalised, upsampled, aggregated map for the layer
 * sets [last] and [second-last, last]. kdc_cam_compute (scorecam_topk = 8)
 * must give:
 *   - raw maps: relative L2 <= 1e-4 (plus norm and sum, as test_models.c);
 *   - final maps: max abs difference <= 1e-3 on the stored samples, and the
 *     mean difference (from the sums) <= 1e-3;
 *   - classes = PyTorch's top-1;
 *   - guided Grad-CAM (the final Grad-CAM map of [last] times the
 *     KDC_ATTR_GUIDED input gradient, per pixel): relative L2 <= 1e-4.
 * Errors: a layer without spatial extent (avgpool / model.14) is
 * KDC_ERR_SHAPE, an unknown layer name KDC_ERR_NOT_FOUND, a class out of
 * range KDC_ERR_INVALID_ARGUMENT.
 *
 * Runtime (scalar engine, about two minutes for test_grad and this test
 * together): by default the test runs every method on both layer sets for
 * resnet50 and the two MobileNets, except Ablation-CAM on the two-layer set
 * (it reruns the last stage once per channel of the second-last one: 1024
 * layer4 passes for a ResNet, 512 model.12-13 passes for a MobileNet,
 * minutes) and resnet50's two-layer Score-CAM (16 more masked passes); for
 * resnet101 and resnet152 (the map arithmetic is shared, their
 * gradients are checked layer by layer in test_grad) it runs Grad-CAM and
 * Eigen-CAM. KDC_TEST_SLOW=1 in the environment runs every method on every
 * set of every model (the fixtures hold all references).
 *
 * Run from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kdcam.h"
#include "safetensors.h"
#include "util/testkit.h"
#include "util/weightgen.h"

#define FIXTURE_DIR "tests/fixtures/grad/"
#define TOL_RAW 1e-4
#define TOL_MAP 1e-3
#define SCORECAM_TOPK 8

static const char *const MODELS[] = {"resnet50", "resnet101", "resnet152", "mobilenetv1",
                                     "mobilenetv1_timm"};

/* ------------------------------------------------------------------ */
/* Temporary weights files                                             */

static int group_setup(void **state)
{
    (void)state;
    return tk_tmpdir_create("test_cam");
}

static int group_teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

/* Shape of fixture entry key (key/shape); returns the element count. */
static size_t ref_shape(const kdc__st_file *f, const char *key, int64_t shape[8], int *ndim)
{
    char k[200];
    snprintf(k, sizeof k, "%s/shape", key);
    const kdc__st_tensor *ts = tk_need(f, k);
    assert_true(ts->numel >= 1 && ts->numel <= 8);
    CHECK_OK(kdc__st_to_i64(ts, shape));
    size_t n = 1;
    for (size_t d = 0; d < ts->numel; d++)
        n *= (size_t)shape[d];
    *ndim = (int)ts->numel;
    return n;
}

typedef struct errs {
    double rel;   /* sampled rel L2, norm rel, sum rel: the largest  */
    double maxabs; /* max abs on the samples                        */
    double meanabs; /* |sum - ref sum| / numel                       */
} errs;

static errs compare(const kdc__st_file *f, const char *key, const float *got, size_t cnt)
{
    int64_t shape[8];
    int nd;
    size_t rn = ref_shape(f, key, shape, &nd);
    if (rn != cnt)
        fail_msg("%s: %zu values, PyTorch %zu", key, cnt, rn);
    char k[200];
    snprintf(k, sizeof k, "%s/val", key);
    const kdc__st_tensor *tv = tk_need(f, k);
    float *ref = tk_read_f32(tv);
    size_t ns = tv->numel;
    float *sample = malloc(ns * sizeof *sample);
    assert_non_null(sample);
    errs e = {0, 0, 0};
    for (size_t j = 0; j < ns; j++) {
        sample[j] = got[ns == cnt ? j : kdc_test_sample_index(cnt, ns, j)];
        double d = fabs((double)sample[j] - (double)ref[j]);
        if (!(d <= e.maxabs))
            e.maxabs = d;
    }
    double e_sample = kdc_test_rel_l2(sample, ref, ns);
    double sum, sumsq;
    kdc_test_sums(got, cnt, &sum, &sumsq);
    snprintf(k, sizeof k, "%s/sum", key);
    double rsum = tk_read_scalar(tk_need(f, k));
    snprintf(k, sizeof k, "%s/sumsq", key);
    double rsumsq = tk_read_scalar(tk_need(f, k));
    double e_norm = rsumsq > 0 ? fabs(sqrt(sumsq) - sqrt(rsumsq)) / sqrt(rsumsq) : sqrt(sumsq);
    double e_sum = rsumsq > 0 ? fabs(sum - rsum) / sqrt((double)cnt * rsumsq) : fabs(sum);
    e.rel = e_sample;
    if (!(e_norm <= e.rel))
        e.rel = e_norm;
    if (!(e_sum <= e.rel))
        e.rel = e_sum;
    e.meanabs = fabs(sum - rsum) / (double)cnt;
    free(sample);
    free(ref);
    return e;
}

typedef struct fixture {
    kdc__st_file *f;
    const char *scheme;
    int n, h, w, classes;
    kdc_model *m;
    float *input;
    size_t in_count;
    int top1[16];
} fixture;

static void fixture_open(fixture *fx, const char *model)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURE_DIR "%s.safetensors", model);
    memset(fx, 0, sizeof *fx);
    CHECK_OK(kdc__st_open(path, &fx->f));
    fx->scheme = tk_meta(fx->f, "scheme");
    uint64_t seed = strtoull(tk_meta(fx->f, "seed"), NULL, 10);
    uint64_t in_seed = strtoull(tk_meta(fx->f, "input_seed"), NULL, 10);
    double in_c = strtod(tk_meta(fx->f, "input_c"), NULL);
    double in_a = strtod(tk_meta(fx->f, "input_a"), NULL);
    fx->n = (int)tk_meta_long(fx->f, "n");
    fx->h = (int)tk_meta_long(fx->f, "h");
    fx->w = (int)tk_meta_long(fx->f, "w");
    fx->classes = (int)tk_meta_long(fx->f, "num_classes");
    tk_check_generator(fx->f, fx->scheme, seed, fx->classes);
    CHECK_OK(kdc_model_load(tk_weights_file(fx->scheme, seed, fx->classes, "", 0), NULL, &fx->m));
    assert_string_equal(kdc_model_arch(fx->m), tk_meta(fx->f, "arch"));
    assert_int_equal(kdc_model_num_classes(fx->m), fx->classes);
    fx->in_count = (size_t)fx->n * 3 * (size_t)fx->h * (size_t)fx->w;
    fx->input = malloc(fx->in_count * sizeof *fx->input);
    assert_non_null(fx->input);
    kdc_test_fill(fx->input, fx->in_count, "input", in_seed, in_c, in_a);
    int64_t t[16];
    const kdc__st_tensor *tt = tk_need(fx->f, "top1");
    assert_true(tt->numel == (size_t)fx->n && fx->n <= 16);
    CHECK_OK(kdc__st_to_i64(tt, t));
    for (int b = 0; b < fx->n; b++)
        fx->top1[b] = (int)t[b];
}

static void fixture_close(fixture *fx)
{
    free(fx->input);
    kdc_model_destroy(fx->m);
    kdc__st_close(fx->f);
}

static int slow_enabled(void)
{
    const char *s = getenv("KDC_TEST_SLOW");
    return s && *s && strcmp(s, "0") != 0;
}

/* NULL if (method, layer set) runs by default, else why it is skipped. */
static const char *skip_reason(const char *model, int method, int nlayers)
{
    if (method == KDC_CAM_FULLGRAD)
        return "every bias layer, not a layer set: tests/test_attr.c";
    if (slow_enabled())
        return NULL;
    if (method == KDC_CAM_ABLATIONCAM && nlayers > 1)
        return "reruns the last stage per channel of the second-last";
    if (method == KDC_CAM_SCORECAM && nlayers > 1 && strncmp(model, "resnet", 6) == 0)
        return "16 more masked ResNet passes; two-layer Score-CAM runs on the MobileNets";
    if ((strcmp(model, "resnet101") == 0 || strcmp(model, "resnet152") == 0) &&
        method != KDC_CAM_GRADCAM && method != KDC_CAM_EIGENCAM)
        return "deep ResNet: Grad-CAM and Eigen-CAM only";
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The CAM test                                                        */

static void cam_fixture(void **state)
{
    const char *model = *state;
    fixture fx;
    fixture_open(&fx, model);
    const kdc__st_file *f = fx.f;
    const int n = fx.n, H = fx.h, W = fx.w;
    const int resnet = strncmp(fx.scheme, "resnet", 6) == 0;
    kdc_run *run = NULL;
    kdc_run_options ropt = {2}; /* bitwise the same as 1 thread; halves the wall time */
    CHECK_OK(kdc_run_create(fx.m, &ropt, &run));

    char sets_str[4][96], set_layers[4][KDC_CAM_MAX_LAYERS][96];
    int nsets = tk_split(tk_meta(f, "cam_sets"), ';', sets_str, 4);
    int set_n[4], set_idx[4][KDC_CAM_MAX_LAYERS];
    for (int s = 0; s < nsets; s++) {
        set_n[s] = tk_split(sets_str[s], ',', set_layers[s], KDC_CAM_MAX_LAYERS);
        for (int l = 0; l < set_n[s]; l++)
            CHECK_OK(kdc_model_find_layer(fx.m, set_layers[s][l], &set_idx[s][l]));
    }
    const char *last = tk_meta(f, "cam_last");
    assert_int_equal(atoi(tk_meta(f, "scorecam_topk")), SCORECAM_TOPK);

    int failures = 0;
    float *gradcam_map = NULL; /* final Grad-CAM map of [last] */
    printf("  %s (N=%d, %dx%d; PyTorch f32 vs f64: raw maps worst %s (%s), final maps max abs "
           "%s)\n",
           model, n, H, W, tk_meta(f, "f32_vs_f64_cam_raw_worst_rel_l2"),
           tk_meta(f, "f32_vs_f64_cam_raw_worst"), tk_meta(f, "f32_vs_f64_cam_map_max_abs"));
    char fx_methods[32][96];
    const int nfx = tk_split(tk_meta(f, "cam_methods"), ',', fx_methods, 32);
    for (int mth = 0; mth < KDC_CAM_COUNT; mth++) {
        const char *mname = kdc_cam_method_name((kdc_cam_method)mth);
        assert_non_null(mname);
        int in_fixture = 0; /* later methods have fixtures of their own (test_methods.c) */
        for (int i = 0; i < nfx; i++)
            in_fixture |= !strcmp(fx_methods[i], mname);
        if (!in_fixture)
            continue;
        for (int s = 0; s < nsets; s++) {
            char label[200], key[200];
            snprintf(label, sizeof label, "%s [%s]", mname, sets_str[s]);
            const char *why = skip_reason(model, mth, set_n[s]);
            if (why) {
                printf("    %-36s skipped (%s%s)\n", label, why,
                       mth == KDC_CAM_FULLGRAD ? "" : "; KDC_TEST_SLOW=1 runs it");
                continue;
            }
            kdc_cam_options opt;
            memset(&opt, 0, sizeof opt);
            opt.method = (kdc_cam_method)mth;
            opt.layers = set_idx[s];
            opt.nlayers = set_n[s];
            opt.scorecam_topk = SCORECAM_TOPK;
            kdc_cam_result *res = NULL;
            double t0 = tk_now();
            kdc_status st = kdc_cam_compute(run, fx.input, n, H, W, &opt, &res);
            double dt = tk_now() - t0;
            if (st != KDC_OK) {
                printf("  FAIL %s %s: kdc_cam_compute -> %s: %s\n", model, label,
                       kdc_status_string(st), kdc_last_error());
                failures++;
                continue;
            }
            assert_int_equal(res->n, n);
            assert_int_equal(res->in_h, H);
            assert_int_equal(res->in_w, W);
            assert_int_equal(res->nlayers, set_n[s]);
            for (int b = 0; b < n; b++)
                if (res->classes[b] != fx.top1[b]) {
                    printf("  FAIL %s %s: image %d class %d, PyTorch top-1 %d\n", model, label,
                           b, res->classes[b], fx.top1[b]);
                    failures++;
                }
            double worst_raw = 0;
            for (int l = 0; l < set_n[s]; l++) {
                snprintf(key, sizeof key, "cam/%s/%.96s/raw", mname, set_layers[s][l]);
                int64_t shape[8];
                int nd;
                ref_shape(f, key, shape, &nd);
                assert_int_equal(nd, 3);
                if (res->raw_h[l] != shape[1] || res->raw_w[l] != shape[2])
                    fail_msg("%s %s: raw map of %s is %dx%d, PyTorch %lldx%lld", model, label,
                             set_layers[s][l], res->raw_h[l], res->raw_w[l],
                             (long long)shape[1], (long long)shape[2]);
                errs e = compare(f, key, res->raw[l], (size_t)n * res->raw_h[l] * res->raw_w[l]);
                if (!(e.rel <= TOL_RAW)) {
                    printf("  FAIL %s %s: raw map of %s rel err %.3e (max abs %.3e)\n", model,
                           label, set_layers[s][l], e.rel, e.maxabs);
                    failures++;
                }
                if (!(e.rel <= worst_raw))
                    worst_raw = e.rel;
            }
            snprintf(key, sizeof key, "cam/%s/%.96s/map", mname, sets_str[s]);
            /* the fixture names sets with '+' */
            for (char *p = key; *p; p++)
                if (*p == ',')
                    *p = '+';
            errs em = compare(f, key, res->map, (size_t)n * H * W);
            if (!(em.maxabs <= TOL_MAP) || !(em.meanabs <= TOL_MAP)) {
                printf("  FAIL %s %s: final map max abs %.3e mean diff %.3e\n", model, label,
                       em.maxabs, em.meanabs);
                failures++;
            }
            printf("    %-36s %6.2fs  raw rel %.2e  map max abs %.2e\n", label, dt, worst_raw,
                   em.maxabs);
            fflush(stdout);
            if (mth == KDC_CAM_GRADCAM && set_n[s] == 1 && strcmp(set_layers[s][0], last) == 0) {
                gradcam_map = malloc((size_t)n * H * W * sizeof *gradcam_map);
                assert_non_null(gradcam_map);
                memcpy(gradcam_map, res->map, (size_t)n * H * W * sizeof *gradcam_map);
            }
            kdc_cam_result_destroy(res);
        }
    }

    /* guided Grad-CAM = final Grad-CAM map of [last] x guided input gradient */
    assert_non_null(gradcam_map);
    size_t hw = (size_t)H * W;
    float *gb = malloc(fx.in_count * sizeof *gb);
    assert_non_null(gb);
    kdc_attribution_options aopt;
    memset(&aopt, 0, sizeof aopt);
    aopt.kind = KDC_ATTR_GUIDED;
    CHECK_OK(kdc_attribution_compute(run, fx.input, n, H, W, &aopt, gb));
    for (int b = 0; b < n; b++)
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < hw; i++)
                gb[((size_t)b * 3 + c) * hw + i] *= gradcam_map[(size_t)b * hw + i];
    errs eg = compare(f, "guided_gradcam", gb, fx.in_count);
    printf("    %-36s         rel %.2e\n", "guided Grad-CAM", eg.rel);
    if (!(eg.rel <= TOL_RAW)) {
        printf("  FAIL %s guided Grad-CAM rel err %.3e\n", model, eg.rel);
        failures++;
    }
    free(gb);
    free(gradcam_map);

    /* errors */
    kdc_cam_options opt;
    memset(&opt, 0, sizeof opt);
    opt.method = KDC_CAM_GRADCAM;
    opt.nlayers = 1;
    int flat;
    CHECK_OK(kdc_model_find_layer(fx.m, tk_meta(f, "nospatial_layer"), &flat));
    opt.layers = &flat;
    kdc_cam_result *res = NULL;
    CHECK_STATUS(kdc_cam_compute(run, fx.input, n, H, W, &opt, &res), KDC_ERR_SHAPE);
    assert_null(res);
    int dummy = -1;
    CHECK_STATUS(kdc_model_find_layer(fx.m, resnet ? "layer5" : "model.15", &dummy),
                 KDC_ERR_NOT_FOUND);
    CHECK_STATUS(kdc_model_find_layer(fx.m, "no.such.layer", &dummy), KDC_ERR_NOT_FOUND);
    opt.layers = &set_idx[0][0];
    int bad[16] = {0};
    bad[n - 1] = fx.classes;
    opt.target.kind = KDC_TARGET_LOGIT;
    opt.target.classes = bad;
    CHECK_STATUS(kdc_cam_compute(run, fx.input, n, H, W, &opt, &res), KDC_ERR_INVALID_ARGUMENT);
    assert_null(res);
    bad[n - 1] = -1;
    opt.method = KDC_CAM_SCORECAM;
    opt.scorecam_topk = SCORECAM_TOPK;
    CHECK_STATUS(kdc_cam_compute(run, fx.input, n, H, W, &opt, &res), KDC_ERR_INVALID_ARGUMENT);
    assert_null(res);

    kdc_run_destroy(run);
    fixture_close(&fx);
    assert_int_equal(failures, 0);
}

int main(void)
{
    enum { NMODELS = sizeof MODELS / sizeof MODELS[0] };
    struct CMUnitTest tests[NMODELS];
    for (int i = 0; i < NMODELS; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(cam_fixture, (void *)MODELS[i]);
        t.name = MODELS[i];
        tests[i] = t;
    }
    return cmocka_run_group_tests_name("cam_models", tests, group_setup, group_teardown);
}
