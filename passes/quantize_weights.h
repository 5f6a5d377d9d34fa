// The quantize-weights pass (quantize_weights.cpp) seen from the streaming compressor
// (compressor/stream_compress.h): on a checkpoint with method rtn, run() only encodes
// tensors one by one with the reference RTN quantizer, so the compressor can take the
// pass's decisions and do that work itself while it writes the output, tensor by tensor.
// The decisions, plan lines, skip reasons and summary come from the pass's own code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/encoding.h"
#include "ir/ir.h"
#include "passes/pass.h"

namespace ep {

struct CheckpointQuantizePlan {
    struct Item {
        const Tensor* tensor;        // in the model planned on
        Encoding encoding;           // with its axis (1 for a checkpoint)
        int64_t rows = 0, cols = 0;  // the stored matrix (encoding.h)
        uint64_t old_bytes = 0, new_bytes = 0;
        std::string line;  // the plan's line: "[i/N] name [shape] f16 -> int4g32, ..."
    };
    std::vector<Item> items;  // in plan order
    // What run() returns once every item is encoded: rewrites, summary, skipped.
    PassResult result;
};

// The plan when `pass` is quantize-weights with method rtn and `model` has no nodes (a
// checkpoint); nullopt otherwise (the caller runs the pass as usual).
[[nodiscard]] std::optional<CheckpointQuantizePlan> checkpoint_quantize_plan(const Pass& pass,
                                                                             const Model& model);

}  // namespace ep
