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

// The one unit of each metric, gate and tolerance (docs/ci.md "Units"). Shares of rows are
// percent (0-100), never fractions; only the relative baseline tolerances are fractions.
enum class MetricUnit : uint8_t {
    Nats,          // KL divergence (natural log)
    Percent,       // 0-100: 99 is 99 %
    Points,        // percentage points: a difference of two percents
    Decibels,      // SQNR
    Bytes,         //
    Ratio,         // a plain ratio: 1.2 is 20 % more
    Milliseconds,  //
    Cosine         // cosine similarity, -1 to 1
};
// "percent (0-100)", "nats", ...
[[nodiscard]] const char* unit_name(MetricUnit unit);

struct GateSpec {
    const char* name;    // the recipe key: "max_kl_mean"
    const char* metric;  // the report metric it reads: "kl_mean"
    bool at_most;        // true: value <= limit; false: value >= limit
    MetricNeeds needs;
    MetricUnit unit;  // of the metric and the limit
    const char* help;
    double min = 0;  // the smallest limit the recipe may set
    double max = 1e300;
};

struct BaselineSpec {
    const char* metric;    // the recipe key under "baseline" and the metric compared
    bool lower_is_better;  // kl_mean: yes; top1_agreement: no
    bool relative;         // tolerance is a fraction of the earlier value (0.01 = 1 %)
    MetricNeeds needs;
    MetricUnit unit;  // of an absolute tolerance (Percent metrics: Points)
    const char* help;
};

[[nodiscard]] const std::vector<GateSpec>& gate_specs();
[[nodiscard]] const std::vector<BaselineSpec>& baseline_specs();
// The spec of a gate ("max_kl_mean") or a baseline metric ("kl_mean"); null when unknown.
[[nodiscard]] const GateSpec* find_gate(std::string_view name);
[[nodiscard]] const BaselineSpec* find_baseline(std::string_view metric);

// Why a limit only makes sense in another unit than its gate's; empty when it does not.
// A percent gate (0-100) with a value in (0, 1] reads like a fraction:
//   "0.99 is read as 0.99 percent; this gate is in percent (0-100): did you mean 99?"
// The recipe loader refuses such a value (exit 2) with this text after the field.
[[nodiscard]] std::string gate_unit_mistake(const GateSpec& spec, double value);
// The same for a baseline tolerance: a relative one (a fraction of the earlier value,
// 0.01 = 1 %) above 1 reads like a percent ("did you mean 0.05?").
[[nodiscard]] std::string tolerance_unit_mistake(const BaselineSpec& spec, double value);

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

// Compares metrics with an earlier report's metrics (its "metrics" object). A metric the
// earlier report did not measure (absent or null) is no check: it is listed in
// `not_in_baseline` (report.json "baseline.not_in_baseline"), not failed.
struct BaselineComparison {
    nlohmann::json checks = nlohmann::json::array();
    nlohmann::json not_in_baseline = nlohmann::json::array();  // metric names
};
[[nodiscard]] BaselineComparison compare_baseline(const std::vector<Limit>& tolerances,
                                                  const nlohmann::json& metrics,
                                                  const nlohmann::json& baseline_metrics);

// An earlier report.json, read for --baseline.
struct BaselineReport {
    nlohmann::json metrics;    // its "metrics"
    std::string model_sha256;  // its input.sha256: the model it was made from
    std::string model_path;    // its input.path
};
// InputError naming the file when it is not a readable edgepack.report/1 with a "metrics"
// object and an input.sha256.
[[nodiscard]] BaselineReport read_baseline(const std::string& file);

// A number for reports: JSON number, or "inf" / "-inf" / "nan"; and back (null stays null).
[[nodiscard]] nlohmann::json report_number(double v);
[[nodiscard]] bool metric_value(const nlohmann::json& v, double& out);

}  // namespace ep
