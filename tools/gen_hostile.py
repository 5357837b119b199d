#!/usr/bin/python3
"""Writes the hostile-file suite's inputs (tests/hostile/): small files
that reproduce the findings of issue 18 (crashes through stb_image, files
that declare gigabytes, misleading messages). tests/test_hostile.c runs
`kdcam` on each and asserts a clean failure; the 100 MB safetensors header
is made by the test itself. Deterministic except checkpoint_legacy.pth,
whose storage keys torch takes from object ids (any run's file will do).
Needs numpy, Pillow and torch:

    /usr/bin/python3 tools/gen_hostile.py
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fuzz_corpus import tiny_mobilenet  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "hostile")


def put(name, data):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def small_jpeg():
    rng = np.random.default_rng(18)
    im = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def main():
    jpg = small_jpeg()
    # 1. A DHT whose 16 code counts sum to 272 (> 256): stb_image 2.27 writes
    #    past huffman.size[257] (SIGSEGV in the build).
    counts = bytes([17] * 16)
    put("jpeg_dht_272_codes.jpg", jpg[:2] + segment(0xC4, b"\x00" + counts + bytes(272)) + jpg[2:])
    # 2. A JPEG whose frame header declares 32768 x 20000 pixels (2.9 GB).
    i = jpg.index(b"\xff\xc0")
    big = bytearray(jpg)
    big[i + 5:i + 9] = struct.pack(">HH", 20000, 32768)
    put("jpeg_32768x20000.jpg", bytes(big))
    # 3. 16-bit binary PGM: the heap over-read of CVE-2021-42716 in stb 2.27.
    put("pgm16_overread.pgm", b"P5 10 8 259\n" + bytes(range(80)))
    # 4. The same kind of file, 4000 x 4000, named .jpg.
    put("pgm16_4000x4000.jpg", b"P5\n4000 4000\n65535\n" + bytes(64))
    # 5. A PNG bomb: 30000 x 30000 8-bit grey, zeros compress to almost nothing.
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    z = zlib.compressobj(9)
    idat = z.compress(bytes(1 << 20)) + z.flush()
    put("png_bomb_30000x30000.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
        png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    # 5a. A zlib bomb: a 100 x 100 PNG whose IDAT inflates to 160 MB (stb
    #     grows its output buffer by doubling, to 256 MB, whatever IHDR says).
    ihdr = struct.pack(">IIBBBBB", 100, 100, 8, 0, 0, 0, 0)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(bytes(1 << 20)) for _ in range(160)) + z.flush()
    put("png_zlib_bomb_100x100.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
        png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    # 5b. A PNG wider than any decoder here takes (stb said "Image not of any
    #     known type, or corrupt"): 40000 x 10, few pixels.
    ihdr = struct.pack(">IIBBBBB", 40000, 10, 8, 0, 0, 0, 0)
    z = zlib.compressobj(9)
    idat = z.compress(bytes(10 * 40001)) + z.flush()
    put("png_40000x10.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
        png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    # 6. An RLE TGA declaring 16384 x 16384 (TGA is not read any more).
    tga = struct.pack("<BBBHHBHHHHBB", 0, 0, 10, 0, 0, 0, 0, 0, 16384, 16384, 24, 0)
    put("tga_rle_16384.tga", tga + b"\xff\x00\x00\x00" * 120)
    # 7. A BMP header declaring 30000 x 30000 x 24 bits.
    bmp = b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 2835, 2835, 0, 0) + bytes(64)
    put("bmp_30000x30000.bmp", bmp)
    # 8. A valid 15 KB model whose metadata asks for 16384-pixel inputs.
    put("model_resize_16384.safetensors",
        tiny_mobilenet("resize=16384 crop=16384x16384"))
    # 9. A NaN in a preprocessed input.
    x = np.zeros((1, 3, 56, 56), dtype="<f2")
    x[0, 1, 7, 9] = np.nan
    buf = io.BytesIO()
    np.save(buf, x)
    put("input_nan.npy", buf.getvalue())
    # 10. An empty batch: shape (0, 3, 224, 224).
    buf = io.BytesIO()
    np.save(buf, np.zeros((0, 3, 224, 224), dtype="<f4"))
    put("input_empty_batch.npy", buf.getvalue())
    # 11. PyTorch checkpoints passed as weights: zip (>= 1.6) and legacy pickle.
    import torch
    sd = {"fc.weight": torch.zeros(2, 2)}
    buf = io.BytesIO()
    torch.save(sd, buf)
    put("checkpoint_zip.pth", buf.getvalue())
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    put("checkpoint_legacy.pth", buf.getvalue())


if __name__ == "__main__":
    main()
