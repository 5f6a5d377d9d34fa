// edgepack compress RECIPE.json [--dry-run] [--set PATH=VALUE ...] [-o OUT] [--time-passes]
//                               [--verify-each] [--print-after PASS ...] [--threads N]
//                               [--report-dir DIR] [--baseline REPORT.json]
//                               [--baseline-any-model] [--save-calibration FILE]
//                               [--quiet] [--json]
// edgepack compress --print-schema   (the recipe JSON Schema, docs/recipe.schema.json)
// Parses the arguments and hands them to run_compress (compressor/compress.h).
#include <unistd.h>

#include <iostream>
#include <thread>

#include "compressor/cli/commands.h"
#include "compressor/compress.h"
#include "compressor/recipe.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "passes/registry.h"

namespace ep::cli {

void add_compress_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string recipe;
        std::vector<std::string> overrides;
        std::string output;
        bool dry_run = false;
        bool time_passes = false;
        bool verify_each = false;
        std::vector<std::string> print_after;
        int threads = 0;
        std::string report_dir;
        std::string baseline;
        std::string save_calibration;
        bool baseline_any_model = false;
        bool quiet = false;
        bool json = false;
        bool print_schema = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("compress",
                                   "Run a recipe: load the model, run its passes, write the "
                                   "outputs, validate them, judge the gates, write the "
                                   "reports; exit 0 passed, 1 a gate failed (docs/ci.md)");
    cmd->add_option("RECIPE", args->recipe, "Recipe .json file");
    std::string footer = "Passes:";
    for (auto name : pass_names()) {
        auto pass = create_pass(name);
        footer += "\n  " + std::string(name) + " (" + std::string(pass_kind_name(pass->kind())) +
                  "): " + std::string(pass->description());
    }
    cmd->footer(footer);
    cmd->add_flag("--dry-run", args->dry_run,
                  "Load the model, print what each pass would do, write nothing");
    cmd->add_option("--set", args->overrides,
                    "Override a recipe value: PATH=VALUE, e.g. passes[0].include='[\"*.w\"]' "
                    "(VALUE is JSON, else a string); repeatable")
        ->type_name("PATH=VALUE")
        ->take_all()
        ->expected(1);
    cmd->add_option("-o,--output", args->output,
                    "Output file (.onnx, .safetensors or .epk); replaces the recipe's outputs");
    cmd->add_flag("--time-passes", args->time_passes, "Print wall time and rewrites per pass");
    cmd->add_flag("--verify-each", args->verify_each,
                  "Check the model's structure after every pass");
    cmd->add_option("--print-after", args->print_after,
                    "Print the graph after this pass (name or passes[i]); repeatable")
        ->type_name("PASS")
        ->take_all()
        ->expected(1);
    cmd->add_option("--threads", args->threads, "Worker threads (default: all CPUs)")
        ->check(CLI::Range(1, 4096));
    cmd->add_option("--report-dir", args->report_dir,
                    "Where report.json/.md/.html and junit.xml go (default: the recipe's "
                    "report_dir, else the validated output's directory)");
    cmd->add_option("--baseline", args->baseline,
                    "An earlier report.json: exit 1 when a metric got worse than the recipe's "
                    "\"baseline\" tolerances allow; it must be a report of the same model "
                    "(its input.sha256)");
    cmd->add_option("--save-calibration", args->save_calibration,
                    "Write the activation ranges the passes calibrated (an "
                    "edgepack.calibration/1 file) to FILE; a later recipe reuses them with "
                    "calibration.ranges and skips capture")
        ->type_name("FILE");
    cmd->add_flag("--baseline-any-model", args->baseline_any_model,
                  "Accept a --baseline report of another model (its input.sha256 differs)");
    cmd->add_flag("-q,--quiet", args->quiet, "Print nothing on stderr except errors");
    cmd->add_flag("--json", args->json,
                  "Print the summary (verdict, gates, metrics) as JSON on stdout; on exit 2 "
                  "or 3, a JSON error object");
    cmd->add_flag("--print-schema", args->print_schema,
                  "Print the recipe JSON Schema (docs/recipe.schema.json) and exit");
    cmd->callback([args, &action] {
        action = [args] {
            if (args->print_schema) {
                std::cout << recipe_json_schema().dump(2) << "\n";
                return 0;
            }
            if (args->recipe.empty())
                throw InputError("compress: RECIPE is required (a recipe .json file)");
            CompressOptions options;
            options.recipe = args->recipe;
            options.overrides = args->overrides;
            if (!args->output.empty()) options.output = args->output;
            options.dry_run = args->dry_run;
            options.manager.time_passes = args->time_passes;
            options.manager.verify_each = args->verify_each;
            options.manager.print_after = args->print_after;
            auto mode = progress_mode_for(STDERR_FILENO, args->quiet);
            Progress progress(mode, std::cerr);
            options.manager.progress = mode != ProgressMode::Off;
            options.progress = &progress;
            options.quiet = args->quiet;
            options.json_summary = args->json;
            if (!args->report_dir.empty()) options.report_dir = args->report_dir;
            if (!args->baseline.empty()) options.baseline = args->baseline;
            if (!args->save_calibration.empty()) options.save_calibration = args->save_calibration;
            if (args->baseline_any_model && args->baseline.empty())
                throw InputError("--baseline-any-model: applies to --baseline REPORT.json only");
            options.baseline_any_model = args->baseline_any_model;
            int threads = args->threads;
            if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
            options.manager.context.threads = threads > 0 ? threads : 1;
            return run_compress(options, std::cout, std::cerr);
        };
    });
}

}  // namespace ep::cli
