// saturate_round: the rounding and saturation of QuantizeLinear, shared by the reference
// ops (ops/quant_common.h) and the integer kernels (igemm.cpp, qdq_binary.cpp), which
// must give the same bytes.
#pragma once

#include <cstdint>

namespace ep::rt {

// round_half_even(v) + zp, saturated to [lo, hi]. v is clamped to [lo - zp, hi - zp]
// first (written so that NaN becomes lo - zp, as the ONNX reference's cast of NaN
// saturates low, and so that it compiles to maxps/minps), then rounded by adding and
// subtracting 1.5 * 2^23, which rounds ties to even in the default rounding mode for
// |v| < 2^22. Branch-free and always inlined, so loops vectorize.
__attribute__((always_inline)) inline int32_t saturate_round(float v, int32_t zp, int32_t lo,
                                                             int32_t hi) {
    const auto lo_f = static_cast<float>(lo - zp), hi_f = static_cast<float>(hi - zp);
    v = v > lo_f ? v : lo_f;
    v = v < hi_f ? v : hi_f;
    const float r = (v + 12582912.0f) - 12582912.0f;
    return static_cast<int32_t>(r) + zp;
}

}  // namespace ep::rt
