/* detref.h - the reference detections of the detection fixtures: one line
 * per detection, best first, "x1 y1 x2 y2 score label level anchor y x"
 * (tools/gen_detect_fixtures.py, tools/gen_demo_det_fixtures.py). Failures
 * go through cmocka's fail_msg, so include this after <cmocka.h>. */
#ifndef KDC_TEST_DETREF_H
#define KDC_TEST_DETREF_H

typedef struct dr_detection {
    double box[4], score;
    int label, level, anchor, y, x;
} dr_detection;

/* Reads path's detections into *out (free with free()); returns how many.
 * Fails the test if the file cannot be opened. */
int dr_read(const char *path, dr_detection **out);

#endif
