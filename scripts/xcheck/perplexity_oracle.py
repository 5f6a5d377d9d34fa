#!/usr/bin/env python3
"""A decoder's perplexity computed independently of edgepack: ONNX Runtime runs the model
on every row of a token file, numpy scores the tokens with llama-perplexity's rule.

usage: perplexity_oracle.py MODEL TOKENS.npy [--input input_ids] [--output logits]
TOKENS.npy is int64 [S, T]: S windows of T tokens, each fed as [1, T]. As llama.cpp's
tools/perplexity/perplexity.cpp: first = T // 2, the logits at positions first .. T - 2
score the next token, nll = -log softmax(logits)[next] (float64 here), and
PPL = exp(mean nll) +/- PPL * sqrt((mean nll^2 - mean nll^2) / (n - 1)).
Prints one JSON object: {"perplexity", "uncertainty", "nll_mean", "tokens", "windows"}.
"""
import argparse
import json
import math
import sys

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("tokens")
    ap.add_argument("--input", default="input_ids")
    ap.add_argument("--output", default="logits")
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    tokens = np.load(a.tokens)
    nll = []
    for row in tokens:
        logits = sess.run([a.output], {a.input: row[None, :].astype(np.int64)})[0][0]
        x = logits.astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        logp = x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))
        t = len(row)
        for j in range(t // 2, t - 1):
            nll.append(-logp[j, row[j + 1]])
    nll = np.array(nll)
    n = len(nll)
    mean = float(nll.mean())
    ppl = math.exp(mean)
    var = float((nll * nll).mean() - mean * mean)
    out = {"perplexity": ppl, "uncertainty": ppl * math.sqrt(var / (n - 1)) if n > 1 else 0.0,
           "nll_mean": mean, "tokens": n, "windows": len(tokens)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
