// Fast float32 paths of Conv and pooling for 1-D and 2-D inputs (1-D runs as 2-D with
// height 1); op_conv and the pooling ops use them and keep their generic N-d loops for
// other ranks.
//
//   Y[n, m, y, x] = B[m] + sum_{c in group(m), ky, kx} W[m, c, ky, kx]
//                          * X[n, c, y * sh - ph + ky * dh, x * sw - pw + kx * dw]
//   (X is 0 outside the input).
// Paths: depthwise (one input and one output channel per group) runs directly over a
// zero-padded copy of each input plane; 1x1 convolutions without stride or padding are one GEMM per
// group on X itself; everything else is im2col (one row per (channel, ky, kx), filled with memcpy
// when sw = 1) followed by a GEMM. The bias is the starting value of every sum. Work is split over
// planes, over whole (image, group) products when there are at least as many as threads (one
// fork and join per op), or else over GEMM tiles; every output element is computed by the same
// operations in the same order for any thread count.
#pragma once

#include <cstdint>
#include <span>

#include "runtime-check/kernels/elementwise_chain.h"
#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

struct Window2D {
    int64_t ih, iw;          // input size
    int64_t kh, kw;          // kernel size
    int64_t oh, ow;          // output size
    int64_t sh, sw;          // strides
    int64_t dh, dw;          // dilations
    int64_t ph, pw;          // pads at the beginning
    int64_t ph_end, pw_end;  // pads at the end
};

struct Conv2DShape {
    int64_t n, c_in, c_out, group;
    Window2D win;
};

// X [N, C_in, ih, iw], W [C_out, C_in / group, kh, kw], bias [C_out] or null,
// Y [N, C_out, oh, ow] (fully written). `epilogue`: an elementwise chain (a fused
// activation such as LeakyRelu, Relu, Clip or Mul + Max; elementwise_chain.h) applied to
// each (image, group) block of Y right after it is computed, while it is still in cache:
// the bits of the Conv followed by the chain's nodes.
//
// `w_t` (optional): W transposed per group ([group][C_in / group * kh * kw][C_out / group]),
// for shapes where conv2d_prefers_transposed: each (image, group) product is then computed
// as Y^T = patches^T * W^T (many output channels over few output positions fill the GEMM's
// 6 x 32 register tiles better than few positions over many channels). Every element is the
// same fused multiply-add chain over the same k in order, so the bits do not change.
void conv2d_f32(const ExecOptions& options, const Conv2DShape& s, const float* x, const float* w,
                const float* bias, float* y, std::span<const ChainStep> epilogue = {},
                const float* w_t = nullptr);

// Whether conv2d_f32 would use a transposed weight for this shape (the SIMD GEMM's tile
// cost of both orientations; never on the portable path, whose blocking is Eigen's).
[[nodiscard]] bool conv2d_prefers_transposed(const Conv2DShape& s);

// Max or average pooling of `planes` planes (N * C) without an index output.
// Average divides by the count of window positions inside the input, or inside the
// padded input when count_include_pad. A window entirely in the padding gives -inf (max)
// or 0 (average).
void pool2d_f32(const ExecOptions& options, int64_t planes, const Window2D& win, bool is_max,
                bool count_include_pad, const float* x, float* y);

}  // namespace ep::rt
