// prune-structured: on tiny models built in C++ (dead channels and neurons removed leave
// the output unchanged, the right channels go, every reader shrinks, the graph shapes the
// pass cannot prune are skips with their reason, least-squares reconstruction lowers the
// output error), and on the MNIST CNN with real data through `edgepack compress` (30% of
// the Conv channels, accuracy with and without reconstruction, the .onnx output checked by
// the ONNX checker and run in ONNX Runtime against our runtime).
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "calibration/calibration.h"
#include "pass_model.h"
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;
using namespace ep::test;

namespace {

Tensor input_tensor(std::vector<int64_t> shape, uint32_t seed) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return make_f32_tensor("x", shape, normal_values(static_cast<size_t>(n), seed));
}

std::vector<float> run_model(const Model& m, const Tensor& x) {
    rt::Executor exec(m, rt::ExecOptions{});
    auto out = exec.run({{"x", x}});
    REQUIRE(out.size() == 1);
    return out[0].second.to_floats();
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0.0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
    return d;
}

// x [2, 2, 6, 6] -> Conv(w1 [4, 2, 3, 3], b1) -> BN -> Relu -> MaxPool 2x2 -> Flatten
// -> Gemm(fc [3, 16], transB 1, fcb) -> y. Channels 1 and 3 are dead: zero weights and
// bias, and a BN that maps 0 below zero, so the Relu zeroes them.
Model dead_channel_cnn() {
    Model m;
    m.opset_imports.push_back({"", 13});
    m.graph.inputs.push_back(f32_value("x", {2, 2, 6, 6}));
    m.graph.outputs.push_back(value("y"));
    auto w1 = normal_values(4 * 18, 1);
    for (int c : {1, 3})
        for (int i = 0; i < 18; ++i) w1[static_cast<size_t>(c * 18 + i)] = 0.0f;
    m.graph.initializers.push_back(make_f32_tensor("w1", {4, 2, 3, 3}, w1));
    m.graph.initializers.push_back(
        make_f32_tensor("b1", {4}, std::vector<float>{0.1f, 0.0f, 0.2f, 0.0f}));
    m.graph.nodes.push_back(make_node("Conv", "conv", {"x", "w1", "b1"}, {"c"}));
    BnParams bn;
    bn.scale = {1.5f, 1.0f, 0.5f, 1.0f};
    bn.bias = {0.3f, -1.0f, -0.2f, -1.0f};
    bn.mean = {0.1f, 0.0f, -0.1f, 0.0f};
    bn.var = {1.0f, 1.0f, 2.0f, 1.0f};
    add_bn(m, bn, "c", "n");
    m.graph.value_info.push_back(f32_value("n", {2, 4, 4, 4}));
    m.graph.nodes.push_back(make_node("Relu", "relu", {"n"}, {"r"}));
    m.graph.nodes.push_back(
        make_node("MaxPool", "pool", {"r"}, {"p"},
                  {ints_attr("kernel_shape", {2, 2}), ints_attr("strides", {2, 2})}));
    m.graph.nodes.push_back(make_node("Flatten", "flat", {"p"}, {"f"}, {int_attr("axis", 1)}));
    m.graph.initializers.push_back(make_f32_tensor("fc", {3, 16}, normal_values(48, 2)));
    m.graph.initializers.push_back(make_f32_tensor("fcb", {3}, normal_values(3, 3)));
    m.graph.nodes.push_back(
        make_node("Gemm", "gemm", {"f", "fc", "fcb"}, {"y"}, {int_attr("transB", 1)}));
    return m;
}

// x [1, 5, 8] -> SwiGLU: MatMul(w1 [8, 6]) -> Silu (Sigmoid, Mul) -> Mul MatMul(w3 [8, 6])
// -> MatMul(w2 [6, 8]) -> y. Neurons 1 and 4 are dead (zero columns of w1 and w3).
Model dead_neuron_ffn(bool dead) {
    Model m;
    m.opset_imports.push_back({"", 13});
    m.graph.inputs.push_back(f32_value("x", {1, 5, 8}));
    m.graph.outputs.push_back(value("y"));
    auto w1 = normal_values(48, 4), w3 = normal_values(48, 5);
    if (dead)
        for (int k = 0; k < 8; ++k)
            for (int o : {1, 4})
                w1[static_cast<size_t>(k * 6 + o)] = w3[static_cast<size_t>(k * 6 + o)] = 0.0f;
    m.graph.initializers.push_back(make_f32_tensor("ffn.w1", {8, 6}, w1));
    m.graph.initializers.push_back(make_f32_tensor("ffn.w3", {8, 6}, w3));
    m.graph.initializers.push_back(make_f32_tensor("ffn.w2", {6, 8}, normal_values(48, 6)));
    m.graph.nodes.push_back(make_node("MatMul", "up", {"x", "ffn.w1"}, {"h1"}));
    m.graph.nodes.push_back(make_node("MatMul", "gate", {"x", "ffn.w3"}, {"h3"}));
    m.graph.nodes.push_back(make_node("Sigmoid", "sig", {"h1"}, {"s"}));
    m.graph.nodes.push_back(make_node("Mul", "silu", {"h1", "s"}, {"a"}));
    m.graph.nodes.push_back(make_node("Mul", "glu", {"a", "h3"}, {"g"}));
    m.graph.nodes.push_back(make_node("MatMul", "down", {"g", "ffn.w2"}, {"y"}));
    return m;
}

const PrunedTensor* pruned_entry(const PassResult& r, const std::string& name) {
    for (const auto& p : r.pruned)
        if (p.name == name) return &p;
    return nullptr;
}

}  // namespace

TEST_CASE("prune-structured removes dead Conv channels with the BN and the Gemm columns",
          "[prune-structured]") {
    Model m = dead_channel_cnn();
    const Model original = m;
    auto r = run_pass("prune-structured", m, {{"sparsity", 0.5}, {"reconstruct", false}});
    INFO(skips_text(r));
    REQUIRE(r.changed);
    CHECK(m.graph.find_initializer("w1")->shape == std::vector<int64_t>{2, 2, 3, 3});
    CHECK(m.graph.find_initializer("b1")->shape == std::vector<int64_t>{2});
    CHECK(m.graph.find_initializer("bn.scale")->shape == std::vector<int64_t>{2});
    CHECK(m.graph.find_initializer("fc")->shape == std::vector<int64_t>{3, 8});
    // The kept channels are 0 and 2: their weights are the original's.
    auto w1 = floats_of(m, "w1"), w1o = floats_of(original, "w1");
    CHECK(std::equal(w1.begin(), w1.begin() + 18, w1o.begin()));
    CHECK(std::equal(w1.begin() + 18, w1.end(), w1o.begin() + 36));
    CHECK(floats_of(m, "bn.B") == std::vector<float>{0.3f, -0.2f});
    // The stale shape annotation of the BN output is gone.
    CHECK(m.graph.value_info.empty());
    const Tensor x = input_tensor({2, 2, 6, 6}, 7);
    CHECK(max_abs_diff(run_model(original, x), run_model(m, x)) < 1e-5);
    const auto* p = pruned_entry(r, "w1");
    REQUIRE(p != nullptr);
    CHECK(p->op == "Conv");
    CHECK(p->pattern == "channels");
    CHECK(p->method == "l1");
    CHECK(p->storage == "removed");
    CHECK(p->sparsity == Approx(0.5));
    CHECK(p->input_bytes == 4 * 18 * 4);
    CHECK(p->output_bytes == 2 * 18 * 4);
    REQUIRE(pruned_entry(r, "fc") != nullptr);
    CHECK(pruned_entry(r, "fc")->op == "Gemm");
}

TEST_CASE("prune-structured removes dead SwiGLU neurons from up, gate and down",
          "[prune-structured]") {
    for (const char* importance : {"l1", "l2"}) {
        INFO(importance);
        Model m = dead_neuron_ffn(true);
        const Model original = m;
        auto r = run_pass("prune-structured", m,
                          {{"sparsity", 0.34}, {"importance", importance}, {"reconstruct", false}});
        INFO(skips_text(r));
        REQUIRE(r.changed);
        CHECK(m.graph.find_initializer("ffn.w1")->shape == std::vector<int64_t>{8, 4});
        CHECK(m.graph.find_initializer("ffn.w3")->shape == std::vector<int64_t>{8, 4});
        CHECK(m.graph.find_initializer("ffn.w2")->shape == std::vector<int64_t>{4, 8});
        CHECK(r.pruned.size() == 3);
        CHECK(pruned_entry(r, "ffn.w2")->pattern == "neurons");
        const Tensor x = input_tensor({1, 5, 8}, 9);
        CHECK(max_abs_diff(run_model(original, x), run_model(m, x)) < 1e-5);
    }
}

TEST_CASE("prune-structured skips what the graph does not allow, with the reason",
          "[prune-structured]") {
    SECTION("a residual Add with an outside input") {
        Model m = dead_neuron_ffn(false);
        m.graph.nodes.back().outputs[0] = "d";
        m.graph.nodes.push_back(make_node("Add", "residual", {"x", "d"}, {"y"}));
        auto pass = configured_pass("prune-structured", {{"reconstruct", false}});
        auto plan = pass->plan(m);
        PassContext ctx;
        const std::string before = fingerprint(m);
        auto r = pass->run(m, ctx);
        // The FFN group is still pruned; the down projection feeds the residual: a skip.
        CHECK(has_skip(r, "ffn.w2", "Add 'residual' with an input outside the group"));
        CHECK(pruned_entry(r, "ffn.w1") != nullptr);
        bool planned_skip = false;
        for (const auto& line : plan) planned_skip |= line.find("skip ffn.w2") != std::string::npos;
        CHECK(planned_skip);
        CHECK(fingerprint(m) != before);
    }
    SECTION("a Reshape into heads, and a graph output") {
        Model m = dead_neuron_ffn(false);
        m.graph.nodes.resize(1);  // x -> up -> h1
        m.graph.initializers.push_back(
            make_f32_tensor("heads", {4}, std::vector<float>{0, 0, 0, 0}));  // not int64
        m.graph.nodes.push_back(make_node("Reshape", "split_heads", {"h1", "heads"}, {"y"}));
        auto r = run_pass("prune-structured", m, {{"reconstruct", false}});
        CHECK_FALSE(r.changed);
        CHECK(has_skip(r, "ffn.w1", "Reshape 'split_heads' (attention heads"));
        Model m2 = dead_neuron_ffn(false);
        m2.graph.outputs.push_back(value("h3"));
        auto r2 = run_pass("prune-structured", m2, {{"reconstruct", false}});
        CHECK_FALSE(r2.changed);
        CHECK(has_skip(r2, "ffn.w1 + ffn.w3", "'h3' is a graph output"));
    }
}

TEST_CASE("prune-structured reconstruction lowers the output error on calibration data",
          "[prune-structured]") {
    // A random (not dead) FFN: removing a third of the neurons changes the output; the
    // least-squares re-fit of the down projection must bring it closer to the original on
    // the calibration inputs (seeded normal inputs, no real data: the check is on the fit).
    const Model original = dead_neuron_ffn(false);
    std::vector<Tensor> calib;
    for (uint32_t s = 0; s < 8; ++s) calib.push_back(input_tensor({1, 5, 8}, 100 + s));
    MemoryData data(calib, "seeded normal inputs");
    auto error_with = [&](bool reconstruct) {
        Model m = original;
        auto pass =
            configured_pass("prune-structured", {{"sparsity", 0.34}, {"reconstruct", reconstruct}});
        PassContext ctx;
        ctx.calibration = &data;
        auto r = pass->run(m, ctx);
        REQUIRE(r.changed);
        if (reconstruct) {
            REQUIRE(r.calibration.has_value());
            CHECK(r.calibration->solved == 1);
        }
        double e = 0.0;
        for (const auto& x : calib) {
            auto a = run_model(original, x), b = run_model(m, x);
            for (size_t i = 0; i < a.size(); ++i)
                e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        }
        return e;
    };
    const double plain = error_with(false), refit = error_with(true);
    INFO("squared output error: sliced " << plain << ", reconstructed " << refit);
    CHECK(refit < 0.9 * plain);  // measured: 9329 -> 6875
}

TEST_CASE(
    "prune-structured: activation importance finds the dead neurons, and any thread count "
    "gives the same bytes",
    "[prune-structured]") {
    std::vector<Tensor> calib;
    for (uint32_t s = 0; s < 4; ++s) calib.push_back(input_tensor({1, 5, 8}, 200 + s));
    MemoryData data(calib, "seeded normal inputs");
    auto prune = [&](bool dead, int threads, const std::string& importance) {
        Model m = dead_neuron_ffn(dead);
        auto pass =
            configured_pass("prune-structured", {{"sparsity", 0.34}, {"importance", importance}});
        PassContext ctx;
        ctx.calibration = &data;
        ctx.threads = threads;
        auto r = pass->run(m, ctx);
        REQUIRE(r.changed);
        return m;
    };
    const Model pruned = prune(true, 1, "activation");
    CHECK(pruned.graph.find_initializer("ffn.w1")->shape == std::vector<int64_t>{8, 4});
    const Tensor x = input_tensor({1, 5, 8}, 9);
    CHECK(max_abs_diff(run_model(dead_neuron_ffn(true), x), run_model(pruned, x)) < 1e-5);
    for (const char* importance : {"l1", "activation"}) {
        INFO(importance);
        CHECK(fingerprint(prune(false, 1, importance)) == fingerprint(prune(false, 3, importance)));
    }
}

TEST_CASE("prune-structured rejects bad options naming the field", "[prune-structured]") {
    auto configure = [](nlohmann::json o) { configured_pass("prune-structured", std::move(o)); };
    CHECK_THROWS_WITH(configure({{"sparsity", 1.0}}), Catch::Contains("sparsity: 1"));
    CHECK_THROWS_WITH(configure({{"importance", "taylor"}}), Catch::Contains("importance: taylor"));
    CHECK_THROWS_WITH(configure({{"ridge", -1.0}}), Catch::Contains("ridge"));

    TempDir dir;
    const auto model = shared_models() / "mnist" / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    nlohmann::json recipe = {
        {"model", model.string()},
        {"passes", {{{"pass", "prune-structured"}, {"sparsity", 1.2}, {"reconstruct", false}}}},
        {"output", (dir / "out.onnx").string()}};
    write_file(dir / "recipe.json", recipe.dump());
    auto res = run_edgepack({"compress", (dir / "recipe.json").string()});
    INFO(res.err);
    CHECK(res.exit_code == 2);
    CHECK(res.err.find("sparsity") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "out.onnx"));
}

TEST_CASE("prune-structured: MNIST CNN 30% of the Conv channels, checked in ONNX Runtime",
          "[prune-structured][mnist]") {
    const auto model = shared_models() / "mnist" / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    const auto data = source_dir() / ".cache" / "data";
    EP_REQUIRE_FILE_OR_SKIP(data / "mnist-test" / "labels.npy");
    EP_REQUIRE_FILE_OR_SKIP(data / "mnist-calib");
    TempDir dir;
    auto compress = [&](bool reconstruct, const std::string& out) {
        nlohmann::json recipe = {
            {"model", model.string()},
            {"passes",
             {{{"pass", "prune-structured"},
               {"include", {"conv*"}},
               {"sparsity", 0.3},
               {"reconstruct", reconstruct}}}},
            {"calibration", {{"data", (data / "mnist-calib").string()}, {"samples", 10}}},
            {"output", (dir / out).string()},
            {"validate",
             {{"data", (data / "mnist-test").string()},
              {"labels", (data / "mnist-test" / "labels.npy").string()},
              {"require_data", true},
              {"benchmark_runs", 0}}},
            {"report_dir", (dir / (out + "-report")).string()}};
        write_file(dir / "recipe.json", recipe.dump());
        auto res = run_edgepack({"compress", (dir / "recipe.json").string(), "--quiet"});
        INFO(res.err);
        REQUIRE(res.exit_code == 0);
        auto report = nlohmann::json::parse(read_file(dir / (out + "-report") / "report.json"));
        return report;
    };
    auto with = compress(true, "pruned.onnx");
    auto without = compress(false, "sliced.onnx");
    const auto& v = with["validation"]["accuracy"];
    const double base = v["reference"].get<double>();
    const double acc = v["candidate"].get<double>();
    const double acc_sliced = without["validation"]["accuracy"]["candidate"].get<double>();
    WARN("MNIST 30% Conv channels: float " << base << "%, pruned + reconstructed " << acc
                                           << "%, pruned without reconstruction " << acc_sliced
                                           << "%");
    CHECK(base - acc <= 1.0);
    CHECK(acc > acc_sliced);

    // The .onnx output: ONNX checker (full_check), ORT on the test set, and ORT against
    // our runtime on the first test batch.
    auto ours =
        run_edgepack({"run", (dir / "pruned.onnx").string(), "--data",
                      (data / "mnist-test").string(), "--out", (dir / "ours").string(), "--quiet"});
    INFO(ours.err);
    REQUIRE(ours.exit_code == 0);
    auto xc =
        run_oracle("pruned_onnx_check.py", {(dir / "pruned.onnx").string(), model.string(),
                                            "--data", (data / "mnist-test").string(), "--labels",
                                            (data / "mnist-test" / "labels.npy").string(), "--ours",
                                            (dir / "ours").string()});
    INFO(xc.out << xc.err);
    REQUIRE(xc.exit_code == 0);
    auto j = nlohmann::json::parse(xc.out);
    CHECK(j["checker"] == "full_check");
    CHECK(j["shapes"]["conv1.weight"] == nlohmann::json::array({22, 1, 3, 3}));
    CHECK(j["shapes"]["conv2.weight"] == nlohmann::json::array({45, 22, 3, 3}));
    CHECK(j["shapes"]["fc1.weight"] == nlohmann::json::array({128, 45 * 49}));
    CHECK(j["max_abs_diff_vs_ours"].get<double>() <= 1e-4);
    CHECK(std::fabs(j["accuracy_pruned"].get<double>() - acc) < 0.02);
}
