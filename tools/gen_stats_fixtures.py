#!/usr/bin/python3
"""Fixtures for tests/test_stats.c: minibatch CKA (linear and RBF), the
unbiased HSIC, prediction KL and the mean's 95% interval, computed with
NumPy in float64 the way their sources write them:
  - HSIC: torch_cka's _HSIC (AntixK/PyTorch-Model-Compare), matrix form
    with a ones vector, diagonals filled with 0;
  - RBF kernel: rbf(X, threshold=1) of Kornblith et al.'s CKA demo
    (google-research representation_similarity): median of the squared
    distance matrix;
  - minibatch CKA: sum of per-batch HSICs, hsic_xy / sqrt(hsic_xx hsic_yy).
Appended (issue 14, second part), each after its source:
  - RISE's blurred substrate: evaluation.py's gkern(11, 5) (scipy's
    gaussian_filter of a delta: a Gaussian truncated at 4 sigma, 'reflect'
    boundaries, done here with np.pad 'symmetric') and torch's conv2d with
    zero padding 5;
  - ROAD: pytorch-grad-cam's metrics/road.py (np.percentile masks, the
    NoisyLinearImputer's system set up the same way but solved densely
    with np.linalg.solve instead of scipy's spsolve), the noise from the
    same splitmix64/Box-Muller stream as lib/stats/road.c, written out in
    Python integers;
  - ICKD (its ICKDLoss.batch_loss: bmm, F.normalize(dim=2), sum / c) and
    attention transfer (RepDistiller's at(): F.normalize(f.pow(2).mean(1)),
    adaptive_avg_pool2d of the larger map), in torch float64, with the
    channel match of lib/stats/kd_dist.c (adaptive_avg_pool1d over channels).
Writes tests/fixtures/stats/: x.npy, y.npy (float32 inputs), logits_t.npy,
logits_s.npy, and expected.txt (name value, %.17g).
Run: /usr/bin/python3 tools/gen_stats_fixtures.py"""
import os
import numpy as np
import torch
import torch.nn.functional as F

OUT = "tests/fixtures/stats"
# minibatch sizes: 4 (the smallest allowed), then others; shards in the test
# split them 2 + 3 (different batch counts per shard)
BATCHES = [4, 6, 5, 7, 4]
DX, DY = 12, 7          # layers of different widths


def hsic(K, L):
    K = K.copy(); L = L.copy()
    np.fill_diagonal(K, 0.0); np.fill_diagonal(L, 0.0)
    N = K.shape[0]
    ones = np.ones((N, 1))
    r = np.trace(K @ L)
    r += (ones.T @ K @ ones @ ones.T @ L @ ones).item() / ((N - 1) * (N - 2))
    r -= (ones.T @ K @ L @ ones).item() * 2 / (N - 2)
    return r / (N * (N - 3))


def gram_linear(x):
    return x @ x.T


def gram_rbf(x, threshold=1.0):
    dot = x @ x.T
    sq = np.diag(dot)
    d = -2 * dot + sq[:, None] + sq[None, :]
    med = np.median(d)
    return np.exp(-d / (2 * threshold ** 2 * med))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(14)
    n = sum(BATCHES)
    x = rng.standard_normal((n, DX)).astype(np.float32)
    # y related to x (a random linear map plus noise and a ReLU)
    w = rng.standard_normal((DX, DY))
    y = np.maximum(x.astype(np.float64) @ w + 0.5 * rng.standard_normal((n, DY)), 0)
    y = y.astype(np.float32)
    np.save(f"{OUT}/x.npy", x)
    np.save(f"{OUT}/y.npy", y)
    lines = [f"batches {len(BATCHES)}"] + [f"batch{i} {b}" for i, b in enumerate(BATCHES)]
    for kname, gram in (("linear", gram_linear), ("rbf", gram_rbf)):
        tot = np.zeros(3)
        part = np.zeros(3)  # the first two batches: shard A
        i0 = 0
        for bi, b in enumerate(BATCHES):
            xb = x[i0:i0 + b].astype(np.float64)
            yb = y[i0:i0 + b].astype(np.float64)
            K, L = gram(xb), gram(yb)
            h = np.array([hsic(K, K), hsic(K, L), hsic(L, L)])
            lines += [f"{kname}.b{bi}.hsic_xx {h[0]:.17g}", f"{kname}.b{bi}.hsic_xy {h[1]:.17g}",
                      f"{kname}.b{bi}.hsic_yy {h[2]:.17g}",
                      f"{kname}.b{bi}.cka {h[1] / np.sqrt(h[0] * h[2]):.17g}"]
            if bi == 0:
                lines += [f"{kname}.b0.K00 {K[0, 0]:.17g}", f"{kname}.b0.K12 {K[1, 2]:.17g}",
                          f"{kname}.b0.K31 {K[3, 1]:.17g}"]
            tot += h
            if bi < 2:
                part += h
            i0 += b
        lines += [f"{kname}.cka {tot[1] / np.sqrt(tot[0] * tot[2]):.17g}",
                  f"{kname}.shardA.cka {part[1] / np.sqrt(part[0] * part[2]):.17g}"]
    # prediction KL at T = 1 and 4, 6 images of 10 classes
    lt = (3 * rng.standard_normal((6, 10))).astype(np.float32)
    ls = (lt + 1.5 * rng.standard_normal((6, 10))).astype(np.float32)
    np.save(f"{OUT}/logits_t.npy", lt)
    np.save(f"{OUT}/logits_s.npy", ls)
    for T in (1, 4):
        for i in range(6):
            a = lt[i].astype(np.float64) / T
            b = ls[i].astype(np.float64) / T
            p = np.exp(a - a.max()); p /= p.sum()
            q = np.exp(b - b.max()); q /= q.sum()
            lines.append(f"kl.T{T}.{i} {np.sum(p * np.log(p / q)):.17g}")
    # mean and 95% interval of 9 values
    v = rng.standard_normal(9)
    lines.append("ci.values " + " ".join(f"{t:.17g}" for t in v))
    lines.append(f"ci.mean {v.mean():.17g}")
    lines.append(f"ci.half {1.959963984540054 * v.std(ddof=1) / np.sqrt(len(v)):.17g}")
    # faithfulness: deletion / insertion inputs (RISE: pixels by decreasing
    # saliency, ties by position; step k moves floor(k * hw / steps)), their
    # AUC (RISE's auc), Average Drop / Increase in Confidence (Grad-CAM++)
    H, W, STEPS = 5, 6, 7
    img = rng.standard_normal((3, H, W)).astype(np.float32)
    sub = rng.standard_normal((3, H, W)).astype(np.float32)
    m = rng.integers(0, 6, (H, W)).astype(np.float32) / 5  # ties on purpose
    np.save(f"{OUT}/faith_image.npy", img)
    np.save(f"{OUT}/faith_substrate.npy", sub)
    np.save(f"{OUT}/faith_map.npy", m)
    flat = m.reshape(-1)
    order = np.lexsort((np.arange(H * W), -flat))
    for name, src, dst in (("deletion", img, sub), ("insertion", sub, img)):
        outs = []
        for k in range(STEPS + 1):
            o = src.reshape(3, -1).copy()
            idx = order[: k * H * W // STEPS]
            o[:, idx] = dst.reshape(3, -1)[:, idx]
            outs.append(o.reshape(3, H, W))
        np.save(f"{OUT}/faith_{name}.npy", np.stack(outs).astype(np.float32))
    sc = rng.uniform(0, 1, STEPS + 1)
    lines.append("auc.scores " + " ".join(f"{t:.17g}" for t in sc))
    lines.append(f"auc.value {(sc.sum() - sc[0] / 2 - sc[-1] / 2) / (len(sc) - 1):.17g}")
    Y = rng.uniform(0.1, 1, 8)
    O = np.clip(Y + rng.normal(0, 0.2, 8), 0, 1)
    lines.append("ad.Y " + " ".join(f"{t:.17g}" for t in Y))
    lines.append("ad.O " + " ".join(f"{t:.17g}" for t in O))
    lines.append(f"ad.drop {100 * np.mean(np.maximum(0, Y - O) / Y):.17g}")
    lines.append(f"ad.inc {100 * np.mean(O > Y):.17g}")
    road_blur_kd(rng, lines)
    with open(f"{OUT}/expected.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


M64 = (1 << 64) - 1


def splitmix_normals(seed, n):
    st = seed & M64
    out = []

    def nxt():
        nonlocal st
        st = (st + 0x9E3779B97F4A7C15) & M64
        z = st
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
    while len(out) < n:
        u1 = ((nxt() >> 11) + 1) * 2.0 ** -53
        u2 = (nxt() >> 11) * 2.0 ** -53
        r = np.sqrt(-2 * np.log(u1))
        out += [r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)]
    return np.float32(out[:n])


NEIGHBORS = [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
             ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]


def road_impute(img, keep, noise, noise_std):
    """road.py's NoisyLinearImputer: keep is (H, W), 1 kept, 0 imputed."""
    C, H, W = img.shape
    kf = keep.reshape(-1)
    flat = img.reshape(C, -1).astype(np.float64)
    idx = np.argwhere(kf == 0).flatten()
    vid = np.zeros(len(kf), dtype=int)
    vid[idx] = np.arange(len(idx))
    n = len(idx)
    A = np.zeros((n, n))
    b = np.zeros((n, C))
    sumw = np.ones(n)
    for (o0, o1), wgt in NEIGHBORS:
        c0 = idx // W + o0
        c1 = idx % W + o1
        valid = (c0 >= 0) & (c1 >= 0) & (c0 < H) & (c1 < W)
        nc = idx + o0 * W + o1
        for e in range(n):
            if not valid[e]:
                sumw[e] -= wgt
            elif kf[nc[e]] > 0.5:
                b[e] -= wgt * flat[:, nc[e]]
            else:
                A[e, vid[nc[e]]] = wgt
    A[np.arange(n), np.arange(n)] = -sumw
    res = np.linalg.solve(A, b)  # (n, C)
    out = flat.copy()
    out[:, idx] = res.T + noise_std * noise.reshape(C, -1)[:, idx].astype(np.float64)
    return out.reshape(C, H, W)


def road_keep(cam, percentile, morf):
    m = cam if morf else 1 - cam  # float32, as the source
    thr = np.percentile(m, percentile)
    return np.float32(m < thr)


def gkern1d(klen, sigma):
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    g = np.exp(-0.5 / sigma ** 2 * x ** 2)
    g /= g.sum()
    d = np.zeros(klen)
    d[klen // 2] = 1
    ext = np.pad(d, r, mode="symmetric")
    return np.array([np.dot(g, ext[i:i + 2 * r + 1]) for i in range(klen)])


def road_blur_kd(rng, lines):
    # RISE's blur substrate of a 3 x 9 x 13 image
    img = rng.standard_normal((3, 9, 13)).astype(np.float32)
    k1 = gkern1d(11, 5.0)
    k2 = np.outer(k1, k1).astype(np.float32)
    kern = np.zeros((3, 3, 11, 11), np.float32)
    for c in range(3):
        kern[c, c] = k2
    blurred = F.conv2d(torch.from_numpy(img).double()[None], torch.from_numpy(kern).double(),
                       padding=5)[0].numpy()
    np.save(f"{OUT}/blur_image.npy", img)
    np.save(f"{OUT}/blur_out.npy", blurred.astype(np.float32))
    lines.append(f"blur.k00 {k2[0, 0]:.17g}")
    lines.append(f"blur.k55 {k2[5, 5]:.17g}")
    # ROAD on a 3 x 10 x 12 image and a map of distinct values
    H, W, SEED, STD = 10, 12, 1234, 0.01
    img = rng.standard_normal((3, H, W)).astype(np.float32)
    cam = rng.permutation(H * W).reshape(H, W).astype(np.float32) / (H * W - 1)
    noise = splitmix_normals(SEED, 3 * H * W)
    np.save(f"{OUT}/road_image.npy", img)
    np.save(f"{OUT}/road_map.npy", cam)
    np.save(f"{OUT}/road_noise.npy", noise.reshape(3, H * W))
    outs, masks = [], []
    for morf in (1, 0):
        for p in range(10, 100, 10):
            keep = road_keep(cam, p, morf)
            masks.append(1 - keep)
            outs.append(road_impute(img, keep, noise, STD))
    np.save(f"{OUT}/road_out.npy", np.stack(outs).astype(np.float32).reshape(18 * 3, H * W))
    np.save(f"{OUT}/road_removed.npy", np.stack(masks).astype(np.float32).reshape(18, H * W))
    lines.append(f"road.h {H}")
    lines.append(f"road.w {W}")
    lines.append(f"road.seed {SEED}")
    lines.append(f"road.std {STD}")
    # ICKD and attention transfer: teacher 8 x 6 x 6; students 12 x 3 x 4
    # (wider, smaller) and 8 x 6 x 6 (same shape)
    ft = rng.standard_normal((8, 6, 6)).astype(np.float32)
    fs1 = np.maximum(rng.standard_normal((12, 3, 4)), 0).astype(np.float32)
    fs2 = (ft + 0.3 * rng.standard_normal((8, 6, 6))).astype(np.float32)
    np.save(f"{OUT}/kd_t.npy", ft.reshape(8, 36))
    np.save(f"{OUT}/kd_s1.npy", fs1.reshape(12, 12))
    np.save(f"{OUT}/kd_s2.npy", fs2.reshape(8, 36))
    for name, fs in (("s1", fs1), ("s2", fs2)):
        t = torch.from_numpy(ft).double()[None]
        s = torch.from_numpy(fs).double()[None]
        c = min(t.shape[1], s.shape[1])

        def chpool(x):  # channels to c groups, adaptive bins
            b, ch, h, w = x.shape
            y = F.adaptive_avg_pool1d(x.reshape(ch, h * w).t()[None], c)[0].t()
            return y.reshape(1, c, h * w)
        gt, gs = chpool(t), chpool(s)
        et = F.normalize(torch.bmm(gt, gt.permute(0, 2, 1)), dim=2)
        es = F.normalize(torch.bmm(gs, gs.permute(0, 2, 1)), dim=2)
        ickd = ((es - et) ** 2).sum() / c
        lines.append(f"ickd.{name} {ickd.item():.17g}")
        oh, ow = min(t.shape[2], s.shape[2]), min(t.shape[3], s.shape[3])
        pt = F.adaptive_avg_pool2d(t, (oh, ow))
        ps = F.adaptive_avg_pool2d(s, (oh, ow))
        at_t = F.normalize(pt.pow(2).mean(1).view(1, -1))
        at_s = F.normalize(ps.pow(2).mean(1).view(1, -1))
        lines.append(f"at.{name} {(at_t - at_s).norm().item():.17g}")


if __name__ == "__main__":
    main()
