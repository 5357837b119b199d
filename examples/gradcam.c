/* gradcam.c - Grad-CAM of one photo in a few calls of the public API.
 * usage: gradcam WEIGHTS.safetensors IMAGE OUT.png [LAYER] */
#include <stdio.h>
#include <stdlib.h>

#include <kdcam.h>

int main(int argc, char **argv)
{
    kdc_model *model = NULL;
    kdc_run *run = NULL;
    kdc_image *img = NULL, *crop = NULL, *overlay = NULL;
    kdc_cam_result *cam = NULL;
    kdc_preprocess pp;
    float *x = NULL;
    int layer, h, w, rc = 1;

    if (argc < 4) {
        fprintf(stderr, "usage: gradcam WEIGHTS.safetensors IMAGE OUT.png [LAYER]\n");
        return 2;
    }
    if (kdc_model_load(argv[1], NULL, &model) ||
        kdc_model_find_layer(model, argc > 4 ? argv[4] : "layer4", &layer) ||
        kdc_image_load(argv[2], &img))
        goto fail;
    kdc_model_preprocess(model, &pp);
    if (kdc_preprocess_size(&pp, img->width, img->height, &h, &w) ||
        !(x = malloc(3 * (size_t)h * w * sizeof *x)) ||
        kdc_preprocess_image(img, &pp, x, &crop) ||   /* crop: the picture the model sees */
        kdc_run_create(model, NULL, &run))
        goto fail;

    /* Grad-CAM of the top-1 class (a zeroed target) at one layer */
    kdc_cam_options opt = {.method = KDC_CAM_GRADCAM, .layers = &layer, .nlayers = 1};
    if (kdc_cam_compute(run, x, 1, h, w, &opt, &cam) ||
        kdc_overlay(crop, cam->map, &overlay) ||
        kdc_image_save_png(overlay, argv[3]))
        goto fail;
    printf("%s: class %d, raw map %dx%d, wrote %s\n", argv[2], cam->classes[0], cam->raw_h[0],
           cam->raw_w[0], argv[3]);
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "gradcam: %s\n", kdc_last_error());
    kdc_cam_result_destroy(cam);
    kdc_image_destroy(overlay);
    kdc_image_destroy(crop);
    kdc_image_destroy(img);
    free(x);
    kdc_run_destroy(run);
    kdc_model_destroy(model);
    return rc;
}
