// Element types edgepack understands, and one traits table indexed by them.
//
// The enum is dense and our own; the table maps each entry to its ONNX TensorProto code and its
// safetensors name. Sub-byte types (int4/uint4/float4e2m1: two elements a byte; int2/uint2: four)
// are stored packed, the first element in the lowest bits (as ONNX does). float8 / float4 scalars
// convert as ONNX defines them (onnx.numpy_helper, ml_dtypes: round to nearest even; `saturate`
// clamps to the largest finite value). Group-quantized encodings (scales + packed codes) are not
// element types: they are tensor encodings, added beside this table.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ep {

enum class DType : uint8_t {
    Undefined,
    F64,
    F32,
    F16,
    BF16,
    F8E4M3FN,
    F8E4M3FNUZ,
    F8E5M2,
    F8E5M2FNUZ,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
    String,
    C64,
    C128,
    I4,
    U4,
    F4E2M1,
    F8E8M0,
    U2,
    I2,
    Count_  // keep last
};

enum class DTypeKind : uint8_t { None, Float, SignedInt, UnsignedInt, Bool, String, Complex };

struct DTypeTraits {
    DType dtype;
    std::string_view name;              // "f32": used in reports and the CLI
    int onnx_code;                      // TensorProto.DataType; 0 if ONNX has none
    std::string_view safetensors_name;  // "F32"; empty if safetensors has none
    int bits;                           // storage bits per element; 0 for strings
    DTypeKind kind;
};

[[nodiscard]] const DTypeTraits& traits(DType t);
[[nodiscard]] inline std::string_view dtype_name(DType t) {
    return traits(t).name;
}
[[nodiscard]] std::optional<DType> dtype_from_onnx(int code);
[[nodiscard]] std::optional<DType> dtype_from_safetensors(std::string_view name);
[[nodiscard]] std::optional<DType> dtype_from_name(std::string_view name);

// float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0) and float4e2m1 bits to float, exactly.
[[nodiscard]] float small_float_to_float(DType t, uint8_t bits);
// float to float8 / float4e2m1 bits, rounding to nearest even (ml_dtypes' astype). Without
// `saturate`, a value past the largest finite one becomes inf where the type has one, else
// NaN; with it, the largest finite value of that sign (NaN stays NaN). float4e2m1 has no
// inf or NaN: it always saturates, NaN giving -0 as ml_dtypes does.
[[nodiscard]] uint8_t float_to_small_float(DType t, double v, bool saturate);
// float8e8m0 (a power of two 2^(e-127), 0xFF NaN) from float as onnx.numpy_helper's
// to_float8e8m0: the float's exponent rounded "up" (any fraction), "down" or to "nearest";
// `saturate` keeps 0xFE from rounding into 0xFF.
enum class E8M0Rounding : uint8_t { Up, Down, Nearest };
[[nodiscard]] uint8_t float_to_e8m0(float v, bool saturate, E8M0Rounding rounding);

// Bytes needed for `count` elements (sub-byte types round up); nullopt on overflow or
// for strings.
[[nodiscard]] std::optional<uint64_t> storage_bytes(DType t, uint64_t count);

}  // namespace ep
