// Subcommands: each adds itself to the app and, when parsed, sets `action` to the
// function that does the work and returns the exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace ep::cli {

void add_inspect_command(CLI::App& app, std::function<int()>& action);
void add_compress_command(CLI::App& app, std::function<int()>& action);
void add_run_command(CLI::App& app, std::function<int()>& action);
void add_bench_command(CLI::App& app, std::function<int()>& action);
void add_validate_command(CLI::App& app, std::function<int()>& action);
void add_diff_command(CLI::App& app, std::function<int()>& action);
void add_apply_command(CLI::App& app, std::function<int()>& action);

}  // namespace ep::cli
