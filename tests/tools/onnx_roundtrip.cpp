// Test-only driver: reads an ONNX model and writes it back unchanged with the given
// external-data options. Used by scripts/large_model_roundtrip.sh (peak-memory check of
// the streaming writer) until `edgepack compress` with an empty pass list can do the same.
//
//   edgepack_onnx_roundtrip IN.onnx OUT.onnx [--external auto|always|never]
//                           [--threshold BYTES] [--external-file NAME]
// Exit codes as the edgepack CLI: 0 ok, 2 bad input, 3 internal error.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>

#include "formats/onnx_io.h"
#include "ir/error.h"

int main(int argc, char** argv) {
    CLI::App app{"Read an ONNX model and write it back (edgepack test tool)"};
    std::string in, out, external = "auto";
    ep::OnnxWriteOptions options;
    app.add_option("input", in, "ONNX model to read")->required();
    app.add_option("output", out, "ONNX model to write")->required();
    app.add_option("--external", external, "external data: auto, always or never")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    app.add_option("--threshold", options.external_threshold,
                   "tensors of at least this many bytes go to the data file");
    app.add_option("--external-file", options.external_file,
                   "data file name (default: OUTPUT's name + .data)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    static const std::map<std::string, ep::ExternalData> modes = {
        {"auto", ep::ExternalData::Auto},
        {"always", ep::ExternalData::Always},
        {"never", ep::ExternalData::Never}};
    options.external = modes.at(external);
    try {
        ep::Model model = ep::read_onnx(in);
        ep::write_onnx(model, out, options);
    } catch (const ep::Error& e) {
        std::cerr << "onnx_roundtrip: error: " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << "onnx_roundtrip: internal error: " << e.what() << "\n";
        return 3;
    }
    return 0;
}
