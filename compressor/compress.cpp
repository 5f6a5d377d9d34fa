// `edgepack compress` (contract in compress.h).
#include "compressor/compress.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ostream>

#include "compressor/calibration_data.h"
#include "compressor/dataset.h"
#include "compressor/gates.h"
#include "ir/error.h"
#include "compressor/report.h"
#include "compressor/stream_compress.h"
#include "compressor/validate.h"
#include "formats/epk.h"
#include "formats/model_io.h"
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

}  // namespace

int run_compress(const CompressOptions& options, std::ostream& out, std::ostream& err_stream) {
    auto total_start = std::chrono::steady_clock::now();
    std::ostream null_stream(nullptr);  // no buffer: writes are dropped (--quiet)
    std::ostream& err = options.quiet ? null_stream : err_stream;
    const bool progress = options.manager.progress && !options.quiet;
    Recipe recipe = load_recipe(options.recipe, options.overrides);

    std::vector<std::filesystem::path> outputs = recipe.outputs;
    if (options.output) {
        check_output_extension(*options.output, "-o");
        outputs = {std::filesystem::absolute(*options.output).lexically_normal()};
        if (recipe.validate && !validated_output(outputs))
            throw InputError(cat("-o ", options.output->string(),
                                 ": the recipe has a \"validate\" ",
                                 "section, which needs an .epk or .onnx output"));
    }
    if (outputs.empty() && !options.dry_run)
        throw InputError(cat(recipe.what, ": output: missing; add \"output\" to the recipe ",
                             "or pass -o FILE"));
    for (const auto& o : outputs)
        if (same_file(o, recipe.model))
            throw InputError(cat(o.string(), ": the output would overwrite the input model; ",
                                 "choose another output path"));
    nlohmann::json baseline_metrics;
    if (options.baseline) {
        if (recipe.baseline.empty())
            throw InputError(cat("--baseline: ", recipe.what, " sets no tolerances; add a ",
                                 "\"baseline\" section, e.g. {\"kl_mean\": 0.01}"));
        baseline_metrics = read_baseline_metrics(options.baseline->string());
    }

    PassManager manager(recipe);
    manager.check_print_after(options.manager.print_after);

    if (progress) err << "edgepack: loading " << recipe.model.string() << "\n" << std::flush;
    auto load_start = std::chrono::steady_clock::now();
    Model model = load_model(recipe.model);
    double load_seconds = seconds_since(load_start);
    PassResources resources;
    resources.calibration_data = recipe.calibration.has_value();
    manager.check_needs(model, recipe.model.filename().string(), resources);
    if (recipe.validate && model.graph.nodes.empty())
        throw InputError(cat(recipe.what, ": validate: ", recipe.model.filename().string(),
                             " is a weights-only checkpoint (no graph to run); validation "
                             "needs an ONNX model"));
    PassManagerOptions manager_options = options.manager;
    manager_options.progress = progress;
    manager_options.context.progress = options.quiet ? nullptr : options.progress;
    std::unique_ptr<calib::DataProvider> calibration;
    if (recipe.calibration) {
        calibration = make_calibration_provider(*recipe.calibration, recipe.what);
        manager_options.context.calibration = calibration.get();
    }

    if (options.dry_run) {
        out << "plan: " << recipe.model.string() << " -> ";
        for (size_t i = 0; i < outputs.size(); ++i) out << (i ? ", " : "") << outputs[i].string();
        if (outputs.empty()) out << "(no output)";
        out << ", " << manager.size() << " pass" << (manager.size() == 1 ? "" : "es") << "\n";
        for (const auto& line : manager.plan(model)) out << line << "\n";
        out << std::flush;
        err << "edgepack: dry run: nothing written\n";
        return 0;
    }

    // Before the passes change it: what the input holds, for the per-tensor report.
    const auto before = tensor_inventory(model);
    nlohmann::json input_json = file_json(recipe.model, external_files(model, recipe.model));

    // A checkpoint whose one pass offers a streaming plan (rtn quantize-weights) is
    // transformed while it is written, in bounded memory (stream_compress.h); the rest
    // runs in memory.
    std::optional<StreamPlan> stream;
    if (outputs.size() == 1 && !options.manager.verify_each && options.manager.print_after.empty())
        stream = plan_stream_compress(recipe, model, outputs[0]);
    std::vector<PassRecord> records;
    auto passes_start = std::chrono::steady_clock::now();
    if (!stream) records = manager.run(model, manager_options, err);
    double passes_seconds = seconds_since(passes_start);

    SaveOptions save;
    save.onnx = recipe.onnx;
    save.epk.provenance.source_file = recipe.model.filename().string();
    save.epk.provenance.source_sha256 = input_json["sha256"].get<std::string>();
    save.epk.provenance.recipe_file = options.recipe.filename().string();
    save.epk.provenance.recipe_sha256 = sha256_file_hex(options.recipe);
    save.epk.provenance.recipe_overrides = options.overrides;
    double save_seconds = 0.0;
    nlohmann::json outputs_json = nlohmann::json::array();
    auto validated = validated_output(outputs);
    for (const auto& output : outputs) {
        if (progress) err << "edgepack: writing " << output.string() << "\n" << std::flush;
        auto save_start = std::chrono::steady_clock::now();
        auto save_file_time = std::filesystem::file_time_type::clock::now();
        std::error_code ec;
        if (output.has_parent_path()) std::filesystem::create_directories(output.parent_path(), ec);
        if (stream) {
            StreamTimes times;
            records.push_back(
                run_stream_compress(model, *stream, output, save, progress, err, times));
            save_seconds += seconds_since(save_start) - times.pass_seconds;
            passes_seconds += times.pass_seconds;
        } else {
            save_model(model, output, save);
            save_seconds += seconds_since(save_start);
        }
        // Only a data file this run wrote (not a stale one from an earlier run).
        std::vector<std::filesystem::path> extra;
        auto data = std::filesystem::path(output.string() + ".data");
        if (output.extension() == ".onnx" && std::filesystem::exists(data, ec) &&
            std::filesystem::last_write_time(data, ec) >= save_file_time - std::chrono::seconds(2))
            extra.push_back(data);
        nlohmann::json file = file_json(output, extra);
        file["validated"] = validated && output == *validated;
        outputs_json.push_back(file);
    }
    err << format_summary(records);
    if (options.manager.time_passes)
        err << format_time_table(records,
                                 {{"load model", load_seconds}, {"write output", save_seconds}});
    for (const auto& o : outputs_json)
        err << "edgepack: wrote " << o["path"].get<std::string>() << " ("
            << human_bytes(o["bytes"].get<uint64_t>()) << ")\n";
    err << std::flush;

    // The primary output: the validated one, else the first.
    const nlohmann::json& primary = [&]() -> const nlohmann::json& {
        for (const auto& o : outputs_json)
            if (o["validated"].get<bool>()) return o;
        return outputs_json[0];
    }();
    const auto after = stream ? tensor_inventory(load_model(outputs[0])) : tensor_inventory(model);
    nlohmann::json size = size_by_category(before, after, input_json["bytes"].get<uint64_t>(),
                                           primary["bytes"].get<uint64_t>());

    // Validation and benchmark of what was written.
    nlohmann::json validation = nullptr, latency = nullptr, memory = nullptr;
    double validate_seconds = 0, benchmark_seconds = 0;
    const int threads = recipe.validate && recipe.validate->threads > 0
                            ? recipe.validate->threads
                            : options.manager.context.threads;
    if (recipe.validate) {
        const ValidateConfig& vc = *recipe.validate;
        ValidateOptions v;
        v.reference = recipe.model;
        v.candidate = *validated;
        v.data.data = vc.data;
        v.data.samples = vc.samples;
        v.data.seed = vc.seed;
        for (const auto& s : vc.shapes)
            with_context(cat(recipe.what, ": validate.shapes"),
                         [&] { rt::parse_shape_override(s, v.data.shapes); });
        v.labels = vc.labels;
        v.per_layer = vc.per_layer;
        v.threads = threads;
        v.candidate_int8_activations = vc.int8_activations;
        if (progress) err << "edgepack: validating " << validated->string() << "\n" << std::flush;
        auto validate_start = std::chrono::steady_clock::now();
        // One executor per model serves the comparison and the benchmark.
        rt::ExecOptions exec;
        exec.threads = threads;
        rt::Executor reference(load_model(recipe.model), exec);
        exec.int8_activations = vc.int8_activations;
        rt::Executor candidate(load_model(*validated), exec);
        validation = validation_section(
            validate_models(reference, candidate, v, options.quiet ? nullptr : options.progress),
            threads);
        validate_seconds = seconds_since(validate_start);

        auto bench_start = std::chrono::steady_clock::now();
        Dataset dataset(reference, v.data);
        rt::NamedTensors ref_inputs = dataset.load(0), cand_inputs;
        for (const auto& in : candidate.inputs())
            for (const auto& f : ref_inputs)
                if (f.first == in.name) cand_inputs.push_back(f);
        if (vc.benchmark_runs > 0) {
            latency = benchmark_pair(reference, candidate, ref_inputs, cand_inputs,
                                     vc.benchmark_warmup, vc.benchmark_runs, threads, memory,
                                     options.quiet ? nullptr : options.progress);
        } else {
            (void)reference.run(ref_inputs);
            (void)candidate.run(cand_inputs);
            memory = {{"reference", memory_json(reference)}, {"candidate", memory_json(candidate)}};
        }
        benchmark_seconds = seconds_since(bench_start);
    }

    nlohmann::json metrics = flat_metrics(validation, size, latency, memory);
    nlohmann::json gates = evaluate_gates(recipe.gates, metrics);
    nlohmann::json baseline = nullptr;
    if (options.baseline)
        baseline = {{"file", options.baseline->string()},
                    {"checks", compare_baseline(recipe.baseline, metrics, baseline_metrics)}};
    nlohmann::json failed = nlohmann::json::array();  // names of the failed checks
    for (const auto& g : gates)
        if (!g["passed"].get<bool>()) failed.push_back(g["name"]);
    if (baseline.is_object())
        for (const auto& c : baseline["checks"])
            if (!c["passed"].get<bool>()) failed.push_back(c["name"]);
    const bool passed = failed.empty();
    const int exit_code = passed ? 0 : 1;

    nlohmann::json recipe_json = {{"file", options.recipe.string()},
                                  {"sha256", save.epk.provenance.recipe_sha256},
                                  {"overrides", options.overrides},
                                  {"description", recipe.description}};
    nlohmann::json report = {{"schema", kReportSchema},
                             {"verdict", passed ? "pass" : "fail"},
                             {"exit_code", exit_code},
                             {"edgepack", {{"version", EDGEPACK_VERSION}}},
                             {"environment", environment_json(threads)},
                             {"recipe", recipe_json},
                             {"input", input_json},
                             {"outputs", outputs_json},
                             {"size", size},
                             {"passes", passes_json(records)},
                             {"tensors", tensor_decisions(before, after, records)},
                             {"validation", validation},
                             {"metrics", metrics},
                             {"latency", latency},
                             {"memory", memory},
                             {"gates", gates},
                             {"baseline", baseline},
                             {"timings",
                              {{"load_s", load_seconds},
                               {"passes_s", passes_seconds},
                               {"write_s", save_seconds},
                               {"validate_s", validate_seconds},
                               {"benchmark_s", benchmark_seconds},
                               {"total_s", seconds_since(total_start)}}}};

    std::filesystem::path report_dir =
        options.report_dir ? std::filesystem::absolute(*options.report_dir).lexically_normal()
        : recipe.report_dir
            ? *recipe.report_dir
            : std::filesystem::path(primary["path"].get<std::string>()).parent_path();
    auto written = write_reports(report, report_dir);

    // The summary.
    if (!validation.is_null()) {
        const auto& m = metrics;
        auto show = [](const nlohmann::json& v, const char* unit) {
            if (v.is_null()) return std::string("-");
            if (v.is_string()) return v.get<std::string>();
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.4g%s", v.get<double>(), unit);
            return std::string(buf);
        };
        err << "edgepack: validation (" << validation["inputs"]["description"].get<std::string>()
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
    auto print_checks = [&](const nlohmann::json& checks, const char* what) {
        size_t failed = 0;
        for (const auto& c : checks) failed += c["passed"].get<bool>() ? 0 : 1;
        err << "edgepack: " << what << ": " << checks.size() - failed << " passed, " << failed
            << " failed\n";
        for (const auto& c : checks)
            err << "  " << (c["passed"].get<bool>() ? "pass" : "FAIL") << "  "
                << c["name"].get<std::string>() << ": " << c["detail"].get<std::string>() << "\n";
    };
    if (!gates.empty()) print_checks(gates, "gates");
    if (baseline.is_object()) print_checks(baseline["checks"], "baseline");
    err << "edgepack: reports in " << report_dir.string() << ": report.md, report.html, "
        << "report.json, junit.xml\n";
    err << "edgepack: verdict: " << verdict_word(exit_code) << " (exit " << exit_code << ")\n"
        << std::flush;
    if (options.json_summary) {
        nlohmann::json files = nlohmann::json::array();
        for (const auto& w : written) files.push_back(w.string());
        nlohmann::json summary = {{"verdict", report["verdict"]},
                                  {"exit_code", exit_code},
                                  {"failed", failed},
                                  {"outputs", outputs_json},
                                  {"report_dir", report_dir.string()},
                                  {"reports", files},
                                  {"metrics", metrics},
                                  {"gates", gates},
                                  {"baseline", baseline}};
        out << summary.dump(2) << "\n" << std::flush;
    }
    return exit_code;
}

}  // namespace ep
