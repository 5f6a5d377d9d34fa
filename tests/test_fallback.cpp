// The accuracy-aware fallback (compressor/fallback.h): the loop, its ranking and its report,
// driven in process through a small fake pass that can keep nodes in float; the recipe's
// "fallback" section and its exit-2 checks. The end-to-end test on a real model with real
// data and the real quantize-static pass is in test_fallback_static.cpp.
#include <cmath>
#include <sstream>

#include "calibration/calibration.h"
#include "compressor/fallback.h"
#include "compressor/recipe.h"
#include "compressor/report_render.h"
#include "ir/error.h"
#include "pass_model.h"
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

// Quantizes the weight of every Gemm it is told about to int8 with `levels` levels each side
// (W_quantized int8, W_scale, a DequantizeLinear feeding the Gemm, as QDQ weights read), and
// leaves those in keep_float() as they are: the smallest pass the fallback can drive.
class FakeKeepFloatPass final : public Pass {
  public:
    explicit FakeKeepFloatPass(std::map<std::string, int> levels) : levels_(std::move(levels)) {}
    std::string_view name() const override { return "fake-keep-float"; }
    PassKind kind() const override { return PassKind::Quantization; }
    std::string_view description() const override { return "test: int8 Gemm weights"; }
    std::vector<std::string> plan(const Model&) const override { return {}; }
    bool can_keep_float() const override { return true; }
    void keep_float(const std::vector<std::string>& names) override { keep_ = names; }
    size_t runs = 0;

    PassResult run(Model& model, PassContext&) override {
        ++runs;
        PassResult r;
        std::vector<Node> added;
        for (auto& n : model.graph.nodes) {
            auto it = levels_.find(n.name);
            if (n.op_type != "Gemm" || it == levels_.end()) continue;
            if (std::find(keep_.begin(), keep_.end(), n.name) != keep_.end()) {
                r.skipped.push_back({n.name, "kept in float (fallback)"});
                continue;
            }
            const Tensor* w = model.graph.find_initializer(n.inputs[1]);
            REQUIRE(w);
            const std::vector<float> v = w->to_floats();
            float max = 0;
            for (float x : v) max = std::max(max, std::fabs(x));
            const float scale = max / static_cast<float>(it->second);
            Tensor q;
            q.name = n.inputs[1] + "_quantized";
            q.dtype = DType::I8;
            q.shape = w->shape;
            std::vector<std::byte> bytes(v.size());
            for (size_t i = 0; i < v.size(); ++i)
                bytes[i] = static_cast<std::byte>(static_cast<int8_t>(std::lround(v[i] / scale)));
            q.data = TensorData::owned(std::move(bytes));
            model.graph.initializers.push_back(std::move(q));
            model.graph.initializers.push_back(
                make_f32_tensor(n.inputs[1] + "_scale", {}, {&scale, 1}));
            const std::string deq = n.inputs[1] + "_DequantizeLinear_Output";
            added.push_back(test::make_node("DequantizeLinear", n.inputs[1] + "_DequantizeLinear",
                                            {n.inputs[1] + "_quantized", n.inputs[1] + "_scale"},
                                            {deq}));
            std::erase_if(model.graph.initializers,
                          [&](const Tensor& t) { return t.name == n.inputs[1]; });
            n.inputs[1] = deq;
            r.quantized_nodes.push_back(n.name);
            ++r.rewrites;
        }
        model.graph.nodes.insert(model.graph.nodes.begin(), added.begin(), added.end());
        r.changed = r.rewrites > 0;
        return r;
    }

  private:
    std::map<std::string, int> levels_;
    std::vector<std::string> keep_;
};

// x [1, 16] -> fc1 -> Relu -> fc2 -> Relu -> fc3 -> y [1, 10]; weights seeded normal.
Model chain_model() {
    Model m;
    m.opset_imports.push_back({"", 13});
    m.graph.inputs.push_back(test::f32_value("x", {1, 16}));
    m.graph.outputs.push_back(test::f32_value("y", {1, 10}));
    const std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> layers{
        {"fc1", {16, 16}}, {"fc2", {16, 16}}, {"fc3", {16, 10}}};
    std::string in = "x";
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto& [name, dims] = layers[i];
        m.graph.initializers.push_back(make_f32_tensor(
            name + ".w", {dims.first, dims.second},
            test::normal_values(static_cast<size_t>(dims.first * dims.second), 40 + i, 0.3f)));
        const std::string out = i + 1 == layers.size() ? "y" : name + "_out";
        m.graph.nodes.push_back(test::make_node("Gemm", name, {in, name + ".w"}, {out}));
        if (i + 1 < layers.size()) {
            m.graph.nodes.push_back(test::make_node("Relu", name + "_relu", {out}, {out + "_r"}));
            in = out + "_r";
        }
    }
    return m;
}

// Seeded normal inputs: the loop's mechanism is under test here, not a model's accuracy
// (test_fallback_static.cpp runs on real data).
std::vector<Tensor> samples(size_t n, uint32_t seed) {
    std::vector<Tensor> out;
    for (size_t i = 0; i < n; ++i)
        out.push_back(make_f32_tensor("x", {1, 16}, test::normal_values(16, seed + i)));
    return out;
}

// The output's SQNR against the float model on `validation` (report metric sqnr_db).
double output_sqnr(const Model& reference, const Model& candidate,
                   const std::vector<Tensor>& validation) {
    rt::Executor ref(reference, {}), cand(candidate, {});
    double signal = 0, noise = 0;
    for (const auto& x : validation) {
        auto a = ref.run({{"x", x}}).at(0).second.to_floats();
        auto b = cand.run({{"x", x}}).at(0).second.to_floats();
        for (size_t i = 0; i < a.size(); ++i) {
            signal += double(a[i]) * a[i];
            noise += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        }
    }
    return 10 * std::log10(signal / noise);
}

struct Fixture {
    Model original = chain_model();
    test::MemoryData calibration{samples(8, 100), "seeded samples"};
    std::vector<Tensor> validation = samples(16, 500);
    FakeKeepFloatPass* fake = nullptr;
    PassManager manager;
    std::ostringstream log;

    explicit Fixture(std::map<std::string, int> levels) {
        auto pass = std::make_unique<FakeKeepFloatPass>(std::move(levels));
        fake = pass.get();
        manager.add("passes[0]", std::move(pass));
    }
    FallbackRun run(Model& model, double min_sqnr_db, uint64_t max_nodes, FallbackRank rank) {
        FallbackSetup setup;
        setup.config.max_nodes = max_nodes;
        setup.config.rank = rank;
        setup.config.pass_index = 0;
        setup.gates = {{"min_sqnr_db", min_sqnr_db}, {"max_output_bytes", 1e9}};
        setup.ranking_data = &calibration;
        setup.measure = [this](const Model& candidate) {
            return json{{"sqnr_db", output_sqnr(original, candidate, validation)}};
        };
        return run_with_fallback(manager, model, PassManagerOptions{}, log, setup, nullptr);
    }
};

bool reads_float_weight(const Model& m, const std::string& node) {
    for (const auto& n : m.graph.nodes)
        if (n.name == node) return m.graph.find_initializer(n.inputs[1]) != nullptr;
    return false;
}

}  // namespace

TEST_CASE("fallback: the coarsest node goes back to float first and the gate then holds",
          "[fallback]") {
    // fc3 is quantized with 3 levels a side, fc1 and fc2 with 127: fc3 has the lowest SQNR.
    Fixture f({{"fc1", 127}, {"fc2", 127}, {"fc3", 3}});
    Model model = f.original;
    // Every node quantized: how far the gate is missed.
    Model all = f.original;
    {
        PassContext ctx;
        FakeKeepFloatPass probe({{"fc1", 127}, {"fc2", 127}, {"fc3", 3}});
        (void)probe.run(all, ctx);
    }
    const double sqnr_all = output_sqnr(f.original, all, f.validation);
    REQUIRE(sqnr_all < 25.0);

    FallbackRun r = f.run(model, 25.0, 8, FallbackRank::Sqnr);
    INFO(f.log.str() << r.report.dump(2));
    const json& rep = r.report;
    CHECK(rep["outcome"] == "gates hold");
    CHECK(rep["held"] == true);
    CHECK(rep["candidates"] == 3);
    CHECK(rep["gates"] == json{"min_sqnr_db"});
    CHECK(rep["not_judged"] == json{"max_output_bytes"});
    CHECK(rep["ranked_on"] == "8 seeded samples");
    REQUIRE(rep["ranking"].size() == 3);
    CHECK(rep["ranking"][0]["node"] == "fc3");
    CHECK(rep["ranking"][0]["op_type"] == "Gemm");
    REQUIRE(rep["returned"].size() == 1);
    const json& step = rep["returned"][0];
    CHECK(step["node"] == "fc3");
    CHECK(step["rank"] == 1);
    // fc3.w [16, 10] back to f32 (640 bytes) instead of int8 (160) and its f32 scale (4).
    CHECK(step["cost_bytes"] == 640 - 160 - 4);
    CHECK(step["bytes_after"].get<int64_t>() - step["bytes_before"].get<int64_t>() == 476);
    CHECK(step["metrics_before"]["sqnr_db"].get<double>() == Approx(sqnr_all));
    const double after = step["metrics_after"]["sqnr_db"].get<double>();
    CHECK(after >= 25.0);
    CHECK(step["gain"]["sqnr_db"].get<double>() == Approx(after - sqnr_all));
    CHECK(step["gates_held"] == true);
    CHECK(rep["initial"]["gates"][0]["passed"] == false);
    CHECK(rep["final"]["gates"][0]["passed"] == true);
    // The model left is the one judged: fc3 reads its float weight, fc1 and fc2 int8.
    CHECK(reads_float_weight(model, "fc3"));
    CHECK(!reads_float_weight(model, "fc1"));
    CHECK(!reads_float_weight(model, "fc2"));
    CHECK(output_sqnr(f.original, model, f.validation) == Approx(after));
    // The pass ran on the model before it twice: once, then with fc3 kept in float.
    CHECK(f.fake->runs == 2);
    CHECK(rep["pass_runs"] == 2);
    CHECK(rep["evaluations"] == 2);
    // Its record is the last run's, and says what went back.
    REQUIRE(r.records.size() == 1);
    CHECK(test::has_skip(r.records[0].result, "fc3", "kept in float"));
    CHECK(r.records[0].result.quantized_nodes == std::vector<std::string>{"fc1", "fc2"});
    CHECK(r.records[0].result.summary.back() == "fallback: 1 node returned to float: fc3");
    CHECK(f.log.str().find("fc3 (Gemm, SQNR") != std::string::npos);
    // report.md says which node went back, what it cost and what it gained.
    const std::string md = render_report_markdown(json{{"fallback", rep}});
    INFO(md);
    CHECK(md.find("Accuracy-aware fallback") != std::string::npos);
    CHECK(md.find("1 of 3 quantized nodes went back to float, ranked by sqnr on 8 seeded "
                  "samples; the gates now hold") != std::string::npos);
    CHECK(md.find("| fc3 | Gemm |") != std::string::npos);
    CHECK(md.find("+476") != std::string::npos);
    CHECK(md.find("Not judged while nodes went back to float (judged on the written output): "
                  "max_output_bytes") != std::string::npos);
}

TEST_CASE("fallback: a gate that already holds runs the pass once and returns nothing",
          "[fallback]") {
    Fixture f({{"fc1", 127}, {"fc2", 127}, {"fc3", 127}});
    Model model = f.original;
    FallbackRun r = f.run(model, 10.0, 8, FallbackRank::Sqnr);
    CHECK(r.report["outcome"] == "not needed");
    CHECK(r.report["returned"].empty());
    CHECK(r.report["ranking"].empty());
    CHECK(r.report["ranked_on"].is_null());
    CHECK(f.fake->runs == 1);
    CHECK(!reads_float_weight(model, "fc1"));
    CHECK(!reads_float_weight(model, "fc3"));
}

TEST_CASE("fallback: an unreachable gate spends the budget, one node at a time, and says so",
          "[fallback]") {
    Fixture f({{"fc1", 3}, {"fc2", 3}, {"fc3", 3}});
    Model model = f.original;
    FallbackRun r = f.run(model, 300.0, 2, FallbackRank::Sqnr);
    const json& rep = r.report;
    CHECK(rep["outcome"] == "budget spent");
    CHECK(rep["held"] == false);
    REQUIRE(rep["returned"].size() == 2);
    // Each step starts from the metrics the one before ended with.
    CHECK(rep["returned"][1]["metrics_before"] == rep["returned"][0]["metrics_after"]);
    CHECK(rep["final"]["metrics"] == rep["returned"][1]["metrics_after"]);
    // The two returned are the two lowest-SQNR nodes of the ranking, in its order.
    CHECK(rep["returned"][0]["node"] == rep["ranking"][0]["node"]);
    CHECK(rep["returned"][1]["node"] == rep["ranking"][1]["node"]);
    CHECK(rep["ranking"][0]["score"].get<double>() <= rep["ranking"][1]["score"].get<double>());
    CHECK(rep["ranking"][1]["score"].get<double>() <= rep["ranking"][2]["score"].get<double>());
    size_t in_float = 0;
    for (const char* n : {"fc1", "fc2", "fc3"}) in_float += reads_float_weight(model, n);
    CHECK(in_float == 2);
    CHECK(f.log.str().find("budget spent after 2 nodes back to float") != std::string::npos);
}

TEST_CASE("fallback: ablation ranks the node that hurts the output most first", "[fallback]") {
    // fc1 is coarse: its error reaches every later node, so by per-node SQNR fc2 and fc3
    // look as bad; with fc1 alone in float the output gains the most.
    Fixture f({{"fc1", 2}, {"fc2", 127}, {"fc3", 127}});
    Model model = f.original;
    FallbackRun r = f.run(model, 25.0, 3, FallbackRank::Ablation);
    INFO(f.log.str() << r.report.dump(2));
    const json& rep = r.report;
    CHECK(rep["rank"] == "ablation");
    REQUIRE(rep["ranking"].size() == 3);
    CHECK(rep["ranking"][0]["node"] == "fc1");
    CHECK(rep["ranking"][0]["score"].get<double>() > rep["ranking"][1]["score"].get<double>());
    REQUIRE(rep["returned"].size() == 1);
    CHECK(rep["returned"][0]["node"] == "fc1");
    CHECK(rep["outcome"] == "gates hold");
    // One run, one per candidate for the ablation, one for the step.
    CHECK(f.fake->runs == 1 + 3 + 1);
    CHECK(reads_float_weight(model, "fc1"));
    CHECK(!reads_float_weight(model, "fc2"));
}

TEST_CASE("fallback: the same run twice gives the same report and the same model", "[fallback]") {
    auto once = [](int threads) {
        Fixture f({{"fc1", 4}, {"fc2", 5}, {"fc3", 3}});
        Model model = f.original;
        PassManagerOptions options;
        options.context.threads = threads;
        FallbackSetup setup;
        setup.config.max_nodes = 3;
        setup.gates = {{"min_sqnr_db", 40.0}};
        setup.ranking_data = &f.calibration;
        setup.measure = [&](const Model& c) {
            return json{{"sqnr_db", output_sqnr(f.original, c, f.validation)}};
        };
        FallbackRun r = run_with_fallback(f.manager, model, options, f.log, setup, nullptr);
        return std::make_pair(r.report.dump(), test::fingerprint(model));
    };
    const auto a = once(1), b = once(2);
    CHECK(a.first == b.first);
    CHECK(a.second == b.second);
}

namespace {

struct RecipeDir {
    test::TempDir dir;
    RecipeDir() {
        test::write_file(dir / "m.onnx", "not parsed by the recipe loader");
        std::filesystem::create_directories(dir / "calib");
    }
    std::string error(const std::string& text) const {
        try {
            (void)parse_recipe(text, "recipe.json", dir.path());
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::BadInput);
            return e.what();
        }
        return "(no error)";
    }
};

// A recipe with a fallback section (FALLBACK) and a pass list (PASSES).
std::string recipe(const std::string& fallback, const std::string& passes,
                   const std::string& rest = R"("validate": {"samples": 2},
  "gates": {"max_kl_mean": 0.01}, "calibration": {"data": "calib"})") {
    return R"({"model": "m.onnx", "output": "o.epk", "passes": )" + passes + ", " + rest +
           R"(, "fallback": )" + fallback + "}";
}

}  // namespace

TEST_CASE("fallback: bad fallback fields are exit 2 naming the field", "[fallback][recipe]") {
    RecipeDir d;
    const std::string weights = R"([{"pass": "quantize-weights"}])";
    // No registered pass can keep nodes in float yet besides the activation quantizers; a
    // recipe whose passes cannot is refused whatever else it says.
    CHECK_THAT(d.error(recipe("{}", weights)),
               Catch::Contains("recipe.json: fallback: no pass of the recipe can keep nodes in "
                               "float"));
    CHECK_THAT(d.error(recipe(R"({"max_nodes": 0})", weights)),
               Catch::Contains("fallback.max_nodes: 0 is below the minimum 1"));
    CHECK_THAT(d.error(recipe(R"({"max_nodes": 2.5})", weights)),
               Catch::Contains("fallback.max_nodes: expected an integer"));
    CHECK_THAT(d.error(recipe(R"({"rank": "sqrn"})", weights)),
               Catch::Contains("fallback.rank: 'sqrn' is not one of sqnr, ablation; did you "
                               "mean sqnr?"));
    CHECK_THAT(d.error(recipe(R"({"max_node": 2})", weights)),
               Catch::Contains("fallback.max_node: unknown key; did you mean max_nodes?"));
    CHECK_THAT(d.error(recipe(R"([1])", weights)), Catch::Contains("fallback: expected an object"));
    CHECK_THAT(d.error(recipe(R"({"pass": "passes[3]"})", weights)),
               Catch::Contains("fallback.pass: 'passes[3]' is no pass of this recipe"));
    CHECK_THAT(d.error(recipe(R"({"pass": "quantize-weight"})", weights)),
               Catch::Contains("did you mean quantize-weights?"));
    CHECK_THAT(d.error(recipe(R"({"pass": "passes[0]"})", weights)),
               Catch::Contains("fallback.pass: passes[0] (quantize-weights) cannot keep nodes "
                               "in float"));
}

TEST_CASE("fallback: it needs a pass to drive, validation data, a gate on the outputs and samples",
          "[fallback][recipe]") {
    RecipeDir d;
    const std::string one = R"([{"pass": "quantize-static"}])";
    const std::string two = R"([{"pass": "quantize-static"}, {"pass": "quantize-static"}])";
    CHECK_THAT(d.error(recipe("{}", one, R"("calibration": {"data": "calib"})")),
               Catch::Contains("recipe.json: fallback: needs a \"validate\" section"));
    CHECK_THAT(d.error(recipe("{}", one, R"("validate": {"samples": 2},
                       "gates": {"min_compression_ratio": 2}, "calibration": {"data": "calib"})")),
               Catch::Contains("recipe.json: fallback: needs a gate on the outputs to aim at"));
    CHECK_THAT(d.error(recipe("{}", one, R"("validate": {"samples": 2},
                       "gates": {"max_kl_mean": 0.01}, "calibration": {"samples": 4})")),
               Catch::Contains("recipe.json: fallback.rank: ranks the nodes on the calibration "
                               "samples: set calibration.data"));
    CHECK_THAT(d.error(recipe("{}", two)),
               Catch::Contains("fallback.pass: missing, and passes[0] (quantize-static), "
                               "passes[1] (quantize-static) can each keep nodes in float: name "
                               "one"));
    CHECK_THAT(d.error(recipe(R"({"pass": "quantize-static"})", two)),
               Catch::Contains("fallback.pass: 'quantize-static' names 2 passes of this recipe: "
                               "give its path (passes[0], ...)"));
    const Recipe r = parse_recipe(recipe(R"({"pass": "passes[1]", "rank": "ablation"})", two),
                                  "recipe.json", d.dir.path());
    REQUIRE(r.fallback);
    CHECK(r.fallback->pass_index == 1);
    CHECK(r.fallback->rank == FallbackRank::Ablation);
    CHECK(r.fallback->max_nodes == 8);
    CHECK(d.error(recipe("{}", one)) == "(no error)");
}

TEST_CASE("fallback: the section reads with its defaults and is in the recipe schema",
          "[fallback][recipe]") {
    const json schema = recipe_json_schema()["properties"]["fallback"];
    CHECK(schema["properties"]["max_nodes"]["default"] == 8);
    CHECK(schema["properties"]["max_nodes"]["minimum"] == 1);
    CHECK(schema["properties"]["rank"]["enum"] == json{"sqnr", "ablation"});
    CHECK(schema["additionalProperties"] == false);
}

TEST_CASE(
    "fallback: compress exits 2 on a fallback no pass can serve, dry run too, writing nothing",
    "[fallback][cli]") {
    RecipeDir d;
    const auto file = d.dir / "r.json";
    test::write_file(file, recipe(R"({"max_nodes": 2})", R"([{"pass": "quantize-weights"}])"));
    for (bool dry : {false, true}) {
        std::vector<std::string> args{"compress", file.string()};
        if (dry) args.push_back("--dry-run");
        const auto r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("r.json: fallback: no pass of the recipe can keep "
                                          "nodes in float"));
        CHECK(!std::filesystem::exists(d.dir / "o.epk"));
        CHECK(!std::filesystem::exists(d.dir / "report.json"));
    }
}
