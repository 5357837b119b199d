/* pickle_internal.h - what the unpickler's three files share (not
 * installed): the value arena (pickle_value.c), what it knows of torch
 * (pickle_torch.c), both used by the opcode loop (pickle.c). */
#ifndef KDC_IO_PICKLE_INTERNAL_H
#define KDC_IO_PICKLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/pickle.h"

/* pickle_value.c: the arena. */

/* Grows an array of elements of size `size` to hold one more than *n;
 * 0 when n reaches limit or memory runs out. */
int kdc__pk_grow(void **arr, uint32_t *cap, uint32_t n, size_t size, uint32_t limit);
/* A new value of kind k; its index in *out. */
kdc_status kdc__pk_new(kdc__pickle *p, kdc__pk_kind k, uint32_t *out);
/* An opaque value, described by the format fmt applied to arg. */
kdc_status kdc__pk_opaque(kdc__pickle *p, uint32_t *out, const char *fmt, const char *arg);
/* Appends item to container c, keeping depth up to date. */
kdc_status kdc__pk_append(kdc__pickle *p, uint32_t c, uint32_t item);
/* A new string or bytes value holding a copy of s[0..n). */
kdc_status kdc__pk_string(kdc__pickle *p, kdc__pk_kind k, const unsigned char *s, size_t n,
                          uint32_t *out);

/* pickle_torch.c: globals, calls and persistent ids. */

/* A new global value for module.name, marked with what calling it builds. */
kdc_status kdc__pk_global(kdc__pickle *p, const char *module, size_t ml, const char *name,
                          size_t nl, uint32_t *out);
/* Whether value v (UINT32_MAX: none) is of kind k. */
int kdc__pk_is(const kdc__pickle *p, uint32_t v, kdc__pk_kind k);
/* REDUCE: fn(*args), only for known globals; otherwise an opaque value. */
kdc_status kdc__pk_reduce(kdc__pickle *p, uint32_t fn, uint32_t args, uint32_t *out);
/* BINPERSID: a torch storage from its persistent id, or an opaque value. */
kdc_status kdc__pk_persistent(kdc__pickle *p, uint32_t pid, uint32_t *out);

#endif /* KDC_IO_PICKLE_INTERNAL_H */
