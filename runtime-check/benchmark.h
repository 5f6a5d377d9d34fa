// Latency benchmark of the reference runtime: warm-up runs, then timed runs of the same
// inputs; percentiles by nearest rank over the timed runs. Progress (a "benchmark" step of
// warmup + runs units) is reported between runs, outside the timed region.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/progress.h"
#include "runtime-check/decoder.h"
#include "runtime-check/executor.h"

namespace ep::rt {

struct BenchOptions {
    int warmup = 3;
    int runs = 20;
    Progress* progress = nullptr;  // null: nothing printed
};

struct LatencyStats {
    double min = 0, p50 = 0, p95 = 0, p99 = 0, mean = 0, max = 0;  // milliseconds
};

struct BenchResult {
    std::vector<double> latencies_ms;  // in run order
    // Process CPU time of each timed run (all threads), in run order: on a busy machine
    // the wall-clock latency includes time spent waiting for a CPU, this does not.
    std::vector<double> cpu_ms;
    LatencyStats latency;
    double throughput_per_s = 0;  // runs per second (1000 / mean)
    uint64_t peak_arena_bytes = 0;
    // Nodes of one run, and how many of them ran on one thread because the cost model
    // (node_cost.h) found too little work to split.
    uint64_t nodes_run = 0, serial_nodes = 0;
};

[[nodiscard]] LatencyStats latency_stats(std::vector<double> samples_ms);
[[nodiscard]] BenchResult benchmark(Executor& executor, const NamedTensors& inputs,
                                    const BenchOptions& options);
// A KV-cache decoder (decoder.h) timed as people use one: each run is one sequence, a
// prefill of `prefill` tokens then `steps` single-token decode steps wiring present.* to
// past_key_values.* (DecodeSession). Prefill tokens/s = prefill / median prefill time;
// decode tokens/s = steps / median over runs of the run's total decode time (so the
// growing cache is in it, as in llama-bench's tg figure).
struct DecodeBenchOptions {
    int64_t prefill = 16;
    int64_t steps = 16;
    int warmup = 1;
    int runs = 5;
    std::vector<int64_t> tokens;  // at least prefill + steps token ids
    Progress* progress = nullptr;
};

struct DecodeBenchResult {
    std::vector<double> prefill_ms;  // one per timed run
    std::vector<double> decode_ms;   // each run's total decode time (steps tokens)
    std::vector<double> step_ms;     // every decode step of every timed run, in order
    std::vector<double> cpu_ms;      // each run's process CPU time (prefill + decode)
    LatencyStats prefill, decode, step;
    double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
    uint64_t peak_arena_bytes = 0;
};

[[nodiscard]] DecodeBenchResult benchmark_decoder(Executor& executor,
                                                  const DecoderInterface& interface,
                                                  const DecodeBenchOptions& options);

// Peak resident set size of this process so far (VmHWM), in bytes.
[[nodiscard]] uint64_t peak_resident_bytes();

}  // namespace ep::rt
