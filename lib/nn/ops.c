/* ops.c - the op table (op.h) and shape inference through it. */
#include "op.h"

const kdc__op_def *const kdc__op_table[KDC__OP_COUNT] = {
#define KDC__OP(id, def) [KDC__OP_##id] = &def,
#include "ops.def"
#undef KDC__OP
};

kdc_status kdc__shape_same(const kdc__node *nd, const int *x, const int *x2, int h, int w, int *y)
{
    y[1] = x[1];
    y[2] = x[2];
    return KDC_OK;
}

kdc_status kdc__shape_one(const kdc__node *nd, const int *x, const int *x2, int h, int w, int *y)
{
    y[1] = y[2] = 1;
    return KDC_OK;
}

/* ------------------------------------------------------------------ */
/* INPUT: node 0, the network input; nothing to compute                */

static kdc_status kdc__input_shape(const kdc__node *nd, const int *x, const int *x2, int h, int w,
                                   int *y)
{
    y[1] = h;
    y[2] = w;
    return KDC_OK;
}

static void kdc__input_task(const kdc__op_args *a, int b, int c0, int c1)
{
}

const kdc__op_def kdc__op_input = {
    .name = "input",
    .shape = kdc__input_shape,
    .forward = kdc__input_task,
    .backward = kdc__input_task,
    .tangent = kdc__input_task,
};

/* ------------------------------------------------------------------ */
/* Shape inference                                                     */

kdc_status kdc__infer_shapes(const struct kdc_model *m, int h, int w, int *chw)
{
    if (h < m->min_input || w < m->min_input)
        return kdc__fail(KDC_ERR_SHAPE, "input %dx%d is too small for %s (at least %dx%d)", h, w,
                         m->arch, m->min_input, m->min_input);
    for (int i = 0; i < m->n_nodes; i++) {
        const kdc__node *n = &m->nodes[i];
        const int *x = n->in[0] >= 0 ? chw + 3 * n->in[0] : NULL;
        const int *x2 = n->in[1] >= 0 ? chw + 3 * n->in[1] : NULL;
        int *y = chw + 3 * i;
        y[0] = n->channels;
        kdc_status st = kdc__op_table[n->op]->shape(n, x, x2, h, w, y);
        if (st)
            return st;
        if (y[1] <= 0 || y[2] <= 0)
            return kdc__fail(KDC_ERR_SHAPE, "input %dx%d is too small for %s: layer %s would be "
                             "empty", h, w, m->arch, n->name);
    }
    return KDC_OK;
}
