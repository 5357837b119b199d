/* inputs.h - the images a command takes (files, folders, @lists, globs),
 * walked in streaming batches, and the options that go with them and with
 * the figures of `kdcam cam` and `kdcam compare` (issue 17). */
#ifndef KDCAM_CLI_INPUTS_H
#define KDCAM_CLI_INPUTS_H

#include "cli.h"

/* Options taken out of argv before cli_parse (cli_take_input_opts). */
typedef struct cli_input_opts {
    int recursive;       /* -r: folders with their subfolders                 */
    int batch;           /* --batch B: images per pass (default 8)            */
    int skip_existing;   /* --skip-existing                                   */
    int progress_every;  /* --progress-every S (default 10)                   */
    int min_size;        /* --min-size N: refuse smaller images (0: warn)     */
    /* figures */
    int scale;           /* --scale K: pixels per figure unit (default 1)     */
    int svg;             /* --svg: also write the figure as SVG               */
    kdc_colormap cmap;   /* --colormap jet|viridis|inferno|turbo (jet)        */
    int heatmap_only;    /* --heatmap-only: the map without the photo         */
    int shared_norm;     /* --norm shared|per-model (compare)                 */
    int annotate;        /* --annotate: label and colour bar on `cam` PNGs    */
    int grid;            /* --grid: all images in one figure (compare)        */
    int teacher_last;    /* --teacher-last: the teacher's row at the bottom   */
    int summary;         /* --summary: the detectors' agreement table (compare) */
    int diff;            /* --diff: a teacher-minus-student column (compare)  */
    float show_dets;     /* --show-dets S: detections drawn (compare, 0.5)    */
} cli_input_opts;

/* Flags of cli_take_input_opts: which options the command accepts. */
enum { CLI_IN_FIGURE = 1, CLI_IN_COMPARE = 2 };

/* Moves the options above out of argv into *io (defaults set), the rest to
 * rest[0..*nrest) (rest has argc entries). Returns 0, or 1 after printing
 * an error. */
int cli_take_input_opts(int argc, char **argv, unsigned flags, char **rest, int *nrest,
                        cli_input_opts *io);

/* One image to process: the path to open and the output name (a relative
 * path without extension: "cat", "sub/cat" for a folder's subfolder). box
 * is the ground-truth box when a `kdcam shapes` labels.json gives one. */
typedef struct cli_input {
    char *path;
    char *name;
    int has_box, box[4];
} cli_input;

typedef struct cli_inputs {
    cli_input *v;
    int n, cap;
} cli_inputs;

/* Expands the arguments: an image file; a folder (its images, with -r also
 * those of its subfolders, named by their path inside the folder); @FILE,
 * a list of paths, one a line (relative to the list's folder, '#' starts a
 * comment); a glob pattern (* ? [), expanded here, sorted. Names that would
 * collide (same stem in two folders given as files) take their folder
 * path. Returns 0 or 1 (error printed). */
int cli_inputs_collect(const char *const *args, int nargs, int recursive, cli_inputs *in);
void cli_inputs_free(cli_inputs *in);

/* Makes the folders that out_dir/name needs. */
int cli_inputs_mkdirs(const char *out_dir, const char *name);

/* Warns on stderr (once per image) when the image is less than half the
 * crop in either side; refuses it (1, error printed) when its shorter side
 * is below io->min_size. */
int cli_inputs_check_size(const cli_input_opts *io, const char *path, const kdc_image *img,
                          int crop_h, int crop_w);



/* Loads items[0..k) for model m into one batch: a classifier's input with
 * pp (NULL: the model's own preprocessing; crops: the 8-bit crops), a
 * detector's with its own (scales: original to input pixels). Warns on, or
 * with --min-size refuses, images much smaller than the crop. Returns 0 or
 * 1 (error printed); *input freed with free(), crops with cli_free_crops.
 * sizes (may be NULL; 2k ints) receives each image's width and height. */
int cli_inputs_load(const cli_opts *o, const cli_input_opts *io, const kdc_model *m,
                    const kdc_preprocess *pp, cli_input *const *items, int k, float **input,
                    int *h, int *w, kdc_image ***crops, double **scales, int *sizes);
/* The softmax probability of classes[b] for each of n images, from the
 * logits kept at layer `last` (K classes) of the run's last forward pass. */
int cli_class_probs(const kdc_run *run, int last, int n, int K, const int *classes, float *probs);

/* Where the h x w crop of an ow x oh image lies: the image resized to *rw x
 * *rh (shorter side pp->resize_short, as torchvision's Resize), the crop's
 * corner at (*left, *top) in the resized image (CenterCrop's rounding). */
void cli_crop_geometry(const kdc_preprocess *pp, int ow, int oh, int h, int w, int *rw, int *rh,
                       int *top, int *left);

#endif
