/* sched.c - the splits of sched.h that are more than arithmetic. */
#include "sched.h"

void kdc__sched_channels(int nimg, int channels, double plane, int max_chunk, int threads,
                         kdc__sched_ch *s)
{
    s->threads = kdc__sched_cap((double)nimg * channels * plane, KDC__SCHED_MIN_FLOATS, threads);
    s->chunk = max_chunk;
    if (s->threads > 1) {
        /* about four jobs per thread, but no chunk below one channel */
        const int per = (nimg * channels) / (4 * s->threads);
        if (per < s->chunk)
            s->chunk = per < 1 ? 1 : per;
    }
    s->chunks = kdc__sched_chunks(channels, s->chunk);
    s->jobs = nimg * s->chunks;
}

void kdc__sched_channels_q(int nimg, int channels, double plane, int max_chunk, int quantum,
                           int threads, kdc__sched_ch *s)
{
    kdc__sched_channels(nimg, channels, plane, max_chunk, threads, s);
    if (quantum > 1 && s->chunk % quantum) {
        s->chunk = (s->chunk + quantum - 1) / quantum * quantum;
        s->chunks = kdc__sched_chunks(channels, s->chunk);
        s->jobs = nimg * s->chunks;
    }
}

int kdc__sched_gemm(int mtiles, int ntiles, int nimg, double macs, int threads, int *mparts,
                    int *nparts)
{
    *mparts = *nparts = 1;
    threads = kdc__sched_cap(macs, KDC__SCHED_MIN_MACS, threads);
    if (threads <= 1)
        return 1;
    /* Among splits of parts of at least 2 row and 4 column panels with
     * between `threads` and 8 x `threads` jobs: the one that leaves the
     * fewest threads idle in the last round (100 jobs on 16 threads keep
     * 89% busy, 96 keep all), then the one nearest four jobs per thread,
     * then the fewest row parts (each row part packs B again). */
    const int npmax = ntiles / 4 > 1 ? ntiles / 4 : 1, mpmax = mtiles / 2 > 1 ? mtiles / 2 : 1;
    const int want = 4 * threads;
    int mp = 1, np = 1, best_waste = -1, best_dist = 0;
    for (int p = 1; p <= npmax && nimg * p <= 8 * threads; p++) {
        int lo = (threads + nimg * p - 1) / (nimg * p), hi = 8 * threads / (nimg * p);
        if (hi > mpmax)
            hi = mpmax;
        if (lo > hi)
            lo = hi;
        for (int q = lo; q <= hi; q++) {
            const int jobs = nimg * p * q;
            const int rounds = (jobs + threads - 1) / threads;
            /* idle thread-slots of the last round, per job: compare
             * waste_a / jobs_a without floating point */
            const int waste = rounds * threads - jobs;
            const int dist = jobs > want ? jobs - want : want - jobs;
            int better = best_waste < 0;
            if (!better) {
                const long a = (long)waste * (nimg * mp * np), b = (long)best_waste * jobs;
                better = a < b || (a == b && (dist < best_dist || (dist == best_dist && q < mp)));
            }
            if (better) {
                mp = q;
                np = p;
                best_waste = waste;
                best_dist = dist;
            }
        }
    }
    *mparts = mp;
    *nparts = np;
    return threads;
}

int kdc__sched_bands(int chunks, int threads, int rows)
{
    int bands = chunks >= 4 * threads ? 1 : (4 * threads + chunks - 1) / chunks;
    if (bands > rows)
        bands = rows;
    return bands;
}
