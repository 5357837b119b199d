/* simd_avx512.h - lane masks, mask-plane bits, even/odd column splits and
 * the fused epilogue shared by the AVX-512 kernels (gemm_avx512.c,
 * pool_avx512.c, dwconv_avx512.c, conv_stem_avx512.c). Include only from files
 * compiled with -mavx512f. */
#ifndef KDC_SIMD_AVX512_H
#define KDC_SIMD_AVX512_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Lanes [0, n) of a 16-lane vector, n clamped to 0..16. */
static inline __mmask16 kdc__lanes16(int n)
{
    if (n <= 0)
        return 0;
    if (n >= 16)
        return (__mmask16)0xffff;
    return (__mmask16)((1u << n) - 1u);
}

/* Lanes l of a block starting at column c of a row n wide with
 * 0 <= c + l < n: what a masked load reads of the row (zeros elsewhere). */
static inline __mmask16 kdc__cols16(int c, int n)
{
    return (__mmask16)(kdc__lanes16(n - c) & ~kdc__lanes16(-c));
}

/* (a0..a15, b0..b15) -> even (a0 a2 .. a14 b0 b2 .. b14) and odd columns */
static inline void kdc__unzip16(__m512 a, __m512 b, __m512 *ev, __m512 *od)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *ev = _mm512_permutex2var_ps(a, ie, b);
    *od = _mm512_permutex2var_ps(a, io, b);
}

/* even and odd columns -> (e0 o0 .. e7 o7), (e8 o8 .. e15 o15) */
static inline void kdc__zip16(__m512 ev, __m512 od, __m512 *a, __m512 *b)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    *a = _mm512_permutex2var_ps(ev, lo, od);
    *b = _mm512_permutex2var_ps(ev, hi, od);
}

/* The even columns moved down one lane, with next in the last: for
 * a = p[0..15], b = p[16..31] and next = p[32], p[2], p[4], ..., p[32] (the
 * third tap of sixteen stride-2 windows). */
static inline __m512 kdc__even_next16(__m512 ev, float next)
{
    const __m512i up = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    return _mm512_permutex2var_ps(ev, up, _mm512_set1_ps(next));
}

/* The lane masks of kdc__taps_s2_16 for windows from column c of a row n
 * wide: columns c .. c + 15, c + 16 .. c + 31 and c + 32 (one lane). They
 * depend on the columns only, so rows of one block share them. */
static inline void kdc__masks_s2_16(int c, int n, __mmask16 m[3])
{
    m[0] = kdc__cols16(c, n);
    m[1] = kdc__cols16(c + 16, n);
    m[2] = kdc__cols16(c + 32, n) & 1;
}

/* The three taps of 16 stride-2 windows of a row, first tap at column c:
 * t[kx] lane l = row[c + 2 l + kx], zero outside the row (m: its
 * kdc__masks_s2_16): columns c .. c + 32 by two masked loads and one of a
 * single lane, split into even and odd columns, the even ones one on. */
static inline __attribute__((always_inline)) void
kdc__taps_s2_16(const float *row, int c, const __mmask16 m[3], __m512 t[3])
{
    const __m512 a = _mm512_maskz_loadu_ps(m[0], row + c);
    const __m512 b = _mm512_maskz_loadu_ps(m[1], row + c + 16);
    const __m512 x = _mm512_maskz_loadu_ps(m[2], row + c + 32);
    const __m512i up = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    kdc__unzip16(a, b, &t[0], &t[1]);
    t[2] = _mm512_permutex2var_ps(t[0], up, x); /* c + 2, .., c + 32 */
}

/* 16 bits of a mask row of `words` words from bit `at` (any offset; bits
 * past the row are zero). */
static inline __mmask16 kdc__mask_bits16(const uint64_t *row, size_t words, size_t at)
{
    const size_t w = at / 64, o = at % 64;
    uint64_t bits = row[w] >> o;
    if (o > 48 && w + 1 < words)
        bits |= row[w + 1] << (64 - o);
    return (__mmask16)bits;
}

/* The epilogue (kdc__gemm_epilogue) on 16 values x of output row r, with
 * the float operations of the scalar ops: add, then multiply and add
 * (never fused), add, clamp (kdc__ep8_avx2 there: why MAXPS/MINPS and a
 * blend give kdc__clamp's result, NaN kept). rv: the residual when rs. */
static inline __attribute__((always_inline)) __m512
kdc__ep16_avx512(const kdc__gemm_epilogue *ep, int r, int rs, __m512 rv, __m512 x)
{
    if (ep->bias)
        x = _mm512_add_ps(x, _mm512_set1_ps(ep->bias[r]));
    if (ep->scale)
        x = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(ep->scale[r])),
                          _mm512_set1_ps(ep->shift[r]));
    if (rs)
        x = _mm512_add_ps(x, rv);
    if (ep->relu) {
        const __m512 y = _mm512_min_ps(_mm512_max_ps(x, _mm512_setzero_ps()),
                                       _mm512_set1_ps(ep->clamp));
        x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
    }
    return x;
}

#endif
