#include "dtype.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "checked.h"
#include "error.h"

namespace ep {
namespace {

using K = DTypeKind;
constexpr std::array<DTypeTraits, static_cast<size_t>(DType::Count_)> kTraits = {{
    {DType::Undefined, "undefined", 0, "", 0, K::None},
    {DType::F64, "f64", 11, "F64", 64, K::Float},
    {DType::F32, "f32", 1, "F32", 32, K::Float},
    {DType::F16, "f16", 10, "F16", 16, K::Float},
    {DType::BF16, "bf16", 16, "BF16", 16, K::Float},
    {DType::F8E4M3FN, "f8e4m3fn", 17, "F8_E4M3", 8, K::Float},
    {DType::F8E4M3FNUZ, "f8e4m3fnuz", 18, "F8_E4M3FNUZ", 8, K::Float},
    {DType::F8E5M2, "f8e5m2", 19, "F8_E5M2", 8, K::Float},
    {DType::F8E5M2FNUZ, "f8e5m2fnuz", 20, "F8_E5M2FNUZ", 8, K::Float},
    {DType::I64, "i64", 7, "I64", 64, K::SignedInt},
    {DType::I32, "i32", 6, "I32", 32, K::SignedInt},
    {DType::I16, "i16", 5, "I16", 16, K::SignedInt},
    {DType::I8, "i8", 3, "I8", 8, K::SignedInt},
    {DType::U64, "u64", 13, "U64", 64, K::UnsignedInt},
    {DType::U32, "u32", 12, "U32", 32, K::UnsignedInt},
    {DType::U16, "u16", 4, "U16", 16, K::UnsignedInt},
    {DType::U8, "u8", 2, "U8", 8, K::UnsignedInt},
    {DType::Bool, "bool", 9, "BOOL", 8, K::Bool},
    {DType::String, "string", 8, "", 0, K::String},
    {DType::C64, "c64", 14, "C64", 64, K::Complex},
    {DType::C128, "c128", 15, "", 128, K::Complex},
    {DType::I4, "i4", 22, "", 4, K::SignedInt},
    {DType::U4, "u4", 21, "", 4, K::UnsignedInt},
    {DType::F4E2M1, "f4e2m1", 23, "", 4, K::Float},
    {DType::F8E8M0, "f8e8m0", 24, "", 8, K::Float},
    {DType::U2, "u2", 25, "", 2, K::UnsignedInt},
    {DType::I2, "i2", 26, "", 2, K::SignedInt},
}};

constexpr bool table_is_indexed_by_enum() {
    for (size_t i = 0; i < kTraits.size(); ++i)
        if (static_cast<size_t>(kTraits[i].dtype) != i) return false;
    return true;
}
static_assert(table_is_indexed_by_enum(), "kTraits must list every DType in enum order");

}  // namespace

const DTypeTraits& traits(DType t) {
    auto i = static_cast<size_t>(t);
    return kTraits[i < kTraits.size() ? i : 0];
}

std::optional<DType> dtype_from_onnx(int code) {
    if (code == 0) return std::nullopt;
    for (const auto& t : kTraits)
        if (t.onnx_code == code) return t.dtype;
    return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
    if (name.empty()) return std::nullopt;
    for (const auto& t : kTraits)
        if (t.safetensors_name == name) return t.dtype;
    return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& t : kTraits)
        if (t.name == name && t.dtype != DType::Undefined) return t.dtype;
    return std::nullopt;
}

namespace {

// The layout of one small float type: exponent and mantissa bits, bias, and which of
// IEEE's special values it keeps.
struct SmallFloat {
    int mantissa_bits;
    int bias;
    double max;          // largest finite value
    bool has_inf;        // e5m2 only
    bool unsigned_zero;  // the "fnuz" types: 0x80 is NaN, no -0
    uint8_t nan;         // the NaN a conversion writes (sign added where the type has one)
};

SmallFloat small_float(DType t) {
    switch (t) {
        case DType::F8E4M3FN:
            return {3, 7, 448.0, false, false, 0x7F};
        case DType::F8E4M3FNUZ:
            return {3, 8, 240.0, false, true, 0x80};
        case DType::F8E5M2:
            return {2, 15, 57344.0, true, false, 0x7E};
        case DType::F8E5M2FNUZ:
            return {2, 16, 57344.0, false, true, 0x80};
        case DType::F4E2M1:
            return {1, 1, 6.0, false, false, 0x08};
        default:
            throw InternalError(cat("dtype ", dtype_name(t), " is not a small float"));
    }
}

}  // namespace

float small_float_to_float(DType t, uint8_t bits) {
    if (t == DType::F8E8M0)
        return bits == 0xFF ? std::numeric_limits<float>::quiet_NaN()
                            : std::ldexp(1.0f, static_cast<int>(bits) - 127);
    const SmallFloat f = small_float(t);
    const int total = t == DType::F4E2M1 ? 4 : 8;
    const int exp_bits = total - 1 - f.mantissa_bits;
    const uint8_t sign_bit = static_cast<uint8_t>(1u << (total - 1));
    bits = static_cast<uint8_t>(bits & ((1u << total) - 1));
    if (f.unsigned_zero && bits == 0x80) return std::numeric_limits<float>::quiet_NaN();
    const bool negative = (bits & sign_bit) != 0;
    const int exp_field = (bits >> f.mantissa_bits) & ((1 << exp_bits) - 1);
    const int mantissa = bits & ((1 << f.mantissa_bits) - 1);
    const int exp_max = (1 << exp_bits) - 1;
    if (t == DType::F8E4M3FN && exp_field == exp_max && mantissa == (1 << f.mantissa_bits) - 1)
        return std::numeric_limits<float>::quiet_NaN();
    if (f.has_inf && exp_field == exp_max)
        return mantissa == 0 ? (negative ? -1.0f : 1.0f) * std::numeric_limits<float>::infinity()
                             : std::numeric_limits<float>::quiet_NaN();
    double v = exp_field == 0
                   ? std::ldexp(static_cast<double>(mantissa), 1 - f.bias - f.mantissa_bits)
                   : std::ldexp(1.0 + std::ldexp(static_cast<double>(mantissa), -f.mantissa_bits),
                                exp_field - f.bias);
    return static_cast<float>(negative ? -v : v);
}

uint8_t float_to_small_float(DType t, double v, bool saturate) {
    const SmallFloat f = small_float(t);
    const bool f4 = t == DType::F4E2M1;
    const uint8_t sign = std::signbit(v) ? (f4 ? 0x08 : 0x80) : 0x00;
    if (std::isnan(v)) return f.unsigned_zero || f4 ? f.nan : static_cast<uint8_t>(sign | f.nan);
    const int exp_bits = (f4 ? 3 : 7) - f.mantissa_bits;
    const int emin = 1 - f.bias;              // the smallest normal exponent
    auto encode = [&](double a) -> uint8_t {  // a: representable, finite, > 0
        int e = 0;
        (void)std::frexp(a, &e);
        --e;  // a = 1.m * 2^e
        if (e < emin)
            return static_cast<uint8_t>(sign |
                                        static_cast<int>(std::ldexp(a, f.mantissa_bits - emin)));
        int mantissa =
            static_cast<int>(std::ldexp(a, f.mantissa_bits - e)) - (1 << f.mantissa_bits);
        return static_cast<uint8_t>(sign | ((e + f.bias) << f.mantissa_bits) | mantissa);
    };
    const uint8_t max_bits = encode(f.max);
    auto overflow = [&]() -> uint8_t {
        if (saturate || f4) return max_bits;
        if (f.has_inf)
            return static_cast<uint8_t>(sign | (((1 << exp_bits) - 1) << f.mantissa_bits));
        return f.unsigned_zero ? f.nan : static_cast<uint8_t>(sign | f.nan);
    };
    double a = std::fabs(v);
    if (std::isinf(a)) return overflow();
    if (a == 0.0) return f.unsigned_zero ? uint8_t{0} : sign;
    int e = 0;
    (void)std::frexp(a, &e);
    --e;
    const int quantum_exp = std::max(e, emin) - f.mantissa_bits;
    double r = std::ldexp(std::nearbyint(std::ldexp(a, -quantum_exp)), quantum_exp);  // to even
    if (r > f.max) return overflow();
    if (r == 0.0) return f.unsigned_zero ? uint8_t{0} : sign;
    return encode(r);
}

uint8_t float_to_e8m0(float v, bool saturate, E8M0Rounding rounding) {
    uint32_t b = 0;
    std::memcpy(&b, &v, 4);
    uint32_t exponent = (b >> 23) & 0xFF;
    if (exponent == 0xFF) return 0xFF;  // NaN and inf
    bool round_up = false;
    if (rounding == E8M0Rounding::Up) {
        round_up = (b & 0x7FFFFF) != 0;
    } else if (rounding == E8M0Rounding::Nearest) {
        bool g = (b & 0x400000) != 0, r = (b & 0x200000) != 0, s = (b & 0x1FFFFF) != 0;
        round_up = g && (r || s || exponent > 0);
    }
    if (saturate && exponent == 0xFE) round_up = false;
    return static_cast<uint8_t>(exponent + (round_up ? 1 : 0));
}

std::optional<uint64_t> storage_bytes(DType t, uint64_t count) {
    int bits = traits(t).bits;
    if (bits == 0) return std::nullopt;
    auto total_bits = checked_mul(count, static_cast<uint64_t>(bits));
    if (!total_bits) return std::nullopt;
    return *total_bits / 8 + (*total_bits % 8 != 0 ? 1 : 0);
}

}  // namespace ep
