// llama.cpp's block quantizers for the encodings that are ggml block types (encoding.h:
// int4gGm = Q4_1's form, q4_k, q6_k), transcribed operation by operation from ggml's
// reference quantizers (ggml/src/ggml-quants.c: quantize_row_q4_1_ref, make_qkx2_quants +
// quantize_row_q4_K_ref, make_qx_quants + quantize_row_q6_K_ref), so the bytes equal
// llama.cpp's own quantizer (llama_model_quantize without an importance matrix, which calls
// these). ggml compiles them for the x86-64 baseline (no fused multiply-add), as edgepack's
// ir/ is compiled; aarch64 builds pass -ffp-contract=off. Internal to ir/.
#pragma once

#include <cstdint>

#include "encoding.h"

namespace ep::detail {

// ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (|x| <= 4194303).
[[nodiscard]] int ggml_nearest_int(float x);

// True for the schemes whose RTN is a ggml reference quantizer (int4gGm, q4_k, q6_k).
[[nodiscard]] bool has_ggml_rtn(const Encoding& e);
// Blocks [0, nblocks) of one row piece of `len` valid floats (as RtnKernels::blocks); a block
// reaching past them is quantized as if the row went on with zeros.
void ggml_rtn_blocks(const Encoding& e, const float* x, int64_t len, int64_t nblocks, uint8_t* out);

// K-quant block access: sub-block `sub`'s parameters (QParams::scale = d * sc, q4_k's
// QParams::min = dmin * mn), element i's code (q4_k 0..15, q6_k -32..31), and all 256 codes
// written back with the block's scales kept.
[[nodiscard]] QParams kquant_params(const Encoding& e, const uint8_t* block, int64_t sub);
[[nodiscard]] int kquant_code(const Encoding& e, const uint8_t* block, int64_t i);
void kquant_set_codes(const Encoding& e, const int* codes, uint8_t* block);

}  // namespace ep::detail
