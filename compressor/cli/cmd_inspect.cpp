#include "compressor/cli/commands.h"
#include "compressor/ir/error.h"

namespace ep::cli {
void add_inspect_command(CLI::App& app, std::function<int()>& action) {
    auto* cmd = app.add_subcommand("inspect", "Describe a model file");
    cmd->callback([&action] { action = [] { throw InternalError("inspect is not built yet"); return 3; }; });
}
}  // namespace ep::cli
