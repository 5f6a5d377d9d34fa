#include "runtime-check/kernels/qdq_binary.h"

#include <string_view>
#include <type_traits>

#include "runtime-check/kernels/saturate_round.h"
#include "runtime-check/kernels/simd.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define EP_QB_X86 1
#define EP_QB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2")))
#define EP_QB_AVX2 __attribute__((target("avx2")))
#endif

namespace ep::rt {
namespace {

template <QdqBinaryOp OP>
__attribute__((always_inline)) inline float apply(float a, float b) {
    if constexpr (OP == QdqBinaryOp::Add) return a + b;
    if constexpr (OP == QdqBinaryOp::Sub) return a - b;
    if constexpr (OP == QdqBinaryOp::Mul) return a * b;
    return a / b;
}

template <QdqBinaryOp OP, typename T>
__attribute__((always_inline)) inline void row(const float* a, int64_t as, const float* b,
                                               int64_t bs, float ys, int32_t zp, T* y, int64_t n) {
    constexpr int32_t lo = static_cast<T>(-1) < 0 ? -128 : 0;
    constexpr int32_t hi = static_cast<T>(-1) < 0 ? 127 : 255;
    if (as == 0) {
        const float av = a[0];
#pragma omp simd
        for (int64_t j = 0; j < n; ++j)
            y[j] = static_cast<T>(saturate_round(apply<OP>(av, b[j]) / ys, zp, lo, hi));
    } else if (bs == 0) {
        const float bv = b[0];
#pragma omp simd
        for (int64_t j = 0; j < n; ++j)
            y[j] = static_cast<T>(saturate_round(apply<OP>(a[j], bv) / ys, zp, lo, hi));
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j)
            y[j] = static_cast<T>(saturate_round(apply<OP>(a[j], b[j]) / ys, zp, lo, hi));
    }
}

template <typename T>
__attribute__((always_inline)) inline void typed_row(QdqBinaryOp op, const float* a, int64_t as,
                                                     const float* b, int64_t bs, float ys,
                                                     int32_t zp, T* y, int64_t n) {
    switch (op) {
        case QdqBinaryOp::Add:
            return row<QdqBinaryOp::Add, T>(a, as, b, bs, ys, zp, y, n);
        case QdqBinaryOp::Sub:
            return row<QdqBinaryOp::Sub, T>(a, as, b, bs, ys, zp, y, n);
        case QdqBinaryOp::Mul:
            return row<QdqBinaryOp::Mul, T>(a, as, b, bs, ys, zp, y, n);
        case QdqBinaryOp::Div:
            return row<QdqBinaryOp::Div, T>(a, as, b, bs, ys, zp, y, n);
    }
}

__attribute__((always_inline)) inline void any_row(QdqBinaryOp op, const float* a, int64_t as,
                                                   const float* b, int64_t bs, float ys, int32_t zp,
                                                   bool y_signed, uint8_t* y, int64_t n) {
    if (y_signed)
        typed_row(op, a, as, b, bs, ys, zp, reinterpret_cast<int8_t*>(y), n);
    else
        typed_row(op, a, as, b, bs, ys, zp, y, n);
}

// DequantizeLinear's f32 value of each code: float(code - zp) * scale.
__attribute__((always_inline)) inline void gather(const uint8_t* codes, bool is_signed, int32_t zp,
                                                  float scale, float* dst, int64_t n) {
    if (is_signed) {
        const auto* c = reinterpret_cast<const int8_t*>(codes);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j)
            dst[j] = static_cast<float>(static_cast<int32_t>(c[j]) - zp) * scale;
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j)
            dst[j] = static_cast<float>(static_cast<int32_t>(codes[j]) - zp) * scale;
    }
}

void row_portable(QdqBinaryOp op, const float* a, int64_t as, const float* b, int64_t bs, float ys,
                  int32_t zp, bool y_signed, uint8_t* y, int64_t n) {
    any_row(op, a, as, b, bs, ys, zp, y_signed, y, n);
}
void gather_portable(const uint8_t* codes, bool is_signed, int32_t zp, float scale, float* dst,
                     int64_t n) {
    gather(codes, is_signed, zp, scale, dst, n);
}
#ifdef EP_QB_X86
EP_QB_AVX512 void row_avx512(QdqBinaryOp op, const float* a, int64_t as, const float* b, int64_t bs,
                             float ys, int32_t zp, bool y_signed, uint8_t* y, int64_t n) {
    any_row(op, a, as, b, bs, ys, zp, y_signed, y, n);
}
EP_QB_AVX512 void gather_avx512(const uint8_t* codes, bool is_signed, int32_t zp, float scale,
                                float* dst, int64_t n) {
    gather(codes, is_signed, zp, scale, dst, n);
}
EP_QB_AVX2 void row_avx2(QdqBinaryOp op, const float* a, int64_t as, const float* b, int64_t bs,
                         float ys, int32_t zp, bool y_signed, uint8_t* y, int64_t n) {
    any_row(op, a, as, b, bs, ys, zp, y_signed, y, n);
}
EP_QB_AVX2 void gather_avx2(const uint8_t* codes, bool is_signed, int32_t zp, float scale,
                            float* dst, int64_t n) {
    gather(codes, is_signed, zp, scale, dst, n);
}
#endif

void lookup_portable(const uint8_t* lut, const uint8_t* x, uint8_t* y, int64_t n) {
    for (int64_t j = 0; j < n; ++j) y[j] = lut[x[j]];
}
#ifdef EP_QB_X86
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void lookup_vbmi(const uint8_t* lut,
                                                                        const uint8_t* x,
                                                                        uint8_t* y, int64_t n) {
    const __m512i t0 = _mm512_loadu_si512(lut), t1 = _mm512_loadu_si512(lut + 64);
    const __m512i t2 = _mm512_loadu_si512(lut + 128), t3 = _mm512_loadu_si512(lut + 192);
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        const __m512i idx = _mm512_loadu_si512(x + j);
        const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);  // bit 6 picks t0 / t1
        const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);
        const __mmask64 high = _mm512_movepi8_mask(idx);  // bit 7
        _mm512_storeu_si512(y + j, _mm512_mask_blend_epi8(high, lo, hi));
    }
    lookup_portable(lut, x + j, y + j, n - j);
}
#endif

enum class Isa { Portable, Avx2, Avx512 };

Isa isa() {
    static const Isa chosen = [] {
        const std::string_view table = simd_kernels().name;
        if (table == "avx512") return Isa::Avx512;
        if (table == "avx2") return Isa::Avx2;
        return Isa::Portable;
    }();
    return chosen;
}

bool has_vbmi() {
#ifdef EP_QB_X86
    static const bool yes = isa() == Isa::Avx512 && __builtin_cpu_supports("avx512vbmi");
    return yes;
#else
    return false;
#endif
}

}  // namespace

void lookup_row(const uint8_t* lut, const uint8_t* x, uint8_t* y, int64_t n) {
#ifdef EP_QB_X86
    if (has_vbmi()) return lookup_vbmi(lut, x, y, n);
#endif
    lookup_portable(lut, x, y, n);
}

void qdq_binary_row(QdqBinaryOp op, const float* a, int64_t a_step, const float* b, int64_t b_step,
                    float y_scale, int32_t y_zp, bool y_signed, uint8_t* y, int64_t n) {
#ifdef EP_QB_X86
    if (isa() == Isa::Avx512)
        return row_avx512(op, a, a_step, b, b_step, y_scale, y_zp, y_signed, y, n);
    if (isa() == Isa::Avx2)
        return row_avx2(op, a, a_step, b, b_step, y_scale, y_zp, y_signed, y, n);
#endif
    row_portable(op, a, a_step, b, b_step, y_scale, y_zp, y_signed, y, n);
}

void dequantize_row(const uint8_t* codes, bool is_signed, int32_t zp, float scale, float* dst,
                    int64_t n) {
#ifdef EP_QB_X86
    if (isa() == Isa::Avx512) return gather_avx512(codes, is_signed, zp, scale, dst, n);
    if (isa() == Isa::Avx2) return gather_avx2(codes, is_signed, zp, scale, dst, n);
#endif
    gather_portable(codes, is_signed, zp, scale, dst, n);
}

}  // namespace ep::rt
