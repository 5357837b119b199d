/* pool.c - max pooling and global average pooling: forward references. */
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
