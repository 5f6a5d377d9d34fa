// edgepack-run MODEL.epk --input NAME=FILE.npy ... [--output-dir DIR] [--threads N]
//              [--int8-activations] [--quiet]
// The runtime alone, for a device: runs an .epk pack with the reference runtime and writes
// each output as DIR/OUTPUT_NAME.npy, as `edgepack run --input` does. It links
// edgepack_runtime, edgepack_epk and edgepack_ir only (no protobuf, no ONNX), so it
// cross-builds for aarch64 (scripts/cross_aarch64.sh, docs/delivery.md).
// Exit codes as edgepack's: 0 done, 2 bad input (a message naming the file, tensor or
// argument), 3 internal error.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>

#include <unistd.h>

#include "formats/epk.h"
#include "ir/error.h"
#include "ir/output_batch.h"
#include "ir/progress.h"
#include "runtime-check/executor.h"
#include "runtime-check/run_files.h"

#ifndef EDGEPACK_VERSION
#define EDGEPACK_VERSION "unknown"
#endif

namespace {

struct Args {
    std::string model;
    std::vector<std::string> inputs;
    std::string output_dir = ".";
    int threads = 1;
    bool int8_activations = false;
    bool quiet = false;
};

int run(const Args& args) {
    ep::Progress progress(ep::progress_mode_for(STDERR_FILENO, args.quiet), std::cerr);
    ep::rt::ExecOptions options;
    options.threads = args.threads;
    options.int8_activations = args.int8_activations;
    // The feeds first: a bad input file is named before the model is compiled.
    ep::rt::NamedTensors feeds = ep::read_input_files(args.inputs);
    ep::check_writable_dir(args.output_dir, "--output-dir");             // before the model runs
    ep::rt::Executor executor(ep::read_epk(args.model).model, options);  // errors name the file
    ep::write_output_files(executor.run(feeds), args.output_dir, &progress);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "edgepack-run: run an .epk pack with the edgepack runtime (inputs and outputs "
        "as .npy)"};
    app.set_version_flag("--version", std::string("edgepack-run ") + EDGEPACK_VERSION);
    Args args;
    app.add_option("MODEL", args.model, "The .epk pack")->required();
    app.add_option("--input,-i", args.inputs, "NAME=FILE.npy, once per model input");
    app.add_option("--output-dir,--out", args.output_dir,
                   "Directory for OUTPUT_NAME.npy files (created)");
    app.add_option("--threads", args.threads, "Worker threads")->check(CLI::Range(1, 256));
    app.add_flag("--int8-activations", args.int8_activations,
                 "MatMul/Gemm with int4 weights take int8 activations (faster, less exact)");
    app.add_flag("--quiet,-q", args.quiet, "Nothing on stderr but errors");
    try {
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            const int rc = app.exit(e);  // prints usage or the parse error
            return rc == 0 ? 0 : static_cast<int>(ep::ExitCode::BadInput);
        }
        return run(args);
    } catch (const ep::Error& e) {
        std::cerr << "edgepack-run: error: " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::bad_alloc&) {
        std::cerr << "edgepack-run: internal error: out of memory\n";
        return static_cast<int>(ep::ExitCode::Internal);
    } catch (const std::exception& e) {
        std::cerr << "edgepack-run: internal error: " << e.what() << "\n";
        return static_cast<int>(ep::ExitCode::Internal);
    }
}
