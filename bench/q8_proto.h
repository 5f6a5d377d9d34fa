// Prototype (bench only, not the runtime or the library): an int8-activation int4g32 GEMV
// (q8_proto.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "runtime-check/kernel.h"

namespace ep::bench {

struct Q8Row {
    std::vector<int8_t> q;   // blocks x 32, even elements first within each block
    std::vector<float> d;    // blocks
};

// The activation row quantized per 32-block (Q8_0-style), blocks in the kernel's order.
[[nodiscard]] Q8Row quantize_q8(const std::vector<float>& x);
// y[n] = W x with W int4g32 symmetric (f16 scales), stored n rows of k (k % 32 == 0).
// Needs AVX2 + FMA + F16C (the file is compiled for them: check the CPU before calling).
void gemv_q8_avx2(const rt::ExecOptions& opt, const std::byte* w, int64_t n, int64_t k,
                  const Q8Row& x, float* y);

}  // namespace ep::bench
