// The quantize-weights pass, GPTQ / AWQ solvers, calibration data and the acceptance
// measurements of issue 4 (stories260k KL, MNIST accuracy; docs/quantization.md).
//
// Unit tests build tiny graphs in C++; the real-model tests run the edgepack binary
// (compress to .epk, then validate) and skip when ../shared/models is absent.
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "calibration/calibration.h"
#include "calibration/solvers.h"
#include "compressor/calibration_data.h"
#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "formats/model_io.h"
#include "ir/encoding.h"
#include "op_model.h"
#include "pass_model.h"
#include "passes/registry.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "runtime-check/synthetic_inputs.h"
#include "solver_cases.h"
#include "support.h"

using namespace ep;
using ep::test::int_attr;
using ep::test::make_node;
using ep::test::normal_values;
using nlohmann::json;

namespace {

// x [2, 64] feeds: MatMul W1 [64, 48]; Gemm W2 [64, 40] (transB 0); Gemm W3 [40, 64]
// (transB 1); MatMul small [64, 8] (512 elements); MatMul W4 [64, 32] also read by an Add;
// MatMul(x, xt) where xt is computed.
Model layouts_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    ValueInfo x;
    x.name = "x";
    ValueType t;
    t.elem = DType::F32;
    t.shape = std::vector<Dim>{Dim{2, {}, {}}, Dim{64, {}, {}}};
    x.type = t;
    m.graph.inputs = {x};
    auto add = [&](const char* name, std::vector<int64_t> shape, uint32_t seed) {
        size_t n = 1;
        for (auto d : shape) n *= static_cast<size_t>(d);
        m.graph.initializers.push_back(make_f32_tensor(name, shape, normal_values(n, seed)));
    };
    add("W1", {64, 48}, 1);
    add("W2", {64, 40}, 2);
    add("W3", {40, 64}, 3);
    add("small", {64, 8}, 4);
    add("W4", {64, 32}, 5);
    add("B4", {2, 32}, 6);
    auto& g = m.graph;
    g.nodes.push_back(make_node("MatMul", "mm1", {"x", "W1"}, {"y1"}));
    g.nodes.push_back(make_node("Gemm", "gemm2", {"x", "W2"}, {"y2"}));
    g.nodes.push_back(make_node("Gemm", "gemm3", {"x", "W3"}, {"y3"}));
    g.nodes.back().attributes.push_back(int_attr("transB", 1));
    g.nodes.push_back(make_node("MatMul", "mm_small", {"x", "small"}, {"y4"}));
    g.nodes.push_back(make_node("MatMul", "mm4", {"x", "W4"}, {"y5"}));
    g.nodes.push_back(make_node("Add", "add4", {"W4", "B4"}, {"y6"}));
    g.nodes.push_back(make_node("Transpose", "tr", {"x"}, {"xt"}));
    g.nodes.push_back(make_node("MatMul", "mm_act", {"x", "xt"}, {"y7"}));
    for (const char* o : {"y1", "y2", "y3", "y4", "y5", "y6", "y7"}) {
        ValueInfo v;
        v.name = o;
        g.outputs.push_back(v);
    }
    return m;
}

// The quantize-weights pass configured with `options`.
std::unique_ptr<Pass> configured(const json& options) {
    return test::configured_pass("quantize-weights", options);
}

std::string reason_of(const PassResult& r, const std::string& name) {
    for (const auto& s : r.skipped)
        if (s.name == name) return s.reason;
    return "(not skipped)";
}

std::vector<std::byte> bytes_of(const Tensor& t) {
    auto b = t.data.bytes();
    return {b.begin(), b.end()};
}

// The bytes of each float weight quantized along `axis` with `scheme` by
// scripts/xcheck/rtn_ref.py: the formulas of ir/encoding.h in numpy, no edgepack code.
std::vector<std::vector<std::byte>> numpy_rtn(const std::vector<std::pair<const Tensor*, int>>& ws,
                                              const std::string& scheme) {
    test::TempDir dir;
    std::vector<std::string> args{scheme, dir.path().string()};
    for (size_t i = 0; i < ws.size(); ++i) {
        auto npy = dir / ("w" + std::to_string(i) + ".npy");
        write_npy(*ws[i].first, npy);
        args.push_back(npy.string() + ":" + std::to_string(ws[i].second));
    }
    auto r = test::run_oracle("rtn_ref.py", args);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<std::vector<std::byte>> out;
    for (size_t i = 0; i < ws.size(); ++i) {
        std::string b = test::read_file(dir / ("w" + std::to_string(i) + ".bin"));
        auto* p = reinterpret_cast<const std::byte*>(b.data());
        out.emplace_back(p, p + b.size());
    }
    return out;
}

}  // namespace

TEST_CASE(
    "quantize-weights rtn encodes MatMul and Gemm weights in their layouts with the bytes of the "
    "reference quantizer",
    "[quantize]") {
    Model original = layouts_model();
    Model m = original;
    auto pass = configured({{"bits", 4}, {"group_size", 32}});
    PassContext ctx;
    PassResult r = pass->run(m, ctx);
    CHECK(r.changed);
    CHECK(r.rewrites == 3);
    struct Want {
        const char* name;
        uint8_t axis;
    };
    const std::vector<Want> wants{{"W1", 0}, {"W2", 0}, {"W3", 1}};
    std::vector<std::pair<const Tensor*, int>> floats;
    for (Want w : wants) floats.emplace_back(original.graph.find_initializer(w.name), w.axis);
    const auto want_bytes = numpy_rtn(floats, "int4g32");
    for (size_t i = 0; i < wants.size(); ++i) {
        const Want w = wants[i];
        INFO(w.name);
        const Tensor* t = m.graph.find_initializer(w.name);
        REQUIRE(t != nullptr);
        REQUIRE(t->is_encoded());
        CHECK(encoding_name(t->encoding) == "int4g32");
        CHECK(t->encoding.axis == w.axis);
        CHECK(t->dtype == DType::F32);
        CHECK(t->shape == original.graph.find_initializer(w.name)->shape);
        CHECK(bytes_of(*t) == want_bytes[i]);
    }
    CHECK(reason_of(r, "small") == "512 elements, below min_elements 1024");
    CHECK(reason_of(r, "W4").find("shared with Add 'add4' (input 0)") != std::string::npos);
    CHECK(reason_of(r, "xt") == "not an initializer (an activation computed by Transpose)");
    CHECK_FALSE(m.graph.find_initializer("W4")->is_encoded());

    // The dequantized weights are the RTN reconstruction: error within half a step.
    auto deq = m.graph.find_initializer("W1")->to_floats();
    auto orig = original.graph.find_initializer("W1")->to_floats();
    double worst = 0.0;
    for (size_t i = 0; i < deq.size(); ++i)
        worst = std::max(worst, double(std::fabs(deq[i] - orig[i])));
    CHECK(worst < 0.6);  // |w| <~ 4.5 sigma: step <= 4.5/8, half a step < 0.3
}

TEST_CASE("quantize-weights int8 per channel with include/exclude and min_elements", "[quantize]") {
    Model m = layouts_model();
    auto pass = configured({{"bits", 8},
                            {"group_size", 0},
                            {"min_elements", 0},
                            {"include", {"W*", "small"}},
                            {"exclude", {"W2"}}});
    PassContext ctx;
    PassResult r = pass->run(m, ctx);
    CHECK(r.rewrites == 3);  // W1, W3, small
    CHECK(encoding_name(m.graph.find_initializer("small")->encoding) == "int8c");
    CHECK(m.graph.find_initializer("small")->encoding.axis == 0);
    CHECK(reason_of(r, "W2") == "not selected by include/exclude");
    // Running it again: already encoded tensors are skipped, nothing changes.
    PassResult again =
        configured({{"bits", 8}, {"group_size", 0}, {"min_elements", 0}, {"exclude", {"W2"}}})
            ->run(m, ctx);
    CHECK(again.rewrites == 0);
    CHECK(reason_of(again, "W1") == "already encoded (int8c)");
}

TEST_CASE("quantize-weights plan: one line per tensor with encodings and sizes", "[quantize]") {
    Model m = layouts_model();
    auto lines = configured({{"bits", 4}, {"group_size", 32}})->plan(m);
    REQUIRE(lines.size() >= 4);
    // 64 x 48 f32 = 12288 bytes; int4g32: 48 rows x 2 blocks x 18 bytes = 1728.
    CHECK(lines[0] == "[1/3] W1 [64, 48] f32 -> int4g32, 0.01 MiB -> 0.00 MiB");
    CHECK(lines[2] == "[3/3] W3 [40, 64] f32 -> int4g32, 0.01 MiB -> 0.00 MiB");
    CHECK(std::find(lines.begin(), lines.end(),
                    "skip small: 512 elements, below min_elements 1024") != lines.end());
    CHECK(std::find(
              lines.begin(), lines.end(),
              "skip B4: read by Add (input 1): not a weight of a MatMul, Gemm, Conv or Gather") !=
          lines.end());
    CHECK(std::find(lines.begin(), lines.end(),
                    "1 MatMul weight int4g32 with rtn (12288 -> 1728 bytes)") != lines.end());
    CHECK(std::find(lines.begin(), lines.end(),
                    "2 Gemm weights int4g32 with rtn (20480 -> 2880 bytes)") != lines.end());
    CHECK(lines.back() == "3 tensors to quantize: 0.03 MiB -> 0.00 MiB; 4 skipped");
    CHECK_FALSE(m.graph.find_initializer("W1")->is_encoded());  // plan changes nothing
}

TEST_CASE("quantize-weights rejects unusable option combinations naming the option", "[quantize]") {
    auto fails = [](const json& o, const std::string& text) {
        auto p = create_pass("quantize-weights");
        try {
            p->configure(o);
            FAIL("no error for " << o.dump());
        } catch (const InputError& e) {
            CHECK_THAT(e.what(), Catch::Contains(text));
        }
    };
    fails({{"bits", 4}, {"group_size", 0}},
          "group_size: 0 (one scale per output channel) is int8 only");
    fails({{"bits", 8}, {"group_size", 0}, {"symmetric", false}}, "symmetric:");
    fails({{"bits", 6}}, "bits: 6 is not supported");
    fails({{"group_size", 48}}, "group_size: 48 is not supported");

    test::TempDir dir;
    test::write_file(dir / "m.onnx", "x");
    auto recipe = [&](const std::string& body) {
        return parse_recipe(cat(R"({"model": "m.onnx", )", body, "}"), "r.json", dir.path());
    };
    auto recipe_fails = [&](const std::string& body, const std::string& text) {
        try {
            (void)recipe(body);
            FAIL("no error for " << body);
        } catch (const Error& e) {
            CHECK(static_cast<int>(e.code()) == 2);
            CHECK_THAT(e.what(), Catch::Contains(text));
        }
    };
    recipe_fails(R"("passes": [{"pass": "quantize-weights", "group_sise": 32}])",
                 "r.json: passes[0].group_sise: unknown option; did you mean group_size?");
    recipe_fails(R"("passes": [{"pass": "quantize-weights", "method": "gptqq"}])",
                 "did you mean gptq?");
    recipe_fails(R"("calibration": {"sampels": 8})",
                 "r.json: calibration.sampels: unknown key; did you mean samples?");
    recipe_fails(R"("calibration": {"samples": 500})",
                 "calibration.samples: 500 is above max_samples 128");
    recipe_fails(R"("calibration": {"data": "nope.npy"})", "calibration.data: not found");
    recipe_fails(R"("calibration": 3)", "calibration: expected an object");
    Recipe ok = recipe(R"("calibration": {"samples": 8, "seed": 3})");
    REQUIRE(ok.calibration.has_value());
    CHECK(ok.calibration->samples == 8);
    CHECK(ok.calibration->seed == 3);
    CHECK(ok.calibration->max_samples == 128);
    Recipe over = parse_recipe(R"({"model": "m.onnx", "calibration": {}})", "r.json", dir.path(),
                               {"calibration.samples=16"});
    CHECK(over.calibration->samples == 16);
}

TEST_CASE(
    "gptq with H = c * I gives the round-to-nearest bytes and on correlated activations it "
    "beats RTN",
    "[quantize][gptq]") {
    const int64_t rows = 24, cols = 96;
    Encoding e{QScheme::Int4Sym, 32, DType::F16, 1};
    auto w = normal_values(static_cast<size_t>(rows * cols), 11);
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; ++i) h[static_cast<size_t>(i * cols + i)] = 3.0;
    auto r = calib::gptq_quantize(e, w, rows, cols, h, {}, "t");
    CHECK(r.bytes == quantize_rtn(e, w, rows, cols));
    CHECK(r.retries == 0);

    // Correlated activations: x = z A with a random mixing matrix.
    const int64_t n = 512;
    auto z = normal_values(static_cast<size_t>(n * cols), 12);
    auto a = normal_values(static_cast<size_t>(cols * cols), 13, 0.3f);
    for (int64_t i = 0; i < cols; ++i) a[static_cast<size_t>(i * cols + i)] += 1.0f;
    std::vector<float> x(static_cast<size_t>(n * cols), 0.0f);
    for (int64_t s = 0; s < n; ++s)
        for (int64_t k = 0; k < cols; ++k) {
            float acc = 0.0f;
            for (int64_t j = 0; j < cols; ++j)
                acc += z[static_cast<size_t>(s * cols + j)] * a[static_cast<size_t>(j * cols + k)];
            x[static_cast<size_t>(s * cols + k)] = acc;
        }
    h = test::hessian_of_rows(x, n, cols);
    auto output_error = [&](const std::vector<std::byte>& bytes) {
        std::vector<float> q(static_cast<size_t>(rows * cols));
        for (int64_t r0 = 0; r0 < rows; ++r0)
            dequantize_row(e, bytes, rows, cols, r0, q.data() + r0 * cols);
        double err = 0.0;
        for (int64_t s = 0; s < n; ++s)
            for (int64_t r0 = 0; r0 < rows; ++r0) {
                double d = 0.0;
                for (int64_t k = 0; k < cols; ++k)
                    d += double(x[static_cast<size_t>(s * cols + k)]) *
                         (w[static_cast<size_t>(r0 * cols + k)] -
                          q[static_cast<size_t>(r0 * cols + k)]);
                err += d * d;
            }
        return err;
    };
    double rtn = output_error(quantize_rtn(e, w, rows, cols));
    for (bool act_order : {false, true}) {
        INFO("act_order " << act_order);
        calib::GptqOptions o;
        o.act_order = act_order;
        o.block_size = 32;
        auto g1 = calib::gptq_quantize(e, w, rows, cols, h, o, "t");
        auto g2 = calib::gptq_quantize(e, w, rows, cols, h, o, "t");
        CHECK(g1.bytes == g2.bytes);  // deterministic
        double err = output_error(g1.bytes);
        CHECK(err < 0.8 * rtn);
    }
    // A dead column (no activation) is zeroed and counted.
    for (int64_t i = 0; i < cols; ++i) {
        h[static_cast<size_t>(5 * cols + i)] = 0.0;
        h[static_cast<size_t>(i * cols + 5)] = 0.0;
    }
    auto dead = calib::gptq_quantize(e, w, rows, cols, h, {}, "t");
    CHECK(dead.dead_columns == 1);
}

TEST_CASE("gptq reports a Cholesky failure after retries instead of falling back",
          "[quantize][gptq]") {
    const int64_t rows = 4, cols = 32;
    Encoding e{QScheme::Int4Sym, 32, DType::F16, 1};
    auto w = normal_values(static_cast<size_t>(rows * cols), 1);
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; ++i) h[static_cast<size_t>(i * cols + i)] = -1.0;  // not PD
    try {
        (void)calib::gptq_quantize(e, w, rows, cols, h, {}, "tensor 'layer.w'");
        FAIL("no error");
    } catch (const InputError& err) {
        CHECK_THAT(err.what(), Catch::Contains("tensor 'layer.w': GPTQ: the Cholesky"));
        CHECK_THAT(err.what(), Catch::Contains("3 retries"));
    }
    // Nearly singular but PSD: succeeds, possibly with more damping.
    std::fill(h.begin(), h.end(), 1.0);  // rank one
    auto r = calib::gptq_quantize(e, w, rows, cols, h, {}, "t");
    CHECK(r.bytes.size() == quantize_rtn(e, w, rows, cols).size());
    h[0] = std::nan("");
    CHECK_THROWS_WITH(calib::gptq_quantize(e, w, rows, cols, h, {}, "tensor 't'"),
                      Catch::Contains("non-finite"));
}

TEST_CASE("awq search never loses to RTN on its rows and scales outlier channels up",
          "[quantize][awq]") {
    const int64_t rows = 16, cols = 64, n = 256;
    Encoding e{QScheme::Int4Sym, 32, DType::F16, 1};
    auto w = normal_values(static_cast<size_t>(rows * cols), 21);
    auto x = normal_values(static_cast<size_t>(n * cols), 22);
    std::vector<double> mean(static_cast<size_t>(cols), 0.0);
    for (int64_t s = 0; s < n; ++s)
        for (int64_t c = 0; c < cols; ++c) {
            if (c % 8 == 0) x[static_cast<size_t>(s * cols + c)] *= 20.0f;  // outlier channels
            mean[static_cast<size_t>(c)] += std::fabs(x[static_cast<size_t>(s * cols + c)]) / n;
        }
    calib::AwqMatrix m{w, rows};
    auto r = calib::awq_search(e, std::span(&m, 1), cols, x, n, mean, 20);
    CHECK(r.loss <= r.rtn_loss);
    CHECK(r.loss < 0.9 * r.rtn_loss);
    CHECK(r.scales[0] > r.scales[1]);
    auto clipped = calib::awq_clip(e, w, rows, cols, x, n, 20, 0.5);
    CHECK(clipped.size() == w.size());
}

TEST_CASE("awq search, clip search and the final check give the same result on any thread count",
          "[quantize][awq]") {
    // Both loss forms: fewer kept rows than channels (direct) and more (through X^T X).
    for (const int64_t n : {48, 160}) {
        INFO("kept rows " << n);
        const int64_t rows = 37, cols = 96;
        Encoding e{QScheme::Int4Sym, 32, DType::F16, 1};
        auto w = normal_values(static_cast<size_t>(rows * cols), 31);
        auto x = normal_values(static_cast<size_t>(n * cols), 32);
        std::vector<double> mean(static_cast<size_t>(cols), 0.0);
        for (int64_t s = 0; s < n; ++s)
            for (int64_t c = 0; c < cols; ++c) {
                if (c % 5 == 0) x[static_cast<size_t>(s * cols + c)] *= 12.0f;
                mean[static_cast<size_t>(c)] += std::fabs(x[static_cast<size_t>(s * cols + c)]) / n;
            }
        std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
        for (int64_t s = 0; s < n; ++s)
            for (int64_t a = 0; a < cols; ++a)
                for (int64_t b = 0; b < cols; ++b)
                    h[static_cast<size_t>(a * cols + b)] += 2.0 / n *
                                                            x[static_cast<size_t>(s * cols + a)] *
                                                            x[static_cast<size_t>(s * cols + b)];
        calib::AwqMatrix m{w, rows};
        const auto one = calib::awq_search(e, std::span(&m, 1), cols, x, n, mean, 10, 1);
        CHECK(one.loss < one.rtn_loss);  // the outlier channels make a scale worth it
        const auto clip_one = calib::awq_clip(e, w, rows, cols, x, n, 10, 0.5, 1);
        const auto bytes = quantize_rtn(e, clip_one, rows, cols);
        const double check_one =
            calib::hessian_error(e, w, rows, cols, bytes, h, 0.01, one.scales, 1);
        for (int threads : {2, 3}) {
            INFO(threads << " threads");
            const auto r = calib::awq_search(e, std::span(&m, 1), cols, x, n, mean, 10, threads);
            CHECK(r.scales == one.scales);
            CHECK(r.loss == one.loss);
            CHECK(r.alpha == one.alpha);
            CHECK(calib::awq_clip(e, w, rows, cols, x, n, 10, 0.5, threads) == clip_one);
            CHECK(calib::hessian_error(e, w, rows, cols, bytes, h, 0.01, one.scales, threads) ==
                  check_one);
        }
    }
}

TEST_CASE("quantize-weights on a safetensors checkpoint: every 2-D tensor with axis 1 and rtn only",
          "[quantize][real]") {
    auto path = test::shared_models() / "stories260k" / "model.safetensors";
    EP_REQUIRE_FILE_OR_SKIP(path);
    Model original = load_model(path);
    Model m = original;
    auto pass = configured({{"bits", 4}, {"group_size", 32}, {"min_elements", 0}});
    PassContext ctx;
    PassResult r = pass->run(m, ctx);
    size_t two_d = 0;
    std::vector<std::pair<const Tensor*, int>> floats;
    std::vector<const Tensor*> encoded;
    for (const auto& t : original.graph.initializers) {
        INFO(t.name);
        const Tensor* q = m.graph.find_initializer(t.name);
        if (t.shape.size() != 2) {
            CHECK_FALSE(q->is_encoded());
            CHECK(reason_of(r, t.name).find("rank 1") != std::string::npos);
            continue;
        }
        ++two_d;
        REQUIRE(q->is_encoded());
        CHECK(encoding_name(q->encoding) == "int4g32");
        CHECK(q->encoding.axis == 1);
        floats.emplace_back(&t, 1);
        encoded.push_back(q);
    }
    const auto want_bytes = numpy_rtn(floats, "int4g32");
    for (size_t i = 0; i < encoded.size(); ++i) {
        INFO(encoded[i]->name);
        CHECK(bytes_of(*encoded[i]) == want_bytes[i]);
    }
    CHECK(r.rewrites == two_d);
    CHECK(two_d >= 36);

    // GPTQ / AWQ need a graph: the pass manager says so before anything runs.
    PassManager manager;
    manager.add("passes[0]", configured({{"method", "gptq"}}));
    PassResources res;
    res.calibration_data = true;
    CHECK_THROWS_WITH(manager.check_needs(original, "model.safetensors", res),
                      Catch::Contains("needs a graph of nodes, but model.safetensors is a "
                                      "safetensors checkpoint"));
}

namespace {

// x [4, 64] -> Mul(x, g [64]) -> a; MatMul(a, Wq), MatMul(a, Wk) -> outputs;
// Relu(x) -> b; MatMul(b, Wo) -> output. The Mul's constant can take AWQ's 1/s; the Relu
// output cannot, so a Mul is inserted there.
Model awq_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    ValueInfo x;
    x.name = "x";
    ValueType t;
    t.elem = DType::F32;
    t.shape = std::vector<Dim>{Dim{4, {}, {}}, Dim{64, {}, {}}};
    x.type = t;
    m.graph.inputs = {x};
    auto g = normal_values(64, 30, 0.3f);
    for (auto& v : g) v = 1.0f + v;
    m.graph.initializers.push_back(make_f32_tensor("g", {64}, g));
    m.graph.initializers.push_back(make_f32_tensor("Wq", {64, 64}, normal_values(4096, 31)));
    m.graph.initializers.push_back(make_f32_tensor("Wk", {64, 32}, normal_values(2048, 32)));
    m.graph.initializers.push_back(make_f32_tensor("Wo", {64, 48}, normal_values(3072, 33)));
    auto& gr = m.graph;
    gr.nodes.push_back(make_node("Mul", "norm", {"x", "g"}, {"a"}));
    gr.nodes.push_back(make_node("MatMul", "q", {"a", "Wq"}, {"yq"}));
    gr.nodes.push_back(make_node("MatMul", "k", {"a", "Wk"}, {"yk"}));
    gr.nodes.push_back(make_node("Relu", "relu", {"x"}, {"b"}));
    gr.nodes.push_back(make_node("MatMul", "o", {"b", "Wo"}, {"yo"}));
    for (const char* o : {"yq", "yk", "yo"}) {
        ValueInfo v;
        v.name = o;
        gr.outputs.push_back(v);
    }
    return m;
}

}  // namespace

TEST_CASE(
    "quantize-weights gptq and awq through the pass: calibrated with 1/s folded or inserted and "
    "outputs close to float",
    "[quantize][awq][gptq]") {
    Model original = awq_model();
    CalibrationConfig cc;  // seeded random inputs
    cc.samples = 8;
    auto provider = make_calibration_provider(cc, "r.json");
    PassContext ctx;
    ctx.calibration = provider.get();

    rt::Executor ref_exec(original, {});
    auto feeds = rt::synthetic_inputs(ref_exec, 99, {});
    auto ref = ref_exec.run(feeds);

    auto rel_error = [&](const Model& m) {
        rt::Executor exec(m, {});
        auto out = exec.run(feeds);
        double num = 0.0, den = 0.0;
        for (size_t o = 0; o < out.size(); ++o) {
            auto a = ref[o].second.to_floats();
            auto b = out[o].second.to_floats();
            REQUIRE(a.size() == b.size());
            for (size_t i = 0; i < a.size(); ++i) {
                num += (a[i] - b[i]) * (a[i] - b[i]);
                den += a[i] * a[i];
            }
        }
        return std::sqrt(num / den);
    };

    Model rtn = original;
    (void)configured({{"bits", 4}})->run(rtn, ctx);
    double rtn_err = rel_error(rtn);

    Model awq = original;
    PassResult r = configured({{"bits", 4}, {"method", "awq"}})->run(awq, ctx);
    CHECK(r.rewrites == 3);
    CHECK(std::find(r.summary.begin(), r.summary.end(),
                    "awq: 1/s folded into 1 per-channel Mul constant, 1 Mul node inserted") !=
          r.summary.end());
    CHECK(awq.graph.find_initializer("g")->to_floats() !=
          original.graph.find_initializer("g")->to_floats());
    CHECK(awq.graph.nodes.size() == original.graph.nodes.size() + 1);
    CHECK(awq.graph.find_initializer("b_awq_inv") != nullptr);
    CHECK(verify(awq).empty());
    double awq_err = rel_error(awq);

    Model gptq = original;
    PassResult rg = configured({{"bits", 4}, {"method", "gptq"}})->run(gptq, ctx);
    CHECK(rg.rewrites == 3);
    double gptq_err = rel_error(gptq);
    WARN("relative output error: rtn " << rtn_err << ", awq " << awq_err << ", gptq " << gptq_err);
    // Both exist to beat RTN, and on this model (outlier input channels, seeded
    // calibration: deterministic) they do clearly: measured rtn 0.0956, awq 0.0581
    // (0.61 x rtn), gptq 0.0652 (0.68 x rtn). The bounds leave about 20% of the ratio for
    // float differences between machines and kernels; a solver that only matched RTN, or
    // lost to it (the old bound allowed AWQ 5% worse), fails.
    CHECK(rtn_err > 0.05);  // RTN's int4 cost is real here, so the ratios mean something
    CHECK(awq_err <= 0.75 * rtn_err);
    CHECK(gptq_err <= 0.8 * rtn_err);

    // Without calibration data the pass refuses (the pass manager checks first in compress).
    PassContext none;
    Model m = original;
    CHECK_THROWS_WITH(configured({{"method", "gptq"}})->run(m, none),
                      Catch::Contains("needs calibration data"));
    CHECK(m.graph.find_initializer("Wq")->is_encoded() == false);
}

TEST_CASE("gptq codes match a numpy port of AutoGPTQ's fasterquant", "[quantize][gptq][xcheck]") {
    const int64_t rows = 16, cols = 96;
    Encoding e{QScheme::Int4Sym, 32, DType::F16, 1};
    auto w = normal_values(static_cast<size_t>(rows * cols), 41);
    auto h = test::correlated_hessian(cols, 300, 42);
    calib::GptqOptions o;
    o.block_size = 64;  // groups of 32 inside blocks of 64: lazy updates across blocks
    auto r = calib::gptq_quantize(e, w, rows, cols, h, o, "t");

    test::TempDir dir;
    write_npy(make_f32_tensor("w", {rows, cols}, w), dir / "w.npy");
    write_npy(test::raw_tensor("h", DType::F64, {cols, cols}, h), dir / "h.npy");
    auto py = test::run_oracle("gptq_ref.py", {(dir / "w.npy").string(), (dir / "h.npy").string(),
                                               (dir / "codes.npy").string(), "--block", "64"});
    INFO(py.err);
    REQUIRE(py.exit_code == 0);
    Tensor codes = read_npy(dir / "codes.npy");
    REQUIRE(codes.dtype == DType::I32);
    auto ref = codes.values<int32_t>();
    int64_t same = 0;
    for (int64_t rr = 0; rr < rows; ++rr)
        for (int64_t c = 0; c < cols; ++c)
            same +=
                row_code(e, r.bytes, rows, cols, rr, c) == ref[static_cast<size_t>(rr * cols + c)];
    // Different Cholesky/inverse routines round differently, which can flip a code at a
    // rounding tie and change the later updates a little: allow 1% of codes.
    CHECK(same >= rows * cols * 99 / 100);
    WARN("gptq codes equal to the numpy reference: " << same << " of " << rows * cols);
}
