/* pool.c - max pooling and global average pooling: forward and backward
 * references. */
#include <math.h>

#include "graph.h"

/* The max over the k x k window with top-left input corner (iy0, ix0),
 * scanned row by row; taps in the padding are skipped (PyTorch pads max
 * pooling with -inf, so padding never wins). A NaN wins (as in PyTorch). */
static inline float kdc__max_window(const float *x, int ih, int iw, int k, int iy0, int ix0)
{
    float m = -INFINITY;
    for (int ky = 0; ky < k; ky++) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= ih)
            continue;
        for (int kx = 0; kx < k; kx++) {
            const int ix = ix0 + kx;
            if (ix < 0 || ix >= iw)
                continue;
            const float v = x[(size_t)iy * iw + ix];
            if (v > m || v != v)
                m = v;
        }
    }
    return m;
}

/* The same for a 3 x 3 window wholly inside the input: the same scan order
 * and comparisons without the bounds tests, so the same result. */
static inline float kdc__max_3x3(const float *p, int iw)
{
    float m = -INFINITY;
    for (int ky = 0; ky < 3; ky++, p += iw)
        for (int kx = 0; kx < 3; kx++) {
            const float v = p[kx];
            if (v > m || v != v)
                m = v;
        }
    return m;
}

/* First output whose window starts at or after the padding, and one past
 * the last whose window ends inside n inputs. */
static void kdc__inner_range(int n, int k, int stride, int pad, int out, int *lo, int *hi)
{
    *lo = (pad + stride - 1) / stride;
    *hi = n - k + pad >= 0 ? (n - k + pad) / stride + 1 : 0;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

void kdc__maxpool_ref(const float *in, int ih, int iw, float *out, int oh, int ow, int k,
                      int stride, int pad, int c0, int c1)
{
    int ylo, yhi, xlo, xhi;
    kdc__inner_range(ih, k, stride, pad, oh, &ylo, &yhi);
    kdc__inner_range(iw, k, stride, pad, ow, &xlo, &xhi);
    if (k != 3) /* only the 3 x 3 window has an unrolled interior */
        ylo = yhi = xlo = xhi = 0;
    for (int c = c0; c < c1; c++) {
        const float *x = in + (size_t)c * ih * iw;
        float *y = out + (size_t)c * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            const int iy0 = oy * stride - pad;
            float *yr = y + (size_t)oy * ow;
            if (oy < ylo || oy >= yhi) {
                for (int ox = 0; ox < ow; ox++)
                    yr[ox] = kdc__max_window(x, ih, iw, k, iy0, ox * stride - pad);
                continue;
            }
            int ox = 0;
            for (; ox < xlo; ox++)
                yr[ox] = kdc__max_window(x, ih, iw, k, iy0, ox * stride - pad);
            const float *row = x + (size_t)iy0 * iw;
            for (; ox < xhi; ox++)
                yr[ox] = kdc__max_3x3(row + (ox * stride - pad), iw);
            for (; ox < ow; ox++)
                yr[ox] = kdc__max_window(x, ih, iw, k, iy0, ox * stride - pad);
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
