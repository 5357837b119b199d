/* pointing_baseline.c - what a map that ignores the image scores in the
 * pointing game: the share of boxes that hold one fixed pixel (e.g. the
 * image centre), and the best such pixel over a set of boxes, found exactly
 * with a 2-D difference array. Inside means what kdc_map_pointing means:
 * x0 <= x < x1 and y0 <= y < y1. */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

double kdc_boxes_point_share(const int (*boxes)[4], int n, int x, int y)
{
    if (!boxes || n < 1)
        return 0.0;
    int in = 0;
    for (int i = 0; i < n; i++)
        in += x >= boxes[i][0] && x < boxes[i][2] && y >= boxes[i][1] && y < boxes[i][3];
    return (double)in / (double)n;
}

kdc_status kdc_boxes_best_point(const int (*boxes)[4], int n, int w, int h, int *bx, int *by,
                                double *share)
{
    if (!boxes || !bx || !by || !share || n < 1 || w < 1 || h < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT,
                         "kdc_boxes_best_point: NULL, no boxes or an empty image (n %d, %dx%d)",
                         n, w, h);
    const size_t pitch = (size_t)w + 1, rows = (size_t)h + 1;
    if (pitch > SIZE_MAX / sizeof(int32_t) / rows)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_boxes_best_point: %dx%d is too large",
                         w, h);
    /* d: (h + 1) x (w + 1); +1 at a box's top-left corner, -1 at the two
     * corners past its right and bottom edges, +1 past both; its 2-D prefix
     * sum at (x, y) counts the boxes that hold (x, y) */
    int32_t *d = calloc(pitch * rows, sizeof *d);
    if (!d)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_boxes_best_point: out of memory for %dx%d",
                         w, h);
    for (int i = 0; i < n; i++) {
        int x0 = boxes[i][0] < 0 ? 0 : boxes[i][0], y0 = boxes[i][1] < 0 ? 0 : boxes[i][1];
        int x1 = boxes[i][2] > w ? w : boxes[i][2], y1 = boxes[i][3] > h ? h : boxes[i][3];
        if (x0 >= x1 || y0 >= y1)
            continue; /* empty, or outside the image */
        d[(size_t)y0 * pitch + (size_t)x0]++;
        d[(size_t)y0 * pitch + (size_t)x1]--;
        d[(size_t)y1 * pitch + (size_t)x0]--;
        d[(size_t)y1 * pitch + (size_t)x1]++;
    }
    for (size_t y = 0; y < rows; y++)
        for (size_t x = 1; x < pitch; x++)
            d[y * pitch + x] += d[y * pitch + x - 1];
    for (size_t y = 1; y < rows; y++)
        for (size_t x = 0; x < pitch; x++)
            d[y * pitch + x] += d[(y - 1) * pitch + x];
    /* the first maximum in row-major order, as kdc_map_pointing's argmax */
    int32_t best = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (d[(size_t)y * pitch + (size_t)x] > best) {
                best = d[(size_t)y * pitch + (size_t)x];
                *bx = x;
                *by = y;
            }
    free(d);
    *share = (double)best / (double)n;
    return KDC_OK;
}
