/* test_attr_cli.c - `kdcam cam` with the propagation attributions of issue
 * 19 (part B): what the command writes equals what the library computes
 * (deeplift with --baseline black and FILE.npy, lrp with --lrp-rule gamma
 * and per-layer relevance, fullgrad; part C: dff with --components,
 * kpcacam with --kpca-kernel, finercam with --finer-alpha), and its usage
 * errors (one line,
 * non-zero exit). The numbers themselves are checked against PyTorch in
 * test_attr.c. Generated KD MobileNetV1 weights, a 1 x 3 x 49 x 67 input.
 *
 * Run from the repository root (make test). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdcam.h"
#include "util/cliexec.h"
#include "util/testkit.h"
#include "util/weightgen.h"

enum { N = 1, H = 49, W = 67 };

static char weights[512], xnpy[512], bnpy[512], out[512];

static int setup(void **state)
{
    (void)state;
    if (cliexec_setup() || tk_tmpdir_create("test_attr_cli"))
        return -1;
    snprintf(weights, sizeof weights, "%s", tk_weights_file("mobilenetv1", 1001, 10, "", 0));
    snprintf(xnpy, sizeof xnpy, "%s/x.npy", cliexec_dir());
    snprintf(bnpy, sizeof bnpy, "%s/b.npy", cliexec_dir());
    snprintf(out, sizeof out, "%s/out", cliexec_dir());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[1700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", out, xnpy, bnpy);
    if (system(cmd) != 0)
        return -1;
    tk_tmpdir_remove();
    cliexec_teardown();
    return 0;
}

/* The .npy the command wrote must equal ref (count floats) exactly. */
static void expect_npy(const char *name, const float *ref, size_t count)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", out, name);
    float *got = NULL;
    int nd;
    int64_t d[8];
    CHECK_OK(kdc_npy_load(path, &got, &nd, d));
    size_t cnt = 1;
    for (int i = 0; i < nd; i++)
        cnt *= (size_t)d[i];
    assert_int_equal(cnt, count);
    for (size_t i = 0; i < count; i++)
        if (got[i] != ref[i])
            fail_msg("%s: value %zu is %g, the library gives %g", name, i, (double)got[i],
                     (double)ref[i]);
    kdc_free(got);
}

static void cli_matches_library(void **state)
{
    (void)state;
    const size_t cnt = (size_t)N * 3 * H * W;
    float *x = malloc(cnt * sizeof *x), *b = malloc(cnt * sizeof *b), *a = malloc(cnt * sizeof *a);
    assert_true(x && b && a);
    kdc_test_fill(x, cnt, "input", 7301, 0.0, 2.0);
    int64_t d4[4] = {N, 3, H, W};
    CHECK_OK(kdc_npy_save(xnpy, x, 4, d4));
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    CHECK_OK(kdc_model_load(weights, NULL, &m));
    CHECK_OK(kdc_run_create(m, NULL, &run));
    kdc_preprocess pp;
    kdc_model_preprocess(m, &pp);

    /* deeplift against the black image */
    for (size_t i = 0; i < cnt; i++) {
        const int c = (int)(i / ((size_t)H * W) % 3);
        b[i] = (0.0f - pp.mean[c]) / pp.std[c];
    }
    kdc_attribution_options ao;
    memset(&ao, 0, sizeof ao);
    ao.kind = KDC_ATTR_DEEPLIFT;
    ao.baseline = b;
    CHECK_OK(kdc_attribution_compute(run, x, N, H, W, &ao, a));
    assert_int_equal(cliexec_run("cam -w %s --input-npy %s -o %s --npy --method deeplift "
                                 "--baseline black", weights, xnpy, out), 0);
    expect_npy("x.deeplift.raw.npy", a, cnt);
    /* and against a baseline file */
    for (size_t i = 0; i < cnt; i++)
        b[i] = 0.25f * x[(i * 7) % cnt];
    CHECK_OK(kdc_npy_save(bnpy, b, 4, d4));
    CHECK_OK(kdc_attribution_compute(run, x, N, H, W, &ao, a));
    assert_int_equal(cliexec_run("cam -w %s --input-npy %s -o %s --npy --method deeplift "
                                 "--baseline %s", weights, xnpy, out, bnpy), 0);
    expect_npy("x.deeplift.raw.npy", a, cnt);

    /* lrp, gamma rule, at the input and at model.11 */
    ao.kind = KDC_ATTR_LRP;
    ao.baseline = NULL;
    ao.lrp_rule = KDC_LRP_GAMMA;
    ao.lrp_epsilon = 0.1f;
    ao.lrp_gamma = 0.5f;
    CHECK_OK(kdc_attribution_compute(run, x, N, H, W, &ao, a));
    int layer;
    CHECK_OK(kdc_model_find_layer(m, "model.11", &layer));
    const size_t lcnt = (size_t)N * 512 * 4 * 5;
    float *r = malloc(lcnt * sizeof *r);
    assert_non_null(r);
    CHECK_OK(kdc_lrp_relevance(run, x, N, H, W, &ao, layer, r, lcnt));
    assert_int_equal(cliexec_run("cam -w %s --input-npy %s -o %s --npy --method lrp --lrp-rule "
                                 "gamma --lrp-epsilon 0.1 --lrp-gamma 0.5 --layer model.11",
                                 weights, xnpy, out), 0);
    expect_npy("x.lrp.raw.npy", a, cnt);
    expect_npy("x.lrp.raw.model.11.npy", r, lcnt);
    free(r);

    /* fullgrad: the raw map at input size */
    kdc_cam_options co;
    memset(&co, 0, sizeof co);
    co.method = KDC_CAM_FULLGRAD;
    kdc_cam_result *res = NULL;
    CHECK_OK(kdc_cam_compute(run, x, N, H, W, &co, &res));
    assert_int_equal(cliexec_run("cam -w %s --input-npy %s -o %s --npy --method fullgrad",
                                 weights, xnpy, out), 0);
    expect_npy("x.fullgrad.raw.npy", res->raw[0], (size_t)N * H * W);
    expect_npy("x.fullgrad.npy", res->map, (size_t)N * H * W);
    kdc_cam_result_destroy(res);

    /* part C: kpcacam (rbf) and finercam (alpha 0.5) raw maps */
    int top;
    CHECK_OK(kdc_model_find_layer(m, "model.13", &top));
    co.layers = &top;
    co.nlayers = 1;
    co.kpca_kernel = KDC_KPCA_RBF;
    co.finer_alpha = 0.5f;
    static const struct { kdc_cam_method m; const char *args, *file; } part_c[] = {
        {KDC_CAM_KPCACAM, "--method kpcacam --kpca-kernel rbf", "x.kpcacam.raw.npy"},
        {KDC_CAM_FINERCAM, "--method finercam --finer-alpha 0.5", "x.finercam.raw.npy"},
    };
    for (int i = 0; i < 2; i++) {
        co.method = part_c[i].m;
        CHECK_OK(kdc_cam_compute(run, x, N, H, W, &co, &res));
        assert_int_equal(cliexec_run("cam -w %s --input-npy %s -o %s --npy %s", weights, xnpy,
                                     out, part_c[i].args), 0);
        expect_npy(part_c[i].file, res->raw[0], (size_t)N * res->raw_h[0] * res->raw_w[0]);
        kdc_cam_result_destroy(res);
    }

    /* dff: 3 concepts at model.13 */
    int s4[4];
    CHECK_OK(kdc_run_forward(run, x, N, H, W, &top, 1));
    CHECK_OK(kdc_run_layer_shape(run, top, s4));
    const size_t acnt = (size_t)N * s4[1] * s4[2] * s4[3], mcnt = (size_t)N * 3 * s4[2] * s4[3];
    float *act = malloc(acnt * sizeof *act), *con = malloc((size_t)s4[1] * 3 * sizeof *con);
    float *maps = malloc(mcnt * sizeof *maps);
    assert_true(act && con && maps);
    CHECK_OK(kdc_run_read_layer(run, top, act, acnt));
    kdc_dff_options dopt = {.components = 3};
    CHECK_OK(kdc_dff(act, N, s4[1], s4[2], s4[3], &dopt, con, maps, NULL));
    assert_int_equal(cliexec_run("cam -w %s --input-npy %s -o %s --npy --method dff "
                                 "--components 3", weights, xnpy, out), 0);
    expect_npy("x.dff.raw.npy", maps, mcnt);
    expect_npy("x.dff.concepts.npy", con, (size_t)s4[1] * 3);
    free(act);
    free(con);
    free(maps);

    kdc_run_destroy(run);
    kdc_model_destroy(m);
    free(x);
    free(b);
    free(a);
}

static void cli_errors(void **state)
{
    (void)state;
    /* {options after the input and output, what the error names} */
    static const char *const bad[][2] = {
        {"--method gradcam --baseline black", "--baseline"},
        {"--method deeplift --lrp-rule gamma", "--lrp-rule"},
        {"--method lrp --lrp-rule zeta", "zeta"},
        {"--method lrp --lrp-epsilon -1", "--lrp-epsilon"},
        {"--method gradcam --components 3", "--components"},
        {"--method kpcacam --kpca-kernel laplace", "laplace"},
        {"--method gradcam --finer-alpha 2", "--finer-alpha"},
        {"--method dff --layer model.11 --layer model.13", "dff"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cliexec_expect_error(cliexec_run("cam -w %s --input-npy %s -o %s %s", weights, xnpy, out,
                                         bad[i][0]), bad[i][1]);
    cliexec_expect_error(cliexec_run("cam -w %s --input-npy %s -o %s --method deeplift "
                                     "--baseline %s/missing.npy", weights, xnpy, out,
                                     cliexec_dir()), "missing.npy");
    /* a baseline of the wrong size */
    float z[3 * 4 * 5] = {0};
    int64_t d[4] = {1, 3, 4, 5};
    CHECK_OK(kdc_npy_save(bnpy, z, 4, d));
    cliexec_expect_error(cliexec_run("cam -w %s --input-npy %s -o %s --method deeplift "
                                     "--baseline %s", weights, xnpy, out, bnpy), "--baseline");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cli_matches_library),
        cmocka_unit_test(cli_errors),
    };
    return cmocka_run_group_tests_name("attr_cli", tests, setup, teardown);
}
