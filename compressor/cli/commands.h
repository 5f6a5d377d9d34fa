// Subcommands: each adds itself to the app and, when parsed, sets `action` to the
// function that does the work and returns the exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace ep {
class Progress;
}

namespace ep::cli {

void add_inspect_command(CLI::App& app, std::function<int()>& action);
void add_compress_command(CLI::App& app, std::function<int()>& action);
void add_run_command(CLI::App& app, std::function<int()>& action);
void add_bench_command(CLI::App& app, std::function<int()>& action);
void add_validate_command(CLI::App& app, std::function<int()>& action);
void add_diff_command(CLI::App& app, std::function<int()>& action);
void add_apply_command(CLI::App& app, std::function<int()>& action);
void add_keygen_command(CLI::App& app, std::function<int()>& action);
void add_sign_command(CLI::App& app, std::function<int()>& action);

// --verify-key KEY.pub [--signature FILE.sig] of a command that reads a signed model
// (run, validate): the model is checked before it is loaded (cmd_sign.cpp).
struct VerifyKeyArgs {
    std::string public_key, signature;
};
void add_verify_key_options(CLI::App& cmd, VerifyKeyArgs& args, const std::string& what);
// Nothing without --verify-key; else verify_signature (formats/signature.h): InputError
// naming the file and key id when the signature is missing, another key's or bad.
void verify_if_asked(const VerifyKeyArgs& args, const std::string& file, Progress& progress);

}  // namespace ep::cli
