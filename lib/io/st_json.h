/* st_json.h - the strict JSON reader of safetensors headers (st_json.c;
 * internal): the header is parsed into a small tree before any schema rule
 * is looked at, so syntax errors are reported as such. */
#ifndef KDC_ST_JSON_H
#define KDC_ST_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

enum st_json_type {
    ST_JSON_NULL,
    ST_JSON_BOOL,
    ST_JSON_NUMBER,
    ST_JSON_STRING,
    ST_JSON_ARRAY,
    ST_JSON_OBJECT
};

struct st_json {
    enum st_json_type type;
    union {
        int boolean;
        struct {              /* raw text in the header; grammar checked */
            const char *text;
            size_t len;
        } num;
        char *str;            /* decoded UTF-8, NUL-terminated, no NUL inside */
        struct {              /* arrays and objects                          */
            struct st_json *items;
            char **keys;      /* objects only: one key per item, in order    */
            size_t n, cap;
        } list;
    } u;
};

struct st_json_parser {
    const char *path;
    const unsigned char *s; /* the header, not NUL-terminated */
    size_t len, pos;
    size_t tree_bytes;      /* allocated for the tree so far (a bound) */
    size_t max_tree;        /* its limit; 0: ST_JSON_MAX_TREE (64 MiB) */
};

/* Integer value of a JSON number: 0 ok, else why not. */
enum st_int_result {
    ST_INT_OK,
    ST_INT_NOT_NUMBER,
    ST_INT_NEGATIVE,
    ST_INT_FRACTION,
    ST_INT_RANGE
};

/* Frees what v holds (v itself belongs to the caller). */
void kdc__st_json_free(struct st_json *v);

/* Parses the whole header into *root (freeable on every path). Trailing
 * whitespace (the padding writers add) is allowed, anything else is not. */
kdc_status kdc__st_json_parse(const char *path, const unsigned char *s, size_t len,
                              struct st_json *root);

/* kdc__st_json_parse with another limit on the tree's memory (0: the
 * default, 64 MiB), for files larger than a safetensors header. */
kdc_status kdc__st_json_parse_limit(const char *path, const unsigned char *s, size_t len,
                                    size_t max_tree, struct st_json *root);

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
 * Returns the offset of the first bad byte, or len if all is well. */
size_t kdc__st_utf8_check(const unsigned char *s, size_t len);

enum st_int_result kdc__st_json_uint(const struct st_json *v, uint64_t max, uint64_t *out);

/* The member of an object named key (the last, if repeated, as Python's
 * json module reads it), or NULL if obj is not an object or has none. */
const struct st_json *kdc__st_json_get(const struct st_json *obj, const char *key);

/* A number as a finite double (strtod of its text; -1 if v is not a number
 * or overflows), or as an integer in int64 range (-1 if it has a fraction
 * or exponent part, or is out of range). 0 on success. */
int kdc__st_json_double(const struct st_json *v, double *out);
int kdc__st_json_int64(const struct st_json *v, int64_t *out);

/* A whole file in a malloc'd buffer (not NUL-terminated; *len bytes), or
 * NULL with errno set (ENOMEM, EIO, or fopen's). */
char *kdc__st_json_read_file(const char *path, size_t *len);

#endif /* KDC_ST_JSON_H */
