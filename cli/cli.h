/* cli.h - shared pieces of the kdcam command-line tool. */
#ifndef KDCAM_CLI_H
#define KDCAM_CLI_H

#include <stdio.h>

#include "kdcam.h"

#define CLI_MAX_LAYERS 1024
#define CLI_MAX_IMAGES 16384 /* arguments; folders, @lists and globs hold any number */
#define CLI_MAX_MODELS 8

/* Options every command understands; commands read the ones they need. */
typedef struct cli_opts {
    const char *arch;
    const char *weights;
    const char *prefix;
    const char *key;         /* --key K: the state dict in a .pth checkpoint */
    const char *out_dir;
    const char *input_npy;
    int allow_unused;
    float eps;               /* < 0: default */
    kdc_activation act;
    int threads;
    int size_h, size_w;      /* --size HxW (0: default)  */
    int topk;
    int json;
    int verbose;
    const char *layers[CLI_MAX_LAYERS];
    int n_layers;
    const char *images[CLI_MAX_IMAGES];
    int n_images;
    /* gradients and CAMs */
    const char *method;      /* --method (NULL: gradcam)                    */
    int cls;                 /* --class (-1: each image's top-1)            */
    int guided;              /* --guided                                     */
    int npy;                 /* --npy                                        */
    int grad;                /* --grad                                       */
    const char *feature;     /* --feature mean|max|l2|pca                   */
    const char *models[CLI_MAX_MODELS]; /* --model NAME=[ARCH:]WEIGHTS      */
    int n_models;
    int topk_channels;       /* --scorecam-topk                             */
    int on_original;         /* --on-original                               */
    const char *labels;      /* --labels FILE: class names, one per line    */
    /* issue 19, part B: propagation attributions */
    const char *baseline;    /* --baseline zero|black|FILE.npy (DeepLift)    */
    int lrp_rule;            /* --lrp-rule epsilon|gamma (kdc_lrp_rule)      */
    float lrp_epsilon;       /* --lrp-epsilon E (0: library default)         */
    float lrp_gamma;         /* --lrp-gamma G (0: library default)           */
    /* detectors */
    const char *level;       /* --level pN or a layer name (target level)   */
    float box[4];            /* --box x0,y0,x1,y1 in original pixels        */
    int has_box;
    int channel;             /* --channel K (-1: all)                        */
    int energy;              /* --energy sumsq|mean (kdc_energy)            */
    int det_short, det_max;  /* --det-size SHORT[,MAX] (0: model default)   */
    int fpn_extra;           /* --fpn-extra (kdc_fpn_extra)                 */
    int fpn_relu_extra;      /* --fpn-relu-extra                             */
    int no_head;             /* --no-head: leave a detection head unbuilt    */
    float score_thresh;      /* --score-thresh S (< 0: the style's 0.05)     */
    int max_dets;            /* --max-dets N (0: the style's)                */
    int anchor_size;         /* --anchor-size N (0: the model's, else 32)   */
    int det_style;           /* --det-style auto|tv|mm (kdc_detect_style)    */
    int detection;           /* --detection K (-1: none): CAM target         */
    int detection_box;       /* --detection-box: plus the anchor's box deltas */
    const char *coco;        /* --coco FILE: image ids by file name (detect) */
    /* bench, pointing */
    int runs;                /* --runs R (0: the command's default)          */
    int batch;               /* bench --batch N (0: 1)                       */
    int layer_times;         /* bench --layers: per-layer times              */
    const char *task;        /* --task forward|gradcam|guided                */
    int limit;               /* --limit N: first N images (0: all)           */
    const char *kernels;     /* --kernels auto|scalar|avx2|avx512|neon (NULL: auto) */
    long long max_pixels;    /* --max-pixels N: image size limit (0: library default) */
    const char *target;      /* --target own|teacher|label|CLASS (issue 19)  */
    int per_layer;           /* --per-layer: one map per --layer (issue 19)  */
    int window, stride;      /* --window, --stride: occlusion patches (0: default) */
    int chunk;               /* --chunk: perturbed images per pass (0: default) */
    int samples;             /* --samples: SS-CAM / IS-CAM samples (0: default) */
    /* issue 19 (part C) */
    int components;          /* --components K: dff concepts (0: 5)           */
    int kpca_kernel;         /* --kpca-kernel (kdc_kpca_kernel)              */
    float kpca_gamma;        /* --kpca-gamma G (0: 1 / C)                    */
    float finer_alpha;       /* --finer-alpha A (0: 1)                       */
    int score_prob;          /* --score prob: the softmax probability of the
                              * class, not its logit (kdc_target_kind)      */
} cli_opts;

/* Describes one option a command accepts, for parsing and --help. */
enum {
    OPT_ARCH = 1 << 0, OPT_WEIGHTS = 1 << 1, OPT_THREADS = 1 << 2, OPT_SIZE = 1 << 3,
    OPT_TOPK = 1 << 4, OPT_JSON = 1 << 5, OPT_LAYER = 1 << 6, OPT_OUT = 1 << 7,
    OPT_INPUT_NPY = 1 << 8, OPT_IMAGES = 1 << 9, OPT_MODEL_EXTRA = 1 << 10,
    OPT_VERBOSE = 1 << 11, OPT_CAM = 1 << 12, OPT_CLASS = 1 << 13, OPT_GRAD = 1 << 14,
    OPT_MODELS = 1 << 15, OPT_DET = 1 << 16, OPT_BENCH = 1 << 17, OPT_LIMIT = 1 << 18,
    OPT_TARGET = 1 << 19, OPT_CAM_EXTRA = 1 << 20
};

#define CLI_MODEL_FLAGS (OPT_ARCH | OPT_WEIGHTS | OPT_THREADS | OPT_MODEL_EXTRA | OPT_VERBOSE)

/* Parses argv[1..] for a command; returns 0 on success, 1 if --help was
 * printed, -1 on a usage error (message already printed). */
int cli_parse(int argc, char **argv, unsigned accepted, const char *usage, cli_opts *o);

/* Prints "kdcam: <message>" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Prints s as a JSON string literal (quotes, escapes) on stdout. */
void cli_json_string(const char *s);

/* Prints "kdcam: <what>: <kdc_last_error()>"; returns 1. */
int cli_lib_error(kdc_status st, const char *what);

/* Loads the model named by -m/-w and the model options. */
int cli_load_model(const cli_opts *o, kdc_model **model);

/* The batch to run: images preprocessed with the model's preprocessing, or
 * --input-npy. *input (N x 3 x H x W) is freed with free(). */
/* kdc_image_load_ex with the --max-pixels limit. */
kdc_status cli_image_load(const cli_opts *o, const char *path, kdc_image **img);

int cli_load_input(const cli_opts *o, const kdc_model *model, float **input, int *n, int *h,
                   int *w);

/* The same, with preprocessing pp (NULL: the model's own), and if crops is
 * not NULL the n preprocessed 8-bit pictures (from --input-npy: rebuilt
 * with pp's mean and std), freed with cli_free_crops. */
int cli_load_batch(const cli_opts *o, const kdc_model *model, const kdc_preprocess *pp,
                   float **input, int *n, int *h, int *w, kdc_image ***crops);
/* Detector models (kdc_model_num_classes == 0) take the detection input
 * instead: resized, normalised, padded to a common size; scales[i] (may be
 * NULL) maps original pixels of image i to input pixels. */
int cli_is_detector(const kdc_model *m);
int cli_load_det_batch(const cli_opts *o, const kdc_model *m, float **input, int *n, int *h,
                       int *w, kdc_image ***crops, double **scales, int *sizes);
/* --detection K: for each of the n images of the last forward input, its
 * detection K (kdc_detect on the kept head outputs; the images' original
 * sizes w, h in sizes, their scales to input pixels in scales), into
 * dets[b]; *tg is their target (cli_detection_target). */
int cli_detection_seed(const cli_opts *o, const kdc_model *m, kdc_run *run, const float *input,
                       int n, int h, int w, const double *scales, const int *sizes,
                       kdc_detection *dets, kdc_target *tg);
/* Every detection of each of the n images (dets[b], counts[b]; free each
 * dets[b] with kdc_free), after a forward pass keeping the head's outputs. */
int cli_detect_all(const cli_opts *o, const kdc_model *m, kdc_run *run, const float *input,
                   int n, int h, int w, const double *scales, const int *sizes,
                   kdc_detection **dets, int *counts);
/* The detections' CAM target (kdc_detection_target; with o->detection_box
 * plus the box deltas), one per image of an h x w input (all on one level,
 * else an error); free it with cli_target_free. */
int cli_detection_target(const cli_opts *o, const kdc_model *m, int h, int w,
                         const kdc_detection *dets, int n, kdc_target *tg);
/* Frees the seeds of a target made by cli_detection_target (and zeroes it). */
void cli_target_free(kdc_target *tg);
/* The energy seed of --level (with --box, --channel, --energy) for the batch:
 * runs a forward pass keeping the level; *seed is freed with free(). */
int cli_level_seed(const cli_opts *o, const kdc_model *m, kdc_run *run, const float *input, int n,
                   int h, int w, const double *scales, int level, float **seed);
/* The level named by --level (default fpn.p3), as a layer index. */
int cli_find_level(const cli_opts *o, const kdc_model *m, int *level);
void cli_free_crops(kdc_image **crops, int n);

/* Makes dir if needed and checks that files can be created in it. */
int cli_prepare_out_dir(const char *dir);

/* The last stage (layer4, model.13): the default CAM layer. */
int cli_default_cam_layer(const kdc_model *m, int *layer, const char **name);

/* --model NAME=[ARCH:]WEIGHTS (compare, pointing): *out points into spec. */
typedef struct cli_model_spec {
    char name[128];
    char arch[32];       /* "" : from the keys */
    const char *weights; /* into spec */
} cli_model_spec;
int cli_parse_model_spec(const char *spec, cli_model_spec *out);
/* Class names from a file, one per line (--labels); NULL on error (printed).
 * Free with cli_free_labels. */
char **cli_read_labels(const char *path, int *count);
void cli_free_labels(char **labels, int n);

/* dataset.c: the image sets commands walk. */
typedef struct cli_item {
    char *file;  /* relative to the dataset's folder (a list file: as opened) */
    int cls;     /* -1: no label                                              */
    int box[4];  /* x0, y0, x1, y1 (exclusive) in the image's pixels          */
    int has_box;
} cli_item;
/* Reads DIR/labels.json of a `kdcam shapes` folder: class names and every
 * image's file, class and box; names what is wrong (printed). */
int cli_read_shapes_labels(const char *dir, cli_item **images, int *n_images, char ***classes,
                           int *n_classes);
/* A whole file into a malloc'ed buffer with a '\0' after its *len bytes,
 * NULL if it cannot be read. */
char *cli_read_file(const char *path, size_t *len);
void cli_free_items(cli_item *items, int n);

enum { CLI_DS_SHAPES, CLI_DS_FOLDER, CLI_DS_LIST };
typedef struct cli_dataset {
    int kind;          /* CLI_DS_*                                           */
    char dir[4096];    /* the folder (shapes, ImageFolder)                   */
    int base_len;      /* (internal)                                         */
    cli_item *items;
    int n;
    char **classes;    /* names (shapes, ImageFolder); NULL for a list file  */
    int nclasses;
    int has_labels, has_boxes;
} cli_dataset;
/* A `kdcam shapes` folder (has labels.json), an ImageFolder tree (class
 * subfolders) or a list file ("PATH [CLASS]" per line). */
int cli_dataset_open(const char *src, cli_dataset *ds);
void cli_dataset_free(cli_dataset *ds);
/* The path to open for item i. */
void cli_dataset_path(const cli_dataset *ds, int i, char *out, size_t size);
/* The sorted names in dir (hidden ones left out) that are folders
 * (want_dirs) or image files (torchvision's extensions); free with
 * cli_free_labels. */
int cli_list_dir(const char *dir, int want_dirs, char ***out, int *count);

/* progress.c: "what: done/total images  N images/s  ETA" on stderr, in
 * place on a terminal, else a plain line every `every` seconds. */
typedef struct cli_progress {
    const char *what;
    long total;
    int every, tty;
    double t0, last;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *what, long total, int every);
/* final: always print, and end the line. */
void cli_progress_update(cli_progress *p, long done, int final);

/* sha256.c: the SHA-256 of a file as 64 hex digits (error printed). */
int cli_sha256_file(const char *path, char hex[65]);

/* json.c: a strict JSON reader (RFC 8259) into a tree. */
typedef enum cj_type { CJ_NULL, CJ_BOOL, CJ_NUM, CJ_STR, CJ_ARR, CJ_OBJ } cj_type;
typedef struct cj_value {
    cj_type type;
    double num;              /* CJ_NUM; CJ_BOOL: 0 or 1  */
    char *str;               /* CJ_STR, UTF-8            */
    int n;                   /* CJ_ARR, CJ_OBJ: entries  */
    struct cj_value *items;  /* (n)                      */
    char **keys;             /* CJ_OBJ: (n)              */
} cj_value;
/* Parses text; on error returns -1 with a message naming the byte offset. */
int cj_parse(const char *text, size_t len, cj_value *out, char *err, size_t errsz);
void cj_free(cj_value *v);
/* The value of key in an object, or NULL. */
const cj_value *cj_get(const cj_value *obj, const char *key);

/* ---- issue 19: CAM targets (target.c) ---- */
/* Which class the maps explain: each model's own top-1, the teacher's
 * (first --model's) top-1, the image's ground-truth label, or one class
 * given by index or name. */
enum { CLI_TARGET_OWN, CLI_TARGET_TEACHER, CLI_TARGET_LABEL, CLI_TARGET_CLASS };
typedef struct cli_target {
    int kind;       /* CLI_TARGET_*                                        */
    int cls;        /* CLASS by index; -1 when given by name               */
    char name[128]; /* CLASS by name ("" when by index)                    */
} cli_target;
/* Parses a --target value (error printed; returns non-zero). */
int cli_target_parse(const char *s, cli_target *t);
/* The target of --target or --class (-c C is --target C; both: an error). */
int cli_target_from_opts(const cli_opts *o, cli_target *t);
/* The classes (n) that the maps of model m (position mi, 0 = teacher) explain:
 * *use = 0 for its own top-1 (pass NULL classes to the library), else
 * classes[] filled from t, teacher[] (the teacher's classes, NULL if there
 * is no teacher) or labels[] (NULL if the images have none). who names the
 * model in errors. Error printed; returns non-zero. */
int cli_target_classes(const cli_target *t, const kdc_model *m, const char *who, int mi,
                       const int *teacher, const int *labels, int n, int *classes, int *use);
/* "own", "teacher", "label", "class 3", "class cat" into buf. */
const char *cli_target_describe(const cli_target *t, char *buf, size_t size);
/* Labels of the command's image files (labels.json of a `kdcam shapes` folder
 * beside the image, else the image's folder name as a class name of m);
 * *labels (n) is freed with free(). */
int cli_target_image_labels(const cli_opts *o, const kdc_model *m, char *const *paths, int n,
                            int **labels);
/* Each image's top-1 class from a forward pass (top1 gets n). */
int cli_top1(kdc_run *run, const kdc_model *m, const float *x, int n, int h, int w, int *top1);

/* ---- issue 19: one map per layer (layer_strip.c) ---- */
/* `kdcam cam --per-layer`: for every image b and layer, DIR/STEM.METHOD.
 * layer.NAME.npy (the layer's own normalised map, 1 x h x w, as
 * kdc_cam_layer_map gives it) and DIR/STEM.METHOD.layers.png, the input and
 * the layers' overlays side by side, each headed by the layer's name.
 * stems[b] names image b's files. */
int cli_write_per_layer(const char *dir, const kdc_model *m, const kdc_cam_result *res,
                        const int *layers, char *const *stems, const char *method,
                        kdc_image **crops);

/* The strip figure of layer_strip.c at path: the crop, then one overlay per
 * map (maps[i], h x w, in [0, 1]) headed by names[i]. */
int cli_write_strip(const char *path, const kdc_image *crop, const float *const *maps,
                    const char *const *names, int nl, int h, int w);

/* ---- issue 19 (part C): `kdcam cam --method dff` (cam_dff.c) ---- */
/* Deep Feature Factorization of the batch at the first --layer (the concepts
 * are shared by the batch, as pytorch-grad-cam's dff()); writes per image
 * DIR/STEM.dff.png (the crop and each concept's overlay) and with o->npy
 * DIR/STEM.dff.raw.npy (1 x k x h x w), DIR/STEM.dff.npy (1 x k x H x W,
 * each normalised and resized as scale_cam_image) and DIR/STEM.dff.
 * concepts.npy (C x k, the batch's concepts); with batch_stem (--input-npy)
 * those three once for the batch, named by it, with N in place of 1. */
int cli_cam_dff(const cli_opts *o, kdc_run *run, const kdc_model *m, int layer,
                const float *input, int n, int h, int w, char *const *stems, char *const *srcs,
                kdc_image **crops, const char *batch_stem);

/* ---- issue 19: `kdcam cam --method occlusion|featureablation` (cam_perturb.c) ---- */
/* The kdc_perturb_kind of a method name; -1 if it is not one. */
int cli_perturb_kind(const char *name);
/* Runs it on the batch (classes: NULL for each image's top-1; the score is
 * the class's logit, or its probability with o->score_prob) and writes,
 * per image, DIR/STEM.METHOD.png (the attribution min-max normalised over
 * the crop) and with o->npy DIR/STEM.METHOD.raw.npy (the attribution,
 * 1 x h x w) and DIR/STEM.METHOD.npy (normalised). */
int cli_cam_perturb(const cli_opts *o, kdc_run *run, const kdc_model *m, int kind,
                    const float *input, int n, int h, int w, const int *classes,
                    char *const *stems, char *const *srcs, kdc_image **crops, const char *method);

#endif
