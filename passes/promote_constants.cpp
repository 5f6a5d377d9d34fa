// promote-constants: turns `Constant` nodes into graph initializers.
//
// Before:  Constant(value=T) -> "w";   Conv(x, "w")
// After:   initializer "w" = T;        Conv(x, "w")        (same value name, node removed)
//
// Every form of Constant is handled: `value` (a tensor), `value_float`/`value_floats`
// (f32 scalar / 1-D), `value_int`/`value_ints` (i64 scalar / 1-D) and
// `value_string`/`value_strings`. Constants inside subgraphs (If/Loop/Scan bodies) are
// promoted into that subgraph's own initializers, which ONNX allows; Constants in model
// local functions stay (functions have no initializers).
//
// Kept as nodes, each counted and reported with its reason:
//   - the output is not selected by include/exclude (matched on the output name);
//   - fewer elements than `min_elements`;
//   - `sparse_value` constants (edgepack does not hold sparse initializers);
//   - the output is a graph output, a graph input, or already an initializer's name;
//   - malformed nodes (no output, several outputs, no value attribute).
// Preconditions are decided for every node first (`decide`), then applied; the pass never
// fails half-way.
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_set>

#include "ir/ir.h"
#include "passes/pass.h"
#include "passes/selector.h"

namespace ep {

namespace {

bool is_constant(const Node& n) {
    return n.op_type == "Constant" && (n.domain.empty() || n.domain == "ai.onnx");
}

// The tensor a Constant node holds, or a reason why it cannot be an initializer.
struct ConstantValue {
    std::optional<Tensor> tensor;
    std::string problem;
};

ConstantValue constant_value(const Node& n) {
    ConstantValue out;
    if (n.attributes.size() != 1) {
        out.problem = cat("Constant has ", n.attributes.size(),
                          " attributes, expected exactly one value attribute");
        return out;
    }
    const Attribute& a = n.attributes[0];
    if (!a.ref_attr_name.empty()) {
        out.problem = cat("value refers to function attribute '", a.ref_attr_name, "'");
        return out;
    }
    Tensor t;
    auto vector_i64 = [&](std::span<const int64_t> v, std::vector<int64_t> shape) {
        t.dtype = DType::I64;
        t.shape = std::move(shape);
        std::vector<std::byte> bytes(v.size() * sizeof(int64_t));
        if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
        t.data = TensorData::owned(std::move(bytes));
    };
    if (a.name == "value" && a.type == AttrType::Tensor && a.tensors.size() == 1) {
        t = a.tensors[0];
    } else if (a.name == "value_float" && a.type == AttrType::Float) {
        t = make_f32_tensor("", {}, std::span<const float>(&a.f, 1));
    } else if (a.name == "value_floats" && a.type == AttrType::Floats) {
        t = make_f32_tensor("", {static_cast<int64_t>(a.floats.size())}, a.floats);
    } else if (a.name == "value_int" && a.type == AttrType::Int) {
        vector_i64(std::span<const int64_t>(&a.i, 1), {});
    } else if (a.name == "value_ints" && a.type == AttrType::Ints) {
        vector_i64(a.ints, {static_cast<int64_t>(a.ints.size())});
    } else if (a.name == "value_string" && a.type == AttrType::String) {
        t.dtype = DType::String;
        t.strings = {a.s};
    } else if (a.name == "value_strings" && a.type == AttrType::Strings) {
        t.dtype = DType::String;
        t.shape = {static_cast<int64_t>(a.strings.size())};
        t.strings = a.strings;
    } else if (a.name == "sparse_value") {
        out.problem = "sparse_value Constant (sparse initializers are not supported)";
        return out;
    } else {
        out.problem = cat("unsupported Constant attribute '", a.name, "'");
        return out;
    }
    t.name = n.outputs[0];
    try {
        t.check_consistent();
    } catch (const Error& e) {
        out.problem = e.what();
        return out;
    }
    out.tensor = std::move(t);
    return out;
}

// What the pass will do with one Constant node.
struct Decision {
    const Graph* graph = nullptr;
    int depth = 0;      // 0 for the main graph, 1 for its subgraphs, ...
    std::string where;  // "" for the main graph, "node L.body: " inside subgraphs
    size_t node = 0;
    std::string value;             // the output name
    std::optional<Tensor> tensor;  // set: promote; unset: keep (see reason)
    std::string reason;
};

class PromoteConstants final : public Pass {
  public:
    std::string_view name() const override { return "promote-constants"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override {
        return "turn Constant nodes into graph initializers (same value names)";
    }
    uint32_t needs() const override { return kNeedsGraph; }
    std::vector<OptionSpec> option_specs() const override {
        return {{"min_elements",
                 OptionType::Int,
                 0,
                 "constants with fewer elements stay as nodes",
                 {},
                 0,
                 9.2e18}};
    }
    void configure(const nlohmann::json& options) override {
        selector_ = Selector::from_options(options);
        min_elements_ = options.value("min_elements", int64_t{0});
    }

    std::vector<std::string> plan(const Model& model) const override {
        auto decisions = decide(model);
        std::vector<std::string> lines;
        for (const auto& d : decisions) {
            if (d.tensor)
                lines.push_back(cat(d.where, "promote '", d.value, "' (",
                                    dtype_name(d.tensor->dtype), " ", shape_string(d.tensor->shape),
                                    ") to an initializer"));
            else
                lines.push_back(cat(d.where, "keep Constant '", d.value, "': ", d.reason));
        }
        if (lines.empty()) lines.push_back("no Constant nodes");
        return lines;
    }

    PassResult run(Model& model, PassContext&) override {
        auto decisions = decide(model);
        PassResult result;
        // Apply per graph: add initializers in node order, then drop the promoted nodes,
        // deepest graphs first (dropping nodes moves the parent's nodes and their subgraphs).
        std::map<std::pair<int, Graph*>, std::vector<size_t>, std::greater<>> removed;
        for (auto& d : decisions) {
            if (!d.tensor) {
                result.skipped.push_back({d.where + d.value, d.reason});
                continue;
            }
            // decide() saw the graphs through a const view of this (non-const) model.
            auto* graph = const_cast<Graph*>(d.graph);
            graph->initializers.push_back(std::move(*d.tensor));
            removed[{d.depth, graph}].push_back(d.node);
            ++result.rewrites;
        }
        for (auto& [key, indexes] : removed) {
            Graph* graph = key.second;
            std::vector<bool> drop(graph->nodes.size(), false);
            for (size_t i : indexes) drop[i] = true;
            std::vector<Node> kept;
            kept.reserve(graph->nodes.size() - indexes.size());
            for (size_t i = 0; i < graph->nodes.size(); ++i)
                if (!drop[i]) kept.push_back(std::move(graph->nodes[i]));
            graph->nodes = std::move(kept);
        }
        result.changed = result.rewrites > 0;
        result.summary.push_back(cat("promoted ", result.rewrites, " Constant node",
                                     result.rewrites == 1 ? "" : "s", " to initializers"));
        return result;
    }

  private:
    std::vector<Decision> decide(const Model& model) const {
        std::vector<Decision> out;
        decide_graph(model.graph, "", 0, out);
        return out;
    }

    void decide_graph(const Graph& g, const std::string& where, int depth,
                      std::vector<Decision>& out) const {
        std::unordered_set<std::string> graph_outputs, graph_inputs, initializers, taken;
        for (const auto& v : g.outputs) graph_outputs.insert(v.name);
        for (const auto& v : g.inputs) graph_inputs.insert(v.name);
        for (const auto& t : g.initializers) initializers.insert(t.name);
        for (size_t i = 0; i < g.nodes.size(); ++i) {
            const Node& n = g.nodes[i];
            if (is_constant(n)) {
                Decision d;
                d.graph = &g;
                d.where = where;
                d.depth = depth;
                d.node = i;
                d.value = n.outputs.empty() ? n.label() : n.outputs[0];
                d.reason = keep_reason(n, graph_outputs, graph_inputs, initializers, taken);
                if (d.reason.empty()) {
                    auto value = constant_value(n);
                    if (!value.tensor) {
                        d.reason = value.problem;
                    } else if (value.tensor->element_count() < min_elements_) {
                        d.reason = cat("fewer than min_elements (", min_elements_, ") elements");
                    } else {
                        d.tensor = std::move(value.tensor);
                        taken.insert(d.value);
                    }
                }
                out.push_back(std::move(d));
            }
            for (const auto& a : n.attributes)
                for (const auto& sub : a.graphs)
                    decide_graph(sub, cat(where, "node ", n.label(), ".", a.name, ": "), depth + 1,
                                 out);
        }
    }

    std::string keep_reason(const Node& n, const std::unordered_set<std::string>& graph_outputs,
                            const std::unordered_set<std::string>& graph_inputs,
                            const std::unordered_set<std::string>& initializers,
                            const std::unordered_set<std::string>& taken) const {
        if (n.outputs.size() != 1 || n.outputs[0].empty())
            return cat("Constant has ", n.outputs.size(), " outputs, expected one");
        const std::string& v = n.outputs[0];
        if (!selector_.selects(v)) return "not selected by include/exclude";
        if (graph_outputs.count(v)) return "is a graph output (outputs must come from nodes)";
        if (graph_inputs.count(v)) return "its name is also a graph input";
        if (initializers.count(v) || taken.count(v))
            return "an initializer with this name already exists";
        return {};
    }

    Selector selector_;
    int64_t min_elements_ = 0;
};

}  // namespace

std::unique_ptr<Pass> make_promote_constants_pass() {
    return std::make_unique<PromoteConstants>();
}

}  // namespace ep
