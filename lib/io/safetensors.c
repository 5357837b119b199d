/* safetensors.c - memory-mapped reader for .safetensors files.
 *
 * Layout: 8-byte little-endian u64 N, N bytes of UTF-8 JSON, then the data
 * buffer. The file is mapped read-only; tensors point into the mapping.
 *
 * Opening happens in stages, each of which can fail with a message that
 * starts with the path and names the rule that was broken:
 *   1. the 8-byte header length and the bounds of the header;
 *   2. UTF-8 validation of the whole header;
 *   3. a generic JSON parse into a small tree (st_json.c), so that syntax
 *      errors are reported as such before any schema rule is looked at;
 *   4. the safetensors schema: one object per tensor with exactly dtype,
 *      shape and data_offsets, plus an optional __metadata__ object of
 *      strings;
 *   5. the layout: unique names, sizes that match the shapes, tensors that
 *      tile the data buffer exactly (no holes, no overlaps, nothing left).
 */
#define _DEFAULT_SOURCE /* madvise */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "st_json.h"

/* The reference reader refuses headers above 100 MB. */
#define ST_MAX_HEADER 100000000ULL

/* ------------------------------------------------------------------ */
/* The file                                                             */

struct st_rec {
    kdc__st_tensor t;
    size_t begin, end; /* data_offsets, relative to the data buffer */
};

struct kdc__st_file {
    void *map;
    size_t map_size;
    struct st_json root;          /* parsed header; names and metadata point in */
    const struct st_json *meta;   /* the __metadata__ object, or NULL */
    struct st_rec *recs;          /* in data-offset order */
    struct st_rec **by_name;      /* sorted by name, for kdc__st_find */
    int count;
    void *owner;                  /* kdc__st_from_table: what the tensors live in */
    void (*release)(void *);
};

static const struct {
    const char *name;
    kdc__st_dtype dtype;
    size_t size;
} st_dtypes[] = {
    { "F64", KDC__ST_F64, 8 },
    { "F32", KDC__ST_F32, 4 },
    { "F16", KDC__ST_F16, 2 },
    { "BF16", KDC__ST_BF16, 2 },
    { "I64", KDC__ST_I64, 8 },
    { "I32", KDC__ST_I32, 4 },
    { "I16", KDC__ST_I16, 2 },
    { "I8", KDC__ST_I8, 1 },
    { "U8", KDC__ST_U8, 1 },
    { "BOOL", KDC__ST_BOOL, 1 },
    /* Legal in safetensors, not convertible here. */
    { "U16", KDC__ST_OTHER, 2 },
    { "U32", KDC__ST_OTHER, 4 },
    { "U64", KDC__ST_OTHER, 8 },
    { "F8_E4M3", KDC__ST_OTHER, 1 },
    { "F8_E5M2", KDC__ST_OTHER, 1 },
    { "F8_E8M0", KDC__ST_OTHER, 1 },
    { "C64", KDC__ST_OTHER, 8 },
};

static uint64_t st_le64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static kdc_status st_bad_entry(const char *path, const char *name, const char *what)
{
    return kdc__fail(KDC_ERR_FORMAT, "%s: invalid header entry \"%s\": %s", path, name, what);
}

static kdc_status st_bad_int(const char *path, const char *name, const char *field,
                             size_t index, enum st_int_result r)
{
    const char *why = "is not a number";

    switch (r) {
    case ST_INT_NEGATIVE: why = "is negative"; break;
    case ST_INT_FRACTION: why = "is not an integer"; break;
    case ST_INT_RANGE: why = "is too large"; break;
    default: break;
    }
    return kdc__fail(KDC_ERR_FORMAT, "%s: invalid header entry \"%s\": \"%s\" element %zu %s",
                     path, name, field, index, why);
}

/* Fills rec from one tensor entry; checks everything that needs only that
 * entry: the schema, the dtype, sizes against data_offsets. */
static kdc_status st_parse_entry(const char *path, const char *name, const struct st_json *v,
                                 struct st_rec *rec)
{
    const struct st_json *dtype = NULL, *shape = NULL, *offs = NULL;
    size_t i, dsize = 0, numel = 1, nbytes;
    uint64_t x;
    enum st_int_result r;

    if (v->type != ST_JSON_OBJECT)
        return st_bad_entry(path, name, "not a JSON object");
    for (i = 0; i < v->u.list.n; i++) {
        const char *key = v->u.list.keys[i];
        const struct st_json **slot;

        if (strcmp(key, "dtype") == 0)
            slot = &dtype;
        else if (strcmp(key, "shape") == 0)
            slot = &shape;
        else if (strcmp(key, "data_offsets") == 0)
            slot = &offs;
        else
            return kdc__fail(KDC_ERR_FORMAT, "%s: invalid header entry \"%s\": unknown key \"%s\"",
                             path, name, key);
        if (*slot)
            return kdc__fail(KDC_ERR_FORMAT, "%s: invalid header entry \"%s\": duplicate key \"%s\"",
                             path, name, key);
        *slot = &v->u.list.items[i];
    }
    if (!dtype)
        return st_bad_entry(path, name, "missing \"dtype\"");
    if (!shape)
        return st_bad_entry(path, name, "missing \"shape\"");
    if (!offs)
        return st_bad_entry(path, name, "missing \"data_offsets\"");
    if (dtype->type != ST_JSON_STRING)
        return st_bad_entry(path, name, "\"dtype\" is not a string");
    if (shape->type != ST_JSON_ARRAY)
        return st_bad_entry(path, name, "\"shape\" is not an array");
    if (offs->type != ST_JSON_ARRAY || offs->u.list.n != 2)
        return st_bad_entry(path, name, "\"data_offsets\" is not an array of two integers");

    rec->t.name = name;
    for (i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++) {
        if (strcmp(dtype->u.str, st_dtypes[i].name) == 0) {
            rec->t.dtype = st_dtypes[i].dtype;
            rec->t.dtype_name = st_dtypes[i].name;
            dsize = st_dtypes[i].size;
            break;
        }
    }
    if (!dsize)
        return kdc__fail(KDC_ERR_FORMAT, "%s: tensor \"%s\" has unknown dtype \"%s\"", path,
                         name, dtype->u.str);

    /* Check every dim before the rank limit, so a negative dim in a long
     * shape is still reported as a format error. */
    for (i = 0; i < shape->u.list.n; i++) {
        r = kdc__st_json_uint(&shape->u.list.items[i], INT64_MAX, &x);
        if (r != ST_INT_OK)
            return st_bad_int(path, name, "shape", i, r);
        if (i < KDC__ST_MAX_DIMS)
            rec->t.shape[i] = (int64_t)x;
    }
    if (shape->u.list.n > KDC__ST_MAX_DIMS)
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: tensor \"%s\" has rank %zu, more than the supported %d",
                         path, name, shape->u.list.n, KDC__ST_MAX_DIMS);
    rec->t.ndim = (int)shape->u.list.n;

    r = kdc__st_json_uint(&offs->u.list.items[0], SIZE_MAX, &x);
    if (r != ST_INT_OK)
        return st_bad_int(path, name, "data_offsets", 0, r);
    rec->begin = (size_t)x;
    r = kdc__st_json_uint(&offs->u.list.items[1], SIZE_MAX, &x);
    if (r != ST_INT_OK)
        return st_bad_int(path, name, "data_offsets", 1, r);
    rec->end = (size_t)x;
    if (rec->begin > rec->end)
        return kdc__fail(KDC_ERR_FORMAT, "%s: tensor \"%s\" data_offsets begin %zu is greater than end %zu",
                         path, name, rec->begin, rec->end);

    /* Dims are at most INT64_MAX, so they fit size_t on 64-bit hosts; on
     * 32-bit ones the product check below catches what does not. */
    for (i = 0; i < (size_t)rec->t.ndim; i++) {
        if ((uint64_t)rec->t.shape[i] > SIZE_MAX ||
            !kdc__mul_size(numel, (size_t)rec->t.shape[i], &numel))
            return kdc__fail(KDC_ERR_FORMAT, "%s: tensor \"%s\" byte size overflows (element count too large)",
                             path, name);
    }
    if (!kdc__mul_size(numel, dsize, &nbytes))
        return kdc__fail(KDC_ERR_FORMAT, "%s: tensor \"%s\" byte size overflows (%zu elements of %s)",
                         path, name, numel, rec->t.dtype_name);
    if (nbytes != rec->end - rec->begin)
        return kdc__fail(KDC_ERR_FORMAT,
                         "%s: tensor \"%s\" size mismatch: %zu elements of %s need %zu bytes, data_offsets [%zu, %zu] span %zu",
                         path, name, numel, rec->t.dtype_name, nbytes, rec->begin, rec->end,
                         rec->end - rec->begin);
    rec->t.numel = numel;
    rec->t.nbytes = nbytes;
    return KDC_OK;
}

static kdc_status st_parse_metadata(const char *path, const struct st_json *v)
{
    size_t i, j;

    if (v->type != ST_JSON_OBJECT)
        return kdc__fail(KDC_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
    for (i = 0; i < v->u.list.n; i++) {
        if (v->u.list.items[i].type != ST_JSON_STRING)
            return kdc__fail(KDC_ERR_FORMAT, "%s: __metadata__ value for key \"%s\" is not a string",
                             path, v->u.list.keys[i]);
        /* Metadata is small; a quadratic check is fine. */
        for (j = 0; j < i; j++)
            if (strcmp(v->u.list.keys[i], v->u.list.keys[j]) == 0)
                return kdc__fail(KDC_ERR_FORMAT, "%s: __metadata__ has duplicate key \"%s\"",
                                 path, v->u.list.keys[i]);
    }
    return KDC_OK;
}

/* Data-offset order; ties (empty tensors) broken by name so the order does
 * not depend on qsort. */
static int st_cmp_offset(const void *a, const void *b)
{
    const struct st_rec *x = a, *y = b;

    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static int st_cmp_name(const void *a, const void *b)
{
    const struct st_rec *const *x = a, *const *y = b;

    return strcmp((*x)->t.name, (*y)->t.name);
}

/* Validates the mapped file and fills f. On failure the caller frees f
 * with kdc__st_close. */
static kdc_status st_parse(kdc__st_file *f, const char *path)
{
    const unsigned char *base = f->map;
    const struct st_json *root = &f->root;
    uint64_t hlen = st_le64(base);
    size_t bad, i, buf_size, expect;
    const unsigned char *data;
    kdc_status st;

    /* A PyTorch checkpoint's first 8 bytes read as a header length that
     * does not fit; say what the file is instead (a zip archive since
     * PyTorch 1.6, a bare pickle before). */
    if ((hlen > ST_MAX_HEADER || hlen > f->map_size - 8) &&
        (!memcmp(base, "PK\x03\x04", 4) || (base[0] == 0x80 && base[1] >= 2 && base[1] <= 5)))
        return kdc__fail(KDC_ERR_FORMAT,
                         "%s: this is a PyTorch checkpoint (%s), not safetensors; convert it "
                         "with weights/convert.py",
                         path, base[0] == 'P' ? "a zip archive, .pth/.pt" : "a pickle file");
    if (hlen > ST_MAX_HEADER)
        return kdc__fail(KDC_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes",
                         path, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > f->map_size - 8)
        return kdc__fail(KDC_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                         path, (unsigned long long)hlen, f->map_size);
    data = base + 8 + hlen;
    buf_size = f->map_size - 8 - (size_t)hlen;

    bad = kdc__st_utf8_check(base + 8, (size_t)hlen);
    if (bad != hlen)
        return kdc__fail(KDC_ERR_FORMAT, "%s: header is not valid UTF-8 (bad byte at header byte %zu)",
                         path, bad);

    st = kdc__st_json_parse(path, base + 8, (size_t)hlen, &f->root);
    if (st != KDC_OK)
        return st;
    if (root->type != ST_JSON_OBJECT)
        return kdc__fail(KDC_ERR_FORMAT, "%s: invalid header: the top level is not a JSON object",
                         path);

    /* One record per entry is at least enough; the count may be one less. */
    f->recs = calloc(root->u.list.n ? root->u.list.n : 1, sizeof *f->recs);
    if (!f->recs)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for the tensor table", path);
    for (i = 0; i < root->u.list.n; i++) {
        const char *key = root->u.list.keys[i];
        const struct st_json *v = &root->u.list.items[i];

        if (strcmp(key, "__metadata__") == 0) {
            if (f->meta)
                return kdc__fail(KDC_ERR_FORMAT, "%s: duplicate \"__metadata__\" entry", path);
            st = st_parse_metadata(path, v);
            if (st != KDC_OK)
                return st;
            f->meta = v;
            continue;
        }
        if (f->count == INT_MAX)
            return kdc__fail(KDC_ERR_FORMAT, "%s: too many tensors", path);
        st = st_parse_entry(path, key, v, &f->recs[f->count]);
        if (st != KDC_OK)
            return st;
        f->count++;
    }

    /* Sort for both lookups; names are checked first, as duplicates would
     * otherwise show up as overlaps. */
    qsort(f->recs, (size_t)f->count, sizeof *f->recs, st_cmp_offset);
    f->by_name = malloc((f->count ? (size_t)f->count : 1) * sizeof *f->by_name);
    if (!f->by_name)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for the tensor index", path);
    for (i = 0; i < (size_t)f->count; i++)
        f->by_name[i] = &f->recs[i];
    qsort(f->by_name, (size_t)f->count, sizeof *f->by_name, st_cmp_name);
    for (i = 1; i < (size_t)f->count; i++)
        if (strcmp(f->by_name[i - 1]->t.name, f->by_name[i]->t.name) == 0)
            return kdc__fail(KDC_ERR_FORMAT, "%s: duplicate tensor name \"%s\"", path,
                             f->by_name[i]->t.name);

    /* The tensors must tile the data buffer: no holes, no overlaps. */
    expect = 0;
    for (i = 0; i < (size_t)f->count; i++) {
        const struct st_rec *r = &f->recs[i];

        if (r->begin != expect)
            return kdc__fail(KDC_ERR_FORMAT,
                             "%s: tensor \"%s\" data_offsets [%zu, %zu] leave a hole or overlap (expected it to begin at %zu)",
                             path, r->t.name, r->begin, r->end, expect);
        expect = r->end;
    }
    if (expect > buf_size)
        return kdc__fail(KDC_ERR_FORMAT,
                         "%s: tensor \"%s\" data_offsets end %zu is past the end of the data buffer (%zu bytes)",
                         path, f->recs[f->count - 1].t.name, expect, buf_size);
    if (expect < buf_size)
        return kdc__fail(KDC_ERR_FORMAT,
                         "%s: tensor data ends at buffer byte %zu and does not reach the end of the file (data buffer is %zu bytes)",
                         path, expect, buf_size);

    for (i = 0; i < (size_t)f->count; i++) {
        f->recs[i].t.data = data + f->recs[i].begin;
        f->recs[i].t.mapped = 1;
    }
    return KDC_OK;
}

kdc_status kdc__st_open(const char *path, kdc__st_file **out)
{
    kdc__st_file *f;
    struct stat sb;
    kdc_status st;
    void *map;
    int fd;

    if (out)
        *out = NULL;
    if (!path || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc__st_open: NULL argument");

    f = calloc(1, sizeof *f);
    if (!f)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = kdc__fail(KDC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto free_file;
    }
    if (fstat(fd, &sb) != 0) {
        st = kdc__fail(KDC_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = kdc__fail(KDC_ERR_IO, "%s: not a regular file", path);
        goto close_fd;
    }
    if (sb.st_size < 8) {
        st = kdc__fail(KDC_ERR_FORMAT, "%s: file is %lld bytes, too short for the 8-byte header length",
                       path, (long long)sb.st_size);
        goto close_fd;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        st = kdc__fail(KDC_ERR_IO, "%s: file too large to map", path);
        goto close_fd;
    }
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        st = kdc__fail(KDC_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto close_fd;
    }
    /* The mapping stays valid after the descriptor is closed. */
    close(fd);
    f->map = map;
    f->map_size = (size_t)sb.st_size;

    st = st_parse(f, path);
    if (st != KDC_OK)
        goto close_file;
    *out = f;
    return KDC_OK;

close_file:
    kdc__st_close(f);
    return st;
close_fd:
    close(fd);
free_file:
    free(f);
    return st;
}

void kdc__st_close(kdc__st_file *f)
{
    if (!f)
        return;
    free(f->by_name);
    free(f->recs);
    kdc__st_json_free(&f->root);
    if (f->map)
        munmap(f->map, f->map_size);
    if (f->release)
        f->release(f->owner);
    free(f);
}

kdc_status kdc__st_from_table(const kdc__st_tensor *tensors, int n, void *owner,
                              void (*release)(void *), kdc__st_file **out)
{
    kdc__st_file *f = calloc(1, sizeof *f);
    kdc_status st = KDC_OK;
    int i;

    *out = NULL;
    if (!f) {
        release(owner);
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for the tensor table");
    }
    f->owner = owner;
    f->release = release;
    f->recs = calloc(n > 0 ? (size_t)n : 1, sizeof *f->recs);
    f->by_name = malloc((n > 0 ? (size_t)n : 1) * sizeof *f->by_name);
    if (!f->recs || !f->by_name) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for the tensor table");
        goto fail;
    }
    /* Kept in the given order (kdc__st_at); begin/end are unused here. */
    for (i = 0; i < n; i++) {
        f->recs[i].t = tensors[i];
        f->by_name[i] = &f->recs[i];
    }
    f->count = n;
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, st_cmp_name);
    for (i = 1; i < n; i++)
        if (strcmp(f->by_name[i - 1]->t.name, f->by_name[i]->t.name) == 0) {
            st = kdc__fail(KDC_ERR_FORMAT, "duplicate tensor name \"%s\"", f->by_name[i]->t.name);
            goto fail;
        }
    *out = f;
    return KDC_OK;
fail:
    kdc__st_close(f);
    return st;
}

int kdc__st_count(const kdc__st_file *f)
{
    return f ? f->count : 0;
}

const kdc__st_tensor *kdc__st_at(const kdc__st_file *f, int i)
{
    if (!f || i < 0 || i >= f->count)
        return NULL;
    return &f->recs[i].t;
}

const kdc__st_tensor *kdc__st_find(const kdc__st_file *f, const char *name)
{
    size_t lo = 0, hi;

    if (!f || !name)
        return NULL;
    hi = (size_t)f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->t.name);

        if (c == 0)
            return &f->by_name[mid]->t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *kdc__st_metadata(const kdc__st_file *f, const char *key)
{
    size_t i;

    if (!f || !f->meta || !key)
        return NULL;
    for (i = 0; i < f->meta->u.list.n; i++)
        if (strcmp(f->meta->u.list.keys[i], key) == 0)
            return f->meta->u.list.items[i].u.str;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Conversions                                                          */

/* Little-endian loads from possibly unaligned bytes. */
static uint16_t st_ld16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t st_ld32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static float st_bits_to_f32(uint32_t bits)
{
    float x;

    memcpy(&x, &bits, sizeof x);
    return x;
}

float kdc__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;

    if (exp == 0) {
        if (mant == 0)
            return st_bits_to_f32(sign);
        /* Subnormal: shift the mantissa up until it is normal. 2^-14 is
         * the subnormal scale, i.e. float exponent 127 - 14 = 113 before
         * normalising. */
        exp = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        mant &= 0x3FF;
        return st_bits_to_f32(sign | (exp << 23) | (mant << 13));
    }
    if (exp == 31) /* inf, or nan with its payload kept */
        return st_bits_to_f32(sign | 0x7F800000u | (mant << 13));
    return st_bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

float kdc__bf16_to_f32(uint16_t h)
{
    return st_bits_to_f32((uint32_t)h << 16);
}

/* double -> float, round to nearest even, without the undefined behaviour
 * of converting an out-of-range value. */
static float st_f64_to_f32(double d)
{
    /* FLT_MAX + half an ulp: from here on, rounding gives infinity. */
    const double limit = 0x1.ffffffp127;

    if (isnan(d))
        return signbit(d) ? -NAN : NAN;
    if (d >= limit)
        return INFINITY;
    if (d <= -limit)
        return -INFINITY;
    return (float)d;
}

/* The whole pages of a mapped tensor's bytes leave the process's resident set once
 * converted (the mapping is read-only and file-backed, so a later read simply
 * faults them in again): loading then holds one copy of the weights, not the
 * file's pages and the float copy together. Advice only; failure is harmless. */
static void st_release(const kdc__st_tensor *t, size_t nbytes)
{
    const long ps = sysconf(_SC_PAGESIZE);
    if (!t->mapped || ps <= 0 || nbytes < (size_t)ps)
        return;
    uintptr_t a = (uintptr_t)t->data, b = a + nbytes;
    a = (a + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
    b &= ~(uintptr_t)(ps - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

kdc_status kdc__st_to_f32(const kdc__st_tensor *t, float *dst)
{
    size_t i;

    if (!t || (!dst && t->numel))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc__st_to_f32: NULL argument");
    switch (t->dtype) {
    case KDC__ST_F32:
        for (i = 0; i < t->numel; i++)
            dst[i] = st_bits_to_f32(st_ld32(t->data + 4 * i));
        st_release(t, 4 * t->numel);
        return KDC_OK;
    case KDC__ST_F16:
        for (i = 0; i < t->numel; i++)
            dst[i] = kdc__f16_to_f32(st_ld16(t->data + 2 * i));
        st_release(t, 2 * t->numel);
        return KDC_OK;
    case KDC__ST_BF16:
        for (i = 0; i < t->numel; i++)
            dst[i] = kdc__bf16_to_f32(st_ld16(t->data + 2 * i));
        st_release(t, 2 * t->numel);
        return KDC_OK;
    case KDC__ST_F64:
        for (i = 0; i < t->numel; i++) {
            uint64_t bits = st_le64(t->data + 8 * i);
            double d;

            memcpy(&d, &bits, sizeof d);
            dst[i] = st_f64_to_f32(d);
        }
        return KDC_OK;
    default:
        return kdc__fail(KDC_ERR_UNSUPPORTED, "tensor \"%s\": dtype %s cannot be converted to float32",
                         t->name, t->dtype_name);
    }
}

kdc_status kdc__st_to_i64(const kdc__st_tensor *t, int64_t *dst)
{
    size_t i;

    if (!t || (!dst && t->numel))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc__st_to_i64: NULL argument");
    if (t->dtype != KDC__ST_I64)
        return kdc__fail(KDC_ERR_UNSUPPORTED, "tensor \"%s\": dtype %s is not I64", t->name,
                         t->dtype_name);
    for (i = 0; i < t->numel; i++) {
        uint64_t bits = st_le64(t->data + 8 * i);

        memcpy(&dst[i], &bits, sizeof dst[i]);
    }
    return KDC_OK;
}
