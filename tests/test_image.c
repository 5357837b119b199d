/* test_image.c - image loading, PIL-compatible resizing, torchvision-style
 * preprocessing, PNG writing, ImageNet class names.
 * References come from tools/gen_image_fixtures.py (PIL 9.4, torchvision
 * 0.14). Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kdcam.h"
#include "testkit.h"
#include "util/weightgen.h"

#define FIX "tests/fixtures/"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static kdc_image *load_ok(const char *path)
{
    kdc_image *im = NULL;
    kdc_status st = kdc_image_load(path, &im);
    if (st != KDC_OK)
        print_message("kdc_image_load(%s): %s\n", path, kdc_last_error());
    assert_int_equal(st, KDC_OK);
    assert_non_null(im);
    return im;
}

typedef struct {
    int max;
    double mean;
} diff_stats;

static diff_stats image_diff(const kdc_image *a, const kdc_image *b)
{
    diff_stats d = {0, 0.0};
    size_t n = (size_t)a->width * a->height * 3;
    double sum = 0;
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    for (size_t i = 0; i < n; i++) {
        int e = abs((int)a->rgb[i] - (int)b->rgb[i]);
        if (e > d.max)
            d.max = e;
        sum += e;
    }
    d.mean = sum / (double)n;
    return d;
}

/* Every PIL comparison must be within these. Measured: 0 / 0.0 (bit-exact),
 * as the resampler repeats Pillow's double-precision coefficients, its
 * fixed-point rounding and its pass order. One level of slack allows for a
 * coefficient rounding that lands differently on another libm/compiler;
 * the mean bound is the requirement (<= 1.0). */
#define PIL_MAX_DIFF 1
#define PIL_MEAN_DIFF 1.0

static void check_resize_case(const char *src_path, const char *ref_path)
{
    kdc_image *src = load_ok(src_path), *ref = load_ok(ref_path), *out = NULL;
    assert_int_equal(kdc_image_resize(src, ref->width, ref->height, &out), KDC_OK);
    diff_stats d = image_diff(out, ref);
    print_message("  %s -> %dx%d vs PIL: max %d, mean %.4f\n", src_path, ref->width,
                  ref->height, d.max, d.mean);
    assert_true(d.max <= PIL_MAX_DIFF);
    assert_true(d.mean <= PIL_MEAN_DIFF);
    kdc_image_destroy(src);
    kdc_image_destroy(ref);
    kdc_image_destroy(out);
}

static void expect_error(kdc_status got, kdc_status want, const char *must_contain)
{
    if (got != want)
        print_message("got %s (%s), want %s\n", kdc_status_string(got), kdc_last_error(),
                      kdc_status_string(want));
    assert_int_equal(got, want);
    if (must_contain && !strstr(kdc_last_error(), must_contain)) {
        print_message("message \"%s\" lacks \"%s\"\n", kdc_last_error(), must_contain);
        fail();
    }
}

/* ------------------------------------------------------------------ */
/* Resizing against PIL                                                */

static void test_resize_upscale(void **state)
{
    check_resize_case(FIX "synth_src.png", FIX "synth_up.png");
}

static void test_resize_mixed(void **state)
{
    check_resize_case(FIX "synth_src.png", FIX "synth_mixed.png");
}

static void test_resize_strong_downscale(void **state)
{
    check_resize_case(FIX "synth_big.png", FIX "synth_down.png");
}

static void test_resize_identity_and_edges(void **state)
{
    kdc_image *src = load_ok(FIX "synth_src.png"), *out = NULL, *one = NULL, *up = NULL;
    assert_int_equal(kdc_image_resize(src, src->width, src->height, &out), KDC_OK);
    assert_memory_equal(out->rgb, src->rgb, (size_t)src->width * src->height * 3);

    /* 1x1 holds the (rounded) mean; upscaling it gives a flat image. */
    assert_int_equal(kdc_image_resize(src, 1, 1, &one), KDC_OK);
    assert_int_equal(kdc_image_resize(one, 5, 3, &up), KDC_OK);
    for (int i = 0; i < 5 * 3 * 3; i++)
        assert_int_equal(up->rgb[i], one->rgb[i % 3]);

    kdc_image *bad = (kdc_image *)1;
    expect_error(kdc_image_resize(src, 0, 5, &bad), KDC_ERR_INVALID_ARGUMENT, NULL);
    assert_null(bad);
    expect_error(kdc_image_resize(src, 5, 40000, &bad), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_image_resize(NULL, 5, 5, &bad), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_image_resize(src, 5, 5, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
    kdc_image_destroy(src);
    kdc_image_destroy(out);
    kdc_image_destroy(one);
    kdc_image_destroy(up);
}

/* ------------------------------------------------------------------ */
/* Preprocessing against torchvision                                   */

static const float kMean[3] = {0.485f, 0.456f, 0.406f};
static const float kStd[3] = {0.229f, 0.224f, 0.225f};

static void test_preprocess_chelsea_tensor(void **state)
{
    kdc_image *img = load_ok("examples/images/chelsea.png"), *crop = NULL;
    kdc_preprocess pp;
    float *ref = NULL;
    int ndim = 0, h = 0, w = 0;
    int64_t dims[8];

    kdc_preprocess_imagenet(&pp);
    assert_int_equal(kdc_preprocess_size(&pp, img->width, img->height, &h, &w), KDC_OK);
    assert_int_equal(h, 224);
    assert_int_equal(w, 224);
    float *x = malloc(sizeof(float) * 3 * 224 * 224);
    assert_non_null(x);
    assert_int_equal(kdc_preprocess_image(img, &pp, x, &crop), KDC_OK);
    assert_int_equal(crop->width, 224);
    assert_int_equal(crop->height, 224);

    /* torchvision's tensor, stored as float16 to keep the fixture small. */
    assert_int_equal(kdc_npy_load(FIX "chelsea_norm224_f16.npy", &ref, &ndim, dims), KDC_OK);
    assert_int_equal(ndim, 4);
    assert_true(dims[0] == 1 && dims[1] == 3 && dims[2] == 224 && dims[3] == 224);

    /* The uint8 crop PIL produced, recovered exactly from the tensor (the
     * generator checks that inversion). */
    kdc_image *pil = NULL;
    assert_int_equal(kdc_image_create(224, 224, &pil), KDC_OK);
    size_t plane = 224 * 224;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            double v = ((double)ref[c * plane + i] * kStd[c] + kMean[c]) * 255.0;
            pil->rgb[i * 3 + c] = (unsigned char)lrint(v);
        }
    diff_stats d = image_diff(crop, pil);
    print_message("  chelsea Resize(256)+CenterCrop(224) vs PIL: max %d, mean %.4f\n", d.max,
                  d.mean);
    assert_true(d.max <= PIL_MAX_DIFF);
    assert_true(d.mean <= PIL_MEAN_DIFF);

    /* The normalised tensor: the stored float16 is within half an f16 ulp
     * (<= 2^-10 for |x| < 4) of torchvision's float32; on top of that a
     * resize difference of PIL_MAX_DIFF levels is PIL_MAX_DIFF / 255 / std. */
    double maxe = 0, sum = 0;
    int exact16 = 1;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            double e = fabs((double)x[c * plane + i] - ref[c * plane + i]);
            if (e > maxe)
                maxe = e;
            sum += e;
            /* Our float32 rounded to f16 as NumPy does. */
            uint16_t h16 = kdc_test_f32_to_f16(x[c * plane + i]);
            uint16_t r16 = kdc_test_f32_to_f16(ref[c * plane + i]);
            if (h16 != r16)
                exact16 = 0;
        }
    double mean = sum / (3.0 * plane);
    double tol_max = 1.0 / 1024 + PIL_MAX_DIFF / 255.0 / 0.224;
    double tol_mean = 1.0 / 1024 + PIL_MEAN_DIFF / 255.0 / 0.224;
    print_message("  chelsea normalised tensor vs torchvision (f16): max %.3g, mean %.3g, "
                  "f16-identical %s\n", maxe, mean, exact16 ? "yes" : "no");
    assert_true(maxe <= tol_max);
    assert_true(mean <= tol_mean);
    if (d.max == 0) /* the same pixels give the same float32, hence f16 */
        assert_true(exact16);

    free(x);
    kdc_free(ref);
    kdc_image_destroy(pil);
    kdc_image_destroy(crop);
    kdc_image_destroy(img);
}

static void test_preprocess_coffee_crop(void **state)
{
    kdc_image *img = load_ok("examples/images/coffee.png"), *crop = NULL;
    kdc_image *ref = load_ok(FIX "coffee_r256_c224.png");
    kdc_preprocess pp;
    kdc_preprocess_imagenet(&pp);
    float *x = malloc(sizeof(float) * 3 * 224 * 224);
    assert_non_null(x);
    assert_int_equal(kdc_preprocess_image(img, &pp, x, &crop), KDC_OK);
    diff_stats d = image_diff(crop, ref);
    print_message("  coffee Resize(256)+CenterCrop(224) vs PIL: max %d, mean %.4f\n", d.max,
                  d.mean);
    assert_true(d.max <= PIL_MAX_DIFF);
    assert_true(d.mean <= PIL_MEAN_DIFF);
    /* The tensor is the crop normalised (first pixel of each plane). */
    for (int c = 0; c < 3; c++) {
        float want = ((float)crop->rgb[c] / 255.0f - kMean[c]) / kStd[c];
        assert_true(x[c * 224 * 224] == want);
    }
    free(x);
    kdc_image_destroy(crop);
    kdc_image_destroy(ref);
    kdc_image_destroy(img);
}

static void test_preprocess_sizes(void **state)
{
    kdc_preprocess pp;
    int h, w;
    kdc_preprocess_imagenet(&pp);
    assert_int_equal(pp.resize_short, 256);
    assert_int_equal(pp.crop_h, 224);
    assert_int_equal(pp.crop_w, 224);
    pp.crop_h = pp.crop_w = 0;
    /* chelsea 451x300: long side int(256 * 451 / 300) = int(384.85) = 384 */
    assert_int_equal(kdc_preprocess_size(&pp, 451, 300, &h, &w), KDC_OK);
    assert_int_equal(h, 256);
    assert_int_equal(w, 384);
    /* portrait, and a square */
    assert_int_equal(kdc_preprocess_size(&pp, 300, 451, &h, &w), KDC_OK);
    assert_int_equal(h, 384);
    assert_int_equal(w, 256);
    assert_int_equal(kdc_preprocess_size(&pp, 99, 99, &h, &w), KDC_OK);
    assert_true(h == 256 && w == 256);
    /* no resize, crop only in one direction */
    pp.resize_short = 0;
    pp.crop_h = 10;
    assert_int_equal(kdc_preprocess_size(&pp, 30, 20, &h, &w), KDC_OK);
    assert_true(h == 10 && w == 30);
}

/* CenterCrop offsets: int(round((size - crop) / 2.0)), half to even. */
static void test_preprocess_crop_offsets(void **state)
{
    kdc_image *img = NULL, *crop = NULL;
    kdc_preprocess pp = {0, 0, 0, {0, 0, 0}, {1, 1, 1}};
    float out[3 * 8 * 8];
    assert_int_equal(kdc_image_create(9, 8, &img), KDC_OK);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 9; x++) {
            img->rgb[(y * 9 + x) * 3 + 0] = (unsigned char)x;
            img->rgb[(y * 9 + x) * 3 + 1] = (unsigned char)y;
            img->rgb[(y * 9 + x) * 3 + 2] = 200;
        }
    /* width 9 - 6 = 3 -> round(1.5) = 2; height 8 - 3 = 5 -> round(2.5) = 2 */
    pp.crop_w = 6;
    pp.crop_h = 3;
    assert_int_equal(kdc_preprocess_image(img, &pp, out, &crop), KDC_OK);
    assert_int_equal(crop->rgb[0], 2);
    assert_int_equal(crop->rgb[1], 2);
    assert_true(out[0] == 2.0f / 255.0f);        /* mean 0, std 1 */
    assert_true(out[3 * 6] == 2.0f / 255.0f);    /* G plane */
    assert_true(out[2 * 3 * 6] == 200.0f / 255.0f);
    kdc_image_destroy(crop);
    /* 9 - 8 = 1 -> round(0.5) = 0; 8 - 1 = 7 -> round(3.5) = 4 */
    pp.crop_w = 8;
    pp.crop_h = 1;
    assert_int_equal(kdc_preprocess_image(img, &pp, out, &crop), KDC_OK);
    assert_int_equal(crop->rgb[0], 0);
    assert_int_equal(crop->rgb[1], 4);
    kdc_image_destroy(crop);
    /* no crop_image requested */
    assert_int_equal(kdc_preprocess_image(img, &pp, out, NULL), KDC_OK);
    kdc_image_destroy(img);
}

static void test_preprocess_errors(void **state)
{
    kdc_image *img = load_ok(FIX "synth_src.png"), *crop = (kdc_image *)1; /* 32x24 */
    kdc_preprocess pp;
    float out[3 * 64 * 64];
    int h, w;

    kdc_preprocess_imagenet(&pp);
    pp.resize_short = 0; /* crop 224 of a 32x24 image */
    expect_error(kdc_preprocess_image(img, &pp, out, &crop), KDC_ERR_SHAPE, "224");
    assert_null(crop);
    expect_error(kdc_preprocess_size(&pp, 32, 24, &h, &w), KDC_ERR_SHAPE, "32");
    pp.resize_short = 30; /* 40x30, crop 31 high */
    pp.crop_h = 31;
    pp.crop_w = 10;
    expect_error(kdc_preprocess_image(img, &pp, out, NULL), KDC_ERR_SHAPE, "31");

    kdc_preprocess_imagenet(&pp);
    pp.std[1] = 0.0f;
    expect_error(kdc_preprocess_image(img, &pp, out, NULL), KDC_ERR_INVALID_ARGUMENT, "std");
    pp.std[1] = -1.0f;
    expect_error(kdc_preprocess_size(&pp, 10, 10, &h, &w), KDC_ERR_INVALID_ARGUMENT, "std");
    pp.std[1] = NAN;
    expect_error(kdc_preprocess_image(img, &pp, out, NULL), KDC_ERR_INVALID_ARGUMENT, "std");
    kdc_preprocess_imagenet(&pp);
    pp.crop_w = -1;
    expect_error(kdc_preprocess_image(img, &pp, out, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
    kdc_preprocess_imagenet(&pp);
    pp.resize_short = 100000;
    expect_error(kdc_preprocess_size(&pp, 10, 10, &h, &w), KDC_ERR_SHAPE, NULL);
    kdc_preprocess_imagenet(&pp);
    expect_error(kdc_preprocess_image(NULL, &pp, out, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_preprocess_image(img, NULL, out, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_preprocess_image(img, &pp, NULL, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_preprocess_size(&pp, 0, 10, &h, &w), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_preprocess_size(&pp, 10, 10, NULL, &w), KDC_ERR_INVALID_ARGUMENT, NULL);
    kdc_preprocess_imagenet(NULL); /* no crash */
    kdc_image_destroy(img);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

static void check_mode(const char *path, const char *ref_path)
{
    kdc_image *a = load_ok(path), *b = load_ok(ref_path);
    diff_stats d = image_diff(a, b);
    assert_int_equal(d.max, 0);
    kdc_image_destroy(a);
    kdc_image_destroy(b);
}

static void test_load_modes(void **state)
{
    /* The references are PIL's convert("RGB"). */
    check_mode(FIX "gray.png", FIX "gray_rgb.png");
    check_mode(FIX "gray_alpha.png", FIX "gray_alpha_rgb.png");
    check_mode(FIX "rgba.png", FIX "rgba_rgb.png");
    check_mode(FIX "palette.png", FIX "palette_rgb.png");
    /* 16-bit grayscale (v * 257 + 3) comes out as its high byte, v. */
    check_mode(FIX "gray16.png", FIX "gray_rgb.png");

    kdc_image *g = load_ok(FIX "gray.png");
    assert_int_equal(g->width, 13);
    assert_int_equal(g->height, 9);
    for (int i = 0; i < 13 * 9; i++) {
        assert_int_equal(g->rgb[3 * i], g->rgb[3 * i + 1]);
        assert_int_equal(g->rgb[3 * i], g->rgb[3 * i + 2]);
    }
    kdc_image_destroy(g);
}

/* With libjpeg-turbo (the default build) the decoding is Pillow's, bit for
 * bit (tests/test_jpeg.c checks many more files). With JPEG=stb, stb_image's
 * IDCT and chroma upsampling round differently: measured on this fixture
 * max 2, mean 0.075; the bounds leave room for other stb versions (a few
 * levels is normal between JPEG decoders). */
static void test_load_jpeg(void **state)
{
    kdc_image *a = load_ok(FIX "photo.jpg"), *b = load_ok(FIX "photo_pil.png");
    diff_stats d = image_diff(a, b);
#ifdef KDC_HAVE_LIBJPEG
    print_message("  photo.jpg libjpeg-turbo vs PIL decoding: max %d, mean %.4f\n", d.max,
                  d.mean);
    assert_int_equal(d.max, 0);
#else
    print_message("  photo.jpg stb vs PIL (libjpeg) decoding: max %d, mean %.4f\n", d.max,
                  d.mean);
    assert_true(d.max <= 8);
    assert_true(d.mean <= 1.0);
#endif
    kdc_image_destroy(a);
    kdc_image_destroy(b);
}

static void test_load_errors(void **state)
{
    kdc_image *im = (kdc_image *)1;
    expect_error(kdc_image_load(FIX "no_such_file.png", &im), KDC_ERR_IO,
                 FIX "no_such_file.png: cannot open: ");
    assert_null(im);
    static const char *bad[] = {FIX "truncated.png", FIX "truncated.jpg", FIX "truncated.bmp",
                                FIX "corrupt.png", FIX "empty.png"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im = (kdc_image *)1;
        expect_error(kdc_image_load(bad[i], &im), KDC_ERR_FORMAT, bad[i]);
        assert_non_null(strstr(kdc_last_error(), "not a readable image"));
        assert_null(im);
    }
    expect_error(kdc_image_load(FIX, &im), KDC_ERR_IO, FIX); /* a directory */

    /* An absurd size (a PNG header claiming 40000 x 10) is refused before
     * any allocation. */
    static const unsigned char huge[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
        0, 0, 0x9c, 0x40, 0, 0, 0, 10, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    char path[256];
    snprintf(path, sizeof path, "%s/huge.png", tk_tmpdir());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(huge, 1, sizeof huge, f), sizeof huge);
    fclose(f);
    expect_error(kdc_image_load(path, &im), KDC_ERR_FORMAT, path);
    remove(path);
    expect_error(kdc_image_load(NULL, &im), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_image_load(FIX "gray.png", NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
}

/* ------------------------------------------------------------------ */
/* Creating and writing                                                */

static void test_create(void **state)
{
    kdc_image *im = NULL;
    assert_int_equal(kdc_image_create(7, 5, &im), KDC_OK);
    assert_int_equal(im->width, 7);
    assert_int_equal(im->height, 5);
    for (int i = 0; i < 7 * 5 * 3; i++)
        assert_int_equal(im->rgb[i], 0);
    kdc_image_destroy(im);
    kdc_image_destroy(NULL);
    expect_error(kdc_image_create(0, 5, &im), KDC_ERR_INVALID_ARGUMENT, NULL);
    assert_null(im);
    expect_error(kdc_image_create(5, -1, &im), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_image_create(40000, 5, &im), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_image_create(5, 5, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
}

static void test_png_round_trip(void **state)
{
    kdc_image *im = NULL, *back = NULL;
    char path[256];
    assert_int_equal(kdc_image_create(31, 17, &im), KDC_OK);
    for (int i = 0; i < 31 * 17 * 3; i++)
        im->rgb[i] = (unsigned char)(i * 7919 % 251);
    snprintf(path, sizeof path, "%s/out.png", tk_tmpdir());
    assert_int_equal(kdc_image_save_png(im, path), KDC_OK);
    /* overwrite in place works too */
    assert_int_equal(kdc_image_save_png(im, path), KDC_OK);
    back = load_ok(path);
    assert_int_equal(back->width, 31);
    assert_int_equal(back->height, 17);
    assert_memory_equal(back->rgb, im->rgb, 31 * 17 * 3);
    assert_int_equal(tk_count_entries(tk_tmpdir()), 1); /* no temporary file left */
    kdc_image_destroy(back);
    kdc_image_destroy(im);
}

static void test_png_save_errors(void **state)
{
    kdc_image *im = NULL;
    char path[256];
    assert_int_equal(kdc_image_create(4, 4, &im), KDC_OK);
    snprintf(path, sizeof path, "%s/missing_dir/out.png", tk_tmpdir());
    expect_error(kdc_image_save_png(im, path), KDC_ERR_IO, path);
    assert_int_equal(access(path, F_OK), -1);

    /* The target is a directory: the temporary file is written, the rename
     * fails, and the temporary file is removed. */
    char sub[256];
    int before;
    snprintf(sub, sizeof sub, "%s/adir", tk_tmpdir());
    assert_int_equal(mkdir(sub, 0755), 0);
    before = tk_count_entries(tk_tmpdir());
    expect_error(kdc_image_save_png(im, sub), KDC_ERR_IO, sub);
    assert_int_equal(tk_count_entries(tk_tmpdir()), before);
    rmdir(sub);

    expect_error(kdc_image_save_png(NULL, path), KDC_ERR_INVALID_ARGUMENT, NULL);
    expect_error(kdc_image_save_png(im, NULL), KDC_ERR_INVALID_ARGUMENT, NULL);
    kdc_image_destroy(im);
}

/* ------------------------------------------------------------------ */
/* Class names                                                         */

static void test_class_names(void **state)
{
    assert_string_equal(kdc_imagenet_class_name(0), "tench");
    assert_string_equal(kdc_imagenet_class_name(281), "tabby");
    assert_string_equal(kdc_imagenet_class_name(999), "toilet tissue");
    assert_null(kdc_imagenet_class_name(-1));
    assert_null(kdc_imagenet_class_name(1000));
    for (int c = 0; c < 1000; c++) {
        const char *n = kdc_imagenet_class_name(c);
        assert_non_null(n);
        assert_true(n[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_upscale),
        cmocka_unit_test(test_resize_mixed),
        cmocka_unit_test(test_resize_strong_downscale),
        cmocka_unit_test(test_resize_identity_and_edges),
        cmocka_unit_test(test_preprocess_chelsea_tensor),
        cmocka_unit_test(test_preprocess_coffee_crop),
        cmocka_unit_test(test_preprocess_sizes),
        cmocka_unit_test(test_preprocess_crop_offsets),
        cmocka_unit_test(test_preprocess_errors),
        cmocka_unit_test(test_load_modes),
        cmocka_unit_test(test_load_jpeg),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_png_round_trip),
        cmocka_unit_test(test_png_save_errors),
        cmocka_unit_test(test_class_names),
    };
    if (tk_tmpdir_create("test_image") != 0)
        return 1;
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tk_tmpdir_remove();
    return failed;
}
