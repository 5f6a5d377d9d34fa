// Quantized operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
// MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv, and ONNX Runtime's
// com.microsoft MatMulNBits.
//
//   QuantizeLinear    y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear  y = (x - zero_point) * scale                 (in f32, stored as y's dtype)
//   DynamicQuantize   scale = (max(0, max x) - min(0, min x)) / 255 (1 when that range is 0,
//                     as ONNX Runtime does; the ONNX reference gives 1/255 there)
//                     zero_point = round_half_even(clamp(-min(0, min x) / scale, 0, 255))
//   *Integer          y[i, j] = sum_k (a[i, k] - a_zp[i]) * (b[k, j] - b_zp[j])   in int32
//                     (wrap-around: the ONNX contract lets only the 32-bit accumulation overflow)
//   QLinear*          y = saturate(round_half_even(acc * (a_scale * b_scale / y_scale)) + y_zp),
//                     with the multiplier and product in f32 as ONNX Runtime computes them
//   MatMulNBits       Y = A * dequant(B)^T + bias, B uint8 [N, k_blocks, blob] holding
//                     `block_size` codes of `bits` (2, 4 or 8) along K per block, low bits
//                     first; W[n, k] = (q - zp) * scale of block g_idx[k] (default k /
//                     block_size). Zero points: packed uint8 [N, ceil(k_blocks * bits / 8)],
//                     float [N, k_blocks], or absent = 2^(bits - 1). Computed in f32 for
//                     every accuracy_level (ONNX Runtime's level 0).
//
// The integer products run as exact int16 dot products (8-bit values minus their zero
// points fit int16; no partial sum can overflow before it is widened), so they do not
// depend on summation order.
//
// Scales and zero points are per tensor (one element), per axis (1-D along `axis`), or
// blocked (opset 21 `block_size`: same rank as x, ceil(x.shape[axis] / block_size) along
// axis). Quantized element types: int8, uint8, int16, uint16, int4 and uint4 (packed two a
// byte, low nibble first); int32 for DequantizeLinear. Float8 types fail with a message.
//
// Threads split work so that each output element is computed by one thread, in a fixed
// order: results are bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <utility>

#include "ir/checked.h"
#include "runtime-check/conv_shape.h"
#include "runtime-check/elementwise.h"
#include "runtime-check/gemm.h"
#include "runtime-check/ops.h"

namespace ep::rt {
namespace {

// ---- quantized element types -------------------------------------------------------

// Load/store of one quantized element type; 4-bit types read and write nibbles.
template <DType DT>
struct Q;

template <>
struct Q<DType::U8> {
    using storage = uint8_t;  // the element
    static constexpr int bits = 8;
    static constexpr int32_t lo = 0, hi = 255;
    static int32_t load(const std::byte* p, int64_t i) { return static_cast<uint8_t>(p[i]); }
    static void store(std::byte* p, int64_t i, int32_t v) { p[i] = static_cast<std::byte>(v); }
};
template <>
struct Q<DType::I8> {
    using storage = int8_t;  // the element
    static constexpr int bits = 8;
    static constexpr int32_t lo = -128, hi = 127;
    static int32_t load(const std::byte* p, int64_t i) { return static_cast<int8_t>(p[i]); }
    static void store(std::byte* p, int64_t i, int32_t v) { p[i] = static_cast<std::byte>(v); }
};
template <>
struct Q<DType::U16> {
    using storage = uint16_t;  // the element
    static constexpr int bits = 16;
    static constexpr int32_t lo = 0, hi = 65535;
    static int32_t load(const std::byte* p, int64_t i) {
        uint16_t v;
        std::memcpy(&v, p + i * 2, 2);
        return v;
    }
    static void store(std::byte* p, int64_t i, int32_t v) {
        auto u = static_cast<uint16_t>(v);
        std::memcpy(p + i * 2, &u, 2);
    }
};
template <>
struct Q<DType::I16> {
    using storage = int16_t;  // the element
    static constexpr int bits = 16;
    static constexpr int32_t lo = -32768, hi = 32767;
    static int32_t load(const std::byte* p, int64_t i) {
        int16_t v;
        std::memcpy(&v, p + i * 2, 2);
        return v;
    }
    static void store(std::byte* p, int64_t i, int32_t v) {
        auto u = static_cast<int16_t>(v);
        std::memcpy(p + i * 2, &u, 2);
    }
};
template <>
struct Q<DType::U4> {
    using storage = int8_t;  // one element unpacked
    static constexpr int bits = 4;
    static constexpr int32_t lo = 0, hi = 15;
    static int32_t load(const std::byte* p, int64_t i) {
        return (static_cast<uint8_t>(p[i >> 1]) >> ((i & 1) * 4)) & 0xF;
    }
    // Read-modify-write of the shared byte: callers split work on even indices.
    static void store(std::byte* p, int64_t i, int32_t v) {
        auto b = static_cast<uint8_t>(p[i >> 1]);
        int shift = static_cast<int>(i & 1) * 4;
        b = static_cast<uint8_t>((b & ~(0xF << shift)) | ((v & 0xF) << shift));
        p[i >> 1] = static_cast<std::byte>(b);
    }
};
template <>
struct Q<DType::I4> {
    using storage = int8_t;  // one element unpacked
    static constexpr int bits = 4;
    static constexpr int32_t lo = -8, hi = 7;
    static int32_t load(const std::byte* p, int64_t i) {
        return (Q<DType::U4>::load(p, i) ^ 8) - 8;
    }
    static void store(std::byte* p, int64_t i, int32_t v) { Q<DType::U4>::store(p, i, v); }
};
template <>
struct Q<DType::I32> {
    using storage = int32_t;  // the element
    static constexpr int bits = 32;
    static constexpr int32_t lo = std::numeric_limits<int32_t>::min();
    static constexpr int32_t hi = std::numeric_limits<int32_t>::max();
    static int32_t load(const std::byte* p, int64_t i) {
        int32_t v;
        std::memcpy(&v, p + i * 4, 4);
        return v;
    }
    static void store(std::byte* p, int64_t i, int32_t v) { std::memcpy(p + i * 4, &v, 4); }
};

bool is_float8(DType dt) {
    return dt == DType::F8E4M3FN || dt == DType::F8E4M3FNUZ || dt == DType::F8E5M2 ||
           dt == DType::F8E5M2FNUZ;
}

// Calls fn(Q<dt>{}) for a quantized integer type (int32 only when allowed).
template <typename Fn>
void dispatch_q(const OpContext& c, DType dt, bool allow_i32, const char* what, Fn&& fn) {
    switch (dt) {
        case DType::U8:
            return fn(Q<DType::U8>{});
        case DType::I8:
            return fn(Q<DType::I8>{});
        case DType::U16:
            return fn(Q<DType::U16>{});
        case DType::I16:
            return fn(Q<DType::I16>{});
        case DType::U4:
            return fn(Q<DType::U4>{});
        case DType::I4:
            return fn(Q<DType::I4>{});
        case DType::I32:
            if (allow_i32) return fn(Q<DType::I32>{});
            break;
        default:
            break;
    }
    if (is_float8(dt))
        c.fail(cat(what, " of type ", dtype_name(dt),
                   ": float8 quantization is not supported by this runtime"));
    c.fail(cat(what, " has type ", dtype_name(dt), "; expected one of uint8, int8, uint16, int16, ",
               "uint4, int4", allow_i32 ? ", int32" : ""));
}

// round_half_even(v) + zp, saturated to [lo, hi]. v is clamped to [lo - zp, hi - zp]
// first (written so that NaN becomes lo - zp, as the ONNX reference's cast of NaN
// saturates low, and so that it compiles to maxps/minps), then rounded by adding and
// subtracting 1.5 * 2^23, which rounds ties to even in the default rounding mode for
// |v| < 2^22. Branch-free, so loops vectorize.
inline int32_t saturate_round(float v, int32_t zp, int32_t lo, int32_t hi) {
    const auto lo_f = static_cast<float>(lo - zp), hi_f = static_cast<float>(hi - zp);
    v = v > lo_f ? v : lo_f;
    v = v < hi_f ? v : hi_f;
    const float r = (v + 12582912.0f) - 12582912.0f;
    return static_cast<int32_t>(r) + zp;
}

// Every element of an integer (quantized) tensor as int32.
std::vector<int32_t> read_q_values(const OpContext& c, const Tensor& t, const char* what) {
    std::vector<int32_t> v(static_cast<size_t>(t.element_count()));
    dispatch_q(c, t.dtype, true, what, [&](auto q) {
        const std::byte* p = t.data.bytes().data();
        for (size_t i = 0; i < v.size(); ++i) v[i] = q.load(p, static_cast<int64_t>(i));
    });
    return v;
}

// Every element of a float tensor (scales) as float.
std::vector<float> read_float_values(const OpContext& c, const Tensor& t, const char* what) {
    if (!is_float(t.dtype))
        c.fail(cat(what, " '", t.name, "' must be float, found ", dtype_name(t.dtype)));
    std::vector<float> v(static_cast<size_t>(t.element_count()));
    const std::byte* p = t.data.bytes().data();
    for (size_t i = 0; i < v.size(); ++i) v[i] = load_float(t.dtype, p, static_cast<int64_t>(i));
    return v;
}

void check_bytes(const OpContext& c, const Tensor& t, const char* what) {
    if (t.dtype == DType::String) c.fail(cat(what, " must not be a string tensor"));
    auto bytes = storage_bytes(t.dtype, static_cast<uint64_t>(t.element_count()));
    if (!bytes || *bytes != t.data.size())
        c.fail(cat(what, " '", t.name, "' holds ", t.data.size(), " bytes, ", dtype_name(t.dtype),
                   " ", shape_string(t.shape), " needs ", bytes ? *bytes : 0));
}

// ---- scale / zero-point layout over x -------------------------------------------

// x seen as [outer, dim, inner] around the quantization axis; a parameter (scale or
// zero point) is one value, one per index along the axis, or one per block along it.
struct QuantLayout {
    int64_t outer = 1, dim = 1, inner = 1;
    int64_t block = 0;   // > 0: blocked
    int64_t blocks = 1;  // blocks along the axis (blocked only)
    bool per_tensor = true;
    int64_t params = 1;  // number of scale values

    [[nodiscard]] int64_t param_index(int64_t o, int64_t d, int64_t i) const {
        if (per_tensor) return 0;
        if (block == 0) return d;
        return (o * blocks + d / block) * inner + i;
    }
};

QuantLayout quant_layout(const OpContext& c, const Tensor& x, const Tensor& scale,
                         const Tensor* zero_point) {
    QuantLayout l;
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t block = c.node.attr_int("block_size", 0);
    if (block < 0) c.fail(cat("block_size ", block, " must not be negative"));
    if (zero_point && zero_point->shape != scale.shape &&
        !(zero_point->element_count() == 1 && scale.element_count() == 1))
        c.fail(cat("zero point ", shape_string(zero_point->shape), " and scale ",
                   shape_string(scale.shape), " must have the same shape"));
    l.inner = x.element_count();
    if (scale.element_count() == 1) return l;  // per tensor
    l.per_tensor = false;
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 1), rank);
    l.outer = 1;
    l.inner = 1;
    for (int64_t d = 0; d < axis; ++d) l.outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) l.inner *= x.shape[static_cast<size_t>(d)];
    l.dim = x.shape[static_cast<size_t>(axis)];
    if (block == 0) {
        if (scale.shape.size() != 1 || scale.shape[0] != l.dim)
            c.fail(cat("per-axis scale must be 1-D with ", l.dim, " elements (x ",
                       shape_string(x.shape), ", axis ", axis, "), found ",
                       shape_string(scale.shape)));
        l.params = l.dim;
        return l;
    }
    l.block = block;
    l.blocks = (l.dim + block - 1) / block;
    std::vector<int64_t> want = x.shape;
    want[static_cast<size_t>(axis)] = l.blocks;
    if (scale.shape != want)
        c.fail(cat("blocked scale must have shape ", shape_string(want), " (x ",
                   shape_string(x.shape), ", axis ", axis, ", block_size ", block, "), found ",
                   shape_string(scale.shape)));
    l.params = scale.element_count();
    return l;
}

// Calls fn(i, len, p, stride) for runs of x: elements [i, i + len) use the parameters
// p, p + stride, p + 2 * stride, ... (stride 0: one parameter for the whole run). Work is
// split over threads by element ranges; each element is visited once.
template <typename Fn>
void for_each_segment(const ExecOptions& options, const QuantLayout& l, int64_t count, Fn&& fn) {
    if (count == 0) return;
    parallel_for(options, count, 16384, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1;) {
            const int64_t in = i % l.inner, row = i / l.inner;
            const int64_t d = row % l.dim, o = row / l.dim;
            int64_t len = std::min(i1 - i, l.inner - in), stride = 0;
            if (!l.per_tensor && l.inner == 1) {
                // The parameter changes along the axis itself: per axis every element,
                // blocked every `block` elements.
                if (l.block == 0) {
                    len = std::min(i1 - i, l.dim - d);
                    stride = 1;
                } else {
                    len = std::min({i1 - i, l.block - d % l.block, l.dim - d});
                }
            } else if (l.block > 0) {
                stride = 1;  // blocked on an outer axis: parameters run along the inner axes
            }
            fn(i, len, l.param_index(o, d, in), stride);
            i += len;
        }
    });
}

// Packs one int8 per element into 4-bit pairs, low nibble first.
void pack_nibbles(const ExecOptions& options, const std::vector<int8_t>& v, std::byte* out) {
    const auto n = static_cast<int64_t>(v.size());
    parallel_for(options, (n + 1) / 2, 16384, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            int lo = v[static_cast<size_t>(2 * b)] & 0xF;
            int hi = 2 * b + 1 < n ? v[static_cast<size_t>(2 * b + 1)] & 0xF : 0;
            out[b] = static_cast<std::byte>(lo | (hi << 4));
        }
    });
}

DType quantize_output_dtype(const OpContext& c) {
    int64_t attr = c.node.attr_int("output_dtype", 0);
    std::optional<DType> from_attr;
    if (attr != 0) {
        from_attr = dtype_from_onnx(static_cast<int>(attr));
        if (!from_attr) c.fail(cat("output_dtype ", attr, " is not a known element type"));
    }
    if (c.has_input(2)) {
        DType zp = c.inputs[2]->dtype;
        if (from_attr && *from_attr != zp)
            c.fail(cat("output_dtype ", dtype_name(*from_attr), " differs from the zero point's ",
                       dtype_name(zp)));
        return zp;
    }
    return from_attr.value_or(DType::U8);
}

}  // namespace

void op_quantize_linear(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& scale = c.input(1);
    const Tensor* zp = c.has_input(2) ? c.inputs[2] : nullptr;
    if (!is_float(x.dtype) && x.dtype != DType::I32)
        c.fail(cat("x must be float or int32, found ", dtype_name(x.dtype)));
    check_bytes(c, x, "x");
    check_bytes(c, scale, "y_scale");
    if (c.opset < 13 && scale.element_count() != 1)
        c.fail(cat("y_scale must be a scalar before opset 13, found ", shape_string(scale.shape)));
    DType out_dt = quantize_output_dtype(c);
    QuantLayout l = quant_layout(c, x, scale, zp);
    std::vector<float> scales = read_float_values(c, scale, "y_scale");
    std::vector<int32_t> zps(static_cast<size_t>(l.params), 0);
    if (zp) {
        check_bytes(c, *zp, "y_zero_point");
        zps = read_q_values(c, *zp, "y_zero_point");
    }
    Tensor y = make_tensor(out_dt, x.shape);
    const int64_t count = x.element_count();
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    std::vector<int8_t> nibbles;  // 4-bit outputs: one int8 per element, packed at the end
    dispatch_q(c, out_dt, false, "output", [&](auto q) {
        using QT = decltype(q);
        using T = typename QT::storage;
        T* yv = nullptr;
        if constexpr (QT::bits == 4) {
            nibbles.resize(static_cast<size_t>(count));
            yv = nibbles.data();
        } else {
            yv = reinterpret_cast<T*>(out);
        }
        // x / scale in f32 (as ONNX Runtime and the ONNX reference do); int32 x in double.
        auto run = [&](auto value_of) {
            for_each_segment(
                c.options, l, count, [&](int64_t i, int64_t len, int64_t p, int64_t stride) {
                    const float* sp = scales.data() + p;
                    const int32_t* zpp = zps.data() + p;
                    T* yo = yv + i;
                    if (stride == 0) {
                        const float sv = *sp;
                        const int32_t z = *zpp;
#pragma omp simd
                        for (int64_t t = 0; t < len; ++t)
                            yo[t] = static_cast<T>(
                                saturate_round(value_of(i + t, sv), z, QT::lo, QT::hi));
                    } else {
#pragma omp simd
                        for (int64_t t = 0; t < len; ++t)
                            yo[t] = static_cast<T>(
                                saturate_round(value_of(i + t, sp[t]), zpp[t], QT::lo, QT::hi));
                    }
                });
        };
        if (x.dtype == DType::F32) {
            const float* xf = x.values<float>().data();
            for_each_segment(
                c.options, l, count, [&](int64_t i, int64_t len, int64_t p, int64_t stride) {
                    const float* xs = xf + i;
                    const float* sp = scales.data() + p;
                    const int32_t* zpp = zps.data() + p;
                    T* yo = yv + i;
                    if (stride == 0) {
                        const float sv = *sp;
                        const int32_t z = *zpp;
#pragma omp simd
                        for (int64_t t = 0; t < len; ++t)
                            yo[t] = static_cast<T>(saturate_round(xs[t] / sv, z, QT::lo, QT::hi));
                    } else {
#pragma omp simd
                        for (int64_t t = 0; t < len; ++t)
                            yo[t] = static_cast<T>(
                                saturate_round(xs[t] / sp[t], zpp[t], QT::lo, QT::hi));
                    }
                });
        } else if (x.dtype == DType::I32) {
            const int32_t* xi = x.values<int32_t>().data();
            run([xi](int64_t i, float sv) {
                return static_cast<float>(std::nearbyint(static_cast<double>(xi[i]) / sv));
            });
        } else {
            const DType dt = x.dtype;
            run([in, dt](int64_t i, float sv) { return load_float(dt, in, i) / sv; });
        }
    });
    if (!nibbles.empty()) pack_nibbles(c.options, nibbles, out);
    c.outputs.push_back(std::move(y));
}

void op_dequantize_linear(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& scale = c.input(1);
    const Tensor* zp = c.has_input(2) ? c.inputs[2] : nullptr;
    check_bytes(c, x, "x");
    check_bytes(c, scale, "x_scale");
    if (!is_float(scale.dtype))
        c.fail(cat("x_scale must be float, found ", dtype_name(scale.dtype)));
    if (c.opset < 13 && scale.element_count() != 1)
        c.fail(cat("x_scale must be a scalar before opset 13, found ", shape_string(scale.shape)));
    if (zp && zp->dtype != x.dtype)
        c.fail(
            cat("x_zero_point has type ", dtype_name(zp->dtype), ", x has ", dtype_name(x.dtype)));
    DType out_dt = scale.dtype;
    if (int64_t attr = c.node.attr_int("output_dtype", 0); attr != 0) {
        auto dt = dtype_from_onnx(static_cast<int>(attr));
        if (!dt || !is_float(*dt)) c.fail(cat("output_dtype ", attr, " is not a float type"));
        out_dt = *dt;
    }
    QuantLayout l = quant_layout(c, x, scale, zp);
    std::vector<float> scales = read_float_values(c, scale, "x_scale");
    std::vector<int32_t> zps(static_cast<size_t>(l.params), 0);
    if (zp) {
        check_bytes(c, *zp, "x_zero_point");
        zps = read_q_values(c, *zp, "x_zero_point");
    }
    Tensor y = make_tensor(out_dt, x.shape);
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    float* out_f32 = out_dt == DType::F32 ? y.mutable_values<float>().data() : nullptr;
    dispatch_q(c, x.dtype, true, "x", [&](auto q) {
        using QT = decltype(q);
        using T = typename QT::storage;
        // (x - zero_point) in integers (int64 for int32 x), then one f32 multiply.
        auto value = [in](int64_t i, int32_t z, float sv) {
            if constexpr (QT::bits == 32)
                return static_cast<float>(static_cast<int64_t>(QT::load(in, i)) - z) * sv;
            else if constexpr (QT::bits == 4)
                return static_cast<float>(QT::load(in, i) - z) * sv;
            else
                return static_cast<float>(static_cast<int32_t>(reinterpret_cast<const T*>(in)[i]) -
                                          z) *
                       sv;
        };
        for_each_segment(c.options, l, x.element_count(),
                         [&](int64_t i, int64_t len, int64_t p, int64_t stride) {
                             const float* sp = scales.data() + p;
                             const int32_t* zpp = zps.data() + p;
                             if (out_f32 && stride == 0) {
                                 float* yo = out_f32 + i;
                                 const float sv = *sp;
                                 const int32_t z = *zpp;
#pragma omp simd
                                 for (int64_t t = 0; t < len; ++t) yo[t] = value(i + t, z, sv);
                             } else if (out_f32) {
                                 float* yo = out_f32 + i;
#pragma omp simd
                                 for (int64_t t = 0; t < len; ++t)
                                     yo[t] = value(i + t, zpp[t], sp[t]);
                             } else {
                                 for (int64_t t = 0; t < len; ++t)
                                     store_float(out_dt, out, i + t,
                                                 stride == 0 ? value(i + t, *zpp, *sp)
                                                             : value(i + t, zpp[t], sp[t]));
                             }
                         });
    });
    c.outputs.push_back(std::move(y));
}

void op_dynamic_quantize_linear(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail(cat("x must be float, found ", dtype_name(x.dtype)));
    check_bytes(c, x, "x");
    const int64_t n = x.element_count();
    const std::byte* in = x.data.bytes().data();
    const float* xf = x.dtype == DType::F32 ? x.values<float>().data() : nullptr;
    // Min and max over fixed chunks, merged in chunk order (min/max are exact, so this is
    // the same for any thread count).
    constexpr int64_t kChunk = 65536;
    int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<float> mins(static_cast<size_t>(chunks)), maxs(static_cast<size_t>(chunks));
    parallel_for(c.options, chunks, 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
            float lo = 0.0f, hi = 0.0f;  // the range always includes 0
            const int64_t end = std::min(n, (k + 1) * kChunk);
            if (xf) {
                for (int64_t i = k * kChunk; i < end; ++i) {
                    lo = xf[i] < lo ? xf[i] : lo;
                    hi = xf[i] > hi ? xf[i] : hi;
                }
            } else {
                for (int64_t i = k * kChunk; i < end; ++i) {
                    const float v = load_float(x.dtype, in, i);
                    lo = std::min(lo, v);
                    hi = std::max(hi, v);
                }
            }
            mins[static_cast<size_t>(k)] = lo;
            maxs[static_cast<size_t>(k)] = hi;
        }
    });
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < chunks; ++k) {
        lo = std::min(lo, mins[static_cast<size_t>(k)]);
        hi = std::max(hi, maxs[static_cast<size_t>(k)]);
    }
    float scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float initial_zp = 0.0f - lo / scale;
    float zp_f = std::nearbyint(std::clamp(initial_zp, 0.0f, 255.0f));
    auto zp = static_cast<int32_t>(zp_f);
    Tensor y = make_tensor(DType::U8, x.shape);
    uint8_t* out = y.mutable_values<uint8_t>().data();
    parallel_for(c.options, n, 16384, [&](int64_t b, int64_t e) {
        if (xf) {
#pragma omp simd
            for (int64_t i = b; i < e; ++i)
                out[i] = static_cast<uint8_t>(saturate_round(xf[i] / scale, zp, 0, 255));
        } else {
            for (int64_t i = b; i < e; ++i)
                out[i] = static_cast<uint8_t>(
                    saturate_round(load_float(x.dtype, in, i) / scale, zp, 0, 255));
        }
    });
    Tensor s = make_tensor(x.dtype, {});
    store_float(x.dtype, s.data.mutable_bytes().data(), 0, scale);
    Tensor z = make_tensor(DType::U8, {});
    z.mutable_values<uint8_t>()[0] = static_cast<uint8_t>(zp);
    c.outputs.push_back(std::move(y));
    c.outputs.push_back(std::move(s));
    c.outputs.push_back(std::move(z));
}

namespace {

// ---- integer GEMM ---------------------------------------------------------------

// sum_k a[k] * b[k] of zero-point-adjusted 8-bit values (|value| <= 255) held in int16:
// exact. A chunk of at most 32768 products (each |p| <= 65025) cannot overflow int32;
// chunks add up in int64. Integer addition is associative, so the vectorized reduction
// gives the same bits as the plain loop.
inline int64_t dot_i16(const int16_t* a, const int16_t* b, int64_t k) {
    int64_t total = 0;
    for (int64_t k0 = 0; k0 < k; k0 += 32768) {
        const int64_t len = std::min<int64_t>(32768, k - k0);
        const int16_t* pa = a + k0;
        const int16_t* pb = b + k0;
        int32_t lanes[16] = {};
        int64_t t = 0;
        for (; t + 16 <= len; t += 16)
#pragma omp simd
            for (int l = 0; l < 16; ++l)
                lanes[l] += static_cast<int32_t>(pa[t + l]) * static_cast<int32_t>(pb[t + l]);
        int32_t sum = 0;
        for (int l = 0; l < 16; ++l) sum += lanes[l];
        for (; t < len; ++t) sum += static_cast<int32_t>(pa[t]) * static_cast<int32_t>(pb[t]);
        total += sum;
    }
    return total;
}

// C[i, j] (row stride ldc) = sum_k A[i, k] * B[k, j] as int32, wrapped as the ONNX
// contract allows (only the 32-bit accumulation may overflow). A is m x k row-major;
// B is given transposed a column tile at a time: panel(j0, width, buf) returns
// B^T[j0, 0] and its row stride (a view of a prepared matrix, or rows filled into buf).
// Work goes in fixed (row block, column tile) tasks; each element is one exact dot.
template <typename Panel>
void qgemm(const ExecOptions& options, int64_t m, int64_t n, int64_t k, const int16_t* a,
           Panel&& panel, int32_t* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    constexpr int64_t kRows = 32, kCols = 64;
    const int64_t mt = (m + kRows - 1) / kRows, nt = (n + kCols - 1) / kCols;
    parallel_for(options, mt * nt, 1, [&](int64_t t0, int64_t t1) {
        std::vector<int16_t> buf;
        int64_t built = -1;
        const int16_t* p = nullptr;
        int64_t ldp = 0;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t jt = t / mt, it = t % mt;
            const int64_t j0 = jt * kCols, width = std::min(kCols, n - j0);
            if (built != jt) {
                std::tie(p, ldp) = panel(j0, width, buf);
                built = jt;
            }
            const int64_t i1 = std::min(m, (it + 1) * kRows);
            for (int64_t i = it * kRows; i < i1; ++i) {
                int32_t* crow = c + i * ldc + j0;
                for (int64_t j = 0; j < width; ++j)
                    crow[j] = static_cast<int32_t>(
                        static_cast<uint32_t>(dot_i16(a + i * k, p + j * ldp, k)));
            }
        }
    });
}

void check_8bit(const OpContext& c, const Tensor& t, const char* what) {
    if (t.dtype != DType::U8 && t.dtype != DType::I8)
        c.fail(cat(what, " must be uint8 or int8, found ", dtype_name(t.dtype)));
    check_bytes(c, t, what);
}

// Element i of a uint8/int8 tensor.
inline int32_t load_8bit(const std::byte* p, bool is_signed, int64_t i) {
    return is_signed ? static_cast<int32_t>(static_cast<int8_t>(p[i]))
                     : static_cast<int32_t>(static_cast<uint8_t>(p[i]));
}

// A per-tensor, per-row or per-column parameter (zero point or scale) broadcast to
// `target` (A's shape with the last dim 1, or B's with the second-to-last 1) and
// flattened: one value per row of each A matrix / column of each B matrix.
template <typename T>
std::vector<T> expand_param(const OpContext& c, std::vector<T> values, std::vector<int64_t> shape,
                            const std::vector<int64_t>& target, const char* what) {
    int64_t want = 1;
    for (int64_t d : target) want *= d;
    if (values.size() == 1) return std::vector<T>(static_cast<size_t>(want), values[0]);
    // A 1-D per-row vector [M] means [M, 1].
    if (shape.size() == 1 && target.size() >= 2 && target.back() == 1 &&
        shape[0] == target[target.size() - 2])
        shape.push_back(1);
    if (shape.size() > target.size() || broadcast_shapes(c, shape, target) != target)
        c.fail(
            cat(what, " ", shape_string(shape), " does not broadcast to ", shape_string(target)));
    auto strides = broadcast_strides(shape, target);
    std::vector<T> out(static_cast<size_t>(want));
    for (int64_t i = 0; i < want; ++i) {
        int64_t rem = i, off = 0;
        for (size_t d = target.size(); d-- > 0;) {
            off += (rem % target[d]) * strides[d];
            rem /= target[d];
        }
        out[static_cast<size_t>(i)] = values[static_cast<size_t>(off)];
    }
    return out;
}

struct IntMatMul {
    Tensor y;                     // int32 [batch..., M, N]
    std::vector<int64_t> a_mats;  // A matrix index of each output batch
    std::vector<int64_t> b_mats;  // B matrix index of each output batch
    int64_t m = 0, n = 0, batches = 0;
};

// The shared core of MatMulInteger and QLinearMatMul (numpy matmul broadcasting).
IntMatMul int_matmul(const OpContext& c, const Tensor& a, const Tensor* a_zp, const Tensor& b,
                     const Tensor* b_zp) {
    check_8bit(c, a, "A");
    check_8bit(c, b, "B");
    std::vector<int64_t> as = a.shape, bs = b.shape;
    if (as.empty() || bs.empty()) c.fail("inputs must have rank >= 1");
    const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
    if (a_vec) as.insert(as.begin(), 1);
    if (b_vec) bs.push_back(1);
    const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
    if (bs[bs.size() - 2] != k)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(b.shape),
                   " cannot be multiplied"));
    std::vector<int64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    std::vector<int64_t> batch = broadcast_shapes(c, a_batch, b_batch);
    auto a_str = broadcast_strides(a_batch, batch), b_str = broadcast_strides(b_batch, batch);
    std::vector<int64_t> a_target = as, b_target = bs;
    a_target.back() = 1;
    b_target[b_target.size() - 2] = 1;
    std::vector<int32_t> azp(static_cast<size_t>(a.element_count() / std::max<int64_t>(k, 1)), 0);
    std::vector<int32_t> bzp(static_cast<size_t>(b.element_count() / std::max<int64_t>(k, 1)), 0);
    if (a_zp) {
        if (a_zp->dtype != a.dtype) c.fail("a_zero_point must have A's type");
        azp = expand_param(c, read_q_values(c, *a_zp, "a_zero_point"), a_zp->shape, a_target,
                           "a_zero_point");
    }
    if (b_zp) {
        if (b_zp->dtype != b.dtype) c.fail("b_zero_point must have B's type");
        bzp = expand_param(c, read_q_values(c, *b_zp, "b_zero_point"), b_zp->shape, b_target,
                           "b_zero_point");
    }
    std::vector<int64_t> out_shape = batch;
    if (!a_vec) out_shape.push_back(m);
    if (!b_vec) out_shape.push_back(n);
    IntMatMul r;
    r.y = make_tensor(DType::I32, out_shape);
    r.m = m;
    r.n = n;
    r.batches = 1;
    for (int64_t d : batch) r.batches *= d;
    int32_t* py = r.y.mutable_values<int32_t>().data();
    const std::byte* pa = a.data.bytes().data();
    const std::byte* pb = b.data.bytes().data();
    const bool a_signed = a.dtype == DType::I8, b_signed = b.dtype == DType::I8;
    std::vector<int16_t> a_adj(static_cast<size_t>(m * k));
    for (int64_t bi = 0; bi < r.batches; ++bi) {
        int64_t am = 0, bm = 0, rem = bi;
        for (size_t d = batch.size(); d-- > 0;) {
            int64_t idx = rem % batch[d];
            rem /= batch[d];
            am += idx * a_str[d];
            bm += idx * b_str[d];
        }
        r.a_mats.push_back(am);
        r.b_mats.push_back(bm);
        for (int64_t i = 0; i < m; ++i) {
            const int32_t z = azp[static_cast<size_t>(am * m + i)];
            for (int64_t kk = 0; kk < k; ++kk)
                a_adj[static_cast<size_t>(i * k + kk)] =
                    static_cast<int16_t>(load_8bit(pa, a_signed, (am * m + i) * k + kk) - z);
        }
        const int64_t b0 = bm * k * n;
        const int32_t* bz = bzp.data() + bm * n;
        qgemm(
            c.options, m, n, k, a_adj.data(),
            [&](int64_t j0, int64_t width, std::vector<int16_t>& buf) {
                buf.resize(static_cast<size_t>(width * k));
                for (int64_t kk = 0; kk < k; ++kk)
                    for (int64_t j = 0; j < width; ++j)
                        buf[static_cast<size_t>(j * k + kk)] = static_cast<int16_t>(
                            load_8bit(pb, b_signed, b0 + kk * n + j0 + j) - bz[j0 + j]);
                return std::pair<const int16_t*, int64_t>(buf.data(), k);
            },
            py + bi * m * n, n);
    }
    return r;
}

// The shared core of ConvInteger and QLinearConv: int32 [N, M, out...] of
// sum (x - x_zp) * (w - w_zp[m]), where padding counts as x_zp (contributes 0). Per
// (image, group): im2row of (x - x_zp) (one row of C/group x kernel values per output
// pixel), then qgemm with W.
Tensor int_conv(const OpContext& c, const ConvShape& g, const Tensor& x, int32_t x_zp,
                const Tensor& w, const std::vector<int32_t>& w_zp) {
    check_8bit(c, x, "x");
    check_8bit(c, w, "w");
    const size_t s = g.spatial_rank();
    const int64_t in_pixels = g.in_pixels(), out_pixels = g.out_pixels(), ks = g.kernel_size();
    const int64_t cin_g = g.c_in / g.group, cout_g = g.c_out / g.group, rows = cin_g * ks;
    Tensor y = make_tensor(DType::I32, g.output_shape());
    int32_t* py = y.mutable_values<int32_t>().data();
    const std::byte* px = x.data.bytes().data();
    const std::byte* pw = w.data.bytes().data();
    const bool x_signed = x.dtype == DType::I8, w_signed = w.dtype == DType::I8;
    std::vector<int64_t> in_strides(s, 1);
    for (size_t d = s - 1; d > 0; --d) in_strides[d - 1] = in_strides[d] * g.in[d];
    // Dilated offset of every kernel position on every axis.
    std::vector<int64_t> koff(static_cast<size_t>(ks) * s);
    for (int64_t kr = 0; kr < ks; ++kr) {
        int64_t rem = kr;
        for (size_t d = s; d-- > 0;) {
            koff[static_cast<size_t>(kr) * s + d] = (rem % g.kernel[d]) * g.dilations[d];
            rem /= g.kernel[d];
        }
    }
    auto im2row_count = checked_mul(static_cast<uint64_t>(out_pixels), static_cast<uint64_t>(rows));
    if (!im2row_count || *im2row_count > (uint64_t{1} << 36))
        c.fail(cat("the patch matrix (", out_pixels, " output pixels x ", rows, ") is too large"));
    std::vector<int16_t> im2row(static_cast<size_t>(*im2row_count));
    std::vector<int16_t> w_adj(static_cast<size_t>(cout_g * rows));
    for (int64_t b = 0; b < g.n; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi) {
            for (int64_t o = 0; o < cout_g; ++o) {
                const int64_t oc = gi * cout_g + o;
                for (int64_t r = 0; r < rows; ++r)
                    w_adj[static_cast<size_t>(o * rows + r)] = static_cast<int16_t>(
                        load_8bit(pw, w_signed, oc * rows + r) - w_zp[static_cast<size_t>(oc)]);
            }
            const int64_t x0 = (b * g.c_in + gi * cin_g) * in_pixels;
            parallel_for(c.options, out_pixels, 16, [&](int64_t p0, int64_t p1) {
                std::vector<int64_t> base(s);
                for (int64_t p = p0; p < p1; ++p) {
                    int64_t rem = p;
                    for (size_t d = s; d-- > 0;) {
                        base[d] = (rem % g.out[d]) * g.strides[d] - g.pads_begin[d];
                        rem /= g.out[d];
                    }
                    int16_t* dst = im2row.data() + p * rows;
                    for (int64_t kr = 0; kr < ks; ++kr) {
                        const int64_t* off = koff.data() + kr * static_cast<int64_t>(s);
                        int64_t at = 0;
                        bool inside = true;
                        for (size_t d = 0; d < s; ++d) {
                            const int64_t pos = base[d] + off[d];
                            if (pos < 0 || pos >= g.in[d]) {
                                inside = false;
                                break;
                            }
                            at += pos * in_strides[d];
                        }
                        for (int64_t ch = 0; ch < cin_g; ++ch)
                            dst[ch * ks + kr] =
                                inside
                                    ? static_cast<int16_t>(
                                          load_8bit(px, x_signed, x0 + ch * in_pixels + at) - x_zp)
                                    : 0;
                    }
                }
            });
            qgemm(
                c.options, cout_g, out_pixels, rows, w_adj.data(),
                [&](int64_t j0, int64_t, std::vector<int16_t>&) {
                    return std::pair<const int16_t*, int64_t>(im2row.data() + j0 * rows, rows);
                },
                py + (b * g.c_out + gi * cout_g) * out_pixels, out_pixels);
        }
    return y;
}

// One scalar zero point of a per-tensor input (0 when absent).
int32_t scalar_zp(const OpContext& c, size_t index, const char* what, DType expect) {
    if (!c.has_input(index)) return 0;
    const Tensor& t = *c.inputs[index];
    if (t.element_count() != 1)
        c.fail(cat(what, " must be a scalar, found ", shape_string(t.shape)));
    if (t.dtype != expect)
        c.fail(cat(what, " has type ", dtype_name(t.dtype), ", expected ", dtype_name(expect)));
    return read_q_values(c, t, what)[0];
}

float scalar_scale(const OpContext& c, size_t index, const char* what) {
    const Tensor& t = c.input(index);
    if (t.element_count() != 1)
        c.fail(cat(what, " must be a scalar, found ", shape_string(t.shape)));
    return read_float_values(c, t, what)[0];
}

// Zero points of W: one, or one per output channel.
std::vector<int32_t> per_channel_zp(const OpContext& c, size_t index, const Tensor& w, int64_t m) {
    if (!c.has_input(index)) return std::vector<int32_t>(static_cast<size_t>(m), 0);
    const Tensor& t = *c.inputs[index];
    if (t.dtype != w.dtype) c.fail("w_zero_point must have w's type");
    std::vector<int32_t> v = read_q_values(c, t, "w_zero_point");
    if (v.size() == 1) return std::vector<int32_t>(static_cast<size_t>(m), v[0]);
    if (t.shape.size() != 1 || static_cast<int64_t>(v.size()) != m)
        c.fail(cat("w_zero_point must be a scalar or have ", m, " elements, found ",
                   shape_string(t.shape)));
    return v;
}

// y[row, j] = saturate(round_half_even(float(acc[row, j]) * multiplier(row, j)) + zp) for
// rows of `len` elements, into a uint8/int8 tensor shaped like acc.
template <typename Multiplier>
Tensor requantize(const OpContext& c, const Tensor& acc, int64_t len, DType out_dt, int32_t zp,
                  Multiplier&& multiplier) {
    Tensor y = make_tensor(out_dt, acc.shape);
    const int32_t* in = acc.values<int32_t>().data();
    std::byte* out = y.data.mutable_bytes().data();
    const int64_t rows = len ? acc.element_count() / len : 0;
    dispatch_q(c, out_dt, false, "output", [&](auto q) {
        using QT = decltype(q);
        if constexpr (QT::bits != 8) {
            c.fail(cat("output must be uint8 or int8, found ", dtype_name(out_dt)));
        } else {
            parallel_for(
                c.options, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
                [&](int64_t r0, int64_t r1) {
                    for (int64_t r = r0; r < r1; ++r)
                        for (int64_t j = 0; j < len; ++j) {
                            const int64_t i = r * len + j;
                            QT::store(out, i,
                                      saturate_round(static_cast<float>(in[i]) * multiplier(r, j),
                                                     zp, QT::lo, QT::hi));
                        }
                });
        }
    });
    return y;
}

}  // namespace

void op_matmul_integer(OpContext& c) {
    const Tensor* a_zp = c.has_input(2) ? c.inputs[2] : nullptr;
    const Tensor* b_zp = c.has_input(3) ? c.inputs[3] : nullptr;
    IntMatMul r = int_matmul(c, c.input(0), a_zp, c.input(1), b_zp);
    c.outputs.push_back(std::move(r.y));
}

void op_conv_integer(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& w = c.input(1);
    ConvShape g = conv_shape(c, x.shape, w.shape);
    int32_t x_zp = scalar_zp(c, 2, "x_zero_point", x.dtype);
    std::vector<int32_t> w_zp = per_channel_zp(c, 3, w, g.c_out);
    c.outputs.push_back(int_conv(c, g, x, x_zp, w, w_zp));
}

void op_qlinear_matmul(OpContext& c) {
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(3);
    const Tensor* a_zp = c.has_input(2) ? c.inputs[2] : nullptr;
    const Tensor* b_zp = c.has_input(5) ? c.inputs[5] : nullptr;
    IntMatMul r = int_matmul(c, a, a_zp, b, b_zp);
    const Tensor& a_scale = c.input(1);
    const Tensor& b_scale = c.input(4);
    std::vector<int64_t> as = a.shape, bs = b.shape;
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    std::vector<int64_t> a_target = as, b_target = bs;
    a_target.back() = 1;
    b_target[b_target.size() - 2] = 1;
    std::vector<float> a_s = expand_param(c, read_float_values(c, a_scale, "a_scale"),
                                          a_scale.shape, a_target, "a_scale");
    std::vector<float> b_s = expand_param(c, read_float_values(c, b_scale, "b_scale"),
                                          b_scale.shape, b_target, "b_scale");
    float y_scale = scalar_scale(c, 6, "y_scale");
    DType out_dt = c.has_input(7) ? c.inputs[7]->dtype : a.dtype;
    int32_t y_zp = scalar_zp(c, 7, "y_zero_point", out_dt);
    const int64_t m = std::max<int64_t>(r.m, 1), n = r.n;
    // Rows of the output are (batch, i); the multiplier a_scale * b_scale / y_scale in f32.
    Tensor y = requantize(c, r.y, n, out_dt, y_zp, [&](int64_t row, int64_t j) {
        const int64_t bi = row / m, i = row % m;
        const float as_v = a_s[static_cast<size_t>(r.a_mats[static_cast<size_t>(bi)] * m + i)];
        const float bs_v = b_s[static_cast<size_t>(r.b_mats[static_cast<size_t>(bi)] * n + j)];
        return as_v * bs_v / y_scale;
    });
    c.outputs.push_back(std::move(y));
}

void op_qlinear_conv(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& w = c.input(3);
    ConvShape g = conv_shape(c, x.shape, w.shape);
    float x_scale = scalar_scale(c, 1, "x_scale");
    int32_t x_zp = scalar_zp(c, 2, "x_zero_point", x.dtype);
    std::vector<float> w_scale = read_float_values(c, c.input(4), "w_scale");
    if (w_scale.size() != 1 && static_cast<int64_t>(w_scale.size()) != g.c_out)
        c.fail(cat("w_scale must be a scalar or have ", g.c_out, " elements, found ",
                   shape_string(c.input(4).shape)));
    std::vector<int32_t> w_zp = per_channel_zp(c, 5, w, g.c_out);
    float y_scale = scalar_scale(c, 6, "y_scale");
    DType out_dt = c.has_input(7) ? c.inputs[7]->dtype : x.dtype;
    int32_t y_zp = scalar_zp(c, 7, "y_zero_point", out_dt);
    Tensor acc = int_conv(c, g, x, x_zp, w, w_zp);
    const int64_t pixels = g.out_pixels();
    if (c.has_input(8)) {
        const Tensor& bias = *c.inputs[8];
        if (bias.dtype != DType::I32 || bias.element_count() != g.c_out)
            c.fail(cat("B must be int32 with ", g.c_out, " elements, found ",
                       dtype_name(bias.dtype), " ", shape_string(bias.shape)));
        check_bytes(c, bias, "B");
        auto bv = bias.values<int32_t>();
        auto av = acc.mutable_values<int32_t>();
        for (int64_t b = 0; b < g.n; ++b)
            for (int64_t o = 0; o < g.c_out; ++o)
                for (int64_t p = 0; p < pixels; ++p) {
                    auto& v = av[static_cast<size_t>((b * g.c_out + o) * pixels + p)];
                    v = static_cast<int32_t>(static_cast<uint32_t>(v) +
                                             static_cast<uint32_t>(bv[static_cast<size_t>(o)]));
                }
    }
    std::vector<float> mult(static_cast<size_t>(g.c_out));
    for (int64_t o = 0; o < g.c_out; ++o)
        mult[static_cast<size_t>(o)] =
            x_scale * w_scale[w_scale.size() == 1 ? 0 : static_cast<size_t>(o)] / y_scale;
    // Rows of the output are (image, channel).
    Tensor y = requantize(c, acc, pixels, out_dt, y_zp, [&](int64_t row, int64_t) {
        return mult[static_cast<size_t>(row % g.c_out)];
    });
    c.outputs.push_back(std::move(y));
}

// ---- MatMulNBits (com.microsoft) ----------------------------------------------------

namespace {

constexpr int64_t kNBitsSmallM = 4;  // up to this many rows of A: fused dequantize + dot

struct NBits {
    int64_t m = 0, k = 0, n = 0, block = 0, k_blocks = 0, blob = 0;
    const float* a = nullptr;       // [M, K]
    const uint8_t* b = nullptr;     // [N, k_blocks, blob]
    const float* scales = nullptr;  // [N, k_blocks]
    const float* zp = nullptr;      // [N, k_blocks] unpacked, or null: default_zp
    float default_zp = 0;
    const int64_t* g_idx = nullptr;  // [K] block of each k, or null: k / block
    const float* bias = nullptr;     // [N] or null
    float* y = nullptr;              // [M, N]
};

// Dequantizes row `col` of B for k in [k0, k0 + len) (one block) into w.
template <int BITS>
void dequant_block(const NBits& p, int64_t col, int64_t kb, int64_t len, float* w) {
    constexpr int64_t per = 8 / BITS, mask = (1 << BITS) - 1;
    const uint8_t* blk = p.b + (col * p.k_blocks + kb) * p.blob;
    if (!p.g_idx) {
        const size_t at = static_cast<size_t>(col * p.k_blocks + kb);
        const float s = p.scales[at], z = p.zp ? p.zp[at] : p.default_zp;
        if constexpr (BITS == 8) {
#pragma omp simd
            for (int64_t j = 0; j < len; ++j) w[j] = (static_cast<float>(blk[j]) - z) * s;
        } else {
            // Codes first (a byte at a time, low bits first), then one vectorized pass to float.
            uint8_t codes[256];
            for (int64_t j0 = 0; j0 < len; j0 += 256) {
                const int64_t n = std::min<int64_t>(256, len - j0), bytes = n / per;
                const uint8_t* src = blk + j0 / per;
                for (int64_t byte = 0; byte < bytes; ++byte) {
                    const unsigned v = src[byte];
                    for (int64_t e = 0; e < per; ++e)
                        codes[byte * per + e] = static_cast<uint8_t>((v >> (e * BITS)) & mask);
                }
                for (int64_t j = bytes * per; j < n; ++j)
                    codes[j] = static_cast<uint8_t>((src[j / per] >> ((j % per) * BITS)) & mask);
                float* wo = w + j0;
#pragma omp simd
                for (int64_t j = 0; j < n; ++j) wo[j] = (static_cast<float>(codes[j]) - z) * s;
            }
        }
        return;
    }
    const int64_t k0 = kb * p.block;
    for (int64_t j = 0; j < len; ++j) {
        const size_t at = static_cast<size_t>(col * p.k_blocks + p.g_idx[k0 + j]);
        const float z = p.zp ? p.zp[at] : p.default_zp;
        w[j] = (static_cast<float>((blk[j / per] >> ((j % per) * BITS)) & mask) - z) * p.scales[at];
    }
}

// Few rows of A: each output column dequantizes its weights a block at a time and takes
// dot products with 8 interleaved partial sums (combined in a fixed order).
template <int BITS>
void nbits_small_m(const ExecOptions& options, const NBits& p) {
    parallel_for(options, p.n, 16, [&](int64_t n0, int64_t n1) {
        std::vector<float> w(static_cast<size_t>(p.block));
        for (int64_t col = n0; col < n1; ++col) {
            float acc[kNBitsSmallM][8] = {};
            for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
                const int64_t k0 = kb * p.block, len = std::min(p.block, p.k - k0);
                dequant_block<BITS>(p, col, kb, len, w.data());
                for (int64_t i = 0; i < p.m; ++i) {
                    const float* ar = p.a + i * p.k + k0;
                    float lanes[8];
                    std::copy(acc[i], acc[i] + 8, lanes);
                    int64_t t = 0;
                    for (; t + 8 <= len; t += 8)
#pragma omp simd
                        for (int l = 0; l < 8; ++l)
                            lanes[l] += ar[t + l] * w[static_cast<size_t>(t + l)];
                    for (; t < len; ++t) lanes[t % 8] += ar[t] * w[static_cast<size_t>(t)];
                    std::copy(lanes, lanes + 8, acc[i]);
                }
            }
            for (int64_t i = 0; i < p.m; ++i) {
                const float* ac = acc[i];
                float v = ((ac[0] + ac[1]) + (ac[2] + ac[3])) + ((ac[4] + ac[5]) + (ac[6] + ac[7]));
                p.y[i * p.n + col] = p.bias ? v + p.bias[col] : v;
            }
        }
    });
}

// More rows: fixed tiles of output columns; each tile dequantizes its rows of B into a
// [tile, K] buffer block by block and multiplies with the Eigen GEMM (one thread per tile).
template <int BITS>
void nbits_tiled(const ExecOptions& options, const NBits& p) {
    constexpr int64_t kTile = 32;
    const int64_t tiles = (p.n + kTile - 1) / kTile;
    const ExecOptions single{1};
    parallel_for(options, tiles, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> w(static_cast<size_t>(kTile * p.k));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t n0 = t * kTile, width = std::min(kTile, p.n - n0);
            for (int64_t r = 0; r < width; ++r)
                for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
                    const int64_t k0 = kb * p.block;
                    dequant_block<BITS>(p, n0 + r, kb, std::min(p.block, p.k - k0),
                                        w.data() + r * p.k + k0);
                }
            MatrixView av{p.a, p.m, p.k, p.k, false};
            MatrixView wv{w.data(), p.k, width, p.k, true};
            gemm_f32(single, av, wv, p.y + n0, p.n, false);
            if (p.bias)
                for (int64_t i = 0; i < p.m; ++i)
                    for (int64_t r = 0; r < width; ++r) p.y[i * p.n + n0 + r] += p.bias[n0 + r];
        }
    });
}

template <int BITS>
void nbits_run(const ExecOptions& options, const NBits& p) {
    if (p.m <= kNBitsSmallM)
        nbits_small_m<BITS>(options, p);
    else
        nbits_tiled<BITS>(options, p);
}

}  // namespace

void op_matmul_nbits(OpContext& c) {
    const Tensor& a0 = c.input(0);
    const Tensor& b = c.input(1);
    const Tensor& scales = c.input(2);
    if (!is_float(a0.dtype)) c.fail(cat("A must be float, found ", dtype_name(a0.dtype)));
    check_bytes(c, a0, "A");
    const int64_t k = c.node.attr_int("K", 0), n = c.node.attr_int("N", 0);
    const int64_t bits = c.node.attr_int("bits", 4), bs = c.node.attr_int("block_size", 0);
    if (k <= 0 || n <= 0) c.fail(cat("attributes K = ", k, " and N = ", n, " must be positive"));
    if (bits != 2 && bits != 4 && bits != 8)
        c.fail(cat("bits = ", bits, " is not supported (2, 4 or 8)"));
    if (bs < 16 || (bs & (bs - 1)) != 0)
        c.fail(cat("block_size = ", bs, " must be a power of two >= 16"));
    if (a0.shape.empty() || a0.shape.back() != k)
        c.fail(cat("A ", shape_string(a0.shape), " must end in K = ", k));
    const int64_t k_blocks = (k + bs - 1) / bs, blob = bs * bits / 8;
    auto b_count = checked_mul(static_cast<uint64_t>(n), static_cast<uint64_t>(k_blocks));
    auto b_bytes = b_count ? checked_mul(*b_count, static_cast<uint64_t>(blob)) : std::nullopt;
    if (!b_bytes) c.fail("N x k_blocks x blob_size overflows");
    check_bytes(c, b, "B");
    check_bytes(c, scales, "scales");
    if (b.dtype != DType::U8 || static_cast<uint64_t>(b.element_count()) != *b_bytes)
        c.fail(cat("B must be uint8 [N, k_blocks, blob_size] = [", n, ", ", k_blocks, ", ", blob,
                   "], found ", dtype_name(b.dtype), " ", shape_string(b.shape)));
    if (static_cast<uint64_t>(scales.element_count()) != *b_count)
        c.fail(cat("scales must have N x k_blocks = ", *b_count, " elements, found ",
                   shape_string(scales.shape)));
    std::vector<float> sc = read_float_values(c, scales, "scales");
    // Zero points: packed uint8 [N, ceil(k_blocks * bits / 8)], or float [N, k_blocks];
    // absent means 2^(bits - 1).
    std::vector<float> zp;
    if (c.has_input(3)) {
        const Tensor& z = *c.inputs[3];
        check_bytes(c, z, "zero_points");
        if (z.dtype == DType::U8) {
            const int64_t per_row = (k_blocks * bits + 7) / 8;
            if (z.element_count() != n * per_row)
                c.fail(cat("packed zero_points must be uint8 [N, ceil(k_blocks * bits / 8)] = [", n,
                           ", ", per_row, "], found ", shape_string(z.shape)));
            zp.resize(static_cast<size_t>(*b_count));
            auto zb = z.values<uint8_t>();
            const int64_t per_byte = 8 / bits, mask = (1 << bits) - 1;
            for (int64_t r = 0; r < n; ++r)
                for (int64_t kb = 0; kb < k_blocks; ++kb) {
                    uint8_t byte = zb[static_cast<size_t>(r * per_row + kb / per_byte)];
                    zp[static_cast<size_t>(r * k_blocks + kb)] =
                        static_cast<float>((byte >> ((kb % per_byte) * bits)) & mask);
                }
        } else if (is_float(z.dtype)) {
            if (static_cast<uint64_t>(z.element_count()) != *b_count)
                c.fail(cat("float zero_points must have N x k_blocks = ", *b_count,
                           " elements, found ", shape_string(z.shape)));
            zp = read_float_values(c, z, "zero_points");
        } else {
            c.fail(cat("zero_points must be uint8 or float, found ", dtype_name(z.dtype)));
        }
    }
    std::vector<int64_t> g_idx;  // block of each k (deprecated input)
    if (c.has_input(4)) {
        g_idx = read_ints(c, *c.inputs[4]);
        if (static_cast<int64_t>(g_idx.size()) != k)
            c.fail(cat("g_idx must have K = ", k, " elements, found ", g_idx.size()));
        for (int64_t g : g_idx)
            if (g < 0 || g >= k_blocks) c.fail(cat("g_idx value ", g, " is not a block index"));
    }
    std::vector<float> bias;
    if (c.has_input(5)) {
        bias = read_float_values(c, *c.inputs[5], "bias");
        if (static_cast<int64_t>(bias.size()) != n)
            c.fail(cat("bias must have N = ", n, " elements, found ", bias.size()));
    }
    std::vector<float> a_f32;  // A as f32 when it is not
    NBits p;
    p.m = a0.element_count() / k;
    p.k = k;
    p.n = n;
    p.block = bs;
    p.k_blocks = k_blocks;
    p.blob = blob;
    if (a0.dtype == DType::F32) {
        p.a = a0.values<float>().data();
    } else {
        a_f32 = read_float_values(c, a0, "A");
        p.a = a_f32.data();
    }
    p.b = b.values<uint8_t>().data();
    p.scales = sc.data();
    p.zp = zp.empty() ? nullptr : zp.data();
    p.default_zp = static_cast<float>(1 << (bits - 1));
    p.g_idx = g_idx.empty() ? nullptr : g_idx.data();
    p.bias = bias.empty() ? nullptr : bias.data();
    std::vector<int64_t> out_shape = a0.shape;
    out_shape.back() = n;
    Tensor y32 = make_tensor(DType::F32, out_shape);
    p.y = y32.mutable_values<float>().data();
    if (p.m > 0) {
        if (bits == 2)
            nbits_run<2>(c.options, p);
        else if (bits == 4)
            nbits_run<4>(c.options, p);
        else
            nbits_run<8>(c.options, p);
    }
    if (a0.dtype == DType::F32) {
        c.outputs.push_back(std::move(y32));
        return;
    }
    Tensor y = make_tensor(a0.dtype, out_shape);
    std::byte* out = y.data.mutable_bytes().data();
    for (int64_t i = 0; i < y.element_count(); ++i) store_float(a0.dtype, out, i, p.y[i]);
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
