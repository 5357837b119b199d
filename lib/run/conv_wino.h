/* conv_wino.h - stride-1 3x3 convolutions by Winograd's minimal filtering
 * F(2x2, 3x3) over the packed GEMM (conv_wino.c; internal).
 *
 * Each 2x2 block of outputs (a tile) is computed from the 4x4 input patch
 * around it with 16 multiplies per input channel instead of 36:
 *     Y = A^T [ U (.) V ] A,   V = B^T d B,   U = G g G^T,
 * and the 16 element-wise products, summed over the input channels, are 16
 * GEMMs M[xi] (cout x tiles) = U[xi] (cout x cin) * V[xi] (cin x tiles),
 * one per position xi of the 4x4 transformed tile. The transforms' matrices
 * have entries 0, +-1 and 1/2 (exact in float), so the results differ from
 * the direct convolution by rounding only (docs/fidelity.md gives the
 * measured differences); every output is the same fixed sequence of float
 * operations for any thread count and any SIMD ISA (the transforms are
 * portable C, the GEMM gives the same bits on every ISA). */
#ifndef KDC_CONV_WINO_H
#define KDC_CONV_WINO_H

#include "conv_gemm.h"

/* Convolutions with fewer tiles than this (a 7 x 7 map has 16) stay
 * direct: their transformed weights would cost 16/9 of the weights in
 * memory for a small gain. */
enum { KDC__WINO_MIN_TILES = 32 };
/* Widest output row the input transform takes (its row buffer). */
enum { KDC__WINO_MAX_OW = 1024 };

/* Whether a conv of this shape, with this output size, runs by Winograd:
 * dense 3x3, stride 1, padding 1, at least KDC__WINO_MIN_TILES tiles,
 * transformed input and products within KDC__COLS_MAX floats each. */
int kdc__wino_eligible(const kdc__conv_param *cp, int oh, int ow);

/* Floats of a conv's transformed weights: 16 packed A matrices, cout x cin
 * (forward) or cin x cout (backward). */
size_t kdc__wino_weights_size(const kdc__conv_param *cp, int mr, int backward);
/* From the packed weights cp->packed, at dst: forward, U = G g G^T of every
 * (output, input) channel pair as 16 packed A matrices (cout x cin,
 * mr-row panels of kdc__gemm_packed_size(cout, cin, mr) floats each);
 * backward, those of the backward-data conv (the kernel turned by 180
 * degrees, channels transposed: cin x cout). */
void kdc__wino_weights(const kdc__conv_param *cp, int mr, int backward, float *dst);

/* Makes room for the transforms' buffers of a conv of this shape (when
 * eligible); KDC_ERR_NO_MEMORY. */
kdc_status kdc__wino_reserve(kdc__work *ws, const kdc__conv_param *cp, int oh, int ow);

/* Forward of an eligible conv for the n images of x (n, cin, ih, iw) into
 * y (n, cout, oh, ow) with u its forward kdc__wino_weights: y = conv(x) (+ bias),
 * then the epilogue ep (may be NULL; its res is image 0's). Needs the
 * buffers of kdc__wino_reserve. */
void kdc__conv2d_wino(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                      const kdc__conv_param *cp, const float *u, const float *x, int n, int ih,
                      int iw, float *y, int oh, int ow, const kdc__gemm_epilogue *ep);

/* Backward-data of an eligible conv, accumulated: dx (n, cin, h, w) +=
 * conv^T(dy) (n, cout, h, w), with ut its backward kdc__wino_weights. Needs the
 * buffers of kdc__wino_reserve. The gradient differs from the direct
 * backward's by rounding only (it has no ReLU decisions to flip). */
void kdc__conv2d_backward_data_wino(kdc__pool *pool, kdc__work *ws, const kdc__gemm_kernels *gk,
                                    const kdc__conv_param *cp, const float *ut, const float *dy,
                                    int n, int h, int w, float *dx);

#endif /* KDC_CONV_WINO_H */
