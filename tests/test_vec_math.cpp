// Vectorized exp, sigmoid and tanh (runtime-check/kernels/vec_math.h): accuracy against libm in
// double, the documented edges (underflow to 0 below -87, overflow to +inf, NaN and infinities),
// and the same bits whether an array is processed whole or in ragged pieces (what a
// thread split does).
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "runtime-check/kernels/simd.h"
#include "runtime-check/kernels/vec_math.h"
#include "support.h"

using namespace ep;

namespace {

std::vector<float> test_values() {
    std::vector<float> v;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> wide(-100.0f, 100.0f), near(-3.0f, 3.0f);
    for (int i = 0; i < 20000; ++i) v.push_back(i % 2 ? wide(rng) : near(rng));
    const float inf = std::numeric_limits<float>::infinity();
    for (float x : {0.0f,   -0.0f,   1.0f,   -1.0f,   -86.99f,
                    -87.0f, -87.01f, -88.0f, -104.0f, 87.9f,
                    88.0f,  88.5f,   88.72f, 88.73f,  89.0f,
                    1e-30f, -1e-30f, inf,    -inf,    std::numeric_limits<float>::quiet_NaN()})
        v.push_back(x);
    return v;
}

double ulps(float got, double ref) {
    if (ref == 0) return got == 0 ? 0 : 1e9;
    double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(ref)) - 23);
    return std::abs(got - ref) / ulp;
}

// Runs fn on the whole array and on pieces of 1, 7, 8, 9, 255 ... elements: same bytes.
template <typename Fn>
std::vector<float> run_whole_and_split(Fn fn, const std::vector<float>& x) {
    std::vector<float> whole(x.size());
    fn(x.data(), whole.data(), static_cast<int64_t>(x.size()));
    std::vector<float> split(x.size());
    const int64_t pieces[] = {1, 7, 8, 9, 255, 256, 257, 1000};
    int64_t pos = 0, i = 0;
    while (pos < static_cast<int64_t>(x.size())) {
        int64_t len = std::min<int64_t>(pieces[i++ % 8], static_cast<int64_t>(x.size()) - pos);
        fn(x.data() + pos, split.data() + pos, len);
        pos += len;
    }
    REQUIRE(std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)) == 0);
    std::vector<float> in_place = x;
    fn(in_place.data(), in_place.data(), static_cast<int64_t>(x.size()));
    REQUIRE(std::memcmp(whole.data(), in_place.data(), whole.size() * sizeof(float)) == 0);
    return whole;
}

}  // namespace

TEST_CASE("exp_f32: a few ulps, 0 below -87, inf above the float range, NaN kept",
          "[kernels][vec-math]") {
    INFO("kernels " << rt::simd_kernels().name);
    auto x = test_values();
    auto y = run_whole_and_split(rt::exp_f32, x);
    for (size_t i = 0; i < x.size(); ++i) {
        INFO("x = " << x[i] << ", got " << y[i]);
        if (std::isnan(x[i])) {
            REQUIRE(std::isnan(y[i]));
        } else if (x[i] < -87.0f) {
            REQUIRE(y[i] == 0.0f);
        } else if (x[i] > 88.7228f) {
            REQUIRE(std::isinf(y[i]));
        } else {
            REQUIRE(ulps(y[i], std::exp(static_cast<double>(x[i]))) <= 4.0);
        }
    }
}

TEST_CASE("sigmoid_f32: a few ulps on both sides, saturating, NaN kept", "[kernels][vec-math]") {
    INFO("kernels " << rt::simd_kernels().name);
    auto x = test_values();
    auto y = run_whole_and_split(rt::sigmoid_f32, x);
    for (size_t i = 0; i < x.size(); ++i) {
        INFO("x = " << x[i] << ", got " << y[i]);
        if (std::isnan(x[i])) {
            REQUIRE(std::isnan(y[i]));
            continue;
        }
        double ref = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
        if (x[i] < -87.0f) {
            REQUIRE(y[i] == 0.0f);  // exp(x) flushed to 0 (the true value is below 1.7e-38)
        } else {
            REQUIRE(ulps(y[i], ref) <= 6.0);
        }
    }
}

TEST_CASE("tanh_f32: close to libm, +-1 far out, NaN kept, the same bits however split",
          "[kernels][vec-math]") {
    auto x = test_values();
    auto y = run_whole_and_split(rt::tanh_f32, x);
    for (size_t i = 0; i < x.size(); ++i) {
        INFO("x = " << x[i] << ", got " << y[i]);
        if (std::isnan(x[i])) {
            REQUIRE(std::isnan(y[i]));
        } else {
            // Eigen's rational tanh: within 2e-7 absolute (a few ulps away from 0).
            const double ref = std::tanh(static_cast<double>(x[i]));
            REQUIRE(std::abs(y[i] - ref) <= 2e-7 + 4e-7 * std::abs(ref));
        }
    }
}
