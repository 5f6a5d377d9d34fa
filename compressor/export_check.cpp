// Export checks at plan time (contract in export_check.h).
#include "compressor/export_check.h"

#include <algorithm>

#include "formats/onnx_quant_export.h"
#include "ir/error.h"
#include "passes/registry.h"

namespace ep {
namespace {

// True when the recipe has a pass that encodes weights (Pass::writes_encoded_weights).
bool recipe_quantizes(const Recipe& recipe) {
    for (const auto& p : recipe.passes)
        if (auto pass = create_pass(p.name); pass && pass->writes_encoded_weights()) return true;
    return false;
}

// The highest opset a pass of the recipe needs (0: none).
int64_t recipe_min_opset(const Recipe& recipe) {
    int64_t opset = 0;
    for (const auto& p : recipe.passes)
        if (auto pass = create_pass(p.name)) opset = std::max(opset, pass->min_opset());
    return opset;
}

bool is_onnx(const std::filesystem::path& p) {
    return p.extension() == ".onnx";
}

}  // namespace

OnnxReadOptions export_read_options(const Recipe& recipe,
                                    const std::vector<std::filesystem::path>& outputs) {
    OnnxReadOptions o;
    o.min_opset = recipe_min_opset(recipe);
    if (recipe.onnx.quantized.empty() || !recipe_quantizes(recipe)) return o;
    for (const auto& out : outputs)
        if (is_onnx(out)) o.min_opset = std::max(o.min_opset, kMinExportOpset);
    return o;
}

std::vector<std::string> check_exports(const Model& model, int64_t source_opset,
                                       const Recipe& recipe,
                                       const std::vector<std::filesystem::path>& outputs) {
    std::vector<std::string> lines;
    const bool encoded = has_encoded_tensors(model) || recipe_quantizes(recipe);
    const int64_t opset = model.opset("");
    bool raised_said = false;
    if (const int64_t need = recipe_min_opset(recipe);
        need > 0 && source_opset != 0 && source_opset < opset) {
        lines.push_back(
            cat("raise opset ", source_opset, " -> ", opset,
                " with the ONNX version converter (a pass of the recipe needs opset >= ", need,
                "; every output is made from the raised model)"));
        raised_said = true;
    }
    for (const auto& out : outputs) {
        if ((out.extension() == ".safetensors" || out.extension() == ".gguf") &&
            !model.graph.nodes.empty())
            throw InputError(cat(out.string(), ": a model with ", model.graph.nodes.size(),
                                 " nodes cannot be written as ", out.extension().string().substr(1),
                                 " (weights only); write .onnx or .epk"));
        if (!is_onnx(out) || !encoded) continue;
        if (recipe.onnx.quantized.empty())
            throw InputError(cat(out.string(), ": ", recipe.what,
                                 " writes quantized (encoded) weights, which plain ONNX cannot "
                                 "hold: choose onnx.quantized = matmulnbits or qdq"));
        if (opset != 0 && opset < kMinExportOpset)
            throw InputError(cat(out.string(), ": onnx.quantized = ", recipe.onnx.quantized,
                                 " needs a source at opset ", kMinExportOpset,
                                 " or later; the model is at opset ", opset,
                                 " (an .onnx source is raised with the ONNX version converter; "
                                 "compress the .onnx instead)"));
        if (!raised_said && source_opset != 0 && source_opset < opset) {
            lines.push_back(cat("raise opset ", source_opset, " -> ", opset,
                                " with the ONNX version converter (the quantized .onnx export "
                                "needs opset >= ",
                                kMinExportOpset, "; every output is made from the raised model)"));
            raised_said = true;
        }
        lines.push_back(
            cat("export ", out.filename().string(), ": onnx.quantized = ", recipe.onnx.quantized));
    }
    return lines;
}

}  // namespace ep
