#!/usr/bin/env python3
"""Oracle: the bytes of an RTN-quantized weight, written from the formulas of ir/encoding.h
alone (numpy, no edgepack code), for the tests of the quantize-weights pass.

    rtn_ref.py SCHEME OUT_DIR WEIGHT.npy:AXIS [WEIGHT.npy:AXIS ...]

SCHEME is int8c, int8gG, int8gGa, int4gG or int4gGa (G in 32, 64, 128; f16 scales). For
each float32 WEIGHT.npy, writes OUT_DIR/WEIGHT.bin. The weight is a matrix of rows x cols
with cols along the reduction axis: axis 1 takes rows = shape[0] and cols = the rest;
axis 0 (2-D only) takes the transpose (stored row r = logical column r).

  scale d: int8c and int8 symmetric: max|x| / 127 (over the row, or the group);
           int4 symmetric: m / -8, m = the group's value of largest magnitude (first on
           ties); asymmetric: (hi - lo) / qmax over [min(x, 0), max(x, 0)],
           zero point z = clamp(round(-lo / d), 0, qmax).
  Grouped scales are stored as f16 and used as rounded; int8c's are f32.
  code q = clamp(round(x / d) + z, qmin, qmax), round half away from zero of the float32
  quotient; q = z (0 symmetric) when d = 0 or x / d is not finite. A row ends in a block
  padded with the code of 0.0.
  Layout: int8c: int8 q[rows][cols] zero-padded to a multiple of 4, then f32 d[rows].
  Grouped: rows one after another, each its blocks: f16 d, (asymmetric: z, 0), then the
  codes: int8 as bytes, int4 as nibbles q (+8 when symmetric), element 2i low.
Exit 0 when written, 2 on bad usage.
"""
import os
import re
import sys

import numpy as np


def parse(scheme):
    if scheme == "int8c":
        return 8, True, 0
    m = re.fullmatch(r"int(4|8)g(32|64|128)(a?)", scheme)
    if not m:
        raise SystemExit(f"rtn_ref: unsupported scheme '{scheme}'")
    return int(m.group(1)), m.group(3) != "a", int(m.group(2))


def round_half_away(t32):
    t = t32.astype(np.float64)  # exact; floor(|t| + 0.5) is exact in float64
    return np.sign(t) * np.floor(np.abs(t) + 0.5)


def codes(x, d, z, qmin, qmax, symmetric):
    """x [..., n] float32, d and z broadcast: the codes as int64."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = (x / d).astype(np.float32)
    q = np.clip(round_half_away(t) + z, qmin, qmax)
    bad = (d == 0) | ~np.isfinite(t)
    fill = np.zeros_like(q) if symmetric else np.broadcast_to(z, q.shape).astype(np.float64)
    return np.where(bad, fill, q).astype(np.int64)


def encode(w, bits, symmetric, group):
    rows, cols = w.shape
    if group == 0:  # int8c
        d = (np.max(np.abs(w), axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
        q = codes(w, d, 0.0, -127, 127, True)
        body = q.astype(np.int8).tobytes()
        body += b"\0" * (-len(body) % 4)
        return body + d.astype("<f4").tobytes()
    qmax = 2 ** bits - 1 if not symmetric else 2 ** (bits - 1) - 1
    qmin = 0 if not symmetric else -(2 ** (bits - 1)) + (1 if bits == 8 else 0)
    nb = -(-cols // group)
    g = np.zeros((rows, nb * group), np.float32)
    g[:, :cols] = w
    g = g.reshape(rows, nb, group)
    valid = (np.arange(nb * group) < cols).reshape(nb, group)
    if symmetric:
        if bits == 4:
            first_max = np.argmax(np.abs(g), axis=2)[..., None]
            m = np.take_along_axis(g, first_max, axis=2)
            d = (m / np.float32(-8)).astype(np.float32)
        else:
            d = (np.max(np.abs(g), axis=2, keepdims=True) / np.float32(127)).astype(np.float32)
        z = np.zeros_like(d, dtype=np.float64)
    else:
        lo = np.minimum(np.min(g, axis=2, keepdims=True), np.float32(0))
        hi = np.maximum(np.max(g, axis=2, keepdims=True), np.float32(0))
        d = ((hi - lo) / np.float32(qmax)).astype(np.float32)
    d16 = d.astype(np.float16)
    dr = d16.astype(np.float32)
    if not symmetric:
        with np.errstate(divide="ignore", invalid="ignore"):
            zq = round_half_away((-lo / dr).astype(np.float32))
        z = np.where(dr != 0, np.clip(zq, 0, qmax), 0.0)
    q = codes(g, dr, z, qmin, qmax, symmetric)
    q = np.where(valid[None], q, np.broadcast_to(z, q.shape).astype(np.int64))
    head = d16.astype("<f2").view(np.uint8).reshape(rows, nb, 2)
    if not symmetric:
        extra = np.zeros((rows, nb, 2), np.uint8)
        extra[..., 0] = z[..., 0].astype(np.uint8)
        head = np.concatenate([head, extra], axis=2)
    if bits == 8:
        body = (q.astype(np.int8) if symmetric else q.astype(np.uint8)).view(np.uint8)
    else:
        nib = ((q + 8) if symmetric else q).astype(np.uint8) & 0xF
        body = nib[..., 0::2] | (nib[..., 1::2] << 4)
    return np.concatenate([head, body], axis=2).tobytes()


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    bits, symmetric, group = parse(sys.argv[1])
    out_dir = sys.argv[2]
    for arg in sys.argv[3:]:
        path, _, axis = arg.rpartition(":")
        w = np.load(path)
        if w.dtype != np.float32 or axis not in ("0", "1") or (axis == "0" and w.ndim != 2):
            raise SystemExit(f"rtn_ref: '{arg}' is not a float32 .npy with axis 0 (2-D) or 1")
        w2d = w.T if axis == "0" else w.reshape(w.shape[0], -1)
        data = encode(np.ascontiguousarray(w2d), bits, symmetric, group)
        name = os.path.splitext(os.path.basename(path))[0] + ".bin"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
