// Sparse storage (sparse.h): section sizes, checks, sparsify / densify, and the tensor
// helpers. Scalar code: it defines the bytes; kernels that read sparse weights in place
// live in the runtime.
#include "sparse.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "checked.h"
#include "error.h"
#include "tensor.h"

namespace ep {
namespace {

// Bits of one stored value.
int value_bits(const Encoding& e, DType dtype) {
    if (e.scheme == QScheme::None) return traits(dtype).bits;
    return traits(e.scheme).bits;
}

// Bytes of one block header kept in the params section (grouped schemes).
size_t header_bytes(const Encoding& e) {
    return traits(e.scheme).symmetric ? 2 : 4;
}

uint64_t params_bytes(const Encoding& e, uint64_t rows, uint64_t cols, bool& ok) {
    if (e.scheme == QScheme::None) return 0;
    const auto& t = traits(e.scheme);
    if (!t.grouped) {
        auto p = checked_mul(rows, uint64_t{4});
        ok = ok && p;
        return p.value_or(0);
    }
    uint64_t blocks = (cols + e.group - 1) / e.group;
    auto n = checked_mul(rows, blocks);
    auto p = n ? checked_mul(*n, header_bytes(e)) : std::nullopt;
    ok = ok && p;
    return p.value_or(0);
}

// The dense code of 0.0 in row r, column c of a dense encoded matrix (see sparse.h).
int zero_code(const Encoding& d, std::span<const std::byte> dense, int64_t rows, int64_t cols,
              int64_t r, int64_t c) {
    if (traits(d.scheme).symmetric) return 0;
    return row_qparams(d, dense, rows, cols, r, c / d.group).zero;
}

// Where element (r, c)'s code sits in the dense bytes: byte offset, and for int4 which
// nibble (0 low, 1 high).
struct CodeAt {
    size_t byte;
    int nibble;
};
CodeAt dense_code_at(const Encoding& d, int64_t cols, int64_t r, int64_t c) {
    const auto& t = traits(d.scheme);
    if (!t.grouped) return {static_cast<size_t>(r * cols + c), 0};
    int64_t b = c / d.group, i = c % d.group;
    size_t base = static_cast<size_t>(r) * row_bytes(d, cols) +
                  static_cast<size_t>(b) * block_bytes(d) + header_bytes(d);
    if (t.bits == 8) return {base + static_cast<size_t>(i), 0};
    return {base + static_cast<size_t>(i / 2), static_cast<int>(i % 2)};
}

uint8_t get_nibble(const std::byte* p, uint64_t i) {
    auto b = static_cast<uint8_t>(p[i / 2]);
    return (i % 2 == 0 ? b : b >> 4) & 0xF;
}
void put_nibble(std::byte* p, uint64_t i, uint8_t v) {
    auto& b = reinterpret_cast<uint8_t&>(p[i / 2]);
    b = i % 2 == 0 ? static_cast<uint8_t>((b & 0xF0) | v)
                   : static_cast<uint8_t>((b & 0x0F) | (v << 4));
}

void load_words(std::span<const std::byte> bytes, uint64_t offset, uint64_t count,
                std::vector<uint64_t>& out) {
    out.resize(static_cast<size_t>(count));
    if (count) std::memcpy(out.data(), bytes.data() + offset, static_cast<size_t>(count * 8));
}

}  // namespace

std::optional<SparseSections> sparse_sections(const Encoding& e, DType dtype, int64_t rows,
                                              int64_t cols) {
    if (rows < 0 || cols < 0 || e.sparse.is_none()) return std::nullopt;
    auto r = static_cast<uint64_t>(rows), c = static_cast<uint64_t>(cols);
    SparseSections s;
    auto mask = checked_mul(r, static_cast<uint64_t>(mask_words(cols)) * 8);
    if (!mask) return std::nullopt;
    s.mask = *mask;
    if (e.sparse.layout == SparseLayout::Bitmask) {
        auto rs = checked_mul(r + 1, uint64_t{8});
        if (!rs) return std::nullopt;
        s.row_start = *rs;
    }
    bool ok = true;
    s.params = params_bytes(e, r, c, ok);
    auto bits = checked_mul(e.sparse.kept, static_cast<uint64_t>(value_bits(e, dtype)));
    if (!ok || !bits || value_bits(e, dtype) <= 0) return std::nullopt;
    s.values = *bits / 8 + (*bits % 8 ? 1 : 0);
    auto t1 = checked_add(s.mask, s.row_start);
    auto t2 = t1 ? checked_add(*t1, s.params) : std::nullopt;
    auto t3 = t2 ? checked_add(*t2, s.values) : std::nullopt;
    if (!t3) return std::nullopt;
    s.total = *t3;
    return s;
}

void check_sparsity(const Encoding& e, DType dtype, int64_t rows, int64_t cols,
                    const std::string& what) {
    const Sparsity& s = e.sparse;
    if (s.is_none()) return;
    if (s.layout != SparseLayout::Bitmask && s.layout != SparseLayout::NM)
        throw InputError(cat(what, ": unknown sparse layout ", int(s.layout)));
    if (e.scheme == QScheme::None && dtype != DType::F32 && dtype != DType::F16 &&
        dtype != DType::BF16)
        throw InputError(
            cat(what, ": sparse float values must be f32, f16 or bf16, found ", dtype_name(dtype)));
    if (e.scheme != QScheme::None && dtype != DType::F32)
        throw InputError(
            cat(what, ": an encoded tensor has the logical dtype f32, found ", dtype_name(dtype)));
    uint64_t total = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
    if (rows < 0 || cols < 0 ||
        (cols && total / static_cast<uint64_t>(cols) != static_cast<uint64_t>(rows)))
        throw InputError(cat(what, ": ", rows, " x ", cols, " overflows"));
    if (s.kept > total) throw InputError(cat(what, ": ", s.kept, " kept weights of ", total));
    if (s.layout == SparseLayout::NM) {
        if (s.n < 1 || s.m > 64 || s.n >= s.m)
            throw InputError(cat(what, ": sparse pattern ", int(s.n), ":", int(s.m),
                                 " (expected 1 <= n < m <= 64)"));
        if (cols % s.m != 0)
            throw InputError(cat(what, ": ", int(s.n), ":", int(s.m),
                                 " sparsity needs the reduction length (", cols,
                                 ") to be a multiple of ", int(s.m)));
        if (traits(e.scheme).grouped && e.group % s.m != 0)
            throw InputError(cat(what, ": ", int(s.n), ":", int(s.m),
                                 " sparsity needs the group size (", e.group,
                                 ") to be a multiple of ", int(s.m)));
        if (s.kept != total / s.m * s.n)
            throw InputError(cat(what, ": ", int(s.n), ":", int(s.m), " over ", rows, " x ", cols,
                                 " keeps ", total / s.m * s.n, " weights, the header says ",
                                 s.kept));
    }
}

void check_sparse_bytes(const Encoding& e, DType dtype, std::span<const std::byte> bytes,
                        int64_t rows, int64_t cols, const std::string& what) {
    check_sparsity(e, dtype, rows, cols, what);
    auto s = sparse_sections(e, dtype, rows, cols);
    if (!s)
        throw InputError(cat(what, ": ", encoding_name(e), " x ", rows, " x ", cols, " overflows"));
    if (bytes.size() != s->total)
        throw InputError(
            cat(what, ": ", encoding_name(e), " needs ", s->total, " bytes, found ", bytes.size()));
    const int64_t words = mask_words(cols);
    std::vector<uint64_t> mask, starts;
    load_words(bytes, 0, s->mask / 8, mask);
    if (e.sparse.layout == SparseLayout::Bitmask)
        load_words(bytes, s->mask, s->row_start / 8, starts);
    const uint64_t tail = cols % 64 ? ~uint64_t{0} << (cols % 64) : 0;
    uint64_t seen = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const uint64_t* w = mask.data() + r * words;
        if (words && (w[words - 1] & tail))
            throw InputError(
                cat(what, ": row ", r, " of the sparse mask has bits set past column ", cols));
        uint64_t row_kept = 0;
        for (int64_t i = 0; i < words; ++i) row_kept += static_cast<uint64_t>(std::popcount(w[i]));
        if (e.sparse.layout == SparseLayout::NM) {
            const int m = e.sparse.m;
            for (int64_t c0 = 0; c0 < cols; c0 += m) {
                int n = 0;
                for (int64_t c = c0; c < c0 + m; ++c) n += (w[c / 64] >> (c % 64)) & 1u;
                if (n != e.sparse.n)
                    throw InputError(cat(what, ": row ", r, ", columns ", c0, "..", c0 + m - 1,
                                         " keep ", n, " weights, the ", int(e.sparse.n), ":", m,
                                         " pattern needs ", int(e.sparse.n)));
            }
        } else if (starts[static_cast<size_t>(r)] != seen) {
            throw InputError(cat(what, ": row_start[", r, "] is ", starts[static_cast<size_t>(r)],
                                 ", the mask before it keeps ", seen));
        }
        seen += row_kept;
    }
    if (e.sparse.layout == SparseLayout::Bitmask && starts[static_cast<size_t>(rows)] != seen)
        throw InputError(cat(what, ": row_start[", rows, "] is ", starts[static_cast<size_t>(rows)],
                             ", the mask keeps ", seen));
    if (seen != e.sparse.kept)
        throw InputError(
            cat(what, ": the mask keeps ", seen, " weights, the header says ", e.sparse.kept));
    if (e.scheme != QScheme::None && traits(e.scheme).grouped && !traits(e.scheme).symmetric) {
        const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + s->mask + s->row_start);
        uint64_t headers = s->params / 4;
        for (uint64_t h = 0; h < headers; ++h)
            if (p[h * 4 + 3] != 0 || p[h * 4 + 2] > traits(e.scheme).qmax)
                throw InputError(cat(what, ": block header ", h, " has zero point ",
                                     int(p[h * 4 + 2]), " / reserved byte ", int(p[h * 4 + 3]),
                                     " (expected <= ", traits(e.scheme).qmax, " and 0)"));
    }
    if (value_bits(e, dtype) == 4 && seen % 2) {
        auto last = static_cast<uint8_t>(bytes[bytes.size() - 1]);
        if (last >> 4)
            throw InputError(cat(what, ": the last value byte's padding nibble is not 0"));
    }
}

std::span<const uint64_t> sparse_mask_view(std::span<const std::byte> sparse, int64_t rows,
                                           int64_t cols, std::vector<uint64_t>& scratch) {
    size_t n = static_cast<size_t>(rows * mask_words(cols));
    if (reinterpret_cast<uintptr_t>(sparse.data()) % alignof(uint64_t) == 0)
        return {reinterpret_cast<const uint64_t*>(sparse.data()), n};
    load_words(sparse, 0, n, scratch);
    return scratch;
}

std::vector<std::byte> sparsify(const Encoding& e, DType dtype, std::span<const std::byte> dense,
                                int64_t rows, int64_t cols, std::span<const uint64_t> mask,
                                const std::string& what) {
    check_sparsity(e, dtype, rows, cols, what);
    const Encoding d = e.dense();
    auto s = sparse_sections(e, dtype, rows, cols);
    if (!s) throw InputError(cat(what, ": ", rows, " x ", cols, " overflows"));
    const int64_t words = mask_words(cols);
    if (mask.size() != static_cast<size_t>(rows * words))
        throw InternalError(cat(what, ": sparsify got ", mask.size(), " mask words for ", rows,
                                " rows of ", words));
    const int bits = value_bits(e, dtype);
    const bool plain = d.scheme == QScheme::None;
    uint64_t want = plain ? static_cast<uint64_t>(rows * cols) * static_cast<uint64_t>(bits / 8)
                          : encoded_bytes(d, rows, cols).value_or(0);
    if (dense.size() != want)
        throw InternalError(
            cat(what, ": sparsify got ", dense.size(), " dense bytes, expected ", want));
    std::vector<std::byte> out(static_cast<size_t>(s->total));
    std::memcpy(out.data(), mask.data(), static_cast<size_t>(s->mask));
    auto* starts = out.data() + s->mask;
    auto* params = starts + s->row_start;
    auto* values = params + s->params;
    // params
    if (!plain) {
        const auto& t = traits(d.scheme);
        if (!t.grouped) {
            uint64_t codes = static_cast<uint64_t>(rows * cols);
            std::memcpy(params, dense.data() + codes + (4 - codes % 4) % 4,
                        static_cast<size_t>(s->params));
        } else {
            int64_t nb = blocks_per_row(d, cols);
            size_t hb = header_bytes(d);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t b = 0; b < nb; ++b)
                    std::memcpy(params + static_cast<size_t>(r * nb + b) * hb,
                                dense.data() + static_cast<size_t>(r) * row_bytes(d, cols) +
                                    static_cast<size_t>(b) * block_bytes(d),
                                hb);
        }
    }
    uint64_t k = 0;
    const size_t esize = static_cast<size_t>(bits / 8);
    for (int64_t r = 0; r < rows; ++r) {
        if (e.sparse.layout == SparseLayout::Bitmask) std::memcpy(starts + r * 8, &k, 8);
        for (int64_t c = 0; c < cols; ++c) {
            bool keep = mask_bit(mask, words, r, c);
            if (plain) {
                const std::byte* v = dense.data() + static_cast<size_t>(r * cols + c) * esize;
                if (keep) {
                    std::memcpy(values + k * esize, v, esize);
                    ++k;
                } else {
                    // 0.0 or -0.0 in f32 / f16 / bf16: every bit but the sign is 0.
                    bool zero = true;
                    for (size_t i = 0; i < esize; ++i) {
                        auto byte = static_cast<uint8_t>(v[i]);
                        if (i + 1 == esize) byte &= 0x7F;
                        zero = zero && byte == 0;
                    }
                    if (!zero)
                        throw InternalError(
                            cat(what, ": pruned weight (", r, ", ", c, ") is not 0"));
                }
                continue;
            }
            CodeAt at = dense_code_at(d, cols, r, c);
            uint8_t code =
                traits(d.scheme).bits == 4
                    ? get_nibble(dense.data(), at.byte * 2 + static_cast<uint64_t>(at.nibble))
                    : static_cast<uint8_t>(dense[at.byte]);
            if (keep) {
                if (bits == 4)
                    put_nibble(values, k, code);
                else
                    values[k] = std::byte{code};
                ++k;
            } else {
                int q = row_code(d, dense, rows, cols, r, c);
                if (q != zero_code(d, dense, rows, cols, r, c))
                    throw InternalError(cat(what, ": pruned weight (", r, ", ", c, ") has code ", q,
                                            ", not the code of 0"));
            }
        }
    }
    if (k != e.sparse.kept)
        throw InternalError(
            cat(what, ": the mask keeps ", k, " weights, the encoding says ", e.sparse.kept));
    if (e.sparse.layout == SparseLayout::Bitmask) std::memcpy(starts + rows * 8, &k, 8);
    return out;
}

std::vector<std::byte> densify(const Encoding& e, DType dtype, std::span<const std::byte> sparse,
                               int64_t rows, int64_t cols, const std::string& what) {
    check_sparse_bytes(e, dtype, sparse, rows, cols, what);
    const Encoding d = e.dense();
    auto s = sparse_sections(e, dtype, rows, cols);
    const int bits = value_bits(e, dtype);
    const bool plain = d.scheme == QScheme::None;
    const size_t esize = static_cast<size_t>(bits / 8);
    uint64_t want = plain ? static_cast<uint64_t>(rows * cols) * esize
                          : encoded_bytes(d, rows, cols).value_or(0);
    std::vector<std::byte> out(static_cast<size_t>(want));
    std::vector<uint64_t> scratch;
    auto mask = sparse_mask_view(sparse, rows, cols, scratch);
    const int64_t words = mask_words(cols);
    const std::byte* params = sparse.data() + s->mask + s->row_start;
    const std::byte* values = params + s->params;
    const auto& t = traits(d.scheme);
    if (!plain) {
        if (!t.grouped) {
            uint64_t codes = static_cast<uint64_t>(rows * cols);
            std::memcpy(out.data() + codes + (4 - codes % 4) % 4, params,
                        static_cast<size_t>(s->params));
        } else {
            int64_t nb = blocks_per_row(d, cols);
            size_t hb = header_bytes(d);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t b = 0; b < nb; ++b) {
                    std::byte* block = out.data() + static_cast<size_t>(r) * row_bytes(d, cols) +
                                       static_cast<size_t>(b) * block_bytes(d);
                    std::memcpy(block, params + static_cast<size_t>(r * nb + b) * hb, hb);
                    // Pruned positions hold the code of 0.0: the zero point, or 0 (nibble 8).
                    uint8_t z =
                        t.symmetric ? (t.bits == 4 ? 8 : 0) : static_cast<uint8_t>(block[2]);
                    if (t.bits == 8)
                        std::memset(block + hb, z, static_cast<size_t>(d.group));
                    else
                        std::memset(block + hb, z | (z << 4), static_cast<size_t>(d.group / 2));
                }
        }
    }
    uint64_t k = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            if (!mask_bit(mask, words, r, c)) continue;
            if (plain) {
                std::memcpy(out.data() + static_cast<size_t>(r * cols + c) * esize,
                            values + k * esize, esize);
            } else {
                CodeAt at = dense_code_at(d, cols, r, c);
                if (bits == 4)
                    put_nibble(out.data(), at.byte * 2 + static_cast<uint64_t>(at.nibble),
                               get_nibble(values, k));
                else
                    out[at.byte] = values[k];
            }
            ++k;
        }
    // Row padding of the last int4 / int8 group past cols keeps the code of 0.0, as the dense
    // quantizer writes it.
    return out;
}

std::vector<uint64_t> nonzero_mask(const Tensor& t, const Encoding& e) {
    std::string what = cat("tensor '", t.name, "'");
    auto dims = encoded_dims(e, t.shape, what);
    std::vector<float> w = t.to_floats();
    const int64_t words = mask_words(dims.cols);
    std::vector<uint64_t> mask(static_cast<size_t>(dims.rows * words), 0);
    for (int64_t r = 0; r < dims.rows; ++r)
        for (int64_t c = 0; c < dims.cols; ++c) {
            // Stored (r, c) is logical (c, r) of a [cols, rows] tensor for axis 0.
            float v = e.axis == 0 ? w[static_cast<size_t>(c * dims.rows + r)]
                                  : w[static_cast<size_t>(r * dims.cols + c)];
            if (v != 0.0f) mask[static_cast<size_t>(r * words + c / 64)] |= uint64_t{1} << (c % 64);
        }
    return mask;
}

std::vector<uint64_t> tensor_mask(const Tensor& t) {
    if (!t.encoding.is_sparse()) return nonzero_mask(t, t.encoding);
    std::string what = cat("tensor '", t.name, "'");
    auto dims = encoded_dims(t.encoding, t.shape, what);
    t.check_consistent();
    std::vector<uint64_t> scratch;
    auto view = sparse_mask_view(t.data.bytes(), dims.rows, dims.cols, scratch);
    return {view.begin(), view.end()};
}

Tensor sparsify_tensor(const Tensor& t, Sparsity layout, std::span<const uint64_t> mask,
                       uint8_t axis) {
    std::string what = cat("tensor '", t.name, "'");
    if (t.encoding.is_sparse()) throw InternalError(cat(what, ": already sparse"));
    Encoding e = t.is_encoded() ? t.encoding : Encoding{};
    if (!t.is_encoded()) e.axis = axis;
    auto dims = encoded_dims(e, t.shape, what);
    uint64_t kept = 0;
    for (uint64_t w : mask) kept += static_cast<uint64_t>(std::popcount(w));
    layout.kept = kept;
    e.sparse = layout;
    std::vector<std::byte> dense;
    std::span<const std::byte> dense_view;
    if (t.is_encoded()) {
        t.check_consistent();
        dense_view = t.data.bytes();
    } else if (e.axis == 0) {
        // Plain [K, N] weight: the stored orientation is its transpose.
        t.check_consistent();
        size_t es = static_cast<size_t>(traits(t.dtype).bits / 8);
        auto src = t.data.bytes();
        dense.resize(src.size());
        for (int64_t r = 0; r < dims.rows; ++r)
            for (int64_t c = 0; c < dims.cols; ++c)
                std::memcpy(dense.data() + static_cast<size_t>(r * dims.cols + c) * es,
                            src.data() + static_cast<size_t>(c * dims.rows + r) * es, es);
        dense_view = dense;
    } else {
        t.check_consistent();
        dense_view = t.data.bytes();
    }
    Tensor out;
    out.name = t.name;
    out.dtype = t.dtype;
    out.shape = t.shape;
    out.doc_string = t.doc_string;
    out.encoding = e;
    out.data =
        TensorData::owned(sparsify(e, t.dtype, dense_view, dims.rows, dims.cols, mask, what));
    out.check_consistent();
    return out;
}

Tensor densify_tensor(const Tensor& t) {
    if (!t.encoding.is_sparse()) return t;
    std::string what = cat("tensor '", t.name, "'");
    auto dims = encoded_dims(t.encoding, t.shape, what);
    auto dense = densify(t.encoding, t.dtype, t.data.bytes(), dims.rows, dims.cols, what);
    Tensor out;
    out.name = t.name;
    out.dtype = t.dtype;
    out.shape = t.shape;
    out.doc_string = t.doc_string;
    if (t.encoding.is_quantized()) {
        out.encoding = t.encoding.dense();
        out.data = TensorData::owned(std::move(dense));
    } else if (t.encoding.axis == 0) {
        size_t es = static_cast<size_t>(traits(t.dtype).bits / 8);
        std::vector<std::byte> logical(dense.size());
        for (int64_t r = 0; r < dims.rows; ++r)
            for (int64_t c = 0; c < dims.cols; ++c)
                std::memcpy(logical.data() + static_cast<size_t>(c * dims.rows + r) * es,
                            dense.data() + static_cast<size_t>(r * dims.cols + c) * es, es);
        out.data = TensorData::owned(std::move(logical));
    } else {
        out.data = TensorData::owned(std::move(dense));
    }
    out.check_consistent();
    return out;
}

double kept_fraction(const Tensor& t) {
    if (!t.encoding.is_sparse()) return 1.0;
    auto n = static_cast<double>(t.element_count());
    return n > 0 ? static_cast<double>(t.encoding.sparse.kept) / n : 1.0;
}

}  // namespace ep
