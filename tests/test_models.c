/* test_models.c - whole-model tests against the PyTorch fixtures.
 *
 * Each fixture in tests/fixtures/models/ (written by tools/gen_fixtures.py)
 * holds the float64 PyTorch outputs of a model's recorded layers for a
 * seeded input and seeded weights. Weights and input are not stored: the
 * test regenerates them with tests/util/weightgen.c (bit-identical to
 * tools/kdcgen.py, checked first on a few stored weight tensors), writes the
 * weights as safetensors into a temporary directory, loads the model through
 * the public API and compares every recorded layer:
 *   - shape (run and kdc_model_layer_shape) equal to PyTorch's;
 *   - relative L2 error of the stored sample (or the whole tensor when it is
 *     small) <= 1e-4;
 *   - relative error of the whole tensor's L2 norm <= 1e-4, and its sum
 *     within 1e-4 * sqrt(n * sumsq);
 *   - logits relative L2 <= 1e-4 and the same top-1 class for every image.
 * The float32-vs-float64 error of PyTorch itself is about 1e-6 (recorded in
 * each fixture's metadata), so 1e-4 leaves a wide margin for a float32
 * implementation with another summation order.
 *
 * Run from the repository root. Prints the worst errors per fixture. */
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
#include "util/weightgen.h"

#define FIXTURE_DIR "tests/fixtures/models/"
#define TOL 1e-4

#define CHECK_OK(expr)                                                                     \
    do {                                                                                   \
        kdc_status s_ = (expr);                                                            \
        if (s_ != KDC_OK)                                                                  \
            fail_msg("%s -> %s: %s", #expr, kdc_status_string(s_), kdc_last_error());     \
    } while (0)

typedef struct fx_case {
    const char *name;   /* fixture file without directory and extension */
    const char *prefix; /* prefix of the tensor names in the weights file */
    const char *arch;   /* explicit architecture, or NULL to autodetect */
    int thread_check;   /* also run with 2 threads, logits must be bitwise equal */
} fx_case;

static const fx_case CASES[] = {
    {"resnet50_n1_224", "module.", NULL, 0},
    {"resnet50_n2_161x229", "", "resnet50", 1},
    {"resnet101_n1_224", "", NULL, 0},
    {"resnet101_n2_161x229", "", NULL, 0},
    {"resnet152_n1_224", "", NULL, 0},
    {"resnet152_n2_161x229", "", NULL, 0},
    {"mobilenetv1_n1_224", "", NULL, 0},
    {"mobilenetv1_n2_161x229", "", NULL, 0},
    {"mobilenetv1_timm_n1_224", "", NULL, 0},
    {"mobilenetv1_timm_n2_161x229", "", NULL, 0},
};

/* ------------------------------------------------------------------ */
/* Temporary weights files                                             */

static char g_tmpdir[64];
/* One generated weights file is kept at a time (cases of one model are
 * adjacent), so at most one ResNet152 (240 MB) sits in /tmp. */
static struct {
    char key[128];
    char path[256];
} g_cache;

static void drop_cached(void)
{
    if (g_cache.path[0])
        remove(g_cache.path);
    g_cache.path[0] = '\0';
    g_cache.key[0] = '\0';
}

static const char *weights_file(const char *scheme, uint64_t seed, int classes,
                                const char *prefix, int f16)
{
    char key[128];
    snprintf(key, sizeof key, "%s_%llu_%d_%s_%s", scheme, (unsigned long long)seed, classes,
             prefix[0] ? "prefixed" : "plain", f16 ? "f16" : "f32");
    if (strcmp(key, g_cache.key) == 0)
        return g_cache.path;
    drop_cached();
    snprintf(g_cache.path, sizeof g_cache.path, "%s/%s.safetensors", g_tmpdir, key);
    if (kdc_test_write_weights(g_cache.path, scheme, seed, classes, prefix, f16) != 0) {
        g_cache.path[0] = '\0';
        fail_msg("cannot write generated weights %s/%s.safetensors", g_tmpdir, key);
    }
    snprintf(g_cache.key, sizeof g_cache.key, "%s", key);
    return g_cache.path;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/kdcam_test_models_XXXXXX");
    if (!mkdtemp(g_tmpdir)) {
        fprintf(stderr, "test_models: mkdtemp failed\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    drop_cached();
    if (g_tmpdir[0])
        rmdir(g_tmpdir);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Fixture access                                                      */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static kdc__st_file *open_fixture(const char *name)
{
    char path[256];
    kdc__st_file *f = NULL;
    snprintf(path, sizeof path, FIXTURE_DIR "%s.safetensors", name);
    CHECK_OK(kdc__st_open(path, &f));
    return f;
}

static const char *meta(const kdc__st_file *f, const char *key)
{
    const char *v = kdc__st_metadata(f, key);
    if (!v)
        fail_msg("fixture metadata has no %s", key);
    return v;
}

static long meta_long(const kdc__st_file *f, const char *key)
{
    return strtol(meta(f, key), NULL, 10);
}

static const kdc__st_tensor *need(const kdc__st_file *f, const char *fmt, const char *name)
{
    char key[256];
    snprintf(key, sizeof key, fmt, name);
    const kdc__st_tensor *t = kdc__st_find(f, key);
    if (!t)
        fail_msg("fixture has no tensor %s", key);
    return t;
}

/* A float tensor of the fixture as a malloc'd float array. */
static float *read_f32(const kdc__st_tensor *t)
{
    float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
    assert_non_null(v);
    CHECK_OK(kdc__st_to_f32(t, v));
    return v;
}

/* A scalar (F64 read exactly, anything else through float). */
static double read_scalar(const kdc__st_tensor *t)
{
    assert_int_equal(t->numel, 1);
    if (t->dtype == KDC__ST_F64) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = (u << 8) | t->data[i];
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    float v;
    CHECK_OK(kdc__st_to_f32(t, &v));
    return v;
}

/* Checks that the C generator reproduces the stored generated weights bit
 * for bit (keys "weights:NAME/val"). Returns the number checked. */
static int check_generator(const kdc__st_file *f, const char *scheme, uint64_t seed, int classes)
{
    int checked = 0;
    for (int i = 0; i < kdc__st_count(f); i++) {
        const kdc__st_tensor *t = kdc__st_at(f, i);
        size_t len = strlen(t->name);
        if (strncmp(t->name, "weights:", 8) != 0 || len < 12 ||
            strcmp(t->name + len - 4, "/val") != 0)
            continue;
        char wname[128];
        snprintf(wname, sizeof wname, "%.*s", (int)(len - 12), t->name + 8);
        float *gen = NULL;
        size_t n = 0;
        if (kdc_test_gen_tensor(scheme, classes, wname, seed, &gen, &n) != 0)
            fail_msg("generator: scheme %s has no tensor %s", scheme, wname);
        float *ref = read_f32(t);
        size_t k = t->numel;
        size_t bad = 0;
        for (size_t j = 0; j < k; j++) {
            size_t idx = k == n ? j : kdc_test_sample_index(n, k, j);
            if (memcmp(&gen[idx], &ref[j], sizeof(float)) != 0)
                bad++;
        }
        if (bad)
            fail_msg("generator: %zu of %zu values of %s differ from tools/kdcgen.py", bad, k,
                     wname);
        free(ref);
        free(gen);
        checked++;
    }
    assert_true(checked > 0);
    return checked;
}

typedef struct layer_ref {
    char name[96];
    int index;
    int64_t shape[4];
} layer_ref;

/* The recorded layers of a fixture (names of the NAME/shape tensors, in
 * execution order). *count receives their number. */
static layer_ref *fixture_layers(const kdc__st_file *f, const kdc_model *m, int *count)
{
    int n = 0;
    layer_ref *v = calloc((size_t)kdc__st_count(f), sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < kdc__st_count(f); i++) {
        const kdc__st_tensor *t = kdc__st_at(f, i);
        size_t len = strlen(t->name);
        if (len < 7 || strcmp(t->name + len - 6, "/shape") != 0 ||
            strchr(t->name, ':') != NULL || strncmp(t->name, "f16w/", 5) == 0)
            continue;
        layer_ref *L = &v[n++];
        snprintf(L->name, sizeof L->name, "%.*s", (int)(len - 6), t->name);
        assert_int_equal(t->numel, 4);
        CHECK_OK(kdc__st_to_i64(t, L->shape));
        kdc_status s = kdc_model_find_layer(m, L->name, &L->index);
        if (s != KDC_OK)
            fail_msg("kdc_model_find_layer(%s) -> %s: %s", L->name, kdc_status_string(s),
                     kdc_last_error());
    }
    *count = n;
    return v;
}

/* ------------------------------------------------------------------ */
/* The model test                                                      */

static void run_fixture(void **state)
{
    const fx_case *c = *state;
    kdc__st_file *f = open_fixture(c->name);
    const char *scheme = meta(f, "scheme");
    const char *arch = meta(f, "arch");
    uint64_t seed = strtoull(meta(f, "seed"), NULL, 10);
    uint64_t in_seed = strtoull(meta(f, "input_seed"), NULL, 10);
    double in_c = strtod(meta(f, "input_c"), NULL), in_a = strtod(meta(f, "input_a"), NULL);
    int n = (int)meta_long(f, "n"), h = (int)meta_long(f, "h"), w = (int)meta_long(f, "w");
    int classes = (int)meta_long(f, "num_classes");

    check_generator(f, scheme, seed, classes);

    const char *wpath = weights_file(scheme, seed, classes, c->prefix, 0);
    kdc_model_options opt;
    kdc_model_options_init(&opt);
    opt.arch = c->arch;
    kdc_model *m = NULL;
    double t0 = now_s();
    CHECK_OK(kdc_model_load(wpath, &opt, &m));
    double t_load = now_s() - t0;
    assert_string_equal(kdc_model_arch(m), arch);
    assert_int_equal(kdc_model_num_classes(m), classes);

    int nl = 0;
    layer_ref *layers = fixture_layers(f, m, &nl);
    assert_true(nl > 0);
    int *keep = malloc((size_t)nl * sizeof *keep);
    assert_non_null(keep);
    for (int i = 0; i < nl; i++) {
        int chw[3];
        CHECK_OK(kdc_model_layer_shape(m, layers[i].index, h, w, chw));
        if (chw[0] != layers[i].shape[1] || chw[1] != layers[i].shape[2] ||
            chw[2] != layers[i].shape[3])
            fail_msg("%s: kdc_model_layer_shape(%s) = (%d,%d,%d), PyTorch (%lld,%lld,%lld)",
                     c->name, layers[i].name, chw[0], chw[1], chw[2],
                     (long long)layers[i].shape[1], (long long)layers[i].shape[2],
                     (long long)layers[i].shape[3]);
        keep[i] = layers[i].index;
    }

    size_t in_count = (size_t)n * 3 * (size_t)h * (size_t)w;
    float *input = malloc(in_count * sizeof *input);
    assert_non_null(input);
    kdc_test_fill(input, in_count, "input", in_seed, in_c, in_a);

    kdc_run *run = NULL;
    kdc_run_options ropt = {1};
    CHECK_OK(kdc_run_create(m, &ropt, &run));
    t0 = now_s();
    CHECK_OK(kdc_run_forward(run, input, n, h, w, keep, nl));
    double t_fwd = now_s() - t0;

    int failures = 0;
    double worst_sample = 0.0, worst_norm = 0.0;
    const char *worst_sample_name = "", *worst_norm_name = "";
    float *logits = NULL;
    size_t logits_n = 0;
    for (int i = 0; i < nl; i++) {
        const layer_ref *L = &layers[i];
        int nchw[4];
        CHECK_OK(kdc_run_layer_shape(run, L->index, nchw));
        for (int d = 0; d < 4; d++)
            if (nchw[d] != L->shape[d])
                fail_msg("%s: layer %s has shape [%d,%d,%d,%d], PyTorch [%lld,%lld,%lld,%lld]",
                         c->name, L->name, nchw[0], nchw[1], nchw[2], nchw[3],
                         (long long)L->shape[0], (long long)L->shape[1],
                         (long long)L->shape[2], (long long)L->shape[3]);
        size_t cnt = (size_t)nchw[0] * (size_t)nchw[1] * (size_t)nchw[2] * (size_t)nchw[3];
        float *got = malloc(cnt * sizeof *got);
        assert_non_null(got);
        CHECK_OK(kdc_run_read_layer(run, L->index, got, cnt));

        const kdc__st_tensor *tv = need(f, "%s/val", L->name);
        float *ref = read_f32(tv);
        size_t k = tv->numel;
        float *sample = malloc(k * sizeof *sample);
        assert_non_null(sample);
        for (size_t j = 0; j < k; j++)
            sample[j] = got[k == cnt ? j : kdc_test_sample_index(cnt, k, j)];
        double e_sample = kdc_test_rel_l2(sample, ref, k);

        double sum, sumsq;
        kdc_test_sums(got, cnt, &sum, &sumsq);
        double rsum = read_scalar(need(f, "%s/sum", L->name));
        double rsumsq = read_scalar(need(f, "%s/sumsq", L->name));
        double e_norm = rsumsq > 0 ? fabs(sqrt(sumsq) - sqrt(rsumsq)) / sqrt(rsumsq)
                                   : sqrt(sumsq);
        double e_sum = fabs(sum - rsum) / (sqrt((double)cnt * rsumsq) + 1e-300);

        if (!(e_sample <= TOL) || !(e_norm <= TOL) || !(e_sum <= TOL)) {
            printf("  FAIL %s %-28s sampled rel L2 %.3e  norm rel %.3e  sum rel %.3e\n",
                   c->name, L->name, e_sample, e_norm, e_sum);
            failures++;
        }
        if (!(e_sample <= worst_sample)) {
            worst_sample = e_sample;
            worst_sample_name = L->name;
        }
        if (!(e_norm <= worst_norm)) {
            worst_norm = e_norm;
            worst_norm_name = L->name;
        }
        if (strcmp(L->name, "fc") == 0) {
            logits = got;
            logits_n = cnt;
            got = NULL;
        }
        free(sample);
        free(ref);
        free(got);
    }

    /* logits and top-1 */
    if (!logits)
        fail_msg("%s: fixture records no fc layer", c->name);
    const kdc__st_tensor *tl = need(f, "%s", "logits");
    assert_int_equal(tl->numel, logits_n);
    assert_int_equal(logits_n, (size_t)n * (size_t)classes);
    float *rl = read_f32(tl);
    double e_logits = kdc_test_rel_l2(logits, rl, logits_n);
    const kdc__st_tensor *tt = need(f, "%s", "top1");
    int64_t top1[16];
    assert_true(tt->numel == (size_t)n && n <= 16);
    CHECK_OK(kdc__st_to_i64(tt, top1));
    for (int b = 0; b < n; b++) {
        int best = 0;
        for (int j = 1; j < classes; j++)
            if (logits[(size_t)b * classes + j] > logits[(size_t)b * classes + best])
                best = j;
        if (best != top1[b]) {
            printf("  FAIL %s image %d: top-1 %d, PyTorch %lld\n", c->name, b, best,
                   (long long)top1[b]);
            failures++;
        }
    }
    if (!(e_logits <= TOL)) {
        printf("  FAIL %s logits rel L2 %.3e\n", c->name, e_logits);
        failures++;
    }
    printf("  %-28s load %.2fs forward %.2fs  layers %d  worst sampled rel L2 %.2e (%s)  "
           "worst norm rel %.2e (%s)  logits rel L2 %.2e  (PyTorch f32 vs f64: logits %s, "
           "worst layer %s)\n",
           c->name, t_load, t_fwd, nl, worst_sample, worst_sample_name, worst_norm,
           worst_norm_name, e_logits, meta(f, "f32_vs_f64_logits_rel_l2"),
           meta(f, "f32_vs_f64_worst_layer_rel_l2"));
    fflush(stdout);

    if (c->thread_check) {
        kdc_run *run2 = NULL;
        kdc_run_options ropt2 = {2};
        int fc = -1;
        CHECK_OK(kdc_model_find_layer(m, "fc", &fc));
        CHECK_OK(kdc_run_create(m, &ropt2, &run2));
        CHECK_OK(kdc_run_forward(run2, input, n, h, w, &fc, 1));
        float *l2 = malloc(logits_n * sizeof *l2);
        assert_non_null(l2);
        CHECK_OK(kdc_run_read_layer(run2, fc, l2, logits_n));
        if (memcmp(l2, logits, logits_n * sizeof *l2) != 0) {
            printf("  FAIL %s: logits with 2 threads differ from 1 thread\n", c->name);
            failures++;
        } else {
            printf("  %-28s 2 threads: logits bitwise identical to 1 thread\n", c->name);
        }
        free(l2);
        kdc_run_destroy(run2);
    }

    free(rl);
    free(logits);
    kdc_run_destroy(run);
    free(input);
    free(keep);
    free(layers);
    kdc_model_destroy(m);
    kdc__st_close(f);
    assert_int_equal(failures, 0);
}

/* F16 weights: the KD MobileNetV1 fixture's weights written as F16 must load
 * and give the float64 reference of the float16-rounded weights. */
static void f16_weights(void **state)
{
    (void)state;
    kdc__st_file *f = open_fixture("mobilenetv1_n1_224");
    const char *scheme = meta(f, "scheme");
    uint64_t seed = strtoull(meta(f, "seed"), NULL, 10);
    uint64_t in_seed = strtoull(meta(f, "input_seed"), NULL, 10);
    double in_c = strtod(meta(f, "input_c"), NULL), in_a = strtod(meta(f, "input_a"), NULL);
    int n = (int)meta_long(f, "n"), h = (int)meta_long(f, "h"), w = (int)meta_long(f, "w");
    int classes = (int)meta_long(f, "num_classes");

    const char *wpath = weights_file(scheme, seed, classes, "", 1);
    kdc_model *m = NULL;
    CHECK_OK(kdc_model_load(wpath, NULL, &m));
    assert_string_equal(kdc_model_arch(m), "mobilenetv1");
    assert_int_equal(kdc_model_num_classes(m), classes);

    size_t in_count = (size_t)n * 3 * (size_t)h * (size_t)w;
    float *input = malloc(in_count * sizeof *input);
    assert_non_null(input);
    kdc_test_fill(input, in_count, "input", in_seed, in_c, in_a);
    kdc_run *run = NULL;
    CHECK_OK(kdc_run_create(m, NULL, &run));
    CHECK_OK(kdc_run_forward(run, input, n, h, w, NULL, 0));
    int fc = -1;
    CHECK_OK(kdc_model_find_layer(m, "fc", &fc));
    size_t cnt = (size_t)n * (size_t)classes;
    float *logits = malloc(cnt * sizeof *logits);
    assert_non_null(logits);
    CHECK_OK(kdc_run_read_layer(run, fc, logits, cnt));
    for (size_t i = 0; i < cnt; i++)
        assert_true(isfinite(logits[i]));
    const kdc__st_tensor *t = need(f, "%s", "f16w/logits");
    assert_int_equal(t->numel, cnt);
    float *ref = read_f32(t);
    double e = kdc_test_rel_l2(logits, ref, cnt);
    printf("  F16 weights (mobilenetv1_n1_224): logits rel L2 %.2e vs the f16-weights reference "
           "(f16 vs f32 weights in PyTorch: %s)\n",
           e, meta(f, "f16w_vs_f32w_logits_rel_l2"));
    assert_true(e <= TOL);
    free(ref);
    free(logits);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    kdc__st_close(f);
}

int main(void)
{
    enum { NCASES = sizeof CASES / sizeof CASES[0] };
    struct CMUnitTest tests[NCASES + 1];
    for (int i = 0; i < NCASES; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(run_fixture, (void *)&CASES[i]);
        t.name = CASES[i].name;
        tests[i] = t;
    }
    struct CMUnitTest t16 = cmocka_unit_test(f16_weights);
    tests[NCASES] = t16;
    return cmocka_run_group_tests_name("models", tests, group_setup, group_teardown);
}
