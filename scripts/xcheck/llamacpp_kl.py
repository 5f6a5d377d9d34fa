#!/usr/bin/env python3
"""llama.cpp against edgepack's runtime on the same weights: KL of the next-token
distributions, position by position.

usage: llamacpp_kl.py --gguf MODEL.gguf --edgepack-model MODEL.onnx|.epk --tokens T.npy
                      [--edgepack BIN] [--windows N] [--threads 1]
T.npy is int64 [S, T]: S windows of T token ids (the first is BOS), each run from an empty
context by both: llama.cpp (llama-cpp-python, logits_all: the logits of every position)
evaluates the ids directly (no tokenizer, no BOS added), edgepack runs the model
(`edgepack run MODEL --data T.npy`, logits [1, T, V] per window; a KV-cache decoder from
scripts/make_decoder.py gets one .npz per window from an empty context instead). Per position
KL(P_edgepack || Q_llama.cpp) = sum P (log P - log Q) with log-softmax in float64, as
`edgepack validate` computes it (docs/validate.md). Prints one JSON object:
{"positions", "windows", "kl_mean", "kl_mean_uncertainty", "kl_max", "same_top1",
 "ppl_edgepack", "ppl_llamacpp"} (perplexities by llama-perplexity's rule: the second half
of every window). llama.cpp rounds activations to 8 bits in its quantized dot products, so
on a Q4 file the KL to an exact evaluation of the same weights is about 0.007, not 0.
Needs llama-cpp-python (scripts/requirements-xcheck.txt).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def kv_cache_feeds(model: str, window: np.ndarray):
    """The feeds of a KV-cache decoder (scripts/make_decoder.py's inputs) running `window`
    from an empty context, or None when `model` has no past_key_values inputs."""
    if not model.endswith(".onnx"):
        return None
    import onnx

    graph = onnx.load(model, load_external_data=False).graph
    past = [i for i in graph.input if i.name.startswith("past_key_values.")]
    if not past:
        return None
    feeds = {"input_ids": window[None, :].astype(np.int64),
             "attention_mask": np.ones((1, len(window)), dtype=np.int64)}
    for i in past:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = np.zeros((1, dims[1], 0, dims[3]), dtype=np.float32)
    return feeds


def edgepack_logits(binary: str, model: str, tokens: np.ndarray, threads: int) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "tokens.npy")
        np.save(data, tokens)
        if kv_cache_feeds(model, tokens[0]) is not None:  # one .npz per window
            data = os.path.join(tmp, "windows")
            os.makedirs(data)
            for n, row in enumerate(tokens):
                np.savez(os.path.join(data, f"window_{n:04d}.npz"), **kv_cache_feeds(model, row))
        out = os.path.join(tmp, "out")
        r = subprocess.run([binary, "run", model, "--data", data, "--out", out, "--threads",
                            str(threads), "--quiet"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"llamacpp_kl: edgepack run failed ({r.returncode}): {r.stderr}")
        folders = sorted(d for d in os.listdir(out) if d.startswith("sample_"))
        return [np.load(os.path.join(out, d, "logits.npy"))[0] for d in folders]


def load_llama(path, n_ctx, n_batch, threads, **kwargs):
    """llama.cpp on the CPU without its extra buffer types (use_extra_bufts = False: no
    repacked Q4_0 / AMX weights): with them, llama-cpp-python 0.3.36's build crashed
    (SIGSEGV in llama_decode, in ggml_backend_amx_mul_mat) on every quantized file on this
    machine's CPU (AVX-512 + AMX); the plain CPU kernels compute the same blocks. Llama()
    takes no such argument, so its default params are wrapped while it loads. Also used by
    bench/bench_vs_llamacpp.py."""
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    default = lib.llama_model_default_params

    def without_extra_bufts():
        p = default()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = without_extra_bufts
    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                     n_threads=threads, n_threads_batch=threads, verbose=False, **kwargs)
    finally:
        lib.llama_model_default_params = default


def llamacpp_logits(gguf: str, tokens: np.ndarray, threads: int) -> list:
    t = tokens.shape[1]
    llm = load_llama(gguf, t, t, threads, logits_all=True)
    out = []
    for row in tokens:
        llm.reset()
        llm.eval([int(v) for v in row])
        out.append(np.array(llm.scores[:t], dtype=np.float32))
    return out


def perplexity(logits: list, tokens: np.ndarray) -> float:
    nll = []
    for x, row in zip(logits, tokens):
        lp = log_softmax(x)
        t = len(row)
        nll += [-lp[j, row[j + 1]] for j in range(t // 2, t - 1)]
    return math.exp(float(np.mean(nll)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--edgepack-model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--edgepack", default="build/compressor/edgepack")
    ap.add_argument("--windows", type=int, default=0, help="first N windows only (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    tokens = np.load(a.tokens).astype(np.int64)
    if tokens.ndim != 2:
        sys.exit(f"llamacpp_kl: {a.tokens}: expected [windows, tokens], found {tokens.shape}")
    if a.windows:
        tokens = tokens[: a.windows]
    ours = edgepack_logits(a.edgepack, a.edgepack_model, tokens, a.threads)
    theirs = llamacpp_logits(a.gguf, tokens, a.threads)
    kl, same = [], 0
    for p, q in zip(ours, theirs):
        if p.shape != q.shape:
            sys.exit(f"llamacpp_kl: edgepack logits {p.shape}, llama.cpp {q.shape}")
        lp, lq = log_softmax(p), log_softmax(q)
        kl += list((np.exp(lp) * (lp - lq)).sum(axis=-1))
        same += int((p.argmax(axis=-1) == q.argmax(axis=-1)).sum())
    kl = np.array(kl)
    n = len(kl)
    mean = float(kl.mean())
    print(json.dumps({
        "positions": n, "windows": len(tokens), "kl_mean": mean,
        "kl_mean_uncertainty": float(math.sqrt(((kl - mean) ** 2).mean() / (n - 1))) if n > 1 else 0.0,
        "kl_max": float(kl.max()), "same_top1": 100.0 * same / n,
        "ppl_edgepack": perplexity(ours, tokens), "ppl_llamacpp": perplexity(theirs, tokens)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
