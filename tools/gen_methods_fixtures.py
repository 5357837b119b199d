#!/usr/bin/env python3
"""gen_methods_fixtures.py - PyTorch references of the issue-19 methods (part A).

Run from the repository root with Debian's PyTorch (torch 1.13):

    /usr/bin/python3 tools/gen_methods_fixtures.py [model ...]

Writes tests/fixtures/methods/<model>.safetensors for resnet50 (1000 classes)
and mobilenetv1 (10 classes): the generated networks and weights of
tools/gen_fixtures.py (tools/kdcgen.py, reproduced bit for bit by
tests/util/weightgen.c), an input of N = 2, 49 x 67 from kdcgen.fill, and
these references, each computed in float64 (model.double()) and, for the
noise figure in the metadata, again in float32:

  perlayer/<layer>/map   N x H x W: Grad-CAM (top-1 logit) of the layer set
                         [second-last, last] stage, one map per layer as
                         pytorch-grad-cam's base_cam.py compute_cam_per_layer
                         makes it before aggregate_multi_layers averages them:
                         scale_cam_image(max(cam, 0), (W, H)) (x -= min;
                         x /= 1e-7 + max; cv2.resize INTER_LINEAR)
  occlusion/attr         N x H x W: Captum Occlusion (captum/attr/_core/
                         occlusion.py) with sliding_window_shapes (3, K, K),
                         strides (3, S, S), baselines 0, target = top-1, the
                         model returning logits. Re-implemented here as Captum
                         does it: shift counts ceil((dim - K) / S) + 1 per
                         dimension, the window of ones padded with zeros to the
                         input's shape by F.pad (a negative right pad cuts the
                         last window at the border), ablated = x * (1 - mask),
                         attribution = sum of (y - y_ablated) * mask over all
                         windows divided by sum of masks. All 3 channels are
                         equal: channel 0 is stored.
  sscam/<last>/raw, iscam/<last>/raw
                         N x h x w: SS-CAM / IS-CAM (torch-cam's weights, see
                         smooth_score below and lib/cam/smoothscore.c) at the
                         last stage, top-8 channels, 4 samples, std 2, seed 1234
  ablation/attr          N x H x W: Captum FeatureAblation (feature_ablation.py)
                         with feature_mask[y, x] = (y // K) * ceil(W / K) + x // K
                         on all 3 channels, baselines 0: each feature's pixels
                         set to 0, attribution = y - y_ablated on its pixels.
  logits, top1           the clean pass
  weights:NAME/val       a few generated weights (checked bit for bit by C)

Container and sampling as tools/gen_fixtures.py (NAME/shape, NAME/val = whole
tensor if <= 4096 values else 512 samples at kdcgen.sample_indices, NAME/sum,
NAME/sumsq in float64). Deterministic (fixed seeds, float64).
"""

import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402
import gen_fixtures as gf  # noqa: E402
import gen_grad_fixtures as gg  # noqa: E402
import gen_cam_fixtures as gc  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "methods")
N, H, W = 2, 49, 67
INPUT_SEED = 9101
OCC_K, OCC_S = 16, 8
ABL_K = 16
SS_TOPK, SS_SAMPLES, SS_STD, SS_SEED = 8, 4, 2.0, 1234
IS_SAMPLES = 4
GAUSS_MUL = 0xD1B54A32D192ED03
MODELS = [m for m in gf.MODELS if m[0] in ("resnet50", "mobilenetv1")]


def logits_of(model, x, dtype):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x)).to(dtype)).double().numpy()


def occlusion(model, x, classes, k, s, dtype):
    """Captum Occlusion, window (3, k, k), strides (3, k, k), baseline 0."""
    n, c, h, w = x.shape
    y = logits_of(model, x, dtype)[np.arange(n), classes]
    counts = [int(np.ceil((dim - kk) / ss)) + 1 for dim, kk, ss in
              ((c, c, c), (h, k, s), (w, k, s))]
    win = torch.ones((c, k, k), dtype=torch.float64)
    total = np.zeros_like(x)
    weight = np.zeros_like(x)
    nfeat = counts[0] * counts[1] * counts[2]
    for f in range(nfeat):
        rem, idx = f, []
        for cnt, st in zip(counts, (c, s, s)):
            idx.append((rem % cnt) * st)
            rem //= cnt
        right = np.subtract((c, h, w), np.add(idx, win.shape))
        pads = [v for pair in zip(right, idx) for v in pair]
        pads.reverse()
        mask = F.pad(win, tuple(int(p) for p in pads)).numpy()[None]
        ablated = x * (1.0 - mask)
        ya = logits_of(model, ablated, dtype)[np.arange(n), classes]
        total += (y - ya)[:, None, None, None] * mask
        weight += mask
    attr = total / weight
    assert np.allclose(attr[:, 0], attr[:, 1]) and np.allclose(attr[:, 0], attr[:, 2])
    return attr[:, 0], nfeat


def feature_ablation(model, x, classes, k, dtype):
    """Captum FeatureAblation with a k x k grid feature mask on all channels."""
    n, c, h, w = x.shape
    y = logits_of(model, x, dtype)[np.arange(n), classes]
    gx = -(-w // k)
    fm = (np.arange(h)[:, None] // k) * gx + np.arange(w)[None, :] // k
    attr = np.zeros((n, h, w))
    for f in range(int(fm.max()) + 1):
        m = (fm == f)
        ablated = x.copy()
        ablated[:, :, m] = 0.0
        ya = logits_of(model, ablated, dtype)[np.arange(n), classes]
        attr[:, m] = (y - ya)[:, None]
    return attr, int(fm.max()) + 1


def smooth_score(model, x, A, classes, iscam, dtype):
    """torch-cam SSCAM / ISCAM weights (torchcam/methods/activation.py), the
    map combined from the activations A (see lib/cam/smoothscore.c):
    channels ranked by spatial mean (stable), the top SS_TOPK scored;
    U_k = (A_k - min) / (max - min) upsampled by F.interpolate(bilinear,
    align_corners=False); SS-CAM: S masks (U_k + std * z) * x with z from
    splitmix64 Box-Muller seeded SS_SEED ^ ((b + 1) * GAUSS_MUL), drawn
    channel by channel, sample by sample, pixel by pixel; IS-CAM: S masks
    c_s U_k * x, c_s = sum_{t<=s} t / S; w = softmax(mean_s score);
    cam = relu(sum w_k A_k). Returns (raw map, smallest top-k gap)."""
    n, c, h, w = A.shape
    S = IS_SAMPLES if iscam else SS_SAMPLES
    hh, ww = x.shape[2], x.shape[3]
    out = np.zeros((n, h, w))
    gap = np.inf
    for b in range(n):
        means = A[b].mean(axis=(1, 2))
        order = np.argsort(-means, kind="stable")
        sel = order[:SS_TOPK]
        gap = min(gap, (means[order[SS_TOPK - 1]] - means[order[SS_TOPK]]) / abs(means[order[0]]))
        a = A[b, sel]
        mn = a.reshape(len(sel), -1).min(axis=1)[:, None, None]
        mx = a.reshape(len(sel), -1).max(axis=1)[:, None, None]
        u = (a - mn) / (mx - mn)
        U = F.interpolate(torch.from_numpy(u[None]), size=(hh, ww), mode="bilinear",
                          align_corners=False).numpy()[0]
        if not iscam:
            z = gc.splitmix64_normals((SS_SEED ^ ((b + 1) * GAUSS_MUL)) & ((1 << 64) - 1),
                                      len(sel) * S * hh * ww).reshape(len(sel), S, hh, ww)
        score = np.zeros(len(sel))
        for j in range(len(sel)):
            coeff = 0.0
            masks = []
            for s in range(S):
                if iscam:
                    coeff += (s + 1) / S
                    masks.append(coeff * (U[j][None] * x[b]))
                else:
                    masks.append((U[j] + SS_STD * z[j, s])[None] * x[b])
            sc = logits_of(model, np.stack(masks), dtype)[:, classes[b]]
            score[j] = sc.mean()
        e = np.exp(score - score.max())
        wts = e / e.sum()
        out[b] = np.maximum(np.einsum("k,khw->hw", wts, a), 0)
    return out, gap


def per_layer(model, scheme, x, layers, classes, dtype):
    _lg, acts, gr = gg.grads(model, x, layers, gg.logit_target(classes), dtype)
    out = {}
    for L in layers:
        raw = np.maximum(gg.gradcam(acts[L].astype(np.float64), gr[L].astype(np.float64)), 0)
        out[L] = gg.scale_cam_image(raw, H, W)
    return out


def main():
    # one thread: on a shared machine more threads than free cores make
    # PyTorch's thread pool spin and the run many times slower
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    only = set(sys.argv[1:])
    for name, scheme, wseed, classes in MODELS:
        if only and name not in only:
            continue
        t0 = time.time()
        m32, gen = gf.build(scheme, wseed, classes)
        m64 = copy.deepcopy(m32).double()
        print("  %s: built (%.1fs)" % (name, time.time() - t0), flush=True)
        info = gg.arch_info(scheme, m64)
        layers = info["cam_layers"]
        x = gf.make_input(N, H, W, INPUT_SEED)
        l64 = logits_of(m64, x, torch.float64)
        top1 = [int(v) for v in np.argmax(l64, axis=1)]
        assert [int(v) for v in np.argmax(logits_of(m32, x, torch.float32), axis=1)] == top1
        pl64 = per_layer(m64, scheme, x, layers, top1, torch.float64)
        pl32 = per_layer(m32, scheme, x, layers, top1, torch.float32)
        oc64, noc = occlusion(m64, x, top1, OCC_K, OCC_S, torch.float64)
        oc32, _ = occlusion(m32, x.astype(np.float32), top1, OCC_K, OCC_S, torch.float32)
        ab64, nab = feature_ablation(m64, x, top1, ABL_K, torch.float64)
        ab32, _ = feature_ablation(m32, x.astype(np.float32), top1, ABL_K, torch.float32)
        print("  %s: per-layer, occlusion, ablation (%.1fs)" % (name, time.time() - t0),
              flush=True)
        last = layers[1]
        _lg, a64, _g = gg.grads(m64, x, [last], gg.logit_target(top1), torch.float64)
        _lg, a32, _g = gg.grads(m32, x, [last], gg.logit_target(top1), torch.float32)
        ss64, ss_gap = smooth_score(m64, x, a64[last], top1, False, torch.float64)
        ss32, _ = smooth_score(m32, x, a32[last].astype(np.float64), top1, False, torch.float32)
        is64, _ = smooth_score(m64, x, a64[last], top1, True, torch.float64)
        is32, _ = smooth_score(m32, x, a32[last].astype(np.float64), top1, True, torch.float32)

        tensors = {}
        for L in layers:
            gg.put(tensors, "perlayer/%s/map" % L, pl64[L])
        gg.put(tensors, "occlusion/attr", oc64)
        gg.put(tensors, "ablation/attr", ab64)
        gg.put(tensors, "sscam/%s/raw" % last, ss64)
        gg.put(tensors, "iscam/%s/raw" % last, is64)
        tensors["logits"] = l64.astype(np.float32)
        tensors["top1"] = np.array(top1, dtype=np.int64)
        weight_keys = [k for k, _s in kdcgen.tensor_specs(scheme, classes)]
        for k in [weight_keys[0], weight_keys[-2], weight_keys[-1]]:
            tensors["weights:%s/val" % k] = gf.sample_of(gen[k])
        noise = {
            "perlayer": max(gf.rel_l2(pl32[L], pl64[L]) for L in layers),
            "occlusion": gf.rel_l2(oc32, oc64),
            "ablation": gf.rel_l2(ab32, ab64),
            "sscam": gf.rel_l2(ss32, ss64),
            "iscam": gf.rel_l2(is32, is64),
        }
        meta = {
            "arch": "mobilenetv1" if scheme.startswith("mobilenetv1") else scheme,
            "scheme": scheme, "seed": str(wseed), "num_classes": str(classes),
            "input_name": "input", "input_seed": str(INPUT_SEED),
            "input_c": repr(gf.INPUT_C), "input_a": repr(gf.INPUT_A),
            "n": str(N), "h": str(H), "w": str(W),
            "reference": "torch %s float64" % torch.__version__,
            "top1": ",".join(str(c) for c in top1),
            "perlayer_method": "gradcam", "perlayer_layers": ",".join(layers),
            "occlusion_window": str(OCC_K), "occlusion_stride": str(OCC_S),
            "occlusion_patches": str(noc),
            "ablation_window": str(ABL_K), "ablation_features": str(nab),
            "smooth_layer": last, "smooth_topk": str(SS_TOPK), "smooth_topk_gap_rel":
            "%.3e" % ss_gap, "sscam_samples": str(SS_SAMPLES), "sscam_std": repr(SS_STD),
            "sscam_seed": str(SS_SEED), "iscam_samples": str(IS_SAMPLES),
        }
        for k, v in noise.items():
            meta["f32_vs_f64_%s_rel_l2" % k] = "%.3e" % v
        path = os.path.join(OUT_DIR, "%s.safetensors" % name)
        kdcgen.write_safetensors(path, tensors, meta)
        print("%-12s top1 %s  f32-vs-f64: %s  %d bytes  %.1fs" % (
            name, top1, "  ".join("%s %.2e" % kv for kv in noise.items()),
            os.path.getsize(path), time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
