/* norm.c - BatchNorm in eval mode, as a per-channel affine map.
 * Forward and backward references; the fold from (gamma, beta, mean, var, eps) is done once
 * at load time, in double precision. */
#include <math.h>

#include "graph.h"
#include "op.h"

void kdc__bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
                  float eps, int c, float *scale, float *shift)
{
    for (int i = 0; i < c; i++) {
        double s = (double)gamma[i] / sqrt((double)var[i] + (double)eps);
        scale[i] = (float)s;
        shift[i] = (float)((double)beta[i] - (double)mean[i] * s);
    }
}

void kdc__affine_ref(const float *in, float *out, int c, size_t hw, const float *scale,
                     const float *shift, int c0, int c1)
{
    (void)c;
    for (int ch = c0; ch < c1; ch++) {
        const float s = scale[ch], t = shift[ch];
        const float *x = in + (size_t)ch * hw;
        float *y = out + (size_t)ch * hw;
        for (size_t i = 0; i < hw; i++)
            y[i] = x[i] * s + t;
    }
}

/* Backward of the affine map, accumulated: dx += dy * scale. */
void kdc__affine_backward_ref(const float *dy, float *dx, size_t hw, const float *scale, int c0,
                              int c1)
{
    for (int ch = c0; ch < c1; ch++) {
        const float s = scale[ch];
        const float *g = dy + (size_t)ch * hw;
        float *o = dx + (size_t)ch * hw;
        for (size_t i = 0; i < hw; i++)
            o[i] += g[i] * s;
    }
}

/* ------------------------------------------------------------------ */
/* The AFFINE op (op.h): eval-mode BatchNorm                           */

static void kdc__affine_forward(const kdc__op_args *a, int b, int c0, int c1)
{
    const int C = a->out_chw[0];
    const size_t hw = (size_t)a->out_chw[1] * a->out_chw[2], img = (size_t)C * hw;
    kdc__affine_ref(a->x + b * img, a->y + b * img, C, hw, a->nd->p.affine.scale,
                    a->nd->p.affine.shift, c0, c1);
}

static void kdc__affine_backward(const kdc__op_args *a, int b, int c0, int c1)
{
    const size_t hw = (size_t)a->out_chw[1] * a->out_chw[2];
    a->m->act->scale_add(a->dy + (size_t)b * a->out_chw[0] * hw,
                         a->dx + (size_t)b * a->in_chw[0] * hw, hw, a->nd->p.affine.scale, c0,
                         c1);
}

/* The tangent: the scale only (eval-mode BatchNorm is affine in x). */
static void kdc__affine_tangent(const kdc__op_args *a, int b, int c0, int c1)
{
    const size_t hw = (size_t)a->out_chw[1] * a->out_chw[2], img = (size_t)a->out_chw[0] * hw;
    a->m->act->scale_add(a->x + b * img, a->y + b * img, hw, a->nd->p.affine.scale, c0, c1);
}

const kdc__op_def kdc__op_affine = {
    .name = "affine",
    .in_place = 1,
    .shape = kdc__shape_same,
    .forward = kdc__affine_forward,
    .backward = kdc__affine_backward,
    .tangent = kdc__affine_tangent,
};
