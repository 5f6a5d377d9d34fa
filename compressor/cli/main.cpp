// edgepack: the command line. main stays short: CLI11 parses, each subcommand lives in
// its own file, and the one error boundary below maps exceptions to exit codes.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>

#include "compressor/cli/commands.h"
#include "ir/error.h"

int main(int argc, char** argv) {
    CLI::App app{"edgepack: compress models for edge devices, and prove they still work"};
    app.set_version_flag("--version", std::string("edgepack ") + EDGEPACK_VERSION);
    app.require_subcommand(1);
    std::function<int()> action;
    ep::cli::add_inspect_command(app, action);
    ep::cli::add_compress_command(app, action);
    ep::cli::add_run_command(app, action);
    ep::cli::add_bench_command(app, action);
    ep::cli::add_validate_command(app, action);
    try {
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            int rc = app.exit(e);  // prints usage or the parse error
            return rc == 0 ? 0 : static_cast<int>(ep::ExitCode::BadInput);
        }
        return action();
    } catch (const ep::Error& e) {
        std::cerr << "edgepack: error: " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::bad_alloc&) {
        std::cerr << "edgepack: internal error: out of memory\n";
        return static_cast<int>(ep::ExitCode::Internal);
    } catch (const std::exception& e) {
        std::cerr << "edgepack: internal error: " << e.what() << "\n";
        return static_cast<int>(ep::ExitCode::Internal);
    }
}
