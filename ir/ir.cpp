#include "ir/ir.h"

#include <array>
#include <unordered_set>

#include "ir/error.h"

namespace ep {

namespace {

constexpr std::array<std::pair<AttrType, std::string_view>, 15> kAttrTypeNames = {{
    {AttrType::Undefined, "undefined"},
    {AttrType::Float, "float"},
    {AttrType::Int, "int"},
    {AttrType::String, "string"},
    {AttrType::Tensor, "tensor"},
    {AttrType::Graph, "graph"},
    {AttrType::SparseTensor, "sparse_tensor"},
    {AttrType::TypeProto, "type_proto"},
    {AttrType::Floats, "floats"},
    {AttrType::Ints, "ints"},
    {AttrType::Strings, "strings"},
    {AttrType::Tensors, "tensors"},
    {AttrType::Graphs, "graphs"},
    {AttrType::SparseTensors, "sparse_tensors"},
    {AttrType::TypeProtos, "type_protos"},
}};

}  // namespace

std::string_view attr_type_name(AttrType type) {
    for (const auto& [t, name] : kAttrTypeNames)
        if (t == type) return name;
    throw InternalError("attribute type missing from the IR's name table");
}

std::optional<AttrType> attr_type_from_name(std::string_view name) {
    for (const auto& [t, n] : kAttrTypeNames)
        if (n == name) return t;
    return std::nullopt;
}

const Attribute* Node::attr(std::string_view attr_name) const {
    for (const auto& a : attributes)
        if (a.name == attr_name) return &a;
    return nullptr;
}

namespace {

// The attribute when present with the expected type; null when absent; an InputError when
// present with another type.
const Attribute* typed_attr(const Node& node, std::string_view attr_name, AttrType expected) {
    const Attribute* a = node.attr(attr_name);
    if (a && a->type != expected)
        throw InputError(cat("node '", node.label(), "' (", node.op_type, "): attribute '",
                             attr_name, "' is of type ", attr_type_name(a->type), ", expected ",
                             attr_type_name(expected)));
    return a;
}

}  // namespace

int64_t Node::attr_int(std::string_view attr_name, int64_t fallback) const {
    const Attribute* a = typed_attr(*this, attr_name, AttrType::Int);
    return a ? a->i : fallback;
}

float Node::attr_float(std::string_view attr_name, float fallback) const {
    const Attribute* a = typed_attr(*this, attr_name, AttrType::Float);
    return a ? a->f : fallback;
}

std::vector<int64_t> Node::attr_ints(std::string_view attr_name) const {
    const Attribute* a = typed_attr(*this, attr_name, AttrType::Ints);
    return a ? a->ints : std::vector<int64_t>{};
}

std::string Node::attr_string(std::string_view attr_name, std::string fallback) const {
    const Attribute* a = typed_attr(*this, attr_name, AttrType::String);
    return a ? a->s : fallback;
}

std::string Node::label() const {
    if (!name.empty()) return name;
    return op_type + "(" + (outputs.empty() ? std::string() : outputs[0]) + ")";
}

const Tensor* Graph::find_initializer(std::string_view tensor_name) const {
    for (const auto& t : initializers)
        if (t.name == tensor_name) return &t;
    return nullptr;
}

Tensor* Graph::find_initializer(std::string_view tensor_name) {
    for (auto& t : initializers)
        if (t.name == tensor_name) return &t;
    return nullptr;
}

std::unordered_map<std::string, size_t> Graph::producers() const {
    std::unordered_map<std::string, size_t> out;
    for (size_t i = 0; i < nodes.size(); ++i)
        for (const auto& o : nodes[i].outputs)
            if (!o.empty()) out.emplace(o, i);
    return out;
}

namespace {

// Names a subgraph reads from its enclosing scopes (used but not defined inside it).
void collect_captures(const Graph& g, std::unordered_map<std::string, size_t>& uses) {
    std::unordered_set<std::string> defined;
    for (const auto& v : g.inputs) defined.insert(v.name);
    for (const auto& t : g.initializers) defined.insert(t.name);
    for (const auto& n : g.nodes) {
        for (const auto& in : n.inputs)
            if (!in.empty() && !defined.count(in)) ++uses[in];
        for (const auto& a : n.attributes)
            for (const auto& sub : a.graphs) {
                std::unordered_map<std::string, size_t> inner;
                collect_captures(sub, inner);
                for (const auto& [name, count] : inner)
                    if (!defined.count(name)) uses[name] += count;
            }
        for (const auto& o : n.outputs) defined.insert(o);
    }
    for (const auto& v : g.outputs)
        if (!defined.count(v.name)) ++uses[v.name];
}

}  // namespace

std::unordered_map<std::string, size_t> Graph::use_counts() const {
    std::unordered_map<std::string, size_t> uses;
    for (const auto& n : nodes) {
        for (const auto& in : n.inputs)
            if (!in.empty()) ++uses[in];
        for (const auto& a : n.attributes)
            for (const auto& sub : a.graphs) collect_captures(sub, uses);
    }
    for (const auto& v : outputs) ++uses[v.name];
    return uses;
}

size_t Graph::remove_unused_initializers() {
    auto uses = use_counts();
    size_t before = initializers.size();
    std::erase_if(initializers, [&](const Tensor& t) { return !uses.count(t.name); });
    return before - initializers.size();
}

int64_t Model::opset(std::string_view op_domain) const {
    for (const auto& o : opset_imports) {
        bool same = o.domain == op_domain || (op_domain.empty() && o.domain == "ai.onnx") ||
                    (op_domain == "ai.onnx" && o.domain.empty());
        if (same) return o.version;
    }
    return 0;
}

namespace {

void verify_graph(const Graph& g, const std::unordered_set<std::string>& outer,
                  const std::string& where, std::vector<std::string>& problems) {
    std::unordered_set<std::string> known = outer;
    std::unordered_set<std::string> produced;
    for (const auto& v : g.inputs) known.insert(v.name);
    for (const auto& t : g.initializers) {
        known.insert(t.name);
        try {
            t.check_consistent();
        } catch (const Error& e) {
            problems.push_back(where + e.what());
        }
    }
    for (const auto& n : g.nodes) {
        for (const auto& in : n.inputs)
            if (!in.empty() && !known.count(in))
                problems.push_back(cat(where, "node ", n.label(), ": input '", in,
                                       "' is not produced before it is used"));
        for (const auto& a : n.attributes) {
            for (const auto& t : a.tensors) {
                try {
                    t.check_consistent();
                } catch (const Error& e) {
                    problems.push_back(cat(where, "node ", n.label(), ": ", e.what()));
                }
            }
            for (const auto& sub : a.graphs)
                verify_graph(sub, known, cat(where, "node ", n.label(), ".", a.name, ": "),
                             problems);
        }
        for (const auto& o : n.outputs) {
            if (o.empty()) continue;
            if (!produced.insert(o).second)
                problems.push_back(
                    cat(where, "node ", n.label(), ": output '", o, "' is produced twice"));
            known.insert(o);
        }
    }
    for (const auto& v : g.outputs)
        if (!known.count(v.name))
            problems.push_back(cat(where, "graph output '", v.name, "' is never produced"));
}

}  // namespace

std::vector<std::string> verify(const Model& model) {
    std::vector<std::string> problems;
    verify_graph(model.graph, {}, "", problems);
    return problems;
}

}  // namespace ep
