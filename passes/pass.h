// The Pass interface: one transformation of a Model, named as in the recipe.
//
// A pass declares its options (the recipe loader validates entries against them and
// suggests the nearest name for a typo), plans before it acts (`plan` gives --dry-run
// its one line per decision and fails early on missing inputs), and checks every
// precondition before changing anything, so a failure leaves the model as it was.
// `run` returns what it did; a pass never returns void.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/ir.h"

namespace ep {

namespace calib {
class DataProvider;  // calibration/calibration.h
}
class Progress;  // ir/progress.h

enum class PassKind : uint8_t { Cleanup, Quantization, Pruning, Merge, Evaluation };
[[nodiscard]] std::string_view pass_kind_name(PassKind kind);

// What a pass needs besides the model; the pass manager checks these before running.
enum PassNeed : uint32_t {
    kNeedsNothing = 0,
    kNeedsCalibrationData = 1u << 0,
    kNeedsEvaluationData = 1u << 1,
    kNeedsGraph = 1u << 2,  // needs nodes, not only weights (fails on a bare checkpoint)
};

enum class OptionType : uint8_t { Bool, Int, Number, String, StringList };

struct OptionSpec {
    std::string name;
    OptionType type;
    nlohmann::json default_value;
    std::string help;
    std::vector<std::string> choices;  // allowed values for String options; empty = any
    double min = -1e300;               // for Int/Number
    double max = 1e300;
};

// A tensor or node the pass chose not to touch, and why. Passes count and report these:
// nothing is skipped silently.
struct Skipped {
    std::string name;
    std::string reason;
};

struct [[nodiscard]] PassResult {
    bool changed = false;
    size_t rewrites = 0;               // how many nodes/tensors were rewritten
    std::vector<std::string> summary;  // human-readable lines: what changed
    std::vector<Skipped> skipped;
    bool shapes_still_valid = true;    // cached shape analysis may be kept
};

struct PassContext {
    int threads = 1;
    bool verbose = false;
    // The recipe's calibration data (set when the recipe has a "calibration" section);
    // passes whose needs() include kNeedsCalibrationData may rely on it being non-null.
    const calib::DataProvider* calibration = nullptr;
    // Where long steps (calibration capture, GPTQ/AWQ) report progress; null: nothing printed.
    Progress* progress = nullptr;
};

class Pass {
public:
    virtual ~Pass() = default;
    [[nodiscard]] virtual std::string_view name() const = 0;  // the recipe's "pass" value
    [[nodiscard]] virtual PassKind kind() const = 0;
    [[nodiscard]] virtual std::string_view description() const = 0;
    [[nodiscard]] virtual uint32_t needs() const { return kNeedsNothing; }
    // Options besides "pass", "include" and "exclude", which every pass accepts.
    [[nodiscard]] virtual std::vector<OptionSpec> option_specs() const { return {}; }

    // Takes the validated options (defaults filled in). Throws InputError naming the
    // option for values that are well-typed but unusable together.
    virtual void configure(const nlohmann::json& options) { (void)options; }

    // One line per decision the pass would make on this model, without changing it.
    [[nodiscard]] virtual std::vector<std::string> plan(const Model& model) const = 0;
    virtual PassResult run(Model& model, PassContext& context) = 0;
};

}  // namespace ep
