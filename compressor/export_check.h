// What `edgepack compress` checks of its outputs before the first byte is written, so
// that --dry-run and the real run fail alike and a failing run leaves nothing behind.
//
// Whether the written model will hold encoded (quantized) weights is known before the
// passes run: the source holds some, or the recipe has a quantization pass. Then:
//   .onnx        needs onnx.quantized (matmulnbits or qdq): plain ONNX has no encoded type.
//                The quantized export needs a source at opset >= kMinExportOpset
//                (formats/onnx_quant_export.h); an ONNX source below it is raised when read,
//                with the ONNX library's version converter (export_read_options), and the
//                plan says so ("raise opset 9 -> 13 with the ONNX version converter"). A
//                conversion the converter cannot make fails when the model is read, naming
//                the node and opsets; a non-ONNX source below it (.epk) fails here.
//   .safetensors a model with nodes cannot be written (weights only).
//   .epk         takes every model.
// A pass may need a minimum opset whatever the outputs (Pass::min_opset: quantize-static's
// per-channel QuantizeLinear axis needs 13): an ONNX source below it is raised the same way
// when read, and the plan says so. Passes whose Pass::writes_encoded_weights() is false
// (QDQ: standard ops and integer initializers) need no onnx.quantized.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "compressor/recipe.h"
#include "formats/onnx_io.h"
#include "ir/ir.h"

namespace ep {

// How the source must be read for the recipe's outputs: min_opset = kMinExportOpset when a
// quantized .onnx output will hold encoded weights, at least every pass's Pass::min_opset.
[[nodiscard]] OnnxReadOptions export_read_options(
    const Recipe& recipe, const std::vector<std::filesystem::path>& outputs);

// Checks every output's export of `model` (as loaded with export_read_options; its opset
// as stored was `source_opset`). Throws InputError naming the output and the recipe field;
// returns the plan's lines about the exports (the opset raised, each quantized .onnx).
[[nodiscard]] std::vector<std::string> check_exports(
    const Model& model, int64_t source_opset, const Recipe& recipe,
    const std::vector<std::filesystem::path>& outputs);

}  // namespace ep
