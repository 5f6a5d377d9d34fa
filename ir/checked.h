// Overflow-checked arithmetic for everything computed from numbers read out of a file.
// A reader never multiplies a shape or adds an offset without going through these.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>

namespace ep {

[[nodiscard]] inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

[[nodiscard]] inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

// Product of dimensions; nullopt on a negative dimension or on overflow past int64.
[[nodiscard]] inline std::optional<uint64_t> checked_element_count(std::span<const int64_t> shape) {
    uint64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) return std::nullopt;
        auto r = checked_mul(n, static_cast<uint64_t>(d));
        if (!r || *r > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            return std::nullopt;
        n = *r;
    }
    return n;
}

}  // namespace ep
