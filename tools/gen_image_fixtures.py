#!/usr/bin/python3
"""Writes the image and .npy fixtures under tests/fixtures/ that
tests/test_image.c and tests/test_npy.c compare against.

Run from the repository root with the system Python (PIL, torchvision,
NumPy); the `python3` of a pyenv without torch will not do:
    /usr/bin/python3 tools/gen_image_fixtures.py

Everything is deterministic (fixed seeds). Reference images are stored as
PNG (lossless), which keeps the directory small (< 400 KB).

Files
  chelsea_norm224_f16.npy  torchvision Compose([Resize(256), CenterCrop(224),
                           ToTensor(), Normalize(ImageNet mean, std)]) of
                           examples/images/chelsea.png, 1x3x224x224, stored
                           as float16 ('<f2'): float32 would be 602 KB. The
                           224x224 uint8 crop is recovered from it exactly
                           (round((x * std + mean) * 255)), the script checks.
  coffee_r256_c224.png     Resize(256) + CenterCrop(224) of coffee.png (uint8)
  synth_src.png            32x24 seeded synthetic RGB image
  synth_up.png             synth_src resized to 75x53 (PIL BILINEAR, upscale)
  synth_mixed.png          synth_src resized to 13x49 (down in x, up in y)
  synth_big.png            80x60 seeded synthetic RGB image
  synth_down.png           synth_big resized to 9x5 (strong downscale)
  gray.png, gray_alpha.png, rgba.png, palette.png, gray16.png
                           odd PNG modes; *_rgb.png are PIL's convert("RGB")
  photo.jpg, photo_pil.png a small JPEG and PIL's (libjpeg) decoding of it
  truncated.png, truncated.jpg, truncated.bmp
                           the first two thirds of a valid file
  corrupt.png              seeded random bytes
  empty.png                zero bytes
  np_f32.npy               arange(24).reshape(2,3,4) float32, NumPy-written
  np_f32_v2.npy            the same, format version 2.0
  np_f64.npy, np_f16.npy   3x5 float64 / float16 (converted on load)
  np_scalar.npy            0-d float32 (3.5)
  np_fortran.npy           2x3 float32, fortran_order True (rejected)
  np_bigendian.npy         2x3 '>f4' (rejected)
  np_int.npy               2x3 int32 (rejected)
"""
import io
import os

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

OUT = "tests/fixtures"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def path(name):
    return os.path.join(OUT, name)


def save_png(im, name):
    im.save(path(name), optimize=True)


def synthetic(w, h, seed, noise=6.0):
    """Smooth gradients plus seeded noise and a few hard edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / w * 6.3 + 0.4)
    g = 255 * (y / max(h - 1, 1))
    b = np.where((x.astype(int) // 7 + y.astype(int) // 5) % 2 == 0, 230.0, 20.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, noise, (h, w, 3))
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def imagenet_fixtures():
    crop = T.Compose([T.Resize(256), T.CenterCrop(224)])
    norm = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])

    chelsea = Image.open("examples/images/chelsea.png").convert("RGB")
    c = crop(chelsea)
    x = norm(c).unsqueeze(0).numpy().astype(np.float32)
    x16 = x.astype(np.float16)
    # The test recovers the uint8 crop from the float16 tensor; make sure
    # that is exact.
    m = np.array(MEAN, np.float64)[None, :, None, None]
    s = np.array(STD, np.float64)[None, :, None, None]
    u8 = np.rint((x16.astype(np.float64) * s + m) * 255)
    ref = np.asarray(c).transpose(2, 0, 1)[None].astype(np.float64)
    assert np.array_equal(u8, ref), "float16 tensor does not recover the crop"
    np.save(path("chelsea_norm224_f16.npy"), x16)

    coffee = Image.open("examples/images/coffee.png").convert("RGB")
    save_png(crop(coffee), "coffee_r256_c224.png")


def resize_fixtures():
    src = synthetic(32, 24, 1)
    save_png(src, "synth_src.png")
    save_png(src.resize((75, 53), Image.BILINEAR), "synth_up.png")
    save_png(src.resize((13, 49), Image.BILINEAR), "synth_mixed.png")
    big = synthetic(80, 60, 2, noise=0.0)  # no noise: keeps the PNG small
    save_png(big, "synth_big.png")
    save_png(big.resize((9, 5), Image.BILINEAR), "synth_down.png")


def mode_fixtures():
    rgb = synthetic(13, 9, 3)
    a = np.asarray(rgb)
    alpha = Image.fromarray(((np.arange(13 * 9) * 37) % 256).astype(np.uint8).reshape(9, 13))
    gray = rgb.convert("L")
    save_png(gray, "gray.png")
    la = Image.merge("LA", (gray, alpha))
    save_png(la, "gray_alpha.png")
    rgba = Image.merge("RGBA", (*rgb.split(), alpha))
    save_png(rgba, "rgba.png")
    pal = rgb.quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    save_png(pal, "palette.png")
    g16 = Image.fromarray((np.asarray(gray).astype(np.uint16) * 257 + 3), "I;16")
    g16.save(path("gray16.png"))
    # What PIL's convert("RGB") gives, as the reference for each.
    for name, im in (("gray", gray), ("gray_alpha", la), ("rgba", rgba), ("palette", pal)):
        save_png(im.convert("RGB"), name + "_rgb.png")
    del a

    photo = Image.open("examples/images/chelsea.png").convert("RGB").resize((48, 32), Image.BILINEAR)
    photo.save(path("photo.jpg"), quality=90)
    save_png(Image.open(path("photo.jpg")).convert("RGB"), "photo_pil.png")

    with open(path("gray.png"), "rb") as f:
        data = f.read()
    with open(path("truncated.png"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    with open(path("photo.jpg"), "rb") as f:
        data = f.read()
    with open(path("truncated.jpg"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    buf = io.BytesIO()
    rgb.save(buf, format="BMP")
    with open(path("truncated.bmp"), "wb") as f:
        f.write(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    with open(path("corrupt.png"), "wb") as f:
        f.write(np.random.default_rng(4).integers(0, 256, 300, dtype=np.uint8).tobytes())
    open(path("empty.png"), "wb").close()


def npy_fixtures():
    np.save(path("np_f32.npy"), np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    with open(path("np_f32_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.arange(24, dtype=np.float32).reshape(2, 3, 4),
                                  version=(2, 0))
    v = (np.arange(15, dtype=np.float64).reshape(3, 5) - 7) / 4 + 1e-9
    np.save(path("np_f64.npy"), v)
    np.save(path("np_f16.npy"), v.astype(np.float16))
    np.save(path("np_scalar.npy"), np.array(3.5, dtype=np.float32))
    np.save(path("np_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.save(path("np_bigendian.npy"), np.arange(6, dtype=">f4").reshape(2, 3))
    np.save(path("np_int.npy"), np.arange(6, dtype=np.int32).reshape(2, 3))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    imagenet_fixtures()
    resize_fixtures()
    mode_fixtures()
    npy_fixtures()
    files = [f for f in os.listdir(OUT) if os.path.isfile(path(f))]
    total = sum(os.path.getsize(path(f)) for f in files)
    print("fixtures: %d files, %d bytes" % (len(files), total))


if __name__ == "__main__":
    main()
