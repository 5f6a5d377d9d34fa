// Kernels that read quantized weights (compressor/ir/encoding.h) in place, and the rule
// the executor uses to decide which encoded initializers a kernel reads natively.
//
// An encoded initializer read by a node whose kernel has no native support for it is
// dequantized once when the plan is compiled (executor.cpp), so every other kernel only
// ever sees plain float tensors. Native readers:
//   MatMul input 1   a 2-D [K, N] weight encoded along axis 0 (one stored row per output
//                    channel, the reduction axis contiguous)
//   Gemm input 1     [K, N] with axis 0 (transB = 0) or [N, K] with axis 1 (transB = 1)
//   Gather input 0   a table encoded along axis 1, gathered on axis 0: only the gathered
//                    rows are dequantized
// Conv weights (int8c) stay on the dequantize-once fallback: a conv weight is small next
// to its activations, and the im2col GEMM would need the whole filter bank anyway.
//
// qgemm_f32 never materialises the float weight: it dequantizes one block (small M) or one
// panel of kQPanel output channels (larger M) at a time; see qgemm.cpp for the scratch.
// Work is split over output channels in fixed panels, each computed by one thread in a
// fixed order, so results are bit-identical for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "compressor/ir/ir.h"
#include "runtime-check/gemm.h"
#include "runtime-check/kernel.h"

namespace ep::rt {

// Output channels dequantized together on the panel path.
inline constexpr int64_t kQPanel = 32;
// Rows of A up to which each output channel is a fused dequantize + dot product.
inline constexpr int64_t kQSmallM = 4;

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
