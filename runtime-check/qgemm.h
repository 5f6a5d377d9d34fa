// Kernels that read quantized weights (ir/encoding.h) in place, and the rule
// the executor uses to decide which encoded initializers a kernel reads natively.
//
// An encoded initializer read by a node whose kernel has no native support for it is
// dequantized once when the plan is compiled (executor.cpp), so every other kernel only
// ever sees plain float tensors. Native readers:
//   MatMul input 1   a 2-D [K, N] weight encoded along axis 0 (one stored row per output
//                    channel, the reduction axis contiguous)
//   Gemm input 1     [K, N] with axis 0 (transB = 0) or [N, K] with axis 1 (transB = 1)
//   Gather input 0   a table encoded along axis 1, gathered on axis 0: only the gathered
//                    rows are dequantized
// Conv weights (int8c) stay on the dequantize-once fallback: a conv weight is small next
// to its activations, and the im2col GEMM would need the whole filter bank anyway.
//
// qgemm_f32 never materialises the float weight: it dequantizes one block (small M) or one
// panel of kQPanel output channels (larger M) at a time; see qgemm.cpp for the scratch.
// Work is split over output channels in fixed panels, each computed by one thread in a
// fixed order, so results are bit-identical for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/ir.h"
#include "runtime-check/gemm.h"
#include "runtime-check/kernel.h"

namespace ep::rt {

// Output channels dequantized together on the panel path.
inline constexpr int64_t kQPanel = 32;
// Rows of A up to which each output channel is a fused dequantize + dot product.
inline constexpr int64_t kQSmallM = 4;

// True when the kernel of `node` reads input `input` directly in its encoded form
// (`weight` is that encoded initializer); false means the executor hands the kernel a
// dequantized copy instead.
[[nodiscard]] bool kernel_reads_encoding(const Node& node, size_t input, const Tensor& weight);

// Y[M, N] (row-major, leading dimension ldy) = A[M, K] * W^T, where `w` is an encoded
// tensor whose stored matrix (encoded_dims) is N rows of K = a.cols. A may be transposed
// (it is copied to row-major first). Fails naming the node on a mismatch.
void qgemm_f32(const OpContext& c, const MatrixView& a, const Tensor& w, int64_t n, float* y,
               int64_t ldy);

// MatMul(A, W) with W an encoded [K, N] weight (axis 0): A [..., K] -> [..., N] (f32).
[[nodiscard]] Tensor qmatmul(const OpContext& c, const Tensor& a_f32, const Tensor& w);

// Gather on axis 0 from an encoded table (axis 1): dequantizes only the gathered rows.
void gather_encoded(OpContext& c);

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
