#!/usr/bin/env python3
"""Oracle: writes a safetensors file with the Python `safetensors` package.

usage: st_make.py OUT [--metadata JSON]

Covers every dtype edgepack and the package share (bf16 and f8 through raw-byte
TensorSpecs, since numpy has no such types), a scalar (shape []), empty tensors (a 0
dimension), names that need JSON escaping, and __metadata__. Prints what it asked the
package to write, as JSON on stdout:
  {"tensors": {name: {"dtype", "shape", "hex"}}, "metadata": {...} | null,
   "order": [names in data-offset order, from safe_open(...).offset_keys()]}
"""
import argparse
import json
import sys

import numpy as np
from safetensors import TensorSpec, safe_open, serialize_file


def tensors():
    rng = np.random.default_rng(20240611)

    def bits(dtype, shape):  # random bit patterns, NaNs and subnormals included
        n = int(np.prod(shape, dtype=np.int64))
        raw = rng.integers(0, 256, size=n * np.dtype(dtype).itemsize, dtype=np.uint8)
        return raw.view(dtype).reshape(shape)

    t = {
        "f32.weight": ("float32", rng.standard_normal((3, 5)).astype(np.float32)),
        "f16.weight": ("float16", bits(np.float16, (4, 3))),
        "bf16.weight": ("bfloat16", bits(np.uint16, (2, 7))),  # bf16 bit patterns
        "f64.weight": ("float64", rng.standard_normal((2, 2))),
        "i64.ids": ("int64", rng.integers(-(2**62), 2**62, size=(5,), dtype=np.int64)),
        "i32.ids": ("int32", rng.integers(-(2**31), 2**31, size=(2, 3), dtype=np.int32)),
        "i16.ids": ("int16", rng.integers(-(2**15), 2**15, size=(7,), dtype=np.int16)),
        "i8.codes": ("int8", rng.integers(-128, 128, size=(3, 3), dtype=np.int8)),
        "u8.codes": ("uint8", rng.integers(0, 256, size=(9,), dtype=np.uint8)),
        "u16.codes": ("uint16", rng.integers(0, 2**16, size=(3,), dtype=np.uint16)),
        "u32.codes": ("uint32", rng.integers(0, 2**32, size=(3,), dtype=np.uint32)),
        "u64.codes": ("uint64", rng.integers(0, 2**63, size=(2,), dtype=np.uint64)),
        "bool.mask": ("bool", rng.integers(0, 2, size=(2, 5)).astype(bool)),
        "c64.spectrum": ("complex64", (rng.standard_normal(3) + 1j * rng.standard_normal(3))
                         .astype(np.complex64)),
        "f8e4m3.weight": ("float8_e4m3fn", bits(np.uint8, (6,))),
        "f8e5m2.weight": ("float8_e5m2", bits(np.uint8, (2, 2))),
        "f8e4m3fnuz.weight": ("float8_e4m3fnuz", bits(np.uint8, (3,))),
        "f8e5m2fnuz.weight": ("float8_e5m2fnuz", bits(np.uint8, (1, 5))),
        "scalar.f32": ("float32", np.array(3.5, dtype=np.float32)),
        "scalar.i64": ("int64", np.array(-7, dtype=np.int64)),
        "empty.f32": ("float32", np.zeros((0, 3), dtype=np.float32)),
        "empty.u8": ("uint8", np.zeros((4, 0), dtype=np.uint8)),
        'odd "name"\\/\u00e9\t\u0001': ("float32", np.array([1.0, -0.0], dtype=np.float32)),
        "A.upper": ("float32", np.array([2.0], dtype=np.float32)),
    }
    return t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--metadata", default='{"format": "np", "source": "st_make.py", '
                        '"note": "caf\\u00e9 \\"quoted\\""}')
    args = parser.parse_args()
    metadata = json.loads(args.metadata)

    arrays = tensors()
    specs = {}
    for name, (dtype, arr) in list(arrays.items()):
        arr = np.array(arr, order="C")  # (ascontiguousarray would make scalars 1-d)
        arrays[name] = (dtype, arr)  # keeps the buffer alive: the spec holds a raw pointer
        specs[name] = TensorSpec(dtype=dtype, shape=list(arr.shape), data_ptr=arr.ctypes.data,
                                 data_len=arr.nbytes)
    serialize_file(specs, args.out, metadata=metadata)

    names = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
             "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
             "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL",
             "complex64": "C64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
             "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2fnuz": "F8_E5M2FNUZ"}
    with safe_open(args.out, framework="numpy") as f:
        order = list(f.offset_keys())
    report = {
        "tensors": {name: {"dtype": names[dtype], "shape": list(arr.shape),
                           "hex": arr.tobytes().hex()}
                    for name, (dtype, arr) in arrays.items()},
        "metadata": metadata,
        "order": order,
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
