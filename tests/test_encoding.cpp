// The reference quantizer: names, sizes, the bytes it writes, and its error bounds.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "compressor/ir/encoding.h"
#include "compressor/ir/error.h"
#include "compressor/ir/tensor.h"

using namespace ep;

namespace {
std::vector<float> random_values(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.05f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}
}  // namespace

TEST_CASE("encoding names round-trip and name their size", "[encoding]") {
    for (const char* name : {"int8c", "int8g32", "int8g64a", "int4g32", "int4g128a", "int4g64-bf16",
                             "int8g128a-bf16"}) {
        auto e = encoding_from_name(name);
        REQUIRE(e);
        CHECK(encoding_name(*e) == name);
        REQUIRE_NOTHROW(check_encoding(*e, name));
    }
    CHECK_FALSE(encoding_from_name("int4g48"));
    CHECK_FALSE(encoding_from_name("int3g32"));
    CHECK_FALSE(encoding_from_name("int4g"));
    auto g32 = *encoding_from_name("int4g32");
    CHECK(block_bytes(g32) == 18);
    CHECK(bits_per_weight(g32, 128, 3136) == Approx(4.5));
    CHECK(bits_per_weight(*encoding_from_name("int4g32a"), 8, 64) == Approx(5.0));
    CHECK(bits_per_weight(*encoding_from_name("int8g64"), 8, 64) == Approx(8.25));
    // A row of 172 (stories260k's FFN down projection) ends in a padded block.
    CHECK(row_bytes(g32, 172) == 6 * 18);
}

TEST_CASE("int4 symmetric RTN writes llama.cpp Q4_0-style bytes", "[encoding]") {
    auto e = *encoding_from_name("int4g32");
    std::vector<float> w(32, 0.0f);
    w[0] = -1.6f;   // the largest magnitude: d = -1.6 / -8 = 0.2, q = -8
    w[1] = 0.2f;    // q = 1
    w[2] = 1.6f;    // q = -8 would be wrong: round(1.6 / 0.2) = 8, clamped to 7
    w[3] = -0.31f;  // round(-1.55) = -2 (half away from zero)
    auto bytes = quantize_rtn(e, w, 1, 32);
    REQUIRE(bytes.size() == 18);
    uint16_t d;
    std::memcpy(&d, bytes.data(), 2);
    CHECK(half_to_float(d) == Approx(0.2f).epsilon(1e-3));
    auto q = reinterpret_cast<const uint8_t*>(bytes.data() + 2);
    CHECK((q[0] & 0xF) == 0);   // -8 + 8
    CHECK((q[0] >> 4) == 9);    // 1 + 8
    CHECK((q[1] & 0xF) == 15);  // 7 + 8
    CHECK((q[1] >> 4) == 6);    // -2 + 8
    CHECK((q[2] & 0xF) == 8);   // 0
    std::vector<float> back(32);
    dequantize_row(e, bytes, 1, 32, 0, back.data());
    CHECK(back[0] == Approx(-1.6f).epsilon(1e-3));
    CHECK(back[2] == Approx(1.4f).epsilon(1e-3));
    CHECK(back[4] == 0.0f);
}

TEST_CASE("RTN error stays within half a step for every scheme", "[encoding]") {
    const int64_t rows = 7, cols = 100;  // 100: the last group of each row is padded
    auto w = random_values(rows * cols, 3);
    for (const char* name :
         {"int8c", "int8g32", "int8g64a", "int4g32", "int4g64a", "int4g128-bf16"}) {
        INFO(name);
        auto e = *encoding_from_name(name);
        auto bytes = quantize_rtn(e, w, rows, cols);
        REQUIRE(bytes.size() == *encoded_bytes(e, rows, cols));
        std::vector<float> back(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
            dequantize_row(e, bytes, rows, cols, r, back.data());
            int64_t group = traits(e.scheme).grouped ? e.group : cols;
            for (int64_t c = 0; c < cols; ++c) {
                QParams p = row_qparams(e, bytes, rows, cols, r, c / group);
                float x = w[static_cast<size_t>(r * cols + c)];
                // Half a step; symmetric int4 clamps its positive extreme to 7 (one step, plus the
                // rounding of the scale to bf16).
                float bound =
                    std::fabs(p.scale) * (e.scheme == QScheme::Int4Sym ? 1.05f : 0.5f) * 1.001f +
                    1e-7f;
                CHECK(std::fabs(back[static_cast<size_t>(c)] - x) <= bound);
            }
        }
    }
}

TEST_CASE("axis 0 encodes a [K,N] MatMul weight one output column per row", "[encoding]") {
    const int64_t K = 64, N = 5;
    auto w = random_values(K * N, 11);
    Tensor t = make_f32_tensor("W", {K, N}, w);
    Encoding e = *encoding_from_name("int8g32");
    e.axis = 0;
    Tensor q = quantize_tensor_rtn(t, e);
    CHECK(q.shape == std::vector<int64_t>{K, N});
    CHECK(q.expected_bytes() == static_cast<uint64_t>(N * 2 * 34));
    REQUIRE_NOTHROW(q.check_consistent());
    auto back = q.to_floats();
    REQUIRE(back.size() == w.size());
    for (int64_t n = 0; n < N; ++n) {
        // Stored row n holds logical column n: its codes use that column's own scale.
        float amax = 0;
        for (int64_t k = 0; k < 32; ++k)
            amax = std::max(amax, std::fabs(w[static_cast<size_t>(k * N + n)]));
        CHECK(row_qparams(e, q.data.bytes(), N, K, n, 0).scale == Approx(amax / 127).epsilon(1e-3));
        for (int64_t k = 0; k < K; ++k)
            CHECK(std::fabs(back[static_cast<size_t>(k * N + n)] -
                            w[static_cast<size_t>(k * N + n)]) < 0.05f * 4 / 127);
    }
}

TEST_CASE("an encoded tensor with the wrong byte count is an input error naming it", "[encoding]") {
    Tensor t = make_f32_tensor("blk.0.w", {4, 32}, random_values(128, 1));
    Tensor q = quantize_tensor_rtn(t, *encoding_from_name("int4g32"));
    q.shape = {4, 64};
    try {
        q.check_consistent();
        FAIL("no error");
    } catch (const InputError& e) {
        CHECK_THAT(e.what(), Catch::Contains("blk.0.w") && Catch::Contains("int4g32"));
    }
    Encoding bad = *encoding_from_name("int4g32");
    bad.group = 48;
    CHECK_THROWS_AS(check_encoding(bad, "x"), InputError);
}
