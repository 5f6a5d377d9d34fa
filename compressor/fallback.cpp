// Accuracy-aware fallback (contract in fallback.h).
#include "compressor/fallback.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <set>

#include "calibration/calibration.h"
#include "calibration/ranges.h"
#include "compressor/gates.h"
#include "compressor/report.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "runtime-check/executor.h"

namespace ep {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// 10 log10(signal / noise) in dB; +inf for no noise, nan for nothing measured.
double sqnr_db(double signal, double noise) {
    if (signal == 0.0 && noise == 0.0) return kNan;
    if (noise == 0.0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(signal / noise);
}

void accumulate(const Tensor& reference, const Tensor& candidate, double& signal, double& noise) {
    if (reference.dtype != DType::F32 || candidate.dtype != DType::F32 ||
        reference.shape != candidate.shape)
        return;
    auto x = reference.values<float>();
    auto q = candidate.values<float>();
    for (size_t i = 0; i < x.size() && i < q.size(); ++i) {
        const double d = static_cast<double>(x[i]) - static_cast<double>(q[i]);
        signal += static_cast<double>(x[i]) * x[i];
        noise += d * d;
    }
}

// Values some node of `graph` produces (graph outputs included).
std::set<std::string> produced_values(const Graph& graph) {
    std::set<std::string> out;
    for (const auto& n : graph.nodes)
        for (const auto& o : n.outputs)
            if (!o.empty()) out.insert(o);
    return out;
}

const Node* node_named(const Graph& graph, const std::string& name) {
    for (const auto& n : graph.nodes)
        if (n.name == name) return &n;
    return nullptr;
}

uint64_t tensor_bytes(const Model& model) {
    uint64_t total = 0;
    for (const auto& t : tensor_inventory(model)) total += t.bytes;
    return total;
}

struct Ranked {
    std::string node;
    std::string op_type;
    double score = kNan;  // sqnr: dB (lower is worse); ablation: dB gained (higher is worse)
    size_t order = 0;     // in the pass's quantized_nodes
};

// Worst first; unmeasured (nan) last; ties by the pass's order.
void sort_ranking(std::vector<Ranked>& ranking, FallbackRank rank) {
    std::stable_sort(ranking.begin(), ranking.end(), [&](const Ranked& a, const Ranked& b) {
        const bool na = std::isnan(a.score), nb = std::isnan(b.score);
        if (na != nb) return nb;
        if (na) return a.order < b.order;
        if (a.score != b.score)
            return rank == FallbackRank::Sqnr ? a.score < b.score : a.score > b.score;
        return a.order < b.order;
    });
}

// What run_with_fallback shares between its steps.
struct Loop {
    Loop(PassManager& m, const PassManagerOptions& o, const FallbackSetup& s)
        : manager(m), options(o), setup(s), target(s.config.pass_index) {}

    PassManager& manager;
    const PassManagerOptions& options;
    const FallbackSetup& setup;
    size_t target = 0;
    Model before;                      // the model as it was before the fallback's pass
    PassManagerOptions rerun_options;  // no progress lines
    // The activation ranges captured so far (every run's PassResult::ranges merged), handed
    // to the re-runs when the recipe gave none: a cache, so a re-run whose nodes need a
    // range it lacks (another set of nodes in float reads other activations) runs again
    // without it and captures; what it captured joins the cache.
    std::optional<calib::RangeTable> captured;
    bool recipe_ranges = false;
    std::vector<Limit> judged;  // the gates judged in the loop
    size_t pass_runs = 0, evaluations = 0;
    std::string ranked_on;  // the calibration samples' description

    // The pass (with `keep` in float) and every pass after it, on a copy of `before`.
    std::vector<PassRecord> quantize(const std::vector<std::string>& keep, Model& out,
                                     std::ostream& log) {
        Pass& pass = manager.pass(target);
        pass.keep_float(keep);
        std::vector<PassRecord> records;
        PassManagerOptions o = rerun_options;
        if (!recipe_ranges && captured) {
            o.context.ranges = &*captured;
            try {
                out = before;
                records = manager.run_range(out, o, log, target, manager.size());
            } catch (const Error& e) {
                // A range missing from the cache (the pass manager rethrows a pass's
                // InputError as an Error with its code): capture below.
                if (e.code() != ExitCode::BadInput) throw;
                records.clear();
            }
            ++pass_runs;
        }
        if (records.empty()) {
            o.context.ranges = recipe_ranges ? rerun_options.context.ranges : nullptr;
            out = before;
            records = manager.run_range(out, o, log, target, manager.size());
            ++pass_runs;
            remember(records.front().result);
        }
        const auto& quantized = records.front().result.quantized_nodes;
        for (const auto& k : keep)
            if (std::find(quantized.begin(), quantized.end(), k) != quantized.end())
                throw InternalError(cat(manager.path(target), " (", pass.name(),
                                        "): quantized node ", k,
                                        " although the fallback asked to keep it in float"));
        return records;
    }

    void remember(const PassResult& result) {
        if (recipe_ranges || !result.ranges) return;
        if (!captured) {
            captured = *result.ranges;
            return;
        }
        for (const auto& [name, range] : result.ranges->ranges) captured->ranges[name] = range;
    }

    struct Judgement {
        nlohmann::json metrics;  // the judged gates' metrics: {metric: value}
        nlohmann::json checks;   // evaluate_gates' objects
        bool held = false;
    };
    Judgement judge(const Model& candidate) {
        ++evaluations;
        nlohmann::json all = setup.measure(candidate);
        Judgement j;
        j.checks = evaluate_gates(judged, all);
        j.held = true;
        j.metrics = nlohmann::json::object();
        for (const auto& c : j.checks) {
            j.held = j.held && c["passed"].get<bool>();
            j.metrics[c["metric"].get<std::string>()] = c["value"];
        }
        return j;
    }
};

// The calibration samples, opened against `exec` (the model before the pass).
std::unique_ptr<calib::SampleList> open_samples(Loop& loop, const rt::Executor& exec) {
    if (!loop.setup.ranking_data)
        throw InternalError("fallback: no calibration samples to rank the nodes on");
    auto samples = loop.setup.ranking_data->open(exec);
    loop.ranked_on = samples->describe();
    return samples;
}

// rank "sqnr": each candidate's first float output, `before` against `quantized`.
std::vector<Ranked> rank_by_sqnr(Loop& loop, const Model& quantized,
                                 const std::vector<std::string>& candidates, Progress* progress) {
    rt::ExecOptions exec;
    exec.threads = loop.options.context.threads;
    rt::Executor reference(loop.before, exec);
    rt::Executor candidate(quantized, exec);
    const std::set<std::string> in_reference = produced_values(loop.before.graph);
    std::vector<Ranked> ranking;
    std::vector<std::string> fetch;  // per candidate: its value, or "" when not comparable
    for (size_t i = 0; i < candidates.size(); ++i) {
        const Node* n = node_named(quantized.graph, candidates[i]);
        Ranked r;
        r.node = candidates[i];
        r.order = i;
        std::string value;
        if (n) {
            r.op_type = n->op_type;
            for (const auto& o : n->outputs)
                if (!o.empty() && in_reference.count(o)) {
                    value = o;
                    break;
                }
        }
        ranking.push_back(r);
        fetch.push_back(value);
    }
    std::vector<std::string> unique;
    for (const auto& f : fetch)
        if (!f.empty() && std::find(unique.begin(), unique.end(), f) == unique.end())
            unique.push_back(f);
    std::vector<double> signal(unique.size(), 0.0), noise(unique.size(), 0.0);
    auto samples = open_samples(loop, reference);
    auto step = progress_step(progress, "fallback ranking", samples->size(), "samples");
    for (size_t s = 0; s < samples->size(); ++s) {
        const rt::NamedTensors inputs = samples->load(s);
        const rt::NamedTensors x = reference.run(inputs, unique);
        const rt::NamedTensors q = candidate.run(inputs, unique);
        for (size_t u = 0; u < unique.size(); ++u) {
            const Tensor *xt = nullptr, *qt = nullptr;
            for (const auto& [name, t] : x)
                if (name == unique[u]) xt = &t;
            for (const auto& [name, t] : q)
                if (name == unique[u]) qt = &t;
            if (xt && qt) accumulate(*xt, *qt, signal[u], noise[u]);
        }
        step.advance();
    }
    for (size_t i = 0; i < ranking.size(); ++i) {
        if (fetch[i].empty()) continue;
        const size_t u =
            static_cast<size_t>(std::find(unique.begin(), unique.end(), fetch[i]) - unique.begin());
        ranking[i].score = sqnr_db(signal[u], noise[u]);
    }
    return ranking;
}

// The SQNR of every float graph output over every sample: `candidate` against `reference`
// outputs computed once (one NamedTensors per sample).
double output_sqnr(rt::Executor& candidate, const calib::SampleList& samples,
                   const std::vector<rt::NamedTensors>& reference) {
    double signal = 0.0, noise = 0.0;
    for (size_t s = 0; s < samples.size(); ++s) {
        const rt::NamedTensors q = candidate.run(samples.load(s));
        for (size_t o = 0; o < q.size() && o < reference[s].size(); ++o)
            accumulate(reference[s][o].second, q[o].second, signal, noise);
    }
    return sqnr_db(signal, noise);
}

// rank "ablation": each candidate alone in float, the outputs' SQNR gained.
std::vector<Ranked> rank_by_ablation(Loop& loop, const Model& quantized,
                                     const std::vector<std::string>& candidates, Progress* progress,
                                     std::ostream& quiet_log) {
    rt::ExecOptions exec;
    exec.threads = loop.options.context.threads;
    rt::Executor reference(loop.before, exec);
    auto samples = open_samples(loop, reference);
    std::vector<rt::NamedTensors> float_outputs;
    for (size_t s = 0; s < samples->size(); ++s)
        float_outputs.push_back(reference.run(samples->load(s)));
    rt::Executor all_quantized(quantized, exec);
    const double base = output_sqnr(all_quantized, *samples, float_outputs);
    std::vector<Ranked> ranking;
    auto step = progress_step(progress, "fallback ranking", candidates.size(), "nodes");
    for (size_t i = 0; i < candidates.size(); ++i) {
        Ranked r;
        r.node = candidates[i];
        r.order = i;
        if (const Node* n = node_named(quantized.graph, candidates[i])) r.op_type = n->op_type;
        step.set_detail(r.node);
        Model one;
        (void)loop.quantize({candidates[i]}, one, quiet_log);
        rt::Executor ablated(std::move(one), exec);
        r.score = output_sqnr(ablated, *samples, float_outputs) - base;
        ranking.push_back(r);
        step.advance();
    }
    return ranking;
}

nlohmann::json ranked_json(const Ranked& r) {
    return {{"node", r.node}, {"op_type", r.op_type}, {"score", report_number(r.score)}};
}

// "kl_mean 0.031 -> 0.012" for every judged metric.
std::string metric_text(const nlohmann::json& v) {
    double d = 0;
    if (!metric_value(v, d)) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", d);
    return buf;
}

std::string metric_changes(const nlohmann::json& before, const nlohmann::json& after) {
    std::string out;
    for (const auto& [metric, value] : after.items())
        out += cat(out.empty() ? "" : ", ", metric, " ",
                   metric_text(before.value(metric, nlohmann::json())), " -> ", metric_text(value));
    return out;
}

std::string failed_gates(const nlohmann::json& checks) {
    std::string out;
    for (const auto& c : checks)
        if (!c["passed"].get<bool>())
            out += cat(out.empty() ? "" : "; ", c["name"].get<std::string>(), " (",
                       c["detail"].get<std::string>(), ")");
    return out;
}

std::string score_text(FallbackRank rank, double score) {
    char buf[64];
    std::snprintf(buf, sizeof buf, rank == FallbackRank::Sqnr ? "SQNR %.2f dB" : "%+.2f dB", score);
    return rank == FallbackRank::Sqnr || !std::isnan(score) ? std::string(buf)
                                                            : std::string("not measured");
}

}  // namespace

const char* fallback_rank_name(FallbackRank rank) {
    return rank == FallbackRank::Ablation ? "ablation" : "sqnr";
}

std::vector<std::string> fallback_plan(const FallbackConfig& config,
                                       const std::vector<PassConfig>& passes,
                                       const std::vector<Limit>& gates) {
    std::string judged, not_judged;
    for (const auto& g : gates) {
        std::string& list = compares_outputs(*find_gate(g.name)) ? judged : not_judged;
        list += cat(list.empty() ? "" : ", ", g.name);
    }
    const PassConfig& pass = passes.at(config.pass_index);
    std::vector<std::string> lines{
        cat("fallback: when the gates miss, up to ", config.max_nodes, " node",
            config.max_nodes == 1 ? "" : "s", " of ", pass.path, " (", pass.name,
            ") go back to float, one at a time, until ", judged, " hold on the validation data"),
        config.rank == FallbackRank::Sqnr
            ? std::string("  ranked by per-node SQNR on the calibration samples (lowest first)")
            : std::string("  ranked by one-node ablation on the calibration samples (largest "
                          "output SQNR gain first; the pass re-runs once per quantized node)")};
    if (!not_judged.empty())
        lines.push_back(cat("  not judged while nodes go back to float (judged on the written ",
                            "output): ", not_judged));
    return lines;
}

FallbackRun run_with_fallback(PassManager& manager, Model& model, const PassManagerOptions& options,
                              std::ostream& log, const FallbackSetup& setup, Progress* progress) {
    const FallbackConfig& config = setup.config;
    Loop loop(manager, options, setup);
    if (loop.target >= manager.size() || !manager.pass(loop.target).can_keep_float())
        throw InternalError(cat("fallback: pass ", loop.target, " cannot keep nodes in float"));
    for (const auto& g : setup.gates)
        if (compares_outputs(*find_gate(g.name))) loop.judged.push_back(g);
    Pass& pass = manager.pass(loop.target);
    const std::string who = cat(manager.path(loop.target), " (", pass.name(), ")");

    FallbackRun out;
    out.records = manager.run_range(model, options, log, 0, loop.target);
    loop.before = model;
    pass.keep_float({});
    std::vector<PassRecord> last =
        manager.run_range(model, options, log, loop.target, manager.size());
    ++loop.pass_runs;
    const PassResult& first = last.front().result;
    const std::vector<std::string> candidates = first.quantized_nodes;
    loop.rerun_options = options;
    loop.rerun_options.progress = false;
    loop.rerun_options.context.progress = nullptr;
    loop.recipe_ranges = options.context.ranges != nullptr;
    loop.remember(first);
    std::ostream quiet(nullptr);  // re-runs repeat the first run's warnings: dropped

    Loop::Judgement now = loop.judge(model);
    const Loop::Judgement initial = now;
    nlohmann::json returned = nlohmann::json::array();
    nlohmann::json no_effect = nlohmann::json::array();
    nlohmann::json ranking_json = nlohmann::json::array();
    std::string outcome;
    if (now.held) {
        outcome = "not needed";
        log << "edgepack: fallback: the gates hold after " << who
            << "; no node goes back to float\n";
    } else if (candidates.empty()) {
        outcome = "no candidates";
        log << "edgepack: fallback: the gates miss after " << who << " ("
            << failed_gates(now.checks)
            << "), and it quantized no node that could go back to float\n";
    } else {
        log << "edgepack: fallback: the gates miss after " << who << " ("
            << failed_gates(now.checks) << "); ranking " << candidates.size() << " quantized node"
            << (candidates.size() == 1 ? "" : "s") << " by " << fallback_rank_name(config.rank)
            << "\n"
            << std::flush;
        std::vector<Ranked> ranking =
            config.rank == FallbackRank::Sqnr
                ? rank_by_sqnr(loop, model, candidates, progress)
                : rank_by_ablation(loop, model, candidates, progress, quiet);
        sort_ranking(ranking, config.rank);
        for (const auto& r : ranking) ranking_json.push_back(ranked_json(r));
        auto step = progress_step(progress, "fallback", ranking.size(), "nodes");
        std::vector<std::string> keep;
        uint64_t bytes = tensor_bytes(model);
        size_t next_rank = 0;
        while (returned.size() < config.max_nodes && next_rank < ranking.size() && !now.held) {
            const Ranked& r = ranking[next_rank++];
            step.set_detail(r.node);
            keep.push_back(r.node);
            Model candidate;
            std::vector<PassRecord> records = loop.quantize(keep, candidate, quiet);
            Loop::Judgement next = loop.judge(candidate);
            step.advance();
            const uint64_t bytes_after = tensor_bytes(candidate);
            const int64_t cost = static_cast<int64_t>(bytes_after) - static_cast<int64_t>(bytes);
            if (next.metrics == now.metrics) {
                // In float it changes no judged metric by a single bit (a pooling or shape op
                // reading values its producer's quantization already rounded computes the
                // same): it stays quantized and does not count against the budget.
                keep.pop_back();
                no_effect.push_back({{"node", r.node},
                                     {"op_type", r.op_type},
                                     {"rank", next_rank},
                                     {"score", report_number(r.score)},
                                     {"cost_bytes", cost}});
                log << "edgepack: fallback: " << r.node << " (" << r.op_type << ", "
                    << score_text(config.rank, r.score)
                    << ") in float changes no judged metric: kept quantized\n";
                continue;
            }
            nlohmann::json gain = nlohmann::json::object();
            for (const auto& [metric, value] : next.metrics.items()) {
                double x = 0, y = 0;
                gain[metric] = metric_value(value, x) &&
                                       metric_value(now.metrics.value(metric, nlohmann::json()), y)
                                   ? report_number(x - y)
                                   : nlohmann::json();
            }
            returned.push_back({{"node", r.node},
                                {"op_type", r.op_type},
                                {"rank", next_rank},
                                {"score", report_number(r.score)},
                                {"cost_bytes", cost},
                                {"bytes_before", bytes},
                                {"bytes_after", bytes_after},
                                {"metrics_before", now.metrics},
                                {"metrics_after", next.metrics},
                                {"gain", gain},
                                {"gates_held", next.held}});
            log << "edgepack: fallback: [" << returned.size() << "/" << config.max_nodes << "] "
                << r.node << " (" << r.op_type << ", " << score_text(config.rank, r.score)
                << ") back to float: " << (cost >= 0 ? "+" : "") << cost << " bytes, "
                << metric_changes(now.metrics, next.metrics) << "; gates "
                << (next.held ? "hold" : "miss") << "\n"
                << std::flush;
            model = std::move(candidate);
            last = std::move(records);
            now = std::move(next);
            bytes = bytes_after;
        }
        outcome = now.held                              ? "gates hold"
                  : returned.size() == config.max_nodes ? "budget spent"
                                                        : "no candidates left";
        if (!now.held)
            log << "edgepack: fallback: " << outcome << " after " << returned.size() << " node"
                << (returned.size() == 1 ? "" : "s") << " back to float; the gates still miss ("
                << failed_gates(now.checks) << ")\n";
    }
    if (!returned.empty()) {
        std::string names;
        for (const auto& r : returned)
            names += cat(names.empty() ? "" : ", ", r["node"].get<std::string>());
        last.front().result.summary.push_back(cat("fallback: ", returned.size(), " node",
                                                  returned.size() == 1 ? "" : "s",
                                                  " returned to float: ", names));
    }
    out.records.insert(out.records.end(), std::make_move_iterator(last.begin()),
                       std::make_move_iterator(last.end()));

    nlohmann::json judged = nlohmann::json::array(), not_judged = nlohmann::json::array();
    for (const auto& g : setup.gates)
        (compares_outputs(*find_gate(g.name)) ? judged : not_judged).push_back(g.name);
    out.report = {
        {"pass", manager.path(loop.target)},
        {"pass_name", std::string(pass.name())},
        {"rank", fallback_rank_name(config.rank)},
        {"ranked_on", loop.ranked_on.empty() ? nlohmann::json() : nlohmann::json(loop.ranked_on)},
        {"max_nodes", config.max_nodes},
        {"candidates", candidates.size()},
        {"gates", judged},
        {"not_judged", not_judged},
        {"outcome", outcome},
        {"held", now.held},
        {"initial", {{"metrics", initial.metrics}, {"gates", initial.checks}}},
        {"final", {{"metrics", now.metrics}, {"gates", now.checks}}},
        {"ranking", ranking_json},
        {"returned", returned},
        {"no_effect", no_effect},
        {"pass_runs", loop.pass_runs},
        {"evaluations", loop.evaluations}};
    return out;
}

}  // namespace ep
