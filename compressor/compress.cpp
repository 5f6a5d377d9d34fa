// `edgepack compress` (contract in compress.h).
#include "compressor/compress.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>

#include "compressor/calibration_data.h"
#include "compressor/dataset.h"
#include "compressor/export_check.h"
#include "compressor/gates.h"
#include "compressor/report.h"
#include "compressor/stream_compress.h"
#include "compressor/validate.h"
#include "formats/epk.h"
#include "formats/model_io.h"
#include "ir/error.h"
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

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
    std::error_code ec;
    if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec))
        return std::filesystem::equivalent(a, b, ec);
    return std::filesystem::weakly_canonical(a, ec) == std::filesystem::weakly_canonical(b, ec);
}

// The output the recipe validates: the first .epk, else the first .onnx.
std::optional<std::filesystem::path> validated_output(
    const std::vector<std::filesystem::path>& outputs) {
    for (const char* ext : {".epk", ".onnx"})
        for (const auto& o : outputs)
            if (o.extension() == ext) return o;
    return std::nullopt;
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
                    {"reference", v["accuracy_reference"]},
                    {"candidate", v["accuracy_candidate"]},
                    {"drop", v["accuracy_drop"]}};
    return {{"candidate", v["candidate"]},
            {"inputs", v["inputs"]},
            {"labels", v["labels"]},
            {"threads", threads},
            {"int8_activations", v["candidate_int8_activations"]},
            {"outputs", v["outputs"]},
            {"accuracy", accuracy},
            {"not_compared", v["not_compared"]},
            {"per_layer", layers}};
}

std::string verdict_word(int code) {
    return code == 0 ? "PASS" : "FAIL";
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
    nlohmann::json baseline_metrics;
    // load_and_plan
    PassManager manager;
    Model model;
    std::vector<std::string> export_plan;  // check_exports' lines (export_check.h)
    double load_seconds = 0.0;
    PassManagerOptions manager_options;
    std::unique_ptr<calib::DataProvider> calibration;
    // run_or_stream
    std::vector<TensorEntry> before;  // what the input holds, for the per-tensor report
    nlohmann::json input_json;
    std::optional<StreamPlan> stream;
    std::vector<PassRecord> records;
    double passes_seconds = 0.0;
    // write_outputs, measure_size
    SaveOptions save;
    std::optional<std::filesystem::path> validated;
    nlohmann::json outputs_json = nlohmann::json::array();
    double save_seconds = 0.0;
    size_t primary = 0;  // in outputs_json: the validated output, else the first
    std::vector<TensorEntry> after;
    nlohmann::json size;
    // validate_and_benchmark (null without a "validate" section)
    int threads = 1;
    nlohmann::json validation, latency, memory;
    double validate_seconds = 0.0, benchmark_seconds = 0.0;
    // judge
    nlohmann::json metrics, gates, baseline, failed;  // failed: names of the failed checks
    int exit_code = 0;
    // write_report
    std::filesystem::path report_dir;
    std::vector<std::filesystem::path> written;
    nlohmann::json report;

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
    if (options.baseline) {
        if (recipe.baseline.empty())
            throw InputError(cat("--baseline: ", recipe.what, " sets no tolerances; add a ",
                                 "\"baseline\" section, e.g. {\"kl_mean\": 0.01}"));
        run.baseline_metrics = read_baseline_metrics(options.baseline->string());
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
    for (const auto& line : run.manager.plan(run.model)) out << line << "\n";
    out << std::flush;
    run.err << "edgepack: dry run: nothing written\n";
}

// Steps 2-4: the passes configured, the model loaded and checked against them, the
// calibration data opened. False when the run ends here (--dry-run, after its plan).
// The recipe's validate.shapes overrides, each checked naming the field.
rt::ShapeOverrides validate_shapes(const Recipe& recipe) {
    rt::ShapeOverrides shapes;
    for (const auto& s : recipe.validate->shapes)
        with_context(cat(recipe.what, ": validate.shapes"),
                     [&] { rt::parse_shape_override(s, shapes); });
    return shapes;
}

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
    run.manager.check_needs(run.model, recipe.model.filename().string(), resources);
    run.export_plan = check_exports(run.model, source_opset, recipe, run.outputs);
    if (!run.options.dry_run)
        for (const auto& line : run.export_plan) run.err << "edgepack: " << line << "\n";
    if (recipe.validate && run.model.graph.nodes.empty())
        throw InputError(cat(recipe.what, ": validate: ", recipe.model.filename().string(),
                             " is a weights-only checkpoint (no graph to run); validation "
                             "needs an ONNX model"));
    if (recipe.validate) {
        // What validating the input model would refuse is refused before anything is written.
        with_context(recipe.model.filename().string(),
                     [&] { rt::check_output_counts(run.model.graph); });
        if (recipe.validate->data.empty()) {
            const rt::ShapeOverrides shapes = validate_shapes(recipe);
            with_context(cat(recipe.what, ": validate"), [&] {
                rt::check_synthetic_inputs(rt::graph_feeds(run.model.graph), shapes);
            });
        }
    }
    run.manager_options = run.options.manager;
    run.manager_options.progress = run.progress;
    run.manager_options.context.progress = run.long_steps();
    if (recipe.calibration) {
        run.calibration = make_calibration_provider(*recipe.calibration, recipe.what);
        run.manager_options.context.calibration = run.calibration.get();
    }
    if (!run.options.dry_run) return true;
    print_dry_run(run);
    return false;
}

// Step 5, the passes: run here in memory, or planned now and run while the output is
// written (stream_compress.h).
void run_or_stream(CompressRun& run) {
    // Before the passes change it: what the input holds, for the per-tensor report.
    run.before = tensor_inventory(run.model);
    run.input_json = file_json(run.recipe.model, external_files(run.model, run.recipe.model));

    // A checkpoint whose one pass offers a streaming plan (rtn quantize-weights) is
    // transformed while it is written, in bounded memory (stream_compress.h); the rest
    // runs in memory.
    const PassManagerOptions& hooks = run.options.manager;
    if (run.outputs.size() == 1 && !hooks.verify_each && hooks.print_after.empty())
        run.stream = plan_stream_compress(run.recipe, run.model, run.outputs[0]);
    auto passes_start = std::chrono::steady_clock::now();
    if (!run.stream) run.records = run.manager.run(run.model, run.manager_options, run.err);
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
    return save;
}

// One output written atomically; returns its report.json "outputs" entry.
nlohmann::json write_output(CompressRun& run, const std::filesystem::path& output) {
    if (run.progress) run.err << "edgepack: writing " << output.string() << "\n" << std::flush;
    auto save_start = std::chrono::steady_clock::now();
    auto save_file_time = std::filesystem::file_time_type::clock::now();
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
    // Only a data file this run wrote (not a stale one from an earlier run).
    std::vector<std::filesystem::path> extra;
    auto data = std::filesystem::path(output.string() + ".data");
    if (output.extension() == ".onnx" && std::filesystem::exists(data, ec) &&
        std::filesystem::last_write_time(data, ec) >= save_file_time - std::chrono::seconds(2))
        extra.push_back(data);
    nlohmann::json file = file_json(output, extra);
    file["validated"] = run.validated && output == *run.validated;
    return file;
}

// Step 5, the writing: every output, then the passes' summary and what was written.
void write_outputs(CompressRun& run) {
    run.save = save_options(run);
    run.validated = validated_output(run.outputs);
    for (const auto& output : run.outputs) run.outputs_json.push_back(write_output(run, output));
    std::ostream& err = run.err;
    err << format_summary(run.records);
    if (run.options.manager.time_passes)
        err << format_time_table(
            run.records, {{"load model", run.load_seconds}, {"write output", run.save_seconds}});
    for (const auto& o : run.outputs_json)
        err << "edgepack: wrote " << o["path"].get<std::string>() << " ("
            << human_bytes(o["bytes"].get<uint64_t>()) << ")\n";
    err << std::flush;
}

// report.json "size": the input against the primary output, by tensor category.
void measure_size(CompressRun& run) {
    for (size_t i = 0; i < run.outputs_json.size(); ++i)
        if (run.outputs_json[i]["validated"].get<bool>()) {
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
    v.candidate = *run.validated;
    v.data.data = vc.data;
    v.data.samples = vc.samples;
    v.data.seed = vc.seed;
    v.data.shapes = validate_shapes(run.recipe);
    v.labels = vc.labels;
    v.per_layer = vc.per_layer;
    v.threads = run.threads;
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

// Step 6: with a "validate" section, the validated output against the input, then both
// timed.
void validate_and_benchmark(CompressRun& run) {
    const Recipe& recipe = run.recipe;
    run.threads = recipe.validate && recipe.validate->threads > 0
                      ? recipe.validate->threads
                      : run.options.manager.context.threads;
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
    run.validate_seconds = seconds_since(validate_start);
    benchmark(run, reference, candidate, v.data);
}

// Step 7, the verdict: the gates and the --baseline checks.
void judge(CompressRun& run) {
    run.metrics = flat_metrics(run.validation, run.size, run.latency, run.memory);
    run.gates = evaluate_gates(run.recipe.gates, run.metrics);
    if (run.options.baseline)
        run.baseline = {
            {"file", run.options.baseline->string()},
            {"checks", compare_baseline(run.recipe.baseline, run.metrics, run.baseline_metrics)}};
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
            {"metrics", run.metrics},
            {"latency", run.latency},
            {"memory", run.memory},
            {"gates", run.gates},
            {"baseline", run.baseline},
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
    const auto& primary = run.outputs_json[run.primary];
    run.report_dir = run.options.report_dir
                         ? std::filesystem::absolute(*run.options.report_dir).lexically_normal()
                     : run.recipe.report_dir
                         ? *run.recipe.report_dir
                         : std::filesystem::path(primary["path"].get<std::string>()).parent_path();
    run.written = write_reports(run.report, run.report_dir);
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
        << "): KL mean " << show(m["kl_mean"], "") << ", p99 " << show(m["kl_p99"], "")
        << ", top-1 agreement " << show(m["top1_agreement"], "%") << ", SQNR "
        << show(m["sqnr_db"], " dB");
    if (!m["accuracy_drop"].is_null())
        err << ", accuracy " << show(m["accuracy_reference"], "%") << " -> "
            << show(m["accuracy_candidate"], "%");
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
    if (!run.gates.empty()) print_checks(err, run.gates, "gates");
    if (run.baseline.is_object()) print_checks(err, run.baseline["checks"], "baseline");
    err << "edgepack: reports in " << run.report_dir.string() << ": report.md, report.html, "
        << "report.json, junit.xml\n";
    err << "edgepack: verdict: " << verdict_word(run.exit_code) << " (exit " << run.exit_code
        << ")\n"
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
    write_outputs(run);
    measure_size(run);
    validate_and_benchmark(run);
    judge(run);
    write_report(run);
    print_summary(run);
    return run.exit_code;
}

}  // namespace ep
