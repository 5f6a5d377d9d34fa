#include "runtime-check/kernels/qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>
#include <vector>

#include "ir/checked.h"
#include "runtime-check/kernels/simd.h"
#include "runtime-check/kernels/sparse_gemm.h"

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12's AVX-512 intrinsics build their results from _mm512_undefined_*() and warn that
// those "may be used uninitialized" once inlined here: a false positive of the headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define EP_QK_X86 1
#define EP_QK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define EP_QK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#endif

namespace ep::rt {
namespace {

// Elements dequantized at a time along a row of an int8c (per-channel) weight.
constexpr int64_t kInt8cChunk = 256;

// The stored matrix of an encoded weight and how to find its blocks.
struct QMat {
    Encoding e;
    const uint8_t* data = nullptr;
    int64_t rows = 0, cols = 0;
    int64_t chunk = 0;        // elements per dequantized piece: the group, or kInt8cChunk
    int64_t chunks = 0;       // pieces per row
    uint64_t row_stride = 0;  // grouped: bytes per stored row
    size_t blk_bytes = 0;     // grouped: bytes per block
    uint64_t scales_at = 0;   // int8c: offset of the f32 scales
};

// The stored matrix of dense encoded bytes (e not sparse; sizes checked by the caller).
QMat qmat_from(const Encoding& e, const std::byte* data, int64_t rows, int64_t cols) {
    QMat q;
    q.e = e;
    q.rows = rows;
    q.cols = cols;
    q.data = reinterpret_cast<const uint8_t*>(data);
    if (traits(q.e.scheme).grouped) {
        q.chunk = q.e.group;
        q.row_stride = row_bytes(q.e, q.cols);
        q.blk_bytes = block_bytes(q.e);
    } else {
        q.chunk = kInt8cChunk;
        const uint64_t codes = static_cast<uint64_t>(q.rows) * static_cast<uint64_t>(q.cols);
        q.scales_at = codes + (4 - codes % 4) % 4;
    }
    q.chunks = (q.cols + q.chunk - 1) / q.chunk;
    return q;
}

float load_scale(const Encoding& e, const uint8_t* p) {
    uint16_t d;
    std::memcpy(&d, p, 2);
    return e.scale_dtype == DType::BF16 ? bf16_to_float(d) : half_to_float(d);
}

// Dequantizes piece b of stored row r (elements [b * chunk, min(cols, (b + 1) * chunk)))
// into out; returns the element count. The values are exactly dequantize_row's:
// scale * float(code - zero).
template <QScheme S>
int64_t dequant_piece(const QMat& q, int64_t r, int64_t b, float* out) {
    const int64_t c0 = b * q.chunk, len = std::min(q.chunk, q.cols - c0);
    if constexpr (S == QScheme::Int8Channel) {
        const auto* codes = reinterpret_cast<const int8_t*>(q.data + r * q.cols + c0);
        float s;
        std::memcpy(&s, q.data + q.scales_at + static_cast<uint64_t>(r) * 4, 4);
        for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(codes[j]);
        return len;
    } else {
        const uint8_t* blk = q.data + static_cast<uint64_t>(r) * q.row_stride +
                             static_cast<uint64_t>(b) * q.blk_bytes;
        const float s = load_scale(q.e, blk);
        if constexpr (S == QScheme::Int8Sym) {
            const auto* codes = reinterpret_cast<const int8_t*>(blk + 2);
            for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(codes[j]);
        } else if constexpr (S == QScheme::Int8Asym) {
            const int z = blk[2];
            const uint8_t* codes = blk + 4;
            for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(int{codes[j]} - z);
        } else {
            const int z = S == QScheme::Int4Sym ? 8 : blk[2];
            const uint8_t* qs = blk + (S == QScheme::Int4Sym ? 2 : 4);
            int8_t codes[128];
            for (int64_t i = 0; i < q.chunk / 2; ++i) {
                codes[2 * i] = static_cast<int8_t>((qs[i] & 0xF) - z);
                codes[2 * i + 1] = static_cast<int8_t>((qs[i] >> 4) - z);
            }
            for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(codes[j]);
        }
        return len;
    }
}

// Few rows of A: each output channel dequantizes one piece at a time (on the stack,
// kInt8cChunk floats at most) and takes dot products with 8 interleaved partial sums,
// combined in a fixed order. No other scratch.
template <QScheme S>
void small_m(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda,
             float* y, int64_t ldy) {
    const int64_t min_chunk =
        std::max<int64_t>(16, kGemmParallelWork / std::max<int64_t>(1, q.cols * m));
    parallel_for(options, q.rows, min_chunk, [&](int64_t n0, int64_t n1) {
        alignas(64) float w[kInt8cChunk];
        for (int64_t col = n0; col < n1; ++col) {
            float acc[kQSmallM][8] = {};
            for (int64_t b = 0; b < q.chunks; ++b) {
                const int64_t k0 = b * q.chunk, len = dequant_piece<S>(q, col, b, w);
                for (int64_t i = 0; i < m; ++i) {
                    const float* ar = a + i * lda + k0;
                    float lanes[8];
                    std::copy(acc[i], acc[i] + 8, lanes);
                    int64_t t = 0;
                    for (; t + 8 <= len; t += 8)
#pragma omp simd
                        for (int l = 0; l < 8; ++l) lanes[l] += ar[t + l] * w[t + l];
                    for (; t < len; ++t) lanes[t % 8] += ar[t] * w[t];
                    std::copy(lanes, lanes + 8, acc[i]);
                }
            }
            for (int64_t i = 0; i < m; ++i) {
                const float* v = acc[i];
                y[i * ldy + col] =
                    ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
            }
        }
    });
}

bool use_avx2();

// More rows: fixed panels of kQPanel output channels; each panel is dequantized into a
// thread-local [kQPanel, K] buffer (kQPanel * K floats per thread: 512 KiB at K = 4096)
// and multiplied with the float GEMM on the calling thread (one thread per panel).
template <QScheme S>
void panels(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda,
            float* y, int64_t ldy) {
    const int64_t count = (q.rows + kQPanel - 1) / kQPanel;
    const int64_t panel_work = std::max<int64_t>(1, kQPanel * q.cols * m);
    const ExecOptions single{};
    parallel_for(options, count, std::max<int64_t>(1, kGemmParallelWork / panel_work),
                 [&](int64_t p0, int64_t p1) {
                     std::vector<float> w(static_cast<size_t>(kQPanel * q.cols));
                     for (int64_t p = p0; p < p1; ++p) {
                         const int64_t n0 = p * kQPanel, width = std::min(kQPanel, q.rows - n0);
                         for (int64_t r = 0; r < width; ++r) {
                             float* row = w.data() + r * q.cols;
#ifdef EP_QK_X86
                             if (use_avx2()) {
                                 dequant_row_avx2<S>(q, n0 + r, row);
                                 continue;
                             }
#endif
                             for (int64_t b = 0; b < q.chunks; ++b)
                                 dequant_piece<S>(q, n0 + r, b, row + b * q.chunk);
                         }
                         MatrixView av{a, m, q.cols, lda, false};
                         MatrixView wv{w.data(), q.cols, width, q.cols, true};
                         gemm_f32(single, av, wv, y + n0, ldy, false);
                     }
                 });
}

#ifdef EP_QK_X86
// AVX2 + FMA + F16C variants (chosen unless simd.h runs the baseline table). They compute
// the same dequantized weights (scale * float(code)) as dequant_piece, 32 at a time, and
// the same 8-lane accumulation order (lane = element index mod 8) with fused multiply-adds.

// The scale of row r's piece: int8c's f32 (blk null), else the block's f16 / bf16.
EP_QK_AVX2 inline float piece_scale(const QMat& q, int64_t r, const uint8_t* blk) {
    float s;
    if (!blk) {
        std::memcpy(&s, q.data + q.scales_at + static_cast<uint64_t>(r) * 4, 4);
        return s;
    }
    uint16_t d;
    std::memcpy(&d, blk, 2);
    if (q.e.scale_dtype != DType::BF16) return _cvtsh_ss(d);
    const uint32_t bits = static_cast<uint32_t>(d) << 16;
    std::memcpy(&s, &bits, 4);
    return s;
}

// Elements [j, j + 32) of a full piece as four vectors of float(code - zero) * scale.
template <QScheme S>
EP_QK_AVX2 inline void deq32(const uint8_t* codes, int z, __m256 s, int64_t j, __m256 out[4]) {
    if constexpr (S == QScheme::Int4Sym || S == QScheme::Int4Asym) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + j / 2));
        const __m128i mask = _mm_set1_epi8(0x0F), zz = _mm_set1_epi8(static_cast<char>(z));
        const __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
        const __m128i c0 = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), zz);
        const __m128i c1 = _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), zz);
        out[0] = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c0)));
        out[1] = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c0, 8))));
        out[2] = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c1)));
        out[3] = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c1, 8))));
    } else if constexpr (S == QScheme::Int8Asym) {
        const __m256i zz = _mm256_set1_epi32(z);
        for (int t = 0; t < 4; ++t) {
            const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + j + 8 * t));
            out[t] =
                _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(v), zz)));
        }
    } else {  // signed int8 codes (int8c, int8 symmetric)
        for (int t = 0; t < 4; ++t) {
            const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + j + 8 * t));
            out[t] = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
        }
    }
}

// Where piece b of row r keeps its codes, zero point and scale.
template <QScheme S>
EP_QK_AVX2 inline const uint8_t* piece_codes(const QMat& q, int64_t r, int64_t b, int& z,
                                             float& s) {
    if constexpr (S == QScheme::Int8Channel) {
        z = 0;
        s = piece_scale(q, r, nullptr);
        return q.data + r * q.cols + b * q.chunk;
    } else {
        const uint8_t* blk = q.data + static_cast<uint64_t>(r) * q.row_stride +
                             static_cast<uint64_t>(b) * q.blk_bytes;
        s = piece_scale(q, r, blk);
        z = S == QScheme::Int4Sym ? 8 : (S == QScheme::Int8Sym ? 0 : blk[2]);
        return blk + (S == QScheme::Int4Sym || S == QScheme::Int8Sym ? 2 : 4);
    }
}

// M rows (1..kQSmallM, a template argument so the accumulators stay in registers). With
// few rows one accumulator per row would be a chain of dependent FMAs, so each row keeps
// NA = 4 / M accumulators: 8-float group g of a 32-weight step goes to accumulator g % NA;
// they are added in a fixed order at the end.
template <QScheme S, int M>
EP_QK_AVX2 void small_m_avx2(const QMat& q, const float* a, int64_t lda, float* y, int64_t ldy,
                             int64_t n0, int64_t n1) {
    constexpr int NA = M == 1 ? 4 : (M == 2 ? 2 : 1);
    alignas(32) float w[kInt8cChunk];
    for (int64_t col = n0; col < n1; ++col) {
        __m256 acc[M][NA];
        for (auto& row : acc)
            for (auto& v : row) v = _mm256_setzero_ps();
        for (int64_t b = 0; b < q.chunks; ++b) {
            const int64_t k0 = b * q.chunk, len = std::min(q.chunk, q.cols - k0);
            if (len == q.chunk) {
                int z;
                float sf;
                const uint8_t* codes = piece_codes<S>(q, col, b, z, sf);
                const __m256 s = _mm256_set1_ps(sf);
                for (int64_t j = 0; j < len; j += 32) {
                    __m256 wv[4];
                    deq32<S>(codes, z, s, j, wv);
                    for (int i = 0; i < M; ++i) {
                        const float* ar = a + i * lda + k0 + j;
                        for (int t = 0; t < 4; ++t)
                            acc[i][t % NA] =
                                _mm256_fmadd_ps(_mm256_loadu_ps(ar + 8 * t), wv[t], acc[i][t % NA]);
                    }
                }
                continue;
            }
            dequant_piece<S>(q, col, b, w);  // the padded last piece: accumulator 0
            int64_t t = 0;
            for (; t + 8 <= len; t += 8)
                for (int i = 0; i < M; ++i)
                    acc[i][0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i * lda + k0 + t),
                                                _mm256_load_ps(w + t), acc[i][0]);
            if (t < len)
                for (int i = 0; i < M; ++i) {
                    alignas(32) float lanes[8];
                    _mm256_store_ps(lanes, acc[i][0]);
                    for (int64_t u = t; u < len; ++u)
                        lanes[u % 8] = std::fma(a[i * lda + k0 + u], w[u], lanes[u % 8]);
                    acc[i][0] = _mm256_load_ps(lanes);
                }
        }
        for (int i = 0; i < M; ++i) {
            __m256 sum = acc[i][0];
            if constexpr (NA == 2) sum = _mm256_add_ps(acc[i][0], acc[i][1]);
            if constexpr (NA == 4)
                sum = _mm256_add_ps(_mm256_add_ps(acc[i][0], acc[i][1]),
                                    _mm256_add_ps(acc[i][2], acc[i][3]));
            alignas(32) float v[8];
            _mm256_store_ps(v, sum);
            y[i * ldy + col] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        }
    }
}

// One stored row into `out` (cols floats), full pieces 32 at a time.
template <QScheme S>
EP_QK_AVX2 void dequant_row_avx2(const QMat& q, int64_t r, float* out) {
    for (int64_t b = 0; b < q.chunks; ++b) {
        const int64_t k0 = b * q.chunk;
        if (q.cols - k0 < q.chunk) {
            dequant_piece<S>(q, r, b, out + k0);
            continue;
        }
        int z;
        float sf;
        const uint8_t* codes = piece_codes<S>(q, r, b, z, sf);
        const __m256 s = _mm256_set1_ps(sf);
        for (int64_t j = 0; j < q.chunk; j += 32) {
            __m256 wv[4];
            deq32<S>(codes, z, s, j, wv);
            for (int t = 0; t < 4; ++t) _mm256_storeu_ps(out + k0 + j + 8 * t, wv[t]);
        }
    }
}

// int4 weights (symmetric or with a zero point, any group) with AVX-512: the scale is
// taken out of each group's sum. Each A row is first rearranged per 32 elements into the
// 16 even then the 16 odd ones (even_odd_rows), the order in which 16 bytes of nibbles
// unpack, and zero-padded to whole groups (padding codes dequantize to 0 too). Per 32
// weights: the low and the high nibbles widen to 16 int32 lanes each, and vpermps with a
// 16-entry table turns them into float(code - zero) (it reads only the low 4 bits of each
// lane, so the high nibble needs no mask); two FMAs with A give the group's partial sums,
// and one FMA per group adds scale * sum to the row's accumulator (two, alternating by
// group parity, added at the end). The order is fixed per output channel, so results do
// not depend on the thread split.
[[nodiscard]] std::vector<float> even_odd_rows(const float* a, int64_t m, int64_t lda, int64_t k,
                                               int64_t padded) {
    std::vector<float> out(static_cast<size_t>(m * padded), 0.0f);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j) {
            const int64_t base = j & ~int64_t{31}, r = j & 31;
            const int64_t at = base + (r % 2 == 0 ? r / 2 : 16 + r / 2);
            out[static_cast<size_t>(i * padded + at)] = a[i * lda + j];
        }
    return out;
}

// Group b of one stored row (at blk) for M rows of A, added to acc.
template <bool Asym, int M>
EP_QK_AVX512 inline void int4_group_avx512(const QMat& q, const uint8_t* blk, const float* ap,
                                           int64_t padded, int64_t b, __m512 (&acc)[M]) {
    const __m512 base = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int64_t pieces = q.chunk / 32;
    const size_t codes_at = Asym ? 4 : 2;
    uint16_t d;
    std::memcpy(&d, blk, 2);
    float s;
    if (q.e.scale_dtype == DType::BF16) {
        const uint32_t bits = static_cast<uint32_t>(d) << 16;
        std::memcpy(&s, &bits, 4);
    } else {
        s = _cvtsh_ss(d);
    }
    const __m512 table =
        _mm512_sub_ps(base, _mm512_set1_ps(Asym ? static_cast<float>(blk[2]) : 8.0f));
    __m512 sum[M];
    for (int64_t p = 0; p < pieces; ++p) {
        const __m128i v =
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + codes_at + 16 * p));
        // Each lane holds one byte: vpermps reads its low nibble, and the same lanes
        // shifted right by 4 give the high one (one widening, not two).
        const __m512i bytes = _mm512_cvtepu8_epi32(v);
        const __m512 wl = _mm512_permutexvar_ps(bytes, table);
        const __m512 wh = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), table);
        for (int i = 0; i < M; ++i) {
            const float* ar = ap + i * padded + b * q.chunk + 32 * p;
            const __m512 lo = _mm512_mul_ps(_mm512_loadu_ps(ar), wl);
            sum[i] = p == 0 ? lo : _mm512_add_ps(sum[i], lo);
            sum[i] = _mm512_fmadd_ps(_mm512_loadu_ps(ar + 16), wh, sum[i]);
        }
    }
    for (int i = 0; i < M; ++i) acc[i] = _mm512_fmadd_ps(sum[i], _mm512_set1_ps(s), acc[i]);
}

template <bool Asym, int M>
EP_QK_AVX512 void int4_rows_avx512(const QMat& q, const float* ap, int64_t padded, float* y,
                                   int64_t ldy, int64_t n0, int64_t n1) {
    for (int64_t row = n0; row < n1; ++row) {
        // Even groups into acc0, odd ones into acc1 (named, so they stay in registers).
        __m512 acc0[M], acc1[M];
        for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
        const uint8_t* blk = q.data + static_cast<uint64_t>(row) * q.row_stride;
        int64_t b = 0;
        for (; b + 2 <= q.chunks; b += 2, blk += 2 * q.blk_bytes) {
            int4_group_avx512<Asym, M>(q, blk, ap, padded, b, acc0);
            int4_group_avx512<Asym, M>(q, blk + q.blk_bytes, ap, padded, b + 1, acc1);
        }
        if (b < q.chunks) int4_group_avx512<Asym, M>(q, blk, ap, padded, b, acc0);
        for (int i = 0; i < M; ++i)
            y[i * ldy + row] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[i], acc1[i]));
    }
}
#endif

[[maybe_unused]] bool use_avx2() {
#ifdef EP_QK_X86
    static const bool yes = std::string_view(simd_kernels().name) != "baseline" &&
                            __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            __builtin_cpu_supports("f16c");
    return yes;
#else
    return false;
#endif
}

[[maybe_unused]] bool use_avx512() {
#ifdef EP_QK_X86
    static const bool yes =
        std::string_view(simd_kernels().name) == "avx512" && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq");
    return yes;
#else
    return false;
#endif
}

template <QScheme S>
void run(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda,
         float* y, int64_t ldy) {
#ifdef EP_QK_X86
    if constexpr (S == QScheme::Int4Sym || S == QScheme::Int4Asym) {
        if (use_avx512() && m <= kQSmallM) {
            constexpr bool asym = S == QScheme::Int4Asym;
            const int64_t padded = q.chunks * q.chunk;
            const std::vector<float> ap = even_odd_rows(a, m, lda, q.cols, padded);
            const int64_t min_chunk =
                std::max<int64_t>(16, kGemmParallelWork / std::max<int64_t>(1, q.cols * m));
            parallel_for(options, q.rows, min_chunk, [&](int64_t n0, int64_t n1) {
                switch (m) {
                    case 1:
                        return int4_rows_avx512<asym, 1>(q, ap.data(), padded, y, ldy, n0, n1);
                    case 2:
                        return int4_rows_avx512<asym, 2>(q, ap.data(), padded, y, ldy, n0, n1);
                    case 3:
                        return int4_rows_avx512<asym, 3>(q, ap.data(), padded, y, ldy, n0, n1);
                    default:
                        return int4_rows_avx512<asym, 4>(q, ap.data(), padded, y, ldy, n0, n1);
                }
            });
            return;
        }
    }
    if (use_avx2() && m <= kQSmallM) {
        const int64_t min_chunk =
            std::max<int64_t>(16, kGemmParallelWork / std::max<int64_t>(1, q.cols * m));
        parallel_for(options, q.rows, min_chunk, [&](int64_t n0, int64_t n1) {
            switch (m) {
                case 1:
                    return small_m_avx2<S, 1>(q, a, lda, y, ldy, n0, n1);
                case 2:
                    return small_m_avx2<S, 2>(q, a, lda, y, ldy, n0, n1);
                case 3:
                    return small_m_avx2<S, 3>(q, a, lda, y, ldy, n0, n1);
                default:
                    return small_m_avx2<S, 4>(q, a, lda, y, ldy, n0, n1);
            }
        });
        return;
    }
#endif
    if (m <= kQSmallM)
        small_m<S>(options, q, a, m, lda, y, ldy);
    else
        panels<S>(options, q, a, m, lda, y, ldy);
}

void run_scheme(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda,
                float* y, int64_t ldy, const std::string& name) {
    switch (q.e.scheme) {
        case QScheme::Int8Channel:
            return run<QScheme::Int8Channel>(options, q, a, m, lda, y, ldy);
        case QScheme::Int8Sym:
            return run<QScheme::Int8Sym>(options, q, a, m, lda, y, ldy);
        case QScheme::Int8Asym:
            return run<QScheme::Int8Asym>(options, q, a, m, lda, y, ldy);
        case QScheme::Int4Sym:
            return run<QScheme::Int4Sym>(options, q, a, m, lda, y, ldy);
        case QScheme::Int4Asym:
            return run<QScheme::Int4Asym>(options, q, a, m, lda, y, ldy);
        default:
            throw InputError(cat("weight '", name, "' has no encoding this kernel reads"));
    }
}

}  // namespace

void qgemm_encoded_f32(const ExecOptions& options, QPackCache* qpacks, const MatrixView& a,
                       const Tensor& w, float* y, int64_t ldy) {
    const std::string what = cat("weight '", w.name, "'");
    check_encoding(w.encoding, what);
    w.check_consistent();
    const EncodedDims dims = encoded_dims(w.encoding, w.shape, what);
    std::vector<float> at;  // A made row-major when it is transposed
    const float* pa = a.data;
    int64_t lda = a.ld;
    if (a.transposed) {
        at.resize(static_cast<size_t>(a.rows * a.cols));
        for (int64_t i = 0; i < a.rows; ++i)
            for (int64_t k = 0; k < a.cols; ++k)
                at[static_cast<size_t>(i * a.cols + k)] = a.data[k * a.ld + i];
        pa = at.data();
        lda = a.cols;
    }
    if (a.rows == 0 || dims.rows == 0) return;
    if (w.encoding.is_sparse()) return sparse_gemm_f32(options, qpacks, w, pa, a.rows, lda, y, ldy);
    const QMat q = qmat_from(w.encoding, w.data.bytes().data(), dims.rows, dims.cols);
    if (options.int8_activations && qpacks && qpack_i4_supported(q.e))
        return qgemm_i8(options, qpacks->get(w), pa, a.rows, lda, y, ldy);
    run_scheme(options, q, pa, a.rows, lda, y, ldy, w.name);
}

void qgemm_encoded_rows(const ExecOptions& options, const Encoding& e, const std::byte* data,
                        int64_t rows, int64_t cols, const float* a, int64_t m, int64_t lda,
                        float* y, int64_t ldy, const std::string& name) {
    if (m == 0 || rows == 0) return;
    run_scheme(options, qmat_from(e, data, rows, cols), a, m, lda, y, ldy, name);
}

}  // namespace ep::rt
