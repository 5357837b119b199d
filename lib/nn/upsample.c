/* upsample.c - the FPN top-down join: y = a + nearest_upsample(b) to a's
 * size, forward and backward references.
 *
 * Nearest neighbour as PyTorch's F.interpolate(mode="nearest", size=...):
 * source index = min(floor(dst * (in / out)), in - 1), the scale computed in
 * float as PyTorch does. */
#include "graph.h"
#include "op.h"

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

/* ------------------------------------------------------------------ */
/* The ADD_UP op (op.h)                                                */

static kdc_status kdc__add_up_shape(const kdc__node *nd, const int *x, const int *x2, int h, int w,
                                    int *y)
{
    if (x2[0] != x[0])
        return kdc__fail(KDC_ERR_SHAPE, "%s: channels differ", nd->name);
    return kdc__shape_same(nd, x, x2, h, w, y);
}

static void kdc__add_up_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t out_img = (size_t)C * a->out_chw[1] * a->out_chw[2];
    const size_t bhw = (size_t)a->in2_chw[1] * a->in2_chw[2];
    kdc__add_up_ref(a->x + b * out_img, a->x2 + b * (size_t)C * bhw, a->y + b * out_img,
                    a->out_chw[1], a->out_chw[2], a->in2_chw[1], a->in2_chw[2], c0, c1);
}

static void kdc__add_up_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int Cin = a->in_chw[0];
    const size_t ihw = (size_t)a->in_chw[1] * a->in_chw[2];
    const size_t ohw = (size_t)a->out_chw[1] * a->out_chw[2];
    const size_t bhw = (size_t)a->in2_chw[1] * a->in2_chw[2];
    kdc__add_up_backward_ref(a->dy + (size_t)b * a->out_chw[0] * ohw,
                             a->dx ? a->dx + (size_t)b * Cin * ihw : NULL,
                             a->dx2 ? a->dx2 + (size_t)b * Cin * bhw : NULL, a->out_chw[1],
                             a->out_chw[2], a->in2_chw[1], a->in2_chw[2], c0, c1);
}

/* The tangent: a + upsample(b) of the inputs' tangents, either of which
 * may be zero (NULL); y arrives zeroed. */
static void kdc__add_up_tangent(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0], h = a->out_chw[1], w = a->out_chw[2];
    const int bh = a->in2_chw[1], bw = a->in2_chw[2];
    const size_t out_img = (size_t)C * h * w;
    for (int c = c0; c < c1; c++) {
        float *yp = a->y + b * out_img + (size_t)c * h * w;
        if (a->x) {
            const float *ap = a->x + b * out_img + (size_t)c * h * w;
            for (size_t i = 0; i < (size_t)h * w; i++)
                yp[i] += ap[i];
        }
        if (a->x2) {
            const float *bp = a->x2 + ((size_t)b * C + c) * bh * bw;
            for (int yy = 0; yy < h; yy++) {
                const float *brow = bp + (size_t)kdc__nearest_src(yy, bh, h) * bw;
                for (int xx = 0; xx < w; xx++)
                    yp[(size_t)yy * w + xx] += brow[kdc__nearest_src(xx, bw, w)];
            }
        }
    }
}

const kdc__op_def kdc__op_add_up = {
    .name = "add_up",
    .in_place = 1,
    .shape = kdc__add_up_shape,
    .forward = kdc__add_up_forward,
    .backward = kdc__add_up_backward,
    .tangent = kdc__add_up_tangent,
};
