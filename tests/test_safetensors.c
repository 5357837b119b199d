/* test_safetensors.c - the safetensors reader: a valid file with every
 * dtype path the library converts, one test per format rule (status and the
 * rule named in the message), and a deterministic header fuzz. Files are
 * hand-built bytes in a temporary directory. */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "safetensors.h"
#include "st_json.h"

static char tmp_dir[64];
static char path_buf[512];

/* ------------------------------------------------------------------ */
/* Building files                                                       */

static const char *path_of(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", tmp_dir, name);
    return path_buf;
}

static const char *write_bytes(const char *name, const void *bytes, size_t len)
{
    const char *path = path_of(name);
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    if (len)
        assert_int_equal(fwrite(bytes, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A file with the given header (plus pad spaces) and data buffer. */
static const char *write_st_n(const char *name, const char *json, size_t jlen, size_t pad,
                              const void *data, size_t dlen)
{
    size_t n = jlen + pad, total = 8 + n + dlen;
    unsigned char *buf = malloc(total ? total : 1);
    const char *path;

    assert_non_null(buf);
    put_le64(buf, n);
    memcpy(buf + 8, json, jlen);
    memset(buf + 8 + jlen, ' ', pad);
    if (dlen)
        memcpy(buf + 8 + n, data, dlen);
    path = write_bytes(name, buf, total);
    free(buf);
    return path;
}

static const char *write_st(const char *name, const char *json, size_t pad, const void *data,
                            size_t dlen)
{
    return write_st_n(name, json, strlen(json), pad, data, dlen);
}

/* A zero data buffer of dlen bytes, for rule tests that care only about
 * the header. */
static const char *write_st_zeros(const char *name, const char *json, size_t dlen)
{
    unsigned char *zeros = calloc(dlen ? dlen : 1, 1);
    const char *path;

    assert_non_null(zeros);
    path = write_st(name, json, 0, zeros, dlen);
    free(zeros);
    return path;
}

/* Opening must fail with want, leave *out NULL, and the message must
 * start with the path and contain what. */
static void expect_fail(const char *path, kdc_status want, const char *what)
{
    kdc__st_file *f = (kdc__st_file *)&f; /* non-NULL: must be reset */
    kdc_status st = kdc__st_open(path, &f);
    const char *msg = kdc_last_error();

    if (st != want || !strstr(msg, what) || strncmp(msg, path, strlen(path)) != 0) {
        print_error("status %s (want %s), message \"%s\" (want \"%s\")\n",
                    kdc_status_string(st), kdc_status_string(want), msg, what);
        kdc__st_close(st == KDC_OK ? f : NULL);
        fail();
    }
    assert_null(f);
}

static kdc__st_file *expect_open(const char *path)
{
    kdc__st_file *f = NULL;
    kdc_status st = kdc__st_open(path, &f);

    if (st != KDC_OK) {
        print_error("open failed: %s: %s\n", kdc_status_string(st), kdc_last_error());
        fail();
    }
    assert_non_null(f);
    return f;
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ------------------------------------------------------------------ */
/* The valid file                                                       */

/* 76 data bytes; offsets chosen so that "w" (F32) starts at byte 2 and
 * "idx" (I64) at byte 40: unaligned relative to the mapping + 8 + N. */
static const char valid_json[] =
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\\n\"},"
    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[2,18]},"
    "\"idx\":{\"shape\":[2],\"dtype\":\"I64\",\"data_offsets\":[40,56]},"
    "\"h1\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
    "\"half\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[18,34]},"
    " \"bf\" : { \"dtype\" : \"BF16\" , \"shape\" : [ 3 ] , \"data_offsets\" : [ 34 , 40 ] } ,\n"
    "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[56,60]},"
    "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[60,76]},"
    "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[60,60]}}";

static const float w_vals[4] = { 1.5f, -2.25f, 3e-5f, 1e30f };
static const uint16_t half_bits[8] = { 0x3C00, 0xC000, 0x0001, 0x03FF,
                                       0x7C00, 0xFC00, 0x7BFF, 0x8000 };
static const uint16_t bf_bits[3] = { 0x3F80, 0xC0A0, 0x7F80 };
static const int64_t idx_vals[2] = { -3, 1234567890123LL };
static const double d_vals[2] = { 0.1, 1e300 };

static void build_valid_data(unsigned char data[76])
{
    uint32_t u32;
    uint64_t u64;
    int i;

    data[0] = 0x00; /* h1 = 1.0 */
    data[1] = 0x3C;
    for (i = 0; i < 4; i++) {
        memcpy(&u32, &w_vals[i], 4);
        data[2 + 4 * i] = (unsigned char)u32;
        data[3 + 4 * i] = (unsigned char)(u32 >> 8);
        data[4 + 4 * i] = (unsigned char)(u32 >> 16);
        data[5 + 4 * i] = (unsigned char)(u32 >> 24);
    }
    for (i = 0; i < 8; i++) {
        data[18 + 2 * i] = (unsigned char)half_bits[i];
        data[19 + 2 * i] = (unsigned char)(half_bits[i] >> 8);
    }
    for (i = 0; i < 3; i++) {
        data[34 + 2 * i] = (unsigned char)bf_bits[i];
        data[35 + 2 * i] = (unsigned char)(bf_bits[i] >> 8);
    }
    for (i = 0; i < 2; i++) {
        memcpy(&u64, &idx_vals[i], 8);
        put_le64(data + 40 + 8 * i, u64);
    }
    {
        float s = 42.5f;
        memcpy(&u32, &s, 4);
        data[56] = (unsigned char)u32;
        data[57] = (unsigned char)(u32 >> 8);
        data[58] = (unsigned char)(u32 >> 16);
        data[59] = (unsigned char)(u32 >> 24);
    }
    for (i = 0; i < 2; i++) {
        memcpy(&u64, &d_vals[i], 8);
        put_le64(data + 60 + 8 * i, u64);
    }
}

static const char *write_valid(const char *name, size_t pad)
{
    unsigned char data[76];

    build_valid_data(data);
    return write_st(name, valid_json, pad, data, sizeof data);
}

static void check_valid(kdc__st_file *f)
{
    static const char *order[] = { "h1", "w", "half", "bf", "idx", "scalar", "empty", "d" };
    const kdc__st_tensor *t;
    float out[8];
    int64_t iv[2];
    int i;

    assert_int_equal(kdc__st_count(f), 8);
    for (i = 0; i < 8; i++) {
        t = kdc__st_at(f, i);
        assert_non_null(t);
        assert_string_equal(t->name, order[i]);
        assert_ptr_equal(kdc__st_find(f, order[i]), t);
    }
    assert_null(kdc__st_at(f, 8));
    assert_null(kdc__st_at(f, -1));
    assert_null(kdc__st_find(f, "missing"));
    assert_null(kdc__st_find(f, "__metadata__"));
    assert_null(kdc__st_find(f, ""));

    /* Data is in offset order and contiguous. */
    for (i = 1; i < 8; i++)
        assert_ptr_equal(kdc__st_at(f, i)->data,
                         kdc__st_at(f, i - 1)->data + kdc__st_at(f, i - 1)->nbytes);

    t = kdc__st_find(f, "h1");
    assert_int_equal(t->dtype, KDC__ST_F16);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->nbytes, 2);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
    assert_true(out[0] == 1.0f);

    t = kdc__st_find(f, "w");
    assert_int_equal(t->dtype, KDC__ST_F32);
    assert_string_equal(t->dtype_name, "F32");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 2);
    assert_int_equal(t->numel, 4);
    assert_int_equal(t->nbytes, 16);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
    for (i = 0; i < 4; i++)
        assert_true(same_bits(out[i], w_vals[i]));

    t = kdc__st_find(f, "half");
    assert_int_equal(t->dtype, KDC__ST_F16);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.0f);
    assert_true(out[2] == ldexpf(1.0f, -24));        /* smallest subnormal */
    assert_true(out[3] == ldexpf(1023.0f, -24));     /* largest subnormal  */
    assert_true(isinf(out[4]) && out[4] > 0);
    assert_true(isinf(out[5]) && out[5] < 0);
    assert_true(out[6] == 65504.0f);
    assert_true(out[7] == 0.0f && signbit(out[7]));

    t = kdc__st_find(f, "bf");
    assert_int_equal(t->dtype, KDC__ST_BF16);
    assert_string_equal(t->dtype_name, "BF16");
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -5.0f);
    assert_true(isinf(out[2]) && out[2] > 0);

    t = kdc__st_find(f, "idx");
    assert_int_equal(t->dtype, KDC__ST_I64);
    assert_int_equal(kdc__st_to_i64(t, iv), KDC_OK);
    assert_true(iv[0] == idx_vals[0]);
    assert_true(iv[1] == idx_vals[1]);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_ERR_UNSUPPORTED);
    assert_non_null(strstr(kdc_last_error(), "idx"));
    assert_non_null(strstr(kdc_last_error(), "I64"));

    t = kdc__st_find(f, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(t->nbytes, 4);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
    assert_true(out[0] == 42.5f);
    assert_int_equal(kdc__st_to_i64(t, iv), KDC_ERR_UNSUPPORTED);

    t = kdc__st_find(f, "empty");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);

    t = kdc__st_find(f, "d");
    assert_int_equal(t->dtype, KDC__ST_F64);
    assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
    assert_true(out[0] == (float)0.1);
    assert_true(isinf(out[1]) && out[1] > 0);

    assert_string_equal(kdc__st_metadata(f, "format"), "pt");
    assert_string_equal(kdc__st_metadata(f, "note"),
                        "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"\n");
    assert_null(kdc__st_metadata(f, "absent"));
}

static void test_valid(void **state)
{
    kdc__st_file *f = expect_open(write_valid("valid.safetensors", 0));

    check_valid(f);
    kdc__st_close(f);
}

/* Writers pad the header with spaces so the data is aligned. */
static void test_valid_padded(void **state)
{
    kdc__st_file *f = expect_open(write_valid("padded.safetensors", 7));

    check_valid(f);
    kdc__st_close(f);
}

static void test_empty_header(void **state)
{
    kdc__st_file *f = expect_open(write_st("empty.st", "{}", 0, NULL, 0));

    assert_int_equal(kdc__st_count(f), 0);
    assert_null(kdc__st_at(f, 0));
    assert_null(kdc__st_find(f, "x"));
    assert_null(kdc__st_metadata(f, "x"));
    kdc__st_close(f);

    /* Padding and metadata without any tensor. */
    f = expect_open(write_st("meta_only.st", "{\"__metadata__\":{}}", 6, NULL, 0));
    assert_int_equal(kdc__st_count(f), 0);
    kdc__st_close(f);

    /* Data after an empty tensor table is left over. */
    expect_fail(write_st("empty_extra.st", "{}", 0, "x", 1), KDC_ERR_FORMAT,
                "does not reach the end");
}

/* Only empty tensors; the data pointer may be the end of the mapping. */
static void test_only_empty_tensors(void **state)
{
    kdc__st_file *f = expect_open(write_st("only_empty.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"b\":{\"dtype\":\"I64\",\"shape\":[3,0,2],\"data_offsets\":[0,0]}}", 0, NULL, 0));
    int64_t dummy;

    assert_int_equal(kdc__st_count(f), 2);
    assert_string_equal(kdc__st_at(f, 0)->name, "a");
    assert_string_equal(kdc__st_at(f, 1)->name, "b");
    assert_int_equal(kdc__st_at(f, 1)->numel, 0);
    assert_int_equal(kdc__st_to_i64(kdc__st_at(f, 1), &dummy), KDC_OK);
    kdc__st_close(f);
}

/* Raw UTF-8 in names and metadata, and every escape form in a name. */
static void test_names_utf8_escapes(void **state)
{
    kdc__st_file *f = expect_open(write_st_zeros("names.st",
        "{\"__metadata__\":{\"\xf0\x9f\x98\x80\":\"\xe6\x97\xa5\xe6\x9c\xac\"},"
        "\"caf\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        "\"\\u0041\\/\\b\\f\\r\\t\\\\\\u00E9\\u20aC\\uD83D\\uDE00\":"
        "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2));

    assert_int_equal(kdc__st_count(f), 2);
    assert_non_null(kdc__st_find(f, "caf\xc3\xa9"));
    assert_non_null(kdc__st_find(f, "A/\b\f\r\t\\\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert_string_equal(kdc__st_metadata(f, "\xf0\x9f\x98\x80"), "\xe6\x97\xa5\xe6\x9c\xac");
    kdc__st_close(f);
}

static void test_other_dtypes(void **state)
{
    static const struct {
        const char *name;
        kdc__st_dtype dtype;
        size_t size;
    } cases[] = {
        { "F64", KDC__ST_F64, 8 }, { "F32", KDC__ST_F32, 4 },   { "F16", KDC__ST_F16, 2 },
        { "BF16", KDC__ST_BF16, 2 }, { "I64", KDC__ST_I64, 8 }, { "I32", KDC__ST_I32, 4 },
        { "I16", KDC__ST_I16, 2 },   { "I8", KDC__ST_I8, 1 },   { "U8", KDC__ST_U8, 1 },
        { "BOOL", KDC__ST_BOOL, 1 }, { "U16", KDC__ST_OTHER, 2 }, { "U32", KDC__ST_OTHER, 4 },
        { "U64", KDC__ST_OTHER, 8 }, { "F8_E4M3", KDC__ST_OTHER, 1 },
        { "F8_E5M2", KDC__ST_OTHER, 1 },
    };
    char json[256];
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kdc__st_file *f;
        const kdc__st_tensor *t;
        float out[3];

        snprintf(json, sizeof json,
                 "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}",
                 cases[i].name, 3 * cases[i].size);
        f = expect_open(write_st_zeros("dtype.st", json, 3 * cases[i].size));
        t = kdc__st_find(f, "t");
        assert_non_null(t);
        assert_int_equal(t->dtype, cases[i].dtype);
        assert_string_equal(t->dtype_name, cases[i].name);
        assert_int_equal(t->nbytes, 3 * cases[i].size);
        if (cases[i].dtype == KDC__ST_F32 || cases[i].dtype == KDC__ST_F16 ||
            cases[i].dtype == KDC__ST_BF16 || cases[i].dtype == KDC__ST_F64)
            assert_int_equal(kdc__st_to_f32(t, out), KDC_OK);
        else
            assert_int_equal(kdc__st_to_f32(t, out), KDC_ERR_UNSUPPORTED);
        kdc__st_close(f);
    }
}

/* Every F16 value against an independent formula. */
static void test_f16_exhaustive(void **state)
{
    unsigned h;

    for (h = 0; h < 0x10000; h++) {
        unsigned e = (h >> 10) & 0x1F, m = h & 0x3FF;
        float want, got = kdc__f16_to_f32((uint16_t)h);

        if (e == 31) {
            if (m) {
                assert_true(isnan(got));
                assert_int_equal(!!signbit(got), !!(h & 0x8000));
                continue;
            }
            want = INFINITY;
        } else if (e == 0) {
            want = ldexpf((float)m, -24);
        } else {
            want = ldexpf((float)(1024 + m), (int)e - 25);
        }
        if (h & 0x8000)
            want = -want;
        if (!same_bits(got, want)) {
            print_error("f16 0x%04x: got %a want %a\n", h, (double)got, (double)want);
            fail();
        }
    }
}

static void test_bf16(void **state)
{
    uint32_t bits = 0x00010000u;
    float tiny;

    memcpy(&tiny, &bits, sizeof tiny);
    assert_true(same_bits(kdc__bf16_to_f32(0x0001), tiny)); /* subnormal */
    assert_true(kdc__bf16_to_f32(0x3F80) == 1.0f);
    assert_true(kdc__bf16_to_f32(0x4049) == 3.140625f);
    assert_true(isinf(kdc__bf16_to_f32(0xFF80)) && kdc__bf16_to_f32(0xFF80) < 0);
    assert_true(isnan(kdc__bf16_to_f32(0x7FC0)));
    assert_true(same_bits(kdc__bf16_to_f32(0x8000), -0.0f));
}

/* ------------------------------------------------------------------ */
/* One test per rule                                                    */

static void test_missing_file(void **state)
{
    const char *path = path_of("does_not_exist.safetensors");

    expect_fail(path, KDC_ERR_IO, "cannot open");
    assert_non_null(strstr(kdc_last_error(), "No such file"));

    /* A directory opens but is not a file. */
    path = path_of("adir");
    assert_int_equal(mkdir(path, 0700), 0);
    expect_fail(path, KDC_ERR_IO, "not a regular file");
    assert_int_equal(rmdir(path_of("adir")), 0);

    assert_int_equal(kdc__st_open(NULL, NULL), KDC_ERR_INVALID_ARGUMENT);
    kdc__st_close(NULL);
}

static void test_rule_short_file(void **state)
{
    expect_fail(write_bytes("short0.st", "", 0), KDC_ERR_FORMAT, "too short");
    expect_fail(write_bytes("short7.st", "\2\0\0\0\0\0\0", 7), KDC_ERR_FORMAT, "too short");
}

static void test_rule_header_limit(void **state)
{
    unsigned char buf[16] = { 0 };

    put_le64(buf, 100000001ULL);
    expect_fail(write_bytes("big.st", buf, sizeof buf), KDC_ERR_FORMAT,
                "header length 100000001 exceeds the limit");
    put_le64(buf, UINT64_MAX);
    expect_fail(write_bytes("huge.st", buf, sizeof buf), KDC_ERR_FORMAT, "exceeds the limit");
}

static void test_rule_header_past_end(void **state)
{
    unsigned char buf[8 + 2] = { 0 };

    put_le64(buf, 3);
    buf[8] = '{';
    buf[9] = '}';
    expect_fail(write_bytes("past.st", buf, sizeof buf), KDC_ERR_FORMAT,
                "header length 3 runs past the end of the file");
    /* N at the limit, file tiny. */
    put_le64(buf, 100000000ULL);
    expect_fail(write_bytes("past2.st", buf, sizeof buf), KDC_ERR_FORMAT,
                "past the end of the file");
    /* Exactly 8 bytes, N = 0: the header is empty, which is not JSON. */
    put_le64(buf, 0);
    expect_fail(write_bytes("n0.st", buf, 8), KDC_ERR_FORMAT, "not valid JSON");
}

static void test_rule_utf8(void **state)
{
    static const char *bad[] = {
        "{\"a\xff\":1}",         /* invalid byte            */
        "{\"\xc0\xaf\":1}",      /* overlong '/'            */
        "{\"\xed\xa0\x80\":1}",  /* encoded surrogate       */
        "{\"\xf4\x90\x80\x80\":1}", /* above U+10FFFF       */
        "{\"\xe2\x82\":1}",      /* truncated sequence      */
        "{}\xc3",                /* truncated at the end    */
        "{\"\xe0\x80\xaf\":1}",  /* overlong, 3 bytes       */
        "{\"\xf0\x80\x80\xaf\":1}", /* overlong, 4 bytes   */
        "{\"\xc3\x28\":1}",      /* bad continuation byte  */
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_fail(write_st("utf8.st", bad[i], 0, NULL, 0), KDC_ERR_FORMAT,
                    "header is not valid UTF-8");
}

static void test_rule_json_syntax(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "{",
        "{\"a\"",
        "{\"a\":}",
        "{\"a\":{\"dtype\":\"F32\",}}",
        "{,}",
        "{} x",
        "{}{}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\ud800\"}",       /* lone high surrogate */
        "{\"a\":\"\\udc00\"}",       /* lone low surrogate  */
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"tab\there\"}",     /* raw control character */
        "{\"a\":\"open}",
        "{'a':1}",
        "{\"a\":[1,2}",
        "{\"a\" 1}",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_fail(write_st("json.st", bad[i], 0, NULL, 0), KDC_ERR_FORMAT,
                    "header is not valid JSON");
}

static void test_rule_json_depth(void **state)
{
    char json[400];
    size_t n = 0, i;

    /* 63 nested arrays inside the top object: within the limit, so the
     * failure is the schema one, not the syntax one. */
    n += (size_t)sprintf(json + n, "{\"a\":");
    for (i = 0; i < 63; i++)
        json[n++] = '[';
    for (i = 0; i < 63; i++)
        json[n++] = ']';
    json[n++] = '}';
    json[n] = '\0';
    expect_fail(write_st("deep_ok.st", json, 0, NULL, 0), KDC_ERR_FORMAT,
                "invalid header entry \"a\": not a JSON object");

    /* 300 levels: refused without recursing that deep. */
    n = 0;
    for (i = 0; i < 300; i++)
        json[n++] = '[';
    json[n] = '\0';
    expect_fail(write_st("deep.st", json, 0, NULL, 0), KDC_ERR_FORMAT, "nesting deeper than 64");
}

static void test_rule_schema(void **state)
{
    static const struct {
        const char *json;
        const char *what;
    } cases[] = {
        { "[]", "top level is not a JSON object" },
        { "\"x\"", "top level is not a JSON object" },
        { "{\"a\":[]}", "invalid header entry \"a\": not a JSON object" },
        { "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "missing \"dtype\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "missing \"shape\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "missing \"data_offsets\"" },
        { "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\" is not a string" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "\"shape\" is not an array" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
          "\"data_offsets\" is not an array of two integers" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
          "\"data_offsets\" is not an array of two integers" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}",
          "\"data_offsets\" is not an array of two integers" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
          "unknown key \"x\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          "duplicate key \"dtype\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}",
          "\"shape\" element 0 is not a number" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}",
          "\"shape\" element 0 is not a number" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}",
          "\"shape\" element 0 is not an integer" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}",
          "\"shape\" element 0 is not an integer" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]}}",
          "\"shape\" element 1 is negative" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}",
          "\"shape\" element 0 is too large" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-0,4]}}",
          "\"data_offsets\" element 0 is negative" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}",
          "\"data_offsets\" element 1 is too large" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,null]}}",
          "\"data_offsets\" element 1 is not a number" },
        { "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          "tensor \"a\" has unknown dtype \"F128\"" },
        { "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype \"f32\"" },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(write_st_zeros("schema.st", cases[i].json, 4), KDC_ERR_FORMAT, cases[i].what);
}

static void test_rule_rank(void **state)
{
    /* Legal safetensors, but more dims than the library keeps. */
    expect_fail(write_st_zeros("rank9.st",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1),
        KDC_ERR_UNSUPPORTED, "rank 9");
    /* Rank 8 is fine. */
    kdc__st_close(expect_open(write_st_zeros("rank8.st",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", 2)));
}

static void test_rule_duplicate(void **state)
{
    expect_fail(write_st_zeros("dup.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
        KDC_ERR_FORMAT, "duplicate tensor name \"a\"");
    expect_fail(write_st_zeros("dupmeta.st",
        "{\"__metadata__\":{},\"__metadata__\":{}}", 0),
        KDC_ERR_FORMAT, "duplicate \"__metadata__\"");
}

static void test_rule_hole_overlap(void **state)
{
    /* A hole between a and b. */
    expect_fail(write_st_zeros("hole.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
        KDC_ERR_FORMAT, "tensor \"b\" data_offsets [8, 12] leave a hole or overlap");
    /* The first tensor does not start at 0. */
    expect_fail(write_st_zeros("start.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
        KDC_ERR_FORMAT, "hole or overlap");
    /* Overlap. */
    expect_fail(write_st_zeros("overlap.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
        KDC_ERR_FORMAT, "hole or overlap");
    /* Two tensors sharing the same bytes. */
    expect_fail(write_st_zeros("alias.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
        KDC_ERR_FORMAT, "hole or overlap");
}

static void test_rule_begin_after_end(void **state)
{
    expect_fail(write_st_zeros("rev.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8),
        KDC_ERR_FORMAT, "tensor \"a\" data_offsets begin 8 is greater than end 4");
}

static void test_rule_overflow(void **state)
{
    expect_fail(write_st_zeros("ovf.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4),
        KDC_ERR_FORMAT, "tensor \"a\" byte size overflows");
    /* The element count fits, the byte count does not. */
    expect_fail(write_st_zeros("ovf2.st",
        "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4),
        KDC_ERR_FORMAT, "byte size overflows");
    /* A zero dim makes the rest irrelevant: no overflow, 0 bytes. */
    kdc__st_close(expect_open(write_st_zeros("ovf0.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,9223372036854775807],\"data_offsets\":[0,0]}}", 0)));
}

/* The JSON integer reader against small bounds, where max - digit would
 * wrap if it were computed before the digit is compared with max. */
static void test_json_uint_small_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t max;
        int ok;
        uint64_t value;
    } cases[] = {{"[9]", 5, 0, 0}, {"[5]", 5, 1, 5}, {"[0]", 0, 1, 0},  {"[1]", 0, 0, 0},
                 {"[8]", 8, 1, 8}, {"[9]", 8, 0, 0}, {"[10]", 9, 0, 0}, {"[19]", 19, 1, 19},
                 {"[18446744073709551615]", UINT64_MAX, 1, UINT64_MAX},
                 {"[18446744073709551616]", UINT64_MAX, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct st_json root;
        assert_int_equal(kdc__st_json_parse("t", (const unsigned char *)cases[i].text,
                                            strlen(cases[i].text), &root), KDC_OK);
        uint64_t x = 0;
        enum st_int_result r = kdc__st_json_uint(&root.u.list.items[0], cases[i].max, &x);
        if (cases[i].ok) {
            assert_int_equal(r, ST_INT_OK);
            assert_true(x == cases[i].value);
        } else {
            assert_int_equal(r, ST_INT_RANGE);
        }
        kdc__st_json_free(&root);
    }
}

static void test_rule_size_mismatch(void **state)
{
    expect_fail(write_st_zeros("mism.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
        KDC_ERR_FORMAT, "tensor \"a\" size mismatch");
    /* Rank 0 is one element, not zero. */
    expect_fail(write_st_zeros("mism0.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 0),
        KDC_ERR_FORMAT, "size mismatch");
}

static void test_rule_buffer_end(void **state)
{
    /* Bytes left after the last tensor. */
    expect_fail(write_st_zeros("short_data.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6),
        KDC_ERR_FORMAT, "does not reach the end of the file");
    /* The last tensor runs past the file. */
    expect_fail(write_st_zeros("long_data.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 10),
        KDC_ERR_FORMAT, "tensor \"b\" data_offsets end 12 is past the end of the data buffer");
}

static void test_rule_metadata(void **state)
{
    expect_fail(write_st_zeros("meta1.st",
        "{\"__metadata__\":{\"a\":\"x\",\"epoch\":3}}", 0),
        KDC_ERR_FORMAT, "__metadata__ value for key \"epoch\" is not a string");
    expect_fail(write_st_zeros("meta2.st",
        "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0),
        KDC_ERR_FORMAT, "__metadata__ value for key \"a\" is not a string");
    expect_fail(write_st_zeros("meta3.st", "{\"__metadata__\":[\"x\"]}", 0),
                KDC_ERR_FORMAT, "__metadata__ is not a JSON object");
    expect_fail(write_st_zeros("meta4.st", "{\"__metadata__\":null}", 0),
                KDC_ERR_FORMAT, "__metadata__ is not a JSON object");
    expect_fail(write_st_zeros("meta5.st", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0),
                KDC_ERR_FORMAT, "__metadata__ has duplicate key \"a\"");
    /* __metadata__ is not a tensor, even when it looks like one. */
    expect_fail(write_st_zeros("meta6.st",
        "{\"__metadata__\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
        KDC_ERR_FORMAT, "__metadata__ value for key \"shape\" is not a string");
}

/* ------------------------------------------------------------------ */
/* Fuzz                                                                 */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: fixed seed, same sequence everywhere. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

static void test_fuzz_header(void **state)
{
    static const unsigned char interesting[] = {
        '{', '}', '[', ']', '"', ':', ',', '\\', 'u', '-', '0', '1', '9', '.', 'e',
        ' ', '\n', 0x00, 0x7f, 0x80, 0xc3, 0xed, 0xf4, 0xff, 't', 'n',
    };
    unsigned char data[76];
    size_t jlen = strlen(valid_json), base_len = 8 + jlen + sizeof data;
    unsigned char *base = malloc(base_len), *buf = malloc(base_len + 64);
    int iter, ok = 0, failed = 0;

    assert_non_null(base);
    assert_non_null(buf);
    build_valid_data(data);
    put_le64(base, jlen);
    memcpy(base + 8, valid_json, jlen);
    memcpy(base + 8 + jlen, data, sizeof data);
    rng_state = 0x9E3779B97F4A7C15ULL;

    for (iter = 0; iter < 2000; iter++) {
        size_t len = base_len, hlen = jlen, k, nmut = 1 + rng_below(4);
        kdc__st_file *f = NULL;
        const char *path;
        kdc_status st;

        memcpy(buf, base, base_len);
        for (k = 0; k < nmut; k++) {
            size_t pos = 8 + rng_below(hlen);

            switch (rng_below(7)) {
            case 0: /* flip one bit in the header */
                buf[pos] ^= (unsigned char)(1u << rng_below(8));
                break;
            case 1: /* overwrite with a JSON-significant byte */
            case 2:
                buf[pos] = interesting[rng_below(sizeof interesting)];
                break;
            case 3: /* delete a header byte, keeping N consistent */
                if (hlen > 1) {
                    memmove(buf + pos, buf + pos + 1, len - pos - 1);
                    len--;
                    hlen--;
                    put_le64(buf, hlen);
                }
                break;
            case 4: /* insert a byte, keeping N consistent */
                memmove(buf + pos + 1, buf + pos, len - pos);
                buf[pos] = interesting[rng_below(sizeof interesting)];
                len++;
                hlen++;
                put_le64(buf, hlen);
                break;
            case 5: /* truncate the file */
                len = rng_below(len + 1);
                break;
            case 6: /* corrupt the length prefix */
                buf[rng_below(8)] = (unsigned char)rng();
                break;
            }
            if (len < 8 + hlen)
                break; /* the header no longer fits; stop mutating it */
        }
        path = write_bytes("fuzz.st", buf, len);
        st = kdc__st_open(path, &f);
        if (st == KDC_OK) {
            int i;

            ok++;
            assert_non_null(f);
            for (i = 0; i < kdc__st_count(f); i++) {
                const kdc__st_tensor *t = kdc__st_at(f, i);
                float *out = malloc(t->numel ? t->numel * sizeof *out : 1);

                assert_non_null(out);
                assert_ptr_equal(kdc__st_find(f, t->name), t);
                st = kdc__st_to_f32(t, out);
                assert_true(st == KDC_OK || st == KDC_ERR_UNSUPPORTED);
                free(out);
            }
            kdc__st_close(f);
        } else {
            failed++;
            assert_null(f);
            if (!(st == KDC_ERR_FORMAT || st == KDC_ERR_UNSUPPORTED) ||
                strncmp(kdc_last_error(), path, strlen(path)) != 0) {
                print_error("iteration %d: %s: %s\n", iter, kdc_status_string(st),
                            kdc_last_error());
                fail();
            }
        }
    }
    /* Both outcomes must occur, or the fuzz tests nothing. */
    assert_true(ok > 0);
    assert_true(failed > 0);
    free(buf);
    free(base);
}

/* ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    strcpy(tmp_dir, "/tmp/kdc_st_test_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    char p[512];

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(tmp_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_json_uint_small_bounds),
        cmocka_unit_test(test_valid_padded),
        cmocka_unit_test(test_empty_header),
        cmocka_unit_test(test_only_empty_tensors),
        cmocka_unit_test(test_names_utf8_escapes),
        cmocka_unit_test(test_other_dtypes),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_rule_short_file),
        cmocka_unit_test(test_rule_header_limit),
        cmocka_unit_test(test_rule_header_past_end),
        cmocka_unit_test(test_rule_utf8),
        cmocka_unit_test(test_rule_json_syntax),
        cmocka_unit_test(test_rule_json_depth),
        cmocka_unit_test(test_rule_schema),
        cmocka_unit_test(test_rule_rank),
        cmocka_unit_test(test_rule_duplicate),
        cmocka_unit_test(test_rule_hole_overlap),
        cmocka_unit_test(test_rule_begin_after_end),
        cmocka_unit_test(test_rule_overflow),
        cmocka_unit_test(test_rule_size_mismatch),
        cmocka_unit_test(test_rule_buffer_end),
        cmocka_unit_test(test_rule_metadata),
        cmocka_unit_test(test_fuzz_header),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
