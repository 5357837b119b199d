/* test_bench_cli.c - `kdcam bench --batch N`: the batch is run and reported
 * (batch, images per second consistent with the median), every task takes
 * it, and a bad count is a one-line error; `--layers`: the per-layer table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cliexec.h"
#include "weightgen.h"

static char wmb[300];

static int setup(void **state)
{
    (void)state;
    if (cliexec_setup())
        return -1;
    snprintf(wmb, sizeof wmb, "%s/mbv1.safetensors", cliexec_dir());
    return kdc_test_write_weights(wmb, "mobilenetv1", 1001, 10, "", 0);
}

static int teardown(void **state)
{
    (void)state;
    remove(wmb);
    cliexec_teardown();
    return 0;
}

/* The numbers after "batch":, "median_ms": and "images_per_s": of one
 * JSON line, in that order (cmocka failure if one is missing). */
static void bench_numbers(const char *json, double v[3])
{
    static const char *const keys[3] = {"\"batch\":", "\"median_ms\":", "\"images_per_s\":"};
    for (int i = 0; i < 3; i++) {
        const char *at = strstr(json, keys[i]);
        assert_non_null(at);
        v[i] = strtod(at + strlen(keys[i]), NULL);
    }
}

static void test_batch(void **state)
{
    (void)state;
    const char *tasks[] = {"forward", "gradcam", "guided"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cliexec_run("bench -w %s --size 64x80 --task %s --batch 3 --runs 2 "
                                     "-t 2 --json", wmb, tasks[i]),
                         0);
        double v[3];
        bench_numbers(cliexec_out, v);
        const double batch = v[0], med = v[1], ips = v[2];
        assert_true(batch == 3.0);
        assert_true(med > 0.0);
        /* printed with 3 decimals: images/s = batch / median */
        if (!(ips > 0.0 && ips * med / 3e3 > 0.999 && ips * med / 3e3 < 1.001))
            fail_msg("%s: %g images/s with a median of %g ms for 3 images", tasks[i], ips, med);
    }
    assert_int_equal(cliexec_run("bench -w %s --size 64x80 --batch 2 --runs 1", wmb), 0);
    assert_non_null(strstr(cliexec_out, "batch 2,"));
    assert_non_null(strstr(cliexec_out, "images/s"));
    assert_int_equal(cliexec_run("bench -w %s --size 64x80 --runs 1", wmb), 0);
    assert_non_null(strstr(cliexec_out, "batch 1,"));
    assert_null(strstr(cliexec_out, "images/s"));
}

/* --layers: the per-layer table, in text and JSON: a conv and the
 * depthwise conv of a group are listed, the layers fused into them (their
 * BatchNorm and ReLU) are not, and the layers' minima sum to at most the
 * fastest run (each run's layers take part of it). */
static void test_layers(void **state)
{
    (void)state;
    assert_int_equal(cliexec_run("bench -w %s --size 64x80 --runs 3 --layers --json", wmb), 0);
    const char *at = strstr(cliexec_out, "\"layers\":[");
    assert_non_null(at);
    assert_non_null(strstr(at, "\"name\":\"model.1.3\""));
    assert_non_null(strstr(at, "\"name\":\"model.1.0\""));
    assert_null(strstr(at, "\"name\":\"model.1.1\""));
    assert_null(strstr(at, "\"name\":\"model.1.4\""));
    double v[3];
    bench_numbers(cliexec_out, v);
    const char *mn = strstr(cliexec_out, "\"min_ms\":");
    assert_non_null(mn);
    const double pass_min = strtod(mn + strlen("\"min_ms\":"), NULL);
    double sum = 0.0;
    int count = 0;
    for (const char *p = strstr(at, "\"min_ms\":"); p; p = strstr(p + 1, "\"min_ms\":")) {
        const double lmin = strtod(p + strlen("\"min_ms\":"), NULL);
        const char *mean = strstr(p, "\"mean_ms\":");
        assert_non_null(mean);
        assert_true(lmin > 0.0 && lmin <= strtod(mean + strlen("\"mean_ms\":"), NULL) + 1e-4);
        sum += lmin;
        count++;
    }
    assert_true(count >= 20); /* MobileNetV1: 27 convs, the pooling, fc */
    /* printed with 4 and 3 decimals */
    if (!(sum <= pass_min + 1e-4 * count + 1e-3))
        fail_msg("layer minima sum to %.4f ms, the fastest run took %.3f ms", sum, pass_min);
    assert_int_equal(cliexec_run("bench -w %s --size 64x80 --runs 1 --layers --task guided", wmb),
                     0);
    assert_non_null(strstr(cliexec_out, "sum of the layers' minima"));
    assert_non_null(strstr(cliexec_out, "model.13.3"));
}

static void test_bad_batch(void **state)
{
    (void)state;
    cliexec_expect_error(cliexec_run("bench -w %s --batch 0", wmb), "--batch");
    cliexec_expect_error(cliexec_run("bench -w %s --batch 5000", wmb), "--batch");
    cliexec_expect_error(cliexec_run("bench -w %s --batch x", wmb), "'x'");
    /* only bench takes it */
    cliexec_expect_error(cliexec_run("classify -w %s --batch 2 x.png", wmb), "--batch");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_bad_batch),
        cmocka_unit_test(test_layers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
