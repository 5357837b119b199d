/* test_shapes_detect.c - the detection images of the shapes dataset
 * (kdc_shapes_render_detection) and `kdcam shapes --detection`: labels
 * agree with the visible-pixel mask, the set has what the issue asks for
 * (several objects, small ones, overlaps, every class), images are pinned,
 * and instances.json is a COCO file that kdc_coco_read reads back to the
 * same boxes, on which the ground truth scores AP 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cliexec.h"
#include "kdcam.h"

/* tests/test_shapes_detect.c's pin (see test_pinned_checksum) */
#define PINNED_DETECTION 0x3c79c8d43de4df80ULL

/* the labels of an S x S image against its mask: each object's box is
 * tight around the pixels marked 1 + its index, its area their count, and
 * no pixel names an object that is not there */
static void assert_labels_of_mask(const kdc_shapes_objects *ob, const unsigned char *m, int S)
{
    assert_true(ob->n >= 1 && ob->n <= KDC_SHAPES_MAX_OBJECTS);
    assert_true(ob->ndecoys >= 0 && ob->ndecoys <= 2);
    for (int j = 0; j < ob->n; j++) {
        int x0 = S, y0 = S, x1 = -1, y1 = -1, area = 0;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int v = m[y * S + x];
                assert_true(v <= ob->n);
                if (v != j + 1)
                    continue;
                area++;
                x0 = x < x0 ? x : x0;
                y0 = y < y0 ? y : y0;
                x1 = x > x1 ? x : x1;
                y1 = y > y1 ? y : y1;
            }
        assert_true(ob->cls[j] >= 0 && ob->cls[j] < 10);
        assert_true(area >= 1);
        assert_int_equal(ob->area[j], area);
        assert_int_equal(ob->box[j][0], x0);
        assert_int_equal(ob->box[j][1], y0);
        assert_int_equal(ob->box[j][2], x1 + 1);
        assert_int_equal(ob->box[j][3], y1 + 1);
        assert_true(ob->diameter[j] >= 10.0f && ob->diameter[j] <= 0.5f * S + 1e-3f);
        if (j > 0) /* painted largest first */
            assert_true(ob->diameter[j] <= ob->diameter[j - 1]);
    }
}

static void test_labels_and_mix(void **state)
{
    (void)state;
    enum { S = 256, IMAGES = 200 };
    unsigned char *m = malloc(S * S);
    assert_non_null(m);
    int objects = 0, small = 0, overlap_images = 0, classes[10] = {0}, counts[7] = {0};
    for (int i = 0; i < IMAGES; i++) {
        kdc_image *im;
        kdc_shapes_objects ob;
        assert_int_equal(kdc_shapes_render_detection(5, (uint64_t)i, S, &im, &ob, m), KDC_OK);
        assert_int_equal(im->width, S);
        assert_labels_of_mask(&ob, m, S);
        int ov = 0;
        for (int j = 0; j < ob.n; j++) {
            const int *a = ob.box[j];
            classes[ob.cls[j]]++;
            small += ob.area[j] < 32 * 32;
            for (int k = j + 1; k < ob.n; k++) {
                const int *b = ob.box[k];
                ov |= a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
            }
        }
        objects += ob.n;
        counts[ob.n]++;
        overlap_images += ov;
        kdc_image_destroy(im);
    }
    free(m);
    printf("# %d images: %d objects, %d small (area < 32^2), %d images with overlapping "
           "boxes\n", IMAGES, objects, small, overlap_images);
    assert_true(objects >= 3 * IMAGES);
    assert_true(small >= objects / 5);
    assert_true(overlap_images >= IMAGES / 5);
    for (int c = 0; c < 10; c++)
        assert_true(classes[c] >= objects / 30);
    for (int n = 2; n <= KDC_SHAPES_MAX_OBJECTS; n++)
        assert_true(counts[n] > 0);
}

static void test_deterministic(void **state)
{
    (void)state;
    enum { S = 128 };
    kdc_image *a, *b, *c;
    kdc_shapes_objects oa, ob, oc;
    assert_int_equal(kdc_shapes_render_detection(9, 4, S, &a, &oa, NULL), KDC_OK);
    assert_int_equal(kdc_shapes_render_detection(9, 4, S, &b, &ob, NULL), KDC_OK);
    assert_int_equal(kdc_shapes_render_detection(9, 5, S, &c, &oc, NULL), KDC_OK);
    assert_memory_equal(a->rgb, b->rgb, (size_t)S * S * 3);
    assert_memory_equal(&oa, &ob, sizeof oa);
    assert_memory_not_equal(a->rgb, c->rgb, (size_t)S * S * 3);
    kdc_image_destroy(a);
    kdc_image_destroy(b);
    kdc_image_destroy(c);
    assert_int_equal(kdc_shapes_render_detection(9, 4, 63, &a, NULL, NULL),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_null(a);
    assert_int_equal(kdc_shapes_render_detection(9, 4, S, NULL, NULL, NULL),
                     KDC_ERR_INVALID_ARGUMENT);
}

/* FNV-1a of images 0..3 of seed 1 at 128 px: pixels, mask, labels. The
 * drawing uses no libm and no fused multiply-adds (shapes_internal.h), so
 * this holds on every IEEE-754 machine; a change to the set changes it. */
static void test_pinned_checksum(void **state)
{
    (void)state;
    enum { S = 128 };
    uint64_t h = 0xCBF29CE484222325ULL;
    unsigned char *m = malloc(S * S);
    assert_non_null(m);
    for (int i = 0; i < 4; i++) {
        kdc_image *im;
        kdc_shapes_objects ob;
        assert_int_equal(kdc_shapes_render_detection(1, (uint64_t)i, S, &im, &ob, m), KDC_OK);
        const unsigned char *parts[3] = {im->rgb, m, NULL};
        const size_t lens[3] = {(size_t)S * S * 3, (size_t)S * S, 0};
        for (int p = 0; parts[p]; p++)
            for (size_t k = 0; k < lens[p]; k++)
                h = (h ^ parts[p][k]) * 0x100000001B3ULL;
        for (int j = 0; j < ob.n; j++) {
            int v[6] = {ob.cls[j], ob.box[j][0], ob.box[j][1], ob.box[j][2], ob.box[j][3],
                        ob.area[j]};
            for (int k = 0; k < 6; k++)
                h = (h ^ (uint64_t)(unsigned)v[k]) * 0x100000001B3ULL;
        }
        kdc_image_destroy(im);
    }
    free(m);
    printf("# pinned: 0x%016llx\n", (unsigned long long)h);
    assert_true(h == PINNED_DETECTION);
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

/* kdcam shapes --detection: instances.json read back by kdc_coco_read has
 * every image and every object the library draws, category_id = class + 1,
 * bbox [x, y, w, h] of the visible box; scored against itself, AP 1. */
static void test_cli(void **state)
{
    (void)state;
    enum { S = 128, IMAGES = 12, START = 40 };
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/det", cliexec_dir());
    assert_int_equal(cliexec_run("shapes --detection -n %d --seed 3 --size %d --start %d -o %s",
                                 IMAGES, S, START, dir),
                     0);
    snprintf(path, sizeof path, "%s/instances.json", dir);
    kdc_coco *gt = NULL;
    if (kdc_coco_read(path, &gt))
        fail_msg("%s", kdc_last_error());
    assert_int_equal(gt->nimages, IMAGES);
    assert_int_equal(gt->ncategories, 10);
    for (int c = 0; c < 10; c++) {
        assert_int_equal(gt->categories[c].id, c + 1);
        assert_string_equal(gt->categories[c].name, kdc_shapes_class_name(c));
    }
    size_t a = 0;
    for (int i = 0; i < IMAGES; i++) {
        char file[32];
        snprintf(file, sizeof file, "%06d.png", START + i);
        assert_int_equal(gt->images[i].id, START + i);
        assert_string_equal(gt->images[i].file_name, file);
        assert_int_equal(gt->images[i].width, S);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        kdc_image *disk, *im;
        kdc_shapes_objects ob;
        assert_int_equal(kdc_image_load(path, &disk), KDC_OK);
        assert_int_equal(kdc_shapes_render_detection(3, (uint64_t)(START + i), S, &im, &ob,
                                                     NULL),
                         KDC_OK);
        assert_memory_equal(disk->rgb, im->rgb, (size_t)S * S * 3);
        kdc_image_destroy(disk);
        kdc_image_destroy(im);
        for (int j = 0; j < ob.n; j++, a++) {
            assert_true(a < gt->nannotations);
            const kdc_coco_box *g = &gt->annotations[a];
            assert_int_equal(g->image_id, START + i);
            assert_int_equal(g->category_id, ob.cls[j] + 1);
            assert_true(g->bbox[0] == ob.box[j][0] && g->bbox[1] == ob.box[j][1]);
            assert_true(g->bbox[2] == ob.box[j][2] - ob.box[j][0]);
            assert_true(g->bbox[3] == ob.box[j][3] - ob.box[j][1]);
            assert_true(g->area == ob.area[j] && g->iscrowd == 0);
        }
    }
    assert_int_equal(a, gt->nannotations);
    double st[KDC_COCO_NSTATS];
    assert_int_equal(kdc_coco_eval_bbox(gt, gt->annotations, gt->nannotations, st), KDC_OK);
    assert_true(st[0] == 1.0 && st[1] == 1.0 && st[8] == 1.0);
    kdc_coco_free(gt);
    cliexec_expect_error(cliexec_run("shapes --detection --masks -n 1 --seed 1 -o %s", dir),
                         "--detection takes no --masks");
    cliexec_expect_error(
        cliexec_run("shapes --detection --style hard -n 1 --seed 1 -o %s", dir),
        "--detection takes no --style");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_and_mix),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_pinned_checksum),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
