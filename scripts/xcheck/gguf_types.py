#!/usr/bin/env python3
"""GGUF files written by the `gguf` package, and what its dequantize says they hold.

    gguf_types.py OUT_DIR [--source model.safetensors]
    gguf_types.py --dump FILE.gguf OUT_DIR

The second form reads a GGUF (one edgepack wrote) with gguf.GGUFReader and writes
OUT_DIR/NAME.npy = gguf.quants.dequantize of each tensor (float32, the GGUF shape), and
OUT_DIR/metadata.json = {key: value} of its general.* and llama.* scalars.

Writes, with gguf.GGUFWriter:
  OUT_DIR/types.gguf   one tensor per ggml type edgepack decodes (named by the type:
                       "Q4_K", ...), 64 x 256 each, and a KV of every GGUF value type
  OUT_DIR/blocks.gguf  every type again (edgepack writes each back as it is), for the
                       byte-exact rewrite check
  OUT_DIR/TYPE.npy     gguf.quants.dequantize of each tensor of types.gguf (float32)

The values are real: the first 16,384 weights of stories260k's token embedding
(--source), quantized by gguf.quants.quantize for the types it can quantize (F32 .. Q8_0).
The package has no quantizer for the K-quants (Q2_K .. Q6_K): their blocks are seeded
random bytes with finite f16 scales (stated here and in the test), which exercises every
bit of the decoders all the same.
"""
import argparse
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V
from gguf import GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.numpy import load_file

QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
# K-quants: (type, block bytes, offsets of the f16 scale fields in a block)
K_QUANTS = [(T.Q2_K, 84, [80, 82]), (T.Q3_K, 110, [108]), (T.Q4_K, 144, [0, 2]),
            (T.Q5_K, 176, [0, 2]), (T.Q6_K, 210, [208])]
WRITABLE = QUANTIZABLE + [qt for qt, _, _ in K_QUANTS]


def add_every_value_type(w):
    w.add_uint32("general.alignment", 32)
    w.add_name("gguf types")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1e-5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo ✓")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -2**62)
    w.add_float64("test.f64", 0.1)
    w.add_array("test.strings", ["<unk>", "<s>", "</s>", "▁the", ""])
    w.add_key_value("test.ints", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.floats", [0.5, -1.25], V.ARRAY, sub_type=V.FLOAT32)


def dump(path, out):
    from gguf import GGUFReader
    os.makedirs(out, exist_ok=True)
    reader = GGUFReader(path)
    for t in reader.tensors:
        values = dequantize(t.data, t.tensor_type)
        np.save(os.path.join(out, t.name + ".npy"), np.ascontiguousarray(values, np.float32))
    meta = {}
    for f in reader.fields.values():
        if not f.name.startswith(("general.", "llama.")) or len(f.types) != 1:
            continue
        part = f.parts[f.data[0]]
        meta[f.name] = bytes(part).decode() if f.types[0] == V.STRING else part.tolist()[0]
    with open(os.path.join(out, "metadata.json"), "w") as fp:
        json.dump(meta, fp)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        return dump(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--source", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "models", "stories260k",
        "model.safetensors"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    real = load_file(args.source)["model.embed_tokens.weight"].astype(np.float32)
    w = real.reshape(-1)[:64 * 256].reshape(64, 256)
    rng = np.random.default_rng(20)

    tensors = {}
    for qt in QUANTIZABLE:
        tensors[qt] = quantize(w, qt)
    for qt, size, scale_at in K_QUANTS:
        blocks = rng.integers(0, 256, size=(64, size), dtype=np.uint8)
        for at in scale_at:
            scales = (rng.standard_normal(64) * 0.01).astype(np.float16)
            blocks[:, at:at + 2] = scales.view(np.uint8).reshape(64, 2)
        tensors[qt] = blocks

    writer = GGUFWriter(os.path.join(args.out, "types.gguf"), "llama")
    add_every_value_type(writer)
    for qt, data in tensors.items():
        writer.add_tensor(qt.name, data, raw_dtype=qt)
        np.save(os.path.join(args.out, qt.name + ".npy"),
                np.ascontiguousarray(dequantize(data, qt), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    writer = GGUFWriter(os.path.join(args.out, "blocks.gguf"), "llama")
    writer.add_uint32("llama.block_count", 1)
    writer.add_array("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>"])
    for qt in WRITABLE:
        name = "blk.0." + qt.name.lower() + ".weight"
        writer.add_tensor(name, tensors[qt], raw_dtype=qt)
    writer.add_tensor("output_norm.weight", w[0, :64].copy())  # a 1-D F32 tensor
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
