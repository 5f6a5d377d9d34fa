// edgepack validate --reference A --candidate B [--data DIR | --samples N [--seed S]
//                   [--shape NAME=D0,...]] [--labels FILE.npy] [--per-layer] [--threads N]
//                   [--int8-activations] [--output-kind NAME=KIND] [--ctc-alphabet NAME=FILE]
//                   [--json FILE] [--verify-key KEY.pub [--signature SIG]] [--quiet]
// Compares a candidate model with a reference on the same inputs (compressor/validate.h):
// the text report goes to stdout, the JSON object to FILE, progress to stderr (a bar on a
// terminal, plain lines otherwise, nothing with --quiet; ir/progress.h).
// --verify-key: the candidate's detached signature (CANDIDATE.sig) is checked before either
// model is loaded (the reference is the float original, usually not signed).
#include <iostream>

#include <unistd.h>

#include "compressor/cli/commands.h"
#include "compressor/recipe.h"
#include "compressor/validate.h"
#include "ir/output_batch.h"
#include "ir/output_file.h"
#include "ir/progress.h"

namespace ep::cli {

void add_validate_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string reference, candidate, data, labels, json;
        uint64_t samples = 4;
        uint64_t seed = 0;
        std::vector<std::string> shapes, kinds, alphabets;
        bool per_layer = false;
        int threads = 1;
        bool int8_activations = false;
        bool quiet = false;
        VerifyKeyArgs verify;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "validate",
        "Compare a candidate model with a reference on the same inputs: per output max/mean "
        "absolute error, cosine similarity, SQNR, and the metrics of the output's kind (inferred "
        "from the graph, or --output-kind): classes / sequence get the KL divergence of the "
        "distributions (llama.cpp-style statistics), same top-1 and top-5 agreement; maps the "
        "IoU of the thresholded maps; embeddings the cosine per row. With --labels the task "
        "metric: top-1 accuracy (.npy), or CTC line accuracy and character error rate (.txt). "
        "Also the distillation-loss evaluation: teacher = --reference, student = --candidate, "
        "KL(teacher || student).");
    cmd->add_option("--reference", args->reference, "Reference (teacher) model")->required();
    cmd->add_option("--candidate", args->candidate, "Candidate (student) model")->required();
    auto* data = cmd->add_option("--data", args->data,
                                 "Directory of samples: .npz files (one per sample or batch), "
                                 "NAME.npy / input_0.pb files, or folders of them");
    auto* samples = cmd->add_option("--samples", args->samples,
                                    "Without --data: N seeded random samples (default 4)")
                        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
    auto* seed =
        cmd->add_option("--seed", args->seed, "Seed of the random samples (sample k uses seed+k)");
    auto* shape = cmd->add_option(
        "--shape", args->shapes,
        "NAME=D0,D1,...: shape of a random input (symbolic dimensions default to 1)");
    data->excludes(samples)->excludes(seed)->excludes(shape);
    cmd->add_option("--labels", args->labels,
                    ".npy of int32/int64 class indices, one per output row in sample order; or "
                    ".txt of one UTF-8 line per sequence of a --ctc-alphabet output");
    cmd->add_option("--output-kind", args->kinds,
                    "NAME=KIND: compare output NAME as classes, sequence, map, embedding or "
                    "regression (default: inferred from the graph, docs/validate.md)");
    cmd->add_option("--ctc-alphabet", args->alphabets,
                    "NAME=FILE: output NAME is a CTC sequence [.., T, C]; decode it greedily with "
                    "this alphabet (one symbol per line, class 0 = blank)");
    cmd->add_flag("--per-layer", args->per_layer,
                  "Also compare every intermediate tensor both graphs share by name; rank by SQNR");
    cmd->add_option("--threads", args->threads, "Worker threads")->check(CLI::Range(1, 256));
    cmd->add_flag(
        "--int8-activations", args->int8_activations,
        "Run the candidate's int4 MatMul/Gemm with int8 activations (faster, less exact)");
    cmd->add_option("--json", args->json, "Write the report as one JSON object to FILE");
    add_verify_key_options(*cmd, args->verify, "CANDIDATE");
    cmd->add_flag("--quiet,-q", args->quiet, "No progress on stderr (errors only)");
    cmd->callback([args, &action] {
        action = [args] {
            Progress progress(progress_mode_for(STDERR_FILENO, args->quiet), std::cerr);
            verify_if_asked(args->verify, args->candidate, progress);
            ValidateOptions options;
            options.reference = args->reference;
            options.candidate = args->candidate;
            options.data.data = args->data;
            options.data.samples = args->samples;
            options.data.seed = args->seed;
            for (const auto& spec : args->shapes)
                rt::parse_shape_override(spec, options.data.shapes);
            options.labels = args->labels;
            auto split = [](const std::string& what, const std::string& arg) {
                auto eq = arg.find('=');
                if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
                    throw InputError(cat(what, " ", arg, ": expected NAME=VALUE"));
                return std::pair(arg.substr(0, eq), arg.substr(eq + 1));
            };
            for (const auto& arg : args->kinds) {
                auto [name, kind] = split("--output-kind", arg);
                OutputSpec& spec = options.outputs[name];
                spec.field = cat("--output-kind ", name);
                spec.kind = rt::output_kind_from_name(kind);
                if (!spec.kind)
                    throw InputError(cat("--output-kind ", arg, ": '", kind,
                                         "' is not one of classes, sequence, map, embedding, "
                                         "regression",
                                         did_you_mean(kind, rt::output_kind_names())));
            }
            for (const auto& arg : args->alphabets) {
                auto [name, file] = split("--ctc-alphabet", arg);
                OutputSpec& spec = options.outputs[name];
                if (spec.kind && *spec.kind != rt::OutputKind::Sequence)
                    throw InputError(cat("--ctc-alphabet ", name,
                                         ": CTC decoding needs a "
                                         "sequence output, --output-kind says ",
                                         rt::output_kind_name(*spec.kind)));
                spec.field = cat("--ctc-alphabet ", name);
                spec.kind = rt::OutputKind::Sequence;
                spec.ctc = true;
                spec.alphabet = file;
            }
            options.per_layer = args->per_layer;
            options.threads = args->threads;
            options.candidate_int8_activations = args->int8_activations;
            if (!args->json.empty()) {  // checked before the models run
                check_writable_file(args->json, "--json");
                for (const auto& in : {args->reference, args->candidate, args->labels})
                    if (!in.empty() && same_file(args->json, in))
                        throw InputError(cat("--json ", args->json, ": would overwrite ", in,
                                             ", an input of the validation"));
            }
            auto report = validate_models(options, &progress);
            if (!args->json.empty()) {
                OutputFile out(args->json);
                out.write(report.dump(2) + "\n");
                out.commit();
            }
            std::cout << render_validate_text(report, options.per_layer_text);
            return 0;
        };
    });
}

}  // namespace ep::cli
