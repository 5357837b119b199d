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
 * variables (a publication and the end of a job are signalled under the
 * lock, so no sleeper misses one).
 *
 * With many threads the start and end of a job must not pass through the
 * lock: entering and leaving a job are atomic operations only (active), and
 * a job may be capped to fewer threads than the pool has
 * (kdc__pool_run_capped): the other workers see it published and go on
 * waiting without touching the job.  */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

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

struct kdc__pool;
typedef struct kdc__pool_worker {
    struct kdc__pool *pool;
    int index;               /* 1 .. nthreads - 1 (the caller is 0)          */
} kdc__pool_worker;

struct kdc__pool {
    int nthreads;
    pthread_t *threads;      /* (nthreads - 1) workers                       */
    kdc__pool_worker *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* a new job or shutdown                        */
    pthread_cond_t done;     /* the last task of a job finished              */
    /* even: a job is published (or none yet); odd: the caller is writing
     * the next one. Bumped twice per job. */
    atomic_ulong generation;
    atomic_int shutdown;     /* set under lock                               */
    /* the current job: written only while generation is odd and no worker
     * is active */
    void (*fn)(void *ctx, int task);
    void *ctx;
    int ntasks;
    atomic_int cap;          /* threads that take part (workers index < cap) */
    atomic_int next;
    atomic_int finished;     /* tasks of the job finished                    */
    atomic_int active;       /* workers inside a job                         */
};

/* Runs tasks of the current job until none is left; returns 1 when this
 * thread finished the job's last task. */
static int kdc__pool_work(kdc__pool *pool)
{
    int last = 0;
    for (;;) {
        int t = atomic_fetch_add(&pool->next, 1);
        if (t >= pool->ntasks)
            break;
        pool->fn(pool->ctx, t);
        if (atomic_fetch_add_explicit(&pool->finished, 1, memory_order_acq_rel) + 1 ==
            pool->ntasks)
            last = 1;
    }
    return last;
}

/* A published job newer than `seen` (or shutdown): its generation, else 0. */
static unsigned long kdc__pool_newer(kdc__pool *pool, unsigned long seen)
{
    unsigned long g = atomic_load_explicit(&pool->generation, memory_order_acquire);
    return g != seen && !(g & 1) ? g : 0;
}

static void *kdc__pool_main(void *arg)
{
    const kdc__pool_worker *self = arg;
    kdc__pool *pool = self->pool;
    unsigned long seen = 0;
    for (;;) {
        /* spin a while for the next job, then sleep */
        unsigned long g = 0;
        for (int i = 0; i < KDC__POOL_SPIN; i++) {
            if ((g = kdc__pool_newer(pool, seen)) ||
                atomic_load_explicit(&pool->shutdown, memory_order_acquire))
                break;
            KDC__CPU_RELAX();
        }
        if (!g) {
            pthread_mutex_lock(&pool->lock);
            while (!pool->shutdown && !(g = kdc__pool_newer(pool, seen)))
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load_explicit(&pool->shutdown, memory_order_acquire))
            break;
        seen = g;
        /* a small job does not wake the higher-numbered threads */
        if (self->index >= atomic_load_explicit(&pool->cap, memory_order_relaxed))
            continue;
        /* Enter the job: announce (active) then check it is still the one
         * published. The caller marks the generation odd before it checks
         * active, so either it sees us and waits, or we see the odd or newer
         * generation and step back (both sides sequentially consistent). */
        atomic_fetch_add(&pool->active, 1);
        if (atomic_load(&pool->generation) == g && kdc__pool_work(pool)) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_broadcast(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
        atomic_fetch_sub_explicit(&pool->active, 1, memory_order_release);
    }
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
    atomic_init(&pool->cap, 1);
    atomic_init(&pool->active, 0);
    if (pthread_mutex_init(&pool->lock, NULL))
        goto free_pool;
    if (pthread_cond_init(&pool->wake, NULL))
        goto free_lock;
    if (pthread_cond_init(&pool->done, NULL))
        goto free_wake;
    if (nthreads > 1) {
        pool->threads = calloc((size_t)nthreads - 1, sizeof *pool->threads);
        pool->workers = calloc((size_t)nthreads - 1, sizeof *pool->workers);
        if (!pool->threads || !pool->workers) {
            free(pool->threads);
            free(pool->workers);
            goto free_done;
        }
        for (int i = 0; i < nthreads - 1; i++) {
            pool->workers[i].pool = pool;
            pool->workers[i].index = i + 1;
            if (pthread_create(&pool->threads[i], NULL, kdc__pool_main, &pool->workers[i])) {
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
    free(pool->workers);
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
    kdc__pool_run_capped(pool, ntasks, pool->nthreads, fn, ctx);
}

void kdc__pool_run_capped(kdc__pool *pool, int ntasks, int threads, void (*fn)(void *ctx, int task),
                          void *ctx)
{
    if (ntasks <= 0)
        return;
    if (threads > pool->nthreads)
        threads = pool->nthreads;
    if (threads > ntasks)
        threads = ntasks;
    if (threads <= 1) {
        for (int t = 0; t < ntasks; t++)
            fn(ctx, t);
        return;
    }
    /* Close the last job (odd generation), then wait for workers still
     * leaving it: they only touch the pool, for a moment. */
    atomic_fetch_add(&pool->generation, 1);
    for (int i = 0; atomic_load(&pool->active) > 0; i++) {
        if (i < KDC__POOL_SPIN)
            KDC__CPU_RELAX();
        else /* a worker was preempted (busy machine): let it run */
            nanosleep(&(struct timespec){.tv_nsec = 20000}, NULL);
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->ntasks = ntasks;
    atomic_store_explicit(&pool->cap, threads, memory_order_relaxed);
    atomic_store_explicit(&pool->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release); /* published */
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    kdc__pool_work(pool);

    /* Every task finished (their writes visible through the acquire) is all
     * the caller needs; a worker still leaving the job touches only the
     * pool, and the next job waits for it (active). */
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
