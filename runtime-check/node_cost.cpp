#include "runtime-check/node_cost.h"

#include <algorithm>
#include <string_view>
#include <vector>

#include "runtime-check/qdq_fusion.h"

namespace ep::rt {
namespace {

// Cycles per element or per multiply-add. A GEMM or convolution kernel does about eight
// float multiply-adds per cycle with AVX2 (two FMA ports of 8 lanes, at half their peak).
constexpr double kCheapCycles = 2;
constexpr double kTranscendentalCycles = 10;
constexpr double kMovementCycles = 1;
constexpr double kMacCycles = 1.0 / 8;

struct FormulaEntry {
    std::string_view domain, op_type;
    CostFormula formula;
};

// The one list of ops with a formula, by domain and op type.
const std::vector<FormulaEntry>& formula_table() {
    using F = CostFormula;
    static const std::vector<FormulaEntry> table = {
        // Elementwise arithmetic, comparisons, casts, quantization.
        {"", "Abs", F::Cheap},
        {"", "Add", F::Cheap},
        {"", "And", F::Cheap},
        {"", "BatchNormalization", F::Cheap},
        {"", "Cast", F::Cheap},
        {"", "CastLike", F::Cheap},
        {"", "Ceil", F::Cheap},
        {"", "Clip", F::Cheap},
        {"", "DequantizeLinear", F::Cheap},
        {"", "Div", F::Cheap},
        {"", "Equal", F::Cheap},
        {"", "Floor", F::Cheap},
        {"", "Greater", F::Cheap},
        {"", "GreaterOrEqual", F::Cheap},
        {"", "HardSigmoid", F::Cheap},
        {"", "HardSwish", F::Cheap},
        {"", "LeakyRelu", F::Cheap},
        {"", "Less", F::Cheap},
        {"", "LessOrEqual", F::Cheap},
        {"", "Max", F::Cheap},
        {"", "Mean", F::Cheap},
        {"", "Min", F::Cheap},
        {"", "Mul", F::Cheap},
        {"", "Neg", F::Cheap},
        {"", "Not", F::Cheap},
        {"", "Or", F::Cheap},
        {"", "PRelu", F::Cheap},
        {"", "QuantizeLinear", F::Cheap},
        {"", "Reciprocal", F::Cheap},
        {"", "Relu", F::Cheap},
        {"", "Round", F::Cheap},
        {"", "Sign", F::Cheap},
        {"", "Sqrt", F::Cheap},
        {"", "Sub", F::Cheap},
        {"", "Sum", F::Cheap},
        {"", "Where", F::Cheap},
        {"", "Xor", F::Cheap},
        // Transcendental functions and the row-wise ops built on them.
        {"", "Cos", F::Transcendental},
        {"", "Elu", F::Transcendental},
        {"", "Erf", F::Transcendental},
        {"", "Exp", F::Transcendental},
        {"", "Gelu", F::Transcendental},
        {"", "GroupNormalization", F::Transcendental},
        {"", "InstanceNormalization", F::Transcendental},
        {"", "LayerNormalization", F::Transcendental},
        {"", "Log", F::Transcendental},
        {"", "LogSoftmax", F::Transcendental},
        {"", "LpNormalization", F::Transcendental},
        {"", "Mish", F::Transcendental},
        {"", "Pow", F::Transcendental},
        {"", "RMSNormalization", F::Transcendental},
        {"", "Selu", F::Transcendental},
        {"", "Sigmoid", F::Transcendental},
        {"", "Sin", F::Transcendental},
        {"", "Softmax", F::Transcendental},
        {"", "Softplus", F::Transcendental},
        {"", "Softsign", F::Transcendental},
        {"", "Swish", F::Transcendental},
        {"", "Tanh", F::Transcendental},
        // Data movement and reductions: about one cycle per input element.
        {"", "ArgMax", F::Movement},
        {"", "ArgMin", F::Movement},
        {"", "Concat", F::Movement},
        {"", "DepthToSpace", F::Movement},
        {"", "Flatten", F::Movement},
        {"", "GlobalAveragePool", F::Movement},
        {"", "GlobalMaxPool", F::Movement},
        {"", "Identity", F::Movement},
        {"", "Pad", F::Movement},
        {"", "ReduceL1", F::Movement},
        {"", "ReduceL2", F::Movement},
        {"", "ReduceLogSumExp", F::Movement},
        {"", "ReduceMax", F::Movement},
        {"", "ReduceMean", F::Movement},
        {"", "ReduceMin", F::Movement},
        {"", "ReduceProd", F::Movement},
        {"", "ReduceSum", F::Movement},
        {"", "ReduceSumSquare", F::Movement},
        {"", "Reshape", F::Movement},
        {"", "Slice", F::Movement},
        {"", "SpaceToDepth", F::Movement},
        {"", "Split", F::Movement},
        {"", "Squeeze", F::Movement},
        {"", "Transpose", F::Movement},
        {"", "Unsqueeze", F::Movement},
        // Windows and products.
        {"", "AveragePool", F::Pool},
        {"", "MaxPool", F::Pool},
        {"", "LpPool", F::Pool},
        {"", "MatMul", F::MatMul},
        {"", "MatMulInteger", F::MatMul},
        {"", "QLinearMatMul", F::MatMul},
        {"", "Gemm", F::Gemm},
        {"", "Conv", F::Conv},
        {"", "ConvInteger", F::Conv},
        {"", "QLinearConv", F::Conv},
        {"", "ConvTranspose", F::ConvTranspose},
        // The plan's own fused nodes (qdq_fusion.h, elementwise_fusion.h): 8-bit elementwise
        // rows, chains of a few float elementwise steps, a Conv with its activation chain.
        {kFusedDomain, "QdqBinary", F::Cheap},
        {kFusedDomain, "ElementwiseChain", F::Transcendental},
        {kFusedDomain, "ConvActivation", F::Conv},
        // com.microsoft: the GenAI builder's and the transformer optimizer's ops.
        {"com.microsoft", "BiasGelu", F::Transcendental},
        {"com.microsoft", "FastGelu", F::Transcendental},
        {"com.microsoft", "QuickGelu", F::Transcendental},
        {"com.microsoft", "SimplifiedLayerNormalization", F::Transcendental},
        {"com.microsoft", "SkipLayerNormalization", F::Transcendental},
        {"com.microsoft", "SkipSimplifiedLayerNormalization", F::Transcendental},
        {"com.microsoft", "FusedMatMul", F::MatMul},
        {"com.microsoft", "QGemm", F::Gemm},
        {"com.microsoft", "MatMulNBits", F::MatMulNBits},
    };
    return table;
}

const Tensor* input_at(std::span<const Tensor* const> inputs, size_t i) {
    return i < inputs.size() ? inputs[i] : nullptr;
}

double elements(const Tensor* t) {
    return t ? static_cast<double>(t->element_count()) : 0.0;
}

double largest_input(std::span<const Tensor* const> inputs) {
    double most = 0;
    for (const Tensor* t : inputs) most = std::max(most, elements(t));
    return most;
}

double dim(const Tensor& t, size_t from_end) {
    return static_cast<double>(t.shape[t.shape.size() - 1 - from_end]);
}

// The data and weight inputs of the product ops (QLinear forms carry scales between).
size_t weight_index(const Node& node) {
    return node.op_type == "QLinearConv" || node.op_type == "QLinearMatMul" ||
                   node.op_type == "QGemm"
               ? 3
               : 1;
}

double product(const std::vector<int64_t>& dims, size_t from) {
    double p = 1;
    for (size_t i = from; i < dims.size(); ++i) p *= static_cast<double>(dims[i]);
    return p;
}

double stride_product(const Node& node, size_t spatial) {
    double p = 1;
    const std::vector<int64_t> strides = node.attr_ints("strides");
    for (size_t i = 0; i < spatial && i < strides.size(); ++i)
        p *= static_cast<double>(std::max<int64_t>(1, strides[i]));
    return p;
}

}  // namespace

CostFormula node_cost_formula(const Node& node) {
    std::string_view domain = node.domain;
    if (domain == "ai.onnx") domain = "";
    for (const FormulaEntry& e : formula_table())
        if (e.domain == domain && e.op_type == node.op_type) return e.formula;
    return CostFormula::None;
}

double node_cycles(CostFormula formula, const Node& node, std::span<const Tensor* const> inputs) {
    const Tensor* x = input_at(inputs, 0);
    switch (formula) {
        case CostFormula::None:
            return -1;
        case CostFormula::Cheap:
            return kCheapCycles * largest_input(inputs);
        case CostFormula::Transcendental:
            return kTranscendentalCycles * largest_input(inputs);
        case CostFormula::Movement:
            return kMovementCycles * largest_input(inputs);
        case CostFormula::Pool: {
            if (!x || x->shape.size() < 3) return -1;
            const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
            const double window = product(kernel, 0);
            const double per_input = std::max(1.0, window / stride_product(node, kernel.size()));
            return kMovementCycles * elements(x) * per_input;
        }
        case CostFormula::MatMul: {
            const Tensor* b = input_at(inputs, weight_index(node));
            if (!x || !b || b->shape.empty()) return -1;
            const double n = b->shape.size() == 1 ? 1.0 : dim(*b, 0);
            return kMacCycles * elements(x) * n;  // batch x M x K, times N
        }
        case CostFormula::Gemm: {
            const Tensor* b = input_at(inputs, weight_index(node));
            if (!x || !b || b->shape.size() != 2) return -1;
            const double n = node.attr_int("transB", 0) != 0 ? dim(*b, 1) : dim(*b, 0);
            return kMacCycles * elements(x) * n;
        }
        case CostFormula::MatMulNBits:
            if (!x) return -1;
            return kMacCycles * elements(x) * static_cast<double>(node.attr_int("N", 0));
        case CostFormula::Conv:
        case CostFormula::ConvTranspose: {
            const Tensor* w = input_at(inputs, weight_index(node));
            if (!x || !w || x->shape.size() < 3 || w->shape.size() != x->shape.size()) return -1;
            const size_t spatial = x->shape.size() - 2;
            const double taps = product(w->shape, 2);
            if (formula == CostFormula::ConvTranspose)  // every input pixel x its window
                return kMacCycles * elements(x) * dim(*w, spatial) * taps;
            // N x (input pixels / strides) output pixels, each M x C/group x taps.
            const double pixels = elements(x) / static_cast<double>(x->shape[1]);
            return kMacCycles * pixels / stride_product(node, spatial) *
                   static_cast<double>(w->shape[0]) * static_cast<double>(w->shape[1]) * taps;
        }
    }
    return -1;
}

}  // namespace ep::rt
