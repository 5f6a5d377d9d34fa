#!/usr/bin/env python3
"""Oracle: what the Python `safetensors` package sees in a file.

usage: st_dump.py FILE [--rewrite OUT]

Loads FILE with `safetensors.deserialize` (raw bytes for every dtype, bf16 included,
which numpy cannot represent) and prints JSON on stdout:
  {"tensors": {name: {"dtype", "shape", "hex"}}, "metadata": {...} | null,
   "order": [names in data-offset order]}
With --rewrite, also writes the same tensors and metadata back with the package's own
writer (`serialize_file`), for byte-for-byte comparison with another writer.
"""
import argparse
import json
import sys

import numpy as np
from safetensors import TensorSpec, deserialize, safe_open, serialize_file

TO_SPEC = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
           "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
           "U16": "uint16", "U32": "uint32", "U64": "uint64", "BOOL": "bool",
           "C64": "complex64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
           "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--rewrite")
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        data = f.read()
    tensors = deserialize(data)
    with safe_open(args.file, framework="numpy") as f:
        metadata = f.metadata()
        order = list(f.offset_keys())
    report = {
        "tensors": {name: {"dtype": t["dtype"], "shape": list(t["shape"]),
                           "hex": bytes(t["data"]).hex()} for name, t in tensors},
        "metadata": metadata,
        "order": order,
    }
    if args.rewrite:
        keep = []
        specs = {}
        for name, t in tensors:
            buf = np.frombuffer(bytes(t["data"]), dtype=np.uint8).copy()
            keep.append(buf)
            specs[name] = TensorSpec(dtype=TO_SPEC[t["dtype"]], shape=list(t["shape"]),
                                     data_ptr=buf.ctypes.data, data_len=buf.nbytes)
        serialize_file(specs, args.rewrite, metadata=metadata)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
