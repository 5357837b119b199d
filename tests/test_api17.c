/* test_api17.c - issue 17's library calls against independent references:
 *  - kdc_image_load_batch: torchvision's tensor (chelsea) and PIL's crop
 *    (coffee), the fixtures of tests/test_image.c;
 *  - kdc_cam_aggregate: the NumPy aggregation chain of tools/gen_cam_fixtures.py;
 *  - kdc_guided_gradcam: PyTorch float64 (tools/gen_issue17_fixtures.py);
 *  - kdc_softmax, kdc_topk: torch.softmax and NumPy's stable argsort;
 *  - kdc_shapes_labels_read: what Python's json module reads from the file;
 *  - kdc_cam_options.keep: the kept layer equals a plain forward's, and the
 *    error for a layer not kept names its alias;
 *  - kdc_overlay_ex: at alpha 0.5 it is kdc_overlay (OpenCV-checked), at 1
 *    OpenCV's JET table over its maximum; kdc_image_encode_png decodes back. */
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

#include "kdcam.h"
#include "safetensors.h"
#include "util/testkit.h"
#include "util/weightgen.h"

#define FIX "tests/fixtures/issue17/"

static float *get_f32(const kdc__st_file *f, const char *name, size_t *count)
{
    const kdc__st_tensor *t = tk_need(f, "%s", name);
    float *v = tk_read_f32(t);
    if (count)
        *count = t->numel;
    return v;
}

static int64_t *get_i64(const kdc__st_file *f, const char *name, size_t *count)
{
    const kdc__st_tensor *t = tk_need(f, "%s", name);
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

static kdc__st_file *open_fx(const char *path)
{
    kdc__st_file *f = NULL;
    CHECK_OK(kdc__st_open(path, &f));
    return f;
}

/* ---- batch loader ---------------------------------------------------- */

static void test_load_batch(void **state)
{
    (void)state;
    const char *paths[3] = {"examples/images/chelsea.png", "examples/images/coffee.png",
                            "examples/images/chelsea.png"};
    kdc_preprocess pp;
    kdc_preprocess_imagenet(&pp);
    float *x = NULL;
    int h = 0, w = 0, sizes[6];
    kdc_image *crops[3];
    CHECK_OK(kdc_image_load_batch(paths, 3, &pp, NULL, &x, &h, &w, crops, sizes));
    assert_int_equal(h, 224);
    assert_int_equal(w, 224);
    assert_int_equal(sizes[0], 451); /* chelsea is 451 x 300 */
    assert_int_equal(sizes[1], 300);
    /* slots 0 and 2: torchvision's normalised tensor (stored as f16: half an
     * f16 ulp, 2^-10, plus one PIL level / 255 / std as test_image allows) */
    float *ref = NULL;
    int ndim = 0;
    int64_t dims[8];
    CHECK_OK(kdc_npy_load("tests/fixtures/chelsea_norm224_f16.npy", &ref, &ndim, dims));
    const size_t img = (size_t)3 * 224 * 224;
    double e0 = 0, e2 = 0;
    for (size_t i = 0; i < img; i++) {
        e0 = fmax(e0, fabs((double)x[i] - ref[i]));
        e2 = fmax(e2, fabs((double)x[2 * img + i] - ref[i]));
    }
    printf("  batch slots 0, 2 vs torchvision: max %.3g, %.3g\n", e0, e2);
    const double tol = 1.0 / 1024 + 1.0 / 255.0 / 0.224;
    assert_true(e0 <= tol && e2 <= tol);
    /* slot 1: the crop is PIL's Resize(256)+CenterCrop(224) of coffee */
    kdc_image *pil = NULL;
    CHECK_OK(kdc_image_load("tests/fixtures/coffee_r256_c224.png", &pil));
    int worst = 0;
    for (size_t i = 0; i < (size_t)224 * 224 * 3; i++) {
        int d = abs((int)crops[1]->rgb[i] - (int)pil->rgb[i]);
        worst = d > worst ? d : worst;
    }
    printf("  batch slot 1 crop vs PIL: max %d levels\n", worst);
    assert_true(worst <= 1);
    kdc_image_destroy(pil);
    kdc_free(ref);
    kdc_free(x);
    for (int i = 0; i < 3; i++)
        kdc_image_destroy(crops[i]);

    /* a missing file: the error names it, nothing is returned */
    const char *bad[2] = {"examples/images/coffee.png", "no/such/image.png"};
    x = (float *)1;
    CHECK_STATUS(kdc_image_load_batch(bad, 2, &pp, NULL, &x, &h, &w, crops, NULL), KDC_ERR_IO);
    assert_null(x);
    assert_null(crops[0]);
    assert_non_null(strstr(kdc_last_error(), "no/such/image.png"));
    /* no crop: images of different sizes do not make one batch */
    kdc_preprocess nocrop = pp;
    nocrop.resize_short = 0;
    nocrop.crop_h = nocrop.crop_w = 0;
    CHECK_STATUS(kdc_image_load_batch(paths, 2, &nocrop, NULL, &x, &h, &w, NULL, NULL),
                 KDC_ERR_SHAPE);
    assert_non_null(strstr(kdc_last_error(), "coffee.png"));
    CHECK_STATUS(kdc_image_load_batch(paths, 0, &pp, NULL, &x, &h, &w, NULL, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
}

/* ---- aggregation ----------------------------------------------------- */

static void test_cam_aggregate(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx("tests/fixtures/cam/maps.safetensors");
    float *raw0 = get_f32(f, "chain/raw0", NULL), *raw1 = get_f32(f, "chain/raw1", NULL);
    size_t nm;
    float *ref = get_f32(f, "chain/map", &nm), *ref1 = get_f32(f, "chain/map1", NULL);
    float *map = malloc(nm * sizeof *map);
    assert_non_null(map);
    const float *raws[2] = {raw0, raw1};
    const int rh[2] = {5, 3}, rw[2] = {6, 4};
    double e2 = 0, e1 = 0;
    CHECK_OK(kdc_cam_aggregate(raws, rh, rw, 2, 2, 23, 31, map));
    for (size_t i = 0; i < nm; i++)
        e2 = fmax(e2, fabs((double)map[i] - ref[i]));
    CHECK_OK(kdc_cam_aggregate(raws, rh, rw, 1, 2, 23, 31, map));
    for (size_t i = 0; i < nm; i++)
        e1 = fmax(e1, fabs((double)map[i] - ref1[i]));
    printf("  kdc_cam_aggregate vs NumPy: 2 layers %.2e, 1 layer %.2e\n", e2, e1);
    assert_true(e2 <= 1e-5 && e1 <= 1e-5);
    CHECK_STATUS(kdc_cam_aggregate(raws, rh, rw, 0, 2, 23, 31, map), KDC_ERR_INVALID_ARGUMENT);
    free(raw0);
    free(raw1);
    free(ref);
    free(ref1);
    free(map);
    kdc__st_close(f);
}

/* ---- the KD MobileNetV1 of the CAM fixtures ---------------------------- */

typedef struct mctx {
    char dir[64], path[128];
    kdc_model *model;
    kdc_run *run;
    float *input;
    int n, h, w;
} mctx;
static mctx g;

static int setup_model(void **state)
{
    (void)state;
    strcpy(g.dir, "/tmp/kdc_test_api17_XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    snprintf(g.path, sizeof g.path, "%s/mbv1.safetensors", g.dir);
    if (kdc_test_write_weights(g.path, "mobilenetv1", 1001, 10, NULL, 0))
        return -1;
    kdc_model_options mo;
    kdc_model_options_init(&mo);
    mo.kernels = KDC_KERNELS_SCALAR; /* as test_cam: compared with float64 */
    if (kdc_model_load(g.path, &mo, &g.model) || kdc_run_create(g.model, NULL, &g.run))
        return -1;
    g.n = 2, g.h = 64, g.w = 80; /* gen_cam_fixtures.py's N, H, W, input seed 7101 */
    const size_t numel = (size_t)g.n * 3 * g.h * g.w;
    if (!(g.input = malloc(numel * sizeof *g.input)))
        return -1;
    kdc_test_fill(g.input, numel, "input", 7101, 0.0, 2.0);
    return 0;
}

static int teardown_model(void **state)
{
    (void)state;
    kdc_run_destroy(g.run);
    kdc_model_destroy(g.model);
    free(g.input);
    unlink(g.path);
    rmdir(g.dir);
    return 0;
}

static void test_guided_gradcam(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx(FIX "api.safetensors");
    size_t k;
    float *ref = get_f32(f, "guided/map", &k);
    int64_t *cls = get_i64(f, "guided/classes", NULL);
    int layer;
    CHECK_OK(kdc_model_find_layer(g.model, "model.11", &layer));
    kdc_cam_options co;
    memset(&co, 0, sizeof co);
    co.method = KDC_CAM_GRADCAM;
    co.layers = &layer;
    co.nlayers = 1;
    const size_t numel = (size_t)g.n * 3 * g.h * g.w;
    float *out = malloc(numel * sizeof *out);
    assert_non_null(out);
    kdc_cam_result *res = NULL;
    CHECK_OK(kdc_guided_gradcam(g.run, g.input, g.n, g.h, g.w, &co, out, &res));
    for (int b = 0; b < g.n; b++)
        assert_int_equal(res->classes[b], (int)cls[b]);
    double num = 0, den = 0;
    for (size_t j = 0; j < k; j++) {
        double d = out[kdc_test_sample_index(numel, k, j)] - (double)ref[j];
        num += d * d;
        den += (double)ref[j] * ref[j];
    }
    const double rel = sqrt(num / den);
    printf("  Guided Grad-CAM vs PyTorch float64: rel L2 %.2e (1024 samples)\n", rel);
    assert_true(den > 0);
    assert_true(rel <= 1e-4);
    kdc_cam_result_destroy(res);
    CHECK_STATUS(kdc_guided_gradcam(g.run, g.input, g.n, g.h, g.w, &co, NULL, NULL),
                 KDC_ERR_INVALID_ARGUMENT);
    free(out);
    free(ref);
    free(cls);
    kdc__st_close(f);
}

static void test_keep_layers(void **state)
{
    (void)state;
    int target, extra, stage;
    CHECK_OK(kdc_model_find_layer(g.model, "model.13", &target));
    CHECK_OK(kdc_model_find_layer(g.model, "model.5", &extra));
    CHECK_OK(kdc_model_find_layer(g.model, "model.11", &stage));
    int shape[4];
    /* the reference: a plain forward pass keeping model.5 */
    CHECK_OK(kdc_run_forward(g.run, g.input, g.n, g.h, g.w, &extra, 1));
    CHECK_OK(kdc_run_layer_shape(g.run, extra, shape));
    const size_t numel = (size_t)shape[0] * shape[1] * shape[2] * shape[3];
    float *want = malloc(numel * sizeof *want), *got = malloc(numel * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    CHECK_OK(kdc_run_read_layer(g.run, extra, want, numel));
    const kdc_cam_method methods[2] = {KDC_CAM_GRADCAM, KDC_CAM_ABLATIONCAM};
    for (int mi = 0; mi < 2; mi++) {
        kdc_cam_options co;
        memset(&co, 0, sizeof co);
        co.method = methods[mi];
        co.layers = &target;
        co.nlayers = 1;
        co.keep = &extra;
        co.nkeep = 1;
        kdc_cam_result *res = NULL;
        CHECK_OK(kdc_cam_compute(g.run, g.input, g.n, g.h, g.w, &co, &res));
        CHECK_OK(kdc_run_read_layer(g.run, extra, got, numel));
        assert_memory_equal(got, want, numel * sizeof *got);
        kdc_cam_result_destroy(res);
        /* a layer not kept: the error names it and its short name */
        CHECK_STATUS(kdc_run_read_layer(g.run, stage, got, numel), KDC_ERR_STATE);
        printf("  %s: %s\n", kdc_cam_method_name(methods[mi]), kdc_last_error());
        assert_non_null(strstr(kdc_last_error(), "model.11"));
    }
    kdc_cam_options co;
    memset(&co, 0, sizeof co);
    co.layers = &target;
    co.nlayers = 1;
    co.nkeep = 2; /* but keep is NULL */
    kdc_cam_result *res = NULL;
    CHECK_STATUS(kdc_cam_compute(g.run, g.input, g.n, g.h, g.w, &co, &res),
                 KDC_ERR_INVALID_ARGUMENT);
    assert_null(res);
    free(want);
    free(got);
}

/* ---- logits ------------------------------------------------------------ */

static void test_softmax_topk(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx(FIX "api.safetensors");
    size_t nz;
    float *z = get_f32(f, "logits", &nz);
    float *p1 = get_f32(f, "softmax/t1", NULL), *p25 = get_f32(f, "softmax/t2_5", NULL);
    int64_t *top = get_i64(f, "topk/k7", NULL);
    const int R = 5, K = 37;
    assert_int_equal((int)nz, R * K);
    float p[37];
    int idx[7];
    double worst = 0;
    for (int r = 0; r < R; r++) {
        CHECK_OK(kdc_softmax(z + r * K, K, 1.0, p));
        for (int c = 0; c < K; c++)
            worst = fmax(worst, fabs((double)p[c] - p1[r * K + c]) / fmax(p1[r * K + c], 1e-30));
        CHECK_OK(kdc_softmax(z + r * K, K, 2.5, p));
        for (int c = 0; c < K; c++)
            worst = fmax(worst, fabs((double)p[c] - p25[r * K + c]) / fmax(p25[r * K + c], 1e-30));
        CHECK_OK(kdc_topk(z + r * K, K, 7, idx));
        for (int j = 0; j < 7; j++)
            assert_int_equal(idx[j], (int)top[r * 7 + j]);
    }
    printf("  softmax vs torch float64: worst relative error %.2e\n", worst);
    assert_true(worst <= 2.0 * 1.2e-7); /* two float32 roundings */
    /* KL of two logit vectors is kdc_prediction_kl: softmax-consistent */
    double kl = -1;
    CHECK_OK(kdc_prediction_kl(z, z, K, 1.0, &kl));
    assert_true(fabs(kl) < 1e-12);
    CHECK_STATUS(kdc_softmax(z, K, 0.0, p), KDC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(kdc_topk(z, K, K + 1, idx), KDC_ERR_INVALID_ARGUMENT);
    float nan_row[3] = {1.0f, NAN, 2.0f};
    CHECK_STATUS(kdc_topk(nan_row, 3, 1, idx), KDC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(kdc_softmax(nan_row, 3, 1.0, p), KDC_ERR_INVALID_ARGUMENT);
    free(z);
    free(p1);
    free(p25);
    free(top);
    kdc__st_close(f);
}

/* ---- labels.json ------------------------------------------------------- */

static void test_shapes_labels(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx(FIX "labels/expect.safetensors");
    size_t nf, nn, nc;
    int64_t *files = get_i64(f, "files", &nf), *names = get_i64(f, "class_names", &nn);
    int64_t *classes = get_i64(f, "classes", &nc), *boxes = get_i64(f, "boxes", NULL);
    kdc_shapes_labels *l = NULL;
    CHECK_OK(kdc_shapes_labels_read(FIX "labels", &l));
    assert_int_equal(l->n, (int)nc);
    size_t off = 0;
    for (int i = 0; i < l->n; i++) {
        for (size_t c = 0; c <= strlen(l->files[i]); c++)
            assert_int_equal((unsigned char)l->files[i][c], (int)files[off + c]);
        off += strlen(l->files[i]) + 1;
        assert_int_equal(l->classes[i], (int)classes[i]);
        for (int k = 0; k < 4; k++)
            assert_int_equal(l->boxes[i][k], (int)boxes[i * 4 + k]);
    }
    assert_int_equal(off, nf);
    off = 0;
    for (int c = 0; c < l->nclasses; c++) {
        for (size_t j = 0; j <= strlen(l->class_names[c]); j++)
            assert_int_equal((unsigned char)l->class_names[c][j], (int)names[off + j]);
        off += strlen(l->class_names[c]) + 1;
    }
    assert_int_equal(off, nn);
    kdc_shapes_labels_free(l);
    /* a bad file names what is wrong */
    assert_int_equal(tk_tmpdir_create("api17"), 0);
    FILE *fp = fopen(tk_tmp_path("labels.json"), "w");
    assert_non_null(fp);
    fputs("{\"classes\": [\"a\"], \"images\": [{\"file\": \"x.png\", \"class\": 3, "
          "\"box\": [0, 0, 1, 1]}]}", fp);
    fclose(fp);
    l = (kdc_shapes_labels *)1;
    CHECK_STATUS(kdc_shapes_labels_read(tk_tmpdir(), &l), KDC_ERR_FORMAT);
    assert_null(l);
    assert_non_null(strstr(kdc_last_error(), "\"class\""));
    CHECK_STATUS(kdc_shapes_labels_read("/no/such/dir", &l), KDC_ERR_IO);
    tk_tmpdir_remove();
    free(files);
    free(names);
    free(classes);
    free(boxes);
    kdc__st_close(f);
}

/* ---- pictures ---------------------------------------------------------- */

static void test_overlay_ex_png(void **state)
{
    (void)state;
    kdc__st_file *f = open_fx("tests/fixtures/cam/render.safetensors");
    int64_t *jet = get_i64(f, "jet", NULL), *imgv = get_i64(f, "overlay/img", NULL);
    float *map = get_f32(f, "overlay/map", NULL);
    kdc_image *img = NULL, *a = NULL, *b = NULL;
    CHECK_OK(kdc_image_create(7, 5, &img));
    for (int i = 0; i < 7 * 5 * 3; i++)
        img->rgb[i] = (unsigned char)imgv[i];
    CHECK_OK(kdc_overlay(img, map, &a));
    CHECK_OK(kdc_overlay_ex(img, map, 0.5f, &b));
    assert_memory_equal(a->rgb, b->rgb, 7 * 5 * 3);
    kdc_image_destroy(b);
    /* alpha 1: OpenCV's JET colour of uint8(255 x), over the largest channel */
    CHECK_OK(kdc_overlay_ex(img, map, 1.0f, &b));
    float mx = 0;
    for (int i = 0; i < 35; i++) {
        int v = map[i] > 0 ? (int)(255.0f * (map[i] > 1 ? 1.0f : map[i])) : 0;
        for (int c = 0; c < 3; c++)
            mx = fmaxf(mx, (float)jet[v * 3 + c] / 255.0f);
    }
    for (int i = 0; i < 35; i++) {
        int v = map[i] > 0 ? (int)(255.0f * (map[i] > 1 ? 1.0f : map[i])) : 0;
        for (int c = 0; c < 3; c++) {
            float q = 255.0f * (((float)jet[v * 3 + c] / 255.0f) / mx);
            assert_int_equal(b->rgb[i * 3 + c], q >= 255.0f ? 255 : (int)q);
        }
    }
    kdc_image_destroy(b);
    CHECK_STATUS(kdc_overlay_ex(img, map, 1.5f, &b), KDC_ERR_INVALID_ARGUMENT);
    assert_null(b);
    /* PNG in memory: written to a file and decoded, the same pixels */
    unsigned char *png = NULL;
    size_t len = 0;
    CHECK_OK(kdc_image_encode_png(a, &png, &len));
    assert_true(len > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    assert_int_equal(tk_tmpdir_create("api17png"), 0);
    FILE *fp = fopen(tk_tmp_path("x.png"), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(png, 1, len, fp), len);
    fclose(fp);
    kdc_image *back = NULL;
    CHECK_OK(kdc_image_load(tk_tmp_path("x.png"), &back));
    assert_int_equal(back->width, 7);
    assert_memory_equal(back->rgb, a->rgb, 7 * 5 * 3);
    tk_tmpdir_remove();
    kdc_free(png);
    CHECK_STATUS(kdc_image_encode_png(NULL, &png, &len), KDC_ERR_INVALID_ARGUMENT);
    assert_null(png);
    kdc_image_destroy(back);
    kdc_image_destroy(a);
    kdc_image_destroy(img);
    free(jet);
    free(imgv);
    free(map);
    kdc__st_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_batch),
        cmocka_unit_test(test_cam_aggregate),
        cmocka_unit_test(test_softmax_topk),
        cmocka_unit_test(test_shapes_labels),
        cmocka_unit_test(test_overlay_ex_png),
        cmocka_unit_test_setup_teardown(test_guided_gradcam, setup_model, teardown_model),
        cmocka_unit_test_setup_teardown(test_keep_layers, setup_model, teardown_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
