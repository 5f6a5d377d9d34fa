#!/usr/bin/env python3
"""Writes one-node ONNX test cases with outputs computed by ONNX Runtime (the oracle).

usage: op_cases.py OUTDIR [--group quant|nbits|resize|recurrent|attention|audio|control|all] [--seed S]

Each case is a directory OUTDIR/<name>/ holding
  model.onnx        the one-node model (quantized weights as initializers)
  input_<i>.npy     the feeds, in the order of case.json "inputs"
  expected_<i>.npy  ONNX Runtime's outputs, in the order of case.json "outputs"
  case.json         {"inputs": [names], "outputs": [names], "atol", "rtol", "int_tol",
                     "oracle": "ort" or "reference", "ref_max_diff": |ORT - onnx reference|}
4-bit outputs cannot leave ONNX Runtime's Python API, so for those the oracle runs the
same model with a Cast to int8/uint8 appended and the expected file holds int8/uint8
values (the C++ test unpacks edgepack's int4 output to compare). When ONNX Runtime has no
kernel for a case, the onnx reference evaluator is the oracle (marked in case.json).
ONNX Runtime refuses layout = 1 for LSTM / GRU / RNN: for those cases the oracle is ORT on
the same node with layout 0, fed and read through the axis swap ("ort-layout0").
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

NP_TO_TP = {
    np.dtype(np.float32): TP.FLOAT,
    np.dtype(np.float16): TP.FLOAT16,
    np.dtype(np.float64): TP.DOUBLE,
    np.dtype(np.int8): TP.INT8,
    np.dtype(np.uint8): TP.UINT8,
    np.dtype(np.int16): TP.INT16,
    np.dtype(np.uint16): TP.UINT16,
    np.dtype(np.int32): TP.INT32,
    np.dtype(np.int64): TP.INT64,
    np.dtype(np.bool_): TP.BOOL,
}


class Int4:
    """A constant int4/uint4 tensor given as unpacked int values."""

    def __init__(self, values, signed):
        self.values = np.asarray(values)
        self.signed = signed

    def tensor(self, name):
        flat = [int(v) for v in self.values.reshape(-1)]
        return helper.make_tensor(name, TP.INT4 if self.signed else TP.UINT4,
                                  list(self.values.shape), flat)


def const(name, value):
    if isinstance(value, Int4):
        return value.tensor(name)
    return numpy_helper.from_array(np.asarray(value), name)


class Case:
    def __init__(self, name, op, feeds, consts, outputs, attrs=None, opset=13, domain="",
                 out_types=None, atol=1e-5, rtol=1e-5, int_tol=0, oracle="ort", extra_opsets=None,
                 input_order=None):
        self.__dict__.update(locals())
        del self.__dict__["self"]


def build_model(case, cast_int4=False):
    inputs, inits, node_inputs = [], [], []
    order = case.input_order or list(case.feeds.keys()) + list(case.consts.keys())
    for name in order:
        if name == "":
            node_inputs.append("")
            continue
        node_inputs.append(name)
        if name in case.feeds:
            arr = case.feeds[name]
            inputs.append(helper.make_tensor_value_info(name, NP_TO_TP[arr.dtype], list(arr.shape)))
        else:
            inits.append(const(name, case.consts[name]))
    # Feeds and constants the node does not take are read by its subgraphs (outer scope).
    for name, arr in case.feeds.items():
        if name not in order:
            inputs.append(helper.make_tensor_value_info(name, NP_TO_TP[arr.dtype], list(arr.shape)))
    for name, value in case.consts.items():
        if name not in order:
            inits.append(const(name, value))
    node = helper.make_node(case.op, node_inputs, case.outputs, domain=case.domain,
                            **(case.attrs or {}))
    nodes = [node]
    outs = []
    for i, name in enumerate(case.outputs):
        if not name:  # an optional output the node leaves out
            continue
        t = (case.out_types or {}).get(name, None)
        if cast_int4 and t in (TP.INT4, TP.UINT4):
            cast_name = name + "_as8"
            nodes.append(helper.make_node("Cast", [name], [cast_name],
                                          to=TP.INT8 if t == TP.INT4 else TP.UINT8))
            outs.append(onnx.ValueInfoProto(name=cast_name))
        else:
            outs.append(onnx.ValueInfoProto(name=name))
    graph = helper.make_graph(nodes, case.name, inputs, outs, inits)
    opsets = [helper.make_opsetid("", case.opset)]
    if case.domain:
        opsets.append(helper.make_opsetid(case.domain, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgepack-xcheck")
    model.ir_version = 11 if case.opset >= 23 else 10 if case.opset >= 21 else 8
    # Declare the output types shape inference finds (ONNX Runtime requires them).
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in model.graph.output:
        if out.name in types and types[out.name].tensor_type.elem_type:
            out.type.tensor_type.elem_type = types[out.name].tensor_type.elem_type
    return model


def run_ort(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_layout0_twin(case):
    """A layout = 1 recurrent node through ORT as its layout = 0 twin: X, initial_h / c and
    the outputs have their first two axes swapped (Y: [S, D, B, H] -> [B, S, D, H])."""
    twin = Case(**{**case.__dict__, "attrs": {**case.attrs, "layout": 0}, "oracle": "ort"})
    twin.feeds = {k: (np.swapaxes(v, 0, 1).copy() if k in ("X", "initial_h", "initial_c") else v)
                  for k, v in case.feeds.items()}
    outs = run_ort(build_model(twin), twin.feeds)
    return [np.transpose(o, (2, 0, 1, 3)).copy() if o.ndim == 4 else np.swapaxes(o, 0, 1).copy()
            for o in outs]


def run_reference(model, feeds):
    return ReferenceEvaluator(model).run(None, feeds)


def as_comparable(v):
    v = np.asarray(v)
    if v.dtype.kind in "iu" or v.dtype.kind == "f":
        return v.astype(np.float64)
    # ml_dtypes int4/uint4 from the reference evaluator
    return v.astype(np.int64).astype(np.float64)


def write_case(root, case):
    d = os.path.join(root, case.name)
    os.makedirs(d, exist_ok=True)
    model = build_model(case)
    onnx.save(model, os.path.join(d, "model.onnx"))
    has_int4_out = any(t in (TP.INT4, TP.UINT4) for t in (case.out_types or {}).values())
    oracle_model = build_model(case, cast_int4=True) if has_int4_out else model
    try:
        ref = run_reference(model, case.feeds)
    except Exception as e:  # the reference has no kernel (MatMulNBits) or rejects the case
        ref = None
        ref_error = str(e).splitlines()[0][:200]
    if case.oracle == "ort":
        expected = run_ort(oracle_model, case.feeds)
    elif case.oracle == "ort-layout0":
        expected = run_layout0_twin(case)
    else:
        if ref is None:
            raise RuntimeError(f"{case.name}: reference failed: {ref_error}")
        expected = ref
    ref_diff = None
    if ref is not None:
        # The onnx reference's Loop concatenates scan outputs where ONNX Runtime (and the
        # backend test data) stack them: no difference to report when shapes disagree.
        if all(np.shape(a) == np.shape(b) for a, b in zip(expected, ref)):
            ref_diff = max(float(np.max(np.abs(as_comparable(a) - as_comparable(b))))
                           if np.asarray(a).size else 0.0 for a, b in zip(expected, ref))
    for i, name in enumerate(case.feeds):
        np.save(os.path.join(d, f"input_{i}.npy"), case.feeds[name])
    for i, value in enumerate(expected):
        value = np.asarray(value)
        if value.dtype.kind not in "fiub":
            value = value.astype(np.int8 if "int4" in str(value.dtype) and "u" not in str(value.dtype)
                                 else np.uint8)
        np.save(os.path.join(d, f"expected_{i}.npy"), value)
    meta = {"inputs": list(case.feeds.keys()), "outputs": [o for o in case.outputs if o], "atol": case.atol,
            "rtol": case.rtol, "int_tol": case.int_tol, "oracle": case.oracle,
            "ref_max_diff": ref_diff}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return ref_diff


# ---------------------------------------------------------------------------- cases

def quant_cases(rng):
    cases = []
    f32 = np.float32

    def x_with_ties(shape, scale):
        # Multiples of scale/2 hit round-half-to-even exactly; the rest is random.
        x = rng.uniform(-40, 40, size=shape).astype(f32) * scale
        flat = x.reshape(-1)
        k = min(flat.size, 12)
        flat[:k] = (np.arange(k) - 6).astype(f32) * f32(scale) / f32(2) + f32(scale) * f32(0.5)
        return x

    # QuantizeLinear
    x = x_with_ties((3, 5), 0.5)
    cases.append(Case("q_u8_per_tensor_opset10", "QuantizeLinear", {"x": x},
                      {"s": np.array(0.5, f32), "z": np.array(128, np.uint8)}, ["y"], opset=10))
    cases.append(Case("q_u8_no_zero_point", "QuantizeLinear", {"x": x},
                      {"s": np.array(0.25, f32)}, ["y"], opset=13))
    x = rng.uniform(-8, 8, size=(2, 3, 4)).astype(f32)
    cases.append(Case("q_i8_per_axis", "QuantizeLinear", {"x": x},
                      {"s": np.array([0.05, 0.1, 0.02], f32), "z": np.array([-3, 0, 7], np.int8)},
                      ["y"], attrs={"axis": 1}))
    cases.append(Case("q_i8_per_axis_last", "QuantizeLinear", {"x": x},
                      {"s": np.array([0.05, 0.1, 0.02, 0.5], f32),
                       "z": np.array([-3, 0, 7, 1], np.int8)}, ["y"], attrs={"axis": -1}))
    x = rng.uniform(-3, 3, size=(4, 10)).astype(f32)
    cases.append(Case("q_i8_blocked_axis1", "QuantizeLinear", {"x": x},
                      {"s": rng.uniform(0.01, 0.05, size=(4, 3)).astype(f32),
                       "z": rng.integers(-5, 5, size=(4, 3)).astype(np.int8)}, ["y"],
                      attrs={"axis": 1, "block_size": 4}, opset=21))
    x = rng.uniform(-3, 3, size=(6, 3)).astype(f32)
    cases.append(Case("q_u8_blocked_axis0", "QuantizeLinear", {"x": x},
                      {"s": rng.uniform(0.01, 0.05, size=(2, 3)).astype(f32),
                       "z": rng.integers(100, 150, size=(2, 3)).astype(np.uint8)}, ["y"],
                      attrs={"axis": 0, "block_size": 4}, opset=21))
    x = x_with_ties((3, 5), 1.0)
    cases.append(Case("q_i4_per_tensor", "QuantizeLinear", {"x": x},
                      {"s": np.array(1.0, f32), "z": Int4(np.array(1), True)}, ["y"], opset=21,
                      out_types={"y": TP.INT4}))
    x = rng.uniform(-2, 2, size=(2, 9)).astype(f32)
    cases.append(Case("q_u4_blocked", "QuantizeLinear", {"x": x},
                      {"s": rng.uniform(0.1, 0.3, size=(2, 3)).astype(f32),
                       "z": Int4(rng.integers(4, 12, size=(2, 3)), False)}, ["y"],
                      attrs={"axis": 1, "block_size": 4}, opset=21, out_types={"y": TP.UINT4}))
    x = rng.uniform(-2, 2, size=(3, 4)).astype(f32)
    cases.append(Case("q_i4_per_axis", "QuantizeLinear", {"x": x},
                      {"s": np.array([0.1, 0.2, 0.3], f32), "z": Int4([0, -1, 2], True)}, ["y"],
                      attrs={"axis": 0}, opset=21, out_types={"y": TP.INT4}))
    x = rng.uniform(-500, 500, size=(3, 4)).astype(f32)
    cases.append(Case("q_i16", "QuantizeLinear", {"x": x},
                      {"s": np.array(0.01, f32), "z": np.array(-100, np.int16)}, ["y"], opset=21))
    cases.append(Case("q_u16_per_axis", "QuantizeLinear", {"x": x},
                      {"s": np.array([0.01, 0.02, 0.03, 0.04], f32),
                       "z": np.array([30000, 100, 65000, 0], np.uint16)}, ["y"],
                      attrs={"axis": 1}, opset=21))
    cases.append(Case("q_output_dtype_i8", "QuantizeLinear", {"x": x},
                      {"s": np.array(2.0, f32)}, ["y"], attrs={"output_dtype": TP.INT8}, opset=21))
    x = rng.uniform(-4, 4, size=(2, 5)).astype(np.float16)
    cases.append(Case("q_f16_input", "QuantizeLinear", {"x": x},
                      {"s": np.array(0.0625, np.float16), "z": np.array(3, np.int8)}, ["y"], opset=19))
    x = np.array([[1e9, -1e9, 3.4e38, -3.4e38, 0.0, -0.0]], f32)
    cases.append(Case("q_saturate_u8", "QuantizeLinear", {"x": x},
                      {"s": np.array(0.5, f32), "z": np.array(10, np.uint8)}, ["y"]))
    cases.append(Case("q_saturate_i8", "QuantizeLinear", {"x": x},
                      {"s": np.array(0.5, f32), "z": np.array(-10, np.int8)}, ["y"]))

    # DequantizeLinear
    q = rng.integers(0, 256, size=(3, 5)).astype(np.uint8)
    cases.append(Case("dq_u8_per_tensor_opset10", "DequantizeLinear", {"x": q},
                      {"s": np.array(0.05, f32), "z": np.array(128, np.uint8)}, ["y"], opset=10))
    q = rng.integers(-128, 128, size=(2, 3, 4)).astype(np.int8)
    cases.append(Case("dq_i8_per_axis", "DequantizeLinear", {"x": q},
                      {"s": np.array([0.05, 0.1, 0.02], f32), "z": np.array([-3, 0, 7], np.int8)},
                      ["y"], attrs={"axis": 1}))
    q = rng.integers(-100000, 100000, size=(4, 3)).astype(np.int32)
    cases.append(Case("dq_i32_no_zero_point", "DequantizeLinear", {"x": q},
                      {"s": np.array(0.001, f32)}, ["y"]))
    cases.append(Case("dq_i32_per_axis", "DequantizeLinear", {"x": q},
                      {"s": np.array([0.001, 0.5, 2.0], f32)}, ["y"], attrs={"axis": 1}))
    q4 = rng.integers(-8, 8, size=(4, 10))
    cases.append(Case("dq_i4_blocked", "DequantizeLinear", {},
                      {"x": Int4(q4, True), "s": rng.uniform(0.01, 0.1, size=(4, 3)).astype(f32),
                       "z": Int4(rng.integers(-2, 3, size=(4, 3)), True)}, ["y"],
                      attrs={"axis": 1, "block_size": 4}, opset=21))
    q4 = rng.integers(0, 16, size=(3, 5))
    cases.append(Case("dq_u4_per_axis", "DequantizeLinear", {},
                      {"x": Int4(q4, False), "s": np.array([0.1, 0.2, 0.3], f32),
                       "z": Int4([8, 7, 0], False)}, ["y"], attrs={"axis": 0}, opset=21))
    cases.append(Case("dq_u4_per_tensor_odd", "DequantizeLinear", {},
                      {"x": Int4(q4, False), "s": np.array(0.5, f32), "z": Int4(np.array(3), False)},
                      ["y"], opset=21))
    q = rng.integers(0, 256, size=(6, 3)).astype(np.uint8)
    cases.append(Case("dq_u8_blocked_axis0", "DequantizeLinear", {"x": q},
                      {"s": rng.uniform(0.01, 0.05, size=(2, 3)).astype(f32),
                       "z": rng.integers(100, 150, size=(2, 3)).astype(np.uint8)}, ["y"],
                      attrs={"axis": 0, "block_size": 4}, opset=21))
    q = rng.integers(-32768, 32768, size=(3, 4)).astype(np.int16)
    cases.append(Case("dq_i16", "DequantizeLinear", {"x": q},
                      {"s": np.array(0.001, f32), "z": np.array(-7, np.int16)}, ["y"], opset=21))
    q = rng.integers(0, 65536, size=(3, 4)).astype(np.uint16)
    cases.append(Case("dq_u16", "DequantizeLinear", {"x": q},
                      {"s": np.array(0.001, f32), "z": np.array(32768, np.uint16)}, ["y"], opset=21))
    q = rng.integers(-128, 128, size=(3, 4)).astype(np.int8)
    cases.append(Case("dq_f16_scale", "DequantizeLinear", {"x": q},
                      {"s": np.array(0.0123, np.float16), "z": np.array(2, np.int8)}, ["y"], opset=19))
    cases.append(Case("dq_output_dtype_f16", "DequantizeLinear", {"x": q},
                      {"s": np.array(0.0123, f32), "z": np.array(2, np.int8)}, ["y"],
                      attrs={"output_dtype": TP.FLOAT16}, opset=23))

    # DynamicQuantizeLinear
    for name, x in [("dyn_mixed", rng.uniform(-3, 5, size=(3, 7)).astype(f32)),
                    ("dyn_positive", rng.uniform(0.5, 5, size=(4, 4)).astype(f32)),
                    ("dyn_negative", rng.uniform(-5, -0.5, size=(2, 9)).astype(f32)),
                    ("dyn_zeros", np.zeros((2, 3), f32)),
                    ("dyn_large", rng.normal(0, 2, size=(300, 301)).astype(f32))]:
        cases.append(Case(name, "DynamicQuantizeLinear", {"x": x}, {}, ["y", "y_scale", "y_zp"],
                          opset=11))

    # MatMulInteger
    a = rng.integers(0, 256, size=(5, 7)).astype(np.uint8)
    b = rng.integers(0, 256, size=(7, 3)).astype(np.uint8)
    cases.append(Case("mmi_u8_u8_scalar_zp", "MatMulInteger", {"a": a, "b": b},
                      {"az": np.array(12, np.uint8), "bz": np.array(200, np.uint8)}, ["y"], opset=10))
    cases.append(Case("mmi_no_zp", "MatMulInteger", {"a": a, "b": b}, {}, ["y"], opset=10))
    a8 = rng.integers(-128, 128, size=(2, 4, 33)).astype(np.int8)
    b8 = rng.integers(-128, 128, size=(33, 65)).astype(np.int8)
    cases.append(Case("mmi_i8_i8_batched", "MatMulInteger", {"a": a8, "b": b8},
                      {"az": np.array(-3, np.int8), "bz": np.array(5, np.int8)}, ["y"], opset=10))
    b8c = rng.integers(-128, 128, size=(7, 3)).astype(np.int8)
    cases.append(Case("mmi_u8_i8_per_column_zp", "MatMulInteger", {"a": a, "b": b8c},
                      {"az": np.array(100, np.uint8), "bz": np.array([1, -2, 3], np.int8)}, ["y"],
                      opset=10))
    a3 = rng.integers(0, 256, size=(3, 1, 2, 6)).astype(np.uint8)
    b3 = rng.integers(0, 256, size=(4, 6, 5)).astype(np.uint8)
    cases.append(Case("mmi_broadcast_batch", "MatMulInteger", {"a": a3, "b": b3},
                      {"az": np.array(3, np.uint8), "bz": np.array(9, np.uint8)}, ["y"], opset=10))
    cases.append(Case("mmi_per_row_a_zp", "MatMulInteger", {"a": a, "b": b},
                      {"az": rng.integers(0, 256, size=(5, 1)).astype(np.uint8),
                       "bz": np.array(200, np.uint8)}, ["y"], opset=10, oracle="reference"))
    av = rng.integers(0, 256, size=(7,)).astype(np.uint8)
    cases.append(Case("mmi_vector_a", "MatMulInteger", {"a": av, "b": b},
                      {"az": np.array(1, np.uint8), "bz": np.array(2, np.uint8)}, ["y"], opset=10))

    # ConvInteger
    x = rng.integers(0, 256, size=(1, 2, 6, 7)).astype(np.uint8)
    w = rng.integers(0, 256, size=(3, 2, 3, 3)).astype(np.uint8)
    cases.append(Case("convi_u8_pads_strides", "ConvInteger", {"x": x},
                      {"w": w, "xz": np.array(120, np.uint8), "wz": np.array(130, np.uint8)}, ["y"],
                      attrs={"pads": [1, 0, 2, 1], "strides": [2, 1]}, opset=10))
    x = rng.integers(0, 256, size=(2, 4, 5, 5)).astype(np.uint8)
    w = rng.integers(0, 256, size=(4, 2, 2, 2)).astype(np.uint8)
    cases.append(Case("convi_group_dilation", "ConvInteger", {"x": x},
                      {"w": w, "xz": np.array(7, np.uint8), "wz": np.array(128, np.uint8)}, ["y"],
                      attrs={"group": 2, "dilations": [2, 1]}, opset=10))
    x = rng.integers(0, 256, size=(1, 3, 4, 4)).astype(np.uint8)
    w = rng.integers(0, 256, size=(2, 3, 3, 3)).astype(np.uint8)
    cases.append(Case("convi_same_upper_no_zp", "ConvInteger", {"x": x}, {"w": w}, ["y"],
                      attrs={"auto_pad": "SAME_UPPER"}, opset=10))

    # QLinearMatMul
    a = rng.integers(0, 256, size=(4, 9)).astype(np.uint8)
    b = rng.integers(0, 256, size=(9, 5)).astype(np.uint8)
    order = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    cases.append(Case("qlmm_u8_2d", "QLinearMatMul", {"a": a, "b": b},
                      {"as": np.array(0.02, f32), "az": np.array(113, np.uint8),
                       "bs": np.array(0.01, f32), "bz": np.array(114, np.uint8),
                       "ys": np.array(0.05, f32), "yz": np.array(118, np.uint8)}, ["y"],
                      opset=10, input_order=order))
    a = rng.integers(-128, 128, size=(2, 3, 40)).astype(np.int8)
    b = rng.integers(-128, 128, size=(40, 70)).astype(np.int8)
    cases.append(Case("qlmm_i8_3d", "QLinearMatMul", {"a": a, "b": b},
                      {"as": np.array(0.02, f32), "az": np.array(-1, np.int8),
                       "bs": np.array(0.01, f32), "bz": np.array(0, np.int8),
                       "ys": np.array(0.3, f32), "yz": np.array(5, np.int8)}, ["y"],
                      opset=10, input_order=order))
    a = rng.integers(0, 256, size=(3, 16)).astype(np.uint8)
    b = rng.integers(-128, 128, size=(16, 6)).astype(np.int8)
    cases.append(Case("qlmm_u8_i8_per_column", "QLinearMatMul", {"a": a, "b": b},
                      {"as": np.array(0.02, f32), "az": np.array(128, np.uint8),
                       "bs": rng.uniform(0.005, 0.02, size=(6,)).astype(f32),
                       "bz": np.zeros(6, np.int8),
                       "ys": np.array(0.2, f32), "yz": np.array(100, np.uint8)}, ["y"],
                      opset=10, input_order=order))

    # QLinearConv
    order = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "B"]
    x = rng.integers(0, 256, size=(1, 3, 7, 6)).astype(np.uint8)
    w = rng.integers(0, 256, size=(4, 3, 3, 3)).astype(np.uint8)
    cases.append(Case("qlconv_u8_bias", "QLinearConv", {"x": x},
                      {"xs": np.array(0.02, f32), "xz": np.array(120, np.uint8), "w": w,
                       "ws": np.array(0.003, f32), "wz": np.array(128, np.uint8),
                       "ys": np.array(0.1, f32), "yz": np.array(90, np.uint8),
                       "B": rng.integers(-2000, 2000, size=(4,)).astype(np.int32)}, ["y"],
                      attrs={"pads": [1, 1, 1, 1]}, opset=10, input_order=order))
    x = rng.integers(-128, 128, size=(2, 6, 9, 9)).astype(np.int8)
    w = rng.integers(-128, 128, size=(6, 1, 3, 3)).astype(np.int8)
    cases.append(Case("qlconv_i8_depthwise_per_channel", "QLinearConv", {"x": x},
                      {"xs": np.array(0.05, f32), "xz": np.array(-4, np.int8), "w": w,
                       "ws": rng.uniform(0.001, 0.01, size=(6,)).astype(f32),
                       "wz": np.zeros(6, np.int8), "ys": np.array(0.2, f32),
                       "yz": np.array(3, np.int8),
                       "B": rng.integers(-500, 500, size=(6,)).astype(np.int32)}, ["y"],
                      attrs={"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=10,
                      input_order=order))
    x = rng.integers(0, 256, size=(1, 8, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, size=(5, 8, 1, 1)).astype(np.int8)
    cases.append(Case("qlconv_pointwise_u8_i8", "QLinearConv", {"x": x},
                      {"xs": np.array(0.05, f32), "xz": np.array(128, np.uint8), "w": w,
                       "ws": rng.uniform(0.001, 0.01, size=(5,)).astype(f32),
                       "wz": np.zeros(5, np.int8), "ys": np.array(0.4, f32),
                       "yz": np.array(128, np.uint8)}, ["y"], opset=10,
                      input_order=order[:8]))
    x = rng.integers(0, 256, size=(1, 2, 6, 6)).astype(np.uint8)
    w = rng.integers(0, 256, size=(2, 2, 3, 3)).astype(np.uint8)
    cases.append(Case("qlconv_same_lower_dilated", "QLinearConv", {"x": x},
                      {"xs": np.array(0.05, f32), "xz": np.array(128, np.uint8), "w": w,
                       "ws": np.array(0.01, f32), "wz": np.array(120, np.uint8),
                       "ys": np.array(0.3, f32), "yz": np.array(128, np.uint8)}, ["y"],
                      attrs={"auto_pad": "SAME_LOWER", "dilations": [2, 2]}, opset=10,
                      input_order=order[:8], oracle="reference"))  # ORT: no dilated SAME
    return cases


def pack_bits(codes, bits):
    """Packs codes (last axis) low bits first, 8 / bits codes a byte."""
    per = 8 // bits
    codes = np.asarray(codes, np.uint8)
    pad = (-codes.shape[-1]) % per
    if pad:
        codes = np.concatenate([codes, np.zeros(codes.shape[:-1] + (pad,), np.uint8)], axis=-1)
    codes = codes.reshape(codes.shape[:-1] + (-1, per))
    out = np.zeros(codes.shape[:-1], np.uint8)
    for i in range(per):
        out |= (codes[..., i] << (i * bits)).astype(np.uint8)
    return out


def nbits_cases(rng):
    cases = []
    f32 = np.float32
    specs = [
        # name, M shape, K, N, bits, block, zero points, bias, A dtype
        ("nbits4_basic", (3,), 64, 8, 4, 32, None, False, f32),
        ("nbits4_zp_bias", (5,), 128, 33, 4, 16, "packed", True, f32),
        ("nbits4_k_not_multiple", (2,), 40, 7, 4, 16, "packed", False, f32),
        ("nbits4_odd_blocks_zp", (1,), 48, 65, 4, 16, "packed", True, f32),
        ("nbits4_float_zp", (4,), 64, 9, 4, 32, "float", False, f32),
        ("nbits4_3d_a", (2, 3), 64, 31, 4, 64, "packed", True, f32),
        ("nbits8_basic", (3,), 64, 16, 8, 32, "packed", False, f32),
        ("nbits8_no_zp", (1,), 256, 40, 8, 128, None, True, f32),
        ("nbits2_zp", (3,), 64, 12, 2, 32, "packed", False, f32),
        ("nbits4_f16", (3,), 64, 10, 4, 32, "packed", False, np.float16),
    ]
    # The deprecated g_idx input is left out: ONNX Runtime's CPU kernel reads
    # g_idx[block * block_size + i] with i the position in an 8-element group, not in the
    # block, so it is no oracle there (tests/test_ops_quant.cpp checks g_idx directly).
    for name, mshape, k, n, bits, block, zp_kind, bias, adt in specs:
        kb = (k + block - 1) // block
        codes = rng.integers(0, 1 << bits, size=(n, kb * block)).astype(np.uint8)
        codes[:, k:] = 0
        b = pack_bits(codes.reshape(n, kb, block), bits)  # [N, kb, blob]
        scales = rng.uniform(0.01, 0.1, size=(n * kb,)).astype(adt)
        consts = {"B": b, "scales": scales}
        order = ["A", "B", "scales"]
        if zp_kind == "packed":
            zcodes = rng.integers(0, 1 << bits, size=(n, kb)).astype(np.uint8)
            consts["zp"] = pack_bits(zcodes, bits)
            order.append("zp")
        elif zp_kind == "float":
            consts["zp"] = rng.uniform(0, (1 << bits) - 1, size=(n * kb,)).astype(adt)
            order.append("zp")
        if bias:
            order += [""] * (5 - len(order)) + ["bias"]
            consts["bias"] = rng.uniform(-1, 1, size=(n,)).astype(adt)
        a = rng.uniform(-1, 1, size=mshape + (k,)).astype(adt)
        tol = 2e-3 if adt == np.float16 else 1e-4
        cases.append(Case(name, "MatMulNBits", {"A": a}, consts, ["Y"], domain="com.microsoft",
                          attrs={"K": k, "N": n, "bits": bits, "block_size": block,
                                 "accuracy_level": 0}, opset=21, atol=tol, rtol=tol,
                          input_order=order))
    return cases


def resize_cases(rng):
    cases = []
    f32 = np.float32
    x4 = rng.uniform(-1, 1, size=(1, 2, 4, 5)).astype(f32)
    x3 = rng.uniform(-1, 1, size=(1, 1, 3, 3)).astype(f32)
    empty = np.array([], f32)

    def add(name, x, mode, scales=None, sizes=None, roi=None, opset=13, oracle="ort", **attrs):
        attrs["mode"] = mode
        consts, order = {}, ["X"]
        if opset == 10:
            consts["scales"] = np.asarray(scales, f32)
            order.append("scales")
        else:
            if opset < 13:  # roi and scales are required inputs (possibly empty) before 13
                roi = empty if roi is None else roi
                scales = empty if scales is None else scales
            order.append("roi" if roi is not None else "")
            if roi is not None:
                consts["roi"] = np.asarray(roi, f32)
            if scales is not None:
                consts["scales"] = np.asarray(scales, f32)
                order.append("scales")
            else:
                order.append("")
            if sizes is not None:
                consts["sizes"] = np.asarray(sizes, np.int64)
                order.append("sizes")
        cases.append(Case(name, "Resize", {"X": x}, consts, ["Y"], attrs=attrs, opset=opset,
                          oracle=oracle, input_order=order))

    up, down = [1, 1, 2, 1.5], [1, 1, 0.6, 0.5]
    for coord in ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                  "half_pixel_symmetric"]:
        opset = 19 if coord == "half_pixel_symmetric" else 13
        # With a scale whose in * scale is fractional, align_corners divides by
        # (in * scale - 1) in the ONNX reference and the conformance data
        # (test_resize_downsample_scales_linear_align_corners), ONNX Runtime by (out - 1).
        oracle = "reference" if coord == "align_corners" else "ort"
        add(f"resize_linear_up_{coord}", x4, "linear", scales=up, opset=opset,
            coordinate_transformation_mode=coord, oracle=oracle)
        add(f"resize_linear_down_{coord}", x4, "linear", scales=down, opset=opset,
            coordinate_transformation_mode=coord, oracle=oracle)
        add(f"resize_cubic_up_{coord}", x4, "cubic", scales=up, opset=opset,
            coordinate_transformation_mode=coord, oracle=oracle)
        add(f"resize_nearest_down_{coord}", x4, "nearest", scales=down, opset=opset,
            coordinate_transformation_mode=coord, oracle=oracle)
    add("resize_linear_align_corners_sizes", x4, "linear", sizes=[1, 2, 7, 3],
        coordinate_transformation_mode="align_corners")
    for nm in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]:
        add(f"resize_nearest_up_{nm}", x3, "nearest", sizes=[1, 1, 7, 8],
            coordinate_transformation_mode="half_pixel", nearest_mode=nm)
        add(f"resize_nearest_up_asym_{nm}", x3, "nearest", scales=[1, 1, 2, 3],
            coordinate_transformation_mode="asymmetric", nearest_mode=nm)
    # tf_half_pixel_for_nn (opset 11-12) has no oracle here: ONNX Runtime and the
    # reference evaluator both reject it; the conformance data covers it.
    add("resize_nearest_opset11", x4, "nearest", sizes=[1, 2, 3, 2], opset=11)
    add("resize_cubic_exclude_outside", x4, "cubic", scales=[1, 1, 0.75, 1.6], cubic_coeff_a=-0.5,
        exclude_outside=1)
    add("resize_cubic_down_sizes", x4, "cubic", sizes=[1, 2, 3, 3])
    add("resize_linear_sizes_odd", x4, "linear", sizes=[1, 2, 7, 3])
    add("resize_tf_crop_and_resize", x4, "linear", sizes=[1, 2, 3, 3],
        roi=[0, 0, 0.4, 0.6, 1, 1, 0.6, 0.8], coordinate_transformation_mode="tf_crop_and_resize")
    # A roi reaching outside the input: ONNX Runtime does not extrapolate rows whose
    # source coordinate is negative; the reference does, as the spec says.
    add("resize_tf_crop_extrapolate", x4, "linear", sizes=[1, 2, 4, 4],
        roi=[0, 0, -0.2, 0.3, 1, 1, 1.3, 1.2], coordinate_transformation_mode="tf_crop_and_resize",
        extrapolation_value=10.0, oracle="reference")
    add("resize_tf_crop_nearest", x4, "nearest", sizes=[1, 2, 4, 4],
        roi=[0, 0, -0.2, 0.3, 1, 1, 1.3, 1.2], coordinate_transformation_mode="tf_crop_and_resize",
        extrapolation_value=-3.0, oracle="reference")
    add("resize_opset10_nearest_up", x3, "nearest", scales=[1, 1, 2, 3], opset=10)
    add("resize_opset10_nearest_down", x4, "nearest", scales=[1, 1, 0.6, 0.6], opset=10)
    add("resize_opset10_linear", x4, "linear", scales=[1, 1, 2, 0.5], opset=10)
    add("resize_axes_sizes", x4, "linear", sizes=[6, 3], opset=18, axes=[2, 3])
    add("resize_axes_negative", x4, "cubic", scales=[1.5, 2], opset=18, axes=[-1, -2])
    add("resize_not_larger", x4, "linear", sizes=[7, 7], opset=18, axes=[2, 3],
        keep_aspect_ratio_policy="not_larger")
    add("resize_not_smaller", x4, "nearest", sizes=[7, 7], opset=18, axes=[2, 3],
        keep_aspect_ratio_policy="not_smaller")
    add("resize_antialias_linear", rng.uniform(-1, 1, size=(1, 1, 9, 11)).astype(f32), "linear",
        scales=[1, 1, 0.4, 0.6], opset=18, antialias=1)
    add("resize_antialias_cubic", rng.uniform(-1, 1, size=(1, 1, 9, 11)).astype(f32), "cubic",
        scales=[1, 1, 0.5, 0.3], opset=18, antialias=1)
    add("resize_antialias_sizes", rng.uniform(-1, 1, size=(1, 1, 8, 8)).astype(f32), "linear",
        sizes=[1, 1, 3, 5], opset=18, antialias=1)
    add("resize_u8_linear", rng.integers(0, 256, size=(1, 1, 4, 4)).astype(np.uint8), "linear",
        scales=[1, 1, 1.5, 2])
    add("resize_u8_nearest", rng.integers(0, 256, size=(1, 2, 3, 3)).astype(np.uint8), "nearest",
        scales=[1, 1, 2, 2])
    add("resize_i32_nearest_3d", rng.integers(-99, 99, size=(2, 3, 4)).astype(np.int32),
        "nearest", sizes=[2, 5, 2])
    add("resize_1d_linear", rng.uniform(-1, 1, size=(6,)).astype(f32), "linear", sizes=[13],
        oracle="reference")  # ORT's linear mode takes 2-D and 4-D inputs only
    add("resize_f16_linear", rng.uniform(-1, 1, size=(1, 1, 4, 4)).astype(np.float16), "linear",
        scales=[1, 1, 2, 2])
    add("resize_cubic_identity_axis", x4, "cubic", scales=[1, 1, 1, 2])
    add("resize_pytorch_to_one", x4, "cubic", sizes=[1, 2, 1, 3],
        coordinate_transformation_mode="pytorch_half_pixel")
    for c in cases:
        if c.feeds["X"].dtype == np.float16:
            c.atol = c.rtol = 2e-3
        elif c.feeds["X"].dtype.kind in "iu":
            c.int_tol = 1  # ORT rounds integer interpolation its own way
    return cases


def recurrent_cases(rng):
    """LSTM / GRU / RNN: every direction, both layouts, sequence_lens, initial states,
    peepholes, clip, activations with alpha / beta, linear_before_reset, input_forget,
    outputs left out; random shapes, one large enough to split over threads."""
    cases = []
    f32 = np.float32
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}

    def add(name, op, S, B, I, H, direction="forward", layout=0, lens=None, initial=False,
            peephole=False, bias=True, outputs=None, opset=14, scale=0.5, **attrs):
        G, D = gates[op], 2 if direction == "bidirectional" else 1
        x_shape = (B, S, I) if layout else (S, B, I)
        state_shape = (B, D, H) if layout else (D, B, H)
        feeds = {"X": rng.standard_normal(x_shape).astype(f32)}
        consts = {"W": (rng.standard_normal((D, G * H, I)) * scale).astype(f32),
                  "R": (rng.standard_normal((D, G * H, H)) * scale).astype(f32)}
        order = ["X", "W", "R"]
        if bias:
            consts["B"] = (rng.standard_normal((D, 2 * G * H)) * scale).astype(f32)
        order.append("B" if bias else "")
        if lens is not None:
            feeds["sequence_lens"] = np.array(lens, np.int32)
        order.append("sequence_lens" if lens is not None else "")
        if initial:
            feeds["initial_h"] = rng.standard_normal(state_shape).astype(f32)
            if op == "LSTM":
                feeds["initial_c"] = rng.standard_normal(state_shape).astype(f32)
        order.append("initial_h" if initial else "")
        if op == "LSTM":
            order.append("initial_c" if initial else "")
            if peephole:
                consts["P"] = (rng.standard_normal((D, 3 * H)) * scale).astype(f32)
                order.append("P")
        while order and order[-1] == "":
            order.pop()
        outs = outputs or (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
        attrs = {"hidden_size": H, "direction": direction, **attrs}
        if opset >= 14:
            attrs["layout"] = layout
        cases.append(Case(f"{op.lower()}_{name}", op, feeds, consts, outs, attrs=attrs,
                          opset=opset, atol=2e-5, rtol=1e-4, input_order=order,
                          oracle="ort-layout0" if layout else "ort"))

    for op in ("LSTM", "GRU", "RNN"):
        add("forward", op, 5, 3, 4, 6)
        add("reverse", op, 5, 3, 4, 6, direction="reverse", initial=True)
        add("bidirectional", op, 6, 2, 5, 4, direction="bidirectional", initial=True)
        add("seq_lens_bidirectional", op, 7, 4, 3, 5, direction="bidirectional",
            lens=[7, 3, 0, 5], initial=True)
        add("seq_lens_reverse", op, 6, 3, 3, 4, direction="reverse", lens=[2, 6, 4])
        add("layout1_bidirectional", op, 5, 3, 4, 3, direction="bidirectional", layout=1,
            lens=[5, 2, 4], initial=True)
        add("no_bias_opset7", op, 4, 2, 3, 5, bias=False, opset=7)
        add("clip", op, 6, 2, 4, 5, direction="bidirectional", clip=0.7, scale=1.5)
        add("only_y_h", op, 4, 3, 2, 3, outputs=["", "Y_h"])
        add("only_y", op, 4, 1, 2, 3, outputs=["Y"])
        # Large enough that the input projection and the step GEMM split over threads.
        add("large", op, 24, 6, 96, 64, direction="bidirectional", scale=0.15)
    add("peepholes_clip", "LSTM", 5, 3, 4, 6, direction="bidirectional", peephole=True,
        initial=True, clip=1.2, scale=1.0)
    add("input_forget", "LSTM", 5, 2, 3, 4, input_forget=1, peephole=True)
    add("only_y_c", "LSTM", 4, 2, 3, 3, outputs=["", "", "Y_c"], initial=True)
    add("activations", "LSTM", 5, 2, 3, 4, direction="bidirectional",
        activations=["HardSigmoid", "LeakyRelu", "ScaledTanh", "sigmoid", "Elu", "Softsign"],
        activation_alpha=[0.3, 0.05, 0.9, 0.7], activation_beta=[0.45, 1.3])
    add("linear_before_reset", "GRU", 6, 3, 4, 5, direction="bidirectional",
        linear_before_reset=1, lens=[6, 1, 4], initial=True)
    add("activations", "GRU", 5, 2, 3, 4, direction="reverse",
        activations=["Affine", "ThresholdedRelu"], activation_alpha=[0.4, 0.2],
        activation_beta=[0.5], linear_before_reset=1)
    add("activations", "RNN", 5, 2, 3, 4, direction="bidirectional",
        activations=["Relu", "Softplus"])
    return cases


def attention_cases(rng):
    from attention_cases import attention_cases as cases  # GQA, RMS norms, rotary
    return cases(rng)


def audio_cases(rng):
    """DFT (opset 17 and 20: real / complex, forward / inverse, onesided, dft_length cut and
    padded, power-of-two and other lengths), STFT (windowed, real and complex, even, odd
    and power-of-two frame lengths), the three windows and MelWeightMatrix; random shapes."""
    cases = []
    f32, i64 = np.float32, np.int64

    def dft(name, shape, opset=20, axis=None, length=None, oracle="ort", **attrs):
        consts, order = {}, ["x"]
        if length is not None:
            consts["dft_length"] = np.array(length, i64)
        order.append("dft_length" if length is not None else "")
        if opset >= 20 and axis is not None:
            consts["axis"] = np.array(axis, i64)
            order.append("axis")
        elif axis is not None:
            attrs["axis"] = axis
        while order[-1] == "":
            order.pop()
        cases.append(Case(f"dft_{name}", "DFT", {"x": rng.standard_normal(shape).astype(f32)},
                          consts, ["y"], attrs=attrs, opset=opset, atol=2e-3, rtol=1e-4,
                          input_order=order, oracle=oracle))

    dft("real_pow2", (2, 64, 1))
    dft("real_prime", (3, 37, 1))
    dft("complex_axis1_padded", (2, 24, 5, 2), axis=1, length=30)
    dft("onesided_cut", (2, 50, 1), length=40, onesided=1)
    dft("inverse_complex", (3, 18, 2), inverse=1)
    dft("inverse_onesided", (2, 9, 2), inverse=1, onesided=1, oracle="reference")
    dft("opset17_axis2", (2, 3, 20, 1), opset=17, axis=2)
    dft("large_batch", (64, 96, 2))

    def stft(name, batch, length, parts, step, frame, window=None, onesided=1):
        consts = {"frame_step": np.array(step, i64)}
        order = ["signal", "frame_step"]
        if window is not None:
            consts["window"] = window.astype(f32)
            order.append("window")
        else:
            order.append("")
        consts["frame_length"] = np.array(frame, i64)
        order.append("frame_length")
        feeds = {"signal": rng.standard_normal((batch, length, parts)).astype(f32)}
        cases.append(Case(f"stft_{name}", "STFT", feeds, consts, ["y"],
                          attrs={"onesided": onesided}, opset=17, atol=2e-3, rtol=1e-4,
                          input_order=order))

    hann = lambda n: np.sin(np.arange(n) * np.pi / n) ** 2  # noqa: E731
    stft("hann_pow2", 2, 100, 1, 4, 16, hann(16))
    stft("hamming_odd", 1, 90, 1, 10, 25, 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(25) / 25))
    stft("even_not_pow2", 3, 130, 1, 7, 30, hann(30))
    stft("no_window", 2, 40, 1, 5, 12)
    stft("complex_two_sided", 1, 64, 2, 8, 16, hann(16), onesided=0)
    stft("real_two_sided", 2, 50, 1, 6, 20, hann(20), onesided=0)
    stft("long", 2, 4000, 1, 160, 400, hann(400))

    for op in ("HannWindow", "HammingWindow", "BlackmanWindow"):
        for size, periodic, dtype in ((10, 1, TP.FLOAT), (33, 0, TP.FLOAT), (16, 1, TP.DOUBLE)):
            cases.append(Case(f"{op.lower()}_{size}_{periodic}", op, {},
                              {"size": np.array(size, i64)}, ["y"],
                              attrs={"periodic": periodic, "output_datatype": dtype}, opset=17,
                              atol=1e-6, rtol=1e-5))
    for bins, n, rate, lo, hi in ((8, 64, 8000, 100.0, 4000.0), (40, 400, 16000, 20.0, 7600.0)):
        consts = {"num_mel_bins": np.array(bins, i64), "dft_length": np.array(n, i64),
                  "sample_rate": np.array(rate, i64), "lower_edge_hertz": np.array(lo, f32),
                  "upper_edge_hertz": np.array(hi, f32)}
        cases.append(Case(f"melweightmatrix_{bins}_{n}", "MelWeightMatrix", {}, consts, ["y"],
                          opset=17, atol=1e-6, rtol=1e-5))
    return cases


def control_cases(rng):
    """Loop and Scan: the body a subgraph reading outer-scope initializers and feeds; Loop
    with M and / or cond, early exit, zero trips, carried values that grow each iteration,
    int carried values, an If and a Loop nested in the body; Scan (opset 16) with several
    scan inputs, axes and directions on inputs and outputs, and the opset-8 batch form with
    sequence_lens; random shapes, two large enough to split over threads."""
    cases = []
    f32, i64 = np.float32, np.int64
    T = helper.make_tensor_value_info

    def f(name, shape=None):
        return T(name, TP.FLOAT, shape)

    def body_io(names_types):
        return [T(n, t, s) for n, t, s in names_types]

    def scalar(v, dt):
        return np.array(v, dt)

    def loop_body(nodes, extra_inputs, outputs, name="body"):
        ins = [T("iter", TP.INT64, []), T("cond_in", TP.BOOL, [])] + extra_inputs
        return helper.make_graph(nodes, name, ins, outputs)

    def mk(node_type, ins, outs, **kw):
        return helper.make_node(node_type, ins, outs, **kw)

    # Loop with a trip count: x' = x * a + bias (a an initializer, bias a feed of the outer
    # graph), scan outputs x' + iter and iter.
    B, H = (int(v) for v in rng.integers(2, 6, size=2))
    body = loop_body(
        [mk("Identity", ["cond_in"], ["cond_out"]), mk("Mul", ["x_in", "a"], ["xa"]),
         mk("Add", ["xa", "bias"], ["x_out"]), mk("Cast", ["iter"], ["iter_f"], to=TP.FLOAT),
         mk("Add", ["x_out", "iter_f"], ["scan_y"]), mk("Identity", ["iter"], ["scan_i"])],
        [f("x_in", [B, H])],
        [T("cond_out", TP.BOOL, []), f("x_out", [B, H]), f("scan_y", [B, H]),
         T("scan_i", TP.INT64, [])])
    cases.append(Case("loop_trip_count", "Loop",
                      {"M": scalar(int(rng.integers(3, 7)), i64), "cond": scalar(True, np.bool_),
                       "x": rng.standard_normal((B, H)).astype(f32),
                       "bias": rng.standard_normal((H,)).astype(f32)},
                      {"a": rng.uniform(0.5, 1.1, size=(H,)).astype(f32)},
                      ["x_final", "ys", "iters"], attrs={"body": body}, opset=16,
                      input_order=["M", "cond", "x"]))

    # cond only: doubles x until its sum passes a limit; an int64 counter carried beside it.
    n = int(rng.integers(3, 9))
    body = loop_body(
        [mk("Mul", ["x_in", "two"], ["x_out"]), mk("ReduceSum", ["x_out"], ["s"], keepdims=0),
         mk("Less", ["s", "limit"], ["cond_out"]), mk("Add", ["c_in", "one"], ["c_out"])],
        [f("x_in", [n]), T("c_in", TP.INT64, [])],
        [T("cond_out", TP.BOOL, []), f("x_out", [n]), T("c_out", TP.INT64, []), f("s", [])])
    cases.append(Case("loop_cond_only", "Loop",
                      {"cond": scalar(True, np.bool_),
                       "x": rng.uniform(0.1, 1.0, size=(n,)).astype(f32),
                       "c": scalar(0, i64)},
                      {"two": scalar(2.0, f32), "limit": scalar(500.0, f32),
                       "one": scalar(1, i64)},
                      ["x_final", "count", "sums"], attrs={"body": body}, opset=13,
                      input_order=["", "cond", "x", "c"]))

    # M and cond: cond turns false after iteration 2 of at most 10; the body reads `iter`.
    body = loop_body(
        [mk("Less", ["iter", "stop"], ["cond_out"]), mk("Cast", ["iter"], ["it_f"], to=TP.FLOAT),
         mk("Add", ["x_in", "it_f"], ["x_out"]), mk("Sub", ["x_out", "x_in"], ["d"])],
        [f("x_in", [2, 3])],
        [T("cond_out", TP.BOOL, []), f("x_out", [2, 3]), f("d", [2, 3])])
    cases.append(Case("loop_early_exit", "Loop",
                      {"x": rng.standard_normal((2, 3)).astype(f32)},
                      {"M": scalar(10, i64), "cond": scalar(True, np.bool_),
                       "stop": scalar(2, i64)},
                      ["x_final", "ds"], attrs={"body": body}, opset=11,
                      input_order=["M", "cond", "x"]))

    # Zero trips: the carried value comes back unchanged, the scan output has 0 rows.
    body = loop_body(
        [mk("Identity", ["cond_in"], ["cond_out"]), mk("Neg", ["x_in"], ["x_out"]),
         mk("Identity", ["x_in"], ["y"])],
        [f("x_in", [3, 4])],
        [T("cond_out", TP.BOOL, []), f("x_out", [3, 4]), f("y", [3, 4])])
    cases.append(Case("loop_zero_trips", "Loop",
                      {"M": scalar(0, i64), "x": rng.standard_normal((3, 4)).astype(f32)},
                      {"cond": scalar(True, np.bool_)},
                      ["x_final", "ys"], attrs={"body": body}, opset=16,
                      input_order=["M", "cond", "x"]))

    # A carried value whose shape changes every iteration (a row appended each time), and a
    # scan output of fixed shape computed from it.
    k = int(rng.integers(2, 6))
    body = loop_body(
        [mk("Identity", ["cond_in"], ["cond_out"]), mk("Concat", ["x_in", "row"], ["x_out"], axis=0),
         mk("ReduceSum", ["x_out", "axes0"], ["colsum"], keepdims=0)],
        [f("x_in", [None, k])],
        [T("cond_out", TP.BOOL, []), f("x_out", [None, k]), f("colsum", [k])])
    cases.append(Case("loop_growing_carried", "Loop",
                      {"M": scalar(int(rng.integers(2, 6)), i64),
                       "x": rng.standard_normal((1, k)).astype(f32)},
                      {"cond": scalar(True, np.bool_),
                       "row": rng.standard_normal((1, k)).astype(f32),
                       "axes0": np.array([0], i64)},
                      ["x_final", "colsums"], attrs={"body": body}, opset=13,
                      input_order=["M", "cond", "x"]))

    # An If nested in the body (branches read the body's values and the outer initializer),
    # and a Loop nested in the body running iter + 1 times over the body's value.
    then_g = helper.make_graph([mk("Mul", ["x_in", "a"], ["t_out"])], "then", [], [f("t_out", [4])])
    else_g = helper.make_graph([mk("Sub", ["x_in", "a"], ["e_out"])], "else", [], [f("e_out", [4])])
    inner = helper.make_graph(
        [mk("Identity", ["icond"], ["icond_out"]), mk("Add", ["acc_in", "x_in"], ["acc_out"])],
        "inner", [T("iiter", TP.INT64, []), T("icond", TP.BOOL, []), f("acc_in", [4])],
        [T("icond_out", TP.BOOL, []), f("acc_out", [4])])
    body = loop_body(
        [mk("Mod", ["iter", "two_i"], ["parity"]), mk("Equal", ["parity", "zero_i"], ["even"]),
         mk("If", ["even"], ["branch"], then_branch=then_g, else_branch=else_g),
         mk("Add", ["iter", "one_i"], ["inner_m"]),
         mk("Loop", ["inner_m", "", "zeros4"], ["acc"], body=inner),
         mk("Add", ["branch", "acc"], ["x_out"]), mk("Identity", ["cond_in"], ["cond_out"])],
        [f("x_in", [4])],
        [T("cond_out", TP.BOOL, []), f("x_out", [4]), f("acc", [4])])
    cases.append(Case("loop_nested_if_loop", "Loop",
                      {"x": rng.uniform(-1, 1, size=(4,)).astype(f32)},
                      {"M": scalar(4, i64), "cond": scalar(True, np.bool_),
                       "a": rng.uniform(0.5, 1.5, size=(4,)).astype(f32),
                       "two_i": scalar(2, i64), "zero_i": scalar(0, i64),
                       "one_i": scalar(1, i64), "zeros4": np.zeros(4, f32)},
                      ["x_final", "accs"], attrs={"body": body}, opset=16,
                      input_order=["M", "cond", "x"]))

    # Large enough that the MatMul in the body splits over threads: x' = tanh(x W).
    W = (rng.standard_normal((96, 96)) * 0.1).astype(f32)
    body = loop_body(
        [mk("Identity", ["cond_in"], ["cond_out"]), mk("MatMul", ["x_in", "W"], ["xw"]),
         mk("Tanh", ["xw"], ["x_out"])],
        [f("x_in", [64, 96])],
        [T("cond_out", TP.BOOL, []), f("x_out", [64, 96]), f("x_out2", [64, 96])])
    body.node.append(mk("Identity", ["x_out"], ["x_out2"]))
    cases.append(Case("loop_matmul_large", "Loop",
                      {"x": rng.standard_normal((64, 96)).astype(f32)},
                      {"M": scalar(6, i64), "cond": scalar(True, np.bool_), "W": W},
                      ["x_final", "xs"], attrs={"body": body}, opset=16,
                      input_order=["M", "cond", "x"], atol=1e-5, rtol=1e-4))

    # Scan (opset 16): state s [H]; x1 [S, H] along axis 0 forward, x2 [H, S] along axis 1
    # backward; outputs y stacked along axis 0 in reverse, z along axis -1 (-> [H, S]).
    S, H = int(rng.integers(2, 7)), int(rng.integers(2, 6))
    body = helper.make_graph(
        [mk("Mul", ["x1t", "x2t"], ["p"]), mk("Add", ["s_in", "p"], ["s_out"]),
         mk("Mul", ["s_out", "gain"], ["y"]), mk("Identity", ["x1t"], ["z"])],
        "scan_body", [f("s_in", [H]), f("x1t", [H]), f("x2t", [H])],
        [f("s_out", [H]), f("y", [H]), f("z", [H])])
    cases.append(Case("scan_axes_directions", "Scan",
                      {"s0": rng.standard_normal((H,)).astype(f32),
                       "x1": rng.standard_normal((S, H)).astype(f32),
                       "x2": rng.standard_normal((H, S)).astype(f32)},
                      {"gain": rng.uniform(0.5, 2, size=(H,)).astype(f32)},
                      ["s_final", "ys", "zs"],
                      attrs={"body": body, "num_scan_inputs": 2, "scan_input_axes": [0, 1],
                             "scan_input_directions": [0, 1], "scan_output_axes": [0, -1],
                             "scan_output_directions": [1, 0]}, opset=16,
                      input_order=["s0", "x1", "x2"]))

    # Scan as a small RNN over outer-scope weights, large enough to split over threads:
    # h' = tanh(x_t Wx + h Wh), every h' an output. Two states, one of them int.
    S, Bt, I, Hh = 12, 32, 48, 64
    body = helper.make_graph(
        [mk("MatMul", ["xt", "Wx"], ["a"]), mk("MatMul", ["h_in", "Wh"], ["b"]),
         mk("Add", ["a", "b"], ["ab"]), mk("Tanh", ["ab"], ["h_out"]),
         mk("Add", ["n_in", "one_i"], ["n_out"]), mk("Identity", ["h_out"], ["y"])],
        "rnn_body", [f("h_in", [Bt, Hh]), T("n_in", TP.INT64, []), f("xt", [Bt, I])],
        [f("h_out", [Bt, Hh]), T("n_out", TP.INT64, []), f("y", [Bt, Hh])])
    cases.append(Case("scan_rnn_large", "Scan",
                      {"h0": np.zeros((Bt, Hh), f32), "n0": scalar(0, i64),
                       "X": rng.standard_normal((S, Bt, I)).astype(f32)},
                      {"Wx": (rng.standard_normal((I, Hh)) * 0.15).astype(f32),
                       "Wh": (rng.standard_normal((Hh, Hh)) * 0.15).astype(f32),
                       "one_i": scalar(1, i64)},
                      ["h_final", "n_final", "Y"], attrs={"body": body, "num_scan_inputs": 1},
                      opset=16, atol=1e-5, rtol=1e-4, input_order=["h0", "n0", "X"]))

    # Scan opset 8: a batch axis first, sequence_lens per item, the second scan input read
    # backwards; shorter items leave zeros past their end.
    Bb, S, H = 3, 5, int(rng.integers(2, 5))
    body = helper.make_graph(
        [mk("Add", ["s_in", "at"], ["s1"]), mk("Mul", ["s1", "bt"], ["s_out"]),
         mk("Identity", ["s_out"], ["y"])],
        "scan8_body", [f("s_in", [H]), f("at", [H]), f("bt", [H])],
        [f("s_out", [H]), f("y", [H])])
    cases.append(Case("scan8_sequence_lens", "Scan",
                      {"lens": np.array([5, 2, 4], i64),
                       "s0": rng.standard_normal((Bb, H)).astype(f32),
                       "A": rng.standard_normal((Bb, S, H)).astype(f32),
                       "Bs": rng.uniform(0.5, 1.2, size=(Bb, S, H)).astype(f32)},
                      {}, ["s_final", "Y"],
                      attrs={"body": body, "num_scan_inputs": 2, "directions": [0, 1]},
                      opset=8))
    return cases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    groups = {"quant": quant_cases, "nbits": nbits_cases, "resize": resize_cases,
              "recurrent": recurrent_cases, "attention": attention_cases, "audio": audio_cases,
              "control": control_cases}
    ap.add_argument("--group", default="all", choices=[*groups, "all"])
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    names = list(groups) if a.group == "all" else [a.group]
    count = 0
    for g in names:
        for case in groups[g](rng):
            try:
                diff = write_case(a.out, case)
            except Exception as e:
                print(f"FAILED {case.name}: {e}", file=sys.stderr)
                return 1
            note = "" if diff is None else f" (onnx reference differs by {diff:g})"
            print(f"{case.name}: oracle {case.oracle}{note}")
            count += 1
    print(f"{count} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
