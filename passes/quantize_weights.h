// The quantize-weights pass's streaming encoder: how its plan_streaming hook (pass.h)
// writes a tensor with RTN a chunk of rows at a time (quantize_weights_stream.cpp).
//
// RTN groups lie within a row, so encoding chunks of whole rows gives the bytes of the
// whole-tensor call (quantize_tensor_rtn): each chunk's f32/f16/bf16 elements are
// converted to float, encoded by quantize_rtn and written, and the chunk's source pages are
// released (MappedFile::release). int8c stores all codes before all row scales: the scales
// are kept, 4 bytes a row, and written after the codes. Resident memory: one chunk of
// floats, its encoded bytes and the row scales.
#pragma once

#include <cstddef>

#include "ir/encoding.h"
#include "ir/output_file.h"
#include "ir/tensor.h"

namespace ep {

// Floats per chunk of rows (at least one row per chunk): 4 MiB of floats.
inline constexpr size_t kStreamChunkFloats = size_t{1} << 20;

// Encodes `t` (f32, f16 or bf16; axis 1 of `e`: rows = shape[0]) with RTN into `out`, a
// chunk of rows of at most `chunk_floats` floats at a time (at least one row), releasing
// the source pages of a mapped tensor as it goes. The bytes are quantize_tensor_rtn's.
void write_rtn_chunked(const Tensor& t, const Encoding& e, ByteSink& out,
                       size_t chunk_floats = kStreamChunkFloats);

}  // namespace ep
