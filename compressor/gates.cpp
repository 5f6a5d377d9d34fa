// Gates and baseline checks (contract in gates.h).
#include "compressor/gates.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/error.h"

namespace ep {

using nlohmann::json;

const char* unit_name(MetricUnit unit) {
    switch (unit) {
        case MetricUnit::Nats:
            return "nats";
        case MetricUnit::Percent:
            return "percent (0-100)";
        case MetricUnit::Points:
            return "percentage points";
        case MetricUnit::Decibels:
            return "dB";
        case MetricUnit::Bytes:
            return "bytes";
        case MetricUnit::Ratio:
            return "a ratio";
        case MetricUnit::Milliseconds:
            return "milliseconds";
        case MetricUnit::Cosine:
            return "cosine similarity (-1 to 1)";
    }
    return "?";
}

const std::vector<GateSpec>& gate_specs() {
    using U = MetricUnit;
    static const std::vector<GateSpec> specs{
        {"max_kl_mean", "kl_mean", true, MetricNeeds::Validation, U::Nats,
         "mean KL(reference || candidate) per row of the first output with a class axis"},
        {"max_kl_p99", "kl_p99", true, MetricNeeds::Validation, U::Nats,
         "99th percentile of the per-row KL divergence"},
        {"min_top1_agreement", "top1_agreement", false, MetricNeeds::Validation, U::Percent,
         "percent of rows whose argmax agree (0-100: 99 is 99 %)", 0, 100},
        {"max_accuracy_drop", "accuracy_drop", true, MetricNeeds::Labels, U::Points,
         "reference accuracy - candidate accuracy, in percentage points (needs validate.labels); "
         "the task metric: top-1 accuracy for class labels, line accuracy for CTC text labels",
         -100, 100},
        {"min_accuracy", "accuracy_candidate", false, MetricNeeds::Labels, U::Percent,
         "candidate accuracy in percent (0-100; needs validate.labels): top-1 accuracy for class "
         "labels, line accuracy for CTC text labels",
         0, 100},
        {"min_line_agreement", "line_agreement", false, MetricNeeds::CtcDecode, U::Percent,
         "percent of lines whose CTC-decoded candidate text equals the reference's (0-100)", 0,
         100},
        {"max_ppl_ratio", "ppl_ratio", true, MetricNeeds::Validation, U::Ratio,
         "candidate perplexity / reference perplexity over the decoder's token windows "
         "(llama-perplexity's rule, docs/validate.md); 1.02 is 2 % worse",
         0},
        {"min_sqnr_db", "sqnr_db", false, MetricNeeds::Validation, U::Decibels,
         "lowest SQNR over the compared outputs, in dB", -1e300},
        {"min_cosine_similarity", "cosine_similarity", false, MetricNeeds::Validation, U::Cosine,
         "lowest cosine similarity of reference and candidate over the compared outputs (each "
         "output as one vector, -1 to 1)",
         -1, 1},
        {"max_output_bytes", "output_bytes", true, MetricNeeds::Nothing, U::Bytes,
         "bytes of the validated (else first) output, with its external data"},
        {"min_compression_ratio", "compression_ratio", false, MetricNeeds::Nothing, U::Ratio,
         "input bytes / output bytes"},
        {"max_latency_ratio", "latency_ratio", true, MetricNeeds::Benchmark, U::Ratio,
         "candidate / reference time: median of the ratios of back-to-back runs"},
        {"max_latency_p50_ms", "latency_p50_ms", true, MetricNeeds::Benchmark, U::Milliseconds,
         "candidate p50 latency in milliseconds"},
        {"max_peak_memory_bytes", "peak_memory_bytes", true, MetricNeeds::Validation, U::Bytes,
         "candidate weight bytes + peak activation arena + repacked weights"},
    };
    return specs;
}

const std::vector<BaselineSpec>& baseline_specs() {
    using U = MetricUnit;
    static const std::vector<BaselineSpec> specs{
        {"kl_mean", true, false, MetricNeeds::Validation, U::Nats,
         "KL mean may rise by at most this"},
        {"kl_p99", true, false, MetricNeeds::Validation, U::Nats,
         "KL p99 may rise by at most this"},
        {"top1_agreement", false, false, MetricNeeds::Validation, U::Points,
         "top-1 agreement may fall by at most this many percentage points"},
        {"accuracy_candidate", false, false, MetricNeeds::Labels, U::Points,
         "candidate accuracy may fall by at most this many percentage points"},
        {"line_agreement", false, false, MetricNeeds::CtcDecode, U::Points,
         "CTC line agreement may fall by at most this many percentage points"},
        {"ppl_ratio", true, false, MetricNeeds::Validation, U::Ratio,
         "perplexity ratio may rise by at most this (absolute: 0.01 on 1.02 allows 1.03)"},
        {"sqnr_db", false, false, MetricNeeds::Validation, U::Decibels,
         "SQNR may fall by at most this many dB"},
        {"output_bytes", true, true, MetricNeeds::Nothing, U::Ratio,
         "output bytes may grow by at most this fraction (0.01 = 1%)"},
        {"latency_ratio", true, true, MetricNeeds::Benchmark, U::Ratio,
         "latency ratio may grow by at most this fraction (0.01 = 1%)"},
        {"latency_p50_ms", true, true, MetricNeeds::Benchmark, U::Ratio,
         "p50 latency may grow by at most this fraction (0.01 = 1%)"},
        {"peak_memory_bytes", true, true, MetricNeeds::Validation, U::Ratio,
         "peak memory may grow by at most this fraction (0.01 = 1%)"},
    };
    return specs;
}

bool compares_outputs(const GateSpec& spec) {
    return (spec.needs == MetricNeeds::Validation || spec.needs == MetricNeeds::Labels ||
            spec.needs == MetricNeeds::CtcDecode) &&
           std::string_view(spec.metric) != "peak_memory_bytes";
}

const GateSpec* find_gate(std::string_view name) {
    for (const auto& s : gate_specs())
        if (name == s.name) return &s;
    return nullptr;
}

const BaselineSpec* find_baseline(std::string_view metric) {
    for (const auto& s : baseline_specs())
        if (metric == s.metric) return &s;
    return nullptr;
}

json report_number(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return v;
}

bool metric_value(const json& v, double& out) {
    if (v.is_number()) {
        out = v.get<double>();
        return true;
    }
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s == "inf")
            out = INFINITY;
        else if (s == "-inf")
            out = -INFINITY;
        else if (s == "nan")
            out = NAN;
        else
            return false;
        return true;
    }
    return false;
}

namespace {

std::string show(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

json check(const std::string& name, const std::string& metric, bool at_most, double limit,
           const json& value_json, const std::string& what) {
    json c = {{"name", name},
              {"metric", metric},
              {"comparison", at_most ? "<=" : ">="},
              {"limit", report_number(limit)},
              {"value", nullptr},
              {"passed", false}};
    double value = 0;
    if (!metric_value(value_json, value)) {
        c["detail"] = cat(metric, " was not measured");
        return c;
    }
    c["value"] = report_number(value);
    // NaN compares false both ways: it never passes.
    bool passed = at_most ? value <= limit : value >= limit;
    c["passed"] = passed;
    if (passed) {
        c["detail"] =
            cat(metric, " ", show(value), " ", at_most ? "<=" : ">=", " ", what, show(limit));
    } else {
        double by = at_most ? value - limit : limit - value;
        c["detail"] =
            cat(metric, " ", show(value), " ", at_most ? ">" : "<", " ", what, show(limit),
                std::isnan(by) ? std::string() : cat(" (by ", show(by), ")"));
    }
    return c;
}

json metric_of(const json& metrics, const std::string& name) {
    auto it = metrics.find(name);
    return it == metrics.end() ? json(nullptr) : *it;
}

}  // namespace

std::string gate_unit_mistake(const GateSpec& spec, double value) {
    if (spec.unit == MetricUnit::Percent && value > 0 && value <= 1)
        return cat(show(value), " is read as ", show(value),
                   " percent; this gate is in percent (0-100): did you mean ", show(value * 100),
                   "?");
    return {};
}

std::string tolerance_unit_mistake(const BaselineSpec& spec, double value) {
    if (spec.relative && value > 1)
        return cat(show(value), " is read as a fraction of the baseline (", show(value), " = +",
                   show(value * 100), "%); this tolerance is a fraction (0.01 = 1%): did you mean ",
                   show(value / 100), "?");
    return {};
}

json evaluate_gates(const std::vector<Limit>& gates, const json& metrics) {
    json out = json::array();
    for (const auto& g : gates) {
        const GateSpec* spec = find_gate(g.name);
        if (!spec) throw InternalError(cat("unknown gate '", g.name, "'"));
        out.push_back(check(g.name, spec->metric, spec->at_most, g.value,
                            metric_of(metrics, spec->metric), "limit "));
    }
    return out;
}

void fold_output_checks(json& checks, const json& other, const std::string& output) {
    const std::string file = std::filesystem::path(output).filename().string();
    for (const auto& c : other)
        for (auto& g : checks)
            if (g["name"] == c["name"] && g["passed"].get<bool>() && !c["passed"].get<bool>()) {
                g = c;
                g["detail"] = cat(file, ": ", c["detail"].get<std::string>());
                g["output"] = output;
            }
}

BaselineComparison compare_baseline(const std::vector<Limit>& tolerances, const json& metrics,
                                    const json& baseline_metrics) {
    BaselineComparison out;
    for (const auto& t : tolerances) {
        const BaselineSpec* spec = find_baseline(t.name);
        if (!spec) throw InternalError(cat("unknown baseline metric '", t.name, "'"));
        double before = 0;
        if (!metric_value(metric_of(baseline_metrics, t.name), before)) {
            out.not_in_baseline.push_back(t.name);
            continue;
        }
        double slack = spec->relative ? std::fabs(before) * t.value : t.value;
        double limit = spec->lower_is_better ? before + slack : before - slack;
        json c = check(
            cat("baseline.", t.name), t.name, spec->lower_is_better, limit,
            metric_of(metrics, t.name),
            cat("baseline ", show(before), spec->lower_is_better ? " + " : " - ",
                spec->relative ? cat(show(t.value * 100), "% = ") : std::string("tolerance = ")));
        c["baseline"] = report_number(before);
        c["tolerance"] = t.value;
        out.checks.push_back(c);
    }
    return out;
}

BaselineReport read_baseline(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(cat(file, ": cannot read the baseline report"));
    std::ostringstream text;
    text << in.rdbuf();
    json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object())
        throw InputError(cat(file, ": not a JSON object (expected an edgepack report.json)"));
    auto schema = doc.find("schema");
    if (schema == doc.end() || !schema->is_string() ||
        schema->get<std::string>() != "edgepack.report/1")
        throw InputError(cat(file, ": schema: expected \"edgepack.report/1\" (an edgepack ",
                             "report.json), found ",
                             schema == doc.end() ? std::string("nothing") : schema->dump()));
    auto metrics = doc.find("metrics");
    if (metrics == doc.end() || !metrics->is_object())
        throw InputError(cat(file, ": metrics: missing or not an object"));
    BaselineReport report;
    report.metrics = *metrics;
    auto input = doc.find("input");
    if (input == doc.end() || !input->is_object() || !input->contains("sha256") ||
        !(*input)["sha256"].is_string())
        throw InputError(cat(file, ": input.sha256: missing (the digest of the model the ",
                             "report was made from)"));
    report.model_sha256 = (*input)["sha256"].get<std::string>();
    if (input->contains("path") && (*input)["path"].is_string())
        report.model_path = (*input)["path"].get<std::string>();
    return report;
}

}  // namespace ep
