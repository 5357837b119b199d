#!/usr/bin/env python3
"""gen_pth_fixtures.py - PyTorch checkpoints (.pth) for tests/test_pth.c.

Run from the repository root with Debian's PyTorch (torch 1.13):
    /usr/bin/python3 tools/gen_pth_fixtures.py

Every file is written by torch.save (or, for the hostile ones and the ZIP64
variant, built byte by byte next to what torch.save writes), and each
loadable layout gets a safetensors twin converted by weights/convert.py, the
independent reference the C reader is compared with. Models are narrowed to
keep the files small: a KD-layout MobileNetV1 with 1/32 of the widths
(channels 8..32, 10 classes) and a torchvision-layout ResNet-50 with 1/64
(base width 1, 10 classes). Files (tests/fixtures/pth/):

  tv_resnet50.pth       torchvision: model.state_dict() (OrderedDict)
  timm_mbv1.pth         timm mobilenetv1_100 names, state dict at the top
  torchdistill.pth      {"model": sd, "optimizer": ..., "lr_scheduler": ...,
                        "best_value": .., "args": argparse.Namespace} (also DPK)
  ickd.pth              RepDistiller/ICKD: {"model": sd, "epoch": 240}
  mmcv.pth              mmdetection/mmpretrain/mmrazor: {"meta": {...},
                        "state_dict": sd with "module." (DataParallel), "optimizer"}
  fgd_student.pth       FGD's pth_transfer.py output: {"state_dict": student sd}
  distill_both.pth      a distiller's state dict: "student.*" (MobileNetV1) and
                        "teacher.*" (ResNet-50) in one dict, under "state_dict"
  nested_key.pth        {"ckpt": {"weights": sd}}: found only with key ckpt.weights
  fp16.pth, bf16.pth    float16 / bfloat16 storages
  views.pth             non-contiguous tensors (a transposed fc.weight, the
                        stem conv weight in channels_last) and tensors that share one
                        storage at offsets (fc.weight and fc.bias)
  params.pth            nn.Parameter values (torch._utils._rebuild_parameter)
  proto4.pth            pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL)
  legacy.pth            the pre-1.6 format (_use_new_zipfile_serialization=False)
  zip64.pth             tv_resnet50.pth rewritten with ZIP64 records
  meta_evil.pth         {"meta": <a call to os.system>, "state_dict": sd}: the
                        call is never made and is not on the way to a tensor
  tv_resnet50.safetensors, timm_mbv1.safetensors, fp16.safetensors,
  bf16.safetensors, distill_both.safetensors (--strip student.), and
  mbv1.safetensors: the twins made by convert.py. Every other layout holds
  the same MobileNetV1 state dict: its convert.py output is checked here to
  be byte-identical to mbv1.safetensors and not kept; zip64.pth pairs with
  tv_resnet50.safetensors, meta_evil.pth with mbv1.safetensors.

Hostile files (tests/fixtures/pth/hostile/), each must fail, naming the cause:
  os_system.pth         the checkpoint is a call to os.system (posix.system)
  eval_reduce.pth       a state-dict entry is REDUCE of builtins.eval
  zip_bomb.pth          data/0 deflated: 64 MiB of zeros in 64 KiB
  short_storage.pth     data/0 shorter than the tensor needs
  deep.pth              5,000 nested lists (the limit is 100)
  view_past_end.pth     a tensor view that reaches past its storage
  expand.pth            torch.ones(1).expand(2**20): a 4 MiB strided view of a
                        4-byte storage, more than the file's size allows to copy
Seeds for the fuzz target tests/fuzz/fuzz_pth.c (tests/fuzz/corpus/pth/):
small torch.save files of every layout above, plus three hostile files.
Each hostile call would create the file kdcam_pwned in the current
directory; the tests check it never appears.
"""
import argparse
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib

import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdtrain  # noqa: E402  (the KD MobileNetV1 at a width multiplier)
OUT = os.path.join("tests", "fixtures", "pth")
HOSTILE = os.path.join(OUT, "hostile")
CORPUS = os.path.join("tests", "fuzz", "corpus", "pth")
PWNED = "touch kdcam_pwned"


def mobilenetv1():
    """The KD MobileNetV1 layout (model.N.M) of tools/kdtrain.py, widths
    divided by 32 (at least 8 channels), 10 classes."""
    return kdtrain.MobileNetV1KD(mult=1 / 32, num_classes=10)


def tiny_resnet50(classes=10):
    import torchvision
    from torchvision.models.resnet import Bottleneck, ResNet

    class Narrow(Bottleneck):
        pass

    m = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=classes)
    # base width 1 instead of 64: rebuild the stem and stages at 1/64
    m.inplanes = 1
    m.conv1 = nn.Conv2d(3, 1, 7, 2, 3, bias=False)
    m.bn1 = nn.BatchNorm2d(1)
    m.layer1 = m._make_layer(Bottleneck, 1, 3)
    m.layer2 = m._make_layer(Bottleneck, 2, 4, stride=2)
    m.layer3 = m._make_layer(Bottleneck, 4, 6, stride=2)
    m.layer4 = m._make_layer(Bottleneck, 8, 3, stride=2)
    m.fc = nn.Linear(32, classes)
    del torchvision
    return m


def randomize(model, seed):
    """Random weights and BN statistics, so that every tensor matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif name.endswith("bn1.weight") or ".bn" in name or name.endswith(".1.weight"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_((torch.rand(t.shape, generator=g) - 0.5) * 0.6)
            else:
                t.fill_(7)
    return model.eval()


TIMM_STAGES = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4),
               (3, 5), (4, 0), (4, 1)]


def kd_to_timm(sd):
    out = collections.OrderedDict()
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "fc":
            out["classifier." + p[1]] = v
            continue
        i, j, field = int(p[1]), p[2], p[3]
        if i == 0:
            out[("conv_stem." if j == "0" else "bn1.") + field] = v
            continue
        s, b = TIMM_STAGES[i - 1]
        sub = {"0": "conv_dw", "1": "bn1", "3": "conv_pw", "4": "bn2"}[j]
        out["blocks.%d.%d.%s.%s" % (s, b, sub, field)] = v
    return out


class Evil:
    """Pickles as a call to os.system (never made by kdcam)."""

    def __reduce__(self):
        return (os.system, (PWNED,))


class EvalCall:
    def __reduce__(self):
        return (eval, ("__import__('os').system(%r)" % PWNED,))


def save(obj, name, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path, **kw)
    return path


def twin(name, *args, same_as=None):
    """Converts OUT/name with weights/convert.py. With same_as, the result
    must be byte-identical to that twin and is not kept (the tests pair the
    checkpoint with that twin), which keeps the fixtures small."""
    src = os.path.join(OUT, name)
    dst = src[:-4] + ".safetensors"
    subprocess.run([sys.executable, "weights/convert.py", "--force", src, dst] + list(args),
                   check=True, stdout=subprocess.DEVNULL)
    if same_as:
        with open(dst, "rb") as a, open(os.path.join(OUT, same_as), "rb") as b:
            assert a.read() == b.read(), (name, same_as)
        os.remove(dst)


def torch_zip_entries(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries, deflate=()):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n, b in entries:
            z.writestr(zipfile.ZipInfo(n), b,
                       compress_type=zipfile.ZIP_DEFLATED if n in deflate else zipfile.ZIP_STORED)


def to_zip64(data):
    """Rewrites a stored zip with ZIP64 records: every central directory
    entry's sizes and offset are 0xFFFFFFFF with a ZIP64 extra field, and a
    ZIP64 end record and locator precede the classic end record."""
    eocd = data.rfind(b"PK\x05\x06")
    count, cd_size, cd_off = struct.unpack("<HII", data[eocd + 10:eocd + 20])
    out_cd = b""
    p = cd_off
    for _ in range(count):
        f = list(struct.unpack("<4s6H3I5H2I", data[p:p + 46]))
        nlen, xlen, clen = f[10], f[11], f[12]
        name = data[p + 46:p + 46 + nlen]
        csize, usize, off = f[8], f[9], f[16]
        extra = struct.pack("<HHQQQ", 1, 24, usize, csize, off)
        f[8] = f[9] = f[16] = 0xFFFFFFFF
        f[11] = len(extra)
        out_cd += struct.pack("<4s6H3I5H2I", *f) + name + extra
        p += 46 + nlen + xlen + clen
    body = data[:cd_off]
    new_cd_off = len(body)
    eocd64_off = new_cd_off + len(out_cd)
    eocd64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                         len(out_cd), new_cd_off)
    loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64_off, 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + out_cd + eocd64 + loc + end


def main():
    ap = argparse.ArgumentParser()
    ap.parse_args()
    os.makedirs(HOSTILE, exist_ok=True)
    torch.manual_seed(0)
    mb = randomize(mobilenetv1(), 16)
    rn = randomize(tiny_resnet50(), 50)
    sd = mb.state_dict()
    rsd = rn.state_dict()

    save(rsd, "tv_resnet50.pth")
    twin("tv_resnet50.pth")
    save(kd_to_timm(sd), "timm_mbv1.pth")
    twin("timm_mbv1.pth")

    opt = torch.optim.SGD(mb.parameters(), lr=0.1, momentum=0.9)
    mb(torch.randn(2, 3, 64, 64)).sum().backward()
    opt.step()
    mb.eval()
    sd = mb.state_dict()  # after one step, as a real checkpoint
    sched = torch.optim.lr_scheduler.StepLR(opt, 30)
    save({"model": sd, "epoch": 240}, "ickd.pth")
    twin("ickd.pth")
    os.rename(os.path.join(OUT, "ickd.safetensors"), os.path.join(OUT, "mbv1.safetensors"))
    save({"model": sd, "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
          "best_value": 0.71, "epoch": 3,
          "args": argparse.Namespace(lr=0.1, arch="mobilenetv1")}, "torchdistill.pth")
    twin("torchdistill.pth", same_as="mbv1.safetensors")
    msd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    save({"meta": {"mmcv_version": "1.7.0", "epoch": 12, "CLASSES": ("a", "b"),
                   "config": "model = dict(type='ImageClassifier')"},
          "state_dict": msd, "optimizer": opt.state_dict()}, "mmcv.pth")
    twin("mmcv.pth", same_as="mbv1.safetensors")
    save({"meta": {"epoch": 24}, "state_dict": sd}, "fgd_student.pth")
    twin("fgd_student.pth", same_as="mbv1.safetensors")
    both = collections.OrderedDict()
    for k, v in sd.items():
        both["student." + k] = v
    for k, v in rsd.items():
        both["teacher." + k] = v
    save({"state_dict": both, "meta": {"epoch": 1}}, "distill_both.pth")
    twin("distill_both.pth", "--strip", "student.")
    save({"ckpt": {"weights": sd}, "note": "key test"}, "nested_key.pth")
    twin("nested_key.pth", "--key", "ckpt", same_as="mbv1.safetensors")

    save(collections.OrderedDict((k, v.half() if v.is_floating_point() else v)
                                 for k, v in sd.items()), "fp16.pth")
    twin("fp16.pth")
    save(collections.OrderedDict((k, v.bfloat16() if v.is_floating_point() else v)
                                 for k, v in sd.items()), "bf16.pth")
    twin("bf16.pth")

    views = collections.OrderedDict(sd)
    w, b = sd["fc.weight"], sd["fc.bias"]
    views["model.0.0.weight"] = sd["model.0.0.weight"].contiguous(
        memory_format=torch.channels_last)
    buf = torch.cat([b, w.t().contiguous().flatten()])
    views["fc.bias"] = buf[:b.numel()]
    views["fc.weight"] = buf[b.numel():].view(w.shape[1], w.shape[0]).t()
    assert not views["fc.weight"].is_contiguous()
    assert not views["model.0.0.weight"].is_contiguous()
    assert views["fc.weight"].storage().data_ptr() == views["fc.bias"].storage().data_ptr()
    save(views, "views.pth")
    twin("views.pth", same_as="mbv1.safetensors")

    save(collections.OrderedDict((k, nn.Parameter(v, requires_grad=v.is_floating_point()))
                                 for k, v in sd.items()), "params.pth")
    twin("params.pth", same_as="mbv1.safetensors")
    save(sd, "proto4.pth", pickle_protocol=4)
    twin("proto4.pth", same_as="mbv1.safetensors")
    save({"state_dict": sd}, "legacy.pth", _use_new_zipfile_serialization=False)
    twin("legacy.pth", same_as="mbv1.safetensors")
    with open(os.path.join(OUT, "tv_resnet50.pth"), "rb") as f:
        z64 = to_zip64(f.read())
    with open(os.path.join(OUT, "zip64.pth"), "wb") as f:
        f.write(z64)
    save({"meta": Evil(), "state_dict": sd}, "meta_evil.pth")

    # --- hostile files -------------------------------------------------
    torch.save(Evil(), os.path.join(HOSTILE, "os_system.pth"))
    bad = collections.OrderedDict(sd)
    bad["fc.weight"] = EvalCall()
    torch.save({"state_dict": bad}, os.path.join(HOSTILE, "eval_reduce.pth"))

    small = os.path.join(HOSTILE, "_small.pth")
    torch.save({"w": torch.arange(100, dtype=torch.float32)}, small)
    ents = torch_zip_entries(small)
    os.remove(small)
    bomb = [(n, (b"\0" * (64 << 20)) if n.endswith("/data/0") else b) for n, b in ents]
    write_zip(os.path.join(HOSTILE, "zip_bomb.pth"), bomb,
              deflate={n for n, _ in ents if n.endswith("/data/0")})
    short = [(n, b[:40] if n.endswith("/data/0") else b) for n, b in ents]
    write_zip(os.path.join(HOSTILE, "short_storage.pth"), short)
    root = ents[0][0].split("/")[0]
    deep = b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b"."
    write_zip(os.path.join(HOSTILE, "deep.pth"),
              [(root + "/data.pkl", deep), (root + "/version", b"3\n")])
    # a view of 100 elements at offset 50 of a 100-element storage
    pkl = dict(ents)[root + "/data.pkl"]
    t = torch.arange(100, dtype=torch.float32)
    view = torch.empty(0).set_(t.storage(), 0, (100,), (1,))
    buf = io.BytesIO()
    torch.save({"w": view}, buf)
    assert pkl  # the pickle of the small file, edited below
    # storage offset 0 -> 50 (BININT1 0 right after the persistent id's BINPERSID)
    i = pkl.find(b"Q")
    assert pkl[i + 1:i + 3] in (b"K\x00",), pkl[i:i + 8]
    bad_pkl = pkl[:i + 1] + b"K\x32" + pkl[i + 3:]
    write_zip(os.path.join(HOSTILE, "view_past_end.pth"),
              [(n, bad_pkl if n.endswith("data.pkl") else b) for n, b in ents])
    # --- fuzzing seeds (tests/fuzz/corpus/pth): small, every layout ----
    os.makedirs(CORPUS, exist_ok=True)
    a = torch.arange(12, dtype=torch.float32).view(3, 4)
    tiny = collections.OrderedDict([("w", a), ("wt", a.t()), ("b", a[1]),
                                    ("h", a.half()), ("bf", a.bfloat16()),
                                    ("n", torch.tensor(3)), ("e", torch.zeros(0, 2))])
    for name, obj, kw in [
            ("sd.pth", tiny, {}),
            ("model.pth", {"model": tiny, "epoch": 3, "meta": {"x": (1, 2.5, None, True)}}, {}),
            ("params.pth", {"state_dict": collections.OrderedDict(
                (k, nn.Parameter(v, requires_grad=False)) for k, v in tiny.items())}, {}),
            ("proto4.pth", tiny, {"pickle_protocol": 4}),
            ("legacy.pth", {"model": tiny}, {"_use_new_zipfile_serialization": False}),
            ("opaque.pth", {"args": argparse.Namespace(a=1), "model": tiny}, {})]:
        torch.save(obj, os.path.join(CORPUS, name), **kw)
    with open(os.path.join(CORPUS, "sd.pth"), "rb") as f:
        z = to_zip64(f.read())
    with open(os.path.join(CORPUS, "zip64.pth"), "wb") as f:
        f.write(z)
    for n in ("os_system.pth", "short_storage.pth", "view_past_end.pth"):
        with open(os.path.join(HOSTILE, n), "rb") as f, open(os.path.join(CORPUS, n), "wb") as g:
            g.write(f.read())

    # a stride-0 expansion: 4 MB of float32 from a 4-byte storage
    torch.save({"w": torch.ones(1).expand(1 << 20)}, os.path.join(HOSTILE, "expand.pth"))

    for d in (OUT, HOSTILE, CORPUS):
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(p):
                print("%8d %s" % (os.path.getsize(p), p))


if __name__ == "__main__":
    main()
