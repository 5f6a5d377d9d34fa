// edgepack diff OLD.epk NEW.epk -o UPDATE.epkd [--dry-run] [--json] [--quiet]
// edgepack apply OLD.epk UPDATE.epkd -o NEW.epk [--verify-key KEY.pub] [--dry-run] [--json]
// [--quiet] Delta updates between packs (formats/epk_delta.h, docs/epk.md "Delta updates").
#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "compressor/cli/commands.h"
#include "compressor/inspect.h"
#include "formats/epk_delta.h"
#include "ir/error.h"
#include "ir/progress.h"

namespace ep::cli {
namespace {

double percent(uint64_t part, uint64_t whole) {
    return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

nlohmann::json diff_json(const EpkDeltaStats& s, const std::string& base, const std::string& target,
                         const std::string& delta, bool dry_run) {
    nlohmann::json changed = nlohmann::json::array();
    for (const auto& c : s.changed)
        changed.push_back({{"name", c.name}, {"bytes", c.bytes}, {"in_base", c.in_base}});
    return {{"schema", "edgepack.diff/1"},
            {"base", {{"file", base}, {"bytes", s.base_bytes}, {"sha256", s.base_sha256}}},
            {"target", {{"file", target}, {"bytes", s.target_bytes}, {"sha256", s.target_sha256}}},
            {"delta", {{"file", delta}, {"bytes", s.delta_bytes}, {"written", !dry_run}}},
            {"delta_fraction", s.target_bytes ? static_cast<double>(s.delta_bytes) /
                                                    static_cast<double>(s.target_bytes)
                                              : 0.0},
            {"tensors",
             {{"total", s.tensors},
              {"reused", s.tensors_reused},
              {"reused_renamed", s.tensors_renamed},
              {"changed", s.changed.size()}}},
            {"bytes",
             {{"reused", s.bytes_reused}, {"changed", s.bytes_changed}, {"other", s.bytes_other}}},
            {"changed", std::move(changed)}};
}

std::string diff_text(const EpkDeltaStats& s, const std::string& target, const std::string& delta,
                      bool dry_run) {
    std::string out =
        cat(delta, dry_run ? " (dry run, not written): " : ": ", human_bytes(s.delta_bytes), ", ",
            cat(std::fixed, std::setprecision(1), percent(s.delta_bytes, s.target_bytes)), "% of ",
            target, " (", human_bytes(s.target_bytes), ")\n");
    out += cat("  tensors: ", s.tensors, " in the new pack, ", s.tensors_reused,
               " reused from the base (", human_bytes(s.bytes_reused), ")");
    if (s.tensors_renamed) out += cat(", ", s.tensors_renamed, " of them under another name");
    out +=
        cat(", ", s.changed.size(), " changed (", human_bytes(s.bytes_changed), " in the delta)\n");
    out += cat("  header, manifest and checksum: ", human_bytes(s.bytes_other), "\n");
    out += cat("  base   sha256 ", s.base_sha256, "\n  target sha256 ", s.target_sha256, "\n");
    return out;
}

}  // namespace

void add_diff_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string base, target, output;
        bool dry_run = false, json = false, quiet = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "diff",
        "Write a delta (.epkd) that turns OLD.epk into NEW.epk: only the tensors OLD lacks "
        "(by SHA-256), NEW's header and manifest (docs/delivery.md)");
    cmd->add_option("OLD", args->base, "The pack the device has (.epk)")->required();
    cmd->add_option("NEW", args->target, "The pack to deliver (.epk)")->required();
    cmd->add_option("-o,--output", args->output, "The delta to write (.epkd)")->required();
    cmd->add_flag("--dry-run", args->dry_run, "Check both packs, print the sizes, write nothing");
    cmd->add_flag("--json", args->json, "Print one JSON object (edgepack.diff/1)");
    cmd->add_flag("--quiet,-q", args->quiet, "Nothing on stderr but errors");
    cmd->callback([args, &action] {
        action = [args] {
            Progress progress(progress_mode_for(STDERR_FILENO, args->quiet), std::cerr);
            auto stats = diff_epk(args->base, args->target, args->output, args->dry_run, &progress);
            if (args->json)
                std::cout << diff_json(stats, args->base, args->target, args->output, args->dry_run)
                                 .dump(2)
                          << "\n";
            else
                std::cout << diff_text(stats, args->target, args->output, args->dry_run);
            return 0;
        };
    });
}

void add_apply_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string base, delta, output;
        bool dry_run = false, json = false, quiet = false;
        VerifyKeyArgs verify;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "apply",
        "Rebuild NEW.epk from OLD.epk and a delta from `edgepack diff`, bit for bit (its "
        "SHA-256 checked before the file appears)");
    cmd->add_option("OLD", args->base, "The pack the delta was made from (.epk)")->required();
    cmd->add_option("DELTA", args->delta, "The delta (.epkd)")->required();
    cmd->add_option("-o,--output", args->output, "The pack to write (may be OLD itself)")
        ->required();
    cmd->add_flag("--dry-run", args->dry_run,
                  "Check the delta and the base and rebuild in memory, write nothing");
    cmd->add_flag("--json", args->json, "Print one JSON object (edgepack.apply/1)");
    add_verify_key_options(*cmd, args->verify, "DELTA");
    cmd->add_flag("--quiet,-q", args->quiet, "Nothing on stderr but errors");
    cmd->callback([args, &action] {
        action = [args] {
            Progress progress(progress_mode_for(STDERR_FILENO, args->quiet), std::cerr);
            verify_if_asked(args->verify, args->delta, progress);
            auto s =
                apply_epk_delta(args->base, args->delta, args->output, args->dry_run, &progress);
            if (args->json) {
                std::cout << nlohmann::json{{"schema", "edgepack.apply/1"},
                                            {"output", args->output},
                                            {"written", !args->dry_run},
                                            {"bytes", s.target_bytes},
                                            {"sha256", s.target_sha256},
                                            {"bytes_from_base", s.bytes_from_base},
                                            {"bytes_from_delta", s.bytes_from_delta},
                                            {"bytes_zero", s.bytes_zero}}
                                 .dump(2)
                          << "\n";
            } else {
                std::cout << cat(args->output, args->dry_run ? " (dry run, not written): " : ": ",
                                 human_bytes(s.target_bytes), ", sha256 ", s.target_sha256,
                                 " (verified)\n  ", human_bytes(s.bytes_from_base),
                                 " from the base, ", human_bytes(s.bytes_from_delta),
                                 " from the delta\n");
            }
            return 0;
        };
    });
}

}  // namespace ep::cli
