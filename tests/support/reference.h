// Naive, obviously-correct scalar implementations of the hot operators, used only by
// tests (tests/test_kernels.cpp) to check the fast kernels on awkward sizes.
//
// Inputs and outputs are float32 tensors; every sum is accumulated in double in the
// textbook loop order and rounded to float once at the end, so the result is as close
// to exact as a float32 tensor can be. Nothing here is optimized, threaded or shared
// with the kernels: each function is the formula, written out.
//
//   matmul      Y[..., i, j] = sum_k A[..., i, k] * B[..., k, j]     numpy batching, 1-D promotion
//   gemm        Y = alpha * op(A) op(B) + beta * C                    op = transpose or not; C
//   broadcast conv        Y[n, m, o] = B[m] + sum_{c in group(m), k} X[n, c, o * s - p_begin + k *
//   d] W[m, c, k] conv_transpose  Y[n, m, i * s - p_begin + k * d] += X[n, c, i] W[c, m, k] (+
//   B[m]) softmax     Y = exp(x - max) / sum exp(x - max) along one axis (log: x - max - log sum)
//   layer_norm  Y = (x - mean) / sqrt(var + eps) * scale + bias over axes [axis, rank)
//   batch_norm  Y = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + bias[c]   (inference)
//   binary      Y = A op B with numpy broadcasting (op: add, sub, mul, div)
//   unary       Y = f(X) for exp, log, sqrt, reciprocal, tanh, sigmoid, erf, gelu (erf and
//               tanh forms), relu, hard_swish: the libm function in double
// Shape errors throw InputError naming what did not match.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/tensor.h"

namespace ep::rt::ref {

[[nodiscard]] Tensor matmul(const Tensor& a, const Tensor& b);

struct GemmParams {
    bool trans_a = false;
    bool trans_b = false;
    double alpha = 1.0;
    double beta = 1.0;
};
[[nodiscard]] Tensor gemm(const Tensor& a, const Tensor& b, const Tensor* c, const GemmParams& p);

// Empty vectors mean the ONNX defaults (strides and dilations 1, pads 0); pads are
// [begin..., end...] as in ONNX.
struct ConvParams {
    int64_t group = 1;
    std::vector<int64_t> strides, pads, dilations;
    std::vector<int64_t> output_padding;  // conv_transpose only
};
[[nodiscard]] Tensor conv(const Tensor& x, const Tensor& w, const Tensor* bias,
                          const ConvParams& p);
[[nodiscard]] Tensor conv_transpose(const Tensor& x, const Tensor& w, const Tensor* bias,
                                    const ConvParams& p);

[[nodiscard]] Tensor softmax(const Tensor& x, int64_t axis, bool log = false);
[[nodiscard]] Tensor layer_norm(const Tensor& x, const Tensor& scale, const Tensor* bias,
                                int64_t axis, double eps);
[[nodiscard]] Tensor batch_norm(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                const Tensor& mean, const Tensor& var, double eps);

enum class BinaryOp { Add, Sub, Mul, Div };
[[nodiscard]] Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);

enum class UnaryOp {
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Tanh,
    Sigmoid,
    Erf,
    Gelu,
    GeluTanh,
    Relu,
    HardSwish
};
[[nodiscard]] Tensor unary(UnaryOp op, const Tensor& x);

// The same tensor with every element replaced by its absolute value: the reference of
// |A| |B| gives the magnitude sum_k |a_ik b_kj| that bounds float32 rounding error.
[[nodiscard]] Tensor abs(const Tensor& t);

}  // namespace ep::rt::ref
