// Encodings (encoding.h): names, sizes, the scalar reference quantizer that defines the
// bytes, and quantize_rtn / quantize_tensor_rtn, which write the same bytes through the
// optimised kernels of encoding_simd.cpp when the CPU has them (EDGEPACK_ISA=baseline in
// the environment forces the reference).
#include "encoding.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "checked.h"
#include "encoding_ggml.h"
#include "encoding_simd.h"
#include "error.h"
#include "ggml_blocks.h"
#include "sparse.h"
#include "tensor.h"

namespace ep {
namespace {

constexpr std::array<QSchemeTraits, static_cast<size_t>(QScheme::Count_)> kSchemes{{
    {QScheme::None, "none", 32, true, false, 0, 0, 0, 0, true},
    {QScheme::Int8Channel, "int8", 8, true, false, -127, 127, 0, 0, true},
    {QScheme::Int8Sym, "int8", 8, true, true, -127, 127, 0, 0, true},
    {QScheme::Int8Asym, "int8", 8, false, true, 0, 255, 0, 0, true},
    {QScheme::Int4Sym, "int4", 4, true, true, -8, 7, 0, 0, true},
    {QScheme::Int4Asym, "int4", 4, false, true, 0, 15, 0, 0, true},
    {QScheme::Int4Min, "int4", 4, false, true, 0, 15, 0, 0, true},
    {QScheme::Q4K, "q4_k", 4, false, true, 0, 15, 256, 32, true},
    {QScheme::Q6K, "q6_k", 6, true, true, -32, 31, 256, 16, true},
    {QScheme::Q5_0, "q5_0", 5, true, true, -16, 15, 32, 0, false},
    {QScheme::Q5_1, "q5_1", 5, false, true, 0, 31, 32, 0, false},
    {QScheme::Q2K, "q2_k", 2, false, true, 0, 3, 256, 16, false},
    {QScheme::Q3K, "q3_k", 3, true, true, -4, 3, 256, 16, false},
    {QScheme::Q5K, "q5_k", 5, false, true, 0, 31, 256, 32, false},
}};
static_assert([] {
    for (size_t i = 0; i < kSchemes.size(); ++i)
        if (static_cast<size_t>(kSchemes[i].scheme) != i) return false;
    return true;
}());

bool valid_group(int g) {
    return g == 32 || g == 64 || g == 128;
}

uint16_t scale_bits(const Encoding& e, float scale) {
    return e.scale_dtype == DType::BF16 ? float_to_bf16(scale) : float_to_half(scale);
}
float scale_value(const Encoding& e, uint16_t bits) {
    return e.scale_dtype == DType::BF16 ? bf16_to_float(bits) : half_to_float(bits);
}

// Offset of the codes inside a block (after d, and zero + reserved for asymmetric ones).
size_t codes_offset(const Encoding& e) {
    return traits(e.scheme).symmetric ? 2 : 4;
}

}  // namespace

const QSchemeTraits& traits(QScheme scheme) {
    auto i = static_cast<size_t>(scheme);
    if (i >= kSchemes.size()) throw InternalError(cat("bad QScheme ", i));
    return kSchemes[i];
}

namespace {
std::string sparse_suffix(const Sparsity& s) {
    if (s.layout == SparseLayout::Bitmask) return "bitmask";
    if (s.layout == SparseLayout::NM) return cat(int(s.n), ":", int(s.m));
    return "";
}

// "2:4" / "bitmask" -> the layout (kept left 0).
std::optional<Sparsity> parse_sparse(std::string_view s) {
    if (s == "bitmask") return Sparsity{SparseLayout::Bitmask, 0, 0, 0};
    auto colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size() || s.size() > 5)
        return std::nullopt;
    int v[2] = {0, 0};
    std::string_view parts[2] = {s.substr(0, colon), s.substr(colon + 1)};
    for (int i = 0; i < 2; ++i)
        for (char c : parts[i]) {
            if (c < '0' || c > '9') return std::nullopt;
            v[i] = v[i] * 10 + (c - '0');
        }
    if (v[0] < 1 || v[1] > 64 || v[0] >= v[1]) return std::nullopt;
    return Sparsity{SparseLayout::NM, static_cast<uint8_t>(v[0]), static_cast<uint8_t>(v[1]), 0};
}
}  // namespace

std::string encoding_name(const Encoding& e) {
    if (e.is_sparse()) {
        if (e.scheme == QScheme::None) return sparse_suffix(e.sparse);
        return cat(encoding_name(e.dense()), "+", sparse_suffix(e.sparse));
    }
    const auto& t = traits(e.scheme);
    if (e.scheme == QScheme::None) return "none";
    if (!t.grouped) return "int8c";
    if (t.super_block != 0) return std::string(t.name);
    std::string s =
        cat(t.name, "g", e.group, e.scheme == QScheme::Int4Min ? "m" : (t.symmetric ? "" : "a"));
    if (e.scale_dtype == DType::BF16) s += "-bf16";
    return s;
}

std::optional<Encoding> encoding_from_name(std::string_view name) {
    if (name == "none") return Encoding{};
    if (auto plus = name.find('+'); plus != std::string_view::npos) {
        auto dense = encoding_from_name(name.substr(0, plus));
        auto sparse = parse_sparse(name.substr(plus + 1));
        if (!dense || dense->scheme == QScheme::None || !sparse) return std::nullopt;
        dense->sparse = *sparse;
        return dense;
    }
    if (auto sparse = parse_sparse(name)) {
        Encoding e;
        e.sparse = *sparse;
        return e;
    }
    if (name == "int8c") return Encoding{QScheme::Int8Channel, 0, DType::F32, 1, {}};
    for (const auto& t : kSchemes)
        if (t.super_block != 0 && name == t.name)
            return Encoding{t.scheme, static_cast<uint16_t>(t.super_block), DType::F16, 1, {}};
    Encoding e;
    if (name.ends_with("-bf16")) {
        e.scale_dtype = DType::BF16;
        name.remove_suffix(5);
    }
    bool with_min = name.starts_with("int4g") && name.ends_with("m");
    if (with_min) name.remove_suffix(1);
    bool asym = name.ends_with("a");
    if (asym) name.remove_suffix(1);
    int bits = 0;
    if (name.starts_with("int4g"))
        bits = 4;
    else if (name.starts_with("int8g"))
        bits = 8;
    else
        return std::nullopt;
    name.remove_prefix(5);
    int g = 0;
    for (char c : name) {
        if (c < '0' || c > '9' || g > 1000) return std::nullopt;
        g = g * 10 + (c - '0');
    }
    if (!valid_group(g)) return std::nullopt;
    e.group = static_cast<uint16_t>(g);
    e.scheme = bits == 4 ? (with_min ? QScheme::Int4Min
                            : asym   ? QScheme::Int4Asym
                                     : QScheme::Int4Sym)
                         : (asym ? QScheme::Int8Asym : QScheme::Int8Sym);
    return e;
}

namespace {
// The largest reduction axis an encoding names: rows are the dimensions before it, so any
// axis >= 1 is the same row-major layout; 7 bounds what a file may claim.
constexpr uint8_t kMaxEncodingAxis = 7;
}  // namespace

void check_encoding(const Encoding& e, const std::string& what) {
    auto i = static_cast<size_t>(e.scheme);
    if (i >= kSchemes.size()) throw InputError(cat(what, ": unknown quantization scheme ", i));
    if (e.scheme == QScheme::None) {
        if (e.is_sparse() && e.axis > 1)
            throw InputError(cat(what, ": encoding axis ", int(e.axis), " (expected 0 or 1)"));
        return;
    }
    if (e.axis > kMaxEncodingAxis)
        throw InputError(cat(what, ": encoding axis ", int(e.axis), " (expected 0 to ",
                             int(kMaxEncodingAxis), ")"));
    if (e.is_sparse() && (e.scheme == QScheme::Int4Min || traits(e.scheme).super_block != 0))
        throw InputError(cat(what, ": ", encoding_name(e.dense()),
                             " cannot be stored sparse (its grid need not hold 0.0)"));
    if (traits(e.scheme).super_block != 0) {
        if (e.group != traits(e.scheme).super_block || e.scale_dtype != DType::F16)
            throw InputError(cat(what, ": ", traits(e.scheme).name, " has super-blocks of ",
                                 traits(e.scheme).super_block, " with f16 scales, found group ",
                                 e.group, " and ", dtype_name(e.scale_dtype), " scales"));
    } else if (traits(e.scheme).grouped) {
        if (!valid_group(e.group))
            throw InputError(cat(what, ": group size ", e.group, " (expected 32, 64 or 128)"));
        if (e.scale_dtype != DType::F16 && e.scale_dtype != DType::BF16)
            throw InputError(
                cat(what, ": group scales must be f16 or bf16, found ", dtype_name(e.scale_dtype)));
    } else if (e.scale_dtype != DType::F32 || e.group != 0) {
        throw InputError(cat(what, ": int8c has f32 scales and no group"));
    }
}

size_t block_bytes(const Encoding& e) {
    switch (e.scheme) {
        case QScheme::Q4K:
            return sizeof(BlockQ4K);
        case QScheme::Q6K:
            return sizeof(BlockQ6K);
        case QScheme::Q5_0:
            return 22;
        case QScheme::Q5_1:
            return 24;
        case QScheme::Q2K:
            return 84;
        case QScheme::Q3K:
            return 110;
        case QScheme::Q5K:
            return 176;
        default:
            break;
    }
    const auto& t = traits(e.scheme);
    return codes_offset(e) + static_cast<size_t>(e.group) * t.bits / 8;
}

bool is_kquant(const Encoding& e) {
    return e.scheme == QScheme::Q4K || e.scheme == QScheme::Q6K;
}

namespace {
// The ggml decoder of an encoding that is a ggml block type byte for byte; null otherwise.
void (*ggml_decoder(const Encoding& e))(const std::byte*, size_t, float*) {
    switch (e.scheme) {
        case QScheme::Q4K:
            return ggml::decode_q4_k;
        case QScheme::Q6K:
            return ggml::decode_q6_k;
        case QScheme::Q5_0:
            return ggml::decode_q5_0;
        case QScheme::Q5_1:
            return ggml::decode_q5_1;
        case QScheme::Q2K:
            return ggml::decode_q2_k;
        case QScheme::Q3K:
            return ggml::decode_q3_k;
        case QScheme::Q5K:
            return ggml::decode_q5_k;
        default:
            return nullptr;
    }
}

void check_quantizable(const Encoding& e) {
    if (!traits(e.scheme).quantizable)
        throw InputError(cat("encoding ", encoding_name(e),
                             " is kept from a GGUF source only: edgepack has no quantizer for "
                             "it (quantize with int4g32, int4g32m, q4_k, q6_k or int8g32)"));
}
}  // namespace

int64_t param_width(const Encoding& e) {
    const auto& t = traits(e.scheme);
    return t.sub_block != 0 ? t.sub_block : e.group;
}

int64_t params_per_row(const Encoding& e, int64_t cols) {
    if (!traits(e.scheme).grouped) return 1;
    return blocks_per_row(e, cols) * (e.group / param_width(e));
}

int64_t blocks_per_row(const Encoding& e, int64_t cols) {
    return (cols + e.group - 1) / e.group;
}

uint64_t row_bytes(const Encoding& e, int64_t cols) {
    return static_cast<uint64_t>(blocks_per_row(e, cols)) * block_bytes(e);
}

std::optional<uint64_t> encoded_bytes(const Encoding& e, int64_t rows, int64_t cols, DType dtype) {
    if (rows < 0 || cols < 0) return std::nullopt;
    if (e.is_sparse()) {
        auto s = sparse_sections(e, dtype, rows, cols);
        if (!s) return std::nullopt;
        return s->total;
    }
    auto r = static_cast<uint64_t>(rows), c = static_cast<uint64_t>(cols);
    if (e.scheme == QScheme::Int8Channel) {
        auto codes = checked_mul(r, c);
        if (!codes) return std::nullopt;
        auto padded = checked_add(*codes, (4 - *codes % 4) % 4);
        auto scales = checked_mul(r, uint64_t{4});
        if (!padded || !scales) return std::nullopt;
        return checked_add(*padded, *scales);
    }
    return checked_mul(r, row_bytes(e, cols));
}

double bits_per_weight(const Encoding& e, int64_t rows, int64_t cols) {
    auto bytes = encoded_bytes(e, rows, cols);
    double n = static_cast<double>(rows) * static_cast<double>(cols);
    return bytes && n > 0 ? static_cast<double>(*bytes) * 8.0 / n : 0.0;
}

EncodedDims encoded_dims(const Encoding& e, std::span<const int64_t> shape,
                         const std::string& what) {
    if (shape.size() < 2)
        throw InputError(cat(what, ": a quantized tensor needs at least 2 dimensions, found ",
                             shape_string(shape)));
    if (e.axis == 0) {
        if (shape.size() != 2)
            throw InputError(
                cat(what, ": encoding axis 0 needs a 2-D tensor, found ", shape_string(shape)));
        return {shape[1], shape[0]};
    }
    if (e.axis >= shape.size())
        throw InputError(cat(what, ": encoding axis ", int(e.axis), " needs a tensor of rank ",
                             int(e.axis) + 1, " or more, found ", shape_string(shape)));
    auto rows = checked_element_count(shape.first(e.axis));
    auto rest = checked_element_count(shape.subspan(e.axis));
    if (!rows || !rest) throw InputError(cat(what, ": shape ", shape_string(shape), " overflows"));
    return {static_cast<int64_t>(*rows), static_cast<int64_t>(*rest)};
}

float round_scale(const Encoding& e, float scale) {
    if (e.scale_dtype == DType::F32) return scale;
    return scale_value(e, scale_bits(e, scale));
}

QParams choose_qparams(const Encoding& e, std::span<const float> values) {
    const auto& t = traits(e.scheme);
    QParams p;
    if (t.super_block != 0)
        throw InternalError(cat(t.name, ": parameters come from a super-block (quantize_rtn)"));
    if (e.scheme == QScheme::Int4Min) {
        // ggml's quantize_row_q4_1_ref: the group's own range (not widened to 0).
        float lo = values.empty() ? 0.0f : values[0], hi = lo;
        for (float v : values) {
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        p.scale = round_scale(e, (hi - lo) / 15.0f);
        p.min = round_scale(e, lo);
        return p;
    }
    if (t.symmetric) {
        float m = 0.0f;  // the value of largest magnitude (first on ties)
        for (float v : values)
            if (std::fabs(v) > std::fabs(m)) m = v;
        float d = e.scheme == QScheme::Int4Sym ? m / -8.0f : std::fabs(m) / 127.0f;
        p.scale = round_scale(e, d);
        return p;
    }
    float lo = 0.0f, hi = 0.0f;
    for (float v : values) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    float d = (hi - lo) / static_cast<float>(t.qmax);
    p.scale = round_scale(e, d);
    if (p.scale != 0.0f) {
        float z = std::round(-lo / p.scale);
        p.zero = static_cast<int>(std::clamp(z, 0.0f, static_cast<float>(t.qmax)));
    }
    return p;
}

int quantize_value(const Encoding& e, float x, const QParams& p) {
    const auto& t = traits(e.scheme);
    if (!t.quantizable) check_quantizable(e);
    if (e.scheme == QScheme::Int4Min || is_kquant(e)) {
        // Nearest point of the grid d * q + m (int4gGm), d * q - min (q4_k), d * q (q6_k).
        const float v = e.scheme == QScheme::Int4Min ? (x - p.min) / p.scale
                        : e.scheme == QScheme::Q4K   ? (x + p.min) / p.scale
                                                     : x / p.scale;
        if (p.scale == 0.0f || !std::isfinite(v)) return 0;
        const float bounded = std::clamp(v, -1.0e6f, 1.0e6f);
        const int q = e.scheme == QScheme::Int4Min ? static_cast<int>(std::round(bounded))
                                                   : detail::ggml_nearest_int(bounded);
        return std::clamp(q, t.qmin, t.qmax);
    }
    if (p.scale == 0.0f || !std::isfinite(x / p.scale)) return t.symmetric ? 0 : p.zero;
    float q = std::round(x / p.scale) + static_cast<float>(p.zero);
    return static_cast<int>(std::clamp(q, static_cast<float>(t.qmin), static_cast<float>(t.qmax)));
}

void pack_row(const Encoding& e, std::span<const int> codes, std::span<const QParams> params,
              std::span<std::byte> out) {
    const auto& t = traits(e.scheme);
    auto cols = static_cast<int64_t>(codes.size());
    if (t.super_block != 0)
        throw InternalError("pack_row: K-quant rows are written by set_row_codes");
    if (!t.grouped) {
        // int8c: the row's codes only; the caller places the scale.
        if (out.size() != codes.size()) throw InternalError("pack_row: int8c size");
        for (size_t i = 0; i < codes.size(); ++i)
            out[i] = static_cast<std::byte>(static_cast<int8_t>(codes[i]));
        return;
    }
    int64_t nb = blocks_per_row(e, cols);
    size_t bb = block_bytes(e), off = codes_offset(e);
    if (out.size() != static_cast<size_t>(nb) * bb || params.size() != static_cast<size_t>(nb))
        throw InternalError("pack_row: size");
    std::memset(out.data(), 0, out.size());
    for (int64_t b = 0; b < nb; ++b) {
        auto* block = reinterpret_cast<uint8_t*>(out.data() + b * bb);
        const QParams& p = params[static_cast<size_t>(b)];
        uint16_t d = scale_bits(e, p.scale);
        std::memcpy(block, &d, 2);
        if (e.scheme == QScheme::Int4Min) {
            uint16_t m = scale_bits(e, p.min);
            std::memcpy(block + 2, &m, 2);
        } else if (!t.symmetric) {
            block[2] = static_cast<uint8_t>(p.zero);
        }
        uint8_t* qs = block + off;
        const int pad =
            e.scheme == QScheme::Int4Min ? quantize_value(e, 0.0f, p) : (t.symmetric ? 0 : p.zero);
        for (int64_t i = 0; i < e.group; ++i) {
            int64_t c = b * e.group + i;
            // Padding past the row's end stores the code of 0.0.
            int q = c < cols ? codes[static_cast<size_t>(c)] : pad;
            if (t.bits == 8) {
                qs[i] = static_cast<uint8_t>(t.symmetric ? static_cast<uint8_t>(int8_t(q))
                                                         : static_cast<uint8_t>(q));
            } else {
                auto nib = static_cast<uint8_t>((t.symmetric ? q + 8 : q) & 0xF);
                qs[i / 2] |= static_cast<uint8_t>(i % 2 == 0 ? nib : nib << 4);
            }
        }
    }
}

std::vector<std::byte> quantize_rtn_reference(const Encoding& e, std::span<const float> w,
                                              int64_t rows, int64_t cols) {
    check_quantizable(e);
    const auto& t = traits(e.scheme);
    auto total = encoded_bytes(e, rows, cols);
    if (!total || w.size() != static_cast<size_t>(rows * cols))
        throw InternalError("quantize_rtn: size");
    std::vector<std::byte> out(*total);
    std::vector<int> codes(static_cast<size_t>(cols));
    if (!t.grouped) {
        auto scale_at = static_cast<size_t>(*total - static_cast<uint64_t>(rows) * 4);
        for (int64_t r = 0; r < rows; ++r) {
            auto row = w.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols));
            QParams p = choose_qparams(e, row);
            for (int64_t c = 0; c < cols; ++c)
                codes[static_cast<size_t>(c)] = quantize_value(e, row[static_cast<size_t>(c)], p);
            pack_row(
                e, codes, {},
                std::span(out).subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)));
            std::memcpy(out.data() + scale_at + static_cast<size_t>(r) * 4, &p.scale, 4);
        }
        return out;
    }
    int64_t nb = blocks_per_row(e, cols);
    uint64_t rb = row_bytes(e, cols);
    if (detail::has_ggml_rtn(e)) {
        for (int64_t r = 0; r < rows; ++r)
            detail::ggml_rtn_blocks(e, w.data() + r * cols, cols, nb,
                                    reinterpret_cast<uint8_t*>(out.data()) + r * rb);
        return out;
    }
    std::vector<QParams> params(static_cast<size_t>(nb));
    for (int64_t r = 0; r < rows; ++r) {
        auto row = w.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols));
        for (int64_t b = 0; b < nb; ++b) {
            int64_t c0 = b * e.group, c1 = std::min<int64_t>(cols, c0 + e.group);
            auto group = row.subspan(static_cast<size_t>(c0), static_cast<size_t>(c1 - c0));
            QParams p = choose_qparams(e, group);
            params[static_cast<size_t>(b)] = p;
            for (int64_t c = c0; c < c1; ++c)
                codes[static_cast<size_t>(c)] = quantize_value(e, row[static_cast<size_t>(c)], p);
        }
        pack_row(e, codes, params,
                 std::span(out).subspan(static_cast<size_t>(r) * rb, static_cast<size_t>(rb)));
    }
    return out;
}

namespace detail {
namespace {

// The reference, block by block: exactly what quantize_rtn_reference does for each group.
void blocks_reference(const Encoding& e, const float* x, int64_t len, int64_t nblocks,
                      uint8_t* out) {
    if (has_ggml_rtn(e)) return ggml_rtn_blocks(e, x, len, nblocks, out);
    const size_t bb = block_bytes(e);
    std::vector<int> codes(e.group);
    for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t n = std::min<int64_t>(e.group, len - b * e.group);
        const auto group = std::span(x + b * e.group, static_cast<size_t>(n));
        const QParams p = choose_qparams(e, group);
        for (int64_t i = 0; i < n; ++i)
            codes[static_cast<size_t>(i)] = quantize_value(e, group[static_cast<size_t>(i)], p);
        pack_row(e, std::span(codes.data(), static_cast<size_t>(n)), std::span(&p, 1),
                 std::span(reinterpret_cast<std::byte*>(out) + static_cast<size_t>(b) * bb, bb));
    }
}

void int8c_row_reference(const Encoding& e, const float* x, int64_t cols, uint8_t* codes,
                         uint8_t* scale) {
    const auto row = std::span(x, static_cast<size_t>(cols));
    const QParams p = choose_qparams(e, row);
    for (size_t c = 0; c < row.size(); ++c)
        codes[c] = static_cast<uint8_t>(static_cast<int8_t>(quantize_value(e, row[c], p)));
    std::memcpy(scale, &p.scale, 4);
}

void transpose_reference(const float* src, int64_t lds, int64_t m, int64_t n, float* dst,
                         int64_t ldd) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) dst[j * ldd + i] = src[i * lds + j];
}

}  // namespace

const RtnKernels& rtn_reference_kernels() {
    static const RtnKernels k{"scalar", blocks_reference, int8c_row_reference, transpose_reference};
    return k;
}

}  // namespace detail

namespace {

bool isa_forced_baseline() {
    const char* isa = std::getenv("EDGEPACK_ISA");
    return isa != nullptr && std::strcmp(isa, "baseline") == 0;
}

// The kernels quantize_rtn uses for `e`: optimised entries where there are some, the
// reference's elsewhere; isa names the one that quantizes (blocks, or int8c rows). The
// transpose does not depend on `e` (Encoding{} gives it alone).
detail::RtnKernels rtn_kernels(const Encoding& e) {
    const auto& ref = detail::rtn_reference_kernels();
    if (isa_forced_baseline()) return ref;
    detail::RtnKernels k = detail::rtn_avx2_kernels(e);
    const bool fast = traits(e.scheme).grouped ? k.blocks != nullptr : k.int8c_row != nullptr;
    if (!fast) k.isa = ref.isa;
    if (!k.blocks) k.blocks = ref.blocks;
    if (!k.int8c_row) k.int8c_row = ref.int8c_row;
    if (!k.transpose) k.transpose = ref.transpose;
    return k;
}

// dst = the transpose of the m x n matrix src (dst n x m), in tiles that stay in cache.
void transpose_tiled(const detail::RtnKernels& k, const float* src, int64_t m, int64_t n,
                     float* dst) {
    constexpr int64_t kTile = 64;
    for (int64_t i0 = 0; i0 < m; i0 += kTile)
        for (int64_t j0 = 0; j0 < n; j0 += kTile)
            k.transpose(src + i0 * n + j0, n, std::min(kTile, m - i0), std::min(kTile, n - j0),
                        dst + j0 * m + i0, m);
}

// The RTN encoding of an axis-0 weight: src is the logical [cols, rows] matrix (a MatMul
// [K, N] weight), stored row r = logical column r. Transposes tile by tile into a bounded
// scratch and quantizes each tile's blocks there: same bytes as quantize_rtn on the
// transposed matrix, without a transposed copy of the whole tensor.
std::vector<std::byte> quantize_rtn_transposed(const Encoding& e, std::span<const float> src,
                                               int64_t rows, int64_t cols) {
    const auto total = encoded_bytes(e, rows, cols);
    if (!total || src.size() != static_cast<size_t>(rows * cols))
        throw InternalError("quantize_rtn_transposed: size");
    const detail::RtnKernels k = rtn_kernels(e);
    std::vector<std::byte> out(*total);
    auto* o = reinterpret_cast<uint8_t*>(out.data());
    if (!traits(e.scheme).grouped) {
        // int8c: a row's scale needs the whole row; chunks of whole rows (<= 1 MiB scratch).
        const int64_t chunk =
            std::clamp<int64_t>((int64_t{1} << 18) / std::max<int64_t>(cols, 1), 1, 64);
        std::vector<float> scratch(static_cast<size_t>(chunk * cols));
        const uint64_t scale_at = *total - static_cast<uint64_t>(rows) * 4;
        for (int64_t n0 = 0; n0 < rows; n0 += chunk) {
            const int64_t nn = std::min(chunk, rows - n0);
            k.transpose(src.data() + n0, rows, cols, nn, scratch.data(), cols);
            for (int64_t j = 0; j < nn; ++j)
                k.int8c_row(e, scratch.data() + j * cols, cols, o + (n0 + j) * cols,
                            o + scale_at + static_cast<uint64_t>(n0 + j) * 4);
        }
        return out;
    }
    // Tiles of kTileK (whole groups) x kTileN of the [cols, rows] source: 256 KiB, in L2;
    // 2 KiB of each source row at a time (wider tiles measured faster than 128 x 64).
    constexpr int64_t kTileK = 128, kTileN = 512;
    std::vector<float> tile(static_cast<size_t>(kTileK * kTileN));
    const uint64_t rb = row_bytes(e, cols);
    const size_t bb = block_bytes(e);
    for (int64_t k0 = 0; k0 < cols; k0 += kTileK) {
        const int64_t kn = std::min(kTileK, cols - k0);
        const int64_t b0 = k0 / e.group, nb = (kn + e.group - 1) / e.group;
        for (int64_t n0 = 0; n0 < rows; n0 += kTileN) {
            const int64_t nn = std::min(kTileN, rows - n0);
            k.transpose(src.data() + k0 * rows + n0, rows, kn, nn, tile.data(), kTileK);
            for (int64_t j = 0; j < nn; ++j)
                k.blocks(e, tile.data() + j * kTileK, kn, nb,
                         o + static_cast<uint64_t>(n0 + j) * rb + static_cast<uint64_t>(b0) * bb);
        }
    }
    return out;
}

}  // namespace

std::string_view quantize_rtn_isa(const Encoding& e) {
    return rtn_kernels(e).isa;
}

std::vector<std::byte> quantize_rtn(const Encoding& e, std::span<const float> w, int64_t rows,
                                    int64_t cols) {
    check_quantizable(e);
    const detail::RtnKernels k = rtn_kernels(e);
    if (std::strcmp(k.isa, "scalar") == 0) return quantize_rtn_reference(e, w, rows, cols);
    const auto total = encoded_bytes(e, rows, cols);
    if (!total || w.size() != static_cast<size_t>(rows * cols))
        throw InternalError("quantize_rtn: size");
    std::vector<std::byte> out(*total);
    auto* o = reinterpret_cast<uint8_t*>(out.data());
    if (!traits(e.scheme).grouped) {
        const uint64_t scale_at = *total - static_cast<uint64_t>(rows) * 4;
        for (int64_t r = 0; r < rows; ++r)
            k.int8c_row(e, w.data() + r * cols, cols, o + r * cols,
                        o + scale_at + static_cast<uint64_t>(r) * 4);
        return out;
    }
    const int64_t nb = blocks_per_row(e, cols);
    const uint64_t rb = row_bytes(e, cols);
    for (int64_t r = 0; r < rows; ++r)
        k.blocks(e, w.data() + r * cols, cols, nb, o + static_cast<uint64_t>(r) * rb);
    return out;
}

QParams row_qparams(const Encoding& e, std::span<const std::byte> data, int64_t rows, int64_t cols,
                    int64_t r, int64_t b) {
    const auto& t = traits(e.scheme);
    QParams p;
    if (!t.grouped) {
        uint64_t codes = static_cast<uint64_t>(rows * cols);
        size_t at = static_cast<size_t>(codes + (4 - codes % 4) % 4 + static_cast<uint64_t>(r) * 4);
        std::memcpy(&p.scale, data.data() + at, 4);
        return p;
    }
    const int64_t per_block = e.group / param_width(e);
    const auto* block =
        reinterpret_cast<const uint8_t*>(data.data() + static_cast<size_t>(r) * row_bytes(e, cols) +
                                         static_cast<size_t>(b / per_block) * block_bytes(e));
    if (t.super_block != 0) {
        if (!is_kquant(e))
            throw InternalError(cat("row_qparams: ", encoding_name(e), " has no QParams"));
        return detail::kquant_params(e, block, b % per_block);
    }
    uint16_t d;
    std::memcpy(&d, block, 2);
    p.scale = scale_value(e, d);
    if (e.scheme == QScheme::Int4Min) {
        std::memcpy(&d, block + 2, 2);
        p.min = scale_value(e, d);
    } else if (!t.symmetric) {
        p.zero = block[2];
    }
    return p;
}

int row_code(const Encoding& e, std::span<const std::byte> data, int64_t rows, int64_t cols,
             int64_t r, int64_t c) {
    (void)rows;
    const auto& t = traits(e.scheme);
    if (!t.grouped) return static_cast<int8_t>(data[static_cast<size_t>(r * cols + c)]);
    int64_t b = c / e.group, i = c % e.group;
    if (t.super_block != 0 && !is_kquant(e))
        throw InternalError(cat("row_code: ", encoding_name(e), " has no codes"));
    if (t.super_block != 0)
        return detail::kquant_code(e,
                                   reinterpret_cast<const uint8_t*>(
                                       data.data() + static_cast<size_t>(r) * row_bytes(e, cols) +
                                       static_cast<size_t>(b) * block_bytes(e)),
                                   i);
    const auto* qs =
        reinterpret_cast<const uint8_t*>(data.data() + static_cast<size_t>(r) * row_bytes(e, cols) +
                                         static_cast<size_t>(b) * block_bytes(e) + codes_offset(e));
    if (t.bits == 8) return t.symmetric ? static_cast<int8_t>(qs[i]) : qs[i];
    int nib = (i % 2 == 0 ? qs[i / 2] : qs[i / 2] >> 4) & 0xF;
    return t.symmetric ? nib - 8 : nib;
}

void dequantize_row(const Encoding& e, std::span<const std::byte> data, int64_t rows, int64_t cols,
                    int64_t r, float* out) {
    const auto& t = traits(e.scheme);
    if (!t.grouped) {
        QParams p = row_qparams(e, data, rows, cols, r, 0);
        for (int64_t c = 0; c < cols; ++c)
            out[c] = dequantize_value(e, row_code(e, data, rows, cols, r, c), p);
        return;
    }
    if (const auto decode = ggml_decoder(e)) {
        // ggml's block types: the reference decoder, one block at a time.
        const int64_t nb = blocks_per_row(e, cols);
        const auto* in = data.data() + static_cast<size_t>(r) * row_bytes(e, cols);
        std::vector<float> block(static_cast<size_t>(e.group));
        for (int64_t b = 0; b < nb; ++b) {
            decode(in + static_cast<size_t>(b) * block_bytes(e), 1, block.data());
            const int64_t n = std::min<int64_t>(e.group, cols - b * e.group);
            std::copy_n(block.begin(), n, out + b * e.group);
        }
        return;
    }
    const int64_t np = params_per_row(e, cols), w = param_width(e);
    for (int64_t b = 0; b < np; ++b) {
        QParams p = row_qparams(e, data, rows, cols, r, b);
        int64_t c1 = std::min<int64_t>(cols, (b + 1) * w);
        for (int64_t c = b * w; c < c1; ++c)
            out[c] = dequantize_value(e, row_code(e, data, rows, cols, r, c), p);
    }
}

void set_row_codes(const Encoding& e, std::span<const int> codes, std::span<std::byte> row) {
    const auto& t = traits(e.scheme);
    const auto cols = static_cast<int64_t>(codes.size());
    if (!t.grouped) {
        if (row.size() != codes.size()) throw InternalError("set_row_codes: int8c size");
        for (size_t i = 0; i < codes.size(); ++i)
            row[i] = static_cast<std::byte>(static_cast<int8_t>(codes[i]));
        return;
    }
    if (row.size() != row_bytes(e, cols)) throw InternalError("set_row_codes: size");
    check_quantizable(e);
    const int64_t nb = blocks_per_row(e, cols);
    if (t.super_block != 0) {
        std::vector<int> block(static_cast<size_t>(e.group));
        for (int64_t b = 0; b < nb; ++b) {
            auto* out = reinterpret_cast<uint8_t*>(row.data()) + b * block_bytes(e);
            for (int64_t i = 0; i < e.group; ++i) {
                const int64_t c = b * e.group + i;
                // Past the row's end: the code the RTN pass gave the zero padding.
                block[static_cast<size_t>(i)] =
                    c < cols ? codes[static_cast<size_t>(c)] : detail::kquant_code(e, out, i);
            }
            detail::kquant_set_codes(e, block.data(), out);
        }
        return;
    }
    std::vector<QParams> params(static_cast<size_t>(nb));
    for (int64_t b = 0; b < nb; ++b)
        params[static_cast<size_t>(b)] = row_qparams(e, row, 1, cols, 0, b);
    pack_row(e, codes, params, row);
}

std::vector<float> dequantize_tensor(const Tensor& t) {
    if (t.encoding.is_sparse()) {
        // The dense form holds exactly the same values (sparse.h).
        return densify_tensor(t).to_floats();
    }
    check_encoding(t.encoding, cat("tensor '", t.name, "'"));
    auto dims = encoded_dims(t.encoding, t.shape, cat("tensor '", t.name, "'"));
    t.check_consistent();
    auto data = t.data.bytes();
    std::vector<float> out(static_cast<size_t>(dims.rows * dims.cols));
    std::vector<float> row(static_cast<size_t>(dims.cols));
    for (int64_t r = 0; r < dims.rows; ++r) {
        dequantize_row(t.encoding, data, dims.rows, dims.cols, r, row.data());
        if (t.encoding.axis == 0) {
            // Stored row r is logical column r of [cols, rows].
            for (int64_t c = 0; c < dims.cols; ++c)
                out[static_cast<size_t>(c * dims.rows + r)] = row[static_cast<size_t>(c)];
        } else {
            std::copy(row.begin(), row.end(), out.begin() + r * dims.cols);
        }
    }
    return out;
}

std::vector<float> stored_floats(const Tensor& t, const Encoding& e) {
    auto dims = encoded_dims(e, t.shape, cat("tensor '", t.name, "'"));
    std::vector<float> w = t.to_floats();
    if (e.axis == 0) {
        std::vector<float> tr(w.size());
        transpose_tiled(rtn_kernels(Encoding{}), w.data(), dims.cols, dims.rows, tr.data());
        w.swap(tr);
    }
    return w;
}

Tensor make_encoded_tensor(const Tensor& t, const Encoding& e, std::vector<std::byte> bytes) {
    Tensor out;
    out.name = t.name;
    out.dtype = DType::F32;
    out.shape = t.shape;
    out.doc_string = t.doc_string;
    out.encoding = e;
    out.data = TensorData::owned(std::move(bytes));
    out.check_consistent();
    return out;
}

Tensor quantize_tensor_rtn(const Tensor& t, const Encoding& e) {
    check_encoding(e, cat("tensor '", t.name, "'"));
    check_quantizable(e);
    auto dims = encoded_dims(e, t.shape, cat("tensor '", t.name, "'"));
    // An f32 tensor is read in place; other float dtypes are converted once.
    std::vector<float> converted;
    std::span<const float> w;
    if (t.dtype == DType::F32 && !t.is_encoded()) {
        t.check_consistent();
        w = t.values<float>();
    } else {
        converted = t.to_floats();
        w = converted;
    }
    if (e.axis == 0 && e.group > 128) {
        // Super-blocks wider than the transposing tiles: transpose the whole tensor.
        const std::vector<float> stored = stored_floats(t, e);
        return make_encoded_tensor(t, e, quantize_rtn(e, stored, dims.rows, dims.cols));
    }
    if (e.axis == 0)
        return make_encoded_tensor(t, e, quantize_rtn_transposed(e, w, dims.rows, dims.cols));
    return make_encoded_tensor(t, e, quantize_rtn(e, w, dims.rows, dims.cols));
}

}  // namespace ep
