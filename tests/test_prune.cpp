// The prune pass (passes/prune.cpp): which weights it prunes and how many, the N:M pattern
// along the reduction axis of each layout, Wanda's activation weighting, global magnitude,
// per-tensor sparsity maps and OWL, sparse storage, checkpoints, skips with reasons and
// bad options. The stories260k acceptance (magnitude vs wanda vs sparsegpt KL) is in
// test_prune_accept.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "ir/sparse.h"
#include "pass_model.h"
#include "runtime-check/executor.h"
#include "runtime-check/synthetic_inputs.h"
#include "support.h"

using namespace ep;
using ep::test::make_node;
using ep::test::normal_values;
using nlohmann::json;

namespace {

ValueInfo f32_input(const std::string& name, std::vector<int64_t> dims) {
    return test::f32_value(name, std::move(dims));
}

// x [T, 64] -> MatMul W1 [64, 48] -> h; Gemm(h, W2 [40, 48], transB 1) -> g; Relu -> y.
// The graph output y comes from a Relu, so neither weight is the output layer.
Model mlp_model(uint32_t seed = 1) {
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.inputs = {f32_input("x", {8, 64})};
    m.graph.initializers.push_back(make_f32_tensor("W1", {64, 48}, normal_values(64 * 48, seed)));
    m.graph.initializers.push_back(
        make_f32_tensor("W2", {40, 48}, normal_values(40 * 48, seed + 1, 0.5f)));
    m.graph.nodes.push_back(make_node("MatMul", "mm", {"x", "W1"}, {"h"}));
    m.graph.nodes.push_back(make_node("Gemm", "gemm", {"h", "W2"}, {"g"}));
    m.graph.nodes.back().attributes.push_back(int_attr("transB", 1));
    m.graph.nodes.push_back(make_node("Relu", "relu", {"g"}, {"y"}));
    m.graph.outputs.push_back(test::value("y"));
    return m;
}

std::unique_ptr<Pass> prune(json options) {
    options["min_elements"] = options.value("min_elements", 0);
    return test::configured_pass("prune", options);
}

PassResult run(Model& m, json options, const calib::DataProvider* data = nullptr) {
    auto pass = prune(std::move(options));
    PassContext ctx;
    ctx.calibration = data;
    return pass->run(m, ctx);
}

// Element (k, n) of a [K, N] tensor's values.
float at(const std::vector<float>& v, int64_t cols, int64_t r, int64_t c) {
    return v[static_cast<size_t>(r * cols + c)];
}

size_t zeros(const std::vector<float>& v) {
    return static_cast<size_t>(std::count(v.begin(), v.end(), 0.0f));
}

}  // namespace

TEST_CASE(
    "prune magnitude: half of each tensor is 0, the largest |W| are kept unchanged, "
    "stored bitmask",
    "[prune]") {
    Model original = mlp_model();
    Model m = original;
    PassResult r = run(m, {{"sparsity", 0.5}});
    REQUIRE(r.pruned.size() == 2);
    for (const char* name : {"W1", "W2"}) {
        INFO(name);
        const Tensor& t = *m.graph.find_initializer(name);
        CHECK(encoding_name(t.encoding) == "bitmask");
        CHECK(t.shape == original.graph.find_initializer(name)->shape);
        auto before = test::floats_of(original, name);
        auto after = t.to_floats();  // densified
        CHECK(zeros(after) == before.size() / 2);
        // Every kept weight is unchanged and at least as large as every pruned one.
        float max_pruned = 0.0f, min_kept = 1e30f;
        for (size_t i = 0; i < before.size(); ++i) {
            if (after[i] == 0.0f)
                max_pruned = std::max(max_pruned, std::fabs(before[i]));
            else {
                CHECK(after[i] == before[i]);
                min_kept = std::min(min_kept, std::fabs(before[i]));
            }
        }
        CHECK(max_pruned <= min_kept);
        CHECK(kept_fraction(t) == Approx(0.5));
    }
    const auto& p = r.pruned[0];
    CHECK(p.name == "W1");
    CHECK(p.op == "MatMul");
    CHECK(p.method == "magnitude");
    CHECK(p.pattern == "unstructured");
    CHECK(p.sparsity == Approx(0.5));
    CHECK(p.storage == "bitmask");
    CHECK(p.input_bytes == 64 * 48 * 4);
    CHECK(p.output_bytes == m.graph.find_initializer("W1")->data.size());
    CHECK(p.output_bytes < p.input_bytes);
    CHECK(r.pruned[1].op == "Gemm");

    // storage dense: same values, plain f32 bytes.
    Model d = original;
    PassResult rd = run(d, {{"sparsity", 0.5}, {"storage", "dense"}});
    CHECK(rd.pruned[0].storage == "dense");
    CHECK(d.graph.find_initializer("W1")->encoding.is_none());
    CHECK(d.graph.find_initializer("W1")->to_floats() ==
          m.graph.find_initializer("W1")->to_floats());

    // The pruned model runs and its outputs are those of the dense form.
    rt::Executor sparse_exec(m, {}), dense_exec(d, {});
    auto feeds = rt::synthetic_inputs(sparse_exec, 3, {});
    CHECK(sparse_exec.run(feeds)[0].second.to_floats() ==
          dense_exec.run(feeds)[0].second.to_floats());
}

TEST_CASE("prune n:m runs along the reduction axis of MatMul [K, N], Gemm transB and Conv",
          "[prune]") {
    Model m = mlp_model();
    Node conv = make_node("Conv", "conv", {"c_in", "C"}, {"c_out"});
    m.graph.inputs.push_back(f32_input("c_in", {1, 4, 6, 6}));
    m.graph.initializers.push_back(
        make_f32_tensor("C", {8, 4, 3, 3}, normal_values(8 * 4 * 9, 9)));  // cols 36
    m.graph.nodes.push_back(conv);
    m.graph.nodes.push_back(make_node("Relu", "relu2", {"c_out"}, {"c_y"}));
    m.graph.outputs.push_back(test::value("c_y"));
    const Model original = m;
    PassResult r = run(m, {{"pattern", "2:4"}});
    REQUIRE(r.pruned.size() == 3);
    // W1 [64, 48]: K = 64 runs down each column n.
    auto w1 = m.graph.find_initializer("W1")->to_floats();
    CHECK(encoding_name(m.graph.find_initializer("W1")->encoding) == "2:4");
    for (int64_t n = 0; n < 48; ++n)
        for (int64_t k0 = 0; k0 < 64; k0 += 4) {
            int kept = 0;
            for (int64_t k = k0; k < k0 + 4; ++k) kept += at(w1, 48, k, n) != 0.0f;
            CHECK(kept == 2);
        }
    // W2 [40, 48] with transB 1: K = 48 runs along each row.
    auto w2 = m.graph.find_initializer("W2")->to_floats();
    for (int64_t n = 0; n < 40; ++n)
        for (int64_t k0 = 0; k0 < 48; k0 += 4) {
            int kept = 0;
            for (int64_t k = k0; k < k0 + 4; ++k) kept += at(w2, 48, n, k) != 0.0f;
            CHECK(kept == 2);
        }
    // Conv [8, 4, 3, 3]: 36 = I x kh x kw along each output channel; the 2 largest of 4 kept.
    auto c = m.graph.find_initializer("C")->to_floats();
    auto c0 = test::floats_of(original, "C");
    for (int64_t o = 0; o < 8; ++o)
        for (int64_t j0 = 0; j0 < 36; j0 += 4) {
            std::vector<float> mags;
            for (int64_t j = j0; j < j0 + 4; ++j) mags.push_back(std::fabs(at(c0, 36, o, j)));
            std::sort(mags.begin(), mags.end());
            for (int64_t j = j0; j < j0 + 4; ++j)
                CHECK((at(c, 36, o, j) != 0.0f) == (std::fabs(at(c0, 36, o, j)) >= mags[2]));
        }
    CHECK(r.pruned[2].op == "Conv");
    CHECK(r.pruned[2].pattern == "2:4");

    // 4:8: Conv's 36 columns are no multiple of 8: skipped with the reason; the others pruned.
    Model m8 = original;
    PassResult r8 = run(m8, {{"pattern", "4:8"}});
    CHECK(r8.pruned.size() == 2);
    CHECK(test::has_skip(r8, "C", "reduction length 36 is not a multiple of 8"));
    CHECK(m8.graph.find_initializer("C")->to_floats() == c0);
}

TEST_CASE("prune wanda keeps small weights on loud input channels that magnitude prunes",
          "[prune]") {
    // x [8, 64]: channel 5 is 1000x louder than the others; its weights are +-0.01 (the
    // others ~N(0, 1)), so |W| x ||X|| ranks them about 10x above the rest.
    Model m = mlp_model();
    auto w1 = test::floats_of(m, "W1");
    for (int64_t n = 0; n < 48; ++n) {
        float& w = w1[static_cast<size_t>(5 * 48 + n)];
        w = w < 0.0f ? -0.01f : 0.01f;
    }
    *m.graph.find_initializer("W1") = make_f32_tensor("W1", {64, 48}, w1);
    std::vector<Tensor> samples;
    for (uint32_t s = 0; s < 4; ++s) {
        auto x = normal_values(8 * 64, 100 + s);
        for (int64_t t = 0; t < 8; ++t) x[static_cast<size_t>(t * 64 + 5)] *= 1000.0f;
        samples.push_back(make_f32_tensor("x", {8, 64}, x));
    }
    test::MemoryData data(samples, "loud-channel samples");
    Model mag = m, wanda = m;
    (void)run(mag, {{"include", {"W1"}}});
    PassResult r = run(wanda, {{"include", {"W1"}}, {"method", "wanda"}}, &data);
    REQUIRE(r.pruned.size() == 1);
    REQUIRE(r.calibration);
    CHECK(r.calibration->samples == 4);
    auto wm = mag.graph.find_initializer("W1")->to_floats();
    auto ww = wanda.graph.find_initializer("W1")->to_floats();
    for (int64_t n = 0; n < 48; ++n) {
        CHECK(at(wm, 48, 5, n) == 0.0f);
        CHECK(at(ww, 48, 5, n) == at(w1, 48, 5, n));
    }
    // Per output column n (a stored row): exactly half of its 64 inputs pruned.
    for (int64_t n = 0; n < 48; ++n) {
        int kept = 0;
        for (int64_t k = 0; k < 64; ++k) kept += at(ww, 48, k, n) != 0.0f;
        CHECK(kept == 32);
    }
    // Wanda loses less of the layer output on these samples than magnitude.
    auto out_error = [&](const Model& pruned) {
        rt::Executor ref(m, {}), got(pruned, {});
        double e = 0.0;
        for (const auto& x : samples) {
            auto a = ref.run({{"x", x}}, {"h"})[0].second.to_floats();
            auto b = got.run({{"x", x}}, {"h"})[0].second.to_floats();
            for (size_t i = 0; i < a.size(); ++i) e += (a[i] - b[i]) * (a[i] - b[i]);
        }
        return e;
    };
    CHECK(out_error(wanda) < 0.5 * out_error(mag));
}

TEST_CASE(
    "prune scope global ranks |W| over all tensors, per-tensor maps pick by glob, OWL keeps the "
    "mean",
    "[prune]") {
    // W2 (scale 0.5) has smaller weights than W1 (scale 1): a global threshold prunes it more.
    Model g = mlp_model();
    PassResult r = run(g, {{"scope", "global"}, {"sparsity", 0.5}});
    REQUIRE(r.pruned.size() == 2);
    CHECK(r.pruned[0].sparsity < 0.5);
    CHECK(r.pruned[1].sparsity > 0.5);
    const double total =
        (r.pruned[0].sparsity * 64 * 48 + r.pruned[1].sparsity * 40 * 48) / (64 * 48 + 40 * 48);
    CHECK(total == Approx(0.5).margin(1e-9));

    // {glob: sparsity}: the longest matching glob wins; a tensor nothing matches is skipped.
    Model p = mlp_model();
    PassResult rp = run(p, {{"sparsity", {{"*", 0.25}, {"W2", 0.75}}}});
    REQUIRE(rp.pruned.size() == 2);
    CHECK(rp.pruned[0].sparsity == Approx(0.25));
    CHECK(rp.pruned[1].sparsity == Approx(0.75));
    Model amb = mlp_model();
    CHECK_THROWS_WITH(run(amb, {{"sparsity", {{"W*", 0.25}, {"W2", 0.75}}}}),
                      Catch::Contains("sparsity: 'W*' and 'W2' both match tensor 'W2'"));
    Model q = mlp_model();
    PassResult rq = run(q, {{"sparsity", {{"W1", 0.5}}}});
    CHECK(rq.pruned.size() == 1);
    CHECK(test::has_skip(rq, "W2", "no sparsity entry matches"));

    // OWL: different per-tensor sparsities whose mean is the target.
    Model o = mlp_model();
    auto w2 = test::floats_of(o, "W2");
    for (size_t i = 0; i < w2.size(); i += 7) w2[i] *= 20.0f;  // many outliers in W2
    *o.graph.find_initializer("W2") = make_f32_tensor("W2", {40, 48}, w2);
    PassResult ro = run(o, {{"owl", true}, {"sparsity", 0.6}, {"owl_lambda", 0.1}});
    REQUIRE(ro.pruned.size() == 2);
    CHECK(ro.pruned[1].sparsity < ro.pruned[0].sparsity);
    CHECK(ro.pruned[0].sparsity == Approx(0.7).margin(1e-3));
    CHECK(ro.pruned[1].sparsity == Approx(0.5).margin(1e-3));
}

TEST_CASE("prune skips what it must not touch, each with its reason", "[prune]") {
    Model m = mlp_model();
    // The output layer: a MatMul giving the graph output.
    m.graph.initializers.push_back(make_f32_tensor("head", {48, 16}, normal_values(768, 7)));
    m.graph.nodes.push_back(make_node("MatMul", "lm_head", {"h", "head"}, {"logits"}));
    m.graph.outputs.push_back(test::value("logits"));
    m.graph.initializers.push_back(make_f32_tensor("bias", {48}, normal_values(48, 8)));
    m.graph.nodes.push_back(make_node("Add", "add", {"h", "bias"}, {"hb"}));
    m.graph.outputs.push_back(test::value("hb"));
    auto plan = prune({{"exclude", {"W2"}}})->plan(m);
    PassResult r = run(m, {{"exclude", {"W2"}}});
    CHECK(r.pruned.size() == 1);
    CHECK(test::has_skip(r, "head",
                         "the output layer (MatMul 'lm_head' gives graph output "
                         "'logits'; \"output_layer\": true prunes it)"));
    CHECK(test::has_skip(r, "W2", "not selected by include/exclude"));
    CHECK(
        test::has_skip(r, "bias", "read by Add (input 1): not a weight of a MatMul, Gemm or Conv"));
    CHECK(r.skipped.size() == 3);
    CHECK(std::find(plan.begin(), plan.end(),
                    "[1/1] W1 [64, 48] MatMul: magnitude unstructured 50.0% -> bitmask, 12288 -> "
                    "6920 bytes") != plan.end());
    CHECK(plan.back() ==
          "1 tensor to prune (magnitude, unstructured): 12288 -> 6920 bytes; 3 "
          "skipped");
    CHECK(r.pruned[0].output_bytes == 6920);
    Model h = mlp_model();
    h.graph.initializers.push_back(make_f32_tensor("head", {48, 16}, normal_values(768, 7)));
    h.graph.nodes.push_back(make_node("MatMul", "lm_head", {"h", "head"}, {"logits"}));
    h.graph.outputs.push_back(test::value("logits"));
    CHECK(run(h, {{"output_layer", true}}).pruned.size() == 3);
}

TEST_CASE("prune: bad options are an InputError naming the field", "[prune]") {
    auto fails = [](json options, const std::string& message) {
        INFO(options.dump());
        CHECK_THROWS_WITH(prune(options), Catch::Contains(message));
    };
    fails({{"sparsity", 1.2}}, "sparsity: 1.2 is not a sparsity");
    fails({{"sparsity", 1}}, "sparsity: 1 is not a sparsity");
    fails({{"sparsity", {{"layers.*", -0.1}}}}, "sparsity.layers.*: -0.1 is not a sparsity");
    fails({{"pattern", "5:4"}}, "pattern: '5:4' is not a valid n:m pattern");
    fails({{"pattern", "2:100"}}, "pattern: '2:100' is not a valid n:m pattern");
    fails({{"pattern", "half"}}, "pattern: 'half' is not a pattern");
    fails({{"pattern", "1:4"}, {"sparsity", 0.6}}, "sparsity: 0.6 does not fit pattern 1:4");
    fails({{"method", "wanda"}, {"scope", "global"}}, "scope: global");
    fails({{"owl", true}, {"pattern", "2:4"}}, "owl: needs pattern unstructured");
    fails({{"pattern", "2:4"}, {"sparsity", {{"*", 0.5}}}}, "sparsity: a per-tensor map");
    fails({{"method", "sparsegpt"}, {"pattern", "3:7"}}, "block_size: 128 is not a multiple of 7");
}

TEST_CASE(
    "prune through edgepack compress: exit 2 naming the field, dry-run plan, .epk keeps "
    "the sparse tensors",
    "[prune][cli]") {
    auto model = test::shared_models() / "stories260k" / "model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    auto recipe = [&](json pass) {
        json r = {{"model", model.string()}, {"passes", json::array({pass})}};
        auto p = dir / "recipe.json";
        std::ofstream(p) << r.dump();
        return p.string();
    };
    auto bad = test::run_edgepack({"compress", recipe({{"pass", "prune"}, {"sparsity", 1.2}}), "-o",
                                   (dir / "o.epk").string()});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("passes[0]") && Catch::Contains("sparsity"));
    CHECK_FALSE(std::filesystem::exists(dir / "o.epk"));
    auto nm = test::run_edgepack({"compress", recipe({{"pass", "prune"}, {"pattern", "4:8"}}), "-o",
                                  (dir / "o.epk").string(), "--dry-run"});
    CHECK(nm.exit_code == 0);
    CHECK_THAT(
        nm.out + nm.err,
        Catch::Contains("skip layers.0.feed_forward.w2.weight_T: reduction length 172 is not "
                        "a multiple of 8") &&
            Catch::Contains("skip output.weight_T: the output layer"));
    CHECK_FALSE(std::filesystem::exists(dir / "o.epk"));
    auto ok = test::run_edgepack({"compress", recipe({{"pass", "prune"}, {"pattern", "2:4"}}), "-o",
                                  (dir / "o.epk").string()});
    INFO(ok.err);
    REQUIRE(ok.exit_code == 0);
    Model out = load_model(dir / "o.epk");
    const Tensor* w = out.graph.find_initializer("layers.0.feed_forward.w2.weight_T");
    REQUIRE(w != nullptr);
    CHECK(encoding_name(w->encoding) == "2:4");
    CHECK(kept_fraction(*w) == Approx(0.5));
}

TEST_CASE("prune on a safetensors checkpoint: 2-D weights by name, embeddings and norms kept",
          "[prune]") {
    Model m;
    m.format = SourceFormat::Safetensors;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, DType dtype) {
        size_t n = 1;
        for (auto d : shape) n *= static_cast<size_t>(d);
        Tensor t = make_f32_tensor(name, shape, normal_values(n, static_cast<uint32_t>(n)));
        if (dtype == DType::F16) {
            auto f = t.to_floats();
            std::vector<std::byte> b(f.size() * 2);
            for (size_t i = 0; i < f.size(); ++i) {
                uint16_t h = float_to_half(f[i]);
                std::memcpy(b.data() + 2 * i, &h, 2);
            }
            t.dtype = DType::F16;
            t.data = TensorData::owned(std::move(b));
        }
        m.graph.initializers.push_back(std::move(t));
    };
    add("model.embed_tokens.weight", {64, 32}, DType::F32);
    add("model.layers.0.mlp.up_proj.weight", {64, 32}, DType::F16);
    add("model.layers.0.input_layernorm.weight", {32}, DType::F32);
    add("lm_head.weight", {64, 32}, DType::F32);
    const Model original = m;
    PassResult r = run(m, {{"pattern", "2:4"}});
    REQUIRE(r.pruned.size() == 1);
    CHECK(r.pruned[0].op == "tensor");
    CHECK(test::has_skip(r, "model.embed_tokens.weight", "an embedding table"));
    CHECK(test::has_skip(r, "lm_head.weight", "the output layer"));
    CHECK(test::has_skip(r, "model.layers.0.input_layernorm.weight", "rank 1"));
    const Tensor& t = *m.graph.find_initializer("model.layers.0.mlp.up_proj.weight");
    CHECK(t.dtype == DType::F16);
    CHECK(encoding_name(t.encoding) == "2:4");
    // [out, in]: the 2:4 groups run along each row; kept values are the f16 values as they were.
    auto after = t.to_floats();
    auto before = test::floats_of(original, "model.layers.0.mlp.up_proj.weight");
    for (int64_t o = 0; o < 64; ++o)
        for (int64_t k0 = 0; k0 < 32; k0 += 4) {
            int kept = 0;
            for (int64_t k = k0; k < k0 + 4; ++k) {
                const float v = at(after, 32, o, k);
                kept += v != 0.0f;
                if (v != 0.0f) CHECK(v == at(before, 32, o, k));
            }
            CHECK(kept == 2);
        }
}

namespace {

nlohmann::json read_json_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

}  // namespace

// The acceptance table of docs/pruning.md: stories260k pruned 50% unstructured and 2:4 by
// each method (calibrated on 32 of the set-up's self-sampled token sequences, the same as
// the GPTQ example), measured by `edgepack compress`'s validate section on the 64
// evaluation sequences: KL and top-1 agreement against the float model.
TEST_CASE("stories260k: wanda and sparsegpt KL below magnitude at 50% unstructured and at 2:4",
          "[prune][acceptance][real]") {
    const auto model = test::shared_models() / "stories260k" / "model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    const auto data = test::source_dir() / ".cache" / "data";
    REQUIRE(std::filesystem::exists(data / "stories260k-calib.npy"));
    REQUIRE(std::filesystem::exists(data / "stories260k-eval.npy"));
    test::TempDir dir;
    std::map<std::string, double> kl;
    for (const char* pattern : {"unstructured", "2:4"})
        for (const char* method : {"magnitude", "wanda", "sparsegpt"}) {
            const std::string key = std::string(method) + " " + pattern;
            INFO(key);
            json recipe = {{"model", model.string()},
                           {"passes", json::array({{{"pass", "prune"},
                                                    {"method", method},
                                                    {"sparsity", 0.5},
                                                    {"pattern", pattern}}})},
                           {"calibration",
                            {{"data", (data / "stories260k-calib.npy").string()}, {"samples", 32}}},
                           {"validate",
                            {{"data", (data / "stories260k-eval.npy").string()},
                             {"require_data", true},
                             {"threads", 2},
                             {"benchmark_runs", 0}}}};
            if (std::string(method) == "magnitude") recipe.erase("calibration");
            const auto file =
                dir / (std::string(method) + "-" + (pattern[0] == 'u' ? "u" : "24") + ".json");
            std::ofstream(file) << recipe.dump();
            const auto reports = dir / (file.stem().string() + "-report");
            auto c = test::run_edgepack({"compress", file.string(), "-o",
                                         (dir / (file.stem().string() + ".epk")).string(),
                                         "--report-dir", reports.string()});
            INFO(c.err);
            REQUIRE(c.exit_code == 0);
            CHECK_THAT(c.err, Catch::Contains("pruned 35 tensors with"));
            json report = read_json_file(reports / "report.json");
            kl[key] = report["metrics"]["kl_mean"].get<double>();
            WARN(key << ": KL mean " << kl[key] << ", same top-1 "
                     << report["metrics"]["top1_agreement"].get<double>() << "%");
        }
    CHECK(kl["wanda unstructured"] < kl["magnitude unstructured"]);
    CHECK(kl["sparsegpt unstructured"] < kl["magnitude unstructured"]);
    CHECK(kl["wanda 2:4"] < kl["magnitude 2:4"]);
    CHECK(kl["sparsegpt 2:4"] < kl["magnitude 2:4"]);
    CHECK(kl["magnitude unstructured"] < kl["magnitude 2:4"]);
}
