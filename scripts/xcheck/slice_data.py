#!/usr/bin/env python3
"""Copies the first N samples of a data set made by scripts/make_data.sh, for tests that run
the example recipes on a small slice of their real data.

usage: slice_data.py SRC DST N
SRC is a directory of .npz files (the first N in name order are copied; a labels.txt keeps
its first N lines and a labels.npy its first N entries, counted in rows of the copied .npz
files: a batch file of B samples takes B labels), or a token-id .npy [S, T] (its first N
rows are written to DST).
"""
import os
import shutil
import sys

import numpy as np


def main() -> int:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if src.endswith(".npy"):
        np.save(dst, np.load(src)[:n])
        return 0
    os.makedirs(dst, exist_ok=True)
    files = sorted(f for f in os.listdir(src) if f.endswith(".npz"))[:n]
    rows = 0
    for f in files:
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
        with np.load(os.path.join(src, f)) as z:
            rows += next(iter(z.values())).shape[0]
    if os.path.exists(os.path.join(src, "labels.txt")):
        with open(os.path.join(src, "labels.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")[:rows]
        with open(os.path.join(dst, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    if os.path.exists(os.path.join(src, "labels.npy")):
        np.save(os.path.join(dst, "labels.npy"), np.load(os.path.join(src, "labels.npy"))[:rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
