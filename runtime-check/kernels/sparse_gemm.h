// Kernels that multiply by sparse weights (ir/sparse.h) read in place: MatMul / Gemm with a
// pruned weight stored as a bitmask or N:M (2:4, ...), over plain f32 values or int8c /
// int8gG / int4gG codes.
//
// f32 values with up to kSparseDotRows rows of A (GEMV, decoding): one pass per output
// channel that expands 8 weights at a time from the mask (AVX-512VL expand-loads, or plain
// loops giving the same bits) straight into 8-lane fused multiply-adds, in the order of the
// dense dot-product kernel (simd_dot.inc: lane k % 8, lanes summed in a fixed order, then the
// tail). A Gemm transB = 1 weight gives the dense bits; a MatMul / Gemm transB = 0 weight,
// whose dense kernel sums each output over k in order, differs from it by rounding only
// (within K ulps of sum |a w|, tested). Neither packs nor copies the weight: that is what
// makes it faster than the dense [K, N] kernel, which packs B on every call.
//
// Otherwise (codes, or more rows of A) the weight is never densified whole either: fixed
// chunks of kSparseRows output channels (4 x kSparseRows for up to kQSmallM rows of A) are
// expanded from the mask and the kept values into a per-thread dense piece (f32 values, or the
// dense encoding's blocks with every pruned weight at the code of 0.0: exactly the bytes
// densify() gives), in cache, and multiplied there by the dense kernels themselves (gemm_f32,
// or qgemm_encoded_rows). So the result has the bits of the same weight densified (on every
// instruction set; with the portable float GEMM, Eigen, which may block the two shapes
// differently, within rounding) for any thread count: every output element is computed by one
// thread, in the dense kernel's order. This path saves memory, not time: the expansion costs
// more than the bytes it saves (bench/README.md), but far less than the dequantize-once
// fallback (a float copy of the weight) it replaces. The pruned weights' multiply-adds are
// still done: skipping them would change the summation order and so the bits.
//
// Expansion: AVX-512 (F, VL, BW, VBMI2) expand-loads of 8 or 16 floats or 32 codes per mask
// piece, nibble unpack / pack in registers, when the CPU has them and simd.h runs the AVX-512
// table; else plain loops writing the same bytes (AVX2-only CPUs take these).
#pragma once

#include <cstdint>

#include "ir/ir.h"
#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

class QPackCache;

// Output channels (stored rows) expanded together: a multiple of qgemm.h's kQPanel, so the
// quantized panel path dequantizes the same panels as on the dense weight.
inline constexpr int64_t kSparseRows = 32;
// Rows of A up to which f32 values take the fused kernel below (gemm.cpp's dot-product rows).
inline constexpr int64_t kSparseDotRows = 4;

// True when sparse_gemm_f32 reads `e` (a sparse encoding) over values of `dtype`: plain f32
// values, or int8c / int8gG(a) / int4gG(a) codes. Sparse f16 / bf16 values are not read.
[[nodiscard]] bool sparse_kernel_reads(const Encoding& e, DType dtype);

// Y[M, N] (row-major, ldy) = A[M, K] (row-major, lda) * W^T for a sparse w whose stored
// matrix is N rows of K (the caller checked the dimensions, the encoding and the byte count;
// the sparse fields were checked by check_sparse_bytes when read). Each row's mask is checked
// against row_start (bitmask) or the N:M count before its values are read: InputError naming
// the weight and the row. With options.int8_activations and a cache, int4 weights go through
// qgemm_i8 on the packed dense form (packed once), as a dense weight would.
void sparse_gemm_f32(const ExecOptions& options, QPackCache* qpacks, const Tensor& w,
                     const float* a, int64_t m, int64_t lda, float* y, int64_t ldy);

}  // namespace ep::rt
