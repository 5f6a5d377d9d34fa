// The pass manager: runs a recipe's passes in order over one Model, with hooks.
//
// Construction creates and configures every pass (a bad option value is an InputError
// "<recipe>: passes[i] (name): ..."), so a recipe fails before any model is loaded.
// check_needs() then compares each pass's needs() with what the run has (a graph, not a
// bare checkpoint; calibration/evaluation data) and fails early naming the pass. run()
// executes the passes; every error a pass throws comes out prefixed with
// "passes[i] (name): ", keeping its exit code. Hooks, all optional:
//   time_passes  collect wall time per pass (format_time_table prints them)
//   verify_each  run ep::verify after every pass; a new problem is an InternalError
//                "after pass NAME: <problem>" (problems the input already had are
//                reported once as a warning and not blamed on any pass)
//   print_after  dump the graph (dump_graph) after the passes named (by name or path)
//   progress     one line per pass as it starts (the CLI sets it when stderr is a tty)
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "compressor/recipe.h"
#include "passes/pass.h"

namespace ep {

struct PassManagerOptions {
    bool time_passes = false;
    bool verify_each = false;
    std::vector<std::string> print_after;  // pass names ("fold-batchnorm") or paths ("passes[1]")
    bool progress = false;
    PassContext context;  // thread count etc., handed to every pass
};

// What the run has besides the model; checked against each pass's needs().
struct PassResources {
    bool calibration_data = false;       // the recipe has a "calibration" section
    bool calibration_random = false;     // ... without calibration.data (random inputs)
    bool calibration_synthetic = false;  // ... and says calibration.synthetic: true
    bool calibration_ranges = false;     // ... with calibration.ranges (a range table file)
    bool evaluation_data = false;
};

// What Pass::read_files gets for the recipe's passes: paths relative to the recipe's
// directory, tensor files read by load_model.
[[nodiscard]] PassFiles pass_files(const Recipe& recipe);

struct PassRecord {
    std::string path;  // "passes[1]"
    std::string name;  // "fold-batchnorm"
    PassResult result;
    double seconds = 0.0;
};

class PassManager {
  public:
    PassManager() = default;
    // Creates and configures the recipe's passes.
    explicit PassManager(const Recipe& recipe);

    // Adds an already configured pass (tests build pipelines this way).
    void add(std::string path, std::unique_ptr<Pass> pass);
    [[nodiscard]] size_t size() const { return passes_.size(); }

    // Throws InputError when a name matches no pass of this pipeline (with did-you-mean).
    void check_print_after(const std::vector<std::string>& names) const;
    // Throws InputError naming the first pass whose needs the run cannot meet. `what` names
    // the model in the message.
    // A pass that declares kUsesActivationRanges is content with calibration.ranges alone
    // (no calibration.data); calibration.ranges in a recipe none of whose passes reads
    // activation ranges is refused too (it would be ignored).
    void check_needs(const Model& model, const std::string& what,
                     const PassResources& resources = {}) const;
    // True when a pass declares kUsesActivationRanges (what --save-calibration needs).
    [[nodiscard]] bool uses_activation_ranges() const;

    // The dry-run plan: a header per pass, then its plan() lines indented. Cleanup passes
    // run on a copy of the model so that later passes are planned on what they will see;
    // `model` itself is not changed.
    [[nodiscard]] std::vector<std::string> plan(const Model& model);

    // Runs every pass in order. `log` receives progress lines, warnings and dumps.
    [[nodiscard]] std::vector<PassRecord> run(Model& model, const PassManagerOptions& options,
                                              std::ostream& log);
    // Runs the passes [begin, end) in order, as run() does (the accuracy-aware fallback runs
    // the passes before its pass once and the rest again for every node it returns to float).
    [[nodiscard]] std::vector<PassRecord> run_range(Model& model, const PassManagerOptions& options,
                                                    std::ostream& log, size_t begin, size_t end);

    [[nodiscard]] Pass& pass(size_t i) { return *passes_.at(i).pass; }
    [[nodiscard]] const std::string& path(size_t i) const { return passes_.at(i).path; }

  private:
    struct Entry {
        std::string path;
        std::unique_ptr<Pass> pass;
    };
    std::vector<Entry> passes_;
};

// A compact text dump: a header with node and initializer counts, then one line per node
// `op_type(name): in1, in2 -> out1`; subgraphs indented below their node.
[[nodiscard]] std::string dump_graph(const Model& model);

// Table of pass, wall time and rewrites, with a total row; each pass's own steps
// (PassResult::step_seconds: quantize-weights' calibration capture and every GPTQ tensor or
// AWQ activation group) are indented under it; `extra` adds rows such as
// ("load model", seconds) below the passes.
[[nodiscard]] std::string format_time_table(
    const std::vector<PassRecord>& records,
    const std::vector<std::pair<std::string, double>>& extra = {});

// Per pass: changed or not, rewrites, its summary lines, skipped count grouped by reason.
[[nodiscard]] std::string format_summary(const std::vector<PassRecord>& records);

}  // namespace ep
