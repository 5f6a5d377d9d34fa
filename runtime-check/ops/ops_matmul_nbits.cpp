// ONNX Runtime's com.microsoft MatMulNBits.
//
//   MatMulNBits       Y = A * dequant(B)^T + bias, B uint8 [N, k_blocks, blob] holding
//                     `block_size` codes of `bits` (2, 4 or 8) along K per block, low bits
//                     first; W[n, k] = (q - zp) * scale of block g_idx[k] (default k /
//                     block_size). Zero points: packed uint8 [N, ceil(k_blocks * bits / 8)],
//                     float [N, k_blocks], or absent = 2^(bits - 1). Computed in f32 for
//                     every accuracy_level (ONNX Runtime's level 0).
//
// Threads split work so that each output element is computed by one thread, in a fixed
// order: results are bit-identical for any thread count.
//
// Few rows of A (decode: one) take the fused dequantize + dot path. Its arithmetic is
// fixed: w = (float(code) - zero) * scale rounded to float, then per output element 8 lane
// sums (lane = k mod 8, k ascending, each product rounded before it is added: no fused
// multiply-add), combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). The AVX2
// kernel for 4-bit codes (nbits4_small_m_avx2: 32 codes unpacked per step, four output
// columns at a time so four sum chains overlap) performs exactly these operations, so it
// gives the portable loop's bits (tests/test_decoder.cpp checks it).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "ir/checked.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/simd.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_common.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
// AVX2 without FMA: the kernel must round each product before adding it, as the portable
// loop does on x86-64's baseline.
#define EP_NBITS_AVX2 __attribute__((target("avx2")))
#endif

namespace ep::rt {
namespace {

constexpr int64_t kNBitsSmallM = 4;  // up to this many rows of A: fused dequantize + dot

struct NBits {
    int64_t m = 0, k = 0, n = 0, block = 0, k_blocks = 0, blob = 0;
    const float* a = nullptr;       // [M, K]
    const uint8_t* b = nullptr;     // [N, k_blocks, blob]
    const float* scales = nullptr;  // [N, k_blocks]
    const float* zp = nullptr;      // [N, k_blocks] unpacked, or null: default_zp
    float default_zp = 0;
    const int64_t* g_idx = nullptr;  // [K] block of each k, or null: k / block
    const float* bias = nullptr;     // [N] or null
    float* y = nullptr;              // [M, N]
};

// Dequantizes row `col` of B for k in [k0, k0 + len) (one block) into w.
template <int BITS>
void dequant_block(const NBits& p, int64_t col, int64_t kb, int64_t len, float* w) {
    constexpr int64_t per = 8 / BITS, mask = (1 << BITS) - 1;
    const uint8_t* blk = p.b + (col * p.k_blocks + kb) * p.blob;
    if (!p.g_idx) {
        const size_t at = static_cast<size_t>(col * p.k_blocks + kb);
        const float s = p.scales[at], z = p.zp ? p.zp[at] : p.default_zp;
        if constexpr (BITS == 8) {
#pragma omp simd
            for (int64_t j = 0; j < len; ++j) w[j] = (static_cast<float>(blk[j]) - z) * s;
        } else {
            // Codes first (a byte at a time, low bits first), then one vectorized pass to float.
            uint8_t codes[256];
            for (int64_t j0 = 0; j0 < len; j0 += 256) {
                const int64_t n = std::min<int64_t>(256, len - j0), bytes = n / per;
                const uint8_t* src = blk + j0 / per;
                for (int64_t byte = 0; byte < bytes; ++byte) {
                    const unsigned v = src[byte];
                    for (int64_t e = 0; e < per; ++e)
                        codes[byte * per + e] = static_cast<uint8_t>((v >> (e * BITS)) & mask);
                }
                for (int64_t j = bytes * per; j < n; ++j)
                    codes[j] = static_cast<uint8_t>((src[j / per] >> ((j % per) * BITS)) & mask);
                float* wo = w + j0;
#pragma omp simd
                for (int64_t j = 0; j < n; ++j) wo[j] = (static_cast<float>(codes[j]) - z) * s;
            }
        }
        return;
    }
    const int64_t k0 = kb * p.block;
    for (int64_t j = 0; j < len; ++j) {
        const size_t at = static_cast<size_t>(col * p.k_blocks + p.g_idx[k0 + j]);
        const float z = p.zp ? p.zp[at] : p.default_zp;
        w[j] = (static_cast<float>((blk[j / per] >> ((j % per) * BITS)) & mask) - z) * p.scales[at];
    }
}

// Output columns per parallel_for chunk on the small-M path: at least about
// kGemmParallelWork multiply-adds, so a small projection stays on one thread.
int64_t small_m_grain(const NBits& p) {
    return std::max<int64_t>(16, kGemmParallelWork / std::max<int64_t>(1, p.k * p.m));
}

// Few rows of A: each output column dequantizes its weights a block at a time and takes
// dot products with 8 interleaved partial sums (combined in a fixed order).
template <int BITS>
void nbits_small_m(const ExecOptions& options, const NBits& p) {
    parallel_for(options, p.n, small_m_grain(p), [&](int64_t n0, int64_t n1) {
        std::vector<float> w(static_cast<size_t>(p.block));
        for (int64_t col = n0; col < n1; ++col) {
            float acc[kNBitsSmallM][8] = {};
            for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
                const int64_t k0 = kb * p.block, len = std::min(p.block, p.k - k0);
                dequant_block<BITS>(p, col, kb, len, w.data());
                for (int64_t i = 0; i < p.m; ++i) {
                    const float* ar = p.a + i * p.k + k0;
                    float lanes[8];
                    std::copy(acc[i], acc[i] + 8, lanes);
                    int64_t t = 0;
                    for (; t + 8 <= len; t += 8)
#pragma omp simd
                        for (int l = 0; l < 8; ++l)
                            lanes[l] += ar[t + l] * w[static_cast<size_t>(t + l)];
                    for (; t < len; ++t) lanes[t % 8] += ar[t] * w[static_cast<size_t>(t)];
                    std::copy(lanes, lanes + 8, acc[i]);
                }
            }
            for (int64_t i = 0; i < p.m; ++i) {
                const float* ac = acc[i];
                float v = ((ac[0] + ac[1]) + (ac[2] + ac[3])) + ((ac[4] + ac[5]) + (ac[6] + ac[7]));
                p.y[i * p.n + col] = p.bias ? v + p.bias[col] : v;
            }
        }
    });
}

#ifdef EP_NBITS_AVX2
// Columns [n0, n1) of 4-bit B for M rows of A, with the portable small-M arithmetic (see
// the file comment): C columns at a time, each column's lanes one __m256 per row of A.
// Needs no g_idx, a block that is a multiple of 32 and K a multiple of the block.
template <int M, int C>
EP_NBITS_AVX2 void nbits4_columns_avx2(const NBits& p, int64_t col0) {
    __m256 acc[M][C];
    for (auto& row : acc)
        for (auto& v : row) v = _mm256_setzero_ps();
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
        const int64_t k0 = kb * p.block;
        for (int c = 0; c < C; ++c) {
            const int64_t col = col0 + c;
            const size_t at = static_cast<size_t>(col * p.k_blocks + kb);
            const __m256 s = _mm256_set1_ps(p.scales[at]);
            const __m256 z = _mm256_set1_ps(p.zp ? p.zp[at] : p.default_zp);
            const uint8_t* blk = p.b + (col * p.k_blocks + kb) * p.blob;
            for (int64_t j = 0; j < p.block; j += 32) {
                // 16 bytes hold codes j..j+31, low nibble first: element 2i is byte i's
                // low nibble, 2i + 1 its high one.
                const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + j / 2));
                const __m128i lo = _mm_and_si128(v, low4);
                const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low4);
                const __m128i c0 = _mm_unpacklo_epi8(lo, hi), c1 = _mm_unpackhi_epi8(lo, hi);
                const __m128i parts[4] = {c0, _mm_srli_si128(c0, 8), c1, _mm_srli_si128(c1, 8)};
                for (int t = 0; t < 4; ++t) {
                    const __m256 code = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[t]));
                    const __m256 w = _mm256_mul_ps(_mm256_sub_ps(code, z), s);
                    for (int i = 0; i < M; ++i) {
                        const __m256 a = _mm256_loadu_ps(p.a + i * p.k + k0 + j + 8 * t);
                        acc[i][c] = _mm256_add_ps(acc[i][c], _mm256_mul_ps(a, w));
                    }
                }
            }
        }
    }
    for (int i = 0; i < M; ++i)
        for (int c = 0; c < C; ++c) {
            alignas(32) float l[8];
            _mm256_store_ps(l, acc[i][c]);
            const float v = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
            const int64_t col = col0 + c;
            p.y[i * p.n + col] = p.bias ? v + p.bias[col] : v;
        }
}

template <int M>
EP_NBITS_AVX2 void nbits4_small_m_avx2(const NBits& p, int64_t n0, int64_t n1) {
    int64_t col = n0;
    for (; col + 4 <= n1; col += 4) nbits4_columns_avx2<M, 4>(p, col);
    for (; col < n1; ++col) nbits4_columns_avx2<M, 1>(p, col);
}

bool nbits_use_avx2() {
    static const bool yes =
        std::string_view(simd_kernels().name) != "baseline" && __builtin_cpu_supports("avx2");
    return yes;
}
#endif

// The AVX2 small-M kernel when it applies (4-bit, no g_idx, whole blocks of a multiple of
// 32 codes); false: the caller runs the portable loop.
bool nbits4_small_m_fast(const ExecOptions& options, const NBits& p) {
#ifdef EP_NBITS_AVX2
    if (!nbits_use_avx2() || p.g_idx || p.block % 32 != 0 || p.k % p.block != 0) return false;
    parallel_for(options, p.n, small_m_grain(p), [&](int64_t n0, int64_t n1) {
        switch (p.m) {
            case 1:
                return nbits4_small_m_avx2<1>(p, n0, n1);
            case 2:
                return nbits4_small_m_avx2<2>(p, n0, n1);
            case 3:
                return nbits4_small_m_avx2<3>(p, n0, n1);
            default:
                return nbits4_small_m_avx2<4>(p, n0, n1);
        }
    });
    return true;
#else
    (void)options;
    (void)p;
    return false;
#endif
}

// More rows: fixed tiles of output columns; each tile dequantizes its rows of B into a
// [tile, K] buffer block by block and multiplies with the Eigen GEMM (one thread per tile).
template <int BITS>
void nbits_tiled(const ExecOptions& options, const NBits& p) {
    constexpr int64_t kTile = 32;
    const int64_t tiles = (p.n + kTile - 1) / kTile;
    const ExecOptions single{1};
    parallel_for(options, tiles, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> w(static_cast<size_t>(kTile * p.k));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t n0 = t * kTile, width = std::min(kTile, p.n - n0);
            for (int64_t r = 0; r < width; ++r)
                for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
                    const int64_t k0 = kb * p.block;
                    dequant_block<BITS>(p, n0 + r, kb, std::min(p.block, p.k - k0),
                                        w.data() + r * p.k + k0);
                }
            MatrixView av{p.a, p.m, p.k, p.k, false};
            MatrixView wv{w.data(), p.k, width, p.k, true};
            gemm_f32(single, av, wv, p.y + n0, p.n, false);
            if (p.bias)
                for (int64_t i = 0; i < p.m; ++i)
                    for (int64_t r = 0; r < width; ++r) p.y[i * p.n + n0 + r] += p.bias[n0 + r];
        }
    });
}

template <int BITS>
void nbits_run(const ExecOptions& options, const NBits& p) {
    if (p.m <= kNBitsSmallM) {
        if constexpr (BITS == 4)
            if (nbits4_small_m_fast(options, p)) return;
        nbits_small_m<BITS>(options, p);
    } else
        nbits_tiled<BITS>(options, p);
}

}  // namespace

void op_matmul_nbits(OpContext& c) {
    const Tensor& a0 = c.input(0);
    const Tensor& b = c.input(1);
    const Tensor& scales = c.input(2);
    if (!is_float(a0.dtype)) c.fail(cat("A must be float, found ", dtype_name(a0.dtype)));
    check_bytes(c, a0, "A");
    const int64_t k = c.node.attr_int("K", 0), n = c.node.attr_int("N", 0);
    const int64_t bits = c.node.attr_int("bits", 4), bs = c.node.attr_int("block_size", 0);
    if (k <= 0 || n <= 0) c.fail(cat("attributes K = ", k, " and N = ", n, " must be positive"));
    if (bits != 2 && bits != 4 && bits != 8)
        c.fail(cat("bits = ", bits, " is not supported (2, 4 or 8)"));
    if (bs < 16 || (bs & (bs - 1)) != 0)
        c.fail(cat("block_size = ", bs, " must be a power of two >= 16"));
    if (a0.shape.empty() || a0.shape.back() != k)
        c.fail(cat("A ", shape_string(a0.shape), " must end in K = ", k));
    const int64_t k_blocks = (k + bs - 1) / bs, blob = bs * bits / 8;
    auto b_count = checked_mul(static_cast<uint64_t>(n), static_cast<uint64_t>(k_blocks));
    auto b_bytes = b_count ? checked_mul(*b_count, static_cast<uint64_t>(blob)) : std::nullopt;
    if (!b_bytes) c.fail("N x k_blocks x blob_size overflows");
    check_bytes(c, b, "B");
    check_bytes(c, scales, "scales");
    if (b.dtype != DType::U8 || static_cast<uint64_t>(b.element_count()) != *b_bytes)
        c.fail(cat("B must be uint8 [N, k_blocks, blob_size] = [", n, ", ", k_blocks, ", ", blob,
                   "], found ", dtype_name(b.dtype), " ", shape_string(b.shape)));
    if (static_cast<uint64_t>(scales.element_count()) != *b_count)
        c.fail(cat("scales must have N x k_blocks = ", *b_count, " elements, found ",
                   shape_string(scales.shape)));
    // f32 scales are read in place (no per-run copy); other float types converted.
    std::vector<float> sc;
    if (scales.dtype != DType::F32) sc = read_float_values(c, scales, "scales");
    // Zero points: packed uint8 [N, ceil(k_blocks * bits / 8)], or float [N, k_blocks];
    // absent means 2^(bits - 1).
    std::vector<float> zp;
    if (c.has_input(3)) {
        const Tensor& z = *c.inputs[3];
        check_bytes(c, z, "zero_points");
        if (z.dtype == DType::U8) {
            const int64_t per_row = (k_blocks * bits + 7) / 8;
            if (z.element_count() != n * per_row)
                c.fail(cat("packed zero_points must be uint8 [N, ceil(k_blocks * bits / 8)] = [", n,
                           ", ", per_row, "], found ", shape_string(z.shape)));
            zp.resize(static_cast<size_t>(*b_count));
            auto zb = z.values<uint8_t>();
            const int64_t per_byte = 8 / bits, mask = (1 << bits) - 1;
            for (int64_t r = 0; r < n; ++r)
                for (int64_t kb = 0; kb < k_blocks; ++kb) {
                    uint8_t byte = zb[static_cast<size_t>(r * per_row + kb / per_byte)];
                    zp[static_cast<size_t>(r * k_blocks + kb)] =
                        static_cast<float>((byte >> ((kb % per_byte) * bits)) & mask);
                }
        } else if (is_float(z.dtype)) {
            if (static_cast<uint64_t>(z.element_count()) != *b_count)
                c.fail(cat("float zero_points must have N x k_blocks = ", *b_count,
                           " elements, found ", shape_string(z.shape)));
            zp = read_float_values(c, z, "zero_points");
        } else {
            c.fail(cat("zero_points must be uint8 or float, found ", dtype_name(z.dtype)));
        }
    }
    std::vector<int64_t> g_idx;  // block of each k (deprecated input)
    if (c.has_input(4)) {
        g_idx = read_ints(c, *c.inputs[4]);
        if (static_cast<int64_t>(g_idx.size()) != k)
            c.fail(cat("g_idx must have K = ", k, " elements, found ", g_idx.size()));
        for (int64_t g : g_idx)
            if (g < 0 || g >= k_blocks) c.fail(cat("g_idx value ", g, " is not a block index"));
    }
    std::vector<float> bias;
    if (c.has_input(5)) {
        bias = read_float_values(c, *c.inputs[5], "bias");
        if (static_cast<int64_t>(bias.size()) != n)
            c.fail(cat("bias must have N = ", n, " elements, found ", bias.size()));
    }
    std::vector<float> a_f32;  // A as f32 when it is not
    NBits p;
    p.m = a0.element_count() / k;
    p.k = k;
    p.n = n;
    p.block = bs;
    p.k_blocks = k_blocks;
    p.blob = blob;
    if (a0.dtype == DType::F32) {
        p.a = a0.values<float>().data();
    } else {
        a_f32 = read_float_values(c, a0, "A");
        p.a = a_f32.data();
    }
    p.b = b.values<uint8_t>().data();
    p.scales = scales.dtype == DType::F32 ? scales.values<float>().data() : sc.data();
    p.zp = zp.empty() ? nullptr : zp.data();
    p.default_zp = static_cast<float>(1 << (bits - 1));
    p.g_idx = g_idx.empty() ? nullptr : g_idx.data();
    p.bias = bias.empty() ? nullptr : bias.data();
    std::vector<int64_t> out_shape = a0.shape;
    out_shape.back() = n;
    Tensor y32 = make_uninitialized_tensor(DType::F32, out_shape);  // every element is written
    p.y = y32.mutable_values<float>().data();
    if (p.m > 0) {
        if (bits == 2)
            nbits_run<2>(c.options, p);
        else if (bits == 4)
            nbits_run<4>(c.options, p);
        else
            nbits_run<8>(c.options, p);
    }
    if (a0.dtype == DType::F32) {
        c.outputs.push_back(std::move(y32));
        return;
    }
    Tensor y = make_tensor(a0.dtype, out_shape);
    std::byte* out = y.data.mutable_bytes().data();
    for (int64_t i = 0; i < y.element_count(); ++i) store_float(a0.dtype, out, i, p.y[i]);
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
