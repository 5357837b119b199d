/* test_pointing_baseline.c - kdc_boxes_point_share and kdc_boxes_best_point
 * (the pointing-game baselines of `kdcam pointing`): against answers worked
 * out by hand, and against a brute-force count over every pixel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kdcam.h"

/* An 8x6 image, centre pixel (4, 3); inside: x0 <= x < x1, y0 <= y < y1.
 *   A [0, 0, 4, 4]  x 0..3, y 0..3   centre: no (x = 4 = x1)
 *   B [2, 1, 6, 5]  x 2..5, y 1..4   centre: yes
 *   C [3, 2, 8, 6]  x 3..7, y 2..5   centre: yes
 *   D [5, 0, 8, 2]  x 5..7, y 0..1   centre: no
 * centre share 2/4. A, B, C share x 3, y 2..3: 3 boxes, none holds all
 * four (A and D are apart); the first in row-major order is (3, 2), 3/4.
 * Other pixels: (4, 3) is in B and C (2); (5, 1) in B and D (2). */
static const int hand[4][4] = {{0, 0, 4, 4}, {2, 1, 6, 5}, {3, 2, 8, 6}, {5, 0, 8, 2}};

static void test_hand(void **state)
{
    (void)state;
    assert_float_equal(kdc_boxes_point_share(hand, 4, 4, 3), 0.5, 0);
    assert_float_equal(kdc_boxes_point_share(hand, 4, 3, 2), 0.75, 0);
    assert_float_equal(kdc_boxes_point_share(hand, 4, 5, 1), 0.5, 0);
    assert_float_equal(kdc_boxes_point_share(hand, 4, 8, 0), 0.0, 0);
    int x = -1, y = -1;
    double share = -1;
    assert_int_equal(kdc_boxes_best_point(hand, 4, 8, 6, &x, &y, &share), KDC_OK);
    assert_int_equal(x, 3);
    assert_int_equal(y, 2);
    assert_float_equal(share, 0.75, 0);
    /* one box: its top-left pixel; boxes are clipped to the image, and one
     * wholly outside counts for nothing: [-3, -3, 1, 1] holds only (0, 0)
     * of a 4x4 image, [10, 10, 12, 12] none; so (0, 0) with 1 of 3 */
    static const int clip[3][4] = {{10, 10, 12, 12}, {-3, -3, 1, 1}, {2, 2, 3, 3}};
    assert_int_equal(kdc_boxes_best_point(clip + 1, 1, 4, 4, &x, &y, &share), KDC_OK);
    assert_int_equal(x, 0);
    assert_int_equal(y, 0);
    assert_float_equal(share, 1.0, 0);
    assert_int_equal(kdc_boxes_best_point(clip, 3, 4, 4, &x, &y, &share), KDC_OK);
    assert_int_equal(x, 0);
    assert_int_equal(y, 0);
    assert_float_equal(share, 1.0 / 3.0, 1e-15);
    /* no box holds any pixel: (0, 0), share 0 */
    assert_int_equal(kdc_boxes_best_point(clip, 1, 4, 4, &x, &y, &share), KDC_OK);
    assert_int_equal(x, 0);
    assert_int_equal(y, 0);
    assert_float_equal(share, 0.0, 0);
}

static void test_errors(void **state)
{
    (void)state;
    int x, y;
    double share;
    assert_int_equal(kdc_boxes_best_point(NULL, 4, 8, 6, &x, &y, &share),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_boxes_best_point(hand, 0, 8, 6, &x, &y, &share),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_boxes_best_point(hand, 4, 0, 6, &x, &y, &share),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_int_equal(kdc_boxes_best_point(hand, 4, 8, 6, NULL, &y, &share),
                     KDC_ERR_INVALID_ARGUMENT);
    assert_float_equal(kdc_boxes_point_share(NULL, 4, 0, 0), 0.0, 0);
    assert_float_equal(kdc_boxes_point_share(hand, 0, 0, 0), 0.0, 0);
}

/* random boxes (some reaching outside the image) against counting every
 * pixel; the tie rule (first maximum in row-major order) included */
static void test_brute_force(void **state)
{
    (void)state;
    uint64_t s = 12345;
    for (int trial = 0; trial < 200; trial++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const int w = 1 + (int)((s >> 33) % 40), h = 1 + (int)((s >> 45) % 30);
        const int n = 1 + (int)((s >> 20) % 25);
        int(*b)[4] = malloc((size_t)n * sizeof *b);
        assert_non_null(b);
        for (int i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int x0 = (int)((s >> 33) % (uint64_t)(w + 6)) - 3;
            int y0 = (int)((s >> 45) % (uint64_t)(h + 6)) - 3;
            b[i][0] = x0;
            b[i][1] = y0;
            b[i][2] = x0 + 1 + (int)((s >> 20) % (uint64_t)w);
            b[i][3] = y0 + 1 + (int)((s >> 10) % (uint64_t)h);
        }
        int best = -1, bx = 0, by = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int c = 0;
                for (int i = 0; i < n; i++)
                    c += b[i][0] <= x && x < b[i][2] && b[i][1] <= y && y < b[i][3];
                assert_float_equal(kdc_boxes_point_share((const int(*)[4])b, n, x, y),
                                   (double)c / n, 1e-15);
                if (c > best) {
                    best = c;
                    bx = x;
                    by = y;
                }
            }
        int x, y;
        double share;
        assert_int_equal(kdc_boxes_best_point((const int(*)[4])b, n, w, h, &x, &y, &share),
                         KDC_OK);
        assert_int_equal(x, bx);
        assert_int_equal(y, by);
        assert_float_equal(share, (double)best / n, 1e-15);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
