#!/usr/bin/env python3
"""A numpy (float64) port of SparseGPT's fasterprune (IST-DASLab/sparsegpt, sparsegpt.py),
for cross-checking calibration/sparsegpt.cpp.

usage: sparsegpt_ref.py W.npy H.npy OUT_W.npy OUT_MASK.npy [--sparsity 0.5]
                        [--prunen 2 --prunem 4] [--block 128] [--damp 0.01]
W: f32 [rows, cols] (stored orientation: rows = output channels), H: f64 [cols, cols].
Writes the pruned weights (f64 [rows, cols]) and the kept mask (u8 [rows, cols], 1 = kept).
--prunen / --prunem are the reference's: prunen weights PRUNED in every prunem columns
(2:4 is --prunen 2 --prunem 4). The reference's torch.topk(largest=False) leaves the order
of equal scores open; here the lower column is pruned first (a stable sort), as edgepack does.
"""
import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("w")
    ap.add_argument("h")
    ap.add_argument("out_w")
    ap.add_argument("out_mask")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--prunen", type=int, default=0)
    ap.add_argument("--prunem", type=int, default=0)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    a = ap.parse_args()
    W = np.load(a.w).astype(np.float64)
    H = np.load(a.h).astype(np.float64).copy()
    rows, cols = W.shape

    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[np.diag_indices(cols)] += a.damp * np.mean(np.diag(H))
    # torch.linalg.cholesky -> torch.cholesky_inverse -> torch.linalg.cholesky(upper=True)
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    Hinv = Linv.T @ Linv
    Hinv = np.linalg.cholesky((Hinv + Hinv.T) / 2).T

    pruned = np.zeros((rows, cols), dtype=bool)
    for i1 in range(0, cols, a.block):
        i2 = min(i1 + a.block, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if a.prunen == 0:
            tmp = W1 ** 2 / (np.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = np.sort(tmp.flatten())[int(tmp.size * a.sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = np.zeros_like(W1, dtype=bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if a.prunen != 0 and i % a.prunem == 0:
                tmp = W1[:, i:i + a.prunem] ** 2 / (np.diag(Hinv1)[i:i + a.prunem].reshape((1, -1))) ** 2
                low = np.argsort(tmp, axis=1, kind="stable")[:, :a.prunen]
                np.put_along_axis(mask1, i + low, True, axis=1)
            q = w.copy()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    np.save(a.out_w, W)
    np.save(a.out_mask, (~pruned).astype(np.uint8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
