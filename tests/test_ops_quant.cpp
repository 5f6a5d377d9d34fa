// Quantized operators and Resize against ONNX Runtime on one-node models written by
// scripts/xcheck/op_cases.py (where ONNX Runtime has no kernel for a case, or departs
// from the ONNX spec and conformance data, the onnx reference evaluator is the oracle;
// each such case says why in the script). Plus: bit-identical results at 1, 2 and 3
// threads on sizes that split across threads, and the messages malformed nodes get.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "op_cases.h"
#include "op_model.h"
#include "runtime-check/npy.h"
#include "runtime-check/ops/op_context.h"
#include "support.h"
#include "tests/support/reference.h"

using namespace ep;
using test::error_of;
using test::OneNode;

namespace {

Tensor u8_tensor(std::vector<int64_t> shape, std::vector<uint8_t> v) {
    Tensor t;
    t.dtype = DType::U8;
    t.shape = std::move(shape);
    std::vector<std::byte> b(v.size());
    std::memcpy(b.data(), v.data(), v.size());
    t.data = TensorData::owned(std::move(b));
    return t;
}

Tensor i64_tensor(std::vector<int64_t> shape, std::vector<int64_t> v) {
    Tensor t;
    t.dtype = DType::I64;
    t.shape = std::move(shape);
    std::vector<std::byte> b(v.size() * 8);
    std::memcpy(b.data(), v.data(), b.size());
    t.data = TensorData::owned(std::move(b));
    return t;
}

Tensor filled(DType dt, std::vector<int64_t> shape, uint32_t seed) {
    Tensor t = rt::make_tensor(dt, std::move(shape));
    auto bytes = t.data.mutable_bytes();
    std::mt19937 rng(seed);
    for (auto& b : bytes) b = static_cast<std::byte>(rng() & 0xFF);
    return t;
}

}  // namespace

TEST_CASE(
    "QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the integer ops match ONNX "
    "Runtime",
    "[runtime][quant][oracle]") {
    CHECK(test::check_op_cases("quant") >= 45);
}

TEST_CASE("MatMulNBits (com.microsoft) matches ONNX Runtime at accuracy level 0",
          "[runtime][quant][oracle]") {
    CHECK(test::check_op_cases("nbits") >= 10);
}

TEST_CASE("Resize matches ONNX Runtime and the ONNX reference", "[runtime][resize][oracle]") {
    CHECK(test::check_op_cases("resize") >= 50);
}

TEST_CASE("quantized kernels and Resize are bit-identical at 1, 2 and 3 threads",
          "[runtime][quant]") {
    std::vector<OneNode> nodes;
    {
        OneNode n;  // 4-bit output with an odd count: thread chunks must not split a byte
        n.op_type = "QuantizeLinear";
        n.opset = 21;
        n.feeds = {{"x", test::random_f32({3, 33335}, 1, -4, 4)}};
        n.constants = {{"s", test::random_f32({3, 2084}, 2, 0.1f, 0.5f)}};
        n.inputs = {"x", "s"};
        n.attributes = {test::int_attr("axis", 1), test::int_attr("block_size", 16),
                        test::int_attr("output_dtype", 22)};  // int4
        nodes.push_back(n);
    }
    {
        OneNode n;
        n.op_type = "DynamicQuantizeLinear";
        n.feeds = {{"x", test::random_f32({517, 1031}, 3, -3, 5)}};
        n.inputs = {"x"};
        n.outputs = {"y", "s", "z"};
        nodes.push_back(n);
    }
    {
        OneNode n;
        n.op_type = "DequantizeLinear";
        n.opset = 21;
        n.constants = {{"x", filled(DType::U4, {1000, 130}, 4)},
                       {"s", test::random_f32({1000, 5}, 5, 0.01f, 0.1f)},
                       {"z", filled(DType::U4, {1000, 5}, 6)}};
        n.inputs = {"x", "s", "z"};
        n.attributes = {test::int_attr("axis", 1), test::int_attr("block_size", 32)};
        nodes.push_back(n);
    }
    {
        OneNode n;  // K = 300: a partial last block; N = 97: a partial last column tile
        n.op_type = "MatMulNBits";
        n.domain = "com.microsoft";
        const int64_t k = 300, nn = 97, bs = 32, kb = (k + bs - 1) / bs;
        n.feeds = {{"a", test::random_f32({2, 70, k}, 7)}};
        n.constants = {{"b", filled(DType::U8, {nn, kb, bs / 2}, 8)},
                       {"s", test::random_f32({nn * kb}, 9, 0.01f, 0.1f)},
                       {"z", filled(DType::U8, {nn, (kb + 1) / 2}, 10)},
                       {"bias", test::random_f32({nn}, 11)}};
        n.inputs = {"a", "b", "s", "z", "", "bias"};
        n.attributes = {test::int_attr("K", k), test::int_attr("N", nn), test::int_attr("bits", 4),
                        test::int_attr("block_size", bs)};
        nodes.push_back(n);
    }
    {
        OneNode n;
        n.op_type = "QLinearConv";
        n.opset = 10;
        n.feeds = {{"x", filled(DType::U8, {2, 16, 33, 35}, 12)}};
        n.constants = {{"xs", test::random_f32({}, 13, 0.01f, 0.02f)},
                       {"xz", u8_tensor({}, {128})},
                       {"w", filled(DType::U8, {70, 8, 3, 3}, 14)},
                       {"ws", test::random_f32({70}, 15, 0.001f, 0.01f)},
                       {"wz", u8_tensor({}, {127})},
                       {"ys", test::random_f32({}, 16, 0.5f, 1.0f)},
                       {"yz", u8_tensor({}, {120})}};
        n.inputs = {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz"};
        n.attributes = {test::int_attr("group", 2), test::ints_attr("pads", {1, 1, 1, 1})};
        nodes.push_back(n);
    }
    {
        OneNode n;
        n.op_type = "QLinearMatMul";
        n.opset = 10;
        n.feeds = {{"a", filled(DType::U8, {3, 65, 129}, 17)}};
        n.constants = {{"as", test::random_f32({}, 18, 0.01f, 0.02f)},
                       {"az", u8_tensor({}, {3})},
                       {"b", filled(DType::U8, {129, 131}, 19)},
                       {"bs", test::random_f32({131}, 20, 0.01f, 0.02f)},
                       {"bz", filled(DType::U8, {131}, 21)},
                       {"ys", test::random_f32({}, 22, 2.0f, 3.0f)},
                       {"yz", u8_tensor({}, {9})}};
        n.inputs = {"a", "as", "az", "b", "bs", "bz", "ys", "yz"};
        nodes.push_back(n);
    }
    {
        OneNode n;
        n.op_type = "Resize";
        n.opset = 19;
        n.feeds = {{"x", test::random_f32({2, 3, 61, 67}, 23)}};
        n.constants = {{"sizes", i64_tensor({4}, {2, 3, 130, 31})}};
        n.inputs = {"x", "", "", "sizes"};
        n.attributes = {test::string_attr("mode", "cubic"), test::int_attr("antialias", 1)};
        nodes.push_back(n);
    }
    for (const auto& n : nodes) {
        INFO(n.op_type);
        std::vector<Tensor> one = test::run_node(n, 1);
        for (int threads : {2, 3}) {
            std::vector<Tensor> more = test::run_node(n, threads);
            REQUIRE(one.size() == more.size());
            for (size_t i = 0; i < one.size(); ++i) CHECK(test::same_bytes(one[i], more[i]));
        }
    }
}

TEST_CASE("malformed quantized and Resize nodes fail with a message naming the node",
          "[runtime][quant]") {
    using Catch::Matchers::Contains;
    OneNode q;
    q.op_type = "QuantizeLinear";
    q.feeds = {{"x", test::random_f32({2, 3, 4}, 1)}};
    q.constants = {{"s", test::random_f32({4}, 2, 0.1f, 0.2f)}};
    q.inputs = {"x", "s"};
    q.attributes = {test::int_attr("axis", 1)};
    CHECK_THAT(error_of(q), Contains("QuantizeLinear") &&
                                Contains("per-axis scale must be 1-D with 3 elements"));

    q.opset = 21;
    q.constants = {{"s", test::random_f32({2, 3, 4}, 2, 0.1f, 0.2f)}};
    q.attributes = {test::int_attr("axis", 2), test::int_attr("block_size", 3)};
    CHECK_THAT(error_of(q), Contains("blocked scale must have shape [2, 3, 2]"));

    q.constants = {{"s", test::random_f32({}, 2, 0.1f, 0.2f)},
                   {"z", rt::make_tensor(DType::F32, {})}};
    q.inputs = {"x", "s", "z"};
    q.attributes = {};
    CHECK_THAT(error_of(q), Contains("y_zero_point has type f32; expected one of uint8"));

    OneNode nb;
    nb.op_type = "MatMulNBits";
    nb.domain = "com.microsoft";
    nb.feeds = {{"a", test::random_f32({2, 64}, 3)}};
    nb.constants = {{"b", filled(DType::U8, {8, 2, 15}, 4)}, {"s", test::random_f32({16}, 5)}};
    nb.inputs = {"a", "b", "s"};
    nb.attributes = {test::int_attr("K", 64), test::int_attr("N", 8), test::int_attr("bits", 4),
                     test::int_attr("block_size", 32)};
    CHECK_THAT(error_of(nb), Contains("B must be uint8 [N, k_blocks, blob_size] = [8, 2, 16]"));
    nb.attributes[2] = test::int_attr("bits", 3);
    CHECK_THAT(error_of(nb), Contains("bits = 3 is not supported"));
    nb.attributes[2] = test::int_attr("bits", 4);
    nb.attributes[3] = test::int_attr("block_size", 24);
    CHECK_THAT(error_of(nb), Contains("block_size = 24 must be a power of two"));

    OneNode r;
    r.op_type = "Resize";
    r.opset = 18;
    r.feeds = {{"x", test::random_f32({1, 1, 4, 4}, 6)}};
    r.constants = {{"scales", test::random_f32({4}, 7, 1.0f, 2.0f)},
                   {"sizes", i64_tensor({4}, {1, 1, 8, 8})}};
    r.inputs = {"x", "", "scales", "sizes"};
    CHECK_THAT(error_of(r), Contains("Resize") && Contains("only one of scales and sizes"));
    r.inputs = {"x", "", "scales"};
    r.attributes = {test::int_attr("antialias", 1)};
    CHECK_THAT(error_of(r), Contains("antialias applies to linear and cubic modes only"));
    r.attributes = {test::string_attr("coordinate_transformation_mode", "edge")};
    CHECK_THAT(error_of(r), Contains("coordinate_transformation_mode 'edge' is not one of"));
    r.attributes = {};
    r.constants = {{"scales", test::random_f32({3}, 7, 1.0f, 2.0f)}};
    CHECK_THAT(error_of(r), Contains("scales must have 4 elements, found 3"));

    OneNode qc;
    qc.op_type = "QLinearConv";
    qc.opset = 10;
    qc.feeds = {{"x", filled(DType::U8, {1, 2, 5, 5}, 8)}};
    qc.constants = {{"xs", test::random_f32({}, 9, 0.1f, 0.2f)},
                    {"xz", u8_tensor({}, {1})},
                    {"w", filled(DType::U8, {3, 2, 3, 3}, 10)},
                    {"ws", test::random_f32({2}, 11, 0.1f, 0.2f)},
                    {"wz", u8_tensor({}, {1})},
                    {"ys", test::random_f32({}, 12, 0.1f, 0.2f)},
                    {"yz", u8_tensor({}, {1})}};
    qc.inputs = {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz"};
    CHECK_THAT(error_of(qc), Contains("w_scale must be a scalar or have 3 elements"));

    // Hostile attributes and sizes fail cleanly instead of overflowing or allocating.
    OneNode ci;
    ci.op_type = "ConvInteger";
    ci.opset = 10;
    ci.feeds = {{"x", filled(DType::U8, {1, 2, 5, 5}, 13)}};
    ci.constants = {{"w", filled(DType::U8, {3, 2, 3, 3}, 14)}};
    ci.inputs = {"x", "w"};
    ci.attributes = {test::ints_attr("pads", {int64_t{1} << 40, 0, 0, 0})};
    CHECK_THAT(error_of(ci), Contains("exceed 2^31"));
    ci.attributes = {test::ints_attr("strides", {1, 0})};
    CHECK_THAT(error_of(ci), Contains("strides and dilations must be positive"));

    r.constants = {{"sizes", i64_tensor({4}, {1, 1, int64_t{1} << 40, int64_t{1} << 40})}};
    r.inputs = {"x", "", "", "sizes"};
    CHECK_THAT(error_of(r), Contains("is too large"));
}

TEST_CASE("MatMulNBits with g_idx takes each k's scale and zero point from block g_idx[k]",
          "[runtime][quant]") {
    // ONNX Runtime is no oracle for the deprecated g_idx input (see op_cases.py), so the
    // expected result is the documented formula: W[k, n] = (q[n, k] - zp[n, g[k]]) *
    // scale[n, g[k]], then the scalar reference MatMul.
    const int64_t bits = GENERATE(2, 4, 8);
    const int64_t k = GENERATE(48, 64);
    const int64_t m = GENERATE(1, 5);
    const int64_t n = 9, bs = 16, kb = (k + bs - 1) / bs, blob = bs * bits / 8;
    const int64_t per = 8 / bits, per_row = (kb * bits + 7) / 8;
    INFO("bits " << bits << " K " << k << " M " << m);
    std::mt19937 rng(static_cast<uint32_t>(bits * 1000 + k + m));
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    std::vector<int> q(static_cast<size_t>(n * kb * bs), 0), zq(static_cast<size_t>(n * kb));
    std::vector<uint8_t> packed(static_cast<size_t>(n * kb * blob), 0),
        zpacked(static_cast<size_t>(n * per_row), 0);
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t kk = 0; kk < k; ++kk) {
            int v = code(rng);
            q[static_cast<size_t>(r * kb * bs + kk)] = v;
            packed[static_cast<size_t>(r * kb * blob + kk / per)] |=
                static_cast<uint8_t>(v << ((kk % per) * bits));
        }
        for (int64_t b = 0; b < kb; ++b) {
            int v = code(rng);
            zq[static_cast<size_t>(r * kb + b)] = v;
            zpacked[static_cast<size_t>(r * per_row + b / per)] |=
                static_cast<uint8_t>(v << ((b % per) * bits));
        }
    }
    Tensor scales = test::random_f32({n, kb}, 5, 0.01f, 0.1f);
    std::vector<int64_t> g(static_cast<size_t>(k));
    for (int64_t kk = 0; kk < k; ++kk) g[static_cast<size_t>(kk)] = (kk * 7 + 3) % kb;
    Tensor a = test::random_f32({m, k}, 6);
    std::vector<float> w(static_cast<size_t>(k * n));
    auto sv = scales.values<float>();
    for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t r = 0; r < n; ++r) {
            const size_t at = static_cast<size_t>(r * kb + g[static_cast<size_t>(kk)]);
            w[static_cast<size_t>(kk * n + r)] =
                (static_cast<float>(q[static_cast<size_t>(r * kb * bs + kk)]) -
                 static_cast<float>(zq[at])) *
                sv[at];
        }
    Tensor wt = make_f32_tensor("", {k, n}, w);
    OneNode node;
    node.op_type = "MatMulNBits";
    node.domain = "com.microsoft";
    node.feeds = {{"a", a}};
    node.constants = {{"b", u8_tensor({n, kb, blob}, packed)},
                      {"s", scales},
                      {"z", u8_tensor({n, per_row}, zpacked)},
                      {"g", i64_tensor({k}, g)}};
    node.inputs = {"a", "b", "s", "z", "g"};
    node.attributes = {test::int_attr("K", k), test::int_attr("N", n), test::int_attr("bits", bits),
                       test::int_attr("block_size", bs)};
    Tensor got = test::run_node(node, 1).at(0);
    Tensor want = rt::ref::matmul(a, wt), mag = rt::ref::matmul(rt::ref::abs(a), rt::ref::abs(wt));
    auto gv = got.values<float>(), rv = want.values<float>(), mv = mag.values<float>();
    REQUIRE(gv.size() == rv.size());
    for (size_t i = 0; i < gv.size(); ++i) {
        INFO("element " << i);
        CHECK(std::abs(gv[i] - rv[i]) <=
              (static_cast<double>(k) + 3) * std::ldexp(1.0, -24) * mv[i] + 1e-30);
    }
    // g_idx = k / block_size is the same as no g_idx, bit for bit.
    for (int64_t kk = 0; kk < k; ++kk) g[static_cast<size_t>(kk)] = kk / bs;
    node.constants[3] = {"g", i64_tensor({k}, g)};
    Tensor with_identity = test::run_node(node, 1).at(0);
    node.inputs = {"a", "b", "s", "z"};
    CHECK(test::same_bytes(with_identity, test::run_node(node, 1).at(0)));
}

TEST_CASE("MatMulNBits 4-bit with few rows gives the portable loop's bits on every size",
          "[runtime][quant]") {
    // The decode path (M <= 4, 4-bit, no g_idx, whole blocks of a multiple of 32) runs the
    // AVX2 kernel where the CPU has it; an identity g_idx (k / block_size) always runs the
    // portable loop. Both must round every dequantized weight and product the same way and
    // add in the same order: equal bytes, not just close values.
    const int64_t bs = GENERATE(32, 64, 128);
    const int64_t blocks = GENERATE(1, 3);
    const int64_t n = GENERATE(1, 3, 4, 5, 17, 33);
    const int64_t m = GENERATE(1, 2, 3, 4);
    const int zero_kind = GENERATE(0, 1, 2);  // none (8), packed uint8, float
    const int64_t k = bs * blocks, kb = blocks, blob = bs / 2;
    INFO("block " << bs << " K " << k << " N " << n << " M " << m << " zero points " << zero_kind);
    Tensor b = filled(DType::U8, {n, kb, blob}, static_cast<uint32_t>(k * 131 + n));
    Tensor scales = test::random_f32({n, kb}, static_cast<uint32_t>(n + 7), 0.01f, 0.1f);
    Tensor a = test::random_f32({m, k}, static_cast<uint32_t>(m * 17 + k));
    Tensor bias = test::random_f32({n}, 9);
    OneNode node;
    node.op_type = "MatMulNBits";
    node.domain = "com.microsoft";
    node.feeds = {{"a", a}};
    node.constants = {{"b", b}, {"s", scales}, {"bias", bias}};
    node.inputs = {"a", "b", "s", "", "", "bias"};
    if (zero_kind == 1) {
        node.constants.push_back({"z", filled(DType::U8, {n, (kb + 1) / 2}, 11)});
        node.inputs[3] = "z";
    } else if (zero_kind == 2) {
        node.constants.push_back({"z", test::random_f32({n, kb}, 12, 6.5f, 9.5f)});
        node.inputs[3] = "z";
    }
    node.attributes = {test::int_attr("K", k), test::int_attr("N", n), test::int_attr("bits", 4),
                       test::int_attr("block_size", bs)};
    Tensor fast = test::run_node(node, 1).at(0);
    std::vector<int64_t> g(static_cast<size_t>(k));
    for (int64_t kk = 0; kk < k; ++kk) g[static_cast<size_t>(kk)] = kk / bs;
    node.constants.push_back({"g", i64_tensor({k}, g)});
    node.inputs[4] = "g";
    Tensor portable = test::run_node(node, 1).at(0);
    CHECK(test::same_bytes(fast, portable));
    CHECK(test::same_bytes(fast, test::run_node(node, 2).at(0)));
}
