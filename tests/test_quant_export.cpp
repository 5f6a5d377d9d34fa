// ONNX export of quantized models (formats/onnx_quant_export.h): plain write_onnx refuses
// encoded tensors with a message naming one; "matmulnbits" and "qdq" exports run in
// edgepack's runtime and in ONNX Runtime (scripts/xcheck/ort_quant_compare.py, session
// option session.qdq_matmulnbits_accuracy_level = 0) and match the runtime on the encoded
// model within 1e-3 relative (max |diff| / max |ref|).
#include <algorithm>
#include <cmath>
#include <fstream>

#include "formats/model_io.h"
#include "formats/onnx_io.h"
#include "formats/onnx_quant_export.h"
#include "op_model.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using ep::test::random_f32;

namespace {

Node node_of(const char* op, std::vector<std::string> in, std::vector<std::string> out,
             std::vector<Attribute> attrs = {}) {
    Node n;
    n.name = std::string(op) + "_" + out.at(0);
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attributes = std::move(attrs);
    return n;
}

Tensor ids_tensor(std::vector<int64_t> v, std::vector<int64_t> shape) {
    Tensor t;
    t.dtype = DType::I64;
    t.shape = std::move(shape);
    t.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                               reinterpret_cast<const std::byte*>(v.data() + v.size())));
    return t;
}

// x [3, 96] -> MatMul(w1 [96, 40]) -> Gemm(w2 [33, 40], transB, C) -> Gemm(w3 [33, 20],
// alpha 0.5) -> y; table [10, 33] -> Gather(ids) -> e. Groupwise schemes on w1..w3 and the
// table; w3 (alpha != 1) takes the DequantizeLinear route in matmulnbits mode too.
Model small_model(const char* scheme) {
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.initializers = {ep::test::quantized_rtn(random_f32({96, 40}, 1), "w1", scheme, 0),
                            ep::test::quantized_rtn(random_f32({33, 40}, 2), "w2", scheme, 1),
                            ep::test::quantized_rtn(random_f32({33, 20}, 3), "w3", scheme, 0),
                            ep::test::quantized_rtn(random_f32({10, 33}, 4), "table", scheme, 1)};
    Tensor c = random_f32({33}, 5);
    c.name = "c";
    m.graph.initializers.push_back(c);
    ValueType xt;
    xt.elem = DType::F32;
    xt.shape = std::vector<Dim>{{3, "", ""}, {96, "", ""}};
    m.graph.inputs.push_back({"x", xt, ""});
    ValueType it;
    it.elem = DType::I64;
    it.shape = std::vector<Dim>{{4, "", ""}};
    m.graph.inputs.push_back({"ids", it, ""});
    m.graph.nodes.push_back(node_of("MatMul", {"x", "w1"}, {"h"}));
    m.graph.nodes.push_back(
        node_of("Gemm", {"h", "w2", "c"}, {"g"}, {test::int_attr("transB", 1)}));
    m.graph.nodes.push_back(node_of("Gemm", {"g", "w3"}, {"y"}, {test::float_attr("alpha", 0.5f)}));
    m.graph.nodes.push_back(node_of("Gather", {"table", "ids"}, {"e"}));
    ValueType ot;
    ot.elem = DType::F32;
    m.graph.outputs = {{"y", ot, ""}, {"e", ot, ""}};
    return m;
}

double rel_diff(const Tensor& got, const Tensor& ref) {
    auto g = got.to_floats();
    auto r = ref.to_floats();
    REQUIRE(g.size() == r.size());
    double diff = 0, mref = 0;
    for (size_t i = 0; i < g.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(g[i]) - r[i]));
        mref = std::max(mref, std::fabs(static_cast<double>(r[i])));
    }
    return mref > 0 ? diff / mref : diff;
}

bool python_ok() {
    return test::run({test::python(), "-c", "import onnxruntime"}).exit_code == 0;
}

}  // namespace

TEST_CASE("write_onnx refuses encoded tensors unless an export mode is chosen", "[quant-export]") {
    test::TempDir dir;
    Model m = small_model("int4g32");
    try {
        write_onnx(m, dir / "m.onnx");
        FAIL("no error");
    } catch (const InputError& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("tensor 'w1' is int4g32-encoded: choose "
                                               "onnx.quantized = matmulnbits or qdq"));
    }
    REQUIRE(!std::filesystem::exists(dir / "m.onnx"));
    OnnxWriteOptions bad;
    bad.quantized = "gguf";
    REQUIRE_THROWS_WITH(write_onnx(m, dir / "m.onnx", bad),
                        Catch::Contains("onnx.quantized = 'gguf': expected matmulnbits or qdq"));
}

TEST_CASE("quantized ONNX exports run in edgepack and ONNX Runtime like the encoded model",
          "[quant-export]") {
    test::TempDir dir;
    const bool ort = python_ok();
    Tensor x = random_f32({3, 96}, 11);
    Tensor ids = ids_tensor({9, 0, 4, 9}, {4});
    write_npy(x, dir / "x.npy");
    write_npy(ids, dir / "ids.npy");
    for (const char* scheme : {"int4g32", "int4g64a", "int8g32", "int8g128a", "int4g32-bf16"}) {
        Model m = small_model(scheme);
        rt::Executor ref_exec(m, rt::ExecOptions{1});
        auto ref = ref_exec.run({{"x", x}, {"ids", ids}});
        const auto ref_dir = dir / (std::string("ref_") + scheme);
        std::filesystem::create_directories(ref_dir);
        for (const auto& [name, t] : ref) write_npy(t, ref_dir / (name + ".npy"));
        for (const char* mode : {"matmulnbits", "qdq"}) {
            CAPTURE(scheme, mode);
            OnnxWriteOptions o;
            o.quantized = mode;
            const auto path = dir / (std::string(scheme) + "_" + mode + ".onnx");
            write_onnx(m, path, o);
            Model back = read_onnx(path);
            REQUIRE(!has_encoded_tensors(back));
            const bool has_nbits =
                std::any_of(back.graph.nodes.begin(), back.graph.nodes.end(),
                            [](const Node& n) { return n.op_type == "MatMulNBits"; });
            REQUIRE(has_nbits == (std::string(mode) == "matmulnbits"));
            rt::Executor exec(back, rt::ExecOptions{2});
            auto got = exec.run({{"x", x}, {"ids", ids}});
            REQUIRE(got.size() == ref.size());
            for (size_t i = 0; i < got.size(); ++i)
                REQUIRE(rel_diff(got[i].second, ref[i].second) < 1e-5);
            if (!ort) continue;
            auto r = test::run_oracle(
                "ort_quant_compare.py",
                {path.string(), "--input", "x=" + (dir / "x.npy").string(), "--input",
                 "ids=" + (dir / "ids.npy").string(), "--ref", ref_dir.string(), "--tol", "1e-5"});
            INFO(r.out << r.err);
            REQUIRE(r.exit_code == 0);
        }
    }
    if (!ort)
        test::mark_skipped("onnxruntime is not importable; ORT half of the check did not run");
}

namespace {

// Quantizes `model` with the quantize-weights pass (options as JSON) into an .epk and
// both ONNX exports; ORT and edgepack run the exports and match edgepack on the .epk.
void cross_check(const std::filesystem::path& model, const std::string& pass_json,
                 const std::vector<std::string>& inputs, const test::TempDir& dir,
                 const std::string& tag) {
    const auto recipe = dir / (tag + ".json");
    test::write_file(recipe, "{\"model\": \"" + model.string() + "\", \"passes\": [" + pass_json +
                                 "], \"output\": \"" + (dir / (tag + ".epk")).string() + "\"}");
    auto r = test::run_edgepack({"compress", recipe.string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> run_args{"run", (dir / (tag + ".epk")).string(), "--out",
                                      (dir / (tag + "_ref")).string()};
    std::vector<std::string> ort_inputs;
    for (const auto& i : inputs) {
        run_args.insert(run_args.end(), {"-i", i});
        ort_inputs.insert(ort_inputs.end(), {"--input", i});
    }
    r = test::run_edgepack(run_args);
    REQUIRE(r.exit_code == 0);
    for (const char* mode : {"matmulnbits", "qdq"}) {
        CAPTURE(tag, mode);
        const auto onnx = dir / (tag + "_" + mode + ".onnx");
        r = test::run_edgepack({"compress", recipe.string(), "-o", onnx.string(), "--set",
                                std::string("onnx.quantized=") + mode});
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        std::vector<std::string> args{onnx.string()};
        args.insert(args.end(), ort_inputs.begin(), ort_inputs.end());
        args.insert(args.end(), {"--ref", (dir / (tag + "_ref")).string(), "--tol", "1e-3"});
        auto o = test::run_oracle("ort_quant_compare.py", args);
        INFO("ORT: " << o.out << o.err);
        REQUIRE(o.exit_code == 0);
        const auto ep_dir = dir / (tag + "_" + mode + "_ep");
        std::vector<std::string> ep_args{"run", onnx.string(), "--out", ep_dir.string()};
        for (const auto& i : inputs) ep_args.insert(ep_args.end(), {"-i", i});
        r = test::run_edgepack(ep_args);
        REQUIRE(r.exit_code == 0);
        o = test::run_oracle(
            "ort_quant_compare.py",
            {"--diff", ep_dir.string(), (dir / (tag + "_ref")).string(), "--tol", "1e-5"});
        INFO("edgepack on the export: " << o.out << o.err);
        REQUIRE(o.exit_code == 0);
    }
}

}  // namespace

TEST_CASE("stories260k int4g32 / int4g32a / int8g32 exports match the .epk in ORT",
          "[quant-export][real]") {
    const auto model = test::shared_models() / "stories260k/model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    std::vector<int64_t> ids(40);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 37 + 1) % 512);
    write_npy(ids_tensor(ids, {1, 40}), dir / "ids.npy");
    const std::vector<std::string> in{"input_ids=" + (dir / "ids.npy").string()};
    cross_check(model,
                R"({"pass": "quantize-weights", "bits": 4, "group_size": 32, "symmetric": true})",
                in, dir, "int4g32");
    cross_check(model,
                R"({"pass": "quantize-weights", "bits": 4, "group_size": 32, "symmetric": false})",
                in, dir, "int4g32a");
    cross_check(model,
                R"({"pass": "quantize-weights", "bits": 8, "group_size": 32, "symmetric": true})",
                in, dir, "int8g32");
}

TEST_CASE("MNIST int4g32 (Gemm) + int8c (Conv) exports match the .epk in ORT",
          "[quant-export][real]") {
    const auto model = test::shared_models() / "mnist/mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    write_npy(random_f32({4, 1, 28, 28}, 77, 0.0f, 1.0f), dir / "x.npy");
    cross_check(model,
                R"({"pass": "quantize-weights", "bits": 4, "group_size": 32, "conv": true, )"
                R"("min_elements": 0})",
                {"input=" + (dir / "x.npy").string()}, dir, "mnist_int4");
    // Conv weights int8 in groups of 32 along [I x kh x kw] (conv1's 9-wide rows padded).
    cross_check(model,
                R"({"pass": "quantize-weights", "bits": 8, "group_size": 0, "conv": true, )"
                R"("conv_group_size": 32, "min_elements": 0})",
                {"input=" + (dir / "x.npy").string()}, dir, "mnist_conv_g32");
}
