#!/usr/bin/env python3
"""Writes a large f16 safetensors checkpoint without holding it in memory.

    make_large_safetensors.py OUT.safetensors [--tensors 16] [--rows 8192] [--cols 16384]

Each tensor `layers.I.weight` [rows, cols] is a seeded normal block of 1024 rows scaled by
1/sqrt(cols), repeated with a per-chunk offset, written one chunk at a time. The defaults
give 16 x 256 MiB = 4 GiB. Prints a JSON line with the sizes.
"""
import argparse
import json
import struct

import numpy as np

CHUNK = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tensors", type=int, default=16)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=16384)
    a = ap.parse_args()
    nbytes = a.rows * a.cols * 2
    header, off = {}, 0
    for i in range(a.tensors):
        header[f"layers.{i}.weight"] = {"dtype": "F16", "shape": [a.rows, a.cols],
                                        "data_offsets": [off, off + nbytes]}
        off += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((CHUNK, a.cols)) / np.sqrt(a.cols)).astype(np.float16)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for i in range(a.tensors):
            for c in range(0, a.rows, CHUNK):
                rows = min(CHUNK, a.rows - c)
                f.write((block[:rows] + np.float16(0.001 * (c // CHUNK + i))).tobytes())
    print(json.dumps({"path": a.out, "tensors": a.tensors, "tensor_bytes": nbytes,
                      "data_bytes": off}))


if __name__ == "__main__":
    main()
