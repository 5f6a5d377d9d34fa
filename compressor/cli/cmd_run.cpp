// edgepack run MODEL [--input NAME=FILE.npy ... | --data DIR | --samples N [--seed S]
//                     [--shape NAME=D0,D1,...]] [--out DIR] [--threads N]
//                     [--int8-activations] [--verify-key KEY.pub [--signature SIG]] [--quiet]
// Runs a model with the reference runtime and writes each output as OUTPUT_NAME.npy
// (characters outside [A-Za-z0-9._-] become '_'; two outputs that would share a file are
// exit 2). A run's .npy files appear together, when all are written (OutputBatch); --out
// is checked before the model runs.
//   --input: one run; outputs go to OUT/.
//   --data DIR / --samples N: one run per sample (compressor/dataset.h says what DIR may
//   hold); sample k's outputs go to OUT/sample_K/, K zero-padded to the width of the last
//   index so the folders sort in sample order (and can be read back with --data OUT).
// stderr: the outputs written (for many samples, once, as OUT/sample_*/NAME.npy) and the
// progress over the samples (a bar on a terminal, plain lines otherwise); --quiet: nothing.
// --verify-key: MODEL's detached signature (MODEL.sig) is checked before MODEL is loaded.
#include <filesystem>
#include <iostream>
#include <map>

#include <unistd.h>

#include "compressor/cli/commands.h"
#include "compressor/dataset.h"
#include "formats/model_io.h"
#include "ir/output_batch.h"
#include "ir/progress.h"
#include "runtime-check/executor.h"
#include "runtime-check/run_files.h"

namespace ep::cli {

void add_run_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string model;
        std::vector<std::string> inputs;
        std::string data;
        uint64_t samples = 0;
        uint64_t seed = 0;
        std::vector<std::string> shapes;
        std::string out = ".";
        int threads = 1;
        bool int8_activations = false;
        bool quiet = false;
        VerifyKeyArgs verify;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("run", "Run a model with the reference runtime");
    cmd->add_option("MODEL", args->model, "Model file (.onnx or .epk)")->required();
    auto* input =
        cmd->add_option("--input,-i", args->inputs, "NAME=FILE.npy, once per model input");
    auto* data = cmd->add_option("--data", args->data,
                                 "Directory of samples: .npz files, NAME.npy / input_0.pb files, "
                                 "or folders of them; outputs go to OUT/sample_K/");
    auto* samples = cmd->add_option("--samples", args->samples,
                                    "Run N seeded random samples (outputs in OUT/sample_K/)")
                        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
    cmd->add_option("--seed", args->seed, "Seed of the random samples (sample k uses seed+k)")
        ->needs(samples);
    cmd->add_option("--shape", args->shapes,
                    "NAME=D0,D1,...: shape of a random input (symbolic dimensions default to 1)")
        ->needs(samples);
    input->excludes(data)->excludes(samples);
    data->excludes(samples);
    cmd->add_option("--out", args->out, "Directory for OUTPUT_NAME.npy files (created)");
    cmd->add_option("--threads", args->threads, "Worker threads")->check(CLI::Range(1, 256));
    cmd->add_flag("--int8-activations", args->int8_activations,
                  "MatMul/Gemm with int4 weights take int8 activations (faster, less exact)");
    add_verify_key_options(*cmd, args->verify, "MODEL");
    cmd->add_flag("--quiet,-q", args->quiet, "Nothing on stderr but errors");
    cmd->callback([args, &action] {
        action = [args] {
            Progress progress(progress_mode_for(STDERR_FILENO, args->quiet), std::cerr);
            verify_if_asked(args->verify, args->model, progress);
            rt::ExecOptions options;
            options.threads = args->threads;
            options.int8_activations = args->int8_activations;
            check_writable_dir(args->out, "--out");  // before the model runs
            rt::Executor executor(load_model(args->model), options);
            if (args->data.empty() && args->samples == 0) {
                write_output_files(executor.run(read_input_files(args->inputs)), args->out,
                                   &progress);
                return 0;
            }
            DataSource source;
            source.data = args->data;
            source.samples = args->samples;
            source.seed = args->seed;
            for (const auto& spec : args->shapes) rt::parse_shape_override(spec, source.shapes);
            Dataset dataset(executor, source);
            progress.log(cat("inputs: ", dataset.describe()));
            size_t width = std::to_string(dataset.size() - 1).size();
            std::vector<std::string> written;  // the first sample's outputs, shown once
            auto step = progress.step("run", dataset.size(), "samples");
            for (size_t k = 0; k < dataset.size(); ++k) {
                std::string index = std::to_string(k);
                index.insert(0, width - index.size(), '0');
                auto dir = std::filesystem::path(args->out) / ("sample_" + index);
                step.set_detail(dataset.sample_name(k));
                rt::NamedTensors feeds = dataset.load(k);  // its errors name the file
                auto outputs =
                    with_context(dataset.sample_name(k), [&] { return executor.run(feeds); });
                write_output_files(outputs, dir, nullptr);
                if (k == 0)
                    for (const auto& [name, tensor] : outputs)
                        written.push_back(
                            output_line(name, tensor,
                                        std::filesystem::path(args->out) / "sample_*" /
                                            (safe_file_name(name) + ".npy")));
                step.advance();
            }
            step.finish();
            for (const auto& line : written) progress.log(line);
            return 0;
        };
    });
}

}  // namespace ep::cli
