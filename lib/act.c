/* act.c - ReLU / ReLU6 and the residual join add+ReLU: forward references.
 * clamp is INFINITY for ReLU and 6 for ReLU6. NaN propagates (as in PyTorch). */
#include "graph.h"

static inline float kdc__clamp(float v, float clamp)
{
    if (v != v)
        return v;
    v = v > 0.0f ? v : 0.0f;
    return v < clamp ? v : clamp;
}

void kdc__relu_ref(const float *in, float *out, size_t i0, size_t i1, float clamp)
{
    for (size_t i = i0; i < i1; i++)
        out[i] = kdc__clamp(in[i], clamp);
}

void kdc__add_relu_ref(const float *a, const float *b, float *out, size_t i0, size_t i1,
                       float clamp)
{
    for (size_t i = i0; i < i1; i++)
        out[i] = kdc__clamp(a[i] + b[i], clamp);
}
