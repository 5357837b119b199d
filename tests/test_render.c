/* test_render.c - pictures: JET, overlays, gradient images, text, paste/fill.
 *
 * tests/fixtures/cam/render.safetensors comes from tools/gen_cam_fixtures.py:
 * OpenCV's COLORMAP_JET rebuilt in NumPy from the Octave jet anchors with
 * OpenCV's float interpolation and rounding, pytorch-grad-cam's
 * show_cam_on_image and deprocess_image in NumPy float32.
 * Clipping tests write at and past every border (run them under ASan:
 * make SAN=1). Run from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdcam.h"
#include "safetensors.h"

#define FIX "tests/fixtures/cam/render.safetensors"

#define CHECK_OK(expr)                                                                     \
    do {                                                                                   \
        kdc_status s_ = (expr);                                                            \
        if (s_ != KDC_OK)                                                                  \
            fail_msg("%s -> %s: %s", #expr, kdc_status_string(s_), kdc_last_error());     \
    } while (0)

static kdc__st_file *g_fx;

static int setup(void **state)
{
    (void)state;
    return kdc__st_open(FIX, &g_fx) == KDC_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kdc__st_close(g_fx);
    return 0;
}

static const kdc__st_tensor *need(const char *name)
{
    const kdc__st_tensor *t = kdc__st_find(g_fx, name);
    if (!t)
        fail_msg("fixture has no tensor %s", name);
    return t;
}

static int32_t *get_i32(const char *name, size_t *count)
{
    const kdc__st_tensor *t = need(name);
    assert_int_equal(t->dtype, KDC__ST_I32);
    int32_t *v = malloc(t->numel * sizeof *v);
    assert_non_null(v);
    memcpy(v, t->data, t->numel * sizeof *v); /* little-endian host */
    if (count)
        *count = t->numel;
    return v;
}

static float *get_f32(const char *name, size_t *count)
{
    const kdc__st_tensor *t = need(name);
    float *v = malloc(t->numel * sizeof *v);
    assert_non_null(v);
    CHECK_OK(kdc__st_to_f32(t, v));
    if (count)
        *count = t->numel;
    return v;
}

/* ------------------------------------------------------------------ */

static void test_jet_table(void **state)
{
    (void)state;
    size_t n;
    int32_t *ref = get_i32("jet", &n);
    assert_int_equal(n, 256 * 3);
    float map[256];
    unsigned char rgb[256 * 3];
    for (int i = 0; i < 256; i++)
        map[i] = ((float)i + 0.5f) / 255.0f; /* uint8(255 x) = i */
    kdc_colormap_jet(map, 16, 16, rgb);
    static const int spots[] = {0, 64, 128, 192, 255};
    for (size_t s = 0; s < sizeof spots / sizeof *spots; s++) {
        const int i = spots[s];
        printf("  jet[%3d] = (%3d, %3d, %3d)\n", i, rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
        for (int c = 0; c < 3; c++)
            assert_int_equal(rgb[3 * i + c], ref[3 * i + c]);
    }
    for (int i = 0; i < 256 * 3; i++)
        if (rgb[i] != ref[i])
            fail_msg("jet[%d] channel %d: %d, OpenCV %d", i / 3, i % 3, rgb[i], ref[i]);
    /* OpenCV's well-known end points (RGB): dark blue, dark red */
    assert_int_equal(rgb[0], 0);
    assert_int_equal(rgb[2], 128);
    assert_int_equal(rgb[3 * 255], 128);
    assert_int_equal(rgb[3 * 255 + 2], 0);
    /* truncation and clamping: 255 * x truncated; below 0, NaN -> 0; above 1 -> 255 */
    float odd[5] = {-3.0f, NAN, 7.0f, 1.0f / 255.0f - 1e-6f, 1.0f};
    unsigned char o[15];
    kdc_colormap_jet(odd, 5, 1, o);
    assert_memory_equal(o, rgb, 3);                /* -3 -> index 0 */
    assert_memory_equal(o + 3, rgb, 3);            /* NaN -> index 0 */
    assert_memory_equal(o + 6, rgb + 3 * 255, 3);  /* 7 -> index 255 */
    assert_memory_equal(o + 9, rgb, 3);            /* 0.99999/255 truncates to 0 */
    assert_memory_equal(o + 12, rgb + 3 * 255, 3); /* 1 -> 255 */
    kdc_colormap_jet(NULL, 5, 1, o); /* no crash */
    kdc_colormap_jet(odd, 5, 1, NULL);
    free(ref);
}

static void test_overlay(void **state)
{
    (void)state;
    size_t n;
    int32_t *img = get_i32("overlay/img", &n);
    int32_t *ref = get_i32("overlay/out", NULL);
    float *map = get_f32("overlay/map", NULL);
    const kdc__st_tensor *t = need("overlay/img");
    const int h = (int)t->shape[0], w = (int)t->shape[1];
    kdc_image *im = NULL, *out = NULL;
    CHECK_OK(kdc_image_create(w, h, &im));
    for (size_t i = 0; i < n; i++)
        im->rgb[i] = (unsigned char)img[i];
    CHECK_OK(kdc_overlay(im, map, &out));
    assert_int_equal(out->width, w);
    assert_int_equal(out->height, h);
    for (size_t i = 0; i < n; i++)
        if (out->rgb[i] != ref[i])
            fail_msg("overlay value %zu: %d, NumPy %d", i, out->rgb[i], ref[i]);
    kdc_image_destroy(out);
    out = (kdc_image *)im; /* must be reset to NULL on failure */
    assert_int_equal(kdc_overlay(im, NULL, &out), KDC_ERR_INVALID_ARGUMENT);
    assert_null(out);
    assert_int_equal(kdc_overlay(NULL, map, &out), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_overlay(im, map, NULL), KDC_ERR_INVALID_ARGUMENT);
    kdc_image_destroy(im);
    free(img);
    free(ref);
    free(map);
}

static void test_gradient_image(void **state)
{
    (void)state;
    float *g = get_f32("grad/in", NULL);
    size_t n;
    int32_t *ref = get_i32("grad/out", &n), *ref64 = get_i32("grad/out64", NULL);
    const kdc__st_tensor *t = need("grad/in");
    const int h = (int)t->shape[1], w = (int)t->shape[2];
    kdc_image *out = NULL;
    CHECK_OK(kdc_gradient_image(g, h, w, &out));
    assert_int_equal(out->width, w);
    assert_int_equal(out->height, h);
    int diff = 0, seen0 = 0, seen255 = 0;
    for (size_t i = 0; i < n; i++) {
        /* exact against the same steps with double-accumulated statistics */
        if (out->rgb[i] != ref64[i])
            fail_msg("gradient image value %zu: %d, expected %d", i, out->rgb[i], ref64[i]);
        /* NumPy's float32 mean/std differ in the last bits: at most 1 off */
        assert_true(abs((int)out->rgb[i] - ref[i]) <= 1);
        diff += out->rgb[i] != ref[i];
        seen0 |= out->rgb[i] == 0;
        seen255 |= out->rgb[i] == 255;
    }
    assert_true(seen0 && seen255); /* the outliers were clipped */
    printf("  gradient image: %d of %zu values 1 off NumPy float32\n", diff, n);
    kdc_image_destroy(out);
    assert_int_equal(kdc_gradient_image(NULL, h, w, &out), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_gradient_image(g, 0, w, &out), KDC_ERR_SHAPE);
    /* a constant gradient: std 0, everything maps to 0.5 -> 127 */
    float flat[3 * 4] = {0};
    CHECK_OK(kdc_gradient_image(flat, 2, 2, &out));
    for (int i = 0; i < 12; i++)
        assert_int_equal(out->rgb[i], 127);
    kdc_image_destroy(out);
    free(g);
    free(ref);
    free(ref64);
}

/* ------------------------------------------------------------------ */
/* Text, paste, fill                                                    */

static void test_text(void **state)
{
    (void)state;
    const unsigned char white[3] = {255, 255, 255};
    const char *text = "Grad-CAM p=0.93 tabby";
    int tw = 0, th = 0;
    kdc_text_size(text, 2, &tw, &th);
    assert_true(tw > 0 && th > 0);
    int tw1, th1;
    kdc_text_size(text, 1, &tw1, &th1);
    assert_int_equal(tw, 2 * tw1);
    assert_int_equal(th, 2 * th1);
    kdc_image *im = NULL;
    CHECK_OK(kdc_image_create(tw + 20, th + 20, &im));
    const int x0 = 7, y0 = 9;
    kdc_image_draw_text(im, x0, y0, text, 2, white);
    int inside = 0;
    int bx0 = INT_MAX, by0 = INT_MAX, bx1 = -1, by1 = -1;
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width; x++) {
            const unsigned char *p = im->rgb + 3 * ((size_t)y * im->width + x);
            if (!p[0] && !p[1] && !p[2])
                continue;
            assert_true(p[0] == 255 && p[1] == 255 && p[2] == 255);
            if (x < x0 || x >= x0 + tw || y < y0 || y >= y0 + th)
                fail_msg("text pixel (%d, %d) outside the measured box", x, y);
            inside++;
            bx0 = x < bx0 ? x : bx0;
            by0 = y < by0 ? y : by0;
            bx1 = x > bx1 ? x : bx1;
            by1 = y > by1 ? y : by1;
        }
    printf("  text \"%s\" scale 2: box %dx%d, %d pixels set, ink (%d,%d)-(%d,%d)\n", text, tw,
           th, inside, bx0, by0, bx1, by1);
    assert_true(inside > 200);
    assert_true(bx1 - bx0 > tw / 2); /* ink spans the string */
    /* legibility is for eyes: KDC_TEST_SAVE=file.png keeps the picture */
    if (getenv("KDC_TEST_SAVE"))
        CHECK_OK(kdc_image_save_png(im, getenv("KDC_TEST_SAVE")));
    kdc_image_destroy(im);

    /* two lines: twice the line height */
    int w2, h2;
    kdc_text_size("ab\ncd", 1, &w2, &h2);
    assert_int_equal(h2, 2 * th1);
    kdc_text_size("", 3, &w2, &h2);
    assert_int_equal(w2, 0);
    assert_int_equal(h2, 0);
    kdc_text_size(NULL, 3, &w2, &h2);
    assert_int_equal(w2, 0);
    kdc_text_size("x", 0, &w2, &h2);
    assert_int_equal(w2, 0);

    /* clipping at every border, odd characters, huge scales (ASan) */
    CHECK_OK(kdc_image_create(23, 17, &im));
    kdc_image_draw_text(im, -10, -5, "Clip\x01\xff~\x7f\n\tme", 3, white);
    kdc_image_draw_text(im, 15, 12, "edge", 4, white);
    kdc_image_draw_text(im, INT_MAX - 3, INT_MAX - 3, "far", 1000, white);
    kdc_image_draw_text(im, INT_MIN, INT_MIN, "far", 1000000, white);
    kdc_image_draw_text(im, -100000, 0, "WWWWWWWWWWWWWWWWWWWWWWWW", 5000, white);
    kdc_image_draw_text(NULL, 0, 0, "x", 1, white);
    kdc_image_draw_text(im, 0, 0, NULL, 1, white);
    kdc_image_draw_text(im, 0, 0, "x", 1, NULL);
    kdc_image_draw_text(im, 0, 0, "x", 0, white);
    kdc_image_destroy(im);
}

static void fill_pattern(kdc_image *im)
{
    for (int i = 0; i < im->width * im->height * 3; i++)
        im->rgb[i] = (unsigned char)(i * 7 + 1);
}

static void test_paste(void **state)
{
    (void)state;
    kdc_image *dst = NULL, *src = NULL;
    CHECK_OK(kdc_image_create(5, 4, &dst));
    CHECK_OK(kdc_image_create(3, 2, &src));
    fill_pattern(src);
    /* partly off the top-left corner: src pixel (2, 1) lands on dst (0, 0) */
    kdc_image_paste(dst, src, -2, -1);
    assert_memory_equal(dst->rgb, src->rgb + 3 * (1 * 3 + 2), 3);
    int set = 0;
    for (int i = 0; i < 5 * 4 * 3; i++)
        set += dst->rgb[i] != 0;
    assert_true(set <= 3);
    /* partly off the bottom-right corner: src (0, 0) lands on dst (4, 3) */
    memset(dst->rgb, 0, 5 * 4 * 3);
    kdc_image_paste(dst, src, 4, 3);
    assert_memory_equal(dst->rgb + 3 * (3 * 5 + 4), src->rgb, 3);
    /* inside: row by row */
    memset(dst->rgb, 0, 5 * 4 * 3);
    kdc_image_paste(dst, src, 1, 1);
    for (int y = 0; y < 2; y++)
        assert_memory_equal(dst->rgb + 3 * ((y + 1) * 5 + 1), src->rgb + 3 * (y * 3), 9);
    /* entirely outside, extreme offsets: nothing written */
    memset(dst->rgb, 0, 5 * 4 * 3);
    kdc_image_paste(dst, src, 5, 0);
    kdc_image_paste(dst, src, 0, 4);
    kdc_image_paste(dst, src, -3, 0);
    kdc_image_paste(dst, src, INT_MAX, INT_MAX);
    kdc_image_paste(dst, src, INT_MIN, INT_MIN);
    kdc_image_paste(dst, src, INT_MAX - 1, 0);
    for (int i = 0; i < 5 * 4 * 3; i++)
        assert_int_equal(dst->rgb[i], 0);
    /* larger source than destination */
    kdc_image *big = NULL;
    CHECK_OK(kdc_image_create(9, 9, &big));
    fill_pattern(big);
    kdc_image_paste(dst, big, -1, -2);
    assert_memory_equal(dst->rgb, big->rgb + 3 * (2 * 9 + 1), 15);
    kdc_image_paste(NULL, src, 0, 0);
    kdc_image_paste(dst, NULL, 0, 0);
    kdc_image_destroy(big);
    kdc_image_destroy(dst);
    kdc_image_destroy(src);
}

static void test_fill(void **state)
{
    (void)state;
    const unsigned char red[3] = {200, 10, 20};
    kdc_image *im = NULL;
    CHECK_OK(kdc_image_create(6, 5, &im));
    kdc_image_fill(im, -2, -3, 4, 5, red); /* covers x 0..1, y 0..1 */
    int set = 0;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++) {
            const unsigned char *p = im->rgb + 3 * (y * 6 + x);
            const int in = x < 2 && y < 2;
            if (in)
                assert_memory_equal(p, red, 3);
            else
                assert_true(!p[0] && !p[1] && !p[2]);
            set += in;
        }
    assert_int_equal(set, 4);
    kdc_image_fill(im, 4, 3, 100, 100, red); /* x 4..5, y 3..4 */
    assert_memory_equal(im->rgb + 3 * (4 * 6 + 5), red, 3);
    assert_true(im->rgb[3 * (2 * 6 + 5)] == 0);
    memset(im->rgb, 0, 6 * 5 * 3);
    kdc_image_fill(im, 6, 0, 3, 3, red);
    kdc_image_fill(im, 0, 5, 3, 3, red);
    kdc_image_fill(im, 0, 0, 0, 3, red);
    kdc_image_fill(im, 0, 0, -4, 3, red);
    kdc_image_fill(im, INT_MAX, INT_MAX, INT_MAX, INT_MAX, red);
    kdc_image_fill(im, INT_MIN, INT_MIN, 5, 5, red);
    for (int i = 0; i < 6 * 5 * 3; i++)
        assert_int_equal(im->rgb[i], 0);
    kdc_image_fill(im, INT_MIN, INT_MIN, INT_MAX, INT_MAX, red); /* ends before 0 */
    for (int i = 0; i < 6 * 5 * 3; i++)
        assert_int_equal(im->rgb[i], 0);
    kdc_image_fill(im, -5, -5, INT_MAX, INT_MAX, red); /* everything */
    for (int i = 0; i < 6 * 5; i++)
        assert_memory_equal(im->rgb + 3 * i, red, 3);
    kdc_image_fill(NULL, 0, 0, 1, 1, red);
    kdc_image_fill(im, 0, 0, 1, 1, NULL);
    kdc_image_destroy(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jet_table),
        cmocka_unit_test(test_overlay),
        cmocka_unit_test(test_gradient_image),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_paste),
        cmocka_unit_test(test_fill),
    };
    return cmocka_run_group_tests_name("render", tests, setup, teardown) ? 1 : 0;
}
