#!/usr/bin/env python3
"""Samples token sequences from a causal language model itself (ONNX Runtime), for
calibration and evaluation sets of edgepack's quantization tests (realistic text for the
model, with no dataset download).

usage: sample_tokens.py MODEL OUT.npy [--count 64] [--length 64] [--seed 0] [--bos 1]
       [--temperature 1.0]
MODEL takes input_ids [1, T] int64 and returns logits [1, T, V]. Each sequence starts with
BOS and is extended one token at a time by sampling softmax(logits / temperature) of the
last position with numpy's PCG64(seed) (one generator for the whole file). OUT.npy is an
int64 [count, length] array (BOS included), as `edgepack validate --data` reads it.
"""
import argparse
import sys

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bos", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=1.0)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.Generator(np.random.PCG64(a.seed))
    out = np.zeros((a.count, a.length), dtype=np.int64)
    for s in range(a.count):
        seq = [a.bos]
        while len(seq) < a.length:
            logits = sess.run(None, {name: np.array([seq], dtype=np.int64)})[0][0, -1]
            z = logits.astype(np.float64) / a.temperature
            p = np.exp(z - z.max())
            p /= p.sum()
            seq.append(int(rng.choice(len(p), p=p)))
        out[s] = seq
    np.save(a.out, out)
    print(f"{a.count} sequences of {a.length} tokens, seed {a.seed}, "
          f"{len(np.unique(out))} distinct tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
