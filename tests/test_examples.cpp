// Every example recipe (examples/recipes/*.json) runs in the suite on its real data: the
// data scripts/make_data.sh writes under .cache/data (rendered text lines, the MNIST test
// set, stories260k's tokens), cut by scripts/xcheck/slice_data.py where the full set is
// slow (MNIST: one batch of 1000 images; the classifier: 16 lines). The recipe runs in place (its
// passes, calibration and gates) with
// --set overrides for the slice, the output paths, and no timing: latency gates and
// baseline tolerances are dropped (they judge a 1-run benchmark on a busy machine) and
// per-layer comparison is off. Asserts exit 0 and that report.json names the real data.
// The full data sets are measured in tests/test_quantize_accept.cpp.
#include <fstream>

#include <nlohmann/json.hpp>

#include "support.h"
#include "without_latency.h"

using nlohmann::json;
namespace fs = std::filesystem;
namespace test = ep::test;

namespace {

fs::path recipes_dir() {
    return test::source_dir() / "examples" / "recipes";
}

fs::path data_dir() {
    return test::source_dir() / ".cache" / "data";
}

json read_json(const fs::path& p) {
    return json::parse(test::read_file(p));
}

// `src` (a data folder or token-id .npy under .cache/data) cut to its first `n` samples.
fs::path slice(const fs::path& src, const fs::path& dst, int n) {
    auto r = test::run_oracle("slice_data.py", {src.string(), dst.string(), std::to_string(n)});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return dst;
}

struct Example {
    const char* recipe;
    fs::path model;
    int samples;  // .npz files or token rows of the validation slice
};

// Runs `e` on slices of the data its recipe names and checks the verdict and the report.
void run_example(const Example& e) {
    EP_REQUIRE_FILE_OR_SKIP(e.model);
    const fs::path recipe_path = recipes_dir() / e.recipe;
    const json recipe = read_json(recipe_path);
    REQUIRE(recipe["validate"].contains("data"));
    CHECK(recipe["validate"]["require_data"] == true);
    const fs::path data =
        (recipes_dir() / recipe["validate"]["data"].get<std::string>()).lexically_normal();
    INFO(data.string() << " is made by scripts/make_data.sh (scripts/setup.sh)");
    REQUIRE(fs::exists(data));
    REQUIRE(data.parent_path() == data_dir());

    test::TempDir dir;
    const fs::path eval = slice(data, dir / ("eval" + data.extension().string()), e.samples);
    const std::string ext =
        fs::path(recipe["output"].is_array() ? recipe["output"][0].get<std::string>()
                                             : recipe["output"].get<std::string>())
            .extension()
            .string();
    std::vector<std::string> args{
        "compress",     recipe_path.string(),
        "-o",           (dir / ("out" + ext)).string(),
        "--report-dir", (dir / "reports").string(),
        "--set",        "validate.data=" + eval.string(),
        "--set",        "validate.benchmark_runs=0",
        "--set",        "validate.per_layer=false",
        "--set",        "gates=" + ep::test::without_latency(recipe["gates"]).dump()};
    if (recipe.contains("baseline")) {
        args.push_back("--set");
        args.push_back("baseline=" + ep::test::without_latency(recipe["baseline"]).dump());
    }
    if (recipe["validate"].contains("labels")) {
        const auto labels = fs::path(recipe["validate"]["labels"].get<std::string>());
        REQUIRE(labels.parent_path().filename() == data.filename());  // labels in the folder
        args.push_back("--set");
        args.push_back("validate.labels=" + (eval / labels.filename()).string());
    }
    if (recipe.contains("calibration")) {
        const fs::path calib =
            (recipes_dir() / recipe["calibration"]["data"].get<std::string>()).lexically_normal();
        REQUIRE(calib.parent_path() == data_dir());
        // As many samples as the recipe calibrates on.
        const int n = recipe["calibration"]["samples"].get<int>();
        args.push_back("--set");
        args.push_back("calibration.data=" +
                       slice(calib, dir / ("calib" + calib.extension().string()), n).string());
    }
    auto r = test::run_edgepack(args);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("edgepack: verdict: PASS (exit 0)\n"));
    CHECK_THAT(r.err, !Catch::Contains("synthetic"));
    REQUIRE(fs::exists(dir / "reports" / "report.json"));
    const json report = read_json(dir / "reports" / "report.json");
    const json& inputs = report["validation"]["inputs"];
    CHECK(inputs["synthetic"] == false);
    CHECK(inputs["source"] == (eval.extension() == ".npy" ? "token-sequences" : "npz"));
    CHECK(inputs["data"] == eval.string());
    CHECK(inputs["samples"].get<int>() > 0);
    CHECK_FALSE(report["gates"].empty());
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "reports" / "report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);
}

fs::path ppocr(const char* file) {
    return test::model_cache() / "ppocr" / file;
}

}  // namespace

TEST_CASE("examples: ppocr-rec-int8.json runs on rendered text lines", "[examples][real]") {
    // All 64 lines: the KL mean of a CTC output moves by 0.006 per character emitted one
    // frame off (docs/quantization.md), so on a few lines the KL gate is a coin toss.
    run_example({"ppocr-rec-int8.json", ppocr("ch_PP-OCRv4_rec_infer.onnx"), 64});
}

TEST_CASE("examples: cleanup-ppocr-cls.json runs on rendered text lines half turned 180 degrees",
          "[examples][real]") {
    run_example({"cleanup-ppocr-cls.json", ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx"), 16});
}

TEST_CASE("examples: ppocr-rec-static-int8.json runs on rendered text lines", "[examples][real]") {
    run_example({"ppocr-rec-static-int8.json", ppocr("ch_PP-OCRv4_rec_infer.onnx"), 32});
}

TEST_CASE("examples: ppocr-cls-static-int8.json runs on rendered text lines half turned",
          "[examples][real]") {
    run_example({"ppocr-cls-static-int8.json", ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx"), 32});
}

TEST_CASE("examples: the MNIST recipes run on the MNIST test set", "[examples][real]") {
    const auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    // One batch file: 1000 test images with their labels.
    for (const char* recipe : {"mnist-int8.json", "mnist-int4.json", "mnist-static-int8.json",
                               "mnist-prune-structured.json"}) {
        DYNAMIC_SECTION(recipe) {
            run_example({recipe, model, 1});
        }
    }
}

TEST_CASE("examples: the stories260k recipes run on its token sequences", "[examples][real]") {
    const auto model = test::shared_models() / "stories260k" / "model.onnx";
    // All 64 evaluation sequences (the model is tiny): AWQ's gate has a thin margin.
    for (const char* recipe :
         {"cleanup-stories260k.json", "stories260k-int8.json", "stories260k-int4-rtn.json",
          "stories260k-int4-gptq.json", "stories260k-int4-awq.json",
          "stories260k-dynamic-int8.json", "stories260k-prune-wanda-int4.json",
          "stories260k-prune-sparsegpt-2of4-int4.json", "stories260k-lora-int4.json",
          "stories260k-mixed-5bpw.json"}) {
        DYNAMIC_SECTION(recipe) {
            run_example({recipe, model, 64});
        }
    }
}

TEST_CASE("examples: minilm-dynamic-int8.json runs on tokenized license-text sentences",
          "[examples][real]") {
    // 4 batches of 4 sentences (.npz); the encoder comes from scripts/fetch_models.sh.
    run_example({"minilm-dynamic-int8.json",
                 test::model_cache() / "minilm" / "paraphrase-MiniLM-L3-v2.onnx", 4});
}

TEST_CASE("examples: silero-vad-int8.json runs on streamed frames of recorded speech",
          "[examples][real][recurrent]") {
    // All 96 frames (.npz of input, sr, h, c: silence, then speech); the model and the
    // recording come from scripts/fetch_models.sh.
    run_example(
        {"silero-vad-int8.json", test::model_cache() / "silero-vad" / "silero_vad.onnx", 96});
}
