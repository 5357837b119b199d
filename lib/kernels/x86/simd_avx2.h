/* simd_avx2.h - lane masks, even/odd column splits, the GEMM epilogue's
 * 8-lane step and the ReLU backward's pass lanes, shared by the AVX2
 * kernels (gemm_avx2.c, dwconv_avx2.c, dwconv_c8_avx2.c, pool_avx2.c,
 * act_avx2.c). Include only from files compiled with -mavx2 -mfma. */
#ifndef KDC_SIMD_AVX2_H
#define KDC_SIMD_AVX2_H

#include <immintrin.h>

#include "kernels.h"

/* The first k lanes of 8 (none when k <= 0, all when k >= 8). */
static inline __m256i kdc__lanes8(int k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* (a0..a7, b0..b7) -> even (a0 a2 a4 a6 b0 b2 b4 b6) and odd columns */
static inline void kdc__unzip8(__m256 a, __m256 b, __m256 *ev, __m256 *od)
{
    /* shuffle gives (a0 a2 b0 b2 | a4 a6 b4 b6); the permute orders the
     * 64-bit pairs */
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
        _MM_SHUFFLE(3, 1, 2, 0)));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))),
        _MM_SHUFFLE(3, 1, 2, 0)));
}

/* even and odd columns -> (e0 o0 e1 o1 ... e3 o3), (e4 o4 ... e7 o7) */
static inline void kdc__zip8(__m256 ev, __m256 od, __m256 *a, __m256 *b)
{
    const __m256 lo = _mm256_unpacklo_ps(ev, od); /* e0 o0 e1 o1 | e4 o4 e5 o5 */
    const __m256 hi = _mm256_unpackhi_ps(ev, od); /* e2 o2 e3 o3 | e6 o6 e7 o7 */
    *a = _mm256_permute2f128_ps(lo, hi, 0x20);
    *b = _mm256_permute2f128_ps(lo, hi, 0x31);
}

/* The even columns of (a, b) moved down one lane, with next in the last:
 * for a = p[0..7], b = p[8..15] and next = p[16], that is p[2], p[4], ...,
 * p[16] (the third tap of eight stride-2 windows). */
static inline __m256 kdc__even_next8(__m256 ev, float next)
{
    const __m256i up = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(ev, up), _mm256_set1_ps(next), 0x80);
}

/* r[0..7] as the rows of an 8 x 8 matrix, transposed in place. */
static inline void kdc__transpose8x8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* An epilogue row's bias, scale and shift broadcast (the identities when
 * the epilogue has none): row r of a GEMM, channel r of a depthwise conv. */
typedef struct kdc__ep_row8 {
    __m256 bs, sc, sh;
} kdc__ep_row8;

static inline kdc__ep_row8 kdc__ep_row8_init(const kdc__gemm_epilogue *ep, int r)
{
    kdc__ep_row8 k;
    k.bs = _mm256_set1_ps(ep->bias ? ep->bias[r] : 0.0f);
    k.sc = _mm256_set1_ps(ep->scale ? ep->scale[r] : 1.0f);
    k.sh = _mm256_set1_ps(ep->scale ? ep->shift[r] : 0.0f);
    return k;
}

/* The epilogue (kdc__gemm_epilogue) on 8 values x of one output row, with
 * the float operations of the scalar ops: add, then multiply and add
 * (never fused), add, clamp. f: its parts (kdc__ep_flags); k: the row's
 * constants; rv: the residual at these 8 columns when f has RES; clamp:
 * ep->clamp broadcast. The clamp is min(max(x, 0), clamp) with NaN kept,
 * as kdc__clamp in act.c: MAXPS(x, 0) is (x > 0 ? x : 0), MINPS(x, c) is
 * (x < c ? x : c), and a NaN x is put back by a blend. */
static inline __attribute__((always_inline)) __m256
kdc__ep8f_avx2(int f, const kdc__ep_row8 *k, __m256 rv, __m256 clamp, __m256 x)
{
    if (f & KDC__EPF_BIAS)
        x = _mm256_add_ps(x, k->bs);
    if (f & KDC__EPF_SCALE)
        x = _mm256_add_ps(_mm256_mul_ps(x, k->sc), k->sh);
    if (f & KDC__EPF_RES)
        x = _mm256_add_ps(x, rv);
    if (f & KDC__EPF_RELU) {
        const __m256 y = _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), clamp);
        x = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    return x;
}

/* kdc__ep8f_avx2 with the parts read from ep (res: whether rv is used). */
static inline __attribute__((always_inline)) __m256
kdc__ep8_avx2(const kdc__gemm_epilogue *ep, const kdc__ep_row8 *k, int res, __m256 rv, __m256 x)
{
    return kdc__ep8f_avx2(kdc__ep_flags(ep, res), k, rv, _mm256_set1_ps(ep->clamp), x);
}

/* Where the gradient passes among 8 elements of a plane: the lanes whose
 * bit of byte (their 8 mask bits) is set, and for guided backprop only
 * where gv (the gradient there) > 0. */
static inline __m256 kdc__pass8(int byte, __m256 gv, int guided)
{
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256 pass = _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), lane), lane));
    return guided ? _mm256_and_ps(pass, _mm256_cmp_ps(gv, _mm256_setzero_ps(), _CMP_GT_OQ))
                  : pass;
}

#endif
