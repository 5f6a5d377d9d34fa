// Gates and baseline checks: the verdict of `edgepack compress` (docs/ci.md).
//
// A gate is a limit on one metric of the report (report.json "metrics"): `max_*` gates pass
// when value <= limit, `min_*` gates when value >= limit. A baseline check compares a
// metric with the same metric in an earlier report.json: it passes when the metric did not
// get worse by more than the tolerance the recipe sets (absolute in the metric's unit, or a
// fraction of the earlier value for sizes, latencies and memory). Both produce the same
// check objects (report.json "gates" and "baseline.checks"):
//   {"name", "metric", "comparison" ("<=" / ">="), "limit", "value", "passed", "detail"}
// A metric that was not measured (null) fails its check, with a detail saying so; the
// recipe loader already refuses gates whose metric the recipe cannot measure.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ep {

// What a gate or a baseline check needs from the recipe to be measurable.
enum class MetricNeeds : uint8_t {
    Nothing,     // sizes: known after the write
    Validation,  // a "validate" section
    Labels,      // validate.labels
    Benchmark,   // validate.benchmark_runs > 0
    CtcDecode,   // an output decoded with CTC (validate.outputs.NAME.decode = ctc)
};

struct GateSpec {
    const char* name;    // the recipe key: "max_kl_mean"
    const char* metric;  // the report metric it reads: "kl_mean"
    bool at_most;        // true: value <= limit; false: value >= limit
    MetricNeeds needs;
    const char* help;
    double min = 0;  // the smallest limit the recipe may set
    double max = 1e300;
};

struct BaselineSpec {
    const char* metric;    // the recipe key under "baseline" and the metric compared
    bool lower_is_better;  // kl_mean: yes; top1_agreement: no
    bool relative;         // tolerance is a fraction of the earlier value
    MetricNeeds needs;
    const char* help;
};

[[nodiscard]] const std::vector<GateSpec>& gate_specs();
[[nodiscard]] const std::vector<BaselineSpec>& baseline_specs();
// The spec of a gate ("max_kl_mean") or a baseline metric ("kl_mean"); null when unknown.
[[nodiscard]] const GateSpec* find_gate(std::string_view name);
[[nodiscard]] const BaselineSpec* find_baseline(std::string_view metric);

// One configured gate or tolerance, in recipe order.
struct Limit {
    std::string name;
    double value = 0;
};

// Evaluates the gates against report metrics; returns the check objects in gate order.
[[nodiscard]] nlohmann::json evaluate_gates(const std::vector<Limit>& gates,
                                            const nlohmann::json& metrics);

// Folds the checks of the same gates judged on another output (`output`, a path) into
// `checks`: a gate holds only when it holds on every output, so a check that passed in
// `checks` and failed in `other` becomes that failure, its detail prefixed with the file's
// name and "output" set to the path. Gates absent from `other` are left as they are.
void fold_output_checks(nlohmann::json& checks, const nlohmann::json& other,
                        const std::string& output);

// Compares metrics with an earlier report's metrics (its "metrics" object).
[[nodiscard]] nlohmann::json compare_baseline(const std::vector<Limit>& tolerances,
                                              const nlohmann::json& metrics,
                                              const nlohmann::json& baseline_metrics);

// Reads an earlier report.json for --baseline; InputError naming the file when it is not
// a readable edgepack.report/1 with a "metrics" object. Returns its "metrics".
[[nodiscard]] nlohmann::json read_baseline_metrics(const std::string& file);

// A number for reports: JSON number, or "inf" / "-inf" / "nan"; and back (null stays null).
[[nodiscard]] nlohmann::json report_number(double v);
[[nodiscard]] bool metric_value(const nlohmann::json& v, double& out);

}  // namespace ep
