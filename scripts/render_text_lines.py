#!/usr/bin/env python3
"""Renders seeded random text lines as PP-OCR inputs: the real data of the PP-OCR examples.

usage: render_text_lines.py KEYS OUT_DIR --count N --seed S [--width 320]
                            [--min-chars 5] [--max-chars 12] [--rotate-half] [--font TTF]

Each sample is a string of min..max characters drawn with numpy's PCG64(seed) from the
characters of KEYS (PaddleOCR's ppocr_keys_v1.txt) that DejaVu Sans can draw: digits,
Latin letters and some punctuation (DejaVu has no CJK glyphs, so no Chinese). It is drawn
in black on a white canvas with DejaVu Sans (Debian's fonts-dejavu-core) at a seeded size
and offset, then preprocessed as PaddleOCR's recognizer and classifier do
(resize_norm_img): resized to height 48 keeping the aspect ratio, width capped at WIDTH,
normalised as (v / 255 - 0.5) / 0.5, and the rest of the WIDTH columns padded with 0 after
normalisation.

OUT_DIR gets one NNNNN.npz per sample (member x.npy: float32 [1, 3, 48, WIDTH], the
`edgepack run --data` layout) and labels.txt (one string per line, in sample order).
With --rotate-half (the text-direction classifier), every other sample is rotated by 180
degrees before the resize and OUT_DIR gets labels.npy (int64: 0 upright, 1 rotated), the
class order of PaddleOCR's cls label_list ['0', '180'], instead of labels.txt.

The bytes are the same on every run: the .npz archives are written with a fixed timestamp
(numpy.savez stamps the current time) and Pillow is pinned in scripts/requirements.txt (its
wheels bundle the FreeType that rasterises the glyphs).
"""
import argparse
import io
import os
import sys
import zipfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
HEIGHT = 48
# Punctuation that is in ppocr_keys_v1.txt and reads unambiguously in DejaVu Sans.
PUNCTUATION = ".,:;-!?()/%&+=@#'\""


def alphabet(keys_path: str) -> list:
    with open(keys_path, encoding="utf-8") as f:
        keys = {line.rstrip("\n") for line in f}
    wanted = [chr(c) for c in range(ord("0"), ord("9") + 1)]
    wanted += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    wanted += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    wanted += list(PUNCTUATION)
    chars = [c for c in wanted if c in keys]
    if len(chars) < 60:
        raise SystemExit(f"{keys_path}: only {len(chars)} of the Latin characters are in the "
                         "dictionary; is this ppocr_keys_v1.txt?")
    return chars


def render(text: str, font_path: str, size: int, dx: int, dy: int) -> Image.Image:
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (right - left + 2 * dx, bottom - top + 2 * dy), 255)
    ImageDraw.Draw(canvas).text((dx - left, dy - top), text, font=font, fill=0)
    return canvas


def preprocess(img: Image.Image, width: int) -> np.ndarray:
    """PaddleOCR's resize_norm_img for a [3, 48, width] input."""
    w, h = img.size
    resized_w = min(width, int(np.ceil(HEIGHT * w / h)))
    img = img.convert("RGB").resize((resized_w, HEIGHT), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    out = np.zeros((1, 3, HEIGHT, width), dtype=np.float32)
    out[0, :, :, :resized_w] = x
    return out


def save_npz(path: str, x: np.ndarray) -> None:
    """np.savez's layout (member x.npy, stored) with a fixed timestamp: same bytes each run."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x, allow_pickle=False)
    info = zipfile.ZipInfo("x.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(path + ".part", "w", zipfile.ZIP_STORED) as z:
        z.writestr(info, buf.getvalue())
    os.replace(path + ".part", path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("keys")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--min-chars", type=int, default=5)
    ap.add_argument("--max-chars", type=int, default=12)
    ap.add_argument("--rotate-half", action="store_true")
    ap.add_argument("--font", default=FONT)
    a = ap.parse_args()
    if not os.path.exists(a.font):
        raise SystemExit(f"{a.font}: font not found (Debian package fonts-dejavu-core)")
    chars = alphabet(a.keys)
    rng = np.random.Generator(np.random.PCG64(a.seed))
    os.makedirs(a.out, exist_ok=True)
    texts, rotated = [], []
    for i in range(a.count):
        n = int(rng.integers(a.min_chars, a.max_chars + 1))
        text = "".join(chars[int(k)] for k in rng.integers(0, len(chars), n))
        size = int(rng.integers(28, 41))
        dx, dy = int(rng.integers(2, 9)), int(rng.integers(2, 7))
        img = render(text, a.font, size, dx, dy)
        flip = a.rotate_half and i % 2 == 1
        if flip:
            img = img.rotate(180)
        save_npz(os.path.join(a.out, f"{i:05d}.npz"), preprocess(img, a.width))
        texts.append(text)
        rotated.append(int(flip))
    if a.rotate_half:
        np.save(os.path.join(a.out, "labels.npy"), np.array(rotated, dtype=np.int64))
    else:
        with open(os.path.join(a.out, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in texts))
    print(f"{a.count} text lines (seed {a.seed}, {len(chars)} characters) -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
