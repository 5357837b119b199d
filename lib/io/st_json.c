/* st_json.c - a strict JSON parser (RFC 8259) for safetensors headers, into
 * the tree of st_json.h, and the UTF-8 and integer checks the schema needs.
 * It never reads outside the header and limits nesting to
 * ST_JSON_MAX_DEPTH, so its recursion is bounded. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_json.h"

#define ST_JSON_MAX_DEPTH 64
/* Memory the header's JSON tree may take (docs/security.md). A tensor entry
 * costs about 1 KB, so this holds some 60,000 tensors; a hostile header of
 * 100 MB of "[0,0,0,..." would otherwise need gigabytes. */
#define ST_JSON_MAX_TREE (64u << 20)
/* What one allocation costs beyond its size (malloc's bookkeeping). */
#define ST_JSON_ALLOC_OVERHEAD 16u

void kdc__st_json_free(struct st_json *v)
{
    size_t i;

    if (v->type == ST_JSON_STRING) {
        free(v->u.str);
    } else if (v->type == ST_JSON_ARRAY || v->type == ST_JSON_OBJECT) {
        for (i = 0; i < v->u.list.n; i++) {
            kdc__st_json_free(&v->u.list.items[i]);
            if (v->u.list.keys)
                free(v->u.list.keys[i]);
        }
        free(v->u.list.items);
        free(v->u.list.keys);
    }
    v->type = ST_JSON_NULL;
}

static kdc_status st_json_error(struct st_json_parser *jp, const char *what)
{
    return kdc__fail(KDC_ERR_FORMAT, "%s: header is not valid JSON: %s at header byte %zu",
                     jp->path, what, jp->pos);
}

static kdc_status st_json_nomem(struct st_json_parser *jp)
{
    return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory parsing the header", jp->path);
}

/* Counts an allocation of bytes (a new block, or what a realloc adds)
 * against ST_JSON_MAX_TREE before it is made. */
static kdc_status st_json_charge(struct st_json_parser *jp, size_t bytes)
{
    const size_t max = jp->max_tree ? jp->max_tree : ST_JSON_MAX_TREE;
    if (bytes > max - jp->tree_bytes || ST_JSON_ALLOC_OVERHEAD > max - jp->tree_bytes - bytes)
        return kdc__fail(KDC_ERR_FORMAT,
                         "%s: header JSON needs more than %zu MiB of memory to parse (stopped at "
                         "header byte %zu of %zu)",
                         jp->path, max >> 20, jp->pos, jp->len);
    jp->tree_bytes += bytes + ST_JSON_ALLOC_OVERHEAD;
    return KDC_OK;
}

static void st_json_skip_ws(struct st_json_parser *jp)
{
    while (jp->pos < jp->len) {
        unsigned char c = jp->s[jp->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        jp->pos++;
    }
}

static int st_hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static size_t st_utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses the string at jp->pos (which is '"') into a new NUL-terminated
 * buffer. The header was already checked to be valid UTF-8, so bytes >= 0x80
 * are copied as they are. \u0000 is refused: names and values are C strings. */
static kdc_status st_json_string(struct st_json_parser *jp, char **out)
{
    size_t start = jp->pos + 1, end = start, i, o = 0;
    char *buf;

    *out = NULL;
    /* Find the closing quote first; a backslash always skips the next byte,
     * so inside [start, end) every backslash has a byte after it. */
    while (end < jp->len && jp->s[end] != '"') {
        if (jp->s[end] < 0x20) {
            jp->pos = end;
            return st_json_error(jp, "control character in a string");
        }
        end += jp->s[end] == '\\' ? 2 : 1;
    }
    if (end >= jp->len) {
        jp->pos = jp->len;
        return st_json_error(jp, "unterminated string");
    }

    /* Escapes only shrink, so the raw length bounds the decoded one. */
    if (st_json_charge(jp, end - start + 1) != KDC_OK)
        return KDC_ERR_FORMAT;
    buf = malloc(end - start + 1);
    if (!buf)
        return st_json_nomem(jp);

    for (i = start; i < end;) {
        unsigned char c = jp->s[i];
        unsigned cp, lo;

        if (c != '\\') {
            buf[o++] = (char)c;
            i++;
            continue;
        }
        jp->pos = i;
        switch (jp->s[i + 1]) {
        case '"': buf[o++] = '"'; i += 2; continue;
        case '\\': buf[o++] = '\\'; i += 2; continue;
        case '/': buf[o++] = '/'; i += 2; continue;
        case 'b': buf[o++] = '\b'; i += 2; continue;
        case 'f': buf[o++] = '\f'; i += 2; continue;
        case 'n': buf[o++] = '\n'; i += 2; continue;
        case 'r': buf[o++] = '\r'; i += 2; continue;
        case 't': buf[o++] = '\t'; i += 2; continue;
        case 'u': break;
        default:
            free(buf);
            return st_json_error(jp, "invalid escape in a string");
        }
        if (end - i < 6 || !st_hex4(jp->s + i + 2, &cp)) {
            free(buf);
            return st_json_error(jp, "invalid \\u escape in a string");
        }
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* A high surrogate must be followed by an escaped low one. */
            if (end - i < 6 || jp->s[i] != '\\' || jp->s[i + 1] != 'u' ||
                !st_hex4(jp->s + i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                free(buf);
                return st_json_error(jp, "unpaired surrogate in a string");
            }
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(buf);
            return st_json_error(jp, "unpaired surrogate in a string");
        } else if (cp == 0) {
            free(buf);
            return st_json_error(jp, "\\u0000 in a string (not supported)");
        }
        o += st_utf8_encode(cp, buf + o);
    }
    buf[o] = '\0';
    jp->pos = end + 1;
    *out = buf;
    return KDC_OK;
}

/* Checks the JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static kdc_status st_json_number(struct st_json_parser *jp, struct st_json *v)
{
    const unsigned char *s = jp->s;
    size_t p = jp->pos, len = jp->len;

#define ST_DIGIT(i) ((i) < len && s[i] >= '0' && s[i] <= '9')
    if (p < len && s[p] == '-')
        p++;
    if (p < len && s[p] == '0') {
        p++;
    } else if (ST_DIGIT(p)) {
        while (ST_DIGIT(p))
            p++;
    } else {
        jp->pos = p;
        return st_json_error(jp, "invalid number");
    }
    if (p < len && s[p] == '.') {
        p++;
        if (!ST_DIGIT(p)) {
            jp->pos = p;
            return st_json_error(jp, "invalid number");
        }
        while (ST_DIGIT(p))
            p++;
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < len && (s[p] == '+' || s[p] == '-'))
            p++;
        if (!ST_DIGIT(p)) {
            jp->pos = p;
            return st_json_error(jp, "invalid number");
        }
        while (ST_DIGIT(p))
            p++;
    }
#undef ST_DIGIT
    v->type = ST_JSON_NUMBER;
    v->u.num.text = (const char *)s + jp->pos;
    v->u.num.len = p - jp->pos;
    jp->pos = p;
    return KDC_OK;
}

/* Appends child (and key, for objects) to a list; takes ownership of both
 * only on success. */
static kdc_status st_json_append(struct st_json_parser *jp, struct st_json *list,
                                 char *key, struct st_json *child)
{
    if (list->u.list.n == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        size_t bytes;
        struct st_json *items;

        if (!kdc__mul_size(cap, sizeof *items, &bytes))
            return st_json_nomem(jp);
        /* The new blocks, counted whole: realloc may hold old and new. */
        if (st_json_charge(jp, bytes + (list->type == ST_JSON_OBJECT ? cap * sizeof(char *) : 0))
            != KDC_OK)
            return KDC_ERR_FORMAT;
        items = realloc(list->u.list.items, bytes);
        if (!items)
            return st_json_nomem(jp);
        list->u.list.items = items;
        if (list->type == ST_JSON_OBJECT) {
            char **keys;

            keys = realloc(list->u.list.keys, cap * sizeof *keys);
            if (!keys)
                return st_json_nomem(jp);
            list->u.list.keys = keys;
        }
        list->u.list.cap = cap;
    }
    list->u.list.items[list->u.list.n] = *child;
    if (list->type == ST_JSON_OBJECT)
        list->u.list.keys[list->u.list.n] = key;
    list->u.list.n++;
    return KDC_OK;
}

static kdc_status st_json_value(struct st_json_parser *jp, struct st_json *v, int depth);

/* Arrays and objects. v is always left freeable, also on error. */
static kdc_status st_json_list(struct st_json_parser *jp, struct st_json *v, int depth,
                               int is_object)
{
    unsigned char close = is_object ? '}' : ']';
    kdc_status st;

    if (depth > ST_JSON_MAX_DEPTH)
        return st_json_error(jp, "nesting deeper than 64 levels");
    v->type = is_object ? ST_JSON_OBJECT : ST_JSON_ARRAY;
    v->u.list.items = NULL;
    v->u.list.keys = NULL;
    v->u.list.n = 0;
    v->u.list.cap = 0;
    jp->pos++;

    st_json_skip_ws(jp);
    if (jp->pos < jp->len && jp->s[jp->pos] == close) {
        jp->pos++;
        return KDC_OK;
    }
    for (;;) {
        struct st_json child = { .type = ST_JSON_NULL };
        char *key = NULL;

        if (is_object) {
            st_json_skip_ws(jp);
            if (jp->pos >= jp->len || jp->s[jp->pos] != '"')
                return st_json_error(jp, "expected a string key");
            st = st_json_string(jp, &key);
            if (st != KDC_OK)
                return st;
            st_json_skip_ws(jp);
            if (jp->pos >= jp->len || jp->s[jp->pos] != ':') {
                st = st_json_error(jp, "expected ':'");
                goto free_key;
            }
            jp->pos++;
        }
        st = st_json_value(jp, &child, depth);
        if (st != KDC_OK)
            goto free_child;
        st = st_json_append(jp, v, key, &child);
        if (st != KDC_OK)
            goto free_child;

        st_json_skip_ws(jp);
        if (jp->pos < jp->len && jp->s[jp->pos] == ',') {
            jp->pos++;
            continue;
        }
        if (jp->pos < jp->len && jp->s[jp->pos] == close) {
            jp->pos++;
            return KDC_OK;
        }
        return st_json_error(jp, is_object ? "expected ',' or '}'" : "expected ',' or ']'");

free_child:
        kdc__st_json_free(&child);
free_key:
        free(key);
        return st;
    }
}

static int st_json_literal(struct st_json_parser *jp, const char *word)
{
    size_t n = strlen(word);

    if (jp->len - jp->pos < n || memcmp(jp->s + jp->pos, word, n) != 0)
        return 0;
    jp->pos += n;
    return 1;
}

static kdc_status st_json_value(struct st_json_parser *jp, struct st_json *v, int depth)
{
    unsigned char c;

    v->type = ST_JSON_NULL;
    st_json_skip_ws(jp);
    if (jp->pos >= jp->len)
        return st_json_error(jp, "unexpected end of header");
    c = jp->s[jp->pos];
    switch (c) {
    case '{':
        return st_json_list(jp, v, depth + 1, 1);
    case '[':
        return st_json_list(jp, v, depth + 1, 0);
    case '"': {
        char *s;
        kdc_status st = st_json_string(jp, &s);
        if (st != KDC_OK)
            return st;
        v->type = ST_JSON_STRING;
        v->u.str = s;
        return KDC_OK;
    }
    case 't':
    case 'f':
        if (st_json_literal(jp, c == 't' ? "true" : "false")) {
            v->type = ST_JSON_BOOL;
            v->u.boolean = c == 't';
            return KDC_OK;
        }
        return st_json_error(jp, "invalid literal");
    case 'n':
        if (st_json_literal(jp, "null"))
            return KDC_OK;
        return st_json_error(jp, "invalid literal");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return st_json_number(jp, v);
        return st_json_error(jp, "unexpected character");
    }
}

/* Parses the whole header into *root (freeable on every path). Trailing
 * whitespace (the padding writers add) is allowed, anything else is not. */
kdc_status kdc__st_json_parse(const char *path, const unsigned char *s, size_t len,
                              struct st_json *root)
{
    return kdc__st_json_parse_limit(path, s, len, 0, root);
}

kdc_status kdc__st_json_parse_limit(const char *path, const unsigned char *s, size_t len,
                                    size_t max_tree, struct st_json *root)
{
    struct st_json_parser jp = { .path = path, .s = s, .len = len, .pos = 0,
                                 .max_tree = max_tree };
    kdc_status st;

    st = st_json_value(&jp, root, 0);
    if (st != KDC_OK)
        return st;
    st_json_skip_ws(&jp);
    if (jp.pos != jp.len)
        return st_json_error(&jp, "trailing characters after the top-level value");
    return KDC_OK;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
 * Returns the offset of the first bad byte, or len if all is well. */
size_t kdc__st_utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n, k;
        unsigned char lo = 0x80, hi = 0xBF; /* range of the 2nd byte */

        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return i;
        }
        if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (k = 2; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += n;
    }
    return len;
}


enum st_int_result kdc__st_json_uint(const struct st_json *v, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    size_t i;

    if (v->type != ST_JSON_NUMBER)
        return ST_INT_NOT_NUMBER;
    if (v->u.num.text[0] == '-')
        return ST_INT_NEGATIVE;
    for (i = 0; i < v->u.num.len; i++)
        if (v->u.num.text[i] < '0' || v->u.num.text[i] > '9')
            return ST_INT_FRACTION;
    for (i = 0; i < v->u.num.len; i++) {
        unsigned d = (unsigned)(v->u.num.text[i] - '0');
        if (d > max || x > (max - d) / 10) /* x * 10 + d > max, without wrapping */
            return ST_INT_RANGE;
        x = x * 10 + d;
    }
    *out = x;
    return ST_INT_OK;
}

const struct st_json *kdc__st_json_get(const struct st_json *obj, const char *key)
{
    if (!obj || obj->type != ST_JSON_OBJECT)
        return NULL;
    for (size_t i = obj->u.list.n; i-- > 0;)
        if (!strcmp(obj->u.list.keys[i], key))
            return &obj->u.list.items[i];
    return NULL;
}

/* The number's text as a C string in buf (JSON's grammar is a subset of
 * strtod's and strtoll's), or -1 if it does not fit. */
static int st_json_number_text(const struct st_json *v, char *buf, size_t size)
{
    if (!v || v->type != ST_JSON_NUMBER || v->u.num.len >= size)
        return -1;
    memcpy(buf, v->u.num.text, v->u.num.len);
    buf[v->u.num.len] = '\0';
    return 0;
}

int kdc__st_json_double(const struct st_json *v, double *out)
{
    char buf[400], *end;
    if (st_json_number_text(v, buf, sizeof buf))
        return -1;
    errno = 0;
    double x = strtod(buf, &end);
    /* overflow gives inf (refused); underflow gives a subnormal or 0, as
     * Python's float() does */
    if (*end || !isfinite(x))
        return -1;
    *out = x;
    return 0;
}

int kdc__st_json_int64(const struct st_json *v, int64_t *out)
{
    char buf[32], *end;
    if (st_json_number_text(v, buf, sizeof buf))
        return -1;
    for (const char *c = buf; *c; c++)
        if (*c == '.' || *c == 'e' || *c == 'E')
            return -1;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (*end || errno == ERANGE)
        return -1;
    *out = (int64_t)x;
    return 0;
}

char *kdc__st_json_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = cap > n ? realloc(buf, cap) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}
