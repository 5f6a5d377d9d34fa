#!/usr/bin/env python3
"""Oracle for prune-structured: is the pruned .onnx a valid, smaller model that ONNX Runtime
runs, and does ORT agree with our runtime on it?

    pruned_onnx_check.py PRUNED.onnx ORIGINAL.onnx --data DIR [--labels labels.npy]
                         [--ours DIR] [--bench-runs N] [--bench-batch B]

1. onnx.checker.check_model(PRUNED, full_check=True) (shape inference included).
2. Both models run in ONNX Runtime (CPU, one thread) on every sample of DIR (the .npz
   batches `edgepack run --data` reads, in sorted order); with --labels, the top-1 accuracy
   of each in percent.
3. --ours DIR: `edgepack run PRUNED --data DIR --out OURS` output (OURS/sample_K/NAME.npy,
   or OURS/NAME.npy for one sample): the max abs difference of ORT's outputs from ours.
4. --bench-runs N: both models timed alternately in the same run on one image (the first
   row of the first sample), N runs after 20 warm-up runs each, median latency in ms and
   the speed-up (original / pruned).

Prints one JSON object on stdout (initializer shapes that changed, accuracies, the max abs
difference, latencies); exit 0 when the checker passes and both models run, 1 otherwise.
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def samples(data_dir):
    files = sorted(glob.glob(os.path.join(data_dir, "*.npz")))
    for f in files:
        with np.load(f) as z:
            yield {k: z[k] for k in z.files}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pruned")
    ap.add_argument("original")
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--ours")
    ap.add_argument("--bench-runs", type=int, default=0)
    ap.add_argument("--bench-batch", type=int, default=1)
    a = ap.parse_args()

    out = {}
    try:
        onnx.checker.check_model(a.pruned, full_check=True)
        out["checker"] = "full_check"
    except Exception as e:  # noqa: BLE001 - the checker's message is the result
        print(json.dumps({"checker": f"failed: {e}"}))
        return 1

    pruned, original = onnx.load(a.pruned), onnx.load(a.original)
    before = {t.name: list(t.dims) for t in original.graph.initializer}
    out["shapes"] = {
        t.name: list(t.dims)
        for t in pruned.graph.initializer
        if t.name in before and before[t.name] != list(t.dims)
    }
    out["parameters_original"] = int(sum(np.prod(d) for d in before.values()))
    out["parameters_pruned"] = int(sum(np.prod(t.dims) for t in pruned.graph.initializer))

    sp, so = session(a.pruned), session(a.original)
    out_name = sp.get_outputs()[0].name
    preds_p, preds_o, max_diff = [], [], 0.0
    ours_dirs = sorted(glob.glob(os.path.join(a.ours, "sample_*"))) if a.ours else []
    first = None
    for k, feeds in enumerate(samples(a.data)):
        if first is None:
            first = {n: v[: a.bench_batch] for n, v in feeds.items()}
        yp = sp.run([out_name], feeds)[0]
        yo = so.run([out_name], feeds)[0]
        preds_p.append(yp.argmax(axis=-1))
        preds_o.append(yo.argmax(axis=-1))
        if a.ours:
            where = ours_dirs[k] if ours_dirs else a.ours
            mine = np.load(os.path.join(where, out_name + ".npy"))
            max_diff = max(max_diff, float(np.max(np.abs(mine.astype(np.float64) - yp))))
    if a.ours:
        out["max_abs_diff_vs_ours"] = max_diff
    if a.labels:
        labels = np.load(a.labels).reshape(-1)
        pp, po = np.concatenate(preds_p), np.concatenate(preds_o)
        out["accuracy_original"] = round(100.0 * float(np.mean(po == labels[: po.size])), 4)
        out["accuracy_pruned"] = round(100.0 * float(np.mean(pp == labels[: pp.size])), 4)

    if a.bench_runs > 0:
        times = {"original": [], "pruned": []}
        for s in (sp, so):
            for _ in range(20):
                s.run([out_name], first)
        for _ in range(a.bench_runs):
            for name, s in (("original", so), ("pruned", sp)):
                t0 = time.perf_counter()
                s.run([out_name], first)
                times[name].append((time.perf_counter() - t0) * 1e3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        out["ort_bench_batch"] = int(next(iter(first.values())).shape[0])
        out["ort_latency_ms"] = med
        out["ort_speedup"] = med["original"] / med["pruned"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
