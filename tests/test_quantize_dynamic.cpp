// quantize-dynamic (passes/quantize_dynamic.cpp): the rewrite on a hand-made model (Conv with
// bias and padding, Gemm with transB / alpha / beta / C, two MatMuls sharing an activation, an
// activation x activation MatMul), every form written as .onnx and run in ONNX Runtime
// against our runtime, and the real models (stories260k, the MNIST CNN, the MiniLM encoder)
// through `edgepack compress` with their outputs run in ONNX Runtime.
//
// The hand-made model's weights and inputs are seeded random values: it tests the graph
// rewrite and the arithmetic, not accuracy (the real models do that, on real data).
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "ir/error.h"
#include "pass_model.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using nlohmann::json;
namespace fs = std::filesystem;
namespace test = ep::test;
using namespace ep;

namespace {

Tensor f32(std::string name, std::vector<int64_t> shape, uint32_t seed, float scale = 0.5f) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    return make_f32_tensor(std::move(name), std::move(shape), test::normal_values(n, seed, scale));
}

Tensor i64(std::string name, std::vector<int64_t> values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = DType::I64;
    t.shape = {static_cast<int64_t>(values.size())};
    std::vector<std::byte> b(values.size() * 8);
    std::memcpy(b.data(), values.data(), b.size());
    t.data = TensorData::owned(std::move(b));
    return t;
}

// x [2, 3, 6, 6] -> Conv "conv" (4 channels, 3x3, pads 1, bias) -> c -> Reshape [2, 144] -> r
//   -> Gemm "fc" (transB, alpha 0.5, beta 2, C [8]) -> f
//   -> MatMul "proj" (W [8, 5]) -> p;  MatMul "proj2" (W [8, 3]) -> q   (both read f)
//   -> MatMul "scores" (p, Transpose(p)) -> s                           (activation x activation)
Model small_model() {
    Model m;
    m.opset_imports.push_back({"", 13});
    m.graph.inputs.push_back(test::f32_value("x", {2, 3, 6, 6}));
    for (const char* y : {"p", "q", "s"}) m.graph.outputs.push_back(test::value(y));
    m.graph.initializers.push_back(f32("cw", {4, 3, 3, 3}, 1));
    m.graph.initializers.push_back(f32("cb", {4}, 2));
    m.graph.initializers.push_back(i64("shape", {2, 144}));
    m.graph.initializers.push_back(f32("gw", {8, 144}, 3, 0.1f));
    m.graph.initializers.push_back(f32("gc", {8}, 4));
    m.graph.initializers.push_back(f32("mw", {8, 5}, 5));
    m.graph.initializers.push_back(f32("mw2", {8, 3}, 6));
    Node conv = test::make_node("Conv", "conv", {"x", "cw", "cb"}, {"c"});
    conv.attributes.push_back(ints_attr("pads", {1, 1, 1, 1}));
    conv.attributes.push_back(ints_attr("kernel_shape", {3, 3}));
    m.graph.nodes.push_back(std::move(conv));
    m.graph.nodes.push_back(test::make_node("Reshape", "reshape", {"c", "shape"}, {"r"}));
    Node fc = test::make_node("Gemm", "fc", {"r", "gw", "gc"}, {"f"});
    fc.attributes.push_back(int_attr("transB", 1));
    fc.attributes.push_back(float_attr("alpha", 0.5f));
    fc.attributes.push_back(float_attr("beta", 2.0f));
    m.graph.nodes.push_back(std::move(fc));
    m.graph.nodes.push_back(test::make_node("MatMul", "proj", {"f", "mw"}, {"p"}));
    m.graph.nodes.push_back(test::make_node("MatMul", "proj2", {"f", "mw2"}, {"q"}));
    m.graph.nodes.push_back(test::make_node("Transpose", "pt", {"p"}, {"pT"}));
    m.graph.nodes.push_back(test::make_node("MatMul", "scores", {"p", "pT"}, {"s"}));
    return m;
}

rt::NamedTensors run_model(const Model& m, const Tensor& x, int threads = 1) {
    rt::Executor exec(m, rt::ExecOptions{threads});
    rt::NamedTensors feeds;
    feeds.push_back({"x", x});
    return exec.run(feeds);
}

const Tensor& output(const rt::NamedTensors& outs, const std::string& name) {
    for (const auto& [n, t] : outs)
        if (n == name) return t;
    FAIL("no output " << name);
    throw;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

const Node* node_named(const Model& m, const std::string& name) {
    for (const auto& n : m.graph.nodes)
        if (n.name == name) return &n;
    return nullptr;
}

}  // namespace

TEST_CASE("quantize-dynamic integer form: DynamicQuantizeLinear + MatMulInteger/ConvInteger",
          "[quantize-dynamic]") {
    Model m = small_model();
    const Model before = m;
    auto r = test::run_pass("quantize-dynamic", m);
    INFO(test::skips_text(r) << dump_graph(m));
    CHECK(verify(m).empty());
    CHECK(r.rewrites == 4);
    CHECK(r.quantized_nodes == std::vector<std::string>{"conv", "fc", "proj", "proj2"});
    CHECK(test::has_skip(r, "scores", "not a constant initializer"));
    // One DynamicQuantizeLinear per activation: x, r, and f (shared by proj and proj2).
    CHECK(test::count_nodes(m, "DynamicQuantizeLinear") == 3);
    CHECK(test::count_nodes(m, "MatMulInteger") == 3);
    CHECK(test::count_nodes(m, "ConvInteger") == 1);
    CHECK(test::count_nodes(m, "MatMul") == 1);  // scores stays float
    // The quantized node keeps its name; the float weights are gone.
    REQUIRE(node_named(m, "fc") != nullptr);
    CHECK(node_named(m, "fc")->op_type == "MatMulInteger");
    CHECK(node_named(m, "conv")->op_type == "ConvInteger");
    CHECK(m.graph.find_initializer("mw") == nullptr);
    CHECK(m.graph.find_initializer("x_quantized") == nullptr);  // a value, not a tensor
    // ConvInteger's weight zero point is one scalar (ONNX Runtime refuses per channel).
    const Tensor* czp = m.graph.find_initializer("cw_zero_point");
    REQUIRE(czp != nullptr);
    CHECK(czp->shape.empty());
    CHECK(m.graph.find_initializer("cw_scale")->shape == std::vector<int64_t>{4, 1, 1});

    // proj's codes: d[c] = max|W[:, c]| / 127, q = round(W / d).
    const auto w = before.graph.find_initializer("mw")->to_floats();
    const Tensor* q = m.graph.find_initializer("mw_quantized");
    REQUIRE(q != nullptr);
    CHECK(q->dtype == DType::I8);
    const auto scales = m.graph.find_initializer("mw_scale")->to_floats();
    REQUIRE(scales.size() == 5);
    for (size_t c = 0; c < 5; ++c) {
        float amax = 0;
        for (size_t k = 0; k < 8; ++k) amax = std::max(amax, std::fabs(w[k * 5 + c]));
        CHECK(scales[c] == Approx(amax / 127).epsilon(1e-6));
        for (size_t k = 0; k < 8; ++k)
            CHECK(int(q->values<int8_t>()[k * 5 + c]) ==
                  int(std::round(w[k * 5 + c] / (amax / 127))));
    }
    // Gemm with transB: codes as [K, N], alpha folded into the scale.
    const Tensor* gq = m.graph.find_initializer("gw_transposed_alpha_quantized");
    REQUIRE(gq != nullptr);
    CHECK(gq->shape == std::vector<int64_t>{144, 8});

    // Same outputs as the float model within int8 error, for any thread count.
    const Tensor x = f32("x", {2, 3, 6, 6}, 9, 1.0f);
    const auto ref = run_model(before, x);
    const auto got1 = run_model(m, x, 1);
    const auto got2 = run_model(m, x, 2);
    for (const char* y : {"p", "q", "s"}) {
        INFO(y);
        CHECK(cosine(output(ref, y).to_floats(), output(got1, y).to_floats()) > 0.999);
        CHECK(output(got1, y).to_floats() == output(got2, y).to_floats());
    }
}

TEST_CASE("quantize-dynamic qdq form keeps the float ops behind DequantizeLinear",
          "[quantize-dynamic]") {
    Model m = small_model();
    const Model before = m;
    auto r = test::run_pass("quantize-dynamic", m, {{"format", "qdq"}});
    INFO(test::skips_text(r) << dump_graph(m));
    CHECK(verify(m).empty());
    CHECK(r.rewrites == 4);
    CHECK(test::count_nodes(m, "DynamicQuantizeLinear") == 3);
    CHECK(test::count_nodes(m, "DequantizeLinear") == 3 + 4);  // activations + weights
    CHECK(test::count_nodes(m, "Gemm") == 1);
    CHECK(test::count_nodes(m, "Conv") == 1);
    CHECK(test::count_nodes(m, "MatMul") == 3);
    CHECK(node_named(m, "fc")->inputs[1] == "gw_DequantizeLinear_Output");
    CHECK(node_named(m, "gw_DequantizeLinear")->attr_int("axis", -1) == 0);  // transB
    CHECK(node_named(m, "mw_DequantizeLinear")->attr_int("axis", -1) == 1);
    const Tensor x = f32("x", {2, 3, 6, 6}, 9, 1.0f);
    const auto ref = run_model(before, x);
    const auto got = run_model(m, x);
    for (const char* y : {"p", "q", "s"})
        CHECK(cosine(output(ref, y).to_floats(), output(got, y).to_floats()) > 0.999);
}

TEST_CASE("quantize-dynamic selection: include/exclude, op_types, keep_float, reasons",
          "[quantize-dynamic]") {
    SECTION("exclude and op_types") {
        Model m = small_model();
        auto r = test::run_pass("quantize-dynamic", m,
                                {{"exclude", {"proj2"}}, {"op_types", {"MatMul", "Gemm"}}});
        CHECK(r.quantized_nodes == std::vector<std::string>{"fc", "proj"});
        CHECK(test::has_skip(r, "proj2", "not selected by include/exclude"));
        CHECK(test::count_nodes(m, "Conv") == 1);
        CHECK(m.graph.find_initializer("mw2") != nullptr);
    }
    SECTION("keep_float: the fallback's hook") {
        Model m = small_model();
        auto pass = test::configured_pass("quantize-dynamic");
        REQUIRE(pass->can_keep_float());
        pass->keep_float({"fc", "conv"});
        PassContext ctx;
        auto r = pass->run(m, ctx);
        CHECK(r.quantized_nodes == std::vector<std::string>{"proj", "proj2"});
        CHECK(test::has_skip(r, "fc", "accuracy-aware fallback"));
        CHECK(node_named(m, "fc")->op_type == "Gemm");
    }
    SECTION("the plan names every decision and changes nothing") {
        Model m = small_model();
        const std::string fp = test::fingerprint(m);
        auto pass = test::configured_pass("quantize-dynamic");
        auto lines = pass->plan(m);
        CHECK(test::fingerprint(m) == fp);
        REQUIRE(lines.size() == 5);
        CHECK_THAT(lines[0], Catch::Contains("Conv 'conv'") && Catch::Contains("ConvInteger"));
        CHECK_THAT(lines[4], Catch::StartsWith("keep 'scores': input B 'pT' is not a constant"));
    }
    SECTION("bad options are InputErrors naming the option") {
        auto pass = create_pass("quantize-dynamic");
        CHECK_THROWS_WITH(pass->configure({{"op_types", {"Relu"}}}),
                          Catch::Contains("op_types: 'Relu' is not supported"));
    }
    SECTION("qdq per channel on an opset-11 model is refused before anything changes") {
        Model m = small_model();
        m.opset_imports = {{"", 11}};
        const std::string fp = test::fingerprint(m);
        auto pass = test::configured_pass("quantize-dynamic", {{"format", "qdq"}});
        CHECK_THROWS_AS(pass->plan(m), InputError);
        PassContext ctx;
        CHECK_THROWS_WITH(pass->run(m, ctx),
                          Catch::Contains("opset 11") && Catch::Contains("per_channel"));
        CHECK(test::fingerprint(m) == fp);
    }
}

TEST_CASE("quantize-dynamic: every form it writes loads and runs in ONNX Runtime",
          "[quantize-dynamic][xcheck]") {
    // The integer forms include ConvInteger with int8 and with uint8 weights; ONNX Runtime
    // runs ConvInteger only with a scalar weight zero point.
    const auto format = GENERATE(as<std::string>{}, "integer", "qdq");
    const auto weight_type = GENERATE(as<std::string>{}, "int8", "uint8");
    const bool per_channel = GENERATE(true, false);
    INFO(format << " " << weight_type << (per_channel ? " per channel" : " per tensor"));
    Model m = small_model();
    (void)test::run_pass(
        "quantize-dynamic", m,
        {{"format", format}, {"weight_type", weight_type}, {"per_channel", per_channel}});
    test::TempDir dir;
    save_model(m, dir / "q.onnx");
    const Tensor x = f32("x", {2, 3, 6, 6}, 9, 1.0f);
    write_npy(x, dir / "x.npy");
    fs::create_directories(dir / "ref");
    for (const auto& [name, t] : run_model(m, x)) write_npy(t, dir / "ref" / (name + ".npy"));
    auto r = test::run_oracle("ort_quant_compare.py", {(dir / "q.onnx").string(), "--input",
                                                       "x=" + (dir / "x.npy").string(), "--ref",
                                                       (dir / "ref").string(), "--tol", "1e-5"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
}

namespace {

struct RealCase {
    const char* label;
    fs::path model;
    json passes;
    fs::path data;        // what ort_dynamic_check.py and `edgepack run` read
    const char* classes;  // logits compared by KL, or ""
};

// `c` through `edgepack compress` to .onnx, that file loaded and run in ONNX Runtime on the
// real data, next to the float model and our runtime's outputs of the same file.
json compress_and_check_in_ort(const RealCase& c, const test::TempDir& dir) {
    const json recipe = {
        {"model", c.model.string()}, {"passes", c.passes}, {"output", (dir / "q.onnx").string()}};
    test::write_file(dir / "recipe.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "recipe.json").string(), "-q"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto run = test::run_edgepack({"run", (dir / "q.onnx").string(), "--data", c.data.string(),
                                   "--out", (dir / "ours").string(), "-q"});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    std::vector<std::string> args{
        c.model.string(), (dir / "q.onnx").string(), "--data", c.data.string(),
        "--ours",         (dir / "ours").string(),   "--json"};
    if (*c.classes) args.insert(args.end(), {"--classes", c.classes});
    auto o = test::run_oracle("ort_dynamic_check.py", args);
    INFO(o.out << o.err);
    REQUIRE(o.exit_code == 0);  // loaded and ran in ONNX Runtime
    return json::parse(o.out)["models"]["edgepack"];
}

}  // namespace

TEST_CASE("quantize-dynamic on stories260k: the .onnx runs in ONNX Runtime, KL as in our runtime",
          "[quantize-dynamic][xcheck][real]") {
    const auto model = test::shared_models() / "stories260k" / "model.onnx";
    const auto data = test::source_dir() / ".cache" / "data" / "stories260k-eval.npy";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(data);
    test::TempDir dir;
    // 16 of the 64 evaluation sequences.
    auto sliced =
        test::run_oracle("slice_data.py", {data.string(), (dir / "eval.npy").string(), "16"});
    REQUIRE(sliced.exit_code == 0);
    const json e = compress_and_check_in_ort(
        {"stories260k", model, json::array({{{"pass", "quantize-dynamic"}}}), dir / "eval.npy",
         "logits"},
        dir);
    INFO(e.dump(1));
    CHECK(e["ops"]["MatMulInteger"] == 36);
    CHECK(e["ops"]["DynamicQuantizeLinear"] == 21);
    CHECK(e["outputs"]["logits"]["kl_mean"].get<double>() < 0.2);
    CHECK(e["outputs"]["logits"]["top1_agreement"].get<double>() > 65);
    CHECK(e["ort_vs_edgepack_max_abs_diff"]["logits"].get<double>() < 1.0);
}

TEST_CASE("quantize-dynamic on the MNIST CNN: ConvInteger and Gemm run in ONNX Runtime",
          "[quantize-dynamic][xcheck][real]") {
    const auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    const auto data = test::source_dir() / ".cache" / "data" / "mnist-test";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(data);
    test::TempDir dir;
    auto sliced = test::run_oracle("slice_data.py", {data.string(), (dir / "eval").string(), "1"});
    REQUIRE(sliced.exit_code == 0);
    for (const char* weight_type : {"int8", "uint8"}) {
        DYNAMIC_SECTION(weight_type) {
            test::TempDir out;
            const json e = compress_and_check_in_ort(
                {"mnist", model,
                 json::array({{{"pass", "quantize-dynamic"}, {"weight_type", weight_type}}}),
                 dir / "eval", "output"},
                out);
            INFO(e.dump(1));
            CHECK(e["ops"]["ConvInteger"] == 2);
            CHECK(e["ops"]["MatMulInteger"] == 2);
            CHECK(e["outputs"]["output"]["top1_agreement"].get<double>() >= 99.5);
            CHECK(e["ort_vs_edgepack_max_abs_diff"]["output"].get<double>() < 0.05);
        }
    }
}

TEST_CASE("quantize-dynamic on the MiniLM sentence encoder: runs in ONNX Runtime, cosine kept",
          "[quantize-dynamic][xcheck][real]") {
    const auto model = test::model_cache() / "minilm" / "paraphrase-MiniLM-L3-v2.onnx";
    const auto data = test::source_dir() / ".cache" / "data" / "minilm-eval";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(data);
    test::TempDir dir;
    // 4 batches of 4 sentences.
    auto sliced = test::run_oracle("slice_data.py", {data.string(), (dir / "eval").string(), "4"});
    REQUIRE(sliced.exit_code == 0);
    const json e = compress_and_check_in_ort(
        {"minilm", model, json::array({{{"pass", "quantize-dynamic"}}}), dir / "eval", ""}, dir);
    INFO(e.dump(1));
    CHECK(e["ops"]["MatMulInteger"] == 18);
    CHECK(e["ops"]["MatMul"] == 6);  // the attention products stay float
    CHECK(e["outputs"]["461"]["cosine_min"].get<double>() > 0.99);
    CHECK(e["ort_vs_edgepack_max_abs_diff"]["461"].get<double>() < 0.1);
}

TEST_CASE("quantize-dynamic: bad options and an opset the form cannot use are exit 2, no output",
          "[quantize-dynamic][cli]") {
    const auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";  // opset 11
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    const auto out = dir / "q.onnx";
    struct Case {
        json pass;
        const char* message;
    };
    const Case cases[] = {
        {{{"pass", "quantize-dynamic"}, {"format", "qdq"}},
         "opset 11; format qdq with per_channel needs opset 13"},
        {{{"pass", "quantize-dynamic"}, {"op_types", {"MatMul", "Relu"}}},
         "op_types: 'Relu' is not supported (expected MatMul, Gemm or Conv)"},
        {{{"pass", "quantize-dynamic"}, {"weight_type", "int4"}},
         "passes[0].weight_type: 'int4' is not one of"},
    };
    for (const auto& c : cases) {
        const json recipe = {
            {"model", model.string()}, {"passes", json::array({c.pass})}, {"output", out.string()}};
        test::write_file(dir / "r.json", recipe.dump());
        for (const bool dry : {false, true}) {
            INFO(c.pass.dump() << (dry ? " --dry-run" : ""));
            std::vector<std::string> args{"compress", (dir / "r.json").string()};
            if (dry) args.push_back("--dry-run");
            auto r = test::run_edgepack(args);
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err, Catch::Contains(c.message));
            CHECK_FALSE(fs::exists(out));
        }
    }
}
