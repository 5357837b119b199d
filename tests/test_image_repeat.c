/* test_image_repeat.c - an image gives the same pixels and the same logits
 * on every run: each committed image (tests/fixtures, examples/images, the
 * image fuzz seeds and regression inputs that decode) is loaded twice in
 * this process and once in a fresh process (this program run again with
 * --logits), and the results are compared bit for bit. A decoder that
 * reads uninitialised memory (as stb_image 2.27's 16-bit PGM reader did)
 * gives different logits from one process to the next.
 *
 * The model is the 15 KB MobileNetV1 of the fuzz seeds (3 classes). */
#define _DEFAULT_SOURCE /* scandir, alphasort */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kdcam.h"

#define TINY "tests/fuzz/corpus/safetensors/tiny_mobilenet.safetensors"
#define MAX_CLASSES 16

static char self_exe[4096]; /* this program, for the other process */

/* Loads path and runs the model; returns 0 and the logits, or -1 if the
 * image does not load (*why says so). pixel_hash: FNV-1a of the pixels. */
static int logits_of(const kdc_model *m, const char *path, float *logits, int *k,
                     uint64_t *pixel_hash)
{
    kdc_image *im = NULL;
    kdc_preprocess pp;
    kdc_run *run = NULL;
    float *x = NULL;
    int h, w, rc = -1, last = kdc_model_num_layers(m) - 1;
    if (kdc_image_load(path, &im))
        return -1;
    *pixel_hash = 1469598103934665603ULL;
    for (size_t i = 0; i < (size_t)im->width * im->height * 3; i++)
        *pixel_hash = (*pixel_hash ^ im->rgb[i]) * 1099511628211ULL;
    kdc_model_preprocess(m, &pp);
    *k = kdc_model_num_classes(m);
    if (kdc_preprocess_size(&pp, im->width, im->height, &h, &w) ||
        !(x = malloc((size_t)3 * h * w * sizeof *x)) || kdc_preprocess_image(im, &pp, x, NULL) ||
        kdc_run_create(m, NULL, &run) || kdc_run_forward(run, x, 1, h, w, NULL, 0) ||
        kdc_run_read_layer(run, last, logits, (size_t)*k))
        goto done;
    rc = 0;
done:
    kdc_run_destroy(run);
    free(x);
    kdc_image_destroy(im);
    return rc;
}

/* The logits as hex words, for the other process. */
static void format_result(const float *l, int k, uint64_t ph, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%016llx", (unsigned long long)ph);
    for (int i = 0; i < k; i++) {
        uint32_t u;
        memcpy(&u, &l[i], 4);
        n += snprintf(out + n, cap - (size_t)n, " %08x", u);
    }
}

/* Runs this program with --logits path; its stdout into out. */
static void other_process(const char *path, char *out, size_t cap)
{
    char cmd[sizeof self_exe + 600];
    snprintf(cmd, sizeof cmd, "%s --logits '%s'", self_exe, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    if (n && out[n - 1] == '\n')
        out[n - 1] = '\0';
    assert_int_equal(pclose(p), 0);
}

static int skip_name(const char *name)
{
    static const char *bad[] = {"empty", "corrupt", "truncated"};
    if (name[0] == '.')
        return 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (!strncmp(name, bad[i], strlen(bad[i])))
            return 1;
    const char *dot = strrchr(name, '.');
    return !dot || (strcmp(dot, ".png") && strcmp(dot, ".jpg") && strcmp(dot, ".bmp"));
}

static void test_repeatable(void **state)
{
    static const char *dirs[] = {"tests/fixtures", "examples/images", "tests/fuzz/corpus/image",
                                 "tests/fuzz/regress/image"};
    kdc_model *m = NULL;
    int checked = 0;
    (void)state;
    assert_int_equal(kdc_model_load(TINY, NULL, &m), KDC_OK);
    for (size_t d = 0; d < sizeof dirs / sizeof *dirs; d++) {
        struct dirent **list;
        int n = scandir(dirs[d], &list, NULL, alphasort);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++) {
            char path[512], a[512], b[512], c[512];
            float l1[MAX_CLASSES], l2[MAX_CLASSES];
            uint64_t h1, h2;
            int k1, k2;
            snprintf(path, sizeof path, "%s/%s", dirs[d], list[i]->d_name);
            if (!skip_name(list[i]->d_name) && logits_of(m, path, l1, &k1, &h1) == 0) {
                assert_int_equal(logits_of(m, path, l2, &k2, &h2), 0);
                format_result(l1, k1, h1, a, sizeof a);
                format_result(l2, k2, h2, b, sizeof b);
                other_process(path, c, sizeof c);
                if (strcmp(a, b) || strcmp(a, c))
                    fail_msg("%s: pixels hash and logits differ between runs:\n  %s\n  %s\n"
                             "  %s (other process)", path, a, b, c);
                checked++;
            }
            free(list[i]);
        }
        free(list);
    }
    print_message("  %d images: the same pixels and logits, twice here and once in another "
                  "process\n", checked);
    assert_true(checked >= 20);
    kdc_model_destroy(m);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--logits")) {
        kdc_model *m = NULL;
        float l[MAX_CLASSES];
        uint64_t h;
        int k;
        char out[512];
        if (kdc_model_load(TINY, NULL, &m) || logits_of(m, argv[2], l, &k, &h))
            return 1;
        format_result(l, k, h, out, sizeof out);
        puts(out);
        kdc_model_destroy(m);
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_repeatable)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
