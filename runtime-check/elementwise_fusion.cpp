#include "runtime-check/elementwise_fusion.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <unordered_map>

#include "runtime-check/kernels/elementwise_chain.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/qdq_fusion.h"

namespace ep::rt {
namespace {

constexpr size_t kMaxSteps = 64;

bool default_domain(const Node& n) {
    return n.domain.empty() || n.domain == "ai.onnx";
}

bool is_binary(const Node& n) {
    return (n.op_type == "Add" || n.op_type == "Sub" || n.op_type == "Mul" || n.op_type == "Div" ||
            n.op_type == "Max" || n.op_type == "Min") &&
           n.inputs.size() == 2 && !n.inputs[0].empty() && !n.inputs[1].empty();
}

bool is_unary(const Node& n) {
    return (n.op_type == "Relu" || n.op_type == "Sigmoid" || n.op_type == "HardSigmoid" ||
            n.op_type == "LeakyRelu") &&
           n.inputs.size() == 1 && !n.inputs[0].empty();
}

// A float Conv whose output a chain may take over as its epilogue (conv2d.h).
bool is_conv(const Node& n) {
    return default_domain(n) && n.op_type == "Conv" && n.outputs.size() == 1 &&
           !n.outputs[0].empty() && n.inputs.size() >= 2 && n.inputs.size() <= 3 &&
           !n.inputs[0].empty() && !n.inputs[1].empty();
}

// What the fusion knows about the graph: one-element float constants, readers of each
// value, and values read from outside the node list (graph outputs, subgraph captures).
struct GraphFacts {
    std::unordered_set<std::string> scalars;
    std::unordered_map<std::string, std::vector<size_t>> readers;
    std::unordered_map<std::string, size_t> producer;
    std::unordered_set<std::string> pinned;
    int64_t opset = 0;

    [[nodiscard]] bool is_clip(const Node& n) const {
        if (n.op_type != "Clip" || n.inputs.empty() || n.inputs[0].empty() ||
            n.inputs.size() > (opset < 11 ? 1u : 3u))
            return false;
        for (size_t k = 1; k < n.inputs.size(); ++k)
            if (!n.inputs[k].empty() && !scalars.count(n.inputs[k])) return false;
        return true;
    }
    [[nodiscard]] bool chainable(const Node& n) const {
        return default_domain(n) && n.outputs.size() == 1 && !n.outputs[0].empty() &&
               (is_binary(n) || is_unary(n) || is_clip(n));
    }
};

GraphFacts graph_facts(const Graph& graph, const std::vector<Node>& nodes, int64_t opset) {
    GraphFacts f;
    f.opset = opset;
    for (const auto& t : graph.initializers)
        if (t.dtype == DType::F32 && !t.is_encoded() && t.element_count() == 1)
            f.scalars.insert(t.name);
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        if (default_domain(n) && n.op_type == "Constant" && n.outputs.size() == 1) {
            const Attribute* v = n.attr("value");
            const Attribute* vf = n.attr("value_float");
            if ((v && v->tensors.size() == 1 && v->tensors[0].dtype == DType::F32 &&
                 !v->tensors[0].is_encoded() && v->tensors[0].element_count() == 1) ||
                (vf && vf->type == AttrType::Float))
                f.scalars.insert(n.outputs[0]);
        }
        for (const auto& in : n.inputs)
            if (!in.empty()) {
                auto& r = f.readers[in];
                if (r.empty() || r.back() != i) r.push_back(i);
            }
        for (const auto& out : n.outputs)
            if (!out.empty()) f.producer[out] = i;
        for (const auto& a : n.attributes)
            for (const auto& sub : a.graphs)
                for (const auto& [name, count] : sub.use_counts()) f.pinned.insert(name);
    }
    for (const auto& v : graph.outputs) f.pinned.insert(v.name);
    return f;
}

// Whether `n` continues a chain whose current value is `cur`, input `x`, earlier outputs
// `outs`: `cur` is its (first) operand and the other operand is a constant, x or an
// earlier output.
bool continues(const GraphFacts& f, const Node& n, const std::string& cur, const std::string& x,
               const std::vector<std::string>& outs) {
    if (!f.chainable(n)) return false;
    if (!is_binary(n)) return n.inputs[0] == cur;
    auto other_ok = [&](const std::string& o) {
        return o != cur && (f.scalars.count(o) || o == x ||
                            std::find(outs.begin(), outs.end(), o) != outs.end());
    };
    return (n.inputs[0] == cur && other_ok(n.inputs[1])) ||
           (n.inputs[1] == cur && other_ok(n.inputs[0]));
}

// The chain's input when `n` can start a chain.
std::optional<std::string> chain_input(const GraphFacts& f, const Node& n) {
    if (!f.chainable(n)) return std::nullopt;
    if (!is_binary(n)) return n.inputs[0];
    const bool s0 = f.scalars.count(n.inputs[0]) > 0, s1 = f.scalars.count(n.inputs[1]) > 0;
    if (s1 && !s0) return n.inputs[0];
    if (s0 && !s1) return n.inputs[1];
    return std::nullopt;
}

// Earlier outputs that later steps read besides as their current value.
size_t kept_outputs(const std::vector<Node>& nodes, const std::vector<size_t>& chain,
                    size_t length) {
    std::unordered_set<std::string> kept;
    for (size_t k = 1; k < length; ++k)
        for (size_t j = 0; j + 1 < k; ++j)
            for (const auto& in : nodes[chain[k]].inputs)
                if (in == nodes[chain[j]].outputs[0]) kept.insert(in);
    return kept.size();
}

// The longest prefix (>= min_length steps, else 0) whose intermediates only its own steps
// read.
size_t closed_prefix(const GraphFacts& f, const std::vector<Node>& nodes,
                     const std::vector<size_t>& chain, size_t min_length) {
    for (size_t length = chain.size(); length >= min_length; --length) {
        bool closed = kept_outputs(nodes, chain, length) <= static_cast<size_t>(kChainMaxKept);
        for (size_t k = 0; closed && k + 1 < length; ++k) {
            const std::string& v = nodes[chain[k]].outputs[0];
            if (f.pinned.count(v)) closed = false;
            auto it = f.readers.find(v);
            if (it != f.readers.end())
                for (size_t r : it->second)
                    if (std::find(chain.begin(),
                                  chain.begin() + static_cast<std::ptrdiff_t>(length),
                                  r) == chain.begin() + static_cast<std::ptrdiff_t>(length))
                        closed = false;
        }
        if (closed) return length;
    }
    return 0;
}

Node fused_node(const GraphFacts& f, const std::vector<Node>& nodes,
                const std::vector<size_t>& chain, const std::string& x) {
    const Node& last = nodes[chain.back()];
    Node fused;
    fused.name = last.name;
    fused.domain = kFusedDomain;
    fused.op_type = "ElementwiseChain";
    fused.outputs = {last.outputs[0]};
    fused.inputs = {x};
    // Clip reads its bounds from attributes before opset 11: the kernel must know which.
    fused.attributes.push_back(int_attr("onnx_opset", f.opset));
    Graph body;
    body.name = cat(last.name.empty() ? last.outputs[0] : last.name, "/elementwise_chain");
    std::string steps;
    for (size_t i : chain) {
        const Node& n = nodes[i];
        for (const auto& in : n.inputs)
            if (!in.empty() && f.scalars.count(in) &&
                std::find(fused.inputs.begin(), fused.inputs.end(), in) == fused.inputs.end())
                fused.inputs.push_back(in);
        steps += cat(steps.empty() ? "" : " -> ", n.op_type);
        body.nodes.push_back(n);
    }
    body.outputs.push_back(ValueInfo{last.outputs[0], std::nullopt, ""});
    Attribute a;
    a.name = "body";
    a.type = AttrType::Graph;
    a.graphs.push_back(std::move(body));
    fused.attributes.push_back(std::move(a));
    fused.doc_string = cat("fused elementwise chain: ", steps);
    return fused;
}

// Conv + chain as one node: inputs X, W, B ("" when absent), then the chain's constants;
// Conv's attributes; body = the Conv and the chain's nodes (run as written when the fused
// kernel cannot take the values).
Node fused_conv_node(const GraphFacts& f, const std::vector<Node>& nodes, size_t conv,
                     const std::vector<size_t>& chain) {
    const Node& c = nodes[conv];
    Node chained = fused_node(f, nodes, chain, c.outputs[0]);
    Node fused;
    fused.name = c.name;
    fused.domain = kFusedDomain;
    fused.op_type = "ConvActivation";
    fused.outputs = chained.outputs;
    fused.inputs = c.inputs;
    fused.inputs.resize(3);
    fused.inputs.insert(fused.inputs.end(), chained.inputs.begin() + 1, chained.inputs.end());
    fused.attributes = c.attributes;
    for (auto& a : chained.attributes) {
        if (a.name == "body") {
            a.graphs[0].name = cat(c.name.empty() ? c.outputs[0] : c.name, "/conv_activation");
            a.graphs[0].nodes.insert(a.graphs[0].nodes.begin(), c);
        }
        fused.attributes.push_back(std::move(a));
    }
    fused.doc_string =
        cat("fused Conv + ", chained.doc_string.substr(chained.doc_string.find(": ") + 2));
    return fused;
}

}  // namespace

ElementwiseFusion fuse_elementwise_chains(const Graph& graph, std::vector<Node> nodes,
                                          int64_t opset) {
    ElementwiseFusion r;
    const GraphFacts f = graph_facts(graph, nodes, opset);
    std::vector<bool> used(nodes.size(), false);
    std::vector<std::optional<Node>> replace(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (used[i]) continue;
        auto x = chain_input(f, nodes[i]);
        if (!x) continue;
        std::vector<size_t> chain{i};
        std::vector<std::string> outs{nodes[i].outputs[0]};
        while (chain.size() < kMaxSteps) {
            const std::string& cur = outs.back();
            auto it = f.readers.find(cur);
            if (it == f.readers.end()) break;
            std::optional<size_t> next;
            for (size_t j : it->second)
                if (j > chain.back() && !used[j] && continues(f, nodes[j], cur, *x, outs)) {
                    next = j;
                    break;
                }
            if (!next) break;
            chain.push_back(*next);
            outs.push_back(nodes[*next].outputs[0]);
        }
        // A float Conv producing the chain's input, read by nothing else, takes the chain
        // as its epilogue: then one step is enough.
        std::optional<size_t> conv;
        if (auto p = f.producer.find(*x); p != f.producer.end() && !used[p->second] &&
                                          is_conv(nodes[p->second]) && !f.pinned.count(*x))
            conv = p->second;
        chain.resize(closed_prefix(f, nodes, chain, conv ? 1 : 2));
        if (conv) {
            const auto& readers = f.readers.at(*x);
            const bool only_chain = std::all_of(readers.begin(), readers.end(), [&](size_t j) {
                return std::find(chain.begin(), chain.end(), j) != chain.end();
            });
            if (!only_chain) {
                conv.reset();
                if (chain.size() < 2) chain.clear();
            }
        }
        if (chain.empty()) continue;
        for (size_t k = 0; k < chain.size(); ++k) {
            used[chain[k]] = true;
            if (k + 1 < chain.size()) r.removed_values.insert(nodes[chain[k]].outputs[0]);
        }
        if (conv) {
            used[*conv] = true;
            r.removed_values.insert(*x);
            replace[chain.back()] = fused_conv_node(f, nodes, *conv, chain);
            ++r.conv_activations;
        } else {
            replace[chain.back()] = fused_node(f, nodes, chain, *x);
        }
        ++r.chains;
        r.fused_nodes += chain.size();
    }
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (replace[i])
            r.nodes.push_back(std::move(*replace[i]));
        else if (!used[i])
            r.nodes.push_back(std::move(nodes[i]));
    }
    return r;
}

namespace {

// The steps of `nodes` over the chain's input `x_name` (a float32 value of rank `x_rank`),
// the constants being the node's inputs from `first_constant` on, or nullopt when a value
// is not what the fused kernel handles (then the body runs as written).
std::optional<std::vector<ChainStep>> chain_program(const OpContext& c, std::span<const Node> nodes,
                                                    const std::string& x_name, size_t x_rank,
                                                    size_t first_constant) {
    auto constant = [&](const std::string& name, bool check_rank) -> std::optional<float> {
        for (size_t k = first_constant; k < c.node.inputs.size(); ++k) {
            if (c.node.inputs[k] != name) continue;
            const Tensor* t = c.inputs[k];
            if (!t || t->dtype != DType::F32 || t->is_encoded() || t->element_count() != 1 ||
                (check_rank && t->shape.size() > x_rank))
                return std::nullopt;
            return t->values<float>()[0];
        }
        return std::nullopt;
    };
    if (nodes.empty() || nodes.size() > kMaxSteps) return std::nullopt;
    const int64_t opset = c.node.attr_int("onnx_opset", 0);
    std::vector<ChainStep> steps;
    int kept = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        const std::string& cur = i == 0 ? x_name : nodes[i - 1].outputs[0];
        ChainStep s;
        if (is_binary(n)) {
            s.op = n.op_type == "Add"   ? ChainOp::Add
                   : n.op_type == "Sub" ? ChainOp::Sub
                   : n.op_type == "Mul" ? ChainOp::Mul
                   : n.op_type == "Div" ? ChainOp::Div
                   : n.op_type == "Max" ? ChainOp::Max
                                        : ChainOp::Min;
            if (n.inputs[0] != cur && n.inputs[1] != cur) return std::nullopt;
            s.other_first = n.inputs[0] != cur;
            const std::string& o = s.other_first ? n.inputs[0] : n.inputs[1];
            auto earlier =
                std::find_if(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(i),
                             [&](const Node& e) { return e.outputs[0] == o; });
            if (o == cur) {
                return std::nullopt;
            } else if (o == x_name) {
                s.other = ChainOperand::Input;
            } else if (earlier != nodes.begin() + static_cast<std::ptrdiff_t>(i)) {
                s.other = ChainOperand::Saved;
                s.saved = static_cast<int>(earlier - nodes.begin());
                if (!steps[static_cast<size_t>(s.saved)].keep) {
                    steps[static_cast<size_t>(s.saved)].keep = true;
                    if (++kept > kChainMaxKept) return std::nullopt;
                }
            } else if (auto v = constant(o, true)) {
                s.other = ChainOperand::Scalar;
                s.scalar = *v;
            } else {
                return std::nullopt;
            }
        } else if (n.inputs.empty() || n.inputs[0] != cur) {
            return std::nullopt;
        } else if (n.op_type == "Relu") {
            s.op = ChainOp::Relu;
        } else if (n.op_type == "Sigmoid") {
            s.op = ChainOp::Sigmoid;
        } else if (n.op_type == "LeakyRelu") {
            s.op = ChainOp::LeakyRelu;
            s.a = n.attr_float("alpha", 0.01f);
        } else if (n.op_type == "HardSigmoid") {
            s.op = ChainOp::HardSigmoid;
            s.a = n.attr_float("alpha", 0.2f);
            s.b = n.attr_float("beta", 0.5f);
        } else if (n.op_type == "Clip" && opset < 11) {
            // op_clip before opset 11: attributes, the float range by default.
            s.op = ChainOp::Clip;
            s.a = n.attr_float("min", -std::numeric_limits<float>::max());
            s.b = n.attr_float("max", std::numeric_limits<float>::max());
        } else if (n.op_type == "Clip") {
            // op_clip: a bound given as an empty tensor is no bound.
            s.op = ChainOp::Clip;
            s.a = -std::numeric_limits<float>::infinity();
            s.b = std::numeric_limits<float>::infinity();
            for (size_t k = 1; k < 3; ++k) {
                if (k >= n.inputs.size() || n.inputs[k].empty()) continue;
                auto v = constant(n.inputs[k], false);
                if (!v) return std::nullopt;
                (k == 1 ? s.a : s.b) = *v;
            }
        } else {
            return std::nullopt;
        }
        steps.push_back(s);
    }
    return steps;
}

}  // namespace

void op_elementwise_chain(OpContext& c) {
    const Attribute* body = c.node.attr("body");
    if (!body || body->graphs.size() != 1) c.fail("fused elementwise chain without a body");
    const Tensor& x = c.input(0);
    std::optional<std::vector<ChainStep>> steps;
    if (x.dtype == DType::F32 && !x.is_encoded())
        steps = chain_program(c, body->graphs[0].nodes, c.node.inputs[0], x.shape.size(), 1);
    if (!steps) {
        if (!c.run_subgraph) c.fail("fused elementwise chain: no subgraph runner");
        std::vector<Tensor> out = (*c.run_subgraph)(body->graphs[0], {});
        c.outputs.push_back(std::move(out.at(0)));
        return;
    }
    Tensor y = make_uninitialized_tensor(DType::F32, x.shape);
    run_elementwise_chain(c.options, *steps, x.values<float>().data(),
                          y.mutable_values<float>().data(), x.element_count());
    c.outputs.push_back(std::move(y));
}

void op_conv_activation(OpContext& c) {
    const Attribute* body = c.node.attr("body");
    if (!body || body->graphs.size() != 1 || body->graphs[0].nodes.size() < 2)
        c.fail("fused Conv + activation without a body");
    const std::span<const Node> nodes = body->graphs[0].nodes;
    const Tensor& x = c.input(0);
    std::optional<std::vector<ChainStep>> steps;
    // Conv's output is float32 of X's rank when X is float32.
    if (x.dtype == DType::F32 && !x.is_encoded())
        steps = chain_program(c, nodes.subspan(1), nodes[0].outputs[0], x.shape.size(), 3);
    if (!steps) {
        if (!c.run_subgraph) c.fail("fused Conv + activation: no subgraph runner");
        std::vector<Tensor> out = (*c.run_subgraph)(body->graphs[0], {});
        c.outputs.push_back(std::move(out.at(0)));
        return;
    }
    conv_with_epilogue(c, *steps);
}

}  // namespace ep::rt
