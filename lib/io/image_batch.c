/* image_batch.c - many image files into one preprocessed NCHW batch: the
 * loop every program that feeds a model writes, with the checks that all
 * images come out the same size. */
#include <stdlib.h>

#include "internal.h"

kdc_status kdc_image_load_batch(const char *const *paths, int n, const kdc_preprocess *pp,
                                const kdc_image_options *opt, float **out, int *h, int *w,
                                kdc_image **crops, int *sizes)
{
    if (!out || !h || !w)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_load_batch: out, h or w is NULL");
    *out = NULL;
    if (!paths || !pp || n < 1)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_load_batch: %s",
                         !paths ? "paths is NULL" : !pp ? "pp is NULL" : "n < 1");
    for (int i = 0; i < n; i++) {
        if (!paths[i])
            return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_image_load_batch: paths[%d] is NULL",
                             i);
        if (crops)
            crops[i] = NULL;
    }
    float *batch = NULL;
    int bh = 0, bw = 0, i;
    kdc_status st = KDC_OK;
    for (i = 0; i < n; i++) {
        kdc_image *img = NULL;
        int ih, iw;
        if ((st = kdc_image_load_ex(paths[i], opt, &img)))
            break;
        if (sizes) {
            sizes[2 * i] = img->width;
            sizes[2 * i + 1] = img->height;
        }
        if ((st = kdc_preprocess_size(pp, img->width, img->height, &ih, &iw))) {
            kdc_image_destroy(img);
            st = kdc__fail_context(st, "%s", paths[i]);
            break;
        }
        if (i == 0) {
            bh = ih;
            bw = iw;
            batch = malloc((size_t)n * 3 * (size_t)ih * (size_t)iw * sizeof *batch);
            if (!batch) {
                kdc_image_destroy(img);
                st = kdc__fail(KDC_ERR_NO_MEMORY, "out of memory for %d images of %dx%d", n, ih,
                               iw);
                break;
            }
        } else if (ih != bh || iw != bw) {
            kdc_image_destroy(img);
            st = kdc__fail(KDC_ERR_SHAPE, "%s: preprocesses to %dx%d but %s to %dx%d (give a "
                           "crop so that all images agree)", paths[i], ih, iw, paths[0], bh, bw);
            break;
        }
        st = kdc_preprocess_image(img, pp, batch + (size_t)i * 3 * ih * iw,
                                  crops ? &crops[i] : NULL);
        kdc_image_destroy(img);
        if (st) {
            st = kdc__fail_context(st, "%s", paths[i]);
            break;
        }
    }
    if (st) {
        free(batch);
        for (int k = 0; crops && k < n; k++) {
            kdc_image_destroy(crops[k]);
            crops[k] = NULL;
        }
        return st;
    }
    *out = batch;
    *h = bh;
    *w = bw;
    return KDC_OK;
}
