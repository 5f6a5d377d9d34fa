// safetensors read and write, byte-exact to the specification:
//   8 bytes: N, little-endian u64, the header's length
//   N bytes: a JSON object {"TENSOR": {"dtype": "F32", "shape": [..],
//            "data_offsets": [BEGIN, END]}, ..., "__metadata__": {"k": "v"}}
//   the rest: the data buffer; offsets are relative to its start.
// The reader memory-maps the file and returns tensors as views (in data-offset order);
// it rejects headers over 100 MB, offsets out of range, overlapping or leaving gaps,
// duplicate keys, unknown dtypes, and dtype x shape that disagrees with the byte range.
// A checkpoint is a Model whose graph holds only initializers, and
// whose metadata is __metadata__.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "formats/streamed_tensor.h"
#include "ir/ir.h"

namespace ep {

[[nodiscard]] Model read_safetensors(const std::filesystem::path& path);

// Writes model.graph.initializers and model.metadata (as __metadata__, keys sorted)
// in the layout the Python package writes: tensors sorted by dtype (the Rust crate's
// enum order, descending), then by name. Throws InputError naming the tensor for string
// tensors and dtypes safetensors lacks. Atomic; data of mapped views is streamed.
// `streamed` (streamed_tensor.h): tensors whose bytes a callback produces as the file is
// written (the header comes first, so their sizes come from the replacements' headers).
void write_safetensors(const Model& model, const std::filesystem::path& path,
                       const StreamedTensors* streamed = nullptr);

}  // namespace ep
