// The pass manager (contract in pass_manager.h).
#include "compressor/pass_manager.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <new>
#include <ostream>
#include <set>

#include "formats/model_io.h"
#include "ir/error.h"
#include "passes/registry.h"

namespace ep {

PassFiles pass_files(const Recipe& recipe) {
    return {recipe.base_dir, [](const std::filesystem::path& path) { return load_model(path); }};
}

PassManager::PassManager(const Recipe& recipe) {
    for (const auto& config : recipe.passes) {
        auto pass = create_pass(config.name);
        if (!pass)
            throw InternalError(cat(recipe.what, ": ", config.path, ": pass '", config.name,
                                    "' validated but not in the registry"));
        with_context(cat(recipe.what, ": ", config.path, " (", config.name, ")"), [&] {
            pass->configure(config.options);
            pass->read_files(pass_files(recipe));
        });
        add(config.path, std::move(pass));
    }
}

void PassManager::add(std::string path, std::unique_ptr<Pass> pass) {
    passes_.push_back({std::move(path), std::move(pass)});
}

void PassManager::check_print_after(const std::vector<std::string>& names) const {
    std::vector<std::string> known;
    for (const auto& e : passes_) {
        known.emplace_back(e.pass->name());
        known.push_back(e.path);
    }
    for (const auto& n : names) {
        if (std::find(known.begin(), known.end(), n) != known.end()) continue;
        std::string hint = did_you_mean(n, known);
        throw InputError(cat("--print-after ", n, ": no pass '", n, "' in the recipe",
                             hint.empty() && !known.empty()
                                 ? cat(" (give a pass name or a path like ", passes_[0].path, ")")
                                 : hint));
    }
}

void PassManager::check_needs(const Model& model, const std::string& what,
                              const PassResources& resources) const {
    for (const auto& e : passes_) {
        uint32_t needs = e.pass->needs();
        std::string who = cat(e.path, " (", e.pass->name(), ")");
        if ((needs & kNeedsGraph) && model.graph.nodes.empty()) {
            // A GGUF is read as a weights-only checkpoint too (SourceFormat::Safetensors);
            // its name says which file it was.
            const bool gguf = std::filesystem::path(what).extension() == ".gguf";
            std::string kind = gguf ? "a GGUF file (weights only, no graph)"
                               : model.format == SourceFormat::Safetensors
                                   ? "a safetensors checkpoint (weights only, no graph)"
                                   : "a model without nodes";
            throw InputError(cat(who, ": needs a graph of nodes, but ", what, " is ", kind,
                                 gguf ? "; build the decoder graph from it with "
                                        "scripts/make_decoder.py (docs/decoder.md) and use that"
                                      : "; use the ONNX model"));
        }
        // calibration.ranges alone stands in for samples when the pass only needs ranges.
        if ((needs & kNeedsCalibrationData) && (needs & kUsesActivationRanges) &&
            resources.calibration_ranges)
            needs &= ~static_cast<uint32_t>(kNeedsCalibrationData);
        if ((needs & kNeedsCalibrationData) && !resources.calibration_data)
            throw InputError(cat(who, ": needs calibration data, and the recipe has none: add ",
                                 "\"calibration\": {\"data\": ...} (calibration.data: a ",
                                 "folder of samples or a token-id .npy)"));
        if ((needs & kNeedsCalibrationData) && resources.calibration_random &&
            !resources.calibration_synthetic)
            throw InputError(cat(who, ": calibration.data: empty, so the pass would calibrate on ",
                                 "random inputs (far worse than real samples); set ",
                                 "calibration.data to a folder of samples or a token-id .npy, or ",
                                 "say \"synthetic\": true in the calibration section to ",
                                 "calibrate on random inputs on purpose"));
        if ((needs & kNeedsEvaluationData) && !resources.evaluation_data)
            throw InputError(cat(who, ": needs evaluation data, and the recipe has none"));
    }
}

bool PassManager::uses_activation_ranges() const {
    return std::any_of(passes_.begin(), passes_.end(), [](const Entry& e) {
        return (e.pass->needs() & kUsesActivationRanges) != 0;
    });
}

std::vector<std::string> PassManager::plan(const Model& model) {
    // Later passes are planned on the model as the earlier ones leave it: cleanup passes
    // are cheap, so they run on a copy (tensor bytes are shared copy-on-write). After the
    // first pass of another kind, the remaining plans are made on the model as it was
    // before that pass, and say so.
    std::vector<std::string> lines;
    Model simulated = model;
    std::string stale_from;
    for (size_t i = 0; i < passes_.size(); ++i) {
        const auto& e = passes_[i];
        std::string who = cat(e.path, " (", e.pass->name(), ")");
        lines.push_back(cat(e.path, " ", e.pass->name(), ": ", e.pass->description()));
        if (!stale_from.empty())
            lines.push_back(cat("  (planned on the model before ", stale_from,
                                ", which a dry run does not execute)"));
        std::vector<std::string> pass_lines =
            with_context(who, [&] { return e.pass->plan(simulated); });
        for (auto& l : pass_lines) lines.push_back("  " + l);
        if (!stale_from.empty() || i + 1 == passes_.size()) continue;
        if (e.pass->kind() != PassKind::Cleanup) {
            stale_from = e.path;
            continue;
        }
        PassContext context;
        with_context(who, [&] { (void)e.pass->run(simulated, context); });
    }
    if (passes_.empty()) lines.push_back("no passes: the output is the input model, rewritten");
    return lines;
}

namespace {

std::string first_problems(const std::vector<std::string>& problems) {
    if (problems.empty()) return {};
    std::string s = problems[0];
    if (problems.size() > 1) s += cat(" (and ", problems.size() - 1, " more)");
    return s;
}

}  // namespace

std::vector<PassRecord> PassManager::run(Model& model, const PassManagerOptions& options,
                                         std::ostream& log) {
    return run_range(model, options, log, 0, passes_.size());
}

std::vector<PassRecord> PassManager::run_range(Model& model, const PassManagerOptions& options,
                                               std::ostream& log, size_t begin, size_t end) {
    end = std::min(end, passes_.size());
    std::vector<PassRecord> records;
    std::set<std::string> baseline;
    if (options.verify_each) {
        auto problems = verify(model);
        baseline.insert(problems.begin(), problems.end());
        if (!problems.empty())
            log << "edgepack: warning: the input model already has " << problems.size()
                << " structural problem" << (problems.size() == 1 ? "" : "s") << " ("
                << first_problems(problems) << "); --verify-each reports only new ones\n";
    }
    PassContext context = options.context;
    for (size_t i = begin; i < end; ++i) {
        auto& e = passes_[i];
        std::string name(e.pass->name());
        std::string who = cat(e.path, " (", name, ")");
        if (options.progress)
            log << "edgepack: [" << i + 1 << "/" << passes_.size() << "] " << who << "\n"
                << std::flush;
        PassRecord record;
        record.path = e.path;
        record.name = name;
        auto start = std::chrono::steady_clock::now();
        try {
            record.result = e.pass->run(model, context);
        } catch (const Error& err) {
            throw Error(err.code(), cat(who, ": ", err.what()));
        } catch (const std::bad_alloc&) {
            throw InternalError(cat(who, ": out of memory"));
        } catch (const std::exception& err) {
            throw InternalError(cat(who, ": ", err.what()));
        }
        record.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (options.verify_each) {
            std::vector<std::string> fresh;
            for (auto& p : verify(model))
                if (!baseline.count(p)) fresh.push_back(std::move(p));
            if (!fresh.empty())
                throw InternalError(cat("after pass ", name, ": ", first_problems(fresh),
                                        " [recipe entry ", e.path, "]"));
        }
        const auto& pa = options.print_after;
        if (std::find(pa.begin(), pa.end(), name) != pa.end() ||
            std::find(pa.begin(), pa.end(), e.path) != pa.end())
            log << "--- after " << who << " ---\n" << dump_graph(model) << std::flush;
        for (const auto& w : record.result.warnings)
            log << "edgepack: warning: " << who << ": " << w << "\n";
        log << std::flush;
        records.push_back(std::move(record));
    }
    return records;
}

namespace {

void dump_nodes(const Graph& g, const std::string& indent, std::string& out) {
    for (const auto& n : g.nodes) {
        out += cat(indent, n.domain.empty() ? "" : n.domain + ".", n.op_type, "(", n.name, "): ");
        for (size_t i = 0; i < n.inputs.size(); ++i) out += cat(i ? ", " : "", n.inputs[i]);
        out += n.inputs.empty() ? "-> " : " -> ";
        for (size_t i = 0; i < n.outputs.size(); ++i) out += cat(i ? ", " : "", n.outputs[i]);
        out += "\n";
        for (const auto& a : n.attributes)
            for (const auto& sub : a.graphs) {
                out += cat(indent, "  ", a.name, ": subgraph '", sub.name, "', ", sub.nodes.size(),
                           " nodes, ", sub.initializers.size(), " initializers\n");
                dump_nodes(sub, indent + "    ", out);
            }
    }
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string pad_right(std::string s, size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

std::string pad_left(const std::string& s, size_t width) {
    return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

}  // namespace

std::string dump_graph(const Model& model) {
    const Graph& g = model.graph;
    std::string out =
        cat("graph '", g.name, "': ", g.nodes.size(), " nodes, ", g.initializers.size(),
            " initializers, ", g.inputs.size(), " inputs, ", g.outputs.size(), " outputs\n");
    dump_nodes(g, "  ", out);
    return out;
}

std::string format_time_table(const std::vector<PassRecord>& records,
                              const std::vector<std::pair<std::string, double>>& extra) {
    std::vector<std::array<std::string, 3>> rows;
    double total = 0.0;
    for (const auto& r : records) {
        rows.push_back({cat(r.path, " ", r.name), fixed(r.seconds * 1e3, 2),
                        std::to_string(r.result.rewrites)});
        total += r.seconds;
        // The pass's own steps (per calibrated layer), part of its time above.
        for (const auto& [step, seconds] : r.result.step_seconds)
            rows.push_back({cat("  ", step), fixed(seconds * 1e3, 2), ""});
    }
    for (const auto& [what, seconds] : extra) {
        rows.push_back({what, fixed(seconds * 1e3, 2), "-"});
        total += seconds;
    }
    rows.push_back({"total", fixed(total * 1e3, 2), ""});
    size_t w0 = 4;
    for (const auto& r : rows) w0 = std::max(w0, r[0].size());
    std::string out = cat(pad_right("pass", w0), "  ", pad_left("wall ms", 10), "  ",
                          pad_left("rewrites", 8), "\n");
    for (const auto& r : rows)
        out += cat(pad_right(r[0], w0), "  ", pad_left(r[1], 10), "  ", pad_left(r[2], 8), "\n");
    return out;
}

std::string format_summary(const std::vector<PassRecord>& records) {
    constexpr size_t kMaxReasonLines = 8;
    std::string out;
    for (const auto& r : records) {
        const PassResult& res = r.result;
        out += cat(r.path, " ", r.name, ": ", res.changed ? "changed" : "unchanged", ", ",
                   res.rewrites, " rewrite", res.rewrites == 1 ? "" : "s", ", ", res.skipped.size(),
                   " skipped\n");
        for (const auto& line : res.summary) out += cat("  ", line, "\n");
        // Skips grouped by reason, in order of first appearance.
        std::vector<std::string> order;
        std::map<std::string, std::vector<std::string>> names;
        for (const auto& s : res.skipped) {
            auto& v = names[s.reason];
            if (v.empty()) order.push_back(s.reason);
            v.push_back(s.name);
        }
        size_t shown = 0;
        for (const auto& reason : order) {
            if (shown == kMaxReasonLines) {
                out += cat("  ... ", order.size() - shown,
                           " more skip reasons (run with --dry-run to see every decision)\n");
                break;
            }
            const auto& v = names[reason];
            if (v.size() == 1) {
                out += cat("  skipped ", v[0], ": ", reason, "\n");
            } else {
                std::string examples;
                for (size_t k = 0; k < std::min<size_t>(3, v.size()); ++k)
                    examples += cat(k ? ", " : "", v[k]);
                out += cat("  skipped ", v.size(), ": ", reason, " (", examples,
                           v.size() > 3 ? ", ..." : "", ")\n");
            }
            ++shown;
        }
    }
    return out;
}

}  // namespace ep
