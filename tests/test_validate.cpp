// `edgepack validate` and the dataset forms `--data DIR` accepts: MNIST's 10k test set
// gives ONNX Runtime's 99.06% top-1; a perturbed copy gives the numbers a numpy oracle
// computes from ONNX Runtime's outputs; hostile .npz files are exit-2 answers naming the
// file and member.
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

double num(const json& j) {
    if (j.is_string()) {
        auto s = j.get<std::string>();
        if (s == "inf") return INFINITY;
        if (s == "-inf") return -INFINITY;
        return NAN;
    }
    return j.get<double>();
}

json read_json(const std::filesystem::path& p) {
    return json::parse(test::read_file(p));
}

std::filesystem::path mnist_dir() {
    return test::shared_models() / "mnist";
}

// Converts the first `limit` MNIST test images (0: all) to DIR/data/*.npz + DIR/labels.npy.
void make_mnist_data(const test::TempDir& dir, int limit) {
    std::vector<std::string> args{(mnist_dir() / "t10k-images-idx3-ubyte.gz").string(),
                                  (mnist_dir() / "t10k-labels-idx1-ubyte.gz").string(),
                                  (dir / "data").string(),
                                  "--labels-out",
                                  (dir / "labels.npy").string(),
                                  "--batch",
                                  "1000",
                                  "--compressed"};
    if (limit) {
        args.push_back("--limit");
        args.push_back(std::to_string(limit));
    }
    auto r = test::run_oracle("mnist_to_npz.py", args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
}

// input f32 [batch_size, 1, 28, 28] -> Mul by `scale` -> Relu -> output.
Model tiny_model(float scale, const std::string& output = "output") {
    Model m;
    m.opset_imports = {{"", 17}};
    ValueType t;
    t.elem = DType::F32;
    t.shape =
        std::vector<Dim>{{std::nullopt, "batch_size", ""}, {1, "", ""}, {28, "", ""}, {28, "", ""}};
    m.graph.inputs.push_back({"input", t, ""});
    m.graph.outputs.push_back({output, std::nullopt, ""});
    float s[1] = {scale};
    m.graph.initializers.push_back(make_f32_tensor("scale", {}, s));
    Node mul;
    mul.op_type = "Mul";
    mul.inputs = {"input", "scale"};
    mul.outputs = {"scaled"};
    Node relu;
    relu.op_type = "Relu";
    relu.inputs = {"scaled"};
    relu.outputs = {output};
    m.graph.nodes = {mul, relu};
    return m;
}

void make_dataset_cases(const test::TempDir& dir) {
    auto r = test::run_oracle("dataset_cases.py", {(dir / "cases").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("validate --labels on the MNIST test set: 99.06% top-1, as ONNX Runtime",
          "[validate][real]") {
    auto model = mnist_dir() / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(mnist_dir() / "t10k-images-idx3-ubyte.gz");
    test::TempDir dir;
    make_mnist_data(dir, 0);
    auto ort =
        test::run_oracle("validate_oracle.py",
                         {"--reference", model.string(), "--candidate", model.string(), "--data",
                          (dir / "data").string(), "--labels", (dir / "labels.npy").string()});
    INFO(ort.err);
    REQUIRE(ort.exit_code == 0);
    json oracle = json::parse(ort.out);
    CHECK(oracle["accuracy_reference"].get<double>() == Approx(99.06).margin(1e-9));

    auto r = test::run_edgepack({"validate", "--reference", model.string(), "--candidate",
                                 model.string(), "--data", (dir / "data").string(), "--labels",
                                 (dir / "labels.npy").string(), "--threads", "2", "--json",
                                 (dir / "report.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json report = read_json(dir / "report.json");
    CHECK(report["schema"] == "edgepack.validate/1");
    CHECK(report["inputs"]["samples"] == 10);
    CHECK(report["accuracy_reference"].get<double>() == Approx(99.06).margin(1e-9));
    CHECK(report["accuracy_candidate"].get<double>() == Approx(99.06).margin(1e-9));
    CHECK(report["accuracy_reference"].get<double>() ==
          Approx(oracle["accuracy_reference"].get<double>()).margin(1e-9));
    CHECK(report["accuracy_drop"].get<double>() == 0.0);
    const auto& out = report["outputs"][0];
    CHECK(out["name"] == "output");
    CHECK(std::isinf(num(out["sqnr_db"])));
    CHECK(num(out["max_abs_error"]) == 0.0);
    CHECK(num(out["cosine_similarity"]) == 1.0);
    const auto& c = out["classes"];
    CHECK(c["rows"] == 10000);
    CHECK(c["classes"] == 10);
    CHECK(c["input"] == "logits");
    CHECK(num(c["kl_divergence"]["mean"]) == 0.0);
    CHECK(num(c["kl_divergence"]["max"]) == 0.0);
    CHECK(c["same_top1"]["percent"].get<double>() == 100.0);
    CHECK(c["topk_agreement"].get<double>() == 100.0);
    // The text report carries llama.cpp's KL block and the accuracy.
    CHECK_THAT(r.out, Catch::Contains("Mean    KLD:   0.000000 ±   0.000000"));
    CHECK_THAT(r.out, Catch::Contains("Same top p: 100.000 ± 0.000 %"));
    CHECK_THAT(r.out, Catch::Contains("reference :  99.060 %"));
    CHECK_THAT(r.out, Catch::Contains("SQNR              : inf dB"));
}

TEST_CASE("validate on a perturbed MNIST matches numpy metrics from ONNX Runtime outputs",
          "[validate][real]") {
    auto model_path = mnist_dir() / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model_path);
    EP_REQUIRE_FILE_OR_SKIP(mnist_dir() / "t10k-images-idx3-ubyte.gz");
    test::TempDir dir;
    make_mnist_data(dir, 2000);
    // One weight tensor changed: the class-3 row of the last layer scaled by 0.7.
    Model model = load_model(model_path);
    Tensor* w = model.graph.find_initializer("fc2.weight");
    REQUIRE(w);
    REQUIRE(w->shape == std::vector<int64_t>{10, 128});
    auto values = w->mutable_values<float>();
    for (size_t i = 3 * 128; i < 4 * 128; ++i) values[i] *= 0.7f;
    save_model(model, dir / "perturbed.onnx");

    auto ort = test::run_oracle(
        "validate_oracle.py",
        {"--reference", model_path.string(), "--candidate", (dir / "perturbed.onnx").string(),
         "--data", (dir / "data").string(), "--labels", (dir / "labels.npy").string()});
    INFO(ort.err);
    REQUIRE(ort.exit_code == 0);
    json oracle = json::parse(ort.out);
    const auto& o = oracle["outputs"]["output"];
    const auto& oc = o["classes"];

    auto r =
        test::run_edgepack({"validate", "--reference", model_path.string(), "--candidate",
                            (dir / "perturbed.onnx").string(), "--data", (dir / "data").string(),
                            "--labels", (dir / "labels.npy").string(), "--per-layer", "--threads",
                            "2", "--json", (dir / "report.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json report = read_json(dir / "report.json");
    const auto& e = report["outputs"][0];
    const auto& ec = e["classes"];
    INFO(report.dump(1));
    INFO(oracle.dump(1));
    // Our runtime and ONNX Runtime agree to ~1e-6 relative, so the metrics agree closely.
    CHECK(num(ec["kl_divergence"]["mean"]) > 0.0);
    CHECK(num(ec["kl_divergence"]["mean"]) == Approx(oc["kl_mean"].get<double>()).epsilon(1e-4));
    CHECK(num(ec["kl_divergence"]["mean_uncertainty"]) ==
          Approx(oc["kl_mean_uncertainty"].get<double>()).epsilon(1e-4));
    CHECK(num(ec["kl_divergence"]["p99"]) == Approx(oc["kl_p99"].get<double>()).epsilon(1e-4));
    CHECK(num(ec["kl_divergence"]["max"]) == Approx(oc["kl_max"].get<double>()).epsilon(1e-4));
    CHECK(num(ec["kl_divergence"]["median"]) == Approx(oc["kl_median"].get<double>()).margin(1e-9));
    CHECK(ec["same_top1"]["percent"].get<double>() ==
          Approx(oc["same_top1"].get<double>()).margin(1e-9));
    CHECK(ec["same_top1"]["uncertainty"].get<double>() ==
          Approx(oc["same_top1_uncertainty"].get<double>()).margin(1e-9));
    CHECK(ec["same_top1"]["percent"].get<double>() < 100.0);
    CHECK(ec["topk_agreement"].get<double>() ==
          Approx(oc["topk_agreement"].get<double>()).margin(1e-9));
    CHECK(num(e["cosine_similarity"]) ==
          Approx(o["cosine_similarity"].get<double>()).epsilon(1e-9));
    CHECK(num(e["sqnr_db"]) == Approx(num(o["sqnr_db"])).margin(1e-3));
    CHECK(num(e["max_abs_error"]) == Approx(o["max_abs_error"].get<double>()).epsilon(1e-4));
    CHECK(num(e["mean_abs_error"]) == Approx(o["mean_abs_error"].get<double>()).epsilon(1e-4));
    CHECK(report["accuracy_reference"].get<double>() ==
          Approx(oracle["accuracy_reference"].get<double>()).margin(1e-9));
    CHECK(report["accuracy_candidate"].get<double>() ==
          Approx(oracle["accuracy_candidate"].get<double>()).margin(1e-9));
    CHECK(report["accuracy_drop"].get<double>() ==
          Approx(oracle["accuracy_drop"].get<double>()).margin(1e-9));
    // Only the last layer changed: every shared intermediate is bit-identical.
    const auto& layers = report["per_layer"]["layers"];
    CHECK(report["per_layer"]["shared"].get<size_t>() == layers.size());
    CHECK(layers.size() >= 5);
    for (const auto& l : layers) CHECK(std::isinf(num(l["sqnr_db"])));
}

TEST_CASE("validate --per-layer ranks the layers after a perturbation worst first",
          "[validate][real]") {
    auto model_path = mnist_dir() / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model_path);
    test::TempDir dir;
    Model model = load_model(model_path);
    Tensor* w = model.graph.find_initializer("conv2.weight");
    REQUIRE(w);
    auto values = w->mutable_values<float>();
    for (size_t i = 0; i < values.size(); i += 7) values[i] *= -1.0f;
    save_model(model, dir / "perturbed.onnx");
    auto r = test::run_edgepack({"validate", "--reference", model_path.string(), "--candidate",
                                 (dir / "perturbed.onnx").string(), "--samples", "2", "--seed", "5",
                                 "--per-layer", "--json", (dir / "report.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json report = read_json(dir / "report.json");
    const auto& layers = report["per_layer"]["layers"];
    REQUIRE(layers.size() >= 5);
    double previous = -INFINITY;
    for (const auto& l : layers) {
        double s = num(l["sqnr_db"]);
        CHECK(s >= previous);
        previous = s;
        std::string name = l["name"];
        bool before_conv2 = name.find("conv1") != std::string::npos ||
                            name == "/relu/Relu_output_0" || name == "/pool/MaxPool_output_0";
        INFO(name);
        CHECK(std::isinf(s) == (before_conv2 || name.find("Constant") != std::string::npos));
    }
    CHECK_THAT(r.out, Catch::Contains("====== Per-layer: worst 10 of"));
    CHECK_THAT(r.out, Catch::Contains("/conv2/Conv_output_0"));
}

TEST_CASE("validate on stories260k with seeded random token ids", "[validate][real]") {
    auto model = test::shared_models() / "stories260k/model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    auto r = test::run_edgepack({"validate", "--reference", model.string(), "--candidate",
                                 model.string(), "--samples", "4", "--seed", "1", "--json",
                                 (dir / "a.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json a = read_json(dir / "a.json");
    CHECK(a["inputs"]["source"] == "random");
    CHECK(a["inputs"]["samples"] == 4);
    CHECK(a["inputs"]["seed"] == 1);
    const auto& out = a["outputs"][0];
    CHECK(out["name"] == "logits");
    CHECK(out["shape"] == std::vector<int64_t>{1, 1, 512});
    CHECK(out["classes"]["classes"] == 512);
    CHECK(out["classes"]["rows"] == 4);
    CHECK(num(out["classes"]["kl_divergence"]["max"]) == 0.0);
    CHECK(std::isinf(num(out["sqnr_db"])));

    // A longer sequence through --shape: 8 tokens per sample, a row per token.
    auto s = test::run_edgepack({"validate", "--reference", model.string(), "--candidate",
                                 model.string(), "--samples", "2", "--seed", "1", "--shape",
                                 "input_ids=1,8", "--json", (dir / "b.json").string()});
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
    json b = read_json(dir / "b.json");
    CHECK(b["outputs"][0]["classes"]["rows"] == 16);
    CHECK(b["inputs"]["shapes"]["input_ids"] == std::vector<int64_t>{1, 8});
}

TEST_CASE("validate reports a decoder's perplexity on real tokens as numpy does from ORT",
          "[validate][real][perplexity]") {
    auto model_path = test::shared_models() / "stories260k/model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model_path);
    const auto tokens = test::source_dir() / ".cache" / "data" / "stories260k-eval.npy";
    EP_REQUIRE_FILE_OR_SKIP(tokens);
    test::TempDir dir;
    // The candidate: the first layer's FFN down projection scaled by 0.8.
    Model model = load_model(model_path);
    Tensor* w = nullptr;
    for (auto& t : model.graph.initializers)
        if (t.name.find("w2") != std::string::npos && t.name.find("layers.0.") != std::string::npos)
            w = &t;
    REQUIRE(w);
    for (float& v : w->mutable_values<float>()) v *= 0.8f;
    save_model(model, dir / "perturbed.onnx");

    auto oracle = [&](const std::filesystem::path& m) {
        auto r = test::run_oracle("perplexity_oracle.py", {m.string(), tokens.string()});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        return json::parse(r.out);
    };
    const json ref = oracle(model_path), cand = oracle(dir / "perturbed.onnx");
    for (const char* threads : {"1", "2"}) {
        const auto report = dir / (std::string("report-") + threads + ".json");
        auto r = test::run_edgepack({"validate", "--reference", model_path.string(), "--candidate",
                                     (dir / "perturbed.onnx").string(), "--data", tokens.string(),
                                     "--threads", threads, "--json", report.string()});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        const json p = read_json(report)["perplexity"];
        INFO(p.dump(1));
        REQUIRE(p.is_object());
        CHECK(p["output"] == "logits");
        CHECK(p["input"] == "input_ids");
        CHECK(p["context"] == 64);
        CHECK(p["first"] == 32);
        CHECK(p["windows"] == 64);
        CHECK(p["tokens"] == 64 * 31);  // T - 1 - T/2 tokens per window
        CHECK(p["tokens"] == ref["tokens"]);
        // Our runtime and ONNX Runtime agree to ~1e-6, so the perplexities agree closely.
        CHECK(num(p["reference"]["perplexity"]) ==
              Approx(ref["perplexity"].get<double>()).epsilon(1e-5));
        CHECK(num(p["reference"]["uncertainty"]) ==
              Approx(ref["uncertainty"].get<double>()).epsilon(1e-4));
        CHECK(num(p["candidate"]["perplexity"]) ==
              Approx(cand["perplexity"].get<double>()).epsilon(1e-5));
        CHECK(num(p["ratio"]) ==
              Approx(cand["perplexity"].get<double>() / ref["perplexity"].get<double>())
                  .epsilon(1e-5));
        CHECK(num(p["ratio"]) > 1.0);  // the perturbation makes the model worse
        CHECK_THAT(r.out, Catch::Contains("====== Perplexity: 'logits' over 'input_ids', 64 "
                                          "windows of 64 tokens, scored from position 32"));
        CHECK_THAT(r.out, Catch::Contains("ratio     : "));
    }
    // Any thread count: the same report, byte for byte.
    CHECK(read_json(dir / "report-1.json")["perplexity"] ==
          read_json(dir / "report-2.json")["perplexity"]);

    // A model that is no decoder (MNIST) has no perplexity.
    auto mnist = mnist_dir() / "mnist-cnn.onnx";
    if (std::filesystem::exists(mnist)) {
        auto m = test::run_edgepack({"validate", "--reference", mnist.string(), "--candidate",
                                     mnist.string(), "--samples", "1", "--json",
                                     (dir / "mnist.json").string()});
        REQUIRE(m.exit_code == 0);
        CHECK(read_json(dir / "mnist.json")["perplexity"].is_null());
    }
}

TEST_CASE("run --data accepts .npz files, .npy and ONNX test-data folders, and sample folders",
          "[validate][dataset]") {
    test::TempDir dir;
    make_dataset_cases(dir);
    save_model(tiny_model(2.0f), dir / "tiny.onnx");
    auto model = (dir / "tiny.onnx").string();
    auto cases = dir / "cases";
    auto one = test::run_edgepack({"run", model, "--input", "input=" + (cases / "x.npy").string(),
                                   "--out", (dir / "one").string()});
    INFO(one.err);
    REQUIRE(one.exit_code == 0);
    Tensor all = read_npy(dir / "one" / "output.npy");
    REQUIRE(all.shape == std::vector<int64_t>{3, 1, 28, 28});
    auto rows = [&](int64_t begin, int64_t end) {
        auto v = all.values<float>();
        return std::vector<float>(v.begin() + begin * 784, v.begin() + end * 784);
    };
    auto values = [](const Tensor& t) {
        auto v = t.values<float>();
        return std::vector<float>(v.begin(), v.end());
    };
    struct Form {
        const char* dir;
        std::vector<std::pair<int64_t, int64_t>> samples;  // row ranges of x, per sample
    };
    for (const Form& f : {Form{"npz", {{0, 2}, {2, 3}}}, Form{"npy", {{0, 3}}},
                          Form{"pb", {{0, 3}}}, Form{"sets", {{0, 2}, {2, 3}}}}) {
        DYNAMIC_SECTION(f.dir) {
            auto out = dir / (std::string("out_") + f.dir);
            auto r = test::run_edgepack(
                {"run", model, "--data", (cases / "good" / f.dir).string(), "--out", out.string()});
            INFO(r.err);
            REQUIRE(r.exit_code == 0);
            for (size_t k = 0; k < f.samples.size(); ++k) {
                Tensor t = read_npy(out / ("sample_" + std::to_string(k)) / "output.npy");
                CHECK(values(t) == rows(f.samples[k].first, f.samples[k].second));
            }
            CHECK_FALSE(
                std::filesystem::exists(out / ("sample_" + std::to_string(f.samples.size()))));
        }
    }
}

TEST_CASE("hostile .npz files are exit-2 answers naming the file and member",
          "[validate][dataset]") {
    test::TempDir dir;
    make_dataset_cases(dir);
    save_model(tiny_model(1.0f), dir / "tiny.onnx");
    auto model = (dir / "tiny.onnx").string();
    struct Case {
        const char* name;
        const char* message;
    };
    for (const Case& c :
         {Case{"bad_zip", "not a readable .npz (zip) archive"},
          Case{"truncated", "not a readable .npz (zip) archive"},
          Case{"not_npy", "member 'input.txt': not a .npy array"},
          Case{"bad_npy", "member 'input.npy': .npy header"},
          Case{"corrupt", "member 'input.npy': cannot inflate"},
          Case{"wrong_dtype",
               "member 'input.npy': expected f32 [batch_size, 1, 28, 28], found f64"},
          Case{"wrong_rank",
               "member 'input.npy': expected f32 [batch_size, 1, 28, 28], found f32 [3, 28, 28]"},
          Case{"wrong_dim", "found f32 [2, 3, 28, 28]"},
          Case{"unknown_key", "member 'image.npy': the model has no input 'image'"},
          Case{"missing_input", "input 'input' (f32 [batch_size, 1, 28, 28]) is missing"}}) {
        DYNAMIC_SECTION(c.name) {
            auto file = dir / "cases" / "hostile" / c.name / "s.npz";
            auto r = test::run_edgepack({"validate", "--reference", model, "--candidate", model,
                                         "--data", file.parent_path().string()});
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err, Catch::Contains(file.string() + ": "));
            CHECK_THAT(r.err, Catch::Contains(c.message));
            CHECK(r.out.empty());
        }
    }
}

TEST_CASE("validate reports label, output and data problems as exit 2", "[validate]") {
    test::TempDir dir;
    save_model(tiny_model(1.0f), dir / "a.onnx");
    save_model(tiny_model(1.5f), dir / "b.onnx");
    save_model(tiny_model(1.0f, "other"), dir / "c.onnx");
    auto a = (dir / "a.onnx").string(), b = (dir / "b.onnx").string();
    // 2 random samples of [1, 1, 28, 28]: 56 rows of 28 classes.
    Tensor wrong_count;
    wrong_count.dtype = DType::I64;
    wrong_count.shape = {5};
    wrong_count.data = TensorData::owned(std::vector<std::byte>(40));
    write_npy(wrong_count, dir / "five.npy");
    // The [1, 1, 28, 28] output is a map by default; read as classes along the last axis here.
    auto r = test::run_edgepack({"validate", "--reference", a, "--candidate", b, "--samples", "2",
                                 "--output-kind", "output=classes", "--labels",
                                 (dir / "five.npy").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err,
               Catch::Contains("5 labels, but no output with a class axis has that many rows"));
    CHECK_THAT(r.err, Catch::Contains("'output': 56"));

    float f[2] = {0, 1};
    write_npy(make_f32_tensor("l", {2}, f), dir / "float.npy");
    r = test::run_edgepack(
        {"validate", "--reference", a, "--candidate", b, "--labels", (dir / "float.npy").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("labels must be int32 or int64"));

    r = test::run_edgepack(
        {"validate", "--reference", a, "--candidate", (dir / "c.onnx").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("share no output name"));

    r = test::run_edgepack(
        {"validate", "--reference", a, "--candidate", b, "--data", (dir / "missing").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--data must be a directory"));

    std::filesystem::create_directories(dir / "empty");
    r = test::run_edgepack(
        {"validate", "--reference", a, "--candidate", b, "--data", (dir / "empty").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("holds no .npz files"));

    r = test::run_edgepack({"validate", "--reference", a, "--candidate", b, "--shape", "nope=1,2"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--shape nope: the model has no input 'nope'"));

    // A candidate that differs: KL > 0 on random inputs, same top-1 (a positive scale).
    r = test::run_edgepack({"validate", "--reference", a, "--candidate", b, "--samples", "3",
                            "--output-kind", "output=classes", "--seed", "2", "--json",
                            (dir / "r.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json report = read_json(dir / "r.json");
    const auto& c = report["outputs"][0]["classes"];
    CHECK(num(c["kl_divergence"]["mean"]) > 0.0);
    CHECK(c["same_top1"]["percent"].get<double>() == 100.0);
    CHECK(c["rows"] == 84);
    CHECK(report.find("accuracy_reference") == report.end());
    // Deterministic: the same run gives the same bytes.
    auto again = test::run_edgepack({"validate", "--reference", a, "--candidate", b, "--samples",
                                     "3", "--output-kind", "output=classes", "--seed", "2",
                                     "--threads", "2", "--json", (dir / "r2.json").string()});
    REQUIRE(again.exit_code == 0);
    CHECK(test::read_file(dir / "r.json") == test::read_file(dir / "r2.json"));
    CHECK(again.out == r.out);
}
