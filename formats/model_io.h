// Loading and saving a Model by file type, so callers do not care which format it is.
#pragma once

#include <filesystem>

#include "formats/epk.h"
#include "formats/onnx_io.h"
#include "ir/ir.h"

namespace ep {

enum class FileFormat : uint8_t { Onnx, Safetensors, Epk, Gguf, Unknown };

// By extension (.onnx, .safetensors, .epk, .gguf); falls back to sniffing the first bytes.
[[nodiscard]] FileFormat detect_format(const std::filesystem::path& path);

// Throws InputError naming the file when it is missing, unreadable or malformed.
// `onnx` applies to an .onnx file (read_onnx); `source_opset` receives the default-domain
// opset as stored (0: none, or not an .onnx file).
[[nodiscard]] Model load_model(const std::filesystem::path& path, const OnnxReadOptions& onnx = {},
                               int64_t* source_opset = nullptr);

struct SaveOptions {
    OnnxWriteOptions onnx;
    EpkWriteOptions epk;  // provenance recorded in a .epk
    // A .gguf output of a Hugging Face llama checkpoint: its config.json, so the file gets
    // llama.cpp's tensor names, Q/K permutation and metadata (gguf_llama.h). Empty: the
    // tensors keep their names.
    std::filesystem::path gguf_hf_config;
};

// The output's format comes from its extension; throws InputError for an unknown one
// or when the model cannot be expressed in it (a graph with nodes as safetensors).
// Encoded tensors go to safetensors as U8 + __metadata__ (formats/safetensors_quant.h),
// and come back as encoded tensors from load_model. Sparse tensors (ir/sparse.h) are stored
// sparse only in .epk; .onnx and .safetensors get their dense form (densified()).
void save_model(const Model& model, const std::filesystem::path& path,
                const SaveOptions& options = {});

// A copy of `model` with every sparse initializer (subgraphs included) in its dense form.
[[nodiscard]] Model densified(const Model& model);

}  // namespace ep
