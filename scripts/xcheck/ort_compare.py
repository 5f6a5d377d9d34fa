#!/usr/bin/env python3
"""Oracle: does a written ONNX model still check and compute what the original did?

    ort_compare.py ORIGINAL.onnx WRITTEN.onnx [--mode bitwise|tol] [--rtol 1e-4]
                   [--shape NAME=1,3,48,320] [--dim SYMBOL=VALUE] [--int-range NAME=LO,HI]
                   [--seed 0] [--samples 1]

1. onnx.checker.check_model(WRITTEN) by path (so external data and > 2 GB work), with
   full_check (shape inference) unless that also fails on ORIGINAL, in which case the basic
   check is used and the reason is reported.
2. Both models run in ONNX Runtime (CPU, one thread) on the same seeded random inputs.
   Input shapes come from ORIGINAL's session: symbolic dimensions take --dim values (default
   1), or a whole input's shape is given with --shape. Floats are standard normal; integers
   are uniform in --int-range (default [0, 10)); bools are random.
3. Outputs are compared by name: --mode bitwise asserts identical bytes (NaNs included);
   --mode tol asserts max|written - original| / max|original| <= --rtol per output, over
   the positions where both are finite (max|original| over its finite values), and that
   every other position holds the same non-finite value in both: NaN where the original has
   NaN, the same infinity. A NaN or infinity in one output only fails, all-NaN included.

Prints one JSON summary on stdout; exit 0 when it holds, 1 when it does not, 2 on bad usage.
Any two models with the same input names can be compared (the output of a pass against its
input, a round trip against the original).
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint64)": np.uint64,
    "tensor(uint32)": np.uint32,
    "tensor(uint16)": np.uint16,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def parse_pairs(items, what, convert):
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"ort_compare: {what} '{item}' is not NAME=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key] = convert(value)
        except ValueError:
            raise SystemExit(f"ort_compare: {what} '{item}' has a bad value")
    return out


def check(written, original):
    """Returns (level, note): 'full' or 'basic', and why full was not used."""
    try:
        onnx.checker.check_model(written, full_check=True)
        return "full", ""
    except Exception as written_error:  # noqa: BLE001 - the checker raises several types
        try:
            onnx.checker.check_model(original, full_check=True)
        except Exception as original_error:  # noqa: BLE001
            onnx.checker.check_model(written)  # raises if even the basic check fails
            return "basic", f"full_check fails on the original too: {original_error}"[:300]
        raise RuntimeError(f"full_check fails on the written model only: {written_error}")


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def make_inputs(sess, shapes, dims, int_ranges, rng):
    feeds = {}
    for inp in sess.get_inputs():
        if inp.type not in ORT_TYPES:
            raise SystemExit(f"ort_compare: input {inp.name} has unsupported type {inp.type}")
        dtype = ORT_TYPES[inp.type]
        if inp.name in shapes:
            shape = shapes[inp.name]
        else:
            shape = [d if isinstance(d, int) and d >= 0 else dims.get(str(d), 1) for d in inp.shape]
        if np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            value = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            lo, hi = int_ranges.get(inp.name, (0, 10))
            value = rng.integers(lo, hi, shape).astype(dtype)
        feeds[inp.name] = value
    return feeds


def compare(ref, got, mode, rtol):
    result = {"shape": list(ref.shape), "dtype": str(ref.dtype)}
    if ref.shape != got.shape or ref.dtype != got.dtype:
        result.update(ok=False, reason=f"written gives {got.dtype}{list(got.shape)}")
        return result
    result["bitwise_equal"] = ref.tobytes() == got.tobytes()
    if np.issubdtype(ref.dtype, np.number) and ref.size:
        r, g = ref.astype(np.float64), got.astype(np.float64)
        # Non-finite values compare by position: a NaN where the original has a NaN, or the
        # same infinity, is equal; a NaN or infinity on one side only fails tolerance mode
        # whatever its size (a NaN has no distance to take a maximum of).
        same = (r == g) | (np.isnan(r) & np.isnan(g))
        finite = np.isfinite(r) & np.isfinite(g)
        diff = np.abs(g[finite] - r[finite])
        finite_ref = np.abs(r[np.isfinite(r)])
        max_ref = float(np.max(finite_ref)) if finite_ref.size else 0.0
        max_diff = float(np.max(diff)) if diff.size else 0.0
        result.update(max_abs_diff=max_diff, max_abs_ref=max_ref,
                      rel=max_diff / max_ref if max_ref > 0 else max_diff,
                      nonfinite_mismatches=int(np.count_nonzero(~same & ~finite)))
    if mode == "bitwise":
        result["ok"] = result["bitwise_equal"]
    else:
        result["ok"] = result["bitwise_equal"] or (result.get("nonfinite_mismatches", 1) == 0 and
                                                   result.get("rel", float("inf")) <= rtol)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("original")
    ap.add_argument("written")
    ap.add_argument("--mode", choices=["bitwise", "tol"], default="bitwise")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--shape", action="append", help="NAME=D0,D1,...: an input's whole shape")
    ap.add_argument("--dim", action="append", help="SYMBOL=VALUE for symbolic dimensions")
    ap.add_argument("--int-range", action="append", help="NAME=LO,HI for integer inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=1, help="random input sets to run")
    ap.add_argument("--skip-check", action="store_true", help="do not run onnx.checker")
    args = ap.parse_args()

    shapes = parse_pairs(args.shape, "--shape", lambda v: [int(x) for x in v.split(",") if x])
    dims = parse_pairs(args.dim, "--dim", int)
    int_ranges = parse_pairs(args.int_range, "--int-range",
                             lambda v: tuple(int(x) for x in v.split(",")))
    summary = {"original": args.original, "written": args.written, "mode": args.mode}
    if args.mode == "tol":
        summary["rtol"] = args.rtol
    ok = True
    if not args.skip_check:
        try:
            level, note = check(args.written, args.original)
            summary["checker"] = level
            if note:
                summary["checker_note"] = note
        except Exception as e:  # noqa: BLE001
            summary["checker"] = "failed"
            summary["checker_error"] = str(e)[:1000]
            ok = False

    ref_sess, got_sess = session(args.original), session(args.written)
    ref_names = sorted(i.name for i in ref_sess.get_inputs())
    got_names = sorted(i.name for i in got_sess.get_inputs())
    if ref_names != got_names:
        print(json.dumps({**summary, "ok": False,
                          "reason": f"inputs differ: {ref_names} vs {got_names}"}))
        return 1
    out_names = [o.name for o in ref_sess.get_outputs()]
    if sorted(out_names) != sorted(o.name for o in got_sess.get_outputs()):
        print(json.dumps({**summary, "ok": False, "reason": "output names differ"}))
        return 1

    rng = np.random.default_rng(args.seed)
    outputs = {}
    for sample in range(args.samples):
        feeds = make_inputs(ref_sess, shapes, dims, int_ranges, rng)
        if sample == 0:
            summary["inputs"] = {k: list(v.shape) for k, v in feeds.items()}
        ref = ref_sess.run(out_names, feeds)
        got = got_sess.run(out_names, feeds)
        for name, r, g in zip(out_names, ref, got):
            res = compare(np.asarray(r), np.asarray(g), args.mode, args.rtol)
            prev = outputs.get(name)
            # Keep the worst sample per output.
            if prev is None or (prev["ok"] and not res["ok"]) or \
                    res.get("rel", 0) > prev.get("rel", 0):
                outputs[name] = res
    summary["outputs"] = outputs
    ok = ok and all(o["ok"] for o in outputs.values())
    summary["ok"] = ok
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
