// The table of optimised CPU kernel variants, chosen once at start-up from the CPU's
// features (x86-64: AVX2 + FMA when present). Op code calls through the table and never
// tests CPU features itself; a null entry means "no optimised variant: use the portable
// code" (Eigen or plain loops).
//
// EDGEPACK_ISA=baseline in the environment forces the portable variants (to test or
// benchmark them on a machine that has AVX2), EDGEPACK_ISA=avx2 the AVX2 table on a
// machine that has AVX-512. The choice may change results in the last
// bits (FMA rounds once), never their determinism: a given table gives the same bits for
// any thread count and from run to run.
#pragma once

#include <cstdint>

namespace ep::rt {

// One tile of C = A * B (+ C): rows [m0, m1) and columns [n0, n1) of C.
//   A: row-major [M, K] with leading dimension lda (never transposed here).
//   B: [K, N] row-major with ldb, or, when b_transposed, stored as [N, K] row-major.
//   accumulate: C += A * B, else C = A * B.
// Every element of C is one fused multiply-add chain over k = 0..K-1 in order, started
// from C (accumulate) or from the first product, however the tile is cut or blocked.
struct GemmTile {
    const float* a;
    int64_t lda;
    const float* b;
    int64_t ldb;
    bool b_transposed;
    float* c;
    int64_t ldc;
    int64_t k;
    bool accumulate;
    int64_t m0, m1, n0, n1;
};

inline constexpr int64_t kGemmKc = 256;  // K block: rows of a packed B panel
inline constexpr int64_t kGemmNc = 512;  // N block of a tile (columns of packed B)
inline constexpr int64_t kGemmMc = 96;   // M block of a tile (multiple of the 6-row micro-tile)
// Floats of packing buffer a tile needs.
inline constexpr int64_t kGemmPackFloats = kGemmKc * kGemmNc;

// One output plane of a depthwise convolution over a zero-padded input laid out so that
// every tap reads consecutive floats (conv2d.cpp's phase planes):
//   out[y][x] = bias + sum_t w[t] * in[y * row_step + taps[t] + x]
// summed in tap order. `in` must be readable 8 floats past the last index used (x
// rounded up to a multiple of 8).
struct DepthwisePlane {
    const float* in;
    int64_t row_step;
    const int64_t* taps;
    int64_t ntaps;
    const float* w;
    float bias;
    float* out;
    int64_t oh, ow;
};

struct SimdKernels {
    const char* name = "baseline";
    // C tile by packed micro-kernels; `pack` holds kGemmPackFloats floats.
    void (*gemm_tile)(const GemmTile& t, float* pack) = nullptr;
    // Rows [m0, m1) (at most a few) of C = A * B^T with B stored [N, K]: dot products
    // over K for columns [n0, n1), each summed in a fixed lane order.
    void (*gemm_dot)(const GemmTile& t) = nullptr;
    void (*depthwise_plane)(const DepthwisePlane& p) = nullptr;
    // One plane of a 2x2 max pool with horizontal stride 2 and every window inside:
    // out[y][x] = max over r0[2x], r0[2x+1], r1[2x], r1[2x+1] with r0 = in + y * row_step
    // and r1 = r0 + dy, taken in that order with acc = v > acc ? v : acc (a NaN first
    // element wins, a later NaN is skipped).
    void (*max_pool_2x2_s2)(const float* in, int64_t row_step, int64_t dy, float* out, int64_t oh,
                            int64_t ow) = nullptr;
    // y[i] = exp(x[i]) (y may be x); 0 below -87, as vec_math.h's exp_f32.
    void (*exp)(const float* x, float* y, int64_t n) = nullptr;
    // y[i] = sigmoid(x[i]) (y may be x), as vec_math.h's sigmoid_f32.
    void (*sigmoid)(const float* x, float* y, int64_t n) = nullptr;
    // One softmax row (n >= 1): y = exp(x - max) / sum, the sum accumulated in double
    // (y may be x). NaN anywhere gives NaN.
    void (*softmax_row)(const float* x, float* y, int64_t n) = nullptr;
};

[[nodiscard]] const SimdKernels& simd_kernels();

// Implementations per instruction set (simd_avx2.cpp); each returns false when it is
// not compiled in or the CPU lacks the features. The AVX-512 table is the AVX2 one with
// some kernels blocked for 32 registers: it gives the same bits as the AVX2 table.
[[nodiscard]] bool fill_avx2_kernels(SimdKernels& table);
[[nodiscard]] bool fill_avx512_kernels(SimdKernels& table);

}  // namespace ep::rt
