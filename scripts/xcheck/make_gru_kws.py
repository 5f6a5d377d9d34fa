#!/usr/bin/env python3
"""Builds a GRU keyword spotter in the shape PyTorch exports one, and its input features.

    scripts/xcheck/make_gru_kws.py OUT_DIR [--seed 1] [--samples 8]

OUT_DIR/gru_kws.onnx (opset 14): log-mel features [N, 49, 40] (49 frames of 40 bands, one
second of 16 kHz audio at a 20 ms hop) -> Transpose to [49, N, 40] -> GRU (hidden 64,
linear_before_reset = 1, as torch.onnx writes) -> GRU (hidden 64, bidirectional) -> the last
step's states Y_h [2, N, 64] -> Transpose / Reshape to [N, 128] -> Gemm -> Softmax over 12
keywords. The weights are seeded random values (uniform in +-1/sqrt(hidden), PyTorch's GRU
initialisation), not a trained model: the model exists to check that a real keyword-spotter
graph runs at parity with ONNX Runtime.
OUT_DIR/features.npy [samples, 49, 40] float32: log-mel energies of consecutive one-second
stretches of scripts/make_vad_data.py's synthesized signal (voiced stretches and noise; no
speech recording is available offline).
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from make_vad_data import RATE, signal  # noqa: E402

FRAMES, BANDS, HIDDEN, KEYWORDS = 49, 40, 64, 12
WINDOW, HOP = 640, 320


def log_mel(x):
    """[FRAMES, BANDS] log energies of mel-spaced triangular bands of a Hann-windowed STFT."""
    window = np.hanning(WINDOW)
    spec = np.stack([np.abs(np.fft.rfft(x[i * HOP:i * HOP + WINDOW] * window)) ** 2
                     for i in range(FRAMES)])
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(20), mel(RATE / 2), BANDS + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(WINDOW, 1 / RATE)
    bank = np.zeros((BANDS, freqs.size))
    for b in range(BANDS):
        lo, mid, hi = edges[b:b + 3]
        bank[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return np.log(spec @ bank.T + 1e-6).astype(np.float32)


def gru_weights(rng, name, dirs, inputs):
    bound = 1 / np.sqrt(HIDDEN)
    u = lambda *s: rng.uniform(-bound, bound, s).astype(np.float32)  # noqa: E731
    return [numpy_helper.from_array(u(dirs, 3 * HIDDEN, inputs), f"{name}.W"),
            numpy_helper.from_array(u(dirs, 3 * HIDDEN, HIDDEN), f"{name}.R"),
            numpy_helper.from_array(u(dirs, 6 * HIDDEN), f"{name}.B")]


def build(rng):
    inits = gru_weights(rng, "gru1", 1, BANDS) + gru_weights(rng, "gru2", 2, HIDDEN)
    inits += [numpy_helper.from_array(
                  rng.uniform(-0.1, 0.1, (KEYWORDS, 2 * HIDDEN)).astype(np.float32), "fc.W"),
              numpy_helper.from_array(rng.uniform(-0.1, 0.1, KEYWORDS).astype(np.float32), "fc.B"),
              numpy_helper.from_array(np.array([-1, 2 * HIDDEN], np.int64), "flat")]
    nodes = [
        helper.make_node("Transpose", ["features"], ["x_tbf"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["x_tbf", "gru1.W", "gru1.R", "gru1.B"], ["y1", ""],
                         hidden_size=HIDDEN, linear_before_reset=1, name="gru1"),
        helper.make_node("Squeeze", ["y1", "axis1"], ["y1s"]),
        helper.make_node("GRU", ["y1s", "gru2.W", "gru2.R", "gru2.B"], ["", "h2"],
                         hidden_size=HIDDEN, direction="bidirectional", linear_before_reset=1,
                         name="gru2"),
        helper.make_node("Transpose", ["h2"], ["h2t"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["h2t", "flat"], ["pooled"]),
        helper.make_node("Gemm", ["pooled", "fc.W", "fc.B"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    graph = helper.make_graph(
        nodes, "gru_kws",
        [helper.make_tensor_value_info("features", TP.FLOAT, ["N", FRAMES, BANDS])],
        [helper.make_tensor_value_info("probs", TP.FLOAT, ["N", KEYWORDS])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="edgepack-make_gru_kws")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--samples", type=int, default=8)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    onnx.save(build(rng), os.path.join(a.out, "gru_kws.onnx"))
    x = signal(rng, a.samples * RATE + WINDOW)
    feats = np.stack([log_mel(x[i * RATE:]) for i in range(a.samples)])
    np.save(os.path.join(a.out, "features.npy"), feats)
    print(f"gru_kws.onnx, features.npy {list(feats.shape)}")


if __name__ == "__main__":
    main()
