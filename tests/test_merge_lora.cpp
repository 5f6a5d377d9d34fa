// merge-lora (passes/merge_lora.h): PEFT adapters written here in PEFT's layout (seeded
// random factors, said so) merged onto small checkpoints and compared with W + s B A
// computed in double by the test; rsLoRA, DoRA, rank / alpha patterns, fan_in_fan_out,
// f16 / bf16 bases, saved tensors and lora biases; several adapters (cat, linear, ties,
// DARE) and subtract; every bad input an InputError naming the tensor and the field; the
// CLI's streaming path writes the in-memory bytes, and quantize-weights may follow.
#include <cmath>
#include <cstring>
#include <sstream>

#include "compressor/compress.h"
#include "formats/model_io.h"
#include "formats/safetensors.h"
#include "pass_model.h"
#include "passes/pass.h"
#include "support.h"

using namespace ep;
using namespace ep::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<double> as_doubles(const Tensor& t) {
    auto f = t.to_floats();
    return {f.begin(), f.end()};
}

Tensor with_dtype(Tensor t, DType dtype) {
    if (dtype == DType::F32) return t;
    auto v = t.to_floats();
    std::vector<std::byte> bytes(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        uint16_t h = dtype == DType::F16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
        std::memcpy(bytes.data() + i * 2, &h, 2);
    }
    t.dtype = dtype;
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

Tensor seeded(const std::string& name, std::vector<int64_t> shape, uint32_t seed,
              float scale = 0.1f) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    return make_f32_tensor(name, shape, normal_values(n, seed, scale));
}

// A two-layer checkpoint: q [out 12, in 10] and v [12, 10] as nn.Linear stores them, their
// biases, a classifier head and a norm the adapters do not touch.
Model base_checkpoint(DType dtype = DType::F32) {
    Model m;
    m.format = SourceFormat::Safetensors;
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            std::string name = cat("model.layers.", l, ".attn.", p);
            m.graph.initializers.push_back(
                with_dtype(seeded(name + ".weight", {12, 10}, 100 + l * 7 + p[0], 0.5f), dtype));
            m.graph.initializers.push_back(
                with_dtype(seeded(name + ".bias", {12}, 200 + l * 7 + p[0], 0.5f), dtype));
        }
    m.graph.initializers.push_back(seeded("score.weight", {3, 10}, 300, 0.5f));
    m.graph.initializers.push_back(seeded("model.norm.weight", {10}, 301, 0.5f));
    return m;
}

json lora_config(int r = 4, double alpha = 8) {
    return {{"peft_type", "LORA"},
            {"r", r},
            {"lora_alpha", alpha},
            {"target_modules", {"q", "v"}},
            {"fan_in_fan_out", false},
            {"use_rslora", false},
            {"use_dora", false},
            {"rank_pattern", json::object()},
            {"alpha_pattern", json::object()},
            {"bias", "none"},
            {"modules_to_save", nullptr}};
}

std::string key(int layer, const char* proj, const char* what) {
    return cat("base_model.model.model.layers.", layer, ".attn.", proj, ".", what);
}

// lora_A [r, in] and lora_B [out, r] for both layers' q and v (seeded random values).
std::vector<Tensor> lora_tensors(int r, uint32_t seed, int64_t in = 10, int64_t out = 12) {
    std::vector<Tensor> ts;
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            ts.push_back(seeded(key(l, p, "lora_A.weight"), {r, in}, seed++));
            ts.push_back(seeded(key(l, p, "lora_B.weight"), {out, r}, seed++));
        }
    return ts;
}

void write_adapter(const fs::path& dir, const json& config, std::vector<Tensor> tensors) {
    fs::create_directories(dir);
    test::write_file(dir / "adapter_config.json", config.dump(2));
    Model m;
    m.format = SourceFormat::Safetensors;
    m.graph.initializers = std::move(tensors);
    write_safetensors(m, dir / "adapter_model.safetensors");
}

const Tensor& find(const Model& m, const std::string& name) {
    const Tensor* t = m.graph.find_initializer(name);
    REQUIRE(t != nullptr);
    return *t;
}

std::unique_ptr<Pass> merge_pass(const fs::path& base_dir, json options) {
    auto pass = configured_pass("merge-lora", std::move(options));
    pass->read_files({base_dir, [](const fs::path& p) { return load_model(p); }});
    return pass;
}

PassResult merge(Model& m, const fs::path& base_dir, json options) {
    auto pass = merge_pass(base_dir, std::move(options));
    PassContext ctx;
    return pass->run(m, ctx);
}

// W + sum_j c_j B_j A_j in double, [out, in] (W given [out, in]).
std::vector<double> expected(
    std::vector<double> w, int64_t out, int64_t in,
    const std::vector<std::tuple<double, const Tensor*, const Tensor*>>& terms) {
    for (const auto& [c, a, b] : terms) {
        auto av = as_doubles(*a), bv = as_doubles(*b);
        const int64_t r = a->shape[0];
        for (int64_t o = 0; o < out; ++o)
            for (int64_t i = 0; i < in; ++i) {
                double d = 0;
                for (int64_t k = 0; k < r; ++k) d += bv[o * r + k] * av[k * in + i];
                w[o * in + i] += c * d;
            }
    }
    return w;
}

double max_abs_diff(const std::vector<double>& x, const std::vector<double>& y) {
    REQUIRE(x.size() == y.size());
    double m = 0;
    for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
    return m;
}

const Tensor& tensor_in(const std::vector<Tensor>& ts, const std::string& name) {
    for (const auto& t : ts)
        if (t.name == name) return t;
    FAIL("no tensor " << name);
    return ts.front();
}

std::vector<float> to_f32(const std::vector<double>& v) {
    return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("merge-lora: W' = W + (alpha / r) B A on a checkpoint, by name", "[lora]") {
    test::TempDir dir;
    auto tensors = lora_tensors(4, 1);
    tensors.push_back(seeded("base_model.model.score.weight", {3, 10}, 77));  // modules_to_save
    write_adapter(dir / "ad", lora_config(4, 8), tensors);
    Model m = base_checkpoint();
    const Model before = base_checkpoint();
    auto r = merge(m, dir.path(), {{"adapter", "ad"}});
    CHECK(r.changed);
    CHECK(r.rewrites == 5);
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            std::string w = cat("model.layers.", l, ".attn.", p, ".weight");
            INFO(w);
            auto want = expected(as_doubles(find(before, w)), 12, 10,
                                 {{2.0, &tensor_in(tensors, key(l, p, "lora_A.weight")),
                                   &tensor_in(tensors, key(l, p, "lora_B.weight"))}});
            // Rounded once to f32 from the double result.
            CHECK(find(m, w).to_floats() == to_f32(want));
        }
    CHECK(find(m, "score.weight").to_floats() ==
          tensor_in(tensors, "base_model.model.score.weight").to_floats());
    CHECK(find(m, "model.norm.weight").to_floats() ==
          find(before, "model.norm.weight").to_floats());
    CHECK(find(m, "model.layers.0.attn.q.bias").to_floats() ==
          find(before, "model.layers.0.attn.q.bias").to_floats());
    // The report: per-layer delta norms and the self-check.
    REQUIRE(r.summary.size() == 6);
    CHECK_THAT(r.summary[0],
               Catch::StartsWith("merged model.layers.0.attn.q.weight (model.layers.0.attn.q, "
                                 "rank 4): |delta|_F = "));
    CHECK_THAT(r.summary.back(), Catch::Contains("self-check: W' x = W x + B (A x) on 2 seeded"));
    auto plan = merge_pass(dir.path(), {{"adapter", "ad"}})->plan(before);
    REQUIRE(plan.size() == 5);
    CHECK_THAT(plan[0], Catch::StartsWith("[1/5] merge model.layers.0.attn.q.weight += B A "
                                          "(module model.layers.0.attn.q, rank 4, by name"));
    CHECK(plan[4] == "[5/5] replace score.weight with the adapter's saved copy");
}

TEST_CASE("merge-lora: rsLoRA, rank_pattern / alpha_pattern and fan_in_fan_out", "[lora]") {
    test::TempDir dir;
    // Layer 1's v has rank 2 and alpha 3 by pattern; the rest rank 4, alpha 8, rsLoRA.
    std::vector<Tensor> tensors;
    uint32_t seed = 10;
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            const int r = l == 1 && p[0] == 'v' ? 2 : 4;
            // fan_in_fan_out: the base stores [in 10, out 12] (GPT-2's Conv1D).
            tensors.push_back(seeded(key(l, p, "lora_A.weight"), {r, 10}, seed++));
            tensors.push_back(seeded(key(l, p, "lora_B.weight"), {12, r}, seed++));
        }
    auto config = lora_config(4, 8);
    config["use_rslora"] = true;
    config["fan_in_fan_out"] = true;
    config["rank_pattern"] = {{"layers.1.attn.v", 2}};
    config["alpha_pattern"] = {{"1.attn.v", 3}};
    write_adapter(dir / "ad", config, tensors);
    Model m;
    m.format = SourceFormat::Safetensors;
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"})
            m.graph.initializers.push_back(
                seeded(cat("model.layers.", l, ".attn.", p, ".weight"), {10, 12}, 50 + l + p[0]));
    const Model before = m;
    auto r = merge(m, dir.path(), {{"adapter", (dir / "ad").string()}});
    CHECK(r.rewrites == 4);
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            std::string w = cat("model.layers.", l, ".attn.", p, ".weight");
            INFO(w);
            const bool patterned = l == 1 && p[0] == 'v';
            const double s = patterned ? 3.0 / std::sqrt(2.0) : 8.0 / 2.0;
            // The base is [in, out]: transpose, merge, transpose back.
            auto b = as_doubles(find(before, w));
            std::vector<double> t(120);
            for (int i = 0; i < 10; ++i)
                for (int o = 0; o < 12; ++o) t[o * 10 + i] = b[i * 12 + o];
            auto want_t = expected(t, 12, 10,
                                   {{s, &tensor_in(tensors, key(l, p, "lora_A.weight")),
                                     &tensor_in(tensors, key(l, p, "lora_B.weight"))}});
            std::vector<double> want(120);
            for (int i = 0; i < 10; ++i)
                for (int o = 0; o < 12; ++o) want[i * 12 + o] = want_t[o * 10 + i];
            CHECK(find(m, w).to_floats() == to_f32(want));
        }
}

TEST_CASE("merge-lora: DoRA scales each output row to the magnitude vector", "[lora]") {
    test::TempDir dir;
    auto tensors = lora_tensors(4, 20);
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            auto mag = random_values(12, 30 + l, 0.5f, 2.0f);
            tensors.push_back(make_f32_tensor(key(l, p, "lora_magnitude_vector"), {12}, mag));
        }
    auto config = lora_config(4, 8);
    config["use_dora"] = true;
    write_adapter(dir / "ad", config, tensors);
    Model m = base_checkpoint();
    const Model before = base_checkpoint();
    (void)merge(m, dir.path(), {{"adapter", "ad"}});
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            std::string w = cat("model.layers.", l, ".attn.", p, ".weight");
            INFO(w);
            auto sum = expected(as_doubles(find(before, w)), 12, 10,
                                {{2.0, &tensor_in(tensors, key(l, p, "lora_A.weight")),
                                  &tensor_in(tensors, key(l, p, "lora_B.weight"))}});
            auto mag = as_doubles(tensor_in(tensors, key(l, p, "lora_magnitude_vector")));
            for (int o = 0; o < 12; ++o) {
                double n2 = 0;
                for (int i = 0; i < 10; ++i) n2 += sum[o * 10 + i] * sum[o * 10 + i];
                for (int i = 0; i < 10; ++i) sum[o * 10 + i] *= mag[o] / std::sqrt(n2);
            }
            auto got = as_doubles(find(m, w));
            CHECK(max_abs_diff(got, sum) <= 1e-6);
            // The merged rows have exactly the magnitude's norm (within f32 rounding).
            for (int o = 0; o < 12; ++o) {
                double n2 = 0;
                for (int i = 0; i < 10; ++i) n2 += got[o * 10 + i] * got[o * 10 + i];
                CHECK(std::sqrt(n2) == Approx(mag[o]).epsilon(1e-6));
            }
        }
}

TEST_CASE("merge-lora: f16 and bf16 bases get the double result rounded once", "[lora]") {
    const DType dtype = GENERATE(DType::F16, DType::BF16);
    INFO(dtype_name(dtype));
    test::TempDir dir;
    auto tensors = lora_tensors(4, 40);
    // A lora bias too (PEFT's lora_bias): the layer's bias gets s * b.
    tensors.push_back(seeded(key(0, "q", "lora_B.bias"), {12}, 49));
    write_adapter(dir / "ad", lora_config(4, 8), tensors);
    Model m = base_checkpoint(dtype);
    const Model before = base_checkpoint(dtype);
    auto r = merge(m, dir.path(), {{"adapter", "ad"}});
    CHECK(r.rewrites == 5);
    auto round = [&](double v) {
        float f = static_cast<float>(v);
        return dtype == DType::F16 ? half_to_float(float_to_half(f))
                                   : bf16_to_float(float_to_bf16(f));
    };
    for (int l = 0; l < 2; ++l)
        for (const char* p : {"q", "v"}) {
            std::string w = cat("model.layers.", l, ".attn.", p, ".weight");
            INFO(w);
            CHECK(find(m, w).dtype == dtype);
            auto want = expected(as_doubles(find(before, w)), 12, 10,
                                 {{2.0, &tensor_in(tensors, key(l, p, "lora_A.weight")),
                                   &tensor_in(tensors, key(l, p, "lora_B.weight"))}});
            std::vector<float> rounded;
            for (double v : want) rounded.push_back(round(v));
            CHECK(find(m, w).to_floats() == rounded);
        }
    auto bias = as_doubles(find(before, "model.layers.0.attn.q.bias"));
    auto lb = as_doubles(tensor_in(tensors, key(0, "q", "lora_B.bias")));
    std::vector<float> want_bias;
    for (size_t i = 0; i < bias.size(); ++i) want_bias.push_back(round(bias[i] + 2.0 * lb[i]));
    CHECK(find(m, "model.layers.0.attn.q.bias").to_floats() == want_bias);
}

TEST_CASE(
    "merge-lora: several adapters: cat is the weighted sum, linear / ties / dare follow "
    "PEFT, subtract gives the base back",
    "[lora]") {
    test::TempDir dir;
    auto t1 = lora_tensors(4, 60), t2 = lora_tensors(2, 70);
    write_adapter(dir / "a1", lora_config(4, 8), t1);  // s = 2
    write_adapter(dir / "a2", lora_config(2, 1), t2);  // s = 0.5
    const Model before = base_checkpoint();
    const std::string w = "model.layers.1.attn.v.weight";
    auto term = [&](double c, const std::vector<Tensor>& ts) {
        return std::tuple<double, const Tensor*, const Tensor*>{
            c, &tensor_in(ts, key(1, "v", "lora_A.weight")),
            &tensor_in(ts, key(1, "v", "lora_B.weight"))};
    };
    SECTION("cat: exactly W + w1 s1 B1 A1 + w2 s2 B2 A2, rank 6") {
        Model m = base_checkpoint();
        auto r = merge(m, dir.path(), {{"adapters", {"a1", "a2"}}, {"weights", {0.7, -1.5}}});
        CHECK_THAT(r.summary[3], Catch::Contains("rank 6"));
        auto want = expected(as_doubles(find(before, w)), 12, 10,
                             {term(0.7 * 2.0, t1), term(-1.5 * 0.5, t2)});
        CHECK(find(m, w).to_floats() == to_f32(want));
    }
    SECTION("linear: (sum sqrt(w s) B) (sum sqrt(w s) A), equal ranks") {
        write_adapter(dir / "a3", lora_config(4, 2), lora_tensors(4, 80));  // s = 0.5
        auto t3 = lora_tensors(4, 80);
        Model m = base_checkpoint();
        (void)merge(
            m, dir.path(),
            {{"adapters", {"a1", "a3"}}, {"weights", {1.0, 2.0}}, {"combination", "linear"}});
        const double v1 = std::sqrt(1.0 * 2.0), v3 = std::sqrt(2.0 * 0.5);
        auto a1 = as_doubles(tensor_in(t1, key(1, "v", "lora_A.weight")));
        auto a3 = as_doubles(tensor_in(t3, key(1, "v", "lora_A.weight")));
        auto b1 = as_doubles(tensor_in(t1, key(1, "v", "lora_B.weight")));
        auto b3 = as_doubles(tensor_in(t3, key(1, "v", "lora_B.weight")));
        std::vector<float> a(a1.size()), b(b1.size());
        for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(v1 * a1[i] + v3 * a3[i]);
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(v1 * b1[i] + v3 * b3[i]);
        Tensor at = make_f32_tensor("a", {4, 10}, a), bt = make_f32_tensor("b", {12, 4}, b);
        auto want = expected(as_doubles(find(before, w)), 12, 10, {{1.0, &at, &bt}});
        CHECK(max_abs_diff(as_doubles(find(m, w)), want) <= 1e-6);
        // Unequal ranks cannot combine linearly.
        CHECK_THROWS_WITH(
            merge_pass(dir.path(), {{"adapters", {"a1", "a2"}}, {"combination", "linear"}})
                ->plan(before),
            Catch::Contains("field 'r': rank 2 but another adapter's is 4"));
    }
    SECTION("ties with density 1 keeps the elected sign only; dare is seeded") {
        write_adapter(dir / "a3", lora_config(4, 8), lora_tensors(4, 90));
        auto t3 = lora_tensors(4, 90);
        Model m = base_checkpoint();
        (void)merge(m, dir.path(), {{"adapters", {"a1", "a3"}}, {"combination", "ties"}});
        // A: per element, the values with the sign of their sum, weighted by sqrt(w s) = sqrt(2),
        // averaged over how many kept.
        auto a1 = as_doubles(tensor_in(t1, key(1, "v", "lora_A.weight")));
        auto a3 = as_doubles(tensor_in(t3, key(1, "v", "lora_A.weight")));
        auto b1 = as_doubles(tensor_in(t1, key(1, "v", "lora_B.weight")));
        auto b3 = as_doubles(tensor_in(t3, key(1, "v", "lora_B.weight")));
        auto ties = [](const std::vector<double>& x, const std::vector<double>& y) {
            std::vector<float> out(x.size());
            for (size_t i = 0; i < x.size(); ++i) {
                const double sign = x[i] + y[i] >= 0 ? 1 : -1;
                double s = 0, n = 0;
                for (double v : {x[i], y[i]})
                    if ((v > 0 ? 1 : v < 0 ? -1 : 0) == sign) s += std::sqrt(2.0) * v, n += 1;
                out[i] = static_cast<float>(s / std::max(n, 1.0));
            }
            return out;
        };
        Tensor at = make_f32_tensor("a", {4, 10}, ties(a1, a3)),
               bt = make_f32_tensor("b", {12, 4}, ties(b1, b3));
        auto want = expected(as_doubles(find(before, w)), 12, 10, {{1.0, &at, &bt}});
        CHECK(max_abs_diff(as_doubles(find(m, w)), want) <= 1e-6);

        auto dare = [&](int seed) {
            Model d = base_checkpoint();
            (void)merge(d, dir.path(),
                        {{"adapters", {"a1", "a3"}},
                         {"combination", "dare_linear"},
                         {"density", 0.5},
                         {"seed", seed}});
            return find(d, w).to_floats();
        };
        CHECK(dare(1) == dare(1));
        CHECK(dare(1) != dare(2));
    }
    SECTION("subtract: merge then unmerge gives the base back within rounding") {
        Model m = base_checkpoint();
        (void)merge(m, dir.path(), {{"adapters", {"a1", "a2"}}, {"weights", {0.7, 1.5}}});
        CHECK(max_abs_diff(as_doubles(find(m, w)), as_doubles(find(before, w))) > 1e-3);
        (void)merge(m, dir.path(),
                    {{"adapters", {"a1", "a2"}}, {"weights", {0.7, 1.5}}, {"subtract", true}});
        for (const auto& t : before.graph.initializers) {
            INFO(t.name);
            CHECK(max_abs_diff(as_doubles(find(m, t.name)), as_doubles(t)) <= 1e-6);
        }
    }
}

TEST_CASE("merge-lora: bad adapters and mismatches are input errors naming tensor and field",
          "[lora]") {
    test::TempDir dir;
    Model m = base_checkpoint();
    const std::string before = fingerprint(m);
    auto fails = [&](const json& options, const std::string& message) {
        INFO(options.dump());
        try {
            auto pass = merge_pass(dir.path(), options);
            PassContext ctx;
            (void)pass->run(m, ctx);
            FAIL("no error");
        } catch (const InputError& e) {
            CHECK_THAT(e.what(), Catch::Contains(message));
        }
        CHECK(fingerprint(m) == before);  // nothing changed
    };
    SECTION("a pickled adapter asks for safetensors") {
        fs::create_directories(dir / "bin");
        test::write_file(dir / "bin" / "adapter_config.json", lora_config().dump());
        test::write_file(dir / "bin" / "adapter_model.bin", "PK");
        fails({{"adapter", "bin"}}, "adapter_model.bin is a pickled PyTorch file");
    }
    SECTION("config fields") {
        auto c = lora_config();
        c.erase("r");
        write_adapter(dir / "ad", c, lora_tensors(4, 1));
        fails({{"adapter", "ad"}}, "adapter_config.json: field 'r': missing (required)");
        c = lora_config();
        c["target_modules"] = 3;
        write_adapter(dir / "ad", c, lora_tensors(4, 1));
        fails({{"adapter", "ad"}}, "field 'target_modules': expected a list");
    }
    SECTION("rank against the config") {
        write_adapter(dir / "ad", lora_config(8), lora_tensors(4, 1));
        fails({{"adapter", "ad"}},
              "module 'model.layers.0.attn.q': lora_A.weight [4, 10] has rank 4 but "
              "adapter_config.json r = 8");
    }
    SECTION("lora_A and lora_B ranks") {
        auto ts = lora_tensors(4, 1);
        ts[1] = seeded(key(0, "q", "lora_B.weight"), {12, 3}, 5);
        write_adapter(dir / "ad", lora_config(4), ts);
        fails({{"adapter", "ad"}}, "lora_B.weight [12, 3] has rank 3");
    }
    SECTION("shapes against the base") {
        write_adapter(dir / "ad", lora_config(4), lora_tensors(4, 1, 11, 12));
        fails({{"adapter", "ad"}},
              "tensor 'model.layers.0.attn.q.weight' (module "
              "model.layers.0.attn.q): shape [12, 10] but the adapter's "
              "lora_B x lora_A gives [12, 11]");
    }
    SECTION("a module outside target_modules") {
        auto c = lora_config();
        c["target_modules"] = {"q"};
        write_adapter(dir / "ad", c, lora_tensors(4, 1));
        fails({{"adapter", "ad"}},
              "module 'model.layers.0.attn.v': not in adapter_config.json target_modules");
    }
    SECTION("a module with no target, listed; allow_unmatched skips it with a reason") {
        auto ts = lora_tensors(4, 1);
        ts.push_back(seeded("base_model.model.model.layers.0.mlp.q.lora_A.weight", {4, 10}, 9));
        ts.push_back(seeded("base_model.model.model.layers.0.mlp.q.lora_B.weight", {12, 4}, 9));
        write_adapter(dir / "ad", lora_config(4), ts);
        fails({{"adapter", "ad"}}, "model.layers.0.mlp.q");
        auto r = merge(m, dir.path(), {{"adapter", "ad"}, {"allow_unmatched", true}});
        CHECK(r.rewrites == 4);
        REQUIRE(r.skipped.size() == 1);
        CHECK(r.skipped[0].name == "model.layers.0.mlp.q");
    }
    SECTION("a DoRA config without magnitudes, a non-float adapter tensor") {
        auto c = lora_config();
        c["use_dora"] = true;
        write_adapter(dir / "ad", c, lora_tensors(4, 1));
        fails({{"adapter", "ad"}}, "use_dora is true but the module has no lora_magnitude_vector");
        auto ts = lora_tensors(4, 1);
        ts[0].dtype = DType::I32;
        write_adapter(dir / "ad", lora_config(), ts);
        fails({{"adapter", "ad"}},
              "tensor 'base_model.model.model.layers.0.attn.q.lora_A.weight': "
              "dtype i32");
    }
    SECTION("options") {
        write_adapter(dir / "ad", lora_config(), lora_tensors(4, 1));
        CHECK_THROWS_WITH(configured_pass("merge-lora", json::object()),
                          Catch::Contains("adapter: missing"));
        CHECK_THROWS_WITH(
            configured_pass("merge-lora", {{"adapters", {"a", "b"}}, {"weights", {1}}}),
            Catch::Contains("weights: 1 weights for 2 adapters"));
        fails({{"adapter", "nowhere"}}, "nowhere: not a directory");
    }
}

namespace {

// `edgepack compress` in this process; `in_memory` forces the in-memory path (--verify-each).
std::string compress(const test::TempDir& dir, const std::string& recipe, bool in_memory) {
    test::write_file(dir / "r.json", recipe);
    CompressOptions o;
    o.recipe = dir / "r.json";
    o.manager.verify_each = in_memory;
    std::ostringstream out, err;
    int code = run_compress(o, out, err);
    INFO(err.str());
    REQUIRE(code == 0);
    return err.str();
}

}  // namespace

TEST_CASE(
    "merge-lora: compress streams a checkpoint's merge with the in-memory bytes, and "
    "quantize-weights may follow in the same recipe",
    "[lora][stream]") {
    test::TempDir dir;
    const DType dtype = GENERATE(DType::F32, DType::BF16);
    INFO(dtype_name(dtype));
    write_safetensors(base_checkpoint(dtype), dir / "base.safetensors");
    auto tensors = lora_tensors(4, 1);
    tensors.push_back(seeded("base_model.model.score.weight", {3, 10}, 77));
    auto config = lora_config(4, 8);
    write_adapter(dir / "ad", config, tensors);
    auto recipe = [](const std::string& passes, const std::string& output) {
        return cat("{\"model\": \"base.safetensors\", \"passes\": [", passes, "], \"output\": \"",
                   output, "\"}");
    };
    const std::string merge_entry = "{\"pass\": \"merge-lora\", \"adapter\": \"ad\"}";
    auto streamed = compress(dir, recipe(merge_entry, "streamed.safetensors"), false);
    CHECK_THAT(streamed, Catch::Contains("merge"));
    (void)compress(dir, recipe(merge_entry, "memory.safetensors"), true);
    CHECK(test::read_file(dir / "streamed.safetensors") ==
          test::read_file(dir / "memory.safetensors"));
    // The file is the merge: the same tensors as the pass run in memory.
    Model m = base_checkpoint(dtype);
    (void)merge(m, dir.path(), {{"adapter", "ad"}});
    Model streamed_model = load_model(dir / "streamed.safetensors");
    for (const auto& t : m.graph.initializers) {
        INFO(t.name);
        CHECK(find(streamed_model, t.name).to_floats() == t.to_floats());
    }
    // merge-lora then quantize-weights in one recipe = quantize-weights on the merged file.
    const std::string quantize =
        "{\"pass\": \"quantize-weights\", \"bits\": 8, "
        "\"group_size\": 0, \"min_elements\": 1}";
    (void)compress(dir, recipe(merge_entry + ", " + quantize, "both.epk"), false);
    test::write_file(dir / "r2.json", cat("{\"model\": \"memory.safetensors\", \"passes\": [",
                                          quantize, "], \"output\": \"after.epk\"}"));
    {
        CompressOptions o;
        o.recipe = dir / "r2.json";
        std::ostringstream out, err;
        REQUIRE(run_compress(o, out, err) == 0);
    }
    Model both = load_model(dir / "both.epk"), after = load_model(dir / "after.epk");
    size_t encoded = 0;
    for (const auto& t : after.graph.initializers) {
        INFO(t.name);
        const Tensor& u = find(both, t.name);
        CHECK(u.encoding == t.encoding);
        encoded += t.is_encoded();
        CHECK(std::equal(u.data.bytes().begin(), u.data.bytes().end(), t.data.bytes().begin(),
                         t.data.bytes().end()));
    }
    CHECK(encoded == 5);  // 4 merged weights and the replaced head
}

TEST_CASE("merge-lora: a bad adapter fails the dry run with exit 2 and writes nothing", "[lora]") {
    test::TempDir dir;
    write_safetensors(base_checkpoint(), dir / "base.safetensors");
    write_adapter(dir / "ad", lora_config(8), lora_tensors(4, 1));
    test::write_file(dir / "r.json",
                     "{\"model\": \"base.safetensors\", \"passes\": [{\"pass\": "
                     "\"merge-lora\", \"adapter\": \"ad\"}], \"output\": \"out.safetensors\"}");
    for (bool dry : {true, false}) {
        std::vector<std::string> args = {"compress", (dir / "r.json").string()};
        if (dry) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("lora_A.weight [4, 10] has rank 4 but "
                                          "adapter_config.json r = 8"));
        CHECK_FALSE(fs::exists(dir / "out.safetensors"));
    }
    // The same recipe with a matching adapter: the dry run plans one line per tensor.
    write_adapter(dir / "ad", lora_config(4), lora_tensors(4, 1));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--dry-run"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out + r.err, Catch::Contains("merge model.layers.1.attn.v.weight += B A"));
    CHECK_FALSE(fs::exists(dir / "out.safetensors"));
}

TEST_CASE("merge-lora: the shared GPT-2 adapter on a GPT-2-shaped checkpoint (Conv1D [in, out])",
          "[lora]") {
    const auto dir = test::shared_models() / "peft-gpt2-lora";
    EP_REQUIRE_FILE_OR_SKIP(dir / "adapter_model.safetensors");
    // The GPT-2 base is not available offline: two of its twelve c_attn weights with seeded
    // random values (said so), and the classifier head; the other ten modules are skipped
    // with allow_unmatched, each with its reason.
    Model m;
    m.format = SourceFormat::Safetensors;
    for (int l : {0, 11})
        m.graph.initializers.push_back(
            seeded(cat("transformer.h.", l, ".attn.c_attn.weight"), {768, 2304}, 500 + l, 0.02f));
    m.graph.initializers.push_back(seeded("score.weight", {6, 768}, 600, 0.02f));
    const Model before = m;
    auto r = merge(m, dir, {{"adapter", dir.string()}, {"allow_unmatched", true}});
    CHECK(r.rewrites == 3);
    CHECK(r.skipped.size() == 10);
    Model adapter = load_model(dir / "adapter_model.safetensors");
    for (int l : {0, 11}) {
        const std::string w = cat("transformer.h.", l, ".attn.c_attn.weight");
        INFO(w);
        auto a = as_doubles(
            find(adapter, cat("base_model.model.", w.substr(0, w.size() - 7), ".lora_A.weight")));
        auto b = as_doubles(
            find(adapter, cat("base_model.model.", w.substr(0, w.size() - 7), ".lora_B.weight")));
        auto base = as_doubles(find(before, w));
        auto got = as_doubles(find(m, w));
        // lora_alpha / r = 8 / 8; the base is [in 768, out 2304]: W'[i][o] = W[i][o] + (BA)[o][i].
        double worst = 0, change = 0;
        for (int i = 0; i < 768; i += 7)
            for (int o = 0; o < 2304; o += 5) {
                double d = 0;
                for (int k = 0; k < 8; ++k) d += b[o * 8 + k] * a[k * 768 + i];
                const double want = static_cast<float>(base[i * 2304 + o] + d);
                worst = std::max(worst, std::fabs(got[i * 2304 + o] - want));
                change = std::max(change, std::fabs(d));
            }
        CHECK(worst == 0.0);
        CHECK(change > 1e-4);  // the adapter is not a no-op
    }
    CHECK(find(m, "score.weight").to_floats() ==
          find(adapter, "base_model.model.score.weight").to_floats());
}

TEST_CASE(
    "merge-lora: the stories260k adapter onto model.onnx (graph positions, MatMul [in, out]) "
    "and onto model.safetensors (names), then subtracted",
    "[lora]") {
    const auto models = test::shared_models() / "stories260k";
    const auto data = test::source_dir() / ".cache" / "data";
    EP_REQUIRE_FILE_OR_SKIP(models / "model.onnx");
    EP_REQUIRE_FILE_OR_SKIP(data / "stories260k-lora" / "adapter_model.safetensors");
    EP_REQUIRE_FILE_OR_SKIP(data / "stories260k-lora-hf" / "adapter_model.safetensors");
    // The merged tensor of `module` in `summary` ("merged T (module, rank 4): ...").
    auto merged_tensor = [](const PassResult& r, const std::string& module) {
        for (const auto& line : r.summary)
            if (auto at = line.find(cat(" (", module, ", rank")); at != std::string::npos)
                return line.substr(7, at - 7);
        FAIL("no summary line for " << module);
        return std::string();
    };
    for (const char* which : {"onnx", "safetensors"}) {
        INFO(which);
        const bool onnx = which[0] == 'o';
        Model m = load_model(models / (onnx ? "model.onnx" : "model.safetensors"));
        const Model before = m;
        const std::string name = onnx ? "stories260k-lora" : "stories260k-lora-hf";
        auto r = merge(m, data, {{"adapter", name}});
        CHECK(r.rewrites == 15);  // q, v and the FFN down projection of 5 layers
        Model adapter = load_model(data / name / "adapter_model.safetensors");
        // Layer 3's v projection [out 32, in 64] (stored [in, out] by a MatMul); alpha / r = 2.
        const std::string module =
            onnx ? "layers.3.attention.wv" : "model.layers.3.self_attn.v_proj";
        auto a = as_doubles(find(adapter, cat("base_model.model.", module, ".lora_A.weight")));
        auto b = as_doubles(find(adapter, cat("base_model.model.", module, ".lora_B.weight")));
        const std::string w = merged_tensor(r, module);
        const Tensor& got = find(m, w);
        auto base = as_doubles(find(before, w));
        CHECK(got.shape == (onnx ? std::vector<int64_t>{64, 32} : std::vector<int64_t>{32, 64}));
        std::vector<float> want(base.size());
        for (int o = 0; o < 32; ++o)
            for (int i = 0; i < 64; ++i) {
                double d = 0;
                for (int k = 0; k < 4; ++k) d += b[o * 4 + k] * a[k * 64 + i];
                const size_t at =
                    onnx ? static_cast<size_t>(i * 32 + o) : static_cast<size_t>(o * 64 + i);
                want[at] = static_cast<float>(base[at] + 2.0 * d);
            }
        CHECK(got.to_floats() == want);
        // Unmerged, every tensor is the base's again within rounding.
        (void)merge(m, data, {{"adapter", name}, {"subtract", true}});
        for (const auto& t : before.graph.initializers) {
            if (traits(t.dtype).kind != DTypeKind::Float) continue;
            INFO(t.name);
            CHECK(max_abs_diff(as_doubles(find(m, t.name)), as_doubles(t)) <= 1e-6);
        }
    }
}

TEST_CASE("merge-lora: a saved head renamed by the ONNX exporter is found through the graph",
          "[lora]") {
    // torch.onnx stores an nn.Linear head transposed, [in, out], under a new name
    // ("onnx::MatMul_2626" for GPT-2's score); the adapter saves it [out, in] as score.weight.
    Model m;
    m.opset_imports.push_back({"", 17});
    m.graph.inputs.push_back(value("x"));
    m.graph.initializers.push_back(seeded("onnx::MatMul_1", {10, 12}, 1, 0.5f));
    m.graph.initializers.push_back(seeded("onnx::MatMul_2", {10, 3}, 2, 0.5f));
    m.graph.nodes.push_back(
        make_node("MatMul", "/model/layers.0/attn/q/MatMul", {"x", "onnx::MatMul_1"}, {"q"}));
    m.graph.nodes.push_back(make_node("MatMul", "/score/MatMul", {"x", "onnx::MatMul_2"}, {"y"}));
    m.graph.outputs.push_back(value("q"));
    m.graph.outputs.push_back(value("y"));
    const Model before = m;

    test::TempDir dir;
    Tensor a = seeded(key(0, "q", "lora_A.weight"), {4, 10}, 3);
    Tensor b = seeded(key(0, "q", "lora_B.weight"), {12, 4}, 4);
    Tensor head = seeded("base_model.model.score.weight", {3, 10}, 5);
    write_adapter(dir / "adapter", lora_config(), {a, b, head});
    auto r = merge(m, dir.path(), {{"adapter", "adapter"}});
    INFO(r.summary.size());
    CHECK(r.rewrites == 2);

    // The head: the saved [3, 10] values, transposed into the graph's [10, 3].
    auto saved = head.to_floats();
    std::vector<float> want(30);
    for (int o = 0; o < 3; ++o)
        for (int i = 0; i < 10; ++i) want[static_cast<size_t>(i * 3 + o)] = saved[o * 10 + i];
    CHECK(find(m, "onnx::MatMul_2").to_floats() == want);
    bool said = false;
    for (const auto& line : r.summary)
        said = said || line.find("onnx::MatMul_2 (score.weight, transposed)") != std::string::npos;
    CHECK(said);

    // The LoRA module by node name, [in, out]: W + 2 (B A)^T.
    auto w = as_doubles(find(before, "onnx::MatMul_1"));
    auto av = as_doubles(a), bv = as_doubles(b);
    std::vector<float> merged(w.size());
    for (int i = 0; i < 10; ++i)
        for (int o = 0; o < 12; ++o) {
            double d = 0;
            for (int k = 0; k < 4; ++k) d += bv[o * 4 + k] * av[k * 10 + i];
            merged[static_cast<size_t>(i * 12 + o)] = static_cast<float>(w[i * 12 + o] + 2.0 * d);
        }
    CHECK(find(m, "onnx::MatMul_1").to_floats() == merged);
}
