// GPTQ and AWQ: choose codes (GPTQ) or pre-scales (AWQ) for one weight matrix from
// calibration statistics, writing bytes through encoding.h's pack_row so that the stored
// format is exactly the reference definition.
//
// Both take the weight in STORED orientation (encoding.h): `rows` output channels of `cols`
// values along the reduction axis, row-major (MatMul [K, N] weights are transposed first).
//
// GPTQ (Frantar et al. 2022, following AutoGPTQ's fasterquant):
//   H (cols x cols, from calibration.h) ; dead columns (H[c][c] == 0): H[c][c] = 1, W[:, c] = 0
//   act_order: columns visited in decreasing diag(H) (ties: lower index first)
//   H += damp * mean(diag H) * I ; U = upper Cholesky factor of H^-1
//   for each block of block_size columns: for each column j: quantize W[:, j] with its
//   group's parameters, err = (w - q) / U[j][j], update the rest of the block with
//   err * U[j][j+1..]; after the block, update the later columns with the block's errors
//   (the lazy batch update).
//   Group parameters: without act_order, chosen by choose_qparams from the CURRENT (already
//   updated) weights of the group when its first column is reached (as AutoGPTQ without
//   static_groups, but with the updates inside the block included). With act_order, they
//   are chosen from the original weights before any update, in original column order (as
//   AutoGPTQ's static_groups): the stored groups are runs of consecutive original columns,
//   so groups in permuted order could not be stored. int8c: one parameter per row, chosen
//   from the original row.
//   Cholesky (of H, then of H^-1), all in double: on failure the damping is multiplied by
//   10, up to 3 times; if it still fails the tensor is an error (InputError naming it),
//   never an identity or RTN fallback.
//   All arithmetic is in double, one thread, in a fixed order: bytes are deterministic.
//
// AWQ (Lin et al. 2023, following AutoAWQ's search): s = mean|x|^alpha per input channel,
// or with AutoAWQ's duo scaling s = mean|x|^alpha / (w_mean^(1-alpha) + 1e-4) (w_mean: mean
// over output rows of |w| / max |w| of its group), normalised by sqrt(max(s) * min(s)) and
// floored at 1e-4, for alpha = i / grid, i = 0..grid-1 (2 * grid candidates); the loss of alpha is
// sum over kept rows and all matrices sharing the activation of ||X W^T - X (Q(W diag(s))
// diag(s)^-1)^T||^2; the best alpha (first on ties) wins. alpha = 0 gives s = 1, i.e. plain RTN, so
// the search is never worse than RTN on the kept rows. The caller quantizes W diag(s) and applies
// 1/s to the activation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ir/encoding.h"

namespace ep::calib {

struct GptqOptions {
    double damp = 0.01;
    int64_t block_size = 128;
    bool act_order = false;
    // Pruned weights (ir/sparse.h mask, rows x mask_words(cols), stored orientation): when
    // not empty, a weight whose bit is clear is quantized to the code of 0.0 and its whole
    // value becomes the error GPTQ spreads over the later columns (SparseGPT's joint
    // prune-and-quantize with a fixed mask), so a pruned tensor stays pruned.
    std::span<const uint64_t> mask;
};

struct GptqResult {
    std::vector<std::byte> bytes;  // the encoded matrix (encoded_bytes of rows x cols)
    double damp = 0.0;             // the relative damping finally used
    int retries = 0;               // how many times damping was increased
    int64_t dead_columns = 0;
    double loss = 0.0;  // sum over columns of ||w - q||^2 / (2 U[j][j]^2)
};

// `hessian` is cols x cols (row-major). `what` names the tensor in errors.
[[nodiscard]] GptqResult gptq_quantize(const Encoding& e, std::span<const float> w, int64_t rows,
                                       int64_t cols, std::span<const double> hessian,
                                       const GptqOptions& options, const std::string& what);

// SparseGPT (Frantar & Alistarh 2023, following the reference implementation's
// fasterprune): prunes a float matrix to `sparsity` (unstructured: at the start of each
// block of block_size columns, the weights of that block, all rows together, whose score
// w^2 / U_jj^2 is at or below the sparsity quantile are pruned, U the upper Cholesky
// factor of (H + damp mean(diag H) I)^-1, as the reference's `tmp <= thresh`) or to an
// n:m pattern (in every m consecutive columns of a row, the m - keep_n of lowest score
// pruned: the reference's prunen / prunem), updating the remaining weights with the OBS
// error column by column, with the lazy batch update after each block. Dead columns (H[c][c] == 0):
// H[c][c] = 1 and W[:, c] = 0, as GPTQ. Cholesky failures retry with damping x10 up to 3 times,
// then InputError naming `what` (never skipped). Double precision, one thread, fixed order.
struct SparseGptOptions {
    double sparsity = 0.5;     // unstructured: fraction pruned (ignored when m > 0)
    int keep_n = 0, m = 0;     // n:m (keep_n kept of every m): m > 0 selects it
    int64_t block_size = 128;  // the block (reference: blocksize 128)
    double damp = 0.01;        // percdamp
};
struct SparseGptResult {
    std::vector<float> weights;  // rows x cols, stored orientation, pruned weights exactly 0
    std::vector<uint64_t> mask;  // rows x mask_words(cols) (ir/sparse.h): bit set = kept
    double damp = 0.0;           // relative damping finally used
    int retries = 0;
    int64_t dead_columns = 0;
    double loss = 0.0;  // sum over columns of ||w - w_pruned||^2 / (2 U[j][j]^2)
};
[[nodiscard]] SparseGptResult sparsegpt_prune(std::span<const float> w, int64_t rows, int64_t cols,
                                              std::span<const double> hessian,
                                              const SparseGptOptions& options,
                                              const std::string& what);

struct AwqMatrix {
    std::span<const float> w;  // rows x cols, stored orientation
    int64_t rows = 0;
};

struct AwqResult {
    std::vector<float> scales;  // cols values s (the weight is multiplied by s per column)
    double alpha = 0.0;
    bool duo = false;       // s = x^a / w^(1-a) (AutoAWQ's duo scaling) won
    double loss = 0.0;      // at the chosen alpha
    double rtn_loss = 0.0;  // at alpha = 0 (s = 1)
};

// Searches alpha for the matrices that read the same activation (cols = its channels).
// `x` holds `x_rows` kept rows of cols values; `abs_mean` the per-channel mean |x|.
// The 2 * grid candidates are scored in parallel over `threads` threads, each by one
// thread: the result is the same for any thread count.
[[nodiscard]] AwqResult awq_search(const Encoding& e, std::span<const AwqMatrix> matrices,
                                   int64_t cols, std::span<const float> x, int64_t x_rows,
                                   std::span<const double> abs_mean, int grid, int threads = 1);

// AutoAWQ's clip search: for each row and group of `w` (already scaled, rows x cols),
// the clipping range max|w| * (1 - k / grid), k = 0..max_shrink * grid (asymmetric: the
// [min, max] range shrunk alike), that minimises sum over the rows of `x` (the activation
// with 1/s applied) of (x_g . (w_g - Q(clip(w_g))))^2; returns the clipped weights (k = 0
// keeps the group as it is, so clipping never loses on these rows).
// Rows are searched in parallel over `threads` threads, each row by one thread.
[[nodiscard]] std::vector<float> awq_clip(const Encoding& e, std::span<const float> w, int64_t rows,
                                          int64_t cols, std::span<const float> x, int64_t x_rows,
                                          int grid, double max_shrink, int threads = 1);

// Round-to-nearest of W diag(s) (rows x cols): the bytes AWQ stores.
[[nodiscard]] std::vector<std::byte> awq_quantize(const Encoding& e, std::span<const float> w,
                                                  int64_t rows, int64_t cols,
                                                  std::span<const float> scales);

// The per-tensor check that a solver is never silently worse than round-to-nearest: the
// objective each solver minimises, evaluated for any encoded matrix `bytes` (rows x cols,
// stored orientation) of the float weight `w`.
//   hessian_error: tr(E (H + lambda I) E^T), E = W - deq(bytes) diag(1/s) (s: `scales` as
//                  applied, empty for none), lambda = damp * mean(diag H) (GPTQ's layer-output
//                  error on all calibration rows, with the damping its solve used, so weights
//                  of columns the calibration never excited count; AWQ's final check against
//                  no scale); fixed blocks of 64 rows in parallel over `threads`, the per-row
//                  terms summed in row order, so the same for any thread count
//   output_error:  sum over the rows x of `x` of ||x (W - deq(bytes) diag(1/s))^T||^2 (AWQ:
//                  `scales` s as applied, empty for none)
// Both in double, in a fixed order.
[[nodiscard]] double hessian_error(const Encoding& e, std::span<const float> w, int64_t rows,
                                   int64_t cols, std::span<const std::byte> bytes,
                                   std::span<const double> hessian, double damp,
                                   std::span<const float> scales = {}, int threads = 1);
[[nodiscard]] double output_error(const Encoding& e, std::span<const float> w, int64_t rows,
                                  int64_t cols, std::span<const std::byte> bytes,
                                  std::span<const float> scales, std::span<const float> x,
                                  int64_t x_rows);

}  // namespace ep::calib
