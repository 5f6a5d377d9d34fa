// Raising a ModelProto's default-domain opset with the ONNX library's own version converter
// (onnx/version_converter/convert.h, libonnx), for read_onnx's min_opset (onnx_io.h).
//
// What the converter is given, and why:
//   - Initializers over 64 bytes travel as stubs (name, dtype, dims, no data) and get their
//     data back by name afterwards: the converter copies every tensor into its own IR, and
//     no adapter raising an opset reads a weight (the ones that read an input's values read
//     small shape/scale tensors).
//   - ONNX shape inference runs first (adapters such as Softmax 12 -> 13 need the input's
//     rank); the inferred value_info is dropped again afterwards.
//   - Softmax, LogSoftmax and Hardmax below opset 13 normalise over the flattened dimensions
//     from `axis` on; from 13 over `axis` alone. Where the input's rank is unknown (the
//     converter's Softmax adapter then fails) or the axis is not the last one (ONNX 1.12
//     registers Hardmax 12 -> 13 as compatible, which it is not), the node is rewritten
//     before converting as Flatten(axis) -> op(axis = 1) -> Reshape(Shape(x)), which means
//     the same at every opset.
// A node of another domain is an InputError naming it (ONNX 1.12's converter fails on any).
// A conversion the converter cannot make is an InputError naming the node (found by
// converting each node alone) and both opsets.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>

namespace ep {

// The default-domain ("" or "ai.onnx") opset of `proto`; 0 when it imports none.
[[nodiscard]] int64_t default_opset(const onnx::ModelProto& proto);

// Raises `proto` to `target` when its default opset is below it. `what` names the model in
// messages.
void raise_default_opset(onnx::ModelProto& proto, int64_t target, const std::string& what);

}  // namespace ep
