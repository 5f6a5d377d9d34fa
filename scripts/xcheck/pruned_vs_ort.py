#!/usr/bin/env python3
"""Oracle: does a pruned model, written as ONNX by edgepack, run in ONNX Runtime and compute
what edgepack's runtime computed on the same model stored sparse (.epk)?

    pruned_vs_ort.py PRUNED.onnx --input NAME=FILE.npy [...] --ours NAME=FILE.npy [...]
                     [--atol 1e-4] [--safetensors PRUNED.safetensors]

1. onnx.checker.check_model(PRUNED.onnx, full_check=True).
2. PRUNED.onnx runs in ONNX Runtime (CPU, one thread) on the given inputs; each output named
   by --ours is compared with edgepack's output for it: max |ours - ort| <= --atol.
3. The zero fraction of every float initializer is reported (a pruned weight's zeros are
   stored in the ONNX file: its dense form).
4. With --safetensors: the file loads with the `safetensors` package (numpy), every tensor
   in it is dense (a plain dtype, the initializer's shape) and equals the ONNX initializer of
   the same name bit for bit, and every float initializer of the ONNX file is in it.

Prints one JSON object on stdout; exit 0 when every check holds, 1 when one does not, 2 on
bad usage.
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def pairs(items, what):
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"pruned_vs_ort: {what} '{item}' is not NAME=FILE")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--input", action="append", required=True)
    ap.add_argument("--ours", action="append", required=True)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--safetensors")
    args = ap.parse_args()
    inputs = {k: np.load(v) for k, v in pairs(args.input, "--input").items()}
    ours = {k: np.load(v) for k, v in pairs(args.ours, "--ours").items()}

    result = {"ok": True, "atol": args.atol}
    model = onnx.load(args.model)
    try:
        onnx.checker.check_model(args.model, full_check=True)
        result["checker"] = "full_check passed"
    except Exception as e:  # the checker's own exception types vary by version
        result["checker"] = f"failed: {e}"
        result["ok"] = False

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    result["zero_fraction"] = {
        name: float(np.mean(a == 0)) for name, a in inits.items() if a.dtype.kind == "f" and a.size
    }

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    missing = [n for n in ours if n not in names]
    if missing:
        raise SystemExit(f"pruned_vs_ort: --ours names {missing}, not outputs of {args.model}")
    got = dict(zip(names, sess.run(names, inputs)))
    outputs = {}
    for name, mine in ours.items():
        ref = got[name]
        entry = {"shape": list(ref.shape)}
        if mine.shape != ref.shape:
            entry["error"] = f"shape {list(mine.shape)} vs ORT {list(ref.shape)}"
            result["ok"] = False
        else:
            diff = float(np.max(np.abs(mine.astype(np.float64) - ref.astype(np.float64))))
            entry["max_abs_diff"] = diff
            entry["max_abs_ort"] = float(np.max(np.abs(ref)))
            if ref.ndim >= 1 and ref.shape[-1] > 1:
                entry["argmax_agreement"] = float(np.mean(mine.argmax(-1) == ref.argmax(-1)))
            if not diff <= args.atol:
                result["ok"] = False
        outputs[name] = entry
    result["outputs"] = outputs

    if args.safetensors:
        from safetensors.numpy import load_file

        st = load_file(args.safetensors)
        bad = []
        for name, a in st.items():
            ref = inits.get(name)
            if ref is None:
                bad.append(f"{name}: not an initializer of the ONNX file")
            elif a.dtype != ref.dtype or a.shape != ref.shape:
                bad.append(f"{name}: {a.dtype} {list(a.shape)} vs ONNX {ref.dtype} {list(ref.shape)}")
            elif a.tobytes() != ref.tobytes():
                bad.append(f"{name}: values differ (max abs {float(np.max(np.abs(a - ref)))})")
        for name, a in inits.items():
            if a.dtype.kind == "f" and name not in st:
                bad.append(f"{name}: missing from the safetensors file")
        result["safetensors"] = {"tensors": len(st), "mismatches": bad}
        if bad:
            result["ok"] = False

    print(json.dumps(result, indent=1, sort_keys=True))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
