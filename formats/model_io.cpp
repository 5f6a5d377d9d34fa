#include "formats/model_io.h"

#include <fstream>

#include "formats/gguf.h"
#include "formats/gguf_llama.h"
#include "formats/safetensors.h"
#include "formats/safetensors_quant.h"
#include "ir/sparse.h"

namespace ep {

FileFormat detect_format(const std::filesystem::path& path) {
    auto ext = path.extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".onnx") return FileFormat::Onnx;
    if (ext == ".safetensors") return FileFormat::Safetensors;
    if (ext == ".epk") return FileFormat::Epk;
    if (ext == ".gguf") return FileFormat::Gguf;
    // Sniff: safetensors starts with a u64 length and then '{'; .epk with its magic.
    std::ifstream in(path, std::ios::binary);
    char head[9] = {};
    if (in.read(head, 9)) {
        if (head[8] == '{') return FileFormat::Safetensors;
        if (std::string_view(head, 4) == "GGUF") return FileFormat::Gguf;
        if (has_epk_magic(std::as_bytes(std::span(head, 8)))) return FileFormat::Epk;
    }
    return FileFormat::Unknown;
}

Model load_model(const std::filesystem::path& path, const OnnxReadOptions& onnx,
                 int64_t* source_opset) {
    if (source_opset) *source_opset = 0;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw InputError(cat(path.string(), ": no such file"));
    if (std::filesystem::is_directory(path, ec))
        throw InputError(cat(path.string(), ": is a directory, expected a model file"));
    switch (detect_format(path)) {
        case FileFormat::Onnx:
            return read_onnx(path, onnx, source_opset);
        case FileFormat::Safetensors: {
            Model model = read_safetensors(path);
            try {
                decode_safetensors_encodings(model);
            } catch (const InputError& e) {
                throw InputError(cat(path.string(), ": ", e.what()));
            }
            return model;
        }
        case FileFormat::Epk:
            return read_epk(path).model;
        case FileFormat::Gguf:
            return read_gguf(path);
        case FileFormat::Unknown:
            break;
    }
    throw InputError(
        cat(path.string(), ": unknown model format (expected .onnx, .safetensors, .gguf or .epk)"));
}

namespace {
bool has_sparse(const Model& model) {
    bool any = false;
    for_each_graph(model.graph, [&](const Graph& g) {
        for (const Tensor& t : g.initializers) any = any || t.encoding.is_sparse();
    });
    return any;
}
}  // namespace

Model densified(const Model& model) {
    Model out = model;
    for_each_graph(out.graph, [](Graph& g) {
        for (Tensor& t : g.initializers)
            if (t.encoding.is_sparse()) t = densify_tensor(t);
    });
    return out;
}

void save_model(const Model& model, const std::filesystem::path& path, const SaveOptions& options) {
    auto ext = path.extension().string();
    // Only .epk stores sparse weights; ONNX and safetensors get the same values dense.
    if (ext != ".epk" && has_sparse(model)) return save_model(densified(model), path, options);
    if (ext == ".onnx") return write_onnx(model, path, options.onnx);
    if (ext == ".safetensors") {
        if (!model.graph.nodes.empty())
            throw InputError(cat(path.string(), ": a model with ", model.graph.nodes.size(),
                                 " nodes cannot be written as safetensors (weights only); "
                                 "write .onnx"));
        for (const Tensor& t : model.graph.initializers)
            if (t.is_encoded()) return write_safetensors(encode_for_safetensors(model), path);
        return write_safetensors(model, path);
    }
    if (ext == ".epk") return write_epk(model, path, options.epk);
    if (ext == ".gguf") {
        if (options.gguf_hf_config.empty()) return write_gguf(model, path);
        return write_gguf(gguf_llama_from_hf(model, options.gguf_hf_config), path);
    }
    throw InputError(cat(path.string(), ": unknown output format '", ext,
                         "' (expected .onnx, .safetensors, .gguf or .epk)"));
}

}  // namespace ep
