// edgepack compress RECIPE.json [--dry-run] [--set PATH=VALUE ...] [-o OUT] [--time-passes]
//                               [--verify-each] [--print-after PASS ...] [--threads N]
// Parses the arguments and hands them to run_compress (compressor/compress.h).
#include <unistd.h>

#include <iostream>
#include <thread>

#include "compressor/cli/commands.h"
#include "compressor/compress.h"
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
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("compress", "Run a recipe: load the model, run its passes, "
                                               "write the output (docs/recipes.md)");
    cmd->add_option("RECIPE", args->recipe, "Recipe .json file")->required();
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
                    "Output file (.onnx, .safetensors or .epk); overrides the recipe's output");
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
    cmd->callback([args, &action] {
        action = [args] {
            CompressOptions options;
            options.recipe = args->recipe;
            options.overrides = args->overrides;
            if (!args->output.empty()) options.output = args->output;
            options.dry_run = args->dry_run;
            options.manager.time_passes = args->time_passes;
            options.manager.verify_each = args->verify_each;
            options.manager.print_after = args->print_after;
            options.manager.progress = isatty(STDERR_FILENO) == 1;
            int threads = args->threads;
            if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
            options.manager.context.threads = threads > 0 ? threads : 1;
            return run_compress(options, std::cout, std::cerr);
        };
    });
}

}  // namespace ep::cli
