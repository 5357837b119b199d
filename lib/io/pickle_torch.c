/* pickle_torch.c - what the unpickler knows of PyTorch: the table of known
 * globals and storage types, the calls they allow (OrderedDict, tensor
 * rebuilds) and torch's persistent ids for storages. See pickle.h. */
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "io/pickle_internal.h"

/* ------------------------------------------------------------------ */
/* Known globals                                                       */

enum {
    PK_FN_NONE,            /* a name only: calling it gives an opaque value */
    PK_FN_ORDEREDDICT,
    PK_FN_REBUILD_TENSOR_V2,
    PK_FN_REBUILD_PARAMETER,
    PK_FN_REBUILD_PARAMETER_WITH_STATE,
    PK_FN_STORAGE          /* torch.FloatStorage, ...: names a dtype */
};

static const struct {
    const char *module, *name;
    int fn;
} pk_globals[] = {
    { "collections", "OrderedDict", PK_FN_ORDEREDDICT },
    { "torch._utils", "_rebuild_tensor_v2", PK_FN_REBUILD_TENSOR_V2 },
    { "torch._utils", "_rebuild_parameter", PK_FN_REBUILD_PARAMETER },
    { "torch._utils", "_rebuild_parameter_with_state", PK_FN_REBUILD_PARAMETER_WITH_STATE },
};

static const struct {
    const char *name;
    kdc__st_dtype dtype;
    size_t size;
    const char *dtype_name;
} pk_storages[] = {
    { "FloatStorage", KDC__ST_F32, 4, "F32" },
    { "HalfStorage", KDC__ST_F16, 2, "F16" },
    { "BFloat16Storage", KDC__ST_BF16, 2, "BF16" },
    { "DoubleStorage", KDC__ST_F64, 8, "F64" },
    { "LongStorage", KDC__ST_I64, 8, "I64" },
    { "IntStorage", KDC__ST_I32, 4, "I32" },
    { "ShortStorage", KDC__ST_I16, 2, "I16" },
    { "CharStorage", KDC__ST_I8, 1, "I8" },
    { "ByteStorage", KDC__ST_U8, 1, "U8" },
    { "BoolStorage", KDC__ST_BOOL, 1, "BOOL" },
};

static int pk_storage_index(kdc__st_dtype dtype)
{
    for (size_t i = 0; i < sizeof pk_storages / sizeof *pk_storages; i++)
        if (pk_storages[i].dtype == dtype)
            return (int)i;
    return 0;
}

kdc_status kdc__pk_global(kdc__pickle *p, const char *module, size_t ml, const char *name,
                          size_t nl, uint32_t *out)
{
    kdc_status st = kdc__pk_new(p, KDC__PK_GLOBAL, out);
    if (st)
        return st;
    char *full = malloc(ml + nl + 2);
    if (!full)
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory");
    memcpy(full, module, ml);
    full[ml] = '.';
    memcpy(full + ml + 1, name, nl);
    full[ml + 1 + nl] = '\0';
    kdc__pk_value *v = &p->values[*out];
    v->u.global.name = full;
    v->u.global.fn = PK_FN_NONE;
    for (size_t i = 0; i < sizeof pk_globals / sizeof *pk_globals; i++)
        if (strlen(pk_globals[i].module) == ml && !memcmp(module, pk_globals[i].module, ml) &&
            strlen(pk_globals[i].name) == nl && !memcmp(name, pk_globals[i].name, nl))
            v->u.global.fn = pk_globals[i].fn;
    if (ml == 5 && !memcmp(module, "torch", 5))
        for (size_t i = 0; i < sizeof pk_storages / sizeof *pk_storages; i++)
            if (strlen(pk_storages[i].name) == nl && !memcmp(name, pk_storages[i].name, nl)) {
                v->u.global.fn = PK_FN_STORAGE;
                v->u.global.dtype = pk_storages[i].dtype;
            }
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* Calls of known globals                                              */

/* Whether value v (UINT32_MAX: none) is of kind k. */
int kdc__pk_is(const kdc__pickle *p, uint32_t v, kdc__pk_kind k)
{
    return v < p->n_values && p->values[v].kind == k;
}

/* Item i of tuple t, or UINT32_MAX if t is no tuple or too short. */
static uint32_t pk_item(const kdc__pickle *p, uint32_t t, uint32_t i)
{
    if (!kdc__pk_is(p, t, KDC__PK_TUPLE))
        return UINT32_MAX;
    const kdc__pk_value *v = &p->values[t];
    return i < v->u.list.n ? v->u.list.items[i] : UINT32_MAX;
}

/* A tuple of 0..8 non-negative ints into dims; the count, or -1. */
static int pk_dims(const kdc__pickle *p, uint32_t t, int64_t *dims)
{
    if (!kdc__pk_is(p, t, KDC__PK_TUPLE) || p->values[t].u.list.n > KDC__ST_MAX_DIMS)
        return -1;
    int n = (int)p->values[t].u.list.n;
    for (int i = 0; i < n; i++) {
        uint32_t x = pk_item(p, t, (uint32_t)i);
        if (!kdc__pk_is(p, x, KDC__PK_INT) || p->values[x].u.i < 0)
            return -1;
        dims[i] = p->values[x].u.i;
    }
    return n;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]). A malformed call gives an opaque value whose
 * text says what is wrong. */
static kdc_status pk_rebuild_tensor(kdc__pickle *p, uint32_t args, uint32_t *out)
{
    const char *bad = NULL;
    kdc__pk_tensor t;
    uint32_t n = p->values[args].u.list.n;

    memset(&t, 0, sizeof t);
    if (n != 6 && n != 7)
        bad = "a torch._utils._rebuild_tensor_v2 call with %s arguments";
    else if (!kdc__pk_is(p, pk_item(p, args, 0), KDC__PK_STORAGE))
        bad = "a torch._utils._rebuild_tensor_v2 call whose storage is %s";
    else if (!kdc__pk_is(p, pk_item(p, args, 1), KDC__PK_INT) ||
             p->values[pk_item(p, args, 1)].u.i < 0)
        bad = "a torch._utils._rebuild_tensor_v2 call with %sa bad storage offset";
    if (bad) {
        const char *arg = "";
        if (n != 6 && n != 7)
            arg = "the wrong number of";
        else if (!kdc__pk_is(p, pk_item(p, args, 0), KDC__PK_STORAGE))
            arg = kdc__pickle_describe(p, pk_item(p, args, 0));
        return kdc__pk_opaque(p, out, bad, arg);
    }
    const kdc__pk_storage *s = &p->storages[p->values[pk_item(p, args, 0)].u.index];
    int64_t stride[KDC__ST_MAX_DIMS];
    t.storage = p->values[pk_item(p, args, 0)].u.index;
    t.offset = (uint64_t)p->values[pk_item(p, args, 1)].u.i;
    t.ndim = pk_dims(p, pk_item(p, args, 2), t.shape);
    if (t.ndim < 0 || pk_dims(p, pk_item(p, args, 3), stride) != t.ndim)
        return kdc__pk_opaque(p, out, "a torch._utils._rebuild_tensor_v2 call with a bad size or "
                              "stride%s", "");
    memcpy(t.stride, stride, sizeof stride);
    /* The last element reached must lie inside the storage. */
    uint64_t numel = 1, last = t.offset;
    int overflow = 0;
    for (int i = 0; i < t.ndim; i++) {
        uint64_t d = (uint64_t)t.shape[i];
        if (d && numel > UINT64_MAX / d)
            overflow = 1;
        numel *= d;
    }
    if (numel) {
        for (int i = 0; i < t.ndim; i++) {
            uint64_t step = (uint64_t)t.stride[i], cnt = (uint64_t)t.shape[i] - 1;
            if (cnt && step > (UINT64_MAX - last) / cnt)
                overflow = 1;
            else
                last += cnt * step;
        }
        if (overflow || last >= s->numel)
            return kdc__pk_opaque(p, out, "a tensor that reaches past the end of its storage %s",
                                  s->key);
    }
    t.numel = numel;
    if (!kdc__pk_grow((void **)&p->tensors, &p->cap_tensors, p->n_tensors, sizeof t,
                      KDC__PK_MAX_VALUES))
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for tensors");
    kdc_status st = kdc__pk_new(p, KDC__PK_TENSOR, out);
    if (st)
        return st;
    p->tensors[p->n_tensors] = t;
    p->values[*out].u.index = p->n_tensors++;
    return KDC_OK;
}

/* REDUCE: callable(*args). Only the known globals are "called", and only
 * to build values; everything else becomes an opaque value. */
kdc_status kdc__pk_reduce(kdc__pickle *p, uint32_t fn, uint32_t args, uint32_t *out)
{
    const kdc__pk_value *f = &p->values[fn];

    if (f->kind != KDC__PK_GLOBAL)
        return kdc__pk_opaque(p, out, "the result of calling %s", kdc__pickle_describe(p, fn));
    if (!kdc__pk_is(p, args, KDC__PK_TUPLE))
        return kdc__pk_opaque(p, out, "a call to %s without an argument tuple", f->u.global.name);
    uint32_t n = p->values[args].u.list.n;
    switch (f->u.global.fn) {
    case PK_FN_ORDEREDDICT:
        if (n == 0)
            return kdc__pk_new(p, KDC__PK_DICT, out);
        break;
    case PK_FN_REBUILD_TENSOR_V2:
        return pk_rebuild_tensor(p, args, out);
    case PK_FN_REBUILD_PARAMETER:
    case PK_FN_REBUILD_PARAMETER_WITH_STATE:
        if (n >= 1 && kdc__pk_is(p, pk_item(p, args, 0), KDC__PK_TENSOR)) {
            *out = pk_item(p, args, 0);
            return KDC_OK;
        }
        return kdc__pk_opaque(p, out, "a %s call without a tensor", f->u.global.name);
    default:
        break;
    }
    return kdc__pk_opaque(p, out, "a call to %s", f->u.global.name);
}

/* BINPERSID: torch's ('storage', torch.XStorage, key, location, numel) and
 * the legacy form with a sixth item, the view (None for whole storages). */
kdc_status kdc__pk_persistent(kdc__pickle *p, uint32_t pid, uint32_t *out)
{
    uint32_t n = kdc__pk_is(p, pid, KDC__PK_TUPLE) ? p->values[pid].u.list.n : 0;
    uint32_t tag = pk_item(p, pid, 0), type = pk_item(p, pid, 1), key = pk_item(p, pid, 2),
             cnt = pk_item(p, pid, 4);

    if ((n != 5 && n != 6) || !kdc__pk_is(p, tag, KDC__PK_STR) ||
        strcmp(p->values[tag].u.str.s, "storage"))
        return kdc__pk_opaque(p, out, "an unknown persistent id%s", "");
    if (!kdc__pk_is(p, type, KDC__PK_GLOBAL) || p->values[type].u.global.fn != PK_FN_STORAGE)
        return kdc__pk_opaque(p, out, "a storage of type %s", kdc__pickle_describe(p, type));
    if (!kdc__pk_is(p, key, KDC__PK_STR) || !kdc__pk_is(p, cnt, KDC__PK_INT) ||
        p->values[cnt].u.i < 0)
        return kdc__pk_opaque(p, out, "a storage with a malformed key or size%s", "");
    if (n == 6 && !kdc__pk_is(p, pk_item(p, pid, 5), KDC__PK_NONE))
        return kdc__pk_opaque(p, out, "a view of legacy storage %s (re-save the checkpoint with "
                              "torch.save)", p->values[key].u.str.s);
    if (!kdc__pk_grow((void **)&p->storages, &p->cap_storages, p->n_storages, sizeof *p->storages,
                      KDC__PK_MAX_VALUES))
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for storages");
    int k = pk_storage_index(p->values[type].u.global.dtype);
    kdc__pk_storage *s = &p->storages[p->n_storages];
    s->dtype = pk_storages[k].dtype;
    s->elem_size = pk_storages[k].size;
    s->dtype_name = pk_storages[k].dtype_name;
    s->key = p->values[key].u.str.s;
    s->numel = (uint64_t)p->values[cnt].u.i;
    kdc_status st = kdc__pk_new(p, KDC__PK_STORAGE, out);
    if (st)
        return st;
    p->values[*out].u.index = p->n_storages++;
    return KDC_OK;
}
