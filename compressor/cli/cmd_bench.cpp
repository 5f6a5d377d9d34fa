// edgepack bench MODEL [--threads N] [--int8-activations] [--warmup W] [--runs R] [--shape
// NAME=dims]
//                     [--input NAME=FILE.npy] [--json] [--quiet]
// Inputs given with --input are used as they are; every other model input is synthesized
// (seeded, see synthetic_inputs.h). The JSON object also lists every timed run's latency
// (`latencies_ms`, in run order) so a driver script can pool runs across invocations, and
// each run's process CPU time (`cpu_ms`). Progress of the runs goes to stderr (a bar on a
// terminal, plain lines otherwise, nothing with --quiet).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include "compressor/cli/commands.h"
#include "formats/model_io.h"
#include "ir/progress.h"
#include "runtime-check/benchmark.h"
#include "runtime-check/npy.h"
#include "runtime-check/synthetic_inputs.h"

namespace ep::cli {

void add_bench_command(CLI::App& app, std::function<int()>& action) {
    struct Args {
        std::string model;
        int threads = 1, warmup = 3, runs = 20;
        bool int8_activations = false;
        uint64_t seed = 0;
        std::vector<std::string> shapes, inputs;
        bool json = false;
        bool quiet = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "bench", "Measure load time, latency and memory of a model in the reference runtime");
    cmd->add_option("MODEL", args->model, "Model file (.onnx or .epk)")->required();
    cmd->add_option("--threads", args->threads, "Worker threads")->check(CLI::Range(1, 256));
    cmd->add_flag("--int8-activations", args->int8_activations,
                  "MatMul/Gemm with int4 weights take int8 activations (faster, less exact)");
    cmd->add_option("--warmup", args->warmup, "Untimed runs first")->check(CLI::Range(0, 100000));
    cmd->add_option("--runs", args->runs, "Timed runs")->check(CLI::Range(1, 1000000));
    cmd->add_option("--seed", args->seed, "Seed of the random inputs");
    cmd->add_option("--shape", args->shapes,
                    "NAME=D0,D1,... for inputs with symbolic dimensions (default 1)");
    cmd->add_option("--input,-i", args->inputs,
                    "NAME=FILE.npy: use these values for an input (else random)");
    cmd->add_flag("--json", args->json, "Print one JSON object");
    cmd->add_flag("--quiet,-q", args->quiet, "No progress on stderr (errors only)");
    cmd->callback([args, &action] {
        action = [args] {
            auto t0 = std::chrono::steady_clock::now();
            rt::ExecOptions options;
            options.threads = args->threads;
            options.int8_activations = args->int8_activations;
            rt::Executor executor(load_model(args->model), options);
            double load_ms =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count();
            rt::ShapeOverrides overrides;
            for (const auto& s : args->shapes) rt::parse_shape_override(s, overrides);
            auto inputs = rt::synthetic_inputs(executor, args->seed, overrides);
            for (const auto& spec : args->inputs) {
                auto eq = spec.find('=');
                if (eq == std::string::npos || eq == 0)
                    throw InputError(cat("--input '", spec, "': expected NAME=FILE.npy"));
                std::string name = spec.substr(0, eq);
                auto it = std::find_if(inputs.begin(), inputs.end(),
                                       [&](const auto& p) { return p.first == name; });
                if (it == inputs.end())
                    throw InputError(
                        cat("--input '", spec, "': the model has no input '", name, "'"));
                it->second = read_npy(spec.substr(eq + 1));
                it->second.name = name;
            }
            Progress progress(progress_mode_for(STDERR_FILENO, args->quiet), std::cerr);
            auto r = rt::benchmark(executor, inputs, {args->warmup, args->runs, &progress});
            uint64_t rss = rt::peak_resident_bytes();
            if (args->json) {
                nlohmann::json inputs_json = nlohmann::json::object();
                for (const auto& [name, t] : inputs) inputs_json[name] = t.shape;
                nlohmann::json j = {{"model", args->model},
                                    {"threads", args->threads},
                                    {"int8_activations", args->int8_activations},
                                    {"warmup", args->warmup},
                                    {"runs", args->runs},
                                    {"inputs", inputs_json},
                                    {"load_ms", load_ms},
                                    {"latency_ms",
                                     {{"min", r.latency.min},
                                      {"p50", r.latency.p50},
                                      {"p95", r.latency.p95},
                                      {"p99", r.latency.p99},
                                      {"mean", r.latency.mean},
                                      {"max", r.latency.max}}},
                                    {"throughput_per_s", r.throughput_per_s},
                                    {"peak_rss_bytes", rss},
                                    {"peak_arena_bytes", r.peak_arena_bytes},
                                    {"latencies_ms", r.latencies_ms},
                                    {"cpu_ms", r.cpu_ms}};
                std::cout << j.dump(2) << "\n";
            } else {
                std::printf("model        %s\nthreads      %d\nload         %.2f ms\n",
                            args->model.c_str(), args->threads, load_ms);
                std::printf(
                    "latency ms   min %.3f  p50 %.3f  p95 %.3f  p99 %.3f  mean %.3f  (%d runs)\n",
                    r.latency.min, r.latency.p50, r.latency.p95, r.latency.p99, r.latency.mean,
                    args->runs);
                std::printf(
                    "throughput   %.1f runs/s\npeak memory  %.1f MiB resident, %.1f MiB arena\n",
                    r.throughput_per_s, static_cast<double>(rss) / (1 << 20),
                    static_cast<double>(r.peak_arena_bytes) / (1 << 20));
            }
            return 0;
        };
    });
}

}  // namespace ep::cli
