#!/usr/bin/env python3
"""Counts the ONNX backend node test cases edgepack and ONNX Runtime each pass.

usage: conformance_count.py [DIR] [--conformance BIN] [--json FILE] [--markdown]
                            [--filter SUBSTRING] [--reuse-ort FILE]

DIR is a folder of test_* cases (model.onnx + test_data_set_*/{input,output}_N.pb).
Default: build/node120 (the ONNX v1.20.0 cases unpacked from ../shared/conformance)
when present, else Debian's libonnx-testdata (/usr/share/libonnx-testdata/data/node).

Both runtimes see the same cases and are judged by the same rule, the one of
tests/tools/conformance.cpp (the ONNX backend suite's default tolerances): every output
present, same dtype and shape, floats within atol 1e-7 + rtol 1e-3 * |expected| (NaN
equals NaN, an infinity equals itself), every other dtype bit-exact, strings equal.

edgepack: build/tests/edgepack_conformance --json (a case whose model uses an op the
runtime lacks counts as not passed, "unsupported"). ONNX Runtime: an InferenceSession
per case (default optimizations, one thread), in a worker process that is restarted
after a crash, so a case that kills ONNX Runtime counts as its failure.

Prints both pass counts, then edgepack's cases that do not pass grouped by op (the
unsupported ops by how many cases they block and how many of those ONNX Runtime
passes), then every failing case with its reason. --markdown prints the same as the
tables docs/conformance.md holds. --reuse-ort takes ONNX Runtime's results from an
earlier --json file (ONNX Runtime's ten minutes need not be re-run after an edgepack
change); cases missing there are run.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATOL, RTOL = 1e-7, 1e-3


def load_value(path, type_proto):
    """One input/output file as the backend runner loads it (by the graph's type)."""
    import onnx
    from onnx import numpy_helper

    with open(path, "rb") as f:
        content = f.read()
    if type_proto.HasField("sequence_type"):
        seq = onnx.SequenceProto()
        seq.ParseFromString(content)
        return numpy_helper.to_list(seq)
    if type_proto.HasField("optional_type"):
        opt = onnx.OptionalProto()
        opt.ParseFromString(content)
        return numpy_helper.to_optional(opt)
    t = onnx.TensorProto()
    t.ParseFromString(content)
    return numpy_helper.to_array(t)


def compare(want, got):
    """Empty when equal under the rule above; otherwise what differs."""
    import numpy as np

    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return "sequence length differs"
        for w, g in zip(want, got):
            d = compare(w, g)
            if d:
                return d
        return ""
    if want is None:
        return "" if got is None else "expected an empty optional"
    got = np.asarray(got)
    if want.dtype == object or got.dtype == object:
        return "" if want.shape == got.shape and list(want.flat) == list(got.flat) else \
            "string values differ"
    if want.dtype != got.dtype:
        return f"dtype {got.dtype}, expected {want.dtype}"
    if want.shape != got.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if want.dtype.kind == "f" or want.dtype.name in ("bfloat16",) or \
            want.dtype.name.startswith("float8"):
        x = want.astype(np.float64).reshape(-1)
        y = got.astype(np.float64).reshape(-1)
        both_nan = np.isnan(x) & np.isnan(y)
        same_inf = np.isinf(x) & (x == y)
        with np.errstate(invalid="ignore"):
            close = np.abs(x - y) <= ATOL + RTOL * np.abs(x)
        bad = ~(both_nan | same_inf | close)
        if bad.any():
            i = int(np.argmax(bad))
            return f"element {i}: {y[i]}, expected {x[i]}"
        return ""
    if want.tobytes() != got.tobytes():
        return "values differ"
    return ""


def byte_typed(a):
    """bfloat16 / float8 arrays (ml_dtypes), which ONNX Runtime's numpy bridge refuses."""
    import numpy as np

    return isinstance(a, np.ndarray) and (a.dtype.name == "bfloat16" or
                                          a.dtype.name.startswith("float8"))


def run_session(sess, model, feeds, wants):
    """sess.run, except that bfloat16 / float8 tensors cross as their raw bytes (an
    OrtValue of the ONNX type over a uint8 / uint16 view), as ONNX Runtime's own test
    runner feeds them; plain feeds and outputs go through sess.run unchanged."""
    import numpy as np
    import onnxruntime as ort

    special_out = [i < len(wants) and byte_typed(wants[i]) for i in range(len(model.graph.output))]
    if not any(byte_typed(v) for v in feeds.values()) and not any(special_out):
        return sess.run(None, feeds)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    binding = sess.io_binding()
    for name, v in feeds.items():
        if byte_typed(v):
            raw = v.view(np.uint8 if v.dtype.itemsize == 1 else np.uint16)
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, types[name]))
        else:
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.asarray(v)))
    buffers = {}
    for i, o in enumerate(model.graph.output):
        if special_out[i]:
            w = wants[i]
            buf = np.zeros(w.shape, np.uint8 if w.dtype.itemsize == 1 else np.uint16)
            buffers[i] = (buf, w.dtype)
            binding.bind_ortvalue_output(o.name, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                buf, o.type.tensor_type.elem_type))
        else:
            binding.bind_output(o.name)
    sess.run_with_iobinding(binding)
    got = binding.get_outputs()
    return [buffers[i][0].view(buffers[i][1]) if i in buffers else got[i].numpy()
            for i in range(len(got))]


def ort_worker(list_file):
    """Reads case directories from list_file, prints one JSON line per case."""
    import onnx
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    with open(list_file) as f:
        lines = f.read().splitlines()
    for line in lines:
        case = line.strip()
        if not case:
            continue
        print(json.dumps({"begin": case}), flush=True)
        try:
            model = onnx.load(os.path.join(case, "model.onnx"))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(model.SerializeToString(), opts,
                                        providers=["CPUExecutionProvider"])
            # The session's inputs are the graph's inputs minus initializers.
            inputs = [i for i in model.graph.input]
            failure = ""
            sets = sorted(d for d in os.listdir(case) if d.startswith("test_data_set_"))
            for s in sets:
                d = os.path.join(case, s)
                n_in = len([f for f in os.listdir(d) if f.startswith("input_")])
                n_out = len([f for f in os.listdir(d) if f.startswith("output_")])
                feeds = {}
                for i in range(n_in):
                    feeds[inputs[i].name] = load_value(os.path.join(d, f"input_{i}.pb"),
                                                       inputs[i].type)
                wants = [load_value(os.path.join(d, f"output_{i}.pb"), model.graph.output[i].type)
                         for i in range(n_out)]
                outs = run_session(sess, model, feeds, wants)
                if len(outs) < n_out:
                    failure = f"produced {len(outs)} outputs, expected {n_out}"
                    break
                for i in range(n_out):
                    diff = compare(wants[i], outs[i])
                    if diff:
                        failure = f"{s} output {model.graph.output[i].name}: {diff}"
                        break
                if failure:
                    break
            result = {"result": "failed", "reason": failure} if failure else {"result": "passed"}
        except Exception as e:  # noqa: BLE001 - every error is the case's failure
            msg = str(e).strip().splitlines()
            result = {"result": "failed", "reason": msg[0][:300] if msg else type(e).__name__}
        result["case"] = case
        print(json.dumps(result), flush=True)


def run_ort(cases):
    """Runs every case in a worker; a worker that dies fails the case it was on."""
    results = {}
    todo = list(cases)
    while todo:
        # The list goes through a file: a pipe both ways would fill and stall.
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("".join(c + "\n" for c in todo))
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--ort-worker", f.name],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        current = None
        for line in proc.stdout:
            r = json.loads(line)
            if "begin" in r:
                current = r["begin"]
                continue
            results[os.path.basename(r.pop("case"))] = r
            current = None
        code = proc.wait()
        os.unlink(f.name)
        if current is None and todo and os.path.basename(todo[0]) not in results:
            current = todo[0]  # died before its first case: never loop on it
        if current is not None:
            results[os.path.basename(current)] = {
                "result": "failed", "reason": f"ONNX Runtime died (exit {code})"}
        todo = [c for c in todo if os.path.basename(c) not in results]
    return results


def case_ops(case_dir):
    """The op types of a case's top-level graph (domain-qualified outside ai.onnx)."""
    import onnx

    m = onnx.load(os.path.join(case_dir, "model.onnx"), load_external_data=False)
    ops = []
    for n in m.graph.node:
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        if op not in ops:
            ops.append(op)
    return ops


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?")
    p.add_argument("--conformance", default=os.path.join(ROOT, "build/tests/edgepack_conformance"))
    p.add_argument("--json", help="write every case's two results here")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--filter", default="", help="only cases whose name contains this")
    p.add_argument("--reuse-ort", help="ONNX Runtime's results from an earlier --json")
    p.add_argument("--ort-worker", metavar="LIST", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.ort_worker:
        ort_worker(a.ort_worker)
        return 0

    d = a.dir
    if d is None:
        d = os.path.join(ROOT, "build/node120")
        if not os.path.isdir(d):
            d = "/usr/share/libonnx-testdata/data/node"
    cases = sorted(os.path.join(d, c) for c in os.listdir(d)
                   if a.filter in c and os.path.isfile(os.path.join(d, c, "model.onnx")))

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ep.json")
        cmd = [a.conformance, d, "--json", out]
        if a.filter:
            cmd += ["--filter", a.filter]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            ep = json.load(f)["cases"]
    ort = {}
    if a.reuse_ort:
        with open(a.reuse_ort) as f:
            ort = {n: r["onnxruntime"] for n, r in json.load(f)["cases"].items()}
    ort.update(run_ort([c for c in cases if os.path.basename(c) not in ort]))

    names = [os.path.basename(c) for c in cases]
    ep_pass = sum(ep[n]["result"] == "passed" for n in names)
    ort_pass = sum(ort[n]["result"] == "passed" for n in names)
    both = sum(ep[n]["result"] == "passed" and ort[n]["result"] == "passed" for n in names)

    # What blocks edgepack, by op: an unsupported op blocks every case that uses it.
    blocked = collections.defaultdict(list)
    failed = []
    for c, n in zip(cases, names):
        r = ep[n]
        if r["result"] == "skipped":
            for op in r["unsupported"]:
                blocked[op].append(n)
        elif r["result"] == "failed":
            failed.append((n, "+".join(case_ops(c)), r.get("reason", "")))
    by_op = sorted(blocked.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    def ort_ok(n):
        return ort[n]["result"] == "passed"

    if a.markdown:
        print(f"| runtime | cases passed of {len(names)} |\n|---|---|")
        print(f"| edgepack | {ep_pass} |\n| ONNX Runtime {ort_version()} | {ort_pass} |")
        print(f"| both | {both} |\n")
        print("| op edgepack lacks | cases | of which ONNX Runtime passes |\n|---|---|---|")
        for op, ns in by_op:
            print(f"| {op} | {len(ns)} | {sum(map(ort_ok, ns))} |")
        print("\n| case edgepack fails | ops | reason | ONNX Runtime |\n|---|---|---|---|")
        for n, ops, reason in failed:
            print(f"| {n} | {ops} | {reason.replace('|', '/')} | {ort[n]['result']} |")
    else:
        print(f"cases: {len(names)} in {d}")
        print(f"edgepack passed: {ep_pass}")
        print(f"onnxruntime {ort_version()} passed: {ort_pass}")
        print(f"both passed: {both}; edgepack only: {ep_pass - both}; "
              f"onnxruntime only: {ort_pass - both}")
        print(f"edgepack unsupported ops ({len(by_op)} ops, "
              f"{sum(ep[n]['result'] == 'skipped' for n in names)} cases):")
        for op, ns in by_op:
            print(f"  {op}: {len(ns)} cases ({sum(map(ort_ok, ns))} pass in onnxruntime)")
        print(f"edgepack failures ({len(failed)} cases):")
        for n, ops, reason in failed:
            print(f"  {n} [{ops}] {reason} (onnxruntime: {ort[n]['result']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"dir": d, "edgepack_passed": ep_pass, "onnxruntime_passed": ort_pass,
                       "cases": {n: {"edgepack": ep[n], "onnxruntime": ort[n]} for n in names}},
                      f, indent=1)
    return 0


def ort_version():
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    sys.exit(main())
