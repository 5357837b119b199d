/* pickle_value.c - the unpickler's value arena: init and free, growing
 * arrays, new values (opaque ones, strings), appending to containers, and
 * describing a value for messages. See pickle.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "io/pickle_internal.h"

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
int kdc__pk_grow(void **arr, uint32_t *cap, uint32_t n, size_t size, uint32_t limit)
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
kdc_status kdc__pk_new(kdc__pickle *p, kdc__pk_kind k, uint32_t *out)
{
    if (p->n_values >= KDC__PK_MAX_VALUES)
        return kdc__fail(KDC_ERR_FORMAT, "pickle: more than %u values", KDC__PK_MAX_VALUES);
    if (!kdc__pk_grow((void **)&p->values, &p->cap_values, p->n_values, sizeof *p->values,
                      KDC__PK_MAX_VALUES))
        return kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory for values");
    kdc__pk_value *v = &p->values[p->n_values];
    memset(v, 0, sizeof *v);
    v->kind = k;
    *out = p->n_values++;
    return KDC_OK;
}

/* An opaque value, described by the format fmt applied to arg. */
kdc_status kdc__pk_opaque(kdc__pickle *p, uint32_t *out, const char *fmt, const char *arg)
{
    kdc_status st = kdc__pk_new(p, KDC__PK_OPAQUE, out);
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
kdc_status kdc__pk_append(kdc__pickle *p, uint32_t c, uint32_t item)
{
    kdc__pk_value *v = &p->values[c];
    if (!kdc__pk_grow((void **)&v->u.list.items, &v->u.list.cap, v->u.list.n, sizeof(uint32_t),
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

kdc_status kdc__pk_string(kdc__pickle *p, kdc__pk_kind k, const unsigned char *s, size_t n,
                          uint32_t *out)
{
    kdc_status st = kdc__pk_new(p, k, out);
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
