// The 8-bit integer GEMM and depthwise convolution (igemm.h).
//
// Layout. The activation is packed per call into panels of 16 columns: for each group of 4
// k (kq), 64 bytes = 16 columns x 4 consecutive k, as uint8 (int8 activations xor 0x80):
//   xp[(panel * kq_count + kq) * 64 + j * 4 + t] = x[4 kq + t][16 panel + j]
// (0 past K or past the last column; the panel count is even). One 32-bit lane of a vector
// then holds 4 k of one column, and a weight row's 4 bytes at 4 kq, broadcast, multiply
// all 16 columns with one vpdpbusd (u8 x s8 -> sums of 4 products added to int32 lanes).
// A tile is 8 weight rows x 32 columns (2 panels); each task is one tile.
//
// Exactness: vpdpbusd adds four products of at most 255 * 128 to an int32 lane without
// saturating (wrapping like the portable uint32 sums); the AVX2 code splits bytes into
// even / odd 16-bit halves and uses vpmaddwd (two products of at most 255 * 128: no
// saturation), adding the same four products. Integer sums do not depend on their order,
// so every table gives the same int32, and the requantization (scalar code, vectorised by
// the compiler without reassociation) the same bytes.
#include "runtime-check/kernels/igemm.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "runtime-check/kernels/saturate_round.h"
#include "runtime-check/kernels/simd.h"

#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define EP_I8_X86 1
#define EP_I8_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2")))
#define EP_I8_AVX2 __attribute__((target("avx2")))
#endif

namespace ep::rt {
namespace {

constexpr int64_t kPanel = 16;  // columns of a packed panel
constexpr int64_t kTileRows = 8;
constexpr int64_t kTileCols = 32;  // two panels

inline int32_t wrap_add(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
inline int32_t wrap_mul(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}

// ---- tiles: out[8][32] = sum over kq of the 4-byte products ---------------------------

void tile_portable(const int8_t* w, int64_t kp, const uint8_t* xp0, const uint8_t* xp1,
                   int32_t* out) {
    const int64_t kq = kp / 4;
    for (int64_t r = 0; r < kTileRows; ++r) {
        const int8_t* wr = w + r * kp;
        for (int h = 0; h < 2; ++h) {
            const uint8_t* xp = h ? xp1 : xp0;
            uint32_t acc[kPanel] = {};
            for (int64_t q = 0; q < kq; ++q) {
                const uint8_t* xq = xp + q * 64;
                const int8_t* wq = wr + q * 4;
                for (int64_t j = 0; j < kPanel; ++j) {
                    int32_t s = 0;
                    for (int t = 0; t < 4; ++t)
                        s += static_cast<int32_t>(xq[j * 4 + t]) * static_cast<int32_t>(wq[t]);
                    acc[j] += static_cast<uint32_t>(s);
                }
            }
            for (int64_t j = 0; j < kPanel; ++j)
                out[r * kTileCols + h * kPanel + j] = static_cast<int32_t>(acc[j]);
        }
    }
}

#ifdef EP_I8_X86
EP_I8_AVX512 void tile_avx512(const int8_t* w, int64_t kp, const uint8_t* xp0, const uint8_t* xp1,
                              int32_t* out) {
    __m512i acc[kTileRows][2];
    for (auto& a : acc) a[0] = a[1] = _mm512_setzero_si512();
    const int64_t kq = kp / 4;
    for (int64_t q = 0; q < kq; ++q) {
        const __m512i x0 = _mm512_loadu_si512(xp0 + q * 64);
        const __m512i x1 = _mm512_loadu_si512(xp1 + q * 64);
        for (int64_t r = 0; r < kTileRows; ++r) {
            int32_t wv;
            std::memcpy(&wv, w + r * kp + q * 4, 4);
            const __m512i wb = _mm512_set1_epi32(wv);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x0, wb);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x1, wb);
        }
    }
    for (int64_t r = 0; r < kTileRows; ++r) {
        _mm512_storeu_si512(out + r * kTileCols, acc[r][0]);
        _mm512_storeu_si512(out + r * kTileCols + kPanel, acc[r][1]);
    }
}

// vpdpbusd without VNNI: u8 x s8 products of each lane's 4 bytes, summed, added to acc.
EP_I8_AVX2 inline __m256i dot4_avx2(__m256i acc, __m256i u, __m256i s_even, __m256i s_odd) {
    const __m256i lo_mask = _mm256_set1_epi16(0x00FF);
    const __m256i u_even = _mm256_and_si256(u, lo_mask);
    const __m256i u_odd = _mm256_srli_epi16(u, 8);
    const __m256i p =
        _mm256_add_epi32(_mm256_madd_epi16(u_even, s_even), _mm256_madd_epi16(u_odd, s_odd));
    return _mm256_add_epi32(acc, p);
}

EP_I8_AVX2 void tile_avx2(const int8_t* w, int64_t kp, const uint8_t* xp0, const uint8_t* xp1,
                          int32_t* out) {
    const int64_t kq = kp / 4;
    for (int64_t r0 = 0; r0 < kTileRows; r0 += 4)
        for (int h = 0; h < 2; ++h) {
            const uint8_t* xp = h ? xp1 : xp0;
            __m256i acc[4][2];
            for (auto& a : acc) a[0] = a[1] = _mm256_setzero_si256();
            for (int64_t q = 0; q < kq; ++q) {
                const __m256i x0 =
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + q * 64));
                const __m256i x1 =
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + q * 64 + 32));
                for (int64_t r = 0; r < 4; ++r) {
                    int32_t wv;
                    std::memcpy(&wv, w + (r0 + r) * kp + q * 4, 4);
                    const __m256i wb = _mm256_set1_epi32(wv);
                    const __m256i s_even = _mm256_srai_epi16(_mm256_slli_epi16(wb, 8), 8);
                    const __m256i s_odd = _mm256_srai_epi16(wb, 8);
                    acc[r][0] = dot4_avx2(acc[r][0], x0, s_even, s_odd);
                    acc[r][1] = dot4_avx2(acc[r][1], x1, s_even, s_odd);
                }
            }
            for (int64_t r = 0; r < 4; ++r) {
                int32_t* o = out + (r0 + r) * kTileCols + h * kPanel;
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), acc[r][0]);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), acc[r][1]);
            }
        }
}
#endif

#ifdef EP_I8_X86
// Packs 4 rows (k .. k + 3, `ks` bytes apart) x 16 columns (contiguous) into the panel's
// 64 bytes for that kq: 16 x (4 bytes, one per row), each byte xor `flip`.
EP_I8_AVX2 inline void pack4x16_sse(const uint8_t* s, int64_t ks, uint8_t* d, uint8_t flip) {
    const __m128i f = _mm_set1_epi8(static_cast<char>(flip));
    const __m128i r0 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)), f);
    const __m128i r1 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + ks)), f);
    const __m128i r2 =
        _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * ks)), f);
    const __m128i r3 =
        _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 3 * ks)), f);
    const __m128i a0 = _mm_unpacklo_epi8(r0, r1), a1 = _mm_unpackhi_epi8(r0, r1);
    const __m128i b0 = _mm_unpacklo_epi8(r2, r3), b1 = _mm_unpackhi_epi8(r2, r3);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(a0, b0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), _mm_unpackhi_epi16(a0, b0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 32), _mm_unpacklo_epi16(a1, b1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 48), _mm_unpackhi_epi16(a1, b1));
}

// A whole panel of contiguous columns (c_stride 1), 16 of them live, K a multiple of 4.
EP_I8_AVX2 void pack_panel_sse(const uint8_t* src, int64_t ks, int64_t kq, uint8_t* dst,
                               uint8_t flip) {
    for (int64_t q = 0; q < kq; ++q) pack4x16_sse(src + 4 * q * ks, ks, dst + q * 64, flip);
}
#endif

using TileFn = void (*)(const int8_t*, int64_t, const uint8_t*, const uint8_t*, int32_t*);

TileFn tile_fn(IgemmIsa isa) {
#ifdef EP_I8_X86
    if (isa == IgemmIsa::Avx512Vnni) return tile_avx512;
    if (isa == IgemmIsa::Avx2) return tile_avx2;
#endif
    (void)isa;
    return tile_portable;
}

bool cpu_has(IgemmIsa isa) {
#ifdef EP_I8_X86
    __builtin_cpu_init();
    if (isa == IgemmIsa::Avx512Vnni)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    if (isa == IgemmIsa::Avx2) return __builtin_cpu_supports("avx2");
#endif
    return isa == IgemmIsa::Portable;
}

// Requantizes `n` consecutive accumulators of one row (the compiler vectorises the loop;
// each element is the same scalar sequence of operations).
template <typename T>
void requant_row(const int32_t* acc, int32_t row_term, int32_t wzp, const int32_t* colsum,
                 float mult, int32_t zp, int32_t lo, int32_t hi, T* dst, int64_t stride,
                 int64_t n) {
    if (colsum && wzp != 0) {
        for (int64_t j = 0; j < n; ++j) {
            const int32_t a = wrap_add(wrap_add(acc[j], row_term), -wrap_mul(wzp, colsum[j]));
            dst[j * stride] =
                static_cast<T>(saturate_round(static_cast<float>(a) * mult, zp, lo, hi));
        }
        return;
    }
    if (stride == 1) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j)
            dst[j] = static_cast<T>(
                saturate_round(static_cast<float>(wrap_add(acc[j], row_term)) * mult, zp, lo, hi));
        return;
    }
    for (int64_t j = 0; j < n; ++j)
        dst[j * stride] = static_cast<T>(
            saturate_round(static_cast<float>(wrap_add(acc[j], row_term)) * mult, zp, lo, hi));
}

}  // namespace

IgemmIsa igemm_isa() {
    static const IgemmIsa isa = [] {
        const std::string_view table = simd_kernels().name;
        if (table == "avx512" && cpu_has(IgemmIsa::Avx512Vnni)) return IgemmIsa::Avx512Vnni;
        if (table != "baseline" && cpu_has(IgemmIsa::Avx2)) return IgemmIsa::Avx2;
        return IgemmIsa::Portable;
    }();
    return isa;
}

std::vector<IgemmIsa> igemm_available_isas() {
    std::vector<IgemmIsa> out;
    for (IgemmIsa isa : {IgemmIsa::Portable, IgemmIsa::Avx2, IgemmIsa::Avx512Vnni})
        if (cpu_has(isa)) out.push_back(isa);
    return out;
}

const char* igemm_isa_name(IgemmIsa isa) {
    switch (isa) {
        case IgemmIsa::Avx512Vnni:
            return "avx512vnni";
        case IgemmIsa::Avx2:
            return "avx2";
        default:
            return "portable";
    }
}

IgemmWeights igemm_prepare_weights(const uint8_t* src, bool is_signed, int64_t rows, int64_t k,
                                   int64_t row_stride, int64_t k_stride,
                                   const std::vector<int32_t>& zp) {
    IgemmWeights w;
    w.rows = rows;
    w.k = k;
    w.rows_padded = (rows + kTileRows - 1) / kTileRows * kTileRows;
    w.kp = (k + 3) / 4 * 4;
    w.w.assign(static_cast<size_t>(w.rows_padded * w.kp), 0);
    w.zp.assign(static_cast<size_t>(rows), 0);
    w.sums.assign(static_cast<size_t>(rows), 0);
    const int32_t shift = is_signed ? 0 : -128;
    for (int64_t r = 0; r < rows; ++r) {
        int32_t sum = 0;
        int8_t* dst = w.w.data() + r * w.kp;
        for (int64_t kk = 0; kk < k; ++kk) {
            const uint8_t b = src[r * row_stride + kk * k_stride];
            const int32_t v = is_signed ? static_cast<int8_t>(b) : static_cast<int32_t>(b) + shift;
            dst[kk] = static_cast<int8_t>(v);
            sum += v;
        }
        const int32_t z = zp.size() == 1 ? zp[0] : zp[static_cast<size_t>(r)];
        w.zp[static_cast<size_t>(r)] = z + shift;
        w.sums[static_cast<size_t>(r)] = sum;
        w.any_zp = w.any_zp || z + shift != 0;
    }
    return w;
}

const IgemmWeights& IgemmCache::get(const uint8_t* src, bool is_signed, int64_t rows, int64_t k,
                                    int64_t row_stride, int64_t k_stride,
                                    const std::vector<int32_t>& zp) {
    for (const auto& e : entries_)
        if (e->src == src && e->is_signed == is_signed && e->rows == rows && e->k == k &&
            e->row_stride == row_stride && e->k_stride == k_stride && e->zp_in == zp)
            return e->weights;
    auto e = std::make_unique<Entry>(
        Entry{src, is_signed, rows, k, row_stride, k_stride, zp,
              igemm_prepare_weights(src, is_signed, rows, k, row_stride, k_stride, zp)});
    entries_.push_back(std::move(e));
    return entries_.back()->weights;
}

const float* IgemmCache::transposed_f32(const float* src, int64_t groups, int64_t rows, int64_t k) {
    for (const auto& e : float_entries_)
        if (e->src == src && e->groups == groups && e->rows == rows && e->k == k)
            return e->transposed.data();
    auto e = std::make_unique<FloatEntry>(FloatEntry{src, groups, rows, k, {}});
    e->transposed.resize(static_cast<size_t>(groups * rows * k));
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t kk = 0; kk < k; ++kk)
                e->transposed[static_cast<size_t>((g * k + kk) * rows + r)] =
                    src[(g * rows + r) * k + kk];
    float_entries_.push_back(std::move(e));
    return float_entries_.back()->transposed.data();
}

namespace {

// The activation packed into panels (the layout above), the column sums of the packed
// bytes when some weight zero point is not 0, and each row's constant term
//   bias - xz * sum_k w + K * xz * wz   (mod 2^32).
struct Packed {
    std::vector<uint8_t> xp;
    std::vector<int32_t> colsum;
    std::vector<int32_t> row_term;
    int64_t panels = 0, panel_bytes = 0;
};

Packed pack_activation(const ExecOptions& options, const IgemmWeights& w, const IgemmActivation& x,
                       const int32_t* bias, [[maybe_unused]] IgemmIsa isa) {
    Packed pk;
    const int64_t cols = x.cols;
    const int64_t kq = w.kp / 4;
    const int64_t panels = ((cols + kPanel - 1) / kPanel + 1) / 2 * 2;
    const int64_t panel_bytes = kq * 64;
    pk.panels = panels;
    pk.panel_bytes = panel_bytes;
    std::vector<uint8_t>& xp = pk.xp;
    std::vector<int32_t>& colsum = pk.colsum;
    xp.resize(static_cast<size_t>(panels * panel_bytes));
    colsum.resize(w.any_zp ? static_cast<size_t>(panels * kPanel) : 0);
    const uint8_t flip = x.is_signed ? 0x80 : 0;
    const int32_t xz = x.zp + (x.is_signed ? 128 : 0);
    // Pack the activation, a panel per task.
    parallel_for(options, panels, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            uint8_t* dst = xp.data() + p * panel_bytes;
            const int64_t c0 = p * kPanel, live = std::clamp<int64_t>(cols - c0, 0, kPanel);
            const uint8_t* s0 = x.src + c0 * x.c_stride;
#ifdef EP_I8_X86
            if (isa != IgemmIsa::Portable && live == kPanel && x.c_stride == 1 && w.k == w.kp) {
                pack_panel_sse(s0, x.k_stride, kq, dst, flip);
            } else
#endif
                if (x.k_stride == 1 && w.k == w.kp && live == kPanel) {
                // Rows of A (MatMul): 4 consecutive k of a column are 4 consecutive bytes.
                for (int64_t q = 0; q < kq; ++q)
                    for (int64_t j = 0; j < kPanel; ++j) {
                        uint32_t v;
                        std::memcpy(&v, s0 + j * x.c_stride + 4 * q, 4);
                        v ^= flip * 0x01010101u;
                        std::memcpy(dst + q * 64 + j * 4, &v, 4);
                    }
            } else {
                if (live < kPanel) std::memset(dst, 0, static_cast<size_t>(panel_bytes));
                for (int64_t kk = 0; kk < w.k; ++kk) {
                    const uint8_t* sk = s0 + kk * x.k_stride;
                    uint8_t* d = dst + (kk / 4) * 64 + (kk % 4);
                    for (int64_t j = 0; j < live; ++j)
                        d[j * 4] = static_cast<uint8_t>(sk[j * x.c_stride] ^ flip);
                }
                for (int64_t kk = w.k; kk < w.kp; ++kk)
                    for (int64_t j = 0; j < kPanel; ++j) dst[(kk / 4) * 64 + (kk % 4) + j * 4] = 0;
            }
            if (!colsum.empty())
                for (int64_t j = 0; j < kPanel; ++j) {
                    int32_t s = 0;
                    for (int64_t q = 0; q < kq; ++q)
                        for (int t = 0; t < 4; ++t) s += dst[q * 64 + j * 4 + t];
                    colsum[static_cast<size_t>(c0 + j)] = s;
                }
        }
    });
    std::vector<int32_t>& row_term = pk.row_term;
    row_term.resize(static_cast<size_t>(w.rows));
    for (int64_t r = 0; r < w.rows; ++r) {
        const auto i = static_cast<size_t>(r);
        int32_t t = bias ? bias[r] : 0;
        t = wrap_add(t, -wrap_mul(xz, w.sums[i]));
        t = wrap_add(t, wrap_mul(wrap_mul(static_cast<int32_t>(w.k), xz), w.zp[i]));
        row_term[i] = t;
    }
    return pk;
}

}  // namespace

void igemm_requantize(const ExecOptions& options, const IgemmWeights& w, const IgemmActivation& x,
                      const int32_t* bias, const float* mult, const IgemmOutput& y, IgemmIsa isa) {
    const int64_t cols = x.cols;
    if (w.rows == 0 || cols == 0) return;
    const Packed pk = pack_activation(options, w, x, bias, isa);
    const std::vector<uint8_t>& xp = pk.xp;
    const std::vector<int32_t>& colsum = pk.colsum;
    const std::vector<int32_t>& row_term = pk.row_term;
    const int64_t panels = pk.panels, panel_bytes = pk.panel_bytes;
    const TileFn tile = tile_fn(isa);
    const int64_t row_tiles = w.rows_padded / kTileRows, col_tiles = panels / 2;
    const int32_t lo = y.is_signed ? -128 : 0, hi = y.is_signed ? 127 : 255;
    parallel_for(options, row_tiles * col_tiles, 1, [&](int64_t t0, int64_t t1) {
        alignas(64) int32_t out[kTileRows * kTileCols];
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t ct = t / row_tiles, rt = t % row_tiles;
            const int64_t r0 = rt * kTileRows, c0 = ct * kTileCols;
            const uint8_t* p0 = xp.data() + (2 * ct) * panel_bytes;
            tile(w.w.data() + r0 * w.kp, w.kp, p0, p0 + panel_bytes, out);
            const int64_t rows = std::min(kTileRows, w.rows - r0);
            const int64_t n = std::min(kTileCols, cols - c0);
            for (int64_t r = 0; r < rows; ++r) {
                const auto i = static_cast<size_t>(r0 + r);
                const int32_t* cs = colsum.empty() ? nullptr : colsum.data() + c0;
                const int64_t off = (r0 + r) * y.row_stride + c0 * y.col_stride;
                if (y.is_signed)
                    requant_row(out + r * kTileCols, row_term[i], w.zp[i], cs, mult[r0 + r], y.zp,
                                lo, hi, reinterpret_cast<int8_t*>(y.dst) + off, y.col_stride, n);
                else
                    requant_row(out + r * kTileCols, row_term[i], w.zp[i], cs, mult[r0 + r], y.zp,
                                lo, hi, y.dst + off, y.col_stride, n);
            }
        }
    });
}

void igemm_int32(const ExecOptions& options, const IgemmWeights& w, const IgemmActivation& x,
                 const int32_t* bias, int32_t* dst, int64_t row_stride, int64_t col_stride,
                 IgemmIsa isa) {
    const int64_t cols = x.cols;
    if (w.rows == 0 || cols == 0) return;
    const Packed pk = pack_activation(options, w, x, bias, isa);
    const TileFn tile = tile_fn(isa);
    const int64_t row_tiles = w.rows_padded / kTileRows, col_tiles = pk.panels / 2;
    parallel_for(options, row_tiles * col_tiles, 1, [&](int64_t t0, int64_t t1) {
        alignas(64) int32_t out[kTileRows * kTileCols];
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t ct = t / row_tiles, rt = t % row_tiles;
            const int64_t r0 = rt * kTileRows, c0 = ct * kTileCols;
            const uint8_t* p0 = pk.xp.data() + (2 * ct) * pk.panel_bytes;
            tile(w.w.data() + r0 * w.kp, w.kp, p0, p0 + pk.panel_bytes, out);
            const int64_t rows = std::min(kTileRows, w.rows - r0);
            const int64_t n = std::min(kTileCols, cols - c0);
            const int32_t* term = pk.row_term.data() + r0;
            const int32_t* cs = pk.colsum.empty() ? nullptr : pk.colsum.data() + c0;
            // acc + row term - wz * colsum, all mod 2^32.
            auto value = [&](int64_t r, int64_t j) {
                int32_t v = wrap_add(out[r * kTileCols + j], term[r]);
                if (cs) v = wrap_add(v, wrap_mul(-w.zp[static_cast<size_t>(r0 + r)], cs[j]));
                return v;
            };
            int32_t* d = dst + r0 * row_stride + c0 * col_stride;
            if (row_stride == 1) {  // MatMul: a column's rows are adjacent in the output
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t r = 0; r < rows; ++r) d[j * col_stride + r] = value(r, j);
            } else {
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t j = 0; j < n; ++j)
                        d[r * row_stride + j * col_stride] = value(r, j);
            }
        }
    });
}

namespace {

// Channels [c0, c1) of a depthwise convolution; inlined into one plain and one AVX-512 copy
// so the compiler vectorises the integer loops for each (integers: the same values).
__attribute__((always_inline)) inline void depthwise_channels(const DepthwiseI8& p, int64_t c0,
                                                              int64_t c1) {
    const int64_t ph = (p.oh - 1) * p.sh + (p.kh - 1) * p.dh + 1;
    const int64_t pw = (p.ow - 1) * p.sw + (p.kw - 1) * p.dw + 1;
    const int32_t lo = p.y_signed ? -128 : 0, hi = p.y_signed ? 127 : 255;
    // (x - x_zp) of one channel in int16, zero-padded to the window's extent.
    std::vector<int16_t> plane(static_cast<size_t>(ph * pw));
    std::vector<int32_t> acc(static_cast<size_t>(p.ow));
    std::vector<int32_t> taps(static_cast<size_t>(p.kh * p.kw));
    for (int64_t ch = c0; ch < c1; ++ch) {
        const uint8_t* xc = p.x + ch * p.ih * p.iw;
        // Columns [x0, x1) of a plane row come from the input; the rest is padding.
        const int64_t x0 = std::clamp<int64_t>(p.pad_left, 0, pw);
        const int64_t x1 = std::clamp<int64_t>(p.pad_left + p.iw, x0, pw);
        for (int64_t y = 0; y < ph; ++y) {
            const int64_t iy = y - p.pad_top;
            int16_t* row = plane.data() + y * pw;
            if (iy < 0 || iy >= p.ih) {
                std::fill(row, row + pw, int16_t{0});
                continue;
            }
            std::fill(row, row + x0, int16_t{0});
            std::fill(row + x1, row + pw, int16_t{0});
            const uint8_t* src = xc + iy * p.iw + (x0 - p.pad_left);
            const int64_t n = x1 - x0;
            int16_t* dst = row + x0;
            if (p.x_signed) {
#pragma omp simd
                for (int64_t j = 0; j < n; ++j)
                    dst[j] = static_cast<int16_t>(static_cast<int8_t>(src[j]) - p.x_zp);
            } else {
#pragma omp simd
                for (int64_t j = 0; j < n; ++j)
                    dst[j] = static_cast<int16_t>(static_cast<int32_t>(src[j]) - p.x_zp);
            }
        }
        for (int64_t t = 0; t < p.kh * p.kw; ++t) {
            const uint8_t b = p.w[ch * p.kh * p.kw + t];
            taps[static_cast<size_t>(t)] =
                (p.w_signed ? static_cast<int8_t>(b) : static_cast<int32_t>(b)) - p.w_zp[ch];
        }
        const int32_t bias = p.bias ? p.bias[ch] : 0;
        const float m = p.mult[ch];
        for (int64_t oy = 0; oy < p.oh; ++oy) {
            int32_t* a = acc.data();
            for (int64_t ox = 0; ox < p.ow; ++ox) a[ox] = bias;
            for (int64_t ky = 0; ky < p.kh; ++ky)
                for (int64_t kx = 0; kx < p.kw; ++kx) {
                    const int32_t wv = taps[static_cast<size_t>(ky * p.kw + kx)];
                    const int16_t* src = plane.data() + (oy * p.sh + ky * p.dh) * pw + kx * p.dw;
                    if (p.sw == 1) {
#pragma omp simd
                        for (int64_t ox = 0; ox < p.ow; ++ox) a[ox] += wv * src[ox];
                    } else {
                        for (int64_t ox = 0; ox < p.ow; ++ox) a[ox] += wv * src[ox * p.sw];
                    }
                }
            uint8_t* dst = p.y + (ch * p.oh + oy) * p.ow;
            if (p.y_signed) {
                auto* d = reinterpret_cast<int8_t*>(dst);
#pragma omp simd
                for (int64_t ox = 0; ox < p.ow; ++ox)
                    d[ox] = static_cast<int8_t>(
                        saturate_round(static_cast<float>(a[ox]) * m, p.y_zp, lo, hi));
            } else {
#pragma omp simd
                for (int64_t ox = 0; ox < p.ow; ++ox)
                    dst[ox] = static_cast<uint8_t>(
                        saturate_round(static_cast<float>(a[ox]) * m, p.y_zp, lo, hi));
            }
        }
    }
}

void depthwise_portable(const DepthwiseI8& p, int64_t c0, int64_t c1) {
    depthwise_channels(p, c0, c1);
}
#ifdef EP_I8_X86
EP_I8_AVX512 void depthwise_avx512(const DepthwiseI8& p, int64_t c0, int64_t c1) {
    depthwise_channels(p, c0, c1);
}
EP_I8_AVX2 void depthwise_avx2(const DepthwiseI8& p, int64_t c0, int64_t c1) {
    depthwise_channels(p, c0, c1);
}
#endif

}  // namespace

void depthwise_i8(const ExecOptions& options, const DepthwiseI8& p) {
    const IgemmIsa isa = igemm_isa();
    parallel_for(options, p.channels, 1, [&](int64_t c0, int64_t c1) {
#ifdef EP_I8_X86
        if (isa == IgemmIsa::Avx512Vnni) return depthwise_avx512(p, c0, c1);
        if (isa == IgemmIsa::Avx2) return depthwise_avx2(p, c0, c1);
#endif
        (void)isa;
        depthwise_portable(p, c0, c1);
    });
}

}  // namespace ep::rt
