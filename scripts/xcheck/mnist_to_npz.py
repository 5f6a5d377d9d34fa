#!/usr/bin/env python3
"""Converts the MNIST IDX test set into an `edgepack validate --data` directory.

usage: mnist_to_npz.py IMAGES.gz LABELS.gz OUT_DIR --labels-out LABELS.npy
                       [--batch 1000] [--key input] [--limit N] [--compressed]
Writes OUT_DIR/batch_00.npz, batch_01.npz, ... each holding KEY = float32 [B, 1, 28, 28]
preprocessed as (x / 255 - 0.5) / 0.5, and LABELS.npy = int64 [N] class indices in the
same order. --compressed deflates the members. The archives carry a fixed timestamp (where
numpy.savez stamps the current time), so the bytes are the same on every run.
"""
import argparse
import gzip
import io
import os
import struct
import sys
import zipfile

import numpy as np


def read_idx(path: str, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    got, = struct.unpack(">I", data[:4])
    if got != magic:
        raise SystemExit(f"{path}: IDX magic {got}, expected {magic}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: {arr.size} bytes of data, header says {dims}")
    return arr.reshape(dims)


def save_npz(path: str, key: str, x: np.ndarray, compressed: bool) -> None:
    """numpy.savez's layout (member KEY.npy) with a fixed timestamp."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x, allow_pickle=False)
    info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(info, buf.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("labels")
    ap.add_argument("out")
    ap.add_argument("--labels-out", required=True)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--key", default="input")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--compressed", action="store_true")
    a = ap.parse_args()
    images = read_idx(a.images, 0x0803)
    labels = read_idx(a.labels, 0x0801).astype(np.int64)
    if a.limit:
        images, labels = images[: a.limit], labels[: a.limit]
    x = images.astype(np.float32)[:, None, :, :]
    x = (x / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    os.makedirs(a.out, exist_ok=True)
    n_batches = (len(x) + a.batch - 1) // a.batch
    width = max(2, len(str(n_batches - 1)))
    for i in range(n_batches):
        save_npz(os.path.join(a.out, f"batch_{i:0{width}d}.npz"), a.key,
                 x[i * a.batch:(i + 1) * a.batch], a.compressed)
    np.save(a.labels_out, labels)
    print(f"{len(x)} images in {n_batches} files, labels -> {a.labels_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
