// The worker threads behind parallel_for (parallel.h).
//
// run(chunks, helpers, fn) calls fn(c) once for every c in [0, chunks). The calling thread
// takes part: it claims chunks from a shared counter like the helpers do, and returns
// when every chunk has finished. A helper that has not woken up by the time the chunks
// are gone simply finds nothing to do, so the caller never waits for a thread that the
// OS has not scheduled (on a busy machine that wait is milliseconds). Which thread runs a
// chunk never changes what the chunk computes; callers cut the work into chunks that do
// not depend on timing, so results stay bit-identical.
//
// Calls from inside a chunk, or while another caller's job is running, run inline on the
// calling thread. The first exception thrown by a chunk is rethrown to the caller after
// all claimed chunks have finished (unclaimed ones are then skipped).
// Threads are created on first use, up to the most helpers ever asked for. Between jobs a
// worker polls for the next one for a short time (kWorkerSpin, ~0.2 ms) and then sleeps on
// a condition variable, so the ops of one run fork without a wake-up and an idle pool uses
// no CPU; the caller likewise polls for the helpers' last chunks before it sleeps.
#pragma once

#include <cstdint>
#include <functional>

namespace ep::rt {

class ThreadPool {
  public:
    [[nodiscard]] static ThreadPool& instance();
    void run(int64_t chunks, int helpers, const std::function<void(int64_t)>& fn);

    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

  private:
    ThreadPool() = default;
    struct State;
    State* state();
    State* state_ = nullptr;
};

}  // namespace ep::rt
