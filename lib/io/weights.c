/* weights.c - weights files by format: opening a safetensors file or a
 * PyTorch checkpoint by its first bytes (for kdc_model_load), and the
 * public kdc_weights calls that list and convert them. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/pth.h"
#include "io/weights.h"
#include "atomic.h"

kdc_status kdc__weights_open(const char *path, const char *key, kdc__st_file **out)
{
    unsigned char head[32];
    ssize_t got = 0;
    int fd;

    *out = NULL;
    if (!path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc__weights_open: path is NULL");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        got = read(fd, head, sizeof head);
        close(fd);
    }
    /* A file that cannot be read gets the safetensors reader's message. */
    if (got > 0 && kdc__pth_sniff(head, (size_t)got))
        return kdc__pth_open(path, key, out);
    if (key && *key)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "%s: a key (%s) applies to PyTorch "
                         "checkpoints, and this is not one", path, key);
    return kdc__st_open(path, out);
}

/* ------------------------------------------------------------------ */
/* Listing                                                             */

struct kdc_weights {
    kdc__st_file *f;
};

kdc_status kdc_weights_open(const char *path, const char *key, kdc_weights **out)
{
    kdc_weights *w;
    kdc_status st;

    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_weights_open: out is NULL");
    *out = NULL;
    if (!(w = calloc(1, sizeof *w)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory");
    if ((st = kdc__weights_open(path, key, &w->f))) {
        free(w);
        return st;
    }
    *out = w;
    return KDC_OK;
}

void kdc_weights_close(kdc_weights *w)
{
    if (!w)
        return;
    kdc__st_close(w->f);
    free(w);
}

int kdc_weights_count(const kdc_weights *w)
{
    return w ? kdc__st_count(w->f) : 0;
}

const char *kdc_weights_name(const kdc_weights *w, int i)
{
    const kdc__st_tensor *t = w ? kdc__st_at(w->f, i) : NULL;
    return t ? t->name : NULL;
}

const char *kdc_weights_dtype(const kdc_weights *w, int i)
{
    const kdc__st_tensor *t = w ? kdc__st_at(w->f, i) : NULL;
    return t ? t->dtype_name : NULL;
}

int kdc_weights_shape(const kdc_weights *w, int i, int64_t shape[8])
{
    const kdc__st_tensor *t = w ? kdc__st_at(w->f, i) : NULL;
    if (!t)
        return -1;
    if (shape)
        for (int d = 0; d < t->ndim; d++)
            shape[d] = t->shape[d];
    return t->ndim;
}

/* ------------------------------------------------------------------ */
/* Writing safetensors                                                 */

/* float32 -> IEEE half, round to nearest even; NaN stays NaN. */
static uint16_t w_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xFF, mant = x & 0x7FFFFF;
    if (exp == 0xFF)
        return (uint16_t)(sign | 0x7C00 | (mant ? 0x200 | (mant >> 13) : 0));
    int e = (int)exp - 112; /* the half exponent: 127 - 15 */
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00);
    if (e <= 0) { /* a half subnormal, or zero */
        if (e < -10)
            return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (uint32_t)e << 10 | mant >> 13, rem = mant & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
        r++; /* a carry into the exponent is right, up to infinity */
    return (uint16_t)(sign | r);
}

static int w_is_float(kdc__st_dtype d)
{
    return d == KDC__ST_F32 || d == KDC__ST_F16 || d == KDC__ST_BF16 || d == KDC__ST_F64;
}

/* What a tensor becomes: its dtype name and byte count. */
static const char *w_out_dtype(const kdc__st_tensor *t, kdc_save_dtype want, size_t *nbytes)
{
    if (!w_is_float(t->dtype) || want == KDC_SAVE_KEEP) {
        *nbytes = t->nbytes;
        return t->dtype_name;
    }
    *nbytes = t->numel * (want == KDC_SAVE_F16 ? 2 : 4);
    return want == KDC_SAVE_F16 ? "F16" : "F32";
}

/* A growing string for the JSON header. */
typedef struct w_buf {
    char *p;
    size_t n, cap;
    int oom;
} w_buf;

static void w_put(w_buf *b, const char *fmt, ...) KDC_PRINTF(2, 3);
static void w_put(w_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2 && !b->oom; pass++) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap : 256);
        while (cap - b->n <= (size_t)n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* A JSON string as Python's json.dumps(ensure_ascii=False) writes it. */
static void w_put_json_string(w_buf *b, const char *s)
{
    w_put(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': w_put(b, "\\\""); break;
        case '\\': w_put(b, "\\\\"); break;
        case '\n': w_put(b, "\\n"); break;
        case '\r': w_put(b, "\\r"); break;
        case '\t': w_put(b, "\\t"); break;
        case '\b': w_put(b, "\\b"); break;
        case '\f': w_put(b, "\\f"); break;
        default:
            if (c < 0x20)
                w_put(b, "\\u%04x", c);
            else
                w_put(b, "%c", c);
        }
    }
    w_put(b, "\"");
}

typedef struct w_item {
    const kdc__st_tensor *t;
    const char *name;        /* after the prefix */
} w_item;

static int w_item_cmp(const void *a, const void *b)
{
    return strcmp(((const w_item *)a)->name, ((const w_item *)b)->name);
}

/* Writes one tensor's bytes, converted as asked. */
static kdc_status w_write_tensor(FILE *fp, const kdc__st_tensor *t, kdc_save_dtype want)
{
    size_t nbytes;
    const char *dt = w_out_dtype(t, want, &nbytes);
    if (!strcmp(dt, t->dtype_name)) {
        if (nbytes && fwrite(t->data, 1, nbytes, fp) != nbytes)
            return kdc__fail(KDC_ERR_IO, "write error: %s", strerror(errno));
        return KDC_OK;
    }
    float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
    unsigned char *out = malloc(nbytes ? nbytes : 1);
    kdc_status st = KDC_OK;
    if (!f || !out) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "tensor %s: out of memory", t->name);
        goto done;
    }
    if ((st = kdc__st_to_f32(t, f)))
        goto done;
    for (size_t i = 0; i < t->numel; i++) {
        if (want == KDC_SAVE_F16) {
            uint16_t h = w_f32_to_f16(f[i]);
            out[2 * i] = (unsigned char)h;
            out[2 * i + 1] = (unsigned char)(h >> 8);
        } else {
            uint32_t x;
            memcpy(&x, &f[i], sizeof x);
            for (int k = 0; k < 4; k++)
                out[4 * i + (size_t)k] = (unsigned char)(x >> (8 * k));
        }
    }
    if (nbytes && fwrite(out, 1, nbytes, fp) != nbytes)
        st = kdc__fail(KDC_ERR_IO, "write error: %s", strerror(errno));
done:
    free(f);
    free(out);
    return st;
}

kdc_status kdc_weights_save(const kdc_weights *w, const char *path, const char *prefix,
                            kdc_save_dtype dtype)
{
    kdc__atomic_file af = {0};
    w_buf h = {0};
    w_item *items = NULL;
    size_t n = 0, pl = prefix ? strlen(prefix) : 0, off = 0;
    kdc_status st = KDC_OK;

    if (!w || !path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_weights_save: NULL argument");
    if (dtype != KDC_SAVE_KEEP && dtype != KDC_SAVE_F32 && dtype != KDC_SAVE_F16)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_weights_save: unknown dtype %d", (int)dtype);
    int count = kdc__st_count(w->f);
    items = malloc((count ? (size_t)count : 1) * sizeof *items);
    if (!items)
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < count; i++) {
        const kdc__st_tensor *t = kdc__st_at(w->f, i);
        if (pl && (strncmp(t->name, prefix, pl) || !t->name[pl]))
            continue;
        items[n].t = t;
        items[n++].name = t->name + pl;
    }
    if (!n) {
        st = kdc__fail(KDC_ERR_NOT_FOUND, "no tensor%s%s%s", pl ? " under prefix '" : "",
                       pl ? prefix : "", pl ? "'" : "");
        goto done;
    }
    qsort(items, n, sizeof *items, w_item_cmp);
    w_put(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        size_t nbytes;
        const char *dt = w_out_dtype(items[i].t, dtype, &nbytes);
        if (i && !strcmp(items[i - 1].name, items[i].name)) {
            st = kdc__fail(KDC_ERR_FORMAT, "two tensors are called %s", items[i].name);
            goto done;
        }
        w_put(&h, ",");
        w_put_json_string(&h, items[i].name);
        w_put(&h, ":{\"dtype\":\"%s\",\"shape\":[", dt);
        for (int d = 0; d < items[i].t->ndim; d++)
            w_put(&h, "%s%lld", d ? "," : "", (long long)items[i].t->shape[d]);
        w_put(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nbytes);
        off += nbytes;
    }
    w_put(&h, "}");
    while (!h.oom && h.n % 8)
        w_put(&h, " ");
    if (h.oom) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for the header");
        goto done;
    }
    if ((st = kdc__atomic_open(path, &af)))
        goto done;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    if (fwrite(len8, 1, 8, af.fp) != 8 || fwrite(h.p, 1, h.n, af.fp) != h.n) {
        st = kdc__fail(KDC_ERR_IO, "%s: write error: %s", path, strerror(errno));
        goto abort;
    }
    for (size_t i = 0; i < n; i++)
        if ((st = w_write_tensor(af.fp, items[i].t, dtype))) {
            kdc__fail_context(st, "%s", path);
            goto abort;
        }
    st = kdc__atomic_commit(path, &af);
    goto done;
abort:
    kdc__atomic_abort(&af);
done:
    free(h.p);
    free(items);
    return st;
}
