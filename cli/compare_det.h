/* compare_det.h - `kdcam compare --detection K --summary`: how far each
 * detector agrees with the first (the teacher) over a whole set of images. */
#ifndef KDCAM_CLI_COMPARE_DET_H
#define KDCAM_CLI_COMPARE_DET_H

#include "kdcam.h"

/* One model's sums over the images seen. */
typedef struct cmp_det_stats {
    long images;
    double box_iou;      /* IoU of its explained detection with the teacher's */
    long same;           /* images where that detection has the teacher's class
                            and box IoU >= 0.5                                */
    double pearson;      /* Pearson r of its map with the teacher's           */
    double iou20;        /* IoU of the top 20% of the two maps                */
    long teacher_dets;   /* the teacher's detections with score >= thresh     */
    long dets;           /* its own detections with score >= thresh           */
    long matched;        /* teacher's detections it matches, one to one: same
                            class, box IoU >= 0.5, best IoU first             */
} cmp_det_stats;

/* IoU of two boxes x0, y0, x1, y1 (0 when they do not overlap). */
double cmp_det_box_iou(const float *a, const float *b);

/* Greedy one-to-one matching of the teacher's detections t (best first)
 * to s: each teacher detection with score >= thresh takes the unmatched
 * detection of s with score >= thresh, the same label and the largest box
 * IoU >= 0.5. Returns the number matched; *nt and *ns get the detections
 * at or above thresh. -1 when out of memory. */
long cmp_det_match(const kdc_detection *t, int nt, const kdc_detection *s, int ns, float thresh,
                   long *n_t, long *n_s);

/* Adds one image: the teacher's and this model's detections (all of
 * them, best first), the detection each explained, their box IoU, and
 * the two maps' Pearson r and IoU20. Returns 0, or 1 after an error. */
int cmp_det_add(cmp_det_stats *st, const kdc_detection *t, int nt, const kdc_detection *s,
                int ns, float thresh, const kdc_detection *tdet, const kdc_detection *sdet,
                double box_iou, double pearson, double iou20);

/* Prints the table (or, with json, one object per model) of nm models;
 * model 0 is the teacher. */
void cmp_det_print(char names[][128], const cmp_det_stats *st, int nm, float thresh, int json);

#endif
