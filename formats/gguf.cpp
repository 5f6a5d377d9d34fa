// GGUF read and write (contract and format in gguf.h).
//
// The reference decoders are ir/ggml_blocks.h's (shared with the encodings that are ggml
// blocks, ir/encoding.h).
#include "formats/gguf.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "ir/checked.h"
#include "ir/ggml_blocks.h"
#include "ir/output_file.h"
#include "ir/utf8.h"

namespace ep {
namespace {

using nlohmann::json;

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;      // GGML_MAX_DIMS
constexpr size_t kMaxWriteName = 63;  // llama.cpp refuses names of GGML_MAX_NAME (64) bytes

uint8_t u8(const std::byte* p) {
    return static_cast<uint8_t>(*p);
}

constexpr std::array<GgmlTypeTraits, 18> kGgmlTypes = {{
    {GgmlType::F32, "F32", 1, 4, ggml::decode_f32, DType::F32},
    {GgmlType::F16, "F16", 1, 2, ggml::decode_f16, DType::F16},
    {GgmlType::Q4_0, "Q4_0", 32, 18, ggml::decode_q4_0, DType::F32},
    {GgmlType::Q4_1, "Q4_1", 32, 20, ggml::decode_q4_1, DType::F32},
    {GgmlType::Q5_0, "Q5_0", 32, 22, ggml::decode_q5_0, DType::F32},
    {GgmlType::Q5_1, "Q5_1", 32, 24, ggml::decode_q5_1, DType::F32},
    {GgmlType::Q8_0, "Q8_0", 32, 34, ggml::decode_q8_0, DType::F32},
    {GgmlType::Q2_K, "Q2_K", 256, 84, ggml::decode_q2_k, DType::F32},
    {GgmlType::Q3_K, "Q3_K", 256, 110, ggml::decode_q3_k, DType::F32},
    {GgmlType::Q4_K, "Q4_K", 256, 144, ggml::decode_q4_k, DType::F32},
    {GgmlType::Q5_K, "Q5_K", 256, 176, ggml::decode_q5_k, DType::F32},
    {GgmlType::Q6_K, "Q6_K", 256, 210, ggml::decode_q6_k, DType::F32},
    {GgmlType::I8, "I8", 1, 1, nullptr, DType::I8},
    {GgmlType::I16, "I16", 1, 2, nullptr, DType::I16},
    {GgmlType::I32, "I32", 1, 4, nullptr, DType::I32},
    {GgmlType::I64, "I64", 1, 8, nullptr, DType::I64},
    {GgmlType::F64, "F64", 1, 8, nullptr, DType::F64},
    {GgmlType::BF16, "BF16", 1, 2, ggml::decode_bf16, DType::BF16},
}};

std::string_view type_name(GgmlType type) {
    const auto* t = ggml_type_traits(static_cast<uint32_t>(type));
    return t ? t->name : std::string_view("?");
}

// ggml types edgepack knows by name only (ggml.h): named in errors, never read.
std::string_view unsupported_type_name(uint32_t type) {
    static const std::map<uint32_t, std::string_view> names = {
        {9, "Q8_1"},   {15, "Q8_K"},   {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"},
        {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"},   {22, "IQ2_S"},  {23, "IQ4_XS"},
        {29, "IQ1_M"}, {34, "TQ1_0"},  {35, "TQ2_0"},   {39, "MXFP4"},
    };
    auto it = names.find(type);
    return it == names.end() ? std::string_view{} : it->second;
}

// --- Encoded tensors <-> ggml blocks -------------------------------------------------------
//
// The one table mapping an edgepack encoding (ir/encoding.h) onto a ggml block type whose
// values it reproduces exactly. `to_ggml` turns one stored row of the encoding into the
// row's ggml blocks (same size), `from_ggml` the reverse. Adding a K-quant encoding is one
// entry here.

void copy_row(const std::byte* in, size_t bytes, std::byte* out) {
    std::memcpy(out, in, bytes);
}
// Q4_0 and int4g32 store the same f16 d and the same nibble (q + 8) per element, Q4_1 and
// int4g32m the same f16 d and m and the same nibble q; only the nibble order differs: ggml
// puts element j in the low nibble of qs[j] and j + 16 in the high one, edgepack elements
// 2i and 2i + 1 in qs[i]. Head: the bytes before qs (2: d; 4: d, m), copied.
template <size_t Head>
void int4_to_ggml(const std::byte* in, size_t bytes, std::byte* out) {
    constexpr size_t size = Head + 16;
    for (size_t b = 0; b < bytes / size; ++b, in += size, out += size) {
        std::memcpy(out, in, Head);
        uint8_t nib[32];
        for (size_t i = 0; i < 16; ++i) {
            nib[2 * i] = u8(in + Head + i) & 0x0F;
            nib[2 * i + 1] = u8(in + Head + i) >> 4;
        }
        for (size_t j = 0; j < 16; ++j)
            out[Head + j] = static_cast<std::byte>(nib[j] | (nib[j + 16] << 4));
    }
}
template <size_t Head>
void ggml_to_int4(const std::byte* in, size_t bytes, std::byte* out) {
    constexpr size_t size = Head + 16;
    for (size_t b = 0; b < bytes / size; ++b, in += size, out += size) {
        std::memcpy(out, in, Head);
        uint8_t nib[32];
        for (size_t j = 0; j < 16; ++j) {
            nib[j] = u8(in + Head + j) & 0x0F;
            nib[j + 16] = u8(in + Head + j) >> 4;
        }
        for (size_t i = 0; i < 16; ++i)
            out[Head + i] = static_cast<std::byte>(nib[2 * i] | (nib[2 * i + 1] << 4));
    }
}

struct EncodingBlock {
    QScheme scheme;
    uint16_t group;
    DType scale_dtype;
    GgmlType type;
    void (*to_ggml)(const std::byte* in, size_t bytes, std::byte* out);
    void (*from_ggml)(const std::byte* in, size_t bytes, std::byte* out);
};
// The K-quant encodings and q5_0 / q5_1 / q2_k / q3_k / q5_k are ggml's blocks byte for
// byte (ir/encoding.h); the last five are read and written back, never made by a pass.
constexpr std::array<EncodingBlock, 10> kEncodingBlocks = {{
    {QScheme::Int8Sym, 32, DType::F16, GgmlType::Q8_0, copy_row, copy_row},
    {QScheme::Int4Sym, 32, DType::F16, GgmlType::Q4_0, int4_to_ggml<2>, ggml_to_int4<2>},
    {QScheme::Int4Min, 32, DType::F16, GgmlType::Q4_1, int4_to_ggml<4>, ggml_to_int4<4>},
    {QScheme::Q4K, 256, DType::F16, GgmlType::Q4_K, copy_row, copy_row},
    {QScheme::Q6K, 256, DType::F16, GgmlType::Q6_K, copy_row, copy_row},
    {QScheme::Q5_0, 32, DType::F16, GgmlType::Q5_0, copy_row, copy_row},
    {QScheme::Q5_1, 32, DType::F16, GgmlType::Q5_1, copy_row, copy_row},
    {QScheme::Q2K, 256, DType::F16, GgmlType::Q2_K, copy_row, copy_row},
    {QScheme::Q3K, 256, DType::F16, GgmlType::Q3_K, copy_row, copy_row},
    {QScheme::Q5K, 256, DType::F16, GgmlType::Q5_K, copy_row, copy_row},
}};

const EncodingBlock* block_for_encoding(const Encoding& e) {
    for (const auto& b : kEncodingBlocks)
        if (b.scheme == e.scheme && b.group == e.group && b.scale_dtype == e.scale_dtype) return &b;
    return nullptr;
}
const EncodingBlock* block_for_type(uint32_t type) {
    for (const auto& b : kEncodingBlocks)
        if (static_cast<uint32_t>(b.type) == type) return &b;
    return nullptr;
}
std::string encodings_with_blocks() {
    std::string list;
    for (const auto& b : kEncodingBlocks) {
        Encoding e;
        e.scheme = b.scheme;
        e.group = b.group;
        e.scale_dtype = b.scale_dtype;
        if (!list.empty()) list += ", ";
        list += cat(encoding_name(e), " (", type_name(b.type), ")");
    }
    return list;
}

// --- Reading --------------------------------------------------------------------------------

size_t value_size(GgufValueType t) {
    switch (t) {
        case GgufValueType::U8:
        case GgufValueType::I8:
        case GgufValueType::Bool:
            return 1;
        case GgufValueType::U16:
        case GgufValueType::I16:
            return 2;
        case GgufValueType::U32:
        case GgufValueType::I32:
        case GgufValueType::F32:
            return 4;
        case GgufValueType::U64:
        case GgufValueType::I64:
        case GgufValueType::F64:
            return 8;
        case GgufValueType::String:
        case GgufValueType::Array:
            return 0;
    }
    return 0;
}

class Cursor {
  public:
    explicit Cursor(std::span<const std::byte> bytes) : bytes_(bytes) {}
    [[nodiscard]] uint64_t position() const { return pos_; }
    [[nodiscard]] uint64_t left() const { return bytes_.size() - pos_; }
    std::span<const std::byte> take(uint64_t n, std::string_view what) {
        if (n > left())
            throw InputError(cat(what, " needs ", n, " bytes at offset ", pos_, ", but only ",
                                 left(), " remain (truncated file?)"));
        auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }
    template <typename T>
    T read(std::string_view what) {
        T v;
        std::memcpy(&v, take(sizeof(T), what).data(), sizeof(T));
        return v;
    }
    std::string string(std::string_view what) {
        uint64_t n = read<uint64_t>(cat(what, "'s length"));
        auto s = take(n, cat(what, " (", n, " bytes)"));
        return {reinterpret_cast<const char*>(s.data()), s.size()};
    }

  private:
    std::span<const std::byte> bytes_;
    uint64_t pos_ = 0;
};

GgufValueType read_value_type(Cursor& in, const std::string& where, bool element) {
    uint32_t t = in.read<uint32_t>(cat(where, "'s type"));
    if (t > static_cast<uint32_t>(GgufValueType::F64))
        throw InputError(
            cat(where, ": unknown value type ", t, " (GGUF has 0..12: uint8 .. float64)"));
    if (element && t == static_cast<uint32_t>(GgufValueType::Array))
        throw InputError(cat(where, ": an array of arrays (GGUF readers support none)"));
    return static_cast<GgufValueType>(t);
}

GgufValue read_value(Cursor& in, const std::string& key) {
    std::string where = cat("metadata '", printable_utf8(key), "'");
    GgufValue v;
    v.type = read_value_type(in, where, false);
    v.element_type = v.type;
    if (v.type == GgufValueType::Array) {
        v.element_type = read_value_type(in, cat(where, " element"), true);
        v.count = in.read<uint64_t>(cat(where, "'s element count"));
    }
    if (v.element_type == GgufValueType::String) {
        // Every string takes at least its 8-byte length: a count the rest of the file
        // cannot hold is refused before anything is allocated.
        if (v.count > in.left() / 8)
            throw InputError(
                cat(where, ": ", v.count, " strings cannot fit in the ", in.left(), " bytes left"));
        v.strings.reserve(v.count);
        for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(in.string(where));
        return v;
    }
    size_t size = value_size(v.element_type);
    if (v.count > in.left() / size)
        throw InputError(cat(where, ": ", v.count, " ", gguf_value_type_name(v.element_type),
                             " values cannot fit in the ", in.left(), " bytes left"));
    auto bytes = in.take(v.count * size, where);
    v.raw.assign(bytes.begin(), bytes.end());
    if (v.element_type == GgufValueType::Bool)
        for (std::byte b : v.raw)
            if (b != std::byte{0} && b != std::byte{1})
                throw InputError(
                    cat(where, ": a bool must be 0 or 1, found ", static_cast<int>(b)));
    return v;
}

// Throws unless `s` is UTF-8, naming it.
void require_utf8(const std::string& s, const std::string& what) {
    if (!valid_utf8(s))
        throw InputError(cat(what, " '", printable_utf8(s), "' is not valid UTF-8 (byte ",
                             invalid_utf8_offset(s), ")"));
}

GgufFile parse_bytes(std::span<const std::byte> bytes) {
    Cursor in(bytes);
    GgufFile f;
    uint32_t magic = in.read<uint32_t>("the magic");
    if (magic != kMagic) throw InputError("not a GGUF file: the first 4 bytes are not \"GGUF\"");
    f.version = in.read<uint32_t>("the version");
    if (f.version == 1)
        throw InputError("GGUF version 1 (32-bit counts) is not supported; re-save as version 3");
    if (f.version > 0xFFFF && (f.version & 0xFFFF) == 0)
        throw InputError(cat("GGUF version ", f.version,
                             " reads as a big-endian file; only little-endian GGUF is supported"));
    if (f.version != 2 && f.version != 3)
        throw InputError(cat("GGUF version ", f.version, " is not supported (2 and 3 are)"));
    uint64_t n_tensors = in.read<uint64_t>("the tensor count");
    uint64_t n_kv = in.read<uint64_t>("the metadata count");
    // Lower bounds on the bytes each entry takes: a KV 8 (key length) + 4 (type) + 1, a
    // tensor info 8 (name length) + 4 (n_dims) + 8 (ne[0]) + 4 (type) + 8 (offset).
    if (n_kv > in.left() / 13)
        throw InputError(cat("metadata count ", n_kv, " cannot fit in the ", in.left(),
                             " bytes of the file after the header"));
    if (n_tensors > in.left() / 32)
        throw InputError(cat("tensor count ", n_tensors, " cannot fit in the ", in.left(),
                             " bytes of the file after the header"));

    std::set<std::string> keys;
    f.metadata.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string key = in.string(cat("metadata key ", i));
        require_utf8(key, cat("metadata key ", i));
        if (!keys.insert(key).second)
            throw InputError(cat("metadata key '", key, "' appears twice"));
        GgufValue v = read_value(in, key);
        f.metadata.emplace_back(std::move(key), std::move(v));
    }
    if (const GgufValue* a = f.find("general.alignment")) {
        if (a->type != GgufValueType::U32)
            throw InputError(cat("metadata 'general.alignment' must be a uint32, found ",
                                 gguf_value_type_name(a->type)));
        uint32_t v;
        std::memcpy(&v, a->raw.data(), 4);
        if (v == 0 || (v & (v - 1)) != 0)
            throw InputError(
                cat("metadata 'general.alignment' is ", v, "; it must be a power of two"));
        f.alignment = v;
    }

    std::set<std::string> names;
    f.tensors.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensorInfo t;
        t.name = in.string(cat("tensor ", i, "'s name"));
        require_utf8(t.name, cat("tensor ", i, "'s name"));
        std::string where = cat("tensor '", t.name, "'");
        if (!names.insert(t.name).second) throw InputError(cat(where, " appears twice"));
        uint32_t n_dims = in.read<uint32_t>(cat(where, "'s dimension count"));
        if (n_dims == 0 || n_dims > kMaxDims)
            throw InputError(
                cat(where, ": ", n_dims, " dimensions (GGUF allows 1 to ", kMaxDims, ")"));
        uint64_t elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            uint64_t ne = in.read<uint64_t>(cat(where, "'s dimension ", d));
            auto product = checked_mul(elements, ne);
            if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || !product ||
                *product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw InputError(cat(where, ": the dimensions' product overflows at dimension ", d,
                                     " (", ne, ")"));
            elements = *product;
            t.ne.push_back(ne);
        }
        t.type = in.read<uint32_t>(cat(where, "'s type"));
        const GgmlTypeTraits* tt = ggml_type_traits(t.type);
        if (!tt) {
            auto name = unsupported_type_name(t.type);
            throw InputError(name.empty()
                                 ? cat(where, ": unknown ggml type ", t.type)
                                 : cat(where, ": ggml type ", name, " (", t.type,
                                       ") is not supported (edgepack reads F32, F16, BF16, "
                                       "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, I8..I64, F64)"));
        }
        if (t.ne[0] % tt->block_size != 0)
            throw InputError(cat(where, ": ", tt->name, " packs blocks of ", tt->block_size,
                                 " along ne[0], but ne[0] is ", t.ne[0]));
        auto bytes = checked_mul(elements / tt->block_size, tt->type_size);
        if (!bytes) throw InputError(cat(where, ": its byte size overflows"));
        t.bytes = *bytes;
        t.offset = in.read<uint64_t>(cat(where, "'s offset"));
        if (t.offset % f.alignment != 0)
            throw InputError(cat(where, ": offset ", t.offset,
                                 " is not a multiple of the alignment ", f.alignment));
        f.tensors.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    uint64_t header_end = in.position();
    auto padded = checked_add(header_end, f.alignment - 1);
    if (!padded) throw InputError("the data section's offset overflows");
    f.data_offset = *padded / f.alignment * f.alignment;
    uint64_t data_size = f.data_offset <= bytes.size() ? bytes.size() - f.data_offset : 0;
    if (f.data_offset > bytes.size() && !f.tensors.empty())
        throw InputError(cat("the data section would start at ", f.data_offset,
                             ", past the end of the file (", bytes.size(), " bytes)"));

    std::vector<const GgufTensorInfo*> by_offset;
    for (const auto& t : f.tensors) {
        auto end = checked_add(t.offset, t.bytes);
        if (!end || *end > data_size)
            throw InputError(cat("tensor '", t.name, "': bytes [", t.offset, ", +", t.bytes,
                                 ") run past the end of the data section (", data_size, " bytes)"));
        by_offset.push_back(&t);
    }
    std::stable_sort(by_offset.begin(), by_offset.end(),
                     [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const auto* a = by_offset[i - 1];
        const auto* b = by_offset[i];
        if (b->offset < a->offset + a->bytes && b->bytes > 0 && a->bytes > 0)
            throw InputError(cat("tensor '", b->name, "' at offset ", b->offset,
                                 " overlaps tensor '", a->name, "' [", a->offset, ", ",
                                 a->offset + a->bytes, ")"));
    }
    return f;
}

// --- Metadata as JSON -------------------------------------------------------------------

template <typename T>
T raw_at(const GgufValue& v, uint64_t i) {
    T x;
    std::memcpy(&x, v.raw.data() + i * sizeof(T), sizeof(T));
    return x;
}

json float_json(double x, uint64_t bits, int width) {
    if (std::isfinite(x)) return x;
    std::string hex = cat("0x");
    static const char* digits = "0123456789abcdef";
    for (int s = width * 4 - 4; s >= 0; s -= 4) hex += digits[(bits >> s) & 0xF];
    return json{{"bits", hex}};
}

json element_json(const GgufValue& v, uint64_t i) {
    switch (v.element_type) {
        case GgufValueType::U8:
            return raw_at<uint8_t>(v, i);
        case GgufValueType::I8:
            return raw_at<int8_t>(v, i);
        case GgufValueType::U16:
            return raw_at<uint16_t>(v, i);
        case GgufValueType::I16:
            return raw_at<int16_t>(v, i);
        case GgufValueType::U32:
            return raw_at<uint32_t>(v, i);
        case GgufValueType::I32:
            return raw_at<int32_t>(v, i);
        case GgufValueType::U64:
            return raw_at<uint64_t>(v, i);
        case GgufValueType::I64:
            return raw_at<int64_t>(v, i);
        case GgufValueType::F32:
            return float_json(raw_at<float>(v, i), raw_at<uint32_t>(v, i), 8);
        case GgufValueType::F64:
            return float_json(raw_at<double>(v, i), raw_at<uint64_t>(v, i), 16);
        case GgufValueType::Bool:
            return raw_at<uint8_t>(v, i) != 0;
        case GgufValueType::String: {
            const std::string& s = v.strings[i];
            if (valid_utf8(s)) return s;
            std::string hex;
            static const char* digits = "0123456789abcdef";
            for (unsigned char c : s) {
                hex += digits[c >> 4];
                hex += digits[c & 0xF];
            }
            return json{{"hex", hex}};
        }
        case GgufValueType::Array:
            break;
    }
    throw InternalError("GGUF value of type array inside an array");
}

std::optional<GgufValueType> value_type_from_name(std::string_view name) {
    for (uint32_t t = 0; t <= static_cast<uint32_t>(GgufValueType::F64); ++t)
        if (gguf_value_type_name(static_cast<GgufValueType>(t)) == name)
            return static_cast<GgufValueType>(t);
    return std::nullopt;
}

template <typename T>
void append_raw(GgufValue& v, T x) {
    auto b = std::as_bytes(std::span(&x, 1));
    v.raw.insert(v.raw.end(), b.begin(), b.end());
}

uint64_t parse_hex(const std::string& s, const std::string& what) {
    if (s.size() < 3 || s.size() > 18 || s[0] != '0' || s[1] != 'x')
        throw InputError(cat(what, ": bits \"", s, "\" is not a hexadecimal number 0x..."));
    return std::stoull(s.substr(2), nullptr, 16);
}

void append_element(GgufValue& v, const json& x, const std::string& what) {
    auto integer = [&](int64_t lo, uint64_t hi) -> json {
        bool ok = x.is_number_unsigned()
                      ? x.get<uint64_t>() <= hi
                      : x.is_number_integer() && x.get<int64_t>() >= lo &&
                            (x.get<int64_t>() < 0 || static_cast<uint64_t>(x.get<int64_t>()) <= hi);
        if (!ok)
            throw InputError(
                cat(what, ": ", x.dump(), " is not a ", gguf_value_type_name(v.element_type)));
        return x;
    };
    auto number = [&](int width) -> std::pair<double, std::optional<uint64_t>> {
        if (x.is_object() && x.contains("bits") && x["bits"].is_string())
            return {0.0, parse_hex(x["bits"].get<std::string>(), what)};
        if (!x.is_number()) throw InputError(cat(what, ": ", x.dump(), " is not a number"));
        (void)width;
        return {x.get<double>(), std::nullopt};
    };
    switch (v.element_type) {
        case GgufValueType::U8:
            append_raw(v, static_cast<uint8_t>(integer(0, 0xFF).get<uint64_t>()));
            return;
        case GgufValueType::I8:
            append_raw(v, static_cast<int8_t>(integer(-128, 127).get<int64_t>()));
            return;
        case GgufValueType::U16:
            append_raw(v, static_cast<uint16_t>(integer(0, 0xFFFF).get<uint64_t>()));
            return;
        case GgufValueType::I16:
            append_raw(v, static_cast<int16_t>(integer(-32768, 32767).get<int64_t>()));
            return;
        case GgufValueType::U32:
            append_raw(v, static_cast<uint32_t>(integer(0, 0xFFFFFFFF).get<uint64_t>()));
            return;
        case GgufValueType::I32:
            append_raw(
                v, static_cast<int32_t>(
                       integer(std::numeric_limits<int32_t>::min(), 0x7FFFFFFF).get<int64_t>()));
            return;
        case GgufValueType::U64:
            append_raw(v, integer(0, std::numeric_limits<uint64_t>::max()).get<uint64_t>());
            return;
        case GgufValueType::I64:
            append_raw(v, integer(std::numeric_limits<int64_t>::min(),
                                  static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                              .get<int64_t>());
            return;
        case GgufValueType::F32: {
            auto [d, bits] = number(8);
            if (bits)
                append_raw(v, static_cast<uint32_t>(*bits));
            else
                append_raw(v, static_cast<float>(d));
            return;
        }
        case GgufValueType::F64: {
            auto [d, bits] = number(16);
            if (bits)
                append_raw(v, *bits);
            else
                append_raw(v, d);
            return;
        }
        case GgufValueType::Bool:
            if (!x.is_boolean()) throw InputError(cat(what, ": ", x.dump(), " is not a bool"));
            append_raw(v, static_cast<uint8_t>(x.get<bool>() ? 1 : 0));
            return;
        case GgufValueType::String:
            if (x.is_string()) {
                v.strings.push_back(x.get<std::string>());
            } else if (x.is_object() && x.contains("hex") && x["hex"].is_string()) {
                std::string hex = x["hex"].get<std::string>(), s;
                if (hex.size() % 2) throw InputError(cat(what, ": odd-length hex string"));
                for (size_t i = 0; i < hex.size(); i += 2)
                    s += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
                v.strings.push_back(std::move(s));
            } else {
                throw InputError(cat(what, ": ", x.dump().substr(0, 80), " is not a string"));
            }
            return;
        case GgufValueType::Array:
            break;
    }
    throw InputError(cat(what, ": an array of arrays"));
}

// --- Writing -------------------------------------------------------------------------------

class HeaderBuffer {
  public:
    template <typename T>
    void put(T v) {
        auto b = std::as_bytes(std::span(&v, 1));
        bytes.insert(bytes.end(), b.begin(), b.end());
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        auto b = std::as_bytes(std::span(s.data(), s.size()));
        bytes.insert(bytes.end(), b.begin(), b.end());
    }
    void put_value(const GgufValue& v) {
        put<uint32_t>(static_cast<uint32_t>(v.type));
        if (v.type == GgufValueType::Array) {
            put<uint32_t>(static_cast<uint32_t>(v.element_type));
            put<uint64_t>(v.count);
        }
        if (v.element_type == GgufValueType::String)
            for (const auto& s : v.strings) put_string(s);
        else
            bytes.insert(bytes.end(), v.raw.begin(), v.raw.end());
    }
    std::vector<std::byte> bytes;
};

uint64_t align_up(uint64_t n, uint64_t alignment) {
    auto padded = checked_add(n, alignment - 1);
    if (!padded) throw InputError("the file's size overflows");
    return *padded / alignment * alignment;
}

struct OutgoingTensor {
    const Tensor* tensor;
    GgmlType type;
    std::vector<uint64_t> ne;
    uint64_t bytes;
    uint64_t offset;
};

void write_file(const Model& model, const std::filesystem::path& path) {
    if (!model.graph.nodes.empty())
        throw InputError(cat("a model with ", model.graph.nodes.size(),
                             " nodes cannot be written as GGUF (weights only); write .onnx"));
    std::vector<std::pair<std::string, GgufValue>> kv;
    std::set<std::string> keys;
    uint64_t alignment = kDefaultAlignment;
    for (const auto& [key, text] : model.metadata) {
        if (!keys.insert(key).second)
            throw InputError(cat("metadata key '", key, "' appears twice"));
        GgufValue v;
        try {
            v = gguf_value_from_json(key, text);
        } catch (const InputError&) {
            // Not a typed GGUF value (metadata of an ONNX or safetensors source): a string.
            v.type = v.element_type = GgufValueType::String;
            v.strings = {text};
        }
        if (key == "general.alignment") {
            if (v.type != GgufValueType::U32)
                throw InputError("metadata 'general.alignment' must be a uint32");
            uint32_t a;
            std::memcpy(&a, v.raw.data(), 4);
            if (a == 0 || (a & (a - 1)) != 0)
                throw InputError(
                    cat("metadata 'general.alignment' is ", a, "; it must be a power of two"));
            alignment = a;
        }
        kv.emplace_back(key, std::move(v));
    }

    std::vector<OutgoingTensor> tensors;
    std::set<std::string_view> names;
    uint64_t offset = 0;
    for (const Tensor& t : model.graph.initializers) {
        std::string why;
        auto type = gguf_type_for(t, &why);
        if (!type) throw InputError(cat("tensor '", t.name, "': ", why));
        if (t.name.size() > kMaxWriteName)
            throw InputError(cat("tensor '", t.name, "': the name has ", t.name.size(),
                                 " bytes; llama.cpp reads names of at most ", kMaxWriteName));
        if (!names.insert(t.name).second)
            throw InputError(cat("tensor '", t.name, "' appears twice"));
        t.check_consistent();
        OutgoingTensor o{&t, *type, {}, 0, 0};
        if (t.shape.empty()) o.ne.push_back(1);
        for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it)
            o.ne.push_back(static_cast<uint64_t>(*it));
        o.bytes = t.data.size();
        o.offset = offset;
        offset = align_up(offset + o.bytes, alignment);
        tensors.push_back(std::move(o));
    }

    HeaderBuffer h;
    h.put<uint32_t>(kMagic);
    h.put<uint32_t>(3);
    h.put<uint64_t>(tensors.size());
    h.put<uint64_t>(kv.size());
    for (const auto& [key, v] : kv) {
        h.put_string(key);
        h.put_value(v);
    }
    for (const auto& o : tensors) {
        h.put_string(o.tensor->name);
        h.put<uint32_t>(static_cast<uint32_t>(o.ne.size()));
        for (uint64_t ne : o.ne) h.put<uint64_t>(ne);
        h.put<uint32_t>(static_cast<uint32_t>(o.type));
        h.put<uint64_t>(o.offset);
    }
    h.bytes.resize(align_up(h.bytes.size(), alignment), std::byte{0});

    OutputFile out(path);
    out.write(std::span<const std::byte>(h.bytes));
    for (const auto& o : tensors) {
        const Tensor& t = *o.tensor;
        const EncodingBlock* block = t.is_encoded() ? block_for_encoding(t.encoding) : nullptr;
        if (block && block->to_ggml != copy_row) {
            std::vector<std::byte> converted(o.bytes);
            block->to_ggml(t.data.bytes().data(), o.bytes, converted.data());
            out.write(std::span<const std::byte>(converted));
        } else {
            write_tensor_bytes(out, t.data);
        }
        out.write_zeros(static_cast<size_t>(align_up(o.bytes, alignment) - o.bytes));
    }
    out.commit();
}

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
    for (const auto& t : kGgmlTypes)
        if (static_cast<uint32_t>(t.type) == type) return &t;
    return nullptr;
}

std::string ggml_type_name(uint32_t type) {
    if (const auto* t = ggml_type_traits(type)) return std::string(t->name);
    auto name = unsupported_type_name(type);
    return name.empty() ? cat("type ", type) : std::string(name);
}

std::string_view gguf_value_type_name(GgufValueType type) {
    static constexpr std::array<std::string_view, 13> names = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64"};
    auto i = static_cast<uint32_t>(type);
    return i < names.size() ? names[i] : std::string_view("unknown");
}

const GgufValue* GgufFile::find(std::string_view key) const {
    for (const auto& [k, v] : metadata)
        if (k == key) return &v;
    return nullptr;
}

std::span<const std::byte> GgufFile::tensor_bytes(const GgufTensorInfo& t) const {
    return file->bytes().subspan(static_cast<size_t>(data_offset + t.offset),
                                 static_cast<size_t>(t.bytes));
}

GgufFile parse_gguf(std::span<const std::byte> bytes) {
    return parse_bytes(bytes);
}

GgufFile read_gguf_file(const std::filesystem::path& path) {
    auto file = MappedFile::open(path);
    return with_context(path.string(), [&] {
        GgufFile f = parse_bytes(file->bytes());
        f.file = file;
        return f;
    });
}

std::vector<float> gguf_decode(const GgufTensorInfo& t, std::span<const std::byte> b) {
    const GgmlTypeTraits* tt = ggml_type_traits(t.type);
    if (!tt || !tt->decode)
        throw InputError(cat("tensor '", t.name, "': ggml type ", ggml_type_name(t.type),
                             " has no float decoder"));
    size_t blocks = b.size() / tt->type_size;
    std::vector<float> out(blocks * tt->block_size);
    tt->decode(b.data(), blocks, out.data());
    return out;
}

Model read_gguf(const std::filesystem::path& path) {
    GgufFile f = read_gguf_file(path);
    return with_context(path.string(), [&] {
        Model model;
        model.format = SourceFormat::Safetensors;  // a weights-only checkpoint
        for (const auto& [key, v] : f.metadata)
            model.metadata.emplace_back(key, gguf_value_json(v));
        model.graph.initializers.reserve(f.tensors.size());
        for (const auto& info : f.tensors) {
            const GgmlTypeTraits& tt = *ggml_type_traits(info.type);
            Tensor t;
            t.name = info.name;
            for (auto it = info.ne.rbegin(); it != info.ne.rend(); ++it)
                t.shape.push_back(static_cast<int64_t>(*it));
            auto bytes = f.tensor_bytes(info);
            size_t offset = static_cast<size_t>(f.data_offset + info.offset);
            const EncodingBlock* block = block_for_type(info.type);
            if (tt.plain_dtype != DType::F32 || tt.type == GgmlType::F32) {
                t.dtype = tt.plain_dtype;
                size_t align = static_cast<size_t>(std::clamp(traits(t.dtype).bits / 8, 1, 8));
                if (reinterpret_cast<uintptr_t>(bytes.data()) % align == 0)
                    t.data = TensorData::view(f.file, offset, bytes.size());
                else
                    t.data = TensorData::owned({bytes.begin(), bytes.end()});
            } else if (block && t.shape.size() >= 2) {
                t.dtype = DType::F32;
                t.encoding.scheme = block->scheme;
                t.encoding.group = block->group;
                t.encoding.scale_dtype = block->scale_dtype;
                if (block->from_ggml == copy_row &&
                    reinterpret_cast<uintptr_t>(bytes.data()) % 2 == 0) {
                    t.data = TensorData::view(f.file, offset, bytes.size());
                } else {
                    std::vector<std::byte> stored(bytes.size());
                    block->from_ggml(bytes.data(), bytes.size(), stored.data());
                    t.data = TensorData::owned(std::move(stored));
                }
            } else {
                auto values = gguf_decode(info, bytes);
                t = make_f32_tensor(t.name, t.shape, values);
            }
            t.check_consistent();
            model.graph.initializers.push_back(std::move(t));
        }
        return model;
    });
}

std::string gguf_value_json(const GgufValue& v) {
    json j;
    j["type"] = gguf_value_type_name(v.type);
    if (v.type == GgufValueType::Array) {
        j["element_type"] = gguf_value_type_name(v.element_type);
        json values = json::array();
        for (uint64_t i = 0; i < v.count; ++i) values.push_back(element_json(v, i));
        j["value"] = std::move(values);
    } else {
        j["value"] = element_json(v, 0);
    }
    return j.dump();
}

GgufValue gguf_value_from_json(const std::string& key, const std::string& text) {
    std::string what = cat("metadata '", key, "'");
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception&) {
        throw InputError(cat(what, ": not a GGUF value in JSON"));
    }
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || !j.contains("value"))
        throw InputError(cat(what, ": not a GGUF value {\"type\", \"value\"}"));
    auto type = value_type_from_name(j["type"].get<std::string>());
    if (!type) throw InputError(cat(what, ": unknown GGUF value type ", j["type"].dump()));
    GgufValue v;
    v.type = v.element_type = *type;
    if (*type == GgufValueType::Array) {
        if (!j.contains("element_type") || !j["element_type"].is_string() || !j["value"].is_array())
            throw InputError(cat(what, ": an array needs element_type and a list value"));
        auto element = value_type_from_name(j["element_type"].get<std::string>());
        if (!element || *element == GgufValueType::Array)
            throw InputError(cat(what, ": bad element_type ", j["element_type"].dump()));
        v.element_type = *element;
        v.count = j["value"].size();
        for (const json& x : j["value"]) append_element(v, x, what);
    } else {
        v.count = 1;
        append_element(v, j["value"], what);
    }
    return v;
}

std::optional<GgmlType> gguf_type_for(const Tensor& t, std::string* why) {
    auto fail = [&](std::string reason) -> std::optional<GgmlType> {
        if (why) *why = std::move(reason);
        return std::nullopt;
    };
    if (t.encoding.is_sparse())
        return fail("sparse storage has no GGUF form (write its dense form)");
    if (!t.is_encoded()) {
        for (const auto& tt : kGgmlTypes)
            if (tt.plain_dtype == t.dtype && tt.block_size == 1 && t.dtype != DType::Undefined)
                return tt.type;
        return fail(cat("dtype ", dtype_name(t.dtype), " has no ggml type"));
    }
    const EncodingBlock* block = block_for_encoding(t.encoding);
    if (!block)
        return fail(cat("encoding ", encoding_name(t.encoding),
                        " has no ggml block form (GGUF output takes ", encodings_with_blocks(),
                        "; quantize with one of those, or leave the tensor float)"));
    if (t.encoding.axis != 1 || t.shape.size() < 2)
        return fail(cat("encoding ", encoding_name(t.encoding),
                        " runs along axis 0 of a [K, N] weight; ggml blocks run along the "
                        "last axis (quantize with axis 1, as for a [N, K] checkpoint weight)"));
    if (t.shape.back() % block->group != 0)
        return fail(cat("the last dimension ", t.shape.back(), " is not a multiple of ",
                        block->group, ", so ", type_name(block->type),
                        " blocks cannot tile it (ggml has no padded block; leave the tensor "
                        "float with quantize-weights' exclude)"));
    return block->type;
}

void write_gguf(const Model& model, const std::filesystem::path& path) {
    with_context(path.string(), [&] { write_file(model, path); });
}

}  // namespace ep
