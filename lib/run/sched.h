/* sched.h - how a node's work is split into jobs for the thread pool: the
 * one place that decides (internal).
 *
 * Every job writes a disjoint part of its output and computes each element
 * in a fixed order, so a split never changes a result: any thread count
 * gives the same bits. What is decided here is only how many threads take
 * part (no more than the work pays for: a small layer on 16 threads spends
 * more on starting and ending the job than on its work), how many jobs
 * and which piece each one is:
 *   - per-channel ops (the op table's tasks, forward and backward, the
 *     depthwise groups and the ReLU masks of fused groups): jobs of
 *     (image, chunk of channels), kdc__sched_channels;
 *   - the GEMM of a dense conv or fully connected layer (conv_gemm.c):
 *     (image, row part, column part) of whole micro-tile panels,
 *     kdc__sched_gemm;
 *   - its copies in and out of the padded phase planes: chunks of
 *     KDC__SCHED_WIDE_CHUNK channels;
 *   - its backward col2im: (chunk of KDC__SCHED_COL2IM_CHUNK input channels,
 *     band of input rows), kdc__sched_bands, inside memory bands of input
 *     rows for large layers (kdc__sched_mem_bands). */
#ifndef KDC_SCHED_H
#define KDC_SCHED_H

#include <stddef.h>

enum {
    KDC__SCHED_CH_CHUNK = 8,     /* most channels per job of a per-channel op */
    KDC__SCHED_WIDE_CHUNK = 16,  /* most channels per padding / unwide job    */
    KDC__SCHED_COL2IM_CHUNK = 8, /* input channels per col2im job             */
    /* Work below which another thread costs more (waking it, the end of the
     * job, its caches) than it saves: floats touched by a memory-bound job,
     * multiply-adds of a GEMM (about 10 us on one core either way). */
    KDC__SCHED_MIN_FLOATS = 1 << 15,
    KDC__SCHED_MIN_MACS = 1 << 21
};

/* Threads worth using for `work` units of which one thread should get at
 * least `min`: 1 .. threads. */
static inline int kdc__sched_cap(double work, double min, int threads)
{
    const double t = work / min;
    return t >= threads ? threads : t < 1.0 ? 1 : (int)t;
}

/* The split of a per-channel job: nimg images of `channels` planes, jobs
 * of (image, chunk of `chunk` channels), on `threads` threads. */
typedef struct kdc__sched_ch {
    int chunk, chunks; /* channels per job, jobs per image */
    int jobs, threads;
} kdc__sched_ch;

/* Splits nimg x channels planes of `plane` work units each (floats for a
 * memory-bound op, several per float for a compute-bound one): threads
 * capped by the work (KDC__SCHED_MIN_FLOATS each), chunks of at most
 * max_chunk channels, smaller when that leaves fewer than about four jobs
 * per thread (64 channels of a max-pool on 16 threads). */
void kdc__sched_channels(int nimg, int channels, double plane, int max_chunk, int threads,
                         kdc__sched_ch *s);
/* Such a split whose chunks start and, but for the last, end on multiples
 * of quantum channels (max_chunk one of them): the chunk above rounded up
 * to one. For kernels that run `quantum` channels at once (the depthwise
 * eight-channel ones), which a chunk of 4 would leave half idle. */
void kdc__sched_channels_q(int nimg, int channels, double plane, int max_chunk, int quantum,
                           int threads, kdc__sched_ch *s);

/* Job t of such a split: image *b and channels [*c0, *c1). */
static inline void kdc__sched_ch_range(const kdc__sched_ch *s, int t, int channels, int *b,
                                       int *c0, int *c1)
{
    *b = t / s->chunks;
    *c0 = t % s->chunks * s->chunk;
    *c1 = *c0 + s->chunk < channels ? *c0 + s->chunk : channels;
}

/* Jobs of `chunk` channels that cover `channels`. */
static inline int kdc__sched_chunks(int channels, int chunk)
{
    return (channels + chunk - 1) / chunk;
}

/* Channels [*c0, *c1) of chunk t of `chunk` channels, out of `channels`. */
static inline void kdc__sched_chunk_range(int t, int chunk, int channels, int *c0, int *c1)
{
    *c0 = t * chunk;
    *c1 = *c0 + chunk < channels ? *c0 + chunk : channels;
}

/* Start of part i of `parts` near-equal parts of n units. */
static inline int kdc__sched_part(int n, int parts, int i)
{
    return (int)((long)n * i / parts);
}

/* Parts of a GEMM's C (mtiles row panels x ntiles column panels, for each
 * of nimg images, `macs` multiply-adds in all) and the threads to run them
 * on: threads capped by the work (KDC__SCHED_MIN_MACS each); parts of at
 * least 2 row and 4 column panels, between 1 and 8 jobs per used thread,
 * chosen so that the last round of jobs leaves the fewest threads idle,
 * then near four jobs per thread, then with the fewest row parts (a column
 * part packs its own B, every row part packs it again). One thread: one job
 * per image (the BLIS loops inside the GEMM do the blocking). Returns the
 * threads. */
int kdc__sched_gemm(int mtiles, int ntiles, int nimg, double macs, int threads, int *mparts,
                    int *nparts);

/* Bands of input rows a conv's backward-data forms its columns in (cols
 * floats for the whole image) so that one band's columns stay near
 * KDC__COLS_MAX floats: 1 for every layer of a 224 x 224 classifier. Not
 * a function of the thread count. */
enum { KDC__COLS_MAX = 1 << 22 };
static inline int kdc__sched_mem_bands(double cols, int rows)
{
    const int b = (int)((cols + KDC__COLS_MAX - 1) / KDC__COLS_MAX);
    return b < 1 ? 1 : b > rows ? rows : b;
}

/* Bands of input rows per col2im chunk, so that a few channels (the
 * 3-channel stem) still spread over the threads. */
int kdc__sched_bands(int chunks, int threads, int rows);

#endif /* KDC_SCHED_H */
