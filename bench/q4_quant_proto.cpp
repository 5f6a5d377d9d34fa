// Prototype (bench only, not the library): RTN int4g32 (symmetric, f16 scales) quantizer with
// AVX2, meant to write exactly the bytes of ep::quantize_rtn (qbench compares them). Compiled
// with -mavx2 -mfma -mf16c (bench/CMakeLists.txt): call only after a CPU check.
// Per 32-block: max |x| and the first element reaching it (the reference's "largest magnitude,
// first on ties"), the scale from ep::round_scale (the same f16 rounding), then
// code = clamp(round_half_away(x / scale), -8, 7) with a true division, + 8, two per byte
// (element 2i low nibble). Blocks holding a non-finite value, and a partial last block, go
// through the scalar reference (choose_qparams / quantize_value).
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "bench/q8_proto.h"
#include "compressor/ir/encoding.h"

namespace ep::bench {

namespace {

void scalar_block(const Encoding& e, const float* x, int64_t len, uint8_t* blk) {
    const QParams p = choose_qparams(e, std::span<const float>(x, static_cast<size_t>(len)));
    const uint16_t d = float_to_half(p.scale);
    std::memcpy(blk, &d, 2);
    std::memset(blk + 2, 0, 16);
    for (int64_t i = 0; i < 32; ++i) {
        const int q = i < len ? quantize_value(e, x[i], p) : 0;
        blk[2 + i / 2] |= static_cast<uint8_t>(((q + 8) & 0xF) << (i % 2 == 0 ? 0 : 4));
    }
}

}  // namespace

std::vector<std::byte> quantize_int4g32_avx2(std::span<const float> w, int64_t rows,
                                             int64_t cols) {
    const Encoding e = *encoding_from_name("int4g32");
    const int64_t nb = (cols + 31) / 32;
    std::vector<std::byte> out(static_cast<size_t>(rows * nb * 18));
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f),
                 one = _mm256_set1_ps(1.0f), lo = _mm256_set1_ps(-8.0f),
                 hi = _mm256_set1_ps(7.0f), inf = _mm256_set1_ps(INFINITY);
    const __m256i eight = _mm256_set1_epi32(8), pairs = _mm256_set1_epi16(0x1001);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = w.data() + r * cols;
        auto* orow = reinterpret_cast<uint8_t*>(out.data()) + r * nb * 18;
        for (int64_t b = 0; b < nb; ++b) {
            const float* x = row + b * 32;
            uint8_t* blk = orow + b * 18;
            const int64_t len = std::min<int64_t>(32, cols - b * 32);
            if (len < 32) {
                scalar_block(e, x, len, blk);
                continue;
            }
            __m256 v[4], a[4];
            for (int i = 0; i < 4; ++i) {
                v[i] = _mm256_loadu_ps(x + 8 * i);
                a[i] = _mm256_andnot_ps(sign, v[i]);
            }
            __m256 m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            // Non-finite (inf, or NaN which max drops or keeps depending on order): scalar.
            const __m256 fin = _mm256_and_ps(
                _mm256_and_ps(_mm256_cmp_ps(a[0], inf, _CMP_LT_OQ), _mm256_cmp_ps(a[1], inf, _CMP_LT_OQ)),
                _mm256_and_ps(_mm256_cmp_ps(a[2], inf, _CMP_LT_OQ), _mm256_cmp_ps(a[3], inf, _CMP_LT_OQ)));
            if (_mm256_movemask_ps(fin) != 0xFF) {
                scalar_block(e, x, len, blk);
                continue;
            }
            m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
            m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4E));
            m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xB1));
            const float amax = _mm256_cvtss_f32(m);
            float mv = 0.0f;
            if (amax > 0.0f) {
                uint32_t mask = 0;
                for (int i = 0; i < 4; ++i)
                    mask |= static_cast<uint32_t>(
                                _mm256_movemask_ps(_mm256_cmp_ps(a[i], m, _CMP_EQ_OQ)))
                            << (8 * i);
                mv = x[__builtin_ctz(mask)];
            }
            const float scale = round_scale(e, mv / -8.0f);
            const uint16_t d = float_to_half(scale);
            std::memcpy(blk, &d, 2);
            __m256i c[4];
            if (scale == 0.0f) {
                for (int i = 0; i < 4; ++i) c[i] = eight;
            } else {
                const __m256 s = _mm256_set1_ps(scale);
                for (int i = 0; i < 4; ++i) {
                    const __m256 q = _mm256_div_ps(v[i], s);
                    const __m256 t = _mm256_round_ps(q, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                    const __m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(q, t));
                    const __m256 step = _mm256_or_ps(_mm256_and_ps(q, sign), one);
                    __m256 rq = _mm256_add_ps(
                        t, _mm256_and_ps(_mm256_cmp_ps(f, half, _CMP_GE_OQ), step));
                    rq = _mm256_min_ps(_mm256_max_ps(rq, lo), hi);
                    c[i] = _mm256_add_epi32(_mm256_cvttps_epi32(rq), eight);
                }
            }
            // 32 int32 codes 0..15 -> 32 bytes in order -> 16 bytes of nibble pairs.
            const __m256i p16a = _mm256_packs_epi32(c[0], c[1]), p16b = _mm256_packs_epi32(c[2], c[3]);
            const __m256i bytes =
                _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p16a, p16b), order);
            const __m256i nib16 = _mm256_maddubs_epi16(bytes, pairs);
            const __m256i packed =
                _mm256_permute4x64_epi64(_mm256_packus_epi16(nib16, nib16), 0x08);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(blk + 2), _mm256_castsi256_si128(packed));
        }
    }
    return out;
}

}  // namespace ep::bench
