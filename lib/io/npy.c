/* npy.c - NumPy .npy files (float32, C order).
 *
 * Format: "\x93NUMPY", major, minor, header length (uint16 LE for 1.0,
 * uint32 LE for 2.0 and 3.0), an ASCII (3.0: UTF-8) Python dict literal
 * with the keys 'descr', 'fortran_order' and 'shape', padded with spaces
 * and ended by '\n', then the raw data. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "internal.h"

#define NPY_MAX_DIMS 8
#define NPY_ALIGN 64
#define NPY_MAX_HEADER (1u << 20) /* sanity bound for a header we read */

/* ------------------------------------------------------------------ */
/* Saving                                                              */

static void kdc__put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

kdc_status kdc_npy_save(const char *path, const float *data, int ndim, const int64_t *dims)
{
    char header[512];
    unsigned char buf[4096];
    size_t count = 1, n, total;
    int len;
    kdc__atomic_file af;
    kdc_status st;

    if (!path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_npy_save: path is NULL");
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: ndim %d is not in 0..%d", path, ndim,
                         NPY_MAX_DIMS);
    if (ndim > 0 && !dims)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: dims is NULL", path);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: dimension %d is negative (%lld)",
                             path, i, (long long)dims[i]);
        if ((uint64_t)dims[i] > SIZE_MAX || !kdc__mul_size(count, (size_t)dims[i], &count))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: array size overflows", path);
    }
    if (!kdc__mul_size(count, 4, &total))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: array size overflows", path);
    if (count > 0 && !data)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: data is NULL", path);

    /* The dict exactly as NumPy writes it (keys sorted), then spaces and
     * '\n' so that the data starts at a multiple of NPY_ALIGN. */
    len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        len += snprintf(header + len, sizeof header - (size_t)len, "%s%lld", i ? ", " : "",
                        (long long)dims[i]);
    len += snprintf(header + len, sizeof header - (size_t)len, "%s), }",
                    ndim == 1 ? "," : "");
    {
        size_t hlen = (size_t)len + 1; /* with the '\n' */
        size_t pad = (NPY_ALIGN - (10 + hlen) % NPY_ALIGN) % NPY_ALIGN;
        memset(header + len, ' ', pad);
        len += (int)pad;
        header[len++] = '\n';
    }
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(len & 0xff);
    buf[9] = (unsigned char)(len >> 8);
    memcpy(buf + 10, header, (size_t)len);

    st = kdc__atomic_open(path, &af);
    if (st != KDC_OK)
        return st;
    if (fwrite(buf, 1, 10 + (size_t)len, af.fp) != 10 + (size_t)len)
        goto write_error;
    /* Little-endian whatever the host. */
    for (size_t i = 0; i < count; i += n) {
        n = count - i < sizeof buf / 4 ? count - i : sizeof buf / 4;
        for (size_t j = 0; j < n; j++) {
            uint32_t u;
            memcpy(&u, &data[i + j], 4);
            kdc__put_le32(buf + 4 * j, u);
        }
        if (fwrite(buf, 4, n, af.fp) != n)
            goto write_error;
    }
    return kdc__atomic_commit(path, &af);

write_error:;
    int err = errno ? errno : EIO;
    kdc__atomic_abort(&af);
    return kdc__fail(KDC_ERR_IO, "%s: cannot write: %s", path, strerror(err));
}

/* ------------------------------------------------------------------ */
/* Header parsing                                                      */

typedef enum { NPY_F4, NPY_F8, NPY_F2 } kdc__npy_dtype;

typedef struct {
    const char *p, *end;
    const char *path;
} kdc__npy_parser;

static void kdc__npy_ws(kdc__npy_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
                               *ps->p == '\r'))
        ps->p++;
}

/* A quoted string without escapes; copies at most cap-1 bytes into out. */
static int kdc__npy_string(kdc__npy_parser *ps, char *out, size_t cap)
{
    char q;
    size_t n = 0;
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return 0;
    q = *ps->p++;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || n + 1 >= cap)
            return 0;
        out[n++] = *ps->p++;
    }
    if (ps->p >= ps->end)
        return 0;
    ps->p++;
    out[n] = '\0';
    return 1;
}

static int kdc__npy_word(kdc__npy_parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return 0;
    ps->p += n;
    return 1;
}

static kdc_status kdc__npy_bad_header(kdc__npy_parser *ps, const char *what)
{
    return kdc__fail(KDC_ERR_FORMAT, "%s: malformed .npy header: %s", ps->path, what);
}

static kdc_status kdc__npy_shape(kdc__npy_parser *ps, int *ndim, int64_t dims[8])
{
    int n = 0;
    if (ps->p >= ps->end || *ps->p != '(')
        return kdc__npy_bad_header(ps, "'shape' is not a tuple");
    ps->p++;
    for (;;) {
        kdc__npy_ws(ps);
        if (ps->p < ps->end && *ps->p == ')')
            break;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return kdc__npy_bad_header(ps, "'shape' holds something other than integers");
        int64_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            int d = *ps->p++ - '0';
            if (v > (INT64_MAX - d) / 10)
                return kdc__npy_bad_header(ps, "a dimension in 'shape' is too large");
            v = v * 10 + d;
        }
        if (ps->p < ps->end && *ps->p == 'L') /* Python 2 long */
            ps->p++;
        if (n == NPY_MAX_DIMS)
            return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: more than %d dimensions", ps->path,
                             NPY_MAX_DIMS);
        dims[n++] = v;
        kdc__npy_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ')')
            break;
        return kdc__npy_bad_header(ps, "'shape' is not a tuple of integers");
    }
    ps->p++;
    *ndim = n;
    return KDC_OK;
}

static kdc_status kdc__npy_parse(const char *path, const char *hdr, size_t len,
                                 kdc__npy_dtype *dtype, int *ndim, int64_t dims[8])
{
    kdc__npy_parser ps = {hdr, hdr + len, path};
    char key[32], descr[64] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    kdc_status st;

    kdc__npy_ws(&ps);
    if (ps.p >= ps.end || *ps.p != '{')
        return kdc__npy_bad_header(&ps, "not a dict");
    ps.p++;
    for (;;) {
        kdc__npy_ws(&ps);
        if (ps.p < ps.end && *ps.p == '}')
            break;
        if (!kdc__npy_string(&ps, key, sizeof key))
            return kdc__npy_bad_header(&ps, "expected a quoted key");
        kdc__npy_ws(&ps);
        if (ps.p >= ps.end || *ps.p != ':')
            return kdc__npy_bad_header(&ps, "expected ':' after a key");
        ps.p++;
        kdc__npy_ws(&ps);
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (ps.p < ps.end && *ps.p == '[')
                return kdc__fail(KDC_ERR_UNSUPPORTED,
                                 "%s: structured dtype is not supported (float32 only)", path);
            if (!kdc__npy_string(&ps, descr, sizeof descr))
                return kdc__npy_bad_header(&ps, "'descr' is not a string");
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
            if (kdc__npy_word(&ps, "True"))
                fortran = 1;
            else if (kdc__npy_word(&ps, "False"))
                fortran = 0;
            else
                return kdc__npy_bad_header(&ps, "'fortran_order' is not True or False");
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if ((st = kdc__npy_shape(&ps, ndim, dims)) != KDC_OK)
                return st;
            have_shape = 1;
        } else {
            char what[96];
            snprintf(what, sizeof what, "unexpected or repeated key '%s'", key);
            return kdc__npy_bad_header(&ps, what);
        }
        kdc__npy_ws(&ps);
        if (ps.p < ps.end && *ps.p == ',') {
            ps.p++;
            continue;
        }
        if (ps.p < ps.end && *ps.p == '}')
            break;
        return kdc__npy_bad_header(&ps, "expected ',' or '}'");
    }
    ps.p++;
    kdc__npy_ws(&ps);
    if (ps.p != ps.end)
        return kdc__npy_bad_header(&ps, "data after the dict");
    if (!have_descr || !have_fortran || !have_shape)
        return kdc__npy_bad_header(&ps, !have_descr     ? "no 'descr' key"
                                        : !have_fortran ? "no 'fortran_order' key"
                                                        : "no 'shape' key");
    if (strcmp(descr, "<f4") == 0)
        *dtype = NPY_F4;
    else if (strcmp(descr, "<f8") == 0)
        *dtype = NPY_F8;
    else if (strcmp(descr, "<f2") == 0)
        *dtype = NPY_F2;
    else if (descr[0] == '>' && descr[1] == 'f')
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: big-endian data ('%s') is not supported",
                         path, descr);
    else
        return kdc__fail(KDC_ERR_UNSUPPORTED,
                         "%s: dtype '%s' is not supported (float32 '<f4'; '<f8' and '<f2' "
                         "are converted)",
                         path, descr);
    /* A 0- or 1-dimensional array is the same either way. */
    if (fortran && *ndim > 1)
        return kdc__fail(KDC_ERR_UNSUPPORTED,
                         "%s: fortran_order True is not supported (C order only)", path);
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

static float kdc__half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)mant, -24); /* zero and subnormals */
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexpf((float)(mant | 0x400), exp - 25);
    return sign ? -v : v;
}

static float kdc__double_to_float(double d)
{
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return d < 0 ? -INFINITY : INFINITY;
    return (float)d;
}

static uint32_t kdc__le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

kdc_status kdc_npy_load(const char *path, float **data, int *ndim, int64_t dims[8])
{
    FILE *fp = NULL;
    char *hdr = NULL;
    float *out = NULL;
    unsigned char pre[12], buf[8192];
    size_t hlen, pre_len, count = 1, elsize, nbytes, alloc;
    int nd = 0, err;
    int64_t shape[NPY_MAX_DIMS] = {0};
    kdc__npy_dtype dtype = NPY_F4;
    kdc_status st = KDC_OK;
    struct stat sb;

    if (data)
        *data = NULL;
    if (!path || !data || !ndim || !dims)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_npy_load: %s is NULL",
                         !path ? "path" : !data ? "data" : !ndim ? "ndim" : "dims");
    fp = fopen(path, "rb");
    if (!fp) {
        err = errno;
        return kdc__fail(KDC_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = ferror(fp) ? kdc__fail(KDC_ERR_IO, "%s: read error", path)
                        : kdc__fail(KDC_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    if (pre[6] == 1 && pre[7] == 0) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        pre_len = 10;
    } else if ((pre[6] == 2 || pre[6] == 3) && pre[7] == 0) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = kdc__le32(pre + 8);
        pre_len = 12;
    } else {
        st = kdc__fail(KDC_ERR_UNSUPPORTED, "%s: unsupported .npy format version %d.%d",
                       path, pre[6], pre[7]);
        goto done;
    }
    if (hlen > NPY_MAX_HEADER) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: .npy header length %zu is implausible", path,
                       hlen);
        goto done;
    }
    if (!(hdr = malloc(hlen + 1))) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = '\0';
    if ((st = kdc__npy_parse(path, hdr, hlen, &dtype, &nd, shape)) != KDC_OK)
        goto done;

    elsize = dtype == NPY_F4 ? 4 : dtype == NPY_F8 ? 8 : 2;
    for (int i = 0; i < nd; i++) {
        if ((uint64_t)shape[i] > SIZE_MAX || !kdc__mul_size(count, (size_t)shape[i], &count)) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: array size overflows", path);
            goto done;
        }
    }
    if (!kdc__mul_size(count, elsize, &nbytes) || !kdc__mul_size(count, 4, &alloc)) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: array size overflows", path);
        goto done;
    }
    /* Check the size before allocating, so that a corrupt shape cannot make
     * us allocate gigabytes. */
    if (fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode)) {
        uint64_t have = (uint64_t)sb.st_size > pre_len + hlen
                            ? (uint64_t)sb.st_size - pre_len - hlen
                            : 0;
        if (have != (uint64_t)nbytes) {
            st = kdc__fail(KDC_ERR_FORMAT, "%s: %s: the shape needs %zu data bytes, the file "
                           "has %llu", path, have < nbytes ? "truncated data" : "trailing data",
                           nbytes, (unsigned long long)have);
            goto done;
        }
    }
    if (!(out = malloc(alloc ? alloc : 1))) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for %zu bytes", path, alloc);
        goto done;
    }
    for (size_t i = 0, n; i < count; i += n) {
        n = count - i;
        if (n > sizeof buf / elsize)
            n = sizeof buf / elsize;
        if (fread(buf, elsize, n, fp) != n) {
            st = ferror(fp) ? kdc__fail(KDC_ERR_IO, "%s: read error", path)
                            : kdc__fail(KDC_ERR_FORMAT, "%s: truncated data", path);
            goto done;
        }
        for (size_t j = 0; j < n; j++) {
            const unsigned char *p = buf + j * elsize;
            if (dtype == NPY_F4) {
                uint32_t u = kdc__le32(p);
                memcpy(&out[i + j], &u, 4);
            } else if (dtype == NPY_F8) {
                uint64_t u = (uint64_t)kdc__le32(p) | (uint64_t)kdc__le32(p + 4) << 32;
                double d;
                memcpy(&d, &u, 8);
                out[i + j] = kdc__double_to_float(d);
            } else {
                out[i + j] = kdc__half_to_float((uint16_t)(p[0] | p[1] << 8));
            }
        }
    }
    if (fgetc(fp) != EOF) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: trailing data after the array", path);
        goto done;
    }
    *data = out;
    out = NULL;
    *ndim = nd;
    for (int i = 0; i < NPY_MAX_DIMS; i++)
        dims[i] = i < nd ? shape[i] : 0;

done:
    free(out);
    free(hdr);
    fclose(fp);
    return st;
}
