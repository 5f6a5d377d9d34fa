// quantize-static: static int8 post-training quantization in the QDQ format ONNX Runtime's
// quantize_static writes (onnxruntime/python/tools/quantization: qdq_quantizer.py,
// registry.py, quant_utils.py), so ORT runs the .onnx and our runtime runs the .epk.
//
// Before:  x -> Conv(W, B) -> y -> Relu -> r -> MaxPool -> p -> ...
// After:   x -> Q -> DQ -> Conv(DQ(W_quantized), DQ(B_quantized)) -> y -> Relu -> r
//              -> Q -> DQ -> MaxPool -> p -> Q -> DQ -> ...
// Every node keeps its name and its output value names; the inserted nodes and values are
// named after the tensor they quantize, as ORT names them: for an activation T,
// T_QuantizeLinear -> T_QuantizeLinear_Output -> T_DequantizeLinear ->
// T_DequantizeLinear_Output with T_scale / T_zero_point; a weight W becomes W_quantized
// (with W_scale, W_zero_point) read by W_DequantizeLinear -> W_DequantizeLinear_Output;
// a bias B becomes B_quantized (int32) with B_quantized_scale / B_quantized_zero_point.
//
// Which nodes (main graph; op_types limits the set, include/exclude match node names):
//   weighted   Conv (W [M, C/g, k...]), MatMul (B [K, N]), Gemm (B, transB): activation
//              input(s) quantized, the weight an initializer quantized per output channel
//              (per_channel; axis Conv 0, MatMul 1, Gemm transB ? 0 : 1) or per tensor,
//              the bias (Conv B, Gemm C of [N]) int32 with scale x_scale * w_scale (Gemm:
//              * beta, and beta becomes 1), zero point 0. A MatMul whose B is not an
//              initializer quantizes both inputs as activations.
//   compute    Add, Mul, Concat, GlobalAveragePool: every float input quantized with its
//              own range (an initializer input as a weight, per tensor).
//   same-range Reshape, Transpose, Squeeze, Unsqueeze, Flatten, MaxPool (opset >= 12),
//              AveragePool, Resize, Gather (data not an initializer): quantized only when
//              their input 0 is; the output reuses the input's scale and zero point.
//   Relu, Clip after a weighted or compute node whose output only they read: fused into
//              that node's output range: the producer's output gets no Q/DQ, the
//              activation's output is quantized with its own (calibrated, so >= 0) range,
//              which is what ORT's removal of the Relu computes, without renaming values.
// A tensor gets one Q/DQ pair when a quantized node reads it; only quantized nodes read
// the DequantizeLinear output, a node left in float keeps reading the float tensor. Graph
// outputs are not quantized (they stay float and keep their names; ORT quantizes them).
// Every other node that reads a float activation, and each node that fails a check, is kept
// float with its reason (nodes of shape arithmetic, with no float activation input, are not
// candidates). `keep_float` (the accuracy-aware fallback) keeps named nodes float as if
// excluded; PassResult::quantized_nodes lists the nodes quantized.
//
// Formulas (ORT's compute_scale_zp / quantize_data, reproduced bit for bit):
//   qmin, qmax   int8 [-128, 127], uint8 [0, 255]; symmetric int8 weights [-127, 127];
//                reduce_range (weights only): int8 [-64, 64], uint8 [0, 127]
//   rmin = min(rmin, 0), rmax = max(rmax, 0); symmetric: rmin = -rmax = -max(|rmin|, |rmax|)
//   scale = (rmax - rmin) / (qmax - qmin) in double, stored f32 (1 when below FLT_MIN, zp 0)
//   zp    = symmetric ? round((qmin + qmax) / 2) : round(qmin - rmin / scale)
//   q     = clamp(round_half_even(f32(w) / f32(scale)) + zp, type min, type max)
//   bias  = clamp(round(f64(b) / f64(f32(x_scale * w_scale))), int32)
// Weights: int8 symmetric, uint8 asymmetric (ORT's WeightSymmetric default). Activations
// asymmetric (ORT's ActivationSymmetric default), ranges from the recipe's
// calibration.ranges (PassContext::ranges) or captured on the calibration data with the
// chosen calibrator (calib::collect_ranges) on the model as it is before this pass.
//
// smooth_alpha (in [0, 1]) first runs SmoothQuant (passes/smooth_quant.h) on the MatMul /
// Gemm nodes this pass would quantize, with the calibration data, then analyses the smoothed
// model again and captures its ranges.
//
// Preconditions, checked before anything changes: opset >= 13 for per-channel weights
// (axis of QuantizeLinear / DequantizeLinear), >= 10 otherwise (compress raises an ONNX
// source with the version converter); every range needed is in the table.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "calibration/calibration.h"
#include "calibration/ranges.h"
#include "ir/ir.h"
#include "ir/progress.h"
#include "passes/pass.h"
#include "passes/selector.h"
#include "passes/smooth_quant.h"

namespace ep {

namespace {

bool is_onnx_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

// How quantize-static treats an op type (the table in the contract above).
enum class OpClass : uint8_t { None, Weighted, Compute, SameRange, Activation };

OpClass op_class(const Node& n) {
    if (!n.domain.empty() && n.domain != "ai.onnx") return OpClass::None;
    static const std::map<std::string, OpClass, std::less<>> kTable = {
        {"Conv", OpClass::Weighted},
        {"MatMul", OpClass::Weighted},
        {"Gemm", OpClass::Weighted},
        {"Add", OpClass::Compute},
        {"Mul", OpClass::Compute},
        {"Concat", OpClass::Compute},
        {"GlobalAveragePool", OpClass::Compute},
        {"Reshape", OpClass::SameRange},
        {"Transpose", OpClass::SameRange},
        {"Squeeze", OpClass::SameRange},
        {"Unsqueeze", OpClass::SameRange},
        {"Flatten", OpClass::SameRange},
        {"MaxPool", OpClass::SameRange},
        {"AveragePool", OpClass::SameRange},
        {"Resize", OpClass::SameRange},
        {"Gather", OpClass::SameRange},
        {"Relu", OpClass::Activation},
        {"Clip", OpClass::Activation},
    };
    auto it = kTable.find(n.op_type);
    return it == kTable.end() ? OpClass::None : it->second;
}

// The op types quantize-static knows (op_types must name some of these).
std::vector<std::string> known_op_types() {
    return {
        "Conv",    "MatMul",    "Gemm",    "Add",       "Mul",     "Concat",  "GlobalAveragePool",
        "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "MaxPool", "AveragePool",
        "Resize",  "Gather",    "Relu",    "Clip"};
}

// Element types of the main graph's values, as far as they follow from the inputs,
// initializers, value_info and the ops (enough to tell float activations from shape
// arithmetic); a value missing from the map has an unknown type.
std::unordered_map<std::string, DType> infer_elem_types(const Graph& g) {
    std::unordered_map<std::string, DType> t;
    auto known = [&](const ValueInfo& v) {
        if (v.type && v.type->is_tensor && v.type->elem != DType::Undefined)
            t[v.name] = v.type->elem;
    };
    for (const auto& v : g.inputs) known(v);
    for (const auto& init : g.initializers) t[init.name] = init.dtype;
    for (const auto& v : g.value_info) known(v);
    for (const auto& v : g.outputs) known(v);
    auto of = [&](const std::string& name) -> std::optional<DType> {
        auto it = t.find(name);
        if (it == t.end()) return std::nullopt;
        return it->second;
    };
    for (const auto& n : g.nodes) {
        std::optional<DType> out;
        const std::string& op = n.op_type;
        if (!n.domain.empty() && n.domain != "ai.onnx") {
            out = std::nullopt;
        } else if (op == "Shape" || op == "Size" || op == "NonZero" || op == "ArgMax" ||
                   op == "ArgMin") {
            out = DType::I64;
        } else if (op == "Cast") {
            out = dtype_from_onnx(static_cast<int>(n.attr_int("to", 0)));
        } else if (op == "CastLike" && n.inputs.size() > 1) {
            out = of(n.inputs[1]);
        } else if (op == "Equal" || op == "Less" || op == "Greater" || op == "LessOrEqual" ||
                   op == "GreaterOrEqual" || op == "Not" || op == "And" || op == "Or" ||
                   op == "Xor" || op == "IsNaN" || op == "IsInf") {
            out = DType::Bool;
        } else if (op == "Constant") {
            if (const Attribute* a = n.attr("value"); a && !a->tensors.empty())
                out = a->tensors[0].dtype;
            else if (n.attr("value_float") || n.attr("value_floats"))
                out = DType::F32;
            else if (n.attr("value_int") || n.attr("value_ints"))
                out = DType::I64;
        } else if (op == "ConstantOfShape") {
            const Attribute* a = n.attr("value");
            out = a && !a->tensors.empty() ? a->tensors[0].dtype : DType::F32;
        } else if (op == "DequantizeLinear") {
            out = DType::F32;
        } else if (op == "Where" && n.inputs.size() > 1) {
            out = of(n.inputs[1]);
        } else if (!n.inputs.empty() && !n.inputs[0].empty()) {
            out = of(n.inputs[0]);
        }
        for (const auto& o : n.outputs)
            if (!o.empty() && out && !t.count(o)) t[o] = *out;
    }
    return t;
}

struct QuantRange {
    int64_t qmin = 0, qmax = 0;
};

// ORT's get_qmin_qmax_for_qType.
QuantRange qrange(DType type, bool reduce_range, bool symmetric) {
    if (type == DType::I8) {
        if (reduce_range) return {-64, 64};
        if (symmetric) return {-127, 127};
        return {-128, 127};
    }
    if (reduce_range) return {0, 127};
    return {0, 255};
}

struct ScaleZp {
    float scale = 1.0f;
    int64_t zero_point = 0;
};

// ORT's compute_scale_zp (min_real_range unset).
ScaleZp compute_scale_zp(float rmin_in, float rmax_in, QuantRange q, bool symmetric) {
    float rmin = std::min(rmin_in, 0.0f);
    float rmax = std::max(rmax_in, 0.0f);
    if (symmetric) {
        float absmax = std::max(std::fabs(rmin), std::fabs(rmax));
        rmin = -absmax;
        rmax = absmax;
    }
    double scale = (static_cast<double>(rmax) - static_cast<double>(rmin)) /
                   (static_cast<double>(q.qmax) - static_cast<double>(q.qmin));
    ScaleZp r;
    if (!(scale >= static_cast<double>(std::numeric_limits<float>::min()))) return r;  // 1, 0
    if (symmetric)
        r.zero_point = static_cast<int64_t>(std::nearbyint((q.qmin + q.qmax) / 2.0));
    else
        r.zero_point =
            static_cast<int64_t>(std::nearbyint(static_cast<double>(q.qmin) - rmin / scale));
    r.scale = static_cast<float>(scale);
    return r;
}

int64_t type_min(DType t) {
    return t == DType::I8 ? -128 : 0;
}
int64_t type_max(DType t) {
    return t == DType::I8 ? 127 : 255;
}

// ORT's quantize_nparray: round half to even in f32, clipped to the type's full range.
int64_t quantize_value(float w, const ScaleZp& p, DType type) {
    float v = std::nearbyint(w / p.scale) + static_cast<float>(p.zero_point);
    v = std::clamp(v, static_cast<float>(type_min(type)), static_cast<float>(type_max(type)));
    return static_cast<int64_t>(v);
}

Tensor int_tensor(std::string name, DType type, std::vector<int64_t> shape,
                  const std::vector<int64_t>& values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = type;
    t.shape = std::move(shape);
    size_t width = static_cast<size_t>(traits(type).bits / 8);
    std::vector<std::byte> bytes(values.size() * width);
    for (size_t i = 0; i < values.size(); ++i) {
        if (type == DType::I32) {
            auto v = static_cast<int32_t>(values[i]);
            std::memcpy(bytes.data() + i * 4, &v, 4);
        } else if (type == DType::I8) {
            auto v = static_cast<int8_t>(values[i]);
            std::memcpy(bytes.data() + i, &v, 1);
        } else {
            auto v = static_cast<uint8_t>(values[i]);
            std::memcpy(bytes.data() + i, &v, 1);
        }
    }
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

Tensor f32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<float>& v) {
    return make_f32_tensor(std::move(name), std::move(shape), v);
}

std::string type_word(DType t) {
    return t == DType::I8 ? "int8" : "uint8";
}

// Fresh names: `base` unless the graph (or an earlier call) has it, else base_1, ...
class Namer {
  public:
    explicit Namer(const Graph& g) {
        for (const auto& v : g.inputs) used_.insert(v.name);
        for (const auto& v : g.outputs) used_.insert(v.name);
        for (const auto& t : g.initializers) used_.insert(t.name);
        for (const auto& n : g.nodes) {
            used_.insert(n.name);
            for (const auto& o : n.outputs) used_.insert(o);
            for (const auto& i : n.inputs) used_.insert(i);
        }
    }
    std::string fresh(const std::string& base) {
        std::string name = base;
        for (int k = 1; used_.count(name); ++k) name = cat(base, "_", k);
        used_.insert(name);
        return name;
    }

  private:
    std::unordered_set<std::string> used_;
};

// One weight (or per-tensor initializer input) to quantize.
struct WeightPlan {
    std::string name;        // the float initializer
    int64_t axis = -1;       // per-channel axis, -1: per tensor
    std::string dq_output;   // what quantized readers read
    std::string node_label;  // the first node that reads it (for messages)
};

// One bias to quantize as int32.
struct BiasPlan {
    std::string name;
    std::string activation;  // the node's quantized input (its scale)
    std::string weight;      // the weight (its scales)
    float beta = 1.0f;       // Gemm's beta, folded in
    std::string dq_output;
    size_t node = 0;
};

// The decisions for one model, made before anything changes.
struct Analysis {
    std::vector<size_t> quantized;  // node indices, in graph order
    std::vector<Skipped> skipped;   // nodes kept float, with the reason
    // Tensors that get a Q/DQ pair: name -> the tensor whose range (scale, zero point) it
    // uses (itself, or the input of a same-range op).
    std::map<std::string, std::string> qdq;
    std::vector<std::string> qdq_order;  // qdq keys in the order they were marked
    std::vector<WeightPlan> weights;
    std::vector<BiasPlan> biases;
    std::set<size_t> gemm_beta_reset;
    std::vector<std::string> node_lines;  // one per quantized node, for the plan
    // For each quantized node, input index -> the name it reads after the rewrite.
    std::map<size_t, std::map<size_t, std::string>> rewires;
    std::map<std::string, std::string> dq_output;  // activation -> its DequantizeLinear output
    std::vector<std::string> quantized_names;      // node names (labels), graph order
    std::vector<std::string> quantized_ops;        // their op types
    std::unique_ptr<Namer> names;                  // every name in use, and the new ones
    std::vector<std::string> needs_range() const {
        std::vector<std::string> names;
        for (const auto& t : qdq_order)
            if (qdq.at(t) == t) names.push_back(t);
        return names;
    }
};

class QuantizeStatic final : public Pass {
  public:
    std::string_view name() const override { return "quantize-static"; }
    PassKind kind() const override { return PassKind::Quantization; }
    std::string_view description() const override {
        return "static int8 quantization of activations and weights (QDQ, as ONNX Runtime's "
               "quantize_static): Conv/MatMul/Gemm, Add/Mul/Concat, pooling, shape ops";
    }
    uint32_t needs() const override {
        return kNeedsCalibrationData | kNeedsGraph | kUsesActivationRanges;
    }
    bool writes_encoded_weights() const override { return false; }
    // Per-channel QuantizeLinear / DequantizeLinear (axis) need opset 13.
    int64_t min_opset() const override { return 13; }
    std::vector<OptionSpec> option_specs() const override {
        return {
            {"activation_type",
             OptionType::String,
             "int8",
             "activation codes (asymmetric, per tensor)",
             {"int8", "uint8"}},
            {"weight_type",
             OptionType::String,
             "int8",
             "weight codes: int8 symmetric, uint8 asymmetric",
             {"int8", "uint8"}},
            {"per_channel", OptionType::Bool, true, "one weight scale per output channel", {}},
            {"reduce_range",
             OptionType::Bool,
             false,
             "7-bit weights (int8 [-64, 64], uint8 [0, 127]) for CPUs without VNNI",
             {}},
            {"op_types",
             OptionType::StringList,
             nlohmann::json::array(),
             "quantize only nodes of these op types (empty: every supported type)",
             {}},
            {"calibrator",
             OptionType::String,
             "minmax",
             "how activation ranges are chosen from the calibration data",
             {"minmax", "percentile", "entropy", "mse"}},
            {"percentile",
             OptionType::Number,
             99.999,
             "percentile calibrator: the percentile of the values kept, in (0, 100]",
             {},
             0,
             100},
            {"bins",
             OptionType::Int,
             2048,
             "histogram bins (percentile, entropy, mse)",
             {},
             16,
             1 << 20},
            {"smooth_alpha",
             OptionType::Number,
             -1,
             "SmoothQuant before quantizing: migration strength in [0, 1] for the MatMul / "
             "Gemm inputs (passes/smooth_quant.h); -1: off",
             {},
             -1,
             1},
            {"quantized_bins",
             OptionType::Int,
             128,
             "entropy: levels of the quantized distribution",
             {},
             2,
             1 << 16},
        };
    }

    void configure(const nlohmann::json& o) override {
        selector_ = Selector::from_options(o);
        activation_type_ = o.value("activation_type", "int8") == "uint8" ? DType::U8 : DType::I8;
        weight_type_ = o.value("weight_type", "int8") == "uint8" ? DType::U8 : DType::I8;
        per_channel_ = o.value("per_channel", true);
        reduce_range_ = o.value("reduce_range", false);
        op_types_.clear();
        auto known = known_op_types();
        for (const auto& t : o.value("op_types", std::vector<std::string>{})) {
            if (std::find(known.begin(), known.end(), t) == known.end()) {
                std::string list;
                for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
                throw InputError(
                    cat("op_types: '", t, "' is not an op quantize-static quantizes (", list, ")"));
            }
            op_types_.insert(t);
        }
        std::string cal = o.value("calibrator", "minmax");
        auto method = calib::calibrator_from_name(cal);
        if (!method)
            throw InputError(cat("calibrator: '", cal,
                                 "' is not a calibrator (minmax, percentile, entropy, mse)"));
        calib_.method = *method;
        calib_.percentile = o.value("percentile", 99.999);
        calib_.bins = o.value("bins", int64_t{2048});
        calib_.quantized_bins = o.value("quantized_bins", int64_t{128});
        calib_.symmetric = false;  // ORT's ActivationSymmetric default
        calib::check_calibrator_options(calib_);
        smooth_alpha_ = o.value("smooth_alpha", -1.0);
        if (smooth_alpha_ != -1.0 && !(smooth_alpha_ >= 0.0 && smooth_alpha_ <= 1.0))
            throw InputError(cat("smooth_alpha: ", smooth_alpha_, " is outside [0, 1] (-1: off)"));
    }

    std::vector<std::string> plan(const Model& model) const override {
        check_opset(model);
        Analysis a = analyze(model);
        std::vector<std::string> lines;
        if (smooth_alpha_ >= 0.0 && !smooth_options(model, a).nodes.empty())
            for (auto& l : plan_smooth_quant(model, smooth_options(model, a)))
                lines.push_back(cat("smooth_alpha ", smooth_alpha_, ": ", l));
        lines.insert(lines.end(), a.node_lines.begin(), a.node_lines.end());
        for (const auto& s : a.skipped) lines.push_back(cat("keep float ", s.name, ": ", s.reason));
        auto needed = a.needs_range();
        lines.push_back(cat(needed.size(), " activation range", needed.size() == 1 ? "" : "s", " (",
                            calib::calibrator_name(calib_.method),
                            "; or read from calibration.ranges), ", a.qdq.size(), " Q/DQ pair",
                            a.qdq.size() == 1 ? "" : "s", ", ", a.weights.size(), " weight",
                            a.weights.size() == 1 ? "" : "s", " ", type_word(weight_type_),
                            per_channel_ ? " per channel" : " per tensor", ", ", a.biases.size(),
                            " bias", a.biases.size() == 1 ? "" : "es", " int32"));
        return lines;
    }

    bool can_keep_float() const override { return true; }
    void keep_float(const std::vector<std::string>& node_names) override {
        keep_float_ = std::set<std::string>(node_names.begin(), node_names.end());
    }

    PassResult run(Model& model, PassContext& context) override {
        PassResult result;
        check_opset(model);
        Analysis a = analyze(model);
        // (An empty node list would mean "every eligible node" to smooth_quant: skip then.)
        if (smooth_alpha_ >= 0.0 && !smooth_options(model, a).nodes.empty()) {
            // SmoothQuant first (it needs samples: a range file alone cannot drive it), on
            // the MatMul / Gemm nodes this pass quantizes; the model computes the same
            // function afterwards, and the ranges are captured on it.
            if (!context.calibration)
                throw InputError(
                    "smooth_alpha needs the recipe's calibration data (calibration.data); "
                    "calibration.ranges alone cannot drive SmoothQuant");
            SmoothQuantResult smoothed = smooth_quant(model, smooth_options(model, a), context);
            for (auto& line : smoothed.summary())
                result.summary.push_back(cat("smooth_alpha ", smooth_alpha_, ": ", line));
            for (auto& k : smoothed.skipped)
                result.warnings.push_back(
                    cat("smooth_alpha: ", k.name, " not smoothed: ", k.reason));
            a = analyze(model);
        }
        result.skipped = a.skipped;
        if (a.quantized.empty()) {
            result.summary.push_back("no node to quantize");
            return result;
        }

        // Ranges: the recipe's table, or captured now on the float model.
        std::vector<std::string> needed = a.needs_range();
        std::shared_ptr<calib::RangeTable> table;
        if (context.ranges) {
            table = std::make_shared<calib::RangeTable>(*context.ranges);
            for (const auto& t : needed)
                if (!table->ranges.count(t))
                    throw InputError(cat("calibration.ranges: no range for activation '", t,
                                         "' (the file was made for another model or other "
                                         "options; remove calibration.ranges to recalibrate)"));
            result.summary.push_back(cat(needed.size(), " activation ranges read from ",
                                         "calibration.ranges (", table->calibrator, ", ",
                                         table->samples, " samples)"));
        } else {
            if (!context.calibration)
                throw InputError(
                    "needs calibration data (the recipe's calibration section) or "
                    "calibration.ranges");
            rt::ExecOptions eo;
            eo.threads = std::max(1, context.threads);
            rt::Executor exec(model, eo);
            auto samples = context.calibration->open_nonempty(exec);
            auto step = progress_step(context.progress, "calibration", samples->size(), "samples");
            table = std::make_shared<calib::RangeTable>(
                calib::collect_ranges(exec, *samples, needed, calib_, &step));
            table->synthetic = context.calibration->synthetic();
            if (table->data.empty()) table->data = samples->describe();
            if (table->samples == 0) table->samples = samples->size();
            CalibrationRecord record;
            record.method = std::string(calib::calibrator_name(calib_.method));
            record.synthetic = table->synthetic;
            record.samples = samples->size();
            record.description = samples->describe();
            result.calibration = record;
            result.summary.push_back(cat("calibration: ", samples->describe(), ", ", needed.size(),
                                         " activation range", needed.size() == 1 ? "" : "s", " (",
                                         calib::calibrator_name(calib_.method), ")",
                                         record.synthetic ? " on synthetic random inputs" : ""));
        }
        result.ranges = table;

        // Every new tensor and node, computed before the graph changes.
        Graph& g = model.graph;
        std::map<std::string, ScaleZp> act;  // by range source tensor
        const QuantRange aq = qrange(activation_type_, false, false);
        for (const auto& t : needed) {
            const auto& r = table->ranges.at(t);
            if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max)
                throw InputError(cat("activation '", t, "': range [", r.min, ", ", r.max,
                                     "] is not a finite interval"));
            act[t] = compute_scale_zp(r.min, r.max, aq, false);
        }
        std::vector<Tensor> new_inits;
        std::map<std::string, std::vector<ScaleZp>> wparams;
        std::vector<Node> weight_dq;
        const bool wsym = weight_type_ == DType::I8;
        const QuantRange wq = qrange(weight_type_, reduce_range_, wsym);
        Namer& names = *a.names;
        for (const auto& w : a.weights) {
            const Tensor* src = g.find_initializer(w.name);
            std::vector<float> v = src->to_floats();
            int64_t channels = w.axis < 0 ? 1 : src->shape[static_cast<size_t>(w.axis)];
            int64_t inner = 1;
            if (w.axis >= 0)
                for (size_t d = static_cast<size_t>(w.axis) + 1; d < src->shape.size(); ++d)
                    inner *= src->shape[d];
            auto channel_of = [&](size_t i) -> int64_t {
                return w.axis < 0 ? 0 : (static_cast<int64_t>(i) / inner) % channels;
            };
            std::vector<float> lo(static_cast<size_t>(channels), 0.0f),
                hi(static_cast<size_t>(channels), 0.0f);
            std::vector<bool> seen(static_cast<size_t>(channels), false);
            for (size_t i = 0; i < v.size(); ++i) {
                auto c = static_cast<size_t>(channel_of(i));
                if (!seen[c]) lo[c] = hi[c] = v[i];
                seen[c] = true;
                lo[c] = std::min(lo[c], v[i]);
                hi[c] = std::max(hi[c], v[i]);
            }
            std::vector<ScaleZp> params(static_cast<size_t>(channels));
            for (size_t c = 0; c < params.size(); ++c)
                params[c] = compute_scale_zp(lo[c], hi[c], wq, wsym);
            std::vector<int64_t> q(v.size());
            for (size_t i = 0; i < v.size(); ++i)
                q[i] =
                    quantize_value(v[i], params[static_cast<size_t>(channel_of(i))], weight_type_);
            std::string qname = names.fresh(w.name + "_quantized");
            std::string sname = names.fresh(w.name + "_scale");
            std::string zname = names.fresh(w.name + "_zero_point");
            new_inits.push_back(int_tensor(qname, weight_type_, src->shape, q));
            std::vector<float> scales;
            std::vector<int64_t> zps;
            for (const auto& p : params) {
                scales.push_back(p.scale);
                zps.push_back(p.zero_point);
            }
            std::vector<int64_t> pshape;
            if (w.axis >= 0) pshape = {channels};
            new_inits.push_back(f32_tensor(sname, pshape, scales));
            new_inits.push_back(int_tensor(zname, weight_type_, pshape, zps));
            Node dq;
            dq.op_type = "DequantizeLinear";
            dq.name = names.fresh(w.name + "_DequantizeLinear");
            dq.inputs = {qname, sname, zname};
            dq.outputs = {w.dq_output};
            if (w.axis >= 0) dq.attributes.push_back(int_attr("axis", w.axis));
            weight_dq.push_back(std::move(dq));
            wparams[w.name] = std::move(params);
        }
        for (const auto& b : a.biases) {
            const Tensor* src = g.find_initializer(b.name);
            std::vector<float> v = src->to_floats();
            const ScaleZp& x = act.at(a.qdq.at(b.activation));
            const auto& ws = wparams.at(b.weight);
            std::vector<float> scales(v.size());
            std::vector<int64_t> q(v.size());
            for (size_t i = 0; i < v.size(); ++i) {
                float ws_i = ws.size() == 1 ? ws[0].scale : ws[i].scale;
                scales[i] = x.scale * ws_i * b.beta;
                double r =
                    std::nearbyint(static_cast<double>(v[i]) / static_cast<double>(scales[i]));
                r = std::clamp(r, static_cast<double>(std::numeric_limits<int32_t>::min()),
                               static_cast<double>(std::numeric_limits<int32_t>::max()));
                q[i] = static_cast<int64_t>(r);
            }
            std::string qname = names.fresh(b.name + "_quantized");
            std::string sname = names.fresh(qname + "_scale");
            std::string zname = names.fresh(qname + "_zero_point");
            new_inits.push_back(int_tensor(qname, DType::I32, src->shape, q));
            bool per_channel = ws.size() > 1;
            if (!per_channel) scales.resize(1);
            std::vector<int64_t> pshape;
            if (per_channel) pshape = {static_cast<int64_t>(scales.size())};
            new_inits.push_back(f32_tensor(sname, pshape, scales));
            new_inits.push_back(
                int_tensor(zname, DType::I32, pshape, std::vector<int64_t>(scales.size(), 0)));
            Node dq;
            dq.op_type = "DequantizeLinear";
            dq.name = names.fresh(b.name + "_DequantizeLinear");
            dq.inputs = {qname, sname, zname};
            dq.outputs = {b.dq_output};
            if (per_channel) dq.attributes.push_back(int_attr("axis", 0));
            weight_dq.push_back(std::move(dq));
        }
        // Activation Q/DQ pairs, emitted right after the tensor is produced.
        std::map<std::string, std::vector<Node>> after;  // producer output -> Q, DQ
        std::vector<Node> at_start;
        auto producers = g.producers();
        for (const auto& t : a.qdq_order) {
            const std::string& src = a.qdq.at(t);
            std::string sname = src + "_scale", zname = src + "_zero_point";
            if (src == t) {
                sname = names.fresh(sname);
                zname = names.fresh(zname);
                scale_names_[t] = {sname, zname};
                const ScaleZp& p = act.at(t);
                new_inits.push_back(f32_tensor(sname, {}, {p.scale}));
                new_inits.push_back(int_tensor(zname, activation_type_, {}, {p.zero_point}));
            } else {
                sname = scale_names_.at(src).first;
                zname = scale_names_.at(src).second;
            }
            Node q;
            q.op_type = "QuantizeLinear";
            q.name = names.fresh(t + "_QuantizeLinear");
            q.inputs = {t, sname, zname};
            q.outputs = {names.fresh(t + "_QuantizeLinear_Output")};
            Node dq;
            dq.op_type = "DequantizeLinear";
            dq.name = names.fresh(t + "_DequantizeLinear");
            dq.inputs = {q.outputs[0], sname, zname};
            dq.outputs = {a.dq_output.at(t)};
            auto& list = producers.count(t) ? after[t] : at_start;
            list.push_back(std::move(q));
            list.push_back(std::move(dq));
        }
        scale_names_.clear();

        // Apply: nothing below throws on input.
        for (auto& t : new_inits) g.initializers.push_back(std::move(t));
        for (const auto& [node, inputs] : a.rewires)
            for (const auto& [i, name] : inputs) g.nodes[node].inputs[i] = name;
        for (size_t n : a.gemm_beta_reset) {
            auto& attrs = g.nodes[n].attributes;
            attrs.erase(std::remove_if(attrs.begin(), attrs.end(),
                                       [](const Attribute& x) { return x.name == "beta"; }),
                        attrs.end());
        }
        std::vector<Node> nodes;
        nodes.reserve(g.nodes.size() + weight_dq.size() + 2 * a.qdq.size());
        for (auto& n : weight_dq) nodes.push_back(std::move(n));
        for (auto& n : at_start) nodes.push_back(std::move(n));
        for (auto& n : g.nodes) {
            std::vector<std::string> outs = n.outputs;
            nodes.push_back(std::move(n));
            for (const auto& o : outs)
                if (auto it = after.find(o); it != after.end())
                    for (auto& x : it->second) nodes.push_back(std::move(x));
        }
        g.nodes = std::move(nodes);
        size_t removed = g.remove_unused_initializers();

        result.changed = true;
        result.rewrites = a.quantized.size();
        result.shapes_still_valid = true;
        std::map<std::string, size_t> by_op;
        for (const auto& op : a.quantized_ops) by_op[op]++;
        result.quantized_nodes = a.quantized_names;
        std::string ops;
        for (const auto& [op, count] : by_op) ops += cat(ops.empty() ? "" : ", ", count, " ", op);
        result.summary.push_back(
            cat("quantized ", a.quantized.size(), " node", a.quantized.size() == 1 ? "" : "s", " (",
                ops, "): ", a.qdq.size(), " activation Q/DQ pair", a.qdq.size() == 1 ? "" : "s",
                " ", type_word(activation_type_), ", ", a.weights.size(), " weight",
                a.weights.size() == 1 ? "" : "s", " ", type_word(weight_type_),
                per_channel_ ? " per channel" : " per tensor", ", ", a.biases.size(), " bias",
                a.biases.size() == 1 ? "" : "es", " int32; ", removed, " float initializer",
                removed == 1 ? "" : "s", " removed"));
        if (!a.skipped.empty())
            result.summary.push_back(cat(a.skipped.size(), " node",
                                         a.skipped.size() == 1 ? "" : "s",
                                         " kept float (reasons in the plan and report)"));
        return result;
    }

  private:
    // SmoothQuant's options: the MatMul / Gemm nodes with a weight this pass quantizes.
    SmoothQuantOptions smooth_options(const Model& model, const Analysis& a) const {
        SmoothQuantOptions o;
        o.alpha = smooth_alpha_;
        for (size_t i : a.quantized) {
            const Node& n = model.graph.nodes[i];
            if ((is_onnx_op(n, "MatMul") || is_onnx_op(n, "Gemm")) && n.inputs.size() > 1 &&
                model.graph.find_initializer(n.inputs[1]))
                o.nodes.push_back(n.name);
        }
        return o;
    }

    void check_opset(const Model& model) const {
        int64_t opset = model.opset("");
        int64_t need = per_channel_ ? 13 : 10;
        if (opset != 0 && opset < need)
            throw InputError(cat("the model is at opset ", opset, "; quantize-static needs opset ",
                                 need, per_channel_ ? " (per-channel QuantizeLinear axis)" : "",
                                 " (edgepack compress raises an .onnx source with the ONNX "
                                 "version converter)"));
    }

    bool selected(const Node& n) const {
        if (!op_types_.empty() && !op_types_.count(n.op_type)) return false;
        return selector_.selects(n.name) && !keep_float_.count(n.name);
    }

    Analysis analyze(const Model& model) const;

    Selector selector_;
    DType activation_type_ = DType::I8;
    DType weight_type_ = DType::I8;
    bool per_channel_ = true;
    bool reduce_range_ = false;
    double smooth_alpha_ = -1.0;  // -1: no SmoothQuant
    std::set<std::string> op_types_;
    calib::CalibratorOptions calib_;
    std::set<std::string> keep_float_;
    mutable std::map<std::string, std::pair<std::string, std::string>> scale_names_;
};

Analysis QuantizeStatic::analyze(const Model& model) const {
    const Graph& g = model.graph;
    Analysis a;
    a.names = std::make_unique<Namer>(g);
    const auto types = infer_elem_types(g);
    const auto producers = g.producers();
    const auto uses = g.use_counts();
    std::unordered_set<std::string> graph_inputs, graph_outputs;
    for (const auto& v : g.inputs) graph_inputs.insert(v.name);
    for (const auto& v : g.outputs) graph_outputs.insert(v.name);
    const int64_t opset = model.opset("");

    auto type_of = [&](const std::string& name) -> std::optional<DType> {
        auto it = types.find(name);
        if (it == types.end()) return std::nullopt;
        return it->second;
    };
    auto is_const = [&](const std::string& name) {
        return g.find_initializer(name) != nullptr && !graph_inputs.count(name);
    };
    // "" when `name` is a float activation (not a constant) a quantized node can read.
    auto not_activation = [&](const std::string& name) -> std::string {
        if (name.empty()) return "an input is missing";
        auto t = type_of(name);
        if (!t) return cat("input '", name, "' has an unknown element type");
        if (*t != DType::F32) return cat("input '", name, "' is ", dtype_name(*t), ", not f32");
        return {};
    };
    // "" when `name` is an f32 initializer that can be quantized as a weight.
    auto not_weight = [&](const std::string& what, const std::string& name) -> std::string {
        const Tensor* w = g.find_initializer(name);
        if (!w) return cat(what, " '", name, "' is not an initializer");
        if (graph_inputs.count(name))
            return cat(what, " '", name, "' is also a graph input (can be overridden at run time)");
        if (w->is_encoded())
            return cat(what, " '", name, "' is already encoded (quantize-weights)");
        if (w->dtype != DType::F32) return cat(what, " '", name, "' is ", dtype_name(w->dtype));
        return {};
    };

    std::map<std::string, std::string> marked;  // tensor -> range source
    std::vector<std::string> mark_order;
    auto mark = [&](const std::string& t, const std::string& source) {
        if (marked.count(t)) return;
        marked[t] = source;
        mark_order.push_back(t);
    };
    struct Read {
        size_t node, input;
        std::string name;
    };
    std::vector<Read> reads;  // activation inputs quantized nodes read through Q/DQ
    std::map<std::string, WeightPlan*> weight_of;
    std::vector<std::unique_ptr<WeightPlan>> weights;
    std::vector<OpClass> qclass(g.nodes.size(), OpClass::None);
    std::map<size_t, std::string> lines;

    // Plans weight `w` with `axis`; "" or the reason it cannot be (another axis).
    auto plan_weight = [&](const std::string& w, int64_t axis, const Node& n) -> std::string {
        if (auto it = weight_of.find(w); it != weight_of.end()) {
            if (it->second->axis != axis)
                return cat("weight '", w, "' is also read by ", it->second->node_label,
                           " with another channel axis");
            return {};
        }
        weights.push_back(std::make_unique<WeightPlan>());
        auto& p = *weights.back();
        p.name = w;
        p.axis = axis;
        p.node_label = n.label();
        weight_of[w] = &p;
        return {};
    };
    auto weight_words = [&](int64_t axis) {
        return cat(type_word(weight_type_),
                   axis >= 0 ? cat(" per channel (axis ", axis, ")") : std::string(" per tensor"));
    };

    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        const OpClass cls = op_class(n);
        bool has_float = false;
        for (const auto& in : n.inputs)
            if (!in.empty() && type_of(in) == DType::F32 && !is_const(in)) has_float = true;
        // Nodes without a float activation input (shape arithmetic, constants) are not
        // candidates; every other node is quantized or listed with its reason.
        if (!has_float) continue;
        if (cls == OpClass::None) {
            if (!is_onnx_op(n, "QuantizeLinear") && !is_onnx_op(n, "DequantizeLinear"))
                a.skipped.push_back(
                    {n.label(), cat(n.op_type, " is not an op quantize-static quantizes")});
            continue;
        }
        if (!op_types_.empty() && !op_types_.count(n.op_type)) {
            a.skipped.push_back({n.label(), cat(n.op_type, " is not in op_types")});
            continue;
        }
        if (keep_float_.count(n.name)) {
            a.skipped.push_back({n.label(), "kept float by the accuracy-aware fallback"});
            continue;
        }
        if (!selector_.selects(n.name)) {
            a.skipped.push_back({n.label(), "excluded by include/exclude"});
            continue;
        }
        auto skip = [&](std::string reason) {
            a.skipped.push_back({n.label(), std::move(reason)});
        };
        std::vector<std::pair<size_t, std::string>> act_inputs;  // index, name
        std::string line;
        bool mark_output = true;
        std::string output_source;  // "" own range

        if (cls == OpClass::Weighted) {
            if (n.inputs.size() < 2) {
                skip("fewer than two inputs");
                continue;
            }
            if (auto why = not_activation(n.inputs[0]); !why.empty()) {
                skip(why);
                continue;
            }
            const std::string& w = n.inputs[1];
            std::string bias;
            float beta = 1.0f;
            int64_t axis = -1;
            if (is_onnx_op(n, "MatMul") && !g.find_initializer(w)) {
                if (auto why = not_activation(w); !why.empty()) {
                    skip(why);
                    continue;
                }
                act_inputs = {{0, n.inputs[0]}, {1, w}};
                line = "both inputs activations";
            } else {
                if (auto why = not_weight("weight", w); !why.empty()) {
                    skip(why);
                    continue;
                }
                const Tensor& wt = *g.find_initializer(w);
                const size_t rank = wt.shape.size();
                if (is_onnx_op(n, "Conv")) {
                    if (rank < 3) {
                        skip(cat("weight '", w, "' has rank ", rank, " (Conv needs >= 3)"));
                        continue;
                    }
                    axis = 0;
                    if (n.inputs.size() > 2 && !n.inputs[2].empty()) bias = n.inputs[2];
                } else if (is_onnx_op(n, "MatMul")) {
                    if (rank != 2) {
                        skip(cat("weight '", w, "' has rank ", rank, " (MatMul weights: 2)"));
                        continue;
                    }
                    axis = 1;
                } else {  // Gemm
                    if (rank != 2) {
                        skip(cat("weight '", w, "' has rank ", rank, " (Gemm: 2)"));
                        continue;
                    }
                    axis = n.attr_int("transB", 0) != 0 ? 0 : 1;
                    beta = n.attr_float("beta", 1.0f);
                    if (n.inputs.size() > 2 && !n.inputs[2].empty()) bias = n.inputs[2];
                }
                if (!per_channel_) axis = -1;
                int64_t channels = axis >= 0 ? wt.shape[static_cast<size_t>(axis)]
                                             : wt.shape[is_onnx_op(n, "Conv") ? 0 : 0];
                if (is_onnx_op(n, "Gemm"))
                    channels = wt.shape[n.attr_int("transB", 0) != 0 ? 0 : 1];
                else if (is_onnx_op(n, "MatMul"))
                    channels = wt.shape[1];
                if (auto why = plan_weight(w, axis, n); !why.empty()) {
                    skip(why);
                    continue;
                }
                act_inputs = {{0, n.inputs[0]}};
                line = cat("weight '", w, "' ", weight_words(axis));
                std::string bias_note;
                if (!bias.empty()) {
                    const Tensor* bt = g.find_initializer(bias);
                    std::string why = not_weight("bias", bias);
                    if (why.empty() && (bt->shape.size() != 1 || bt->shape[0] != channels))
                        why = cat("bias '", bias, "' has shape ", shape_string(bt->shape),
                                  ", not [", channels, "]");
                    if (why.empty() && uses.at(bias) > 1)
                        why = cat("bias '", bias, "' is shared with another node");
                    if (why.empty()) {
                        BiasPlan b;
                        b.name = bias;
                        b.activation = n.inputs[0];
                        b.weight = w;
                        b.beta = beta;
                        b.node = i;
                        a.biases.push_back(b);
                        bias_note = ", bias int32";
                        if (is_onnx_op(n, "Gemm") && beta != 1.0f) a.gemm_beta_reset.insert(i);
                    } else {
                        bias_note = cat(", bias kept float: ", why);
                    }
                }
                line += bias_note;
            }
        } else if (cls == OpClass::Compute) {
            std::string why;
            std::vector<std::pair<size_t, std::string>> consts;
            for (size_t k = 0; k < n.inputs.size() && why.empty(); ++k) {
                const std::string& in = n.inputs[k];
                if (is_const(in)) {
                    why = not_weight("input", in);
                    consts.push_back({k, in});
                } else {
                    why = not_activation(in);
                    act_inputs.push_back({k, in});
                }
            }
            if (why.empty() && act_inputs.empty()) why = "no activation input (constant)";
            if (!why.empty()) {
                skip(why);
                continue;
            }
            std::string bad;
            for (const auto& [k, c] : consts)
                if (bad.empty()) bad = plan_weight(c, -1, n);
            if (!bad.empty()) {
                skip(bad);
                continue;
            }
            line =
                consts.empty()
                    ? cat(act_inputs.size(), " activation input", act_inputs.size() == 1 ? "" : "s")
                    : cat(act_inputs.size(), " activation input", act_inputs.size() == 1 ? "" : "s",
                          ", ", consts.size(), " constant", consts.size() == 1 ? "" : "s", " ",
                          weight_words(-1));
        } else if (cls == OpClass::SameRange) {
            const std::string& in = n.inputs.empty() ? std::string() : n.inputs[0];
            if (is_onnx_op(n, "MaxPool") && opset != 0 && opset < 12) {
                skip(cat("MaxPool has no int8 form before opset 12 (the model is at ", opset, ")"));
                continue;
            }
            if (is_onnx_op(n, "Gather") && is_const(in)) {
                skip("the table is an initializer (quantize-weights embeddings: true encodes it)");
                continue;
            }
            if (!marked.count(in)) {
                skip(cat("its input '", in,
                         "' is not quantized (same-range ops follow a quantized producer)"));
                continue;
            }
            act_inputs = {{0, in}};
            output_source = marked.at(in);
            line = "same range as its input";
        } else {  // Relu / Clip
            const std::string& in = n.inputs.empty() ? std::string() : n.inputs[0];
            if (!marked.count(in)) {
                skip(cat("its input '", in, "' is not quantized"));
                continue;
            }
            auto p = producers.find(in);
            bool fusable =
                p != producers.end() && marked.at(in) == in &&
                (qclass[p->second] == OpClass::Weighted || qclass[p->second] == OpClass::Compute) &&
                uses.at(in) == 1 && !graph_outputs.count(in) && !graph_inputs.count(in);
            if (fusable) {
                marked.erase(in);
                mark_order.erase(std::find(mark_order.begin(), mark_order.end(), in));
                line = cat("fused into the output range of ", g.nodes[p->second].label());
            } else {
                act_inputs = {{0, in}};
                line = "input and output quantized";
            }
        }

        // The node is quantized.
        qclass[i] = cls;
        a.quantized.push_back(i);
        a.quantized_names.push_back(n.name.empty() ? n.label() : n.name);
        a.quantized_ops.push_back(n.op_type);
        for (const auto& [k, in] : act_inputs) {
            mark(in, in);
            reads.push_back({i, k, in});
        }
        for (const auto& [k, in] : act_inputs) (void)k;
        if (mark_output && !n.outputs.empty() && !n.outputs[0].empty() &&
            !graph_outputs.count(n.outputs[0]) && type_of(n.outputs[0]) == DType::F32) {
            const std::string& out = n.outputs[0];
            mark(out, output_source.empty() ? out : output_source);
        }
        lines[i] = cat("quantize ", n.op_type, " ", n.label(), ": ", line);
        // Constants of compute nodes read the weight's DequantizeLinear output.
        if (cls == OpClass::Compute || cls == OpClass::Weighted)
            for (size_t k = 0; k < n.inputs.size(); ++k)
                if (auto it = weight_of.find(n.inputs[k]);
                    it != weight_of.end() && (cls == OpClass::Compute || k == 1))
                    a.rewires[i][k] = n.inputs[k];  // resolved below
    }

    // A marked tensor gets its Q/DQ pair when a quantized node reads it.
    for (const auto& r : reads) {
        if (!marked.count(r.name)) continue;  // fused away (cannot happen for a read)
        if (!a.qdq.count(r.name)) a.qdq[r.name] = marked.at(r.name);
        a.rewires[r.node][r.input] = r.name;
    }
    for (const auto& t : mark_order)
        if (a.qdq.count(t)) a.qdq_order.push_back(t);
    // The range sources of shared tensors are quantized themselves (their reader is the
    // same-range node); keep them first in order.
    for (const auto& t : a.qdq_order) {
        a.dq_output[t] = a.names->fresh(t + "_DequantizeLinear_Output");
        if (!a.qdq.count(a.qdq.at(t)))
            throw InternalError(cat("quantize-static: range source '", a.qdq.at(t), "' of '", t,
                                    "' has no Q/DQ pair"));
    }
    for (auto& w : weights) {
        w->dq_output = a.names->fresh(w->name + "_DequantizeLinear_Output");
        a.weights.push_back(*w);
    }
    for (auto& b : a.biases) b.dq_output = a.names->fresh(b.name + "_DequantizeLinear_Output");
    for (auto& [node, inputs] : a.rewires)
        for (auto& [k, name] : inputs) {
            if (auto it = a.dq_output.find(name); it != a.dq_output.end() && !weight_of.count(name))
                name = it->second;
            else if (auto w = weight_of.find(name); w != weight_of.end())
                name = w->second->dq_output;
        }
    for (const auto& b : a.biases) {
        const Node& n = g.nodes[b.node];
        a.rewires[b.node][2] = b.dq_output;
        (void)n;
    }
    for (size_t i : a.quantized) a.node_lines.push_back(lines[i]);
    return a;
}

}  // namespace

std::unique_ptr<Pass> make_quantize_static_pass() {
    return std::make_unique<QuantizeStatic>();
}

}  // namespace ep
