// The cost model behind thread use: whether a node is worth splitting over threads.
//
// When the plan is compiled, every node gets a cost formula by its op (node_cost_formula);
// when the node is about to run, the formula turns the shapes of its inputs into an
// estimate of its work in CPU cycles (node_cycles). A node estimated below
// kParallelNodeCycles runs on the calling thread alone: its kernels see
// ExecOptions::threads == 1. Splitting such a node over two threads saves at most half of
// a few microseconds, and handing out the chunks, the helper's cache misses on the inputs
// and outputs and the join cost about that much. ONNX Runtime decides the same way: its
// ThreadPool::TryParallelFor runs a loop serially when Eigen's TensorCostModel gives it
// one thread, and MLAS gives a GEMM one more thread per 64K multiplies.
//
// Only shapes and attributes decide, never timings, so the choice is the same on every
// run and machine; results are bit-identical for any thread count in any case
// (parallel.h). An op with no formula (control flow, attention, recurrent, ops whose
// output is much larger than their inputs) keeps its kernels' own splitting rules.
#pragma once

#include <cstdint>
#include <span>

#include "ir/ir.h"

namespace ep::rt {

// Below this many estimated cycles (~10 us at 3 GHz) a node runs on one thread.
inline constexpr double kParallelNodeCycles = 32768;

enum class CostFormula : uint8_t {
    None,            // no estimate: the kernels decide
    Cheap,           // elementwise arithmetic, casts, comparisons: ~2 cycles per element
    Transcendental,  // exp / log / tanh / erf, softmax, normalizations: ~10 per element
    Movement,        // transpose, concat, slice, pad, reductions: ~1 per input element
    Pool,            // max / average pooling: input elements x window / stride
    MatMul,          // A [..., M, K] x B [..., K, N]: M K N multiply-adds
    Gemm,            // Gemm / QGemm with transA / transB
    MatMulNBits,     // A [..., K] x the N of the attribute
    Conv,            // X [N, C, spatial] with W [M, C / group, kernel]
    ConvTranspose,   // X [N, C, spatial] with W [C, M / group, kernel]
};

[[nodiscard]] CostFormula node_cost_formula(const Node& node);

// The estimate for one run of `node` on these inputs (null: an absent optional input);
// -1 when the formula is None or an input it needs is missing.
[[nodiscard]] double node_cycles(CostFormula formula, const Node& node,
                                 std::span<const Tensor* const> inputs);

// True when the node should run on one thread (an estimate below kParallelNodeCycles).
[[nodiscard]] inline bool runs_serially(CostFormula formula, const Node& node,
                                        std::span<const Tensor* const> inputs) {
    const double cycles = node_cycles(formula, node, inputs);
    return cycles >= 0 && cycles < kParallelNodeCycles;
}

}  // namespace ep::rt
