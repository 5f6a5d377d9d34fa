// The .epk writer and reader (the format is specified in epk.h).
//
// Writer: collect every tensor of the model in a fixed walk order (each graph's
// initializers, then its nodes' attribute tensors and subgraphs, depth first; then
// functions), lay the data out at 64-byte offsets, build the manifest with placeholder
// hashes (fixed length), write the header, stream each tensor once (hashing it and the
// file together), then write the manifest with the real hashes and the file's SHA-256.
// Reader: map, verify the trailer over the whole file (pages released as it goes), then
// check the header, parse the manifest with every field typed and every range bounded,
// and hand out tensors as views of the mapping.
#include "formats/epk.h"
#include "formats/epk_internal.h"

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "ir/checked.h"
#include "ir/sparse.h"
#include "ir/utf8.h"

#ifndef EDGEPACK_VERSION
#define EDGEPACK_VERSION "unknown"
#endif

namespace ep {
namespace {

using nlohmann::json;

constexpr std::array<uint8_t, 8> kMagic = {0x89, 'E', 'P', 'K', 0x0D, 0x0A, 0x1A, 0x0A};
// Bytes hashed / written per step: the source pages of one step are resident until it is
// released, so this bounds what a streaming write or a checksum pass holds.
constexpr size_t kChunk = size_t{8} << 20;
constexpr int kMaxJsonDepth = 512;
constexpr size_t kMaxRank = 64;
const std::string kZeroHash(64, '0');

// ---------------------------------------------------------------------------------------
// Small helpers shared by both directions

uint64_t align_up(uint64_t v) {
    return (v + kEpkAlignment - 1) / kEpkAlignment * kEpkAlignment;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        for (int k = 3; k >= 0; --k) out += kB64[(v >> (6 * k)) & 63];
    }
    if (size_t rest = in.size() - i) {
        uint32_t v = uint8_t(in[i]) << 16;
        if (rest == 2) v |= uint8_t(in[i + 1]) << 8;
        out += kB64[(v >> 18) & 63];
        out += kB64[(v >> 12) & 63];
        out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4) return std::nullopt;
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (size_t i = 0; i < in.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = in[i + static_cast<size_t>(k)];
            if (c == '=' && i + 4 == in.size() && k >= 2) {
                v[k] = 0;
                ++pad;
                continue;
            }
            if (pad) return std::nullopt;  // data after padding
            v[k] = value(c);
            if (v[k] < 0) return std::nullopt;
        }
        uint32_t w = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) |
                     uint32_t(v[3]);
        out += static_cast<char>((w >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(w & 0xFF);
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Writing: Model -> manifest JSON

class ManifestWriter {
  public:
    std::vector<const Tensor*> tensors;  // table order

    json model(const Model& m) {
        json j;
        j["source_format"] = m.format == SourceFormat::Safetensors ? "safetensors" : "onnx";
        j["ir_version"] = m.ir_version;
        j["model_version"] = m.model_version;
        j["producer_name"] = text(m.producer_name, "producer_name");
        j["producer_version"] = text(m.producer_version, "producer_version");
        j["domain"] = text(m.domain, "domain");
        j["doc_string"] = text(m.doc_string, "doc_string");
        j["opset_imports"] = opsets(m.opset_imports);
        json meta = json::array();
        for (const auto& [k, v] : m.metadata)
            meta.push_back({text(k, "metadata key"), text(v, cat("metadata '", k, "'"))});
        j["metadata"] = std::move(meta);
        j["graph"] = graph(m.graph);
        json fns = json::array();
        for (const auto& f : m.functions) fns.push_back(function(f));
        j["functions"] = std::move(fns);
        j["training_info"] = bytes_list(m.opaque_training_info);
        return j;
    }

  private:
    static std::string text(const std::string& s, const std::string& what) {
        if (!valid_utf8(s))
            throw InputError(cat(what, " is not valid UTF-8; .epk stores names as UTF-8"));
        return s;
    }
    static json bytes(const std::string& s) {
        if (valid_utf8(s)) return s;
        return json{{"base64", base64_encode(s)}};
    }
    static json bytes_list(const std::vector<std::string>& v) {
        json out = json::array();
        for (const auto& s : v) out.push_back(bytes(s));
        return out;
    }
    static json strings(const std::vector<std::string>& v, const std::string& what) {
        json out = json::array();
        for (const auto& s : v) out.push_back(text(s, what));
        return out;
    }
    static json opsets(const std::vector<OpsetId>& v) {
        json out = json::array();
        for (const auto& o : v)
            out.push_back({{"domain", text(o.domain, "opset domain")}, {"version", o.version}});
        return out;
    }
    static json float_value(float f) {
        if (std::isfinite(f)) return static_cast<double>(f);
        char buf[16];
        std::snprintf(buf, sizeof buf, "0x%08x", std::bit_cast<uint32_t>(f));
        return std::string(buf);
    }

    size_t tensor_index(const Tensor& t) {
        tensors.push_back(&t);
        return tensors.size() - 1;
    }

    json value_info(const ValueInfo& v) {
        std::string what = cat("value '", v.name, "'");
        json j{{"name", text(v.name, "value name")}, {"doc_string", text(v.doc_string, what)}};
        if (!v.type) {
            j["type"] = nullptr;
            return j;
        }
        const ValueType& t = *v.type;
        json type{{"tensor", t.is_tensor},
                  {"elem", std::string(dtype_name(t.elem))},
                  {"denotation", text(t.denotation, what)},
                  {"opaque", bytes(t.opaque)}};
        if (!t.shape) {
            type["shape"] = nullptr;
        } else {
            json dims = json::array();
            for (const Dim& d : *t.shape) {
                json dj = json::object();
                if (d.value)
                    dj["value"] = *d.value;
                else if (!d.param.empty())
                    dj["param"] = text(d.param, what);
                if (!d.denotation.empty()) dj["denotation"] = text(d.denotation, what);
                dims.push_back(std::move(dj));
            }
            type["shape"] = std::move(dims);
        }
        j["type"] = std::move(type);
        return j;
    }

    json attribute(const Attribute& a, const std::string& where) {
        std::string what = cat(where, " attribute '", a.name, "'");
        json j{{"name", text(a.name, what)},
               {"type", attr_type_name(a.type)},
               {"ref_attr_name", text(a.ref_attr_name, what)},
               {"doc_string", text(a.doc_string, what)},
               {"f", float_value(a.f)},
               {"i", a.i},
               {"s", bytes(a.s)}};
        json floats = json::array();
        for (float f : a.floats) floats.push_back(float_value(f));
        j["floats"] = std::move(floats);
        j["ints"] = a.ints;
        j["strings"] = bytes_list(a.strings);
        json ts = json::array();
        for (const auto& t : a.tensors) ts.push_back(tensor_index(t));
        j["tensors"] = std::move(ts);
        json gs = json::array();
        for (const auto& g : a.graphs) gs.push_back(graph(g));
        j["graphs"] = std::move(gs);
        j["opaque"] = bytes_list(a.opaque);
        return j;
    }

    json node(const Node& n) {
        std::string what = cat("node '", n.label(), "'");
        json j{{"name", text(n.name, what)},          {"op_type", text(n.op_type, what)},
               {"domain", text(n.domain, what)},      {"inputs", strings(n.inputs, what)},
               {"outputs", strings(n.outputs, what)}, {"doc_string", text(n.doc_string, what)}};
        json attrs = json::array();
        for (const auto& a : n.attributes) attrs.push_back(attribute(a, what));
        j["attributes"] = std::move(attrs);
        return j;
    }

    json value_infos(const std::vector<ValueInfo>& v) {
        json out = json::array();
        for (const auto& x : v) out.push_back(value_info(x));
        return out;
    }

    json graph(const Graph& g) {
        std::string what = cat("graph '", g.name, "'");
        json j{{"name", text(g.name, what)}, {"doc_string", text(g.doc_string, what)}};
        json inits = json::array();
        for (const auto& t : g.initializers) inits.push_back(tensor_index(t));
        j["initializers"] = std::move(inits);
        j["inputs"] = value_infos(g.inputs);
        j["outputs"] = value_infos(g.outputs);
        j["value_info"] = value_infos(g.value_info);
        json nodes = json::array();
        for (const auto& n : g.nodes) nodes.push_back(node(n));
        j["nodes"] = std::move(nodes);
        j["sparse_initializers"] = bytes_list(g.opaque_sparse_initializers);
        j["quantization_annotation"] = bytes_list(g.opaque_quantization_annotation);
        return j;
    }

    json function(const Function& f) {
        std::string what = cat("function '", f.name, "'");
        json j{{"name", text(f.name, what)},
               {"domain", text(f.domain, what)},
               {"inputs", strings(f.inputs, what)},
               {"outputs", strings(f.outputs, what)},
               {"attribute_names", strings(f.attribute_names, what)},
               {"doc_string", text(f.doc_string, what)},
               {"opset_imports", opsets(f.opset_imports)}};
        json defaults = json::array();
        for (const auto& a : f.attribute_defaults) defaults.push_back(attribute(a, what));
        j["attribute_defaults"] = std::move(defaults);
        json nodes = json::array();
        for (const auto& n : f.nodes) nodes.push_back(node(n));
        j["nodes"] = std::move(nodes);
        return j;
    }
};

json provenance_json(const EpkProvenance& p) {
    auto check_hash = [](const std::string& h, const char* field) {
        if (!h.empty() &&
            (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos))
            throw InputError(
                cat("provenance ", field, " '", h, "' is not 64 lowercase hex digits"));
    };
    check_hash(p.source_sha256, "source_sha256");
    check_hash(p.recipe_sha256, "recipe_sha256");
    for (const auto* s : {&p.source_file, &p.recipe_file})
        if (!valid_utf8(*s)) throw InputError(cat("provenance file name is not valid UTF-8"));
    json overrides = json::array();
    for (const auto& o : p.recipe_overrides) {
        if (!valid_utf8(o)) throw InputError(cat("recipe override is not valid UTF-8"));
        overrides.push_back(o);
    }
    return {{"edgepack_version", EDGEPACK_VERSION}, {"source_file", p.source_file},
            {"source_sha256", p.source_sha256},     {"recipe_file", p.recipe_file},
            {"recipe_sha256", p.recipe_sha256},     {"recipe_overrides", std::move(overrides)}};
}

// One tensor's bytes on their way to the file: hashed for the tensor table, counted.
class TensorHashingSink final : public ByteSink {
  public:
    explicit TensorHashingSink(ByteSink& inner) : inner_(inner) {}
    void write(std::span<const std::byte> bytes) override {
        sha_.update(bytes);
        inner_.write(bytes);
        count_ += bytes.size();
    }
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return inner_.position(); }
    [[nodiscard]] uint64_t count() const { return count_; }
    [[nodiscard]] std::array<std::byte, 32> finish() { return sha_.finish(); }

  private:
    ByteSink& inner_;
    Sha256 sha_;
    uint64_t count_ = 0;
};

// ---------------------------------------------------------------------------------------
// Reading: manifest JSON -> Model, every field checked

// Parses JSON, rejecting duplicate keys and nesting deeper than kMaxJsonDepth.
json parse_manifest(std::string_view text) {
    std::vector<std::set<std::string>> keys;
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
        if (depth > kMaxJsonDepth)
            throw InputError(cat("manifest: nested deeper than ", kMaxJsonDepth, " levels"));
        switch (event) {
            case json::parse_event_t::object_start:
                keys.emplace_back();
                break;
            case json::parse_event_t::object_end:
                if (!keys.empty()) keys.pop_back();
                break;
            case json::parse_event_t::key:
                if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
                    throw InputError(
                        cat("manifest: duplicate key '", parsed.get<std::string>(), "'"));
                break;
            default:
                break;
        }
        return true;
    };
    if (text.find('\0') != std::string_view::npos)
        throw InputError("manifest: not valid JSON (NUL byte)");
    try {
        return json::parse(text.begin(), text.end(), callback);
    } catch (const json::exception& e) {
        throw InputError(cat("manifest: not valid JSON: ", e.what()));
    }
}

std::string type_of(const json& v) {
    if (v.is_number_unsigned()) return "a non-negative integer";
    if (v.is_number_integer()) return cat("the negative integer ", v.dump());
    if (v.is_number_float()) return cat("the number ", v.dump());
    return v.type_name();
}

// What Fields::done() does with a key it does not know (docs/epk.md, "Format versions"): in
// a file of this reader's minor version or older it is refused, since no writer of those
// versions wrote one (the file is damaged or forged); in a newer minor's it is skipped, and
// listed in `skipped` ("tensor 'w': 'stats'"), since a minor version adds only keys an
// older reader may ignore without misreading anything.
struct UnknownFields {
    bool skip = false;
    std::vector<std::string> skipped;
};

// One JSON object whose fields are read by name; done() rejects (or, in a newer minor
// version, skips) fields nobody read.
class Fields {
  public:
    Fields(const json& j, std::string where, UnknownFields& unknown)
        : j_(j), where_(std::move(where)), unknown_(unknown) {
        if (!j.is_object()) fail("expected an object, found ", type_of(j));
    }
    template <typename... Args>
    [[noreturn]] void fail(Args&&... args) const {
        throw InputError(cat("manifest: ", where_, ": ", std::forward<Args>(args)...));
    }
    const std::string& where() const { return where_; }
    void rename(std::string where) { where_ = std::move(where); }
    bool has(const char* key) const { return j_.contains(key); }
    const json& at(const char* key) {
        auto it = j_.find(key);
        if (it == j_.end()) fail("missing field '", key, "'");
        seen_.insert(key);
        return *it;
    }
    std::string str(const char* key) {
        const json& v = at(key);
        if (!v.is_string()) fail("'", key, "' must be a string, found ", type_of(v));
        return v.get<std::string>();
    }
    std::string opt_str(const char* key) { return has(key) ? str(key) : std::string(); }
    int64_t i64(const char* key) {
        const json& v = at(key);
        if (!v.is_number_integer()) fail("'", key, "' must be an integer, found ", type_of(v));
        if (v.is_number_unsigned() &&
            v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            fail("'", key, "' ", v.dump(), " is too large");
        return v.get<int64_t>();
    }
    uint64_t u64(const char* key) {
        const json& v = at(key);
        if (!v.is_number_unsigned())
            fail("'", key, "' must be a non-negative integer, found ", type_of(v));
        return v.get<uint64_t>();
    }
    bool boolean(const char* key) {
        const json& v = at(key);
        if (!v.is_boolean()) fail("'", key, "' must be true or false, found ", type_of(v));
        return v.get<bool>();
    }
    const json& array(const char* key) {
        const json& v = at(key);
        if (!v.is_array()) fail("'", key, "' must be an array, found ", type_of(v));
        return v;
    }
    std::vector<std::string> strings(const char* key) {
        std::vector<std::string> out;
        for (const json& s : array(key)) {
            if (!s.is_string()) fail("'", key, "' must hold strings, found ", type_of(s));
            out.push_back(s.get<std::string>());
        }
        return out;
    }
    std::string bytes_of(const json& v, const std::string& field) const {
        if (v.is_string()) return v.get<std::string>();
        if (v.is_object() && v.size() == 1 && v.contains("base64") && v["base64"].is_string()) {
            auto decoded = base64_decode(v["base64"].get_ref<const std::string&>());
            if (!decoded) fail("'", field, "': invalid base64");
            return *decoded;
        }
        fail("'", field, "' must be a string or {\"base64\": ...}, found ", type_of(v));
    }
    std::string bytes(const char* key) { return bytes_of(at(key), key); }
    std::vector<std::string> bytes_list(const char* key) {
        std::vector<std::string> out;
        for (const json& s : array(key)) out.push_back(bytes_of(s, key));
        return out;
    }
    void done() const {
        for (const auto& [key, _] : j_.items()) {
            if (seen_.count(key)) continue;
            if (!unknown_.skip) fail("unknown field '", key, "'");
            unknown_.skipped.push_back(cat(where_, ": '", key, "'"));
        }
    }

  private:
    const json& j_;
    std::string where_;
    UnknownFields& unknown_;
    std::set<std::string> seen_;
};

DType parse_dtype(Fields& f, const char* key, bool allow_undefined = false) {
    auto name = f.str(key);
    if (allow_undefined && name == dtype_name(DType::Undefined)) return DType::Undefined;
    auto dt = dtype_from_name(name);
    if (!dt) f.fail("'", key, "': unknown dtype '", name, "'");
    return *dt;
}

float parse_float(const Fields& f, const json& v, const char* key) {
    if (v.is_number()) {
        double d = v.get<double>();
        if (std::abs(d) > std::numeric_limits<float>::max())
            f.fail("'", key, "': ", v.dump(), " is out of the float range");
        return static_cast<float>(d);
    }
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s.size() == 10 && s.starts_with("0x") &&
            s.find_first_not_of("0123456789abcdef", 2) == std::string::npos)
            return std::bit_cast<float>(
                static_cast<uint32_t>(std::stoul(s.substr(2), nullptr, 16)));
    }
    f.fail("'", key, "' must be a number or \"0x\" + 8 hex digits, found ", type_of(v));
}

struct TableEntry {
    Tensor tensor;
    bool used = false;
};

class ManifestReader {
  public:
    ManifestReader(std::vector<TableEntry>& table, UnknownFields& unknown)
        : table_(table), unknown_(unknown) {}

    Model model(const json& j) {
        Fields f(j, "model", unknown_);
        Model m;
        auto format = f.str("source_format");
        if (format == "onnx")
            m.format = SourceFormat::Onnx;
        else if (format == "safetensors")
            m.format = SourceFormat::Safetensors;
        else
            f.fail("'source_format' must be \"onnx\" or \"safetensors\", found \"", format, "\"");
        m.ir_version = f.i64("ir_version");
        m.model_version = f.i64("model_version");
        m.producer_name = f.str("producer_name");
        m.producer_version = f.str("producer_version");
        m.domain = f.str("domain");
        m.doc_string = f.str("doc_string");
        m.opset_imports = opsets(f, "opset_imports");
        for (const json& kv : f.array("metadata")) {
            if (!kv.is_array() || kv.size() != 2 || !kv[0].is_string() || !kv[1].is_string())
                f.fail("'metadata' entries must be [key, value] string pairs, found ", kv.dump());
            m.metadata.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
        }
        m.graph = graph(f.at("graph"), "graph");
        size_t i = 0;
        for (const json& fn : f.array("functions")) m.functions.push_back(function(fn, i++));
        m.opaque_training_info = f.bytes_list("training_info");
        f.done();
        return m;
    }

  private:
    std::vector<TableEntry>& table_;
    UnknownFields& unknown_;

    std::vector<OpsetId> opsets(Fields& f, const char* key) {
        std::vector<OpsetId> out;
        size_t i = 0;
        for (const json& o : f.array(key)) {
            Fields of(o, cat(f.where(), " ", key, "[", i++, "]"), unknown_);
            OpsetId id;
            id.domain = of.str("domain");
            id.version = of.i64("version");
            of.done();
            out.push_back(std::move(id));
        }
        return out;
    }

    Tensor take_tensor(const Fields& f, const json& index) {
        if (!index.is_number_unsigned())
            f.fail("a tensor index must be a non-negative integer, found ", type_of(index));
        auto i = index.get<uint64_t>();
        if (i >= table_.size())
            f.fail("tensor index ", i, " is out of range (the table has ", table_.size(),
                   " tensors)");
        auto& e = table_[static_cast<size_t>(i)];
        if (e.used) f.fail("tensor ", i, " ('", e.tensor.name, "') is referred to more than once");
        e.used = true;
        return std::move(e.tensor);
    }

    ValueInfo value_info(const json& j, const std::string& where) {
        Fields f(j, where, unknown_);
        ValueInfo v;
        v.name = f.str("name");
        v.doc_string = f.str("doc_string");
        const json& type = f.at("type");
        if (!type.is_null()) {
            Fields t(type, cat(where, " ('", v.name, "') type"), unknown_);
            ValueType vt;
            vt.is_tensor = t.boolean("tensor");
            vt.elem = parse_dtype(t, "elem", true);
            vt.denotation = t.str("denotation");
            vt.opaque = t.bytes("opaque");
            const json& shape = t.at("shape");
            if (!shape.is_null()) {
                if (!shape.is_array()) t.fail("'shape' must be null or an array");
                std::vector<Dim> dims;
                for (const json& d : shape) {
                    Fields df(d, cat(t.where(), " dim ", dims.size()), unknown_);
                    Dim dim;
                    if (df.has("value"))
                        dim.value = df.i64("value");
                    else if (df.has("param"))
                        dim.param = df.str("param");
                    dim.denotation = df.opt_str("denotation");
                    df.done();
                    dims.push_back(std::move(dim));
                }
                vt.shape = std::move(dims);
            }
            t.done();
            v.type = std::move(vt);
        }
        f.done();
        return v;
    }

    std::vector<ValueInfo> value_infos(Fields& f, const char* key) {
        std::vector<ValueInfo> out;
        for (const json& v : f.array(key))
            out.push_back(value_info(v, cat(f.where(), " ", key, "[", out.size(), "]")));
        return out;
    }

    Attribute attribute(const json& j, const std::string& where) {
        Fields f(j, where, unknown_);
        Attribute a;
        a.name = f.str("name");
        f.rename(cat(where, " ('", a.name, "')"));
        Fields& g = f;
        auto type = g.str("type");
        auto known = attr_type_from_name(type);
        if (!known) g.fail("unknown attribute type '", type, "'");
        a.type = *known;
        a.ref_attr_name = g.str("ref_attr_name");
        a.doc_string = g.str("doc_string");
        a.f = parse_float(g, g.at("f"), "f");
        a.i = g.i64("i");
        a.s = g.bytes("s");
        for (const json& x : g.array("floats")) a.floats.push_back(parse_float(g, x, "floats"));
        for (const json& x : g.array("ints")) {
            if (!x.is_number_integer() ||
                (x.is_number_unsigned() &&
                 x.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())))
                g.fail("'ints' must hold 64-bit integers, found ", type_of(x));
            a.ints.push_back(x.get<int64_t>());
        }
        a.strings = g.bytes_list("strings");
        for (const json& x : g.array("tensors")) a.tensors.push_back(take_tensor(g, x));
        size_t i = 0;
        for (const json& x : g.array("graphs"))
            a.graphs.push_back(graph(x, cat(g.where(), " graphs[", i++, "]")));
        a.opaque = g.bytes_list("opaque");
        g.done();
        return a;
    }

    Node node(const json& j, const std::string& where) {
        Fields f(j, where, unknown_);
        Node n;
        n.name = f.str("name");
        n.op_type = f.str("op_type");
        n.domain = f.str("domain");
        n.inputs = f.strings("inputs");
        n.outputs = f.strings("outputs");
        n.doc_string = f.str("doc_string");
        std::string label = cat(where, " (", n.label(), ")");
        size_t i = 0;
        for (const json& a : f.array("attributes"))
            n.attributes.push_back(attribute(a, cat(label, " attributes[", i++, "]")));
        f.done();
        return n;
    }

    Graph graph(const json& j, const std::string& where) {
        Fields f(j, where, unknown_);
        Graph g;
        g.name = f.str("name");
        g.doc_string = f.str("doc_string");
        for (const json& x : f.array("initializers")) g.initializers.push_back(take_tensor(f, x));
        g.inputs = value_infos(f, "inputs");
        g.outputs = value_infos(f, "outputs");
        g.value_info = value_infos(f, "value_info");
        size_t i = 0;
        for (const json& n : f.array("nodes"))
            g.nodes.push_back(node(n, cat(where, " nodes[", i++, "]")));
        g.opaque_sparse_initializers = f.bytes_list("sparse_initializers");
        g.opaque_quantization_annotation = f.bytes_list("quantization_annotation");
        f.done();
        return g;
    }

    Function function(const json& j, size_t index) {
        Fields f(j, cat("functions[", index, "]"), unknown_);
        Function fn;
        fn.name = f.str("name");
        fn.domain = f.str("domain");
        fn.inputs = f.strings("inputs");
        fn.outputs = f.strings("outputs");
        fn.attribute_names = f.strings("attribute_names");
        fn.doc_string = f.str("doc_string");
        fn.opset_imports = opsets(f, "opset_imports");
        size_t i = 0;
        for (const json& a : f.array("attribute_defaults"))
            fn.attribute_defaults.push_back(
                attribute(a, cat(f.where(), " attribute_defaults[", i++, "]")));
        i = 0;
        for (const json& n : f.array("nodes"))
            fn.nodes.push_back(node(n, cat(f.where(), " nodes[", i++, "]")));
        f.done();
        return fn;
    }
};

bool is_hex64(const std::string& s) {
    return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

EpkProvenance parse_provenance(const json& j, UnknownFields& unknown) {
    Fields f(j, "provenance", unknown);
    EpkProvenance p;
    p.edgepack_version = f.str("edgepack_version");
    p.source_file = f.str("source_file");
    p.source_sha256 = f.str("source_sha256");
    p.recipe_file = f.str("recipe_file");
    p.recipe_sha256 = f.str("recipe_sha256");
    p.recipe_overrides = f.strings("recipe_overrides");
    for (const auto* h : {&p.source_sha256, &p.recipe_sha256})
        if (!h->empty() && !is_hex64(*h))
            f.fail("a sha256 must be 64 lowercase hex digits or empty, found '", *h, "'");
    f.done();
    return p;
}

// One tensor table entry: every field checked against the data section before the tensor
// becomes a view. `position` is the end of the previous tensor (offsets increase).
Tensor parse_tensor(const json& j, size_t index, const std::shared_ptr<const MappedFile>& file,
                    const EpkInfo& info, uint64_t& position, std::string& hash,
                    UnknownFields& unknown) {
    Fields f(j, cat("tensors[", index, "]"), unknown);
    Tensor t;
    t.name = f.str("name");
    f.rename(cat("tensor '", t.name, "'"));
    Fields& g = f;
    auto fail = [&](auto&&... args) {
        throw InputError(cat("tensor '", t.name, "': ", std::forward<decltype(args)>(args)...));
    };
    t.dtype = parse_dtype(g, "dtype");
    if (t.dtype == DType::Undefined) fail("dtype 'undefined'");
    const json& shape = g.array("shape");
    if (shape.size() > kMaxRank) fail("rank ", shape.size(), " is over the limit of ", kMaxRank);
    for (const json& d : shape) {
        if (!d.is_number_unsigned() ||
            d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            fail("shape ", shape.dump(), ": dimensions must be non-negative integers");
        t.shape.push_back(d.get<int64_t>());
    }
    auto count = checked_element_count(t.shape);
    if (!count) fail("shape ", shape_string(t.shape), ": the element count overflows");
    t.doc_string = g.opt_str("doc_string");
    if (g.has("encoding")) {
        Fields e(g.at("encoding"), cat("tensor '", t.name, "' encoding"), unknown);
        auto name = e.str("name");
        auto enc = encoding_from_name(name);
        if (!enc || enc->is_none())
            e.fail("unknown encoding '", name, "' (expected e.g. int8c, int4g32, int8g64a)");
        auto axis = e.u64("axis");
        // Bounded here so the cast keeps it; check_encoding (expected_bytes, below) says
        // which axes an encoding may name.
        if (axis > std::numeric_limits<uint8_t>::max()) e.fail("axis ", axis, " is out of range");
        enc->axis = static_cast<uint8_t>(axis);
        if (enc->is_sparse()) enc->sparse.kept = e.u64("kept");
        e.done();
        if (t.dtype != DType::F32 && enc->is_quantized())
            fail("an encoded tensor has the logical dtype f32, found ", dtype_name(t.dtype));
        t.encoding = *enc;
    }
    if (t.dtype == DType::String) {
        if (t.is_encoded()) fail("a string tensor cannot be encoded");
        t.strings = g.bytes_list("strings");
        if (t.strings.size() != *count)
            fail(t.strings.size(), " strings for shape ", shape_string(t.shape));
        g.done();
        return t;
    }
    uint64_t want = t.expected_bytes();  // InputError naming the tensor on overflow/bad axis
    uint64_t offset = g.u64("offset");
    uint64_t bytes = g.u64("bytes");
    hash = g.str("sha256");
    if (!is_hex64(hash)) fail("sha256 must be 64 lowercase hex digits, found '", hash, "'");
    g.done();
    std::string kind =
        t.is_encoded() ? encoding_name(t.encoding) : std::string(dtype_name(t.dtype));
    if (bytes != want)
        fail(kind, " x ", shape_string(t.shape), " needs ", want, " bytes, but the table says ",
             bytes);
    if (offset % kEpkAlignment) fail("offset ", offset, " is not a multiple of ", kEpkAlignment);
    auto end = checked_add(offset, bytes);
    if (!end || *end > info.data_length)
        fail("offset ", offset, " + ", bytes, " bytes runs past the data section (",
             info.data_length, " bytes)");
    if (offset < position)
        fail("offset ", offset, " overlaps the previous tensor, which ends at ", position);
    position = *end;
    t.data = TensorData::view(file, static_cast<size_t>(info.data_offset + offset),
                              static_cast<size_t>(bytes));
    if (t.encoding.is_sparse()) {
        // Kernels trust the mask and row_start: every field is checked once here.
        auto dims = encoded_dims(t.encoding, t.shape, cat("tensor '", t.name, "'"));
        check_sparse_bytes(t.encoding, t.dtype, t.data.bytes(), dims.rows, dims.cols,
                           cat("tensor '", t.name, "'"));
    }
    return t;
}

// Format versions (docs/epk.md): a file of a major version other than this reader's is
// refused, naming both versions; any minor version of this major is read.
void check_format_major(uint16_t major, uint16_t minor) {
    if (major == kEpkFormatVersion) return;
    std::string why = major > kEpkFormatVersion
                          ? "a newer edgepack wrote it; reading it needs an edgepack that reads "
                            "its major version"
                          : "no edgepack writes it";
    throw InputError(cat("header: format version ", major, ".", minor,
                         " is not supported: this edgepack reads format version ",
                         kEpkFormatVersion, ".x (it writes ", kEpkFormatVersion, ".",
                         kEpkFormatMinor, "); ", why));
}

EpkFile read_mapped(const std::shared_ptr<const MappedFile>& file, const EpkReadOptions& options,
                    std::vector<EpkTableEntry>* table_out = nullptr) {
    auto all = file->bytes();
    const uint64_t size = all.size();
    const uint64_t min_size = kEpkHeaderBytes + kEpkChecksumBytes;
    if (size < min_size)
        throw InputError(cat("file is ", size, " bytes; an .epk file has at least ", min_size,
                             " (a 64-byte header and a 32-byte checksum): truncated, or not "
                             "an .epk file"));
    const std::byte* p = all.data();

    // The checksum first: nothing else in the file is trusted before it matches.
    auto digest = sha256_before_trailer(*file);
    EpkInfo info;
    if (std::memcmp(digest.data(), p + size - kEpkChecksumBytes, kEpkChecksumBytes) != 0) {
        std::string hint;
        if (!has_epk_magic(all))
            hint = " (its first bytes are not the .epk magic: not an .epk file?)";
        else if (uint16_t major = static_cast<uint16_t>(get_le(p + 8, 2));
                 major > kEpkFormatVersion)  // a newer major may seal the file another way
            hint = cat(" (or its header's format version ", major, ".", get_le(p + 10, 2),
                       " is right, and it is newer than the ", kEpkFormatVersion,
                       ".x this edgepack reads)");
        else if (uint64_t recorded = get_le(p + 48, 8); recorded != size)
            hint = cat(" (the header records ", recorded, " bytes, the file has ", size, ")");
        throw InputError(cat("checksum mismatch: the file is corrupt or truncated", hint));
    }
    info.sha256 = hex(digest);

    if (!has_epk_magic(all)) throw InputError("header: bad magic (not an .epk file)");
    info.format_version = static_cast<uint16_t>(get_le(p + 8, 2));
    info.format_minor = static_cast<uint16_t>(get_le(p + 10, 2));
    check_format_major(info.format_version, info.format_minor);
    // A newer minor: same layout, keys this reader does not know are skipped and listed.
    UnknownFields unknown;
    unknown.skip = info.format_minor > kEpkFormatMinor;
    if (auto hs = get_le(p + 12, 4); hs != kEpkHeaderBytes)
        throw InputError(cat("header: header_size ", hs, " (expected ", kEpkHeaderBytes, ")"));
    info.manifest_offset = get_le(p + 16, 8);
    info.manifest_length = get_le(p + 24, 8);
    info.data_offset = get_le(p + 32, 8);
    info.data_length = get_le(p + 40, 8);
    info.file_length = get_le(p + 48, 8);
    if (auto r = get_le(p + 56, 8); r != 0 && !unknown.skip)
        throw InputError(cat("header: reserved field is ", r, " (expected 0)"));
    if (info.file_length != size)
        throw InputError(
            cat("header: file_length ", info.file_length, " but the file is ", size, " bytes"));
    if (info.data_offset != kEpkHeaderBytes)
        throw InputError(cat("header: data_offset ", info.data_offset, " (expected ",
                             kEpkHeaderBytes, ", right after the header)"));
    if (info.data_length % kEpkAlignment)
        throw InputError(
            cat("header: data_length ", info.data_length, " is not a multiple of ", kEpkAlignment));
    auto data_end = checked_add(info.data_offset, info.data_length);
    if (!data_end || *data_end != info.manifest_offset)
        throw InputError(cat("header: the data section [", info.data_offset, ", +",
                             info.data_length, ") must end where the manifest starts (",
                             info.manifest_offset, ")"));
    if (info.manifest_length < 2 || info.manifest_length > kEpkMaxManifestBytes)
        throw InputError(cat("header: manifest_length ", info.manifest_length, " (expected 2 to ",
                             kEpkMaxManifestBytes, " bytes)"));
    auto manifest_end = checked_add(info.manifest_offset, info.manifest_length);
    if (!manifest_end || *manifest_end != size - kEpkChecksumBytes)
        throw InputError(cat("header: the manifest [", info.manifest_offset, ", +",
                             info.manifest_length, ") must end where the checksum starts (",
                             size - kEpkChecksumBytes, ")"));

    std::string_view text(reinterpret_cast<const char*>(p + info.manifest_offset),
                          static_cast<size_t>(info.manifest_length));
    json manifest = parse_manifest(text);
    Fields top(manifest, "top level", unknown);
    if (auto fmt = top.str("format"); fmt != "edgepack.epk")
        top.fail("'format' is \"", fmt, "\" (expected \"edgepack.epk\")");
    if (auto v = top.u64("format_version"); v != info.format_version)
        top.fail("'format_version' ", v, " disagrees with the header's ", info.format_version);
    info.provenance = parse_provenance(top.at("provenance"), unknown);

    const json& tensors = top.array("tensors");
    std::vector<TableEntry> table;
    table.reserve(tensors.size());
    std::vector<std::string> hashes(tensors.size());
    uint64_t position = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        table.push_back(
            {parse_tensor(tensors[i], i, file, info, position, hashes[i], unknown), false});
        const Tensor& t = table.back().tensor;
        if (table_out && t.dtype != DType::String)
            table_out->push_back({t.name, t.data.file_offset(), t.data.size(), hashes[i]});
    }

    if (options.verify_tensor_checksums) {
        for (size_t i = 0; i < table.size(); ++i) {
            const Tensor& t = table[i].tensor;
            if (t.dtype == DType::String) continue;
            Sha256 s;
            auto bytes = t.data.bytes();
            for (size_t at = 0; at < bytes.size(); at += kChunk) {  // pages released as it goes
                size_t n = std::min(kChunk, bytes.size() - at);
                s.update(bytes.subspan(at, n));
                file->release(t.data.file_offset() + at, n);
            }
            if (hex(s.finish()) != hashes[i])
                throw InputError(cat("tensor '", t.name, "': sha256 mismatch: the bytes hash to ",
                                     "another value than the table's ", hashes[i]));
        }
        info.tensor_checksums_verified = true;
    }

    ManifestReader reader(table, unknown);
    EpkFile out;
    out.model = reader.model(top.at("model"));
    top.done();
    info.skipped_fields = std::move(unknown.skipped);
    for (size_t i = 0; i < table.size(); ++i)
        if (!table[i].used)
            throw InputError(cat("manifest: tensors[", i, "] ('", table[i].tensor.name,
                                 "') is not referred to by the model"));

    out.info = std::move(info);
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
        throw InternalError("OpenSSL: cannot initialise SHA-256");
}
Sha256::~Sha256() {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}
void Sha256::update(std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size()) != 1)
        throw InternalError("OpenSSL: SHA-256 update failed");
}
std::array<std::byte, 32> Sha256::finish() {
    std::array<std::byte, 32> out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_),
                           reinterpret_cast<unsigned char*>(out.data()), &n) != 1 ||
        n != 32)
        throw InternalError("OpenSSL: SHA-256 final failed");
    return out;
}

void put_le(std::byte* p, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}
uint64_t get_le(const std::byte* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
}

std::string hex(std::span<const std::byte> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (std::byte b : bytes) {
        s += digits[static_cast<uint8_t>(b) >> 4];
        s += digits[static_cast<uint8_t>(b) & 15];
    }
    return s;
}

std::string sha256_file_hex(const std::filesystem::path& path) {
    auto file = MappedFile::open(path);
    Sha256 sha;
    auto all = file->bytes();
    for (size_t at = 0; at < all.size(); at += kChunk) {
        size_t n = std::min(kChunk, all.size() - at);
        sha.update(all.subspan(at, n));
        file->release(at, n);
    }
    return hex(sha.finish());
}

bool has_epk_magic(std::span<const std::byte> head) {
    if (head.size() < kMagic.size()) return false;
    for (size_t i = 0; i < kMagic.size(); ++i)
        if (static_cast<uint8_t>(head[i]) != kMagic[i]) return false;
    return true;
}

void write_epk(const Model& model, ByteSink& sink, const EpkWriteOptions& options) {
    const uint64_t start = sink.position();
    ManifestWriter writer;
    json model_json = writer.model(model);

    // The tensor table and the data layout.
    json table = json::array();
    std::vector<uint64_t> offsets(writer.tensors.size());
    // Tensors whose bytes come from a callback (streamed_tensor.h): described by the
    // replacement's header, sized by its byte count.
    std::vector<const StreamedTensor*> streamed(writer.tensors.size(), nullptr);
    uint64_t position = 0;
    for (size_t i = 0; i < writer.tensors.size(); ++i) {
        if (options.streamed) {
            auto it = options.streamed->find(writer.tensors[i]);
            if (it != options.streamed->end()) streamed[i] = &it->second;
        }
        const Tensor& t = streamed[i] ? streamed[i]->header : *writer.tensors[i];
        const uint64_t size = streamed[i] ? streamed[i]->bytes : t.data.size();
        if (!streamed[i])
            t.check_consistent();
        else if (t.dtype == DType::String || t.expected_bytes() != size)
            throw InternalError(cat("tensor '", t.name, "': a streamed tensor of ", size,
                                    " bytes does not match its header"));
        json e{{"name", t.name}, {"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}};
        if (!valid_utf8(t.name)) throw InputError("a tensor name is not valid UTF-8");
        if (!t.doc_string.empty()) {
            if (!valid_utf8(t.doc_string))
                throw InputError(cat("tensor '", t.name, "': doc_string is not valid UTF-8"));
            e["doc_string"] = t.doc_string;
        }
        if (t.is_encoded()) {
            e["encoding"] = {{"name", encoding_name(t.encoding)}, {"axis", t.encoding.axis}};
            if (t.encoding.is_sparse()) e["encoding"]["kept"] = t.encoding.sparse.kept;
        }
        if (t.dtype == DType::String) {
            json s = json::array();
            for (const auto& x : t.strings)
                s.push_back(valid_utf8(x) ? json(x) : json{{"base64", base64_encode(x)}});
            e["strings"] = std::move(s);
        } else {
            position = align_up(position);
            offsets[i] = position;
            e["offset"] = position;
            e["bytes"] = size;
            e["sha256"] = kZeroHash;
            auto end = checked_add(position, size);
            if (!end) throw InputError("the tensors' total size overflows");
            position = *end;
        }
        table.push_back(std::move(e));
    }
    const uint64_t data_length = align_up(position);

    json manifest{{"format", "edgepack.epk"},
                  {"format_version", kEpkFormatVersion},
                  {"provenance", provenance_json(options.provenance)},
                  {"tensors", table},
                  {"model", std::move(model_json)}};
    const uint64_t manifest_length = manifest.dump().size();
    if (manifest_length > kEpkMaxManifestBytes)
        throw InputError(cat("the manifest would be ", manifest_length,
                             " bytes, over the limit of ", kEpkMaxManifestBytes));
    const uint64_t manifest_offset = kEpkHeaderBytes + data_length;
    const uint64_t file_length = manifest_offset + manifest_length + kEpkChecksumBytes;

    HashingSink out(sink);
    std::array<std::byte, kEpkHeaderBytes> header{};
    for (size_t i = 0; i < kMagic.size(); ++i) header[i] = static_cast<std::byte>(kMagic[i]);
    put_le(&header[8], kEpkFormatVersion, 2);
    put_le(&header[10], kEpkFormatMinor, 2);
    put_le(&header[12], kEpkHeaderBytes, 4);
    put_le(&header[16], manifest_offset, 8);
    put_le(&header[24], manifest_length, 8);
    put_le(&header[32], kEpkHeaderBytes, 8);
    put_le(&header[40], data_length, 8);
    put_le(&header[48], file_length, 8);
    out.write(std::span<const std::byte>(header));

    uint64_t written = 0;
    for (size_t i = 0; i < writer.tensors.size(); ++i) {
        const Tensor& t = *writer.tensors[i];
        if (!streamed[i] && t.dtype == DType::String) continue;
        out.write_zeros(static_cast<size_t>(offsets[i] - written));
        TensorHashingSink tensor_out(out);  // the tensor's SHA-256; the file's in `out`
        if (streamed[i]) {
            write_streamed(*streamed[i], tensor_out);
        } else {
            write_tensor_bytes(tensor_out, t.data);
        }
        manifest["tensors"][i]["sha256"] = hex(tensor_out.finish());
        written = offsets[i] + tensor_out.count();
    }
    out.write_zeros(static_cast<size_t>(data_length - written));
    std::string text = manifest.dump();
    if (text.size() != manifest_length)
        throw InternalError(cat(".epk writer: the manifest changed length (", manifest_length,
                                " -> ", text.size(), ") when the hashes were filled in"));
    out.write(std::string_view(text));
    auto digest = out.finish();
    sink.write(std::span<const std::byte>(digest));
    if (sink.position() - start != file_length)
        throw InternalError(
            cat(".epk writer: wrote ", sink.position() - start, " bytes, expected ", file_length));
}

void write_epk(const Model& model, const std::filesystem::path& path,
               const EpkWriteOptions& options) {
    try {
        OutputFile out(path);
        write_epk(model, out, options);
        out.commit();
    } catch (const InputError& e) {
        throw InputError(cat(path.string(), ": ", e.what()));
    }
}

std::array<std::byte, 32> sha256_before_trailer(const MappedFile& file) {
    auto all = file.bytes();
    const uint64_t size = all.size();
    Sha256 sha;
    for (uint64_t at = 0; at + kEpkChecksumBytes < size; at += kChunk) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - kEpkChecksumBytes - at));
        sha.update(all.subspan(static_cast<size_t>(at), n));
        file.release(static_cast<size_t>(at), n);
    }
    return sha.finish();
}

EpkTable read_epk_table(const std::filesystem::path& path) {
    auto file = MappedFile::open(path);
    EpkTable out;
    try {
        out.info =
            read_mapped(file, EpkReadOptions{.verify_tensor_checksums = true}, &out.tensors).info;
    } catch (const InputError& e) {
        throw InputError(cat(path.string(), ": ", e.what()));
    }
    return out;
}

EpkFile read_epk(const std::filesystem::path& path, const EpkReadOptions& options) {
    auto file = MappedFile::open(path);
    try {
        return read_mapped(file, options);
    } catch (const InputError& e) {
        throw InputError(cat(path.string(), ": ", e.what()));
    }
}

}  // namespace ep
