/* pickle.h - a restricted unpickler for PyTorch checkpoints (internal).
 *
 * Reads Python pickles of protocol 2 to 5 into a tree of plain values:
 * None, bools, ints, floats, strings, bytes, tuples, lists, dicts (and
 * OrderedDicts), sets (kept as lists), and tensors. It never executes
 * anything. Globals are looked up in a fixed table of the few callables a
 * state dict needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * _rebuild_parameter, _rebuild_parameter_with_state and the torch.*Storage
 * types, which only name a dtype); a call (REDUCE, NEWOBJ) of anything else,
 * or a malformed call of a known one, gives an opaque value that records
 * what it would have been ("a call to os.system"). Whoever needs a value
 * where an opaque one sits reports that record as the error, so opaque
 * parts nobody reads (optimizer state, config objects) cost nothing.
 *
 * Storages come from torch's persistent ids ('storage', torch.XStorage,
 * key, location, numel[, view]) and keep the key; resolving the key to bytes
 * is the caller's job (io/pth.c).
 *
 * Hard limits bound memory and time by the input size: nesting depth, memo
 * size, values, container sizes and the mark stack. Values live in one arena
 * and refer to each other by index, so shared and even cyclic structures
 * (which the memo allows) are freed in one go. */
#ifndef KDC_IO_PICKLE_H
#define KDC_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "safetensors.h"

#define KDC__PK_MAX_DEPTH 100
#define KDC__PK_MAX_MEMO (1u << 22)
#define KDC__PK_MAX_VALUES (1u << 22)
#define KDC__PK_MAX_ITEMS (1u << 24)
#define KDC__PK_MAX_MARKS 10000

typedef enum kdc__pk_kind {
    KDC__PK_NONE,
    KDC__PK_BOOL,
    KDC__PK_INT,
    KDC__PK_FLOAT,
    KDC__PK_STR,     /* u.str: UTF-8 as written, NUL-terminated copy     */
    KDC__PK_BYTES,
    KDC__PK_TUPLE,   /* u.list                                          */
    KDC__PK_LIST,
    KDC__PK_DICT,    /* u.list: key, value, key, value, ...             */
    KDC__PK_GLOBAL,  /* u.global: a name, never called                  */
    KDC__PK_OPAQUE,  /* u.text: what it would have been                 */
    KDC__PK_STORAGE, /* u.index into storages                          */
    KDC__PK_TENSOR   /* u.index into tensors                           */
} kdc__pk_kind;

typedef struct kdc__pk_value {
    kdc__pk_kind kind;
    uint32_t depth;          /* 0 for scalars, 1 + deepest item otherwise */
    union {
        int64_t i;
        double f;
        struct { char *s; size_t n; } str;
        struct { uint32_t *items; uint32_t n, cap; } list;
        struct { char *name; int fn; kdc__st_dtype dtype; } global;
        char *text;
        uint32_t index;
    } u;
} kdc__pk_value;

typedef struct kdc__pk_storage {
    kdc__st_dtype dtype;
    size_t elem_size;
    const char *dtype_name;  /* "F32", ...                               */
    const char *key;         /* the persistent id's key ("0", "94..."), in the arena */
    uint64_t numel;
} kdc__pk_storage;

typedef struct kdc__pk_tensor {
    uint32_t storage;        /* index into storages                      */
    uint64_t offset;         /* in elements                              */
    int ndim;
    int64_t shape[KDC__ST_MAX_DIMS];
    int64_t stride[KDC__ST_MAX_DIMS];
    uint64_t numel;
} kdc__pk_tensor;

typedef struct kdc__pickle {
    kdc__pk_value *values;
    uint32_t n_values, cap_values;
    kdc__pk_storage *storages;
    uint32_t n_storages, cap_storages;
    kdc__pk_tensor *tensors;
    uint32_t n_tensors, cap_tensors;
} kdc__pickle;

void kdc__pickle_init(kdc__pickle *p);
void kdc__pickle_free(kdc__pickle *p);

/* Unpickles one pickle from buf[0..len) into p's arena; *root is the value
 * left by STOP, *used the bytes read (several pickles may follow each
 * other, as in the legacy format). Errors (message starts with "pickle:"
 * and names the opcode and its offset): KDC_ERR_FORMAT (malformed, an
 * unsupported opcode, a limit), KDC_ERR_NO_MEMORY. */
kdc_status kdc__pickle_load(kdc__pickle *p, const unsigned char *buf, size_t len, size_t *used,
                            uint32_t *root);

/* A short description of a value's kind for messages ("a list", "a call to
 * os.system", ...). */
const char *kdc__pickle_describe(const kdc__pickle *p, uint32_t v);

#endif /* KDC_IO_PICKLE_H */
