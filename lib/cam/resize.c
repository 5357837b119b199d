/* resize.c - resizing and normalising maps: OpenCV-style bilinear resize
 * (cv2.resize INTER_LINEAR, in float as pytorch-grad-cam's NumPy does),
 * min-max normalisation, and the align-corners upsampling of Score-CAM's
 * masks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cam_internal.h"

/* Source index pair and weight of one output coordinate, OpenCV
 * INTER_LINEAR: f = (d + 0.5) * (in / out) - 0.5 (in double, then float),
 * i0 = floor(f); below 0: i0 = 0, weight 0; at or past in - 1: i0 = in - 1,
 * weight 0 (neighbours clamped to the border). */
static void kdc__linear_coeffs(int in, int out, int *i0, int *i1, float *frac)
{
    const double scale = (double)in / (double)out;
    for (int d = 0; d < out; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0) {
            s = 0;
            f = 0.0f;
        }
        if (s >= in - 1) {
            s = in - 1;
            f = 0.0f;
        }
        i0[d] = s;
        i1[d] = s + 1 < in ? s + 1 : in - 1;
        frac[d] = f;
    }
}

kdc_status kdc_resize_bilinear(const float *src, int n, int h, int w, int out_h, int out_w,
                               float *dst)
{
    if (!src || !dst)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_resize_bilinear: %s is NULL",
                         src ? "dst" : "src");
    if (n < 1 || h < 1 || w < 1 || out_h < 1 || out_w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_resize_bilinear: bad sizes %dx%dx%d -> %dx%d", n, h,
                         w, out_h, out_w);
    int *xi = malloc(2 * (size_t)out_w * sizeof *xi);
    int *yi = malloc(2 * (size_t)out_h * sizeof *yi);
    float *xf = malloc((size_t)out_w * sizeof *xf);
    float *yf = malloc((size_t)out_h * sizeof *yf);
    kdc_status st = KDC_OK;
    if (!xi || !yi || !xf || !yf) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "kdc_resize_bilinear: out of memory");
        goto out_free;
    }
    kdc__linear_coeffs(w, out_w, xi, xi + out_w, xf);
    kdc__linear_coeffs(h, out_h, yi, yi + out_h, yf);
    const size_t ihw = (size_t)h * w, ohw = (size_t)out_h * out_w;
    for (int b = 0; b < n; b++) {
        const float *s = src + (size_t)b * ihw;
        float *d = dst + (size_t)b * ohw;
        for (int y = 0; y < out_h; y++) {
            const float *r0 = s + (size_t)yi[y] * w, *r1 = s + (size_t)yi[out_h + y] * w;
            const float fy = yf[y];
            for (int x = 0; x < out_w; x++) {
                const int x0 = xi[x], x1 = xi[out_w + x];
                const float fx = xf[x];
                /* horizontal pass, then vertical, as OpenCV's float path */
                const float h0 = r0[x0] * (1.0f - fx) + r0[x1] * fx;
                const float h1 = r1[x0] * (1.0f - fx) + r1[x1] * fx;
                d[(size_t)y * out_w + x] = (1.0f - fy) * h0 + fy * h1;
            }
        }
    }
out_free:
    free(xi);
    free(yi);
    free(xf);
    free(yf);
    return st;
}

/* scale_cam_image on one plane without resizing: x -= min(x); x /= (1e-7 +
 * max(x)), in float as NumPy float32 does (the divisor is the float32 of
 * the double 1e-7 + max). */
void kdc__minmax_plane(const float *src, float *dst, size_t count)
{
    float mn = src[0];
    for (size_t i = 1; i < count; i++)
        mn = src[i] < mn ? src[i] : mn;
    float mx = -INFINITY;
    for (size_t i = 0; i < count; i++) {
        dst[i] = src[i] - mn;
        mx = dst[i] > mx ? dst[i] : mx;
    }
    const float den = (float)(1e-7 + (double)mx);
    for (size_t i = 0; i < count; i++)
        dst[i] = dst[i] / den;
}

kdc_status kdc_cam_normalize_resize(const float *raw, int n, int h, int w, int out_h, int out_w,
                                    float *out)
{
    if (!raw || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_normalize_resize: %s is NULL",
                         raw ? "out" : "raw");
    if (n < 1 || h < 1 || w < 1 || out_h < 1 || out_w < 1)
        return kdc__fail(KDC_ERR_SHAPE, "kdc_cam_normalize_resize: bad sizes %dx%dx%d -> %dx%d",
                         n, h, w, out_h, out_w);
    const size_t hw = (size_t)h * w;
    float *tmp = malloc(hw * sizeof *tmp);
    if (!tmp)
        return kdc__fail(KDC_ERR_NO_MEMORY, "kdc_cam_normalize_resize: out of memory");
    kdc_status st = KDC_OK;
    for (int b = 0; b < n && !st; b++) {
        kdc__minmax_plane(raw + (size_t)b * hw, tmp, hw);
        st = kdc_resize_bilinear(tmp, 1, h, w, out_h, out_w,
                                 out + (size_t)b * out_h * (size_t)out_w);
    }
    free(tmp);
    return st;
}

void kdc__upsample_align_corners(const float *src, int h, int w, float *dst, int H, int W)
{
    const float sy = H > 1 ? (float)(h - 1) / (float)(H - 1) : 0.0f;
    const float sx = W > 1 ? (float)(w - 1) / (float)(W - 1) : 0.0f;
    for (int y = 0; y < H; y++) {
        const float fy = sy * (float)y;
        const int y0 = (int)fy, y1 = y0 + (y0 < h - 1);
        const float ly1 = fy - (float)y0, ly0 = 1.0f - ly1;
        const float *r0 = src + (size_t)y0 * w, *r1 = src + (size_t)y1 * w;
        for (int x = 0; x < W; x++) {
            const float fx = sx * (float)x;
            const int x0 = (int)fx, x1 = x0 + (x0 < w - 1);
            const float lx1 = fx - (float)x0, lx0 = 1.0f - lx1;
            dst[(size_t)y * W + x] = ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) +
                                     ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
        }
    }
}
