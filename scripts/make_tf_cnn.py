#!/usr/bin/env python3
"""Writes a small CNN the way tf2onnx exports a Keras / TF1 detector, for the speed bench.

    make_tf_cnn.py OUT.onnx [--size 96] [--seed 1]

A tiny-YOLO-style backbone as TensorFlow holds it (NHWC) and as tf2onnx writes it
(opset 13): image [1, S, S, 3] NHWC -> Transpose to NCHW -> five blocks of
Conv 3x3 (BatchNorm folded into the weights and bias, as tf2onnx does) -> activation ->
MaxPool 2x2 stride 2, then Conv 3x3 and a 1x1 Conv head -> Transpose back to NHWC:
grid [1, S/32, S/32, 30]. The activations alternate between the two forms TF models
carry: tf.nn.leaky_relu (ONNX LeakyRelu, alpha 0.1) and the darknet ports'
tf.maximum(x, 0.1 * x) (Mul + Max). Channels 16, 32, 64, 128, 256, 256.

The weights are seeded (He-normal, not trained): this model measures speed only, and the
values do not change the work a runtime does.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

CHANNELS = [16, 32, 64, 128, 256]
HEAD = 30


def build(size, seed):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(x, c_in, c_out, k, name):
        w = (rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / (c_in * k * k))).astype(np.float32)
        b = (0.1 * rng.standard_normal(c_out)).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}/kernel"), numpy_helper.from_array(b, f"{name}/bias")])
        nodes.append(helper.make_node("Conv", [x, f"{name}/kernel", f"{name}/bias"], [f"{name}/out"], name=name,
                                      kernel_shape=[k, k], pads=[k // 2] * 4, strides=[1, 1], dilations=[1, 1],
                                      group=1))
        return f"{name}/out"

    def activation(x, i, name):
        if i % 2 == 0:
            nodes.append(helper.make_node("LeakyRelu", [x], [f"{name}/leaky"], name=f"{name}/LeakyRelu", alpha=0.1))
            return f"{name}/leaky"
        nodes.append(helper.make_node("Mul", [x, "alpha"], [f"{name}/scaled"], name=f"{name}/mul"))
        nodes.append(helper.make_node("Max", [x, f"{name}/scaled"], [f"{name}/max"], name=f"{name}/Maximum"))
        return f"{name}/max"

    inits.append(numpy_helper.from_array(np.array(0.1, np.float32), "alpha"))
    nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]))
    x, c_in = "nchw", 3
    for i, c in enumerate(CHANNELS):
        name = f"block{i}"
        x = activation(conv(x, c_in, c, 3, f"{name}/conv"), i, name)
        nodes.append(helper.make_node("MaxPool", [x], [f"{name}/pool"], name=f"{name}/MaxPool", kernel_shape=[2, 2],
                                      strides=[2, 2]))
        x, c_in = f"{name}/pool", c
    x = activation(conv(x, c_in, 256, 3, "block5/conv"), 5, "block5")
    x = conv(x, 256, HEAD, 1, "head")
    nodes.append(helper.make_node("Transpose", [x], ["grid"], name="to_nhwc", perm=[0, 2, 3, 1]))
    cells = size // 32
    graph = helper.make_graph(nodes, "tf_cnn", [helper.make_tensor_value_info("image", TP.FLOAT, [1, size, size, 3])],
                              [helper.make_tensor_value_info("grid", TP.FLOAT, [1, cells, cells, HEAD])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx",
                              producer_version="1.17.0 (edgepack make_tf_cnn.py)")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=96, help="input height and width, a multiple of 32")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.size % 32:
        ap.error("--size must be a multiple of 32")
    onnx.save(build(a.size, a.seed), a.out)
    print(f"{a.out}: image [1, {a.size}, {a.size}, 3] -> grid [1, {a.size // 32}, {a.size // 32}, {HEAD}]")


if __name__ == "__main__":
    main()
