/* cmd_bench.c - kdcam bench: times forward, Grad-CAM or guided backprop of
 * a model on a synthetic batch.
 *
 * The input is N x 3 x H x W values of tools/kdcgen.py's generator
 * (fill("input", n, 7001, c = 0, a = 2): uniform on (-2, 2)), so a script
 * can hand PyTorch or ONNX Runtime exactly the same tensor (bench/peers.py);
 * image 0 of a batch is the batch-1 input. --batch N runs all N images in
 * one call and reports images per second as well.
 * One warm-up run is not counted; then R runs are timed one by one with
 * CLOCK_MONOTONIC. Each timed run is what a user of the task pays per image:
 *   forward  kdc_run_forward to the logits;
 *   gradcam  kdc_cam_compute, Grad-CAM at the default CAM layer (layer4 /
 *            model.13): forward recording what the backward needs, backward
 *            to that layer, the normalised and upsampled map (as `kdcam cam`);
 *   guided   kdc_attribution_compute, guided backprop: forward recording,
 *            backward down to the input image.
 * The target is each image's top-1 logit. A detection backbone (FPN) has no
 * logits: its target is the sum-of-squares energy of fpn.p3 (as `kdcam cam`
 * by default), whose seed is computed once before timing. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"

#define BENCH_INPUT_SEED 7001u
#define BENCH_DEFAULT_RUNS 10
#define BENCH_WARMUP 1

static const char *bench_usage =
    "usage: kdcam bench [-m ARCH] -w WEIGHTS [--size HxW] [--threads N]\n"
    "                   [--task forward|gradcam|guided] [--runs R] [--batch N] [--layers]\n"
    "                   [--json]\n"
    "Times one task of the model on a synthetic batch (N x 3 x H x W, seeded values\n"
    "in (-2, 2), the same as tools/kdcgen.py fill(\"input\", n, 7001, 0, 2)): one\n"
    "warm-up run, then R timed runs; prints min, median and mean milliseconds.\n"
    "Any weights of the architecture will do (e.g. build/kdc-genweights resnet50 w.safetensors).\n"
    "\n"
    "  -m, --arch ARCH     resnet50 | resnet101 | resnet152 | mobilenetv1 (default: from\n"
    "                      the tensor names)\n"
    "  -w, --weights FILE  your PyTorch checkpoint (.pth, .pt) or .safetensors (required)\n"
    "      --key K         .pth: the state dict under checkpoint key K (e.g. model)\n"
    "      --prefix P      use the model stored under key prefix P (e.g. student.)\n"
    "      --allow-unused  ignore tensors the model does not use\n"
    "      --eps E         BatchNorm epsilon (default 1e-5)\n"
    "      --act relu|relu6  override the activation\n"
    "      --fpn-extra X   detectors: auto | none | pool | on-input | on-output | on-lateral\n"
    "      --fpn-relu-extra  detectors: ReLU between extra convs\n"
    "      --no-head       detectors: leave a RetinaNet head unbuilt (backbone only)\n"
    "      --kernels K     auto | scalar | avx2 | avx512 | neon (default auto: the best)\n"
    "  -t, --threads N     worker threads (default 1)\n"
    "  -v, --verbose       list the tensors of the file that were ignored\n"
    "  -h, --help          this help\n"
    "      --size HxW      input size (default 224x224)\n"
    "      --task T        forward (to the logits, default), gradcam (Grad-CAM at the\n"
    "                      last stage, as kdcam cam) or guided (guided backprop to the\n"
    "                      input image)\n"
    "      --runs R        timed runs (default 10)\n"
    "      --batch N       images per call (default 1); also prints images/s (median)\n"
    "      --layers        also time each layer of the forward pass (of each run's\n"
    "                      forward part for gradcam and guided): min and mean ms and\n"
    "                      share per layer, layers under 0.01 ms in every run (fused\n"
    "                      into the one before) left out\n"
    "      --json          one JSON object: arch, kernels, task, size, batch, threads,\n"
    "                      runs, min_ms, median_ms, mean_ms, max_ms, times_ms,\n"
    "                      images_per_s, ... (with --layers: layers, a list of\n"
    "                      {layer, name, shape, min_ms, mean_ms})\n";

/* tools/kdcgen.py: fnv1a64(name) ^ seed, splitmix64 mix, 24-bit u,
 * t = (2u + 1 - 2^24) / 2^24 exactly, value = float(c + a * t). */
static void synthetic_input(float *x, size_t n, const char *name, uint64_t seed, double c,
                            double a)
{
    uint64_t key = 0xCBF29CE484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        key ^= *p;
        key *= 0x100000001B3ull;
    }
    key ^= seed;
    const double c32 = (float)c, a32 = (float)a;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = key + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        double u = (double)(z >> 40);
        double t = (2.0 * u + (1.0 - 16777216.0)) / 16777216.0;
        x[i] = (float)(c32 + a32 * t);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { TASK_FORWARD, TASK_GRADCAM, TASK_GUIDED };

typedef struct bench_ctx {
    kdc_run *run;
    const float *x;
    int n, h, w;
    int task;
    int layer;          /* gradcam: the CAM layer                         */
    kdc_target target;  /* gradcam, guided                                */
    float *grad;        /* guided: 3 x h x w                              */
} bench_ctx;

static kdc_status run_once(const bench_ctx *b)
{
    kdc_status st;
    switch (b->task) {
    case TASK_FORWARD:
        return kdc_run_forward(b->run, b->x, b->n, b->h, b->w, NULL, 0);
    case TASK_GRADCAM: {
        kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &b->layer, .nlayers = 1,
                              .target = b->target};
        kdc_cam_result *res = NULL;
        st = kdc_cam_compute(b->run, b->x, b->n, b->h, b->w, &co, &res);
        kdc_cam_result_destroy(res);
        return st;
    }
    default: {
        kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED, .target = b->target};
        return kdc_attribution_compute(b->run, b->x, b->n, b->h, b->w, &ao, b->grad);
    }
    }
}

/* Layers whose time is under this in every run are computed inside the one
 * before them (fused): left out. */
#define BENCH_LAYER_MIN_MS 0.01

/* --layers: per layer the minimum and mean over the timed runs and the
 * share of the sum of minima; as a text table or (json) the "layers" key
 * of the object being printed. */
static void print_layers(const kdc_model *m, int h, int w, const double *lmin,
                         const double *lsum, int nl, int runs, int json)
{
    double total = 0.0;
    for (int i = 0; i < nl; i++)
        total += lmin[i];
    if (json)
        printf(",\"layers\":[");
    else
        printf("%5s  %-32s %-14s %9s %9s %6s\n", "layer", "name", "output", "min ms", "mean ms",
               "share");
    int first = 1;
    for (int i = 0; i < nl; i++) {
        if (lsum[i] / runs < BENCH_LAYER_MIN_MS && lmin[i] < BENCH_LAYER_MIN_MS)
            continue;
        int chw[3] = {0, 0, 0};
        kdc_model_layer_shape(m, i, h, w, chw);
        const char *name = kdc_model_layer_name(m, i);
        if (json) {
            printf("%s{\"layer\":%d,\"name\":", first ? "" : ",", i);
            cli_json_string(name);
            printf(",\"shape\":[%d,%d,%d],\"min_ms\":%.4f,\"mean_ms\":%.4f}", chw[0], chw[1],
                   chw[2], lmin[i], lsum[i] / runs);
        } else {
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%dx%d", chw[0], chw[1], chw[2]);
            printf("%5d  %-32s %-14s %9.3f %9.3f %5.1f%%\n", i, name, shape, lmin[i],
                   lsum[i] / runs, total > 0.0 ? 100.0 * lmin[i] / total : 0.0);
        }
        first = 0;
    }
    if (json)
        printf("]");
    else
        printf("%5s  %-32s %-14s %9.3f\n", "", "sum of the layers' minima", "", total);
}

int cmd_bench(int argc, char **argv)
{
    cli_opts o;
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    float *x = NULL, *grad = NULL, *seed = NULL;
    double *t = NULL, *sorted = NULL;
    double *lt = NULL, *lmin = NULL, *lsum = NULL; /* --layers: this run, min, sum */
    kdc_status st;
    int rc;

    rc = cli_parse(argc, argv, CLI_MODEL_FLAGS | OPT_SIZE | OPT_BENCH | OPT_JSON, bench_usage, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    const char *task_name = o.task ? o.task : "forward";
    const int task = !strcmp(task_name, "gradcam") ? TASK_GRADCAM
                     : !strcmp(task_name, "guided") ? TASK_GUIDED
                                                    : TASK_FORWARD;
    const int runs = o.runs ? o.runs : BENCH_DEFAULT_RUNS;
    const int h = o.size_h ? o.size_h : 224, w = o.size_w ? o.size_w : 224;
    const int n = o.batch ? o.batch : 1;

    if ((rc = cli_load_model(&o, &m)))
        return rc;
    int chw[3];
    if ((st = kdc_model_layer_shape(m, 0, h, w, chw))) { /* input too small */
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    const size_t plane = (size_t)h * w, nvals = (size_t)n * 3 * plane;
    x = malloc(nvals * sizeof *x);
    t = malloc((size_t)runs * sizeof *t);
    sorted = malloc((size_t)runs * sizeof *sorted);
    if (task == TASK_GUIDED)
        grad = malloc(nvals * sizeof *grad);
    if (!x || !t || !sorted || (task == TASK_GUIDED && !grad)) {
        rc = cli_error("out of memory for a batch of %d %dx%d inputs", n, h, w);
        goto out;
    }
    synthetic_input(x, nvals, "input", BENCH_INPUT_SEED, 0.0, 2.0);

    kdc_run_options ro = {.threads = o.threads};
    if ((st = kdc_run_create(m, &ro, &run))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    const int nl = kdc_model_num_layers(m);
    if (o.layer_times) {
        lt = malloc((size_t)nl * sizeof *lt);
        lmin = malloc((size_t)nl * sizeof *lmin);
        lsum = calloc((size_t)nl, sizeof *lsum);
        if (!lt || !lmin || !lsum) {
            rc = cli_error("out of memory for %d layer times", nl);
            goto out;
        }
        if ((st = kdc_run_time_layers(run, 1))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
    }
    bench_ctx b = {.run = run, .x = x, .n = n, .h = h, .w = w, .task = task, .layer = -1,
                   .target = {.kind = KDC_TARGET_LOGIT}, .grad = grad};
    const char *layer_name = NULL;
    const int det = cli_is_detector(m);
    if (det && task != TASK_FORWARD) {
        /* the energy of fpn.p3, as `kdcam cam` on a detection backbone */
        if ((rc = cli_find_level(&o, m, &b.layer)) ||
            (rc = cli_level_seed(&o, m, run, x, n, h, w, NULL, b.layer, &seed)))
            goto out;
        b.target = (kdc_target){.kind = KDC_TARGET_SEED, .layer = b.layer, .seed = seed};
        layer_name = kdc_model_layer_alias(m, b.layer, 0) ? kdc_model_layer_alias(m, b.layer, 0)
                                                           : kdc_model_layer_name(m, b.layer);
    } else if (task == TASK_GRADCAM) {
        if ((rc = cli_default_cam_layer(m, &b.layer, &layer_name)))
            goto out;
    }

    for (int r = 0; r < BENCH_WARMUP; r++)
        if ((st = run_once(&b))) {
            rc = cli_lib_error(st, task_name);
            goto out;
        }
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        st = run_once(&b);
        t[r] = now_ms() - t0;
        if (st) {
            rc = cli_lib_error(st, task_name);
            goto out;
        }
        if (o.layer_times) {
            if ((st = kdc_run_layer_times(run, lt, nl))) {
                rc = cli_lib_error(st, NULL);
                goto out;
            }
            for (int i = 0; i < nl; i++) {
                lmin[i] = r == 0 || lt[i] < lmin[i] ? lt[i] : lmin[i];
                lsum[i] += lt[i];
            }
        }
    }

    double sum = 0.0;
    for (int r = 0; r < runs; r++) {
        sorted[r] = t[r];
        sum += t[r];
    }
    qsort(sorted, (size_t)runs, sizeof *sorted, cmp_double);
    const double mn = sorted[0], mx = sorted[runs - 1], mean = sum / runs;
    const double med = runs % 2 ? sorted[runs / 2] : 0.5 * (sorted[runs / 2 - 1] + sorted[runs / 2]);
    const char *arch = kdc_model_arch(m);
    const char *kernels = kdc_model_kernels(m);
    const double ips = med > 0.0 ? n * 1e3 / med : 0.0;

    if (o.json) {
        printf("{\"arch\":");
        cli_json_string(arch);
        printf(",\"kernels\":");
        cli_json_string(kernels);
        printf(",\"task\":\"%s\",\"layer\":", task_name);
        if (layer_name)
            cli_json_string(layer_name);
        else
            printf("null");
        printf(",\"size\":\"%dx%d\",\"batch\":%d,\"threads\":%d,\"warmup\":%d,\"runs\":%d,"
               "\"min_ms\":%.3f,\"median_ms\":%.3f,\"mean_ms\":%.3f,\"max_ms\":%.3f,\"times_ms\":[",
               h, w, n, o.threads, BENCH_WARMUP, runs, mn, med, mean, mx);
        for (int r = 0; r < runs; r++)
            printf("%s%.3f", r ? "," : "", t[r]);
        printf("],\"images_per_s\":%.3f,\"version\":", ips);
        cli_json_string(kdc_version());
        if (o.layer_times)
            print_layers(m, h, w, lmin, lsum, nl, runs, 1);
        printf("}\n");
    } else {
        printf("%s (%s kernels) %s%s%s %dx%d, batch %d, %d thread%s: %d run%s, min %.2f ms, "
               "median %.2f ms, mean %.2f ms",
               arch, kernels, task_name, layer_name ? " at " : "", layer_name ? layer_name : "", h, w,
               n, o.threads, o.threads == 1 ? "" : "s", runs, runs == 1 ? "" : "s", mn, med, mean);
        if (n > 1)
            printf(", %.1f images/s", ips);
        printf("\n");
        if (o.layer_times)
            print_layers(m, h, w, lmin, lsum, nl, runs, 0);
    }
out:
    free(x);
    free(grad);
    free(seed);
    free(t);
    free(sorted);
    free(lt);
    free(lmin);
    free(lsum);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return rc;
}
