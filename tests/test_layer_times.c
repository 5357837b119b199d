/* test_layer_times.c - kdc_run_time_layers / kdc_run_layer_times: the
 * states they refuse, and times that are consistent with the pass they
 * come from (non-negative, layer 0 at 0, their sum within the wall-clock
 * time of the call around them, the convs' own time present). No speed is
 * asserted. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kdcam.h"
#include "testkit.h"
#include "weightgen.h"

static void test_layer_times(void **state)
{
    (void)state;
    assert_int_equal(tk_tmpdir_create("times"), 0);
    kdc_model *m;
    assert_int_equal(kdc_model_load(tk_weights_file("mobilenetv1", 5, 10, "", 0), NULL, &m),
                     KDC_OK);
    tk_tmpdir_remove();
    const int nl = kdc_model_num_layers(m), h = 64, w = 48;
    kdc_run *r;
    kdc_run_options ro = {.threads = 2};
    assert_int_equal(kdc_run_create(m, &ro, &r), KDC_OK);
    double *ms = calloc((size_t)nl, sizeof *ms);
    float *x = malloc(3 * (size_t)h * w * sizeof *x);
    assert_non_null(ms);
    assert_non_null(x);
    kdc_test_fill(x, 3 * (size_t)h * w, "input", 3, 0.0, 1.0);

    /* off: refused, even after a pass */
    assert_int_equal(kdc_run_forward(r, x, 1, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_layer_times(r, ms, nl), KDC_ERR_STATE);
    assert_non_null(strstr(kdc_last_error(), "off"));
    assert_int_equal(kdc_run_time_layers(NULL, 1), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_run_time_layers(r, 1), KDC_OK);
    /* on, no pass since */
    assert_int_equal(kdc_run_layer_times(r, ms, nl), KDC_ERR_STATE);
    for (int grad = 0; grad <= 1; grad++) {
        const double t0 = tk_now();
        assert_int_equal(grad ? kdc_run_forward_grad(r, x, 1, h, w, NULL, 0, 0)
                              : kdc_run_forward(r, x, 1, h, w, NULL, 0),
                         KDC_OK);
        const double wall = 1e3 * (tk_now() - t0);
        assert_int_equal(kdc_run_layer_times(r, ms, nl - 1), KDC_ERR_INVALID_ARGUMENT);
        assert_int_equal(kdc_run_layer_times(r, NULL, nl), KDC_ERR_INVALID_ARGUMENT);
        assert_int_equal(kdc_run_layer_times(r, ms, nl), KDC_OK);
        double sum = 0.0;
        for (int i = 0; i < nl; i++) {
            assert_true(isfinite(ms[i]) && ms[i] >= 0.0);
            sum += ms[i];
        }
        assert_true(ms[0] == 0.0);
        if (!(sum <= wall))
            fail_msg("layer times sum to %.4f ms, the call took %.4f ms", sum, wall);
        int conv;
        assert_int_equal(kdc_model_find_layer(m, "model.1.3", &conv), KDC_OK);
        assert_true(ms[conv] > 0.0);
    }
    /* a failed pass leaves no times */
    x[7] = NAN;
    assert_int_equal(kdc_run_forward(r, x, 1, h, w, NULL, 0), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_run_layer_times(r, ms, nl), KDC_ERR_STATE);
    x[7] = 0.5f;
    assert_int_equal(kdc_run_forward(r, x, 1, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_layer_times(r, ms, nl), KDC_OK);
    /* off again */
    assert_int_equal(kdc_run_time_layers(r, 0), KDC_OK);
    assert_int_equal(kdc_run_forward(r, x, 1, h, w, NULL, 0), KDC_OK);
    assert_int_equal(kdc_run_layer_times(r, ms, nl), KDC_ERR_STATE);
    free(ms);
    free(x);
    kdc_run_destroy(r);
    kdc_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
