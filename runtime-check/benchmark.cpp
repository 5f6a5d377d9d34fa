#include "runtime-check/benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <numeric>
#include <string>

namespace ep::rt {
namespace {

double process_cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

}  // namespace

LatencyStats latency_stats(std::vector<double> s) {
    LatencyStats st;
    if (s.empty()) return st;
    std::sort(s.begin(), s.end());
    auto rank = [&](double p) {  // nearest-rank percentile
        size_t k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(s.size())));
        return s[std::clamp<size_t>(k, 1, s.size()) - 1];
    };
    st.min = s.front();
    st.max = s.back();
    st.p50 = rank(50);
    st.p95 = rank(95);
    st.p99 = rank(99);
    st.mean = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(s.size());
    return st;
}

BenchResult benchmark(Executor& executor, const NamedTensors& inputs, const BenchOptions& options) {
    if (options.runs < 1) throw InputError("--runs must be at least 1");
    const int warmup = std::max(options.warmup, 0);
    auto step =
        progress_step(options.progress, "benchmark",
                      static_cast<uint64_t>(warmup) + static_cast<uint64_t>(options.runs), "runs");
    if (warmup > 0) step.set_detail("warm-up");
    for (int i = 0; i < warmup; ++i) {
        (void)executor.run(inputs);
        step.advance();
    }
    step.set_detail("timed");
    BenchResult r;
    for (int i = 0; i < options.runs; ++i) {
        double c0 = process_cpu_ms();
        auto t0 = std::chrono::steady_clock::now();
        auto out = executor.run(inputs);
        auto t1 = std::chrono::steady_clock::now();
        r.cpu_ms.push_back(process_cpu_ms() - c0);
        r.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        r.peak_arena_bytes = std::max(r.peak_arena_bytes, executor.last_stats().peak_arena_bytes);
        r.nodes_run = executor.last_stats().nodes_run;
        r.serial_nodes = executor.last_stats().serial_nodes;
        step.advance();
    }
    step.finish();
    r.latency = latency_stats(r.latencies_ms);
    r.throughput_per_s = r.latency.mean > 0 ? 1000.0 / r.latency.mean : 0;
    return r;
}

DecodeBenchResult benchmark_decoder(Executor& executor, const DecoderInterface& interface,
                                    const DecodeBenchOptions& options) {
    if (options.runs < 1) throw InputError("--runs must be at least 1");
    if (options.prefill < 1) throw InputError("--prefill must be at least 1");
    if (options.steps < 1) throw InputError("--steps must be at least 1");
    if (static_cast<int64_t>(options.tokens.size()) < options.prefill + options.steps)
        throw InputError(cat("decoder bench: ", options.tokens.size(), " tokens given, --prefill ",
                             options.prefill, " + --steps ", options.steps, " needs more"));
    const int warmup = std::max(options.warmup, 0);
    auto progress = progress_step(
        options.progress, "benchmark",
        static_cast<uint64_t>(warmup) + static_cast<uint64_t>(options.runs), "sequences");
    const std::vector<int64_t> prompt(options.tokens.begin(),
                                      options.tokens.begin() + options.prefill);
    DecodeBenchResult r;
    using clock = std::chrono::steady_clock;
    auto ms = [](clock::time_point a, clock::time_point b) {
        return std::chrono::duration<double, std::milli>(b - a).count();
    };
    for (int run = 0; run < warmup + options.runs; ++run) {
        const bool timed = run >= warmup;
        progress.set_detail(timed ? "timed" : "warm-up");
        DecodeSession session(executor, interface, options.prefill + options.steps);
        double c0 = process_cpu_ms();
        auto t0 = clock::now();
        (void)session.step(prompt);
        auto t1 = clock::now();
        uint64_t arena = executor.last_stats().peak_arena_bytes;
        double decode = 0;
        for (int64_t s = 0; s < options.steps; ++s) {
            auto s0 = clock::now();
            (void)session.step({options.tokens[static_cast<size_t>(options.prefill + s)]});
            double step = ms(s0, clock::now());
            decode += step;
            arena = std::max(arena, executor.last_stats().peak_arena_bytes);
            if (timed) r.step_ms.push_back(step);
        }
        if (timed) {
            r.cpu_ms.push_back(process_cpu_ms() - c0);
            r.prefill_ms.push_back(ms(t0, t1));
            r.decode_ms.push_back(decode);
            r.peak_arena_bytes = std::max(r.peak_arena_bytes, arena);
        }
        progress.advance();
    }
    progress.finish();
    r.prefill = latency_stats(r.prefill_ms);
    r.decode = latency_stats(r.decode_ms);
    r.step = latency_stats(r.step_ms);
    if (r.prefill.p50 > 0)
        r.prefill_tokens_per_s = static_cast<double>(options.prefill) * 1000.0 / r.prefill.p50;
    if (r.decode.p50 > 0)
        r.decode_tokens_per_s = static_cast<double>(options.steps) * 1000.0 / r.decode.p50;
    return r;
}

uint64_t peak_resident_bytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

}  // namespace ep::rt
