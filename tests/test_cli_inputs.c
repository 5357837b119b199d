/* test_cli_inputs.c - issue 17 through the tool: the inputs of `kdcam cam`
 * and `kdcam compare` (folders, -r, @lists, globs, name collisions),
 * streaming batches (results independent of --batch), --skip-existing,
 * --min-size, compare's --layer (both spellings), --npy, --grid, --svg and
 * --norm, each checked against what the library computes or what must be on
 * disk. Weights are generated (tests/util/weightgen), never the demo's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cliexec.h"
#include "kdcam.h"
#include "weightgen.h"

#define run cliexec_run
#define expect_error cliexec_expect_error
#define err_text cliexec_err
#define out_text cliexec_out

static char tmp[64], wmb[128], wrn[128];

static int exists(const char *fmt, ...)
{
    char p[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void shape_png(const char *path, uint64_t index, int size)
{
    kdc_image *im = NULL;
    assert_int_equal(kdc_shapes_render(7, index, size < 64 ? 64 : size, &im, NULL, NULL), KDC_OK);
    if (size < 64) {
        kdc_image *small = NULL;
        assert_int_equal(kdc_image_resize(im, size, size, &small), KDC_OK);
        kdc_image_destroy(im);
        im = small;
    }
    assert_int_equal(kdc_image_save_png(im, path), KDC_OK);
    kdc_image_destroy(im);
}

static int setup(void **state)
{
    (void)state;
    if (cliexec_setup())
        return -1;
    snprintf(tmp, sizeof tmp, "%s", cliexec_dir());
    snprintf(wmb, sizeof wmb, "%s/mb.safetensors", tmp);
    snprintf(wrn, sizeof wrn, "%s/rn.safetensors", tmp);
    if (kdc_test_write_weights(wmb, "mobilenetv1", 1001, 10, "", 0) ||
        kdc_test_write_weights(wrn, "resnet50", 1002, 10, "", 0))
        return -1;
    /* in/a/x.png, in/b/x.png, in/b/c/y.png, in/top.png, in/tiny.png (16 px) */
    char p[300];
    snprintf(p, sizeof p, "mkdir -p %s/in/a %s/in/b/c", tmp, tmp);
    if (system(p))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void make_tree(void)
{
    char p[300];
    snprintf(p, sizeof p, "%s/in/a/x.png", tmp);
    shape_png(p, 0, 96);
    snprintf(p, sizeof p, "%s/in/b/x.png", tmp);
    shape_png(p, 1, 96);
    snprintf(p, sizeof p, "%s/in/b/c/y.png", tmp);
    shape_png(p, 2, 120);
    snprintf(p, sizeof p, "%s/in/top.png", tmp);
    shape_png(p, 3, 80);
}

static float *npy(const char *fmt, ...)
{
    char p[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    float *d = NULL;
    int nd;
    int64_t dims[8];
    if (kdc_npy_load(p, &d, &nd, dims))
        fail_msg("%s: %s", p, kdc_last_error());
    return d;
}

static void test_cam_inputs(void **state)
{
    (void)state;
    make_tree();
    /* a folder: its own images only; -r: the subfolders too, mirrored */
    assert_int_equal(run("cam -w %s %s/in -o %s/o1 --npy", wmb, tmp, tmp), 0);
    assert_true(exists("%s/o1/top.gradcam.png", tmp));
    assert_false(exists("%s/o1/a", tmp));
    assert_non_null(strstr(err_text, "kdcam cam: 1/1 images"));
    assert_int_equal(run("cam -w %s -r %s/in -o %s/o2 --npy --batch 3", wmb, tmp, tmp), 0);
    assert_true(exists("%s/o2/a/x.gradcam.png", tmp) && exists("%s/o2/b/x.gradcam.png", tmp) &&
                exists("%s/o2/b/c/y.gradcam.png", tmp) && exists("%s/o2/top.gradcam.png", tmp));
    assert_non_null(strstr(err_text, "kdcam cam: 4/4 images"));
    /* batches do not change the maps: --batch 1 gives the same floats */
    assert_int_equal(run("cam -w %s -r %s/in -o %s/o3 --npy --batch 1", wmb, tmp, tmp), 0);
    float *m3 = npy("%s/o2/b/c/y.gradcam.npy", tmp), *m1 = npy("%s/o3/b/c/y.gradcam.npy", tmp);
    assert_memory_equal(m3, m1, (size_t)224 * 224 * sizeof *m1);
    /* and the same as the library on that one image */
    kdc_model *m = NULL;
    kdc_run *r = NULL;
    kdc_cam_result *res = NULL;
    int layer;
    char path[300];
    snprintf(path, sizeof path, "%s/in/b/c/y.png", tmp);
    const char *paths[1] = {path};
    kdc_preprocess pp;
    float *x = NULL;
    int h, w;
    assert_int_equal(kdc_model_load(wmb, NULL, &m), KDC_OK);
    kdc_model_preprocess(m, &pp);
    assert_int_equal(kdc_image_load_batch(paths, 1, &pp, NULL, &x, &h, &w, NULL, NULL), KDC_OK);
    assert_int_equal(kdc_model_find_layer(m, "model.13", &layer), KDC_OK);
    assert_int_equal(kdc_run_create(m, NULL, &r), KDC_OK);
    kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &layer, .nlayers = 1};
    assert_int_equal(kdc_cam_compute(r, x, 1, h, w, &co, &res), KDC_OK);
    assert_memory_equal(m1, res->map, (size_t)h * w * sizeof *m1);
    kdc_cam_result_destroy(res);
    kdc_run_destroy(r);
    kdc_model_destroy(m);
    kdc_free(x);
    kdc_free(m1);
    kdc_free(m3);

    /* files with the same stem: named by the folders that tell them apart;
     * the same file twice (given and matched by a glob) runs once */
    assert_int_equal(run("cam -w %s %s/in/a/x.png %s/in/b/x.png '%s/in/a/*.png' -o %s/o4", wmb,
                         tmp, tmp, tmp, tmp), 0);
    assert_true(exists("%s/o4/a/x.gradcam.png", tmp) && exists("%s/o4/b/x.gradcam.png", tmp));
    assert_non_null(strstr(err_text, "kdcam cam: 2/2 images"));
    /* @list: paths relative to the list's folder */
    snprintf(path, sizeof path, "%s/in/list.txt", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# two images\nb/c/y.png\ntop.png\n", f);
    fclose(f);
    assert_int_equal(run("cam -w %s @%s -o %s/o5", wmb, path, tmp), 0);
    assert_true(exists("%s/o5/y.gradcam.png", tmp) && exists("%s/o5/top.gradcam.png", tmp));

    /* --skip-existing: only what is missing is done */
    snprintf(path, sizeof path, "%s/o2/b/x.gradcam.png", tmp);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(run("cam -w %s -r %s/in -o %s/o2 --npy --skip-existing", wmb, tmp, tmp), 0);
    assert_non_null(strstr(err_text, "3 of 4 images already done, 1 to do"));
    assert_non_null(strstr(out_text, "in/b/x.png: class"));
    assert_null(strstr(out_text, "in/a/x.png"));
    assert_true(exists("%s", path));

    /* --annotate --svg --scale: a larger PNG and an SVG with text and an
     * embedded picture */
    assert_int_equal(run("cam -w %s %s/in/top.png -o %s/o6 --annotate --svg --scale 2", wmb,
                         tmp, tmp), 0);
    kdc_image *im = NULL;
    snprintf(path, sizeof path, "%s/o6/top.gradcam.png", tmp);
    assert_int_equal(kdc_image_load(path, &im), KDC_OK);
    assert_true(im->width == 2 * (224 + 12) && im->height > 2 * (224 + 12));
    kdc_image_destroy(im);
    snprintf(path, sizeof path, "%s/o6/top.gradcam.svg", tmp);
    size_t len = 0;
    f = fopen(path, "rb");
    assert_non_null(f);
    static char svg[1 << 20];
    len = fread(svg, 1, sizeof svg - 1, f);
    fclose(f);
    svg[len] = '\0';
    assert_non_null(strstr(svg, "<svg "));
    assert_non_null(strstr(svg, "data:image/png;base64,iVBORw0KGgo"));
    assert_non_null(strstr(svg, ">mobilenetv1  gradcam at model.13</text>"));
    assert_non_null(strstr(svg, "p=0."));

    /* small images: a warning, or with --min-size a one-line refusal */
    snprintf(path, sizeof path, "%s/tiny.png", tmp);
    shape_png(path, 4, 16);
    assert_int_equal(run("cam -w %s %s -o %s/o7", wmb, path, tmp), 0);
    assert_non_null(strstr(err_text, "warning:"));
    assert_non_null(strstr(err_text, "much smaller than the 224x224 crop"));
    expect_error(run("cam -w %s %s -o %s/o7 --min-size 32", wmb, path, tmp),
                 "smaller than --min-size 32");
    /* inputs that do not exist, empty folders, bad options */
    expect_error(run("cam -w %s '%s/in/*.jpg' -o %s/o8", wmb, tmp, tmp), "no file matches");
    expect_error(run("cam -w %s %s/in/a/nothing.png -o %s/o8", wmb, tmp, tmp), "nothing.png");
    snprintf(path, sizeof path, "mkdir -p %s/empty", tmp);
    assert_int_equal(system(path), 0);
    expect_error(run("cam -w %s %s/empty -o %s/o8", wmb, tmp, tmp), "no image in this folder");
    expect_error(run("cam -w %s %s/in --batch 0 -o %s/o8", wmb, tmp, tmp), "--batch");
    expect_error(run("cam -w %s %s/in --scale 9 -o %s/o8", wmb, tmp, tmp), "--scale");

    /* --colormap: another picture of the same map; an unknown name refused */
    assert_int_equal(run("cam -w %s %s/in/top.png -o %s/o9", wmb, tmp, tmp), 0);
    assert_int_equal(run("cam -w %s %s/in/top.png -o %s/o10 --colormap viridis", wmb, tmp, tmp),
                     0);
    kdc_image *jet = NULL, *vir = NULL;
    snprintf(path, sizeof path, "%s/o9/top.gradcam.png", tmp);
    assert_int_equal(kdc_image_load(path, &jet), KDC_OK);
    snprintf(path, sizeof path, "%s/o10/top.gradcam.png", tmp);
    assert_int_equal(kdc_image_load(path, &vir), KDC_OK);
    assert_int_equal(jet->width, vir->width);
    assert_int_equal(jet->height, vir->height);
    assert_true(memcmp(jet->rgb, vir->rgb, (size_t)jet->width * jet->height * 3) != 0);
    kdc_image_destroy(jet);
    kdc_image_destroy(vir);
    expect_error(run("cam -w %s %s/in/top.png -o %s/o8 --colormap parula", wmb, tmp, tmp),
                 "unknown colormap 'parula'");
}

static void test_compare_options(void **state)
{
    (void)state;
    make_tree();
    /* --layer: @LAYER in the spec, or --layer per model in order: the same */
    assert_int_equal(run("compare --model T=%s@layer3 --model S=%s@model.11 -r %s/in -o %s/c1 "
                         "--npy --json --svg", wrn, wmb, tmp, tmp), 0);
    assert_non_null(strstr(out_text, "\"layer\":\"layer3\""));
    assert_non_null(strstr(out_text, "\"layer\":\"model.11\""));
    assert_true(exists("%s/c1/b/c/y.compare.png", tmp) && exists("%s/c1/b/c/y.compare.svg", tmp));
    assert_int_equal(run("compare --model T=%s --model S=%s --layer layer3 --layer model.11 "
                         "%s/in/b/c/y.png -o %s/c2 --npy", wrn, wmb, tmp, tmp), 0);
    float *a = npy("%s/c1/b/c/y.S.gradcam.npy", tmp), *b = npy("%s/c2/y.S.gradcam.npy", tmp);
    assert_memory_equal(a, b, (size_t)224 * 224 * sizeof *a);
    /* the student's map is `kdcam cam`'s at that layer (same crop) */
    assert_int_equal(run("cam -w %s %s/in/b/c/y.png --layer model.11 --npy -o %s/c3", wmb, tmp,
                         tmp), 0);
    float *c = npy("%s/c3/y.gradcam.npy", tmp);
    assert_memory_equal(a, c, (size_t)224 * 224 * sizeof *a);
    kdc_free(a);
    kdc_free(b);
    kdc_free(c);
    /* --grid: one figure, a row per model and one of inputs */
    assert_int_equal(run("compare --model T=%s@layer3 --model S=%s@model.11 -r %s/in -o %s/c4 "
                         "--grid --norm shared --heatmap-only --scale 2", wrn, wmb, tmp, tmp), 0);
    assert_true(exists("%s/c4/grid.gradcam.png", tmp));
    assert_false(exists("%s/c4/top.compare.png", tmp));
    /* errors name the layer asked for */
    expect_error(run("compare --model T=%s@layer9 --model S=%s %s/in/top.png -o %s/c5", wrn, wmb,
                     tmp, tmp), "layer9");
    expect_error(run("compare --model T=%s --model S=%s --layer a --layer b --layer c "
                     "%s/in/top.png -o %s/c5", wrn, wmb, tmp, tmp), "3 --layer for 2 models");
    expect_error(run("compare --model T=%s %s/in/top.png --norm both -o %s/c5", wrn, tmp, tmp),
                 "--norm");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cam_inputs),
        cmocka_unit_test(test_compare_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
