// Fused elementwise chains (runtime-check/elementwise_fusion.h, kernels/elementwise_chain.h):
// the fused kernel gives the bytes of the unfused nodes (ExecOptions::fuse_qdq off runs
// every node as written) for every step kind, on block-size edges, with special values,
// at 1, 2 and 3 threads; a chain whose values the kernel does not handle runs its body as
// written; a Conv followed by a chain (LeakyRelu, Relu, Mul + Max as TF exports a leaky
// ReLU, Clip) runs the chain as the Conv's epilogue with the same bytes, on every Conv path
// (depthwise, pointwise, im2col, groups, batches, 1-D, 3-D); and real models (PP-OCR rec /
// cls, stories260k, MNIST on their real data) give the same bytes fused and unfused.
#include <cmath>
#include <cstring>
#include <limits>

#include "compressor/dataset.h"
#include "formats/model_io.h"
#include "pass_model.h"
#include "runtime-check/elementwise_fusion.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
    auto x = a.data.bytes(), y = b.data.bytes();
    return a.dtype == b.dtype && a.shape == b.shape && x.size() == y.size() &&
           std::memcmp(x.data(), y.data(), x.size()) == 0;
}

void require_same_outputs(const rt::NamedTensors& a, const rt::NamedTensors& b) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("output " << a[i].first);
        CHECK(same_bytes(a[i].second, b[i].second));
    }
}

rt::ExecOptions unfused_options(int threads) {
    rt::ExecOptions o{threads};
    o.fuse_qdq = false;  // every node as written
    return o;
}

// Every step kind in one chain over x [n]:
//   m1 = x * s; a1 = b + m1; a2 = a1 + 3; c = Clip(a2, 0, 6); m2 = a1 * c; d = m2 / 6;
//   sg = Sigmoid(d); sb = x - sg; rl = Relu(sb); hs = HardSigmoid(rl, -0.3, 0.4); y = 6 / hs
// (a saved operand, the chain's input on the left, a scalar on the left, 6 / 0 = inf).
Model chain_model(int64_t n, std::vector<int64_t> s_shape = {}) {
    Model m;
    m.opset_imports = {{"", 17}};
    Graph& g = m.graph;
    g.inputs = {test::f32_value("x", {n})};
    g.outputs = {test::value("y")};
    auto scalar = [&](const std::string& name, float v, std::vector<int64_t> shape = {}) {
        g.initializers.push_back(make_f32_tensor(name, std::move(shape), std::vector<float>{v}));
    };
    scalar("s", 2.5f, std::move(s_shape));
    scalar("b", -0.75f, {1});
    scalar("three", 3.0f);
    scalar("zero", 0.0f);
    scalar("six", 6.0f);
    using test::make_node;
    g.nodes = {
        make_node("Mul", "m1", {"x", "s"}, {"m1"}),
        make_node("Add", "a1", {"b", "m1"}, {"a1"}),
        make_node("Add", "a2", {"a1", "three"}, {"a2"}),
        make_node("Clip", "c", {"a2", "zero", "six"}, {"c"}),
        make_node("Mul", "m2", {"a1", "c"}, {"m2"}),
        make_node("Div", "d", {"m2", "six"}, {"d"}),
        make_node("Sigmoid", "sg", {"d"}, {"sg"}),
        make_node("Sub", "sb", {"x", "sg"}, {"sb"}),
        make_node("Relu", "rl", {"sb"}, {"rl"}),
        make_node("HardSigmoid", "hs", {"rl"}, {"hs"},
                  {float_attr("alpha", -0.3f), float_attr("beta", 0.4f)}),
        make_node("Div", "y", {"six", "hs"}, {"y"}),
    };
    return m;
}

// Special values first (signed zeros, infinities, NaN, a subnormal, Clip's and
// HardSigmoid's corners), then a deterministic ramp over [-12, 12].
Tensor chain_input(int64_t n) {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> special{0.0f,  -0.0f, inf,   -inf, std::nanf(""), 1e-40f, -1.2f, 0.3f,
                               -0.3f, 1.2f,  -2.4f, 3.0f, -1.0f,         6.0f,   1e30f, -1e30f};
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        v[static_cast<size_t>(i)] = i < static_cast<int64_t>(special.size())
                                        ? special[static_cast<size_t>(i)]
                                        : 12.0f * std::sin(0.37f * static_cast<float>(i));
    return make_f32_tensor("x", {n}, v);
}

// Conv (X [N, C, spatial...], W [M, C / group, kernel...], bias) followed by `activation`:
//   leaky: LeakyRelu(alpha 0.1); max: Max(c, Mul(c, 0.1)) (tf.maximum(x, 0.1 x));
//   relu_clip: Relu then Clip(-1, 2.5) (two steps); min: Min(Mul(c, 0.5), c)
struct ConvCase {
    const char* label;
    std::vector<int64_t> x, w, kernel, pads, strides;
    int64_t group;
};

Model conv_activation_model(const ConvCase& cc, const std::string& activation) {
    Model m;
    m.opset_imports = {{"", 17}};
    Graph& g = m.graph;
    g.inputs = {test::f32_value("x", cc.x)};
    g.outputs = {test::value("y")};
    int64_t wn = 1;
    for (int64_t d : cc.w) wn *= d;
    std::vector<float> w(static_cast<size_t>(wn)), b(static_cast<size_t>(cc.w[0]));
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5f * std::cos(0.71f * static_cast<float>(i));
    for (size_t i = 0; i < b.size(); ++i) b[i] = 0.25f * std::sin(1.3f * static_cast<float>(i));
    g.initializers.push_back(make_f32_tensor("w", cc.w, w));
    g.initializers.push_back(make_f32_tensor("b", {cc.w[0]}, b));
    g.initializers.push_back(make_f32_tensor("alpha", {}, std::vector<float>{0.1f}));
    g.initializers.push_back(make_f32_tensor("half", {}, std::vector<float>{0.5f}));
    g.initializers.push_back(make_f32_tensor("lo", {}, std::vector<float>{-1.0f}));
    g.initializers.push_back(make_f32_tensor("hi", {}, std::vector<float>{2.5f}));
    using test::make_node;
    g.nodes = {make_node("Conv", "conv", {"x", "w", "b"}, {"c"},
                         {ints_attr("kernel_shape", cc.kernel), ints_attr("pads", cc.pads),
                          ints_attr("strides", cc.strides), int_attr("group", cc.group)})};
    if (activation == "leaky") {
        g.nodes.push_back(make_node("LeakyRelu", "act", {"c"}, {"y"}, {float_attr("alpha", 0.1f)}));
    } else if (activation == "max") {
        g.nodes.push_back(make_node("Mul", "scaled", {"c", "alpha"}, {"s"}));
        g.nodes.push_back(make_node("Max", "act", {"c", "s"}, {"y"}));
    } else if (activation == "relu_clip") {
        g.nodes.push_back(make_node("Relu", "relu", {"c"}, {"r"}));
        g.nodes.push_back(make_node("Clip", "act", {"r", "lo", "hi"}, {"y"}));
    } else {
        g.nodes.push_back(make_node("Mul", "scaled", {"c", "half"}, {"s"}));
        g.nodes.push_back(make_node("Min", "act", {"s", "c"}, {"y"}));
    }
    return m;
}

Tensor conv_input(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    Tensor t = chain_input(n);
    t.shape = shape;
    return t;
}

}  // namespace

TEST_CASE("a Conv runs a following activation chain as its epilogue with the unfused bytes",
          "[runtime][fusion]") {
    const std::vector<ConvCase> cases{
        {"3x3 im2col", {1, 3, 13, 17}, {8, 3, 3, 3}, {3, 3}, {1, 1, 1, 1}, {1, 1}, 1},
        {"3x3 stride 2, batch 2", {2, 4, 11, 9}, {5, 4, 3, 3}, {3, 3}, {1, 0, 1, 2}, {2, 2}, 1},
        {"1x1 pointwise", {1, 16, 7, 7}, {33, 16, 1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1},
        {"depthwise", {2, 6, 9, 10}, {6, 1, 3, 3}, {3, 3}, {1, 1, 1, 1}, {1, 1}, 6},
        {"groups", {1, 8, 6, 6}, {12, 4, 3, 3}, {3, 3}, {1, 1, 1, 1}, {1, 1}, 2},
        {"1-D", {1, 4, 37}, {7, 4, 5}, {5}, {2, 2}, {1}, 1},
        {"3-D", {1, 2, 5, 4, 6}, {3, 2, 3, 3, 3}, {3, 3, 3}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, 1},
    };
    for (const auto& cc : cases)
        for (const std::string activation : {"leaky", "max", "relu_clip", "min"}) {
            DYNAMIC_SECTION(cc.label << " + " << activation) {
                Model m = conv_activation_model(cc, activation);
                auto fusion = rt::fuse_elementwise_chains(m.graph, m.graph.nodes, 17);
                CHECK(fusion.conv_activations == 1);
                REQUIRE(fusion.nodes.size() == 1);
                CHECK(fusion.nodes[0].op_type == "ConvActivation");
                CHECK(fusion.removed_values.count("c") == 1);
                rt::NamedTensors feeds{{"x", conv_input(cc.x)}};
                rt::Executor unfused(m, unfused_options(1));
                const auto want = unfused.run(feeds);
                // Not vacuous: NaN reached the Conv's output, and the activation changed
                // some of its values.
                const auto conv_out = unfused.run(feeds, {"c"}).at(1).second.to_floats();
                const auto y = want.at(0).second.to_floats();
                CHECK(std::any_of(conv_out.begin(), conv_out.end(),
                                  [](float v) { return std::isnan(v); }));
                size_t changed = 0;
                for (size_t i = 0; i < y.size(); ++i)
                    changed += !(y[i] == conv_out[i]) && !std::isnan(conv_out[i]);
                CHECK(changed > 0);
                for (int threads : {1, 2, 3}) {
                    INFO("threads " << threads);
                    rt::Executor fused(m, {threads});
                    require_same_outputs(fused.run(feeds), want);
                }
                // The Conv's own output, fetched, comes from the unfused plan.
                rt::Executor fused(m, {2});
                auto with_fetch = fused.run(feeds, {"c"});
                REQUIRE(with_fetch.size() == 2);
                CHECK(same_bytes(with_fetch[1].second, unfused.run(feeds, {"c"}).at(1).second));
            }
        }
}

TEST_CASE("a Conv whose output is read elsewhere keeps its activation as a separate node",
          "[runtime][fusion]") {
    ConvCase cc{"3x3", {1, 3, 8, 8}, {4, 3, 3, 3}, {3, 3}, {1, 1, 1, 1}, {1, 1}, 1};
    Model m = conv_activation_model(cc, "leaky");
    m.graph.outputs.push_back(test::value("c"));
    auto fusion = rt::fuse_elementwise_chains(m.graph, m.graph.nodes, 17);
    CHECK(fusion.conv_activations == 0);
    CHECK(fusion.chains == 0);  // one LeakyRelu alone is no chain
    rt::NamedTensors feeds{{"x", conv_input(cc.x)}};
    rt::Executor fused(m, {2}), unfused(m, unfused_options(1));
    require_same_outputs(fused.run(feeds), unfused.run(feeds));
}

TEST_CASE("a fused elementwise chain gives the unfused nodes' bytes at any size and thread count",
          "[runtime][fusion]") {
    const int64_t n = GENERATE(1, 3, 16, 511, 512, 513, 4099, 70001);
    INFO("n = " << n);
    Model m = chain_model(n);
    auto fusion = rt::fuse_elementwise_chains(m.graph, m.graph.nodes, 17);
    CHECK(fusion.chains == 1);
    CHECK(fusion.fused_nodes == 11);
    REQUIRE(fusion.nodes.size() == 1);
    CHECK(fusion.nodes[0].op_type == "ElementwiseChain");

    rt::NamedTensors feeds{{"x", chain_input(n)}};
    rt::Executor unfused(m, unfused_options(1));
    const auto want = unfused.run(feeds);
    // Not a vacuous comparison: x = +inf reaches HardSigmoid's 0 and gives 6 / 0 = inf.
    auto y = want.at(0).second.to_floats();
    if (n > 2) CHECK(std::isinf(y.at(2)));
    for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        rt::Executor fused(m, {threads});
        require_same_outputs(fused.run(feeds), want);
    }
}

TEST_CASE("a fused chain runs its nodes as written when a constant would broadcast the output",
          "[runtime][fusion]") {
    // s of shape [1, 1] makes x * s two-dimensional: the kernel cannot keep x's shape.
    Model m = chain_model(37, {1, 1});
    REQUIRE(rt::fuse_elementwise_chains(m.graph, m.graph.nodes, 17).chains == 1);
    rt::NamedTensors feeds{{"x", chain_input(37)}};
    rt::Executor fused(m, {2}), unfused(m, unfused_options(2));
    const auto got = fused.run(feeds);
    CHECK(got.at(0).second.shape == std::vector<int64_t>{1, 37});
    require_same_outputs(got, unfused.run(feeds));
}

TEST_CASE("a chain stops where an intermediate value is read elsewhere", "[runtime][fusion]") {
    Model m = chain_model(8);
    m.graph.outputs.push_back(test::value("c"));  // Clip's output is now a graph output
    auto fusion = rt::fuse_elementwise_chains(m.graph, m.graph.nodes, 17);
    // m1 -> a1 -> a2 -> c (c may end a chain), then d -> ... -> y (m2 reads a1 from outside).
    CHECK(fusion.removed_values.count("c") == 0);
    CHECK(fusion.removed_values.count("a1") == 0);
    rt::NamedTensors feeds{{"x", chain_input(8)}};
    rt::Executor fused(m, {1}), unfused(m, unfused_options(1));
    require_same_outputs(fused.run(feeds), unfused.run(feeds));
    // Fetching a fused-away value runs the unfused plan and still finds it.
    CHECK(fusion.removed_values.count("d") == 1);
    auto with_fetch = fused.run(feeds, {"d"});
    REQUIRE(with_fetch.size() == 3);
    CHECK(with_fetch[2].first == "d");
}

TEST_CASE("real models give the same bytes with fused elementwise chains on real data",
          "[runtime][fusion][real]") {
    struct RealCase {
        const char* label;
        fs::path model, data;
        size_t min_chains;
    };
    const fs::path data = test::source_dir() / ".cache" / "data";
    const fs::path ppocr = test::model_cache() / "ppocr";
    const std::vector<RealCase> cases{
        {"ppocr-rec", ppocr / "ch_PP-OCRv4_rec_infer.onnx", data / "ppocr-rec-eval" / "00000.npz",
         30},
        {"ppocr-cls", ppocr / "ch_ppocr_mobile_v2.0_cls_infer.onnx",
         data / "ppocr-cls-eval" / "00000.npz", 5},
        {"stories260k", test::shared_models() / "stories260k" / "model.onnx",
         data / "stories260k-eval.npy", 5},
        // Conv -> Relu twice: each Relu becomes its Conv's epilogue.
        {"mnist", test::shared_models() / "mnist" / "mnist-cnn.onnx",
         data / "mnist-test" / "batch_00.npz", 2},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.label) {
            EP_REQUIRE_FILE_OR_CONTINUE(c.model);
            EP_REQUIRE_FILE_OR_CONTINUE(c.data);
            Model m = load_model(c.model);
            const auto fusion = rt::fuse_elementwise_chains(m.graph, m.graph.nodes, m.opset(""));
            INFO(fusion.chains << " chains of " << fusion.fused_nodes << " nodes");
            CHECK(fusion.chains >= c.min_chains);
            rt::NamedTensors feeds;
            if (c.data.extension() == ".npz") {
                feeds = read_npz(c.data);
            } else {
                // Token ids [64, 64]: the first 32 of the first sequence.
                Tensor all = read_npy(c.data);
                REQUIRE(all.dtype == DType::I64);
                REQUIRE(all.element_count() >= 32);
                Tensor ids;
                ids.dtype = DType::I64;
                ids.shape = {1, 32};
                auto bytes = all.data.bytes();
                ids.data = TensorData::owned(
                    std::vector<std::byte>(bytes.begin(), bytes.begin() + 32 * 8));
                feeds = {{"input_ids", ids}};
            }
            rt::Executor unfused(m, unfused_options(1));
            const auto want = unfused.run(feeds);
            for (int threads : {1, 2}) {
                INFO("threads " << threads);
                rt::Executor fused(m, {threads});
                require_same_outputs(fused.run(feeds), want);
            }
        }
    }
}
