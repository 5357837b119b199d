/* compare.c - a teacher and its students on one photo: a figure with a row
 * per model (input, Grad-CAM, Guided Grad-CAM) and, per student, how close
 * its map is to the teacher's. `kdcam compare` is the full-featured tool;
 * this is the same idea in plain API calls.
 * usage: compare OUT.png IMAGE TEACHER.safetensors STUDENT.safetensors... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kdcam.h>

#define MAXM 8

static int fail(const char *what)
{
    fprintf(stderr, "compare: %s: %s\n", what, kdc_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    static const unsigned char white[3] = {255, 255, 255}, ink[3] = {0, 0, 0};
    kdc_image *img, *fig, *crop[MAXM], *pic;
    float *maps[MAXM], *x, *g;
    int nm = argc - 3, h, w;

    if (argc < 4 || nm > MAXM) {
        fprintf(stderr, "usage: compare OUT.png IMAGE TEACHER.safetensors STUDENT...\n");
        return 2;
    }
    if (kdc_image_load(argv[2], &img))
        return fail(argv[2]);
    for (int i = 0; i < nm; i++) {
        kdc_model *m;
        kdc_run *run;
        kdc_cam_result *cam;
        kdc_preprocess pp;
        int layer;
        if (kdc_model_load(argv[3 + i], NULL, &m))
            return fail(argv[3 + i]);
        const char *ln = strcmp(kdc_model_arch(m), "mobilenetv1") ? "layer4" : "model.13";
        kdc_model_preprocess(m, &pp);
        if (kdc_model_find_layer(m, ln, &layer) ||
            kdc_preprocess_size(&pp, img->width, img->height, &h, &w))
            return fail(argv[3 + i]);
        x = malloc(3 * (size_t)h * w * sizeof *x);
        g = malloc(3 * (size_t)h * w * sizeof *g);
        maps[i] = malloc((size_t)h * w * sizeof **maps);
        kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &layer, .nlayers = 1};
        kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED};
        if (!x || !g || !maps[i] || kdc_preprocess_image(img, &pp, x, &crop[i]) ||
            kdc_run_create(m, NULL, &run) || kdc_cam_compute(run, x, 1, h, w, &co, &cam) ||
            kdc_attribution_compute(run, x, 1, h, w, &ao, g))
            return fail(argv[3 + i]);
        memcpy(maps[i], cam->map, (size_t)h * w * sizeof **maps);
        if (i == 0 && kdc_image_create(3 * w + 40, nm * (h + 30) + 10, &fig))
            return fail("figure");
        if (i == 0)
            kdc_image_fill(fig, 0, 0, fig->width, fig->height, white);
        /* row i: label, input, Grad-CAM overlay, guided backprop x Grad-CAM */
        char label[256];
        snprintf(label, sizeof label, "%s  %s  class %d", i ? "student" : "teacher",
                 kdc_model_arch(m), cam->classes[0]);
        int y = 10 + i * (h + 30);
        kdc_image_draw_text(fig, 10, y, label, 2, ink);
        kdc_image_paste(fig, crop[i], 10, y + 24);
        if (kdc_overlay(crop[i], maps[i], &pic))
            return fail("overlay");
        kdc_image_paste(fig, pic, 20 + w, y + 24);
        kdc_image_destroy(pic);
        for (size_t k = 0; k < 3 * (size_t)h * w; k++)
            g[k] *= maps[i][k % ((size_t)h * w)];
        if (kdc_gradient_image(g, h, w, &pic))
            return fail("guided");
        kdc_image_paste(fig, pic, 30 + 2 * w, y + 24);
        kdc_image_destroy(pic);
        if (i > 0)
            printf("%s vs teacher: pearson %.3f, top-20%% IoU %.3f\n", argv[3 + i],
                   kdc_map_pearson(maps[i], maps[0], (size_t)h * w),
                   kdc_map_iou_top(maps[i], maps[0], (size_t)h * w, 0.2));
        kdc_cam_result_destroy(cam);
        kdc_run_destroy(run);
        kdc_model_destroy(m);
        free(x);
        free(g);
    }
    if (kdc_image_save_png(fig, argv[1]))
        return fail(argv[1]);
    printf("wrote %s\n", argv[1]);
    for (int i = 0; i < nm; i++) {
        kdc_image_destroy(crop[i]);
        free(maps[i]);
    }
    kdc_image_destroy(fig);
    kdc_image_destroy(img);
    return 0;
}
