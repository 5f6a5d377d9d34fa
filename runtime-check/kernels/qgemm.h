// Kernels that multiply by quantized weights (ir/encoding.h) read in place.
//
// qgemm_encoded_f32 never materialises the float weight: it dequantizes one block (small M)
// or one panel of kQPanel output channels (larger M) at a time; see qgemm.cpp for the
// scratch. Work is split over output channels in fixed panels, each computed by one thread
// in a fixed order, so results are bit-identical for any thread count. Which nodes read an
// encoded weight natively, and the op-level checks, are ops/quant_matmul.h's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/ir.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

// Output channels dequantized together on the panel path.
inline constexpr int64_t kQPanel = 32;
// Rows of A up to which each output channel is a fused dequantize + dot product.
inline constexpr int64_t kQSmallM = 4;

class QPackCache;

// Y[M, N] (row-major, leading dimension ldy) = A[M, K] * W^T, where `w` is an encoded
// tensor whose stored matrix (encoded_dims) is N rows of K = a.cols: the caller checks the
// dimensions. A may be transposed (it is copied to row-major first). With
// options.int8_activations and a cache, int4 weights go through qgemm_i8 (below).
// A sparse w (ir/sparse.h) goes to sparse_gemm_f32 (sparse_gemm.h). Throws InputError when
// w's encoding is not one this kernel reads.
void qgemm_encoded_f32(const ExecOptions& options, QPackCache* qpacks, const MatrixView& a,
                       const Tensor& w, float* y, int64_t ldy);

// Y[M, N] = A[M, K] (row-major, lda) * W^T for W the dense encoded rows x cols matrix at
// `data` (e not sparse, the byte count checked by the caller): qgemm_encoded_f32's kernels
// on a piece of a weight (the sparse kernels run them on the rows they expand, so that
// sparse and dense weights give the same bits). `name` names the weight in errors.
void qgemm_encoded_rows(const ExecOptions& options, const Encoding& e, const std::byte* data,
                        int64_t rows, int64_t cols, const float* a, int64_t m, int64_t lda,
                        float* y, int64_t ldy, const std::string& name);

// The int8-activation variant (ExecOptions::int8_activations; qgemv_i8.cpp): int4 weights
// (symmetric or with a zero point, any group) repacked once into tiles of 16 output
// channels, activations quantized per 32 elements to int8, exact int32 dot products
// (AVX-512 VNNI, AVX2, or portable code, all giving the same bits).
// Layout: qgemv_i8.cpp.
struct QPackI4 {
    int64_t rows = 0, cols = 0;               // the stored matrix: rows = output channels
    int64_t group = 0, groups = 0, subs = 0;  // subs: 32-element sub-blocks per row
    int64_t tiles = 0;
    bool asym = false, bf16 = false;  // zero points stored; scales are bf16 (else f16)
    size_t tile_bytes = 0;  // codes (subs * 256) + scales (groups * 32) + zeros (asym: groups * 64)
    struct Free {
        void operator()(std::byte* p) const;
    };
    std::unique_ptr<std::byte, Free> storage;  // 2 MiB aligned (huge pages where allowed)
    std::byte* base = nullptr;                 // = storage

    [[nodiscard]] const uint8_t* codes(int64_t t) const {
        return reinterpret_cast<const uint8_t*>(base) + static_cast<size_t>(t) * tile_bytes;
    }
    [[nodiscard]] const uint16_t* scales(int64_t t) const {
        return reinterpret_cast<const uint16_t*>(codes(t) + subs * 256);
    }
    [[nodiscard]] const int32_t* zeros(int64_t t) const {
        return reinterpret_cast<const int32_t*>(codes(t) + subs * 256 + groups * 32);
    }
};
[[nodiscard]] bool qpack_i4_supported(const Encoding& e);
[[nodiscard]] std::unique_ptr<QPackI4> pack_i4(const Tensor& w, const std::string& what);
// Y[M, N] = A[M, K] (row-major) * W^T through a packed weight.
void qgemm_i8(const ExecOptions& options, const QPackI4& p, const float* a, int64_t m, int64_t lda,
              float* y, int64_t ldy);

// The packed weights of one executor, made at first use and kept for its lifetime.
class QPackCache {
  public:
    QPackCache();
    ~QPackCache();
    QPackCache(const QPackCache&) = delete;
    QPackCache& operator=(const QPackCache&) = delete;
    [[nodiscard]] const QPackI4& get(const Tensor& w);

  private:
    // Keyed by the encoded bytes (kernels may hold a copy of the weight's Tensor, which shares
    // them), and checked against the weight's dimensions on every use.
    std::unordered_map<const std::byte*, std::unique_ptr<QPackI4>> packs_;
};

}  // namespace ep::rt
