#!/usr/bin/env python3
"""Runs a KV-cache decoder (scripts/make_decoder.py's inputs and outputs) in ONNX Runtime,
prefill then token-by-token decode, and writes the logits of every position.

usage: decoder_ort.py MODEL --tokens FILE.npy --prefill P --steps N --out LOGITS.npy
                      [--threads T] [--reference FULL.onnx] [--max-diff X]

The convention (make_decoder.py's docstring): prefill feeds tokens[0:P] with empty past and
attention_mask ones [1, P]; decode step s feeds tokens[P + s] with past = the previous
present.* and attention_mask ones [1, P + s + 1] (position_ids, when the graph has it, the positions of the
step's tokens). LOGITS.npy is [P + N, vocab]: the prefill's
P rows, then one row per step (teacher forcing: the given tokens, not the argmax).

--reference runs a full-sequence model (input_ids [1, T] -> logits [1, T, vocab], such as
stories260k's model.onnx) on tokens[0:P+N] and prints the largest absolute logit difference;
with --max-diff the script exits 1 when it is larger.
"""
import argparse
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def decode_logits(sess, tokens, prefill, steps, times=None):
    """Logits [prefill + steps, vocab]; `times`, when given, gets each run's milliseconds."""
    inputs = {i.name: i for i in sess.get_inputs()}
    past_names = [n for n in inputs if n.startswith("past_key_values.")]
    outputs = [o.name for o in sess.get_outputs()]
    past = {}
    for name in past_names:
        shape = inputs[name].shape  # [batch_size, kv_heads, past_sequence_length, head_size]
        past[name] = np.zeros((1, int(shape[1]), 0, int(shape[3])), dtype=np.float32)
    rows = []
    position = 0
    for step in range(steps + 1):
        ids = tokens[0:prefill] if step == 0 else tokens[prefill + step - 1 : prefill + step]
        position += len(ids)
        feeds = {"input_ids": np.asarray(ids, dtype=np.int64).reshape(1, -1)}
        if "attention_mask" in inputs:
            feeds["attention_mask"] = np.ones((1, position), dtype=np.int64)
        if "position_ids" in inputs:
            feeds["position_ids"] = np.arange(position - len(ids), position, dtype=np.int64).reshape(1, -1)
        feeds.update(past)
        t0 = time.perf_counter()
        values = dict(zip(outputs, sess.run(outputs, feeds)))
        if times is not None:
            times.append((time.perf_counter() - t0) * 1000.0)
        rows.append(values["logits"].reshape(len(ids), -1))
        past = {n: values[n.replace("past_key_values.", "present.")] for n in past_names}
    return np.concatenate(rows, axis=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--prefill", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference")
    ap.add_argument("--max-diff", type=float)
    a = ap.parse_args()
    tokens = np.load(a.tokens).reshape(-1).astype(np.int64)
    if a.prefill < 1 or a.prefill + a.steps > len(tokens):
        sys.exit(f"decoder_ort.py: {a.tokens} has {len(tokens)} tokens, prefill {a.prefill} + steps {a.steps} needs more")
    logits = decode_logits(session(a.model, a.threads), tokens, a.prefill, a.steps)
    if a.out:
        np.save(a.out, logits)
    if a.reference:
        ref = session(a.reference, a.threads)
        full = ref.run(None, {ref.get_inputs()[0].name: tokens[None, : a.prefill + a.steps]})[0]
        diff = float(np.max(np.abs(full.reshape(logits.shape) - logits)))
        agree = float(np.mean(np.argmax(full.reshape(logits.shape), -1) == np.argmax(logits, -1)))
        print(f"max_abs_diff {diff:.3g} argmax_agreement {agree:.4f} positions {logits.shape[0]}")
        if a.max_diff is not None and diff > a.max_diff:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
