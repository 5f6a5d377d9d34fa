// Prototype (bench only, not the runtime): int8-activation int4g32 GEMV, compiled with
// -mavx2 -mfma -mf16c (bench/CMakeLists.txt), so only called after a CPU check.
// The activation row is quantized per 32-block like llama.cpp's Q8_0 (d = max|x| / 127,
// q = round(x / d)), stored with the even elements of each block first and then the odd ones,
// which is the order in which one 16-byte block of nibbles unpacks (low nibbles = elements
// 0, 2, .., 30; high nibbles = 1, 3, .., 31). Per block: an exact int32 dot product with
// AVX2 maddubs/madd (llama.cpp's sign trick: |w| as the unsigned operand, x with w's sign),
// converted to float once and scaled by d_w * d_x into 8 float lanes per output channel.
#include "bench/q8_proto.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ep::bench {

Q8Row quantize_q8(const std::vector<float>& x) {
    const size_t blocks = (x.size() + 31) / 32;
    Q8Row r;
    r.q.assign(blocks * 32, 0);
    r.d.assign(blocks, 0.0f);
    for (size_t b = 0; b < blocks; ++b) {
        float amax = 0.0f;
        for (size_t j = 0; j < 32 && b * 32 + j < x.size(); ++j)
            amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
        r.d[b] = d;
        for (size_t j = 0; j < 32 && b * 32 + j < x.size(); ++j) {
            const size_t at = j % 2 == 0 ? j / 2 : 16 + j / 2;
            r.q[b * 32 + at] = static_cast<int8_t>(std::lround(x[b * 32 + j] * inv));
        }
    }
    return r;
}

// Output channels per group sharing the activation loads. Measured on a busy 2-core EPYC
// (4096x4096, one thread): 1 -> 0.71 ms, 2 -> 1.2 ms, 4 -> 0.75-0.83 ms, so 1.
constexpr int kQ8Rows = 1;
// R output channels at a time share the activation loads; two float accumulators each.
template <int R>
void q8_rowgroup(const uint8_t* const* rows,
                                                                 int64_t blocks, const Q8Row& x,
                                                                 float* y) {
    const __m256i low = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
    const __m256i ones = _mm256_set1_epi16(1);
    // Two accumulators per channel (even and odd blocks), added at the end: a fixed order.
    __m256 acc[R][2];
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    auto step = [&](int64_t b, int slot) {
        const __m256i xv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + b * 32));
        const float dx = x.d[static_cast<size_t>(b)];
        for (int i = 0; i < R; ++i) {
            const uint8_t* blk = rows[i] + b * 18;
            uint16_t dbits;
            std::memcpy(&dbits, blk, 2);
            const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
            __m256i wv = _mm256_set_m128i(_mm_srli_epi16(qs, 4), qs);
            wv = _mm256_sub_epi8(_mm256_and_si256(wv, low), eight);
            const __m256i p16 =
                _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            const __m256i p32 = _mm256_madd_epi16(p16, ones);
            acc[i][slot] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32),
                                           _mm256_set1_ps(_cvtsh_ss(dbits) * dx), acc[i][slot]);
        }
    };
    int64_t b = 0;
    for (; b + 2 <= blocks; b += 2) {
        step(b, 0);
        step(b + 1, 1);
    }
    if (b < blocks) step(b, 0);
    for (int i = 0; i < R; ++i) {
        const __m256 v = _mm256_add_ps(acc[i][0], acc[i][1]);
        const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        y[i] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
    }
}

void q8_rows(const std::byte* w, int64_t k,
                                                     const Q8Row& x, float* y, int64_t n0,
                                                     int64_t n1) {
    const int64_t blocks = (k + 31) / 32;
    const auto* base = reinterpret_cast<const uint8_t*>(w);
    const uint8_t* rows[4];
    int64_t r = n0;
    for (; r + kQ8Rows <= n1; r += kQ8Rows) {
        for (int i = 0; i < kQ8Rows; ++i) rows[i] = base + (r + i) * blocks * 18;
        q8_rowgroup<kQ8Rows>(rows, blocks, x, y + r);
    }
    for (; r < n1; ++r) {
        rows[0] = base + r * blocks * 18;
        q8_rowgroup<1>(rows, blocks, x, y + r);
    }
}

void gemv_q8_avx2(const rt::ExecOptions& opt, const std::byte* w, int64_t n, int64_t k,
                  const Q8Row& x, float* y) {
    rt::parallel_for(opt, n, 16, [&](int64_t n0, int64_t n1) { q8_rows(w, k, x, y, n0, n1); });
}


}  // namespace ep::bench
