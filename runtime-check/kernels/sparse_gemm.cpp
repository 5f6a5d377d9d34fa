#include "runtime-check/kernels/sparse_gemm.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ir/checked.h"
#include "ir/sparse.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/kernels/simd.h"

#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // as in qgemm.cpp
#endif
#include <immintrin.h>
#define EP_SP_X86 1
#define EP_SP_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512vbmi2,bmi2,avx2,fma")))
#endif

namespace ep::rt {
namespace {

// The sections of a sparse weight (sparse.h) and where each row's values start.
struct SparseMat {
    Encoding e;  // sparse
    Encoding d;  // its dense form
    int64_t rows = 0, cols = 0, words = 0;
    std::span<const uint64_t> mask;
    const std::byte* row_start = nullptr;  // bitmask: rows + 1 u64
    const std::byte* params = nullptr;
    const std::byte* values = nullptr;
    uint64_t per_row = 0;  // N:M: kept weights per row
    std::string what;

    [[nodiscard]] uint64_t start(int64_t r) const {
        if (e.sparse.layout == SparseLayout::NM) return static_cast<uint64_t>(r) * per_row;
        uint64_t v;
        std::memcpy(&v, row_start + static_cast<size_t>(r) * 8, 8);
        return v;
    }
    [[nodiscard]] const uint64_t* row_mask(int64_t r) const { return mask.data() + r * words; }
};

// Row r's first kept value, after checking that its mask keeps what row_start (or the N:M
// count) says, so that no read leaves the values section.
uint64_t checked_start(const SparseMat& s, int64_t r) {
    const uint64_t* w = s.row_mask(r);
    uint64_t kept = 0;
    for (int64_t i = 0; i < s.words; ++i) kept += static_cast<uint64_t>(std::popcount(w[i]));
    const uint64_t first = s.start(r);
    const uint64_t want =
        s.e.sparse.layout == SparseLayout::NM ? s.per_row : s.start(r + 1) - first;
    if (kept != want || first > s.e.sparse.kept || s.e.sparse.kept - first < kept)
        throw InputError(cat(s.what, ": row ", r, " of the sparse mask keeps ", kept,
                             " weights, its values section holds ", want));
    return first;
}

// --- Expansion: portable ---------------------------------------------------------------------

// Row r as cols floats, pruned weights 0.0.
void expand_f32_portable(const SparseMat& s, int64_t r, uint64_t first, float* out) {
    const auto* v = reinterpret_cast<const std::byte*>(s.values) + first * 4;
    std::fill(out, out + s.cols, 0.0f);
    const uint64_t* w = s.row_mask(r);
    for (int64_t i = 0; i < s.words; ++i)
        for (uint64_t bits = w[i]; bits; bits &= bits - 1) {
            std::memcpy(out + i * 64 + std::countr_zero(bits), v, 4);
            v += 4;
        }
}

#ifdef EP_SP_X86
EP_SP_AVX512 void expand_f32_avx512(const SparseMat& s, int64_t r, uint64_t first, float* out) {
    const auto* v = reinterpret_cast<const float*>(s.values) + first;
    const uint64_t* w = s.row_mask(r);
    for (int64_t c = 0; c < s.cols; c += 16) {
        const auto m = static_cast<__mmask16>(w[c / 64] >> (c % 64));
        const __m512 x = _mm512_maskz_expandloadu_ps(m, v);
        v += std::popcount(static_cast<uint16_t>(m));
        if (s.cols - c >= 16)
            _mm512_storeu_ps(out + c, x);
        else
            _mm512_mask_storeu_ps(out + c, static_cast<__mmask16>((1u << (s.cols - c)) - 1), x);
    }
}

#endif

bool use_avx512_expand() {
#ifdef EP_SP_X86
    static const bool yes =
        std::string_view(simd_kernels().name) == "avx512" && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi2") &&
        __builtin_cpu_supports("fma");
    return yes;
#else
    return false;
#endif
}

// The expansion routines, chosen once (simd.h's table and the CPU).
struct Expanders {
    void (*f32)(const SparseMat&, int64_t, uint64_t, float*);
};
const Expanders& expanders() {
#ifdef EP_SP_X86
    static const Expanders fast{expand_f32_avx512};
    if (use_avx512_expand()) return fast;
#endif
    static const Expanders portable{expand_f32_portable};
    return portable;
}

// --- Few rows of A over f32 values: fused expansion and dot products --------------------------

// The 8 mask bits of columns [c, c + 8) of row r (c % 8 == 0).
inline uint32_t mask_byte(const SparseMat& s, int64_t r, int64_t c) {
    return static_cast<uint32_t>(s.row_mask(r)[c / 64] >> (c % 64)) & 0xFFu;
}

// Sum of 8 lanes in simd_dot.inc's order: ((0+4) + (2+6)) + ((1+5) + (3+7)).
inline float hsum8(const float* v) {
    const float s0 = v[0] + v[4], s1 = v[1] + v[5], s2 = v[2] + v[6], s3 = v[3] + v[7];
    return (s0 + s2) + (s1 + s3);
}

// Output channels [r0, r1) for M rows of A: per element, one 8-lane partial sum over k in
// steps of 8 (lane k % 8) with fused multiply-adds of the expanded weights (0.0 where pruned),
// the lanes added as hsum8, then the tail k >= K / 8 * 8 in order: the dense dot-product
// kernel's order (simd_dot.inc), so a Gemm transB = 1 weight gives its bits.
template <int M>
void f32_rows_portable(const SparseMat& s, const float* a, int64_t lda, float* y, int64_t ldy,
                       int64_t r0, int64_t r1) {
    const int64_t k8 = s.cols / 8 * 8;
    for (int64_t r = r0; r < r1; ++r) {
        const auto* v = reinterpret_cast<const std::byte*>(s.values) + checked_start(s, r) * 4;
        float acc[M][8] = {};
        for (int64_t k = 0; k < s.cols; k += 8) {
            float w[8] = {};
            for (uint32_t m = mask_byte(s, r, k); m; m &= m - 1) {
                std::memcpy(&w[std::countr_zero(m)], v, 4);
                v += 4;
            }
            if (k < k8) {
                for (int i = 0; i < M; ++i)
                    for (int l = 0; l < 8; ++l)
                        acc[i][l] = std::fma(a[i * lda + k + l], w[l], acc[i][l]);
                continue;
            }
            for (int i = 0; i < M; ++i) {
                float sum = hsum8(acc[i]);
                for (int64_t t = k; t < s.cols; ++t) sum = std::fma(a[i * lda + t], w[t - k], sum);
                y[i * ldy + r] = sum;
            }
        }
        if (k8 == s.cols)
            for (int i = 0; i < M; ++i) y[i * ldy + r] = hsum8(acc[i]);
    }
}

#ifdef EP_SP_X86
template <int M>
EP_SP_AVX512 void f32_rows_avx512(const SparseMat& s, const float* a, int64_t lda, float* y,
                                  int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t k8 = s.cols / 8 * 8;
    for (int64_t r = r0; r < r1; ++r) {
        const float* v = reinterpret_cast<const float*>(s.values) + checked_start(s, r);
        const uint64_t* words = s.row_mask(r);
        __m256 acc[M];
        for (auto& x : acc) x = _mm256_setzero_ps();
        for (int64_t k = 0; k < k8; k += 8) {
            const auto m = static_cast<__mmask8>(words[k / 64] >> (k % 64));
            const __m256 w = _mm256_maskz_expandloadu_ps(m, v);
            v += std::popcount(static_cast<uint8_t>(m));
            for (int i = 0; i < M; ++i)
                acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i * lda + k), w, acc[i]);
        }
        float w[8] = {};
        if (k8 < s.cols)
            for (uint32_t m = mask_byte(s, r, k8); m; m &= m - 1) w[std::countr_zero(m)] = *v++;
        for (int i = 0; i < M; ++i) {
            alignas(32) float lanes[8];
            _mm256_store_ps(lanes, acc[i]);
            float sum = hsum8(lanes);
            for (int64_t t = k8; t < s.cols; ++t) sum = std::fma(a[i * lda + t], w[t - k8], sum);
            y[i * ldy + r] = sum;
        }
    }
}
#endif

template <int M>
void f32_rows(const SparseMat& s, const float* a, int64_t lda, float* y, int64_t ldy, int64_t r0,
              int64_t r1) {
#ifdef EP_SP_X86
    if (use_avx512_expand()) return f32_rows_avx512<M>(s, a, lda, y, ldy, r0, r1);
#endif
    f32_rows_portable<M>(s, a, lda, y, ldy, r0, r1);
}

// --- Expansion of quantized rows into the dense encoding's bytes ------------------------------

// What a row expansion needs of the dense form, computed once per call.
struct QuantForm {
    bool int4 = false, grouped = false, symmetric = false;
    int64_t group = 0, blocks = 0;  // grouped
    size_t header = 0, block = 0;   // grouped: header bytes (2 or 4) and block bytes
    int64_t padded = 0;             // codes per row: blocks * group, or cols (int8c)
};
QuantForm quant_form(const SparseMat& s) {
    const auto& t = traits(s.d.scheme);
    QuantForm f;
    f.int4 = t.bits == 4;
    f.grouped = t.grouped;
    f.symmetric = t.symmetric;
    if (f.grouped) {
        f.group = s.d.group;
        f.blocks = blocks_per_row(s.d, s.cols);
        f.header = f.symmetric ? 2 : 4;
        f.block = block_bytes(s.d);
        f.padded = f.blocks * f.group;
    } else {
        f.padded = s.cols;
    }
    return f;
}

// The code of 0.0 of row r's block b.
inline uint8_t zero_code(const SparseMat& s, const QuantForm& f, int64_t r, int64_t b) {
    if (f.symmetric) return f.int4 ? 8 : 0;
    return static_cast<uint8_t>(s.params[static_cast<size_t>(r * f.blocks + b) * f.header + 2]);
}

// Nibbles [first, first + count) of the values as one byte each into out.
void unpack_nibbles_portable(const uint8_t* src, uint64_t first, uint64_t count, uint8_t* out) {
    for (uint64_t i = 0; i < count; ++i) {
        const uint64_t n = first + i;
        out[i] = (src[n / 2] >> (4 * (n % 2))) & 0xF;
    }
}
// codes[2i] | codes[2i + 1] << 4 for i < count / 2 (count even).
void pack_nibbles_portable(const uint8_t* codes, int64_t count, uint8_t* out) {
    for (int64_t i = 0; i < count / 2; ++i)
        out[i] = static_cast<uint8_t>(codes[2 * i] | (codes[2 * i + 1] << 4));
}
// Row r's codes (one byte each, kept ones from src in column order) over padded columns,
// pruned and padding columns at their block's code of 0.0.
void expand_row_codes_portable(const SparseMat& s, const QuantForm& f, int64_t r,
                               const uint8_t* src, uint8_t* out) {
    const uint64_t* w = s.row_mask(r);
    uint64_t k = 0;
    for (int64_t c = 0; c < f.padded; ++c) {
        const bool keep = c < s.cols && ((w[c / 64] >> (c % 64)) & 1u);
        out[c] = keep ? src[k++] : zero_code(s, f, r, f.grouped ? c / f.group : 0);
    }
}

#ifdef EP_SP_X86
EP_SP_AVX512 void unpack_nibbles_avx512(const uint8_t* src, uint64_t first, uint64_t count,
                                        uint8_t* out) {
    // Whole bytes from first / 2: 32 bytes -> 64 codes; then drop the first code when odd.
    const uint64_t b0 = first / 2, b1 = (first + count + 1) / 2;
    uint8_t* o = out;
    const bool odd = first % 2;
    if (odd) o = out - 1;  // code 0 of byte b0 is not wanted: written one before `out`
    const __m512i low = _mm512_set1_epi16(0x0F);
    for (uint64_t b = b0; b < b1; b += 32) {
        const uint64_t n = std::min<uint64_t>(32, b1 - b);
        const __m256i v =
            _mm256_maskz_loadu_epi8(static_cast<__mmask32>(n >= 32 ? ~0u : (1u << n) - 1), src + b);
        const __m512i x = _mm512_cvtepu8_epi16(v);
        const __m512i codes = _mm512_or_si512(_mm512_and_si512(x, low),
                                              _mm512_slli_epi16(_mm512_srli_epi16(x, 4), 8));
        _mm512_mask_storeu_epi8(o + 2 * (b - b0),
                                n >= 32 ? ~__mmask64{0} : (__mmask64{1} << (2 * n)) - 1, codes);
    }
}
EP_SP_AVX512 void pack_nibbles_avx512(const uint8_t* codes, int64_t count, uint8_t* out) {
    const __m256i mul = _mm256_set1_epi16(0x1001);  // byte pairs (c0, c1) -> c0 + 16 c1
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2),
                         _mm256_cvtepi16_epi8(_mm256_maddubs_epi16(v, mul)));
    }
    pack_nibbles_portable(codes + i, count - i, out + i / 2);
}
EP_SP_AVX512 void expand_row_codes_avx512(const SparseMat& s, const QuantForm& f, int64_t r,
                                          const uint8_t* src, uint8_t* out) {
    const uint64_t* w = s.row_mask(r);
    uint64_t k = 0;
    int64_t c = 0;
    for (; c + 32 <= f.padded; c += 32) {
        const auto m = c < s.cols ? static_cast<__mmask32>(w[c / 64] >> (c % 64)) : 0u;
        const __m256i z =
            _mm256_set1_epi8(static_cast<char>(zero_code(s, f, r, f.grouped ? c / f.group : 0)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c),
                            _mm256_mask_expandloadu_epi8(z, m, src + k));
        k += static_cast<uint64_t>(std::popcount(static_cast<uint32_t>(m)));
    }
    for (; c < f.padded; ++c) {  // int8c's last columns
        const bool keep = (w[c / 64] >> (c % 64)) & 1u;
        out[c] = keep ? src[k++] : 0;
    }
}
#endif

// Row r of a quantized sparse weight as the dense encoding's row at `out` (row_bytes for
// grouped schemes, cols codes for int8c), its block headers copied from the params.
template <bool Fast>
void expand_quant_row(const SparseMat& s, const QuantForm& f, int64_t r, uint64_t first,
                      std::vector<uint8_t>& unpacked, std::vector<uint8_t>& codes, std::byte* out) {
    const uint64_t kept =
        s.e.sparse.layout == SparseLayout::NM ? s.per_row : s.start(r + 1) - first;
    const auto* values = reinterpret_cast<const uint8_t*>(s.values);
    const uint8_t* src = values + first;
    if (f.int4) {  // nibble i of the values is kept weight i; a row may start mid-byte
        unpacked.resize(static_cast<size_t>(kept) + 128);
#ifdef EP_SP_X86
        if constexpr (Fast)
            unpack_nibbles_avx512(values, first, kept, unpacked.data() + 64);
        else
#endif
            unpack_nibbles_portable(values, first, kept, unpacked.data() + 64);
        src = unpacked.data() + 64;
    }
    uint8_t* dense_codes = reinterpret_cast<uint8_t*>(out);  // int8c: the row itself
    if (f.grouped) {
        codes.resize(static_cast<size_t>(f.padded));
        dense_codes = codes.data();
    }
#ifdef EP_SP_X86
    if constexpr (Fast)
        expand_row_codes_avx512(s, f, r, src, dense_codes);
    else
#endif
        expand_row_codes_portable(s, f, r, src, dense_codes);
    if (!f.grouped) return;
    for (int64_t b = 0; b < f.blocks; ++b) {
        std::byte* blk = out + static_cast<size_t>(b) * f.block;
        const std::byte* header = s.params + static_cast<size_t>(r * f.blocks + b) * f.header;
        if (f.header == 2)
            std::memcpy(blk, header, 2);
        else
            std::memcpy(blk, header, 4);
        auto* q = reinterpret_cast<uint8_t*>(blk) + f.header;
        const uint8_t* c = dense_codes + b * f.group;
        if (!f.int4) {
            for (int64_t i = 0; i < f.group; i += 8) std::memcpy(q + i, c + i, 8);
            continue;
        }
#ifdef EP_SP_X86
        if constexpr (Fast) {
            pack_nibbles_avx512(c, f.group, q);
            continue;
        }
#endif
        pack_nibbles_portable(c, f.group, q);
    }
}

// Per-thread scratch: one expanded chunk and the row buffers.
struct Scratch {
    std::vector<std::byte> chunk;
    std::vector<uint8_t> unpacked, codes;
};
Scratch& scratch() {
    thread_local Scratch s;
    return s;
}

}  // namespace

bool sparse_kernel_reads(const Encoding& e, DType dtype) {
    if (!e.is_sparse()) return false;
    if (e.scheme == QScheme::None) return dtype == DType::F32;
    return dtype == DType::F32 && e.scheme != QScheme::Count_;
}

void sparse_gemm_f32(const ExecOptions& options, QPackCache* qpacks, const Tensor& w,
                     const float* a, int64_t m, int64_t lda, float* y, int64_t ldy) {
    SparseMat s;
    s.what = cat("weight '", w.name, "'");
    s.e = w.encoding;
    s.d = w.encoding.dense();
    if (!sparse_kernel_reads(s.e, w.dtype))
        throw InputError(cat(s.what, " has no sparse encoding this kernel reads"));
    const auto dims = encoded_dims(s.e, w.shape, s.what);
    s.rows = dims.rows;
    s.cols = dims.cols;
    s.words = mask_words(s.cols);
    if (m == 0 || s.rows == 0) return;
    if (options.int8_activations && qpacks && qpack_i4_supported(s.d))
        return qgemm_i8(options, qpacks->get(w), a, m, lda, y, ldy);
    const auto sections = sparse_sections(s.e, w.dtype, s.rows, s.cols);
    const auto bytes = w.data.bytes();
    if (!sections || bytes.size() != sections->total)
        throw InputError(cat(s.what, ": ", encoding_name(s.e), " needs ",
                             sections ? sections->total : 0, " bytes, found ", bytes.size()));
    std::vector<uint64_t> mask_copy;
    s.mask = sparse_mask_view(bytes, s.rows, s.cols, mask_copy);
    s.row_start = bytes.data() + sections->mask;
    s.params = s.row_start + sections->row_start;
    s.values = s.params + sections->params;
    if (s.e.sparse.layout == SparseLayout::NM)
        s.per_row = static_cast<uint64_t>(s.cols / s.e.sparse.m * s.e.sparse.n);

    const bool plain = !s.e.is_quantized();
    if (plain && m <= kSparseDotRows) {
        const int64_t min_rows =
            std::max<int64_t>(16, kGemmParallelWork / std::max<int64_t>(1, s.cols * m));
        parallel_for(options, s.rows, min_rows, [&](int64_t r0, int64_t r1) {
            switch (m) {
                case 1:
                    return f32_rows<1>(s, a, lda, y, ldy, r0, r1);
                case 2:
                    return f32_rows<2>(s, a, lda, y, ldy, r0, r1);
                case 3:
                    return f32_rows<3>(s, a, lda, y, ldy, r0, r1);
                default:
                    return f32_rows<4>(s, a, lda, y, ldy, r0, r1);
            }
        });
        return;
    }
    const size_t row_size =
        plain ? static_cast<size_t>(s.cols) * 4
              : (traits(s.d.scheme).grouped ? static_cast<size_t>(row_bytes(s.d, s.cols))
                                            : static_cast<size_t>(s.cols));
    const QuantForm form = plain ? QuantForm{} : quant_form(s);
    const bool fast = use_avx512_expand();
    // Few rows of A: longer chunks (fewer calls of the dense kernel, which prepares A per
    // call); more rows: kSparseRows, the dense panel.
    const int64_t chunk_rows = m <= kQSmallM ? 4 * kSparseRows : kSparseRows;
    const int64_t chunks = (s.rows + chunk_rows - 1) / chunk_rows;
    const int64_t chunk_work = std::max<int64_t>(1, chunk_rows * s.cols * m);
    const ExecOptions single{};
    parallel_for(
        options, chunks, std::max<int64_t>(1, kGemmParallelWork / chunk_work),
        [&](int64_t c0, int64_t c1) {
            Scratch& sc = scratch();
            for (int64_t c = c0; c < c1; ++c) {
                const int64_t r0 = c * chunk_rows;
                const int64_t n = std::min(chunk_rows, s.rows - r0);
                // int8c keeps its codes, 4-byte padding, then f32 scales.
                const size_t codes_bytes = static_cast<size_t>(n) * row_size;
                const size_t scales_at = codes_bytes + (4 - codes_bytes % 4) % 4;
                sc.chunk.resize(scales_at + static_cast<size_t>(n) * 4 + 64);
                std::byte* chunk = sc.chunk.data();
                for (int64_t i = 0; i < n; ++i) {
                    const int64_t r = r0 + i;
                    const uint64_t first = checked_start(s, r);
                    std::byte* row = chunk + static_cast<size_t>(i) * row_size;
                    if (plain) {
                        expanders().f32(s, r, first, reinterpret_cast<float*>(row));
                        continue;
                    }
                    if (fast)
                        expand_quant_row<true>(s, form, r, first, sc.unpacked, sc.codes, row);
                    else
                        expand_quant_row<false>(s, form, r, first, sc.unpacked, sc.codes, row);
                    if (!traits(s.d.scheme).grouped)
                        std::memcpy(chunk + scales_at + static_cast<size_t>(i) * 4,
                                    s.params + static_cast<size_t>(r) * 4, 4);
                }
                if (plain) {
                    // More rows of A: the dense op's product on these channels: Gemm
                    // transB = 1 ([N, K], axis 1) takes B transposed as we hold
                    // it; MatMul / Gemm transB = 0 ([K, N], axis 0) the k-ordered
                    // tile kernels, as for the dense [K, N] weight.
                    const MatrixView av{a, m, s.cols, lda, false};
                    const MatrixView bv{reinterpret_cast<const float*>(chunk), s.cols, n, s.cols,
                                        true};
                    gemm_f32(single, av, bv, y + r0, ldy, false, s.e.axis == 0);
                } else {
                    qgemm_encoded_rows(single, s.d, chunk, n, s.cols, a, m, lda, y + r0, ldy,
                                       w.name);
                }
            }
        });
}

}  // namespace ep::rt
