/* kit.h - what the op, kernel and GEMM tests share: seeded test data and
 * allocation that fails the test instead of returning NULL.
 *
 * Header-only (static inline): tests/test_kernels.c is also built alone for
 * aarch64 with tests/util/cmocka_shim.h (tools/test_neon.sh), so include
 * this after <cmocka.h> or the shim. The generator state belongs to the
 * test program (one translation unit); tk_seed restarts it. */
#ifndef KDC_TEST_KIT_H
#define KDC_TEST_KIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t tk_rng_state = 12345;

static inline void tk_seed(uint64_t seed)
{
    tk_rng_state = seed;
}

/* splitmix64, as a double uniform in [0, 1) with 53 random bits. */
static inline double tk_urand(void)
{
    uint64_t z = (tk_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

/* x[i] uniform in [lo, hi). */
static inline void tk_fill(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * tk_urand());
}

/* malloc of n bytes (at least 1) that fails the test when out of memory. */
static inline void *tk_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* n floats uniform in [lo, hi), from tk_xmalloc (free() them). */
static inline float *tk_rand_buf(size_t n, double lo, double hi)
{
    float *x = tk_xmalloc(n * sizeof *x);
    tk_fill(x, n, lo, hi);
    return x;
}

#endif
