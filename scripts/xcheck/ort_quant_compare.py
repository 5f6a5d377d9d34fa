#!/usr/bin/env python3
"""Cross-checks a quantized ONNX export (MatMulNBits or opset-21 DequantizeLinear) in ONNX
Runtime against reference outputs (edgepack's runtime on the encoded model).

usage: ort_quant_compare.py MODEL --input NAME=FILE.npy ... --ref DIR [--tol 1e-3]
       ort_quant_compare.py --diff DIR_A DIR_B [--tol 1e-3]   (two sets of OUTPUT.npy)
ORT runs with all graph optimizations and the session option
session.qdq_matmulnbits_accuracy_level = 0 (a DequantizeLinear + MatMul that ORT fuses
into MatMulNBits keeps float activations), on one thread. For every output prints
"NAME rel=R maxdiff=D maxref=M" with R = max|out - ref| / max|ref|; exit 1 when any
R > tol, 0 otherwise.
"""
import argparse
import os
import re
import sys

import numpy as np


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def compare(name, got, ref, tol):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        print(f"{name} shape {got.shape} != reference {ref.shape}")
        return False
    diff = float(np.max(np.abs(got - ref))) if got.size else 0.0
    mref = float(np.max(np.abs(ref))) if ref.size else 0.0
    rel = diff / mref if mref > 0 else diff
    print(f"{name} rel={rel:.3e} maxdiff={diff:.3e} maxref={mref:.3e}")
    return rel <= tol


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--ref")
    ap.add_argument("--diff", nargs=2)
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    ok = True
    if a.diff:
        for f in sorted(os.listdir(a.diff[1])):
            if f.endswith(".npy"):
                ok &= compare(f[:-4], np.load(os.path.join(a.diff[0], f)),
                              np.load(os.path.join(a.diff[1], f)), a.tol)
        return 0 if ok else 1
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    feeds = {}
    for spec in a.input:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    outs = sess.run(None, feeds)
    for info, value in zip(sess.get_outputs(), outs):
        ok &= compare(info.name, value, np.load(os.path.join(a.ref, safe(info.name) + ".npy")), a.tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
