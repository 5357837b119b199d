#!/usr/bin/python3
"""Writes the fuzz seed corpora (tests/fuzz/corpus/NAME/) and the tiny
model the hostile-file suite starts from. Small, valid files of every
layout the readers accept; libFuzzer mutates them from there. Deterministic
(fixed seeds, fixed encoder settings): run it again and nothing changes.

    /usr/bin/python3 tools/gen_fuzz_corpus.py
"""
import io
import json
import os
import struct

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz", "corpus")


def out(name, fname, data):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype string, numpy array of that dtype)."""
    hdr = {}
    if meta is not None:
        hdr["__metadata__"] = meta
    off, blobs = 0, []
    for name, dt, a in tensors:
        b = np.ascontiguousarray(a).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def tiny_mobilenet(preprocess="resize=64 crop=56x56", width=4, classes=3):
    """A valid MobileNetV1 (KD layout) of width 4 and 3 classes: 15 KB."""
    rng = np.random.default_rng(0)
    t = []

    def f32(name, a):
        t.append((name, "F32", np.asarray(a, dtype="<f4")))

    def bn(p, c):
        f32(p + ".weight", np.ones(c))
        f32(p + ".bias", np.zeros(c))
        f32(p + ".running_mean", np.zeros(c))
        f32(p + ".running_var", np.ones(c))

    c = width
    f32("model.0.0.weight", rng.standard_normal((c, 3, 3, 3)))
    bn("model.0.1", c)
    for i in range(1, 14):
        f32(f"model.{i}.0.weight", rng.standard_normal((c, 1, 3, 3)))
        bn(f"model.{i}.1", c)
        f32(f"model.{i}.3.weight", rng.standard_normal((c, c, 1, 1)))
        bn(f"model.{i}.4", c)
    f32("fc.weight", rng.standard_normal((classes, c)))
    f32("fc.bias", np.zeros(classes))
    names = ",".join("abcdefghij"[i] for i in range(classes))
    return safetensors(t, {"kdcam.preprocess": preprocess, "kdcam.classes": names})


def npy(a, fortran=False, version=1):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=(version, 0), allow_pickle=False)
    return buf.getvalue()


def image(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def main():
    rng = np.random.default_rng(18)
    # safetensors + model load
    out("safetensors", "tiny_mobilenet.safetensors", tiny_mobilenet())
    out("safetensors", "empty.safetensors", safetensors([]))
    out("safetensors", "dtypes.safetensors", safetensors([
        ("a", "F32", np.arange(6, dtype="<f4").reshape(2, 3)),
        ("b", "F16", np.arange(4, dtype="<f2")),
        ("c", "BF16", np.arange(4, dtype="<u2")),
        ("d", "I64", np.zeros((), dtype="<i8")),
        ("e", "F64", np.ones(2, dtype="<f8")),
        ("f", "U8", np.ones((0, 3), dtype="u1")),
    ], {"format": "pt"}))
    out("safetensors", "escapes.safetensors",
        safetensors([("x\u00e9\\\"y", "F32", np.ones(1, dtype="<f4"))], {"k": "v\u2603"}))
    # .npy
    x = rng.standard_normal((1, 3, 8, 8)).astype("<f4")
    out("npy", "f32.npy", npy(x))
    out("npy", "f16.npy", npy(x.astype("<f2")))
    out("npy", "f64_v2.npy", npy(x.astype("<f8"), version=2))
    out("npy", "chw.npy", npy(x[0]))
    out("npy", "scalar.npy", npy(np.float32(1.5)))
    # images: every layout the decoders take
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    out("image", "baseline.jpg", image(rgb, "JPEG", quality=90))
    out("image", "progressive.jpg", image(rgb, "JPEG", quality=75, progressive=True))
    out("image", "gray.jpg", image(rgb.convert("L"), "JPEG", quality=80))
    out("image", "s444.jpg", image(rgb, "JPEG", quality=80, subsampling=0))
    out("image", "optimized.jpg", image(rgb, "JPEG", quality=50, optimize=True))
    out("image", "rgb.png", image(rgb, "PNG"))
    out("image", "rgba_interlaced.png", image(rgb.convert("RGBA"), "PNG", interlace=1))
    out("image", "palette.png", image(rgb.convert("P"), "PNG"))
    out("image", "gray16.png", image(Image.fromarray(
        rng.integers(0, 65536, (5, 7), dtype=np.uint16), "I;16"), "PNG"))
    out("image", "rgb24.bmp", image(rgb, "BMP"))
    out("image", "palette8.bmp", image(rgb.convert("P"), "BMP"))
    out("image", "gray.bmp", image(rgb.convert("L"), "BMP"))
    # metadata strings: preprocess NUL classes
    out("metadata", "full", b"resize=256 crop=224x224 mean=0.485,0.456,0.406 "
        b"std=0.229,0.224,0.225\0cat,dog,bird")
    out("metadata", "timm", b"resize=235 mean=0.5,0.5,0.5 std=0.5,0.5,0.5\0a")
    out("metadata", "crop", b"crop=160x192\0x,y")
    # labels.json as `kdcam shapes` writes it
    out("labels", "labels.json", json.dumps({
        "classes": ["circle", "square", "heart"],
        "images": [{"file": "000000.png", "class": 1, "box": [10, 12, 80, 90]},
                   {"file": "000001.png", "class": 2, "box": [0, 0, 191, 191]}],
    }, indent=1).encode())
    out("labels", "escapes.json", b'{"a":[1,-2.5e3,true,false,null,"\\u00e9\\ud83d\\ude00\\n"]}')


if __name__ == "__main__":
    main()
