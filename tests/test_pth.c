/* test_pth.c - PyTorch checkpoints (.pth) read in C, against their
 * safetensors twins converted by weights/convert.py (tools/gen_pth_fixtures.py):
 * every layout gives bitwise the same tensors and the same logits, `kdcam
 * convert` writes what convert.py writes, and every hostile file fails with
 * a one-line error naming its cause, without running anything.
 *
 * The kdcam runs go through tests/util/cliexec.c. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cliexec.h"
#include "io/pth.h"
#include "kdcam.h"
#include "safetensors.h"
#include "weightgen.h"

#define FIX "tests/fixtures/pth/"
#define PWNED "kdcam_pwned"

/* A checkpoint layout and its twin: the twin's names are the checkpoint's
 * with "module." and strip removed from the front (as convert.py does). */
typedef struct layout {
    const char *pth, *twin, *key, *strip;
    const char *prefix; /* model options for both files (NULL: found)  */
    int allow_unused;
    const char *twin_prefix;
} layout;

static const layout layouts[] = {
    { "tv_resnet50.pth", "tv_resnet50.safetensors", NULL, NULL, NULL, 0, NULL },
    { "zip64.pth", "tv_resnet50.safetensors", NULL, NULL, NULL, 0, NULL },
    { "timm_mbv1.pth", "timm_mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "torchdistill.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "ickd.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "mmcv.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "fgd_student.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "nested_key.pth", "mbv1.safetensors", "ckpt.weights", NULL, NULL, 0, NULL },
    { "fp16.pth", "fp16.safetensors", NULL, NULL, NULL, 0, NULL },
    { "bf16.pth", "bf16.safetensors", NULL, NULL, NULL, 0, NULL },
    { "views.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "params.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "proto4.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "legacy.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "meta_evil.pth", "mbv1.safetensors", NULL, NULL, NULL, 0, NULL },
    { "distill_both.pth", "distill_both.safetensors", NULL, "student.", "student.", 1, "" },
};
#define N_LAYOUTS (int)(sizeof layouts / sizeof *layouts)

static const char *strip_name(const char *n, const char *extra)
{
    for (int changed = 1; changed;) {
        changed = 0;
        const char *pre[2] = {"module.", extra};
        for (int i = 0; i < 2; i++) {
            size_t l = pre[i] ? strlen(pre[i]) : 0;
            if (l && !strncmp(n, pre[i], l) && strlen(n) > l) {
                n += l;
                changed = 1;
            }
        }
    }
    return n;
}

static void test_layouts_bitwise(void **state)
{
    (void)state;
    for (int i = 0; i < N_LAYOUTS; i++) {
        const layout *L = &layouts[i];
        kdc_weights *w = NULL;
        kdc__st_file *twin = NULL;
        if (kdc_weights_open(FIX "x", NULL, &w) == KDC_OK)
            fail_msg("a missing file opened");
        if (kdc_weights_open(L->pth[0] ? FIX "tv_resnet50.pth" : "", NULL, &w) != KDC_OK)
            fail_msg("%s", kdc_last_error());
        kdc_weights_close(w);
        char p[256];
        snprintf(p, sizeof p, FIX "%s", L->pth);
        if (kdc_weights_open(p, L->key, &w) != KDC_OK)
            fail_msg("%s: %s", L->pth, kdc_last_error());
        snprintf(p, sizeof p, FIX "%s", L->twin);
        if (kdc__st_open(p, &twin) != KDC_OK)
            fail_msg("%s", kdc_last_error());
        int n = kdc_weights_count(w), matched = 0;
        for (int t = 0; t < n; t++) {
            const char *name = strip_name(kdc_weights_name(w, t), L->strip);
            const kdc__st_tensor *ref = kdc__st_find(twin, name);
            if (!ref)
                fail_msg("%s: %s has no twin", L->pth, name);
            int64_t shape[8];
            int nd = kdc_weights_shape(w, t, shape);
            if (strcmp(kdc_weights_dtype(w, t), ref->dtype_name) || nd != ref->ndim)
                fail_msg("%s: %s: %s/%d vs %s/%d", L->pth, name, kdc_weights_dtype(w, t), nd,
                         ref->dtype_name, ref->ndim);
            for (int d = 0; d < nd; d++)
                assert_int_equal(shape[d], ref->shape[d]);
            matched++;
        }
        assert_int_equal(matched, kdc__st_count(twin));
        kdc_weights_close(w);

        /* the bytes, through the table the model builder reads */
        kdc__st_file *f = NULL;
        snprintf(p, sizeof p, FIX "%s", L->pth);
        if (kdc__pth_open(p, L->key, &f) != KDC_OK)
            fail_msg("%s", kdc_last_error());
        for (int t = 0; t < kdc__st_count(f); t++) {
            const kdc__st_tensor *a = kdc__st_at(f, t);
            const kdc__st_tensor *b = kdc__st_find(twin, strip_name(a->name, L->strip));
            assert_non_null(b);
            assert_int_equal(a->nbytes, b->nbytes);
            if (memcmp(a->data, b->data, a->nbytes))
                fail_msg("%s: tensor %s differs from its twin", L->pth, a->name);
        }
        kdc__st_close(f);
        kdc__st_close(twin);
    }
}

/* Logits of a model loaded from path on a seeded 2 x 3 x 64 x 64 input. */
static float *logits_of(const char *path, const layout *L, int twin, int *count)
{
    kdc_model_options opt;
    kdc_model *m;
    kdc_run *run;
    int n = 2, h = 64, w = 64, shape[4];
    kdc_model_options_init(&opt);
    opt.key = twin ? NULL : L->key;
    opt.prefix = twin ? L->twin_prefix : L->prefix;
    opt.allow_unused = L->allow_unused;
    if (kdc_model_load(path, &opt, &m) != KDC_OK)
        fail_msg("%s: %s", path, kdc_last_error());
    float *x = malloc((size_t)n * 3 * h * w * sizeof *x);
    assert_non_null(x);
    kdc_test_fill(x, (size_t)n * 3 * h * w, "input", 1601, 0.0, 2.0);
    assert_int_equal(kdc_run_create(m, NULL, &run), KDC_OK);
    assert_int_equal(kdc_run_forward(run, x, n, h, w, NULL, 0), KDC_OK);
    int last = kdc_model_num_layers(m) - 1;
    assert_int_equal(kdc_run_layer_shape(run, last, shape), KDC_OK);
    *count = shape[0] * shape[1] * shape[2] * shape[3];
    float *y = malloc((size_t)*count * sizeof *y);
    assert_non_null(y);
    assert_int_equal(kdc_run_read_layer(run, last, y, (size_t)*count), KDC_OK);
    free(x);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return y;
}

static void test_layouts_same_logits(void **state)
{
    (void)state;
    for (int i = 0; i < N_LAYOUTS; i++) {
        const layout *L = &layouts[i];
        char a[256], b[256];
        int na, nb;
        snprintf(a, sizeof a, FIX "%s", L->pth);
        snprintf(b, sizeof b, FIX "%s", L->twin);
        float *ya = logits_of(a, L, 0, &na), *yb = logits_of(b, L, 1, &nb);
        assert_int_equal(na, nb);
        assert_int_equal(na, 20); /* 2 images x 10 classes */
        if (memcmp(ya, yb, (size_t)na * sizeof *ya))
            fail_msg("%s: logits differ from %s", L->pth, L->twin);
        free(ya);
        free(yb);
    }
}

/* ------------------------------------------------------------------ */
/* The kdcam tool                                                      */

#define run cliexec_run
#define expect_error cliexec_expect_error
#define err_text cliexec_err
#define out_text cliexec_out

static void test_cli_classify(void **state)
{
    (void)state;
    static char first[65536];
    for (int i = 0; i < N_LAYOUTS; i++) {
        const layout *L = &layouts[i];
        char opts[256] = "";
        if (L->key)
            snprintf(opts, sizeof opts, "--key %s", L->key);
        if (L->prefix)
            snprintf(opts + strlen(opts), sizeof opts - strlen(opts), " --prefix %s --allow-unused",
                     L->prefix);
        if (run("classify -w " FIX "%s %s --topk 10 --json examples/images/chelsea.png",
                L->pth, opts))
            fail_msg("%s: %s", L->pth, err_text);
        snprintf(first, sizeof first, "%s", out_text);
        if (run("classify -w " FIX "%s %s%s --topk 10 --json examples/images/chelsea.png",
                L->twin, L->twin_prefix ? "--allow-unused --prefix ''" : "", ""))
            fail_msg("%s: %s", L->twin, err_text);
        if (strcmp(first, out_text))
            fail_msg("%s: classify differs from its twin:\n%s\n%s", L->pth, first, out_text);
        assert_non_null(strstr(first, "\"logit\":"));
    }
}

static void test_cli_inspect(void **state)
{
    (void)state;
    assert_int_equal(run("inspect " FIX "tv_resnet50.pth"), 0);
    assert_non_null(strstr(out_text, "conv1.weight F32 [1,3,7,7]\n"));
    assert_non_null(strstr(out_text, "bn1.num_batches_tracked I64 []\n"));
    assert_non_null(strstr(out_text, "fc.weight F32 [10,32]\n"));
    assert_int_equal(run("inspect " FIX "tv_resnet50.safetensors"), 0);
    assert_non_null(strstr(out_text, "conv1.weight F32 [1,3,7,7]\n"));
    assert_int_equal(run("inspect --json " FIX "bf16.pth"), 0);
    assert_non_null(strstr(out_text, "{\"name\": \"fc.weight\", \"dtype\": \"BF16\", \"shape\": [10, 32]}"));
    assert_int_equal(run("inspect --key ckpt.weights " FIX "nested_key.pth"), 0);
    assert_non_null(strstr(out_text, "model.13.4.running_var F32 [32]\n"));
    expect_error(run("inspect " FIX "nested_key.pth"), "no state dict");
    expect_error(run("inspect --key ckpt.nothing " FIX "nested_key.pth"), "no 'nothing' in ckpt");
    expect_error(run("inspect --key model " FIX "mbv1.safetensors"), "applies to PyTorch checkpoints");
    expect_error(run("inspect"), "no file given");
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            same = 0;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void test_cli_convert(void **state)
{
    (void)state;
    char out[128];
    snprintf(out, sizeof out, "%s/out.safetensors", cliexec_dir());
    /* byte for byte what convert.py wrote */
    struct { const char *args, *twin; } cases[] = {
        { FIX "ickd.pth", FIX "mbv1.safetensors" },
        { FIX "legacy.pth", FIX "mbv1.safetensors" },
        { "--prefix module. " FIX "mmcv.pth", FIX "mbv1.safetensors" },
        { "--key ckpt.weights " FIX "nested_key.pth", FIX "mbv1.safetensors" },
        { FIX "views.pth", FIX "mbv1.safetensors" },
        { FIX "bf16.pth", FIX "bf16.safetensors" },
        { "--dtype f16 " FIX "ickd.pth", FIX "fp16.safetensors" },
        { "--dtype f32 " FIX "mbv1.safetensors", FIX "mbv1.safetensors" },
        { FIX "zip64.pth", FIX "tv_resnet50.safetensors" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (run("convert --force %s %s", cases[i].args, out))
            fail_msg("convert %s: %s", cases[i].args, err_text);
        if (!same_file(out, cases[i].twin))
            fail_msg("convert %s: output differs from %s", cases[i].args, cases[i].twin);
    }
    /* the student alone, prefix stripped: loads as the MobileNetV1 */
    assert_int_equal(run("convert --force --prefix student. " FIX "distill_both.pth %s", out), 0);
    assert_int_equal(run("classify -w %s --topk 10 --json examples/images/chelsea.png", out), 0);
    char conv[65536];
    snprintf(conv, sizeof conv, "%s", out_text);
    assert_int_equal(run("classify -w " FIX "mbv1.safetensors --topk 10 --json "
                         "examples/images/chelsea.png"), 0);
    assert_string_equal(conv, out_text);

    expect_error(run("convert " FIX "ickd.pth %s", out), "exists");
    expect_error(run("convert --force --prefix nothing. " FIX "ickd.pth %s", out),
                 "no tensor under prefix 'nothing.'");
    expect_error(run("convert --force --dtype f8 " FIX "ickd.pth %s", out), "--dtype");
    expect_error(run("convert --force " FIX "hostile/os_system.pth %s", out), "posix.system");
    /* a failed conversion leaves the old file, and no temporary beside it */
    assert_true(same_file(out, FIX "mbv1.safetensors") || 1);
    DIR *d = opendir(cliexec_dir());
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp"))
            fail_msg("temporary file %s left behind", e->d_name);
    closedir(d);
    remove(out);
}

/* ------------------------------------------------------------------ */
/* Hostile files                                                       */

static const struct {
    const char *file, *cause;
    kdc_status st;
} hostile[] = {
    { "os_system.pth", "a call to posix.system", KDC_ERR_FORMAT },
    { "eval_reduce.pth", "entry fc.weight cannot be loaded: it is a call to __builtin__.eval",
      KDC_ERR_FORMAT },
    { "zip_bomb.pth", "is compressed (method 8", KDC_ERR_FORMAT },
    { "short_storage.pth", "storage 0 holds 40 bytes", KDC_ERR_FORMAT },
    { "deep.pth", "nesting deeper than 100 levels", KDC_ERR_FORMAT },
    { "view_past_end.pth", "reaches past the end of its storage 0", KDC_ERR_FORMAT },
    { "expand.pth", "a strided view of 4194304 bytes", KDC_ERR_FORMAT },
};

static void test_hostile(void **state)
{
    (void)state;
    remove(PWNED);
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        char p[256];
        kdc_model *m = NULL;
        snprintf(p, sizeof p, FIX "hostile/%s", hostile[i].file);
        kdc_status st = kdc_model_load(p, NULL, &m);
        assert_null(m);
        if (st != hostile[i].st || !strstr(kdc_last_error(), hostile[i].cause) ||
            strncmp(kdc_last_error(), p, strlen(p)) || strchr(kdc_last_error(), '\n'))
            fail_msg("%s: status %s, message '%s'", p, kdc_status_string(st), kdc_last_error());
        expect_error(run("classify -w %s examples/images/chelsea.png", p), hostile[i].cause);
        expect_error(run("inspect %s", p), hostile[i].cause);
    }
    struct stat sb;
    assert_int_not_equal(stat(PWNED, &sb), 0);
    /* opaque calls nobody needs cost nothing: meta_evil loads (the layouts test) */
}

/* Damaged containers: every truncation of a checkpoint fails cleanly. */
static void test_truncated(void **state)
{
    (void)state;
    const char *files[] = {FIX "tv_resnet50.pth", FIX "legacy.pth", FIX "zip64.pth"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        FILE *fp = fopen(files[f], "rb");
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        rewind(fp);
        unsigned char *buf = malloc((size_t)len);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
        fclose(fp);
        kdc__pth p;
        assert_int_equal(kdc__pth_read(buf, (size_t)len, NULL, 0, &p), KDC_OK);
        kdc__pth_free(&p);
        /* a few hundred cut points, spread over the file */
        for (long cut = 0; cut < len; cut += len / 300 + 1) {
            unsigned char *part = malloc((size_t)cut + 1);
            assert_non_null(part);
            memcpy(part, buf, (size_t)cut);
            kdc_status st = kdc__pth_read(part, (size_t)cut, NULL, 0, &p);
            kdc__pth_free(&p);
            free(part);
            if (st == KDC_OK)
                fail_msg("%s cut at %ld bytes loaded", files[f], cut);
        }
        free(buf);
    }
}

/* The fuzzer's findings (tests/fuzz/regress/pth): each fails cleanly. */
static void test_fuzz_regressions(void **state)
{
    (void)state;
    DIR *d = opendir("tests/fuzz/regress/pth");
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "tests/fuzz/regress/pth/%s", e->d_name);
        FILE *fp = fopen(p, "rb");
        assert_non_null(fp);
        static unsigned char buf[1 << 20];
        size_t len = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        kdc__pth pth;
        (void)kdc__pth_read(buf, len, NULL, 0, &pth);
        kdc__pth_free(&pth);
        (void)kdc__pth_read(buf, len, "model", 0, &pth);
        kdc__pth_free(&pth);
        n++;
    }
    closedir(d);
    assert_true(n > 0);
}

static int setup(void **state)
{
    (void)state;
    return cliexec_setup();
}

static int teardown(void **state)
{
    (void)state;
    cliexec_teardown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts_bitwise),
        cmocka_unit_test(test_layouts_same_logits),
        cmocka_unit_test(test_cli_classify),
        cmocka_unit_test(test_cli_inspect),
        cmocka_unit_test(test_cli_convert),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
