// The 8-bit integer GEMM and depthwise convolution behind the fused QDQ ops (QLinearConv,
// QLinearMatMul, QGemm; runtime-check/qdq_fusion.h) and MatMulInteger / ConvInteger:
//
//   acc[r][c] = sum_k (x[k][c] - x_zp) * (w[r][k] - w_zp[r]) + bias[r]     exact, int32
//               (wrapping modulo 2^32 as the ONNX contract allows)
//   y[r][c]   = saturate(round_half_even(float(acc[r][c]) * mult[r]) + y_zp)
//
// r runs over output channels (weight rows), c over columns of the activation (a Conv's
// output pixels, a MatMul's rows of A). The products are computed as uint8 x int8: int8
// activations are shifted by +128 and uint8 weights by -128, with their zero points, and
// the zero-point terms are folded in exactly:
//   sum (x - xz)(w - wz) = sum x w - xz sum_k w - wz sum_k x + K xz wz.
// Every implementation (AVX-512 VNNI: vpdpbusd; AVX2: vpmaddwd on 16-bit halves, which
// cannot saturate; portable loops) computes the same integers, and the requantization is
// one f32 multiply and the same rounding everywhere, so all give the same bits, whatever
// the thread split. EDGEPACK_ISA picks the table as for simd.h.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

enum class IgemmIsa { Portable, Avx2, Avx512Vnni };

// The table chosen at start-up (simd.h's EDGEPACK_ISA applies), and every table this CPU
// can run (for tests that compare them).
[[nodiscard]] IgemmIsa igemm_isa();
[[nodiscard]] std::vector<IgemmIsa> igemm_available_isas();
[[nodiscard]] const char* igemm_isa_name(IgemmIsa isa);

// Weights as the kernel reads them: rows padded to a multiple of 8 and K to a multiple of
// 4 with zeros, int8 (uint8 weights shifted by -128), with each row's zero point (shifted
// alike) and sum of weights over K.
struct IgemmWeights {
    int64_t rows = 0, k = 0;
    int64_t rows_padded = 0, kp = 0;
    std::vector<int8_t> w;      // [rows_padded][kp]
    std::vector<int32_t> zp;    // per row
    std::vector<int32_t> sums;  // per row: sum_k w (shifted)
    bool any_zp = false;        // some zp != 0: column sums of x are needed
};

// w[r][k] at src[r * row_stride + k * k_stride]; zero points one per row (or one for all
// when zp.size() == 1).
[[nodiscard]] IgemmWeights igemm_prepare_weights(const uint8_t* src, bool is_signed, int64_t rows,
                                                 int64_t k, int64_t row_stride, int64_t k_stride,
                                                 const std::vector<int32_t>& zp);

// Prepared weights of one executor, for weights that are initializers (the same bytes every
// run): made at first use and kept for the executor's lifetime. Keyed by the source bytes'
// address and the layout; the zero points are compared on every use.
class IgemmCache {
  public:
    [[nodiscard]] const IgemmWeights& get(const uint8_t* src, bool is_signed, int64_t rows,
                                          int64_t k, int64_t row_stride, int64_t k_stride,
                                          const std::vector<int32_t>& zp);
    // Float weights too: `groups` blocks of W [rows, k] (row-major, one after the other)
    // transposed block by block into [k, rows] (a Conv's weights for conv2d.h's transposed
    // GEMM). Keyed by address and shape.
    [[nodiscard]] const float* transposed_f32(const float* src, int64_t groups, int64_t rows,
                                              int64_t k);

  private:
    struct FloatEntry {
        const float* src;
        int64_t groups, rows, k;
        std::vector<float> transposed;
    };
    std::vector<std::unique_ptr<FloatEntry>> float_entries_;
    struct Entry {
        const uint8_t* src;
        bool is_signed;
        int64_t rows, k, row_stride, k_stride;
        std::vector<int32_t> zp_in;
        IgemmWeights weights;
    };
    std::vector<std::unique_ptr<Entry>> entries_;
};

// The activation: x[k][c] at src[k * k_stride + c * c_stride], 8-bit (is_signed: int8).
struct IgemmActivation {
    const uint8_t* src = nullptr;
    bool is_signed = false;
    int64_t cols = 0;
    int64_t k_stride = 0, c_stride = 0;
    int32_t zp = 0;
};

// The output: y[r][c] at dst[r * row_stride + c * col_stride], 8-bit.
struct IgemmOutput {
    uint8_t* dst = nullptr;
    bool is_signed = false;
    int64_t row_stride = 0, col_stride = 0;
    int32_t zp = 0;
};

// Runs the whole product: bias (one int32 per row, may be null) and mult (one f32 per row).
void igemm_requantize(const ExecOptions& options, const IgemmWeights& w, const IgemmActivation& x,
                      const int32_t* bias, const float* mult, const IgemmOutput& y,
                      IgemmIsa isa = igemm_isa());

// The exact accumulators acc[r][c] above (wrapping modulo 2^32; bias one int32 per row, may
// be null) as int32 at dst[r * row_stride + c * col_stride]: MatMulInteger / ConvInteger.
// The same bits on every table and thread count.
void igemm_int32(const ExecOptions& options, const IgemmWeights& w, const IgemmActivation& x,
                 const int32_t* bias, int32_t* dst, int64_t row_stride, int64_t col_stride,
                 IgemmIsa isa = igemm_isa());

// One depthwise convolution (2-D, one filter per channel) over `channels` planes:
//   acc[ch][oy][ox] = sum_{ky,kx} (x[ch][iy][ix] - x_zp) * (w[ch][ky][kx] - w_zp[ch]) + bias[ch]
// with iy = oy * sh - pad_top + ky * dh (likewise ix), outside the input counting as x_zp;
// requantized as above with mult[ch]. x: [channels][ih][iw], w: [channels][kh][kw].
struct DepthwiseI8 {
    const uint8_t* x = nullptr;
    bool x_signed = false;
    int32_t x_zp = 0;
    const uint8_t* w = nullptr;
    bool w_signed = false;
    const int32_t* w_zp = nullptr;  // per channel
    const int32_t* bias = nullptr;  // per channel, may be null
    const float* mult = nullptr;    // per channel
    uint8_t* y = nullptr;
    bool y_signed = false;
    int32_t y_zp = 0;
    int64_t channels = 0, ih = 0, iw = 0, oh = 0, ow = 0, kh = 0, kw = 0;
    int64_t sh = 1, sw = 1, dh = 1, dw = 1, pad_top = 0, pad_left = 0;
};
void depthwise_i8(const ExecOptions& options, const DepthwiseI8& p);

}  // namespace ep::rt
