/* progress.c - the progress line of commands that walk many images: count,
 * images per second and time left on stderr; rewritten in place on a
 * terminal, plain periodic lines (every `every` seconds) otherwise. */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *what, long total, int every)
{
    p->what = what;
    p->total = total;
    p->every = every > 0 ? every : 10;
    p->t0 = p->last = now_s();
    p->tty = isatty(2);
}

void cli_progress_update(cli_progress *p, long done, int final)
{
    const double t = now_s(), el = t - p->t0, rate = el > 0 ? done / el : 0;
    if (!final && !p->tty && t - p->last < p->every)
        return;
    p->last = t;
    const double eta = rate > 0 ? (p->total - done) / rate : 0;
    fprintf(stderr, "%s%s: %ld/%ld images  %.2f images/s  ETA %dm%02ds%s", p->tty ? "\r" : "",
            p->what, done, p->total, rate, (int)(eta / 60), (int)fmod(eta, 60),
            p->tty && !final ? "   " : "\n");
    fflush(stderr);
}
