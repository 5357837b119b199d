/* test_npy.c - NumPy .npy reading and writing.
 * NumPy-written fixtures come from tools/gen_image_fixtures.py. Run from the
 * repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kdcam.h"
#include "testkit.h"

#define FIX "tests/fixtures/"

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long len;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* An npy file with the given version and header text (padding added). */
static void write_npy_raw(const char *path, int major, const char *dict, const void *data,
                          size_t ndata)
{
    unsigned char buf[1024];
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict);
    size_t hlen = len + 1;
    while ((pre + hlen) % 64)
        hlen++;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
        buf[10] = buf[11] = 0;
    }
    memcpy(buf + pre, dict, len);
    memset(buf + pre + len, ' ', hlen - len - 1);
    buf[pre + hlen - 1] = '\n';
    assert_true(pre + hlen + ndata <= sizeof buf);
    memcpy(buf + pre + hlen, data, ndata);
    write_bytes(path, buf, pre + hlen + ndata);
}

static void expect_load_error(const char *path, kdc_status want, const char *must_contain)
{
    float *data = (float *)1;
    int ndim = -1;
    int64_t dims[8];
    kdc_status st = kdc_npy_load(path, &data, &ndim, dims);
    if (st != want)
        print_message("%s: got %s (%s), want %s\n", path, kdc_status_string(st),
                      kdc_last_error(), kdc_status_string(want));
    assert_int_equal(st, want);
    assert_null(data);
    assert_non_null(strstr(kdc_last_error(), path));
    if (must_contain && !strstr(kdc_last_error(), must_contain)) {
        print_message("message \"%s\" lacks \"%s\"\n", kdc_last_error(), must_contain);
        fail();
    }
}

/* ------------------------------------------------------------------ */

static void round_trip(int ndim, const int64_t *dims)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    float *x = malloc((n ? n : 1) * sizeof *x), *y = NULL;
    int64_t got[8];
    int gnd = -1;
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i * 0.37f - 5.0f;
    if (n > 2) {
        x[1] = -0.0f;
        x[2] = INFINITY;
    }
    const char *p = tk_tmp_path("rt.npy");
    assert_int_equal(kdc_npy_save(p, x, ndim, dims), KDC_OK);
    assert_int_equal(kdc_npy_load(p, &y, &gnd, got), KDC_OK);
    assert_int_equal(gnd, ndim);
    for (int i = 0; i < 8; i++)
        assert_true(got[i] == (i < ndim ? dims[i] : 0));
    assert_non_null(y);
    if (n)
        assert_memory_equal(x, y, n * sizeof *x);

    /* The layout: version 1.0, the data at a multiple of 64 bytes, the
     * header ending in '\n', nothing after the data. */
    size_t len;
    unsigned char *b = read_bytes(p, &len);
    assert_memory_equal(b, "\x93NUMPY\x01\x00", 8);
    size_t off = 10 + (size_t)(b[8] | b[9] << 8);
    assert_int_equal(off % 64, 0);
    assert_int_equal(b[off - 1], '\n');
    assert_int_equal(len, off + 4 * n);
    assert_non_null(strstr((char *)b + 10, "'descr': '<f4'"));
    assert_int_equal(tk_count_entries(tk_tmpdir()), 1);
    free(b);
    free(x);
    kdc_free(y);
    remove(p);
}

static void test_round_trip_shapes(void **state)
{
    static const int64_t d1[] = {7}, d2[] = {3, 5}, d4[] = {2, 3, 4, 5},
                         d8[] = {2, 1, 3, 1, 1, 2, 1, 2}, d0[] = {0, 3}, dbig[] = {1, 3, 67, 71};
    round_trip(1, d1);
    round_trip(2, d2);
    round_trip(4, d4);
    round_trip(8, d8);
    round_trip(0, NULL);  /* scalar */
    round_trip(2, d0);    /* empty */
    round_trip(4, dbig);  /* several write chunks */
}

static void test_header_text(void **state)
{
    static const int64_t d1[] = {7}, d3[] = {2, 3, 4};
    float x[24];
    size_t len;
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    unsigned char *b;
    assert_int_equal(kdc_npy_save(tk_tmp_path("a.npy"), x, 1, d1), KDC_OK);
    b = read_bytes(tk_tmp_path("a.npy"), &len);
    const char *h1 = "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }";
    assert_memory_equal(b + 10, h1, strlen(h1));
    free(b);
    assert_int_equal(kdc_npy_save(tk_tmp_path("a.npy"), x, 3, d3), KDC_OK);
    b = read_bytes(tk_tmp_path("a.npy"), &len);
    const char *h3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }";
    assert_memory_equal(b + 10, h3, strlen(h3));
    /* NumPy's file of arange(24) (2x3x4) has the same data at the same
     * offset (128) */
    size_t nlen;
    unsigned char *nb = read_bytes(FIX "np_f32.npy", &nlen);
    assert_int_equal(nlen, len);
    assert_memory_equal(nb + len - 96, b + len - 96, 96);
    free(nb);
    free(b);
    remove(tk_tmp_path("a.npy"));
}

static void test_load_numpy_files(void **state)
{
    float *y = NULL;
    int nd = 0;
    int64_t d[8];
    static const char *f32[] = {FIX "np_f32.npy", FIX "np_f32_v2.npy"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(kdc_npy_load(f32[k], &y, &nd, d), KDC_OK);
        assert_int_equal(nd, 3);
        assert_true(d[0] == 2 && d[1] == 3 && d[2] == 4 && d[3] == 0);
        for (int i = 0; i < 24; i++)
            assert_true(y[i] == (float)i);
        kdc_free(y);
    }
    /* float64 and float16 are converted: (i - 7) / 4 + 1e-9 */
    assert_int_equal(kdc_npy_load(FIX "np_f64.npy", &y, &nd, d), KDC_OK);
    assert_true(nd == 2 && d[0] == 3 && d[1] == 5);
    for (int i = 0; i < 15; i++)
        assert_true(y[i] == (float)((i - 7) / 4.0 + 1e-9));
    kdc_free(y);
    assert_int_equal(kdc_npy_load(FIX "np_f16.npy", &y, &nd, d), KDC_OK);
    assert_true(nd == 2 && d[0] == 3 && d[1] == 5);
    for (int i = 0; i < 15; i++)
        assert_true(y[i] == (float)(i - 7) / 4.0f); /* exact in f16 */
    kdc_free(y);
    assert_int_equal(kdc_npy_load(FIX "np_scalar.npy", &y, &nd, d), KDC_OK);
    assert_int_equal(nd, 0);
    assert_true(y[0] == 3.5f);
    kdc_free(y);
}

static void test_header_variants(void **state)
{
    float v[6] = {1, 2, 3, 4, 5, 6}, *y = NULL;
    int nd;
    int64_t d[8];
    /* version 3.0, double quotes, other key order, no trailing comma, a
     * Python 2 long, fortran order on 1-d data (the same as C order) */
    write_npy_raw(tk_tmp_path("v.npy"), 3,
                  "{\"shape\": (6L,), \"fortran_order\": True, \"descr\": \"<f4\"}", v, 24);
    assert_int_equal(kdc_npy_load(tk_tmp_path("v.npy"), &y, &nd, d), KDC_OK);
    assert_true(nd == 1 && d[0] == 6 && y[5] == 6.0f);
    kdc_free(y);
    /* float16 specials */
    uint16_t h[6] = {0x3C00, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x7E00};
    write_npy_raw(tk_tmp_path("v.npy"), 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }",
                  h, 12);
    assert_int_equal(kdc_npy_load(tk_tmp_path("v.npy"), &y, &nd, d), KDC_OK);
    assert_true(y[0] == 1.0f);
    assert_true(y[1] == 0.0f && signbit(y[1]));
    assert_true(isinf(y[2]) && y[2] > 0);
    assert_true(isinf(y[3]) && y[3] < 0);
    assert_true(y[4] == ldexpf(1.0f, -24));
    assert_true(isnan(y[5]));
    kdc_free(y);
    /* float64 beyond float range becomes infinity */
    double big[2] = {1e300, -1e300};
    write_npy_raw(tk_tmp_path("v.npy"), 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                  big, 16);
    assert_int_equal(kdc_npy_load(tk_tmp_path("v.npy"), &y, &nd, d), KDC_OK);
    assert_true(isinf(y[0]) && y[0] > 0 && isinf(y[1]) && y[1] < 0);
    kdc_free(y);
    remove(tk_tmp_path("v.npy"));
}

static void test_load_rejections(void **state)
{
    expect_load_error(FIX "np_fortran.npy", KDC_ERR_UNSUPPORTED, "fortran_order");
    expect_load_error(FIX "np_bigendian.npy", KDC_ERR_UNSUPPORTED, "big-endian");
    expect_load_error(FIX "np_int.npy", KDC_ERR_UNSUPPORTED, "'<i4'");
    expect_load_error(FIX "no_such.npy", KDC_ERR_IO, "cannot open");
    expect_load_error(FIX "gray.png", KDC_ERR_FORMAT, "bad magic");

    /* truncated data, trailing data, truncated header */
    size_t len;
    unsigned char *b = read_bytes(FIX "np_f32.npy", &len);
    const char *p = tk_tmp_path("bad.npy");
    write_bytes(p, b, len - 3);
    expect_load_error(p, KDC_ERR_FORMAT, "truncated");
    unsigned char *b2 = malloc(len + 4);
    assert_non_null(b2);
    memcpy(b2, b, len);
    memset(b2 + len, 0, 4);
    write_bytes(p, b2, len + 4);
    expect_load_error(p, KDC_ERR_FORMAT, "trailing");
    write_bytes(p, b, 40);
    expect_load_error(p, KDC_ERR_FORMAT, "truncated .npy header");
    write_bytes(p, b, 8);
    expect_load_error(p, KDC_ERR_FORMAT, NULL);
    b2[6] = 4; /* unknown version */
    write_bytes(p, b2, len);
    expect_load_error(p, KDC_ERR_UNSUPPORTED, "version");
    free(b2);
    free(b);

    /* malformed headers */
    static const char *bad[] = {
        "{'descr': '<f4', 'fortran_order': False}",                       /* no shape */
        "{'descr': '<f4', 'shape': (2, 3), }",                            /* no fortran */
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }",   /* negative */
        "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }",    /* a list */
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) ",      /* no '}' */
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x",
        "['descr', '<f4']",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
    };
    float v[6] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_npy_raw(p, 1, bad[i], v, 24);
        expect_load_error(p, KDC_ERR_FORMAT, "header");
    }
    /* a shape whose size overflows, or needs more data than there is */
    write_npy_raw(p, 1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8)}",
                  v, 24);
    expect_load_error(p, KDC_ERR_FORMAT, "overflow");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000)}",
                  v, 24);
    expect_load_error(p, KDC_ERR_FORMAT, "truncated");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}",
                  v, 4);
    expect_load_error(p, KDC_ERR_UNSUPPORTED, "dimensions");
    write_npy_raw(p, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}", v,
                  24);
    expect_load_error(p, KDC_ERR_UNSUPPORTED, "structured");
    remove(p);

    float *y = NULL;
    int nd;
    int64_t d[8];
    assert_int_equal(kdc_npy_load(NULL, &y, &nd, d), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_load(FIX "np_f32.npy", NULL, &nd, d), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_load(FIX "np_f32.npy", &y, NULL, d), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_load(FIX "np_f32.npy", &y, &nd, NULL), KDC_ERR_INVALID_ARGUMENT);
}

static void test_save_errors(void **state)
{
    float x[4] = {1, 2, 3, 4};
    int64_t d[9] = {2, 2, 1, 1, 1, 1, 1, 1, 1};
    char p[256];

    /* a missing directory */
    snprintf(p, sizeof p, "%s/missing/x.npy", tk_tmpdir());
    assert_int_equal(kdc_npy_save(p, x, 2, d), KDC_ERR_IO);
    assert_non_null(strstr(kdc_last_error(), p));
    assert_int_equal(access(p, F_OK), -1);

    /* the target is a directory: the rename fails after the temporary file
     * was written; it must be gone afterwards */
    snprintf(p, sizeof p, "%s/adir", tk_tmpdir());
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(kdc_npy_save(p, x, 2, d), KDC_ERR_IO);
    assert_non_null(strstr(kdc_last_error(), p));
    assert_int_equal(tk_count_entries(tk_tmpdir()), 1);
    rmdir(p);

    /* a failed save leaves an existing file untouched */
    const char *q = tk_tmp_path("keep.npy");
    assert_int_equal(kdc_npy_save(q, x, 1, d), KDC_OK);
    int64_t bad[2] = {-1, 2};
    assert_int_equal(kdc_npy_save(q, x, 2, bad), KDC_ERR_INVALID_ARGUMENT);
    float *y = NULL;
    int nd;
    int64_t gd[8];
    assert_int_equal(kdc_npy_load(q, &y, &nd, gd), KDC_OK);
    assert_true(nd == 1 && gd[0] == 2);
    kdc_free(y);
    remove(q);

    assert_int_equal(kdc_npy_save(q, x, 9, d), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_save(q, x, -1, d), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_save(q, NULL, 2, d), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_save(q, x, 2, NULL), KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_npy_save(NULL, x, 2, d), KDC_ERR_INVALID_ARGUMENT);
    int64_t huge[2] = {INT64_MAX, 4};
    assert_int_equal(kdc_npy_save(q, x, 2, huge), KDC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kdc_last_error(), "overflow"));
    assert_int_equal(tk_count_entries(tk_tmpdir()), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_shapes),
        cmocka_unit_test(test_header_text),
        cmocka_unit_test(test_load_numpy_files),
        cmocka_unit_test(test_header_variants),
        cmocka_unit_test(test_load_rejections),
        cmocka_unit_test(test_save_errors),
    };
    if (tk_tmpdir_create("test_npy") != 0)
        return 1;
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tk_tmpdir_remove();
    return failed;
}
