#!/usr/bin/env python3
"""draw_coco_boxes.py - a contact sheet of a COCO-format image folder with
its instances.json boxes and class names drawn on, read from the file (not
from libkdcam), so the labels `kdcam shapes --detection` writes can be
checked by eye. docs/shapes-detection.png was made with

    kdcam shapes --detection -n 300 --seed 7 --size 256 -o /tmp/sd
    /usr/bin/python3 tools/draw_coco_boxes.py /tmp/sd 8 4 docs/shapes-detection.png

Usage: draw_coco_boxes.py DIR COUNT COLUMNS OUT.png (PIL only)."""
import collections
import json
import os
import sys

from PIL import Image, ImageDraw


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    folder, count, cols, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(os.path.join(folder, "instances.json")) as f:
        d = json.load(f)
    names = {c["id"]: c["name"] for c in d["categories"]}
    by_image = collections.defaultdict(list)
    for a in d["annotations"]:
        by_image[a["image_id"]].append(a)
    images = d["images"][:count]
    w, h = images[0]["width"], images[0]["height"]
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (w * cols, h * rows))
    for k, info in enumerate(images):
        im = Image.open(os.path.join(folder, info["file_name"])).convert("RGB")
        dr = ImageDraw.Draw(im)
        for a in by_image[info["id"]]:
            x, y, bw, bh = a["bbox"]
            # white outside, black inside: visible on any background
            dr.rectangle([x - 1, y - 1, x + bw, y + bh], outline=(255, 255, 255))
            dr.rectangle([x, y, x + bw - 1, y + bh - 1], outline=(0, 0, 0))
            dr.text((x + 2, y + 1), names[a["category_id"]], fill=(255, 255, 255))
        sheet.paste(im, ((k % cols) * w, (k // cols) * h))
    sheet.save(out, optimize=True)


if __name__ == "__main__":
    main()
