// Unit tests of the cleanup passes and the pass manager on tiny models built in C++.
//
// fold-batchnorm is checked numerically: a naive Conv / ConvTranspose / Gemm followed by a
// naive BatchNormalization on a small input (the reference) against the same naive op run
// with the folded weights read back from the model.
#include <cmath>
#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>

#include "ir/checked.h"
#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "passes/registry.h"
#include "passes/selector.h"
#include "support.h"

using namespace ep;

namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

Node make_node(std::string op, std::string name, std::vector<std::string> inputs,
               std::vector<std::string> outputs) {
    Node n;
    n.op_type = std::move(op);
    n.name = std::move(name);
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    return n;
}

ValueInfo value(std::string name) {
    ValueInfo v;
    v.name = std::move(name);
    return v;
}

std::vector<float> floats_of(const Model& m, const std::string& name) {
    const Tensor* t = m.graph.find_initializer(name);
    REQUIRE(t != nullptr);
    return t->to_floats();
}

const Node* find_node(const Model& m, std::string_view op) {
    for (const auto& n : m.graph.nodes)
        if (n.op_type == op) return &n;
    return nullptr;
}

size_t count_nodes(const Model& m, std::string_view op) {
    size_t k = 0;
    for (const auto& n : m.graph.nodes) k += n.op_type == op;
    return k;
}

// BN parameters for `channels` channels, with var > 0 and a non-default epsilon.
struct BnParams {
    std::vector<float> scale, bias, mean, var;
    float epsilon = 1e-3f;
};

BnParams make_bn(size_t channels, uint32_t seed) {
    BnParams p;
    p.scale = random_values(channels, seed, 0.5f, 2.0f);
    p.bias = random_values(channels, seed + 1);
    p.mean = random_values(channels, seed + 2);
    p.var = random_values(channels, seed + 3, 0.1f, 3.0f);
    return p;
}

void add_bn(Model& m, const BnParams& p, const std::string& in, const std::string& out,
            const std::string& name = "bn") {
    auto c = static_cast<int64_t>(p.scale.size());
    m.graph.initializers.push_back(make_f32_tensor(name + ".scale", {c}, p.scale));
    m.graph.initializers.push_back(make_f32_tensor(name + ".B", {c}, p.bias));
    m.graph.initializers.push_back(make_f32_tensor(name + ".mean", {c}, p.mean));
    m.graph.initializers.push_back(make_f32_tensor(name + ".var", {c}, p.var));
    Node bn = make_node("BatchNormalization", name,
                        {in, name + ".scale", name + ".B", name + ".mean", name + ".var"}, {out});
    bn.attributes.push_back(float_attr("epsilon", p.epsilon));
    bn.attributes.push_back(float_attr("momentum", 0.9f));
    m.graph.nodes.push_back(std::move(bn));
}

// y[n, c, ...] = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + B[c], channel axis 1.
std::vector<double> naive_bn(const std::vector<double>& x, size_t batch, size_t channels,
                             const BnParams& p) {
    std::vector<double> y(x.size());
    size_t inner = x.size() / (batch * channels);
    for (size_t n = 0; n < batch; ++n)
        for (size_t c = 0; c < channels; ++c)
            for (size_t i = 0; i < inner; ++i) {
                size_t k = (n * channels + c) * inner + i;
                y[k] = (x[k] - p.mean[c]) / std::sqrt(static_cast<double>(p.var[c]) +
                                                      static_cast<double>(p.epsilon)) *
                           p.scale[c] +
                       p.bias[c];
            }
    return y;
}

// Conv2D, NCHW, stride 1, no padding. W [M, C/g, kh, kw].
std::vector<double> naive_conv(const std::vector<float>& x, size_t n_, size_t c, size_t h,
                               size_t w, const std::vector<float>& wt, size_t m, size_t kh,
                               size_t kw, size_t group, const std::vector<float>& bias) {
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
std::vector<double> naive_conv_transpose(const std::vector<float>& x, size_t n_, size_t c,
                                         size_t h, size_t w, const std::vector<float>& wt,
                                         size_t m, size_t kh, size_t kw, size_t group,
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
                acc += static_cast<double>(a[n * k_ + k]) * (trans_b ? b[o * k_ + k] : b[k * m + o]);
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

PassResult run_pass(const std::string& name, Model& m, nlohmann::json options = {}) {
    auto pass = create_pass(name);
    REQUIRE(pass != nullptr);
    if (!options.is_object()) options = nlohmann::json::object();
    pass->configure(options);
    PassContext ctx;
    return pass->run(m, ctx);
}

// Everything a pass could change, as text: nodes, initializer names and bytes.
std::string fingerprint(const Model& m) {
    std::string s = dump_graph(m);
    for (const auto& t : m.graph.initializers) {
        s += t.name + " " + std::string(dtype_name(t.dtype)) + " " + shape_string(t.shape) + " ";
        auto b = t.data.bytes();
        s.append(reinterpret_cast<const char*>(b.data()), b.size());
        s += "\n";
    }
    for (const auto& n : m.graph.nodes)
        for (const auto& a : n.attributes) s += a.name + std::to_string(a.i) + std::to_string(a.f);
    return s;
}

bool has_skip(const PassResult& r, const std::string& name, const std::string& fragment) {
    for (const auto& s : r.skipped)
        if (s.name == name && s.reason.find(fragment) != std::string::npos) return true;
    return false;
}

std::string skips_text(const PassResult& r) {
    std::string s;
    for (const auto& k : r.skipped) s += k.name + ": " + k.reason + "\n";
    return s;
}

// x [1, C, H, W] -> Conv(w[, b]) -> t -> BN -> y
Model conv_bn_model(size_t c, size_t m, size_t k, size_t group, bool with_bias, uint32_t seed) {
    Model model;
    model.opset_imports.push_back({"", 13});
    model.graph.inputs.push_back(value("x"));
    model.graph.outputs.push_back(value("y"));
    auto w = random_values(m * (c / group) * k * k, seed);
    model.graph.initializers.push_back(make_f32_tensor(
        "w", {static_cast<int64_t>(m), static_cast<int64_t>(c / group), static_cast<int64_t>(k),
              static_cast<int64_t>(k)},
        w));
    std::vector<std::string> inputs{"x", "w"};
    if (with_bias) {
        model.graph.initializers.push_back(
            make_f32_tensor("b", {static_cast<int64_t>(m)}, random_values(m, seed + 7)));
        inputs.push_back("b");
    }
    Node conv = make_node("Conv", "conv", inputs, {"t"});
    conv.attributes.push_back(int_attr("group", static_cast<int64_t>(group)));
    model.graph.nodes.push_back(std::move(conv));
    add_bn(model, make_bn(m, seed + 11), "t", "y");
    return model;
}

}  // namespace

TEST_CASE("glob patterns match whole names with *, ?, classes", "[passes][selector]") {
    CHECK(glob_match("*", ""));
    CHECK(glob_match("*.weight", "layers.0.weight"));
    CHECK_FALSE(glob_match("*.weight", "layers.0.weight.scale"));
    CHECK(glob_match("layers.[0-3].*", "layers.2.q"));
    CHECK_FALSE(glob_match("layers.[0-3].*", "layers.4.q"));
    CHECK(glob_match("layers.[!0-3].*", "layers.4.q"));
    CHECK(glob_match("a?c", "abc"));
    CHECK_FALSE(glob_match("a?c", "ac"));
    CHECK(glob_match("a[b", "a[b"));  // unclosed class: literal '['
    CHECK(glob_match("*embed*", "model.embed_tokens"));
    // Hostile: many stars against a long near-miss stays fast (no exponential backtracking).
    std::string pattern, name(5000, 'a');
    for (int i = 0; i < 200; ++i) pattern += "a*";
    pattern += "b";
    CHECK_FALSE(glob_match(pattern, name));

    Selector s = Selector::from_options({{"include", {"*.weight", "head*"}}, {"exclude", {"*embed*"}}});
    CHECK(s.selects("l0.weight"));
    CHECK(s.selects("head.bias"));
    CHECK_FALSE(s.selects("embed.weight"));
    CHECK_FALSE(s.selects("l0.bias"));
    CHECK(Selector().selects("anything"));
}

TEST_CASE("the registry lists every pass once and their defaults validate", "[passes]") {
    auto names = pass_names();
    REQUIRE(names.size() >= 2);
    for (auto n : names) {
        INFO(n);
        auto p = create_pass(n);
        REQUIRE(p != nullptr);
        CHECK(p->name() == n);
        CHECK(std::count(names.begin(), names.end(), n) == 1);
        CHECK_FALSE(p->description().empty());
    }
    CHECK(create_pass("no-such-pass") == nullptr);
    CHECK(pass_kind_name(PassKind::Cleanup) == "cleanup");
}

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
    auto ref = naive_bn(
        naive_conv_transpose(x, 1, c, h, w, wt, m, k, k, static_cast<size_t>(group), bias), 1, m,
        bn);

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
    model.graph.initializers.push_back(make_f32_tensor(
        "B", trans_b ? std::vector<int64_t>{5, 4} : std::vector<int64_t>{4, 5}, b));
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
    auto ref = naive_bn(naive_conv(x, 1, 2, 3, 3, floats_of(model, "w"), 3, 1, 1, 1,
                                   floats_of(model, "b")),
                        1, 3, make_bn(3, 7 + 11));
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
        model.graph.nodes.insert(model.graph.nodes.begin() + 1, make_node("Relu", "relu", {"t"}, {"r"}));
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
        Node k = make_node("Constant", "wc", {}, {"w"});
        Attribute a;
        a.name = "value";
        a.type = AttrType::Tensor;
        a.tensors.push_back(*model.graph.find_initializer("w"));
        k.attributes.push_back(a);
        std::erase_if(model.graph.initializers, [](const Tensor& t) { return t.name == "w"; });
        model.graph.nodes.insert(model.graph.nodes.begin(), std::move(k));
        auto before = fingerprint(model);
        auto result = run_pass("fold-batchnorm", model);
        CHECK(has_skip(result, "bn", "weights 'w' not constant (produced by Constant; run "
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

namespace {

Node constant_node(const std::string& out, Attribute a) {
    Node n = make_node("Constant", "", {}, {out});
    n.attributes.push_back(std::move(a));
    return n;
}

}  // namespace

TEST_CASE("promote-constants turns every Constant form into an initializer",
          "[passes][promote-constants]") {
    Model model;
    model.graph.outputs.push_back(value("sum"));
    Attribute tensor_attr;
    tensor_attr.name = "value";
    tensor_attr.type = AttrType::Tensor;
    std::vector<float> wv{1, 2, 3, 4, 5, 6};
    tensor_attr.tensors.push_back(make_f32_tensor("ignored_name", {2, 3}, wv));
    model.graph.nodes.push_back(constant_node("w", tensor_attr));
    model.graph.nodes.push_back(constant_node("f", float_attr("value_float", 2.5f)));
    Attribute floats;
    floats.name = "value_floats";
    floats.type = AttrType::Floats;
    floats.floats = {1.5f, -1.5f};
    model.graph.nodes.push_back(constant_node("fs", floats));
    model.graph.nodes.push_back(constant_node("i", int_attr("value_int", -7)));
    model.graph.nodes.push_back(constant_node("is", ints_attr("value_ints", {3, 4, 5})));
    Attribute strs;
    strs.name = "value_strings";
    strs.type = AttrType::Strings;
    strs.strings = {"a", "bc"};
    model.graph.nodes.push_back(constant_node("ss", strs));
    model.graph.nodes.push_back(make_node("Sum", "sum", {"w", "f", "fs", "i", "is", "ss"}, {"sum"}));

    auto result = run_pass("promote-constants", model);
    CHECK(result.changed);
    CHECK(result.rewrites == 6);
    REQUIRE(model.graph.nodes.size() == 1);
    CHECK(model.graph.nodes[0].inputs ==
          std::vector<std::string>{"w", "f", "fs", "i", "is", "ss"});
    CHECK(verify(model).empty());
    const Tensor* w = model.graph.find_initializer("w");
    REQUIRE(w);
    CHECK(w->shape == std::vector<int64_t>{2, 3});
    CHECK(w->to_floats() == wv);
    const Tensor* f = model.graph.find_initializer("f");
    CHECK(f->shape.empty());
    CHECK(f->to_floats() == std::vector<float>{2.5f});
    CHECK(model.graph.find_initializer("fs")->to_floats() == std::vector<float>{1.5f, -1.5f});
    const Tensor* i = model.graph.find_initializer("i");
    CHECK(i->dtype == DType::I64);
    CHECK(i->shape.empty());
    CHECK(i->values<int64_t>()[0] == -7);
    const Tensor* is = model.graph.find_initializer("is");
    CHECK(is->shape == std::vector<int64_t>{3});
    CHECK(std::vector<int64_t>(is->values<int64_t>().begin(), is->values<int64_t>().end()) ==
          std::vector<int64_t>{3, 4, 5});
    const Tensor* ss = model.graph.find_initializer("ss");
    CHECK(ss->dtype == DType::String);
    CHECK(ss->strings == std::vector<std::string>{"a", "bc"});
}

TEST_CASE("promote-constants keeps small, excluded and graph-output constants, with reasons",
          "[passes][promote-constants]") {
    Model model;
    std::vector<float> big(16, 1.0f), small(3, 2.0f);
    auto tensor_attr = [](Tensor t) {
        Attribute a;
        a.name = "value";
        a.type = AttrType::Tensor;
        a.tensors.push_back(std::move(t));
        return a;
    };
    model.graph.nodes.push_back(constant_node("big", tensor_attr(make_f32_tensor("", {16}, big))));
    model.graph.nodes.push_back(constant_node("small", tensor_attr(make_f32_tensor("", {3}, small))));
    model.graph.nodes.push_back(constant_node("big.skip", tensor_attr(make_f32_tensor("", {16}, big))));
    model.graph.nodes.push_back(constant_node("out", tensor_attr(make_f32_tensor("", {16}, big))));
    Attribute sparse;
    sparse.name = "sparse_value";
    sparse.type = AttrType::SparseTensor;
    sparse.opaque.push_back("");
    model.graph.nodes.push_back(constant_node("sp", sparse));
    model.graph.nodes.push_back(make_node("Sum", "sum", {"big", "small", "big.skip", "sp"}, {"s"}));
    model.graph.outputs.push_back(value("s"));
    model.graph.outputs.push_back(value("out"));

    auto plan_pass = create_pass("promote-constants");
    plan_pass->configure({{"min_elements", 4}, {"exclude", {"*.skip"}}});
    auto before = fingerprint(model);
    auto lines = plan_pass->plan(model);
    CHECK(fingerprint(model) == before);
    REQUIRE(lines.size() == 5);
    CHECK_THAT(lines[0], Catch::Contains("promote 'big' (f32 [16]) to an initializer"));

    auto result = run_pass("promote-constants", model, {{"min_elements", 4}, {"exclude", {"*.skip"}}});
    INFO(skips_text(result));
    CHECK(result.rewrites == 1);
    CHECK(model.graph.find_initializer("big") != nullptr);
    CHECK(has_skip(result, "small", "fewer than min_elements (4) elements"));
    CHECK(has_skip(result, "big.skip", "not selected by include/exclude"));
    CHECK(has_skip(result, "out", "is a graph output"));
    CHECK(has_skip(result, "sp", "sparse_value"));
    CHECK(result.skipped.size() == 4);
    CHECK(count_nodes(model, "Constant") == 4);
    CHECK(verify(model).empty());
}

TEST_CASE("promote-constants promotes subgraph Constants into the subgraph's initializers",
          "[passes][promote-constants]") {
    Model model;
    model.graph.inputs.push_back(value("cond"));
    Graph body;
    body.name = "then";
    Attribute v;
    v.name = "value_floats";
    v.type = AttrType::Floats;
    v.floats = {1, 2};
    body.nodes.push_back(constant_node("k", v));
    body.nodes.push_back(make_node("Identity", "id", {"k"}, {"then_out"}));
    body.outputs.push_back(value("then_out"));
    Node if_node = make_node("If", "if", {"cond"}, {"y"});
    Attribute branch;
    branch.name = "then_branch";
    branch.type = AttrType::Graph;
    branch.graphs.push_back(body);
    if_node.attributes.push_back(branch);
    branch.name = "else_branch";
    if_node.attributes.push_back(branch);
    model.graph.nodes.push_back(if_node);
    model.graph.outputs.push_back(value("y"));

    auto result = run_pass("promote-constants", model);
    CHECK(result.rewrites == 2);
    for (const auto& a : model.graph.nodes[0].attributes) {
        const Graph& g = a.graphs[0];
        CHECK(g.nodes.size() == 1);
        REQUIRE(g.find_initializer("k") != nullptr);
        CHECK(g.find_initializer("k")->to_floats() == std::vector<float>{1, 2});
    }
    CHECK(model.graph.initializers.empty());
    CHECK(verify(model).empty());
}

namespace {

// Test passes for the manager's hooks.
class ThrowingPass final : public Pass {
public:
    std::string_view name() const override { return "thrower"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override { return "throws"; }
    std::vector<std::string> plan(const Model&) const override { return {"would throw"}; }
    PassResult run(Model&, PassContext&) override {
        throw InputError("tensor 'w': something is wrong");
    }
};

class BreakingPass final : public Pass {
public:
    std::string_view name() const override { return "breaker"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override { return "renames an input"; }
    std::vector<std::string> plan(const Model&) const override { return {}; }
    PassResult run(Model& m, PassContext& ctx) override {
        threads_seen = ctx.threads;
        m.graph.nodes[0].inputs[0] = "nowhere";
        PassResult r;
        r.changed = true;
        r.rewrites = 1;
        return r;
    }
    int threads_seen = 0;
};

}  // namespace

TEST_CASE("the pass manager prefixes pass errors with the recipe path and pass name",
          "[passes][pass-manager]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManager pm;
    pm.add("passes[0]", create_pass("promote-constants"));
    pm.add("passes[1]", std::make_unique<ThrowingPass>());
    std::ostringstream log;
    try {
        (void)pm.run(model, {}, log);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK(std::string(e.what()) == "passes[1] (thrower): tensor 'w': something is wrong");
    }
}

TEST_CASE("pass manager: --verify-each names the pass that broke the graph, threads reach the pass",
          "[passes][pass-manager]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManager pm;
    auto breaker = std::make_unique<BreakingPass>();
    auto* raw = breaker.get();
    pm.add("passes[0]", std::move(breaker));
    PassManagerOptions opts;
    opts.verify_each = true;
    opts.context.threads = 3;
    std::ostringstream log;
    try {
        (void)pm.run(model, opts, log);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::Internal);
        CHECK_THAT(e.what(), Catch::StartsWith("after pass breaker: node conv: input 'nowhere' "
                                               "is not produced before it is used"));
    }
    CHECK(raw->threads_seen == 3);
    // Without the hook the same run goes through.
    Model again = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManager pm2;
    pm2.add("passes[0]", std::make_unique<BreakingPass>());
    CHECK(pm2.run(again, {}, log).size() == 1);
}

TEST_CASE("the pass manager checks needs, prints after a pass and times passes",
          "[passes][pass-manager]") {
    Model checkpoint;
    checkpoint.format = SourceFormat::Safetensors;
    checkpoint.graph.initializers.push_back(make_f32_tensor("w", {1}, std::vector<float>{1}));
    PassManager pm;
    pm.add("passes[0]", create_pass("promote-constants"));
    pm.add("passes[1]", create_pass("fold-batchnorm"));
    CHECK_THROWS_WITH(pm.check_needs(checkpoint, "model.safetensors"),
                      Catch::Contains("passes[0] (promote-constants): needs a graph of nodes, but "
                                      "model.safetensors is a safetensors checkpoint"));
    CHECK_THROWS_WITH(pm.check_print_after({"fold-batchnrom"}),
                      Catch::Contains("did you mean fold-batchnorm?"));
    pm.check_print_after({"fold-batchnorm", "passes[0]"});

    // configure() with defaults, as the recipe loader would.
    PassManager configured;
    for (const char* name : {"promote-constants", "fold-batchnorm"}) {
        auto p = create_pass(name);
        p->configure(nlohmann::json::object());
        configured.add(cat("passes[", configured.size(), "]"), std::move(p));
    }
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManagerOptions opts;
    opts.print_after = {"fold-batchnorm"};
    std::ostringstream log;
    auto records = configured.run(model, opts, log);
    REQUIRE(records.size() == 2);
    CHECK(records[1].result.rewrites == 1);
    CHECK_THAT(log.str(), Catch::Contains("--- after passes[1] (fold-batchnorm) ---"));
    CHECK_THAT(log.str(), Catch::Contains("1 nodes, 2 initializers"));
    CHECK_THAT(log.str(), Catch::Contains("Conv(conv): x, w, b -> y"));
    auto table = format_time_table(records);
    CHECK_THAT(table, Catch::Contains("passes[1] fold-batchnorm"));
    CHECK_THAT(table, Catch::Contains("wall ms"));
    CHECK_THAT(table, Catch::Contains("total"));
    auto summary = format_summary(records);
    CHECK_THAT(summary, Catch::Contains("passes[1] fold-batchnorm: changed, 1 rewrite, 0 skipped"));
    CHECK_THAT(summary, Catch::Contains("passes[0] promote-constants: unchanged, 0 rewrites"));
}

TEST_CASE("a dry-run plan sees what earlier cleanup passes will do, on a copy",
          "[passes][pass-manager]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    // Store the weights as a Constant node, the way PP-OCR does.
    Node k = make_node("Constant", "wc", {}, {"w"});
    Attribute a;
    a.name = "value";
    a.type = AttrType::Tensor;
    a.tensors.push_back(*model.graph.find_initializer("w"));
    k.attributes.push_back(a);
    std::erase_if(model.graph.initializers, [](const Tensor& t) { return t.name == "w"; });
    model.graph.nodes.insert(model.graph.nodes.begin(), std::move(k));
    auto before = fingerprint(model);

    PassManager pm;
    for (const char* name : {"promote-constants", "fold-batchnorm"}) {
        auto p = create_pass(name);
        p->configure(nlohmann::json::object());
        pm.add(cat("passes[", pm.size(), "]"), std::move(p));
    }
    auto lines = pm.plan(model);
    CHECK(fingerprint(model) == before);
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    CHECK_THAT(text, Catch::Contains("passes[0] promote-constants: "));
    CHECK_THAT(text, Catch::Contains("  promote 'w' (f32 [3, 2, 1, 1]) to an initializer"));
    CHECK_THAT(text, Catch::Contains("passes[1] fold-batchnorm: "));
    CHECK_THAT(text, Catch::Contains("  fold 'bn' into Conv 'conv' (3 channels)"));
}
