// Recipes: the JSON file that says what `edgepack compress` does.
//
//   {
//     "description": "optional free text",
//     "model": "in.onnx",                     // required; relative to the recipe's directory
//     "passes": [ {"pass": "promote-constants"},
//                 {"pass": "fold-batchnorm", "include": ["*"], "exclude": []} ],
//     "output": "out.epk",                    // or a list: ["out.epk", "out.onnx"]; `-o` overrides
//     it "onnx": {"external_data": "auto", "external_threshold": 1024}, "calibration": {"data":
//     "calib/", "samples": 32, "seed": 0, "max_samples": 128}, "validate": {"data": "", "samples":
//     8, "seed": 0, "shapes": ["x=1,3,48,320"],
//                  "labels": "", "threads": 0, "per_layer": true, "int8_activations": false,
//                  "outputs": {"y": {"kind": "sequence", "decode": "ctc", "alphabet": "k.txt"}},
//                  "benchmark_runs": 20, "benchmark_warmup": 3},
//     "gates": {"max_kl_mean": 0.05, "min_top1_agreement": 95, ...},     // compressor/gates.h
//     "baseline": {"kl_mean": 0.01, "output_bytes": 0.01, ...},         // tolerances for
//     --baseline "report_dir": "reports/"                 // default: the validated output's
//     directory
//     "fallback": {"max_nodes": 8, "rank": "sqnr", "pass": "passes[0]"}  // compressor/fallback.h
//   }
// The JSON Schema of this format (docs/recipe.schema.json) is generated from the same tables
// the loader checks against (recipe_json_schema()); a test keeps the file equal to it.
// "calibration" (optional; passes such as quantize-weights with method gptq/awq need it):
// `data` is what `edgepack run --data` takes (a directory of .npz files, input files or
// sample folders) or an [S, T] int64 token-id .npy for a model with one [1, T] input;
// without `data`, seeded random inputs. `samples`: how many to use (0 = all); when the
// data holds more, a seeded choice (`seed`) of them, in data order. `max_samples` is the
// hard limit: more samples is an error, so calibration cost stays bounded.
//
// The loader checks everything before anything runs: unknown keys and options (with the
// nearest valid name when one is close), wrong types, values outside a pass's choices or
// range, unknown passes, missing model files, invalid JSON (with line and column),
// duplicate keys. Every problem is an InputError "<recipe file>: <field path>: <what is
// wrong>", e.g. "r.json: passes[1].group_sise: unknown option; did you mean group_size?".
// Options get their defaults filled in, so a pass's configure() sees every option.
//
// Overrides (`--set PATH=VALUE`) are applied to the document before validation. PATH is a
// field path as the messages print it (`output`, `onnx.external_data`, `passes[0].include`,
// `passes[1].threshold`); VALUE is parsed as JSON, or taken as a string when it is not
// JSON. A path outside the schema or an index out of range is an InputError.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "compressor/gates.h"
#include "compressor/output_spec.h"
#include "formats/onnx_io.h"

namespace ep {

// One pass entry, validated.
struct PassConfig {
    std::string name;        // "fold-batchnorm"
    std::string path;        // "passes[1]": where it is in the recipe, for messages
    nlohmann::json options;  // every option of the pass (defaults filled in), include, exclude
};

struct CalibrationConfig {
    std::filesystem::path data;  // absolute; empty: random samples
    uint64_t samples = 32;       // 0: all
    uint64_t seed = 0;
    uint64_t max_samples = 128;
    bool synthetic = false;  // random inputs (no data) allowed on purpose
    // absolute; empty: none. An edgepack.calibration/1 file (calibration/ranges.h) whose
    // activation ranges replace capture (compress reads it into PassContext::ranges).
    std::filesystem::path ranges;
};

// The recipe's "validate" section: how `edgepack compress` checks what it wrote.
struct ValidateConfig {
    std::filesystem::path data;  // absolute; empty: seeded random samples
    uint64_t samples = 8;        // random samples (ignored with data)
    uint64_t seed = 0;
    std::vector<std::string> shapes;  // "NAME=D0,D1,..." for symbolic dimensions (random only)
    std::filesystem::path labels;     // absolute; empty: none
    int threads = 0;                  // 0: the run's --threads
    bool per_layer = true;
    bool int8_activations = false;
    uint64_t benchmark_runs = 20;  // 0: no latency measurement
    uint64_t benchmark_warmup = 3;
    OutputSpecs outputs;  // "outputs": {NAME: {"kind", "axis", "threshold", "decode", "alphabet"}}
};

// The recipe's "fallback" section (compressor/fallback.h): return the quantized nodes that
// hurt most to float, one by one, until the gates hold or max_nodes are back in float.
enum class FallbackRank : uint8_t {
    Sqnr,     // per-node SQNR, float vs quantized output of the node, calibration samples
    Ablation  // one node at a time in float: the graph outputs' SQNR gained
};
struct FallbackConfig {
    uint64_t max_nodes = 8;  // the budget: at most this many nodes returned to float
    FallbackRank rank = FallbackRank::Sqnr;
    std::string pass;       // the pass it drives ("passes[1]" or a pass name); empty: the one
                            // pass of the recipe that can keep nodes in float
    size_t pass_index = 0;  // which of Recipe::passes it drives (resolved by the loader)
};

struct Recipe {
    std::string what;                // the recipe file as the user named it, for messages
    std::filesystem::path base_dir;  // relative paths in the recipe are relative to this
    std::string description;
    std::filesystem::path model;                  // absolute; the file exists
    std::optional<std::filesystem::path> output;  // absolute; the first of `outputs`
    std::vector<std::filesystem::path> outputs;   // absolute; every output, in recipe order
    std::vector<PassConfig> passes;
    OnnxWriteOptions onnx;
    std::optional<CalibrationConfig> calibration;
    std::optional<ValidateConfig> validate;
    std::vector<Limit> gates;     // compressor/gates.h
    std::vector<Limit> baseline;  // tolerances, used with --baseline
    std::optional<FallbackConfig> fallback;
    std::optional<std::filesystem::path> report_dir;  // absolute
    nlohmann::json document;                          // the recipe after overrides
};

// Reads, overrides and validates a recipe file. Throws InputError naming the file and field.
[[nodiscard]] Recipe load_recipe(const std::filesystem::path& file,
                                 const std::vector<std::string>& overrides = {});

// The same from text: `what` names it in messages, relative paths resolve against base_dir.
[[nodiscard]] Recipe parse_recipe(std::string_view text, const std::string& what,
                                  const std::filesystem::path& base_dir,
                                  const std::vector<std::string>& overrides = {});

// Applies one "PATH=VALUE" override to a recipe document. Throws InputError (without the
// file name) for a malformed assignment, a path outside the schema or an index out of range.
void apply_override(nlohmann::json& document, std::string_view assignment);

// Throws InputError "<what>: unknown output format '.x' (expected .onnx, .safetensors, .gguf or
// .epk)".
void check_output_extension(const std::filesystem::path& path, const std::string& what);

// The JSON Schema (draft 2020-12) of recipes, built from the loader's own tables: the
// top-level keys, each section's options, and every registered pass's options.
[[nodiscard]] nlohmann::json recipe_json_schema();

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
[[nodiscard]] size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `name`, when it is close enough to be a likely typo.
[[nodiscard]] std::optional<std::string> nearest_name(std::string_view name,
                                                      const std::vector<std::string>& candidates);
// "; did you mean X?" for a close candidate, else "".
[[nodiscard]] std::string did_you_mean(std::string_view name,
                                       const std::vector<std::string>& candidates);

}  // namespace ep
