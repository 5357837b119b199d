#!/usr/bin/python3
"""Writes the JPEG fixtures under tests/fixtures/jpeg/ that tests/test_jpeg.c
compares libkdcam's JPEG decoding (libjpeg-turbo, lib/io/jpeg.c) against.

Run from the repository root with the system Python (PIL, torchvision,
NumPy, PyTorch) and libjpeg-turbo's cjpeg on PATH; the `python3` of a pyenv
without torch will not do:
    /usr/bin/python3 tools/gen_jpeg_fixtures.py

The JPEG files are small crops of examples/images/*.png at odd sizes, made
three ways so that the test does not only see Pillow's encoder settings:
  pil_*     Pillow's encoder: qualities 50-95, 4:2:0 / 4:2:2 / 4:4:4,
            progressive, grayscale (mode L) and CMYK (Pillow writes it
            Adobe-inverted, with an Adobe marker)
  cjpeg_*   libjpeg-turbo's cjpeg (from a PPM/PGM): 4:2:0 / 4:4:4,
            progressive, grayscale, arithmetic coding, restart markers,
            RGB (not YCbCr) colour space
  tj_*      libjpeg-turbo's TurboJPEG API through ctypes: a CMYK source,
            which TurboJPEG writes as YCCK
For each NAME.jpg the references are:
  NAME_pil.png   Image.open(NAME.jpg).convert("RGB"), lossless
  NAME_crop.png  torchvision Compose([Resize(256), CenterCrop(224)]) of that
                 image (uint8). ToTensor + Normalize(ImageNet mean, std) of
                 it is, in float32, exactly ((v / 255) - mean) / std computed
                 in float32: this script checks that against torchvision for
                 every fixture, so the C test can rebuild torchvision's input
                 tensor bit for bit from the PNG instead of storing 600 KB of
                 float32 per image.
  hostile_600_scans.jpg
                 not in refs.txt: an 8x8 sequential file with one scan per
                 component (cjpeg -scans) whose first scan is repeated 600
                 times. libjpeg and Pillow decode it (this script checks:
                 the pixels are the original's); libkdcam refuses more than
                 500 scans, as djpeg -maxscans 500 does, because a hostile
                 file can make the decoder work once per scan.
  refs.txt       one line per fixture, in batch order: NAME.jpg followed by
                 the 10 logits (%.17g) of PyTorch's KD MobileNetV1
                 (tools/gen_fixtures.py's model, seeded weights kdcgen
                 "mobilenetv1", seed 1001, 10 classes) in float64 on the
                 batch of torchvision tensors. Header lines start with '#'.

Deterministic: fixed crops and settings, and the same libjpeg-turbo and
Pillow give the same bytes.
"""
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures  # noqa: E402  (the KD MobileNetV1 and its seeded weights)

OUT = "tests/fixtures/jpeg"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
MODEL = ("mobilenetv1", 1001, 10)  # scheme, weights seed, classes


def path(name):
    return os.path.join(OUT, name)


def source(img, box, size):
    """A crop of an example photo, resized to size (w, h)."""
    src = Image.open("examples/images/%s.png" % img).convert("RGB")
    return src.crop(box).resize(size, Image.BICUBIC)


def pil_jpeg(name, im, **kw):
    im.save(path(name), format="JPEG", **kw)


def cjpeg(name, im, *args):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "src.ppm" if im.mode == "RGB" else "src.pgm")
        im.save(src)
        subprocess.run(["cjpeg", *args, "-outfile", path(name), src], check=True)


def tj_cmyk(name, im, quality):
    """CMYK pixels with black (K = 255 - max(r, g, b), C = (255 - r - K) / (1 -
    K/255) ...) stored Adobe-inverted, as Photoshop writes them and Pillow
    reads every 4-component JPEG, compressed by TurboJPEG, which writes CMYK
    sources as YCCK with 4:2:0 chroma."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int,
                               ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
                               ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int,
                               ctypes.c_int]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rgb = np.asarray(im).astype(np.float64)
    k = 255 - rgb.max(axis=2)
    den = np.maximum(255 - k, 1)[..., None]
    cmy = (255 - rgb - k[..., None]) * 255 / den
    cmyk = np.clip(np.rint(np.dstack([cmy, k])), 0, 255).astype(np.uint8)
    cmyk = np.ascontiguousarray(255 - cmyk)  # Adobe-inverted
    h, w = cmyk.shape[:2]
    handle = tj.tjInitCompress()
    out = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    rc = tj.tjCompress2(handle, cmyk.tobytes(), w, w * 4, h, TJPF_CMYK, ctypes.byref(out),
                        ctypes.byref(size), TJSAMP_420, quality, 0)
    assert rc == 0, "tjCompress2 failed"
    data = ctypes.string_at(out, size.value)
    tj.tjFree(out)
    tj.tjDestroy(handle)
    with open(path(name), "wb") as f:
        f.write(data)


def make_jpegs():
    """(name, description) of every fixture, in batch order."""
    cat = lambda size: source("chelsea", (60, 20, 360, 260), size)  # noqa: E731
    cup = lambda size: source("coffee", (100, 40, 420, 300), size)  # noqa: E731
    fx = []

    def add(name, desc):
        fx.append((name, desc))

    pil_jpeg("pil_q50_420_97x73.jpg", cat((97, 73)), quality=50, subsampling=2)
    add("pil_q50_420_97x73.jpg", "PIL q50 4:2:0")
    pil_jpeg("pil_q75_420_301x227.jpg", cup((301, 227)), quality=75, subsampling=2)
    add("pil_q75_420_301x227.jpg", "PIL q75 4:2:0, downscaled by Resize(256)")
    pil_jpeg("pil_q90_444_64x61.jpg", cup((64, 61)), quality=90, subsampling=0)
    add("pil_q90_444_64x61.jpg", "PIL q90 4:4:4")
    pil_jpeg("pil_q95_422_55x83.jpg", cat((55, 83)), quality=95, subsampling=1)
    add("pil_q95_422_55x83.jpg", "PIL q95 4:2:2")
    pil_jpeg("pil_q85_prog_99x66.jpg", cup((99, 66)), quality=85, progressive=True)
    add("pil_q85_prog_99x66.jpg", "PIL q85 progressive 4:2:0")
    pil_jpeg("pil_q80_gray_47x53.jpg", cat((47, 53)).convert("L"), quality=80)
    add("pil_q80_gray_47x53.jpg", "PIL q80 grayscale")
    pil_jpeg("pil_q90_cmyk_61x45.jpg", cup((61, 45)).convert("CMYK"), quality=90)
    add("pil_q90_cmyk_61x45.jpg", "PIL q90 CMYK (Adobe, inverted)")
    pil_jpeg("pil_q60_420_17x9.jpg", cat((17, 9)), quality=60, subsampling=2)
    add("pil_q60_420_17x9.jpg", "PIL q60 4:2:0, tiny (partial MCUs both ways)")

    cjpeg("cjpeg_q50_420_97x73.jpg", cup((97, 73)), "-quality", "50", "-sample", "2x2")
    add("cjpeg_q50_420_97x73.jpg", "cjpeg q50 4:2:0")
    cjpeg("cjpeg_q95_444_89x67.jpg", cat((89, 67)), "-quality", "95", "-sample", "1x1")
    add("cjpeg_q95_444_89x67.jpg", "cjpeg q95 4:4:4")
    cjpeg("cjpeg_q75_prog_71x59.jpg", cup((71, 59)), "-quality", "75", "-progressive")
    add("cjpeg_q75_prog_71x59.jpg", "cjpeg q75 progressive 4:2:0")
    cjpeg("cjpeg_q80_gray_45x39.jpg", cat((45, 39)).convert("L"), "-quality", "80")
    add("cjpeg_q80_gray_45x39.jpg", "cjpeg q80 grayscale")
    cjpeg("cjpeg_q70_arith_63x49.jpg", cat((63, 49)), "-quality", "70", "-arithmetic")
    add("cjpeg_q70_arith_63x49.jpg", "cjpeg q70 arithmetic coding 4:2:0")
    cjpeg("cjpeg_q85_restart_77x51.jpg", cup((77, 51)), "-quality", "85", "-restart", "1",
          "-optimize")
    add("cjpeg_q85_restart_77x51.jpg", "cjpeg q85 restart every MCU row, optimised Huffman")
    cjpeg("cjpeg_q90_rgb_51x37.jpg", cat((51, 37)), "-quality", "90", "-rgb")
    add("cjpeg_q90_rgb_51x37.jpg", "cjpeg q90 RGB colour space (Adobe transform 0)")

    tj_cmyk("tj_q85_ycck_57x43.jpg", cat((57, 43)), 85)
    add("tj_q85_ycck_57x43.jpg", "TurboJPEG q85 YCCK 4:2:0")
    return fx


def many_scans(name, n):
    """A valid JPEG with n + 3 scans: the first of three non-interleaved
    sequential scans repeated n times (each repeat decodes the same data)."""
    im = Image.fromarray((np.arange(8 * 8 * 3).reshape(8, 8, 3) * 5 % 251).astype(np.uint8))
    with tempfile.TemporaryDirectory() as d:
        src, script, out = (os.path.join(d, f) for f in ("s.ppm", "s.txt", "s.jpg"))
        im.save(src)
        with open(script, "w") as f:
            f.write("0;\n1;\n2;\n")
        subprocess.run(["cjpeg", "-quality", "90", "-scans", script, "-outfile", out, src],
                       check=True)
        with open(out, "rb") as f:
            data = f.read()
    sos = data.find(b"\xff\xda")
    end = sos + 2
    while not (data[end] == 0xFF and data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7):
        end += 1  # the end of the scan's entropy-coded data
    data = data[:sos] + data[sos:end] * n + data[sos:]
    with open(path(name), "wb") as f:
        f.write(data)
    with tempfile.TemporaryDirectory() as d:
        one = os.path.join(d, "one.jpg")
        with open(one, "wb") as f:
            f.write(data[:sos] + data[sos + (end - sos) * n:])
        a = np.asarray(Image.open(path(name)).convert("RGB"))
        b = np.asarray(Image.open(one).convert("RGB"))
    assert np.array_equal(a, b), "PIL does not decode the many-scans file as the original"


def main():
    os.makedirs(OUT, exist_ok=True)
    fx = make_jpegs()
    many_scans("hostile_600_scans.jpg", 600)
    crop = T.Compose([T.Resize(256), T.CenterCrop(224)])
    norm = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    m32 = np.array(MEAN, np.float32)[:, None, None]
    s32 = np.array(STD, np.float32)[:, None, None]
    xs = []
    for name, desc in fx:
        im = Image.open(path(name))
        kind = {1: "L", 3: "RGB", 4: "CMYK"}[len(im.getbands())]
        print("%-30s %-4s %s" % (name, kind, desc))
        rgb = im.convert("RGB")
        rgb.save(path(name[:-4] + "_pil.png"), optimize=True)
        c = crop(rgb)
        c.save(path(name[:-4] + "_crop.png"), optimize=True)
        x = norm(c).numpy()
        # the float32 formula the C test uses, against torchvision's tensor
        u8 = np.asarray(c).transpose(2, 0, 1).astype(np.float32)
        want = (u8 / np.float32(255) - m32) / s32
        assert want.dtype == np.float32
        assert np.array_equal(x, want), name + ": torchvision's tensor is not the formula"
        xs.append(x)

    scheme, seed, classes = MODEL
    model, _ = gen_fixtures.build(scheme, seed, classes)
    xb = torch.from_numpy(np.stack(xs))
    torch.set_num_threads(1)
    with torch.no_grad():
        y64 = model.double()(xb.double()).numpy()
        y32 = model.float()(xb).numpy()
    rel32 = np.linalg.norm(y32 - y64) / np.linalg.norm(y64)
    with open(path("refs.txt"), "w") as f:
        f.write("# tools/gen_jpeg_fixtures.py: NAME.jpg and PyTorch float64 logits of the KD\n")
        f.write("# MobileNetV1 (%s, seed %d, %d classes) on torchvision's tensors\n" % MODEL)
        f.write("# float32 PyTorch vs float64: relative L2 %.3g\n" % rel32)
        for (name, _), y in zip(fx, y64):
            f.write(name + "".join(" %.17g" % v for v in y) + "\n")
    print("float32 PyTorch vs float64 logits: relative L2 %.3g" % rel32)


if __name__ == "__main__":
    main()
