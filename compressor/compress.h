// `edgepack compress`: load a recipe, load its model, run the passes, write the outputs,
// validate what was written, judge the gates, write the reports (docs/ci.md, docs/reports.md).
//
// Order (each step fails before the next starts, so a bad recipe never loads a model and
// nothing is written unless every check and every pass succeeded):
//   1. load and validate the recipe with its --set overrides; check -o's extension; read the
//      --baseline report (a bad one is bad input, exit 2, before any work); the report folder
//   2. create and configure the passes; check --print-after names
//   3. load the model; check each pass's needs() against it; read the recipe's
//      calibration.ranges (a bad file: InputError naming the field); then everything that could
//      fail once writing begins: the --baseline report is of this model (input.sha256;
//      unless baseline_any_model), the runtime implements every op (with a "validate"
//      section or an .epk output), the validation and calibration data (every sample read
//      and checked against the model's inputs, without running), labels and shapes, every
//      output, the --save-calibration file and the report folder can be written
//   4. --dry-run: print the plan to `out` and stop (nothing is written; the checks of 3 ran,
//      so a dry run exits as the real run would up to here)
//   5. run the passes (hooks per PassManagerOptions); write every output atomically
//      (a safetensors checkpoint whose one pass offers a streaming plan, e.g. rtn
//      quantize-weights, written to one .epk or .safetensors file, is transformed while it
//      is written instead: stream_compress.h), then the --save-calibration file
//   6. with a "validate" section: compare the validated output (the first .epk, else the
//      first .onnx) with the input model on the validation samples, and time both
//   7. evaluate the gates and the baseline checks; write report.json, report.md,
//      report.html and junit.xml into the report directory
//   8. print the summary and the verdict to `err` (unless quiet); with json_summary, one
//      JSON object to `out`
// Returns 0 when every gate and baseline check held, 1 when one failed (the outputs and the
// reports are written either way); bad input throws InputError (2), bugs InternalError (3).
// When anything throws after writing began, the files this run wrote and the directories
// it created are removed first: a failing run leaves no output.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "compressor/pass_manager.h"

namespace ep {

class Progress;  // ir/progress.h

struct CompressOptions {
    std::filesystem::path recipe;
    std::vector<std::string> overrides;           // --set PATH=VALUE, in order
    std::optional<std::filesystem::path> output;  // -o (relative to the working directory)
    bool dry_run = false;
    std::optional<std::filesystem::path> report_dir;  // --report-dir (overrides the recipe's)
    std::optional<std::filesystem::path> baseline;    // --baseline REPORT.json
    bool baseline_any_model = false;  // --baseline-any-model: a report of another model
    bool quiet = false;               // --quiet: nothing on `err` except what throws
    bool json_summary = false;        // --json: the summary as one JSON object on `out`
    Progress* progress = nullptr;     // progress of long steps (may be null)
    // --save-calibration FILE: the activation ranges the passes used (PassResult::ranges),
    // written as an edgepack.calibration/1 file with the outputs (relative to the working
    // directory); refused at plan time when no pass calibrates activation ranges.
    std::optional<std::filesystem::path> save_calibration;
    PassManagerOptions manager;
};

// Returns the exit code (0 or 1); throws ep::Error for everything else.
[[nodiscard]] int run_compress(const CompressOptions& options, std::ostream& out,
                               std::ostream& err);

}  // namespace ep
