// ONNX read and write through the ONNX protobuf definitions (libonnx-dev).
//
// Reading: every TensorProto encoding (raw_data, typed fields, external data) becomes a
// Tensor of little-endian bytes; external data is a view into the mapped data file.
// External locations must be relative and stay inside the model's directory (no "..",
// no absolute paths, no symlinks that lead out); offsets and lengths are checked against
// the file's size. Writing: tensors at or above `external_threshold` bytes go to one
// external data file next to the model when external data is on (always, or in `Auto`
// mode when the model would not fit protobuf's 2 GB limit), so models over 2 GB work.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "ir/ir.h"

namespace ep {

struct OnnxReadOptions {
    // Raise the default-domain opset to at least this with the ONNX library's version
    // converter (formats/onnx_version.h) before the model becomes a Model; 0: as stored.
    // An InputError names the node and opsets when it cannot.
    int64_t min_opset = 0;
};

// `source_opset`, when given, receives the default-domain opset as stored (0: none).
[[nodiscard]] Model read_onnx(const std::filesystem::path& path,
                              const OnnxReadOptions& options = {}, int64_t* source_opset = nullptr);
// Parses a serialized ModelProto; external data is resolved relative to `base_dir`.
// `what` names the input in error messages.
[[nodiscard]] Model read_onnx_bytes(std::span<const std::byte> bytes,
                                    const std::filesystem::path& base_dir, const std::string& what);

// Reads one serialized TensorProto (the ONNX test-data files input_0.pb, output_0.pb).
[[nodiscard]] Tensor read_onnx_tensor(const std::filesystem::path& path);

enum class ExternalData : uint8_t { Auto, Always, Never };

struct OnnxWriteOptions {
    ExternalData external = ExternalData::Auto;
    uint64_t external_threshold = 1024;  // bytes; smaller tensors stay inline
    std::string external_file;           // default: "<model file name>.data"
    // How to write encoded (quantized) tensors (formats/onnx_quant_export.h): "matmulnbits"
    // or "qdq"; empty: a model holding any is refused with an InputError naming it.
    std::string quantized;
};

// Writes atomically: the model and its data file appear only when both are complete.
void write_onnx(const Model& model, const std::filesystem::path& path,
                const OnnxWriteOptions& options = {});

}  // namespace ep
