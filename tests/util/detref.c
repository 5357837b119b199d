/* detref.c - reading the reference detections (see detref.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "detref.h"

int dr_read(const char *path, dr_detection **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: cannot open", path);
    int n = 0, cap = 64;
    dr_detection *w = malloc((size_t)cap * sizeof *w);
    assert_non_null(w);
    dr_detection t;
    while (fscanf(f, "%lf %lf %lf %lf %lf %d %d %d %d %d", &t.box[0], &t.box[1], &t.box[2],
                  &t.box[3], &t.score, &t.label, &t.level, &t.anchor, &t.y, &t.x) == 10) {
        if (n == cap) {
            cap *= 2;
            dr_detection *g = realloc(w, (size_t)cap * sizeof *w);
            assert_non_null(g);
            w = g;
        }
        w[n++] = t;
    }
    fclose(f);
    *out = w;
    return n;
}
