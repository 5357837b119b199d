/* layers.c - one map per target layer (issue 19): the per-layer step of
 * pytorch-grad-cam's post-processing, without the average over the layers
 * that kdc_cam_compute's map holds. */
#include "cam_internal.h"

kdc_status kdc_cam_layer_map(const kdc_cam_result *res, int layer, float *out)
{
    if (!res || !out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_layer_map: %s is NULL",
                         res ? "out" : "result");
    if (layer < 0 || layer >= res->nlayers)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_cam_layer_map: layer %d is out of range "
                         "0..%d", layer, res->nlayers - 1);
    /* base_cam.py compute_cam_per_layer: scale_cam_image(max(cam, 0), size);
     * the raw maps of a result are already ReLU'd */
    return kdc_cam_normalize_resize(res->raw[layer], res->n, res->raw_h[layer],
                                    res->raw_w[layer], res->in_h, res->in_w, out);
}
