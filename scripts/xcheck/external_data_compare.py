#!/usr/bin/env python3
"""Oracle: do two ONNX models hold the same graph and bit-identical tensors?

    external_data_compare.py ORIGINAL.onnx WRITTEN.onnx [--skip-check]

Works on models of any size: the protos are loaded without their external data, and each
tensor's bytes (raw_data or an external range) are hashed with sha256 64 MiB at a time.
Tensors (initializers and node attribute tensors, in graph order) must match in name,
dtype, shape and digest; the graphs with tensor data stripped must be equal. The written
model also goes through onnx.checker.check_model by path (external data resolved by the
checker) unless --skip-check. Prints one JSON line; exit 0 when equal, 1 otherwise.
"""
import argparse
import hashlib
import json
import os
import sys

import onnx
from onnx import TensorProto, numpy_helper

CHUNK = 64 << 20


def tensors(graph):
    for t in graph.initializer:
        yield t
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from tensors(a.g)
            for g in a.graphs:
                yield from tensors(g)


def digest(t, base_dir):
    h = hashlib.sha256()
    if t.data_location != TensorProto.EXTERNAL:
        # Typed fields (float_data, ...) compare as the little-endian bytes they hold.
        data = t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()
        h.update(data)
        return h.hexdigest(), len(data)
    info = {e.key: e.value for e in t.external_data}
    offset = int(info.get("offset", 0))
    length = int(info["length"])
    with open(os.path.join(base_dir, info["location"]), "rb") as f:
        f.seek(offset)
        left = length
        while left:
            block = f.read(min(CHUNK, left))
            if not block:
                raise RuntimeError(f"{t.name}: external data ends early")
            h.update(block)
            left -= len(block)
    return h.hexdigest(), length


def strip(graph):
    for t in tensors(graph):
        t.ClearField("raw_data")
        t.ClearField("external_data")
        t.ClearField("data_location")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("original")
    ap.add_argument("written")
    ap.add_argument("--skip-check", action="store_true")
    args = ap.parse_args()
    a = onnx.load(args.original, load_external_data=False)
    b = onnx.load(args.written, load_external_data=False)
    summary = {"original": args.original, "written": args.written}
    mismatches = []
    ta, tb = list(tensors(a.graph)), list(tensors(b.graph))
    if len(ta) != len(tb):
        mismatches.append(f"{len(ta)} tensors vs {len(tb)}")
    total = 0
    external = 0
    for x, y in zip(ta, tb):
        if (x.name, x.data_type, list(x.dims)) != (y.name, y.data_type, list(y.dims)):
            mismatches.append(f"tensor {x.name}: header differs from {y.name}")
            continue
        dx, nx = digest(x, os.path.dirname(args.original))
        dy, ny = digest(y, os.path.dirname(args.written))
        external += y.data_location == TensorProto.EXTERNAL
        total += ny
        if dx != dy:
            mismatches.append(f"tensor {x.name}: bytes differ ({nx} vs {ny} bytes)")
    strip(a.graph)
    strip(b.graph)
    if a.graph != b.graph:
        mismatches.append("graphs differ (with tensor data stripped)")
    summary.update(tensors=len(tb), external_tensors=external, tensor_bytes=total)
    if not args.skip_check:
        try:
            onnx.checker.check_model(args.written)
            summary["checker"] = "ok"
        except Exception as e:  # noqa: BLE001
            mismatches.append(f"checker: {str(e)[:500]}")
    summary["mismatches"] = mismatches[:20]
    summary["ok"] = not mismatches
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
