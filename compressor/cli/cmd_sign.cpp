// edgepack keygen -o NAME
// edgepack sign FILE --key NAME.key [-o FILE.sig] [--quiet]
// Detached ed25519 signatures (formats/signature.h, docs/delivery.md "Signatures"):
//   keygen writes NAME.pub (to share) and NAME.key (mode 0600, to keep) and refuses to
//   replace either; stdout: the key id.
//   sign reads FILE once in 1 MiB chunks and writes its signature atomically to FILE.sig;
//   stdout: "FILE.sig: FILE signed by key KEY_ID". run / validate check it with --verify-key.
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include "compressor/cli/commands.h"
#include "formats/signature.h"
#include "ir/error.h"
#include "ir/progress.h"

namespace ep::cli {

void add_keygen_command(CLI::App& app, std::function<int()>& action) {
    auto name = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "keygen", "Make an ed25519 key pair for signing packs: NAME.pub and NAME.key (mode 0600)");
    cmd->add_option("-o,--output", *name, "NAME: writes NAME.pub and NAME.key (never replaced)")
        ->required();
    cmd->callback([name, &action] {
        action = [name] {
            auto id = generate_key_pair(*name);
            auto paths = key_pair_paths(*name);
            std::cout << "key " << id << ": " << paths.public_key.string() << " (public), "
                      << paths.secret_key.string() << " (secret, mode 0600)\n";
            return 0;
        };
    });
}

void add_sign_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string file, key, out;
        bool quiet = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "sign",
        "Sign a file (a .epk pack, a delta, any model) with an ed25519 secret key: a "
        "detached signature FILE.sig that run / validate --verify-key check");
    cmd->add_option("FILE", args->file, "File to sign")->required();
    cmd->add_option("--key,-k", args->key, "Secret key NAME.key (from edgepack keygen)")
        ->required();
    cmd->add_option("-o,--output", args->out, "Signature file (default FILE.sig)");
    cmd->add_flag("--quiet,-q", args->quiet, "No progress on stderr (errors only)");
    cmd->callback([args, &action] {
        action = [args] {
            Progress progress(progress_mode_for(STDERR_FILENO, args->quiet), std::cerr);
            std::filesystem::path out = args->out.empty() ? default_signature_path(args->file)
                                                          : std::filesystem::path(args->out);
            auto id = sign_file(args->file, args->key, out, &progress);
            std::cout << out.string() << ": " << args->file << " signed by key " << id << "\n";
            return 0;
        };
    });
}

void add_verify_key_options(CLI::App& cmd, VerifyKeyArgs& args, const std::string& what) {
    auto* key = cmd.add_option("--verify-key", args.public_key,
                               cat("Refuse ", what,
                                   " unless its detached signature is by this public key "
                                   "(NAME.pub from edgepack keygen); checked before it is read"));
    cmd.add_option("--signature", args.signature,
                   cat("Signature of ", what, " (default ", what, ".sig)"))
        ->needs(key);
}

void verify_if_asked(const VerifyKeyArgs& args, const std::string& file, Progress& progress) {
    if (args.public_key.empty()) return;
    std::filesystem::path signature = args.signature.empty()
                                          ? default_signature_path(file)
                                          : std::filesystem::path(args.signature);
    auto id = verify_signature(file, args.public_key, signature, &progress);
    progress.log(cat(file, ": signature verified (key ", id, ")"));
}

}  // namespace ep::cli
