/* test_grad.c - backward passes against the PyTorch autograd fixtures.
 *
 * Each fixture in tests/fixtures/grad/ (written by tools/gen_grad_fixtures.py)
 * holds float64 PyTorch gradients of one model (N = 2, a small odd input
 * size) for seeded weights and a seeded input, which the test regenerates with
 * tests/util/weightgen.c (checked bit for bit on a few stored weights first):
 *   1. top-1 logit target: d target / d output at every listed layer (ResNet:
 *      input, relu, maxpool, every block, every stage, avgpool; MobileNetV1:
 *      input, model.0 .. model.14);
 *   2. softmax-probability target of explicit classes (each image's runner-up
 *      class, so float32 softmax does not underflow): last stage and input;
 *   3. guided backpropagation: input gradient;
 *   4. a seeded seed tensor at the second-last stage: gradient two stages
 *      lower and at the input.
 * Each gradient must have relative L2 error <= 1e-4 on the stored sample (or
 * the whole tensor when small), its L2 norm within 1e-4 relative, and its sum
 * within 1e-4 * sqrt(n * sumsq) (the rules of test_models.c). The classes
 * used (kdc_run_target_classes) must be PyTorch's top-1 (case 1), the
 * explicit classes (case 2), -1 (seed). A backward down to the second-last
 * stage only must give that stage's gradient bitwise equal to the full run.
 * PyTorch's own float32-vs-float64 error is recorded in each fixture's
 * metadata (about 1e-6) and printed.
 *
 * Error cases (on the MobileNets, which are cheap): backward without
 * forward_grad, a gradient layer below down_to, a class out of range, a NaN
 * input.
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
#define TOL 1e-4
#define MAX_LIST 96

static const char *const MODELS[] = {"resnet50", "resnet101", "resnet152", "mobilenetv1",
                                     "mobilenetv1_timm"};

/* ------------------------------------------------------------------ */
/* Temporary weights files                                             */

static int group_setup(void **state)
{
    (void)state;
    return tk_tmpdir_create("test_grad");
}

static int group_teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

typedef struct errstat {
    double worst;
    char worst_name[160];
    int failures;
} errstat;

/* Compares got (cnt floats) with the fixture entry `key` (key/shape, /val,
 * /sum, /sumsq); records the worst error; prints a FAIL line. */
static void compare(const kdc__st_file *f, const char *model, const char *key, const float *got,
                    size_t cnt, errstat *es)
{
    const kdc__st_tensor *ts = tk_need(f, "%s/shape", key);
    int64_t shape[8];
    CHECK_OK(kdc__st_to_i64(ts, shape));
    size_t rn = 1;
    for (size_t d = 0; d < ts->numel; d++)
        rn *= (size_t)shape[d];
    if (rn != cnt)
        fail_msg("%s %s: %zu values, PyTorch %zu", model, key, cnt, rn);
    const kdc__st_tensor *tv = tk_need(f, "%s/val", key);
    float *ref = tk_read_f32(tv);
    size_t k = tv->numel;
    float *sample = malloc(k * sizeof *sample);
    assert_non_null(sample);
    for (size_t j = 0; j < k; j++)
        sample[j] = got[k == cnt ? j : kdc_test_sample_index(cnt, k, j)];
    double e_sample = kdc_test_rel_l2(sample, ref, k);
    double sum, sumsq;
    kdc_test_sums(got, cnt, &sum, &sumsq);
    double rsum = tk_read_scalar(tk_need(f, "%s/sum", key));
    double rsumsq = tk_read_scalar(tk_need(f, "%s/sumsq", key));
    double e_norm = rsumsq > 0 ? fabs(sqrt(sumsq) - sqrt(rsumsq)) / sqrt(rsumsq) : sqrt(sumsq);
    double e_sum = fabs(sum - rsum) / (sqrt((double)cnt * rsumsq) + 1e-300);
    double e = e_sample;
    if (!(e_norm <= e))
        e = e_norm;
    if (!(e_sum <= e))
        e = e_sum;
    if (!(e <= TOL)) {
        printf("  FAIL %s %-24s sampled rel L2 %.3e  norm rel %.3e  sum rel %.3e\n", model, key,
               e_sample, e_norm, e_sum);
        es->failures++;
    }
    if (!(e <= es->worst)) {
        es->worst = e;
        snprintf(es->worst_name, sizeof es->worst_name, "%s", key);
    }
    free(sample);
    free(ref);
}

/* Reads gradient `layer` from the run and compares it with prefix/name. */
static void compare_grad(const kdc__st_file *f, const char *model, const kdc_model *m,
                         const kdc_run *run, const char *prefix, const char *name, int n, int h,
                         int w, errstat *es)
{
    int idx, chw[3];
    CHECK_OK(kdc_model_find_layer(m, name, &idx));
    CHECK_OK(kdc_model_layer_shape(m, idx, h, w, chw));
    size_t cnt = (size_t)n * chw[0] * chw[1] * chw[2];
    float *g = malloc(cnt * sizeof *g);
    assert_non_null(g);
    CHECK_OK(kdc_run_read_grad(run, idx, g, cnt));
    char key[160];
    snprintf(key, sizeof key, "%s/%s", prefix, name);
    compare(f, model, key, g, cnt, es);
    free(g);
}

static int *layer_indices(const kdc_model *m, char names[][96], int count)
{
    int *v = malloc((size_t)(count > 0 ? count : 1) * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < count; i++) {
        kdc_status s = kdc_model_find_layer(m, names[i], &v[i]);
        if (s != KDC_OK)
            fail_msg("kdc_model_find_layer(%s) -> %s: %s", names[i], kdc_status_string(s),
                     kdc_last_error());
    }
    return v;
}

typedef struct fixture {
    kdc__st_file *f;
    const char *scheme;
    int n, h, w, classes;
    kdc_model *m;
    float *input;
    size_t in_count;
} fixture;

static void fixture_open(fixture *fx, const char *model, double *t_load)
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
    const char *wpath = tk_weights_file(fx->scheme, seed, fx->classes, "", 0);
    double t0 = tk_now();
    CHECK_OK(kdc_model_load(wpath, NULL, &fx->m));
    if (t_load)
        *t_load = tk_now() - t0;
    assert_string_equal(kdc_model_arch(fx->m), tk_meta(fx->f, "arch"));
    assert_int_equal(kdc_model_num_classes(fx->m), fx->classes);
    fx->in_count = (size_t)fx->n * 3 * (size_t)fx->h * (size_t)fx->w;
    fx->input = malloc(fx->in_count * sizeof *fx->input);
    assert_non_null(fx->input);
    kdc_test_fill(fx->input, fx->in_count, "input", in_seed, in_c, in_a);
}

static void fixture_close(fixture *fx)
{
    free(fx->input);
    kdc_model_destroy(fx->m);
    kdc__st_close(fx->f);
}

static void check_classes(const kdc_run *run, const char *model, const char *what,
                          const int *want, int n, errstat *es)
{
    int got[16];
    assert_true(n <= 16);
    CHECK_OK(kdc_run_target_classes(run, got, n));
    for (int b = 0; b < n; b++)
        if (got[b] != want[b]) {
            printf("  FAIL %s %s: image %d target class %d, expected %d\n", model, what, b,
                   got[b], want[b]);
            es->failures++;
        }
}

/* ------------------------------------------------------------------ */
/* The gradient test                                                   */

static void grad_fixture(void **state)
{
    const char *model = *state;
    fixture fx;
    double t_load = 0;
    fixture_open(&fx, model, &t_load);
    const kdc__st_file *f = fx.f;
    const int n = fx.n, h = fx.h, w = fx.w;
    errstat es[4];
    memset(es, 0, sizeof es);

    static char names[MAX_LIST][96];
    kdc_run *run = NULL;
    kdc_run_options ropt = {1};
    CHECK_OK(kdc_run_create(fx.m, &ropt, &run));
    double t0 = tk_now();
    CHECK_OK(kdc_run_forward_grad(run, fx.input, n, h, w, NULL, 0, 0));
    double t_fwd = tk_now() - t0;

    /* 1. top-1 logit, every listed layer */
    int nl = tk_split(tk_meta(f, "logit_layers"), ',', names, MAX_LIST);
    int *idx = layer_indices(fx.m, names, nl);
    kdc_target tg;
    memset(&tg, 0, sizeof tg);
    tg.kind = KDC_TARGET_LOGIT;
    t0 = tk_now();
    CHECK_OK(kdc_run_backward(run, &tg, idx, nl, 0));
    double t_bwd = tk_now() - t0;
    for (int i = 0; i < nl; i++)
        compare_grad(f, model, fx.m, run, "logit", names[i], n, h, w, &es[0]);
    int64_t top1_64[16];
    int top1[16];
    const kdc__st_tensor *tt = tk_need(f, "%s", "top1");
    assert_true(tt->numel == (size_t)n && n <= 16);
    CHECK_OK(kdc__st_to_i64(tt, top1_64));
    for (int b = 0; b < n; b++)
        top1[b] = (int)top1_64[b];
    check_classes(run, model, "logit", top1, n, &es[0]);

    /* the same gradient at the second-last stage, kept for the partial run */
    char cam_layers[2][96];
    assert_int_equal(tk_split(tk_meta(f, "cam_layers"), ',', cam_layers, 2), 2);
    int l3;
    CHECK_OK(kdc_model_find_layer(fx.m, cam_layers[0], &l3));
    int l3chw[3];
    CHECK_OK(kdc_model_layer_shape(fx.m, l3, h, w, l3chw));
    size_t l3cnt = (size_t)n * l3chw[0] * l3chw[1] * l3chw[2];
    float *g3_full = malloc(l3cnt * sizeof *g3_full);
    float *g3_part = malloc(l3cnt * sizeof *g3_part);
    assert_non_null(g3_full);
    assert_non_null(g3_part);
    CHECK_OK(kdc_run_read_grad(run, l3, g3_full, l3cnt));
    free(idx);

    /* 2. softmax probability of explicit classes (the generator leaves the
     * list empty, and says why in prob_skipped, when the case is
     * ill-conditioned for float32: resnet152's logits reach +-250) */
    nl = tk_split(tk_meta(f, "prob_layers"), ',', names, MAX_LIST);
    if (nl == 0)
        printf("  %-17s probability target not checked: %s\n", model, tk_meta(f, "prob_skipped"));
    idx = layer_indices(fx.m, names, nl);
    int64_t pc64[16];
    int pclasses[16];
    const kdc__st_tensor *tp = tk_need(f, "%s", "prob_classes");
    assert_true(tp->numel == (size_t)n);
    CHECK_OK(kdc__st_to_i64(tp, pc64));
    for (int b = 0; b < n; b++)
        pclasses[b] = (int)pc64[b];
    tg.kind = KDC_TARGET_PROB;
    tg.classes = pclasses;
    CHECK_OK(kdc_run_backward(run, &tg, idx, nl, 0)); /* runs (classes) even when nl == 0 */
    for (int i = 0; i < nl; i++)
        compare_grad(f, model, fx.m, run, "prob", names[i], n, h, w, &es[1]);
    check_classes(run, model, "prob", pclasses, n, &es[1]);
    free(idx);

    /* 3. guided backpropagation, top-1 logit, input gradient */
    int in_idx;
    CHECK_OK(kdc_model_find_layer(fx.m, "input", &in_idx));
    assert_int_equal(in_idx, 0);
    tg.kind = KDC_TARGET_LOGIT;
    tg.classes = NULL;
    CHECK_OK(kdc_run_backward(run, &tg, &in_idx, 1, 1));
    compare_grad(f, model, fx.m, run, "guided", "input", n, h, w, &es[2]);
    check_classes(run, model, "guided", top1, n, &es[2]);

    /* 4. seed at the second-last stage */
    int sl, schw[3];
    CHECK_OK(kdc_model_find_layer(fx.m, tk_meta(f, "seed_layer"), &sl));
    CHECK_OK(kdc_model_layer_shape(fx.m, sl, h, w, schw));
    size_t scnt = (size_t)n * schw[0] * schw[1] * schw[2];
    float *seed = malloc(scnt * sizeof *seed);
    assert_non_null(seed);
    kdc_test_fill(seed, scnt, tk_meta(f, "seed_name"), strtoull(tk_meta(f, "seed_seed"), NULL, 10),
                  strtod(tk_meta(f, "seed_c"), NULL), strtod(tk_meta(f, "seed_a"), NULL));
    nl = tk_split(tk_meta(f, "seed_grad_layers"), ',', names, MAX_LIST);
    idx = layer_indices(fx.m, names, nl);
    memset(&tg, 0, sizeof tg);
    tg.kind = KDC_TARGET_SEED;
    tg.layer = sl;
    tg.seed = seed;
    CHECK_OK(kdc_run_backward(run, &tg, idx, nl, 0));
    for (int i = 0; i < nl; i++)
        compare_grad(f, model, fx.m, run, "seed", names[i], n, h, w, &es[3]);
    int minus1[16];
    for (int b = 0; b < n; b++)
        minus1[b] = -1;
    check_classes(run, model, "seed", minus1, n, &es[3]);
    free(idx);
    free(seed);

    /* partial backward: forward_grad down to the second-last stage only */
    t0 = tk_now();
    CHECK_OK(kdc_run_forward_grad(run, fx.input, n, h, w, NULL, 0, l3));
    memset(&tg, 0, sizeof tg);
    tg.kind = KDC_TARGET_LOGIT;
    CHECK_OK(kdc_run_backward(run, &tg, &l3, 1, 0));
    double t_part = tk_now() - t0;
    CHECK_OK(kdc_run_read_grad(run, l3, g3_part, l3cnt));
    int partial_ok = memcmp(g3_full, g3_part, l3cnt * sizeof *g3_full) == 0;
    if (!partial_ok)
        printf("  FAIL %s: gradient at %s with down_to = %s differs from the full backward "
               "(rel L2 %.3e)\n",
               model, cam_layers[0], cam_layers[0], kdc_test_rel_l2(g3_part, g3_full, l3cnt));
    /* the input is below down_to now */
    CHECK_STATUS(kdc_run_backward(run, &tg, &in_idx, 1, 0), KDC_ERR_STATE);

    printf("  %-17s load %.2fs forward_grad %.2fs backward %.2fs partial %.2fs | worst rel: "
           "logit %.2e (%s) prob %.2e (%s) guided %.2e seed %.2e (%s) | partial bitwise %s | "
           "PyTorch f32 vs f64: logit %s prob %s guided %s seed %s\n",
           model, t_load, t_fwd, t_bwd, t_part, es[0].worst, es[0].worst_name, es[1].worst,
           es[1].worst_name, es[2].worst, es[3].worst, es[3].worst_name,
           partial_ok ? "yes" : "NO", tk_meta(f, "f32_vs_f64_logit_grad_worst_rel_l2"),
           tk_meta(f, "f32_vs_f64_prob_grad_worst_rel_l2"),
           tk_meta(f, "f32_vs_f64_guided_input_rel_l2"),
           tk_meta(f, "f32_vs_f64_seed_grad_worst_rel_l2"));
    fflush(stdout);

    free(g3_full);
    free(g3_part);
    kdc_run_destroy(run);
    fixture_close(&fx);
    assert_true(partial_ok);
    assert_int_equal(es[0].failures + es[1].failures + es[2].failures + es[3].failures, 0);
}

/* ------------------------------------------------------------------ */
/* Error cases                                                         */

static void errors_on(const char *model)
{
    fixture fx;
    fixture_open(&fx, model, NULL);
    const int n = fx.n, h = fx.h, w = fx.w;
    kdc_run *run = NULL;
    CHECK_OK(kdc_run_create(fx.m, NULL, &run));
    kdc_target tg;
    memset(&tg, 0, sizeof tg);
    tg.kind = KDC_TARGET_LOGIT;
    int in_idx = 0, last_stage, second;
    char cam_layers[2][96];
    assert_int_equal(tk_split(tk_meta(fx.f, "cam_layers"), ',', cam_layers, 2), 2);
    CHECK_OK(kdc_model_find_layer(fx.m, cam_layers[1], &last_stage));
    CHECK_OK(kdc_model_find_layer(fx.m, cam_layers[0], &second));

    /* backward before any forward_grad */
    CHECK_STATUS(kdc_run_backward(run, &tg, &in_idx, 1, 0), KDC_ERR_STATE);
    /* after a plain forward (nothing recorded) */
    CHECK_OK(kdc_run_forward(run, fx.input, n, h, w, NULL, 0));
    CHECK_STATUS(kdc_run_backward(run, &tg, &last_stage, 1, 0), KDC_ERR_STATE);

    /* a gradient layer below down_to */
    CHECK_OK(kdc_run_forward_grad(run, fx.input, n, h, w, NULL, 0, second));
    CHECK_STATUS(kdc_run_backward(run, &tg, &in_idx, 1, 0), KDC_ERR_STATE);
    int both[2] = {last_stage, in_idx};
    CHECK_STATUS(kdc_run_backward(run, &tg, both, 2, 0), KDC_ERR_STATE);
    CHECK_OK(kdc_run_backward(run, &tg, &second, 1, 0)); /* at down_to itself: fine */

    /* classes out of range, for LOGIT and PROB; the message names the class */
    int bad[2][2] = {{fx.classes, 0}, {0, -1}};
    const char *bad_str[2];
    char s0[16];
    snprintf(s0, sizeof s0, "%d", fx.classes);
    bad_str[0] = s0;
    bad_str[1] = "-1";
    for (int kind = 0; kind < 2; kind++) {
        for (int i = 0; i < 2; i++) {
            int cls[16];
            for (int b = 0; b < n; b++)
                cls[b] = b < 2 ? bad[i][b] : 0;
            tg.kind = kind ? KDC_TARGET_PROB : KDC_TARGET_LOGIT;
            tg.classes = cls;
            CHECK_STATUS(kdc_run_backward(run, &tg, &last_stage, 1, 0),
                         KDC_ERR_INVALID_ARGUMENT);
            if (!strstr(kdc_last_error(), bad_str[i]))
                fail_msg("%s: class %s out of range: the message does not name it: \"%s\"",
                         model, bad_str[i], kdc_last_error());
        }
    }
    /* a valid class afterwards still works */
    int ok_cls[16] = {0};
    tg.kind = KDC_TARGET_LOGIT;
    tg.classes = ok_cls;
    CHECK_OK(kdc_run_backward(run, &tg, &last_stage, 1, 0));

    /* NaN in the input */
    float *nan_in = malloc(fx.in_count * sizeof *nan_in);
    assert_non_null(nan_in);
    memcpy(nan_in, fx.input, fx.in_count * sizeof *nan_in);
    nan_in[fx.in_count / 2 + 7] = NAN;
    CHECK_STATUS(kdc_run_forward_grad(run, nan_in, n, h, w, NULL, 0, 0),
                 KDC_ERR_INVALID_ARGUMENT);
    nan_in[fx.in_count / 2 + 7] = INFINITY;
    CHECK_STATUS(kdc_run_forward_grad(run, nan_in, n, h, w, NULL, 0, 0),
                 KDC_ERR_INVALID_ARGUMENT);
    free(nan_in);

    printf("  %-17s error cases: backward before forward_grad, below down_to, classes %d and "
           "-1, NaN/Inf input: ok\n",
           model, fx.classes);
    kdc_run_destroy(run);
    fixture_close(&fx);
}

static void grad_errors(void **state)
{
    (void)state;
    errors_on("mobilenetv1");      /* 10 classes */
    errors_on("mobilenetv1_timm"); /* 1000 classes */
}

/* The backward of a logit target through the last, fully connected layer
 * takes row c of its weight instead of the GEMM over the one-hot seed
 * (lib/run/backward.c): the same bits as the seed itself given as a
 * KDC_TARGET_SEED (which goes through the GEMM), zeros of the row
 * included (the GEMM's chain from +0 turns a -0 weight into +0). A batch
 * of two images with their own classes, weights of MobileNetV1 with two
 * zeros of each sign set in the classes' rows of fc.weight. */
static void onehot_fc(void **state)
{
    (void)state;
    const char *src = tk_weights_file("mobilenetv1", 31, 10, "", 0);
    assert_non_null(src);
    FILE *fp = fopen(src, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    const long size = ftell(fp);
    rewind(fp);
    unsigned char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    buf[size] = 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    const char *key = strstr((const char *)buf + 8, "\"fc.weight\"");
    assert_non_null(key);
    const char *off = strstr(key, "data_offsets");
    assert_non_null(off);
    unsigned long a = 0;
    assert_int_equal(sscanf(off, "data_offsets\":[%lu", &a), 1);
    float *fw = (float *)(buf + 8 + hlen + a); /* (10, 1024), F32 */
    const int classes[2] = {3, 7}, K = 1024;
    const float zeros[4] = {-0.0f, 0.0f, -0.0f, 0.0f};
    for (int i = 0; i < 4; i++) {
        float z = zeros[i];
        memcpy(&fw[(size_t)classes[i / 2] * K + 5 * i + 1], &z, sizeof z);
    }
    const char *path = tk_tmp_path("onehot_fc.safetensors");
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, (size_t)size, fp), (size_t)size);
    assert_int_equal(fclose(fp), 0);
    free(buf);

    kdc_model *m;
    kdc_run *r;
    CHECK_OK(kdc_model_load(path, NULL, &m));
    kdc_run_options ro = {.threads = 2};
    CHECK_OK(kdc_run_create(m, &ro, &r));
    const int n = 2, h = 64, w = 64, last = kdc_model_num_layers(m) - 1;
    const size_t nx = (size_t)n * 3 * h * w;
    float *x = malloc(nx * sizeof *x);
    assert_non_null(x);
    kdc_test_fill(x, nx, "input", 5, 0.0, 2.0);
    int layers[2] = {last - 1, 0}; /* fc's input, the network's input */
    const size_t cnt[2] = {(size_t)n * K, nx};
    float *g[2][2];
    for (int t = 0; t < 2; t++) {
        CHECK_OK(kdc_run_forward_grad(r, x, n, h, w, NULL, 0, 0));
        kdc_target tg = {0};
        float seed[20] = {0};
        if (t == 0) {
            tg.kind = KDC_TARGET_LOGIT;
            tg.classes = classes;
        } else {
            for (int b = 0; b < n; b++)
                seed[b * 10 + classes[b]] = 1.0f;
            tg.kind = KDC_TARGET_SEED;
            tg.layer = last;
            tg.seed = seed;
        }
        CHECK_OK(kdc_run_backward(r, &tg, layers, 2, 0));
        for (int l = 0; l < 2; l++) {
            g[t][l] = malloc(cnt[l] * sizeof *g[t][l]);
            assert_non_null(g[t][l]);
            CHECK_OK(kdc_run_read_grad(r, layers[l], g[t][l], cnt[l]));
        }
    }
    for (int l = 0; l < 2; l++)
        if (memcmp(g[0][l], g[1][l], cnt[l] * sizeof *g[0][l]))
            fail_msg("onehot fc: the logit target's gradient at layer %d differs from the "
                     "one-hot seed's", layers[l]);
    /* the zeros of the rows: +0 both */
    for (int i = 0; i < 4; i++) {
        const float v = g[0][0][(size_t)(i / 2) * K + 5 * i + 1];
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        assert_int_equal(bits, 0);
    }
    printf("  onehot fc: logit target = one-hot seed through the GEMM, to the bit (fc input and "
           "input gradients, zero weights of both signs)\n");
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++)
            free(g[t][l]);
    free(x);
    kdc_run_destroy(r);
    kdc_model_destroy(m);
}

int main(void)
{
    enum { NMODELS = sizeof MODELS / sizeof MODELS[0] };
    struct CMUnitTest tests[NMODELS + 2];
    for (int i = 0; i < NMODELS; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(grad_fixture, (void *)MODELS[i]);
        t.name = MODELS[i];
        tests[i] = t;
    }
    struct CMUnitTest te = cmocka_unit_test(grad_errors);
    tests[NMODELS] = te;
    struct CMUnitTest to = cmocka_unit_test(onehot_fc);
    tests[NMODELS + 1] = to;
    return cmocka_run_group_tests_name("grad", tests, group_setup, group_teardown);
}
