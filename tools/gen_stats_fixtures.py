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
Writes tests/fixtures/stats/: x.npy, y.npy (float32 inputs), logits_t.npy,
logits_s.npy, and expected.txt (name value, %.17g).
Run: /usr/bin/python3 tools/gen_stats_fixtures.py"""
import os
import numpy as np

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
    with open(f"{OUT}/expected.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
