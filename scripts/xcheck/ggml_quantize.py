#!/usr/bin/env python3
"""Our GGUF's quantized tensors against the quantizers that define their bytes.

    ggml_quantize.py SOURCE.gguf OURS.gguf [--only GLOB ...] [--lib libggml-base.so]
                     [--require-llama-cpp]

For every tensor of OURS (a file `edgepack compress` wrote with quantize-weights' rtn)
whose ggml type is Q4_0, Q4_1, Q8_0, Q4_K or Q6_K (and whose name matches a --only glob,
when given), takes the same tensor of SOURCE as
floats (gguf.quants.dequantize: what edgepack reads) and quantizes them again:
  - with the `gguf` package's gguf.quants.quantize (Q4_0, Q4_1, Q8_0: it has no K-quant
    quantizer);
  - with llama.cpp's own quantizer, ggml_quantize_chunk from the libggml-base of the
    llama-cpp-python package (what llama_model_quantize calls; without an importance
    matrix it runs ggml's reference quantizers), or the library given with --lib.
Prints one JSON object: {"llama_cpp": path or null, "tensors": [{"name", "type",
"gguf_package": true/false/null, "llama_cpp": true/false/null, "differing_bytes"}]} where
true means byte for byte equal. Exits 1 when any comparison differs, 77 when
--require-llama-cpp is given and llama.cpp's library is not installed.
"""
import argparse
import ctypes
import fnmatch
import glob
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.quants import dequantize, quantize

CHECKED = {T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K, T.Q6_K}
GGUF_PACKAGE = {T.Q4_0, T.Q4_1, T.Q8_0}


def find_lib(path):
    if path:
        return path
    try:
        import llama_cpp  # noqa: F401  (the package ships libggml-base beside its bindings)
    except Exception:
        return None
    libs = glob.glob(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so*"))
    return sorted(libs)[0] if libs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("ours")
    ap.add_argument("--lib")
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--require-llama-cpp", action="store_true")
    args = ap.parse_args()
    lib_path = find_lib(args.lib)
    if lib_path is None and args.require_llama_cpp:
        print("llama-cpp-python is not installed (scripts/requirements-xcheck.txt)",
              file=sys.stderr)
        return 77
    lib = None
    if lib_path:
        lib = ctypes.CDLL(lib_path)
        lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                            ctypes.c_void_p]
    source = {t.name: t for t in GGUFReader(args.source).tensors}
    results, ok = [], True
    for t in GGUFReader(args.ours).tensors:
        if t.tensor_type not in CHECKED:
            continue
        if args.only and not any(fnmatch.fnmatchcase(t.name, g) for g in args.only):
            continue
        src = source[t.name]
        x = np.ascontiguousarray(dequantize(src.data, src.tensor_type), dtype=np.float32)
        ours = np.asarray(t.data).view(np.uint8).reshape(-1)
        row = {"name": t.name, "type": t.tensor_type.name, "gguf_package": None,
               "llama_cpp": None, "differing_bytes": 0}
        if t.tensor_type in GGUF_PACKAGE:
            want = quantize(x, t.tensor_type).view(np.uint8).reshape(-1)
            row["gguf_package"] = bool(np.array_equal(want, ours))
            row["differing_bytes"] = int(np.sum(want != ours)) if want.size == ours.size else -1
        if lib is not None:
            rows, cols = x.reshape(-1, x.shape[-1]).shape
            want = np.zeros(ours.size, np.uint8)
            lib.ggml_quantize_chunk(int(t.tensor_type), x.ctypes.data, want.ctypes.data, 0, rows,
                                    cols, None)
            row["llama_cpp"] = bool(np.array_equal(want, ours))
            row["differing_bytes"] = max(row["differing_bytes"], int(np.sum(want != ours)))
        ok = ok and row["gguf_package"] is not False and row["llama_cpp"] is not False
        results.append(row)
    print(json.dumps({"llama_cpp": lib_path, "tensors": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
