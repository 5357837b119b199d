/* internal.h - declarations shared by the library's source files.
 * Never installed. Internal symbols carry the kdc__ prefix and are hidden
 * from the shared library by -fvisibility=hidden. */
#ifndef KDC_INTERNAL_H
#define KDC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kdcam.h"

#if defined(__GNUC__)
#define KDC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KDC_PRINTF(a, b)
#endif

/* Images with more pixels are refused before decoding unless
 * kdc_image_options.max_pixels says otherwise: PIL's MAX_IMAGE_PIXELS
 * (2^30 / 4 / 3), the size of its decompression-bomb warning
 * (docs/security.md). */
#define KDC__IMAGE_MAX_PIXELS_DEFAULT 89478485LL

/* Sets this thread's error message (printf-style) and returns status, so a
 * failing path reads `return kdc__fail(KDC_ERR_IO, "%s: %s", path, why);`. */
kdc_status kdc__fail(kdc_status status, const char *fmt, ...) KDC_PRINTF(2, 3);

/* Prepends "prefix: " to the current error message (for context such as the
 * file name) and returns status. */
kdc_status kdc__fail_context(kdc_status status, const char *fmt, ...) KDC_PRINTF(2, 3);

/* n floats (at least one) starting on a 64-byte cache line, or NULL;
 * free() them. The run's activations, gradients and conv buffers: rows of
 * a map whose width is a multiple of 16 floats then start on a line, and
 * the threads' column parts of a GEMM end on line boundaries instead of
 * sharing one (glibc's malloc gives 16-byte alignment: every 16-float
 * store of the AVX2 GEMM then splits two lines). The GEMM alone, same
 * buffers called again, 2 threads against 1: 1.33-1.68x with malloc'd
 * input and output, 1.80-2.01x aligned (512x512x196, 128x128x3136,
 * 256x256x784); 2.12x -> 1.61-1.79x on 1024x1024x49, whose 1-thread
 * time fell more (1.64 -> 1.20 ms; 2 threads 0.78 -> 0.67-0.75); whole forward
 * passes did not move measurably (docs/performance.md). */
static inline float *kdc__falloc(size_t n)
{
    if (n > (SIZE_MAX - 63) / sizeof(float))
        return NULL;
    return aligned_alloc(64, ((n ? n : 1) * sizeof(float) + 63) / 64 * 64);
}

/* Checked size arithmetic: return 0 on overflow, else 1 and the result. */
static inline int kdc__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

#endif /* KDC_INTERNAL_H */
