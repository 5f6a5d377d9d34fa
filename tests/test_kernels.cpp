// The fast kernels (Eigen GEMM in 64-row blocks, im2col Conv, col2im ConvTranspose,
// broadcasting elementwise loops, Softmax, normalization) against the plain scalar
// reference (tests/support/reference.h) on awkward sizes: 1, primes, tile-1, tile,
// tile+1 (the GEMM row block is 64), and bit-identical at 1, 2 and 3 threads.
//
// Tolerances:
//  - sums (MatMul, Gemm, Conv, ConvTranspose): |fast - ref| <= (K + 2) * 2^-24 * mag,
//    where mag = the reference run on |inputs| (sum of |a_i b_i| terms, + |bias|) and K
//    the number of terms: the classic float32 summation error bound (any order, FMA or
//    not), so a correct kernel always passes and a missing or doubled term never does;
//  - Add, Sub, Mul, Div: exact (one float operation; rounding the exact double result to
//    float gives the same bits);
//  - unary math (Exp, Log, Sqrt, Tanh, Sigmoid, Erf, Gelu, ...): |fast - libm in double|
//    <= 1e-6 * |ref| + 1e-7 * max(1, |x|) (a few float ulps; the absolute part covers
//    results that cancel to near 0, such as Gelu of a negative x);
//  - Softmax, LayerNormalization, BatchNormalization: 1e-5 relative + 1e-6 absolute.
// Every kernel is called through a one-node model and rt::Executor, as a model would (the
// transposed Conv GEMM, chosen only for initializer weights, also directly: conv2d.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "op_model.h"
#include "runtime-check/kernels/conv2d.h"
#include "runtime-check/kernels/igemm.h"
#include "runtime-check/kernels/simd.h"
#include "support.h"
#include "tests/support/reference.h"

using namespace ep;
using ep::test::run_threads;
using test::OneNode;

namespace {

constexpr double kUnit = 1.0 / (1 << 24);  // float32 unit roundoff

// |got - ref| <= gamma * mag elementwise (mag: reference on absolute values).
void require_within_bound(const Tensor& got, const Tensor& ref, const Tensor& mag, double gamma) {
    REQUIRE(got.shape == ref.shape);
    auto g = got.values<float>(), r = ref.values<float>(), m = mag.values<float>();
    REQUIRE(g.size() == r.size());
    double worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < g.size(); ++i) {
        // The reference is rounded to float too: allow its half-ulp on top of the bound.
        double bound = gamma * m[i] + kUnit * std::abs(static_cast<double>(r[i])) + 1e-30;
        double excess = std::abs(static_cast<double>(g[i]) - r[i]) / bound;
        if (excess > worst) {
            worst = excess;
            worst_at = i;
        }
    }
    INFO("worst element " << worst_at << ": got " << g[worst_at] << ", reference " << r[worst_at]
                          << ", bound " << gamma * m[worst_at]);
    REQUIRE(worst <= 1.0);
}

void require_close(const Tensor& got, const Tensor& ref, double rel, double abs_tol) {
    REQUIRE(got.shape == ref.shape);
    auto g = got.values<float>(), r = ref.values<float>();
    for (size_t i = 0; i < g.size(); ++i) {
        double tol = abs_tol + rel * std::abs(static_cast<double>(r[i]));
        if (!(std::abs(static_cast<double>(g[i]) - r[i]) <= tol)) {
            INFO("element " << i << ": got " << g[i] << ", reference " << r[i]);
            REQUIRE(std::abs(static_cast<double>(g[i]) - r[i]) <= tol);
        }
    }
}

void require_equal(const Tensor& got, const Tensor& ref) {
    REQUIRE(got.shape == ref.shape);
    auto g = got.values<float>(), r = ref.values<float>();
    for (size_t i = 0; i < g.size(); ++i)
        if (g[i] != r[i]) {
            INFO("element " << i << ": got " << g[i] << ", reference " << r[i]);
            REQUIRE(g[i] == r[i]);
        }
}

uint32_t seed_of(std::initializer_list<int64_t> parts) {
    uint32_t h = 2166136261u;
    for (int64_t p : parts) h = (h ^ static_cast<uint32_t>(p)) * 16777619u;
    return h;
}

OneNode matmul_node(const Tensor& a, const Tensor& b) {
    OneNode n;
    n.op_type = "MatMul";
    n.feeds = {{"a", a}, {"b", b}};
    n.inputs = {"a", "b"};
    return n;
}

}  // namespace

TEST_CASE("MatMul matches the reference on awkward sizes", "[kernels][matmul]") {
    const int64_t m = GENERATE(1, 3, 31, 63, 64, 65, 127, 255);
    const int64_t k = GENERATE(1, 31, 64, 65);
    const int64_t n = GENERATE(1, 3, 64, 65, 255);
    INFO("MatMul [" << m << ", " << k << "] x [" << k << ", " << n << "]");
    Tensor a = test::random_f32({m, k}, seed_of({m, k, n, 1}));
    Tensor b = test::random_f32({k, n}, seed_of({m, k, n, 2}));
    Tensor got = run_threads(matmul_node(a, b));
    require_within_bound(got, rt::ref::matmul(a, b),
                         rt::ref::matmul(rt::ref::abs(a), rt::ref::abs(b)),
                         static_cast<double>(k + 2) * kUnit);
}

TEST_CASE("batched MatMul broadcasts like numpy", "[kernels][matmul]") {
    const int64_t m = GENERATE(1, 5, 64, 65);
    const int64_t k = 33, n = 17;
    struct Shapes {
        std::vector<int64_t> a, b;
    };
    const auto shapes = GENERATE_COPY(values<Shapes>({
        {{2, 1, m, k}, {3, k, n}},  // batch broadcast both ways
        {{3, m, k}, {k, n}},        // shared weight
        {{m, k}, {2, 2, k, n}},     // shared activation
        {{k}, {2, k, n}},           // 1-D A: its row dimension is dropped
        {{2, m, k}, {k}},           // 1-D B: its column dimension is dropped
        {{1, m, k}, {4, k, n}},
    }));
    INFO("MatMul " << shape_string(shapes.a) << " x " << shape_string(shapes.b));
    Tensor a = test::random_f32(shapes.a, seed_of({m, 3}));
    Tensor b = test::random_f32(shapes.b, seed_of({m, 4}));
    Tensor got = run_threads(matmul_node(a, b));
    require_within_bound(got, rt::ref::matmul(a, b),
                         rt::ref::matmul(rt::ref::abs(a), rt::ref::abs(b)),
                         static_cast<double>(k + 2) * kUnit);
}

TEST_CASE("Gemm with transA, transB, alpha, beta and a broadcast C", "[kernels][gemm]") {
    const int64_t m = GENERATE(1, 63, 64, 65, 127);
    const int64_t n = GENERATE(1, 3, 65);
    const int64_t k = GENERATE(1, 31, 64);
    const bool ta = GENERATE(false, true);
    const bool tb = GENERATE(false, true);
    // C: absent, scalar, [N], [M, 1], [M, N]
    const int c_kind = GENERATE(0, 1, 2, 3, 4);
    INFO("Gemm M=" << m << " N=" << n << " K=" << k << " transA=" << ta << " transB=" << tb
                   << " C kind " << c_kind);
    Tensor a = test::random_f32(ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k},
                                seed_of({m, n, k, ta, tb, 1}));
    Tensor b = test::random_f32(tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n},
                                seed_of({m, n, k, ta, tb, 2}));
    std::vector<std::vector<int64_t>> c_shapes{{}, {}, {n}, {m, 1}, {m, n}};
    Tensor c = test::random_f32(c_shapes[static_cast<size_t>(c_kind)], seed_of({m, n, k, 3}));
    OneNode node;
    node.op_type = "Gemm";
    node.feeds = {{"a", a}, {"b", b}};
    node.inputs = {"a", "b"};
    if (c_kind != 0) {
        node.constants = {{"c", c}};
        node.inputs.push_back("c");
    }
    const float alpha = 0.75f, beta = 1.5f;
    node.attributes = {test::int_attr("transA", ta), test::int_attr("transB", tb),
                       test::float_attr("alpha", alpha), test::float_attr("beta", beta)};
    Tensor got = run_threads(node);
    rt::ref::GemmParams p{ta, tb, alpha, beta};
    const Tensor* cp = c_kind != 0 ? &c : nullptr;
    Tensor c_abs = rt::ref::abs(c);
    require_within_bound(
        got, rt::ref::gemm(a, b, cp, p),
        rt::ref::gemm(rt::ref::abs(a), rt::ref::abs(b), c_kind ? &c_abs : nullptr, p),
        static_cast<double>(k + 4) * kUnit);
}

namespace {

struct ConvCase {
    int64_t c_in, c_out, group;
};

OneNode conv_node(const Tensor& x, const Tensor& w, const Tensor& bias,
                  const rt::ref::ConvParams& p, const char* op = "Conv") {
    OneNode node;
    node.op_type = op;
    node.feeds = {{"x", x}};
    node.constants = {{"w", w}, {"b", bias}};
    node.inputs = {"x", "w", "b"};
    node.attributes = {test::int_attr("group", p.group)};
    if (!p.strides.empty()) node.attributes.push_back(test::ints_attr("strides", p.strides));
    if (!p.pads.empty()) node.attributes.push_back(test::ints_attr("pads", p.pads));
    if (!p.dilations.empty()) node.attributes.push_back(test::ints_attr("dilations", p.dilations));
    if (!p.output_padding.empty())
        node.attributes.push_back(test::ints_attr("output_padding", p.output_padding));
    return node;
}

void check_conv(const Tensor& x, const Tensor& w, const Tensor& bias,
                const rt::ref::ConvParams& p) {
    Tensor got = run_threads(conv_node(x, w, bias, p));
    int64_t terms = w.element_count() / w.shape[0];  // C/group x kernel
    Tensor b_abs = rt::ref::abs(bias);
    require_within_bound(got, rt::ref::conv(x, w, &bias, p),
                         rt::ref::conv(rt::ref::abs(x), rt::ref::abs(w), &b_abs, p),
                         static_cast<double>(terms + 2) * kUnit);
}

}  // namespace

TEST_CASE("Conv 2-D matches direct convolution: groups, depthwise, 1x1, strides, dilations",
          "[kernels][conv]") {
    const int64_t hw = GENERATE(1, 3, 8, 31, 65);
    const int64_t kernel = GENERATE(1, 3);
    const auto cc = GENERATE(values<ConvCase>({
        {1, 1, 1},
        {3, 8, 1},
        {16, 16, 16},  // depthwise (group = C)
        {8, 12, 2},
        {5, 3, 1},
    }));
    const int64_t stride = GENERATE(1, 2);
    const int64_t dilation = GENERATE(1, 2);
    if (kernel == 1 && dilation == 2) return;  // same as dilation 1
    const int64_t pad = kernel == 3 ? 1 : 0;
    if (hw + 2 * pad < (kernel - 1) * dilation + 1) return;  // no output
    INFO("Conv X [2, " << cc.c_in << ", " << hw << ", " << hw + 1 << "] kernel " << kernel
                       << " C_out " << cc.c_out << " group " << cc.group << " stride " << stride
                       << " dilation " << dilation << " pad " << pad);
    uint32_t seed = seed_of({hw, kernel, cc.c_in, cc.c_out, cc.group, stride, dilation});
    Tensor x = test::random_f32({2, cc.c_in, hw, hw + 1}, seed);
    Tensor w = test::random_f32({cc.c_out, cc.c_in / cc.group, kernel, kernel}, seed + 1);
    Tensor bias = test::random_f32({cc.c_out}, seed + 2);
    rt::ref::ConvParams p;
    p.group = cc.group;
    p.strides = {stride, stride};
    p.dilations = {dilation, dilation};
    p.pads = {pad, pad, pad, pad};
    check_conv(x, w, bias, p);
}

TEST_CASE("Conv with asymmetric pads, 1-D and 3-D inputs, and large channel counts",
          "[kernels][conv]") {
    SECTION("asymmetric pads and strides") {
        Tensor x = test::random_f32({1, 4, 13, 9}, 11);
        Tensor w = test::random_f32({6, 4, 3, 2}, 12);
        Tensor b = test::random_f32({6}, 13);
        rt::ref::ConvParams p;
        p.strides = {2, 3};
        p.pads = {0, 2, 1, 0};
        check_conv(x, w, b, p);
    }
    SECTION("1-D") {
        const int64_t len = GENERATE(1, 63, 64, 65, 255);
        Tensor x = test::random_f32({2, 3, len}, seed_of({len, 21}));
        Tensor w = test::random_f32({5, 3, 3}, 22);
        Tensor b = test::random_f32({5}, 23);
        rt::ref::ConvParams p;
        p.pads = {1, 1};
        check_conv(x, w, b, p);
    }
    SECTION("3-D") {
        Tensor x = test::random_f32({1, 2, 5, 6, 7}, 31);
        Tensor w = test::random_f32({4, 1, 3, 2, 3}, 32);
        Tensor b = test::random_f32({4}, 33);
        rt::ref::ConvParams p;
        p.group = 2;
        p.pads = {1, 0, 1, 1, 1, 0};
        p.strides = {1, 2, 1};
        check_conv(x, w, b, p);
    }
    SECTION("pointwise with many channels (GEMM rows past one block)") {
        const int64_t c_out = GENERATE(63, 64, 65, 130);
        Tensor x = test::random_f32({1, 67, 9, 11}, seed_of({c_out, 41}));
        Tensor w = test::random_f32({c_out, 67, 1, 1}, seed_of({c_out, 42}));
        Tensor b = test::random_f32({c_out}, 43);
        check_conv(x, w, b, {});
    }
}

TEST_CASE("ConvTranspose matches the direct scatter form", "[kernels][conv]") {
    const int64_t hw = GENERATE(1, 4, 17);
    const int64_t stride = GENERATE(1, 2, 3);
    const auto cc = GENERATE(values<ConvCase>({{1, 1, 1}, {4, 6, 2}, {3, 5, 1}, {8, 8, 8}}));
    INFO("ConvTranspose X [1, " << cc.c_in << ", " << hw << ", " << hw + 2 << "] stride " << stride
                                << " C_out " << cc.c_out << " group " << cc.group);
    uint32_t seed = seed_of({hw, stride, cc.c_in, cc.c_out, 51});
    Tensor x = test::random_f32({1, cc.c_in, hw, hw + 2}, seed);
    Tensor w = test::random_f32({cc.c_in, cc.c_out / cc.group, 3, 2}, seed + 1);
    Tensor b = test::random_f32({cc.c_out}, seed + 2);
    rt::ref::ConvParams p;
    p.group = cc.group;
    p.strides = {stride, stride};
    p.pads = {1, 0, 0, 1};
    p.output_padding = {stride - 1, 0};
    p.dilations = {1, 2};
    Tensor got = run_threads(conv_node(x, w, b, p, "ConvTranspose"));
    Tensor b_abs = rt::ref::abs(b);
    int64_t terms = (cc.c_in / cc.group) * 6;
    require_within_bound(got, rt::ref::conv_transpose(x, w, &b, p),
                         rt::ref::conv_transpose(rt::ref::abs(x), rt::ref::abs(w), &b_abs, p),
                         static_cast<double>(terms + 2) * kUnit);
}

TEST_CASE("Softmax and LogSoftmax along any axis", "[kernels][softmax]") {
    const int64_t rows = GENERATE(1, 3, 64);
    const int64_t cols = GENERATE(1, 3, 31, 63, 64, 65, 127, 255);
    const int64_t axis = GENERATE(-1, 0);
    const bool log = GENERATE(false, true);
    INFO((log ? "LogSoftmax" : "Softmax") << " [" << rows << ", " << cols << "] axis " << axis);
    Tensor x = test::random_f32({rows, cols}, seed_of({rows, cols, axis, 61}), -5.0f, 5.0f);
    OneNode node;
    node.op_type = log ? "LogSoftmax" : "Softmax";
    node.opset = 13;
    node.feeds = {{"x", x}};
    node.inputs = {"x"};
    node.attributes = {test::int_attr("axis", axis)};
    require_close(run_threads(node), rt::ref::softmax(x, axis, log), 1e-5, 1e-6);
}

TEST_CASE("LayerNormalization over the last one or two axes", "[kernels][norm]") {
    const int64_t rows = GENERATE(1, 3, 65);
    const int64_t cols = GENERATE(1, 3, 31, 64, 65, 255);
    const int64_t axis = GENERATE(-1, -2);
    const bool with_bias = GENERATE(false, true);
    INFO("LayerNormalization [2, " << rows << ", " << cols << "] axis " << axis << " bias "
                                   << with_bias);
    Tensor x = test::random_f32({2, rows, cols}, seed_of({rows, cols, axis, 71}), -3.0f, 4.0f);
    std::vector<int64_t> norm_shape =
        axis == -1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
    Tensor scale = test::random_f32(norm_shape, 72, 0.5f, 2.0f);
    Tensor bias = test::random_f32(norm_shape, 73);
    OneNode node;
    node.op_type = "LayerNormalization";
    node.feeds = {{"x", x}};
    node.constants = {{"scale", scale}, {"bias", bias}};
    node.inputs = {"x", "scale"};
    if (with_bias) node.inputs.push_back("bias");
    node.attributes = {test::int_attr("axis", axis), test::float_attr("epsilon", 1e-5f)};
    Tensor ref = rt::ref::layer_norm(x, scale, with_bias ? &bias : nullptr, axis, 1e-5f);
    require_close(run_threads(node), ref, 1e-5, 1e-5);
}

TEST_CASE("BatchNormalization (inference) per channel", "[kernels][norm]") {
    const int64_t channels = GENERATE(1, 3, 64, 65);
    const int64_t pixels = GENERATE(1, 31, 64, 65);
    INFO("BatchNormalization [2, " << channels << ", " << pixels << "]");
    Tensor x =
        test::random_f32({2, channels, pixels}, seed_of({channels, pixels, 81}), -3.0f, 3.0f);
    Tensor scale = test::random_f32({channels}, 82, 0.5f, 2.0f);
    Tensor bias = test::random_f32({channels}, 83);
    Tensor mean = test::random_f32({channels}, 84);
    Tensor var = test::random_f32({channels}, 85, 0.1f, 3.0f);
    OneNode node;
    node.op_type = "BatchNormalization";
    node.feeds = {{"x", x}};
    node.constants = {{"s", scale}, {"b", bias}, {"m", mean}, {"v", var}};
    node.inputs = {"x", "s", "b", "m", "v"};
    node.attributes = {test::float_attr("epsilon", 1e-3f)};
    require_close(run_threads(node), rt::ref::batch_norm(x, scale, bias, mean, var, 1e-3f), 1e-5,
                  1e-6);
}

TEST_CASE("Add, Sub, Mul and Div broadcast exactly like the reference", "[kernels][elementwise]") {
    const int64_t n = GENERATE(1, 3, 31, 63, 64, 65, 255);
    struct Shapes {
        std::vector<int64_t> a, b;
    };
    const auto shapes = GENERATE_COPY(values<Shapes>({
        {{7, n}, {7, n}},
        {{7, n}, {n}},
        {{7, 1}, {1, n}},
        {{2, 3, 5, n}, {3, 1, n}},
        {{n, 1, 4}, {5, 1}},
        {{}, {3, n}},  // scalar
        {{4, n, 3}, {4, 1, 3}},
    }));
    const auto op = GENERATE(values<std::pair<const char*, rt::ref::BinaryOp>>({
        {"Add", rt::ref::BinaryOp::Add},
        {"Sub", rt::ref::BinaryOp::Sub},
        {"Mul", rt::ref::BinaryOp::Mul},
        {"Div", rt::ref::BinaryOp::Div},
    }));
    INFO(op.first << " " << shape_string(shapes.a) << " and " << shape_string(shapes.b));
    Tensor a = test::random_f32(shapes.a, seed_of({n, 91}));
    Tensor b = test::random_f32(shapes.b, seed_of({n, 92}), 0.5f, 2.0f);  // no division by ~0
    OneNode node;
    node.op_type = op.first;
    node.feeds = {{"a", a}, {"b", b}};
    node.inputs = {"a", "b"};
    require_equal(run_threads(node), rt::ref::binary(op.second, a, b));
}

TEST_CASE("unary math matches libm in double within a few ulps", "[kernels][elementwise]") {
    struct Unary {
        const char* op;
        rt::ref::UnaryOp ref;
        float lo, hi;
        const char* approximate;  // Gelu's attribute, or nullptr
    };
    using U = rt::ref::UnaryOp;
    const auto u = GENERATE(values<Unary>({
        {"Exp", U::Exp, -20.0f, 20.0f, nullptr},
        {"Log", U::Log, 1e-3f, 1e3f, nullptr},
        {"Sqrt", U::Sqrt, 0.0f, 1e4f, nullptr},
        {"Reciprocal", U::Reciprocal, 0.1f, 10.0f, nullptr},
        {"Tanh", U::Tanh, -10.0f, 10.0f, nullptr},
        {"Sigmoid", U::Sigmoid, -30.0f, 30.0f, nullptr},
        {"Erf", U::Erf, -4.0f, 4.0f, nullptr},
        {"Gelu", U::Gelu, -6.0f, 6.0f, nullptr},
        {"Gelu", U::GeluTanh, -6.0f, 6.0f, "tanh"},
        {"Relu", U::Relu, -1.0f, 1.0f, nullptr},
        {"HardSwish", U::HardSwish, -5.0f, 5.0f, nullptr},
    }));
    const int64_t n = GENERATE(1, 3, 31, 63, 64, 65, 255, 100003);
    INFO(u.op << (u.approximate ? " (tanh)" : "") << " on " << n << " values in [" << u.lo << ", "
              << u.hi << ")");
    Tensor x = test::random_f32({n}, seed_of({n, 101}), u.lo, u.hi);
    OneNode node;
    node.op_type = u.op;
    node.opset = 20;
    node.feeds = {{"x", x}};
    node.inputs = {"x"};
    if (u.approximate) node.attributes = {test::string_attr("approximate", u.approximate)};
    Tensor got = run_threads(node), ref = rt::ref::unary(u.ref, x);
    auto g = got.values<float>(), r = ref.values<float>(), xv = x.values<float>();
    for (size_t i = 0; i < g.size(); ++i) {
        const double tol = 1e-6 * std::abs(static_cast<double>(r[i])) +
                           1e-7 * std::max(1.0, std::abs(static_cast<double>(xv[i])));
        if (!(std::abs(static_cast<double>(g[i]) - r[i]) <= tol)) {
            INFO("x = " << xv[i] << ": got " << g[i] << ", reference " << r[i]);
            REQUIRE(std::abs(static_cast<double>(g[i]) - r[i]) <= tol);
        }
    }
}

TEST_CASE("Conv over few positions and many channels: the transposed GEMM gives the same bits",
          "[kernels][conv]") {
    // conv2d_f32 with a transposed weight (what op_conv passes for an initializer weight when
    // conv2d_prefers_transposed) against the same call without it, bit for bit: both are one
    // FMA chain over k in order per output element.
    struct Case {
        int64_t n, c_in, hw, c_out, kernel, group;
        bool bias;
    };
    const auto cc = GENERATE(values<Case>({
        {1, 64, 3, 256, 3, 1, true},   // 9 positions x 256 channels
        {2, 32, 6, 256, 3, 1, true},   // 36 positions, a batch
        {1, 48, 3, 130, 3, 2, false},  // groups, no bias, 65 channels per group
        {1, 96, 2, 200, 1, 1, true},   // pointwise: the input itself is the patch matrix
    }));
    INFO("X [" << cc.n << ", " << cc.c_in << ", " << cc.hw << ", " << cc.hw << "] C_out "
               << cc.c_out << " kernel " << cc.kernel << " group " << cc.group);
    const int64_t pad = cc.kernel / 2, cin_g = cc.c_in / cc.group, cout_g = cc.c_out / cc.group;
    const int64_t k = cin_g * cc.kernel * cc.kernel, plane = cc.hw * cc.hw;
    rt::Conv2DShape s{
        cc.n,
        cc.c_in,
        cc.c_out,
        cc.group,
        {cc.hw, cc.hw, cc.kernel, cc.kernel, cc.hw, cc.hw, 1, 1, 1, 1, pad, pad, pad, pad}};
    if (!rt::simd_kernels().gemm_tile) {
        CHECK_FALSE(rt::conv2d_prefers_transposed(s));
        return;
    }
    REQUIRE(rt::conv2d_prefers_transposed(s));
    Tensor x = test::random_f32({cc.n, cc.c_in, cc.hw, cc.hw}, 71);
    Tensor w = test::random_f32({cc.c_out, cin_g, cc.kernel, cc.kernel}, 72);
    Tensor b = test::random_f32({cc.c_out}, 73);
    const float* pw = w.values<float>().data();
    std::vector<float> w_t(static_cast<size_t>(cc.c_out * k));
    for (int64_t g = 0; g < cc.group; ++g)
        for (int64_t r = 0; r < cout_g; ++r)
            for (int64_t kk = 0; kk < k; ++kk)
                w_t[static_cast<size_t>((g * k + kk) * cout_g + r)] = pw[(g * cout_g + r) * k + kk];
    rt::IgemmCache cache;
    CHECK(std::equal(w_t.begin(), w_t.end(), cache.transposed_f32(pw, cc.group, cout_g, k)));
    const size_t out = static_cast<size_t>(cc.n * cc.c_out * plane);
    std::vector<float> want(out), got(out);
    const float* pb = cc.bias ? b.values<float>().data() : nullptr;
    rt::conv2d_f32({1}, s, x.values<float>().data(), pw, pb, want.data());
    for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        std::fill(got.begin(), got.end(), std::nanf(""));
        rt::conv2d_f32({threads}, s, x.values<float>().data(), pw, pb, got.data(), {}, w_t.data());
        CHECK(std::memcmp(got.data(), want.data(), out * sizeof(float)) == 0);
    }
}
