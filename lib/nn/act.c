/* act.c - ReLU / ReLU6 and the residual join add+ReLU: forward and backward
 * references, the bit masks the backward pass keeps, and the table of the
 * mask kernels (SIMD versions in act_avx2.c and act_avx512.c).
 * clamp is INFINITY for ReLU and 6 for ReLU6. NaN propagates (as in PyTorch). */
#include <string.h>

#include "graph.h"
#include "kernels.h"

static inline float kdc__clamp(float v, float clamp)
{
    if (v != v)
        return v;
    v = v > 0.0f ? v : 0.0f;
    return v < clamp ? v : clamp;
}

void kdc__relu_ref(const float *in, float *out, size_t i0, size_t i1, float clamp)
{
    for (size_t i = i0; i < i1; i++)
        out[i] = kdc__clamp(in[i], clamp);
}

void kdc__add_relu_ref(const float *a, const float *b, float *out, size_t i0, size_t i1,
                       float clamp)
{
    for (size_t i = i0; i < i1; i++)
        out[i] = kdc__clamp(a[i] + b[i], clamp);
}

/* Backward state of a ReLU: one bit per output element, set where the
 * gradient passes (0 < y < clamp, i.e. 0 < x < clamp, as PyTorch's
 * threshold/hardtanh backward). Planes of hw bits, each padded to a whole
 * number of 64-bit words so that channel ranges never share a word. */
void kdc__relu_mask(const float *y, uint64_t *mask, size_t hw, float clamp, int c0, int c1)
{
    const size_t words = (hw + 63) / 64;
    for (int c = c0; c < c1; c++) {
        const float *v = y + (size_t)c * hw;
        uint64_t *m = mask + (size_t)c * words;
        memset(m, 0, words * sizeof *m);
        for (size_t i = 0; i < hw; i++)
            if (v[i] > 0.0f && v[i] < clamp)
                m[i / 64] |= (uint64_t)1 << (i % 64);
    }
}

/* dx += dy where the mask is set; guided backpropagation also drops the
 * negative gradients (grad_out > 0). */
void kdc__relu_backward_ref(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                            int guided, int c0, int c1)
{
    const size_t words = (hw + 63) / 64;
    for (int c = c0; c < c1; c++) {
        const float *g = dy + (size_t)c * hw;
        const uint64_t *m = mask + (size_t)c * words;
        float *o = dx + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++) {
            if (!((m[i / 64] >> (i % 64)) & 1))
                continue;
            if (guided && !(g[i] > 0.0f))
                continue;
            o[i] += g[i];
        }
    }
}

/* ------------------------------------------------------------------ */
/* Tables (lib/kernels.h)                                              */

static const kdc__act_kernels kdc__act_scalar = {KDC__ISA_SCALAR, "f32-relu-mask-scalar",
                                                 kdc__relu_mask, kdc__relu_backward_ref};
#if defined(__x86_64__)
static const kdc__act_kernels kdc__act_avx2 = {KDC__ISA_AVX2, "f32-relu-mask-avx2",
                                               kdc__f32_relu_mask_avx2,
                                               kdc__f32_relu_backward_avx2};
static const kdc__act_kernels kdc__act_avx512 = {KDC__ISA_AVX512, "f32-relu-mask-avx512",
                                                 kdc__f32_relu_mask_avx512,
                                                 kdc__f32_relu_backward_avx512};
#endif

const kdc__act_kernels *kdc__act_kernels_get(kdc__isa isa)
{
    if (!kdc__isa_supported(isa))
        return NULL;
    switch (isa) {
    case KDC__ISA_SCALAR:
    case KDC__ISA_NEON: /* no NEON version: the scalar reference */
        return &kdc__act_scalar;
    case KDC__ISA_AVX2:
#if defined(__x86_64__)
        return &kdc__act_avx2;
#else
        return NULL;
#endif
    case KDC__ISA_AVX512:
#if defined(__x86_64__)
        return &kdc__act_avx512;
#else
        return NULL;
#endif
    }
    return NULL;
}
