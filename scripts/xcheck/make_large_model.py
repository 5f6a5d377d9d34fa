#!/usr/bin/env python3
"""Writes an ONNX model whose weights exceed protobuf's 2 GB limit, without holding them.

    make_large_model.py OUT_DIR [--layers 5] [--rows 16384] [--cols 8192] [--seed 0]

OUT_DIR/large.onnx is a chain of MatMuls, X [1, rows] -> W0 [rows, cols] -> W1 [cols, rows]
-> ..., whose weights live in OUT_DIR/large.onnx.data (external data, 4096-byte aligned
offsets). Each weight is a seeded standard-normal block of 1024 rows scaled by
1/sqrt(fan_in), repeated with a different constant added per 1024-row chunk, written one
chunk at a time, so memory stays near one chunk. The defaults give five
512 MiB weights: 2.5 GiB of data. Prints a JSON line with the sizes.
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

CHUNK_ROWS = 1024
ALIGN = 4096


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--cols", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    model_path = os.path.join(args.out_dir, "large.onnx")
    data_name = "large.onnx.data"
    initializers, nodes = [], []
    offset = 0
    with open(os.path.join(args.out_dir, data_name), "wb") as data:
        for layer in range(args.layers):
            rows, cols = (args.rows, args.cols) if layer % 2 == 0 else (args.cols, args.rows)
            # One seeded random block per layer, shifted by a per-chunk constant: every
            # chunk differs (a misplaced range shows) at the cost of one add per value.
            rng = np.random.default_rng(args.seed + layer)
            base = rng.standard_normal((CHUNK_ROWS, cols), dtype=np.float32)
            base *= np.float32(1.0 / np.sqrt(rows))
            offset = (offset + ALIGN - 1) // ALIGN * ALIGN
            data.seek(offset)
            for chunk, begin in enumerate(range(0, rows, CHUNK_ROWS)):
                n = min(CHUNK_ROWS, rows - begin)
                block = base[:n] + np.float32(1e-3 * (chunk + 1))
                data.write(block.tobytes())
            length = rows * cols * 4
            name = f"w{layer}"
            t = TensorProto()
            t.name = name
            t.data_type = TensorProto.FLOAT
            t.dims.extend([rows, cols])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", offset), ("length", length)):
                entry = t.external_data.add()
                entry.key, entry.value = key, str(value)
            initializers.append(t)
            src = "x" if layer == 0 else f"h{layer - 1}"
            dst = "y" if layer == args.layers - 1 else f"h{layer}"
            nodes.append(helper.make_node("MatMul", [src, name], [dst], name=f"matmul{layer}"))
            offset += length
    out_cols = args.cols if args.layers % 2 == 1 else args.rows
    graph = helper.make_graph(
        nodes, "large_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, args.rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_cols])],
        initializer=initializers)
    model = helper.make_model(graph, producer_name="make_large_model.py",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    print(json.dumps({"model": model_path, "data_bytes": offset,
                      "model_bytes": os.path.getsize(model_path)}))


if __name__ == "__main__":
    main()
