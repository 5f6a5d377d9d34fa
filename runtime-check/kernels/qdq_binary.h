// The row loop of the fused QDQ elementwise step (ops/ops_qdq.cpp):
//   y[j] = saturate(round_half_even((a[j] OP b[j]) / y_scale) + y_zp)
// over float operands already dequantized (a row of table lookups, or the float values),
// computed in the same f32 operations as QuantizeLinear after the float op, so the bytes
// are the unfused reference's. AVX-512, AVX2 and portable copies of one loop (the compiler
// vectorises each). The file is compiled with -ffp-contract=off: a multiply followed by an
// add must round twice, as the unfused ops do.
#pragma once

#include <cstdint>

namespace ep::rt {

enum class QdqBinaryOp { Add, Sub, Mul, Div };

// a, b: n floats (a step of 0 repeats element 0); y: n bytes, uint8 or int8.
void qdq_binary_row(QdqBinaryOp op, const float* a, int64_t a_step, const float* b, int64_t b_step,
                    float y_scale, int32_t y_zp, bool y_signed, uint8_t* y, int64_t n);

// DequantizeLinear of n codes (uint8, or int8 when is_signed): float(code - zp) * scale.
void dequantize_row(const uint8_t* codes, bool is_signed, int32_t zp, float scale, float* dst,
                    int64_t n);

// y[j] = lut[x[j]] for j < n (AVX-512 VBMI: 64 bytes per two vpermi2b; else a plain loop).
void lookup_row(const uint8_t* lut, const uint8_t* x, uint8_t* y, int64_t n);

}  // namespace ep::rt
