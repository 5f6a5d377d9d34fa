#!/usr/bin/env python3
"""Latency of edgepack's runtime against ONNX Runtime on the real models, same inputs.

For every (model, thread count) the script writes seeded inputs as .npy, then alternates
rounds: `edgepack bench --json --input ...` (a fresh process: warm-up + R runs) and ONNX
Runtime (one session kept for the whole comparison: warm-up + R runs of the same arrays),
so that both see the same machine load. All timed runs of each side are pooled and the
table reports p50 (median) per side and the ratio edgepack / ORT.

ONNX Runtime settings: CPUExecutionProvider, intra_op_num_threads = N,
inter_op_num_threads = 1, sequential execution, default graph optimizations.

KV-cache decoders (DECODERS: stories260k as scripts/make_decoder.py writes it, the GenAI
builder's GroupQueryAttention graph and the plain-op one, int4 MatMulNBits) are timed as a
decode loop on both sides: each run is one sequence, a prefill of --prefill tokens then
--steps single-token steps wiring present.* to past_key_values.* (docs/decoder.md); the
rows give prefill and decode tokens/s per side and the time ratio edgepack / ORT.

Usage: bench/bench_vs_ort.py --edgepack BUILD/compressor/edgepack [--threads 1 2]
       [--rounds 5] [--runs 10] [--warmup 3] [--models mnist,cls,...] [--json FILE]
       [--prefill 64] [--steps 64]
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


def image(shape, name="x"):
    return lambda rng: {name: rng.random(shape, dtype=np.float32)}


def tokens(t):
    return lambda rng: {"input_ids": rng.integers(0, 512, size=(1, t), dtype=np.int64)}


def made_by(script, *script_args):
    """A model a script writes (into the bench's temp folder): a callable tmp -> path."""
    def make(tmp):
        out = Path(tmp) / (Path(script).stem + ".onnx")
        if not out.exists():
            subprocess.run([sys.executable, str(ROOT / script), str(out), *script_args], check=True,
                           capture_output=True)
        return out
    return make


def vad_frame(index):
    path = ROOT / ".cache" / "data" / "silero-vad-eval" / f"frame_{index:03d}.npz"
    return lambda rng: dict(np.load(path))


# name, path (or a callable tmp -> path for a generated model), input generator (seeded
# numpy Generator -> {input name: array})
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
    # A small CNN as tf2onnx exports a TF detector (scripts/make_tf_cnn.py: NHWC Transposes
    # around Conv / LeakyRelu / Mul + Max / MaxPool blocks; seeded weights, speed only).
    ("tf-cnn", made_by("scripts/make_tf_cnn.py", "--size", "96"), image((1, 96, 96, 3), "image")),
]


# name, make_decoder.py arguments: built from stories260k's safetensors into the temp dir.
DECODERS = [
    ("stories260k-decoder-gqa", ["--attention", "gqa", "--weights", "int4"]),
    ("stories260k-decoder-plain", ["--attention", "plain", "--weights", "int4"]),
]


def ort_decode_round(sess, tokens, prefill, steps, warmup, runs):
    """Milliseconds of each timed sequence's prefill and of its decode steps (sum)."""
    sys.path.insert(0, str(ROOT / "scripts" / "xcheck"))
    from decoder_ort import decode_logits

    for _ in range(warmup):
        decode_logits(sess, tokens, prefill, steps)
    prefill_ms, decode_ms = [], []
    for _ in range(runs):
        times = []
        decode_logits(sess, tokens, prefill, steps, times)
        prefill_ms.append(times[0])
        decode_ms.append(sum(times[1:]))
    return prefill_ms, decode_ms


def edgepack_decode_round(binary, model, tokens_file, threads, prefill, steps, warmup, runs):
    cmd = [str(binary), "bench", str(model), "--json", "--quiet", "--threads", str(threads),
           "--warmup", str(warmup), "--runs", str(runs), "--prefill", str(prefill),
           "--steps", str(steps), "--tokens", str(tokens_file)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    d = json.loads(r.stdout)["decoder"]
    return d["prefill_runs_ms"], d["decode_runs_ms"]


def decoder_rows(args, wanted, tmp):
    rows = []
    source = SHARED / "stories260k" / "model.safetensors"
    for name, make_args in DECODERS:
        if wanted and name not in wanted:
            continue
        if not source.exists():
            print(f"skipped {name}: {source} not found", file=sys.stderr)
            continue
        model = Path(tmp) / f"{name}.onnx"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_decoder.py"), str(source), "-o", str(model)]
                       + make_args, check=True, capture_output=True)
        rng = np.random.default_rng(args.seed)
        tokens = rng.integers(0, 512, size=args.prefill + args.steps, dtype=np.int64)
        tokens_file = Path(tmp) / f"{name}-tokens.npy"
        np.save(tokens_file, tokens)
        for threads in args.threads:
            sess = ort_session(model, threads)
            ep_pre, ep_dec, ort_pre, ort_dec = [], [], [], []
            try:
                for _ in range(args.rounds):
                    p, d = edgepack_decode_round(args.edgepack, model, tokens_file, threads, args.prefill,
                                                 args.steps, 1, args.runs)
                    ep_pre += p
                    ep_dec += d
                    p, d = ort_decode_round(sess, tokens, args.prefill, args.steps, 1, args.runs)
                    ort_pre += p
                    ort_dec += d
            except RuntimeError as e:
                print(f"skipped {name} t={threads}: {str(e).splitlines()[-1]}", file=sys.stderr)
                continue
            del sess
            med = statistics.median
            row = {"model": name, "threads": threads, "prefill": args.prefill, "steps": args.steps,
                   "edgepack_prefill_tokens_per_s": args.prefill * 1000 / med(ep_pre),
                   "ort_prefill_tokens_per_s": args.prefill * 1000 / med(ort_pre),
                   "prefill_ratio": med(ep_pre) / med(ort_pre),
                   "edgepack_decode_tokens_per_s": args.steps * 1000 / med(ep_dec),
                   "ort_decode_tokens_per_s": args.steps * 1000 / med(ort_dec),
                   "decode_ratio": med(ep_dec) / med(ort_dec), "runs": len(ep_pre)}
            rows.append(row)
            print(f"{name:26s} t={threads}  prefill {row['edgepack_prefill_tokens_per_s']:9.0f} / "
                  f"{row['ort_prefill_tokens_per_s']:9.0f} tok/s (ratio {row['prefill_ratio']:.2f})  decode "
                  f"{row['edgepack_decode_tokens_per_s']:8.0f} / {row['ort_decode_tokens_per_s']:8.0f} tok/s "
                  f"(ratio {row['decode_ratio']:.2f})", file=sys.stderr, flush=True)
    return rows


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
                    ", ".join(m[0] for m in MODELS + DECODERS))
    ap.add_argument("--prefill", type=int, default=64, help="decoders: prompt tokens per sequence")
    ap.add_argument("--steps", type=int, default=64, help="decoders: decode steps per sequence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()

    wanted = set(filter(None, args.models.split(",")))
    unknown = wanted - {m[0] for m in MODELS + DECODERS}
    if unknown:
        sys.exit(f"unknown model(s): {', '.join(sorted(unknown))}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as tmp:
        for name, path, make in MODELS:
            if wanted and name not in wanted:
                continue
            if callable(path):
                path = path(tmp)
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
        decoders = decoder_rows(args, wanted, tmp)

    print()
    # Wall-clock p50 is the headline; the CPU-time ratio (process CPU per run, p50) is
    # shown beside it because on a busy machine wall time includes waiting for a CPU.
    print(f"{'model':18s} {'threads':>7s} {'edgepack p50 ms':>16s} {'ORT p50 ms':>11s} {'ratio':>7s} {'cpu ratio':>10s}")
    for r in rows:
        print(f"{r['model']:18s} {r['threads']:7d} {r['edgepack_p50_ms']:16.3f} {r['ort_p50_ms']:11.3f} "
              f"{r['ratio']:7.2f} {r['edgepack_cpu_p50_ms'] / r['ort_cpu_p50_ms']:10.2f}")
    if decoders:
        print(f"\n{'decoder':26s} {'threads':>7s} {'prefill tok/s ep / ORT':>24s} {'ratio':>6s} "
              f"{'decode tok/s ep / ORT':>23s} {'ratio':>6s}")
        for r in decoders:
            print(f"{r['model']:26s} {r['threads']:7d} {r['edgepack_prefill_tokens_per_s']:11.0f} / "
                  f"{r['ort_prefill_tokens_per_s']:10.0f} {r['prefill_ratio']:6.2f} "
                  f"{r['edgepack_decode_tokens_per_s']:10.0f} / {r['ort_decode_tokens_per_s']:10.0f} "
                  f"{r['decode_ratio']:6.2f}")
        print(f"(decoders: prefill {args.prefill} tokens + {args.steps} decode steps per sequence; "
              "ratio = edgepack time / ORT time)")
    try:
        load = os.getloadavg()
        print(f"\n(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs; "
              f"onnxruntime {ort.__version__}; {args.rounds} rounds x {args.runs} runs per side)")
    except OSError:
        pass
    if args.json:
        Path(args.json).write_text(json.dumps(rows + decoders, indent=2) + "\n")


if __name__ == "__main__":
    main()
