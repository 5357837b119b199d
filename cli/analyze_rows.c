/* analyze_rows.c - reading a rows file of kdcam analyze (analyze.h) back:
 * the meta line, then image and batch lines up to the last batch line (what
 * follows it is an interrupted batch and is dropped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"

void an_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static long num_of(const cj_value *o, const char *key, long dflt)
{
    const cj_value *v = cj_get(o, key);
    return v && v->type == CJ_NUM ? (long)v->num : dflt;
}

void an_rows_free(an_rows *r)
{
    for (int i = 0; i < r->nlines; i++)
        free(r->lines[i].text);
    free(r->lines);
    free(r->meta);
    if (r->meta)
        cj_free(&r->metav);
    memset(r, 0, sizeof *r);
}

int an_rows_read(const char *path, an_rows *r)
{
    memset(r, 0, sizeof *r);
    size_t len = 0;
    char *text = cli_read_file(path, &len), err[160];
    if (!text)
        return cli_error("%s: cannot read", path);
    int rc = 0, cap = 0, lineno = 0, last_batch = -1;
    size_t pos = 0;
    while (pos < len && !rc) {
        char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl)
            break; /* an unfinished last line */
        const size_t ll = (size_t)(nl - (text + pos));
        char *line = text + pos;
        lineno++;
        cj_value v;
        if (cj_parse(line, ll, &v, err, sizeof err)) {
            if (lineno == 1)
                rc = cli_error("%s:1: not a kdcam analyze rows file: %s", path, err);
            break; /* a torn write: what follows is not used */
        }
        const cj_value *ty = cj_get(&v, "type");
        const char *type = ty && ty->type == CJ_STR ? ty->str : "";
        if (lineno == 1) {
            if (strcmp(type, "meta")) {
                cj_free(&v);
                rc = cli_error("%s:1: not a kdcam analyze rows file (no meta line)", path);
                break;
            }
            r->metav = v;
            if (!(r->meta = strndup(line, ll))) {
                cj_free(&v);
                rc = cli_error("out of memory");
                break;
            }
            r->images = num_of(&v, "images", -1);
            r->batch = num_of(&v, "batch", -1);
            const cj_value *sh = cj_get(&v, "shard");
            if (sh && sh->type == CJ_ARR && sh->n == 2 && sh->items[0].type == CJ_NUM &&
                sh->items[1].type == CJ_NUM) {
                r->shard = (long)sh->items[0].num;
                r->nshards = (long)sh->items[1].num;
            }
            if (r->images < 1 || r->batch < 1 || r->nshards < 1 || r->shard < 0 ||
                r->shard >= r->nshards)
                rc = cli_error("%s:1: the meta line lacks images, batch or shard", path);
            r->complete_bytes = (long)(ll + 1);
        } else {
            int t = !strcmp(type, "image") ? AN_IMAGE : !strcmp(type, "batch") ? AN_BATCH : 0;
            long idx = num_of(&v, t == AN_IMAGE ? "i" : "b", -1);
            cj_free(&v);
            if (!t || idx < 0) {
                rc = cli_error("%s:%d: neither an image nor a batch row", path, lineno);
                break;
            }
            if (r->nlines == cap) {
                cap = cap ? 2 * cap : 1024;
                an_line *nlp = realloc(r->lines, (size_t)cap * sizeof *nlp);
                if (!nlp) {
                    rc = cli_error("out of memory");
                    break;
                }
                r->lines = nlp;
            }
            an_line *L = &r->lines[r->nlines];
            if (!(L->text = strndup(line, ll))) {
                rc = cli_error("out of memory");
                break;
            }
            L->type = t;
            L->index = idx;
            L->batch = t == AN_BATCH ? idx : idx / r->batch;
            r->nlines++;
            if (t == AN_BATCH) {
                last_batch = r->nlines - 1;
                r->complete_bytes = (long)(pos + ll + 1);
            }
        }
        pos += ll + 1;
    }
    free(text);
    if (!rc && !r->meta)
        rc = cli_error("%s: empty (no meta line)", path);
    if (rc) {
        an_rows_free(r);
        return rc;
    }
    /* drop the image rows of an interrupted batch */
    for (int i = last_batch + 1; i < r->nlines; i++)
        free(r->lines[i].text);
    r->nlines = last_batch + 1;
    return 0;
}
