// SparseGPT (contract in solvers.h), following the reference implementation's fasterprune
// (IST-DASLab/sparsegpt, sparsegpt.py) step for step, in double:
//
//   H: dead columns as GPTQ; U = upper Cholesky factor of (H + damp mean(diag H) I)^-1
//   for each block [i1, i2) of block_size columns:
//     unstructured: score(r, j) = W[r][j]^2 / U[j][j]^2 over the whole block (all rows),
//                   thresh = the sorted scores' element floor(count * sparsity),
//                   pruned = score <= thresh (decided once, on the weights as they are
//                   when the block starts)
//     n:m:          at every column j with (j - i1) % m == 0, in each row, the m - n
//                   lowest scores of columns j..j+m-1 (on the weights as updated so far)
//                   are pruned (ties: the lower column first)
//     for each column j: q = 0 where pruned, else W[:, j]; err = (W[:, j] - q) / U[j][j];
//                   the rest of the block -= err U[j][j+1..i2); loss += (w - q)^2 / (2 U_jj^2)
//     the later columns -= Err U[i1..i2)[i2..) (the lazy batch update)
//   The output is Q: every pruned weight exactly 0, the kept ones as updated.
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "calibration/hessian_factor.h"
#include "calibration/solvers.h"
#include "ir/error.h"
#include "ir/sparse.h"

namespace ep::calib {

namespace {

using detail::MatrixD;

void check_options(const SparseGptOptions& o, int64_t cols, const std::string& what) {
    if (o.block_size <= 0) throw InternalError(cat("sparsegpt: ", what, ": block_size"));
    if (o.m > 0) {
        // The pass checks these for the user (a skip with its reason); here they are bugs.
        if (o.keep_n < 1 || o.keep_n >= o.m || cols % o.m != 0 || o.block_size % o.m != 0)
            throw InternalError(cat("sparsegpt: ", what, ": ", o.keep_n, ":", o.m,
                                    " needs 1 <= n < m, cols (", cols, ") and block_size (",
                                    o.block_size, ") multiples of m"));
    } else if (!(o.sparsity >= 0.0 && o.sparsity < 1.0)) {
        throw InternalError(cat("sparsegpt: ", what, ": sparsity ", o.sparsity));
    }
}

// Unstructured: marks the pruned weights of columns [i1, i2) (all rows) in `pruned`.
void select_block(const MatrixD& w, const MatrixD& u, int64_t i1, int64_t i2, double sparsity,
                  std::vector<char>& pruned, std::vector<double>& scores) {
    const int64_t rows = w.rows(), count = i2 - i1;
    scores.resize(static_cast<size_t>(rows * count));
    for (int64_t j = i1; j < i2; ++j) {
        const double d = u(j, j);
        for (int64_t r = 0; r < rows; ++r)
            scores[static_cast<size_t>(r * count + (j - i1))] = w(r, j) * w(r, j) / (d * d);
    }
    std::vector<double> sorted = scores;
    const auto k = static_cast<size_t>(static_cast<double>(sorted.size()) * sparsity);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end());
    const double thresh = sorted[k];
    const int64_t cols = w.cols();
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = i1; j < i2; ++j)
            pruned[static_cast<size_t>(r * cols + j)] =
                scores[static_cast<size_t>(r * count + (j - i1))] <= thresh;
}

// n:m: marks the m - n lowest scores of columns [j, j + m) in every row.
void select_group(const MatrixD& w, const MatrixD& u, int64_t j, int keep_n, int m,
                  std::vector<char>& pruned) {
    const int64_t rows = w.rows(), cols = w.cols();
    std::vector<double> score(static_cast<size_t>(m));
    std::vector<int> order(static_cast<size_t>(m));
    for (int64_t r = 0; r < rows; ++r) {
        for (int c = 0; c < m; ++c) {
            const double v = w(r, j + c), d = u(j + c, j + c);
            score[static_cast<size_t>(c)] = v * v / (d * d);
        }
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
            return score[static_cast<size_t>(a)] < score[static_cast<size_t>(b)];
        });
        for (int i = 0; i < m - keep_n; ++i)
            pruned[static_cast<size_t>(r * cols + j + order[static_cast<size_t>(i)])] = 1;
    }
}

}  // namespace

SparseGptResult sparsegpt_prune(std::span<const float> w, int64_t rows, int64_t cols,
                                std::span<const double> hessian, const SparseGptOptions& options,
                                const std::string& what) {
    if (rows <= 0 || cols <= 0 || w.size() != static_cast<size_t>(rows * cols) ||
        hessian.size() != static_cast<size_t>(cols * cols))
        throw InternalError(cat("sparsegpt: ", what, ": sizes"));
    check_options(options, cols, what);
    SparseGptResult result;

    MatrixD h(cols, cols);
    MatrixD wd(rows, cols);
    for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j) h(i, j) = hessian[static_cast<size_t>(i * cols + j)];
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            wd(r, c) = static_cast<double>(w[static_cast<size_t>(r * cols + c)]);
    result.dead_columns = detail::prepare_hessian(h, wd, what, "SparseGPT");
    const auto factor = detail::damped_inverse_cholesky(
        h, options.damp, what, "SparseGPT", "exclude it or prune it with magnitude or wanda");
    const MatrixD& u = factor.upper;
    result.damp = factor.damp;
    result.retries = factor.retries;

    std::vector<char> pruned(static_cast<size_t>(rows * cols), 0);
    std::vector<double> scores;
    MatrixD q(rows, cols), err;
    const int64_t bs = options.block_size;
    const bool nm = options.m > 0;
    for (int64_t i1 = 0; i1 < cols; i1 += bs) {
        const int64_t i2 = std::min(cols, i1 + bs), count = i2 - i1;
        if (!nm) select_block(wd, u, i1, i2, options.sparsity, pruned, scores);
        err.setZero(rows, count);
        for (int64_t j = i1; j < i2; ++j) {
            if (nm && (j - i1) % options.m == 0)
                select_group(wd, u, j, options.keep_n, options.m, pruned);
            const double d = u(j, j);
            for (int64_t r = 0; r < rows; ++r) {
                const double x = wd(r, j);
                const double kept = pruned[static_cast<size_t>(r * cols + j)] ? 0.0 : x;
                q(r, j) = kept;
                result.loss += (x - kept) * (x - kept) / (2.0 * d * d);
                err(r, j - i1) = (x - kept) / d;
            }
            if (j + 1 < i2)
                wd.block(0, j + 1, rows, i2 - j - 1).noalias() -=
                    err.col(j - i1) * u.block(j, j + 1, 1, i2 - j - 1);
        }
        if (i2 < cols) wd.rightCols(cols - i2).noalias() -= err * u.block(i1, i2, count, cols - i2);
    }

    const int64_t words = mask_words(cols);
    result.weights.resize(static_cast<size_t>(rows * cols));
    result.mask.assign(static_cast<size_t>(rows * words), 0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const bool keep = !pruned[static_cast<size_t>(r * cols + c)];
            result.weights[static_cast<size_t>(r * cols + c)] =
                keep ? static_cast<float>(q(r, c)) : 0.0f;
            if (keep)
                result.mask[static_cast<size_t>(r * words + c / 64)] |= uint64_t{1} << (c % 64);
        }
    return result;
}

}  // namespace ep::calib
