/* conv.c - 2-D convolution: scalar reference, forward and backward-data.
 *
 * Direct convolution, written for clarity. It is the reference every faster
 * kernel is tested against, so it stays simple: for each output channel,
 * accumulate input channel by input channel and tap by tap, over the output
 * positions whose input tap is inside the image (zero padding is never read). */
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "op.h"

/* First and one-past-last output index o with 0 <= o*stride + tap - pad < in. */
void kdc__valid_range(int in, int out, int stride, int pad, int tap, int *lo, int *hi)
{
    int a = pad - tap; /* o*stride >= a */
    int first = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = in - 1 + pad - tap; /* o*stride <= b */
    int last = b < 0 ? -1 : b / stride;
    if (last > out - 1)
        last = out - 1;
    *lo = first;
    *hi = last + 1 > first ? last + 1 : first;
}
void kdc__conv2d_ref(const kdc__conv_param *cp, const float *in, int ih, int iw,
                     float *out, int oh, int ow, int b, int oc0, int oc1)
{
    const int cin_g = cp->cin / cp->groups;
    const int cout_g = cp->cout / cp->groups;
    const size_t ihw = (size_t)ih * iw, ohw = (size_t)oh * ow;
    const float *img = in + (size_t)b * cp->cin * ihw;
    float *dst = out + (size_t)b * cp->cout * ohw;

    for (int oc = oc0; oc < oc1; oc++) {
        float *o = dst + (size_t)oc * ohw;
        const int g = oc / cout_g;
        const float bias = cp->bias ? cp->bias[oc] : 0.0f;
        for (size_t i = 0; i < ohw; i++)
            o[i] = bias;
        for (int icg = 0; icg < cin_g; icg++) {
            const float *x = img + (size_t)(g * cin_g + icg) * ihw;
            const float *wk = cp->weight + ((size_t)oc * cin_g + icg) * cp->kh * cp->kw;
            for (int ky = 0; ky < cp->kh; ky++) {
                int y0, y1;
                kdc__valid_range(ih, oh, cp->stride, cp->pad, ky, &y0, &y1);
                for (int kx = 0; kx < cp->kw; kx++) {
                    const float wv = wk[ky * cp->kw + kx];
                    int x0, x1;
                    kdc__valid_range(iw, ow, cp->stride, cp->pad, kx, &x0, &x1);
                    for (int y = y0; y < y1; y++) {
                        const float *xr = x + (size_t)(y * cp->stride + ky - cp->pad) * iw
                                          + kx - cp->pad;
                        float *orow = o + (size_t)y * ow;
                        for (int xo = x0; xo < x1; xo++)
                            orow[xo] += wv * xr[xo * cp->stride];
                    }
                }
            }
        }
    }
}

/* Backward with respect to the input (backward-data), accumulated into dx:
 * dx[ic][y*s + ky - p][x*s + kx - p] += w[oc][ic][ky][kx] * dy[oc][y][x],
 * for input channels [ic0, ic1) of image b (disjoint across tasks). */
void kdc__conv2d_backward_data_ref(const kdc__conv_param *cp, const float *dy, int oh, int ow,
                                   float *dx, int ih, int iw, int b, int ic0, int ic1)
{
    const int cin_g = cp->cin / cp->groups;
    const int cout_g = cp->cout / cp->groups;
    const size_t ihw = (size_t)ih * iw, ohw = (size_t)oh * ow;
    const float *gy = dy + (size_t)b * cp->cout * ohw;
    float *gx = dx + (size_t)b * cp->cin * ihw;

    for (int ic = ic0; ic < ic1; ic++) {
        const int g = ic / cin_g, icg = ic % cin_g;
        float *xo = gx + (size_t)ic * ihw;
        for (int oc = g * cout_g; oc < (g + 1) * cout_g; oc++) {
            const float *o = gy + (size_t)oc * ohw;
            const float *wk = cp->weight + ((size_t)oc * cin_g + icg) * cp->kh * cp->kw;
            for (int ky = 0; ky < cp->kh; ky++) {
                int y0, y1;
                kdc__valid_range(ih, oh, cp->stride, cp->pad, ky, &y0, &y1);
                for (int kx = 0; kx < cp->kw; kx++) {
                    const float wv = wk[ky * cp->kw + kx];
                    int x0, x1;
                    kdc__valid_range(iw, ow, cp->stride, cp->pad, kx, &x0, &x1);
                    for (int y = y0; y < y1; y++) {
                        float *xr = xo + (size_t)(y * cp->stride + ky - cp->pad) * iw + kx - cp->pad;
                        const float *orow = o + (size_t)y * ow;
                        for (int xi = x0; xi < x1; xi++)
                            xr[xi * cp->stride] += wv * orow[xi];
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* The CONV op (op.h)                                                  */

int kdc__conv_is_dw(const struct kdc_model *m, const kdc__node *nd)
{
    const kdc__conv_param *cp = &nd->p.conv;
    return m->dw && nd->op == KDC__OP_CONV && cp->groups > 1 && cp->groups == cp->cin &&
           cp->cin == cp->cout && cp->kh == 3 && cp->kw == 3 && (cp->stride == 1 ||
           cp->stride == 2) && (cp->pad == 0 || cp->pad == 1);
}
int kdc__conv_dw_backward_c8(const struct kdc_model *m, const kdc__node *nd, int iw)
{
    return kdc__conv_is_dw(m, nd) && m->dw->dw3x3_backward_c8 && kdc__dw_c8_pays(iw);
}
int kdc__conv_is_gemm(const struct kdc_model *m, const kdc__node *nd)
{
    return m->gemm && ((nd->op == KDC__OP_CONV && nd->p.conv.groups == 1) ||
                       nd->op == KDC__OP_LINEAR);
}
static kdc_status kdc__conv_shape(const kdc__node *nd, const int *x, const int *x2, int h, int w,
                                  int *y)
{
    y[1] = kdc__out_size(x[1], nd->p.conv.kh, nd->p.conv.stride, nd->p.conv.pad);
    y[2] = kdc__out_size(x[2], nd->p.conv.kw, nd->p.conv.stride, nd->p.conv.pad);
    return KDC_OK;
}

/* Depthwise 3x3 convs through the model's depthwise table, others through
 * the reference (dense convs on the GEMM never come here: lib/run/ lowers
 * them, conv_gemm.c). */
static void kdc__conv_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const kdc__node *nd = a->nd;
    if (kdc__conv_is_dw(a->m, nd)) {
        const kdc__conv_param *cp = &nd->p.conv;
        const int C = a->out_chw[0];
        const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
        const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
        for (int c = c0; c < c1; c++)
            a->m->dw->dw3x3(a->x + ((size_t)b * C + c) * ihw, a->in_chw[1], a->in_chw[2],
                            cp->weight + 9 * (size_t)c, cp->bias ? cp->bias[c] : 0.0f,
                            a->y + ((size_t)b * C + c) * ohw, a->out_chw[1], a->out_chw[2],
                            cp->stride, cp->pad, NULL, c, NULL);
        return;
    }
    kdc__conv2d_ref(&nd->p.conv, a->x, a->in_chw[1], a->in_chw[2], a->y, a->out_chw[1],
                    a->out_chw[2], b, c0, c1);
}
static void kdc__conv_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const kdc__node *nd = a->nd;
    if (kdc__conv_is_dw(a->m, nd)) {
        const kdc__conv_param *cp = &nd->p.conv;
        const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
        const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
        const float *dy = a->dy + (size_t)b * a->out_chw[0] * ohw;
        float *dx = a->dx + (size_t)b * a->in_chw[0] * ihw;
        const kdc__dw_kernels *dk = a->m->dw;
        if (kdc__conv_dw_backward_c8(a->m, nd, a->in_chw[2])) {
            /* eight channels at a time (the same bits), writing a new dx;
             * on through a ReLU + BatchNorm with dx_mask (set only here) */
            const size_t words = (ihw + 63) / 64;
            for (int c = c0; c < c1; c += 8) {
                const kdc__dw_bthru thru = {
                    .mask = a->dx_mask ? a->dx_mask + ((size_t)b * a->in_chw[0] + c) * words
                                       : NULL,
                    .words = words, .scale = a->dx_scale ? a->dx_scale + c : NULL,
                    .guided = a->guided};
                dk->dw3x3_backward_c8(dy + (size_t)c * ohw, ohw, a->out_chw[1], a->out_chw[2],
                                      cp->weight + 9 * (size_t)c, dx + (size_t)c * ihw, ihw,
                                      a->in_chw[1], a->in_chw[2], cp->stride, cp->pad,
                                      c1 - c < 8 ? c1 - c : 8, !a->dx_fresh,
                                      a->dx_mask ? &thru : NULL);
            }
            return;
        }
        for (int c = c0; c < c1; c++)
            dk->dw3x3_backward(dy + (size_t)c * ohw, a->out_chw[1], a->out_chw[2],
                               cp->weight + 9 * (size_t)c, dx + (size_t)c * ihw, a->in_chw[1],
                               a->in_chw[2], cp->stride, cp->pad);
        return;
    }
    kdc__conv2d_backward_data_ref(&nd->p.conv, a->dy, a->out_chw[1], a->out_chw[2], a->dx,
                                  a->in_chw[1], a->in_chw[2], b, c0, c1);
}
/* The tangent: the conv without its bias (dense convs on the GEMM never
 * come here: lib/run/tangent.c lowers them). */
static void kdc__conv_tangent(const kdc__op_args *a, int b, int c0, int c1)
{
    kdc__conv_param cp = a->nd->p.conv;
    cp.bias = NULL;
    if (kdc__conv_is_dw(a->m, a->nd)) {
        const int C = a->out_chw[0];
        const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
        const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
        for (int c = c0; c < c1; c++)
            a->m->dw->dw3x3(a->x + ((size_t)b * C + c) * ihw, a->in_chw[1], a->in_chw[2],
                            cp.weight + 9 * (size_t)c, 0.0f, a->y + ((size_t)b * C + c) * ohw,
                            a->out_chw[1], a->out_chw[2], cp.stride, cp.pad, NULL, c, NULL);
        return;
    }
    kdc__conv2d_ref(&cp, a->x, a->in_chw[1], a->in_chw[2], a->y, a->out_chw[1], a->out_chw[2], b,
                    c0, c1);
}
const kdc__op_def kdc__op_conv = {
    .name = "conv",
    .shape = kdc__conv_shape,
    .forward = kdc__conv_forward,
    .backward = kdc__conv_backward,
    .tangent = kdc__conv_tangent,
};
