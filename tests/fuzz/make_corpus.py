#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora, tests/fuzz/corpus/<reader>/ (small files only).

    .venv/bin/python tests/fuzz/make_corpus.py build/compressor/edgepack

Seeds are deterministic and small (a few KiB): hand-made files of every dtype and layout
each reader accepts, the malformed shapes the hostile tests feed it (tests/test_*_hostile.cpp),
ONNX backend node models (libonnx-testdata) with subgraphs, sequences and every attribute
type, .epk packs and quantized / sparse .safetensors written by `edgepack compress` itself,
and the example recipes. The committed corpus is this script's output; libFuzzer adds what
it finds to a copy in build-fuzz/, never here.
"""
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save as st_save

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"
NODE_TESTS = Path("/usr/share/libonnx-testdata/data/node")
# Node models chosen for what the reader sees: subgraphs (If, Loop, Scan), sequences and
# optionals, strings, every numeric dtype, quantized ops, attributes of every type.
NODE_MODELS = """test_if test_loop11 test_scan9_sum test_sequence_insert_at_back
test_optional_get_element_sequence test_optional_has_element_empty test_identity_sequence
test_cast_FLOAT_to_STRING test_castlike_STRING_to_FLOAT_expanded test_castlike_FLOAT_to_BFLOAT16
test_castlike_DOUBLE_to_FLOAT16 test_constant test_constant_pad test_dequantizelinear
test_quantizelinear test_dynamicquantizelinear test_qlinearmatmul_2D test_matmulinteger
test_bitshift_right_uint8 test_layer_normalization_2d_axis0_expanded test_lstm_defaults
test_gemm_default_single_elem_vector_bias test_resize_upsample_scales_linear test_top_k
test_einsum_batch_matmul test_reshape_extended_dims test_nonzero_example test_range_float_type_positive_delta_expanded
test_batchnorm_epsilon test_conv_with_strides_padding test_gather_0 test_softmax_axis_0""".split()


def write(reader, name, data):
    d = CORPUS / reader
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def onnx_seeds():
    for name in NODE_MODELS:
        p = NODE_TESTS / name / "model.onnx"
        if p.exists():
            write("onnx", name[5:] + ".onnx", p.read_bytes())
    rng = np.random.default_rng(14)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.arange(4, dtype=np.float16), "b")
    ext = TensorProto(name="ext", data_type=TensorProto.FLOAT, dims=[2, 2])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "16")):
        ext.external_data.add(key=k, value=v)
    i4 = helper.make_tensor("i4", TensorProto.INT4, [3], [1, -2, 7])
    strs = helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"\xc3\xa9"])
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.5, 2.5], np.float32), "sp"),
        numpy_helper.from_array(np.array([0, 3], np.int64), "sp_idx"), [4])
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, alpha=1.0, name="gemm"),
        helper.make_node("Add", ["y", "bc"], ["z"], name="add", doc_string="doc"),
        helper.make_node("Cast", ["b"], ["bc"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])],
        initializer=[w, b, i4, strs], sparse_initializer=[sparse])
    fn = helper.make_function("local", "Twice", ["a"], ["o"],
                              [helper.make_node("Add", ["a", "a"], ["o"])],
                              [helper.make_opsetid("", 17)], attributes=["k"])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("local", 1)],
                              functions=[fn], producer_name="fuzz-seed")
    helper.set_model_props(model, {"key": "value"})
    write("onnx", "handmade_every_kind.onnx", model.SerializeToString())
    # External data in "weights.bin", which fuzz_onnx places beside the model (64 bytes).
    del model.graph.initializer[:]
    model.graph.initializer.extend([w, ext])
    write("onnx", "external_data.onnx", model.SerializeToString())
    write("onnx", "empty.onnx", b"")


def safetensors_seeds():
    rng = np.random.default_rng(14)
    tensors = {
        "f32": rng.standard_normal((4, 8)).astype(np.float32),
        "f16": rng.standard_normal((3,)).astype(np.float16),
        "f64": np.arange(2, dtype=np.float64),
        "i8": np.arange(-4, 4, dtype=np.int8), "u8": np.arange(5, dtype=np.uint8),
        "i16": np.arange(3, dtype=np.int16), "i32": np.arange(3, dtype=np.int32),
        "i64": np.arange(3, dtype=np.int64).reshape(1, 3), "b": np.array([True, False]),
        "scalar": np.array(2.0, np.float32), "empty": np.zeros((0, 4), np.float32),
    }
    write("safetensors", "every_dtype.safetensors",
          st_save(tensors, metadata={"format": "pt"}))
    write("safetensors", "one_tensor.safetensors", st_save({"w": tensors["f32"]}))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    write("safetensors", "bf16.safetensors",
          struct.pack("<Q", len(header)) + header + b"\x80\x3f\x00\x40")
    write("safetensors", "no_tensors.safetensors", struct.pack("<Q", 2) + b"{}")
    # Malformed, as the hostile tests make them: a length past the end, overlapping offsets.
    write("safetensors", "header_too_long.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    header = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}).encode()
    write("safetensors", "overlap.safetensors",
          struct.pack("<Q", len(header)) + header + bytes(6))


def checkpoint(path):
    rng = np.random.default_rng(15)
    path.write_bytes(st_save({
        "layers.0.attn.q_proj.weight": rng.standard_normal((16, 64)).astype(np.float32),
        "layers.0.mlp.up.weight": rng.standard_normal((32, 64)).astype(np.float32),
        "norm.weight": np.ones(64, np.float32)}))


def compress(edgepack, work, model, passes, output):
    # Paths relative to the recipe, so the provenance (recipe SHA-256) is the same each run.
    if model.parent != work:
        shutil.copy(model, work / model.name)
    recipe = work / "recipe.json"
    recipe.write_text(json.dumps({"model": model.name, "passes": passes, "output": output.name}))
    subprocess.run([edgepack, "compress", str(recipe), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    return output.read_bytes()


def packed_seeds(edgepack):
    rtn4 = {"pass": "quantize-weights", "bits": 4, "group_size": 32, "min_elements": 0}
    rtn8 = {"pass": "quantize-weights", "bits": 8, "group_size": 0, "min_elements": 0}
    prune = {"pass": "prune", "method": "magnitude", "sparsity": 0.5, "min_elements": 0}
    prune24 = {"pass": "prune", "method": "magnitude", "pattern": "2:4", "min_elements": 0}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = work / "ckpt.safetensors"
        checkpoint(ckpt)
        conv = work / "conv.onnx"
        shutil.copy(NODE_TESTS / "test_conv_with_strides_padding" / "model.onnx", conv)
        ifm = work / "if.onnx"
        shutil.copy(NODE_TESTS / "test_if" / "model.onnx", ifm)
        for name, model, passes in (("ckpt_f32", ckpt, []), ("ckpt_int4g32", ckpt, [rtn4]),
                                    ("ckpt_int8c", ckpt, [rtn8]),
                                    ("ckpt_sparse_bitmask", ckpt, [prune]),
                                    ("ckpt_sparse_2of4_int4", ckpt, [prune24, rtn4]),
                                    ("conv", conv, []), ("if_subgraphs", ifm, [])):
            write("epk", name + ".epk", compress(edgepack, work, model, passes, work / "o.epk"))
            if model == ckpt and passes:
                write("safetensors", name + ".safetensors",
                      compress(edgepack, work, model, passes, work / "o.safetensors"))


def npy_bytes(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


def npy_seeds():
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3), "f16": np.ones(3, np.float16),
        "f64": np.array(1.5), "i8": np.arange(-3, 3, dtype=np.int8),
        "u16": np.arange(4, dtype=np.uint16), "i64_3d": np.zeros((1, 2, 2), np.int64),
        "bool": np.array([True, False]), "empty": np.zeros((0, 3), np.float32),
    }
    for name, a in arrays.items():
        write("npy", name + ".npy", npy_bytes(a))
    write("npy", "v2.npy", npy_bytes(arrays["f32"], (2, 0)))
    write("npy", "v3.npy", npy_bytes(arrays["i8"], (3, 0)))
    write("npy", "fortran.npy", npy_bytes(np.asfortranarray(np.ones((2, 3), np.float32))))
    write("npy", "big_endian.npy", npy_bytes(np.arange(3, dtype=">f4")))
    write("npy", "truncated.npy", npy_bytes(arrays["f32"])[:-5])
    for name, compression in (("stored", zipfile.ZIP_STORED),
                              ("deflated", zipfile.ZIP_DEFLATED)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression) as z:
            # A fixed date, so the archive's bytes are the same each run.
            for member, a in (("input.npy", arrays["f32"]), ("label.npy", np.array([3]))):
                z.writestr(zipfile.ZipInfo(member, (2024, 1, 1, 0, 0, 0)), npy_bytes(a),
                           compression)
        write("npy", name + ".npz", buf.getvalue())


def recipe_seeds():
    for p in sorted((ROOT / "examples" / "recipes").glob("*.json")):
        text = p.read_text()
        write("recipe", p.name, text.encode())
        # The same recipe on the model the harness places beside it, so the fuzzer starts
        # from recipes that pass the model check (the loader's last).
        doc = json.loads(text)
        doc["model"] = "model.onnx"
        write("recipe", "local-" + p.name, json.dumps(doc, indent=1).encode())
    write("recipe", "minimal.json", b'{"model": "model.onnx", "passes": [], "output": "o.epk"}')


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    onnx_seeds()
    safetensors_seeds()
    packed_seeds(sys.argv[1])
    npy_seeds()
    recipe_seeds()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
