/* bench_split.c - the job split of lib/run/sched.h for a forward pass,
 * shown for 1 to 16 threads without a 16-core machine.
 *
 * For each architecture (seeded weights, 224 x 224, batch 1, the default
 * kernels of this CPU) it walks the forward pass's pool jobs as
 * lib/run/forward.c and conv_gemm.c issue them (per dense conv: the padded
 * copy, the GEMM, the copy out of the wide rows, or for a Winograd conv of
 * conv_wino.c its two transforms and 16 GEMMs; depthwise groups; max-pool
 * and global pooling; the classifier) and asks sched.h for each job's split
 * at T threads. It prints, per T: the pool jobs, their tasks, the threads
 * used on average (weighted by work), and the share of the threads' time
 * that the split keeps busy if every task of a job took equal time and
 * starting a job cost nothing: of the threads each job uses (its balance),
 * and of all T (sum(work) / (T x sum over jobs of ceil(tasks / used) x work
 * per task); jobs capped to fewer threads because they are small leave
 * the others idle). This is the split's balance, not a
 * timing: memory bandwidth, caches and the pool's own costs are not in it.
 *
 * usage: build/bench/bench_split [--threads T] [-v] (default: 1 2 4 8 16;
 * -v lists the jobs whose split keeps under 90% of the threads busy) */
#define BENCH_NAME "bench_split"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "graph.h"
#include "kdcam.h"
#include "op.h"
#include "sched.h"
#include "conv_wino.h"
#include "weightgen.h"

/* Work units: one multiply-add of a GEMM, or KDC__SCHED_MIN_MACS /
 * KDC__SCHED_MIN_FLOATS of them per float of a memory-bound job (the two
 * thresholds are meant as the same time). */
typedef struct tally {
    double work, span, used_work, used_span;
    int jobs, tasks;
} tally;

static int verbose;

static void add_job(tally *t, double work, int tasks, int used, int threads)
{
    if (work <= 0.0 || tasks < 1)
        return;
    const int per = (tasks + used - 1) / used;
    if (verbose && work / (threads * per * (work / tasks)) < 0.9)
        printf("    job: %.3g units, %d tasks on %d of %d threads: busy %.1f%%\n", work, tasks,
               used, threads, 100.0 * work / (threads * per * (work / tasks)));
    t->work += work;
    t->span += per * (work / tasks);
    t->used_span += used * per * (work / tasks);
    t->used_work += used * work;
    t->jobs++;
    t->tasks += tasks;
    (void)threads;
}

static void add_channels(tally *t, int channels, double plane, int max_chunk, int threads)
{
    kdc__sched_ch s;
    kdc__sched_channels(1, channels, plane, max_chunk, threads, &s);
    const double per_float = (double)KDC__SCHED_MIN_MACS / KDC__SCHED_MIN_FLOATS;
    add_job(t, channels * plane * per_float, s.jobs, s.threads, threads);
}

static void walk(const kdc_model *m, const int *chw, int threads, tally *t)
{
    const int mr = m->gemm ? m->gemm->mr : 4, nr = m->gemm ? m->gemm->nr : 8;
    for (int i = 1; i < m->n_nodes; i++) {
        const kdc__node *nd = &m->nodes[i];
        const int *ic = chw + 3 * (nd->in[0] >= 0 ? nd->in[0] : 0), *oc = chw + 3 * i;
        const double ohw = (double)oc[1] * oc[2];
        if ((nd->op == KDC__OP_CONV || nd->op == KDC__OP_LINEAR) && kdc__conv_is_gemm(m, nd) &&
            kdc__wino_eligible(&nd->p.conv, oc[1], oc[2])) {
            /* conv_wino.c: input transform, 16 GEMMs as one job, output
             * transform (with the same work estimates as it gives sched.h) */
            const kdc__conv_param *cp = &nd->p.conv;
            const int tiles = ((oc[1] + 1) / 2) * ((oc[2] + 1) / 2);
            add_channels(t, cp->cin, 16.0 * tiles, KDC__SCHED_WIDE_CHUNK, threads);
            int mp, np;
            const int mt = (cp->cout + mr - 1) / mr, nt = (tiles + nr - 1) / nr;
            const double macs = 16.0 * cp->cout * cp->cin * tiles;
            const int used = kdc__sched_gemm(mt, nt, 16, macs, threads, &mp, &np);
            add_job(t, macs, 16 * mp * np, used, threads);
            add_channels(t, cp->cout, 20.0 * tiles, KDC__SCHED_WIDE_CHUNK, threads);
        } else if ((nd->op == KDC__OP_CONV || nd->op == KDC__OP_LINEAR) &&
                   kdc__conv_is_gemm(m, nd)) {
            const kdc__conv_param *cp = &nd->p.conv;
            const int wide = cp->stride > 1 || cp->kh > 1 || cp->kw > 1 || cp->pad > 0;
            const int k = cp->cin * cp->kh * cp->kw;
            int n = (int)ohw;
            if (wide) {
                const int s = cp->stride, wq = (ic[2] + 2 * cp->pad + s - 1) / s;
                const int hq = (ic[1] + 2 * cp->pad + s - 1) / s;
                add_channels(t, cp->cin, (double)s * s * hq * wq, KDC__SCHED_WIDE_CHUNK, threads);
                n = (oc[1] - 1) * wq + oc[2];
            }
            int mp, np;
            const int mt = (cp->cout + mr - 1) / mr, nt = (n + nr - 1) / nr;
            const double macs = (double)cp->cout * n * k;
            const int used = kdc__sched_gemm(mt, nt, 1, macs, threads, &mp, &np);
            add_job(t, macs, mp * np, used, threads);
            if (wide)
                add_channels(t, cp->cout, 2.0 * ohw, KDC__SCHED_WIDE_CHUNK, threads);
        } else if (nd->op == KDC__OP_CONV) { /* depthwise group */
            add_channels(t, oc[0], 4.0 * ohw + (double)ic[1] * ic[2], KDC__SCHED_CH_CHUNK,
                         threads);
        } else if (nd->op == KDC__OP_MAXPOOL || nd->op == KDC__OP_GAP) {
            add_channels(t, oc[0], (double)ic[1] * ic[2], KDC__SCHED_CH_CHUNK, threads);
        }
        /* AFFINE, RELU, ADD_RELU run in the epilogue of their conv */
    }
}

int main(int argc, char **argv)
{
    int tlist[8] = {1, 2, 4, 8, 16}, nt = 5;
    if (argc > 1 && !strcmp(argv[argc - 1], "-v")) {
        verbose = 1;
        argc--;
    }
    if (argc == 3 && !strcmp(argv[1], "--threads")) {
        tlist[0] = atoi(argv[2]);
        nt = 1;
        if (tlist[0] < 1 || tlist[0] > 256) {
            fprintf(stderr, "bench_split: --threads: '%s' is not in 1..256\n", argv[2]);
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: bench_split [--threads T] [-v]\n");
        return 2;
    }
    char dir[] = "/tmp/kdcam-split-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const char *archs[] = {"resnet50", "resnet101", "resnet152", "mobilenetv1"};
    printf("forward pass, 224x224, batch 1: pool jobs, tasks, threads used (work-weighted "
           "mean), busy share of the used threads and of all T (equal tasks, free job "
           "starts)\n");
    printf("%-12s %3s %6s %7s %6s %9s %7s\n", "model", "T", "jobs", "tasks", "used", "busy/used",
           "busy/T");
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, archs[a]);
        if (kdc_test_write_weights(path, archs[a], 1, 1000, "", 0)) {
            fprintf(stderr, "bench_split: cannot write %s weights\n", archs[a]);
            return 1;
        }
        kdc_model *m;
        CHECK(kdc_model_load(path, NULL, &m));
        remove(path);
        int *chw = malloc((size_t)m->n_nodes * 3 * sizeof *chw);
        if (!chw) {
            fprintf(stderr, "bench_split: out of memory\n");
            return 1;
        }
        CHECK(kdc__infer_shapes(m, 224, 224, chw));
        for (int i = 0; i < nt; i++) {
            tally t = {0};
            walk(m, chw, tlist[i], &t);
            printf("%-12s %3d %6d %7d %6.2f %8.1f%% %6.1f%%\n", archs[a], tlist[i], t.jobs,
                   t.tasks, t.used_work / t.work, 100.0 * t.work / t.used_span,
                   100.0 * t.work / (tlist[i] * t.span));
        }
        free(chw);
        kdc_model_destroy(m);
    }
    rmdir(dir);
    return 0;
}
