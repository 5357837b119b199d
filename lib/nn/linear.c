/* linear.c - fully connected layer: forward and backward references.
 * lp->weight is (cout, cin) as in PyTorch's nn.Linear. With SIMD kernels
 * the layer runs through the packed GEMM instead, as the 1x1 convolution
 * of a 1x1 image it is (kdc__conv2d_fast, lib/run/conv_gemm.c; the bias is added
 * after the sum, as here). */
#include "graph.h"
#include "op.h"

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

/* ------------------------------------------------------------------ */
/* The LINEAR op (op.h); with SIMD kernels lib/run/ lowers it to the GEMM */

static void kdc__linear_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const kdc__node *nd = a->nd;
    kdc__linear_ref(&nd->p.conv, a->x + (size_t)b * nd->p.conv.cin,
                    a->y + (size_t)b * a->out_chw[0], c0, c1);
}

static void kdc__linear_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
    kdc__linear_backward_ref(&a->nd->p.conv, a->dy + (size_t)b * a->out_chw[0] * ohw,
                             a->dx + (size_t)b * a->in_chw[0] * ihw, c0, c1);
}

/* The tangent: W t, no bias (on the GEMM lib/run/tangent.c lowers it). */
static void kdc__linear_tangent(const kdc__op_args *a, int b, int c0, int c1)
{
    kdc__conv_param lp = a->nd->p.conv;
    lp.bias = NULL;
    kdc__linear_ref(&lp, a->x + (size_t)b * lp.cin, a->y + (size_t)b * a->out_chw[0], c0, c1);
}

const kdc__op_def kdc__op_linear = {
    .name = "linear",
    .shape = kdc__shape_one,
    .forward = kdc__linear_forward,
    .backward = kdc__linear_backward,
    .tangent = kdc__linear_tangent,
};
