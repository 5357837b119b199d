/* upsample.c - the FPN top-down join: y = a + nearest_upsample(b) to a's
 * size, forward and backward references.
 *
 * Nearest neighbour as PyTorch's F.interpolate(mode="nearest", size=...):
 * source index = min(floor(dst * (in / out)), in - 1), the scale computed in
 * float as PyTorch does. */
#include "graph.h"

int kdc__nearest_src(int dst, int in, int out)
{
    const float scale = (float)in / (float)out;
    int s = (int)((float)dst * scale); /* dst * scale >= 0: truncation is floor */
    return s < in - 1 ? s : in - 1;
}

/* Channels [c0, c1) of one image: a, y (h x w), b (bh x bw). */
void kdc__add_up_ref(const float *a, const float *b, float *y, int h, int w, int bh, int bw,
                     int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *ap = a + (size_t)c * h * w, *bp = b + (size_t)c * bh * bw;
        float *yp = y + (size_t)c * h * w;
        for (int yy = 0; yy < h; yy++) {
            const float *brow = bp + (size_t)kdc__nearest_src(yy, bh, h) * bw;
            for (int xx = 0; xx < w; xx++)
                yp[(size_t)yy * w + xx] = ap[(size_t)yy * w + xx] + brow[kdc__nearest_src(xx, bw, w)];
        }
    }
}

/* Backward: da += dy (if da), db[src] += dy over every pixel that read src
 * (if db). Channels [c0, c1). */
void kdc__add_up_backward_ref(const float *dy, float *da, float *db, int h, int w, int bh, int bw,
                              int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const float *g = dy + (size_t)c * h * w;
        if (da) {
            float *o = da + (size_t)c * h * w;
            for (size_t i = 0; i < (size_t)h * w; i++)
                o[i] += g[i];
        }
        if (db) {
            float *o = db + (size_t)c * bh * bw;
            for (int yy = 0; yy < h; yy++) {
                float *orow = o + (size_t)kdc__nearest_src(yy, bh, h) * bw;
                for (int xx = 0; xx < w; xx++)
                    orow[kdc__nearest_src(xx, bw, w)] += g[(size_t)yy * w + xx];
            }
        }
    }
}
