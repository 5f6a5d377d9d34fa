#include "formats/onnx_version.h"

#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include <exception>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "ir/error.h"

namespace ep {
namespace {

constexpr int64_t kStubAbove = 64;  // initializer bytes: larger ones travel as stubs
constexpr int64_t kSoftmaxMeaningChanged = 13;

bool is_default_domain(const std::string& d) {
    return d.empty() || d == "ai.onnx";
}

// Replaces every large initializer of the main graph by a stub; returns the originals.
std::unordered_map<std::string, onnx::TensorProto> stub_initializers(onnx::GraphProto& g) {
    std::unordered_map<std::string, onnx::TensorProto> kept;
    for (auto& t : *g.mutable_initializer()) {
        if (static_cast<int64_t>(t.ByteSizeLong()) <= kStubAbove) continue;
        onnx::TensorProto stub;
        stub.set_name(t.name());
        stub.set_data_type(t.data_type());
        *stub.mutable_dims() = t.dims();
        std::string name = t.name();
        kept.emplace(std::move(name), std::move(t));
        t = std::move(stub);
    }
    return kept;
}

void restore_initializers(onnx::GraphProto& g,
                          std::unordered_map<std::string, onnx::TensorProto>& kept) {
    for (auto& t : *g.mutable_initializer()) {
        auto it = kept.find(t.name());
        if (it != kept.end()) t = std::move(it->second);
    }
}

// What shape inference knows of each value of the main graph.
struct KnownTypes {
    std::unordered_map<std::string, const onnx::TypeProto*> types;

    explicit KnownTypes(const onnx::GraphProto& g) {
        for (const auto* list : {&g.input(), &g.output(), &g.value_info()})
            for (const auto& v : *list)
                if (v.has_type() && v.type().has_tensor_type()) types[v.name()] = &v.type();
    }
    [[nodiscard]] int rank(const std::string& name) const {
        auto it = types.find(name);
        if (it == types.end() || !it->second->tensor_type().has_shape()) return -1;
        return it->second->tensor_type().shape().dim_size();
    }
    [[nodiscard]] int elem_type(const std::string& name) const {
        auto it = types.find(name);
        return it == types.end() ? onnx::TensorProto::FLOAT : it->second->tensor_type().elem_type();
    }
};

std::string fresh_name(std::unordered_set<std::string>& used, const std::string& base) {
    std::string n = base;
    for (int i = 1; used.count(n); ++i) n = base + "_" + std::to_string(i);
    used.insert(n);
    return n;
}

// Softmax / LogSoftmax / Hardmax below opset 13 whose input rank is unknown or whose axis
// is not the last: Flatten(axis) -> op(axis = 1) -> Reshape(Shape(x)) (the header says why).
void rewrite_softmax_family(onnx::GraphProto& g, const KnownTypes& known) {
    std::unordered_set<std::string> used;
    for (const auto& n : g.node()) {
        used.insert(n.name());
        for (const auto& o : n.output()) used.insert(o);
    }
    for (const auto& v : g.input()) used.insert(v.name());
    for (const auto& t : g.initializer()) used.insert(t.name());
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (auto& n : *g.mutable_node()) {
        const std::string& op = n.op_type();
        const bool family = op == "Softmax" || op == "LogSoftmax" || op == "Hardmax";
        if (!family || !is_default_domain(n.domain()) || n.input_size() != 1 ||
            n.output_size() != 1) {
            *nodes.Add() = std::move(n);
            continue;
        }
        int64_t axis = 1;  // the default below opset 13
        for (const auto& a : n.attribute())
            if (a.name() == "axis") axis = a.i();
        const int rank = known.rank(n.input(0));
        if (rank > 0 && (axis == rank - 1 || axis == -1)) {
            *nodes.Add() = std::move(n);
            continue;
        }
        const std::string x = n.input(0), y = n.output(0);
        const std::string base = n.name().empty() ? y : n.name();
        const std::string flat = fresh_name(used, y + "_flat"), soft = fresh_name(used, y + "_2d"),
                          shape = fresh_name(used, y + "_shape");
        onnx::NodeProto* f = nodes.Add();
        f->set_name(fresh_name(used, base + "_flatten"));
        f->set_op_type("Flatten");
        f->add_input(x);
        f->add_output(flat);
        auto* fa = f->add_attribute();
        fa->set_name("axis");
        fa->set_type(onnx::AttributeProto::INT);
        fa->set_i(axis);
        onnx::NodeProto* s = nodes.Add();
        *s = n;
        s->set_input(0, flat);
        s->set_output(0, soft);
        s->clear_attribute();
        auto* sa = s->add_attribute();
        sa->set_name("axis");
        sa->set_type(onnx::AttributeProto::INT);
        sa->set_i(1);
        onnx::NodeProto* sh = nodes.Add();
        sh->set_name(fresh_name(used, base + "_shape"));
        sh->set_op_type("Shape");
        sh->add_input(x);
        sh->add_output(shape);
        onnx::NodeProto* r = nodes.Add();
        r->set_name(fresh_name(used, base + "_reshape"));
        r->set_op_type("Reshape");
        r->add_input(soft);
        r->add_input(shape);
        r->add_output(y);
        // The converter's Softmax adapter reads the rank of its input: 2.
        auto* vi = g.add_value_info();
        vi->set_name(flat);
        auto* tt = vi->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(known.elem_type(x));
        tt->mutable_shape()->add_dim();
        tt->mutable_shape()->add_dim();
    }
    *g.mutable_node() = std::move(nodes);
}

std::string node_label(const onnx::NodeProto& n) {
    return n.name().empty() ? "a " + n.op_type() + " node"
                            : "node '" + n.name() + "' (" + n.op_type() + ")";
}

// The first node of the main graph that the converter cannot raise on its own, with the
// converter's message; empty when each converts alone (the failure needs the whole graph).
std::pair<std::string, std::string> failing_node(const onnx::ModelProto& proto, int64_t target,
                                                 const KnownTypes& known) {
    const onnx::GraphProto& g = proto.graph();
    std::unordered_map<std::string, const onnx::TensorProto*> inits;
    for (const auto& t : g.initializer()) inits[t.name()] = &t;
    std::unordered_map<std::string, const onnx::NodeProto*> constants;
    for (const auto& n : g.node())
        if (n.op_type() == "Constant" && n.output_size() == 1) constants[n.output(0)] = &n;
    for (const auto& n : g.node()) {
        if (!is_default_domain(n.domain()) || n.op_type() == "Constant") continue;
        onnx::ModelProto one;
        one.set_ir_version(proto.ir_version());
        *one.mutable_opset_import() = proto.opset_import();
        onnx::GraphProto* og = one.mutable_graph();
        og->set_name("one");
        std::unordered_set<std::string> declared;
        for (const auto& in : n.input()) {
            if (in.empty() || !declared.insert(in).second) continue;
            if (auto it = inits.find(in); it != inits.end()) {
                *og->add_initializer() = *it->second;
            } else if (auto c = constants.find(in); c != constants.end()) {
                *og->add_node() = *c->second;
            } else {
                auto* v = og->add_input();
                v->set_name(in);
                if (auto t = known.types.find(in); t != known.types.end())
                    *v->mutable_type() = *t->second;
                else
                    v->mutable_type()->mutable_tensor_type()->set_elem_type(known.elem_type(in));
            }
        }
        *og->add_node() = n;
        for (const auto& out : n.output()) {
            if (out.empty()) continue;
            auto* v = og->add_output();
            v->set_name(out);
            v->mutable_type()->mutable_tensor_type()->set_elem_type(known.elem_type(out));
        }
        try {
            (void)onnx::version_conversion::ConvertVersion(one, static_cast<int>(target));
        } catch (const std::exception& e) {
            return {node_label(n), e.what()};
        }
    }
    return {};
}

// The converter's import (ONNX 1.12's graphProtoToGraph) dereferences a null value for a
// name that nothing defines: a graph output or node input that no graph input, initializer,
// earlier node or enclosing graph produces (found by fuzz_onnx; `edgepack compress` died
// with SIGSEGV). ep::verify's rules, on the protobuf, before shape inference and conversion.
void check_names_defined(const onnx::GraphProto& g, std::unordered_set<std::string> known,
                         const std::string& where, const std::string& what, int64_t source,
                         int64_t target) {
    auto fail = [&](const std::string& problem) {
        throw InputError(cat(what, ": the ONNX version converter cannot raise opset ", source,
                             " to ", target, ": ", where, problem));
    };
    for (const auto& v : g.input()) known.insert(v.name());
    for (const auto& t : g.initializer()) known.insert(t.name());
    for (const auto& s : g.sparse_initializer()) known.insert(s.values().name());
    for (const auto& n : g.node()) {
        for (const auto& in : n.input())
            if (!in.empty() && !known.count(in))
                fail(cat(node_label(n), ": input '", in, "' is not produced before it is used"));
        for (const auto& a : n.attribute()) {
            std::string inner = cat(where, node_label(n), " attribute ", a.name(), ": ");
            if (a.has_g()) check_names_defined(a.g(), known, inner, what, source, target);
            for (const auto& sub : a.graphs())
                check_names_defined(sub, known, inner, what, source, target);
        }
        for (const auto& out : n.output())
            if (!out.empty()) known.insert(out);
    }
    for (const auto& v : g.output())
        if (!known.count(v.name())) fail(cat("graph output '", v.name(), "' is never produced"));
}

// Every default-domain node against its operator schema at the source opset (inputs,
// outputs, required attributes and their types), as onnx.checker does: shape inference
// reads a required attribute without looking (ONNX 1.12's Scan-9 inference dereferenced a
// missing `body`; found by fuzz_onnx, SIGSEGV in `edgepack compress`).
void check_schemas(const onnx::GraphProto& g, int64_t source, const std::string& where,
                   const std::string& what, int64_t target) {
    for (const auto& n : g.node()) {
        if (is_default_domain(n.domain())) {
            const auto* schema =
                onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(source), "");
            if (!schema)
                throw InputError(cat(what, ": the ONNX version converter cannot raise opset ",
                                     source, " to ", target, ": ", where, node_label(n),
                                     ": no operator ", n.op_type(), " in opset ", source));
            try {
                schema->Verify(n);
            } catch (const std::exception& e) {
                throw InputError(cat(what, ": the ONNX version converter cannot raise opset ",
                                     source, " to ", target, ": ", where, node_label(n), ": ",
                                     e.what()));
            }
        }
        for (const auto& a : n.attribute()) {
            std::string inner = cat(where, node_label(n), " attribute ", a.name(), ": ");
            if (a.has_g()) check_schemas(a.g(), source, inner, what, target);
            for (const auto& sub : a.graphs()) check_schemas(sub, source, inner, what, target);
        }
    }
}

}  // namespace

int64_t default_opset(const onnx::ModelProto& proto) {
    for (const auto& o : proto.opset_import())
        if (is_default_domain(o.domain())) return o.version();
    return 0;
}

void raise_default_opset(onnx::ModelProto& proto, int64_t target, const std::string& what) {
    const int64_t source = default_opset(proto);
    if (source == 0 || source >= target) return;
    onnx::GraphProto& g = *proto.mutable_graph();
    // ONNX 1.12's converter fails on any node of another domain (its schema lookup throws
    // std::out_of_range): say which.
    for (const auto& n : g.node())
        if (!is_default_domain(n.domain()))
            throw InputError(cat(what, ": the ONNX version converter cannot raise opset ", source,
                                 " to ", target, " at ", node_label(n), " of domain '", n.domain(),
                                 "': it converts default-domain models only"));
    check_names_defined(g, {}, "", what, source, target);
    check_schemas(g, source, "", what, target);
    auto kept = stub_initializers(g);
    const auto value_info = g.value_info();
    try {
        onnx::shape_inference::InferShapes(proto);
    } catch (const std::exception&) {
        // Ranks stay unknown where inference stops; the Softmax rewrite covers them.
    }
    const KnownTypes known(g);
    if (source < kSoftmaxMeaningChanged) rewrite_softmax_family(g, known);
    onnx::ModelProto converted;
    try {
        converted = onnx::version_conversion::ConvertVersion(proto, static_cast<int>(target));
    } catch (const std::exception& e) {
        auto [node, message] = failing_node(proto, target, known);
        throw InputError(cat(what, ": the ONNX version converter cannot raise opset ", source,
                             " to ", target, node.empty() ? "" : cat(" at ", node), ": ",
                             node.empty() ? e.what() : message));
    }
    restore_initializers(*converted.mutable_graph(), kept);
    *converted.mutable_graph()->mutable_value_info() = value_info;
    proto = std::move(converted);
}

}  // namespace ep
