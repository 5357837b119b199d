/* sched.h - how a node's work is split into jobs for the thread pool: the
 * one place that decides (internal).
 *
 * Every job writes a disjoint part of its output and computes each element
 * in a fixed order, so a split never changes a result: any thread count
 * gives the same bits. What is decided here is only how many jobs and
 * which piece each one is:
 *   - per-channel ops (the op table's tasks, forward and backward, and the
 *     ReLU masks of fused groups): jobs of (image, chunk of
 *     KDC__SCHED_CH_CHUNK channels);
 *   - the GEMM of a dense conv or fully connected layer (conv_gemm.c):
 *     (image, row part, column part) of whole micro-tile panels,
 *     kdc__sched_gemm;
 *   - its copies in and out of the padded phase planes: chunks of
 *     KDC__SCHED_WIDE_CHUNK channels;
 *   - its backward col2im: (chunk of KDC__SCHED_COL2IM_CHUNK input channels,
 *     band of input rows), kdc__sched_bands. */
#ifndef KDC_SCHED_H
#define KDC_SCHED_H

enum {
    KDC__SCHED_CH_CHUNK = 8,     /* channels per job of a per-channel op     */
    KDC__SCHED_WIDE_CHUNK = 16,  /* channels per padding / unwide copy job   */
    KDC__SCHED_COL2IM_CHUNK = 8  /* input channels per col2im job            */
};

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

/* Job t of a per-channel op with `chunks` chunks per image: image *b and
 * channels [*c0, *c1) of `channels`. */
static inline void kdc__sched_image_range(int t, int chunks, int channels, int *b, int *c0,
                                          int *c1)
{
    *b = t / chunks;
    kdc__sched_chunk_range(t % chunks, KDC__SCHED_CH_CHUNK, channels, c0, c1);
}

/* Start of part i of `parts` near-equal parts of n units. */
static inline int kdc__sched_part(int n, int parts, int i)
{
    return (int)((long)n * i / parts);
}

/* Parts of a GEMM's C (mtiles row panels x ntiles column panels, for each
 * of nimg images) for `threads` threads: about four jobs per thread (a
 * multiple of the thread count when the rows allow), columns first (a
 * column part packs its own B), parts of at least 4 column panels and 2
 * row panels. One thread: one job per image (the BLIS loops inside the
 * GEMM do the blocking). */
void kdc__sched_gemm(int mtiles, int ntiles, int nimg, int threads, int *mparts, int *nparts);

/* Bands of input rows per col2im chunk, so that a few channels (the
 * 3-channel stem) still spread over the threads. */
int kdc__sched_bands(int chunks, int threads, int rows);

#endif /* KDC_SCHED_H */
