// edgepack bench MODEL [--threads N] [--int8-activations] [--warmup W] [--runs R] [--shape
// NAME=dims]
//                     [--input NAME=FILE.npy] [--json] [--quiet]
// Inputs given with --input are used as they are; every other model input is synthesized
// (seeded, see synthetic_inputs.h). The JSON object also lists every timed run's latency
// (`latencies_ms`, in run order) so a driver script can pool runs across invocations, and
// each run's process CPU time (`cpu_ms`). Progress of the runs goes to stderr (a bar on a
// terminal, plain lines otherwise, nothing with --quiet).
// A KV-cache decoder (past_key_values.* inputs, runtime-check/decoder.h) is timed as a
// decode loop instead: each run is one sequence, --prefill P tokens then --steps N decode
// steps (tokens from --tokens FILE.npy, else seeded), reported as prefill and decode
// tokens/s (docs/decoder.md).
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

namespace {

struct BenchArgs {
    std::string model;
    int threads = 1, warmup = 3, runs = 20;
    bool int8_activations = false;
    uint64_t seed = 0;
    std::vector<std::string> shapes, inputs;
    int64_t prefill = 16, steps = 16;
    std::string tokens;
    bool json = false;
    bool quiet = false;
};

// The token ids a decoder run feeds: the first row of --tokens, else seeded ids below the
// embedding table's row count (synthetic_inputs' rule for an index input).
std::vector<int64_t> decoder_tokens(const BenchArgs& args, const rt::Executor& executor,
                                    const rt::DecoderInterface& decoder) {
    const int64_t need = args.prefill + args.steps;
    std::vector<int64_t> ids;
    if (!args.tokens.empty()) {
        auto t = read_npy(args.tokens);
        if (t.dtype != DType::I64 && t.dtype != DType::I32)
            throw InputError(cat("--tokens ", args.tokens, ": expected int64 or int32 token ids"));
        int64_t row = t.shape.empty() ? 1 : t.shape.back();
        for (int64_t i = 0; i < std::min(row, need); ++i)
            ids.push_back(t.dtype == DType::I64 ? t.values<int64_t>()[static_cast<size_t>(i)]
                                                : t.values<int32_t>()[static_cast<size_t>(i)]);
        if (static_cast<int64_t>(ids.size()) < need)
            throw InputError(cat("--tokens ", args.tokens, ": a row of ", row,
                                 " tokens, --prefill ", args.prefill, " + --steps ", args.steps,
                                 " needs ", need));
        return ids;
    }
    rt::ShapeOverrides overrides{{decoder.input_ids, {1, need}}};
    for (const auto& pair : decoder.cache)
        overrides[pair.past] = {1, pair.heads, 0, pair.head_size};
    if (decoder.attention_mask) overrides["attention_mask"] = {1, need};
    if (decoder.position_ids) overrides["position_ids"] = {1, need};
    for (auto& [name, t] : rt::synthetic_inputs(executor, args.seed, overrides))
        if (name == decoder.input_ids) {
            auto v = t.values<int64_t>();
            ids.assign(v.begin(), v.end());
        }
    return ids;
}

int bench_decoder(const BenchArgs& args, rt::Executor& executor,
                  const rt::DecoderInterface& decoder, double load_ms) {
    rt::DecodeBenchOptions options;
    options.prefill = args.prefill;
    options.steps = args.steps;
    options.warmup = args.warmup;
    options.runs = args.runs;
    options.tokens = decoder_tokens(args, executor, decoder);
    Progress progress(progress_mode_for(STDERR_FILENO, args.quiet), std::cerr);
    options.progress = &progress;
    auto r = rt::benchmark_decoder(executor, decoder, options);
    uint64_t rss = rt::peak_resident_bytes();
    auto stats = [](const rt::LatencyStats& s) {
        return nlohmann::json{{"min", s.min}, {"p50", s.p50},   {"p95", s.p95},
                              {"p99", s.p99}, {"mean", s.mean}, {"max", s.max}};
    };
    if (args.json) {
        nlohmann::json j = {{"model", args.model},
                            {"threads", args.threads},
                            {"int8_activations", args.int8_activations},
                            {"warmup", args.warmup},
                            {"runs", args.runs},
                            {"load_ms", load_ms},
                            {"peak_rss_bytes", rss},
                            {"peak_arena_bytes", r.peak_arena_bytes},
                            {"cpu_ms", r.cpu_ms},
                            {"decoder",
                             {{"prefill_tokens", args.prefill},
                              {"decode_steps", args.steps},
                              {"tokens", args.tokens.empty() ? nlohmann::json("seeded")
                                                             : nlohmann::json(args.tokens)},
                              {"cache_inputs", decoder.cache.size()},
                              {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                              {"decode_tokens_per_s", r.decode_tokens_per_s},
                              {"prefill_ms", stats(r.prefill)},
                              {"decode_ms", stats(r.decode)},
                              {"decode_step_ms", stats(r.step)},
                              {"prefill_runs_ms", r.prefill_ms},
                              {"decode_runs_ms", r.decode_ms}}}};
        std::cout << j.dump(2) << "\n";
    } else {
        std::printf(
            "model        %s (KV-cache decoder, %zu cache inputs)\nthreads      %d\n"
            "load         %.2f ms\n",
            args.model.c_str(), decoder.cache.size(), args.threads, load_ms);
        std::printf("prefill      %lld tokens: p50 %.3f ms, %.1f tokens/s\n",
                    static_cast<long long>(args.prefill), r.prefill.p50, r.prefill_tokens_per_s);
        std::printf("decode       %lld steps: p50 %.3f ms, %.1f tokens/s (step p50 %.3f ms)\n",
                    static_cast<long long>(args.steps), r.decode.p50, r.decode_tokens_per_s,
                    r.step.p50);
        std::printf("peak memory  %.1f MiB resident, %.1f MiB arena  (%d runs)\n",
                    static_cast<double>(rss) / (1 << 20),
                    static_cast<double>(r.peak_arena_bytes) / (1 << 20), args.runs);
    }
    return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, std::function<int()>& action) {
    using Args = BenchArgs;
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
    cmd->add_option("--prefill", args->prefill, "KV-cache decoder: prompt tokens of each run")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    cmd->add_option("--steps", args->steps, "KV-cache decoder: decode steps of each run")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    cmd->add_option("--tokens", args->tokens,
                    "KV-cache decoder: token ids .npy ([T] or [S, T]: the first row), else seeded");
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
            if (auto decoder = rt::decoder_interface(executor)) {
                if (!args->inputs.empty() || !args->shapes.empty())
                    throw InputError(cat(args->model,
                                         ": a KV-cache decoder is fed by the decode loop: "
                                         "give --tokens / --prefill / --steps, not --input or "
                                         "--shape"));
                return bench_decoder(*args, executor, *decoder, load_ms);
            }
            if (!args->tokens.empty())
                throw InputError(cat("--tokens: ", args->model,
                                     " is not a KV-cache decoder (no past_key_values.* input)"));
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
                                    {"nodes_run", r.nodes_run},
                                    {"serial_nodes", r.serial_nodes},
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
