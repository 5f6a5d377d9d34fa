// The int8-activation kernel for int4 weights (qgemm.h: QPackI4, qgemm_i8): an opt-in
// variant (ExecOptions::int8_activations) like ONNX Runtime's MatMulNBits accuracy_level 4.
//
// Activations: each row of A is quantized per 32 elements like llama.cpp's Q8_0:
//   d = max|x| / 127 (NaNs ignored), q = nearbyint(x * (1 / d)) (ties to even) clamped to
//   [-127, 127], q = 0 where that product is NaN; d = 0 -> q = 0
// and the block's code sum is kept for the weights' zero point.
//
// Weights are repacked once (QPackI4, at the first run) into tiles of 16 output channels:
//   codes:  for each 32-element sub-block sb of the row, 256 bytes = 4 chunks of 64; chunk c
//           holds 4 bytes per channel (channel r at bytes 4r..4r+3), byte j = code(8c + j)
//           | code(8c + 4 + j) << 4, codes unsigned 0..15 as stored (code - zero = value)
//   scales: per group, 16 f16 or bf16 (the stored bits)
//   zeros:  per group, 16 int32 (with a zero point only; symmetric codes have zero 8)
//   the tile padded to a multiple of 64 bytes
// Channels past N in the last tile have zero codes and scales. A tile's 16 channels are the
// 16 int32 lanes of one AVX-512 register: the low nibbles of a chunk are elements 8c..8c+3
// of every channel and the high nibbles 8c+4..8c+7, so one vpdpbusd with the 4 activation
// bytes broadcast adds 4 products per channel, exactly, in int32.
//
// Per channel and sub-block: dot = sum(code * q) - zero * sum(q) (exact; the AVX-512 code
// multiplies the high nibbles in place, as 16 * code, and shifts that sum back), then
//   acc[sb & 1] = fma(float(dot), scale * d, acc[sb & 1]);  y = acc[0] + acc[1]
// in that order in every implementation (AVX-512 VNNI, AVX2, portable), so all three give
// the same bits, and a channel's result does not depend on the thread split.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <sys/mman.h>

#include "ir/checked.h"
#include "ir/sparse.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/kernels/simd.h"
#include "runtime-check/kernels/thread_pool.h"

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12's AVX-512 intrinsics build their results from _mm512_undefined_*() and warn that
// those "may be used uninitialized" once inlined here: a false positive of the headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define EP_Q8_X86 1
#define EP_Q8_AVX512 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define EP_Q8_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace ep::rt {

namespace {

constexpr int kTile = 16;
// Bytes ahead of the codes being read that the AVX-512 kernel prefetches into L2 (the
// scales: an eighth of that). Tried on this machine (bench/qgemv.sh, 4096 x 4096, 1 thread):
// none, 512 .. 32768 bytes, L1 / L2 / L3 hints; 8192 into L2 was the fastest.
constexpr int64_t kPrefetch = 8192;

// One activation row quantized per 32 elements, zero-padded to whole sub-blocks.
struct QRow {
    std::vector<int8_t> q;          // subs * 32
    std::vector<float> d;           // subs
    std::vector<int32_t> neg_sum;   // subs: -sum of q
    std::vector<int32_t> neg_sum8;  // subs: -8 * sum of q (the symmetric zero point's term)
};

QRow empty_row(int64_t subs) {
    QRow r;
    r.q.assign(static_cast<size_t>(subs * 32), 0);
    r.d.assign(static_cast<size_t>(subs), 0.0f);
    r.neg_sum.assign(static_cast<size_t>(subs), 0);
    r.neg_sum8.assign(static_cast<size_t>(subs), 0);
    return r;
}

void quantize_row(const float* x, int64_t k, QRow& r) {
    const auto subs = static_cast<int64_t>(r.d.size());
    for (int64_t b = 0; b < subs; ++b) {
        const int64_t k0 = b * 32, len = std::min<int64_t>(32, k - k0);
        float amax = 0.0f;
        for (int64_t j = 0; j < len; ++j) amax = std::max(amax, std::fabs(x[k0 + j]));
        const float d = amax / 127.0f, inv = d > 0.0f ? 1.0f / d : 0.0f;
        r.d[static_cast<size_t>(b)] = d;
        int32_t s = 0;
        for (int64_t j = 0; j < len; ++j) {
            float v = x[k0 + j] * inv;
            if (std::isnan(v)) v = 0.0f;  // NaN in x (or inf * 0): code 0
            const auto c = static_cast<int8_t>(std::clamp(std::nearbyint(v), -127.0f, 127.0f));
            r.q[static_cast<size_t>(k0 + j)] = c;
            s += c;
        }
        r.neg_sum[static_cast<size_t>(b)] = -s;
        r.neg_sum8[static_cast<size_t>(b)] = -8 * s;
    }
}

float scale_of(const QPackI4& p, const uint16_t* bits) {
    return p.bf16 ? bf16_to_float(*bits) : half_to_float(*bits);
}

#ifdef EP_Q8_X86
// quantize_row with AVX-512: the same operations, so the same bytes (max is exact and
// ignores NaNs as std::max does here; vcvtps2dq rounds to nearest even like nearbyint).
EP_Q8_AVX512 void quantize_row_avx512(const float* x, int64_t k, QRow& r) {
    const __m512 lim_lo = _mm512_set1_ps(-127.0f), lim_hi = _mm512_set1_ps(127.0f);
    for (int64_t b = 0; b < static_cast<int64_t>(r.d.size()); ++b) {
        // Sub-blocks of the last group may lie wholly past k (group 64 or 128): len 0.
        const int64_t k0 = b * 32, len = std::clamp<int64_t>(k - k0, 0, 32);
        const auto m0 = static_cast<__mmask16>(len >= 16 ? 0xFFFFu : (1u << len) - 1u);
        const auto m1 =
            static_cast<__mmask16>(len >= 32 ? 0xFFFFu : (len > 16 ? (1u << (len - 16)) - 1u : 0u));
        const __m512 v0 = _mm512_maskz_loadu_ps(m0, x + k0);
        const __m512 v1 = _mm512_maskz_loadu_ps(m1, x + k0 + 16);
        // vmaxps returns its second operand when either is NaN: NaNs are skipped.
        __m512 a = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
        a = _mm512_max_ps(_mm512_abs_ps(v1), a);
        const float amax = _mm512_reduce_max_ps(a);
        const float d = amax / 127.0f, inv = d > 0.0f ? 1.0f / d : 0.0f;
        r.d[static_cast<size_t>(b)] = d;
        __m512 t0 = _mm512_mul_ps(v0, _mm512_set1_ps(inv));
        __m512 t1 = _mm512_mul_ps(v1, _mm512_set1_ps(inv));
        t0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t0, t0, _CMP_ORD_Q), t0);
        t1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t1, t1, _CMP_ORD_Q), t1);
        t0 = _mm512_roundscale_ps(t0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        t1 = _mm512_roundscale_ps(t1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i i0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t0, lim_lo), lim_hi));
        const __m512i i1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t1, lim_lo), lim_hi));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(r.q.data() + k0), _mm512_cvtepi32_epi8(i0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(r.q.data() + k0 + 16),
                         _mm512_cvtepi32_epi8(i1));
        const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
        r.neg_sum[static_cast<size_t>(b)] = -sum;
        r.neg_sum8[static_cast<size_t>(b)] = -8 * sum;
    }
}
#endif

// Portable: the same integer dot products and float operations as the SIMD versions.
void tiles_portable(const QPackI4& p, const QRow* xs, int m, float* y, int64_t ldy, int64_t t0,
                    int64_t t1) {
    const int64_t per_group = p.group / 32;
    for (int64_t t = t0; t < t1; ++t) {
        const uint8_t* codes = p.codes(t);
        for (int i = 0; i < m; ++i) {
            const QRow& x = xs[i];
            for (int r = 0; r < kTile; ++r) {
                const int64_t ch = t * kTile + r;
                if (ch >= p.rows) break;
                float acc[2] = {0.0f, 0.0f};
                for (int64_t sb = 0; sb < p.subs; ++sb) {
                    const int64_t g = sb / per_group;
                    const auto at = static_cast<size_t>(sb);
                    int32_t dot =
                        p.asym ? p.zeros(t)[g * kTile + r] * x.neg_sum[at] : x.neg_sum8[at];
                    const uint8_t* blk = codes + sb * 256;
                    const int8_t* q = x.q.data() + sb * 32;
                    for (int c = 0; c < 4; ++c)
                        for (int j = 0; j < 4; ++j) {
                            const uint8_t byte = blk[c * 64 + r * 4 + j];
                            dot += (byte & 0xF) * q[8 * c + j] + (byte >> 4) * q[8 * c + 4 + j];
                        }
                    const float scale = scale_of(p, p.scales(t) + g * kTile + r) * x.d[at];
                    acc[sb & 1] = std::fma(static_cast<float>(dot), scale, acc[sb & 1]);
                }
                y[i * ldy + ch] = acc[0] + acc[1];
            }
        }
    }
}

#ifdef EP_Q8_X86
// One sub-block of T consecutive tiles for M activation rows, into accumulator `slot`. T = 2
// shares each activation broadcast between two tiles.
template <int M, int T>
EP_Q8_AVX512 inline void step_avx512(const QPackI4& p, const QRow* xs, int64_t t, int64_t sb,
                                     int shift, int slot, __m512 (&acc)[T][M][2]) {
    const __m512i low = _mm512_set1_epi8(0x0F), high = _mm512_set1_epi8(static_cast<char>(0xF0));
    const int64_t g = sb >> shift;
    const auto at = static_cast<size_t>(sb);
    __m512i lo[T][4], hi[T][4];
    __m512 sc[T];
    for (int u = 0; u < T; ++u) {
        const uint8_t* blk = p.codes(t + u) + sb * 256;
        for (int c = 0; c < 4; ++c) {
            _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetch + 64 * c), _MM_HINT_T1);
            const __m512i v = _mm512_load_si512(blk + 64 * c);
            lo[u][c] = _mm512_and_si512(v, low);
            hi[u][c] = _mm512_and_si512(v, high);  // 16 * code
        }
        const uint16_t* sp = p.scales(t + u) + g * kTile;
        _mm_prefetch(reinterpret_cast<const char*>(sp) + kPrefetch / 8, _MM_HINT_T1);
        const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp));
        sc[u] = p.bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16))
                       : _mm512_cvtph_ps(bits);
    }
    for (int i = 0; i < M; ++i) {
        const QRow& x = xs[i];
        const int32_t* q32 = reinterpret_cast<const int32_t*>(x.q.data()) + sb * 8;
        __m512i d0[T], d1[T];
        for (int u = 0; u < T; ++u) {
            d0[u] = p.asym ? _mm512_mullo_epi32(_mm512_loadu_si512(p.zeros(t + u) + g * kTile),
                                                _mm512_set1_epi32(x.neg_sum[at]))
                           : _mm512_set1_epi32(x.neg_sum8[at]);
            d1[u] = _mm512_setzero_si512();
        }
        for (int c = 0; c < 4; ++c) {
            const __m512i b0 = _mm512_set1_epi32(q32[2 * c]),
                          b1 = _mm512_set1_epi32(q32[2 * c + 1]);
            for (int u = 0; u < T; ++u) {
                d0[u] = _mm512_dpbusd_epi32(d0[u], lo[u][c], b0);
                d1[u] = _mm512_dpbusd_epi32(d1[u], hi[u][c], b1);
            }
        }
        const __m512 dx = _mm512_set1_ps(x.d[at]);
        for (int u = 0; u < T; ++u) {
            const __m512i dot = _mm512_add_epi32(d0[u], _mm512_srai_epi32(d1[u], 4));
            acc[u][i][slot] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(sc[u], dx), acc[u][i][slot]);
        }
    }
}

// Tiles [t, t + T) for M activation rows.
template <int M, int T>
EP_Q8_AVX512 inline void run_tiles_avx512(const QPackI4& p, const QRow* xs, float* y, int64_t ldy,
                                          int64_t t, int shift) {
    __m512 acc[T][M][2];
    for (auto& tile : acc)
        for (auto& a : tile) a[0] = a[1] = _mm512_setzero_ps();
    int64_t sb = 0;
    for (; sb + 2 <= p.subs; sb += 2) {
        step_avx512<M, T>(p, xs, t, sb, shift, 0, acc);
        step_avx512<M, T>(p, xs, t, sb + 1, shift, 1, acc);
    }
    if (sb < p.subs) step_avx512<M, T>(p, xs, t, sb, shift, 0, acc);
    for (int u = 0; u < T; ++u) {
        const int64_t ch0 = (t + u) * kTile;
        const int64_t live = std::min<int64_t>(kTile, p.rows - ch0);
        const auto mask = static_cast<__mmask16>((1u << live) - 1u);
        for (int i = 0; i < M; ++i)
            _mm512_mask_storeu_ps(y + i * ldy + ch0, mask,
                                  _mm512_add_ps(acc[u][i][0], acc[u][i][1]));
    }
}

template <int M>
EP_Q8_AVX512 void tiles_avx512(const QPackI4& p, const QRow* xs, float* y, int64_t ldy, int64_t t0,
                               int64_t t1) {
    const int shift = p.group == 32 ? 0 : (p.group == 64 ? 1 : 2);  // sub-block -> group
    int64_t t = t0;
    if constexpr (M <= 2)
        for (; t + 2 <= t1; t += 2) run_tiles_avx512<M, 2>(p, xs, y, ldy, t, shift);
    for (; t < t1; ++t) run_tiles_avx512<M, 1>(p, xs, y, ldy, t, shift);
}

// AVX2 without VNNI: the tile as two halves of 8 channels; vpmaddubsw + vpmaddwd give the
// same exact int32 sums (|code * q| <= 15 * 127, two of them fit in int16).
template <int M>
EP_Q8_AVX2 inline void step_avx2(const QPackI4& p, const QRow* xs, int64_t t, int h, int64_t sb,
                                 int shift, int slot, __m256 (&acc)[M][2]) {
    const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const int64_t g = sb >> shift;
    const auto at = static_cast<size_t>(sb);
    const uint8_t* blk = p.codes(t) + sb * 256 + 32 * h;
    __m256i lo[4], hi[4];
    for (int c = 0; c < 4; ++c) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 64 * c));
        lo[c] = _mm256_and_si256(v, low);
        hi[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    }
    const __m128i bits =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scales(t) + g * kTile + 8 * h));
    const __m256 sc = p.bf16
                          ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16))
                          : _mm256_cvtph_ps(bits);
    for (int i = 0; i < M; ++i) {
        const QRow& x = xs[i];
        const int32_t* q32 = reinterpret_cast<const int32_t*>(x.q.data()) + sb * 8;
        __m256i d = p.asym ? _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                                    p.zeros(t) + g * kTile + 8 * h)),
                                                _mm256_set1_epi32(x.neg_sum[at]))
                           : _mm256_set1_epi32(x.neg_sum8[at]);
        for (int c = 0; c < 4; ++c) {
            const __m256i p0 = _mm256_maddubs_epi16(lo[c], _mm256_set1_epi32(q32[2 * c]));
            const __m256i p1 = _mm256_maddubs_epi16(hi[c], _mm256_set1_epi32(q32[2 * c + 1]));
            d = _mm256_add_epi32(d, _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones));
        }
        const __m256 scale = _mm256_mul_ps(sc, _mm256_set1_ps(x.d[at]));
        acc[i][slot] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), scale, acc[i][slot]);
    }
}

template <int M>
EP_Q8_AVX2 void tiles_avx2(const QPackI4& p, const QRow* xs, float* y, int64_t ldy, int64_t t0,
                           int64_t t1) {
    const int shift = p.group == 32 ? 0 : (p.group == 64 ? 1 : 2);
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t ch0 = t * kTile;
        for (int h = 0; h < 2; ++h) {
            __m256 acc[M][2];
            for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
            int64_t sb = 0;
            for (; sb + 2 <= p.subs; sb += 2) {
                step_avx2<M>(p, xs, t, h, sb, shift, 0, acc);
                step_avx2<M>(p, xs, t, h, sb + 1, shift, 1, acc);
            }
            if (sb < p.subs) step_avx2<M>(p, xs, t, h, sb, shift, 0, acc);
            const int64_t live = std::min<int64_t>(8, p.rows - ch0 - 8 * h);
            for (int i = 0; i < M; ++i) {
                alignas(32) float v[8];
                _mm256_store_ps(v, _mm256_add_ps(acc[i][0], acc[i][1]));
                for (int64_t r = 0; r < live; ++r) y[i * ldy + ch0 + 8 * h + r] = v[r];
            }
        }
    }
}
#endif

enum class Isa { Portable, Avx2, Avx512Vnni };

Isa choose_isa() {
#ifdef EP_Q8_X86
    const std::string_view table = simd_kernels().name;
    if (table == "avx512" && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni"))
        return Isa::Avx512Vnni;
    if (table != "baseline" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return Isa::Avx2;
#endif
    return Isa::Portable;
}

template <int M>
void tiles([[maybe_unused]] Isa isa, const QPackI4& p, const QRow* xs, float* y, int64_t ldy,
           int64_t t0, int64_t t1) {
#ifdef EP_Q8_X86
    if (isa == Isa::Avx512Vnni) return tiles_avx512<M>(p, xs, y, ldy, t0, t1);
    if (isa == Isa::Avx2) return tiles_avx2<M>(p, xs, y, ldy, t0, t1);
#endif
    tiles_portable(p, xs, M, y, ldy, t0, t1);
}

}  // namespace

bool qpack_i4_supported(const Encoding& e) {
    return e.scheme == QScheme::Int4Sym || e.scheme == QScheme::Int4Asym;
}

std::unique_ptr<QPackI4> pack_i4(const Tensor& w, const std::string& what) {
    check_encoding(w.encoding, what);
    w.check_consistent();
    if (!qpack_i4_supported(w.encoding))
        throw InternalError(cat(what, ": the int8-activation kernel reads int4 weights only"));
    const Encoding& e = w.encoding;
    const auto dims = encoded_dims(e, w.shape, what);
    auto p = std::make_unique<QPackI4>();
    p->rows = dims.rows;
    p->cols = dims.cols;
    p->group = e.group;
    p->groups = (dims.cols + e.group - 1) / e.group;
    p->subs = p->groups * (e.group / 32);
    p->tiles = (dims.rows + kTile - 1) / kTile;
    p->asym = e.scheme == QScheme::Int4Asym;
    p->bf16 = e.scale_dtype == DType::BF16;
    const auto tile = static_cast<size_t>(p->subs * 256 + p->groups * (p->asym ? 96 : 32));
    p->tile_bytes = (tile + 63) / 64 * 64;
    const auto total = checked_mul(p->tile_bytes, static_cast<uint64_t>(p->tiles));
    if (!total) throw InputError(cat(what, ": too large to repack"));
    // 2 MiB aligned and, where the kernel allows it, backed by huge pages: the kernel
    // streams the whole pack, and the hardware prefetchers stop at page boundaries.
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = (static_cast<size_t>(*total) + kHuge - 1) / kHuge * kHuge;
    auto* mem = static_cast<std::byte*>(std::aligned_alloc(kHuge, std::max(bytes, kHuge)));
    if (!mem) throw InputError(cat(what, ": out of memory repacking ", *total, " bytes"));
    p->storage.reset(mem);
#ifdef MADV_HUGEPAGE
    (void)madvise(mem, std::max(bytes, kHuge), MADV_HUGEPAGE);
#endif
    std::memset(mem, 0, static_cast<size_t>(*total));
    p->base = mem;

    const bool asym = p->asym;
    const size_t codes_at = asym ? 4 : 2;
    const uint64_t row_stride = row_bytes(e, dims.cols);
    const size_t blk = block_bytes(e);
    const auto* src = reinterpret_cast<const uint8_t*>(w.data.bytes().data());
    for (int64_t ch = 0; ch < dims.rows; ++ch) {
        const int64_t t = ch / kTile, r = ch % kTile;
        auto* codes = reinterpret_cast<uint8_t*>(p->base) + static_cast<size_t>(t) * p->tile_bytes;
        auto* scales = reinterpret_cast<uint16_t*>(codes + p->subs * 256);
        auto* zeros = reinterpret_cast<int32_t*>(codes + p->subs * 256 + p->groups * 32);
        for (int64_t g = 0; g < p->groups; ++g) {
            const uint8_t* b = src + static_cast<uint64_t>(ch) * row_stride + g * blk;
            uint16_t d;
            std::memcpy(&d, b, 2);
            scales[g * kTile + r] = d;
            if (asym) zeros[g * kTile + r] = b[2];
            const uint8_t* qs = b + codes_at;
            for (int64_t s = 0; s < e.group / 32; ++s) {
                uint8_t* dst = codes + (g * (e.group / 32) + s) * 256;
                auto code = [&](int64_t j) {  // element j of this 32-element sub-block
                    const uint8_t byte = qs[s * 16 + j / 2];
                    return static_cast<uint8_t>(j % 2 == 0 ? byte & 0xF : byte >> 4);
                };
                for (int c = 0; c < 4; ++c)
                    for (int j = 0; j < 4; ++j)
                        dst[c * 64 + r * 4 + j] =
                            static_cast<uint8_t>(code(8 * c + j) | code(8 * c + 4 + j) << 4);
            }
        }
    }
    return p;
}

void QPackI4::Free::operator()(std::byte* p) const {
    std::free(p);
}

const QPackI4& QPackCache::get(const Tensor& w) {
    const std::string what = cat("weight '", w.name, "'");
    auto& slot = packs_[w.data.bytes().data()];
    if (slot) {
        const auto dims = encoded_dims(w.encoding, w.shape, what);
        const bool same = slot->rows == dims.rows && slot->cols == dims.cols &&
                          slot->group == w.encoding.group &&
                          slot->asym == (w.encoding.scheme == QScheme::Int4Asym) &&
                          slot->bf16 == (w.encoding.scale_dtype == DType::BF16);
        if (same) return *slot;
    }
    // A sparse weight (ir/sparse.h) is packed from its dense form: the same packed bytes.
    slot = pack_i4(w.encoding.is_sparse() ? densify_tensor(w) : w, what);
    return *slot;
}

QPackCache::QPackCache() = default;
QPackCache::~QPackCache() = default;

void qgemm_i8(const ExecOptions& options, const QPackI4& p, const float* a, int64_t m, int64_t lda,
              float* y, int64_t ldy) {
    static const Isa isa = choose_isa();
    std::vector<QRow> xs;
    xs.reserve(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
        xs.push_back(empty_row(p.subs));
#ifdef EP_Q8_X86
        if (isa == Isa::Avx512Vnni) {
            quantize_row_avx512(a + i * lda, p.cols, xs.back());
            continue;
        }
#endif
        quantize_row(a + i * lda, p.cols, xs.back());
    }
    const int64_t min_tiles = std::max<int64_t>(
        1, kGemmParallelWork / std::max<int64_t>(1, kTile * p.cols * std::min<int64_t>(m, 4)));
    for (int64_t i0 = 0; i0 < m; i0 += 4) {
        const int rows = static_cast<int>(std::min<int64_t>(4, m - i0));
        const QRow* x = xs.data() + i0;
        float* yi = y + i0 * ldy;
        parallel_for(options, p.tiles, min_tiles, [&](int64_t t0, int64_t t1) {
            switch (rows) {
                case 1:
                    return tiles<1>(isa, p, x, yi, ldy, t0, t1);
                case 2:
                    return tiles<2>(isa, p, x, yi, ldy, t0, t1);
                case 3:
                    return tiles<3>(isa, p, x, yi, ldy, t0, t1);
                default:
                    return tiles<4>(isa, p, x, yi, ldy, t0, t1);
            }
        });
    }
}

}  // namespace ep::rt
