// Float GEMM used by MatMul, Gemm and Conv: C[M,N] = A[M,K] * B[K,N] (+ C when accumulate).
//
// With the AVX2 kernels (simd.h) every element of C is one FMA chain over k in order, so
// the tiles can be cut for the thread count without changing a bit. The portable
// fallback (Eigen) splits rows of C into fixed blocks of kRowBlock, independent of the
// thread count, each one Eigen product: also bit-identical for any number of threads.
// Small products run on the calling thread only (kGemmParallelWork).
#pragma once

#include <cstdint>

#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

inline constexpr int64_t kRowBlock = 64;
// Multiply-adds below which a product (or a chunk of one) is not worth another thread.
inline constexpr int64_t kGemmParallelWork = int64_t{1} << 17;

struct MatrixView {
    const float* data;
    int64_t rows, cols;  // logical shape (after transpose)
    int64_t ld;          // leading dimension of the stored (row-major) matrix
    bool transposed;     // stored as [cols, rows]
};

// C (row-major, ldc) = A * B, or C += A * B when accumulate.
// k_in_order: with the SIMD kernels, always the tile kernels (one FMA chain over k in order
// per element, as for a B that is not transposed), never the dot-product kernel of a few
// rows with B transposed: so a B held transposed gives the bits of the same B held
// [K, N] (the sparse kernels expand a MatMul weight's output channels as rows).
void gemm_f32(const ExecOptions& options, const MatrixView& a, const MatrixView& b, float* c,
              int64_t ldc, bool accumulate, bool k_in_order = false);

}  // namespace ep::rt
