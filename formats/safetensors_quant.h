// Quantized safetensors: a checkpoint whose tensors carry encodings (encoding.h), stored so
// that any safetensors reader still loads the file.
//
// Each encoded tensor is written as a U8 tensor of shape [encoded bytes] holding exactly
// the encoded bytes, and one `__metadata__` entry records what it is:
//   key   "edgepack.encoding/<tensor name>"
//   value compact JSON {"axis":0,"encoding":"int4g32","shape":[K,N]} (logical shape;
//         the logical dtype is f32)
// Reading turns each such U8 tensor back into the encoded tensor (same bytes, still a view
// of the mapping) and drops the entries from the metadata, so load -> save gives the same
// file byte for byte. Entries that do not match their tensor (missing, not U8 1-D, size not
// the encoding's size for the shape) are InputErrors naming the tensor.
#pragma once

#include <string>

#include "formats/streamed_tensor.h"
#include "ir/ir.h"

namespace ep {

inline constexpr const char* kSafetensorsEncodingPrefix = "edgepack.encoding/";

// A copy of `model` with encoded initializers stored as U8 plus metadata entries (tensor
// bytes are shared, not copied). Models without encoded tensors come back unchanged.
[[nodiscard]] Model encode_for_safetensors(const Model& model);
// The same in place, for a streaming write (streamed_tensor.h): tensors of `model` that
// `streamed` replaces by encoded ones get their metadata entries here and their
// replacements' headers become the U8 form, so write_safetensors(model, path, &streamed)
// writes the file save_model writes for the model with the replacements in place.
void encode_for_safetensors_in_place(Model& model, StreamedTensors& streamed);
// Undoes encode_for_safetensors on a model read from safetensors; `what` names the file.
void decode_safetensors_encodings(Model& model);

}  // namespace ep
