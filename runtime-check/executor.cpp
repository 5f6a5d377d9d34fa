#include "runtime-check/executor.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "runtime-check/op_registry.h"

namespace ep::rt {

struct Executor::Scope {
    const Scope* parent = nullptr;
    std::unordered_map<std::string, Tensor> values;

    [[nodiscard]] const Tensor* find(const std::string& name) const {
        for (const Scope* s = this; s; s = s->parent) {
            auto it = s->values.find(name);
            if (it != s->values.end()) return &it->second;
        }
        return nullptr;
    }
};

namespace {

// Names a node reads: its inputs and whatever its subgraphs capture from outside.
void collect_reads(const Node& node, std::vector<std::string>& reads) {
    for (const auto& in : node.inputs)
        if (!in.empty()) reads.push_back(in);
    for (const auto& attr : node.attributes)
        for (const auto& sub : attr.graphs) {
            auto uses = sub.use_counts();
            std::unordered_set<std::string> defined;
            for (const auto& v : sub.inputs) defined.insert(v.name);
            for (const auto& t : sub.initializers) defined.insert(t.name);
            for (const auto& n : sub.nodes)
                for (const auto& o : n.outputs) defined.insert(o);
            for (const auto& [name, count] : uses)
                if (!defined.count(name)) reads.push_back(name);
        }
}

// Orders nodes so every value is produced before it is read (Kahn's algorithm, stable:
// among ready nodes the earliest in file order goes first). Values from outside the
// graph count as available. Fails naming a node that can never run.
void topo_sort(Graph& graph, const std::string& where) {
    std::unordered_map<std::string, size_t> producer;
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        for (const auto& o : graph.nodes[i].outputs)
            if (!o.empty()) producer[o] = i;
    std::vector<std::vector<size_t>> dependents(graph.nodes.size());
    std::vector<size_t> missing(graph.nodes.size(), 0);
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        std::vector<std::string> reads;
        collect_reads(graph.nodes[i], reads);
        std::set<size_t> deps;
        for (const auto& r : reads) {
            auto it = producer.find(r);
            if (it != producer.end() && it->second != i) deps.insert(it->second);
        }
        missing[i] = deps.size();
        for (size_t d : deps) dependents[d].push_back(i);
    }
    std::set<size_t> ready;
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        if (missing[i] == 0) ready.insert(i);
    std::vector<size_t> order;
    while (!ready.empty()) {
        size_t i = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(i);
        for (size_t d : dependents[i])
            if (--missing[d] == 0) ready.insert(d);
    }
    if (order.size() != graph.nodes.size()) {
        for (size_t i = 0; i < graph.nodes.size(); ++i)
            if (missing[i] != 0)
                throw InputError(cat(where, "node ", graph.nodes[i].label(),
                                     " is part of a cycle and can never run"));
    }
    bool sorted = std::is_sorted(order.begin(), order.end());
    if (!sorted) {
        std::vector<Node> nodes;
        nodes.reserve(order.size());
        for (size_t i : order) nodes.push_back(std::move(graph.nodes[i]));
        graph.nodes = std::move(nodes);
    }
    for (auto& node : graph.nodes)
        for (auto& attr : node.attributes)
            for (auto& sub : attr.graphs) topo_sort(sub, cat(where, node.label(), ".", attr.name, ": "));
}

void find_unsupported(const Graph& graph, std::map<std::string, size_t>& unsupported) {
    for (const auto& node : graph.nodes) {
        if (!find_kernel(node.domain, node.op_type))
            ++unsupported[node.domain.empty() ? node.op_type : node.domain + "." + node.op_type];
        for (const auto& attr : node.attributes)
            for (const auto& sub : attr.graphs) find_unsupported(sub, unsupported);
    }
}

uint64_t tensor_bytes(const Tensor& t) {
    if (t.dtype == DType::String) {
        uint64_t n = 0;
        for (const auto& s : t.strings) n += s.size();
        return n;
    }
    return t.data.size();
}

bool declared_matches(const ValueInfo& info, const Tensor& t, std::string& why) {
    if (!info.type || !info.type->is_tensor) return true;
    if (info.type->elem != DType::Undefined && info.type->elem != t.dtype) {
        why = cat("expected ", dtype_name(info.type->elem), ", found ", dtype_name(t.dtype));
        return false;
    }
    if (!info.type->shape) return true;
    const auto& dims = *info.type->shape;
    if (dims.size() != t.shape.size()) {
        why = cat("expected rank ", dims.size(), ", found shape ", shape_string(t.shape));
        return false;
    }
    for (size_t i = 0; i < dims.size(); ++i)
        if (dims[i].value && *dims[i].value != t.shape[i]) {
            why = cat("dimension ", i, " must be ", *dims[i].value, ", found shape ",
                      shape_string(t.shape));
            return false;
        }
    return true;
}

}  // namespace

Executor::Executor(Model model, ExecOptions options)
    : model_(std::move(model)), options_(options) {
    if (model_.graph.nodes.empty() && model_.format == SourceFormat::Safetensors)
        throw InputError("this model is a weights-only checkpoint: there is no graph to run");
    std::map<std::string, size_t> unsupported;
    find_unsupported(model_.graph, unsupported);
    if (!unsupported.empty()) {
        size_t kinds = unsupported.size();
        std::string list;
        for (const auto& [op, count] : unsupported) {
            if (!list.empty()) list += ", ";
            list += cat(op, " (", count, count == 1 ? " node)" : " nodes)");
        }
        throw InputError(cat(kinds, " unsupported op", kinds == 1 ? "" : "s", ": ", list));
    }
    topo_sort(model_.graph, "");
    std::unordered_set<std::string> initializers;
    for (const auto& t : model_.graph.initializers) initializers.insert(t.name);
    for (const auto& v : model_.graph.inputs)
        if (!initializers.count(v.name)) feeds_.push_back(v);
}

NamedTensors Executor::run(const NamedTensors& inputs, const std::vector<std::string>& fetch) {
    stats_ = {};
    live_bytes_ = 0;
    Scope scope;
    for (const auto& t : model_.graph.initializers) scope.values.emplace(t.name, t);
    for (const auto& [name, tensor] : inputs) {
        auto it = std::find_if(feeds_.begin(), feeds_.end(),
                               [&](const ValueInfo& v) { return v.name == name; });
        if (it == feeds_.end()) {
            std::string names;
            for (const auto& v : feeds_) names += (names.empty() ? "" : ", ") + v.name;
            throw InputError(cat("input '", name, "': the model has no such input (inputs: ",
                                 names, ")"));
        }
        std::string why;
        if (!declared_matches(*it, tensor, why)) throw InputError(cat("input '", name, "': ", why));
        scope.values.insert_or_assign(name, tensor);
    }
    for (const auto& v : feeds_)
        if (!scope.values.count(v.name))
            throw InputError(cat("input '", v.name, "' is required but was not given"));
    NamedTensors fetched;
    auto outputs = run_graph(model_.graph, scope, fetch, &fetched);
    NamedTensors result;
    for (size_t i = 0; i < outputs.size(); ++i)
        result.emplace_back(model_.graph.outputs[i].name, std::move(outputs[i]));
    for (auto& f : fetched) result.push_back(std::move(f));
    return result;
}

std::vector<Tensor> Executor::run_graph(const Graph& graph, Scope& scope,
                                        const std::vector<std::string>& fetch,
                                        NamedTensors* fetched) {
    // Last node index reading each value defined in this graph's scope.
    std::unordered_map<std::string, size_t> last_use;
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        std::vector<std::string> reads;
        collect_reads(graph.nodes[i], reads);
        for (const auto& r : reads) last_use[r] = i;
    }
    std::unordered_set<std::string> keep(fetch.begin(), fetch.end());
    for (const auto& v : graph.outputs) keep.insert(v.name);

    SubgraphRunner runner = [this, &scope](const Graph& sub, std::span<const Tensor> args) {
        Scope inner;
        inner.parent = &scope;
        if (args.size() > sub.inputs.size())
            throw InputError(cat("subgraph '", sub.name, "' takes ", sub.inputs.size(),
                                 " inputs, given ", args.size()));
        for (size_t i = 0; i < args.size(); ++i) inner.values.insert_or_assign(sub.inputs[i].name, args[i]);
        for (const auto& t : sub.initializers) inner.values.emplace(t.name, t);
        return run_graph(sub, inner, {}, nullptr);
    };

    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        OpContext ctx{node, {}, {}, options_, model_.opset(node.domain), &runner};
        ctx.inputs.reserve(node.inputs.size());
        for (const auto& in : node.inputs) {
            if (in.empty()) {
                ctx.inputs.push_back(nullptr);
                continue;
            }
            const Tensor* t = scope.find(in);
            if (!t) throw InputError(cat("node ", node.label(), ": input '", in, "' has no value"));
            ctx.inputs.push_back(t);
        }
        with_context(cat("node ", node.label(), " (", node.op_type, ")"), [&] {
            find_kernel(node.domain, node.op_type)(ctx);
        });
        ++stats_.nodes_run;
        if (ctx.outputs.size() > node.outputs.size())
            throw InternalError(cat("node ", node.label(), ": kernel produced ", ctx.outputs.size(),
                                    " outputs, the node names ", node.outputs.size()));
        for (size_t k = 0; k < ctx.outputs.size(); ++k) {
            if (node.outputs[k].empty()) continue;
            ctx.outputs[k].name = node.outputs[k];
            live_bytes_ += tensor_bytes(ctx.outputs[k]);
            scope.values.insert_or_assign(node.outputs[k], std::move(ctx.outputs[k]));
        }
        stats_.peak_arena_bytes = std::max(stats_.peak_arena_bytes, live_bytes_);
        // Free values whose last reader was this node (never graph outputs or fetches,
        // never values of enclosing scopes or initializers).
        std::vector<std::string> reads;
        collect_reads(node, reads);
        for (const auto& r : reads) {
            if (last_use[r] != i || keep.count(r)) continue;
            auto it = scope.values.find(r);
            if (it == scope.values.end() || graph.find_initializer(r)) continue;
            if (scope.parent == nullptr && model_.graph.find_initializer(r)) continue;
            live_bytes_ -= std::min(live_bytes_, tensor_bytes(it->second));
            scope.values.erase(it);
        }
    }
    std::vector<Tensor> outputs;
    for (const auto& v : graph.outputs) {
        const Tensor* t = scope.find(v.name);
        if (!t) throw InputError(cat("graph output '", v.name, "' was never produced"));
        outputs.push_back(*t);
    }
    if (fetched)
        for (const auto& name : fetch)
            if (const Tensor* t = scope.find(name)) fetched->emplace_back(name, *t);
    return outputs;
}

std::vector<std::string> supported_ops() {
    std::vector<std::string> out;
    for (const auto& e : op_table())
        out.push_back(e.domain.empty() ? std::string(e.op_type)
                                       : std::string(e.domain) + "." + std::string(e.op_type));
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace ep::rt
