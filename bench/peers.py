#!/usr/bin/env python3
"""peers.py - libkdcam against PyTorch and ONNX Runtime: same models, same
input, same machine, same run.

Run from anywhere with Debian's Python (for python3-torch):

    /usr/bin/python3 bench/peers.py [--runs R] [--rounds K] [--archs A,B] [--threads 1,2]
                                    [--tasks forward,guided] [--size HxW] [--batch 1,8]
                                    [--quick]
                                    [--kernels K] [--json] [--no-torch] [--no-ort]
                                    [--no-check]

For each architecture (resnet50, resnet101, resnet152, mobilenetv1):
  - seeded weights are written by build/kdc-genweights (the generator of the
    test suite, tools/kdcgen.py in Python: bit-identical), 1000 classes;
  - PyTorch loads that very file (torchvision's resnetNN; for mobilenetv1 the
    knowledge-distillation MobileNetV1 of tools/gen_fixtures.py);
  - the model is exported with torch.onnx.export (opset 13) to a temporary
    directory for ONNX Runtime;
  - the input is N x 3 x H x W (batch 1 and 224 x 224 by default; --batch
    takes a list, each batch a separate set of rows) of kdcgen.fill("input",
    n, 7001, 0, 2), exactly what `kdcam bench --batch N` feeds itself; at
    batch N every system runs the N images in one call, and the rows give
    images per second (N / median) besides the milliseconds.
Before timing, one forward pass of each system is checked against PyTorch
(top-1 class and the largest logit difference; `kdcam classify` on the same
input saved as .npy) so that the table compares the same computation.

Tasks and what one timed run is:
  forward   libkdcam: `kdcam bench --task forward` (kdc_run_forward to the
            logits). PyTorch (eager): model(x) under torch.no_grad().
            PyTorch JIT: the same model traced, frozen and passed through
            torch.jit.optimize_for_inference, which turns every convolution
            into a prepacked oneDNN one (BatchNorm folded): PyTorch's fastest
            CPU inference path, and the only one here that does not depend on
            the system BLAS (Debian's python3-torch is built with
            BLAS_INFO=generic and calls libblas.so.3; with the reference
            libblas3, eager 1x1 convolutions on 1 thread, which PyTorch 1.13
            sends to its BLAS-based slow_conv2d, are very slow). ONNX Runtime:
            session.run (bench/ort_bench.js, onnxruntime-node, CPU provider,
            intraOpNumThreads = threads, graph optimisation "all").
  guided    libkdcam: `kdcam bench --task guided` (guided backprop down to the
            input image). PyTorch: every ReLU replaced by the guided ReLU of
            tools/gen_grad_fixtures.py (pytorch-grad-cam's
            GuidedBackpropReLU), parameters frozen (requires_grad False, so
            autograd computes only the input gradient), x.requires_grad,
            forward, backward of the sum of each image's top-1 logit (what
            libkdcam does per image at batch N). ONNX Runtime: not measured
            (its CPU package has no training / gradient API).
  gradcam   libkdcam only (as `kdcam cam`); may be listed in --tasks.

Timing: R timed runs per (system, task, threads), split into K rounds; in
each round every system runs R/K timed runs after one warm-up (libkdcam and
ONNX Runtime in a fresh process per round: model loading is not timed), and
the order of the systems rotates from round to round, so that load on the
machine hits all of them alike. Min and median are over all R runs; the
ratios PyTorch/libkdcam and ORT/libkdcam are ratios of medians (> 1: libkdcam
is faster).

Output: '#' header lines (machine, versions, BLAS), a table, one JSON object
per (model, batch, threads, task) line, then the checks of issue 15's
targets, each ok, MISS or n/a (not measured by this run's options; the
many-core and memory targets need other measurements) (--json: only the
JSON lines). `make bench` ends with that list. A peer that is not installed is skipped with a
note; the libkdcam columns are always measured.

Defaults: --runs 12 --rounds 3 --threads 1,2 --tasks forward,guided, all four
architectures. --quick: --runs 4 --rounds 1 --archs resnet50,mobilenetv1.
Environment: BUILD (default build) locates kdcam and kdc-genweights; NODE
(default node) the Node.js binary; onnxruntime-node is looked up from bench/
(bench/node_modules) or NODE_PATH.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ARCHS = ["resnet50", "resnet101", "resnet152", "mobilenetv1"]
INPUT_SEED = 7001
WEIGHT_SEED = 1
CLASSES = 1000
SYSTEMS = ["kdcam", "torch", "torchjit", "ort"]


def note(msg):
    print("peers: " + msg, file=sys.stderr, flush=True)


def median(v):
    return statistics.median(v) if v else None


# --------------------------------------------------------------------------
# libkdcam

def kdcam_bench(kdcam, weights, arch, task, threads, runs, size, kernels=None, batch=1):
    cmd = [kdcam, "bench", "-m", arch, "-w", weights, "--task", task, "--threads", str(threads),
           "--runs", str(runs), "--size", size, "--batch", str(batch), "--json"]
    if kernels:
        cmd += ["--kernels", kernels]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# ONNX Runtime (onnxruntime-node through bench/ort_bench.js)

def ort_version(node):
    """The installed onnxruntime-node version, or None (with the reason)."""
    if not shutil.which(node):
        return None, "node (Node.js) not found"
    js = "process.stdout.write(require('onnxruntime-node/package.json').version)"
    try:
        p = subprocess.run([node, "-e", js], cwd=HERE, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if p.returncode != 0:
        return None, ("onnxruntime-node not installed (cd bench && ONNXRUNTIME_NODE_INSTALL=skip "
                      "npm install onnxruntime-node)")
    return p.stdout.strip(), None


def ort_bench(node, onnx_path, input_path, shape, threads, runs):
    cmd = [node, os.path.join(HERE, "ort_bench.js"), onnx_path, input_path] + \
        [str(d) for d in shape] + [str(threads), str(runs), "1"]
    p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# PyTorch

class TorchSide:
    """The PyTorch model of an architecture, loaded from the safetensors file."""

    def __init__(self, arch, weights, x_np):
        import copy
        import numpy as np
        import torch
        import torch.nn as nn
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import kdcgen
        import gen_fixtures
        import gen_grad_fixtures
        self.torch = torch
        if arch.startswith("resnet"):
            import torchvision
            model = getattr(torchvision.models, arch)(weights=None, num_classes=CLASSES)
            for m in model.modules():
                if isinstance(m, nn.ReLU):
                    m.inplace = False
        else:
            model = gen_fixtures.KDMobileNetV1(CLASSES, nn.ReLU)
        tensors, _ = kdcgen.read_safetensors(weights)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()},
                              strict=True)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.guided = gen_grad_fixtures.make_guided(copy.deepcopy(model)).eval()
        self.x = torch.from_numpy(np.ascontiguousarray(x_np))
        self.jit = None

    def build_jit(self):
        """Frozen TorchScript, optimize_for_inference: every convolution
        becomes a prepacked oneDNN convolution (BatchNorm folded, ReLU fused),
        whatever the thread count."""
        torch = self.torch
        with torch.no_grad():
            traced = torch.jit.trace(self.model, self.x)
            self.jit = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            self.jit(self.x)

    def jit_logits(self):
        with self.torch.no_grad():
            return self.jit(self.x)[0].numpy()

    def logits(self):
        with self.torch.no_grad():
            return self.model(self.x)[0].numpy()

    def export_onnx(self, path):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.torch.onnx.export(self.model, self.x, path, opset_version=13,
                                   input_names=["input"], output_names=["logits"],
                                   do_constant_folding=True)

    def _forward(self):
        with self.torch.no_grad():
            self.model(self.x)

    def _forward_jit(self):
        with self.torch.no_grad():
            self.jit(self.x)

    def _guided(self):
        x = self.x.detach().clone().requires_grad_(True)
        out = self.guided(x)
        top = out.argmax(dim=1, keepdim=True)
        out.gather(1, top).sum().backward()
        return x.grad

    def bench(self, task, threads, runs, jit=False):
        self.torch.set_num_threads(threads)
        f = self._forward_jit if jit else self._forward if task == "forward" else self._guided
        f()  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            f()
            times.append((time.perf_counter() - t0) * 1e3)
        return times


# --------------------------------------------------------------------------

def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split()
                    flags = "+".join(x for x in ("avx2", "fma", "avx512f") if x in fl)
                    break
    except OSError:
        pass
    return "%s, %d cores%s" % (cpu, os.cpu_count() or 0, (" (" + flags + ")") if flags else "")


def blas_in_process():
    """The BLAS libraries mapped into this process (after importing torch)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if "blas" in base or "mkl_" in base:
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return ", ".join(sorted(libs)) or "none found"


def git_head():
    try:
        p = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %cd", "--date=short"],
                           capture_output=True, text=True, timeout=10)
        if p.returncode == 0:
            dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return p.stdout.strip() + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown"


def fmt(v, w=8):
    return ("%*.1f" % (w, v)) if v is not None else "%*s" % (w, "-")


def fmt_ratio(v):
    return "%6.2f" % v if v is not None else "%6s" % "-"


def parse_list(s, allowed, what):
    items = [x.strip() for x in s.split(",") if x.strip()]
    for x in items:
        if allowed is not None and x not in allowed:
            sys.exit("peers: --%s: '%s' is not one of %s" % (what, x, ", ".join(allowed)))
    if not items:
        sys.exit("peers: --%s: empty list" % what)
    return items


def main():
    ap = argparse.ArgumentParser(description="libkdcam vs PyTorch and ONNX Runtime "
                                 "(see the module docstring)")
    ap.add_argument("--runs", type=int, help="timed runs per system, task and thread count "
                    "(default 12; --quick 4)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds the runs are split into "
                    "(default 3; --quick 1)")
    ap.add_argument("--archs", help="comma-separated (default: %s)" % ",".join(ARCHS))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--tasks", default="forward,guided", help="forward,guided[,gradcam]")
    ap.add_argument("--size", default="224x224", help="input HxW (default 224x224)")
    ap.add_argument("--batch", default="1", help="comma-separated batch sizes (default 1)")
    ap.add_argument("--quick", action="store_true", help="--runs 4 --rounds 1 "
                    "--archs resnet50,mobilenetv1")
    ap.add_argument("--kernels", help="passed to kdcam bench --kernels (auto, scalar, avx2, "
                    "neon; default: the library's choice)")
    ap.add_argument("--json", action="store_true", help="print only the JSON lines")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch (and so ONNX Runtime)")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--no-torch-jit", action="store_true",
                    help="skip the frozen TorchScript (oneDNN) PyTorch forward")
    ap.add_argument("--no-check", action="store_true", help="skip the output agreement check")
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(ROOT, "build")),
                    help="build directory holding kdcam and kdc-genweights (default $BUILD or build)")
    a = ap.parse_args()

    runs = a.runs if a.runs else (4 if a.quick else 12)
    rounds = a.rounds if a.rounds else (1 if a.quick else 3)
    if runs < 1 or rounds < 1:
        sys.exit("peers: --runs and --rounds must be positive")
    rounds = min(rounds, runs)
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    archs = parse_list(a.archs, ARCHS, "archs") if a.archs else \
        (["resnet50", "mobilenetv1"] if a.quick else list(ARCHS))
    threads_list = [int(t) for t in parse_list(a.threads, None, "threads")]
    tasks = parse_list(a.tasks, ["forward", "guided", "gradcam"], "tasks")
    try:
        batches = [int(b) for b in a.batch.split(",")]
        assert batches and all(1 <= b <= 256 for b in batches)
    except (ValueError, AssertionError):
        sys.exit("peers: --batch: '%s' is not a list of batch sizes in 1..256" % a.batch)
    try:
        H, W = (int(v) for v in a.size.lower().split("x"))
        assert 32 <= H <= 4096 and 32 <= W <= 4096
    except (ValueError, AssertionError):
        sys.exit("peers: --size: '%s' is not HxW (32..4096)" % a.size)

    build = a.build if os.path.isabs(a.build) else os.path.join(os.getcwd(), a.build)
    if not os.path.isdir(build) and os.path.isdir(os.path.join(ROOT, a.build)):
        build = os.path.join(ROOT, a.build)
    kdcam = os.path.join(build, "kdcam")
    genw = os.path.join(build, "kdc-genweights")
    for b in (kdcam, genw):
        if not os.access(b, os.X_OK):
            sys.exit("peers: %s not found: run make first" % b)

    # peers
    notes = []
    torch_version = None
    if a.no_torch:
        notes.append("PyTorch: skipped (--no-torch)")
    else:
        try:
            import numpy  # noqa: F401
            import torch
            import torchvision  # noqa: F401
            torch_version = torch.__version__
        except ImportError as e:
            notes.append("PyTorch: not installed (%s): skipped; Debian: apt-get install "
                         "python3-torch python3-torchvision, run with /usr/bin/python3" % e)
    ort_ver = None
    node = os.environ.get("NODE", "node")
    if a.no_ort:
        notes.append("ONNX Runtime: skipped (--no-ort)")
    elif torch_version is None:
        notes.append("ONNX Runtime: skipped (the ONNX models are exported by PyTorch)")
    else:
        ort_ver, why = ort_version(node)
        if ort_ver is None:
            notes.append("ONNX Runtime: skipped: " + why)

    header = [
        "machine: %s; %s; Python %s" % (machine(), platform.platform(terse=True),
                                          platform.python_version()),
        "libkdcam: %s (commit %s)" % (kdcam, git_head()),
        "PyTorch: %s" % (("%s (BLAS: %s)" % (torch_version, blas_in_process()))
                         if torch_version else "-"),
        "ONNX Runtime: %s" % (("onnxruntime-node " + ort_ver) if ort_ver else "-"),
        "batch %s, %dx%d, fp32; %d timed runs per cell in %d interleaved round(s), 1 warm-up "
        "each; load average at start %.2f" % (",".join(map(str, batches)), H, W, runs, rounds,
                                              os.getloadavg()[0]),
    ]
    if not a.json:
        for h in header:
            print("# " + h)
        for n in notes:
            print("# note: " + n)
        sys.stdout.flush()
    else:
        for n in notes:
            note(n)

    rows = []
    tmp = tempfile.mkdtemp(prefix="kdcam-peers-")
    try:
        for arch in archs:
            for batch in batches:
                rows += bench_arch(arch, a, tmp, kdcam, genw, node, torch_version, ort_ver, tasks,
                                   threads_list, per_round, H, W, batch)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load_end = os.getloadavg()[0]
    if not a.json:
        print_table(rows)
        print("# load average at end %.2f" % load_end)
        print()
    for r in rows:
        print(json.dumps(r, sort_keys=False))
    if not a.json:  # the targets come last: `make bench` ends with them
        print_targets(rows)
    return 0


def bench_arch(arch, a, tmp, kdcam, genw, node, torch_version, ort_ver, tasks, threads_list,
               per_round, H, W, batch):
    import_np = torch_version is not None
    weights = os.path.join(tmp, arch + ".safetensors")
    if not os.path.exists(weights):
        subprocess.run([genw, arch, weights, str(WEIGHT_SEED), str(CLASSES)], check=True)
    size = "%dx%d" % (H, W)
    shape = (batch, 3, H, W)
    ts = None
    onnx_path = input_path = None
    check = {}
    if import_np:
        import numpy as np
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import kdcgen
        x = kdcgen.fill("input", batch * 3 * H * W, INPUT_SEED, 0.0, 2.0).reshape(shape)
        note("%s: loading the PyTorch model" % arch)
        ts = TorchSide(arch, weights, x)
        input_path = os.path.join(tmp, arch + ".input.f32")
        x.astype("<f4").tofile(input_path)
        if not a.no_torch_jit:
            note("%s: torch.jit.trace + freeze + optimize_for_inference" % arch)
            try:
                ts.build_jit()
            except Exception as e:  # noqa: BLE001 - report and go on without it
                note("%s: TorchScript failed: %s; PyTorch JIT skipped" % (arch, e))
                ts.jit = None
        if ort_ver:
            onnx_path = os.path.join(tmp, arch + ".onnx")
            note("%s: torch.onnx.export (opset 13)" % arch)
            try:
                ts.export_onnx(onnx_path)
            except Exception as e:  # noqa: BLE001 - report and go on without ORT
                note("%s: ONNX export failed: %s; ONNX Runtime skipped" % (arch, e))
                onnx_path = None
        if not a.no_check:
            ref = ts.logits()
            check["torch_top1"] = int(ref.argmax())
            scale = max(1e-30, float(np.abs(ref).max()))
            if ts.jit is not None:
                j = ts.jit_logits()
                check["torchjit_top1"] = int(j.argmax())
                check["torchjit_logit_err"] = float(np.abs(j - ref).max() / scale)
            npy = os.path.join(tmp, arch + ".input.npy")
            np.save(npy, x.astype("<f4"))
            p = subprocess.run([kdcam, "classify", "-m", arch, "-w", weights, "-k", "1", "--json",
                                "--input-npy", npy] + (["--kernels", a.kernels] if a.kernels else []),
                               capture_output=True, text=True)
            if p.returncode == 0:
                top = json.loads(p.stdout.splitlines()[0])["top"][0]
                check["kdcam_top1"] = top["class"]
                check["kdcam_top1_logit_err"] = abs(top["logit"] - float(ref[top["class"]])) / \
                    max(1e-30, float(np.abs(ref).max()))
            else:
                note("%s: kdcam classify failed: %s" % (arch, p.stderr.strip()))
            if onnx_path:
                try:
                    o = ort_bench(node, onnx_path, input_path, shape, 1, 1)
                    head = np.array(o["logits_head"], dtype=np.float64)
                    check["ort_top1"] = o["argmax"]
                    check["ort_logit_err"] = float(np.abs(head - ref[:len(head)]).max() /
                                                   max(1e-30, float(np.abs(ref).max())))
                except RuntimeError as e:
                    note("%s: ONNX Runtime failed: %s; skipped" % (arch, e))
                    onnx_path = None
            note("%s: check %s" % (arch, json.dumps(check)))

    rows = []
    for thr in threads_list:
        times = {(s, t): [] for s in SYSTEMS for t in tasks}
        kd_meta = {}
        for rnd, n in enumerate(per_round):
            for task in tasks:
                k = rnd % len(SYSTEMS)
                order = SYSTEMS[k:] + SYSTEMS[:k]
                for system in order:
                    if system == "kdcam":
                        j = kdcam_bench(kdcam, weights, arch, task, thr, n, size, a.kernels,
                                        batch)
                        times[(system, task)] += j["times_ms"]
                        kd_meta = {k: v for k, v in j.items() if k in ("kernels", "version")}
                    elif system == "torch" and ts is not None and task in ("forward", "guided"):
                        times[(system, task)] += ts.bench(task, thr, n)
                    elif system == "torchjit" and ts is not None and ts.jit is not None and \
                            task == "forward":
                        times[(system, task)] += ts.bench(task, thr, n, jit=True)
                    elif system == "ort" and onnx_path and task == "forward":
                        try:
                            j = ort_bench(node, onnx_path, input_path, shape, thr, n)
                            times[(system, task)] += j["times_ms"]
                        except RuntimeError as e:
                            note("%s: ONNX Runtime failed: %s" % (arch, e))
            note("%s, batch %d, %d thread(s): round %d/%d done" % (arch, batch, thr, rnd + 1,
                                                                   len(per_round)))
        for task in tasks:
            r = {"bench": "peers", "model": arch, "threads": thr, "task": task, "size": size,
                 "batch": batch, "runs": sum(per_round), "rounds": len(per_round)}
            for s in SYSTEMS:
                v = times[(s, task)]
                r[s + "_min_ms"] = round(min(v), 3) if v else None
                r[s + "_median_ms"] = round(median(v), 3) if v else None
                r[s + "_images_per_s"] = round(batch * 1e3 / median(v), 2) if v else None
            kd = r["kdcam_median_ms"]
            for s in SYSTEMS[1:]:
                r[s + "_over_kdcam"] = round(r[s + "_median_ms"] / kd, 3) \
                    if r[s + "_median_ms"] and kd else None
            r["kdcam_kernels"] = kd_meta.get("kernels")
            r["torch_version"] = torch_version
            r["ort_version"] = ("onnxruntime-node " + ort_ver) if (ort_ver and onnx_path) else None
            r["machine"] = machine()
            r["commit"] = git_head()
            r.update({k: v for k, v in check.items()})
            rows.append(r)
    return rows


def print_table(rows):
    print()
    print("%-11s %3s %3s %-7s %-6s|%17s %9s |%17s |%17s |%17s | %6s %6s %6s" %
          ("model", "bat", "thr", "task", "kern", "libkdcam min/med", "img/s", "PyTorch min/med",
           "PT JIT min/med", "ORT min/med", "PT/kd", "JIT/kd", "ORT/kd"))
    print("-" * 142)
    for r in rows:
        print("%-11s %3d %3d %-7s %-6s|%s /%s %s |%s /%s |%s /%s |%s /%s | %s %s %s" % (
            r["model"], r["batch"], r["threads"], r["task"], r["kdcam_kernels"] or "-",
            fmt(r["kdcam_min_ms"]), fmt(r["kdcam_median_ms"]), fmt(r["kdcam_images_per_s"], 9),
            fmt(r["torch_min_ms"]), fmt(r["torch_median_ms"]),
            fmt(r["torchjit_min_ms"]), fmt(r["torchjit_median_ms"]),
            fmt(r["ort_min_ms"]), fmt(r["ort_median_ms"]),
            fmt_ratio(r["torch_over_kdcam"]), fmt_ratio(r["torchjit_over_kdcam"]),
            fmt_ratio(r["ort_over_kdcam"])))
    print("(milliseconds per call of `batch` images; img/s: libkdcam images per second (median); "
          "PyTorch: eager, the guided row with autograd; PT JIT: frozen TorchScript + "
          "optimize_for_inference, oneDNN; ratios of medians, > 1: libkdcam faster)")


def print_targets(rows):
    """Issue 15's targets, each met, missed or not measured by this run."""
    by = {(r["model"], r["batch"], r["threads"], r["task"]): r for r in rows}
    out = []
    missing = set()

    def line(status, text):
        out.append("  [%s] %s" % (status, text))

    def need(key, what):
        r = by.get(key)
        if r is None and key not in missing:
            missing.add(key)
            line("n/a", "%s: not measured in this run (%s batch %d, %d thr, %s)"
                 % (what, key[0], key[1], key[2], key[3]))
        return r

    forward_cells = [(m, 1, t) for m in ARCHS for t in (1, 2)] + \
        [("resnet50", 8, 2), ("mobilenetv1", 8, 2)]
    for m, b, t in forward_cells:
        r = need((m, b, t, "forward"), "forward ORT/kd >= 1.0, JIT/kd >= 1.2")
        if r is None:
            continue
        for peer, goal, name in (("ort", 1.0, "ORT"), ("torchjit", 1.2, "PyTorch JIT")):
            v = r[peer + "_over_kdcam"]
            if v is None:
                line("n/a", "%s forward, batch %d, %d thr: %s/libkdcam not measured (peer "
                     "missing)" % (m, b, t, name))
            else:
                line("ok" if v >= goal else "MISS", "%s forward, batch %d, %d thr: %s/libkdcam "
                     "%.2f (>= %.1f)" % (m, b, t, name, v, goal))
    for m in ("resnet50", "mobilenetv1"):
        for t in sorted({k[2] for k in by if k[0] == m and k[1] == 1}) or [1, 2]:
            g = need((m, 1, t, "guided"), "guided <= 2.1 x forward")
            f = need((m, 1, t, "forward"), "guided <= 2.1 x forward")
            if g and f:
                x = g["kdcam_median_ms"] / f["kdcam_median_ms"]
                line("ok" if x <= 2.1 else "MISS", "%s guided, %d thr: %.2f x libkdcam forward "
                     "(<= 2.1)" % (m, t, x))
        g = need((m, 1, 2, "guided"), "guided >= 1.5x faster than PyTorch autograd")
        if g is not None:
            v = g["torch_over_kdcam"]
            if v is None:
                line("n/a", "%s guided, 2 thr: PyTorch not measured" % m)
            else:
                line("ok" if v >= 1.5 else "MISS", "%s guided, 2 thr: PyTorch autograd/libkdcam "
                     "%.2f (>= 1.5)" % (m, v))
    f1 = need(("resnet50", 1, 1, "forward"), "resnet50 2 thr / 1 thr >= 1.8")
    f2 = need(("resnet50", 1, 2, "forward"), "resnet50 2 thr / 1 thr >= 1.8")
    if f1 and f2:
        x = f1["kdcam_median_ms"] / f2["kdcam_median_ms"]
        line("ok" if x >= 1.8 else "MISS", "resnet50 forward: 2 threads %.2f x faster than 1 "
             "(>= 1.8; the issue asks for the median of three runs)" % x)
    line("n/a", "16 threads >= 10x 1 thread, none slower at 16 than at 8: needs a 16-core "
         "machine (kdcam bench -t 1..16; docs/performance.md)")
    line("n/a", "ResNet-152-FPN --grad peak RSS <= 1.15 x scalar: /usr/bin/time -v "
         "(docs/performance.md)")
    print()
    print("issue 15 targets (medians of this run; n/a: not measurable by this run):")
    for o in out:
        print(o)


if __name__ == "__main__":
    sys.exit(main())
