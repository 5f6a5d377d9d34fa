// Activations and other float elementwise ops real models use: PRelu, Selu, Celu, Mish, Swish,
// ThresholdedRelu, Softsign, Shrink, trigonometric/hyperbolic, IsNaN/IsInf, Dropout
// (inference: identity) and CastLike. Computed in double, stored in the input's type.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

template <typename F>
void unary(OpContext& c, F f) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail(cat("expected a float input, found ", dtype_name(x.dtype)));
    Tensor y = make_tensor(x.dtype, x.shape);
    int64_t n = x.element_count();
    if (x.dtype == DType::F64) {
        auto xi = x.values<double>();
        auto yo = y.mutable_values<double>();
        for (int64_t i = 0; i < n; ++i) yo[static_cast<size_t>(i)] = f(xi[static_cast<size_t>(i)]);
    } else {
        const std::byte* in = x.data.bytes().data();
        std::byte* out = y.data.mutable_bytes().data();
        for (int64_t i = 0; i < n; ++i)
            store_float(x.dtype, out, i,
                        static_cast<float>(f(static_cast<double>(load_float(x.dtype, in, i)))));
    }
    c.outputs.push_back(std::move(y));
}

}  // namespace

void op_selu(OpContext& c) {
    double a = c.node.attr_float("alpha", 1.67326319217681884765625f),
           g = c.node.attr_float("gamma", 1.05070102214813232421875f);
    unary(c, [a, g](double x) { return x > 0 ? g * x : g * (a * std::exp(x) - a); });
}
void op_celu(OpContext& c) {
    double a = c.node.attr_float("alpha", 1.0f);
    unary(c, [a](double x) { return std::max(0.0, x) + std::min(0.0, a * (std::exp(x / a) - 1)); });
}
void op_thresholded_relu(OpContext& c) {
    double a = c.node.attr_float("alpha", 1.0f);
    unary(c, [a](double x) { return x > a ? x : 0.0; });
}
void op_softsign(OpContext& c) {
    unary(c, [](double x) { return x / (1 + std::abs(x)); });
}
void op_shrink(OpContext& c) {
    double l = c.node.attr_float("lambd", 0.5f), b = c.node.attr_float("bias", 0.0f);
    unary(c, [l, b](double x) { return x < -l ? x + b : x > l ? x - b : 0.0; });
}
// Mish (opset 18): x * tanh(softplus(x)).
void op_mish(OpContext& c) {
    unary(c, [](double x) { return x * std::tanh(std::log1p(std::exp(x))); });
}
// Swish (opset 24): x * sigmoid(alpha * x).
void op_swish(OpContext& c) {
    double a = c.node.attr_float("alpha", 1.0f);
    unary(c, [a](double x) { return x / (1 + std::exp(-a * x)); });
}
void op_tan(OpContext& c) {
    unary(c, [](double x) { return std::tan(x); });
}
void op_asin(OpContext& c) {
    unary(c, [](double x) { return std::asin(x); });
}
void op_acos(OpContext& c) {
    unary(c, [](double x) { return std::acos(x); });
}
void op_atan(OpContext& c) {
    unary(c, [](double x) { return std::atan(x); });
}
void op_sinh(OpContext& c) {
    unary(c, [](double x) { return std::sinh(x); });
}
void op_cosh(OpContext& c) {
    unary(c, [](double x) { return std::cosh(x); });
}
void op_asinh(OpContext& c) {
    unary(c, [](double x) { return std::asinh(x); });
}
void op_acosh(OpContext& c) {
    unary(c, [](double x) { return std::acosh(x); });
}
void op_atanh(OpContext& c) {
    unary(c, [](double x) { return std::atanh(x); });
}

void op_prelu(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& slope = c.input(1);
    if (!is_float(x.dtype) || x.dtype != slope.dtype)
        c.fail("expected float X and slope of the same dtype");
    std::array<const Tensor*, 2> ins{&x, &slope};
    Broadcast bc = make_broadcast(c, ins);
    Tensor y = make_tensor(x.dtype, bc.shape);
    const std::byte* px = x.data.bytes().data();
    const std::byte* ps = slope.data.bytes().data();
    std::byte* py = y.data.mutable_bytes().data();
    for_each_broadcast<2>(c.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
        float v = load_float(x.dtype, px, off[0]);
        store_float(x.dtype, py, o, v < 0 ? v * load_float(x.dtype, ps, off[1]) : v);
    });
    c.outputs.push_back(std::move(y));
}

void op_is_nan(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail("expected a float input");
    Tensor y = make_tensor(DType::Bool, x.shape);
    for (int64_t i = 0; i < x.element_count(); ++i)
        y.mutable_values<uint8_t>()[static_cast<size_t>(i)] =
            x.dtype == DType::F64 ? std::isnan(x.values<double>()[static_cast<size_t>(i)])
                                  : std::isnan(load_float(x.dtype, x.data.bytes().data(), i));
    c.outputs.push_back(std::move(y));
}

void op_is_inf(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail("expected a float input");
    bool pos = c.node.attr_int("detect_positive", 1) != 0,
         neg = c.node.attr_int("detect_negative", 1) != 0;
    Tensor y = make_tensor(DType::Bool, x.shape);
    for (int64_t i = 0; i < x.element_count(); ++i) {
        double v = x.dtype == DType::F64 ? x.values<double>()[static_cast<size_t>(i)]
                                         : load_float(x.dtype, x.data.bytes().data(), i);
        y.mutable_values<uint8_t>()[static_cast<size_t>(i)] =
            std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
    }
    c.outputs.push_back(std::move(y));
}

// Inference (or training with ratio 0): Dropout is the identity; the mask is all true.
void op_dropout(OpContext& c) {
    const Tensor& x = c.input(0);
    bool training = c.has_input(2) && read_scalar(c, *c.inputs[2]) != 0.0;
    double ratio = c.has_input(1) ? read_scalar(c, *c.inputs[1]) : 0.5;
    if (training && ratio != 0.0)
        c.fail("training-mode dropout with a non-zero ratio is random and is not supported");
    c.outputs.push_back(x);
    if (c.node.outputs.size() > 1 && !c.node.outputs[1].empty()) {
        Tensor mask = make_tensor(DType::Bool, x.shape);
        std::fill(mask.mutable_values<uint8_t>().begin(), mask.mutable_values<uint8_t>().end(),
                  uint8_t{1});
        c.outputs.push_back(std::move(mask));
    }
}

void op_cast_like(OpContext& c) {
    const Tensor& like = c.input(1);
    Node cast = c.node;
    cast.attributes = {int_attr("to", traits(like.dtype).onnx_code)};
    for (const auto& a : c.node.attributes)
        if (a.name == "saturate" || a.name == "round_mode") cast.attributes.push_back(a);
    OpContext inner{cast, {c.inputs[0]}, {}, c.options, c.opset, nullptr};
    op_cast(inner);
    c.outputs.push_back(std::move(inner.outputs[0]));
}

}  // namespace ep::rt
