/* test_limits.c - the limits of docs/security.md, one by one, at the
 * library level: the image pixel limit and its option, the metadata size
 * bounds and the activation-memory estimate (against the layer shapes the
 * model reports), the safetensors header-tree budget (a realistic header
 * of 10,000 tensors still opens), and the PyTorch-checkpoint message (which
 * must not fire for a safetensors file whose header length happens to start
 * with the bytes of a pickle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/metadata.h"
#include "safetensors.h"
#include "testkit.h"

#define PHOTO "tests/fixtures/photo.jpg" /* 48 x 32 */

static char path[256];

static void expect_error(kdc_status got, kdc_status want, const char *what)
{
    if (got != want || !strstr(kdc_last_error(), what))
        fail_msg("got %s '%s', expected %s mentioning '%s'", kdc_status_string(got),
                 kdc_last_error(), kdc_status_string(want), what);
}

static void test_image_pixel_limit(void **state)
{
    kdc_image_options opt;
    kdc_image *im = NULL;
    (void)state;
    kdc_image_options_init(&opt);
    assert_int_equal(opt.max_pixels, 89478485);
    opt.max_pixels = 48 * 32; /* exactly the photo: allowed */
    CHECK_OK(kdc_image_load_ex(PHOTO, &opt, &im));
    assert_int_equal(im->width * im->height, 48 * 32);
    kdc_image_destroy(im);
    opt.max_pixels = 48 * 32 - 1;
    expect_error(kdc_image_load_ex(PHOTO, &opt, &im), KDC_ERR_UNSUPPORTED,
                 "JPEG image of 48x32 = 1536 pixels is above the limit of 1535 pixels");
    assert_null(im);
    opt.max_pixels = -1;
    expect_error(kdc_image_load_ex(PHOTO, &opt, &im), KDC_ERR_INVALID_ARGUMENT, "negative");
    opt.max_pixels = 0; /* the default */
    CHECK_OK(kdc_image_load_ex(PHOTO, &opt, &im));
    kdc_image_destroy(im);
    CHECK_OK(kdc_image_load_ex(PHOTO, NULL, &im));
    kdc_image_destroy(im);
}

static void test_metadata_bounds(void **state)
{
    kdc_preprocess pp;
    (void)state;
    kdc_preprocess_imagenet(&pp);
    CHECK_OK(kdc__meta_preprocess("m", "resize=1024 crop=1024x1024", &pp));
    assert_int_equal(pp.resize_short, 1024);
    assert_int_equal(pp.crop_w, 1024);
    kdc_preprocess_imagenet(&pp);
    expect_error(kdc__meta_preprocess("m", "resize=1025", &pp), KDC_ERR_FORMAT,
                 "resize=1025 is not in 0..1024");
    expect_error(kdc__meta_preprocess("m", "crop=1024x1025", &pp), KDC_ERR_FORMAT,
                 "crop=1024x1025 is not within 0..1024");
    expect_error(kdc__meta_preprocess("m", "resize=99999999999999999999", &pp),
                 KDC_ERR_FORMAT, "is not in 0..1024");
    assert_int_equal(pp.resize_short, 256); /* unchanged on error */
}

static void test_metadata_detect(void **state)
{
    int sh = 7, mx = 9, an = 5;
    (void)state;
    CHECK_OK(kdc__meta_detect("m", "short=256 max=384", &sh, &mx, &an));
    assert_int_equal(sh, 256);
    assert_int_equal(mx, 384);
    assert_int_equal(an, 0);
    CHECK_OK(kdc__meta_detect("m", " max=2048 anchor=16  short=32 ", &sh, &mx, &an));
    assert_int_equal(sh, 32);
    assert_int_equal(mx, 2048);
    assert_int_equal(an, 16);
    sh = 7;
    mx = 9;
    an = 5;
    static const char *bad[] = {"", "short=256", "max=256", "short=31 max=256",
                                "short=256 max=2049", "short=300 max=200", "short=256x max=256",
                                "short= max=256", "short=256 max=256 crop=3",
                                "short=256 max=256 anchor=3", "short=256 max=256 anchor=1025",
                                "short=99999999999999999999 max=256", "resize=256"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_error(kdc__meta_detect("m", bad[i], &sh, &mx, &an), KDC_ERR_FORMAT,
                     "expected \"short=S max=M [anchor=A]\" with 32 <= S <= M <= 2048, "
                     "4 <= A <= 1024");
    assert_int_equal(sh, 7); /* unchanged on error */
    assert_int_equal(mx, 9);
    assert_int_equal(an, 5);
}

/* Rewrites a generated weights file with metadata kdcam.preprocess = pre. */
static void with_preprocess(const char *src, const char *pre, const char *dst)
{
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    unsigned char le[8];
    assert_int_equal(fread(le, 1, 8, f), 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | le[i];
    char *hdr = malloc(hlen + 1), *nh = malloc(hlen + 256);
    assert_non_null(hdr);
    assert_non_null(nh);
    assert_int_equal(fread(hdr, 1, hlen, f), hlen);
    hdr[hlen] = '\0';
    const char *key = "\"__metadata__\":{";
    char *at = strstr(hdr, key);
    assert_non_null(at);
    at += strlen(key);
    int n = snprintf(nh, hlen + 256, "%.*s\"kdcam.preprocess\":\"%s\",%s", (int)(at - hdr), hdr,
                     pre, at);
    while (n % 8)
        nh[n++] = ' ';
    FILE *o = fopen(dst, "wb");
    assert_non_null(o);
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)n >> (8 * i)) & 0xFF, o);
    fwrite(nh, 1, (size_t)n, o);
    static char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        assert_int_equal(fwrite(buf, 1, got, o), got);
    fclose(f);
    assert_int_equal(fclose(o), 0);
    free(hdr);
    free(nh);
}

/* Sum over layers of C*H*W*4 at h x w, from kdc_model_layer_shape. */
static double activation_mib(const kdc_model *m, int h, int w)
{
    double s = 0;
    for (int i = 0; i < kdc_model_num_layers(m); i++) {
        int chw[3];
        CHECK_OK(kdc_model_layer_shape(m, i, h, w, chw));
        s += (double)chw[0] * chw[1] * chw[2] * 4;
    }
    return s / (1 << 20);
}

static void test_metadata_memory(void **state)
{
    kdc_model *m = NULL;
    char msg[512];
    (void)state;
    const char *w = tk_weights_file("resnet50", 1, 10, NULL, 0);
    CHECK_OK(kdc_model_load(w, NULL, &m));
    double big = activation_mib(m, 1024, 1024), ok = activation_mib(m, 512, 512);
    kdc_model_destroy(m);
    m = NULL;
    assert_true(big > 2048 && ok < 2048);

    with_preprocess(w, "resize=512 crop=512x512", path);
    CHECK_OK(kdc_model_load(path, NULL, &m));
    kdc_preprocess pp;
    kdc_model_preprocess(m, &pp);
    assert_int_equal(pp.crop_h, 512);
    kdc_model_destroy(m);
    m = NULL;

    with_preprocess(w, "resize=1024 crop=1024x1024", path);
    snprintf(msg, sizeof msg, "whose activations need %.0f MiB per image (limit 2048 MiB)", big);
    expect_error(kdc_model_load(path, NULL, &m), KDC_ERR_FORMAT, msg);
    assert_null(m);
    print_message("  resnet50 activations: %.0f MiB at 512x512 (loads), %.0f MiB at 1024x1024 "
                  "(refused)\n", ok, big);
    remove(path);
}

/* Writes a safetensors file of n one-element F32 tensors (header padded to
 * pad bytes if pad > 0). */
static void write_many(const char *p, int n, size_t pad)
{
    size_t cap = (size_t)n * 96 + 64 + pad, len = 0;
    char *h = malloc(cap);
    assert_non_null(h);
    len += (size_t)snprintf(h + len, cap - len, "{");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(h + len, cap - len,
                                "%s\"layer.%d.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                                "\"data_offsets\":[%d,%d]}", i ? "," : "", i, 4 * i, 4 * i + 4);
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len < pad || len % 8)
        h[len++] = ' ';
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)len >> (8 * i)) & 0xFF, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < n; i++)
        fwrite("\0\0\x80\x3f", 1, 4, f); /* 1.0f */
    assert_int_equal(fclose(f), 0);
    free(h);
}

static void test_safetensors_budget(void **state)
{
    kdc__st_file *f = NULL;
    (void)state;
    /* 10,000 tensors (a 0.9 MB header): well inside the budget */
    write_many(path, 10000, 0);
    CHECK_OK(kdc__st_open(path, &f));
    assert_int_equal(kdc__st_count(f), 10000);
    kdc__st_close(f);
    f = NULL;

    /* a valid header of 4 million numbers (8 MB) needs more than 64 MiB */
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    const size_t count = 4000000;
    const size_t hlen = 2 * count + 6; /* {"a":[ 0,0,...,0 ]} */
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)hlen >> (8 * i)) & 0xFF, o);
    fputs("{\"a\":[", o);
    for (size_t i = 0; i < count; i++)
        fputs(i + 1 < count ? "0," : "0", o);
    fputs("]}", o);
    assert_int_equal(fclose(o), 0);
    expect_error(kdc__st_open(path, &f), KDC_ERR_FORMAT,
                 "header JSON needs more than 64 MiB of memory to parse");
    assert_null(f);
    remove(path);
}

static void test_checkpoint_message(void **state)
{
    kdc__st_file *f = NULL;
    (void)state;
    /* a zip's first bytes */
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    fwrite("PK\x03\x04\x14\x00\x00\x00\x08\x00", 1, 10, o);
    fwrite("archive/data.pkl", 1, 16, o);
    assert_int_equal(fclose(o), 0);
    expect_error(kdc__st_open(path, &f), KDC_ERR_FORMAT,
                 "this is a PyTorch checkpoint (a zip archive, .pth/.pt), not safetensors");
    /* a header of 640 bytes: its length starts 0x80 0x02, as a pickle
     * does, and the file is still read as safetensors */
    write_many(path, 3, 640);
    CHECK_OK(kdc__st_open(path, &f));
    assert_int_equal(kdc__st_count(f), 3);
    kdc__st_close(f);
    remove(path);
}

static int setup(void **state)
{
    (void)state;
    if (tk_tmpdir_create("limits"))
        return -1;
    snprintf(path, sizeof path, "%s/t.safetensors", tk_tmpdir());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tk_tmpdir_remove();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_pixel_limit), cmocka_unit_test(test_metadata_bounds),
        cmocka_unit_test(test_metadata_detect),
        cmocka_unit_test(test_metadata_memory), cmocka_unit_test(test_safetensors_budget),
        cmocka_unit_test(test_checkpoint_message),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
