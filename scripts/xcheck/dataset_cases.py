#!/usr/bin/env python3
"""Writes the input forms `--data DIR` accepts, and hostile .npz files, for a model with
one input `input` float32 [N, 1, 28, 28] (tests/test_validate.cpp).

usage: dataset_cases.py OUT_DIR
  OUT_DIR/x.npy                       the array every good form holds ([3, 1, 28, 28])
  good/npz/a.npz, b.npz               rows 0-1 (stored) and row 2 (deflated)
  good/npy/input.npy                  all rows
  good/pb/input_0.pb                  all rows, as an ONNX TensorProto
  good/sets/test_data_set_0/input_0.pb, test_data_set_1/input_0.pb   rows 0-1, row 2
  hostile/NAME/s.npz                  one defect each (see CASES below)
"""
import io
import os
import sys
import zipfile

import numpy as np
from onnx import numpy_helper


def npz_bytes(compressed=False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def zip_with(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main() -> int:
    out = sys.argv[1]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "x.npy"), x)
    g = os.path.join(out, "good")
    write(os.path.join(g, "npz", "a.npz"), npz_bytes(input=x[:2]))
    write(os.path.join(g, "npz", "b.npz"), npz_bytes(True, input=x[2:]))
    write(os.path.join(g, "npz", "labels.npy"), npy_bytes(np.array([1, 2, 3])))  # ignored
    write(os.path.join(g, "npy", "input.npy"), npy_bytes(x))
    write(os.path.join(g, "pb", "input_0.pb"), numpy_helper.from_array(x, "input").SerializeToString())
    write(os.path.join(g, "sets", "test_data_set_0", "input_0.pb"),
          numpy_helper.from_array(x[:2]).SerializeToString())  # unnamed: matched by position
    write(os.path.join(g, "sets", "test_data_set_1", "input_0.pb"),
          numpy_helper.from_array(x[2:], "input").SerializeToString())

    good = npz_bytes(True, input=x)
    deflated = bytearray(good)
    # Flip bytes in the middle of the deflated member: inflating fails or the CRC differs.
    for i in range(len(deflated) // 2, len(deflated) // 2 + 8):
        deflated[i] ^= 0x5A
    cases = {
        "bad_zip": b"PK\x03\x04 this is not a zip archive at all",
        "not_npy": zip_with([("input.txt", b"hello")]),
        "bad_npy": zip_with([("input.npy", b"\x93NUMPY\x01\x00garbage")]),
        "wrong_dtype": npz_bytes(input=x.astype(np.float64)),
        "wrong_rank": npz_bytes(input=x[:, 0]),
        "wrong_dim": npz_bytes(input=np.zeros((2, 3, 28, 28), np.float32)),
        "unknown_key": npz_bytes(image=x),
        "missing_input": zip_with([]),
        "truncated": good[: len(good) // 2],
        "corrupt": bytes(deflated),
    }
    for name, data in cases.items():
        write(os.path.join(out, "hostile", name, "s.npz"), data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
