/* cam_internal.h - what the files of lib/cam/ share, and what
 * tests/test_cam.c checks directly (internal; never installed). */
#ifndef KDC_CAM_INTERNAL_H
#define KDC_CAM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* eigen.c: out (hw) = the projection of the c x hw activations A (times the
 * gradients G when G is not NULL) on their first principal component, with
 * its sign fixed (Eigen-CAM, EigenGrad-CAM, the PCA feature map). */
kdc_status kdc__pca_project(const float *A, const float *G, int c, int hw, float *out);

/* eigen.c: the eigenvector v (m) of the largest eigenvalue *lambda of the
 * symmetric m x m matrix S (row-major; destroyed), deterministic. Returns
 * 0, or -1 if memory runs out. */
int kdc__sym_top_eigvec(double *S, int m, double *v, double *lambda);
/* kpca.c: out (hw) = KPCA-CAM's projection of the c x hw activations A of
 * one image on their first kernel principal component (scikit-learn
 * KernelPCA, n_components = 1), before the ReLU. gamma <= 0: 1 / c. */
kdc_status kdc__kpca_project(const float *A, int c, int hw, kdc_kpca_kernel kernel, double gamma,
                             float *out);

/* resize.c: min-max normalisation of one plane of count values into dst
 * (0 where the plane is constant). */
void kdc__minmax_plane(const float *src, float *dst, size_t count);
/* torch.nn.UpsamplingBilinear2d (bilinear, align_corners=True) of one
 * h x w plane to H x W, in float as PyTorch's CPU kernel: src = d * (in -
 * 1) / (out - 1), i0 = floor(src), i1 = min(i0 + 1, in - 1). Unlike the
 * OpenCV resize of the post-processing, the corners map onto the corners. */
/* tests/test_cam.c checks it against PyTorch. */
void kdc__upsample_align_corners(const float *src, int h, int w, float *dst, int H, int W);

/* metrics.c: a value and its position; kdc__ranked_desc orders them for
 * qsort, larger values first, equal values by position (top-k IoU; the
 * deletion/insertion order of lib/stats/faith.c). */
typedef struct kdc__ranked {
    float v;
    size_t i;
} kdc__ranked;
int kdc__ranked_desc(const void *x, const void *y);

/* methods.c: methods that need the gradients at the target layers. */
int kdc__needs_grad(kdc_cam_method m);

/* compute.c: pytorch-grad-cam's post-processing of the per-layer raw maps (already
 * ReLU'd, n x raw_h[l] x raw_w[l] each): per layer scale_cam_image with
 * resize to out_h x out_w (kdc_cam_normalize_resize); then max(0), the
 * mean over the layers (float sum in layer order, divided by the count, as
 * NumPy's float32 mean), and scale_cam_image again without resize. So even
 * one layer is normalised twice, the second time at full size. tmp holds
 * n x out_h x out_w floats of scratch. tests/test_cam.c checks the chain on
 * its own. */
kdc_status kdc__cam_aggregate(const float *const *raw, const int *raw_h, const int *raw_w,
                              int nlayers, int n, int out_h, int out_w, float *tmp, float *map);

/* issue 19, part B. deeplift.c: DeepLift attributions (n x 3 x h x w) of
 * input against opt->baseline (kdc_attribution_compute checked the rest).
 * fullgrad.c: FullGrad's raw map (n x h x w, pytorch-grad-cam's sum of the
 * normalised, resized input and bias terms) and the classes used. */
kdc_status kdc__deeplift(kdc_run *run, const float *input, int n, int h, int w,
                         const kdc_attribution_options *opt, float *out);
kdc_status kdc__fullgrad(kdc_run *run, const float *input, int n, int h, int w,
                         const kdc_target *target, float *raw, int *classes);
/* The whole kdc_cam_compute result of FullGrad (one layer entry: the raw
 * map at input size; the map is scale_cam_image of it). */
kdc_status kdc__fullgrad_compute(kdc_run *run, const float *input, int n, int h, int w,
                                 const kdc_target *target, kdc_cam_result **out);
/* compute.c: the target score of one image from its logits z (K): the
 * logit of class cls, or its softmax probability (KDC_TARGET_PROB); also
 * used by perturb.c. */
double kdc__class_score(const float *z, int K, int cls, kdc_target_kind kind);

/* attribution.c: standard normal deviates, Box-Muller on splitmix64 (the
 * noise of SmoothGrad; also SS-CAM's in smoothscore.c). Seed with state =
 * the seed, has_spare = 0. */
typedef struct kdc__gauss {
    uint64_t state;
    int has_spare;
    double spare;
} kdc__gauss;
double kdc__gauss_next(kdc__gauss *g);

/* smoothscore.c: SS-CAM / IS-CAM (opt->method) of one layer's activation
 * A (n x c x h x w) for the input (n x 3 x H x W) and classes, into raw
 * (n x h x w); K = the number of classes. */
kdc_status kdc__smoothscore_layer(kdc_run *run, const kdc_cam_options *opt, const float *input,
                                  int n, int H, int W, const float *A, int c, int h, int w,
                                  const int *classes, int K, float *raw);

/* finer.c: Finer-CAM's seed dT/dz (n x K) at the logits (n x K) of each
 * image, for the class classes[b] (NULL: the top-1), the ncomp classes of
 * closest logits weighted by alpha; target[b] receives the class. */
kdc_status kdc__finer_seed(const float *logits, int n, int K, const int *classes, double alpha,
                           int ncomp, float *seed, int *target);
/* shapley.c: Shapley-CAM's Hessian-vector product hvp = H A (count
 * floats, shaped like A) of the softmax probability of classes[b] in the
 * output A of `layer` (n images), after a kdc_run_forward_grad down to the
 * layer or below. Runs a tangent pass and a seed backward on the run: the
 * gradients of an earlier backward are gone afterwards. */
kdc_status kdc__shapley_hvp(kdc_run *run, int layer, const float *A, int n, const int *classes,
                            float *hvp, size_t count);
/* smoothgradpp.c: Smooth Grad-CAM++ raw maps (raw[l], n x h_l x w_l) of the
 * L layers (activations act[l], n x shape[l][1] x h_l x w_l, of the clean
 * input) from opt->samples noisy copies of input, each image's target
 * being classes[b]. Leaves the run's outputs at the last noisy pass. */
kdc_status kdc__smoothgradpp(kdc_run *run, const kdc_cam_options *opt, const float *input, int n,
                             int H, int W, const int *classes, float *const *act,
                             const int (*shape)[4], float *const *raw);

/* colormap_tables.c (generated by tools/gen_colormaps.py): OpenCV's
 * VIRIDIS, INFERNO and TURBO tables, RGB. render.c: any colormap's table
 * (JET built from Octave's anchors as OpenCV does). */
extern const unsigned char kdc__cmap_viridis[256][3];
extern const unsigned char kdc__cmap_inferno[256][3];
extern const unsigned char kdc__cmap_turbo[256][3];
void kdc__colormap_lut(kdc_colormap cmap, unsigned char lut[256][3]);

#endif /* KDC_CAM_INTERNAL_H */
