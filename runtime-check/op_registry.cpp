#include "runtime-check/op_registry.h"

#include <algorithm>

#include "runtime-check/ops.h"

namespace ep::rt {

const std::vector<OpEntry>& op_table() {
    // The one explicit list, sorted by op type.
    static const std::vector<OpEntry> table = {
        {"", "Abs", op_abs},
        {"", "Add", op_add},
        {"", "And", op_and},
        {"", "ArgMax", op_arg_max},
        {"", "ArgMin", op_arg_min},
        {"", "AveragePool", op_average_pool},
        {"", "BatchNormalization", op_batch_normalization},
        {"", "Cast", op_cast},
        {"", "Ceil", op_ceil},
        {"", "Clip", op_clip},
        {"", "Concat", op_concat},
        {"", "Constant", op_constant},
        {"", "ConstantOfShape", op_constant_of_shape},
        {"", "Conv", op_conv},
        {"", "ConvTranspose", op_conv_transpose},
        {"", "Cos", op_cos},
        {"", "Div", op_div},
        {"", "Elu", op_elu},
        {"", "Equal", op_equal},
        {"", "Erf", op_erf},
        {"", "Exp", op_exp},
        {"", "Expand", op_expand},
        {"", "Flatten", op_flatten},
        {"", "Floor", op_floor},
        {"", "Gather", op_gather},
        {"", "Gelu", op_gelu},
        {"", "Gemm", op_gemm},
        {"", "GlobalAveragePool", op_global_average_pool},
        {"", "GlobalMaxPool", op_global_max_pool},
        {"", "Greater", op_greater},
        {"", "GreaterOrEqual", op_greater_or_equal},
        {"", "HardSigmoid", op_hard_sigmoid},
        {"", "HardSwish", op_hard_swish},
        {"", "Identity", op_identity},
        {"", "If", op_if},
        {"", "LayerNormalization", op_layer_normalization},
        {"", "LeakyRelu", op_leaky_relu},
        {"", "Less", op_less},
        {"", "LessOrEqual", op_less_or_equal},
        {"", "Log", op_log},
        {"", "LogSoftmax", op_log_softmax},
        {"", "MatMul", op_matmul},
        {"", "Max", op_max},
        {"", "MaxPool", op_max_pool},
        {"", "Mean", op_mean},
        {"", "Min", op_min},
        {"", "Mod", op_mod},
        {"", "Mul", op_mul},
        {"", "Neg", op_neg},
        {"", "Not", op_not},
        {"", "Or", op_or},
        {"", "Pad", op_pad},
        {"", "Pow", op_pow},
        {"", "Range", op_range},
        {"", "Reciprocal", op_reciprocal},
        {"", "ReduceL1", op_reduce_l1},
        {"", "ReduceL2", op_reduce_l2},
        {"", "ReduceLogSum", op_reduce_log_sum},
        {"", "ReduceLogSumExp", op_reduce_log_sum_exp},
        {"", "ReduceMax", op_reduce_max},
        {"", "ReduceMean", op_reduce_mean},
        {"", "ReduceMin", op_reduce_min},
        {"", "ReduceProd", op_reduce_prod},
        {"", "ReduceSum", op_reduce_sum},
        {"", "ReduceSumSquare", op_reduce_sum_square},
        {"", "Relu", op_relu},
        {"", "Reshape", op_reshape},
        {"", "Round", op_round},
        {"", "Shape", op_shape},
        {"", "Sigmoid", op_sigmoid},
        {"", "Sign", op_sign},
        {"", "Sin", op_sin},
        {"", "Size", op_size},
        {"", "Slice", op_slice},
        {"", "Softmax", op_softmax},
        {"", "Softplus", op_softplus},
        {"", "Split", op_split},
        {"", "Sqrt", op_sqrt},
        {"", "Squeeze", op_squeeze},
        {"", "Sub", op_sub},
        {"", "Sum", op_sum},
        {"", "Tanh", op_tanh},
        {"", "Tile", op_tile},
        {"", "TopK", op_top_k},
        {"", "Transpose", op_transpose},
        {"", "Unsqueeze", op_unsqueeze},
        {"", "Where", op_where},
        {"", "Xor", op_xor},
    };
    return table;
}

KernelFn find_kernel(std::string_view domain, std::string_view op_type) {
    if (domain == "ai.onnx") domain = "";
    for (const auto& e : op_table())
        if (e.domain == domain && e.op_type == op_type) return e.kernel;
    return nullptr;
}

}  // namespace ep::rt
