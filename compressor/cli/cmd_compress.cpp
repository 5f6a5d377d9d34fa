#include "compressor/cli/commands.h"
#include "compressor/ir/error.h"

namespace ep::cli {
void add_compress_command(CLI::App& app, std::function<int()>& action) {
    auto* cmd = app.add_subcommand("compress", "Run a recipe");
    cmd->callback([&action] { action = [] { throw InternalError("compress is not built yet"); return 3; }; });
}
}  // namespace ep::cli
