// Kernels that read quantized weights (compressor/ir/encoding.h) without dequantizing the
// whole tensor, and the rule the executor uses to decide which encoded initializers a
// kernel reads natively.
//
// An encoded initializer read by a node whose kernel has no native support for it is
// dequantized once when the plan is compiled (executor.cpp), so every other kernel only
// ever sees plain float tensors.
#pragma once

#include <cstddef>

#include "compressor/ir/ir.h"

namespace ep::rt {

// True when the kernel of `node` reads input `input` directly in its encoded form
// (`weight` is that encoded initializer); false means the executor hands the kernel a
// dequantized copy instead.
[[nodiscard]] bool kernel_reads_encoding(const Node& node, size_t input, const Tensor& weight);

}  // namespace ep::rt
