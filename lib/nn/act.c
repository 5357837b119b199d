/* act.c - ReLU / ReLU6 and the residual join add+ReLU: forward and backward
 * references, the bit masks the backward pass keeps, and the table of the
 * mask kernels (SIMD versions in act_avx2.c and act_avx512.c).
 * clamp is INFINITY for ReLU and 6 for ReLU6. NaN propagates (as in PyTorch). */
#include <string.h>

#include "graph.h"
#include "op.h"
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

/* The ReLU's backward into a zeroed gradient, then BatchNorm's from it
 * (kdc__relu_scale_backward_fn): g = 0 + dy where the gradient passes,
 * else 0; dx += g * scale, or dx = 0 + g * scale (accumulate 0). */
void kdc__relu_scale_backward_ref(const float *dy, const uint64_t *mask, float *dx, size_t hw,
                                  int guided, const float *scale, int c0, int c1, int accumulate)
{
    const size_t words = (hw + 63) / 64;
    for (int c = c0; c < c1; c++) {
        const float s = scale[c];
        const float *g = dy + (size_t)c * hw;
        const uint64_t *m = mask + (size_t)c * words;
        float *o = dx + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++) {
            float v = 0.0f;
            if (((m[i / 64] >> (i % 64)) & 1) && (!guided || g[i] > 0.0f))
                v = 0.0f + g[i];
            o[i] = (accumulate ? o[i] : 0.0f) + v * s;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Tables (lib/kernels/kernels.h)                                              */

static const kdc__act_kernels kdc__act_scalar = {KDC__ISA_SCALAR, "f32-relu-mask-scalar",
                                                 kdc__relu_mask, kdc__relu_backward_ref,
                                                 kdc__affine_backward_ref,
                                                 kdc__relu_scale_backward_ref};
#if defined(__x86_64__)
static const kdc__act_kernels kdc__act_avx2 = {KDC__ISA_AVX2, "f32-relu-mask-avx2",
                                               kdc__f32_relu_mask_avx2,
                                               kdc__f32_relu_backward_avx2,
                                               kdc__f32_scale_add_avx2,
                                               kdc__f32_relu_scale_backward_avx2};
static const kdc__act_kernels kdc__act_avx512 = {KDC__ISA_AVX512, "f32-relu-mask-avx512",
                                                 kdc__f32_relu_mask_avx512,
                                                 kdc__f32_relu_backward_avx512,
                                                 kdc__f32_scale_add_avx2,
                                                 kdc__f32_relu_scale_backward_avx512};
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

/* ------------------------------------------------------------------ */
/* The RELU and ADD_RELU ops (op.h)                                    */

static void kdc__relu_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2], img = (size_t)C * ohw;
    const float clamp = a->nd->p.act.clamp;
    kdc__relu_ref(a->x + b * img, a->y + b * img, c0 * ohw, c1 * ohw, clamp);
    if (a->mask)
        a->m->act->relu_mask(a->y + b * img, a->mask + (size_t)b * C * ((ohw + 63) / 64), ohw,
                             clamp, c0, c1);
}

static void kdc__add_relu_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2], img = (size_t)C * ohw;
    const float clamp = a->nd->p.act.clamp;
    kdc__add_relu_ref(a->x + b * img, a->x2 + b * img, a->y + b * img, c0 * ohw, c1 * ohw, clamp);
    if (a->mask)
        a->m->act->relu_mask(a->y + b * img, a->mask + (size_t)b * C * ((ohw + 63) / 64), ohw,
                             clamp, c0, c1);
}

/* Both: the gradient passes where the recorded mask is set, into each
 * input that needs it (an ADD_RELU's two inputs get the same). */
static void kdc__relu_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int Cin = a->in_chw[0], Cout = a->out_chw[0];
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
    const float *dy = a->dy + (size_t)b * Cout * ohw;
    const uint64_t *mask = a->mask + (size_t)b * Cout * ((ohw + 63) / 64);
    if (a->dx)
        a->m->act->relu_backward(dy, mask, a->dx + (size_t)b * Cin * ihw, ohw, a->guided, c0, c1);
    if (a->dx2)
        a->m->act->relu_backward(dy, mask, a->dx2 + (size_t)b * Cin * ihw, ohw, a->guided, c0,
                                 c1);
}

/* Both tangents: each input's tangent passes where the recorded mask is
 * set (PyTorch's forward-mode rule for threshold / hardtanh uses the same
 * region as their backward); an ADD_RELU adds its two. y arrives zeroed. */
static void kdc__relu_tangent(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2], img = (size_t)C * ohw;
    const uint64_t *mask = a->mask + (size_t)b * C * ((ohw + 63) / 64);
    if (a->x)
        a->m->act->relu_backward(a->x + b * img, mask, a->y + b * img, ohw, 0, c0, c1);
    if (a->x2)
        a->m->act->relu_backward(a->x2 + b * img, mask, a->y + b * img, ohw, 0, c0, c1);
}

static kdc_status kdc__add_relu_shape(const kdc__node *nd, const int *x, const int *x2, int h,
                                      int w, int *y)
{
    if (x2[1] != x[1] || x2[2] != x[2])
        return kdc__fail(KDC_ERR_SHAPE, "input %dx%d: the residual branches of %s "
                         "differ in size (%dx%d and %dx%d)", h, w, nd->name, x[1], x[2],
                         x2[1], x2[2]);
    return kdc__shape_same(nd, x, x2, h, w, y);
}

const kdc__op_def kdc__op_relu = {
    .name = "relu",
    .in_place = 1,
    .record = KDC__RECORD_MASK,
    .shape = kdc__shape_same,
    .forward = kdc__relu_forward,
    .backward = kdc__relu_backward,
    .tangent = kdc__relu_tangent,
};

const kdc__op_def kdc__op_add_relu = {
    .name = "add_relu",
    .in_place = 1,
    .record = KDC__RECORD_MASK,
    .shape = kdc__add_relu_shape,
    .forward = kdc__add_relu_forward,
    .backward = kdc__relu_backward,
    .tangent = kdc__relu_tangent,
};
