/* fuzz_labels.c - the CLI's JSON reader on arbitrary bytes: labels.json of
 * `kdcam shapes` (COCO-like: classes, images with file, class and box),
 * walked the way `kdcam pointing` walks it. */
#include <stdint.h>
#include <stdlib.h>

#include "cli.h"

static void walk(const cj_value *v, int depth)
{
    if (depth > 80)
        abort(); /* the reader limits nesting to 64 */
    if (v->type == CJ_ARR || v->type == CJ_OBJ)
        for (int i = 0; i < v->n; i++)
            walk(&v->items[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[160];
    cj_value root;
    if (cj_parse((const char *)data, size, &root, err, sizeof err) == 0) {
        const cj_value *im = cj_get(&root, "images");
        walk(&root, 0);
        if (im && im->type == CJ_ARR)
            for (int i = 0; i < im->n; i++) {
                cj_get(&im->items[i], "file");
                cj_get(&im->items[i], "box");
            }
        cj_free(&root);
    }
    return 0;
}
