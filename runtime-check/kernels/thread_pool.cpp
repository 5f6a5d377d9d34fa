#include "runtime-check/kernels/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ep::rt {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");  // the Arm spin-wait hint
#endif
}

using Clock = std::chrono::steady_clock;

// How long a worker polls for the next job after its last one before it sleeps on the
// condition variable (ONNX Runtime's spin-then-block): the parallel ops of one run follow
// each other within microseconds, so they start without a wake-up (a futex wake plus a
// reschedule costs tens of microseconds, more in a VM), and a pool left idle costs no CPU
// after this long. Measured in time, not iterations: PAUSE takes 10 to 200 ns depending
// on the CPU and the hypervisor.
constexpr auto kWorkerSpin = std::chrono::microseconds(200);
// How long the caller polls for the chunks helpers are still running before it sleeps:
// chunks are sized to take about that long (parallel.h), so the join rarely sleeps.
constexpr auto kJoinSpin = std::chrono::microseconds(100);

// Polls done() with the spin-wait hint until it is true or `limit` has passed; the clock
// is read every 64 polls only.
template <typename Done>
bool spin_until(Done done, std::chrono::microseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (int i = 1;; ++i) {
        if (done()) return true;
        cpu_relax();
        if (i % 64 == 0 && Clock::now() >= deadline) return done();
    }
}

thread_local bool t_in_job = false;  // inside a chunk (or a pool thread): nested calls run inline

// Shared with the helpers, so one that wakes after the caller has returned can still look
// at `next` safely (it then finds no chunk and never calls fn).
struct Job {
    const std::function<void(int64_t)>* fn = nullptr;
    int64_t chunks = 0;
    std::atomic<int64_t> next{0};      // next chunk to claim
    std::atomic<int64_t> finished{0};  // chunks run (or skipped after an error)
    int wanted = 0;                    // helpers that may join; guarded by State::m
    int joined = 0;                    // guarded by State::m
    std::exception_ptr error;          // guarded by State::m
};

}  // namespace

struct ThreadPool::State {
    std::mutex m;
    std::condition_variable wake;  // workers: a job was posted, or stop
    std::condition_variable done;  // caller: the last chunk finished
    std::vector<std::thread> workers;
    std::shared_ptr<Job> job;
    std::atomic<uint64_t> generation{0};
    bool stop = false;

    void finish(Job& job, int64_t count) {
        if (job.finished.fetch_add(count, std::memory_order_acq_rel) + count == job.chunks) {
            std::lock_guard<std::mutex> lock(m);
            done.notify_all();
        }
    }

    void work(Job& job) {
        for (;;) {
            const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
            if (c >= job.chunks) return;
            try {
                (*job.fn)(c);
            } catch (...) {
                {
                    std::lock_guard<std::mutex> lock(m);
                    if (!job.error) job.error = std::current_exception();
                }
                // Skip the chunks nobody has claimed yet.
                const int64_t rest = job.next.exchange(job.chunks, std::memory_order_relaxed);
                if (rest < job.chunks) finish(job, job.chunks - rest);
            }
            finish(job, 1);
        }
    }

    void worker_loop() {
        t_in_job = true;
        uint64_t seen = 0;
        for (;;) {
            spin_until([&] { return generation.load(std::memory_order_acquire) != seen; },
                       kWorkerSpin);
            std::unique_lock<std::mutex> lock(m);
            wake.wait(lock,
                      [&] { return stop || generation.load(std::memory_order_relaxed) != seen; });
            if (stop) return;
            seen = generation.load(std::memory_order_relaxed);
            std::shared_ptr<Job> current = job;
            if (!current || current->joined >= current->wanted) continue;
            ++current->joined;
            lock.unlock();
            work(*current);
        }
    }
};

ThreadPool& ThreadPool::instance() {
    static ThreadPool pool;
    return pool;
}

ThreadPool::State* ThreadPool::state() {
    static std::once_flag once;
    std::call_once(once, [this] { state_ = new State; });
    return state_;
}

ThreadPool::~ThreadPool() {
    if (!state_) return;
    {
        std::lock_guard<std::mutex> lock(state_->m);
        state_->stop = true;
    }
    state_->wake.notify_all();
    for (auto& t : state_->workers) t.join();
    delete state_;
}

void ThreadPool::run(int64_t chunks, int helpers, const std::function<void(int64_t)>& fn) {
    if (chunks <= 0) return;
    if (t_in_job || helpers <= 0 || chunks == 1) {
        for (int64_t c = 0; c < chunks; ++c) fn(c);
        return;
    }
    State& s = *state();
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->chunks = chunks;
    job->wanted = helpers;
    {
        std::unique_lock<std::mutex> lock(s.m);
        if (s.job) {  // another caller's job is running: do this one here
            lock.unlock();
            for (int64_t c = 0; c < chunks; ++c) fn(c);
            return;
        }
        while (static_cast<int>(s.workers.size()) < helpers)
            s.workers.emplace_back([&s] { s.worker_loop(); });
        s.job = job;
        s.generation.fetch_add(1, std::memory_order_release);
    }
    s.wake.notify_all();
    t_in_job = true;
    s.work(*job);
    t_in_job = false;
    // Wait only for chunks that helpers have claimed and are still running: first by
    // polling, then asleep.
    {
        std::lock_guard<std::mutex> lock(s.m);
        s.job.reset();  // no helper joins from here on
    }
    auto all_done = [&] { return job->finished.load(std::memory_order_acquire) == chunks; };
    std::exception_ptr error;
    const bool joined = spin_until(all_done, kJoinSpin);
    {
        std::unique_lock<std::mutex> lock(s.m);
        if (!joined) s.done.wait(lock, all_done);
        error = job->error;
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace ep::rt
