// edgepack: the command line. main stays short: CLI11 parses, each subcommand lives in
// its own file, and the one error boundary below maps exceptions to exit codes. With
// --json, exit 2 and 3 also print a JSON error object on stdout (docs/ci.md).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <iostream>
#include <new>
#include <string_view>

#include <nlohmann/json.hpp>

#include "compressor/cli/commands.h"
#include "compressor/recipe.h"
#include "ir/error.h"

namespace {

// Was --json given? Read from the arguments, so that a parse error is a JSON object too.
bool wants_json(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--") break;
        if (a == "--json") return true;
    }
    return false;
}

// The error object of exit 2 and 3 with --json: {"schema", "exit_code", "error"}.
int fail(ep::ExitCode code, const std::string& message, bool json) {
    const int rc = static_cast<int>(code);
    if (json)
        std::cout << nlohmann::json{{"schema", "edgepack.error/1"},
                                    {"exit_code", rc},
                                    {"error", message}}
                         .dump(2)
                  << "\n"
                  << std::flush;
    return rc;
}

// An InputError for a first argument that names no subcommand, with the nearest name.
void check_command(const CLI::App& app, int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') return;
    std::vector<std::string> names;
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
        names.push_back(sub->get_name());
    const std::string given = argv[1];
    if (std::find(names.begin(), names.end(), given) != names.end()) return;
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw ep::InputError(ep::cat("unknown command '", given, "'", ep::did_you_mean(given, names),
                                 " (commands: ", list, ")"));
}

}  // namespace

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
    ep::cli::add_diff_command(app, action);
    ep::cli::add_apply_command(app, action);
    ep::cli::add_keygen_command(app, action);
    ep::cli::add_sign_command(app, action);
    const bool json = wants_json(argc, argv);
    try {
        check_command(app, argc, argv);
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            int rc = app.exit(e);  // prints usage or the parse error
            if (rc == 0) return 0;
            return fail(ep::ExitCode::BadInput, e.what(), json);
        }
        return action();
    } catch (const ep::Error& e) {
        std::cerr << "edgepack: error: " << e.what() << "\n";
        return fail(e.code(), e.what(), json);
    } catch (const std::bad_alloc&) {
        std::cerr << "edgepack: internal error: out of memory\n";
        return fail(ep::ExitCode::Internal, "internal error: out of memory", json);
    } catch (const std::exception& e) {
        std::cerr << "edgepack: internal error: " << e.what() << "\n";
        return fail(ep::ExitCode::Internal, std::string("internal error: ") + e.what(), json);
    }
}
