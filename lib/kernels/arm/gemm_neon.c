/* gemm_neon.c - fp32 GEMM micro-kernel, 8 x 8 tile, aarch64 NEON.
 *
 * Sixteen q-register accumulators (8 rows x 2 vectors of 4 columns); per
 * depth step two loads of A (8 rows), two loads of B (8 columns) and
 * sixteen FMAs by lane (vfmaq_laneq_f32: c += b * a[lane], one rounding).
 * 16 + 4 of the 32 vector registers. The contract is kdc__gemm_ukernel's
 * (lib/kernels/kernels.h): each element is (accumulate ? C : 0) + a0*b0 + a1*b1 +
 * ... in increasing depth, one FMA per term, the same chain as the AVX2
 * kernel, so the two agree to the bit whatever the tile shapes. NEON is
 * part of the aarch64 base architecture: no extra compiler flags. */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "kernels.h"

void kdc__f32_gemm_8x8_neon(int k, const float *a, const float *b, float *c, size_t ldc, int m,
                            int n, int accumulate)
{
    float32x4_t c00, c01, c10, c11, c20, c21, c30, c31;
    float32x4_t c40, c41, c50, c51, c60, c61, c70, c71;
    float tmp[8 * 8];
    const int full = m == 8 && n == 8;
    const float *src = c;
    size_t lds = ldc;

    if (accumulate) {
        if (!full) {
            memset(tmp, 0, sizeof tmp);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    tmp[i * 8 + j] = c[(size_t)i * ldc + j];
            src = tmp;
            lds = 8;
        }
        c00 = vld1q_f32(src + 0 * lds), c01 = vld1q_f32(src + 0 * lds + 4);
        c10 = vld1q_f32(src + 1 * lds), c11 = vld1q_f32(src + 1 * lds + 4);
        c20 = vld1q_f32(src + 2 * lds), c21 = vld1q_f32(src + 2 * lds + 4);
        c30 = vld1q_f32(src + 3 * lds), c31 = vld1q_f32(src + 3 * lds + 4);
        c40 = vld1q_f32(src + 4 * lds), c41 = vld1q_f32(src + 4 * lds + 4);
        c50 = vld1q_f32(src + 5 * lds), c51 = vld1q_f32(src + 5 * lds + 4);
        c60 = vld1q_f32(src + 6 * lds), c61 = vld1q_f32(src + 6 * lds + 4);
        c70 = vld1q_f32(src + 7 * lds), c71 = vld1q_f32(src + 7 * lds + 4);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = vdupq_n_f32(0.0f);
        c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = vdupq_n_f32(0.0f);
    }

#define KDC__STEP(A, B)                                                                        \
    do {                                                                                       \
        const float32x4_t a0 = vld1q_f32(A), a1 = vld1q_f32((A) + 4);                          \
        const float32x4_t b0 = vld1q_f32(B), b1 = vld1q_f32((B) + 4);                          \
        c00 = vfmaq_laneq_f32(c00, b0, a0, 0);                                                 \
        c01 = vfmaq_laneq_f32(c01, b1, a0, 0);                                                 \
        c10 = vfmaq_laneq_f32(c10, b0, a0, 1);                                                 \
        c11 = vfmaq_laneq_f32(c11, b1, a0, 1);                                                 \
        c20 = vfmaq_laneq_f32(c20, b0, a0, 2);                                                 \
        c21 = vfmaq_laneq_f32(c21, b1, a0, 2);                                                 \
        c30 = vfmaq_laneq_f32(c30, b0, a0, 3);                                                 \
        c31 = vfmaq_laneq_f32(c31, b1, a0, 3);                                                 \
        c40 = vfmaq_laneq_f32(c40, b0, a1, 0);                                                 \
        c41 = vfmaq_laneq_f32(c41, b1, a1, 0);                                                 \
        c50 = vfmaq_laneq_f32(c50, b0, a1, 1);                                                 \
        c51 = vfmaq_laneq_f32(c51, b1, a1, 1);                                                 \
        c60 = vfmaq_laneq_f32(c60, b0, a1, 2);                                                 \
        c61 = vfmaq_laneq_f32(c61, b1, a1, 2);                                                 \
        c70 = vfmaq_laneq_f32(c70, b0, a1, 3);                                                 \
        c71 = vfmaq_laneq_f32(c71, b1, a1, 3);                                                 \
    } while (0)

    int p = 0;
    for (; p + 2 <= k; p += 2, a += 16, b += 16) {
        KDC__STEP(a, b);
        KDC__STEP(a + 8, b + 8);
    }
    for (; p < k; p++, a += 8, b += 8)
        KDC__STEP(a, b);
#undef KDC__STEP

    float *dst = full ? c : tmp;
    const size_t ldd = full ? ldc : 8;
    vst1q_f32(dst + 0 * ldd, c00);
    vst1q_f32(dst + 0 * ldd + 4, c01);
    vst1q_f32(dst + 1 * ldd, c10);
    vst1q_f32(dst + 1 * ldd + 4, c11);
    vst1q_f32(dst + 2 * ldd, c20);
    vst1q_f32(dst + 2 * ldd + 4, c21);
    vst1q_f32(dst + 3 * ldd, c30);
    vst1q_f32(dst + 3 * ldd + 4, c31);
    vst1q_f32(dst + 4 * ldd, c40);
    vst1q_f32(dst + 4 * ldd + 4, c41);
    vst1q_f32(dst + 5 * ldd, c50);
    vst1q_f32(dst + 5 * ldd + 4, c51);
    vst1q_f32(dst + 6 * ldd, c60);
    vst1q_f32(dst + 6 * ldd + 4, c61);
    vst1q_f32(dst + 7 * ldd, c70);
    vst1q_f32(dst + 7 * ldd + 4, c71);
    if (!full)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = tmp[i * 8 + j];
}

#endif /* __aarch64__ */
