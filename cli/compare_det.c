/* compare_det.c - `kdcam compare --detection K --summary`: per student, the
 * teacher's detections it finds again (one to one, same class, box IoU >=
 * 0.5), and for the detection each image's maps explain, its box IoU with
 * the teacher's and how alike the two maps are; summed over the images and
 * printed as one table at the end (docs/cli.md). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "compare_det.h"

double cmp_det_box_iou(const float *a, const float *b)
{
    const double w = (a[2] < b[2] ? a[2] : b[2]) - (a[0] > b[0] ? a[0] : b[0]);
    const double h = (a[3] < b[3] ? a[3] : b[3]) - (a[1] > b[1] ? a[1] : b[1]);
    if (w <= 0 || h <= 0)
        return 0;
    const double i = w * h;
    return i / ((double)(a[2] - a[0]) * (a[3] - a[1]) + (double)(b[2] - b[0]) * (b[3] - b[1]) - i);
}

long cmp_det_match(const kdc_detection *t, int nt, const kdc_detection *s, int ns, float thresh,
                   long *n_t, long *n_s)
{
    unsigned char *used = calloc((size_t)(ns > 0 ? ns : 1), 1);
    long matched = 0;
    *n_t = *n_s = 0;
    if (!used)
        return -1;
    for (int j = 0; j < ns; j++)
        *n_s += s[j].score >= thresh;
    for (int i = 0; i < nt; i++) {
        if (t[i].score < thresh)
            continue;
        ++*n_t;
        int best = -1;
        double bv = 0.5;
        for (int j = 0; j < ns; j++) {
            if (used[j] || s[j].score < thresh || s[j].label != t[i].label)
                continue;
            const double v = cmp_det_box_iou(t[i].box, s[j].box);
            if (v >= bv) {
                bv = v;
                best = j;
            }
        }
        if (best >= 0) {
            used[best] = 1;
            matched++;
        }
    }
    free(used);
    return matched;
}

int cmp_det_add(cmp_det_stats *st, const kdc_detection *t, int nt, const kdc_detection *s,
                int ns, float thresh, const kdc_detection *tdet, const kdc_detection *sdet,
                double box_iou, double pearson, double iou20)
{
    long a, b, m = cmp_det_match(t, nt, s, ns, thresh, &a, &b);
    if (m < 0)
        return cli_error("out of memory");
    st->images++;
    st->box_iou += box_iou;
    st->same += sdet->label == tdet->label && box_iou >= 0.5;
    st->pearson += pearson;
    st->iou20 += iou20;
    st->teacher_dets += a;
    st->dets += b;
    st->matched += m;
    return 0;
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

void cmp_det_print(char names[][128], const cmp_det_stats *st, int nm, float thresh, int json)
{
    if (nm < 1 || st[0].images < 1)
        return;
    if (json) {
        for (int i = 0; i < nm; i++) {
            printf("{\"summary\":true,\"model\":");
            cli_json_string(names[i]);
            printf(",\"images\":%ld,\"score_thresh\":%.6g,\"detections\":%ld", st[i].images,
                   (double)thresh, st[i].dets);
            if (i == 0)
                printf(",\"teacher\":true}\n");
            else
                printf(",\"teacher_detections\":%ld,\"matched\":%ld,\"matched_fraction\":%.6f,"
                       "\"top_same\":%.6f,\"top_box_iou\":%.6f,\"pearson\":%.6f,\"iou20\":%.6f}\n",
                       st[i].teacher_dets, st[i].matched,
                       ratio((double)st[i].matched, (double)st[i].teacher_dets),
                       ratio((double)st[i].same, (double)st[i].images),
                       st[i].box_iou / st[i].images, st[i].pearson / st[i].images,
                       st[i].iou20 / st[i].images);
        }
        return;
    }
    printf("\nagreement with %s over %ld images (detections with score >= %.2f; matched: the\n"
           "teacher's detections found again one to one, same class and box IoU >= 0.5;\n"
           "explained detection: the one the maps explain, the teacher's --detection K and\n"
           "each student's of best box IoU with it)\n", names[0], st[0].images, (double)thresh);
    printf("  %-28s %10s %20s %10s %8s %8s %8s\n", "model", "detections", "matched teacher's",
           "same det.", "box IoU", "map r", "IoU20");
    for (int i = 0; i < nm; i++) {
        if (i == 0) {
            printf("  %-28.28s %10ld %20s %10s %8s %8s %8s\n", names[0], st[0].dets, "(teacher)",
                   "-", "-", "-", "-");
            continue;
        }
        char m[64];
        snprintf(m, sizeof m, "%ld/%ld %.1f%%", st[i].matched, st[i].teacher_dets,
                 100.0 * ratio((double)st[i].matched, (double)st[i].teacher_dets));
        printf("  %-28.28s %10ld %20s %9.1f%% %8.3f %8.3f %8.3f\n", names[i], st[i].dets, m,
               100.0 * ratio((double)st[i].same, (double)st[i].images),
               st[i].box_iou / st[i].images, st[i].pearson / st[i].images,
               st[i].iou20 / st[i].images);
    }
}
