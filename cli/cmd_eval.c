/* cmd_eval.c - kdcam eval: COCO box mAP of a results file against an
 * instances file, the 12 numbers pycocotools' COCOeval prints (the library's
 * kdc_coco_eval_bbox), as its text or as JSON. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char *eval_usage =
    "usage: kdcam eval [--json] INSTANCES.json RESULTS.json\n"
    "COCO box evaluation, as pycocotools' COCOeval(gt, dt, \"bbox\") with its default\n"
    "parameters: AP @[IoU .50:.05:.95], AP50, AP75, AP small/medium/large, AR at\n"
    "1/10/100 detections, AR small/medium/large, -1 where there is no ground truth.\n"
    "  INSTANCES.json  ground truth: a COCO instances file (images, annotations with\n"
    "                  bbox/area/iscrowd/category_id, categories), e.g. the one\n"
    "                  `kdcam shapes --detection` writes\n"
    "  RESULTS.json    detections: a COCO results list [{\"image_id\", \"category_id\",\n"
    "                  \"bbox\": [x, y, w, h], \"score\"}, ...]\n"
    "  --json          print {\"stats\": [12 numbers], \"names\": [...], ...} with every\n"
    "                  digit, instead of pycocotools' summary lines\n";

int cmd_eval(int argc, char **argv)
{
    const char *files[2] = {NULL, NULL};
    int nf = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(eval_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_error("unknown option %s (see --help)", argv[i]), 2;
        else if (nf < 2)
            files[nf++] = argv[i];
        else
            return cli_error("too many arguments: %s (see --help)", argv[i]), 2;
    }
    if (nf != 2)
        return cli_error("usage: kdcam eval [--json] INSTANCES.json RESULTS.json (see --help)"),
               2;
    kdc_coco *gt = NULL;
    kdc_coco_box *dets = NULL;
    size_t n = 0;
    double stats[KDC_COCO_NSTATS];
    kdc_status st = kdc_coco_read(files[0], &gt);
    if (st)
        return cli_lib_error(st, NULL);
    st = kdc_coco_read_results(files[1], &dets, &n);
    if (!st)
        st = kdc_coco_eval_bbox(gt, dets, n, stats);
    int rc = 0;
    if (st) {
        rc = cli_lib_error(st, st == KDC_ERR_INVALID_ARGUMENT ? files[1] : NULL);
    } else if (json) {
        printf("{\"images\":%zu,\"categories\":%zu,\"annotations\":%zu,\"detections\":%zu,"
               "\"stats\":[",
               gt->nimages, gt->ncategories, gt->nannotations, n);
        for (int i = 0; i < KDC_COCO_NSTATS; i++)
            printf("%s%.17g", i ? "," : "", stats[i]);
        fputs("],\"names\":[", stdout);
        for (int i = 0; i < KDC_COCO_NSTATS; i++) {
            fputs(i ? "," : "", stdout);
            cli_json_string(kdc_coco_stat_name(i));
        }
        fputs("]}\n", stdout);
    } else {
        printf("%zu images, %zu categories, %zu annotations, %zu detections\n", gt->nimages,
               gt->ncategories, gt->nannotations, n);
        for (int i = 0; i < KDC_COCO_NSTATS; i++)
            printf(" %s = %0.3f\n", kdc_coco_stat_name(i), stats[i]);
    }
    kdc_free(dets);
    kdc_coco_free(gt);
    return rc;
}
