#!/usr/bin/env python3
"""Decode and prefill tokens/s of edgepack's runtime against llama.cpp on the same GGUF.

For every (model, ggml type, thread count) one GGUF file is run by both sides:
  - llama.cpp through llama-cpp-python (`Llama`, n_threads = n_threads_batch = T): each
    run resets the context, evaluates the prompt (prefill) and then feeds the following
    tokens one at a time (decode), timing each `eval` call;
  - edgepack: scripts/make_decoder.py --weights gguf turns the same file into the ONNX
    Runtime GenAI-style KV-cache decoder (GroupQueryAttention + MatMulNBits) whose Q4_0 /
    Q8_0 projections keep the file's codes and scales, so both sides multiply by the same
    weights; `edgepack bench --prefill P --steps S --tokens ...` runs the same loop (fresh
    process per round: warm-up + R runs).
Rounds alternate between the two so both see the same machine load; timed runs are pooled
and the table reports each side's tokens/s at the median run and the time ratio
edgepack / llama.cpp (below 1.0: edgepack is faster). Both feed the same real token ids
(teacher forcing: the given tokens, not sampled ones).

The GGUF files:
  stories260k  scripts/xcheck/stories_gguf.py --type q4_0 / q8_0 (the `gguf` package's
               quantizer; w2, 172 wide, and the tied embedding stay F32 in both runs)
  smollm2      SmolLM2-135M-Instruct's Q4_1 GGUF (scripts/fetch_models.sh) requantized to
               Q4_0 / Q8_0 by llama.cpp's own llama_model_quantize (pure: every tensor,
               the embedding included, gets the type)
Tokens: stories260k's .cache/data/stories260k-eval.npy first row; SmolLM2's from
scripts/xcheck/gguf_text_windows.py (license text tokenized by the model's tokenizer).

llama.cpp runs without its extra buffer types (no repacked Q4_0 / AMX weights: that path
crashed here, see load_llama). Note: llama.cpp multiplies Q4_0 / Q8_0 weights with activations rounded to 8 bits (its
vec_dot with Q8_0 activations); edgepack's MatMulNBits keeps float activations.

Usage: bench/bench_vs_llamacpp.py --edgepack BUILD/compressor/edgepack [--threads 1 2]
       [--models stories260k,smollm2] [--types q4_0,q8_0] [--prefill 64] [--steps 64]
       [--rounds 3] [--runs 5] [--warmup 1] [--json FILE]
Exit 1 when llama-cpp-python is not installed (scripts/requirements-xcheck.txt).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_ort import edgepack_decode_round  # noqa: E402  (one `edgepack bench` decoder round)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "xcheck"))
from llamacpp_kl import load_llama  # noqa: E402  (llama.cpp without its extra buffer types)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGEPACK_SHARED_MODELS", ROOT.parent / "shared" / "models"))
CACHE = Path(os.environ.get("EDGEPACK_MODEL_CACHE", ROOT / ".cache" / "models"))
DATA = ROOT / ".cache" / "data"
PY = sys.executable
SMOLLM2 = CACHE / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
STORIES = SHARED / "stories260k"


def make_gguf(model, ggml_type, out):
    """The GGUF both sides run, or None (with a note) when its source is missing."""
    if model == "stories260k":
        if not (STORIES / "model.onnx").exists():
            return None
        subprocess.run([PY, str(ROOT / "scripts/xcheck/stories_gguf.py"), str(STORIES / "model.onnx"),
                        str(STORIES / "config.json"), str(out), "--type", ggml_type],
                       check=True, capture_output=True)
        return out
    if not SMOLLM2.exists():
        return None
    import llama_cpp

    ftype = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[ggml_type]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.pure = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(SMOLLM2).encode(), str(out).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize {SMOLLM2} -> {ggml_type} failed ({rc})")
    return out


def tokens_for(model, gguf_path, need, tmp):
    if model == "stories260k":
        t = np.load(DATA / "stories260k-eval.npy").reshape(-1)
    else:
        out = Path(tmp) / "windows"
        subprocess.run([PY, str(ROOT / "scripts/xcheck/gguf_text_windows.py"), str(gguf_path), str(out),
                        "--count", "1", "--length", str(need)], check=True, capture_output=True)
        t = np.load(out / "tokens.npy").reshape(-1)
    if len(t) < need:
        raise RuntimeError(f"{model}: {len(t)} tokens, need {need}")
    return t[:need].astype(np.int64)


def llamacpp_round(llm, tokens, prefill, steps, warmup, runs):
    prefill_ms, decode_ms = [], []
    ids = [int(v) for v in tokens]
    for run in range(warmup + runs):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids[:prefill])
        t1 = time.perf_counter()
        for s in range(steps):
            llm.eval([ids[prefill + s]])
        t2 = time.perf_counter()
        if run >= warmup:
            prefill_ms.append((t1 - t0) * 1000.0)
            decode_ms.append((t2 - t1) * 1000.0)
    return prefill_ms, decode_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgepack", required=True)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", default="stories260k,smollm2")
    ap.add_argument("--types", default="q4_0,q8_0")
    ap.add_argument("--prefill", type=int, default=64)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        sys.exit("bench_vs_llamacpp.py: llama-cpp-python is not installed (scripts/requirements-xcheck.txt)")

    rows = []
    need = a.prefill + a.steps
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            for ggml_type in a.types.split(","):
                gguf_path = make_gguf(model, ggml_type, Path(tmp) / f"{model}-{ggml_type}.gguf")
                if gguf_path is None:
                    print(f"skipped {model} {ggml_type}: its source is missing", file=sys.stderr)
                    continue
                onnx_path = Path(tmp) / f"{model}-{ggml_type}.onnx"
                made = subprocess.run([PY, str(ROOT / "scripts/make_decoder.py"), str(gguf_path), "-o",
                                       str(onnx_path), "--weights", "gguf", "--context", str(max(need, 256))],
                                      check=True, capture_output=True, text=True)
                print(made.stdout.strip().splitlines()[0], file=sys.stderr)
                tokens = tokens_for(model, gguf_path, need, tmp)
                tokens_file = Path(tmp) / f"{model}-tokens.npy"
                np.save(tokens_file, tokens)
                for threads in a.threads:
                    llm = load_llama(gguf_path, max(need, 256), a.prefill, threads)
                    ep_pre, ep_dec, ll_pre, ll_dec = [], [], [], []
                    for _ in range(a.rounds):
                        p, d = edgepack_decode_round(a.edgepack, onnx_path, tokens_file, threads, a.prefill,
                                              a.steps, a.warmup, a.runs)
                        ep_pre += p
                        ep_dec += d
                        p, d = llamacpp_round(llm, tokens, a.prefill, a.steps, a.warmup, a.runs)
                        ll_pre += p
                        ll_dec += d
                    del llm
                    med = statistics.median
                    row = {
                        "model": model, "type": ggml_type, "threads": threads,
                        "prefill_tok_s": {"edgepack": a.prefill * 1000 / med(ep_pre),
                                          "llama.cpp": a.prefill * 1000 / med(ll_pre)},
                        "decode_tok_s": {"edgepack": a.steps * 1000 / med(ep_dec),
                                         "llama.cpp": a.steps * 1000 / med(ll_dec)},
                        "prefill_ratio": med(ep_pre) / med(ll_pre),
                        "decode_ratio": med(ep_dec) / med(ll_dec),
                        "decode_ratio_min": min(ep_dec) / min(ll_dec),
                        "runs": {"edgepack_prefill_ms": ep_pre, "edgepack_decode_ms": ep_dec,
                                 "llamacpp_prefill_ms": ll_pre, "llamacpp_decode_ms": ll_dec},
                    }
                    rows.append(row)
                    print(f"{model:12s} {ggml_type:5s} t={threads}  prefill {row['prefill_tok_s']['edgepack']:9.0f} / "
                          f"{row['prefill_tok_s']['llama.cpp']:9.0f} tok/s (ratio {row['prefill_ratio']:.2f})  decode "
                          f"{row['decode_tok_s']['edgepack']:7.0f} / {row['decode_tok_s']['llama.cpp']:7.0f} tok/s "
                          f"(ratio {row['decode_ratio']:.2f})", file=sys.stderr)
    print(f"\n{'model':12s} {'type':5s} {'threads':>7s} {'prefill tok/s ep / llama.cpp':>30s} {'ratio':>6s} "
          f"{'decode tok/s ep / llama.cpp':>29s} {'ratio':>6s} {'min':>6s}")
    for r in rows:
        print(f"{r['model']:12s} {r['type']:5s} {r['threads']:7d} {r['prefill_tok_s']['edgepack']:14.0f} / "
              f"{r['prefill_tok_s']['llama.cpp']:13.0f} {r['prefill_ratio']:6.2f} {r['decode_tok_s']['edgepack']:13.0f} / "
              f"{r['decode_tok_s']['llama.cpp']:13.0f} {r['decode_ratio']:6.2f} {r['decode_ratio_min']:6.2f}")
    print(f"(prefill {a.prefill} tokens + {a.steps} decode steps per sequence; ratio = edgepack time / "
          f"llama.cpp time at the median run, min = the same at the fastest runs)")
    print(f"(load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs; "
          f"llama-cpp-python {llama_cpp.__version__}; {a.rounds} rounds x {a.runs} runs per side)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
