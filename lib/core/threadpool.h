/* threadpool.h - the fork-join pool of a run (threadpool.c; internal). */
#ifndef KDC_THREADPOOL_H
#define KDC_THREADPOOL_H

#include "internal.h"

typedef struct kdc__pool kdc__pool;
/* nthreads >= 1; 1 means run everything on the calling thread. */
kdc_status kdc__pool_create(int nthreads, kdc__pool **out);
void kdc__pool_destroy(kdc__pool *pool);
int kdc__pool_threads(const kdc__pool *pool);
/* Calls fn(ctx, i) for i in [0, ntasks), spread over the threads; returns
 * when all calls are done. Each task must write disjoint outputs, so the
 * result does not depend on the number of threads. */
void kdc__pool_run(kdc__pool *pool, int ntasks, void (*fn)(void *ctx, int task), void *ctx);
/* The same on at most `threads` threads (the caller and the lowest-numbered
 * workers; the others are not woken): a small job pays less to start and
 * end than on every thread. sched.h decides the cap. */
void kdc__pool_run_capped(kdc__pool *pool, int ntasks, int threads, void (*fn)(void *ctx, int task),
                          void *ctx);

#endif /* KDC_THREADPOOL_H */
