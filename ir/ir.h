// The in-memory model every part of edgepack works on.
//
// It mirrors ONNX's structure closely enough that an ONNX model round-trips without
// loss (opsets, metadata, doc strings, subgraphs of If/Loop/Scan, local functions), and
// is plain enough that a safetensors checkpoint is simply a Model whose graph holds only
// initializers. Nothing here knows about protobuf: formats/ converts at the edges.
// Parts edgepack does not interpret (sparse tensors, non-tensor types, training info)
// are carried as serialized bytes so they are written back unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tensor.h"

namespace ep {

struct Graph;

// One dimension of a value's shape: a known size, a symbolic name, or unknown.
struct Dim {
    std::optional<int64_t> value;
    std::string param;  // symbolic name ("batch_size") when value is unset; may be empty
    std::string denotation;
};

struct ValueType {
    bool is_tensor = true;  // false: sequence/map/optional/sparse, kept in `opaque`
    DType elem = DType::Undefined;
    std::optional<std::vector<Dim>> shape;  // nullopt: rank unknown
    std::string denotation;
    std::string opaque;  // serialized TypeProto when !is_tensor
};

struct ValueInfo {
    std::string name;
    std::optional<ValueType> type;
    std::string doc_string;
};

enum class AttrType : uint8_t {
    Undefined,
    Float,
    Int,
    String,
    Tensor,
    Graph,
    SparseTensor,
    TypeProto,
    Floats,
    Ints,
    Strings,
    Tensors,
    Graphs,
    SparseTensors,
    TypeProtos,
};

// The attribute type's name as ONNX spells it in lower case ("int", "floats", ...); the
// .epk manifest stores these names (docs/epk.md).
[[nodiscard]] std::string_view attr_type_name(AttrType type);
// The type with that name; nullopt for a name that is none of them.
[[nodiscard]] std::optional<AttrType> attr_type_from_name(std::string_view name);

struct Attribute {
    std::string name;
    AttrType type = AttrType::Undefined;
    float f = 0.0f;
    int64_t i = 0;
    std::string s;  // bytes of a String attribute
    std::vector<float> floats;
    std::vector<int64_t> ints;
    std::vector<std::string> strings;
    std::vector<Tensor> tensors;      // one element for Tensor
    std::vector<Graph> graphs;        // one element for Graph
    std::vector<std::string> opaque;  // serialized SparseTensorProto / TypeProto values
    std::string ref_attr_name;        // inside functions: refers to the caller's attribute
    std::string doc_string;
};

struct Node {
    std::string name;
    std::string op_type;
    std::string domain;               // "" is the default ONNX domain
    std::vector<std::string> inputs;  // "" marks a missing optional input
    std::vector<std::string> outputs;
    std::vector<Attribute> attributes;
    std::string doc_string;

    [[nodiscard]] const Attribute* attr(std::string_view attr_name) const;
    // Typed reads: the fallback (or an empty list) when the attribute is absent; an
    // InputError naming the node, the attribute, the type found and the type expected
    // when it is present with another type (a LeakyRelu whose alpha was written as an
    // int must not run with the default).
    [[nodiscard]] int64_t attr_int(std::string_view attr_name, int64_t fallback) const;
    [[nodiscard]] float attr_float(std::string_view attr_name, float fallback) const;
    [[nodiscard]] std::vector<int64_t> attr_ints(std::string_view attr_name) const;
    [[nodiscard]] std::string attr_string(std::string_view attr_name, std::string fallback) const;
    // A readable name for messages: the node's name, or "op_type(first output)".
    [[nodiscard]] std::string label() const;
};

struct Graph {
    std::string name;
    std::string doc_string;
    std::vector<Node> nodes;  // in the file's order (ONNX requires topological)
    std::vector<ValueInfo> inputs;
    std::vector<ValueInfo> outputs;
    std::vector<ValueInfo> value_info;
    std::vector<Tensor> initializers;
    std::vector<std::string> opaque_sparse_initializers;      // SparseTensorProto
    std::vector<std::string> opaque_quantization_annotation;  // TensorAnnotation

    [[nodiscard]] const Tensor* find_initializer(std::string_view tensor_name) const;
    [[nodiscard]] Tensor* find_initializer(std::string_view tensor_name);
    // Map from value name to the index of the node producing it.
    [[nodiscard]] std::unordered_map<std::string, size_t> producers() const;
    // How many node inputs (including subgraphs that capture it) and graph outputs use
    // each value name.
    [[nodiscard]] std::unordered_map<std::string, size_t> use_counts() const;
    // Removes initializers nothing refers to; returns how many were removed.
    size_t remove_unused_initializers();
};

struct OpsetId {
    std::string domain;
    int64_t version = 0;
};

struct Function {
    std::string name;
    std::string domain;
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
    std::vector<std::string> attribute_names;
    std::vector<Attribute> attribute_defaults;
    std::vector<Node> nodes;
    std::vector<OpsetId> opset_imports;
    std::string doc_string;
};

enum class SourceFormat : uint8_t { Onnx, Safetensors };

struct Model {
    SourceFormat format = SourceFormat::Onnx;
    int64_t ir_version = 8;
    std::vector<OpsetId> opset_imports;
    std::string producer_name;
    std::string producer_version;
    std::string domain;
    int64_t model_version = 0;
    std::string doc_string;
    std::vector<std::pair<std::string, std::string>> metadata;  // in file order
    Graph graph;
    std::vector<Function> functions;
    std::vector<std::string> opaque_training_info;

    [[nodiscard]] int64_t opset(std::string_view op_domain) const;  // 0 if not imported
};

// Structural problems of a model: values used before they are produced, names produced
// twice, graph outputs nobody produces, tensors whose bytes do not match dtype x shape.
// Empty when the model is well formed. `--verify-each` runs this after every pass.
[[nodiscard]] std::vector<std::string> verify(const Model& model);

// Attributes of one value, for passes and exporters that build nodes (and for tests).
[[nodiscard]] inline Attribute int_attr(std::string name, int64_t v) {
    Attribute a;
    a.name = std::move(name);
    a.type = AttrType::Int;
    a.i = v;
    return a;
}
[[nodiscard]] inline Attribute ints_attr(std::string name, std::vector<int64_t> v) {
    Attribute a;
    a.name = std::move(name);
    a.type = AttrType::Ints;
    a.ints = std::move(v);
    return a;
}
[[nodiscard]] inline Attribute float_attr(std::string name, float v) {
    Attribute a;
    a.name = std::move(name);
    a.type = AttrType::Float;
    a.f = v;
    return a;
}
[[nodiscard]] inline Attribute string_attr(std::string name, std::string v) {
    Attribute a;
    a.name = std::move(name);
    a.type = AttrType::String;
    a.s = std::move(v);
    return a;
}

// Calls fn(graph) for the main graph and, depth first, every subgraph in node attributes.
template <typename G, typename Fn>
void for_each_graph(G& graph, Fn&& fn) {
    fn(graph);
    for (auto& node : graph.nodes)
        for (auto& attr : node.attributes)
            for (auto& sub : attr.graphs) for_each_graph(sub, fn);
}

}  // namespace ep
