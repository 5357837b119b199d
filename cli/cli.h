/* cli.h - shared pieces of the kdcam command-line tool. */
#ifndef KDCAM_CLI_H
#define KDCAM_CLI_H

#include <stdio.h>

#include "kdcam.h"

#define CLI_MAX_LAYERS 1024
#define CLI_MAX_IMAGES 256

/* Options every command understands; commands read the ones they need. */
typedef struct cli_opts {
    const char *arch;
    const char *weights;
    const char *prefix;
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
} cli_opts;

/* Describes one option a command accepts, for parsing and --help. */
enum {
    OPT_ARCH = 1 << 0, OPT_WEIGHTS = 1 << 1, OPT_THREADS = 1 << 2, OPT_SIZE = 1 << 3,
    OPT_TOPK = 1 << 4, OPT_JSON = 1 << 5, OPT_LAYER = 1 << 6, OPT_OUT = 1 << 7,
    OPT_INPUT_NPY = 1 << 8, OPT_IMAGES = 1 << 9, OPT_MODEL_EXTRA = 1 << 10,
    OPT_VERBOSE = 1 << 11
};

/* Parses argv[1..] for a command; returns 0 on success, 1 if --help was
 * printed, -1 on a usage error (message already printed). */
int cli_parse(int argc, char **argv, unsigned accepted, const char *usage, cli_opts *o);

/* Prints "kdcam: <message>" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Prints "kdcam: <what>: <kdc_last_error()>"; returns 1. */
int cli_lib_error(kdc_status st, const char *what);

/* Loads the model named by -m/-w and the model options. */
int cli_load_model(const cli_opts *o, kdc_model **model);

/* The batch to run: images preprocessed with the model's preprocessing, or
 * --input-npy. *input (N x 3 x H x W) is freed with free(). */
int cli_load_input(const cli_opts *o, const kdc_model *model, float **input, int *n, int *h,
                   int *w);

/* Makes dir if needed and checks that files can be created in it. */
int cli_prepare_out_dir(const char *dir);

int cmd_layers(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_dump(int argc, char **argv);

#endif
