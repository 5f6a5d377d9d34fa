#!/usr/bin/env python3
"""Writes a log-mel audio front end as an ONNX graph, and a signal to feed it.

    make_logmel.py OUT [--seconds 1.0] [--seed 1]

OUT/logmel.onnx (opset 17): audio [1, samples] float32 -> Unsqueeze -> STFT (25 ms Hann
frames every 10 ms at 16 kHz: frame_length 400, frame_step 160, onesided) -> |X|^2 (Mul,
ReduceSum over re / im) -> MatMul with an 80-bin mel matrix (MelWeightMatrix's values for
dft_length 400, 20 to 7600 Hz, stored as an initializer) -> Add 1e-6 -> Log: logmel
[1, frames, 80], the front end of speech models (Whisper, keyword spotters).
OUT/audio.npy [1, samples]: the synthesized voiced / background signal of
scripts/make_vad_data.py (seeded; not recorded speech).
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vad_data import RATE, signal  # noqa: E402

FRAME, STEP, MELS = 400, 160, 80


def mel_matrix():
    node = helper.make_node("MelWeightMatrix", ["n", "d", "r", "lo", "hi"], ["w"])
    consts = [numpy_helper.from_array(np.array(v, dt), name) for name, v, dt in
              (("n", MELS, np.int64), ("d", FRAME, np.int64), ("r", RATE, np.int64),
               ("lo", 20.0, np.float32), ("hi", 7600.0, np.float32))]
    graph = helper.make_graph([node], "mel", [], [helper.make_tensor_value_info("w", TP.FLOAT, None)],
                              consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ReferenceEvaluator(model).run(None, {})[0].astype(np.float32)


def build(samples):
    window = (np.sin(np.arange(FRAME) * np.pi / FRAME) ** 2).astype(np.float32)  # periodic Hann
    inits = [
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
        numpy_helper.from_array(np.array(STEP, np.int64), "frame_step"),
        numpy_helper.from_array(window, "window"),
        numpy_helper.from_array(np.array(FRAME, np.int64), "frame_length"),
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
        numpy_helper.from_array(mel_matrix(), "mel"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["audio", "axis2"], ["signal"]),
        helper.make_node("STFT", ["signal", "frame_step", "window", "frame_length"], ["spec"],
                         onesided=1),
        helper.make_node("Mul", ["spec", "spec"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "last"], ["power"], keepdims=0),
        helper.make_node("MatMul", ["power", "mel"], ["mel_power"]),
        helper.make_node("Add", ["mel_power", "eps"], ["floored"]),
        helper.make_node("Log", ["floored"], ["logmel"]),
    ]
    frames = 1 + (samples - FRAME) // STEP
    graph = helper.make_graph(
        nodes, "logmel", [helper.make_tensor_value_info("audio", TP.FLOAT, [1, samples])],
        [helper.make_tensor_value_info("logmel", TP.FLOAT, [1, frames, MELS])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="edgepack make_logmel.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    samples = int(a.seconds * RATE)
    os.makedirs(a.out, exist_ok=True)
    onnx.save(build(samples), os.path.join(a.out, "logmel.onnx"))
    audio = signal(np.random.default_rng(a.seed), samples).astype(np.float32)[None, :]
    np.save(os.path.join(a.out, "audio.npy"), audio)
    print(f"{a.out}/logmel.onnx: [1, {samples}] -> [1, {1 + (samples - FRAME) // STEP}, {MELS}]")


if __name__ == "__main__":
    main()
