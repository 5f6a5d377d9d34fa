// Float GEMM used by MatMul, Gemm and Conv: C[M,N] = A[M,K] * B[K,N] (+ C when accumulate).
// Rows of C are split into fixed blocks of kRowBlock, independent of the thread count,
// and each block is one Eigen product: the arithmetic per element is the same for any
// number of threads, so results are bit-identical.
#pragma once

#include <cstdint>

#include "runtime-check/kernel.h"

namespace ep::rt {

inline constexpr int64_t kRowBlock = 64;

struct MatrixView {
    const float* data;
    int64_t rows, cols;  // logical shape (after transpose)
    int64_t ld;          // leading dimension of the stored (row-major) matrix
    bool transposed;     // stored as [cols, rows]
};

// C (row-major, ldc) = A * B, or C += A * B when accumulate.
void gemm_f32(const ExecOptions& options, const MatrixView& a, const MatrixView& b, float* c,
              int64_t ldc, bool accumulate);

}  // namespace ep::rt
