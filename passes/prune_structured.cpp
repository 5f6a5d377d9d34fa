// prune-structured: removes whole Conv output channels and MatMul / Gemm neurons, with
// every tensor that reads them, so the model is smaller and faster without sparse storage.
//
// A group is the set of layers whose output channels are tied: one producer (a Conv with
// group 1, a MatMul with a [K, N] weight, a Gemm), or several whose outputs meet in an
// elementwise op (SwiGLU: Mul(Silu(x W1), x W3)), then the values carrying those channels
// through per-channel ops (Relu, Sigmoid, Tanh, LeakyRelu, Identity, BatchNormalization,
// MaxPool / AveragePool / GlobalAveragePool, Add / Sub / Mul / Div of two group values or
// with a scalar initializer), ending in consumers that reduce over them: a Conv (group 1)
// reading them as input channels, a MatMul / Gemm reading them as rows of its weight,
// directly or through Flatten(axis 1) / a Reshape to [N, C*S] (S = spatial size: channel c
// is the weight rows [c*S, (c+1)*S)). Anything else the channels reach (a graph output, a
// residual Add with an outside input, a Reshape into attention heads, a Concat, ...) makes
// the group a skip with its reason: nothing is pruned that the graph does not allow.
//
// Before: producers W_p with C output channels, consumers W_c with C*S input rows.
// After:  W_p with C' = C - round(sparsity * C) channels (at least 1; rounded up to a
//         multiple of round_to), biases and BatchNormalization parameters sliced
//         alike, W_c with C'*S rows, the Reshape constant's C*S
//         rewritten as C'*S, value_info of the values in between dropped (their shapes
//         changed; shape inference gives them back).
//
// Importance of channel c (the kept channels are the C' largest, ties to the lower index):
//   l1          sum over the group's producers of sum |W_p[c]|
//   l2          sum over the group's producers of ||W_p[c]||_2
//   activation  mean |a_c| of the value the consumers read, over the calibration data
//
// Reconstruction (option reconstruct, needs calibration data): each consumer, in graph
// order, is re-fitted so its output on the pruned model matches the original model's:
//   min over W', b'  ||X_p W' + b' - (X_o W + b)||^2 + lambda ||W'||^2
// X_o is the consumer's input in the original model, X_p in the pruned model with the
// consumers before it already re-fitted (rows: the im2col patches of a Conv, the rows of a
// MatMul / Gemm input), W the original weight restricted to the kept output channels,
// lambda = ridge * mean(diag(X_p^T X_p)); b' is fitted (unregularised) when the consumer
// has a bias. Solved in double by LDLT of the normal equations; a solve that fails keeps
// the sliced weight and warns. The summary gives each consumer's relative output error
// ||X_p W' - Y||^2 / ||Y||^2 before and after.
//
// Every check runs on a copy before the model changes; a failing run leaves it unchanged.
// Weights must be plain f32 initializers used by one node (else the group is a skip).
// Selection: include / exclude match the producers' weight names (a group is pruned when
// all of them are selected). Only the main graph is pruned.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <Eigen/Dense>

#include "calibration/calibration.h"
#include "ir/error.h"
#include "ir/ir.h"
#include "ir/progress.h"
#include "passes/pass.h"
#include "passes/selector.h"
#include "runtime-check/executor.h"

namespace ep {

namespace {

enum class Importance { L1, L2, Activation };

std::string_view importance_name(Importance i) {
    switch (i) {
        case Importance::L1:
            return "l1";
        case Importance::L2:
            return "l2";
        case Importance::Activation:
            return "activation";
    }
    return "l1";
}

bool is_onnx_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

// One tensor cut along one axis: channel c is the `block` entries from c * block.
struct Cut {
    std::string tensor;
    int axis = 0;
    int64_t block = 1;
};

enum class LayerKind { Conv, MatMul, GemmT, Gemm };  // GemmT: Gemm with transB = 1

// A MatMul / Gemm / Conv with an f32 weight: its weight seen as a [K, O] matrix.
struct Layer {
    size_t node = 0;
    LayerKind kind = LayerKind::MatMul;
    std::string weight, bias;  // bias "" when none
    int64_t k = 0, o = 0;      // reduction length, output channels
};

// A consumer: a layer reading the group's channels (in blocks of `block` rows of its K).
struct Consumer {
    Layer layer;
    int64_t block = 1;
};

struct Group {
    std::vector<Layer> producers;
    std::vector<Consumer> consumers;
    std::vector<Cut> cuts;          // every tensor that loses the pruned channels
    std::set<std::string> values;   // values carrying the channels (value_info dropped)
    std::string read_value;         // the value the consumers read (activation importance)
    bool channel_axis_one = false;  // NCHW (Conv) rather than last axis
    std::vector<std::pair<std::string, int64_t>> reshape_shapes;  // shape constant, new C*S / C
    int64_t channels = 0;
    std::string pattern;  // "channels" or "neurons"
    std::string skip;     // why the group cannot be pruned ("" when it can)
    std::vector<int64_t> kept;
};

const char* layer_op(LayerKind k) {
    switch (k) {
        case LayerKind::Conv:
            return "Conv";
        case LayerKind::MatMul:
            return "MatMul";
        default:
            return "Gemm";
    }
}

// The f32 initializer `name` of the graph, or null.
const Tensor* f32_initializer(const Graph& g, const std::string& name) {
    const Tensor* t = g.find_initializer(name);
    if (!t || t->dtype != DType::F32 || t->is_encoded()) return nullptr;
    return t;
}

// The layer a node is, when it has an f32 weight initializer; nullopt otherwise.
std::optional<Layer> as_layer(const Graph& g, size_t i) {
    const Node& n = g.nodes[i];
    if (n.inputs.size() < 2) return std::nullopt;
    const Tensor* w = f32_initializer(g, n.inputs[1]);
    if (!w) return std::nullopt;
    Layer l;
    l.node = i;
    l.weight = n.inputs[1];
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) l.bias = n.inputs[2];
    if (is_onnx_op(n, "Conv")) {
        if (w->shape.size() < 3 || n.attr_int("group", 1) != 1) return std::nullopt;
        l.kind = LayerKind::Conv;
        l.o = w->shape[0];
        l.k = w->element_count() / std::max<int64_t>(l.o, 1);
    } else if (is_onnx_op(n, "MatMul")) {
        if (w->shape.size() != 2) return std::nullopt;
        l.kind = LayerKind::MatMul;
        l.k = w->shape[0];
        l.o = w->shape[1];
    } else if (is_onnx_op(n, "Gemm")) {
        if (w->shape.size() != 2 || n.attr_int("transA", 0) != 0) return std::nullopt;
        bool tb = n.attr_int("transB", 0) != 0;
        l.kind = tb ? LayerKind::GemmT : LayerKind::Gemm;
        l.k = tb ? w->shape[1] : w->shape[0];
        l.o = tb ? w->shape[0] : w->shape[1];
    } else {
        return std::nullopt;
    }
    if (!l.bias.empty() && !f32_initializer(g, l.bias)) return std::nullopt;
    return l;
}

// The axis of a layer's weight that holds output channels / reduction rows.
int out_axis(LayerKind k) {
    return k == LayerKind::MatMul || k == LayerKind::Gemm ? 1 : 0;
}
int in_axis(LayerKind k) {
    return k == LayerKind::MatMul || k == LayerKind::Gemm ? 0 : 1;
}

bool per_channel_unary(const Node& n) {
    static const std::set<std::string> ops = {"Relu",        "LeakyRelu", "Sigmoid", "Tanh",
                                              "Identity",    "Elu",       "Selu",    "Softplus",
                                              "HardSigmoid", "HardSwish", "Gelu",    "Erf"};
    return (n.domain.empty() || n.domain == "ai.onnx") && ops.count(n.op_type) &&
           n.outputs.size() == 1;
}

bool pooling(const Node& n) {
    return (is_onnx_op(n, "MaxPool") || is_onnx_op(n, "AveragePool") ||
            is_onnx_op(n, "GlobalAveragePool") || is_onnx_op(n, "GlobalMaxPool")) &&
           n.outputs.size() == 1;
}

bool binary(const Node& n) {
    return is_onnx_op(n, "Add") || is_onnx_op(n, "Sub") || is_onnx_op(n, "Mul") ||
           is_onnx_op(n, "Div");
}

// The int64 values of a shape constant (an initializer or a Constant node's output).
std::optional<std::vector<int64_t>> shape_constant(
    const Graph& g, const std::string& name,
    const std::unordered_map<std::string, size_t>& producer) {
    const Tensor* t = g.find_initializer(name);
    if (!t) {
        auto it = producer.find(name);
        if (it == producer.end() || !is_onnx_op(g.nodes[it->second], "Constant"))
            return std::nullopt;
        const Attribute* a = g.nodes[it->second].attr("value");
        if (!a || a->type != AttrType::Tensor || a->tensors.size() != 1) return std::nullopt;
        t = &a->tensors[0];
    }
    if (t->dtype != DType::I64 || t->shape.size() != 1 || t->is_encoded()) return std::nullopt;
    auto v = t->values<int64_t>();
    return std::vector<int64_t>(v.begin(), v.end());
}

// True when `name` is a one-element constant (an initializer or a Constant node's output).
bool scalar_constant(const Graph& g, const std::string& name,
                     const std::unordered_map<std::string, size_t>& producer) {
    if (const Tensor* t = g.find_initializer(name)) return t->element_count() == 1;
    auto it = producer.find(name);
    if (it == producer.end() || !is_onnx_op(g.nodes[it->second], "Constant")) return false;
    const Attribute* a = g.nodes[it->second].attr("value");
    return a && a->type == AttrType::Tensor && a->tensors.size() == 1 &&
           a->tensors[0].element_count() == 1;
}

// Finds the group of producer `seed` (skip set when it cannot be pruned).
Group find_group(const Graph& g, const Layer& seed,
                 const std::unordered_map<std::string, std::vector<size_t>>& users,
                 const std::unordered_map<std::string, size_t>& producer,
                 const std::unordered_map<std::string, size_t>& uses,
                 const std::unordered_set<std::string>& graph_outputs) {
    Group grp;
    grp.channels = seed.o;
    grp.channel_axis_one = seed.kind == LayerKind::Conv;
    grp.pattern = grp.channel_axis_one ? "channels" : "neurons";
    grp.producers.push_back(seed);
    auto fail = [&](std::string why) {
        if (grp.skip.empty()) grp.skip = std::move(why);
    };
    const int64_t c = seed.o;
    std::vector<std::string> queue = {g.nodes[seed.node].outputs[0]};
    grp.values.insert(queue[0]);
    std::set<size_t> done;
    std::vector<size_t> pending;  // binary nodes whose other input is not known yet

    auto add_value = [&](const std::string& v) {
        if (grp.values.insert(v).second) queue.push_back(v);
    };
    auto add_producer = [&](const std::string& v) -> bool {
        auto it = producer.find(v);
        if (it == producer.end()) return false;
        auto l = as_layer(g, it->second);
        if (!l || l->o != c || (l->kind == LayerKind::Conv) != grp.channel_axis_one) return false;
        for (const auto& p : grp.producers)
            if (p.node == l->node) return true;
        grp.producers.push_back(*l);
        add_value(v);
        return true;
    };
    auto consumer_layer = [&](size_t i, int64_t block) {
        auto l = as_layer(g, i);
        const int64_t reads = !l                           ? 0
                              : l->kind == LayerKind::Conv ? g.find_initializer(l->weight)->shape[1]
                                                           : l->k / block;
        if (!l || reads != c || (l->kind != LayerKind::Conv && l->k != c * block)) {
            fail(cat("feeds ", g.nodes[i].op_type, " '", g.nodes[i].label(),
                     "', whose weight does not read ", c, " channels"));
            return;
        }
        grp.consumers.push_back({*l, block});
    };
    // A Flatten / Reshape to [N, C*S] whose readers are MatMul / Gemm layers.
    auto flatten = [&](size_t i, const std::string& v) {
        const Node& n = g.nodes[i];
        const std::string& out = n.outputs[0];
        if (graph_outputs.count(out)) return fail(cat("'", out, "' is a graph output"));
        auto ru = users.find(out);
        if (ru == users.end() || ru->second.empty()) return fail(cat("'", out, "' is unused"));
        std::optional<int64_t> block;
        for (size_t r : ru->second) {
            auto l = as_layer(g, r);
            if (!l || l->kind == LayerKind::Conv || g.nodes[r].inputs[0] != out || l->k % c != 0)
                return fail(cat("'", out, "' feeds ", g.nodes[r].op_type, " '", g.nodes[r].label(),
                                "', not a MatMul / Gemm weight over ", c, " channel blocks"));
            if (block && *block != l->k / c)
                return fail(cat("'", out, "' feeds layers of different widths"));
            block = l->k / c;
        }
        if (is_onnx_op(n, "Reshape")) {
            auto shape = shape_constant(g, n.inputs[1], producer);
            if (!shape || shape->size() != 2)
                return fail(
                    cat("feeds Reshape '", n.label(), "' whose shape is not a constant [N, C*S]"));
            if ((*shape)[1] == c * *block) {
                if (uses.at(n.inputs[1]) != 1)
                    return fail(cat("the shape constant '", n.inputs[1], "' of Reshape '",
                                    n.label(), "' is shared"));
                grp.reshape_shapes.emplace_back(n.inputs[1], *block);
            } else if ((*shape)[1] != -1 || (*shape)[0] <= 0) {
                if ((*shape)[1] != -1)
                    return fail(cat("feeds Reshape '", n.label(), "' to ", shape_string(*shape),
                                    ", not [N, ", c * *block, "]"));
            }
        }
        grp.values.insert(out);
        grp.read_value = v;
        for (size_t r : ru->second) consumer_layer(r, *block);
    };

    auto visit = [&](size_t i, const std::string& v) -> bool {  // false: come back later
        const Node& n = g.nodes[i];
        if (per_channel_unary(n) && n.inputs[0] == v) {
            add_value(n.outputs[0]);
        } else if (pooling(n) && grp.channel_axis_one) {
            add_value(n.outputs[0]);
        } else if (is_onnx_op(n, "BatchNormalization") && grp.channel_axis_one &&
                   n.inputs.size() == 5 && n.outputs.size() == 1 && n.inputs[0] == v) {
            for (size_t j = 1; j < 5; ++j) {
                const Tensor* t = f32_initializer(g, n.inputs[j]);
                if (!t || t->element_count() != c) {
                    fail(cat("BatchNormalization '", n.label(), "' input '", n.inputs[j],
                             "' is not an f32 initializer of ", c, " values"));
                    return true;
                }
                if (uses.at(n.inputs[j]) != 1) {
                    fail(cat("BatchNormalization parameter '", n.inputs[j], "' is shared"));
                    return true;
                }
                grp.cuts.push_back({n.inputs[j], 0, 1});
            }
            add_value(n.outputs[0]);
        } else if (binary(n) && n.inputs.size() == 2) {
            const std::string& other = n.inputs[0] == v ? n.inputs[1] : n.inputs[0];
            const Tensor* t = g.find_initializer(other);
            if (grp.values.count(other) || scalar_constant(g, other, producer) ||
                add_producer(other)) {
                add_value(n.outputs[0]);
            } else if (t && !grp.channel_axis_one && t->dtype == DType::F32 && !t->is_encoded() &&
                       t->element_count() == c && t->shape.back() == c) {
                // A per-neuron bias (BERT's MatMul + Add): cut alike.
                if (uses.at(other) != 1) {
                    fail(cat("'", other, "' added by '", n.label(), "' is shared"));
                    return true;
                }
                grp.cuts.push_back({other, static_cast<int>(t->shape.size()) - 1, 1});
                add_value(n.outputs[0]);
            } else {
                return false;
            }
        } else if ((is_onnx_op(n, "Conv") || is_onnx_op(n, "MatMul") || is_onnx_op(n, "Gemm")) &&
                   n.inputs[0] == v) {
            if (grp.channel_axis_one != is_onnx_op(n, "Conv"))
                fail(cat("feeds ", n.op_type, " '", n.label(), "' along another axis"));
            else
                consumer_layer(i, 1), grp.read_value = v;
        } else if (grp.channel_axis_one &&
                   ((is_onnx_op(n, "Flatten") && n.attr_int("axis", 1) == 1) ||
                    (is_onnx_op(n, "Reshape") && n.inputs.size() == 2)) &&
                   n.inputs[0] == v) {
            flatten(i, v);
        } else {
            fail(cat("feeds ", n.op_type, " '", n.label(), "'",
                     is_onnx_op(n, "Reshape") ? " (attention heads or another layout)" : ""));
        }
        return true;
    };

    bool progress = true;
    while (progress && grp.skip.empty()) {
        progress = false;
        while (!queue.empty() && grp.skip.empty()) {
            std::string v = queue.back();
            queue.pop_back();
            progress = true;
            if (graph_outputs.count(v)) fail(cat("'", v, "' is a graph output"));
            auto it = users.find(v);
            if (it == users.end()) continue;
            for (size_t i : it->second) {
                if (done.count(i)) continue;
                if (visit(i, v))
                    done.insert(i);
                else
                    pending.push_back(i);
            }
        }
        std::vector<size_t> again;
        for (size_t i : pending) {
            if (done.count(i) || !grp.skip.empty()) continue;
            const Node& n = g.nodes[i];
            const std::string& v = grp.values.count(n.inputs[0]) ? n.inputs[0] : n.inputs[1];
            if (visit(i, v)) {
                done.insert(i);
                progress = true;
            } else {
                again.push_back(i);
            }
        }
        pending = std::move(again);
    }
    if (grp.skip.empty() && !pending.empty()) {
        const Node& n = g.nodes[pending[0]];
        fail(cat("feeds ", n.op_type, " '", n.label(), "' with an input outside the group"));
    }
    if (grp.skip.empty() && grp.consumers.empty()) fail("no layer reads its channels");
    if (!grp.skip.empty()) return grp;

    // Producers' weights and biases, consumers' weights: plain, used once.
    for (const auto& p : grp.producers) {
        grp.cuts.push_back({p.weight, out_axis(p.kind), 1});
        if (!p.bias.empty()) {
            const Tensor* b = g.find_initializer(p.bias);
            if (b->element_count() == c)
                grp.cuts.push_back({p.bias, static_cast<int>(b->shape.size()) - 1, 1});
            else if (b->element_count() != 1)
                fail(cat("bias '", p.bias, "' of '", g.nodes[p.node].label(),
                         "' is not per channel"));
        }
    }
    for (const auto& q : grp.consumers)
        grp.cuts.push_back({q.layer.weight, in_axis(q.layer.kind), q.block});
    for (const auto& cut : grp.cuts)
        if (uses.at(cut.tensor) != 1) fail(cat("'", cut.tensor, "' is used by more than one node"));
    return grp;
}

// `t` with the channels `kept` (of its `cut`) only.
Tensor slice_tensor(const Tensor& t, const Cut& cut, const std::vector<int64_t>& kept) {
    const int axis = cut.axis;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= t.shape[static_cast<size_t>(i)];
    for (size_t i = static_cast<size_t>(axis) + 1; i < t.shape.size(); ++i) inner *= t.shape[i];
    const int64_t along = t.shape[static_cast<size_t>(axis)];
    const int64_t new_along = static_cast<int64_t>(kept.size()) * cut.block;
    auto src = t.values<float>();
    std::vector<float> out(static_cast<size_t>(outer * new_along * inner));
    size_t w = 0;
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t ch : kept)
            for (int64_t b = 0; b < cut.block; ++b) {
                const float* from = src.data() + (o * along + ch * cut.block + b) * inner;
                std::copy_n(from, inner, out.begin() + static_cast<int64_t>(w));
                w += static_cast<size_t>(inner);
            }
    auto shape = t.shape;
    shape[static_cast<size_t>(axis)] = new_along;
    Tensor s = make_f32_tensor(t.name, shape, out);
    s.doc_string = t.doc_string;
    return s;
}

// The weight of `l` as a [K, O] matrix in double.
Eigen::MatrixXd weight_matrix(const Tensor& w, const Layer& l) {
    auto v = w.values<float>();
    Eigen::MatrixXd m(l.k, l.o);
    const bool ko = l.kind == LayerKind::MatMul || l.kind == LayerKind::Gemm;
    for (int64_t k = 0; k < l.k; ++k)
        for (int64_t o = 0; o < l.o; ++o)
            m(k, o) = v[static_cast<size_t>(ko ? k * l.o + o : o * l.k + k)];
    return m;
}

void store_weight(Tensor& w, const Layer& l, const Eigen::MatrixXd& m) {
    std::vector<float> out(static_cast<size_t>(l.k * l.o));
    const bool ko = l.kind == LayerKind::MatMul || l.kind == LayerKind::Gemm;
    for (int64_t k = 0; k < l.k; ++k)
        for (int64_t o = 0; o < l.o; ++o)
            out[static_cast<size_t>(ko ? k * l.o + o : o * l.k + k)] = static_cast<float>(m(k, o));
    Tensor t = make_f32_tensor(w.name, w.shape, out);
    t.doc_string = w.doc_string;
    w = std::move(t);
}

// The rows a layer multiplies its weight with: im2col patches for a 2-D Conv, else the
// input's rows of K values. Row-major [rows, K] in double.
Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> layer_rows(const Node& n,
                                                                                  const Layer& l,
                                                                                  const Tensor& x) {
    std::vector<float> v = x.to_floats();
    using Rows = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    if (l.kind != LayerKind::Conv) {
        const int64_t rows = static_cast<int64_t>(v.size()) / l.k;
        Rows r(rows, l.k);
        for (int64_t i = 0; i < rows * l.k; ++i) r.data()[i] = v[static_cast<size_t>(i)];
        return r;
    }
    const int64_t batch = x.shape[0], ch = x.shape[1], h = x.shape[2], wd = x.shape[3];
    auto ks = n.attr_ints("kernel_shape");
    auto st = n.attr_ints("strides");
    auto dl = n.attr_ints("dilations");
    auto pd = n.attr_ints("pads");
    const int64_t kh = ks.size() == 2 ? ks[0] : 1, kw = ks.size() == 2 ? ks[1] : 1;
    const int64_t sh = st.size() == 2 ? st[0] : 1, sw = st.size() == 2 ? st[1] : 1;
    const int64_t dh = dl.size() == 2 ? dl[0] : 1, dw = dl.size() == 2 ? dl[1] : 1;
    const int64_t ph = pd.size() == 4 ? pd[0] : 0, pw = pd.size() == 4 ? pd[1] : 0;
    const int64_t pe = pd.size() == 4 ? pd[2] : 0, pr = pd.size() == 4 ? pd[3] : 0;
    const int64_t oh = (h + ph + pe - dh * (kh - 1) - 1) / sh + 1;
    const int64_t ow = (wd + pw + pr - dw * (kw - 1) - 1) / sw + 1;
    Rows r = Rows::Zero(batch * oh * ow, ch * kh * kw);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t xo = 0; xo < ow; ++xo) {
                const int64_t row = (b * oh + y) * ow + xo;
                for (int64_t c = 0; c < ch; ++c)
                    for (int64_t i = 0; i < kh; ++i)
                        for (int64_t j = 0; j < kw; ++j) {
                            const int64_t iy = y * sh - ph + i * dh, ix = xo * sw - pw + j * dw;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                            r(row, (c * kh + i) * kw + j) =
                                v[static_cast<size_t>(((b * ch + c) * h + iy) * wd + ix)];
                        }
            }
    return r;
}

bool conv_2d_plain(const Node& n, const Tensor& w) {
    if (w.shape.size() != 4 || n.attr_ints("kernel_shape").size() != 2) return false;
    std::string pad = n.attr_string("auto_pad", "NOTSET");
    return pad == "NOTSET" || pad.empty();
}

rt::ExecOptions exec_options(const PassContext& context) {
    rt::ExecOptions eo;
    eo.threads = std::max(1, context.threads);
    return eo;
}

class PruneStructured final : public Pass {
  public:
    std::string_view name() const override { return "prune-structured"; }
    PassKind kind() const override { return PassKind::Pruning; }
    std::string_view description() const override {
        return "removes Conv output channels and MatMul / Gemm neurons with the tensors that "
               "read them (smaller shapes), least-squares re-fitting the next layer";
    }
    uint32_t needs() const override {
        return kNeedsGraph |
               (reconstruct_ || importance_ == Importance::Activation ? kNeedsCalibrationData
                                                                      : kNeedsNothing);
    }
    bool writes_encoded_weights() const override { return false; }
    std::vector<OptionSpec> option_specs() const override {
        return {
            {"sparsity",
             OptionType::Number,
             0.3,
             "fraction of each group's channels / neurons removed (rounded; at least one kept)",
             {},
             0.0,
             1.0},
            {"importance",
             OptionType::String,
             "l1",
             "channel score: l1 / l2 norm of the producers' weights, or activation (mean "
             "|activation| on calibration data)",
             {"l1", "l2", "activation"}},
            {"reconstruct",
             OptionType::Bool,
             true,
             "least-squares re-fit of each consumer layer on calibration data",
             {}},
            {"round_to",
             OptionType::Int,
             1,
             "kept channels rounded up to a multiple of this (8 or 16 suit SIMD kernels)",
             {},
             1,
             4096},
            {"ridge",
             OptionType::Number,
             1e-3,
             "reconstruction ridge, relative to the mean diagonal of X^T X",
             {},
             0.0,
             1e6},
        };
    }

    void configure(const nlohmann::json& o) override {
        selector_ = Selector::from_options(o);
        sparsity_ = o.value("sparsity", 0.3);
        if (!(sparsity_ >= 0.0 && sparsity_ < 1.0))
            throw InputError(cat("sparsity: ", o.value("sparsity", 0.3),
                                 " is out of range (expected 0 <= sparsity < 1)"));
        std::string imp = o.value("importance", std::string("l1"));
        if (imp == "l1")
            importance_ = Importance::L1;
        else if (imp == "l2")
            importance_ = Importance::L2;
        else if (imp == "activation")
            importance_ = Importance::Activation;
        else
            throw InputError(
                cat("importance: ", imp, " is not supported (expected l1, l2 or activation)"));
        reconstruct_ = o.value("reconstruct", true);
        round_to_ = o.value("round_to", int64_t{1});
        if (round_to_ < 1)
            throw InputError(cat("round_to: ", round_to_, " is out of range (expected >= 1)"));
        ridge_ = o.value("ridge", 1e-3);
        if (!(ridge_ >= 0.0 && std::isfinite(ridge_)))
            throw InputError(cat("ridge: ", ridge_, " is out of range (expected >= 0)"));
    }

    std::vector<std::string> plan(const Model& model) const override {
        std::vector<std::string> lines;
        auto [groups, skipped] = find_groups(model.graph);
        for (const auto& grp : groups) lines.push_back(group_line(model.graph, grp));
        for (const auto& s : skipped) lines.push_back(cat("skip ", s.name, ": ", s.reason));
        if (groups.empty()) lines.push_back("nothing to prune");
        return lines;
    }

    PassResult run(Model& model, PassContext& context) override {
        PassResult result;
        auto [groups, skipped] = find_groups(model.graph);
        result.skipped = skipped;
        if (groups.empty()) return result;
        const Model original = model;
        Model work = model;
        Graph& g = work.graph;

        // Importance and the kept channels.
        std::vector<std::vector<double>> scores(groups.size());
        if (importance_ == Importance::Activation)
            scores = activation_scores(original, groups, context);
        else
            for (size_t i = 0; i < groups.size(); ++i) scores[i] = norm_scores(g, groups[i]);
        for (size_t i = 0; i < groups.size(); ++i) {
            auto& grp = groups[i];
            const int64_t c = grp.channels;
            const int64_t keep = kept_count(c);
            std::vector<int64_t> order(static_cast<size_t>(c));
            std::iota(order.begin(), order.end(), 0);
            const auto& s = scores[i];
            std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
                return s[static_cast<size_t>(a)] > s[static_cast<size_t>(b)];
            });
            grp.kept.assign(order.begin(), order.begin() + keep);
            std::sort(grp.kept.begin(), grp.kept.end());
        }

        // The rewrite: slice every cut tensor, the Reshape constants, drop stale value_info.
        std::map<std::string, uint64_t> before_bytes;
        std::map<std::string, std::pair<const Group*, std::string>> touched;  // weight -> group, op
        for (const auto& grp : groups) {
            for (const auto& cut : grp.cuts) {
                Tensor* t = g.find_initializer(cut.tensor);
                if (!before_bytes.count(cut.tensor)) before_bytes[cut.tensor] = t->expected_bytes();
                *t = slice_tensor(*t, cut, grp.kept);
            }
            for (const auto& p : grp.producers)
                touched.emplace(p.weight, std::make_pair(&grp, layer_op(p.kind)));
            for (const auto& q : grp.consumers)
                touched.emplace(q.layer.weight, std::make_pair(&grp, layer_op(q.layer.kind)));
            for (const auto& [shape_name, block] : grp.reshape_shapes)
                rewrite_shape(g, shape_name, static_cast<int64_t>(grp.kept.size()) * block);
            std::erase_if(g.value_info,
                          [&](const ValueInfo& vi) { return grp.values.count(vi.name) > 0; });
            result.summary.push_back(cat(group_label(g, grp), ": ", grp.channels, " -> ",
                                         grp.kept.size(), " ", grp.pattern, " by ",
                                         importance_name(importance_)));
        }

        if (reconstruct_) reconstruct(original, work, groups, context, result);

        for (const auto& [weight, what] : touched) {
            const Tensor* t = g.find_initializer(weight);
            const Tensor* o = original.graph.find_initializer(weight);
            PrunedTensor p;
            p.name = weight;
            p.op = what.second;
            p.method = std::string(importance_name(importance_));
            p.pattern = what.first->pattern;
            p.sparsity = 1.0 - static_cast<double>(t->element_count()) /
                                   static_cast<double>(std::max<int64_t>(o->element_count(), 1));
            p.storage = "removed";
            p.input_bytes = before_bytes.count(weight) ? before_bytes[weight] : o->expected_bytes();
            p.output_bytes = t->expected_bytes();
            result.pruned.push_back(std::move(p));
        }
        result.changed = true;
        result.rewrites = before_bytes.size();
        result.shapes_still_valid = false;
        model = std::move(work);
        return result;
    }

  private:
    // Every prunable group of the main graph, and the producers that are not.
    std::pair<std::vector<Group>, std::vector<Skipped>> find_groups(const Graph& g) const {
        std::unordered_map<std::string, std::vector<size_t>> users;
        for (size_t i = 0; i < g.nodes.size(); ++i)
            for (const auto& in : g.nodes[i].inputs)
                if (!in.empty() && (users[in].empty() || users[in].back() != i))
                    users[in].push_back(i);
        const auto producer = g.producers();
        const auto uses = g.use_counts();
        std::unordered_set<std::string> outputs;
        for (const auto& o : g.outputs) outputs.insert(o.name);

        std::vector<Group> groups;
        std::vector<Skipped> skipped;
        std::set<size_t> grouped;
        for (size_t i = 0; i < g.nodes.size(); ++i) {
            if (grouped.count(i)) continue;
            const Node& n = g.nodes[i];
            if (!is_onnx_op(n, "Conv") && !is_onnx_op(n, "MatMul") && !is_onnx_op(n, "Gemm"))
                continue;
            if (n.inputs.size() < 2 || !g.find_initializer(n.inputs[1])) continue;
            auto layer = as_layer(g, i);
            if (!layer) {
                skipped.push_back(
                    {n.inputs[1],
                     "not an f32 weight of a Conv (group 1) / MatMul / Gemm (transA 0)"});
                continue;
            }
            if (!selector_.selects(layer->weight)) continue;
            Group grp = find_group(g, *layer, users, producer, uses, outputs);
            for (const auto& p : grp.producers) grouped.insert(p.node);
            std::string label = group_label(g, grp);
            if (grp.skip.empty())
                for (const auto& p : grp.producers)
                    if (!selector_.selects(p.weight))
                        grp.skip = cat("'", p.weight, "' of the same group is not selected");
            if (grp.skip.empty() && grp.channels < 2) grp.skip = "a single channel";
            if (!grp.skip.empty()) {
                skipped.push_back({label, grp.skip});
                continue;
            }
            groups.push_back(std::move(grp));
        }
        return {std::move(groups), std::move(skipped)};
    }

    static std::string group_label(const Graph& g, const Group& grp) {
        (void)g;
        std::string s;
        for (const auto& p : grp.producers) s += (s.empty() ? "" : " + ") + p.weight;
        return s;
    }

    // Channels kept of c: c - round(sparsity * c), at least 1, rounded up to a multiple of
    // round_to (at most c).
    int64_t kept_count(int64_t c) const {
        const int64_t remove =
            std::min<int64_t>(std::llround(sparsity_ * static_cast<double>(c)), c - 1);
        const int64_t keep = c - remove;
        return std::min(c, (keep + round_to_ - 1) / round_to_ * round_to_);
    }

    std::string group_line(const Graph& g, const Group& grp) const {
        const int64_t c = grp.channels;
        std::string consumers;
        for (const auto& q : grp.consumers)
            consumers += (consumers.empty() ? "" : ", ") + q.layer.weight;
        return cat("prune ", group_label(g, grp), ": ", c, " -> ", kept_count(c), " ",
                   layer_op(grp.producers[0].kind), " ", grp.pattern, " by ",
                   importance_name(importance_), "; consumers ", consumers,
                   reconstruct_ ? " (reconstructed)" : "");
    }

    std::vector<double> norm_scores(const Graph& g, const Group& grp) const {
        std::vector<double> s(static_cast<size_t>(grp.channels), 0.0);
        for (const auto& p : grp.producers) {
            const Tensor* w = g.find_initializer(p.weight);
            auto v = w->values<float>();
            std::vector<double> acc(s.size(), 0.0);
            for (int64_t k = 0; k < p.k; ++k)
                for (int64_t o = 0; o < p.o; ++o) {
                    const bool ko = out_axis(p.kind) == 1;
                    const double x = v[static_cast<size_t>(ko ? k * p.o + o : o * p.k + k)];
                    acc[static_cast<size_t>(o)] +=
                        importance_ == Importance::L1 ? std::fabs(x) : x * x;
                }
            for (size_t o = 0; o < s.size(); ++o)
                s[o] += importance_ == Importance::L1 ? acc[o] : std::sqrt(acc[o]);
        }
        return s;
    }

    std::vector<std::vector<double>> activation_scores(const Model& model,
                                                       const std::vector<Group>& groups,
                                                       PassContext& context) const {
        rt::Executor exec(model, exec_options(context));
        auto samples = context.calibration->open_nonempty(exec);
        std::vector<std::string> fetch;
        for (const auto& grp : groups) fetch.push_back(grp.read_value);
        std::vector<std::vector<double>> sums(groups.size());
        std::vector<double> counts(groups.size(), 0.0);
        auto step = progress_step(context.progress, "calibration", samples->size(), "samples");
        for (size_t s = 0; s < samples->size(); ++s) {
            auto outputs = exec.run(samples->load(s), fetch);
            for (size_t gi = 0; gi < groups.size(); ++gi) {
                const auto& grp = groups[gi];
                const Tensor* t = nullptr;
                for (const auto& [name, value] : outputs)
                    if (name == grp.read_value) t = &value;
                if (!t)
                    throw InternalError(
                        cat("prune-structured: '", grp.read_value, "' not returned"));
                std::vector<float> v = t->to_floats();
                const int64_t c = grp.channels;
                int64_t inner = 1;  // elements per channel run
                if (grp.channel_axis_one)
                    for (size_t d = 2; d < t->shape.size(); ++d) inner *= t->shape[d];
                auto& sum = sums[gi];
                sum.resize(static_cast<size_t>(c), 0.0);
                for (size_t e = 0; e < v.size(); ++e) {
                    const size_t ch = static_cast<size_t>((static_cast<int64_t>(e) / inner) % c);
                    sum[ch] += std::fabs(static_cast<double>(v[e]));
                }
                counts[gi] += static_cast<double>(v.size()) / static_cast<double>(c);
            }
            step.advance();
        }
        for (size_t gi = 0; gi < groups.size(); ++gi)
            for (auto& x : sums[gi]) x /= std::max(counts[gi], 1.0);
        return sums;
    }

    static void rewrite_shape(Graph& g, const std::string& name, int64_t width) {
        Tensor* t = g.find_initializer(name);
        if (!t) {
            for (auto& n : g.nodes)
                if (is_onnx_op(n, "Constant") && n.outputs[0] == name)
                    for (auto& a : n.attributes)
                        if (a.name == "value") t = &a.tensors[0];
        }
        auto v = t->values<int64_t>();
        std::vector<int64_t> shape(v.begin(), v.end());
        shape[1] = width;
        std::vector<std::byte> bytes(shape.size() * sizeof(int64_t));
        std::memcpy(bytes.data(), shape.data(), bytes.size());
        t->data = TensorData::owned(std::move(bytes));
    }

    // The least-squares re-fit of every consumer, in graph order.
    void reconstruct(const Model& original, Model& work, const std::vector<Group>& groups,
                     PassContext& context, PassResult& result) const {
        // Kept input channels (with block) and kept output channels of each consumer weight.
        struct Fit {
            const Consumer* consumer;
            const Group* group;
            std::vector<int64_t> kept_out;  // empty: all
        };
        std::vector<Fit> fits;
        for (const auto& grp : groups)
            for (const auto& q : grp.consumers) fits.push_back({&q, &grp, {}});
        for (auto& f : fits)
            for (const auto& grp : groups)
                for (const auto& p : grp.producers)
                    if (p.weight == f.consumer->layer.weight) f.kept_out = grp.kept;
        std::sort(fits.begin(), fits.end(), [](const Fit& a, const Fit& b) {
            return a.consumer->layer.node < b.consumer->layer.node;
        });

        const rt::ExecOptions eo = exec_options(context);
        rt::Executor exec_o(original, eo);
        auto samples = context.calibration->open_nonempty(exec_o);
        auto step = progress_step(context.progress, "reconstruction", fits.size() * samples->size(),
                                  "samples");
        size_t refit = 0;
        for (const auto& f : fits) {
            const Layer& lo = f.consumer->layer;  // original shapes
            const Node& node = original.graph.nodes[lo.node];
            const Tensor* w_orig = original.graph.find_initializer(lo.weight);
            if (lo.kind == LayerKind::Conv && !conv_2d_plain(node, *w_orig)) {
                result.warnings.push_back(cat("prune-structured: '", lo.weight,
                                              "' not reconstructed (only a 2-D Conv with "
                                              "kernel_shape and without auto_pad)"));
                step.advance(samples->size());
                continue;
            }
            auto cur_layer = as_layer(work.graph, lo.node);
            const Layer& lp = *cur_layer;
            // Target weight: the original's kept output columns (+ bias row).
            Eigen::MatrixXd wo = weight_matrix(*w_orig, lo);
            std::vector<int64_t> outs = f.kept_out;
            if (outs.empty()) {
                outs.resize(static_cast<size_t>(lo.o));
                std::iota(outs.begin(), outs.end(), 0);
            }
            const bool bias = !lo.bias.empty();
            Eigen::MatrixXd target(lo.k + (bias ? 1 : 0), static_cast<int64_t>(outs.size()));
            std::vector<float> b_orig =
                bias ? original.graph.find_initializer(lo.bias)->to_floats() : std::vector<float>{};
            if (bias && b_orig.size() != static_cast<size_t>(lo.o)) {
                result.warnings.push_back(cat("prune-structured: '", lo.weight,
                                              "' not reconstructed (its bias is not per output)"));
                step.advance(samples->size());
                continue;
            }
            for (size_t j = 0; j < outs.size(); ++j) {
                target.col(static_cast<int64_t>(j)).head(lo.k) = wo.col(outs[j]);
                if (bias)
                    target(lo.k, static_cast<int64_t>(j)) = b_orig[static_cast<size_t>(outs[j])];
            }
            const int64_t kp = lp.k + (bias ? 1 : 0);
            Eigen::MatrixXd a = Eigen::MatrixXd::Zero(kp, kp);
            Eigen::MatrixXd rhs = Eigen::MatrixXd::Zero(kp, target.cols());
            double yy = 0.0;
            rt::Executor exec_p(work, eo);
            const std::string& in = node.inputs[0];
            for (size_t s = 0; s < samples->size(); ++s) {
                rt::NamedTensors inputs = samples->load(s);
                auto find = [&](const rt::NamedTensors& outs_,
                                const rt::NamedTensors& ins) -> const Tensor& {
                    for (const auto& [name, value] : outs_)
                        if (name == in) return value;
                    for (const auto& [name, value] : ins)
                        if (name == in) return value;
                    throw InternalError(cat("prune-structured: '", in, "' not returned"));
                };
                auto ro = exec_o.run(inputs, {in});
                auto rp = exec_p.run(inputs, {in});
                auto xo = layer_rows(node, lo, find(ro, inputs));
                auto xp = layer_rows(work.graph.nodes[lo.node], lp, find(rp, inputs));
                Eigen::MatrixXd y = xo * target.topRows(lo.k);
                if (bias) y.rowwise() += target.row(lo.k);
                Eigen::MatrixXd xa(xp.rows(), kp);
                xa.leftCols(lp.k) = xp;
                if (bias) xa.col(lp.k).setOnes();
                a.noalias() += xa.transpose() * xa;
                rhs.noalias() += xa.transpose() * y;
                yy += y.squaredNorm();
                step.advance();
            }
            // The sliced weight (no re-fit) for the error before.
            Eigen::MatrixXd sliced(kp, target.cols());
            {
                const Tensor* w_now = work.graph.find_initializer(lp.weight);
                sliced.topRows(lp.k) = weight_matrix(*w_now, lp);
                if (bias) {
                    auto bn = work.graph.find_initializer(lp.bias)->to_floats();
                    for (int64_t j = 0; j < sliced.cols(); ++j)
                        sliced(lp.k, j) = bn[static_cast<size_t>(j)];
                }
            }
            auto err = [&](const Eigen::MatrixXd& w) {
                double e =
                    (w.transpose() * a * w).trace() - 2.0 * (w.transpose() * rhs).trace() + yy;
                return std::max(e, 0.0) / std::max(yy, 1e-300);
            };
            Eigen::MatrixXd reg = a;
            const double lambda = ridge_ * a.diagonal().head(lp.k).mean();
            for (int64_t k = 0; k < lp.k; ++k) reg(k, k) += std::max(lambda, 1e-12);
            Eigen::LDLT<Eigen::MatrixXd> ldlt(reg);
            Eigen::MatrixXd solved = ldlt.solve(rhs);
            if (ldlt.info() != Eigen::Success || !solved.allFinite()) {
                result.warnings.push_back(
                    cat("prune-structured: '", lp.weight,
                        "' not reconstructed: the least-squares system is singular"));
                continue;
            }
            const double before = err(sliced), after = err(solved);
            if (after > before) {
                result.warnings.push_back(
                    cat("prune-structured: '", lp.weight,
                        "' kept as sliced: the re-fit scored worse on calibration data"));
                continue;
            }
            store_weight(*work.graph.find_initializer(lp.weight), lp, solved.topRows(lp.k));
            if (bias) {
                Tensor* b = work.graph.find_initializer(lp.bias);
                std::vector<float> bv(static_cast<size_t>(solved.cols()));
                for (int64_t j = 0; j < solved.cols(); ++j)
                    bv[static_cast<size_t>(j)] = static_cast<float>(solved(lp.k, j));
                Tensor nb = make_f32_tensor(b->name, b->shape, bv);
                nb.doc_string = b->doc_string;
                *b = std::move(nb);
            }
            ++refit;
            result.summary.push_back(cat("reconstructed ", lp.weight, ": relative output error ",
                                         format_error(before), " -> ", format_error(after)));
        }
        result.calibration = CalibrationRecord{};
        result.calibration->method = "least-squares";
        result.calibration->synthetic = context.calibration->synthetic();
        result.calibration->samples = samples->size();
        result.calibration->description = samples->describe();
        result.calibration->solved = refit;
    }

    static std::string format_error(double e) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.4g", e);
        return buf;
    }

    Selector selector_;
    double sparsity_ = 0.3;
    Importance importance_ = Importance::L1;
    bool reconstruct_ = true;
    int64_t round_to_ = 1;
    double ridge_ = 1e-3;
};

}  // namespace

std::unique_ptr<Pass> make_prune_structured_pass() {
    return std::make_unique<PruneStructured>();
}

}  // namespace ep
