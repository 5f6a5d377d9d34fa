#include "dtype.h"

#include <array>

#include "checked.h"

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

std::optional<uint64_t> storage_bytes(DType t, uint64_t count) {
    int bits = traits(t).bits;
    if (bits == 0) return std::nullopt;
    auto total_bits = checked_mul(count, static_cast<uint64_t>(bits));
    if (!total_bits) return std::nullopt;
    return *total_bits / 8 + (*total_bits % 8 != 0 ? 1 : 0);
}

}  // namespace ep
