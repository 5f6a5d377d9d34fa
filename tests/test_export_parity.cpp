// Quantized ONNX exports as a user deploys them (issue 18 items 2 and 3):
//   - every export variant (int8 per channel, int8 / int4 group-wise; matmulnbits and
//     qdq) computes in ONNX Runtime's *default* session (graph optimizations on, no
//     session options) what edgepack's runtime computes on the same export, and scores the
//     same KL against the original (scripts/xcheck/ort_default_parity.py);
//   - an opset-9 source (PP-OCRv4 rec) is raised with the ONNX version converter, and the
//     plan says so;
//   - an export that cannot succeed exits 2 at plan time, with --dry-run too, and writes
//     nothing.
#include <algorithm>
#include <filesystem>

#include "formats/onnx_io.h"
#include "ir/ir.h"
#include "op_model.h"
#include "pass_model.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;

namespace {

bool has_node(const Model& m, const std::string& op, const char* attr = nullptr,
              int64_t value = 0) {
    return std::any_of(m.graph.nodes.begin(), m.graph.nodes.end(), [&](const Node& n) {
        return n.op_type == op && (!attr || n.attr_int(attr, -1) == value);
    });
}

// Writes `export_path` from the recipe with onnx.quantized = mode, runs it in edgepack on
// `data`, and scores it in ORT's default session against `original`: max |ORT - edgepack|
// at most `max_rel_diff` of max |edgepack|, and the two KLs against the original within
// 1e-5 of each other.
void check_parity(const std::filesystem::path& recipe, const std::filesystem::path& original,
                  const std::filesystem::path& export_path, const std::string& mode,
                  const std::filesystem::path& data, const test::TempDir& dir,
                  const std::string& max_rel_diff = "1e-4") {
    auto r = test::run_edgepack({"compress", recipe.string(), "-q", "-o", export_path.string(),
                                 "--set", "onnx.quantized=" + mode});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto ours = dir / (export_path.stem().string() + "_ours");
    r = test::run_edgepack(
        {"run", export_path.string(), "--data", data.string(), "--out", ours.string(), "-q"});
    REQUIRE(r.exit_code == 0);
    auto o = test::run_oracle(
        "ort_default_parity.py",
        {original.string(), export_path.string(), "--data", data.string(), "--ours", ours.string(),
         "--max-rel-diff", max_rel_diff, "--max-kl-gap", "1e-5"});
    INFO("ORT default session vs edgepack: " << o.out << o.err);
    REQUIRE(o.exit_code == 0);
}

}  // namespace

TEST_CASE("stories260k exports compute in ORT's default session what edgepack computes",
          "[export-parity][real]") {
    const auto model = test::shared_models() / "stories260k/model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    const auto tokens = dir / "tokens.npy";
    auto t = test::run_oracle("sample_tokens.py", {model.string(), tokens.string(), "--count", "4",
                                                   "--length", "48", "--seed", "1"});
    REQUIRE(t.exit_code == 0);
    struct Variant {
        const char* tag;
        int bits, group;
    };
    for (Variant v :
         {Variant{"int8c", 8, 0}, Variant{"int8g32", 8, 32}, Variant{"int4g32", 4, 32}}) {
        const auto recipe = dir / (std::string(v.tag) + ".json");
        test::write_file(recipe, "{\"model\": \"" + model.string() +
                                     "\", \"passes\": [{\"pass\": \"quantize-weights\", "
                                     "\"bits\": " +
                                     std::to_string(v.bits) +
                                     ", \"group_size\": " + std::to_string(v.group) + "}]}");
        for (const char* mode : {"matmulnbits", "qdq"}) {
            CAPTURE(v.tag, mode);
            const auto onnx = dir / (std::string(v.tag) + "_" + mode + ".onnx");
            check_parity(recipe, model, onnx, mode, tokens, dir);
            Model back = read_onnx(onnx);
            if (std::string(mode) == "matmulnbits") {
                // Every MatMul weight, int8 per channel included, is MatMulNBits with
                // accuracy_level 1 (f32 activations); no DequantizeLinear is left for ORT
                // to fuse with int8 activations.
                REQUIRE(has_node(back, "MatMulNBits", "bits", v.bits));
                REQUIRE(!has_node(back, "MatMulNBits", "accuracy_level", 0));
                REQUIRE(!has_node(back, "DequantizeLinear"));
            } else {
                REQUIRE(has_node(back, "DequantizeLinear"));
                REQUIRE(!has_node(back, "MatMulNBits"));
            }
        }
    }
}

TEST_CASE("PP-OCRv4 rec at opset 9 exports both .onnx variants through the version converter",
          "[export-parity][opset][real]") {
    const auto model = test::model_cache() / "ppocr" / "ch_PP-OCRv4_rec_infer.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    // The first 8 of the rendered text lines scripts/make_data.sh writes.
    const auto lines = test::source_dir() / ".cache" / "data" / "ppocr-rec-eval";
    EP_REQUIRE_FILE_OR_SKIP(lines / "labels.txt");
    test::TempDir dir;
    const auto data = dir / "lines";
    auto sliced = test::run_oracle("slice_data.py", {lines.string(), data.string(), "8"});
    INFO(sliced.out << sliced.err);
    REQUIRE(sliced.exit_code == 0);
    for (const char* mode : {"matmulnbits", "qdq"}) {
        CAPTURE(mode);
        const auto recipe = dir / (std::string("rec_") + mode + ".json");
        const auto epk = dir / (std::string("rec_") + mode + ".epk");
        const auto onnx = dir / (std::string("rec_") + mode + ".onnx");
        test::write_file(recipe, "{\"model\": \"" + model.string() +
                                     "\", \"passes\": [{\"pass\": \"promote-constants\"}, "
                                     "{\"pass\": \"fold-batchnorm\"}, {\"pass\": "
                                     "\"quantize-weights\", \"bits\": 8, \"group_size\": 0, "
                                     "\"conv\": true}], \"onnx\": {\"quantized\": \"" +
                                     mode + "\"}, \"output\": [\"" + epk.string() + "\", \"" +
                                     onnx.string() + "\"]}");
        auto r = test::run_edgepack({"compress", recipe.string(), "--dry-run"});
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out.find("raise opset 9 -> 13 with the ONNX version converter") !=
                std::string::npos);
        REQUIRE(!std::filesystem::exists(onnx));
        r = test::run_edgepack({"compress", recipe.string()});
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.err.find("raise opset 9 -> 13 with the ONNX version converter") !=
                std::string::npos);
        Model back = read_onnx(onnx);
        REQUIRE(back.opset("") == 21);
        REQUIRE(has_node(back, "DequantizeLinear"));  // the Conv weights, int8 per channel
        REQUIRE(has_node(back, "MatMulNBits") == (std::string(mode) == "matmulnbits"));
        // On real lines a few positions sit where float rounding order moves a probability
        // by up to ~5e-4: ORT against itself (graph optimizations on vs off) differs by
        // 4.9e-4 on this export and by 7.6e-5 on the float model, over the 64 lines; ORT
        // against edgepack measured 3.3e-4 here, with every argmax the same.
        check_parity(recipe, model, onnx, mode, data, dir, "1e-3");
    }
}

TEST_CASE("an .onnx export that cannot succeed exits 2 at plan time and writes nothing",
          "[export-parity][opset]") {
    test::TempDir dir;
    // A default-domain op the ONNX version converter does not know, at opset 9: the
    // export's opset cannot be raised.
    Model m;
    m.ir_version = 4;
    m.opset_imports = {{"", 9}};
    m.graph.inputs = {test::f32_value("x", {1, 64})};
    Tensor w = test::random_f32({64, 64}, 3);
    w.name = "w";
    m.graph.initializers.push_back(w);
    m.graph.nodes = {test::make_node("MatMul", "mm", {"x", "w"}, {"h"}),
                     test::make_node("NotAnOp", "odd", {"h"}, {"y"})};
    m.graph.outputs = {{"y", {}, ""}};
    const auto odd = dir / "odd9.onnx";
    write_onnx(m, odd);
    // A node of another domain: ONNX 1.12's converter converts default-domain models only.
    m.graph.nodes[1].op_type = "Foo";
    m.graph.nodes[1].domain = "com.example";
    m.opset_imports.push_back({"com.example", 1});
    const auto custom = dir / "custom9.onnx";
    write_onnx(m, custom);

    const auto epk = dir / "out.epk";
    const auto onnx = dir / "out.onnx";
    auto recipe_with = [&](const std::filesystem::path& source, const std::string& onnx_section) {
        const auto path = dir / "recipe.json";
        test::write_file(path, "{\"model\": \"" + source.string() +
                                   "\", \"passes\": [{\"pass\": \"quantize-weights\", \"bits\": "
                                   "8, \"group_size\": 0}], " +
                                   onnx_section + "\"output\": [\"" + epk.string() + "\", \"" +
                                   onnx.string() + "\"]}");
        return path;
    };
    struct Case {
        const char* what;
        std::filesystem::path source;
        std::string onnx_section;
        std::vector<std::string> message;
    };
    const std::vector<Case> cases{
        {"unknown op",
         odd,
         "\"onnx\": {\"quantized\": \"qdq\"}, ",
         {"cannot raise opset 9 to 13", "node 'odd' (NotAnOp)"}},
        {"other domain",
         custom,
         "\"onnx\": {\"quantized\": \"matmulnbits\"}, ",
         {"cannot raise opset 9 to 13", "node 'odd' (Foo) of domain 'com.example'"}},
        {"no onnx.quantized", odd, "", {"out.onnx", "choose onnx.quantized = matmulnbits or qdq"}}};
    for (const Case& c : cases) {
        const auto recipe = recipe_with(c.source, c.onnx_section);
        for (bool dry : {true, false}) {
            CAPTURE(c.what, dry);
            std::vector<std::string> args{"compress", recipe.string()};
            if (dry) args.push_back("--dry-run");
            auto r = test::run_edgepack(args);
            INFO(r.out << r.err);
            REQUIRE(r.exit_code == 2);
            for (const auto& part : c.message) REQUIRE(r.err.find(part) != std::string::npos);
            REQUIRE(!std::filesystem::exists(epk));
            REQUIRE(!std::filesystem::exists(onnx));
        }
    }
}

TEST_CASE("raising Softmax / LogSoftmax / Hardmax below opset 13 keeps their meaning",
          "[export-parity][opset]") {
    // Below opset 13 these normalise over the dimensions from `axis` on, flattened; the
    // raised model must compute the same (formats/onnx_version.h).
    test::TempDir dir;
    Model m;
    m.ir_version = 6;
    m.opset_imports = {{"", 11}};
    ValueType unranked;
    unranked.elem = DType::F32;
    m.graph.inputs = {{"x", unranked, ""}, test::f32_value("z", {2, 3, 4})};  // x: rank unknown
    auto node = [](const char* op, const char* in, const char* out, int64_t axis) {
        return test::make_node(op, out, {in}, {out}, {int_attr("axis", axis)});
    };
    m.graph.nodes = {node("Softmax", "x", "s1", 1), node("LogSoftmax", "x", "l0", 0),
                     node("Hardmax", "z", "h0", 0), node("Softmax", "z", "s2", 2)};
    for (const char* o : {"s1", "l0", "h0", "s2"}) m.graph.outputs.push_back({o, {}, ""});
    const auto path = dir / "soft11.onnx";
    write_onnx(m, path);
    int64_t stored = 0;
    Model raised = read_onnx(path, OnnxReadOptions{13}, &stored);
    REQUIRE(stored == 11);
    REQUIRE(raised.opset("") == 13);
    Tensor x = test::random_f32({2, 3, 4}, 5, -3.0f, 3.0f);
    const rt::NamedTensors feeds{{"x", x}, {"z", x}};
    auto want = rt::Executor(read_onnx(path), rt::ExecOptions{1}).run(feeds);
    auto got = rt::Executor(raised, rt::ExecOptions{1}).run(feeds);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(want[i].first);
        REQUIRE(got[i].first == want[i].first);
        REQUIRE(got[i].second.shape == want[i].second.shape);
        const auto a = got[i].second.to_floats(), b = want[i].second.to_floats();
        for (size_t k = 0; k < a.size(); ++k) REQUIRE(a[k] == Approx(b[k]).margin(1e-6));
    }
    if (test::run({test::python(), "-c", "import onnxruntime"}).exit_code != 0) return;
    // The reference semantics themselves: ONNX Runtime on the opset-11 file.
    write_npy(x, dir / "x.npy");
    write_npy(x, dir / "z.npy");
    const auto ref = dir / "ref";
    std::filesystem::create_directories(ref);
    for (const auto& [name, t] : got) write_npy(t, ref / (name + ".npy"));
    auto o =
        test::run_oracle("ort_quant_compare.py",
                         {path.string(), "--input", "x=" + (dir / "x.npy").string(), "--input",
                          "z=" + (dir / "z.npy").string(), "--ref", ref.string(), "--tol", "1e-6"});
    INFO(o.out << o.err);
    REQUIRE(o.exit_code == 0);
}
