#!/usr/bin/env python3
"""Runs a model in ONNX Runtime (the oracle) on .npy inputs and writes OUTPUT_NAME.npy files.

usage: ort_run.py MODEL --input NAME=FILE.npy ... --out DIR [--threads N] [--optimize]
Without --optimize ONNX Runtime runs the graph as written (no graph optimizations); with
it, its default optimizations (a QDQ model's patterns then run as its QLinear ops).
Output names are made file-safe the way `edgepack run` does: [^A-Za-z0-9._-] -> '_'.
"""
import argparse
import os
import re
import sys

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optimize", action="store_true")
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    if not a.optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    feeds = {}
    for spec in a.input:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    outs = sess.run(None, feeds)
    os.makedirs(a.out, exist_ok=True)
    for info, value in zip(sess.get_outputs(), outs):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", info.name) or "_"
        np.save(os.path.join(a.out, safe + ".npy"), value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
