#!/usr/bin/env python3
"""Int8 latency of a QDQ model: edgepack's fused int8 kernels against the float model in
edgepack and against ONNX Runtime running the same QDQ model, in one run.

The QDQ model is PP-OCRv4 rec quantized by onnxruntime.quantization.quantize_static
(scripts/xcheck/ort_qdq_model.py: per-channel int8 weights, uint8 activations, minmax,
calibrated on the first 16 lines of .cache/data/ppocr-rec-calib), written once into the
--work folder (bench/qdq.sh: the build folder) as ppocr-rec-qdq.onnx. The input is a real rendered text line
(.cache/data/ppocr-rec-eval/00000.npz). For every thread count the script alternates
rounds of four sides so that all see the same machine load:
  edgepack float   `edgepack bench` on the float model
  edgepack int8    `edgepack bench` on the QDQ model (fused: QLinearConv / QLinearMatMul ...)
  ORT int8         one session on the QDQ model (ORT fuses the QDQ patterns itself)
  ORT float        one session on the float model (context)
and prints p50 latencies and the ratios int8 / float (edgepack) and edgepack / ORT (int8).

Usage: bench/qdq_vs_float.py --edgepack BUILD/compressor/edgepack [--threads 1 2]
       [--rounds 5] [--runs 10] [--warmup 3] [--json FILE] [--work DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_ort import CACHE, ROOT, edgepack_round, ort_round, ort_session  # noqa: E402

FLOAT = CACHE / "ppocr" / "ch_PP-OCRv4_rec_infer.onnx"
CALIB = ROOT / ".cache" / "data" / "ppocr-rec-calib"
LINE = ROOT / ".cache" / "data" / "ppocr-rec-eval" / "00000.npz"


def make_qdq(qdq):
    if qdq.exists():
        return
    print(f"making {qdq} with onnxruntime.quantization.quantize_static ...", file=sys.stderr)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "xcheck" / "ort_qdq_model.py"),
                    str(FLOAT), str(CALIB), str(qdq), "--per-channel", "--samples", "16"],
                   check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgepack", required=True)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--work", default=str(ROOT / "build-bench"),
                    help="folder for the QDQ model (made once)")
    args = ap.parse_args()
    QDQ = Path(args.work) / "ppocr-rec-qdq.onnx"
    for p in (FLOAT, CALIB, LINE):
        if not p.exists():
            sys.exit(f"error: {p} not found (scripts/fetch_models.sh, scripts/make_data.sh)")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    make_qdq(QDQ)
    x = np.load(LINE)["x"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepack-qdq-bench-") as tmp:
        f = Path(tmp) / "x.npy"
        np.save(f, x)
        files = {"x": f}
        for threads in args.threads:
            sessions = {"ort_int8": ort_session(QDQ, threads), "ort_float": ort_session(FLOAT, threads)}
            wall = {k: [] for k in ("ep_float", "ep_int8", "ort_int8", "ort_float")}
            for _ in range(args.rounds):
                wall["ep_float"] += edgepack_round(args.edgepack, FLOAT, files, threads,
                                                   args.warmup, args.runs)[0]
                wall["ep_int8"] += edgepack_round(args.edgepack, QDQ, files, threads,
                                                  args.warmup, args.runs)[0]
                for k, s in sessions.items():
                    wall[k] += ort_round(s, {"x": x}, args.warmup, args.runs)[0]
            p50 = {k: statistics.median(v) for k, v in wall.items()}
            row = {"threads": threads, **{f"{k}_p50_ms": v for k, v in p50.items()},
                   "int8_over_float": p50["ep_int8"] / p50["ep_float"],
                   "int8_over_ort_int8": p50["ep_int8"] / p50["ort_int8"],
                   "runs": len(wall["ep_int8"])}
            rows.append(row)
            print(f"t={threads} done", file=sys.stderr, flush=True)
    print(f"PP-OCRv4 rec, input {list(x.shape)} (a real text line), p50 ms over "
          f"{args.rounds} rounds x {args.runs} runs per side")
    print(f"{'threads':>7s} {'ep float':>9s} {'ep int8':>9s} {'ORT int8':>9s} {'ORT float':>9s} "
          f"{'ep int8/float':>14s} {'ep/ORT int8':>12s}")
    for r in rows:
        print(f"{r['threads']:7d} {r['ep_float_p50_ms']:9.2f} {r['ep_int8_p50_ms']:9.2f} "
              f"{r['ort_int8_p50_ms']:9.2f} {r['ort_float_p50_ms']:9.2f} "
              f"{r['int8_over_float']:14.2f} {r['int8_over_ort_int8']:12.2f}")
    load = os.getloadavg()
    print(f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs; "
          f"onnxruntime {ort.__version__})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
