#!/usr/bin/env python3
"""Side by side: edgepack's quantize-static QDQ model and onnxruntime.quantization's
quantize_static on the same float model, the same calibration samples and calibrator,
both run in ONNX Runtime on the same evaluation data.

usage: static_vs_ort.py --float F.onnx --ours OURS.onnx --calib DIR --eval DIR
                        [--labels labels.npy | labels.txt --alphabet keys.txt]
                        [--calibrator minmax|percentile|entropy|mse] [--percentile 99.999]
                        [--activation-type int8|uint8] [--weight-type int8|uint8]
                        [--per-tensor] [--op-types Conv,MatMul,...] [--ort-out ORT.onnx] [--epk OURS.epk --edgepack BIN]
                        [--json OUT.json]

F.onnx is the float model quantize-static saw (for a recipe whose earlier passes change the
model, an .onnx written by those passes alone). --calib and --eval are folders of .npz
samples (all of --calib is used: point the recipe's calibration.data at the same folder with
samples 0). For each model the script prints accuracy (labels.npy: class accuracy of the
argmax; labels.txt: CTC line accuracy), KL(float || quantized) mean over rows of the class
axis (softmax first when the output is not a distribution), top-1 agreement with the float
model, and the max abs diff of the outputs. With --epk, our .epk is run by `edgepack run`
on the same data and compared with ORT running OURS.onnx (the max abs diff per output).
Exit 0; 1 when a model fails to load or run in ORT.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)


def npz_samples(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if not files:
        sys.exit(f"{folder}: no .npz samples")
    out = []
    for f in files:
        with np.load(f) as z:
            out.append({k: z[k] for k in z.files})
    return out


class Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.samples = samples
        self.i = 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        self.i += 1
        return self.samples[self.i - 1]

    def rewind(self):
        self.i = 0


def session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_all(path, samples):
    s = session(path)
    names = [o.name for o in s.get_outputs()]
    outs = [s.run(None, x) for x in samples]
    return {n: [o[i] for o in outs] for i, n in enumerate(names)}


def as_dist(x):
    x = np.asarray(x, dtype=np.float64)
    if np.all(x >= 0) and np.allclose(x.sum(-1), 1.0, atol=1e-3):
        return x
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl_rows(p, q):
    p = np.clip(as_dist(p), 1e-12, None)
    q = np.clip(as_dist(q), 1e-12, None)
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1).reshape(-1)


def ctc_decode(ids, blank=0):
    out, prev = [], -1
    for t in ids:
        if t != prev and t != blank:
            out.append(int(t))
        prev = t
    return out


def metrics(ref, got, labels, alphabet):
    r = np.concatenate([np.asarray(a).reshape(-1, np.asarray(a).shape[-1]) for a in ref])
    g = np.concatenate([np.asarray(a).reshape(-1, np.asarray(a).shape[-1]) for a in got])
    m = {
        "kl_mean": float(kl_rows(r, g).mean()),
        "top1_agreement": float((r.argmax(-1) == g.argmax(-1)).mean() * 100.0),
        "max_abs_diff": float(np.max(np.abs(r - g))),
    }
    if labels is not None and alphabet is None:
        pred = np.concatenate([np.asarray(a).argmax(-1).reshape(-1) for a in got])
        m["accuracy"] = float((pred == labels[: pred.size]).mean() * 100.0)
    elif labels is not None:
        lines = [x for a in got for x in np.asarray(a).argmax(-1).reshape(-1, np.asarray(a).shape[-2])]
        ok = 0
        for ids, text in zip(lines, labels):
            ok += "".join(alphabet[i - 1] for i in ctc_decode(ids) if 0 < i <= len(alphabet)) == text
        m["accuracy"] = ok * 100.0 / len(lines)
    return m


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def epk_vs_onnx(edgepack, epk, ours, eval_dir, samples):
    """Max abs diff per output between `edgepack run OURS.epk` and ORT on OURS.onnx."""
    ort_outs = run_all(ours, samples)
    diffs = {}
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([edgepack, "run", epk, "--data", eval_dir, "--out", tmp, "--quiet"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"edgepack run {epk}: {r.stderr}")
        # One folder per sample, OUT/sample_K/NAME.npy, in sample order.
        for name, arrays in ort_outs.items():
            got = sorted(glob.glob(os.path.join(tmp, "sample_*", safe(name) + ".npy")))
            worst = 0.0
            for x, path in zip(arrays, got):
                y = np.load(path)
                worst = max(worst, float(np.max(np.abs(np.asarray(x, np.float64) - y))))
            diffs[name] = {"max_abs_diff": worst, "compared": min(len(arrays), len(got))}
    return diffs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--float", required=True, dest="float_model")
    ap.add_argument("--ours", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--alphabet")
    ap.add_argument("--calibrator", default="minmax",
                    choices=["minmax", "percentile", "entropy", "mse"])
    ap.add_argument("--percentile", type=float, default=99.999)
    ap.add_argument("--activation-type", default="int8", choices=["int8", "uint8"])
    ap.add_argument("--weight-type", default="int8", choices=["int8", "uint8"])
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--op-types", default="", help="comma-separated op types for both (empty: ORT's default)")
    ap.add_argument("--ort-out")
    ap.add_argument("--epk")
    ap.add_argument("--edgepack")
    ap.add_argument("--json")
    a = ap.parse_args()

    calib = npz_samples(a.calib)
    evals = npz_samples(a.eval)
    labels, alphabet = None, None
    if a.labels and a.labels.endswith(".npy"):
        labels = np.load(a.labels).reshape(-1)
    elif a.labels:
        with open(a.labels, encoding="utf-8") as f:
            labels = [line.rstrip("\n") for line in f]
        with open(a.alphabet, encoding="utf-8") as f:
            alphabet = [line.rstrip("\n") for line in f] + [" "]

    qt = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy, "mse": CalibrationMethod.Distribution}
    tmp = tempfile.TemporaryDirectory()
    ort_path = a.ort_out or os.path.join(tmp.name, "ort_qdq.onnx")
    src = onnx.load(a.float_model)
    opset = next((o.version for o in src.opset_import if o.domain in ("", "ai.onnx")), 0)
    float_path = a.float_model
    if opset < 13:  # per-channel QDQ needs opset 13: the same version converter step as ours
        src = onnx.version_converter.convert_version(src, 13)
        float_path = os.path.join(tmp.name, "float13.onnx")
        onnx.save(src, float_path)
    extra = {}
    if a.calibrator == "percentile":
        extra["CalibPercentile"] = a.percentile
    quantize_static(float_path, ort_path, Reader(calib), quant_format=QuantFormat.QDQ,
                    per_channel=not a.per_tensor, activation_type=qt[a.activation_type],
                    weight_type=qt[a.weight_type], calibrate_method=method[a.calibrator],
                    extra_options=extra,
                    op_types_to_quantize=[t for t in a.op_types.split(",") if t] or None)

    ref = run_all(a.float_model, evals)
    report = {"calibrator": a.calibrator, "calibration_samples": len(calib),
              "eval_samples": len(evals), "models": {}}
    rc = 0
    for label, path in (("float", a.float_model), ("edgepack", a.ours),
                        ("onnxruntime", ort_path)):
        try:
            out = run_all(path, evals)
        except Exception as e:  # a model ORT cannot load or run
            print(f"{label}: {path} does not run in ONNX Runtime: {e}")
            rc = 1
            continue
        name = next(iter(ref))
        report["models"][label] = metrics(ref[name], out[name], labels, alphabet)
    if a.epk:
        report["epk_vs_onnx"] = epk_vs_onnx(a.edgepack, a.epk, a.ours, a.eval, evals)

    print(f"calibrator {a.calibrator}, {len(calib)} calibration samples, {len(evals)} eval samples")
    print(f"{'model':<12} {'accuracy':>9} {'KL mean':>10} {'top-1 agr':>9} {'max|diff|':>10}")
    for label, m in report["models"].items():
        acc = f"{m['accuracy']:.2f}" if "accuracy" in m else "-"
        print(f"{label:<12} {acc:>9} {m['kl_mean']:>10.3e} {m['top1_agreement']:>9.2f} "
              f"{m['max_abs_diff']:>10.3e}")
    for name, d in report.get("epk_vs_onnx", {}).items():
        print(f"ours .epk (edgepack run) vs ours .onnx (ORT), output {name}: max abs diff "
              f"{d['max_abs_diff']:.3e} over {d['compared']} samples")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return rc


if __name__ == "__main__":
    sys.exit(main())
