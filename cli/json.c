/* json.c - a small strict JSON reader for the files the CLI reads back
 * (labels.json of `kdcam shapes`). RFC 8259 values into a tree; strings
 * are decoded (escapes, \u incl. surrogate pairs) to UTF-8; nesting is
 * limited; errors name the byte offset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CJ_MAX_DEPTH 64

typedef struct cj_parser {
    const char *s, *end;
    const char *start;
    char *err;
    size_t errsz;
} cj_parser;

static int cj_fail(cj_parser *p, const char *what)
{
    if (p->err && !p->err[0])
        snprintf(p->err, p->errsz, "%s at byte %zu", what, (size_t)(p->s - p->start));
    return -1;
}

static void cj_ws(cj_parser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int cj_hex4(cj_parser *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        if (p->s >= p->end)
            return cj_fail(p, "truncated \\u escape");
        char c = *p->s++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return cj_fail(p, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static int cj_string(cj_parser *p, char **out)
{
    p->s++; /* opening quote */
    size_t cap = 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return cj_fail(p, "out of memory");
    for (;;) {
        if (p->s >= p->end) {
            free(buf);
            return cj_fail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)*p->s++;
        char tmp[4];
        size_t k = 0;
        if (c == '"')
            break;
        if (c < 0x20) {
            free(buf);
            return cj_fail(p, "control character in string");
        }
        if (c != '\\') {
            tmp[k++] = (char)c;
        } else {
            if (p->s >= p->end) {
                free(buf);
                return cj_fail(p, "truncated escape");
            }
            char e = *p->s++;
            unsigned u = 0;
            switch (e) {
            case '"': case '\\': case '/': tmp[k++] = e; break;
            case 'b': tmp[k++] = '\b'; break;
            case 'f': tmp[k++] = '\f'; break;
            case 'n': tmp[k++] = '\n'; break;
            case 'r': tmp[k++] = '\r'; break;
            case 't': tmp[k++] = '\t'; break;
            case 'u':
                if (cj_hex4(p, &u)) {
                    free(buf);
                    return -1;
                }
                if (u >= 0xD800 && u < 0xDC00) {
                    unsigned lo;
                    if (p->end - p->s < 2 || p->s[0] != '\\' || p->s[1] != 'u') {
                        free(buf);
                        return cj_fail(p, "lone surrogate in \\u escape");
                    }
                    p->s += 2;
                    if (cj_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        free(buf);
                        return cj_fail(p, "bad surrogate pair");
                    }
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                } else if (u >= 0xDC00 && u < 0xE000) {
                    free(buf);
                    return cj_fail(p, "lone surrogate in \\u escape");
                }
                if (u == 0) {
                    free(buf);
                    return cj_fail(p, "\\u0000 in string");
                }
                if (u < 0x80) {
                    tmp[k++] = (char)u;
                } else if (u < 0x800) {
                    tmp[k++] = (char)(0xC0 | (u >> 6));
                    tmp[k++] = (char)(0x80 | (u & 0x3F));
                } else if (u < 0x10000) {
                    tmp[k++] = (char)(0xE0 | (u >> 12));
                    tmp[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                    tmp[k++] = (char)(0x80 | (u & 0x3F));
                } else {
                    tmp[k++] = (char)(0xF0 | (u >> 18));
                    tmp[k++] = (char)(0x80 | ((u >> 12) & 0x3F));
                    tmp[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                    tmp[k++] = (char)(0x80 | (u & 0x3F));
                }
                break;
            default:
                free(buf);
                return cj_fail(p, "bad escape in string");
            }
        }
        if (n + k + 1 > cap) {
            cap = 2 * cap + k;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return cj_fail(p, "out of memory");
            }
            buf = nb;
        }
        memcpy(buf + n, tmp, k);
        n += k;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int cj_value_parse(cj_parser *p, cj_value *v, int depth);

static int cj_push(cj_parser *p, cj_value *v, int *cap)
{
    if (v->n < *cap)
        return 0;
    int nc = *cap ? 2 * *cap : 8;
    cj_value *ni = realloc(v->items, (size_t)nc * sizeof *ni);
    if (!ni)
        return cj_fail(p, "out of memory");
    v->items = ni;
    if (v->type == CJ_OBJ) {
        char **nk = realloc(v->keys, (size_t)nc * sizeof *nk);
        if (!nk)
            return cj_fail(p, "out of memory");
        v->keys = nk;
    }
    *cap = nc;
    return 0;
}

static int cj_container(cj_parser *p, cj_value *v, int depth)
{
    const int obj = *p->s == '{';
    const char close = obj ? '}' : ']';
    int cap = 0;
    v->type = obj ? CJ_OBJ : CJ_ARR;
    if (depth >= CJ_MAX_DEPTH)
        return cj_fail(p, "nesting too deep");
    p->s++;
    cj_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return 0;
    }
    for (;;) {
        if (cj_push(p, v, &cap))
            return -1;
        cj_value *it = &v->items[v->n];
        memset(it, 0, sizeof *it);
        if (obj) {
            cj_ws(p);
            if (p->s >= p->end || *p->s != '"')
                return cj_fail(p, "expected a key string");
            char *key;
            if (cj_string(p, &key))
                return -1;
            for (int i = 0; i < v->n; i++)
                if (!strcmp(v->keys[i], key)) {
                    free(key);
                    return cj_fail(p, "duplicate key");
                }
            v->keys[v->n] = key;
            cj_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                v->n++; /* so the key is freed */
                return cj_fail(p, "expected ':'");
            }
            p->s++;
        }
        v->n++;
        if (cj_value_parse(p, it, depth + 1))
            return -1;
        cj_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == close) {
            p->s++;
            return 0;
        }
        return cj_fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int cj_number(cj_parser *p, cj_value *v)
{
    const char *q = p->s;
    if (q < p->end && *q == '-')
        q++;
    if (q >= p->end || *q < '0' || *q > '9')
        return cj_fail(p, "bad value");
    if (*q == '0')
        q++;
    else
        while (q < p->end && *q >= '0' && *q <= '9')
            q++;
    if (q < p->end && *q == '.') {
        q++;
        if (q >= p->end || *q < '0' || *q > '9')
            return cj_fail(p, "bad number");
        while (q < p->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < p->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < p->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= p->end || *q < '0' || *q > '9')
            return cj_fail(p, "bad number");
        while (q < p->end && *q >= '0' && *q <= '9')
            q++;
    }
    char tmp[64];
    size_t len = (size_t)(q - p->s);
    if (len >= sizeof tmp)
        return cj_fail(p, "number too long");
    memcpy(tmp, p->s, len);
    tmp[len] = '\0';
    v->type = CJ_NUM;
    v->num = strtod(tmp, NULL);
    p->s = q;
    return 0;
}

static int cj_value_parse(cj_parser *p, cj_value *v, int depth)
{
    cj_ws(p);
    if (p->s >= p->end)
        return cj_fail(p, "unexpected end of input");
    switch (*p->s) {
    case '{':
    case '[':
        return cj_container(p, v, depth);
    case '"':
        v->type = CJ_STR;
        return cj_string(p, &v->str);
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        for (int i = 0; i < 3; i++) {
            size_t l = strlen(words[i]);
            if ((size_t)(p->end - p->s) >= l && !memcmp(p->s, words[i], l)) {
                p->s += l;
                v->type = i == 2 ? CJ_NULL : CJ_BOOL;
                v->num = i == 0;
                return 0;
            }
        }
        return cj_fail(p, "bad value");
    }
    default:
        return cj_number(p, v);
    }
}

void cj_free(cj_value *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n; i++) {
        cj_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

int cj_parse(const char *text, size_t len, cj_value *out, char *err, size_t errsz)
{
    cj_parser p = {.s = text, .end = text + len, .start = text, .err = err, .errsz = errsz};
    memset(out, 0, sizeof *out);
    if (err && errsz)
        err[0] = '\0';
    if (cj_value_parse(&p, out, 0) == 0) {
        cj_ws(&p);
        if (p.s == p.end)
            return 0;
        cj_fail(&p, "trailing characters after the value");
    }
    cj_free(out);
    return -1;
}

const cj_value *cj_get(const cj_value *obj, const char *key)
{
    if (!obj || obj->type != CJ_OBJ)
        return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key))
            return &obj->items[i];
    return NULL;
}
