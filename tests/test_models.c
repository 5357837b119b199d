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
#include "util/testkit.h"
#include "util/weightgen.h"

#define FIXTURE_DIR "tests/fixtures/models/"
#define TOL 1e-4

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

static int group_setup(void **state)
{
    (void)state;
    return tk_tmpdir_create("test_models");
}

static int group_teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

/* ------------------------------------------------------------------ */
/* Fixture access                                                      */

static kdc__st_file *open_fixture(const char *name)
{
    char path[256];
    kdc__st_file *f = NULL;
    snprintf(path, sizeof path, FIXTURE_DIR "%s.safetensors", name);
    CHECK_OK(kdc__st_open(path, &f));
    return f;
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
    const char *scheme = tk_meta(f, "scheme");
    const char *arch = tk_meta(f, "arch");
    uint64_t seed = strtoull(tk_meta(f, "seed"), NULL, 10);
    uint64_t in_seed = strtoull(tk_meta(f, "input_seed"), NULL, 10);
    double in_c = strtod(tk_meta(f, "input_c"), NULL), in_a = strtod(tk_meta(f, "input_a"), NULL);
    int n = (int)tk_meta_long(f, "n"), h = (int)tk_meta_long(f, "h"), w = (int)tk_meta_long(f, "w");
    int classes = (int)tk_meta_long(f, "num_classes");

    tk_check_generator(f, scheme, seed, classes);

    const char *wpath = tk_weights_file(scheme, seed, classes, c->prefix, 0);
    kdc_model_options opt;
    kdc_model_options_init(&opt);
    opt.arch = c->arch;
    kdc_model *m = NULL;
    double t0 = tk_now();
    CHECK_OK(kdc_model_load(wpath, &opt, &m));
    double t_load = tk_now() - t0;
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
    t0 = tk_now();
    CHECK_OK(kdc_run_forward(run, input, n, h, w, keep, nl));
    double t_fwd = tk_now() - t0;

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

        const kdc__st_tensor *tv = tk_need(f, "%s/val", L->name);
        float *ref = tk_read_f32(tv);
        size_t k = tv->numel;
        float *sample = malloc(k * sizeof *sample);
        assert_non_null(sample);
        for (size_t j = 0; j < k; j++)
            sample[j] = got[k == cnt ? j : kdc_test_sample_index(cnt, k, j)];
        double e_sample = kdc_test_rel_l2(sample, ref, k);

        double sum, sumsq;
        kdc_test_sums(got, cnt, &sum, &sumsq);
        double rsum = tk_read_scalar(tk_need(f, "%s/sum", L->name));
        double rsumsq = tk_read_scalar(tk_need(f, "%s/sumsq", L->name));
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
    const kdc__st_tensor *tl = tk_need(f, "%s", "logits");
    assert_int_equal(tl->numel, logits_n);
    assert_int_equal(logits_n, (size_t)n * (size_t)classes);
    float *rl = tk_read_f32(tl);
    double e_logits = kdc_test_rel_l2(logits, rl, logits_n);
    const kdc__st_tensor *tt = tk_need(f, "%s", "top1");
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
           worst_norm_name, e_logits, tk_meta(f, "f32_vs_f64_logits_rel_l2"),
           tk_meta(f, "f32_vs_f64_worst_layer_rel_l2"));
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
    const char *scheme = tk_meta(f, "scheme");
    uint64_t seed = strtoull(tk_meta(f, "seed"), NULL, 10);
    uint64_t in_seed = strtoull(tk_meta(f, "input_seed"), NULL, 10);
    double in_c = strtod(tk_meta(f, "input_c"), NULL), in_a = strtod(tk_meta(f, "input_a"), NULL);
    int n = (int)tk_meta_long(f, "n"), h = (int)tk_meta_long(f, "h"), w = (int)tk_meta_long(f, "w");
    int classes = (int)tk_meta_long(f, "num_classes");

    const char *wpath = tk_weights_file(scheme, seed, classes, "", 1);
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
    const kdc__st_tensor *t = tk_need(f, "%s", "f16w/logits");
    assert_int_equal(t->numel, cnt);
    float *ref = tk_read_f32(t);
    double e = kdc_test_rel_l2(logits, ref, cnt);
    printf("  F16 weights (mobilenetv1_n1_224): logits rel L2 %.2e vs the f16-weights reference "
           "(f16 vs f32 weights in PyTorch: %s)\n",
           e, tk_meta(f, "f16w_vs_f32w_logits_rel_l2"));
    assert_true(e <= TOL);
    free(ref);
    free(logits);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    kdc__st_close(f);
}


/* ------------------------------------------------------------------ */
/* Metadata keys kdcam.classes and kdcam.preprocess                    */

/* Copies a safetensors file written by kdc_test_write_weights, with its
 * __metadata__ {"format":"pt"} replaced by meta (a JSON object). */
static void with_metadata(const char *src, const char *dst, const char *meta)
{
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | buf[i];
    char *hdr = calloc(hn + strlen(meta) + 16, 1);
    assert_non_null(hdr);
    memcpy(hdr, buf + 8, hn);
    const char *old = "\"__metadata__\":{\"format\":\"pt\"}";
    char *at = strstr(hdr, old);
    assert_non_null(at);
    char *out = calloc(hn + strlen(meta) + 64, 1);
    assert_non_null(out);
    size_t pre = (size_t)(at - hdr);
    memcpy(out, hdr, pre);
    size_t k = pre + (size_t)sprintf(out + pre, "\"__metadata__\":%s", meta);
    strcpy(out + k, at + strlen(old));
    size_t n = strlen(out);
    while (n % 8)
        out[n++] = ' ';
    f = fopen(dst, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8; i++)
        fputc((int)((n >> (8 * i)) & 0xff), f);
    fwrite(out, 1, n, f);
    fwrite(buf + 8 + hn, 1, (size_t)len - 8 - hn, f);
    fclose(f);
    free(out);
    free(hdr);
    free(buf);
}

static kdc_status load_with(const char *src, const char *dst, const char *meta, kdc_model **m)
{
    with_metadata(src, dst, meta);
    *m = NULL;
    return kdc_model_load(dst, NULL, m);
}

static void metadata_keys(void **state)
{
    (void)state;
    char dir[] = "/tmp/kdcam-meta-XXXXXX", src[64], src1k[64], dst[64];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/mb10.safetensors", dir);
    snprintf(src1k, sizeof src1k, "%s/mb1k.safetensors", dir);
    snprintf(dst, sizeof dst, "%s/meta.safetensors", dir);
    assert_int_equal(kdc_test_write_weights(src, "mobilenetv1", 7, 10, "", 0), 0);
    assert_int_equal(kdc_test_write_weights(src1k, "mobilenetv1", 7, 1000, "", 0), 0);
    kdc_model *m;
    kdc_preprocess pp;

    /* no metadata: ImageNet names for 1000 classes, none for 10 */
    assert_int_equal(kdc_model_load(src1k, NULL, &m), KDC_OK);
    assert_string_equal(kdc_model_class_name(m, 0), "tench");
    assert_null(kdc_model_class_name(m, 1000));
    kdc_model_destroy(m);
    assert_int_equal(kdc_model_load(src, NULL, &m), KDC_OK);
    assert_null(kdc_model_class_name(m, 0));
    kdc_model_preprocess(m, &pp);
    assert_int_equal(pp.resize_short, 256);
    kdc_model_destroy(m);

    /* names and preprocessing from the file */
    assert_int_equal(load_with(src, dst, "{\"format\":\"pt\",\"kdcam.classes\":\"circle,square,"
                               "c,d,e,f,g,h,i,j\",\"kdcam.preprocess\":\"resize=128 "
                               "crop=120x128 mean=0.5,0.25,0.125 std=0.5,1,2\"}", &m), KDC_OK);
    assert_string_equal(kdc_model_class_name(m, 0), "circle");
    assert_string_equal(kdc_model_class_name(m, 9), "j");
    assert_null(kdc_model_class_name(m, 10));
    assert_null(kdc_model_class_name(m, -1));
    kdc_model_preprocess(m, &pp);
    assert_int_equal(pp.resize_short, 128);
    assert_int_equal(pp.crop_h, 120);
    assert_int_equal(pp.crop_w, 128);
    assert_true(pp.mean[0] == 0.5f && pp.mean[1] == 0.25f && pp.mean[2] == 0.125f);
    assert_true(pp.std[0] == 0.5f && pp.std[1] == 1.0f && pp.std[2] == 2.0f);
    kdc_model_destroy(m);

    /* a field left out keeps the default */
    assert_int_equal(load_with(src, dst, "{\"kdcam.preprocess\":\"resize=300\"}", &m), KDC_OK);
    kdc_model_preprocess(m, &pp);
    assert_int_equal(pp.resize_short, 300);
    assert_int_equal(pp.crop_h, 224);
    assert_true(pp.mean[0] == 0.485f && pp.std[2] == 0.225f);
    kdc_model_destroy(m);

    /* malformed values fail the load and name the key */
    static const struct {
        const char *meta, *msg;
    } bad[] = {
        {"{\"kdcam.classes\":\"a,b,c,d,e,f,g,h,i\"}", "kdcam.classes names 9 classes, the model has 10"},
        {"{\"kdcam.classes\":\"a,b,,d,e,f,g,h,i,j\"}", "class 2 has an empty name"},
        {"{\"kdcam.preprocess\":\"resize=abc\"}", "kdcam.preprocess \"resize=abc\""},
        {"{\"kdcam.preprocess\":\"crop=128\"}", "kdcam.preprocess"},
        {"{\"kdcam.preprocess\":\"std=0,1,1\"}", "kdcam.preprocess"},
        {"{\"kdcam.preprocess\":\"mean=1,2\"}", "kdcam.preprocess"},
        {"{\"kdcam.preprocess\":\"size=128\"}", "kdcam.preprocess"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(load_with(src, dst, bad[i].meta, &m), KDC_ERR_FORMAT);
        assert_null(m);
        if (!strstr(kdc_last_error(), bad[i].msg) || !strstr(kdc_last_error(), dst))
            fail_msg("%s: error '%s' lacks '%s'", bad[i].meta, kdc_last_error(), bad[i].msg);
    }
    unlink(src);
    unlink(src1k);
    unlink(dst);
    rmdir(dir);
}

int main(void)
{
    enum { NCASES = sizeof CASES / sizeof CASES[0] };
    struct CMUnitTest tests[NCASES + 2];
    for (int i = 0; i < NCASES; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(run_fixture, (void *)&CASES[i]);
        t.name = CASES[i].name;
        tests[i] = t;
    }
    struct CMUnitTest t16 = cmocka_unit_test(f16_weights);
    tests[NCASES] = t16;
    struct CMUnitTest tmeta = cmocka_unit_test(metadata_keys);
    tests[NCASES + 1] = tmeta;
    return cmocka_run_group_tests_name("models", tests, group_setup, group_teardown);
}
