/* pool.c - max pooling and global average pooling: forward and backward
 * references. */
#include <math.h>

#include "graph.h"

/* Padding never wins the max (PyTorch pads max pooling with -inf). */
void kdc__maxpool_ref(const float *in, int ih, int iw, float *out, int oh, int ow, int k,
                      int stride, int pad, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *x = in + (size_t)c * ih * iw;
        float *y = out + (size_t)c * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * stride + ky - pad;
                    if (iy < 0 || iy >= ih)
                        continue;
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * stride + kx - pad;
                        if (ix < 0 || ix >= iw)
                            continue;
                        float v = x[(size_t)iy * iw + ix];
                        if (v > m || v != v)
                            m = v;
                    }
                }
                y[(size_t)oy * ow + ox] = m;
            }
        }
    }
}

void kdc__gap_ref(const float *in, size_t hw, float *out, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *x = in + (size_t)c * hw;
        float s = 0.0f;
        for (size_t i = 0; i < hw; i++)
            s += x[i];
        out[c] = s / (float)hw;
    }
}

/* Max pooling that also records, per output, the index (y * iw + x) of the
 * input element that won, for the backward pass. Same scan order and tie
 * rule (first maximum; NaN wins) as the forward above and as PyTorch. */
void kdc__maxpool_idx_ref(const float *in, int ih, int iw, float *out, int32_t *idx, int oh,
                          int ow, int k, int stride, int pad, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *x = in + (size_t)c * ih * iw;
        float *y = out + (size_t)c * oh * ow;
        int32_t *id = idx + (size_t)c * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                float m = -INFINITY;
                int32_t at = -1;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * stride + ky - pad;
                    if (iy < 0 || iy >= ih)
                        continue;
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * stride + kx - pad;
                        if (ix < 0 || ix >= iw)
                            continue;
                        float v = x[(size_t)iy * iw + ix];
                        if (at < 0 || v > m || v != v) {
                            m = v;
                            at = iy * iw + ix;
                        }
                    }
                }
                y[(size_t)oy * ow + ox] = m;
                id[(size_t)oy * ow + ox] = at;
            }
        }
    }
}

/* dx[idx] += dy, per channel plane (overlapping windows accumulate). */
void kdc__maxpool_backward_ref(const float *dy, const int32_t *idx, size_t ohw, float *dx,
                               size_t ihw, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *g = dy + (size_t)c * ohw;
        const int32_t *id = idx + (size_t)c * ohw;
        float *o = dx + (size_t)c * ihw;
        for (size_t i = 0; i < ohw; i++)
            if (id[i] >= 0)
                o[id[i]] += g[i];
    }
}

/* dx += dy / hw over each plane. */
void kdc__gap_backward_ref(const float *dy, float *dx, size_t hw, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float g = dy[c] / (float)hw;
        float *o = dx + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++)
            o[i] += g;
    }
}
