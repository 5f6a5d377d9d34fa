#!/usr/bin/env python3
"""Makes a QDQ model with onnxruntime.quantization.quantize_static, calibrated on real data.

The runtime's int8 kernels are developed and tested on these models, independently of
edgepack's own quantize-static pass: ONNX Runtime's quantizer is the reference writer of
the QDQ format.

usage: ort_qdq_model.py MODEL CALIB_DIR OUT.onnx [--samples N] [--activation u8|s8]
       [--weight s8|u8] [--per-channel] [--calibrator minmax|entropy|percentile]

CALIB_DIR holds .npz files whose arrays are named after the model's inputs; every array
is split along axis 0 into samples of batch 1 (MNIST's batch_00.npz holds 1000 images), and
the first N samples in file-name order are used. The model is first raised to opset 13
(per-channel QDQ needs it) with onnx's version converter, then run through ONNX Runtime's
own pre-processing (quant_pre_process: shape inference, constant folding, BatchNorm into
Conv), as its documentation asks before quantize_static.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class NpzReader(CalibrationDataReader):
    def __init__(self, folder, input_names, limit):
        self.samples = []
        for f in sorted(os.listdir(folder)):
            if not f.endswith(".npz"):
                continue
            d = np.load(os.path.join(folder, f))
            n = min(d[k].shape[0] for k in input_names)
            for i in range(n):
                if len(self.samples) >= limit:
                    break
                self.samples.append({k: d[k][i:i + 1] for k in input_names})
        if not self.samples:
            sys.exit(f"error: {folder}: no .npz samples with inputs {input_names}")
        self.it = iter(self.samples)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.samples)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--activation", choices=["u8", "s8"], default="u8")
    ap.add_argument("--weight", choices=["s8", "u8"], default="s8")
    ap.add_argument("--per-channel", action="store_true")
    ap.add_argument("--calibrator", choices=["minmax", "entropy", "percentile"],
                    default="minmax")
    a = ap.parse_args()
    model = onnx.load(a.model)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        model = version_converter.convert_version(model, 13)
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    reader = NpzReader(a.calib, names, a.samples)
    qt = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[a.calibrator]
    with tempfile.TemporaryDirectory() as tmp:
        raised = os.path.join(tmp, "raised.onnx")
        src = os.path.join(tmp, "float.onnx")
        onnx.save(model, raised)
        quant_pre_process(raised, src, skip_symbolic_shape=True)
        quantize_static(src, a.out, reader, quant_format=QuantFormat.QDQ,
                        per_channel=a.per_channel, activation_type=qt[a.activation],
                        weight_type=qt[a.weight], calibrate_method=method,
                        extra_options={"CalibTensorRangeSymmetric": False})
    print(f"wrote {a.out} ({len(reader.samples)} calibration samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
