/* pickle.c - a restricted unpickler for PyTorch checkpoints: the opcode
 * loop. The value arena is in pickle_value.c, what it knows of torch
 * (globals, storages, tensor rebuilds, persistent ids) in pickle_torch.c;
 * see pickle.h for what is and is not built. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "io/pickle_internal.h"

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
    if (!kdc__pk_grow((void **)&s->stack, &s->cap_stack, s->n_stack, sizeof *s->stack,
                      KDC__PK_MAX_VALUES))
        return s->n_stack >= KDC__PK_MAX_VALUES ? pk_err(s, "stack too deep")
                                               : kdc__fail(KDC_ERR_NO_MEMORY, "pickle: out of memory");
    s->stack[s->n_stack++] = v;
    return KDC_OK;
}

static kdc_status pk_push_new(pk_state *s, kdc__pk_kind k, uint32_t *out)
{
    kdc_status st = kdc__pk_new(s->p, k, out);
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
    kdc_status st = kdc__pk_new(s->p, k, &c);
    for (uint32_t i = from; !st && i < s->n_stack; i++)
        st = kdc__pk_append(s->p, c, s->stack[i]);
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
            kdc_status st = kdc__pk_append(s->p, c, s->stack[i]);
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
        st = kdc__pk_string(s->p, k, b, n, &v);
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
        st = kdc__pk_opaque(s->p, &v, "an integer of %s bytes or more", "9");
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
    kdc_status st = kdc__pk_global(s->p, (const char *)m, (size_t)(nl1 - m), (const char *)n,
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
        if (!kdc__pk_grow((void **)&s->marks, &s->cap_marks, s->n_marks, sizeof *s->marks,
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
        if (!kdc__pk_is(p, a, KDC__PK_STR) || !kdc__pk_is(p, b, KDC__PK_STR))
            return pk_err(s, "STACK_GLOBAL needs two strings");
        if ((st = kdc__pk_global(p, p->values[a].u.str.s, p->values[a].u.str.n,
                                 p->values[b].u.str.s, p->values[b].u.str.n, &v)))
            return st;
        return pk_push(s, v);
    case 'R': /* REDUCE */
        if ((st = pk_pop(s, &b)) || (st = pk_pop(s, &a)) || (st = kdc__pk_reduce(p, a, b, &v)))
            return st;
        return pk_push(s, v);
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args), never called */
    case 0x92: /* NEWOBJ_EX: the same with kwargs */
        if (s->op == 0x92 && (st = pk_pop(s, &c)))
            return st;
        if ((st = pk_pop(s, &b)) || (st = pk_pop(s, &a)))
            return st;
        if ((st = kdc__pk_opaque(p, &v, "an object of class %s", kdc__pickle_describe(p, a))))
            return st;
        return pk_push(s, v);
    case 'b': /* BUILD: sets the state of the object below; ignored */
        if ((st = pk_pop(s, &b)))
            return st;
        return pk_top(s, &a);
    case 'Q': /* BINPERSID */
        if ((st = pk_pop(s, &a)) || (st = kdc__pk_persistent(p, a, &v)))
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
