#include "runtime-check/kernels/elementwise_chain.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime-check/kernels/vec_math.h"

namespace ep::rt {
namespace {

// Floats per block: the block of y, the input and up to kChainMaxKept kept outputs stay in
// L1 (6 x 2 KiB).
constexpr int64_t kBlock = 512;
// Elementwise step-elements below which a chunk of work is not worth another thread
// (a wake-up and join cost a few microseconds; a step-element is well under a nanosecond).
constexpr int64_t kParallelWork = int64_t{1} << 16;

#if defined(__x86_64__) && defined(__GNUC__)
// The block loop is compiled for AVX-512, AVX2 and baseline x86-64, the widest the CPU has
// chosen once at start-up (an ifunc): every step is one IEEE operation per element, so the
// vector width changes no bit (and -ffp-contract=off keeps a multiply and an add apart).
#define EP_CHAIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EP_CHAIN_CLONES
#endif

// out[i] = f(cur[i], other[i]) or f(other[i], cur[i]), other a scalar or an array.
// Always inlined, so that each clone of run_block vectorizes it for its instruction set.
template <typename F>
__attribute__((always_inline)) inline void binary_step(const ChainStep& s, const float* other,
                                                       float* cur, int64_t len, F f) {
    if (s.other == ChainOperand::Scalar) {
        const float v = s.scalar;
        if (s.other_first)
            for (int64_t i = 0; i < len; ++i) cur[i] = f(v, cur[i]);
        else
            for (int64_t i = 0; i < len; ++i) cur[i] = f(cur[i], v);
    } else if (s.other_first) {
        for (int64_t i = 0; i < len; ++i) cur[i] = f(other[i], cur[i]);
    } else {
        for (int64_t i = 0; i < len; ++i) cur[i] = f(cur[i], other[i]);
    }
}

// op_max / op_min on floats: a NaN on either side gives NaN, else std::max / std::min with
// the operands in the node's order (which decides between -0 and +0).
__attribute__((always_inline)) inline float max_step(float a, float b) {
    return a != a || b != b ? std::numeric_limits<float>::quiet_NaN() : std::max(a, b);
}
__attribute__((always_inline)) inline float min_step(float a, float b) {
    return a != a || b != b ? std::numeric_limits<float>::quiet_NaN() : std::min(a, b);
}

// The steps run in place over the block of y (it stays in L1 until the next block). When
// x is the block itself (an in-place epilogue), a copy of it serves the steps that read
// the chain's input.
EP_CHAIN_CLONES void run_block(std::span<const ChainStep> steps, const float* x, float* cur,
                               int64_t len) {
    alignas(64) float kept[kChainMaxKept][kBlock];
    alignas(64) float input[kBlock];
    int slot_of[64];  // step -> kept slot
    if (x != cur) {
        std::memcpy(cur, x, static_cast<size_t>(len) * sizeof(float));
    } else if (std::any_of(steps.begin(), steps.end(),
                           [](const ChainStep& s) { return s.other == ChainOperand::Input; })) {
        std::memcpy(input, x, static_cast<size_t>(len) * sizeof(float));
        x = input;
    }
    int slots = 0;
    for (size_t k = 0; k < steps.size(); ++k) {
        const ChainStep& s = steps[k];
        const float* other = s.other == ChainOperand::Input   ? x
                             : s.other == ChainOperand::Saved ? kept[slot_of[s.saved]]
                                                              : nullptr;
        switch (s.op) {
            case ChainOp::Add:
                binary_step(s, other, cur, len, [](float a, float b) { return a + b; });
                break;
            case ChainOp::Sub:
                binary_step(s, other, cur, len, [](float a, float b) { return a - b; });
                break;
            case ChainOp::Mul:
                binary_step(s, other, cur, len, [](float a, float b) { return a * b; });
                break;
            case ChainOp::Div:
                binary_step(s, other, cur, len, [](float a, float b) { return a / b; });
                break;
            // Values, not references into the block, so that the selects vectorize.
            case ChainOp::Relu:
                for (int64_t i = 0; i < len; ++i) {
                    const float v = cur[i];
                    cur[i] = v > 0 ? v : 0.0f;
                }
                break;
            case ChainOp::Clip: {
                const float lo = s.a, hi = s.b;
                for (int64_t i = 0; i < len; ++i) {
                    const float v = cur[i];
                    cur[i] = std::min(std::max(v, lo), hi);
                }
                break;
            }
            case ChainOp::HardSigmoid: {
                const float alpha = s.a, beta = s.b;
                for (int64_t i = 0; i < len; ++i) {
                    const float v = alpha * cur[i] + beta;
                    cur[i] = std::max(0.0f, std::min(1.0f, v));
                }
                break;
            }
            case ChainOp::Sigmoid:
                sigmoid_f32(cur, cur, len);
                break;
            case ChainOp::LeakyRelu: {
                // Both sides computed, then a select: vectorizes (a multiply only on the
                // negative lanes would not, under -ftrapping-math).
                const float alpha = s.a;
                for (int64_t i = 0; i < len; ++i) {
                    const float v = cur[i], scaled = alpha * v;
                    cur[i] = v >= 0 ? v : scaled;
                }
                break;
            }
            case ChainOp::Max:
                binary_step(s, other, cur, len, max_step);
                break;
            case ChainOp::Min:
                binary_step(s, other, cur, len, min_step);
                break;
        }
        if (s.keep) {
            slot_of[k] = slots;
            std::memcpy(kept[slots++], cur, static_cast<size_t>(len) * sizeof(float));
        }
    }
}

}  // namespace

void run_elementwise_chain(const ExecOptions& options, std::span<const ChainStep> steps,
                           const float* x, float* y, int64_t n) {
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const int64_t block_work = kBlock * static_cast<int64_t>(std::max<size_t>(1, steps.size()));
    parallel_for(options, blocks, std::max<int64_t>(1, kParallelWork / block_work),
                 [&](int64_t b0, int64_t b1) {
                     for (int64_t b = b0; b < b1; ++b) {
                         const int64_t i0 = b * kBlock;
                         run_block(steps, x + i0, y + i0, std::min(kBlock, n - i0));
                     }
                 });
}

}  // namespace ep::rt
