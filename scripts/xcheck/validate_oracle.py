#!/usr/bin/env python3
"""The `edgepack validate` metrics computed independently: ONNX Runtime runs both models
on every .npz sample of DIR (sorted file names), numpy computes the metrics in float64.

usage: validate_oracle.py --reference A --candidate B --data DIR [--labels L.npy]
Prints one JSON object: {"outputs": {NAME: {...}}, "accuracy_reference": ..., ...} with
the same definitions as docs/validate.md (KL of softmax rows, mean +/- standard error,
percentiles by linear interpolation, same top-1 by first argmax, top-5 overlap with ties
to the lower index, SQNR, cosine, max/mean absolute error).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import onnxruntime as ort


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))


def num(v: float):
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


def metrics(r: np.ndarray, c: np.ndarray, labels):
    r = r.astype(np.float64)
    c = c.astype(np.float64)
    d = r - c
    noise = float((d * d).sum())
    signal = float((r * r).sum())
    out = {
        "max_abs_error": float(np.abs(d).max()),
        "mean_abs_error": float(np.abs(d).mean()),
        "cosine_similarity": float((r * c).sum() / (math.sqrt(signal) * math.sqrt(float((c * c).sum())))),
        "sqnr_db": num(math.inf if noise == 0 else 10 * math.log10(signal / noise)),
    }
    if r.ndim >= 2 and r.shape[-1] >= 2:
        classes = r.shape[-1]
        rr = r.reshape(-1, classes)
        cc = c.reshape(-1, classes)
        lp, lq = log_softmax(rr), log_softmax(cc)
        p = np.exp(lp)
        kl = np.where(p > 0, p * (lp - lq), 0.0).sum(axis=1)
        n = len(kl)
        mean = float(kl.mean())
        sem = float(math.sqrt(((kl - mean) ** 2).mean() / (n - 1))) if n > 1 else 0.0
        top1_r, top1_c = rr.argmax(axis=1), cc.argmax(axis=1)
        same = float((top1_r == top1_c).mean())
        k = min(5, classes)
        tr = np.argsort(-rr, axis=1, kind="stable")[:, :k]
        tc = np.argsort(-cc, axis=1, kind="stable")[:, :k]
        overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(tr.tolist(), tc.tolist())])
        out["classes"] = {
            "rows": n,
            "kl_mean": mean,
            "kl_mean_uncertainty": sem,
            "kl_median": float(np.median(kl)),
            "kl_p99": float(np.percentile(kl, 99)),
            "kl_max": float(kl.max()),
            "same_top1": 100 * same,
            "same_top1_uncertainty": 100 * math.sqrt(same * (1 - same) / (n - 1)) if n > 1 else 0.0,
            "topk_agreement": 100 * float(overlap),
        }
        if labels is not None and len(labels) == n:
            acc_r = 100 * float((top1_r == labels).mean())
            acc_c = 100 * float((top1_c == labels).mean())
            out["classes"]["accuracy_reference"] = acc_r
            out["classes"]["accuracy_candidate"] = acc_c
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--candidate", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels")
    a = ap.parse_args()
    ref, cand = session(a.reference), session(a.candidate)
    names = [o.name for o in ref.get_outputs()]
    got_r = {n: [] for n in names}
    got_c = {n: [] for n in names}
    files = sorted(f for f in os.listdir(a.data) if f.endswith(".npz"))
    for f in files:
        with np.load(os.path.join(a.data, f)) as z:
            feeds = {k: z[k] for k in z.files}
        for n, v in zip(names, ref.run(names, feeds)):
            got_r[n].append(v)
        for n, v in zip(names, cand.run(names, feeds)):
            got_c[n].append(v)
    labels = np.load(a.labels).reshape(-1) if a.labels else None
    report = {"files": len(files), "outputs": {}}
    for n in names:
        r = np.concatenate([v.reshape(-1) for v in got_r[n]])
        c = np.concatenate([v.reshape(-1) for v in got_c[n]])
        shape = (-1,) + got_r[n][0].shape[1:]
        report["outputs"][n] = metrics(r.reshape(shape), c.reshape(shape), labels)
        cls = report["outputs"][n].get("classes", {})
        if "accuracy_reference" in cls and "accuracy_reference" not in report:
            report["accuracy_reference"] = cls["accuracy_reference"]
            report["accuracy_candidate"] = cls["accuracy_candidate"]
            report["accuracy_drop"] = cls["accuracy_reference"] - cls["accuracy_candidate"]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
