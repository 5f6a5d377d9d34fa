#include "formats/onnx_io.h"

namespace ep {
Model read_onnx(const std::filesystem::path& path) {
    throw InternalError(cat(path.string(), ": ONNX reading is not built yet"));
}
Model read_onnx_bytes(std::span<const std::byte>, const std::filesystem::path&,
                      const std::string& what) {
    throw InternalError(cat(what, ": ONNX reading is not built yet"));
}
void write_onnx(const Model&, const std::filesystem::path& path, const OnnxWriteOptions&) {
    throw InternalError(cat(path.string(), ": ONNX writing is not built yet"));
}
}  // namespace ep
