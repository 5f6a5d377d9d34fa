// edgepack inspect FILE [--json] [--tensors]
#include <iostream>

#include "compressor/cli/commands.h"
#include "compressor/inspect.h"
#include "formats/model_io.h"

namespace ep::cli {

void add_inspect_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string file;
        bool json = false;
        bool tensors = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd =
        app.add_subcommand("inspect", "Describe a model file (.onnx, .safetensors, .gguf, .epk)");
    cmd->add_option("FILE", args->file, "Model file")->required();
    cmd->add_flag("--json", args->json, "Print one JSON object (schema: docs/inspect.md)");
    cmd->add_flag("--tensors", args->tensors,
                  "One entry per tensor: name, dtype, shape, bytes, fraction of zeros");
    cmd->callback([args, &action] {
        action = [args] {
            InspectOptions options;
            options.tensors = args->tensors;
            nlohmann::json report;
            if (detect_format(args->file) == FileFormat::Epk) {
                // Verified (whole file, and each tensor's checksum), with its provenance.
                auto epk = read_epk(args->file, EpkReadOptions{.verify_tensor_checksums = true});
                report = inspect_model(epk.model, args->file, options, &epk.info);
            } else if (detect_format(args->file) == FileFormat::Gguf) {
                auto gguf = read_gguf_file(args->file);
                Model model = read_gguf(args->file);
                report = inspect_model(model, args->file, options, nullptr, &gguf);
            } else {
                Model model = load_model(args->file);
                report = inspect_model(model, args->file, options);
            }
            if (args->json)
                std::cout << report.dump(2) << "\n";
            else
                std::cout << render_inspect_text(report);
            return 0;
        };
    });
}

}  // namespace ep::cli
