// The audio front ends (runtime-check/ops/ops_audio.cpp: DFT, STFT, HannWindow,
// HammingWindow, BlackmanWindow, MelWeightMatrix) against ONNX Runtime on the one-node
// cases of scripts/xcheck/op_cases.py --group audio; bit-identical results at 1, 2 and 3
// threads; the messages malformed nodes get. And the float8 / float4 / 2- and 4-bit Cast
// and QuantizeLinear conversions (ir/dtype.h) on values whose bytes ml_dtypes (the ONNX
// reference's types) gives.
#include <cmath>
#include <cstring>
#include <numbers>

#include "op_cases.h"
#include "op_model.h"
#include "runtime-check/ops/op_context.h"
#include "support.h"

using namespace ep;
using Catch::Matchers::Contains;
using test::OneNode;

namespace {

Tensor i64_scalar(int64_t v) {
    Tensor t = rt::make_tensor(DType::I64, {});
    t.mutable_values<int64_t>()[0] = v;
    return t;
}

Tensor f32_values(std::vector<float> v) {
    return make_f32_tensor("x", {static_cast<int64_t>(v.size())}, v);
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
    std::vector<uint8_t> b(t.data.size());
    if (!b.empty()) std::memcpy(b.data(), t.data.bytes().data(), b.size());
    return b;
}

OneNode cast_node(std::vector<float> x, DType to, int64_t saturate = 1) {
    OneNode spec;
    spec.op_type = "Cast";
    spec.opset = 21;
    spec.feeds = {{"x", f32_values(std::move(x))}};
    spec.inputs = {"x"};
    spec.attributes = {test::int_attr("to", traits(to).onnx_code),
                       test::int_attr("saturate", saturate)};
    return spec;
}

}  // namespace

TEST_CASE("DFT, STFT, the windows and MelWeightMatrix match ONNX Runtime on random shapes",
          "[audio][xcheck]") {
    CHECK(test::check_op_cases("audio") >= 26);
}

TEST_CASE("STFT and DFT give the same bytes at 1, 2 and 3 threads", "[audio]") {
    OneNode stft;
    stft.op_type = "STFT";
    stft.feeds = {{"signal", test::random_f32({3, 4000, 1}, 5)}};
    stft.constants = {{"step", i64_scalar(160)},
                      {"window", test::random_f32({400}, 6, 0.0f, 1.0f)},
                      {"length", i64_scalar(400)}};
    stft.inputs = {"signal", "step", "window", "length"};
    Tensor y = test::run_threads(stft);
    CHECK(y.shape == std::vector<int64_t>{3, 23, 201, 2});

    OneNode dft;
    dft.op_type = "DFT";
    dft.opset = 20;
    dft.feeds = {{"x", test::random_f32({40, 3, 100, 2}, 7)}};
    dft.inputs = {"x"};
    dft.attributes = {test::int_attr("inverse", 1)};
    CHECK(test::run_threads(dft).shape == std::vector<int64_t>{40, 3, 100, 2});
}

TEST_CASE("a DFT of a unit impulse is flat and its inverse gives the impulse back", "[audio]") {
    // x = delta[j - 3] over 12 points: X[k] = e^{-2 pi i 3k / 12} (Bluestein's path: 12 is
    // not a power of two), and the inverse of X is x again.
    std::vector<float> x(24, 0.0f);
    x[3 * 2] = 1.0f;
    OneNode dft;
    dft.op_type = "DFT";
    dft.opset = 20;
    dft.feeds = {{"x", make_f32_tensor("x", {1, 12, 2}, x)}};
    dft.inputs = {"x"};
    Tensor y = test::run_node(dft, 1)[0];
    auto v = y.values<float>();
    for (int k = 0; k < 12; ++k) {
        INFO("bin " << k);
        const double angle = -2 * std::numbers::pi * 3 * k / 12;
        CHECK(std::abs(v[2 * k] - std::cos(angle)) < 1e-6);
        CHECK(std::abs(v[2 * k + 1] - std::sin(angle)) < 1e-6);
    }
    dft.feeds = {{"x", y}};
    dft.attributes = {test::int_attr("inverse", 1)};
    Tensor inverse = test::run_node(dft, 1)[0];  // owns the bytes `back` views
    auto back = inverse.values<float>();
    for (size_t i = 0; i < x.size(); ++i) CHECK(std::abs(back[i] - x[i]) < 1e-6);
}

TEST_CASE("malformed audio nodes are refused naming what is wrong", "[audio]") {
    OneNode stft;
    stft.op_type = "STFT";
    stft.feeds = {{"signal", test::random_f32({1, 100, 1}, 1)}};
    stft.constants = {{"step", i64_scalar(10)}, {"length", i64_scalar(128)}};
    stft.inputs = {"signal", "step", "", "length"};
    CHECK_THAT(test::error_of(stft),
               Contains("STFT") && Contains("frame_length 128 must be in [1, 100]"));
    stft.feeds = {{"signal", test::random_f32({100, 1}, 1)}};
    CHECK_THAT(test::error_of(stft), Contains("signal must be [batch, length, 1 | 2]"));

    OneNode dft;
    dft.op_type = "DFT";
    dft.opset = 20;
    dft.feeds = {{"x", test::random_f32({2, 8, 3}, 2)}};
    dft.inputs = {"x"};
    CHECK_THAT(test::error_of(dft), Contains("must end in a dimension of 1 (real) or 2"));
    dft.feeds = {{"x", test::random_f32({2, 8, 1}, 2)}};
    dft.constants = {{"axis", i64_scalar(-1)}};
    dft.inputs = {"x", "", "axis"};
    CHECK_THAT(test::error_of(dft), Contains("axis must not be the last"));
}

TEST_CASE("Cast to float8 rounds to nearest even and saturates as ml_dtypes does", "[cast]") {
    // Bytes from ml_dtypes (the ONNX reference's float8 types): 464 is halfway between 448
    // and 480 (e4m3fn's NaN pattern) and rounds to even 448; 480 overflows.
    const std::vector<float> x = {448, 460, 464, 480, 500, -1000, 1e-9f, -0.0f};
    CHECK(bytes_of(test::run_node(cast_node(x, DType::F8E4M3FN, 0), 1)[0]) ==
          std::vector<uint8_t>{126, 126, 126, 127, 127, 255, 0, 128});
    CHECK(bytes_of(test::run_node(cast_node(x, DType::F8E4M3FN, 1), 1)[0]) ==
          std::vector<uint8_t>{126, 126, 126, 126, 126, 254, 0, 128});
    // fnuz: no -0, 0x80 is NaN; e5m2 has inf.
    CHECK(bytes_of(test::run_node(cast_node(x, DType::F8E4M3FNUZ, 0), 1)[0]) ==
          std::vector<uint8_t>{128, 128, 128, 128, 128, 128, 0, 0});
    const std::vector<float> big = {57344, 61440, 65504, INFINITY, -1000};
    CHECK(bytes_of(test::run_node(cast_node(big, DType::F8E5M2, 0), 1)[0]) ==
          std::vector<uint8_t>{123, 124, 124, 124, 228});
    CHECK(bytes_of(test::run_node(cast_node(big, DType::F8E5M2FNUZ, 0), 1)[0]) ==
          std::vector<uint8_t>{127, 128, 128, 128, 232});
    // float4e2m1 packs two a byte, low nibble first, and always saturates.
    CHECK(bytes_of(test::run_node(cast_node({0.25f, 0.75f, 7.0f, -100.0f}, DType::F4E2M1), 1)[0]) ==
          std::vector<uint8_t>{0x20, 0xF7});
}

TEST_CASE("Cast to int4 and int2 keeps the integer's low bits", "[cast]") {
    // As the ONNX test data: -9 to int4 is 7, 8 is -8; packed low nibble first.
    CHECK(bytes_of(test::run_node(cast_node({-9, 8, 7, -1, 3}, DType::I4), 1)[0]) ==
          std::vector<uint8_t>{0x87, 0xF7, 0x03});
    CHECK(bytes_of(test::run_node(cast_node({-3, -2, -1, 0, 1}, DType::U2), 1)[0]) ==
          std::vector<uint8_t>{0x39, 0x01});
}

TEST_CASE("QuantizeLinear to float8 and DequantizeLinear back", "[cast][quant]") {
    OneNode q;
    q.op_type = "QuantizeLinear";
    q.opset = 21;
    q.feeds = {{"x", f32_values({0, 1, 2, 1000, -3.3f})}};
    q.constants = {{"s", make_f32_tensor("s", {}, std::vector<float>{0.5f})},
                   {"z", rt::make_tensor(DType::F8E4M3FN, {})}};
    q.inputs = {"x", "s", "z"};
    Tensor y = test::run_node(q, 1)[0];
    CHECK(y.dtype == DType::F8E4M3FN);
    // 0, 2, 4, 2000 -> 448 (saturated), -6.6 -> -6.5
    CHECK(bytes_of(y) == std::vector<uint8_t>{0x00, 0x40, 0x48, 0x7E, 0xCD});

    OneNode dq;
    dq.op_type = "DequantizeLinear";
    dq.opset = 21;
    dq.feeds = {{"x", y}};
    dq.constants = {{"s", make_f32_tensor("s", {}, std::vector<float>{0.5f})}};
    dq.inputs = {"x", "s"};
    Tensor dequantized = test::run_node(dq, 1)[0];  // owns the bytes `back` views
    auto back = dequantized.values<float>();
    CHECK(std::vector<float>(back.begin(), back.end()) ==
          std::vector<float>{0.0f, 1.0f, 2.0f, 224.0f, -3.25f});
}
