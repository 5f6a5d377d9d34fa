// fold-batchnorm: folds an inference-form BatchNormalization into the Conv, ConvTranspose
// or Gemm that feeds it.
//
// Before:  P(x, W[, b]) -> "t";  BatchNormalization("t", scale, B, mean, var) -> "y"
// After:   P(x, W', b') -> "y"                            (BN removed, same output name)
//
// With eps = the BN's `epsilon` (default 1e-5) and per output channel o:
//   s[o]  = scale[o] / sqrt(var[o] + eps)
//   b'[o] = (b[o] - mean[o]) * s[o] + B[o]            (b = 0 when P had no bias)
//   Conv           W [M, C/group, k...]:   W'[o, ...] = W[o, ...] * s[o]
//   ConvTranspose  W [C_in, M/group, k...]: output channel of W[c, j, ...] is
//                  o = (c / (C_in/group)) * (M/group) + j, and W'[c, j, ...] = W[c, j, ...] * s[o]
//   Gemm           Y = alpha * A' * B' + beta * C, output channels are the columns of Y:
//                  transB = 0: B [K, M], B'[k, o] = B[k, o] * s[o]
//                  transB = 1: B [M, K], B'[o, k] = B[o, k] * s[o]
//                  C' = (beta * C - mean) * s + B (C broadcast to [M]), and beta becomes 1.
// Arithmetic is in double; results are stored in the weight's dtype (f32, f16, bf16, f64).
// A bias input is created when P had none.
//
// Preconditions, all checked before anything changes (a BN that fails one is kept, counted
// and reported with the reason): the BN is in inference form (5 inputs, 1 output, no
// training_mode); its input comes from a Conv/ConvTranspose/Gemm of the same graph whose
// output feeds only this BN (not a graph output); W, the bias and the four BN parameters
// are float initializers of this graph (not graph inputs: those can be overridden at run
// time) with matching channel counts; var + eps > 0. Weights or biases that another node
// also uses are copied to a new initializer ("<name>_bnfold") instead of being changed in
// place. A created bias is named "<weights>_bias". BN parameters left unused afterwards are
// removed.
//
// Selection: include/exclude match the BatchNormalization node's name. The pass does not
// look through Constant nodes: run promote-constants first on models that store weights
// as Constants (PP-OCR does). Chains (Conv -> BN -> BN) fold in successive rounds.
// Subgraphs are handled like the main graph, with their own initializers.
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "ir/ir.h"
#include "passes/pass.h"
#include "passes/selector.h"

namespace ep {

namespace {

bool is_onnx_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

bool is_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

std::vector<double> to_doubles(const Tensor& t) {
    size_t n = static_cast<size_t>(t.element_count());
    std::vector<double> out(n);
    switch (t.dtype) {
        case DType::F64: {
            auto v = t.values<double>();
            for (size_t i = 0; i < n; ++i) out[i] = v[i];
            break;
        }
        case DType::F32: {
            auto v = t.values<float>();
            for (size_t i = 0; i < n; ++i) out[i] = v[i];
            break;
        }
        case DType::F16: {
            auto v = t.values<uint16_t>();
            for (size_t i = 0; i < n; ++i) out[i] = half_to_float(v[i]);
            break;
        }
        case DType::BF16: {
            auto v = t.values<uint16_t>();
            for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(v[i]);
            break;
        }
        default:
            throw InternalError(cat("fold-batchnorm: tensor '", t.name, "' is not float"));
    }
    return out;
}

Tensor from_doubles(std::string name, DType dtype, std::vector<int64_t> shape,
                    const std::vector<double>& values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    size_t width = static_cast<size_t>(traits(dtype).bits / 8);
    std::vector<std::byte> bytes(values.size() * width);
    for (size_t i = 0; i < values.size(); ++i) {
        std::byte* p = bytes.data() + i * width;
        switch (dtype) {
            case DType::F64:
                std::memcpy(p, &values[i], 8);
                break;
            case DType::F32: {
                auto f = static_cast<float>(values[i]);
                std::memcpy(p, &f, 4);
                break;
            }
            case DType::F16: {
                uint16_t h = float_to_half(static_cast<float>(values[i]));
                std::memcpy(p, &h, 2);
                break;
            }
            case DType::BF16: {
                uint16_t h = float_to_bf16(static_cast<float>(values[i]));
                std::memcpy(p, &h, 2);
                break;
            }
            default:
                throw InternalError("fold-batchnorm: not a float dtype");
        }
    }
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

// A BN that passed every check: what to read and where to write.
struct Candidate {
    size_t bn = 0;
    size_t producer = 0;
    const Tensor* weight = nullptr;
    const Tensor* bias = nullptr;  // null when P has none
    const Tensor* params[4] = {};  // scale, B, mean, var
    double epsilon = 1e-5;
    int64_t channels = 0;
    bool copy_weight = false;  // W is used by another node too
    bool copy_bias = false;
};

// One BN's outcome: a candidate, or the reason it stays.
struct Check {
    size_t bn = 0;
    std::string label;
    std::optional<Candidate> candidate;
    std::string reason;
};

// The new tensors for one fold, computed before anything in the graph changes.
struct Edit {
    size_t bn = 0;
    size_t producer = 0;
    Tensor weight;  // named as W (in place) or a fresh name (copy)
    bool weight_is_new = false;
    Tensor bias;
    bool bias_is_new = false;
    std::vector<std::string> released;  // names that may have become unused
};

class GraphFacts {
  public:
    explicit GraphFacts(const Graph& g) : g_(g), producers_(g.producers()), uses_(g.use_counts()) {
        for (const auto& v : g.inputs) inputs_.insert(v.name);
        for (const auto& v : g.outputs) outputs_.insert(v.name);
    }

    // Why `name` is not a usable constant of this graph, or "" when it is.
    std::string not_constant(const std::string& what, const std::string& name) const {
        bool init = g_.find_initializer(name) != nullptr;
        if (init && inputs_.count(name))
            return cat(what, " '", name, "' is also a graph input (can be overridden at run time)");
        if (init) return {};
        auto p = producers_.find(name);
        if (p != producers_.end()) {
            const Node& n = g_.nodes[p->second];
            std::string hint = is_onnx_op(n, "Constant") ? "; run promote-constants first" : "";
            return cat(what, " '", name, "' not constant (produced by ", n.op_type, hint, ")");
        }
        if (inputs_.count(name)) return cat(what, " '", name, "' not constant (a graph input)");
        return cat(what, " '", name, "' not constant (not an initializer of this graph)");
    }

    const Graph& g_;
    std::unordered_map<std::string, size_t> producers_;
    std::unordered_map<std::string, size_t> uses_;
    std::unordered_set<std::string> inputs_;
    std::unordered_set<std::string> outputs_;
};

std::string float_problem(const std::string& what, const Tensor& t) {
    if (!is_float(t.dtype))
        return cat(what, " '", t.name, "' is ", dtype_name(t.dtype), ", not float");
    try {
        t.check_consistent();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

class FoldBatchNorm final : public Pass {
  public:
    std::string_view name() const override { return "fold-batchnorm"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override {
        return "fold BatchNormalization into the preceding Conv/ConvTranspose/Gemm";
    }
    uint32_t needs() const override { return kNeedsGraph; }
    void configure(const nlohmann::json& options) override {
        selector_ = Selector::from_options(options);
    }

    std::vector<std::string> plan(const Model& model) const override {
        std::vector<std::string> lines;
        plan_graph(model, model.graph, "", lines);
        if (lines.empty()) lines.push_back("no BatchNormalization nodes");
        return lines;
    }

    PassResult run(Model& model, PassContext&) override {
        PassResult result;
        std::unordered_set<std::string> taken;
        for_each_graph(model.graph, [&](const Graph& g) {
            for (const auto& v : g.inputs) taken.insert(v.name);
            for (const auto& t : g.initializers) taken.insert(t.name);
            for (const auto& n : g.nodes) taken.insert(n.outputs.begin(), n.outputs.end());
        });
        std::map<std::string, size_t> by_op;
        size_t copies = 0;
        run_graph(model, model.graph, "", taken, result, by_op, copies);
        result.changed = result.rewrites > 0;
        std::string into;
        for (const auto& [op, n] : by_op) into += cat(into.empty() ? "" : ", ", op, " ", n);
        result.summary.push_back(cat("folded ", result.rewrites, " BatchNormalization node",
                                     result.rewrites == 1 ? "" : "s",
                                     into.empty() ? "" : " (into " + into + ")"));
        if (copies)
            result.summary.push_back(cat("copied ", copies, " shared weight/bias tensor",
                                         copies == 1 ? "" : "s",
                                         " instead of changing them for their other users"));
        return result;
    }

  private:
    void plan_graph(const Model& model, const Graph& g, const std::string& where,
                    std::vector<std::string>& lines) const {
        for (const auto& c : check_graph(model, g)) {
            if (c.candidate) {
                const Node& p = g.nodes[c.candidate->producer];
                lines.push_back(cat(where, "fold '", c.label, "' into ", p.op_type, " '", p.label(),
                                    "' (", c.candidate->channels, " channels",
                                    c.candidate->copy_weight ? ", shared weights copied" : "",
                                    ")"));
            } else {
                lines.push_back(cat(where, "keep '", c.label, "': ", c.reason));
            }
        }
        for (const auto& n : g.nodes)
            for (const auto& a : n.attributes)
                for (const auto& sub : a.graphs)
                    plan_graph(model, sub, cat(where, "node ", n.label(), ".", a.name, ": "),
                               lines);
    }

    void run_graph(const Model& model, Graph& g, const std::string& where,
                   std::unordered_set<std::string>& taken, PassResult& result,
                   std::map<std::string, size_t>& by_op, size_t& copies) {
        // Subgraphs first: folding here moves this graph's nodes (and their subgraphs).
        for (auto& n : g.nodes)
            for (auto& a : n.attributes)
                for (auto& sub : a.graphs)
                    run_graph(model, sub, cat(where, "node ", n.label(), ".", a.name, ": "), taken,
                              result, by_op, copies);
        for (;;) {
            auto checks = check_graph(model, g);
            std::vector<Edit> edits;
            for (const auto& c : checks)
                if (c.candidate) edits.push_back(compute(g, *c.candidate, taken));
            if (edits.empty()) {
                for (const auto& c : checks) result.skipped.push_back({where + c.label, c.reason});
                return;
            }
            for (auto& e : edits) {
                ++by_op[g.nodes[e.producer].op_type];
                copies += e.released.size();
                apply(g, std::move(e));
                ++result.rewrites;
            }
            // Drop the folded BNs and the parameters nothing uses any more.
            std::unordered_set<size_t> folded;
            std::unordered_set<std::string> released;
            for (const auto& c : checks)
                if (c.candidate) folded.insert(c.bn);
            std::vector<Node> kept;
            for (size_t i = 0; i < g.nodes.size(); ++i) {
                if (!folded.count(i)) {
                    kept.push_back(std::move(g.nodes[i]));
                    continue;
                }
                for (size_t k = 1; k < g.nodes[i].inputs.size(); ++k)
                    released.insert(g.nodes[i].inputs[k]);
            }
            g.nodes = std::move(kept);
            for (const auto& name : released_names_) released.insert(name);
            released_names_.clear();
            auto uses = g.use_counts();
            std::unordered_set<std::string> inputs;
            for (const auto& v : g.inputs) inputs.insert(v.name);
            std::erase_if(g.initializers, [&](const Tensor& t) {
                return released.count(t.name) && !uses.count(t.name) && !inputs.count(t.name);
            });
        }
    }

    std::vector<Check> check_graph(const Model& model, const Graph& g) const {
        GraphFacts facts(g);
        std::vector<Check> out;
        for (size_t i = 0; i < g.nodes.size(); ++i) {
            const Node& bn = g.nodes[i];
            if (!is_onnx_op(bn, "BatchNormalization")) continue;
            Check c;
            c.bn = i;
            c.label = bn.label();
            Candidate cand;
            c.reason = check_one(model, facts, i, cand);
            if (c.reason.empty()) c.candidate = cand;
            out.push_back(std::move(c));
        }
        return out;
    }

    std::string check_one(const Model& model, const GraphFacts& f, size_t bn_index,
                          Candidate& cand) const {
        const Graph& g = f.g_;
        const Node& bn = g.nodes[bn_index];
        cand.bn = bn_index;
        if (!selector_.selects(bn.label())) return "not selected by include/exclude";
        if (model.opset("") != 0 && model.opset("") < 7)
            return cat("opset ", model.opset(""), " BatchNormalization is not supported (< 7)");
        if (bn.inputs.size() != 5) return cat("has ", bn.inputs.size(), " inputs, expected 5");
        for (const auto& in : bn.inputs)
            if (in.empty()) return "has an empty input";
        if (bn.outputs.empty() || bn.outputs[0].empty()) return "has no output";
        for (size_t k = 1; k < bn.outputs.size(); ++k)
            if (!bn.outputs[k].empty())
                return cat("training-mode BatchNormalization (", bn.outputs.size(), " outputs)");
        if (bn.attr_int("training_mode", 0) != 0) return "training_mode=1";
        if (bn.attr_int("spatial", 1) == 0) return "spatial=0 (per-element statistics)";

        const std::string& x = bn.inputs[0];
        auto pit = f.producers_.find(x);
        if (pit == f.producers_.end()) {
            if (f.inputs_.count(x))
                return cat("input '", x, "' is a graph input, not produced by ",
                           "Conv/ConvTranspose/Gemm");
            return cat("input '", x, "' is not produced by a node of this graph");
        }
        cand.producer = pit->second;
        const Node& p = g.nodes[cand.producer];
        bool conv = is_onnx_op(p, "Conv"), convt = is_onnx_op(p, "ConvTranspose"),
             gemm = is_onnx_op(p, "Gemm");
        if (!conv && !convt && !gemm)
            return cat("input produced by ", p.op_type, ", not Conv/ConvTranspose/Gemm");
        std::string kind = p.op_type;
        if (p.outputs.size() != 1) return cat(kind, " has ", p.outputs.size(), " outputs");
        if (f.outputs_.count(x)) return cat(kind, " output '", x, "' is also a graph output");
        auto u = f.uses_.find(x);
        size_t consumers = u == f.uses_.end() ? 0 : u->second;
        if (consumers != 1) return cat(kind, " output '", x, "' has ", consumers, " consumers");
        if (p.inputs.size() < 2 || p.inputs.size() > 3 || p.inputs[1].empty())
            return cat(kind, " has ", p.inputs.size(), " inputs");

        // Constant, float, consistent operands.
        if (auto r = f.not_constant("weights", p.inputs[1]); !r.empty()) return r;
        cand.weight = g.find_initializer(p.inputs[1]);
        if (auto r = float_problem("weights", *cand.weight); !r.empty()) return r;
        if (p.inputs.size() == 3 && !p.inputs[2].empty()) {
            if (auto r = f.not_constant("bias", p.inputs[2]); !r.empty()) return r;
            cand.bias = g.find_initializer(p.inputs[2]);
            if (auto r = float_problem("bias", *cand.bias); !r.empty()) return r;
            if (cand.bias->dtype != cand.weight->dtype)
                return cat("bias is ", dtype_name(cand.bias->dtype), " but weights are ",
                           dtype_name(cand.weight->dtype));
        }
        static const char* kParamNames[4] = {"scale", "B", "mean", "var"};
        for (int k = 0; k < 4; ++k) {
            const std::string& name = bn.inputs[static_cast<size_t>(k) + 1];
            std::string what = cat("BatchNormalization ", kParamNames[k]);
            if (auto r = f.not_constant(what, name); !r.empty()) return r;
            cand.params[k] = g.find_initializer(name);
            if (auto r = float_problem(what, *cand.params[k]); !r.empty()) return r;
            if (cand.params[k]->shape.size() != 1)
                return cat(what, " '", name, "' has shape ", shape_string(cand.params[k]->shape),
                           ", expected [C]");
        }
        cand.channels = cand.params[0]->shape[0];
        for (int k = 1; k < 4; ++k)
            if (cand.params[k]->shape[0] != cand.channels)
                return cat("BatchNormalization ", kParamNames[k], " has ", cand.params[k]->shape[0],
                           " channels, scale has ", cand.channels);

        // Channel layout of the weights.
        const auto& ws = cand.weight->shape;
        if (cand.channels == 0 || cand.weight->element_count() == 0)
            return cat("weights '", cand.weight->name, "' are empty");
        int64_t out_channels = 0;
        if (conv || convt) {
            if (ws.size() < 3)
                return cat("weights have shape ", shape_string(ws), ", expected rank >= 3");
            if (conv) {
                out_channels = ws[0];
            } else {
                int64_t group = p.attr_int("group", 1);
                if (group < 1 || ws[0] % group != 0)
                    return cat("group ", group, " does not divide the ", ws[0], " input channels");
                out_channels = ws[1] * group;
            }
        } else {
            if (ws.size() != 2)
                return cat("Gemm B has shape ", shape_string(ws), ", expected rank 2");
            out_channels = p.attr_int("transB", 0) ? ws[0] : ws[1];
        }
        if (out_channels != cand.channels)
            return cat(kind, " has ", out_channels, " output channels, BatchNormalization has ",
                       cand.channels);
        if (cand.bias) {
            const auto& bs = cand.bias->shape;
            bool ok = gemm ? (bs.size() <= 2 &&
                              (bs.empty() || bs.back() == 1 || bs.back() == cand.channels) &&
                              (bs.size() < 2 || bs[0] == 1))
                           : (bs.size() == 1 && bs[0] == cand.channels);
            if (!ok)
                return cat("bias '", cand.bias->name, "' has shape ", shape_string(bs),
                           gemm ? ", expected [M], [1, M] or a scalar" : ", expected [M]");
        }
        cand.epsilon = bn.attr_float("epsilon", 1e-5f);
        auto var = to_doubles(*cand.params[3]);
        for (size_t k = 0; k < var.size(); ++k)
            if (!(var[k] + cand.epsilon > 0.0)) return cat("var + epsilon <= 0 for channel ", k);

        auto used_elsewhere = [&](const std::string& name) {
            auto it = f.uses_.find(name);
            return it != f.uses_.end() && it->second > 1;
        };
        cand.copy_weight = used_elsewhere(cand.weight->name);
        cand.copy_bias = cand.bias && used_elsewhere(cand.bias->name);
        return {};
    }

    // `base` when no value has that name yet, else base_bnfold, base_bnfold1, ...
    std::string fresh_name(const std::string& base, std::unordered_set<std::string>& taken) {
        std::string name = base;
        if (taken.count(name)) name = base + "_bnfold";
        for (int k = 1; taken.count(name); ++k) name = cat(base, "_bnfold", k);
        taken.insert(name);
        return name;
    }

    Edit compute(const Graph& g, const Candidate& c, std::unordered_set<std::string>& taken) {
        const Node& p = g.nodes[c.producer];
        const auto m = static_cast<size_t>(c.channels);
        auto scale = to_doubles(*c.params[0]), beta_bn = to_doubles(*c.params[1]),
             mean = to_doubles(*c.params[2]), var = to_doubles(*c.params[3]);
        std::vector<double> s(m);
        for (size_t o = 0; o < m; ++o) s[o] = scale[o] / std::sqrt(var[o] + c.epsilon);

        Edit e;
        e.bn = c.bn;
        e.producer = c.producer;
        auto w = to_doubles(*c.weight);
        const auto& ws = c.weight->shape;
        if (is_onnx_op(p, "Conv")) {
            size_t inner = w.size() / m;
            for (size_t i = 0; i < w.size(); ++i) w[i] *= s[i / inner];
        } else if (is_onnx_op(p, "ConvTranspose")) {
            auto group = static_cast<size_t>(p.attr_int("group", 1));
            auto c_in = static_cast<size_t>(ws[0]), per_group_out = static_cast<size_t>(ws[1]);
            size_t in_per_group = c_in / group;
            size_t inner = c_in * per_group_out == 0 ? 0 : w.size() / (c_in * per_group_out);
            for (size_t ci = 0; ci < c_in; ++ci)
                for (size_t j = 0; j < per_group_out; ++j) {
                    double f = s[(ci / in_per_group) * per_group_out + j];
                    double* row = w.data() + (ci * per_group_out + j) * inner;
                    for (size_t k = 0; k < inner; ++k) row[k] *= f;
                }
        } else {  // Gemm
            bool trans_b = p.attr_int("transB", 0) != 0;
            auto rows = static_cast<size_t>(ws[0]), cols = static_cast<size_t>(ws[1]);
            for (size_t r = 0; r < rows; ++r)
                for (size_t k = 0; k < cols; ++k) w[r * cols + k] *= s[trans_b ? r : k];
        }
        e.weight_is_new = c.copy_weight;
        e.weight = from_doubles(c.copy_weight ? fresh_name(c.weight->name, taken) : c.weight->name,
                                c.weight->dtype, ws, w);
        if (c.copy_weight) e.released.push_back(c.weight->name);

        // Bias, broadcast to [M]; Gemm folds its beta in.
        std::vector<double> b(m, 0.0);
        if (c.bias) {
            auto old = to_doubles(*c.bias);
            double beta = is_onnx_op(p, "Gemm") ? p.attr_float("beta", 1.0f) : 1.0;
            for (size_t o = 0; o < m; ++o) b[o] = beta * (old.size() == 1 ? old[0] : old[o]);
        }
        for (size_t o = 0; o < m; ++o) b[o] = (b[o] - mean[o]) * s[o] + beta_bn[o];
        e.bias_is_new = !c.bias || c.copy_bias;
        std::string bias_name;
        if (c.bias && !c.copy_bias)
            bias_name = c.bias->name;
        else
            bias_name = fresh_name(c.bias ? c.bias->name : c.weight->name + "_bias", taken);
        if (c.bias && c.copy_bias) e.released.push_back(c.bias->name);
        e.bias = from_doubles(bias_name, c.weight->dtype, {c.channels}, b);
        return e;
    }

    void apply(Graph& g, Edit e) {
        Node& p = g.nodes[e.producer];
        Node& bn = g.nodes[e.bn];
        std::string old_output = p.outputs[0];
        std::string bias_name = e.bias.name;
        if (e.weight_is_new) {
            p.inputs[1] = e.weight.name;
            g.initializers.push_back(std::move(e.weight));
        } else {
            *g.find_initializer(e.weight.name) = std::move(e.weight);
        }
        if (e.bias_is_new)
            g.initializers.push_back(std::move(e.bias));
        else
            *g.find_initializer(e.bias.name) = std::move(e.bias);
        if (p.inputs.size() < 3) p.inputs.resize(3);
        p.inputs[2] = bias_name;
        if (is_onnx_op(p, "Gemm"))
            std::erase_if(p.attributes, [](const Attribute& a) { return a.name == "beta"; });
        p.outputs[0] = bn.outputs[0];
        std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == old_output; });
        for (auto& name : e.released) released_names_.push_back(std::move(name));
    }

    Selector selector_;
    std::vector<std::string> released_names_;  // copied originals, checked after a round
};

}  // namespace

std::unique_ptr<Pass> make_fold_batchnorm_pass() {
    return std::make_unique<FoldBatchNorm>();
}

}  // namespace ep
