#include "runtime-check/qdq_fusion.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "runtime-check/elementwise_fusion.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

bool is_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

// One DequantizeLinear / QuantizeLinear as the fusion needs it: its value, scale and zero
// point (initializers), and the axis of a per-channel scale.
struct QParams {
    std::string value, scale, zero_point;
    const Tensor* scale_t = nullptr;
    const Tensor* zp_t = nullptr;
    int64_t axis = 1;
    std::vector<int64_t> shape;  // a weight's
};

class Matcher {
  public:
    explicit Matcher(const Graph& g) : g_(g) {
        for (size_t i = 0; i < g.nodes.size(); ++i) {
            for (const auto& o : g.nodes[i].outputs)
                if (!o.empty()) producer_[o] = i;
            for (const auto& in : g.nodes[i].inputs)
                if (!in.empty()) consumers_[in].push_back(i);
        }
        uses_ = g.use_counts();
        for (const auto& v : g.outputs) graph_outputs_.insert(v.name);
    }

    [[nodiscard]] const Node* producer(const std::string& name) const {
        auto it = producer_.find(name);
        return it == producer_.end() ? nullptr : &g_.nodes[it->second];
    }
    // The one node reading `name`, when exactly one node reads it (once) and it is not a
    // graph output; else -1.
    [[nodiscard]] int64_t only_reader(const std::string& name) const {
        if (graph_outputs_.count(name)) return -1;
        auto u = uses_.find(name);
        auto c = consumers_.find(name);
        if (u == uses_.end() || u->second != 1 || c == consumers_.end() || c->second.size() != 1)
            return -1;
        return static_cast<int64_t>(c->second[0]);
    }

    // A Q or DQ node's parameters when its scale and zero point are initializers (a zero
    // point is required: the fused ops take their element type from it).
    [[nodiscard]] std::optional<QParams> params(const Node& n) const {
        if (n.inputs.size() < 3 || n.inputs[1].empty() || n.inputs[2].empty()) return {};
        if (n.attr_int("block_size", 0) != 0) return {};
        QParams p;
        p.value = n.inputs[0];
        p.scale = n.inputs[1];
        p.zero_point = n.inputs[2];
        p.scale_t = g_.find_initializer(p.scale);
        p.zp_t = g_.find_initializer(p.zero_point);
        if (!p.scale_t || !p.zp_t || p.scale_t->dtype != DType::F32 || p.scale_t->is_encoded() ||
            p.zp_t->is_encoded() || p.scale_t->element_count() != p.zp_t->element_count() ||
            p.scale_t->data.size() != static_cast<size_t>(p.scale_t->element_count()) * 4)
            return {};
        p.axis = n.attr_int("axis", 1);
        return p;
    }

    // An 8-bit per-tensor activation: DQ's input or Q's output.
    [[nodiscard]] std::optional<QParams> activation_dq(const std::string& name) const {
        const Node* dq = producer(name);
        if (!dq || !is_op(*dq, "DequantizeLinear")) return {};
        auto p = params(*dq);
        if (!p || p->scale_t->element_count() != 1 || !is_8bit(p->zp_t->dtype)) return {};
        return p;
    }

    // An 8-bit weight initializer with one scale or one per index along `axis` (a
    // negative axis counts from the end).
    [[nodiscard]] std::optional<QParams> weight_dq(const std::string& name, int64_t axis) const {
        const Node* dq = producer(name);
        if (!dq || !is_op(*dq, "DequantizeLinear")) return {};
        auto p = params(*dq);
        if (!p || !is_8bit(p->zp_t->dtype)) return {};
        const Tensor* w = g_.find_initializer(p->value);
        if (!w || w->is_encoded() || w->dtype != p->zp_t->dtype || w->shape.empty() ||
            w->data.size() != static_cast<size_t>(w->element_count()))
            return {};
        const auto rank = static_cast<int64_t>(w->shape.size());
        if (axis < 0) axis += rank;
        if (p->scale_t->element_count() != 1) {
            const int64_t a = p->axis < 0 ? p->axis + rank : p->axis;
            if (a != axis || p->scale_t->shape.size() != 1 ||
                p->scale_t->shape[0] != w->shape[static_cast<size_t>(axis)])
                return {};
        }
        p->shape = w->shape;
        return p;
    }

    // An int32 bias initializer of `channels` values, zero point 0, scale x_scale * w_scale.
    [[nodiscard]] std::optional<QParams> bias_dq(const std::string& name, int64_t channels,
                                                 const QParams& x, const QParams& w) const {
        const Node* dq = producer(name);
        if (!dq || !is_op(*dq, "DequantizeLinear") || dq->inputs.size() < 2) return {};
        if (dq->attr_int("block_size", 0) != 0) return {};
        const Tensor* b = g_.find_initializer(dq->inputs[0]);
        const Tensor* s = g_.find_initializer(dq->inputs[1]);
        if (!b || !s || b->is_encoded() || s->is_encoded() || b->dtype != DType::I32 ||
            s->dtype != DType::F32 || b->element_count() != channels || b->shape.size() != 1 ||
            b->data.size() != static_cast<size_t>(channels) * 4 ||
            s->data.size() != static_cast<size_t>(s->element_count()) * 4)
            return {};
        if (dq->inputs.size() > 2 && !dq->inputs[2].empty()) {
            const Tensor* z = g_.find_initializer(dq->inputs[2]);
            if (!z || z->dtype != DType::I32 || z->data.size() != z->data.bytes().size()) return {};
            for (std::byte v : z->data.bytes())
                if (v != std::byte{0}) return {};
        }
        const int64_t ns = s->element_count();
        if (ns != 1 && ns != channels) return {};
        const float xs = scalar(*x.scale_t, 0);
        const int64_t nw = w.scale_t->element_count();
        for (int64_t c = 0; c < channels; ++c) {
            const float want = xs * scalar(*w.scale_t, nw == 1 ? 0 : c);
            const float have = scalar(*s, ns == 1 ? 0 : c);
            if (!(std::fabs(have - want) <= 1e-6f * std::fabs(want))) return {};
        }
        QParams p;
        p.value = dq->inputs[0];
        return p;
    }

    // The Q reading `value` (the op's float output) when it is its only reader.
    [[nodiscard]] std::optional<std::pair<size_t, QParams>> output_q(
        const std::string& value) const {
        const int64_t r = only_reader(value);
        if (r < 0) return {};
        const Node& q = g_.nodes[static_cast<size_t>(r)];
        if (!is_op(q, "QuantizeLinear") || q.outputs.size() != 1 || q.inputs[0] != value) return {};
        auto p = params(q);
        if (!p || p->scale_t->element_count() != 1 || !is_8bit(p->zp_t->dtype)) return {};
        if (int64_t dt = q.attr_int("output_dtype", 0); dt != 0) return {};
        return std::make_pair(static_cast<size_t>(r), *p);
    }

    [[nodiscard]] const Node& node(size_t i) const { return g_.nodes[i]; }
    [[nodiscard]] const Tensor* initializer(const std::string& name) const {
        return g_.find_initializer(name);
    }

    static float scalar(const Tensor& t, int64_t i) {
        float v;
        std::memcpy(&v, t.data.bytes().data() + i * 4, 4);
        return v;
    }
    static bool is_8bit(DType dt) { return dt == DType::U8 || dt == DType::I8; }

  private:
    const Graph& g_;
    std::unordered_map<std::string, size_t> producer_;
    std::unordered_map<std::string, std::vector<size_t>> consumers_;
    std::unordered_map<std::string, size_t> uses_;
    std::unordered_set<std::string> graph_outputs_;
};

void push_params(Node& n, const QParams& p) {
    n.inputs.push_back(p.value);
    n.inputs.push_back(p.scale);
    n.inputs.push_back(p.zero_point);
}

// Add / Sub / Mul / Div with 8-bit (DQ) or float-initializer operands, one at least 8-bit.
std::optional<std::pair<Node, size_t>> fuse_binary(const Matcher& m, const Node& op) {
    if (op.inputs.size() != 2 || op.outputs.size() != 1 || op.outputs[0].empty()) return {};
    auto q = m.output_q(op.outputs[0]);
    if (!q) return {};
    Node f;
    f.name = op.name;
    f.domain = kFusedDomain;
    f.op_type = "QdqBinary";
    f.attributes.push_back(string_attr("op", op.op_type));
    f.outputs = {m.node(q->first).outputs[0]};
    f.doc_string = cat("fused from ", op.op_type, " and its DequantizeLinear / QuantizeLinear");
    bool any_8bit = false;
    for (const auto& in : op.inputs) {
        if (auto p = m.activation_dq(in)) {
            push_params(f, *p);
            any_8bit = true;
            continue;
        }
        const Tensor* t = m.initializer(in);
        if (!t || t->dtype != DType::F32 || t->is_encoded() ||
            t->data.size() != static_cast<size_t>(t->element_count()) * 4)
            return {};
        f.inputs.insert(f.inputs.end(), {in, "", ""});
    }
    if (!any_8bit) return {};
    f.inputs.push_back(q->second.scale);
    f.inputs.push_back(q->second.zero_point);
    return std::make_pair(std::move(f), q->first);
}

bool same_scalar(const Tensor& a, const Tensor& b) {
    return a.dtype == b.dtype && a.element_count() == 1 && b.element_count() == 1 &&
           a.data.size() == b.data.size() &&
           std::memcmp(a.data.bytes().data(), b.data.bytes().data(), a.data.size()) == 0;
}

// A data-movement op between a DQ and a Q with the same scale and zero point: the op runs
// on the 8-bit values (Q(DQ(x)) = x exactly when the parameters are equal: (x - z) * s / s
// is within an ulp of the integer x - z).
std::optional<std::pair<Node, size_t>> fuse_move(const Matcher& m, const Node& op) {
    if (op.inputs.empty() || op.outputs.size() != 1 || op.outputs[0].empty()) return {};
    auto q = m.output_q(op.outputs[0]);
    if (!q) return {};
    auto x = m.activation_dq(op.inputs[0]);
    if (!x || !same_scalar(*x->scale_t, *q->second.scale_t) ||
        !same_scalar(*x->zp_t, *q->second.zp_t))
        return {};
    Node f = op;
    f.inputs[0] = x->value;
    f.outputs = {m.node(q->first).outputs[0]};
    f.doc_string =
        cat(op.op_type, " on 8-bit values (fused with its DequantizeLinear / QuantizeLinear)");
    return std::make_pair(std::move(f), q->first);
}

// The fused node replacing `op` and the Q after it, and the index of that Q.
std::optional<std::pair<Node, size_t>> fuse_one(const Matcher& m, const Node& op) {
    if (is_op(op, "Transpose") || is_op(op, "Reshape") || is_op(op, "Squeeze") ||
        is_op(op, "Unsqueeze") || is_op(op, "Flatten"))
        return fuse_move(m, op);
    if (is_op(op, "Add") || is_op(op, "Sub") || is_op(op, "Mul") || is_op(op, "Div"))
        return fuse_binary(m, op);
    const bool conv = is_op(op, "Conv"), matmul = is_op(op, "MatMul"), gemm = is_op(op, "Gemm");
    if (!conv && !matmul && !gemm) return {};
    if (op.outputs.size() != 1 || op.outputs[0].empty() || op.inputs.size() < 2) return {};
    auto q = m.output_q(op.outputs[0]);
    if (!q) return {};
    auto x = m.activation_dq(op.inputs[0]);
    if (!x) return {};
    const bool has_bias = op.inputs.size() > 2 && !op.inputs[2].empty();
    Node f;
    f.name = op.name;
    f.outputs = {m.node(q->first).outputs[0]};
    f.doc_string = cat("fused from ", op.op_type, " and its DequantizeLinear / QuantizeLinear");
    if (conv) {
        auto w = m.weight_dq(op.inputs[1], 0);
        if (!w) return {};
        f.op_type = "QLinearConv";
        f.attributes = op.attributes;
        push_params(f, *x);
        push_params(f, *w);
        f.inputs.push_back(q->second.scale);
        f.inputs.push_back(q->second.zero_point);
        if (has_bias) {
            auto b = m.bias_dq(op.inputs[2], w->shape[0], *x, *w);
            if (!b) return {};
            f.inputs.push_back(b->value);
        }
    } else if (matmul) {
        std::optional<QParams> b = m.weight_dq(op.inputs[1], -1);
        if (!b) b = m.activation_dq(op.inputs[1]);
        if (!b) return {};
        f.op_type = "QLinearMatMul";
        push_params(f, *x);
        push_params(f, *b);
        f.inputs.push_back(q->second.scale);
        f.inputs.push_back(q->second.zero_point);
    } else {
        if (op.attr_float("alpha", 1.0f) != 1.0f || op.attr_int("transA", 0) != 0) return {};
        if (has_bias && op.attr_float("beta", 1.0f) != 1.0f) return {};
        const int64_t trans_b = op.attr_int("transB", 0);
        auto w = m.weight_dq(op.inputs[1], trans_b ? 0 : 1);
        if (!w || w->shape.size() != 2) return {};
        f.op_type = "QGemm";
        f.domain = "com.microsoft";
        f.attributes.push_back(int_attr("transB", trans_b));
        push_params(f, *x);
        push_params(f, *w);
        f.inputs.emplace_back();
        if (has_bias) {
            auto b = m.bias_dq(op.inputs[2], w->shape[trans_b ? 0 : 1], *x, *w);
            if (!b) return {};
            f.inputs.back() = b->value;
        }
        f.inputs.push_back(q->second.scale);
        f.inputs.push_back(q->second.zero_point);
    }
    return std::make_pair(std::move(f), q->first);
}

}  // namespace

QdqFusion fuse_qdq(const Graph& graph) {
    QdqFusion r;
    Matcher m(graph);
    std::vector<std::optional<Node>> out(graph.nodes.begin(), graph.nodes.end());
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        if (!out[i]) continue;  // a Q absorbed already
        const Node& op = graph.nodes[i];
        auto fused = fuse_one(m, op);
        if (!fused || !out[fused->second]) continue;
        r.removed_values.insert(op.outputs[0]);
        r.conv += fused->first.op_type == "QLinearConv";
        r.matmul += fused->first.op_type == "QLinearMatMul";
        r.gemm += fused->first.op_type == "QGemm";
        r.elementwise += fused->first.op_type == "QdqBinary";
        r.moves += fused->first.op_type == op.op_type;
        out[i] = std::move(fused->first);
        out[fused->second].reset();
        ++r.dropped;
    }
    // DequantizeLinear nodes nothing reads any more (their op now reads the 8-bit value).
    std::unordered_map<std::string, size_t> uses;
    for (const auto& n : out)
        if (n)
            for (const auto& in : n->inputs)
                if (!in.empty()) ++uses[in];
    // Graph outputs and subgraph captures count as uses.
    for (const auto& v : graph.outputs) ++uses[v.name];
    for (const auto& n : out)
        if (n)
            for (const auto& a : n->attributes)
                for (const auto& sub : a.graphs)
                    for (const auto& [name, count] : sub.use_counts()) uses[name] += count;
    for (auto& n : out)
        if (n && is_op(*n, "DequantizeLinear") && n->outputs.size() == 1 &&
            !uses.count(n->outputs[0])) {
            r.removed_values.insert(n->outputs[0]);
            n.reset();
            ++r.dropped;
        }
    for (auto& n : out)
        if (n) r.nodes.push_back(std::move(*n));
    return r;
}

KernelFn fused_kernel(const Node& node) {
    if (node.domain != kFusedDomain) return nullptr;
    if (node.op_type == "QdqBinary") return op_qdq_binary;
    if (node.op_type == "ElementwiseChain") return op_elementwise_chain;
    if (node.op_type == "ConvActivation") return op_conv_activation;
    return nullptr;
}

}  // namespace ep::rt
