/* linear.c - fully connected layer: forward reference.
 * lp->weight is (cout, cin) as in PyTorch's nn.Linear. */
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
