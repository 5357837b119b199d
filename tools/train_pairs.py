#!/usr/bin/python3
"""train_pairs.py - trains the bundled demo models of weights/demo/: the
seed's two classification pairs, a ResNet-101 teacher with MobileNetV1 and
ResNet-50 students, each student as vanilla, ICKD- and DPK-distilled.

Needs PyTorch (Debian's python3-torch: run it with /usr/bin/python3), numpy,
PIL and matplotlib, plus a built `kdcam` (for `kdcam shapes`, the dataset
generator). Neither `make demo` nor `make test` runs it: its outputs are
committed. Every choice below is repeated in weights/demo/README.md.

What it does, deterministically (fixed seeds, fixed data order):
  1. generates the procedural shapes dataset (`kdcam shapes`, its default
     "hard" style: small objects anywhere, object-like decoys):
       train    --seed 1, --train images
       val      --seed 2, --val images (accuracy after every epoch)
       held-out --seed 3, --test images (final accuracies, the teacher's
                Grad-CAM pointing game on the first --pointing)
       warm-up  --seed 4, --warmup images of the classic style (one large
                centred object, no decoys), for the curriculum warm-up:
                --warmup-steps steps of cross-entropy before the hard
                epochs, for the teacher and once per student pair (the
                pair's three students start from the same warmed-up weights)
  2. teacher: ResNet-101 topology (blocks 3-4-23-3, torchvision v1.5 keys)
     at base width --teacher-width, cross-entropy. With --pair, or when
     --out already holds teacher-resnet101.safetensors and --retrain-teacher
     is not given, the shipped teacher is loaded instead of trained.
  3. students, per pair (--pair mobilenetv1|resnet50|both):
       mobilenetv1  KD MobileNetV1 (model.0..13, fc) at width --mbv1-width
       resnet50     ResNet-50 topology (3-4-6-3) at base width --r50-width
     each trained three ways from the same initial weights:
       vanilla  cross-entropy
       ickd     Hinton KD ((1-a) CE + a T^2 KL, T = 4, a = 0.9) + ICKD:
                beta * MSE between the cosine channel Gram matrices of the
                teacher's layer4 and of the student's last stage passed
                through a 1x1 conv + BN embedding (training only), beta = 10
       dpk      Dynamic Prior Knowledge (Qiu et al., ICLR 2023;
                zongdaoming/dpk classification/, engine.py
                train_resnet_two_epoch and modeling_pretrain.py), last two
                stages, see DPKStage and dpk_mask_ratios below.
  4. writes F16 safetensors with exactly the keys libkdcam loads, the log
     (train_log.txt), the mask-ratio plot (dpk_mask_ratio.png) and the
     per-epoch mask ratios (dpk_mask_ratio.json).

usage: /usr/bin/python3 tools/train_pairs.py [--kdcam build/kdcam] [--out weights/demo]
                                             [--pair mobilenetv1|resnet50|both]
"""

import argparse
import json
import math
import os
import sys
import time

# Debian's python3-torch does its matrix products (nn.Linear, attention)
# through the system libblas.so.3: the reference BLAS ran the DPK decoder's
# products at about 5 GFLOP/s, OpenBLAS (libopenblas0-pthread) at about 100;
# one BLAS thread, as torch runs its own two. Set before torch loads BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdtrain  # noqa: E402
import kdcgen  # noqa: E402  (read_safetensors)
from kdtrain import norm, kd_loss, gram_mse, evaluate  # noqa: E402

TEACHER_FILE = "teacher-resnet101.safetensors"
PAIRS = {
    # pair: (architecture name for libkdcam, file prefix, printable name)
    "mobilenetv1": ("mobilenetv1", "mobilenetv1", "MobileNetV1"),
    "resnet50": ("resnet50", "resnet50", "ResNet-50"),
}
METHODS = ("vanilla", "ickd", "dpk")


# ---------------------------------------------------------------------------
# DPK: the masked feature autoencoder of one stage


def sinusoid_table(n, d):
    """The fixed sine-cosine position table of MAE / DPK
    (get_sinusoid_encoding_table): position p, dimension j -> p / 10000^(2
    floor(j/2) / d), sine on even j, cosine on odd j. 1 x n x d."""
    pos = np.arange(n)[:, None].astype(np.float64)
    j = np.arange(d)[None, :]
    ang = pos / np.power(10000.0, 2 * (j // 2) / d)
    tab = np.where(j % 2 == 0, np.sin(ang), np.cos(ang))
    return torch.tensor(tab, dtype=torch.float32)[None]


class Block(nn.Module):
    """A pre-norm transformer block as DPK's (timm's) Block: x + MHA(LN(x)),
    then x + MLP(LN(x)) with a GELU MLP of mlp_ratio 4, qkv bias, LN eps 1e-6."""

    def __init__(self, d, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = nn.MultiheadAttention(d, heads, bias=True, batch_first=True)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """Patch embedding (patch size 1: a 1x1 conv), the fixed position
    table, transformer blocks on the kept tokens only, a final LayerNorm
    (DPK's PretrainVisionTransformerEncoder with no head)."""

    def __init__(self, cin, d, depth, heads, ntok):
        super().__init__()
        self.embed = nn.Conv2d(cin, d, 1)
        self.register_buffer("pos", sinusoid_table(ntok, d), persistent=False)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, f, keep):
        """f: B x C x h x w; keep: B x (h w) bool with the same count per row."""
        x = self.embed(f).flatten(2).transpose(1, 2) + self.pos
        b, _, d = x.shape
        x = x[keep].reshape(b, -1, d)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class DPKStage(nn.Module):
    """DPK's PretrainVisionTransformer for one stage (modeling_pretrain.py):
    the student's features are kept at the visible positions and encoded by
    a student encoder; at the masked positions the teacher's own features,
    encoded by a teacher encoder, are put in instead (the prior knowledge);
    both go through one shared linear map to the decoder width, get the
    decoder's position table, and a transformer decoder with a LayerNorm and
    a linear head predicts the teacher's features at every position. The
    loss is the MSE against the teacher's features (normlize_target False,
    as in its configs). Patch size 1; training only, never exported."""

    def __init__(self, cs, ct, ntok, d_enc, d_dec, depth_enc, depth_dec, heads):
        super().__init__()
        self.stu = Encoder(cs, d_enc, depth_enc, heads, ntok)
        self.tea = Encoder(ct, d_enc, depth_enc, heads, ntok)
        self.enc_to_dec = nn.Linear(d_enc, d_dec, bias=False)
        self.register_buffer("pos", sinusoid_table(ntok, d_dec), persistent=False)
        self.blocks = nn.ModuleList([Block(d_dec, heads) for _ in range(depth_dec)])
        self.norm = nn.LayerNorm(d_dec, eps=1e-6)
        self.head = nn.Linear(d_dec, ct)
        for m in self.modules():  # DPK's _init_weights
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def predict(self, fs, ft, mask):
        """fs: student B x Cs x h x w (resized to the teacher's h x w
        beforehand), ft: teacher B x Ct x h x w, mask: B x (h w) bool, True
        where the teacher's features are used. Returns the predicted
        teacher features, B x (h w) x Ct."""
        b = fs.shape[0]
        xs = self.enc_to_dec(self.stu(fs, ~mask))
        xt = self.enc_to_dec(self.tea(ft, mask))
        pos = self.pos.expand(b, -1, -1)
        full = torch.zeros(b, mask.shape[1], xs.shape[2], dtype=xs.dtype)
        full = full.masked_scatter(~mask[..., None], xs + pos[~mask].reshape(xs.shape))
        full = full.masked_scatter(mask[..., None], xt + pos[mask].reshape(xt.shape))
        for blk in self.blocks:
            full = blk(full)
        return self.head(self.norm(full))

    def forward(self, fs, ft, mask):
        """The loss: MSE of predict() against the teacher's features."""
        return F.mse_loss(self.predict(fs, ft, mask), ft.flatten(2).transpose(1, 2))


def hsic_unbiased(k, l):
    """The unbiased HSIC estimator DPK uses (Nguyen et al. 2021, eq. 3) on
    Gram matrices with a zero diagonal; float64."""
    n = k.shape[0]
    one = torch.ones(n, 1, dtype=k.dtype)
    r = torch.trace(k @ l)
    r = r + (one.t() @ k @ one @ one.t() @ l @ one).item() / ((n - 1) * (n - 2))
    r = r - (one.t() @ k @ l @ one).item() * 2 / (n - 2)
    return (r / (n * (n - 3))).item()


def gram0(f):
    x = f.detach().flatten(1).double()
    k = x @ x.t()
    k.fill_diagonal_(0.0)
    return k


def dpk_ratio(fs, ft):
    """DPK's dynamic mask ratio ("cka" type of train_resnet_two_epoch): from
    the minibatch CKA of student and teacher features, c = (|HSIC(K,L)| +
    1e-5) / (sqrt(HSIC(K,K) + 1e-5) sqrt(HSIC(L,L) + 1e-5)); the ratio is
    max(1 - c, 0.15), or 0.9 when c is not finite or outside (0.1, 1).
    The more the student already resembles the teacher, the less of the
    teacher is shown. Returns (ratio, c)."""
    k, l = gram0(fs), gram0(ft)
    a = abs(hsic_unbiased(k, l)) + 1e-5
    b = math.sqrt(hsic_unbiased(k, k) + 1e-5) * math.sqrt(hsic_unbiased(l, l) + 1e-5)
    c = a / b
    if not math.isfinite(c) or c <= 0.1 or c >= 1:
        return 0.9, c
    return max(1.0 - c, 0.15), c


def random_mask(b, ntok, ratio, gen):
    """DPK's per-image mask: num_mask = max(int(ntok * ratio), 2) positions,
    chosen uniformly (seeded torch generator instead of numpy's shuffle)."""
    nm = max(int(ntok * ratio), 2)
    order = torch.rand(b, ntok, generator=gen).argsort(1)
    mask = torch.zeros(b, ntok, dtype=torch.bool)
    mask.scatter_(1, order[:, :nm], True)
    return mask


# ---------------------------------------------------------------------------
# Training


def train(name, model, data, args, log, kind, tcache=None, extra=None, epochs=None):
    """kind: teacher | vanilla | ickd | dpk. tcache: teacher logits, layer3
    and layer4 features of the train set. extra: the ICKD embedding or the
    two DPKStage modules (trained with the student, not exported).
    Returns (seconds, per-epoch mean DPK mask ratios per stage)."""
    xtr, ytr, xval, yval = data
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = len(xtr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch,
                                                pct_start=0.2)
    gen = torch.Generator().manual_seed(1000 + sum(map(ord, name)))
    mgen = torch.Generator().manual_seed(2000 + sum(map(ord, name)))
    ratios = []
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        if extra is not None:
            extra.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot, correct, seen, aux = 0.0, 0, 0, 0.0
        rsum = [0.0, 0.0]
        csum = [0.0, 0.0]
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb, yb = norm(xtr[idx]), ytr[idx]
            if kind in ("ickd", "dpk"):
                out, (f3, f4) = model(xb, with_feat=True)
            else:
                out = model(xb)
            if kind in ("vanilla", "teacher"):
                loss = F.cross_entropy(out, yb)
            elif kind == "ickd":
                loss = kd_loss(out, tcache[0][idx], yb, args.T, args.alpha)
                ic = gram_mse(extra(f4), tcache[2][idx].float())
                loss = loss + args.beta * ic
                aux += (args.beta * ic).item() * len(idx)
            else:  # dpk
                tl = tcache[0][idx]
                t3, t4 = tcache[1][idx].float(), tcache[2][idx].float()
                # DPK's logit term: KLDivLoss() (mean over batch x classes)
                # * T^2 * 100, weights gamma (CE) and alpha (KD)
                kl = F.kl_div(F.log_softmax(out / args.dpk_T, 1), F.softmax(tl / args.dpk_T, 1),
                              reduction="mean") * args.dpk_T ** 2 * 100
                loss = args.dpk_gamma * F.cross_entropy(out, yb) + args.dpk_alpha * kl
                # ratios as DPK computes them: the last stage's from the CKA
                # of the pooled features, the previous stage's from the CKA
                # of the last stage (feat_index -1 and -2 of its feature list)
                r1, c1 = dpk_ratio(f4.mean((2, 3)), t4.mean((2, 3)))
                r2, c2 = dpk_ratio(f4, t4)
                fs = [f4, f3]
                ft = [t4, t3]
                feat = 0.0
                for st, (r, w) in enumerate(((r1, 1.0), (r2, args.dpk_w2))):
                    a = fs[st]
                    if a.shape[2:] != ft[st].shape[2:]:
                        a = F.interpolate(a, size=ft[st].shape[2:], mode="bilinear",
                                          align_corners=True)
                    ntok = ft[st].shape[2] * ft[st].shape[3]
                    mask = random_mask(len(idx), ntok, r, mgen)
                    feat = feat + w * extra[st](a, ft[st], mask)
                loss = loss + args.dpk_beta * feat
                aux += (args.dpk_beta * feat).item() * len(idx)
                rsum[0] += r1
                rsum[1] += r2
                csum[0] += c1
                csum[1] += c2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(idx)
        va = evaluate(model, xval, yval)
        extra_txt = ""
        if kind == "ickd":
            extra_txt = "  (ickd term %.4f)" % (aux / seen)
        elif kind == "dpk":
            r = [v / steps_per_epoch for v in rsum]
            c = [v / steps_per_epoch for v in csum]
            ratios.append(r)
            extra_txt = "  (dpk feature term %.4f; mask ratio last %.3f, previous %.3f; " \
                        "CKA pooled %.3f, last stage %.3f)" % (aux / seen, r[0], r[1], c[0], c[1])
        log("%s epoch %d/%d  loss %.4f%s  train acc %.4f  val acc %.4f  (%.0f s)" % (
            name, ep + 1, epochs, tot / seen, extra_txt, correct / seen, va, time.time() - t0))
    model.eval()
    return time.time() - t0, ratios


def warmup(name, model, xw, yw, args, log):
    """Curriculum warm-up: --warmup-steps steps of plain cross-entropy at a
    constant --lr on the classic style (one large centred object, no decoys;
    seed 4, never used elsewhere). Trained from scratch on the hard style
    alone, nothing learned: the teacher's loss was 2.31 after two epochs
    (626 steps, validation accuracy 0.104), a MobileNetV1 probe's 2.29 after
    400 steps; the classic images teach the shapes first, the hard epochs
    that follow teach finding them among decoys.
    Returns the seconds it took."""
    if args.warmup_steps <= 0:
        return 0.0
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    gen = torch.Generator().manual_seed(3000 + sum(map(ord, name)))
    t0 = time.time()
    model.train()
    tot, correct, seen = 0.0, 0, 0
    for s in range(args.warmup_steps):
        idx = torch.randint(0, len(xw), (args.batch,), generator=gen)
        out = model(norm(xw[idx]))
        loss = F.cross_entropy(out, yw[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
        correct += (out.argmax(1) == yw[idx]).sum().item()
        seen += len(idx)
        if (s + 1) % 100 == 0 or s + 1 == args.warmup_steps:
            log("%s warm-up (classic style) step %d/%d  loss %.4f  train acc %.4f  (%.0f s)" % (
                name, s + 1, args.warmup_steps, tot / seen, correct / seen, time.time() - t0))
            tot, correct, seen = 0.0, 0, 0
    return time.time() - t0


def make_student(pair, args):
    torch.manual_seed(2)  # the same initial student for all three methods
    if pair == "mobilenetv1":
        return kdtrain.MobileNetV1KD(args.mbv1_width)
    return kdtrain.ResNetNarrow(args.r50_width, blocks=(3, 4, 6, 3))


def make_extra(method, student, teacher, args):
    if method == "ickd":
        torch.manual_seed(3)
        return nn.Sequential(nn.Conv2d(student.out_channels, teacher.out_channels, 1, bias=False),
                             nn.BatchNorm2d(teacher.out_channels))
    if method == "dpk":
        torch.manual_seed(3)
        cs, ct = student.stage_channels(), teacher.stage_channels()
        g = args.size // 32
        return nn.ModuleList([
            DPKStage(cs[1], ct[1], g * g, args.dpk_dim, args.dpk_dim, args.dpk_depth,
                     args.dpk_depth, args.dpk_heads),
            DPKStage(cs[0], ct[0], 4 * g * g, args.dpk_dim, args.dpk_dim, args.dpk_depth,
                     args.dpk_depth, args.dpk_heads)])
    return None


def plot_ratios(path, ratios, epochs):
    """One panel per pair, one line per distilled stage: DPK's mean mask
    ratio per epoch (its repository plots the ratio per stage the same way)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pairs = [p for p in PAIRS if p in ratios]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.2), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        r = np.array(ratios[pair])
        ep = np.arange(1, len(r) + 1)
        names = ("layer4" if pair == "resnet50" else "model.13",
                 "layer3" if pair == "resnet50" else "model.11")
        ax.plot(ep, r[:, 0], "o-", label="last stage (%s)" % names[0])
        ax.plot(ep, r[:, 1], "s-", label="previous stage (%s)" % names[1])
        ax.set_title("DPK, ResNet-101 -> %s" % PAIRS[pair][2], fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean mask ratio")
        ax.set_ylim(0, 1)
        ax.set_xticks(ep)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_teacher_file(teacher, path):
    tensors, _ = kdcgen.read_safetensors(path)
    sd = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()}
    kdtrain.load_rounded(teacher, sd)


def blas_name():
    """The libblas.so.3 that torch's matrix products go through (Debian's
    alternatives link), for the log."""
    return os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")


def main():
    kdtrain.keep_freed_memory()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kdcam", default="build/kdcam", help="kdcam binary (default build/kdcam)")
    ap.add_argument("--out", default="weights/demo", help="output directory")
    ap.add_argument("--work", default="/tmp/kdcam-pairs-data", help="dataset directory")
    ap.add_argument("--pair", default="both", choices=("both",) + tuple(PAIRS))
    ap.add_argument("--retrain-teacher", action="store_true",
                    help="train the teacher even if --out holds one")
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--pointing", type=int, default=500)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--warmup", type=int, default=4000,
                    help="classic-style images for the curriculum warm-up (seed 4)")
    ap.add_argument("--warmup-steps", type=int, default=400)
    ap.add_argument("--teacher-epochs", type=int, default=12)
    ap.add_argument("--student-epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--T", type=float, default=4.0, help="ICKD's logit KD temperature")
    ap.add_argument("--alpha", type=float, default=0.9, help="ICKD's logit KD weight")
    ap.add_argument("--beta", type=float, default=10.0, help="ICKD's Gram term weight")
    ap.add_argument("--dpk-T", type=float, default=1.0)
    ap.add_argument("--dpk-gamma", type=float, default=0.8)
    ap.add_argument("--dpk-alpha", type=float, default=0.8)
    ap.add_argument("--dpk-beta", type=float, default=0.2)
    ap.add_argument("--dpk-w2", type=float, default=0.6, help="weight of the previous stage")
    ap.add_argument("--dpk-dim", type=int, default=64)
    ap.add_argument("--dpk-depth", type=int, default=1)
    ap.add_argument("--dpk-heads", type=int, default=4)
    ap.add_argument("--teacher-width", type=int, default=16)
    ap.add_argument("--mbv1-width", type=float, default=0.25)
    ap.add_argument("--r50-width", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit-steps", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    kdtrain.SIZE = args.size

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    np.random.seed(0)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    logname = "train_log.txt" if args.pair == "both" else "train_log-%s.txt" % args.pair
    log = kdtrain.Log(os.path.join(args.out, logname))
    log("# tools/train_pairs.py %s" % " ".join(sys.argv[1:]))
    log("# torch %s, %d threads, BLAS %s, load average at start %s" % (
        torch.__version__, args.threads, blas_name(),
        " ".join("%.2f" % v for v in os.getloadavg())))

    t = time.time()
    sets = {}
    for name, seed, n, masks in (("train", 1, args.train, False), ("val", 2, args.val, False),
                                 ("test", 3, args.test, True)):
        d = os.path.join(args.work, name)
        lab = kdtrain.generate(args.kdcam, d, seed, n, masks)
        sets[name] = kdtrain.load_set(d, lab, masks)
    d = os.path.join(args.work, "warmup-classic")
    lab = kdtrain.generate(args.kdcam, d, 4, args.warmup, False, style="classic")
    xw, yw, _, _ = kdtrain.load_set(d, lab, False)
    log("data: train %d (seed 1), val %d (seed 2), held-out %d (seed 3), %dx%d, style %s; "
        "warm-up %d (seed 4, style classic): %.0f s"
        % (args.train, args.val, args.test, args.size, args.size, kdtrain.STYLE, args.warmup,
           time.time() - t))
    xtr, ytr, _, _ = sets["train"]
    xval, yval, _, _ = sets["val"]
    xte, yte, bte, mte = sets["test"]
    data = (xtr, ytr, xval, yval)

    times, results = {}, {}
    tpath = os.path.join(args.out, TEACHER_FILE)
    torch.manual_seed(1)
    teacher = kdtrain.ResNetNarrow(args.teacher_width, blocks=(3, 4, 23, 3))
    if os.path.exists(tpath) and (args.pair != "both" or not args.retrain_teacher) and \
            not args.retrain_teacher:
        load_teacher_file(teacher, tpath)
        log("teacher: loaded %s (not retrained)" % tpath)
    else:
        tw = warmup("teacher", teacher, xw, yw, args, log)
        times["teacher"], _ = train("teacher", teacher, data, args, log, "teacher",
                                    epochs=args.teacher_epochs)
        times["teacher"] += tw
        teacher.eval()
        sd = kdtrain.export(teacher, tpath, "resnet101", {
            "model": "teacher: ResNet-101 topology, base width %d, cross-entropy" %
            args.teacher_width})
        kdtrain.load_rounded(teacher, sd)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    pg = kdtrain.pointing_game(teacher, xte, bte, mte, min(args.pointing, args.test))
    npg = min(args.pointing, args.test)
    pg3 = kdtrain.pointing_game(teacher, xte, bte, mte, npg, layer="layer3")
    log("teacher held-out accuracy %.4f; Grad-CAM (layer4, top-1) pointing on the first %d "
        "held-out images %.4f (in the mask %.4f; at layer3 %.4f)" % (
            evaluate(teacher, xte, yte), npg, pg[0], pg[1], pg3[0]))
    ctr = args.size // 2
    log("baseline on the same images: the centre pixel in box %.4f" % np.mean(
        [b[0] <= ctr < b[2] and b[1] <= ctr < b[3] for b in bte[:npg]]))

    t = time.time()
    tcache = kdtrain.teacher_outputs(teacher, xtr)
    times["teacher outputs"] = time.time() - t
    log("teacher outputs (logits, layer3, layer4) on the train set: %.0f s" %
        times["teacher outputs"])

    pairs = list(PAIRS) if args.pair == "both" else [args.pair]
    ratios = {}
    rpath = os.path.join(args.out, "dpk_mask_ratio.json")
    if os.path.exists(rpath):
        with open(rpath) as f:
            ratios = {k: v for k, v in json.load(f).items() if k in PAIRS}
    smodels = {}
    for pair in pairs:
        arch, prefix, pname = PAIRS[pair]
        # one warm-up per pair, shared: the three students start the hard
        # epochs from the same weights
        s0 = make_student(pair, args)
        times[prefix + " warm-up"] = warmup(prefix, s0, xw, yw, args, log)
        start = {k: v.clone() for k, v in s0.state_dict().items()}
        for method in METHODS:
            name = "%s-%s" % (prefix, method)
            s = make_student(pair, args)
            s.load_state_dict(start)
            extra = make_extra(method, s, teacher, args)
            times[name], r = train(name, s, data, args, log, method, tcache=tcache, extra=extra,
                                   epochs=args.student_epochs)
            if method == "dpk":
                ratios[pair] = r
            desc = {"vanilla": "vanilla (cross-entropy)",
                    "ickd": "ICKD + logit KD",
                    "dpk": "DPK (last two stages, dynamic CKA mask ratio) + logit KD"}[method]
            width = args.mbv1_width if pair == "mobilenetv1" else args.r50_width
            sd = kdtrain.export(s, os.path.join(args.out, name + ".safetensors"), arch, {
                "model": "student of ResNet-101: %s, width %g, %s" % (pname, width, desc)})
            kdtrain.load_rounded(s, sd)
            smodels[name] = s
    with open(rpath, "w") as f:
        json.dump(ratios, f, indent=1)
    plot_ratios(os.path.join(args.out, "dpk_mask_ratio.png"), ratios, args.student_epochs)

    total = time.time() - t_start
    log("")
    log("held-out accuracy (%d images, seed 3; the shipped F16 weights):" % args.test)
    for name, m in [("teacher", teacher)] + list(smodels.items()):
        results[name] = evaluate(m, xte, yte)
        nparam = sum(p.numel() for p in m.parameters())
        log("  %-20s %.4f  (%d parameters, trained in %.0f s)" % (
            name, results[name], nparam, times.get(name, 0.0)))
    log("wall clock, data generation to export: %.0f s (%.1f min); load average at end %s" % (
        total, total / 60, " ".join("%.2f" % v for v in os.getloadavg())))
    for name in sorted(os.listdir(args.out)):
        if name.endswith(".safetensors"):
            log("  %s %d bytes" % (name, os.path.getsize(os.path.join(args.out, name))))


if __name__ == "__main__":
    main()
