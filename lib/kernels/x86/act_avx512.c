/* act_avx512.c - ReLU backward masks, ReLU backward and the fused ReLU +
 * BatchNorm backward, AVX-512F.
 *
 * The mask bits are AVX-512 mask registers already: 16 comparisons give 16
 * bits of the mask word, and the backward pass loads 16 bits of the word as
 * the write mask of a masked add. Same comparisons and the same single add
 * per element as the scalar reference (lib/nn/act.c), so the same bits.
 * Compiled with -mavx512f -mavx2 -mfma (Makefile), chosen at run time. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"

/* Lanes [0, n) of 16, n clamped. */
static inline __mmask16 kdc__lanes16(size_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

void kdc__f32_relu_mask_avx512(const float *y, uint64_t *mask, size_t hw, float clamp, int c0,
                               int c1)
{
    const size_t words = (hw + 63) / 64;
    const __m512 zero = _mm512_setzero_ps(), cl = _mm512_set1_ps(clamp);
    for (int c = c0; c < c1; c++) {
        const float *v = y + (size_t)c * hw;
        uint64_t *m = mask + (size_t)c * words;
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = 0;
            for (size_t q = 0, i = w * 64; q < 4 && i < hw; q++, i += 16) {
                const __mmask16 ld = kdc__lanes16(hw - i);
                const __m512 x = _mm512_maskz_loadu_ps(ld, v + i);
                __mmask16 k = _mm512_mask_cmp_ps_mask(ld, x, zero, _CMP_GT_OQ);
                k = _mm512_mask_cmp_ps_mask(k, x, cl, _CMP_LT_OQ);
                bits |= (uint64_t)k << (16 * q);
            }
            m[w] = bits;
        }
    }
}

void kdc__f32_relu_backward_avx512(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                   int guided, int c0, int c1)
{
    const size_t words = (hw + 63) / 64;
    const __m512 zero = _mm512_setzero_ps();
    for (int c = c0; c < c1; c++) {
        const float *g = dy + (size_t)c * hw;
        const uint64_t *m = mask + (size_t)c * words;
        float *o = dx + (size_t)c * hw;
        for (size_t i = 0; i < hw; i += 16) {
            __mmask16 k = (__mmask16)(m[i / 64] >> (i % 64)) & kdc__lanes16(hw - i);
            if (!k)
                continue;
            const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
            if (guided)
                k = _mm512_mask_cmp_ps_mask(k, gv, zero, _CMP_GT_OQ);
            const __m512 ov = _mm512_maskz_loadu_ps(k, o + i);
            _mm512_mask_storeu_ps(o + i, k, _mm512_add_ps(ov, gv));
        }
    }
}

/* The ReLU's backward and BatchNorm's in one pass
 * (kdc__relu_scale_backward_fn): g = 0 + dy where the gradient passes, +0
 * elsewhere (a zero-masked add), then dx += g * scale[c], the multiply and
 * the add rounded apart: kdc__f32_relu_scale_backward_avx2's operations,
 * so the same bits. Planes under 64 floats (7x7) go to that kernel: there
 * a masked tail every 3 vectors made this one 1.4x slower (0.84-0.93x its
 * time on 14x14 to 112x112 planes; docs/kernels.md). */
void kdc__f32_relu_scale_backward_avx512(const float *dy, const uint64_t *mask, float *dx,
                                         size_t hw, int guided, const float *scale, int c0,
                                         int c1, int accumulate)
{
    if (hw < 64) {
        kdc__f32_relu_scale_backward_avx2(dy, mask, dx, hw, guided, scale, c0, c1, accumulate);
        return;
    }
    const size_t words = (hw + 63) / 64;
    const __m512 zero = _mm512_setzero_ps();
    for (int c = c0; c < c1; c++) {
        const __m512 sv = _mm512_set1_ps(scale[c]);
        const float *g = dy + (size_t)c * hw;
        const uint64_t *m = mask + (size_t)c * words;
        float *o = dx + (size_t)c * hw;
        for (size_t i = 0; i < hw; i += 16) {
            const __mmask16 ld = kdc__lanes16(hw - i);
            const __m512 gv = _mm512_maskz_loadu_ps(ld, g + i);
            __mmask16 k = (__mmask16)(m[i / 64] >> (i % 64)) & ld;
            if (guided)
                k = _mm512_mask_cmp_ps_mask(k, gv, zero, _CMP_GT_OQ);
            const __m512 v = _mm512_maskz_add_ps(k, zero, gv);
            const __m512 ov = accumulate ? _mm512_maskz_loadu_ps(ld, o + i) : zero;
            _mm512_mask_storeu_ps(o + i, ld, _mm512_add_ps(ov, _mm512_mul_ps(v, sv)));
        }
    }
}

#endif /* __x86_64__ */
