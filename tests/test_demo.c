/* test_demo.c - end-to-end check of the bundled demo models (weights/demo/).
 *
 * The truth is known: images of the procedural shapes dataset hold one object
 * of a known class inside a known box. On held-out images (seed 3, which
 * tools/train_demo.py never trains on) the bundled teacher must name the
 * class and its Grad-CAM at layer4 must peak inside the box, through the
 * whole pipeline a user runs: weights file and its metadata -> model ->
 * the model's own preprocessing -> forward and backward -> CAM upsampled to
 * the image -> maximum. A regression anywhere on that path (weights,
 * preprocessing, kernels, gradients, resizing) shows up here.
 *
 * The thresholds sit below what the bundled teacher measures on these 64
 * images (64 of 64 classes, 59 of 64 maxima in the box; on 2000 held-out
 * images 0.894 of maxima in the box, weights/demo/README.md) by about two
 * standard deviations of a 64-image sample (2.5 images), and far above a
 * pipeline that scrambles the map: chance is 0.1 for the class and 0.27
 * for the pointing game (the boxes' mean share of the image), i.e. 6 and 17
 * of 64. Not above every wrong map: the image's centre lies in 62 of these
 * 64 boxes, so a map that always peaked there would pass; that the
 * map is the right one is test_cam_models' job (against PyTorch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kdcam.h"

#define DEMO_SIZE 192 /* tools/train_demo.py --size; the models' kdcam.preprocess */
#define NIMG 64
#define MIN_CORRECT 62 /* of NIMG */
#define MIN_HITS 54    /* of NIMG */

static const char *const files[] = {"teacher", "student", "student_kd", "student_ickd"};

/* Every bundled file loads, is the architecture it claims, and names the
 * dataset's classes and its preprocessing in its metadata. */
static void demo_files_load(void **state)
{
    (void)state;
    for (int f = 0; f < 4; f++) {
        char path[128];
        snprintf(path, sizeof path, "weights/demo/%s.safetensors", files[f]);
        kdc_model *m;
        if (kdc_model_load(path, NULL, &m) != KDC_OK)
            fail_msg("%s: %s", path, kdc_last_error());
        assert_string_equal(kdc_model_arch(m), f == 0 ? "resnet50" : "mobilenetv1");
        assert_int_equal(kdc_model_num_classes(m), kdc_shapes_num_classes());
        for (int c = 0; c < kdc_shapes_num_classes(); c++) {
            const char *name = kdc_model_class_name(m, c);
            if (!name || strcmp(name, kdc_shapes_class_name(c)))
                fail_msg("%s: class %d is '%s', the dataset's is '%s'", path, c,
                         name ? name : "(none)", kdc_shapes_class_name(c));
        }
        kdc_preprocess pp;
        kdc_model_preprocess(m, &pp);
        assert_int_equal(pp.resize_short, DEMO_SIZE);
        assert_int_equal(pp.crop_h, DEMO_SIZE);
        assert_int_equal(pp.crop_w, DEMO_SIZE);
        kdc_model_destroy(m);
    }
}

static void teacher_points_at_objects(void **state)
{
    (void)state;
    const char *path = "weights/demo/teacher.safetensors";
    kdc_model *m;
    kdc_run *run;
    int layer;
    kdc_preprocess pp;
    if (kdc_model_load(path, NULL, &m) != KDC_OK)
        fail_msg("%s: %s", path, kdc_last_error());
    assert_int_equal(kdc_model_find_layer(m, "layer4", &layer), KDC_OK);
    kdc_run_options ro = {.threads = 2};
    assert_int_equal(kdc_run_create(m, &ro, &run), KDC_OK);
    kdc_model_preprocess(m, &pp);
    const int S = DEMO_SIZE;
    float *x = malloc((size_t)3 * S * S * sizeof *x);
    assert_non_null(x);
    int correct = 0, hits = 0;
    for (int i = 0; i < NIMG; i++) {
        kdc_image *im;
        kdc_shape_info info;
        /* the classic style: the one the bundled models were trained on */
        assert_int_equal(
            kdc_shapes_render_ex(3, (uint64_t)i, S, KDC_SHAPES_CLASSIC, &im, &info, NULL), KDC_OK);
        int h, w;
        assert_int_equal(kdc_preprocess_size(&pp, im->width, im->height, &h, &w), KDC_OK);
        assert_true(h == S && w == S);
        assert_int_equal(kdc_preprocess_image(im, &pp, x, NULL), KDC_OK);
        kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &layer, .nlayers = 1};
        kdc_cam_result *res;
        assert_int_equal(kdc_cam_compute(run, x, 1, S, S, &co, &res), KDC_OK);
        int ok = res->classes[0] == info.cls;
        int hit = kdc_map_pointing(res->map, S, S, info.box);
        correct += ok;
        hits += hit;
        printf("  held-out %2d: %-9s predicted %-9s box [%3d %3d %3d %3d]  max in box: %s\n", i,
               kdc_shapes_class_name(info.cls), kdc_model_class_name(m, res->classes[0]),
               info.box[0], info.box[1], info.box[2], info.box[3], hit ? "yes" : "NO");
        kdc_cam_result_destroy(res);
        kdc_image_destroy(im);
    }
    printf("  teacher: %d of %d classes correct (need %d), Grad-CAM maximum inside the box in "
           "%d of %d (need %d)\n", correct, NIMG, MIN_CORRECT, hits, NIMG, MIN_HITS);
    assert_true(correct >= MIN_CORRECT);
    assert_true(hits >= MIN_HITS);
    free(x);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(demo_files_load),
        cmocka_unit_test(teacher_points_at_objects),
    };
    return cmocka_run_group_tests_name("demo", tests, NULL, NULL);
}
