// Weights and activations on integer grids that the quantizers encode without error, so
// the exact value of a product is an integer sum computed here in int64: an oracle that
// shares nothing with the quantizer, the dequantizer or the kernels under test.
//
// Weights are k * step_w for integers k. Every encoding group (G elements along the
// reduction axis, from a multiple of G; the whole row for int8c) holds both ends of the
// scheme's range, so its scale is exactly step_w (a power of two: exact in f16 and bf16):
//   int4 symmetric   k in [-8, 7], -8 first:  d = m / -8 = step_w, code k
//   int4 asymmetric  k in [-8, 7], -8 and 7:  d = 15 step_w / 15, zero point 8
//   int8 symmetric   k in [-127, 127], 127 first: d = 127 step_w / 127
//   int8 asymmetric  k in [-128, 127], -128 and 127: d = 255 step_w / 255, zero point 128
// Activations are a * step_a with a in [-127, 127] and 127 first in every block of 32
// along K, so the int8-activation path's block scale is step_a and its codes are a.
// Products are multiples of step_w * step_a = 1/8; every partial sum is exact in float
// while |sum of k * a| < 2^24, which K <= 1000 guarantees (1000 * 128 * 127 < 2^24).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "ir/encoding.h"

namespace ep::test {

inline constexpr float kGridStepW = 0.5f;
inline constexpr float kGridStepA = 0.25f;

// Integer weights [K, N] (N columns, each reduced along K) for encoding `e`.
inline std::vector<int64_t> grid_weight_ints(const Encoding& e, int64_t k, int64_t n,
                                             uint32_t seed) {
    const auto& t = traits(e.scheme);
    const bool int4 = t.bits == 4;
    const int64_t lo = int4 ? -8 : (t.symmetric ? -127 : -128), hi = int4 ? 7 : 127;
    const int64_t group = t.grouped ? e.group : k;
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int64_t> dist(lo, hi);
    std::vector<int64_t> w(static_cast<size_t>(k * n));
    for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < n; ++c) {
            int64_t v = dist(rng);
            if (r % group == 0) v = (t.symmetric && !int4) ? hi : lo;
            if (r % group == 1) v = hi;
            w[static_cast<size_t>(r * n + c)] = v;
        }
    return w;
}

// Integer activations [M, K].
inline std::vector<int64_t> grid_activation_ints(int64_t m, int64_t k, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int64_t> dist(-127, 127);
    std::vector<int64_t> a(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j)
            a[static_cast<size_t>(i * k + j)] = j % 32 == 0 ? 127 : dist(rng);
    return a;
}

inline std::vector<float> scaled(const std::vector<int64_t>& ints, float step) {
    std::vector<float> v(ints.size());
    for (size_t i = 0; i < ints.size(); ++i) v[i] = static_cast<float>(ints[i]) * step;
    return v;
}

// Y [M, N] = A [M, K] W [K, N], exactly: integer sums times step_w * step_a.
inline std::vector<float> grid_product(const std::vector<int64_t>& a, const std::vector<int64_t>& w,
                                       int64_t m, int64_t k, int64_t n) {
    std::vector<float> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < n; ++c) {
            int64_t sum = 0;
            for (int64_t j = 0; j < k; ++j)
                sum += a[static_cast<size_t>(i * k + j)] * w[static_cast<size_t>(j * n + c)];
            y[static_cast<size_t>(i * n + c)] = static_cast<float>(sum) * (kGridStepW * kGridStepA);
        }
    return y;
}

// [R, C] -> [C, R].
inline std::vector<float> transposed(const std::vector<float>& v, int64_t rows, int64_t cols) {
    std::vector<float> t(v.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            t[static_cast<size_t>(c * rows + r)] = v[static_cast<size_t>(r * cols + c)];
    return t;
}

}  // namespace ep::test
