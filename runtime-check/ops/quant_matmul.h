// The ops that read quantized weights (ir/encoding.h) in place, and the rule the executor
// uses to decide which encoded initializers an op reads natively.
//
// An encoded initializer read by a node whose op has no native support for it is
// dequantized once when the plan is compiled (executor.cpp), so every other op only
// ever sees plain float tensors. Native readers:
//   MatMul input 1   a 2-D [K, N] weight encoded along axis 0 (one stored row per output
//                    channel, the reduction axis contiguous)
//   Gemm input 1     [K, N] with axis 0 (transB = 0) or [N, K] with axis 1 (transB = 1)
//   Gather input 0   a table encoded along axis 1, gathered on axis 0: only the gathered
//                    rows are dequantized
// A sparse weight (ir/sparse.h) is read in place by MatMul and Gemm as above when
// kernels/sparse_gemm.h reads its form (f32 values, int8 / int4 codes); Gather, Conv and
// sparse f16 / bf16 values get the dense tensor.
// Conv weights (int8c) stay on the dequantize-once fallback: a conv weight is small next
// to its activations, and the im2col GEMM would need the whole filter bank anyway.
// The products themselves are kernels/qgemm.h's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ir/ir.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/ops/op_context.h"

namespace ep::rt {

// True when the kernel of `node` reads input `input` directly in its encoded form
// (`weight` is that encoded initializer); false means the executor hands the kernel a
// dequantized copy instead.
[[nodiscard]] bool kernel_reads_encoding(const Node& node, size_t input, const Tensor& weight);

// Y[M, N] (row-major, leading dimension ldy) = A[M, K] * W^T, where `w` is an encoded
// tensor whose stored matrix (encoded_dims) is N rows of K = a.cols. A may be transposed
// (it is copied to row-major first). Fails naming the node on a mismatch.
void qgemm_f32(const OpContext& c, const MatrixView& a, const Tensor& w, int64_t n, float* y,
               int64_t ldy);

// MatMul(A, W) with W an encoded [K, N] weight (axis 0): A [..., K] -> [..., N] (f32).
[[nodiscard]] Tensor qmatmul(const OpContext& c, const Tensor& a_f32, const Tensor& w);

// Gather on axis 0 from an encoded table (axis 1): dequantizes only the gathered rows.
void gather_encoded(OpContext& c);

}  // namespace ep::rt
