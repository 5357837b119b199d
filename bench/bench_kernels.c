/* bench_kernels.c - the convolution kernels against this machine's FMA peak.
 *
 * 1. The FMA peak of one core for each x86 vector width, measured with a
 *    register-only loop of independent FMA chains (kdc__f32_fma_peak_avx2,
 *    12 ymm chains; kdc__f32_fma_peak_avx512, 16 zmm chains); a kernel's
 *    percentage is of its own ISA's peak (without a peak, e.g. on aarch64,
 *    the percentage columns are 0).
 * 2. Every distinct conv layer shape of ResNet50 and MobileNetV1 at 224x224,
 *    batch 1, taken from the loaded models themselves: dense convs through
 *    the fast path of a model (kdc__conv2d_fast: 1x1 stride 1 is a plain
 *    GEMM on the NCHW activations, the others pack their im2col on the fly),
 *    for every SIMD ISA this CPU has, on 1 thread; depthwise 3x3 through
 *    the depthwise kernel table, plane by plane ("dw") and, where the table
 *    has one and the rows fit it, through its eight-channel kernel
 *    ("dw-c8"; a model runs it where kdc__dw_c8_forward says, e.g. AVX2
 *    always, AVX-512 for outputs up to 7 wide). Min and median of R runs,
 *    GFLOP/s (2 flops per multiply-add) and % of the peak.
 *    The sum over ResNet50's 1x1 layers (weighted by how often each shape
 *    occurs) is the "1x1 GEMMs at >= 75% of peak" figure.
 * 3. Whole forward passes, scalar reference kernels vs each SIMD ISA, 1 and
 *    2 threads (fused epilogues, nothing kept).
 * Prints a table, or JSON lines with --json.
 *
 * usage: bench_kernels [--runs R] [--json] [--no-models]
 * (other arguments, meant for the other benchmarks of make bench, are ignored) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conv_gemm.h"
#include "graph.h"
#define BENCH_NAME "bench_kernels"
#include "bench_util.h"
#include "kdcam.h"
#include "kernels.h"
#include "weightgen.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    return p;
}

/* GFLOP/s of the FMA loop of isa on this thread (0 without one): the best
 * of 200 runs of about 2 ms (short runs, so that some fall between the time
 * slices of other processes on a busy machine). */
static double fma_peak(kdc__isa isa)
{
#if defined(__x86_64__)
    if (!kdc__isa_supported(isa) || (isa != KDC__ISA_AVX2 && isa != KDC__ISA_AVX512))
        return 0.0;
    const long iters = isa == KDC__ISA_AVX2 ? 1000000 : 700000;
    const double flops = isa == KDC__ISA_AVX2 ? 192.0 : 512.0;
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int r = 0; r < 200; r++) {
        double t0 = now_ms();
        sink += isa == KDC__ISA_AVX2 ? kdc__f32_fma_peak_avx2(iters)
                                     : kdc__f32_fma_peak_avx512(iters);
        double t = now_ms() - t0;
        double g = iters * flops / (t * 1e6);
        best = g > best ? g : best;
    }
    (void)sink;
    return best;
#else
    (void)isa;
    return 0.0;
#endif
}

/* The SIMD ISAs benchmarked, with the kdc_kernels value that asks for each. */
static const struct {
    kdc__isa isa;
    kdc_kernels k;
} simd[] = {{KDC__ISA_AVX2, KDC_KERNELS_AVX2},
            {KDC__ISA_AVX512, KDC_KERNELS_AVX512},
            {KDC__ISA_NEON, KDC_KERNELS_NEON}};
enum { N_SIMD = sizeof simd / sizeof simd[0] };

typedef struct shape {
    int cin, cout, k, stride, pad, ih, iw, groups;
    int count; /* layers of the model with this shape */
    const kdc__conv_param *cp;
} shape;

static int collect(const kdc_model *m, shape *out, int max)
{
    int *chw = xmalloc((size_t)m->n_nodes * 3 * sizeof *chw);
    CHECK(kdc__infer_shapes(m, 224, 224, chw));
    int n = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        const kdc__node *nd = &m->nodes[i];
        if (nd->op != KDC__OP_CONV)
            continue;
        const kdc__conv_param *cp = &nd->p.conv;
        const int *in = chw + 3 * nd->in[0];
        shape s = {cp->cin, cp->cout, cp->kh, cp->stride, cp->pad, in[1], in[2], cp->groups, 1,
                   cp};
        int j = 0;
        for (; j < n; j++)
            if (out[j].cin == s.cin && out[j].cout == s.cout && out[j].k == s.k &&
                out[j].stride == s.stride && out[j].pad == s.pad && out[j].ih == s.ih &&
                out[j].iw == s.iw && out[j].groups == s.groups)
                break;
        if (j < n)
            out[j].count++;
        else if (n < max)
            out[n++] = s;
    }
    free(chw);
    return n;
}

static void bench_layers(const char *arch, const kdc_model *m, int runs, int json, double peak,
                         kdc__pool *pool, kdc__work *ws)
{
    shape sh[128];
    const int ns = collect(m, sh, 128);
    const kdc__dw_kernels *dw = kdc__dw_kernels_get(m->isa);
    double sum_1x1_flop = 0.0, sum_1x1_ms = 0.0;
    for (int s = 0; s < ns; s++) {
        const shape *L = &sh[s];
        const int oh = kdc__out_size(L->ih, L->k, L->stride, L->pad);
        const int ow = kdc__out_size(L->iw, L->k, L->stride, L->pad);
        /* a depthwise layer twice where the table has the eight-channel
         * kernel and its rows fit: plane by plane (v 0, "dw") and eight
         * channels at a time (v 1, "dw-c8") */
        const int nv = L->groups != 1 && dw && dw->dw3x3_c8 && kdc__dw_c8_pays(L->iw) ? 2 : 1;
        for (int v = 0; v < nv; v++) {
            const size_t nin = (size_t)L->cin * L->ih * L->iw, nout = (size_t)L->cout * oh * ow;
            float *x = xmalloc(nin * sizeof *x), *y = xmalloc(nout * sizeof *y);
            kdc_test_fill(x, nin, "input", 5, 0.0, 1.0);
            const int depthwise = L->groups != 1;
            if (depthwise && !dw) {
                free(x);
                free(y);
                continue;
            }
            if (!depthwise)
                CHECK(kdc__conv_reserve(ws, L->cp, L->ih, L->iw, oh, ow));
            double *t = xmalloc((size_t)runs * sizeof *t);
            for (int r = -1; r < runs; r++) { /* r = -1 warms up */
                double t0 = now_ms();
                if (!depthwise) {
                    kdc__conv2d_fast(pool, ws, m->gemm, L->cp, x, 1, L->ih, L->iw, y, oh, ow, NULL);
                } else {
                    const size_t ihw = (size_t)L->ih * L->iw, ohw = (size_t)oh * ow;
                    for (int c = 0; c < L->cin; c += v ? 8 : 1)
                        if (v)
                            dw->dw3x3_c8(x + c * ihw, ihw, L->ih, L->iw, L->cp->weight + 9 * c,
                                         NULL, y + c * ohw, ohw, oh, ow, L->stride, L->pad, NULL,
                                         c, L->cin - c < 8 ? L->cin - c : 8);
                        else
                            dw->dw3x3(x + c * ihw, L->ih, L->iw, L->cp->weight + 9 * c, 0.0f,
                                      y + c * ohw, oh, ow, L->stride, L->pad, NULL, c, NULL);
                }
                if (r >= 0)
                    t[r] = now_ms() - t0;
            }
            double mn, md;
            stats(t, runs, &mn, &md);
            const double flop =
                2.0 * L->cout * (double)(L->cin / L->groups) * L->k * L->k * oh * ow;
            const double gf = flop / (mn * 1e6);
            const char *kind = depthwise ? (v ? "dw-c8" : "dw")
                               : (L->k == 1 && L->stride == 1 && L->pad == 0) ? "gemm"
                                                                                : "padded";
            if (!strcmp(kind, "gemm")) {
                sum_1x1_flop += flop * L->count;
                sum_1x1_ms += mn * L->count;
            }
            char name[96];
            snprintf(name, sizeof name, "%dx%dx%d -> %d k%d s%d", L->cin, L->ih, L->iw, L->cout,
                     L->k, L->stride);
            if (json)
                printf("{\"bench\":\"kernels\",\"arch\":\"%s\",\"kernel\":\"%s\",\"kind\":\"%s\","
                       "\"cin\":%d,\"h\":%d,\"w\":%d,\"cout\":%d,\"k\":%d,\"stride\":%d,\"pad\":%d,"
                       "\"count\":%d,\"runs\":%d,\"min_ms\":%.4f,\"median_ms\":%.4f,"
                       "\"gflops\":%.2f,\"pct_peak\":%.1f}\n",
                       arch, depthwise ? dw->name : m->gemm->name, kind, L->cin, L->ih, L->iw,
                       L->cout, L->k, L->stride, L->pad, L->count, runs, mn, md, gf,
                       peak > 0 ? 100.0 * gf / peak : 0.0);
            else
                printf("%-12s %-28s %-6s %3d %9.3f %9.3f %8.1f %6.1f%%  %s\n", arch, name, kind,
                       L->count, mn, md, gf, peak > 0 ? 100.0 * gf / peak : 0.0,
                       depthwise ? dw->name : m->gemm->name);
            free(t);
            free(x);
            free(y);
        }
    }
    if (sum_1x1_ms > 0) {
        const double gf = sum_1x1_flop / (sum_1x1_ms * 1e6);
        if (json)
            printf("{\"bench\":\"kernels\",\"arch\":\"%s\",\"kernel\":\"%s\","
                   "\"kind\":\"gemm_1x1_total\",\"min_ms\":%.3f,\"gflops\":%.2f,"
                   "\"pct_peak\":%.1f}\n",
                   arch, m->gemm->name, sum_1x1_ms, gf, peak > 0 ? 100.0 * gf / peak : 0.0);
        else
            printf("%-12s %-28s %-6s %3s %9.3f %9s %8.1f %6.1f%%  %s\n", arch,
                   "all 1x1 stride 1", "gemm", "", sum_1x1_ms, "", gf,
                   peak > 0 ? 100.0 * gf / peak : 0.0, m->gemm->name);
    }
}

static void bench_model(const char *arch, const char *path, int runs, int json)
{
    const int h = 224, w = 224;
    float *x = xmalloc(3 * h * w * sizeof *x);
    kdc_test_fill(x, 3 * h * w, "input", 7001, 0.0, 2.0);
    for (int k = 0; k <= N_SIMD; k++) { /* k = 0: scalar, then each SIMD ISA */
        if (k > 0 && !kdc__isa_supported(simd[k - 1].isa))
            continue;
        kdc_model_options mo;
        kdc_model_options_init(&mo);
        mo.kernels = k == 0 ? KDC_KERNELS_SCALAR : simd[k - 1].k;
        kdc_model *m;
        CHECK(kdc_model_load(path, &mo, &m));
        for (int threads = 1; threads <= 2; threads++) {
            kdc_run_options ro = {.threads = threads};
            kdc_run *run;
            CHECK(kdc_run_create(m, &ro, &run));
            const int n = k == 0 ? (runs < 3 ? runs : 3) : runs; /* the scalar path is slow */
            double *t = xmalloc((size_t)n * sizeof *t);
            for (int r = -1; r < n; r++) {
                double t0 = now_ms();
                CHECK(kdc_run_forward(run, x, 1, h, w, NULL, 0));
                if (r >= 0)
                    t[r] = now_ms() - t0;
            }
            double mn, md;
            stats(t, n, &mn, &md);
            if (json)
                printf("{\"bench\":\"forward\",\"arch\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,"
                       "\"runs\":%d,\"min_ms\":%.3f,\"median_ms\":%.3f}\n",
                       arch, kdc_model_kernels(m), threads, n, mn, md);
            else
                printf("%-12s forward %-8s %d thread%s %9.2f %9.2f\n", arch, kdc_model_kernels(m),
                       threads, threads > 1 ? "s" : " ", mn, md);
            free(t);
            kdc_run_destroy(run);
        }
        kdc_model_destroy(m);
    }
    free(x);
}

int main(int argc, char **argv)
{
    int runs = 10, json = 0, models = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--no-models")) {
            models = 0;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            i++; /* make bench passes BENCH_ARGS to every benchmark: the layer
                  * table is 1 thread, the forward table 1 and 2 */
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: bench_kernels [--runs R] [--json] [--no-models]\n");
            return 0;
        }
        /* other arguments (architectures for bench_cam, ...) are not ours */
    }
    if (runs < 1) {
        fprintf(stderr, "bench_kernels: --runs must be positive\n");
        return 2;
    }
    double peaks[N_SIMD];
    for (int i = 0; i < N_SIMD; i++) {
        peaks[i] = fma_peak(simd[i].isa);
        if (peaks[i] <= 0)
            continue;
        if (json)
            printf("{\"bench\":\"fma_peak\",\"isa\":\"%s\",\"threads\":1,\"gflops\":%.2f}\n",
                   kdc__isa_name(simd[i].isa), peaks[i]);
        else
            printf("FMA peak (1 thread, register-only %s loop): %.1f GFLOP/s\n",
                   kdc__isa_name(simd[i].isa), peaks[i]);
    }
    if (!json)
        printf("\n%-12s %-28s %-6s %3s %9s %9s %8s %7s  %s\n", "arch",
               "layer (cin x h x w -> cout)", "path", "n", "min ms", "median ms", "GFLOP/s",
               "peak", "kernel");
    char tmpl[] = "/tmp/kdcam-bench-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    static const char *archs[2] = {"resnet50", "mobilenetv1"};
    char paths[2][128];
    kdc__pool *pool;
    kdc__work ws = {0};
    CHECK(kdc__pool_create(1, &pool));
    CHECK(kdc__work_reserve(&ws, 1));
    for (int a = 0; a < 2; a++) {
        snprintf(paths[a], sizeof paths[a], "%s/%s.safetensors", tmpl, archs[a]);
        if (kdc_test_write_weights(paths[a], archs[a], 1, 1000, "", 0)) {
            fprintf(stderr, "bench_kernels: cannot write %s weights\n", archs[a]);
            return 1;
        }
        int any = 0;
        for (int i = 0; i < N_SIMD; i++) {
            if (!kdc__isa_supported(simd[i].isa))
                continue;
            kdc_model_options mo;
            kdc_model_options_init(&mo);
            mo.kernels = simd[i].k;
            kdc_model *m;
            CHECK(kdc_model_load(paths[a], &mo, &m));
            bench_layers(archs[a], m, runs, json, peaks[i], pool, &ws);
            kdc_model_destroy(m);
            any = 1;
        }
        if (!any)
            printf("%s: no SIMD kernels on this CPU, layer timings skipped\n", archs[a]);
    }
    kdc__work_free(&ws);
    kdc__pool_destroy(pool);
    if (models) {
        if (!json)
            printf("\n%-12s %-7s %-8s %-9s %9s %9s\n", "arch", "", "kernels", "threads",
                   "min ms", "median ms");
        for (int a = 0; a < 2; a++)
            bench_model(archs[a], paths[a], runs, json);
    }
    for (int a = 0; a < 2; a++)
        remove(paths[a]);
    rmdir(tmpl);
    return 0;
}
