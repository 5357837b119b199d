/* weightgen.h - the seeded weight and input generator of the tests.
 *
 * Bit-identical to tools/kdcgen.py (the fixture generator's side): every
 * value depends only on (seed, tensor name, element index), so the model
 * fixtures need not store weights or inputs. See tools/kdcgen.py for the
 * full specification of the generator and of the per-tensor distributions.
 *
 * This file depends only on the C library (no libkdcam symbols), so it can be
 * linked into every test program. */
#ifndef KDC_TEST_WEIGHTGEN_H
#define KDC_TEST_WEIGHTGEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes a safetensors file holding every tensor of a model, generated from
 * seed. scheme: "resnet50", "resnet101", "resnet152" (torchvision names,
 * with num_batches_tracked and fc), "mobilenetv1" (KD layout model.N.M.*, fc)
 * or "mobilenetv1_timm" (timm mobilenetv1_100 names), or a ResNet50-FPN
 * detection backbone: "resnet50_fpn_tv" (torchvision Faster R-CNN keys
 * backbone.body.* without num_batches_tracked, backbone.fpn.inner_blocks.i.0.*
 * for C2..C5, plus rpn.* / roi_heads.* head tensors), "resnet50_fpn_tv_old"
 * (inner_blocks.i.weight spelling, body with num_batches_tracked),
 * "resnet50_fpn_tv_p6p7" / "resnet50_fpn_tv_p6p7_v2" (RetinaNet v1 / v2: C3..C5,
 * extra_blocks.p6 from P5 / from C5, p7), "resnet50_fpn_mm_retina"
 * (mmdetection: backbone.*, neck.lateral_convs / fpn_convs, bbox_head.*), or
 * a full RetinaNet: "resnet50_retina_tv" (resnet50_fpn_tv_p6p7 + torchvision
 * RetinaNetHead head.classification_head.conv.i.0 / cls_logits,
 * head.regression_head.conv.i.0 / bbox_reg), "resnet50_retina_tv_old" (head
 * spelt conv.2i), "resnet50_retina_mm" (resnet50_fpn_mm_retina's body and
 * neck + mmdetection RetinaHead bbox_head.cls_convs / reg_convs / retina_cls
 * / retina_reg); 4 convs per branch, 9 anchors, 3 classes; FPN width 64;
 * num_classes is ignored by them (but must be > 0). See kdcgen.FPN_SCHEMES. Each name in the file is
 * prefix + name (prefix may be NULL or ""); the values depend on the
 * unprefixed name only. Floating tensors are F32, or F16 (rounded to nearest
 * even) when dtype_f16 is non-zero; num_batches_tracked is an I64 scalar 0.
 * Header: __metadata__ {"format":"pt"}, padded with spaces to a multiple of 8.
 * Returns 0 on success, -1 on failure (unknown scheme, I/O error). */
int kdc_test_write_weights(const char *path, const char *scheme, uint64_t seed,
                           int num_classes, const char *prefix, int dtype_f16);

/* Fills dst[0..n) with values uniform on [c - a, c + a] for a tensor called
 * name (the generator of tools/kdcgen.py: fill()). Inputs use name "input". */
void kdc_test_fill(float *dst, size_t n, const char *name, uint64_t seed, double c,
                   double a);

/* The generated values of one tensor of a scheme (unprefixed name), as
 * float32, in a malloc'd array of *numel floats (*out; free() it).
 * num_batches_tracked gives one 0.0f. Returns 0, or -1 if the scheme has no
 * such tensor or memory runs out. */
int kdc_test_gen_tensor(const char *scheme, int num_classes, const char *name,
                        uint64_t seed, float **out, size_t *numel);

/* 64-bit FNV-1a of a NUL-terminated string. */
uint64_t kdc_test_fnv1a64(const char *s);

/* Index of sample j (0 <= j < k) of a tensor of n > k elements in the
 * fixtures: j*step + (j*2654435761) % step with step = n / k. */
size_t kdc_test_sample_index(size_t n, size_t k, size_t j);

/* float32 -> IEEE half, round to nearest even (as numpy's astype). */
uint16_t kdc_test_f32_to_f16(float f);

/* ||got - ref||_2 / ||ref||_2 in double (0 if both are zero, INFINITY if
 * only ref is). */
double kdc_test_rel_l2(const float *got, const float *ref, size_t n);

/* Sum and sum of squares in double. */
void kdc_test_sums(const float *x, size_t n, double *sum, double *sumsq);

#endif /* KDC_TEST_WEIGHTGEN_H */
