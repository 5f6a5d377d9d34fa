// `edgepack compress`: load a recipe, load its model, run the passes, write the output.
//
// Order (each step fails before the next starts, so a bad recipe never loads a model and
// nothing is written unless every pass succeeded):
//   1. load and validate the recipe with its --set overrides; check -o's extension
//   2. create and configure the passes; check --print-after names
//   3. load the model; check each pass's needs() against it
//   4. --dry-run: print the plan to `out` and stop (nothing is written)
//   5. run the passes (hooks per PassManagerOptions); write the output atomically
//      (a safetensors checkpoint with one rtn quantize-weights pass, written to .epk or
//      .safetensors, is quantized while it is written instead: stream_compress.h)
//   6. print the per-pass summary and "wrote PATH (N bytes)" to `err`
// stdout carries only the dry-run plan; everything else (progress, summary, timings,
// --print-after dumps) goes to stderr, so stdout stays free for machine-readable output.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "compressor/pass_manager.h"

namespace ep {

struct CompressOptions {
    std::filesystem::path recipe;
    std::vector<std::string> overrides;           // --set PATH=VALUE, in order
    std::optional<std::filesystem::path> output;  // -o (relative to the working directory)
    bool dry_run = false;
    PassManagerOptions manager;
};

// Returns the exit code (0); throws ep::Error for everything else.
[[nodiscard]] int run_compress(const CompressOptions& options, std::ostream& out,
                               std::ostream& err);

}  // namespace ep
