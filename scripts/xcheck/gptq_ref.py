#!/usr/bin/env python3
"""A numpy (float64) port of AutoGPTQ's GPTQ.fasterquant, with edgepack's int4g32
symmetric quantizer (encoding.h: d = f16(m / -8) where m is the group's value of largest
magnitude, q = clamp(round_half_away(x / d), -8, 7) in float32), for cross-checking
calibration/solvers.cpp.

usage: gptq_ref.py W.npy H.npy OUT_CODES.npy [--group 32] [--block 128] [--damp 0.01]
                  [--mask MASK.npy]
W: f32 [rows, cols] (stored orientation), H: f64 [cols, cols]. Writes int32 codes
[rows, cols]. Group parameters are taken when a group's first column is reached, from the
current weights (the block's working copy included: edgepack's documented choice; AutoGPTQ
reads W, which misses the updates made inside the current block).
--mask: u8 [rows, cols], 0 = a pruned weight (GptqOptions::mask): it takes the code 0 and
its whole current value is the error; the group parameters see it as 0.
"""
import argparse
import sys

import numpy as np


def qparams(values):
    m = np.float32(0.0)
    for v in values.astype(np.float32):
        if abs(v) > abs(m):
            m = v
    return np.float32(np.float16(np.float32(m) / np.float32(-8.0)))


def quant(x, d):
    if d == 0:
        return 0
    v = np.float32(np.float32(x) / d)
    if not np.isfinite(v):
        return 0
    q = np.sign(v) * np.floor(abs(np.float64(v)) + 0.5)
    return int(np.clip(q, -8, 7))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("w")
    ap.add_argument("h")
    ap.add_argument("out")
    ap.add_argument("--group", type=int, default=32)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--mask")
    a = ap.parse_args()
    W = np.load(a.w).astype(np.float64)
    keep = np.load(a.mask).astype(bool) if a.mask else np.ones(W.shape, dtype=bool)
    H = np.load(a.h).astype(np.float64).copy()
    rows, cols = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[np.diag_indices(cols)] += a.damp * np.mean(np.diag(H))
    Hinv = np.linalg.inv(H)
    U = np.linalg.cholesky((Hinv + Hinv.T) / 2).T
    codes = np.zeros((rows, cols), dtype=np.int32)
    scales = np.zeros((rows, (cols + a.group - 1) // a.group), dtype=np.float32)
    for i1 in range(0, cols, a.block):
        i2 = min(i1 + a.block, cols)
        count = i2 - i1
        Err1 = np.zeros((rows, count))
        for i in range(count):
            j = i1 + i
            if j % a.group == 0:
                for r in range(rows):
                    scales[r, j // a.group] = qparams(W[r, j:j + a.group] * keep[r, j:j + a.group])
            d = U[j, j]
            for r in range(rows):
                s = scales[r, j // a.group]
                q = quant(W[r, j], s) if keep[r, j] else 0
                codes[r, j] = q
                deq = np.float64(np.float32(s) * np.float32(q))
                Err1[r, i] = (W[r, j] - deq) / d
            W[:, j + 1:i2] -= np.outer(Err1[:, i], U[j, j + 1:i2])
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    np.save(a.out, codes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
