/* test_sched.c - the job split (lib/run/sched.h) and the capped thread pool
 * (lib/core/threadpool.c): every split covers its work exactly once, a job
 * capped to k threads runs on at most k of them, small work is not spread,
 * and whole models give the same bits on 1, 2, 3, 5 and 16 threads (more
 * threads than this machine has cores: the split depends on the thread
 * count, the results must not), and with the transposed weights kept in
 * the model or made per layer (large inputs). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kdcam.h"
#include "kit.h"
#include "sched.h"
#include "testkit.h"
#include "threadpool.h"
#include "weightgen.h"

static void test_channel_split(void **state)
{
    (void)state;
    const int threads_list[] = {1, 2, 3, 8, 16, 64};
    const int channels_list[] = {1, 3, 7, 8, 64, 100, 2048};
    const double planes[] = {1.0, 49.0, 3136.0, 12544.0};
    for (size_t a = 0; a < sizeof threads_list / sizeof *threads_list; a++)
        for (size_t c = 0; c < sizeof channels_list / sizeof *channels_list; c++)
            for (size_t p = 0; p < sizeof planes / sizeof *planes; p++)
                for (int nimg = 1; nimg <= 3; nimg++) {
                    const int th = threads_list[a], ch = channels_list[c];
                    kdc__sched_ch s;
                    kdc__sched_channels(nimg, ch, planes[p], KDC__SCHED_CH_CHUNK, th, &s);
                    assert_true(s.threads >= 1 && s.threads <= th);
                    assert_true(s.chunk >= 1 && s.chunk <= KDC__SCHED_CH_CHUNK);
                    /* every (image, channel) exactly once */
                    int *seen = tk_xmalloc((size_t)nimg * ch * sizeof *seen);
                    memset(seen, 0, (size_t)nimg * ch * sizeof *seen);
                    for (int t = 0; t < s.jobs; t++) {
                        int b, c0, c1;
                        kdc__sched_ch_range(&s, t, ch, &b, &c0, &c1);
                        assert_true(b >= 0 && b < nimg && c0 < c1 && c1 <= ch);
                        for (int k = c0; k < c1; k++)
                            seen[b * ch + k]++;
                    }
                    for (int k = 0; k < nimg * ch; k++)
                        assert_int_equal(seen[k], 1);
                    free(seen);
                    /* too little work for a second thread stays on one */
                    if ((double)nimg * ch * planes[p] < KDC__SCHED_MIN_FLOATS)
                        assert_int_equal(s.threads, 1);
                    /* in whole groups of 8 channels: every (image, channel)
                     * once, every job's first channel a multiple of 8 */
                    kdc__sched_channels_q(nimg, ch, planes[p], KDC__SCHED_CH_CHUNK, 8, th, &s);
                    assert_true(s.chunk % 8 == 0 && s.threads >= 1 && s.threads <= th);
                    seen = tk_xmalloc((size_t)nimg * ch * sizeof *seen);
                    memset(seen, 0, (size_t)nimg * ch * sizeof *seen);
                    for (int t = 0; t < s.jobs; t++) {
                        int b, c0, c1;
                        kdc__sched_ch_range(&s, t, ch, &b, &c0, &c1);
                        assert_true(b >= 0 && b < nimg && c0 < c1 && c1 <= ch && c0 % 8 == 0);
                        for (int k = c0; k < c1; k++)
                            seen[b * ch + k]++;
                    }
                    for (int k = 0; k < nimg * ch; k++)
                        assert_int_equal(seen[k], 1);
                    free(seen);
                }
}

static void test_gemm_split(void **state)
{
    (void)state;
    const int threads_list[] = {1, 2, 3, 8, 16};
    const int mt_list[] = {1, 2, 8, 128, 256}, nt_list[] = {1, 2, 5, 98, 392};
    for (size_t a = 0; a < 5; a++)
        for (size_t i = 0; i < 5; i++)
            for (size_t j = 0; j < 5; j++)
                for (int nimg = 1; nimg <= 2; nimg++) {
                    const int th = threads_list[a], mt = mt_list[i], nt = nt_list[j];
                    const double macs = (double)nimg * mt * 8 * nt * 32 * 576;
                    int mp, np;
                    const int used = kdc__sched_gemm(mt, nt, nimg, macs, th, &mp, &np);
                    assert_true(used >= 1 && used <= th);
                    assert_true(mp >= 1 && np >= 1);
                    /* parts are whole panels, none empty */
                    assert_true(mp <= mt && np <= nt);
                    for (int k = 0; k < mp; k++)
                        assert_true(kdc__sched_part(mt, mp, k) < kdc__sched_part(mt, mp, k + 1));
                    if (macs < 2.0 * KDC__SCHED_MIN_MACS)
                        assert_int_equal(used, 1);
                    if (used > 1) /* enough jobs to keep the used threads busy */
                        assert_true(nimg * mp * np >= used || mp == (mt / 2 > 0 ? mt / 2 : 1));
                }
}

/* Each task records the thread that ran it. */
typedef struct capped_ctx {
    pthread_t who[64];
    atomic_int runs[64];
} capped_ctx;

static void capped_task(void *ctx, int t)
{
    capped_ctx *c = ctx;
    c->who[t] = pthread_self();
    atomic_fetch_add(&c->runs[t], 1);
    for (volatile int spin = 0; spin < 20000; spin++) /* give others a chance to join */
        ;
}

static void test_pool_cap(void **state)
{
    (void)state;
    kdc__pool *pool;
    assert_int_equal(kdc__pool_create(8, &pool), KDC_OK);
    for (int round = 0; round < 200; round++) {
        const int cap = 1 + round % 9, ntasks = 1 + round % 64;
        capped_ctx *c = tk_xmalloc(sizeof *c);
        for (int t = 0; t < 64; t++)
            atomic_init(&c->runs[t], 0);
        if (round % 3)
            kdc__pool_run_capped(pool, ntasks, cap, capped_task, c);
        else
            kdc__pool_run(pool, ntasks, capped_task, c);
        const int limit = round % 3 ? cap : 8;
        int distinct = 0;
        pthread_t ids[64];
        for (int t = 0; t < ntasks; t++) {
            assert_int_equal(atomic_load(&c->runs[t]), 1);
            int k = 0;
            while (k < distinct && !pthread_equal(ids[k], c->who[t]))
                k++;
            if (k == distinct)
                ids[distinct++] = c->who[t];
        }
        if (distinct > limit)
            fail_msg("round %d: a job capped to %d threads ran on %d", round, limit, distinct);
        free(c);
    }
    kdc__pool_destroy(pool);
}

/* Fused logits and the guided input gradient of a batch, on t threads. */
static void run_model(const char *path, int n, int h, int w, int threads, float *logits,
                      int nlog, float *grad)
{
    kdc_model *m;
    kdc_run *r;
    assert_int_equal(kdc_model_load(path, NULL, &m), KDC_OK);
    kdc_run_options ro = {.threads = threads};
    assert_int_equal(kdc_run_create(m, &ro, &r), KDC_OK);
    const size_t nx = (size_t)n * 3 * h * w;
    float *x = tk_xmalloc(nx * sizeof *x);
    kdc_test_fill(x, nx, "input", 23, 0.0, 2.0);
    assert_int_equal(kdc_run_forward(r, x, n, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_read_layer(r, kdc_model_num_layers(m) - 1, logits, (size_t)nlog),
                     KDC_OK);
    kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED, .target = {.kind = KDC_TARGET_LOGIT}};
    assert_int_equal(kdc_attribution_compute(r, x, n, h, w, &ao, grad), KDC_OK);
    free(x);
    kdc_run_destroy(r);
    kdc_model_destroy(m);
}

static void same_bits(const char *scheme, int n, int h, int w)
{
    const char *path = tk_weights_file(scheme, 77, 10, "", 0);
    assert_non_null(path);
    const int nlog = n * 10;
    const size_t nx = (size_t)n * 3 * h * w;
    float l1[40], lt[40];
    float *g1 = tk_xmalloc(nx * sizeof *g1), *gt = tk_xmalloc(nx * sizeof *gt);
    run_model(path, n, h, w, 1, l1, nlog, g1);
    const int threads[] = {2, 3, 5, 16};
    for (int i = 0; i < 4; i++) {
        run_model(path, n, h, w, threads[i], lt, nlog, gt);
        if (memcmp(l1, lt, (size_t)nlog * sizeof *l1) || memcmp(g1, gt, nx * sizeof *g1))
            fail_msg("%s: %d threads differ from 1", scheme, threads[i]);
    }
    printf("  %s %dx3x%dx%d: logits and guided gradient equal on 1, 2, 3, 5, 16 threads\n",
           scheme, n, h, w);
    free(g1);
    free(gt);
}

static void test_resnet50_threads(void **state)
{
    (void)state;
    same_bits("resnet50", 3, 64, 80);
}

static void test_mobilenet_threads(void **state)
{
    (void)state;
    same_bits("mobilenetv1", 2, 96, 112);
}

/* A plain pass over a batch runs its convolutions image by image when no
 * layer is kept and an image's activations outweigh the weights
 * (forward.c, kdc__image_major_end: MobileNetV1 at 224 x 224, not
 * ResNet-50 at 64 x 80), else layer by layer: both give every image the
 * logits of its own batch-1 pass, to the bit, on 1 and 2 threads, with
 * layer timing on too (a different loop); and the kept layer reads back as
 * at batch 1. */
static void batch_as_singles(const char *scheme, int n, int h, int w)
{
    const char *path = tk_weights_file(scheme, 77, 10, "", 0);
    assert_non_null(path);
    const size_t img = (size_t)3 * h * w;
    float *x = tk_xmalloc((size_t)n * img * sizeof *x);
    kdc_test_fill(x, (size_t)n * img, "input", 31, 0.0, 2.0);
    kdc_model *m;
    assert_int_equal(kdc_model_load(path, NULL, &m), KDC_OK);
    const int last = kdc_model_num_layers(m) - 1, mid = last / 2;
    float one[10], *batch = tk_xmalloc((size_t)n * 10 * sizeof *batch);
    for (int threads = 1; threads <= 2; threads++)
        for (int variant = 0; variant < 3; variant++) { /* plain, timed, a kept layer */
            kdc_run *r;
            kdc_run_options ro = {.threads = threads};
            assert_int_equal(kdc_run_create(m, &ro, &r), KDC_OK);
            assert_int_equal(kdc_run_time_layers(r, variant == 1), KDC_OK);
            const int keep[1] = {mid};
            const int nkeep = variant == 2;
            assert_int_equal(kdc_run_forward(r, x, n, h, w, keep, nkeep), KDC_OK);
            assert_int_equal(kdc_run_read_layer(r, last, batch, (size_t)n * 10), KDC_OK);
            size_t nmid = 0;
            float *kept = NULL, *kept1 = NULL;
            if (nkeep) {
                int nchw[4];
                assert_int_equal(kdc_run_layer_shape(r, mid, nchw), KDC_OK);
                nmid = (size_t)nchw[1] * nchw[2] * nchw[3];
                kept = tk_xmalloc((size_t)n * nmid * sizeof *kept);
                kept1 = tk_xmalloc(nmid * sizeof *kept1);
                assert_int_equal(kdc_run_read_layer(r, mid, kept, (size_t)n * nmid), KDC_OK);
            }
            for (int b = 0; b < n; b++) {
                assert_int_equal(kdc_run_forward(r, x + (size_t)b * img, 1, h, w, keep, nkeep),
                                 KDC_OK);
                assert_int_equal(kdc_run_read_layer(r, last, one, 10), KDC_OK);
                if (memcmp(one, batch + (size_t)b * 10, sizeof one))
                    fail_msg("%s batch %d, %d threads, variant %d: image %d's logits differ "
                             "from its batch-1 pass", scheme, n, threads, variant, b);
                if (nkeep) {
                    assert_int_equal(kdc_run_read_layer(r, mid, kept1, nmid), KDC_OK);
                    assert_memory_equal(kept1, kept + (size_t)b * nmid, nmid * sizeof *kept1);
                }
            }
            free(kept);
            free(kept1);
            kdc_run_destroy(r);
        }
    printf("  %s %dx3x%dx%d: batch logits = batch-1 logits (image by image, timed, kept)\n",
           scheme, n, h, w);
    kdc_model_destroy(m);
    free(batch);
    free(x);
}

static void test_batch_as_singles(void **state)
{
    (void)state;
    batch_as_singles("mobilenetv1", 3, 224, 224);
    batch_as_singles("resnet50", 3, 64, 80);
}

static int setup(void **state)
{
    (void)state;
    return tk_tmpdir_create("sched");
}

static int teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

/* Images above KDC__WT_KEEP_PIXELS transpose each layer's weights into the
 * run instead of keeping them in the model: the same gradient either way
 * (a model that kept them from a small run first, and a fresh one). */
static void test_transient_weights(void **state)
{
    (void)state;
    const char *path = tk_weights_file("mobilenetv1", 77, 10, "", 0);
    assert_non_null(path);
    const int h = 464, w = 448; /* 207872 pixels > 4 x 224 x 224 */
    const size_t nx = (size_t)3 * h * w;
    float *x = tk_xmalloc(nx * sizeof *x), *g[2];
    kdc_test_fill(x, nx, "input", 29, 0.0, 2.0);
    kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED, .target = {.kind = KDC_TARGET_LOGIT}};
    for (int k = 0; k < 2; k++) {
        kdc_model *m;
        kdc_run *r;
        assert_int_equal(kdc_model_load(path, NULL, &m), KDC_OK);
        kdc_run_options ro = {.threads = 2};
        assert_int_equal(kdc_run_create(m, &ro, &r), KDC_OK);
        g[k] = tk_xmalloc(nx * sizeof *g[k]);
        if (k == 0) /* a small input first: every layer's copy is kept */
            assert_int_equal(kdc_attribution_compute(r, x, 1, 64, 64, &ao, g[k]), KDC_OK);
        assert_int_equal(kdc_attribution_compute(r, x, 1, h, w, &ao, g[k]), KDC_OK);
        kdc_run_destroy(r);
        kdc_model_destroy(m);
    }
    assert_memory_equal(g[0], g[1], nx * sizeof *g[0]);
    free(g[0]);
    free(g[1]);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_split),
        cmocka_unit_test(test_gemm_split),
        cmocka_unit_test(test_pool_cap),
        cmocka_unit_test(test_resnet50_threads),
        cmocka_unit_test(test_mobilenet_threads),
        cmocka_unit_test(test_batch_as_singles),
        cmocka_unit_test(test_transient_weights),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
