// SmoothQuant (passes/smooth_quant.h): the smoothed float model computes what the original
// did (within 1e-5 relative), the activations it smoothed have a smaller range, and each
// fold (LayerNormalization, Mul, MatMul / Gemm producer, inserted Mul) is chosen where the
// contract says.
#include <algorithm>
#include <cmath>

#include "calibration/calibration.h"
#include "compressor/calibration_data.h"
#include "formats/model_io.h"
#include "ir/error.h"
#include "pass_model.h"
#include "passes/smooth_quant.h"
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;
using namespace ep::test;
namespace fs = std::filesystem;

namespace {

// max |a - b| / max |a| over every output of every sample.
double max_relative_diff(const Model& a, const Model& b, const calib::SampleList& samples,
                         const calib::SampleList& samples_b) {
    rt::Executor ea(a, rt::ExecOptions{}), eb(b, rt::ExecOptions{});
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < samples.size(); ++i) {
        auto oa = ea.run(samples.load(i));
        auto ob = eb.run(samples_b.load(i));
        REQUIRE(oa.size() == ob.size());
        for (size_t o = 0; o < oa.size(); ++o) {
            auto va = oa[o].second.to_floats(), vb = ob[o].second.to_floats();
            REQUIRE(va.size() == vb.size());
            for (size_t j = 0; j < va.size(); ++j) {
                diff = std::max(diff, std::fabs(static_cast<double>(va[j]) - vb[j]));
                scale = std::max(scale, std::fabs(static_cast<double>(va[j])));
            }
        }
    }
    return diff / std::max(scale, 1e-30);
}

// max |x| of value `name` over the samples.
double value_absmax(const Model& m, const calib::SampleList& samples, const std::string& name) {
    rt::Executor e(m, rt::ExecOptions{});
    double amax = 0.0;
    for (size_t i = 0; i < samples.size(); ++i)
        for (const auto& [n, t] : e.run(samples.load(i), {name}))
            if (n == name)
                for (float v : t.to_floats())
                    amax = std::max(amax, std::fabs(static_cast<double>(v)));
    return amax;
}

Tensor channel_outliers(std::vector<int64_t> shape, uint32_t seed) {
    // Seeded normal values with channels 3 and 11 twenty times larger (the outlier
    // channels SmoothQuant is for); synthetic, not data.
    auto v = normal_values(static_cast<size_t>(shape[0] * shape[1]), seed);
    for (size_t r = 0; r < static_cast<size_t>(shape[0]); ++r)
        for (size_t c : {3, 11}) v[r * static_cast<size_t>(shape[1]) + c] *= 20.0f;
    return make_f32_tensor("x", std::move(shape), v);
}

void add_init(Graph& g, const std::string& name, std::vector<int64_t> shape, uint32_t seed,
              float offset = 0.0f) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    auto v = normal_values(n, seed, 0.5f);
    for (auto& x : v) x += offset;
    g.initializers.push_back(make_f32_tensor(name, std::move(shape), v));
}

// x [8, 16] -> LayerNormalization(ln) -> a -> MatMul q, MatMul k (shared a)
//   q -> Gemm(g0, transB=1, C) -> b -> Gemm(g1) -> c
//   c -> Mul(gain) -> d -> MatMul(m2) -> e ; e -> Relu -> r; e also read by MatMul(m3) -> out2
//   x -> MatMul(m0) (a graph input: inserted Mul)
Model fold_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    Graph& g = m.graph;
    g.inputs = {f32_value("x", {8, 16})};
    add_init(g, "ln.scale", {16}, 1, 1.0f);
    add_init(g, "ln.bias", {16}, 2);
    g.nodes.push_back(make_node("LayerNormalization", "ln", {"x", "ln.scale", "ln.bias"}, {"a"},
                                {int_attr("axis", -1)}));
    add_init(g, "Wq", {16, 16}, 3);
    add_init(g, "Wk", {16, 8}, 4);
    g.nodes.push_back(make_node("MatMul", "q", {"a", "Wq"}, {"aq"}));
    g.nodes.push_back(make_node("MatMul", "k", {"a", "Wk"}, {"ak"}));
    add_init(g, "W0", {16, 16}, 5);  // transB: [N=16, K=16]
    add_init(g, "C0", {16}, 6);
    g.nodes.push_back(make_node("Gemm", "g0", {"aq", "W0", "C0"}, {"b"}, {int_attr("transB", 1)}));
    add_init(g, "W1", {16, 12}, 7);
    g.nodes.push_back(make_node("Gemm", "g1", {"b", "W1"}, {"c"}));
    add_init(g, "gain", {1, 12}, 8, 1.0f);
    g.nodes.push_back(make_node("Mul", "mul", {"c", "gain"}, {"d"}));
    add_init(g, "W2", {12, 10}, 9);
    g.nodes.push_back(make_node("MatMul", "m2", {"d", "W2"}, {"e"}));
    g.nodes.push_back(make_node("Relu", "relu", {"e"}, {"r"}));
    add_init(g, "W3", {10, 6}, 10);
    g.nodes.push_back(make_node("MatMul", "m3", {"e", "W3"}, {"out2"}));
    add_init(g, "Wx", {16, 4}, 11);
    g.nodes.push_back(make_node("MatMul", "m0", {"x", "Wx"}, {"out0"}));
    g.outputs = {f32_value("ak", {8, 8}), f32_value("r", {8, 10}), f32_value("out2", {8, 6}),
                 f32_value("out0", {8, 4})};
    return m;
}

}  // namespace

TEST_CASE("smoothquant folds into LayerNormalization, Gemm, MatMul and Mul, else inserts a Mul",
          "[smoothquant]") {
    Model m = fold_model();
    std::vector<Tensor> xs;
    for (uint32_t s = 0; s < 4; ++s) xs.push_back(channel_outliers({8, 16}, 100 + s));
    MemoryData data(xs);
    SmoothQuantOptions options;
    auto plan = plan_smooth_quant(m, options);
    INFO(Catch::StringMaker<std::vector<std::string>>::convert(plan));
    const std::vector<std::string> expected_plan = {
        "smooth 'a' (16 channels) for MatMul 'q', 'k': fold into LayerNormalization 'ln'",
        "smooth 'aq' (16 channels) for Gemm 'g0': fold into MatMul 'q'",
        "smooth 'b' (16 channels) for Gemm 'g1': fold into Gemm 'g0'",
        "smooth 'd' (12 channels) for MatMul 'm2': fold into Mul 'mul'",
        "smooth 'e' (10 channels) for MatMul 'm3': insert Mul 'e_smooth' ('e' has other readers)",
        "smooth 'x' (16 channels) for MatMul 'm0': insert Mul 'x_smooth' ('x' has other readers)",
    };
    CHECK(plan == expected_plan);

    PassContext ctx;
    ctx.calibration = &data;
    Model s = m;
    SmoothQuantResult r = smooth_quant(s, options, ctx);
    REQUIRE(r.smoothed.size() == 6);
    CHECK(r.skipped.empty());
    CHECK(r.smoothed[0].folded_into == "folded into LayerNormalization 'ln'");
    CHECK(r.smoothed[4].folded_into == "inserted Mul 'e_smooth'");
    CHECK(s.graph.nodes.size() == m.graph.nodes.size() + 2);
    CHECK(verify(s).empty());

    MemorySamples samples(xs);
    const double rel = max_relative_diff(m, s, samples, samples);
    INFO("max relative difference " << rel);
    CHECK(rel <= 1e-5);
    // 'a' carries the input's outlier channels through LayerNormalization's scale: smoothing
    // narrows its range.
    CHECK(r.smoothed[0].max_after < r.smoothed[0].max_before);
    CHECK(value_absmax(s, samples, "a") == Approx(r.smoothed[0].max_after).epsilon(1e-5));
    CHECK(value_absmax(m, samples, "a") == Approx(r.smoothed[0].max_before).epsilon(1e-6));
}

TEST_CASE("smoothquant: what it cannot smooth is kept with a reason, bad options are exit 2",
          "[smoothquant]") {
    Model m = fold_model();
    // W2 also read by another node: 'm2' is kept. 'relu' is not a MatMul.
    m.graph.nodes.push_back(make_node("MatMul", "m4", {"r", "W2"}, {"out4"}));
    SmoothQuantOptions options;
    options.nodes = {"m2", "relu", "nope", "q"};
    auto plan = plan_smooth_quant(m, options);
    CHECK(plan == std::vector<std::string>{
                      "smooth 'a' (16 channels) for MatMul 'q': insert Mul 'a_smooth' ('a' has "
                      "other readers)",
                      "keep 'm2': smoothquant: weight 'W2' is read by 2 nodes",
                      "keep 'relu': smoothquant: not a MatMul or Gemm",
                      "keep 'nope': smoothquant: no node of this name"});
    PassContext ctx;
    Model s = m;
    CHECK_THROWS_WITH(smooth_quant(s, options, ctx),
                      "smooth_alpha: SmoothQuant needs calibration data (calibration.data) for the "
                      "per-channel activation maxima");
    options.alpha = 1.5;
    CHECK_THROWS_AS(smooth_quant(s, options, ctx), InputError);
    CHECK(s.graph.nodes.size() == m.graph.nodes.size());  // unchanged
}

TEST_CASE("smoothquant on stories260k: the same logits within 1e-5, narrower activations",
          "[smoothquant][real]") {
    const auto model_path = shared_models() / "stories260k" / "model.onnx";
    const auto calib_path = source_dir() / ".cache" / "data" / "stories260k-calib.npy";
    const auto eval_path = source_dir() / ".cache" / "data" / "stories260k-eval.npy";
    EP_REQUIRE_FILE_OR_SKIP(model_path);
    EP_REQUIRE_FILE_OR_SKIP(calib_path);
    EP_REQUIRE_FILE_OR_SKIP(eval_path);
    Model m = load_model(model_path);
    CalibrationConfig calib;
    calib.data = calib_path;
    calib.samples = 16;
    auto data = make_calibration_provider(calib, "test");
    PassContext ctx;
    ctx.calibration = data.get();
    Model s = m;
    SmoothQuantOptions options;
    SmoothQuantResult r = smooth_quant(s, options, ctx);
    // Per layer (5): attention_norm's and ffn_norm's Mul take the scales (q/k/v and w1/w3
    // share them); wo (after a Reshape) and w2 (after SiLU * w3) get an inserted Mul; the
    // lm_head reads the final norm's Mul. The attention MatMuls have no weights.
    size_t folded = 0, inserted = 0;
    for (const auto& a : r.smoothed) {
        INFO(a.activation << ": " << a.folded_into);
        (a.folded_into.rfind("folded into Mul", 0) == 0 ? folded : inserted) += 1;
    }
    CHECK(folded == 11);
    CHECK(inserted == 10);
    CHECK(r.skipped.size() == 10);  // QK^T and attention x V in each layer
    for (const auto& s : r.skipped) CHECK_THAT(s.reason, Catch::Contains("is not an initializer"));

    CalibrationConfig eval;
    eval.data = eval_path;
    eval.samples = 4;
    rt::Executor probe(m, rt::ExecOptions{});
    auto eval_data = make_calibration_provider(eval, "test");
    auto eval_samples = eval_data->open(probe);
    const double rel = max_relative_diff(m, s, *eval_samples, *eval_samples);
    INFO("max |logits difference| / max |logits| = " << rel);
    CHECK(rel <= 1e-5);

    // The ranges of the smoothed activations narrow: in total, and for the first layer's
    // attention input, measured on the model itself.
    double before = 0.0, after = 0.0;
    for (const auto& a : r.smoothed) {
        before += a.max_before;
        after += a.max_after;
    }
    INFO("sum of max |x| before " << before << ", after " << after);
    CHECK(after < before);
    auto calib_samples = data->open(probe);
    const std::string first = r.smoothed[0].activation;
    const double x_before = value_absmax(m, *calib_samples, first);
    const double x_after = value_absmax(s, *calib_samples, first);
    INFO(first << ": max |x| " << x_before << " -> " << x_after);
    CHECK(x_after < x_before);
    CHECK(x_after == Approx(r.smoothed[0].max_after).epsilon(1e-5));
}
