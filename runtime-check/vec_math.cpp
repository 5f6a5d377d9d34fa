#include "runtime-check/vec_math.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>

#include "runtime-check/simd.h"

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
    // underflow and NaN fix-ups are a separate loop (which the compiler vectorizes).
    // Blocks through a copy so that y may be x.
    constexpr int64_t kBlock = 256;
    float in[kBlock];
    bool under[kBlock];
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t len = std::min(kBlock, n - i0);
        float* out = y + i0;
        for (int64_t i = 0; i < len; ++i) {
            const float v = x[i0 + i];
            under[i] = v < kExpLow;
            in[i] = under[i] ? kExpLow : v;
        }
        Map(out, len) = ConstMap(in, len).exp();
        for (int64_t i = 0; i < len; ++i) {
            out[i] = under[i] ? 0.0f : out[i];
            out[i] = in[i] != in[i] ? in[i] : out[i];  // NaN in, NaN out
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

}  // namespace ep::rt
