#include "compressor/inspect.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "ir/sparse.h"
#include "runtime-check/executor.h"

namespace ep {
namespace {

using nlohmann::json;

struct TensorRef {
    const Tensor* tensor;
    const char* source;  // "initializer" or "constant"
};

// Every weight in the model: initializers of every graph and Constant-node values.
std::vector<TensorRef> collect_tensors(const Model& model) {
    std::vector<TensorRef> out;
    for_each_graph(model.graph, [&](const Graph& g) {
        for (const auto& t : g.initializers) out.push_back({&t, "initializer"});
        for (const auto& n : g.nodes)
            if (n.op_type == "Constant" && n.domain.empty())
                if (const Attribute* a = n.attr("value"); a && !a->tensors.empty())
                    out.push_back({&a->tensors[0], "constant"});
    });
    return out;
}

json shape_json(const ValueInfo& v) {
    if (!v.type || !v.type->is_tensor || !v.type->shape) return nullptr;
    json dims = json::array();
    for (const auto& d : *v.type->shape) {
        if (d.value)
            dims.push_back(*d.value);
        else if (!d.param.empty())
            dims.push_back(d.param);
        else
            dims.push_back(nullptr);
    }
    return dims;
}

json values_json(const std::vector<ValueInfo>& values) {
    json out = json::array();
    for (const auto& v : values) {
        std::string dtype = "unknown";
        if (v.type && !v.type->is_tensor)
            dtype = "non-tensor";
        else if (v.type)
            dtype = std::string(dtype_name(v.type->elem));
        out.push_back({{"name", v.name}, {"dtype", dtype}, {"shape", shape_json(v)}});
    }
    return out;
}

// What edgepack's runtime (run / validate / bench, a recipe's validation) makes of the
// graph: the same list the Executor refuses at load (rt::unsupported_ops).
json runtime_json(const Model& model) {
    if (model.graph.nodes.empty())
        return {{"runnable", false},
                {"reason", "no graph: a weights-only checkpoint"},
                {"unsupported_ops", json::array()}};
    json ops = json::array();
    for (const auto& u : rt::unsupported_ops(model))
        ops.push_back({{"op_type", u.op_type},
                       {"domain", u.domain},
                       {"opset", u.opset},
                       {"count", u.nodes.size()},
                       {"nodes", u.nodes}});
    return {{"runnable", ops.empty()}, {"unsupported_ops", ops}};
}

std::string grouped(uint64_t n) {
    std::string s = std::to_string(n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
        s.insert(static_cast<size_t>(i), ",");
    return s;
}

std::string bits_text(double bits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", bits);
    return buf;
}

std::string shape_text(const json& shape) {
    if (shape.is_null()) return "?";
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        if (shape[i].is_number())
            s += std::to_string(shape[i].get<int64_t>());
        else if (shape[i].is_string())
            s += shape[i].get<std::string>();
        else
            s += "?";
    }
    return s + "]";
}

// The storage encoding's name ("int4g32") for an encoded tensor, else the dtype's ("f32").
std::string storage_name(const Tensor& t) {
    return t.is_encoded() ? encoding_name(t.encoding) : std::string(dtype_name(t.dtype));
}

// Stored bits per element, scales and zero points included.
double bits_of(const Tensor& t) {
    if (t.is_encoded()) {
        auto dims = encoded_dims(t.encoding, t.shape, t.name);
        return bits_per_weight(t.encoding, dims.rows, dims.cols);
    }
    return traits(t.dtype).bits;
}

// "unstructured" for a bitmask, "2:4" for n:m.
std::string sparse_pattern(const Sparsity& s) {
    if (s.layout == SparseLayout::NM) return cat(int(s.n), ":", int(s.m));
    return "unstructured";
}

// Bytes the tensor would take stored dense (its dense encoding, or its dtype's elements).
uint64_t dense_bytes(const Tensor& t) {
    Encoding d = t.encoding.dense();
    if (d.is_none())
        return storage_bytes(t.dtype, static_cast<uint64_t>(t.element_count())).value_or(0);
    auto dims = encoded_dims(d, t.shape, cat("tensor '", t.name, "'"));
    return encoded_bytes(d, dims.rows, dims.cols, t.dtype).value_or(0);
}

// The sparse-stored tensors, one entry each, and their totals: how much was pruned and
// what the sparse storage saves over the dense form.
json sparse_json(const std::vector<TensorRef>& tensors) {
    json layers = json::array();
    uint64_t weights = 0, kept = 0, bytes = 0, dense = 0;
    for (const auto& ref : tensors) {
        const Tensor& t = *ref.tensor;
        if (!t.encoding.is_sparse()) continue;
        auto n = static_cast<uint64_t>(t.element_count());
        uint64_t d = dense_bytes(t);
        weights += n;
        kept += t.encoding.sparse.kept;
        bytes += t.data.size();
        dense += d;
        layers.push_back({{"name", t.name},
                          {"shape", t.shape},
                          {"pattern", sparse_pattern(t.encoding.sparse)},
                          {"axis", t.encoding.axis},
                          {"kept", t.encoding.sparse.kept},
                          {"sparsity", 1.0 - kept_fraction(t)},
                          {"encoding", encoding_name(t.encoding)},
                          {"bytes", t.data.size()},
                          {"dense_bytes", d}});
    }
    return {{"tensors", layers.size()},
            {"weights", weights},
            {"kept", kept},
            {"sparsity", weights ? 1.0 - double(kept) / double(weights) : 0.0},
            {"bytes", bytes},
            {"dense_bytes", dense},
            {"layers", layers}};
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (u == 0)
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    else
        std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
    return buf;
}

namespace {

// A GGUF file's header as inspect shows it: each metadata value typed, arrays cut to their
// first kGgufArrayShown elements (with the full count), each tensor's ggml type and bytes.
constexpr size_t kGgufArrayShown = 8;

json gguf_json(const GgufFile& f) {
    json metadata = json::object();
    for (const auto& [key, value] : f.metadata) {
        json v = json::parse(gguf_value_json(value));
        if (value.type == GgufValueType::Array) {
            v["count"] = value.count;
            if (value.count > kGgufArrayShown) {
                json shown = json::array();
                for (size_t i = 0; i < kGgufArrayShown; ++i) shown.push_back(v["value"][i]);
                v["value"] = shown;
                v["truncated"] = true;
            }
        }
        metadata[key] = v;
    }
    json tensors = json::array();
    std::map<std::string, std::array<uint64_t, 2>> by_type;  // tensors, bytes
    for (const auto& t : f.tensors) {
        json shape = json::array();
        for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) shape.push_back(*it);
        tensors.push_back({{"name", t.name},
                           {"ggml_type", ggml_type_name(t.type)},
                           {"shape", shape},
                           {"offset", t.offset},
                           {"bytes", t.bytes}});
        auto& e = by_type[ggml_type_name(t.type)];
        e[0] += 1;
        e[1] += t.bytes;
    }
    json types = json::array();
    for (const auto& [name, e] : by_type)
        types.push_back({{"ggml_type", name}, {"tensors", e[0]}, {"bytes", e[1]}});
    return {{"version", f.version}, {"alignment", f.alignment}, {"data_offset", f.data_offset},
            {"metadata", metadata}, {"by_ggml_type", types},    {"tensors", tensors}};
}

// One line for a typed GGUF value: the value itself, or "[32000 strings: a, b, ...]".
std::string gguf_value_text(const json& v) {
    auto one = [](const json& x) { return x.is_string() ? x.get<std::string>() : x.dump(); };
    if (v["type"] != "array") return one(v["value"]);
    std::string s = "[" + std::to_string(v["count"].get<uint64_t>()) + " " +
                    v["element_type"].get<std::string>() + ":";
    for (const auto& x : v["value"]) s += " " + one(x) + ",";
    if (!v["value"].empty()) s.pop_back();
    return s + (v.contains("truncated") ? " ...]" : "]");
}

}  // namespace

json inspect_model(const Model& model, const std::filesystem::path& file,
                   const InspectOptions& options, const EpkInfo* epk, const GgufFile* gguf) {
    json r;
    r["schema"] = kInspectSchema;
    r["file"] = file.string();
    std::error_code ec;
    auto file_bytes = std::filesystem::file_size(file, ec);
    r["file_bytes"] = ec ? 0 : file_bytes;
    const char* source_format = model.format == SourceFormat::Onnx ? "onnx" : "safetensors";
    r["format"] = epk ? "epk" : gguf ? "gguf" : source_format;
    if (epk) {
        const auto& p = epk->provenance;
        r["epk"] = {{"format_version", epk->format_version},
                    {"format_minor", epk->format_minor},
                    {"skipped_fields", epk->skipped_fields},
                    {"source_format", source_format},
                    {"sha256", epk->sha256},
                    {"checksum_verified", true},
                    {"tensor_checksums_verified", epk->tensor_checksums_verified},
                    {"manifest_bytes", epk->manifest_length},
                    {"data_bytes", epk->data_length},
                    {"provenance",
                     {{"edgepack_version", p.edgepack_version},
                      {"source_file", p.source_file},
                      {"source_sha256", p.source_sha256},
                      {"recipe_file", p.recipe_file},
                      {"recipe_sha256", p.recipe_sha256},
                      {"recipe_overrides", p.recipe_overrides}}}};
    }
    if (model.format == SourceFormat::Onnx) {
        r["ir_version"] = model.ir_version;
        json opsets = json::array();
        for (const auto& o : model.opset_imports)
            opsets.push_back({{"domain", o.domain}, {"version", o.version}});
        r["opsets"] = opsets;
        r["producer"] = {{"name", model.producer_name}, {"version", model.producer_version}};
    }
    json metadata = json::object();
    if (gguf) {
        r["gguf"] = gguf_json(*gguf);
        for (const auto& [k, v] : r["gguf"]["metadata"].items()) metadata[k] = gguf_value_text(v);
    } else {
        for (const auto& [k, v] : model.metadata) metadata[k] = v;
    }
    r["metadata"] = metadata;

    auto tensors = collect_tensors(model);
    uint64_t total_count = 0, total_bytes = 0;
    std::map<DType, std::array<uint64_t, 3>> by_dtype;  // count, bytes, tensors
    for (const auto& ref : tensors) {
        const Tensor& t = *ref.tensor;
        auto n = static_cast<uint64_t>(t.element_count());
        uint64_t b = t.dtype == DType::String ? 0 : t.data.size();
        total_count += n;
        total_bytes += b;
        auto& e = by_dtype[t.dtype];
        e[0] += n;
        e[1] += b;
        e[2] += 1;
    }
    json dtypes = json::array();
    for (const auto& [dt, e] : by_dtype)
        dtypes.push_back(
            {{"dtype", dtype_name(dt)}, {"count", e[0]}, {"bytes", e[1]}, {"tensors", e[2]}});
    std::sort(dtypes.begin(), dtypes.end(),
              [](const json& a, const json& b) { return a["bytes"] > b["bytes"]; });
    // By storage encoding: the encoding's name for encoded tensors, else the dtype's name.
    std::map<std::string, std::array<uint64_t, 3>> by_encoding;
    for (const auto& ref : tensors) {
        const Tensor& t = *ref.tensor;
        auto& e = by_encoding[storage_name(t)];
        e[0] += static_cast<uint64_t>(t.element_count());
        e[1] += t.dtype == DType::String ? 0 : t.data.size();
        e[2] += 1;
    }
    json encodings = json::array();
    for (const auto& [name, e] : by_encoding)
        encodings.push_back({{"encoding", name},
                             {"count", e[0]},
                             {"bytes", e[1]},
                             {"tensors", e[2]},
                             {"bits_per_weight", e[0] ? 8.0 * double(e[1]) / double(e[0]) : 0.0}});
    std::stable_sort(encodings.begin(), encodings.end(),
                     [](const json& a, const json& b) { return a["bytes"] > b["bytes"]; });
    r["sparse"] = sparse_json(tensors);
    r["parameters"] = {{"count", total_count},
                       {"bytes", total_bytes},
                       {"tensors", tensors.size()},
                       {"by_dtype", dtypes},
                       {"by_encoding", encodings}};

    std::map<std::pair<std::string, std::string>, uint64_t> ops;
    uint64_t node_count = 0, subgraphs = 0;
    for_each_graph(model.graph, [&](const Graph& g) {
        if (&g != &model.graph) ++subgraphs;
        for (const auto& n : g.nodes) {
            ++ops[{n.domain, n.op_type}];
            ++node_count;
        }
    });
    json op_types = json::array();
    for (const auto& [key, count] : ops)
        op_types.push_back({{"op_type", key.second}, {"domain", key.first}, {"count", count}});
    std::stable_sort(op_types.begin(), op_types.end(),
                     [](const json& a, const json& b) { return a["count"] > b["count"]; });
    r["nodes"] = node_count;
    r["subgraphs"] = subgraphs;
    r["functions"] = model.functions.size();
    r["op_types"] = op_types;
    r["runtime"] = runtime_json(model);
    r["inputs"] = values_json(model.graph.inputs);
    r["outputs"] = values_json(model.graph.outputs);

    auto tensor_json = [](const TensorRef& ref, bool detail) {
        const Tensor& t = *ref.tensor;
        json j = {{"name", t.name},
                  {"dtype", dtype_name(t.dtype)},
                  {"shape", t.shape},
                  {"bytes", t.dtype == DType::String ? 0 : t.data.size()}};
        if (detail) {
            // Sparse storage knows its pruned fraction; other encoded tensors are not decoded.
            j["zero_fraction"] = t.encoding.is_sparse() ? 1.0 - kept_fraction(t)
                                 : t.is_encoded()       ? 0.0
                                                        : t.zero_fraction();
            j["source"] = ref.source;
            j["encoding"] = storage_name(t);
            if (t.is_encoded()) j["axis"] = t.encoding.axis;
            j["bits_per_weight"] = bits_of(t);
        }
        return j;
    };
    std::vector<TensorRef> largest = tensors;
    std::stable_sort(largest.begin(), largest.end(), [](const TensorRef& a, const TensorRef& b) {
        return a.tensor->data.size() > b.tensor->data.size();
    });
    if (largest.size() > options.largest) largest.resize(options.largest);
    json largest_json = json::array();
    for (const auto& ref : largest) largest_json.push_back(tensor_json(ref, false));
    r["largest_tensors"] = largest_json;
    if (options.tensors) {
        json all = json::array();
        for (const auto& ref : tensors) all.push_back(tensor_json(ref, true));
        r["tensors"] = all;
    }
    return r;
}

std::string render_inspect_text(const json& r) {
    std::ostringstream out;
    auto row = [&](const std::string& label, const std::string& value) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%-12s", label.c_str());
        out << buf << value << "\n";
    };
    row("file", r["file"].get<std::string>() + " (" + human_bytes(r["file_bytes"]) + ")");
    if (r["format"] == "epk") {
        const auto& e = r["epk"];
        const auto& p = e["provenance"];
        row("format", "epk version " + std::to_string(e["format_version"].get<uint32_t>()) + "." +
                          std::to_string(e["format_minor"].get<uint32_t>()) + " (from " +
                          e["source_format"].get<std::string>() + ")");
        // A newer minor version's keys this edgepack does not know (docs/epk.md).
        for (const auto& f : e["skipped_fields"])
            row("skipped", f.get<std::string>() + " (newer minor version; not understood)");
        row("checksum",
            "sha256 " + e["sha256"].get<std::string>() + " verified" +
                (e["tensor_checksums_verified"].get<bool>() ? ", tensor checksums verified" : ""));
        auto known = [](const json& v) {
            std::string s = v.get<std::string>();
            return s.empty() ? std::string("(not recorded)") : s;
        };
        row("source", known(p["source_file"]) + " sha256 " + known(p["source_sha256"]));
        std::string recipe = known(p["recipe_file"]) + " sha256 " + known(p["recipe_sha256"]);
        for (const auto& o : p["recipe_overrides"]) recipe += " --set " + o.get<std::string>();
        row("recipe", recipe);
        row("edgepack", known(p["edgepack_version"]));
    }
    if (r.contains("ir_version")) {
        std::string opsets;
        for (const auto& o : r["opsets"]) {
            if (!opsets.empty()) opsets += ", ";
            std::string d = o["domain"];
            opsets +=
                (d.empty() ? "ai.onnx" : d) + " " + std::to_string(o["version"].get<int64_t>());
        }
        row(r["format"] == "onnx" ? "format" : "graph",
            "ONNX, IR version " + std::to_string(r["ir_version"].get<int64_t>()) +
                ", opsets: " + opsets);
        std::string producer = r["producer"]["name"].get<std::string>() + " " +
                               r["producer"]["version"].get<std::string>();
        if (producer != " ") row("producer", producer);
    } else if (r["format"] == "safetensors") {
        row("format", "safetensors");
    } else if (r["format"] == "gguf") {
        const auto& g = r["gguf"];
        row("format", "GGUF version " + std::to_string(g["version"].get<uint32_t>()) +
                          ", alignment " + std::to_string(g["alignment"].get<uint64_t>()));
        for (const auto& t : g["by_ggml_type"]) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "  %-10s%s tensors, %s",
                          t["ggml_type"].get<std::string>().c_str(), grouped(t["tensors"]).c_str(),
                          human_bytes(t["bytes"]).c_str());
            row("ggml type", buf);
        }
    }
    for (const auto& [k, v] : r["metadata"].items())
        row("metadata", k + " = " + v.get<std::string>());
    const auto& p = r["parameters"];
    row("parameters", grouped(p["count"]) + " in " + grouped(p["tensors"]) + " tensors, " +
                          human_bytes(p["bytes"]));
    for (const auto& d : p["by_dtype"]) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "  %-10s%s in %s tensors, %s",
                      d["dtype"].get<std::string>().c_str(), grouped(d["count"]).c_str(),
                      grouped(d["tensors"]).c_str(), human_bytes(d["bytes"]).c_str());
        out << buf << "\n";
    }
    bool any_encoded = false;
    for (const auto& d : p["by_encoding"])
        if (!dtype_from_name(d["encoding"].get<std::string>())) any_encoded = true;
    if (any_encoded) {
        out << "by encoding\n";
        for (const auto& d : p["by_encoding"]) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "  %-15s %s in %s tensors, %s, %.3f bits/weight",
                          d["encoding"].get<std::string>().c_str(), grouped(d["count"]).c_str(),
                          grouped(d["tensors"]).c_str(), human_bytes(d["bytes"]).c_str(),
                          d["bits_per_weight"].get<double>());
            out << buf << "\n";
        }
    }
    if (r.contains("sparse") && r["sparse"]["tensors"].get<uint64_t>() > 0) {
        const json& sp = r["sparse"];
        char buf[240];
        std::snprintf(buf, sizeof buf,
                      "%s of %s weights pruned (%.2f%%) in %s tensors, %s (dense %s)",
                      grouped(sp["weights"].get<uint64_t>() - sp["kept"].get<uint64_t>()).c_str(),
                      grouped(sp["weights"]).c_str(), 100.0 * sp["sparsity"].get<double>(),
                      grouped(sp["tensors"]).c_str(), human_bytes(sp["bytes"]).c_str(),
                      human_bytes(sp["dense_bytes"]).c_str());
        row("sparse", buf);
        for (const auto& l : sp["layers"]) {
            std::snprintf(buf, sizeof buf, "  %6.2f%% %-13s%-16s%s (dense %s)  ",
                          100.0 * l["sparsity"].get<double>(),
                          l["pattern"].get<std::string>().c_str(),
                          l["encoding"].get<std::string>().c_str(), human_bytes(l["bytes"]).c_str(),
                          human_bytes(l["dense_bytes"]).c_str());
            out << buf << l["name"].get<std::string>() << " " << shape_text(l["shape"]) << "\n";
        }
    }
    if (r.contains("ir_version")) {
        std::string ops;
        for (const auto& o : r["op_types"]) {
            if (!ops.empty()) ops += ", ";
            std::string d = o["domain"];
            ops += (d.empty() ? "" : d + ".") + o["op_type"].get<std::string>() + " " +
                   std::to_string(o["count"].get<uint64_t>());
        }
        row("nodes", grouped(r["nodes"]) + (ops.empty() ? "" : ": " + ops));
        const json& rt = r["runtime"];
        std::string runtime = rt["runnable"].get<bool>() ? "runs every op" : "";
        for (const auto& u : rt["unsupported_ops"]) {
            std::string d = u["domain"];
            runtime += (runtime.empty() ? "cannot run: " : ", ") + (d.empty() ? "" : d + ".") +
                       u["op_type"].get<std::string>() + " (opset " +
                       std::to_string(u["opset"].get<int64_t>()) + ", " + grouped(u["count"]) +
                       (u["count"] == 1 ? " node)" : " nodes)");
        }
        row("runtime", runtime);
        if (r["subgraphs"].get<uint64_t>() || r["functions"].get<uint64_t>())
            row("subgraphs",
                grouped(r["subgraphs"]) + ", local functions " + grouped(r["functions"]));
        for (const char* side : {"inputs", "outputs"}) {
            out << side << "\n";
            for (const auto& v : r[side])
                out << "  " << v["name"].get<std::string>() << "  " << v["dtype"].get<std::string>()
                    << " " << shape_text(v["shape"]) << "\n";
        }
    }
    out << "largest tensors\n";
    int i = 0;
    for (const auto& t : r["largest_tensors"])
        out << "  " << ++i << ". " << t["name"].get<std::string>() << "  "
            << t["dtype"].get<std::string>() << " " << shape_text(t["shape"]) << "  "
            << human_bytes(t["bytes"]) << "\n";
    if (r.contains("tensors")) {
        out << "tensors (name, dtype, shape, bytes, zeros, encoding, bits/weight)\n";
        for (const auto& t : r["tensors"]) {
            char zeros[32];
            std::snprintf(zeros, sizeof zeros, "%.2f%%", 100.0 * t["zero_fraction"].get<double>());
            out << "  " << t["name"].get<std::string>() << "  " << t["dtype"].get<std::string>()
                << " " << shape_text(t["shape"]) << "  " << t["bytes"].get<uint64_t>() << "  "
                << zeros << "  " << t["encoding"].get<std::string>()
                << (t.contains("axis") ? " axis " + std::to_string(t["axis"].get<int>()) : "")
                << "  " << bits_text(t["bits_per_weight"].get<double>())
                << (t["source"] == "constant" ? "  (Constant node)" : "") << "\n";
        }
    }
    return out.str();
}

}  // namespace ep
