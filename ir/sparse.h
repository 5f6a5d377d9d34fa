// Sparse storage of pruned weights: a tensor whose weights were pruned (passes/prune*) can
// store only the weights it kept, with a bitmask saying where they go. Sparsity is a layer
// over the dense encodings of encoding.h, never a new way of quantizing: a sparse tensor
// holds exactly the values of its dense form, where every pruned weight is 0.0, and
// densify() gives back the dense bytes bit for bit (so every reader that does not read
// sparse storage itself, the ONNX and safetensors writers and most ops, reads the dense
// form).
//
// `Encoding::sparse` (encoding.h) says the layout:
//   bitmask  unstructured: any set of kept weights per row.
//   n:m      semi-structured: in every run of m consecutive columns along the reduction
//            axis (columns c with c / m equal), exactly n are kept; cols % m == 0;
//            1 <= n < m <= 64, and for a grouped scheme group % m == 0.
// `Sparsity::kept` counts the kept weights of the whole tensor (stored in the .epk
// manifest), so the byte size follows from the header as for dense tensors.
//
// Names: the dense encoding's name with "+bitmask" or "+2:4" appended ("int4g32+2:4",
// "int8c+bitmask"); for scheme None (plain float values) just "bitmask" or "2:4".
//
// The logical tensor is the stored matrix of encoding.h (rows x cols, cols along the
// reduction axis, axis 0 transposing a 2-D [K, N] weight). Bytes, in this order:
//
//   mask       rows x W little-endian u64 words, W = ceil(cols / 64): bit (c % 64) of word
//              (c / 64) of row r is set when weight (r, c) is kept. Bits past cols are 0.
//   row_start  bitmask layout only: rows + 1 u64: the index of row r's first kept weight
//              among all kept weights in row-major order; row_start[0] = 0,
//              row_start[r + 1] - row_start[r] = the popcount of row r's mask,
//              row_start[rows] = kept.
//   params     the dense encoding's scale parameters, for every row and group, kept or not:
//              int8c: f32 d[rows]; grouped: rows x blocks_per_row block headers (the
//              first 2 bytes of each block, d; 4 for asymmetric schemes: d, zero,
//              reserved = 0), groups over the logical columns exactly as in the dense
//              form; scheme None: nothing.
//   values     the kept weights, row-major, each row in column order, packed with no
//              padding between rows: scheme None: elements of the tensor's dtype (f32,
//              f16 or bf16); int8: one code byte (int8 symmetric, uint8 asymmetric); int4:
//              one nibble each as in the dense blocks (q + 8 for symmetric), kept weight i
//              in the low nibble of byte i / 2 when i is even, the high nibble when odd
//              (so a row may start mid-byte), a final odd nibble padded with 0.
//
// A pruned weight's dense code is the code of 0.0: 0 for a float, q = 0 for symmetric
// schemes (nibble 8 for int4), q = the group's zero point for asymmetric ones. sparsify()
// refuses (InternalError) a pruned weight whose dense code is anything else: that would
// change the model.
//
// Readers check the bytes (check_sparse_bytes) before using them: the mask's padding bits,
// the N:M counts, row_start against the mask, kept against the mask's popcount, the header's
// padding and reserved bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "encoding.h"

namespace ep {

struct Tensor;

// u64 mask words per stored row.
[[nodiscard]] inline int64_t mask_words(int64_t cols) {
    return (cols + 63) / 64;
}
[[nodiscard]] inline bool mask_bit(std::span<const uint64_t> mask, int64_t words, int64_t r,
                                   int64_t c) {
    return (mask[static_cast<size_t>(r * words + c / 64)] >> (c % 64)) & 1u;
}

// Byte counts of the four sections (see the top of this file) of a sparse rows x cols
// matrix under `e` (e.sparse set) with values of `dtype` for scheme None; nullopt on
// overflow. `total` is what Tensor::expected_bytes() returns.
struct SparseSections {
    uint64_t mask = 0, row_start = 0, params = 0, values = 0;
    uint64_t total = 0;
};
[[nodiscard]] std::optional<SparseSections> sparse_sections(const Encoding& e, DType dtype,
                                                            int64_t rows, int64_t cols);

// Throws InputError naming `what` when `e.sparse` is not usable with this encoding and
// stored shape (n, m, kept, cols % m, group % m, dtype of scheme None).
void check_sparsity(const Encoding& e, DType dtype, int64_t rows, int64_t cols,
                    const std::string& what);

// Checks every field of sparse bytes (sizes, the mask's padding bits, the N:M counts,
// row_start, kept, reserved bytes); throws InputError naming `what` and the row.
void check_sparse_bytes(const Encoding& e, DType dtype, std::span<const std::byte> bytes,
                        int64_t rows, int64_t cols, const std::string& what);

// The sparse bytes of a dense matrix: `dense` holds the bytes of the dense encoding
// (e without sparse; for scheme None the dtype's elements in stored orientation), `mask`
// rows x mask_words(cols) words. e.sparse.kept must equal the mask's popcount.
[[nodiscard]] std::vector<std::byte> sparsify(const Encoding& e, DType dtype,
                                              std::span<const std::byte> dense, int64_t rows,
                                              int64_t cols, std::span<const uint64_t> mask,
                                              const std::string& what);
// The dense bytes of a sparse matrix (checked first, as check_sparse_bytes).
[[nodiscard]] std::vector<std::byte> densify(const Encoding& e, DType dtype,
                                             std::span<const std::byte> sparse, int64_t rows,
                                             int64_t cols, const std::string& what);

// The mask section of sparse bytes as a span of rows x mask_words(cols) words (no copy;
// the bytes are 8-byte aligned as every reader guarantees, else copied into `scratch`).
[[nodiscard]] std::span<const uint64_t> sparse_mask_view(std::span<const std::byte> sparse,
                                                         int64_t rows, int64_t cols,
                                                         std::vector<uint64_t>& scratch);

// --- Tensors -------------------------------------------------------------------------------

// The kept-weight mask of a dense float tensor in the stored orientation of `e` (axis 0
// transposes): bit set where the value is not 0.0 (-0.0 counts as 0).
[[nodiscard]] std::vector<uint64_t> nonzero_mask(const Tensor& t, const Encoding& e);
// The mask of a tensor: its own for a sparse one, else nonzero_mask(t, t.encoding).
[[nodiscard]] std::vector<uint64_t> tensor_mask(const Tensor& t);

// A dense tensor (plain f32 / f16 / bf16, or a dense encoding) stored sparse with `layout`
// (kept is computed from the mask) and `mask` in the stored orientation of t's encoding
// (for a plain tensor, of `axis`). Name, logical shape, dtype and doc string are kept.
[[nodiscard]] Tensor sparsify_tensor(const Tensor& t, Sparsity layout,
                                     std::span<const uint64_t> mask, uint8_t axis = 1);
// The dense form of a sparse tensor: a plain tensor for scheme None, else the same
// encoding without sparse. A tensor that is not sparse is returned as is.
[[nodiscard]] Tensor densify_tensor(const Tensor& t);

// Fraction of weights kept (1.0 for a dense tensor).
[[nodiscard]] double kept_fraction(const Tensor& t);

}  // namespace ep
