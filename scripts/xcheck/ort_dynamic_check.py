#!/usr/bin/env python3
"""Loads a dynamically quantized ONNX model (edgepack's quantize-dynamic) in ONNX Runtime, runs
it and its float source on real samples, and prints how far the quantized outputs are from the
float ones; optionally the same for onnxruntime.quantization.quantize_dynamic's model of the
same source (side by side), and against edgepack's runtime on the quantized model.

usage: ort_dynamic_check.py FLOAT.onnx QUANT.onnx --data DATA [--ort-quantize [--per-channel]]
           [--ours DIR] [--classes NAME,...] [--json]
  DATA       a folder of .npz samples (one run each; members named after the inputs), or a
             token-id .npy [S, T] (sample s = row s as [1, T]), as edgepack's --data reads them
  --ours DIR edgepack's outputs of QUANT.onnx on the same samples (`edgepack run --data DATA
             --out DIR`: DIR/sample_KK/NAME.npy in sample order, or DIR/NAME.npy for one sample):
             prints the largest
             |ORT - ours| per output
Metrics per float output (over all samples): cosine per row along the last axis (mean and
min), max |quantized - float|, and for the outputs named in --classes (logits whose last axis
is a class axis): KL(float || quantized) of the softmax per row (mean) and top-1 agreement in
percent. Prints one line per model and output,
or one JSON object with --json. Exit 0 when every model loaded and ran, 1 otherwise.
"""
import argparse
import json
import os
import re
import sys
import tempfile

import numpy as np


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def samples(path, input_names):
    if path.endswith(".npy"):
        rows = np.load(path)
        return [{input_names[0]: rows[s:s + 1]} for s in range(rows.shape[0])]
    out = []
    for f in sorted(os.listdir(path)):
        if f.endswith(".npz"):
            d = np.load(os.path.join(path, f))
            out.append({k: d[k] for k in input_names})
    if not out:
        raise SystemExit(f"{path}: no .npz samples")
    return out


def session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def metrics(ref_list, got_list, classes):
    ref = np.concatenate([r.reshape(-1, r.shape[-1]) for r in ref_list]).astype(np.float64)
    got = np.concatenate([g.reshape(-1, g.shape[-1]) for g in got_list]).astype(np.float64)
    dot = (ref * got).sum(1)
    norm = np.sqrt((ref * ref).sum(1) * (got * got).sum(1))
    cos = np.where(norm > 0, dot / np.where(norm > 0, norm, 1), 1.0)
    m = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
         "max_abs_diff": float(np.abs(ref - got).max())}
    if classes:
        p, q = softmax(ref), softmax(got)
        kl = (p * (np.log(np.maximum(p, 1e-30)) - np.log(np.maximum(q, 1e-30)))).sum(1)
        m["kl_mean"] = float(kl.mean())
        m["top1_agreement"] = float((ref.argmax(1) == got.argmax(1)).mean() * 100)
    return m


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("float_model")
    ap.add_argument("quant_model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--ort-quantize", action="store_true")
    ap.add_argument("--per-channel", action="store_true")
    ap.add_argument("--ours")
    ap.add_argument("--classes", default="")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    ref_sess = session(a.float_model)
    inputs = [i.name for i in ref_sess.get_inputs()]
    data = samples(a.data, inputs)
    names = [o.name for o in ref_sess.get_outputs()]
    classes = set(filter(None, a.classes.split(",")))
    ref = [dict(zip([o.name for o in ref_sess.get_outputs()], ref_sess.run(None, s))) for s in data]
    floats = [n for n in names if np.issubdtype(ref[0][n].dtype, np.floating)]

    models = {"edgepack": a.quant_model}
    tmp = tempfile.mkdtemp()
    if a.ort_quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        path = os.path.join(tmp, "ort_dynamic.onnx")
        quantize_dynamic(a.float_model, path, weight_type=QuantType.QInt8,
                         per_channel=a.per_channel)
        models["onnxruntime"] = path
    report = {"samples": len(data), "models": {}}
    ok = True
    for label, path in models.items():
        import onnx

        ops = {}
        for n in onnx.load(path, load_external_data=False).graph.node:
            if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                             "DequantizeLinear", "MatMul", "Gemm", "Conv",
                             "DynamicQuantizeMatMul", "MatMulIntegerToFloat"):
                ops[n.op_type] = ops.get(n.op_type, 0) + 1
        entry = {"ops": ops, "bytes": os.path.getsize(path)}
        try:
            sess = session(path)
            got = [dict(zip([o.name for o in sess.get_outputs()], sess.run(None, s))) for s in data]
        except Exception as e:  # the model does not load or run: the point of this check
            entry["error"] = str(e).splitlines()[0][:300]
            report["models"][label] = entry
            ok = False
            continue
        entry["outputs"] = {n: metrics([r[n] for r in ref], [g[n] for g in got], n in classes) for n in floats}
        if label == "edgepack" and a.ours:
            worst = {}
            dirs = sorted(d for d in os.listdir(a.ours) if d.startswith("sample_"))
            if len(dirs) != len(got) and not (len(got) == 1 and not dirs):
                raise SystemExit(f"{a.ours}: {len(dirs)} sample folders, {len(got)} samples")
            for n in floats:
                d = 0.0
                for k, g in enumerate(got):
                    f = os.path.join(a.ours, dirs[k] if dirs else "", safe(n) + ".npy")
                    d = max(d, float(np.abs(np.load(f).astype(np.float64) - g[n]).max()))
                worst[n] = d
            entry["ort_vs_edgepack_max_abs_diff"] = worst
        report["models"][label] = entry
    if a.json:
        print(json.dumps(report, indent=1, sort_keys=True))
    else:
        for label, e in report["models"].items():
            print(f"{label}: {e['bytes']} bytes, ops {e['ops']}")
            if "error" in e:
                print(f"  does not run in ONNX Runtime: {e['error']}")
                continue
            for n, m in e["outputs"].items():
                print(f"  {n}: " + ", ".join(f"{k} {v:.6g}" for k, v in sorted(m.items())))
            for n, d in e.get("ort_vs_edgepack_max_abs_diff", {}).items():
                print(f"  {n}: max |ORT - edgepack runtime| {d:.6g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
