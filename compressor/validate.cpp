// `edgepack validate` (contract in validate.h; metrics in runtime-check/metrics.h; the JSON
// schema in docs/validate.md). Samples are processed one at a time: both models run on the
// sample, every compared tensor is folded into its accumulator, and the sample is dropped,
// so memory stays at one sample's values (plus, with --per-layer, every shared intermediate
// of that one sample, which the executor keeps alive for the fetch).
#include "compressor/validate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <ostream>
#include <set>
#include <unordered_map>

#include "compressor/gates.h"
#include "formats/model_io.h"
#include "runtime-check/executor.h"
#include "runtime-check/metrics.h"
#include "runtime-check/npy.h"

namespace ep {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// JSON has no infinities: they (and NaN) are written as strings (gates.h).
json number(double v) {
    return report_number(v);
}

double read_number(const json& j) {
    double v = NAN;
    return metric_value(j, v) ? v : NAN;
}

const char* kind_name(DataKind k) {
    switch (k) {
        case DataKind::Npz:
            return "npz";
        case DataKind::InputFolder:
            return "input-folder";
        case DataKind::SampleFolders:
            return "sample-folders";
        case DataKind::Random:
            return "random";
        case DataKind::TokenSequences:
            return "token-sequences";
    }
    return "?";
}

json basic_json(const rt::TensorMetrics& m) {
    return {{"name", m.name},
            {"dtype", std::string(dtype_name(m.dtype))},
            {"shape", m.shape},
            {"samples", m.samples},
            {"elements", m.elements},
            {"max_abs_error", number(m.max_abs_error)},
            {"mean_abs_error", number(m.mean_abs_error)},
            {"cosine_similarity", number(m.cosine_similarity)},
            {"sqnr_db", number(m.sqnr_db)},
            {"nonfinite_mismatches", m.nonfinite_mismatches}};
}

json output_json(const rt::TensorMetrics& m) {
    json j = basic_json(m);
    if (!m.classes) {
        j["classes"] = nullptr;
        return j;
    }
    const auto& c = *m.classes;
    const auto& kl = c.kl;
    json cj = {
        {"classes", c.classes},
        {"rows", c.rows},
        {"input", rt::class_input_name(c.input)},
        {"kl_divergence",
         {{"mean", number(kl.mean.value)},
          {"mean_uncertainty", number(kl.mean.uncertainty)},
          {"min", number(kl.min)},
          {"p01", number(kl.p01)},
          {"p05", number(kl.p05)},
          {"p10", number(kl.p10)},
          {"median", number(kl.median)},
          {"p90", number(kl.p90)},
          {"p95", number(kl.p95)},
          {"p99", number(kl.p99)},
          {"p999", number(kl.p999)},
          {"max", number(kl.max)}}},
        {"same_top1", {{"percent", c.same_top1.value}, {"uncertainty", c.same_top1.uncertainty}}},
        {"top_k", c.top_k},
        {"topk_agreement", c.topk_agreement},
        {"accuracy", nullptr}};
    if (c.labelled)
        cj["accuracy"] = {{"reference", c.accuracy_reference},
                          {"candidate", c.accuracy_candidate},
                          {"drop", c.accuracy_drop}};
    j["classes"] = cj;
    return j;
}

// Names produced by nodes of the main graph, in execution order, minus graph outputs.
std::vector<std::string> intermediates(const Model& model) {
    std::set<std::string> outputs;
    for (const auto& v : model.graph.outputs) outputs.insert(v.name);
    std::vector<std::string> names;
    for (const auto& node : model.graph.nodes)
        for (const auto& o : node.outputs)
            if (!o.empty() && !outputs.count(o)) names.push_back(o);
    return names;
}

struct LayerState {
    rt::TensorComparator comparator;
    std::string error;  // set when a sample could not be compared; the layer is then skipped
};

}  // namespace

std::vector<int64_t> read_labels(const fs::path& path) {
    Tensor t = read_npy(path);
    std::vector<int64_t> labels;
    if (t.dtype == DType::I64) {
        auto v = t.values<int64_t>();
        labels.assign(v.begin(), v.end());
    } else if (t.dtype == DType::I32) {
        auto v = t.values<int32_t>();
        labels.assign(v.begin(), v.end());
    } else {
        throw InputError(cat(path.string(), ": labels must be int32 or int64 class indices, found ",
                             dtype_name(t.dtype), " ", shape_string(t.shape)));
    }
    if (labels.empty()) throw InputError(cat(path.string(), ": holds no labels"));
    return labels;
}

json validate_models(const ValidateOptions& options, Progress* progress) {
    rt::ExecOptions exec;
    exec.threads = options.threads;
    rt::Executor reference(load_model(options.reference), exec);
    rt::ExecOptions candidate_exec = exec;
    candidate_exec.int8_activations = options.candidate_int8_activations;
    rt::Executor candidate(load_model(options.candidate), candidate_exec);
    return validate_models(reference, candidate, options, progress);
}

json validate_models(rt::Executor& reference, rt::Executor& candidate,
                     const ValidateOptions& options, Progress* progress) {
    Dataset dataset(reference, options.data);

    // The candidate must take what the reference takes (it may need fewer inputs).
    std::set<std::string> reference_inputs;
    for (const auto& v : reference.inputs()) reference_inputs.insert(v.name);
    for (const auto& v : candidate.inputs())
        if (!reference_inputs.count(v.name))
            throw InputError(cat(options.candidate.string(), ": input '", v.name,
                                 "' is not an input of the reference model"));
    std::set<std::string> candidate_inputs;
    for (const auto& v : candidate.inputs()) candidate_inputs.insert(v.name);

    // Outputs compared by name, in the reference's order.
    std::set<std::string> candidate_outputs;
    for (const auto& v : candidate.outputs()) candidate_outputs.insert(v.name);
    std::vector<rt::TensorComparator> outputs;
    json not_compared = json::array();
    std::set<std::string> reference_outputs;
    for (const auto& v : reference.outputs()) {
        reference_outputs.insert(v.name);
        if (candidate_outputs.count(v.name))
            outputs.emplace_back(v.name, true);
        else
            not_compared.push_back({{"name", v.name}, {"reason", "output of the reference only"}});
    }
    for (const auto& v : candidate.outputs())
        if (!reference_outputs.count(v.name))
            not_compared.push_back({{"name", v.name}, {"reason", "output of the candidate only"}});
    if (outputs.empty())
        throw InputError(cat(
            "the reference and the candidate share no output name (reference: ",
            reference.outputs().empty() ? "" : reference.outputs()[0].name, ", ...; candidate: ",
            candidate.outputs().empty() ? "" : candidate.outputs()[0].name, ", ...)"));

    std::vector<int64_t> labels;
    if (!options.labels.empty()) {
        labels = read_labels(options.labels);
        for (auto& c : outputs) c.set_labels(labels, options.labels.string());
    }

    std::vector<std::string> fetch;
    std::vector<LayerState> layers;
    if (options.per_layer) {
        auto cand_names = intermediates(candidate.model());
        std::set<std::string> in_candidate(cand_names.begin(), cand_names.end());
        for (const auto& name : intermediates(reference.model()))
            if (in_candidate.count(name) && !reference_outputs.count(name) &&
                !candidate_outputs.count(name)) {
                fetch.push_back(name);
                layers.push_back({rt::TensorComparator(name, false), {}});
            }
    }

    auto step = progress_step(progress, "validation", dataset.size(), "samples");
    for (size_t k = 0; k < dataset.size(); ++k) {
        step.set_detail(dataset.sample_name(k));
        rt::NamedTensors feeds = dataset.load(k);
        rt::NamedTensors cand_feeds;
        for (const auto& f : feeds)
            if (candidate_inputs.count(f.first)) cand_feeds.push_back(f);
        auto r = with_context("reference", [&] { return reference.run(feeds, fetch); });
        auto c = with_context("candidate", [&] { return candidate.run(cand_feeds, fetch); });
        std::unordered_map<std::string, const Tensor*> rv, cv;
        for (const auto& [name, t] : r) rv.emplace(name, &t);
        for (const auto& [name, t] : c) cv.emplace(name, &t);
        std::string sample = dataset.sample_name(k);
        for (auto& comparator : outputs) {
            const auto& name = comparator.name();
            with_context(sample, [&] { comparator.add(*rv.at(name), *cv.at(name)); });
        }
        for (size_t i = 0; i < layers.size(); ++i) {
            auto& layer = layers[i];
            if (!layer.error.empty()) continue;
            auto a = rv.find(fetch[i]), b = cv.find(fetch[i]);
            if (a == rv.end() || b == cv.end()) {
                layer.error = "not produced in every run";
                continue;
            }
            try {
                layer.comparator.add(*a->second, *b->second);
            } catch (const InputError& e) {
                layer.error = e.what();
            }
        }
        step.advance();
    }
    step.finish();

    json report;
    report["schema"] = kValidateSchema;
    report["reference"] = options.reference.string();
    report["candidate"] = options.candidate.string();
    report["candidate_int8_activations"] = options.candidate_int8_activations;
    json inputs = {{"source", kind_name(dataset.kind())},
                   {"description", dataset.describe()},
                   {"samples", dataset.size()}};
    if (dataset.kind() == DataKind::Random) {
        inputs["seed"] = options.data.seed;
        json shapes = json::object();
        for (const auto& [name, dims] : options.data.shapes) shapes[name] = dims;
        inputs["shapes"] = shapes;
    } else {
        inputs["data"] = options.data.data.string();
    }
    report["inputs"] = inputs;
    report["labels"] = options.labels.empty() ? json(nullptr) : json(options.labels.string());

    json outs = json::array();
    std::optional<rt::TensorMetrics> labelled;
    std::string rows_seen;
    for (const auto& comparator : outputs) {
        auto m = comparator.finish();
        if (m.classes && m.classes->labelled && !labelled) labelled = m;
        if (m.classes)
            rows_seen += cat(rows_seen.empty() ? "" : ", ", "'", m.name, "': ", m.classes->rows);
        outs.push_back(output_json(m));
    }
    report["outputs"] = outs;
    if (!options.labels.empty()) {
        if (!labelled)
            throw InputError(
                cat(options.labels.string(), ": ", labels.size(),
                    " labels, but no output with a class axis has that many rows (",
                    rows_seen.empty() ? "no output has a class axis" : "rows: " + rows_seen, ")"));
        report["accuracy_output"] = labelled->name;
        report["accuracy_reference"] = labelled->classes->accuracy_reference;
        report["accuracy_candidate"] = labelled->classes->accuracy_candidate;
        report["accuracy_drop"] = labelled->classes->accuracy_drop;
    }
    report["not_compared"] = not_compared;

    if (options.per_layer) {
        std::vector<std::pair<rt::TensorMetrics, size_t>> done;
        json failed = json::array();
        for (size_t i = 0; i < layers.size(); ++i) {
            if (layers[i].error.empty())
                done.emplace_back(layers[i].comparator.finish(), i);
            else
                failed.push_back({{"name", fetch[i]}, {"reason", layers[i].error}});
        }
        // Worst first: lowest SQNR; ties keep the reference's execution order.
        std::stable_sort(done.begin(), done.end(), [](const auto& a, const auto& b) {
            return a.first.sqnr_db < b.first.sqnr_db;
        });
        json ranked = json::array();
        for (const auto& [m, order] : done) {
            json j = basic_json(m);
            j["order"] = order;
            ranked.push_back(j);
        }
        report["per_layer"] = {
            {"shared", layers.size()}, {"layers", ranked}, {"not_compared", failed}};
    } else {
        report["per_layer"] = nullptr;
    }
    return report;
}

namespace {

std::string fmt(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::string shape_of(const json& j) {
    std::vector<int64_t> shape = j.get<std::vector<int64_t>>();
    return shape_string(shape);
}

}  // namespace

std::string render_validate_text(const json& report, size_t per_layer_rows) {
    std::string out;
    out += cat("reference: ", report["reference"].get<std::string>(), "\n");
    out +=
        cat("candidate: ", report["candidate"].get<std::string>(),
            report.value("candidate_int8_activations", false) ? " (int8 activations)" : "", "\n");
    out += cat("inputs:    ", report["inputs"]["description"].get<std::string>(), "\n");
    if (report["labels"].is_string())
        out += cat("labels:    ", report["labels"].get<std::string>(), "\n");

    for (const auto& o : report["outputs"]) {
        out += cat("\noutput '", o["name"].get<std::string>(), "' ", o["dtype"].get<std::string>(),
                   " ", shape_of(o["shape"]), " (", o["samples"].get<uint64_t>(), " samples, ",
                   o["elements"].get<uint64_t>(), " values)\n");
        out += "  max |error|       : " + fmt("%.6e", read_number(o["max_abs_error"])) + "\n";
        out += "  mean |error|      : " + fmt("%.6e", read_number(o["mean_abs_error"])) + "\n";
        out += "  cosine similarity : " + fmt("%.8f", read_number(o["cosine_similarity"])) + "\n";
        out += "  SQNR              : " + fmt("%.2f", read_number(o["sqnr_db"])) + " dB\n";
        if (o["nonfinite_mismatches"].get<uint64_t>() > 0)
            out += cat("  WARNING: ", o["nonfinite_mismatches"].get<uint64_t>(),
                       " values are NaN or infinite in one model and not the other\n");
        const auto& c = o["classes"];
        if (c.is_null()) continue;
        const auto& kl = c["kl_divergence"];
        auto line = [&](const char* label, const char* key) {
            out += cat(label, fmt("%10.6f", read_number(kl[key])), "\n");
        };
        out +=
            cat("\n====== KL divergence statistics: '", o["name"].get<std::string>(), "', ",
                c["rows"].get<uint64_t>(), " rows of ", c["classes"].get<int64_t>(), " classes (",
                c["input"].get<std::string>() == "logits" ? "softmax of logits"
                                                          : c["input"].get<std::string>(),
                ") ======\n");
        out += "Mean    KLD: " + fmt("%10.6f", read_number(kl["mean"])) + " ± " +
               fmt("%10.6f", read_number(kl["mean_uncertainty"])) + "\n";
        line("Maximum KLD: ", "max");
        line("99.9%   KLD: ", "p999");
        line("99.0%   KLD: ", "p99");
        line("95.0%   KLD: ", "p95");
        line("90.0%   KLD: ", "p90");
        line("Median  KLD: ", "median");
        line("10.0%   KLD: ", "p10");
        line(" 5.0%   KLD: ", "p05");
        line(" 1.0%   KLD: ", "p01");
        line("Minimum KLD: ", "min");
        out += "\n====== Token probability statistics ======\n";
        out += "Same top p: " + fmt("%6.3f", c["same_top1"]["percent"].get<double>()) + " ± " +
               fmt("%5.3f", c["same_top1"]["uncertainty"].get<double>()) + " %\n";
        out += cat("Same top ", c["top_k"].get<int64_t>(), ": ",
                   fmt("%6.3f", c["topk_agreement"].get<double>()), " %  (mean overlap of the top-",
                   c["top_k"].get<int64_t>(), " sets)\n");
        if (!c["accuracy"].is_null()) {
            const auto& a = c["accuracy"];
            out += cat("\n====== Accuracy against ", report["labels"].get<std::string>(), " (",
                       c["rows"].get<uint64_t>(), " rows) ======\n");
            out += "reference : " + fmt("%7.3f", a["reference"].get<double>()) + " %\n";
            out += "candidate : " + fmt("%7.3f", a["candidate"].get<double>()) + " %\n";
            out += "drop      : " + fmt("%7.3f", a["drop"].get<double>()) + " pp\n";
        }
    }
    for (const auto& n : report["not_compared"])
        out += cat("\nnot compared: '", n["name"].get<std::string>(), "' (",
                   n["reason"].get<std::string>(), ")\n");

    if (!report["per_layer"].is_null()) {
        const auto& pl = report["per_layer"];
        size_t shown = std::min(per_layer_rows, pl["layers"].size());
        out += cat("\n====== Per-layer: worst ", shown, " of ", pl["shared"].get<size_t>(),
                   " shared intermediate tensors by SQNR ======\n");
        out += "   SQNR dB      cosine   max |error|  name\n";
        for (size_t i = 0; i < shown; ++i) {
            const auto& l = pl["layers"][i];
            out += fmt("%10.2f", read_number(l["sqnr_db"])) + "  " +
                   fmt("%10.6f", read_number(l["cosine_similarity"])) + "  " +
                   fmt("%12.4e", read_number(l["max_abs_error"])) + "  " +
                   l["name"].get<std::string>() + " " + shape_of(l["shape"]) + "\n";
        }
        for (const auto& n : pl["not_compared"])
            out += cat("  not compared: '", n["name"].get<std::string>(),
                       "': ", n["reason"].get<std::string>(), "\n");
    }
    return out;
}

}  // namespace ep
