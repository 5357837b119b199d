/* test_stats.c - the dataset statistics (lib/stats/): Gram matrices,
 * unbiased HSIC, minibatch CKA (linear and RBF) with merged accumulators,
 * the too-small-batch refusal, prediction KL and the mean's 95% interval,
 * against tools/gen_stats_fixtures.py (NumPy, float64). Run from the
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
#include "kit.h"

#define FIX "tests/fixtures/stats/"
#define REL 1e-6

/* the value of `name` in expected.txt (fails the test if absent) */
static double expected(const char *name)
{
    FILE *f = fopen(FIX "expected.txt", "r");
    assert_non_null(f);
    char key[128];
    double v = NAN;
    int found = 0;
    while (fscanf(f, "%127s", key) == 1) {
        if (!strcmp(key, name)) {
            found = fscanf(f, "%lf", &v) == 1;
            break;
        }
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
    }
    fclose(f);
    if (!found)
        fail_msg("expected.txt has no %s", name);
    return v;
}

/* the values of a "name v1 v2 ..." line (at most max); returns how many */
static int expected_list(const char *name, double *v, int max)
{
    FILE *f = fopen(FIX "expected.txt", "r");
    assert_non_null(f);
    char key[64];
    int got = 0;
    while (fscanf(f, "%63s", key) == 1) {
        if (!strcmp(key, name)) {
            while (got < max && fscanf(f, "%lf", &v[got]) == 1)
                got++;
            break;
        }
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
    }
    fclose(f);
    return got;
}

static void assert_rel(double got, double want, const char *what)
{
    const double tol = REL * fmax(fabs(want), 1e-12);
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.17g, NumPy %.17g (rel %.3g)", what, got, want,
                 fabs(got - want) / fmax(fabs(want), 1e-300));
}

static float *load(const char *name, int64_t dims[8])
{
    float *d = NULL;
    int nd = 0;
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    assert_int_equal(kdc_npy_load(path, &d, &nd, dims), KDC_OK);
    assert_int_equal(nd, 2);
    return d;
}

static void check_kernel(kdc_cka_kernel kernel, const char *kname)
{
    int64_t dx[8], dy[8];
    float *x = load("x.npy", dx), *y = load("y.npy", dy);
    const int nb = (int)expected("batches");
    kdc_cka *all = NULL, *a = NULL, *b = NULL;
    assert_int_equal(kdc_cka_create(&all), KDC_OK);
    assert_int_equal(kdc_cka_create(&a), KDC_OK);
    assert_int_equal(kdc_cka_create(&b), KDC_OK);
    char key[96];
    int i0 = 0;
    for (int bi = 0; bi < nb; bi++) {
        snprintf(key, sizeof key, "batch%d", bi);
        const int n = (int)expected(key);
        const float *xb = x + (size_t)i0 * dx[1], *yb = y + (size_t)i0 * dy[1];
        double *K = tk_xmalloc((size_t)n * n * sizeof *K), *L = tk_xmalloc((size_t)n * n * sizeof *L);
        assert_int_equal(kdc_cka_gram(xb, n, (size_t)dx[1], kernel, K), KDC_OK);
        assert_int_equal(kdc_cka_gram(yb, n, (size_t)dy[1], kernel, L), KDC_OK);
        if (bi == 0) {
            snprintf(key, sizeof key, "%s.b0.K00", kname);
            assert_rel(K[0], expected(key), key);
            snprintf(key, sizeof key, "%s.b0.K12", kname);
            assert_rel(K[1 * n + 2], expected(key), key);
            snprintf(key, sizeof key, "%s.b0.K31", kname);
            assert_rel(K[3 * n + 1], expected(key), key);
        }
        static const char *pairs[3] = {"hsic_xx", "hsic_xy", "hsic_yy"};
        const double *A[3] = {K, K, L}, *B[3] = {K, L, L};
        for (int p = 0; p < 3; p++) {
            double h;
            assert_int_equal(kdc_hsic_unbiased(A[p], B[p], n, &h), KDC_OK);
            snprintf(key, sizeof key, "%s.b%d.%s", kname, bi, pairs[p]);
            assert_rel(h, expected(key), key);
        }
        double bc, bc2;
        assert_int_equal(kdc_cka_add_gram(all, K, L, n, &bc), KDC_OK);
        snprintf(key, sizeof key, "%s.b%d.cka", kname, bi);
        assert_rel(bc, expected(key), key);
        /* the same from the representations; batches 0-1 to a, the rest to b */
        assert_int_equal(kdc_cka_add(bi < 2 ? a : b, xb, (size_t)dx[1], yb, (size_t)dy[1], n,
                                     kernel, &bc2),
                         KDC_OK);
        assert_true(bc2 == bc);
        free(K);
        free(L);
        i0 += n;
    }
    double cka, cka_a, cka_m, h[3], hm[3];
    int64_t batches, examples;
    assert_int_equal(kdc_cka_result(all, &cka, h, &batches, &examples), KDC_OK);
    snprintf(key, sizeof key, "%s.cka", kname);
    assert_rel(cka, expected(key), key);
    assert_int_equal(batches, nb);
    assert_int_equal(examples, i0);
    assert_int_equal(kdc_cka_result(a, &cka_a, NULL, NULL, NULL), KDC_OK);
    snprintf(key, sizeof key, "%s.shardA.cka", kname);
    assert_rel(cka_a, expected(key), key);
    /* merged shards (2 and 3 batches) give the single run's result */
    assert_int_equal(kdc_cka_merge(a, b), KDC_OK);
    assert_int_equal(kdc_cka_result(a, &cka_m, hm, &batches, &examples), KDC_OK);
    assert_int_equal(batches, nb);
    assert_int_equal(examples, i0);
    for (int p = 0; p < 3; p++)
        assert_true(fabs(hm[p] - h[p]) <= 1e-12 * fabs(h[p]));
    snprintf(key, sizeof key, "%s.cka", kname);
    assert_rel(cka_m, expected(key), "merged cka");
    kdc_cka_destroy(all);
    kdc_cka_destroy(a);
    kdc_cka_destroy(b);
    free(x);
    free(y);
}

static void test_cka_linear(void **state)
{
    (void)state;
    check_kernel(KDC_CKA_LINEAR, "linear");
}

static void test_cka_rbf(void **state)
{
    (void)state;
    check_kernel(KDC_CKA_RBF, "rbf");
}

/* batches of 3 or fewer are refused with a message, never NaN */
static void test_small_batch(void **state)
{
    (void)state;
    float x[3 * 5];
    double K[9], h = 42.0, c = 42.0;
    tk_fill(x, 15, -1, 1);
    kdc_cka *acc = NULL;
    assert_int_equal(kdc_cka_create(&acc), KDC_OK);
    for (int n = 0; n <= 3; n++) {
        assert_int_equal(kdc_cka_add(acc, x, 5, x, 5, n, KDC_CKA_LINEAR, &c),
                         KDC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(kdc_last_error(), "at least 4"));
    }
    assert_int_equal(kdc_cka_gram(x, 3, 5, KDC_CKA_LINEAR, K), KDC_OK);
    assert_int_equal(kdc_hsic_unbiased(K, K, 3, &h), KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "minibatch of 3 examples is too small"));
    assert_int_equal(kdc_cka_add_gram(acc, K, K, 3, &c), KDC_ERR_INVALID_ARGUMENT);
    assert_true(h == 42.0 && c == 42.0);
    /* nothing was added: no result */
    assert_int_equal(kdc_cka_result(acc, &c, NULL, NULL, NULL), KDC_ERR_STATE);
    assert_int_equal(kdc_cka_gram(x, 3, 5, (kdc_cka_kernel)7, K), KDC_ERR_INVALID_ARGUMENT);
    kdc_cka_destroy(acc);
}

/* a representation against itself: CKA 1; against a constant one: refused */
static void test_cka_identity_and_constant(void **state)
{
    (void)state;
    enum { N = 8, D = 6 };
    float x[N * D], z[N * D];
    tk_fill(x, N * D, -2, 2);
    for (int i = 0; i < N * D; i++)
        z[i] = 0.5f;
    kdc_cka *acc = NULL, *bad = NULL;
    assert_int_equal(kdc_cka_create(&acc), KDC_OK);
    assert_int_equal(kdc_cka_create(&bad), KDC_OK);
    double c, bc;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(kdc_cka_add(acc, x, D, x, D, N, (kdc_cka_kernel)k, &bc), KDC_OK);
        assert_true(fabs(bc - 1.0) < 1e-12);
    }
    assert_int_equal(kdc_cka_result(acc, &c, NULL, NULL, NULL), KDC_OK);
    assert_true(fabs(c - 1.0) < 1e-12);
    assert_int_equal(kdc_cka_add(bad, x, D, z, D, N, KDC_CKA_LINEAR, &bc), KDC_OK);
    assert_true(isnan(bc));
    assert_int_equal(kdc_cka_result(bad, &c, NULL, NULL, NULL), KDC_ERR_STATE);
    assert_non_null(strstr(kdc_last_error(), "undefined"));
    kdc_cka_destroy(acc);
    kdc_cka_destroy(bad);
}

static void test_prediction_kl(void **state)
{
    (void)state;
    int64_t dt[8], ds[8];
    float *lt = load("logits_t.npy", dt), *ls = load("logits_s.npy", ds);
    char key[64];
    for (int T = 1; T <= 4; T += 3)
        for (int i = 0; i < dt[0]; i++) {
            double kl;
            assert_int_equal(kdc_prediction_kl(lt + i * dt[1], ls + i * dt[1], (int)dt[1], T, &kl),
                             KDC_OK);
            snprintf(key, sizeof key, "kl.T%d.%d", T, i);
            assert_rel(kl, expected(key), key);
        }
    double kl;
    assert_int_equal(kdc_prediction_kl(lt, lt, (int)dt[1], 1.0, &kl), KDC_OK);
    assert_true(kl == 0.0);
    assert_int_equal(kdc_prediction_kl(lt, ls, (int)dt[1], 0.0, &kl), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_prediction_kl(lt, ls, 0, 1.0, &kl), KDC_ERR_INVALID_ARGUMENT);
    const float v[5] = {1, 3, -2, 3, 0};
    assert_int_equal(kdc_argmax(v, 5), 1);
    assert_int_equal(kdc_argmax(v, 0), -1);
    free(lt);
    free(ls);
}

static void test_mean_ci(void **state)
{
    (void)state;
    double v[9];
    const int got = expected_list("ci.values", v, 9);
    assert_int_equal(got, 9);
    double m, half;
    assert_int_equal(kdc_mean_ci95(v, 9, &m, &half), KDC_OK);
    assert_rel(m, expected("ci.mean"), "mean");
    assert_rel(half, expected("ci.half"), "ci half-width");
    assert_int_equal(kdc_mean_ci95(v, 1, &m, &half), KDC_OK);
    assert_true(m == v[0] && half == 0.0);
    assert_int_equal(kdc_mean_ci95(v, 0, &m, &half), KDC_ERR_INVALID_ARGUMENT);
}

/* deletion and insertion inputs equal NumPy's exactly (they are copies);
 * batched generation (k0, count) gives the same steps */
static void test_faith_perturb(void **state)
{
    (void)state;
    int64_t di[8], ds[8], dm[8], dd[8];
    float *img = NULL, *sub = NULL, *map = NULL, *want = NULL;
    int nd;
    assert_int_equal(kdc_npy_load(FIX "faith_image.npy", &img, &nd, di), KDC_OK);
    assert_int_equal(kdc_npy_load(FIX "faith_substrate.npy", &sub, &nd, ds), KDC_OK);
    assert_int_equal(kdc_npy_load(FIX "faith_map.npy", &map, &nd, dm), KDC_OK);
    const int h = (int)dm[0], w = (int)dm[1], steps = 7;
    const size_t one = (size_t)3 * h * w;
    static const char *files[2] = {FIX "faith_deletion.npy", FIX "faith_insertion.npy"};
    float *out = tk_xmalloc((steps + 1) * one * sizeof *out);
    for (int ins = 0; ins < 2; ins++) {
        assert_int_equal(kdc_npy_load(files[ins], &want, &nd, dd), KDC_OK);
        assert_int_equal(nd, 4);
        assert_int_equal(dd[0], steps + 1);
        /* in three chunks: steps 0-2, 3-6, 7 */
        assert_int_equal(kdc_faith_perturb(img, sub, map, h, w, steps, ins, 0, 3, out), KDC_OK);
        assert_int_equal(kdc_faith_perturb(img, sub, map, h, w, steps, ins, 3, 4, out + 3 * one),
                         KDC_OK);
        assert_int_equal(kdc_faith_perturb(img, sub, map, h, w, steps, ins, 7, 1, out + 7 * one),
                         KDC_OK);
        assert_memory_equal(out, want, (steps + 1) * one * sizeof *out);
        free(want);
    }
    assert_int_equal(kdc_faith_perturb(img, sub, map, h, w, steps, 0, 6, 3, out),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_faith_perturb(img, sub, map, h, w, 0, 0, 0, 1, out),
                     KDC_ERR_INVALID_ARGUMENT);
    free(out);
    free(img);
    free(sub);
    free(map);
}

static void test_faith_scores(void **state)
{
    (void)state;
    double sc[8], Y[8], O[8], ad, ic;
    assert_int_equal(expected_list("auc.scores", sc, 8), 8);
    assert_rel(kdc_faith_auc(sc, 8), expected("auc.value"), "AUC");
    assert_true(isnan(kdc_faith_auc(sc, 1)));
    assert_int_equal(expected_list("ad.Y", Y, 8), 8);
    assert_int_equal(expected_list("ad.O", O, 8), 8);
    assert_int_equal(kdc_faith_average_drop(Y, O, 8, &ad, &ic), KDC_OK);
    assert_rel(ad, expected("ad.drop"), "Average Drop");
    assert_rel(ic, expected("ad.inc"), "Increase in Confidence");
    Y[2] = 0.0;
    assert_int_equal(kdc_faith_average_drop(Y, O, 8, &ad, &ic), KDC_ERR_INVALID_ARGUMENT);
}

/* float arrays equal to a NumPy/torch reference: |got - want| <= REL *
 * max(|want|, the reference's largest magnitude * 1e-3): relative 1e-6 for
 * all but values near zero, whose error is bounded by the array's scale */
static void assert_array(const float *got, const float *want, size_t n, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        const double tol = REL * fmax(fabs(want[i]), 1e-3 * scale);
        if (!(fabs((double)got[i] - want[i]) <= tol))
            fail_msg("%s[%zu]: got %.9g, reference %.9g", what, i, got[i], want[i]);
    }
}

static float *load_any(const char *name, int *nd, int64_t dims[8], size_t *count)
{
    float *d = NULL;
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    assert_int_equal(kdc_npy_load(path, &d, nd, dims), KDC_OK);
    *count = 1;
    for (int i = 0; i < *nd; i++)
        *count *= (size_t)dims[i];
    return d;
}

/* RISE's blurred substrate (gkern(11, 5), conv2d with zero padding) */
static void test_faith_blur(void **state)
{
    (void)state;
    int nd;
    int64_t di[8], dout[8];
    size_t n, n2;
    float *img = load_any("blur_image.npy", &nd, di, &n);
    float *want = load_any("blur_out.npy", &nd, dout, &n2);
    assert_int_equal(n, n2);
    const int h = (int)di[1], w = (int)di[2];
    float *out = tk_xmalloc(n * sizeof *out);
    assert_int_equal(kdc_faith_blur(img, h, w, 11, 5.0, out), KDC_OK);
    assert_array(out, want, n, "blur");
    /* one-pixel image: only the kernel's centre weight touches it */
    float one[3] = {1, 2, 3}, o1[3];
    assert_int_equal(kdc_faith_blur(one, 1, 1, 11, 5.0, o1), KDC_OK);
    assert_rel(o1[1], 2 * expected("blur.k55"), "blur centre");
    assert_int_equal(kdc_faith_blur(img, h, w, 10, 5.0, out), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_faith_blur(img, h, w, 11, 0.0, out), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_faith_blur(img, h, w, 11, 5.0, img), KDC_ERR_INVALID_ARGUMENT);
    free(img);
    free(want);
    free(out);
}

/* ROAD: masks at the 9 percentiles, most and least relevant first, the
 * seeded noise, the imputed images (CG against a dense solve) */
static void test_road(void **state)
{
    (void)state;
    int nd;
    int64_t d[8];
    size_t n;
    const int h = (int)expected("road.h"), w = (int)expected("road.w");
    const size_t hw = (size_t)h * w;
    float *img = load_any("road_image.npy", &nd, d, &n);
    float *map = load_any("road_map.npy", &nd, d, &n);
    float *noise_ref = load_any("road_noise.npy", &nd, d, &n);
    float *removed = load_any("road_removed.npy", &nd, d, &n);
    float *want = load_any("road_out.npy", &nd, d, &n);
    float *noise = tk_xmalloc(3 * hw * sizeof *noise), *out = tk_xmalloc(3 * hw * sizeof *out);
    unsigned char *rm = tk_xmalloc(hw);
    const uint64_t seed = (uint64_t)expected("road.seed");
    const double sd = expected("road.std");
    assert_int_equal(kdc_road_noise(seed, 3 * hw, noise), KDC_OK);
    assert_array(noise, noise_ref, 3 * hw, "noise");
    for (int q = 0; q < 18; q++) {
        const int morf = q < 9;
        const double pct = 10.0 * (q % 9 + 1);
        char what[64];
        assert_int_equal(kdc_road_mask(map, h, w, pct, morf, rm), KDC_OK);
        for (size_t i = 0; i < hw; i++)
            if (rm[i] != (removed[q * hw + i] > 0.5f))
                fail_msg("ROAD mask %s %g%%: pixel %zu differs", morf ? "MoRF" : "LeRF", pct, i);
        assert_int_equal(kdc_road_impute(img, rm, h, w, noise, sd, out), KDC_OK);
        snprintf(what, sizeof what, "ROAD %s %g%%", morf ? "MoRF" : "LeRF", pct);
        assert_array(out, want + (size_t)q * 3 * hw, 3 * hw, what);
        float *o2 = tk_xmalloc(3 * hw * sizeof *o2);
        assert_int_equal(kdc_road_perturb(img, map, h, w, pct, morf, sd, seed, o2), KDC_OK);
        assert_memory_equal(o2, out, 3 * hw * sizeof *o2);
        free(o2);
    }
    /* a zero plateau (Grad-CAM's usual): road.py would remove every tie of
     * a zero threshold, i.e. every pixel; the mask removes the count the
     * percentile gives, largest first, ties by position */
    float *flat = tk_xmalloc(hw * sizeof *flat);
    for (size_t i = 0; i < hw; i++)
        flat[i] = i % 7 == 3 ? 0.5f + 0.001f * (float)i : 0.0f;
    assert_int_equal(kdc_road_mask(flat, h, w, 10, 1, rm), KDC_OK);
    size_t cnt = 0, first_zero = hw;
    for (size_t i = 0; i < hw; i++) {
        cnt += rm[i];
        if (i % 7 == 3)
            assert_int_equal(rm[i], 1);
        else if (rm[i] && first_zero == hw)
            first_zero = i;
    }
    assert_int_equal(cnt, hw - (size_t)ceil(0.1 * (double)(hw - 1)));
    assert_int_equal(first_zero, 0); /* the zeros taken in position order */
    assert_int_equal(kdc_road_perturb(img, flat, h, w, 10, 1, sd, seed, out), KDC_OK);
    free(flat);
    /* every pixel removed: refused, not NaN */
    memset(rm, 1, hw);
    assert_int_equal(kdc_road_impute(img, rm, h, w, NULL, 0, out), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_road_mask(map, h, w, 101, 1, rm), KDC_ERR_INVALID_ARGUMENT);
    free(img);
    free(map);
    free(noise_ref);
    free(removed);
    free(want);
    free(noise);
    free(out);
    free(rm);
}

/* ICKD and attention-transfer distances: a wider student at a smaller
 * size, and one of the teacher's shape */
static void test_kd_distances(void **state)
{
    (void)state;
    int nd;
    int64_t dt[8], d1[8], d2[8];
    size_t n;
    float *ft = load_any("kd_t.npy", &nd, dt, &n), *f1 = load_any("kd_s1.npy", &nd, d1, &n);
    float *f2 = load_any("kd_s2.npy", &nd, d2, &n);
    double v;
    assert_int_equal(kdc_ickd_distance(ft, 8, 36, f1, 12, 12, &v), KDC_OK);
    assert_rel(v, expected("ickd.s1"), "ICKD, 12 vs 8 channels");
    assert_int_equal(kdc_ickd_distance(ft, 8, 36, f2, 8, 36, &v), KDC_OK);
    assert_rel(v, expected("ickd.s2"), "ICKD, same width");
    assert_int_equal(kdc_at_distance(ft, 8, 6, 6, f1, 12, 3, 4, &v), KDC_OK);
    assert_rel(v, expected("at.s1"), "AT, 6x6 vs 3x4");
    assert_int_equal(kdc_at_distance(ft, 8, 6, 6, f2, 8, 6, 6, &v), KDC_OK);
    assert_rel(v, expected("at.s2"), "AT, same size");
    assert_int_equal(kdc_ickd_distance(ft, 8, 36, ft, 8, 36, &v), KDC_OK);
    assert_true(v == 0);
    assert_int_equal(kdc_at_distance(ft, 0, 6, 6, f2, 8, 6, 6, &v), KDC_ERR_INVALID_ARGUMENT);
    free(ft);
    free(f1);
    free(f2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cka_linear),
        cmocka_unit_test(test_cka_rbf),
        cmocka_unit_test(test_small_batch),
        cmocka_unit_test(test_cka_identity_and_constant),
        cmocka_unit_test(test_prediction_kl),
        cmocka_unit_test(test_mean_ci),
        cmocka_unit_test(test_faith_perturb),
        cmocka_unit_test(test_faith_scores),
        cmocka_unit_test(test_faith_blur),
        cmocka_unit_test(test_road),
        cmocka_unit_test(test_kd_distances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
