// The Pass interface: one transformation of a Model, named as in the recipe.
//
// A pass declares its options (the recipe loader validates entries against them and
// suggests the nearest name for a typo), plans before it acts (`plan` gives --dry-run
// its one line per decision and fails early on missing inputs), and checks every
// precondition before changing anything, so a failure leaves the model as it was.
// `run` returns what it did; a pass never returns void.
//
// Streaming (optional: `plan_streaming`). A pass that rewrites initializers one by one,
// each new tensor a function of its old one (quantization, magnitude or N:M pruning, a
// LoRA merge on a checkpoint), can offer a StreamingPlan instead of running in memory; the
// streaming compressor (compressor/stream_compress.h) then writes the output file while
// the pass computes each new tensor, so memory stays bounded by a chunk of one tensor
// whatever the model's size. What plan_streaming promises:
//   - nullopt means "not on this model with these options" (the caller runs run() in
//     memory); a pass decides this itself, the caller never asks for a pass by name.
//   - It plans everything first and changes nothing: every check run() would make
//     (options, dtypes, shapes, sizes, data it needs) happens here and throws here, so an
//     error comes before the first byte of the output is written. An item's `write`
//     throws only on a bug or a failing read of the source.
//   - Writing every item's `header` and the bytes of its `write` in place of its
//     `source` gives byte for byte the model run() would leave (same dtype, shape,
//     encoding, doc string); other tensors, nodes and metadata are unchanged. `result` is
//     what run() would return, and `line` is the plan() line of the item's tensor.
//   - `write` is called at most once per item, from one thread, in the order the output
//     writer reaches the tensors (any order). It writes exactly `bytes` bytes. It may hold
//     a bounded working set: a chunk of the source's rows converted (a few MiB) and what
//     is proportional to the rows (a scale per row), never a whole float copy of a large
//     tensor or another tensor's data; it releases the mapped source pages it has read
//     (MappedFile::release, via TensorData::file()).
//   - The writers may refer to the pass and to the model planned on (by `source`): the
//     caller keeps both alive and unchanged until the plan is written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/ir.h"
#include "ir/output_file.h"

namespace ep {

namespace calib {
class DataProvider;  // calibration/calibration.h
struct RangeTable;   // calibration/ranges.h
}  // namespace calib
class Progress;  // ir/progress.h

enum class PassKind : uint8_t { Cleanup, Quantization, Pruning, Merge, Evaluation };
[[nodiscard]] std::string_view pass_kind_name(PassKind kind);

// What a pass needs besides the model; the pass manager checks these before running.
enum PassNeed : uint32_t {
    kNeedsNothing = 0,
    kNeedsCalibrationData = 1u << 0,
    kNeedsEvaluationData = 1u << 1,
    kNeedsGraph = 1u << 2,  // needs nodes, not only weights (fails on a bare checkpoint)
    // Calibrates activation ranges (calib::collect_ranges) and returns them in
    // PassResult::ranges: the recipe's calibration.ranges can stand in for
    // kNeedsCalibrationData (PassContext::ranges, no capture), and `compress
    // --save-calibration FILE` writes what it returns.
    kUsesActivationRanges = 1u << 3,
};

// NumberOrMap: a number, or an object mapping tensor-name globs to numbers (a per-layer
// value, e.g. prune's {"sparsity": {"*": 0.5, "layers.0.*": 0.3}}); min / max bound every
// number. NumberList: an array of numbers. NamedNumber: an object of exactly one entry, a
// name from `choices` and its number (quantize-weights' {"budget": {"bits_per_weight": 4.5}}).
enum class OptionType : uint8_t {
    Bool,
    Int,
    Number,
    String,
    StringList,
    NumberOrMap,
    NumberList,
    NamedNumber
};

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

// Tensors of one op kind given one encoding by one method: a quantizing pass's summary is
// a list of these (report.json passes[].quantized), and each prints as one line through
// quantized_group_line, so the plan, the summary, report.json and report.md agree.
struct QuantizedGroup {
    std::string op;        // the reading op: "Gemm", "MatMul", "Conv", "Gather"; "tensor"
                           // for a checkpoint (no graph)
    std::string encoding;  // encoding_name: "int4g32", "int8c"
    std::string method;    // "rtn", "gptq", "awq"
    size_t tensors = 0;
    uint64_t input_bytes = 0, output_bytes = 0;
};

// "2 Gemm weights int4g32 with gptq (16384 -> 2560 bytes)"; int8c reads "int8 per channel".
[[nodiscard]] std::string quantized_group_line(const QuantizedGroup& group);

// One weight a pruning pass pruned (report.json passes[].pruned, `inspect`, the plan): the
// same facts in every place.
struct PrunedTensor {
    std::string name;       // the initializer
    std::string op;         // the reading op ("MatMul", "Conv", ...); "tensor" for a checkpoint
    std::string method;     // "magnitude", "wanda", "sparsegpt"; structured: "l1", "l2", ...
    std::string pattern;    // "unstructured", "2:4", "channels", "neurons", "heads"
    double sparsity = 0.0;  // fraction of the tensor's weights now zero (or removed)
    std::string storage;    // encoding_name of what is stored ("bitmask", "2:4", "int4g32+2:4");
                            // "dense" when stored dense; "removed" for structured pruning
    uint64_t input_bytes = 0, output_bytes = 0;
};

// "blk.0.w1 (MatMul weight): 50.0% pruned by wanda, 2:4, stored 2:4 (16384 -> 9344 bytes)";
// structured: "conv1.w (Conv weight): 30.0% pruned by l1, channels, removed (...)". The plan,
// the summary, report.json (passes[].pruned[].line) and report.md say it in these words.
[[nodiscard]] std::string pruned_tensor_line(const PrunedTensor& tensor);

// What a calibrating pass calibrated on and how its solver fared (report.json
// passes[].calibration).
struct CalibrationRecord {
    std::string method;       // "gptq", "awq"
    bool synthetic = false;   // seeded random inputs (the recipe's calibration.synthetic)
    size_t samples = 0;       // samples run
    std::string description;  // where they came from: "64 samples in mnist/"
    size_t solved = 0;        // tensors the solver ran on
    // Tensors where round-to-nearest scored better than the solver on the calibration
    // objective, and were kept as rtn (never silently worse than rtn).
    std::vector<std::string> rtn_fallback;
};

struct [[nodiscard]] PassResult {
    bool changed = false;
    size_t rewrites = 0;               // how many nodes/tensors were rewritten
    std::vector<std::string> summary;  // human-readable lines: what changed
    std::vector<Skipped> skipped;
    bool shapes_still_valid = true;         // cached shape analysis may be kept
    std::vector<QuantizedGroup> quantized;  // what a quantizing pass encoded, by group
    std::optional<CalibrationRecord> calibration;
    // Things the user should know (printed on stderr as "warning: ..." and kept in the
    // report): a calibration set too small for a layer, ...
    std::vector<std::string> warnings;
    // Wall time of the pass's own steps, in order (quantize-weights: the calibration
    // capture, then every GPTQ tensor or AWQ activation group): `--time-passes` lists them
    // under the pass.
    std::vector<std::pair<std::string, double>> step_seconds;
    // The activation ranges an activation-quantizing pass used (captured, or read from
    // calibration.ranges): what `compress --save-calibration FILE` writes.
    std::shared_ptr<const calib::RangeTable> ranges;
    // Names of the nodes whose computation the pass made quantized (their names and output
    // value names are kept, so the float and quantized models can be compared node by
    // node): the candidates of the accuracy-aware fallback.
    std::vector<std::string> quantized_nodes;
    // What a pruning pass pruned, one entry per weight (structured: per weight it shrank).
    std::vector<PrunedTensor> pruned;
    // quantize-weights with a budget or a named plan (passes/mixed_precision.h): the budget,
    // the encoding per tensor and the measured size/KL curve (report.json
    // passes[].mixed_precision); null otherwise.
    nlohmann::json mixed_precision;
};

// One tensor of a StreamingPlan: what the pass writes in place of `source`.
struct StreamItem {
    const Tensor* source = nullptr;  // an initializer of the model planned on
    Tensor header;       // the new tensor without data: name, dtype, shape, encoding, doc
    uint64_t bytes = 0;  // what `write` produces; = header.expected_bytes()
    std::string line;    // the plan's line for this tensor: "[i/N] <label>"
    std::function<void(ByteSink& out)> write;  // the new tensor's bytes, in order
};

// What a streaming run of the pass does (the contract at the top of this file).
struct StreamingPlan {
    std::string action;  // the per-tensor progress lines' verb: "quantize"
    std::vector<StreamItem> items;
    PassResult result;  // what run() returns once every item is written
};

// Files a pass reads besides the model (merge-lora's adapters). Passes cannot include
// formats/ (the layering rules), so the caller that loaded the recipe hands them a reader.
struct PassFiles {
    // Relative paths in the pass's options resolve against this: the recipe's directory.
    std::filesystem::path base_dir;
    // A tensor file's tensors as a weights-only Model (formats/model_io load_model); throws
    // InputError naming the file.
    std::function<Model(const std::filesystem::path&)> read_tensors;
};

struct PassContext {
    int threads = 1;
    bool verbose = false;
    // The recipe's calibration data (set when the recipe has a "calibration" section);
    // passes whose needs() include kNeedsCalibrationData may rely on it being non-null.
    const calib::DataProvider* calibration = nullptr;
    // Where long steps (calibration capture, GPTQ/AWQ) report progress; null: nothing printed.
    Progress* progress = nullptr;
    // Activation ranges read from the recipe's calibration.ranges (null when absent): an
    // activation-quantizing pass uses them instead of capturing.
    const calib::RangeTable* ranges = nullptr;
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
    // A pass whose options name files (merge-lora's `adapter`) reads and checks them here,
    // after configure() and before plan(), so a missing or bad file fails at plan time.
    virtual void read_files(const PassFiles& files) { (void)files; }

    // One line per decision the pass would make on this model, without changing it.
    [[nodiscard]] virtual std::vector<std::string> plan(const Model& model) const = 0;
    virtual PassResult run(Model& model, PassContext& context) = 0;

    // The streaming form of run() on this model, when the pass offers one (the contract at
    // the top of this file); nullopt: run() in memory.
    [[nodiscard]] virtual std::optional<StreamingPlan> plan_streaming(const Model& model) const {
        (void)model;
        return std::nullopt;
    }

    // True when the pass leaves encoded weights (Tensor::encoding, ir/encoding.h), which a
    // plain .onnx cannot hold (compress then needs onnx.quantized for an .onnx output). A
    // pass that writes standard ONNX ops and integer initializers (QDQ) returns false.
    [[nodiscard]] virtual bool writes_encoded_weights() const {
        return kind() == PassKind::Quantization;
    }
    // The encoding each initializer of the main graph will be stored with, planned without
    // running (tensor name -> encoding): compress checks before the first byte, and on
    // --dry-run, that every output format can hold them (a .gguf takes only encodings with a
    // ggml block). Default: none.
    [[nodiscard]] virtual std::vector<std::pair<std::string, Encoding>> planned_encodings(
        const Model& model) const {
        (void)model;
        return {};
    }
    // The default-domain opset the pass needs in the model it rewrites (0: any); compress
    // raises an .onnx source below it with the ONNX version converter when it reads it.
    [[nodiscard]] virtual int64_t min_opset() const { return 0; }

    // Accuracy-aware fallback (the recipe's "fallback" section, compressor/fallback): a pass
    // that quantizes node by node (quantize-static, quantize-dynamic) returns true, lists
    // the nodes it quantized in PassResult::quantized_nodes, and leaves the nodes named in
    // keep_float() in float on its next run(), as if excluded.
    [[nodiscard]] virtual bool can_keep_float() const { return false; }
    virtual void keep_float(const std::vector<std::string>& node_names) { (void)node_names; }
};

}  // namespace ep
