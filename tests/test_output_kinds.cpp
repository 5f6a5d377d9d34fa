// Metrics that fit the output (issue 18, item 6): the kind each output is compared as
// (inferred from graph facts, or said by the recipe / --output-kind), the map and
// embedding metrics, and the CTC task metrics (line accuracy, CER, line agreement) against
// numbers worked out by hand and against an independent Python computation.
#include <cmath>
#include <nlohmann/json.hpp>

#include "compressor/gates.h"
#include "compressor/recipe.h"
#include "compressor/task_metrics.h"
#include "formats/model_io.h"
#include "ir/ir.h"
#include "pass_model.h"
#include "runtime-check/metrics.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using ep::test::f32_value;
using ep::test::make_node;
using nlohmann::json;

namespace {

Tensor f32(std::vector<int64_t> shape, std::vector<float> v, std::string name = "t") {
    return make_f32_tensor(std::move(name), std::move(shape), v);
}

// One input `x` of `dims`, the given nodes and initializers, one output.
Model graph_model(std::vector<int64_t> dims, std::vector<Node> nodes, std::vector<Tensor> inits,
                  const std::string& output, int64_t opset = 17) {
    Model m;
    m.opset_imports = {{"", opset}};
    m.graph.inputs.push_back(f32_value("x", std::move(dims)));
    m.graph.nodes = std::move(nodes);
    m.graph.initializers = std::move(inits);
    m.graph.outputs.push_back({output, std::nullopt, ""});
    return m;
}

std::vector<float> ramp(size_t n, float scale, float offset = 0) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = offset + scale * static_cast<float>((i * 37) % 23) / 23.0f - 0.5f * scale;
    return v;
}

// x [1, 1, 8, 8] -> Conv 3x3 (pads 1) -> Sigmoid -> "prob" [1, 1, 8, 8]: a text detector's
// probability map, in miniature.
Model detector(float weight_scale) {
    return graph_model(
        {1, 1, 8, 8},
        {make_node("Conv", "logit", {"x", "w"}, {"logit"}, {ints_attr("pads", {1, 1, 1, 1})}),
         make_node("Sigmoid", "prob", {"logit"}, {"prob"})},
        {f32({1, 1, 3, 3}, ramp(9, weight_scale), "w")}, "prob");
}

// x [1, 16] -> Gemm (W [16, 96]) -> Div by its ReduceL2 -> "emb" [1, 96].
Model embedder(float weight_scale) {
    return graph_model({1, 16},
                       {make_node("Gemm", "h", {"x", "w"}, {"h"}),
                        make_node("ReduceL2", "norm", {"h"}, {"norm"},
                                  {ints_attr("axes", {-1}), int_attr("keepdims", 1)}),
                        make_node("Div", "emb", {"h", "norm"}, {"emb"})},
                       {f32({16, 96}, ramp(16 * 96, weight_scale), "w")}, "emb");
}

rt::InferredKind infer(const Model& m, const std::string& out, std::vector<int64_t> shape,
                       DType dtype = DType::F32) {
    return rt::infer_output_kind(m, out, dtype, shape);
}

json read_json(const std::filesystem::path& p) {
    return json::parse(test::read_file(p));
}

double num(const json& j) {
    if (j.is_string()) return j == "inf" ? INFINITY : j == "-inf" ? -INFINITY : NAN;
    return j.get<double>();
}

// The CTC test model: x [1, 6, 5] -> (Add bias) -> Softmax(axis 2) -> "probs". Classes:
// 0 blank, 1..3 the alphabet "a", "é", "中", 4 a space.
Model ctc_model(float bias_on_class_3) {
    std::vector<Node> nodes;
    std::vector<Tensor> inits;
    std::string in = "x";
    if (bias_on_class_3 != 0) {
        inits.push_back(f32({5}, {0, 0, 0, bias_on_class_3, 0}, "bias"));
        nodes.push_back(make_node("Add", "shifted", {"x", "bias"}, {"shifted"}));
        in = "shifted";
    }
    nodes.push_back(make_node("Softmax", "probs", {in}, {"probs"}, {int_attr("axis", 2)}));
    return graph_model({1, 6, 5}, std::move(nodes), std::move(inits), "probs");
}

// Scores [1, 6, 5] with 5 at each position's class, and 4.9 at `near` (position, class).
Tensor line_scores(std::vector<int64_t> classes, std::pair<int, int> near = {-1, -1}) {
    std::vector<float> v(30, 0.0f);
    for (size_t t = 0; t < 6; ++t) v[t * 5 + static_cast<size_t>(classes[t])] = 5.0f;
    if (near.first >= 0) v[static_cast<size_t>(near.first * 5 + near.second)] = 4.9f;
    return f32({1, 6, 5}, v, "x");
}

// Four lines (sample folders with x.npy), labels.txt and alphabet.txt in `dir`. The
// candidate adds 0.2 to class 3, which flips the two near ties (lines 1 and 2):
//   line  reference          candidate          label
//   0     "aé"               "aé"               "aé"
//   1     "中中 a"           "中 a"             "中中 a"
//   2     "é"                "中é"              "éé"
//   3     "aa中"             "aa中"             "aé中"
// Reference: 2 of 4 lines exact (50 %), 2 edits over 11 label characters (18.18 %);
// candidate: 1 of 4 (25 %), 3 edits (27.27 %); line agreement 2 of 4 (50 %).
void write_ctc_case(const test::TempDir& dir) {
    std::vector<Tensor> lines{
        line_scores({1, 1, 0, 2, 0, 0}), line_scores({3, 0, 3, 4, 1, 0}, {1, 3}),
        line_scores({2, 2, 2, 0, 0, 0}, {0, 3}), line_scores({1, 0, 1, 0, 3, 0})};
    for (size_t i = 0; i < lines.size(); ++i) {
        auto folder = dir / ("data/sample_" + std::to_string(i));
        std::filesystem::create_directories(folder);
        write_npy(lines[i], folder / "x.npy");
    }
    test::write_file(dir / "data/labels.txt", "aé\n中中 a\néé\naé中\n");
    test::write_file(dir / "alphabet.txt", "a\né\n中\n");
    save_model(ctc_model(0), dir / "ref.onnx");
    save_model(ctc_model(0.2f), dir / "cand.onnx");
}

// `edgepack validate` of dir/ref.onnx against dir/cand.onnx on the samples in dir/data,
// with `extra` arguments.
test::RunResult validate_pair(const test::TempDir& dir, const std::vector<std::string>& extra) {
    const auto path = [&](const char* name) { return (dir / name).string(); };
    std::vector<std::string> args{"validate",        "--reference", path("ref.onnx"), "--candidate",
                                  path("cand.onnx"), "--data",      path("data")};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_edgepack(args);
}

// The same with the labels in dir/data, the alphabet of output "probs" and r.json.
test::RunResult validate_ctc(const test::TempDir& dir) {
    return validate_pair(
        dir, {"--labels", (dir / "data/labels.txt").string(), "--ctc-alphabet",
              "probs=" + (dir / "alphabet.txt").string(), "--json", (dir / "r.json").string()});
}

}  // namespace

TEST_CASE("the default kind comes from graph facts, never top-1 over a spatial axis",
          "[validate][kinds]") {
    // Logits of a Gemm, [N, 10]: classes (MNIST).
    Model gemm = graph_model({1, 16}, {make_node("Gemm", "y", {"x", "w"}, {"y"})},
                             {f32({16, 10}, ramp(160, 1), "w")}, "y");
    CHECK(infer(gemm, "y", {1, 10}).spec.kind == rt::OutputKind::Classes);
    // Language-model logits [1, T, 512] from MatMul: sequence (stories260k).
    Model lm = graph_model({1, 4, 8}, {make_node("MatMul", "logits", {"x", "w"}, {"logits"})},
                           {f32({8, 512}, ramp(8 * 512, 1), "w")}, "logits");
    CHECK(infer(lm, "logits", {1, 4, 512}).spec.kind == rt::OutputKind::Sequence);
    // Softmax over the last axis of rank 3: sequence (PP-OCRv4 rec [1, 40, 6625]).
    Model rec = graph_model(
        {1, 40, 6625}, {make_node("Softmax", "p", {"x"}, {"p"}, {int_attr("axis", 2)})}, {}, "p");
    CHECK(infer(rec, "p", {1, 40, 6625}).spec.kind == rt::OutputKind::Sequence);
    // ... and of rank 2: classes; over a channel axis of a map: a map.
    Model cls = graph_model(
        {1, 2}, {make_node("Softmax", "p", {"x"}, {"p"}, {int_attr("axis", -1)})}, {}, "p");
    CHECK(infer(cls, "p", {1, 2}).spec.kind == rt::OutputKind::Classes);
    Model seg = graph_model(
        {1, 3, 8, 8}, {make_node("Softmax", "p", {"x"}, {"p"}, {int_attr("axis", 1)})}, {}, "p");
    CHECK(infer(seg, "p", {1, 3, 8, 8}).spec.kind == rt::OutputKind::Map);
    // A Sigmoid map [1, 1, H, W]: map (PP-OCRv4 det), with the reason in words.
    auto det = infer(detector(1), "prob", {1, 1, 8, 8});
    CHECK(det.spec.kind == rt::OutputKind::Map);
    CHECK(det.reason == "Sigmoid output, rank 4");
    // Through a Reshape the producer still counts.
    Model reshaped = detector(1);
    reshaped.graph.nodes.back().outputs = {"p4"};
    reshaped.graph.nodes.push_back(make_node("Reshape", "prob", {"p4", "shape"}, {"prob"}));
    CHECK(infer(reshaped, "prob", {1, 64, 1}).spec.kind == rt::OutputKind::Map);
    // L2-normalised vectors: embedding, by LpNormalization or Div by ReduceL2 / Sqrt(sum x^2).
    CHECK(infer(embedder(1), "emb", {1, 96}).spec.kind == rt::OutputKind::Embedding);
    Model lp =
        graph_model({1, 96}, {make_node("LpNormalization", "unit", {"x"}, {"unit"})}, {}, "unit");
    CHECK(infer(lp, "unit", {1, 96}).spec.kind == rt::OutputKind::Embedding);
    Model div =
        graph_model({1, 96},
                    {make_node("ReduceL2", "norm", {"x"}, {"norm"}, {int_attr("keepdims", 1)}),
                     make_node("Max", "safe", {"norm", "eps"}, {"safe"}),
                     make_node("Div", "unit", {"x", "safe"}, {"unit"})},
                    {f32({}, {1e-12f}, "eps")}, "unit");
    CHECK(infer(div, "unit", {1, 96}).spec.kind == rt::OutputKind::Embedding);
    Model sqrt = graph_model(
        {1, 96},
        {make_node("ReduceSumSquare", "ss", {"x"}, {"ss"}), make_node("Sqrt", "n", {"ss"}, {"n"}),
         make_node("Div", "unit", {"x", "n"}, {"unit"})},
        {}, "unit");
    CHECK(infer(sqrt, "unit", {1, 96}).spec.kind == rt::OutputKind::Embedding);
    // A Div by anything else is not a norm; a Conv feature map is a map; integers regress.
    Model scale =
        graph_model({1, 96}, {make_node("Div", "y", {"x", "s"}, {"y"})}, {f32({}, {2}, "s")}, "y");
    CHECK(infer(scale, "y", {1, 96}).spec.kind == rt::OutputKind::Classes);
    CHECK(infer(detector(1), "logit", {1, 1, 8, 8}).spec.kind == rt::OutputKind::Map);
    CHECK(infer(gemm, "y", {1, 10}, DType::I64).spec.kind == rt::OutputKind::Regression);
    CHECK(infer(gemm, "y", {1, 1}).spec.kind == rt::OutputKind::Regression);
    // A rank-3 output of something other than a linear layer is not a sequence.
    Model conv1d = graph_model({1, 4, 16}, {make_node("Conv", "y", {"x", "w"}, {"y"})},
                               {f32({4, 4, 1}, ramp(16, 1), "w")}, "y");
    CHECK(infer(conv1d, "y", {1, 4, 16}).spec.kind == rt::OutputKind::Regression);
}

TEST_CASE("the real models get the kinds their outputs mean", "[validate][kinds][real]") {
    auto ppocr = test::model_cache() / "ppocr";
    auto mnist = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    auto stories = test::shared_models() / "stories260k" / "model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(mnist);
    EP_REQUIRE_FILE_OR_SKIP(stories);
    EP_REQUIRE_FILE_OR_SKIP(ppocr / "ch_PP-OCRv4_rec_infer.onnx");
    EP_REQUIRE_FILE_OR_SKIP(ppocr / "ch_PP-OCRv4_det_infer.onnx");
    CHECK(infer(load_model(mnist), "output", {1, 10}).spec.kind == rt::OutputKind::Classes);
    CHECK(infer(load_model(stories), "logits", {1, 32, 512}).spec.kind == rt::OutputKind::Sequence);
    CHECK(infer(load_model(ppocr / "ch_PP-OCRv4_rec_infer.onnx"), "softmax_11.tmp_0", {1, 40, 6625})
              .spec.kind == rt::OutputKind::Sequence);
    CHECK(infer(load_model(ppocr / "ch_PP-OCRv4_det_infer.onnx"), "sigmoid_0.tmp_0", {1, 1, 64, 64})
              .spec.kind == rt::OutputKind::Map);
}

TEST_CASE("map IoU, embedding cosine per row, classes along another axis", "[metrics][kinds]") {
    // Map, threshold 0.5: reference on at {0, 1, 2}, candidate on at {1, 2, 3}: IoU 2 / 4;
    // same side at 2 of 5 positions... elements 0 and 3 differ, 1, 2, 4 agree: 60 %.
    rt::ComparisonSpec map{rt::OutputKind::Map};
    rt::TensorComparator m("prob", map);
    m.add(f32({1, 1, 1, 5}, {0.9f, 0.8f, 0.6f, 0.1f, 0.2f}),
          f32({1, 1, 1, 5}, {0.4f, 0.7f, 0.51f, 0.7f, 0.5f}));
    auto mm = m.finish();
    REQUIRE(mm.map);
    CHECK_FALSE(mm.classes);
    CHECK(mm.map->on_reference == 3);
    CHECK(mm.map->on_candidate == 3);
    CHECK(mm.map->iou == 0.5);
    CHECK(mm.map->agreement == Approx(60.0));
    // A settable threshold: at 0.75 the reference has {0, 1}, the candidate nothing.
    map.threshold = 0.75;
    rt::TensorComparator t("prob", map);
    t.add(f32({1, 5}, {0.9f, 0.8f, 0.6f, 0.1f, 0.2f}), f32({1, 5}, {0.4f, 0.7f, 0.5f, 0.7f, 0.5f}));
    CHECK(t.finish().map->iou == 0.0);

    // Embedding: two rows of 2; row 0 equal (cosine 1), row 1 orthogonal (cosine 0).
    rt::TensorComparator e("emb", rt::ComparisonSpec{rt::OutputKind::Embedding});
    e.add(f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {2, 0, 1, 0}));
    auto em = e.finish();
    REQUIRE(em.embedding);
    CHECK_FALSE(em.classes);
    CHECK(em.embedding->rows == 2);
    CHECK(em.embedding->cosine_mean == 0.5);
    CHECK(em.embedding->cosine_min == 0.0);

    // Classes along axis 1 of [1, 3, 2]: rows are the 2 columns, each of 3 classes.
    rt::ComparisonSpec axis1{rt::OutputKind::Classes, 1};
    rt::TensorComparator c("seg", axis1);
    // column 0: ref [0, 5, 0] -> 1, cand [0, 0, 5] -> 2; column 1: both [5, 0, 0] -> 0.
    c.add(f32({1, 3, 2}, {0, 5, 5, 0, 0, 0}), f32({1, 3, 2}, {0, 5, 0, 0, 5, 0}));
    auto cm = c.finish();
    REQUIRE(cm.classes);
    CHECK(cm.classes->axis == 1);
    CHECK(cm.classes->classes == 3);
    CHECK(cm.classes->rows == 2);
    CHECK(cm.classes->same_top1.value == 50.0);
    // An axis the tensor does not have, or of one entry, names the tensor.
    rt::TensorComparator bad("seg", rt::ComparisonSpec{rt::OutputKind::Classes, 3});
    CHECK_THROWS_WITH(
        bad.add(f32({1, 3, 2}, std::vector<float>(6)), f32({1, 3, 2}, std::vector<float>(6))),
        Catch::Contains("tensor 'seg'") && Catch::Contains("class axis 3"));
    rt::TensorComparator one("y", rt::ComparisonSpec{rt::OutputKind::Classes, 0});
    CHECK_THROWS_WITH(one.add(f32({1, 3}, {1, 2, 3}), f32({1, 3}, {1, 2, 3})),
                      Catch::Contains("has 1 entry"));
}

TEST_CASE("CTC greedy decoding, Levenshtein over code points", "[metrics][ctc]") {
    // Positions' argmax: 1 1 0 1 2 2 0 0 -> merge repeats, drop blanks -> 1 1 2.
    std::vector<double> scores;
    for (int k : {1, 1, 0, 1, 2, 2, 0, 0})
        for (int c = 0; c < 3; ++c) scores.push_back(c == k ? 1.0 : 0.0);
    CHECK(ctc_greedy_decode(scores, 3) == std::vector<int64_t>{1, 1, 2});
    CHECK(ctc_greedy_decode({}, 3).empty());
    CHECK(code_points("aé中") == std::u32string{U'a', U'é', U'中'});
    CHECK(levenshtein(U"kitten", U"sitting") == 3);
    CHECK(levenshtein(U"", U"abc") == 3);
    CHECK(levenshtein(U"中中 a", U"中 a") == 1);
    CHECK(levenshtein(U"ab", U"ba") == 2);  // a transposition is two edits here
}

TEST_CASE("CTC line accuracy, CER and line agreement on a crafted set", "[validate][ctc]") {
    test::TempDir dir;
    write_ctc_case(dir);
    auto r = validate_ctc(dir);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json report = read_json(dir / "r.json");
    const auto& out = report["outputs"][0];
    CHECK(out["kind"] == "sequence");
    CHECK(out["kind_source"] == "given");
    const auto& ctc = out["ctc"];
    CHECK(ctc["classes"] == 5);
    CHECK(ctc["space_class"] == true);
    CHECK(ctc["sequences"] == 4);
    CHECK(ctc["line_agreement"].get<double>() == 50.0);
    const auto& l = ctc["labels"];
    CHECK(l["characters"] == 11);
    CHECK(l["line_accuracy"]["reference"].get<double>() == 50.0);
    CHECK(l["line_accuracy"]["candidate"].get<double>() == 25.0);
    CHECK(l["line_accuracy"]["drop"].get<double>() == 25.0);
    CHECK(l["cer"]["reference"].get<double>() == Approx(200.0 / 11).epsilon(1e-12));
    CHECK(l["cer"]["candidate"].get<double>() == Approx(300.0 / 11).epsilon(1e-12));
    REQUIRE(ctc["disagreements"].size() == 2);
    CHECK(ctc["disagreements"][0]["index"] == 1);
    CHECK(ctc["disagreements"][0]["reference"] == "中中 a");
    CHECK(ctc["disagreements"][0]["candidate"] == "中 a");
    CHECK(ctc["disagreements"][1]["candidate"] == "中é");
    // The task metric is the line accuracy.
    CHECK(report["task"] == "ctc");
    CHECK(report["accuracy_candidate"].get<double>() == 25.0);
    CHECK(report["line_agreement"].get<double>() == 50.0);
    CHECK_THAT(r.out, Catch::Contains("line accuracy  : reference  50.000 %, candidate  25.000 %"));
    CHECK_THAT(r.out, Catch::Contains("CER            : reference  18.182 %, candidate  27.273 %"));

    // A label count that is not the number of lines, an alphabet that does not fit the
    // classes, text labels without a CTC output: exit 2 naming what is wrong.
    test::write_file(dir / "three.txt", "aé\n中中 a\néé\n");
    r = validate_pair(dir, {"--labels", (dir / "three.txt").string(), "--ctc-alphabet",
                            "probs=" + (dir / "alphabet.txt").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--labels (") && Catch::Contains("three.txt"));
    test::write_file(dir / "long.txt", "a\né\n中\nb\nc\n");
    r = validate_pair(dir, {"--ctc-alphabet", "probs=" + (dir / "long.txt").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("has 5 symbols, so CTC needs 6 classes") &&
                          Catch::Contains("'probs' has 5"));
    r = validate_pair(dir, {"--labels", (dir / "data/labels.txt").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("text labels, which need an output decoded with CTC"));
}

TEST_CASE("CTC metrics agree with an independent Python computation on random lines",
          "[validate][ctc]") {
    test::TempDir dir;
    save_model(ctc_model(0), dir / "ref.onnx");
    save_model(ctc_model(0.7f), dir / "cand.onnx");
    auto made = test::run_oracle("ctc_oracle.py",
                                 {"make", (dir / "data").string(), "--samples", "40", "--seed", "5",
                                  "--alphabet", (dir / "alphabet.txt").string()});
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
    auto oracle = test::run_oracle(
        "ctc_oracle.py",
        {"score", "--reference", (dir / "ref.onnx").string(), "--candidate",
         (dir / "cand.onnx").string(), "--data", (dir / "data").string(), "--alphabet",
         (dir / "alphabet.txt").string(), "--labels", (dir / "data/labels.txt").string()});
    INFO(oracle.err);
    REQUIRE(oracle.exit_code == 0);
    json o = json::parse(oracle.out);
    auto r = validate_ctc(dir);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json report = read_json(dir / "r.json");
    const auto& ctc = report["outputs"][0]["ctc"];
    CHECK(ctc["sequences"] == 40);
    // Counts are integers: the percentages agree to the last bit of a double division.
    CHECK(ctc["line_agreement"].get<double>() == Approx(o["line_agreement"].get<double>()));
    const auto& l = ctc["labels"];
    CHECK(l["characters"] == o["characters"]);
    CHECK(l["line_accuracy"]["reference"].get<double>() ==
          Approx(o["line_accuracy_reference"].get<double>()));
    CHECK(l["line_accuracy"]["candidate"].get<double>() ==
          Approx(o["line_accuracy_candidate"].get<double>()));
    CHECK(l["cer"]["reference"].get<double>() == Approx(o["cer_reference"].get<double>()));
    CHECK(l["cer"]["candidate"].get<double>() == Approx(o["cer_candidate"].get<double>()));
    // The set is not degenerate: some lines right, some wrong, the two models differ.
    CHECK(o["line_accuracy_reference"].get<double>() > 0.0);
    CHECK(o["line_accuracy_reference"].get<double>() < 100.0);
    CHECK(o["line_agreement"].get<double>() < 100.0);
}

TEST_CASE("a detector gets map metrics and an embedding model cosine, neither a top-1 line",
          "[validate][kinds]") {
    test::TempDir dir;
    save_model(detector(1.0f), dir / "det_a.onnx");
    save_model(detector(1.3f), dir / "det_b.onnx");
    save_model(embedder(1.0f), dir / "emb_a.onnx");
    save_model(embedder(1.1f), dir / "emb_b.onnx");
    auto validate = [&](const std::string& a, const std::string& b, const std::string& json_name,
                        std::vector<std::string> extra = {}) {
        std::vector<std::string> args{
            "validate",    "--reference",      (dir / a).string(),
            "--candidate", (dir / b).string(), "--samples",
            "3",           "--json",           (dir / json_name).string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_edgepack(args);
    };

    auto r = validate("det_a.onnx", "det_b.onnx", "det.json");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json det = read_json(dir / "det.json")["outputs"][0];
    CHECK(det["kind"] == "map");
    CHECK(det["kind_source"] == "inferred");
    CHECK(det["classes"].is_null());
    REQUIRE(det["map"].is_object());
    CHECK(det["map"]["threshold"].get<double>() == 0.5);
    CHECK(det["map"]["elements"] == 3 * 64);
    CHECK(num(det["map"]["iou"]) > 0.0);
    CHECK(num(det["map"]["iou"]) <= 1.0);
    CHECK_THAT(r.out, Catch::Contains("  IoU (> 0.5)       : "));
    CHECK_THAT(r.out, !Catch::Contains("Same top") && !Catch::Contains("KLD"));

    r = validate("emb_a.onnx", "emb_b.onnx", "emb.json");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json emb = read_json(dir / "emb.json")["outputs"][0];
    CHECK(emb["kind"] == "embedding");
    CHECK(emb["classes"].is_null());
    REQUIRE(emb["embedding"].is_object());
    CHECK(emb["embedding"]["rows"] == 3);
    CHECK(emb["embedding"]["dimension"] == 96);
    CHECK(num(emb["embedding"]["cosine_min"]) <= num(emb["embedding"]["cosine_mean"]));
    CHECK_THAT(r.out, Catch::Contains("cosine per row"));
    CHECK_THAT(r.out, !Catch::Contains("Same top") && !Catch::Contains("KLD"));

    // Said on the command line, the kind changes: the embedding read as classes gets a
    // class block; a wrong kind name gets a suggestion; an unknown output is named.
    r = validate("emb_a.onnx", "emb_b.onnx", "emb_classes.json", {"--output-kind", "emb=classes"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json as_classes = read_json(dir / "emb_classes.json")["outputs"][0];
    CHECK(as_classes["kind"] == "classes");
    CHECK(as_classes["kind_source"] == "given");
    CHECK(as_classes["classes"]["classes"] == 96);
    r = validate("det_a.onnx", "det_b.onnx", "x.json", {"--output-kind", "prob=mapp"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("did you mean map?"));
    r = validate("det_a.onnx", "det_b.onnx", "x.json", {"--output-kind", "porb=map"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--output-kind porb: the model has no output 'porb'; "
                                      "did you mean prob?"));
}

TEST_CASE("our runtime runs PP-OCRv4 det, and validate compares its map as a map",
          "[validate][kinds][real]") {
    auto det = test::model_cache() / "ppocr" / "ch_PP-OCRv4_det_infer.onnx";
    EP_REQUIRE_FILE_OR_SKIP(det);
    test::TempDir dir;
    auto r = test::run_edgepack({"validate", "--reference", det.string(), "--candidate",
                                 det.string(), "--samples", "1", "--shape", "x=1,3,64,96",
                                 "--per-layer", "--json", (dir / "r.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json out = read_json(dir / "r.json")["outputs"][0];
    CHECK(out["shape"] == std::vector<int64_t>{1, 1, 64, 96});
    CHECK(out["kind"] == "map");
    CHECK(out["kind_reason"] == "Sigmoid output, rank 4");
    CHECK(out["classes"].is_null());
    CHECK(num(out["map"]["iou"]) == 1.0);
    CHECK_THAT(r.out, !Catch::Contains("Same top"));
}

TEST_CASE("compress: the recipe says the kind, CTC gates judge the task metric",
          "[validate][ctc][ci]") {
    test::TempDir dir;
    write_ctc_case(dir);
    json recipe = {
        {"model", "ref.onnx"},
        {"passes", json::array()},
        {"output", "out/m.epk"},
        {"validate",
         {{"data", "data"},
          {"labels", "data/labels.txt"},
          {"benchmark_runs", 0},
          {"outputs",
           {{"probs", {{"kind", "sequence"}, {"decode", "ctc"}, {"alphabet", "alphabet.txt"}}}}}}},
        {"gates", {{"min_accuracy", 50}, {"max_accuracy_drop", 0}, {"min_line_agreement", 100}}}};
    test::write_file(dir / "r.json", recipe.dump(2));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // No pass ran: the candidate decodes as the reference does, 2 of 4 lines right.
    json report = read_json(dir / "out/report.json");
    CHECK(report["metrics"]["accuracy_candidate"].get<double>() == 50.0);
    CHECK(report["metrics"]["line_agreement"].get<double>() == 100.0);
    CHECK(report["metrics"]["cer_candidate"].get<double>() == Approx(200.0 / 11).epsilon(1e-12));
    CHECK(report["metrics"]["kl_mean"].get<double>() == 0.0);  // a sequence keeps its KL
    CHECK(report["validation"]["accuracy"]["task"] == "ctc");
    CHECK(report["validation"]["outputs"][0]["kind_source"] == "given");
    CHECK_THAT(r.err, Catch::Contains("line agreement 100%") && Catch::Contains("CER 18.18%"));
    auto md = test::read_file(dir / "out/report.md");
    CHECK_THAT(md, Catch::Contains("| line accuracy (CTC vs labels) | 50 % | 50 % | drop 0 pp |"));
    CHECK_THAT(md, Catch::Contains("| character error rate (CTC vs labels) | 18.18 % | 18.18 % |"));
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "out/report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);

    // The gate reads the line accuracy: 60 % is not met.
    r = test::run_edgepack(
        {"compress", (dir / "r.json").string(), "--set", "gates.min_accuracy=60"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("FAIL  min_accuracy: accuracy_candidate 50 < limit 60"));

    // Recipe mistakes: exit 2 naming the field, before anything is written.
    std::filesystem::remove_all(dir / "out");
    struct Case {
        std::vector<std::string> set;
        std::string message;
    };
    std::vector<Case> cases{
        {{"validate.outputs.prbos={\"kind\": \"map\"}"},
         "validate.outputs.prbos: the model has no output 'prbos'; did you mean probs?"},
        {{"validate.outputs.probs.kind=mapp"},
         "validate.outputs.probs.kind: 'mapp' is not one of classes, sequence, map, embedding, "
         "regression; did you mean map?"},
        {{"validate.outputs.probs.alphabet=nope.txt"},
         "validate.outputs.probs.alphabet: not found: "},
        {{"validate.outputs.probs.kind=map"},
         "validate.outputs.probs.decode: ctc decodes a sequence output, kind is map"},
        {{"validate.outputs={}", "gates={}"},
         "validate.labels: text labels (.txt) go with an output decoded with CTC"},
        {{"validate.outputs={}", "validate.labels=", "gates={\"min_line_agreement\": 90}"},
         "gates.min_line_agreement: needs an output decoded with CTC"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args{"compress", (dir / "r.json").string()};
        for (const auto& s : c.set) {
            args.push_back("--set");
            args.push_back(s);
        }
        auto bad = test::run_edgepack(args);
        INFO(c.set[0] << "\n" << bad.err);
        CHECK(bad.exit_code == 2);
        CHECK_THAT(bad.err, Catch::Contains(c.message));
    }
    // An alphabet of 5 symbols fits no class count of the 5-class output: named before
    // writing when the output's shape is declared, else when the first sample runs.
    test::write_file(dir / "five.txt", "a\nb\nc\nd\ne\n");
    auto bad = test::run_edgepack({"compress", (dir / "r.json").string(), "--set",
                                   "validate.outputs.probs.alphabet=five.txt"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("validate.outputs.probs.alphabet: ") &&
                            Catch::Contains("has 5 symbols, so CTC needs 6 classes"));
    test::write_file(dir / "three.txt", "a\nb\nc\n");
    bad = test::run_edgepack(
        {"compress", (dir / "r.json").string(), "--set", "validate.labels=three.txt"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("validate.labels (") && Catch::Contains("3 lines"));
}

TEST_CASE("compress validates every .epk and .onnx output, the .onnx too",
          "[validate][kinds][ci]") {
    test::TempDir dir;
    save_model(detector(1.0f), dir / "det.onnx");
    json recipe = {{"model", "det.onnx"},
                   {"passes", json::array()},
                   {"output", {"out/m.onnx", "out/m.epk"}},
                   {"validate",
                    {{"samples", 2},
                     {"benchmark_runs", 0},
                     {"outputs", {{"prob", {{"kind", "regression"}}}}}}},
                   {"gates", {{"min_sqnr_db", 100}}}};
    test::write_file(dir / "r.json", recipe.dump(2));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json report = read_json(dir / "out/report.json");
    // The first .epk is the primary validation, though the .onnx is listed first.
    CHECK(report["validation"]["candidate"].get<std::string>().ends_with("m.epk"));
    const auto& outs = report["outputs"];
    REQUIRE(outs.size() == 2);
    CHECK(outs[0]["validated"] == true);
    CHECK(outs[1]["validated"] == true);
    CHECK(outs[0].find("not_validated") == outs[0].end());
    REQUIRE(report["other_validations"].size() == 1);
    const auto& other = report["other_validations"][0];
    CHECK(other["candidate"].get<std::string>().ends_with("m.onnx"));
    CHECK(other["outputs"][0]["kind"] == "regression");
    CHECK(other["gates"][0]["name"] == "min_sqnr_db");
    CHECK(other["gates"][0]["passed"] == true);
    CHECK(report["validation"]["outputs"][0]["kind"] == "regression");
    CHECK(report["validation"]["outputs"][0]["kind_reason"] == "validate.outputs.prob");
    CHECK_THAT(r.err, Catch::Contains("also validated ") && Catch::Contains("m.onnx"));
    auto md = test::read_file(dir / "out/report.md");
    CHECK_THAT(md, Catch::Contains("| also validated |"));
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (dir / "out/report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);

    // Without the recipe's word the map is inferred: a map, no KL gate to read.
    r = test::run_edgepack({"compress", (dir / "r.json").string(), "--set", "validate.outputs={}"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    report = read_json(dir / "out/report.json");
    CHECK(report["validation"]["outputs"][0]["kind"] == "map");
    CHECK(report["other_validations"][0]["outputs"][0]["kind"] == "map");
    CHECK(report["metrics"]["top1_agreement"].is_null());
    CHECK_THAT(r.err, !Catch::Contains("top-1"));
}

TEST_CASE("validate.outputs in recipes and --set, output names with dots included",
          "[recipe][kinds]") {
    test::TempDir dir;
    test::write_file(dir / "m.onnx", "x");
    test::write_file(dir / "keys.txt", "a\nb\n");
    auto r = parse_recipe(
        R"({"model": "m.onnx", "validate": {"outputs": {"emb": {"kind": "embedding"}}}})", "r.json",
        dir.path(),
        {"validate.outputs.softmax_11.tmp_0.decode=ctc",
         "validate.outputs.softmax_11.tmp_0.alphabet=keys.txt",
         "validate.outputs.prob={\"kind\": \"map\", \"threshold\": 0.3}"});
    const auto& outputs = r.validate->outputs;
    REQUIRE(outputs.size() == 3);
    CHECK(outputs.at("emb").kind == rt::OutputKind::Embedding);
    const auto& ctc = outputs.at("softmax_11.tmp_0");
    CHECK(ctc.kind == rt::OutputKind::Sequence);
    CHECK(ctc.ctc);
    CHECK(ctc.alphabet == dir / "keys.txt");
    CHECK(ctc.field == "validate.outputs.softmax_11.tmp_0");
    CHECK(outputs.at("prob").threshold == 0.3);
    CHECK_THROWS_WITH(parse_recipe(R"({"model": "m.onnx", "validate": {}})", "r.json", dir.path(),
                                   {"validate.outputs.x.kidn=map"}),
                      Catch::Contains("did you mean kind?"));
    CHECK_THROWS_WITH(
        parse_recipe(R"({"model": "m.onnx", "validate": {"outputs": {"x": {"axis": 1}}}})",
                     "r.json", dir.path()),
        Catch::Contains("r.json: validate.outputs.x.axis: applies to kind classes only"));
    CHECK_THROWS_WITH(
        parse_recipe(R"({"model": "m.onnx", "validate": {"outputs": {"x": {"decode": "ctc"}}}})",
                     "r.json", dir.path()),
        Catch::Contains("validate.outputs.x.alphabet: missing"));
}

TEST_CASE("PP-OCRv4 rec decodes with ppocr_keys_v1.txt: 6623 symbols + blank + space",
          "[validate][ctc][real]") {
    auto ppocr = test::model_cache() / "ppocr";
    auto rec = ppocr / "ch_PP-OCRv4_rec_infer.onnx";
    EP_REQUIRE_FILE_OR_SKIP(rec);
    EP_REQUIRE_FILE_OR_SKIP(ppocr / "ppocr_keys_v1.txt");
    test::TempDir dir;
    auto r =
        test::run_edgepack({"validate", "--reference", rec.string(), "--candidate", rec.string(),
                            "--samples", "1", "--shape", "x=1,3,48,320", "--ctc-alphabet",
                            "softmax_11.tmp_0=" + (ppocr / "ppocr_keys_v1.txt").string(), "--json",
                            (dir / "r.json").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json out = read_json(dir / "r.json")["outputs"][0];
    CHECK(out["kind"] == "sequence");
    CHECK(out["ctc"]["classes"] == 6625);
    CHECK(out["ctc"]["space_class"] == true);
    CHECK(out["ctc"]["sequences"] == 1);
    CHECK(out["ctc"]["line_agreement"].get<double>() == 100.0);
    // The declared output [?, ?, 6625] is checked against the alphabet before anything runs.
    test::write_file(dir / "short.txt", "a\nb\n");
    r = test::run_edgepack({"validate", "--reference", rec.string(), "--candidate", rec.string(),
                            "--samples", "1", "--shape", "x=1,3,48,320", "--ctc-alphabet",
                            "softmax_11.tmp_0=" + (dir / "short.txt").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--ctc-alphabet softmax_11.tmp_0: ") &&
                          Catch::Contains("has 2 symbols, so CTC needs 3 classes") &&
                          Catch::Contains("has 6625"));
}

TEST_CASE("a comparison gate fails when it fails on any validated output", "[ci][kinds]") {
    std::vector<Limit> gates{{"max_kl_mean", 0.01}, {"min_sqnr_db", 30}};
    json first = evaluate_gates(gates, {{"kl_mean", 0.005}, {"sqnr_db", 35.0}});
    json second = evaluate_gates(gates, {{"kl_mean", 0.02}, {"sqnr_db", 40.0}});
    REQUIRE(first[0]["passed"] == true);
    fold_output_checks(first, second, "/out/m.onnx");
    CHECK(first[0]["passed"] == false);
    CHECK(first[0]["value"] == 0.02);
    CHECK(first[0]["output"] == "/out/m.onnx");
    CHECK(first[0]["detail"] == "m.onnx: kl_mean 0.02 > limit 0.01 (by 0.01)");
    CHECK(first[1]["passed"] == true);  // held on both: the first output's check stays
    CHECK(first[1]["value"] == 35.0);
    CHECK(first[1].find("output") == first[1].end());
    // A gate that already failed on the first output keeps that failure.
    json failing = evaluate_gates(gates, {{"kl_mean", 0.5}, {"sqnr_db", 35.0}});
    fold_output_checks(failing, second, "/out/m.onnx");
    CHECK(failing[0]["value"] == 0.5);
    CHECK(failing[0].find("output") == failing[0].end());
}
