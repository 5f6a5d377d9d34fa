// MatMulInteger through igemm_int32 (kernels/igemm.h): the exact int32 sums of every
// instruction-set table against an int64 reference wrapped to 32 bits, on awkward sizes with
// zero points and uint8 / int8 mixes, at 1-3 threads; and the MatMulInteger op's fast path
// (a scalar a_zero_point, B an initializer or fed at run time) giving the bytes of its
// reference loop (the same a_zero_point given per row of A, which the fast path leaves to
// int_matmul).
//
// Seeded pseudo-random 8-bit codes: the property tested is exact integer arithmetic.
#include <random>

#include "op_model.h"
#include "runtime-check/kernels/igemm.h"
#include "support.h"

using namespace ep;

namespace {

std::vector<uint8_t> random_codes(std::mt19937& rng, size_t n) {
    std::uniform_int_distribution<int> d(0, 255);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(d(rng));
    return v;
}

int64_t code(uint8_t b, bool is_signed) {
    return is_signed ? static_cast<int8_t>(b) : static_cast<int64_t>(b);
}

Tensor codes_tensor(bool is_signed, std::vector<int64_t> shape, const std::vector<uint8_t>& v) {
    Tensor t;
    t.dtype = is_signed ? DType::I8 : DType::U8;
    t.shape = std::move(shape);
    t.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                               reinterpret_cast<const std::byte*>(v.data()) + v.size()));
    return t;
}

std::vector<int32_t> ints(const Tensor& t) {
    auto v = t.values<int32_t>();
    return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("igemm_int32: every instruction set gives the wrapped int64 sums", "[igemm][integer]") {
    const int64_t rows = GENERATE(1, 7, 9, 33);
    const int64_t k = GENERATE(1, 5, 64, 131);
    const int64_t cols = GENERATE(1, 17, 33, 70);
    INFO("rows " << rows << " k " << k << " cols " << cols);
    std::mt19937 rng(static_cast<uint32_t>(rows * 7919 + k * 131 + cols));
    for (int variant = 0; variant < 4; ++variant) {
        const bool x_signed = variant & 1, w_signed = variant & 2;
        INFO("x " << (x_signed ? "int8" : "uint8") << ", w " << (w_signed ? "int8" : "uint8"));
        // MatMul's layout: x[k][c] = A[c][k], w[r][k] = B[k][r], y[r][c] at Y[c][r].
        auto a = random_codes(rng, static_cast<size_t>(cols * k));
        auto b = random_codes(rng, static_cast<size_t>(k * rows));
        const int32_t xz = static_cast<int32_t>(code(random_codes(rng, 1)[0], x_signed));
        std::vector<int32_t> wz(static_cast<size_t>(rows));
        for (auto& z : wz)
            z = variant == 2 ? 0 : static_cast<int32_t>(code(random_codes(rng, 1)[0], w_signed));
        const bool with_bias = variant == 1;
        std::vector<int32_t> bias(static_cast<size_t>(rows));
        for (auto& v : bias) v = static_cast<int32_t>(rng());
        std::vector<int32_t> want(static_cast<size_t>(cols * rows));
        for (int64_t c = 0; c < cols; ++c)
            for (int64_t r = 0; r < rows; ++r) {
                int64_t s = with_bias ? bias[static_cast<size_t>(r)] : 0;
                for (int64_t kk = 0; kk < k; ++kk)
                    s += (code(a[static_cast<size_t>(c * k + kk)], x_signed) - xz) *
                         (code(b[static_cast<size_t>(kk * rows + r)], w_signed) -
                          wz[static_cast<size_t>(r)]);
                want[static_cast<size_t>(c * rows + r)] =
                    static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(s)));
            }
        rt::IgemmWeights wp = rt::igemm_prepare_weights(b.data(), w_signed, rows, k, 1, rows, wz);
        rt::IgemmActivation x{a.data(), x_signed, cols, 1, k, xz};
        for (rt::IgemmIsa isa : rt::igemm_available_isas())
            for (int threads : {1, 2, 3}) {
                INFO("isa " << rt::igemm_isa_name(isa) << ", threads " << threads);
                std::vector<int32_t> got(want.size(), 0x5A5A5A5A);
                rt::igemm_int32({threads}, wp, x, with_bias ? bias.data() : nullptr, got.data(), 1,
                                rows, isa);
                REQUIRE(got == want);
            }
    }
}

TEST_CASE("igemm_int32 wraps modulo 2^32 like the ONNX contract", "[igemm][integer]") {
    // 70000 products of (0 - 255) * (127 - (-128)) = -65025 sum to -4551750000, which wraps.
    const int64_t k = 70000, rows = 2, cols = 3;
    std::vector<uint8_t> a(static_cast<size_t>(cols * k), 0);
    std::vector<uint8_t> b(static_cast<size_t>(k * rows), 127);
    const int64_t exact = k * (0 - 255) * (127 - (-128));
    const auto want = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(exact)));
    rt::IgemmWeights wp = rt::igemm_prepare_weights(b.data(), true, rows, k, 1, rows, {-128});
    rt::IgemmActivation x{a.data(), false, cols, 1, k, 255};
    for (rt::IgemmIsa isa : rt::igemm_available_isas()) {
        INFO("isa " << rt::igemm_isa_name(isa));
        std::vector<int32_t> got(static_cast<size_t>(cols * rows));
        rt::igemm_int32({2}, wp, x, nullptr, got.data(), 1, rows, isa);
        for (int32_t v : got) REQUIRE(v == want);
    }
}

TEST_CASE("MatMulInteger's fast path gives the bytes of its reference loop", "[ops][integer]") {
    const int64_t m = GENERATE(1, 13, 40);
    const int64_t k = GENERATE(3, 33);
    const int64_t n = GENERATE(1, 9, 31);
    const bool a_signed = GENERATE(false, true);
    const bool b_signed = GENERATE(false, true);
    const bool b_constant = GENERATE(false, true);
    const int64_t batch = 2;
    INFO("m " << m << " k " << k << " n " << n << " A " << (a_signed ? "int8" : "uint8") << " B "
              << (b_signed ? "int8" : "uint8") << (b_constant ? " initializer" : " fed"));
    std::mt19937 rng(static_cast<uint32_t>(m * 1009 + k * 31 + n + a_signed * 7 + b_signed * 3));
    Tensor a = codes_tensor(a_signed, {batch, m, k},
                            random_codes(rng, static_cast<size_t>(batch * m * k)));
    Tensor b = codes_tensor(b_signed, {k, n}, random_codes(rng, static_cast<size_t>(k * n)));
    const uint8_t az = random_codes(rng, 1)[0];
    Tensor a_zp_scalar = codes_tensor(a_signed, {}, {az});
    // The same zero point once per row of A: int_matmul's broadcasting, not the fast path.
    Tensor a_zp_rows =
        codes_tensor(a_signed, {m}, std::vector<uint8_t>(static_cast<size_t>(m), az));
    Tensor b_zp = codes_tensor(b_signed, {n}, random_codes(rng, static_cast<size_t>(n)));
    auto spec_with = [&](const Tensor& a_zp) {
        test::OneNode spec;
        spec.op_type = "MatMulInteger";
        spec.opset = 17;
        spec.inputs = {"a", "b", "a_zp", "b_zp"};
        spec.feeds = {{"a", a}};
        (b_constant ? spec.constants : spec.feeds).emplace_back("b", b);
        spec.constants.emplace_back("a_zp", a_zp);
        spec.constants.emplace_back("b_zp", b_zp);
        return spec;
    };
    const Tensor want = test::run_node(spec_with(a_zp_rows), 1).at(0);
    REQUIRE(want.dtype == DType::I32);
    REQUIRE(want.shape == std::vector<int64_t>{batch, m, n});
    for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        const Tensor got = test::run_node(spec_with(a_zp_scalar), threads).at(0);
        REQUIRE(got.shape == want.shape);
        REQUIRE(ints(got) == ints(want));
    }
}

TEST_CASE("ConvInteger's fast path gives the int64 sums of a direct convolution",
          "[ops][integer]") {
    // Grouped, strided, dilated and padded (padding counts as x_zero_point); and pointwise.
    const bool pointwise = GENERATE(false, true);
    const bool x_signed = GENERATE(false, true);
    const bool w_signed = GENERATE(false, true);
    const int64_t n = 2, cin = 6, group = pointwise ? 1 : 2, cout = 4, ih = 7, iw = 9;
    const int64_t kh = pointwise ? 1 : 3, kw = pointwise ? 1 : 2, sh = pointwise ? 1 : 2, sw = 1;
    const int64_t dh = 1, dw = pointwise ? 1 : 2, pad = pointwise ? 0 : 1;
    const int64_t oh = (ih + 2 * pad - dh * (kh - 1) - 1) / sh + 1;
    const int64_t ow = (iw + 2 * pad - dw * (kw - 1) - 1) / sw + 1;
    const int64_t cin_g = cin / group, cout_g = cout / group;
    INFO((pointwise ? "pointwise" : "3x2 grouped")
         << " x " << (x_signed ? "int8" : "uint8") << " w " << (w_signed ? "int8" : "uint8"));
    std::mt19937 rng(static_cast<uint32_t>(pointwise * 4 + x_signed * 2 + w_signed + 11));
    auto xv = random_codes(rng, static_cast<size_t>(n * cin * ih * iw));
    auto wv = random_codes(rng, static_cast<size_t>(cout * cin_g * kh * kw));
    const uint8_t xz = random_codes(rng, 1)[0];
    auto wz = random_codes(rng, static_cast<size_t>(cout));
    std::vector<int32_t> want(static_cast<size_t>(n * cout * oh * ow));
    for (int64_t b = 0; b < n; ++b)
        for (int64_t o = 0; o < cout; ++o)
            for (int64_t oy = 0; oy < oh; ++oy)
                for (int64_t ox = 0; ox < ow; ++ox) {
                    int64_t s = 0;
                    for (int64_t ci = 0; ci < cin_g; ++ci)
                        for (int64_t ky = 0; ky < kh; ++ky)
                            for (int64_t kx = 0; kx < kw; ++kx) {
                                const int64_t iy = oy * sh - pad + ky * dh;
                                const int64_t ix = ox * sw - pad + kx * dw;
                                if (iy < 0 || iy >= ih || ix < 0 || ix >= iw) continue;
                                const int64_t ch = (o / cout_g) * cin_g + ci;
                                const auto xi =
                                    static_cast<size_t>(((b * cin + ch) * ih + iy) * iw + ix);
                                const auto wi =
                                    static_cast<size_t>(((o * cin_g + ci) * kh + ky) * kw + kx);
                                s += (code(xv[xi], x_signed) - code(xz, x_signed)) *
                                     (code(wv[wi], w_signed) -
                                      code(wz[static_cast<size_t>(o)], w_signed));
                            }
                    want[static_cast<size_t>(((b * cout + o) * oh + oy) * ow + ox)] =
                        static_cast<int32_t>(s);
                }
    test::OneNode spec;
    spec.op_type = "ConvInteger";
    spec.inputs = {"x", "w", "x_zp", "w_zp"};
    spec.feeds = {{"x", codes_tensor(x_signed, {n, cin, ih, iw}, xv)}};
    spec.constants = {{"w", codes_tensor(w_signed, {cout, cin_g, kh, kw}, wv)},
                      {"x_zp", codes_tensor(x_signed, {}, {xz})},
                      {"w_zp", codes_tensor(w_signed, {cout}, wz)}};
    spec.attributes = {test::ints_attr("kernel_shape", {kh, kw}),
                       test::ints_attr("strides", {sh, sw}), test::ints_attr("dilations", {dh, dw}),
                       test::ints_attr("pads", {pad, pad, pad, pad}),
                       test::int_attr("group", group)};
    for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        const Tensor got = test::run_node(spec, threads).at(0);
        REQUIRE(got.shape == std::vector<int64_t>{n, cout, oh, ow});
        REQUIRE(ints(got) == want);
    }
}
