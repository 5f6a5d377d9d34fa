#!/usr/bin/env python3
"""Latency of edgepack's runtime against ONNX Runtime on the real models, same inputs.

For every (model, thread count) the script writes seeded inputs as .npy, then alternates
rounds: `edgepack bench --json --input ...` (a fresh process: warm-up + R runs) and ONNX
Runtime (one session kept for the whole comparison: warm-up + R runs of the same arrays),
so that both see the same machine load. All timed runs of each side are pooled and the
table reports p50 (median) per side and the ratio edgepack / ORT.

ONNX Runtime settings: CPUExecutionProvider, intra_op_num_threads = N,
inter_op_num_threads = 1, sequential execution, default graph optimizations.

Usage: bench/bench_vs_ort.py --edgepack BUILD/compressor/edgepack [--threads 1 2]
       [--rounds 5] [--runs 10] [--warmup 3] [--models mnist,cls,...] [--json FILE]
Models whose files are missing are skipped with a note.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGEPACK_SHARED_MODELS", ROOT.parent / "shared" / "models"))
CACHE = Path(os.environ.get("EDGEPACK_MODEL_CACHE", ROOT / ".cache" / "models"))
DATA = ROOT / ".cache" / "data"


def image(shape):
    return lambda rng: {"x": rng.random(shape, dtype=np.float32)}


def tokens(t):
    return lambda rng: {"input_ids": rng.integers(0, 512, size=(1, t), dtype=np.int64)}


def vad_frame(index):
    path = ROOT / ".cache" / "data" / "silero-vad-eval" / f"frame_{index:03d}.npz"
    return lambda rng: dict(np.load(path))


# name, path, input generator (seeded numpy Generator -> {input name: array})
MODELS = [
    ("mnist-b1", SHARED / "mnist/mnist-cnn.onnx",
     lambda rng: {"input": rng.random((1, 1, 28, 28), dtype=np.float32)}),
    ("mnist-b4", SHARED / "mnist/mnist-cnn.onnx",
     lambda rng: {"input": rng.random((4, 1, 28, 28), dtype=np.float32)}),
    ("stories260k-t16", SHARED / "stories260k/model.onnx", tokens(16)),
    ("stories260k-t64", SHARED / "stories260k/model.onnx", tokens(64)),
    ("ppocr-cls", CACHE / "ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx", image((1, 3, 48, 192))),
    ("ppocr-rec", CACHE / "ppocr/ch_PP-OCRv4_rec_infer.onnx", image((1, 3, 48, 320))),
    # Silero VAD v4 (LSTMs inside If): one voiced 512-sample frame of
    # scripts/make_vad_data.py's signal with the states the frames before it left.
    ("silero-vad", CACHE / "silero-vad/silero_vad.onnx", vad_frame(30)),
    # A log-mel front end (STFT -> |X|^2 -> mel MatMul -> Log, scripts/make_logmel.py) on
    # 1 s of the same synthesized 16 kHz signal.
    ("logmel-1s", DATA / "logmel/logmel.onnx",
     lambda rng: {"audio": np.load(DATA / "logmel/audio.npy")}),
]


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_round(sess, feeds, warmup, runs):
    """Wall-clock and process CPU milliseconds of each timed run."""
    for _ in range(warmup):
        sess.run(None, feeds)
    wall, cpu = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        sess.run(None, feeds)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return wall, cpu


def edgepack_round(binary, model, files, threads, warmup, runs):
    cmd = [str(binary), "bench", str(model), "--json", "--threads", str(threads),
           "--warmup", str(warmup), "--runs", str(runs)]
    for name, f in files.items():
        cmd += ["--input", f"{name}={f}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    j = json.loads(r.stdout)
    return j["latencies_ms"], j["cpu_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgepack", required=True, help="path to the edgepack binary")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per side")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per round")
    ap.add_argument("--models", default="", help="comma-separated subset of: " +
                    ", ".join(m[0] for m in MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()

    wanted = set(filter(None, args.models.split(",")))
    unknown = wanted - {m[0] for m in MODELS}
    if unknown:
        sys.exit(f"unknown model(s): {', '.join(sorted(unknown))}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as tmp:
        for name, path, make in MODELS:
            if wanted and name not in wanted:
                continue
            if not path.exists():
                print(f"skipped {name}: {path} not found", file=sys.stderr)
                continue
            feeds = make(np.random.default_rng(args.seed))
            files = {}
            for k, v in feeds.items():
                f = Path(tmp) / f"{name}-{k}.npy"
                np.save(f, v)
                files[k] = f
            for threads in args.threads:
                sess = ort_session(path, threads)
                ep_ms, ort_ms, ep_cpu, ort_cpu = [], [], [], []
                for _ in range(args.rounds):
                    wall, cpu = edgepack_round(args.edgepack, path, files, threads, args.warmup, args.runs)
                    ep_ms += wall
                    ep_cpu += cpu
                    wall, cpu = ort_round(sess, feeds, args.warmup, args.runs)
                    ort_ms += wall
                    ort_cpu += cpu
                del sess
                ep, ox = statistics.median(ep_ms), statistics.median(ort_ms)
                ec, oc = statistics.median(ep_cpu), statistics.median(ort_cpu)
                row = {"model": name, "threads": threads, "inputs": {k: list(v.shape) for k, v in feeds.items()},
                       "edgepack_p50_ms": ep, "ort_p50_ms": ox, "ratio": ep / ox,
                       "edgepack_min_ms": min(ep_ms), "ort_min_ms": min(ort_ms),
                       "edgepack_cpu_p50_ms": ec, "ort_cpu_p50_ms": oc, "runs": len(ep_ms)}
                rows.append(row)
                print(f"{name:18s} t={threads}  edgepack {ep:9.3f} ms  ort {ox:9.3f} ms  ratio {ep / ox:6.2f}"
                      f"  (min {min(ep_ms):.3f} / {min(ort_ms):.3f} = {min(ep_ms) / min(ort_ms):.2f};"
                      f" cpu {ec:.3f} / {oc:.3f} = {ec / oc:.2f})",
                      file=sys.stderr, flush=True)

    print()
    # Wall-clock p50 is the headline; the CPU-time ratio (process CPU per run, p50) is
    # shown beside it because on a busy machine wall time includes waiting for a CPU.
    print(f"{'model':18s} {'threads':>7s} {'edgepack p50 ms':>16s} {'ORT p50 ms':>11s} {'ratio':>7s} {'cpu ratio':>10s}")
    for r in rows:
        print(f"{r['model']:18s} {r['threads']:7d} {r['edgepack_p50_ms']:16.3f} {r['ort_p50_ms']:11.3f} "
              f"{r['ratio']:7.2f} {r['edgepack_cpu_p50_ms'] / r['ort_cpu_p50_ms']:10.2f}")
    try:
        load = os.getloadavg()
        print(f"\n(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs; "
              f"onnxruntime {ort.__version__}; {args.rounds} rounds x {args.runs} runs per side)")
    except OSError:
        pass
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
