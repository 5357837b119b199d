/* kernels.h - the SIMD micro-kernel tables (internal).
 *
 * One table per kernel family and instruction set. The ISA of a model is
 * chosen once, when the model is loaded (kdc_model_options.kernels: the best
 * one the CPU has, or the one asked for), and every op of every run of that
 * model uses its tables. The scalar tables are always there: the fallback on
 * CPUs without the SIMD extensions, and the reference the SIMD kernels are
 * tested against (besides the plain reference convolution of nn/conv.c).
 *
 * Micro-kernels are named by what they compute, their tile and their ISA,
 * as in XNNPACK: kdc__f32_gemm_6x16_avx2 is the fp32 GEMM micro-kernel of
 * a 6-row by 16-column tile in AVX2 + FMA. Files that hold SIMD code are
 * named after their ISA (*_avx2.c, *_avx512.c, *_neon.c) and get that ISA's compiler
 * flags from the Makefile; on another architecture they compile to nothing.
 */
#ifndef KDC_KERNELS_H
#define KDC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum kdc__isa {
    KDC__ISA_SCALAR = 0,
    KDC__ISA_AVX2 = 1, /* x86-64 AVX2 + FMA */
    KDC__ISA_NEON = 2, /* aarch64 Advanced SIMD */
    KDC__ISA_AVX512 = 3 /* x86-64 AVX-512F (+ AVX2 + FMA for the other families) */
} kdc__isa;

/* GEMM micro-kernel: the m x n corner (m <= mr, n <= nr) of
 *     C = (accumulate ? C : 0) + A * B
 * where C is row-major with row stride ldc, A is an mr-row panel packed as
 * k columns of mr floats (rows past m are zero), and B is an nr-column
 * panel packed as k rows of nr floats (columns past n are zero). k >= 1.
 * The sum over k runs in increasing k with one fused multiply-add per term
 * and lane, so a result does not depend on where the tile sits. */
typedef void (*kdc__gemm_ukernel)(int k, const float *a, const float *b, float *c, size_t ldc,
                                  int m, int n, int accumulate);

struct kdc__gemm_epilogue;
struct kdc__dw_bthru;
/* Depthwise 3x3 convolution of one channel plane, zero padding pad (0 or
 * 1), stride 1 or 2: y (oh x ow) = bias + sum of w[ky*3+kx] * x(...); then,
 * when ep is not NULL, the GEMM epilogue (below) as for row c of a GEMM,
 * res the plane's residual (NULL when ep->res is not used): the same bits
 * as kdc__gemm_epilogue_scalar on the finished plane. */
typedef void (*kdc__dw3x3_kernel)(const float *x, int ih, int iw, const float *w, float bias,
                                  float *y, int oh, int ow, int stride, int pad,
                                  const struct kdc__gemm_epilogue *ep, int c, const float *res);
/* Its backward-data for one channel plane: dx (ih x iw) += transpose of the
 * above applied to dy (oh x ow). */
typedef void (*kdc__dw3x3_backward_kernel)(const float *dy, int oh, int ow, const float *w,
                                           float *dx, int ih, int iw, int stride, int pad);

/* The GEMM epilogue (kdc__gemm_epilogue, below) on the m x n block v (row
 * stride ldv) of rows [row, row + m); res: the residual block (row stride
 * ldres) when ep->res is used, else NULL. Same float operations as the
 * unfused scalar ops, so any implementation gives the same bits. */
typedef void (*kdc__gemm_epilogue_fn)(const struct kdc__gemm_epilogue *ep, float *v, size_t ldv,
                                      int row, int m, const float *res, size_t ldres, int n);

/* The micro-kernel with the epilogue applied in its registers, for a full
 * mr x nr tile of rows [row, row + mr): the tile of C = (accumulate ? C :
 * 0) + A * B, then the epilogue with res (row stride ldres, NULL when
 * ep->res is not used), stored once. The same bits as the micro-kernel
 * followed by the epilogue; it saves the store and reload of the tile and
 * the epilogue's separate pass (kdc__gemm uses it on the last depth block). */
typedef void (*kdc__gemm_ep_ukernel)(int k, const float *a, const float *b, float *c, size_t ldc,
                                     int accumulate, const struct kdc__gemm_epilogue *ep, int row,
                                     const float *res, size_t ldres);

/* The last, narrow column panel (n <= KDC__GEMM_NARROW columns) for m rows
 * at once: the m x n corner of C = (accumulate ? C : 0) + A * B, where A is
 * ceil(m / mr) consecutive mr-row panels, astride floats apart (each packed
 * as for the micro-kernel, k columns of mr floats), and B one nr-column
 * panel as for the micro-kernel. Every element is the same fused
 * multiply-add chain as in the micro-kernel, so the same bits; it runs the
 * rows of several panels side by side (a column of C in each lane), where
 * the micro-kernel would spend a whole tile's work on a column or two (a
 * 7 x 7 layer's 49 = 3 x 16 + 1 columns, a fully connected layer's one).
 * B may also start half a panel in (the table's `half`, below). */
enum { KDC__GEMM_NARROW = 4 };
typedef void (*kdc__gemm_narrow_ukernel)(int k, const float *a, size_t astride, const float *b,
                                         float *c, size_t ldc, int m, int n, int accumulate);

/* The micro-kernel and its epilogue form for a full-width tile (nr
 * columns, m <= mr rows) whose B is not packed: row p of the tile's B at
 * brow[p] + col (brow holds at least k + 19 pointers: the kernel
 * prefetches 16 to 19 rows ahead). A dense B's rows are ld apart; a
 * shifted B's (the phase planes of a strided or padded conv) are runs of
 * planes at no common stride. The same multiply-add chains as the packed
 * forms, so the same bits. */
typedef void (*kdc__gemm_rows_ukernel)(int k, const float *a, const float *const *brow,
                                       size_t col, float *c, size_t ldc, int m, int accumulate);
typedef void (*kdc__gemm_ep_rows_ukernel)(int k, const float *a, const float *const *brow,
                                          size_t col, float *c, size_t ldc, int accumulate,
                                          const struct kdc__gemm_epilogue *ep, int row,
                                          const float *res, size_t ldres);

/* A dense 3x3 conv, stride 2, padding 1, of cin <= KDC__CONV_STEM_CIN
 * input channels (a MobileNet's stem), computed directly: output rows
 * [oy0, oy1) of the cout channels of one image, x (cin, ih, iw) -> y (cout,
 * oh, ow), apack the weights packed as the GEMM's A (panels of
 * KDC__CONV_STEM_MR rows: only for a table with that mr), then the epilogue ep (may be NULL; res laid out like y; no
 * mask recording, no bmask). Each output is the GEMM path's chain (acc =
 * +0, then k = (ci, ky, kx) ascending, zeros in the padding) and epilogue,
 * so the same bits as kdc__conv2d_fast through the GEMM. */
enum { KDC__CONV_STEM_CIN = 4, KDC__CONV_STEM_MR = 8 /* A's panels: rows */ };
typedef void (*kdc__conv_stem_kernel)(const float *x, int cin, int ih, int iw, const float *apack,
                                      int cout, float *y, int oh, int ow, int oy0, int oy1,
                                      const struct kdc__gemm_epilogue *ep);

/* One table per kernel family and ISA (XNNPACK style). */
typedef struct kdc__gemm_kernels {
    kdc__isa isa;
    const char *name; /* "f32-gemm-6x16-avx2", ...                */
    int mr, nr;       /* tile                                        */
    kdc__gemm_ukernel gemm;
    kdc__gemm_epilogue_fn epilogue; /* kdc__gemm_epilogue_scalar or a SIMD one */
    kdc__gemm_ep_ukernel gemm_ep;   /* NULL: gemm, then epilogue           */
    kdc__gemm_narrow_ukernel narrow;/* NULL: the micro-kernel per panel    */
    /* > 0: the micro-kernel runs n <= half columns at half a tile's cost, so
     * a last panel of half + 1 .. half + KDC__GEMM_NARROW columns is split:
     * its left half to the micro-kernel, the rest to narrow (the AVX-512
     * tile's 32 columns: a 7 x 7 layer's 49 = 32 + 16 + 1). 0: never */
    int half;
    int ep_bmask; /* gemm_ep and epilogue run the epilogue's bmask form */
    kdc__gemm_rows_ukernel gemm_rows;       /* NULL: B always packed          */
    kdc__gemm_ep_rows_ukernel gemm_ep_rows; /* with gemm_rows                 */
    int inplace_k; /* the least depth whose B gemm_rows reads in place */
    kdc__conv_stem_kernel conv_stem; /* NULL: stems through the GEMM   */
} kdc__gemm_kernels;

/* The forward of up to 8 channels at once: channels [c, c + nc), nc <= 8,
 * their planes xplane (input) and yplane (output) floats apart from x and
 * y, their filters 9 floats apart from w, their biases from bias + c
 * (NULL: none); then the epilogue as for rows c.. of a GEMM, without a
 * residual (ep->res NULL). The same bits as kdc__dw3x3_kernel on each
 * plane (the same chain per output, the same zeros for columns outside
 * the input): it runs the channels side by side, one per lane, over bands
 * of rows turned channel-last into a buffer of KDC__DW_C8_PLANE x 8 floats,
 * where a small plane leaves most of a vector idle and a stride-2 plane
 * costs the plane kernel its even/odd splits. kdc__dw_c8_forward says
 * where a forward runs it. */
enum { KDC__DW_C8_PLANE = 1024 };
typedef void (*kdc__dw3x3_c8_kernel)(const float *x, size_t xplane, int ih, int iw,
                                     const float *w, const float *bias, float *y, size_t yplane,
                                     int oh, int ow, int stride, int pad,
                                     const struct kdc__gemm_epilogue *ep, int c, int nc);

/* The backward-data of up to 8 channels at once, [c, c + nc): for each,
 * what kdc__dw3x3_backward_kernel does to its plane (dx += transpose of the
 * conv applied to dy), with dy planes yplane and dx planes xplane floats
 * apart, filters 9 floats apart. The same bits: each dx element is the plane
 * kernel's chain (its old value, then the taps of the dy rows it receives,
 * ky and then kx ascending, zeros for dy columns outside), run with the 8
 * channels in the lanes over bands of dy rows turned channel-last; dx is
 * read and written through 8x8 transposes. With accumulate 0 the chains
 * start from +0 instead of dx's old values, which are never read (the
 * bits of adding into a zeroed dx, without the zeroing): every element
 * of the nc planes is written. */
typedef void (*kdc__dw3x3_backward_c8_kernel)(const float *dy, size_t yplane, int oh, int ow,
                                              const float *w, float *dx, size_t xplane, int ih,
                                              int iw, int stride, int pad, int nc,
                                              int accumulate, const struct kdc__dw_bthru *thru);

/* The ReLU and BatchNorm before a depthwise conv, whose backward the
 * eight-channel backward may carry on through (thru, with accumulate 0):
 * each dx value v is then written as the fused ReLU + BatchNorm backward
 * writes a new gradient (kdc__relu_scale_backward_fn, accumulate 0):
 * 0 + g * scale[l], g = 0 + v where bit (iy * iw + ix) of channel l's mask
 * plane is set and, when guided, v > 0, else +0. The same bits as the
 * depthwise backward followed by that pass, without the pass over memory
 * between them. Channel l of the call: mask + l * words, scale[l]. */
typedef struct kdc__dw_bthru {
    const uint64_t *mask;
    size_t words; /* (ih * iw + 63) / 64 */
    const float *scale;
    int guided;
} kdc__dw_bthru;

/* Where three rows of the buffer fit (rows up to 338 wide): every
 * MobileNetV1 plane. There the AVX2 eight-channel kernels are the faster:
 * measured (build/bench/bench_kernels, its "dw-c8"
 * against its "dw" rows, AVX2 kernels, 1 thread, an AMD EPYC Zen 4,
 * 2026-12-07, after the gathered filters and the unrolled stores; three
 * runs): 0.32-0.44x the plane kernel's time at 7x7 and 14x14 (both
 * strides), 0.40-0.47x at 28x28 stride 2 and 0.58-0.75x stride 1,
 * 0.39-0.61x at 56x56 stride 2 and 0.72-0.75x stride 1, 0.60-0.90x at
 * 112x112 stride 2 and 0.75-0.99x stride 1. (An earlier build on a Zen 3
 * tied at 56x56 and 112x112 stride 1, 0.93-1.07x, and left those to the
 * plane kernel.) */
static inline int kdc__dw_c8_pays(int iw)
{
    return 3 * ((size_t)iw + 3) <= KDC__DW_C8_PLANE;
}

typedef struct kdc__dw_kernels {
    kdc__isa isa;
    const char *name; /* "f32-dw3x3-avx2", ...                      */
    kdc__dw3x3_kernel dw3x3;
    kdc__dw3x3_backward_kernel dw3x3_backward;
    kdc__dw3x3_c8_kernel dw3x3_c8; /* NULL: dw3x3 plane by plane      */
    kdc__dw3x3_backward_c8_kernel dw3x3_backward_c8; /* NULL: plane by plane */
    int c8_max_ow; /* the forward's dw3x3_c8 for outputs at most this wide */
} kdc__dw_kernels;

/* The AVX-512 table's c8_max_ow: its plane kernels (dwconv_avx512.c) take
 * outputs wider than this, the AVX2 eight-channel ones the rest (measured:
 * lib/nn/dwconv.c). */
enum { KDC__DW_AVX512_C8_MAX_OW = 7 };

/* Whether a forward runs dw3x3_c8 on inputs iw wide and outputs ow wide:
 * the table has it, it pays (kdc__dw_c8_pays) and the table's plane
 * kernel is not the faster at this width (c8_max_ow). */
static inline int kdc__dw_c8_forward(const kdc__dw_kernels *k, int iw, int ow)
{
    return k->dw3x3_c8 && ow <= k->c8_max_ow && kdc__dw_c8_pays(iw);
}

/* ReLU backward state (lib/nn/act.c): the bit mask of where the gradient
 * passes, from the ReLU's output y (bit i of plane c set iff 0 < y < clamp,
 * NaN never), and the backward dx += dy where the bit is set (guided: and
 * dy > 0). Planes of hw floats; mask planes of (hw + 63) / 64 words, the
 * bits past hw zero. Channels [c0, c1). Every ISA gives the scalar
 * reference's bits: a comparison per element and one add. */
typedef void (*kdc__relu_mask_fn)(const float *y, uint64_t *mask, size_t hw, float clamp, int c0,
                                  int c1);
typedef void (*kdc__relu_backward_fn)(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                      int guided, int c0, int c1);

/* The interior of 3x3 max pooling (lib/nn/pool.c): n outputs of one row
 * whose windows lie wholly inside the plane, window j's top-left input at
 * p + j * stride (stride 1 or 2), rows iw floats apart. Each output scans
 * its window row by row, m = v when v > m or v is NaN, from -inf (PyTorch's
 * rule); every ISA gives the scalar kernel's bits. */
typedef void (*kdc__maxpool3_row_fn)(const float *p, int iw, int stride, float *y, int n);
/* The same recording each output's winner for the backward: idx[j] = the
 * plane index of the tap where m was last set, with at0 the plane index of
 * p[0]; the first tap is always taken (kdc__maxpool_idx_ref's rule: the
 * same m, and the first maximum or the last NaN wins). */
typedef void (*kdc__maxpool3_row_idx_fn)(const float *p, int iw, int stride, float *y,
                                         int32_t *idx, int32_t at0, int n);

typedef struct kdc__pool_kernels {
    kdc__isa isa;
    const char *name; /* "f32-maxpool3-avx512", ...                 */
    kdc__maxpool3_row_fn maxpool3_row;
    kdc__maxpool3_row_idx_fn maxpool3_row_idx;
} kdc__pool_kernels;

/* BatchNorm's backward (lib/nn/norm.c): dx += dy * scale[c] on planes of
 * hw floats, channels [c0, c1); a multiply and an add per element, rounded
 * apart (never fused), so every ISA gives the reference's bits. dy and dx
 * are distinct planes or the very same ones. */
typedef void (*kdc__scale_add_fn)(const float *dy, float *dx, size_t hw, const float *scale,
                                  int c0, int c1);

/* A ReLU's backward and the backward of the BatchNorm before it in one
 * pass, for when the BatchNorm's output gradient is wanted by nothing
 * else: dx += g * scale[c] with g = 0 + dy where the gradient passes (as
 * relu_backward), else 0: the float operations of relu_backward into a
 * zeroed buffer followed by scale_add from it, so the same bits. With
 * accumulate 0, dx = 0 + g * scale[c], dx never read: the bits of
 * accumulating into a zeroed dx, without the zeroing. */
typedef void (*kdc__relu_scale_backward_fn)(const float *dy, const uint64_t *mask, float *dx,
                                            size_t hw, int guided, const float *scale, int c0,
                                            int c1, int accumulate);

typedef struct kdc__act_kernels {
    kdc__isa isa;
    const char *name; /* "f32-relu-mask-avx512", ...                */
    kdc__relu_mask_fn relu_mask;
    kdc__relu_backward_fn relu_backward;
    kdc__scale_add_fn scale_add;
    kdc__relu_scale_backward_fn relu_scale_backward;
} kdc__act_kernels;

/* Whether this CPU and this build run isa (scalar: always). Decided from
 * the CPU's features on each call (cheap); no global state. */
int kdc__isa_supported(kdc__isa isa);
/* The best isa this CPU and build support. */
kdc__isa kdc__isa_best(void);
/* "scalar", "avx2", "neon", "avx512" */
const char *kdc__isa_name(kdc__isa isa);

/* The table of a family for isa, or NULL when this build or this CPU lacks
 * it (gemm.c, nn/dwconv.c). */
const kdc__gemm_kernels *kdc__gemm_kernels_get(kdc__isa isa);
const kdc__dw_kernels *kdc__dw_kernels_get(kdc__isa isa);
const kdc__act_kernels *kdc__act_kernels_get(kdc__isa isa); /* nn/act.c */
const kdc__pool_kernels *kdc__pool_kernels_get(kdc__isa isa); /* nn/pool.c */

/* The max-pooling row kernels (nn/pool.c, x86/pool_avx2.c, x86/pool_avx512.c);
 * on aarch64 the scalar one serves. */
void kdc__f32_maxpool3_row_scalar(const float *p, int iw, int stride, float *y, int n);
void kdc__f32_maxpool3_row_idx_scalar(const float *p, int iw, int stride, float *y, int32_t *idx,
                                      int32_t at0, int n);
#if defined(__x86_64__)
void kdc__f32_maxpool3_row_avx2(const float *p, int iw, int stride, float *y, int n);
void kdc__f32_maxpool3_row_idx_avx2(const float *p, int iw, int stride, float *y, int32_t *idx,
                                    int32_t at0, int n);
void kdc__f32_maxpool3_row_avx512(const float *p, int iw, int stride, float *y, int n);
#endif

/* The ReLU mask kernels (nn/act.c, x86/act_avx2.c, x86/act_avx512.c); the scalar ones
 * are kdc__relu_mask and kdc__relu_backward_ref of lib/graph.h. On aarch64
 * the scalar ones serve (no NEON version yet). */
#if defined(__x86_64__)
void kdc__f32_relu_mask_avx2(const float *y, uint64_t *mask, size_t hw, float clamp, int c0,
                             int c1);
void kdc__f32_relu_backward_avx2(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                 int guided, int c0, int c1);
void kdc__f32_relu_mask_avx512(const float *y, uint64_t *mask, size_t hw, float clamp, int c0,
                               int c1);
void kdc__f32_relu_backward_avx512(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                   int guided, int c0, int c1);
/* the AVX-512 table borrows scale_add (memory-bound) */
void kdc__f32_scale_add_avx2(const float *dy, float *dx, size_t hw, const float *scale, int c0,
                             int c1);
void kdc__f32_relu_scale_backward_avx2(const float *dy, const uint64_t *mask, float *dx,
                                       size_t hw, int guided, const float *scale, int c0,
                                       int c1, int accumulate);
void kdc__f32_relu_scale_backward_avx512(const float *dy, const uint64_t *mask, float *dx,
                                         size_t hw, int guided, const float *scale, int c0,
                                         int c1, int accumulate);
#endif

/* The GEMM micro-kernels (gemm.c, x86/gemm_avx2.c, x86/gemm_avx512.c, arm/gemm_neon.c). The scalar one
 * does a separate multiply and add per term (no FMA instruction to rely
 * on); it has the same tile-position independence. */
void kdc__f32_gemm_4x8_scalar(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                              int n, int accumulate);
#if defined(__x86_64__)
/* A register-only loop of 12 independent 8-lane FMA chains, iters times
 * (192 flops per iteration): this core's FMA peak, for bench/. Returns a
 * value that depends on every result. */
float kdc__f32_fma_peak_avx2(long iters);
void kdc__f32_gemm_6x16_avx2(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                             int n, int accumulate);
/* The same for 16 16-lane chains (256 flops per iteration). */
float kdc__f32_fma_peak_avx512(long iters);
void kdc__f32_gemm_8x32_avx512(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                               int n, int accumulate);
#endif
#if defined(__aarch64__)
void kdc__f32_gemm_8x8_neon(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                            int n, int accumulate);
#endif

/* The depthwise 3x3 kernels (nn/dwconv.c, x86/dwconv_avx2.c and
 * x86/dwconv_c8_avx2.c, arm/dwconv_neon.c), of types kdc__dw3x3_kernel /
 * kdc__dw3x3_backward_kernel. The scalar ones add in the reference's
 * order with separate multiply and add (equal to
 * kdc__conv2d_ref); the SIMD ones use the same order with one FMA per term,
 * so AVX2 and NEON agree to the bit (see nn/dwconv.c). */
void kdc__f32_dw3x3_scalar(const float *x, int ih, int iw, const float *w, float bias, float *y,
                           int oh, int ow, int stride, int pad, const struct kdc__gemm_epilogue *ep,
                           int c, const float *res);
void kdc__f32_dw3x3_backward_scalar(const float *dy, int oh, int ow, const float *w, float *dx,
                                    int ih, int iw, int stride, int pad);
#if defined(__x86_64__)
void kdc__f32_dw3x3_avx2(const float *x, int ih, int iw, const float *w, float bias, float *y,
                         int oh, int ow, int stride, int pad, const struct kdc__gemm_epilogue *ep,
                         int c, const float *res);
void kdc__f32_dw3x3_backward_avx2(const float *dy, int oh, int ow, const float *w, float *dx,
                                  int ih, int iw, int stride, int pad);
void kdc__f32_dw3x3_avx512(const float *x, int ih, int iw, const float *w, float bias, float *y,
                           int oh, int ow, int stride, int pad, const struct kdc__gemm_epilogue *ep,
                           int c, const float *res);
void kdc__f32_dw3x3_backward_avx512(const float *dy, int oh, int ow, const float *w, float *dx,
                                    int ih, int iw, int stride, int pad);
void kdc__f32_dw3x3_backward_c8_avx512(const float *dy, size_t yplane, int oh, int ow,
                                       const float *w, float *dx, size_t xplane, int ih, int iw,
                                       int stride, int pad, int nc, int accumulate,
                                       const struct kdc__dw_bthru *thru);
void kdc__f32_dw3x3_c8_avx2(const float *x, size_t xplane, int ih, int iw, const float *w,
                            const float *bias, float *y, size_t yplane, int oh, int ow,
                            int stride, int pad, const struct kdc__gemm_epilogue *ep, int c,
                            int nc);
void kdc__f32_dw3x3_backward_c8_avx2(const float *dy, size_t yplane, int oh, int ow,
                                     const float *w, float *dx, size_t xplane, int ih, int iw,
                                     int stride, int pad, int nc, int accumulate,
                                     const kdc__dw_bthru *thru);
#endif
#if defined(__aarch64__)
void kdc__f32_dw3x3_neon(const float *x, int ih, int iw, const float *w, float bias, float *y,
                         int oh, int ow, int stride, int pad, const struct kdc__gemm_epilogue *ep,
                         int c, const float *res);
void kdc__f32_dw3x3_backward_neon(const float *dy, int oh, int ow, const float *w, float *dx,
                                  int ih, int iw, int stride, int pad);
#endif

/* Shared by the SIMD depthwise kernels (the NEON ones, AVX2's backward):
 * zero-padded copies of the rows they
 * read, so that every vector load is a plain in-bounds load whatever the
 * padding, width and tail. A plane is processed in strips of at most
 * KDC__DW_STRIP outputs; a strip reads columns [c0, c0 + len) of a row of
 * width w (zero outside [0, w)). Four slots hold the rows in use (any four
 * consecutive rows fall in different slots, row % 4: two output rows of
 * stride 1 read four), each row copied once per strip. The zeros depend
 * only on the strip, so they are written once and a row copies its middle
 * part [lo, hi) only. On the stack (8.7 KB): no allocation, no state
 * between calls. */
enum { KDC__DW_STRIP = 256, KDC__DW_ROW = 2 * KDC__DW_STRIP + 32 };

typedef struct kdc__dw_rows {
    float buf[4][KDC__DW_ROW];
    int held[4]; /* row held by each slot, -1: none     */
    int c0, lo, hi;
} kdc__dw_rows;

/* len <= KDC__DW_ROW */
static inline void kdc__dw_rows_init(kdc__dw_rows *rw, int w, int c0, int len)
{
    for (int s = 0; s < 4; s++) {
        for (int j = 0; j < len; j++)
            rw->buf[s][j] = 0.0f;
        rw->held[s] = -1;
    }
    rw->c0 = c0;
    rw->lo = c0 < 0 ? -c0 : 0;
    rw->hi = w - c0 < len ? w - c0 : len;
    if (rw->hi < rw->lo)
        rw->hi = rw->lo;
}

/* Row r (0 <= r < rows) of the plane src of width w, as the strip sees it:
 * element j of the result is src[r][c0 + j]. */
static inline const float *kdc__dw_row(kdc__dw_rows *rw, const float *src, int w, int r)
{
    float *d = rw->buf[r % 4];
    if (rw->held[r % 4] != r) {
        const float *s = src + (size_t)r * w + (rw->c0 + rw->lo);
        for (int j = rw->lo; j < rw->hi; j++)
            d[j] = s[j - rw->lo];
        rw->held[r % 4] = r;
    }
    return d;
}

/* ---- the packed GEMM driver (gemm.c) ----
 *
 * C (m x n, row-major, row stride ldc) = A (m x k) * B (k x n), BLIS style:
 * A is packed once (weights, at model load) into mr-row panels spanning the
 * whole depth k (panel i holds rows [i*mr, i*mr + mr), as k columns of mr
 * floats, zero rows past m), so the depth block [p0, p0 + kc) of panel i is
 * the contiguous run at panel + p0 * mr. B is packed per call, depth block
 * by depth block, into nr-column panels in a caller-provided workspace of
 * KDC__GEMM_WORK floats. Cache blocking: KC depth, MC rows, NC columns at
 * most, and a packed B block of at most KDC__GEMM_BBLOCK floats (fewer
 * columns for deep blocks), which stays in L2 while each mr-row panel of
 * A, in L1, sweeps it: the tiles of C are then written along its rows.
 * KC = 512 rather than 256: a 512-deep layer (MobileNetV1's 14 x 14 ones)
 * then stores and reloads no partial sums, and a 1024-deep one half as
 * many (whole models 0.98-0.995x the time on 1 thread, the same on 2;
 * tools/bench_builds.sh, 2026-12-07, Zen 4). */
enum { KDC__GEMM_KC = 512, KDC__GEMM_MC = 144, KDC__GEMM_NC = 1024 };
enum { KDC__GEMM_BBLOCK = 1 << 16 };
#define KDC__GEMM_WORK ((size_t)KDC__GEMM_KC * (KDC__GEMM_NC + 16))

/* Floats of A (m x k) packed in mr-row panels. */
size_t kdc__gemm_packed_size(int m, int k, int mr);
/* Packs A, whose element (i, p) is a[i * rs + p * cs], into dst
 * (kdc__gemm_packed_size floats): rs = k, cs = 1 packs a row-major matrix,
 * rs = 1, cs = m its transpose. */
void kdc__gemm_pack_a(const float *a, ptrdiff_t rs, ptrdiff_t cs, int m, int k, int mr,
                      float *dst);
/* Element (i, p) of a packed A. */
static inline float kdc__gemm_packed_at(const float *pa, int k, int mr, int i, int p)
{
    return pa[((size_t)(i / mr) * k + p) * mr + i % mr];
}

/* Where B comes from: a row-major matrix; or the implicit im2col of one
 * image of a convolution input (row p = (channel, ky, kx) in that order,
 * column j = output pixel oy * ow + ox), packed on the fly; or (SHIFTED)
 * the im2col of a conv over its zero-padded input split into stride x
 * stride phase planes of row width ld and pplane floats each (plane floats
 * per channel), with output pixels numbered oy * ld + ox (ld - ow unused
 * columns per row): row (c, ky, kx) is then the contiguous run at
 * x + c * plane + (ky % s * s + kx % s) * pplane + ky / s * ld + kx / s,
 * packed as fast as a dense matrix (lib/run/conv_gemm.c builds the planes). */
typedef struct kdc__gemm_b {
    const float *x;    /* DENSE: row-major k x n; IM2COL: (c, ih, iw)          */
    size_t ld;         /* DENSE: row stride; SHIFTED: padded row width          */
    int im2col;        /* 1: IM2COL, 2: SHIFTED                                 */
    int ih, iw, kh, kw, stride, pad, oh, ow;
    size_t plane;      /* SHIFTED: floats per channel (all its phase planes)    */
    size_t pplane;     /* SHIFTED: floats per phase plane                       */
    /* Or B already packed (then the fields above are not read): for every
     * depth block [p0, p0 + kc) of KDC__GEMM_KC rows (the last one shorter)
     * its nr-column panels as kdc__gemm_pack_b_block writes them, the
     * block at packed + p0 * npad; npad = the columns rounded up to whole
     * panels. Lets the threads of a GEMM split by rows share one packing. */
    const float *packed;
    size_t npad;
} kdc__gemm_b;

/* Whether kdc__gemm reads the full panels of B (not packed) in place in
 * a call for `rows` rows of C and depth k: at most KDC__GEMM_INPLACE_M
 * rows (16 AVX-512 or 21 AVX2 row panels) share each panel, the depth is
 * at least the table's inplace_k, the table has gemm_rows, and B is dense
 * with rows of whole 64-byte lines, or SHIFTED. Outside these,
 * packing paid for itself (kdcam bench --layers, 2026-12-07, Zen 4):
 * ResNet-50's bottleneck conv3s (128 rows and more) took 1.02-1.11x their
 * packed time in place, MobileNetV1's first pointwise conv (depth 32) with
 * AVX2 1.075x (so AVX2's inplace_k is 64); with AVX-512 that conv took
 * 0.96x (2026-12-08), so its inplace_k is 32. */
enum { KDC__GEMM_INPLACE_M = 128 };
int kdc__gemm_b_inplace(const kdc__gemm_kernels *gk, const kdc__gemm_b *b, int rows, int k);

/* Packs rows [p0, p0 + kc) (kc <= KDC__GEMM_KC) and columns [n0, n0 + nc)
 * of B into ceil(nc / nr) panels of kc x nr floats at dst, columns past
 * the end zero. */
void kdc__gemm_pack_b_block(const kdc__gemm_b *b, int p0, int kc, int n0, int nc, int nr,
                            float *dst);

/* A recording pass's ReLU mask of the values an epilogue ends with (its
 * relu), made by the tasks that write those values, while they are in
 * cache, instead of by a pass of its own over the output (lib/run/forward.c).
 * fn: the act table's relu_mask (the same bits as that pass); mask: image
 * 0's planes, (hw + 63) / 64 words each, C planes an image; done: set by
 * the conv when its tasks made all of it (the direct and wide-row convs;
 * Winograd leaves it to the runner). The GEMM driver and the
 * micro-kernels never read it. */
typedef struct kdc__mask_rec {
    kdc__relu_mask_fn fn;
    uint64_t *mask;
    int done;
} kdc__mask_rec;

/* What is done to each finished output value v of row i, column j, in this
 * order, with the same float operations as the unfused ops (conv bias,
 * affine x * scale + shift, add, clamp), so fused and unfused agree to the
 * bit. Any pointer may be NULL. */
typedef struct kdc__gemm_epilogue {
    const float *bias;          /* v += bias[i]                               */
    const float *scale, *shift; /* v = v * scale[i] + shift[i]                */
    const float *res;           /* v += res[i * ldc + j] (same layout as C)   */
    int relu;                   /* v = min(max(v, 0), clamp), NaN kept        */
    float clamp;
    /* Or, with bmask set (and only scale of the above), the backward of a
     * ReLU and the BatchNorm before it on a backward-data GEMM's result,
     * as kdc__relu_scale_backward_fn writes a new gradient: v = 0 + g *
     * scale[i], g = 0 + v where bit bcol + j of row i's mask (bmask + i *
     * bwords words) is set and, when guided, v > 0; else +0. The driver
     * sets bcol, the column of the block's first value, per block. Tables
     * with ep_bmask run it (kdc__gemm_epilogue_scalar always does). */
    const uint64_t *bmask;
    size_t bwords;
    int bcol, guided;
    kdc__mask_rec *rec; /* with relu: its mask to record, or NULL     */
} kdc__gemm_epilogue;

/* The epilogue's parts as bits, for loops specialised on them at compile
 * time (kdc__ep8f_avx2, dwconv_avx512.c: with a constant f, the branches
 * leave the loop). */
enum { KDC__EPF_BIAS = 1, KDC__EPF_SCALE = 2, KDC__EPF_RES = 4, KDC__EPF_RELU = 8 };

static inline int kdc__ep_flags(const kdc__gemm_epilogue *ep, int res)
{
    return (ep->bias ? KDC__EPF_BIAS : 0) | (ep->scale ? KDC__EPF_SCALE : 0) |
           (res ? KDC__EPF_RES : 0) | (ep->relu ? KDC__EPF_RELU : 0);
}

/* The epilogues (kdc__gemm_epilogue_fn). */
void kdc__gemm_epilogue_scalar(const kdc__gemm_epilogue *ep, float *v, size_t ldv, int row, int m,
                               const float *res, size_t ldres, int n);
#if defined(__x86_64__)
void kdc__gemm_epilogue_avx2(const kdc__gemm_epilogue *ep, float *v, size_t ldv, int row, int m,
                             const float *res, size_t ldres, int n);
void kdc__f32_gemm_ep_6x16_avx2(int k, const float *a, const float *b, float *c, size_t ldc,
                                int accumulate, const kdc__gemm_epilogue *ep, int row,
                                const float *res, size_t ldres);
void kdc__f32_gemm_narrow_avx2(int k, const float *a, size_t astride, const float *b, float *c,
                               size_t ldc, int m, int n, int accumulate);
void kdc__f32_conv_stem_avx512(const float *x, int cin, int ih, int iw, const float *apack,
                               int cout, float *y, int oh, int ow, int oy0, int oy1,
                               const kdc__gemm_epilogue *ep);
void kdc__f32_gemm_6x16_rows_avx2(int k, const float *a, const float *const *brow, size_t col,
                                  float *c, size_t ldc, int m, int accumulate);
void kdc__f32_gemm_ep_6x16_rows_avx2(int k, const float *a, const float *const *brow, size_t col,
                                     float *c, size_t ldc, int accumulate,
                                     const kdc__gemm_epilogue *ep, int row, const float *res,
                                     size_t ldres);
void kdc__gemm_epilogue_avx512(const kdc__gemm_epilogue *ep, float *v, size_t ldv, int row, int m,
                               const float *res, size_t ldres, int n);
void kdc__f32_gemm_ep_8x32_avx512(int k, const float *a, const float *b, float *c, size_t ldc,
                                  int accumulate, const kdc__gemm_epilogue *ep, int row,
                                  const float *res, size_t ldres);
void kdc__f32_gemm_8x32_rows_avx512(int k, const float *a, const float *const *brow, size_t col,
                                    float *c, size_t ldc, int m, int accumulate);
void kdc__f32_gemm_ep_8x32_rows_avx512(int k, const float *a, const float *const *brow,
                                       size_t col, float *c, size_t ldc, int accumulate,
                                       const kdc__gemm_epilogue *ep, int row, const float *res,
                                       size_t ldres);
void kdc__f32_gemm_narrow_avx512(int k, const float *a, size_t astride, const float *b, float *c,
                                 size_t ldc, int m, int n, int accumulate);
#endif

/* Rows [m0, m1) (m0 a multiple of mr) and columns [n0, n1) of
 * C = (accumulate ? C : 0) + A * B, then the epilogue (may be NULL).
 * work: KDC__GEMM_WORK floats. Each output element is computed by the
 * same sequence of operations wherever the block boundaries fall. */
void kdc__gemm(const kdc__gemm_kernels *gk, const float *apack, int k, int m0, int m1,
               const kdc__gemm_b *b, int n0, int n1, float *c, size_t ldc, int accumulate,
               const kdc__gemm_epilogue *ep, float *work);

#endif /* KDC_KERNELS_H */
