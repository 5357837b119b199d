/* analyze.h - what kdcam analyze (cmd_analyze.c), kdcam merge (cmd_merge.c)
 * and the summary writer (analyze_summary.c) share: the rows file.
 *
 * DIR/rows.jsonl holds, one JSON object per line:
 *   {"type":"meta", ...}       first line: what the run computes (models,
 *                              weights' SHA-256, layers, batch, inputs);
 *                              identical for every shard of one analysis
 *   {"type":"image","i":I,...} one per image: its prediction and map
 *                              agreement per model
 *   {"type":"batch","b":B,...} after the images of minibatch B: the three
 *                              HSICs of every CKA pair; a batch row commits
 *                              the batch (--resume restarts after the last)
 * Minibatch B holds images B*batch .. B*batch+batch-1; shard I of N
 * computes the batches with B % N == I. The summary is always computed
 * from a rows file in batch order, so one run, a resumed run and merged
 * shards give the same summary to the last bit. */
#ifndef KDCAM_ANALYZE_H
#define KDCAM_ANALYZE_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

#define AN_ROWS "rows.jsonl"
#define AN_KERNELS 2 /* linear, rbf */

/* One line of a rows file, kept as text (merge copies it verbatim). */
typedef struct an_line {
    char *text;  /* without the newline */
    int type;    /* AN_IMAGE, AN_BATCH  */
    long index;  /* image i or batch b  */
    long batch;  /* the minibatch it belongs to */
} an_line;
enum { AN_IMAGE = 1, AN_BATCH = 2 };

typedef struct an_rows {
    char *meta;       /* the meta line's text               */
    cj_value metav;   /* parsed                             */
    an_line *lines;   /* image and batch lines, file order  */
    int nlines;
    long images, batch, shard, nshards; /* from meta        */
    long complete_bytes; /* file offset after the last batch row */
    long nbatches, last_batch; /* batch rows, and the last one's index */
} an_rows;

/* Reads a rows file line by line, checking that rows come in batch order.
 * Lines after the last batch row (an interrupted batch) are ignored. With
 * keep, the image and batch lines are kept in r->lines (merge); without,
 * only the meta line and the counts (memory independent of the file's
 * length). Errors are printed. */
int an_rows_read(const char *path, an_rows *r, int keep);
void an_rows_free(an_rows *r);

/* The images where the students' maps disagree most with the teacher's
 * (lowest Pearson r of any student). */
#define AN_WORST 6
typedef struct an_worst {
    long i;
    double pearson;
    char file[1024];
} an_worst;

/* Per-model values the summary averages (mean and 95% CI each). */
enum { V_CORRECT, V_AGREE, V_KL1, V_KL4, V_PEARSON, V_IOU, V_POINTING, V_ENERGY, V_DEL,
       V_INS, V_Y, V_YMAP, V_ROAD_MORF, V_ROAD_LERF, V_ROAD, V_COUNT };
#define AN_KD_MAX 16 /* teacher layers with ICKD / AT distances */

/* What DIR/report.html shows (analyze_report.c). */
typedef struct an_report {
    const char *meta;    /* the provenance (meta line) */
    int nm;
    const char *name[CLI_MAX_MODELS];
    int has[CLI_MAX_MODELS][V_COUNT];
    double mean[CLI_MAX_MODELS][V_COUNT], ci[CLI_MAX_MODELS][V_COUNT];
    double last_cka[CLI_MAX_MODELS][AN_KERNELS]; /* students: last stage vs teacher's */
    long images, cka_examples;
    an_worst worst[AN_WORST];
    int nworst;
    int grids;           /* DIR/disagree_I.png exist for the worst images */
    int kd_n;            /* teacher layers (0: no ICKD / AT distances) */
    const char *kd_tl[AN_KD_MAX], *kd_sl[CLI_MAX_MODELS][AN_KD_MAX]; /* NULL: unpaired */
    int kd_has[CLI_MAX_MODELS][AN_KD_MAX][2];
    double kd_mean[CLI_MAX_MODELS][AN_KD_MAX][2], kd_ci[CLI_MAX_MODELS][AN_KD_MAX][2];
} an_report;
int an_report_html(const char *dir, const an_report *rep);

/* Writes DIR/summary.json, the CKA .npy files and heatmaps, and
 * DIR/report.html from the rows file DIR/rows.jsonl. Prints the summary
 * table on stdout unless quiet. grids: the caller writes
 * DIR/disagree_I.png for the images listed in worst (may be NULL). */
int an_summarize(const char *dir, int quiet, int grids, an_worst *worst, int *nworst);

/* CKA heatmap PNG (analyze_png.c): rows x cols values in [0, 1] (NaN:
 * grey), row and column labels, a title and a colour bar. */
int an_heatmap_png(const char *path, const double *v, int rows, int cols, char **row_names,
                   char **col_names, const char *title);

/* ROAD (analyze_road.c): percentiles 10..90, the source's noise. */
#define AN_ROAD_STEPS 9
#define AN_ROAD_NOISE 0.01
/* softmax(z)[c] over K classes */
double an_softmax_prob(const float *z, int K, int c);
/* The softmax probability of class c for count inputs (count x 3 x h x w)
 * in one pass; logits receives count x K. */
kdc_status an_class_probs(kdc_run *run, int logits_layer, int K, const float *x, int count,
                          int h, int w, int c, float *logits, double *p);
/* The noise seed of image i's ROAD step: base + (i << 8) + 16 (most
 * relevant first) + the percentile's index 0..8. */
uint64_t an_road_seed(uint64_t base, long image, int most_relevant_first, int pct_index);
/* ROAD of n images (x: n x 3 x h x w normalised, maps n x h x w, cls the
 * class per image, image indices i0..): out (n x 2) receives the mean
 * change of p over the percentiles, most then least relevant first (NaN
 * for a constant map, which leaves nothing to impute from). */
int an_road(kdc_run *run, int logits_layer, int K, const float *x, const float *maps,
            const int *cls, int n, int h, int w, int chunk, long i0, uint64_t seed,
            double *out);

/* ICKD / attention transfer (analyze_kd.c): pair[i] receives the student
 * CKA layer compared with teacher CKA layer i (-1: none, a layer without
 * spatial extent). */
int an_kd_pairs(kdc_model *t, const int *tl, int tnl, kdc_model *s, const int *sl, int snl,
                int h, int w, int *pair);
/* Per image b of n: out[b * stride] the ICKD distance, out[b * stride + 1]
 * the attention-transfer distance between the activations (n x C x H x W). */
int an_kd_batch(const float *tact, const int tnchw[4], const float *sact, const int snchw[4],
                int n, double *out, int stride);

/* Writes s as a JSON string literal to f. */
void an_json_string(FILE *f, const char *s);

#endif
