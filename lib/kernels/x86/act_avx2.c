/* act_avx2.c - ReLU backward masks and ReLU backward, AVX2; BatchNorm's
 * backward scale-and-add (kdc__scale_add_fn) at the end.
 *
 * Eight elements a step: the mask byte comes from MOVMSKPS of the two
 * comparisons, and the backward pass expands a byte of the mask word into
 * lane masks (a lane's bit ANDed and compared) to blend o + g over o. Same
 * comparisons and the same single add per element as the scalar reference
 * (lib/nn/act.c), so the same bits; tails of fewer than 8 run the reference's
 * loop. Compiled with -mavx2 -mfma (Makefile), chosen at run time. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"
#include "simd_avx2.h"

void kdc__f32_relu_mask_avx2(const float *y, uint64_t *mask, size_t hw, float clamp, int c0,
                             int c1)
{
    const size_t words = (hw + 63) / 64;
    const __m256 zero = _mm256_setzero_ps(), cl = _mm256_set1_ps(clamp);
    for (int c = c0; c < c1; c++) {
        const float *v = y + (size_t)c * hw;
        uint64_t *m = mask + (size_t)c * words;
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = 0;
            size_t i = w * 64;
            const size_t end = hw - i < 64 ? hw : i + 64;
            for (; i + 8 <= end; i += 8) {
                const __m256 x = _mm256_loadu_ps(v + i);
                const __m256 k = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ),
                                               _mm256_cmp_ps(x, cl, _CMP_LT_OQ));
                bits |= (uint64_t)(unsigned)_mm256_movemask_ps(k) << (i % 64);
            }
            for (; i < end; i++)
                if (v[i] > 0.0f && v[i] < clamp)
                    bits |= (uint64_t)1 << (i % 64);
            m[w] = bits;
        }
    }
}

/* Both ReLU backward kernels: with scale NULL, dx += dy where the gradient
 * passes (blended, other lanes untouched); with scale, the fused ReLU +
 * BatchNorm backward, dx += g * scale[c], g = 0 + dy where it passes and +0
 * elsewhere (so every lane takes the add, as the unfused scale_add does),
 * or with accumulate 0 the add to +0 instead of to dx, which is not read.
 * Inlined into both with scale a constant NULL or not. */
static inline __attribute__((always_inline)) void
kdc__relu_bwd_avx2(const float *dy, const uint64_t *mask, float *dx, size_t hw, int guided,
                   const float *scale, int c0, int c1, int accumulate)
{
    const size_t words = (hw + 63) / 64;
    const __m256 zero = _mm256_setzero_ps();
    for (int c = c0; c < c1; c++) {
        const float s = scale ? scale[c] : 1.0f;
        const __m256 sv = _mm256_set1_ps(s);
        const float *g = dy + (size_t)c * hw;
        const uint64_t *m = mask + (size_t)c * words;
        float *o = dx + (size_t)c * hw;
        size_t i = 0;
        for (; i + 8 <= hw; i += 8) {
            const int byte = (int)(m[i / 64] >> (i % 64)) & 0xff;
            if (!scale && !byte)
                continue;
            const __m256 gv = _mm256_loadu_ps(g + i);
            const __m256 ov = accumulate ? _mm256_loadu_ps(o + i) : zero;
            const __m256 pass = kdc__pass8(byte, gv, guided);
            if (scale) {
                const __m256 v = _mm256_add_ps(zero, _mm256_and_ps(pass, gv));
                _mm256_storeu_ps(o + i, _mm256_add_ps(ov, _mm256_mul_ps(v, sv)));
            } else {
                _mm256_storeu_ps(o + i, _mm256_blendv_ps(ov, _mm256_add_ps(ov, gv), pass));
            }
        }
        for (; i < hw; i++) {
            const int passes = ((m[i / 64] >> (i % 64)) & 1) && (!guided || g[i] > 0.0f);
            if (scale)
                o[i] = (accumulate ? o[i] : 0.0f) + (passes ? 0.0f + g[i] : 0.0f) * s;
            else if (passes)
                o[i] += g[i];
        }
    }
}

void kdc__f32_relu_backward_avx2(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                 int guided, int c0, int c1)
{
    kdc__relu_bwd_avx2(dy, mask, dx, hw, guided, NULL, c0, c1, 1);
}

void kdc__f32_scale_add_avx2(const float *dy, float *dx, size_t hw, const float *scale, int c0,
                             int c1)
{
    for (int c = c0; c < c1; c++) {
        const float s = scale[c];
        const __m256 sv = _mm256_set1_ps(s);
        const float *g = dy + (size_t)c * hw;
        float *o = dx + (size_t)c * hw;
        size_t i = 0;
        for (; i + 8 <= hw; i += 8)
            _mm256_storeu_ps(o + i, _mm256_add_ps(_mm256_loadu_ps(o + i),
                                                  _mm256_mul_ps(_mm256_loadu_ps(g + i), sv)));
        for (; i < hw; i++)
            o[i] += g[i] * s;
    }
}

void kdc__f32_relu_scale_backward_avx2(const float *dy, const uint64_t *mask, float *dx,
                                       size_t hw, int guided, const float *scale, int c0,
                                       int c1, int accumulate)
{
    kdc__relu_bwd_avx2(dy, mask, dx, hw, guided, scale, c0, c1, accumulate);
}

#endif /* __x86_64__ */
