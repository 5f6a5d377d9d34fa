// Mixed precision under a budget: which encoding each weight of quantize-weights gets.
//
// quantize-weights with `budget` ({"bits_per_weight": 4.5} or {"max_bytes": N}) and
// `candidates` (encoding names, e.g. ["int4g32", "int8g32"]) chooses one candidate per
// tensor, then quantizes the chosen plan by its normal path (rtn / gptq / awq). The budget
// counts the encoded bytes of the tensors the pass quantizes (the right side of the plan's
// "A MiB -> B MiB"); bits_per_weight is 8 * bytes / their weights, rounded down to a byte.
//
//   1. Sensitivity, per tensor t and candidate c: the error of the model with only t
//      quantized with c (round to nearest), everything else float:
//        kl       mean over calibration positions of KL(softmax(float logits) ||
//                 softmax(logits)), through the runtime, on the outputs validate infers as
//                 class scores along the last axis (rt::infer_output_kind: a classifier's or
//                 a decoder's logits, not a KV cache); needs a graph and calibration data
//        hessian  tr(E H E^T) with H = 2/n X^T X of the tensor's activation from the
//                 calibration capture (GPTQ's layer-output error; calib::hessian_error):
//                 one capture instead of a model run per tensor and candidate; tensors
//                 without a captured activation (Conv, Gather, in a subgraph) use H = I
//        weight   sum (w - q(w))^2: data-free, the only one a checkpoint (no graph) allows
//   2. Allocation: the choice that minimises the predicted total error (the sum of the
//      per-tensor errors) with total bytes <= the budget, a multiple-choice knapsack:
//      a Lagrangian sweep (each tensor takes argmin error + lambda * bytes; the smallest
//      lambda whose plan fits, found by bisection), then the bytes left are filled greedily
//      with the upgrade of best error drop per byte that still fits. Deterministic: ties go
//      to fewer bytes, then the earlier tensor and candidate.
//   3. The curve (kl and hessian): distinct plans of the sweep, spread by size, plus the
//      chosen one, each quantized in full (round to nearest) and measured through the
//      runtime (mean and max KL on the calibration positions): report.json
//      passes[].mixed_precision.curve.
//
// A named plan instead of a budget: "plan": "q4_k_m", llama.cpp's Q4_K_M rule
// (llama_tensor_get_type in src/llama-quant.cpp): the output matrix (the token embedding
// when it is tied), and attn_v and ffn_down of the layers where use_more_bits(i, n) holds
// (i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2) get the second candidate (Q6_K in llama.cpp),
// every other tensor the first (Q4_K). Roles come from the tensor names (GGUF, Hugging
// Face, Meta / llama2.c and the ORT GenAI builder's names; documented in docs/mixed-precision.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/encoding.h"
#include "ir/ir.h"

namespace ep {

struct PassContext;  // passes/pass.h

namespace mixed {

enum class Sensitivity : uint8_t { Kl, Hessian, Weight };

struct Budget {
    std::optional<double> bits_per_weight;
    std::optional<uint64_t> max_bytes;
    // The budget in bytes for tensors of `weights` weights in all.
    [[nodiscard]] uint64_t bytes_for(uint64_t weights) const;
    [[nodiscard]] std::string describe() const;  // "4.5 bits per weight", "10000 bytes"
};

// What the recipe asked for (quantize-weights' budget / candidates / plan / sensitivity).
struct Options {
    std::optional<Budget> budget;
    std::vector<Encoding> candidates;  // axis 1; the tensor's axis is set per tensor
    std::string plan;                  // "" or "q4_k_m"
    Sensitivity sensitivity = Sensitivity::Kl;
    int64_t samples = 8;       // kl: calibration samples measured (0: all)
    int64_t curve_points = 6;  // plans measured for the curve, the chosen one included
    [[nodiscard]] bool active() const { return budget.has_value() || !plan.empty(); }
};

// Parses and checks the options; throws InputError naming the field ("budget",
// "budget.bits_per_weight", "candidates[1]", "plan", ...).
[[nodiscard]] Options parse_options(const nlohmann::json& options);

// One tensor the pass quantizes, with what each candidate would cost it.
struct Item {
    std::string name;
    const Graph* graph = nullptr;  // the graph holding the initializer
    uint64_t weights = 0;          // logical elements
    int64_t rows = 0, cols = 0;    // stored orientation
    std::string activation;        // captured activation ("" for none)
    // The encodings this tensor may take (candidates with its axis, or the one fixed
    // encoding of a Conv / recurrent weight) and their stored bytes.
    std::vector<Encoding> options;
    std::vector<uint64_t> bytes;
};

struct Choice {
    std::vector<size_t> option;  // per item: index into Item::options
    uint64_t bytes = 0;
    double predicted = 0.0;          // sum of the chosen per-tensor errors (0 for a named plan)
    nlohmann::json report;           // report.json passes[].mixed_precision
    std::vector<std::string> lines;  // summary lines: one per tensor, then the curve
};

// The named plan's choice (plan "q4_k_m"), data-free: the index of the option per item.
[[nodiscard]] std::vector<size_t> named_plan(const Options& options,
                                             const std::vector<Item>& items);

// The budget in bytes and a check that it can be met: InputError naming budget.* with the
// smallest and largest sizes the candidates give when not.
[[nodiscard]] uint64_t budget_bytes(const Options& options, const std::vector<Item>& items);

// The per-tensor errors, allocation and measured curve (steps 1-3 above) on `model` as it is
// before the pass; the kl / hessian modes read context.calibration.
[[nodiscard]] Choice choose(const Model& model, const std::vector<Item>& items,
                            const Options& options, const PassContext& context);

// Step 2 alone: cost[i][j] / bytes[i][j] for item i, option j. nullopt when even the
// cheapest plan exceeds `budget`.
struct Allocation {
    std::vector<size_t> option;
    uint64_t bytes = 0;
    double predicted = 0.0;
};
[[nodiscard]] std::optional<Allocation> allocate(const std::vector<std::vector<double>>& cost,
                                                 const std::vector<std::vector<uint64_t>>& bytes,
                                                 uint64_t budget);

}  // namespace mixed
}  // namespace ep
