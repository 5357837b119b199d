/* bench_cam.c - cost of Grad-CAM and guided backpropagation as multiples of
 * one forward pass, per architecture, batch 1, 224x224.
 *
 * The three tasks of one model are timed interleaved (forward, Grad-CAM,
 * guided, forward, ...) so that machine noise hits them alike; each is
 * repeated R times and the min and median are reported, and the ratios use
 * the medians. Weights are seeded random (the numbers do not depend on the
 * values). Prints a table and, with --json, JSON lines.
 *
 * usage: bench_cam [--runs R] [--threads T] [--json] [ARCH...] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "bench_cam"
#include "bench_util.h"
#include "kdcam.h"
#include "weightgen.h"

int main(int argc, char **argv)
{
    int runs = 5, threads = 1, json = 0;
    const char *archs[8];
    int na = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (na < 8)
            archs[na++] = argv[i];
    }
    if (runs < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_cam [--runs R] [--threads T] [--json] [ARCH...]\n");
        return 2;
    }
    if (!na) {
        archs[na++] = "resnet50";
        archs[na++] = "mobilenetv1";
    }
    char tmpl[] = "/tmp/kdcam-bench-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    if (!json)
        printf("%-12s %-8s %3s %10s %10s %8s\n", "arch", "task", "thr", "min ms", "median ms",
               "x fwd");
    for (int a = 0; a < na; a++) {
        char path[128];
        snprintf(path, sizeof path, "%s/w.safetensors", tmpl);
        if (kdc_test_write_weights(path, archs[a], 1, 1000, "", 0)) {
            fprintf(stderr, "bench_cam: cannot write %s weights\n", archs[a]);
            return 1;
        }
        kdc_model *m;
        kdc_run *run;
        CHECK(kdc_model_load(path, NULL, &m));
        remove(path);
        kdc_run_options ro = {.threads = threads};
        CHECK(kdc_run_create(m, &ro, &run));
        const int h = 224, w = 224;
        float *x = malloc(3 * h * w * sizeof *x), *g = malloc(3 * h * w * sizeof *g);
        kdc_test_fill(x, 3 * h * w, "input", 7001, 0.0, 2.0);
        int layer;
        CHECK(kdc_model_find_layer(m, strcmp(kdc_model_arch(m), "mobilenetv1") ? "layer4"
                                                                               : "model.13",
                                   &layer));
        double *t[3];
        for (int k = 0; k < 3; k++)
            t[k] = malloc((size_t)(runs + 1) * sizeof *t[k]);
        kdc_cam_options co = {.method = KDC_CAM_GRADCAM, .layers = &layer, .nlayers = 1};
        kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED};
        for (int r = 0; r <= runs; r++) { /* r = 0 warms up */
            kdc_cam_result *res;
            double t0 = now_ms();
            CHECK(kdc_run_forward(run, x, 1, h, w, NULL, 0));
            double t1 = now_ms();
            CHECK(kdc_cam_compute(run, x, 1, h, w, &co, &res));
            double t2 = now_ms();
            CHECK(kdc_attribution_compute(run, x, 1, h, w, &ao, g));
            double t3 = now_ms();
            kdc_cam_result_destroy(res);
            if (r) {
                t[0][r - 1] = t1 - t0;
                t[1][r - 1] = t2 - t1;
                t[2][r - 1] = t3 - t2;
            }
        }
        static const char *task[3] = {"forward", "gradcam", "guided"};
        double mn[3], md[3];
        for (int k = 0; k < 3; k++)
            stats(t[k], runs, &mn[k], &md[k]);
        for (int k = 0; k < 3; k++) {
            if (json)
                printf("{\"bench\":\"cam\",\"arch\":\"%s\",\"task\":\"%s\",\"threads\":%d,"
                       "\"size\":\"224x224\",\"runs\":%d,\"min_ms\":%.3f,\"median_ms\":%.3f,"
                       "\"x_forward\":%.3f}\n", archs[a], task[k], threads, runs, mn[k], md[k],
                       md[k] / md[0]);
            else
                printf("%-12s %-8s %3d %10.1f %10.1f %8.2f\n", archs[a], task[k], threads, mn[k],
                       md[k], md[k] / md[0]);
        }
        for (int k = 0; k < 3; k++)
            free(t[k]);
        free(x);
        free(g);
        kdc_run_destroy(run);
        kdc_model_destroy(m);
    }
    rmdir(tmpl);
    return 0;
}
