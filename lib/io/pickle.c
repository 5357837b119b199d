/* pickle.c - a restricted unpickler for PyTorch checkpoints.
 *
 * Sections: the arena (values, storages, tensors), the table of known
 * globals, the calls they allow (OrderedDict, tensor rebuilds), persistent
 * ids, and the opcode loop. See pickle.h for what is and is not built. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"

/* ------------------------------------------------------------------ */
/* The arena                                                           */

void kdc__pickle_init(kdc__pickle *p)
{
    memset(p, 0, sizeof *p);
}

void kdc__pickle_free(kdc__pickle *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n_values; i++) {
        kdc__pk_value *v = &p->values[i];
        switch (v->kind) {
        case KDC__PK_STR:
        case KDC__PK_BYTES: free(v->u.str.s); break;
        case KDC__PK_TUPLE:
        case KDC__PK_LIST:
        case KDC__PK_DICT: free(v->u.list.items); break;
        case KDC__PK_GLOBAL: free(v->u.global.name); break;
        case KDC__PK_OPAQUE: free(v->u.text); break;
        default: break;
        }
    }
    free(p->values);
    free(p->storages);
    free(p->tensors);
    memset(p, 0, sizeof *p);
}

/* Grows an array of elements of size `size` to hold one more than *n. */
static int pk_grow(void **arr, uint32_t *cap, uint32_t n, size_t size, uint32_t limit)
{
    if (n < *cap)
        return 1;
    if (n >= limit)
        return 0;
    uint32_t nc = *cap ? *cap * 2 : 64;
    if (nc > limit)
        nc = limit;
    void *a = realloc(*arr, (size_t)nc * size);
    if (!a)
        return 0;
    *arr = a;
    *cap = nc;
    return 1;
}

/* A new value of kind k; its index in *out. */
static kdc_status pk_new(kdc__pickle *p, kdc__pk_kind k, uint32_t *out)
{
    if (p->n_values >= KDC__PK_MAX_VALUES)
        return kdc__fail(KDC_ERR_FORMAT, "pickle: more than %u values", KDC__PK_MAX_VALUES);
    if (!pk_grow((void **)&p->values, &p->cap_values, p->n_values, sizeof *p->values,
                 KDC__PK_MAX_VALUES))
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for values");
    kdc__pk_value *v = &p->values[p->n_values];
    memset(v, 0, sizeof *v);
    v->kind = k;
    *out = p->n_values++;
    return KDC_OK;
}

/* An opaque value described by printf(fmt, ...). */
static kdc_status pk_opaque(kdc__pickle *p, uint32_t *out, const char *fmt, const char *arg)
{
    kdc_status st = pk_new(p, KDC__PK_OPAQUE, out);
    if (st)
        return st;
    int n = snprintf(NULL, 0, fmt, arg);
    char *s = malloc((size_t)n + 1);
    if (!s)
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory");
    snprintf(s, (size_t)n + 1, fmt, arg);
    p->values[*out].u.text = s;
    return KDC_OK;
}

/* Appends item to container c, keeping depth up to date. */
static kdc_status pk_append(kdc__pickle *p, uint32_t c, uint32_t item)
{
    kdc__pk_value *v = &p->values[c];
    if (!pk_grow((void **)&v->u.list.items, &v->u.list.cap, v->u.list.n, sizeof(uint32_t),
                 KDC__PK_MAX_ITEMS))
        return v->u.list.n >= KDC__PK_MAX_ITEMS
                   ? kdc__fail(KDC_ERR_FORMAT, "pickle: a container of more than %u items",
                               KDC__PK_MAX_ITEMS)
                   : kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for a container");
    v->u.list.items[v->u.list.n++] = item;
    uint32_t d = p->values[item].depth + 1;
    if (d > v->depth) {
        if (d > KDC__PK_MAX_DEPTH)
            return kdc__fail(KDC_ERR_FORMAT, "pickle: nesting deeper than %d levels",
                             KDC__PK_MAX_DEPTH);
        v->depth = d;
    }
    return KDC_OK;
}

static kdc_status pk_string(kdc__pickle *p, kdc__pk_kind k, const unsigned char *s, size_t n,
                            uint32_t *out)
{
    kdc_status st = pk_new(p, k, out);
    if (st)
        return st;
    char *c = malloc(n + 1);
    if (!c)
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for a %zu-byte string", n);
    memcpy(c, s, n);
    c[n] = '\0';
    p->values[*out].u.str.s = c;
    p->values[*out].u.str.n = n;
    return KDC_OK;
}

const char *kdc__pickle_describe(const kdc__pickle *p, uint32_t v)
{
    const kdc__pk_value *x = &p->values[v];
    switch (x->kind) {
    case KDC__PK_NONE: return "None";
    case KDC__PK_BOOL: return "a bool";
    case KDC__PK_INT: return "an int";
    case KDC__PK_FLOAT: return "a float";
    case KDC__PK_STR: return "a string";
    case KDC__PK_BYTES: return "bytes";
    case KDC__PK_TUPLE: return "a tuple";
    case KDC__PK_LIST: return "a list";
    case KDC__PK_DICT: return "a dict";
    case KDC__PK_GLOBAL: return x->u.global.name;
    case KDC__PK_OPAQUE: return x->u.text;
    case KDC__PK_STORAGE: return "a storage";
    case KDC__PK_TENSOR: return "a tensor";
    }
    return "a value";
}

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

static kdc_status pk_global(kdc__pickle *p, const char *module, size_t ml, const char *name,
                            size_t nl, uint32_t *out)
{
    kdc_status st = pk_new(p, KDC__PK_GLOBAL, out);
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
static int pk_is(const kdc__pickle *p, uint32_t v, kdc__pk_kind k)
{
    return v < p->n_values && p->values[v].kind == k;
}

/* Item i of tuple t, or UINT32_MAX if t is no tuple or too short. */
static uint32_t pk_item(const kdc__pickle *p, uint32_t t, uint32_t i)
{
    if (!pk_is(p, t, KDC__PK_TUPLE))
        return UINT32_MAX;
    const kdc__pk_value *v = &p->values[t];
    return i < v->u.list.n ? v->u.list.items[i] : UINT32_MAX;
}

/* A tuple of 0..8 non-negative ints into dims; the count, or -1. */
static int pk_dims(const kdc__pickle *p, uint32_t t, int64_t *dims)
{
    if (!pk_is(p, t, KDC__PK_TUPLE) || p->values[t].u.list.n > KDC__ST_MAX_DIMS)
        return -1;
    int n = (int)p->values[t].u.list.n;
    for (int i = 0; i < n; i++) {
        uint32_t x = pk_item(p, t, (uint32_t)i);
        if (!pk_is(p, x, KDC__PK_INT) || p->values[x].u.i < 0)
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
    else if (!pk_is(p, pk_item(p, args, 0), KDC__PK_STORAGE))
        bad = "a torch._utils._rebuild_tensor_v2 call whose storage is %s";
    else if (!pk_is(p, pk_item(p, args, 1), KDC__PK_INT) || p->values[pk_item(p, args, 1)].u.i < 0)
        bad = "a torch._utils._rebuild_tensor_v2 call with %sa bad storage offset";
    if (bad) {
        const char *arg = "";
        if (n != 6 && n != 7)
            arg = "the wrong number of";
        else if (!pk_is(p, pk_item(p, args, 0), KDC__PK_STORAGE))
            arg = kdc__pickle_describe(p, pk_item(p, args, 0));
        return pk_opaque(p, out, bad, arg);
    }
    const kdc__pk_storage *s = &p->storages[p->values[pk_item(p, args, 0)].u.index];
    int64_t stride[KDC__ST_MAX_DIMS];
    t.storage = p->values[pk_item(p, args, 0)].u.index;
    t.offset = (uint64_t)p->values[pk_item(p, args, 1)].u.i;
    t.ndim = pk_dims(p, pk_item(p, args, 2), t.shape);
    if (t.ndim < 0 || pk_dims(p, pk_item(p, args, 3), stride) != t.ndim)
        return pk_opaque(p, out, "a torch._utils._rebuild_tensor_v2 call with a bad size or "
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
            return pk_opaque(p, out, "a tensor that reaches past the end of its storage %s",
                             s->key);
    }
    t.numel = numel;
    if (!pk_grow((void **)&p->tensors, &p->cap_tensors, p->n_tensors, sizeof t,
                 KDC__PK_MAX_VALUES))
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for tensors");
    kdc_status st = pk_new(p, KDC__PK_TENSOR, out);
    if (st)
        return st;
    p->tensors[p->n_tensors] = t;
    p->values[*out].u.index = p->n_tensors++;
    return KDC_OK;
}

/* REDUCE: callable(*args). Only the known globals are "called", and only
 * to build values; everything else becomes an opaque value. */
static kdc_status pk_reduce(kdc__pickle *p, uint32_t fn, uint32_t args, uint32_t *out)
{
    const kdc__pk_value *f = &p->values[fn];

    if (f->kind != KDC__PK_GLOBAL)
        return pk_opaque(p, out, "the result of calling %s", kdc__pickle_describe(p, fn));
    if (!pk_is(p, args, KDC__PK_TUPLE))
        return pk_opaque(p, out, "a call to %s without an argument tuple", f->u.global.name);
    uint32_t n = p->values[args].u.list.n;
    switch (f->u.global.fn) {
    case PK_FN_ORDEREDDICT:
        if (n == 0)
            return pk_new(p, KDC__PK_DICT, out);
        break;
    case PK_FN_REBUILD_TENSOR_V2:
        return pk_rebuild_tensor(p, args, out);
    case PK_FN_REBUILD_PARAMETER:
    case PK_FN_REBUILD_PARAMETER_WITH_STATE:
        if (n >= 1 && pk_is(p, pk_item(p, args, 0), KDC__PK_TENSOR)) {
            *out = pk_item(p, args, 0);
            return KDC_OK;
        }
        return pk_opaque(p, out, "a %s call without a tensor", f->u.global.name);
    default:
        break;
    }
    return pk_opaque(p, out, "a call to %s", f->u.global.name);
}

/* BINPERSID: torch's ('storage', torch.XStorage, key, location, numel) and
 * the legacy form with a sixth item, the view (None for whole storages). */
static kdc_status pk_persistent(kdc__pickle *p, uint32_t pid, uint32_t *out)
{
    uint32_t n = pk_is(p, pid, KDC__PK_TUPLE) ? p->values[pid].u.list.n : 0;
    uint32_t tag = pk_item(p, pid, 0), type = pk_item(p, pid, 1), key = pk_item(p, pid, 2),
             cnt = pk_item(p, pid, 4);

    if ((n != 5 && n != 6) || !pk_is(p, tag, KDC__PK_STR) ||
        strcmp(p->values[tag].u.str.s, "storage"))
        return pk_opaque(p, out, "an unknown persistent id%s", "");
    if (!pk_is(p, type, KDC__PK_GLOBAL) || p->values[type].u.global.fn != PK_FN_STORAGE)
        return pk_opaque(p, out, "a storage of type %s", kdc__pickle_describe(p, type));
    if (!pk_is(p, key, KDC__PK_STR) || !pk_is(p, cnt, KDC__PK_INT) || p->values[cnt].u.i < 0)
        return pk_opaque(p, out, "a storage with a malformed key or size%s", "");
    if (n == 6 && !pk_is(p, pk_item(p, pid, 5), KDC__PK_NONE))
        return pk_opaque(p, out, "a view of legacy storage %s (re-save the checkpoint with "
                         "torch.save)", p->values[key].u.str.s);
    if (!pk_grow((void **)&p->storages, &p->cap_storages, p->n_storages, sizeof *p->storages,
                 KDC__PK_MAX_VALUES))
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for storages");
    int k = pk_storage_index(p->values[type].u.global.dtype);
    kdc__pk_storage *s = &p->storages[p->n_storages];
    s->dtype = pk_storages[k].dtype;
    s->elem_size = pk_storages[k].size;
    s->dtype_name = pk_storages[k].dtype_name;
    s->key = p->values[key].u.str.s;
    s->numel = (uint64_t)p->values[cnt].u.i;
    kdc_status st = pk_new(p, KDC__PK_STORAGE, out);
    if (st)
        return st;
    p->values[*out].u.index = p->n_storages++;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* The opcode loop                                                     */

typedef struct pk_state {
    kdc__pickle *p;
    const unsigned char *buf;
    size_t len, pos, op_pos;
    unsigned char op;
    uint32_t *stack;
    uint32_t n_stack, cap_stack;
    uint32_t *marks;
    uint32_t n_marks, cap_marks;
    uint32_t *memo;          /* UINT32_MAX: empty slot */
    uint32_t n_memo, cap_memo;
} pk_state;

static kdc_status pk_err(pk_state *s, const char *what)
{
    return kdc__fail(KDC_ERR_FORMAT, "pickle: opcode 0x%02x at byte %zu: %s", s->op, s->op_pos,
                     what);
}

static kdc_status pk_need(pk_state *s, size_t n, const unsigned char **at)
{
    if (n > s->len - s->pos)
        return pk_err(s, "truncated");
    *at = s->buf + s->pos;
    s->pos += n;
    return KDC_OK;
}

static uint64_t pk_le(const unsigned char *b, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--)
        x = x << 8 | b[i];
    return x;
}

static kdc_status pk_push(pk_state *s, uint32_t v)
{
    if (!pk_grow((void **)&s->stack, &s->cap_stack, s->n_stack, sizeof *s->stack,
                 KDC__PK_MAX_VALUES))
        return s->n_stack >= KDC__PK_MAX_VALUES ? pk_err(s, "stack too deep")
                                               : kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory");
    s->stack[s->n_stack++] = v;
    return KDC_OK;
}

static kdc_status pk_push_new(pk_state *s, kdc__pk_kind k, uint32_t *out)
{
    kdc_status st = pk_new(s->p, k, out);
    return st ? st : pk_push(s, *out);
}

static kdc_status pk_pop(pk_state *s, uint32_t *v)
{
    uint32_t floor = s->n_marks ? s->marks[s->n_marks - 1] : 0;
    if (s->n_stack <= floor)
        return pk_err(s, "stack underflow");
    *v = s->stack[--s->n_stack];
    return KDC_OK;
}

/* The items above the topmost mark: stack[*from .. n_stack); the mark is
 * removed. */
static kdc_status pk_pop_mark(pk_state *s, uint32_t *from)
{
    if (!s->n_marks)
        return pk_err(s, "no mark");
    *from = s->marks[--s->n_marks];
    return KDC_OK;
}

static kdc_status pk_top(pk_state *s, uint32_t *v)
{
    uint32_t floor = s->n_marks ? s->marks[s->n_marks - 1] : 0;
    if (s->n_stack <= floor)
        return pk_err(s, "stack underflow");
    *v = s->stack[s->n_stack - 1];
    return KDC_OK;
}

/* A container of kind k holding stack[from..n_stack), which it replaces. */
static kdc_status pk_collect(pk_state *s, kdc__pk_kind k, uint32_t from)
{
    uint32_t c;
    kdc_status st = pk_new(s->p, k, &c);
    for (uint32_t i = from; !st && i < s->n_stack; i++)
        st = pk_append(s->p, c, s->stack[i]);
    if (st)
        return st;
    s->n_stack = from;
    return pk_push(s, c);
}

/* APPEND(S), SETITEM(S), ADDITEMS: items stack[from..n_stack) into the
 * container below them; items for anything but a list, dict or set are
 * dropped (their target is opaque). */
static kdc_status pk_add(pk_state *s, uint32_t from, int pairs)
{
    if (from == 0 || from - 1 < (s->n_marks ? s->marks[s->n_marks - 1] : 0))
        return pk_err(s, "no container to add to");
    uint32_t c = s->stack[from - 1];
    kdc__pk_kind k = s->p->values[c].kind;
    if (pairs && (s->n_stack - from) % 2)
        return pk_err(s, "odd number of dict items");
    if ((pairs && k == KDC__PK_DICT) || (!pairs && k == KDC__PK_LIST)) {
        for (uint32_t i = from; i < s->n_stack; i++) {
            kdc_status st = pk_append(s->p, c, s->stack[i]);
            if (st)
                return st;
        }
    } else if (k != KDC__PK_OPAQUE) {
        return pk_err(s, pairs ? "setting items of a value that is not a dict"
                               : "appending to a value that is not a list");
    }
    s->n_stack = from;
    return KDC_OK;
}

static kdc_status pk_memo_put(pk_state *s, uint64_t idx)
{
    uint32_t v = 0;
    kdc_status st = pk_top(s, &v);
    if (st)
        return st;
    if (idx >= KDC__PK_MAX_MEMO)
        return pk_err(s, "memo index above the limit");
    while (s->cap_memo <= idx) {
        uint32_t nc = s->cap_memo ? s->cap_memo * 2 : 64;
        uint32_t *m = realloc(s->memo, (size_t)nc * sizeof *m);
        if (!m)
            return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for the memo");
        for (uint32_t i = s->cap_memo; i < nc; i++)
            m[i] = UINT32_MAX;
        s->memo = m;
        s->cap_memo = nc;
    }
    s->memo[idx] = v;
    if (idx >= s->n_memo)
        s->n_memo = (uint32_t)idx + 1;
    return KDC_OK;
}

static kdc_status pk_memo_get(pk_state *s, uint64_t idx)
{
    if (idx >= s->n_memo || s->memo[idx] == UINT32_MAX)
        return pk_err(s, "memo key not defined");
    return pk_push(s, s->memo[idx]);
}

/* nb bytes of little-endian length n, then n bytes: *data and *n. */
static kdc_status pk_counted(pk_state *s, int nb, const unsigned char **data, size_t *n)
{
    const unsigned char *at = NULL;
    kdc_status st = pk_need(s, (size_t)nb, &at);
    if (st)
        return st;
    uint64_t len = pk_le(at, nb);
    if (len > s->len - s->pos)
        return pk_err(s, "length runs past the end of the pickle");
    *data = s->buf + s->pos;
    *n = (size_t)len;
    s->pos += (size_t)len;
    return KDC_OK;
}

/* A length-prefixed string or bytes. */
static kdc_status pk_sized(pk_state *s, int nb, kdc__pk_kind k)
{
    const unsigned char *b = NULL;
    size_t n = 0;
    uint32_t v = 0;
    kdc_status st = pk_counted(s, nb, &b, &n);
    if (!st)
        st = pk_string(s->p, k, b, n, &v);
    return st ? st : pk_push(s, v);
}

/* LONG1/LONG4: little-endian two's complement of n bytes; beyond 64 bits
 * an opaque value (no state dict needs one). */
static kdc_status pk_long(pk_state *s, int nb)
{
    const unsigned char *b = NULL;
    size_t n = 0;
    uint32_t v = 0;
    kdc_status st = pk_counted(s, nb, &b, &n);
    if (st)
        return st;
    if (n > 8) {
        st = pk_opaque(s->p, &v, "an integer of %s bytes or more", "9");
        return st ? st : pk_push(s, v);
    }
    uint64_t x = n ? pk_le(b, (int)n) : 0;
    if (n && n < 8 && (b[n - 1] & 0x80))
        x |= ~(uint64_t)0 << (8 * n);
    if ((st = pk_push_new(s, KDC__PK_INT, &v)))
        return st;
    memcpy(&s->p->values[v].u.i, &x, sizeof x);
    return KDC_OK;
}

static kdc_status pk_int(pk_state *s, int nb, int is_signed)
{
    const unsigned char *at = NULL;
    uint32_t v = 0;
    kdc_status st = pk_need(s, (size_t)nb, &at);
    if (st || (st = pk_push_new(s, KDC__PK_INT, &v)))
        return st;
    uint64_t x = pk_le(at, nb);
    s->p->values[v].u.i = is_signed ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x;
    return KDC_OK;
}

/* GLOBAL: "module\nname\n". */
static kdc_status pk_text_global(pk_state *s)
{
    const unsigned char *m = s->buf + s->pos, *end = s->buf + s->len;
    const unsigned char *nl1 = memchr(m, '\n', (size_t)(end - m));
    if (!nl1)
        return pk_err(s, "truncated global");
    const unsigned char *n = nl1 + 1;
    const unsigned char *nl2 = memchr(n, '\n', (size_t)(end - n));
    if (!nl2)
        return pk_err(s, "truncated global");
    s->pos = (size_t)(nl2 + 1 - s->buf);
    uint32_t v = 0;
    kdc_status st = pk_global(s->p, (const char *)m, (size_t)(nl1 - m), (const char *)n,
                              (size_t)(nl2 - n), &v);
    return st ? st : pk_push(s, v);
}

static kdc_status pk_step(pk_state *s, int *stop)
{
    kdc__pickle *p = s->p;
    const unsigned char *at = NULL;
    uint32_t a = 0, b = 0, c = 0, v = 0, from = 0;
    kdc_status st = KDC_OK;

    s->op_pos = s->pos;
    if ((st = pk_need(s, 1, &at)))
        return kdc__fail(KDC_ERR_FORMAT, "pickle: ends at byte %zu without STOP", s->pos);
    s->op = *at;
    switch (s->op) {
    case 0x80: /* PROTO */
        if ((st = pk_need(s, 1, &at)))
            return st;
        if (*at < 2 || *at > 5)
            return pk_err(s, "protocol not in 2..5");
        return KDC_OK;
    case 0x95: /* FRAME: a length hint only */
        return pk_need(s, 8, &at);
    case '.': /* STOP */
        *stop = 1;
        return KDC_OK;
    case '(': /* MARK */
        if (s->n_marks >= KDC__PK_MAX_MARKS)
            return pk_err(s, "too many marks");
        if (!pk_grow((void **)&s->marks, &s->cap_marks, s->n_marks, sizeof *s->marks,
                     KDC__PK_MAX_MARKS))
            return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory");
        s->marks[s->n_marks++] = s->n_stack;
        return KDC_OK;
    case ')': return pk_push_new(s, KDC__PK_TUPLE, &v);
    case ']': return pk_push_new(s, KDC__PK_LIST, &v);
    case '}': return pk_push_new(s, KDC__PK_DICT, &v);
    case 0x8f: return pk_push_new(s, KDC__PK_LIST, &v); /* EMPTY_SET */
    case 'N': return pk_push_new(s, KDC__PK_NONE, &v);
    case 0x88:
    case 0x89: /* NEWTRUE, NEWFALSE */
        if ((st = pk_push_new(s, KDC__PK_BOOL, &v)))
            return st;
        p->values[v].u.i = s->op == 0x88;
        return KDC_OK;
    case 'J': return pk_int(s, 4, 1);
    case 'K': return pk_int(s, 1, 0);
    case 'M': return pk_int(s, 2, 0);
    case 0x8a: return pk_long(s, 1);
    case 0x8b: return pk_long(s, 4);
    case 'G': { /* BINFLOAT: big-endian double */
        if ((st = pk_need(s, 8, &at)) || (st = pk_push_new(s, KDC__PK_FLOAT, &v)))
            return st;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | at[i];
        memcpy(&p->values[v].u.f, &bits, sizeof bits);
        return KDC_OK;
    }
    case 'X': return pk_sized(s, 4, KDC__PK_STR);
    case 0x8c: return pk_sized(s, 1, KDC__PK_STR);
    case 0x8d: return pk_sized(s, 8, KDC__PK_STR);
    case 'T': /* BINSTRING: a signed length; negative is malformed */
        if (s->len - s->pos >= 4 && (s->buf[s->pos + 3] & 0x80))
            return pk_err(s, "negative string length");
        return pk_sized(s, 4, KDC__PK_STR);
    case 'U': return pk_sized(s, 1, KDC__PK_STR);
    case 'B': return pk_sized(s, 4, KDC__PK_BYTES);
    case 'C': return pk_sized(s, 1, KDC__PK_BYTES);
    case 0x8e:
    case 0x96: return pk_sized(s, 8, KDC__PK_BYTES); /* BINBYTES8, BYTEARRAY8 */
    case 't': /* TUPLE */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        return pk_collect(s, KDC__PK_TUPLE, from);
    case 0x85:
    case 0x86:
    case 0x87: { /* TUPLE1..3 */
        uint32_t n = (uint32_t)(s->op - 0x84);
        uint32_t floor = s->n_marks ? s->marks[s->n_marks - 1] : 0;
        if (s->n_stack - floor < n)
            return pk_err(s, "stack underflow");
        return pk_collect(s, KDC__PK_TUPLE, s->n_stack - n);
    }
    case 'l': /* LIST */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        return pk_collect(s, KDC__PK_LIST, from);
    case 'd': /* DICT */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        if ((s->n_stack - from) % 2)
            return pk_err(s, "odd number of dict items");
        return pk_collect(s, KDC__PK_DICT, from);
    case 0x91: /* FROZENSET */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        return pk_collect(s, KDC__PK_LIST, from);
    case 'a': /* APPEND */
        if (s->n_stack < 2 || s->n_stack - 1 <= (s->n_marks ? s->marks[s->n_marks - 1] : 0))
            return pk_err(s, "stack underflow");
        return pk_add(s, s->n_stack - 1, 0);
    case 's': /* SETITEM */
        if (s->n_stack < 3 || s->n_stack - 2 <= (s->n_marks ? s->marks[s->n_marks - 1] : 0))
            return pk_err(s, "stack underflow");
        return pk_add(s, s->n_stack - 2, 1);
    case 'e': /* APPENDS */
    case 0x90: /* ADDITEMS */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        return pk_add(s, from, 0);
    case 'u': /* SETITEMS */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        return pk_add(s, from, 1);
    case '0': /* POP */
        return pk_pop(s, &v);
    case '1': /* POP_MARK */
        if ((st = pk_pop_mark(s, &from)))
            return st;
        s->n_stack = from;
        return KDC_OK;
    case '2': /* DUP */
        if ((st = pk_top(s, &v)))
            return st;
        return pk_push(s, v);
    case 'q':
        if ((st = pk_need(s, 1, &at)))
            return st;
        return pk_memo_put(s, at[0]);
    case 'r':
        if ((st = pk_need(s, 4, &at)))
            return st;
        return pk_memo_put(s, pk_le(at, 4));
    case 0x94: /* MEMOIZE */
        return pk_memo_put(s, s->n_memo);
    case 'h':
        if ((st = pk_need(s, 1, &at)))
            return st;
        return pk_memo_get(s, at[0]);
    case 'j':
        if ((st = pk_need(s, 4, &at)))
            return st;
        return pk_memo_get(s, pk_le(at, 4));
    case 'c':
        return pk_text_global(s);
    case 0x93: /* STACK_GLOBAL */
        if ((st = pk_pop(s, &b)) || (st = pk_pop(s, &a)))
            return st;
        if (!pk_is(p, a, KDC__PK_STR) || !pk_is(p, b, KDC__PK_STR))
            return pk_err(s, "STACK_GLOBAL needs two strings");
        if ((st = pk_global(p, p->values[a].u.str.s, p->values[a].u.str.n, p->values[b].u.str.s,
                            p->values[b].u.str.n, &v)))
            return st;
        return pk_push(s, v);
    case 'R': /* REDUCE */
        if ((st = pk_pop(s, &b)) || (st = pk_pop(s, &a)) || (st = pk_reduce(p, a, b, &v)))
            return st;
        return pk_push(s, v);
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args), never called */
    case 0x92: /* NEWOBJ_EX: the same with kwargs */
        if (s->op == 0x92 && (st = pk_pop(s, &c)))
            return st;
        if ((st = pk_pop(s, &b)) || (st = pk_pop(s, &a)))
            return st;
        if ((st = pk_opaque(p, &v, "an object of class %s", kdc__pickle_describe(p, a))))
            return st;
        return pk_push(s, v);
    case 'b': /* BUILD: sets the state of the object below; ignored */
        if ((st = pk_pop(s, &b)))
            return st;
        return pk_top(s, &a);
    case 'Q': /* BINPERSID */
        if ((st = pk_pop(s, &a)) || (st = pk_persistent(p, a, &v)))
            return st;
        return pk_push(s, v);
    default:
        return pk_err(s, "unsupported opcode (only protocols 2 to 5 without extensions or "
                      "out-of-band buffers are read)");
    }
}

kdc_status kdc__pickle_load(kdc__pickle *p, const unsigned char *buf, size_t len, size_t *used,
                            uint32_t *root)
{
    pk_state s;
    kdc_status st = KDC_OK;
    int stop = 0;

    memset(&s, 0, sizeof s);
    s.p = p;
    s.buf = buf;
    s.len = len;
    while (!stop && !st)
        st = pk_step(&s, &stop);
    if (!st) {
        if (s.n_stack != 1 || s.n_marks)
            st = pk_err(&s, "STOP with more or less than one value on the stack");
        else {
            *root = s.stack[0];
            *used = s.pos;
        }
    }
    free(s.stack);
    free(s.marks);
    free(s.memo);
    return st;
}
