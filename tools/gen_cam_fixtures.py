#!/usr/bin/env python3
"""gen_cam_fixtures.py - reference fixtures of tests/test_cam.c and tests/test_render.c.

Run from the repository root with Debian's PyTorch (torch 1.13 + numpy):

    /usr/bin/python3 tools/gen_cam_fixtures.py

Everything here re-implements pytorch-grad-cam's conventions in NumPy / PyTorch
(pytorch-grad-cam and OpenCV are not installed), independently of lib/cam/ and
lib/cam/render.c. Files written (tests/fixtures/cam/):

maps.safetensors   kdc_cam_from_maps / kdc_feature_map / resizing:
  CASE/A, CASE/G          F32 (n, c, h, w) inputs
  CASE/raw/METHOD         F32 (n, h, w) raw map after ReLU (float64 reference)
  CASE/feat/REDUCE        F32 (n, h, w) feature maps (mean, max, l2, pca)
  cases: a (n=2 c=7 5x6 random), b (negative and exactly-zero gradients,
  zeros in A), z (all-zero A and G), wide (n=2 c=40 3x4: more channels than
  pixels, so the PCA takes the other Gram matrix), big (n=1 c=70 8x9) and
  bigwide (n=1 c=90 7x8): larger low-rank-plus-noise principal components
  resize/src (2,5,6) -> resize/out (2,23,31): scale_cam_image + cv2 resize
  resize/plain (2,23,31): kdc_resize_bilinear alone; resize/down (2,3,4)
  chain/raw0 (2,5,6), chain/raw1 (2,3,4) -> chain/map (2,23,31): the
  multi-layer aggregation
  upac/src (2,3,4) -> upac/out (2,17,13): UpsamplingBilinear2d
  (align_corners=True), Score-CAM's upsampling

render.safetensors   pictures:
  jet            I32 (256, 3) OpenCV COLORMAP_JET as RGB
  overlay/img    I32 (5, 7, 3) uint8 picture; overlay/map F32 (5, 7);
  overlay/out    I32 (5, 7, 3) show_cam_on_image(img/255, map, use_rgb=True)
  grad/in        F32 (3, 6, 5) gradient (CHW); grad/out I32 (6, 5, 3)
                 deprocess_image in NumPy float32; grad/out64 the same with
                 mean and std from float64 sums (what libkdcam does)

model.safetensors    kdc_cam_compute and kdc_attribution_compute on the
  KD MobileNetV1 (10 classes, weights seed 1001 from tools/kdcgen.py, as the
  model fixtures), input kdcgen.fill("input", n*3*h*w, 7101, 0, 2) with
  n = 2, 64 x 80. Reference in float64. Names: CASE/raw0, CASE/raw1 (whole),
  CASE/map, attr/KIND (1024 samples at kdcgen.sample_indices of the flat
  n x 64 x 80 map / n x 3 x 64 x 80 attribution), CASE/classes; input/val
  (16 samples, to check the input generator).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402
import gen_fixtures  # noqa: E402

OUT = os.path.join("tests", "fixtures", "cam")

# ---------------------------------------------------------------------------
# CAM conventions (pytorch-grad-cam), float64


def cam_weights(method, A, G):
    if method == "gradcam":
        return G.mean(axis=(2, 3))
    if method == "xgradcam":
        s = A.sum(axis=(2, 3))
        return (G * A / (s[:, :, None, None] + 1e-7)).sum(axis=(2, 3))
    if method == "gradcam++":
        g2 = G ** 2
        g3 = g2 * G
        s = A.sum(axis=(2, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            aij = g2 / (2 * g2 + s[:, :, None, None] * g3 + 1e-6)
        aij = np.where(G != 0, aij, 0)
        return (np.maximum(G, 0) * aij).sum(axis=(2, 3))
    raise ValueError(method)


def projection(X):
    """get_2d_projection of one (c, h, w) map, sign fixed (libkdcam's rule):
    proj must correlate non-negatively with the channel mean of X."""
    c, h, w = X.shape
    M = X.reshape(c, -1).T.astype(np.float64)
    M = M - M.mean(axis=0)
    _u, _s, vt = np.linalg.svd(M, full_matrices=False)
    proj = M @ vt[0]
    ref = X.reshape(c, -1).mean(axis=0)
    if proj @ (ref - ref.mean()) < 0:
        proj = -proj
    return proj.reshape(h, w)


def cam_raw(method, A, G):
    A = A.astype(np.float64)
    G = None if G is None else G.astype(np.float64)
    if method in ("gradcam", "xgradcam", "gradcam++"):
        cam = (cam_weights(method, A, G)[:, :, None, None] * A).sum(axis=1)
    elif method == "hirescam":
        cam = (G * A).sum(axis=1)
    elif method == "layercam":
        cam = (np.maximum(G, 0) * A).sum(axis=1)
    elif method == "eigencam":
        cam = np.stack([projection(a) for a in A])
    elif method == "eigengradcam":
        cam = np.stack([projection(a) for a in G * A])
    else:
        raise ValueError(method)
    return np.maximum(cam, 0)


GRAD_METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam",
                "eigengradcam"]


def feature(reduce, A):
    A = A.astype(np.float64)
    if reduce == "mean":
        return A.mean(axis=1)
    if reduce == "max":
        return A.max(axis=1)
    if reduce == "l2":
        return np.sqrt((A * A).sum(axis=1))
    return np.stack([projection(a) for a in A])


# ---------------------------------------------------------------------------
# cv2.resize INTER_LINEAR (half-pixel centres), float32


def _cv2_coeffs(insz, outsz):
    f = ((np.arange(outsz) + 0.5) * (insz / outsz) - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    lo = s < 0
    s[lo], f[lo] = 0, 0
    hi = s >= insz - 1
    s[hi], f[hi] = insz - 1, 0
    return s, np.minimum(s + 1, insz - 1), f


def cv2_resize(img, out_h, out_w):
    """cv2.resize(img, (out_w, out_h)) for one float32 plane."""
    img = img.astype(np.float32)
    y0, y1, fy = _cv2_coeffs(img.shape[0], out_h)
    x0, x1, fx = _cv2_coeffs(img.shape[1], out_w)
    one = np.float32(1)
    r0 = img[y0][:, x0] * (one - fx) + img[y0][:, x1] * fx
    r1 = img[y1][:, x0] * (one - fx) + img[y1][:, x1] * fx
    return ((one - fy)[:, None] * r0 + fy[:, None] * r1).astype(np.float32)


def check_against_torch(img, out_h, out_w):
    ref = F.interpolate(torch.from_numpy(img[None, None].astype(np.float32)), size=(out_h, out_w),
                        mode="bilinear", align_corners=False)[0, 0].numpy()
    err = float(np.abs(ref - cv2_resize(img, out_h, out_w)).max())
    assert err < 1e-6, ("cv2-convention resize disagrees with torch", err)
    return err


def scale_cam_image(cam, target=None):
    """pytorch-grad-cam's scale_cam_image, float32 as there."""
    out = []
    for img in cam.astype(np.float32):
        img = img - np.min(img)
        img = img / np.float32(1e-7 + np.max(img))
        if target is not None:
            img = cv2_resize(img, target[0], target[1])
        out.append(img)
    return np.float32(out)


def aggregate(raws, target):
    per = [scale_cam_image(np.maximum(r, 0), target)[:, None] for r in raws]
    per = np.maximum(np.concatenate(per, axis=1), 0)
    return scale_cam_image(np.mean(per, axis=1))


# ---------------------------------------------------------------------------
# OpenCV COLORMAP_JET


def jet_table():
    """OpenCV's Jet: anchors = GNU Octave jet(256) as float32, interpolated
    (interp1) at linspace(0, 1, 256), convertTo(CV_8U, 255). Returns RGB."""
    x = np.arange(256, dtype=np.float64) / 255.0
    r = np.clip(np.minimum(4 * x - 1.5, -4 * x + 4.5), 0, 1)
    g = np.clip(np.minimum(4 * x - 0.5, -4 * x + 3.5), 0, 1)
    b = np.clip(np.minimum(4 * x + 0.5, -4 * x + 2.5), 0, 1)
    anchors = [np.float32(r), np.float32(g), np.float32(b)]
    # a few of the literals of OpenCV's table, as float32
    assert anchors[0][96] == np.float32(0.00588235294117645)
    assert anchors[0][224] == np.float32(0.9862745098039216)
    assert anchors[1][32] == np.float32(0.001960784313725483)
    assert anchors[1][223] == np.float32(0.001960784313725483)
    assert anchors[2][1] == np.float32(0.5156862745098039)
    assert anchors[2][159] == np.float32(0.00588235294117645)
    # linspace(0, 1, 256) as OpenCV: x0 + i * step in float
    step = np.float32(1.0) / np.float32(255)
    X = [np.float32(0) + np.float32(i) * step for i in range(256)]
    out = np.zeros((256, 3), dtype=np.int64)
    for ch, Y in enumerate(anchors):
        for i in range(256):
            xi = X[i]
            low, high = 0, 255
            if xi < X[low]:
                high = 1
            if xi > X[high]:
                low = high - 1
            while high - low > 1:
                c = low + ((high - low) >> 1)
                if xi > X[c]:
                    low = c
                else:
                    high = c
            yi = np.float32(Y[low] + np.float32(np.float32(xi - X[low]) * np.float32(Y[high] - Y[low]))
                            / np.float32(X[high] - X[low]))
            v = np.rint(np.float32(yi * np.float32(255)))
            out[i, ch] = int(min(max(v, 0), 255))
    assert tuple(out[0]) == (0, 0, 128), out[0]
    assert tuple(out[255]) == (128, 0, 0), out[255]
    return out


def show_cam_on_image(img, mask, lut):
    heat = lut[np.uint8(np.float32(255) * mask)]          # RGB (use_rgb=True)
    heat = np.float32(heat) / 255
    cam = (1 - 0.5) * heat + 0.5 * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


def deprocess_image(img, stats64=False):
    if stats64:
        mean = np.float32(img.astype(np.float64).mean())
        std = np.float32(img.astype(np.float64).std())
    else:
        mean, std = np.mean(img), np.std(img)
    img = img - mean
    img = img / np.float32(std + 1e-5)
    img = img * np.float32(0.1)
    img = img + np.float32(0.5)
    img = np.clip(img, 0, 1)
    return np.uint8(img * 255)


# ---------------------------------------------------------------------------
# the model fixture

MODEL_SEED, MODEL_CLASSES = 1001, 10
N, H, W, IN_SEED = 2, 64, 80, 7101


class Capture:
    """Forward hooks keeping the outputs of some modules (with their grads)."""

    def __init__(self, model, names):
        self.out = {}
        self.handles = []
        mods = dict(model.named_modules())
        for nm in names:
            self.handles.append(mods[nm].register_forward_hook(self._hook(nm)))

    def _hook(self, name):
        def hook(_m, _i, o):
            if o.requires_grad:
                o.retain_grad()
            self.out[name] = o
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def top1(logits):
    return logits.argmax(dim=1)


def target_score(logits, classes, kind):
    idx = torch.arange(logits.shape[0])
    if kind == "prob":
        return torch.softmax(logits, dim=1)[idx, classes]
    return logits[idx, classes]


def grad_cam_case(model, x, method, layers, classes=None, kind="logit"):
    cap = Capture(model, layers)
    xt = torch.from_numpy(x).double().requires_grad_(True)
    logits = model(xt)
    cls = top1(logits) if classes is None else torch.tensor(classes)
    target_score(logits, cls, kind).sum().backward()
    cap.remove()
    raws = []
    for nm in layers:
        A = cap.out[nm].detach().numpy()
        G = cap.out[nm].grad.numpy()
        raws.append(cam_raw(method, A, G))
    return raws, cls.numpy()


def score_cam_case(model, x, layer, topk, classes=None, kind="logit"):
    cap = Capture(model, [layer])
    xt = torch.from_numpy(x).double()
    with torch.no_grad():
        logits = model(xt)
    cap.remove()
    cls = top1(logits) if classes is None else torch.tensor(classes)
    A = cap.out[layer].detach()
    n, c, h, w = A.shape
    up = nn.UpsamplingBilinear2d(size=x.shape[-2:])(A)
    mins = up.view(n, c, -1).min(dim=-1)[0][:, :, None, None]
    maxs = up.view(n, c, -1).max(dim=-1)[0][:, :, None, None]
    rng = maxs - mins
    masks = torch.where(rng > 0, (up - mins) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                        torch.zeros_like(up))
    raws = []
    for b in range(n):
        means = A[b].mean(dim=(1, 2)).numpy()
        order = sorted(range(c), key=lambda k: (-means[k], k))
        sel = order[:topk] if 0 < topk < c else list(range(c))
        batch = xt[b][None] * masks[b, sel][:, None]
        with torch.no_grad():
            out = model(batch)
        scores = target_score(out, torch.full((len(sel),), int(cls[b])), kind)
        wts = torch.softmax(scores, dim=0).numpy()
        cam = (wts[:, None, None] * A[b, sel].numpy()).sum(axis=0)
        raws.append(np.maximum(cam, 0))
    return [np.stack(raws)], cls.numpy()


def ablation_case(model, x, kind="logit"):
    """Ablation-CAM at model.13 (channels set to 0), rest = model.14 + fc."""
    xt = torch.from_numpy(x).double()
    with torch.no_grad():
        A = model.model[:14](xt)
        logits = model.fc(model.model[14](A).view(-1, 1024))
    cls = top1(logits)
    y = target_score(logits, cls, kind).numpy()
    n, c = A.shape[:2]
    raws = []
    for b in range(n):
        abl = A[b][None].repeat(c, 1, 1, 1)
        abl[torch.arange(c), torch.arange(c)] = 0
        with torch.no_grad():
            out = model.fc(model.model[14](abl).view(-1, 1024))
        yk = target_score(out, torch.full((c,), int(cls[b])), kind).numpy()
        wts = (y[b] - yk) / y[b]
        raws.append(np.maximum((wts[:, None, None] * A[b].numpy()).sum(axis=0), 0))
    return [np.stack(raws)], cls.numpy()


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype) * (g > 0).to(g.dtype)


class GuidedReLUModule(nn.Module):
    def forward(self, x):
        return GuidedReLU.apply(x)


def input_grad(model, x, cls, kind="logit"):
    xt = torch.from_numpy(np.ascontiguousarray(x)).double().requires_grad_(True)
    logits = model(xt)
    target_score(logits, torch.as_tensor(cls), kind).sum().backward()
    return xt.grad.numpy()


def splitmix64_normals(seed, count):
    """Box-Muller on splitmix64, as lib/cam/attribution.c: pairs (cos, sin)."""
    mask = (1 << 64) - 1
    state = seed & mask
    out = np.empty(count, dtype=np.float64)
    i = 0
    while i < count:
        vals = []
        for _ in range(2):
            state = (state + 0x9E3779B97F4A7C15) & mask
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            vals.append(z ^ (z >> 31))
        u1 = ((vals[0] >> 11) + 1) * 2.0 ** -53
        u2 = (vals[1] >> 11) * 2.0 ** -53
        rad = np.sqrt(-2.0 * np.log(u1))
        out[i] = rad * np.cos(2 * np.pi * u2)
        if i + 1 < count:
            out[i + 1] = rad * np.sin(2 * np.pi * u2)
        i += 2
    return out


SAMPLES = 1024


def sample(arr, k=SAMPLES):
    """k values of a large array at kdcgen.sample_indices (the C test uses
    kdc_test_sample_index)."""
    flat = np.asarray(arr, dtype=np.float32).ravel()
    return flat[kdcgen.sample_indices(flat.size, k)]


def sample_grad(*args):
    return sample(input_grad(*args))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    rs = np.random.RandomState(20240611)
    t = {}

    # ---- maps
    cases = {}
    A = np.maximum(rs.randn(2, 7, 5, 6), 0) + 0.05 * rs.rand(2, 7, 5, 6)
    G = 0.1 * rs.randn(2, 7, 5, 6)
    cases["a"] = (A, G)
    A = rs.randn(2, 7, 5, 6)
    A[rs.rand(*A.shape) < 0.3] = 0
    G = rs.randn(2, 7, 5, 6) * 0.2 - 0.05
    G[rs.rand(*G.shape) < 0.3] = 0
    cases["b"] = (A, G)
    cases["z"] = (np.zeros((2, 7, 5, 6)), np.zeros((2, 7, 5, 6)))
    A = np.maximum(rs.randn(2, 40, 3, 4), 0) + 0.01
    G = 0.1 * rs.randn(2, 40, 3, 4)
    cases["wide"] = (A, G)
    # larger principal-component problems (70 channels < 72 pixels: channel
    # Gram matrix; 90 channels > 56 pixels: pixel Gram matrix),
    # activations of low effective rank plus noise, as real layers are
    base = rs.rand(1, 5, 8, 9)
    A = np.maximum(np.einsum("kr,nrhw->nkhw", rs.rand(70, 5), base) + 0.1 * rs.randn(1, 70, 8, 9), 0)
    cases["big"] = (A, 0.05 * rs.randn(1, 70, 8, 9))
    base = rs.rand(1, 4, 7, 8)
    A = np.maximum(np.einsum("kr,nrhw->nkhw", rs.randn(90, 4), base) + 0.2 * rs.randn(1, 90, 7, 8), 0)
    cases["bigwide"] = (A, 0.05 * rs.randn(1, 90, 7, 8))
    for name, (A, G) in cases.items():
        A = A.astype(np.float32)
        G = G.astype(np.float32)
        t[name + "/A"] = A
        t[name + "/G"] = G
        for m in GRAD_METHODS:
            t["%s/raw/%s" % (name, m)] = cam_raw(m, A, G).astype(np.float32)
        for r in ("mean", "max", "l2", "pca"):
            t["%s/feat/%s" % (name, r)] = feature(r, A).astype(np.float32)

    src = (rs.rand(2, 5, 6) * 3).astype(np.float32)
    src[1, 2, 3] = 0
    t["resize/src"] = src
    t["resize/out"] = scale_cam_image(src, (23, 31))
    t["resize/plain"] = np.stack([cv2_resize(p, 23, 31) for p in src])
    t["resize/down"] = np.stack([cv2_resize(p, 3, 4) for p in src])
    errs = [check_against_torch(p, 23, 31) for p in src]
    errs += [check_against_torch(p, 3, 4) for p in src]
    errs += [check_against_torch(p, 5, 6) for p in src]
    raw0 = np.maximum(rs.randn(2, 5, 6), 0).astype(np.float32)
    raw1 = np.maximum(rs.randn(2, 3, 4), 0).astype(np.float32)
    t["chain/raw0"], t["chain/raw1"] = raw0, raw1
    t["chain/map"] = aggregate([raw0, raw1], (23, 31))
    t["chain/map1"] = aggregate([raw0], (23, 31))
    up_src = rs.randn(2, 3, 4).astype(np.float32)
    t["upac/src"] = up_src
    t["upac/out"] = nn.UpsamplingBilinear2d(size=(17, 13))(
        torch.from_numpy(up_src)[None])[0].numpy()
    kdcgen.write_safetensors(os.path.join(OUT, "maps.safetensors"), t,
                             {"resize_vs_torch_max_abs": "%.3e" % max(errs)})

    # ---- render
    r = {}
    lut = jet_table()
    r["jet"] = lut.astype(np.int32)
    img = rs.randint(0, 256, size=(5, 7, 3)).astype(np.uint8)
    m = rs.rand(5, 7).astype(np.float32)
    m[0, 0], m[0, 1], m[1, 0] = 0.0, 1.0, np.float32(0.5)
    r["overlay/img"] = img.astype(np.int32)
    r["overlay/map"] = m
    r["overlay/out"] = show_cam_on_image(np.float32(img) / 255, m, lut).astype(np.int32)
    grad = (rs.randn(3, 6, 5) * 0.01).astype(np.float32)
    grad[0, 0, 0] = 0.2  # one outlier: clipping at 1
    grad[1, 0, 0] = -0.2
    r["grad/in"] = grad
    hwc = np.ascontiguousarray(grad.transpose(1, 2, 0))
    r["grad/out"] = deprocess_image(hwc).astype(np.int32)
    r["grad/out64"] = deprocess_image(hwc, stats64=True).astype(np.int32)
    kdcgen.write_safetensors(os.path.join(OUT, "render.safetensors"), r)

    # ---- model
    model, _gen = gen_fixtures.build("mobilenetv1", MODEL_SEED, MODEL_CLASSES)
    model = model.double()
    x = kdcgen.fill("input", N * 3 * H * W, IN_SEED, 0.0, 2.0).reshape(N, 3, H, W)
    x = x.astype(np.float32)
    mt = {"input/val": sample(x, 16)}
    cases = [
        ("gradcam2", "gradcam", ["model.13", "model.11"], None, "logit"),
        ("gradcampp_prob", "gradcam++", ["model.11"], [3, 7], "prob"),
        ("hirescam", "hirescam", ["model.11"], None, "logit"),
        ("xgradcam", "xgradcam", ["model.12"], None, "logit"),
        ("layercam", "layercam", ["model.10"], None, "logit"),
        ("eigencam", "eigencam", ["model.11"], None, "logit"),
        ("eigengradcam", "eigengradcam", ["model.13"], None, "logit"),
    ]
    for name, method, layers, classes, kind in cases:
        raws, cls = grad_cam_case(model, x, method, layers, classes, kind)
        for i, rw in enumerate(raws):
            mt["%s/raw%d" % (name, i)] = rw.astype(np.float32)
        mt[name + "/map"] = sample(aggregate(raws, (H, W)))
        mt[name + "/classes"] = cls.astype(np.int64)
    raws, cls = score_cam_case(model, x, "model.13", 6)
    mt["scorecam/raw0"] = raws[0].astype(np.float32)
    mt["scorecam/map"] = sample(aggregate(raws, (H, W)))
    mt["scorecam/classes"] = cls.astype(np.int64)
    raws, cls = ablation_case(model, x)
    mt["ablationcam/raw0"] = raws[0].astype(np.float32)
    mt["ablationcam/map"] = sample(aggregate(raws, (H, W)))
    mt["ablationcam/classes"] = cls.astype(np.int64)

    # attributions (top-1 logit)
    with torch.no_grad():
        cls = top1(model(torch.from_numpy(x).double())).numpy()
    mt["attr/saliency"] = sample_grad(model, x, cls).astype(np.float32)
    guided = gen_fixtures.build("mobilenetv1", MODEL_SEED, MODEL_CLASSES)[0].double()
    for i in (range(14)):
        seq = guided.model[i]
        for j, sub in enumerate(seq):
            if isinstance(sub, nn.ReLU):
                seq[j] = GuidedReLUModule()
    mt["attr/guided"] = sample_grad(guided, x, cls).astype(np.float32)
    S, noise, seed = 5, 0.15, 42
    z = splitmix64_normals(seed, S * x.size).reshape(S, *x.shape)
    acc = np.zeros(x.shape)
    for s in range(S):
        sig = noise * (x.reshape(N, -1).max(axis=1).astype(np.float64)
                       - x.reshape(N, -1).min(axis=1))
        xs = (x + (sig[:, None, None, None] * z[s]).astype(np.float32)).astype(np.float32)
        acc += input_grad(model, xs, cls)
    mt["attr/smoothgrad"] = sample((acc / S).astype(np.float32))
    S = 8
    acc = np.zeros(x.shape)
    for k in range(1, S + 1):
        acc += input_grad(model, (np.float32(k / S) * x).astype(np.float32), cls)
    mt["attr/integrated"] = sample((x * acc / S).astype(np.float32))
    kdcgen.write_safetensors(os.path.join(OUT, "model.safetensors"), mt, {
        "scheme": "mobilenetv1", "seed": str(MODEL_SEED), "num_classes": str(MODEL_CLASSES),
        "input_seed": str(IN_SEED), "n": str(N), "h": str(H), "w": str(W),
        "smoothgrad": "samples 5 noise 0.15 seed 42", "integrated": "samples 8",
        "scorecam": "model.13 topk 6 batch 4", "reference": "torch %s float64" % torch.__version__})
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %s (%d bytes); cv2-vs-torch resize max abs %.2e; classes %s"
          % (OUT, total, max(errs), cls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
