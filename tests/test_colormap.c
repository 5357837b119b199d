/* test_colormap.c - the colormaps of pytorch-grad-cam's show_cam_on_image
 * (issue 17): JET, VIRIDIS, INFERNO, TURBO.
 *
 * tests/fixtures/render/cmap_*.npy come from tools/gen_colormaps.py:
 * cv2.applyColorMap of np.uint8(255 * mask) (heat), show_cam_on_image's
 * overlay in NumPy float32 (overlay), and matplotlib's colormap of the same
 * name times 255 (mpl), an independent check of OpenCV's table data.
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

#include "kdcam.h"

#define DIR "tests/fixtures/render/"

static const char *const NAMES[] = {"viridis", "inferno", "turbo"};
static const kdc_colormap MAPS[] = {KDC_COLORMAP_VIRIDIS, KDC_COLORMAP_INFERNO,
                                    KDC_COLORMAP_TURBO};

/* A fixture array of exactly count floats. */
static float *load(const char *name, size_t count)
{
    char path[256];
    float *d = NULL;
    int nd = 0;
    int64_t dims[8];
    snprintf(path, sizeof path, DIR "%s", name);
    if (kdc_npy_load(path, &d, &nd, dims) != KDC_OK)
        fail_msg("%s: %s", path, kdc_last_error());
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)dims[i];
    if (n != count)
        fail_msg("%s: %zu values, expected %zu", path, n, count);
    return d;
}

enum { H = 16, W = 20 };

/* The whole table: a ramp 0/255 .. 255/255 looked up, against matplotlib
 * (OpenCV's tables are round(255 * v) of matplotlib's: within 0.5). */
static void test_tables_vs_matplotlib(void **state)
{
    (void)state;
    float ramp[256];
    unsigned char rgb[256 * 3];
    for (int i = 0; i < 256; i++)
        ramp[i] = (float)i / 255.0f;
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "cmap_%s_mpl.npy", NAMES[k]);
        float *mpl = load(name, 256 * 3);
        kdc_colormap_apply(MAPS[k], ramp, 256, 1, rgb);
        double worst = 0;
        for (int i = 0; i < 256 * 3; i++)
            worst = fmax(worst, fabs((double)rgb[i] - mpl[i]));
        printf("  %-8s table vs matplotlib x 255: max |diff| %.4f\n", NAMES[k], worst);
        if (worst > 0.5)
            fail_msg("%s: table differs from matplotlib's by %.4f (> 0.5)", NAMES[k], worst);
        kdc_free(mpl);
    }
}

/* Lookups of a mask with values below 0 and above 1 (clamped), against
 * cv2.applyColorMap of np.uint8(255 * clip(mask)), to the bit. */
static void test_heat_vs_opencv(void **state)
{
    (void)state;
    float *mask = load("cmap_mask.npy", H * W);
    unsigned char rgb[H * W * 3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "cmap_%s_heat.npy", NAMES[k]);
        float *ref = load(name, H * W * 3);
        kdc_colormap_apply(MAPS[k], mask, W, H, rgb);
        for (int i = 0; i < H * W * 3; i++)
            if (rgb[i] != (unsigned char)ref[i])
                fail_msg("%s: pixel %d channel %d: %d, OpenCV %d", NAMES[k], i / 3, i % 3,
                         rgb[i], (int)ref[i]);
        kdc_free(ref);
    }
    kdc_free(mask);
}

/* show_cam_on_image(img / 255, mask, use_rgb=True, colormap=...), to the bit. */
static void test_overlay_vs_pytorch_grad_cam(void **state)
{
    (void)state;
    float *mask = load("cmap_mask.npy", H * W);
    float *img = load("cmap_image.npy", H * W * 3);
    kdc_image *im = NULL, *ov = NULL;
    assert_int_equal(kdc_image_create(W, H, &im), KDC_OK);
    for (int i = 0; i < H * W * 3; i++)
        im->rgb[i] = (unsigned char)img[i];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "cmap_%s_overlay.npy", NAMES[k]);
        float *ref = load(name, H * W * 3);
        assert_int_equal(kdc_overlay_colormap(im, mask, 0.5f, MAPS[k], &ov), KDC_OK);
        for (int i = 0; i < H * W * 3; i++)
            if (ov->rgb[i] != (unsigned char)ref[i])
                fail_msg("%s overlay: pixel %d channel %d: %d, pytorch-grad-cam %d", NAMES[k],
                         i / 3, i % 3, ov->rgb[i], (int)ref[i]);
        kdc_image_destroy(ov);
        ov = NULL;
        kdc_free(ref);
    }
    /* JET through the new call equals kdc_overlay_ex (checked against OpenCV
     * in test_render) */
    kdc_image *a = NULL, *b = NULL;
    assert_int_equal(kdc_overlay_colormap(im, mask, 0.5f, KDC_COLORMAP_JET, &a), KDC_OK);
    assert_int_equal(kdc_overlay_ex(im, mask, 0.5f, &b), KDC_OK);
    assert_memory_equal(a->rgb, b->rgb, (size_t)H * W * 3);
    kdc_image_destroy(a);
    kdc_image_destroy(b);
    kdc_image_destroy(im);
    kdc_free(img);
    kdc_free(mask);
}

static void test_names(void **state)
{
    (void)state;
    kdc_colormap c = KDC_COLORMAP_JET;
    for (int i = 0; i < KDC_COLORMAP_COUNT; i++) {
        const char *n = kdc_colormap_name((kdc_colormap)i);
        assert_non_null(n);
        assert_int_equal(kdc_colormap_parse(n, &c), KDC_OK);
        assert_int_equal((int)c, i);
    }
    assert_string_equal(kdc_colormap_name(KDC_COLORMAP_JET), "jet");
    assert_null(kdc_colormap_name(KDC_COLORMAP_COUNT));
    assert_int_equal(kdc_colormap_parse("parula", &c), KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "parula"));
    assert_int_equal(kdc_colormap_parse(NULL, &c), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_colormap_parse("jet", NULL), KDC_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_vs_matplotlib),
        cmocka_unit_test(test_heat_vs_opencv),
        cmocka_unit_test(test_overlay_vs_pytorch_grad_cam),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("colormap", tests, NULL, NULL);
}
