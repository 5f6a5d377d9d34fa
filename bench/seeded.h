// Seeded N(0, 1) values for the micro-benchmarks' weights and activations (their times do not
// depend on the values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace ep::bench {

inline std::vector<float> seeded(size_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(count);
    for (auto& x : v) x = d(rng);
    return v;
}

}  // namespace ep::bench
