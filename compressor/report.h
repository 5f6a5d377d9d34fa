// The pieces of report.json (schema edgepack.report/1, docs/reports.md) that
// `edgepack compress` assembles, and writing the four report files.
//
// Everything here is a function of the models and files it is given, except the
// benchmark (latency) and the environment, so the same recipe gives the same report apart
// from timings (docs/reports.md lists which fields those are).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compressor/pass_manager.h"
#include "ir/ir.h"
#include "runtime-check/executor.h"

namespace ep {

class Progress;

inline constexpr const char* kReportSchema = "edgepack.report/1";

// What a model holds, tensor by tensor, for the before/after comparison: initializers (of
// the main graph, then of subgraphs) and the tensors of Constant nodes (named after their
// output).
struct TensorEntry {
    std::string name;
    std::string dtype;     // logical dtype ("f32")
    std::string encoding;  // "int4g32", "" when not encoded
    std::vector<int64_t> shape;
    uint64_t bytes = 0;  // stored bytes (encoded bytes for encoded tensors)
    std::string
        category;  // "matmul weights", "conv weights", "embeddings", "1-d (bias, norm)", "other"
};
[[nodiscard]] std::vector<TensorEntry> tensor_inventory(const Model& model);

// report.json "tensors": one entry per tensor of either model, in the input's order then
// new ones; decision "quantized" (encoded now, not before), "pruned" (in a pass's
// PassResult::pruned and not quantized), "skipped" (a pass said why), "removed", "added",
// "changed" (other bytes) or "unchanged".
[[nodiscard]] nlohmann::json tensor_decisions(const std::vector<TensorEntry>& before,
                                              const std::vector<TensorEntry>& after,
                                              const std::vector<PassRecord>& records);

// report.json "size": input/output file bytes split by tensor category, plus "graph and
// metadata" (file bytes not in any tensor), so each column sums to its file's size.
[[nodiscard]] nlohmann::json size_by_category(const std::vector<TensorEntry>& before,
                                              const std::vector<TensorEntry>& after,
                                              uint64_t input_bytes, uint64_t output_bytes);

// report.json "passes".
[[nodiscard]] nlohmann::json passes_json(const std::vector<PassRecord>& records);

// {"path", "format", "bytes", "sha256"}; `extra` files (external data) count in "bytes".
[[nodiscard]] nlohmann::json file_json(const std::filesystem::path& path,
                                       const std::vector<std::filesystem::path>& extra = {});
// Files other than `path` whose bytes the loaded model maps (ONNX external data).
[[nodiscard]] std::vector<std::filesystem::path> external_files(const Model& model,
                                                                const std::filesystem::path& path);

// {"cpu", "isa", "logical_cpus", "threads", "os"}.
[[nodiscard]] nlohmann::json environment_json(int threads);

// Latency of the reference and the candidate measured in the same run: warm-up runs of
// each, then `runs` timed runs alternating reference, candidate, so both see the same
// machine. Returns report.json "latency" ({"runs", "warmup", "threads", "ratio",
// "reference", "candidate"}; "ratio" is the median over the pairs of candidate / reference
// time), and fills `memory` with report.json "memory".
[[nodiscard]] nlohmann::json benchmark_pair(rt::Executor& reference, rt::Executor& candidate,
                                            const rt::NamedTensors& reference_inputs,
                                            const rt::NamedTensors& candidate_inputs,
                                            uint64_t warmup, uint64_t runs, int threads,
                                            nlohmann::json& memory, Progress* progress);
// {"weight_bytes", "peak_arena_bytes", "peak_bytes"} after at least one run; weight bytes
// count initializers and Constant nodes' tensors, in subgraphs too.
[[nodiscard]] nlohmann::json memory_json(const rt::Executor& executor);

// report.json "metrics" from the other sections (any may be null).
[[nodiscard]] nlohmann::json flat_metrics(const nlohmann::json& validation,
                                          const nlohmann::json& size, const nlohmann::json& latency,
                                          const nlohmann::json& memory);

// The files write_reports writes into its folder, in that order.
[[nodiscard]] std::vector<std::filesystem::path> report_files(const std::filesystem::path& dir);

// Writes report.json, report.md, report.html and junit.xml into `dir` (created), each
// atomically, all four or none (one OutputBatch). Returns the paths written.
std::vector<std::filesystem::path> write_reports(const nlohmann::json& report,
                                                 const std::filesystem::path& dir);

}  // namespace ep
