// What the quantized operators share (ops_quantize.cpp, ops_quant_integer.cpp,
// ops_matmul_nbits.cpp): load/store of each quantized element type, the type dispatch,
// round-half-even with saturation, and reading scales and zero points.
//
// Quantized element types: int8, uint8, int16, uint16, int4 and uint4 (packed two a byte,
// low nibble first), int2 and uint2 (four a byte); int32 for DequantizeLinear. The float8 /
// float4 outputs of QuantizeLinear and inputs of DequantizeLinear convert through
// ir/dtype.h in ops_quantize.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ir/checked.h"
#include "runtime-check/kernels/saturate_round.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/op_context.h"

namespace ep::rt {

// Load/store of one quantized element type; 4-bit types read and write nibbles.
template <DType DT>
struct Q;

template <>
struct Q<DType::U8> {
    using storage = uint8_t;  // the element
    static constexpr int bits = 8;
    static constexpr int32_t lo = 0, hi = 255;
    static int32_t load(const std::byte* p, int64_t i) { return static_cast<uint8_t>(p[i]); }
    static void store(std::byte* p, int64_t i, int32_t v) { p[i] = static_cast<std::byte>(v); }
};
template <>
struct Q<DType::I8> {
    using storage = int8_t;  // the element
    static constexpr int bits = 8;
    static constexpr int32_t lo = -128, hi = 127;
    static int32_t load(const std::byte* p, int64_t i) { return static_cast<int8_t>(p[i]); }
    static void store(std::byte* p, int64_t i, int32_t v) { p[i] = static_cast<std::byte>(v); }
};
template <>
struct Q<DType::U16> {
    using storage = uint16_t;  // the element
    static constexpr int bits = 16;
    static constexpr int32_t lo = 0, hi = 65535;
    static int32_t load(const std::byte* p, int64_t i) {
        uint16_t v;
        std::memcpy(&v, p + i * 2, 2);
        return v;
    }
    static void store(std::byte* p, int64_t i, int32_t v) {
        auto u = static_cast<uint16_t>(v);
        std::memcpy(p + i * 2, &u, 2);
    }
};
template <>
struct Q<DType::I16> {
    using storage = int16_t;  // the element
    static constexpr int bits = 16;
    static constexpr int32_t lo = -32768, hi = 32767;
    static int32_t load(const std::byte* p, int64_t i) {
        int16_t v;
        std::memcpy(&v, p + i * 2, 2);
        return v;
    }
    static void store(std::byte* p, int64_t i, int32_t v) {
        auto u = static_cast<int16_t>(v);
        std::memcpy(p + i * 2, &u, 2);
    }
};
// Sub-byte elements (4 or 2 bits), 8 / Bits a byte, the first in the lowest bits; signed
// ones sign-extended on load.
template <int Bits, bool Signed>
struct PackedQ {
    using storage = int8_t;  // one element unpacked
    static constexpr int bits = Bits;
    static constexpr int per_byte = 8 / Bits, mask = (1 << Bits) - 1, sign = 1 << (Bits - 1);
    static constexpr int32_t lo = Signed ? -sign : 0, hi = Signed ? sign - 1 : mask;
    static int32_t load(const std::byte* p, int64_t i) {
        const auto u = static_cast<uint64_t>(i);
        const int32_t v = (static_cast<uint8_t>(p[u / per_byte]) >> ((u % per_byte) * Bits)) & mask;
        return Signed ? (v ^ sign) - sign : v;
    }
    // Read-modify-write of the shared byte: callers split work on multiples of per_byte.
    static void store(std::byte* p, int64_t i, int32_t v) {
        const auto u = static_cast<uint64_t>(i);
        auto b = static_cast<uint8_t>(p[u / per_byte]);
        const int shift = static_cast<int>(u % per_byte) * Bits;
        b = static_cast<uint8_t>((b & ~(mask << shift)) | ((v & mask) << shift));
        p[u / per_byte] = static_cast<std::byte>(b);
    }
};
template <>
struct Q<DType::U4> : PackedQ<4, false> {};
template <>
struct Q<DType::I4> : PackedQ<4, true> {};
template <>
struct Q<DType::U2> : PackedQ<2, false> {};
template <>
struct Q<DType::I2> : PackedQ<2, true> {};
template <>
struct Q<DType::I32> {
    using storage = int32_t;  // the element
    static constexpr int bits = 32;
    static constexpr int32_t lo = std::numeric_limits<int32_t>::min();
    static constexpr int32_t hi = std::numeric_limits<int32_t>::max();
    static int32_t load(const std::byte* p, int64_t i) {
        int32_t v;
        std::memcpy(&v, p + i * 4, 4);
        return v;
    }
    static void store(std::byte* p, int64_t i, int32_t v) { std::memcpy(p + i * 4, &v, 4); }
};

// Calls fn(Q<dt>{}) for a quantized integer type (int32 only when allowed).
template <typename Fn>
void dispatch_q(const OpContext& c, DType dt, bool allow_i32, const char* what, Fn&& fn) {
    switch (dt) {
        case DType::U8:
            return fn(Q<DType::U8>{});
        case DType::I8:
            return fn(Q<DType::I8>{});
        case DType::U16:
            return fn(Q<DType::U16>{});
        case DType::I16:
            return fn(Q<DType::I16>{});
        case DType::U4:
            return fn(Q<DType::U4>{});
        case DType::I4:
            return fn(Q<DType::I4>{});
        case DType::U2:
            return fn(Q<DType::U2>{});
        case DType::I2:
            return fn(Q<DType::I2>{});
        case DType::I32:
            if (allow_i32) return fn(Q<DType::I32>{});
            break;
        default:
            break;
    }
    c.fail(cat(what, " has type ", dtype_name(dt), "; expected one of uint8, int8, uint16, int16, ",
               "uint4, int4, uint2, int2", allow_i32 ? ", int32" : ""));
}

// Every element of an integer (quantized) tensor as int32.
inline std::vector<int32_t> read_q_values(const OpContext& c, const Tensor& t, const char* what) {
    std::vector<int32_t> v(static_cast<size_t>(t.element_count()));
    dispatch_q(c, t.dtype, true, what, [&](auto q) {
        const std::byte* p = t.data.bytes().data();
        for (size_t i = 0; i < v.size(); ++i) v[i] = q.load(p, static_cast<int64_t>(i));
    });
    return v;
}

// Every element of a float tensor (scales) as float.
inline std::vector<float> read_float_values(const OpContext& c, const Tensor& t, const char* what) {
    if (!is_float(t.dtype))
        c.fail(cat(what, " '", t.name, "' must be float, found ", dtype_name(t.dtype)));
    std::vector<float> v(static_cast<size_t>(t.element_count()));
    const std::byte* p = t.data.bytes().data();
    for (size_t i = 0; i < v.size(); ++i) v[i] = load_float(t.dtype, p, static_cast<int64_t>(i));
    return v;
}

inline void check_bytes(const OpContext& c, const Tensor& t, const char* what) {
    if (t.dtype == DType::String) c.fail(cat(what, " must not be a string tensor"));
    auto bytes = storage_bytes(t.dtype, static_cast<uint64_t>(t.element_count()));
    if (!bytes || *bytes != t.data.size())
        c.fail(cat(what, " '", t.name, "' holds ", t.data.size(), " bytes, ", dtype_name(t.dtype),
                   " ", shape_string(t.shape), " needs ", bytes ? *bytes : 0));
}

}  // namespace ep::rt
