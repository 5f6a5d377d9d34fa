#include "formats/model_io.h"

#include <fstream>

#include "formats/safetensors.h"

namespace ep {

FileFormat detect_format(const std::filesystem::path& path) {
    auto ext = path.extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".onnx") return FileFormat::Onnx;
    if (ext == ".safetensors") return FileFormat::Safetensors;
    // Sniff: safetensors starts with a u64 length and then '{'.
    std::ifstream in(path, std::ios::binary);
    char head[9] = {};
    if (in.read(head, 9) && head[8] == '{') return FileFormat::Safetensors;
    return FileFormat::Unknown;
}

Model load_model(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw InputError(cat(path.string(), ": no such file"));
    if (std::filesystem::is_directory(path, ec))
        throw InputError(cat(path.string(), ": is a directory, expected a model file"));
    switch (detect_format(path)) {
        case FileFormat::Onnx: return read_onnx(path);
        case FileFormat::Safetensors: return read_safetensors(path);
        case FileFormat::Unknown: break;
    }
    throw InputError(cat(path.string(),
                         ": unknown model format (expected .onnx or .safetensors)"));
}

void save_model(const Model& model, const std::filesystem::path& path,
                const SaveOptions& options) {
    auto ext = path.extension().string();
    if (ext == ".onnx") return write_onnx(model, path, options.onnx);
    if (ext == ".safetensors") {
        if (!model.graph.nodes.empty())
            throw InputError(cat(path.string(), ": a model with ", model.graph.nodes.size(),
                                 " nodes cannot be written as safetensors (weights only); "
                                 "write .onnx"));
        return write_safetensors(model, path);
    }
    throw InputError(cat(path.string(), ": unknown output format '", ext,
                         "' (expected .onnx or .safetensors)"));
}

}  // namespace ep
