// Elementwise fusion: chains of float elementwise nodes whose intermediate values nothing
// else reads run as one block-by-block kernel (kernels/elementwise_chain.h), recognised
// once when the plan is compiled, like the QDQ patterns (qdq_fusion.h).
//
//   x -> Mul(s) -> Add(b) -> Add(3) -> Clip(0, 6) -> Mul(x', .) -> Div(6)   (x' = Add(b)'s output)
//   =>  ai.edgepack.fused.ElementwiseChain(x, s, b, 3, 0, 6) { body: the six nodes }
//
// A chain step is Add / Sub / Mul / Div with the chain's current value as one operand and,
// as the other, a one-element float32 initializer or Constant, the chain's input, or an
// earlier step's output; Relu; Sigmoid; HardSigmoid; Clip with one-element constant
// bounds (opset 11+) or its min / max attributes (before). Every intermediate value must be read
// only by later steps of the same chain and be no graph output and no subgraph capture; a chain has
// at least two steps. The fused node keeps the original nodes as its `body` subgraph: when a run
// finds other than float32 values, or a constant whose rank would change the output's shape, it
// runs the body as written. Otherwise it computes each step's float operation in order, so its
// bytes are the unfused nodes' bytes. Steps may also be LeakyRelu and two-input Max / Min.
//
// A chain whose input is the output of a float Conv that nothing else reads becomes that
// Conv's epilogue (one step is then enough), e.g. TF's leaky ReLU:
//   Conv(X, W, B) -> c; Mul(c, 0.1) -> s; Max(c, s) -> y
//   =>  ai.edgepack.fused.ConvActivation(X, W, B, 0.1) { Conv's attributes; body: the three nodes }
// The kernel runs the chain over each block of the Conv's output as it is produced
// (kernels/conv2d.h): the same bytes as the nodes as written.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/ir.h"
#include "runtime-check/ops/op_context.h"

namespace ep::rt {

struct ElementwiseFusion {
    std::vector<Node> nodes;  // the graph's nodes, fused chains replaced, in order
    std::unordered_set<std::string> removed_values;  // intermediates no node produces now
    size_t chains = 0, fused_nodes = 0;
    size_t conv_activations = 0;  // chains that became a Conv's epilogue
};

// Rewrites `nodes` (the main graph's, in topological order; subgraphs are left as they
// are). `graph` gives the initializers, outputs and the default-domain `opset`.
[[nodiscard]] ElementwiseFusion fuse_elementwise_chains(const Graph& graph, std::vector<Node> nodes,
                                                        int64_t opset);

// The kernel of ai.edgepack.fused.ElementwiseChain.
void op_elementwise_chain(OpContext& c);
// The kernel of ai.edgepack.fused.ConvActivation.
void op_conv_activation(OpContext& c);

}  // namespace ep::rt
