#include "compressor/inspect.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

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
        if (d.value) dims.push_back(*d.value);
        else if (!d.param.empty()) dims.push_back(d.param);
        else dims.push_back(nullptr);
    }
    return dims;
}

json values_json(const std::vector<ValueInfo>& values) {
    json out = json::array();
    for (const auto& v : values) {
        std::string dtype = "unknown";
        if (v.type && !v.type->is_tensor) dtype = "non-tensor";
        else if (v.type) dtype = std::string(dtype_name(v.type->elem));
        out.push_back({{"name", v.name}, {"dtype", dtype}, {"shape", shape_json(v)}});
    }
    return out;
}

std::string human_bytes(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
    return buf;
}

std::string grouped(uint64_t n) {
    std::string s = std::to_string(n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
    return s;
}

std::string shape_text(const json& shape) {
    if (shape.is_null()) return "?";
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        if (shape[i].is_number()) s += std::to_string(shape[i].get<int64_t>());
        else if (shape[i].is_string()) s += shape[i].get<std::string>();
        else s += "?";
    }
    return s + "]";
}

}  // namespace

json inspect_model(const Model& model, const std::filesystem::path& file,
                   const InspectOptions& options) {
    json r;
    r["schema"] = kInspectSchema;
    r["file"] = file.string();
    std::error_code ec;
    auto file_bytes = std::filesystem::file_size(file, ec);
    r["file_bytes"] = ec ? 0 : file_bytes;
    r["format"] = model.format == SourceFormat::Onnx ? "onnx" : "safetensors";
    if (model.format == SourceFormat::Onnx) {
        r["ir_version"] = model.ir_version;
        json opsets = json::array();
        for (const auto& o : model.opset_imports)
            opsets.push_back({{"domain", o.domain}, {"version", o.version}});
        r["opsets"] = opsets;
        r["producer"] = {{"name", model.producer_name}, {"version", model.producer_version}};
    }
    json metadata = json::object();
    for (const auto& [k, v] : model.metadata) metadata[k] = v;
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
        dtypes.push_back({{"dtype", dtype_name(dt)}, {"count", e[0]}, {"bytes", e[1]}, {"tensors", e[2]}});
    std::sort(dtypes.begin(), dtypes.end(),
              [](const json& a, const json& b) { return a["bytes"] > b["bytes"]; });
    r["parameters"] = {{"count", total_count}, {"bytes", total_bytes}, {"tensors", tensors.size()},
                       {"by_dtype", dtypes}};

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
    r["inputs"] = values_json(model.graph.inputs);
    r["outputs"] = values_json(model.graph.outputs);

    auto tensor_json = [](const TensorRef& ref, bool detail) {
        const Tensor& t = *ref.tensor;
        json j = {{"name", t.name},
                  {"dtype", dtype_name(t.dtype)},
                  {"shape", t.shape},
                  {"bytes", t.dtype == DType::String ? 0 : t.data.size()}};
        if (detail) {
            j["zero_fraction"] = t.zero_fraction();
            j["source"] = ref.source;
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
    if (r["format"] == "onnx") {
        std::string opsets;
        for (const auto& o : r["opsets"]) {
            if (!opsets.empty()) opsets += ", ";
            std::string d = o["domain"];
            opsets += (d.empty() ? "ai.onnx" : d) + " " + std::to_string(o["version"].get<int64_t>());
        }
        row("format", "ONNX, IR version " + std::to_string(r["ir_version"].get<int64_t>()) +
                          ", opsets: " + opsets);
        std::string producer = r["producer"]["name"].get<std::string>() + " " +
                               r["producer"]["version"].get<std::string>();
        if (producer != " ") row("producer", producer);
    } else {
        row("format", "safetensors");
    }
    for (const auto& [k, v] : r["metadata"].items()) row("metadata", k + " = " + v.get<std::string>());
    const auto& p = r["parameters"];
    row("parameters", grouped(p["count"]) + " in " + grouped(p["tensors"]) + " tensors, " +
                          human_bytes(p["bytes"]));
    for (const auto& d : p["by_dtype"]) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "  %-10s%s in %s tensors, %s", d["dtype"].get<std::string>().c_str(),
                      grouped(d["count"]).c_str(), grouped(d["tensors"]).c_str(),
                      human_bytes(d["bytes"]).c_str());
        out << buf << "\n";
    }
    if (r["format"] == "onnx") {
        std::string ops;
        for (const auto& o : r["op_types"]) {
            if (!ops.empty()) ops += ", ";
            std::string d = o["domain"];
            ops += (d.empty() ? "" : d + ".") + o["op_type"].get<std::string>() + " " +
                   std::to_string(o["count"].get<uint64_t>());
        }
        row("nodes", grouped(r["nodes"]) + (ops.empty() ? "" : ": " + ops));
        if (r["subgraphs"].get<uint64_t>() || r["functions"].get<uint64_t>())
            row("subgraphs", grouped(r["subgraphs"]) + ", local functions " + grouped(r["functions"]));
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
        out << "tensors (name, dtype, shape, bytes, zeros)\n";
        for (const auto& t : r["tensors"]) {
            char zeros[32];
            std::snprintf(zeros, sizeof zeros, "%.2f%%", 100.0 * t["zero_fraction"].get<double>());
            out << "  " << t["name"].get<std::string>() << "  " << t["dtype"].get<std::string>()
                << " " << shape_text(t["shape"]) << "  " << t["bytes"].get<uint64_t>() << "  "
                << zeros << (t["source"] == "constant" ? "  (Constant node)" : "") << "\n";
        }
    }
    return out.str();
}

}  // namespace ep
