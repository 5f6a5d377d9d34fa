// Hugging Face llama checkpoint -> llama.cpp's GGUF names, Q/K permutation and metadata
// (contract in gguf_llama.h).
#include "formats/gguf_llama.h"

#include <array>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

namespace ep {
namespace {

using nlohmann::json;

struct LlamaConfig {
    uint32_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, context = 0, vocab = 0;
    float rms_eps = 1e-6f, rope_theta = 10000.0f;
};

LlamaConfig read_config(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) throw InputError(cat(path.string(), ": cannot be read (config.json of the source)"));
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {
        throw InputError(cat(path.string(), ": not valid JSON: ", e.what()));
    }
    auto fail = [&](const std::string& field, const std::string& what) -> void {
        throw InputError(cat(path.string(), ": ", field, ": ", what));
    };
    if (!j.is_object()) fail("(top level)", "expected an object");
    std::string type = j.value("model_type", "");
    if (type != "llama")
        fail("model_type", cat("\"", type, "\": only llama checkpoints get llama.cpp names"));
    auto count = [&](const char* field, std::optional<uint32_t> fallback = {}) -> uint32_t {
        if (!j.contains(field)) {
            if (fallback) return *fallback;
            fail(field, "missing");
        }
        const json& v = j[field];
        if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 || v.get<uint64_t>() > 0xFFFFFFFFu)
            fail(field, cat(v.dump(), " is not a positive 32-bit integer"));
        return static_cast<uint32_t>(v.get<uint64_t>());
    };
    auto number = [&](const char* field, float fallback) -> float {
        if (!j.contains(field)) return fallback;
        if (!j[field].is_number() || !(j[field].get<double>() > 0))
            fail(field, cat(j[field].dump(), " is not a positive number"));
        return static_cast<float>(j[field].get<double>());
    };
    LlamaConfig c;
    c.hidden = count("hidden_size");
    c.layers = count("num_hidden_layers");
    c.heads = count("num_attention_heads");
    c.kv_heads = count("num_key_value_heads", c.heads);
    c.ffn = count("intermediate_size");
    c.context = count("max_position_embeddings");
    c.vocab = count("vocab_size");
    c.rms_eps = number("rms_norm_eps", 1e-6f);
    c.rope_theta = number("rope_theta", 10000.0f);
    if (c.hidden % c.heads != 0 || (c.hidden / c.heads) % 2 != 0)
        fail("hidden_size",
             cat(c.hidden, " is not num_attention_heads (", c.heads, ") times an even head size"));
    if (c.heads % c.kv_heads != 0)
        fail("num_key_value_heads",
             cat(c.kv_heads, " does not divide num_attention_heads (", c.heads, ")"));
    return c;
}

// Per-layer names: Hugging Face suffix, GGUF name after "blk.N.", heads of the permutation
// (0: none, 1: num_attention_heads, 2: num_key_value_heads).
struct LayerName {
    std::string_view hf, gguf;
    int permute;
};
constexpr std::array<LayerName, 9> kLayerNames = {{
    {"input_layernorm.weight", "attn_norm.weight", 0},
    {"self_attn.q_proj.weight", "attn_q.weight", 1},
    {"self_attn.k_proj.weight", "attn_k.weight", 2},
    {"self_attn.v_proj.weight", "attn_v.weight", 0},
    {"self_attn.o_proj.weight", "attn_output.weight", 0},
    {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
    {"mlp.gate_proj.weight", "ffn_gate.weight", 0},
    {"mlp.up_proj.weight", "ffn_up.weight", 0},
    {"mlp.down_proj.weight", "ffn_down.weight", 0},
}};

// The GGUF name of `name`, and the head count of its row permutation (0: none).
std::optional<std::pair<std::string, uint32_t>> gguf_name(const std::string& name,
                                                          const LlamaConfig& c) {
    if (name == "model.embed_tokens.weight") return std::pair{std::string("token_embd.weight"), 0u};
    if (name == "model.norm.weight") return std::pair{std::string("output_norm.weight"), 0u};
    if (name == "lm_head.weight") return std::pair{std::string("output.weight"), 0u};
    constexpr std::string_view prefix = "model.layers.";
    if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos || dot == prefix.size()) return std::nullopt;
    std::string layer = name.substr(prefix.size(), dot - prefix.size());
    if (layer.find_first_not_of("0123456789") != std::string::npos || layer.size() > 9)
        return std::nullopt;
    if (std::stoul(layer) >= c.layers) return std::nullopt;
    std::string_view rest = std::string_view(name).substr(dot + 1);
    for (const auto& n : kLayerNames)
        if (rest == n.hf)
            return std::pair{cat("blk.", std::stoul(layer), ".", n.gguf), n.permute == 1 ? c.heads
                                                                          : n.permute == 2
                                                                              ? c.kv_heads
                                                                              : 0u};
    return std::nullopt;
}

// convert_hf_to_gguf.py's permute: within each of `heads` heads of `rows / heads` rows,
// row 2i takes row i and row 2i + 1 takes row half + i. Whole stored rows move.
Tensor permuted_rows(const Tensor& t, uint32_t heads) {
    if (t.shape.size() != 2 || t.shape[0] % (2 * static_cast<int64_t>(heads)) != 0)
        throw InputError(cat("tensor '", t.name, "': shape ", shape_string(t.shape),
                             " cannot be split into ", heads, " heads of an even row count"));
    if (t.is_encoded() && t.encoding.axis != 1)
        throw InputError(cat("tensor '", t.name,
                             "': encoded along axis 0; its rows are not "
                             "stored one after another"));
    auto rows = static_cast<size_t>(t.shape[0]);
    auto bytes = t.data.bytes();
    size_t row_size = bytes.size() / rows;
    size_t head_rows = rows / heads, half = head_rows / 2;
    std::vector<std::byte> out(bytes.size());
    for (size_t h = 0; h < heads; ++h)
        for (size_t i = 0; i < half; ++i)
            for (size_t a = 0; a < 2; ++a)
                std::memcpy(out.data() + (h * head_rows + 2 * i + a) * row_size,
                            bytes.data() + (h * head_rows + a * half + i) * row_size, row_size);
    Tensor p = t;
    p.data = TensorData::owned(std::move(out));
    return p;
}

std::string typed(std::string_view type, const json& value) {
    return json{{"type", type}, {"value", value}}.dump();
}

std::string typed_array(std::string_view element_type, const json& values) {
    return json{{"type", "array"}, {"element_type", element_type}, {"value", values}}.dump();
}

json read_json_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) throw InputError(cat(path.string(), ": cannot be read"));
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw InputError(cat(path.string(), ": not valid JSON: ", e.what()));
    }
}

// llama.cpp's token types (gguf-py's TokenType).
enum TokenType : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// convert_hf_to_gguf.py's does_token_look_special: added tokens that act as control tokens
// even when tokenizer.json does not mark them special.
bool looks_special(std::string_view t) {
    auto wrapped = [&](std::string_view open, std::string_view close) {
        return t.size() >= open.size() + close.size() && t.substr(0, open.size()) == open &&
               t.substr(t.size() - close.size()) == close;
    };
    return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
           wrapped("<|", "|>") || wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>") ||
           wrapped("<unused", ">");
}

bool is_byte_token(std::string_view t) {
    return t.size() == 6 && t.substr(0, 3) == "<0x" && t[5] == '>' &&
           std::isxdigit(static_cast<unsigned char>(t[3])) &&
           std::isxdigit(static_cast<unsigned char>(t[4]));
}

// The text of a tokenizer_config.json special-token entry: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> special_content(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string())
        return v["content"].get<std::string>();
    return std::nullopt;
}

// tokenizer.* keys from the Hugging Face tokenizer files in `dir`, as convert_hf_to_gguf.py
// writes them (contract in gguf_llama.h).
std::vector<std::pair<std::string, std::string>> tokenizer_metadata(
    const std::filesystem::path& dir, const json& config, uint32_t vocab_size) {
    const auto path = dir / "tokenizer.json";
    json tj = read_json_file(path);
    auto fail = [&](const std::string& field, const std::string& what) -> void {
        throw InputError(cat(path.string(), ": ", field, ": ", what));
    };
    if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
        fail("model", "missing (not a Hugging Face tokenizers file)");
    const json& model = tj["model"];
    std::string type = model.value("type", "");
    if (type != "BPE")
        fail("model.type", cat("\"", type, "\": only BPE tokenizers (gpt2 byte-level, or ",
                               "llama's byte_fallback BPE) are converted"));
    const bool llama = model.value("byte_fallback", false);
    if (!model.contains("vocab") || !model["vocab"].is_object())
        fail("model.vocab", "missing or not an object");

    // id -> text over the model's vocabulary and the added tokens (tokenizer.vocab in
    // transformers); added tokens carry their special flag.
    std::vector<std::optional<std::string>> text(vocab_size);
    std::vector<int> added(vocab_size, 0);  // 0: not added, 1: added, 2: added and special
    auto place = [&](const std::string& token, const json& id, const std::string& where) {
        if (!id.is_number_unsigned() || id.get<uint64_t>() >= vocab_size)
            fail(where, cat("token id ", id.dump(), " of ", json(token).dump(),
                            " is not below the vocabulary size ", vocab_size,
                            " (config.json vocab_size)"));
        text[id.get<size_t>()] = token;
    };
    for (const auto& [token, id] : model["vocab"].items()) place(token, id, "model.vocab");
    if (tj.contains("added_tokens")) {
        if (!tj["added_tokens"].is_array()) fail("added_tokens", "not a list");
        for (const json& a : tj["added_tokens"]) {
            if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
                !a.contains("id"))
                fail("added_tokens", cat(a.dump(), " has no content and id"));
            place(a["content"].get<std::string>(), a["id"], "added_tokens");
            added[a["id"].get<size_t>()] = a.value("special", false) ? 2 : 1;
        }
    }

    json tokens = json::array(), types = json::array(), scores = json::array();
    for (uint32_t i = 0; i < vocab_size; ++i) {
        if (!text[i]) {  // a hole in the vocabulary
            tokens.push_back(cat("[PAD", i, "]"));
            types.push_back(llama ? kUserDefined : kUnused);
            scores.push_back(-1000.0);
            continue;
        }
        std::string t = *text[i];
        int32_t tt = kNormal;
        if (added[i] != 0) {
            if (added[i] == 2 || looks_special(t)) {
                tt = kControl;
            } else {
                tt = kUserDefined;
                // user-defined spaces pre-normalized, as the converter does
                constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581
                std::string spaced;
                for (size_t p = 0; p < t.size();) {
                    bool space = std::string_view(t).substr(p, kSpace.size()) == kSpace;
                    spaced += space ? ' ' : t[p];
                    p += space ? kSpace.size() : 1;
                }
                t = std::move(spaced);
            }
        } else if (llama && is_byte_token(t)) {
            tt = kByte;
        }
        tokens.push_back(t);
        types.push_back(tt);
        scores.push_back(-1000.0);
    }

    std::vector<std::pair<std::string, std::string>> kv = {
        {"tokenizer.ggml.model", typed("string", llama ? "llama" : "gpt2")},
        {"tokenizer.ggml.tokens", typed_array("string", tokens)}};
    if (llama) kv.emplace_back("tokenizer.ggml.scores", typed_array("float32", scores));
    kv.emplace_back("tokenizer.ggml.token_type", typed_array("int32", types));
    if (!llama) {
        json merges = json::array();
        if (model.contains("merges")) {
            if (!model["merges"].is_array()) fail("model.merges", "not a list");
            for (const json& m : model["merges"]) {
                if (m.is_string()) {
                    merges.push_back(m);
                } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                    merges.push_back(cat(m[0].get<std::string>(), " ", m[1].get<std::string>()));
                } else {
                    fail("model.merges", cat(m.dump(), " is neither \"a b\" nor [\"a\", \"b\"]"));
                }
            }
        }
        kv.emplace_back("tokenizer.ggml.merges", typed_array("string", merges));
    }

    // Special token ids: tokenizer_config.json's NAME_token found among the added tokens,
    // else config.json's NAME_token_id (gguf-py's SpecialVocab).
    json tc = json::object();
    if (std::filesystem::exists(dir / "tokenizer_config.json"))
        tc = read_json_file(dir / "tokenizer_config.json");
    if (!tc.is_object()) tc = json::object();
    std::optional<uint32_t> bos_id, eos_id;
    for (const auto& [name, key] : std::vector<std::pair<std::string, std::string>>{
             {"bos", "bos_token_id"},
             {"eos", "eos_token_id"},
             {"unk", "unknown_token_id"},
             {"sep", "seperator_token_id"},  // llama.cpp's spelling
             {"pad", "padding_token_id"}}) {
        std::optional<uint32_t> id;
        if (auto content = tc.contains(name + "_token") ? special_content(tc[name + "_token"])
                                                        : std::nullopt) {
            for (const json& a : tj.value("added_tokens", json::array()))
                if (a.value("content", "") == *content) id = a["id"].get<uint32_t>();
        }
        if (!id && config.contains(name + "_token_id") &&
            config[name + "_token_id"].is_number_unsigned() &&
            config[name + "_token_id"].get<uint64_t>() < vocab_size)
            id = config[name + "_token_id"].get<uint32_t>();
        if (!id) continue;
        if (name == "bos") bos_id = id;
        if (name == "eos") eos_id = id;
        kv.emplace_back(cat("tokenizer.ggml.", key), typed("uint32", *id));
    }

    // add_bos / add_eos: tokenizer_config.json says so, else the post-processor's template
    // for one sequence starts with bos / ends with eos.
    auto template_adds = [&](bool first, std::optional<uint32_t> id) {
        const json& pp = tj.value("post_processor", json());
        if (!id || !pp.is_object() || pp.value("type", "") != "TemplateProcessing" ||
            !pp.contains("single") || !pp["single"].is_array() || pp["single"].empty())
            return false;
        const json& item = first ? pp["single"].front() : pp["single"].back();
        if (!item.contains("SpecialToken")) return false;
        std::string t = item["SpecialToken"].value("id", "");
        return text[*id] && *text[*id] == t;
    };
    for (const auto& [name, first, id] :
         std::vector<std::tuple<std::string, bool, std::optional<uint32_t>>>{
             {"bos", true, bos_id}, {"eos", false, eos_id}}) {
        const std::string key = cat("add_", name, "_token");
        if (tc.contains(key) && tc[key].is_boolean())
            kv.emplace_back(cat("tokenizer.ggml.", key), typed("bool", tc[key]));
        else
            kv.emplace_back(cat("tokenizer.ggml.", key), typed("bool", template_adds(first, id)));
    }
    if (tc.contains("chat_template") && tc["chat_template"].is_string()) {
        kv.emplace_back("tokenizer.chat_template", typed("string", tc["chat_template"]));
    } else if (std::ifstream in(dir / "chat_template.jinja"); in) {
        std::string t((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        kv.emplace_back("tokenizer.chat_template", typed("string", t));
    }
    return kv;
}

}  // namespace

bool is_llama_config(const std::filesystem::path& config_json) {
    std::ifstream in(config_json);
    if (!in) return false;
    json j = json::parse(in, nullptr, false);
    return j.is_object() && j.value("model_type", "") == "llama";
}

Model gguf_llama_from_hf(const Model& checkpoint, const std::filesystem::path& config_json) {
    LlamaConfig c = read_config(config_json);
    if (!checkpoint.graph.nodes.empty())
        throw InputError(cat("llama.cpp names apply to a weights-only checkpoint; this model has ",
                             checkpoint.graph.nodes.size(), " nodes"));
    Model out = checkpoint;
    out.graph.initializers.clear();
    for (const Tensor& t : checkpoint.graph.initializers) {
        auto name = gguf_name(t.name, c);
        if (!name)
            throw InputError(cat("tensor '", t.name, "' has no llama.cpp name (",
                                 config_json.filename().string(), ": llama, ", c.layers,
                                 " layers; docs/gguf.md lists the names)"));
        Tensor g = name->second ? permuted_rows(t, name->second) : t;
        g.name = name->first;
        out.graph.initializers.push_back(std::move(g));
    }
    std::vector<std::pair<std::string, std::string>> metadata = {
        {"general.architecture", typed("string", "llama")},
        {"llama.vocab_size", typed("uint32", c.vocab)},
        {"llama.context_length", typed("uint32", c.context)},
        {"llama.embedding_length", typed("uint32", c.hidden)},
        {"llama.block_count", typed("uint32", c.layers)},
        {"llama.feed_forward_length", typed("uint32", c.ffn)},
        {"llama.rope.dimension_count", typed("uint32", c.hidden / c.heads)},
        {"llama.attention.head_count", typed("uint32", c.heads)},
        {"llama.attention.head_count_kv", typed("uint32", c.kv_heads)},
        {"llama.attention.layer_norm_rms_epsilon", typed("float32", c.rms_eps)},
        {"llama.rope.freq_base", typed("float32", c.rope_theta)},
    };
    // The tokenizer, when its Hugging Face files sit beside config.json (llama.cpp needs it
    // to load the model).
    if (auto dir = config_json.parent_path(); std::filesystem::exists(dir / "tokenizer.json"))
        for (auto& kv : tokenizer_metadata(dir, read_json_file(config_json), c.vocab))
            metadata.push_back(std::move(kv));
    for (const auto& kv : checkpoint.metadata) {
        bool taken = false;
        for (const auto& m : metadata) taken = taken || m.first == kv.first;
        if (!taken) metadata.push_back(kv);
    }
    out.metadata = std::move(metadata);
    return out;
}

}  // namespace ep
