// Issue 18 items 4 and 7: the quantize-weights summary says what was done (per reading op,
// encoding and method, in the plan, the pass record, report.json and report.md), weights
// read inside If branches are quantized and run, every initializer left float has its
// reason, and calibrating on random inputs needs calibration.synthetic: true.
#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "calibration/calibration.h"
#include "compressor/calibration_data.h"
#include "formats/model_io.h"
#include "ir/encoding.h"
#include "pass_model.h"
#include "passes/registry.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using ep::test::f32_value;
using ep::test::make_node;
using ep::test::normal_values;
using nlohmann::json;

namespace {

void add_weight(Graph& g, const std::string& name, std::vector<int64_t> shape, uint32_t seed,
                float scale = 0.3f) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    g.initializers.push_back(make_f32_tensor(name, shape, normal_values(n, seed, scale)));
}

// x [1, 2, 8, 8] -> Conv(Wc1 [4, 2, 3, 3], Bc1 [4]) -> Relu -> Conv(Wc2 [4, 4, 3, 3]) ->
// Flatten [1, 256] -> Gemm(G1 [256, 32], Cg1 [32]) -> Relu -> Gemm(G2 [32, 16]) -> y [1, 16]
Model mixed_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    auto& g = m.graph;
    g.name = "mixed";
    g.inputs = {f32_value("x", {1, 2, 8, 8})};
    add_weight(g, "Wc1", {4, 2, 3, 3}, 1);
    add_weight(g, "Bc1", {4}, 2);
    add_weight(g, "Wc2", {4, 4, 3, 3}, 3);
    add_weight(g, "G1", {256, 32}, 4, 0.1f);
    add_weight(g, "Cg1", {32}, 5);
    add_weight(g, "G2", {32, 16}, 6);
    g.nodes.push_back(make_node("Conv", "conv1", {"x", "Wc1", "Bc1"}, {"c1"}));
    g.nodes.back().attributes.push_back(ints_attr("pads", {1, 1, 1, 1}));
    g.nodes.push_back(make_node("Relu", "relu1", {"c1"}, {"r1"}));
    g.nodes.push_back(make_node("Conv", "conv2", {"r1", "Wc2"}, {"c2"}));
    g.nodes.back().attributes.push_back(ints_attr("pads", {1, 1, 1, 1}));
    g.nodes.push_back(make_node("Flatten", "flat", {"c2"}, {"f"}));
    g.nodes.push_back(make_node("Gemm", "gemm1", {"f", "G1", "Cg1"}, {"g1"}));
    g.nodes.push_back(make_node("Relu", "relu2", {"g1"}, {"r2"}));
    g.nodes.push_back(make_node("Gemm", "gemm2", {"r2", "G2"}, {"y"}));
    g.outputs = {f32_value("y", {1, 16})};
    return m;
}

// An if-less VAD in miniature: x [1, 4, 8]; cond = ReduceMax(x) > zero; If(cond):
//   then: Conv(x, Wc [8, 4, 3], pads 1) -> Flatten -> [1, 64]
//   else: Flatten(x) [1, 32] -> Gemm(Wg [32, 64]) -> Relu -> MatMul(Wl [64, 64]) -> [1, 64]
// Wc and Wg are main-graph initializers read only inside the branches; Wl is an
// initializer of the else branch itself.
Model if_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    auto& g = m.graph;
    g.name = "ifvad";
    g.inputs = {f32_value("x", {1, 4, 8})};
    add_weight(g, "Wc", {8, 4, 3}, 11);
    add_weight(g, "Wg", {32, 64}, 12, 0.2f);
    g.initializers.push_back(make_f32_tensor("zero", {}, std::vector<float>{0.0f}));
    g.nodes.push_back(make_node("ReduceMax", "max", {"x"}, {"mx"}));
    g.nodes.back().attributes.push_back(int_attr("keepdims", 0));
    g.nodes.push_back(make_node("Greater", "positive", {"mx", "zero"}, {"cond"}));

    Graph then_g;
    then_g.name = "then";
    then_g.nodes.push_back(make_node("Conv", "conv", {"x", "Wc"}, {"c"}));
    then_g.nodes.back().attributes.push_back(ints_attr("pads", {1, 1}));
    then_g.nodes.push_back(make_node("Flatten", "flat_c", {"c"}, {"t_out"}));
    then_g.outputs = {f32_value("t_out", {1, 64})};

    Graph else_g;
    else_g.name = "else";
    add_weight(else_g, "Wl", {64, 64}, 13, 0.2f);
    else_g.nodes.push_back(make_node("Flatten", "flat_x", {"x"}, {"fx"}));
    else_g.nodes.push_back(make_node("Gemm", "gemm", {"fx", "Wg"}, {"gg"}));
    else_g.nodes.push_back(make_node("Relu", "relu", {"gg"}, {"gr"}));
    else_g.nodes.push_back(make_node("MatMul", "mm", {"gr", "Wl"}, {"e_out"}));
    else_g.outputs = {f32_value("e_out", {1, 64})};

    Node iff = make_node("If", "branch", {"cond"}, {"y"});
    Attribute a_then;
    a_then.name = "then_branch";
    a_then.type = AttrType::Graph;
    a_then.graphs.push_back(std::move(then_g));
    Attribute a_else;
    a_else.name = "else_branch";
    a_else.type = AttrType::Graph;
    a_else.graphs.push_back(std::move(else_g));
    iff.attributes.push_back(std::move(a_then));
    iff.attributes.push_back(std::move(a_else));
    g.nodes.push_back(std::move(iff));
    g.outputs = {f32_value("y", {1, 64})};
    return m;
}

// The quantize-weights pass configured with `options`.
std::unique_ptr<Pass> configured(const json& options) {
    return test::configured_pass("quantize-weights", options);
}

bool has_line(const std::vector<std::string>& lines, const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

json read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    REQUIRE(in.good());
    return json::parse(in);
}

const Tensor* find_anywhere(const Model& m, const std::string& name) {
    const Tensor* found = nullptr;
    for_each_graph(m.graph, [&](const Graph& g) {
        if (!found) found = g.find_initializer(name);
    });
    return found;
}

}  // namespace

TEST_CASE("quantize-weights summary: one line per op, encoding and method with bytes",
          "[quantize][summary]") {
    Model m = mixed_model();
    auto pass = configured({{"bits", 4}, {"group_size", 32}, {"conv", true}, {"min_elements", 0}});
    // Conv: int8c, 4 rows x (18 | 36) codes + 4 f32 scales; Gemm int4g32: N rows of K / 32
    // blocks of 18 bytes.
    const std::string conv = "2 Conv weights int8 per channel with rtn (864 -> 248 bytes)";
    const std::string gemm = "2 Gemm weights int4g32 with rtn (34816 -> 4896 bytes)";
    auto plan = pass->plan(m);
    CHECK(has_line(plan, conv));
    CHECK(has_line(plan, gemm));
    CHECK(plan.back() == "4 tensors to quantize: 0.03 MiB -> 0.00 MiB; 2 skipped");
    CHECK(has_line(plan, "skip Bc1: 1-D bias of a Conv (biases stay float)"));
    CHECK(has_line(plan, "skip Cg1: 1-D bias of a Gemm (biases stay float)"));

    PassContext ctx;
    PassResult r = pass->run(m, ctx);
    REQUIRE(r.summary.size() >= 3);
    CHECK(r.summary[0] == "quantized 4 tensors: 0.03 MiB -> 0.00 MiB");
    CHECK(r.summary[1] == conv);
    CHECK(r.summary[2] == gemm);
    REQUIRE(r.quantized.size() == 2);
    CHECK(r.quantized[0].op == "Conv");
    CHECK(r.quantized[0].encoding == "int8c");
    CHECK(r.quantized[0].tensors == 2);
    CHECK(r.quantized[1].output_bytes == 4896);
    CHECK(encoding_name(m.graph.find_initializer("Wc1")->encoding) == "int8c");
    CHECK(encoding_name(m.graph.find_initializer("G1")->encoding) == "int4g32");
}

TEST_CASE("quantize-weights finds weights read inside If branches and the runtime runs them",
          "[quantize][subgraph]") {
    const Model original = if_model();
    const json options = {{"bits", 4}, {"group_size", 32}, {"conv", true}, {"min_elements", 0}};
    auto plan = configured(options)->plan(original);
    // Before issue 18 this plan read "0 tensors to quantize ... 0 skipped".
    CHECK(plan.back() == "3 tensors to quantize: 0.02 MiB -> 0.00 MiB; 1 skipped");
    CHECK(has_line(
        plan,
        "skip zero: read by Greater (input 1): not a weight of a MatMul, Gemm, Conv or Gather"));
    CHECK(has_line(plan, "1 Conv weight int8 per channel with rtn (384 -> 128 bytes)"));
    CHECK(has_line(plan, "1 Gemm weight int4g32 with rtn (8192 -> 1152 bytes)"));
    CHECK(has_line(plan, "1 MatMul weight int4g32 with rtn (16384 -> 2304 bytes)"));
    // Without conv: the Conv weight says why it stays float.
    auto no_conv = configured({{"min_elements", 0}})->plan(original);
    CHECK(has_line(no_conv, "skip Wc: Conv weight; Conv weights stay float unless \"conv\": true"));

    Model q = original;
    PassContext ctx;
    PassResult r = configured(options)->run(q, ctx);
    CHECK(r.rewrites == 3);
    for (const char* name : {"Wc", "Wg", "Wl"}) {
        INFO(name);
        const Tensor* t = find_anywhere(q, name);
        REQUIRE(t != nullptr);
        CHECK(t->is_encoded());
    }
    CHECK(q.graph.find_initializer("Wl") == nullptr);  // it stays in its branch

    // Both branches run through our runtime, from memory and from an .epk, and stay
    // within the quantization error of the float model.
    test::TempDir dir;
    save_model(q, dir / "q.epk");
    Model loaded = load_model(dir / "q.epk");
    REQUIRE(find_anywhere(loaded, "Wl") != nullptr);
    CHECK(encoding_name(find_anywhere(loaded, "Wl")->encoding) == "int4g32");
    rt::Executor ref(original, {}), cand(q, {}), from_file(loaded, {});
    for (float sign : {1.0f, -1.0f}) {
        INFO("branch " << (sign > 0 ? "then (Conv)" : "else (Gemm, MatMul)"));
        auto xs = normal_values(32, 7);
        for (auto& v : xs) v = sign * std::fabs(v);
        rt::NamedTensors feeds{{"x", make_f32_tensor("x", {1, 4, 8}, xs)}};
        auto a = ref.run(feeds)[0].second.to_floats();
        auto b = cand.run(feeds)[0].second.to_floats();
        auto c = from_file.run(feeds)[0].second.to_floats();
        REQUIRE(a.size() == 64);
        CHECK(b == c);
        double num = 0.0, den = 0.0;
        for (size_t i = 0; i < a.size(); ++i) {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += a[i] * a[i];
        }
        const double rel = std::sqrt(num / den);
        WARN("relative output error " << rel);
        CHECK(rel > 0.0);   // the quantized weights are what ran
        CHECK(rel < 0.15);  // int8 Conv / int4 g32 on this scale: measured below
    }

    // ONNX Runtime agrees with our runtime on the float original.
    save_model(original, dir / "f.onnx");

    // Through edgepack compress: report.json lists the body's initializer as quantized and
    // the float one with its reason.
    test::write_file(dir / "r.json", R"({"model": "f.onnx", "output": "c.epk",
        "passes": [{"pass": "quantize-weights", "conv": true, "min_elements": 0}],
        "validate": {"samples": 2, "benchmark_runs": 0}, "report_dir": "rep"})");
    auto c = test::run_edgepack({"compress", (dir / "r.json").string()});
    INFO(c.err);
    REQUIRE(c.exit_code == 0);
    std::map<std::string, json> tensors;
    const json report = read_json(dir / "rep" / "report.json");
    for (const auto& t : report["tensors"]) tensors[t["name"].get<std::string>()] = t;
    for (const char* name : {"Wc", "Wg", "Wl"}) CHECK(tensors[name]["decision"] == "quantized");
    CHECK(tensors["zero"]["decision"] == "skipped");
    CHECK(tensors["zero"]["reason"] ==
          "read by Greater (input 1): not a weight of a MatMul, Gemm, Conv or Gather");

    auto xs = normal_values(32, 8);
    write_npy(make_f32_tensor("x", {1, 4, 8}, xs), dir / "x.npy");
    auto o = test::run_oracle(
        "ort_run.py", {(dir / "f.onnx").string(), "--input", "x=" + (dir / "x.npy").string(),
                       "--out", (dir / "ort").string()});
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
    auto want = read_npy(dir / "ort" / "y.npy").to_floats();
    auto got = ref.run({{"x", make_f32_tensor("x", {1, 4, 8}, xs)}})[0].second.to_floats();
    REQUIRE(want.size() == got.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-5));
}

TEST_CASE("compress: calibrating on random inputs needs calibration.synthetic, and says so",
          "[quantize][summary][synthetic]") {
    test::TempDir dir;
    save_model(mixed_model(), dir / "m.onnx");
    auto recipe = [&](const std::string& calibration) {
        test::write_file(dir / "r.json",
                         R"({"model": "m.onnx", "output": "out.epk",
                             "passes": [{"pass": "quantize-weights", "bits": 4, "group_size": 32,
                                         "conv": true, "min_elements": 0, "method": "gptq"}],
                             "calibration": )" +
                             calibration + R"(,
                             "validate": {"samples": 2, "benchmark_runs": 0},
                             "report_dir": "rep"})");
        return (dir / "r.json").string();
    };
    // No data and no synthetic: exit 2 at plan time naming calibration.data, nothing written.
    for (bool dry : {true, false}) {
        INFO("dry run " << dry);
        std::vector<std::string> args{"compress", recipe(R"({"samples": 16})")};
        if (dry) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("calibration.data: empty"));
        CHECK_THAT(r.err, Catch::Contains("\"synthetic\": true"));
        CHECK_FALSE(std::filesystem::exists(dir / "out.epk"));
    }

    auto plan = test::run_edgepack(
        {"compress", recipe(R"({"samples": 16, "synthetic": true})"), "--dry-run"});
    INFO(plan.err);
    REQUIRE(plan.exit_code == 0);
    CHECK_THAT(plan.out,
               Catch::Contains("2 Conv weights int8 per channel with rtn (864 -> 248 bytes)\n"));
    CHECK_THAT(plan.out, Catch::Contains("2 Gemm weights int4g32 with gptq (34816 -> 4896 bytes)"));

    auto run = test::run_edgepack({"compress", recipe(R"({"samples": 16, "synthetic": true})")});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const json report = read_json(dir / "rep" / "report.json");
    const json& pass = report["passes"][0];
    REQUIRE(pass["quantized"].size() >= 2);
    const json& conv = pass["quantized"][0];
    CHECK(conv["op"] == "Conv");
    CHECK(conv["encoding"] == "int8c");
    CHECK(conv["method"] == "rtn");
    CHECK(conv["tensors"] == 2);
    CHECK(conv["input_bytes"] == 864);
    CHECK(conv["output_bytes"] == 248);
    const json& cal = pass["calibration"];
    CHECK(cal["synthetic"] == true);
    CHECK(cal["samples"] == 16);
    CHECK(cal["solved"] == 2);
    const std::string words = "calibrated on 16 synthetic random inputs";
    bool said = false;
    for (const auto& line : pass["summary"])
        said = said || line.get<std::string>().rfind(words, 0) == 0;
    CHECK(said);
    // The small calibration set is named per layer: 16 rows for G1's 256 columns.
    REQUIRE(pass["warnings"].size() >= 1);
    CHECK_THAT(pass["warnings"][0].get<std::string>(),
               Catch::StartsWith("tensor 'G1': 16 calibration rows for 256 input columns"));
    CHECK_THAT(run.err, Catch::Contains("warning: passes[0] (quantize-weights): tensor 'G1': 16 "
                                        "calibration rows for 256 input columns"));
    // Every group line is the stderr summary's, report.json's and report.md's.
    const std::string md = test::read_file(dir / "rep" / "report.md");
    CHECK_THAT(md, Catch::Contains(words));
    CHECK_THAT(md, Catch::Contains("per-tensor RTN fallback: "));
    for (const auto& g : pass["quantized"]) {
        const std::string line = g["line"].get<std::string>();
        INFO(line);
        CHECK_THAT(run.err, Catch::Contains("  " + line + "\n"));
        // Markdown escapes '>' as an entity; rendered, it reads the same.
        std::string in_md = line;
        in_md.replace(in_md.find("->"), 2, "-&gt;");
        CHECK_THAT(md, Catch::Contains(in_md + "\n"));
    }
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "rep" / "report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);
}

TEST_CASE("gptq keeps rtn for a tensor where rtn scores better on its objective, and counts it",
          "[quantize][gptq][summary]") {
    // x [4, 64] -> MatMul(x, W [64, 32]) -> y. The calibration rows excite only input
    // channel 0, so GPTQ zeroes the weights of the 63 dead channels; on the damped
    // objective that costs more than rounding them, and the pass keeps the rtn bytes.
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.inputs = {f32_value("x", {4, 64})};
    add_weight(m.graph, "W", {64, 32}, 21);
    m.graph.nodes.push_back(make_node("MatMul", "mm", {"x", "W"}, {"y"}));
    m.graph.outputs = {f32_value("y", {4, 32})};
    std::vector<Tensor> xs;
    for (uint32_t s = 0; s < 8; ++s) {
        std::vector<float> v(4 * 64, 0.0f);
        auto r = normal_values(4, 40 + s);
        for (size_t i = 0; i < 4; ++i) v[i * 64] = r[i];
        xs.push_back(make_f32_tensor("x", {4, 64}, v));
    }
    test::MemoryData data(xs);
    PassContext ctx;
    ctx.calibration = &data;
    Model q = m;
    PassResult r = configured({{"bits", 4}, {"group_size", 32}, {"method", "gptq"}})->run(q, ctx);
    REQUIRE(r.calibration.has_value());
    CHECK(r.calibration->solved == 1);
    CHECK(r.calibration->rtn_fallback == std::vector<std::string>{"W"});
    CHECK(has_line(r.summary, "1 MatMul weight int4g32 with rtn (8192 -> 1152 bytes)"));
    CHECK(has_line(r.summary,
                   "per-tensor RTN fallback: 1 of 1 (W): rtn scored better on gptq's objective"));
    // 32 rows for 64 columns: named.
    REQUIRE(r.warnings.size() == 1);
    CHECK_THAT(r.warnings[0], Catch::StartsWith("tensor 'W': 32 calibration rows for 64 input "
                                                "columns (rank at most 32, 63 dead columns)"));
    // The bytes are rtn's.
    Model rtn = m;
    (void)configured({{"bits", 4}, {"group_size", 32}})->run(rtn, ctx);
    auto a = q.graph.find_initializer("W")->data.bytes();
    auto b = rtn.graph.find_initializer("W")->data.bytes();
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
}
