// parallel_for and its thread pool (runtime-check/kernels/thread_pool.h): every index exactly
// once for any thread count, nested and concurrent calls, exceptions reach the caller, an
// idle pool sleeps.
#include <atomic>
#include <chrono>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime-check/kernels/parallel.h"
#include "runtime-check/kernels/thread_pool.h"
#include "support.h"

using namespace ep;

namespace {

std::vector<int> visit_counts(int threads, int64_t n, int64_t min_chunk) {
    rt::ExecOptions options;
    options.threads = threads;
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    rt::parallel_for(options, n, min_chunk, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
    });
    std::vector<int> out;
    for (auto& s : seen) out.push_back(s.load());
    return out;
}

}  // namespace

TEST_CASE("parallel_for visits every index once for any thread count", "[runtime][threads]") {
    const int threads = GENERATE(1, 2, 3, 8);
    const int64_t n = GENERATE(0, 1, 2, 7, 1000, 100003);
    const int64_t min_chunk = GENERATE(1, 64);
    INFO("threads " << threads << " n " << n << " min_chunk " << min_chunk);
    for (int v : visit_counts(threads, n, min_chunk)) REQUIRE(v == 1);
}

TEST_CASE("nested and concurrent parallel_for calls complete", "[runtime][threads]") {
    rt::ExecOptions options;
    options.threads = 4;
    std::atomic<int64_t> total{0};
    auto nested = [&] {
        rt::parallel_for(options, 64, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                rt::parallel_for(options, 100, 1,
                                 [&](int64_t b2, int64_t e2) { total += e2 - b2; });
        });
    };
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t)
        callers.emplace_back([&] {
            for (int r = 0; r < 20; ++r) nested();
        });
    for (auto& t : callers) t.join();
    REQUIRE(total.load() == 3 * 20 * 64 * 100);
}

TEST_CASE("an exception in one chunk reaches the caller after the others finish",
          "[runtime][threads]") {
    rt::ExecOptions options;
    options.threads = 3;
    for (int round = 0; round < 50; ++round) {
        std::atomic<int> running{0};
        REQUIRE_THROWS_WITH(rt::parallel_for(options, 3000, 1,
                                             [&](int64_t b, int64_t) {
                                                 ++running;
                                                 if (b == 0)
                                                     throw std::runtime_error("chunk 0 failed");
                                                 --running;
                                             }),
                            "chunk 0 failed");
        REQUIRE(running.load() == 1);  // only the throwing chunk is left "running"
    }
    // The pool still works afterwards.
    for (int v : visit_counts(3, 5000, 1)) REQUIRE(v == 1);
}

TEST_CASE("an idle pool leaves no busy CPU behind", "[runtime][threads]") {
    // Workers poll for the next job for about 0.2 ms after their last one, then sleep:
    // the process uses (almost) no CPU while the pool is idle.
    auto process_cpu_ms = [] {
        timespec t{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
    };
    for (int v : visit_counts(3, 100003, 1)) REQUIRE(v == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the polling time
    const double before = process_cpu_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double idle_ms = process_cpu_ms() - before;
    INFO("CPU time used by the idle pool over 200 ms: " << idle_ms << " ms");
    CHECK(idle_ms < 10.0);  // two polling workers would use about 400 ms
}
