// SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training
// Quantization for Large Language Models", 2023): per-channel migration of activation
// outliers into the weights, so that per-tensor int8 activations lose less. A function the
// quantize-static pass calls for its `smooth_alpha` option (not a pass of its own).
//
// For an activation X [..., K] that MatMul / Gemm nodes read as their A input, with float
// initializer weights W (MatMul: [K, N], channel j = row j; Gemm: transB = 0 as MatMul,
// transB = 1 [N, K], channel j = column j), per input channel j:
//
//   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)
//
// max|X_j| over every value of channel j on the calibration samples (captured through the
// runtime on the model as it is: calib::capture_activations, abs_max), max|W_j| over channel
// j of every smoothed reader's W (q/k/v projections of one X share one s). As the reference
// implementation, max|W_j| and s_j are clamped below at 1e-5; s_j = 1 where max|X_j| = 0
// (a channel the calibration never saw move). Then W'_j = s_j W_j and X' = X / s, so
// X' W' = X W and the float model computes the same function (to rounding).
//
// X / s is folded into the op producing X when no other node (and no graph output) reads X:
//   LayerNormalization (axis -1)         scale_j /= s_j, bias_j /= s_j
//   Mul(Y, g), g a [K] (or [1, .., K]) f32 initializer     g_j /= s_j
//   MatMul(Y, W0), W0 a [K0, K] f32 initializer           column j of W0 /= s_j
//   Gemm(Y, W0, C), transA = 0, f32 initializers, C absent or of K elements
//                                        output column j of W0 /= s_j, C_j /= s_j
// (each folded initializer read by that op alone); otherwise a Mul(X, 1/s) node named
// "<X>_smooth" writing "<X>_smoothed" (with initializer "<X>_smooth_scale") is inserted
// before the first smoothed reader, and the smoothed readers read its output; other
// readers keep reading X.
//
// A MatMul / Gemm is not smoothed (and is listed in `skipped` with the reason) when its B
// is not a float initializer of rank 2 read by it alone, is encoded (already quantized) or
// is also a graph input, or when Gemm has transA = 1. Everything is checked and planned
// before the model changes; a failure (bad alpha, missing calibration data) leaves it as
// it was.
#pragma once

#include <string>
#include <vector>

#include "ir/ir.h"
#include "passes/pass.h"

namespace ep {

struct SmoothQuantOptions {
    double alpha = 0.5;              // migration strength, in [0, 1]
    std::vector<std::string> nodes;  // MatMul / Gemm node names to smooth; empty: all eligible
};

struct SmoothedActivation {
    std::string activation;            // X
    std::vector<std::string> readers;  // the MatMul / Gemm nodes smoothed, in graph order
    int64_t channels = 0;              // K
    std::string folded_into;           // "Mul 'norm'", or "inserted Mul 'X_smooth'"
    double max_before = 0.0;           // max over channels of max|X_j|
    double max_after = 0.0;            // max over channels of max|X_j| / s_j
    std::vector<float> scales;         // s, K values
};

struct [[nodiscard]] SmoothQuantResult {
    std::vector<SmoothedActivation> smoothed;
    std::vector<Skipped> skipped;  // nodes asked for (or eligible by op) left as they were
    // "smooth 'X' (64 channels) for MatMul 'q', 'k', 'v': folded into Mul 'norm'; max |x|
    // 12.5 -> 3.06", one per smoothed activation.
    [[nodiscard]] std::vector<std::string> summary() const;
};

// What smooth_quant would do on `model`, without changing it or running it (--dry-run): one
// line per activation it would smooth, "smooth 'X' (64 channels) for MatMul 'q', 'k', 'v':
// fold into Mul 'norm'", then one per node it would skip with the reason.
[[nodiscard]] std::vector<std::string> plan_smooth_quant(const Model& model,
                                                         const SmoothQuantOptions& options);

// Captures the per-channel maxima on context.calibration (InputError when it is null or
// alpha is outside [0, 1]) and smooths `model` in place. context.progress gets a
// "smoothquant" step advanced per sample; context.threads runs the capture.
SmoothQuantResult smooth_quant(Model& model, const SmoothQuantOptions& options,
                               const PassContext& context);

}  // namespace ep
