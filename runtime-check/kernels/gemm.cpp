#include "runtime-check/kernels/gemm.h"

#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "runtime-check/kernels/simd.h"

namespace ep::rt {
namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Stride = Eigen::OuterStride<>;

// Rows with B stored transposed up to which the dot-product kernel beats packing B.
constexpr int64_t kDotRows = 4;

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

void gemm_eigen(const ExecOptions& options, const MatrixView& a, const MatrixView& b, float* c,
                int64_t ldc, bool accumulate) {
    const int64_t m = a.rows, n = b.cols;
    const int64_t blocks = (m + kRowBlock - 1) / kRowBlock;
    const int64_t block_work = std::min(m, kRowBlock) * n * a.cols;
    parallel_for(options, blocks,
                 std::max<int64_t>(1, kGemmParallelWork / std::max<int64_t>(block_work, 1)),
                 [&](int64_t begin, int64_t end) {
                     for (int64_t blk = begin; blk < end; ++blk) {
                         int64_t r0 = blk * kRowBlock, rows = std::min(kRowBlock, m - r0);
                         Eigen::Map<RowMajor, 0, Stride> out(c + r0 * ldc, rows, n, Stride(ldc));
                         with_matrix(a, r0, rows, [&](const auto& am) {
                             with_matrix(b, 0, b.rows, [&](const auto& bm) {
                                 if (accumulate)
                                     out.noalias() += am * bm;
                                 else
                                     out.noalias() = am * bm;
                             });
                         });
                     }
                 });
}

// Per-thread packing buffer of the tile kernel, grown on demand and kept.
float* pack_buffer(int64_t floats) {
    thread_local std::vector<float> buffer;
    if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
    return buffer.data();
}

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

}  // namespace

void gemm_f32(const ExecOptions& options, const MatrixView& a, const MatrixView& b, float* c,
              int64_t ldc, bool accumulate, bool k_in_order) {
    const int64_t m = a.rows, n = b.cols, k = a.cols;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
        return;
    }
    const SimdKernels& simd = simd_kernels();
    if (!simd.gemm_tile) return gemm_eigen(options, a, b, c, ldc, accumulate);

    std::vector<float> a_rows;  // A transposed in storage: copied to row-major once
    const float* pa = a.data;
    int64_t lda = a.ld;
    if (a.transposed) {
        a_rows.resize(static_cast<size_t>(m * k));
        for (int64_t kk = 0; kk < k; ++kk)
            for (int64_t i = 0; i < m; ++i)
                a_rows[static_cast<size_t>(i * k + kk)] = a.data[kk * a.ld + i];
        pa = a_rows.data();
        lda = k;
    }
    const GemmTile whole{pa, lda, b.data, b.ld, b.transposed, c, ldc, k, accumulate, 0, m, 0, n};
    if (b.transposed && m <= kDotRows && !k_in_order) {
        parallel_for(options, n, std::max<int64_t>(1, kGemmParallelWork / (m * k)),
                     [&](int64_t j0, int64_t j1) {
                         GemmTile t = whole;
                         t.n0 = j0;
                         t.n1 = j1;
                         simd.gemm_dot(t);
                     });
        return;
    }
    // Tiles: all rows by column blocks of kGemmNc; with several threads and enough work,
    // narrower columns (multiples of 16) or, for narrow products, row blocks (multiples
    // of 6), so that every thread gets a tile. Any cut gives the same bits.
    const int64_t threads = std::max(1, options.threads);
    int64_t col_width = std::min(n, kGemmNc), row_height = m;
    if (threads > 1 && m * n * k >= 2 * kGemmParallelWork && ceil_div(n, col_width) < threads) {
        if (n >= 32 * threads) {
            col_width = ceil_div(ceil_div(n, threads), 16) * 16;
        } else {
            const int64_t want = ceil_div(threads, ceil_div(n, col_width));
            row_height = std::max<int64_t>(6, ceil_div(ceil_div(m, want), 6) * 6);
        }
    }
    const int64_t col_tiles = ceil_div(n, col_width), row_tiles = ceil_div(m, row_height);
    const int64_t tile_work = row_height * col_width * k;
    const int64_t pack_floats = std::min(k, kGemmKc) * (ceil_div(col_width, 16) * 16);
    parallel_for(options, row_tiles * col_tiles,
                 std::max<int64_t>(1, kGemmParallelWork / tile_work), [&](int64_t u0, int64_t u1) {
                     float* pack = pack_buffer(pack_floats);
                     for (int64_t u = u0; u < u1; ++u) {
                         GemmTile t = whole;
                         t.m0 = (u / col_tiles) * row_height;
                         t.m1 = std::min(m, t.m0 + row_height);
                         t.n0 = (u % col_tiles) * col_width;
                         t.n1 = std::min(n, t.n0 + col_width);
                         simd.gemm_tile(t, pack);
                     }
                 });
}

}  // namespace ep::rt
