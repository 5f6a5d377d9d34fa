#include "runtime-check/gemm.h"

#include <Eigen/Core>

namespace ep::rt {
namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Stride = Eigen::OuterStride<>;

template <typename Fn>
void with_matrix(const MatrixView& v, int64_t row0, int64_t rows, Fn&& fn) {
    if (!v.transposed) {
        Eigen::Map<const RowMajor, 0, Stride> m(v.data + row0 * v.ld, rows, v.cols, Stride(v.ld));
        fn(m);
    } else {
        // Stored [cols, rows] row-major == [rows, cols] column-major with ld.
        Eigen::Map<const ColMajor, 0, Stride> m(v.data + row0, rows, v.cols, Stride(v.ld));
        fn(m);
    }
}

}  // namespace

void gemm_f32(const ExecOptions& options, const MatrixView& a, const MatrixView& b, float* c,
              int64_t ldc, bool accumulate) {
    const int64_t m = a.rows, n = b.cols;
    if (m == 0 || n == 0) return;
    if (a.cols == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
        return;
    }
    const int64_t blocks = (m + kRowBlock - 1) / kRowBlock;
    parallel_for(options, blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t blk = begin; blk < end; ++blk) {
            int64_t r0 = blk * kRowBlock, rows = std::min(kRowBlock, m - r0);
            Eigen::Map<RowMajor, 0, Stride> out(c + r0 * ldc, rows, n, Stride(ldc));
            with_matrix(a, r0, rows, [&](const auto& am) {
                with_matrix(b, 0, b.rows, [&](const auto& bm) {
                    if (accumulate) out.noalias() += am * bm;
                    else out.noalias() = am * bm;
                });
            });
        }
    });
}

}  // namespace ep::rt
