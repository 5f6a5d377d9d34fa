// `edgepack compress` as CI runs it (issue 5): a recipe with a validate section and gates
// in; outputs, four reports and an exit code out. Run as a user runs it: the built binary
// on a real model (the MNIST CNN), with independent checkers as oracles: the `jsonschema`
// package for report.json and recipes, `junitparser` for junit.xml, headless Chromium for
// report.html.
#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "support.h"

using namespace ep;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path mnist_model() {
    return test::shared_models() / "mnist" / "mnist-cnn.onnx";
}

// int8 per channel for every weight, validated on 8 seeded random digits, timed 5 times.
json mnist_recipe(const fs::path& out_dir) {
    return {{"description", "ci test"},
            {"model", mnist_model().string()},
            {"passes",
             {{{"pass", "quantize-weights"},
               {"bits", 8},
               {"group_size", 0},
               {"conv", true},
               {"min_elements", 0}}}},
            {"output", {(out_dir / "m.epk").string(), (out_dir / "m.onnx").string()}},
            {"onnx", {{"quantized", "matmulnbits"}}},
            {"validate",
             {{"samples", 8},
              {"shapes", {"input=1,1,28,28"}},
              {"benchmark_runs", 5},
              {"benchmark_warmup", 1}}},
            {"gates",
             {{"max_kl_mean", 0.01},
              {"max_kl_p99", 0.05},
              {"min_top1_agreement", 99},
              {"min_sqnr_db", 30},
              {"max_output_bytes", 500000},
              {"min_compression_ratio", 3.5},
              {"max_latency_ratio", 1000},
              {"max_latency_p50_ms", 10000},
              {"max_peak_memory_bytes", 1000000}}}};
}

fs::path write_recipe(const test::TempDir& dir, const json& recipe,
                      const std::string& name = "r.json") {
    test::write_file(dir / name, recipe.dump(2));
    return dir / name;
}

json read_json(const fs::path& p) {
    return json::parse(test::read_file(p));
}

// The report without what may differ between two runs of the same recipe: timings,
// latencies (and the checks that read them), the environment's thread count is kept.
json without_timings(json report) {
    report.erase("timings");
    report.erase("latency");
    for (auto& p : report["passes"]) p.erase("seconds");
    for (const char* k : {"latency_p50_ms", "reference_latency_p50_ms", "latency_ratio"})
        report["metrics"].erase(k);
    json gates = json::array();
    for (auto& g : report["gates"])
        if (g["metric"].get<std::string>().rfind("latency", 0) != 0) gates.push_back(g);
    report["gates"] = gates;
    return report;
}

json oracle_json(const test::RunResult& r) {
    INFO(r.out << r.err);
    REQUIRE_FALSE(r.out.empty());
    return json::parse(r.out);
}

}  // namespace

TEST_CASE("compress CI: gates that hold exit 0 and write the outputs and four reports",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    auto recipe = write_recipe(dir, mnist_recipe(dir.path()));
    auto r = test::run_edgepack({"compress", recipe.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains("edgepack: gates: 9 passed, 0 failed"));
    // Random inputs are said in words on the verdict lines and in report.json.
    CHECK_THAT(r.err, Catch::Contains("edgepack: verdict: PASS (exit 0), validated on 8 "
                                      "synthetic random inputs, not real data\n"));
    for (const char* f :
         {"m.epk", "m.onnx", "report.json", "report.md", "report.html", "junit.xml"})
        CHECK(fs::exists(dir / f));
    const std::string md = test::read_file(dir / "report.md");
    CHECK(md.substr(0, md.find('\n')) ==
          "## edgepack: PASS: 9 of 9 gates passed; validated on 8 synthetic random inputs, not "
          "real data");

    json report = read_json(dir / "report.json");
    CHECK(report["verdict"] == "pass");
    CHECK(report["exit_code"] == 0);
    CHECK(report["validation"]["inputs"]["synthetic"] == true);
    CHECK(report["gates"].size() == 9);
    CHECK(report["outputs"][0]["validated"] == true);
    CHECK(report["outputs"][0]["bytes"] == fs::file_size(dir / "m.epk"));
    // The .onnx a user ships is validated too, and the comparison gates judged on it.
    CHECK(report["outputs"][1]["validated"] == true);
    REQUIRE(report["other_validations"].size() == 1);
    const json& onnx = report["other_validations"][0];
    CHECK(onnx["candidate"] == (dir / "m.onnx").string());
    CHECK(onnx["metrics"]["kl_mean"].get<double>() ==
          Approx(report["metrics"]["kl_mean"].get<double>()).margin(1e-6));
    CHECK(onnx["gates"].size() == 4);  // KL mean, KL p99, top-1, SQNR; not sizes or memory
    for (const auto& g : onnx["gates"]) CHECK(g["passed"] == true);
    CHECK_THAT(r.err, Catch::Contains("edgepack: also validated " + (dir / "m.onnx").string()));
    CHECK(report["input"]["bytes"] == fs::file_size(mnist_model()));
    // Every weight of MNIST's two Conv and two Gemm layers is quantized; biases are not.
    size_t quantized = 0;
    for (const auto& t : report["tensors"]) quantized += t["decision"] == "quantized";
    CHECK(quantized == 4);
    // The size categories add up to the files.
    uint64_t in = 0, out = 0;
    for (const auto& c : report["size"]["by_category"]) {
        in += c["input_bytes"].get<uint64_t>();
        out += c["output_bytes"].get<uint64_t>();
    }
    CHECK(in == report["size"]["input_bytes"].get<uint64_t>());
    CHECK(out == report["size"]["output_bytes"].get<uint64_t>());
    CHECK(report["metrics"]["kl_mean"].get<double>() < 0.01);
    CHECK(report["validation"]["per_layer"].size() > 5);

    // report.json validates against its documented schema (jsonschema, not our code).
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);

    // junit.xml parses as JUnit XML: "compress" plus one test case per gate, none failed.
    json junit = oracle_json(test::run_oracle("junit_check.py", {(dir / "junit.xml").string()}));
    CHECK(junit["tests"] == 10);
    CHECK(junit["failures"] == 0);

    // report.html loads offline in headless Chromium and shows the three charts.
    auto html = test::run_oracle(
        "html_report_check.py",
        {(dir / "report.html").string(), "--report", (dir / "report.json").string()});
    INFO(html.out << html.err);
    CHECK(html.exit_code == 0);
    json h = json::parse(html.out);
    for (const char* id : {"chart-per-layer", "chart-size", "chart-latency"})
        CHECK(h["charts"][id]["elements"].get<int>() > 3);
}

TEST_CASE("compress CI: validate.require_data without validate.data exits 2 naming the field",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    json recipe = mnist_recipe(dir.path());
    recipe["validate"]["require_data"] = true;
    auto path = write_recipe(dir, recipe);
    for (bool dry : {false, true}) {
        std::vector<std::string> args{"compress", path.string()};
        if (dry) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("r.json: validate.data: missing, and "
                                          "validate.require_data is true"));
        CHECK_FALSE(fs::exists(dir / "m.epk"));
        CHECK_FALSE(fs::exists(dir / "report.json"));
    }
    // The same recipe with the samples given as --set validate.data runs.
    auto data = dir / "data";
    auto made = test::run({test::python(), "-c",
                           "import numpy as np, os, sys\n"
                           "os.makedirs(sys.argv[1])\n"
                           "rng = np.random.default_rng(0)\n"
                           "for i in range(2):\n"
                           "    x = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)\n"
                           "    np.savez(os.path.join(sys.argv[1], f'{i}.npz'), input=x)",
                           data.string()});
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
    auto r = test::run_edgepack({"compress", path.string(), "--set", "validate.shapes=[]", "--set",
                                 "validate.data=" + data.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("edgepack: verdict: PASS (exit 0)\n"));
    CHECK_THAT(r.err, !Catch::Contains("synthetic"));
    json report = read_json(dir / "report.json");
    CHECK(report["validation"]["inputs"]["synthetic"] == false);
    CHECK(report["validation"]["inputs"]["source"] == "npz");
}

TEST_CASE("compress CI: a tightened gate exits 1, still writes everything, and names the gate",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    auto recipe = write_recipe(dir, mnist_recipe(dir.path()));
    auto r = test::run_edgepack(
        {"compress", recipe.string(), "--set", "gates.max_kl_mean=1e-9", "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 1);
    CHECK(fs::exists(dir / "m.epk"));
    CHECK(fs::exists(dir / "m.onnx"));
    CHECK_THAT(r.err, Catch::Contains("FAIL  max_kl_mean: kl_mean "));
    CHECK_THAT(r.err, Catch::Contains("edgepack: verdict: FAIL (exit 1)"));

    json report = read_json(dir / "report.json");
    CHECK(report["verdict"] == "fail");
    CHECK(report["exit_code"] == 1);
    double kl = report["metrics"]["kl_mean"].get<double>();
    json gate;
    for (const auto& g : report["gates"])
        if (g["name"] == "max_kl_mean") gate = g;
    CHECK(gate["passed"] == false);
    CHECK(gate["value"].get<double>() == kl);
    CHECK(gate["limit"].get<double>() == 1e-9);

    // --json: the summary on stdout says the same.
    json summary = json::parse(r.out);
    CHECK(summary["verdict"] == "fail");
    CHECK(summary["failed"] == json::array({"max_kl_mean"}));

    // report.md: the verdict line names the gate; the table row holds its value.
    auto md = test::read_file(dir / "report.md");
    auto first_line = md.substr(0, md.find('\n'));
    CHECK_THAT(first_line, Catch::Contains("FAIL"));
    CHECK_THAT(first_line, Catch::Contains("max_kl_mean"));
    char value[64];
    std::snprintf(value, sizeof value, "%.4g", kl);
    CHECK_THAT(md, Catch::Contains(value));

    // junit.xml: the gate is a failed test case whose message carries the value.
    json junit = oracle_json(test::run_oracle("junit_check.py", {(dir / "junit.xml").string()}));
    CHECK(junit["failures"] == 1);
    bool found = false;
    for (const auto& c : junit["cases"]) {
        if (c["name"] != "max_kl_mean") continue;
        found = true;
        CHECK(c["result"] == "failure");
        CHECK_THAT(c["message"].get<std::string>(), Catch::Contains("kl_mean"));
    }
    CHECK(found);

    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);
}

TEST_CASE("compress CI: max_ppl_ratio judges a decoder's perplexity, refused on a non-decoder",
          "[ci][real][perplexity]") {
    const fs::path stories = test::shared_models() / "stories260k" / "model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(stories);
    const fs::path tokens = test::source_dir() / ".cache" / "data" / "stories260k-eval.npy";
    EP_REQUIRE_FILE_OR_SKIP(tokens);
    test::TempDir dir;
    const json recipe = {
        {"model", stories.string()},
        {"passes", {{{"pass", "quantize-weights"}, {"bits", 8}, {"group_size", 0}}}},
        {"output", (dir / "s.epk").string()},
        {"validate", {{"data", tokens.string()}}},
        {"gates", {{"max_ppl_ratio", 1.05}}}};
    auto r = test::run_edgepack({"compress", write_recipe(dir, recipe).string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json report = read_json(dir / "report.json");
    const json& m = report["metrics"];
    // int8 per channel costs stories260k about 3 % of perplexity on its own samples.
    CHECK(m["perplexity_reference"].get<double>() == Approx(19.888).epsilon(1e-4));
    CHECK(m["ppl_ratio"].get<double>() > 1.0);
    CHECK(m["ppl_ratio"].get<double>() <= 1.05);
    CHECK(m["ppl_ratio"].get<double>() ==
          Approx(m["perplexity_candidate"].get<double>() / m["perplexity_reference"].get<double>())
              .epsilon(1e-12));
    CHECK(report["validation"]["perplexity"]["tokens"] == 64 * 31);
    CHECK_THAT(r.err, Catch::Contains("pass  max_ppl_ratio: ppl_ratio "));
    CHECK_THAT(test::read_file(dir / "report.md"), Catch::Contains("perplexity (decoder tokens)"));
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);

    // Tightened below what int8 costs: exit 1 naming the gate.
    auto tight = test::run_edgepack(
        {"compress", write_recipe(dir, recipe).string(), "--set", "gates.max_ppl_ratio=1.001"});
    CHECK(tight.exit_code == 1);
    CHECK_THAT(tight.err, Catch::Contains("FAIL  max_ppl_ratio: ppl_ratio "));

    // MNIST takes images, not token ids: exit 2 before anything is written.
    if (!fs::exists(mnist_model())) return;
    json mnist = mnist_recipe(dir.path());
    mnist["gates"] = {{"max_ppl_ratio", 1.1}};
    mnist["output"] = (dir / "never.epk").string();
    auto refused = test::run_edgepack({"compress", write_recipe(dir, mnist, "m.json").string()});
    CHECK(refused.exit_code == 2);
    CHECK_THAT(refused.err, Catch::Contains("gates.max_ppl_ratio: perplexity needs a decoder"));
    CHECK_FALSE(fs::exists(dir / "never.epk"));
}

TEST_CASE("compress CI: the same recipe twice gives the same .epk bytes and the same metrics",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir a, b;
    // One recipe file; -o sends each run's output (and reports) to its own directory.
    auto recipe = write_recipe(a, mnist_recipe(a.path()), "same.json");
    // The second run with another thread count: results must not depend on it.
    auto ra = test::run_edgepack(
        {"compress", recipe.string(), "-o", (a / "m.epk").string(), "--threads", "1"});
    auto rb = test::run_edgepack(
        {"compress", recipe.string(), "-o", (b / "m.epk").string(), "--threads", "2"});
    INFO(ra.err << rb.err);
    REQUIRE(ra.exit_code == 0);
    REQUIRE(rb.exit_code == 0);
    CHECK(test::read_file(a / "m.epk") == test::read_file(b / "m.epk"));

    json ja = without_timings(read_json(a / "report.json"));
    json jb = without_timings(read_json(b / "report.json"));
    // Paths and thread counts differ by construction; everything measured must not.
    CHECK(ja["metrics"] == jb["metrics"]);
    CHECK(ja["validation"]["outputs"] == jb["validation"]["outputs"]);
    CHECK(ja["validation"]["per_layer"] == jb["validation"]["per_layer"]);
    CHECK(ja["tensors"] == jb["tensors"]);
    CHECK(ja["size"] == jb["size"]);
    CHECK(ja["memory"] == jb["memory"]);
    CHECK(ja["outputs"][0]["sha256"] == jb["outputs"][0]["sha256"]);
    CHECK(ja["gates"].size() == 7);
    for (size_t i = 0; i < ja["gates"].size(); ++i) CHECK(ja["gates"][i] == jb["gates"][i]);
}

TEST_CASE("compress CI: --baseline fails when a metric regresses beyond the recipe's tolerance",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    json recipe = mnist_recipe(dir.path());
    recipe["output"] = (dir / "m.epk").string();
    recipe.erase("gates");
    recipe["validate"]["benchmark_runs"] = 0;
    recipe["baseline"] = {{"kl_mean", 1e-4}, {"output_bytes", 0.01}, {"sqnr_db", 0.5}};
    auto path = write_recipe(dir, recipe);
    auto first = test::run_edgepack(
        {"compress", path.string(), "--report-dir", (dir / "previous").string()});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);

    // The same release again: within tolerance.
    auto same =
        test::run_edgepack({"compress", path.string(), "--report-dir", (dir / "same").string(),
                            "--baseline", (dir / "previous" / "report.json").string()});
    INFO(same.err);
    CHECK(same.exit_code == 0);
    CHECK_THAT(same.err, Catch::Contains("edgepack: baseline: 3 passed, 0 failed"));

    // int4 instead of int8: smaller, but KL and SQNR regress: exit 1 naming the checks.
    auto worse =
        test::run_edgepack({"compress", path.string(), "--report-dir", (dir / "worse").string(),
                            "--set", "passes[0].bits=4", "--set", "passes[0].group_size=32",
                            "--baseline", (dir / "previous" / "report.json").string()});
    INFO(worse.err);
    CHECK(worse.exit_code == 1);
    json report = read_json(dir / "worse" / "report.json");
    std::map<std::string, bool> passed;
    for (const auto& c : report["baseline"]["checks"]) passed[c["name"]] = c["passed"];
    CHECK(passed["baseline.kl_mean"] == false);
    CHECK(passed["baseline.sqnr_db"] == false);
    CHECK(passed["baseline.output_bytes"] == true);
    json junit =
        oracle_json(test::run_oracle("junit_check.py", {(dir / "worse" / "junit.xml").string()}));
    CHECK(junit["failures"] == 2);

    // A baseline that is not a report is bad input, before any work.
    test::write_file(dir / "not-a-report.json", "{\"schema\": \"edgepack.validate/1\"}");
    auto bad = test::run_edgepack(
        {"compress", path.string(), "--baseline", (dir / "not-a-report.json").string()});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err,
               Catch::Contains("not-a-report.json: schema: expected \"edgepack.report/1\""));
}

TEST_CASE("compress CI: recipe mistakes exit 2 naming the field, with did-you-mean hints",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    struct Case {
        std::string name;
        std::function<void(json&)> edit;
        std::vector<std::string> extra;
        std::string message;
    };
    std::vector<Case> cases{
        {"typo at the top",
         [](json& r) { r["valdiate"] = r["validate"]; },
         {},
         "r.json: valdiate: unknown key; did you mean validate?"},
        {"typo in a gate",
         [](json& r) { r["gates"]["max_kl_maen"] = 1; },
         {},
         "r.json: gates.max_kl_maen: unknown key; did you mean max_kl_mean?"},
        {"typo in validate",
         [](json& r) { r["validate"]["benchmark_rusn"] = 1; },
         {},
         "r.json: validate.benchmark_rusn: unknown key; did you mean benchmark_runs?"},
        {"typo through --set",
         [](json&) {},
         {"--set", "gates.min_sqnr=3"},
         "gates.min_sqnr: unknown key; did you mean min_sqnr_db?"},
        {"missing model",
         [](json& r) { r["model"] = "/nonexistent/model.onnx"; },
         {},
         "r.json: model: file not found: /nonexistent/model.onnx"},
        {"missing validation data",
         [](json& r) { r["validate"]["data"] = "nope/"; },
         {},
         "r.json: validate.data: not found: "},
        {"missing labels",
         [](json& r) { r["validate"]["labels"] = "labels.npy"; },
         {},
         "r.json: validate.labels: not found: "},
        {"accuracy gate without labels",
         [](json& r) { r["gates"]["max_accuracy_drop"] = 0.1; },
         {},
         "r.json: gates.max_accuracy_drop: needs validate.labels"},
        {"latency gate without benchmark",
         [](json&) {},
         {"--set", "validate.benchmark_runs=0"},
         "gates.max_latency_ratio: needs validate.benchmark_runs > 0"},
        {"validation gate without validate",
         [](json& r) { r.erase("validate"); },
         {},
         "r.json: gates.max_kl_mean: needs a \"validate\" section"},
        {"wrong type",
         [](json& r) { r["gates"]["min_top1_agreement"] = "high"; },
         {},
         "r.json: gates.min_top1_agreement: expected a number, found string"},
        {"out of range",
         [](json& r) { r["gates"]["min_top1_agreement"] = 120; },
         {},
         "r.json: gates.min_top1_agreement: 120 is above the maximum 100"},
        {"only safetensors to validate",
         [](json& r) { r["output"] = "m.safetensors"; },
         {},
         "r.json: validate: needs an .epk or .onnx output"},
        {"baseline without tolerances", [](json&) {}, {"--baseline", "x.json"}, "--baseline: "},
    };
    for (const auto& c : cases) {
        SECTION(c.name) {
            json recipe = mnist_recipe(dir.path());
            c.edit(recipe);
            auto path = write_recipe(dir, recipe);
            std::vector<std::string> args{"compress", path.string()};
            args.insert(args.end(), c.extra.begin(), c.extra.end());
            auto r = test::run_edgepack(args);
            INFO(r.err);
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err, Catch::Contains(c.message));
            CHECK_FALSE(fs::exists(dir / "m.epk"));
            CHECK_FALSE(fs::exists(dir / "report.json"));
        }
    }
}

TEST_CASE("compress CI: --quiet prints nothing, plain lines on a pipe, the schema file is current",
          "[ci][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    json recipe = mnist_recipe(dir.path());
    auto path = write_recipe(dir, recipe);
    auto quiet = test::run_edgepack({"compress", path.string(), "--quiet"});
    CHECK(quiet.exit_code == 0);
    CHECK(quiet.err.empty());
    CHECK(quiet.out.empty());
    auto loud = test::run_edgepack({"compress", path.string()});
    CHECK(loud.exit_code == 0);
    CHECK(loud.err.find('\r') == std::string::npos);
    CHECK(loud.err.find('\x1b') == std::string::npos);

    // docs/recipe.schema.json is what the loader's tables say today.
    auto printed = test::run_edgepack({"compress", "--print-schema"});
    REQUIRE(printed.exit_code == 0);
    CHECK(json::parse(printed.out) ==
          read_json(test::source_dir() / "docs" / "recipe.schema.json"));
    // ... and an independent validator agrees with the loader on good and bad recipes.
    auto schema = (test::source_dir() / "docs" / "recipe.schema.json").string();
    auto good = test::run_oracle("json_schema_check.py", {schema, path.string()});
    INFO(good.out << good.err);
    CHECK(good.exit_code == 0);
    recipe["gates"]["max_kl_maen"] = 1;
    recipe["passes"][0]["bitz"] = 4;
    auto bad_path = write_recipe(dir, recipe, "bad.json");
    auto bad = test::run_oracle("json_schema_check.py", {schema, bad_path.string()});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.out, Catch::Contains("max_kl_maen"));
    CHECK_THAT(bad.out, Catch::Contains("bitz"));
    CHECK(test::run_edgepack({"compress", bad_path.string()}).exit_code == 2);
}

TEST_CASE("compress CI: every example recipe is valid and run by a test", "[ci][examples]") {
    // The tests that run them, on real data: test_examples.cpp (every one, on a slice of its
    // data) and test_quantize_accept.cpp (stories260k and MNIST on the full sets).
    const std::set<std::string> tested{"ppocr-rec-int8.json",
                                       "cleanup-ppocr-cls.json",
                                       "cleanup-stories260k.json",
                                       "stories260k-int8.json",
                                       "stories260k-int4-rtn.json",
                                       "stories260k-int4-gptq.json",
                                       "stories260k-int4-awq.json",
                                       "mnist-int8.json",
                                       "mnist-int4.json",
                                       "mnist-static-int8.json",
                                       "ppocr-cls-static-int8.json",
                                       "ppocr-rec-static-int8.json",
                                       "stories260k-dynamic-int8.json",
                                       "minilm-dynamic-int8.json",
                                       "mnist-prune-structured.json",
                                       "stories260k-prune-wanda-int4.json",
                                       "stories260k-prune-sparsegpt-2of4-int4.json",
                                       "stories260k-lora-int4.json",
                                       "stories260k-mixed-5bpw.json",
                                       "silero-vad-int8.json"};
    std::vector<std::string> files;
    for (const auto& f : fs::directory_iterator(test::source_dir() / "examples" / "recipes"))
        if (f.path().extension() == ".json") files.push_back(f.path().string());
    std::sort(files.begin(), files.end());
    std::vector<std::string> args{(test::source_dir() / "docs" / "recipe.schema.json").string()};
    for (const auto& f : files) {
        INFO(f);
        CHECK(tested.count(fs::path(f).filename().string()) == 1);
        json r = read_json(f);
        CHECK(r.contains("validate"));
        CHECK(r.contains("gates"));
        args.push_back(f);
    }
    CHECK(files.size() == tested.size());
    auto schema = test::run_oracle("json_schema_check.py", args);
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);
}
