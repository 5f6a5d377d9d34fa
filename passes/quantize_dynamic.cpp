// quantize-dynamic: int8 weights and int8 activations quantized at run time, for MatMul,
// Gemm and Conv. No calibration: each activation's scale and zero point are computed from
// the tensor itself on every run by DynamicQuantizeLinear (uint8, asymmetric):
//
//   x_scale = (max(x, 0) - min(x, 0)) / 255,   x_zp = saturate(round(-min(x, 0) / x_scale))
//   x_q     = saturate(round(x / x_scale) + x_zp)                              (uint8)
//
// Weights W (a constant float32 initializer) are quantized once, symmetric, per output
// channel (`per_channel`, default) or per tensor, to int8 (`weight_type`) or uint8:
//
//   d[c] = max|W[.., c]| / qmax   (qmax 127, or 63 with `reduce_range`; d = 1 for an all-zero
//                                  channel)
//   q    = clamp(round(W / d), -qmax, qmax) + z      (z = 0 for int8, 128 (64) for uint8;
//                                                     round: half away from zero, in float)
//
// Output channels: MatMul W [K, N] its columns; Gemm B its columns (transB = 0) or rows
// (transB = 1); Conv W [M, C/group, k...] axis 0.
//
// Two graph forms (`format`):
//   integer (default)  X -> DynamicQuantizeLinear -> (X_quantized, X_scale, X_zero_point)
//       MatMul:  MatMulInteger(X_quantized, W_quantized, X_zero_point, W_zero_point) -> int32
//                -> Cast(float) -> Mul(., X_scale * W_scale) -> Y
//       Gemm:    as MatMul with W_quantized = B (transB = 0) or B^T (transB = 1), alpha folded
//                into W_scale, then + beta * C (a new initializer C_scaled when beta != 1)
//       Conv:    ConvInteger(X_quantized, W_quantized, X_zero_point, W_zero_point) with the
//                Conv's attributes -> Cast -> Mul(., X_scale * W_scale[M, 1, ...]) -> + B[M, 1,
//                ...] -> Y
//       The weight zero point is one scalar (the codes are symmetric, so it is the same for
//       every channel): ONNX Runtime's ConvInteger refuses a per-channel zero point.
//   qdq                X -> DynamicQuantizeLinear -> DequantizeLinear -> X_DequantizeLinear_Output,
//                      W_quantized -> DequantizeLinear(W_scale, W_zero_point, axis) ->
//                      W_DequantizeLinear_Output, and the node itself reads both (unchanged
//                      otherwise: Gemm keeps alpha, beta, C and transB). ONNX Runtime fuses
//                      the pattern into its integer kernels.
//
// Names follow ONNX Runtime's quantizer: a quantized node keeps its name (the MatMulInteger /
// ConvInteger node, or the node itself in qdq) and its output value names; one
// DynamicQuantizeLinear per activation (`X_QuantizeLinear`, shared by every node reading X),
// weights `W_quantized`, `W_scale`, `W_zero_point`. A float weight no other node reads is
// removed. New nodes go right before the node they serve, so the order stays topological.
//
// Which nodes: op types in `op_types` (default MatMul, Gemm, Conv) in the main graph whose
// node name is selected by include/exclude, not named by keep_float() (the accuracy-aware
// fallback), whose weight input is a float32 initializer of the right rank that is not a
// graph input, and whose other input is not a constant. Every other node of those op types
// is skipped with its reason (an activation x activation MatMul such as attention scores,
// transA = 1, a non-constant bias, a node inside a subgraph). Preconditions that concern the
// whole model (the opset the inserted ops need) are checked in plan() and before run()
// changes anything.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ir/error.h"
#include "ir/ir.h"
#include "passes/pass.h"
#include "passes/selector.h"

namespace ep {

namespace {

constexpr int64_t kOnnxFloat = 1;  // TensorProto.FLOAT, Cast's `to`

bool is_onnx_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

Tensor make_tensor(std::string name, DType dtype, std::vector<int64_t> shape, const void* bytes,
                   size_t size) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    std::vector<std::byte> data(size);
    if (size) std::memcpy(data.data(), bytes, size);
    t.data = TensorData::owned(std::move(data));
    return t;
}

enum class Format : uint8_t { Integer, Qdq };

struct Options {
    Format format = Format::Integer;
    bool uint8_weights = false;
    bool per_channel = true;
    bool reduce_range = false;
    std::vector<std::string> op_types{"MatMul", "Gemm", "Conv"};

    [[nodiscard]] int qmax() const { return reduce_range ? 63 : 127; }
    [[nodiscard]] int zero() const { return uint8_weights ? qmax() + 1 : 0; }
    [[nodiscard]] DType weight_dtype() const { return uint8_weights ? DType::U8 : DType::I8; }
    [[nodiscard]] std::string encoding() const {
        return cat(uint8_weights ? "uint8" : "int8", per_channel ? " per channel" : " per tensor",
                   reduce_range ? " (7-bit range)" : "");
    }
};

// One node that passed every check: what to read and how to rewrite it.
struct Candidate {
    size_t node = 0;
    std::string op;  // MatMul, Gemm, Conv
    const Tensor* weight = nullptr;
    std::string activation;        // the input quantized at run time
    const Tensor* bias = nullptr;  // Conv B or Gemm C when constant
    std::string bias_value;        // Gemm C when not constant (beta == 1)
    bool trans_b = false;
    float alpha = 1.0f, beta = 1.0f;
};

struct Check {
    size_t node = 0;
    std::string label;
    std::optional<Candidate> candidate;
    std::string reason;
};

// The weight as quantized for one layout: codes in the layout the consumer reads, one
// scale per output channel (or one), already multiplied by `factor` (Gemm's alpha).
struct QuantizedWeight {
    std::vector<int64_t> shape;  // of the codes
    std::vector<uint8_t> codes;  // int8 or uint8 bytes
    std::vector<float> scales;
};

// W viewed as rows x cols with output channels along `channel_axis_is_rows ? rows : cols`.
// `transpose` writes the codes as cols x rows.
QuantizedWeight quantize_weight(const Tensor& w, const Options& o, bool channels_are_rows,
                                bool transpose, float factor) {
    const auto values = w.to_floats();
    const int64_t rows = w.shape[0];
    const int64_t cols = rows == 0 ? 0 : static_cast<int64_t>(values.size()) / rows;
    const int64_t channels = o.per_channel ? (channels_are_rows ? rows : cols) : 1;
    std::vector<float> amax(static_cast<size_t>(channels), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t ch = !o.per_channel ? 0 : channels_are_rows ? r : c;
            auto& m = amax[static_cast<size_t>(ch)];
            m = std::max(m, std::fabs(values[static_cast<size_t>(r * cols + c)]));
        }
    QuantizedWeight q;
    std::vector<float> d(amax.size());
    for (size_t ch = 0; ch < amax.size(); ++ch) {
        d[ch] =
            amax[ch] > 0.0f ? static_cast<float>(static_cast<double>(amax[ch]) / o.qmax()) : 1.0f;
        q.scales.push_back(d[ch] * factor);
    }
    q.codes.resize(values.size());
    q.shape = transpose ? std::vector<int64_t>{cols, rows} : w.shape;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t ch = !o.per_channel ? 0 : channels_are_rows ? r : c;
            const float x = values[static_cast<size_t>(r * cols + c)];
            auto code = static_cast<int>(std::round(x / d[static_cast<size_t>(ch)]));
            code = std::clamp(code, -o.qmax(), o.qmax()) + o.zero();
            const int64_t at = transpose ? c * rows + r : r * cols + c;
            q.codes[static_cast<size_t>(at)] = static_cast<uint8_t>(code & 0xff);
        }
    return q;
}

class QuantizeDynamic final : public Pass {
  public:
    std::string_view name() const override { return "quantize-dynamic"; }
    PassKind kind() const override { return PassKind::Quantization; }
    std::string_view description() const override {
        return "int8 weights and run-time (dynamic) int8 activations for MatMul/Gemm/Conv: "
               "DynamicQuantizeLinear + MatMulInteger/ConvInteger, or QDQ";
    }
    uint32_t needs() const override { return kNeedsGraph; }
    // Plain int8 / uint8 initializers and standard ONNX ops: any .onnx output holds them.
    bool encodes_weights() const override { return false; }

    std::vector<OptionSpec> option_specs() const override {
        return {
            {"format",
             OptionType::String,
             "integer",
             "integer: DynamicQuantizeLinear + MatMulInteger/ConvInteger; qdq: "
             "DynamicQuantizeLinear + DequantizeLinear feeding the float op",
             {"integer", "qdq"}},
            {"weight_type", OptionType::String, "int8", "weight codes", {"int8", "uint8"}},
            {"per_channel", OptionType::Bool, true, "one weight scale per output channel", {}},
            {"reduce_range",
             OptionType::Bool,
             false,
             "7-bit weight codes (+-63), for int8 kernels that saturate 16-bit pair sums",
             {}},
            {"op_types",
             OptionType::StringList,
             nlohmann::json::array({"MatMul", "Gemm", "Conv"}),
             "op types to quantize: MatMul, Gemm, Conv",
             {}},
        };
    }

    void configure(const nlohmann::json& options) override {
        selector_ = Selector::from_options(options);
        Options o;
        o.format = options.value("format", std::string("integer")) == "qdq" ? Format::Qdq
                                                                            : Format::Integer;
        o.uint8_weights = options.value("weight_type", std::string("int8")) == "uint8";
        o.per_channel = options.value("per_channel", true);
        o.reduce_range = options.value("reduce_range", false);
        if (options.contains("op_types")) {
            o.op_types = options["op_types"].get<std::vector<std::string>>();
            if (o.op_types.empty()) throw InputError("op_types: the list is empty");
            for (const auto& op : o.op_types)
                if (op != "MatMul" && op != "Gemm" && op != "Conv")
                    throw InputError(cat("op_types: '", op,
                                         "' is not supported (expected MatMul, Gemm or Conv)"));
        }
        options_ = o;
    }

    bool can_keep_float() const override { return true; }
    void keep_float(const std::vector<std::string>& node_names) override {
        keep_float_.insert(node_names.begin(), node_names.end());
    }

    std::vector<std::string> plan(const Model& model) const override {
        check_opset(model);
        std::vector<std::string> lines;
        for (const auto& c : check_graph(model.graph)) {
            if (!c.candidate) {
                lines.push_back(cat("keep '", c.label, "': ", c.reason));
                continue;
            }
            const Candidate& k = *c.candidate;
            lines.push_back(cat(k.op, " '", c.label, "': activation '", k.activation,
                                "' uint8 at run time x weight '", k.weight->name, "' ",
                                shape_string(k.weight->shape), " ", options_.encoding(), " (",
                                options_.format == Format::Qdq ? "QDQ"
                                : k.op == "Conv"               ? "ConvInteger"
                                                               : "MatMulInteger",
                                ")"));
        }
        for (const auto& s : subgraph_skips(model.graph))
            lines.push_back(cat("keep '", s.name, "': ", s.reason));
        if (lines.empty()) lines.push_back(cat("no ", join_ops(), " nodes"));
        return lines;
    }

    PassResult run(Model& model, PassContext&) override {
        check_opset(model);
        Graph& g = model.graph;
        const auto checks = check_graph(g);
        PassResult result;
        for (const auto& c : checks)
            if (!c.candidate) result.skipped.push_back({c.label, c.reason});
        for (auto& s : subgraph_skips(g)) result.skipped.push_back(std::move(s));

        taken_.clear();
        for_each_graph(g, [&](const Graph& sub) {
            for (const auto& v : sub.inputs) taken_.insert(v.name);
            for (const auto& t : sub.initializers) taken_.insert(t.name);
            for (const auto& n : sub.nodes) {
                taken_.insert(n.outputs.begin(), n.outputs.end());
                if (!n.name.empty()) taken_.insert(n.name);
            }
        });
        // Everything is computed before the graph changes.
        std::map<size_t, const Candidate*> by_node;
        for (const auto& c : checks)
            if (c.candidate) by_node.emplace(c.node, &*c.candidate);
        if (by_node.empty()) {
            result.summary.push_back(
                cat("quantized no node (", result.skipped.size(), " skipped)"));
            return result;
        }

        new_initializers_.clear();
        weights_.clear();
        activations_.clear();
        std::map<std::string, QuantizedGroup> groups;
        std::set<std::string> replaced_weights;
        std::vector<Node> nodes;
        for (size_t i = 0; i < g.nodes.size(); ++i) {
            auto it = by_node.find(i);
            if (it == by_node.end()) {
                nodes.push_back(std::move(g.nodes[i]));
                continue;
            }
            const Candidate& k = *it->second;
            Node node = std::move(g.nodes[i]);
            const std::string label = node.label();
            auto [wname, made] = weight(k, nodes);
            auto& group = groups[k.op];
            group.op = k.op;
            group.encoding =
                cat(options_.uint8_weights ? "uint8" : "int8", options_.per_channel ? "c" : "");
            group.method = "rtn";
            if (made) {
                ++group.tensors;
                group.input_bytes += k.weight->data.size();
                group.output_bytes += weights_.at(wname).bytes;
            }
            replaced_weights.insert(k.weight->name);
            if (k.bias) replaced_weights.insert(k.bias->name);  // reshaped / scaled copies
            const Activation& x = activation(k.activation, nodes);
            if (options_.format == Format::Qdq)
                rewrite_qdq(std::move(node), x, weights_.at(wname), nodes);
            else
                rewrite_integer(std::move(node), k, x, weights_.at(wname), nodes);
            result.quantized_nodes.push_back(label);
            ++result.rewrites;
        }
        g.nodes = std::move(nodes);
        for (auto& t : new_initializers_) g.initializers.push_back(std::move(t));
        new_initializers_.clear();
        const auto uses = g.use_counts();
        std::erase_if(g.initializers, [&](const Tensor& t) {
            return replaced_weights.count(t.name) && !uses.count(t.name);
        });
        ensure_opset(model);

        result.changed = true;
        result.shapes_still_valid = false;
        for (auto& [op, group] : groups) result.quantized.push_back(group);
        result.summary.push_back(
            cat("quantized ", result.rewrites, " node", result.rewrites == 1 ? "" : "s",
                " with dynamic uint8 activations (", activations_.size(),
                " DynamicQuantizeLinear) and ", options_.encoding(), " weights as ",
                options_.format == Format::Qdq ? "QDQ" : "MatMulInteger/ConvInteger"));
        if (!result.skipped.empty())
            result.summary.push_back(cat(result.skipped.size(), " ", join_ops(), " node",
                                         result.skipped.size() == 1 ? "" : "s",
                                         " left in float (reasons in skipped)"));
        return result;
    }

  private:
    // What the inserted ops need: DynamicQuantizeLinear is opset 11; a per-axis
    // DequantizeLinear is opset 13.
    [[nodiscard]] int64_t needed_opset() const {
        return options_.format == Format::Qdq && options_.per_channel ? 13 : 11;
    }

    void check_opset(const Model& model) const {
        const int64_t have = model.opset("");
        if (have != 0 && have < needed_opset())
            throw InputError(
                cat("the model imports ONNX opset ", have, "; ",
                    options_.format == Format::Qdq && options_.per_channel
                        ? "format qdq with per_channel needs opset 13 (per-axis DequantizeLinear): "
                          "set per_channel false or format integer"
                        : "DynamicQuantizeLinear needs opset 11"));
    }

    static void ensure_opset(Model& model) {
        if (model.opset("") == 0) model.opset_imports.push_back({"", 11});
    }

    [[nodiscard]] std::string join_ops() const {
        std::string s;
        for (const auto& op : options_.op_types) s += cat(s.empty() ? "" : "/", op);
        return s;
    }

    [[nodiscard]] bool wanted(const Node& n) const {
        for (const auto& op : options_.op_types)
            if (is_onnx_op(n, op)) return true;
        return false;
    }

    std::vector<Skipped> subgraph_skips(const Graph& g) const {
        std::vector<Skipped> out;
        for (const auto& n : g.nodes)
            for (const auto& a : n.attributes)
                for (const auto& sub : a.graphs)
                    for_each_graph(sub, [&](const Graph& s) {
                        for (const auto& m : s.nodes)
                            if (wanted(m))
                                out.push_back(
                                    {m.label(), cat("inside a subgraph of '", n.label(), "' (",
                                                    a.name, "): subgraphs are not quantized")});
                    });
        return out;
    }

    std::vector<Check> check_graph(const Graph& g) const {
        const auto producers = g.producers();
        std::unordered_set<std::string> inputs;
        for (const auto& v : g.inputs) inputs.insert(v.name);
        std::unordered_map<std::string, DType> known;
        for (const auto* list : {&g.inputs, &g.value_info, &g.outputs})
            for (const auto& v : *list)
                if (v.type && v.type->is_tensor) known[v.name] = v.type->elem;
        std::vector<Check> out;
        for (size_t i = 0; i < g.nodes.size(); ++i) {
            const Node& n = g.nodes[i];
            if (!wanted(n)) continue;
            Check c;
            c.node = i;
            c.label = n.label();
            Candidate k;
            c.reason = check_one(g, inputs, known, n, k);
            k.node = i;
            if (c.reason.empty()) c.candidate = k;
            out.push_back(std::move(c));
        }
        return out;
    }

    // Why `name` cannot serve as the node's constant weight ("" when it can).
    static std::string weight_problem(const Graph& g, const std::unordered_set<std::string>& inputs,
                                      const std::string& what, const std::string& name,
                                      size_t min_rank, size_t max_rank) {
        const Tensor* t = g.find_initializer(name);
        if (!t)
            return cat(what, " '", name, "' is not a constant initializer",
                       " (an activation x activation product is not quantized)");
        if (inputs.count(name))
            return cat(what, " '", name, "' is also a graph input (can be overridden at run time)");
        if (t->is_encoded()) return cat(what, " '", name, "' is already quantized");
        if (t->dtype != DType::F32)
            return cat(what, " '", name, "' is ", dtype_name(t->dtype), ", not float32");
        if (t->shape.size() < min_rank || t->shape.size() > max_rank)
            return cat(what, " '", name, "' has shape ", shape_string(t->shape), ", expected rank ",
                       min_rank == max_rank ? cat(min_rank) : cat(min_rank, "..", max_rank));
        if (t->element_count() == 0) return cat(what, " '", name, "' is empty");
        try {
            t->check_consistent();
        } catch (const Error& e) {
            return e.what();
        }
        return {};
    }

    std::string check_one(const Graph& g, const std::unordered_set<std::string>& inputs,
                          const std::unordered_map<std::string, DType>& known, const Node& n,
                          Candidate& k) const {
        if (!selector_.selects(n.label())) return "not selected by include/exclude";
        if (keep_float_.count(n.label())) return "kept in float by the accuracy-aware fallback";
        if (n.outputs.size() != 1 || n.outputs[0].empty())
            return cat("has ", n.outputs.size(), " outputs, expected 1");
        for (size_t j = 0; j < std::min<size_t>(n.inputs.size(), 2); ++j)
            if (n.inputs[j].empty()) return "has an empty input";
        k.op = n.op_type;
        if (is_onnx_op(n, "MatMul")) {
            if (n.inputs.size() != 2) return cat("has ", n.inputs.size(), " inputs, expected 2");
            if (auto r = weight_problem(g, inputs, "input B", n.inputs[1], 2, 2); !r.empty())
                return r;
        } else if (is_onnx_op(n, "Gemm")) {
            if (n.inputs.size() < 2 || n.inputs.size() > 3)
                return cat("has ", n.inputs.size(), " inputs, expected 2 or 3");
            if (n.attr_int("transA", 0) != 0) return "transA = 1 is not quantized";
            if (auto r = weight_problem(g, inputs, "input B", n.inputs[1], 2, 2); !r.empty())
                return r;
            k.trans_b = n.attr_int("transB", 0) != 0;
            k.alpha = n.attr_float("alpha", 1.0f);
            k.beta = n.attr_float("beta", 1.0f);
            if (n.inputs.size() == 3 && !n.inputs[2].empty()) {
                const std::string& c = n.inputs[2];
                if (g.find_initializer(c) && !inputs.count(c)) {
                    k.bias = g.find_initializer(c);
                    if (k.bias->dtype != DType::F32 || k.bias->is_encoded())
                        return cat("input C '", c, "' is ", dtype_name(k.bias->dtype),
                                   ", not float32");
                } else if (k.beta != 1.0f) {
                    return cat("input C '", c, "' is not constant and beta = ", k.beta);
                } else {
                    k.bias_value = c;
                }
            }
        } else {  // Conv
            if (n.inputs.size() < 2 || n.inputs.size() > 3)
                return cat("has ", n.inputs.size(), " inputs, expected 2 or 3");
            if (auto r = weight_problem(g, inputs, "weights", n.inputs[1], 3, 8); !r.empty())
                return r;
            if (n.inputs.size() == 3 && !n.inputs[2].empty()) {
                const std::string& b = n.inputs[2];
                if (auto r = weight_problem(g, inputs, "bias", b, 1, 1); !r.empty()) return r;
                k.bias = g.find_initializer(b);
                if (k.bias->shape[0] != g.find_initializer(n.inputs[1])->shape[0])
                    return cat("bias '", b, "' has shape ", shape_string(k.bias->shape),
                               ", expected [", g.find_initializer(n.inputs[1])->shape[0], "]");
            }
        }
        k.weight = g.find_initializer(n.inputs[1]);
        k.activation = n.inputs[0];
        if (g.find_initializer(k.activation))
            return cat("input '", k.activation, "' is a constant, not an activation");
        if (auto it = known.find(k.activation);
            it != known.end() && it->second != DType::Undefined && it->second != DType::F32)
            return cat("input '", k.activation, "' is ", dtype_name(it->second),
                       ", DynamicQuantizeLinear reads float32");
        return {};
    }

    // `base` when no value or node has that name yet, else base_1, base_2, ...
    std::string fresh(const std::string& base) {
        std::string name = base;
        for (int k = 1; taken_.count(name); ++k) name = cat(base, "_", k);
        taken_.insert(name);
        return name;
    }

    struct Activation {
        std::string quantized, scale, zero_point;
        std::string dequantized;  // qdq only
    };
    struct WeightNames {
        std::string quantized, scale, zero_point;
        std::string dequantized;  // qdq only
        uint64_t bytes = 0;
    };

    // The DynamicQuantizeLinear of `x` (made right here, before its first reader, once).
    const Activation& activation(const std::string& x, std::vector<Node>& nodes) {
        auto it = activations_.find(x);
        if (it != activations_.end()) return it->second;
        Activation a;
        a.quantized = fresh(x + "_quantized");
        a.scale = fresh(x + "_scale");
        a.zero_point = fresh(x + "_zero_point");
        Node q;
        q.op_type = "DynamicQuantizeLinear";
        q.name = fresh(x + "_QuantizeLinear");
        q.inputs = {x};
        q.outputs = {a.quantized, a.scale, a.zero_point};
        nodes.push_back(std::move(q));
        if (options_.format == Format::Qdq) {
            a.dequantized = fresh(x + "_DequantizeLinear_Output");
            Node d;
            d.op_type = "DequantizeLinear";
            d.name = fresh(x + "_DequantizeLinear");
            d.inputs = {a.quantized, a.scale, a.zero_point};
            d.outputs = {a.dequantized};
            nodes.push_back(std::move(d));
        }
        return activations_.emplace(x, std::move(a)).first->second;
    }

    // The quantized form of k's weight in the layout k reads (made once per layout);
    // returns its key and whether this call made it.
    std::pair<std::string, bool> weight(const Candidate& k, std::vector<Node>& nodes) {
        const bool integer = options_.format == Format::Integer;
        const bool conv = k.op == "Conv";
        // Output channels: Conv axis 0; MatMul columns; Gemm columns, or rows with transB.
        const bool channels_are_rows = conv || k.trans_b;
        const bool transpose = integer && k.trans_b;  // MatMulInteger reads B as [K, N]
        const float factor = integer ? k.alpha : 1.0f;
        const std::string key =
            cat(k.weight->name, transpose ? "|T" : "", factor != 1.0f ? cat("|", factor) : "");
        if (weights_.count(key)) return {key, false};

        QuantizedWeight q =
            quantize_weight(*k.weight, options_, channels_are_rows, transpose, factor);
        const std::string base =
            k.weight->name + (transpose ? "_transposed" : "") + (factor != 1.0f ? "_alpha" : "");
        WeightNames w;
        w.quantized = fresh(base + "_quantized");
        w.scale = fresh(base + "_scale");
        w.zero_point = fresh(base + "_zero_point");
        const auto channels = static_cast<int64_t>(q.scales.size());
        std::vector<int64_t> scale_shape;
        if (options_.per_channel) {
            scale_shape = {channels};
            // ConvInteger's int32 output is [N, M, spatial...]: the scale broadcasts as
            // [M, 1, ...].
            if (integer && conv) scale_shape.resize(k.weight->shape.size() - 1, 1);
        }
        const uint8_t zero = static_cast<uint8_t>(options_.zero() & 0xff);
        std::vector<uint8_t> zeros(integer ? 1 : q.scales.size(), zero);
        std::vector<int64_t> zero_shape;
        if (!integer && options_.per_channel) zero_shape = {channels};
        new_initializers_.push_back(make_tensor(w.quantized, options_.weight_dtype(), q.shape,
                                                q.codes.data(), q.codes.size()));
        new_initializers_.push_back(make_tensor(w.scale, DType::F32, scale_shape, q.scales.data(),
                                                q.scales.size() * sizeof(float)));
        new_initializers_.push_back(make_tensor(w.zero_point, options_.weight_dtype(), zero_shape,
                                                zeros.data(), zeros.size()));
        w.bytes = q.codes.size() + q.scales.size() * sizeof(float) + zeros.size();
        if (!integer) {
            w.dequantized = fresh(base + "_DequantizeLinear_Output");
            Node d;
            d.op_type = "DequantizeLinear";
            d.name = fresh(base + "_DequantizeLinear");
            d.inputs = {w.quantized, w.scale, w.zero_point};
            d.outputs = {w.dequantized};
            if (options_.per_channel)
                d.attributes.push_back(int_attr("axis", channels_are_rows ? 0 : 1));
            nodes.push_back(std::move(d));
        }
        weights_.emplace(key, std::move(w));
        return {key, true};
    }

    static void rewrite_qdq(Node node, const Activation& x, const WeightNames& w,
                            std::vector<Node>& nodes) {
        node.inputs[0] = x.dequantized;
        node.inputs[1] = w.dequantized;
        nodes.push_back(std::move(node));
    }

    void rewrite_integer(Node node, const Candidate& k, const Activation& x, const WeightNames& w,
                         std::vector<Node>& nodes) {
        const std::string y = node.outputs[0];
        const std::string base = node.name.empty() ? y : node.name;
        const bool conv = k.op == "Conv";
        const bool has_bias = k.bias || !k.bias_value.empty();

        Node product;
        product.name = node.name;
        product.op_type = conv ? "ConvInteger" : "MatMulInteger";
        product.inputs = {x.quantized, w.quantized, x.zero_point, w.zero_point};
        product.outputs = {fresh(y + "_int32")};
        if (conv)
            for (const auto& a : node.attributes)
                if (a.name == "auto_pad" || a.name == "dilations" || a.name == "group" ||
                    a.name == "kernel_shape" || a.name == "pads" || a.name == "strides")
                    product.attributes.push_back(a);
        product.doc_string = node.doc_string;

        Node cast;
        cast.op_type = "Cast";
        cast.name = fresh(base + "_cast");
        cast.inputs = {product.outputs[0]};
        cast.outputs = {fresh(y + "_int32_float")};
        cast.attributes.push_back(int_attr("to", kOnnxFloat));

        Node scales;
        scales.op_type = "Mul";
        scales.name = fresh(base + "_scales_mul");
        scales.inputs = {x.scale, w.scale};
        scales.outputs = {fresh(y + "_scale")};

        Node rescale;
        rescale.op_type = "Mul";
        rescale.name = fresh(base + "_output_mul");
        rescale.inputs = {cast.outputs[0], scales.outputs[0]};
        rescale.outputs = {has_bias ? fresh(y + "_unbiased") : y};

        const std::string unbiased = rescale.outputs[0];
        nodes.push_back(std::move(product));
        nodes.push_back(std::move(cast));
        nodes.push_back(std::move(scales));
        nodes.push_back(std::move(rescale));
        if (!has_bias) return;

        std::string bias = k.bias_value;
        if (k.bias) {
            // Conv: B [M] as [M, 1, ...]; Gemm: beta * C (C itself when beta is 1).
            if (conv) {
                std::vector<int64_t> shape(k.weight->shape.size() - 1, 1);
                shape[0] = k.bias->shape[0];
                Tensor t = *k.bias;
                t.name = fresh(k.bias->name + "_reshaped");
                t.shape = std::move(shape);
                bias = t.name;
                new_initializers_.push_back(std::move(t));
            } else if (k.beta != 1.0f) {
                auto v = k.bias->to_floats();
                for (auto& e : v) e *= k.beta;
                Tensor t = make_f32_tensor(fresh(k.bias->name + "_scaled"), k.bias->shape, v);
                bias = t.name;
                new_initializers_.push_back(std::move(t));
            } else {
                bias = k.bias->name;
            }
        }
        Node add;
        add.op_type = "Add";
        add.name = fresh(base + "_bias_add");
        add.inputs = {unbiased, bias};
        add.outputs = {y};
        nodes.push_back(std::move(add));
    }

    Options options_;
    Selector selector_;
    std::set<std::string> keep_float_;
    // State of one run().
    std::unordered_set<std::string> taken_;
    std::vector<Tensor> new_initializers_;
    std::map<std::string, WeightNames> weights_;
    std::map<std::string, Activation> activations_;
};

}  // namespace

std::unique_ptr<Pass> make_quantize_dynamic_pass() {
    return std::make_unique<QuantizeDynamic>();
}

}  // namespace ep
