// AVX2 + FMA kernels for x86-64, entered through the table in simd.h.
//
// Compiled with per-function target attributes, not with -mavx2 for the file: the rest of
// the binary stays baseline x86-64, and no inline function from a header gets an AVX2
// body that the linker could hand to other callers. So this file uses only raw pointers,
// intrinsics and its own internal functions inside the AVX2 code.
//
// GEMM: C tile = A B (+ C) with a 6x16 register micro-tile (12 accumulators of 8 floats).
// B is read in panels of 16 columns: packed (kGemmKc rows x 16, zero padded) when it is
// transposed or when the tile has many rows, read in place otherwise. Each C element is
// one FMA chain over k in order starting from C or 0: tile cuts and K blocking do not
// change the result, so any split over threads gives the same bits.
#include "runtime-check/kernels/simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cstring>

#define EP_AVX2 __attribute__((target("avx2,fma")))

namespace ep::rt {
namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
// A non-transposed B is read in place (no packing) by tiles of at most kDirectRows rows,
// or when it is small enough to stay in cache (kDirectFloats, counting its stride).
constexpr int64_t kDirectRows = 12;
constexpr int64_t kDirectFloats = 64 * 1024;

inline int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

// C[mr x nr] = (accumulate ? C : 0) + A[mr x kc] * B[kc x 16]. Row i of A at a + i*lda;
// row k of B at b + k*ldb with 16 readable floats (only the first nr are used).
EP_AVX2 void micro_6x16_full(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, int mr, int nr, bool accumulate) {
    const float* a0 = a;
    const float* a1 = a + (mr > 1 ? lda : 0);
    const float* a2 = a + (mr > 2 ? 2 * lda : 0);
    const float* a3 = a + (mr > 3 ? 3 * lda : 0);
    const float* a4 = a + (mr > 4 ? 4 * lda : 0);
    const float* a5 = a + (mr > 5 ? 5 * lda : 0);
    const bool full = mr == kMr && nr == kNr;
    alignas(32) float tmp[kMr * kNr];
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (accumulate) {
        const float* src = c;
        int64_t ld = ldc;
        if (!full) {
            std::memset(tmp, 0, sizeof(tmp));
            for (int i = 0; i < mr; ++i)
                for (int j = 0; j < nr; ++j) tmp[i * kNr + j] = c[i * ldc + j];
            src = tmp;
            ld = kNr;
        }
        c00 = _mm256_loadu_ps(src), c01 = _mm256_loadu_ps(src + 8);
        c10 = _mm256_loadu_ps(src + ld), c11 = _mm256_loadu_ps(src + ld + 8);
        c20 = _mm256_loadu_ps(src + 2 * ld), c21 = _mm256_loadu_ps(src + 2 * ld + 8);
        c30 = _mm256_loadu_ps(src + 3 * ld), c31 = _mm256_loadu_ps(src + 3 * ld + 8);
        c40 = _mm256_loadu_ps(src + 4 * ld), c41 = _mm256_loadu_ps(src + 4 * ld + 8);
        c50 = _mm256_loadu_ps(src + 5 * ld), c51 = _mm256_loadu_ps(src + 5 * ld + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < kc; ++k) {
        const float* bk = b + k * ldb;
        __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
        __m256 x = _mm256_broadcast_ss(a0 + k);
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + k);
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + k);
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + k);
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + k);
        c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + k);
        c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    float* dst = full ? c : tmp;
    int64_t ld = full ? ldc : kNr;
    _mm256_storeu_ps(dst, c00), _mm256_storeu_ps(dst + 8, c01);
    _mm256_storeu_ps(dst + ld, c10), _mm256_storeu_ps(dst + ld + 8, c11);
    _mm256_storeu_ps(dst + 2 * ld, c20), _mm256_storeu_ps(dst + 2 * ld + 8, c21);
    _mm256_storeu_ps(dst + 3 * ld, c30), _mm256_storeu_ps(dst + 3 * ld + 8, c31);
    _mm256_storeu_ps(dst + 4 * ld, c40), _mm256_storeu_ps(dst + 4 * ld + 8, c41);
    _mm256_storeu_ps(dst + 5 * ld, c50), _mm256_storeu_ps(dst + 5 * ld + 8, c51);
    if (!full)
        for (int i = 0; i < mr; ++i)
            for (int j = 0; j < nr; ++j) c[i * ldc + j] = tmp[i * kNr + j];
}

// The same for panels at most 8 columns wide (6 accumulators).
EP_AVX2 void micro_6x8(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                       float* c, int64_t ldc, int mr, int nr, bool accumulate) {
    const float* a0 = a;
    const float* a1 = a + (mr > 1 ? lda : 0);
    const float* a2 = a + (mr > 2 ? 2 * lda : 0);
    const float* a3 = a + (mr > 3 ? 3 * lda : 0);
    const float* a4 = a + (mr > 4 ? 4 * lda : 0);
    const float* a5 = a + (mr > 5 ? 5 * lda : 0);
    const bool full = mr == kMr && nr == 8;
    alignas(32) float tmp[kMr * 8];
    __m256 c0, c1, c2, c3, c4, c5;
    if (accumulate) {
        const float* src = c;
        int64_t ld = ldc;
        if (!full) {
            std::memset(tmp, 0, sizeof(tmp));
            for (int i = 0; i < mr; ++i)
                for (int j = 0; j < nr; ++j) tmp[i * 8 + j] = c[i * ldc + j];
            src = tmp;
            ld = 8;
        }
        c0 = _mm256_loadu_ps(src), c1 = _mm256_loadu_ps(src + ld),
        c2 = _mm256_loadu_ps(src + 2 * ld);
        c3 = _mm256_loadu_ps(src + 3 * ld), c4 = _mm256_loadu_ps(src + 4 * ld),
        c5 = _mm256_loadu_ps(src + 5 * ld);
    } else {
        c0 = c1 = c2 = c3 = c4 = c5 = _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b + k * ldb);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + k), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + k), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + k), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + k), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + k), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + k), b0, c5);
    }
    float* dst = full ? c : tmp;
    const int64_t ld = full ? ldc : 8;
    _mm256_storeu_ps(dst, c0), _mm256_storeu_ps(dst + ld, c1), _mm256_storeu_ps(dst + 2 * ld, c2);
    _mm256_storeu_ps(dst + 3 * ld, c3), _mm256_storeu_ps(dst + 4 * ld, c4),
        _mm256_storeu_ps(dst + 5 * ld, c5);
    if (!full)
        for (int i = 0; i < mr; ++i)
            for (int j = 0; j < nr; ++j) c[i * ldc + j] = tmp[i * 8 + j];
}

EP_AVX2 inline void micro_6x16(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                               float* c, int64_t ldc, int mr, int nr, bool accumulate) {
    if (nr <= 8)
        micro_6x8(kc, a, lda, b, ldb, c, ldc, mr, nr, accumulate);
    else
        micro_6x16_full(kc, a, lda, b, ldb, c, ldc, mr, nr, accumulate);
}

// One panel: B[k0 : k0+kc, j0 : j0+w) as kc rows of 16 floats (zero padded beyond w).
EP_AVX2 void pack_panel(const GemmTile& t, int64_t k0, int64_t kc, int64_t j0, int64_t w,
                        float* dst) {
    if (!t.b_transposed) {
        const float* src = t.b + k0 * t.ldb + j0;
        if (w == kNr) {
            for (int64_t k = 0; k < kc; ++k) {
                _mm256_storeu_ps(dst + k * kNr, _mm256_loadu_ps(src + k * t.ldb));
                _mm256_storeu_ps(dst + k * kNr + 8, _mm256_loadu_ps(src + k * t.ldb + 8));
            }
        } else {
            for (int64_t k = 0; k < kc; ++k) {
                int64_t j = 0;
                for (; j < w; ++j) dst[k * kNr + j] = src[k * t.ldb + j];
                for (; j < kNr; ++j) dst[k * kNr + j] = 0.0f;
            }
        }
        return;
    }
    // Transposed: element (k, j) is b[j * ldb + k].
    for (int64_t j = 0; j < kNr; ++j) {
        if (j < w) {
            const float* src = t.b + (j0 + j) * t.ldb + k0;
            for (int64_t k = 0; k < kc; ++k) dst[k * kNr + j] = src[k];
        } else {
            for (int64_t k = 0; k < kc; ++k) dst[k * kNr + j] = 0.0f;
        }
    }
}

// Whether a tile reads B in place (kDirectRows, kDirectFloats) instead of packing it.
bool reads_b_in_place(const GemmTile& t) {
    return !t.b_transposed && (t.m1 - t.m0 <= kDirectRows || t.k * t.ldb <= kDirectFloats);
}

// K blocks of equal size (at most kGemmKc): no short last block.
int64_t k_step(int64_t k) {
    const int64_t blocks = (k + kGemmKc - 1) / kGemmKc;
    return (k + blocks - 1) / blocks;
}

// All 16-column panels of columns [n0, n0 + nc), K block [k0, k0 + kc), into `pack`.
EP_AVX2 inline void pack_panels(const GemmTile& t, float* pack, int64_t n0, int64_t nc, int64_t k0,
                                int64_t kc) {
    for (int64_t p = 0; p * kNr < nc; ++p)
        pack_panel(t, k0, kc, n0 + p * kNr, min64(kNr, nc - p * kNr), pack + p * kc * kNr);
}

// Rows [m0, m1) times the 16-column panels p, p + 1, .. of columns [n0, n0 + nc), K block
// [k0, k0 + kc), through micro_6x16: B from `pack` (panel p at p * kc * kNr), or read in
// place when `direct` (a short last panel is then packed alone).
EP_AVX2 inline void panels_6x16(const GemmTile& t, float* pack, bool direct, int64_t n0, int64_t nc,
                                int64_t k0, int64_t kc, int64_t m0, int64_t m1, int64_t p,
                                bool acc) {
    for (; p * kNr < nc; ++p) {
        const int64_t j = n0 + p * kNr;
        const int nr = static_cast<int>(min64(kNr, nc - p * kNr));
        const float* bp = pack + p * kc * kNr;
        int64_t ldb = kNr;
        if (direct) {
            if (nr == kNr) {
                bp = t.b + k0 * t.ldb + j;
                ldb = t.ldb;
            } else {
                pack_panel(t, k0, kc, j, nr, pack);
                bp = pack;
            }
        }
        for (int64_t i = m0; i < m1; i += kMr) {
            const int mr = static_cast<int>(min64(kMr, m1 - i));
            micro_6x16(kc, t.a + i * t.lda + k0, t.lda, bp, ldb, t.c + i * t.ldc + j, t.ldc, mr, nr,
                       acc);
        }
    }
}

EP_AVX2 void gemm_tile_avx2(const GemmTile& t, float* pack) {
    const bool direct = reads_b_in_place(t);
    for (int64_t n0 = t.n0; n0 < t.n1; n0 += kGemmNc) {
        const int64_t nc = min64(kGemmNc, t.n1 - n0);
        const int64_t kstep = k_step(t.k);
        for (int64_t k0 = 0; k0 < t.k; k0 += kstep) {
            const int64_t kc = min64(kstep, t.k - k0);
            const bool acc = t.accumulate || k0 > 0;
            if (!direct) pack_panels(t, pack, n0, nc, k0, kc);
            for (int64_t m0 = t.m0; m0 < t.m1; m0 += kGemmMc)
                panels_6x16(t, pack, direct, n0, nc, k0, kc, m0, min64(t.m1, m0 + kGemmMc), 0, acc);
        }
    }
}

#define EP_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl")))

// AVX-512: C[mr x 32] = (accumulate ? C : 0) + A[mr x kc] * [B0 | B1], with B0 and B1 two
// 16-column panels (rows at b0 + k * ldb0 and b1 + k * ldb1), in 12 zmm accumulators:
// the same FMA chain per element as micro_6x16, half the instructions.
EP_AVX512 void micro_6x32_zmm(int64_t kc, const float* a, int64_t lda, const float* b0,
                              int64_t ldb0, const float* b1, int64_t ldb1, float* c, int64_t ldc,
                              int mr, bool accumulate) {
    const float* ar[kMr];
    for (int i = 0; i < kMr; ++i) ar[i] = a + (i < mr ? i : 0) * lda;
    __m512 x0[kMr], x1[kMr];
    for (int i = 0; i < kMr; ++i) {
        const bool load = accumulate && i < mr;
        x0[i] = load ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
        x1[i] = load ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 v0 = _mm512_loadu_ps(b0 + k * ldb0), v1 = _mm512_loadu_ps(b1 + k * ldb1);
        for (int i = 0; i < kMr; ++i) {
            const __m512 x = _mm512_set1_ps(ar[i][k]);
            x0[i] = _mm512_fmadd_ps(x, v0, x0[i]);
            x1[i] = _mm512_fmadd_ps(x, v1, x1[i]);
        }
    }
    for (int i = 0; i < mr; ++i) {
        _mm512_storeu_ps(c + i * ldc, x0[i]);
        _mm512_storeu_ps(c + i * ldc + 16, x1[i]);
    }
}

// gemm_tile_avx2 with pairs of full 16-column panels going to micro_6x32_zmm.
EP_AVX512 void gemm_tile_avx512(const GemmTile& t, float* pack) {
    const bool direct = reads_b_in_place(t);
    for (int64_t n0 = t.n0; n0 < t.n1; n0 += kGemmNc) {
        const int64_t nc = min64(kGemmNc, t.n1 - n0);
        const int64_t kstep = k_step(t.k);
        for (int64_t k0 = 0; k0 < t.k; k0 += kstep) {
            const int64_t kc = min64(kstep, t.k - k0);
            const bool acc = t.accumulate || k0 > 0;
            if (!direct) pack_panels(t, pack, n0, nc, k0, kc);
            for (int64_t m0 = t.m0; m0 < t.m1; m0 += kGemmMc) {
                const int64_t m1 = min64(t.m1, m0 + kGemmMc);
                int64_t p = 0;
                for (; (p + 2) * kNr <= nc; p += 2) {
                    const int64_t j = n0 + p * kNr;
                    const float* b0 = direct ? t.b + k0 * t.ldb + j : pack + p * kc * kNr;
                    const float* b1 = direct ? b0 + kNr : pack + (p + 1) * kc * kNr;
                    const int64_t ldb = direct ? t.ldb : kNr;
                    for (int64_t i = m0; i < m1; i += kMr)
                        micro_6x32_zmm(kc, t.a + i * t.lda + k0, t.lda, b0, ldb, b1, ldb,
                                       t.c + i * t.ldc + j, t.ldc,
                                       static_cast<int>(min64(kMr, m1 - i)), acc);
                }
                panels_6x16(t, pack, direct, n0, nc, k0, kc, m0, m1, p, acc);  // a last odd panel
            }
        }
    }
}

#define EP_DOT_TARGET EP_AVX2
#define EP_DOT_J(R) ((R) <= 2 ? 4 : 2)  // 16 ymm registers
namespace dot_avx2 {
#include "runtime-check/kernels/simd_dot.inc"
}  // namespace dot_avx2
#undef EP_DOT_TARGET
#undef EP_DOT_J

// AVX-512VL: the same 8-float (ymm) arithmetic with 32 registers, so 4 rows x 4 columns
// of accumulators fit: twice the loads in flight over B for 3-4 rows.
#define EP_DOT_TARGET __attribute__((target("avx2,fma,avx512f,avx512vl")))
#define EP_DOT_J(R) 4
namespace dot_avx512 {
#include "runtime-check/kernels/simd_dot.inc"
}  // namespace dot_avx512
#undef EP_DOT_TARGET
#undef EP_DOT_J

// N (1..4) vectors of 8 outputs of one depthwise output row, from x on: independent FMA
// chains over the taps in order; only the first `valid` outputs are stored.
template <int N>
EP_AVX2 inline void depthwise_chunk(const DepthwisePlane& p, const float* origin, float* out,
                                    int64_t valid) {
    __m256 acc[N];
    for (int v = 0; v < N; ++v) acc[v] = _mm256_set1_ps(p.bias);
    for (int64_t t = 0; t < p.ntaps; ++t) {
        const __m256 w = _mm256_broadcast_ss(p.w + t);
        const float* s = origin + p.taps[t];
        for (int v = 0; v < N; ++v) acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(s + 8 * v), acc[v]);
    }
    if (valid == 8 * N) {
        for (int v = 0; v < N; ++v) _mm256_storeu_ps(out + 8 * v, acc[v]);
        return;
    }
    alignas(32) float tmp[8 * N];
    for (int v = 0; v < N; ++v) _mm256_store_ps(tmp + 8 * v, acc[v]);
    for (int64_t i = 0; i < valid; ++i) out[i] = tmp[i];
}

EP_AVX2 void depthwise_plane_avx2(const DepthwisePlane& p) {
    for (int64_t y = 0; y < p.oh; ++y) {
        const float* rows = p.in + y * p.row_step;
        float* out = p.out + y * p.ow;
        for (int64_t x = 0; x < p.ow; x += 32) {
            const int64_t valid = min64(32, p.ow - x);
            switch ((valid + 7) / 8) {
                case 4:
                    depthwise_chunk<4>(p, rows + x, out + x, valid);
                    break;
                case 3:
                    depthwise_chunk<3>(p, rows + x, out + x, valid);
                    break;
                case 2:
                    depthwise_chunk<2>(p, rows + x, out + x, valid);
                    break;
                default:
                    depthwise_chunk<1>(p, rows + x, out + x, valid);
                    break;
            }
        }
    }
}

EP_AVX2 inline void max_pool_row(const float* r0, const float* r1, float* out, int64_t ow) {
    // Even and odd columns of 16 floats (the last block: only the first `valid` columns,
    // masked loads that touch nothing past the row); shuffle works per 128-bit lane, so
    // the 64-bit quarters are put back in order after it. max_ps(v, acc) is v > acc ? v : acc.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    auto split = [lane](const float* p, int64_t valid, __m256& even, __m256& odd) EP_AVX2 {
        __m256 lo, hi;
        if (valid >= 16) {
            lo = _mm256_loadu_ps(p);
            hi = _mm256_loadu_ps(p + 8);
        } else {
            const __m256i n = _mm256_set1_epi32(static_cast<int>(valid));
            lo = _mm256_maskload_ps(p, _mm256_cmpgt_epi32(n, lane));
            hi = _mm256_maskload_ps(
                p + 8, _mm256_cmpgt_epi32(_mm256_sub_epi32(n, _mm256_set1_epi32(8)), lane));
        }
        even = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
        odd = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
    };
    for (int64_t x = 0; x < ow; x += 8) {
        const int64_t n = min64(8, ow - x);
        __m256 e0, o0, e1, o1;
        split(r0 + 2 * x, 2 * n, e0, o0);
        split(r1 + 2 * x, 2 * n, e1, o1);
        __m256 acc = _mm256_max_ps(o0, e0);
        acc = _mm256_max_ps(e1, acc);
        acc = _mm256_max_ps(o1, acc);
        if (n == 8)
            _mm256_storeu_ps(out + x, acc);
        else
            _mm256_maskstore_ps(
                out + x, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane), acc);
    }
}

EP_AVX2 void max_pool_2x2_s2_avx2(const float* in, int64_t row_step, int64_t dy, float* out,
                                  int64_t oh, int64_t ow) {
    for (int64_t y = 0; y < oh; ++y)
        max_pool_row(in + y * row_step, in + y * row_step + dy, out + y * ow, ow);
}

// exp of 8 floats, Cephes' expf scheme: n = floor(x log2 e + 1/2), r = x - n ln 2 (in two
// parts), exp(r) by a degree-5 polynomial, times 2^n built in the exponent bits. Inputs
// below -87 give 0, above 88 (where 2^n would overflow the exponent) and NaN are
// redone by the scalar library.
EP_AVX2 inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 v = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 n = _mm256_floor_ps(
        _mm256_fmadd_ps(v, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    v = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), v);
    v = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), v);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 z = _mm256_mul_ps(v, v);
    p = _mm256_fmadd_ps(p, z, _mm256_add_ps(v, _mm256_set1_ps(1.0f)));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(under, r);  // 0 where x < -87
}

EP_AVX2 void exp_avx2(const float* x, float* y, int64_t n) {
    const __m256 hi = _mm256_set1_ps(88.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const int64_t len = min64(8, n - i);
        alignas(32) float in[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        __m256 v;
        if (len == 8) {
            v = _mm256_loadu_ps(x + i);
        } else {
            for (int64_t j = 0; j < len; ++j) in[j] = x[i + j];
            v = _mm256_load_ps(in);
        }
        const __m256 e = exp8(v);
        // Lanes above 88 or NaN (unordered compare): the scalar library.
        const __m256 special =
            _mm256_or_ps(_mm256_cmp_ps(v, hi, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        if (len == 8 && !_mm256_movemask_ps(special)) {
            _mm256_storeu_ps(y + i, e);
            continue;
        }
        alignas(32) float out[8];
        _mm256_store_ps(in, v);
        _mm256_store_ps(out, e);
        for (int64_t j = 0; j < len; ++j)
            y[i + j] = in[j] <= 88.0f ? out[j] : __builtin_expf(in[j]);
    }
}

// y = 1 / (1 + e) for x >= 0 and e / (1 + e) below, with e = exp(-|x|); NaN stays NaN.
EP_AVX2 void sigmoid_avx2(const float* x, float* y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const int64_t len = min64(8, n - i);
        alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        __m256 v;
        if (len == 8) {
            v = _mm256_loadu_ps(x + i);
        } else {
            for (int64_t j = 0; j < len; ++j) buf[j] = x[i + j];
            v = _mm256_load_ps(buf);
        }
        const __m256 e = exp8(_mm256_or_ps(v, sign));  // exp(-|x|), in (0, 1]
        const __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
        __m256 out = _mm256_blendv_ps(_mm256_mul_ps(e, r), r,
                                      _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
        out = _mm256_blendv_ps(out, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        if (len == 8) {
            _mm256_storeu_ps(y + i, out);
        } else {
            _mm256_store_ps(buf, out);
            for (int64_t j = 0; j < len; ++j) y[i + j] = buf[j];
        }
    }
}

EP_AVX2 void softmax_row_avx2(const float* x, float* y, int64_t n) {
    // Max: exact, so the lane order does not matter; NaN is caught by the sum below.
    __m256 m8 = _mm256_set1_ps(-__builtin_inff()), nan8 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        m8 = _mm256_max_ps(m8, v);
        nan8 = _mm256_or_ps(nan8, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m8);
    float m = lanes[0];
    for (int j = 1; j < 8; ++j) m = lanes[j] > m ? lanes[j] : m;
    bool special = _mm256_movemask_ps(nan8) != 0;
    for (; i < n; ++i) {
        m = x[i] > m ? x[i] : m;
        special = special || x[i] != x[i];
    }
    // exp(x - max) and its sum in two 4-lane double accumulators (lanes fixed by index).
    const __m256 vm = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(y + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (i < n) {
        alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t j = 0; i + j < n; ++j) buf[j] = x[i + j] - m;
        __m256 e = exp8(_mm256_load_ps(buf));
        // Lanes past the end must not count.
        alignas(32) float eb[8];
        _mm256_store_ps(eb, e);
        for (int64_t j = n - i; j < 8; ++j) eb[j] = 0.0f;
        for (int64_t j = 0; i + j < n; ++j) y[i + j] = eb[j];
        e = _mm256_load_ps(eb);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    alignas(32) double d[8];
    _mm256_store_pd(d, s0);
    _mm256_store_pd(d + 4, s1);
    const double sum = ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
    // x - max is NaN for a NaN input, or for a row of infinities of one sign: exp8 would
    // clamp it, so redo such rows as the definition says.
    special = special || m == __builtin_inff() || m == -__builtin_inff();
    if (special) {
        for (i = 0; i < n; ++i) y[i] = __builtin_nanf("");
        return;
    }
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    const float invs = static_cast<float>(1.0 / sum);
    for (; i < n; ++i) y[i] *= invs;
}

}  // namespace

bool fill_avx2_kernels(SimdKernels& table) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
    table.name = "avx2";
    table.gemm_tile = gemm_tile_avx2;
    table.gemm_dot = dot_avx2::gemm_dot;
    table.depthwise_plane = depthwise_plane_avx2;
    table.max_pool_2x2_s2 = max_pool_2x2_s2_avx2;
    table.exp = exp_avx2;
    table.sigmoid = sigmoid_avx2;
    table.softmax_row = softmax_row_avx2;
    return true;
}

bool fill_avx512_kernels(SimdKernels& table) {
    __builtin_cpu_init();
    if (!fill_avx2_kernels(table) || !__builtin_cpu_supports("avx512f") ||
        !__builtin_cpu_supports("avx512vl"))
        return false;
    table.name = "avx512";
    table.gemm_dot = dot_avx512::gemm_dot;
    table.gemm_tile = gemm_tile_avx512;
    return true;
}

}  // namespace ep::rt

#else

namespace ep::rt {
bool fill_avx2_kernels(SimdKernels&) {
    return false;
}
bool fill_avx512_kernels(SimdKernels&) {
    return false;
}
}  // namespace ep::rt

#endif
