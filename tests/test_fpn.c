/* test_fpn.c - ResNet50-FPN detection backbones against PyTorch fixtures.
 *
 * The fixtures in tests/fixtures/fpn/ (tools/gen_fpn_fixtures.py) hold the
 * float64 PyTorch (torchvision BackboneWithFPN, or a re-implementation of
 * mmdetection's FPN) outputs and gradients for seeded weights and inputs.
 * As in test_models.c, weights and inputs are regenerated here
 * (tests/util/weightgen.c, bit-identical to tools/kdcgen.py, checked first on
 * a few stored tensors) and the weights are written to a temporary
 * safetensors file, together with fake detection-head tensors that libkdcam
 * must ignore and list.
 *
 * Per fixture: load (autodetected, once with an explicit "resnet50-fpn", once
 * under a "module." wrapper), architecture, BatchNorm eps picked by the
 * layout (torchvision FrozenBatchNorm2d: 0), ignored head tensors, every
 * recorded layer name, shapes; forward_grad down to the input keeping the
 * levels and layer1..layer4; every recorded output within relative L2 1e-4
 * (sampled values, and the norm of the whole tensor); then for each energy
 * target the seed from kdc_energy_seed at its level, the energy itself, and a
 * KDC_TARGET_SEED backward whose gradients at input and layer1..layer4 must
 * be within relative L2 1e-4 of autograd's.
 *
 * Also: a classifier architecture on an FPN checkpoint must fail clearly;
 * kdc_energy_seed's argument errors and its box rule; and
 * kdc_preprocess_detection against torchvision's GeneralizedRCNNTransform on
 * examples/images/coffee.png.
 *
 * Run from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "kdcam.h"
#include "safetensors.h"
#include "util/fixture.h"
#include "util/testkit.h"
#include "util/weightgen.h"

#define FIXTURE_DIR "tests/fixtures/fpn/"
#define TOL 1e-4
/* kdc_preprocess_detection vs torchvision (float32 both, see preprocess()) */
#define PRE_TOL 1e-5

typedef struct fpn_case {
    const char *name;   /* fixture file without directory and extension */
    const char *prefix; /* wrapper in front of every tensor name        */
    const char *arch;   /* explicit architecture, or NULL to autodetect */
} fpn_case;

static const fpn_case CASES[] = {
    {"tv_n1_64x96", "", NULL},
    {"tv_n2_49x67", "module.", "resnet50-fpn"},
    {"tv_old_n1_64x96", "", NULL},
    {"tv_p6p7_n1_64x96", "", NULL},
    {"tv_p6p7_v2_n1_64x96", "", NULL},
    {"mm_retina_n1_64x96", "", NULL},
    {"retina_tv_n1_64x96", "", NULL},
    {"retina_tv_old_n1_64x96", "", NULL},
    {"retina_mm_n1_64x96", "", NULL},
};

static int group_setup(void **state)
{
    (void)state;
    return tk_tmpdir_create("test_fpn");
}

static int group_teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

static const char *meta(const fx_file *fx, const char *key)
{
    const char *v = fx_meta(fx, key);
    if (!v)
        fail_msg("fixture metadata has no %s", key);
    return v;
}

static const char *meta_fmt(const fx_file *fx, const char *fmt, const char *arg)
{
    char key[160];
    snprintf(key, sizeof key, fmt, arg);
    return meta(fx, key);
}

static long meta_long(const fx_file *fx, const char *key)
{
    return strtol(meta(fx, key), NULL, 10);
}

static double read_f64_scalar(const kdc__st_tensor *t)
{
    assert_int_equal(t->numel, 1);
    assert_int_equal(t->dtype, KDC__ST_F64);
    double d;
    memcpy(&d, t->data, 8); /* little-endian host, as fixture.c assumes */
    return d;
}

static const fx_layer *fx_find(const fx_file *fx, const char *name)
{
    for (int i = 0; i < fx->n_layers; i++)
        if (strcmp(fx->layers[i].name, name) == 0)
            return &fx->layers[i];
    fail_msg("fixture has no recorded tensor %s", name);
    return NULL;
}

/* Splits a comma list into at most max entries of buf (modified). */
static int split(char *buf, char **out, int max)
{
    int n = 0;
    if (!buf[0])
        return 0;
    for (char *p = strtok(buf, ","); p && n < max; p = strtok(NULL, ","))
        out[n++] = p;
    return n;
}

/* The stored generated weights ("weights:NAME/val") equal the C generator's. */
static void check_generator(const fx_file *fx, const char *scheme, uint64_t seed)
{
    int checked = 0;
    for (int i = 0; i < kdc__st_count(fx->st); i++) {
        const kdc__st_tensor *t = kdc__st_at(fx->st, i);
        size_t len = strlen(t->name);
        if (strncmp(t->name, "weights:", 8) != 0 || len < 12)
            continue;
        char wname[160];
        snprintf(wname, sizeof wname, "%.*s", (int)(len - 12), t->name + 8);
        float *gen = NULL, *ref = malloc(t->numel * sizeof *ref);
        size_t n = 0;
        assert_non_null(ref);
        if (kdc_test_gen_tensor(scheme, 1, wname, seed, &gen, &n) != 0)
            fail_msg("generator: scheme %s has no tensor %s", scheme, wname);
        CHECK_OK(kdc__st_to_f32(t, ref));
        for (size_t j = 0; j < t->numel; j++) {
            size_t idx = t->numel == n ? j : kdc_test_sample_index(n, t->numel, j);
            if (memcmp(&gen[idx], &ref[j], sizeof(float)) != 0)
                fail_msg("generator: %s[%zu] differs from tools/kdcgen.py", wname, idx);
        }
        free(gen);
        free(ref);
        checked++;
    }
    assert_true(checked >= 3);
}

/* The input: generated content top-left in zeros (tools/gen_fpn_fixtures.py). */
static float *make_input(const fx_file *fx, int n, int h, int w)
{
    int ch = (int)meta_long(fx, "content_h"), cw = (int)meta_long(fx, "content_w");
    uint64_t in_seed = strtoull(meta(fx, "input_seed"), NULL, 10);
    double in_c = strtod(meta(fx, "input_c"), NULL), in_a = strtod(meta(fx, "input_a"), NULL);
    assert_true(ch <= h && cw <= w);
    size_t cn = (size_t)n * 3 * ch * cw;
    float *content = malloc(cn * sizeof *content);
    float *x = calloc((size_t)n * 3 * h * w, sizeof *x);
    assert_true(content && x);
    kdc_test_fill(content, cn, meta(fx, "input_name"), in_seed, in_c, in_a);
    for (int p = 0; p < n * 3; p++)
        for (int y = 0; y < ch; y++)
            memcpy(x + ((size_t)p * h + y) * w, content + ((size_t)p * ch + y) * cw,
                   (size_t)cw * sizeof *x);
    free(content);
    return x;
}

/* Reads a kept layer (or a kept gradient: its shape from the model, as the
 * layer need not be kept) into a new array; nchw gets its shape. */
static float *read_kept(const kdc_model *m, kdc_run *run, int layer, int n, int h, int w,
                        int nchw[4], int grad)
{
    if (grad) {
        nchw[0] = n;
        CHECK_OK(kdc_model_layer_shape(m, layer, h, w, nchw + 1));
    } else {
        CHECK_OK(kdc_run_layer_shape(run, layer, nchw));
    }
    size_t cnt = (size_t)nchw[0] * nchw[1] * nchw[2] * nchw[3];
    float *v = malloc(cnt * sizeof *v);
    assert_non_null(v);
    if (grad)
        CHECK_OK(kdc_run_read_grad(run, layer, v, cnt));
    else
        CHECK_OK(kdc_run_read_layer(run, layer, v, cnt));
    return v;
}

/* Compares a tensor with its reference; prints and counts a failure. */
static int compare(const char *fxname, const fx_layer *ref, const float *got, const int nchw[4],
                   double *worst, const char **worst_name)
{
    for (int d = 0; d < 4; d++)
        if (nchw[d] != ref->shape[d])
            fail_msg("%s: %s has shape [%d,%d,%d,%d], PyTorch [%lld,%lld,%lld,%lld]", fxname,
                     ref->name, nchw[0], nchw[1], nchw[2], nchw[3], (long long)ref->shape[0],
                     (long long)ref->shape[1], (long long)ref->shape[2],
                     (long long)ref->shape[3]);
    double norm_err, e = fx_compare(ref, got, &norm_err);
    double m = e > norm_err ? e : norm_err;
    if (!(m <= *worst)) {
        *worst = m;
        *worst_name = ref->name;
    }
    if (!(e <= TOL) || !(norm_err <= TOL)) {
        printf("  FAIL %s %-32s rel L2 %.3e  norm rel %.3e\n", fxname, ref->name, e, norm_err);
        return 1;
    }
    return 0;
}

/* The one-hot seed of a fixture's onehot target (metadata target.<t>.cell
 * "c,y,x"), every image of the batch; *layer gets the target's layer. */
static float *onehot_seed(const fx_file *fx, const kdc_model *m, const char *tn, int n, int h,
                          int w, int *layer)
{
    int s[3], cc, cy, cx;
    CHECK_OK(kdc_model_find_layer(m, meta_fmt(fx, "target.%s.layer", tn), layer));
    CHECK_OK(kdc_model_layer_shape(m, *layer, h, w, s));
    assert_string_equal(meta_fmt(fx, "target.%s.kind", tn), "onehot");
    assert_int_equal(sscanf(meta_fmt(fx, "target.%s.cell", tn), "%d,%d,%d", &cc, &cy, &cx), 3);
    const size_t per = (size_t)s[0] * s[1] * s[2];
    float *seed = calloc((size_t)n * per, sizeof *seed);
    assert_non_null(seed);
    for (int b = 0; b < n; b++)
        seed[(size_t)b * per + ((size_t)cc * s[1] + cy) * s[2] + cx] = 1.0f;
    return seed;
}

/* A reference gradient of the sum of targets t1 and t2 (two seeds on two
 * head branches at two levels): by linearity the sum of PyTorch's two
 * gradients, which the fixture stores at the same sample indices. */
typedef struct sum_ref {
    char layer[160];
    const fx_layer *r[2]; /* NULL where that target's fixture has no such gradient */
} sum_ref;

static int check_sum_grad(const char *name, const sum_ref *sr, const float *got, size_t numel)
{
    const fx_layer *a = sr->r[0] ? sr->r[0] : sr->r[1];
    assert_int_equal(a->numel, numel);
    double num = 0.0, den = 0.0, sum = 0.0, rsum = 0.0, rss = 0.0;
    for (int k = 0; k < 2; k++)
        if (sr->r[k]) {
            assert_int_equal(sr->r[k]->numel, numel);
            assert_int_equal(sr->r[k]->nval, a->nval);
            rsum += sr->r[k]->sum;
            rss += sr->r[k]->sumsq;
        }
    for (size_t j = 0; j < a->nval; j++) {
        size_t i = a->nval == numel ? j : kdc_test_sample_index(numel, a->nval, j);
        double ref = 0.0;
        for (int k = 0; k < 2; k++)
            ref += sr->r[k] ? sr->r[k]->val[j] : 0.0;
        num += ((double)got[i] - ref) * ((double)got[i] - ref);
        den += ref * ref;
    }
    for (size_t i = 0; i < numel; i++)
        sum += got[i];
    const double e = den > 0 ? sqrt(num / den) : sqrt(num);
    /* the sum, against |sum| <= sqrt(numel * sumsq) (Cauchy-Schwarz) */
    const double es = fabs(sum - rsum) / sqrt((double)numel * rss);
    if (!(e <= TOL) || !(es <= TOL)) {
        printf("  FAIL %s two seeds %-28s rel L2 %.3e  sum rel %.3e\n", name, sr->layer, e, es);
        return 1;
    }
    return 0;
}

/* kdc_target's second seed: target t1 (a class logit at one level) plus t2
 * (a box delta at another) in one backward equals the sum of PyTorch's two
 * gradients at every layer either reaches; the same seed twice on one layer
 * gives twice the gradient. After run_fixture's forward (down to the input). */
static int two_seeds(const char *name, const fx_file *fx, const kdc_model *m, kdc_run *run,
                     const char *t1, const char *t2, int n, int h, int w)
{
    int l1, l2, failures = 0, nr = 0;
    float *s1 = onehot_seed(fx, m, t1, n, h, w, &l1), *s2 = onehot_seed(fx, m, t2, n, h, w, &l2);
    sum_ref *refs = calloc((size_t)fx->n_layers, sizeof *refs);
    assert_non_null(refs);
    const char *tn[2] = {t1, t2};
    for (int k = 0; k < 2; k++) {
        char gp[96];
        snprintf(gp, sizeof gp, "grad/%s/", tn[k]);
        for (int i = 0; i < fx->n_layers; i++) {
            const fx_layer *L = &fx->layers[i];
            if (strncmp(L->name, gp, strlen(gp)) != 0 || L->sumsq == 0.0)
                continue; /* zero: a layer this target does not reach */
            int j = 0;
            while (j < nr && strcmp(refs[j].layer, L->name + strlen(gp)))
                j++;
            if (j == nr)
                snprintf(refs[nr++].layer, sizeof refs[0].layer, "%s", L->name + strlen(gp));
            refs[j].r[k] = L;
        }
    }
    int *idx = malloc((size_t)nr * sizeof *idx), both = 0;
    assert_non_null(idx);
    for (int j = 0; j < nr; j++) {
        CHECK_OK(kdc_model_find_layer(m, refs[j].layer, &idx[j]));
        both += refs[j].r[0] && refs[j].r[1];
    }
    assert_true(both >= 5); /* the body and the levels both targets reach */
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: t1 + t2; pass 1: t1 seeded twice on one layer (2 x t1) */
        kdc_target tg = {.kind = KDC_TARGET_SEED, .layer = l1, .seed = s1,
                         .layer2 = pass ? l1 : l2, .seed2 = pass ? s1 : s2};
        int use = 0, *ui = malloc((size_t)nr * sizeof *ui);
        assert_non_null(ui);
        for (int j = 0; j < nr; j++)
            if (!pass || refs[j].r[0])
                ui[use++] = j;
        int *li = malloc((size_t)use * sizeof *li);
        assert_non_null(li);
        for (int u = 0; u < use; u++)
            li[u] = idx[ui[u]];
        CHECK_OK(kdc_run_backward(run, &tg, li, use, 0));
        for (int u = 0; u < use; u++) {
            int nchw[4];
            float *g = read_kept(m, run, li[u], n, h, w, nchw, 1);
            const size_t cnt = (size_t)nchw[0] * nchw[1] * nchw[2] * nchw[3];
            sum_ref one = refs[ui[u]];
            if (pass) {
                one.r[1] = NULL;
                for (size_t i = 0; i < cnt; i++)
                    g[i] *= 0.5f; /* exact: twice the seed is twice the gradient */
            }
            failures += check_sum_grad(name, &one, g, cnt);
            free(g);
        }
        printf("  %s: %s + %s in one backward: %d layers against the sum of PyTorch's "
               "gradients%s\n", name, t1, pass ? t1 : t2, use, pass ? " (same layer)" : "");
        free(li);
        free(ui);
    }
    free(idx);
    free(refs);
    free(s1);
    free(s2);
    return failures;
}

/* kdc_detection_target: a detection at the cls_p4 target's cell (channel 5
 * = anchor 1 * K 3 + class 2, cell 1,2) gives that target's one-hot seed;
 * with_box adds ones at the anchor's four deltas (channels 4..7) of the
 * same cell of the level's regression output; argument errors. */
static void detection_target(const fx_file *fx, const kdc_model *m, const kdc_head_info *hi,
                             int n, int h, int w)
{
    int l1;
    float *ref = onehot_seed(fx, m, "cls_p4", n, h, w, &l1);
    assert_int_equal(l1, hi->cls_layer[1]);
    assert_true(n >= 1 && n <= 2);
    kdc_detection d[2] = {{.level = 4, .level_index = 1, .anchor = 1, .label = 2, .y = 1, .x = 2}};
    for (int b = 1; b < n; b++)
        d[b] = d[0];
    int cs[3], rs[3];
    CHECK_OK(kdc_model_layer_shape(m, hi->cls_layer[1], h, w, cs));
    CHECK_OK(kdc_model_layer_shape(m, hi->reg_layer[1], h, w, rs));
    assert_int_equal(rs[0], 4 * hi->num_anchors);
    for (int box = 0; box < 2; box++) {
        kdc_target tg;
        CHECK_OK(kdc_detection_target(m, h, w, d, n, box, &tg));
        assert_int_equal(tg.kind, KDC_TARGET_SEED);
        assert_int_equal(tg.layer, hi->cls_layer[1]);
        const size_t cper = (size_t)cs[0] * cs[1] * cs[2], rper = (size_t)rs[0] * rs[1] * rs[2];
        assert_memory_equal(tg.seed, ref, (size_t)n * cper * sizeof *ref);
        if (!box) {
            assert_null(tg.seed2);
        } else {
            assert_int_equal(tg.layer2, hi->reg_layer[1]);
            for (int b = 0; b < n; b++)
                for (size_t i = 0; i < rper; i++) {
                    const size_t c = i / ((size_t)rs[1] * rs[2]), y = i / rs[2] % rs[1],
                                 x = i % rs[2];
                    const float want = c >= 4 && c < 8 && y == 1 && x == 2 ? 1.0f : 0.0f;
                    if (tg.seed2[(size_t)b * rper + i] != want)
                        fail_msg("kdc_detection_target box seed: image %d channel %zu cell "
                                 "%zu,%zu is %g, expected %g", b, c, y, x,
                                 (double)tg.seed2[(size_t)b * rper + i], (double)want);
                }
        }
        kdc_free((void *)tg.seed);
        kdc_free((void *)tg.seed2);
    }
    kdc_target tg;
    kdc_detection bad = d[0];
    bad.anchor = hi->num_anchors;
    assert_int_equal(kdc_detection_target(m, h, w, &bad, 1, 0, &tg), KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "anchor 9"));
    bad = d[0];
    bad.y = cs[1];
    assert_int_equal(kdc_detection_target(m, h, w, &bad, 1, 1, &tg), KDC_ERR_INVALID_ARGUMENT);
    kdc_detection two[2] = {d[0], d[0]};
    two[1].level_index = 2;
    two[1].level = 5;
    assert_int_equal(kdc_detection_target(m, h, w, two, 2, 0, &tg), KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "different levels"));
    assert_int_equal(kdc_detection_target(m, h, w, NULL, 1, 0, &tg), KDC_ERR_INVALID_ARGUMENT);
    free(ref);
}

/* Names libkdcam must give the extra levels, by layout (same node). */
static void check_names(const kdc_model *m, const char *layout, const char *levels)
{
    int a, b;
    const int mm = strcmp(layout, "mm") == 0;
    const int has2 = strstr(levels, "fpn.p2") != NULL, has7 = strstr(levels, "fpn.p7") != NULL;
    const int first = has2 ? 2 : 3, top = 5;
    char n1[64], n2[64];
    for (int l = first; l <= top; l++) {
        snprintf(n1, sizeof n1, "fpn.p%d", l);
        snprintf(n2, sizeof n2, mm ? "neck.fpn_convs.%d" : "fpn.layer_blocks.%d", l - first);
        CHECK_OK(kdc_model_find_layer(m, n1, &a));
        CHECK_OK(kdc_model_find_layer(m, n2, &b));
        assert_int_equal(a, b);
        snprintf(n2, sizeof n2, mm ? "neck.lateral_convs.%d" : "fpn.inner_blocks.%d", l - first);
        CHECK_OK(kdc_model_find_layer(m, n2, &b));
    }
    CHECK_OK(kdc_model_find_layer(m, "fpn.p6", &a));
    if (has7) {
        CHECK_OK(kdc_model_find_layer(m, mm ? "neck.fpn_convs.3" : "fpn.extra_blocks.p6", &b));
        assert_int_equal(a, b);
        CHECK_OK(kdc_model_find_layer(m, "fpn.p7", &a));
        CHECK_OK(kdc_model_find_layer(m, mm ? "neck.fpn_convs.4" : "fpn.extra_blocks.p7", &b));
        assert_int_equal(a, b);
        if (!mm)
            CHECK_OK(kdc_model_find_layer(m, "fpn.extra_blocks.relu", &b));
        assert_int_equal(kdc_model_find_layer(m, "fpn.pool", &b), KDC_ERR_NOT_FOUND);
    } else {
        CHECK_OK(kdc_model_find_layer(m, mm ? "neck.pool" : "fpn.pool", &b));
        assert_int_equal(a, b);
        assert_int_equal(kdc_model_find_layer(m, "fpn.p7", &b), KDC_ERR_NOT_FOUND);
    }
    /* the body keeps its ResNet names; a backbone has no classifier */
    CHECK_OK(kdc_model_find_layer(m, "layer3.5", &a));
    assert_int_equal(kdc_model_find_layer(m, "fc", &a), KDC_ERR_NOT_FOUND);
    assert_int_equal(kdc_model_num_classes(m), 0);
}

static void run_fixture(void **state)
{
    const fpn_case *c = *state;
    char path[256];
    fx_file fx;
    snprintf(path, sizeof path, FIXTURE_DIR "%s.safetensors", c->name);
    if (fx_open(path, &fx) != 0)
        fail_msg("cannot open %s: %s", path, kdc_last_error());
    const char *scheme = meta(&fx, "scheme");
    const char *layout = meta(&fx, "layout");
    uint64_t seed = strtoull(meta(&fx, "seed"), NULL, 10);
    const int n = (int)meta_long(&fx, "n"), h = (int)meta_long(&fx, "h"),
              w = (int)meta_long(&fx, "w");
    const double eps = strtod(meta(&fx, "bn_eps"), NULL);
    const int mm = strcmp(layout, "mm") == 0;
    check_generator(&fx, scheme, seed);

    /* weights file (with the head tensors of the scheme) */
    char wpath[160];
    snprintf(wpath, sizeof wpath, "%s/%s.safetensors", tk_tmpdir(), c->name);
    double t0 = tk_now();
    if (kdc_test_write_weights(wpath, scheme, seed, 1, c->prefix, 0) != 0)
        fail_msg("cannot write %s", wpath);
    const double t_write = tk_now() - t0;
    kdc_model_options opt;
    kdc_model_options_init(&opt);
    opt.arch = c->arch;
    kdc_model *m = NULL;
    t0 = tk_now();
    CHECK_OK(kdc_model_load(wpath, &opt, &m));
    const double t_load = tk_now() - t0;
    assert_string_equal(kdc_model_arch(m), meta(&fx, "arch"));
    /* the layout's BatchNorm eps: 0 for FrozenBatchNorm2d bodies (torchvision) */
    if (m->bn_eps != (float)eps)
        fail_msg("%s: BatchNorm eps %g, expected %g for this checkpoint", c->name,
                 (double)m->bn_eps, eps);

    /* head tensors: ignored by rule and listed */
    char ign[2048], *heads[16];
    snprintf(ign, sizeof ign, "%s", meta(&fx, "ignored"));
    int nh = split(ign, heads, 16);
    assert_int_equal(kdc_model_num_ignored(m), nh);
    for (int i = 0; i < nh; i++) {
        char full[200];
        snprintf(full, sizeof full, "%s%s", c->prefix, heads[i]);
        int found = 0;
        for (int j = 0; j < kdc_model_num_ignored(m); j++)
            found |= strcmp(kdc_model_ignored(m, j), full) == 0;
        if (!found)
            fail_msg("%s: head tensor %s is not listed as ignored", c->name, full);
    }
    assert_null(kdc_model_ignored(m, nh));
    check_names(m, layout, meta(&fx, "levels"));

    /* recorded activations: every fixture entry outside grad/ */
    int nl = 0, *keep = malloc((size_t)fx.n_layers * sizeof *keep);
    const fx_layer **acts = malloc((size_t)fx.n_layers * sizeof *acts);
    assert_true(keep && acts);
    for (int i = 0; i < fx.n_layers; i++) {
        const fx_layer *L = &fx.layers[i];
        if (strncmp(L->name, "grad/", 5) == 0)
            continue;
        kdc_status s = kdc_model_find_layer(m, L->name, &keep[nl]);
        if (s)
            fail_msg("%s: kdc_model_find_layer(%s): %s", c->name, L->name, kdc_last_error());
        int chw[3];
        CHECK_OK(kdc_model_layer_shape(m, keep[nl], h, w, chw));
        if (chw[0] != L->shape[1] || chw[1] != L->shape[2] || chw[2] != L->shape[3])
            fail_msg("%s: kdc_model_layer_shape(%s) = %dx%dx%d, PyTorch %lldx%lldx%lld", c->name,
                     L->name, chw[0], chw[1], chw[2], (long long)L->shape[1],
                     (long long)L->shape[2], (long long)L->shape[3]);
        acts[nl++] = L;
    }
    float *input = make_input(&fx, n, h, w);
    kdc_run *run = NULL;
    CHECK_OK(kdc_run_create(m, NULL, &run));
    t0 = tk_now();
    CHECK_OK(kdc_run_forward_grad(run, input, n, h, w, keep, nl, 0));
    const double t_fwd = tk_now() - t0;

    int failures = 0;
    double worst_act = 0.0, worst_grad = 0.0;
    const char *worst_act_name = "", *worst_grad_name = "";
    for (int i = 0; i < nl; i++) {
        int nchw[4];
        float *got = read_kept(m, run, keep[i], n, h, w, nchw, 0);
        failures += compare(c->name, acts[i], got, nchw, &worst_act, &worst_act_name);
        free(got);
    }

    /* energy targets */
    char tl[256], *targets[8];
    snprintf(tl, sizeof tl, "%s", meta(&fx, "targets"));
    int nt = split(tl, targets, 8);
    assert_true(nt >= 1);
    double t_bwd = 0.0;
    for (int t = 0; t < nt; t++) {
        const char *tn = targets[t];
        int lev, nchw[4];
        CHECK_OK(kdc_model_find_layer(m, meta_fmt(&fx, "target.%s.layer", tn), &lev));
        const char *kname = meta_fmt(&fx, "target.%s.kind", tn);
        const int onehot = strcmp(kname, "onehot") == 0;
        float *act = read_kept(m, run, lev, n, h, w, nchw, 0);
        size_t cnt = (size_t)nchw[0] * nchw[1] * nchw[2] * nchw[3];
        float *seedv = calloc(cnt, sizeof *seedv);
        assert_non_null(seedv);
        double e = 0.0;
        if (onehot) {
            /* E = the layer's output at channel c, cell (y, x), summed over the batch */
            int cc, cy, cx;
            assert_int_equal(sscanf(meta_fmt(&fx, "target.%s.cell", tn), "%d,%d,%d", &cc, &cy,
                                    &cx), 3);
            assert_true(cc < nchw[1] && cy < nchw[2] && cx < nchw[3]);
            for (int b = 0; b < n; b++) {
                const size_t at = (((size_t)b * nchw[1] + cc) * nchw[2] + cy) * nchw[3] + cx;
                seedv[at] = 1.0f;
                e += act[at];
            }
        } else {
            const int kind = strcmp(kname, "sumsq") == 0 ? KDC_ENERGY_SUMSQ : KDC_ENERGY_MEAN;
            const int channel = (int)strtol(meta_fmt(&fx, "target.%s.channel", tn), NULL, 10);
            const char *bs = meta_fmt(&fx, "target.%s.box", tn);
            float box[4];
            const float *boxp = NULL;
            if (bs[0]) {
                assert_int_equal(sscanf(bs, "%f,%f,%f,%f", &box[0], &box[1], &box[2], &box[3]),
                                 4);
                boxp = box;
            }
            CHECK_OK(kdc_energy_seed(act, nchw[0], nchw[1], nchw[2], nchw[3], h, w,
                                     (kdc_energy)kind, boxp, channel, seedv));
            /* the energy the seed differentiates: sumsq = sum(seed * act) / 2, mean =
             * sum(seed * act) */
            for (size_t i = 0; i < cnt; i++)
                e += (double)seedv[i] * act[i];
            if (kind == KDC_ENERGY_SUMSQ)
                e /= 2.0;
        }
        char key[160];
        snprintf(key, sizeof key, "energy/%s", tn);
        const kdc__st_tensor *te = kdc__st_find(fx.st, key);
        assert_non_null(te);
        const double eref = read_f64_scalar(te);
        if (!(fabs(e - eref) <= TOL * fabs(eref))) {
            printf("  FAIL %s energy %s = %.9g, PyTorch %.9g\n", c->name, tn, e, eref);
            failures++;
        }
        /* the gradients the fixture holds for this target: grad/<t>/<layer> */
        char gp[96];
        snprintf(gp, sizeof gp, "grad/%s/", tn);
        int ng = 0, *gidx = malloc((size_t)fx.n_layers * sizeof *gidx);
        const fx_layer **gref = malloc((size_t)fx.n_layers * sizeof *gref);
        assert_true(gidx && gref);
        int nzero = 0;
        for (int i = 0; i < fx.n_layers; i++) {
            const fx_layer *L = &fx.layers[i];
            if (strncmp(L->name, gp, strlen(gp)) != 0)
                continue;
            if (kdc_model_find_layer(m, L->name + strlen(gp), &gidx[ng]))
                fail_msg("%s: %s: %s", c->name, L->name, kdc_last_error());
            if (L->sumsq == 0.0) {
                /* PyTorch's gradient is exactly zero: a layer the target does not
                 * depend on (the other head branch, another level), which
                 * libkdcam refuses to differentiate by name */
                kdc_target t0g = {.kind = KDC_TARGET_SEED, .layer = lev, .seed = seedv};
                kdc_status s0 = kdc_run_backward(run, &t0g, &gidx[ng], 1, 0);
                if (s0 == KDC_OK) {
                    /* not refused (below the target in the graph): zero, then */
                    int zc[4];
                    float *z = read_kept(m, run, gidx[ng], n, h, w, zc, 1);
                    const size_t zn = (size_t)zc[0] * zc[1] * zc[2] * zc[3];
                    for (size_t k = 0; k < zn; k++)
                        if (z[k] != 0.0f)
                            fail_msg("%s: %s is all zero in PyTorch, libkdcam has %g at %zu",
                                     c->name, L->name, (double)z[k], k);
                    free(z);
                } else if (s0 != KDC_ERR_INVALID_ARGUMENT ||
                           !strstr(kdc_last_error(), "does not depend")) {
                    fail_msg("%s: %s is all zero in PyTorch, libkdcam: %s (%s)", c->name,
                             L->name, kdc_status_string(s0), kdc_last_error());
                }
                nzero++;
                continue;
            }
            gref[ng++] = L;
        }
        assert_true(ng >= 5);
        kdc_target tg = {.kind = KDC_TARGET_SEED, .layer = lev, .seed = seedv};
        t0 = tk_now();
        CHECK_OK(kdc_run_backward(run, &tg, gidx, ng, 0));
        t_bwd += tk_now() - t0;
        for (int k = 0; k < ng; k++) {
            float *g = read_kept(m, run, gidx[k], n, h, w, nchw, 1);
            failures += compare(c->name, gref[k], g, nchw, &worst_grad, &worst_grad_name);
            free(g);
        }
        /* each gradient asked for alone, after a forward that keeps the
         * target's level only: no layer between is kept then, so the
         * backward fuses what it can across them (an FPN body's last
         * block, read by the lateral conv alone, once lost its identity
         * branch there) */
        kdc_run *run1 = NULL;
        CHECK_OK(kdc_run_create(m, NULL, &run1));
        CHECK_OK(kdc_run_forward_grad(run1, input, n, h, w, &lev, 1, 0));
        for (int k = 0; k < ng; k++) {
            CHECK_OK(kdc_run_backward(run1, &tg, &gidx[k], 1, 0));
            float *g = read_kept(m, run1, gidx[k], n, h, w, nchw, 1);
            failures += compare(c->name, gref[k], g, nchw, &worst_grad, &worst_grad_name);
            free(g);
        }
        kdc_run_destroy(run1);
        if (nzero)
            printf("  %s %s: %d layers the target does not depend on (zero in PyTorch; libkdcam "
                   "refuses them or gives zero)\n", c->name, tn, nzero);
        free(gidx);
        free(gref);
        free(seedv);
        free(act);
    }
    if (strncmp(c->name, "retina_", 7) == 0 && nt >= 2)
        failures += two_seeds(c->name, &fx, m, run, targets[0], targets[1], n, h, w);
    printf("  %-22s write %.1fs load %.1fs fwd %.1fs bwd %.1fs  %d outputs worst %.2e (%s)  "
           "grads worst %.2e (%s)  [PyTorch f32 vs f64: act %s, grad %s]\n",
           c->name, t_write, t_load, t_fwd, t_bwd, nl, worst_act, worst_act_name, worst_grad,
           worst_grad_name, meta(&fx, "f32_vs_f64_worst_act_rel_l2"),
           meta(&fx, "f32_vs_f64_worst_grad_rel_l2"));
    fflush(stdout);

    /* RetinaNet heads: what kdc_model_head says, and no_head */
    if (strncmp(c->name, "retina_", 7) == 0) {
        kdc_head_info hi;
        CHECK_OK(kdc_model_head(m, &hi));
        assert_int_equal(hi.kind, mm ? KDC_HEAD_RETINANET_MM : KDC_HEAD_RETINANET_TV);
        assert_int_equal(hi.num_classes, 3);
        assert_int_equal(hi.num_anchors, 9);
        assert_int_equal(hi.num_levels, 5);
        for (int l = 0; l < 5; l++) {
            char nm[96];
            int li;
            assert_int_equal(hi.level[l], l + 3);
            snprintf(nm, sizeof nm, "fpn.p%d", l + 3);
            CHECK_OK(kdc_model_find_layer(m, nm, &li));
            assert_int_equal(hi.feature_layer[l], li);
            snprintf(nm, sizeof nm, mm ? "bbox_head.retina_cls@p%d"
                                       : "head.classification_head.cls_logits@p%d", l + 3);
            CHECK_OK(kdc_model_find_layer(m, nm, &li));
            assert_int_equal(hi.cls_layer[l], li);
            snprintf(nm, sizeof nm, mm ? "bbox_head.retina_reg@p%d"
                                       : "head.regression_head.bbox_reg@p%d", l + 3);
            CHECK_OK(kdc_model_find_layer(m, nm, &li));
            assert_int_equal(hi.reg_layer[l], li);
        }
        detection_target(&fx, m, &hi, n, h, w);
        kdc_model *m4 = NULL;
        kdc_model_options o4;
        kdc_model_options_init(&o4);
        o4.no_head = 1;
        CHECK_OK(kdc_model_load(wpath, &o4, &m4));
        CHECK_OK(kdc_model_head(m4, &hi));
        assert_int_equal(hi.kind, KDC_HEAD_NONE);
        kdc_detection dn = {.level = 4, .level_index = 1};
        kdc_target tn;
        assert_int_equal(kdc_detection_target(m4, h, w, &dn, 1, 0, &tn), KDC_ERR_STATE);
        /* every head tensor listed as ignored: 2 x (4 convs + output) x 2 */
        assert_int_equal(kdc_model_num_ignored(m4), 20);
        int li;
        assert_int_equal(kdc_model_find_layer(m4, mm ? "bbox_head.retina_cls@p3"
                                                     : "head.classification_head.cls_logits@p3",
                                              &li),
                         KDC_ERR_NOT_FOUND);
        kdc_model_destroy(m4);
    } else {
        kdc_head_info hi;
        CHECK_OK(kdc_model_head(m, &hi));
        assert_int_equal(hi.kind, KDC_HEAD_NONE);
    }

    /* a classifier architecture on a detection checkpoint: a clear error */
    if (strcmp(c->name, "tv_n1_64x96") == 0 || strcmp(c->name, "mm_retina_n1_64x96") == 0) {
        kdc_model *m2 = NULL;
        opt.arch = "resnet50";
        kdc_status s = kdc_model_load(wpath, &opt, &m2);
        if (s == KDC_OK) {
            printf("  FAIL %s: loading with arch resnet50 (classifier) succeeded (arch %s)\n",
                   c->name, kdc_model_arch(m2));
            failures++;
        } else {
            printf("  %s: arch resnet50 -> %s: %s\n", c->name, kdc_status_string(s),
                   kdc_last_error());
            assert_int_equal(s, KDC_ERR_WEIGHTS);
            assert_non_null(strstr(kdc_last_error(), "resnet50"));
            assert_non_null(strstr(kdc_last_error(), "FPN"));
        }
        kdc_model_destroy(m2);
        opt.arch = "mobilenetv1";
        assert_int_not_equal(kdc_model_load(wpath, &opt, &m2), KDC_OK);
        assert_null(m2);
    }

    /* no extra levels although the file has p6/p7 convs: those tensors are
     * unused backbone tensors (an error without allow_unused), never
     * "detection heads" to ignore */
    if (strcmp(c->name, "tv_p6p7_n1_64x96") == 0 || strcmp(c->name, "mm_retina_n1_64x96") == 0) {
        kdc_model *m3 = NULL;
        kdc_model_options o3;
        kdc_model_options_init(&o3);
        o3.fpn_extra = KDC_FPN_EXTRA_NONE;
        kdc_status s = kdc_model_load(wpath, &o3, &m3);
        if (s == KDC_OK) {
            printf("  FAIL %s: fpn_extra NONE loads and ignores %d tensors as heads:", c->name,
                   kdc_model_num_ignored(m3));
            for (int j = 0; j < kdc_model_num_ignored(m3) && j < 4; j++)
                printf(" %s", kdc_model_ignored(m3, j));
            printf("\n");
            failures++;
        } else {
            assert_int_equal(s, KDC_ERR_WEIGHTS);
            assert_non_null(strstr(kdc_last_error(), mm ? "neck.fpn_convs.3" : "extra_blocks.p"));
        }
        kdc_model_destroy(m3);
        o3.allow_unused = 1;
        CHECK_OK(kdc_model_load(wpath, &o3, &m3));
        assert_int_equal(kdc_model_find_layer(m3, "fpn.p6", &nl), KDC_ERR_NOT_FOUND);
        kdc_model_destroy(m3);
    }

    kdc_run_destroy(run);
    free(input);
    free(acts);
    free(keep);
    kdc_model_destroy(m);
    remove(wpath);
    fx_close(&fx);
    assert_int_equal(failures, 0);
}

/* kdc_energy_seed: argument errors and the box rule on a tiny map. */
static void energy_seed(void **state)
{
    (void)state;
    enum { N = 1, C = 2, H = 4, W = 5 };
    float act[N * C * H * W], seed[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++)
        act[i] = (float)(i % 7) - 3.0f;
    /* input 64 x 80: cells of 16 x 16, centres 8, 24, 40, ... */
    const float in_box[4] = {20.0f, 5.0f, 45.0f, 30.0f}; /* x centres 24, 40; y 8, 24 */
    CHECK_OK(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_MEAN, in_box, -1, seed));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int in = (x == 1 || x == 2) && (y == 0 || y == 1);
                float want = in ? 1.0f / 8.0f : 0.0f;
                assert_true(seed[(c * H + y) * W + x] == want);
            }
    CHECK_OK(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_SUMSQ, NULL, 1, seed));
    for (int i = 0; i < N * C * H * W; i++)
        assert_true(seed[i] == (i >= H * W ? 2.0f * act[i] : 0.0f));
    /* a box holding no cell centre: the cell under its centre */
    const float small[4] = {50.0f, 33.0f, 54.0f, 38.0f};
    CHECK_OK(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_MEAN, small, 0, seed));
    for (int i = 0; i < N * C * H * W; i++)
        assert_true(seed[i] == (i == 2 * W + 3 ? 1.0f : 0.0f));
    /* errors */
    const float outside[4] = {80.0f, 0.0f, 90.0f, 10.0f}, empty[4] = {10.0f, 10.0f, 10.0f, 20.0f};
    const float above[4] = {0.0f, -20.0f, 10.0f, 0.0f};
    assert_int_equal(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_SUMSQ, NULL, C, seed),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "channel"));
    assert_int_equal(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_SUMSQ, NULL, -2, seed),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_MEAN, outside, -1, seed),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "outside"));
    assert_int_equal(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_MEAN, empty, -1, seed),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_energy_seed(act, N, C, H, W, 64, 80, KDC_ENERGY_MEAN, above, -1, seed),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_energy_seed(NULL, N, C, H, W, 64, 80, KDC_ENERGY_MEAN, NULL, -1, seed),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_energy_seed(act, N, C, H, W, 64, 80, (kdc_energy)7, NULL, -1, seed),
                     KDC_ERR_INVALID_ARGUMENT);
}

/* kdc_preprocess_detection vs torchvision's GeneralizedRCNNTransform(800,
 * 1333, ImageNet mean/std) on coffee.png (600x400 -> 1200x800, padded to
 * 1216x800). Both work in float32 and resize the normalised image with
 * half-pixel bilinear weights (here exactly 0.25 / 0.75: the scale is 2);
 * they differ in rounding only (x/255 vs x*(1/255), the order of the
 * interpolation sums), a few ulp of values up to |2.64| (ulp 2.4e-7).
 * PRE_TOL = 1e-5 is ~40 ulp; a wrong convention (align_corners, a half-pixel
 * shift, the wrong rounding of the size, normalising after padding) moves
 * values by 1e-2 or more. */
static void preprocess(void **state)
{
    (void)state;
    fx_file fx;
    if (fx_open(FIXTURE_DIR "preprocess_coffee.safetensors", &fx) != 0)
        fail_msg("cannot open the preprocess fixture: %s", kdc_last_error());
    kdc_image *img = NULL;
    CHECK_OK(kdc_image_load(meta(&fx, "image"), &img));
    kdc_det_preprocess pp;
    kdc_model_det_preprocess(NULL, &pp);
    assert_int_equal(pp.short_side, 800);
    assert_int_equal(pp.max_side, 1333);
    float *x = NULL;
    int h, w, ch, cw;
    double scale;
    CHECK_OK(kdc_preprocess_detection(img, &pp, &x, &h, &w, &ch, &cw, &scale));
    assert_int_equal(h, meta_long(&fx, "h"));
    assert_int_equal(w, meta_long(&fx, "w"));
    assert_int_equal(ch, meta_long(&fx, "content_h"));
    assert_int_equal(cw, meta_long(&fx, "content_w"));
    assert_true(fabs(scale - strtod(meta(&fx, "scale"), NULL)) < 1e-12);
    const fx_layer *ref = fx_find(&fx, "det_input");
    assert_int_equal(ref->numel, (size_t)3 * h * w);
    double maxd = 0.0, norm_err;
    for (size_t j = 0; j < ref->nval; j++) {
        double d = fabs((double)x[kdc_test_sample_index(ref->numel, ref->nval, j)] - ref->val[j]);
        maxd = d > maxd ? d : maxd;
    }
    double rel = fx_compare(ref, x, &norm_err);
    /* the last content rows / columns and the padding after them, whole */
    double maxr = 0.0;
    static const char *const edges[2] = {"det_input_rows", "det_input_cols"};
    for (int e = 0; e < 2; e++) {
        const fx_layer *t = fx_find(&fx, edges[e]);
        const int eh = (int)t->shape[2], ew = (int)t->shape[3];
        const int y0 = e == 0 ? (ch >= 2 ? ch - 2 : 0) : 0, x0 = e == 1 ? (cw >= 2 ? cw - 2 : 0) : 0;
        assert_int_equal(t->nval, t->numel);
        assert_true(y0 + eh <= h && x0 + ew <= w);
        for (int c = 0; c < 3; c++)
            for (int r = 0; r < eh; r++)
                for (int xx = 0; xx < ew; xx++) {
                    double d = fabs((double)x[((size_t)c * h + y0 + r) * w + x0 + xx] -
                                    t->val[((size_t)c * eh + r) * ew + xx]);
                    maxr = d > maxr ? d : maxr;
                }
    }
    printf("  preprocess coffee.png %dx%d -> %dx%d (content %dx%d, scale %g): max abs diff "
           "%.2e (%zu samples), %.2e (content edges + padding, whole); rel L2 %.2e; torchvision "
           "f32 vs f64 %s\n",
           img->width, img->height, w, h, cw, ch, scale, maxd, ref->nval, maxr, rel,
           meta(&fx, "tv_f32_vs_f64_max_abs"));
    assert_true(maxd <= PRE_TOL);
    assert_true(maxr <= PRE_TOL);
    assert_true(norm_err <= TOL);
    kdc_free(x);
    kdc_image_destroy(img);
    fx_close(&fx);
}

int main(void)
{
    enum { NCASES = sizeof CASES / sizeof CASES[0] };
    struct CMUnitTest tests[NCASES + 2];
    for (int i = 0; i < NCASES; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(run_fixture, (void *)&CASES[i]);
        t.name = CASES[i].name;
        tests[i] = t;
    }
    struct CMUnitTest t1 = cmocka_unit_test(energy_seed), t2 = cmocka_unit_test(preprocess);
    tests[NCASES] = t1;
    tests[NCASES + 1] = t2;
    return cmocka_run_group_tests_name("fpn", tests, group_setup, group_teardown);
}
