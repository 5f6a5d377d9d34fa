// ggml's block types decoded to floats: the reference decoders of the GGUF reader and of
// the encodings that are ggml blocks (encoding.h: q4_k, q6_k, q5_0, ...). Each follows the
// `gguf` Python package's gguf/quants.py (dequantize_blocks) operation by operation, in
// float32, so they agree with it bit for bit (no fused multiply-adds: x86-64's baseline has
// none, and aarch64 builds pass -ffp-contract=off). Block layouts are ggml-common.h's; each
// decoder's comment (ggml_blocks.cpp) gives the formula and its bits per weight.
#pragma once

#include <cstddef>

namespace ep::ggml {

// Decodes n blocks at p (n * the type's block bytes) into n * block-size floats.
void decode_f32(const std::byte* p, size_t n, float* out);
void decode_f16(const std::byte* p, size_t n, float* out);
void decode_bf16(const std::byte* p, size_t n, float* out);
void decode_q4_0(const std::byte* p, size_t n, float* out);
void decode_q4_1(const std::byte* p, size_t n, float* out);
void decode_q5_0(const std::byte* p, size_t n, float* out);
void decode_q5_1(const std::byte* p, size_t n, float* out);
void decode_q8_0(const std::byte* p, size_t n, float* out);
void decode_q2_k(const std::byte* p, size_t n, float* out);
void decode_q3_k(const std::byte* p, size_t n, float* out);
void decode_q4_k(const std::byte* p, size_t n, float* out);
void decode_q5_k(const std::byte* p, size_t n, float* out);
void decode_q6_k(const std::byte* p, size_t n, float* out);

}  // namespace ep::ggml
