/* conv_gemm.h - dense convs and LINEAR lowered to the packed GEMM, and the
 * per-run workspaces they use (conv_gemm.c; internal). */
#ifndef KDC_CONV_GEMM_H
#define KDC_CONV_GEMM_H

#include <stdatomic.h>
#include <stddef.h>

#include "graph.h"
#include "kernels.h"
#include "threadpool.h"

/* Per-thread GEMM packing buffers of a run and the backward im2col buffer.
 * Tasks claim a free slot (at most nslots run at once, one per thread). */
typedef struct kdc__work {
    int nslots;
    float *mem;           /* nslots * KDC__GEMM_WORK floats, 64-byte aligned */
    atomic_int *busy;     /* (nslots)                                       */
    float *cols;          /* backward-data columns; a batched LINEAR's block */
    size_t cols_cap;      /* floats                                          */
    float *xpad, *wide;   /* stride-1 convs: padded input, wide output      */
    size_t xpad_cap, wide_cap;
    float *wt;            /* one layer's derived weights, large inputs      */
    size_t wt_cap;        /* floats                                          */
    float *bpack;         /* B packed once for a GEMM split by rows          */
    size_t bpack_cap;     /* floats, at most KDC__COLS_MAX                   */
    float *wino_v, *wino_m; /* Winograd: transformed input, products         */
    size_t wino_v_cap, wino_m_cap;
} kdc__work;

/* *p holds at least need floats (grown with malloc, contents lost);
 * KDC_ERR_NO_MEMORY. */
kdc_status kdc__grow(float **p, size_t *cap, size_t need);

/* Makes room for nslots slots; KDC_ERR_NO_MEMORY. */
kdc_status kdc__work_reserve(kdc__work *ws, int nslots);
void kdc__work_free(kdc__work *ws);
/* Room for n floats (64-byte aligned) of ws->wt; KDC_ERR_NO_MEMORY. */
kdc_status kdc__work_wt(kdc__work *ws, size_t n);
/* Frees the forward-only buffers (padded input, wide output rows) when they
 * are large (a detector's stem: 75 MB at 800 x 1216): a backward pass does
 * not use them, and the next forward makes them again. */
void kdc__work_release_forward(kdc__work *ws);
/* Makes room for the buffers a forward of this conv on one image needs
 * (without them it takes a slower path); KDC_ERR_NO_MEMORY. */
kdc_status kdc__conv_reserve(kdc__work *ws, const kdc__conv_param *cp, int ih, int iw, int oh,
                             int ow);

/* Dense convolution (groups == 1) or LINEAR through the GEMM (cp->packed
 * set), forward, for the n images of x (n, cin, ih, iw) into y (n, cout,
 * oh, ow): y = conv(x) (+ bias), then the epilogue ep (may be NULL; its res
 * is image 0's residual, laid out like y). Split over output tiles. ws
 * needs at least as many slots as the pool has threads, and the buffers of
 * kdc__conv_reserve for the fast padded path (else the slower im2col
 * packing is used). */
void kdc__conv2d_fast(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                      const kdc__conv_param *cp, const float *x, int n, int ih, int iw, float *y,
                      int oh, int ow, const kdc__gemm_epilogue *ep);
/* Whether the table computes this conv directly (conv_stem: a dense 3x3
 * stride-2 conv of at most KDC__CONV_STEM_CIN input channels, packed). */
int kdc__conv_is_stem(const kdc__gemm_kernels *gk, const kdc__conv_param *cp);
/* Such a conv for the n images of x into y, as kdc__conv2d_fast (ep: the
 * epilogue with the conv's bias, or NULL), split over output rows; then,
 * when rec is not NULL (a recording pass's ReLU, image 0's mask), the
 * masks of the finished planes (conv_stem.c). */
void kdc__conv_stem(kdc__pool *pool, const kdc__gemm_kernels *gk, const kdc__conv_param *cp,
                    const float *x, int n, int ih, int iw, float *y, int oh, int ow,
                    const kdc__gemm_epilogue *ep, kdc__mask_rec *rec);
/* Its backward-data, accumulated: dx += conv^T(dy), with wt the transposed
 * weight packing (KDC__DERIVED_T); with accumulate 0, dx = conv^T(dy), its
 * old contents never read (only where kdc__conv_backward_overwrites(cp):
 * a 1x1 stride-1 conv, whose GEMM then starts from zero instead of
 * loading a zeroed dx: the same bits). KDC_ERR_NO_MEMORY (column
 * buffer). */
kdc_status kdc__conv2d_backward_data_fast(kdc__pool *pool, kdc__work *ws,
                                          const kdc__gemm_kernels *gk, const kdc__conv_param *cp,
                                          const float *wt, const float *dy, int n, int oh, int ow,
                                          float *dx, int ih, int iw, int accumulate);
/* Whether the backward-data above can overwrite dx (accumulate 0). */
int kdc__conv_backward_overwrites(const kdc__conv_param *cp);
/* The backward-data of such a conv (kdc__conv_backward_overwrites) of n
 * images of hw pixels, carried on through the ReLU and BatchNorm before it
 * by the epilogue's backward form (ep->bmask: the ReLU's mask of image 0,
 * each image's cin * ep->bwords words on): dx, the BatchNorm input's new
 * gradient, written whole. Only for tables with ep_bmask. */
void kdc__conv2d_backward_data_through(kdc__pool *pool, kdc__work *ws,
                                       const kdc__gemm_kernels *gk, const kdc__conv_param *cp,
                                       const float *wt, const float *dy, int n, int hw,
                                       const kdc__gemm_epilogue *ep, float *dx);

/* nimg independent GEMMs C_i (m x n, row-major) = A_i (packed, m x k) *
 * B_i (row-major k x n), with A_i = a + i * a_img, B_i = b + i * b_img,
 * C_i = c + i * c_img, run as one pool job (Winograd's 16 products). */
void kdc__gemm_batch(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk, const float *a,
                     size_t a_img, int k, int m, int n, const float *b, size_t b_img, float *c,
                     size_t c_img, int nimg);

#endif /* KDC_CONV_GEMM_H */
