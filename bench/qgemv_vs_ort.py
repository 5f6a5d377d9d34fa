#!/usr/bin/env python3
"""Quantized weight path benchmarks (issue 4): edgepack vs ONNX Runtime MatMulNBits.

Prints two tables:
1. RTN int4g32 quantize throughput (edgepack_qbench quantize, one thread): the library's
   quantize_rtn (its optimised path), the scalar reference quantize_rtn_reference (bytes
   compared with quantize_rtn's), and the pass's quantize_tensor_rtn (axis 0: transpose
   included).
2. int4g32 GEMV, one activation row (M = 1), per (shape, threads): edgepack's qgemm_f32 and
   a read-only pass over a buffer of the packed weight's size (the memory-bandwidth limit),
   both from edgepack_qbench in the same process; ONNX Runtime's com.microsoft MatMulNBits at
   accuracy_level 0 (f32 activations) and 4 (int8 activations) on a one-node model built here
   with the onnx package from the SAME packed bytes edgepack ran (w.bin: int4g32 blocks of an
   f16 scale + 16 bytes of nibbles, code + 8, element 2i in the low nibble, which is
   MatMulNBits' B layout with the default zero point 8; scales widened to f32).
   Effective bandwidth = packed weight + scale bytes / median time. The two sides take turns
   (--rounds) so both see the same load; all timed calls of a side are pooled (median).
   ORT's level-0 output is checked against edgepack's (max relative difference printed).
3. The runtime's int8-activation GEMV (ExecOptions::int8_activations, qgemv_i8.cpp) against
   ORT level 4, with the accuracy cost of both int8-activation paths.

Usage: bench/qgemv_vs_ort.py --qbench BUILD/bench/edgepack_qbench [--threads 1 2]
       [--shapes 4096x4096,4096x11008] [--rounds 3] [--copies 1] [--no-quantize]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def run_qbench(qbench, args):
    out = subprocess.run([qbench] + args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def nbits_model(path, k, n, packed, level):
    nb = (k + 31) // 32
    blocks = np.frombuffer(packed, dtype=np.uint8).reshape(n, nb, 18)
    scales = blocks[:, :, 0:2].copy().view(np.float16).reshape(n * nb).astype(np.float32)
    b = np.ascontiguousarray(blocks[:, :, 2:18])
    node = helper.make_node(
        "MatMulNBits", ["x", "B", "scales"], ["y"], domain="com.microsoft",
        K=k, N=n, bits=4, block_size=32, accuracy_level=level)
    graph = helper.make_graph(
        [node], "qgemv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [onnx.numpy_helper.from_array(b, "B"), onnx.numpy_helper.from_array(scales, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    onnx.save(model, path)


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_ort(sess, x, reps):
    times = []
    feed = {"x": x}
    for _ in range(3):
        sess.run(None, feed)
    for _ in range(reps):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qbench", required=True)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shapes", default="4096x4096,4096x11008", help="KxN list")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=100, help="timed calls per side per round")
    ap.add_argument("--copies", type=int, default=1,
                    help="weight copies cycled by edgepack (>1: working set beyond L3)")
    ap.add_argument("--no-quantize", action="store_true")
    a = ap.parse_args()

    load0 = os.getloadavg()
    if not a.no_quantize:
        print("RTN int4g32 quantize, 4096 x 4096 f32, 1 thread")
        print(f"{'path':<30} {'isa':>6} {'ms min':>9} {'ms p50':>9} {'weights/s/thread':>17}  note")
        for r in run_qbench(a.qbench, ["quantize", "--rows", "4096", "--cols", "4096"]):
            note = ""
            if r["path"] == "quantize_rtn":
                note = ("bytes == reference" if r["bytes_equal_reference"]
                        else "BYTES DIFFER from the reference")
            print(f"{r['path']:<30} {r['isa']:>6} {r['ms_min']:9.1f} {r['ms_median']:9.1f} "
                  f"{r['weights_per_s']:17.3g}  {note}")
        print()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in a.shapes.split(","):
            k, n = (int(v) for v in shape.split("x"))
            run_qbench(a.qbench, ["gemv", "--k", str(k), "--n", str(n), "--reps", "1",
                                  "--dump", tmp])
            packed = Path(tmp, "w.bin").read_bytes()
            x = np.fromfile(Path(tmp, "x.bin"), dtype=np.float32).reshape(1, k)
            y_ep = np.fromfile(Path(tmp, "y.bin"), dtype=np.float32).reshape(1, n)
            models = {}
            for level in (0, 4):
                models[level] = str(Path(tmp, f"nbits_{k}x{n}_l{level}.onnx"))
                nbits_model(models[level], k, n, packed, level)
            for threads in a.threads:
                sess = {lv: ort_session(p, threads) for lv, p in models.items()}
                y0 = sess[0].run(None, {"x": x})[0]
                y4 = sess[4].run(None, {"x": x})[0]
                scale = max(float(np.max(np.abs(y_ep))), 1e-30)
                rel = float(np.max(np.abs(y0 - y_ep))) / scale
                rel4 = float(np.max(np.abs(y4 - y_ep))) / scale
                ep_g, ep_r, ep_q8, q8_rel, ort_t = [], [], [], 0.0, {0: [], 4: []}
                for _ in range(a.rounds):
                    # ORT's intra-op threads spin for a while after a run; let them go idle
                    # so that they do not take the second core from edgepack's 2-thread runs.
                    time.sleep(0.5)
                    r = run_qbench(a.qbench, ["gemv", "--k", str(k), "--n", str(n),
                                              "--threads", str(threads), "--reps", str(a.reps),
                                              "--copies", str(a.copies)])[0]
                    ep_g.append(r["gemv_ms_median"])
                    ep_r.append(r["read_ms_median"])
                    ep_q8.append(r["q8_ms_median"])
                    q8_rel = r["q8_rel_diff"]
                    for lv in (0, 4):
                        ort_t[lv] += time_ort(sess[lv], x, a.reps)
                gb = len(packed) * 1e-9
                g, rd = statistics.median(ep_g), statistics.median(ep_r)
                o0, o4 = statistics.median(ort_t[0]), statistics.median(ort_t[4])
                q8 = statistics.median(ep_q8)
                rows.append(dict(shape=f"{k}x{n}", threads=threads, mb=len(packed) / 2**20,
                                 ep_ms=g, ep_gbs=gb / (g * 1e-3), read_ms=rd,
                                 read_gbs=gb / (rd * 1e-3), pct=100 * rd / g, ort0_ms=o0,
                                 ort0_gbs=gb / (o0 * 1e-3), ort4_ms=o4,
                                 ort4_gbs=gb / (o4 * 1e-3), r0=g / o0, r4=g / o4, rel=rel,
                                 rel4=rel4, q8_ms=q8, q8_gbs=gb / (q8 * 1e-3), q8r4=q8 / o4,
                                 q8_rel=q8_rel))

    print(f"int4g32 GEMV, M = 1 (p50 ms, GB/s of packed weight + scales; copies={a.copies})")
    hdr = (f"{'shape KxN':<11} {'thr':>3} {'MiB':>5} | {'edgepack':>8} {'GB/s':>6} | "
           f"{'read':>7} {'GB/s':>6} {'% bw':>5} | {'ORT l0':>7} {'GB/s':>6} {'ep/l0':>6} | "
           f"{'ORT l4':>7} {'GB/s':>6} {'ep/l4':>6} | {'rel diff l0':>11}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['shape']:<11} {r['threads']:>3} {r['mb']:5.1f} | {r['ep_ms']:8.3f} "
              f"{r['ep_gbs']:6.1f} | {r['read_ms']:7.3f} {r['read_gbs']:6.1f} {r['pct']:4.0f}% | "
              f"{r['ort0_ms']:7.3f} {r['ort0_gbs']:6.1f} {r['r0']:6.2f} | {r['ort4_ms']:7.3f} "
              f"{r['ort4_gbs']:6.1f} {r['r4']:6.2f} | {r['rel']:11.1e}")
    load1 = os.getloadavg()
    print()
    print("int8-activation kernel (the runtime's, ExecOptions::int8_activations / "
          "--int8-activations: x quantized per 32 to int8,\nweights repacked once in tiles of "
          "16 channels; timed: quantizing x + the kernel) vs ORT accuracy_level 4;\n"
          "error = max |y - y_f32| / max |y_f32|, y_f32 = edgepack's f32-activation kernel")
    hdr2 = (f"{'shape KxN':<11} {'thr':>3} | {'int8 act':>8} {'GB/s':>6} {'% bw':>5} "
            f"{'q8/l4':>6} | {'q8 error':>9} {'ORT l4 error':>12}")
    print(hdr2)
    print("-" * len(hdr2))
    for r in rows:
        print(f"{r['shape']:<11} {r['threads']:>3} | {r['q8_ms']:8.3f} {r['q8_gbs']:6.1f} "
              f"{100 * r['read_ms'] / r['q8_ms']:4.0f}% {r['q8r4']:6.2f} | {r['q8_rel']:9.1e} "
              f"{r['rel4']:12.1e}")
    print(f"\nload average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} on {os.cpu_count()} CPUs; "
          f"onnxruntime {ort.__version__}")


if __name__ == "__main__":
    sys.exit(main())
