/* logits.c - softmax and top-k of a classifier's logits (the KL between two
 * logit vectors and the argmax are in agree.c). */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

kdc_status kdc_softmax(const float *logits, int k, double temperature, float *p)
{
    if (!logits || !p || k < 1 || !(temperature > 0) || !isfinite(temperature))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_softmax: %s",
                         !logits || !p ? "NULL pointer" : k < 1 ? "k < 1"
                                                               : "temperature must be > 0");
    double mx = -INFINITY;
    for (int i = 0; i < k; i++) {
        if (!isfinite(logits[i]))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_softmax: logit %d is not finite", i);
        mx = logits[i] > mx ? logits[i] : mx;
    }
    double sum = 0;
    for (int i = 0; i < k; i++)
        sum += exp((logits[i] - mx) / temperature);
    for (int i = 0; i < k; i++)
        p[i] = (float)(exp((logits[i] - mx) / temperature) / sum);
    return KDC_OK;
}

kdc_status kdc_topk(const float *v, int k, int top, int *idx)
{
    if (!v || !idx || top < 1 || top > k)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_topk: %s",
                         !v || !idx ? "NULL pointer" : "top must be in 1..k");
    for (int i = 0; i < k; i++)
        if (isnan(v[i]))
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_topk: value %d is NaN", i);
    /* partial insertion: idx[0..top) stays sorted, largest first, earlier
     * index first among equal values */
    int have = 0;
    for (int i = 0; i < k; i++) {
        if (have == top && !(v[i] > v[idx[top - 1]]))
            continue;
        int j = have < top ? have++ : top - 1;
        while (j > 0 && v[i] > v[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return KDC_OK;
}
