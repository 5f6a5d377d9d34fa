#!/usr/bin/env python3
"""numpy reference of edgepack's activation calibrators on fixed histograms.

Written from the definitions in docs/quantization.md ("Activation calibrators"), not from
calibration/ranges.cpp, so the test that compares the two (tests/test_calibration_ranges.cpp)
checks the C++ against the text.

  calib_ref.py CASES.json OUT.json

CASES.json: {"cases": [{"name": ..., "limit": T, "counts": [2 * bins counts over [-T, T]],
                        "min": m, "max": M, "method": "minmax" | "percentile" | "entropy" | "mse",
                        "percentile": p, "symmetric": bool, "quantized_bins": Q}, ...]}
OUT.json:   {"cases": [{"name": ..., "min": lo, "max": hi, "threshold_bins": i or null}, ...]}
            lo, hi as float32 values (written as float64 numbers), i the entropy / mse
            threshold in |x| bins.
"""
import json
import sys

import numpy as np


def tail_bin(counts, tail):
    """Smallest k with (total - cumsum[k]) <= tail * total (-1 when empty)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return -1
    above = total - np.cumsum(counts)
    ok = above.astype(np.float64) <= tail * float(total)
    return int(np.argmax(ok))


def sequential_sum(terms):
    # Left to right, as the definition reads (np.sum would sum pairwise).
    return float(np.cumsum(terms)[-1]) if len(terms) else 0.0


MAX_CLIPPED = 1e-4  # entropy: candidates clip at most this share of the values


def entropy_bins(h, quantized_bins, non_negative):
    """TensorRT's entropy calibration on the |x| histogram h, with the levels of the real
    grid (2 L over [0, a] for a non-negative activation, L otherwise) and candidates that
    clip at most MAX_CLIPPED of the values."""
    h = np.array(h, dtype=np.int64)
    n = h.size
    levels = min(2 * quantized_bins, n) if non_negative else quantized_bins
    first = max(levels, tail_bin(h, MAX_CLIPPED) + 1)
    if n >= 2:
        h[0] = h[1]  # TensorRT: the zero bin counts as its neighbour
    total = int(h.sum())
    if total == 0:
        return n
    best, best_i = None, n
    for i in range(first, n + 1):
        first_i = h[:i].astype(np.float64)
        outliers = float(h[i:].sum())
        P = first_i.copy()
        P[-1] += outliers
        level = (np.arange(i, dtype=np.int64) * levels) // i
        nz = first_i > 0
        merged = np.bincount(level[nz], weights=first_i[nz], minlength=levels)
        count = np.bincount(level[nz], minlength=levels)
        q_total = float(h[:i].sum())
        p = P / float(total)
        if q_total == 0.0 or np.any((p > 0) & ~nz):
            kl = np.inf
        else:
            q = np.zeros(i)
            q[nz] = merged[level[nz]] / count[level[nz]] / q_total
            m = p > 0
            kl = sequential_sum(p[m] * (np.log(p[m]) - np.log(q[m])))
        if best is None or kl <= best:  # the largest i on a tie
            best, best_i = kl, i
    return best_i


def mse_bins(h, quantized_bins):
    """Squared error of quantizing each |x| bin centre to L = quantized_bins - 1 levels."""
    h = np.asarray(h, dtype=np.int64)
    n = h.size
    L = quantized_bins - 1
    j = np.arange(n, dtype=np.int64)
    centre = j.astype(np.float64) + 0.5
    m = h > 0
    best, best_i = np.inf, n
    for i in range(quantized_bins, n + 1):
        q = np.minimum(((2 * j + 1) * L + i) // (2 * i), L)  # round half up, clipped
        d = centre - (q * i).astype(np.float64) / float(L)
        err = sequential_sum((h[m].astype(np.float64) * d[m]) * d[m])
        if err < best:  # the smallest i on a tie
            best, best_i = err, i
    return best_i


def f32(x):
    return float(np.float32(x))


def range_of(case):
    counts = np.asarray(case["counts"], dtype=np.int64)
    bins = counts.size // 2
    T = float(case["limit"])
    w = T / bins
    lo, hi = float(case["min"]), float(case["max"])
    absmax = max(abs(lo), abs(hi))
    sym = bool(case.get("symmetric", False))
    method = case["method"]
    abs_h = counts[bins:] + counts[:bins][::-1]
    threshold = None
    if counts.sum() == 0 or T == 0.0:
        return f32(lo), f32(hi), None
    if method == "minmax":
        return (f32(-absmax), f32(absmax), None) if sym else (f32(lo), f32(hi), None)
    if method == "percentile":
        p = float(case["percentile"])
        if not sym:
            tail = (100.0 - p) / 200.0
            k_hi = tail_bin(counts, tail)
            k_lo = counts.size - 1 - tail_bin(counts[::-1], tail)
            top = -T + (k_hi + 1) * w
            bottom = -T + k_lo * w
            return f32(max(bottom, lo)), f32(min(top, hi)), None
        amax = (tail_bin(abs_h, (100.0 - p) / 100.0) + 1) * w
    elif method == "entropy":
        threshold = entropy_bins(abs_h, int(case["quantized_bins"]), lo >= 0.0 and not sym)
        amax = threshold * w
    elif method == "mse":
        threshold = mse_bins(abs_h, int(case["quantized_bins"]))
        amax = threshold * w
    else:
        raise SystemExit(f"unknown method {method}")
    amax = min(amax, absmax)
    if sym:
        return f32(-amax), f32(amax), threshold
    return f32(max(lo, -amax)), f32(min(hi, amax)), threshold


def main():
    cases = json.load(open(sys.argv[1]))["cases"]
    out = []
    for c in cases:
        lo, hi, t = range_of(c)
        out.append({"name": c["name"], "min": lo, "max": hi, "threshold_bins": t})
    json.dump({"cases": out}, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
