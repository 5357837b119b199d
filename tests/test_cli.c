/* test_cli.c - the kdcam tool end to end: `dump --input-npy` against the
 * PyTorch fixtures, `classify` and `layers` output, and every bad input the
 * core-engine issue lists, each giving a one-line error and a non-zero exit.
 *
 * The binary is $KDCAM (set by `make test`), else build/kdcam. */
#include <dirent.h>
#include <math.h>
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
#include "fixture.h"
#include "kdcam.h"
#include "safetensors.h"
#include "weightgen.h"

/* The shared runner (tests/util/cliexec.c), under this file's names. */
#define run cliexec_run
#define expect_error cliexec_expect_error
#define err_text cliexec_err
#define out_text cliexec_out
#define json_field cliexec_json_num
#define slurp cliexec_slurp
static char tmp[64];

static const char *path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmp, name);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    if (cliexec_setup())
        return -1;
    snprintf(tmp, sizeof tmp, "%s", cliexec_dir());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* dump --input-npy against the PyTorch fixtures                       */

static void dump_fixture(const char *fixture)
{
    char fpath[256], wpath[256], xpath[256], dir[256], layers[16384] = "";
    fx_file fx;
    snprintf(fpath, sizeof fpath, "tests/fixtures/models/%s.safetensors", fixture);
    if (fx_open(fpath, &fx))
        fail_msg("%s: %s", fpath, kdc_last_error());
    const char *scheme = fx_meta(&fx, "scheme");
    uint64_t seed = strtoull(fx_meta(&fx, "seed"), NULL, 10);
    int classes = atoi(fx_meta(&fx, "num_classes"));
    int n = atoi(fx_meta(&fx, "n")), h = atoi(fx_meta(&fx, "h")), w = atoi(fx_meta(&fx, "w"));
    assert_int_equal(kdc_test_write_weights(path_in_tmp(wpath, sizeof wpath, "w.safetensors"),
                                            scheme, seed, classes, "", 0), 0);
    size_t cnt = (size_t)n * 3 * h * w;
    float *x = malloc(cnt * sizeof *x);
    assert_non_null(x);
    kdc_test_fill(x, cnt, fx_meta(&fx, "input_name"), strtoull(fx_meta(&fx, "input_seed"), NULL, 10),
                  strtod(fx_meta(&fx, "input_c"), NULL), strtod(fx_meta(&fx, "input_a"), NULL));
    int64_t dims[4] = {n, 3, h, w};
    assert_int_equal(kdc_npy_save(path_in_tmp(xpath, sizeof xpath, "x.npy"), x, 4, dims), KDC_OK);
    free(x);
    for (int i = 0; i < fx.n_layers; i++) {
        strcat(layers, " --layer ");
        strcat(layers, fx.layers[i].name);
    }
    snprintf(dir, sizeof dir, "%s/dump-%s", tmp, fixture);
    int st = run("dump -w %s --input-npy %s -o %s --threads 2%s", wpath, xpath, dir, layers);
    if (st)
        fail_msg("%s: kdcam dump failed: %s", fixture, err_text);
    double worst = 0;
    for (int i = 0; i < fx.n_layers; i++) {
        const fx_layer *L = &fx.layers[i];
        char p[512];
        float *got;
        int nd;
        int64_t d[8];
        snprintf(p, sizeof p, "%s/%s.npy", dir, L->name);
        if (kdc_npy_load(p, &got, &nd, d))
            fail_msg("%s", kdc_last_error());
        /* fc is written as PyTorch returns it, N x K; the rest N x C x H x W */
        if (!strcmp(L->name, "fc")) {
            assert_int_equal(nd, 2);
            assert_true(d[0] == L->shape[0] && d[1] == L->shape[1]);
        } else {
            assert_int_equal(nd, 4);
            for (int k = 0; k < 4; k++)
                assert_true(d[k] == L->shape[k]);
        }
        double norm_err, e = fx_compare(L, got, &norm_err);
        if (!(e <= 1e-4) || !(norm_err <= 1e-4))
            fail_msg("%s %s: relative L2 %g, norm error %g", fixture, L->name, e, norm_err);
        worst = e > worst ? e : worst;
        kdc_free(got);
    }
    printf("  %s through the CLI: %d layers, worst relative L2 %.2e\n", fixture, fx.n_layers,
           worst);
    fx_close(&fx);
}

static void test_dump_resnet50(void **s) { (void)s; dump_fixture("resnet50_n2_161x229"); }
static void test_dump_resnet101(void **s) { (void)s; dump_fixture("resnet101_n1_224"); }
static void test_dump_resnet152(void **s) { (void)s; dump_fixture("resnet152_n1_224"); }
static void test_dump_mobilenet(void **s) { (void)s; dump_fixture("mobilenetv1_n2_161x229"); }
static void test_dump_mobilenet_timm(void **s) { (void)s; dump_fixture("mobilenetv1_timm_n1_224"); }

/* ------------------------------------------------------------------ */
/* classify, layers, help                                              */

static void test_classify_and_layers(void **state)
{
    (void)state;
    char wpath[256];
    path_in_tmp(wpath, sizeof wpath, "mb.safetensors");
    assert_int_equal(kdc_test_write_weights(wpath, "mobilenetv1", 1001, 10, "module.", 0), 0);
    /* images: two photos of different sizes preprocess to one 224x224 batch */
    assert_int_equal(run("classify -w %s --topk 3 --json examples/images/chelsea.png "
                         "examples/images/coffee.png", wpath), 0);
    assert_non_null(strstr(out_text, "\"input\":\"examples/images/chelsea.png\""));
    assert_non_null(strstr(out_text, "\"input\":\"examples/images/coffee.png\""));
    int lines = 0;
    for (const char *p = out_text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    /* a 10-class head has no ImageNet names */
    assert_non_null(strstr(out_text, "\"name\":null"));
    assert_int_equal(run("layers -w %s --size 161x229", wpath), 0);
    assert_non_null(strstr(out_text, "model.13 "));
    assert_non_null(strstr(out_text, "1024x6x8"));
    assert_non_null(strstr(out_text, "fc "));
    assert_int_equal(run("dump --help"), 0);
    assert_non_null(strstr(out_text, "--input-npy"));
    assert_int_equal(run("--help"), 0);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */

/* Copies a safetensors file, dropping `drop`, replacing `reshape`'s shape by
 * `shape` (zero data), and adding `extra` (a small F32 tensor). */
static void rewrite(const char *src, const char *dst, const char *drop, const char *reshape,
                    const int64_t shape[4], const char *extra)
{
    kdc__st_file *f;
    assert_int_equal(kdc__st_open(src, &f), KDC_OK);
    char *hdr = malloc(1 << 20);
    size_t at = 0, off = 0;
    assert_non_null(hdr);
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    at += (size_t)sprintf(hdr + at, "{");
    /* header first: compute offsets */
    for (int pass = 0; pass < 2; pass++) {
        off = 0;
        for (int i = 0; i <= kdc__st_count(f); i++) {
            const kdc__st_tensor *t = i < kdc__st_count(f) ? kdc__st_at(f, i) : NULL;
            const char *name = t ? t->name : extra;
            if (!name || (drop && !strcmp(name, drop)))
                continue;
            int ndim = t ? t->ndim : 1;
            int64_t dims[8] = {4};
            const char *dtype = t ? t->dtype_name : "F32";
            size_t bytes = t ? t->nbytes : 16;
            if (t) memcpy(dims, t->shape, sizeof t->shape[0] * (size_t)ndim);
            if (reshape && t && !strcmp(name, reshape)) {
                ndim = 4;
                memcpy(dims, shape, 4 * sizeof *dims);
                dtype = "F32";
                bytes = (size_t)(dims[0] * dims[1] * dims[2] * dims[3]) * 4;
            }
            if (pass == 0) {
                at += (size_t)sprintf(hdr + at, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                      at > 1 ? "," : "", name, dtype);
                for (int k = 0; k < ndim; k++)
                    at += (size_t)sprintf(hdr + at, "%s%lld", k ? "," : "", (long long)dims[k]);
                at += (size_t)sprintf(hdr + at, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
            } else {
                if (t && bytes == t->nbytes)
                    fwrite(t->data, 1, bytes, out);
                else
                    for (size_t b = 0; b < bytes; b++)
                        fputc(0, out);
            }
            off += bytes;
        }
        if (pass == 0) {
            at += (size_t)sprintf(hdr + at, "}");
            uint64_t len = at;
            fwrite(&len, 8, 1, out); /* little-endian host */
            fwrite(hdr, 1, at, out);
        }
    }
    fclose(out);
    free(hdr);
    kdc__st_close(f);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    char w50[256], wmb[256], bad[256], x[256], dir[300];
    path_in_tmp(w50, sizeof w50, "r50.safetensors");
    path_in_tmp(wmb, sizeof wmb, "mbv1.safetensors");
    path_in_tmp(bad, sizeof bad, "bad.safetensors");
    assert_int_equal(kdc_test_write_weights(w50, "resnet50", 50, 1000, "", 0), 0);
    assert_int_equal(kdc_test_write_weights(wmb, "mobilenetv1", 1001, 10, "", 0), 0);

    /* images: missing, truncated, corrupt, empty */
    expect_error(run("classify -w %s /nonexistent/cat.png", wmb), "/nonexistent/cat.png");
    expect_error(run("classify -w %s tests/fixtures/truncated.png", wmb), "truncated.png");
    expect_error(run("classify -w %s tests/fixtures/truncated.jpg", wmb), "truncated.jpg");
    expect_error(run("classify -w %s tests/fixtures/corrupt.png", wmb), "corrupt.png");
    expect_error(run("classify -w %s tests/fixtures/empty.png", wmb), "empty.png");

    /* weights: missing file, not safetensors, another architecture */
    expect_error(run("layers -w %s/none.safetensors", tmp), "none.safetensors");
    FILE *f = fopen(bad, "wb");
    fputs("abc", f);
    fclose(f);
    expect_error(run("layers -w %s", bad), "too short");
    f = fopen(bad, "wb");
    uint64_t big = 200000000ull;
    fwrite(&big, 8, 1, f);
    fclose(f);
    expect_error(run("layers -w %s", bad), "exceeds the limit");
    expect_error(run("layers -m mobilenetv1 -w %s", w50), "not mobilenetv1");
    expect_error(run("layers -m resnet101 -w %s", w50), "not resnet101");
    expect_error(run("layers -m resnet18 -w %s", w50), "unknown architecture");

    /* a missing tensor, a wrong shape, an unknown extra tensor */
    rewrite(wmb, bad, "model.5.4.running_var", NULL, NULL, NULL);
    expect_error(run("layers -w %s", bad), "missing tensor model.5.4.running_var");
    int64_t shape[4] = {128, 127, 1, 1};
    rewrite(wmb, bad, NULL, "model.3.3.weight", shape, NULL);
    expect_error(run("layers -w %s", bad), "model.3.3.weight has shape [128,127,1,1], expected "
                                          "[128,128,1,1]");
    rewrite(wmb, bad, NULL, NULL, NULL, "model.15.weight");
    expect_error(run("layers -w %s", bad), "unexpected tensor model.15.weight");
    assert_int_equal(run("layers --allow-unused -w %s", bad), 0);

    /* an unknown layer name */
    path_in_tmp(x, sizeof x, "x.npy");
    float *in = calloc(2 * 3 * 40 * 48, sizeof *in);
    int64_t d[4] = {2, 3, 40, 48};
    assert_int_equal(kdc_npy_save(x, in, 4, d), KDC_OK);
    snprintf(dir, sizeof dir, "%s/out", tmp);
    expect_error(run("dump -w %s --layer layer9.1 --input-npy %s -o %s", w50, x, dir),
                 "no layer 'layer9.1'");

    /* an input too small for the network */
    int64_t ds[4] = {1, 3, 16, 48};
    assert_int_equal(kdc_npy_save(x, in, 4, ds), KDC_OK);
    expect_error(run("dump -w %s --layer layer4 --input-npy %s -o %s", w50, x, dir),
                 "too small");
    /* NaN in the input */
    in[5] = NAN;
    assert_int_equal(kdc_npy_save(x, in, 4, d), KDC_OK);
    expect_error(run("classify -w %s --input-npy %s", wmb, x), "NaN");
    in[5] = 0;
    /* not N x 3 x H x W */
    int64_t d3[3] = {3, 40, 48};
    assert_int_equal(kdc_npy_save(x, in, 3, d3), KDC_OK);
    expect_error(run("classify -w %s --input-npy %s", wmb, x), "N x 3 x H x W");
    assert_int_equal(kdc_npy_save(x, in, 4, d), KDC_OK);

    /* an unwritable output directory: below a regular file */
    char blocked[300];
    snprintf(blocked, sizeof blocked, "%s/out/sub", bad);
    expect_error(run("dump -w %s --layer layer4 --input-npy %s -o %s", w50, x, blocked),
                 "cannot create output directory");
    struct stat sb;
    assert_true(stat(blocked, &sb) != 0);

    /* usage errors exit 2 */
    assert_int_equal(run("dump -w %s --input-npy %s", w50, x), 2);
    assert_non_null(strstr(err_text, "--layer"));
    assert_int_equal(run("classify -w %s --frobnicate %s", w50, x), 2);
    assert_non_null(strstr(err_text, "unknown option '--frobnicate'"));
    assert_int_equal(run("frobnicate"), 2);
    assert_int_equal(run("classify examples/images/chelsea.png"), 2);
    assert_non_null(strstr(err_text, "missing -w"));
    free(in);
}

/* Figures a and b have the same size, differ, and hold the same pixel rows
 * in another order (compared as sorted row hashes). */
static uint64_t row_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void assert_rows_permuted(const char *a, const char *b)
{
    kdc_image *ia, *ib;
    assert_int_equal(kdc_image_load(a, &ia), KDC_OK);
    assert_int_equal(kdc_image_load(b, &ib), KDC_OK);
    assert_int_equal(ia->width, ib->width);
    assert_int_equal(ia->height, ib->height);
    const size_t stride = (size_t)ia->width * 3, n = (size_t)ia->height;
    assert_true(memcmp(ia->rgb, ib->rgb, stride * n) != 0);
    uint64_t *ha = malloc(n * sizeof *ha), *hb = malloc(n * sizeof *hb);
    assert_true(ha && hb);
    for (size_t y = 0; y < n; y++) {
        ha[y] = row_hash(ia->rgb + y * stride, stride);
        hb[y] = row_hash(ib->rgb + y * stride, stride);
    }
    qsort(ha, n, sizeof *ha, cmp_u64);
    qsort(hb, n, sizeof *hb, cmp_u64);
    assert_memory_equal(ha, hb, n * sizeof *ha);
    free(ha);
    free(hb);
    kdc_image_destroy(ia);
    kdc_image_destroy(ib);
}

/* ------------------------------------------------------------------ */
/* cam, compare, dump --grad                                           */

static float *load_npy(const char *dir, const char *name, int *ndim, int64_t *dims)
{
    char p[512];
    float *d;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (kdc_npy_load(p, &d, ndim, dims))
        fail_msg("%s", kdc_last_error());
    return d;
}

/* The CLI's maps equal the library's on the same preprocessed input. */
static void test_cam_cli(void **state)
{
    (void)state;
    char wmb[256], dir[300], x[300];
    path_in_tmp(wmb, sizeof wmb, "cam-mb.safetensors");
    snprintf(dir, sizeof dir, "%s/cam", tmp);
    assert_int_equal(kdc_test_write_weights(wmb, "mobilenetv1", 1001, 10, "", 0), 0);

    /* a 2-image --input-npy batch, so that the CLI and the library see the
     * same floats */
    const int n = 2, h = 96, w = 128;
    float *in = malloc((size_t)n * 3 * h * w * sizeof *in);
    assert_non_null(in);
    kdc_test_fill(in, (size_t)n * 3 * h * w, "input", 99, 0.0, 2.0);
    int64_t d4[4] = {n, 3, h, w};
    path_in_tmp(x, sizeof x, "batch.npy");
    assert_int_equal(kdc_npy_save(x, in, 4, d4), KDC_OK);
    assert_int_equal(run("cam -w %s --input-npy %s -o %s --npy --guided --method gradcam++",
                         wmb, x, dir), 0);
    int nd;
    int64_t d[8];
    float *map = load_npy(dir, "batch.gradcam++.npy", &nd, d);
    float *raw = load_npy(dir, "batch.gradcam++.raw.npy", &nd, d);
    assert_int_equal(nd, 3);
    assert_true(d[0] == n && d[1] == 3 && d[2] == 4);
    struct stat sb;
    char png[400];
    snprintf(png, sizeof png, "%s/batch_1.guided-gradcam.png", dir);
    assert_int_equal(stat(png, &sb), 0);

    kdc_model *m;
    kdc_run *r;
    kdc_cam_result *res;
    int layer;
    assert_int_equal(kdc_model_load(wmb, NULL, &m), KDC_OK);
    assert_int_equal(kdc_model_find_layer(m, "model.13", &layer), KDC_OK);
    assert_int_equal(kdc_run_create(m, NULL, &r), KDC_OK);
    kdc_cam_options co = {.method = KDC_CAM_GRADCAMPP, .layers = &layer, .nlayers = 1};
    assert_int_equal(kdc_cam_compute(r, in, n, h, w, &co, &res), KDC_OK);
    assert_memory_equal(map, res->map, (size_t)n * h * w * sizeof *map);
    assert_memory_equal(raw, res->raw[0], (size_t)n * 3 * 4 * sizeof *raw);
    kdc_free(map);
    kdc_free(raw);

    /* --score prob: the softmax probability as the target, as the library
     * computes it for KDC_TARGET_PROB (test_methods checks that against
     * torch's double backward); Shapley-CAM's Hessian term makes it differ
     * from the logit's map, so an ignored option fails */
    kdc_cam_result *rp;
    co = (kdc_cam_options){.method = KDC_CAM_SHAPLEYCAM, .layers = &layer, .nlayers = 1,
                           .target = {.kind = KDC_TARGET_PROB}};
    assert_int_equal(kdc_cam_compute(r, in, n, h, w, &co, &rp), KDC_OK);
    assert_int_equal(run("cam -w %s --input-npy %s -o %s --npy --method shapleycam --score prob",
                         wmb, x, dir), 0);
    raw = load_npy(dir, "batch.shapleycam.raw.npy", &nd, d);
    assert_true(nd == 3 && d[0] == n && d[1] == 3 && d[2] == 4);
    assert_memory_equal(raw, rp->raw[0], (size_t)n * 3 * 4 * sizeof *raw);
    assert_int_equal(run("cam -w %s --input-npy %s -o %s --npy --method shapleycam --score logit",
                         wmb, x, dir), 0);
    float *rawl = load_npy(dir, "batch.shapleycam.raw.npy", &nd, d);
    double diff = 0.0, norm = 0.0;
    for (int i = 0; i < n * 3 * 4; i++) {
        diff += ((double)rawl[i] - raw[i]) * ((double)rawl[i] - raw[i]);
        norm += (double)raw[i] * raw[i];
    }
    printf("  shapleycam --score prob vs logit: rel L2 difference %.3f\n", sqrt(diff / norm));
    assert_true(diff > 1e-6 * norm);
    kdc_free(raw);
    kdc_free(rawl);
    kdc_cam_result_destroy(rp);
    expect_error(run("cam -w %s --input-npy %s -o %s --score probability", wmb, x, dir),
                 "--score: 'probability' is neither logit nor prob");
    expect_error(run("cam -w %s --input-npy %s -o %s --method finercam --score prob", wmb, x,
                     dir), "--score prob does not apply to finercam");
    expect_error(run("cam -w %s --input-npy %s -o %s --method lrp --score prob", wmb, x, dir),
                 "--score prob does not apply to lrp");

    /* dump --grad: the input gradient and model.13's, as the library gives */
    assert_int_equal(run("dump -w %s --input-npy %s -o %s --grad --class 3 --layer input "
                         "--layer model.13", wmb, x, dir), 0);
    float *gin = load_npy(dir, "input.grad.npy", &nd, d);
    assert_true(nd == 4 && d[0] == n && d[1] == 3 && d[2] == h && d[3] == w);
    int layers[2] = {0, layer}, cls[2] = {3, 3};
    kdc_target tg = {.kind = KDC_TARGET_LOGIT, .classes = cls};
    float *g = malloc((size_t)n * 3 * h * w * sizeof *g);
    assert_non_null(g);
    assert_int_equal(kdc_run_forward_grad(r, in, n, h, w, NULL, 0, 0), KDC_OK);
    assert_int_equal(kdc_run_backward(r, &tg, layers, 2, 0), KDC_OK);
    assert_int_equal(kdc_run_read_grad(r, 0, g, (size_t)n * 3 * h * w), KDC_OK);
    assert_memory_equal(gin, g, (size_t)n * 3 * h * w * sizeof *g);
    kdc_free(gin);
    free(g);
    kdc_cam_result_destroy(res);
    kdc_run_destroy(r);
    kdc_model_destroy(m);

    /* every method name of the CLI runs (Score-CAM on 4 channels) */
    static const char *methods[] = {"gradcam", "hirescam", "xgradcam", "layercam", "eigencam",
                                    "eigengradcam", "scorecam", "ablationcam", "guided-gradcam",
                                    "saliency", "smoothgrad", "integrated-gradients"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        int st = run("cam -w %s --input-npy %s -o %s --npy --method %s --scorecam-topk 4", wmb, x,
                     dir, methods[i]);
        if (st)
            fail_msg("method %s: %s", methods[i], err_text);
    }
    /* bad input */
    expect_error(run("cam -w %s --input-npy %s -o %s --method gradcam+++", wmb, x, dir),
                 "unknown method 'gradcam+++'");
    expect_error(run("cam -w %s --input-npy %s -o %s --class 10", wmb, x, dir),
                 "out of range");
    expect_error(run("cam -w %s --input-npy %s -o %s --layer model.14", wmb, x, dir),
                 "no spatial extent");
    expect_error(run("cam -w %s --input-npy %s -o %s --layer model.99", wmb, x, dir),
                 "no layer 'model.99'");
    in[7] = NAN;
    assert_int_equal(kdc_npy_save(x, in, 4, d4), KDC_OK);
    expect_error(run("cam -w %s --input-npy %s -o %s", wmb, x, dir), "NaN");
    free(in);

    /* compare: a teacher and a student, JSON per image and model */
    char w50[256];
    path_in_tmp(w50, sizeof w50, "cmp-r50.safetensors");
    assert_int_equal(kdc_test_write_weights(w50, "resnet50", 50, 10, "", 0), 0);
    assert_int_equal(run("compare --model \"Teacher (ResNet50)=resnet50:%s\" --model S=%s "
                         "-o %s --json examples/images/chelsea.png", w50, wmb, dir), 0);
    assert_non_null(strstr(out_text, "\"model\":\"Teacher (ResNet50)\""));
    assert_non_null(strstr(out_text, "\"pearson_vs_teacher\":1.000000,\"iou20_vs_teacher\":1.000000"));
    assert_non_null(strstr(out_text, "\"model\":\"S\",\"arch\":\"mobilenetv1\",\"layer\":\"model.13\""));
    snprintf(png, sizeof png, "%s/chelsea.compare.png", dir);
    assert_int_equal(stat(png, &sb), 0);
    /* --teacher-last: the same figure with the two model rows swapped (the
     * header and colour bar stay), so every pixel row of one is a pixel row
     * of the other, and the figures differ */
    char dir2[300], png2[400];
    snprintf(dir2, sizeof dir2, "%s/teacher-last", tmp);
    assert_int_equal(run("compare --teacher-last --model \"Teacher (ResNet50)=resnet50:%s\" "
                         "--model S=%s -o %s examples/images/chelsea.png", w50, wmb, dir2), 0);
    snprintf(png2, sizeof png2, "%s/chelsea.compare.png", dir2);
    assert_rows_permuted(png, png2);
    expect_error(run("compare --model T=mobilenetv1:%s -o %s examples/images/chelsea.png", w50,
                     dir), "not mobilenetv1");
    assert_int_equal(run("compare --model nonsense -o %s examples/images/chelsea.png", dir), 2);
    assert_non_null(strstr(err_text, "NAME=[ARCH:]WEIGHTS"));
}


/* ------------------------------------------------------------------ */
/* pointing: the CLI's scores equal the library's on the same images    */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_pointing_cli(void **state)
{
    (void)state;
    char w50[256], wmb[256], w1k[256], dir[300], bad[300], lab[340];
    path_in_tmp(w50, sizeof w50, "pt-r50.safetensors");
    path_in_tmp(wmb, sizeof wmb, "pt-mb.safetensors");
    path_in_tmp(w1k, sizeof w1k, "pt-mb1k.safetensors");
    snprintf(dir, sizeof dir, "%s/shapes", tmp);
    snprintf(bad, sizeof bad, "%s/badshapes", tmp);
    assert_int_equal(kdc_test_write_weights(w50, "resnet50", 50, 10, "", 0), 0);
    assert_int_equal(kdc_test_write_weights(wmb, "mobilenetv1", 1001, 10, "", 0), 0);
    assert_int_equal(kdc_test_write_weights(w1k, "mobilenetv1", 1001, 1000, "", 0), 0);
    const int N = 5, S = 96;
    assert_int_equal(run("shapes -n %d --seed 11 --size %d -o %s", N, S, dir), 0);
    assert_int_equal(run("pointing --model T=%s --model S=mobilenetv1:%s --json --batch 2 -t 2 "
                         "%s", w50, wmb, dir), 0);
    char *second = strchr(out_text, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_non_null(strstr(out_text, "{\"name\":\"T\",\"arch\":\"resnet50\",\"layer\":\"layer4\""));
    assert_non_null(strstr(out_text, "\"pearson_vs_teacher\":null,\"iou20_vs_teacher\":null"));
    assert_non_null(strstr(second, "{\"name\":\"S\",\"arch\":\"mobilenetv1\""));
    assert_int_equal((int)json_field(out_text, "images"), N);

    /* the same scores from the library: render the same images, run the
     * same CAM at the same layers, score with the kdc_map_* functions */
    const char *paths[2] = {w50, wmb}, *lines[2] = {out_text, second};
    float *maps[2] = {NULL, NULL};
    int top1[2][5];
    int centre_in = 0, boxes[5][4];
    for (int mi = 0; mi < 2; mi++) {
        kdc_model *m;
        kdc_run *r;
        int layer;
        kdc_preprocess pp;
        assert_int_equal(kdc_model_load(paths[mi], NULL, &m), KDC_OK);
        assert_int_equal(kdc_model_find_layer(m, mi ? "model.13" : "layer4", &layer), KDC_OK);
        assert_int_equal(kdc_run_create(m, NULL, &r), KDC_OK);
        kdc_model_preprocess(m, &pp);
        pp.resize_short = pp.crop_h = pp.crop_w = 0;
        maps[mi] = malloc((size_t)N * S * S * sizeof(float));
        float *x = malloc((size_t)3 * S * S * sizeof *x);
        assert_true(maps[mi] && x);
        double acc = 0, hits = 0, energy = 0, pr = 0, iou = 0;
        for (int i = 0; i < N; i++) {
            kdc_image *im;
            kdc_shape_info info;
            assert_int_equal(kdc_shapes_render(11, (uint64_t)i, S, &im, &info, NULL), KDC_OK);
            assert_int_equal(kdc_preprocess_image(im, &pp, x, NULL), KDC_OK);
            kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &layer, .nlayers = 1};
            kdc_cam_result *res;
            assert_int_equal(kdc_cam_compute(r, x, 1, S, S, &co, &res), KDC_OK);
            float *mp = maps[mi] + (size_t)i * S * S;
            memcpy(mp, res->map, (size_t)S * S * sizeof *mp);
            acc += res->classes[0] == info.cls;
            top1[mi][i] = res->classes[0];
            if (!mi) {
                memcpy(boxes[i], info.box, sizeof boxes[i]);
                centre_in += info.box[0] <= S / 2 && S / 2 < info.box[2] &&
                             info.box[1] <= S / 2 && S / 2 < info.box[3];
            }
            hits += kdc_map_pointing(mp, S, S, info.box);
            energy += kdc_map_energy_in_box(mp, S, S, info.box);
            if (mi) {
                pr += kdc_map_pearson(mp, maps[0] + (size_t)i * S * S, (size_t)S * S);
                iou += kdc_map_iou_top(mp, maps[0] + (size_t)i * S * S, (size_t)S * S, 0.2);
            }
            kdc_cam_result_destroy(res);
            kdc_image_destroy(im);
        }
        assert_float_equal(json_field(lines[mi], "accuracy"), acc / N, 1e-6);
        assert_float_equal(json_field(lines[mi], "pointing"), hits / N, 1e-6);
        assert_float_equal(json_field(lines[mi], "energy_in_box"), energy / N, 1e-6);
        if (mi) {
            assert_float_equal(json_field(lines[mi], "pearson_vs_teacher"), pr / N, 1e-6);
            assert_float_equal(json_field(lines[mi], "iou20_vs_teacher"), iou / N, 1e-6);
            int agree = 0;
            for (int i = 0; i < N; i++)
                agree += top1[1][i] == top1[0][i];
            assert_float_equal(json_field(lines[mi], "agree_top1"), (double)agree / N, 1e-6);
        } else {
            assert_non_null(strstr(lines[mi], "\"agree_top1\":null"));
        }
        printf("  %s: accuracy %.3f pointing %.3f energy %.3f (CLI and library agree)\n",
               mi ? "S" : "T", acc / N, hits / N, energy / N);
        free(x);
        kdc_run_destroy(r);
        kdc_model_destroy(m);
    }
    free(maps[0]);
    free(maps[1]);

    /* the baselines: the centre pixel against the rendered boxes; the best
     * fixed point against a brute-force count over every pixel */
    {
        char *third = strchr(second, '\n');
        assert_non_null(third);
        third++;
        assert_non_null(strstr(third, "{\"baseline\":\"centre\",\"x\":48,\"y\":48,"));
        assert_float_equal(json_field(third, "pointing"), (double)centre_in / N, 1e-6);
        char *fourth = strchr(third, '\n');
        assert_non_null(fourth);
        fourth++;
        assert_non_null(strstr(fourth, "{\"baseline\":\"best_fixed_point\""));
        int best = -1, bx = -1, by = -1;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int c = 0;
                for (int i = 0; i < N; i++)
                    c += boxes[i][0] <= x && x < boxes[i][2] && boxes[i][1] <= y &&
                         y < boxes[i][3];
                if (c > best) {
                    best = c;
                    bx = x;
                    by = y;
                }
            }
        assert_int_equal((int)json_field(fourth, "x"), bx);
        assert_int_equal((int)json_field(fourth, "y"), by);
        assert_float_equal(json_field(fourth, "pointing"), (double)best / N, 1e-6);
    }

    /* --limit, the text table */
    assert_int_equal(run("pointing --model T=%s --limit 2 %s", wmb, dir), 0);
    assert_non_null(strstr(out_text, "2 images of"));
    assert_non_null(strstr(out_text, "(teacher)"));
    assert_non_null(strstr(out_text, "agree_top1"));
    assert_non_null(strstr(out_text, "centre (48, 48)"));
    assert_non_null(strstr(out_text, "best fixed point ("));
    /* these weights carry no kdcam.preprocess: ImageNet's 224x224, not 96x96 */
    if (!strstr(err_text, "note: T expects 224x224 images") || !strstr(err_text, "holds 96x96"))
        fail_msg("no size note on stderr: '%s'", err_text);

    /* bad input: one line naming the problem */
    expect_error(run("pointing --model T=%s %s/nowhere", wmb, tmp), "labels.json");
    expect_error(run("pointing --model T=%s %s", w1k, dir), "the model has 1000 classes, the dataset 10");
    expect_error(run("pointing --model T=%s", wmb), "no input given");
    expect_error(run("pointing --model T=%s %s %s", wmb, dir, dir), "one folder");
    expect_error(run("pointing %s", dir), "no --model");
    assert_int_equal(run("shapes -n 2 --seed 11 --size %d -o %s", S, bad), 0);
    snprintf(lab, sizeof lab, "%s/labels.json", bad);
    write_text(lab, "{\"classes\": [\"a\"], \"images\": [{\"file\": \"000000.png\", \"class\": 0, "
                    "\"box\": [1, 2, 3]");
    expect_error(run("pointing --model T=%s %s", wmb, bad), "not valid JSON");
    write_text(lab, "{\"classes\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"], "
                    "\"images\": [{\"file\": \"000000.png\", \"class\": 0, \"box\": [5, 2, 3, 9]}]}");
    expect_error(run("pointing --model T=%s %s", wmb, bad), "\"box\"");
    write_text(lab, "{\"classes\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"], "
                    "\"images\": [{\"file\": \"000000.png\", \"class\": 10, \"box\": [1, 2, 3, 9]}]}");
    expect_error(run("pointing --model T=%s %s", wmb, bad), "\"class\"");
    write_text(lab, "{\"classes\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"], "
                    "\"images\": [{\"file\": \"missing.png\", \"class\": 1, \"box\": [1, 2, 3, 9]}]}");
    expect_error(run("pointing --model T=%s %s", wmb, bad), "missing.png");
    /* escapes are decoded: \u0030 is '0', \/ is '/' (so that name is refused) */
    write_text(lab, "{\"classes\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"\\ud83d\\ude00\"], "
                    "\"images\": [{\"file\": \"00000\\u0030.png\", \"class\": 1, \"box\": [1, 2, 30, 29]}]}");
    assert_int_equal(run("pointing --model T=%s --json %s", wmb, bad), 0);
    assert_non_null(strstr(out_text, "\"images\":1,"));
    write_text(lab, "{\"classes\": [\"a\"], \"images\": [{\"file\": \"..\\/x.png\", \"class\": 0, "
                    "\"box\": [1, 2, 30, 29]}]}");
    expect_error(run("pointing --model T=%s %s", wmb, bad), "plain file name");
    /* the baselines on four boxes worked out by hand (96x96 images, centre
     * pixel (48, 48); inside: x0 <= x < x1, y0 <= y < y1):
     *   A [0, 0, 48, 48]    x 0..47,  y 0..47   centre: no (x = 48 = x1)
     *   B [24, 12, 72, 60]  x 24..71, y 12..59  centre: yes
     *   C [36, 24, 96, 96]  x 36..95, y 24..95  centre: yes
     *   D [60, 0, 96, 24]   x 60..95, y 0..23   centre: no
     * centre: 2 of 4 = 0.5. A, B and C share x 36..47, y 24..47 (3 boxes);
     * D meets B only (2) and C not at all (y); no pixel lies in all four
     * (A and D are apart). So the best is 3 of 4 = 0.75, first in row-major
     * order at (36, 24). */
    write_text(lab, "{\"classes\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"], "
                    "\"images\": [{\"file\": \"000000.png\", \"class\": 1, \"box\": [0, 0, 48, 48]},"
                    "{\"file\": \"000001.png\", \"class\": 1, \"box\": [24, 12, 72, 60]},"
                    "{\"file\": \"000000.png\", \"class\": 1, \"box\": [36, 24, 96, 96]},"
                    "{\"file\": \"000001.png\", \"class\": 1, \"box\": [60, 0, 96, 24]}]}");
    assert_int_equal(run("pointing --model T=%s --json %s", wmb, bad), 0);
    assert_non_null(strstr(out_text, "{\"baseline\":\"centre\",\"x\":48,\"y\":48,\"images\":4,"
                                     "\"pointing\":0.500000}\n"));
    assert_non_null(strstr(out_text, "{\"baseline\":\"best_fixed_point\",\"x\":36,\"y\":24,"
                                     "\"images\":4,\"pointing\":0.750000}\n"));
    write_text(lab, "{\"classes\": [\"a\"], \"classes\": [\"b\"]}");
    expect_error(run("pointing --model T=%s %s", wmb, bad), "duplicate key at byte");
}

/* ------------------------------------------------------------------ */
/* analyze and merge: shards, resume, inputs, refusals                   */

/* the whole of a file (fails the test if it cannot be read); free() it */
static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    if (la != lb || memcmp(x, y, la))
        fail_msg("%s and %s differ", a, b);
    free(x);
    free(y);
}

static void assert_same_outputs(const char *d1, const char *d2)
{
    static const char *files[] = {"rows.jsonl", "summary.json", "cka_s1_linear.npy",
                                  "cka_s1_rbf.npy", "cka_s1_linear_batches.npy",
                                  "cka_s1_rbf.png"};
    char a[400], b[400];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", d1, files[i]);
        snprintf(b, sizeof b, "%s/%s", d2, files[i]);
        assert_same_file(a, b);
    }
}

#define AN_MODELS "--model T=weights/demo/teacher-resnet101.safetensors " \
                  "--model S=weights/demo/mobilenetv1-dpk.safetensors"

/* 3 shards merged (in any order) give the single run's rows and summary to
 * the last bit; shards hold different batch counts (2, 1, 1) and the last
 * batch (2 images) is left out of CKA. */
static void test_analyze_shards(void **state)
{
    (void)state;
    char dir[300], one[300], sh[3][300], merged[300], p[400];
    snprintf(dir, sizeof dir, "%s/an-shapes", tmp);
    snprintf(one, sizeof one, "%s/an-one", tmp);
    snprintf(merged, sizeof merged, "%s/an-merged", tmp);
    assert_int_equal(run("shapes -n 16 --seed 5 --size 96 -o %s", dir), 0);
    assert_int_equal(run("analyze " AN_MODELS " --batch 4 --limit 14 -o %s %s", one, dir), 0);
    assert_non_null(strstr(out_text, "last-stage CKA vs T: linear"));
    assert_non_null(strstr(err_text, "14/14 images"));
    for (int i = 0; i < 3; i++) {
        snprintf(sh[i], sizeof sh[i], "%s/an-shard%d", tmp, i);
        assert_int_equal(run("analyze " AN_MODELS " --batch 4 --limit 14 --shard %d/3 -t 2 "
                             "-o %s %s", i, sh[i], dir), 0);
    }
    expect_error(run("merge -o %s %s %s", merged, sh[0], sh[2]), "shard 1/3 is missing");
    expect_error(run("merge -o %s %s %s %s %s", merged, sh[0], sh[1], sh[2], sh[1]),
                 "given twice");
    assert_int_equal(run("merge -o %s %s %s %s", merged, sh[2], sh[0], sh[1]), 0);
    assert_same_outputs(one, merged);
    snprintf(p, sizeof p, "%s/summary.json", one);
    char *sum = slurp(p, NULL);
    assert_non_null(strstr(sum, "\"images\":14,\"batches\":4,\"cka_batches\":3"));
    assert_non_null(strstr(sum, "\"sha256\":\""));
    assert_non_null(strstr(sum, "\"layers\":[\"layer1\",\"layer2\",\"layer3\",\"layer4\",\"fc\"]"));
    /* report.html: every picture it shows lies beside it (no network) */
    for (int d = 0; d < 2; d++) {
        const char *od = d ? merged : one;
        snprintf(p, sizeof p, "%s/report.html", od);
        char *html = slurp(p, NULL);
        assert_null(strstr(html, "http"));
        int imgs = 0;
        for (const char *q = strstr(html, "src=\""); q; q = strstr(q + 1, "src=\"")) {
            char name[200], file[600];
            const char *e = strchr(q + 5, '"');
            assert_non_null(e);
            snprintf(name, sizeof name, "%.*s", (int)(e - q - 5), q + 5);
            snprintf(file, sizeof file, "%s/%s", od, name);
            struct stat sb;
            if (stat(file, &sb))
                fail_msg("%s shows %s, which is missing", p, name);
            imgs++;
        }
        assert_int_equal(imgs, 2 + 6); /* heatmaps and 6 figures, merged or not */
        free(html);
    }
    /* the merged report is the single run's, figures included */
    snprintf(p, sizeof p, "%s/report.html", one);
    char q[400];
    snprintf(q, sizeof q, "%s/report.html", merged);
    assert_same_file(p, q);
    {
        DIR *dd = opendir(one);
        struct dirent *de;
        int grids = 0;
        assert_non_null(dd);
        while ((de = readdir(dd)))
            if (!strncmp(de->d_name, "disagree_", 9)) {
                snprintf(p, sizeof p, "%s/%.60s", one, de->d_name);
                snprintf(q, sizeof q, "%s/%.60s", merged, de->d_name);
                assert_same_file(p, q);
                grids++;
            }
        closedir(dd);
        assert_int_equal(grids, 6);
    }
    /* the command is kept without --shard, -o, -t: every shard's is the same */
    assert_null(strstr(sum, "--shard"));
    free(sum);
    /* a shard of another analysis (other batch) is refused */
    snprintf(p, sizeof p, "%s/an-other", tmp);
    assert_int_equal(run("analyze " AN_MODELS " --batch 5 --limit 14 --shard 1/3 -o %s %s", p,
                         dir), 0);
    expect_error(run("merge -o %s/an-m2 %s %s %s", tmp, sh[0], p, sh[2]), "different analyses");
    expect_error(run("merge -o %s %s %s %s", merged, sh[2], sh[0], sh[1]), "exists");
}

/* an interrupted run (its rows file cut inside a batch) resumed gives the
 * uninterrupted run's files */
static void test_analyze_resume(void **state)
{
    (void)state;
    char dir[300], one[300], part[300], a[400], b[400];
    snprintf(dir, sizeof dir, "%s/an-shapes", tmp);
    snprintf(one, sizeof one, "%s/an-one", tmp);
    snprintf(part, sizeof part, "%s/an-part", tmp);
    assert_int_equal(mkdir(part, 0755), 0);
    snprintf(a, sizeof a, "%s/rows.jsonl", one);
    snprintf(b, sizeof b, "%s/rows.jsonl", part);
    size_t len;
    char *rows = slurp(a, &len);
    /* cut 30 bytes into the first image row after the second batch row */
    char *cut = rows;
    for (int k = 0; k < 2; k++) {
        cut = strstr(cut, "{\"type\":\"batch\"");
        assert_non_null(cut);
        cut = strchr(cut, '\n') + 1;
    }
    FILE *f = fopen(b, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(rows, 1, (size_t)(cut - rows) + 30, f), (size_t)(cut - rows) + 30);
    fclose(f);
    free(rows);
    expect_error(run("analyze " AN_MODELS " --batch 4 --limit 14 -o %s %s", part, dir),
                 "use --resume");
    expect_error(run("analyze " AN_MODELS " --batch 8 --limit 14 --resume -o %s %s", part, dir),
                 "another analysis");
    assert_int_equal(run("analyze " AN_MODELS " --batch 4 --limit 14 --resume -o %s %s", part,
                         dir), 0);
    assert_non_null(strstr(err_text, "resuming"));
    assert_non_null(strstr(err_text, "at image 8"));
    assert_same_outputs(one, part);
    /* resuming a finished run computes nothing and changes nothing */
    assert_int_equal(run("analyze " AN_MODELS " --batch 4 --limit 14 --resume -o %s %s", part,
                         dir), 0);
    assert_same_outputs(one, part);
}

/* list files and ImageFolder trees; the refusals */
/* --road, the ICKD / AT distances (on by default) and --no-kd, with two
 * generated MobileNetV1s on 96x96 shapes images */
static void test_analyze_road_kd(void **state)
{
    (void)state;
    char dir[300], wt[300], ws[300], out[300], p[400];
    path_in_tmp(dir, sizeof dir, "an-rk-shapes");
    assert_int_equal(kdc_test_write_weights(path_in_tmp(wt, sizeof wt, "an-rk-t.safetensors"),
                                            "mobilenetv1", 31, 10, "", 0), 0);
    assert_int_equal(kdc_test_write_weights(path_in_tmp(ws, sizeof ws, "an-rk-s.safetensors"),
                                            "mobilenetv1", 32, 10, "", 0), 0);
    assert_int_equal(run("shapes -n 5 --seed 9 --size 96 -o %s", dir), 0);
    snprintf(out, sizeof out, "%s/an-rk", tmp);
    assert_int_equal(run("analyze --model T=%s --model S=%s --batch 4 --road --faith 4 -o %s %s",
                         wt, ws, out, dir), 0);
    snprintf(p, sizeof p, "%s/summary.json", out);
    char *sum = slurp(p, NULL);
    assert_non_null(strstr(sum, "\"road\":true,\"kd_distances\":true"));
    assert_non_null(strstr(sum, "\"insertion_substrate\":\"RISE blur 11 5\""));
    const char *q = sum;
    for (int i = 0; i < 2; i++) { /* teacher and student: 5 images each */
        q = strstr(q, "\"road_morf\":{\"mean\":");
        assert_non_null(q);
        assert_non_null(strstr(q, "\"road_combined\":{\"mean\":"));
        q++;
    }
    /* same architecture: each stage paired with its own, 5 images each */
    q = strstr(sum, "\"kd_distances\":[{\"teacher_layer\":\"model.1\",\"student_layer\":"
                    "\"model.1\",\"ickd\":{\"mean\":");
    assert_non_null(q);
    assert_non_null(strstr(q, "\"n\":5}"));
    free(sum);
    snprintf(p, sizeof p, "%s/report.html", out);
    sum = slurp(p, NULL);
    assert_non_null(strstr(sum, "ICKD Gram and attention-transfer distances"));
    free(sum);
    snprintf(out, sizeof out, "%s/an-rk-nokd", tmp);
    assert_int_equal(run("analyze --model T=%s --model S=%s --batch 4 --no-kd --limit 4 -o %s %s",
                         wt, ws, out, dir), 0);
    snprintf(p, sizeof p, "%s/rows.jsonl", out);
    sum = slurp(p, NULL);
    assert_null(strstr(sum, "ickd"));
    assert_null(strstr(sum, "road_morf"));
    free(sum);
}

static void test_analyze_inputs(void **state)
{
    (void)state;
    char dir[300], list[300], tree[300], out[300], p[700];
    snprintf(dir, sizeof dir, "%s/an-shapes", tmp);
    snprintf(list, sizeof list, "%s/an-list.txt", tmp);
    snprintf(tree, sizeof tree, "%s/an-tree", tmp);
    /* the list: images 0-5 of the shapes folder with their classes (from
     * labels.json), paths relative to the list's folder */
    FILE *f = fopen(list, "w");
    assert_non_null(f);
    fputs("# path class\n", f);
    assert_int_equal(mkdir(tree, 0755), 0);
    for (int i = 0; i < 6; i++) {
        char src[400], sub[500];
        snprintf(src, sizeof src, "%s/%06d.png", dir, i);
        fprintf(f, "an-shapes/%06d.png %d\n", i, i % 2);
        snprintf(sub, sizeof sub, "%s/c%d", tree, i % 2);
        mkdir(sub, 0755);
        snprintf(p, sizeof p, "%s/c%d/%06d.png", tree, i % 2, i);
        assert_int_equal(symlink(src, p), 0);
    }
    fclose(f);
    snprintf(out, sizeof out, "%s/an-listout", tmp);
    assert_int_equal(run("analyze " AN_MODELS " --batch 4 -o %s %s", out, list), 0);
    snprintf(p, sizeof p, "%s/summary.json", out);
    char *sum = slurp(p, NULL);
    assert_non_null(strstr(sum, "\"input_kind\":\"list\",\"images\":6"));
    assert_non_null(strstr(sum, "\"accuracy\":{\"mean\":"));
    assert_non_null(strstr(sum, "\"pointing\":null"));
    assert_non_null(strstr(sum, "\"deletion_auc\":null"));
    free(sum);
    /* faithfulness (--faith): every model gets AUCs, Average Drop and IC */
    snprintf(out, sizeof out, "%s/an-faith", tmp);
    assert_int_equal(run("analyze " AN_MODELS " --batch 4 --faith 5 -o %s %s", out, list), 0);
    snprintf(p, sizeof p, "%s/summary.json", out);
    sum = slurp(p, NULL);
    assert_non_null(strstr(sum, "\"faith_steps\":5"));
    const char *q = sum;
    for (int i = 0; i < 2; i++) {
        q = strstr(q, "\"deletion_auc\":{\"mean\":");
        assert_non_null(q);
        const double del = strtod(q + 23, NULL);
        q = strstr(q, "\"insertion_auc\":{\"mean\":");
        assert_non_null(q);
        const double ins = strtod(q + 24, NULL);
        assert_true(del >= 0 && del <= 1 && ins >= 0 && ins <= 1);
        q = strstr(q, "\"average_drop\":");
        assert_non_null(q);
        const double ad = strtod(q + 15, NULL);
        assert_true(ad >= 0 && ad <= 100);
    }
    free(sum);
    snprintf(out, sizeof out, "%s/an-treeout", tmp);
    assert_int_equal(run("analyze " AN_MODELS " --batch 4 -o %s %s", out, tree), 0);
    snprintf(p, sizeof p, "%s/rows.jsonl", out);
    sum = slurp(p, NULL);
    assert_non_null(strstr(sum, "\"input_kind\":\"imagefolder\",\"images\":6"));
    assert_non_null(strstr(sum, "\"file\":\"c1/000001.png\",\"label\":1"));
    free(sum);
    /* refusals: one line each */
    expect_error(run("analyze " AN_MODELS " --batch 3 -o %s/x %s", tmp, dir), "at least 4");
    expect_error(run("analyze " AN_MODELS " --shard 3/3 -o %s/x %s", tmp, dir), "0 <= I < N");
    expect_error(run("analyze --model T=weights/demo/teacher-resnet101.safetensors -o %s/x %s", tmp, dir),
                 "at least one student");
    write_text(list, "a.png 1\nb.png\n");
    expect_error(run("analyze " AN_MODELS " -o %s/x %s", tmp, list), "some lines have a class");
    snprintf(p, sizeof p, "%s/an-empty", tmp);
    assert_int_equal(mkdir(p, 0755), 0);
    expect_error(run("analyze " AN_MODELS " -o %s/x %s", tmp, p), "no class subfolders");
    expect_error(run("merge -o %s/x %s", tmp, p), "cannot read");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_classify_and_layers),
        cmocka_unit_test(test_cam_cli),
        cmocka_unit_test(test_pointing_cli),
        cmocka_unit_test(test_analyze_shards),
        cmocka_unit_test(test_analyze_resume),
        cmocka_unit_test(test_analyze_inputs),
        cmocka_unit_test(test_analyze_road_kd),
        cmocka_unit_test(test_dump_mobilenet),
        cmocka_unit_test(test_dump_mobilenet_timm),
        cmocka_unit_test(test_dump_resnet50),
        cmocka_unit_test(test_dump_resnet101),
        cmocka_unit_test(test_dump_resnet152),
    };
    return cmocka_run_group_tests_name("cli", tests, setup, teardown);
}
