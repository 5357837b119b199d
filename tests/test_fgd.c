/* test_fgd.c - FGD's attention views (kdc_fgd_attention, and
 * kdc_feature_map's KDC_REDUCE_FGD) against tools/gen_fgd_fixtures.py, which
 * runs get_attention as yzd-v/FGD's fgd.py writes it (PyTorch, float64), at
 * T = 0.5 (FGD's configs) and T = 2; and the argument errors. Run from the
 * repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdcam.h"

#define FIX "tests/fixtures/fgd/"
enum { N = 2, C = 6, H = 5, W = 7 };

static float *load(const char *name, size_t want)
{
    float *d = NULL;
    int nd;
    int64_t dims[8];
    if (kdc_npy_load(name, &d, &nd, dims))
        fail_msg("%s: %s", name, kdc_last_error());
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)dims[i];
    assert_int_equal(n, want);
    return d;
}

/* worst relative difference of got from want (float32 of float64 values) */
static double worst_rel(const float *got, const float *want, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]) / fabs((double)want[i]));
    return worst;
}

static void test_reference(void **state)
{
    (void)state;
    float *act = load(FIX "act.npy", N * C * H * W);
    static const struct { float t; const char *tag; } temps[2] = {{0.5f, "0p5"}, {2.0f, "2"}};
    for (int k = 0; k < 2; k++) {
        char sp[128], cp[128];
        snprintf(sp, sizeof sp, FIX "spatial_%s.npy", temps[k].tag);
        snprintf(cp, sizeof cp, FIX "channel_%s.npy", temps[k].tag);
        float *ws = load(sp, N * H * W), *wc = load(cp, N * C);
        float s[N * H * W], c[N * C];
        assert_int_equal(kdc_fgd_attention(act, N, C, H, W, temps[k].t, s, c), KDC_OK);
        const double es = worst_rel(s, ws, N * H * W), ec = worst_rel(c, wc, N * C);
        printf("# T = %g: spatial worst %.2g, channel worst %.2g (relative)\n",
               (double)temps[k].t, es, ec);
        assert_true(es <= 1e-6 && ec <= 1e-6);
        /* the views differ from a plain mean: the test can fail */
        assert_true(fabs(s[0] - s[1]) > 1e-3);
        if (k == 0) {
            float f[N * H * W];
            assert_int_equal(kdc_feature_map(act, N, C, H, W, KDC_REDUCE_FGD, f), KDC_OK);
            assert_memory_equal(f, s, sizeof f);
        }
        kdc_free(ws);
        kdc_free(wc);
    }
    /* one view alone */
    float c1[N * C];
    assert_int_equal(kdc_fgd_attention(act, N, C, H, W, 0.5f, NULL, c1), KDC_OK);
    kdc_free(act);
}

static void test_errors(void **state)
{
    (void)state;
    float a[4] = {1, 2, 3, 4}, s[4], c[1];
    assert_int_equal(kdc_fgd_attention(NULL, 1, 1, 2, 2, 0.5f, s, c), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_fgd_attention(a, 1, 1, 2, 2, 0.5f, NULL, NULL),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_fgd_attention(a, 1, 1, 2, 2, 0.0f, s, c), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_fgd_attention(a, 1, 1, 2, 2, NAN, s, c), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_fgd_attention(a, 0, 1, 2, 2, 0.5f, s, c), KDC_ERR_SHAPE);
    assert_int_equal(kdc_feature_map(a, 1, 1, 2, 2, (kdc_reduce)5, s), KDC_ERR_INVALID_ARGUMENT);
    /* a constant map: every cell 1 */
    float k[4] = {2, 2, 2, 2};
    assert_int_equal(kdc_fgd_attention(k, 1, 1, 2, 2, 0.5f, s, c), KDC_OK);
    for (int i = 0; i < 4; i++)
        assert_true(fabs(s[i] - 1.0f) < 1e-6f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
