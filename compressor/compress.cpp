// `edgepack compress` (contract in compress.h).
#include "compressor/compress.h"

#include <chrono>
#include <cstdio>
#include <ostream>

#include "compressor/calibration_data.h"
#include "compressor/ir/error.h"
#include "compressor/stream_compress.h"
#include "formats/model_io.h"

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

}  // namespace

int run_compress(const CompressOptions& options, std::ostream& out, std::ostream& err) {
    const bool progress = options.manager.progress;
    Recipe recipe = load_recipe(options.recipe, options.overrides);

    std::optional<std::filesystem::path> output = recipe.output;
    if (options.output) {
        check_output_extension(*options.output, "-o");
        output = std::filesystem::absolute(*options.output).lexically_normal();
    }
    if (!output && !options.dry_run)
        throw InputError(cat(recipe.what, ": output: missing; add \"output\" to the recipe ",
                             "or pass -o FILE"));
    if (output && same_file(*output, recipe.model))
        throw InputError(cat(output->string(), ": the output would overwrite the input model; ",
                             "choose another output path"));

    PassManager manager(recipe);
    manager.check_print_after(options.manager.print_after);

    if (progress) err << "edgepack: loading " << recipe.model.string() << "\n" << std::flush;
    auto load_start = std::chrono::steady_clock::now();
    Model model = load_model(recipe.model);
    double load_seconds = seconds_since(load_start);
    PassResources resources;
    resources.calibration_data = recipe.calibration.has_value();
    manager.check_needs(model, recipe.model.filename().string(), resources);
    PassManagerOptions manager_options = options.manager;
    std::unique_ptr<calib::DataProvider> calibration;
    if (recipe.calibration) {
        calibration = make_calibration_provider(*recipe.calibration, recipe.what);
        manager_options.context.calibration = calibration.get();
    }

    if (options.dry_run) {
        out << "plan: " << recipe.model.string() << " -> "
            << (output ? output->string() : std::string("(no output)")) << ", "
            << manager.size() << " pass" << (manager.size() == 1 ? "" : "es") << "\n";
        for (const auto& line : manager.plan(model)) out << line << "\n";
        out << std::flush;
        err << "edgepack: dry run: nothing written\n";
        return 0;
    }

    // A checkpoint with one rtn quantize-weights pass is quantized while it is written, in
    // memory bounded by its largest tensor (stream_compress.h); the rest runs in memory.
    std::optional<StreamPlan> stream;
    if (!options.manager.verify_each && options.manager.print_after.empty())
        stream = plan_stream_compress(recipe, model, *output);
    std::vector<PassRecord> records;
    if (!stream) records = manager.run(model, manager_options, err);

    if (progress) err << "edgepack: writing " << output->string() << "\n" << std::flush;
    auto save_start = std::chrono::steady_clock::now();
    auto save_file_time = std::filesystem::file_time_type::clock::now();
    std::error_code ec;
    if (output->has_parent_path()) std::filesystem::create_directories(output->parent_path(), ec);
    SaveOptions save;
    save.onnx = recipe.onnx;
    if (output->extension() == ".epk") {  // provenance: what this file was made from
        save.epk.provenance.source_file = recipe.model.filename().string();
        save.epk.provenance.source_sha256 = sha256_file_hex(recipe.model);
        save.epk.provenance.recipe_file = options.recipe.filename().string();
        save.epk.provenance.recipe_sha256 = sha256_file_hex(options.recipe);
        save.epk.provenance.recipe_overrides = options.overrides;
    }
    double save_seconds = 0.0;
    if (stream) {
        StreamTimes times;
        records.push_back(run_stream_compress(model, *stream, *output, save, progress, err, times));
        save_seconds = seconds_since(save_start) - times.quantize_seconds;
    } else {
        save_model(model, *output, save);
        save_seconds = seconds_since(save_start);
    }

    err << format_summary(records);
    if (options.manager.time_passes)
        err << format_time_table(records, {{"load model", load_seconds},
                                           {"write output", save_seconds}});
    auto size = std::filesystem::file_size(*output, ec);
    err << "edgepack: wrote " << output->string() << " (" << (ec ? "size unknown" : human_bytes(size));
    auto data = output->string() + ".data";
    // Only a data file this run wrote (not a stale one from an earlier run).
    if (std::filesystem::exists(data, ec) &&
        std::filesystem::last_write_time(data, ec) >= save_file_time - std::chrono::seconds(2)) {
        auto data_size = std::filesystem::file_size(data, ec);
        if (!ec) err << ", external data " << data << ": " << human_bytes(data_size);
    }
    err << ")\n" << std::flush;
    return 0;
}

}  // namespace ep
