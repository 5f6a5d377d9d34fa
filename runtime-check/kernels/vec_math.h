// Vectorized float32 math over arrays, for the elementwise kernels and Softmax.
//   exp_f32:     y = exp(x) (Eigen's packet exp, a few ulp); 0 where x < -87 (exp(-87)
//                = 1.6e-38, next to the subnormal range), +inf above 88.72, NaN stays NaN.
//                y may be x.
//   sigmoid_f32: y = 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) below (no
//                overflow on either side).
//   tanh_f32:    y = tanh(x) (Eigen's packet tanh, a few ulp; +-1 once |x| > 7.9). y may be x.
// Pure functions of each element: results do not depend on how the array is split.
#pragma once

#include <cstdint>

namespace ep::rt {

void exp_f32(const float* x, float* y, int64_t n);
void sigmoid_f32(const float* x, float* y, int64_t n);
void tanh_f32(const float* x, float* y, int64_t n);

}  // namespace ep::rt
