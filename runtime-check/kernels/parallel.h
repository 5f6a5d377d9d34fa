// What every kernel takes besides its data: the execution options (thread count, the
// int8-activation switch) and parallel_for, which splits work over the thread pool
// (thread_pool.h). Every kernel gives bit-identical results for any thread count: work is
// split so that each output element is computed by exactly one thread in a fixed order.
#pragma once

#include <cstdint>
#include <functional>

namespace ep::rt {

struct ExecOptions {
    int threads = 1;
    // MatMul / Gemm with an int4 weight quantize their activations to int8 per 32 elements
    // (qgemm.h: qgemm_i8), like ONNX Runtime's MatMulNBits accuracy_level 4: faster, and
    // less exact (the validate report shows by how much). Off: float activations.
    bool int8_activations = false;
    // QDQ patterns (DequantizeLinear -> Conv / MatMul / Gemm -> QuantizeLinear) run as
    // integer ops with 8-bit activations (qdq_fusion.h). Off: every DequantizeLinear, float
    // op and QuantizeLinear runs as written (the unfused reference).
    bool fuse_qdq = true;
};

// Splits [0, n) into contiguous chunks over the configured threads and calls
// fn(begin, end) for each; each index is handled exactly once. The chunks depend only on
// n, min_chunk and options.threads; the calling thread runs chunks too (thread_pool.h),
// so a pool thread the OS has not scheduled yet never holds the call up.
void parallel_for(const ExecOptions& options, int64_t n, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace ep::rt
