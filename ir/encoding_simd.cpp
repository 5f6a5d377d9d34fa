// AVX2 kernels of the RTN quantizer (encoding_simd.h): every grouped scheme (int4 / int8,
// symmetric / asymmetric, groups 32 / 64 / 128, f16 / bf16 scales), int8c rows, and the
// tile transpose of the axis-0 path. Compiled with per-function target attributes and
// chosen at run time (rtn_avx2_kernels), so the library still runs on any x86-64 CPU.
//
// Exactly the reference's bytes (encoding.cpp), step by step, for a block of finite values:
//   - largest magnitude: max and min of the block; the larger magnitude wins, and on a tie
//     of +a and -a the first element of magnitude a (the reference keeps the first); an
//     all-zero block gives m = +0 (so int4's d = +0 / -8 = -0, stored as such);
//   - asymmetric range: lo = min(min, 0) and hi = max(max, 0), with +0 for the zero as the
//     reference's std::min / std::max starting from 0.0f give;
//   - the scale: the same float division, then f16 by F16C round-to-nearest-even (equal to
//     float_to_half for every non-NaN float: checked over all 2^32 inputs) or bf16 by the
//     same integer rounding as float_to_bf16; codes use the rounded scale;
//   - codes: a true division x / d (not a reciprocal), round half away from zero (exact:
//     truncate, then add +-1 when |x/d - trunc| >= 0.5, the difference being exact), zero
//     point added in float, clamp, convert. x / d is finite for finite x (d is within a
//     factor 4 of the range it was taken from, or infinite, or 0 which stores code 0).
// A block holding an infinity or a NaN is written by the reference block function; a short
// last block is padded with zeros first (0.0 never changes the block's m, lo or hi and
// quantizes to the code the reference pads with).
#include "encoding_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define EP_RTN_X86 1
#define EP_RTN_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace ep::detail {

#ifdef EP_RTN_X86
namespace {

EP_RTN_AVX2 inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
EP_RTN_AVX2 inline float hmin(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// The scale's stored bits and the value the codes use (d is never NaN here).
template <bool BF16>
EP_RTN_AVX2 inline uint16_t scale_bits(float d) {
    if constexpr (BF16) {
        uint32_t x;
        std::memcpy(&x, &d, 4);
        x += 0x7FFF + ((x >> 16) & 1);
        return static_cast<uint16_t>(x >> 16);
    } else {
        return static_cast<uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    }
}
template <bool BF16>
EP_RTN_AVX2 inline float scale_value(uint16_t bits) {
    if constexpr (BF16) {
        const uint32_t x = static_cast<uint32_t>(bits) << 16;
        float f;
        std::memcpy(&f, &x, 4);
        return f;
    } else {
        return _cvtsh_ss(bits);
    }
}

// round(q) half away from zero, as std::round, for any float q.
EP_RTN_AVX2 inline __m256 round_half_away(__m256 q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(q, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(q, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(q, sign), _mm256_set1_ps(1.0f));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, step));
}

// 32 int32 codes (c[0..3], 8 each, in element order) to 32 bytes in order.
EP_RTN_AVX2 inline __m256i bytes_in_order(const __m256i c[4], bool is_signed) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i a = _mm256_packs_epi32(c[0], c[1]), b = _mm256_packs_epi32(c[2], c[3]);
    const __m256i bytes = is_signed ? _mm256_packs_epi16(a, b) : _mm256_packus_epi16(a, b);
    return _mm256_permutevar8x32_epi32(bytes, order);
}

template <QScheme S>
struct SchemeInfo {
    static constexpr bool kSym = S == QScheme::Int4Sym || S == QScheme::Int8Sym;
    static constexpr bool kInt4 = S == QScheme::Int4Sym || S == QScheme::Int4Asym;
    static constexpr float kQmin = S == QScheme::Int4Sym   ? -8.0f
                                   : S == QScheme::Int8Sym ? -127.0f
                                                           : 0.0f;
    static constexpr float kQmax = S == QScheme::Int4Sym    ? 7.0f
                                   : S == QScheme::Int8Sym  ? 127.0f
                                   : S == QScheme::Int4Asym ? 15.0f
                                                            : 255.0f;
    static constexpr size_t kCodesAt = kSym ? 2 : 4;
};

template <QScheme S, int G, bool BF16>
EP_RTN_AVX2 void blocks_avx2(const Encoding& e, const float* x, int64_t len, int64_t nblocks,
                             uint8_t* out) {
    using I = SchemeInfo<S>;
    constexpr int V = G / 8;
    constexpr size_t kCodeBytes = I::kInt4 ? G / 2 : G;
    constexpr size_t kBlockBytes = I::kCodesAt + kCodeBytes;
    alignas(32) float pad[G];
    for (int64_t b = 0; b < nblocks; ++b, out += kBlockBytes) {
        const float* p = x + b * G;
        const int64_t n = len - b * G;
        if (n < G) {
            std::memcpy(pad, p, static_cast<size_t>(n) * sizeof(float));
            std::fill(pad + n, pad + G, 0.0f);
            p = pad;
        }
        __m256 v[V];
#pragma GCC unroll 16
        for (int i = 0; i < V; ++i) v[i] = _mm256_loadu_ps(p + 8 * i);
        // x - x is NaN exactly for an infinity or a NaN; the sum keeps any NaN.
        __m256 nonfinite = _mm256_sub_ps(v[0], v[0]);
        __m256 vmax = v[0], vmin = v[0];
#pragma GCC unroll 16
        for (int i = 1; i < V; ++i) {
            nonfinite = _mm256_add_ps(nonfinite, _mm256_sub_ps(v[i], v[i]));
            vmax = _mm256_max_ps(vmax, v[i]);
            vmin = _mm256_min_ps(vmin, v[i]);
        }
        if (_mm256_movemask_ps(_mm256_cmp_ps(nonfinite, nonfinite, _CMP_UNORD_Q)) != 0) {
            rtn_reference_kernels().blocks(e, x + b * G, std::min<int64_t>(n, G), 1, out);
            continue;
        }
        const float hi = hmax(vmax), lo = hmin(vmin);
        float d;
        float lo_z = 0.0f;  // asymmetric: min(x, 0) as the reference computes it
        if constexpr (S == QScheme::Int4Sym) {
            float m = hi > -lo ? hi : lo;  // a select: the sign is random, a branch mispredicts
            if (hi == -lo) [[unlikely]] {
                m = 0.0f;  // all zero (+0 as the reference), or +hi and -hi both present:
                // the first element of that magnitude.
                const __m256 sign = _mm256_set1_ps(-0.0f), target = _mm256_set1_ps(hi);
                for (int i = 0; i < V && hi != 0.0f; ++i) {
                    const int mask = _mm256_movemask_ps(
                        _mm256_cmp_ps(_mm256_andnot_ps(sign, v[i]), target, _CMP_EQ_OQ));
                    if (mask != 0) {
                        m = p[8 * i + __builtin_ctz(static_cast<unsigned>(mask))];
                        break;
                    }
                }
            }
            d = m / -8.0f;
        } else if constexpr (S == QScheme::Int8Sym) {
            d = std::fabs(std::max(hi, -lo)) / 127.0f;
        } else {
            lo_z = lo < 0.0f ? lo : 0.0f;
            const float hi_z = hi > 0.0f ? hi : 0.0f;
            d = (hi_z - lo_z) / I::kQmax;
        }
        const uint16_t bits = scale_bits<BF16>(d);
        const float scale = scale_value<BF16>(bits);
        std::memcpy(out, &bits, 2);
        int zero = 0;
        if constexpr (!I::kSym) {
            if (scale != 0.0f) {
                const float z = std::round(-lo_z / scale);
                zero = static_cast<int>(std::clamp(z, 0.0f, I::kQmax));
            }
            out[2] = static_cast<uint8_t>(zero);
            out[3] = 0;
        }
        uint8_t* qs = out + I::kCodesAt;
        if (scale == 0.0f) {
            std::memset(qs, S == QScheme::Int4Sym ? 0x88 : 0, kCodeBytes);
            continue;
        }
        const __m256 s = _mm256_set1_ps(scale), qmin = _mm256_set1_ps(I::kQmin),
                     qmax = _mm256_set1_ps(I::kQmax), zf = _mm256_set1_ps(static_cast<float>(zero)),
                     eight = _mm256_set1_ps(8.0f);
#pragma GCC unroll 16
        for (int j = 0; j < G / 32; ++j) {
            __m256i c[4];
#pragma GCC unroll 16
            for (int t = 0; t < 4; ++t) {
                __m256 q = round_half_away(_mm256_div_ps(v[4 * j + t], s));
                if constexpr (!I::kSym) q = _mm256_add_ps(q, zf);
                q = _mm256_min_ps(_mm256_max_ps(q, qmin), qmax);
                if constexpr (S == QScheme::Int4Sym) q = _mm256_add_ps(q, eight);  // nibble
                c[t] = _mm256_cvttps_epi32(q);
            }
            const __m256i bytes = bytes_in_order(c, S == QScheme::Int8Sym);
            if constexpr (I::kInt4) {
                // Byte pairs (element 2i, 2i+1) -> 2i + 16 * (2i+1), then 16 bytes.
                const __m256i pairs = _mm256_maddubs_epi16(bytes, _mm256_set1_epi16(0x1001));
                const __m256i packed =
                    _mm256_permute4x64_epi64(_mm256_packus_epi16(pairs, pairs), 0x08);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16 * j),
                                 _mm256_castsi256_si128(packed));
            } else {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * j), bytes);
            }
        }
    }
}

EP_RTN_AVX2 void int8c_row_avx2(const Encoding& e, const float* x, int64_t cols, uint8_t* codes,
                                uint8_t* scale_out) {
    __m256 vmax = _mm256_setzero_ps(), vmin = _mm256_setzero_ps();
    __m256 nonfinite = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        const __m256 v = _mm256_loadu_ps(x + c);
        nonfinite = _mm256_add_ps(nonfinite, _mm256_sub_ps(v, v));
        vmax = _mm256_max_ps(vmax, v);
        vmin = _mm256_min_ps(vmin, v);
    }
    float hi = hmax(vmax), lo = hmin(vmin);
    bool finite = _mm256_movemask_ps(_mm256_cmp_ps(nonfinite, nonfinite, _CMP_UNORD_Q)) == 0;
    for (int64_t t = c; t < cols; ++t) {
        finite = finite && std::isfinite(x[t]);
        hi = std::max(hi, x[t]);
        lo = std::min(lo, x[t]);
    }
    if (!finite) {
        rtn_reference_kernels().int8c_row(e, x, cols, codes, scale_out);
        return;
    }
    const float d = std::fabs(std::max(hi, -lo)) / 127.0f;
    std::memcpy(scale_out, &d, 4);
    if (d == 0.0f) {
        std::memset(codes, 0, static_cast<size_t>(cols));
        return;
    }
    const __m256 s = _mm256_set1_ps(d), qmin = _mm256_set1_ps(-127.0f),
                 qmax = _mm256_set1_ps(127.0f);
    c = 0;
    for (; c + 32 <= cols; c += 32) {
        __m256i q[4];
#pragma GCC unroll 16
        for (int t = 0; t < 4; ++t) {
            const __m256 r = round_half_away(_mm256_div_ps(_mm256_loadu_ps(x + c + 8 * t), s));
            q[t] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, qmin), qmax));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + c), bytes_in_order(q, true));
    }
    const QParams p{d, 0};
    for (; c < cols; ++c)
        codes[c] = static_cast<uint8_t>(static_cast<int8_t>(quantize_value(e, x[c], p)));
}

// dst (8 rows of ldd) = the transpose of src (8 rows of lds), 8 x 8 floats.
EP_RTN_AVX2 __attribute__((always_inline)) inline void transpose8x8(const float* src, int64_t lds,
                                                                    float* dst, int64_t ldd) {
    __m256 r[8], t[8];
#pragma GCC unroll 16
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
#pragma GCC unroll 16
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
        // rows 4h..4h+3 of the input: t[4h..4h+3]
        r[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        r[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        r[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        r[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x20));
        _mm256_storeu_ps(dst + (4 + i) * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x31));
    }
}

EP_RTN_AVX2 void transpose_avx2(const float* src, int64_t lds, int64_t m, int64_t n, float* dst,
                                int64_t ldd) {
    int64_t i = 0;
    for (; i + 8 <= m; i += 8) {
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) transpose8x8(src + i * lds + j, lds, dst + j * ldd + i, ldd);
        for (; j < n; ++j)
            for (int64_t k = 0; k < 8; ++k) dst[j * ldd + i + k] = src[(i + k) * lds + j];
    }
    for (; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) dst[j * ldd + i] = src[i * lds + j];
}

using BlocksFn = void (*)(const Encoding&, const float*, int64_t, int64_t, uint8_t*);

template <QScheme S>
BlocksFn blocks_for(const Encoding& e) {
    const bool bf16 = e.scale_dtype == DType::BF16;  // the reference: bf16, else f16
    switch (e.group) {
        case 32:
            return bf16 ? blocks_avx2<S, 32, true> : blocks_avx2<S, 32, false>;
        case 64:
            return bf16 ? blocks_avx2<S, 64, true> : blocks_avx2<S, 64, false>;
        case 128:
            return bf16 ? blocks_avx2<S, 128, true> : blocks_avx2<S, 128, false>;
        default:
            return nullptr;
    }
}

}  // namespace

RtnKernels rtn_avx2_kernels(const Encoding& e) {
    static const bool cpu_ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                               __builtin_cpu_supports("f16c");
    RtnKernels k;
    if (!cpu_ok) return k;
    k.isa = "avx2";
    k.transpose = transpose_avx2;
    switch (e.scheme) {
        case QScheme::Int8Channel:
            k.int8c_row = int8c_row_avx2;
            break;
        case QScheme::Int4Sym:
            k.blocks = blocks_for<QScheme::Int4Sym>(e);
            break;
        case QScheme::Int4Asym:
            k.blocks = blocks_for<QScheme::Int4Asym>(e);
            break;
        case QScheme::Int8Sym:
            k.blocks = blocks_for<QScheme::Int8Sym>(e);
            break;
        case QScheme::Int8Asym:
            k.blocks = blocks_for<QScheme::Int8Asym>(e);
            break;
        default:
            break;
    }
    return k;
}

#else  // not x86-64: no optimised table

RtnKernels rtn_avx2_kernels(const Encoding&) {
    return {};
}

#endif

}  // namespace ep::detail
