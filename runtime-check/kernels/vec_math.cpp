#include "runtime-check/kernels/vec_math.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>

#include "runtime-check/kernels/simd.h"

namespace ep::rt {
namespace {

using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
using ConstMap = Eigen::Map<const Array>;
using Map = Eigen::Map<Array>;

// Below this exp(x) < 1.7e-38 is flushed to 0, and inputs are clamped to it before the
// packet exp: results near the subnormal range (or 2^m scaling into it) would take
// microcode assists that cost ~100x a normal multiply.
constexpr float kExpLow = -87.0f;

}  // namespace

void exp_f32(const float* x, float* y, int64_t n) {
    if (auto fast = simd_kernels().exp) return fast(x, y, n);
    // Eigen vectorizes plain coefficient-wise expressions but not select(), so the
    // underflow and NaN fix-ups are a separate loop. Blocks go through aligned buffers
    // padded to whole packets: Eigen then uses its packet exp for every element (it
    // would switch to scalar std::exp for an unaligned head or a ragged tail, which
    // would make an element's bits depend on where a thread's chunk starts). y may be x.
    constexpr int64_t kBlock = 256;
    alignas(64) float in[kBlock];
    alignas(64) float ex[kBlock];
    bool under[kBlock];
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t len = std::min(kBlock, n - i0);
        const int64_t padded = (len + 15) / 16 * 16;
        for (int64_t i = 0; i < len; ++i) {
            const float v = x[i0 + i];
            under[i] = v < kExpLow;
            in[i] = under[i] ? kExpLow : v;
        }
        for (int64_t i = len; i < padded; ++i) in[i] = 0.0f;
        Map(ex, padded) = ConstMap(in, padded).exp();
        float* out = y + i0;
        for (int64_t i = 0; i < len; ++i) {
            const float e = under[i] ? 0.0f : ex[i];
            out[i] = in[i] != in[i] ? in[i] : e;  // NaN in, NaN out
        }
    }
}

void sigmoid_f32(const float* x, float* y, int64_t n) {
    if (auto fast = simd_kernels().sigmoid) return fast(x, y, n);
    // e = exp(-|x|) in (0, 1]: 1 / (1 + e) for x >= 0, e / (1 + e) otherwise.
    constexpr int64_t kBlock = 256;
    float e[kBlock];
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t len = std::min(kBlock, n - i0);
        const float* in = x + i0;
        float* out = y + i0;
        for (int64_t i = 0; i < len; ++i) e[i] = -std::abs(in[i]);
        exp_f32(e, e, len);
        for (int64_t i = 0; i < len; ++i) {
            const float r = 1.0f / (1.0f + e[i]);
            out[i] = in[i] >= 0.0f ? r : e[i] * r;
        }
    }
}

void tanh_f32(const float* x, float* y, int64_t n) {
    // Aligned blocks padded to whole packets, as in exp_f32: every element goes through
    // the packet tanh, so its bits do not depend on where a caller's chunk starts.
    constexpr int64_t kBlock = 256;
    alignas(64) float buf[kBlock];
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t len = std::min(kBlock, n - i0);
        const int64_t padded = (len + 15) / 16 * 16;
        std::copy(x + i0, x + i0 + len, buf);
        std::fill(buf + len, buf + padded, 0.0f);
        Map(buf, padded) = ConstMap(buf, padded).tanh();
        std::copy(buf, buf + len, y + i0);
    }
}

}  // namespace ep::rt
