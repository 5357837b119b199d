/* forward.c - load a model, preprocess a photo, run it, read a layer.
 * usage: forward WEIGHTS.safetensors IMAGE [LAYER]
 * Prints the top-1 class and the shape and mean of LAYER (default layer4,
 * or model.13 for MobileNetV1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kdcam.h>

static int fail(const char *what)
{
    fprintf(stderr, "forward: %s: %s\n", what, kdc_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    kdc_model *model = NULL;
    kdc_run *run = NULL;
    kdc_image *img = NULL;
    float *x = NULL, *act = NULL, *logits = NULL;
    int rc = 1, layer, h, w, shape[4];
    kdc_preprocess pp;

    if (argc < 3) {
        fprintf(stderr, "usage: forward WEIGHTS.safetensors IMAGE [LAYER]\n");
        return 2;
    }
    if (kdc_model_load(argv[1], NULL, &model))   /* NULL: default options */
        return fail(argv[1]);
    const char *name = argc > 3 ? argv[3]
                       : strcmp(kdc_model_arch(model), "mobilenetv1") ? "layer4" : "model.13";
    if (kdc_model_find_layer(model, name, &layer)) {
        fail("layer");
        goto out;
    }
    /* the model's own preprocessing: resize, centre crop, normalise */
    kdc_model_preprocess(model, &pp);
    if (kdc_image_load(argv[2], &img) || kdc_preprocess_size(&pp, img->width, img->height, &h, &w)) {
        fail(argv[2]);
        goto out;
    }
    x = malloc(3 * (size_t)h * w * sizeof *x);
    if (!x || kdc_preprocess_image(img, &pp, x, NULL)) {
        fail("preprocess");
        goto out;
    }
    /* one run (workspace) per thread; the model can be shared */
    if (kdc_run_create(model, NULL, &run) || kdc_run_forward(run, x, 1, h, w, &layer, 1)) {
        fail("forward");
        goto out;
    }
    kdc_run_layer_shape(run, layer, shape);
    size_t count = (size_t)shape[0] * shape[1] * shape[2] * shape[3];
    int classes = kdc_model_num_classes(model);
    act = malloc(count * sizeof *act);
    logits = malloc((size_t)classes * sizeof *logits);
    if (!act || !logits || kdc_run_read_layer(run, layer, act, count) ||
        kdc_run_read_layer(run, kdc_model_num_layers(model) - 1, logits, (size_t)classes)) {
        fail("read");
        goto out;
    }
    int top = 0;
    double mean = 0;
    for (int c = 1; c < classes; c++)
        top = logits[c] > logits[top] ? c : top;
    for (size_t i = 0; i < count; i++)
        mean += act[i] / (double)count;
    printf("%s: %s, top-1 class %d (%s), %s %dx%dx%dx%d mean %.4f\n", argv[2],
           kdc_model_arch(model), top, classes == 1000 ? kdc_imagenet_class_name(top) : "-",
           name, shape[0], shape[1], shape[2], shape[3], mean);
    rc = 0;
out:
    free(logits);
    free(act);
    free(x);
    kdc_image_destroy(img);
    kdc_run_destroy(run);
    kdc_model_destroy(model);
    return rc;
}
