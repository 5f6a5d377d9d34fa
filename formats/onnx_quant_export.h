// ONNX export of models with encoded (quantized) weights (ir/encoding.h).
//
// ONNX has no encoded tensors, so write_onnx refuses a model holding one unless
// OnnxWriteOptions::quantized picks how to express it; the writer then rewrites a copy
// of the model with export_quantized_onnx and writes that. Modes:
//
//   "matmulnbits"  MatMul (and Gemm with alpha = 1, transA = 0, beta = 1 or no C) whose
//                  weight is encoded along the reduction axis (group-wise, or int8 per
//                  channel) becomes com.microsoft::MatMulNBits in ONNX Runtime's layout,
//                  accuracy_level 1 (f32 activations, what edgepack's runtime computes):
//                    B           uint8 [N, n_blocks, blob_size], blob_size = G * bits / 8,
//                                codes along K low bits first (our blocks' code bytes, as
//                                they are: int4 symmetric stores q + 8 = ORT's default
//                                zero point 8; int8 symmetric is written as q + 128 = ORT's
//                                default 128). int8 per channel: G = 128 (the next power
//                                of two >= 16 for K < 128), each block with the row's scale
//                    scales      f32 [N * n_blocks] (the f16/bf16 scales, exactly)
//                    zero_points asymmetric schemes only: uint8 [N * ceil(n_blocks * bits / 8)],
//                                packed low bits first, each row starting on a byte
//                  Gemm's C becomes an Add after it. Every other use of an encoded tensor
//                  (Gather tables, Conv, Gemm with alpha/transA/beta) goes through
//                  DequantizeLinear as in "qdq" (ORT's GatherBlockQuantized would keep
//                  Gather tables packed, but DequantizeLinear + Gather is simpler).
//   "qdq"          every encoded tensor becomes quantized codes + an opset-21
//                  DequantizeLinear whose output carries the tensor's name (so every
//                  consumer is unchanged):
//                    grouped, [K, N] (axis 0)  x int4/uint4/int8/uint8 [K, N], axis 0,
//                                              block_size G, scale f32 [ceil(K/G), N],
//                                              zero point (asymmetric) like the scale
//                    grouped, axis 1           x [rows, cols], axis 1, block_size G, scale
//                                              [rows, ceil(cols/G)]; a Reshape back to the
//                                              logical shape when it has rank > 2
//                    int8c                     per-axis int8 DequantizeLinear, scale f32
//                                              [channels], on the logical shape
//                  Symmetric codes are signed (int4 -8..7, int8 -127..127, no zero point);
//                  asymmetric ones unsigned with their zero points. A tensor read by a
//                  MatMul or Gemm goes DequantizeLinear -> Reshape (to its own shape) ->
//                  MatMul: ONNX Runtime's default session fuses a DequantizeLinear feeding a
//                  MatMul/Gemm into MatMulNBits with int8 activations (accuracy level 4),
//                  other numbers than the encoded model's; the Reshape keeps it in f32.
// Raising the default-domain opset to 21 (needed for blocked/int4 DequantizeLinear)
// moves Reduce* axes (opset 18) from attributes to inputs; a source below opset 13 is
// refused here (read_onnx's min_opset raises it with the ONNX version converter first,
// formats/onnx_io.h). IR version >= 10.
#pragma once

#include <string>

#include "ir/ir.h"

namespace ep {

// The lowest default-domain opset export_quantized_onnx takes: from 13 on, raising the
// opset to 21 only moves Reduce* axes to an input.
inline constexpr int64_t kMinExportOpset = 13;

// True when any graph (or subgraph) initializer is encoded.
[[nodiscard]] bool has_encoded_tensors(const Model& model);

// The model rewritten for `mode` ("matmulnbits" or "qdq") so that it holds no encoded
// tensors. Throws InputError for an unknown mode or a model that cannot be expressed.
[[nodiscard]] Model export_quantized_onnx(const Model& model, const std::string& mode);

}  // namespace ep
