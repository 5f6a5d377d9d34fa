// Streaming compression of weight checkpoints: `edgepack compress` of a safetensors
// checkpoint (a model without nodes) whose recipe is one pass that offers a streaming plan
// (Pass::plan_streaming, passes/pass.h), written to one .epk or .safetensors file, in
// memory bounded by what the pass holds for one tensor. This driver names no pass: the
// pass decides whether it can stream this model with these options (today weight
// quantization with method rtn does, passes/quantize_weights.h; magnitude / N:M pruning or
// a LoRA merge onto a checkpoint would implement the same hook).
//
// Plan, then stream. The plan is the pass's own: the same tensors, new headers, skip
// reasons, plan lines and summary as running the pass in memory, every check made before
// the first byte is written. Then the writer (write_epk / write_safetensors with
// StreamedTensors, formats/streamed_tensor.h) walks the model once; each planned tensor's
// bytes come from the item's `write` when the writer reaches it (the pass converts and
// writes a chunk of rows at a time and releases the source pages it has read). Other
// tensors are copied through in chunks by the writers. The output file is byte for byte
// what the in-memory path writes (tested), and appears only when complete (OutputFile).
//
// Resident memory: the pass's working set for one tensor (rtn: one chunk of floats and
// its encoded bytes, passes/quantize_weights.h), the writer's buffers, the
// header / manifest, and the source pages of the chunk being read. The whole file's
// SHA-256 (an .epk's provenance) is read through a mapping released as it goes.
//
// Anything else (a graph model, several passes, a pass without a streaming plan for this
// model, .onnx output, several outputs, --verify-each / --print-after, which look at the
// model in memory) takes the in-memory path (compress.cpp).
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "formats/model_io.h"

namespace ep {

struct StreamPlan {
    std::string path;            // "passes[0]"
    std::string name;            // the pass's name, as in the recipe
    std::unique_ptr<Pass> pass;  // configured; the plan's writers may refer to it
    StreamingPlan plan;
};

// The streaming plan when the recipe, the loaded model and the output allow it (see the
// top of this file); nullopt: run the passes in memory.
[[nodiscard]] std::optional<StreamPlan> plan_stream_compress(const Recipe& recipe,
                                                             const Model& model,
                                                             const std::filesystem::path& output);

// The same for one configured pass (`path` names it in messages: "passes[0]"): its
// streaming plan when the model and the output allow streaming and the pass offers one.
[[nodiscard]] std::optional<StreamPlan> plan_stream_pass(std::string path,
                                                         std::unique_ptr<Pass> pass,
                                                         const Model& model,
                                                         const std::filesystem::path& output);

struct StreamTimes {
    double pass_seconds = 0.0;   // in the items' writers, less their writes (the pass's work)
    double write_seconds = 0.0;  // everything else of the write
};

// Writes `output` from `model` with the planned tensors replaced on the way, as
// save_model(output, save) would write the model after the pass. `log` gets one line per
// tensor when `progress` is set. Returns the pass's record (for format_summary).
[[nodiscard]] PassRecord run_stream_compress(const Model& model, const StreamPlan& plan,
                                             const std::filesystem::path& output,
                                             const SaveOptions& save, bool progress,
                                             std::ostream& log, StreamTimes& times);

}  // namespace ep
