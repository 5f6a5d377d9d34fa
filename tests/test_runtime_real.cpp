// The reference runtime on real models, against ONNX Runtime on the same inputs, and
// bit-identical across thread counts.
#include <cmath>
#include <cstring>
#include <random>

#include "formats/model_io.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;

namespace {

struct RealCase {
    const char* label;
    std::filesystem::path model;
    const char* input;
    std::vector<int64_t> shape;
    bool token_ids;  // int64 in [0, 512) instead of float in [0, 1)
};

Tensor seeded_input(const RealCase& c, uint32_t seed) {
    std::mt19937 rng(seed);
    Tensor t;
    t.name = c.input;
    t.shape = c.shape;
    int64_t n = 1;
    for (int64_t d : c.shape) n *= d;
    if (c.token_ids) {
        t.dtype = DType::I64;
        std::vector<std::byte> bytes(static_cast<size_t>(n) * 8);
        std::uniform_int_distribution<int64_t> dist(0, 511);
        for (int64_t i = 0; i < n; ++i) {
            int64_t v = dist(rng);
            std::memcpy(bytes.data() + i * 8, &v, 8);
        }
        t.data = TensorData::owned(std::move(bytes));
    } else {
        std::vector<float> v(static_cast<size_t>(n));
        std::uniform_real_distribution<float> dist(0.0f, 1.0f);
        for (auto& x : v) x = dist(rng);
        t = make_f32_tensor(c.input, c.shape, v);
    }
    return t;
}

double max_rel_diff(const Tensor& ref, const Tensor& got) {
    auto a = ref.to_floats(), b = got.to_floats();
    REQUIRE(a.size() == b.size());
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        max_ref = std::max(max_ref, std::abs(static_cast<double>(a[i])));
        max_diff = std::max(max_diff, std::abs(static_cast<double>(a[i]) - b[i]));
    }
    return max_diff / std::max(max_ref, 1e-30);
}

std::vector<RealCase> real_cases() {
    auto shared = test::shared_models();
    auto ppocr = test::model_cache() / "ppocr";
    return {
        {"mnist-cnn", shared / "mnist/mnist-cnn.onnx", "input", {4, 1, 28, 28}, false},
        {"stories260k", shared / "stories260k/model.onnx", "input_ids", {1, 32}, true},
        {"ppocr-cls", ppocr / "ch_ppocr_mobile_v2.0_cls_infer.onnx", "x", {2, 3, 48, 192}, false},
        {"ppocr-rec", ppocr / "ch_PP-OCRv4_rec_infer.onnx", "x", {1, 3, 48, 320}, false},
    };
}

}  // namespace

TEST_CASE("real models match ONNX Runtime and are bit-identical at 1 and 2 threads",
          "[runtime][real]") {
    for (const auto& c : real_cases()) {
        DYNAMIC_SECTION(c.label) {
            EP_REQUIRE_FILE_OR_CONTINUE(c.model);
            test::TempDir dir;
            Tensor input = seeded_input(c, 1234);
            write_npy(input, dir / "input.npy");
            auto ort = test::run_oracle(
                "ort_run.py", {c.model.string(), "--input",
                               std::string(c.input) + "=" + (dir / "input.npy").string(), "--out",
                               (dir / "ort").string()});
            INFO(ort.err);
            REQUIRE(ort.exit_code == 0);

            Model model = load_model(c.model);
            rt::Executor one(model, {1}), two(model, {2});
            auto out1 = one.run({{c.input, input}});
            auto out2 = two.run({{c.input, input}});
            REQUIRE(out1.size() == out2.size());
            for (size_t i = 0; i < out1.size(); ++i) {
                const auto& [name, t1] = out1[i];
                INFO("output " << name);
                auto b1 = t1.data.bytes(), b2 = out2[i].second.data.bytes();
                REQUIRE(b1.size() == b2.size());
                CHECK(std::memcmp(b1.data(), b2.data(), b1.size()) == 0);
                std::string safe = name;
                for (auto& ch : safe)
                    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                          ch == '-'))
                        ch = '_';
                Tensor ref = read_npy(dir.path() / "ort" / (safe + ".npy"));
                CHECK(ref.shape == t1.shape);
                double rel = max_rel_diff(ref, t1);
                INFO("max |diff| / max |reference| = " << rel);
                CHECK(rel <= 1e-4);
            }
            CHECK(one.last_stats().peak_arena_bytes > 0);
        }
    }
}

TEST_CASE("stories260k logits match the reference implementation's ref_logits.npy",
          "[runtime][real]") {
    auto dir = test::shared_models() / "stories260k";
    EP_REQUIRE_FILE_OR_SKIP(dir / "ref_logits.npy");
    Tensor tokens = read_npy(dir / "ref_tokens.npy");
    Tensor ref = read_npy(dir / "ref_logits.npy");
    INFO("tokens " << dtype_name(tokens.dtype) << " " << shape_string(tokens.shape));
    if (tokens.shape.size() == 1) tokens.shape.insert(tokens.shape.begin(), 1);
    if (tokens.dtype != DType::I64) {
        REQUIRE(tokens.dtype == DType::I32);
        Tensor wide;
        wide.dtype = DType::I64;
        wide.shape = tokens.shape;
        std::vector<std::byte> bytes(static_cast<size_t>(tokens.element_count()) * 8);
        auto v = tokens.values<int32_t>();
        for (size_t i = 0; i < v.size(); ++i) {
            int64_t x = v[i];
            std::memcpy(bytes.data() + i * 8, &x, 8);
        }
        wide.data = TensorData::owned(std::move(bytes));
        tokens = wide;
    }
    rt::Executor exec(load_model(dir / "model.onnx"), {2});
    auto out = exec.run({{"input_ids", tokens}});
    REQUIRE(out.size() == 1);
    Tensor logits = out[0].second;
    REQUIRE(logits.element_count() == ref.element_count());
    double rel = max_rel_diff(ref, logits);
    INFO("max |diff| / max |reference| = " << rel);
    CHECK(rel <= 1e-4);
}

TEST_CASE("unsupported ops are all reported at load with exit code 2", "[runtime]") {
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.inputs.push_back({"x", std::nullopt, ""});
    // Ops the runtime has no kernel for (ImageDecoder, TfIdfVectorizer), and one it has.
    for (const char* op : {"ImageDecoder", "ImageDecoder", "TfIdfVectorizer", "Relu"}) {
        Node n;
        n.op_type = op;
        n.inputs = {"x"};
        n.outputs = {std::string("y") + std::to_string(m.graph.nodes.size())};
        m.graph.nodes.push_back(n);
    }
    try {
        rt::Executor exec(m, {1});
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        // Every op, its first node and the opset, in one message.
        CHECK_THAT(e.what(),
                   Catch::Contains("2 unsupported ops: ImageDecoder (2 nodes), TfIdfVectorizer "
                                   "(1 node); first node 'ImageDecoder(y0)' (ImageDecoder, opset "
                                   "ai.onnx 17) and 1 more, node 'TfIdfVectorizer(y2)' "
                                   "(TfIdfVectorizer, opset ai.onnx 17)"));
    }
}
