/* bench_util.h - the timing and statistics helpers of the bench/ programs
 * (each is built from its own .c file; header-only, so the Makefile needs no
 * extra rule). Define BENCH_NAME before including it: CHECK's message
 * starts with it. */
#ifndef KDC_BENCH_UTIL_H
#define KDC_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kdcam.h"

/* Milliseconds on the monotonic clock. */
static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Min and median of v[0..n) (sorts v); the median of an even count is the
 * mean of the two middle values. */
static inline void stats(double *v, int n, double *min, double *med)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    *min = v[0];
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A library call that must succeed: on failure, its text and the library's
 * message, exit 1 (a benchmark program, not the library). */
#define CHECK(x)                                                                 \
    do {                                                                         \
        if ((x) != KDC_OK) {                                                     \
            fprintf(stderr, BENCH_NAME ": %s: %s\n", #x, kdc_last_error());      \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#endif /* KDC_BENCH_UTIL_H */
