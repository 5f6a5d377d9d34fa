// The reference quantizer: names, sizes, the bytes it writes, and its error bounds; the
// optimised quantizer (quantize_rtn, quantize_tensor_rtn) writes the reference's bytes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>

#include "ir/encoding.h"
#include "ir/error.h"
#include "ir/tensor.h"

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

// --- The optimised quantizer writes the reference's bytes -------------------------------

namespace {

const char* const kAllEncodings[] = {
    "int4g32",       "int4g64",        "int4g128",      "int4g32-bf16",   "int4g64-bf16",
    "int4g128-bf16", "int4g32a",       "int4g64a",      "int4g128a",      "int4g32a-bf16",
    "int4g64a-bf16", "int4g128a-bf16", "int8g32",       "int8g64",        "int8g128",
    "int8g32-bf16",  "int8g64-bf16",   "int8g128-bf16", "int8g32a",       "int8g64a",
    "int8g128a",     "int8g32a-bf16",  "int8g64a-bf16", "int8g128a-bf16", "int8c"};

// Sets EDGEPACK_ISA for the lifetime of the object (nullopt: unset), then restores it.
class ScopedIsa {
  public:
    explicit ScopedIsa(std::optional<std::string> value) {
        if (const char* old = std::getenv("EDGEPACK_ISA")) old_ = old;
        if (value)
            ::setenv("EDGEPACK_ISA", value->c_str(), 1);
        else
            ::unsetenv("EDGEPACK_ISA");
    }
    ~ScopedIsa() {
        if (old_)
            ::setenv("EDGEPACK_ISA", old_->c_str(), 1);
        else
            ::unsetenv("EDGEPACK_ISA");
    }
    ScopedIsa(const ScopedIsa&) = delete;
    ScopedIsa& operator=(const ScopedIsa&) = delete;

  private:
    std::optional<std::string> old_;
};

// The path quantize_rtn should take here: AVX2 when the CPU has it, unless the environment
// forces the portable code (EDGEPACK_ISA=baseline, as for the runtime).
std::string expected_isa() {
    const char* isa = std::getenv("EDGEPACK_ISA");
    if (isa && std::string(isa) == "baseline") return "scalar";
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return "avx2";
#endif
    return "scalar";
}

// Values of several distributions and magnitudes.
std::vector<float> distribution(const std::string& kind, size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> v(n);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::cauchy_distribution<float> cauchy(0.0f, 1.0f);
    std::uniform_real_distribution<float> exponent(-45.0f, 38.0f);
    for (auto& x : v) {
        if (kind == "normal")
            x = normal(rng) * 0.02f;
        else if (kind == "uniform")
            x = uniform(rng) * 3.0f;
        else if (kind == "positive")
            x = std::fabs(normal(rng)) + 0.5f;  // asymmetric range
        else if (kind == "heavy")
            x = std::clamp(cauchy(rng), -1e6f, 1e6f);
        else if (kind == "huge")
            x = normal(rng) * 1e6f;  // f16 scales overflow to inf
        else if (kind == "tiny")
            x = normal(rng) * 1e-7f;  // f16 scales denormal or 0
        else if (kind == "denormal")
            x = normal(rng) * 1e-39f;
        else if (kind == "magnitudes")
            x = (uniform(rng) < 0 ? -1.0f : 1.0f) * std::pow(2.0f, exponent(rng));
        else if (kind == "integers")
            x = std::round(uniform(rng) * 20.0f) * 0.125f;  // many ties
        else
            FAIL("unknown distribution " << kind);
    }
    return v;
}

// quantize_rtn (the optimised path where there is one) against the reference.
void check_same_bytes(const Encoding& e, const std::vector<float>& w, int64_t rows, int64_t cols) {
    auto span = std::span(w).first(static_cast<size_t>(rows * cols));
    auto fast = quantize_rtn(e, span, rows, cols);
    auto ref = quantize_rtn_reference(e, span, rows, cols);
    REQUIRE(fast.size() == ref.size());
    size_t first_diff = fast.size();
    for (size_t i = 0; i < fast.size() && first_diff == fast.size(); ++i)
        if (fast[i] != ref[i]) first_diff = i;
    INFO("first differing byte " << first_diff << " of " << fast.size());
    CHECK(first_diff == fast.size());
}

}  // namespace

TEST_CASE("the optimised RTN path covers every scheme on this CPU", "[encoding][rtn_fast]") {
    for (const char* name : kAllEncodings) {
        INFO(name);
        auto e = *encoding_from_name(name);
        CHECK(quantize_rtn_isa(e) == expected_isa());
    }
}

TEST_CASE("fast RTN writes the reference bytes on random data of every scheme",
          "[encoding][rtn_fast]") {
    const int64_t cols = GENERATE(1, 7, 31, 32, 33, 64, 100, 127, 128, 129, 300);
    const int64_t rows = 9;
    for (const char* kind : {"normal", "uniform", "positive", "heavy", "huge", "tiny", "denormal",
                             "magnitudes", "integers"}) {
        auto w = distribution(kind, static_cast<size_t>(rows * cols),
                              static_cast<uint32_t>(cols * 131 + kind[0]));
        for (const char* name : kAllEncodings) {
            INFO(kind << " " << name << " cols " << cols);
            check_same_bytes(*encoding_from_name(name), w, rows, cols);
        }
    }
}

TEST_CASE("fast RTN writes the reference bytes on ties zeros extremes and non-finite values",
          "[encoding][rtn_fast]") {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float denorm_min = std::numeric_limits<float>::denorm_min();
    // Each entry: one 128-element row of a special kind (groups of 32 see four blocks).
    std::vector<std::pair<std::string, std::vector<float>>> cases;
    auto add = [&](std::string name, auto fill) {
        std::vector<float> row(128, 0.0f);
        for (size_t i = 0; i < row.size(); ++i) row[i] = fill(i);
        cases.emplace_back(std::move(name), std::move(row));
    };
    // m = -2 gives d = 0.25 (exact in f16 and bf16): x / d = k + 0.5 exactly.
    add("exact ties", [](size_t i) {
        return i == 0 ? -2.0f : (static_cast<float>(i % 16) - 8.0f + 0.5f) * 0.25f;
    });
    // d = 1 / 127 is not exact: ties of the int8 scale's own rounding.
    add("int8 ties", [](size_t i) {
        return i % 32 == 0 ? 1.0f : (static_cast<float>(i % 20) - 10.0f + 0.5f) / 127.0f;
    });
    add("all zero", [](size_t) { return 0.0f; });
    add("negative zeros", [](size_t) { return -0.0f; });
    add("mixed zeros", [](size_t i) { return i % 3 ? 0.0f : -0.0f; });
    add("one huge value",
        [](size_t i) { return i == 37 ? 3e38f : 0.001f * static_cast<float>(i % 5); });
    add("huge range", [](size_t i) { return i % 2 ? 3.4e38f : -3.4e38f; });  // hi - lo overflows
    add("negative max",
        [](size_t i) { return i % 32 == 5 ? -3.0f : 0.1f * static_cast<float>(i % 7); });
    add("tie -a first",
        [](size_t i) { return i % 32 == 3 ? -1.5f : (i % 32 == 9 ? 1.5f : 0.01f); });
    add("tie +a first",
        [](size_t i) { return i % 32 == 3 ? 1.5f : (i % 32 == 9 ? -1.5f : 0.01f); });
    add("tie at element 31",
        [](size_t i) { return i % 32 == 0 ? 0.75f : (i % 32 == 31 ? -0.75f : 0.0f); });
    add("denormals",
        [=](size_t i) { return denorm_min * static_cast<float>(i % 9) * (i % 2 ? -1.0f : 1.0f); });
    add("f16 denormal scale", [](size_t i) { return 1e-6f * static_cast<float>(i % 11) - 4e-6f; });
    add("scale rounds to 0", [](size_t i) { return 1e-8f * static_cast<float>(i % 5); });
    add("f16 max", [](size_t i) { return i % 4 ? 65504.0f * 8 : -1.0f; });
    // m / -8 halfway between two f16 values (1 + 2^-11): the scale's rounding tie.
    add("f16 rounding tie",
        [](size_t i) { return i % 32 == 0 ? -8.0f * (1.0f + 1.0f / 2048.0f) : 0.3f; });
    add("infinity", [=](size_t i) { return i == 40 ? inf : 0.5f; });
    add("minus infinity", [=](size_t i) { return i == 1 ? -inf : -0.25f; });
    add("nan", [=](size_t i) { return i == 70 ? nan : 1.0f + static_cast<float>(i % 3); });
    add("nan first", [=](size_t i) { return i % 32 == 0 ? nan : -1.0f; });
    add("all nan", [=](size_t) { return nan; });
    for (const auto& [what, row] : cases) {
        // Several rows (the row repeated, shifted), full blocks and a padded last block.
        for (int64_t cols : {int64_t{128}, int64_t{100}, int64_t{45}}) {
            const int64_t rows = 3;
            std::vector<float> w(static_cast<size_t>(rows * cols));
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c)
                    w[static_cast<size_t>(r * cols + c)] = row[static_cast<size_t>((c + r) % 128)];
            for (const char* name : kAllEncodings) {
                INFO(what << " " << name << " cols " << cols);
                check_same_bytes(*encoding_from_name(name), w, rows, cols);
            }
        }
    }
}

TEST_CASE("fast int4 RTN bytes of ties zeros and the first of +a and -a", "[encoding][rtn_fast]") {
    auto e = *encoding_from_name("int4g32");
    std::vector<float> w(96, 0.0f);
    // Block 0: m = -2 (d = 0.25); x / d = 2.5 and -2.5 round away from zero to 3 and -3.
    w[0] = -2.0f;
    w[1] = 0.625f;
    w[2] = -0.625f;
    // Block 1: all zero: d = +0 / -8 = -0 (f16 0x8000), every code 0 (nibble 8).
    // Block 2: +1.5 before -1.5: m = 1.5, d = -0.1875, so +1.5 is code -8.
    w[64 + 3] = 1.5f;
    w[64 + 9] = -1.5f;
    auto bytes = quantize_rtn(e, w, 1, 96);
    REQUIRE(bytes == quantize_rtn_reference(e, w, 1, 96));
    const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
    uint16_t d0, d1, d2;
    std::memcpy(&d0, b, 2);
    std::memcpy(&d1, b + 18, 2);
    std::memcpy(&d2, b + 36, 2);
    CHECK(half_to_float(d0) == 0.25f);
    CHECK(b[2] == ((3 + 8) << 4 | 0));  // q0 = -8, q1 = 3
    CHECK((b[3] & 0xF) == -3 + 8);      // q2 = -3
    CHECK(d1 == 0x8000);
    for (int i = 0; i < 16; ++i) CHECK(b[18 + 2 + i] == 0x88);
    CHECK(half_to_float(d2) == -0.1875f);
    CHECK((b[36 + 2 + 1] >> 4) == 0);   // element 3: -8 + 8
    CHECK((b[36 + 2 + 4] >> 4) == 15);  // element 9: round(8) clamped to 7
}

TEST_CASE("EDGEPACK_ISA=baseline makes quantize_rtn take the scalar reference",
          "[encoding][rtn_fast]") {
    auto e = *encoding_from_name("int4g32");
    auto w = distribution("normal", 4 * 96, 5);
    {
        ScopedIsa baseline("baseline");
        CHECK(quantize_rtn_isa(e) == "scalar");
        CHECK(quantize_rtn(e, w, 4, 96) == quantize_rtn_reference(e, w, 4, 96));
        Encoding e0 = e;
        e0.axis = 0;
        Tensor t = make_f32_tensor("w", {96, 4}, w);
        auto q = quantize_tensor_rtn(t, e0);
        auto ref = quantize_rtn_reference(e, stored_floats(t, e0), 4, 96);
        CHECK(std::equal(q.data.bytes().begin(), q.data.bytes().end(), ref.begin(), ref.end()));
    }
    ScopedIsa unset(std::nullopt);
    CHECK(quantize_rtn_isa(e) == expected_isa());
}

TEST_CASE(
    "quantize_tensor_rtn on an axis-0 weight writes the bytes of the reference on its "
    "transpose",
    "[encoding][rtn_fast]") {
    const std::string isa = GENERATE(std::string("default"), std::string("baseline"));
    ScopedIsa scoped(isa == "baseline" ? std::optional<std::string>("baseline") : std::nullopt);
    // [K, N]: tile edges (tiles of 128 x 512), partial groups, one column, one row.
    const std::pair<int64_t, int64_t> shapes[] = {{64, 5},   {100, 37}, {300, 130}, {1, 9},
                                                  {129, 65}, {256, 64}, {33, 1},    {520, 71},
                                                  {40, 513}, {130, 600}};
    for (auto [K, N] : shapes) {
        auto w = distribution("uniform", static_cast<size_t>(K * N), static_cast<uint32_t>(K + N));
        // The naive transpose: stored row n is logical column n.
        std::vector<float> tr(w.size());
        for (int64_t k = 0; k < K; ++k)
            for (int64_t n = 0; n < N; ++n)
                tr[static_cast<size_t>(n * K + k)] = w[static_cast<size_t>(k * N + n)];
        Tensor t = make_f32_tensor("w", {K, N}, w);
        // The same weight in f16 (read through to_floats).
        Tensor h = t;
        h.dtype = DType::F16;
        std::vector<std::byte> hb(w.size() * 2);
        std::vector<float> htr(w.size());
        for (size_t i = 0; i < w.size(); ++i) {
            uint16_t bits = float_to_half(w[i]);
            std::memcpy(hb.data() + 2 * i, &bits, 2);
        }
        for (size_t i = 0; i < w.size(); ++i) htr[i] = half_to_float(float_to_half(tr[i]));
        h.data = TensorData::owned(std::move(hb));
        for (const char* name : kAllEncodings) {
            INFO(isa << " " << name << " [" << K << ", " << N << "]");
            Encoding e = *encoding_from_name(name);
            e.axis = 0;
            auto sf = stored_floats(t, e);
            CHECK(sf == tr);
            auto ref = quantize_rtn_reference(e, tr, N, K);
            auto q = quantize_tensor_rtn(t, e);
            CHECK(q.encoding == e);
            CHECK(std::equal(q.data.bytes().begin(), q.data.bytes().end(), ref.begin(), ref.end()));
            auto qh = quantize_tensor_rtn(h, e);
            auto refh = quantize_rtn_reference(e, htr, N, K);
            CHECK(std::equal(qh.data.bytes().begin(), qh.data.bytes().end(), refh.begin(),
                             refh.end()));
        }
    }
}
