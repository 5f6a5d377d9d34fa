// The loss ops exported evaluation graphs carry: NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss (ONNX opset 12/13).
//
// input / scores X: [N, C] or [N, C, d1, ..., dk] (float family); target / labels T:
// [N] or [N, d1, ..., dk] (int32 / int64), each in [0, C) or equal to ignore_index;
// optional weight W: [C].
//   loss[n, d] = -w[n, d] * X'[n, T[n, d], d],  w[n, d] = W[T[n, d]] (1 without W),
//                0 where T[n, d] == ignore_index (and loss 0 there)
// X' is X for NegativeLogLikelihoodLoss and log_softmax(X) over C for
// SoftmaxCrossEntropyLoss. reduction "none": loss, shaped like T; "sum": sum of loss;
// "mean" (default): sum of loss / sum of w. SoftmaxCrossEntropyLoss's optional second
// output is log_softmax(X), shaped like X. Computed in double in one fixed order (serial),
// stored in X's dtype: the same bits for any thread count.
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime-check/ops/element_access.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

void loss(OpContext& c, bool softmax) {
    const Tensor& x = c.input(0);
    const Tensor& target = c.input(1);
    const Tensor* weight = c.has_input(2) ? c.inputs[2] : nullptr;
    if (!is_float(x.dtype)) c.fail(cat("input of type ", dtype_name(x.dtype), ": expected float"));
    if (x.shape.size() < 2)
        c.fail(cat("input of shape ", shape_string(x.shape), ": expected [N, C, ...]"));
    if (target.dtype != DType::I32 && target.dtype != DType::I64)
        c.fail(cat("target of type ", dtype_name(target.dtype), ": expected int32 or int64"));
    std::vector<int64_t> want_target = x.shape;
    want_target.erase(want_target.begin() + 1);
    if (target.shape != want_target)
        c.fail(cat("target of shape ", shape_string(target.shape), " for input of shape ",
                   shape_string(x.shape), ": expected ", shape_string(want_target)));
    const int64_t n = x.shape[0], classes = x.shape[1];
    const int64_t inner = n == 0 || classes == 0 ? 0 : x.element_count() / (n * classes);
    if (weight && (weight->shape != std::vector<int64_t>{classes} || weight->dtype != x.dtype))
        c.fail(cat("weight of type ", dtype_name(weight->dtype), " and shape ",
                   shape_string(weight->shape), ": expected ", dtype_name(x.dtype), " [", classes,
                   "]"));
    const Attribute* ii = c.node.attr("ignore_index");
    const bool has_ignore = ii != nullptr;
    const int64_t ignore = c.node.attr_int("ignore_index", 0);
    const std::string reduction = c.node.attr_string("reduction", "mean");
    if (reduction != "none" && reduction != "sum" && reduction != "mean")
        c.fail(cat("reduction '", reduction, "': expected none, sum or mean"));
    auto labels = read_ints(c, target);

    // X' in double: the input itself, or its log_softmax over the class axis.
    std::vector<double> xs(static_cast<size_t>(x.element_count()));
    for (int64_t i = 0; i < x.element_count(); ++i) xs[static_cast<size_t>(i)] = load_double(x, i);
    if (softmax) {
        for (int64_t b = 0; b < n; ++b)
            for (int64_t d = 0; d < inner; ++d) {
                auto at = [&](int64_t k) -> double& {
                    return xs[static_cast<size_t>((b * classes + k) * inner + d)];
                };
                double mx = -std::numeric_limits<double>::infinity();
                for (int64_t k = 0; k < classes; ++k) mx = std::max(mx, at(k));
                double sum = 0;
                for (int64_t k = 0; k < classes; ++k) sum += std::exp(at(k) - mx);
                double log_sum = std::log(sum);
                for (int64_t k = 0; k < classes; ++k) at(k) = at(k) - mx - log_sum;
            }
    }

    Tensor out = make_tensor(x.dtype, reduction == "none" ? target.shape : std::vector<int64_t>{});
    double total = 0, total_weight = 0;
    for (int64_t b = 0; b < n; ++b)
        for (int64_t d = 0; d < inner; ++d) {
            const int64_t i = b * inner + d;
            const int64_t t = labels[static_cast<size_t>(i)];
            double l = 0, w = 0;
            if (!(has_ignore && t == ignore)) {
                if (t < 0 || t >= classes)
                    c.fail(cat("target ", t, " at index ", i, " is outside [0, ", classes, ")",
                               has_ignore ? cat(" and is not ignore_index ", ignore) : ""));
                w = weight ? load_double(*weight, t) : 1.0;
                l = -w * xs[static_cast<size_t>((b * classes + t) * inner + d)];
            }
            if (reduction == "none") store_double(out, i, l);
            total += l;
            total_weight += w;
        }
    if (reduction == "sum") store_double(out, 0, total);
    if (reduction == "mean") store_double(out, 0, total / total_weight);
    c.outputs.push_back(std::move(out));
    if (softmax && c.node.outputs.size() > 1 && !c.node.outputs[1].empty()) {
        Tensor log_prob = make_uninitialized_tensor(x.dtype, x.shape);
        for (int64_t i = 0; i < x.element_count(); ++i)
            store_double(log_prob, i, xs[static_cast<size_t>(i)]);
        c.outputs.push_back(std::move(log_prob));
    }
}

}  // namespace

void op_negative_log_likelihood_loss(OpContext& c) {
    loss(c, false);
}
void op_softmax_cross_entropy_loss(OpContext& c) {
    loss(c, true);
}

}  // namespace ep::rt
