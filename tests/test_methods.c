/* test_methods.c - the issue-19 (part A) library methods against PyTorch
 * references (tools/gen_methods_fixtures.py, tests/fixtures/methods/) on
 * generated ResNet-50 and MobileNetV1 models (weights and input regenerated
 * with tests/util/weightgen.c):
 *   - kdc_cam_layer_map: Grad-CAM of [second-last, last] stage, one map per
 *     layer (pytorch-grad-cam's per-layer scale_cam_image, before the
 *     average): max abs <= 1e-3 and rel L2 <= 1e-4 per layer; and the
 *     average of the two per-layer maps, normalised again, is the
 *     aggregated map (the one kdc_cam_compute returns);
 *   - kdc_perturb_compute: Captum Occlusion (window 16, stride 8) and
 *     Feature Ablation (16 x 16 grid): rel L2 <= 1e-4, in chunks of 5
 *     perturbed images (so chunk boundaries fall inside a row of patches);
 *     the chunk size does not change the result (bitwise);
 *   - SS-CAM and IS-CAM (torch-cam's weights, libkdcam's seeded noise
 *     replayed by the generator): raw maps rel L2 <= 1e-3, batch-size
 *     independent;
 *   - bad arguments give KDC_ERR_INVALID_ARGUMENT.
 * Part C (tools/gen_methods_c_fixtures.py, tests/fixtures/methods_c/), raw
 * maps at both CAM layers against float64 references:
 *   - KPCA-CAM, sigmoid (default) and rbf kernels, and kdc_cam_from_maps
 *     with the default kernel: rel L2 <= 1e-4;
 *   - Finer-CAM for the top-1 and for a given class: rel L2 <= 1e-4;
 *   - Smooth Grad-CAM++ (4 samples, std 0.3, the noise replayed from the
 *     seed): rel L2 <= 1e-3 (randomised), both layers in one call;
 *   - Shapley-CAM (its Hessian term from torch's double backward, 0 on these
 *     piecewise-linear networks): rel L2 <= 1e-4; and for the softmax
 *     probability of the top-1 (<model>_shapley_prob.safetensors): the
 *     tangent pass J A against torch's JVP, the Hessian-vector product
 *     against torch's double backward and the raw maps, rel L2 <= 1e-4;
 *   - Deep Feature Factorization (kdc_dff, 5 concepts at the last stage,
 *     scikit-learn's NMF replayed with NumPy's RandomState(0) init): concept
 *     maps and concepts rel L2 <= 1e-3 (iterative), the same iteration count.
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

#include "cam_internal.h"
#include "kdcam.h"
#include "runner.h"
#include "safetensors.h"
#include "util/testkit.h"
#include "util/weightgen.h"

#define FIXTURE_DIR "tests/fixtures/methods/"
#define FIXTURE_DIR_C "tests/fixtures/methods_c/"
#define TOL_REL 1e-4
#define TOL_MAP 1e-3

static int group_setup(void **state)
{
    (void)state;
    return tk_tmpdir_create("test_methods");
}

static int group_teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

/* rel L2 of got (cnt values) against the fixture entry key: on the stored
 * values (all or samples) and on the norm and sum; *maxabs on the stored. */
static double compare(const kdc__st_file *f, const char *key, const float *got, size_t cnt,
                      double *maxabs)
{
    char k[200];
    snprintf(k, sizeof k, "%s/val", key);
    const kdc__st_tensor *tv = tk_need(f, k);
    float *ref = tk_read_f32(tv);
    const size_t ns = tv->numel;
    float *s = malloc(ns * sizeof *s);
    assert_non_null(s);
    double mx = 0;
    for (size_t j = 0; j < ns; j++) {
        s[j] = got[ns == cnt ? j : kdc_test_sample_index(cnt, ns, j)];
        const double d = fabs((double)s[j] - ref[j]);
        mx = d > mx ? d : mx;
    }
    double e = kdc_test_rel_l2(s, ref, ns), sum, sumsq;
    kdc_test_sums(got, cnt, &sum, &sumsq);
    snprintf(k, sizeof k, "%s/sum", key);
    const double rsum = tk_read_scalar(tk_need(f, k));
    snprintf(k, sizeof k, "%s/sumsq", key);
    const double rsq = tk_read_scalar(tk_need(f, k));
    const double en = fabs(sqrt(sumsq) - sqrt(rsq)) / sqrt(rsq);
    const double es = fabs(sum - rsum) / sqrt((double)cnt * rsq);
    e = en > e ? en : e;
    e = es > e ? es : e;
    free(s);
    free(ref);
    if (maxabs)
        *maxabs = mx;
    return e;
}

typedef struct fixture {
    kdc__st_file *f;
    kdc_model *m;
    kdc_run *run;
    int n, h, w;
    float *x;
    int top1[8];
} fixture;

static void fixture_open_in(fixture *fx, const char *dir, const char *model)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s.safetensors", dir, model);
    memset(fx, 0, sizeof *fx);
    CHECK_OK(kdc__st_open(path, &fx->f));
    const char *scheme = tk_meta(fx->f, "scheme");
    const uint64_t seed = strtoull(tk_meta(fx->f, "seed"), NULL, 10);
    const int classes = (int)tk_meta_long(fx->f, "num_classes");
    tk_check_generator(fx->f, scheme, seed, classes);
    CHECK_OK(kdc_model_load(tk_weights_file(scheme, seed, classes, "", 0), NULL, &fx->m));
    kdc_run_options ro = {2};
    CHECK_OK(kdc_run_create(fx->m, &ro, &fx->run));
    fx->n = (int)tk_meta_long(fx->f, "n");
    fx->h = (int)tk_meta_long(fx->f, "h");
    fx->w = (int)tk_meta_long(fx->f, "w");
    const size_t cnt = (size_t)fx->n * 3 * fx->h * fx->w;
    fx->x = malloc(cnt * sizeof *fx->x);
    assert_non_null(fx->x);
    kdc_test_fill(fx->x, cnt, "input", strtoull(tk_meta(fx->f, "input_seed"), NULL, 10),
                  strtod(tk_meta(fx->f, "input_c"), NULL), strtod(tk_meta(fx->f, "input_a"), NULL));
    int64_t t[8];
    const kdc__st_tensor *tt = tk_need(fx->f, "top1");
    assert_true(tt->numel == (size_t)fx->n && fx->n <= 8);
    CHECK_OK(kdc__st_to_i64(tt, t));
    for (int b = 0; b < fx->n; b++)
        fx->top1[b] = (int)t[b];
}

static void fixture_open(fixture *fx, const char *model)
{
    fixture_open_in(fx, FIXTURE_DIR, model);
}

static void fixture_close(fixture *fx)
{
    free(fx->x);
    kdc_run_destroy(fx->run);
    kdc_model_destroy(fx->m);
    kdc__st_close(fx->f);
}

static void per_layer(void **state)
{
    fixture fx;
    fixture_open(&fx, *state);
    char names[2][96];
    assert_int_equal(tk_split(tk_meta(fx.f, "perlayer_layers"), ',', names, 2), 2);
    int layers[2];
    for (int l = 0; l < 2; l++)
        CHECK_OK(kdc_model_find_layer(fx.m, names[l], &layers[l]));
    kdc_cam_options opt = {.method = KDC_CAM_GRADCAM, .layers = layers, .nlayers = 2};
    kdc_cam_result *res = NULL;
    CHECK_OK(kdc_cam_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &opt, &res));
    const size_t plane = (size_t)fx.h * fx.w, cnt = (size_t)fx.n * plane;
    float *maps = malloc(2 * cnt * sizeof *maps);
    assert_non_null(maps);
    for (int l = 0; l < 2; l++) {
        char key[256];
        double mx;
        CHECK_OK(kdc_cam_layer_map(res, l, maps + l * cnt));
        snprintf(key, sizeof key, "perlayer/%.96s/map", names[l]);
        const double e = compare(fx.f, key, maps + l * cnt, cnt, &mx);
        printf("    %-12s per-layer Grad-CAM %-9s rel %.2e max abs %.2e\n", (char *)*state,
               names[l], e, mx);
        assert_true(e <= TOL_REL);
        assert_true(mx <= TOL_MAP);
    }
    /* the aggregate is the per-layer maps averaged and normalised again */
    for (size_t i = 0; i < cnt; i++)
        maps[i] = (maps[i] + maps[cnt + i]) / 2.0f;
    for (int b = 0; b < fx.n; b++) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < plane; i++) {
            lo = fminf(lo, maps[b * plane + i]);
            hi = fmaxf(hi, maps[b * plane + i]);
        }
        for (size_t i = 0; i < plane; i++) {
            const float v = (maps[b * plane + i] - lo) / (hi - lo + 1e-7f);
            assert_true(fabsf(v - res->map[b * plane + i]) <= 1e-5f);
        }
    }
    CHECK_STATUS(kdc_cam_layer_map(res, 2, maps), KDC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(kdc_cam_layer_map(NULL, 0, maps), KDC_ERR_INVALID_ARGUMENT);
    free(maps);
    kdc_cam_result_destroy(res);
    fixture_close(&fx);
}

static void perturb(void **state)
{
    fixture fx;
    fixture_open(&fx, *state);
    const size_t cnt = (size_t)fx.n * fx.h * fx.w;
    float *a = malloc(cnt * sizeof *a), *b = malloc(cnt * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    int cls[8];
    for (int kind = 0; kind < 2; kind++) {
        const char *key = kind ? "ablation/attr" : "occlusion/attr";
        kdc_perturb_options po = {.kind = (kdc_perturb_kind)kind, .chunk = 5};
        po.window = (int)tk_meta_long(fx.f, kind ? "ablation_window" : "occlusion_window");
        po.stride = kind ? 0 : (int)tk_meta_long(fx.f, "occlusion_stride");
        double t0 = tk_now();
        CHECK_OK(kdc_perturb_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &po, a, cls));
        const double dt = tk_now() - t0;
        for (int i = 0; i < fx.n; i++)
            assert_int_equal(cls[i], fx.top1[i]);
        double mx;
        const double e = compare(fx.f, key, a, cnt, &mx);
        printf("    %-12s %-16s rel %.2e max abs %.2e  %.2fs\n", (char *)*state,
               kind ? "feature ablation" : "occlusion", e, mx, dt);
        assert_true(e <= TOL_REL);
        po.chunk = 64; /* one pass for all patches: the same numbers */
        CHECK_OK(kdc_perturb_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &po, b, NULL));
        assert_memory_equal(a, b, cnt * sizeof *a);
    }
    kdc_perturb_options bad = {.kind = KDC_PERTURB_OCCLUSION, .window = 16, .stride = 17};
    CHECK_STATUS(kdc_perturb_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &bad, a, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
    bad.stride = 8;
    bad.window = fx.h + 1;
    CHECK_STATUS(kdc_perturb_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &bad, a, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
    bad.window = 16;
    bad.kind = (kdc_perturb_kind)7;
    CHECK_STATUS(kdc_perturb_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &bad, a, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
    bad.kind = KDC_PERTURB_OCCLUSION;
    bad.target.kind = KDC_TARGET_SEED;
    CHECK_STATUS(kdc_perturb_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &bad, a, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
    free(a);
    free(b);
    fixture_close(&fx);
}

/* SS-CAM and IS-CAM at the last stage (top-8 channels, 4 samples): the raw
 * map against the torch-cam-weights reference, rel L2 <= 1e-3 (randomised /
 * iterative methods, the noise replayed from the same seed); the batch size
 * does not change the map; the final map is the raw map's
 * normalise-and-resize. */
static void smooth_score(void **state)
{
    fixture fx;
    fixture_open(&fx, *state);
    int layer;
    const char *lname = tk_meta(fx.f, "smooth_layer");
    CHECK_OK(kdc_model_find_layer(fx.m, lname, &layer));
    for (int iscam = 0; iscam < 2; iscam++) {
        kdc_cam_options opt = {.method = iscam ? KDC_CAM_ISCAM : KDC_CAM_SSCAM,
                               .layers = &layer, .nlayers = 1, .scorecam_batch = 3};
        opt.scorecam_topk = (int)tk_meta_long(fx.f, "smooth_topk");
        opt.samples = (int)tk_meta_long(fx.f, iscam ? "iscam_samples" : "sscam_samples");
        opt.noise_std = (float)strtod(tk_meta(fx.f, "sscam_std"), NULL);
        opt.seed = strtoull(tk_meta(fx.f, "sscam_seed"), NULL, 10);
        kdc_cam_result *res = NULL, *res2 = NULL;
        const double t0 = tk_now();
        CHECK_OK(kdc_cam_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &opt, &res));
        const double dt = tk_now() - t0;
        for (int b = 0; b < fx.n; b++)
            assert_int_equal(res->classes[b], fx.top1[b]);
        char key[160];
        snprintf(key, sizeof key, "%s/%s/raw", iscam ? "iscam" : "sscam", lname);
        const size_t cnt = (size_t)fx.n * res->raw_h[0] * res->raw_w[0];
        double mx;
        const double e = compare(fx.f, key, res->raw[0], cnt, &mx);
        printf("    %-12s %-6s [%s] raw rel %.2e max abs %.2e  %.2fs\n", (char *)*state,
               iscam ? "IS-CAM" : "SS-CAM", lname, e, mx, dt);
        assert_true(e <= 1e-3);
        opt.scorecam_batch = 64;
        CHECK_OK(kdc_cam_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &opt, &res2));
        assert_memory_equal(res->raw[0], res2->raw[0], cnt * sizeof(float));
        kdc_cam_result_destroy(res2);
        kdc_cam_result_destroy(res);
    }
    kdc_cam_options bad = {.method = KDC_CAM_SSCAM, .layers = &layer, .nlayers = 1,
                           .samples = -1};
    kdc_cam_result *res = NULL;
    CHECK_STATUS(kdc_cam_compute(fx.run, fx.x, fx.n, fx.h, fx.w, &bad, &res),
                 KDC_ERR_INVALID_ARGUMENT);
    assert_null(res);
    float dummy[4];
    CHECK_STATUS(kdc_cam_from_maps(KDC_CAM_ISCAM, dummy, dummy, 1, 1, 2, 2, dummy),
                 KDC_ERR_INVALID_ARGUMENT);
    fixture_close(&fx);
}

/* Part C: the two CAM layers of the fixture (meta "layers"). */
static void layers_c(const fixture *fx, char names[2][96], int layers[2])
{
    assert_int_equal(tk_split(tk_meta(fx->f, "layers"), ',', names, 2), 2);
    for (int l = 0; l < 2; l++)
        CHECK_OK(kdc_model_find_layer(fx->m, names[l], &layers[l]));
}

/* A part-C fixture and its two CAM layers. */
typedef struct part_c {
    fixture fx;
    char names[2][96];
    int layers[2];
} part_c;

/* Opens the part-C fixture of model *state and its two layers. */
static void open_c(part_c *p, void **state)
{
    fixture_open_in(&p->fx, FIXTURE_DIR_C, *state);
    layers_c(&p->fx, p->names, p->layers);
}

/* open_c, and options for method on both layers. */
static kdc_cam_options open_c_opts(part_c *p, void **state, kdc_cam_method method)
{
    open_c(p, state);
    return (kdc_cam_options){.method = method, .layers = p->layers, .nlayers = 2};
}

/* kdc_cam_compute with opt fails with want and leaves no result. */
static void expect_rejected(const fixture *fx, const kdc_cam_options *opt, kdc_status want)
{
    kdc_cam_result *res = NULL;
    CHECK_STATUS(kdc_cam_compute(fx->run, fx->x, fx->n, fx->h, fx->w, opt, &res), want);
    assert_null(res);
}

/* kdc_cam_compute with opt on both layers; each raw map against
 * <prefix>/<layer>/raw, rel L2 <= tol; returns the result. */
static kdc_cam_result *check_c(const fixture *fx, const kdc_cam_options *opt,
                               char names[2][96], const char *prefix, const char *label,
                               double tol)
{
    kdc_cam_result *res = NULL;
    const double t0 = tk_now();
    CHECK_OK(kdc_cam_compute(fx->run, fx->x, fx->n, fx->h, fx->w, opt, &res));
    const double dt = tk_now() - t0;
    for (int l = 0; l < opt->nlayers; l++) {
        char key[256];
        double mx;
        snprintf(key, sizeof key, "%s/%.96s/raw", prefix, names[l]);
        const size_t cnt = (size_t)fx->n * res->raw_h[l] * res->raw_w[l];
        const double e = compare(fx->f, key, res->raw[l], cnt, &mx);
        printf("    %-12s %-22s [%-8s] raw rel %.2e max abs %.2e  %.2fs\n",
               tk_meta(fx->f, "arch"), label, names[l], e, mx, dt);
        assert_true(e <= tol);
    }
    return res;
}

static void kpca_cam(void **state)
{
    part_c p;
    open_c(&p, state);
    for (int k = 0; k < 2; k++) {
        kdc_cam_options opt = {.method = KDC_CAM_KPCACAM, .layers = p.layers, .nlayers = 2,
                               .kpca_kernel = k ? KDC_KPCA_RBF : KDC_KPCA_SIGMOID};
        kdc_cam_result *res = check_c(&p.fx, &opt, p.names, k ? "kpcacam/rbf" : "kpcacam/sigmoid",
                                      k ? "KPCA-CAM rbf" : "KPCA-CAM sigmoid", TOL_REL);
        if (!k) { /* the same map from kdc_cam_from_maps (default kernel) of the
                   * activations of kdc_cam_compute's pass, a recording one (a
                   * plain kdc_run_forward may take Winograd's convs: values
                   * within rounding, not the same bits; docs/api.md) */
            int s[4];
            CHECK_OK(kdc_run_forward_grad(p.fx.run, p.fx.x, p.fx.n, p.fx.h, p.fx.w, &p.layers[1],
                                          1, p.layers[1]));
            CHECK_OK(kdc_run_layer_shape(p.fx.run, p.layers[1], s));
            const size_t numel = (size_t)s[0] * s[1] * s[2] * s[3], hw = (size_t)s[2] * s[3];
            float *A = malloc(numel * sizeof *A), *raw = malloc((size_t)s[0] * hw * sizeof *raw);
            assert_non_null(A);
            assert_non_null(raw);
            CHECK_OK(kdc_run_read_layer(p.fx.run, p.layers[1], A, numel));
            CHECK_OK(kdc_cam_from_maps(KDC_CAM_KPCACAM, A, NULL, s[0], s[1], s[2], s[3], raw));
            assert_memory_equal(raw, res->raw[1], (size_t)s[0] * hw * sizeof *raw);
            free(A);
            free(raw);
        }
        kdc_cam_result_destroy(res);
    }
    kdc_cam_options bad = {.method = KDC_CAM_KPCACAM, .layers = p.layers, .nlayers = 1,
                           .kpca_kernel = KDC_KPCA_COUNT};
    expect_rejected(&p.fx, &bad, KDC_ERR_INVALID_ARGUMENT);
    fixture_close(&p.fx);
}

static void finer_cam(void **state)
{
    part_c p;
    int given[8];
    open_c(&p, state);
    char gs[8][96];
    assert_int_equal(tk_split(tk_meta(p.fx.f, "finer_given"), ',', gs, 8), p.fx.n);
    for (int b = 0; b < p.fx.n; b++)
        given[b] = atoi(gs[b]);
    for (int c = 0; c < 2; c++) {
        kdc_cam_options opt = {.method = KDC_CAM_FINERCAM, .layers = p.layers, .nlayers = 2};
        opt.target.classes = c ? given : NULL;
        kdc_cam_result *res = check_c(&p.fx, &opt, p.names, c ? "finercam/given" : "finercam/top1",
                                      c ? "Finer-CAM given class" : "Finer-CAM top-1",
                                      TOL_REL);
        for (int b = 0; b < p.fx.n; b++)
            assert_int_equal(res->classes[b], c ? given[b] : p.fx.top1[b]);
        kdc_cam_result_destroy(res);
    }
    kdc_cam_options bad = {.method = KDC_CAM_FINERCAM, .layers = p.layers, .nlayers = 1,
                           .target.kind = KDC_TARGET_PROB};
    expect_rejected(&p.fx, &bad, KDC_ERR_INVALID_ARGUMENT);
    bad.target.kind = KDC_TARGET_LOGIT;
    bad.finer_compare = 100000;
    expect_rejected(&p.fx, &bad, KDC_ERR_INVALID_ARGUMENT);
    fixture_close(&p.fx);
}

static void smooth_gradcampp(void **state)
{
    part_c p;
    kdc_cam_options opt = open_c_opts(&p, state, KDC_CAM_SMOOTHGRADCAMPP);
    opt.samples = (int)tk_meta_long(p.fx.f, "sgpp_samples");
    opt.noise_std = (float)strtod(tk_meta(p.fx.f, "sgpp_std"), NULL);
    opt.seed = strtoull(tk_meta(p.fx.f, "sgpp_seed"), NULL, 10);
    kdc_cam_result *res = check_c(&p.fx, &opt, p.names, "smoothgradcampp", "Smooth Grad-CAM++",
                                  1e-3);
    for (int b = 0; b < p.fx.n; b++)
        assert_int_equal(res->classes[b], p.fx.top1[b]);
    kdc_cam_result_destroy(res);
    opt.samples = -1;
    expect_rejected(&p.fx, &opt, KDC_ERR_INVALID_ARGUMENT);
    fixture_close(&p.fx);
}

/* Shapley-CAM of the top-1 probability against <model>_shapley_prob: the
 * tangent pass J A at the logits against torch's (double-backward) JVP and
 * the Hessian-vector product against torch's double backward, per layer,
 * then the raw maps of both layers; rel L2 <= 1e-4 each. On the model's
 * run (kernels as loaded: kname). */
static void shapley_prob_check(part_c *p, const char *kname)
{
    fixture *fx = &p->fx;
    const int last = kdc_model_num_layers(fx->m) - 1;
    for (int l = 0; l < 2; l++) {
        const int layer = p->layers[l];
        int s[4], ls[4];
        CHECK_OK(kdc_run_forward_grad(fx->run, fx->x, fx->n, fx->h, fx->w, &layer, 1, layer));
        CHECK_OK(kdc_run_layer_shape(fx->run, layer, s));
        CHECK_OK(kdc_run_layer_shape(fx->run, last, ls));
        const size_t numel = (size_t)s[0] * s[1] * s[2] * s[3], nk = (size_t)ls[0] * ls[1];
        float *A = malloc(numel * sizeof *A), *hvp = malloc(numel * sizeof *hvp);
        float *u = malloc(nk * sizeof *u);
        assert_non_null(A);
        assert_non_null(hvp);
        assert_non_null(u);
        CHECK_OK(kdc_run_read_layer(fx->run, layer, A, numel));
        CHECK_OK(kdc__run_tangent(fx->run, layer, A, u));
        char key[256];
        double mx;
        snprintf(key, sizeof key, "shapleycam_prob/%.96s/jvp", p->names[l]);
        double e = compare(fx->f, key, u, nk, &mx);
        printf("    %-12s %-6s tangent pass J A       [%-8s] rel %.2e max abs %.2e\n",
               tk_meta(fx->f, "arch"), kname, p->names[l], e, mx);
        assert_true(e <= TOL_REL);
        CHECK_OK(kdc__shapley_hvp(fx->run, layer, A, fx->n, fx->top1, hvp, numel));
        snprintf(key, sizeof key, "shapleycam_prob/%.96s/hvp", p->names[l]);
        e = compare(fx->f, key, hvp, numel, &mx);
        printf("    %-12s %-6s Hessian-vector product [%-8s] rel %.2e max abs %.2e\n",
               tk_meta(fx->f, "arch"), kname, p->names[l], e, mx);
        assert_true(e <= TOL_REL);
        /* the recorded state must reach the layer */
        CHECK_OK(kdc_run_forward_grad(fx->run, fx->x, fx->n, fx->h, fx->w, &layer, 1, last));
        CHECK_STATUS(kdc__run_tangent(fx->run, layer, A, u), KDC_ERR_STATE);
        free(A);
        free(hvp);
        free(u);
    }
    kdc_cam_options opt = {.method = KDC_CAM_SHAPLEYCAM, .layers = p->layers, .nlayers = 2,
                           .target.kind = KDC_TARGET_PROB};
    char label[64];
    snprintf(label, sizeof label, "Shapley-CAM prob %s", kname);
    kdc_cam_result *res = check_c(fx, &opt, p->names, "shapleycam_prob", label, TOL_REL);
    for (int b = 0; b < fx->n; b++)
        assert_int_equal(res->classes[b], fx->top1[b]);
    kdc_cam_result_destroy(res);
}

/* shapley_prob_check on the SIMD kernels (as loaded) and on the scalar
 * reference kernels (the tangent tasks of the op table for every conv). */
static void shapley_prob(void **state)
{
    char name[96];
    snprintf(name, sizeof name, "%s_shapley_prob", (const char *)*state);
    part_c p;
    fixture_open_in(&p.fx, FIXTURE_DIR_C, name);
    layers_c(&p.fx, p.names, p.layers);
    shapley_prob_check(&p, "simd");
    kdc_run_destroy(p.fx.run);
    kdc_model_destroy(p.fx.m);
    const char *scheme = tk_meta(p.fx.f, "scheme");
    kdc_model_options mo = {.bn_eps = -1.0f, .kernels = KDC_KERNELS_SCALAR};
    CHECK_OK(kdc_model_load(tk_weights_file(scheme, strtoull(tk_meta(p.fx.f, "seed"), NULL, 10),
                                            (int)tk_meta_long(p.fx.f, "num_classes"), "", 0),
                            &mo, &p.fx.m));
    kdc_run_options ro = {2};
    CHECK_OK(kdc_run_create(p.fx.m, &ro, &p.fx.run));
    shapley_prob_check(&p, "scalar");
    fixture_close(&p.fx);
}

static void shapley_cam(void **state)
{
    part_c p;
    kdc_cam_options opt = open_c_opts(&p, state, KDC_CAM_SHAPLEYCAM);
    kdc_cam_result_destroy(check_c(&p.fx, &opt, p.names, "shapleycam", "Shapley-CAM", TOL_REL));
    float dummy[4];
    CHECK_STATUS(kdc_cam_from_maps(KDC_CAM_SHAPLEYCAM, dummy, dummy, 1, 1, 2, 2, dummy),
                 KDC_ERR_INVALID_ARGUMENT);
    fixture_close(&p.fx);
    shapley_prob(state);
}

static void dff(void **state)
{
    fixture fx;
    fixture_open_in(&fx, FIXTURE_DIR_C, *state);
    const char *lname = tk_meta(fx.f, "dff_layer");
    int layer, s[4], iters = 0;
    CHECK_OK(kdc_model_find_layer(fx.m, lname, &layer));
    CHECK_OK(kdc_run_forward(fx.run, fx.x, fx.n, fx.h, fx.w, &layer, 1));
    CHECK_OK(kdc_run_layer_shape(fx.run, layer, s));
    const size_t numel = (size_t)s[0] * s[1] * s[2] * s[3];
    const int k = (int)tk_meta_long(fx.f, "dff_components");
    float *A = malloc(numel * sizeof *A), *con = malloc((size_t)s[1] * k * sizeof *con);
    float *maps = malloc((size_t)s[0] * k * s[2] * s[3] * sizeof *maps);
    assert_non_null(A);
    assert_non_null(con);
    assert_non_null(maps);
    CHECK_OK(kdc_run_read_layer(fx.run, layer, A, numel));
    kdc_dff_options o = {0}; /* the defaults: 5 concepts, 200 iterations, tol 1e-4 */
    const double t0 = tk_now();
    CHECK_OK(kdc_dff(A, s[0], s[1], s[2], s[3], &o, con, maps, &iters));
    const double dt = tk_now() - t0;
    char key[160];
    double mx, e;
    snprintf(key, sizeof key, "dff/%s/maps", lname);
    e = compare(fx.f, key, maps, (size_t)s[0] * k * s[2] * s[3], &mx);
    printf("    %-12s DFF [%s] maps rel %.2e max abs %.2e, %d iterations  %.2fs\n",
           (char *)*state, lname, e, mx, iters, dt);
    assert_true(e <= 1e-3);
    snprintf(key, sizeof key, "dff/%s/concepts", lname);
    e = compare(fx.f, key, con, (size_t)s[1] * k, &mx);
    printf("    %-12s DFF [%s] concepts rel %.2e max abs %.2e\n", (char *)*state, lname, e, mx);
    assert_true(e <= 1e-3);
    assert_int_equal(iters, (int)tk_meta_long(fx.f, "dff_iterations"));
    o.components = -1;
    CHECK_STATUS(kdc_dff(A, s[0], s[1], s[2], s[3], &o, con, maps, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
    free(A);
    free(con);
    free(maps);
    fixture_close(&fx);
}

int main(void)
{
    static const char *models[] = {"resnet50", "mobilenetv1"};
    static void (*const fns[])(void **) = {per_layer, perturb, smooth_score, kpca_cam,
                                           finer_cam, smooth_gradcampp, shapley_cam, dff};
    static const char *const fnames[] = {"per_layer", "perturb", "sscam iscam", "kpcacam",
                                         "finercam", "smoothgradcam++", "shapleycam", "dff"};
    enum { NF = sizeof fns / sizeof *fns };
    static char names[NF * 2][64];
    struct CMUnitTest tests[NF * 2];
    for (int f = 0; f < NF; f++)
        for (int i = 0; i < 2; i++) {
            struct CMUnitTest t = cmocka_unit_test_prestate(fns[f], (void *)models[i]);
            snprintf(names[f * 2 + i], sizeof names[0], "%s %s", fnames[f], models[i]);
            t.name = names[f * 2 + i];
            tests[f * 2 + i] = t;
        }
    return cmocka_run_group_tests_name("methods", tests, group_setup, group_teardown);
}
