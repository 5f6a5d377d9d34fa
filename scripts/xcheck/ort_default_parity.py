#!/usr/bin/env python3
"""Scores a written .onnx in ONNX Runtime's default session (graph optimizations on, no
session options, as a user deploys it) against the original model, and against
edgepack's runtime on the same data: the check that a quantized export computes in ORT
what `validate` reported.

usage: ort_default_parity.py ORIGINAL EXPORT --data DATA --ours DIR
                             [--max-rel-diff R] [--max-kl-gap G]
DATA: a token-id .npy [S, T] (sample s = row s as [1, T] for the model's one input), or a
folder of .npz samples (sorted by name; member KEY.npy = input KEY), or a folder of
sub-folders each holding NAME.npy inputs (sorted by name), as `edgepack run --data` reads.
DIR: `edgepack run EXPORT --data DATA --out DIR` (DIR/sample_K/OUTPUT.npy).

ORT runs ORIGINAL and EXPORT with default sessions on the CPU. For each output prints
  NAME samples=S max_diff=D rel_diff=R kl_ort=K1 kl_ours=K2 kl_ours_vs_ort=K3
with D = max |EXPORT in ORT - edgepack| over all samples, R = D / max |edgepack|,
K1 = mean KL(original || EXPORT in ORT), K2 = mean KL(original || edgepack) and
K3 = mean KL(edgepack || EXPORT in ORT), each over every position of the last axis
(softmax of the values, or the values themselves when they already are probabilities).
Exit 1 when R > max-rel-diff or |K1 - K2| > max-kl-gap, else 0.
"""
import argparse
import os
import re
import sys

import numpy as np
import onnxruntime as ort


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def samples(data, input_names):
    if os.path.isfile(data):
        rows = np.load(data)
        return [{input_names[0]: rows[s:s + 1]} for s in range(rows.shape[0])]
    entries = sorted(os.listdir(data))
    npz = [e for e in entries if e.endswith(".npz")]
    if npz:
        out = []
        for e in npz:
            with np.load(os.path.join(data, e)) as z:
                out.append({k: z[k] for k in z.files if k in input_names})
        return out
    out = []
    for e in entries:
        d = os.path.join(data, e)
        if os.path.isdir(d):
            out.append({n: np.load(os.path.join(d, safe(n) + ".npy")) for n in input_names})
    return out


def probabilities(v):
    v = np.asarray(v, dtype=np.float64)
    if v.min() >= 0 and v.max() <= 1 and np.allclose(v.sum(-1), 1, atol=1e-3):
        return v
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl(p_vals, q_vals):
    p = np.clip(probabilities(p_vals), 1e-12, 1)
    q = np.clip(probabilities(q_vals), 1e-12, 1)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("original")
    ap.add_argument("export")
    ap.add_argument("--data", required=True)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--max-rel-diff", type=float, default=1e-3)
    ap.add_argument("--max-kl-gap", type=float, default=1e-3)
    a = ap.parse_args()
    ort.set_default_logger_severity(3)
    original = ort.InferenceSession(a.original, providers=["CPUExecutionProvider"])
    export = ort.InferenceSession(a.export, providers=["CPUExecutionProvider"])
    names = [i.name for i in export.get_inputs()]
    feeds = samples(a.data, names)
    ours_dirs = sorted(d for d in os.listdir(a.ours) if d.startswith("sample_"))
    if len(ours_dirs) != len(feeds):
        print(f"{a.ours}: {len(ours_dirs)} sample folders, {len(feeds)} samples in {a.data}")
        return 1
    outputs = [o.name for o in export.get_outputs()]
    stats = {n: {"diff": 0.0, "ref": 0.0, "kl_ort": [], "kl_ours": [], "kl_x": []}
             for n in outputs}
    for feed, d in zip(feeds, ours_dirs):
        orig_out = dict(zip([o.name for o in original.get_outputs()],
                            original.run(None, {k: v for k, v in feed.items()
                                                if k in [i.name for i in original.get_inputs()]})))
        got = dict(zip(outputs, export.run(None, feed)))
        for n in outputs:
            ours = np.load(os.path.join(a.ours, d, safe(n) + ".npy"))
            s = stats[n]
            s["diff"] = max(s["diff"], float(np.max(np.abs(got[n].astype(np.float64) - ours))))
            s["ref"] = max(s["ref"], float(np.max(np.abs(ours))))
            if n in orig_out:
                s["kl_ort"].append(kl(orig_out[n], got[n]))
                s["kl_ours"].append(kl(orig_out[n], ours))
            s["kl_x"].append(kl(ours, got[n]))
    ok = True
    for n in outputs:
        s = stats[n]
        rel = s["diff"] / s["ref"] if s["ref"] > 0 else s["diff"]
        k1 = float(np.mean(s["kl_ort"])) if s["kl_ort"] else float("nan")
        k2 = float(np.mean(s["kl_ours"])) if s["kl_ours"] else float("nan")
        k3 = float(np.mean(s["kl_x"]))
        print(f"{n} samples={len(feeds)} max_diff={s['diff']:.3e} rel_diff={rel:.3e} "
              f"kl_ort={k1:.6f} kl_ours={k2:.6f} kl_ours_vs_ort={k3:.3e}")
        ok &= rel <= a.max_rel_diff
        if s["kl_ort"]:
            ok &= abs(k1 - k2) <= a.max_kl_gap
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
