/* cmd_merge.c - kdcam merge: the shard folders of `kdcam analyze --shard
 * I/N` into one folder whose rows.jsonl is the one a single run writes
 * (same lines, same order) and whose summary is computed from it, so it
 * equals the single run's to the last bit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze.h"
#include "commands.h"

static const char *merge_usage =
    "usage: kdcam merge -o OUT SHARD_DIR...\n"
    "Combines the output folders of `kdcam analyze --shard I/N` (I = 0 .. N-1, all\n"
    "of one analysis: same models, weights, layers, inputs and batch) into OUT:\n"
    "OUT/rows.jsonl holds every image and batch row in order, as one run writes\n"
    "it, and OUT/summary.json, cka_*.npy and cka_*.png are computed from it;\n"
    "OUT/report.html shows the shards' disagree_I.png of the images where the\n"
    "students disagree most with the teacher, copied beside it.\n"
    "  -o, --out OUT   output folder (must not hold a rows.jsonl yet)\n";

static int cmp_rows(const void *a, const void *b)
{
    const an_line *x = a, *y = b;
    const long bx = x->batch, by = y->batch;
    if (bx != by)
        return bx < by ? -1 : 1;
    if (x->type != y->type)
        return x->type - y->type; /* images before their batch row */
    return (x->index > y->index) - (x->index < y->index);
}

/* The meta line up to the shard field, which is the only one shards differ in. */
static size_t meta_common_len(const char *meta)
{
    const char *sh = strstr(meta, ",\"shard\":[");
    return sh ? (size_t)(sh - meta) : strlen(meta);
}

/* OUT/disagree_I.png from the shard that computed image I. Each shard
 * drew the grids of its own most-disagreeing images; the merged worst six
 * (ordered by Pearson r, then image index, as in every shard) are each
 * among their shard's worst six, so one shard holds each; the grid
 * depends on the image and the models only, so it is the single run's. */
static int copy_grid(const char **dirs, int nd, long idx, const char *out)
{
    char src[4200], dst[4200], tmp[4300];
    size_t len = 0;
    char *data = NULL;
    for (int d = 0; d < nd && !data; d++) {
        snprintf(src, sizeof src, "%s/disagree_%ld.png", dirs[d], idx);
        struct stat sb;
        if (!stat(src, &sb))
            data = cli_read_file(src, &len);
    }
    if (!data)
        return cli_error("no shard folder holds disagree_%ld.png (kdcam analyze draws it "
                         "at the end of a shard's run): the report would miss it", idx);
    snprintf(dst, sizeof dst, "%s/disagree_%ld.png", out, idx);
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = cli_error("%s: cannot create: %s", tmp, strerror(errno));
    } else {
        /* fclose runs whether or not the write failed */
        const int short_write = fwrite(data, 1, len, f) != len;
        if (fclose(f) != 0 || short_write)
            rc = cli_error("%s: cannot write", tmp);
        else if (rename(tmp, dst))
            rc = cli_error("%s: cannot rename: %s", tmp, strerror(errno));
    }
    if (rc && f)
        remove(tmp);
    free(data);
    return rc;
}

int cmd_merge(int argc, char **argv)
{
    const char *out = NULL;
    const char *dirs[4096];
    int nd = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(merge_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) {
            if (i + 1 >= argc)
                return cli_error("option %s needs a value (see --help)", argv[i]), 2;
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_error("unknown option %s (see --help)", argv[i]), 2;
        } else if (nd < 4096) {
            dirs[nd++] = argv[i];
        } else {
            return cli_error("at most 4096 shard folders"), 2;
        }
    }
    if (!out || nd < 1)
        return cli_error("usage: kdcam merge -o OUT SHARD_DIR... (see --help)"), 2;
    an_rows *r = calloc((size_t)nd, sizeof *r);
    an_line *all = NULL;
    char path[4200], tmp[4300];
    int rc = 0, nall = 0, nread = 0;
    if (!r)
        return cli_error("out of memory");
    for (; nread < nd && !rc; nread++) {
        snprintf(path, sizeof path, "%s/%s", dirs[nread], AN_ROWS);
        rc = an_rows_read(path, &r[nread], 1);
    }
    if (rc) {
        nread--;
        goto done;
    }
    const long N = r[0].nshards, B = r[0].batch, images = r[0].images;
    const long nbatches = (images + B - 1) / B;
    char *seen = calloc((size_t)N, 1);
    if (!seen) {
        rc = cli_error("out of memory");
        goto done;
    }
    const size_t common = meta_common_len(r[0].meta);
    for (int d = 0; d < nd && !rc; d++) {
        if (meta_common_len(r[d].meta) != common || strncmp(r[d].meta, r[0].meta, common))
            rc = cli_error("%s and %s are shards of different analyses (models, weights, layers, "
                           "inputs or batch differ)", dirs[0], dirs[d]);
        else if (r[d].nshards != N)
            rc = cli_error("%s is shard %ld/%ld, %s is of %ld shards", dirs[d], r[d].shard,
                           r[d].nshards, dirs[0], N);
        else if (seen[r[d].shard]++)
            rc = cli_error("%s: shard %ld/%ld is given twice", dirs[d], r[d].shard, N);
        long want = 0, got = r[d].nbatches;
        for (long b = r[d].shard; b < nbatches; b += N)
            want++;
        if (!rc && got != want)
            rc = cli_error("%s: shard %ld/%ld is incomplete: %ld of its %ld batches (finish it "
                           "with --resume)", dirs[d], r[d].shard, N, got, want);
        nall += r[d].nlines;
    }
    for (long s = 0; s < N && !rc; s++)
        if (!seen[s])
            rc = cli_error("shard %ld/%ld is missing", s, N);
    free(seen);
    if (rc)
        goto done;
    if (!(all = malloc((size_t)(nall ? nall : 1) * sizeof *all))) {
        rc = cli_error("out of memory");
        goto done;
    }
    nall = 0;
    for (int d = 0; d < nd; d++)
        for (int i = 0; i < r[d].nlines; i++)
            all[nall++] = r[d].lines[i];
    qsort(all, (size_t)nall, sizeof *all, cmp_rows);
    struct stat sb;
    if ((rc = cli_prepare_out_dir(out)))
        goto done;
    snprintf(path, sizeof path, "%s/%s", out, AN_ROWS);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", out, AN_ROWS);
    if (!stat(path, &sb)) {
        rc = cli_error("%s exists: merge into an empty folder", path);
        goto done;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = cli_error("%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    fprintf(f, "%.*s,\"shard\":[0,1]}\n", (int)common, r[0].meta);
    for (int i = 0; i < nall; i++)
        fprintf(f, "%s\n", all[i].text);
    if (fclose(f)) {
        remove(tmp);
        rc = cli_error("%s: cannot write", tmp);
    } else if (rename(tmp, path)) {
        remove(tmp);
        rc = cli_error("%s: cannot rename: %s", tmp, strerror(errno));
    }
    an_worst worst[AN_WORST];
    int nworst = 0;
    if (!rc)
        rc = an_summarize(out, 0, 1, worst, &nworst);
    for (int k = 0; k < nworst && !rc; k++)
        rc = copy_grid(dirs, nd, worst[k].i, out);
done:
    free(all);
    for (int d = 0; d < nread; d++)
        an_rows_free(&r[d]);
    free(r);
    return rc;
}
