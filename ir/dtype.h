// Element types edgepack understands, and one traits table indexed by them.
//
// The enum is dense and our own; the table maps each entry to its ONNX TensorProto code
// and its safetensors name. Sub-byte types (int4/uint4) are stored packed, two elements a
// byte, low nibble first (as ONNX does). Group-quantized encodings (scales + packed
// codes) are not element types: they are tensor encodings, added beside this table.
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

// Bytes needed for `count` elements (sub-byte types round up); nullopt on overflow or
// for strings.
[[nodiscard]] std::optional<uint64_t> storage_bytes(DType t, uint64_t count);

}  // namespace ep
