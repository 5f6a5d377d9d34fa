// `edgepack compress` (contract in compress.h).
#include "compressor/compress.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <ostream>

#include "calibration/ranges.h"
#include "compressor/calibration_data.h"
#include "compressor/dataset.h"
#include "compressor/export_check.h"
#include "compressor/fallback.h"
#include "compressor/gates.h"
#include "compressor/report.h"
#include "compressor/stream_compress.h"
#include "compressor/validate.h"
#include "formats/epk.h"
#include "formats/gguf.h"
#include "formats/gguf_llama.h"
#include "formats/model_io.h"
#include "ir/error.h"
#include "ir/output_batch.h"
#include "runtime-check/executor.h"
#include "runtime-check/synthetic_inputs.h"

namespace ep {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string human_bytes(uint64_t n) {
    const char* units[] = {"bytes", "KB", "MB", "GB", "TB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        ++u;
    }
    if (u == 0) return cat(n, " bytes");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return cat(n, " bytes, ", buf);
}

bool runnable(const std::filesystem::path& output) {
    return output.extension() == ".epk" || output.extension() == ".onnx";
}

// The output the recipe validates first (its report.json "validation", size and benchmark):
// the first .epk, else the first .onnx. With a "validate" section every other .epk / .onnx
// output is validated too (other_validated_outputs).
std::optional<std::filesystem::path> validated_output(
    const std::vector<std::filesystem::path>& outputs) {
    for (const char* ext : {".epk", ".onnx"})
        for (const auto& o : outputs)
            if (o.extension() == ext) return o;
    return std::nullopt;
}

// Every .epk / .onnx output but the first validated one, in recipe order.
std::vector<std::filesystem::path> other_validated_outputs(
    const std::vector<std::filesystem::path>& outputs,
    const std::optional<std::filesystem::path>& first) {
    std::vector<std::filesystem::path> others;
    for (const auto& o : outputs)
        if (runnable(o) && (!first || o != *first)) others.push_back(o);
    return others;
}

// A gate judged on every validated output, not only the first: one that reads a comparison
// of the two models (sizes, latency and memory are measured on the first output only).
bool judged_on_every_output(const Limit& gate) {
    const GateSpec* spec = find_gate(gate.name);
    return spec && compares_outputs(*spec);
}

// report.json "validation" from `edgepack validate`'s report (schema edgepack.validate/1).
nlohmann::json validation_section(const nlohmann::json& v, int threads) {
    nlohmann::json layers = nlohmann::json::array();
    if (v["per_layer"].is_object()) {
        layers = v["per_layer"]["layers"];
        std::stable_sort(layers.begin(), layers.end(), [](const auto& a, const auto& b) {
            return a["order"].template get<uint64_t>() < b["order"].template get<uint64_t>();
        });
        for (auto& l : layers)
            l = {{"name", l["name"]},
                 {"order", l["order"]},
                 {"sqnr_db", l["sqnr_db"]},
                 {"cosine_similarity", l["cosine_similarity"]},
                 {"max_abs_error", l["max_abs_error"]},
                 {"mean_abs_error", l["mean_abs_error"]}};
    }
    nlohmann::json accuracy = nullptr;
    if (v.contains("accuracy_output"))
        accuracy = {{"output", v["accuracy_output"]},
                    {"task", v["task"]},
                    {"reference", v["accuracy_reference"]},
                    {"candidate", v["accuracy_candidate"]},
                    {"drop", v["accuracy_drop"]}};
    // The first CTC-decoded output: line agreement, and the CER with text labels.
    nlohmann::json ctc = nullptr;
    for (const auto& o : v["outputs"])
        if (o["ctc"].is_object()) {
            const auto& c = o["ctc"];
            const bool labelled = c["labels"].is_object();
            ctc = {{"output", o["name"]},
                   {"line_agreement", c["line_agreement"]},
                   {"cer_reference", labelled ? c["labels"]["cer"]["reference"] : nullptr},
                   {"cer_candidate", labelled ? c["labels"]["cer"]["candidate"] : nullptr}};
            break;
        }
    // Random inputs say so in words wherever a verdict is read (docs/reports.md).
    nlohmann::json inputs = v["inputs"];
    inputs["synthetic"] = inputs["source"] == "random";
    return {{"candidate", v["candidate"]},
            {"inputs", inputs},
            {"labels", v["labels"]},
            {"threads", threads},
            {"int8_activations", v["candidate_int8_activations"]},
            {"outputs", v["outputs"]},
            {"accuracy", accuracy},
            {"ctc", ctc},
            {"perplexity", v["perplexity"]},
            {"not_compared", v["not_compared"]},
            {"per_layer", layers}};
}

std::string verdict_word(int code) {
    return code == 0 ? "PASS" : "FAIL";
}

// ", validated on N synthetic random inputs, not real data" when the validation ran on
// random inputs (no validate.data), else empty: the verdict line must not hide it.
std::string synthetic_note(const nlohmann::json& validation) {
    if (!validation.is_object() || !validation["inputs"].value("synthetic", false)) return "";
    const auto n = validation["inputs"]["samples"].get<uint64_t>();
    return cat(", validated on ", n, " synthetic random input", n == 1 ? "" : "s",
               ", not real data");
}

// One compress run: what its stages (below, in the order of compress.h's steps) share.
// Each stage fills its part; a new kind of work adds a stage or an option, not lines in
// another stage.
struct CompressRun {
    CompressRun(const CompressOptions& o, std::ostream& out_stream, std::ostream& err_stream)
        : options(o), out(out_stream), err(err_stream), progress(o.manager.progress && !o.quiet) {}

    const CompressOptions& options;
    std::ostream& out;
    std::ostream& err;  // drops everything with --quiet
    const bool progress;
    const std::chrono::steady_clock::time_point total_start = std::chrono::steady_clock::now();

    // resolve_outputs
    Recipe recipe;
    std::vector<std::filesystem::path> outputs;
    std::filesystem::path report_dir;  // empty: no output (a dry run without one)
    std::string report_dir_what;       // where report_dir comes from, for messages
    BaselineReport baseline_report;
    // load_and_plan
    PassManager manager;
    Model model;
    std::vector<std::string> export_plan;  // check_exports' lines (export_check.h)
    double load_seconds = 0.0;
    PassManagerOptions manager_options;
    std::unique_ptr<calib::DataProvider> calibration;
    std::optional<calib::RangeTable> ranges;                // the recipe's calibration.ranges
    std::optional<std::filesystem::path> save_calibration;  // --save-calibration (absolute)
    // run_or_stream
    std::vector<TensorEntry> before;  // what the input holds, for the per-tensor report
    nlohmann::json input_json;
    std::optional<StreamPlan> stream;
    std::vector<PassRecord> records;
    double passes_seconds = 0.0;
    nlohmann::json fallback;  // report.json "fallback" (null without a "fallback" section)
    // write_outputs, measure_size
    SaveOptions save;
    std::optional<std::filesystem::path> validated;
    std::vector<std::filesystem::path> also_validated;  // with a "validate" section
    nlohmann::json outputs_json = nlohmann::json::array();
    double save_seconds = 0.0;
    size_t primary = 0;  // in outputs_json: the validated output, else the first
    std::vector<TensorEntry> after;
    nlohmann::json size;
    // validate_and_benchmark (null without a "validate" section)
    int threads = 1;
    nlohmann::json validation, latency, memory;
    // One validation section per output of also_validated (with its own "metrics" and
    // "gates"), and why an output could not be validated, by path.
    nlohmann::json other_validations = nlohmann::json::array();
    std::map<std::filesystem::path, std::string> not_validated;
    double validate_seconds = 0.0, benchmark_seconds = 0.0;
    // judge
    nlohmann::json metrics, gates, baseline, failed;  // failed: names of the failed checks
    int exit_code = 0;
    // write_report
    std::vector<std::filesystem::path> written;
    nlohmann::json report;
    // What this run has written so far (outputs, their data files, reports) and the
    // directories it created: removed when a later stage fails (remove_written).
    std::vector<std::filesystem::path> written_files;
    std::vector<std::filesystem::path> created_dirs;

    Progress* long_steps() const { return options.quiet ? nullptr : options.progress; }
};

// Step 1: the recipe, the outputs (-o replaces the recipe's), the --baseline report.
void resolve_outputs(CompressRun& run) {
    const CompressOptions& options = run.options;
    const Recipe& recipe = run.recipe = load_recipe(options.recipe, options.overrides);
    run.outputs = recipe.outputs;
    if (options.output) {
        check_output_extension(*options.output, "-o");
        run.outputs = {std::filesystem::absolute(*options.output).lexically_normal()};
        if (recipe.validate && !validated_output(run.outputs))
            throw InputError(cat("-o ", options.output->string(),
                                 ": the recipe has a \"validate\" ",
                                 "section, which needs an .epk or .onnx output"));
    }
    if (run.outputs.empty() && !options.dry_run)
        throw InputError(cat(recipe.what, ": output: missing; add \"output\" to the recipe ",
                             "or pass -o FILE"));
    for (const auto& o : run.outputs)
        if (same_file(o, recipe.model))
            throw InputError(cat(o.string(), ": the output would overwrite the input model; ",
                                 "choose another output path"));
    if (options.save_calibration)
        run.save_calibration =
            std::filesystem::absolute(*options.save_calibration).lexically_normal();
    if (options.baseline) {
        if (recipe.baseline.empty())
            throw InputError(cat("--baseline: ", recipe.what, " sets no tolerances; add a ",
                                 "\"baseline\" section, e.g. {\"kl_mean\": 0.01}"));
        run.baseline_report = read_baseline(options.baseline->string());
    }
    // Where the reports go: --report-dir, else the recipe's, else the directory of the
    // validated output (else the first).
    if (options.report_dir) {
        run.report_dir = std::filesystem::absolute(*options.report_dir).lexically_normal();
        run.report_dir_what = "--report-dir";
    } else if (recipe.report_dir) {
        run.report_dir = *recipe.report_dir;
        run.report_dir_what = cat(recipe.what, ": report_dir");
    } else if (!run.outputs.empty()) {
        run.report_dir = validated_output(run.outputs).value_or(run.outputs[0]).parent_path();
        run.report_dir_what = "the report folder (the output's directory)";
    }
}

// --dry-run: the plan on `out`, nothing written.
void print_dry_run(CompressRun& run) {
    std::ostream& out = run.out;
    out << "plan: " << run.recipe.model.string() << " -> ";
    for (size_t i = 0; i < run.outputs.size(); ++i)
        out << (i ? ", " : "") << run.outputs[i].string();
    if (run.outputs.empty()) out << "(no output)";
    const size_t n = run.manager.size();
    out << ", " << n << " pass" << (n == 1 ? "" : "es") << "\n";
    for (const auto& line : run.export_plan) out << line << "\n";
    if (run.ranges)
        out << "calibration ranges: " << run.recipe.calibration->ranges.string() << " ("
            << run.ranges->ranges.size() << " activations, " << run.ranges->calibrator
            << "; capture skipped)\n";
    for (const auto& line : run.manager.plan(run.model)) out << line << "\n";
    if (run.recipe.fallback)
        for (const auto& line :
             fallback_plan(*run.recipe.fallback, run.recipe.passes, run.recipe.gates))
            out << line << "\n";
    if (run.save_calibration) out << "save calibration: " << run.save_calibration->string() << "\n";
    if (!run.report_dir.empty()) out << "reports: " << run.report_dir.string() << "\n";
    out << std::flush;
    run.err << "edgepack: dry run: nothing written\n";
}

// The recipe's validate.shapes overrides, each checked naming the field.
rt::ShapeOverrides validate_shapes(const Recipe& recipe) {
    rt::ShapeOverrides shapes;
    for (const auto& s : recipe.validate->shapes)
        with_context(cat(recipe.what, ": validate.shapes"),
                     [&] { rt::parse_shape_override(s, shapes); });
    return shapes;
}

// --baseline: a report of the same model (its input.sha256), unless --baseline-any-model.
void check_baseline_model(CompressRun& run) {
    if (!run.options.baseline || run.options.baseline_any_model) return;
    run.input_json = file_json(run.recipe.model, external_files(run.model, run.recipe.model));
    const std::string digest = run.input_json["sha256"].get<std::string>();
    const BaselineReport& b = run.baseline_report;
    if (b.model_sha256 == digest) return;
    throw InputError(
        cat("--baseline ", run.options.baseline->string(), ": a report of another model (",
            b.model_path.empty() ? std::string("its input")
                                 : std::filesystem::path(b.model_path).filename().string(),
            " sha256 ", b.model_sha256.substr(0, 12), "..., this recipe's ",
            run.recipe.model.filename().string(), " sha256 ", digest.substr(0, 12),
            "...); compare with a report of the same model, or pass --baseline-any-model"));
}

// The input model runs in the validation, and an .epk is made for the runtime: every op
// of the input model must be one the runtime implements.
void check_runtime_support(const CompressRun& run) {
    bool epk = std::any_of(run.outputs.begin(), run.outputs.end(),
                           [](const auto& o) { return o.extension() == ".epk"; });
    if (!run.recipe.validate && !epk) return;
    with_context(run.recipe.model.filename().string(), [&] {
        rt::check_supported_ops(run.model);
        if (run.recipe.validate) rt::check_output_counts(run.model.graph);
    });
}

// What the validation will feed the models, checked against the input model's inputs
// without running it: the shapes of random samples, every sample of validate.data (read
// and checked as the validation reads it), the labels.
void check_validation_inputs(const CompressRun& run) {
    const Recipe& recipe = run.recipe;
    if (!recipe.validate) return;
    const ValidateConfig& vc = *recipe.validate;
    const std::vector<ValueInfo> feeds = rt::graph_feeds(run.model.graph);
    if (vc.data.empty()) {
        const rt::ShapeOverrides shapes = validate_shapes(recipe);
        std::string names;
        for (const auto& v : feeds) names += cat(names.empty() ? "" : ", ", v.name);
        for (const auto& [name, dims] : shapes)
            if (std::none_of(feeds.begin(), feeds.end(),
                             [&](const ValueInfo& v) { return v.name == name; }))
                throw InputError(cat(recipe.what, ": validate.shapes: ", name,
                                     ": the model has no input '", name, "' (inputs: ", names,
                                     ")"));
        with_context(cat(recipe.what, ": validate"),
                     [&] { rt::check_synthetic_inputs(feeds, shapes); });
    } else {
        with_context(cat(recipe.what, ": validate.data"), [&] {
            DataSource source;
            source.data = vc.data;
            Dataset dataset(feeds, source);
            for (size_t i = 0; i < dataset.size(); ++i) (void)dataset.load(i);
        });
    }
    with_context(recipe.what,
                 [&] { check_output_specs(vc.outputs, run.model, vc.labels, "validate.labels"); });
    // A perplexity gate needs a decoder: token ids in, logits out (docs/validate.md).
    auto reads_perplexity = [](const Limit& l) {
        return l.name == "max_ppl_ratio" || l.name == "ppl_ratio";
    };
    for (const auto* limits : {&recipe.gates, &recipe.baseline})
        for (const auto& l : *limits)
            if (reads_perplexity(l) && token_input(run.model).empty())
                throw InputError(cat(recipe.what, ": ",
                                     limits == &recipe.gates ? "gates." : "baseline.", l.name,
                                     ": perplexity needs a decoder taking token ids, but the "
                                     "model has no integer input (or several, none indexing an "
                                     "embedding table)"));
    if (!vc.labels.empty() && vc.labels.extension() != ".txt")
        with_context(cat(recipe.what, ": validate.labels"), [&] { (void)read_labels(vc.labels); });
}

// The calibration samples the passes will read, checked as check_validation_inputs checks
// the validation's (the calibrating pass would refuse them only after earlier passes ran).
void check_calibration_inputs(const CompressRun& run) {
    if (!run.recipe.calibration || run.model.graph.nodes.empty()) return;
    check_calibration_data(*run.recipe.calibration, rt::graph_feeds(run.model.graph),
                           run.recipe.what);
}

// No two files this run writes are the same file, and none is a file the input model is
// read from (the model or its external data): an .onnx output also writes NAME.onnx.data
// when its tensors go to external data. same_file sees through symlinks and hard links.
void check_distinct_files(const CompressRun& run, const std::string& what) {
    std::vector<std::filesystem::path> inputs = {run.recipe.model};
    for (const auto& f : external_files(run.model, run.recipe.model)) inputs.push_back(f);
    for (size_t i = 0; i < run.outputs.size(); ++i) {
        const auto& o = run.outputs[i];
        for (size_t j = 0; j < i; ++j)
            if (same_file(o, run.outputs[j]))
                throw InputError(cat(what, ": ", o.string(), " and ", run.outputs[j].string(),
                                     " are the same file; a recipe writes each output once"));
        std::vector<std::filesystem::path> writes = {o};
        if (o.extension() == ".onnx") writes.push_back(o.string() + ".data");
        for (const auto& w : writes)
            for (const auto& in : inputs)
                if (same_file(w, in))
                    throw InputError(cat(
                        what, ": ", o.string(),
                        w == o
                            ? std::string(" would overwrite ")
                            : cat(" would write its external data to ", w.string(), ", which is "),
                        in == run.recipe.model
                            ? std::string("the input model")
                            : cat("the input model's external data file ", in.string()),
                        "; choose another output path"));
    }
}

// Every output and the report folder can be written.
void check_writable(const CompressRun& run) {
    const std::string what =
        run.options.output ? std::string("-o") : cat(run.recipe.what, ": output");
    for (const auto& o : run.outputs) check_writable_file(o, what);
    check_distinct_files(run, what);
    if (!run.report_dir.empty()) check_writable_dir(run.report_dir, run.report_dir_what);
    if (const auto& file = run.save_calibration) {
        const std::string flag = cat("--save-calibration ", file->string());
        std::error_code ec;
        if (std::filesystem::is_directory(*file, ec))
            throw InputError(cat(flag, ": is a directory"));
        if (same_file(*file, run.recipe.model))
            throw InputError(cat(flag, ": would overwrite the input model"));
        for (const auto& o : run.outputs)
            if (same_file(*file, o))
                throw InputError(cat(flag, ": is also an output of the recipe"));
        if (!run.report_dir.empty())
            for (const auto& r : report_files(run.report_dir))
                if (same_file(*file, r))
                    throw InputError(
                        cat(flag, ": is also one of the reports (", run.report_dir_what, ")"));
        check_writable_dir(file->parent_path(), "--save-calibration");
        if (!run.manager.uses_activation_ranges())
            throw InputError(cat(flag, ": none of the recipe's passes calibrates activation ",
                                 "ranges (quantize-static does), so there is nothing to save"));
    }
}

// The recipe's calibration.ranges: read and checked now (a bad file is exit 2 before any
// pass runs), handed to the passes through PassContext::ranges.
void read_calibration_ranges(CompressRun& run) {
    const Recipe& recipe = run.recipe;
    if (!recipe.calibration || recipe.calibration->ranges.empty()) return;
    const auto& file = recipe.calibration->ranges;
    const std::string where = cat(recipe.what, ": calibration.ranges: ", file.string());
    run.ranges = calib::read_range_table(file, where);
    if (!run.manager.uses_activation_ranges())
        throw InputError(cat(recipe.what, ": calibration.ranges: none of the recipe's passes ",
                             "reads activation ranges (quantize-static does); remove it"));
}

// A .gguf output holds only encodings with a ggml block (formats/gguf.h gguf_type_for),
// an .onnx output none of llama.cpp's block forms (int4gGm, K-quants): each initializer's
// encoding as the passes plan it (the last pass that plans one wins; else the source's),
// checked without running them.
void check_output_encodings(CompressRun& run) {
    const auto onnx = std::find_if(run.outputs.begin(), run.outputs.end(),
                                   [](const auto& o) { return o.extension() == ".onnx"; });
    const auto gguf = std::find_if(run.outputs.begin(), run.outputs.end(),
                                   [](const auto& o) { return o.extension() == ".gguf"; });
    const bool check_gguf = gguf != run.outputs.end() && run.model.graph.nodes.empty();
    if (!check_gguf && onnx == run.outputs.end()) return;
    std::map<std::string, Encoding> planned;
    for (size_t i = 0; i < run.manager.size(); ++i)
        for (auto& [name, e] :
             with_context(cat(run.manager.path(i), " (", run.manager.pass(i).name(), ")"),
                          [&] { return run.manager.pass(i).planned_encodings(run.model); }))
            planned[name] = e;
    for (const Tensor& t : run.model.graph.initializers) {
        auto it = planned.find(t.name);
        if (it == planned.end() && !t.is_encoded()) continue;
        Tensor stub;
        stub.name = t.name;
        stub.shape = t.shape;
        stub.dtype = it == planned.end() ? t.dtype : DType::F32;
        stub.encoding = it == planned.end() ? t.encoding : it->second;
        std::string why;
        if (check_gguf && !gguf_type_for(stub, &why))
            throw InputError(cat(gguf->string(), ": tensor '", t.name, "': ", why));
        const QScheme scheme = stub.encoding.scheme;
        if (onnx != run.outputs.end() &&
            (scheme == QScheme::Int4Min || traits(scheme).super_block != 0))
            throw InputError(cat(onnx->string(), ": tensor '", t.name, "': encoding ",
                                 encoding_name(stub.encoding),
                                 " (llama.cpp's block form) has no ONNX form; write .epk or "
                                 ".gguf, or quantize with int4g32 / int8g32"));
    }
}

// Everything that could fail once writing has begun, checked before the first byte (and
// by --dry-run, which is this run minus the writing).
void check_before_writing(CompressRun& run) {
    check_baseline_model(run);
    check_output_encodings(run);
    check_runtime_support(run);
    check_validation_inputs(run);
    check_calibration_inputs(run);
    check_writable(run);
}

// Steps 2-4: the passes configured, the model loaded and checked against them, every
// check that could fail later run now, the calibration data opened. False when the run
// ends here (--dry-run, after its plan).
bool load_and_plan(CompressRun& run) {
    const Recipe& recipe = run.recipe;
    run.manager = PassManager(recipe);
    run.manager.check_print_after(run.options.manager.print_after);

    if (run.progress)
        run.err << "edgepack: loading " << recipe.model.string() << "\n" << std::flush;
    auto load_start = std::chrono::steady_clock::now();
    int64_t source_opset = 0;
    run.model = load_model(recipe.model, export_read_options(recipe, run.outputs), &source_opset);
    run.load_seconds = seconds_since(load_start);
    PassResources resources;
    resources.calibration_data = recipe.calibration.has_value();
    resources.calibration_random = recipe.calibration && recipe.calibration->data.empty();
    resources.calibration_synthetic = recipe.calibration && recipe.calibration->synthetic;
    resources.calibration_ranges = recipe.calibration && !recipe.calibration->ranges.empty();
    run.manager.check_needs(run.model, recipe.model.filename().string(), resources);
    read_calibration_ranges(run);
    run.export_plan = check_exports(run.model, source_opset, recipe, run.outputs);
    if (!run.options.dry_run)
        for (const auto& line : run.export_plan) run.err << "edgepack: " << line << "\n";
    if (recipe.validate && run.model.graph.nodes.empty())
        throw InputError(cat(recipe.what, ": validate: ", recipe.model.filename().string(),
                             recipe.model.extension() == ".gguf"
                                 ? " is a GGUF file (weights only, no graph to run); validation "
                                   "needs an ONNX model (scripts/make_decoder.py builds one "
                                   "from it, docs/decoder.md)"
                                 : " is a weights-only checkpoint (no graph to run); validation "
                                   "needs an ONNX model"));
    check_before_writing(run);
    run.manager_options = run.options.manager;
    run.manager_options.progress = run.progress;
    run.manager_options.context.progress = run.long_steps();
    // No data and no synthetic: true (a section with only calibration.ranges) gives the
    // passes no samples at all, never random ones they did not ask for.
    if (recipe.calibration &&
        (!recipe.calibration->data.empty() || recipe.calibration->synthetic)) {
        run.calibration = make_calibration_provider(*recipe.calibration, recipe.what);
        run.manager_options.context.calibration = run.calibration.get();
    }
    if (run.ranges) run.manager_options.context.ranges = &*run.ranges;
    if (!run.options.dry_run) return true;
    print_dry_run(run);
    return false;
}

ValidateOptions validate_options(const CompressRun& run);
int validation_threads(const CompressRun& run);

// The accuracy-aware fallback (fallback.h): its gates are measured as the validation
// measures them, on the model in memory (without the per-layer comparison), and its nodes
// ranked on the calibration samples.
FallbackSetup fallback_setup(const CompressRun& run) {
    FallbackSetup setup;
    setup.config = *run.recipe.fallback;
    setup.gates = run.recipe.gates;
    setup.ranking_data = run.calibration.get();
    ValidateOptions v = validate_options(run);
    v.per_layer = false;
    rt::ExecOptions exec;
    exec.threads = v.threads;
    auto reference = std::make_shared<rt::Executor>(load_model(run.recipe.model), exec);
    exec.int8_activations = run.recipe.validate->int8_activations;
    setup.measure = [v, exec, reference](const Model& candidate) {
        rt::Executor executor(candidate, exec);
        return flat_metrics(validation_section(validate_models(*reference, executor, v), v.threads),
                            nlohmann::json(), nlohmann::json(), nlohmann::json());
    };
    return setup;
}

// Step 5, the passes: run here in memory, or planned now and run while the output is
// written (stream_compress.h).
void run_or_stream(CompressRun& run) {
    // Before the passes change it: what the input holds, for the per-tensor report.
    run.before = tensor_inventory(run.model);
    if (run.input_json.is_null())  // check_baseline_model may have hashed it already
        run.input_json = file_json(run.recipe.model, external_files(run.model, run.recipe.model));

    // A checkpoint whose one pass offers a streaming plan (rtn quantize-weights) is
    // transformed while it is written, in bounded memory (stream_compress.h); the rest
    // runs in memory.
    const PassManagerOptions& hooks = run.options.manager;
    if (run.outputs.size() == 1 && !hooks.verify_each && hooks.print_after.empty() &&
        !run.recipe.fallback)
        run.stream = plan_stream_compress(run.recipe, run.model, run.outputs[0]);
    auto passes_start = std::chrono::steady_clock::now();
    if (run.recipe.fallback) {
        FallbackRun fallback = run_with_fallback(run.manager, run.model, run.manager_options,
                                                 run.err, fallback_setup(run), run.long_steps());
        run.records = std::move(fallback.records);
        run.fallback = std::move(fallback.report);
    } else if (!run.stream) {
        run.records = run.manager.run(run.model, run.manager_options, run.err);
    }
    run.passes_seconds = seconds_since(passes_start);
}

// What an .epk records of where it came from.
SaveOptions save_options(const CompressRun& run) {
    SaveOptions save;
    save.onnx = run.recipe.onnx;
    save.epk.provenance.source_file = run.recipe.model.filename().string();
    save.epk.provenance.source_sha256 = run.input_json["sha256"].get<std::string>();
    save.epk.provenance.recipe_file = run.options.recipe.filename().string();
    save.epk.provenance.recipe_sha256 = sha256_file_hex(run.options.recipe);
    save.epk.provenance.recipe_overrides = run.options.overrides;
    // A llama safetensors checkpoint with its config.json: a .gguf output gets llama.cpp's
    // names and metadata (docs/gguf.md).
    if (auto config = run.recipe.model.parent_path() / "config.json";
        run.recipe.model.extension() == ".safetensors" && is_llama_config(config))
        save.gguf_hf_config = config;
    return save;
}

// One output written into the open OutputBatch (it appears when the batch commits).
void write_output(CompressRun& run, const std::filesystem::path& output) {
    if (run.progress) run.err << "edgepack: writing " << output.string() << "\n" << std::flush;
    auto save_start = std::chrono::steady_clock::now();
    std::error_code ec;
    if (output.has_parent_path()) std::filesystem::create_directories(output.parent_path(), ec);
    if (run.stream) {
        StreamTimes times;
        run.records.push_back(run_stream_compress(run.model, *run.stream, output, run.save,
                                                  run.progress, run.err, times));
        run.save_seconds += seconds_since(save_start) - times.pass_seconds;
        run.passes_seconds += times.pass_seconds;
    } else {
        save_model(run.model, output, run.save);
        run.save_seconds += seconds_since(save_start);
    }
}

// A written output's report.json "outputs" entry; its ONNX data file, when this run wrote
// one (not a stale one from an earlier run: `since` is when the writing began), joins it
// and the files a later failure removes.
nlohmann::json output_json(CompressRun& run, const std::filesystem::path& output,
                           std::filesystem::file_time_type since) {
    std::vector<std::filesystem::path> extra;
    std::error_code ec;
    auto data = std::filesystem::path(output.string() + ".data");
    if (output.extension() == ".onnx" && std::filesystem::exists(data, ec) &&
        std::filesystem::last_write_time(data, ec) >= since - std::chrono::seconds(2))
        extra.push_back(data);
    run.written_files.insert(run.written_files.end(), extra.begin(), extra.end());
    nlohmann::json file = file_json(output, extra);
    file["validated"] = (run.validated && output == *run.validated) ||
                        std::count(run.also_validated.begin(), run.also_validated.end(), output);
    return file;
}

// --save-calibration: the ranges every pass that calibrated returned, merged by value name
// (a later pass's range wins; the file's calibrator and options are the first pass's).
// Throws before anything is written when no pass returned any.
std::optional<calib::RangeTable> ranges_to_save(const CompressRun& run) {
    if (!run.save_calibration) return std::nullopt;
    std::optional<calib::RangeTable> table;
    for (const auto& record : run.records) {
        if (!record.result.ranges) continue;
        if (!table) {
            table = *record.result.ranges;
            continue;
        }
        for (const auto& [name, range] : record.result.ranges->ranges) table->ranges[name] = range;
    }
    if (!table)
        throw InputError(cat("--save-calibration ", run.save_calibration->string(),
                             ": the passes calibrated no activation ranges (none quantized ",
                             "activations on this model)"));
    return table;
}

// The directories from `dir` up that do not exist yet, deepest first.
std::vector<std::filesystem::path> missing_dirs(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> missing;
    std::error_code ec;
    for (auto p = dir; !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
        missing.push_back(p);
        if (p.parent_path() == p) break;
    }
    return missing;
}

// A stage failed after writing began: what this run wrote is removed, so a failing run
// leaves no output (the checks before writing make this rare).
void remove_written(const CompressRun& run) {
    std::error_code ec;
    for (const auto& f : run.written_files) std::filesystem::remove(f, ec);
    // Children before parents (a report folder inside an output's new folder): longest
    // path first; remove() leaves a directory that is not empty.
    std::vector<std::filesystem::path> dirs = run.created_dirs;
    std::sort(dirs.begin(), dirs.end(),
              [](const auto& a, const auto& b) { return a.native().size() > b.native().size(); });
    for (const auto& d : dirs) std::filesystem::remove(d, ec);
}

// Step 5, the writing: every output, then the passes' summary and what was written.
void write_outputs(CompressRun& run) {
    for (const auto& o : run.outputs)
        for (const auto& d : missing_dirs(o.parent_path())) run.created_dirs.push_back(d);
    for (const auto& d : missing_dirs(run.report_dir)) run.created_dirs.push_back(d);
    run.save = save_options(run);
    run.validated = validated_output(run.outputs);
    if (run.recipe.validate)
        run.also_validated = other_validated_outputs(run.outputs, run.validated);
    const std::optional<calib::RangeTable> ranges = ranges_to_save(run);
    if (ranges)
        for (const auto& d : missing_dirs(run.save_calibration->parent_path()))
            run.created_dirs.push_back(d);
    // Every output (and the ranges file) appears together, when all are written: a run
    // that fails or is killed before then leaves none of them, and the files an earlier
    // run left at those paths untouched.
    const auto since = std::filesystem::file_time_type::clock::now();
    OutputBatch batch;
    for (const auto& output : run.outputs) write_output(run, output);
    if (ranges) {
        std::error_code ec;
        std::filesystem::create_directories(run.save_calibration->parent_path(), ec);
        calib::write_range_table(*ranges, *run.save_calibration);
    }
    batch.commit();
    // From here on, a failure removes them (remove_written).
    run.written_files.insert(run.written_files.end(), run.outputs.begin(), run.outputs.end());
    if (ranges) run.written_files.push_back(*run.save_calibration);
    for (const auto& output : run.outputs)
        run.outputs_json.push_back(output_json(run, output, since));
    std::ostream& err = run.err;
    err << format_summary(run.records);
    if (run.options.manager.time_passes)
        err << format_time_table(
            run.records, {{"load model", run.load_seconds}, {"write output", run.save_seconds}});
    for (const auto& o : run.outputs_json)
        err << "edgepack: wrote " << o["path"].get<std::string>() << " ("
            << human_bytes(o["bytes"].get<uint64_t>()) << ")\n";
    if (ranges)
        err << "edgepack: wrote " << run.save_calibration->string() << " (" << ranges->ranges.size()
            << " activation ranges, " << ranges->calibrator << ")\n";
    err << std::flush;
}

// report.json "size": the input against the primary output, by tensor category.
void measure_size(CompressRun& run) {
    for (size_t i = 0; i < run.outputs.size(); ++i)
        if (run.validated && run.outputs[i] == *run.validated) {
            run.primary = i;
            break;
        }
    // A streamed output's tensors were never in memory: read back what was written.
    run.after =
        run.stream ? tensor_inventory(load_model(run.outputs[0])) : tensor_inventory(run.model);
    run.size = size_by_category(run.before, run.after, run.input_json["bytes"].get<uint64_t>(),
                                run.outputs_json[run.primary]["bytes"].get<uint64_t>());
}

// The validation of the validated output against the input, as the recipe asks.
ValidateOptions validate_options(const CompressRun& run) {
    const ValidateConfig& vc = *run.recipe.validate;
    ValidateOptions v;
    v.reference = run.recipe.model;
    v.candidate = validated_output(run.outputs).value_or(run.recipe.model);
    v.data.data = vc.data;
    v.data.samples = vc.samples;
    v.data.seed = vc.seed;
    v.data.shapes = validate_shapes(run.recipe);
    v.labels = vc.labels;
    v.labels_field = "validate.labels";
    v.outputs = vc.outputs;
    v.per_layer = vc.per_layer;
    v.threads = validation_threads(run);
    v.candidate_int8_activations = vc.int8_activations;
    return v;
}

// Latency (benchmark_runs > 0) or one run each for the memory figures, on the first sample.
void benchmark(CompressRun& run, rt::Executor& reference, rt::Executor& candidate,
               const DataSource& data) {
    const ValidateConfig& vc = *run.recipe.validate;
    auto bench_start = std::chrono::steady_clock::now();
    Dataset dataset(reference, data);
    rt::NamedTensors ref_inputs = dataset.load(0), cand_inputs;
    for (const auto& in : candidate.inputs())
        for (const auto& f : ref_inputs)
            if (f.first == in.name) cand_inputs.push_back(f);
    if (vc.benchmark_runs > 0) {
        run.latency =
            benchmark_pair(reference, candidate, ref_inputs, cand_inputs, vc.benchmark_warmup,
                           vc.benchmark_runs, run.threads, run.memory, run.long_steps());
    } else {
        (void)reference.run(ref_inputs);
        (void)candidate.run(cand_inputs);
        run.memory = {{"reference", memory_json(reference)}, {"candidate", memory_json(candidate)}};
    }
    run.benchmark_seconds = seconds_since(bench_start);
}

// The validation's thread count: validate.threads, else the run's --threads.
int validation_threads(const CompressRun& run) {
    const Recipe& recipe = run.recipe;
    return recipe.validate && recipe.validate->threads > 0 ? recipe.validate->threads
                                                           : run.options.manager.context.threads;
}

// Step 6: with a "validate" section, the validated output against the input, then both
// timed.
void validate_and_benchmark(CompressRun& run) {
    const Recipe& recipe = run.recipe;
    run.threads = validation_threads(run);
    if (!recipe.validate) return;
    ValidateOptions v = validate_options(run);
    if (run.progress)
        run.err << "edgepack: validating " << run.validated->string() << "\n" << std::flush;
    auto validate_start = std::chrono::steady_clock::now();
    // One executor per model serves the comparison and the benchmark.
    rt::ExecOptions exec;
    exec.threads = run.threads;
    rt::Executor reference(load_model(recipe.model), exec);
    exec.int8_activations = recipe.validate->int8_activations;
    rt::Executor candidate(load_model(*run.validated), exec);
    run.validation =
        validation_section(validate_models(reference, candidate, v, run.long_steps()), run.threads);
    // Every other .epk / .onnx output against the same reference executor.
    for (const auto& other : run.also_validated) {
        if (run.progress)
            run.err << "edgepack: validating " << other.string() << "\n" << std::flush;
        std::optional<rt::Executor> also;
        try {
            also.emplace(load_model(other), exec);
        } catch (const InputError& e) {
            // The file was written; the runtime cannot run it (an op it lacks): said in the
            // report, and no gate passes on an unchecked file.
            run.not_validated[other] = e.what();
            continue;
        }
        ValidateOptions vo = v;
        vo.candidate = other;
        run.other_validations.push_back(validation_section(
            validate_models(reference, *also, vo, run.long_steps()), run.threads));
    }
    run.validate_seconds = seconds_since(validate_start);
    benchmark(run, reference, candidate, v.data);
}

// Step 7, the verdict: the gates and the --baseline checks.
void judge(CompressRun& run) {
    run.metrics = flat_metrics(run.validation, run.size, run.latency, run.memory);
    run.gates = evaluate_gates(run.recipe.gates, run.metrics);
    // The comparison gates hold only when they hold for every validated output.
    std::vector<Limit> every_output;
    for (const auto& g : run.recipe.gates)
        if (judged_on_every_output(g)) every_output.push_back(g);
    for (auto& other : run.other_validations) {
        other["metrics"] =
            flat_metrics(other, nlohmann::json(), nlohmann::json(), nlohmann::json());
        other["gates"] = evaluate_gates(every_output, other["metrics"]);
        fold_output_checks(run.gates, other["gates"], other["candidate"].get<std::string>());
    }
    for (auto& o : run.outputs_json)
        if (auto it = run.not_validated.find(o["path"].get<std::string>());
            it != run.not_validated.end()) {
            o["validated"] = false;
            o["not_validated"] = it->second;
        }
    if (!run.not_validated.empty()) {
        // A gate cannot hold on a file that was not checked.
        for (auto& g : run.gates) {
            Limit limit{g["name"].get<std::string>(), 0};
            if (!judged_on_every_output(limit) || !g["passed"].get<bool>()) continue;
            const auto& [path, why] = *run.not_validated.begin();
            g["passed"] = false;
            g["detail"] = cat(path.filename().string(), ": not validated (", why, ")");
            g["output"] = path.string();
        }
    }
    if (run.options.baseline) {
        BaselineComparison c =
            compare_baseline(run.recipe.baseline, run.metrics, run.baseline_report.metrics);
        run.baseline = {{"file", run.options.baseline->string()},
                        {"model_sha256", run.baseline_report.model_sha256},
                        {"any_model", run.options.baseline_any_model},
                        {"checks", c.checks},
                        {"not_in_baseline", c.not_in_baseline}};
    }
    run.failed = nlohmann::json::array();
    for (const auto& g : run.gates)
        if (!g["passed"].get<bool>()) run.failed.push_back(g["name"]);
    if (run.baseline.is_object())
        for (const auto& c : run.baseline["checks"])
            if (!c["passed"].get<bool>()) run.failed.push_back(c["name"]);
    run.exit_code = run.failed.empty() ? 0 : 1;
}

// report.json (schema edgepack.report/1, docs/reports.md).
nlohmann::json report_json(const CompressRun& run) {
    const CompressOptions& options = run.options;
    nlohmann::json recipe_json = {{"file", options.recipe.string()},
                                  {"sha256", run.save.epk.provenance.recipe_sha256},
                                  {"overrides", options.overrides},
                                  {"description", run.recipe.description}};
    return {{"schema", kReportSchema},
            {"verdict", run.exit_code == 0 ? "pass" : "fail"},
            {"exit_code", run.exit_code},
            {"edgepack", {{"version", EDGEPACK_VERSION}}},
            {"environment", environment_json(run.threads)},
            {"recipe", recipe_json},
            {"input", run.input_json},
            {"outputs", run.outputs_json},
            {"size", run.size},
            {"passes", passes_json(run.records)},
            {"tensors", tensor_decisions(run.before, run.after, run.records)},
            {"validation", run.validation},
            {"other_validations", run.other_validations},
            {"metrics", run.metrics},
            {"latency", run.latency},
            {"memory", run.memory},
            {"gates", run.gates},
            {"baseline", run.baseline},
            {"fallback", run.fallback},
            {"timings",
             {{"load_s", run.load_seconds},
              {"passes_s", run.passes_seconds},
              {"write_s", run.save_seconds},
              {"validate_s", run.validate_seconds},
              {"benchmark_s", run.benchmark_seconds},
              {"total_s", seconds_since(run.total_start)}}}};
}

// Step 7, the reports: report.json, report.md, report.html, junit.xml.
void write_report(CompressRun& run) {
    run.report = report_json(run);
    run.written = write_reports(run.report, run.report_dir);
    run.written_files.insert(run.written_files.end(), run.written.begin(), run.written.end());
}

// The summary's validation line: KL, top-1, SQNR, accuracy and latency when measured.
void print_validation(const CompressRun& run) {
    const auto& m = run.metrics;
    auto show = [](const nlohmann::json& v, const char* unit) {
        if (v.is_null()) return std::string("-");
        if (v.is_string()) return v.get<std::string>();
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.4g%s", v.get<double>(), unit);
        return std::string(buf);
    };
    std::ostream& err = run.err;
    err << "edgepack: validation (" << run.validation["inputs"]["description"].get<std::string>()
        << "):";
    // Only what was measured: a map or an embedding has no KL and no top-1.
    const char* sep = " ";
    auto item = [&](const char* label, const nlohmann::json& v, const char* unit) {
        if (v.is_null()) return;
        err << sep << label << " " << show(v, unit);
        sep = ", ";
    };
    item("KL mean", m["kl_mean"], "");
    item("p99", m["kl_p99"], "");
    item("top-1 agreement", m["top1_agreement"], "%");
    item("line agreement", m["line_agreement"], "%");
    item("SQNR", m["sqnr_db"], " dB");
    if (!m["ppl_ratio"].is_null())
        err << ", perplexity " << show(m["perplexity_reference"], "") << " -> "
            << show(m["perplexity_candidate"], "") << " (x" << show(m["ppl_ratio"], "") << ")";
    if (!m["accuracy_drop"].is_null())
        err << ", accuracy " << show(m["accuracy_reference"], "%") << " -> "
            << show(m["accuracy_candidate"], "%");
    if (!m["cer_candidate"].is_null())
        err << ", CER " << show(m["cer_reference"], "%") << " -> " << show(m["cer_candidate"], "%");
    if (!m["latency_ratio"].is_null())
        err << ", latency p50 " << show(m["latency_p50_ms"], " ms") << " (x"
            << show(m["latency_ratio"], "") << " of the input)";
    err << "\n";
}

void print_checks(std::ostream& err, const nlohmann::json& checks, const char* what) {
    size_t failed = 0;
    for (const auto& c : checks) failed += c["passed"].get<bool>() ? 0 : 1;
    err << "edgepack: " << what << ": " << checks.size() - failed << " passed, " << failed
        << " failed\n";
    for (const auto& c : checks)
        err << "  " << (c["passed"].get<bool>() ? "pass" : "FAIL") << "  "
            << c["name"].get<std::string>() << ": " << c["detail"].get<std::string>() << "\n";
}

// --json: the summary as one JSON object on `out`.
void print_json_summary(const CompressRun& run) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& w : run.written) files.push_back(w.string());
    nlohmann::json summary = {{"verdict", run.report["verdict"]},
                              {"exit_code", run.exit_code},
                              {"failed", run.failed},
                              {"outputs", run.outputs_json},
                              {"report_dir", run.report_dir.string()},
                              {"reports", files},
                              {"metrics", run.metrics},
                              {"gates", run.gates},
                              {"baseline", run.baseline}};
    run.out << summary.dump(2) << "\n" << std::flush;
}

// Step 8: the summary and the verdict.
void print_summary(const CompressRun& run) {
    std::ostream& err = run.err;
    if (!run.validation.is_null()) print_validation(run);
    for (const auto& other : run.other_validations) {
        size_t failed = 0;
        for (const auto& g : other["gates"]) failed += g["passed"].get<bool>() ? 0 : 1;
        const auto& m = other["metrics"];
        err << "edgepack: also validated " << other["candidate"].get<std::string>() << ":";
        const char* sep = " ";
        for (const char* key : {"kl_mean", "top1_agreement", "line_agreement", "accuracy_candidate",
                                "ppl_ratio", "sqnr_db"}) {
            if (m[key].is_null()) continue;
            err << sep << key << " " << m[key].dump();
            sep = ", ";
        }
        err << "; gates on it: " << other["gates"].size() - failed << " passed, " << failed
            << " failed\n";
    }
    for (const auto& [path, why] : run.not_validated)
        err << "edgepack: not validated: " << path.string() << ": " << why << "\n";
    if (!run.gates.empty()) print_checks(err, run.gates, "gates");
    if (run.baseline.is_object()) {
        print_checks(err, run.baseline["checks"], "baseline");
        for (const auto& m : run.baseline["not_in_baseline"])
            err << "  -     baseline." << m.get<std::string>() << ": not in baseline ("
                << run.baseline["file"].get<std::string>()
                << " did not measure it; not compared)\n";
    }
    err << "edgepack: reports in " << run.report_dir.string() << ": report.md, report.html, "
        << "report.json, junit.xml\n";
    err << "edgepack: verdict: " << verdict_word(run.exit_code) << " (exit " << run.exit_code << ")"
        << synthetic_note(run.validation) << "\n"
        << std::flush;
    if (run.options.json_summary) print_json_summary(run);
}

}  // namespace

int run_compress(const CompressOptions& options, std::ostream& out, std::ostream& err_stream) {
    std::ostream null_stream(nullptr);  // no buffer: writes are dropped (--quiet)
    CompressRun run(options, out, options.quiet ? null_stream : err_stream);
    resolve_outputs(run);
    if (!load_and_plan(run)) return 0;  // --dry-run
    run_or_stream(run);
    try {
        write_outputs(run);
        measure_size(run);
        validate_and_benchmark(run);
        judge(run);
        write_report(run);
    } catch (...) {
        remove_written(run);
        throw;
    }
    print_summary(run);
    return run.exit_code;
}

}  // namespace ep
