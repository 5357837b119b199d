/* cka.c - centered kernel alignment between two representations of the
 * same examples, the minibatch way (Nguyen, Raghu and Kornblith 2021, as
 * torch_cka computes it): per minibatch the unbiased HSIC estimator of the
 * three pairs (K,K), (K,L), (L,L), summed over minibatches; CKA is the
 * normalised sum. Linear and RBF kernels (the RBF bandwidth as Kornblith et
 * al.'s reference code sets it: the median squared distance). Sums in
 * double; an accumulator is three sums and two counts, so accumulators of
 * different minibatches merge by adding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct kdc_cka {
    double hsic[3]; /* sum over minibatches of HSIC(K,K), HSIC(K,L), HSIC(L,L) */
    int64_t batches, examples;
};

/* The unbiased estimator divides by n - 3: fewer than 4 examples is an error. */
static kdc_status kdc__too_small(int n)
{
    return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "HSIC: a minibatch of %d examples is too small: "
                     "the unbiased estimator needs at least 4", n);
}

static int kdc__cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

kdc_status kdc_cka_gram(const float *x, int n, size_t d, kdc_cka_kernel kernel, double *K)
{
    if (!x || !K || n < 1 || d < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "CKA Gram matrix: NULL data or an empty "
                         "representation (n = %d, d = %zu)", n, d);
    if (kernel != KDC_CKA_LINEAR && kernel != KDC_CKA_RBF)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "CKA Gram matrix: unknown kernel %d",
                         (int)kernel);
    const size_t N = (size_t)n;
    /* (n, n) dot products, the lower triangle four columns at a time: each
     * still sums in k order (the bits of one at a time), four independent
     * sums hide the adds' latency */
    for (size_t i = 0; i < N; i++) {
        const float *a = x + i * d;
        size_t j = 0;
        for (; j + 3 <= i; j += 4) {
            const float *b0 = x + j * d, *b1 = b0 + d, *b2 = b1 + d, *b3 = b2 + d;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t k = 0; k < d; k++) {
                const double ak = a[k];
                s0 += ak * b0[k];
                s1 += ak * b1[k];
                s2 += ak * b2[k];
                s3 += ak * b3[k];
            }
            const double s[4] = {s0, s1, s2, s3};
            for (size_t t = 0; t < 4; t++)
                K[i * N + j + t] = K[(j + t) * N + i] = s[t];
        }
        for (; j <= i; j++) {
            const float *b = x + j * d;
            double s = 0;
            for (size_t k = 0; k < d; k++)
                s += (double)a[k] * b[k];
            K[i * N + j] = K[j * N + i] = s;
        }
    }
    if (kernel == KDC_CKA_LINEAR)
        return KDC_OK;
    /* squared distances from the dot products, then their median over all
     * n^2 entries (diagonal zeros included, as np.median of the matrix) */
    double *dist = malloc(N * N * sizeof *dist);
    if (!dist)
        return kdc__fail(KDC_ERR_NO_MEMORY, "CKA Gram matrix: out of memory (n = %d)", n);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            dist[i * N + j] = K[i * N + i] + K[j * N + j] - 2.0 * K[i * N + j];
    memcpy(K, dist, N * N * sizeof *K);
    qsort(dist, N * N, sizeof *dist, kdc__cmp_double);
    const size_t m = N * N;
    const double med = m % 2 ? dist[m / 2] : 0.5 * (dist[m / 2 - 1] + dist[m / 2]);
    free(dist);
    for (size_t i = 0; i < m; i++)
        K[i] = med > 0 ? exp(-K[i] / (2.0 * med)) : 1.0;
    return KDC_OK;
}

kdc_status kdc_hsic_unbiased(const double *K, const double *L, int n, double *hsic)
{
    if (!K || !L || !hsic)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "HSIC: NULL argument");
    if (n < 4)
        return kdc__too_small(n);
    const size_t N = (size_t)n;
    double tr = 0, sk = 0, sl = 0, kl1 = 0;
    for (size_t i = 0; i < N; i++) {
        double rk = 0, rl = 0; /* row sums of K~ and L~ (zero diagonals) */
        for (size_t j = 0; j < N; j++) {
            if (i == j)
                continue;
            const double k = K[i * N + j], l = L[i * N + j];
            tr += k * l; /* tr(K~ L~) for symmetric matrices */
            rk += k;
            rl += l;
        }
        sk += rk;
        sl += rl;
        kl1 += rk * rl; /* 1' K~ L~ 1 */
    }
    const double dn = (double)n;
    *hsic = (tr + sk * sl / ((dn - 1) * (dn - 2)) - 2.0 * kl1 / (dn - 2)) / (dn * (dn - 3));
    return KDC_OK;
}

kdc_status kdc_cka_create(kdc_cka **out)
{
    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cka_create: out is NULL");
    if (!(*out = calloc(1, sizeof **out)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cka_create: out of memory");
    return KDC_OK;
}

void kdc_cka_destroy(kdc_cka *acc)
{
    free(acc);
}

static double kdc__cka_of(const double h[3])
{
    const double den = h[0] * h[2];
    return den > 0 ? h[1] / sqrt(den) : NAN;
}

kdc_status kdc_cka_add_gram(kdc_cka *acc, const double *K, const double *L, int n,
                            double *batch_cka)
{
    if (!acc)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cka_add_gram: acc is NULL");
    double h[3];
    kdc_status st;
    if ((st = kdc_hsic_unbiased(K, K, n, &h[0])) || (st = kdc_hsic_unbiased(K, L, n, &h[1])) ||
        (st = kdc_hsic_unbiased(L, L, n, &h[2])))
        return st;
    if (batch_cka)
        *batch_cka = kdc__cka_of(h);
    return kdc_cka_add_hsic(acc, h, n);
}

kdc_status kdc_cka_add_hsic(kdc_cka *acc, const double hsic[3], int n)
{
    if (!acc || !hsic)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cka_add_hsic: NULL argument");
    if (n < 4)
        return kdc__too_small(n);
    for (int i = 0; i < 3; i++)
        acc->hsic[i] += hsic[i];
    acc->batches++;
    acc->examples += n;
    return KDC_OK;
}

kdc_status kdc_cka_add(kdc_cka *acc, const float *x, size_t dx, const float *y, size_t dy,
                       int n, kdc_cka_kernel kernel, double *batch_cka)
{
    if (!acc)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cka_add: acc is NULL");
    if (n < 4) /* refused before any work, with kdc_hsic_unbiased's message */
        return kdc__too_small(n);
    const size_t N = (size_t)n;
    double *K = malloc(N * N * sizeof *K), *L = malloc(N * N * sizeof *L);
    kdc_status st;
    if (!K || !L)
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cka_add: out of memory (n = %d)", n);
    else if (!(st = kdc_cka_gram(x, n, dx, kernel, K)) && !(st = kdc_cka_gram(y, n, dy, kernel, L)))
        st = kdc_cka_add_gram(acc, K, L, n, batch_cka);
    free(K);
    free(L);
    return st;
}

kdc_status kdc_cka_merge(kdc_cka *dst, const kdc_cka *src)
{
    if (!dst || !src)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cka_merge: NULL accumulator");
    for (int i = 0; i < 3; i++)
        dst->hsic[i] += src->hsic[i];
    dst->batches += src->batches;
    dst->examples += src->examples;
    return KDC_OK;
}

kdc_status kdc_cka_result(const kdc_cka *acc, double *cka, double hsic[3], int64_t *batches,
                          int64_t *examples)
{
    if (!acc || !cka)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cka_result: NULL argument");
    if (hsic)
        memcpy(hsic, acc->hsic, sizeof acc->hsic);
    if (batches)
        *batches = acc->batches;
    if (examples)
        *examples = acc->examples;
    if (acc->batches == 0)
        return kdc__fail(KDC_ERR_STATE, "CKA: no minibatch has been added");
    *cka = kdc__cka_of(acc->hsic);
    if (isnan(*cka))
        return kdc__fail(KDC_ERR_STATE, "CKA is undefined: HSIC(K,K) * HSIC(L,L) = %g is not "
                         "positive (a constant representation?)", acc->hsic[0] * acc->hsic[2]);
    return KDC_OK;
}
