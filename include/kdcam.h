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
 * each such call). Accepts NULL. It is the C library's free(): calling free()
 * on such memory is equivalent. */
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

/* Extra levels above the last FPN input (see docs/fpn.md). */
typedef enum kdc_fpn_extra {
    KDC_FPN_EXTRA_AUTO = 0,  /* from the tensors: P6/P7 convs if present, else a
                                max-pool level (Faster R-CNN's "pool")        */
    KDC_FPN_EXTRA_NONE,      /* no extra level                                 */
    KDC_FPN_EXTRA_POOL,      /* max_pool2d(P_top, kernel 1, stride 2)          */
    KDC_FPN_EXTRA_ON_INPUT,  /* extra convs read C5                            */
    KDC_FPN_EXTRA_ON_OUTPUT, /* extra convs read the top FPN output            */
    KDC_FPN_EXTRA_ON_LATERAL /* mmdetection: extra convs read the top lateral  */
} kdc_fpn_extra;

/* Which compute kernels a model runs on (chosen once, at load). The SIMD
 * kernels (a packed fp32 GEMM for the dense convolutions and the fully
 * connected layer, depthwise 3x3 kernels for MobileNetV1; docs/kernels.md)
 * differ from the scalar reference kernels by float
 * rounding only (summation order and fused multiply-adds; see
 * docs/architecture.md, "Kernels"); results stay bitwise identical for any
 * thread count whichever is used. */
typedef enum kdc_kernels {
    KDC_KERNELS_AUTO = 0, /* the best this CPU and build have                  */
    KDC_KERNELS_SCALAR,   /* the plain scalar reference kernels                  */
    KDC_KERNELS_AVX2,     /* x86-64 AVX2 + FMA                                   */
    KDC_KERNELS_NEON,     /* aarch64 Advanced SIMD                               */
    KDC_KERNELS_AVX512    /* x86-64 AVX-512F (AVX2 kernels where none of its own) */
} kdc_kernels;

typedef struct kdc_model_options {
    /* "resnet50", "resnet101", "resnet152", "mobilenetv1", "resnet50-fpn",
     * "resnet101-fpn", "resnet152-fpn", or NULL/"auto" to detect the
     * architecture from the tensor names and shapes. */
    const char *arch;
    /* BatchNorm epsilon; a negative value means the default: 1e-5, or 0.0
     * for torchvision detector checkpoints whose body has FrozenBatchNorm2d
     * (no num_batches_tracked tensors), as torchvision sets for its COCO
     * weights. */
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
    /* FPN detectors: extra levels, and (mmdetection's relu_before_extra_convs)
     * a ReLU between extra convs when > 0. */
    kdc_fpn_extra fpn_extra;
    int fpn_relu_extra;
    /* Kernels to run on: KDC_KERNELS_AUTO (default) picks the best the CPU
     * has; asking for an instruction set this CPU or build lacks fails the
     * load with KDC_ERR_UNSUPPORTED. */
    kdc_kernels kernels;
    /* PyTorch checkpoints (.pth, .pt): the dotted key path of the state dict
     * in the checkpoint ("model", "state_dict", "model.student"). NULL or "":
     * the top level if it holds tensors, else the first of the keys
     * state_dict, model, model_state, model_state_dict, student, module, net,
     * ema, followed down. Must be NULL or "" for a safetensors file. */
    const char *key;
    /* Detectors (issue 13): non-zero keeps a RetinaNet head in the file
     * unbuilt (its tensors are listed as ignored, as for other heads), so
     * a forward pass runs the backbone only. Zero (default): a complete
     * RetinaNet head (torchvision or mmdetection) is built on the FPN. */
    int no_head;
} kdc_model_options;

/* Fills *opt with the defaults (arch auto, eps 1e-5, ...). */
KDC_API void kdc_model_options_init(kdc_model_options *opt);

/* Loads a weights file and builds the model it describes: a safetensors
 * file or a PyTorch checkpoint (.pth/.pt, zip or legacy format, told apart
 * by their first bytes; read without running any of its pickled code, see
 * kdc_weights_open). opt may be NULL (defaults). Wrapping prefixes such as "module.",
 * "student.", "model." (where not part of the scheme), "backbone." are
 * stripped. Parameters are converted to float32 and the file is closed. On success *out owns the model; free it with
 * kdc_model_destroy. Errors: KDC_ERR_INVALID_ARGUMENT (unknown arch, eps
 * outside [0, 1), a key for a safetensors file), KDC_ERR_IO, KDC_ERR_FORMAT
 * (the safetensors rule that failed is named; a malformed checkpoint, or one
 * with a call where a tensor should be, named), KDC_ERR_NOT_FOUND (no state
 * dict in a checkpoint, or no such key), KDC_ERR_WEIGHTS (tensor name, got and expected shape;
 * another architecture; unknown tensors), KDC_ERR_UNSUPPORTED (e.g. basic-
 * block ResNets), KDC_ERR_NO_MEMORY. Any tensor prefix ending in '.' in
 * front of the model's keys is accepted as a wrapper. */
KDC_API kdc_status kdc_model_load(const char *path, const kdc_model_options *opt,
                                  kdc_model **out);
KDC_API void kdc_model_destroy(kdc_model *model);

/* ------------------------------------------------------------------ */
/* Weights files                                                        */

/* The tensors of a weights file, without building a model: for listing
 * (kdcam inspect) and converting (kdcam convert). */
typedef struct kdc_weights kdc_weights;

/* Opens a safetensors file or a PyTorch checkpoint (told apart by their
 * first bytes, not the name). A checkpoint is read by a restricted
 * unpickler that builds only dicts, lists, tuples, strings, numbers and
 * tensors; it never calls anything the pickle names. Its state dict is
 * found at key (dotted; see kdc_model_options.key). Errors: KDC_ERR_IO,
 * KDC_ERR_FORMAT (what is malformed; a value on the path to a tensor that
 * kdcam would have to call, such as "a call to posix.system", is named),
 * KDC_ERR_NOT_FOUND (no state dict, no such key), KDC_ERR_INVALID_ARGUMENT
 * (a key for a safetensors file), KDC_ERR_UNSUPPORTED, KDC_ERR_NO_MEMORY.
 * Free with kdc_weights_close (accepts NULL). */
KDC_API kdc_status kdc_weights_open(const char *path, const char *key, kdc_weights **out);
KDC_API void kdc_weights_close(kdc_weights *w);
/* Number of tensors (non-tensor state-dict entries are not counted). */
KDC_API int kdc_weights_count(const kdc_weights *w);
/* Tensor i (0 <= i < count; in the file's order): its name, its dtype as
 * safetensors spells it ("F32", "F16", "BF16", "F64", "I64", "I32", "I16",
 * "I8", "U8", "BOOL"), and its shape (returns the rank, at most 8, or -1 if
 * i is out of range). Strings stay valid until kdc_weights_close. */
KDC_API const char *kdc_weights_name(const kdc_weights *w, int i);
KDC_API const char *kdc_weights_dtype(const kdc_weights *w, int i);
KDC_API int kdc_weights_shape(const kdc_weights *w, int i, int64_t shape[8]);

typedef enum kdc_save_dtype {
    KDC_SAVE_KEEP = 0,   /* every tensor as it is                        */
    KDC_SAVE_F32,        /* floating tensors to float32                  */
    KDC_SAVE_F16         /* floating tensors to float16 (nearest even)   */
} kdc_save_dtype;

/* Writes the tensors as a safetensors file at path (through a temporary
 * file renamed into place: never half a file), in name order, with
 * __metadata__ {"format": "pt"}, as weights/convert.py writes it. prefix
 * (NULL or "": all): only tensors whose names start with it, written
 * without it. Integer tensors are kept as they are. Errors:
 * KDC_ERR_NOT_FOUND (no tensor under prefix), KDC_ERR_FORMAT (two names
 * the same), KDC_ERR_IO, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_weights_save(const kdc_weights *w, const char *path, const char *prefix,
                                    kdc_save_dtype dtype);

/* The architecture name ("resnet50", "mobilenetv1", ...). Valid while the
 * model lives. */
KDC_API const char *kdc_model_arch(const kdc_model *model);
/* The i-th architecture kdc_model_options.arch accepts (i = 0, 1, ...:
 * "resnet50", "resnet101", ..., "resnet152-fpn"), NULL past the last one.
 * A static string. */
KDC_API const char *kdc_model_arch_name(int i);
/* Number of output classes (rows of the fc / classifier weight); 0 for an
 * FPN backbone, which has no classifier, and for a detector, whose head's
 * classes kdc_model_head() gives (kdc_head_info.num_classes). */
KDC_API int kdc_model_num_classes(const kdc_model *model);
/* The kernels the model runs on: "scalar", "avx2", "avx512" or "neon" (see
 * kdc_model_options.kernels). A static string. */
KDC_API const char *kdc_model_kernels(const kdc_model *model);
/* Name of output class c: from the weights file's metadata key
 * "kdcam.classes" (comma-separated names, one per class) when present,
 * else the ImageNet-1k name for a 1000-class model, else NULL. Valid while
 * the model lives. A file may also set "kdcam.preprocess" (see
 * kdc_model_preprocess). */
KDC_API const char *kdc_model_class_name(const kdc_model *model, int c);
/* Tensors of the file that the model does not use and ignored by rule
 * (detection heads of a detector checkpoint): count and names. */
KDC_API int kdc_model_num_ignored(const kdc_model *model);
KDC_API const char *kdc_model_ignored(const kdc_model *model, int i);

/* Addressable layers, in execution order. Index 0 is "input". */
KDC_API int kdc_model_num_layers(const kdc_model *model);
/* Name of layer i (PyTorch module path); NULL if out of range. */
KDC_API const char *kdc_model_layer_name(const kdc_model *model, int layer);
/* Index of a layer by name or alias; KDC_ERR_NOT_FOUND if there is none. */
KDC_API kdc_status kdc_model_find_layer(const kdc_model *model, const char *name,
                                        int *layer);
/* The k-th other name (alias) of a layer, k = 0, 1, ...: e.g. "layer4" for
 * "layer4.2", "model.13.5" for "model.13"; NULL past the last one. */
KDC_API const char *kdc_model_layer_alias(const kdc_model *model, int layer, int k);
/* Shape (C, H, W) of a layer's output for an input of in_h x in_w.
 * KDC_ERR_SHAPE if the input is too small for the network, KDC_ERR_NOT_FOUND
 * for a layer index out of range. */
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

/* Loads a JPEG, PNG or BMP file (other formats are refused). JPEG goes
 * through libjpeg-turbo with Pillow's settings: the pixels of PIL's
 * Image.open(path).convert("RGB"), CMYK included (stb_image in a
 * `make JPEG=stb` build); PNG and BMP through stb_image. Grayscale is
 * expanded to RGB and alpha is dropped, as PIL's convert("RGB") does. The
 * header is read and checked before anything is decoded: a file declaring
 * more than 89,478,485 pixels (PIL's decompression-bomb threshold) is
 * refused; kdc_image_load_ex takes another limit. *out is freed with
 * kdc_image_destroy. Errors: KDC_ERR_IO (cannot open), KDC_ERR_FORMAT
 * (truncated or corrupt), KDC_ERR_UNSUPPORTED (another format, or above the
 * pixel limit), KDC_ERR_NO_MEMORY. docs/security.md. */
KDC_API kdc_status kdc_image_load(const char *path, kdc_image **out);

typedef struct kdc_image_options {
    /* Refuse images of more than this many pixels (width x height) before
     * decoding them; 0 means the default, 89,478,485. Decoding takes about
     * 3 to 6 bytes per pixel. */
    int64_t max_pixels;
} kdc_image_options;

/* Sets the defaults (what kdc_image_load uses). */
KDC_API void kdc_image_options_init(kdc_image_options *opt);

/* kdc_image_load with options (opt may be NULL: the defaults). Errors as
 * kdc_image_load, plus KDC_ERR_INVALID_ARGUMENT for a negative max_pixels. */
KDC_API kdc_status kdc_image_load_ex(const char *path, const kdc_image_options *opt,
                                     kdc_image **out);
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
/* The model's own preprocessing: the architecture's default (ImageNet;
 * timm mobilenetv1_100: resize 235, mean = std = 0.5), overridden field by
 * field by the weights file's metadata key "kdcam.preprocess", e.g.
 * "resize=128 crop=128x128 mean=0.485,0.456,0.406 std=0.229,0.224,0.225"
 * (a malformed value fails kdc_model_load with KDC_ERR_FORMAT). */
KDC_API void kdc_model_preprocess(const kdc_model *model, kdc_preprocess *pp);

/* Detector input: resize keeping the aspect ratio so that the shorter side
 * is short_side unless the longer would exceed max_side, normalise, and pad
 * bottom/right with zeros to a multiple of pad. */
typedef struct kdc_det_preprocess {
    int short_side;  /* 800                                                    */
    int max_side;    /* 1333                                                   */
    int pad;         /* 32                                                     */
    float scale;     /* pixel multiplier before normalising: 1/255 (torchvision)
                        or 1 (mmdetection)                                     */
    float mean[3], std[3];
    int round_size;  /* resized size: 0 = floor(side * s) (torchvision),
                        1 = floor(side * s + 0.5) (mmdetection)               */
} kdc_det_preprocess;

/* The detector preprocessing of a model's layout (torchvision: 0..1 and
 * ImageNet mean/std; mmdetection: 0..255, mean [123.675, 116.28, 103.53],
 * std [58.395, 57.12, 57.375]); shorter side 800, longer at most 1333, or
 * the sizes of the weights file's metadata "kdcam.detect" ("short=S max=M",
 * docs/api.md). */
KDC_API void kdc_model_det_preprocess(const kdc_model *model, kdc_det_preprocess *pp);

/* Resizes (bilinear, half-pixel centres, as torch's interpolate), normalises
 * and pads an image; *out (3 x h x w floats) is freed with kdc_free. *scale
 * is resized / original size, to map boxes from original pixels; content_h
 * and content_w (may be NULL) receive the size before padding. */
KDC_API kdc_status kdc_preprocess_detection(const kdc_image *image, const kdc_det_preprocess *pp,
                                            float **out, int *h, int *w, int *content_h,
                                            int *content_w, double *scale);

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
    int threads; /* worker threads for this run (1..256; 0 means 1) */
} kdc_run_options;

/* Creates a run (workspace) for a model. The model must outlive the run.
 * opt may be NULL. Results are bitwise identical for any thread count. */
KDC_API kdc_status kdc_run_create(const kdc_model *model, const kdc_run_options *opt,
                                  kdc_run **out);
KDC_API void kdc_run_destroy(kdc_run *run);

/* Runs the network on input (N x 3 x H x W floats, NCHW, preprocessed;
 * 1 <= N <= 65536, H and W from the model's minimum to 16384).
 * keep lists the layer indices whose outputs should stay readable after
 * the call (the last layer, the logits, always does); nkeep may be 0.
 * A failed call leaves no readable results. Errors: KDC_ERR_SHAPE (input
 * too small or too large), KDC_ERR_NOT_FOUND (a layer index out of range),
 * KDC_ERR_INVALID_ARGUMENT (non-finite input), KDC_ERR_NO_MEMORY. */
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

/* Layer timing, for finding where a pass spends its time. After
 * kdc_run_time_layers(run, 1) every forward pass (kdc_run_forward,
 * kdc_run_forward_grad) also reads the clock around each layer's work;
 * kdc_run_layer_times then copies the last successful pass's times, in
 * milliseconds, one per layer from layer 0 (count >= kdc_model_num_layers).
 * A layer computed inside the one before it (a BatchNorm, ReLU or residual
 * add fused into a conv's GEMM or a depthwise conv's group) reads next to
 * nothing, its work being in that layer's time (a recording pass's ReLU
 * mask of a fused group excepted: that is the ReLU's own); the input layer
 * reads 0. on = 0 stops it. Errors: KDC_ERR_INVALID_ARGUMENT (NULL, count too small),
 * KDC_ERR_STATE (timing off, or no forward pass since it was turned on),
 * KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_run_time_layers(kdc_run *run, int on);
KDC_API kdc_status kdc_run_layer_times(const kdc_run *run, double *ms, int count);

/* ------------------------------------------------------------------ */
/* Gradients                                                           */

/* What a backward pass differentiates. */
typedef enum kdc_target_kind {
    KDC_TARGET_LOGIT = 0, /* the raw logit of a class (per image)            */
    KDC_TARGET_PROB,      /* the softmax probability of a class (per image)  */
    KDC_TARGET_SEED       /* sum(seed * output of `layer`): any custom target */
} kdc_target_kind;

typedef struct kdc_target {
    kdc_target_kind kind;
    /* LOGIT / PROB: one class per image, or NULL for each image's top-1
     * class. Out-of-range classes are KDC_ERR_INVALID_ARGUMENT. */
    const int *classes;
    /* SEED: the layer the seed applies to and the seed itself, a float32
     * array shaped like that layer's output (N x C x H x W). */
    int layer;
    const float *seed;
    /* SEED, optional: a second seed (NULL: none), shaped like the output of
     * layer2, added to the first: the target is then sum(seed * output of
     * layer) + sum(seed2 * output of layer2). For targets that live on two
     * branches, e.g. a detection's class logit plus its box regression
     * (kdc_detection_seed). layer2 may equal layer (the seeds add). */
    int layer2;
    const float *seed2;
} kdc_target;

/* Like kdc_run_forward, and also records what a backward pass down to layer
 * `down_to` needs (ReLU masks and max-pool indices of the layers above it,
 * nothing below it; 0 = down to the input). */
KDC_API kdc_status kdc_run_forward_grad(kdc_run *run, const float *input, int n, int h, int w,
                                        const int *keep, int nkeep, int down_to);

/* Backpropagates target through the last kdc_run_forward_grad and keeps the
 * gradient d(target)/d(output of layer) for each of the `ngrad` layers
 * listed (every one >= down_to; layer 0 is the input image). The target is
 * summed over the batch, so each image receives the gradient of its own
 * target. guided: 0 = true gradient; 1 = guided backpropagation (every
 * ReLU/ReLU6 passes only positive gradients where its input was active).
 * The classes used (top-1 when classes was NULL) can be read with
 * kdc_run_target_classes. Errors: KDC_ERR_STATE (no forward_grad, or
 * down_to above a requested layer), KDC_ERR_NOT_FOUND, KDC_ERR_INVALID_ARGUMENT. */
KDC_API kdc_status kdc_run_backward(kdc_run *run, const kdc_target *target, const int *grad_layers,
                                    int ngrad, int guided);

/* Copies a kept gradient (shaped like the layer's output, NCHW). */
KDC_API kdc_status kdc_run_read_grad(const kdc_run *run, int layer, float *dst, size_t count);

/* The class each image's target used in the last backward (n entries). */
KDC_API kdc_status kdc_run_target_classes(const kdc_run *run, int *classes, int n);

/* Detector targets: the energy of a layer's output (an FPN level, say). */
typedef enum kdc_energy {
    KDC_ENERGY_SUMSQ = 0, /* sum of squares                               */
    KDC_ENERGY_MEAN       /* mean value                                   */
} kdc_energy;

/* Fills seed (shaped like act, n x c x h x w) so that a KDC_TARGET_SEED
 * backward from that layer differentiates its energy: over the cells whose
 * centre lies inside box (x0, y0, x1, y1 in pixels of the in_h x in_w input
 * tensor; NULL: all cells; a box holding no centre uses the cell under its
 * centre) and over channel `channel` only (-1: all channels). Errors:
 * KDC_ERR_INVALID_ARGUMENT (channel or box out of range, NULL pointers). */
KDC_API kdc_status kdc_energy_seed(const float *act, int n, int c, int h, int w, int in_h,
                                   int in_w, kdc_energy kind, const float *box, int channel,
                                   float *seed);

/* ------------------------------------------------------------------ */
/* Class activation maps                                               */
/* Numerically as pytorch-grad-cam defines them (docs/cam.md).        */

typedef enum kdc_cam_method {
    KDC_CAM_GRADCAM = 0,  /* w_k = mean_hw(g_k); ReLU(sum_k w_k A_k)         */
    KDC_CAM_HIRESCAM,     /* ReLU(sum_k g_k * A_k)                           */
    KDC_CAM_GRADCAMPP,    /* Grad-CAM++ weights                              */
    KDC_CAM_XGRADCAM,     /* w_k = sum(g*A) / (sum(A) + 1e-7)                 */
    KDC_CAM_LAYERCAM,     /* ReLU(sum_k ReLU(g_k) * A_k)                     */
    KDC_CAM_EIGENCAM,     /* first principal component of A (sign fixed)     */
    KDC_CAM_EIGENGRADCAM, /* first principal component of g * A (sign fixed) */
    KDC_CAM_SCORECAM,     /* softmax over channels of masked-input scores    */
    KDC_CAM_ABLATIONCAM,  /* (y - y_k) / y with channel k zeroed             */
    KDC_CAM_FULLGRAD,     /* |x * dx| + |bias * grad| of every bias layer
                             (issue 19; the layers are ignored)              */
    /* issue 19 (part A), torch-cam's smoothed Score-CAMs (lib/cam/smoothscore.c) */
    KDC_CAM_SSCAM,        /* Score-CAM weights averaged over noisy masks      */
    KDC_CAM_ISCAM,        /* Score-CAM weights averaged over scaled masks     */
    /* issue 19 (part C): docs/cam.md "Issue 19 (part C)" */
    KDC_CAM_KPCACAM,      /* first kernel principal component of A (sigmoid)  */
    KDC_CAM_FINERCAM,     /* Grad-CAM of target minus alpha x similar classes */
    KDC_CAM_SMOOTHGRADCAMPP, /* Grad-CAM++ weights from noisy-input gradients */
    KDC_CAM_SHAPLEYCAM,   /* w_k = mean_hw(g_k - 0.5 (H A)_k); ReLU(sum w A)  */
    KDC_CAM_COUNT
} kdc_cam_method;

/* "gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam",
 * "eigengradcam", "scorecam", "ablationcam", "fullgrad", "sscam", "iscam",
 * "kpcacam", "finercam", "smoothgradcam++", "shapleycam"; NULL if out of
 * range. */
KDC_API const char *kdc_cam_method_name(kdc_cam_method method);
/* Parses a name as above; KDC_ERR_INVALID_ARGUMENT (listing the names) if
 * unknown. */
KDC_API kdc_status kdc_cam_method_parse(const char *name, kdc_cam_method *method);

/* Raw map (n x h x w, unnormalised) of a gradient or Eigen method from one
 * layer's activation A and gradient G (both n x c x h x w; G may be NULL
 * for KDC_CAM_EIGENCAM and KDC_CAM_KPCACAM, which uses its default kernel
 * here). SCORECAM, ABLATIONCAM, SSCAM, ISCAM, FULLGRAD, FINERCAM,
 * SMOOTHGRADCAMPP and SHAPLEYCAM need a model: use kdc_cam_compute. */
KDC_API kdc_status kdc_cam_from_maps(kdc_cam_method method, const float *A, const float *G, int n,
                                     int c, int h, int w, float *raw);

/* pytorch-grad-cam's post-processing of raw maps (n x h x w): per image
 * x -= min; x /= (max + 1e-7); then bilinear resize to out_h x out_w with
 * OpenCV's half-pixel convention, into out (n x out_h x out_w). */
KDC_API kdc_status kdc_cam_normalize_resize(const float *raw, int n, int h, int w, int out_h,
                                            int out_w, float *out);

/* Bilinear resize of n planes with OpenCV's half-pixel convention
 * (cv2.resize INTER_LINEAR). */
KDC_API kdc_status kdc_resize_bilinear(const float *src, int n, int h, int w, int out_h, int out_w,
                                       float *dst);

#define KDC_CAM_MAX_LAYERS 8

/* KPCA-CAM kernels, as scikit-learn's KernelPCA names them (coef0 = 1,
 * degree 3): sigmoid tanh(gamma <a,b> + 1) (pytorch-grad-cam's default),
 * rbf exp(-gamma |a-b|^2), poly (gamma <a,b> + 1)^3, linear <a,b>,
 * cosine <a,b> / (|a| |b|). */
typedef enum kdc_kpca_kernel {
    KDC_KPCA_SIGMOID = 0,
    KDC_KPCA_RBF,
    KDC_KPCA_POLY,
    KDC_KPCA_LINEAR,
    KDC_KPCA_COSINE,
    KDC_KPCA_COUNT
} kdc_kpca_kernel;

typedef struct kdc_cam_options {
    kdc_cam_method method;
    const int *layers;    /* target layers (nlayers >= 1)                      */
    int nlayers;
    kdc_target target;    /* zero-initialised: top-1 logit of each image       */
    int scorecam_topk;    /* Score-CAM: 0 = all channels, else the k channels
                             with the largest mean activation                  */
    int scorecam_batch;   /* masked images per forward pass (0: 32)            */
    /* Extra layers whose outputs stay readable (kdc_run_read_layer) after
     * kdc_cam_compute, from the clean forward pass (issue 17). */
    const int *keep;
    int nkeep;
    /* issue 19 (part A): SS-CAM and IS-CAM (Score-CAM's topk and batch apply) */
    int samples;          /* SS-CAM noisy masks per channel (0: 35), IS-CAM
                             steps (0: 10), as torch-cam's num_samples        */
    float noise_std;      /* SS-CAM noise std on the [0,1] masks (0: 2.0)     */
    uint64_t seed;        /* SS-CAM noise seed (lib/cam/smoothscore.c)        */
    /* issue 19 (part C). Smooth Grad-CAM++ also uses samples (0: 4),
     * noise_std (0: 0.3, on the preprocessed input) and seed, as torch-cam's
     * num_samples and std (lib/cam/smoothgradpp.c). */
    float finer_alpha;    /* Finer-CAM: weight of the similar classes (0: 1)  */
    int finer_compare;    /* Finer-CAM: how many similar classes (0: 3)       */
    kdc_kpca_kernel kpca_kernel; /* KPCA-CAM kernel (0: sigmoid, sklearn's)   */
    float kpca_gamma;     /* KPCA-CAM kernel gamma (0: 1 / C, sklearn's)      */
} kdc_cam_options;

typedef struct kdc_cam_result {
    int n, in_h, in_w;
    float *map;           /* n x in_h x in_w: normalised, upsampled, averaged
                             over the layers                                   */
    int nlayers;
    int raw_h[KDC_CAM_MAX_LAYERS], raw_w[KDC_CAM_MAX_LAYERS];
    float *raw[KDC_CAM_MAX_LAYERS]; /* n x raw_h x raw_w per layer, unnormalised */
    int *classes;         /* n: the class each image's target used (-1 for SEED) */
} kdc_cam_result;

/* Runs what the method needs (forward, backward, masked or ablated passes)
 * on input (n x 3 x in_h x in_w) and fills *out (free with
 * kdc_cam_result_destroy). Errors: KDC_ERR_INVALID_ARGUMENT (method, class),
 * KDC_ERR_SHAPE (a layer with no spatial extent, 1x1, for a spatial CAM),
 * KDC_ERR_NOT_FOUND, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_cam_compute(kdc_run *run, const float *input, int n, int in_h, int in_w,
                                   const kdc_cam_options *opt, kdc_cam_result **out);
KDC_API void kdc_cam_result_destroy(kdc_cam_result *result);

/* Input attributions (n x 3 x h x w), written to out. */
typedef enum kdc_attribution {
    KDC_ATTR_SALIENCY = 0,  /* d target / d input                              */
    KDC_ATTR_GUIDED,        /* guided backpropagation                          */
    KDC_ATTR_SMOOTHGRAD,    /* mean gradient over noisy copies                 */
    KDC_ATTR_INTEGRATED,    /* integrated gradients from a zero baseline       */
    /* issue 19, part B (docs/cam.md "Propagation attributions") */
    KDC_ATTR_INPUT_X_GRADIENT, /* input * d target / d input                   */
    KDC_ATTR_DEEPLIFT,      /* DeepLift (rescale rule) against a baseline      */
    KDC_ATTR_LRP            /* layer-wise relevance propagation, at the input  */
} kdc_attribution;

typedef struct kdc_attribution_options {
    kdc_attribution kind;
    kdc_target target;      /* zero-initialised: top-1 logit                   */
    int samples;            /* SmoothGrad samples / IG steps (0: 25 / 32)      */
    float noise;            /* SmoothGrad noise std as a fraction of the input
                               range (0: 0.15)                                 */
    uint64_t seed;          /* SmoothGrad noise seed (deterministic)           */
    /* issue 19, part B */
    const float *baseline;  /* DeepLift: the reference input, n x 3 x h x w;
                               NULL: all zeros (Captum's default)              */
    int lrp_rule;           /* LRP: KDC_LRP_EPSILON (0) or KDC_LRP_GAMMA        */
    float lrp_epsilon;      /* LRP stabiliser (0: 1e-9, Captum's EpsilonRule)  */
    float lrp_gamma;        /* LRP gamma (0: 0.25, Captum's GammaRule)         */
} kdc_attribution_options;

KDC_API kdc_status kdc_attribution_compute(kdc_run *run, const float *input, int n, int h, int w,
                                           const kdc_attribution_options *opt, float *out);

/* ---- issue 19, part B: propagation attributions (docs/cam.md) ---- */
/* KDC_ATTR_INPUT_X_GRADIENT, KDC_ATTR_DEEPLIFT and KDC_ATTR_LRP go through
 * kdc_attribution_compute; DeepLift and LRP explain a class logit
 * (target.kind KDC_TARGET_LOGIT, else KDC_ERR_INVALID_ARGUMENT) and support
 * the classifiers' ops (KDC_ERR_UNSUPPORTED for FPN backbones). They run one
 * image at a time on the reference kernels, keeping every layer's output of
 * that image (and, for DeepLift, of its baseline). */
typedef enum kdc_lrp_rule {
    KDC_LRP_EPSILON = 0,  /* epsilon rule on every layer (Captum's default)     */
    KDC_LRP_GAMMA         /* gamma rule on convolutions (BatchNorm folded in),
                             epsilon rule on the fully connected layer        */
} kdc_lrp_rule;

/* LRP relevance of the output of `layer` (0: the input image), n x C x H x
 * W of that layer, into out (count floats). A convolution that a BatchNorm
 * follows gets the relevance of the BatchNorm output (the two are one
 * layer for LRP). opt->kind is ignored. Errors: as kdc_attribution_compute,
 * KDC_ERR_NOT_FOUND (layer), KDC_ERR_INVALID_ARGUMENT (count too small). */
KDC_API kdc_status kdc_lrp_relevance(kdc_run *run, const float *input, int n, int h, int w,
                                     const kdc_attribution_options *opt, int layer, float *out,
                                     size_t count);
/* ---- end of issue 19, part B ---- */
/* ---- issue 19 (part A): per-layer maps, perturbation attributions ---- */

/* One layer's map of a result, not averaged with the others: layer l's raw
 * map min-max normalised and resized to in_h x in_w per image, as
 * pytorch-grad-cam does to each layer before it averages them
 * (compute_cam_per_layer: scale_cam_image). out gets n x in_h x in_w.
 * KDC_ERR_INVALID_ARGUMENT for a layer outside 0..nlayers-1. */
KDC_API kdc_status kdc_cam_layer_map(const kdc_cam_result *result, int layer, float *out);

/* ---- issue 19 (part C): Deep Feature Factorization (lib/cam/dff.c) ---- */
typedef struct kdc_dff_options {
    int components;   /* k concepts (0: 5, pytorch-grad-cam dff()'s default) */
    int max_iter;     /* coordinate-descent iterations at most (0: 200)      */
    double tol;       /* stop when violation / first violation <= tol (0: 1e-4) */
} kdc_dff_options;

/* Non-negative matrix factorisation of one layer's activations A (n x c x
 * h x w) as pytorch-grad-cam's dff() with scikit-learn's NMF(k,
 * init='random', random_state=0): the n images are factorised together
 * (the concepts are shared by the batch). concepts gets c x k (W + the
 * per-channel offset), maps n x k x h x w (each image's concept maps, H,
 * unnormalised; kdc_cam_normalize_resize of an image's k planes gives
 * DeepFeatureFactorization's explanations); *iterations (may be NULL) the
 * iterations run. Deterministic. Errors: KDC_ERR_INVALID_ARGUMENT,
 * KDC_ERR_SHAPE, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_dff(const float *A, int n, int c, int h, int w, const kdc_dff_options *opt,
                           float *concepts, float *maps, int *iterations);

/* Perturbation attributions as Captum defines them (captum/attr/_core/
 * occlusion.py, feature_ablation.py), on all 3 input channels at once. */
typedef enum kdc_perturb_kind {
    KDC_PERTURB_OCCLUSION = 0, /* window x window patches every `stride` pixels set to
                                  `baseline`; a pixel gets the mean of (y - y_occluded)
                                  over the patches covering it                     */
    KDC_PERTURB_ABLATION       /* Feature Ablation with a grid feature mask: cells of
                                  window x window, each set to `baseline`; a pixel
                                  gets y - y_ablated of its cell                    */
} kdc_perturb_kind;

typedef struct kdc_perturb_options {
    kdc_perturb_kind kind;
    kdc_target target;  /* LOGIT or PROB; zero-initialised: top-1 logit          */
    int window;         /* patch / cell side in pixels (0: 16)                   */
    int stride;         /* occlusion stride, at most window (0: window / 2)      */
    float baseline;     /* value of the occluded input (0: the normalised zero)  */
    int chunk;          /* perturbed images per forward pass (0: 32): memory is
                           chunk images whatever the number of patches           */
} kdc_perturb_options;

/* Writes the attribution of each image (n x h x w, the same for the 3
 * channels) to out and, when classes is not NULL, the class each image's
 * target used (n). Cost: one clean pass and one pass per patch position
 * (ceil((h - window) / stride) + 1 times the same across), chunk images at a
 * time. Errors: KDC_ERR_INVALID_ARGUMENT (kind, window larger than the
 * input, stride outside 1..window, a seed target), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_perturb_compute(kdc_run *run, const float *input, int n, int h, int w,
                                       const kdc_perturb_options *opt, float *out, int *classes);
/* ---- end of issue 19 (part A) ---- */

/* Feature maps: a layer's activation reduced over channels (n x h x w). */
typedef enum kdc_reduce {
    KDC_REDUCE_MEAN = 0, KDC_REDUCE_MAX, KDC_REDUCE_L2, KDC_REDUCE_PCA,
    KDC_REDUCE_FGD /* FGD's spatial attention, T = 0.5 (kdc_fgd_attention) */
} kdc_reduce;
KDC_API kdc_status kdc_feature_map(const float *A, int n, int c, int h, int w, kdc_reduce reduce,
                                   float *out);

/* Agreement of two maps of n values (e.g. a student's normalised map and its
 * teacher's, at the same resolution). */
/* Pearson correlation; 0 when either map is constant. */
KDC_API double kdc_map_pearson(const float *a, const float *b, size_t n);
/* Intersection over union of the top `fraction` (e.g. 0.2) of each map: the
 * ceil(fraction * n) largest values (ties broken by position). */
KDC_API double kdc_map_iou_top(const float *a, const float *b, size_t n, double fraction);
/* Pointing game: 1 if the map's maximum (first one in row-major order) lies
 * inside the box x0 <= x < x1, y0 <= y < y1, else 0. */
KDC_API int kdc_map_pointing(const float *map, int w, int h, const int box[4]);
/* Share of the map's sum (values clamped at 0) inside the box; 0 for an
 * all-zero map. */
KDC_API double kdc_map_energy_in_box(const float *map, int w, int h, const int box[4]);
/* Pointing-game baselines over n boxes (inside as for kdc_map_pointing).
 * kdc_boxes_point_share: the share of the boxes that hold pixel (x, y),
 * i.e. the score of a map that always peaks there (the image centre: x =
 * w / 2, y = h / 2); 0 for NULL or n < 1. kdc_boxes_best_point: the pixel
 * of a w x h image held by the most boxes (ties: the first in row-major
 * order) into *x, *y and its share into *share: the best score any fixed
 * point reaches on this set; exact (a 2-D difference array, O(n + w h)
 * time, 4 (w+1)(h+1) bytes); boxes are clipped to the image. Errors:
 * KDC_ERR_INVALID_ARGUMENT (NULL, n < 1, w or h < 1), KDC_ERR_NO_MEMORY. */
KDC_API double kdc_boxes_point_share(const int (*boxes)[4], int n, int x, int y);
KDC_API kdc_status kdc_boxes_best_point(const int (*boxes)[4], int n, int w, int h, int *x,
                                        int *y, double *share);

/* ------------------------------------------------------------------ */
/* Pictures                                                            */

/* OpenCV COLORMAP_JET of a map in [0,1] (values are clamped): v = uint8(255
 * * x) (truncation) looked up in OpenCV's 256-entry table. rgb gets w*h*3. */
KDC_API void kdc_colormap_jet(const float *map, int w, int h, unsigned char *rgb);

/* pytorch-grad-cam's show_cam_on_image: out = 0.5*jet + 0.5*img (both in
 * [0,1]), divided by its max, uint8(255*out). map is image-sized. */
KDC_API kdc_status kdc_overlay(const kdc_image *image, const float *map, kdc_image **out);

/* Guided-backprop picture of a 3 x h x w gradient: x -= mean; x /= (std +
 * 1e-5); x *= 0.1; x += 0.5; clip to [0,1]; uint8(255*x) (mean and std over
 * all channels together). */
KDC_API kdc_status kdc_gradient_image(const float *grad, int h, int w, kdc_image **out);

/* Draws text (ASCII) with its top-left corner at (x, y), `scale` pixels per
 * font pixel, in colour rgb. Clipped to the image. */
KDC_API void kdc_image_draw_text(kdc_image *image, int x, int y, const char *text, int scale,
                                 const unsigned char rgb[3]);
/* Width and height in pixels that kdc_image_draw_text would use. */
KDC_API void kdc_text_size(const char *text, int scale, int *w, int *h);
/* Copies src into dst with its top-left corner at (x, y), clipped. */
KDC_API void kdc_image_paste(kdc_image *dst, const kdc_image *src, int x, int y);
/* Fills a rectangle, clipped. */
KDC_API void kdc_image_fill(kdc_image *image, int x, int y, int w, int h,
                            const unsigned char rgb[3]);

/* ------------------------------------------------------------------ */
/* Classes                                                             */

/* Name of ImageNet-1k class c (0..999), or NULL. From torchvision's list. */
KDC_API const char *kdc_imagenet_class_name(int c);

/* ------------------------------------------------------------------ */
/* NumPy .npy files (float32, C order)                                 */

/* Writes a float32 array of ndim (0..8) dims. Written to a temporary file
 * in the same directory and renamed, so no half-written file remains. */
KDC_API kdc_status kdc_npy_save(const char *path, const float *data, int ndim,
                                const int64_t *dims);
/* Reads a C-order array of float32 (<f4; <f2 and <f8 are converted);
 * *data is freed with kdc_free.
 * dims must hold 8 entries. Errors name the file and what is wrong. */
KDC_API kdc_status kdc_npy_load(const char *path, float **data, int *ndim, int64_t dims[8]);

/* ------------------------------------------------------------------ */
/* Procedural shapes dataset (kdcam shapes)                            */
/* A synthetic dataset with known object locations: each image holds one
 * object of one of kdc_shapes_num_classes() shape classes (random size,
 * position fully inside, rotation, colour and fill) on a cluttered
 * background (gradient, noise, stripes, blobs, grain) with 1-3 thin
 * distractors that belong to no class (thin lines, zigzags, thin bars, dot
 * clusters). Two styles:
 *  - KDC_SHAPES_HARD (the default): the class object is 20-45% of the side
 *    across, anywhere in the frame, and 1-3 decoys (objects of the same
 *    size range, fills and colours that belong to no class: long ellipse,
 *    arrow, L, T, half disk, long oval ring) lie outside its box, so a map
 *    that always peaks at the centre or on the most salient object is
 *    often wrong;
 *  - KDC_SHAPES_CLASSIC: the original style (object 48-68% of the side, no
 *    decoys), pixel for pixel what kdc_shapes_render gave before the hard
 *    style existed; the bundled demo models (weights/demo/) were trained on
 *    it.
 * Image `index` of `seed` depends only on (seed, index, size, style), so
 * any subset can be regenerated; no libm is used (see
 * lib/data/shapes_internal.h). */

#define KDC_SHAPES_MIN_SIZE 64
#define KDC_SHAPES_MAX_SIZE 1024
#define KDC_SHAPES_MAX_DECOYS 3

typedef enum kdc_shapes_style {
    KDC_SHAPES_HARD = 0,    /* default: small object anywhere, plus decoys  */
    KDC_SHAPES_CLASSIC = 1, /* original: large object, no decoys            */
} kdc_shapes_style;

typedef struct kdc_shape_info {
    int cls;          /* class, 0 .. kdc_shapes_num_classes()-1               */
    int box[4];       /* x0, y0, x1, y1 (x1, y1 exclusive), tight around the
                         mask                                                 */
    float cx, cy;     /* centre of the shape, pixels                          */
    float diameter;   /* diameter of the disk the shape fits in, pixels       */
    int angle;        /* rotation, degrees 0..359                             */
    int style;        /* the kdc_shapes_style it was drawn in                 */
    int ndecoys;      /* decoys drawn, 0..KDC_SHAPES_MAX_DECOYS (0: classic)  */
    int decoy_kind[KDC_SHAPES_MAX_DECOYS];   /* kdc_shapes_decoy_name()      */
    int decoy_box[KDC_SHAPES_MAX_DECOYS][4]; /* like box: pixels at least half
                                                covered by the decoy; never
                                                overlaps box                  */
} kdc_shape_info;

/* Number of classes (10). */
KDC_API int kdc_shapes_num_classes(void);
/* Name of class cls ("circle", "square", "triangle", "star", "cross", "ring",
 * "heart", "hexagon", "crescent", "frame"), or NULL if out of range. */
KDC_API const char *kdc_shapes_class_name(int cls);
/* Name of decoy kind k ("ellipse", "arrow", "L", "T", "halfdisk",
 * "ovalring"), or NULL if out of range. */
KDC_API const char *kdc_shapes_decoy_name(int kind);
/* Name of a style ("hard", "classic"), or NULL if unknown. */
KDC_API const char *kdc_shapes_style_name(int style);
/* Renders image `index` of the dataset `seed` in `style` at size x size
 * pixels into a new image *out (free with kdc_image_destroy). info (may be
 * NULL) receives the class, box and decoys; mask (may be NULL; size*size
 * bytes) receives 1 where the class object covers at least half of a pixel,
 * else 0 (decoys are not in the mask). Errors: KDC_ERR_INVALID_ARGUMENT
 * (out NULL, size outside KDC_SHAPES_MIN_SIZE .. KDC_SHAPES_MAX_SIZE, an
 * unknown style), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_shapes_render_ex(uint64_t seed, uint64_t index, int size,
                                        kdc_shapes_style style, kdc_image **out,
                                        kdc_shape_info *info, unsigned char *mask);
/* kdc_shapes_render_ex in the default style, KDC_SHAPES_HARD. (Before the
 * hard style existed this call drew what KDC_SHAPES_CLASSIC draws now.) */
KDC_API kdc_status kdc_shapes_render(uint64_t seed, uint64_t index, int size, kdc_image **out,
                                     kdc_shape_info *info, unsigned char *mask);

/* Detection images (issue 13): several class objects per image. */
#define KDC_SHAPES_MAX_OBJECTS 6
typedef struct kdc_shapes_objects {
    int n;           /* objects, 1..KDC_SHAPES_MAX_OBJECTS, in paint order
                        (largest first: a later one may cover an earlier)  */
    int cls[KDC_SHAPES_MAX_OBJECTS];    /* class, 0..9                     */
    int box[KDC_SHAPES_MAX_OBJECTS][4]; /* x0, y0, x1, y1 (exclusive) of its
                                           visible pixels                  */
    int area[KDC_SHAPES_MAX_OBJECTS];   /* visible pixels (>= 1)          */
    float cx[KDC_SHAPES_MAX_OBJECTS], cy[KDC_SHAPES_MAX_OBJECTS];
    float diameter[KDC_SHAPES_MAX_OBJECTS]; /* of the disk it fits in      */
    int ndecoys;     /* decoys drawn (0..2; not objects, not labelled)     */
} kdc_shapes_objects;
/* Renders detection image `index` of dataset `seed` (size x size) into
 * *out (kdc_image_destroy it): 2-6 objects of the 10 classes, one in three
 * small (6-12% of the side across, at least 10 pixels), the others 12-50%,
 * placed anywhere; squares around two objects overlap with IoU <= 0.3, so
 * objects may touch and partly cover each other; 0-2 decoys where no
 * object is, on the hard style's background and distractors. A visible
 * pixel is one the object covers at least half of and no later object
 * does; an object left with none is dropped. objects (may be NULL): class,
 * visible box and area of each; mask (may be NULL; size*size bytes): 0, or
 * 1 + the object index visible at that pixel. Deterministic in (seed,
 * index, size), as kdc_shapes_render. Errors: KDC_ERR_INVALID_ARGUMENT
 * (out NULL, size outside KDC_SHAPES_MIN_SIZE..KDC_SHAPES_MAX_SIZE),
 * KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_shapes_render_detection(uint64_t seed, uint64_t index, int size,
                                               kdc_image **out, kdc_shapes_objects *objects,
                                               unsigned char *mask);

/* ------------------------------------------------------------------ */
/* Dataset statistics (issue 14): CKA, prediction agreement, summaries */
/* Teacher/student comparisons over many images, as `kdcam analyze`   */
/* computes them (docs/analyze.md). All arithmetic in double.           */

/* The kernel a CKA compares representations with. */
typedef enum kdc_cka_kernel {
    KDC_CKA_LINEAR = 0, /* K = X X^T                                            */
    KDC_CKA_RBF         /* K_ij = exp(-|x_i - x_j|^2 / (2 m)), m the median of
                           all n^2 squared distances (Kornblith et al. 2019's
                           rbf(X, threshold=1)); all-zero distances give K = 1 */
} kdc_cka_kernel;

/* The n x n kernel (Gram) matrix of n examples of d features each (x is n x
 * d, row-major, float32) into K (n*n doubles). Errors:
 * KDC_ERR_INVALID_ARGUMENT (NULL pointers, n < 1, d < 1, unknown kernel). */
KDC_API kdc_status kdc_cka_gram(const float *x, int n, size_t d, kdc_cka_kernel kernel,
                                double *K);

/* The unbiased HSIC estimator of Song et al. (2012), as minibatch CKA uses
 * it (Nguyen, Raghu and Kornblith 2021; torch_cka's _HSIC): with K~, L~ the
 * Gram matrices with zeroed diagonals,
 *   [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2 1'K~L~1 / (n-2)] / (n(n-3)).
 * n < 4 is refused (KDC_ERR_INVALID_ARGUMENT: the estimator divides by
 * n - 3, where torch_cka returns NaN). */
KDC_API kdc_status kdc_hsic_unbiased(const double *K, const double *L, int n, double *hsic);

/* A minibatch CKA accumulator: sums HSIC(K,K), HSIC(K,L), HSIC(L,L) over
 * minibatches; CKA = sum HSIC(K,L) / sqrt(sum HSIC(K,K) * sum HSIC(L,L)).
 * Accumulators of disjoint sets of minibatches merge exactly (sums of the
 * same per-batch values; in another order they differ by rounding only). */
typedef struct kdc_cka kdc_cka;

KDC_API kdc_status kdc_cka_create(kdc_cka **out);
KDC_API void kdc_cka_destroy(kdc_cka *acc);
/* Adds one minibatch given its two Gram matrices (n x n each, n >= 4).
 * batch_cka (may be NULL) receives the minibatch's own CKA, NaN where it is
 * undefined (a constant representation). Errors as kdc_hsic_unbiased. */
KDC_API kdc_status kdc_cka_add_gram(kdc_cka *acc, const double *K, const double *L, int n,
                                    double *batch_cka);
/* Adds one minibatch given its three HSIC values (xx, xy, yy), as
 * kdc_hsic_unbiased computed them for n >= 4 examples: how stored per-batch
 * values are summed again (kdcam merge). */
KDC_API kdc_status kdc_cka_add_hsic(kdc_cka *acc, const double hsic[3], int n);
/* Adds one minibatch of two representations of the same n examples: x (n x
 * dx) and y (n x dy) float32 rows, compared with kernel. */
KDC_API kdc_status kdc_cka_add(kdc_cka *acc, const float *x, size_t dx, const float *y,
                               size_t dy, int n, kdc_cka_kernel kernel, double *batch_cka);
/* Adds src's minibatches to dst. */
KDC_API kdc_status kdc_cka_merge(kdc_cka *dst, const kdc_cka *src);
/* The CKA over every minibatch added; hsic (may be NULL) receives the three
 * sums (xx, xy, yy), batches and examples (may be NULL) the counts. Errors:
 * KDC_ERR_STATE (no minibatch yet, or sum HSIC(K,K) * sum HSIC(L,L) <= 0:
 * CKA undefined). */
KDC_API kdc_status kdc_cka_result(const kdc_cka *acc, double *cka, double hsic[3],
                                  int64_t *batches, int64_t *examples);

/* KL(p || q) in nats between softmax(p_logits / T) and softmax(q_logits /
 * T) over k classes (no T^2 factor): a teacher's and a student's
 * predictive distributions (Stanton et al. 2021). Errors:
 * KDC_ERR_INVALID_ARGUMENT (k < 1, T <= 0, NULL). */
KDC_API kdc_status kdc_prediction_kl(const float *p_logits, const float *q_logits, int k,
                                     double temperature, double *kl);
/* Index of the largest of k values (the first one on ties); -1 if k < 1. */
KDC_API int kdc_argmax(const float *v, int k);

/* Mean of n values and the half-width of its 95% confidence interval under
 * the normal approximation: 1.959963984540054 * s / sqrt(n), s the sample
 * standard deviation (n - 1); half = 0 when n = 1. Summed in index order.
 * KDC_ERR_INVALID_ARGUMENT when n = 0. */
KDC_API kdc_status kdc_mean_ci95(const double *v, size_t n, double *mean, double *half);

/* Faithfulness of a map (how much the model's score depends on the pixels
 * the map points at). Deletion and insertion (Petsiuk et al. 2018, RISE):
 * pixels are taken in order of decreasing map value (ties by position);
 * step k of `steps` moves the first floor(k * h * w / steps) of them. For
 * deletion they are replaced by `substrate` (image -> substrate), for
 * insertion they come from the image (substrate -> image). Writes the
 * inputs of steps k0 .. k0 + count - 1 (0 <= k0, k0 + count <= steps + 1)
 * to out (count x 3 x h x w), so the passes can be batched with a bound on
 * memory. image and substrate are 3 x h x w (CHW), map is h x w. Errors:
 * KDC_ERR_INVALID_ARGUMENT (NULL, sizes, steps < 1, a step range outside
 * 0..steps), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_faith_perturb(const float *image, const float *substrate, const float *map,
                                     int h, int w, int steps, int insertion, int k0, int count,
                                     float *out);
/* RISE's area under a curve of n >= 2 scores at evenly spaced fractions of
 * [0, 1]: (sum - first/2 - last/2) / (n - 1). NaN if n < 2. */
KDC_API double kdc_faith_auc(const double *scores, int n);
/* Average Drop and Increase in Confidence (Chattopadhay et al. 2018,
 * Grad-CAM++), in percent, over n images: Y[i] the class score on image i,
 * O[i] on the image multiplied by its map: AD = 100 mean(max(0, Y - O) / Y),
 * IC = 100 mean(O > Y). Errors: KDC_ERR_INVALID_ARGUMENT (n = 0, NULL, a
 * score Y <= 0). */
KDC_API kdc_status kdc_faith_average_drop(const double *Y, const double *O, size_t n,
                                          double *avg_drop, double *increase);

/* RISE's blurred substrate (its insertion game starts from it): each of
 * the 3 channels of image (3 x h x w) convolved with RISE's gkern(klen,
 * sigma) (RISE uses klen 11, sigma 5: scipy's gaussian_filter of a klen x
 * klen delta, so a Gaussian folded into the window by reflection), zero
 * padding klen / 2, into out (3 x h x w, not image). Errors:
 * KDC_ERR_INVALID_ARGUMENT (NULL, even or > 255 klen, sigma outside
 * (0, 64], out == image). */
KDC_API kdc_status kdc_faith_blur(const float *image, int h, int w, int klen, double sigma,
                                  float *out);

/* ROAD (Rong et al. 2022), as pytorch-grad-cam's metrics/road.py does it.
 * kdc_road_mask marks the pixels to remove: with most_relevant_first
 * those whose map value is not below np.percentile(map, percentile)
 * (linear interpolation), otherwise those whose 1 - map is not below the
 * percentile of 1 - map. remove receives h*w bytes (1: removed). */
KDC_API kdc_status kdc_road_mask(const float *map, int h, int w, double percentile,
                                 int most_relevant_first, unsigned char *remove);
/* n standard normal values from seed (splitmix64, Box-Muller pairs:
 * u1 = ((x >> 11) + 1) 2^-53, u2 = (x' >> 11) 2^-53, r = sqrt(-2 ln u1),
 * out[2k] = r cos(2 pi u2), out[2k+1] = r sin(2 pi u2)), as float. */
KDC_API kdc_status kdc_road_noise(uint64_t seed, size_t n, float *out);
/* Noisy linear imputation: every removed pixel of image (3 x h x w) becomes
 * the mean of its 8 neighbours inside the image weighted 1/6 (direct) and
 * 1/12 (diagonal), solved jointly per channel (conjugate gradients to a
 * relative residual of 1e-13), plus noise_std * noise[c*h*w + i] (noise
 * may be NULL: none). Kept pixels are copied. Errors:
 * KDC_ERR_INVALID_ARGUMENT (NULL, every pixel removed),
 * KDC_ERR_UNSUPPORTED (no convergence), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_road_impute(const float *image, const unsigned char *remove, int h,
                                   int w, const float *noise, double noise_std, float *out);
/* Mask, noise from seed, imputation in one call: the input of one ROAD
 * step (the source uses noise_std 0.01). */
KDC_API kdc_status kdc_road_perturb(const float *image, const float *map, int h, int w,
                                    double percentile, int most_relevant_first,
                                    double noise_std, uint64_t seed, float *out);

/* Distances between one image's teacher and student feature maps (float32,
 * CHW). ICKD (Liu et al. 2021): sum((G_s - G_t)^2) / c with G = F F^T
 * row-normalised, c the smaller width, the wider map's channels averaged in
 * c contiguous groups (torch's adaptive pooling bins) in place of ICKD's
 * learned 1x1 convolution; the spatial sizes may differ. Errors:
 * KDC_ERR_INVALID_ARGUMENT, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_ickd_distance(const float *ft, int ct, size_t hwt, const float *fs,
                                     int cs, size_t hws, double *dist);
/* Attention transfer (Zagoruyko and Komodakis 2017): |Q_t - Q_s|_2 with
 * Q = sum_c F_c^2 flattened and L2-normalised, each map first
 * average-pooled (adaptive bins) to the smaller height and width of the
 * two. Errors: KDC_ERR_INVALID_ARGUMENT, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_at_distance(const float *ft, int ct, int ht, int wt, const float *fs,
                                   int cs, int hs, int ws, double *dist);

/* ---- end of the dataset statistics section ----------------------- */

/* ------------------------------------------------------------------ */
/* Issue 17: batches of images, CAM building blocks, logits, labels,  */
/* colormaps and figures for papers                                    */

/* Loads n image files and preprocesses each with pp into one batch, *out
 * (n x 3 x *h x *w floats, NCHW; free with kdc_free): what a program that
 * feeds a model does image by image. opt (may be NULL) is passed to
 * kdc_image_load_ex. crops (may be NULL; n entries) receives each resized
 * and cropped 8-bit picture (free each with kdc_image_destroy); sizes (may
 * be NULL; 2n ints) each original width and height. Errors name the image:
 * those of kdc_image_load_ex and kdc_preprocess_image, KDC_ERR_SHAPE when
 * two images preprocess to different sizes (pp without a crop),
 * KDC_ERR_INVALID_ARGUMENT, KDC_ERR_NO_MEMORY. On failure nothing is
 * returned (*out NULL, crops NULL). */
KDC_API kdc_status kdc_image_load_batch(const char *const *paths, int n,
                                        const kdc_preprocess *pp, const kdc_image_options *opt,
                                        float **out, int *h, int *w, kdc_image **crops,
                                        int *sizes);

/* pytorch-grad-cam's last two steps for several target layers, as
 * kdc_cam_compute applies them: each layer's raw map (n x raw_h[l] x
 * raw_w[l]) scaled as kdc_cam_normalize_resize does (per image min-max,
 * bilinear to out_h x out_w), then ReLU, the mean over the layers, and a
 * second per-image min-max scaling (aggregate_multi_layers and
 * scale_cam_image). out gets n x out_h x out_w. Errors:
 * KDC_ERR_INVALID_ARGUMENT, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_cam_aggregate(const float *const *raw, const int *raw_h,
                                     const int *raw_w, int nlayers, int n, int out_h, int out_w,
                                     float *out);

/* Guided Grad-CAM in one call: the CAM of opt (any method) times the guided
 * backpropagation gradient of the input towards the same classes (each
 * image's class as the CAM used it). out gets n x 3 x h x w. cam (may be
 * NULL) receives the CAM result (free with kdc_cam_result_destroy). Errors
 * as kdc_cam_compute and kdc_attribution_compute. */
KDC_API kdc_status kdc_guided_gradcam(kdc_run *run, const float *input, int n, int h, int w,
                                      const kdc_cam_options *opt, float *out,
                                      kdc_cam_result **cam);

/* Softmax of k logits at temperature T (1: plain), computed in double with
 * the maximum subtracted, into p (k floats). With kdc_prediction_kl (KL of
 * two logit vectors) and kdc_argmax. Errors: KDC_ERR_INVALID_ARGUMENT (k <
 * 1, T <= 0, NULL, a non-finite logit). */
KDC_API kdc_status kdc_softmax(const float *logits, int k, double temperature, float *p);
/* The indices of the `top` largest of k values, largest first (equal values:
 * lower index first), into idx (top ints). Errors: KDC_ERR_INVALID_ARGUMENT
 * (top < 1, top > k, NULL, a NaN value). */
KDC_API kdc_status kdc_topk(const float *v, int k, int top, int *idx);

/* The labels of a `kdcam shapes` folder (DIR/labels.json): per image its
 * file (relative to DIR), class and box (x0, y0, x1, y1, exclusive), and the
 * class names. Fields other than these are ignored, so newer files with
 * more fields still read. */
typedef struct kdc_shapes_labels {
    int n;            /* images                                             */
    char **files;     /* n                                                  */
    int *classes;     /* n                                                  */
    int (*boxes)[4];  /* n                                                  */
    int nclasses;
    char **class_names; /* nclasses                                         */
} kdc_shapes_labels;
/* Reads DIR/labels.json; free *out with kdc_shapes_labels_free. Errors:
 * KDC_ERR_IO, KDC_ERR_FORMAT (what is wrong, and where), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_shapes_labels_read(const char *dir, kdc_shapes_labels **out);
KDC_API void kdc_shapes_labels_free(kdc_shapes_labels *labels);

/* show_cam_on_image with another weight: out = (1 - alpha) * img + alpha *
 * jet, divided by its max, uint8(255*out); kdc_overlay is alpha 0.5, and
 * alpha 1 gives the heatmap alone (for maps over colourful photos, where a
 * 50% blend muddies the hues). Errors: KDC_ERR_INVALID_ARGUMENT (alpha
 * outside [0, 1], NULL), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_overlay_ex(const kdc_image *image, const float *map, float alpha,
                                  kdc_image **out);

/* ---- issue 17: colormaps ---- */
/* The colormaps of pytorch-grad-cam's show_cam_on_image(colormap=...):
 * OpenCV's tables (VIRIDIS and INFERNO are matplotlib's, TURBO Google's),
 * looked up at uint8(255 * x) of the map clamped to [0, 1] (NaN as 0). */
typedef enum kdc_colormap {
    KDC_COLORMAP_JET = 0, /* cv2.COLORMAP_JET, the default everywhere */
    KDC_COLORMAP_VIRIDIS,
    KDC_COLORMAP_INFERNO,
    KDC_COLORMAP_TURBO,
    KDC_COLORMAP_COUNT
} kdc_colormap;
/* "jet", "viridis", "inferno", "turbo"; NULL for an unknown value. */
KDC_API const char *kdc_colormap_name(kdc_colormap cmap);
/* The colormap of that name; KDC_ERR_INVALID_ARGUMENT (naming it) if none. */
KDC_API kdc_status kdc_colormap_parse(const char *name, kdc_colormap *cmap);
/* kdc_colormap_jet with any colormap (an unknown one: JET). */
KDC_API void kdc_colormap_apply(kdc_colormap cmap, const float *map, int w, int h,
                                unsigned char *rgb);
/* kdc_overlay_ex with any colormap: show_cam_on_image(img, map,
 * use_rgb=True, colormap, image_weight = 1 - alpha). */
KDC_API kdc_status kdc_overlay_colormap(const kdc_image *image, const float *map, float alpha,
                                        kdc_colormap cmap, kdc_image **out);
/* ---- end of issue 17: colormaps ---- */

/* Encodes a PNG in memory (for embedding, e.g. as a data URI in an SVG):
 * *data (free with kdc_free) gets *size bytes. Errors:
 * KDC_ERR_INVALID_ARGUMENT, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_image_encode_png(const kdc_image *image, unsigned char **data,
                                        size_t *size);

/* ---- end of the issue 17 section ---------------------------------- */

/* ---- issue 13: COCO box evaluation ---------------------------------- */
/* A COCO instances file (the ground truth of `kdcam eval`): its images,
 * categories and box annotations, in file order. Fields other than these
 * are ignored (segmentations, licenses, ...). An annotation without
 * "iscrowd" counts as 0 and one without "area" gets w * h (pycocotools
 * would raise KeyError); a repeated key counts by its last value, as in
 * Python's json module. */
typedef struct kdc_coco_image {
    int64_t id;
    char *file_name; /* "" if the file has none                        */
    int width, height; /* 0 if absent                                  */
} kdc_coco_image;
typedef struct kdc_coco_category {
    int64_t id;
    char *name;      /* "" if the file has none                        */
} kdc_coco_category;
/* One box: a ground-truth annotation or a detection (COCO's results
 * format). bbox is [x, y, w, h] in pixels, as in COCO files. */
typedef struct kdc_coco_box {
    int64_t id;          /* annotation id; detections: 1..n in file order */
    int64_t image_id, category_id;
    double bbox[4];
    double area;         /* annotations: the file's "area"; detections: w*h */
    double score;        /* detections; 1 for annotations                    */
    int iscrowd;         /* annotations; 0 for detections                    */
} kdc_coco_box;
typedef struct kdc_coco {
    size_t nimages, ncategories, nannotations;
    kdc_coco_image *images;
    kdc_coco_category *categories;
    kdc_coco_box *annotations;
} kdc_coco;

/* Reads a COCO instances JSON ({"images", "annotations", "categories"};
 * "annotations" may be absent or empty); free *out with kdc_coco_free.
 * Image, category and annotation ids must be unique (pycocotools would
 * silently use the last of a repeated one). Errors: KDC_ERR_IO,
 * KDC_ERR_FORMAT (what and where: "annotations[12]: \"bbox\" is not 4
 * numbers"), KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_coco_read(const char *path, kdc_coco **out);
KDC_API void kdc_coco_free(kdc_coco *coco);

/* Reads a COCO results file (a JSON list of {"image_id", "category_id",
 * "bbox": [x, y, w, h], "score"}, as pycocotools' loadRes takes) into
 * *dets (*n boxes, ids 1..n, area w*h; free with kdc_free). An empty list
 * gives *n = 0. Errors as kdc_coco_read. */
KDC_API kdc_status kdc_coco_read_results(const char *path, kdc_coco_box **dets, size_t *n);

/* The 12 numbers of pycocotools' COCOeval(gt, dets, "bbox") with its
 * default Params, after evaluate(), accumulate(), summarize(), in
 * summarize's order:
 *   0 AP @[.50:.95] all, 1 AP50, 2 AP75, 3-5 AP small/medium/large,
 *   6-8 AR maxDets 1/10/100, 9-11 AR small/medium/large (maxDets 100);
 * -1 where pycocotools prints -1 (no ground truth in that area range).
 * Same algorithm: IoU thresholds .50:.05:.95, 101 recall points, areas
 * small < 32^2 <= medium < 96^2 <= large (by the annotation's "area", by
 * w*h for detections), at most 100 detections per image and category by
 * score (ties in file order), greedy matching with crowd regions matched
 * by intersection over the detection's area and ignored, classes evaluated
 * separately. Detections of unknown categories are dropped, as there;
 * detections of an image not in gt are an error (pycocotools asserts);
 * no detections at all gives 0 where there is ground truth (pycocotools
 * itself fails on an empty list). Checked against tools/coco_eval_ref.py.
 * Errors: KDC_ERR_INVALID_ARGUMENT (NULL, a non-finite bbox or score, an
 * unknown image id), KDC_ERR_NO_MEMORY. */
#define KDC_COCO_NSTATS 12
KDC_API kdc_status kdc_coco_eval_bbox(const kdc_coco *gt, const kdc_coco_box *dets, size_t n,
                                      double stats[KDC_COCO_NSTATS]);
/* The label pycocotools' summarize() prints for stats[i] ("Average
 * Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]"), or
 * NULL outside 0..11. */
KDC_API const char *kdc_coco_stat_name(int i);
/* ---- end of issue 13: COCO box evaluation --------------------------- */

/* ---- issue 13: detection heads --------------------------------------- */
#define KDC_HEAD_MAX_LEVELS 6
typedef enum kdc_head_kind {
    KDC_HEAD_NONE = 0,
    KDC_HEAD_RETINANET_TV, /* torchvision RetinaNetHead (head.*)           */
    KDC_HEAD_RETINANET_MM  /* mmdetection RetinaHead (bbox_head.*)         */
} kdc_head_kind;
/* A detector's head: per FPN level (P3 .. P7 for RetinaNet), the layer of
 * the level and the head's two outputs there: classification logits
 * (A x K channels, anchor-major: channel a * K + k) and box deltas (A x 4:
 * a * 4 + (dx, dy, dw, dh)), as both frameworks lay them out. */
typedef struct kdc_head_info {
    kdc_head_kind kind;
    int num_classes;   /* K                                                 */
    int num_anchors;   /* A per cell and level                              */
    int num_levels;
    int level[KDC_HEAD_MAX_LEVELS];         /* L: the level's stride is 2^L  */
    int feature_layer[KDC_HEAD_MAX_LEVELS]; /* fpn.pL                        */
    int cls_layer[KDC_HEAD_MAX_LEVELS];     /* ...cls_logits@pL / retina_cls@pL */
    int reg_layer[KDC_HEAD_MAX_LEVELS];     /* ...bbox_reg@pL / retina_reg@pL   */
} kdc_head_info;
/* The head of a model (kind KDC_HEAD_NONE and zeros for a classifier, a
 * bare backbone, or a model loaded with no_head). Errors:
 * KDC_ERR_INVALID_ARGUMENT (NULL). */
KDC_API kdc_status kdc_model_head(const kdc_model *model, kdc_head_info *info);

/* Detections from a RetinaNet head's outputs, as each framework's test
 * mode computes them (docs/fpn.md "Detections"): anchors per level and
 * cell, sigmoid scores, candidates above score_thresh, the topk best per
 * level, boxes decoded from the anchors and clipped to the resized image,
 * class-wise NMS at nms_thresh, the max_dets best, boxes rescaled to the
 * original image. The two styles differ in their anchors (torchvision:
 * sizes 32 * 2^(k/3) truncated, corners rounded, stride = input size //
 * level size; mmdetection: 4 * 2^(k/3) * stride, not rounded), in the
 * clamp of dw/dh, in when boxes are rescaled (before or after NMS), in how
 * NMS is split, and in max_dets (300 / 100). */
typedef enum kdc_detect_style {
    KDC_DETECT_AUTO = 0,    /* the head's framework                        */
    KDC_DETECT_TORCHVISION, /* torchvision 0.14 RetinaNet                  */
    KDC_DETECT_MMDET        /* mmdetection 2.x RetinaHead (test_cfg of
                               retinanet_r50_fpn)                            */
} kdc_detect_style;
typedef struct kdc_detect_options {
    kdc_detect_style style;
    float score_thresh;  /* 0.05: candidates with a larger score           */
    int topk;            /* 1000 per level (topk_candidates / nms_pre)     */
    float nms_thresh;    /* 0.5: suppress IoU > this, per class             */
    int max_dets;        /* per image: 300 (torchvision) / 100 (mmdetection);
                            0: the style's                                   */
    int anchor_size;     /* the P3 anchors' base size in pixels, 4..1024:
                            torchvision's sizes (x, int(x 2^(1/3)), int(x
                            2^(2/3))), x = anchor_size * 2^(L-3), as its
                            AnchorGenerator(sizes=...); mmdetection's
                            octave_base_scale = anchor_size / 8. 0: the
                            model's (metadata kdcam.detect anchor=N, in
                            kdc_detect), else 32, both frameworks' default */
} kdc_detect_options;
/* The defaults above, for style. */
KDC_API void kdc_detect_options_init(kdc_detect_options *opt, kdc_detect_style style);

typedef struct kdc_detection {
    float box[4];     /* x0, y0, x1, y1 in original-image pixels             */
    float score;      /* sigmoid(logit)                                      */
    float logit;      /* the pre-sigmoid class logit: the CAM target         */
    int label;        /* class, 0 .. K-1                                     */
    int level;        /* FPN level L that produced it                        */
    int level_index;  /* its index in kdc_head_info's arrays                 */
    int anchor;       /* anchor a (0 .. A-1) of the cell                     */
    int y, x;         /* the cell; the logit is channel a * K + label there  */
} kdc_detection;

/* One image's head outputs, as arrays (for kdc_detect_decode). */
typedef struct kdc_head_outputs {
    int num_classes, num_anchors, num_levels;
    int level[KDC_HEAD_MAX_LEVELS];
    int h[KDC_HEAD_MAX_LEVELS], w[KDC_HEAD_MAX_LEVELS];
    const float *cls[KDC_HEAD_MAX_LEVELS]; /* (A*K) x h x w                  */
    const float *reg[KDC_HEAD_MAX_LEVELS]; /* (A*4) x h x w                  */
} kdc_head_outputs;

/* Detections of one image from its head outputs: input_h x input_w is the
 * padded network input, image_h x image_w the resized image inside it
 * (boxes are clipped to it), orig_h x orig_w the original image (boxes are
 * scaled to it). opt->style must not be AUTO. *dets (free with kdc_free)
 * gets *n detections, best first. Errors: KDC_ERR_INVALID_ARGUMENT,
 * KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_detect_decode(const kdc_head_outputs *ho, const kdc_detect_options *opt,
                                     int input_h, int input_w, int image_h, int image_w,
                                     int orig_h, int orig_w, kdc_detection **dets, int *n);
/* The same from image `image` of the last forward pass of run on a model
 * with a head (its cls and reg layers must have been kept). Errors as
 * kdc_detect_decode, and KDC_ERR_STATE (no head, layers not kept). */
KDC_API kdc_status kdc_detect(const kdc_run *run, const kdc_model *model, int image,
                              const kdc_detect_options *opt, int image_h, int image_w,
                              int orig_h, int orig_w, kdc_detection **dets, int *n);

/* The CAM target of detections dets[0..n-1], one per image of an n-image
 * batch of h x w inputs (all on one FPN level: e.g. from kdc_detect): a
 * KDC_TARGET_SEED target on the level's classification output, 1 at each
 * detection's pre-sigmoid logit (channel anchor * K + label, cell y, x);
 * with_box != 0 also seeds the level's regression output at the anchor's
 * four box deltas (channels anchor * 4 .. + 3, same cell) as tg->seed2, so
 * the target is logit + dx + dy + dw + dh. Free tg->seed and tg->seed2
 * with kdc_free. Errors: KDC_ERR_INVALID_ARGUMENT (NULL, n < 1, levels
 * differ, a detection not on the head's outputs), KDC_ERR_STATE (no head),
 * KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_detection_target(const kdc_model *model, int h, int w,
                                        const kdc_detection *dets, int n, int with_box,
                                        kdc_target *tg);

/* FGD's attention views of n feature maps A (n x c x h x w), as
 * get_attention in yzd-v/FGD's fgd.py: spatial (n x h x w, may be NULL) =
 * h * w * softmax over the h * w cells of mean_c |A| / temp; channel (n x c,
 * may be NULL) = c * softmax over channels of mean_hw |A| / temp. Each
 * averages 1; FGD's configs use temp 0.5. Errors: KDC_ERR_INVALID_ARGUMENT
 * (NULL, temp <= 0), KDC_ERR_SHAPE, KDC_ERR_NO_MEMORY. */
KDC_API kdc_status kdc_fgd_attention(const float *A, int n, int c, int h, int w, float temp,
                                     float *spatial, float *channel);
/* ---- end of issue 13: detection heads -------------------------------- */

#ifdef __cplusplus
}
#endif
#endif /* KDCAM_H */
