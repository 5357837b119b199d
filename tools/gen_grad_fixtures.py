#!/usr/bin/env python3
"""gen_grad_fixtures.py - PyTorch reference fixtures of the gradient and CAM tests.

Run from the repository root with Debian's PyTorch (torch 1.13, torchvision 0.14):

    /usr/bin/python3 tools/gen_grad_fixtures.py [model ...]

Writes tests/fixtures/grad/<model>.safetensors for resnet50, resnet101,
resnet152, mobilenetv1 (KD keys, ReLU, 10 classes) and mobilenetv1_timm
(ReLU6, 1000 classes). The networks, their weights (same seeds as
tools/gen_fixtures.py) and the input come from the seeded generator
(tools/kdcgen.py, reproduced bit for bit by tests/util/weightgen.c), so only
reference results are stored. One case per model: N = 2, H x W = 49 x 67
(small and odd: the C tests run the scalar engine; ResNet layer4 is 2 x 3,
layer3 4 x 5; MobileNet model.13 2 x 3, model.11 4 x 5).

Reference: float64 (model.double(), the float32 input widened exactly),
gradients by autograd (a forward hook calls retain_grad() on each recorded
module output; the input is a leaf with requires_grad). Every ReLU is
inplace=False. The same computations are repeated in float32 and the relative
L2 error of float32 vs float64 is written to the metadata (the noise floor of
a float32 implementation).

Stored tensors (same container and sampling rules as tools/gen_fixtures.py:
NAME/shape I64, NAME/val F32 = whole tensor if <= 4096 elements else 512
samples at kdcgen.sample_indices, NAME/sum and NAME/sumsq F64 of the whole
tensor):

  logit/<layer>       case 1: d(sum_b logit[b, top1_b]) / d(output of layer)
                      for every layer of metadata logit_layers
  prob/<layer>        case 2: d(sum_b softmax(logits)[b, c_b]) / d(layer),
                      c = metadata prob_classes (explicit: each image's
                      runner-up class), layers prob_layers
                      (left out, prob_layers empty and prob_skipped giving the
                      reason, when float32 PyTorch misses the float64 gradient by
                      more than MAX_PROB_NOISE: a saturated softmax, resnet152)
  guided/input        case 3: guided backpropagation input gradient, top-1 logit
  seed/<layer>        case 4: target sum(seed * output of seed_layer), seed =
                      kdcgen.fill(seed_name, numel, seed_seed, seed_c, seed_a)
                      shaped like seed_layer's output; layers seed_grad_layers
  cam/<method>/<layer>/raw     raw map of the layer (N x h x w): after the
                               ReLU, feature resolution, unnormalised
  cam/<method>/<set>/map       final map N x H x W for the layer set
                               <set> = "layer4" or "layer3+layer4" (MobileNet:
                               "model.13", "model.11+model.13")
  guided_gradcam      N x 3 x H x W: the final Grad-CAM map of the single
                      last-stage layer (cam/gradcam/<last>/map) times the guided
                      input gradient, per pixel
  logits F32 [N, classes], top1 I64 [N], prob_classes I64 [N]
  weights:NAME/val    a few generated weights (checked bit for bit by C)

CAM conventions (pytorch-grad-cam 1.4.x, numbers below refer to its files; it
is not installed here, the formulas are re-implemented in float64 in this
script). A = activation (the module output), G = d target / d A, both N x C x
h x w; target = the top-1 raw logit of each image (ClassifierOutputTarget).
Every method's per-layer map is ReLU'd (base_cam.py compute_cam_per_layer:
np.maximum(cam, 0)), then scale_cam_image (utils/image.py): x -= min;
x /= (1e-7 + max); cv2.resize(x, (W, H)) INTER_LINEAR (half-pixel centres,
clamped at the border). Several layers (base_cam.py aggregate_multi_layers):
concatenate, ReLU, mean over layers, scale_cam_image again (no resize).

Input seed: the first from INPUT_SEED up whose top-1 margin is > MIN_MARGIN
and whose float32 PyTorch gradients (logit, guided, seed cases) agree with
float64 to MAX_GRAD_NOISE (no ReLU mask flipping between the two precisions on
the gradient path).

Deterministic: fixed seeds (torch uses both cores; float64 results do not
depend on the summation order at the stored precision).
"""

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402
import gen_fixtures as gf  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "grad")
N, H, W = 2, 49, 67
INPUT_SEED = 7301            # first input seed tried (bumped until the margins and the
                             # float32 gradient noise criterion hold)
SEED_NAME, SEED_SEED, SEED_C, SEED_A = "seed", 4242, 0.0, 1.0
# PROB target: explicit classes = each image's runner-up (second-largest
# logit). A fixed pair such as [3, 7] has probability 1e-49 .. 1e-69 with the
# generated ResNet101/152 weights (logits span +-100 and more): float32
# softmax underflows there (PyTorch float32 gives a zero gradient, rel err 1),
# so such a reference would test nothing but underflow.
SCORECAM_TOPK = 8
ABLATION_CHUNK = 128
METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam",
           "eigengradcam", "scorecam", "ablationcam"]
# minimum relative gaps that make the reference well defined for a float32
# implementation (top-1 class, Score-CAM's top-k set, Eigen-CAM's vector)
MIN_MARGIN = 1e-3
MIN_TOPK_GAP = 1e-4
MIN_EIGEN_GAP = 1e-2
MAX_GRAD_NOISE = 2e-5   # float32-vs-float64 PyTorch gradients (logit, guided, seed)
MAX_PROB_NOISE = 5e-5   # ... of the probability target (else that case is dropped)


def arch_info(scheme, model):
    """Layer lists of a model (libkdcam names)."""
    if scheme.startswith("resnet"):
        blocks = []
        for L in range(1, 5):
            stage = getattr(model, "layer%d" % L)
            blocks += ["layer%d.%d" % (L, b) for b in range(len(stage))] + ["layer%d" % L]
        return {
            "logit_layers": ["input", "relu", "maxpool"] + blocks + ["avgpool"],
            "prob_layers": ["input", "layer4"],
            "seed_layer": "layer3",
            "seed_grad_layers": ["input", "layer2"],
            "cam_layers": ["layer3", "layer4"],
            "nospatial": "avgpool",
        }
    return {
        "logit_layers": ["input"] + ["model.%d" % k for k in range(15)],
        "prob_layers": ["input", "model.13"],
        "seed_layer": "model.11",
        "seed_grad_layers": ["input", "model.5"],
        "cam_layers": ["model.11", "model.13"],
        "nospatial": "model.14",
    }


def module_of(model, name):
    return model.get_submodule(name)


def tail_from(model, scheme, layer):
    """A function mapping the output of `layer` to the logits (for Ablation-CAM)."""
    if scheme.startswith("resnet"):
        L = int(layer[len("layer"):])
        stages = [getattr(model, "layer%d" % k) for k in range(L + 1, 5)]

        def f(x):
            for s in stages:
                x = s(x)
            return model.fc(torch.flatten(model.avgpool(x), 1))
        return f
    K = int(layer.split(".")[1])

    def g(x):
        for k in range(K + 1, 15):
            x = model.model[k](x)
        return model.fc(x.view(-1, 1024))
    return g


class GuidedReLUFn(torch.autograd.Function):
    """pytorch-grad-cam guided_backprop.py GuidedBackpropReLU: grad_in =
    grad_out * [x > 0] * [grad_out > 0]; for ReLU6 also [x < 6] (the clamp's
    own derivative)."""

    @staticmethod
    def forward(ctx, x, hi):
        ctx.save_for_backward(x)
        ctx.hi = hi
        return x.clamp(min=0) if hi is None else x.clamp(0, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        m = x > 0
        if ctx.hi is not None:
            m = m & (x < ctx.hi)
        return g * m.to(g.dtype) * (g > 0).to(g.dtype), None


class GuidedReLU(nn.Module):
    def __init__(self, hi=None):
        super().__init__()
        self.hi = hi

    def forward(self, x):
        return GuidedReLUFn.apply(x, self.hi)


def make_guided(model):
    """Replaces every nn.ReLU / nn.ReLU6 module (torchvision's Bottleneck uses
    its one `relu` module three times, the residual join included)."""
    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(mod, cname, GuidedReLU(6.0))
            elif isinstance(child, nn.ReLU):
                setattr(mod, cname, GuidedReLU(None))
    return model


def grads(model, x_np, names, target_fn, dtype):
    """Forward with hooks on `names`, target_fn(logits, store) -> scalar,
    backward. Returns (logits, {name: activation}, {name: gradient}) as numpy."""
    store = {}
    handles = []
    for nm in names:
        if nm == "input":
            continue

        def hook(_m, _i, out, nm=nm):
            out.retain_grad()
            store[nm] = out
        handles.append(module_of(model, nm).register_forward_hook(hook))
    x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
    logits = model(x)
    t = target_fn(logits, store)
    t.backward()
    for h in handles:
        h.remove()
    acts = {nm: store[nm].detach().numpy().copy() for nm in store}
    g = {nm: store[nm].grad.detach().numpy().copy() for nm in store}
    g["input"] = x.grad.detach().numpy().copy()
    acts["input"] = x_np.astype(np.float64)
    return logits.detach().numpy().copy(), acts, g


def logit_target(classes):
    def f(logits, _store):
        return logits[torch.arange(logits.shape[0]), torch.as_tensor(classes)].sum()
    return f


def prob_target(classes):
    def f(logits, _store):
        p = torch.softmax(logits, dim=1)
        return p[torch.arange(logits.shape[0]), torch.as_tensor(classes)].sum()
    return f


def seed_target(layer, seed):
    def f(_logits, store):
        return (torch.from_numpy(seed).to(store[layer].dtype) * store[layer]).sum()
    return f


# ---------------------------------------------------------------------------
# CAM formulas (float64 numpy). A, G: N x C x h x w.

def cam_weighted(w, A):
    """sum_k w[n,k] A[n,k] (base_cam.py get_cam_image: weighted_activations.sum(axis=1))."""
    return np.einsum("nk,nkhw->nhw", w, A)


def gradcam(A, G):
    # grad_cam.py get_cam_weights: np.mean(grads, axis=(2, 3))
    return cam_weighted(G.mean(axis=(2, 3)), A)


def hirescam(A, G):
    # hirescam.py: elementwise grads * activations, summed over channels
    return (G * A).sum(axis=1)


def gradcampp(A, G):
    # grad_cam_plusplus.py: aij = g^2 / (2 g^2 + sum_ab(A) g^3 + 1e-6);
    # aij = where(g != 0, aij, 0); w = sum_ij(max(g, 0) * aij)
    g2 = G ** 2
    g3 = g2 * G
    sa = A.sum(axis=(2, 3))[:, :, None, None]
    aij = g2 / (2 * g2 + sa * g3 + 1e-6)
    aij = np.where(G != 0, aij, 0.0)
    w = (np.maximum(G, 0) * aij).sum(axis=(2, 3))
    return cam_weighted(w, A)


def xgradcam(A, G):
    # xgrad_cam.py: w = sum(g * A / (sum_ab(A) + 1e-7), axis=(2, 3))
    sa = A.sum(axis=(2, 3))[:, :, None, None]
    w = (G * A / (sa + 1e-7)).sum(axis=(2, 3))
    return cam_weighted(w, A)


def layercam(A, G):
    # layer_cam.py: (max(g, 0) * A).sum(axis=1)
    return (np.maximum(G, 0) * A).sum(axis=1)


def projection_2d(X):
    """utils/svd_on_activations.py get_2d_projection: per image, the (hw x c)
    matrix, columns centred, projected on the first right singular vector
    (np.linalg.svd(full_matrices=True), VT[0]). libkdcam's sign fix (not in
    pytorch-grad-cam; lib/cam/eigen.c kdc__pca_project): flip so that
    sum(projection * channel-mean of X) >= 0, X being the decomposed map (A for
    Eigen-CAM, G * A for EigenGrad-CAM); the projection has zero mean, so this
    is its correlation with the channel mean. Returns (maps, smallest relative
    gap (s0 - s1) / s0)."""
    n, c, h, w = X.shape
    out = np.empty((n, h, w))
    gap = np.inf
    for b in range(n):
        M = X[b].reshape(c, -1).T
        M = M - M.mean(axis=0)
        _U, S, VT = np.linalg.svd(M, full_matrices=True)
        p = M @ VT[0, :]
        if np.dot(p, X[b].mean(axis=0).ravel()) < 0:
            p = -p
        out[b] = p.reshape(h, w)
        if len(S) > 1 and S[0] > 0:
            gap = min(gap, (S[0] - S[1]) / S[0])
    return out, gap


def eigencam(A, G):
    # eigen_cam.py: get_2d_projection(activations)
    return projection_2d(A)


def eigengradcam(A, G):
    # eigen_grad_cam.py: get_2d_projection(grads * activations)
    return projection_2d(G * A)


def upsample_align_corners(A, oh, ow):
    """torch.nn.UpsamplingBilinear2d(size=(oh, ow)) (align_corners=True) of N x C x h x w."""
    t = torch.from_numpy(np.ascontiguousarray(A))
    return torch.nn.functional.interpolate(t, size=(oh, ow), mode="bilinear",
                                           align_corners=True).numpy()


def scorecam(A, x, score_fn, classes, topk):
    """score_cam.py: upsample each channel to the input size (UpsamplingBilinear2d),
    u = (u - min) / (max - min) per channel (pytorch-grad-cam adds 1e-8 to the
    denominator; libkdcam divides by (max - min) and gives a constant channel
    mask 0), masked input = input * u on all 3 channels, score = the target
    logit of the masked input, weights = softmax over channels of the scores.
    libkdcam's top-k (not in pytorch-grad-cam): only the k channels with the
    largest spatial-mean activation (at feature resolution) are scored; the
    softmax runs over those k, every other channel weighs 0.
    Returns (map, smallest relative gap between the k-th and (k+1)-th mean)."""
    n, c, h, w = A.shape
    means = A.mean(axis=(2, 3))
    wts = np.zeros((n, c))
    gap = np.inf
    for b in range(n):
        order = np.argsort(-means[b], kind="stable")
        sel = order[:topk] if topk > 0 else order
        if 0 < topk < c:
            mk, mk1 = means[b, order[topk - 1]], means[b, order[topk]]
            gap = min(gap, (mk - mk1) / max(abs(mk), 1e-300))
        u = upsample_align_corners(A[b:b + 1, sel], x.shape[2], x.shape[3])[0]
        mn = u.reshape(len(sel), -1).min(axis=1)[:, None, None]
        mx = u.reshape(len(sel), -1).max(axis=1)[:, None, None]
        rng = mx - mn
        u = np.where(rng > 0, (u - mn) / np.where(rng > 0, rng, 1.0), 0.0)
        masked = x[b][None, :, :, :] * u[:, None, :, :]
        s = score_fn(masked)[:, classes[b]]
        e = np.exp(s - s.max())
        wts[b, sel] = e / e.sum()
    return cam_weighted(wts, A), gap


def ablationcam(A, tail, classes, y):
    """ablation_cam.py: channel k of the layer's output replaced (AblationLayer:
    set to 0 when min(output) == 0, which holds after a ReLU; libkdcam always
    uses 0), the rest of the network rerun, w_k = (y - y_k) / y with y the
    unablated target score."""
    n, c, h, w = A.shape
    wts = np.zeros((n, c))
    for b in range(n):
        for k0 in range(0, c, ABLATION_CHUNK):
            k1 = min(c, k0 + ABLATION_CHUNK)
            batch = np.repeat(A[b:b + 1], k1 - k0, axis=0)
            batch[np.arange(k1 - k0), np.arange(k0, k1)] = 0.0
            with torch.no_grad():
                yk = tail(torch.from_numpy(batch).to(tail.dtype)).double().numpy()[:, classes[b]]
            wts[b, k0:k1] = (y[b] - yk) / y[b]
    return cam_weighted(wts, A)


def cv2_resize_linear(img, oh, ow):
    """cv2.resize(img, (ow, oh), interpolation=INTER_LINEAR) of one h x w plane:
    sx = (dx + 0.5) * (w / ow) - 0.5, clamped to [0, w - 1] (cv2's border
    handling: below 0 -> 0, at or beyond the last pixel -> the last pixel)."""
    h, w = img.shape

    def axis(o, i):
        s = (np.arange(o) + 0.5) * (i / o) - 0.5
        s = np.clip(s, 0, i - 1)
        i0 = np.floor(s).astype(np.int64)
        i1 = np.minimum(i0 + 1, i - 1)
        f = s - i0
        return i0, i1, f

    y0, y1, fy = axis(oh, h)
    x0, x1, fx = axis(ow, w)
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bot = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def scale_cam_image(cam, oh=None, ow=None):
    """utils/image.py scale_cam_image: per image x -= min; x /= (1e-7 + max);
    then cv2.resize (if a size is given)."""
    out = []
    for img in cam:
        img = img - img.min()
        img = img / (1e-7 + img.max())
        if oh is not None:
            img = cv2_resize_linear(img, oh, ow)
        out.append(img)
    return np.stack(out)


def aggregate(per_layer_scaled):
    """base_cam.py aggregate_multi_layers: ReLU, mean over layers, scale again."""
    x = np.maximum(np.stack(per_layer_scaled, axis=1), 0).mean(axis=1)
    return scale_cam_image(x)


def cam_all(model, scheme, x, acts, gr, classes, logits, cam_layers, dtype):
    """{method: {layer: raw map}} and the extra diagnostics."""
    diag = {"eigen_gap": np.inf, "topk_gap": np.inf}

    def score_fn(batch):
        with torch.no_grad():
            return model(torch.from_numpy(batch).to(dtype)).double().numpy()
    raw = {m: {} for m in METHODS}
    for L in cam_layers:
        A, G = acts[L].astype(np.float64), gr[L].astype(np.float64)
        raw["gradcam"][L] = gradcam(A, G)
        raw["hirescam"][L] = hirescam(A, G)
        raw["gradcam++"][L] = gradcampp(A, G)
        raw["xgradcam"][L] = xgradcam(A, G)
        raw["layercam"][L] = layercam(A, G)
        e, gap1 = eigencam(A, G)
        raw["eigencam"][L] = e
        e, gap2 = eigengradcam(A, G)
        raw["eigengradcam"][L] = e
        diag["eigen_gap"] = min(diag["eigen_gap"], gap1, gap2)
        s, tg = scorecam(A, x.astype(np.float64), score_fn, classes, SCORECAM_TOPK)
        raw["scorecam"][L] = s
        diag["topk_gap"] = min(diag["topk_gap"], tg)
        tail = tail_from(model, scheme, L)
        tail.dtype = dtype
        y = logits[np.arange(len(classes)), classes].astype(np.float64)
        raw["ablationcam"][L] = ablationcam(A, tail, classes, y)
    for m in METHODS:
        for L in cam_layers:
            raw[m][L] = np.maximum(raw[m][L], 0.0)  # base_cam.py: np.maximum(cam, 0)
    return raw, diag


def final_maps(raw, layer_set, oh, ow):
    return aggregate([scale_cam_image(raw[L], oh, ow) for L in layer_set])


# ---------------------------------------------------------------------------

def put(tensors, key, arr):
    a = np.asarray(arr, dtype=np.float64)
    tensors[key + "/shape"] = np.array(a.shape, dtype=np.int64)
    tensors[key + "/val"] = gf.sample_of(a).astype(np.float32)
    tensors[key + "/sum"] = np.array(a.sum(), dtype=np.float64)
    tensors[key + "/sumsq"] = np.array((a * a).sum(), dtype=np.float64)


def worst(d64, d32, keys):
    w, wn = 0.0, ""
    for k in keys:
        e = gf.rel_l2(d32[k], d64[k])
        if e > w:
            w, wn = e, k
    return w, wn


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(OUT_DIR, exist_ok=True)
    only = set(sys.argv[1:])
    for name, scheme, wseed, classes in gf.MODELS:
        if only and name not in only:
            continue
        t0 = time.time()
        m64, gen = gf.build(scheme, wseed, classes)
        m64 = m64.double()
        m32, _ = gf.build(scheme, wseed, classes)
        g64, _ = gf.build(scheme, wseed, classes)
        g64 = make_guided(g64.double())
        g32, _ = gf.build(scheme, wseed, classes)
        g32 = make_guided(g32)
        info = arch_info(scheme, m64)
        last, second = info["cam_layers"][1], info["cam_layers"][0]
        cam_sets = [[last], [second, last]]

        in_seed = INPUT_SEED - 1
        names1 = info["logit_layers"]
        sl = info["seed_layer"]
        while True:
            in_seed += 1
            x = gf.make_input(N, H, W, in_seed)
            with torch.no_grad():
                l0 = m64(torch.from_numpy(x).double()).numpy()
            margin = gf.top1_margin(l0)
            top1 = [int(v) for v in np.argmax(l0, axis=1)]
            y = l0[np.arange(N), top1]
            if not (margin > MIN_MARGIN and np.all(np.abs(y) > 0.05 * np.abs(l0).max(axis=1))):
                print("  %s: input seed %d: margin %.2e or small target logit, next seed"
                      % (name, in_seed, margin))
                continue
            prob_classes = [int(v) for v in np.argsort(-l0, axis=1, kind="stable")[:, 1]]
            # case 1: top-1 logit
            lg64, a64, gr64 = grads(m64, x, names1 + [second], logit_target(top1), torch.float64)
            lg32, a32, gr32 = grads(m32, x, names1 + [second], logit_target(top1), torch.float32)
            assert [int(v) for v in np.argmax(lg32, axis=1)] == top1
            # case 2: softmax probability of explicit classes
            _, _, pr64 = grads(m64, x, info["prob_layers"], prob_target(prob_classes),
                               torch.float64)
            _, _, pr32 = grads(m32, x, info["prob_layers"], prob_target(prob_classes),
                               torch.float32)
            # case 3: guided backpropagation
            _, _, gu64 = grads(g64, x, ["input"], logit_target(top1), torch.float64)
            _, _, gu32 = grads(g32, x, ["input"], logit_target(top1), torch.float32)
            # case 4: seed at seed_layer
            sshape = a64[sl].shape
            seed = kdcgen.fill(SEED_NAME, int(np.prod(sshape)), SEED_SEED, SEED_C,
                               SEED_A).reshape(sshape)
            snames = info["seed_grad_layers"] + [sl]
            _, _, sd64 = grads(m64, x, snames, seed_target(sl, seed), torch.float64)
            _, _, sd32 = grads(m32, x, snames, seed_target(sl, seed), torch.float32)
            # Well-posedness: a ReLU input (or max-pool tie) within float32
            # rounding of its threshold flips the mask between float32 and
            # float64 and moves a gradient by up to ~1e-3 (seen with
            # resnet152, input seed 7301: layer3.7). The fixture needs an input
            # whose float32 PyTorch gradients agree with float64 to 2e-5.
            noise = max(worst(gr64, gr32, names1)[0], gf.rel_l2(gu32["input"], gu64["input"]),
                        worst(sd64, sd32, info["seed_grad_layers"])[0])
            if noise > MAX_GRAD_NOISE:
                print("  %s: input seed %d: float32-vs-float64 gradient noise %.2e (a ReLU "
                      "mask flips), next seed" % (name, in_seed, noise))
                continue
            break
        # The probability target's relative condition is about max|logit| (its
        # scale is exp(z_c - logsumexp z)): with resnet152's generated weights
        # (logits ~ +-250) float32 logits alone move it by ~3e-4. Such a case is
        # not stored (metadata prob_skipped says why).
        prob_layers = info["prob_layers"]
        prob_noise = worst(pr64, pr32, prob_layers)[0]
        prob_skipped = ""
        if prob_noise > MAX_PROB_NOISE:
            prob_skipped = ("float32-vs-float64 noise %.2e of the softmax-probability gradient "
                            "(max |logit| %.0f) exceeds %.0e: ill-conditioned, not stored"
                            % (prob_noise, float(np.abs(l0).max()), MAX_PROB_NOISE))
            print("  %s: %s" % (name, prob_skipped))
            prob_layers = []

        # CAMs (float64 and, for the noise figure, float32)
        raw64, diag = cam_all(m64, scheme, x, a64, gr64, top1, lg64, info["cam_layers"],
                              torch.float64)
        raw32, _ = cam_all(m32, scheme, x, a32, gr32, top1, lg32, info["cam_layers"],
                           torch.float32)

        tensors = {}
        for L in names1:
            put(tensors, "logit/" + L, gr64[L])
        for L in prob_layers:
            put(tensors, "prob/" + L, pr64[L])
        put(tensors, "guided/input", gu64["input"])
        for L in info["seed_grad_layers"]:
            put(tensors, "seed/" + L, sd64[L])
        cam_noise = {}
        map_noise = 0.0
        finals = {}
        for meth in METHODS:
            for L in info["cam_layers"]:
                put(tensors, "cam/%s/%s/raw" % (meth, L), raw64[meth][L])
                cam_noise["%s/%s" % (meth, L)] = gf.rel_l2(raw32[meth][L], raw64[meth][L])
            for ls in cam_sets:
                f64 = final_maps(raw64[meth], ls, H, W)
                f32 = final_maps(raw32[meth], ls, H, W)
                map_noise = max(map_noise, float(np.abs(f64 - f32).max()))
                put(tensors, "cam/%s/%s/map" % (meth, "+".join(ls)), f64)
                finals[(meth, "+".join(ls))] = f64
        ggc = finals[("gradcam", last)][:, None, :, :] * gu64["input"]
        put(tensors, "guided_gradcam", ggc)
        tensors["logits"] = lg64.astype(np.float32)
        tensors["top1"] = np.array(top1, dtype=np.int64)
        tensors["prob_classes"] = np.array(prob_classes, dtype=np.int64)
        weight_keys = [k for k, _s in kdcgen.tensor_specs(scheme, classes)]
        for k in [weight_keys[0], weight_keys[-2], weight_keys[-1]]:
            tensors["weights:%s/val" % k] = gf.sample_of(gen[k])

        e1, n1 = worst(gr64, gr32, names1)
        e2, n2 = worst(pr64, pr32, info["prob_layers"])
        e3 = gf.rel_l2(gu32["input"], gu64["input"])
        e4, n4 = worst(sd64, sd32, info["seed_grad_layers"])
        ce = max(cam_noise.items(), key=lambda kv: kv[1])
        meta = {
            "arch": "mobilenetv1" if scheme.startswith("mobilenetv1") else scheme,
            "scheme": scheme, "seed": str(wseed), "num_classes": str(classes),
            "input_name": "input", "input_seed": str(in_seed),
            "input_c": repr(gf.INPUT_C), "input_a": repr(gf.INPUT_A),
            "n": str(N), "h": str(H), "w": str(W),
            "sample_k": str(gf.SAMPLE_K), "full_max": str(gf.FULL_MAX),
            "activation": "relu6" if scheme == "mobilenetv1_timm" else "relu",
            "reference": "torch %s float64 autograd" % torch.__version__,
            "top1": ",".join(str(c) for c in top1),
            "top1_margin_rel": "%.3e" % gf.top1_margin(lg64),
            "logit_layers": ",".join(names1),
            "prob_classes": ",".join(str(c) for c in prob_classes),
            "prob_classes_rule": "runner-up class of each image",
            "prob_of_classes": ",".join("%.3e" % v for v in
                                        np.exp(l0 - l0.max(axis=1, keepdims=True))[
                                            np.arange(N), prob_classes]
                                        / np.exp(l0 - l0.max(axis=1, keepdims=True)).sum(axis=1)),
            "prob_layers": ",".join(prob_layers),
            "prob_skipped": prob_skipped,
            "guided_layers": "input",
            "seed_name": SEED_NAME, "seed_seed": str(SEED_SEED),
            "seed_c": repr(SEED_C), "seed_a": repr(SEED_A), "seed_layer": sl,
            "seed_grad_layers": ",".join(info["seed_grad_layers"]),
            "cam_methods": ",".join(METHODS),
            "cam_layers": ",".join(info["cam_layers"]),
            "cam_sets": ";".join(",".join(s) for s in cam_sets),
            "cam_last": last, "nospatial_layer": info["nospatial"],
            "scorecam_topk": str(SCORECAM_TOPK),
            "scorecam_topk_gap_rel": "%.3e" % diag["topk_gap"],
            "eigen_gap_rel": "%.3e" % diag["eigen_gap"],
            "f32_vs_f64_logit_grad_worst_rel_l2": "%.3e" % e1,
            "f32_vs_f64_logit_grad_worst_layer": n1,
            "f32_vs_f64_prob_grad_worst_rel_l2": "%.3e" % e2,
            "f32_vs_f64_prob_grad_worst_layer": n2,
            "f32_vs_f64_guided_input_rel_l2": "%.3e" % e3,
            "f32_vs_f64_seed_grad_worst_rel_l2": "%.3e" % e4,
            "f32_vs_f64_seed_grad_worst_layer": n4,
            "f32_vs_f64_cam_raw_worst_rel_l2": "%.3e" % ce[1],
            "f32_vs_f64_cam_raw_worst": ce[0],
            "f32_vs_f64_cam_map_max_abs": "%.3e" % map_noise,
            "f32_vs_f64_cam_raw_rel_l2": ",".join("%s=%.2e" % kv for kv in cam_noise.items()),
        }
        if diag["topk_gap"] < MIN_TOPK_GAP or diag["eigen_gap"] < MIN_EIGEN_GAP:
            print("  WARNING %s: top-k gap %.2e, eigen gap %.2e" % (name, diag["topk_gap"],
                                                                  diag["eigen_gap"]))
        path = os.path.join(OUT_DIR, "%s.safetensors" % name)
        kdcgen.write_safetensors(path, tensors, meta)
        print("%-17s seed %d top1 %s margin %s | f32-vs-f64 grad: logit %s (%s) prob %s (%s) "
              "guided %s seed %s (%s) | cam raw %s (%s) map max abs %s | topk gap %s eigen gap %s"
              " | %d bytes %.0fs"
              % (name, in_seed, meta["top1"], meta["top1_margin_rel"], meta[
                  "f32_vs_f64_logit_grad_worst_rel_l2"], n1, meta[
                  "f32_vs_f64_prob_grad_worst_rel_l2"], n2, meta[
                  "f32_vs_f64_guided_input_rel_l2"], meta["f32_vs_f64_seed_grad_worst_rel_l2"],
                  n4, meta["f32_vs_f64_cam_raw_worst_rel_l2"], ce[0],
                  meta["f32_vs_f64_cam_map_max_abs"], meta["scorecam_topk_gap_rel"],
                  meta["eigen_gap_rel"], os.path.getsize(path), time.time() - t0), flush=True)
        print("    cam raw f32-vs-f64: " + meta["f32_vs_f64_cam_raw_rel_l2"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
