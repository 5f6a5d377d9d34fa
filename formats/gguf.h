// GGUF (llama.cpp / ggml's model file), read and write, field by field as ggml's
// docs/gguf.md specifies version 3 (version 2 has the same layout):
//
//   u32 magic          "GGUF" (0x46554747 little-endian)
//   u32 version        2 or 3 (1 had 32-bit counts and is refused; a big-endian file
//                      reads as a huge version and is refused naming the byte order)
//   u64 n_tensors
//   u64 n_kv
//   n_kv x  { string key; u32 value_type; value }
//            string = u64 length + that many bytes (no terminator)
//            value_type: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string,
//                        9 array (u32 element type + u64 count + elements; no nested
//                        arrays), 10 u64, 11 i64, 12 f64
//   n_tensors x { string name; u32 n_dims (1..4); u64 ne[n_dims]; u32 ggml_type;
//                 u64 offset (relative to the data section, a multiple of the alignment) }
//   padding to `general.alignment` (a u32 KV, a power of two; 32 when absent)
//   the data section: each tensor's bytes at its offset.
//
// ne[0] is the contiguous dimension (ggml order), so a tensor's numpy / IR shape is ne
// reversed: a llama weight [n_out, n_in] is stored with ne = {n_in, n_out}, each row an
// output channel. Quantized types pack ne[0] in blocks (ne[0] must be a multiple of the
// block size); ggml_type's block layouts are in ggml/src/ggml-common.h.
//
// The reader memory-maps the file and checks, before using it, every count (bounded by the
// bytes left), string length, dimension count, dimension (product overflow-checked), type,
// the alignment, each tensor's offset (aligned, inside the data section) and its byte
// range (no two tensors overlap), duplicate keys and tensor names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ir.h"
#include "ir/mapped_file.h"

namespace ep {

// ggml_type numbers as stored in the file (ggml.h). Gaps are removed types.
enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

// Dequantizes `n` blocks of `data` (n * type_size bytes) into n * block_size floats,
// bit for bit what the `gguf` Python package's gguf.quants.dequantize returns.
using GgmlDecodeFn = void (*)(const std::byte* data, size_t n_blocks, float* out);

struct GgmlTypeTraits {
    GgmlType type;
    std::string_view name;  // "Q4_K", as ggml and the gguf package name it
    uint32_t block_size;    // elements per block (1 for plain types)
    uint32_t type_size;     // bytes per block
    GgmlDecodeFn decode;    // null: read as its IR dtype (I8..I64, F64) without converting
    DType plain_dtype;      // the IR dtype of a plain type (F32, F16, BF16, I8..F64)
};

// The traits of a ggml type number, or null for one edgepack does not read (the IQ and
// ternary types, and Q8_1 / Q8_K, ggml's activation-only types).
[[nodiscard]] const GgmlTypeTraits* ggml_type_traits(uint32_t type);
// "Q4_K"; "type 19" for numbers without traits.
[[nodiscard]] std::string ggml_type_name(uint32_t type);

enum class GgufValueType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};
[[nodiscard]] std::string_view gguf_value_type_name(GgufValueType type);  // "uint32", ...

// One metadata value. Scalars are arrays of one element. Fixed-size elements are kept as
// their little-endian bytes, strings as bytes (not checked as UTF-8: ggml does not).
struct GgufValue {
    GgufValueType type = GgufValueType::U32;          // Array for arrays
    GgufValueType element_type = GgufValueType::U32;  // the element type (scalars: = type)
    uint64_t count = 1;
    std::vector<std::byte> raw;        // count x element size (fixed-size elements)
    std::vector<std::string> strings;  // count strings (String elements)
};

struct GgufTensorInfo {
    std::string name;
    std::vector<uint64_t> ne;  // ggml order: ne[0] contiguous
    uint32_t type = 0;         // ggml_type number
    uint64_t offset = 0;       // in the data section
    uint64_t bytes = 0;        // checked against the data section
};

struct GgufFile {
    uint32_t version = 3;
    std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order
    std::vector<GgufTensorInfo> tensors;                      // in file order
    uint64_t alignment = 32;
    uint64_t data_offset = 0;  // of the data section, in the file
    std::shared_ptr<const MappedFile> file;

    [[nodiscard]] const GgufValue* find(std::string_view key) const;
    [[nodiscard]] std::span<const std::byte> tensor_bytes(const GgufTensorInfo& t) const;
};

// Parses and checks the whole header (see the top of this file); throws InputError naming
// the file, and the key or tensor where there is one.
[[nodiscard]] GgufFile read_gguf_file(const std::filesystem::path& path);
// The same over bytes already in memory (`file` stays null); for tests and fuzzing.
[[nodiscard]] GgufFile parse_gguf(std::span<const std::byte> bytes);

// A GGUF file as a weights-only checkpoint (as a safetensors one: initializers only):
// F32 / F16 / BF16 / I8..I64 / F64 tensors as views of the mapping; Q8_0 as an int8g32
// encoded tensor, Q4_0 as int4g32, Q4_1 as int4g32m, Q4_K as q4_k and Q6_K as q6_k (the same
// values, no re-quantizing: the kEncodingBlocks table of gguf.cpp); every
// other type decoded to F32 by the reference decoders. The IR shape is ne reversed. Each
// metadata KV becomes one Model::metadata entry: key -> gguf_value_json(value).
[[nodiscard]] Model read_gguf(const std::filesystem::path& path);

// Decodes a tensor's bytes (ne's product elements) to floats; the type must have traits.
[[nodiscard]] std::vector<float> gguf_decode(const GgufTensorInfo& t, std::span<const std::byte> b);

// A metadata value as compact JSON text {"type":"uint32","value":32}, arrays as
// {"type":"array","element_type":"string","value":[...]}; a string that is not UTF-8 is
// given as {"hex": "..."} instead of a JSON string. gguf_value_from_json is its inverse
// (InputError naming `key` when the text is not of that form).
[[nodiscard]] std::string gguf_value_json(const GgufValue& value);
[[nodiscard]] GgufValue gguf_value_from_json(const std::string& key, const std::string& text);

// The ggml type a tensor is written as: F32 / F16 / BF16 (and the integer dtypes) as
// themselves; encoded tensors through the encoding -> ggml block table (int8g32 with f16
// scales -> Q8_0, int4g32 -> Q4_0, int4g32m -> Q4_1, q4_k -> Q4_K, q6_k -> Q6_K); nullopt
// with `why` set when it has no ggml form.
[[nodiscard]] std::optional<GgmlType> gguf_type_for(const Tensor& t, std::string* why);

// Writes model.graph.initializers (in order) and model.metadata: entries in the
// gguf_value_json form keep their types; any other entry is written as a string KV.
// `general.alignment` (default 32) aligns the data section and every tensor. Throws
// InputError naming the tensor for one without a ggml form (an encoding ggml has no block
// for, a graph with nodes). Atomic; mapped views are streamed.
void write_gguf(const Model& model, const std::filesystem::path& path);

}  // namespace ep
