// QDQ fusion: the patterns of a QDQ model (what onnxruntime.quantization.quantize_static
// and edgepack's quantize-static write) that the executor runs as integer ops, recognised
// once when the plan is compiled, so that activations stay 8-bit between ops and the
// products run with int32 accumulation.
//
//   DQ(x), DQ(w) [, DQ(b)] -> Conv   -> Q(y)   =>  QLinearConv(x, w, y [, b])
//   DQ(a), DQ(b)           -> MatMul -> Q(y)   =>  QLinearMatMul(a, b, y)
//   DQ(a), DQ(b) [, DQ(c)] -> Gemm   -> Q(y)   =>  com.microsoft.QGemm(a, b, c, y)
//   DQ(a) | A, DQ(b) | B   -> Add / Sub / Mul / Div -> Q(y)
//                                               =>  ai.edgepack.fused.QdqBinary (ops_qdq.cpp)
//     (an operand may be a float32 initializer instead of a DQ; this one computes exactly
//     the unfused float operations on the 8-bit codes, so its bytes are the reference's)
//
// A pattern is fused only when every condition holds; otherwise it stays as it is and runs
// through the float ops (DequantizeLinear, the op, QuantizeLinear), which define the same
// numbers up to the requantization's rounding:
//   - x / a and y are per-tensor uint8 / int8 with scale and zero-point initializers;
//   - weights (Conv's w, Gemm's b) are int8 / uint8 initializers, per tensor or per output
//     channel (Conv axis 0, Gemm axis 0 with transB, else 1) with zero points given; a
//     MatMul's b is either an activation (per tensor) or such a weight (per column, axis 1);
//   - a bias is an int32 initializer with zero point 0 and scale x_scale * w_scale[c]
//     (as ONNX Runtime's quantizer writes it; compared to 1e-6 relative), since the
//     integer op adds it to the accumulator as it is;
//   - Gemm: alpha = beta = 1, transA = 0;
//   - the op's float output is read only by the QuantizeLinear and is not a graph output.
// A DequantizeLinear whose output nothing reads any more is dropped.
//
// The fused ops requantize as ONNX Runtime's QLinear ops define it:
//   y = saturate(round_half_even(float(acc) * (x_scale * w_scale[c] / y_scale)) + y_zp)
// with acc the exact int32 sum of (x - x_zp) * (w - w_zp[c]) (+ bias), so a fused output may
// differ from the float path by one unit of y where the two round differently.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/ir.h"
#include "runtime-check/ops/op_context.h"

namespace ep::rt {

struct QdqFusion {
    std::vector<Node> nodes;  // the graph's nodes, fused patterns replaced, in order
    std::unordered_set<std::string> removed_values;  // float values no node produces now
    size_t conv = 0, matmul = 0, gemm = 0, elementwise = 0, moves = 0;  // patterns fused
    size_t dropped = 0;                                                 // nodes removed (DQ, op, Q)
};

// Rewrites the main graph's nodes (subgraphs are left as they are). Pure: `graph` is not
// changed. Node names of fused ops are the float op's.
[[nodiscard]] QdqFusion fuse_qdq(const Graph& graph);

// The domain of the nodes only the fusions make (QDQ here, elementwise_fusion.h's chains).
inline constexpr const char* kFusedDomain = "ai.edgepack.fused";

// The kernel of a node only the fusion makes (domain ai.edgepack.fused), else null.
[[nodiscard]] KernelFn fused_kernel(const Node& node);

}  // namespace ep::rt
