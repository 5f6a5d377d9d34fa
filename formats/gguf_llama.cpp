// Hugging Face llama checkpoint -> llama.cpp's GGUF names, Q/K permutation and metadata
// (contract in gguf_llama.h).
#include "formats/gguf_llama.h"

#include <array>
#include <cstring>
#include <fstream>
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
    for (const auto& kv : checkpoint.metadata) {
        bool taken = false;
        for (const auto& m : metadata) taken = taken || m.first == kv.first;
        if (!taken) metadata.push_back(kv);
    }
    out.metadata = std::move(metadata);
    return out;
}

}  // namespace ep
