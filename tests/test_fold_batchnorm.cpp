// fold-batchnorm on tiny models built in C++, checked numerically: a naive Conv /
// ConvTranspose / Gemm followed by a naive BatchNormalization on a small input (the
// reference) against the same naive op run with the folded weights read back from the model.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "ir/checked.h"
#include "pass_model.h"
#include "passes/registry.h"
#include "passes/selector.h"
#include "support.h"

using namespace ep;
using namespace ep::test;

namespace {

// y[n, c, ...] = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + B[c], channel axis 1.
std::vector<double> naive_bn(const std::vector<double>& x, size_t batch, size_t channels,
                             const BnParams& p) {
    std::vector<double> y(x.size());
    size_t inner = x.size() / (batch * channels);
    for (size_t n = 0; n < batch; ++n)
        for (size_t c = 0; c < channels; ++c)
            for (size_t i = 0; i < inner; ++i) {
                size_t k = (n * channels + c) * inner + i;
                y[k] =
                    (x[k] - p.mean[c]) /
                        std::sqrt(static_cast<double>(p.var[c]) + static_cast<double>(p.epsilon)) *
                        p.scale[c] +
                    p.bias[c];
            }
    return y;
}

// Conv2D, NCHW, stride 1, no padding. W [M, C/g, kh, kw].
std::vector<double> naive_conv(const std::vector<float>& x, size_t n_, size_t c, size_t h, size_t w,
                               const std::vector<float>& wt, size_t m, size_t kh, size_t kw,
                               size_t group, const std::vector<float>& bias) {
    size_t oh = h - kh + 1, ow = w - kw + 1, cg = c / group, mg = m / group;
    std::vector<double> y(n_ * m * oh * ow, 0.0);
    for (size_t n = 0; n < n_; ++n)
        for (size_t o = 0; o < m; ++o) {
            size_t g = o / mg;
            for (size_t i = 0; i < oh; ++i)
                for (size_t j = 0; j < ow; ++j) {
                    double acc = bias.empty() ? 0.0 : bias[o];
                    for (size_t ci = 0; ci < cg; ++ci)
                        for (size_t a = 0; a < kh; ++a)
                            for (size_t b = 0; b < kw; ++b)
                                acc += static_cast<double>(
                                           x[((n * c + g * cg + ci) * h + i + a) * w + j + b]) *
                                       wt[((o * cg + ci) * kh + a) * kw + b];
                    y[((n * m + o) * oh + i) * ow + j] = acc;
                }
        }
    return y;
}

// ConvTranspose2D, stride 1, no padding. W [C, M/g, kh, kw].
std::vector<double> naive_conv_transpose(const std::vector<float>& x, size_t n_, size_t c, size_t h,
                                         size_t w, const std::vector<float>& wt, size_t m,
                                         size_t kh, size_t kw, size_t group,
                                         const std::vector<float>& bias) {
    size_t oh = h + kh - 1, ow = w + kw - 1, cg = c / group, mg = m / group;
    std::vector<double> y(n_ * m * oh * ow, 0.0);
    for (size_t n = 0; n < n_; ++n)
        for (size_t o = 0; o < m; ++o)
            for (size_t i = 0; i < oh * ow; ++i)
                y[(n * m + o) * oh * ow + i] = bias.empty() ? 0.0 : bias[o];
    for (size_t n = 0; n < n_; ++n)
        for (size_t ci = 0; ci < c; ++ci) {
            size_t g = ci / cg;
            for (size_t j = 0; j < mg; ++j) {
                size_t o = g * mg + j;
                for (size_t i = 0; i < h; ++i)
                    for (size_t k = 0; k < w; ++k)
                        for (size_t a = 0; a < kh; ++a)
                            for (size_t b = 0; b < kw; ++b)
                                y[((n * m + o) * oh + i + a) * ow + k + b] +=
                                    static_cast<double>(x[((n * c + ci) * h + i) * w + k]) *
                                    wt[((ci * mg + j) * kh + a) * kw + b];
            }
        }
    return y;
}

// Y = alpha * A * B' + beta * C, A [N, K]; B [K, M] or [M, K] (transB); C broadcast.
std::vector<double> naive_gemm(const std::vector<float>& a, size_t n_, size_t k_,
                               const std::vector<float>& b, size_t m, bool trans_b, float alpha,
                               float beta, const std::vector<float>& c) {
    std::vector<double> y(n_ * m);
    for (size_t n = 0; n < n_; ++n)
        for (size_t o = 0; o < m; ++o) {
            double acc = 0.0;
            for (size_t k = 0; k < k_; ++k)
                acc +=
                    static_cast<double>(a[n * k_ + k]) * (trans_b ? b[o * k_ + k] : b[k * m + o]);
            double bias = c.empty() ? 0.0 : c.size() == 1 ? c[0] : c[o];
            y[n * m + o] = alpha * acc + beta * bias;
        }
    return y;
}

double max_rel_diff(const std::vector<double>& ref, const std::vector<double>& got) {
    REQUIRE(ref.size() == got.size());
    double max_ref = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        max_ref = std::max(max_ref, std::fabs(ref[i]));
        max_diff = std::max(max_diff, std::fabs(ref[i] - got[i]));
    }
    return max_diff / std::max(max_ref, 1e-30);
}
}  // namespace

TEST_CASE("fold-batchnorm folds Conv + BN: with and without bias, with groups",
          "[passes][fold-batchnorm]") {
    auto with_bias = GENERATE(false, true);
    auto group = GENERATE(1, 2, 6);
    INFO("bias " << with_bias << " group " << group);
    const size_t c = 6, m = 6, k = 3, h = 5, w = 6;
    Model model = conv_bn_model(c, m, k, static_cast<size_t>(group), with_bias, 42);
    auto x = random_values(c * h * w, 5);
    std::vector<float> bias = with_bias ? floats_of(model, "b") : std::vector<float>{};
    auto ref = naive_bn(
        naive_conv(x, 1, c, h, w, floats_of(model, "w"), m, k, k, static_cast<size_t>(group), bias),
        1, m, make_bn(m, 42 + 11));

    auto result = run_pass("fold-batchnorm", model);
    INFO(skips_text(result));
    CHECK(result.changed);
    CHECK(result.rewrites == 1);
    CHECK(result.skipped.empty());
    CHECK(count_nodes(model, "BatchNormalization") == 0);
    const Node* conv = find_node(model, "Conv");
    REQUIRE(conv != nullptr);
    CHECK(conv->outputs[0] == "y");  // the BN's output name survives
    REQUIRE(conv->inputs.size() == 3);
    CHECK(verify(model).empty());
    // Only the folded weight and bias remain: the BN parameters are gone.
    CHECK(model.graph.initializers.size() == 2);
    auto got = naive_conv(x, 1, c, h, w, floats_of(model, conv->inputs[1]), m, k, k,
                          static_cast<size_t>(group), floats_of(model, conv->inputs[2]));
    CHECK(max_rel_diff(ref, got) < 1e-5);
}

TEST_CASE("fold-batchnorm folds ConvTranspose + BN along weight axis 1, with groups",
          "[passes][fold-batchnorm]") {
    auto group = GENERATE(1, 2);
    auto with_bias = GENERATE(false, true);
    INFO("group " << group << " bias " << with_bias);
    const size_t c = 4, per_group_out = 3, m = per_group_out * static_cast<size_t>(group), k = 2,
                 h = 3, w = 4;
    Model model;
    model.opset_imports.push_back({"", 13});
    model.graph.inputs.push_back(value("x"));
    model.graph.outputs.push_back(value("y"));
    auto wt = random_values(c * per_group_out * k * k, 3);
    model.graph.initializers.push_back(make_f32_tensor("w", {4, 3, 2, 2}, wt));
    std::vector<float> bias;
    std::vector<std::string> inputs{"x", "w"};
    if (with_bias) {
        bias = random_values(m, 9);
        model.graph.initializers.push_back(make_f32_tensor("b", {static_cast<int64_t>(m)}, bias));
        inputs.push_back("b");
    }
    Node ct = make_node("ConvTranspose", "deconv", inputs, {"t"});
    ct.attributes.push_back(int_attr("group", group));
    model.graph.nodes.push_back(std::move(ct));
    auto bn = make_bn(m, 17);
    add_bn(model, bn, "t", "y");
    auto x = random_values(c * h * w, 4);
    auto ref =
        naive_bn(naive_conv_transpose(x, 1, c, h, w, wt, m, k, k, static_cast<size_t>(group), bias),
                 1, m, bn);

    auto result = run_pass("fold-batchnorm", model);
    INFO(skips_text(result));
    REQUIRE(result.rewrites == 1);
    const Node* node = find_node(model, "ConvTranspose");
    REQUIRE(node->inputs.size() == 3);
    auto got = naive_conv_transpose(x, 1, c, h, w, floats_of(model, node->inputs[1]), m, k, k,
                                    static_cast<size_t>(group), floats_of(model, node->inputs[2]));
    CHECK(max_rel_diff(ref, got) < 1e-5);
    CHECK(verify(model).empty());
}

TEST_CASE("fold-batchnorm folds Gemm + BN for transB 0 and 1, folding alpha, beta and C",
          "[passes][fold-batchnorm]") {
    auto trans_b = GENERATE(0, 1);
    // C: absent, [M], [1, M], a scalar [], a [1] broadcast.
    auto c_case = GENERATE(0, 1, 2, 3, 4);
    bool has_c = c_case != 0;
    const std::vector<std::vector<int64_t>> c_shapes{{}, {5}, {1, 5}, {}, {1}};
    const auto& c_shape = c_shapes[static_cast<size_t>(c_case)];
    INFO("transB " << trans_b << " C " << (has_c ? shape_string(c_shape) : "none"));
    const size_t n = 3, k = 4, m = 5;
    Model model;
    model.opset_imports.push_back({"", 13});
    model.graph.inputs.push_back(value("a"));
    model.graph.outputs.push_back(value("y"));
    auto b = random_values(k * m, 21);
    model.graph.initializers.push_back(
        make_f32_tensor("B", trans_b ? std::vector<int64_t>{5, 4} : std::vector<int64_t>{4, 5}, b));
    std::vector<float> cvals;
    std::vector<std::string> inputs{"a", "B"};
    if (has_c) {
        auto count = checked_element_count(c_shape);
        cvals = random_values(*count, 22);
        model.graph.initializers.push_back(make_f32_tensor("C", c_shape, cvals));
        inputs.push_back("C");
    }
    Node gemm = make_node("Gemm", "fc", inputs, {"t"});
    gemm.attributes.push_back(int_attr("transB", trans_b));
    gemm.attributes.push_back(float_attr("alpha", 0.75f));
    gemm.attributes.push_back(float_attr("beta", 1.5f));
    model.graph.nodes.push_back(std::move(gemm));
    auto bn = make_bn(m, 23);
    add_bn(model, bn, "t", "y");
    auto a = random_values(n * k, 24);
    auto ref = naive_bn(naive_gemm(a, n, k, b, m, trans_b, 0.75f, 1.5f, cvals), n, m, bn);

    auto result = run_pass("fold-batchnorm", model);
    INFO(skips_text(result));
    REQUIRE(result.rewrites == 1);
    const Node* node = find_node(model, "Gemm");
    REQUIRE(node->inputs.size() == 3);
    float beta = node->attr_float("beta", 1.0f);
    auto got = naive_gemm(a, n, k, floats_of(model, "B"), m, trans_b, 0.75f, beta,
                          floats_of(model, node->inputs[2]));
    CHECK(max_rel_diff(ref, got) < 1e-5);
    CHECK(verify(model).empty());
}

TEST_CASE("fold-batchnorm keeps f16 weights f16", "[passes][fold-batchnorm]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 7);
    auto x = random_values(2 * 3 * 3, 8);
    for (const char* name : {"w", "b"}) {
        Tensor* t = model.graph.find_initializer(name);
        auto v = t->to_floats();
        std::vector<std::byte> bytes(v.size() * 2);
        for (size_t i = 0; i < v.size(); ++i) {
            uint16_t h = float_to_half(v[i]);
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
        t->dtype = DType::F16;
        t->data = TensorData::owned(std::move(bytes));
    }
    auto ref = naive_bn(
        naive_conv(x, 1, 2, 3, 3, floats_of(model, "w"), 3, 1, 1, 1, floats_of(model, "b")), 1, 3,
        make_bn(3, 7 + 11));
    REQUIRE(run_pass("fold-batchnorm", model).rewrites == 1);
    CHECK(model.graph.find_initializer("w")->dtype == DType::F16);
    CHECK(model.graph.find_initializer("b")->dtype == DType::F16);
    auto got = naive_conv(x, 1, 2, 3, 3, floats_of(model, "w"), 3, 1, 1, 1, floats_of(model, "b"));
    CHECK(max_rel_diff(ref, got) < 3e-3);  // f16 rounding of the folded values
}

TEST_CASE("fold-batchnorm copies weights another node also uses", "[passes][fold-batchnorm]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 31);
    // A second Conv reads the same weights and bias and is not followed by a BN.
    model.graph.nodes.push_back(make_node("Conv", "other", {"x", "w", "b"}, {"z"}));
    model.graph.outputs.push_back(value("z"));
    auto w_before = floats_of(model, "w");
    auto b_before = floats_of(model, "b");
    auto result = run_pass("fold-batchnorm", model);
    REQUIRE(result.rewrites == 1);
    const Node& conv = model.graph.nodes[0];
    CHECK(conv.inputs[1] == "w_bnfold");
    CHECK(conv.inputs[2] == "b_bnfold");
    CHECK(floats_of(model, "w") == w_before);  // the other user's weights are untouched
    CHECK(floats_of(model, "b") == b_before);
    CHECK(find_node(model, "Conv")->name == "conv");
    CHECK(model.graph.nodes.back().inputs == std::vector<std::string>{"x", "w", "b"});
    CHECK(verify(model).empty());
    CHECK_THAT(result.summary.back(), Catch::Contains("copied 2 shared"));
}

TEST_CASE("fold-batchnorm folds a chain Conv -> BN -> BN in two rounds",
          "[passes][fold-batchnorm]") {
    Model model = conv_bn_model(2, 3, 1, 1, false, 51);
    model.graph.outputs[0].name = "y2";
    add_bn(model, make_bn(3, 77), "y", "y2", "bn2");
    auto x = random_values(2 * 4 * 4, 52);
    auto ref = naive_bn(naive_bn(naive_conv(x, 1, 2, 4, 4, floats_of(model, "w"), 3, 1, 1, 1, {}),
                                 1, 3, make_bn(3, 51 + 11)),
                        1, 3, make_bn(3, 77));
    auto result = run_pass("fold-batchnorm", model);
    CHECK(result.rewrites == 2);
    CHECK(count_nodes(model, "BatchNormalization") == 0);
    const Node* conv = find_node(model, "Conv");
    CHECK(conv->outputs[0] == "y2");
    auto got = naive_conv(x, 1, 2, 4, 4, floats_of(model, conv->inputs[1]), 3, 1, 1, 1,
                          floats_of(model, conv->inputs[2]));
    CHECK(max_rel_diff(ref, got) < 1e-5);
}

TEST_CASE("fold-batchnorm reports why it skips and leaves the model unchanged",
          "[passes][fold-batchnorm]") {
    SECTION("input produced by Relu") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        model.graph.nodes[1].inputs[0] = "r";
        model.graph.nodes.insert(model.graph.nodes.begin() + 1,
                                 make_node("Relu", "relu", {"t"}, {"r"}));
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK_FALSE(result.changed);
        CHECK(has_skip(result, "bn", "input produced by Relu, not Conv/ConvTranspose/Gemm"));
        CHECK(fingerprint(model) == before);
    }
    SECTION("conv output with two consumers") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        model.graph.nodes.push_back(make_node("Relu", "relu", {"t"}, {"r"}));
        model.graph.outputs.push_back(value("r"));
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "output 't' has 2 consumers"));
        CHECK(fingerprint(model) == before);
    }
    SECTION("conv output is a graph output") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        model.graph.outputs.push_back(value("t"));
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "output 't' is also a graph output"));
    }
    SECTION("weights produced by a Constant node") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        weights_as_constant(model, "w", "wc");
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn",
                       "weights 'w' not constant (produced by Constant; run "
                       "promote-constants first)"));
        CHECK(fingerprint(model) == before);
        // promote-constants first makes it foldable.
        CHECK(run_pass("promote-constants", model).rewrites == 1);
        CHECK(run_pass("fold-batchnorm", model).rewrites == 1);
    }
    SECTION("weights are a graph input") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        model.graph.inputs.push_back(value("w"));
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "weights 'w' is also a graph input"));
        CHECK(fingerprint(model) == before);
    }
    SECTION("a late precondition: var + epsilon <= 0 in the last channel") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        model.graph.find_initializer("bn.var")->mutable_values<float>()[2] = -1.0f;
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "var + epsilon <= 0 for channel 2"));
        CHECK(fingerprint(model) == before);
    }
    SECTION("channel counts disagree") {
        Model model = conv_bn_model(2, 4, 1, 1, false, 1);
        for (const char* p : {"bn.scale", "bn.B", "bn.mean", "bn.var"}) {
            Tensor* t = model.graph.find_initializer(p);
            *t = make_f32_tensor(p, {3}, random_values(3, 2, 0.5f, 1.0f));
        }
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "Conv has 4 output channels, BatchNormalization has 3"));
        CHECK(fingerprint(model) == before);
    }
    SECTION("training-mode BN and excluded BN") {
        Model model = conv_bn_model(2, 3, 1, 1, true, 1);
        model.graph.nodes[1].outputs.push_back("running_mean");
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "training-mode BatchNormalization"));
        model.graph.nodes[1].outputs.pop_back();
        result = run_pass("fold-batchnorm", model, {{"exclude", {"b?"}}});
        CHECK(has_skip(result, "bn", "not selected by include/exclude"));
        CHECK(count_nodes(model, "BatchNormalization") == 1);
    }
}

TEST_CASE("fold-batchnorm's plan lists each decision and changes nothing",
          "[passes][fold-batchnorm]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    add_bn(model, make_bn(3, 5), "x", "y_other", "bn_on_input");
    auto before = fingerprint(model);
    auto pass = create_pass("fold-batchnorm");
    pass->configure(nlohmann::json::object());
    auto lines = pass->plan(model);
    REQUIRE(lines.size() == 2);
    CHECK_THAT(lines[0], Catch::Contains("fold 'bn' into Conv 'conv' (3 channels)"));
    CHECK_THAT(lines[1], Catch::Contains("keep 'bn_on_input': input 'x' is a graph input"));
    CHECK(fingerprint(model) == before);
}
