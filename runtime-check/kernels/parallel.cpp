#include "runtime-check/kernels/parallel.h"

#include <algorithm>

#include "runtime-check/kernels/thread_pool.h"

namespace ep::rt {

void parallel_for(const ExecOptions& options, int64_t n, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    int threads = std::max(1, options.threads);
    int64_t chunks =
        std::min<int64_t>(threads, std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk)));
    if (chunks <= 1) {
        fn(0, n);
        return;
    }
    int64_t per = (n + chunks - 1) / chunks;
    // Each chunk is a fixed range, so the result does not depend on which thread runs it.
    ThreadPool::instance().run(chunks, static_cast<int>(chunks - 1), [&](int64_t c) {
        int64_t b = c * per, e = std::min(n, b + per);
        if (b < e) fn(b, e);
    });
}

}  // namespace ep::rt
