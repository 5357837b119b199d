/* conv_stem.c - the direct path of a MobileNet's stem conv (the GEMM
 * table's conv_stem, lib/kernels/kernels.h): jobs of output rows, and the
 * ReLU mask of a recording pass (internal; called by kdc__conv2d_fast). */
#include "conv_gemm.h"
#include "sched.h"

int kdc__conv_is_stem(const kdc__gemm_kernels *gk, const kdc__conv_param *cp)
{
    /* the kernel reads A in panels of 8 rows (the AVX-512 table's mr) */
    return gk->conv_stem && gk->mr == KDC__CONV_STEM_MR && cp->packed && cp->groups == 1 &&
           cp->kh == 3 && cp->kw == 3 && cp->stride == 2 && cp->pad == 1 &&
           cp->cin <= KDC__CONV_STEM_CIN;
}

typedef struct kdc__stem_job {
    const kdc__gemm_kernels *gk;
    const kdc__conv_param *cp;
    const float *x;
    float *y;
    int ih, iw, oh, ow;
    const kdc__gemm_epilogue *ep; /* res of image 0, or NULL */
    const kdc__mask_rec *rec;     /* mask of image 0, or NULL */
    kdc__sched_ch rows, masks;
} kdc__stem_job;

static void kdc__stem_task(void *ctx, int t)
{
    const kdc__stem_job *j = ctx;
    const kdc__conv_param *cp = j->cp;
    int b, r0, r1;
    kdc__sched_ch_range(&j->rows, t, j->oh, &b, &r0, &r1);
    const size_t in = (size_t)cp->cin * j->ih * j->iw, out = (size_t)cp->cout * j->oh * j->ow;
    kdc__gemm_epilogue e, *ep = NULL;
    if (j->ep) {
        e = *j->ep;
        if (e.res)
            e.res += b * out;
        ep = &e;
    }
    j->gk->conv_stem(j->x + b * in, cp->cin, j->ih, j->iw, cp->packed, cp->cout, j->y + b * out,
                     j->oh, j->ow, r0, r1, ep);
}

static void kdc__stem_mask_task(void *ctx, int t)
{
    const kdc__stem_job *j = ctx;
    int b, c0, c1;
    kdc__sched_ch_range(&j->masks, t, j->cp->cout, &b, &c0, &c1);
    const size_t ohw = (size_t)j->oh * j->ow, words = (ohw + 63) / 64;
    const size_t out = (size_t)j->cp->cout * ohw;
    j->rec->fn(j->y + b * out, j->rec->mask + b * j->cp->cout * words, ohw, j->ep->clamp, c0,
               c1);
}

void kdc__conv_stem(kdc__pool *pool, const kdc__gemm_kernels *gk, const kdc__conv_param *cp,
                    const float *x, int n, int ih, int iw, float *y, int oh, int ow,
                    const kdc__gemm_epilogue *ep, kdc__mask_rec *rec)
{
    const int threads = kdc__pool_threads(pool);
    kdc__stem_job j = {.gk = gk, .cp = cp, .x = x, .y = y, .ih = ih, .iw = iw, .oh = oh,
                       .ow = ow, .ep = ep, .rec = rec};
    /* 9 cin multiply-adds an output, weighed as the depthwise ones (9 like
     * 4 floats of a copy) */
    kdc__sched_channels(n, oh, 4.0 * cp->cin * cp->cout * ow, KDC__SCHED_CH_CHUNK, threads,
                        &j.rows);
    kdc__pool_run_capped(pool, j.rows.jobs, j.rows.threads, kdc__stem_task, &j);
    if (rec && ep) { /* the masks, from the finished planes */
        kdc__sched_channels(n, cp->cout, (double)oh * ow, KDC__SCHED_WIDE_CHUNK, threads,
                            &j.masks);
        kdc__pool_run_capped(pool, j.masks.jobs, j.masks.threads, kdc__stem_mask_task, &j);
        rec->done = 1;
    }
}
