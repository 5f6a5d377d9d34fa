// Streaming compression of weight checkpoints: `edgepack compress` of a safetensors
// checkpoint (a model without nodes) whose recipe is one quantize-weights pass with method
// rtn, written to .epk or .safetensors, in memory bounded by the largest tensor.
//
// Plan, then stream. The plan is the pass's own (checkpoint_quantize_plan,
// passes/quantize_weights.h): the same tensors, encodings, skip reasons, plan lines and
// summary as running the pass in memory. Then the writer (write_epk / write_safetensors
// with StreamedTensors, formats/streamed_tensor.h) walks the model once; each planned
// tensor is quantized when the writer reaches it, in chunks of rows (kStreamChunkFloats
// floats): the chunk's f32/f16/bf16 elements are converted to float, encoded by
// quantize_rtn and written, and the chunk's source pages are released
// (MappedFile::release). RTN groups lie within a row, so chunked encoding gives the bytes
// of the whole-tensor call (int8c stores all codes before all row scales: the scales are
// kept, 4 bytes a row, and written after the codes). Unquantized tensors are copied
// through in chunks by the writers. The output file is byte for byte what the in-memory
// path writes (tested), and appears only when complete (OutputFile).
//
// Resident memory: one chunk of floats and its encoded bytes, the writer's buffers, the
// header / manifest, and the source pages of the chunk being read. The whole file's
// SHA-256 (an .epk's provenance) is read through a mapping released as it goes.
//
// Anything else (a graph model, other passes, several passes, method gptq/awq, .onnx
// output, --verify-each / --print-after, which look at the model in memory) takes the
// in-memory path (compress.cpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "formats/model_io.h"
#include "passes/quantize_weights.h"

namespace ep {

// Floats per chunk of rows (at least one row per chunk): 4 MiB of floats.
inline constexpr size_t kStreamChunkFloats = size_t{1} << 20;

struct StreamPlan {
    std::string path;  // "passes[0]"
    std::string name;  // "quantize-weights"
    CheckpointQuantizePlan plan;
};

// The streaming plan when the recipe, the loaded model and the output allow it (see the
// top of this file); nullopt: run the passes in memory.
[[nodiscard]] std::optional<StreamPlan> plan_stream_compress(const Recipe& recipe,
                                                             const Model& model,
                                                             const std::filesystem::path& output);

struct StreamTimes {
    double quantize_seconds = 0.0;  // converting and encoding (the pass's work)
    double write_seconds = 0.0;     // everything else of the write
};

// Writes `output` from `model` with the planned tensors quantized on the way, as
// save_model(output, save) would write the model after the pass. `log` gets one line per
// tensor when `progress` is set. Returns the pass's record (for format_summary).
[[nodiscard]] PassRecord run_stream_compress(const Model& model, const StreamPlan& plan,
                                             const std::filesystem::path& output,
                                             const SaveOptions& save, bool progress,
                                             std::ostream& log, StreamTimes& times);

// Encodes `t` (f32, f16 or bf16; axis 1 of `e`: rows = shape[0]) with RTN into `out`, a
// chunk of rows of at most `chunk_floats` floats at a time (at least one row), releasing
// the source pages of a mapped tensor as it goes. The bytes are quantize_tensor_rtn's.
// Adds the time spent converting and encoding to `*seconds` when given.
void write_rtn_chunked(const Tensor& t, const Encoding& e, ByteSink& out,
                       size_t chunk_floats = kStreamChunkFloats, double* seconds = nullptr);

}  // namespace ep
