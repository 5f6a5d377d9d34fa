// edgepack run MODEL --input NAME=FILE.npy ... [--out DIR] [--threads N]
// Runs a model with the reference runtime and writes each output as OUTPUT_NAME.npy.
#include <filesystem>
#include <iostream>

#include "compressor/cli/commands.h"
#include "formats/model_io.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"

namespace ep::cli {
namespace {

// Output names become file names: characters outside [A-Za-z0-9._-] become '_'.
std::string safe_file_name(const std::string& name) {
    std::string out = name;
    for (auto& ch : out)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-')) ch = '_';
    if (out.empty() || out == "." || out == "..") out = "_" + out;
    return out;
}

}  // namespace

void add_run_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string model;
        std::vector<std::string> inputs;
        std::string out = ".";
        int threads = 1;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("run", "Run a model with the reference runtime");
    cmd->add_option("MODEL", args->model, "Model file (.onnx)")->required();
    cmd->add_option("--input,-i", args->inputs, "NAME=FILE.npy, once per model input");
    cmd->add_option("--out", args->out, "Directory for OUTPUT_NAME.npy files (created)");
    cmd->add_option("--threads", args->threads, "Worker threads")->check(CLI::Range(1, 256));
    cmd->callback([args, &action] {
        action = [args] {
            rt::ExecOptions options;
            options.threads = args->threads;
            rt::Executor executor(load_model(args->model), options);
            rt::NamedTensors feeds;
            for (const auto& spec : args->inputs) {
                auto eq = spec.find('=');
                if (eq == std::string::npos || eq == 0)
                    throw InputError(cat("--input '", spec, "': expected NAME=FILE.npy"));
                feeds.emplace_back(spec.substr(0, eq), read_npy(spec.substr(eq + 1)));
            }
            auto outputs = executor.run(feeds);
            std::filesystem::create_directories(args->out);
            for (const auto& [name, tensor] : outputs) {
                auto path = std::filesystem::path(args->out) / (safe_file_name(name) + ".npy");
                write_npy(tensor, path);
                std::cerr << name << ": " << dtype_name(tensor.dtype) << " " << shape_string(tensor.shape)
                          << " -> " << path.string() << "\n";
            }
            return 0;
        };
    });
}

}  // namespace ep::cli
