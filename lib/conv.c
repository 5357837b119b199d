/* conv.c - 2-D convolution: scalar reference, forward and backward-data.
 *
 * Direct convolution, written for clarity. It is the reference every faster
 * kernel is tested against, so it stays simple: for each output channel,
 * accumulate input channel by input channel and tap by tap, over the output
 * positions whose input tap is inside the image (zero padding is never read). */
#include <string.h>

#include "graph.h"

/* First and one-past-last output index o with 0 <= o*stride + tap - pad < in. */
static void kdc__valid_range(int in, int out, int stride, int pad, int tap, int *lo, int *hi)
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
