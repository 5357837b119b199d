/* fuzz_coco.c - the COCO readers and box evaluation on arbitrary bytes:
 * the input up to its first NUL byte is read as an instances file
 * (kdc_coco_read), the rest as a results file (kdc_coco_read_results), and
 * if both read, they are evaluated (kdc_coco_eval_bbox), as `kdcam eval`
 * does. Seeds: tests/fuzz/corpus/coco/ (the fixtures of test_coco.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"
#include "kdcam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t ng = nul ? (size_t)(nul - data) : size;
    const char *path = fuzz_file(data, ng);
    kdc_coco *gt = NULL;
    if (!path || kdc_coco_read(path, &gt) != KDC_OK)
        return 0;
    kdc_coco_box *dets = NULL;
    size_t n = 0;
    path = nul ? fuzz_file(nul + 1, size - ng - 1) : NULL;
    if (path && kdc_coco_read_results(path, &dets, &n) == KDC_OK &&
        gt->nimages * gt->ncategories <= 100000) {
        double stats[KDC_COCO_NSTATS];
        if (kdc_coco_eval_bbox(gt, dets, n, stats) == KDC_OK)
            for (int i = 0; i < KDC_COCO_NSTATS; i++)
                if (!(stats[i] == -1.0 || (stats[i] >= 0.0 && stats[i] <= 1.0 + 1e-12)))
                    abort(); /* AP and AR are means of precisions and recalls */
    }
    kdc_free(dets);
    kdc_coco_free(gt);
    return 0;
}
