// Test-only tool linked against edgepack_epk alone (no protobuf, no ONNX, no runtime): that
// it links proves the .epk reader builds for a device. Prints one line per tensor
// (name, dtype or encoding, shape, bytes) and the verified checksum; exit 2 on a bad file.
#include <iostream>

#include "formats/epk.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: edgepack_epk_dump FILE.epk\n";
        return 2;
    }
    try {
        auto file = ep::read_epk(argv[1], {.verify_tensor_checksums = true});
        for (const auto& t : file.model.graph.initializers)
            std::cout << t.name << " "
                      << (t.is_encoded() ? ep::encoding_name(t.encoding)
                                         : std::string(ep::dtype_name(t.dtype)))
                      << " " << ep::shape_string(t.shape) << " " << t.data.size() << "\n";
        std::cout << "nodes " << file.model.graph.nodes.size() << "\n";
        std::cout << "sha256 " << file.info.sha256 << "\n";
        return 0;
    } catch (const ep::Error& e) {
        std::cerr << "edgepack_epk_dump: error: " << e.what() << "\n";
        return static_cast<int>(e.code());
    }
}
