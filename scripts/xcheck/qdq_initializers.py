#!/usr/bin/env python3
"""Compares the initializers of two QDQ models (edgepack's quantize-static and ONNX Runtime's
quantize_static of the same float model), by name.

usage: qdq_initializers.py OURS.onnx ORT.onnx
Prints one JSON object: {"only_ours": [...], "only_ort": [...], "compared": N,
"different": {name: {"dtype": [a, b], "max_ulp": u (float), "max_abs": d}}}. Float
initializers (scales) are compared in float32 ulps; integer ones must be equal.
"""
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def main():
    a, b = initializers(sys.argv[1]), initializers(sys.argv[2])
    out = {"only_ours": sorted(set(a) - set(b)), "only_ort": sorted(set(b) - set(a)),
           "compared": 0, "different": {}}
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        out["compared"] += 1
        if x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y):
            continue
        d = {"dtype": [str(x.dtype), str(y.dtype)], "shape": [list(x.shape), list(y.shape)]}
        if x.shape == y.shape and x.dtype == y.dtype == np.float32:
            xi = x.view(np.int32).astype(np.int64)
            yi = y.view(np.int32).astype(np.int64)
            d["max_ulp"] = int(np.max(np.abs(xi - yi)))
        if x.shape == y.shape:
            d["max_abs"] = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
        out["different"][name] = d
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
