/* threadpool.c - a small fork-join pool owned by one kdc_run.
 *
 * kdc__pool_run publishes a job, every thread (the caller included) takes
 * task indices from a shared counter until none are left, and the caller
 * waits until all are finished. Tasks write disjoint outputs, so which
 * thread runs which task never changes a result.
 *
 * A forward pass is a chain of short jobs (ResNet-50: about 150, many under
 * 100 us), so how fast a thread notices the next job or the end of one
 * matters: waking a thread sleeping on a condition variable takes a futex
 * call and a reschedule, tens of microseconds in a virtual machine. So both
 * sides first spin on an atomic for a bounded time (KDC__POOL_SPIN pauses,
 * a fraction of a millisecond) and only then sleep on the condition
 * variables, which stay the source of truth: every change of the job or of
 * the shutdown flag is made under the lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KDC__CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define KDC__CPU_RELAX() __asm__ __volatile__("yield")
#else
#define KDC__CPU_RELAX() ((void)0)
#endif

#include "threadpool.h"

enum { KDC__POOL_SPIN = 1 << 14 };

struct kdc__pool {
    int nthreads;
    pthread_t *threads;      /* (nthreads - 1) workers                       */
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* a new job or shutdown                        */
    pthread_cond_t done;     /* a worker left a job                          */
    atomic_ulong generation; /* bumped (under lock) for every job            */
    atomic_int shutdown;     /* set under lock                               */
    /* the current job */
    void (*fn)(void *ctx, int task);
    void *ctx;
    int ntasks;
    atomic_int next;
    atomic_int finished;     /* tasks of the job finished                    */
    int active;              /* workers inside a job, under lock             */
};

/* Runs tasks of the current job until none is left; returns how many. The
 * job fields do not change meanwhile: a new job is published only when no
 * worker is active. */
static int kdc__pool_work(kdc__pool *pool)
{
    int mine = 0;
    for (;;) {
        int t = atomic_fetch_add(&pool->next, 1);
        if (t >= pool->ntasks)
            break;
        pool->fn(pool->ctx, t);
        atomic_fetch_add_explicit(&pool->finished, 1, memory_order_release);
        mine++;
    }
    return mine;
}

static void *kdc__pool_main(void *arg)
{
    kdc__pool *pool = arg;
    unsigned long seen = 0;
    for (;;) {
        /* spin a while for the next job, then sleep */
        for (int i = 0; i < KDC__POOL_SPIN; i++) {
            if (atomic_load_explicit(&pool->generation, memory_order_acquire) != seen ||
                atomic_load_explicit(&pool->shutdown, memory_order_acquire))
                break;
            KDC__CPU_RELAX();
        }
        pthread_mutex_lock(&pool->lock);
        while (!pool->shutdown && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->shutdown)
            break;
        seen = pool->generation;
        pool->active++;
        pthread_mutex_unlock(&pool->lock);
        kdc__pool_work(pool);
        pthread_mutex_lock(&pool->lock);
        pool->active--;
        pthread_cond_broadcast(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

kdc_status kdc__pool_create(int nthreads, kdc__pool **out)
{
    kdc__pool *pool;
    *out = NULL;
    if (nthreads < 1 || nthreads > 256)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "threads: %d is out of range 1..256", nthreads);
    pool = calloc(1, sizeof *pool);
    if (!pool)
        return kdc__fail(KDC_ERR_NO_MEMORY, "thread pool: out of memory");
    pool->nthreads = 1;
    atomic_init(&pool->next, 0);
    atomic_init(&pool->finished, 0);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->shutdown, 0);
    if (pthread_mutex_init(&pool->lock, NULL))
        goto free_pool;
    if (pthread_cond_init(&pool->wake, NULL))
        goto free_lock;
    if (pthread_cond_init(&pool->done, NULL))
        goto free_wake;
    if (nthreads > 1) {
        pool->threads = calloc((size_t)nthreads - 1, sizeof *pool->threads);
        if (!pool->threads)
            goto free_done;
        for (int i = 0; i < nthreads - 1; i++) {
            if (pthread_create(&pool->threads[i], NULL, kdc__pool_main, pool)) {
                /* keep the threads we have; the pool is smaller than asked */
                kdc__pool_destroy(pool);
                return kdc__fail(KDC_ERR_NO_MEMORY, "thread pool: cannot start thread %d of %d",
                                 i + 2, nthreads);
            }
            pool->nthreads++;
        }
    }
    *out = pool;
    return KDC_OK;

free_done:
    pthread_cond_destroy(&pool->done);
free_wake:
    pthread_cond_destroy(&pool->wake);
free_lock:
    pthread_mutex_destroy(&pool->lock);
free_pool:
    free(pool);
    return kdc__fail(KDC_ERR_NO_MEMORY, "thread pool: cannot create synchronisation objects");
}

void kdc__pool_destroy(kdc__pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->shutdown = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->nthreads - 1; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

int kdc__pool_threads(const kdc__pool *pool)
{
    return pool->nthreads;
}

void kdc__pool_run(kdc__pool *pool, int ntasks, void (*fn)(void *ctx, int task), void *ctx)
{
    if (ntasks <= 0)
        return;
    if (pool->nthreads == 1 || ntasks == 1) {
        for (int t = 0; t < ntasks; t++)
            fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    while (pool->active > 0) /* a late worker still looking at the last job */
        pthread_cond_wait(&pool->done, &pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->ntasks = ntasks;
    atomic_store(&pool->finished, 0);
    atomic_store(&pool->next, 0);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    kdc__pool_work(pool);

    /* Every task finished (their writes visible through the acquire) is all
     * the caller needs; a worker still leaving the job touches only the
     * pool, and the next kdc__pool_run waits for it (active). */
    for (int i = 0; i < KDC__POOL_SPIN; i++) {
        if (atomic_load_explicit(&pool->finished, memory_order_acquire) == ntasks)
            return;
        KDC__CPU_RELAX();
    }
    pthread_mutex_lock(&pool->lock);
    while (atomic_load_explicit(&pool->finished, memory_order_acquire) < ntasks)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
