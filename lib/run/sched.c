/* sched.c - the splits of sched.h that are more than arithmetic. */
#include "sched.h"

void kdc__sched_gemm(int mtiles, int ntiles, int nimg, int threads, int *mparts, int *nparts)
{
    *mparts = *nparts = 1;
    if (threads <= 1)
        return;
    int want = (4 * threads + nimg - 1) / nimg;
    int np = ntiles / 4;
    if (np < 1)
        np = 1;
    if (np > want)
        np = want;
    int mp = (want + np - 1) / np;
    if (mp > mtiles / 2)
        mp = mtiles / 2;
    if (mp < 1)
        mp = 1;
    /* a whole number of jobs per thread balances better (9 jobs on 2
     * threads leave one thread idle for a ninth of the layer) */
    while ((mp * np) % threads && mp < mtiles / 2)
        mp++;
    *mparts = mp;
    *nparts = np;
}

int kdc__sched_bands(int chunks, int threads, int rows)
{
    int bands = chunks >= 4 * threads ? 1 : (4 * threads + chunks - 1) / chunks;
    if (bands > rows)
        bands = rows;
    return bands;
}
