// Acceptance tests of `edgepack compress`, run as a user runs it: the built binary on real
// models, with ONNX Runtime as the oracle for "computes the same thing".
#include "formats/model_io.h"
#include "ir/ir.h"
#include "support.h"

using namespace ep;

namespace {

size_t count_op(const Model& m, std::string_view op) {
    size_t n = 0;
    for_each_graph(m.graph, [&](const Graph& g) {
        for (const auto& node : g.nodes) n += node.op_type == op;
    });
    return n;
}

std::string cleanup_recipe(const std::filesystem::path& model, const std::string& output) {
    return "{\"model\": \"" + model.string() +
           "\", \"passes\": [{\"pass\": \"promote-constants\"}, {\"pass\": \"fold-batchnorm\"}], "
           "\"output\": \"" +
           output + "\"}";
}

// Cleans a PP-OCR model and checks the result against the original in ONNX Runtime.
void check_ppocr_cleanup(const std::string& file, size_t constants, size_t batchnorms,
                         const std::string& input_shape) {
    auto model = test::model_cache() / "ppocr" / file;
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    test::write_file(dir / "r.json", cleanup_recipe(model, "clean.onnx"));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--verify-each"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.empty());  // a real run keeps stdout clean
    CHECK_THAT(r.err, Catch::Contains(cat("passes[0] promote-constants: changed, ", constants,
                                          " rewrites, 0 skipped")));
    CHECK_THAT(r.err, Catch::Contains(cat("passes[1] fold-batchnorm: changed, ", batchnorms,
                                          " rewrites, 0 skipped")));
    CHECK_THAT(r.err, Catch::Contains("wrote " + (dir / "clean.onnx").string()));

    Model original = load_model(model);
    Model cleaned = load_model(dir / "clean.onnx");
    CHECK(count_op(original, "BatchNormalization") == batchnorms);
    CHECK(count_op(cleaned, "BatchNormalization") == 0);
    CHECK(count_op(cleaned, "Constant") == 0);
    CHECK(cleaned.graph.nodes.size() == original.graph.nodes.size() - constants - batchnorms);
    CHECK(verify(cleaned).empty());

    auto ort = test::run_oracle(
        "ort_compare.py", {model.string(), (dir / "clean.onnx").string(), "--mode", "tol", "--rtol",
                           "1e-4", "--shape", "x=" + input_shape, "--samples", "2"});
    INFO(ort.out << ort.err);
    CHECK(ort.exit_code == 0);
    CHECK_THAT(ort.out, Catch::Contains("\"ok\": true"));
}

}  // namespace

TEST_CASE("compress: promote-constants + fold-batchnorm on the PP-OCR classifier match ORT",
          "[compress][real]") {
    check_ppocr_cleanup("ch_ppocr_mobile_v2.0_cls_infer.onnx", 250, 35, "1,3,48,192");
}

TEST_CASE("compress: promote-constants + fold-batchnorm on the PP-OCRv4 recognizer match ORT",
          "[compress][real]") {
    check_ppocr_cleanup("ch_PP-OCRv4_rec_infer.onnx", 325, 6, "1,3,48,320");
}

TEST_CASE("compress: the example recipe runs with -o, timing its passes", "[compress][real]") {
    auto model = test::model_cache() / "ppocr" / "ch_ppocr_mobile_v2.0_cls_infer.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    auto out = dir / "cls.onnx";
    auto recipe = test::source_dir() / "examples/recipes/cleanup-ppocr-cls.json";
    auto r = test::run_edgepack({"compress", recipe.string(), "-o", out.string(), "--time-passes",
                                 "--print-after", "fold-batchnorm"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(std::filesystem::exists(out));
    CHECK_THAT(r.err, Catch::Contains("wall ms"));
    CHECK_THAT(r.err, Catch::Contains("passes[1] fold-batchnorm"));
    CHECK_THAT(r.err, Catch::Contains("--- after passes[1] (fold-batchnorm) ---"));
    CHECK_THAT(r.err, Catch::Contains("Conv(p2o.Conv.0): x, conv2d_0.w_0, "));
    CHECK_THAT(r.err, Catch::Contains("-> batch_norm_0.tmp_3"));  // the BN's output name
}

TEST_CASE("compress: --dry-run prints the plan and writes nothing", "[compress][real]") {
    auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    test::write_file(dir / "r.json", cleanup_recipe(model, "out/never.onnx"));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--dry-run"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto shown = std::filesystem::absolute(model).lexically_normal();
    CHECK_THAT(r.out, Catch::StartsWith("plan: " + shown.string() + " -> " +
                                        (dir / "out/never.onnx").string() + ", 2 passes"));
    CHECK_THAT(r.out, Catch::Contains("passes[0] promote-constants: "));
    CHECK_THAT(r.out, Catch::Contains("passes[1] fold-batchnorm: "));
    CHECK_THAT(r.err, Catch::Contains("dry run: nothing written"));
    CHECK_FALSE(std::filesystem::exists(dir / "out"));
    // A dry run does not need an output at all.
    test::write_file(dir / "r2.json", "{\"model\": \"" + model.string() + "\"}");
    r = test::run_edgepack({"compress", (dir / "r2.json").string(), "--dry-run"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("(no output)"));
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                        std::filesystem::directory_iterator()) == 2);
}

TEST_CASE("compress: the smallest recipe rewrites the model, --set and -o pick the output",
          "[compress][real]") {
    auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    std::filesystem::copy_file(model, dir / "in.onnx");
    test::write_file(dir / "r.json", R"({"model": "in.onnx", "passes": [], "output": "out.onnx"})");
    auto r = test::run_edgepack({"compress", (dir / "r.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    Model in = load_model(dir / "in.onnx"), out = load_model(dir / "out.onnx");
    CHECK(out.graph.nodes.size() == in.graph.nodes.size());
    CHECK(out.graph.initializers.size() == in.graph.initializers.size());

    r = test::run_edgepack({"compress", (dir / "r.json").string(), "--set", "output=set.onnx"});
    CHECK(r.exit_code == 0);
    CHECK(std::filesystem::exists(dir / "set.onnx"));
    r = test::run_edgepack({"compress", (dir / "r.json").string(), "-o",
                            (dir / "sub/dash-o.onnx").string(), "--threads", "2"});
    CHECK(r.exit_code == 0);
    CHECK(std::filesystem::exists(dir / "sub/dash-o.onnx"));
    // The output may not replace the input.
    r = test::run_edgepack(
        {"compress", (dir / "r.json").string(), "-o", (dir / "in.onnx").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("would overwrite the input model"));
}

TEST_CASE("compress: a graph pass on a safetensors checkpoint fails early naming the pass",
          "[compress][real]") {
    auto model = test::shared_models() / "stories260k" / "model.safetensors";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    test::write_file(dir / "r.json", "{\"model\": \"" + model.string() +
                                         "\", \"passes\": [{\"pass\": \"fold-batchnorm\"}], "
                                         "\"output\": \"o.safetensors\"}");
    auto r = test::run_edgepack({"compress", (dir / "r.json").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("passes[0] (fold-batchnorm): needs a graph of nodes, but "
                                      "model.safetensors is a safetensors checkpoint"));
    CHECK_FALSE(std::filesystem::exists(dir / "o.safetensors"));
    // With no passes a checkpoint is simply rewritten.
    test::write_file(dir / "r.json", "{\"model\": \"" + model.string() +
                                         "\", \"passes\": [], \"output\": \"o.safetensors\"}");
    r = test::run_edgepack({"compress", (dir / "r.json").string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(load_model(dir / "o.safetensors").graph.initializers.size() ==
          load_model(model).graph.initializers.size());
}

TEST_CASE("compress: writing a graph as safetensors is refused and leaves no file",
          "[compress][real]") {
    auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    test::write_file(dir / "r.json", "{\"model\": \"" + model.string() + "\"}");
    auto r = test::run_edgepack(
        {"compress", (dir / "r.json").string(), "-o", (dir / "w.safetensors").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("cannot be written as safetensors"));
    CHECK_FALSE(std::filesystem::exists(dir / "w.safetensors"));
}
