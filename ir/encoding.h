// Quantized weight encodings: how the bytes of a quantized tensor are laid out, and the
// scalar reference quantizer that defines those bytes.
//
// An encoded tensor keeps its logical dtype (F32: what it dequantizes to) and logical
// shape; `Tensor::encoding` says how its bytes are stored. The logical tensor is viewed as
// a matrix of `rows` x `cols` where `cols` runs along the reduction axis (the axis groups
// are taken along):
//   axis k >= 1 (default 1): rows = product of shape[..k-1], cols = product of shape[k..]
//     (1: Gemm transB=1 [N,K], Gather [V,D], Conv [O,I,kh,kw]; 2: LSTM/GRU/RNN W, R [D,G*H,I])
//   axis 0 (2-D only): rows = shape[1], cols = shape[0]: stored row r is logical column r
//                     (MatMul / Gemm transB=0 weights [K,N]: one row per output channel)
// Rows are stored one after another; within a row the reduction axis is contiguous, so a
// fused kernel reads one output channel's blocks in order (as ONNX Runtime's MatMulNBits).
//
// Schemes (x = the float weight, d = the block's scale rounded to its scale dtype, q = the
// stored code; rounding is round-half-away-from-zero of x / d in float):
//
//   int8c     int8 per output channel, symmetric. Bits per weight: 8 + 32 / cols.
//             Bytes: int8 q[rows][cols], zero-padded to a multiple of 4, then f32 d[rows].
//             d = max|x| / 127 over the row; q = clamp(round(x / d), -127, 127); x' = d * q.
//   int8gG    int8 group-wise symmetric, G in {32, 64, 128}: BlockInt8Sym<G> per group.
//             d = max|x| / 127 over the group; q as for int8c. Bits: 8 + 16 / G.
//   int8gGa   int8 group-wise asymmetric: BlockInt8Asym<G>; the range [min(x,0), max(x,0)]
//             maps onto 0..255: d = (hi - lo) / 255, z = clamp(round(-lo / d), 0, 255),
//             q = clamp(round(x / d) + z, 0, 255); x' = d * (q - z). Bits: 8 + 32 / G.
//   int4gG    int4 group-wise symmetric: BlockInt4Sym<G>. m = the group's value of largest
//             magnitude (first one on ties), d = m / -8, q = clamp(round(x / d), -8, 7),
//             stored as the nibble q + 8 (low nibble = even element); x' = d * q (as
//             llama.cpp's Q4_0, and ONNX Runtime's MatMulNBits with its default zero
//             point 8). Bits: 4 + 16 / G.
//   int4gGa   int4 group-wise asymmetric: BlockInt4Asym<G>; as int8gGa with 0..15.
//             Bits: 4 + 32 / G.
//   int4gGm   int4 group-wise with a float minimum (llama.cpp's Q4_1 at G = 32):
//             BlockInt4Min<G>; x' = d * q + m with q in 0..15 and f16 d, m (no integer zero
//             point). RTN is ggml's quantize_row_q4_1_ref: lo = min(x), hi = max(x),
//             d = (hi - lo) / 15, q = min(15, trunc((x - lo) * (1 / d) + 0.5)) with the
//             unrounded d and lo; d and m = lo are then stored rounded. Bits: 4 + 32 / G.
//   q4_k      llama.cpp's Q4_K: super-blocks of 256 (BlockQ4K, ggml's block_q4_K byte for
//             byte) of 8 sub-blocks of 32, each with a 6-bit scale sc and a 6-bit minimum mn
//             under the super-block's f16 d and dmin: x' = (d * sc) * q - dmin * mn, q in
//             0..15. RTN is ggml's quantize_row_q4_K_ref (make_qkx2_quants per sub-block).
//             Bits: 4.5.
//   q6_k      llama.cpp's Q6_K: super-blocks of 256 (BlockQ6K, ggml's block_q6_K) of 16
//             sub-blocks of 16 with an int8 scale sc under an f16 d: x' = (d * sc) * q, q in
//             -32..31. RTN is ggml's quantize_row_q6_K_ref (make_qx_quants). Bits: 6.5625.
//   q5_0 q5_1 q2_k q3_k q5_k   ggml's blocks as a GGUF source holds them, so a tensor no
//             pass changes is written back byte for byte; dequantized as gguf's
//             dequantize does; no quantizer (quantize-weights skips them as already
//             encoded; their QParams / codes are not exposed: dequantize_row only).
// The K-quants have one group size (256) and f16 scales; their "parameter groups" (QParams,
// row_qparams) are the sub-blocks, whose scale and minimum are fixed by the super-block's
// bytes, so solvers that choose codes (GPTQ) take them from the RTN pass (set_row_codes).
// A scale of 0 (an all-zero group) stores q = 0 (symmetric) or q = z = 0 (asymmetric).
// Group scales are f16 (default) or bf16 (`Encoding::scale_dtype`). A row whose length is
// not a multiple of G ends in a block padded with the code of 0.0 (x' = 0 there); for
// int4gGm and the K-quants, whose grids need not hold 0.0, the last block is quantized as
// if the row went on with zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dtype.h"

namespace ep {

struct Tensor;

enum class QScheme : uint8_t {
    None,
    Int8Channel,
    Int8Sym,
    Int8Asym,
    Int4Sym,
    Int4Asym,
    Int4Min,  // Q4_1's form: x' = d * q + m
    Q4K,
    Q6K,
    // ggml block types kept as read from a GGUF file (no quantizer: `quantizable` false)
    Q5_0,
    Q5_1,
    Q2K,
    Q3K,
    Q5K,
    Count_
};

struct QSchemeTraits {
    QScheme scheme;
    std::string_view name;  // "int4": the start of an encoding's name
    int bits;               // bits per code
    bool symmetric;
    bool grouped;      // false: one f32 scale per row (int8c)
    int qmin, qmax;    // code range: the signed range for symmetric schemes
    int super_block;   // ggml block types: the one group size (32, 256); 0: 32, 64 or 128
    int sub_block;     // K-quants: elements per sub-block scale; 0: the group
    bool quantizable;  // false: kept from a GGUF source (q5_0, q5_1, q2_k, q3_k, q5_k)
};

[[nodiscard]] const QSchemeTraits& traits(QScheme scheme);

// Sparse storage of pruned weights (sparse.h): which layout, and how many weights are kept.
enum class SparseLayout : uint8_t { None, Bitmask, NM };

struct Sparsity {
    SparseLayout layout = SparseLayout::None;
    uint8_t n = 0, m = 0;  // NM: n kept in every m consecutive columns
    uint64_t kept = 0;     // kept weights in the whole tensor (the mask's popcount)

    [[nodiscard]] bool is_none() const { return layout == SparseLayout::None; }
    friend bool operator==(const Sparsity&, const Sparsity&) = default;
};

struct Encoding {
    QScheme scheme = QScheme::None;
    uint16_t group = 0;              // elements per block (grouped schemes): 32, 64 or 128
    DType scale_dtype = DType::F16;  // grouped: F16 or BF16; int8c: F32
    uint8_t axis = 1;                // the reduction axis (see above): 0 to 7, below the rank
    // Stored sparse (sparse.h) over the dense form this encoding describes without it. A
    // sparse tensor of scheme None holds plain float values (its dtype's) and is encoded.
    Sparsity sparse;

    // Plain tensor: neither quantized nor sparse.
    [[nodiscard]] bool is_none() const { return scheme == QScheme::None && sparse.is_none(); }
    [[nodiscard]] bool is_sparse() const { return !sparse.is_none(); }
    [[nodiscard]] bool is_quantized() const { return scheme != QScheme::None; }
    // This encoding without sparse storage (the dense form's).
    [[nodiscard]] Encoding dense() const {
        Encoding e = *this;
        e.sparse = {};
        return e;
    }
    friend bool operator==(const Encoding&, const Encoding&) = default;
};

// Block layouts. `d` holds the scale's f16 or bf16 bits.
template <int G>
struct BlockInt4Min {
    uint16_t d;
    uint16_t m;         // the float minimum, in the scale dtype
    uint8_t qs[G / 2];  // as BlockInt4Sym (element 2i low nibble; GGUF's Q4_1 differs)
};
// ggml's block_q4_K (ggml-common.h): 144 bytes per 256 weights.
struct BlockQ4K {
    uint16_t d, dmin;    // f16 super-block scales of the sub-block scales and minimums
    uint8_t scales[12];  // 8 x (6-bit scale, 6-bit minimum), packed as get_scale_min_k4
    uint8_t qs[128];     // sub-block 2c + h element k: nibble h of qs[32c + k]
};
// ggml's block_q6_K: 210 bytes per 256 weights.
struct BlockQ6K {
    uint8_t ql[128];    // low 4 bits
    uint8_t qh[64];     // high 2 bits
    int8_t scales[16];  // per 16 weights
    uint16_t d;         // f16
};
static_assert(sizeof(BlockInt4Min<32>) == 20 && sizeof(BlockQ4K) == 144 && sizeof(BlockQ6K) == 210);
template <int G>
struct BlockInt4Sym {
    uint16_t d;
    uint8_t qs[G / 2];  // element 2i in the low nibble of qs[i], 2i+1 in the high nibble
};
template <int G>
struct BlockInt4Asym {
    uint16_t d;
    uint8_t zero;      // 0..15
    uint8_t reserved;  // 0
    uint8_t qs[G / 2];
};
template <int G>
struct BlockInt8Sym {
    uint16_t d;
    int8_t qs[G];
};
template <int G>
struct BlockInt8Asym {
    uint16_t d;
    uint8_t zero;
    uint8_t reserved;  // 0
    uint8_t qs[G];
};
static_assert(sizeof(BlockInt4Sym<32>) == 18 && sizeof(BlockInt4Sym<64>) == 34 &&
              sizeof(BlockInt4Sym<128>) == 66);
static_assert(sizeof(BlockInt4Asym<32>) == 20 && sizeof(BlockInt4Asym<64>) == 36 &&
              sizeof(BlockInt4Asym<128>) == 68);
static_assert(sizeof(BlockInt8Sym<32>) == 34 && sizeof(BlockInt8Sym<64>) == 66 &&
              sizeof(BlockInt8Sym<128>) == 130);
static_assert(sizeof(BlockInt8Asym<32>) == 36 && sizeof(BlockInt8Asym<64>) == 68 &&
              sizeof(BlockInt8Asym<128>) == 132);

// "int4g32", "int4g32a", "int8c", "int8g64-bf16" ("none" for QScheme::None); a sparse one
// appends "+bitmask" or "+2:4" ("int4g32+2:4"; scheme None: "bitmask", "2:4").
[[nodiscard]] std::string encoding_name(const Encoding& e);
// The inverse of encoding_name (axis and sparse.kept are not part of the name: they are left
// at 1 and 0).
[[nodiscard]] std::optional<Encoding> encoding_from_name(std::string_view name);
// Throws InputError naming `what` when the encoding is not one of the schemes above.
void check_encoding(const Encoding& e, const std::string& what);

// Elements per set of quantization parameters (QParams) within a row: the group, or a
// K-quant's sub-block; and how many such sets one row of cols elements has.
[[nodiscard]] int64_t param_width(const Encoding& e);
[[nodiscard]] int64_t params_per_row(const Encoding& e, int64_t cols);
// True for the K-quants: parameters fixed by super-block bytes, not chosen per group.
[[nodiscard]] bool is_kquant(const Encoding& e);

// Bytes of one block (grouped schemes).
[[nodiscard]] size_t block_bytes(const Encoding& e);
// Blocks per row (grouped schemes): ceil(cols / group).
[[nodiscard]] int64_t blocks_per_row(const Encoding& e, int64_t cols);
// Bytes of one stored row (grouped schemes).
[[nodiscard]] uint64_t row_bytes(const Encoding& e, int64_t cols);
// Bytes of an encoded rows x cols matrix; nullopt on overflow.
// A sparse encoding (sparse.h) needs the dtype of its values for scheme None.
[[nodiscard]] std::optional<uint64_t> encoded_bytes(const Encoding& e, int64_t rows, int64_t cols,
                                                    DType dtype = DType::F32);
// Average storage bits per weight of a rows x cols matrix (scales and zero points included).
[[nodiscard]] double bits_per_weight(const Encoding& e, int64_t rows, int64_t cols);

// The stored matrix shape of a logical shape under an encoding (see the top of this file);
// throws InputError naming `what` for an axis the shape does not allow.
struct EncodedDims {
    int64_t rows = 0, cols = 0;
};
[[nodiscard]] EncodedDims encoded_dims(const Encoding& e, std::span<const int64_t> shape,
                                       const std::string& what);

// --- The reference quantizer (scalar; defines the bytes) ---------------------------------

// One group's quantization parameters. `scale` is already rounded to the scale dtype.
struct QParams {
    float scale = 0.0f;
    int zero = 0;      // asymmetric schemes only
    float min = 0.0f;  // int4gGm: m, added; q4_k: dmin * mn, subtracted
};
// Chooses the parameters for one group (or one int8c row) of values, as described above
// (int4gGm: the stored, rounded d and m). Not for the K-quants (InternalError): their
// parameters come from a whole super-block (quantize_rtn, then row_qparams).
[[nodiscard]] QParams choose_qparams(const Encoding& e, std::span<const float> values);
// The code of x under p: signed for symmetric schemes (-8..7, -127..127, q6_k -32..31),
// 0..qmax for asymmetric ones (int4gGm: round((x - m) / d); q4_k: ggml's
// nearest_int((x + min) / scale), the last step of its reference quantizer).
[[nodiscard]] int quantize_value(const Encoding& e, float x, const QParams& p);
[[nodiscard]] inline float dequantize_value(const Encoding& e, int q, const QParams& p) {
    if (e.scheme == QScheme::Int4Min) return p.scale * static_cast<float>(q) + p.min;
    if (e.scheme == QScheme::Q4K) return p.scale * static_cast<float>(q) - p.min;
    return p.scale * static_cast<float>(q - p.zero);
}
// Rounds a scale to the encoding's scale dtype (f16 / bf16 / f32).
[[nodiscard]] float round_scale(const Encoding& e, float scale);

// Writes one row (cols values, the reduction axis) with the parameters of each group given
// (params.size() == blocks_per_row; int8c: one entry) into `out` (row_bytes; for int8c
// `out_codes` gets the cols codes and `out_scale` the scale). Used by GPTQ / AWQ, which
// choose their own parameters.
void pack_row(const Encoding& e, std::span<const int> codes, std::span<const QParams> params,
              std::span<std::byte> out);

// Replaces the codes of one encoded row (row_bytes; codes as quantize_value returns them,
// cols of them) and keeps its scales: how GPTQ writes K-quant rows, whose sub-block scales
// come from the RTN pass.
void set_row_codes(const Encoding& e, std::span<const int> codes, std::span<std::byte> row);

// Quantizes a rows x cols row-major float matrix (already in stored orientation: each row
// one output channel, the reduction axis contiguous) with round-to-nearest. Writes exactly
// the bytes of quantize_rtn_reference, through AVX2 kernels when the CPU has them.
[[nodiscard]] std::vector<std::byte> quantize_rtn(const Encoding& e, std::span<const float> w,
                                                  int64_t rows, int64_t cols);
// The scalar reference quantizer itself (choose_qparams, quantize_value, pack_row, row by
// row): what defines the bytes quantize_rtn writes.
[[nodiscard]] std::vector<std::byte> quantize_rtn_reference(const Encoding& e,
                                                            std::span<const float> w, int64_t rows,
                                                            int64_t cols);
// The code path quantize_rtn takes for `e` here: "avx2", or "scalar" (the reference) when
// the CPU lacks AVX2 / FMA / F16C or EDGEPACK_ISA=baseline is set (read at each call).
[[nodiscard]] std::string_view quantize_rtn_isa(const Encoding& e);

// Dequantizes stored row r of an encoded matrix into cols floats.
void dequantize_row(const Encoding& e, std::span<const std::byte> data, int64_t rows, int64_t cols,
                    int64_t r, float* out);
// The group parameters of stored row r, block b (for exporters: scales and zero points).
[[nodiscard]] QParams row_qparams(const Encoding& e, std::span<const std::byte> data, int64_t rows,
                                  int64_t cols, int64_t r, int64_t b);
// The code of element (r, c), as quantize_value returns it.
[[nodiscard]] int row_code(const Encoding& e, std::span<const std::byte> data, int64_t rows,
                           int64_t cols, int64_t r, int64_t c);

// A float tensor's values in the stored orientation of `e` (rows = output channels, the
// reduction axis contiguous): transposed for axis 0.
[[nodiscard]] std::vector<float> stored_floats(const Tensor& t, const Encoding& e);
// A tensor like `t` (name, logical shape, doc string) holding encoded `bytes`; throws
// InputError naming it when the byte count does not match.
[[nodiscard]] Tensor make_encoded_tensor(const Tensor& t, const Encoding& e,
                                         std::vector<std::byte> bytes);

// A whole encoded tensor back to floats in its logical layout (undoing axis 0).
[[nodiscard]] std::vector<float> dequantize_tensor(const Tensor& t);
// A float tensor (F32, or anything to_floats reads) quantized with RTN; the result keeps
// the name and logical shape and carries `e` (with its axis).
[[nodiscard]] Tensor quantize_tensor_rtn(const Tensor& t, const Encoding& e);

}  // namespace ep
