// Accuracy-aware fallback (the recipe's "fallback" section, docs/quantization.md): when the
// gates miss after an activation-quantizing pass, the quantized nodes that hurt most go
// back to float one at a time until the gates hold or the budget (max_nodes) is spent.
//
//   1. The passes before the fallback's pass (FallbackConfig::pass_index) run once; the
//      model as it is then is kept as `before` (tensor bytes are shared copy-on-write).
//   2. That pass and every pass after it run on a copy of `before`: the first quantized
//      model. Its PassResult::quantized_nodes are the candidates, and its
//      PassResult::ranges go to every later run (PassContext::ranges, unless the recipe gave
//      ranges), so a re-run does not capture activations again.
//   3. `measure` gives the report metrics of a model in memory (compress: the recipe's
//      validation data through rt::Executor, no per-layer comparison); the gates on the
//      outputs (compares_outputs) are judged on them. They hold: nothing goes back to float.
//   4. The candidates are ranked, worst first, on the calibration samples:
//        sqnr      per node, 10 log10(sum x^2 / sum (x - q)^2) over every element of its
//                  first float output and every sample: x from `before`, q from the
//                  quantized model (a quantized node keeps its name and output names).
//                  Lowest first. A node's error includes what reached it from the nodes
//                  before it, so deeper nodes tend to rank first; ablation measures each
//                  node alone.
//        ablation  per node, the pass re-run with only that node in float: the SQNR of the
//                  graph's float outputs (all of them, every sample) against `before`, minus
//                  that SQNR with every node quantized. Largest gain first.
//      Ties (and nodes whose score cannot be measured, last) keep the pass's order.
//   5. The next ranked node goes back to float: Pass::keep_float(every node returned so
//      far), the pass and the passes after it re-run on a copy of `before`, the gates
//      judged again. Each step records the node, its score, its cost (the model's tensor
//      bytes after minus before the step) and its gain (each judged metric before and
//      after). A node whose step changes no judged metric by a single bit (a pooling or
//      shape op reading values already rounded for the node before it computes the same)
//      stays quantized, is listed as "no_effect" and does not count against max_nodes. It stops
//      when the gates hold, after max_nodes nodes returned, or with no candidate left.
// The model left is the last one judged: the gates hold on it, or the budget is spent and
// the run's verdict fails as any failed gate does (exit 1). Sizes, latency and peak memory
// are not judged in the loop (they are judged on the written output as always): the report
// lists those gates under "not_judged". Deterministic: the executors give the same bits for
// any thread count, sums are in double in a fixed order, ties keep the pass's order.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compressor/pass_manager.h"

namespace ep {

namespace calib {
class DataProvider;
}
class Progress;

// The report metrics (report.json "metrics": kl_mean, top1_agreement, accuracy_drop, ...) of
// a candidate model in memory, measured on the validation data.
using FallbackMeasure = std::function<nlohmann::json(const Model& candidate)>;

struct FallbackSetup {
    FallbackConfig config;
    std::vector<Limit> gates;                           // the recipe's, all of them
    const calib::DataProvider* ranking_data = nullptr;  // the calibration samples
    FallbackMeasure measure;
};

struct FallbackRun {
    std::vector<PassRecord> records;  // one per pass; the fallback's pass from its last run
    nlohmann::json report;            // report.json "fallback" (docs/reports.md)
};

// Runs every pass of `manager` on `model` with the fallback of `setup` (steps 1-5 above).
// `log` gets one line per decision; `progress` (may be null) the "fallback ranking" and
// "fallback" steps.
[[nodiscard]] FallbackRun run_with_fallback(PassManager& manager, Model& model,
                                            const PassManagerOptions& options, std::ostream& log,
                                            const FallbackSetup& setup, Progress* progress);

// The dry-run plan's lines for the fallback: which pass, the budget, the ranking, the gates
// judged in the loop and those that are not.
[[nodiscard]] std::vector<std::string> fallback_plan(const FallbackConfig& config,
                                                     const std::vector<PassConfig>& passes,
                                                     const std::vector<Limit>& gates);

[[nodiscard]] const char* fallback_rank_name(FallbackRank rank);  // "sqnr", "ablation"

}  // namespace ep
