// The float GEMM (runtime-check/kernels/gemm.h) on the sizes where its blocking changes: the
// 6-row and 16/8-column micro-tiles, the K block (256, split evenly), the column block
// (512), the in-place-B limit (12 rows), the dot-product path for <= 4 rows with B
// transposed and its 1024-wide K blocks. Checked against a double-precision product with
// the float32 summation bound |got - ref| <= (K + 2) u sum_k |a_ik b_kj| (u = 2^-24),
// and for identical bytes at 1, 2 and 3 threads. Runs on the kernels the CPU selects;
// ctest runs it again with EDGEPACK_ISA=baseline for the portable path.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/simd.h"
#include "support.h"

using namespace ep;

namespace {

struct Product {
    int64_t m, k, n;
    bool ta, tb, accumulate;
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

// C = A B (+ C0) through gemm_f32 with the given threads; A stored [k, m] when ta,
// B stored [n, k] when tb.
std::vector<float> run(const Product& p, const std::vector<float>& a, const std::vector<float>& b,
                       const std::vector<float>& c0, int threads) {
    rt::ExecOptions options;
    options.threads = threads;
    rt::MatrixView av{a.data(), p.m, p.k, p.ta ? p.m : p.k, p.ta};
    rt::MatrixView bv{b.data(), p.k, p.n, p.tb ? p.k : p.n, p.tb};
    std::vector<float> c = p.accumulate ? c0 : std::vector<float>(c0.size(), -7.0f);
    rt::gemm_f32(options, av, bv, c.data(), p.n, p.accumulate);
    return c;
}

void check(const Product& p) {
    INFO("M " << p.m << " K " << p.k << " N " << p.n << " transA " << p.ta << " transB " << p.tb
              << " accumulate " << p.accumulate << " kernels " << rt::simd_kernels().name);
    const uint32_t seed =
        static_cast<uint32_t>(p.m * 1000003 + p.k * 1009 + p.n * 17 + p.ta * 2 + p.tb);
    auto a = random_floats(static_cast<size_t>(p.m * p.k), seed);
    auto b = random_floats(static_cast<size_t>(p.k * p.n), seed + 1);
    auto c0 = random_floats(static_cast<size_t>(p.m * p.n), seed + 2);
    auto got = run(p, a, b, c0, 1);
    for (int threads : {2, 3}) {
        auto more = run(p, a, b, c0, threads);
        INFO(threads << " threads");
        REQUIRE(std::memcmp(got.data(), more.data(), got.size() * sizeof(float)) == 0);
    }
    const double u = std::ldexp(1.0, -24);
    double worst = 0;
    for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = 0; j < p.n; ++j) {
            double ref = p.accumulate ? c0[static_cast<size_t>(i * p.n + j)] : 0.0;
            double mag = std::abs(ref);
            for (int64_t q = 0; q < p.k; ++q) {
                double x = a[static_cast<size_t>(p.ta ? q * p.m + i : i * p.k + q)];
                double y = b[static_cast<size_t>(p.tb ? j * p.k + q : q * p.n + j)];
                ref += x * y;
                mag += std::abs(x * y);
            }
            double err = std::abs(got[static_cast<size_t>(i * p.n + j)] - ref);
            double bound = static_cast<double>(p.k + 2) * u * mag + u * std::abs(ref) + 1e-30;
            worst = std::max(worst, err / bound);
        }
    REQUIRE(worst <= 1.0);
}

}  // namespace

TEST_CASE("GEMM tiles: rows, columns and K around every block edge", "[kernels][gemm-blocks]") {
    const int64_t m = GENERATE(1, 5, 6, 7, 12, 13, 97);
    const int64_t n = GENERATE(1, 8, 9, 16, 17, 513);
    const int64_t k = GENERATE(1, 255, 257, 513);
    const bool tb = GENERATE(false, true);
    check({m, k, n, false, tb, false});
}

TEST_CASE("GEMM accumulates into C and reads a transposed A", "[kernels][gemm-blocks]") {
    const int64_t m = GENERATE(1, 4, 7, 20);
    const int64_t n = GENERATE(3, 16, 33);
    const int64_t k = GENERATE(5, 300);
    check({m, k, n, true, false, true});
    check({m, k, n, false, true, true});
}

TEST_CASE("GEMM dot-product path: few rows, B transposed, K across 1024-wide blocks",
          "[kernels][gemm-blocks]") {
    const int64_t m = GENERATE(1, 2, 3, 4);
    const int64_t k = GENERATE(7, 8, 1023, 1024, 1025, 3136);
    const int64_t n = GENERATE(1, 5, 64, 65, 130);
    check({m, k, n, false, true, false});
}

TEST_CASE("AVX-512 kernels give the AVX2 kernels' bytes", "[kernels][gemm-blocks]") {
    rt::SimdKernels avx2, avx512;
    if (!rt::fill_avx2_kernels(avx2) || !rt::fill_avx512_kernels(avx512))
        EP_SKIP("this CPU has no AVX-512F/VL: nothing to compare");
    // The dot-product path (<= 4 rows per block, B stored [N, K]): 1, primes, the
    // 8-float vector and its edges, the 1024-wide K block and the 64-column chunk.
    const int64_t m = GENERATE(1, 2, 3, 4, 5, 7, 8);
    const int64_t k = GENERATE(1, 7, 8, 9, 1023, 1024, 1025, 3136);
    const int64_t n = GENERATE(1, 3, 4, 5, 63, 64, 65, 130);
    const bool accumulate = GENERATE(false, true);
    INFO("M " << m << " K " << k << " N " << n << " accumulate " << accumulate);
    const uint32_t seed = static_cast<uint32_t>(m * 7919 + k * 31 + n);
    auto a = random_floats(static_cast<size_t>(m * k), seed);
    auto b = random_floats(static_cast<size_t>(n * k), seed + 1);
    auto c0 = random_floats(static_cast<size_t>(m * n), seed + 2);
    auto run_dot = [&](const rt::SimdKernels& table, int64_t n0, int64_t n1,
                       std::vector<float>& c) {
        rt::GemmTile t{a.data(), k, b.data(), k, true, c.data(), n, k, accumulate, 0, m, n0, n1};
        table.gemm_dot(t);
    };
    std::vector<float> want = c0, got = c0, split = c0;
    run_dot(avx2, 0, n, want);
    run_dot(avx512, 0, n, got);
    REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
    // Cut into column ranges as threads would: same bytes.
    run_dot(avx512, 0, n / 2, split);
    run_dot(avx512, n / 2, n, split);
    REQUIRE(std::memcmp(want.data(), split.data(), want.size() * sizeof(float)) == 0);
}

TEST_CASE("AVX-512 tile kernel (pairs of 16-column panels) gives the AVX2 kernel's bytes",
          "[kernels][gemm-blocks]") {
    rt::SimdKernels avx2, avx512;
    if (!rt::fill_avx2_kernels(avx2) || !rt::fill_avx512_kernels(avx512))
        EP_SKIP("this CPU has no AVX-512F/VL: nothing to compare");
    // Rows around the 6-row micro-tile and the 12-row in-place limit, columns around
    // one and two 16-column panels and the 512 block, K around the 256 block; B in
    // place, packed (many rows, large B) and transposed.
    const int64_t m = GENERATE(1, 5, 6, 7, 13, 97);
    const int64_t n = GENERATE(1, 15, 16, 17, 31, 32, 33, 48, 513);
    const int64_t k = GENERATE(1, 9, 255, 257);
    const bool tb = GENERATE(false, true);
    const bool accumulate = GENERATE(false, true);
    INFO("M " << m << " K " << k << " N " << n << " transB " << tb << " accumulate " << accumulate);
    const uint32_t seed = static_cast<uint32_t>(m * 7919 + k * 31 + n + tb);
    auto a = random_floats(static_cast<size_t>(m * k), seed);
    auto b = random_floats(static_cast<size_t>(k * n), seed + 1);
    auto c0 = random_floats(static_cast<size_t>(m * n), seed + 2);
    std::vector<float> pack(static_cast<size_t>(rt::kGemmPackFloats));
    auto run_tile = [&](const rt::SimdKernels& table, std::vector<float>& c) {
        rt::GemmTile t{a.data(), k,          b.data(), tb ? k : n, tb, c.data(), n,
                       k,        accumulate, 0,        m,          0,  n};
        table.gemm_tile(t, pack.data());
    };
    std::vector<float> want = c0, got = c0;
    run_tile(avx2, want);
    run_tile(avx512, got);
    REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
}
