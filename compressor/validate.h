// `edgepack validate`: run a reference and a candidate model through the reference runtime
// on the same inputs and compare them, output by output (runtime-check/metrics.h), and
// optionally every intermediate tensor the two graphs share by name (--per-layer). With
// labels, each model's accuracy and the drop. This is also edgepack's distillation-loss
// evaluation: teacher = reference, student = candidate; the KL block is KL(teacher || student).
//
// The result is one JSON object (schema edgepack.validate/1, docs/validate.md); the text
// report is rendered from it, so both always say the same thing. Non-finite numbers are
// written as the strings "inf", "-inf", "nan" (JSON has no such numbers).
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compressor/dataset.h"
#include "compressor/output_spec.h"
#include "ir/progress.h"

namespace ep {

inline constexpr const char* kValidateSchema = "edgepack.validate/1";

struct ValidateOptions {
    std::filesystem::path reference;
    std::filesystem::path candidate;
    DataSource data;
    // .npy of int32/int64 class indices (for classes outputs), or .txt of one UTF-8 line per
    // sequence (for an output decoded with CTC); empty: none
    std::filesystem::path labels;
    std::string labels_field = "--labels";  // names them in messages ("validate.labels")
    OutputSpecs outputs;                    // how named outputs are compared; others: inferred
    bool per_layer = false;
    int threads = 1;
    // The candidate's MatMul / Gemm with int4 weights take int8 activations
    // (rt::ExecOptions::int8_activations); the reference always runs in float.
    bool candidate_int8_activations = false;
    size_t per_layer_text = 10;  // layers listed in the text report (JSON has all)
};

// Runs the comparison; `progress` (may be null) shows a "validation" step advanced per
// sample, with the sample's name as its detail.
[[nodiscard]] nlohmann::json validate_models(const ValidateOptions& options,
                                             Progress* progress = nullptr);
// The same with the two models already loaded (`edgepack compress` benchmarks the same
// executors afterwards). The executors' own ExecOptions apply; `options.reference`,
// `candidate` and `candidate_int8_activations` only describe them in the report.
[[nodiscard]] nlohmann::json validate_models(rt::Executor& reference, rt::Executor& candidate,
                                             const ValidateOptions& options,
                                             Progress* progress = nullptr);

// Reads a labels .npy: int32 or int64 class indices. InputError naming the file when it
// holds another dtype or no label. `compress` calls it before writing anything.
[[nodiscard]] std::vector<int64_t> read_labels(const std::filesystem::path& path);

// Checks `specs` against the model they describe before anything runs: every name is an
// output of `model` (InputError naming the spec's field, with a did-you-mean), every CTC
// alphabet reads, text labels go with a CTC output, and a fixed class count in the declared
// output shape fits the alphabet.
void check_output_specs(const OutputSpecs& specs, const Model& model,
                        const std::filesystem::path& labels, const std::string& labels_field);

// The token input a perplexity would score, judged from the graph before anything runs: the
// one integer model input, else the one integer input indexing an embedding table (a Gather
// on an initializer); empty when there is none. compress checks it for a perplexity gate.
[[nodiscard]] std::string token_input(const Model& model);

[[nodiscard]] std::string render_validate_text(const nlohmann::json& report,
                                               size_t per_layer_rows = 10);

}  // namespace ep
