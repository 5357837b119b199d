/* kdcam.h - the public API of libkdcam.
 *
 * libkdcam runs ResNet50/101/152 and MobileNetV1 forward passes in plain C
 * from PyTorch-trained weights (safetensors) and returns the activation of
 * any layer, named by its PyTorch module path.
 *
 * Conventions
 *  - Every fallible call returns a kdc_status. On failure, kdc_last_error()
 *    returns a one-line message naming what failed (file, tensor, layer,
 *    shape). The message is per thread and stays valid until the next failing
 *    libkdcam call on the same thread.
 *  - The library never prints, exits or aborts on bad input.
 *  - Handles are opaque. kdc_X_load/create make one, kdc_X_destroy frees it
 *    and accepts NULL.
 *  - Tensors at the API are float32, NCHW, contiguous. The internal layout
 *    is private; conversion happens at this boundary.
 *  - A loaded kdc_model is immutable: several threads may share one model,
 *    each with its own kdc_run.
 */
#ifndef KDCAM_H
#define KDCAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KDC_BUILDING_LIBRARY) && defined(__GNUC__)
#define KDC_API __attribute__((visibility("default")))
#else
#define KDC_API
#endif

#define KDC_VERSION_MAJOR 0
#define KDC_VERSION_MINOR 1
#define KDC_VERSION_PATCH 0
#define KDC_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ */
/* Status and errors                                                   */

typedef enum kdc_status {
    KDC_OK = 0,
    KDC_ERR_INVALID_ARGUMENT, /* a NULL pointer, a bad option value        */
    KDC_ERR_IO,               /* a file could not be opened, read, written */
    KDC_ERR_FORMAT,           /* a file is malformed (safetensors, image, npy) */
    KDC_ERR_WEIGHTS,          /* missing, unknown or wrongly shaped tensor */
    KDC_ERR_UNSUPPORTED,      /* valid but not supported (dtype, architecture) */
    KDC_ERR_SHAPE,            /* an input shape the network cannot take    */
    KDC_ERR_NOT_FOUND,        /* an unknown layer name                      */
    KDC_ERR_NO_MEMORY,        /* an allocation failed                       */
    KDC_ERR_STATE             /* a call out of order (e.g. no forward yet)  */
} kdc_status;

/* A static, human-readable name of a status ("KDC_ERR_WEIGHTS"). */
KDC_API const char *kdc_status_string(kdc_status status);

/* The message of the last failing call on this thread ("" if none).
 * Valid until the next failing libkdcam call on the same thread. */
KDC_API const char *kdc_last_error(void);

/* Version of the library that is linked ("0.1.0"). */
KDC_API const char *kdc_version(void);

/* Frees memory that a libkdcam call returned to the caller (documented at
 * each such call). Accepts NULL. */
KDC_API void kdc_free(void *ptr);

/* ------------------------------------------------------------------ */
/* Models                                                              */

typedef struct kdc_model kdc_model;

/* What the ReLUs of a model clamp to. */
typedef enum kdc_activation {
    KDC_ACT_DEFAULT = 0, /* what the architecture / key scheme implies      */
    KDC_ACT_RELU,
    KDC_ACT_RELU6
} kdc_activation;

typedef struct kdc_model_options {
    /* "resnet50", "resnet101", "resnet152", "mobilenetv1", or NULL/"auto"
     * to detect the architecture from the tensor names and shapes. */
    const char *arch;
    /* BatchNorm epsilon; a negative value means the default 1e-5.
     * torchvision detector checkpoints use 0.0. */
    float bn_eps;
    /* Activation override; KDC_ACT_DEFAULT keeps the scheme's own
     * (ReLU for torchvision ResNet and the KD MobileNetV1, ReLU6 for timm
     * mobilenetv1_100). */
    kdc_activation activation;
    /* Prefix under which the model's tensors sit ("student.", ...). NULL:
     * found from the keys (wrappers such as "module." or "student." are
     * stripped); an error if the file holds several models. */
    const char *prefix;
    /* Zero (default): every tensor in the file must belong to the model
     * (BatchNorm num_batches_tracked excepted), an unknown tensor is a
     * KDC_ERR_WEIGHTS error. Non-zero: tensors the model does not use are
     * ignored (a distillation checkpoint holding a teacher as well, say). */
    int allow_unused;
} kdc_model_options;

/* Fills *opt with the defaults (arch auto, eps 1e-5, ...). */
KDC_API void kdc_model_options_init(kdc_model_options *opt);

/* Loads a safetensors file and builds the model it describes.
 * opt may be NULL (defaults). Wrapping prefixes such as "module.",
 * "student.", "model." (where not part of the scheme), "backbone." are
 * stripped. Parameters are converted to float32 and the file is closed. On success *out owns the model; free it with
 * kdc_model_destroy. Errors: KDC_ERR_IO, KDC_ERR_FORMAT (the safetensors
 * rule that failed is named), KDC_ERR_WEIGHTS (tensor name, got and expected
 * shape), KDC_ERR_UNSUPPORTED, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_model_load(const char *path, const kdc_model_options *opt,
                                  kdc_model **out);
KDC_API void kdc_model_destroy(kdc_model *model);

/* The architecture name ("resnet50", "mobilenetv1", ...). Valid while the
 * model lives. */
KDC_API const char *kdc_model_arch(const kdc_model *model);
/* Number of output classes (rows of the fc / classifier weight). */
KDC_API int kdc_model_num_classes(const kdc_model *model);

/* Addressable layers, in execution order. Index 0 is "input". */
KDC_API int kdc_model_num_layers(const kdc_model *model);
/* Name of layer i (PyTorch module path); NULL if out of range. */
KDC_API const char *kdc_model_layer_name(const kdc_model *model, int layer);
/* Index of a layer by name; KDC_ERR_NOT_FOUND if there is none. */
KDC_API kdc_status kdc_model_find_layer(const kdc_model *model, const char *name,
                                        int *layer);
/* Shape (C, H, W) of a layer's output for an input of in_h x in_w.
 * KDC_ERR_SHAPE if the input is too small for the network. */
KDC_API kdc_status kdc_model_layer_shape(const kdc_model *model, int layer, int in_h,
                                         int in_w, int chw[3]);
/* Smallest input height/width the network accepts. */
KDC_API int kdc_model_min_input(const kdc_model *model);

/* ------------------------------------------------------------------ */
/* Images and preprocessing                                            */

/* An 8-bit RGB image, rows top to bottom, pixels interleaved (RGBRGB...). */
typedef struct kdc_image {
    int width, height;
    unsigned char *rgb; /* width * height * 3 bytes, owned by the image */
} kdc_image;

/* Loads a JPEG/PNG/BMP/... file through stb_image. Grayscale is expanded to
 * RGB and alpha is dropped, as PIL's convert("RGB") does.
 * *out is freed with kdc_image_destroy.
 * Errors: KDC_ERR_IO (cannot open), KDC_ERR_FORMAT (truncated or corrupt). */
KDC_API kdc_status kdc_image_load(const char *path, kdc_image **out);
KDC_API void kdc_image_destroy(kdc_image *image);

/* Allocates an image of the given size (pixels zeroed). */
KDC_API kdc_status kdc_image_create(int width, int height, kdc_image **out);

/* Resizes with PIL's antialiased bilinear filter (what torchvision's
 * Resize uses on PIL images). *out is a new image. */
KDC_API kdc_status kdc_image_resize(const kdc_image *src, int width, int height,
                                    kdc_image **out);

/* Writes a PNG file. */
KDC_API kdc_status kdc_image_save_png(const kdc_image *image, const char *path);

typedef struct kdc_preprocess {
    int resize_short; /* shorter side resized to this (0: no resize)        */
    int crop_h, crop_w; /* centre crop after resizing (0: no crop)          */
    float mean[3];      /* per channel, on the 0..1 scale                    */
    float std[3];
} kdc_preprocess;

/* torchvision ImageNet evaluation: resize 256, crop 224, ImageNet mean/std. */
KDC_API void kdc_preprocess_imagenet(kdc_preprocess *pp);
/* The model's own preprocessing (timm mobilenetv1_100: mean = std = 0.5). */
KDC_API void kdc_model_preprocess(const kdc_model *model, kdc_preprocess *pp);

/* Output size (h, w) that kdc_preprocess_image produces for an image. */
KDC_API kdc_status kdc_preprocess_size(const kdc_preprocess *pp, int img_w, int img_h,
                                       int *out_h, int *out_w);
/* Resizes, crops and normalises an image into dst (3 x H x W floats, CHW),
 * H and W as kdc_preprocess_size says. If crop_image is not NULL, it
 * receives the resized and cropped 8-bit image (free with
 * kdc_image_destroy). */
KDC_API kdc_status kdc_preprocess_image(const kdc_image *image, const kdc_preprocess *pp,
                                        float *dst, kdc_image **crop_image);

/* ------------------------------------------------------------------ */
/* Running a model                                                     */

typedef struct kdc_run kdc_run;

typedef struct kdc_run_options {
    int threads; /* worker threads for this run (>= 1; 0 means 1) */
} kdc_run_options;

/* Creates a run (workspace) for a model. The model must outlive the run.
 * opt may be NULL. Results are bitwise identical for any thread count. */
KDC_API kdc_status kdc_run_create(const kdc_model *model, const kdc_run_options *opt,
                                  kdc_run **out);
KDC_API void kdc_run_destroy(kdc_run *run);

/* Runs the network on input (N x 3 x H x W floats, NCHW, preprocessed).
 * keep lists the layer indices whose outputs should stay readable after
 * the call (the last layer, the logits, always does); nkeep may be 0.
 * Errors: KDC_ERR_SHAPE (input too small, wrong channels), KDC_ERR_NOT_FOUND
 * (a layer index out of range), KDC_ERR_INVALID_ARGUMENT (non-finite input),
 * KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_run_forward(kdc_run *run, const float *input, int n, int h, int w,
                                   const int *keep, int nkeep);

/* Shape (N, C, H, W) of a kept layer's output from the last forward.
 * KDC_ERR_STATE if the layer was not kept. Fully connected outputs have
 * H = W = 1. */
KDC_API kdc_status kdc_run_layer_shape(const kdc_run *run, int layer, int nchw[4]);
/* Copies a kept layer's output into dst (NCHW; count floats available).
 * KDC_ERR_INVALID_ARGUMENT if count is too small. */
KDC_API kdc_status kdc_run_read_layer(const kdc_run *run, int layer, float *dst,
                                      size_t count);

/* ------------------------------------------------------------------ */
/* Classes                                                             */

/* Name of ImageNet-1k class c (0..999), or NULL. From torchvision's list. */
KDC_API const char *kdc_imagenet_class_name(int c);

/* ------------------------------------------------------------------ */
/* NumPy .npy files (float32, C order)                                 */

/* Writes a float32 array of ndim (1..8) dims. Written to a temporary file
 * in the same directory and renamed, so no half-written file remains. */
KDC_API kdc_status kdc_npy_save(const char *path, const float *data, int ndim,
                                const int64_t *dims);
/* Reads a float32 (<f4) C-order array; *data is freed with kdc_free.
 * dims must hold 8 entries. Errors name the file and what is wrong. */
KDC_API kdc_status kdc_npy_load(const char *path, float **data, int *ndim, int64_t dims[8]);

#ifdef __cplusplus
}
#endif
#endif /* KDCAM_H */
