/* linear.c - fully connected layer: forward and backward references.
 * lp->weight is (cout, cin) as in PyTorch's nn.Linear. With SIMD kernels
 * the layer runs through the packed GEMM instead, as the 1x1 convolution
 * of a 1x1 image it is (kdc__conv2d_fast, lib/conv.c; the bias is added
 * after the sum, as here). */
#include "graph.h"

void kdc__linear_ref(const kdc__conv_param *lp, const float *in, float *out, int o0, int o1)
{
    for (int o = o0; o < o1; o++) {
        const float *w = lp->weight + (size_t)o * lp->cin;
        float s = 0.0f;
        for (int i = 0; i < lp->cin; i++)
            s += w[i] * in[i];
        out[o] = s + (lp->bias ? lp->bias[o] : 0.0f);
    }
}

/* dx[i] += sum_o W[o][i] * dy[o] for inputs [i0, i1) of one image. */
void kdc__linear_backward_ref(const kdc__conv_param *lp, const float *dy, float *dx, int i0,
                              int i1)
{
    for (int i = i0; i < i1; i++) {
        float s = 0.0f;
        for (int o = 0; o < lp->cout; o++)
            s += lp->weight[(size_t)o * lp->cin + i] * dy[o];
        dx[i] += s;
    }
}
