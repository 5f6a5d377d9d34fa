// A chain of float32 elementwise steps run block by block: each block of the input is
// loaded once, every step of the chain runs over it while it sits in L1, and the last
// step's result is stored once. The executor fuses chains of single-use elementwise nodes
// into one such kernel (elementwise_fusion.h), e.g. PP-OCR's
//   Mul(s) -> Add(b) -> Add(3) -> Clip(0, 6) -> Mul(x, .) -> Div(6) -> Mul(s') -> Add(b')
// which unfused reads and writes the whole tensor eight times.
//
// Each step computes exactly what the op's own kernel computes for an element (one float
// operation, rounded; the file is built with -ffp-contract=off so no step is merged into
// a fused multiply-add), so a chain gives the bits of the unfused nodes, for any block cut
// and any thread count.
#pragma once

#include <cstdint>
#include <span>

#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

enum class ChainOp : uint8_t {
    Add,          // cur + other (other + cur when other_first)
    Sub,          // cur - other (other - cur)
    Mul,          // cur * other (other * cur)
    Div,          // cur / other (other / cur)
    Relu,         // cur > 0 ? cur : 0
    Clip,         // min(max(cur, lo), hi): NaN passes through (op_clip)
    HardSigmoid,  // max(0, min(1, alpha * cur + beta))
    Sigmoid,      // sigmoid_f32 (vec_math.h)
    LeakyRelu,    // cur >= 0 ? cur : alpha * cur (alpha in `a`)
    Max,          // NaN when either side is NaN, else std::max(first, second) (op_max)
    Min,          // NaN when either side is NaN, else std::min(first, second) (op_min)
};

enum class ChainOperand : uint8_t {
    None,    // unary step
    Scalar,  // `scalar`
    Input,   // the chain's input, same element
    Saved,   // the output of an earlier step (`saved`), same element
};

struct ChainStep {
    ChainOp op = ChainOp::Relu;
    ChainOperand other = ChainOperand::None;
    bool other_first = false;
    float scalar = 0.0f;
    int saved = -1;     // ChainOperand::Saved: index of the step whose output is read
    float a = 0.0f;     // Clip: lo; HardSigmoid: alpha
    float b = 0.0f;     // Clip: hi; HardSigmoid: beta
    bool keep = false;  // a later step reads this step's output (ChainOperand::Saved)
};

// At most this many steps may be kept for later steps (`keep`).
inline constexpr int kChainMaxKept = 4;

// y[i] = the chain applied to x[i], for i in [0, n). y is either x itself (in place: a
// fused producer's epilogue, e.g. Conv's) or does not overlap x.
void run_elementwise_chain(const ExecOptions& options, std::span<const ChainStep> steps,
                           const float* x, float* y, int64_t n);

}  // namespace ep::rt
