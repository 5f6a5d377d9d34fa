// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear.
//
//   QuantizeLinear    y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear  y = (x - zero_point) * scale                 (in f32, stored as y's dtype)
//   DynamicQuantize   scale = (max(0, max x) - min(0, min x)) / 255 (1 when that range is 0,
//                     as ONNX Runtime does; the ONNX reference gives 1/255 there)
//                     zero_point = round_half_even(clamp(-min(0, min x) / scale, 0, 255))
//
// Scales and zero points are per tensor (one element), per axis (1-D along `axis`), or
// blocked (opset 21 `block_size`: same rank as x, ceil(x.shape[axis] / block_size) along
// axis). Element types: quant_common.h, and float8 / float4e2m1 (ir/dtype.h conversions).
//
// Threads split work so that each output element is computed by one thread, in a fixed
// order: results are bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "ir/checked.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_common.h"

namespace ep::rt {
namespace {

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

// Packs one int8 per element into bytes of 8 / bits elements (4-bit pairs or 2-bit
// quadruples), the first element in the lowest bits.
void pack_sub_byte(const ExecOptions& options, const std::vector<int8_t>& v, int bits,
                   std::byte* out) {
    const auto n = static_cast<int64_t>(v.size());
    const int per_byte = 8 / bits, mask = (1 << bits) - 1;
    parallel_for(options, (n + per_byte - 1) / per_byte, 16384, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            int byte = 0;
            for (int k = 0; k < per_byte && b * per_byte + k < n; ++k)
                byte |= (v[static_cast<size_t>(b * per_byte + k)] & mask) << (k * bits);
            out[b] = static_cast<std::byte>(byte);
        }
    });
}

// QuantizeLinear to float8 / float4e2m1 as the ONNX reference: x / scale in f32, then a
// cast (float8: `saturate`, the zero point is 0 by the spec and not added; float4e2m1:
// the zero point added as a float, always saturating). Elements in index order per thread
// range of whole bytes.
void quantize_to_small_float(const OpContext& c, const Tensor& x, const QuantLayout& l,
                             const std::vector<float>& scales, const Tensor* zp, Tensor& y) {
    const DType out_dt = y.dtype;
    const bool saturate = c.node.attr_int("saturate", 1) != 0;
    std::vector<float> zps(static_cast<size_t>(l.params), 0.0f);
    if (zp && out_dt == DType::F4E2M1) {
        check_bytes(c, *zp, "y_zero_point");
        for (size_t i = 0; i < zps.size(); ++i)
            zps[i] = load_float(zp->dtype, zp->data.bytes().data(), static_cast<int64_t>(i));
    }
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    const int64_t count = x.element_count();
    auto run = [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const int64_t in_i = i % l.inner, row = i / l.inner;
            const int64_t p = l.param_index(row / l.dim, row % l.dim, in_i);
            float v = load_float(x.dtype, in, i) / scales[static_cast<size_t>(p)];
            if (out_dt == DType::F4E2M1) v += zps[static_cast<size_t>(p)];
            store_small_float_bits(out_dt, out, i, float_to_small_float(out_dt, v, saturate));
        }
    };
    if (out_dt == DType::F4E2M1) {  // two elements a byte: split on even indices
        parallel_for(c.options, (count + 1) / 2, 8192,
                     [&](int64_t b0, int64_t b1) { run(2 * b0, std::min(count, 2 * b1)); });
    } else {
        parallel_for(c.options, count, 16384, run);
    }
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
    if (is_small_float(out_dt) && out_dt != DType::F8E8M0) {
        if (!is_float(x.dtype)) c.fail(cat("x must be float, found ", dtype_name(x.dtype)));
        Tensor y = make_tensor(out_dt, x.shape);
        quantize_to_small_float(c, x, l, scales, zp, y);
        c.outputs.push_back(std::move(y));
        return;
    }
    std::vector<int32_t> zps(static_cast<size_t>(l.params), 0);
    if (zp) {
        check_bytes(c, *zp, "y_zero_point");
        zps = read_q_values(c, *zp, "y_zero_point");
    }
    Tensor y = make_tensor(out_dt, x.shape);
    const int64_t count = x.element_count();
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    std::vector<int8_t> nibbles;  // 4- and 2-bit outputs: one int8 per element, packed at the end
    int sub_byte_bits = 0;
    dispatch_q(c, out_dt, false, "output", [&](auto q) {
        using QT = decltype(q);
        using T = typename QT::storage;
        T* yv = nullptr;
        if constexpr (QT::bits < 8) {
            sub_byte_bits = QT::bits;
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
    if (!nibbles.empty()) pack_sub_byte(c.options, nibbles, sub_byte_bits, out);
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
    const bool small_float_x = is_small_float(x.dtype) && x.dtype != DType::F8E8M0;
    DType out_dt = scale.dtype;
    if (int64_t attr = c.node.attr_int("output_dtype", 0); attr != 0) {
        auto dt = dtype_from_onnx(static_cast<int>(attr));
        if (!dt || !is_float(*dt)) c.fail(cat("output_dtype ", attr, " is not a float type"));
        out_dt = *dt;
    }
    QuantLayout l = quant_layout(c, x, scale, zp);
    std::vector<float> scales = read_float_values(c, scale, "x_scale");
    std::vector<int32_t> zps(static_cast<size_t>(l.params), 0);
    if (zp && !small_float_x) {
        check_bytes(c, *zp, "x_zero_point");
        zps = read_q_values(c, *zp, "x_zero_point");
    }
    Tensor y = make_tensor(out_dt, x.shape);
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    if (small_float_x) {
        // float8 / float4e2m1 x: y = float(x) * scale, the zero point (0 by the spec for
        // float8) not subtracted, as the ONNX reference does.
        for_each_segment(c.options, l, x.element_count(),
                         [&](int64_t i, int64_t len, int64_t p, int64_t stride) {
                             for (int64_t t = 0; t < len; ++t)
                                 store_float(out_dt, out, i + t,
                                             load_float(x.dtype, in, i + t) *
                                                 scales[static_cast<size_t>(p + t * stride)]);
                         });
        c.outputs.push_back(std::move(y));
        return;
    }
    float* out_f32 = out_dt == DType::F32 ? y.mutable_values<float>().data() : nullptr;
    dispatch_q(c, x.dtype, true, "x", [&](auto q) {
        using QT = decltype(q);
        using T = typename QT::storage;
        // (x - zero_point) in integers (int64 for int32 x), then one f32 multiply.
        auto value = [in](int64_t i, int32_t z, float sv) {
            if constexpr (QT::bits == 32)
                return static_cast<float>(static_cast<int64_t>(QT::load(in, i)) - z) * sv;
            else if constexpr (QT::bits < 8)
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

}  // namespace ep::rt
