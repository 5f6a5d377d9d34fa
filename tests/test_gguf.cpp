// GGUF interop: files the `gguf` Python package writes (scripts/xcheck/gguf_types.py) read
// back value for value (our decoders against gguf.quants.dequantize, bit for bit, on every
// type), files edgepack writes read back and write again byte for byte, `inspect` shows a
// GGUF's types, and `compress` writes quantize-weights' codes as ggml blocks.
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/model_io.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

std::filesystem::path stories_safetensors() {
    return test::shared_models() / "stories260k" / "model.safetensors";
}

// Runs gguf_types.py into `dir` (types.gguf, blocks.gguf, TYPE.npy).
void make_gguf_files(const std::filesystem::path& dir) {
    auto r = test::run_oracle("gguf_types.py",
                              {dir.string(), "--source", stories_safetensors().string()});
    INFO("gguf_types.py stderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

const std::string* metadata_value(const Model& m, const std::string& key) {
    for (const auto& [k, v] : m.metadata)
        if (k == key) return &v;
    return nullptr;
}

}  // namespace

TEST_CASE("GGUF decoders equal the gguf package's dequantize on every type", "[gguf][xcheck]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    make_gguf_files(dir.path());
    // Q2_K .. Q6_K blocks are seeded random bytes (the package cannot quantize them); the
    // other types hold stories260k's real embedding weights.
    GgufFile f = read_gguf_file(dir / "types.gguf");
    REQUIRE(f.tensors.size() == 13);
    Model m = load_model(dir / "types.gguf");
    REQUIRE(m.graph.initializers.size() == 13);
    for (size_t i = 0; i < f.tensors.size(); ++i) {
        const auto& info = f.tensors[i];
        INFO("tensor " << info.name << " (" << ggml_type_name(info.type) << ")");
        CHECK(info.name == ggml_type_name(info.type));
        Tensor want = read_npy(dir / (info.name + ".npy"));
        REQUIRE(want.shape == std::vector<int64_t>{64, 256});
        auto expected = want.values<float>();
        CHECK(same_bits(gguf_decode(info, f.tensor_bytes(info)), expected));
        // As the model's weight: every quantized type as the encoding of the same values
        // (Q8_0 int8g32, Q4_0 int4g32, Q4_1 int4g32m, the K-quants and Q5_x as themselves).
        const Tensor& t = m.graph.initializers[i];
        CHECK(t.shape == want.shape);
        CHECK(same_bits(t.to_floats(), expected));
        const std::map<std::string, std::string> encodings = {
            {"Q8_0", "int8g32"}, {"Q4_0", "int4g32"}, {"Q4_1", "int4g32m"}, {"Q5_0", "q5_0"},
            {"Q5_1", "q5_1"},    {"Q2_K", "q2_k"},    {"Q3_K", "q3_k"},     {"Q4_K", "q4_k"},
            {"Q5_K", "q5_k"},    {"Q6_K", "q6_k"}};
        if (auto it = encodings.find(info.name); it != encodings.end())
            CHECK(encoding_name(t.encoding) == it->second);
        else
            CHECK_FALSE(t.is_encoded());
        if (info.name == "BF16") CHECK(t.dtype == DType::BF16);
    }
    // Metadata keeps its GGUF types.
    CHECK(*metadata_value(m, "test.u64") == R"({"type":"uint64","value":9223372036854775813})");
    CHECK(*metadata_value(m, "test.i8") == R"({"type":"int8","value":-100})");
    CHECK(*metadata_value(m, "test.string") ==
          "{\"type\":\"string\",\"value\":\"h\xc3\xa9llo \xe2\x9c\x93\"}");
    CHECK(*metadata_value(m, "test.ints") ==
          R"({"element_type":"int32","type":"array","value":[1,-2,3]})");
}

TEST_CASE("edgepack rewrites a GGUF byte for byte", "[gguf][xcheck]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    make_gguf_files(dir.path());
    SECTION("a file the gguf package wrote, with every type (F32 .. Q6_K)") {
        Model m = load_model(dir / "blocks.gguf");
        save_model(m, dir / "again.gguf");
        CHECK(test::read_file(dir / "again.gguf") == test::read_file(dir / "blocks.gguf"));
    }
    SECTION("every metadata type, and every tensor in its source type, twice") {
        save_model(load_model(dir / "types.gguf"), dir / "once.gguf");
        Model once = load_model(dir / "once.gguf");
        save_model(once, dir / "twice.gguf");
        CHECK(test::read_file(dir / "once.gguf") == test::read_file(dir / "twice.gguf"));
        Model source = load_model(dir / "types.gguf");
        CHECK(once.metadata == source.metadata);
        GgufFile f = read_gguf_file(dir / "once.gguf");
        for (size_t i = 0; i < f.tensors.size(); ++i) {
            INFO(f.tensors[i].name);
            CHECK(same_bits(once.graph.initializers[i].to_floats(),
                            source.graph.initializers[i].to_floats()));
            CHECK(ggml_type_name(f.tensors[i].type) == f.tensors[i].name);
        }
    }
}

TEST_CASE("inspect shows a GGUF's metadata and ggml types", "[gguf][xcheck][inspect]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    make_gguf_files(dir.path());
    auto r = test::run_edgepack({"inspect", (dir / "types.gguf").string(), "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json j = json::parse(r.out);
    CHECK(j["format"] == "gguf");
    CHECK(j["gguf"]["version"] == 3);
    CHECK(j["gguf"]["alignment"] == 32);
    REQUIRE(j["gguf"]["tensors"].size() == 13);
    CHECK(j["gguf"]["tensors"][12]["ggml_type"] == "Q6_K");
    CHECK(j["gguf"]["tensors"][12]["bytes"] == 64 * 210);
    CHECK(j["gguf"]["tensors"][12]["shape"] == json::array({64, 256}));
    CHECK(j["gguf"]["metadata"]["test.strings"]["count"] == 5);
    CHECK(j["metadata"]["general.architecture"] == "llama");
    auto text = test::run_edgepack({"inspect", (dir / "types.gguf").string()});
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("GGUF version 3, alignment 32") &&
                             Catch::Contains("Q4_K") &&
                             Catch::Contains("test.strings = [5 string: <unk>, <s>"));
}

TEST_CASE("a GGUF source is called a GGUF file when a pass or validate needs a graph",
          "[gguf][compress]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    make_gguf_files(dir.path());
    json recipe{{"model", (dir / "types.gguf").string()},
                {"passes", json::array({{{"pass", "quantize-weights"}, {"method", "gptq"}}})},
                {"calibration", {{"data", (dir / "F32.npy").string()}}},
                {"output", (dir / "out.gguf").string()}};
    test::write_file(dir / "r.json", recipe.dump());
    for (bool dry : {true, false}) {
        std::vector<std::string> args{"compress", (dir / "r.json").string(), "--quiet"};
        if (dry) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err,
                   Catch::Contains("passes[0] (quantize-weights): needs a graph of nodes, "
                                   "but types.gguf is a GGUF file (weights only, no graph)"));
        CHECK_THAT(r.err, Catch::Contains("scripts/make_decoder.py"));
        CHECK_FALSE(std::filesystem::exists(dir / "out.gguf"));
    }
    recipe["passes"][0]["method"] = "rtn";
    recipe.erase("calibration");
    recipe["validate"] = {{"data", (dir / "F32.npy").string()}};
    recipe["output"] = (dir / "out.epk").string();
    test::write_file(dir / "r.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet", "--dry-run"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("validate: types.gguf is a GGUF file (weights only, no "
                                      "graph to run)"));
}

TEST_CASE("compress writes int8g32 as Q8_0 and int4g32 as Q4_0 without re-quantizing",
          "[gguf][compress]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    // Without its config.json next to it the checkpoint keeps its names.
    std::filesystem::copy_file(stories_safetensors(), dir / "model.safetensors");
    for (int bits : {4, 8}) {
        INFO("bits " << bits);
        json recipe{
            {"model", (dir / "model.safetensors").string()},
            {"passes", json::array({{{"pass", "quantize-weights"},
                                     {"bits", bits},
                                     {"group_size", 32},
                                     {"exclude", json::array({"*down_proj*"})}}})},
            {"output", json::array({(dir / "q.gguf").string(), (dir / "q.safetensors").string()})}};
        test::write_file(dir / "r.json", recipe.dump());
        auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet"});
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        GgufFile f = read_gguf_file(dir / "q.gguf");
        Model gguf = load_model(dir / "q.gguf");
        Model st = load_model(dir / "q.safetensors");
        REQUIRE(gguf.graph.initializers.size() == st.graph.initializers.size());
        REQUIRE(f.tensors.size() == st.graph.initializers.size());
        size_t blocks = 0;
        for (size_t i = 0; i < f.tensors.size(); ++i) {
            const Tensor& got = gguf.graph.initializers[i];
            const Tensor* want = nullptr;
            for (const auto& t : st.graph.initializers)
                if (t.name == got.name) want = &t;
            INFO(got.name);
            REQUIRE(want);
            // The same values, as ggml blocks where quantize-weights encoded the tensor.
            CHECK(same_bits(got.to_floats(), want->to_floats()));
            std::string type = ggml_type_name(f.tensors[i].type);
            if (want->is_encoded()) {
                CHECK(type == (bits == 4 ? "Q4_0" : "Q8_0"));
                CHECK(got.data.size() == want->data.size());
                ++blocks;
            } else {
                CHECK(type == "F32");
            }
        }
        CHECK(blocks >= 30);  // 5 layers x 6 matrices (and the embedding)
    }
}

TEST_CASE("a llama checkpoint with its config.json gets llama.cpp's names and metadata",
          "[gguf][compress]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    json recipe{{"model", stories_safetensors().string()},
                {"passes", json::array({{{"pass", "quantize-weights"},
                                         {"bits", 4},
                                         {"exclude", json::array({"*down_proj*"})}}})},
                {"output", (dir / "q.gguf").string()}};
    test::write_file(dir / "r.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    Model g = load_model(dir / "q.gguf");
    Model hf = load_model(stories_safetensors());
    auto find = [](const Model& m, const std::string& name) -> const Tensor& {
        for (const auto& t : m.graph.initializers)
            if (t.name == name) return t;
        FAIL("no tensor " << name);
        throw;
    };
    CHECK(*metadata_value(g, "general.architecture") == R"({"type":"string","value":"llama"})");
    CHECK(*metadata_value(g, "llama.block_count") == R"({"type":"uint32","value":5})");
    CHECK(*metadata_value(g, "llama.attention.head_count_kv") == R"({"type":"uint32","value":4})");
    CHECK(*metadata_value(g, "llama.rope.dimension_count") == R"({"type":"uint32","value":8})");
    CHECK(g.graph.initializers.size() == hf.graph.initializers.size());
    // The gguf package reads the file: the metadata, and every tensor's dequantized values
    // equal ours bit for bit.
    auto dump = test::run_oracle("gguf_types.py",
                                 {"--dump", (dir / "q.gguf").string(), (dir / "dump").string()});
    INFO(dump.err);
    REQUIRE(dump.exit_code == 0);
    json meta = json::parse(test::read_file(dir / "dump" / "metadata.json"));
    CHECK(meta["general.architecture"] == "llama");
    CHECK(meta["llama.embedding_length"] == 64);
    CHECK(meta["llama.attention.head_count"] == 8);
    for (const Tensor& t : g.graph.initializers) {
        INFO(t.name);
        Tensor want = read_npy(dir / "dump" / (t.name + ".npy"));
        CHECK(same_bits(t.to_floats(), want.values<float>()));
    }
    // v keeps its rows; q (8 heads) and k (4 heads) are permuted by whole rows.
    CHECK(same_bits(find(g, "blk.2.attn_v.weight").to_floats(),
                    quantize_tensor_rtn(find(hf, "model.layers.2.self_attn.v_proj.weight"),
                                        find(g, "blk.2.attn_v.weight").encoding)
                        .to_floats()));
    for (auto [gguf_name, hf_name, heads] : std::vector<std::tuple<std::string, std::string, int>>{
             {"blk.2.attn_q.weight", "model.layers.2.self_attn.q_proj.weight", 8},
             {"blk.2.attn_k.weight", "model.layers.2.self_attn.k_proj.weight", 4}}) {
        INFO(gguf_name);
        const Tensor& t = find(g, gguf_name);
        CHECK(ggml_type_name(static_cast<uint32_t>(*gguf_type_for(t, nullptr))) == "Q4_0");
        auto got = t.to_floats();
        // Dequantized HF rows: the int4g32 codes of each row, moved as a whole.
        Tensor hf_q = quantize_tensor_rtn(find(hf, hf_name), t.encoding);
        auto want = hf_q.to_floats();
        int64_t rows = t.shape[0], cols = t.shape[1], head_rows = rows / heads;
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < head_rows / 2; ++i)
                for (int64_t a = 0; a < 2; ++a) {
                    int64_t to = h * head_rows + 2 * i + a,
                            from = h * head_rows + a * head_rows / 2 + i;
                    CHECK(std::memcmp(&got[to * cols], &want[from * cols], cols * 4) == 0);
                }
    }
}

TEST_CASE(
    "a safetensors checkpoint's tokenizer.json gives the tokenizer keys llama.cpp's converter "
    "wrote",
    "[gguf][compress][xcheck]") {
    // SmolLM2's GGUF was made by convert_hf_to_gguf.py from the model's tokenizer.json;
    // transformers rebuilds that tokenizer.json from the GGUF, and our writer must turn it
    // back into the same keys.
    const auto smol = test::model_cache() / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
    EP_REQUIRE_FILE_OR_SKIP(smol);
    test::TempDir dir;
    auto made = test::run_oracle("hf_tokenizer_from_gguf.py", {smol.string(), dir.path().string()});
    INFO(made.err);
    if (made.exit_code == 77) EP_SKIP(made.err);  // transformers' GGUF reader needs torch
    REQUIRE(made.exit_code == 0);
    json recipe{{"model", (dir / "model.safetensors").string()},
                {"passes", json::array({{{"pass", "quantize-weights"}, {"bits", 8}}})},
                {"output", (dir / "out.gguf").string()}};
    test::write_file(dir / "r.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto values = [](const GgufFile& f) {
        std::map<std::string, std::string> m;
        for (const auto& [k, v] : f.metadata) m[k] = gguf_value_json(v);
        return m;
    };
    auto theirs = values(read_gguf_file(smol));
    auto ours = values(read_gguf_file(dir / "out.gguf"));
    for (const char* key :
         {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
          "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
          "tokenizer.ggml.add_bos_token", "tokenizer.chat_template"}) {
        INFO(key);
        REQUIRE(theirs.count(key) == 1);
        REQUIRE(ours.count(key) == 1);
        CHECK(ours[key] == theirs[key]);
    }
    CHECK(json::parse(ours["tokenizer.ggml.tokens"])["value"].size() == 49152);
    CHECK(json::parse(ours["tokenizer.ggml.merges"])["value"].size() == 48900);
    // The pre-tokenizer name needs the tokenizer library's hash: left to llama.cpp's default.
    CHECK(ours.count("tokenizer.ggml.pre") == 0);
}

TEST_CASE("a byte_fallback BPE tokenizer.json is written as llama.cpp's llama tokenizer",
          "[gguf][compress]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    std::filesystem::copy_file(stories_safetensors(), dir / "model.safetensors");
    std::filesystem::copy_file(stories_safetensors().parent_path() / "config.json",
                               dir / "config.json");
    // 512 ids: <unk> <s> </s>, 256 byte tokens, words; id 511 left out (a hole); one added
    // user token with a U+2581 space.
    json vocab = json::object();
    vocab["<unk>"] = 0;
    vocab["<s>"] = 1;
    vocab["</s>"] = 2;
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        vocab[name] = 3 + b;
    }
    for (int i = 259; i < 510; ++i) vocab[cat("w", i)] = i;
    json added = json::array();
    for (auto [id, text, special] :
         std::vector<std::tuple<int, std::string, bool>>{{0, "<unk>", true},
                                                         {1, "<s>", true},
                                                         {2, "</s>", true},
                                                         {510, "my\xe2\x96\x81tok", false}})
        added.push_back({{"id", id}, {"content", text}, {"special", special}});
    json tokenizer{{"model",
                    {{"type", "BPE"},
                     {"byte_fallback", true},
                     {"vocab", vocab},
                     {"merges", json::array({"w 2"})}}},
                   {"added_tokens", added},
                   {"decoder", {{"type", "Sequence"}}}};
    test::write_file(dir / "tokenizer.json", tokenizer.dump());
    test::write_file(dir / "tokenizer_config.json", json{{"bos_token", "<s>"},
                                                         {"eos_token", {{"content", "</s>"}}},
                                                         {"unk_token", "<unk>"},
                                                         {"add_bos_token", true}}
                                                        .dump());
    json recipe{{"model", (dir / "model.safetensors").string()},
                {"passes", json::array({{{"pass", "quantize-weights"},
                                         {"bits", 8},
                                         {"exclude", json::array({"*down_proj*"})}}})},
                {"output", (dir / "out.gguf").string()}};
    test::write_file(dir / "r.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::map<std::string, json> kv;
    for (const auto& [k, v] : read_gguf_file(dir / "out.gguf").metadata)
        kv[k] = json::parse(gguf_value_json(v))["value"];
    CHECK(kv["tokenizer.ggml.model"] == "llama");
    const json& tokens = kv["tokenizer.ggml.tokens"];
    const json& types = kv["tokenizer.ggml.token_type"];
    REQUIRE(tokens.size() == 512);
    REQUIRE(types.size() == 512);
    CHECK(kv["tokenizer.ggml.scores"].size() == 512);
    CHECK(tokens[1] == "<s>");
    CHECK(types[1] == 3);  // CONTROL
    CHECK(tokens[3 + 0x41] == "<0x41>");
    CHECK(types[3 + 0x41] == 6);  // BYTE
    CHECK(types[300] == 1);       // NORMAL
    CHECK(tokens[510] == "my tok");
    CHECK(types[510] == 4);  // USER_DEFINED, its space pre-normalized
    CHECK(tokens[511] == "[PAD511]");
    CHECK(kv.count("tokenizer.ggml.merges") == 0);
    CHECK(kv["tokenizer.ggml.bos_token_id"] == 1);
    CHECK(kv["tokenizer.ggml.eos_token_id"] == 2);
    CHECK(kv["tokenizer.ggml.unknown_token_id"] == 0);
    CHECK(kv["tokenizer.ggml.add_bos_token"] == true);

    // A tokenizer it cannot convert is refused, naming the file and the field, nothing written.
    tokenizer["model"]["type"] = "WordPiece";
    test::write_file(dir / "tokenizer.json", tokenizer.dump());
    recipe["output"] = (dir / "bad.gguf").string();
    test::write_file(dir / "r.json", recipe.dump());
    r = test::run_edgepack({"compress", (dir / "r.json").string(), "--quiet"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("tokenizer.json: model.type: \"WordPiece\""));
    CHECK_FALSE(std::filesystem::exists(dir / "bad.gguf"));
}

TEST_CASE("a GGUF output refuses encodings ggml has no block for, naming the tensor",
          "[gguf][compress]") {
    EP_REQUIRE_FILE_OR_SKIP(stories_safetensors());
    test::TempDir dir;
    for (auto [options, message] : std::vector<std::pair<json, std::string>>{
             {{{"bits", 4}, {"group_size", 32}, {"symmetric", false}},
              "encoding int4g32a has no ggml block form"},
             {{{"bits", 4}, {"group_size", 64}}, "encoding int4g64 has no ggml block form"},
             {{{"bits", 8}, {"group_size", 32}, {"scale_dtype", "bf16"}},
              "encoding int8g32-bf16 has no ggml block form"},
             {{{"bits", 4}, {"group_size", 32}},
              "the last dimension 172 is not a multiple of 32, so Q4_0 blocks cannot tile it"},
             {{{"encoding", "q4_k"}},
              "the last dimension 64 is not a multiple of 256, so Q4_K blocks cannot tile it"}}) {
        json pass = options;
        pass["pass"] = "quantize-weights";
        json recipe{{"model", stories_safetensors().string()},
                    {"passes", json::array({pass})},
                    {"output", (dir / "q.gguf").string()}};
        test::write_file(dir / "r.json", recipe.dump());
        // --dry-run refuses it too: the check runs on the plan, before any byte.
        for (bool dry : {false, true}) {
            INFO(message << (dry ? " (--dry-run)" : ""));
            std::vector<std::string> args{"compress", (dir / "r.json").string(), "--quiet"};
            if (dry) args.push_back("--dry-run");
            auto r = test::run_edgepack(args);
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err, Catch::Contains("q.gguf: tensor '") && Catch::Contains(message));
            if (message.find("no ggml block form") != std::string::npos)
                CHECK_THAT(r.err, Catch::Contains("GGUF output takes int8g32 (Q8_0), int4g32 "
                                                  "(Q4_0), int4g32m (Q4_1), q4_k (Q4_K), q6_k "
                                                  "(Q6_K)"));
            CHECK_FALSE(std::filesystem::exists(dir / "q.gguf"));
        }
    }
}
