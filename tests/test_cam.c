/* test_cam.c - class activation maps, attributions and feature maps.
 *
 * Fixtures in tests/fixtures/cam/ come from tools/gen_cam_fixtures.py, which
 * re-implements pytorch-grad-cam's conventions in NumPy/PyTorch (float64):
 *  - maps.safetensors: kdc_cam_from_maps for every gradient / Eigen method
 *    (relative L2 <= 1e-4), kdc_feature_map, scale_cam_image + cv2-convention
 *    resize (max abs <= 1e-5), the multi-layer aggregation, and Score-CAM's
 *    align_corners=True upsampling;
 *  - model.safetensors: kdc_cam_compute (every method) and
 *    kdc_attribution_compute on the KD MobileNetV1 (seeded weights written
 *    by tests/util/weightgen.c, 64x80 input, n = 2).
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
#include <unistd.h>

#include "cam_internal.h"
#include "kdcam.h"
#include "safetensors.h"
#include "util/testkit.h"
#include "util/weightgen.h"

#define FIX "tests/fixtures/cam/"
#define TOL_RAW 1e-4
#define TOL_MAP 1e-5

static kdc__st_file *open_fx(const char *name)
{
    kdc__st_file *f = NULL;
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    CHECK_OK(kdc__st_open(path, &f));
    return f;
}

/* A float tensor of the fixture (malloc'd); its element count in *count. */
static float *get_f32(const kdc__st_file *f, const char *name, size_t *count)
{
    const kdc__st_tensor *t = kdc__st_find(f, name);
    if (!t)
        fail_msg("fixture has no tensor %s", name);
    float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
    assert_non_null(v);
    CHECK_OK(kdc__st_to_f32(t, v));
    if (count)
        *count = t->numel;
    return v;
}

static int64_t *get_i64(const kdc__st_file *f, const char *name, size_t *count)
{
    const kdc__st_tensor *t = kdc__st_find(f, name);
    if (!t)
        fail_msg("fixture has no tensor %s", name);
    int64_t *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
    assert_non_null(v);
    if (t->dtype == KDC__ST_I32) {
        for (size_t i = 0; i < t->numel; i++) {
            int32_t x;
            memcpy(&x, t->data + 4 * i, 4);
            v[i] = x;
        }
    } else {
        CHECK_OK(kdc__st_to_i64(t, v));
    }
    if (count)
        *count = t->numel;
    return v;
}

static const int64_t *shape_of(const kdc__st_file *f, const char *name)
{
    const kdc__st_tensor *t = kdc__st_find(f, name);
    if (!t)
        fail_msg("fixture has no tensor %s", name);
    return t->shape;
}

static double max_abs(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

static void test_method_names(void **state)
{
    (void)state;
    kdc_cam_method m;
    for (int i = 0; i < KDC_CAM_COUNT; i++) {
        const char *name = kdc_cam_method_name((kdc_cam_method)i);
        assert_non_null(name);
        CHECK_OK(kdc_cam_method_parse(name, &m));
        assert_int_equal(m, i);
    }
    assert_string_equal(kdc_cam_method_name(KDC_CAM_GRADCAMPP), "gradcam++");
    assert_null(kdc_cam_method_name(KDC_CAM_COUNT));
    assert_null(kdc_cam_method_name((kdc_cam_method)-1));
    CHECK_OK(kdc_cam_method_parse("GradCAM", &m));
    assert_int_equal(m, KDC_CAM_GRADCAM);
    assert_int_equal(kdc_cam_method_parse("gradcam+", &m), KDC_ERR_INVALID_ARGUMENT);
    const char *msg = kdc_last_error();
    assert_non_null(strstr(msg, "gradcam+"));
    for (int i = 0; i < KDC_CAM_COUNT; i++)
        assert_non_null(strstr(msg, kdc_cam_method_name((kdc_cam_method)i)));
    assert_null(strchr(msg, '\n'));
    assert_int_equal(kdc_cam_method_parse(NULL, &m), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_method_parse("gradcam", NULL), KDC_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------------ */
/* Maps from A and G                                                   */

static const char *const MAP_CASES[] = {"a", "b", "z", "wide", "big", "bigwide"};
static const kdc_cam_method GRAD_METHODS[] = {
    KDC_CAM_GRADCAM, KDC_CAM_HIRESCAM, KDC_CAM_GRADCAMPP, KDC_CAM_XGRADCAM,
    KDC_CAM_LAYERCAM, KDC_CAM_EIGENCAM, KDC_CAM_EIGENGRADCAM};

static void test_from_maps(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx("maps.safetensors");
    double worst = 0.0;
    for (size_t ci = 0; ci < sizeof MAP_CASES / sizeof *MAP_CASES; ci++) {
        char name[128];
        size_t na;
        snprintf(name, sizeof name, "%s/A", MAP_CASES[ci]);
        float *A = get_f32(f, name, &na);
        const int64_t *s = shape_of(f, name);
        const int n = (int)s[0], c = (int)s[1], h = (int)s[2], w = (int)s[3];
        snprintf(name, sizeof name, "%s/G", MAP_CASES[ci]);
        float *G = get_f32(f, name, NULL);
        float *raw = malloc((size_t)n * h * w * sizeof *raw);
        assert_non_null(raw);
        for (size_t mi = 0; mi < sizeof GRAD_METHODS / sizeof *GRAD_METHODS; mi++) {
            const kdc_cam_method m = GRAD_METHODS[mi];
            size_t nr;
            snprintf(name, sizeof name, "%s/raw/%s", MAP_CASES[ci], kdc_cam_method_name(m));
            float *ref = get_f32(f, name, &nr);
            assert_int_equal(nr, (size_t)n * h * w);
            memset(raw, 0xff, nr * sizeof *raw); /* NaN: every value must be written */
            CHECK_OK(kdc_cam_from_maps(m, A, G, n, c, h, w, raw));
            const double err = kdc_test_rel_l2(raw, ref, nr);
            if (!(err <= TOL_RAW))
                fail_msg("case %s %s: raw map rel L2 %.3e > %.0e", MAP_CASES[ci],
                         kdc_cam_method_name(m), err, TOL_RAW);
            for (size_t i = 0; i < nr; i++)
                assert_true(raw[i] >= 0.0f);
            worst = err > worst ? err : worst;
            if (m == KDC_CAM_EIGENCAM) { /* G is not needed */
                CHECK_OK(kdc_cam_from_maps(m, A, NULL, n, c, h, w, raw));
                assert_true(kdc_test_rel_l2(raw, ref, nr) <= TOL_RAW);
            }
            free(ref);
        }
        free(A);
        free(G);
        free(raw);
    }
    printf("  kdc_cam_from_maps: worst raw rel L2 %.2e\n", worst);
    kdc__st_close(f);
}

static void test_from_maps_errors(void **state)
{
    (void)state;
    float A[2 * 3 * 4] = {0}, G[2 * 3 * 4] = {0}, raw[2 * 4] = {0};
    assert_int_equal(kdc_cam_from_maps(KDC_CAM_GRADCAM, A, NULL, 2, 3, 2, 2, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "gradcam"));
    assert_int_equal(kdc_cam_from_maps(KDC_CAM_GRADCAM, NULL, G, 2, 3, 2, 2, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_from_maps(KDC_CAM_GRADCAM, A, G, 2, 3, 2, 2, NULL),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_from_maps(KDC_CAM_SCORECAM, A, G, 2, 3, 2, 2, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "kdc_cam_compute"));
    assert_int_equal(kdc_cam_from_maps(KDC_CAM_COUNT, A, G, 2, 3, 2, 2, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_from_maps(KDC_CAM_GRADCAM, A, G, 0, 3, 2, 2, raw), KDC_ERR_SHAPE);
    assert_int_equal(kdc_feature_map(NULL, 1, 1, 1, 1, KDC_REDUCE_MEAN, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_feature_map(A, 1, 1, 1, 1, (kdc_reduce)9, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_normalize_resize(NULL, 1, 2, 2, 3, 3, raw),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_normalize_resize(A, 1, 2, 2, 0, 3, raw), KDC_ERR_SHAPE);
    assert_int_equal(kdc_resize_bilinear(A, 1, 2, 2, 3, 3, NULL), KDC_ERR_INVALID_ARGUMENT);
}

static void test_feature_map(void **state)
{
    (void)state;
    static const char *const names[] = {"mean", "max", "l2", "pca"};
    kdc__st_file *f = open_fx("maps.safetensors");
    double worst = 0.0;
    for (size_t ci = 0; ci < sizeof MAP_CASES / sizeof *MAP_CASES; ci++) {
        char name[128];
        snprintf(name, sizeof name, "%s/A", MAP_CASES[ci]);
        float *A = get_f32(f, name, NULL);
        const int64_t *s = shape_of(f, name);
        const int n = (int)s[0], c = (int)s[1], h = (int)s[2], w = (int)s[3];
        float *out = malloc((size_t)n * h * w * sizeof *out);
        assert_non_null(out);
        for (int r = 0; r < 4; r++) {
            size_t nr;
            snprintf(name, sizeof name, "%s/feat/%s", MAP_CASES[ci], names[r]);
            float *ref = get_f32(f, name, &nr);
            CHECK_OK(kdc_feature_map(A, n, c, h, w, (kdc_reduce)r, out));
            const double err = kdc_test_rel_l2(out, ref, nr);
            if (!(err <= TOL_RAW))
                fail_msg("case %s feature map %s: rel L2 %.3e", MAP_CASES[ci], names[r], err);
            worst = err > worst ? err : worst;
            free(ref);
        }
        free(A);
        free(out);
    }
    printf("  kdc_feature_map: worst rel L2 %.2e\n", worst);
    kdc__st_close(f);
}

/* ------------------------------------------------------------------ */
/* Normalisation, resizing, aggregation                                */

static void test_normalize_resize(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx("maps.safetensors");
    float *src = get_f32(f, "resize/src", NULL);
    size_t no;
    float *ref = get_f32(f, "resize/out", &no);
    float *plain = get_f32(f, "resize/plain", NULL);
    size_t nd;
    float *down = get_f32(f, "resize/down", &nd);
    assert_int_equal(no, 2 * 23 * 31);
    float *out = malloc(no * sizeof *out);
    assert_non_null(out);
    CHECK_OK(kdc_cam_normalize_resize(src, 2, 5, 6, 23, 31, out));
    double e1 = max_abs(out, ref, no);
    CHECK_OK(kdc_resize_bilinear(src, 2, 5, 6, 23, 31, out));
    double e2 = max_abs(out, plain, no);
    CHECK_OK(kdc_resize_bilinear(src, 2, 5, 6, 3, 4, out));
    double e3 = max_abs(out, down, nd);
    /* same size: a copy */
    CHECK_OK(kdc_resize_bilinear(src, 2, 5, 6, 5, 6, out));
    assert_memory_equal(out, src, 2 * 5 * 6 * sizeof *out);
    printf("  normalise+resize %.2e, resize up %.2e, down %.2e (max abs)\n", e1, e2, e3);
    assert_true(e1 <= TOL_MAP);
    assert_true(e2 <= TOL_MAP);
    assert_true(e3 <= TOL_MAP);
    free(src);
    free(ref);
    free(plain);
    free(down);
    free(out);
    kdc__st_close(f);
}

static void test_aggregate_chain(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx("maps.safetensors");
    float *raw0 = get_f32(f, "chain/raw0", NULL), *raw1 = get_f32(f, "chain/raw1", NULL);
    size_t nm;
    float *ref = get_f32(f, "chain/map", &nm), *ref1 = get_f32(f, "chain/map1", NULL);
    float *tmp = malloc(nm * sizeof *tmp), *map = malloc(nm * sizeof *map);
    assert_non_null(tmp);
    assert_non_null(map);
    const float *raws[2] = {raw0, raw1};
    const int rh[2] = {5, 3}, rw[2] = {6, 4};
    CHECK_OK(kdc__cam_aggregate(raws, rh, rw, 2, 2, 23, 31, tmp, map));
    double e2 = max_abs(map, ref, nm);
    CHECK_OK(kdc__cam_aggregate(raws, rh, rw, 1, 2, 23, 31, tmp, map));
    double e1 = max_abs(map, ref1, nm);
    printf("  aggregation chain: 2 layers %.2e, 1 layer %.2e (max abs)\n", e2, e1);
    assert_true(e2 <= TOL_MAP);
    assert_true(e1 <= TOL_MAP);
    free(raw0);
    free(raw1);
    free(ref);
    free(ref1);
    free(tmp);
    free(map);
    kdc__st_close(f);
}

static void test_upsample_align_corners(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx("maps.safetensors");
    float *src = get_f32(f, "upac/src", NULL);
    size_t no;
    float *ref = get_f32(f, "upac/out", &no);
    assert_int_equal(no, 2 * 17 * 13);
    float out[2 * 17 * 13];
    for (int b = 0; b < 2; b++)
        kdc__upsample_align_corners(src + b * 12, 3, 4, out + b * 17 * 13, 17, 13);
    const double e = max_abs(out, ref, no);
    printf("  align_corners upsampling: max abs %.2e\n", e);
    assert_true(e <= TOL_MAP);
    /* corners map onto corners */
    assert_true(out[0] == src[0]);
    assert_true(out[17 * 13 - 1] == src[11]);
    free(src);
    free(ref);
    kdc__st_close(f);
}

/* ------------------------------------------------------------------ */
/* Whole-model CAMs and attributions                                   */

typedef struct model_ctx {
    char dir[64], path[128];
    kdc_model *model;
    kdc_run *run;
    kdc__st_file *fx;
    float *input;
    int n, h, w;
} model_ctx;

static model_ctx g_m;

static int setup_model(void **state)
{
    (void)state;
    strcpy(g_m.dir, "/tmp/kdc_test_cam_XXXXXX");
    if (!mkdtemp(g_m.dir))
        return -1;
    snprintf(g_m.path, sizeof g_m.path, "%s/mbv1.safetensors", g_m.dir);
    if (kdc_test_write_weights(g_m.path, "mobilenetv1", 1001, 10, NULL, 0))
        return -1;
    /* This file tests the CAM and attribution arithmetic (weights, sums,
     * normalisation, SmoothGrad's noise, Integrated Gradients' path) against
     * PyTorch float64, so it runs the scalar reference kernels. With the SIMD
     * kernels the float32 rounding differs by ~1e-6 of a layer's RMS, and at
     * the input 7/8 x of Integrated Gradients one BatchNorm output of
     * model.11.4 lies that close to zero (3.3e-7 scalar, -4.9e-6 AVX2): its
     * ReLU switches, and the input gradient moves by 2.6e-3 relative L2. That
     * is float32 at a kink, not an error of either path; the SIMD kernels are
     * held to the scalar ones by test_gemm and test_kernels, and to PyTorch on
     * whole models by test_models, test_grad, test_cam_models and test_fpn. */
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    mo.kernels = KDC_KERNELS_SCALAR;
    if (kdc_model_load(g_m.path, &mo, &g_m.model) || kdc_run_create(g_m.model, NULL, &g_m.run))
        return -1;
    if (kdc__st_open(FIX "model.safetensors", &g_m.fx))
        return -1;
    g_m.n = atoi(kdc__st_metadata(g_m.fx, "n"));
    g_m.h = atoi(kdc__st_metadata(g_m.fx, "h"));
    g_m.w = atoi(kdc__st_metadata(g_m.fx, "w"));
    const size_t numel = (size_t)g_m.n * 3 * g_m.h * g_m.w;
    g_m.input = malloc(numel * sizeof *g_m.input);
    if (!g_m.input)
        return -1;
    kdc_test_fill(g_m.input, numel, "input", (uint64_t)atoll(kdc__st_metadata(g_m.fx,
                                                                            "input_seed")),
                  0.0, 2.0);
    return 0;
}

static int teardown_model(void **state)
{
    (void)state;
    kdc_run_destroy(g_m.run);
    kdc_model_destroy(g_m.model);
    kdc__st_close(g_m.fx);
    free(g_m.input);
    unlink(g_m.path);
    rmdir(g_m.dir);
    return 0;
}

static int layer(const char *name)
{
    int l = -1;
    CHECK_OK(kdc_model_find_layer(g_m.model, name, &l));
    return l;
}

/* Compares 1024 samples of a full-size array with the fixture's. */
static double sampled_max_abs(const float *full, size_t numel, const char *name, double *rel)
{
    size_t k;
    float *ref = get_f32(g_m.fx, name, &k);
    float *got = malloc(k * sizeof *got);
    assert_non_null(got);
    for (size_t j = 0; j < k; j++)
        got[j] = full[kdc_test_sample_index(numel, k, j)];
    const double e = max_abs(got, ref, k);
    if (rel)
        *rel = kdc_test_rel_l2(got, ref, k);
    free(ref);
    free(got);
    return e;
}

static void test_input_generator(void **state)
{
    (void)state;
    const size_t numel = (size_t)g_m.n * 3 * g_m.h * g_m.w;
    double e = sampled_max_abs(g_m.input, numel, "input/val", NULL);
    assert_true(e == 0.0);
}

typedef struct cam_case {
    const char *name;
    kdc_cam_method method;
    const char *layers[2];
    int nlayers;
    int classes[2]; /* -1: top-1 */
    kdc_target_kind kind;
    int topk, batch;
} cam_case;

static const cam_case CAM_CASES[] = {
    {"gradcam2", KDC_CAM_GRADCAM, {"model.13", "model.11"}, 2, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
    {"gradcampp_prob", KDC_CAM_GRADCAMPP, {"model.11"}, 1, {3, 7}, KDC_TARGET_PROB, 0, 0},
    {"hirescam", KDC_CAM_HIRESCAM, {"model.11"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
    {"xgradcam", KDC_CAM_XGRADCAM, {"model.12"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
    {"layercam", KDC_CAM_LAYERCAM, {"model.10"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
    {"eigencam", KDC_CAM_EIGENCAM, {"model.11"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
    {"eigengradcam", KDC_CAM_EIGENGRADCAM, {"model.13"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
    {"scorecam", KDC_CAM_SCORECAM, {"model.13"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 6, 4},
    {"ablationcam", KDC_CAM_ABLATIONCAM, {"model.13"}, 1, {-1, -1}, KDC_TARGET_LOGIT, 0, 0},
};

/* Raw maps: relative L2 <= 1e-4 against the float64 reference. The final
 * map is min-max normalised (values in [0, 1]): max abs <= 1e-4 on the
 * samples (float32 network vs float64 reference). */
#define TOL_MODEL_MAP 1e-4

static void test_cam_compute(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof CAM_CASES / sizeof *CAM_CASES; ci++) {
        const cam_case *cc = &CAM_CASES[ci];
        int layers[2], classes[2] = {cc->classes[0], cc->classes[1]};
        for (int l = 0; l < cc->nlayers; l++)
            layers[l] = layer(cc->layers[l]);
        kdc_cam_options opt;
        memset(&opt, 0, sizeof opt);
        opt.method = cc->method;
        opt.layers = layers;
        opt.nlayers = cc->nlayers;
        opt.target.kind = cc->kind;
        opt.target.classes = classes[0] >= 0 ? classes : NULL;
        opt.scorecam_topk = cc->topk;
        opt.scorecam_batch = cc->batch;
        kdc_cam_result *res = NULL;
        CHECK_OK(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res));
        assert_int_equal(res->n, g_m.n);
        assert_int_equal(res->nlayers, cc->nlayers);
        char name[128];
        double worst_raw = 0.0;
        for (int l = 0; l < cc->nlayers; l++) {
            size_t nr;
            snprintf(name, sizeof name, "%s/raw%d", cc->name, l);
            float *ref = get_f32(g_m.fx, name, &nr);
            const int64_t *s = shape_of(g_m.fx, name);
            assert_int_equal(res->raw_h[l], (int)s[1]);
            assert_int_equal(res->raw_w[l], (int)s[2]);
            const double e = kdc_test_rel_l2(res->raw[l], ref, nr);
            worst_raw = e > worst_raw ? e : worst_raw;
            free(ref);
        }
        snprintf(name, sizeof name, "%s/map", cc->name);
        const double em = sampled_max_abs(res->map, (size_t)g_m.n * g_m.h * g_m.w, name, NULL);
        snprintf(name, sizeof name, "%s/classes", cc->name);
        int64_t *cls = get_i64(g_m.fx, name, NULL);
        for (int b = 0; b < g_m.n; b++)
            assert_int_equal(res->classes[b], (int)cls[b]);
        free(cls);
        printf("  %-15s raw rel L2 %.2e  map max abs %.2e\n", cc->name, worst_raw, em);
        if (!(worst_raw <= TOL_RAW) || !(em <= TOL_MODEL_MAP))
            fail_msg("%s: raw rel L2 %.3e (tol %.0e), map max abs %.3e (tol %.0e)", cc->name,
                     worst_raw, TOL_RAW, em, TOL_MODEL_MAP);
        kdc_cam_result_destroy(res);
    }
}

static void test_cam_compute_errors(void **state)
{
    (void)state;
    int fc = layer("fc"), l13 = layer("model.13");
    kdc_cam_options opt;
    memset(&opt, 0, sizeof opt);
    opt.method = KDC_CAM_GRADCAM;
    opt.layers = &fc;
    opt.nlayers = 1;
    kdc_cam_result *res = (kdc_cam_result *)&opt; /* must be reset to NULL */
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_SHAPE);
    assert_null(res);
    assert_non_null(strstr(kdc_last_error(), "10x1x1"));
    opt.layers = &l13;
    opt.nlayers = 0;
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.nlayers = KDC_CAM_MAX_LAYERS + 1;
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.nlayers = 1;
    opt.method = KDC_CAM_COUNT;
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.method = KDC_CAM_SCORECAM;
    opt.target.kind = KDC_TARGET_SEED;
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.method = KDC_CAM_GRADCAM;
    opt.target.kind = KDC_TARGET_LOGIT;
    int bad[2] = {3, 10};
    opt.target.classes = bad;
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.target.classes = NULL;
    int oob = 100000;
    opt.layers = &oob;
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_NOT_FOUND);
    opt.layers = &l13;
    assert_int_equal(kdc_cam_compute(NULL, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_compute(g_m.run, NULL, g_m.n, g_m.h, g_m.w, &opt, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, NULL, &res),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, NULL),
                     KDC_ERR_INVALID_ARGUMENT);
    kdc_cam_result_destroy(NULL);
    /* the run still works after the failures */
    CHECK_OK(kdc_cam_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, &res));
    kdc_cam_result_destroy(res);
}

static void test_attribution(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        kdc_attribution kind;
        int samples;
        float noise;
        uint64_t seed;
    } cases[] = {
        {"attr/saliency", KDC_ATTR_SALIENCY, 0, 0.0f, 0},
        {"attr/guided", KDC_ATTR_GUIDED, 0, 0.0f, 0},
        {"attr/smoothgrad", KDC_ATTR_SMOOTHGRAD, 5, 0.15f, 42},
        {"attr/integrated", KDC_ATTR_INTEGRATED, 8, 0.0f, 0},
    };
    const size_t numel = (size_t)g_m.n * 3 * g_m.h * g_m.w;
    float *out = malloc(numel * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        kdc_attribution_options opt;
        memset(&opt, 0, sizeof opt);
        opt.kind = cases[i].kind;
        opt.samples = cases[i].samples;
        opt.noise = cases[i].noise;
        opt.seed = cases[i].seed;
        CHECK_OK(kdc_attribution_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, out));
        double rel;
        sampled_max_abs(out, numel, cases[i].name, &rel);
        printf("  %-16s rel L2 %.2e (1024 samples)\n", cases[i].name, rel);
        if (!(rel <= 1e-4))
            fail_msg("%s: rel L2 %.3e", cases[i].name, rel);
    }
    kdc_attribution_options opt;
    memset(&opt, 0, sizeof opt);
    opt.samples = -1;
    assert_int_equal(kdc_attribution_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, out),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.samples = 0;
    opt.kind = (kdc_attribution)7;
    assert_int_equal(kdc_attribution_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, out),
                     KDC_ERR_INVALID_ARGUMENT);
    opt.kind = KDC_ATTR_SALIENCY;
    assert_int_equal(kdc_attribution_compute(g_m.run, g_m.input, g_m.n, g_m.h, g_m.w, &opt, NULL),
                     KDC_ERR_INVALID_ARGUMENT);
    free(out);
}

int main(void)
{
    const struct CMUnitTest maps[] = {
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_from_maps),
        cmocka_unit_test(test_from_maps_errors),
        cmocka_unit_test(test_feature_map),
        cmocka_unit_test(test_normalize_resize),
        cmocka_unit_test(test_aggregate_chain),
        cmocka_unit_test(test_upsample_align_corners),
    };
    const struct CMUnitTest model[] = {
        cmocka_unit_test(test_input_generator),
        cmocka_unit_test(test_cam_compute),
        cmocka_unit_test(test_cam_compute_errors),
        cmocka_unit_test(test_attribution),
    };
    int failed = cmocka_run_group_tests_name("cam maps", maps, NULL, NULL);
    failed += cmocka_run_group_tests_name("cam model", model, setup_model, teardown_model);
    return failed ? 1 : 0;
}
