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
#include "compressor/recipe.h"
#include "compressor/task_metrics.h"
#include "formats/model_io.h"
#include "runtime-check/executor.h"
#include "runtime-check/metrics.h"
#include "runtime-check/npy.h"
#include "runtime-check/synthetic_inputs.h"

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

json ctc_json(const CtcMetrics& c, const std::filesystem::path& alphabet) {
    json lines = json::array();
    for (const auto& l : c.disagreements) {
        json line = {{"index", l.index}, {"reference", l.reference}, {"candidate", l.candidate}};
        if (c.labelled) line["label"] = l.label;
        lines.push_back(line);
    }
    json j = {{"decode", "ctc-greedy"},   {"alphabet", alphabet.string()},
              {"classes", c.classes},     {"space_class", c.space_class},
              {"sequences", c.sequences}, {"line_agreement", c.line_agreement},
              {"disagreements", lines},   {"labels", nullptr}};
    if (c.labelled)
        j["labels"] = {{"characters", c.label_characters},
                       {"line_accuracy",
                        {{"reference", c.line_accuracy_reference},
                         {"candidate", c.line_accuracy_candidate},
                         {"drop", c.line_accuracy_drop}}},
                       {"cer", {{"reference", c.cer_reference}, {"candidate", c.cer_candidate}}}};
    return j;
}

json output_json(const rt::TensorMetrics& m) {
    json j = basic_json(m);
    j["map"] = nullptr;
    j["embedding"] = nullptr;
    if (m.map)
        j["map"] = {{"threshold", m.map->threshold},       {"elements", m.map->elements},
                    {"on_reference", m.map->on_reference}, {"on_candidate", m.map->on_candidate},
                    {"iou", number(m.map->iou)},           {"agreement", number(m.map->agreement)}};
    if (m.embedding)
        j["embedding"] = {{"rows", m.embedding->rows},
                          {"dimension", m.embedding->dimension},
                          {"cosine_mean", number(m.embedding->cosine_mean)},
                          {"cosine_min", number(m.embedding->cosine_min)}};
    if (!m.classes) {
        j["classes"] = nullptr;
        return j;
    }
    const auto& c = *m.classes;
    const auto& kl = c.kl;
    json cj = {
        {"axis", c.axis},
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

// One compared output: its comparator, how its kind was chosen, its CTC decoding.
struct OutputState {
    rt::TensorComparator comparator;
    const OutputSpec* spec = nullptr;  // null: nothing said, the kind is inferred
    std::string kind_source, kind_reason;
    std::optional<CtcScorer> ctc;
};

bool text_labels(const fs::path& labels) {
    return labels.extension() == ".txt";
}

// The comparison of `output` from what `spec` says, else inferred from the first sample.
rt::ComparisonSpec resolve_spec(OutputState& state, const Model& model, const Tensor& first) {
    if (state.spec && state.spec->kind) {
        rt::ComparisonSpec c;
        c.kind = *state.spec->kind;
        c.axis = state.spec->axis.value_or(-1);
        c.threshold = state.spec->threshold;
        state.kind_source = "given";
        state.kind_reason = state.spec->field;
        return c;
    }
    auto inferred = rt::infer_output_kind(model, state.comparator.name(), first.dtype, first.shape);
    if (state.spec) inferred.spec.threshold = state.spec->threshold;
    state.kind_source = "inferred";
    state.kind_reason = inferred.reason;
    return inferred.spec;
}

struct LayerState {
    rt::TensorComparator comparator;
    std::string error;  // set when a sample could not be compared; the layer is then skipped
};

// A decoder's perplexity (rt::PerplexityScorer): the output it is read from, the token input
// it scores, one scorer per model.
struct PerplexityState {
    std::string output, input;
    rt::PerplexityScorer reference, candidate;
};

// The decoder's (output, token input) pair, from the first sample: the first output compared
// as `sequence` whose logits are [..., T, V] over one integer input of shape [..., T]; when
// several inputs fit (input_ids and attention_mask), the one indexing an embedding table (a
// Gather on an initializer). Nullopt when no output and input fit so.
std::optional<std::pair<std::string, std::string>> find_decoder(
    const std::vector<OutputState>& outputs, const rt::NamedTensors& feeds,
    const std::unordered_map<std::string, const Tensor*>& values, const Model& model) {
    for (const auto& o : outputs) {
        const auto& spec = o.comparator.spec();
        if (!spec || spec->kind != rt::OutputKind::Sequence) continue;
        const Tensor& logits = *values.at(o.comparator.name());
        if (logits.shape.size() < 2 || traits(logits.dtype).kind != DTypeKind::Float) continue;
        const std::vector<int64_t> positions(logits.shape.begin(), logits.shape.end() - 1);
        std::vector<std::string> fits, tables;
        for (const auto& [name, t] : feeds)
            if ((t.dtype == DType::I64 || t.dtype == DType::I32) && t.shape == positions) {
                fits.push_back(name);
                if (rt::embedding_rows(model, name) > 0) tables.push_back(name);
            }
        if (fits.size() == 1) return std::make_pair(o.comparator.name(), fits[0]);
        if (tables.size() == 1) return std::make_pair(o.comparator.name(), tables[0]);
    }
    return std::nullopt;
}

json perplexity_json(const PerplexityState& p) {
    auto side = [](const rt::PerplexityStats& s) {
        return json{{"perplexity", number(s.perplexity)},
                    {"uncertainty", number(s.perplexity_uncertainty)},
                    {"nll_mean", number(s.nll_mean)}};
    };
    const rt::PerplexityStats r = p.reference.finish(), c = p.candidate.finish();
    const int64_t first = r.context / 2;
    return {{"output", p.output},
            {"input", p.input},
            {"context", r.context == 0 ? json(nullptr) : json(r.context)},
            {"first", r.context == 0 ? json(nullptr) : json(first)},
            {"windows", r.windows},
            {"tokens", r.tokens},
            {"reference", side(r)},
            {"candidate", side(c)},
            {"ratio", number(r.tokens == 0 ? NAN : c.perplexity / r.perplexity)}};
}

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

void check_output_specs(const OutputSpecs& specs, const Model& model, const fs::path& labels,
                        const std::string& labels_field) {
    std::vector<std::string> names;
    for (const auto& v : model.graph.outputs) names.push_back(v.name);
    bool ctc = false;
    for (const auto& [name, spec] : specs) {
        auto it = std::find(names.begin(), names.end(), name);
        if (it == names.end()) {
            std::string hint = did_you_mean(name, names);
            std::string list;
            for (const auto& n : names) list += cat(list.empty() ? "" : ", ", "'", n, "'");
            throw InputError(cat(spec.field, ": the model has no output '", name, "'",
                                 hint.empty() ? cat(" (its outputs: ", list, ")") : hint));
        }
        if (!spec.ctc) continue;
        ctc = true;
        auto alphabet = read_ctc_alphabet(spec.alphabet, spec.alphabet_field());
        const auto& declared = model.graph.outputs[static_cast<size_t>(it - names.begin())];
        if (declared.type && declared.type->shape && !declared.type->shape->empty()) {
            const auto& last = declared.type->shape->back();
            auto symbols = static_cast<int64_t>(alphabet.size());
            if (last.value && *last.value != symbols + 1 && *last.value != symbols + 2)
                throw InputError(cat(spec.alphabet_field(), ": ", spec.alphabet.string(), " has ",
                                     symbols, " symbols, so CTC needs ", symbols + 1,
                                     " classes (blank + symbols) or ", symbols + 2,
                                     " (with a space), but '", name, "' has ", *last.value));
        }
    }
    if (!labels.empty() && text_labels(labels) && !ctc)
        throw InputError(cat(labels_field, ": ", labels.string(),
                             " holds text labels, which need an output decoded with CTC "
                             "(--ctc-alphabet NAME=FILE, or in a recipe validate.outputs.NAME: "
                             "{\"decode\": \"ctc\", \"alphabet\": FILE}); class labels are "
                             "an int32/int64 .npy"));
}

std::string token_input(const Model& model) {
    std::vector<std::string> integers, tables;
    for (const auto& v : rt::graph_feeds(model.graph)) {
        if (!v.type || (v.type->elem != DType::I64 && v.type->elem != DType::I32)) continue;
        integers.push_back(v.name);
        if (rt::embedding_rows(model, v.name) > 0) tables.push_back(v.name);
    }
    if (integers.size() == 1) return integers[0];
    return tables.size() == 1 ? tables[0] : std::string();
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
    check_output_specs(options.outputs, reference.model(), options.labels, options.labels_field);
    std::vector<OutputState> outputs;
    json not_compared = json::array();
    std::set<std::string> reference_outputs;
    for (const auto& v : reference.outputs()) {
        reference_outputs.insert(v.name);
        if (candidate_outputs.count(v.name)) {
            OutputState state{rt::TensorComparator(v.name), nullptr, {}, {}, {}};
            if (auto it = options.outputs.find(v.name); it != options.outputs.end()) {
                state.spec = &it->second;
                if (it->second.ctc)
                    state.ctc.emplace(
                        v.name, it->second.alphabet_field(),
                        read_ctc_alphabet(it->second.alphabet, it->second.alphabet_field()),
                        it->second.alphabet);
            }
            outputs.push_back(std::move(state));
        } else {
            not_compared.push_back({{"name", v.name}, {"reason", "output of the reference only"}});
        }
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
    std::vector<std::string> text;
    const std::string labels_what = cat(options.labels_field, " (", options.labels.string(), ")");
    if (!options.labels.empty() && text_labels(options.labels)) {
        text = read_text_labels(options.labels);
        for (auto& o : outputs)
            if (o.ctc) o.ctc->set_labels(&text, labels_what);
    } else if (!options.labels.empty()) {
        labels = read_labels(options.labels);
        for (auto& o : outputs) o.comparator.set_labels(labels, options.labels.string());
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
                layers.push_back({rt::TensorComparator(name), {}});
            }
    }

    std::optional<PerplexityState> perplexity;
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
        for (auto& o : outputs) {
            const auto& name = o.comparator.name();
            const Tensor& a = *rv.at(name);
            const Tensor& b = *cv.at(name);
            if (k == 0) o.comparator.set_spec(resolve_spec(o, reference.model(), a));
            with_context(sample, [&] {
                o.comparator.add(a, b);
                if (o.ctc) o.ctc->add(a, b);
            });
        }
        if (k == 0) {
            if (auto decoder = find_decoder(outputs, feeds, rv, reference.model()))
                perplexity.emplace(PerplexityState{
                    decoder->first, decoder->second,
                    rt::PerplexityScorer(cat("'", decoder->first, "' of the reference")),
                    rt::PerplexityScorer(cat("'", decoder->first, "' of the candidate"))});
        }
        if (perplexity) {
            const Tensor* tokens = nullptr;
            for (const auto& f : feeds)
                if (f.first == perplexity->input) tokens = &f.second;
            with_context(sample, [&] {
                perplexity->reference.add(*rv.at(perplexity->output), *tokens);
                perplexity->candidate.add(*cv.at(perplexity->output), *tokens);
            });
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
    std::optional<std::pair<std::string, CtcMetrics>> decoded;  // the first CTC output
    std::string rows_seen;
    for (const auto& o : outputs) {
        auto m = o.comparator.finish();
        if (m.classes && m.classes->labelled && !labelled) labelled = m;
        if (m.classes)
            rows_seen += cat(rows_seen.empty() ? "" : ", ", "'", m.name, "': ", m.classes->rows);
        json j = output_json(m);
        j["kind"] = m.spec ? rt::output_kind_name(m.spec->kind) : "regression";
        j["kind_source"] = o.kind_source;
        j["kind_reason"] = o.kind_reason;
        j["ctc"] = nullptr;
        if (o.ctc) {
            auto c = o.ctc->finish();
            j["ctc"] = ctc_json(c, o.spec->alphabet);
            if (!decoded) decoded.emplace(m.name, c);
        }
        outs.push_back(j);
    }
    report["outputs"] = outs;
    report["task"] = nullptr;
    if (decoded) {
        const CtcMetrics& c = decoded->second;
        report["line_agreement"] = c.line_agreement;
        if (c.labelled) {
            report["task"] = "ctc";
            report["accuracy_output"] = decoded->first;
            report["accuracy_reference"] = c.line_accuracy_reference;
            report["accuracy_candidate"] = c.line_accuracy_candidate;
            report["accuracy_drop"] = c.line_accuracy_drop;
            report["cer_reference"] = c.cer_reference;
            report["cer_candidate"] = c.cer_candidate;
        }
    }
    if (!options.labels.empty() && !text_labels(options.labels)) {
        report["task"] = "classes";
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
    report["perplexity"] = perplexity ? perplexity_json(*perplexity) : json(nullptr);

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
        if (o.contains("kind"))
            out += cat("  compared as       : ", o["kind"].get<std::string>(), " (",
                       o["kind_source"].get<std::string>(), ": ",
                       o["kind_reason"].get<std::string>(), ")\n");
        if (const auto& mp = o.value("map", json()); mp.is_object()) {
            std::string label = "IoU (> " + fmt("%g", mp["threshold"].get<double>()) + ")";
            label.resize(std::max<size_t>(label.size(), 18), ' ');
            out += "  " + label + ": " + fmt("%.6f", read_number(mp["iou"])) + "  (" +
                   cat(mp["on_reference"].get<uint64_t>(), " reference / ",
                       mp["on_candidate"].get<uint64_t>(), " candidate values above)\n");
            out += "  same side         : " + fmt("%.3f", read_number(mp["agreement"])) +
                   " % of values\n";
        }
        if (const auto& e = o.value("embedding", json()); e.is_object()) {
            out +=
                cat("  cosine per row    : mean ", fmt("%.8f", read_number(e["cosine_mean"])),
                    ", min ", fmt("%.8f", read_number(e["cosine_min"])), " (",
                    e["rows"].get<uint64_t>(), " rows of ", e["dimension"].get<int64_t>(), ")\n");
        }
        if (const auto& ctc = o.value("ctc", json()); ctc.is_object()) {
            out += cat("\n====== CTC decoding: '", o["name"].get<std::string>(), "', ",
                       ctc["sequences"].get<uint64_t>(), " lines, alphabet ",
                       ctc["alphabet"].get<std::string>(), " ======\n");
            out += "line agreement : " + fmt("%7.3f", ctc["line_agreement"].get<double>()) +
                   " %  (candidate text = reference text)\n";
            if (const auto& l = ctc["labels"]; l.is_object()) {
                out += cat("against ", report["labels"].get<std::string>(), " (",
                           l["characters"].get<uint64_t>(), " characters):\n");
                out += "line accuracy  : reference " +
                       fmt("%7.3f", l["line_accuracy"]["reference"].get<double>()) +
                       " %, candidate " +
                       fmt("%7.3f", l["line_accuracy"]["candidate"].get<double>()) + " %, drop " +
                       fmt("%.3f", l["line_accuracy"]["drop"].get<double>()) + " pp\n";
                out += "CER            : reference " +
                       fmt("%7.3f", l["cer"]["reference"].get<double>()) + " %, candidate " +
                       fmt("%7.3f", l["cer"]["candidate"].get<double>()) + " %\n";
            }
            for (const auto& d : ctc["disagreements"])
                out +=
                    cat("  line ", d["index"].get<uint64_t>(), ": reference \"",
                        d["reference"].get<std::string>(), "\", candidate \"",
                        d["candidate"].get<std::string>(), "\"",
                        d.contains("label") ? cat(", label \"", d["label"].get<std::string>(), "\"")
                                            : std::string(),
                        "\n");
        }
        const auto& c = o["classes"];
        if (c.is_null()) continue;
        const auto& kl = c["kl_divergence"];
        auto line = [&](const char* label, const char* key) {
            out += cat(label, fmt("%10.6f", read_number(kl[key])), "\n");
        };
        const bool positions = o.value("kind", "") == "sequence";
        out += cat("\n====== KL divergence statistics: '", o["name"].get<std::string>(), "', ",
                   c["rows"].get<uint64_t>(), positions ? " positions" : " rows", " of ",
                   c["classes"].get<int64_t>(), " classes (",
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
    if (const auto& p = report.value("perplexity", json()); p.is_object()) {
        out += cat("\n====== Perplexity: '", p["output"].get<std::string>(), "' over '",
                   p["input"].get<std::string>(), "', ", p["windows"].get<uint64_t>(), " windows");
        if (p["context"].is_number())
            out += cat(" of ", p["context"].get<int64_t>(), " tokens, scored from position ",
                       p["first"].get<int64_t>());
        out += cat(" (", p["tokens"].get<uint64_t>(), " tokens) ======\n");
        for (const char* side : {"reference", "candidate"})
            out += cat(side, std::string(10 - std::string_view(side).size(), ' '),
                       ": PPL = ", fmt("%.4f", read_number(p[side]["perplexity"])), " +/- ",
                       fmt("%.5f", read_number(p[side]["uncertainty"])), "\n");
        out += "ratio     : " + fmt("%.4f", read_number(p["ratio"])) + " (candidate / reference)\n";
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
