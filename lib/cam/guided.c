/* guided.c - Guided Grad-CAM in one call: the CAM times the guided
 * backpropagation gradient, towards the classes the CAM used (Selvaraju et
 * al. 2017; pytorch-grad-cam's cam_gb = deprocess(cam_mask * gb)'s product
 * before the picture). */
#include <stdlib.h>

#include "internal.h"

kdc_status kdc_guided_gradcam(kdc_run *run, const float *input, int n, int h, int w,
                              const kdc_cam_options *opt, float *out, kdc_cam_result **cam)
{
    if (cam)
        *cam = NULL;
    if (!out || !opt)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_guided_gradcam: %s is NULL",
                         !out ? "out" : "opt");
    kdc_cam_result *res = NULL;
    kdc_status st = kdc_cam_compute(run, input, n, h, w, opt, &res);
    if (st)
        return st;
    kdc_attribution_options ao = {.kind = KDC_ATTR_GUIDED, .target = opt->target};
    if (ao.target.kind != KDC_TARGET_SEED)
        ao.target.classes = res->classes; /* the classes the CAM explained */
    if ((st = kdc_attribution_compute(run, input, n, h, w, &ao, out))) {
        kdc_cam_result_destroy(res);
        return st;
    }
    const size_t plane = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < 3; c++) {
            float *g = out + ((size_t)b * 3 + c) * plane;
            const float *m = res->map + (size_t)b * plane;
            for (size_t i = 0; i < plane; i++)
                g[i] *= m[i];
        }
    if (cam)
        *cam = res;
    else
        kdc_cam_result_destroy(res);
    return KDC_OK;
}
