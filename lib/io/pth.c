/* pth.c - PyTorch checkpoints (.pth, .pt) as a table of tensors.
 *
 * Sections: telling the containers apart, the zip container, the legacy
 * stream, finding the state dict, turning its tensors into kdc__st_tensor
 * records, and opening a file for the model builder. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/pth.h"

/* The legacy format's first pickle: the magic number 0x1950a86a20f9469cfc6c
 * as LONG1 (PROTO and FRAME may precede it). */
static const unsigned char pth_magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20,
                                          0x6a, 0xa8, 0x50, 0x19, '.'};
#define PTH_LEGACY_VERSION 1001
#define PTH_MAX_WALK 8

/* The wrapper keys under which checkpoints keep their state dict, tried in
 * this order (docs/api.md). */
static const char *const pth_wrappers[] = {"state_dict", "model", "model_state",
                                           "model_state_dict", "student", "module", "net",
                                           "ema"};

struct kdc__pth_blob {
    const char *key;
    const unsigned char *data;
    size_t size;
};

/* ------------------------------------------------------------------ */
/* Which container                                                     */

static size_t pth_legacy_start(const unsigned char *buf, size_t len)
{
    size_t pos = 0;
    if (len >= 2 && buf[0] == 0x80)
        pos = 2;
    if (len >= pos + 9 && buf[pos] == 0x95)
        pos += 9;
    if (len - pos >= sizeof pth_magic && !memcmp(buf + pos, pth_magic, sizeof pth_magic))
        return pos + sizeof pth_magic;
    return 0;
}

int kdc__pth_sniff(const unsigned char *buf, size_t len)
{
    return kdc__zip_sniff(buf, len) || pth_legacy_start(buf, len) != 0;
}

/* ------------------------------------------------------------------ */
/* The zip container                                                   */

/* The archive's folder: the one entry DIR/data.pkl fixes DIR. */
static kdc_status pth_zip_root(kdc__pth *p, const kdc__zip_entry **pkl, size_t *dir_len)
{
    *pkl = NULL;
    for (size_t i = 0; i < p->zip.count; i++) {
        const char *n = p->zip.entries[i].name, *slash = strchr(n, '/');
        if (!slash || strcmp(slash, "/data.pkl"))
            continue;
        if (*pkl)
            return kdc__fail(KDC_ERR_FORMAT, "zip: several data.pkl entries (%s and %s)",
                             (*pkl)->name, n);
        *pkl = &p->zip.entries[i];
        *dir_len = (size_t)(slash - n);
    }
    if (!*pkl)
        return kdc__fail(KDC_ERR_FORMAT, "zip: no DIR/data.pkl entry: a zip archive, but not "
                         "one written by torch.save");
    return KDC_OK;
}

static kdc_status pth_read_zip(kdc__pth *p, const unsigned char *buf, size_t len, uint32_t *root,
                               char *dir, size_t dir_size)
{
    const kdc__zip_entry *pkl, *bo;
    size_t dl = 0, used;
    kdc_status st;

    if ((st = kdc__zip_read(buf, len, &p->zip)) || (st = pth_zip_root(p, &pkl, &dl)))
        return st;
    if (dl + 1 >= dir_size)
        return kdc__fail(KDC_ERR_FORMAT, "zip: the archive's folder name is too long");
    memcpy(dir, pkl->name, dl);
    dir[dl] = '\0';
    char name[300];
    snprintf(name, sizeof name, "%s/byteorder", dir);
    bo = kdc__zip_find(&p->zip, name);
    if (bo && !(bo->size == 6 && !memcmp(bo->data, "little", 6)))
        return kdc__fail(KDC_ERR_UNSUPPORTED, "the checkpoint's byte order is not little-endian");
    return kdc__pickle_load(&p->pk, pkl->data, pkl->size, &used, root);
}

/* ------------------------------------------------------------------ */
/* The legacy stream                                                   */

static int pth_blob_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kdc__pth_blob *)a)->key, ((const struct kdc__pth_blob *)b)->key);
}

static int pth_storage_cmp(const void *a, const void *b)
{
    return strcmp(((const kdc__pk_storage *)a)->key, ((const kdc__pk_storage *)b)->key);
}

/* The element size of the storage called key (from any tensor using it),
 * by binary search in storages sorted by key; 0 if none uses it. */
static size_t pth_elem_size(const kdc__pk_storage *sorted, uint32_t n, const char *key)
{
    kdc__pk_storage probe = {.key = key};
    const kdc__pk_storage *s = n ? bsearch(&probe, sorted, n, sizeof probe, pth_storage_cmp) : NULL;
    return s ? s->elem_size : 0;
}

/* Each storage of the legacy stream, from pos: an int64 element count,
 * then its bytes, in the order of the key list. */
static kdc_status pth_legacy_blobs(kdc__pth *p, const unsigned char *buf, size_t len, size_t pos,
                                   uint32_t keys, const kdc__pk_storage *sorted)
{
    const kdc__pickle *pk = &p->pk;
    uint32_t n = pk->values[keys].u.list.n;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = pk->values[keys].u.list.items[i];
        if (pk->values[k].kind != KDC__PK_STR)
            return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: a storage key is not a string");
        const char *key = pk->values[k].u.str.s;
        size_t es = pth_elem_size(sorted, pk->n_storages, key), nbytes;
        if (!es)
            return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: storage %s is used by no tensor",
                             key);
        if (len - pos < 8)
            return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: storage %s is truncated", key);
        uint64_t numel = 0;
        for (int b = 7; b >= 0; b--)
            numel = numel << 8 | buf[pos + (size_t)b];
        pos += 8;
        if (numel > SIZE_MAX || !kdc__mul_size((size_t)numel, es, &nbytes) ||
            nbytes > len - pos)
            return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: storage %s (%llu elements) runs "
                             "past the end of the file", key, (unsigned long long)numel);
        p->blobs[i].key = key;
        p->blobs[i].data = buf + pos;
        p->blobs[i].size = nbytes;
        pos += nbytes;
        p->n_blobs = i + 1;
    }
    return KDC_OK;
}

static kdc_status pth_read_legacy(kdc__pth *p, const unsigned char *buf, size_t len,
                                  uint32_t *root)
{
    size_t pos = pth_legacy_start(buf, len), used;
    uint32_t v, keys;
    kdc_status st;
    kdc__pickle *pk = &p->pk;

    if ((st = kdc__pickle_load(pk, buf + pos, len - pos, &used, &v)))
        return st;
    pos += used;
    if (pk->values[v].kind != KDC__PK_INT || pk->values[v].u.i != PTH_LEGACY_VERSION)
        return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: protocol version is not %d",
                         PTH_LEGACY_VERSION);
    if ((st = kdc__pickle_load(pk, buf + pos, len - pos, &used, &v)))
        return st;
    pos += used;
    if (pk->values[v].kind == KDC__PK_DICT)
        for (uint32_t i = 0; i + 1 < pk->values[v].u.list.n; i += 2) {
            uint32_t k = pk->values[v].u.list.items[i], x = pk->values[v].u.list.items[i + 1];
            if (pk->values[k].kind == KDC__PK_STR && !strcmp(pk->values[k].u.str.s, "little_endian") &&
                pk->values[x].kind == KDC__PK_BOOL && !pk->values[x].u.i)
                return kdc__fail(KDC_ERR_UNSUPPORTED, "legacy checkpoint: saved on a big-endian "
                                 "machine");
        }
    if ((st = kdc__pickle_load(pk, buf + pos, len - pos, &used, root)))
        return st;
    pos += used;
    if ((st = kdc__pickle_load(pk, buf + pos, len - pos, &used, &keys)))
        return st;
    pos += used;
    if (pk->values[keys].kind != KDC__PK_LIST)
        return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: the storage keys are not a list");

    uint32_t n = pk->values[keys].u.list.n;
    p->blobs = calloc(n ? n : 1, sizeof *p->blobs);
    kdc__pk_storage *sorted = malloc((pk->n_storages ? pk->n_storages : 1) * sizeof *sorted);
    if (!p->blobs || !sorted) {
        free(sorted);
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for %u storages", n);
    }
    if (pk->n_storages)
        memcpy(sorted, pk->storages, pk->n_storages * sizeof *sorted);
    qsort(sorted, pk->n_storages, sizeof *sorted, pth_storage_cmp);
    st = pth_legacy_blobs(p, buf, len, pos, keys, sorted);
    free(sorted);
    if (st)
        return st;
    qsort(p->blobs, p->n_blobs, sizeof *p->blobs, pth_blob_cmp);
    for (size_t i = 1; i < p->n_blobs; i++)
        if (!strcmp(p->blobs[i - 1].key, p->blobs[i].key))
            return kdc__fail(KDC_ERR_FORMAT, "legacy checkpoint: storage %s is listed twice",
                             p->blobs[i].key);
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Finding the state dict                                              */

/* The value under string key k (length kl) of dict d, or UINT32_MAX. */
static uint32_t pth_get(const kdc__pickle *pk, uint32_t d, const char *k, size_t kl)
{
    const kdc__pk_value *v = &pk->values[d];
    for (uint32_t i = 0; i + 1 < v->u.list.n; i += 2) {
        const kdc__pk_value *x = &pk->values[v->u.list.items[i]];
        if (x->kind == KDC__PK_STR && x->u.str.n == kl && !memcmp(x->u.str.s, k, kl))
            return v->u.list.items[i + 1];
    }
    return UINT32_MAX;
}

static int pth_has_tensor(const kdc__pickle *pk, uint32_t d)
{
    const kdc__pk_value *v = &pk->values[d];
    for (uint32_t i = 1; i < v->u.list.n; i += 2)
        if (pk->values[v->u.list.items[i]].kind == KDC__PK_TENSOR)
            return 1;
    return 0;
}

static void pth_note_step(char *where, size_t size, const char *k, size_t kl)
{
    size_t used = strlen(where);
    if (used < size)
        snprintf(where + used, size - used, "%s%.*s", used ? "." : "", (int)kl, k);
}

/* "keys: a, b, c" of dict d, for messages. */
static void pth_list_keys(const kdc__pickle *pk, uint32_t d, char *buf, size_t size)
{
    const kdc__pk_value *v = &pk->values[d];
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i + 1 < v->u.list.n && used < size; i += 2) {
        const kdc__pk_value *x = &pk->values[v->u.list.items[i]];
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                                 x->kind == KDC__PK_STR ? x->u.str.s : "(not a string)");
    }
}

/* Walks the dotted key: at each dict, the longest run of components that
 * names a key. */
static kdc_status pth_walk_key(kdc__pth *p, uint32_t *v, const char *key)
{
    const kdc__pickle *pk = &p->pk;
    const char *rest = key;

    while (*rest) {
        if (pk->values[*v].kind != KDC__PK_DICT)
            return kdc__fail(KDC_ERR_NOT_FOUND, "key %s: '%s' is %s, not a dict", key,
                             p->where[0] ? p->where : "the top level",
                             kdc__pickle_describe(pk, *v));
        size_t kl = strlen(rest);
        uint32_t found = UINT32_MAX;
        for (;;) {
            found = pth_get(pk, *v, rest, kl);
            if (found != UINT32_MAX)
                break;
            while (kl > 0 && rest[kl - 1] != '.')
                kl--;
            if (kl == 0)
                break;
            kl--; /* drop the dot */
        }
        if (found == UINT32_MAX) {
            char keys[200];
            pth_list_keys(pk, *v, keys, sizeof keys);
            return kdc__fail(KDC_ERR_NOT_FOUND, "key %s: no '%s' in %s (keys: %s)", key, rest,
                             p->where[0] ? p->where : "the top level", keys);
        }
        pth_note_step(p->where, sizeof p->where, rest, kl);
        *v = found;
        rest += kl;
        if (*rest == '.')
            rest++;
    }
    return KDC_OK;
}

/* From v down through the usual wrapper keys to the first dict holding a
 * tensor. */
static kdc_status pth_find(kdc__pth *p, uint32_t v, const char *key, uint32_t *sd)
{
    const kdc__pickle *pk = &p->pk;
    kdc_status st;

    p->where[0] = '\0';
    if (key && *key && (st = pth_walk_key(p, &v, key)))
        return st;
    for (int depth = 0; depth < PTH_MAX_WALK; depth++) {
        const char *at = p->where[0] ? p->where : "the top level";
        if (pk->values[v].kind != KDC__PK_DICT)
            return kdc__fail(KDC_ERR_FORMAT, "%s of the checkpoint is %s, not a state dict%s", at,
                             kdc__pickle_describe(pk, v),
                             pk->values[v].kind == KDC__PK_OPAQUE
                                 ? " (kdcam calls nothing from a checkpoint)" : "");
        if (pth_has_tensor(pk, v)) {
            *sd = v;
            return KDC_OK;
        }
        uint32_t next = UINT32_MAX;
        for (size_t i = 0; i < sizeof pth_wrappers / sizeof *pth_wrappers; i++) {
            next = pth_get(pk, v, pth_wrappers[i], strlen(pth_wrappers[i]));
            if (next != UINT32_MAX) {
                pth_note_step(p->where, sizeof p->where, pth_wrappers[i], strlen(pth_wrappers[i]));
                break;
            }
        }
        if (next == UINT32_MAX) {
            /* a tensor that could not be rebuilt explains the failure best */
            const kdc__pk_value *d = &pk->values[v];
            for (uint32_t i = 0; i + 1 < d->u.list.n; i += 2) {
                uint32_t x = d->u.list.items[i + 1], k = d->u.list.items[i];
                if (pk->values[x].kind == KDC__PK_OPAQUE && pk->values[k].kind == KDC__PK_STR)
                    return kdc__fail(KDC_ERR_FORMAT, "%s: entry %s cannot be loaded: it is %s "
                                     "(kdcam calls nothing from a checkpoint)", at,
                                     pk->values[k].u.str.s, kdc__pickle_describe(pk, x));
            }
            char keys[200];
            pth_list_keys(pk, v, keys, sizeof keys);
            return kdc__fail(KDC_ERR_NOT_FOUND, "no state dict: %s holds no tensor and none of "
                             "the keys state_dict, model, model_state, model_state_dict, "
                             "student, module, net, ema (keys: %s); name one with --key",
                             at, keys);
        }
        v = next;
    }
    return kdc__fail(KDC_ERR_NOT_FOUND, "no state dict within %d wrapper levels", PTH_MAX_WALK);
}

/* ------------------------------------------------------------------ */
/* Tensors                                                             */

static kdc_status pth_storage_bytes(kdc__pth *p, const char *dir, const kdc__pk_storage *s,
                                    const unsigned char **data, size_t *size)
{
    if (p->blobs) {
        struct kdc__pth_blob probe = {.key = s->key}, *b;
        b = p->n_blobs ? bsearch(&probe, p->blobs, p->n_blobs, sizeof probe, pth_blob_cmp) : NULL;
        if (!b)
            return kdc__fail(KDC_ERR_FORMAT, "storage %s is not in the checkpoint", s->key);
        *data = b->data;
        *size = b->size;
        return KDC_OK;
    }
    char name[600];
    if ((size_t)snprintf(name, sizeof name, "%s/data/%s", dir, s->key) >= sizeof name)
        return kdc__fail(KDC_ERR_FORMAT, "storage key '%.40s...' is too long", s->key);
    const kdc__zip_entry *e = kdc__zip_find(&p->zip, name);
    if (!e)
        return kdc__fail(KDC_ERR_FORMAT, "storage %s: no entry %s in the archive", s->key, name);
    *data = e->data;
    *size = e->size;
    return KDC_OK;
}

static int pth_contiguous(const kdc__pk_tensor *t)
{
    int64_t want = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != want)
            return 0;
        want *= t->shape[i];
    }
    return 1;
}

/* Copies the strided elements of t from src into dst, row-major. */
static void pth_gather(const kdc__pk_tensor *t, size_t es, const unsigned char *src,
                       unsigned char *dst)
{
    int64_t idx[KDC__ST_MAX_DIMS] = {0};
    for (uint64_t n = 0; n < t->numel; n++) {
        uint64_t off = t->offset;
        for (int i = 0; i < t->ndim; i++)
            off += (uint64_t)idx[i] * (uint64_t)t->stride[i];
        memcpy(dst + n * es, src + off * es, es);
        for (int i = t->ndim - 1; i >= 0; i--) {
            if (++idx[i] < t->shape[i])
                break;
            idx[i] = 0;
        }
    }
}

static kdc_status pth_tensor(kdc__pth *p, const char *dir, const char *name, const kdc__pk_tensor *t,
                             int mapped, kdc__st_tensor *out)
{
    const kdc__pk_storage *s = &p->pk.storages[t->storage];
    const unsigned char *data = NULL;
    size_t size = 0, need, nbytes;
    kdc_status st;

    if ((st = pth_storage_bytes(p, dir, s, &data, &size)))
        return kdc__fail_context(st, "tensor %s", name);
    if (s->numel > SIZE_MAX || !kdc__mul_size((size_t)s->numel, s->elem_size, &need) ||
        need != size)
        return kdc__fail(KDC_ERR_FORMAT, "tensor %s: storage %s holds %zu bytes, but its header "
                         "says %llu elements of %zu bytes", name, s->key, size,
                         (unsigned long long)s->numel, s->elem_size);
    /* The unpickler checked that every element lies inside the storage. */
    memset(out, 0, sizeof *out);
    out->name = name;
    out->dtype = s->dtype;
    out->dtype_name = s->dtype_name;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof t->shape);
    /* A contiguous tensor lies inside its storage; a strided one may not
     * (stride 0 repeats elements), so its size is checked. */
    if (t->numel > SIZE_MAX || !kdc__mul_size((size_t)t->numel, s->elem_size, &nbytes))
        return kdc__fail(KDC_ERR_FORMAT, "tensor %s: %llu elements are too many", name,
                         (unsigned long long)t->numel);
    out->numel = (size_t)t->numel;
    out->nbytes = nbytes;
    if (!t->numel || pth_contiguous(t)) {
        out->data = t->numel ? data + t->offset * s->elem_size : data;
        out->mapped = mapped;
        return KDC_OK;
    }
    /* A strided view may repeat elements (stride 0): its copy is limited
     * so that a small file cannot ask for unbounded memory. */
    if (nbytes > p->copy_budget)
        return kdc__fail(KDC_ERR_FORMAT, "tensor %s: a strided view of %zu bytes, more than the "
                         "checkpoint's size allows for copies of views", name, nbytes);
    p->copy_budget -= nbytes;
    unsigned char *copy = malloc(nbytes), **grown;
    if (!copy)
        return kdc__fail(KDC_ERR_NO_MEMORY, "tensor %s: out of memory for a %zu-byte copy", name,
                         nbytes);
    grown = realloc(p->copies, ((size_t)p->n_copies + 1) * sizeof *grown);
    if (!grown) {
        free(copy);
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory");
    }
    p->copies = grown;
    p->copies[p->n_copies++] = copy;
    pth_gather(t, s->elem_size, data, copy);
    out->data = copy;
    return KDC_OK;
}

/* Every (name, tensor) pair of the state dict; values that are not tensors
 * are skipped, but an opaque value (a call kdcam does not make) where a
 * tensor may be is an error naming it. */
static kdc_status pth_tensors(kdc__pth *p, const char *dir, uint32_t sd, int mapped)
{
    const kdc__pickle *pk = &p->pk;
    const kdc__pk_value *d = &pk->values[sd];
    const char *at = p->where[0] ? p->where : "the state dict";
    kdc_status st;

    p->tensors = calloc(d->u.list.n / 2 + 1, sizeof *p->tensors);
    if (!p->tensors)
        return kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for the tensor table");
    for (uint32_t i = 0; i + 1 < d->u.list.n; i += 2) {
        const kdc__pk_value *k = &pk->values[d->u.list.items[i]];
        uint32_t v = d->u.list.items[i + 1];
        if (k->kind != KDC__PK_STR)
            return kdc__fail(KDC_ERR_FORMAT, "%s: a key is %s, not a string", at,
                             kdc__pickle_describe(pk, d->u.list.items[i]));
        if (strlen(k->u.str.s) != k->u.str.n)
            return kdc__fail(KDC_ERR_FORMAT, "%s: a key holds a NUL byte", at);
        if (pk->values[v].kind == KDC__PK_OPAQUE)
            return kdc__fail(KDC_ERR_FORMAT, "%s: entry %s cannot be loaded: it is %s (kdcam "
                             "calls nothing from a checkpoint)", at, k->u.str.s,
                             kdc__pickle_describe(pk, v));
        if (pk->values[v].kind != KDC__PK_TENSOR)
            continue;
        st = pth_tensor(p, dir, k->u.str.s, &pk->tensors[pk->values[v].u.index], mapped,
                        &p->tensors[p->count]);
        if (st)
            return st;
        p->count++;
    }
    return KDC_OK;
}

kdc_status kdc__pth_read(const unsigned char *buf, size_t len, const char *key, int mapped,
                         kdc__pth *out)
{
    char dir[256] = "";
    uint32_t root = 0, sd = 0;
    kdc_status st;

    memset(out, 0, sizeof *out);
    kdc__pickle_init(&out->pk);
    out->copy_budget = len;
    if (kdc__zip_sniff(buf, len))
        st = pth_read_zip(out, buf, len, &root, dir, sizeof dir);
    else if (pth_legacy_start(buf, len))
        st = pth_read_legacy(out, buf, len, &root);
    else
        return kdc__fail(KDC_ERR_FORMAT, "not a PyTorch checkpoint (neither a zip archive nor "
                         "a legacy torch.save stream)");
    if (st || (st = pth_find(out, root, key, &sd)))
        return st;
    return pth_tensors(out, dir, sd, mapped);
}

void kdc__pth_free(kdc__pth *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_copies; i++)
        free(p->copies[i]);
    free(p->copies);
    free(p->tensors);
    free(p->blobs);
    kdc__zip_free(&p->zip);
    kdc__pickle_free(&p->pk);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ */
/* A file for the model builder                                        */

struct pth_file {
    kdc__pth pth;
    void *map;
    size_t map_size;
};

static void pth_file_release(void *owner)
{
    struct pth_file *pf = owner;
    kdc__pth_free(&pf->pth);
    if (pf->map)
        munmap(pf->map, pf->map_size);
    free(pf);
}

kdc_status kdc__pth_open(const char *path, const char *key, kdc__st_file **out)
{
    struct pth_file *pf;
    struct stat sb;
    kdc_status st;
    int fd;

    *out = NULL;
    if (!(pf = calloc(1, sizeof *pf)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = kdc__fail(KDC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
        (uint64_t)sb.st_size > SIZE_MAX) {
        st = kdc__fail(KDC_ERR_IO, "%s: not a regular, non-empty file", path);
        close(fd);
        goto fail;
    }
    pf->map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (pf->map == MAP_FAILED) {
        pf->map = NULL;
        st = kdc__fail(KDC_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    pf->map_size = (size_t)sb.st_size;
    if ((st = kdc__pth_read(pf->map, pf->map_size, key, 1, &pf->pth))) {
        st = kdc__fail_context(st, "%s", path);
        goto fail;
    }
    st = kdc__st_from_table(pf->pth.tensors, pf->pth.count, pf, pth_file_release, out);
    if (st)
        return kdc__fail_context(st, "%s", path); /* pf was released */
    return KDC_OK;
fail:
    pth_file_release(pf);
    return st;
}
