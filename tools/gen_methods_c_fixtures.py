#!/usr/bin/env python3
"""gen_methods_c_fixtures.py - PyTorch/NumPy references of the issue-19
methods of part C (KPCA-CAM, Finer-CAM, Smooth Grad-CAM++, Shapley-CAM).

Run from the repository root with Debian's PyTorch (torch 1.13):

    /usr/bin/python3 tools/gen_methods_c_fixtures.py [--shapley-prob-only] [model ...]

Writes tests/fixtures/methods_c/<model>.safetensors for resnet50 (1000
classes) and mobilenetv1 (10 classes): the generated networks, weights and
input of tools/gen_methods_fixtures.py (N = 2, 49 x 67), and raw maps (after
the final ReLU) at the two CAM layers [second-last, last stage], computed in
float64 (model.double()) and, for the noise figure in the metadata, again
in float32. A separate script rather than more entries in
gen_methods_fixtures.py so that part A's references need not be recomputed
(its occlusion references take minutes); it imports that script's helpers.

  kpcacam/<kernel>/<layer>/raw   pytorch-grad-cam kpca_cam.py /
        get_2d_projection_kernel with scikit-learn's KernelPCA(n_components=1)
        written out in NumPy (scikit-learn is not installed here): X = A^T
        centred per channel, K = kernel(X, X) (sigmoid tanh(gamma <a,b> + 1),
        rbf exp(-gamma |a-b|^2), gamma = 1 / C), KernelCenterer, the top
        eigenpair by numpy.linalg.eigh (the dense solver scikit-learn uses
        for hw <= 200; every layer here has hw <= 200), proj = v sqrt(lambda),
        svd_flip's sign (largest |v| positive), raw = max(proj, 0).
  finercam/<case>/<layer>/raw    pytorch-grad-cam finer_cam.py with
        GradCAM as base, alpha 1, comparison_categories [1, 2, 3]: sorted =
        argsort(|z - z_t|) (stable), target = FinerWeightedTarget(sorted[0],
        sorted[1..3], 1) evaluated with torch's softmax (the gradient flows
        through it, as in the reference); Grad-CAM of that target. case
        "top1": target_idx None (z_t = max z); case "given": target_idx = the
        class given (meta finer_given), per image.
  smoothgradcampp/<layer>/raw   torch-cam SmoothGradCAMpp weights
        (torchcam/methods/gradient.py): S = 4 noisy inputs x + 0.3 z, z from
        libkdcam's splitmix64 Box-Muller seeded SGPP_SEED ^ ((b + 1) *
        0xD1B54A32D192ED03), drawn sample by sample in C x H x W order; D2, D3
        the sample means of g^2, g^3; alpha = D2 / (2 D2 + sum_hw(D3 A) +
        1e-8) with the clean A; w = sum_hw(alpha relu(g_last)); raw =
        relu(sum_k w_k A_k) with the clean A (lib/cam/smoothgradpp.c).
  shapleycam/<layer>/raw        pytorch-grad-cam shapley_cam.py: g = dy/dA
        with create_graph, hvp = autograd.grad(g, A, grad_outputs=A,
        allow_unused=True) (0 when unused), w = mean_hw(g - 0.5 hvp), raw =
        relu(sum_k w_k A_k). The metadata records max |hvp| for the logit
        target (0: every op is piecewise linear) and, for contrast, the
        relative size of hvp for a softmax-probability target.
  <model>_shapley_prob.safetensors (a file of its own, so that the files
        above need not be regenerated; --shapley-prob-only writes only it):
        shapleycam_prob/<layer>/raw  Shapley-CAM as above for torch's softmax
        probability of the top-1 class (ClassifierOutputSoftmaxTarget), hvp
        by the double backward; /jvp the tangent J A at the logits (N x K)
        by the double-backward trick (grad in y of <vjp(y), A>); /hvp the
        Hessian-vector product (checked here to equal J^T H_z (J A),
        H_z = p_c [(e_c - p)(e_c - p)^T - (diag p - p p^T)]).
  dff/<layer>/maps, dff/<layer>/concepts   pytorch-grad-cam
        deep_feature_factorization.py dff(activations, DFF_K) with
        scikit-learn's NMF(n_components, init='random', random_state=0)
        written out in NumPy (lib/cam/dff.c describes the steps): the
        random init from numpy.random.RandomState(0).standard_normal (H
        first, then W), then coordinate descent as _fit_coordinate_descent /
        _update_cdnmf_fast (tol 1e-4, max_iter 200). maps: N x k x h x w
        (the explanations before scale_cam_image), concepts: C x k. Meta
        dff_iterations: the iterations run; dff_ratio_*: the violation
        ratios of the last two iterations (how far the stop is from tol).
"""

import copy
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdcgen  # noqa: E402
import gen_fixtures as gf  # noqa: E402
import gen_grad_fixtures as gg  # noqa: E402
import gen_cam_fixtures as gc  # noqa: E402
import gen_methods_fixtures as gm  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "methods_c")
N, H, W = gm.N, gm.H, gm.W
SGPP_SAMPLES, SGPP_STD, SGPP_SEED = 4, 0.3, 4321
FINER_ALPHA, FINER_COMP = 1.0, (1, 2, 3)


def relu_sum(w, A):
    return np.maximum(np.einsum("nk,nkhw->nhw", w, A), 0.0)


# ---- KPCA-CAM ---------------------------------------------------------------

def kpca_one(A, kernel):
    c = A.shape[0]
    X = A.reshape(c, -1).T.astype(np.float64)
    X = X - X.mean(axis=0)
    gamma = 1.0 / c
    if kernel == "sigmoid":
        K = np.tanh(gamma * (X @ X.T) + 1.0)
    else:
        sq = (X * X).sum(axis=1)
        K = np.exp(-gamma * np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0))
    col = K.mean(axis=0)
    row = K.mean(axis=1)
    Kc = K - col[None, :] - row[:, None] + K.mean()
    lam, vec = np.linalg.eigh(Kc)
    v = vec[:, -1]
    l1 = lam[-1]
    gap = (lam[-1] - lam[-2]) / abs(lam[-1])
    v = v * np.sign(v[np.argmax(np.abs(v))])
    proj = v * np.sqrt(max(l1, 0.0))
    return np.maximum(proj, 0.0).reshape(A.shape[1:]), gap


def kpca(A, kernel):
    outs, gaps = zip(*(kpca_one(a, kernel) for a in A))
    return np.stack(outs), min(gaps)


# ---- Finer-CAM ---------------------------------------------------------------

def finer_targets(logits, given):
    out = []
    for b in range(logits.shape[0]):
        z = logits[b]
        zt = z.max() if given is None else z[given[b]]
        order = np.argsort(np.abs(z - zt), kind="stable")
        if given is not None:
            assert order[0] == given[b]
        out.append((int(order[0]), [int(order[i]) for i in FINER_COMP]))
    return out


def finer(model, x, layers, given, dtype):
    lg = gm.logits_of(model, x, dtype)
    tg = finer_targets(lg, given)

    def target(logits, _store):
        tot = 0
        for b, (main, comp) in enumerate(tg):
            out = logits[b]
            p = torch.softmax(out, dim=-1)
            wn = out[main]
            num = sum(p[j] * (wn - FINER_ALPHA * out[j]) for j in comp)
            den = sum(p[j] for j in comp)
            tot = tot + num / (den + 1e-9)
        return tot
    _lg, acts, gr = gg.grads(model, x, layers, target, dtype)
    raws = {L: np.maximum(gg.gradcam(acts[L].astype(np.float64), gr[L].astype(np.float64)), 0)
            for L in layers}
    return raws, [m for m, _c in tg]


# ---- Smooth Grad-CAM++ -------------------------------------------------------

def sgpp_noise(n, c, h, w):
    z = np.empty((SGPP_SAMPLES, n, c, h, w))
    for b in range(n):
        seed = (SGPP_SEED ^ ((b + 1) * gm.GAUSS_MUL)) & ((1 << 64) - 1)
        z[:, b] = gc.splitmix64_normals(seed, SGPP_SAMPLES * c * h * w).reshape(
            SGPP_SAMPLES, c, h, w)
    return z


def smoothgradpp(model, x, layers, classes, noise, dtype):
    _lg, a0, _g = gg.grads(model, x, layers, gg.logit_target(classes), dtype)
    d2 = {L: 0.0 for L in layers}
    d3 = {L: 0.0 for L in layers}
    last = {}
    for s in range(SGPP_SAMPLES):
        xs = x.astype(np.float64) + SGPP_STD * noise[s]
        if dtype == torch.float32:
            xs = xs.astype(np.float32)
        _lg, _a, gr = gg.grads(model, xs, layers, gg.logit_target(classes), dtype)
        for L in layers:
            g = gr[L].astype(np.float64)
            d2[L] = d2[L] + g ** 2
            d3[L] = d3[L] + g ** 3
            last[L] = g
    out = {}
    for L in layers:
        A = a0[L].astype(np.float64)
        D2, D3 = d2[L] / SGPP_SAMPLES, d3[L] / SGPP_SAMPLES
        alpha = D2 / (2 * D2 + (D3 * A).sum(axis=(2, 3), keepdims=True) + 1e-8)
        w = (alpha * np.maximum(last[L], 0)).sum(axis=(2, 3))
        out[L] = relu_sum(w, A)
    return out


# ---- Shapley-CAM -------------------------------------------------------------

def shapley(model, x, layer, classes, dtype, prob=False):
    store = {}
    h = gg.module_of(model, layer).register_forward_hook(
        lambda _m, _i, out: store.__setitem__("a", out))
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(dtype).requires_grad_(True)
    logits = model(xt)
    h.remove()
    A = store["a"]
    if prob:
        sel = torch.softmax(logits, dim=1)
    else:
        sel = logits
    loss = sel[torch.arange(logits.shape[0]), torch.as_tensor(classes)].sum()
    g = torch.autograd.grad(loss, A, retain_graph=True, create_graph=True)[0]
    hvp = None
    if g.requires_grad:
        hvp = torch.autograd.grad(g, A, grad_outputs=A, allow_unused=True)[0]
    g = g.detach().double().numpy()
    hv = np.zeros_like(g) if hvp is None else hvp.detach().double().numpy()
    An = A.detach().double().numpy()
    w = (g - 0.5 * hv).mean(axis=(2, 3))
    return relu_sum(w, An), float(np.abs(hv).max()), float(np.linalg.norm(hv) / np.linalg.norm(g))


def shapley_prob(model, x, layer, classes, dtype):
    """Shapley-CAM of the softmax target (ClassifierOutputSoftmaxTarget)
    exactly as the reference takes it (hvp by torch's double backward), and
    the two pieces libkdcam computes it from, by torch alone: jvp = J A, the
    Jacobian of the logits in A applied to A (the double-backward trick: the
    vector-Jacobian product with a dummy cotangent y is linear in y, so its
    gradient in y along A is J A), and J^T H_z (J A), which must equal hvp."""
    store = {}
    h = gg.module_of(model, layer).register_forward_hook(
        lambda _m, _i, out: store.__setitem__("a", out))
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(dtype).requires_grad_(True)
    logits = model(xt)
    h.remove()
    A = store["a"]
    idx = torch.arange(logits.shape[0])
    cls = torch.as_tensor(classes)
    loss = torch.softmax(logits, dim=1)[idx, cls].sum()
    g = torch.autograd.grad(loss, A, retain_graph=True, create_graph=True)[0]
    hvp = torch.autograd.grad(g, A, grad_outputs=A, retain_graph=True)[0]
    y = torch.zeros_like(logits, requires_grad=True)
    vjp = torch.autograd.grad(logits, A, grad_outputs=y, retain_graph=True, create_graph=True)[0]
    jvp = torch.autograd.grad(vjp, y, grad_outputs=A.detach())[0].detach()
    p = torch.softmax(logits.detach(), dim=1)
    hz = []
    for b in range(logits.shape[0]):
        e = torch.zeros_like(p[b])
        e[classes[b]] = 1
        d = e - p[b]
        pc = p[b, classes[b]]
        hz.append(pc * (torch.outer(d, d) - (torch.diag(p[b]) - torch.outer(p[b], p[b]))))
    u = torch.stack([hz[b] @ jvp[b] for b in range(logits.shape[0])])
    jtu = torch.autograd.grad(logits, A, grad_outputs=u)[0]
    gn = g.detach().double().numpy()
    hv = hvp.detach().double().numpy()
    An = A.detach().double().numpy()
    w = (gn - 0.5 * hv).mean(axis=(2, 3))
    chk = gf.rel_l2(jtu.detach().double().numpy(), hv)
    return relu_sum(w, An), jvp.double().numpy(), hv, chk, float(
        np.linalg.norm(hv) / np.linalg.norm(gn))


def write_shapley_prob(name, scheme, wseed, classes):
    """tests/fixtures/methods_c/<model>_shapley_prob.safetensors: Shapley-CAM
    of the top-1 softmax probability at both CAM layers (raw map, the
    tangent J A at the logits, the Hessian-vector product), float64, with
    float32's distance for the noise figure. A file of its own, so that the
    part-C fixtures stay byte for byte as they were."""
    t0 = time.time()
    m32, gen = gf.build(scheme, wseed, classes)
    m64 = copy.deepcopy(m32).double()
    layers = gg.arch_info(scheme, m64)["cam_layers"]
    x = gf.make_input(N, H, W, gm.INPUT_SEED)
    l64 = gm.logits_of(m64, x, torch.float64)
    top1 = [int(v) for v in np.argmax(l64, axis=1)]
    tensors, meta = {}, {}
    for L in layers:
        r64, jvp, hv, chk, rel = shapley_prob(m64, x, L, top1, torch.float64)
        r32, j32, h32, _c, _r = shapley_prob(m32, x, L, top1, torch.float32)
        assert chk < 1e-10, "J^T H_z J A differs from the double backward: %g" % chk
        gg.put(tensors, "shapleycam_prob/%s/raw" % L, r64)
        gg.put(tensors, "shapleycam_prob/%s/jvp" % L, jvp)
        gg.put(tensors, "shapleycam_prob/%s/hvp" % L, hv)
        meta["jtu_vs_hvp_rel_l2_%s" % L] = "%.3e" % chk
        meta["hvp_over_grad_rel_%s" % L] = "%.3e" % rel
        meta["f32_vs_f64_raw_rel_l2_%s" % L] = "%.3e" % gf.rel_l2(r32, r64)
        meta["f32_vs_f64_jvp_rel_l2_%s" % L] = "%.3e" % gf.rel_l2(j32, jvp)
        meta["f32_vs_f64_hvp_rel_l2_%s" % L] = "%.3e" % gf.rel_l2(h32, hv)
    tensors["logits"] = l64.astype(np.float32)
    tensors["top1"] = np.array(top1, dtype=np.int64)
    weight_keys = [k for k, _s in kdcgen.tensor_specs(scheme, classes)]
    for k in [weight_keys[0], weight_keys[-2], weight_keys[-1]]:
        tensors["weights:%s/val" % k] = gf.sample_of(gen[k])
    meta.update({
        "arch": "mobilenetv1" if scheme.startswith("mobilenetv1") else scheme,
        "scheme": scheme, "seed": str(wseed), "num_classes": str(classes),
        "input_name": "input", "input_seed": str(gm.INPUT_SEED),
        "input_c": repr(gf.INPUT_C), "input_a": repr(gf.INPUT_A),
        "n": str(N), "h": str(H), "w": str(W),
        "reference": "torch %s float64" % torch.__version__,
        "top1": ",".join(str(c) for c in top1), "layers": ",".join(layers),
    })
    path = os.path.join(OUT_DIR, "%s_shapley_prob.safetensors" % name)
    kdcgen.write_safetensors(path, tensors, meta)
    print("%-12s shapley prob: %s  %d bytes  %.1fs" % (
        name, " ".join("%s=%s" % kv for kv in sorted(meta.items()) if "rel" in kv[0]),
        os.path.getsize(path), time.time() - t0), flush=True)


# ---- Deep Feature Factorization --------------------------------------------

DFF_K, DFF_TOL, DFF_MAXIT = 5, 1e-4, 200


def cd_sweep(X, W, Ht):
    """One _update_cdnmf_fast sweep (rows of W are independent for a fixed
    component, so each component's update is vectorised over the rows)."""
    G = Ht.T @ Ht
    XHt = X @ Ht
    viol = 0.0
    for t in range(W.shape[1]):
        grad = W @ G[t] - XHt[:, t]
        pg = np.where(W[:, t] == 0, np.minimum(grad, 0), grad)
        viol += np.abs(pg).sum()
        if G[t, t] != 0:
            W[:, t] = np.maximum(W[:, t] - grad / G[t, t], 0)
    return viol


def dff(A, k):
    n, c, h, w = A.shape
    V = A.transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float64)
    V[np.isnan(V)] = 0
    off = V.min(axis=-1)
    V = V - off[:, None]
    avg = np.sqrt(V.mean() / k)
    rng = np.random.RandomState(0)
    Hm = np.abs(avg * rng.standard_normal(size=(k, V.shape[1])))
    Wm = np.abs(avg * rng.standard_normal(size=(c, k)))
    Ht = np.ascontiguousarray(Hm.T)
    ratios = []
    for it in range(1, DFF_MAXIT + 1):
        v = cd_sweep(V, Wm, Ht) + cd_sweep(V.T, Ht, Wm)
        if it == 1:
            v0 = v
        ratios.append(v / v0 if v0 else 0.0)
        if v0 == 0 or v / v0 <= DFF_TOL:
            break
    maps = Ht.T.reshape(k, n, h, w).transpose(1, 0, 2, 3)
    return Wm + off[:, None], maps, it, ratios[-2:]


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    args = sys.argv[1:]
    prob_only = "--shapley-prob-only" in args
    wanted = set(a for a in args if not a.startswith("--"))
    for spec in gm.MODELS:
        if not wanted or spec[0] in wanted:
            if not prob_only:
                write_fixture(*spec)
            write_shapley_prob(*spec)


def write_fixture(name, scheme, wseed, classes):
    t0 = time.time()
    m32, gen = gf.build(scheme, wseed, classes)
    m64 = copy.deepcopy(m32).double()
    info = gg.arch_info(scheme, m64)
    layers = info["cam_layers"]
    x = gf.make_input(N, H, W, gm.INPUT_SEED)
    l64 = gm.logits_of(m64, x, torch.float64)
    top1 = [int(v) for v in np.argmax(l64, axis=1)]
    # the given class for Finer-CAM: each image's third-ranked class
    given = [int(np.argsort(-l64[b], kind="stable")[2]) for b in range(N)]
    tensors, noise, meta = {}, {}, {}

    _lg, a64, _g = gg.grads(m64, x, layers, gg.logit_target(top1), torch.float64)
    _lg, a32, _g = gg.grads(m32, x, layers, gg.logit_target(top1), torch.float32)
    gap = np.inf
    for kern in ("sigmoid", "rbf"):
        for L in layers:
            r64, g64 = kpca(a64[L].astype(np.float64), kern)
            r32, _ = kpca(a32[L].astype(np.float64), kern)
            gap = min(gap, g64)
            gg.put(tensors, "kpcacam/%s/%s/raw" % (kern, L), r64)
            noise["kpcacam_%s_%s" % (kern, L)] = gf.rel_l2(r32, r64)
    meta["kpca_eig_gap_rel_min"] = "%.3e" % gap
    print("  %s: kpca (%.1fs)" % (name, time.time() - t0), flush=True)

    for case, gv in (("top1", None), ("given", given)):
        f64, mains = finer(m64, x, layers, gv, torch.float64)
        f32, _ = finer(m32, x, layers, gv, torch.float32)
        assert mains == (top1 if gv is None else gv)
        for L in layers:
            gg.put(tensors, "finercam/%s/%s/raw" % (case, L), f64[L])
            noise["finercam_%s_%s" % (case, L)] = gf.rel_l2(f32[L], f64[L])
    meta["finer_given"] = ",".join(str(c) for c in given)
    print("  %s: finer (%.1fs)" % (name, time.time() - t0), flush=True)

    z = sgpp_noise(N, 3, H, W)
    s64 = smoothgradpp(m64, x, layers, top1, z, torch.float64)
    s32 = smoothgradpp(m32, x, layers, top1, z, torch.float32)
    for L in layers:
        gg.put(tensors, "smoothgradcampp/%s/raw" % L, s64[L])
        noise["smoothgradcampp_%s" % L] = gf.rel_l2(s32[L], s64[L])
    print("  %s: smooth grad-cam++ (%.1fs)" % (name, time.time() - t0), flush=True)

    hv_max = 0.0
    for L in layers:
        r64, hm, _ = shapley(m64, x, L, top1, torch.float64)
        r32, _, _ = shapley(m32, x, L, top1, torch.float32)
        _r, _hm, prel = shapley(m64, x, L, top1, torch.float64, prob=True)
        hv_max = max(hv_max, hm)
        meta["shapley_prob_hvp_rel_%s" % L] = "%.3e" % prel
        gg.put(tensors, "shapleycam/%s/raw" % L, r64)
        noise["shapleycam_%s" % L] = gf.rel_l2(r32, r64)
    meta["shapley_logit_hvp_maxabs"] = "%.3e" % hv_max

    last = layers[1]
    c64, d64, dit, drat = dff(a64[last].astype(np.float64), DFF_K)
    c32, d32, dit32, _ = dff(a32[last].astype(np.float64), DFF_K)
    gg.put(tensors, "dff/%s/maps" % last, d64)
    gg.put(tensors, "dff/%s/concepts" % last, c64)
    noise["dff_maps"] = gf.rel_l2(d32, d64)
    noise["dff_concepts"] = gf.rel_l2(c32, c64)
    meta.update({"dff_layer": last, "dff_components": str(DFF_K),
                 "dff_iterations": str(dit), "dff_iterations_f32_input": str(dit32),
                 "dff_ratio_last2": ",".join("%.6e" % r for r in drat)})
    print("  %s: dff, %d iterations (%.1fs)" % (name, dit, time.time() - t0), flush=True)

    tensors["logits"] = l64.astype(np.float32)
    tensors["top1"] = np.array(top1, dtype=np.int64)
    weight_keys = [k for k, _s in kdcgen.tensor_specs(scheme, classes)]
    for k in [weight_keys[0], weight_keys[-2], weight_keys[-1]]:
        tensors["weights:%s/val" % k] = gf.sample_of(gen[k])
    meta.update({
        "arch": "mobilenetv1" if scheme.startswith("mobilenetv1") else scheme,
        "scheme": scheme, "seed": str(wseed), "num_classes": str(classes),
        "input_name": "input", "input_seed": str(gm.INPUT_SEED),
        "input_c": repr(gf.INPUT_C), "input_a": repr(gf.INPUT_A),
        "n": str(N), "h": str(H), "w": str(W),
        "reference": "torch %s float64" % torch.__version__,
        "top1": ",".join(str(c) for c in top1), "layers": ",".join(layers),
        "sgpp_samples": str(SGPP_SAMPLES), "sgpp_std": repr(SGPP_STD),
        "sgpp_seed": str(SGPP_SEED),
    })
    for k, v in noise.items():
        meta["f32_vs_f64_%s_rel_l2" % k] = "%.3e" % v
    path = os.path.join(OUT_DIR, "%s.safetensors" % name)
    kdcgen.write_safetensors(path, tensors, meta)
    print("%-12s top1 %s  worst f32-vs-f64 %.2e  hvp %.1e  %d bytes  %.1fs" % (
        name, top1, max(noise.values()), hv_max, os.path.getsize(path),
        time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
