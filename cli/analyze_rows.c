/* analyze_rows.c - reading a rows file of kdcam analyze (analyze.h) back:
 * the meta line, then image and batch lines up to the last batch line (what
 * follows it is an interrupted batch and is dropped). */
#include <stdio.h>
#include <sys/types.h>
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

int an_rows_read(const char *path, an_rows *r, int keep)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: cannot read", path);
    char *line = NULL, err[160];
    size_t lcap = 0;
    ssize_t got;
    long pos = 0;
    int rc = 0, cap = 0, lineno = 0, last_batch = -1;
    while (!rc && (got = getline(&line, &lcap, f)) > 0) {
        if (line[got - 1] != '\n')
            break; /* an unfinished last line */
        const size_t ll = (size_t)got - 1;
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
            const long b = t == AN_BATCH ? idx : idx / r->batch;
            if (b < r->last_batch) {
                rc = cli_error("%s:%d: rows out of batch order", path, lineno);
                break;
            }
            if (keep) {
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
                L->batch = b;
                r->nlines++;
            }
            if (t == AN_BATCH) {
                last_batch = r->nlines - 1;
                r->last_batch = b;
                r->nbatches++;
                r->complete_bytes = pos + (long)ll + 1;
            }
        }
        pos += (long)ll + 1;
    }
    free(line);
    fclose(f);
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
